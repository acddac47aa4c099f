"""mp_pool.py -- Python's multiprocessing.Pool and Process, the peer of pool_bench.

    /usr/bin/python3 bench/peers/mp_pool.py [--workers W] [--items N] [--rtt-count N]
                                            [--cpu-tasks N] [--procs N] [--rounds R]

Prints, as `name: value unit` lines (same cases as pool_bench):
py_map_ints (items/s: Pool(W).map(add_one, range(N)), default 1,000,000, automatic
chunk size, pool made before the clock), py_apply_async_rtt (us: apply_async(f).get()
one at a time, default 2,000), py_cpu_tasks_serial / py_cpu_tasks_parallel_2w (s: N
tasks of ~100 us CPU, default 10,000; Pool(2).map with chunksize 1),
py_cpu_tasks_efficiency_2w (%), py_cpu_tasks_efficiency_2w_autochunk (%: the
same with the automatic chunk size; medians over --rounds rounds, default 5, each
timing serial and parallel back to back), py_process_start_join (us: Process(target=empty).start()
and join(), default 200). Start method: the platform default (fork on Linux before 3.14),
printed as py_start_method. Standard library only.
"""
import argparse
import multiprocessing as mp
import os
import statistics
import time

SPIN = 1


def add_one(x):
    return x + 1


def echo(x):
    return x


def spin(x):
    for _ in range(SPIN):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
    return x


def empty():
    pass


def calibrate():
    global SPIN
    SPIN = 100
    while True:
        t0 = time.perf_counter()
        spin(1)
        t = time.perf_counter() - t0
        if t > 0.01:
            SPIN = max(1, int(SPIN * 100e-6 / t))
            return
        SPIN *= 2


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--items", type=int, default=1000000)
    ap.add_argument("--rtt-count", type=int, default=2000)
    ap.add_argument("--cpu-tasks", type=int, default=10000)
    ap.add_argument("--procs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    calibrate()
    print("py_start_method: %s" % mp.get_start_method())

    with mp.Pool(a.workers) as pool:
        data = list(range(a.items))
        pool.map(add_one, data)  # warm-up
        t0 = time.perf_counter()
        out = pool.map(add_one, data)
        t = time.perf_counter() - t0
        assert out[-1] == a.items
        print("py_map_ints: %.0f items/s" % (a.items / t))
        for i in range(200):
            pool.apply_async(echo, (i,)).get()
        t0 = time.perf_counter()
        for i in range(a.rtt_count):
            assert pool.apply_async(echo, (i,)).get() == i
        print("py_apply_async_rtt: %.2f us" % ((time.perf_counter() - t0) / a.rtt_count * 1e6))

    tasks = list(range(a.cpu_tasks))
    ser_v, par_v, eff_v, eff_auto_v = [], [], [], []
    with mp.Pool(2) as pool:
        pool.map(spin, tasks[:200], chunksize=1)  # warm-up
        for _ in range(a.rounds):
            t0 = time.perf_counter()
            for x in tasks:
                spin(x)
            serial = time.perf_counter() - t0
            t0 = time.perf_counter()
            pool.map(spin, tasks, chunksize=1)
            par = time.perf_counter() - t0
            t0 = time.perf_counter()
            pool.map(spin, tasks)
            par_auto = time.perf_counter() - t0
            ser_v.append(serial)
            par_v.append(par)
            eff_v.append(serial / (2 * par) * 100)
            eff_auto_v.append(serial / (2 * par_auto) * 100)
    print("py_cpu_tasks_serial: %.3f s" % statistics.median(ser_v))
    print("py_cpu_tasks_parallel_2w: %.3f s" % statistics.median(par_v))
    print("py_cpu_tasks_efficiency_2w: %.1f %%" % statistics.median(eff_v))
    print("py_cpu_tasks_efficiency_2w_autochunk: %.1f %%" % statistics.median(eff_auto_v))

    t0 = time.perf_counter()
    for _ in range(a.procs):
        p = mp.Process(target=empty)
        p.start()
        p.join()
    print("py_process_start_join: %.1f us" % ((time.perf_counter() - t0) / a.procs * 1e6))


if __name__ == "__main__":
    main()
