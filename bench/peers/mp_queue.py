"""mp_queue.py -- Python's multiprocessing.Queue and Pipe between two processes, the peer
of queue_bench.

    /usr/bin/python3 bench/peers/mp_queue.py [--count N] [--big-count N]

One producer (this process) sends N messages of 64 bytes (default 200,000) and
big-count messages of 64 KiB (default 4096, 256 MiB) to one consumer process, which
checks a sequence number in each. Prints, as `name: value unit` lines:
py_mp_queue_64B (msgs/s), py_mp_pipe_64B (msgs/s), py_mp_queue_64KiB (MB/s),
py_mp_pipe_64KiB (MB/s). The clock runs from the consumer being ready to it having
received the last message. Standard library only.
"""
import argparse
import multiprocessing as mp
import struct
import time


def consume_queue(q, ready, n, size):
    ready.set()
    for i in range(n):
        m = q.get()
        if len(m) != size or struct.unpack_from("<Q", m)[0] != i:
            raise SystemExit("wrong message %d" % i)


def consume_pipe(conn, ready, n, size):
    ready.set()
    for i in range(n):
        m = conn.recv_bytes()
        if len(m) != size or struct.unpack_from("<Q", m)[0] != i:
            raise SystemExit("wrong message %d" % i)


def run(kind, n, size):
    ready = mp.Event()
    if kind == "queue":
        q = mp.Queue(maxsize=1000)
        p = mp.Process(target=consume_queue, args=(q, ready, n, size))
        send = q.put
    else:
        rd, wr = mp.Pipe(duplex=False)
        p = mp.Process(target=consume_pipe, args=(rd, ready, n, size))
        send = wr.send_bytes
    p.start()
    ready.wait()
    pad = bytes(size - 8)
    pack = struct.Struct("<Q").pack
    t0 = time.perf_counter()
    for i in range(n):
        send(pack(i) + pad)
    p.join()
    el = time.perf_counter() - t0
    if p.exitcode != 0:
        raise SystemExit("consumer failed")
    return el


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=200000)
    ap.add_argument("--big-count", type=int, default=4096)
    a = ap.parse_args()
    for kind in ("queue", "pipe"):
        el = run(kind, a.count, 64)
        print("py_mp_%s_64B: %.0f msgs/s" % (kind, a.count / el), flush=True)
    for kind in ("queue", "pipe"):
        el = run(kind, a.big_count, 65536)
        print("py_mp_%s_64KiB: %.0f MB/s" % (kind, a.big_count * 65536 / el / 1e6), flush=True)


if __name__ == "__main__":
    main()
