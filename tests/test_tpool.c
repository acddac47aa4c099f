/* test_tpool -- cipc_tpool: map order and per-item errors for every shape of input, submit /
 * wait / result, callbacks exactly once, wait timeouts, cancel (one task, all pending),
 * a full queue, 4 threads x 10,000 concurrent submits, close / join / free with pending
 * tasks, initializer and finalizer once per thread, calls from inside tasks (submit, wait,
 * map, join, free), real I/O concurrency, and bad input. Waits are on conditions with
 * deadlines, never on sleeps. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cipc/time.h"
#include "cipc/tpool.h"

#define LONG_MS 10000 /* how long a test waits for something that should happen at once */

/* Wait until *v >= want (checking every millisecond), at most `ms`. Returns 1 if it got
 * there, 0 on timeout. */
static int wait_ge(atomic_int *v, int want, long ms)
{
    cipc_deadline d = cipc_deadline_in(ms);
    while (atomic_load(v) < want) {
        if (cipc_deadline_expired(d))
            return 0;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return 1;
}

static cipc_tpool *new_pool(int threads)
{
    cipc_tpool *tp = NULL;
    CHECK_INT(cipc_tpool_new(
                  &(cipc_tpool_opts){.size = sizeof(cipc_tpool_opts), .threads = threads}, &tp),
              ==, 0);
    CHECK(tp != NULL);
    CHECK_INT(cipc_tpool_threads(tp), ==, threads);
    return tp;
}

/* --- map ------------------------------------------------------------------------------- */

static int square_plus(const void *in, void *out, void *ud)
{
    long v = *(const long *)in;
    *(long *)out = v * v + *(const long *)ud;
    return 0;
}

static void check_map(cipc_tpool *tp, size_t n, size_t chunksize)
{
    long *in = calloc(n ? n : 1, sizeof *in);
    long *out = calloc(n ? n : 1, sizeof *out);
    int *errs = calloc(n ? n : 1, sizeof *errs);
    CHECK(in && out && errs);
    for (size_t i = 0; i < n; i++) {
        in[i] = (long)i - 7;
        out[i] = -1;
        errs[i] = 99;
    }
    long add = 3;
    CHECK_INT(cipc_tpool_map(tp, square_plus, &add, in, n, sizeof(long), out, sizeof(long),
                             chunksize, errs),
              ==, 0);
    for (size_t i = 0; i < n; i++) {
        CHECK_INT(out[i], ==, in[i] * in[i] + 3);
        CHECK_INT(errs[i], ==, 0);
    }
    free(in);
    free(out);
    free(errs);
}

static void test_map(void)
{
    cipc_tpool *tp = new_pool(4);
    long add = 0;
    /* n == 0: nothing to do, NULL buffers allowed. */
    CHECK_INT(
        cipc_tpool_map(tp, square_plus, &add, NULL, 0, sizeof(long), NULL, sizeof(long), 0, NULL),
        ==, 0);
    size_t sizes[] = {0, 1, 3, 4, 5, 17, 1000, 100000};
    size_t chunks[] = {0, 1, 2, 7, 1000, 1000000};
    /* Every size with every chunk size (but not 100000 one-item chunks: slow under
     * valgrind); chunk sizes over n make one chunk. */
    for (size_t a = 0; a < sizeof sizes / sizeof sizes[0]; a++)
        for (size_t b = 0; b < sizeof chunks / sizeof chunks[0]; b++)
            if (sizes[a] <= 1000 || chunks[b] != 1)
                check_map(tp, sizes[a], chunks[b]);
    /* Python's automatic chunk size: ceil(n / (threads * 4)), at least 1. */
    CHECK_INT(cipc_tpool_chunksize(tp, 0), ==, 1);
    CHECK_INT(cipc_tpool_chunksize(tp, 16), ==, 1);
    CHECK_INT(cipc_tpool_chunksize(tp, 17), ==, 2);
    CHECK_INT(cipc_tpool_chunksize(tp, 1600), ==, 100);
    CHECK_INT(cipc_tpool_chunksize(tp, 1601), ==, 101);
    cipc_tpool_free(tp);
}

/* Odd items fail with -EIO after scribbling on their output; multiples of 10 return a
 * positive code, which counts as a failure too (as in cipc_pool_map()). */
static int odd_fails(const void *in, void *out, void *ud)
{
    int v = *(const int *)in;
    memset(out, 0xAB, 3);
    if (v % 2)
        return -EIO;
    if (v % 10 == 0)
        return 5;
    memcpy(out, "ok", 3);
    return 0;
}

static void test_map_errors(void)
{
    cipc_tpool *tp = new_pool(3);
    enum { N = 101 };
    int in[N], errs[N];
    char out[N][3];
    for (int i = 0; i < N; i++)
        in[i] = i;
    int want_failed = 0;
    for (int i = 0; i < N; i++)
        want_failed += (i % 2) || (i % 10 == 0);
    for (size_t cs = 0; cs <= 4; cs++) {
        memset(errs, 0x55, sizeof errs);
        memset(out, 0x55, sizeof out);
        CHECK_INT(cipc_tpool_map(tp, odd_fails, NULL, in, N, sizeof(int), out, 3, cs, errs), ==,
                  want_failed);
        for (int i = 0; i < N; i++) {
            if (i % 2) {
                CHECK_INT(errs[i], ==, -EIO);
                CHECK(out[i][0] == 0 && out[i][1] == 0 && out[i][2] == 0); /* zeroed again */
            } else if (i % 10 == 0) {
                CHECK_INT(errs[i], ==, 5);
                CHECK(out[i][0] == 0 && out[i][1] == 0 && out[i][2] == 0);
            } else {
                CHECK_INT(errs[i], ==, 0);
                CHECK_STR(out[i], "ok");
            }
        }
    }
    /* errs may be NULL. */
    CHECK_INT(cipc_tpool_map(tp, odd_fails, NULL, in, N, sizeof(int), out, 3, 0, NULL), ==,
              want_failed);
    cipc_tpool_free(tp);
}

/* --- submit, wait, result, callbacks --------------------------------------------------- */

struct job {
    int in;
    int out;
    atomic_int cb_calls;
    int cb_rc;
};

static atomic_int g_cb_total;
static atomic_int g_fn_total;

static int double_it(void *arg)
{
    struct job *j = arg;
    atomic_fetch_add(&g_fn_total, 1);
    j->out = j->in * 2;
    return j->in % 3 == 0 ? -j->in - 1 : 0; /* some tasks fail, with distinct codes */
}

static void count_cb(int rc, void *arg, void *cb_ud)
{
    struct job *j = arg;
    CHECK(cb_ud == (void *)&g_cb_total);
    j->cb_rc = rc;
    atomic_fetch_add(&j->cb_calls, 1);
    atomic_fetch_add(&g_cb_total, 1);
}

static int want_rc(int in)
{
    return in % 3 == 0 ? -in - 1 : 0;
}

static void test_submit(void)
{
    cipc_tpool *tp = new_pool(4);
    enum { N = 1000 };
    static struct job jobs[N];
    cipc_tfuture *f[N];
    atomic_store(&g_cb_total, 0);
    for (int i = 0; i < N; i++) {
        jobs[i].in = i;
        jobs[i].out = -1;
        atomic_store(&jobs[i].cb_calls, 0);
        CHECK_INT(cipc_tpool_submit(tp, double_it, &jobs[i], count_cb, &g_cb_total, &f[i]), ==, 0);
    }
    for (int i = N - 1; i >= 0; i--) { /* any order */
        CHECK_INT(cipc_tfuture_wait(f[i], -1), ==, 0);
        CHECK_INT(cipc_tfuture_done(f[i]), ==, 1);
        CHECK_INT(cipc_tfuture_result(f[i]), ==, want_rc(i));
        CHECK_INT(jobs[i].out, ==, 2 * i);
        /* The callback has returned before wait does. */
        CHECK_INT(atomic_load(&jobs[i].cb_calls), ==, 1);
        CHECK_INT(jobs[i].cb_rc, ==, want_rc(i));
        CHECK_INT(cipc_tfuture_wait(f[i], 0), ==, 0); /* done stays done */
        CHECK_INT(cipc_tfuture_cancel(f[i]), ==, CIPC_EBUSY);
        cipc_tfuture_free(f[i]);
    }
    CHECK_INT(atomic_load(&g_cb_total), ==, N);

    /* Fire and forget: no future, the callback still runs exactly once; a future freed
     * before its task ran is fine too. */
    atomic_store(&g_cb_total, 0);
    for (int i = 0; i < N; i++) {
        atomic_store(&jobs[i].cb_calls, 0);
        if (i % 2) {
            CHECK_INT(cipc_tpool_submit(tp, double_it, &jobs[i], count_cb, &g_cb_total, NULL), ==,
                      0);
        } else {
            cipc_tfuture *tmp = NULL;
            CHECK_INT(cipc_tpool_submit(tp, double_it, &jobs[i], count_cb, &g_cb_total, &tmp), ==,
                      0);
            cipc_tfuture_free(tmp);
        }
    }
    cipc_tpool_close(tp);
    CHECK_INT(cipc_tpool_join(tp, -1), ==, 0);
    CHECK_INT(atomic_load(&g_cb_total), ==, N);
    for (int i = 0; i < N; i++)
        CHECK_INT(atomic_load(&jobs[i].cb_calls), ==, 1);
    cipc_tpool_free(tp);

    /* No callback at all. */
    tp = new_pool(1);
    struct job j = {.in = 4};
    cipc_tfuture *one = NULL;
    CHECK_INT(cipc_tpool_submit(tp, double_it, &j, NULL, NULL, &one), ==, 0);
    CHECK_INT(cipc_tfuture_wait(one, LONG_MS), ==, 0);
    CHECK_INT(cipc_tfuture_result(one), ==, 0);
    CHECK_INT(j.out, ==, 8);
    cipc_tfuture_free(one);
    cipc_tpool_free(tp);
}

/* A task that raises `started`, then blocks until `gate` is opened (at most LONG_MS):
 * returns 7, or -ETIMEDOUT if nobody opened it. */
struct blocker {
    atomic_int started;
    atomic_int gate;
};

static int block_task(void *arg)
{
    struct blocker *b = arg;
    atomic_fetch_add(&b->started, 1);
    return wait_ge(&b->gate, 1, LONG_MS) ? 7 : -ETIMEDOUT;
}

static void test_wait_timeout(void)
{
    cipc_tpool *tp = new_pool(2);
    struct blocker b = {0};
    cipc_tfuture *f = NULL;
    CHECK_INT(cipc_tpool_submit(tp, block_task, &b, NULL, NULL, &f), ==, 0);
    CHECK(wait_ge(&b.started, 1, LONG_MS));
    int64_t t0 = cipc_now_ms();
    CHECK_INT(cipc_tfuture_wait(f, 50), ==, CIPC_ETIMEOUT);
    int64_t took = cipc_now_ms() - t0;
    CHECK_INT(took, >=, 50);
    CHECK_INT(took, <, LONG_MS);
    CHECK_INT(cipc_tfuture_wait(f, 0), ==, CIPC_ETIMEOUT);
    CHECK_INT(cipc_tfuture_done(f), ==, 0);
    CHECK_INT(cipc_tfuture_result(f), ==, CIPC_EAGAIN);
    CHECK_INT(cipc_tfuture_cancel(f), ==, CIPC_EBUSY); /* running */
    atomic_store(&b.gate, 1);
    CHECK_INT(cipc_tfuture_wait(f, -1), ==, 0);
    CHECK_INT(cipc_tfuture_result(f), ==, 7);
    cipc_tfuture_free(f);
    cipc_tpool_free(tp);
}

/* --- cancel ---------------------------------------------------------------------------- */

static void test_cancel(void)
{
    cipc_tpool *tp = new_pool(1);
    struct blocker b = {0};
    cipc_tfuture *fb = NULL, *f2 = NULL;
    CHECK_INT(cipc_tpool_submit(tp, block_task, &b, NULL, NULL, &fb), ==, 0);
    CHECK(wait_ge(&b.started, 1, LONG_MS)); /* the only thread is busy: the next one queues */
    struct job j = {.in = 1, .out = -1};
    atomic_store(&g_fn_total, 0);
    CHECK_INT(cipc_tpool_submit(tp, double_it, &j, count_cb, &g_cb_total, &f2), ==, 0);
    CHECK_INT(cipc_tfuture_done(f2), ==, 0);
    CHECK_INT(cipc_tfuture_cancel(f2), ==, 0);
    /* Complete at once, callback already run on this thread with CIPC_ECANCELED. */
    CHECK_INT(cipc_tfuture_done(f2), ==, 1);
    CHECK_INT(cipc_tfuture_wait(f2, 0), ==, 0);
    CHECK_INT(cipc_tfuture_result(f2), ==, CIPC_ECANCELED);
    CHECK_INT(atomic_load(&j.cb_calls), ==, 1);
    CHECK_INT(j.cb_rc, ==, CIPC_ECANCELED);
    CHECK_INT(cipc_tfuture_cancel(f2), ==, CIPC_EBUSY); /* already complete */
    CHECK_INT(cipc_tfuture_cancel(fb), ==, CIPC_EBUSY); /* running */
    cipc_tfuture_free(f2);

    /* cancel_pending: every queued task, in order, callbacks here; running ones go on. */
    enum { Q = 20 };
    static struct job q[Q];
    cipc_tfuture *fq[Q];
    for (int i = 0; i < Q; i++) {
        q[i] = (struct job){.in = i, .out = -1};
        CHECK_INT(
            cipc_tpool_submit(tp, double_it, &q[i], count_cb, &g_cb_total, i % 2 ? &fq[i] : NULL),
            ==, 0);
    }
    cipc_tpool_cancel_pending(tp);
    for (int i = 0; i < Q; i++) {
        CHECK_INT(atomic_load(&q[i].cb_calls), ==, 1);
        CHECK_INT(q[i].cb_rc, ==, CIPC_ECANCELED);
        CHECK_INT(q[i].out, ==, -1); /* fn never ran */
        if (i % 2) {
            CHECK_INT(cipc_tfuture_result(fq[i]), ==, CIPC_ECANCELED);
            cipc_tfuture_free(fq[i]);
        }
    }
    CHECK_INT(cipc_tfuture_done(fb), ==, 0);
    atomic_store(&b.gate, 1);
    CHECK_INT(cipc_tfuture_wait(fb, -1), ==, 0);
    CHECK_INT(cipc_tfuture_result(fb), ==, 7);
    CHECK_INT(atomic_load(&g_fn_total), ==, 0);
    /* The pool is not closed: later tasks run. */
    struct job later = {.in = 5};
    CHECK_INT(cipc_tpool_submit(tp, double_it, &later, NULL, NULL, &f2), ==, 0);
    CHECK_INT(cipc_tfuture_wait(f2, -1), ==, 0);
    CHECK_INT(later.out, ==, 10);
    cipc_tfuture_free(f2);
    cipc_tfuture_free(fb);
    cipc_tpool_free(tp);
}

/* max_queue: submit returns CIPC_EBUSY (never blocks) when that many tasks wait; map chunks
 * do not count. */
static void test_queue_full(void)
{
    cipc_tpool *tp = NULL;
    CHECK_INT(cipc_tpool_new(&(cipc_tpool_opts){.threads = 1, .max_queue = 2}, &tp), ==, 0);
    struct blocker b = {0};
    cipc_tfuture *fb = NULL, *f1 = NULL, *f2 = NULL;
    CHECK_INT(cipc_tpool_submit(tp, block_task, &b, NULL, NULL, &fb), ==, 0);
    CHECK(wait_ge(&b.started, 1, LONG_MS));
    struct job j[3] = {{.in = 1}, {.in = 2}, {.in = 4}};
    CHECK_INT(cipc_tpool_submit(tp, double_it, &j[0], count_cb, &g_cb_total, &f1), ==, 0);
    CHECK_INT(cipc_tpool_submit(tp, double_it, &j[1], count_cb, &g_cb_total, NULL), ==, 0);
    cipc_tfuture *none = (cipc_tfuture *)&b;
    CHECK_INT(cipc_tpool_submit(tp, double_it, &j[2], count_cb, &g_cb_total, &none), ==,
              CIPC_EBUSY);
    CHECK(none == (cipc_tfuture *)&b);         /* untouched on error */
    CHECK_INT(cipc_tfuture_cancel(f1), ==, 0); /* makes room */
    CHECK_INT(cipc_tpool_submit(tp, double_it, &j[2], count_cb, &g_cb_total, &f2), ==, 0);
    atomic_store(&b.gate, 1);
    CHECK_INT(cipc_tfuture_wait(f2, -1), ==, 0);
    CHECK_INT(j[2].out, ==, 8);
    CHECK_INT(atomic_load(&j[2].cb_calls), ==, 1); /* the refused submit never called it */
    /* A map of 200 one-item chunks through a queue limited to 2. */
    check_map(tp, 200, 1);
    cipc_tfuture_free(fb);
    cipc_tfuture_free(f1);
    cipc_tfuture_free(f2);
    cipc_tpool_free(tp);
}

/* --- concurrency ----------------------------------------------------------------------- */

enum { SUBMITTERS = 4, PER = 10000 };

struct submitter {
    cipc_tpool *tp;
    struct job *jobs;
    int base;
};

static atomic_int g_concurrent_cb;

static void concurrent_cb(int rc, void *arg, void *cb_ud)
{
    struct job *j = arg;
    j->cb_rc = rc;
    atomic_fetch_add(&j->cb_calls, 1);
    atomic_fetch_add(&g_concurrent_cb, 1);
}

static void *submitter_main(void *arg)
{
    struct submitter *s = arg;
    cipc_tfuture **f = calloc(PER, sizeof *f);
    CHECK(f);
    for (int i = 0; i < PER; i++) {
        struct job *j = &s->jobs[i];
        j->in = s->base + i;
        j->out = -1;
        /* Every 10th is fire-and-forget. */
        CHECK_INT(
            cipc_tpool_submit(s->tp, double_it, j, concurrent_cb, NULL, i % 10 == 9 ? NULL : &f[i]),
            ==, 0);
    }
    for (int i = 0; i < PER; i++) {
        if (i % 10 == 9)
            continue;
        CHECK_INT(cipc_tfuture_wait(f[i], -1), ==, 0);
        CHECK_INT(cipc_tfuture_result(f[i]), ==, want_rc(s->base + i));
        CHECK_INT(s->jobs[i].out, ==, 2 * (s->base + i));
        cipc_tfuture_free(f[i]);
    }
    free(f);
    return NULL;
}

static void test_concurrent_submit(void)
{
    cipc_tpool *tp = new_pool(4);
    struct job *jobs = calloc((size_t)SUBMITTERS * PER, sizeof *jobs);
    CHECK(jobs);
    struct submitter s[SUBMITTERS];
    pthread_t th[SUBMITTERS];
    atomic_store(&g_fn_total, 0);
    atomic_store(&g_concurrent_cb, 0);
    for (int k = 0; k < SUBMITTERS; k++) {
        s[k] = (struct submitter){.tp = tp, .jobs = jobs + (size_t)k * PER, .base = k * PER};
        CHECK_INT(pthread_create(&th[k], NULL, submitter_main, &s[k]), ==, 0);
    }
    for (int k = 0; k < SUBMITTERS; k++)
        CHECK_INT(pthread_join(th[k], NULL), ==, 0);
    cipc_tpool_close(tp);
    CHECK_INT(cipc_tpool_join(tp, -1), ==, 0); /* the fire-and-forget ones too */
    CHECK_INT(atomic_load(&g_fn_total), ==, SUBMITTERS * PER);
    CHECK_INT(atomic_load(&g_concurrent_cb), ==, SUBMITTERS * PER);
    for (int i = 0; i < SUBMITTERS * PER; i++) {
        CHECK_INT(atomic_load(&jobs[i].cb_calls), ==, 1);
        CHECK_INT(jobs[i].cb_rc, ==, want_rc(i));
        CHECK_INT(jobs[i].out, ==, 2 * i);
    }
    free(jobs);
    cipc_tpool_free(tp);
}

/* --- close, join, free ----------------------------------------------------------------- */

static int add_one(const void *in, void *out, void *ud)
{
    *(int *)out = *(const int *)in + 1;
    return 0;
}

static void test_close_join(void)
{
    cipc_tpool *tp = new_pool(2);
    CHECK_INT(cipc_tpool_join(tp, 0), ==, -EINVAL); /* not closed */
    struct blocker b = {0};
    cipc_tfuture *fb = NULL;
    CHECK_INT(cipc_tpool_submit(tp, block_task, &b, NULL, NULL, &fb), ==, 0);
    enum { N = 100 };
    static struct job jobs[N];
    atomic_store(&g_cb_total, 0);
    for (int i = 0; i < N; i++) {
        jobs[i] = (struct job){.in = i, .out = -1};
        CHECK_INT(cipc_tpool_submit(tp, double_it, &jobs[i], count_cb, &g_cb_total, NULL), ==, 0);
    }
    cipc_tpool_close(tp);
    cipc_tpool_close(tp); /* idempotent */
    struct job late = {.in = 1};
    CHECK_INT(cipc_tpool_submit(tp, double_it, &late, count_cb, &g_cb_total, NULL), ==,
              CIPC_ECLOSING);
    int in = 1, out = 0;
    CHECK_INT(cipc_tpool_map(tp, add_one, NULL, &in, 1, sizeof in, &out, sizeof out, 0, NULL), ==,
              CIPC_ECLOSING);
    CHECK_INT(cipc_tpool_map(tp, add_one, NULL, NULL, 0, sizeof in, NULL, sizeof out, 0, NULL), ==,
              CIPC_ECLOSING);
    /* The blocker holds one thread; the queued tasks still run on the other. */
    CHECK(wait_ge(&b.started, 1, LONG_MS));
    CHECK(wait_ge(&g_cb_total, N, LONG_MS));
    CHECK_INT(cipc_tpool_join(tp, 30), ==, CIPC_ETIMEOUT);
    CHECK_INT(cipc_tpool_join(tp, 0), ==, CIPC_ETIMEOUT);
    atomic_store(&b.gate, 1);
    CHECK_INT(cipc_tpool_join(tp, -1), ==, 0);
    CHECK_INT(cipc_tpool_join(tp, 0), ==, 0); /* again: still joined */
    CHECK_INT(cipc_tfuture_result(fb), ==, 7);
    CHECK_INT(atomic_load(&g_cb_total), ==, N);
    CHECK_INT(atomic_load(&late.cb_calls), ==, 0);
    for (int i = 0; i < N; i++)
        CHECK_INT(jobs[i].out, ==, 2 * i);
    cipc_tpool_free(tp);
    cipc_tfuture_free(fb); /* futures outlive the pool */
}

/* Counts the callbacks that report CIPC_ECANCELED. */
static atomic_int g_canceled;

static void cancel_count_cb(int rc, void *arg, void *cb_ud)
{
    struct job *j = arg;
    j->cb_rc = rc;
    atomic_fetch_add(&j->cb_calls, 1);
    if (rc == CIPC_ECANCELED)
        atomic_fetch_add(&g_canceled, 1);
}

static void *free_thread(void *tp)
{
    cipc_tpool_free(tp);
    return NULL;
}

static void test_free_pending(void)
{
    cipc_tpool *tp = new_pool(2);
    enum { Q = 30 };
    struct blocker b[2] = {{0}, {0}};
    cipc_tfuture *fb[2];
    atomic_store(&g_canceled, 0);
    for (int k = 0; k < 2; k++) {
        CHECK_INT(cipc_tpool_submit(tp, block_task, &b[k], NULL, NULL, &fb[k]), ==, 0);
    }
    CHECK(wait_ge(&b[0].started, 1, LONG_MS));
    CHECK(wait_ge(&b[1].started, 1, LONG_MS));
    static struct job q[Q];
    cipc_tfuture *fq[Q];
    for (int i = 0; i < Q; i++) {
        q[i] = (struct job){.in = i, .out = -1};
        CHECK_INT(
            cipc_tpool_submit(tp, double_it, &q[i], cancel_count_cb, NULL, i % 3 ? &fq[i] : NULL),
            ==, 0);
    }
    /* free() runs on another thread: it cancels the queued tasks first (this thread sees
     * the cancel count reach Q), then waits for the running blockers, released here. */
    pthread_t th;
    CHECK_INT(pthread_create(&th, NULL, free_thread, tp), ==, 0);
    CHECK(wait_ge(&g_canceled, Q, LONG_MS));
    atomic_store(&b[0].gate, 1);
    atomic_store(&b[1].gate, 1);
    CHECK_INT(pthread_join(th, NULL), ==, 0);
    for (int k = 0; k < 2; k++) {
        CHECK_INT(cipc_tfuture_result(fb[k]), ==, 7); /* running tasks were waited for */
        cipc_tfuture_free(fb[k]);
    }
    for (int i = 0; i < Q; i++) {
        CHECK_INT(atomic_load(&q[i].cb_calls), ==, 1);
        CHECK_INT(q[i].cb_rc, ==, CIPC_ECANCELED);
        CHECK_INT(q[i].out, ==, -1);
        if (i % 3) {
            CHECK_INT(cipc_tfuture_done(fq[i]), ==, 1);
            CHECK_INT(cipc_tfuture_wait(fq[i], -1), ==, 0);
            CHECK_INT(cipc_tfuture_result(fq[i]), ==, CIPC_ECANCELED);
            cipc_tfuture_free(fq[i]);
        }
    }
    /* Free right after creation, and free of an idle pool. */
    cipc_tpool_free(new_pool(3));
}

/* --- initializer and finalizer --------------------------------------------------------- */

static atomic_int g_inits, g_finis;
static _Thread_local int t_initialized;

static void init_thread(void *arg)
{
    CHECK(arg == (void *)&g_inits);
    CHECK_INT(t_initialized, ==, 0);
    t_initialized = 1;
    atomic_fetch_add(&g_inits, 1);
}

static void fini_thread(void *arg)
{
    CHECK(arg == (void *)&g_inits);
    CHECK_INT(t_initialized, ==, 1);
    t_initialized = 2;
    atomic_fetch_add(&g_finis, 1);
}

static int needs_init(void *arg)
{
    (void)arg;
    return t_initialized == 1 ? 0 : -1;
}

static void test_initializer(void)
{
    atomic_store(&g_inits, 0);
    atomic_store(&g_finis, 0);
    cipc_tpool *tp = NULL;
    CHECK_INT(cipc_tpool_new(&(cipc_tpool_opts){.threads = 3,
                                                .initializer = init_thread,
                                                .finalizer = fini_thread,
                                                .initarg = &g_inits,
                                                .stack_size = 256 * 1024},
                             &tp),
              ==, 0);
    enum { N = 300 };
    cipc_tfuture *f[N];
    for (int i = 0; i < N; i++)
        CHECK_INT(cipc_tpool_submit(tp, needs_init, NULL, NULL, NULL, &f[i]), ==, 0);
    for (int i = 0; i < N; i++) {
        CHECK_INT(cipc_tfuture_wait(f[i], -1), ==, 0);
        CHECK_INT(cipc_tfuture_result(f[i]), ==, 0);
        cipc_tfuture_free(f[i]);
    }
    cipc_tpool_close(tp);
    CHECK_INT(cipc_tpool_join(tp, -1), ==, 0);
    CHECK_INT(atomic_load(&g_inits), ==, 3);
    CHECK_INT(atomic_load(&g_finis), ==, 3);
    cipc_tpool_free(tp);
    CHECK_INT(t_initialized, ==, 0); /* never on the caller's thread */

    /* Threads that never got a task initialize and finalize too; free joins them. */
    atomic_store(&g_inits, 0);
    atomic_store(&g_finis, 0);
    CHECK_INT(cipc_tpool_new(&(cipc_tpool_opts){.threads = 5,
                                                .initializer = init_thread,
                                                .finalizer = fini_thread,
                                                .initarg = &g_inits},
                             &tp),
              ==, 0);
    cipc_tpool_free(tp);
    CHECK_INT(atomic_load(&g_inits), ==, 5);
    CHECK_INT(atomic_load(&g_finis), ==, 5);

    /* The default size: min(32, online CPUs + 4), as ThreadPoolExecutor. */
    CHECK_INT(cipc_tpool_new(NULL, &tp), ==, 0);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK_INT(cipc_tpool_threads(tp), ==, cpus + 4 < 32 ? cpus + 4 : 32);
    cipc_tpool_free(tp);
}

/* --- calls from inside tasks ----------------------------------------------------------- */

struct nested {
    cipc_tpool *tp;
    int result;
};

static int child_task(void *arg)
{
    *(int *)arg = 42;
    return 0;
}

/* On a 1-thread pool: submit a child and wait for it forever. The only thread is this one,
 * so the wait must run the child itself. */
static int parent_waits(void *arg)
{
    struct nested *n = arg;
    int v = 0;
    cipc_tfuture *f = NULL;
    CHECK_INT(cipc_tpool_submit(n->tp, child_task, &v, NULL, NULL, &f), ==, 0);
    /* A wait with a timeout only waits: the child is queued behind us. */
    CHECK_INT(cipc_tfuture_wait(f, 20), ==, CIPC_ETIMEOUT);
    CHECK_INT(cipc_tfuture_wait(f, -1), ==, 0);
    CHECK_INT(cipc_tfuture_result(f), ==, 0);
    cipc_tfuture_free(f);
    CHECK_INT(cipc_tpool_join(n->tp, -1), ==, -EDEADLK);
    n->result = v;
    return 0;
}

/* Map on our own 1-thread pool from a task. */
static int parent_maps(void *arg)
{
    struct nested *n = arg;
    int in[50], out[50];
    for (int i = 0; i < 50; i++)
        in[i] = i;
    int rc = cipc_tpool_map(n->tp, add_one, NULL, in, 50, sizeof(int), out, sizeof(int), 3, NULL);
    for (int i = 0; i < 50; i++)
        if (out[i] != i + 1)
            return -1;
    n->result = rc == 0 ? 1 : rc;
    return 0;
}

static void done_cb_joins(int rc, void *arg, void *cb_ud)
{
    /* Callbacks run on a pool thread (or the canceling thread): join must refuse. */
    *(int *)cb_ud = cipc_tpool_join(((struct nested *)arg)->tp, 0);
}

static int frees_own_pool(void *arg)
{
    struct nested *n = arg;
    cipc_tpool_free(n->tp); /* does not wait for this task: the pool goes when we exit */
    n->result = 1;
    return 0;
}

static void test_reentrant(void)
{
    cipc_tpool *tp = new_pool(1);
    struct nested n = {.tp = tp};
    cipc_tfuture *f = NULL;
    int cb_join = 0;
    CHECK_INT(cipc_tpool_submit(tp, parent_waits, &n, done_cb_joins, &cb_join, &f), ==, 0);
    CHECK_INT(cipc_tfuture_wait(f, -1), ==, 0);
    CHECK_INT(cipc_tfuture_result(f), ==, 0);
    CHECK_INT(n.result, ==, 42);
    CHECK_INT(cb_join, ==, -EDEADLK);
    cipc_tfuture_free(f);

    n.result = 0;
    CHECK_INT(cipc_tpool_submit(tp, parent_maps, &n, NULL, NULL, &f), ==, 0);
    CHECK_INT(cipc_tfuture_wait(f, -1), ==, 0);
    CHECK_INT(cipc_tfuture_result(f), ==, 0);
    CHECK_INT(n.result, ==, 1);
    cipc_tfuture_free(f);

    /* A callback run by a cancel on this thread cannot join either. */
    struct blocker b = {0};
    cipc_tfuture *fb = NULL;
    CHECK_INT(cipc_tpool_submit(tp, block_task, &b, NULL, NULL, &fb), ==, 0);
    CHECK(wait_ge(&b.started, 1, LONG_MS));
    cb_join = 0;
    CHECK_INT(cipc_tpool_submit(tp, parent_waits, &n, done_cb_joins, &cb_join, &f), ==, 0);
    CHECK_INT(cipc_tfuture_cancel(f), ==, 0);
    CHECK_INT(cb_join, ==, -EDEADLK);
    cipc_tfuture_free(f);
    atomic_store(&b.gate, 1);
    cipc_tfuture_free(fb); /* still running: the pool frees it when done */
    cipc_tpool_free(tp);

    /* A task frees its own pool: no deadlock, nothing leaks (valgrind), the future stays
     * usable. The finalizers tell when the threads are done. */
    atomic_store(&g_inits, 0);
    atomic_store(&g_finis, 0);
    CHECK_INT(cipc_tpool_new(&(cipc_tpool_opts){.threads = 2,
                                                .initializer = init_thread,
                                                .finalizer = fini_thread,
                                                .initarg = &g_inits},
                             &tp),
              ==, 0);
    n = (struct nested){.tp = tp};
    CHECK_INT(cipc_tpool_submit(tp, frees_own_pool, &n, NULL, NULL, &f), ==, 0);
    CHECK_INT(cipc_tfuture_wait(f, -1), ==, 0);
    CHECK_INT(n.result, ==, 1);
    CHECK(wait_ge(&g_finis, 2, LONG_MS));
    cipc_tfuture_free(f); /* may be the pool's last reference */
}

/* --- I/O-bound concurrency ------------------------------------------------------------- */

struct io_task {
    int fd;
    int64_t took_ms;
};

/* Wait 100 ms for a byte that never comes: a blocking system call, like a slow peer. */
static int poll_100ms(void *arg)
{
    struct io_task *t = arg;
    struct pollfd p = {.fd = t->fd, .events = POLLIN};
    int64_t t0 = cipc_now_ms();
    int rc = poll(&p, 1, 100);
    t->took_ms = cipc_now_ms() - t0;
    return rc == 0 ? 0 : -EIO;
}

static void test_io_bound(void)
{
    cipc_tpool *tp = new_pool(8);
    int fds[2];
    CHECK_INT(pipe(fds), ==, 0);
    struct io_task t[8];
    cipc_tfuture *f[8];
    int64_t t0 = cipc_now_ms();
    for (int i = 0; i < 8; i++) {
        t[i] = (struct io_task){.fd = fds[0]};
        CHECK_INT(cipc_tpool_submit(tp, poll_100ms, &t[i], NULL, NULL, &f[i]), ==, 0);
    }
    for (int i = 0; i < 8; i++) {
        CHECK_INT(cipc_tfuture_wait(f[i], -1), ==, 0);
        CHECK_INT(cipc_tfuture_result(f[i]), ==, 0);
        CHECK_INT(t[i].took_ms, >=, 99);
        cipc_tfuture_free(f[i]);
    }
    int64_t took = cipc_now_ms() - t0;
    CHECK_INT(took, >=, 99);
    CHECK_INT(took, <, 600); /* serially it would be 800 ms */
    close(fds[0]);
    close(fds[1]);
    cipc_tpool_free(tp);
}

/* --- bad input ------------------------------------------------------------------------- */

static void test_bad_input(void)
{
    cipc_tpool *tp = NULL;
    CHECK_INT(cipc_tpool_new(NULL, NULL), ==, -EINVAL);
    CHECK_INT(cipc_tpool_new(&(cipc_tpool_opts){.threads = -1}, &tp), ==, -EINVAL);
    CHECK_INT(cipc_tpool_new(&(cipc_tpool_opts){.threads = CIPC_TPOOL_MAX_THREADS + 1}, &tp), ==,
              -EINVAL);
    CHECK_INT(cipc_tpool_new(&(cipc_tpool_opts){.stack_size = 1}, &tp), ==, -EINVAL);
    /* Stacks too large to map: the thread start fails and nothing is left behind (with
     * memory overcommit allowed it may succeed instead: then it is an ordinary pool). */
    int rc = cipc_tpool_new(&(cipc_tpool_opts){.threads = 2, .stack_size = (size_t)1 << 46}, &tp);
    CHECK_INT(rc, <=, 0); /* -EAGAIN from glibc; valgrind's pthread_create says -EINVAL */
    CHECK(rc == 0 || tp == NULL);
    if (rc == 0) {
        cipc_tpool_free(tp);
        tp = NULL;
    }
    CHECK(tp == NULL);
    /* opts.size smaller than the struct: fields beyond it are not read. */
    cipc_tpool_opts small = {.size = offsetof(cipc_tpool_opts, max_queue),
                             .threads = 2,
                             .max_queue = 1,
                             .stack_size = 1};
    CHECK_INT(cipc_tpool_new(&small, &tp), ==, 0);
    CHECK_INT(cipc_tpool_threads(tp), ==, 2);

    struct job j = {0};
    int in = 0, out = 0;
    CHECK_INT(cipc_tpool_threads(NULL), ==, -EINVAL);
    CHECK_INT(cipc_tpool_submit(NULL, double_it, &j, NULL, NULL, NULL), ==, -EINVAL);
    CHECK_INT(cipc_tpool_submit(tp, NULL, &j, NULL, NULL, NULL), ==, -EINVAL);
    CHECK_INT(cipc_tpool_map(NULL, add_one, NULL, &in, 1, sizeof in, &out, sizeof out, 0, NULL), ==,
              -EINVAL);
    CHECK_INT(cipc_tpool_map(tp, NULL, NULL, &in, 1, sizeof in, &out, sizeof out, 0, NULL), ==,
              -EINVAL);
    CHECK_INT(cipc_tpool_map(tp, add_one, NULL, &in, 1, 0, &out, sizeof out, 0, NULL), ==, -EINVAL);
    CHECK_INT(cipc_tpool_map(tp, add_one, NULL, &in, 1, sizeof in, &out, 0, 0, NULL), ==, -EINVAL);
    CHECK_INT(cipc_tpool_map(tp, add_one, NULL, NULL, 1, sizeof in, &out, sizeof out, 0, NULL), ==,
              -EINVAL);
    CHECK_INT(cipc_tpool_map(tp, add_one, NULL, &in, 1, sizeof in, NULL, sizeof out, 0, NULL), ==,
              -EINVAL);
    CHECK_INT(cipc_tpool_map(tp, add_one, NULL, &in, SIZE_MAX / 2, 4, &out, sizeof out, 0, NULL),
              ==, -EINVAL);
    CHECK_INT(cipc_tfuture_wait(NULL, 0), ==, -EINVAL);
    CHECK_INT(cipc_tfuture_done(NULL), ==, 0);
    CHECK_INT(cipc_tfuture_result(NULL), ==, -EINVAL);
    CHECK_INT(cipc_tfuture_cancel(NULL), ==, -EINVAL);
    CHECK_INT(cipc_tpool_join(NULL, 0), ==, -EINVAL);
    CHECK_INT(cipc_tpool_chunksize(NULL, 10), ==, 3);
    cipc_tfuture_free(NULL);
    cipc_tpool_close(NULL);
    cipc_tpool_cancel_pending(NULL);
    cipc_tpool_free(NULL);
    CHECK_INT(in, ==, 0);
    CHECK_INT(out, ==, 0); /* nothing ran */
    cipc_tpool_free(tp);
}

int main(void)
{
    test_bad_input();
    test_map();
    test_map_errors();
    test_submit();
    test_wait_timeout();
    test_cancel();
    test_queue_full();
    test_concurrent_submit();
    test_close_join();
    test_free_pending();
    test_initializer();
    test_reentrant();
    test_io_bound();
    printf("test_tpool: ok\n");
    return 0;
}
