/* src/process/tpool.c -- cipc_tpool: a pool of threads with one FIFO work queue
 * (cipc/tpool.h).
 *
 * One mutex (`mu`) guards everything: the queue, every task's state, the counters and the
 * reference count. Condition variables, all on CLOCK_MONOTONIC:
 *   work_cv   idle threads wait for a task (or for close);
 *   idle_cv   join waits for `unfinished` and `nlive` to reach 0;
 *   f->cv     waiters on one future wait for it to complete;
 *   job->cv   a map caller waits for its chunks.
 *
 * The queue is a doubly linked list of `struct task` headers, each the first member of a
 * future (one submitted task) or a map chunk, so a cancel unlinks in O(1).
 *
 * Lifetime. The pool struct is reference counted (under `mu`): one reference for the
 * owner (dropped by cipc_tpool_free()), one per live thread, one per future not yet
 * destroyed, and one per map call in progress. Whoever drops the last one destroys the
 * pool, after unlocking (POSIX allows destroying a mutex right after its last unlock).
 * This is what keeps futures usable after cipc_tpool_free(), and what lets a task call
 * cipc_tpool_free() on its own pool: the threads are then detached, and the last one to
 * exit frees the pool.
 *
 * A future is destroyed once it is complete and its owner has freed it (or never had it:
 * fire-and-forget), by whichever of the two happens last.
 */
#include "cipc/tpool.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cipc/time.h"

enum { K_FUTURE, K_CHUNK };
enum { S_QUEUED, S_RUNNING, S_DONE };

struct task {
    struct task *next, *prev;
    int kind;
};

struct cipc_tfuture {
    struct task t; /* first: a queued future is on the pool's queue through it */
    cipc_tpool *tp;
    cipc_tpool_task_fn fn;
    void *arg;
    cipc_tpool_done_cb cb;
    void *cb_ud;
    pthread_cond_t cv;
    int state;
    int rc;
    int waiters;
    bool user_ref; /* the caller holds it: set by submit with `out`, cleared by free */
};

struct mapjob {
    cipc_tpool_fn fn;
    void *ud;
    const char *in;
    char *out;
    size_t in_size, out_size;
    int *errs;
    size_t chunks_left;
    size_t failed;
    pthread_cond_t cv;
};

struct chunk {
    struct task t; /* first */
    struct mapjob *job;
    size_t first, count;
};

struct cipc_tpool {
    pthread_mutex_t mu;
    pthread_condattr_t cattr; /* CLOCK_MONOTONIC, for every condition variable */
    pthread_cond_t work_cv;
    pthread_cond_t idle_cv;
    struct task *head, *tail;
    size_t nqueued; /* futures on the queue (chunks do not count against max_queue) */
    size_t max_queue;
    size_t unfinished; /* tasks and chunks submitted and not complete */
    size_t refs;
    int nthreads; /* threads started */
    int nlive;    /* threads that have not finished exiting */
    pthread_t *threads;
    bool closed;
    bool joined; /* the threads were joined or detached (once) */
    cipc_tpool_init_fn initializer, finalizer;
    void *initarg;
};

/* The pool whose thread this is (NULL on other threads), and the pool whose cancel is
 * running callbacks on this thread: join refuses to wait from either, free defers. */
static _Thread_local cipc_tpool *tls_worker;
static _Thread_local cipc_tpool *tls_cb;

/* --- small helpers --------------------------------------------------------------------- */

static void lock(cipc_tpool *tp)
{
    pthread_mutex_lock(&tp->mu);
}

static void unlock(cipc_tpool *tp)
{
    pthread_mutex_unlock(&tp->mu);
}

/* Wait on `cv` until it is signalled or the deadline `d` passes (spurious wake-ups
 * included: callers re-check their condition and the deadline). */
static void cv_wait(pthread_cond_t *cv, pthread_mutex_t *mu, cipc_deadline d)
{
    if (d.at_ns == INT64_MAX) {
        pthread_cond_wait(cv, mu);
        return;
    }
    struct timespec ts = {.tv_sec = (time_t)(d.at_ns / 1000000000),
                          .tv_nsec = (long)(d.at_ns % 1000000000)};
    pthread_cond_timedwait(cv, mu, &ts);
}

static void destroy_pool(cipc_tpool *tp)
{
    pthread_cond_destroy(&tp->work_cv);
    pthread_cond_destroy(&tp->idle_cv);
    pthread_condattr_destroy(&tp->cattr);
    pthread_mutex_destroy(&tp->mu);
    free(tp->threads);
    free(tp);
}

/* Drop one reference; true when it was the last (the caller then unlocks and calls
 * destroy_pool()). */
static bool unref_locked(cipc_tpool *tp)
{
    return --tp->refs == 0;
}

static void push_locked(cipc_tpool *tp, struct task *t)
{
    t->next = NULL;
    t->prev = tp->tail;
    if (tp->tail)
        tp->tail->next = t;
    else
        tp->head = t;
    tp->tail = t;
    tp->unfinished++;
}

/* Unlink a queued task and mark it started (a future becomes S_RUNNING). Called by the
 * threads, by helpers and by cancels, with the lock held. */
static void take_locked(cipc_tpool *tp, struct task *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        tp->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        tp->tail = t->prev;
    t->next = t->prev = NULL;
    if (t->kind == K_FUTURE) {
        ((cipc_tfuture *)t)->state = S_RUNNING;
        tp->nqueued--;
    }
}

static void finished_locked(cipc_tpool *tp)
{
    if (--tp->unfinished == 0)
        pthread_cond_broadcast(&tp->idle_cv);
}

/* Free a complete future nobody holds. Returns true if that dropped the pool's last
 * reference. */
static bool future_destroy_locked(cipc_tpool *tp, cipc_tfuture *f)
{
    pthread_cond_destroy(&f->cv);
    free(f);
    return unref_locked(tp);
}

/* Record a future's completion, wake its waiters, and destroy it if nobody holds it.
 * Returns true if the pool lost its last reference. */
static bool future_complete_locked(cipc_tpool *tp, cipc_tfuture *f, int rc)
{
    f->rc = rc;
    f->state = S_DONE;
    if (f->waiters)
        pthread_cond_broadcast(&f->cv);
    finished_locked(tp);
    if (!f->user_ref)
        return future_destroy_locked(tp, f);
    return false;
}

/* Account for a chunk's items; wake the map caller when it was the job's last chunk. */
static void chunk_complete_locked(cipc_tpool *tp, struct chunk *c, size_t failed)
{
    struct mapjob *j = c->job;
    j->failed += failed;
    if (--j->chunks_left == 0)
        pthread_cond_broadcast(&j->cv);
    finished_locked(tp);
}

/* Run one task taken off the queue (take_locked() already called) on this thread: the
 * lock is released while fn and cb run and held again on return. Called by the threads
 * and by pool threads that help while they wait (map, wait). Never drops the pool's last
 * reference: the calling pool thread holds one. */
static void run_locked(cipc_tpool *tp, struct task *t)
{
    unlock(tp);
    if (t->kind == K_FUTURE) {
        cipc_tfuture *f = (cipc_tfuture *)t;
        int rc = f->fn(f->arg);
        if (f->cb)
            f->cb(rc, f->arg, f->cb_ud);
        lock(tp);
        (void)future_complete_locked(tp, f, rc);
        return;
    }
    struct chunk *c = (struct chunk *)t;
    struct mapjob *j = c->job;
    size_t failed = 0;
    for (size_t i = c->first; i < c->first + c->count; i++) {
        char *out = j->out + i * j->out_size;
        int rc = j->fn(j->in + i * j->in_size, out, j->ud);
        if (rc != 0) {
            memset(out, 0, j->out_size);
            failed++;
        }
        if (j->errs)
            j->errs[i] = rc;
    }
    lock(tp);
    chunk_complete_locked(tp, c, failed);
}

/* Complete a task taken off the queue without running it: CIPC_ECANCELED, its callback
 * on this thread (lock released meanwhile). Returns true if the pool lost its last
 * reference (the lock is still held). Called by cancels. */
static bool cancel_locked(cipc_tpool *tp, struct task *t)
{
    if (t->kind == K_CHUNK) {
        struct chunk *c = (struct chunk *)t;
        struct mapjob *j = c->job;
        if (j->errs)
            for (size_t i = c->first; i < c->first + c->count; i++)
                j->errs[i] = CIPC_ECANCELED;
        chunk_complete_locked(tp, c, c->count);
        return false;
    }
    cipc_tfuture *f = (cipc_tfuture *)t;
    if (f->cb) {
        unlock(tp);
        cipc_tpool *prev = tls_cb;
        tls_cb = tp;
        f->cb(CIPC_ECANCELED, f->arg, f->cb_ud);
        tls_cb = prev;
        lock(tp);
    }
    return future_complete_locked(tp, f, CIPC_ECANCELED);
}

/* --- threads --------------------------------------------------------------------------- */

/* A pool thread: initializer, then tasks in FIFO order until the pool is closed and the
 * queue empty, then finalizer. Started by cipc_tpool_new(). */
static void *worker_main(void *arg)
{
    cipc_tpool *tp = arg;
    tls_worker = tp;
    if (tp->initializer)
        tp->initializer(tp->initarg);
    lock(tp);
    for (;;) {
        while (!tp->head && !tp->closed)
            pthread_cond_wait(&tp->work_cv, &tp->mu);
        if (!tp->head)
            break;
        struct task *t = tp->head;
        take_locked(tp, t);
        run_locked(tp, t);
    }
    unlock(tp);
    if (tp->finalizer)
        tp->finalizer(tp->initarg);
    tls_worker = NULL;
    lock(tp);
    if (--tp->nlive == 0)
        pthread_cond_broadcast(&tp->idle_cv);
    bool last = unref_locked(tp);
    unlock(tp);
    if (last)
        destroy_pool(tp);
    return NULL;
}

static int default_threads(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        cpus = 1;
    return cpus + 4 < 32 ? (int)cpus + 4 : 32;
}

int cipc_tpool_new(const cipc_tpool_opts *opts, cipc_tpool **out)
{
    if (!out)
        return -EINVAL;
    cipc_tpool_opts o;
    memset(&o, 0, sizeof o);
    if (opts) {
        size_t n = opts->size ? opts->size : sizeof o;
        memcpy(&o, opts, n < sizeof o ? n : sizeof o);
    }
    if (o.threads < 0 || o.threads > CIPC_TPOOL_MAX_THREADS)
        return -EINVAL;
    if (o.stack_size && o.stack_size < (size_t)PTHREAD_STACK_MIN)
        return -EINVAL;
    int nthreads = o.threads ? o.threads : default_threads();

    cipc_tpool *tp = calloc(1, sizeof *tp);
    if (!tp)
        return -ENOMEM;
    tp->threads = calloc((size_t)nthreads, sizeof *tp->threads);
    if (!tp->threads) {
        free(tp);
        return -ENOMEM;
    }
    int rc = pthread_mutex_init(&tp->mu, NULL);
    if (rc) {
        free(tp->threads);
        free(tp);
        return -rc;
    }
    pthread_condattr_init(&tp->cattr);
    pthread_condattr_setclock(&tp->cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&tp->work_cv, &tp->cattr);
    pthread_cond_init(&tp->idle_cv, &tp->cattr);
    tp->max_queue = o.max_queue ? o.max_queue : CIPC_TPOOL_DEFAULT_MAX_QUEUE;
    tp->initializer = o.initializer;
    tp->finalizer = o.finalizer;
    tp->initarg = o.initarg;
    tp->refs = 1;

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (o.stack_size)
        rc = pthread_attr_setstacksize(&attr, o.stack_size);
    lock(tp);
    for (int i = 0; rc == 0 && i < nthreads; i++) {
        tp->refs++;
        tp->nlive++;
        rc = pthread_create(&tp->threads[i], &attr, worker_main, tp);
        if (rc) {
            tp->refs--;
            tp->nlive--;
        } else {
            tp->nthreads++;
        }
    }
    unlock(tp);
    pthread_attr_destroy(&attr);
    if (rc) {
        /* Stop the threads already started; they hold references, so the pool outlives
         * them and the last unref below is ours. */
        cipc_tpool_close(tp);
        cipc_tpool_join(tp, -1);
        destroy_pool(tp);
        return -rc;
    }
    *out = tp;
    return 0;
}

int cipc_tpool_threads(const cipc_tpool *tp)
{
    return tp ? tp->nthreads : -EINVAL;
}

size_t cipc_tpool_chunksize(const cipc_tpool *tp, size_t n)
{
    size_t d = (size_t)(tp && tp->nthreads > 0 ? tp->nthreads : 1) * 4;
    size_t c = n / d + (n % d ? 1 : 0);
    return c ? c : 1;
}

/* --- submit and futures ---------------------------------------------------------------- */

int cipc_tpool_submit(cipc_tpool *tp, cipc_tpool_task_fn fn, void *arg, cipc_tpool_done_cb cb,
                      void *cb_ud, cipc_tfuture **out)
{
    if (!tp || !fn)
        return -EINVAL;
    cipc_tfuture *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->t.kind = K_FUTURE;
    f->tp = tp;
    f->fn = fn;
    f->arg = arg;
    f->cb = cb;
    f->cb_ud = cb_ud;
    f->state = S_QUEUED;
    f->rc = CIPC_EAGAIN;
    f->user_ref = out != NULL;
    int rc = pthread_cond_init(&f->cv, &tp->cattr);
    if (rc) {
        free(f);
        return -rc;
    }
    lock(tp);
    if (tp->closed)
        rc = CIPC_ECLOSING;
    else if (tp->nqueued >= tp->max_queue)
        rc = CIPC_EBUSY;
    if (rc) {
        unlock(tp);
        pthread_cond_destroy(&f->cv);
        free(f);
        return rc;
    }
    tp->refs++;
    tp->nqueued++;
    push_locked(tp, &f->t);
    pthread_cond_signal(&tp->work_cv);
    unlock(tp);
    if (out)
        *out = f;
    return 0;
}

int cipc_tfuture_wait(cipc_tfuture *f, long timeout_ms)
{
    if (!f)
        return -EINVAL;
    cipc_tpool *tp = f->tp;
    lock(tp);
    if (f->state == S_QUEUED && timeout_ms < 0 && tls_worker == tp) {
        /* A pool thread waiting forever for a queued task: run it here, so that waits
         * from tasks cannot leave every thread waiting for work nobody runs. */
        take_locked(tp, &f->t);
        run_locked(tp, &f->t);
    }
    cipc_deadline d = cipc_deadline_in(timeout_ms);
    int rc = 0;
    while (f->state != S_DONE) {
        if (cipc_deadline_expired(d)) {
            rc = CIPC_ETIMEOUT;
            break;
        }
        f->waiters++;
        cv_wait(&f->cv, &tp->mu, d);
        f->waiters--;
    }
    unlock(tp);
    return rc;
}

int cipc_tfuture_done(const cipc_tfuture *f)
{
    if (!f)
        return 0;
    lock(f->tp);
    int done = f->state == S_DONE;
    unlock(f->tp);
    return done;
}

int cipc_tfuture_result(const cipc_tfuture *f)
{
    if (!f)
        return -EINVAL;
    lock(f->tp);
    int rc = f->state == S_DONE ? f->rc : CIPC_EAGAIN;
    unlock(f->tp);
    return rc;
}

int cipc_tfuture_cancel(cipc_tfuture *f)
{
    if (!f)
        return -EINVAL;
    cipc_tpool *tp = f->tp;
    lock(tp);
    if (f->state != S_QUEUED) {
        unlock(tp);
        return CIPC_EBUSY;
    }
    take_locked(tp, &f->t);
    /* The caller holds the future, so it is not destroyed and the pool keeps its
     * reference: this cannot be the last one. */
    (void)cancel_locked(tp, &f->t);
    unlock(tp);
    return 0;
}

void cipc_tfuture_free(cipc_tfuture *f)
{
    if (!f)
        return;
    cipc_tpool *tp = f->tp;
    lock(tp);
    f->user_ref = false;
    bool last = false;
    if (f->state == S_DONE)
        last = future_destroy_locked(tp, f);
    unlock(tp);
    if (last)
        destroy_pool(tp);
}

/* --- map ------------------------------------------------------------------------------- */

int cipc_tpool_map(cipc_tpool *tp, cipc_tpool_fn fn, void *ud, const void *inputs, size_t n,
                   size_t in_size, void *outputs, size_t out_size, size_t chunksize, int *errs)
{
    if (!tp || !fn || !in_size || !out_size || (n && (!inputs || !outputs)))
        return -EINVAL;
    if (n > SIZE_MAX / in_size || n > SIZE_MAX / out_size)
        return -EINVAL;
    lock(tp);
    bool closed = tp->closed;
    unlock(tp);
    if (closed)
        return CIPC_ECLOSING;
    if (n == 0)
        return 0;
    if (chunksize == 0)
        chunksize = cipc_tpool_chunksize(tp, n);
    size_t nchunks = n / chunksize + (n % chunksize ? 1 : 0);
    struct chunk *chunks = calloc(nchunks, sizeof *chunks);
    if (!chunks)
        return -ENOMEM;
    struct mapjob j = {.fn = fn,
                       .ud = ud,
                       .in = inputs,
                       .out = outputs,
                       .in_size = in_size,
                       .out_size = out_size,
                       .errs = errs,
                       .chunks_left = nchunks};
    int rc = pthread_cond_init(&j.cv, &tp->cattr);
    if (rc) {
        free(chunks);
        return -rc;
    }
    memset(outputs, 0, n * out_size);
    lock(tp);
    if (tp->closed) {
        unlock(tp);
        pthread_cond_destroy(&j.cv);
        free(chunks);
        return CIPC_ECLOSING;
    }
    tp->refs++;
    for (size_t k = 0; k < nchunks; k++) {
        struct chunk *c = &chunks[k];
        c->t.kind = K_CHUNK;
        c->job = &j;
        c->first = k * chunksize;
        c->count = n - c->first < chunksize ? n - c->first : chunksize;
        push_locked(tp, &c->t);
    }
    if (nchunks == 1)
        pthread_cond_signal(&tp->work_cv);
    else
        pthread_cond_broadcast(&tp->work_cv);
    while (j.chunks_left > 0) {
        if (tls_worker == tp && tp->head) {
            /* On a pool thread: help instead of sleeping, so nested maps always progress. */
            struct task *t = tp->head;
            take_locked(tp, t);
            run_locked(tp, t);
            continue;
        }
        pthread_cond_wait(&j.cv, &tp->mu);
    }
    bool last = unref_locked(tp);
    unlock(tp);
    if (last)
        destroy_pool(tp);
    pthread_cond_destroy(&j.cv);
    free(chunks);
    return j.failed > INT_MAX ? INT_MAX : (int)j.failed;
}

/* --- shutdown -------------------------------------------------------------------------- */

void cipc_tpool_close(cipc_tpool *tp)
{
    if (!tp)
        return;
    lock(tp);
    tp->closed = true;
    pthread_cond_broadcast(&tp->work_cv);
    unlock(tp);
}

void cipc_tpool_cancel_pending(cipc_tpool *tp)
{
    if (!tp)
        return;
    lock(tp);
    /* Take the whole queue first, so callbacks that submit again do not make this loop
     * run forever; every task taken holds (or its map caller holds) a pool reference. */
    struct task *list = tp->head;
    for (struct task *t = list; t; t = t->next)
        if (t->kind == K_FUTURE)
            ((cipc_tfuture *)t)->state = S_RUNNING;
    tp->head = tp->tail = NULL;
    tp->nqueued = 0;
    bool last = false;
    while (list) {
        struct task *t = list;
        list = t->next;
        t->next = t->prev = NULL;
        if ((last = cancel_locked(tp, t)))
            break; /* nothing can be left: each task kept a reference alive */
    }
    unlock(tp);
    if (last)
        destroy_pool(tp);
}

int cipc_tpool_join(cipc_tpool *tp, long timeout_ms)
{
    if (!tp)
        return -EINVAL;
    if (tls_worker == tp || tls_cb == tp)
        return -EDEADLK;
    lock(tp);
    if (!tp->closed) {
        unlock(tp);
        return -EINVAL;
    }
    cipc_deadline d = cipc_deadline_in(timeout_ms);
    while (tp->unfinished > 0 || tp->nlive > 0) {
        if (cipc_deadline_expired(d)) {
            unlock(tp);
            return CIPC_ETIMEOUT;
        }
        cv_wait(&tp->idle_cv, &tp->mu, d);
    }
    bool claim = !tp->joined;
    tp->joined = true;
    unlock(tp);
    /* Every thread has left worker_main()'s locked part; pthread_join() only reaps them.
     * The threads array is only freed with the pool, which our caller's reference keeps. */
    if (claim)
        for (int i = 0; i < tp->nthreads; i++)
            pthread_join(tp->threads[i], NULL);
    return 0;
}

void cipc_tpool_free(cipc_tpool *tp)
{
    if (!tp)
        return;
    cipc_tpool_close(tp);
    cipc_tpool_cancel_pending(tp);
    if (tls_worker == tp || tls_cb == tp) {
        /* Cannot wait for ourselves: let the threads go, the last one frees the pool. */
        lock(tp);
        if (!tp->joined) {
            tp->joined = true;
            for (int i = 0; i < tp->nthreads; i++)
                pthread_detach(tp->threads[i]);
        }
        unlock(tp);
    } else {
        (void)cipc_tpool_join(tp, -1);
    }
    lock(tp);
    bool last = unref_locked(tp);
    unlock(tp);
    if (last)
        destroy_pool(tp);
}
