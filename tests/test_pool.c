/* tests/test_pool.c -- cipc_pool: results in input order, Python's chunk sizes and the
 * chunking edge cases, per-item errors, variable-size items, apply_async futures and
 * callbacks, worker crashes (abort, _exit, SIGSEGV) and task timeouts, initializer,
 * max_tasks_per_child, close / join / terminate, imap and imap_unordered; everything with
 * both start methods. Then what the forkserver is for: a lock held by another thread of
 * the program when a worker is replaced, and a pool whose forkserver was killed. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cipc/pool.h"

static int g_method; /* the start method every test uses */

static long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int square(const void *in, void *out, void *ud)
{
    (void)ud;
    int64_t n = *(const int64_t *)in;
    *(int64_t *)out = n * n;
    return 0;
}

/* Items that are multiples of 7 fail with -EDOM. */
static int picky(const void *in, void *out, void *ud)
{
    int n = *(const int *)in;
    if (n % 7 == 0)
        return -EDOM;
    *(int *)out = n + *(const int *)ud;
    return 0;
}

/* Item 5 kills its worker in the way ud says. */
static int crashy(const void *in, void *out, void *ud)
{
    int n = *(const int *)in, how = *(const int *)ud;
    if (n == 5) {
        if (how == 0)
            abort();
        if (how == 1)
            _exit(3);
        raise(SIGKILL);
    }
    *(int *)out = -n;
    return 0;
}

static int sleepy(const void *in, void *out, void *ud)
{
    (void)ud;
    int n = *(const int *)in;
    if (n == 2)
        sleep(20);
    *(int *)out = n;
    return 0;
}

static int g_init_value;
static void init_worker(void *arg) { g_init_value = *(int *)arg; }

static int report_init(const void *in, void *out, void *ud)
{
    (void)in;
    (void)ud;
    *(int *)out = g_init_value;
    return 0;
}

static int report_pid(const void *in, void *out, void *ud)
{
    (void)in;
    (void)ud;
    *(int *)out = (int)getpid();
    return 0;
}

/* bytes: "abc" -> "ABCABC"; an input starting with '!' fails with -EBADMSG; "crash"
 * aborts; "sleep" sleeps 300 ms first. */
static int shout_twice(const void *in, size_t len, void *out, size_t cap, size_t *out_len,
                       void *ud)
{
    (void)ud;
    const char *s = in;
    if (len && s[0] == '!')
        return -EBADMSG;
    if (len == 5 && memcmp(s, "crash", 5) == 0)
        abort();
    if (len == 5 && memcmp(s, "sleep", 5) == 0)
        usleep(300000);
    if (2 * len > cap) {
        *out_len = 2 * len; /* too big: reported as CIPC_ETOOBIG */
        return 0;
    }
    for (size_t i = 0; i < 2 * len; i++) {
        char c = s[i % len];
        ((char *)out)[i] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
    }
    *out_len = 2 * len;
    return 0;
}

static void test_chunksize(void)
{
    cipc_pool *p = NULL;
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.start_method = g_method, .workers = 4}, &p), ==, 0);
    CHECK_INT(cipc_pool_workers(p), ==, 4);
    CHECK_INT(cipc_pool_chunksize(p, 0), ==, 1);
    CHECK_INT(cipc_pool_chunksize(p, 1), ==, 1);
    CHECK_INT(cipc_pool_chunksize(p, 16), ==, 1);
    CHECK_INT(cipc_pool_chunksize(p, 17), ==, 2);
    CHECK_INT(cipc_pool_chunksize(p, 5), ==, 1);
    CHECK_INT(cipc_pool_chunksize(p, 1000000), ==, 62500);
    CHECK_INT(cipc_pool_chunksize(p, 1000001), ==, 62501);
    cipc_pool_free(p);
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.start_method = g_method, .workers = -1}, &p), ==, -EINVAL);
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.start_method = 7}, &p), ==, -EINVAL);
    CHECK_INT(cipc_pool_new(NULL, &p), ==, 0); /* default: one worker per CPU, forkserver */
    CHECK_INT(cipc_pool_workers(p), ==, sysconf(_SC_NPROCESSORS_ONLN));
    CHECK_INT(cipc_pool_start_method(p), ==, CIPC_POOL_FORKSERVER);
    cipc_pool_free(p);
}

static void test_map_order(void)
{
    cipc_pool *p = NULL;
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.start_method = g_method, .workers = 3}, &p), ==, 0);
    enum { N = 20000 };
    static int64_t in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = i - 100;
    size_t chunks[] = {0, 1, 7, 333, N, 10 * N};
    for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
        size_t n = chunks[c] == 1 ? 2000 : N; /* chunksize 1: fewer items, same checks */
        memset(out, 0x55, sizeof out);
        CHECK_INT(cipc_pool_map(p, square, NULL, in, n, 8, out, 8, chunks[c], NULL), ==, 0);
        for (size_t i = 0; i < n; i++)
            CHECK_INT(out[i], ==, in[i] * in[i]);
    }
    /* n = 0, 1, fewer items than workers. */
    int64_t one = 9, r = 0, two[2] = {3, 4}, rtwo[2] = {0};
    CHECK_INT(cipc_pool_map(p, square, NULL, NULL, 0, 8, NULL, 8, 0, NULL), ==, 0);
    CHECK_INT(cipc_pool_map(p, square, NULL, &one, 1, 8, &r, 8, 0, NULL), ==, 0);
    CHECK_INT(r, ==, 81);
    CHECK_INT(cipc_pool_map(p, square, NULL, two, 2, 8, rtwo, 8, 5, NULL), ==, 0);
    CHECK_INT(rtwo[0], ==, 9);
    CHECK_INT(rtwo[1], ==, 16);
    CHECK_INT(cipc_pool_map(p, NULL, NULL, two, 2, 8, rtwo, 8, 0, NULL), ==, -EINVAL);
    CHECK_INT(cipc_pool_map(p, square, NULL, two, 2, 0, rtwo, 8, 0, NULL), ==, -EINVAL);
    CHECK_INT(cipc_pool_map(p, square, NULL, NULL, 2, 8, rtwo, 8, 0, NULL), ==, -EINVAL);
    CHECK_INT(cipc_pool_map(p, square, NULL, two, 2, 8, rtwo, 1u << 21, 0, NULL), ==, -EINVAL);
    CHECK_INT(cipc_pool_join(p, -1), ==, -EINVAL); /* not closed */
    cipc_pool_close(p);
    CHECK_INT(cipc_pool_map(p, square, NULL, two, 2, 8, rtwo, 8, 0, NULL), ==, CIPC_ECLOSING);
    CHECK_INT(cipc_pool_join(p, 10000), ==, 0);
    CHECK_INT(cipc_pool_join(p, 0), ==, 0);
    cipc_pool_free(p);
}

static void test_map_errors(void)
{
    cipc_pool *p = NULL;
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.start_method = g_method, .workers = 2}, &p), ==, 0);
    static const int add = 1000; /* ud: must hold its value when the workers are forked */
    int in[100], out[100], errs[100];
    for (int i = 0; i < 100; i++)
        in[i] = i;
    CHECK_INT(cipc_pool_map(p, picky, (void *)&add, in, 100, sizeof(int), out, sizeof(int), 3, errs), ==,
              15); /* 0, 7, ..., 98 */
    for (int i = 0; i < 100; i++) {
        CHECK_INT(errs[i], ==, i % 7 == 0 ? -EDOM : 0);
        CHECK_INT(out[i], ==, i % 7 == 0 ? 0 : i + 1000);
    }
    cipc_pool_free(p); /* without close/join: terminates */
}

static void test_crash(void)
{
    for (int how = 0; how < 3; how++) {
        cipc_pool *p = NULL;
        CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.start_method = g_method, .workers = 2}, &p), ==, 0);
        int in[40], out[40], errs[40];
        for (int i = 0; i < 40; i++)
            in[i] = i;
        /* chunksize 1: only item 5 is lost with its worker; chunksize 4: its chunk 4..7. */
        CHECK_INT(cipc_pool_map(p, crashy, &how, in, 40, sizeof(int), out, sizeof(int), 1, errs),
                  ==, 1);
        for (int i = 0; i < 40; i++) {
            CHECK_INT(errs[i], ==, i == 5 ? CIPC_EWORKER : 0);
            CHECK_INT(out[i], ==, i == 5 ? 0 : -i);
        }
        CHECK_INT(cipc_pool_map(p, crashy, &how, in, 40, sizeof(int), out, sizeof(int), 4, errs),
                  ==, 4);
        for (int i = 0; i < 40; i++)
            CHECK_INT(errs[i], ==, i >= 4 && i < 8 ? CIPC_EWORKER : 0);
        /* The pool still has its workers. */
        in[5] = 6;
        CHECK_INT(cipc_pool_map(p, crashy, &how, in, 40, sizeof(int), out, sizeof(int), 0, errs),
                  ==, 0);
        cipc_pool_close(p);
        CHECK_INT(cipc_pool_join(p, 10000), ==, 0);
        cipc_pool_free(p);
    }
}

static void test_timeout(void)
{
    cipc_pool *p = NULL;
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.start_method = g_method, .workers = 2, .task_timeout_ms = 300}, &p), ==, 0);
    int in[8], out[8], errs[8];
    for (int i = 0; i < 8; i++)
        in[i] = i;
    long t0 = mono_ms();
    CHECK_INT(cipc_pool_map(p, sleepy, NULL, in, 8, sizeof(int), out, sizeof(int), 1, errs), ==,
              1);
    long took = mono_ms() - t0;
    CHECK_INT(took, >=, 250);
    CHECK_INT(took, <, 5000);
    for (int i = 0; i < 8; i++) {
        CHECK_INT(errs[i], ==, i == 2 ? CIPC_ETIMEOUT : 0);
        CHECK_INT(out[i], ==, i == 2 ? 0 : i);
    }
    cipc_pool_free(p);
}

static void test_init_and_max_tasks(void)
{
    cipc_pool *p = NULL;
    int seed = 4242;
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.start_method = g_method, .workers = 2, .initializer = init_worker,
                                              .initarg = &seed, .max_tasks_per_child = 1},
                            &p),
              ==, 0);
    int in[20] = {0}, out[20], pids[20];
    CHECK_INT(cipc_pool_map(p, report_init, NULL, in, 20, sizeof(int), out, sizeof(int), 1, NULL),
              ==, 0);
    for (int i = 0; i < 20; i++)
        CHECK_INT(out[i], ==, 4242);
    CHECK_INT(cipc_pool_map(p, report_pid, NULL, in, 20, sizeof(int), pids, sizeof(int), 1, NULL),
              ==, 0);
    for (int i = 0; i < 20; i++) /* one task per worker: every pid differs */
        for (int k = 0; k < i; k++)
            CHECK_INT(pids[i], !=, pids[k]);
    cipc_pool_close(p);
    CHECK_INT(cipc_pool_join(p, 10000), ==, 0);
    cipc_pool_free(p);
}

static void test_map_bytes(void)
{
    cipc_pool *p = NULL;
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.start_method = g_method, .workers = 3, .max_msg = 4096}, &p), ==, 0);
    enum { N = 300 };
    static char bufs[N][1300];
    struct iovec in[N], out[N];
    int errs[N];
    for (int i = 0; i < N; i++) {
        size_t len = (size_t)(i * 37) % 1300;
        for (size_t k = 0; k < len; k++)
            bufs[i][k] = (char)('a' + (i + k) % 26);
        if (i == 10)
            bufs[i][0] = '!';
        in[i] = (struct iovec){bufs[i], len};
    }
    in[11] = (struct iovec){bufs[11], 0};
    static char big[5000];
    in[12] = (struct iovec){big, sizeof big}; /* larger than a message */
    int failed = cipc_pool_map_bytes(p, shout_twice, NULL, in, N, 0, out, errs);
    int expect_failed = 0;
    for (int i = 0; i < N; i++) {
        if (i == 10) {
            CHECK_INT(errs[i], ==, -EBADMSG);
        } else if (i == 12) {
            CHECK_INT(errs[i], ==, CIPC_ETOOBIG);
        } else {
            CHECK_INT(errs[i], ==, 0);
        }
        if (errs[i]) {
            expect_failed++;
            CHECK(out[i].iov_base == NULL);
            continue;
        }
        CHECK_INT(out[i].iov_len, ==, 2 * in[i].iov_len);
        for (size_t k = 0; k < out[i].iov_len; k++) {
            char c = ((char *)in[i].iov_base)[k % in[i].iov_len];
            CHECK_INT(((char *)out[i].iov_base)[k], ==, c - 32);
        }
        free(out[i].iov_base);
    }
    CHECK_INT(failed, ==, expect_failed);
    /* chunksize 1: every result that fits its own message is returned. */
    CHECK_INT(cipc_pool_map_bytes(p, shout_twice, NULL, in + 13, 50, 1, out, errs), ==, 0);
    for (int i = 0; i < 50; i++)
        free(out[i].iov_base);
    CHECK_INT(cipc_pool_map_bytes(p, shout_twice, NULL, in, 0, 0, out, errs), ==, 0);
    cipc_pool_free(p);
}

static int g_cb_calls, g_cb_last_rc;
static void on_done(int rc, const void *data, size_t len, void *ud)
{
    g_cb_calls++;
    g_cb_last_rc = rc;
    if (rc == 0)
        CHECK_MEM(data, len, (const char *)ud);
}

static void test_apply_async(void)
{
    g_cb_calls = 0;
    cipc_pool *p = NULL;
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.start_method = g_method, .workers = 2}, &p), ==, 0);
    cipc_future *f = NULL;
    CHECK_INT(cipc_pool_apply_async(p, shout_twice, NULL, "ab", 2, on_done, "ABAB", &f), ==, 0);
    CHECK_INT(cipc_future_wait(f, 10000), ==, 0);
    CHECK(cipc_future_done(f));
    const void *data;
    size_t len;
    CHECK_INT(cipc_future_result(f, &data, &len), ==, 0);
    CHECK_MEM(data, len, "ABAB");
    CHECK_INT(g_cb_calls, ==, 1);
    cipc_future_free(f);

    /* A slow task: wait with a short timeout first. */
    CHECK_INT(cipc_pool_apply_async(p, shout_twice, NULL, "sleep", 5, NULL, NULL, &f), ==, 0);
    CHECK_INT(cipc_future_wait(f, 0), ==, CIPC_ETIMEOUT);
    CHECK_INT(cipc_future_result(f, NULL, NULL), ==, CIPC_EAGAIN);
    long t0 = mono_ms();
    CHECK_INT(cipc_future_wait(f, 50), ==, CIPC_ETIMEOUT);
    CHECK_INT(mono_ms() - t0, <, 1000);
    CHECK_INT(cipc_future_wait(f, -1), ==, 0);
    CHECK_INT(cipc_future_result(f, &data, &len), ==, 0);
    CHECK_MEM(data, len, "SLEEPSLEEP");
    cipc_future_free(f);

    /* Errors, a crash, callbacks without futures, a future freed before it completes. */
    cipc_future *e = NULL, *c = NULL, *z = NULL;
    CHECK_INT(cipc_pool_apply_async(p, shout_twice, NULL, "!x", 2, NULL, NULL, &e), ==, 0);
    CHECK_INT(cipc_pool_apply_async(p, shout_twice, NULL, "crash", 5, NULL, NULL, &c), ==, 0);
    CHECK_INT(cipc_pool_apply_async(p, shout_twice, NULL, NULL, 0, NULL, NULL, &z), ==, 0);
    g_cb_calls = 0;
    for (int i = 0; i < 50; i++)
        CHECK_INT(cipc_pool_apply_async(p, shout_twice, NULL, "q", 1, on_done, "QQ", NULL), ==, 0);
    cipc_future *dropped = NULL;
    CHECK_INT(cipc_pool_apply_async(p, shout_twice, NULL, "sleep", 5, NULL, NULL, &dropped), ==,
              0);
    cipc_future_free(dropped);
    CHECK_INT(cipc_future_wait(e, -1), ==, 0);
    CHECK_INT(cipc_future_result(e, NULL, NULL), ==, -EBADMSG);
    CHECK_INT(cipc_future_wait(c, -1), ==, 0);
    CHECK_INT(cipc_future_result(c, &data, &len), ==, CIPC_EWORKER);
    CHECK(data == NULL);
    CHECK_INT(len, ==, 0);
    CHECK_INT(cipc_future_wait(z, -1), ==, 0);
    CHECK_INT(cipc_future_result(z, &data, &len), ==, 0);
    CHECK_INT(len, ==, 0);
    cipc_future_free(e);
    cipc_future_free(c);
    cipc_future_free(z);
    CHECK_INT(cipc_pool_apply_async(p, NULL, NULL, "x", 1, NULL, NULL, &f), ==, -EINVAL);
    static char huge[2u << 20];
    CHECK_INT(cipc_pool_apply_async(p, shout_twice, NULL, huge, sizeof huge, NULL, NULL, &f), ==,
              CIPC_ETOOBIG);
    cipc_pool_close(p);
    CHECK_INT(cipc_pool_apply_async(p, shout_twice, NULL, "x", 1, NULL, NULL, &f), ==,
              CIPC_ECLOSING);
    CHECK_INT(cipc_pool_join(p, 10000), ==, 0); /* runs the rest, callbacks included */
    CHECK_INT(g_cb_calls, ==, 50);
    cipc_pool_free(p);
}

static void test_terminate(void)
{
    cipc_pool *p = NULL;
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.start_method = g_method, .workers = 2}, &p), ==, 0);
    cipc_future *f[6];
    g_cb_calls = 0;
    for (int i = 0; i < 6; i++)
        CHECK_INT(cipc_pool_apply_async(p, shout_twice, NULL, "sleep", 5, on_done, "SLEEPSLEEP",
                                        &f[i]),
                  ==, 0);
    long t0 = mono_ms();
    cipc_pool_terminate(p);
    CHECK_INT(mono_ms() - t0, <, 1000);
    CHECK_INT(g_cb_calls, ==, 6);
    for (int i = 0; i < 6; i++) {
        CHECK(cipc_future_done(f[i]));
        CHECK_INT(cipc_future_result(f[i], NULL, NULL), ==, CIPC_ECANCELED);
    }
    CHECK_INT(cipc_pool_join(p, 0), ==, 0);
    cipc_pool_free(p);
    CHECK_INT(cipc_future_wait(f[0], -1), ==, 0); /* futures outlive the pool */
    for (int i = 0; i < 6; i++)
        cipc_future_free(f[i]);
    cipc_pool_free(NULL);
    cipc_future_free(NULL);
}


/* Sleeps (n % 4) * 20 ms, so later items often finish first. */
static int staggered(const void *in, void *out, void *ud)
{
    (void)ud;
    int n = *(const int *)in;
    usleep((useconds_t)(n % 4) * 20000);
    if (n == 13)
        return -ERANGE;
    *(int *)out = n * 10;
    return 0;
}

static void test_imap(void)
{
    cipc_pool *p = NULL;
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.start_method = g_method, .workers = 3}, &p), ==, 0);
    int in[40];
    for (int i = 0; i < 40; i++)
        in[i] = i;
    for (int unordered = 0; unordered < 2; unordered++) {
        cipc_pool_iter *it = NULL;
        CHECK_INT(cipc_pool_imap(p, staggered, NULL, in, 40, sizeof(int), sizeof(int), 0,
                                 unordered ? CIPC_POOL_UNORDERED : 0, &it),
                  ==, 0);
        /* The first result is available long before the whole map is done (~0.6 s). */
        long t0 = mono_ms();
        cipc_pool_item item;
        CHECK_INT(cipc_pool_iter_next(it, 10000, &item), ==, 1);
        CHECK_INT(mono_ms() - t0, <, 400);
        char seen[40] = {0};
        int count = 0, out_of_order = 0;
        size_t last = 0;
        do {
            CHECK(item.index < 40);
            CHECK(!seen[item.index]);
            seen[item.index] = 1;
            if (!unordered)
                CHECK_INT(item.index, ==, (size_t)count);
            else if (count && item.index < last)
                out_of_order = 1;
            last = item.index;
            CHECK_INT(item.len, ==, sizeof(int));
            int v;
            memcpy(&v, item.data, sizeof v);
            if (item.index == 13) {
                CHECK_INT(item.rc, ==, -ERANGE);
                CHECK_INT(v, ==, 0);
            } else {
                CHECK_INT(item.rc, ==, 0);
                CHECK_INT(v, ==, (int)item.index * 10);
            }
            count++;
        } while (cipc_pool_iter_next(it, 10000, &item) == 1);
        CHECK_INT(count, ==, 40);
        if (unordered) /* 40 items with 4 different delays on 3 workers */
            CHECK(out_of_order);
        CHECK_INT(cipc_pool_iter_next(it, 0, &item), ==, 0);
        cipc_pool_iter_free(it);
    }
    /* Timeouts, n = 0, bad arguments. */
    cipc_pool_iter *it = NULL;
    int slow = 3;
    CHECK_INT(cipc_pool_imap(p, staggered, NULL, &slow, 1, sizeof(int), sizeof(int), 0, 0, &it),
              ==, 0);
    cipc_pool_item item;
    CHECK_INT(cipc_pool_iter_next(it, 0, &item), ==, CIPC_ETIMEOUT);
    CHECK_INT(cipc_pool_iter_next(it, 5, &item), ==, CIPC_ETIMEOUT);
    CHECK_INT(cipc_pool_iter_next(it, -1, &item), ==, 1);
    CHECK_INT(cipc_pool_iter_next(it, -1, &item), ==, 0);
    cipc_pool_iter_free(it);
    CHECK_INT(cipc_pool_imap(p, staggered, NULL, NULL, 0, sizeof(int), sizeof(int), 0, 0, &it), ==,
              0);
    CHECK_INT(cipc_pool_iter_next(it, 0, &item), ==, 0);
    cipc_pool_iter_free(it);
    CHECK_INT(cipc_pool_imap(p, staggered, NULL, in, 4, sizeof(int), sizeof(int), 0, 8, &it), ==,
              -EINVAL);
    CHECK_INT(cipc_pool_imap(p, NULL, NULL, in, 4, sizeof(int), sizeof(int), 0, 0, &it), ==,
              -EINVAL);
    CHECK_INT(cipc_pool_iter_next(NULL, 0, &item), ==, -EINVAL);
    cipc_pool_iter_free(NULL);

    /* Freed early: items not started are dropped, the inputs may go at once, and the pool
     * goes on with other work. A million items at chunk size 1 are cut lazily. */
    enum { BIG = 1000000 };
    int *big = malloc(BIG * sizeof *big);
    CHECK(big != NULL);
    for (int i = 0; i < BIG; i++)
        big[i] = 4 * i; /* no delay */
    long t0 = mono_ms();
    CHECK_INT(cipc_pool_imap(p, staggered, NULL, big, BIG, sizeof(int), sizeof(int), 0, 0, &it),
              ==, 0);
    for (int i = 0; i < 1000; i++) {
        CHECK_INT(cipc_pool_iter_next(it, 10000, &item), ==, 1);
        CHECK_INT(item.index, ==, (size_t)i);
    }
    cipc_pool_iter_free(it);
    memset(big, 0xff, BIG * sizeof *big); /* not read any more */
    free(big);
    int two[2] = {1, 2}, rtwo[2];
    CHECK_INT(cipc_pool_map(p, staggered, NULL, two, 2, sizeof(int), rtwo, sizeof(int), 0, NULL),
              ==, 0);
    CHECK_INT(rtwo[1], ==, 20);
    CHECK_INT(mono_ms() - t0, <, 20000);
    cipc_pool_close(p);
    CHECK_INT(cipc_pool_imap(p, staggered, NULL, in, 4, sizeof(int), sizeof(int), 0, 0, &it), ==,
              CIPC_ECLOSING);
    CHECK_INT(cipc_pool_join(p, 10000), ==, 0);
    cipc_pool_free(p);
}

static void test_imap_bytes(void)
{
    cipc_pool *p = NULL;
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.start_method = g_method, .workers = 2}, &p), ==, 0);
    const char *words[] = {"ab", "!bad", "", "crash", "xyz", "q"};
    enum { N = 6 };
    struct iovec in[N];
    for (int i = 0; i < N; i++)
        in[i] = (struct iovec){(void *)words[i], strlen(words[i])};
    for (int unordered = 0; unordered < 2; unordered++) {
        cipc_pool_iter *it = NULL;
        CHECK_INT(cipc_pool_imap_bytes(p, shout_twice, NULL, in, N, 0,
                                       unordered ? CIPC_POOL_UNORDERED : 0, &it),
                  ==, 0);
        cipc_pool_item item;
        int count = 0;
        while (cipc_pool_iter_next(it, 10000, &item) == 1) {
            if (!unordered)
                CHECK_INT(item.index, ==, (size_t)count);
            count++;
            switch (item.index) {
            case 0: CHECK_MEM(item.data, item.len, "ABAB"); break;
            case 1: CHECK_INT(item.rc, ==, -EBADMSG); CHECK(item.data == NULL); break;
            case 2: CHECK_INT(item.rc, ==, 0); CHECK_INT(item.len, ==, 0); break;
            case 3: CHECK_INT(item.rc, ==, CIPC_EWORKER); break;
            case 4: CHECK_MEM(item.data, item.len, "XYZXYZ"); break;
            case 5: CHECK_MEM(item.data, item.len, "QQ"); break;
            }
        }
        CHECK_INT(count, ==, N);
        cipc_pool_iter_free(it);
    }
    /* Freed with results unread and tasks running. */
    cipc_pool_iter *it = NULL;
    struct iovec sl[3] = {{(void *)"sleep", 5}, {(void *)"sleep", 5}, {(void *)"sleep", 5}};
    CHECK_INT(cipc_pool_imap_bytes(p, shout_twice, NULL, sl, 3, 0, 0, &it), ==, 0);
    cipc_pool_item item;
    CHECK_INT(cipc_pool_iter_next(it, 0, &item), ==, CIPC_ETIMEOUT);
    cipc_pool_iter_free(it);
    cipc_pool_close(p);
    CHECK_INT(cipc_pool_join(p, 10000), ==, 0);
    cipc_pool_free(p);
}

/* The forkserver's point. A thread of the program holds g_lock while a worker is
 * replaced: a worker forked from the program then (CIPC_POOL_FORK) starts with the lock
 * held by a thread it does not have, and a task that takes it never gets it; a worker
 * forked by the forkserver (made before the thread existed) takes it at once. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t g_gate = PTHREAD_MUTEX_INITIALIZER;

static int take_lock(const void *in, void *out, void *ud)
{
    (void)ud;
    if (*(const int *)in == 1)
        abort(); /* the worker is replaced while the other thread holds g_lock */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 300 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    int rc = pthread_mutex_timedlock(&g_lock, &ts);
    if (rc != 0)
        return -rc;
    pthread_mutex_unlock(&g_lock);
    *(int *)out = 1;
    return 0;
}

static void *hold_lock(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g_lock);
    pthread_mutex_lock(&g_gate); /* until the test releases the gate */
    pthread_mutex_unlock(&g_gate);
    pthread_mutex_unlock(&g_lock);
    return NULL;
}

static void test_threads_and_forkserver(void)
{
    for (int m = CIPC_POOL_FORKSERVER; m <= CIPC_POOL_FORK; m++) {
        cipc_pool *p = NULL;
        CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.start_method = m, .workers = 1}, &p), ==, 0);
        pthread_mutex_lock(&g_gate);
        pthread_t th;
        CHECK_INT(pthread_create(&th, NULL, hold_lock, NULL), ==, 0);
        long t0 = mono_ms();
        while (pthread_mutex_trylock(&g_lock) == 0) { /* until the thread holds it */
            pthread_mutex_unlock(&g_lock);
            CHECK_INT(mono_ms() - t0, <, 10000);
            usleep(1000);
        }
        int in[3] = {0, 1, 2}, out[3], errs[3];
        /* Item 0 runs in the first worker (forked before the thread); item 1 kills it; item
         * 2 runs in its replacement. */
        int failed = cipc_pool_map(p, take_lock, NULL, in, 3, sizeof(int), out, sizeof(int), 1,
                                   errs);
        pthread_mutex_unlock(&g_gate);
        pthread_join(th, NULL);
        CHECK_INT(errs[1], ==, CIPC_EWORKER);
        if (m == CIPC_POOL_FORKSERVER) {
            CHECK_INT(failed, ==, 1);
            CHECK_INT(errs[0], ==, 0);
            CHECK_INT(errs[2], ==, 0);
        } else {
            CHECK_INT(failed, ==, 2); /* the trap: the replacement cannot take the lock */
            CHECK_INT(errs[2], ==, -ETIMEDOUT);
        }
        cipc_pool_free(p);
    }
}

static int report_ppid(const void *in, void *out, void *ud)
{
    (void)in;
    (void)ud;
    *(int *)out = (int)getppid();
    return 0;
}

/* The forkserver is killed: workers that die can no longer be replaced, and once none is
 * left the remaining items fail with an error instead of hanging. */
static void test_forkserver_killed(void)
{
    cipc_pool *p = NULL;
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.start_method = CIPC_POOL_FORKSERVER, .workers = 2},
                            &p),
              ==, 0);
    int zero[2] = {0}, ppid[2];
    CHECK_INT(cipc_pool_map(p, report_ppid, NULL, zero, 2, sizeof(int), ppid, sizeof(int), 1,
                            NULL),
              ==, 0);
    CHECK_INT(ppid[0], !=, getpid());
    CHECK_INT(kill(ppid[0], SIGKILL), ==, 0);
    int how = 0, in[20], out[20], errs[20];
    for (int i = 0; i < 20; i++)
        in[i] = 5; /* every item aborts its worker */
    long t0 = mono_ms();
    CHECK_INT(cipc_pool_map(p, crashy, &how, in, 20, sizeof(int), out, sizeof(int), 1, errs), ==,
              20);
    CHECK_INT(mono_ms() - t0, <, 10000);
    for (int i = 0; i < 20; i++)
        CHECK_INT(errs[i], <, 0);
    cipc_pool_free(p);
}

int main(void)
{
    for (g_method = CIPC_POOL_FORKSERVER; g_method <= CIPC_POOL_FORK; g_method++) {
        test_chunksize();
        test_map_order();
        test_map_errors();
        test_crash();
        test_timeout();
        test_init_and_max_tasks();
        test_map_bytes();
        test_apply_async();
        test_terminate();
        test_imap();
        test_imap_bytes();
    }
    test_threads_and_forkserver();
    test_forkserver_killed();
    puts("test_pool: ok");
    return 0;
}
