/* src/process/queue_internal.h -- cipc_queue internals the tests look at. */
#ifndef CIPC_PROCESS_QUEUE_INTERNAL_H
#define CIPC_PROCESS_QUEUE_INTERNAL_H

#include <stdint.h>

#include "cipc/queue.h"

/* How many times a lock of this queue was taken over from a process that died holding
 * it (EOWNERDEAD), since the queue was created. Thread-safe. */
uint32_t cipc__queue_recoveries(const cipc_queue *q);

/* For tests: take the put lock (put_side 1) or the get lock (0) and return holding it,
 * so that a child can _exit() with it held. With put_side 1 it also fills the ring's
 * free bytes with 0xee, as a put killed in the middle of its copy would leave them.
 * Returns 0 or a negative code. */
int cipc__queue_lock_for_test(cipc_queue *q, int put_side);

#endif
