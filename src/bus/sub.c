/* cipc_bus_sub: a subscriber driven by a cipc_loop. The blocking connect and handshake
 * of src/bus/conn.c run on libuv's thread pool; once connected, a uv_poll handle reads
 * the socket and hiredis's reader parses; a uv timer sends keepalive PINGs, declares the
 * connection dead when a PING goes unanswered, and paces reconnections. (hiredis 0.14's
 * own async API cannot adopt a socket we made, so rediss:// through the TLS tunnel and
 * connect timeouts would be impossible with it; this file replaces its libuv adapter.)
 *
 * States: CONNECTING (a work item in flight) -> CONNECTED -> (lost) WAITING (timer) ->
 * CONNECTING ... ; FAILED after giving up; closing at any point. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "bus/internal.h"
#include "cipc/buf.h"

enum { ST_CONNECTING = 1, ST_CONNECTED, ST_WAITING, ST_FAILED };

/* The poll handle of one connection; freed in its close callback. */
struct sub_poll {
    uv_poll_t h;
    struct cipc_bus_sub *s;
};

struct cipc_bus_sub {
    cipc_loop *loop;
    uv_loop_t *uv;
    struct cipc__bus_cfg cfg;
    char name[232];
    cipc_bus_msg_cb cb;
    void *ud;
    struct cipc__bus_names chans, pats;
    int state;
    uv_work_t work;
    int work_rc;
    struct cipc__bus_conn conn; /* written by the worker while CONNECTING */
    struct sub_poll *poll;
    int poll_events;
    uv_timer_t timer;
    cipc_buf out; /* bytes not yet written */
    int ever_connected;
    size_t resub_pending; /* confirmations of a resubscription still to swallow */
    size_t resub_total;
    int attempt;
    uint64_t rng;
    int64_t ping_sent_ms;
    int closing;
    int pending; /* closes and work items the final free waits for */
    cipc_bus_sub_close_cb close_cb;
    void *close_ud;
    char errmsg[320];
};

static void start_connect(cipc_bus_sub *s);
static void schedule_keepalive(cipc_bus_sub *s);

static void maybe_free(cipc_bus_sub *s)
{
    if (!s->closing || s->pending > 0)
        return;
    cipc__bus_conn_close(&s->conn);
    cipc__bus_names_free(&s->chans);
    cipc__bus_names_free(&s->pats);
    cipc_buf_free(&s->out);
    cipc__bus_cfg_free(&s->cfg);
    if (s->close_cb)
        s->close_cb(s, s->close_ud);
    free(s);
}

static void on_poll_closed(uv_handle_t *h)
{
    struct sub_poll *p = h->data;
    cipc_bus_sub *s = p->s;
    free(p);
    s->pending--;
    maybe_free(s);
}

static void on_timer_closed(uv_handle_t *h)
{
    cipc_bus_sub *s = h->data;
    s->pending--;
    maybe_free(s);
}

/* Deliver one event, unless the handle is closing. */
static void emit(cipc_bus_sub *s, const cipc_bus_msg *m)
{
    if (!s->closing && s->cb)
        s->cb(s, m, s->ud);
}

/* Stop reading and close the socket. */
static void close_conn(cipc_bus_sub *s)
{
    if (s->poll) {
        s->pending++;
        uv_close((uv_handle_t *)&s->poll->h, on_poll_closed);
        s->poll = NULL;
    }
    cipc__bus_conn_close(&s->conn);
    cipc_buf_reset(&s->out);
    s->poll_events = 0;
    s->ping_sent_ms = 0;
}

static void on_retry_timer(uv_timer_t *t)
{
    cipc_bus_sub *s = t->data;
    if (!s->closing && s->state == ST_WAITING)
        start_connect(s);
}

/* A connect attempt failed or the connection was lost: wait (backoff) and try again,
 * or give up and report CIPC_BUS_ERROR. */
static void retry_later(cipc_bus_sub *s, int rc, int count_attempt)
{
    int64_t delay = 0;
    if (count_attempt) {
        s->attempt++;
        if (!cipc__bus_retriable(rc))
            delay = -1;
        else
            delay = s->cfg.retry_forever
                        ? cipc_retry_backoff_ms(&s->cfg.retry, s->attempt, &s->rng)
                        : cipc_retry_delay_ms(&s->cfg.retry, s->attempt, -1, &s->rng);
    }
    if (delay < 0) {
        s->state = ST_FAILED;
        uv_timer_stop(&s->timer);
        cipc_bus_msg m = {.type = CIPC_BUS_ERROR, .err = rc};
        emit(s, &m);
        return;
    }
    s->state = ST_WAITING;
    uv_timer_start(&s->timer, on_retry_timer, (uint64_t)delay, 0);
}

/* The connection is unusable (EOF, error, dead): close it and reconnect at once (the
 * first attempt of an episode is immediate; later ones back off). */
static void lost(cipc_bus_sub *s, const char *why)
{
    snprintf(s->errmsg, sizeof s->errmsg, "%s", why);
    close_conn(s);
    s->attempt = 0;
    retry_later(s, CIPC_ENET, 0);
}

static void update_poll(cipc_bus_sub *s);

/* Write as much of s->out as the socket takes; poll for writability for the rest.
 * Returns 0 or -1 (the connection was lost). */
static int flush(cipc_bus_sub *s)
{
    while (s->out.len > 0) {
        ssize_t n = send(s->conn.fd, s->out.data, s->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            cipc_buf_consume(&s->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        lost(s, "send failed");
        return -1;
    }
    update_poll(s);
    return 0;
}

/* Queue one command built from `n` names after `cmd`. Returns 0 or -1 (lost). */
static int send_cmd(cipc_bus_sub *s, const char *cmd, char *const *names, size_t n)
{
    const char **argv = malloc((n + 1) * sizeof *argv);
    size_t *lens = malloc((n + 1) * sizeof *lens);
    char *f = NULL;
    int len = -1;
    if (argv && lens) {
        argv[0] = cmd;
        lens[0] = strlen(cmd);
        for (size_t i = 0; i < n; i++) {
            argv[i + 1] = names[i];
            lens[i + 1] = strlen(names[i]);
        }
        len = redisFormatCommandArgv(&f, (int)(n + 1), argv, lens);
    }
    free(argv);
    free(lens);
    if (len < 0 || cipc_buf_append(&s->out, f, (size_t)len) < 0) {
        redisFreeCommand(f);
        lost(s, "out of memory");
        return -1;
    }
    redisFreeCommand(f);
    return flush(s);
}

static void dispatch(cipc_bus_sub *s, redisReply *r)
{
    cipc_bus_msg m;
    int ev = cipc__bus_to_msg(r, 0, &m);
    if (ev && s->resub_pending > 0 &&
        (m.type == CIPC_BUS_SUBSCRIBE || m.type == CIPC_BUS_PSUBSCRIBE)) {
        if (--s->resub_pending == 0) {
            cipc_bus_msg gap = {.type = CIPC_BUS_GAP, .count = (long long)s->resub_total};
            emit(s, &gap);
        }
        return;
    }
    if (ev && s->cfg.skip_confirmations && m.type != CIPC_BUS_MESSAGE &&
        m.type != CIPC_BUS_PMESSAGE)
        return;
    if (ev)
        emit(s, &m);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    cipc_bus_sub *s = ((struct sub_poll *)h->data)->s;
    if (status < 0) {
        lost(s, uv_strerror(status));
        return;
    }
    if (events & UV_WRITABLE) {
        if (flush(s) < 0)
            return;
    }
    if (!(events & UV_READABLE))
        return;
    char buf[16384];
    for (;;) {
        ssize_t n = recv(s->conn.fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            lost(s, n == 0 ? "connection closed by the server" : strerror(errno));
            return;
        }
        s->conn.last_rx_ms = cipc_now_ms();
        s->ping_sent_ms = 0;
        if (redisReaderFeed(s->conn.rd, buf, (size_t)n) != REDIS_OK) {
            lost(s, "out of memory");
            return;
        }
        if ((size_t)n < sizeof buf)
            break;
    }
    for (;;) {
        redisReply *r = NULL;
        int b = cipc__bus_conn_buffered(&s->conn, &r);
        if (b < 0) {
            lost(s, "protocol error");
            return;
        }
        if (b == 0)
            break;
        dispatch(s, r);
        freeReplyObject(r);
        if (s->closing || s->state != ST_CONNECTED)
            return;
    }
    schedule_keepalive(s);
}

static void update_poll(cipc_bus_sub *s)
{
    if (!s->poll)
        return;
    int ev = UV_READABLE | (s->out.len ? UV_WRITABLE : 0);
    if (ev != s->poll_events) {
        uv_poll_start(&s->poll->h, ev, on_poll);
        s->poll_events = ev;
    }
}

static void on_keepalive(uv_timer_t *t)
{
    cipc_bus_sub *s = t->data;
    if (s->closing || s->state != ST_CONNECTED)
        return;
    int64_t now = cipc_now_ms();
    if (s->ping_sent_ms) {
        if (now - s->ping_sent_ms >= s->cfg.ping_timeout_ms) {
            char why[128];
            snprintf(why, sizeof why, "connection dead: no reply to PING within %ld ms",
                     s->cfg.ping_timeout_ms);
            lost(s, why);
            return;
        }
    } else if (now - s->conn.last_rx_ms >= s->cfg.ping_interval_ms) {
        s->ping_sent_ms = now;
        if (send_cmd(s, "PING", NULL, 0) < 0)
            return;
    }
    schedule_keepalive(s);
}

/* Arm the timer for the next keepalive step (a PING, or the end of its wait). */
static void schedule_keepalive(cipc_bus_sub *s)
{
    if (s->cfg.ping_interval_ms <= 0 || s->state != ST_CONNECTED)
        return;
    int64_t at = s->ping_sent_ms ? s->ping_sent_ms + s->cfg.ping_timeout_ms
                                 : s->conn.last_rx_ms + s->cfg.ping_interval_ms;
    int64_t now = cipc_now_ms();
    uv_timer_start(&s->timer, on_keepalive, (uint64_t)(at > now ? at - now : 0), 0);
}

static void work_cb(uv_work_t *w)
{
    cipc_bus_sub *s = w->data;
    s->work_rc = cipc__bus_conn_open(&s->conn, &s->cfg, s->name);
}

static void after_work_cb(uv_work_t *w, int status)
{
    cipc_bus_sub *s = w->data;
    s->pending--;
    if (s->closing || status < 0) {
        cipc__bus_conn_close(&s->conn);
        maybe_free(s);
        return;
    }
    if (s->work_rc < 0) {
        snprintf(s->errmsg, sizeof s->errmsg, "%s", s->conn.errmsg);
        retry_later(s, s->work_rc, 1);
        return;
    }
    s->poll = calloc(1, sizeof *s->poll);
    if (!s->poll || uv_poll_init(s->uv, &s->poll->h, s->conn.fd) < 0) {
        free(s->poll);
        s->poll = NULL;
        cipc__bus_conn_close(&s->conn);
        snprintf(s->errmsg, sizeof s->errmsg, "cannot poll the socket");
        retry_later(s, CIPC_ENET, 1);
        return;
    }
    s->poll->s = s;
    s->poll->h.data = s->poll;
    s->state = ST_CONNECTED;
    s->attempt = 0;
    s->ping_sent_ms = 0;
    s->resub_pending = s->resub_total = 0;
    if (s->ever_connected && s->chans.n + s->pats.n > 0)
        s->resub_pending = s->resub_total = s->chans.n + s->pats.n;
    s->ever_connected = 1;
    update_poll(s);
    if (s->chans.n && send_cmd(s, "SUBSCRIBE", s->chans.v, s->chans.n) < 0)
        return;
    if (s->pats.n && send_cmd(s, "PSUBSCRIBE", s->pats.v, s->pats.n) < 0)
        return;
    schedule_keepalive(s);
}

static void start_connect(cipc_bus_sub *s)
{
    s->state = ST_CONNECTING;
    s->work.data = s;
    int rc = uv_queue_work(s->uv, &s->work, work_cb, after_work_cb);
    if (rc < 0) {
        snprintf(s->errmsg, sizeof s->errmsg, "uv_queue_work: %s", uv_strerror(rc));
        retry_later(s, CIPC_EINTERNAL, 1);
        return;
    }
    s->pending++;
}

int cipc_bus_sub_new(cipc_loop *loop, const char *url, const cipc_bus_opts *opts,
                     cipc_bus_msg_cb cb, void *ud, cipc_bus_sub **out)
{
    if (!loop || !cb || !out)
        return -EINVAL;
    cipc_bus_sub *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    int rc = cipc__bus_cfg_init(&s->cfg, url, opts);
    if (rc < 0) {
        free(s);
        return rc;
    }
    s->loop = loop;
    s->uv = cipc_loop_uv(loop);
    s->cb = cb;
    s->ud = ud;
    s->rng = cipc_retry_seed();
    cipc__bus_conn_init(&s->conn);
    if (s->cfg.client_name)
        snprintf(s->name, sizeof s->name, "%s-sub", s->cfg.client_name);
    else
        snprintf(s->name, sizeof s->name, "cipc-%ld-%016llx-sub", (long)getpid(),
                 (unsigned long long)cipc_retry_seed());
    uv_timer_init(s->uv, &s->timer);
    s->timer.data = s;
    start_connect(s);
    *out = s;
    return 0;
}

static int sub_change(cipc_bus_sub *s, struct cipc__bus_names *set, const char *cmd,
                      const char *name, int add)
{
    if (!s || (add && !name))
        return -EINVAL;
    if (s->closing)
        return CIPC_ECLOSING;
    if (add) {
        int rc = cipc__bus_names_add(set, name);
        if (rc < 0)
            return rc;
    } else if (name) {
        cipc__bus_names_del(set, name);
    } else {
        cipc__bus_names_clear(set);
    }
    if (s->state == ST_CONNECTED) {
        char *one = (char *)name;
        send_cmd(s, cmd, name ? &one : NULL, name ? 1 : 0);
    }
    return 0;
}

int cipc_bus_sub_subscribe(cipc_bus_sub *s, const char *channel)
{
    return sub_change(s, s ? &s->chans : NULL, "SUBSCRIBE", channel, 1);
}

int cipc_bus_sub_psubscribe(cipc_bus_sub *s, const char *pattern)
{
    return sub_change(s, s ? &s->pats : NULL, "PSUBSCRIBE", pattern, 1);
}

int cipc_bus_sub_unsubscribe(cipc_bus_sub *s, const char *channel)
{
    return sub_change(s, s ? &s->chans : NULL, "UNSUBSCRIBE", channel, 0);
}

int cipc_bus_sub_punsubscribe(cipc_bus_sub *s, const char *pattern)
{
    return sub_change(s, s ? &s->pats : NULL, "PUNSUBSCRIBE", pattern, 0);
}

void cipc_bus_sub_close(cipc_bus_sub *s, cipc_bus_sub_close_cb cb, void *ud)
{
    if (!s || s->closing)
        return;
    s->closing = 1;
    s->close_cb = cb;
    s->close_ud = ud;
    if (s->state == ST_CONNECTING)
        uv_cancel((uv_req_t *)&s->work); /* after_work_cb runs either way */
    else
        close_conn(s);
    s->pending++;
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

const char *cipc_bus_sub_errmsg(const cipc_bus_sub *s)
{
    return s ? s->errmsg : "no subscriber";
}
