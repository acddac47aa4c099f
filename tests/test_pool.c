/* tests/test_pool.c -- cipc_pool: results in input order, Python's chunk sizes and the
 * chunking edge cases, per-item errors, variable-size items, apply_async futures and
 * callbacks, worker crashes (abort, _exit, SIGSEGV) and task timeouts, initializer,
 * max_tasks_per_child, close / join / terminate. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cipc/pool.h"

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
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.workers = 4}, &p), ==, 0);
    CHECK_INT(cipc_pool_workers(p), ==, 4);
    CHECK_INT(cipc_pool_chunksize(p, 0), ==, 1);
    CHECK_INT(cipc_pool_chunksize(p, 1), ==, 1);
    CHECK_INT(cipc_pool_chunksize(p, 16), ==, 1);
    CHECK_INT(cipc_pool_chunksize(p, 17), ==, 2);
    CHECK_INT(cipc_pool_chunksize(p, 5), ==, 1);
    CHECK_INT(cipc_pool_chunksize(p, 1000000), ==, 62500);
    CHECK_INT(cipc_pool_chunksize(p, 1000001), ==, 62501);
    cipc_pool_free(p);
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.workers = -1}, &p), ==, -EINVAL);
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.start_method = 7}, &p), ==, -EINVAL);
    CHECK_INT(cipc_pool_new(NULL, &p), ==, 0); /* default: one worker per CPU */
    CHECK_INT(cipc_pool_workers(p), ==, sysconf(_SC_NPROCESSORS_ONLN));
    cipc_pool_free(p);
}

static void test_map_order(void)
{
    cipc_pool *p = NULL;
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.workers = 3}, &p), ==, 0);
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
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.workers = 2}, &p), ==, 0);
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
        CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.workers = 2}, &p), ==, 0);
        int in[40], out[40], errs[40];
        for (int i = 0; i < 40; i++)
            in[i] = i;
        /* chunksize 1: only item 5 is lost with its worker; chunksize 4: its chunk 4..7. */
        CHECK_INT(cipc_pool_map(p, crashy, &how, in, 40, sizeof(int), out, sizeof(int), 1, errs),
                  ==, 1);
        for (int i = 0; i < 40; i++) {
            CHECK_INT(errs[i], ==, i == 5 ? CIPC_EABORTED : 0);
            CHECK_INT(out[i], ==, i == 5 ? 0 : -i);
        }
        CHECK_INT(cipc_pool_map(p, crashy, &how, in, 40, sizeof(int), out, sizeof(int), 4, errs),
                  ==, 4);
        for (int i = 0; i < 40; i++)
            CHECK_INT(errs[i], ==, i >= 4 && i < 8 ? CIPC_EABORTED : 0);
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
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.workers = 2, .task_timeout_ms = 300}, &p), ==, 0);
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
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.workers = 2, .initializer = init_worker,
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
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.workers = 3, .max_msg = 4096}, &p), ==, 0);
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
    cipc_pool *p = NULL;
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.workers = 2}, &p), ==, 0);
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
    CHECK_INT(cipc_future_result(c, &data, &len), ==, CIPC_EABORTED);
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
    CHECK_INT(cipc_pool_new(&(cipc_pool_opts){.workers = 2}, &p), ==, 0);
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

int main(void)
{
    test_chunksize();
    test_map_order();
    test_map_errors();
    test_crash();
    test_timeout();
    test_init_and_max_tasks();
    test_map_bytes();
    test_apply_async();
    test_terminate();
    puts("test_pool: ok");
    return 0;
}
