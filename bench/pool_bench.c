/* pool_bench -- cipc_pool against Python's multiprocessing.Pool (bench/peers/mp_pool.py).
 *
 *     pool_bench [--workers W] [--items N] [--rtt-count N] [--cpu-tasks N] [--procs N]
 *                [--rounds R] [--method forkserver|fork] [--help]
 *
 * Pools use the default start method (forkserver) unless --method says otherwise; every
 * pool runs a small warm-up map before it is timed (its workers were just forked).
 * Every figure is printed as a `name: value unit` line:
 *
 *     map_ints: X items/s         cipc_pool_map of x -> x + 1 over N int64 (default
 *                                 1,000,000), automatic chunk size, W workers (default:
 *                                 one per CPU); the pool is created before the clock starts
 *     apply_async_rtt: X us       one apply_async + cipc_future_wait at a time (8 bytes in,
 *                                 8 out), mean over --rtt-count tasks (default 20,000)
 *     imap_ints: X items/s        cipc_pool_imap of the same map, chunk size 1000, every
 *                                 result read through cipc_pool_iter_next()
 *     cpu_tasks_serial: X s       --cpu-tasks (default 10,000) tasks of ~100 us CPU each
 *                                 run in this process, one after the other
 *     cpu_tasks_parallel_2w: X s  the same tasks through cipc_pool_map on 2 workers,
 *                                 chunk size 1 (one queue message per task)
 *     cpu_tasks_efficiency_2w: X %  serial / (2 * parallel); each of --rounds (default 5)
 *                                 rounds times serial and parallel back to back, and the
 *                                 median of the rounds' ratios is printed (the machine is
 *                                 noisy; a ratio from one round pairs like with like)
 *     cpu_tasks_efficiency_2w_autochunk: X %  the same with the automatic chunk size
 *     process_start_join: X us    cipc_process_start of an empty function + join, mean
 *                                 over --procs processes (default 500)
 *
 * Uses the public API of libcipc only. */
#include <cipc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "pool_bench: %s: %s\n", what, cipc_strerror(rc));
    exit(1);
}

static int add_one(const void *in, void *out, void *ud)
{
    (void)ud;
    *(int64_t *)out = *(const int64_t *)in + 1;
    return 0;
}

static int echo8(const void *in, size_t len, void *out, size_t cap, size_t *out_len, void *ud)
{
    (void)ud;
    (void)cap;
    memcpy(out, in, len);
    *out_len = len;
    return 0;
}

/* ~100 us of CPU: g_spin iterations of an LCG, calibrated before the pool is made so the
 * workers inherit the count. */
static long g_spin = 1;

static uint64_t spin(uint64_t x)
{
    for (long i = 0; i < g_spin; i++)
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x;
}

static int cpu_task(const void *in, void *out, void *ud)
{
    (void)ud;
    *(uint64_t *)out = spin(*(const uint64_t *)in);
    return 0;
}

static int empty_fn(void *arg)
{
    (void)arg;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: pool_bench [--workers W] [--items N] [--rtt-count N] [--cpu-tasks N]\n"
               "                  [--procs N] [--rounds R] [--method forkserver|fork]\n"
               "prints map_ints (items/s), imap_ints (items/s), apply_async_rtt (us),\n"
               "cpu_tasks_serial / cpu_tasks_parallel_2w (s), cpu_tasks_efficiency_2w and\n"
               "cpu_tasks_efficiency_2w_autochunk (%%), process_start_join (us); defaults:\n"
               "W = online CPUs, N items 1000000, rtt 20000, cpu tasks 10000 of ~100 us,\n"
               "procs 500, rounds 5, method forkserver\n");
}

static void calibrate(void)
{
    g_spin = 1000;
    for (;;) {
        double t0 = now_s();
        volatile uint64_t sink = spin(1);
        (void)sink;
        double t = now_s() - t0;
        if (t > 0.01) {
            g_spin = (long)((double)g_spin * 100e-6 / t);
            return;
        }
        g_spin *= 2;
    }
}

int main(int argc, char **argv)
{
    long workers = sysconf(_SC_NPROCESSORS_ONLN), items = 1000000, rtt = 20000, cpu = 10000,
         procs = 500, rounds = 5;
    int method = CIPC_POOL_FORKSERVER;
    for (int i = 1; i < argc; i += 2) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        if (!strcmp(argv[i], "--method")) {
            if (!strcmp(argv[i + 1], "fork")) {
                method = CIPC_POOL_FORK;
            } else if (strcmp(argv[i + 1], "forkserver") != 0) {
                usage(stderr);
                return 2;
            }
            continue;
        }
        long v = atol(argv[i + 1]);
        if (!strcmp(argv[i], "--workers"))
            workers = v;
        else if (!strcmp(argv[i], "--items"))
            items = v;
        else if (!strcmp(argv[i], "--rtt-count"))
            rtt = v;
        else if (!strcmp(argv[i], "--cpu-tasks"))
            cpu = v;
        else if (!strcmp(argv[i], "--procs"))
            procs = v;
        else if (!strcmp(argv[i], "--rounds"))
            rounds = v > 0 ? v : 1;
        else {
            usage(stderr);
            return 2;
        }
    }
    calibrate();

    /* map over ints */
    cipc_pool *p = NULL;
    int rc = cipc_pool_new(&(cipc_pool_opts){.workers = (int)workers, .start_method = method}, &p);
    if (rc < 0)
        die("pool", rc);
    int64_t *in = malloc((size_t)items * 8), *out = malloc((size_t)items * 8);
    for (long i = 0; i < items; i++)
        in[i] = i;
    cipc_pool_map(p, add_one, NULL, in, (size_t)items, 8, out, 8, 0, NULL); /* warm-up */
    double t0 = now_s();
    rc = cipc_pool_map(p, add_one, NULL, in, (size_t)items, 8, out, 8, 0, NULL);
    double t = now_s() - t0;
    if (rc != 0)
        die("map", rc);
    for (long i = 0; i < items; i++)
        if (out[i] != i + 1)
            die("map: wrong result", 0);
    printf("map_ints: %.0f items/s\n", (double)items / t);

    /* imap, chunks of 1000, every result read */
    t0 = now_s();
    cipc_pool_iter *it = NULL;
    if ((rc = cipc_pool_imap(p, add_one, NULL, in, (size_t)items, 8, 8, 1000, 0, &it)) < 0)
        die("imap", rc);
    cipc_pool_item item;
    long got = 0;
    while ((rc = cipc_pool_iter_next(it, -1, &item)) == 1) {
        if (item.rc != 0 || *(const int64_t *)item.data != (int64_t)item.index + 1)
            die("imap: wrong result", 0);
        got++;
    }
    t = now_s() - t0;
    cipc_pool_iter_free(it);
    if (rc < 0 || got != items)
        die("imap", rc);
    printf("imap_ints: %.0f items/s\n", (double)items / t);

    /* apply_async round trip */
    for (long i = 0; i < rtt + 1000; i++) {
        if (i == 1000)
            t0 = now_s();
        cipc_future *f = NULL;
        int64_t v = i;
        if ((rc = cipc_pool_apply_async(p, echo8, NULL, &v, 8, NULL, NULL, &f)) < 0)
            die("apply_async", rc);
        cipc_future_wait(f, -1);
        const void *d;
        size_t len;
        if (cipc_future_result(f, &d, &len) != 0 || len != 8 || memcmp(d, &v, 8) != 0)
            die("apply_async: wrong result", 0);
        cipc_future_free(f);
    }
    printf("apply_async_rtt: %.2f us\n", (now_s() - t0) / (double)rtt * 1e6);
    cipc_pool_free(p);
    free(in);
    free(out);

    /* CPU-bound tasks: serial vs 2 workers */
    uint64_t *cin = malloc((size_t)cpu * 8), *cout = malloc((size_t)cpu * 8);
    for (long i = 0; i < cpu; i++)
        cin[i] = (uint64_t)i;
    cipc_pool_fn volatile task = cpu_task; /* called through a pointer, as in the workers */
    if ((rc = cipc_pool_new(&(cipc_pool_opts){.workers = 2, .start_method = method}, &p)) < 0)
        die("pool", rc);
    cipc_pool_map(p, cpu_task, NULL, cin, cpu < 200 ? (size_t)cpu : 200, 8, cout, 8, 1, NULL);
    double ser_v[64], par_v[64], eff_v[64], eff_auto_v[64];
    if (rounds > 64)
        rounds = 64;
    for (int r = 0; r < rounds; r++) {
        t0 = now_s();
        for (long i = 0; i < cpu; i++)
            task(&cin[i], &cout[i], NULL);
        double serial = now_s() - t0;
        t0 = now_s();
        rc = cipc_pool_map(p, cpu_task, NULL, cin, (size_t)cpu, 8, cout, 8, 1, NULL);
        double par = now_s() - t0;
        if (rc != 0)
            die("map cpu", rc);
        t0 = now_s();
        rc = cipc_pool_map(p, cpu_task, NULL, cin, (size_t)cpu, 8, cout, 8, 0, NULL);
        double par_auto = now_s() - t0;
        if (rc != 0)
            die("map cpu", rc);
        ser_v[r] = serial;
        par_v[r] = par;
        eff_v[r] = serial / (2 * par) * 100;
        eff_auto_v[r] = serial / (2 * par_auto) * 100;
    }
    cipc_pool_free(p);
    printf("cpu_tasks_serial: %.3f s\n", median(ser_v, (int)rounds));
    printf("cpu_tasks_parallel_2w: %.3f s\n", median(par_v, (int)rounds));
    printf("cpu_tasks_efficiency_2w: %.1f %%\n", median(eff_v, (int)rounds));
    printf("cpu_tasks_efficiency_2w_autochunk: %.1f %%\n", median(eff_auto_v, (int)rounds));
    free(cin);
    free(cout);

    /* process start + join */
    t0 = now_s();
    for (long i = 0; i < procs; i++) {
        cipc_process *pr = NULL;
        if ((rc = cipc_process_start(empty_fn, NULL, NULL, &pr)) < 0)
            die("process", rc);
        cipc_process_join(pr, -1);
        cipc_process_free(pr);
    }
    printf("process_start_join: %.1f us\n", (now_s() - t0) / (double)procs * 1e6);
    return 0;
}
