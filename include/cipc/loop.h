/* cipc/loop.h -- the event loop every asynchronous cipc handle hangs off.
 *
 * A cipc_loop is a thin wrapper over a libuv loop: either one it creates and owns, or
 * the caller's own uv_loop_t (so cipc handles live beside the application's libuv
 * handles). Blocking convenience handles (cipc_session, later the pool and the queue)
 * need no loop.
 *
 * Callback contract, relied on by every asynchronous call in cipc:
 * - If a call that takes a callback returns < 0, the callback is never invoked.
 *   Otherwise it is invoked exactly once, on the loop's thread, with CIPC_ECANCELED
 *   if the operation is cancelled or its handle is closed first.
 * - Objects passed to a callback are views valid only inside the callback unless the
 *   callback's documentation says otherwise.
 * - A callback may start new operations, and may close its own handle unless that
 *   handle's header says otherwise (cipc_client_close() must not be called from one of
 *   the client's own callbacks).
 *
 * Threading: a loop and every handle on it belong to the thread that runs the loop;
 * nothing here is thread-safe except cipc_loop_stop(), which may be called from any
 * thread. */
#ifndef CIPC_LOOP_H
#define CIPC_LOOP_H

#include <stddef.h>

#include "cipc/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct uv_loop_s;

typedef struct cipc_loop cipc_loop;

typedef struct cipc_loop_opts {
    size_t size;          /* sizeof(cipc_loop_opts), or 0 for "this version" */
    struct uv_loop_s *uv; /* NULL -> the loop creates and owns a libuv loop; otherwise
                             borrows the caller's loop, which must outlive it */
} cipc_loop_opts;

#define CIPC_LOOP_OPTS_INIT                                                                        \
    {                                                                                              \
        sizeof(cipc_loop_opts), NULL                                                               \
    }

typedef enum cipc_run_mode {
    CIPC_RUN_DEFAULT = 0, /* until no active handles or requests remain, or stop */
    CIPC_RUN_ONCE = 1,    /* one iteration, waiting for events if there are none */
    CIPC_RUN_NOWAIT = 2   /* one iteration, never waiting */
} cipc_run_mode;

/* Create a loop. `opts` may be NULL. Returns 0 and sets *out, or -ENOMEM / a libuv
 * error (negated errno); *out is untouched on error. */
CIPC_API int cipc_loop_new(const cipc_loop_opts *opts, cipc_loop **out);

/* The libuv loop underneath, for the caller's own libuv handles. Returns a view valid
 * until cipc_loop_free(). */
CIPC_API struct uv_loop_s *cipc_loop_uv(cipc_loop *loop);

/* Run the loop (see cipc_run_mode). Returns non-zero if handles are still active
 * (uv_run's result). Not reentrant: do not call from a callback of the same loop. */
CIPC_API int cipc_loop_run(cipc_loop *loop, cipc_run_mode mode);

/* Make cipc_loop_run() return at the end of the current iteration. Thread-safe. */
CIPC_API void cipc_loop_stop(cipc_loop *loop);

/* Free the loop. Every cipc handle on it must have been closed; their pending close
 * callbacks are run first. Returns 0, or -EBUSY if handles are still open (the loop is
 * then left as it was). A borrowed libuv loop is not closed. NULL does nothing. */
CIPC_API int cipc_loop_free(cipc_loop *loop);

#ifdef __cplusplus
}
#endif
#endif
