/* cipc/pool.h -- a pool of worker processes in the manner of Python's multiprocessing.Pool.
 *
 *     static int square(const void *in, void *out, void *ud)
 *     {
 *         int n = *(const int *)in;
 *         *(int *)out = n * n;
 *         return 0;                                 (0, or a negative error for this item)
 *     }
 *
 *     cipc_pool *pool = NULL;
 *     cipc_pool_new(&(cipc_pool_opts){.workers = 4}, &pool);
 *     int in[5] = {1, 2, 3, 4, 5}, out[5];
 *     int failed = cipc_pool_map(pool, square, NULL, in, 5, sizeof(int), out, sizeof(int),
 *                                0, NULL);            (0: every item succeeded)
 *     cipc_pool_free(pool);                             (terminates and joins the workers)
 *
 * Workers are started once, when the pool is created, and reused; a worker that exits,
 * crashes or is killed is replaced. Task and result bytes travel through shared-memory
 * queues (cipc/queue.h): one task queue per worker and one result queue, so the pool
 * always knows which tasks each worker holds.
 *
 * Start methods (opts.start_method):
 * - CIPC_POOL_FORKSERVER, the default: creating the pool forks one helper process, the
 *   forkserver, which from then on only forks workers, at creation and whenever one is
 *   replaced. It has a single thread and holds no locks, so every worker starts from that
 *   clean state, however many threads the program runs by then. Workers see memory as it
 *   was when the pool was created (replacements too). Costs one idle process (its pages
 *   are shared copy-on-write) and a socket round trip per worker start. If the forkserver
 *   is killed, dead workers can no longer be replaced: once none is left, tasks fail with
 *   the spawn error instead of hanging.
 * - CIPC_POOL_FORK: workers are forked from the calling process itself, at creation and
 *   whenever one is replaced (from inside the pool call that noticed the loss), so a
 *   replacement sees memory as it is then. A forked child of a multi-threaded process
 *   inherits every lock another thread held at that instant (glibc resets its malloc and
 *   stdio locks; other libraries' and your own are not), which can deadlock it; use it
 *   only in programs that run no other threads.
 * Why forkserver by default: it is the method that stays correct when a program starts
 * threads after making its pools (an HTTP client, a loop, a logger), at the price of a
 * process. (Python 3.14 changed its default on Linux to forkserver for the same reason.)
 * For complete safety create pools before starting any thread: the forkserver itself is
 * forked from the caller, so it inherits locks held at that moment. (Python's forkserver
 * execs a fresh interpreter; a C program cannot rebuild its own state, with the same
 * function addresses, after exec.)
 *
 * Functions are passed by pointer and called in the workers. A worker has the same
 * address-space layout as the process that made the pool, so a pointer to any function of
 * the program or of a library loaded before the pool was created is valid there; so is
 * `ud`, which points into the worker's copy of memory (a snapshot: as it was when the
 * pool was made with the forkserver, when that worker was forked with fork; changes the
 * parent makes afterwards are not seen).
 *
 * Failures are reported per item, never by losing it or hanging:
 * - a task function's negative return value is that item's error code (return 0 for
 *   success; positive values are reported as they are);
 * - a worker that dies (segfault, abort(), _exit()) while running a task: every item of
 *   the task (map chunk) it was running fails with CIPC_EWORKER, and the worker is
 *   replaced; tasks it had queued but not started are given to another worker. Tasks are
 *   never retried;
 * - with opts.task_timeout_ms, a task running longer is killed with its worker (SIGKILL),
 *   its items fail with CIPC_ETIMEOUT, and the worker is replaced;
 * - an item or result larger than the pool's message limit fails with CIPC_ETOOBIG;
 * - after cipc_pool_terminate(), unfinished items fail with CIPC_ECANCELED.
 *
 * Progress. The pool has no threads of its own: tasks are handed to workers, results
 * collected, dead workers replaced and apply_async callbacks run from inside the pool's
 * calls (map, cipc_future_wait, cipc_pool_join, ...), on the calling thread.
 *
 * Threading: a pool and its futures are used by one thread at a time. Workers have
 * PR_SET_PDEATHSIG (SIGKILL), so they die with the thread that created the pool. */
#ifndef CIPC_POOL_H
#define CIPC_POOL_H

#include <stddef.h>
#include <sys/uio.h>

#include "cipc/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cipc_pool cipc_pool;
typedef struct cipc_future cipc_future;

/* A fixed-size task (map): read one item from `in`, write one result to `out` (out_size
 * bytes; the buffer starts zeroed), return 0 or a negative error for this item. Runs in a
 * worker. `in` and `out` are aligned to 8 bytes when in_size and out_size are multiples
 * of 8; otherwise only to their natural position in the chunk. */
typedef int (*cipc_pool_fn)(const void *in, void *out, void *ud);

/* A variable-size task (map_bytes, apply_async): read in[0..in_len), write up to out_cap
 * bytes to `out` and set *out_len (0 if not set), return 0 or a negative error. Runs in a
 * worker. An *out_len over out_cap fails the item with CIPC_ETOOBIG. */
typedef int (*cipc_pool_bytes_fn)(const void *in, size_t in_len, void *out, size_t out_cap,
                                  size_t *out_len, void *ud);

/* Runs once in every worker, before its first task (Python's initializer). */
typedef void (*cipc_pool_init_fn)(void *arg);

/* Called when an apply_async task completes (rc: the task's code as in
 * cipc_future_result(); data/len: a view of the result, valid during the call). */
typedef void (*cipc_pool_done_cb)(int rc, const void *data, size_t len, void *ud);

enum cipc_pool_start {
    CIPC_POOL_DEFAULT = 0,    /* CIPC_POOL_FORKSERVER */
    CIPC_POOL_FORKSERVER = 1, /* workers forked by a single-threaded helper (see above) */
    CIPC_POOL_FORK = 2        /* workers forked from the caller */
};

/* imap flag: return results as they complete rather than in input order. */
#define CIPC_POOL_UNORDERED 1u

/* One result of an imap iterator. */
typedef struct cipc_pool_item {
    size_t index;     /* the item's position in the inputs */
    int rc;           /* its code: 0, or its error (as errs[] of cipc_pool_map()) */
    const void *data; /* its result (out_size bytes, zeroed when it failed; for imap_bytes
                         the result bytes, NULL when it failed); valid until the next
                         cipc_pool_iter_next() or cipc_pool_iter_free() */
    size_t len;
} cipc_pool_item;

typedef struct cipc_pool_iter cipc_pool_iter;

/* Pool options; zero means the default. Only ever extended at the end. */
typedef struct cipc_pool_opts {
    size_t size;                /* sizeof(cipc_pool_opts), or 0 for "this version" */
    int workers;                /* 0 -> the number of online CPUs */
    int start_method;           /* enum cipc_pool_start; 0 -> CIPC_POOL_FORKSERVER */
    cipc_pool_init_fn initializer; /* NULL: none */
    void *initarg;              /* passed to initializer (the worker's copy) */
    int max_tasks_per_child;    /* > 0: a worker exits after this many tasks (a map chunk
                                   counts as one) and is replaced; 0: never */
    long task_timeout_ms;       /* > 0: a task running longer is killed (see above); then each
                                   worker holds one task at a time (else up
                                   to 64 queued, taken back when others idle) */
    size_t max_msg;             /* largest task or result message in bytes (a map chunk is
                                   cut to fit); 0 -> 1 MiB; at least 4096 */
} cipc_pool_opts;

/* Create a pool and start its workers. `opts` may be NULL (borrowed). Returns 0 and sets
 * *out (returns owned: cipc_pool_free()), or -EINVAL (bad option), -ENOSYS
 * (CIPC_POOL_FORKSERVER asked for where pidfd_open() is missing: Linux before 5.3, or
 * valgrind; the default then falls back to CIPC_POOL_FORK, see
 * cipc_pool_start_method()), -ENOMEM, -EAGAIN (fork), or a queue error; *out untouched
 * on error and no worker left behind. */
CIPC_API int cipc_pool_new(const cipc_pool_opts *opts, cipc_pool **out);

/* The number of workers. */
CIPC_API int cipc_pool_workers(const cipc_pool *p);

/* The start method in use (CIPC_POOL_FORKSERVER or CIPC_POOL_FORK), -EINVAL for NULL. */
CIPC_API int cipc_pool_start_method(const cipc_pool *p);

/* Python's automatic chunk size for n items: chunksize, extra = divmod(n, workers * 4),
 * plus one if extra; at least 1 (also for n == 0). */
CIPC_API size_t cipc_pool_chunksize(const cipc_pool *p, size_t n);

/* Apply fn to n items of in_size bytes at `inputs` and store the results, in input order,
 * as n items of out_size bytes at `outputs` (Pool.map). `chunksize` 0 -> automatic (see
 * cipc_pool_chunksize()); a chunk is also cut so that its bytes fit in one message.
 * `errs`, when not NULL, receives each item's code (0 on success). The result of a failed
 * item is left zeroed. Blocks until every item has completed. Borrows everything. Returns
 * the number of items that failed (0: all succeeded), or -EINVAL (NULL pool or fn,
 * in_size or out_size 0 or too large for a message, NULL buffers with n > 0),
 * CIPC_ECLOSING (after close or terminate), -ENOMEM. */
CIPC_API int cipc_pool_map(cipc_pool *p, cipc_pool_fn fn, void *ud, const void *inputs, size_t n,
                           size_t in_size, void *outputs, size_t out_size, size_t chunksize,
                           int *errs);

/* Map over variable-size items: in[i] (iov_base/iov_len) -> out[i], whose iov_base
 * returns owned (free() it; never NULL for a success, NULL for a failed item) and
 * iov_len its size. The results of one chunk share one message of max_msg bytes; an
 * item whose result does not fit fails with CIPC_ETOOBIG. Otherwise as cipc_pool_map(). */
CIPC_API int cipc_pool_map_bytes(cipc_pool *p, cipc_pool_bytes_fn fn, void *ud,
                                 const struct iovec *in, size_t n, size_t chunksize,
                                 struct iovec *out, int *errs);

/* Start mapping fn over n fixed-size items and return an iterator over the results
 * (Pool.imap, or Pool.imap_unordered with CIPC_POOL_UNORDERED in flags): results can be
 * read as soon as their items complete, while later items still run. `chunksize` 0 -> 1,
 * as in Python's imap. Tasks are cut from the inputs as workers need them, so `inputs`
 * is borrowed until the iterator has returned every item or is freed. Results are kept
 * by the iterator until read (n * out_size bytes at most). Returns 0 and sets *out
 * (returns owned: cipc_pool_iter_free()), or the errors of cipc_pool_map(). */
CIPC_API int cipc_pool_imap(cipc_pool *p, cipc_pool_fn fn, void *ud, const void *inputs,
                            size_t n, size_t in_size, size_t out_size, size_t chunksize,
                            unsigned flags, cipc_pool_iter **out);

/* cipc_pool_imap() over variable-size items, with the results of cipc_pool_map_bytes()
 * (each one's bytes owned by the iterator: copy what you keep). */
CIPC_API int cipc_pool_imap_bytes(cipc_pool *p, cipc_pool_bytes_fn fn, void *ud,
                                  const struct iovec *in, size_t n, size_t chunksize,
                                  unsigned flags, cipc_pool_iter **out);

/* Wait up to timeout_ms (< 0 forever, 0 just check) for the next result: the next item in
 * input order, or with CIPC_POOL_UNORDERED the next to complete. Makes the pool progress
 * meanwhile (other maps, futures and callbacks too). Returns 1 and fills *item, 0 once
 * every item has been returned, CIPC_ETIMEOUT, or -EINVAL. A failed item is a result
 * like any other: see item->rc. */
CIPC_API int cipc_pool_iter_next(cipc_pool_iter *it, long timeout_ms, cipc_pool_item *item);

/* Free an iterator, also before its end: items not handed to a worker yet are dropped
 * (the inputs are no longer read once this returns), those running finish in their
 * workers and their results are discarded. NULL does nothing. Must be called before
 * cipc_pool_free() of its pool. */
CIPC_API void cipc_pool_iter_free(cipc_pool_iter *it);

/* Submit one task, fn(in[0..len)) (Pool.apply_async); copies `in`. `cb` (may be NULL) is
 * called once when it completes, from inside a later pool call on the calling thread.
 * With `out` non-NULL, *out is a future (returns owned: cipc_future_free()); with `out`
 * NULL the pool frees the task after the callback. Returns 0, or -EINVAL, CIPC_ETOOBIG
 * (len over the message limit), CIPC_ECLOSING, -ENOMEM; on error cb is never called. */
CIPC_API int cipc_pool_apply_async(cipc_pool *p, cipc_pool_bytes_fn fn, void *ud, const void *in,
                                   size_t len, cipc_pool_done_cb cb, void *cb_ud,
                                   cipc_future **out);

/* Wait up to timeout_ms (< 0 forever, 0 just check) for the task to complete, making
 * the pool progress meanwhile. Returns 0 once it has completed, CIPC_ETIMEOUT otherwise,
 * -EINVAL for NULL. */
CIPC_API int cipc_future_wait(cipc_future *f, long timeout_ms);

/* 1 if the task has completed, else 0 (does not make progress). */
CIPC_API int cipc_future_done(const cipc_future *f);

/* The task's code once complete: its function's return value, or CIPC_EWORKER (the
 * worker died), CIPC_ETIMEOUT (task timeout), CIPC_ETOOBIG, CIPC_ECANCELED (terminate);
 * CIPC_EAGAIN while not complete. Sets *data (a view valid until cipc_future_free()) and
 * *len to the result bytes when not NULL (NULL / 0 when there are none). */
CIPC_API int cipc_future_result(const cipc_future *f, const void **data, size_t *len);

/* Free a future. If its task has not completed yet, the pool keeps the task and frees it
 * once it completes (its callback still runs). NULL does nothing. */
CIPC_API void cipc_future_free(cipc_future *f);

/* Accept no more tasks (Pool.close): map and apply_async return CIPC_ECLOSING from now
 * on; tasks already submitted still run. Idempotent. */
CIPC_API void cipc_pool_close(cipc_pool *p);

/* Kill every worker now (SIGKILL) and fail every unfinished task with CIPC_ECANCELED
 * (callbacks run). Implies close. Idempotent. */
CIPC_API void cipc_pool_terminate(cipc_pool *p);

/* After close or terminate: run every submitted task to completion (callbacks included),
 * then stop the workers and wait for them to exit, up to timeout_ms (< 0 forever).
 * Returns 0, CIPC_ETIMEOUT (call again), -EINVAL (NULL, or the pool is not closed). */
CIPC_API int cipc_pool_join(cipc_pool *p, long timeout_ms);

/* Terminate (if not joined), reap the workers and free the pool. Futures not freed yet
 * stay valid (complete, CIPC_ECANCELED if unfinished) until cipc_future_free(). NULL does
 * nothing. */
CIPC_API void cipc_pool_free(cipc_pool *p);

#ifdef __cplusplus
}
#endif
#endif
