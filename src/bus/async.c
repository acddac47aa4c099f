/* A loop-driven Redis command connection (src/bus/async.h). States: IDLE (no socket) ->
 * CONNECTING (a work item on libuv's pool) -> CONNECTED -> (lost) IDLE. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include "bus/async.h"
#include "bus/internal.h"
#include "cipc/buf.h"

enum { ST_IDLE = 0, ST_CONNECTING, ST_CONNECTED };

struct apoll {
    uv_poll_t h;
    struct cipc__bus_async *a;
};

struct waiter {
    cipc__bus_async_cb cb;
    void *ud;
};

struct cipc__bus_async {
    uv_loop_t *uv;
    struct cipc__bus_cfg cfg;
    int state;
    uv_work_t work;
    int work_rc;
    struct cipc__bus_conn conn;
    struct apoll *poll;
    int poll_events;
    cipc_buf out;              /* formatted commands not yet written */
    struct waiter *w;          /* ring of callbacks, one per command sent or queued */
    size_t wh, wn, wcap;
    int closing, pending;      /* pending: work item and poll close still to come */
};

static void maybe_free(struct cipc__bus_async *a)
{
    if (!a->closing || a->pending > 0)
        return;
    cipc__bus_conn_close(&a->conn);
    cipc_buf_free(&a->out);
    cipc__bus_cfg_free(&a->cfg);
    free(a->w);
    free(a);
}

/* Fail every waiting command. */
static void fail_all(struct cipc__bus_async *a, const char *why)
{
    while (a->wn) {
        struct waiter w = a->w[a->wh];
        a->wh = (a->wh + 1) % a->wcap;
        a->wn--;
        w.cb(NULL, why, w.ud);
    }
}

static void on_poll_closed(uv_handle_t *h)
{
    struct apoll *p = h->data;
    struct cipc__bus_async *a = p->a;
    free(p);
    a->pending--;
    maybe_free(a);
}

static void drop_conn(struct cipc__bus_async *a, const char *why)
{
    if (a->poll) {
        a->pending++;
        uv_close((uv_handle_t *)&a->poll->h, on_poll_closed);
        a->poll = NULL;
    }
    cipc__bus_conn_close(&a->conn);
    cipc_buf_reset(&a->out);
    a->poll_events = 0;
    a->state = ST_IDLE;
    fail_all(a, why);
}

static void on_poll(uv_poll_t *h, int status, int events);

static void update_poll(struct cipc__bus_async *a)
{
    if (!a->poll)
        return;
    int ev = UV_READABLE | (a->out.len ? UV_WRITABLE : 0);
    if (ev != a->poll_events) {
        uv_poll_start(&a->poll->h, ev, on_poll);
        a->poll_events = ev;
    }
}

static int flush(struct cipc__bus_async *a)
{
    while (a->out.len > 0) {
        ssize_t n = send(a->conn.fd, a->out.data, a->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            cipc_buf_consume(&a->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        drop_conn(a, "send failed: connection lost");
        return -1;
    }
    update_poll(a);
    return 0;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct cipc__bus_async *a = ((struct apoll *)h->data)->a;
    if (status < 0) {
        drop_conn(a, uv_strerror(status));
        return;
    }
    if ((events & UV_WRITABLE) && flush(a) < 0)
        return;
    if (!(events & UV_READABLE))
        return;
    char buf[16384];
    for (;;) {
        ssize_t n = recv(a->conn.fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            drop_conn(a, n == 0 ? "connection closed by the server" : strerror(errno));
            return;
        }
        if (redisReaderFeed(a->conn.rd, buf, (size_t)n) != REDIS_OK) {
            drop_conn(a, "out of memory");
            return;
        }
        if ((size_t)n < sizeof buf)
            break;
    }
    for (;;) {
        redisReply *r = NULL;
        int b = cipc__bus_conn_buffered(&a->conn, &r);
        if (b < 0) {
            drop_conn(a, "protocol error");
            return;
        }
        if (b == 0)
            break;
        if (a->wn == 0) { /* a reply nobody asked for: the stream is out of step */
            freeReplyObject(r);
            drop_conn(a, "unexpected reply");
            return;
        }
        struct waiter w = a->w[a->wh];
        a->wh = (a->wh + 1) % a->wcap;
        a->wn--;
        w.cb(r, NULL, w.ud);
        freeReplyObject(r);
        if (a->closing || a->state != ST_CONNECTED)
            return;
    }
}

static void work_cb(uv_work_t *w)
{
    struct cipc__bus_async *a = w->data;
    a->work_rc = cipc__bus_conn_open(&a->conn, &a->cfg, a->cfg.client_name);
}

static void after_work_cb(uv_work_t *w, int status)
{
    struct cipc__bus_async *a = w->data;
    a->pending--;
    if (a->closing || status < 0) {
        cipc__bus_conn_close(&a->conn);
        a->state = ST_IDLE;
        fail_all(a, "cancelled");
        maybe_free(a);
        return;
    }
    if (a->work_rc < 0) {
        char why[300];
        snprintf(why, sizeof why, "cannot connect to Redis: %s", a->conn.errmsg);
        a->state = ST_IDLE;
        cipc_buf_reset(&a->out);
        fail_all(a, why);
        return;
    }
    a->poll = calloc(1, sizeof *a->poll);
    if (!a->poll || uv_poll_init(a->uv, &a->poll->h, a->conn.fd) < 0) {
        free(a->poll);
        a->poll = NULL;
        drop_conn(a, "cannot poll the socket");
        return;
    }
    a->poll->a = a;
    a->poll->h.data = a->poll;
    a->state = ST_CONNECTED;
    flush(a);
}

int cipc__bus_async_new(cipc_loop *loop, const char *url, const cipc_bus_opts *opts,
                        struct cipc__bus_async **out)
{
    if (!loop || !url || !out)
        return -EINVAL;
    struct cipc__bus_async *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    int rc = cipc__bus_cfg_init(&a->cfg, url, opts);
    if (rc < 0) {
        free(a);
        return rc;
    }
    a->uv = cipc_loop_uv(loop);
    a->out = (cipc_buf)CIPC_BUF_INIT;
    cipc__bus_conn_init(&a->conn);
    *out = a;
    return 0;
}

int cipc__bus_async_cmd(struct cipc__bus_async *a, cipc__bus_async_cb cb, void *ud, int argc,
                        const char *const *argv, const size_t *argl)
{
    if (!a || !cb || argc <= 0)
        return -EINVAL;
    if (a->closing)
        return CIPC_ECLOSING;
    if (a->wn == a->wcap) {
        size_t cap = a->wcap ? a->wcap * 2 : 16;
        struct waiter *w = malloc(cap * sizeof *w);
        if (!w)
            return -ENOMEM;
        for (size_t i = 0; i < a->wn; i++)
            w[i] = a->w[(a->wh + i) % a->wcap];
        free(a->w);
        a->w = w;
        a->wh = 0;
        a->wcap = cap;
    }
    char *f = NULL;
    int len = redisFormatCommandArgv(&f, argc, (const char **)argv, argl);
    if (len < 0 || cipc_buf_append(&a->out, f, (size_t)len) < 0) {
        redisFreeCommand(f);
        return -ENOMEM;
    }
    redisFreeCommand(f);
    a->w[(a->wh + a->wn) % a->wcap] = (struct waiter){cb, ud};
    a->wn++;
    if (a->state == ST_CONNECTED)
        return flush(a) < 0 ? 0 : 0; /* a loss fails the callback: still "queued" */
    if (a->state == ST_IDLE) {
        a->state = ST_CONNECTING;
        a->work.data = a;
        int qrc = uv_queue_work(a->uv, &a->work, work_cb, after_work_cb);
        if (qrc < 0) {
            a->state = ST_IDLE;
            a->wn--;
            cipc_buf_reset(&a->out);
            return CIPC_EINTERNAL;
        }
        a->pending++;
    }
    return 0;
}

void cipc__bus_async_close(struct cipc__bus_async *a)
{
    if (!a || a->closing)
        return;
    a->closing = 1;
    if (a->state == ST_CONNECTING)
        uv_cancel((uv_req_t *)&a->work); /* after_work_cb runs either way */
    else
        drop_conn(a, "cancelled");
    fail_all(a, "cancelled");
    maybe_free(a);
}

size_t cipc__bus_async_pending(const struct cipc__bus_async *a)
{
    return a ? a->wn : 0;
}
