/* Connections: reading, parsing, body collection, dispatch to routes, writing
 * responses, keep-alive, pipelining (one request at a time, answered in order) and the
 * per-connection timers. Runs on a worker's loop thread. */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cipc/log.h"
#include "cipc/time.h"
#include "cipc/url.h"
#include "http/status.h"
#include "http_server/internal.h"
#include "ws/ws.h"

#define LOG_MODULE "http_server"
#define READ_CHUNK 16384

enum { T_NONE, T_IDLE, T_HEAD, T_BODY, T_WRITE, T_WS };

static void conn_process(struct conn *c);
static void flush_unlink(struct conn *c);
static void on_conn_closed(uv_handle_t *h);
static void conn_close(struct conn *c);
static void on_timer(uv_timer_t *t);
static int answer_orphan(struct conn *c);
static void stream_abort(struct conn *c);
static const struct route *route_lookup(struct conn *c, int *mismatch);
static int stream_piece(struct conn *c, const char *p, size_t n);
static void stream_end(struct conn *c);

/* --- small helpers --------------------------------------------------------------------- */

const char *cipc__worker_date(struct worker *w)
{
    time_t now = time(NULL);
    if (now != w->date_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(w->date, sizeof w->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        w->date_at = now;
    }
    return w->date;
}

static void set_timer(struct conn *c, int kind)
{
    const cipc_server_opts *o = &c->w->srv->o;
    long ms = kind == T_IDLE    ? o->idle_timeout_ms
              : kind == T_HEAD  ? o->header_timeout_ms
              : kind == T_BODY  ? o->body_timeout_ms
              : kind == T_WRITE ? o->write_timeout_ms
                                : 0;
    if (kind == T_IDLE)
        c->idle_since = uv_now(c->w->uv);
    if (kind == c->timer_kind)
        return; /* an armed idle timer checks idle_since when it fires */
    c->timer_kind = kind;
    if (kind == T_NONE || ms <= 0) {
        uv_timer_stop(&c->timer);
        return;
    }
    uv_timer_start(&c->timer, on_timer, (uint64_t)ms, 0);
}

/* --- writing -------------------------------------------------------------------------- */

struct wreq {
    uv_write_t w;
    struct conn *c;
    int close_after;
    char data[]; /* the bytes being written */
};

static void on_written(uv_write_t *w, int status)
{
    struct wreq *wr = (struct wreq *)w;
    struct conn *c = wr->c;
    int close_after = wr->close_after;
    free(wr);
    c->pending_writes--;
    if (c->closed)
        return; /* the close callback frees the connection */
    if (status < 0 || close_after || (c->close_when_drained && c->pending_writes == 0)) {
        if (status < 0 && !c->ws_err)
            c->ws_err = CIPC_ENET;
        conn_close(c);
        return;
    }
    if (c->ws) {
        cipc__ws_writable(c->ws);
        return;
    }
    if (c->pending_writes == 0 && c->timer_kind == T_WRITE)
        set_timer(c, T_NONE);
    if (c->pending_writes == 0 && c->state == C_HEAD)
        conn_process(c);
}

/* Send `len` bytes: write what the socket takes now, queue the rest (copied). If
 * close_after, the connection closes once they are out. Returns 0 or a negative code. */
int cipc__conn_raw_send(struct conn *c, const char *data, size_t len, int close_after)
{
    if (c->closed)
        return CIPC_ECLOSING;
    size_t off = 0;
    if (len == 0 && close_after && c->pending_writes > 0) {
        /* Close after the queued writes: mark the last one. */
        c->close_when_drained = 1;
        return 0;
    }
    if (c->pending_writes == 0 && len > 0) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write(&c->h.stream, &b, 1);
        if (n > 0)
            off = (size_t)n;
        else if (n < 0 && n != UV_EAGAIN) {
            conn_close(c);
            return n;
        }
    }
    if (off == len) {
        if (close_after)
            conn_close(c);
        return 0;
    }
    struct wreq *wr = malloc(sizeof *wr + (len - off));
    if (!wr) {
        conn_close(c);
        return -ENOMEM;
    }
    memcpy(wr->data, data + off, len - off);
    wr->c = c;
    wr->close_after = close_after;
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)(len - off));
    int rc = uv_write(&wr->w, &c->h.stream, &b, 1, on_written);
    if (rc < 0) {
        free(wr);
        conn_close(c);
        return rc;
    }
    c->pending_writes++;
    if (!c->ws)
        set_timer(c, T_WRITE); /* a WebSocket's timer is its own (and it has a send queue) */
    return 0;
}

/* Send response bytes: encrypted first on TLS connections. */
static int conn_send(struct conn *c, const char *data, size_t len, int close_after)
{
    if (c->closed)
        return CIPC_ECLOSING;
    if (c->ssl) {
        int rc = cipc__tls_send(c, data, len, close_after);
        if (rc < 0)
            conn_close(c);
        return rc;
    }
    return cipc__conn_raw_send(c, data, len, close_after);
}

/* Answer a request the server rejects by itself, then close. */
static void send_error_close(struct conn *c, int status)
{
    stream_abort(c);
    char buf[256];
    const char *reason = cipc__http_reason(status);
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s\n",
                     status, reason, cipc__worker_date(c->w), strlen(reason) + 1, reason);
    c->state = C_CLOSING;
    if (c->reading) {
        uv_read_stop(&c->h.stream);
        c->reading = 0;
    }
    conn_send(c, buf, (size_t)n, 1);
}

/* --- the request object -------------------------------------------------------------- */

/* Clear the request for the connection's next one. Only the fields before `p` are
 * cleared: the parser initialises `p` and routing sets segs[]. */
static void req_reset(struct cipc_http_req *r)
{
    if (r->headers_owned)
        free(r->headers);
    if (r->why)
        free(r->why);
    if (r->decoded.data)
        cipc_buf_free(&r->decoded);
    if (r->query_decoded.data)
        cipc_buf_free(&r->query_decoded);
    if (r->body.data)
        cipc_buf_free(&r->body);
    if (r->out_headers.data)
        cipc_buf_free(&r->out_headers);
    struct conn *c = r->c;
    memset(r, 0, offsetof(struct cipc_http_req, p));
    r->c = c;
    r->p.n_headers = 0; /* a stale request finds no headers */
}

static void access_log(struct cipc_http_req *r)
{
    struct conn *c = r->c;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char when[40];
    strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S +0000", &tm);
    char line[1024];
    int n = snprintf(line, sizeof line,
                     "%s - - [%s] \"%s %.600s%s%.200s HTTP/1.%d\" %d %llu %.3fms\n", c->peer, when,
                     r->method, r->path, r->query[0] ? "?" : "", r->query, r->p.minor, r->status,
                     (unsigned long long)r->bytes_out, (double)(cipc_now_ns() - r->t0_ns) / 1e6);
    if (n > 0) {
        ssize_t w = write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line);
        (void)w;
    }
}

/* --- reading --------------------------------------------------------------------------- */

/* Move a view that points into the old read buffer to the same place in the new one. */
static void rebase(const char **p, uintptr_t old, size_t len, char *nb)
{
    uintptr_t v = (uintptr_t)*p;
    if (*p && v >= old && v <= old + len)
        *p = nb + (v - old);
}

/* Read buffers come from a small per-worker pool: a request answered at once then costs
 * no malloc/free of its buffer, and an idle connection still holds none. */
#define POOL_MAX 256

static char *pool_get(struct worker *w)
{
    if (w->n_pool)
        return w->pool[--w->n_pool];
    return malloc(READ_CHUNK);
}

static void pool_put(struct worker *w, char *b, size_t cap)
{
    if (cap == READ_CHUNK && w->n_pool < POOL_MAX)
        w->pool[w->n_pool++] = b;
    else
        free(b);
}

/* Grow the read buffer to at least `need` free bytes. The request being read or handled
 * keeps views into the buffer (its strings, the parsed head), so they move with it.
 * Returns 0 or -ENOMEM. */
int cipc__conn_buf_grow(struct conn *c, size_t need)
{
    if (c->cap - c->len >= need)
        return 0;
    if (!c->buf && need <= READ_CHUNK) {
        c->buf = pool_get(c->w);
        if (!c->buf)
            return -ENOMEM;
        c->cap = READ_CHUNK;
        return 0;
    }
    size_t cap = c->cap ? c->cap * 2 : READ_CHUNK;
    while (cap - c->len < need)
        cap *= 2;
    uintptr_t old = (uintptr_t)c->buf; /* an address only: compared, never dereferenced */
    char *nb = realloc(c->buf, cap);
    if (!nb)
        return -ENOMEM;
    c->buf = nb;
    c->cap = cap;
    if (!old || (uintptr_t)nb == old || c->state == C_HEAD)
        return 0;
    struct cipc_http_req *r = &c->req;
    size_t len = c->len;
    rebase(&r->method, old, len, nb);
    rebase(&r->path, old, len, nb);
    rebase(&r->query, old, len, nb);
    rebase(&r->p.method.p, old, len, nb);
    rebase(&r->p.target.p, old, len, nb);
    rebase(&r->p.path.p, old, len, nb);
    rebase(&r->p.query.p, old, len, nb);
    rebase(&r->p.host.p, old, len, nb);
    for (size_t i = 0; i < r->p.n_headers; i++) {
        rebase(&r->headers[i].name.p, old, len, nb);
        rebase(&r->headers[i].value.p, old, len, nb);
    }
    for (size_t i = 0; i < r->nsegs && i < sizeof r->segs / sizeof r->segs[0]; i++)
        rebase(&r->segs[i].p, old, len, nb);
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    struct conn *c = h->data;
    (void)suggested;
    if (c->ssl) {
        out->base = c->w->tls_in; /* decrypted in on_read before the next read */
        out->len = sizeof c->w->tls_in;
        return;
    }
    /* A WebSocket connection reads up to 64 KiB at a time, so bulk frames mostly arrive
     * whole (delivered without a copy) and take fewer reads; the buffer is still freed
     * whenever it empties. */
    if (cipc__conn_buf_grow(c, c->ws ? 4 * READ_CHUNK : READ_CHUNK / 4) < 0) {
        out->base = NULL;
        out->len = 0;
        return;
    }
    out->base = c->buf + c->len;
    out->len = c->cap - c->len;
}

static void stop_reading(struct conn *c);

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct conn *c = s->data;
    if (n < 0) {
        if (n != UV_EOF && !c->ws_err)
            c->ws_err = CIPC_ENET;
        conn_close(c);
        return;
    }
    if (n == 0)
        return;
    if (c->ssl) {
        if (cipc__tls_feed(c, b->base, (size_t)n) < 0) {
            conn_close(c);
            return;
        }
    } else {
        c->len += (size_t)n;
    }
    /* A watched request (cipc_http_on_abort) reads only to see the client go: what a
     * client pipelines meanwhile waits in the buffer, up to one read chunk. */
    if (c->state == C_HANDLER && c->len >= READ_CHUNK)
        stop_reading(c);
    conn_process(c);
}

static void start_reading(struct conn *c)
{
    if (!c->reading && !c->closed) {
        if (uv_read_start(&c->h.stream, on_alloc, on_read) == 0)
            c->reading = 1;
    }
}

static void stop_reading(struct conn *c)
{
    if (c->reading) {
        uv_read_stop(&c->h.stream);
        c->reading = 0;
    }
}

/* Drop consumed bytes from the front of the read buffer; free it when empty so idle
 * connections hold no buffer. */
static void buf_consume(struct conn *c, size_t n)
{
    if (n >= c->len) {
        pool_put(c->w, c->buf, c->cap);
        c->buf = NULL;
        c->len = c->cap = 0;
        return;
    }
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Split the path into segments for routing. */
static size_t split_path(const char *path, struct cipc__slice *segs, size_t max)
{
    size_t n = 0;
    const char *p = path;
    if (*p == '/')
        p++;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (n == max)
            return max + 1;
        segs[n].p = p;
        segs[n].n = len;
        n++;
        if (!e)
            break;
        p = e + 1;
    }
    return n;
}

/* Find the route for the current request (and its path segments, for parameters). */
static const struct route *route_lookup(struct conn *c, int *mismatch)
{
    struct cipc_http_req *r = &c->req;
    r->nsegs = split_path(r->path, r->segs, sizeof r->segs / sizeof r->segs[0]);
    *mismatch = 0;
    if (r->nsegs > sizeof r->segs / sizeof r->segs[0])
        return NULL;
    return cipc__route_match(c->w->srv, r->method, strlen(r->method), r->segs, r->nsegs, mismatch);
}

/* Deliver a piece of a streamed body to the handler's callback. Returns 0 if the
 * handler answered meanwhile (the connection then closes), 1 to go on. */
static int stream_piece(struct conn *c, const char *p, size_t n)
{
    struct cipc_http_req *r = &c->req;
    enum conn_state before = c->state;
    r->streamed += n;
    if (r->body_cb) {
        c->w->in_handler++;
        r->body_cb(r, p, n, r->body_ud);
        c->w->in_handler--;
    }
    return c->state == before && !c->closed;
}

/* A streamed body will not complete (a framing error, a limit, a timeout, a
 * disconnect): tell the handler's callback once, so it can release what it holds. The
 * request is not answered afterwards. */
static void stream_abort(struct conn *c)
{
    struct cipc_http_req *r = &c->req;
    if (!r->streamed_route || !r->body_cb || (c->state != C_BODY_CL && c->state != C_BODY_CHUNKED))
        return;
    cipc_http_body_cb cb = r->body_cb;
    r->body_cb = NULL;
    r->answered = 1;
    c->w->in_handler++;
    cb(r, NULL, CIPC_HTTP_BODY_ABORTED, r->body_ud);
    c->w->in_handler--;
}

/* A streamed body is complete: the handler's callback gets the end mark (len 0), and
 * the request waits for its answer like any other. */
static void stream_end(struct conn *c)
{
    struct cipc_http_req *r = &c->req;
    set_timer(c, T_NONE);
    stop_reading(c);
    c->state = C_HANDLER;
    c->body_done = 0; /* streamed bytes are already gone from the buffer */
    if (r->body_cb) {
        c->w->in_handler++;
        r->body_cb(r, NULL, 0, r->body_ud);
        c->w->in_handler--;
    }
}

static void dispatch(struct conn *c);

/* Copy the request's headers out of the worker's scratch array, which the next request
 * parsed on this worker reuses. Needed before the request outlives the current callback
 * (a body still to come, an answer given later). Returns 0 or -ENOMEM. */
static int req_own_headers(struct cipc_http_req *r)
{
    if (r->headers_owned)
        return 0;
    size_t n = r->p.n_headers;
    struct cipc__http_header *h = malloc((n ? n : 1) * sizeof *h);
    if (!h)
        return -ENOMEM;
    memcpy(h, r->headers, n * sizeof *h);
    r->headers = r->p.headers = h;
    r->headers_owned = 1;
    return 0;
}

/* Run the request's handler. Only if it has not answered when it returns does the
 * connection stop reading (backpressure) and drop its timer: a handler answering at once
 * costs no epoll or timer updates. */
static void upgrade_finish(struct conn *c);

static void dispatch_request(struct conn *c)
{
    dispatch(c);
    if (c->state == C_WS && !c->closed && c->req.route) {
        upgrade_finish(c);
        return;
    }
    if (c->state == C_HANDLER && !c->closed) {
        if (req_own_headers(&c->req) < 0)
            cipc_http_respond(&c->req, 500, NULL, "", 0);
        set_timer(c, T_NONE);
        if (!c->req.abort_cb) /* (watched requests keep reading, to see the client go) */
            stop_reading(c);
    }
}

static void dispatch(struct conn *c)
{
    struct cipc_http_req *r = &c->req;
    cipc_server *s = c->w->srv;
    c->state = C_HANDLER;
    r->t0_ns = r->t0_ns ? r->t0_ns : cipc_now_ns();
    int mismatch = 0;
    const struct route *rt = route_lookup(c, &mismatch);
    if (!rt) {
        if (mismatch) {
            cipc_buf allow = CIPC_BUF_INIT;
            cipc__route_allow(s, r->segs, r->nsegs, &allow);
            cipc_http_set_header(r, "Allow", allow.data ? allow.data : "");
            cipc_buf_free(&allow);
            cipc_http_respond(r, 405, "application/json", "{\"error\":\"method not allowed\"}", 30);
        } else {
            cipc_http_respond(r, 404, "application/json", "{\"error\":\"not found\"}", 21);
        }
        return;
    }
    r->route = rt;
    c->w->in_handler++;
    rt->h(r, rt->ud);
    c->w->in_handler--;
}

/* Set up the request from a parsed head: copy the header array, NUL-terminate the
 * strings in place (the bytes after each slice are delimiters the parser has passed). */
static int begin_request(struct conn *c, struct cipc__http_request *p, size_t head_len)
{
    struct cipc_http_req *r = &c->req;
    r->p = *p;
    /* The headers stay in the worker's scratch array while the request is handled in one
     * go; req_own_headers() copies them out before anything else can reuse it. */
    r->headers = p->headers;
    r->p.headers = r->headers;
    char *b = c->buf;
    b[p->method.p - b + p->method.n] = '\0';
    r->method = p->method.p;
    if (p->path.n) {
        b[p->path.p - b + p->path.n] = '\0';
        r->path = p->path.p;
    } else {
        r->path = p->form == CIPC__TARGET_ASTERISK ? "*" : "/";
    }
    if (p->query.n) {
        b[p->query.p - b + p->query.n] = '\0';
        r->query = p->query.p;
    } else {
        r->query = "";
    }
    for (size_t i = 0; i < p->n_headers; i++) {
        b[r->headers[i].name.p - b + r->headers[i].name.n] = '\0';
        b[r->headers[i].value.p - b + r->headers[i].value.n] = '\0';
    }
    r->head_only = p->method.n == 4 && !memcmp(p->method.p, "HEAD", 4);
    if (c->timer_kind == T_HEAD)
        set_timer(c, T_NONE); /* the head is in; an idle timer may stay armed */
    r->t0_ns = cipc_now_ns();
    c->head_len = head_len;
    c->body_done = 0;
    c->keep_alive = p->keep_alive;
    return 0;
}

/* Run the connection's state machine over what is in its buffer. Called after reads,
 * after a response finished, and after writes drained. */
static void conn_process(struct conn *c)
{
    if (c->in_process || c->closed)
        return;
    c->in_process = 1;
    struct worker *w = c->w;
    cipc_server *s = w->srv;
    while (!c->closed) {
        if (c->state == C_HEAD) {
            if (c->pending_writes > 0) {
                stop_reading(c); /* backpressure: finish writing before the next request */
                break;
            }
            if (c->len == 0) {
                if (w->stopping) {
                    conn_close(c);
                    break;
                }
                set_timer(c, T_IDLE);
                start_reading(c);
                break;
            }
            /* The idle request object holds the parser's resume point between reads, so
             * a head arriving byte by byte is scanned once (slowloris costs O(n)). */
            struct cipc__http_request *pp = &c->req.p;
            /* Headers are parsed into the worker's scratch array, unless a handler is
             * running further up the stack (it answered this connection's previous
             * request from another one's handler): its request may still be reading the
             * scratch array, so this parse gets an array of its own. */
            struct cipc__http_header *arr = w->scratch;
            if (w->in_handler) {
                arr = malloc(s->limits.max_headers * sizeof *arr);
                if (!arr) {
                    send_error_close(c, 500);
                    break;
                }
            }
            if (c->prev_len == 0)
                cipc__http_request_init(pp, arr);
            else
                pp->headers = arr; /* other connections may have used it meanwhile */
            int status = 0;
            int rc = cipc__http_parse_request_more(c->buf, c->len, &s->limits, pp, &status);
            if (arr != w->scratch && rc <= 0)
                free(arr);
            if (rc == CIPC_EAGAIN) {
                c->prev_len = c->len;
                if (c->timer_kind != T_HEAD)
                    set_timer(c, T_HEAD);
                start_reading(c);
                break;
            }
            c->prev_len = 0;
            if (rc < 0) {
                send_error_close(c, status ? status : 400);
                break;
            }
            struct cipc__http_request p = *pp;
            if (p.form == CIPC__TARGET_AUTHORITY) {
                send_error_close(c, 501); /* CONNECT: this server is no proxy */
                break;
            }
            if (begin_request(c, &p, (size_t)rc) < 0) {
                send_error_close(c, 500);
                break;
            }
            c->req.headers_owned = arr != w->scratch;
            if (p.chunked) {
                c->state = C_BODY_CHUNKED;
                cipc__http_chunked_init(&c->chunked);
            } else if (p.content_length > 0) {
                c->state = C_BODY_CL;
            } else {
                dispatch_request(c);
                continue;
            }
            if (req_own_headers(&c->req) < 0) {
                send_error_close(c, 500);
                break;
            }
            set_timer(c, T_BODY);
            if (p.expect_continue && c->len == c->head_len) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                conn_send(c, cont, sizeof cont - 1, 0);
            }
            /* A streaming route sees the head now and the body as it arrives. */
            int mismatch = 0;
            const struct route *rt = route_lookup(c, &mismatch);
            if (rt && rt->streaming) {
                c->req.route = rt;
                c->req.streamed_route = 1;
                w->in_handler++;
                rt->h(&c->req, rt->ud);
                w->in_handler--;
            }
            continue;
        }
        if (c->state == C_BODY_CL && c->req.streamed_route) {
            struct cipc_http_req *r = &c->req;
            size_t want = (size_t)r->p.content_length - (size_t)r->streamed;
            size_t have = c->len - c->head_len;
            size_t n = have < want ? have : want;
            if (n > 0) {
                if (!stream_piece(c, c->buf + c->head_len, n))
                    continue; /* the handler answered: the connection is closing */
                memmove(c->buf + c->head_len, c->buf + c->head_len + n, have - n);
                c->len -= n;
            }
            if (r->streamed < (uint64_t)r->p.content_length) {
                start_reading(c);
                break;
            }
            stream_end(c);
            continue;
        }
        if (c->state == C_BODY_CHUNKED && c->req.streamed_route) {
            struct cipc_http_req *r = &c->req;
            size_t start = c->head_len;
            size_t n = c->len - start;
            if (n == 0) {
                start_reading(c);
                break;
            }
            int rc = cipc__http_chunked_decode(&c->chunked, c->buf + start, &n);
            if (rc == CIPC_EPROTO) {
                send_error_close(c, 400);
                break;
            }
            if (r->streamed + n > s->limits.max_body) {
                send_error_close(c, 413);
                break;
            }
            if (n > 0 && !stream_piece(c, c->buf + start, n))
                continue;
            if (rc == CIPC_EAGAIN) {
                c->len = start;
                start_reading(c);
                break;
            }
            memmove(c->buf + start, c->buf + start + n, (size_t)rc);
            c->len = start + (size_t)rc;
            stream_end(c);
            continue;
        }
        if (c->state == C_BODY_CL) {
            struct cipc_http_req *r = &c->req;
            size_t want = (size_t)r->p.content_length;
            size_t have = c->len - c->head_len;
            if (have < want) {
                start_reading(c);
                break;
            }
            if (cipc_buf_append(&r->body, c->buf + c->head_len, want) < 0) {
                send_error_close(c, 500);
                break;
            }
            c->body_done = want;
            dispatch_request(c);
            continue;
        }
        if (c->state == C_BODY_CHUNKED) {
            struct cipc_http_req *r = &c->req;
            size_t start = c->head_len + c->body_done;
            size_t n = c->len - start;
            if (n == 0) {
                start_reading(c);
                break;
            }
            int rc = cipc__http_chunked_decode(&c->chunked, c->buf + start, &n);
            if (rc == CIPC_EPROTO) {
                send_error_close(c, 400);
                break;
            }
            c->body_done += n;
            if (c->body_done > s->limits.max_body) {
                send_error_close(c, 413);
                break;
            }
            if (rc == CIPC_EAGAIN) {
                c->len = start + n;
                start_reading(c);
                break;
            }
            c->len = start + n + (size_t)rc;
            if (cipc_buf_append(&r->body, c->buf + c->head_len, c->body_done) < 0) {
                send_error_close(c, 500);
                break;
            }
            dispatch_request(c);
            continue;
        }
        if (c->state == C_WS) {
            /* Everything read goes to the WebSocket, which keeps what it needs. */
            if (c->len > 0) {
                size_t n = c->len;
                cipc__ws_input(c->ws, (uint8_t *)c->buf, n);
                if (!c->closed)
                    buf_consume(c, n);
            }
            if (!c->closed)
                start_reading(c);
            break;
        }
        if (c->state == C_HANDLER || c->state == C_CLOSING)
            break;
    }
    c->in_process = 0;
}

/* --- answering ------------------------------------------------------------------------- */

/* A request's answer is complete (queued): log it, drop its bytes from the buffer and
 * go on with the next pipelined request, unless the connection is closing. */
static void request_done(struct conn *c)
{
    size_t used = c->head_len + c->body_done;
    if (c->w->srv->o.access_log)
        access_log(&c->req);
    req_reset(&c->req);
    if (!c->keep_alive || c->w->stopping)
        c->state = C_CLOSING;
    else
        c->state = C_HEAD;
    buf_consume(c, used);
    c->head_len = c->body_done = 0;
    if (c->state == C_CLOSING) {
        if (c->pending_writes == 0)
            conn_close(c);
        return;
    }
    if (!c->in_process && c->pending_writes == 0)
        conn_process(c);
}

static int valid_header_name(const char *n)
{
    if (!n || !*n)
        return 0;
    for (; *n; n++) {
        unsigned char ch = (unsigned char)*n;
        if (ch <= ' ' || ch >= 127 || strchr("\"(),/:;<=>?@[\\]{}", ch))
            return 0;
    }
    return 1;
}

/* Is `r` a request still waiting for its answer? Once answered, the request object is
 * reset for the connection's next request, so a second answer must be refused. */
static int req_live(const cipc_http_req *r)
{
    const struct conn *c = r->c;
    if (c->closed)
        return c->orphan;
    return c->state == C_HANDLER ||
           (r->streamed_route && (c->state == C_BODY_CL || c->state == C_BODY_CHUNKED));
}

int cipc_http_set_header(cipc_http_req *r, const char *name, const char *value)
{
    if (!req_live(r) || r->answered || r->streaming)
        return CIPC_EBUSY;
    if (!valid_header_name(name) || !value || strpbrk(value, "\r\n"))
        return CIPC_EHEADER;
    return cipc_buf_printf(&r->out_headers, "%s: %s\r\n", name, value);
}

/* Write the status line and headers into `b`. `length` < 0: chunked (or unframed for
 * HTTP/1.0). */
static int build_head(cipc_http_req *r, cipc_buf *b, int status, const char *ctype, int64_t length)
{
    struct conn *c = r->c;
    if (c->w->stopping || c->state == C_BODY_CL || c->state == C_BODY_CHUNKED)
        c->keep_alive = 0; /* shutting down, or the rest of the body is never read */
    if (length < 0 && r->p.minor == 0)
        c->keep_alive = 0;
    r->status = status;
    if (status < 100 || status > 999)
        status = 500;
    /* The head is assembled with memcpy into one reservation: this runs once per
     * response. */
    const char *reason = cipc__http_reason(status);
    const char *date = cipc__worker_date(c->w);
    size_t rlen = strlen(reason), dlen = strlen(date), clen = ctype ? strlen(ctype) : 0;
    size_t need = 13 + rlen + 2 + dlen + (ctype ? 16 + clen : 0) + 40 + r->out_headers.len + 26;
    int rc = cipc_buf_reserve(b, need);
    if (rc < 0)
        return rc;
    char *o = b->data + b->len;
#define PUT(s, n) (memcpy(o, (s), (n)), o += (n))
    PUT("HTTP/1.1 ", 9);
    *o++ = (char)('0' + status / 100);
    *o++ = (char)('0' + status / 10 % 10);
    *o++ = (char)('0' + status % 10);
    *o++ = ' ';
    PUT(reason, rlen);
    PUT("\r\n", 2);
    PUT(date, dlen);
    if (ctype) {
        PUT("Content-Type: ", 14);
        PUT(ctype, clen);
        PUT("\r\n", 2);
    }
    int no_body = status == 204 || status == 304 || (status >= 100 && status < 200);
    if (no_body)
        r->head_only = 1; /* RFC 9110 6.4.1: these responses end with their head */
    if (length >= 0 && status != 204 && !(status >= 100 && status < 200)) {
        char num[24];
        size_t n = sizeof num;
        uint64_t v = (uint64_t)length;
        do {
            num[--n] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        PUT("Content-Length: ", 16);
        PUT(num + n, sizeof num - n);
        PUT("\r\n", 2);
    } else if (r->p.minor == 1 && !no_body) {
        PUT("Transfer-Encoding: chunked\r\n", 28);
    }
    if (r->out_headers.len)
        PUT(r->out_headers.data, r->out_headers.len);
    if (!c->keep_alive)
        PUT("Connection: close\r\n", 19);
    else if (r->p.minor == 0)
        PUT("Connection: keep-alive\r\n", 24);
    PUT("\r\n", 2);
#undef PUT
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return 0;
}

int cipc_http_respond(cipc_http_req *r, int status, const char *content_type, const void *body,
                      size_t len)
{
    if (!req_live(r) || r->answered || r->streaming)
        return CIPC_EBUSY;
    struct conn *c = r->c;
    r->answered = 1;
    if (c->closed)
        return c->orphan ? answer_orphan(c) : CIPC_ECLOSING;
    cipc_buf *b = &c->w->out; /* reused for every response of this worker */
    cipc_buf_reset(b);
    int rc = build_head(r, b, status, content_type, (int64_t)len);
    if (rc == 0 && !r->head_only && len)
        rc = cipc_buf_append(b, body, len);
    if (rc == 0) {
        r->bytes_out = r->head_only ? 0 : len;
        rc = conn_send(c, b->data, b->len, !c->keep_alive);
    }
    if (b->cap > 1 << 20)
        cipc_buf_free(b); /* do not keep a large body's buffer around */
    request_done(c);
    return rc;
}

int cipc_http_respond_json(cipc_http_req *r, int status, json_t *json)
{
    char *text = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return CIPC_EJSON;
    int rc = cipc_http_respond(r, status, "application/json", text, strlen(text));
    free(text);
    return rc;
}

#define FILE_INLINE_MAX (256 * 1024)

/* A file body sent with sendfile(2) on the loop's thread pool, in 1 MiB steps. */
struct sendfile_job {
    uv_fs_t req;
    struct conn *c;
    int fd;
    int64_t off, left;
    int close_after;
    int failed;
};

static void on_sendfile(uv_fs_t *req);

static void sendfile_step(struct sendfile_job *j)
{
    struct conn *c = j->c;
    uv_os_fd_t out;
    if (!c->closed && !j->failed && j->left > 0 && uv_fileno(&c->h.handle, &out) == 0) {
        size_t n = j->left > (1 << 20) ? (1 << 20) : (size_t)j->left;
        if (uv_fs_sendfile(c->w->uv, &j->req, (uv_file)out, j->fd, j->off, n, on_sendfile) == 0)
            return;
        j->close_after = 1;
    }
    int failed = j->left > 0;
    c->pending_writes--;
    close(j->fd);
    int close_after = j->close_after || failed;
    free(j);
    if (c->closed)
        return;
    if (close_after)
        conn_close(c);
    else if (c->pending_writes == 0 && c->state == C_HEAD)
        conn_process(c);
}

static void on_sendfile(uv_fs_t *req)
{
    struct sendfile_job *j = (struct sendfile_job *)req;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    if (n <= 0) {
        j->failed = 1; /* the peer went away or the file shrank: stop and close */
    } else {
        j->off += n;
        j->left -= n;
    }
    sendfile_step(j);
}

int cipc_http_respond_file(cipc_http_req *r, int status, const char *path, const char *content_type)
{
    if (!req_live(r) || r->answered || r->streaming)
        return CIPC_EBUSY;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return CIPC_EFILE;
    }
    struct conn *c = r->c;
    /* Small files, HEAD, or a head that cannot go out at once: one buffered response. */
    if (st.st_size <= FILE_INLINE_MAX || r->head_only || c->pending_writes > 0 || c->ssl) {
        size_t size = r->head_only ? 0 : (size_t)st.st_size;
        char *data = malloc(size ? size : 1);
        ssize_t got = data && size ? pread(fd, data, size, 0) : 0;
        close(fd);
        if (!data || got != (ssize_t)size) {
            free(data);
            return CIPC_EFILE;
        }
        int rc;
        if (r->head_only) {
            /* The head announces the file's length; no body follows. */
            cipc_buf *b = &c->w->out;
            cipc_buf_reset(b);
            r->answered = 1;
            rc = build_head(r, b, status, content_type, (int64_t)st.st_size);
            if (rc == 0)
                rc = conn_send(c, b->data, b->len, !c->keep_alive);
            request_done(c);
        } else {
            rc = cipc_http_respond(r, status, content_type, data, size);
        }
        free(data);
        return rc;
    }
    struct sendfile_job *j = calloc(1, sizeof *j);
    if (!j) {
        close(fd);
        return -ENOMEM;
    }
    r->answered = 1;
    cipc_buf *b = &c->w->out;
    cipc_buf_reset(b);
    int rc = build_head(r, b, status, content_type, (int64_t)st.st_size);
    if (rc == 0)
        rc = conn_send(c, b->data, b->len, 0);
    if (rc < 0 || c->closed || c->pending_writes > 0) {
        /* The head did not go out in one write: sendfile would overtake it. */
        free(j);
        close(fd);
        if (!c->closed)
            conn_close(c);
        request_done(c);
        return rc < 0 ? rc : CIPC_ENET;
    }
    j->c = c;
    j->fd = fd;
    j->left = st.st_size;
    j->close_after = !c->keep_alive;
    r->bytes_out = (uint64_t)st.st_size;
    c->pending_writes++; /* holds the next pipelined response back until the file is out */
    request_done(c);
    sendfile_step(j);
    return 0;
}

int cipc_http_start(cipc_http_req *r, int status, const char *content_type)
{
    if (!req_live(r) || r->answered || r->streaming)
        return CIPC_EBUSY;
    struct conn *c = r->c;
    if (c->closed)
        return c->orphan ? answer_orphan(c) : CIPC_ECLOSING;
    r->streaming = 1;
    cipc_buf b = CIPC_BUF_INIT;
    int rc = build_head(r, &b, status, content_type, -1);
    if (rc == 0)
        rc = conn_send(c, b.data, b.len, 0);
    cipc_buf_free(&b);
    return rc;
}

int cipc_http_write(cipc_http_req *r, const void *data, size_t len)
{
    if (!req_live(r) || r->answered)
        return CIPC_EBUSY;
    if (!r->streaming) {
        int rc = cipc_http_start(r, 200, NULL);
        if (rc < 0)
            return rc;
    }
    if (r->c->closed)
        return r->c->orphan ? answer_orphan(r->c) : CIPC_ECLOSING;
    if (len == 0 || r->head_only)
        return 0;
    r->bytes_out += len;
    if (r->p.minor == 0)
        return conn_send(r->c, data, len, 0);
    char hex[24];
    int n = snprintf(hex, sizeof hex, "%zx\r\n", len);
    cipc_buf b = CIPC_BUF_INIT;
    int rc = cipc_buf_append(&b, hex, (size_t)n);
    if (rc == 0)
        rc = cipc_buf_append(&b, data, len);
    if (rc == 0)
        rc = cipc_buf_append(&b, "\r\n", 2);
    if (rc == 0)
        rc = conn_send(r->c, b.data, b.len, 0);
    cipc_buf_free(&b);
    return rc;
}

int cipc_http_end(cipc_http_req *r)
{
    if (!req_live(r) || r->answered)
        return CIPC_EBUSY;
    if (!r->streaming) {
        int rc = cipc_http_start(r, 200, NULL);
        if (rc < 0)
            return rc;
    }
    struct conn *c = r->c;
    r->answered = 1;
    if (c->closed)
        return c->orphan ? answer_orphan(c) : CIPC_ECLOSING;
    int rc = 0;
    if (r->p.minor == 1 && !r->head_only)
        rc = conn_send(c, "0\r\n\r\n", 5, !c->keep_alive);
    else if (!c->keep_alive && c->pending_writes == 0)
        conn_close(c);
    request_done(c);
    return rc;
}

int cipc_http_read_body(cipc_http_req *r, cipc_http_body_cb cb, void *ud)
{
    if (r->route && r->route->streaming && !r->streamed_route && r->c->state == C_HANDLER &&
        !r->answered) {
        cb(r, NULL, 0, ud); /* a request without a body: just the end mark */
        return 0;
    }
    if (!r->streamed_route || r->c->state == C_HANDLER)
        return CIPC_EBUSY;
    r->body_cb = cb;
    r->body_ud = ud;
    return 0;
}

/* --- request accessors ------------------------------------------------------------------ */

const char *cipc_http_method(const cipc_http_req *r)
{
    return r->method;
}

const char *cipc_http_path(const cipc_http_req *r)
{
    return r->path;
}

const char *cipc_http_query_string(const cipc_http_req *r)
{
    return r->query;
}

int cipc_http_worker(const cipc_http_req *r)
{
    return r->c->w->index;
}

const char *cipc_http_header(const cipc_http_req *r, const char *name)
{
    for (size_t i = 0; i < r->p.n_headers; i++) {
        if (strcasecmp(r->headers[i].name.p, name) == 0)
            return r->headers[i].value.p;
    }
    return NULL;
}

const void *cipc_http_body(const cipc_http_req *r, size_t *len)
{
    if (len)
        *len = r->body.len;
    return r->body.data ? r->body.data : "";
}

int cipc_http_json(const cipc_http_req *cr, json_t **out, const char **why)
{
    cipc_http_req *r = (cipc_http_req *)cr;
    json_error_t e;
    *out = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &e);
    if (*out)
        return 0;
    free(r->why);
    r->why = NULL;
    cipc_buf m = CIPC_BUF_INIT;
    cipc_buf_printf(&m, "invalid JSON at line %d, column %d: %s", e.line, e.column, e.text);
    r->why = cipc_buf_steal(&m, NULL);
    if (why)
        *why = r->why ? r->why : "invalid JSON";
    return CIPC_EJSON;
}

const char *cipc_http_param(cipc_http_req *r, const char *name)
{
    const struct route *rt = r->route;
    if (!rt)
        return NULL;
    size_t n = rt->nsegs < r->nsegs ? rt->nsegs : r->nsegs;
    if (!r->decoded.data) {
        /* Decode every parameter once, into one buffer sized up front (decoding never
         * grows a string), so the views handed out stay valid together. */
        size_t total = 0;
        for (size_t i = 0; i < n; i++)
            total += rt->par[i] ? r->segs[i].n + 1 : 0;
        if (cipc_buf_reserve(&r->decoded, total + 1) < 0)
            return NULL;
        for (size_t i = 0; i < n; i++) {
            if (!rt->par[i])
                continue;
            if (cipc_url_decode(r->segs[i].p, r->segs[i].n, 0, &r->decoded) < 0)
                cipc_buf_append(&r->decoded, r->segs[i].p, r->segs[i].n); /* bad %: raw */
            cipc_buf_append(&r->decoded, "", 1);
        }
    }
    const char *v = r->decoded.data;
    for (size_t i = 0; i < n; i++) {
        if (!rt->par[i])
            continue;
        if (strcmp(rt->segs[i], name) == 0)
            return v;
        v += strlen(v) + 1;
    }
    return NULL;
}

const char *cipc_http_query(cipc_http_req *r, const char *name)
{
    if (!r->query_parsed) {
        r->query_parsed = 1;
        size_t qlen = strlen(r->query), pos = 0;
        cipc_url_part k, v;
        /* Decoded pairs never outgrow their raw form plus two NULs per pair, so one
         * reservation keeps every view handed out valid. */
        if (cipc_buf_reserve(&r->query_decoded, 2 * qlen + 2) < 0)
            return NULL;
        while (cipc_url_query_next(r->query, qlen, &pos, &k, &v)) {
            cipc_url_part parts[2] = {k, v};
            for (int i = 0; i < 2; i++) {
                const char *raw = r->query + parts[i].off;
                /* A malformed escape is kept as sent rather than dropping the pair. */
                if (cipc_url_decode(raw, parts[i].len, CIPC_URL_ENC_FORM, &r->query_decoded) < 0)
                    cipc_buf_append(&r->query_decoded, raw, parts[i].len);
                cipc_buf_append(&r->query_decoded, "", 1);
            }
        }
    }
    const char *p = r->query_decoded.data, *end = p + r->query_decoded.len;
    while (p && p < end) {
        const char *val = p + strlen(p) + 1;
        if (strcmp(p, name) == 0)
            return val;
        p = val + strlen(val) + 1;
    }
    return NULL;
}

/* --- connection lifecycle ------------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (h == (uv_handle_t *)&c->timer)
        return;
    struct worker *w = c->w;
    flush_unlink(c);
    if (c->ws) {
        struct cipc_ws *ws = c->ws;
        c->ws = NULL;
        cipc__ws_worker_forget(w, ws);
        cipc__ws_gone(ws, c->ws_err);
    }
    req_reset(&c->req);
    cipc__tls_conn_free(c);
    free(c->buf);
    free(c);
    w->nconns--;
    if (w->stopping && w->nconns == 0)
        cipc__worker_drained(w);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    uv_close(&c->h.handle, on_conn_closed);
}

/* Answer to a request whose connection was closed while its handler ran: nothing is
 * sent; the connection is released now that the handler is done with it. */
static void conn_unlink(struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (c->w->conns == c)
        c->w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

int cipc_http_on_abort(cipc_http_req *r, void (*cb)(cipc_http_req *r, void *ud), void *ud)
{
    if (!r || !cb)
        return -EINVAL;
    if (!req_live(r) || r->answered || r->c->state != C_HANDLER || r->c->closed)
        return CIPC_EBUSY;
    r->abort_cb = cb;
    r->abort_ud = ud;
    start_reading(r->c);
    return 0;
}

static int answer_orphan(struct conn *c)
{
    req_reset(&c->req);
    c->state = C_CLOSING;
    c->orphan = 0; /* later calls on the request just get CIPC_ECLOSING */
    conn_unlink(c);
    uv_close(&c->h.handle, on_conn_closed);
    return CIPC_ECLOSING;
}

static void conn_close(struct conn *c)
{
    if (c->orphan && c->w->forcing) {
        /* Shutdown deadline: the handler never answered; finish closing now. */
        c->orphan = 0;
        conn_unlink(c);
        uv_close(&c->h.handle, on_conn_closed);
        return;
    }
    if (c->closed)
        return;
    stream_abort(c);
    c->closed = 1;
    uv_timer_stop(&c->timer);
    /* Close the timer first, then the stream; the stream's close callback frees. A
     * connection whose handler has not answered yet stays allocated (not reading, not
     * writing) until the handler answers (answer_orphan), so the handler's request
     * pointer stays valid; a forced shutdown frees it regardless, as the loop ends. */
    if (c->state == C_HANDLER && !c->req.answered && !c->w->forcing) {
        stop_reading(c);
        c->orphan = 1; /* stays on the worker's list for a forced shutdown */
        uv_close((uv_handle_t *)&c->timer, NULL);
        void (*cb)(cipc_http_req *, void *) = c->req.abort_cb;
        c->req.abort_cb = NULL;
        if (cb) { /* the handler's owner may answer from here (which frees the connection) */
            c->w->in_handler++;
            cb(&c->req, c->req.abort_ud);
            c->w->in_handler--;
        }
        return;
    }
    conn_unlink(c);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    int kind = c->timer_kind;
    c->timer_kind = T_NONE;
    switch (kind) {
    case T_IDLE: {
        /* The idle timer stays armed across requests; it closes the connection only if
         * it has really been idle that long, else it waits for the rest. */
        uint64_t idle = (uint64_t)c->w->srv->o.idle_timeout_ms;
        uint64_t since = uv_now(c->w->uv) - c->idle_since;
        int is_idle = c->state == C_HEAD && c->len == 0 && c->pending_writes == 0;
        if (is_idle && since >= idle) {
            conn_close(c);
            return;
        }
        c->timer_kind = T_IDLE;
        uv_timer_start(&c->timer, on_timer, is_idle ? idle - since : idle, 0);
        return;
    }
    case T_HEAD:
    case T_BODY:
        cipc_log(CIPC_LOG_INFO, LOG_MODULE, "%s: request %s timed out", c->peer,
                 kind == T_HEAD ? "head" : "body");
        send_error_close(c, 408);
        return;
    case T_WRITE:
        conn_close(c); /* a response that made no progress */
        return;
    case T_WS:
        if (c->ws)
            cipc__ws_timer(c->ws);
        return;
    default:
        return;
    }
}

void cipc__conn_accept(struct worker *w, uv_stream_t *listener, int kind)
{
    int is_unix = kind == LISTENER_UNIX;
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->w = w;
    c->req.c = c;
    if (is_unix)
        uv_pipe_init(w->uv, &c->h.pipe, 0);
    else
        uv_tcp_init(w->uv, &c->h.tcp);
    c->h.handle.data = c;
    if (uv_accept(listener, &c->h.stream) < 0) {
        uv_close(&c->h.handle, (uv_close_cb)free);
        return;
    }
    uv_timer_init(w->uv, &c->timer);
    c->timer.data = c;
    w->nconns++;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    strcpy(c->peer, is_unix ? "unix" : "-");
    if (!is_unix) {
        uv_tcp_nodelay(&c->h.tcp, 1);
        struct sockaddr_storage sa;
        int salen = sizeof sa;
        if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&sa, &salen) == 0) {
            if (sa.ss_family == AF_INET)
                uv_ip4_name((struct sockaddr_in *)&sa, c->peer, sizeof c->peer);
            else
                uv_ip6_name((struct sockaddr_in6 *)&sa, c->peer, sizeof c->peer);
        }
    }
    if (kind == LISTENER_TLS && cipc__tls_conn_new(c) < 0) {
        conn_close(c);
        return;
    }
    if (w->nconns > w->srv->o.max_connections || w->stopping) {
        send_error_close(c, 503);
        return;
    }
    c->state = C_HEAD;
    c->keep_alive = 1;
    conn_process(c);
}

void cipc__worker_close_idle(struct worker *w)
{
    struct conn *c = w->conns;
    while (c) {
        struct conn *next = c->next;
        if (c->ws)
            cipc_ws_close(c->ws, CIPC_WS_CLOSE_GOING_AWAY, "server shutting down");
        else if (c->state == C_HEAD && c->len == 0 && c->pending_writes == 0)
            conn_close(c);
        else
            c->keep_alive = 0;
        c = next;
    }
}

void cipc__worker_force_close(struct worker *w)
{
    static const char unanswered[] = "HTTP/1.1 500 Internal Server Error\r\n"
                                     "Content-Length: 0\r\nConnection: close\r\n\r\n";
    w->forcing = 1;
    while (w->conns) {
        struct conn *c = w->conns;
        /* A handler that never answered: tell the client, as far as the socket takes it
         * at once, before the connection goes. */
        if (c->state == C_HANDLER && !c->req.answered && !c->req.streaming) {
            c->req.answered = 1;
            conn_send(c, unanswered, sizeof unanswered - 1, 0);
        }
        conn_close(c);
    }
}

/* --- WebSocket connections ------------------------------------------------------------ */

/* Send pieces in order: what the socket takes at once, the rest copied into one write. */
static int conn_sendv(void *t, const struct cipc__ws_iov *iov, unsigned n)
{
    struct conn *c = t;
    if (c->closed)
        return CIPC_ECLOSING;
    if (c->ssl && n > 1) {
        /* One TLS record for a small frame rather than one for its header and another
         * for its payload. */
        size_t total = 0;
        for (unsigned i = 0; i < n; i++)
            total += iov[i].n;
        if (total <= 16384) {
            char one[16384];
            size_t pos = 0;
            for (unsigned i = 0; i < n; i++) {
                memcpy(one + pos, iov[i].p, iov[i].n);
                pos += iov[i].n;
            }
            return conn_send(c, one, pos, 0);
        }
    }
    if (c->ssl || n == 1) {
        for (unsigned i = 0; i < n; i++) {
            int rc = conn_send(c, iov[i].p, iov[i].n, 0);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    size_t total = 0, off = 0;
    uv_buf_t b[4];
    for (unsigned i = 0; i < n && i < 4; i++) {
        b[i] = uv_buf_init((char *)iov[i].p, (unsigned)iov[i].n);
        total += iov[i].n;
    }
    if (c->pending_writes == 0) {
        int w = uv_try_write(&c->h.stream, b, n);
        if (w > 0)
            off = (size_t)w;
        else if (w < 0 && w != UV_EAGAIN) {
            c->ws_err = CIPC_ENET;
            conn_close(c);
            return w;
        }
    }
    if (off == total)
        return 0;
    /* Gather the unwritten rest into one buffer. */
    struct wreq *wr = malloc(sizeof *wr + (total - off));
    if (!wr) {
        conn_close(c);
        return -ENOMEM;
    }
    size_t pos = 0, skip = off;
    for (unsigned i = 0; i < n; i++) {
        size_t len = iov[i].n;
        const char *p = iov[i].p;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(wr->data + pos, p + skip, len - skip);
        pos += len - skip;
        skip = 0;
    }
    wr->c = c;
    wr->close_after = 0;
    uv_buf_t rest = uv_buf_init(wr->data, (unsigned)pos);
    int rc = uv_write(&wr->w, &c->h.stream, &rest, 1, on_written);
    if (rc < 0) {
        free(wr);
        conn_close(c);
        return rc;
    }
    c->pending_writes++;
    return 0;
}

static size_t conn_queued(void *t)
{
    struct conn *c = t;
    return c->closed ? 0 : uv_stream_get_write_queue_size(&c->h.stream);
}

static void conn_ws_close(void *t, bool now)
{
    struct conn *c = t;
    if (c->closed)
        return;
    stop_reading(c);
    c->state = C_CLOSING;
    if (now || c->pending_writes == 0)
        conn_close(c);
    else
        c->close_when_drained = 1;
}

/* Gathered frames leave before the loop next blocks: the prepare handle covers sends made
 * from timers and other callbacks that run before the poll, the check handle sends made
 * while handling I/O. */
static void flush_all(struct worker *w)
{
    struct conn *c = w->flush_list;
    w->flush_list = NULL;
    while (c) {
        struct conn *next = c->flush_next;
        c->flush_next = NULL;
        c->flush_pending = 0;
        if (c->ws && !c->closed)
            cipc__ws_flush(c->ws);
        c = next;
    }
}

static void on_flush_prepare(uv_prepare_t *h)
{
    flush_all(h->data);
}

static void on_flush_check(uv_check_t *h)
{
    flush_all(h->data);
}

void cipc__conn_flush_init(struct worker *w)
{
    uv_prepare_init(w->uv, &w->flush_prepare);
    uv_check_init(w->uv, &w->flush_check);
    w->flush_prepare.data = w->flush_check.data = w;
}

void cipc__conn_flush_close(struct worker *w, uv_close_cb cb)
{
    uv_close((uv_handle_t *)&w->flush_prepare, cb);
    uv_close((uv_handle_t *)&w->flush_check, cb);
}

static void conn_ws_defer(void *t)
{
    struct conn *c = t;
    struct worker *w = c->w;
    if (c->flush_pending || c->closed)
        return;
    c->flush_pending = 1;
    c->flush_next = w->flush_list;
    w->flush_list = c;
    if (!w->flush_started) {
        /* Started once, unreferenced: they never keep the loop alive by themselves. */
        w->flush_started = 1;
        uv_prepare_start(&w->flush_prepare, on_flush_prepare);
        uv_check_start(&w->flush_check, on_flush_check);
        uv_unref((uv_handle_t *)&w->flush_prepare);
        uv_unref((uv_handle_t *)&w->flush_check);
    }
}

/* Take a closing connection off the flush list. */
static void flush_unlink(struct conn *c)
{
    if (!c->flush_pending)
        return;
    struct conn **pp = &c->w->flush_list;
    while (*pp && *pp != c)
        pp = &(*pp)->flush_next;
    if (*pp)
        *pp = c->flush_next;
    c->flush_pending = 0;
    c->flush_next = NULL;
}

static void conn_ws_timer(void *t, long ms)
{
    struct conn *c = t;
    if (c->closed)
        return;
    if (ms <= 0) {
        c->timer_kind = T_NONE;
        uv_timer_stop(&c->timer);
        return;
    }
    c->timer_kind = T_WS;
    uv_timer_start(&c->timer, on_timer, (uint64_t)ms, 0);
}

const struct cipc__ws_transport cipc__conn_ws_transport = {
    .send = conn_sendv,
    .queued = conn_queued,
    .close = conn_ws_close,
    .timer = conn_ws_timer,
    .defer = conn_ws_defer,
};

int cipc__conn_upgrade(struct conn *c, const char *resp, size_t len, struct cipc_ws *ws)
{
    int rc = conn_send(c, resp, len, 0);
    if (rc < 0)
        return rc;
    /* The request is over; bytes after its head are the first frames. */
    c->ws = ws;
    c->state = C_WS;
    c->keep_alive = 0;
    if (c->timer_kind != T_NONE) {
        c->timer_kind = T_NONE;
        uv_timer_stop(&c->timer);
    }
    return 0;
}

/* After the upgrade handler returned: drop the request, start reading frames. */
static void upgrade_finish(struct conn *c)
{
    size_t used = c->head_len + c->body_done;
    req_reset(&c->req);
    c->head_len = c->body_done = 0;
    if (used)
        buf_consume(c, used);
}
