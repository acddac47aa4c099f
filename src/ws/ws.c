/* The cipc_ws connection object: drives the protocol engine, calls the handlers, owns the
 * send queue and the slow-consumer policy, keepalive pings and the close timeout. See
 * ws.h for how a transport plugs in. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "ws/deflate.h"
#include "ws/handshake.h"
#include "ws/ws.h"

enum { WT_NONE, WT_PING, WT_PONG, WT_CLOSE };

void cipc__ws_opts_resolve(const cipc_ws_opts *in, cipc_ws_opts *o)
{
    if (in)
        *o = *in;
    else
        memset(o, 0, sizeof *o);
    if (!o->max_message)
        o->max_message = CIPC_WS_DEFAULT_MAX_MESSAGE;
    if (!o->max_buffered)
        o->max_buffered = CIPC_WS_DEFAULT_MAX_BUFFERED;
    if (!o->compress_min)
        o->compress_min = CIPC_WS_DEFAULT_COMPRESS_MIN;
    if (!o->compress_level)
        o->compress_level = 1;
    if (o->ping_interval_ms > 0 && o->pong_timeout_ms <= 0)
        o->pong_timeout_ms = o->ping_interval_ms;
    if (!o->close_timeout_ms)
        o->close_timeout_ms = CIPC_WS_DEFAULT_CLOSE_TIMEOUT_MS;
    o->subprotocols = NULL; /* negotiated by the handshake code; not kept */
    o->origins = NULL;
}

int cipc__ws_new(const struct cipc__ws_init *in, cipc_ws **out)
{
    cipc_ws *ws = calloc(1, sizeof *ws);
    if (!ws)
        return -ENOMEM;
    ws->h = *in->h;
    cipc__ws_opts_resolve(in->h->opts, &ws->o);
    ws->h.opts = &ws->o;
    ws->ud = in->ud;
    ws->tops = in->tops;
    ws->t = in->t;
    ws->is_server = in->is_server;
    ws->id = in->id;
    ws->owner = in->owner;
    ws->close_code = CIPC_WS_CLOSE_ABNORMAL;
    if (in->peer)
        snprintf(ws->peer, sizeof ws->peer, "%s", in->peer);
    int rc = 0;
    if (in->pmd && !ws->o.no_compression)
        rc = cipc__ws_deflate_new(in->pmd, in->is_server, ws->o.compress_level, &ws->pmd);
    if (rc == 0 && in->subprotocol && !(ws->subprotocol = strdup(in->subprotocol)))
        rc = -ENOMEM;
    if (rc == 0 && !(ws->path = strdup(in->path ? in->path : "/")))
        rc = -ENOMEM;
    if (rc == 0) {
        struct cipc__ws_proto_opts po = {
            .is_server = in->is_server,
            .max_message = ws->o.max_message,
            .pmd = ws->pmd,
            .compress_min = ws->o.compress_min,
        };
        rc = cipc__ws_proto_init(&ws->proto, &po);
    }
    if (rc < 0) {
        cipc__ws_deflate_free(ws->pmd);
        free(ws->subprotocol);
        free(ws->path);
        free(ws);
        return rc < 0 ? rc : -ENOMEM;
    }
    *out = ws;
    return 0;
}

/* --- blocks and the queue ----------------------------------------------------------- */

struct cipc__ws_block *cipc__ws_block_frame(int type, const void *data, size_t len)
{
    struct cipc__ws_block *b = malloc(sizeof *b + CIPC__WS_MAX_HEADER + len);
    if (!b)
        return NULL;
    size_t h = cipc__ws_header_encode(b->data, (unsigned)type, true, false, len, NULL);
    if (len)
        memcpy(b->data + h, data, len);
    b->refs = 1;
    b->len = h + len;
    return b;
}

void cipc__ws_block_unref(struct cipc__ws_block *b)
{
    if (b && --b->refs == 0)
        free(b);
}

static void qent_free(struct cipc__ws_qent *e)
{
    cipc__ws_block_unref(e->blk);
    if (e->done)
        e->done(e->zc, e->done_ud);
    free(e);
}

static size_t tqueued(cipc_ws *ws)
{
    return ws->gone ? 0 : ws->tops->queued(ws->t);
}

size_t cipc_ws_buffered(const cipc_ws *ws)
{
    return ws->qbytes + ws->cork.len + (ws->gone ? 0 : ws->tops->queued(ws->t));
}

/* Send the cork's frames in one piece. `keep`: more frames follow in this turn of the
 * loop, so the buffer is kept for them rather than freed and grown again. */
static void cork_send(cipc_ws *ws, int keep)
{
    if (ws->cork.len == 0)
        return;
    if (!ws->gone && !ws->closing) {
        struct cipc__ws_iov iov = {ws->cork.data, ws->cork.len};
        ws->tops->send(ws->t, &iov, 1);
    }
    if (!keep && ws->cork.cap > 4 * CIPC__WS_CORK_MAX)
        cipc_buf_free(&ws->cork); /* a burst is over: do not keep its memory */
    else
        cipc_buf_reset(&ws->cork);
}

static void cork_flush(cipc_ws *ws)
{
    cork_send(ws, 0);
}

static void flush_queue(cipc_ws *ws);

void cipc__ws_flush(cipc_ws *ws)
{
    ws->deferred = false;
    flush_queue(ws); /* the cork, then what waits in the queue while there is room */
}

static void note_buffered(cipc_ws *ws)
{
    size_t b = cipc_ws_buffered(ws);
    if (b > ws->st.buffered_peak)
        ws->st.buffered_peak = b;
}

/* Send an entry's bytes to the transport. */
static int qent_send(cipc_ws *ws, struct cipc__ws_qent *e)
{
    struct cipc__ws_iov iov[2];
    unsigned n = 0;
    if (e->blk) {
        iov[n].p = e->blk->data;
        iov[n++].n = e->blk->len;
    } else {
        iov[n].p = e->hdr;
        iov[n++].n = e->hlen;
        if (e->zc_len) {
            iov[n].p = e->zc;
            iov[n++].n = e->zc_len;
        }
    }
    return ws->tops->send(ws->t, iov, n);
}

/* Move queued entries to the transport while it holds less than the low-water mark. */
static void flush_queue(cipc_ws *ws)
{
    cork_flush(ws); /* older than anything queued */
    while (ws->qhead && !ws->gone && tqueued(ws) < CIPC__WS_LOW_WATER) {
        struct cipc__ws_qent *e = ws->qhead;
        ws->qhead = e->next;
        if (!ws->qhead)
            ws->qtail = NULL;
        ws->qbytes -= e->bytes;
        qent_send(ws, e);
        qent_free(e);
    }
    if (ws->refuse_full && cipc_ws_buffered(ws) < ws->o.max_buffered / 2 && !ws->closing) {
        ws->refuse_full = false;
        if (ws->h.on_drain)
            ws->h.on_drain(ws, ws->ud);
    }
}

static void enqueue(cipc_ws *ws, struct cipc__ws_qent *e)
{
    e->next = NULL;
    if (ws->qtail)
        ws->qtail->next = e;
    else
        ws->qhead = e;
    ws->qtail = e;
    ws->qbytes += e->bytes;
}

/* Drop queued data entries, oldest first, until `need` more bytes fit. Returns 1 if they
 * then fit. */
static int drop_oldest(cipc_ws *ws, size_t need)
{
    struct cipc__ws_qent **pp = &ws->qhead, *last = NULL;
    while (*pp && cipc_ws_buffered(ws) + need > ws->o.max_buffered) {
        struct cipc__ws_qent *e = *pp;
        if (e->control) {
            last = e;
            pp = &e->next;
            continue;
        }
        *pp = e->next;
        ws->qbytes -= e->bytes;
        ws->st.dropped++;
        qent_free(e);
    }
    ws->qtail = NULL;
    for (struct cipc__ws_qent *e = ws->qhead; e; e = e->next)
        ws->qtail = e;
    (void)last;
    return cipc_ws_buffered(ws) + need <= ws->o.max_buffered;
}

static void start_close(cipc_ws *ws, int code, const char *reason);

/* Apply the slow-consumer policy for a message of `bytes`. Returns 0 to go on, or the
 * code to return from the send. */
static int admit(cipc_ws *ws, size_t bytes)
{
    /* A message larger than the whole limit still goes when nothing is buffered, so
     * memory stays under max(max_buffered, one message). */
    size_t b = cipc_ws_buffered(ws);
    if (b + bytes <= ws->o.max_buffered || b == 0)
        return 0;
    switch (ws->o.slow_policy) {
    case CIPC_WS_SLOW_DROP_NEWEST:
        ws->st.dropped++;
        return CIPC_EBUSY;
    case CIPC_WS_SLOW_DROP_OLDEST:
        if (drop_oldest(ws, bytes) || cipc_ws_buffered(ws) == 0)
            return 0;
        ws->st.dropped++;
        return CIPC_EBUSY; /* larger than the whole limit */
    case CIPC_WS_SLOW_REFUSE:
        ws->refuse_full = true;
        return CIPC_EBUSY;
    case CIPC_WS_SLOW_CLOSE:
    default:
        ws->st.dropped++;
        if (!ws->err) {
            ws->err = CIPC_ETOOBIG;
            snprintf(ws->errmsg, sizeof ws->errmsg,
                     "slow consumer: %zu bytes buffered, limit %zu", cipc_ws_buffered(ws),
                     ws->o.max_buffered);
        }
        start_close(ws, CIPC_WS_CLOSE_POLICY, "slow consumer");
        /* The peer is not reading: do not wait for it to take the close frame. */
        ws->tops->timer(ws->t, ws->o.close_timeout_ms);
        ws->timer_kind = WT_CLOSE;
        return CIPC_ETOOBIG;
    }
}

/* Send a whole encoded frame: straight to the transport when nothing waits and it holds
 * little, else queued (copied unless it is a shared block). */
static int out_frame(cipc_ws *ws, const uint8_t *hdr, size_t hlen, const void *payload, size_t n,
                     struct cipc__ws_block *blk, bool control)
{
    size_t bytes = blk ? blk->len : hlen + n;
    if (!ws->qhead && ws->cork.len &&
        (tqueued(ws) + ws->cork.len + bytes >= CIPC__WS_LOW_WATER ||
         ws->cork.len + bytes > CIPC__WS_CORK_FLUSH))
        cork_send(ws, 1); /* a full cork goes now, so nothing queues behind an idle socket */
    if (!ws->qhead && tqueued(ws) + ws->cork.len < CIPC__WS_LOW_WATER) {
        if (bytes <= CIPC__WS_CORK_MAX && (ws->tops->defer || ws->in_input)) {
            /* Gathered with the others sent in this turn of the loop. */
            int rc = blk ? cipc_buf_append(&ws->cork, blk->data, blk->len)
                         : cipc_buf_append(&ws->cork, hdr, hlen);
            if (rc == 0 && !blk && n)
                rc = cipc_buf_append(&ws->cork, payload, n);
            if (rc < 0)
                return rc;
            if (ws->tops->defer && !ws->deferred) {
                ws->deferred = true;
                ws->tops->defer(ws->t);
            }
            note_buffered(ws);
            return 0;
        }
        cork_flush(ws);
        struct cipc__ws_iov iov[2];
        unsigned k = 0;
        if (blk) {
            iov[k].p = blk->data;
            iov[k++].n = blk->len;
        } else {
            iov[k].p = hdr;
            iov[k++].n = hlen;
            if (n) {
                iov[k].p = payload;
                iov[k++].n = n;
            }
        }
        int rc = ws->tops->send(ws->t, iov, k);
        note_buffered(ws);
        return rc;
    }
    struct cipc__ws_qent *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    if (blk) {
        blk->refs++;
        e->blk = blk;
    } else {
        e->blk = malloc(sizeof *e->blk + hlen + n);
        if (!e->blk) {
            free(e);
            return -ENOMEM;
        }
        e->blk->refs = 1;
        e->blk->len = hlen + n;
        memcpy(e->blk->data, hdr, hlen);
        if (n)
            memcpy(e->blk->data + hlen, payload, n);
    }
    e->bytes = bytes;
    e->control = control;
    enqueue(ws, e);
    note_buffered(ws);
    return 0;
}

/* Send what the engine queued in its own buffer (pongs, close frames). */
static void flush_proto_out(cipc_ws *ws)
{
    cipc_buf *o = cipc__ws_proto_out(&ws->proto);
    if (o->len == 0 || ws->gone || ws->closing)
        return;
    out_frame(ws, (const uint8_t *)o->data, o->len, NULL, 0, NULL, true);
    cipc_buf_reset(o);
}

/* Close the socket: at once, or after what is queued has been written. */
static void close_socket(cipc_ws *ws, bool now)
{
    if (ws->closing || ws->gone)
        return;
    flush_proto_out(ws);
    if (now)
        cipc_buf_reset(&ws->cork);
    else
        cork_flush(ws);
    if (!now) {
        /* Whatever still waits in our queue goes to the transport first. */
        while (ws->qhead) {
            struct cipc__ws_qent *e = ws->qhead;
            ws->qhead = e->next;
            ws->qbytes -= e->bytes;
            qent_send(ws, e);
            qent_free(e);
        }
        ws->qtail = NULL;
    }
    ws->closing = true;
    ws->tops->close(ws->t, now);
}

static void start_close(cipc_ws *ws, int code, const char *reason)
{
    if (cipc__ws_proto_state(&ws->proto) != CIPC__WS_OPEN)
        return;
    cipc__ws_proto_close(&ws->proto, (uint16_t)code, reason, reason ? strlen(reason) : 0);
    flush_proto_out(ws);
}

/* --- timers ------------------------------------------------------------------------- */

static void arm(cipc_ws *ws, int kind, long ms)
{
    ws->timer_kind = kind;
    ws->tops->timer(ws->t, kind == WT_NONE ? 0 : ms);
}

void cipc__ws_timer(cipc_ws *ws)
{
    int kind = ws->timer_kind;
    ws->timer_kind = WT_NONE;
    if (ws->gone || ws->closing)
        return;
    switch (kind) {
    case WT_PING:
        if (cipc__ws_proto_state(&ws->proto) != CIPC__WS_OPEN)
            return;
        cipc__ws_proto_send_control(&ws->proto, CIPC__WS_OP_PING, "cipc", 4);
        flush_proto_out(ws);
        ws->awaiting_pong = true;
        arm(ws, WT_PONG, ws->o.pong_timeout_ms);
        return;
    case WT_PONG:
        if (!ws->err) {
            ws->err = CIPC_ETIMEOUT;
            snprintf(ws->errmsg, sizeof ws->errmsg, "no pong within %ld ms",
                     ws->o.pong_timeout_ms);
        }
        close_socket(ws, true);
        return;
    case WT_CLOSE:
        /* The peer did not finish the closing handshake (or take our close frame). */
        close_socket(ws, true);
        return;
    default:
        return;
    }
}

/* --- input -------------------------------------------------------------------------- */

void cipc__ws_opened(cipc_ws *ws, cipc_http_req *req)
{
    ws->opened = true;
    if (ws->o.ping_interval_ms > 0)
        arm(ws, WT_PING, ws->o.ping_interval_ms);
    if (ws->h.on_open)
        ws->h.on_open(ws, req, ws->ud);
}

static void on_event(cipc_ws *ws, const struct cipc__ws_event *ev)
{
    switch (ev->type) {
    case CIPC__WS_EV_MESSAGE:
        ws->st.msgs_in++;
        ws->st.bytes_in += ev->len;
        if (ws->h.on_message && !ws->closing)
            ws->h.on_message(ws, (int)ev->opcode, ev->data, ev->len, ws->ud);
        break;
    case CIPC__WS_EV_PING:
        flush_proto_out(ws); /* the pong */
        if (ws->h.on_ping)
            ws->h.on_ping(ws, ev->data, ev->len, ws->ud);
        break;
    case CIPC__WS_EV_PONG:
        if (ws->awaiting_pong) {
            ws->awaiting_pong = false;
            if (ws->o.ping_interval_ms > 0 && ws->timer_kind == WT_PONG)
                arm(ws, WT_PING, ws->o.ping_interval_ms);
        }
        if (ws->h.on_pong)
            ws->h.on_pong(ws, ev->data, ev->len, ws->ud);
        break;
    case CIPC__WS_EV_CLOSE:
        ws->peer_closed = true;
        ws->close_code = ev->code;
        ws->close_reason_len =
            ev->reason_len < sizeof ws->close_reason - 1 ? ev->reason_len : sizeof ws->close_reason - 1;
        memcpy(ws->close_reason, ev->reason, ws->close_reason_len);
        ws->close_reason[ws->close_reason_len] = '\0';
        flush_proto_out(ws); /* the echoed close */
        break;
    case CIPC__WS_EV_ERROR:
        if (!ws->err) {
            ws->err = CIPC_EPROTO;
            snprintf(ws->errmsg, sizeof ws->errmsg, "closing with %u: %.*s", ev->code,
                     (int)(ev->reason_len ? ev->reason_len : strlen(ev->reason)), ev->reason);
        }
        ws->close_code = CIPC_WS_CLOSE_ABNORMAL;
        flush_proto_out(ws); /* our close frame with the code */
        break;
    default:
        break;
    }
}

void cipc__ws_input(cipc_ws *ws, uint8_t *in, size_t n)
{
    if (ws->gone)
        return;
    ws->in_input = true;
    if (ws->o.ping_interval_ms > 0 && ws->timer_kind == WT_PING)
        arm(ws, WT_PING, ws->o.ping_interval_ms); /* traffic: the next ping can wait */
    while (n > 0) {
        size_t used = 0;
        struct cipc__ws_event ev;
        int rc = cipc__ws_proto_feed(&ws->proto, in, n, &used, &ev);
        in += used;
        n -= used;
        if (rc < 0 && ev.type != CIPC__WS_EV_ERROR)
            break;
        if (ev.type == CIPC__WS_EV_NONE)
            break;
        on_event(ws, &ev);
        if (ws->gone)
            break;
    }
    ws->in_input = false;
    if (ws->gone)
        return;
    flush_proto_out(ws);
    if (!ws->tops->defer)
        flush_queue(ws);
    if (cipc__ws_proto_should_close_tcp(&ws->proto)) {
        /* Both closes seen (or a protocol failure): the server closes TCP once the close
         * frame is out; a client gives the server close_timeout_ms to close it first. */
        if (ws->is_server || ws->err)
            close_socket(ws, false);
        else if (ws->timer_kind != WT_CLOSE)
            arm(ws, WT_CLOSE, ws->o.close_timeout_ms);
    }
}

void cipc__ws_writable(cipc_ws *ws)
{
    if (ws->gone)
        return;
    flush_queue(ws);
}

void cipc__ws_fail(cipc_ws *ws, int err, const char *msg)
{
    if (!ws->err && err) {
        ws->err = err;
        snprintf(ws->errmsg, sizeof ws->errmsg, "%s", msg ? msg : cipc_strerror(err));
    }
    close_socket(ws, true);
}

/* Tell the handlers the connection ended: on_error if an error is owed, then on_close. */
static void report_end(cipc_ws *ws, int err)
{
    ws->gone = true;
    if (err && !ws->err && !ws->peer_closed &&
        cipc__ws_proto_state(&ws->proto) != CIPC__WS_CLOSE_SENT) {
        ws->err = err;
        snprintf(ws->errmsg, sizeof ws->errmsg, "connection lost: %s", cipc_strerror(err));
    }
    while (ws->qhead) {
        struct cipc__ws_qent *e = ws->qhead;
        ws->qhead = e->next;
        qent_free(e);
    }
    ws->qtail = NULL;
    ws->qbytes = 0;
    cipc_buf_free(&ws->cork);
    if (ws->err && ws->h.on_error)
        ws->h.on_error(ws, ws->err, ws->errmsg, ws->ud);
    if (ws->h.on_close)
        ws->h.on_close(ws, ws->close_code, ws->close_reason, ws->close_reason_len, ws->ud);
}

void cipc__ws_gone(cipc_ws *ws, int err)
{
    report_end(ws, err);
    cipc__ws_free(ws);
}

void cipc__ws_free(cipc_ws *ws)
{
    cipc_buf_free(&ws->cork);
    while (ws->qhead) {
        struct cipc__ws_qent *e = ws->qhead;
        ws->qhead = e->next;
        qent_free(e);
    }
    cipc__ws_proto_free(&ws->proto);
    cipc__ws_deflate_free(ws->pmd);
    for (size_t i = 0; i < ws->ntopics; i++)
        free(ws->topics[i]);
    free(ws->topics);
    free(ws->subprotocol);
    free(ws->path);
    free(ws);
}

int cipc__ws_lost(cipc_ws *ws, int err)
{
    report_end(ws, err);
    cipc__ws_proto_free(&ws->proto);
    cipc__ws_deflate_free(ws->pmd);
    ws->pmd = NULL;
    free(ws->subprotocol);
    ws->subprotocol = NULL;
    ws->gone = ws->closing = ws->peer_closed = ws->refuse_full = ws->awaiting_pong = false;
    ws->opened = false;
    ws->close_code = CIPC_WS_CLOSE_ABNORMAL;
    ws->close_reason[0] = '\0';
    ws->close_reason_len = 0;
    ws->err = 0;
    ws->errmsg[0] = '\0';
    ws->timer_kind = WT_NONE;
    ws->deferred = false;
    cipc_buf_free(&ws->cork);
    struct cipc__ws_proto_opts po = {
        .is_server = ws->is_server,
        .max_message = ws->o.max_message,
        .compress_min = ws->o.compress_min,
    };
    return cipc__ws_proto_init(&ws->proto, &po);
}

int cipc__ws_set_negotiated(cipc_ws *ws, const struct cipc__ws_pmd_params *pmd,
                            const char *subprotocol)
{
    if (pmd && !ws->o.no_compression && !ws->pmd) {
        int rc = cipc__ws_deflate_new(pmd, ws->is_server, ws->o.compress_level, &ws->pmd);
        if (rc < 0)
            return rc;
        ws->proto.pmd = ws->pmd;
    }
    free(ws->subprotocol);
    ws->subprotocol = subprotocol ? strdup(subprotocol) : NULL;
    return subprotocol && !ws->subprotocol ? -ENOMEM : 0;
}

/* --- the public calls --------------------------------------------------------------- */

static int usable(cipc_ws *ws)
{
    if (ws->gone || ws->closing || cipc__ws_proto_state(&ws->proto) != CIPC__WS_OPEN)
        return CIPC_ECLOSING;
    return 0;
}

int cipc_ws_send(cipc_ws *ws, int type, const void *data, size_t len)
{
    if (!ws || (type != CIPC_WS_TEXT && type != CIPC_WS_BINARY) || (!data && len))
        return -EINVAL;
    int rc = usable(ws);
    if (rc < 0)
        return rc;
    if ((rc = admit(ws, len + CIPC__WS_MAX_HEADER)) < 0)
        return rc;
    if (ws->is_server && (!ws->pmd || len < ws->o.compress_min)) {
        /* Unmasked and uncompressed: the header here, the payload from where it is. */
        if (type == CIPC_WS_TEXT && !cipc__utf8_valid(data, len))
            return CIPC_EPROTO;
        uint8_t hdr[CIPC__WS_MAX_HEADER];
        size_t h = cipc__ws_header_encode(hdr, (unsigned)type, true, false, len, NULL);
        rc = out_frame(ws, hdr, h, data, len, NULL, false);
    } else {
        cipc_buf b = CIPC_BUF_INIT;
        rc = cipc__ws_proto_send(&ws->proto, (unsigned)type, data, len, &b);
        if (rc == 0)
            rc = out_frame(ws, (const uint8_t *)b.data, b.len, NULL, 0, NULL, false);
        cipc_buf_free(&b);
    }
    if (rc == 0) {
        ws->st.msgs_out++;
        ws->st.bytes_out += len;
    }
    return rc;
}

int cipc_ws_send_text(cipc_ws *ws, const char *text)
{
    return cipc_ws_send(ws, CIPC_WS_TEXT, text, text ? strlen(text) : 0);
}

int cipc_ws_send_zc(cipc_ws *ws, int type, const void *data, size_t len,
                    void (*done)(const void *data, void *done_ud), void *done_ud)
{
    int rc = 0;
    if (!ws || (type != CIPC_WS_TEXT && type != CIPC_WS_BINARY) || (!data && len))
        rc = -EINVAL;
    else if ((rc = usable(ws)) == 0 && type == CIPC_WS_TEXT && !cipc__utf8_valid(data, len))
        rc = CIPC_EPROTO;
    else if (rc == 0)
        rc = admit(ws, len + CIPC__WS_MAX_HEADER);
    if (rc == 0 && !ws->is_server) {
        /* A client masks its payload, so the bytes cannot go out from where they are. */
        rc = cipc_ws_send(ws, type, data, len);
        if (done)
            done(data, done_ud);
        return rc;
    }
    if (rc < 0) {
        if (done)
            done(data, done_ud);
        return rc;
    }
    uint8_t hdr[CIPC__WS_MAX_HEADER];
    size_t h = cipc__ws_header_encode(hdr, (unsigned)type, true, false, len, NULL);
    if (!ws->qhead && tqueued(ws) < CIPC__WS_LOW_WATER) {
        /* The transport copies what the socket does not take now. */
        rc = out_frame(ws, hdr, h, data, len, NULL, false);
        if (done)
            done(data, done_ud);
    } else {
        struct cipc__ws_qent *e = calloc(1, sizeof *e);
        if (!e) {
            if (done)
                done(data, done_ud);
            return -ENOMEM;
        }
        memcpy(e->hdr, hdr, h);
        e->hlen = (uint8_t)h;
        e->zc = data;
        e->zc_len = len;
        e->done = done;
        e->done_ud = done_ud;
        e->bytes = h + len;
        enqueue(ws, e);
        note_buffered(ws);
    }
    if (rc == 0) {
        ws->st.msgs_out++;
        ws->st.bytes_out += len;
    }
    return rc;
}

int cipc__ws_send_block(cipc_ws *ws, struct cipc__ws_block *b)
{
    int rc = usable(ws);
    if (rc < 0)
        return rc;
    if ((rc = admit(ws, b->len)) < 0)
        return rc;
    rc = out_frame(ws, NULL, 0, NULL, 0, b, false);
    if (rc == 0) {
        ws->st.msgs_out++;
        ws->st.bytes_out += b->len;
    }
    return rc;
}

int cipc_ws_ping(cipc_ws *ws, const void *data, size_t len)
{
    int rc = usable(ws);
    if (rc < 0)
        return rc;
    if (len > CIPC__WS_MAX_CONTROL || (!data && len))
        return -EINVAL;
    rc = cipc__ws_proto_send_control(&ws->proto, CIPC__WS_OP_PING, data ? data : "", len);
    if (rc == 0)
        flush_proto_out(ws);
    return rc;
}

int cipc_ws_close(cipc_ws *ws, int code, const char *reason)
{
    int rc = usable(ws);
    if (rc < 0)
        return rc;
    size_t rlen = reason ? strlen(reason) : 0;
    if (!cipc__ws_close_code_sendable((unsigned)code) || rlen > 123 ||
        (reason && !cipc__utf8_valid(reason, rlen)))
        return -EINVAL;
    rc = cipc__ws_proto_close(&ws->proto, (uint16_t)code, reason, rlen);
    if (rc < 0)
        return rc;
    ws->user_closed = true;
    flush_proto_out(ws);
    arm(ws, WT_CLOSE, ws->o.close_timeout_ms);
    return 0;
}

void cipc_ws_stats_get(const cipc_ws *ws, cipc_ws_stats *out)
{
    *out = ws->st;
    out->buffered = cipc_ws_buffered(ws);
}

const char *cipc_ws_subprotocol(const cipc_ws *ws)
{
    return ws->subprotocol;
}

int cipc_ws_compressed(const cipc_ws *ws)
{
    return ws->pmd != NULL;
}

void cipc_ws_set_user(cipc_ws *ws, void *user)
{
    ws->user = user;
}

void *cipc_ws_user(const cipc_ws *ws)
{
    return ws->user;
}

const char *cipc_ws_path(const cipc_ws *ws)
{
    return ws->path;
}

const char *cipc_ws_peer(const cipc_ws *ws)
{
    return ws->peer;
}

uint64_t cipc_ws_id(const cipc_ws *ws)
{
    return ws->id;
}
