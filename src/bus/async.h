/* src/bus/async.h -- a Redis command connection driven by a cipc_loop, for the library's
 * own use (the hub's multi-machine mode): commands are pipelined, each reply goes to its
 * command's callback, in order. Like cipc_bus_sub, the blocking connect and handshake of
 * src/bus/conn.c (TCP, unix://, rediss:// through the TLS tunnel, AUTH, SELECT) run on
 * libuv's thread pool and the socket is then read with a uv_poll handle.
 *
 * The connection opens at the first command and again at the first command after it was
 * lost; commands in flight when it is lost fail (their callback gets NULL and a reason).
 * There is no retry: a command that failed may or may not have run on the server.
 *
 * Threading: everything on the loop's thread. */
#ifndef CIPC_BUS_ASYNC_H
#define CIPC_BUS_ASYNC_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "cipc/bus.h"
#include "cipc/loop.h"

struct cipc__bus_async;

/* A reply (a view, valid during the call; an error reply is a reply), or NULL and `err`
 * when the command failed (connection refused or lost, closed handle). */
typedef void (*cipc__bus_async_cb)(redisReply *r, const char *err, void *ud);

/* Returns 0 and *out, CIPC_EURL, -EINVAL, -ENOMEM. Nothing connects yet. */
int cipc__bus_async_new(cipc_loop *loop, const char *url, const cipc_bus_opts *opts,
                        struct cipc__bus_async **out);

/* Queue a command (argv[i] of argl[i] bytes). Returns 0 (`cb` follows exactly once),
 * CIPC_ECLOSING, -ENOMEM. */
int cipc__bus_async_cmd(struct cipc__bus_async *a, cipc__bus_async_cb cb, void *ud, int argc,
                        const char *const *argv, const size_t *argl);

/* Fail every pending command (callbacks run now, with err "cancelled") and free the
 * handle once its connect work and poll handle are done. NULL does nothing. */
void cipc__bus_async_close(struct cipc__bus_async *a);

/* Commands sent whose replies have not come yet. */
size_t cipc__bus_async_pending(const struct cipc__bus_async *a);

#endif
