/* cipc_loop: a libuv loop, owned or borrowed, plus a thread-safe stop. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cipc/loop.h"
#include "core/core_internal.h"

struct cipc_loop {
    uv_loop_t *uv;
    uv_loop_t own;
    uv_async_t stop; /* lets cipc_loop_stop() work from any thread */
    int owned;
};

static void on_stop(uv_async_t *a)
{
    uv_stop(a->loop);
}

int cipc_loop_new(const cipc_loop_opts *opts, cipc_loop **out)
{
    cipc_loop *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    if (opts && opts->uv) {
        l->uv = opts->uv;
    } else {
        int rc = uv_loop_init(&l->own);
        if (rc < 0) {
            free(l);
            return rc;
        }
        l->uv = &l->own;
        l->owned = 1;
    }
    int rc = uv_async_init(l->uv, &l->stop, on_stop);
    if (rc < 0) {
        if (l->owned)
            uv_loop_close(&l->own);
        free(l);
        return rc;
    }
    /* The stop handle must not keep the loop alive on its own. */
    uv_unref((uv_handle_t *)&l->stop);
    *out = l;
    return 0;
}

struct uv_loop_s *cipc_loop_uv(cipc_loop *loop)
{
    return loop->uv;
}

int cipc_loop_run(cipc_loop *loop, cipc_run_mode mode)
{
    uv_run_mode m = mode == CIPC_RUN_ONCE     ? UV_RUN_ONCE
                    : mode == CIPC_RUN_NOWAIT ? UV_RUN_NOWAIT
                                              : UV_RUN_DEFAULT;
    return uv_run(loop->uv, m);
}

void cipc_loop_stop(cipc_loop *loop)
{
    uv_async_send(&loop->stop);
}

static void count_open(uv_handle_t *h, void *arg)
{
    int *n = arg;
    if (!uv_is_closing(h))
        (*n)++;
}

int cipc_loop_free(cipc_loop *loop)
{
    if (!loop)
        return 0;
    /* Let pending close callbacks run, so handles closed just before are released. */
    uv_run(loop->uv, UV_RUN_NOWAIT);
    int open = 0;
    uv_walk(loop->uv, count_open, &open);
    if (open > 1 && loop->owned) /* our own stop handle is always there */
        return -EBUSY;
    uv_close((uv_handle_t *)&loop->stop, NULL);
    uv_run(loop->uv, UV_RUN_NOWAIT);
    if (loop->owned && uv_loop_close(loop->uv) < 0)
        return -EBUSY;
    free(loop);
    return 0;
}

/* Servers on libuv write with write(2), so a client that goes away while a reply is being
 * written raises SIGPIPE, whose default action kills the process. The broker and the HTTP
 * server call this when they are created: SIGPIPE is set to ignored (writes then fail
 * with EPIPE, which they handle) unless the program installed its own handler or already
 * ignores it. */
void cipc__ignore_sigpipe(void)
{
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
        !(sa.sa_flags & SA_SIGINFO)) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
}
