/* cipc/tpool.h -- a pool of threads in one process, in the manner of Python's
 * concurrent.futures.ThreadPoolExecutor, with the submit/wait shape of cipc_pool.
 *
 *     static _Thread_local cipc_session *session;        (one blocking session per thread)
 *     static void open_session(void *base) { cipc_session_new(&(cipc_session_opts){
 *                                                .base_url = base}, &session); }
 *     static void close_session(void *base) { cipc_session_free(session); }
 *
 *     struct fetch { const char *path; int status; };
 *     static int fetch(void *arg)                         (runs on a pool thread)
 *     {
 *         struct fetch *f = arg;
 *         cipc_response *r = NULL;
 *         int rc = cipc_get(session, f->path, NULL, &r);
 *         if (rc == 0)
 *             f->status = cipc_response_status(r);        (the result goes through arg)
 *         cipc_response_free(r);
 *         return rc;                                      (0, or a negative error)
 *     }
 *
 *     cipc_tpool *tp = NULL;
 *     cipc_tpool_new(&(cipc_tpool_opts){.threads = 8, .initializer = open_session,
 *                    .finalizer = close_session, .initarg = "http://127.0.0.1:8080"}, &tp);
 *     struct fetch jobs[3] = {{.path = "/a"}, {.path = "/b"}, {.path = "/c"}};
 *     cipc_tfuture *fut[3];
 *     for (int i = 0; i < 3; i++)
 *         cipc_tpool_submit(tp, fetch, &jobs[i], NULL, NULL, &fut[i]);
 *     for (int i = 0; i < 3; i++) {
 *         cipc_tfuture_wait(fut[i], -1);
 *         printf("%s: %d (%s)\n", jobs[i].path, jobs[i].status,
 *                cipc_strerror(cipc_tfuture_result(fut[i])));
 *         cipc_tfuture_free(fut[i]);
 *     }
 *     cipc_tpool_free(tp);                 (waits for running tasks, then joins the threads)
 *
 * When to use which pool. Use a cipc_tpool for I/O-bound work: HTTP requests with the
 * blocking cipc_session (cipc/http_client.h, one session per thread as above), file I/O,
 * other blocking system calls, or libraries with blocking APIs. Its threads share the
 * process's memory, so tasks take and fill plain pointers, and starting a task costs a
 * queue push, not a message copy. Use cipc_pool (cipc/pool.h) for CPU-bound work: its
 * worker processes run in parallel on every core, and a task that crashes only costs its
 * worker. A crash in a cipc_tpool task (a segfault, abort()) takes the whole process down.
 *
 * Threads are started by cipc_tpool_new() (all of them, at once) and run until the pool is
 * closed and its queue is empty. Each one runs opts.initializer before its first task and
 * opts.finalizer just before it exits. Tasks start in submission order (FIFO) as threads
 * become free; a map's chunks are queued together, behind the tasks already queued.
 *
 * Task lifecycle: queued -> running -> complete. A task completes when its function (and
 * then its callback) has returned, or when it is canceled while still queued
 * (cipc_tfuture_cancel(), cipc_tpool_cancel_pending(), cipc_tpool_free()): then its
 * function never runs, its code is CIPC_ECANCELED and its callback runs with that code.
 * A running task cannot be stopped: threads are never killed, so every blocking call a
 * task makes needs a timeout of its own if the pool must be able to shut down promptly.
 *
 * Errors: -EINVAL (bad argument), -ENOMEM, -EAGAIN (no more threads), CIPC_ECLOSING (after
 * close), CIPC_EBUSY (the queue is full; or cancel of a task that is not queued),
 * CIPC_ETIMEOUT, CIPC_ECANCELED, CIPC_EAGAIN (a result asked for too early), -EDEADLK
 * (join from one of the pool's own threads). Timeouts are in milliseconds on the
 * monotonic clock: < 0 waits forever, 0 does not wait, > 0 waits at most that long.
 *
 * Threading: everything in this header is thread-safe. Any thread may submit, map, wait
 * on, cancel, query or close at the same time as others, tasks and callbacks included
 * (a task may submit to its own pool, map on it and wait for its futures). The exceptions:
 * - cipc_tpool_free() must be the last call on the pool: no other thread may be calling
 *   any cipc_tpool_* function on that pool while it runs or afterwards (its futures stay
 *   valid; see cipc_tpool_free());
 * - cipc_tfuture_free() must be the last call on that future: no other thread may be
 *   waiting on it or reading it while it runs or afterwards;
 * - cipc_tpool_join() from one of the pool's threads (a task, or a callback) returns
 *   -EDEADLK instead of waiting for itself; cipc_tpool_free() from one does not wait
 *   (see there);
 * - a thread of the pool that waits forever on a still-queued future of the same pool,
 *   or maps on the same pool, runs queued tasks itself while it waits, so nested waits
 *   and maps cannot deadlock the pool even when every thread is waiting. (A wait with a
 *   timeout only waits.) */
#ifndef CIPC_TPOOL_H
#define CIPC_TPOOL_H

#include <stddef.h>

#include "cipc/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cipc_tpool cipc_tpool;
typedef struct cipc_tfuture cipc_tfuture;

/* A submitted task: runs on a pool thread with the `arg` given to cipc_tpool_submit().
 * Returns 0 or a negative error (its future's code); results go wherever `arg` points. */
typedef int (*cipc_tpool_task_fn)(void *arg);

/* Called exactly once per submitted task that was accepted, when it completes: on the
 * pool thread that ran fn, right after fn returned (rc is fn's return value), or, for a
 * task canceled while queued, on the thread that canceled it (rc is CIPC_ECANCELED). The
 * task's future is complete (wait returns) only after the callback has returned. */
typedef void (*cipc_tpool_done_cb)(int rc, void *arg, void *cb_ud);

/* A map item function: read one item from `in`, write one result to `out` (out_size
 * bytes, zeroed before the call), return 0 or a negative error for this item (any
 * non-zero value fails the item and is reported as it is, as in cipc_pool_map()). The
 * same signature as cipc_pool_fn (cipc/pool.h): a function written for one works with
 * both. May run on several pool threads at once. */
typedef int (*cipc_tpool_fn)(const void *in, void *out, void *ud);

/* Runs on each pool thread: initializer before its first task, finalizer just before it
 * exits (both once per thread, with opts.initarg). */
typedef void (*cipc_tpool_init_fn)(void *initarg);

#define CIPC_TPOOL_MAX_THREADS       4096
#define CIPC_TPOOL_DEFAULT_MAX_QUEUE 65536u

/* Pool options; zero means the default. Only ever extended at the end. */
typedef struct cipc_tpool_opts {
    size_t size;                    /* sizeof(cipc_tpool_opts), or 0 for "this version" */
    int threads;                    /* 0 -> min(32, online CPUs + 4), as ThreadPoolExecutor;
                                       otherwise 1..CIPC_TPOOL_MAX_THREADS */
    size_t max_queue;               /* submitted tasks that may wait for a thread at once;
                                       beyond it cipc_tpool_submit() returns CIPC_EBUSY.
                                       0 -> CIPC_TPOOL_DEFAULT_MAX_QUEUE; SIZE_MAX: no limit.
                                       Map chunks do not count */
    size_t stack_size;              /* bytes of stack per thread; 0 -> the system default.
                                       At least PTHREAD_STACK_MIN (else -EINVAL) */
    cipc_tpool_init_fn initializer; /* NULL: none */
    cipc_tpool_init_fn finalizer;   /* NULL: none. Pairs with initializer: free what it made */
    void *initarg;                  /* passed to both; borrowed until the threads exit */
} cipc_tpool_opts;

/* Create a pool and start its threads. `opts` may be NULL (defaults); borrows `opts`.
 * Returns 0 and sets *out (returns owned: cipc_tpool_free()), or -EINVAL (threads < 0 or
 * over CIPC_TPOOL_MAX_THREADS, stack_size too small), -ENOMEM, -EAGAIN (the system would
 * not start another thread); *out untouched on error, and no thread is left running
 * (threads started before the failure ran their initializer and finalizer). */
CIPC_API int cipc_tpool_new(const cipc_tpool_opts *opts, cipc_tpool **out);

/* The number of threads the pool was created with, or -EINVAL for NULL. */
CIPC_API int cipc_tpool_threads(const cipc_tpool *tp);

/* Python's automatic map chunk size for n items: chunksize, extra = divmod(n, threads * 4),
 * plus one if extra; at least 1 (also for n == 0). As cipc_pool_chunksize(). */
CIPC_API size_t cipc_tpool_chunksize(const cipc_tpool *tp, size_t n);

/* Queue fn(arg) to run on a pool thread (ThreadPoolExecutor.submit). Never blocks.
 * `cb` (may be NULL) is called once when the task completes (see cipc_tpool_done_cb).
 * With `out` non-NULL, *out is the task's future (returns owned: cipc_tfuture_free());
 * with `out` NULL the task is fire-and-forget and the pool frees it after completion.
 * Ownership: borrows `arg` and `cb_ud` until the task completes (the pool never frees
 * them). Returns 0, or -EINVAL (NULL tp or fn), CIPC_ECLOSING (the pool is closed),
 * CIPC_EBUSY (opts.max_queue tasks are already waiting: retry later, for example after
 * waiting for an earlier future), -ENOMEM. On error nothing was queued, cb is never called
 * and *out is untouched. */
CIPC_API int cipc_tpool_submit(cipc_tpool *tp, cipc_tpool_task_fn fn, void *arg,
                               cipc_tpool_done_cb cb, void *cb_ud, cipc_tfuture **out);

/* Apply fn to n items of in_size bytes at `inputs` and store the results, in input order,
 * as n items of out_size bytes at `outputs` (the same contract as cipc_pool_map()). The
 * items are cut into chunks of `chunksize` (0 -> cipc_tpool_chunksize()); each chunk runs
 * its items in order on one thread. `outputs` is zeroed first and a failed item's result is
 * zeroed again. `errs`, when not NULL, receives each item's code (0 on success; an item
 * canceled by cipc_tpool_cancel_pending() or cipc_tpool_free() before its chunk started
 * gets CIPC_ECANCELED). Blocks until every item has completed; on a pool thread it runs
 * queued tasks itself meanwhile (see Threading). Borrows everything; fn may run on several
 * threads at once with the same `ud`. Returns the number of items that failed (0: all
 * succeeded; capped at INT_MAX), or -EINVAL (NULL tp or fn, in_size or out_size 0, NULL
 * buffers with n > 0, n * size overflowing), CIPC_ECLOSING (after close), -ENOMEM
 * (nothing ran). */
CIPC_API int cipc_tpool_map(cipc_tpool *tp, cipc_tpool_fn fn, void *ud, const void *inputs,
                            size_t n, size_t in_size, void *outputs, size_t out_size,
                            size_t chunksize, int *errs);

/* Wait up to timeout_ms (< 0 forever, 0 just check) for the task to complete (its
 * callback included). Returns 0 once it has completed, CIPC_ETIMEOUT otherwise, -EINVAL
 * for NULL. Several threads may wait on one future at once. */
CIPC_API int cipc_tfuture_wait(cipc_tfuture *f, long timeout_ms);

/* 1 if the task has completed, else 0 (also for NULL). Never blocks for long. */
CIPC_API int cipc_tfuture_done(const cipc_tfuture *f);

/* The task's code once complete: fn's return value, or CIPC_ECANCELED if it was canceled
 * before it started; CIPC_EAGAIN while not complete; -EINVAL for NULL. */
CIPC_API int cipc_tfuture_result(const cipc_tfuture *f);

/* Cancel a task that has not started (Future.cancel). Returns 0 if it was still queued:
 * it is now complete with CIPC_ECANCELED, fn will never run, and its callback has run on
 * this thread (before this call returns). Returns CIPC_EBUSY if it is running or has
 * already completed (canceled before included), -EINVAL for NULL. */
CIPC_API int cipc_tfuture_cancel(cipc_tfuture *f);

/* Free a future. Freeing does not cancel: a task not complete yet still runs (its
 * callback too) and the pool frees it once it completes. Futures stay valid after
 * cipc_tpool_free() until freed. NULL does nothing. */
CIPC_API void cipc_tfuture_free(cipc_tfuture *f);

/* Accept no more tasks (shutdown(wait=False)): submit and map return CIPC_ECLOSING from
 * now on; tasks already queued still run, and each thread exits once the queue is empty.
 * Idempotent; NULL does nothing. */
CIPC_API void cipc_tpool_close(cipc_tpool *tp);

/* Cancel every task still queued, as cipc_tfuture_cancel() does for one (the
 * cancel_futures=True of shutdown()): they complete with CIPC_ECANCELED and their
 * callbacks run on this thread, in queue order, before this call returns; queued map
 * chunks fail their items with CIPC_ECANCELED. Running tasks are not affected. Does not
 * close the pool: later submits run normally. NULL does nothing. */
CIPC_API void cipc_tpool_cancel_pending(cipc_tpool *tp);

/* After cipc_tpool_close(): wait up to timeout_ms (< 0 forever) until every queued and
 * running task has completed (callbacks included), every thread has run its finalizer
 * and exited, and the threads are joined. Returns 0, CIPC_ETIMEOUT (nothing is lost: call
 * again), -EINVAL (NULL, or the pool is not closed), -EDEADLK (called from one of this
 * pool's threads, or from a callback run by a cancel of this pool's tasks). Several
 * threads may join at once. */
CIPC_API int cipc_tpool_join(cipc_tpool *tp, long timeout_ms);

/* Close the pool, cancel every queued task (as cipc_tpool_cancel_pending(): callbacks run
 * on this thread), wait for the running tasks to complete (threads cannot be killed, so
 * this waits as long as they run), join the threads and free the pool. Futures not freed
 * yet stay valid (complete) until cipc_tfuture_free(). Called from one of the pool's own
 * threads (a task or a callback), it cannot wait for itself: it closes, cancels the queued
 * tasks and returns at once, and the pool is freed when its last thread exits (after the
 * running tasks). NULL does nothing. */
CIPC_API void cipc_tpool_free(cipc_tpool *tp);

#ifdef __cplusplus
}
#endif
#endif
