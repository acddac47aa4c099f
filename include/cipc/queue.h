/* cipc/queue.h -- a bounded multi-producer multi-consumer queue of variable-size messages
 * in shared memory, between processes (in the manner of Python's multiprocessing.Queue,
 * without pickling and without a feeder thread).
 *
 *     cipc_queue *q = NULL;
 *     cipc_queue_new(&(cipc_queue_opts){.capacity = 1 << 20, .max_msg = 4096}, &q);
 *     if (fork() == 0) {                           // the mapping is inherited
 *         cipc_queue_put(q, "hello", 5, -1);
 *         _exit(0);
 *     }
 *     char buf[4096];
 *     size_t len;
 *     cipc_queue_get(q, buf, sizeof buf, &len, 1000);    // "hello", or CIPC_ETIMEOUT
 *     cipc_queue_close(q);
 *
 * A queue lives in one shared mapping: an anonymous memfd (opts.name == NULL; shared with
 * children created by fork() after cipc_queue_new()) or a POSIX shared-memory object
 * (opts.name, opened by unrelated processes with cipc_queue_open() and removed with
 * cipc_queue_unlink()). Messages are 0 to max_msg bytes; they are delivered in the order
 * their puts completed, each to exactly one get. The ring holds `capacity` bytes; a
 * message takes its length rounded up to 8, plus 8 bytes.
 *
 * Robustness: a process killed at any moment (SIGKILL included, while it holds the
 * queue's lock or in the middle of copying) does not block the others and does not
 * corrupt the queue. A put that returned 0 is in the queue until one get takes it; a put
 * interrupted before it returned either committed whole or left no trace; a get
 * interrupted before it returned either took its message (which is then gone with that
 * process) or left it queued for another get. No message is ever delivered twice.
 * Blocking calls sleep on futexes (no spinning beyond a few microseconds); every wait
 * takes a timeout in milliseconds: < 0 waits forever, 0 does not wait, > 0 waits at most
 * that long (a deadline on the monotonic clock).
 *
 * Errors: calls return >= 0 on success or a negative code: -EINVAL (bad argument or
 * sizes), CIPC_ETOOBIG (a message larger than max_msg; or, on get, a buffer too small:
 * the message stays queued), CIPC_EAGAIN (try_ variants and timeout 0: the queue is full
 * or empty), CIPC_ETIMEOUT (the timeout passed), CIPC_ECLOSING (after
 * cipc_queue_shutdown(): puts fail at once, gets fail once the queue is empty),
 * CIPC_EPROTO (the shared object is not a cipc queue of this version, or it is
 * corrupt), -ENOMEM, and -errno from memfd_create/shm_open/ftruncate/mmap.
 *
 * Threading: a cipc_queue handle may be used by any number of threads at once, in any
 * number of processes; cipc_queue_close() must not race with other calls on the same
 * handle. Linux only. */
#ifndef CIPC_QUEUE_H
#define CIPC_QUEUE_H

#include <stddef.h>
#include <sys/uio.h>

#include "cipc/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cipc_queue cipc_queue;

#define CIPC_QUEUE_DEFAULT_CAPACITY (1u << 20) /* bytes of ring */
#define CIPC_QUEUE_DEFAULT_MAX_MSG  (64u * 1024)
#define CIPC_QUEUE_MAX_CAPACITY     (1u << 30)

/* Options for cipc_queue_new(); zero means the default. Only ever extended at the end. */
typedef struct cipc_queue_opts {
    size_t size;      /* sizeof(cipc_queue_opts), or 0 for "this version" */
    size_t capacity;  /* ring bytes, rounded up to 8; 0 -> the larger of 1 MiB and
                         2 * (max_msg + 8) rounded up; otherwise it must be at least
                         2 * (round8(max_msg) + 8) and at most CIPC_QUEUE_MAX_CAPACITY */
    size_t max_msg;   /* largest message in bytes; 0 -> 64 KiB */
    const char *name; /* NULL: anonymous (inherited across fork). Otherwise a POSIX
                         shared-memory name ("/jobs" or "jobs"); it must not exist yet */
    unsigned mode;    /* permissions of a named queue; 0 -> 0600 */
} cipc_queue_opts;

/* Create a queue. `opts` may be NULL (anonymous, defaults); borrows `opts` and its name.
 * Returns 0 and sets *out (returns owned: cipc_queue_close()), or -EINVAL (sizes out of
 * range, empty name), -EEXIST (a named object exists already), -EACCES, -ENOMEM, or
 * another -errno; *out is untouched on error and a half-created named object is
 * removed. */
CIPC_API int cipc_queue_new(const cipc_queue_opts *opts, cipc_queue **out);

/* Open an existing named queue (created by cipc_queue_new() in any process, with the
 * same name). Borrows `name`. Returns 0 and sets *out (returns owned: cipc_queue_close()),
 * or -ENOENT, -EACCES, -EINVAL (bad name), CIPC_EPROTO (not a queue of this version, or
 * not initialised yet), -ENOMEM. */
CIPC_API int cipc_queue_open(const char *name, cipc_queue **out);

/* Unmap the queue from this process and free the handle. The queue itself lives on for
 * other processes (and children); a named queue stays until cipc_queue_unlink() and the
 * last unmapping. NULL does nothing. The handle must not be used afterwards. */
CIPC_API void cipc_queue_close(cipc_queue *q);

/* Remove the name of a named queue (shm_unlink); processes that have it open keep
 * using it. Borrows `name`. Returns 0, -ENOENT, -EACCES or -EINVAL. */
CIPC_API int cipc_queue_unlink(const char *name);

/* Put one message of `len` bytes (0 allowed), waiting up to `timeout_ms` for room.
 * Copies `data` (NULL allowed when len is 0). Returns 0 once the message is committed,
 * or CIPC_ETOOBIG (len > max_msg), -EINVAL, CIPC_EAGAIN (timeout 0 and no room),
 * CIPC_ETIMEOUT, CIPC_ECLOSING (shut down). On any error nothing was queued. */
CIPC_API int cipc_queue_put(cipc_queue *q, const void *data, size_t len, long timeout_ms);

/* cipc_queue_put() with timeout 0: CIPC_EAGAIN when the queue has no room. */
CIPC_API int cipc_queue_try_put(cipc_queue *q, const void *data, size_t len);

/* Put up to `n` messages (msgs[i].iov_base / iov_len, copied) under one lock, in order.
 * Waits up to `timeout_ms` for room for the first only, then puts as many as fit.
 * Returns the number queued (1..n), or the error of the first message (as
 * cipc_queue_put()); a later message that is too big stops the batch before it. */
CIPC_API int cipc_queue_put_many(cipc_queue *q, const struct iovec *msgs, size_t n,
                                 long timeout_ms);

/* Take the oldest message, waiting up to `timeout_ms` for one. Copies it into
 * buf[0..cap) and sets *len. Returns 0, or CIPC_ETOOBIG if the message is larger than
 * `cap` (*len is set to its size; the message stays queued, first in line), CIPC_EAGAIN
 * (timeout 0 and empty), CIPC_ETIMEOUT, CIPC_ECLOSING (shut down and empty), -EINVAL,
 * CIPC_EPROTO (corrupt queue). */
CIPC_API int cipc_queue_get(cipc_queue *q, void *buf, size_t cap, size_t *len, long timeout_ms);

/* cipc_queue_get() with timeout 0: CIPC_EAGAIN when the queue is empty. */
CIPC_API int cipc_queue_try_get(cipc_queue *q, void *buf, size_t cap, size_t *len);

/* cipc_queue_get() into a new buffer: *out returns owned (free() it; never NULL on
 * success, even for an empty message) and *len its size. Same errors, plus -ENOMEM
 * (the message stays queued). */
CIPC_API int cipc_queue_get_alloc(cipc_queue *q, void **out, size_t *len, long timeout_ms);

/* Take up to `max_n` messages under one lock, copying them back to back into
 * buf[0..cap) and their sizes into lens[0..max_n). Waits up to `timeout_ms` for the
 * first only. Returns the number taken (1..max_n) or the error of the first message (as
 * cipc_queue_get(); CIPC_ETOOBIG sets lens[0]). */
CIPC_API int cipc_queue_get_many(cipc_queue *q, void *buf, size_t cap, size_t *lens, size_t max_n,
                                 long timeout_ms);

/* The number of messages in the queue now (a snapshot), or -EINVAL for NULL. */
CIPC_API int cipc_queue_count(const cipc_queue *q);

/* The largest message this queue accepts (its max_msg), or 0 for NULL. */
CIPC_API size_t cipc_queue_max_msg(const cipc_queue *q);

/* Shut the queue down for every process: puts fail with CIPC_ECLOSING from now on,
 * gets return the remaining messages and then CIPC_ECLOSING; every blocked caller
 * wakes. Irreversible. Returns 0, or -EINVAL for NULL. */
CIPC_API int cipc_queue_shutdown(cipc_queue *q);

#ifdef __cplusplus
}
#endif
#endif
