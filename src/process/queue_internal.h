/* src/process/queue_internal.h -- cipc_queue internals the tests look at. */
#ifndef CIPC_PROCESS_QUEUE_INTERNAL_H
#define CIPC_PROCESS_QUEUE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "cipc/queue.h"

/* How many times a lock of this queue was taken over from a process that died holding
 * it (EOWNERDEAD), since the queue was created. Thread-safe. */
uint32_t cipc__queue_recoveries(const cipc_queue *q);

/* For tests: take the put lock (put_side 1) or the get lock (0) and return holding it,
 * so that a child can _exit() with it held. With put_side 1 it also fills the ring's
 * free bytes with 0xee, as a put killed in the middle of its copy would leave them.
 * Returns 0 or a negative code. */
int cipc__queue_lock_for_test(cipc_queue *q, int put_side);

/* Put ONE message made of the parts parts[0..n) back to back (a gathered put: no
 * intermediate buffer). Otherwise as cipc_queue_put(). */
int cipc__queue_putv(cipc_queue *q, const struct iovec *parts, size_t n, long timeout_ms);

/* Called on a message in place, in the ring, with the get lock held: it must not call
 * into this queue. data/len are valid only during the call. */
typedef void (*cipc__queue_visit_fn)(void *ctx, const void *data, size_t len);

/* Take up to max_n messages as cipc_queue_get_many() does, but instead of copying them
 * out call fn(ctx, data, len) on each in place, then release them all (R2: a process
 * killed during the visits leaves them queued). Returns the number taken, or the errors
 * of cipc_queue_get_many(). */
int cipc__queue_get_visit(cipc_queue *q, cipc__queue_visit_fn fn, void *ctx, size_t max_n,
                          long timeout_ms);

/* How long this handle spins (in pauses, about 10 ns each) before sleeping on a futex
 * when it must wait; < 0 restores the default. A handle whose process shares its CPUs
 * with busy peers should spin little. Not thread-safe against other calls on q. */
void cipc__queue_set_spin(cipc_queue *q, int pauses);

#endif
