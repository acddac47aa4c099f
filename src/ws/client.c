/* The WebSocket client: resolve, connect (TCP, then TLS for wss://), the opening
 * handshake (RFC 6455 4.1), then a cipc_ws over this socket as its transport; optional
 * reconnects with the retry policy's backoff. The blocking cipc_wsc runs the same client
 * on a private loop. */
#include <errno.h>
#include <stdarg.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "cipc/time.h"
#include "cipc/url.h"
#include "http/response.h"
#include "ws/handshake.h"
#include "ws/ws.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_SEND_TIMEOUT_MS    10000
#define MAX_RESPONSE_HEAD          (16 * 1024)
#define MAX_RESPONSE_HEADERS       64
#define READ_SIZE                  (64 * 1024)

enum { S_IDLE, S_RESOLVING, S_CONNECTING, S_TLS, S_HANDSHAKE, S_OPEN, S_CLOSING };
enum { K_NONE, K_CONNECT, K_ENGINE, K_RECONNECT };

struct wsc_write {
    uv_write_t w;
    struct client *cl;
    char data[];
};

struct client {
    uv_loop_t *uv;
    cipc_ws *ws;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_getaddrinfo_t gai;
    uv_connect_t creq;
    int state;
    int timer_kind;
    int tcp_open;     /* tcp handle initialised and not closed */
    int closing_all;  /* the final teardown has started */
    int pending_writes;
    int close_when_drained;
    int err;          /* the error that ended this attempt */
    char errmsg[256];
    int attempt;      /* consecutive failed attempts (reconnects) */
    uint64_t rng;
    struct addrinfo *ai, *ai_next;
    /* From the URL and options. */
    char *host, *host_header, *target;
    int port, tls;
    long connect_timeout_ms;
    char **headers;
    size_t nheaders;
    char **protos;
    size_t nprotos;
    cipc_retry_policy reconnect;
    int has_reconnect;
    char *ca_file;
    int insecure;
    struct cipc__ws_pmd_config pmd;
    char key[CIPC__WS_KEY_SIZE];
    /* TLS */
    SSL_CTX *ctx;
    SSL *ssl;
    cipc_buf in;  /* plaintext received */
    cipc_buf pre; /* frames sent before the connection opened */
    cipc_buf tls_out;
    char rbuf[READ_SIZE];
    /* Blocking client hooks. */
    void (*on_final)(struct client *cl, void *ud);
    void *final_ud;
};

static void attempt_start(struct client *cl);
static void tcp_close(struct client *cl);
static void fail(struct client *cl, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* --- writing ------------------------------------------------------------------------ */

static void on_written(uv_write_t *w, int status)
{
    struct wsc_write *wr = (struct wsc_write *)w;
    struct client *cl = wr->cl;
    free(wr);
    cl->pending_writes--;
    if (status < 0 && cl->state != S_CLOSING) {
        fail(cl, CIPC_ENET, "send failed: %s", uv_strerror(status));
        return;
    }
    if (cl->close_when_drained && cl->pending_writes == 0) {
        tcp_close(cl);
        return;
    }
    if (cl->state == S_OPEN && cl->ws)
        cipc__ws_writable(cl->ws);
}

/* Write bytes as they are (ciphertext on TLS): what the socket takes, the rest copied. */
static int raw_send(struct client *cl, const char *p, size_t n)
{
    if (!cl->tcp_open || cl->state == S_CLOSING)
        return CIPC_ECLOSING;
    size_t off = 0;
    if (cl->pending_writes == 0 && n) {
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
        int w = uv_try_write((uv_stream_t *)&cl->tcp, &b, 1);
        if (w > 0)
            off = (size_t)w;
        else if (w < 0 && w != UV_EAGAIN) {
            fail(cl, CIPC_ENET, "send failed: %s", uv_strerror(w));
            return CIPC_ENET;
        }
    }
    if (off == n)
        return 0;
    struct wsc_write *wr = malloc(sizeof *wr + (n - off));
    if (!wr)
        return -ENOMEM;
    memcpy(wr->data, p + off, n - off);
    wr->cl = cl;
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)(n - off));
    int rc = uv_write(&wr->w, (uv_stream_t *)&cl->tcp, &b, 1, on_written);
    if (rc < 0) {
        free(wr);
        fail(cl, CIPC_ENET, "send failed: %s", uv_strerror(rc));
        return CIPC_ENET;
    }
    cl->pending_writes++;
    return 0;
}

/* Send what OpenSSL has for the peer. */
static int tls_flush(struct client *cl)
{
    BIO *wbio = SSL_get_wbio(cl->ssl);
    size_t pending;
    while ((pending = BIO_ctrl_pending(wbio)) > 0) {
        cipc_buf_reset(&cl->tls_out);
        if (cipc_buf_reserve(&cl->tls_out, pending) < 0)
            return -ENOMEM;
        int n = BIO_read(wbio, cl->tls_out.data, (int)pending);
        if (n <= 0)
            break;
        int rc = raw_send(cl, cl->tls_out.data, (size_t)n);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Send plaintext: encrypted first on wss. */
static int plain_send(struct client *cl, const char *p, size_t n)
{
    if (!cl->ssl)
        return raw_send(cl, p, n);
    while (n > 0) {
        int chunk = n > (1 << 30) ? (1 << 30) : (int)n;
        int w = SSL_write(cl->ssl, p, chunk);
        if (w <= 0) {
            ERR_clear_error();
            fail(cl, CIPC_ETLS, "TLS write failed");
            return CIPC_ETLS;
        }
        p += w;
        n -= (size_t)w;
        int rc = tls_flush(cl);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* --- the transport for the cipc_ws --------------------------------------------------- */

static int t_send(void *t, const struct cipc__ws_iov *iov, unsigned n)
{
    struct client *cl = t;
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += iov[i].n;
    if (n > 1 && total <= 16384 && cl->state == S_OPEN) {
        /* A small frame in one write (one TLS record): not one for the header and
         * another for the payload. */
        char one[16384];
        size_t pos = 0;
        for (unsigned i = 0; i < n; i++) {
            memcpy(one + pos, iov[i].p, iov[i].n);
            pos += iov[i].n;
        }
        return plain_send(cl, one, pos);
    }
    for (unsigned i = 0; i < n; i++) {
        int rc;
        if (cl->state != S_OPEN)
            rc = cl->state == S_CLOSING ? CIPC_ECLOSING : cipc_buf_append(&cl->pre, iov[i].p, iov[i].n);
        else
            rc = plain_send(cl, iov[i].p, iov[i].n);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static size_t t_queued(void *t)
{
    struct client *cl = t;
    size_t q = cl->pre.len;
    if (cl->tcp_open)
        q += uv_stream_get_write_queue_size((uv_stream_t *)&cl->tcp);
    return q;
}

static void t_close(void *t, bool now)
{
    struct client *cl = t;
    if (now || cl->pending_writes == 0)
        tcp_close(cl);
    else
        cl->close_when_drained = 1;
}

static void on_timer(uv_timer_t *t);

static void t_timer(void *t, long ms)
{
    struct client *cl = t;
    if (ms <= 0) {
        if (cl->timer_kind == K_ENGINE) {
            uv_timer_stop(&cl->timer);
            cl->timer_kind = K_NONE;
        }
        return;
    }
    cl->timer_kind = K_ENGINE;
    uv_timer_start(&cl->timer, on_timer, (uint64_t)ms, 0);
}

static const struct cipc__ws_transport client_transport = {
    .send = t_send,
    .queued = t_queued,
    .close = t_close,
    .timer = t_timer,
};

/* --- ending -------------------------------------------------------------------------- */

static void client_free(struct client *cl)
{
    if (cl->ai)
        uv_freeaddrinfo(cl->ai);
    if (cl->ssl)
        SSL_free(cl->ssl);
    if (cl->ctx)
        SSL_CTX_free(cl->ctx);
    for (size_t i = 0; i < cl->nheaders; i++)
        free(cl->headers[i]);
    free(cl->headers);
    for (size_t i = 0; i < cl->nprotos; i++)
        free(cl->protos[i]);
    free(cl->protos);
    free(cl->host);
    free(cl->host_header);
    free(cl->target);
    free(cl->ca_file);
    cipc_buf_free(&cl->in);
    cipc_buf_free(&cl->pre);
    cipc_buf_free(&cl->tls_out);
    free(cl);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct client *cl = h->data;
    cipc_ws *ws = cl->ws;
    cl->ws = NULL;
    void (*fin)(struct client *, void *) = cl->on_final;
    void *fud = cl->final_ud;
    if (ws) {
        ws->t = NULL;
        cipc__ws_gone(ws, cl->err);
    }
    if (fin)
        fin(cl, fud);
    client_free(cl);
}

/* The socket of this attempt is closed: reconnect, or end for good. */
static void attempt_over(struct client *cl)
{
    int was_open = cl->state == S_OPEN || cl->state == S_CLOSING;
    cipc_ws *ws = cl->ws;
    if (cl->ssl) {
        SSL_free(cl->ssl);
        cl->ssl = NULL;
    }
    cipc_buf_reset(&cl->in);
    cipc_buf_reset(&cl->pre);
    cl->state = S_IDLE;
    cl->close_when_drained = 0;
    if (was_open)
        cl->attempt = 0;
    int64_t delay = -1;
    if (cl->has_reconnect && ws && !ws->user_closed && !cl->closing_all) {
        cl->attempt++;
        cipc_retry_policy p = cl->reconnect;
        if (p.max_attempts <= 0)
            p.max_attempts = 1 << 30; /* unlimited */
        delay = cipc_retry_delay_ms(&p, cl->attempt, -1, &cl->rng);
    }
    if (delay < 0) {
        cl->closing_all = 1;
        uv_timer_stop(&cl->timer);
        uv_close((uv_handle_t *)&cl->timer, on_timer_closed);
        return;
    }
    /* Tell the user this connection ended; the same cipc_ws reconnects. */
    ws->t = cl;
    if (cipc__ws_lost(ws, cl->err) < 0) {
        cl->closing_all = 1;
        uv_close((uv_handle_t *)&cl->timer, on_timer_closed);
        return;
    }
    cl->err = 0;
    cl->errmsg[0] = '\0';
    cl->timer_kind = K_RECONNECT;
    uv_timer_start(&cl->timer, on_timer, (uint64_t)delay, 0);
}

static void on_tcp_closed(uv_handle_t *h)
{
    struct client *cl = h->data;
    cl->tcp_open = 0;
    attempt_over(cl);
}

static void tcp_close(struct client *cl)
{
    if (cl->state == S_RESOLVING) {
        uv_cancel((uv_req_t *)&cl->gai); /* on_resolved sees UV_ECANCELED */
        cl->state = S_CLOSING;
        return;
    }
    if (cl->tcp_open && uv_is_closing((uv_handle_t *)&cl->tcp)) {
        cl->state = S_CLOSING; /* its close callback ends the attempt */
        return;
    }
    if (!cl->tcp_open) {
        if (cl->state != S_CLOSING) {
            cl->state = S_CLOSING;
            attempt_over(cl);
        }
        return;
    }
    if (cl->timer_kind == K_CONNECT || cl->timer_kind == K_ENGINE) {
        uv_timer_stop(&cl->timer);
        cl->timer_kind = K_NONE;
    }
    cl->state = S_CLOSING;
    uv_close((uv_handle_t *)&cl->tcp, on_tcp_closed);
}

static void fail(struct client *cl, int err, const char *fmt, ...)
{
    if (!cl->err) {
        cl->err = err;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cl->errmsg, sizeof cl->errmsg, fmt, ap);
        va_end(ap);
    }
    if (cl->ws && (cl->state == S_OPEN)) {
        cipc__ws_fail(cl->ws, err, cl->errmsg); /* closes through t_close */
        return;
    }
    if (cl->ws && !cl->ws->err) {
        cl->ws->err = err;
        snprintf(cl->ws->errmsg, sizeof cl->ws->errmsg, "%.*s", (int)sizeof cl->ws->errmsg - 1, cl->errmsg);
    }
    tcp_close(cl);
}

/* --- connecting ---------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    struct client *cl = t->data;
    int kind = cl->timer_kind;
    cl->timer_kind = K_NONE;
    if (kind == K_CONNECT)
        fail(cl, CIPC_ECONNTIMEOUT, "no WebSocket connection to %s:%d within %ld ms", cl->host,
             cl->port, cl->connect_timeout_ms);
    else if (kind == K_ENGINE && cl->ws)
        cipc__ws_timer(cl->ws);
    else if (kind == K_RECONNECT)
        attempt_start(cl);
}

static void send_request(struct client *cl)
{
    cipc_buf req = CIPC_BUF_INIT;
    char offer[CIPC__WS_PMD_HDR_MAX];
    const char *ext = NULL;
    if (cl->pmd.enabled && cipc__ws_pmd_offer(&cl->pmd, offer, sizeof offer) >= 0)
        ext = offer;
    if (cipc__ws_client_key(cl->key) < 0 ||
        cipc__ws_client_request(&req, cl->host_header, cl->target, cl->key,
                                (const char *const *)cl->protos, cl->nprotos, ext,
                                (const char *const *)cl->headers, cl->nheaders) < 0) {
        cipc_buf_free(&req);
        fail(cl, CIPC_EHEADER, "cannot build the handshake request");
        return;
    }
    cl->state = S_HANDSHAKE;
    plain_send(cl, req.data, req.len);
    cipc_buf_free(&req);
}

/* The handshake response may be complete in cl->in: check it and open. */
static void check_response(struct client *cl)
{
    struct cipc__http_response_head head;
    struct cipc__http_header hdrs[MAX_RESPONSE_HEADERS];
    int n = cipc__http_parse_response(cl->in.data, cl->in.len, &head, hdrs, MAX_RESPONSE_HEADERS,
                                      MAX_RESPONSE_HEAD);
    if (n == CIPC_EAGAIN)
        return;
    if (n < 0) {
        fail(cl, CIPC_EPROTO, "invalid HTTP response to the WebSocket handshake");
        return;
    }
    struct cipc__ws_client_hs hs;
    char why[200];
    if (cipc__ws_client_check(&head, hdrs, head.n_headers, cl->key,
                              (const char *const *)cl->protos, cl->nprotos, &cl->pmd, &hs, why,
                              sizeof why) < 0) {
        fail(cl, CIPC_EPROTO, "WebSocket handshake failed: %s", why);
        return;
    }
    char proto[256] = "";
    if (hs.protocol.p)
        snprintf(proto, sizeof proto, "%.*s", (int)hs.protocol.n, hs.protocol.p);
    cipc_ws *ws = cl->ws;
    if (cipc__ws_set_negotiated(ws, hs.pmd ? &hs.pmd_params : NULL, hs.protocol.p ? proto : NULL) <
        0) {
        fail(cl, -ENOMEM, "out of memory");
        return;
    }
    uv_timer_stop(&cl->timer);
    cl->timer_kind = K_NONE;
    cl->state = S_OPEN;
    cipc_buf_consume(&cl->in, (size_t)n);
    /* Frames sent before the handshake completed go first. */
    if (cl->pre.len) {
        cipc_buf pre = cl->pre;
        cl->pre = (cipc_buf)CIPC_BUF_INIT;
        plain_send(cl, pre.data, pre.len);
        cipc_buf_free(&pre);
    }
    if (cl->state != S_OPEN)
        return;
    int reconnected = cl->attempt > 0 || ws->st.msgs_in || ws->st.msgs_out;
    if (reconnected && ws->h.on_reconnect)
        ws->h.on_reconnect(ws, cl->attempt, ws->ud);
    cl->attempt = 0;
    cipc__ws_opened(ws, NULL);
}

static void deliver(struct client *cl)
{
    if (cl->state == S_HANDSHAKE)
        check_response(cl);
    if (cl->state == S_OPEN && cl->in.len && cl->ws) {
        cipc__ws_input(cl->ws, (uint8_t *)cl->in.data, cl->in.len);
        cipc_buf_reset(&cl->in);
    }
}

static void tls_step(struct client *cl)
{
    if (cl->state == S_TLS) {
        int r = SSL_do_handshake(cl->ssl);
        if (r != 1) {
            int e = SSL_get_error(cl->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                tls_flush(cl);
                return;
            }
            long v = SSL_get_verify_result(cl->ssl);
            char buf[160];
            ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
            ERR_clear_error();
            if (v != X509_V_OK)
                fail(cl, CIPC_ECERT, "TLS certificate verification failed: %s",
                     X509_verify_cert_error_string(v));
            else
                fail(cl, CIPC_ETLS, "TLS handshake failed: %s", buf);
            return;
        }
        tls_flush(cl);
        send_request(cl);
    }
    /* Decrypt whatever is there. */
    for (;;) {
        if (cipc_buf_reserve(&cl->in, 16384) < 0) {
            fail(cl, -ENOMEM, "out of memory");
            return;
        }
        int got = SSL_read(cl->ssl, cl->in.data + cl->in.len, (int)(cl->in.cap - cl->in.len - 1));
        if (got > 0) {
            cl->in.len += (size_t)got;
            cl->in.data[cl->in.len] = '\0';
            continue;
        }
        int e = SSL_get_error(cl->ssl, got);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        ERR_clear_error();
        if (e == SSL_ERROR_ZERO_RETURN) {
            deliver(cl);
            tcp_close(cl);
        } else {
            fail(cl, CIPC_ETLS, "TLS read failed");
        }
        return;
    }
    tls_flush(cl);
    deliver(cl);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct client *cl = h->data;
    (void)suggested;
    b->base = cl->rbuf;
    b->len = sizeof cl->rbuf;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct client *cl = s->data;
    if (n == 0)
        return;
    if (n < 0) {
        if (cl->state == S_OPEN && (n == UV_EOF || (cl->ws && cl->ws->peer_closed))) {
            /* After a close handshake (a reset then is no error), or 1006 for the
             * handlers. */
            tcp_close(cl);
            return;
        }
        if (n == UV_EOF)
            fail(cl, CIPC_EPROTO, "the server closed the connection during the handshake");
        else
            fail(cl, CIPC_ENET, "receive failed: %s", uv_strerror((int)n));
        return;
    }
    if (cl->ssl) {
        BIO_write(SSL_get_rbio(cl->ssl), b->base, (int)n);
        tls_step(cl);
        return;
    }
    if (cipc_buf_append(&cl->in, b->base, (size_t)n) < 0) {
        fail(cl, -ENOMEM, "out of memory");
        return;
    }
    deliver(cl);
}

static int tls_setup(struct client *cl)
{
    if (!cl->ctx) {
        cl->ctx = SSL_CTX_new(TLS_client_method());
        if (!cl->ctx)
            return CIPC_ETLS;
        SSL_CTX_set_min_proto_version(cl->ctx, TLS1_2_VERSION);
        if (!cl->insecure) {
            SSL_CTX_set_verify(cl->ctx, SSL_VERIFY_PEER, NULL);
            if (cl->ca_file ? SSL_CTX_load_verify_locations(cl->ctx, cl->ca_file, NULL) != 1
                            : SSL_CTX_set_default_verify_paths(cl->ctx) != 1) {
                ERR_clear_error();
                return CIPC_ETLS;
            }
        }
    }
    cl->ssl = SSL_new(cl->ctx);
    BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
    if (!cl->ssl || !r || !w) {
        BIO_free(r);
        BIO_free(w);
        return -ENOMEM;
    }
    SSL_set_bio(cl->ssl, r, w);
    SSL_set_connect_state(cl->ssl);
    int is_ip = strchr(cl->host, ':') != NULL || strspn(cl->host, "0123456789.") == strlen(cl->host);
    if (!is_ip)
        SSL_set_tlsext_host_name(cl->ssl, cl->host);
    if (!cl->insecure) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(cl->ssl);
        if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, cl->host) != 1
                  : X509_VERIFY_PARAM_set1_host(vp, cl->host, 0) != 1) {
            ERR_clear_error();
            return CIPC_ETLS;
        }
    }
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_set_alpn_protos(cl->ssl, alpn, sizeof alpn - 1);
    return 0;
}

static void try_next_address(struct client *cl);

/* A failed address's socket is closed: try the next one, unless the attempt ended. */
static void on_tcp_closed_retry(uv_handle_t *h)
{
    struct client *cl = h->data;
    cl->tcp_open = 0;
    if (cl->state == S_CLOSING)
        attempt_over(cl);
    else
        try_next_address(cl);
}

static void on_connected(uv_connect_t *req, int status)
{
    struct client *cl = req->data;
    if (cl->state == S_CLOSING)
        return;
    if (status < 0) {
        if (status == UV_ECANCELED)
            return;
        if (cl->ai_next) {
            /* Another address of the name: close this socket, then try it. */
            uv_close((uv_handle_t *)&cl->tcp, on_tcp_closed_retry);
            return;
        }
        fail(cl, CIPC_ECONNECT, "cannot connect to %s:%d: %s", cl->host, cl->port,
             uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&cl->tcp, 1);
    if (uv_read_start((uv_stream_t *)&cl->tcp, on_alloc, on_read) < 0) {
        fail(cl, CIPC_ENET, "cannot read from the socket");
        return;
    }
    if (cl->tls) {
        int rc = tls_setup(cl);
        if (rc < 0) {
            fail(cl, rc, "cannot set up TLS (CA file %s)", cl->ca_file ? cl->ca_file : "(system)");
            return;
        }
        cl->state = S_TLS;
        tls_step(cl);
        return;
    }
    send_request(cl);
}

static void try_next_address(struct client *cl)
{
    struct addrinfo *a = cl->ai_next;
    cl->ai_next = a ? a->ai_next : NULL;
    uv_tcp_init(cl->uv, &cl->tcp);
    cl->tcp.data = cl;
    cl->tcp_open = 1;
    cl->state = S_CONNECTING;
    cl->creq.data = cl;
    int rc = uv_tcp_connect(&cl->creq, &cl->tcp, a->ai_addr, on_connected);
    if (rc < 0)
        fail(cl, CIPC_ECONNECT, "cannot connect to %s:%d: %s", cl->host, cl->port, uv_strerror(rc));
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct client *cl = req->data;
    if (cl->ai)
        uv_freeaddrinfo(cl->ai);
    cl->ai = res;
    if (cl->state == S_CLOSING || status == UV_ECANCELED) {
        cl->state = S_CLOSING;
        attempt_over(cl);
        return;
    }
    if (status < 0 || !res) {
        cl->state = S_IDLE;
        fail(cl, CIPC_EDNS, "cannot resolve %s: %s", cl->host, uv_strerror(status));
        return;
    }
    cl->ai_next = res;
    try_next_address(cl);
}

static void attempt_start(struct client *cl)
{
    cl->err = 0;
    cl->errmsg[0] = '\0';
    cl->state = S_RESOLVING;
    cl->timer_kind = K_CONNECT;
    uv_timer_start(&cl->timer, on_timer, (uint64_t)cl->connect_timeout_ms, 0);
    char port[8];
    snprintf(port, sizeof port, "%d", cl->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    cl->gai.data = cl;
    int rc = uv_getaddrinfo(cl->uv, &cl->gai, on_resolved, cl->host, port, &hints);
    if (rc < 0) {
        cl->state = S_IDLE;
        fail(cl, CIPC_EDNS, "cannot resolve %s: %s", cl->host, uv_strerror(rc));
    }
}

/* --- setup --------------------------------------------------------------------------- */

static char **copy_list(const char *const *in, size_t *n)
{
    *n = 0;
    while (in && in[*n])
        (*n)++;
    char **out = calloc(*n + 1, sizeof *out);
    if (!out)
        return NULL;
    for (size_t i = 0; i < *n; i++) {
        if (!(out[i] = strdup(in[i]))) {
            for (size_t k = 0; k < i; k++)
                free(out[k]);
            free(out);
            return NULL;
        }
    }
    return out;
}

/* Parse the URL into cl. Returns 0 or CIPC_EURL. */
static int parse_url(struct client *cl, const char *url)
{
    cipc_url u;
    size_t len = strlen(url);
    if (cipc_url_parse(url, len, &u) != 0 || !(u.flags & CIPC_URL_HAS_AUTHORITY) || !u.host.len ||
        (u.flags & CIPC_URL_HAS_USERINFO))
        return CIPC_EURL;
    if (u.scheme.len == 2 && !strncasecmp(url, "ws", 2))
        cl->tls = 0;
    else if (u.scheme.len == 3 && !strncasecmp(url, "wss", 3))
        cl->tls = 1;
    else
        return CIPC_EURL;
    cl->port = (u.flags & CIPC_URL_HAS_PORT) ? u.port_num : cl->tls ? 443 : 80;
    if (cl->port == 0)
        return CIPC_EURL;
    cl->host = strndup(url + u.host.off, u.host.len);
    /* Host: as in the URL (brackets kept for IPv6), the port only when not the default. */
    size_t hs = u.host.off - ((u.flags & CIPC_URL_HOST_IPV6) ? 1 : 0);
    size_t he = u.host.off + u.host.len + ((u.flags & CIPC_URL_HOST_IPV6) ? 1 : 0);
    int default_port = cl->port == (cl->tls ? 443 : 80);
    cipc_buf hh = CIPC_BUF_INIT, tg = CIPC_BUF_INIT;
    cipc_buf_append(&hh, url + hs, he - hs);
    if (!default_port)
        cipc_buf_printf(&hh, ":%d", cl->port);
    if (u.path.len)
        cipc_buf_append(&tg, url + u.path.off, u.path.len);
    else
        cipc_buf_append(&tg, "/", 1);
    if (u.flags & CIPC_URL_HAS_QUERY) {
        cipc_buf_append(&tg, "?", 1);
        cipc_buf_append(&tg, url + u.query.off, u.query.len);
    }
    cl->host_header = cipc_buf_steal(&hh, NULL);
    cl->target = cipc_buf_steal(&tg, NULL);
    return cl->host && cl->host_header && cl->target ? 0 : -ENOMEM;
}

static int client_new(uv_loop_t *uv, const char *url, const cipc_ws_client_opts *co,
                      const cipc_ws_handlers *h, void *ud, struct client **out_cl,
                      cipc_ws **out)
{
    if (!uv || !url || !h)
        return -EINVAL;
    struct client *cl = calloc(1, sizeof *cl);
    if (!cl)
        return -ENOMEM;
    cl->uv = uv;
    int rc = parse_url(cl, url);
    if (rc < 0) {
        client_free(cl);
        return rc;
    }
    cipc_ws_client_opts c = co ? *co : (cipc_ws_client_opts){0};
    cl->connect_timeout_ms = c.connect_timeout_ms > 0 ? c.connect_timeout_ms
                                                      : DEFAULT_CONNECT_TIMEOUT_MS;
    cl->insecure = c.insecure;
    cl->rng = cipc_retry_seed();
    if (c.reconnect) {
        cl->reconnect = *c.reconnect;
        cl->has_reconnect = 1;
    }
    const cipc_ws_opts *o = h->opts;
    cl->headers = copy_list(c.headers, &cl->nheaders);
    cl->protos = copy_list(o ? o->subprotocols : NULL, &cl->nprotos);
    if (!cl->headers || !cl->protos || (c.ca_file && !(cl->ca_file = strdup(c.ca_file)))) {
        client_free(cl);
        return -ENOMEM;
    }
    for (size_t i = 0; i < cl->nheaders; i++) {
        if (strpbrk(cl->headers[i], "\r\n") || !strchr(cl->headers[i], ':')) {
            client_free(cl);
            return CIPC_EHEADER;
        }
    }
    cl->pmd.enabled = !(o && o->no_compression);
    cl->pmd.level = o ? o->compress_level : 0;
    struct cipc__ws_init in = {
        .is_server = false,
        .h = h,
        .ud = ud,
        .tops = &client_transport,
        .t = cl,
        .path = cl->target,
        .peer = cl->host,
        .owner = cl,
    };
    rc = cipc__ws_new(&in, &cl->ws);
    if (rc < 0) {
        client_free(cl);
        return rc;
    }
    uv_timer_init(uv, &cl->timer);
    cl->timer.data = cl;
    *out_cl = cl;
    *out = cl->ws;
    attempt_start(cl);
    return 0;
}

int cipc_ws_connect(cipc_loop *loop, const char *url, const cipc_ws_client_opts *co,
                    const cipc_ws_handlers *h, void *ud, cipc_ws **out)
{
    struct client *cl = NULL;
    return client_new(loop ? cipc_loop_uv(loop) : NULL, url, co, h, ud, &cl, out);
}

/* --- the blocking client ------------------------------------------------------------- */

struct msg {
    struct msg *next;
    int type;
    size_t len;
    unsigned char data[];
};

struct cipc_wsc {
    uv_loop_t loop;
    struct client *cl; /* NULL once it ended */
    cipc_ws *ws;
    int open, ended;
    int close_code;
    char close_reason[124];
    char *subprotocol;
    int err;
    char errmsg[256];
    struct msg *head, *tail, *current;
    uv_timer_t deadline;
    int timed_out;
    long send_timeout_ms;
};

static void b_open(cipc_ws *ws, cipc_http_req *req, void *ud)
{
    cipc_wsc *c = ud;
    (void)req;
    c->open = 1;
    const char *p = cipc_ws_subprotocol(ws);
    free(c->subprotocol);
    c->subprotocol = p ? strdup(p) : NULL;
}

static void b_message(cipc_ws *ws, int type, const void *data, size_t len, void *ud)
{
    cipc_wsc *c = ud;
    (void)ws;
    struct msg *m = malloc(sizeof *m + len + 1);
    if (!m)
        return;
    m->next = NULL;
    m->type = type;
    m->len = len;
    memcpy(m->data, data, len);
    m->data[len] = '\0';
    if (c->tail)
        c->tail->next = m;
    else
        c->head = m;
    c->tail = m;
}

static void b_error(cipc_ws *ws, int err, const char *msg, void *ud)
{
    cipc_wsc *c = ud;
    (void)ws;
    if (!c->err) {
        c->err = err;
        snprintf(c->errmsg, sizeof c->errmsg, "%s", msg);
    }
}

static void b_close(cipc_ws *ws, int code, const char *reason, size_t len, void *ud)
{
    cipc_wsc *c = ud;
    (void)ws;
    c->close_code = code;
    snprintf(c->close_reason, sizeof c->close_reason, "%.*s", (int)len, reason);
}

static void b_final(struct client *cl, void *ud)
{
    cipc_wsc *c = ud;
    (void)cl;
    c->ended = 1;
    c->cl = NULL;
    c->ws = NULL;
}

static void on_deadline(uv_timer_t *t)
{
    cipc_wsc *c = t->data;
    c->timed_out = 1;
}

/* Run the loop until `done(c)` or the deadline (timeout_ms < 0: none). Returns 1 if done. */
static int run_until(cipc_wsc *c, int (*done)(cipc_wsc *), long timeout_ms)
{
    c->timed_out = 0;
    if (timeout_ms >= 0)
        uv_timer_start(&c->deadline, on_deadline, (uint64_t)timeout_ms, 0);
    while (!done(c) && !c->timed_out && !c->ended)
        uv_run(&c->loop, UV_RUN_ONCE);
    uv_timer_stop(&c->deadline);
    return done(c);
}

static int is_open_or_ended(cipc_wsc *c)
{
    return c->open || c->ended;
}

static int has_msg(cipc_wsc *c)
{
    return c->head != NULL;
}

static int has_ended(cipc_wsc *c)
{
    return c->ended;
}

static const cipc_ws_handlers blocking_handlers = {
    .on_open = b_open,
    .on_message = b_message,
    .on_error = b_error,
    .on_close = b_close,
};

int cipc_wsc_connect(const char *url, const cipc_ws_client_opts *co, const cipc_ws_opts *opts,
                     cipc_wsc **out)
{
    cipc_wsc *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    if (uv_loop_init(&c->loop) < 0) {
        free(c);
        return -ENOMEM;
    }
    uv_timer_init(&c->loop, &c->deadline);
    c->deadline.data = c;
    *out = c;
    cipc_ws_client_opts o = co ? *co : (cipc_ws_client_opts){0};
    c->send_timeout_ms = o.send_timeout_ms > 0 ? o.send_timeout_ms : DEFAULT_SEND_TIMEOUT_MS;
    o.reconnect = NULL; /* a blocking connection does not reconnect by itself */
    cipc_ws_handlers h = blocking_handlers;
    h.opts = opts;
    int rc = client_new(&c->loop, url, &o, &h, c, &c->cl, &c->ws);
    if (rc < 0) {
        c->ended = 1;
        c->err = rc;
        snprintf(c->errmsg, sizeof c->errmsg, "%s", cipc_strerror(rc));
        return rc;
    }
    c->cl->on_final = b_final;
    c->cl->final_ud = c;
    run_until(c, is_open_or_ended, -1); /* the connect timeout bounds it */
    if (c->open && !c->ended)
        return 0;
    if (!c->err) {
        c->err = CIPC_ECONNECT;
        snprintf(c->errmsg, sizeof c->errmsg, "connection closed during the handshake");
    }
    return c->err;
}

static int is_drained(cipc_wsc *c)
{
    return !c->cl || c->cl->pending_writes == 0;
}

int cipc_wsc_send(cipc_wsc *c, int type, const void *data, size_t len)
{
    if (!c->ws || c->ended)
        return CIPC_ECLOSING;
    int rc = cipc_ws_send(c->ws, type, data, len);
    /* Wait until the socket has taken the message (as websockets' send() awaits the
     * drain), at most send_timeout_ms. */
    if (rc == 0 && !is_drained(c) && !run_until(c, is_drained, c->send_timeout_ms))
        return c->ended ? CIPC_ECLOSING : CIPC_ETIMEOUT;
    return rc;
}

int cipc_wsc_send_text(cipc_wsc *c, const char *text)
{
    return cipc_wsc_send(c, CIPC_WS_TEXT, text, text ? strlen(text) : 0);
}

int cipc_wsc_ping(cipc_wsc *c, const void *data, size_t len)
{
    if (!c->ws || c->ended)
        return CIPC_ECLOSING;
    return cipc_ws_ping(c->ws, data, len);
}

int cipc_wsc_recv(cipc_wsc *c, cipc_ws_msg *m, long timeout_ms)
{
    free(c->current);
    c->current = NULL;
    if (!c->head && !c->ended)
        run_until(c, has_msg, timeout_ms);
    if (!c->head)
        return c->ended ? CIPC_ECLOSING : CIPC_ETIMEOUT;
    struct msg *x = c->head;
    c->head = x->next;
    if (!c->head)
        c->tail = NULL;
    c->current = x;
    m->type = x->type;
    m->data = x->data;
    m->len = x->len;
    return 0;
}

int cipc_wsc_close(cipc_wsc *c, int code, const char *reason)
{
    if (c->ended || !c->ws)
        return 0;
    long timeout = c->ws->o.close_timeout_ms;
    int rc = cipc_ws_close(c->ws, code, reason);
    if (rc < 0 && rc != CIPC_ECLOSING)
        return rc;
    /* The engine's close timer ends it within close_timeout_ms; the margin is for the
     * socket close itself. Without the peer's close frame (1006) it timed out. */
    if (!run_until(c, has_ended, timeout + 1000))
        return CIPC_ETIMEOUT;
    return c->close_code == CIPC_WS_CLOSE_ABNORMAL ? CIPC_ETIMEOUT : 0;
}

int cipc_wsc_close_code(const cipc_wsc *c)
{
    return c->ended ? c->close_code : 0;
}

const char *cipc_wsc_close_reason(const cipc_wsc *c)
{
    return c->close_reason;
}

const char *cipc_wsc_subprotocol(const cipc_wsc *c)
{
    return c->subprotocol;
}

const char *cipc_wsc_errmsg(const cipc_wsc *c)
{
    return c->errmsg;
}

static void on_any_closed(uv_handle_t *h)
{
    (void)h;
}

void cipc_wsc_free(cipc_wsc *c)
{
    if (!c)
        return;
    if (!c->ended && c->cl) {
        c->cl->closing_all = 1;
        if (c->cl->state == S_OPEN && c->ws)
            cipc__ws_fail(c->ws, 0, NULL);
        else
            tcp_close(c->cl);
        while (!c->ended)
            uv_run(&c->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&c->deadline, on_any_closed);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_loop_close(&c->loop);
    while (c->head) {
        struct msg *n = c->head->next;
        free(c->head);
        c->head = n;
    }
    free(c->current);
    free(c->subprotocol);
    free(c);
}
