/* src/broker/broker.c -- the broker's listeners and clients (cipc/broker.h): reading into
 * one shared buffer, parsing with the RESP parser, running commands (cmd.c), and
 * writing each client's output once per loop iteration (a uv_prepare flushes every
 * client that got output, after the AOF is written). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker/internal.h"
#include "core/core_internal.h"
#include "cipc/log.h"
#include "cipc/time.h"

#define RBUF_SIZE        (64 * 1024)
#define CLOSE_GRACE_MS   1000

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* --- output -------------------------------------------------------------------------- */

void cipc__client_out_ready(bclient *c)
{
    if (c->pending || c->closed)
        return;
    c->pending = 1;
    c->pend_next = c->b->pend_head;
    c->b->pend_head = c;
}

static void on_close(uv_handle_t *h);
static void on_handle_closed(uv_handle_t *h);

/* Once closing and without clients, the flush handle goes too: the loop can then end. */
static void close_flush_if_done(cipc_broker *b)
{
    if (b->closing && !b->clients && !uv_is_closing((uv_handle_t *)&b->flush))
        uv_close((uv_handle_t *)&b->flush, on_handle_closed);
}

static void client_free(bclient *c)
{
    cipc_broker *b = c->b;
    if (c->pending) { /* out of the flush list before the memory goes */
        bclient **pp = &b->pend_head;
        while (*pp && *pp != c)
            pp = &(*pp)->pend_next;
        if (*pp)
            *pp = c->pend_next;
    }
    if (c->prev)
        c->prev->next = c->next;
    else if (c->virt)
        b->vclients = c->next;
    else
        b->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (!c->virt)
        b->nclients--;
    cipc__resp_parser_free(&c->parser);
    cipc_buf_free(&c->inq);
    cipc_buf_free(&c->out);
    cipc_buf_free(&c->wbuf);
    cipc__dict_free(&c->channels, NULL);
    cipc__dict_free(&c->patterns, NULL);
    free(c->name);
    free(c);
    close_flush_if_done(b);
}

static void on_close(uv_handle_t *h)
{
    client_free(h->data);
}

/* Close now: unsubscribe, unblock, and uv_close (the memory goes in on_close). */
static void client_close_now(bclient *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    cipc__client_pubsub_clear(c);
    cipc__client_blocked_clear(c);
    if (c->virt)
        client_free(c);
    else
        uv_close(&c->h.handle, on_close);
}

void cipc__client_close(bclient *c, int after_output)
{
    if (c->closed)
        return;
    if (!after_output || (c->out.len == 0 && !c->writing)) {
        client_close_now(c);
        return;
    }
    c->closing = 1; /* the flush closes it once the output is written */
    if (c->reading) {
        uv_read_stop(&c->h.stream);
        c->reading = 0;
    }
    cipc__client_out_ready(c);
}

static void flush_client(bclient *c);

static void on_write(uv_write_t *req, int status)
{
    bclient *c = req->data;
    c->writing = 0;
    c->wbuf.len = 0;
    if (status < 0 || c->closed) {
        if (!c->closed)
            client_close_now(c);
        return;
    }
    if (c->out.len || c->closing)
        flush_client(c);
}

/* Write c->out: as much as the socket takes at once, the rest through uv_write. */
static void flush_client(bclient *c)
{
    if (c->closed || c->writing)
        return;
    if (c->virt) { /* hand the replies over; the callback may close the client */
        if (c->out.len) {
            cipc_buf t = c->wbuf;
            c->wbuf = c->out;
            c->out = t;
            c->out.len = 0;
            c->writing = 1; /* a close from the callback is deferred to below */
            c->vcb(c->wbuf.data, c->wbuf.len, c->vud);
            c->writing = 0;
            c->wbuf.len = 0;
        }
        if (c->closing)
            client_close_now(c);
        else if (c->out.len)
            cipc__client_out_ready(c);
        return;
    }
    if (c->out.len) {
        uv_buf_t ub = uv_buf_init(c->out.data, (unsigned)c->out.len);
        int n = uv_try_write(&c->h.stream, &ub, 1);
        if (n < 0 && n != UV_EAGAIN) {
            client_close_now(c);
            return;
        }
        if (n > 0)
            cipc_buf_consume(&c->out, (size_t)n);
        if (c->out.len) {
            /* Swap: the unsent bytes become the write buffer; new output goes to out. */
            cipc_buf t = c->wbuf;
            c->wbuf = c->out;
            c->out = t;
            c->out.len = 0;
            ub = uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len);
            c->wreq.data = c;
            if (uv_write(&c->wreq, &c->h.stream, &ub, 1, on_write) < 0) {
                client_close_now(c);
                return;
            }
            c->writing = 1;
            return;
        }
    }
    /* Keep idle clients small: give back a big output buffer once it is empty. */
    if (c->out.cap > 256 * 1024)
        cipc_buf_free(&c->out);
    if (c->closing)
        client_close_now(c);
}

/* Pub/sub output limits (client-output-buffer-limit pubsub): checked when output is
 * queued to a subscriber and once a second. */
static int over_limit(bclient *c, int64_t now)
{
    cipc_broker *b = c->b;
    size_t pending = c->out.len + c->wbuf.len;
    if (pending > b->o.pubsub_obuf_hard)
        return 1;
    if (pending > b->o.pubsub_obuf_soft) {
        if (!c->soft_since_ms)
            c->soft_since_ms = now;
        else if (now - c->soft_since_ms >= b->o.pubsub_obuf_soft_seconds * 1000)
            return 1;
    } else {
        c->soft_since_ms = 0;
    }
    return 0;
}

int cipc__client_check_obuf(bclient *c)
{
    if (c->closed || c->closing)
        return -1;
    if ((c->channels.n || c->patterns.n) && over_limit(c, cipc_now_ms())) {
        c->b->obuf_kills++;
        cipc_log(CIPC_LOG_WARN, "broker", "client id=%llu closed for overcoming of output buffer limits",
                      (unsigned long long)c->id);
        client_close_now(c);
        return -1;
    }
    return 0;
}

static void on_flush(uv_prepare_t *h)
{
    cipc_broker *b = h->data;
    if (b->aof_fd >= 0 && b->aof_buf.len)
        cipc__aof_flush(b); /* before any reply to those commands leaves */
    while (b->pend_head) {
        bclient *c = b->pend_head;
        b->pend_head = c->pend_next;
        c->pending = 0;
        flush_client(c);
    }
}

/* --- input --------------------------------------------------------------------------- */

/* Run the commands in data[0..len). Stops (queueing the rest in c->inq) when the client
 * blocks, and when it is closing. */
static void feed(bclient *c, const char *data, size_t len)
{
    cipc_broker *b = c->b;
    while (len && !c->closed && !c->closing) {
        if (c->blk) { /* blocked: keep the rest for later, stop reading */
            if (cipc_buf_append(&c->inq, data, len) < 0)
                client_close_now(c);
            if (c->reading) {
                uv_read_stop(&c->h.stream);
                c->reading = 0;
            }
            return;
        }
        size_t used = 0;
        int rc = cipc__resp_parse(&c->parser, data, len, &used);
        if (rc == 0)
            return;
        if (rc < 0) {
            if (rc == CIPC_EPROTO)
                cipc__resp_errorf(&c->out, "ERR %s", c->parser.err);
            cipc__client_close(c, 1);
            cipc__client_out_ready(c);
            return;
        }
        data += used;
        len -= used;
        c->ncmds++;
        b->total_cmds++;
        c->last_ms = cipc_now_ms();
        if (cipc__cmd_exec(b, c, c->parser.argc, c->parser.argv, c->parser.argl) < 0) {
            cipc__client_close(c, 1);
            return;
        }
        if (c->out.len)
            cipc__client_out_ready(c);
        if (b->ready.n)
            cipc__broker_serve_ready(b);
    }
}

void cipc__client_process_input(bclient *c)
{
    if (c->closed || c->in_cmd)
        return;
    c->in_cmd = 1;
    if (c->inq.len && !c->blk) {
        cipc_buf q = c->inq;
        c->inq = (cipc_buf)CIPC_BUF_INIT;
        feed(c, q.data, q.len);
        cipc_buf_free(&q);
    }
    c->in_cmd = 0;
    if (!c->virt && !c->closed && !c->closing && !c->blk && !c->reading &&
        uv_read_start(&c->h.stream, on_alloc, on_read) == 0)
        c->reading = 1;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    bclient *c = h->data;
    cipc_broker *b = c->b;
    if (b->rbuf_busy) { /* cannot happen: reads are dispatched one at a time */
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    b->rbuf_busy = 1;
    buf->base = b->rbuf;
    buf->len = RBUF_SIZE;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    bclient *c = s->data;
    cipc_broker *b = c->b;
    if (buf->base == b->rbuf)
        b->rbuf_busy = 0;
    if (n < 0) {
        client_close_now(c);
        return;
    }
    if (n == 0)
        return;
    c->in_cmd = 1;
    feed(c, buf->base, (size_t)n);
    c->in_cmd = 0;
}

/* --- accepting ------------------------------------------------------------------------- */

/* "ip:port" of an IPv4 or IPv6 address ("?:0" for anything else), for CLIENT LIST. */
static void format_addr(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        uv_ip4_name(a, ip, sizeof ip);
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        uv_ip6_name(a, ip, sizeof ip);
        port = ntohs(a->sin6_port);
    }
    snprintf(out, cap, "%s:%d", ip, port);
}

/* What every client starts with: an id, the parser with the broker's limits, empty
 * subscriptions and buffers, linked at the head of `*list`. */
static void client_init(cipc_broker *b, bclient *c, bclient **list)
{
    c->b = b;
    c->id = ++b->next_id;
    c->created_ms = c->last_ms = cipc_now_ms();
    cipc__resp_parser_init(&c->parser, &(cipc__resp_limits){.max_bulk = b->o.max_bulk,
                                                            .max_multibulk = b->o.max_multibulk,
                                                            .max_inline = b->o.max_inline});
    cipc__dict_init(&c->channels);
    cipc__dict_init(&c->patterns);
    c->out = (cipc_buf)CIPC_BUF_INIT;
    c->wbuf = (cipc_buf)CIPC_BUF_INIT;
    c->inq = (cipc_buf)CIPC_BUF_INIT;
    c->next = *list;
    if (*list)
        (*list)->prev = c;
    *list = c;
}

static void accept_client(cipc_broker *b, uv_stream_t *server, int unix_sock)
{
    bclient *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->b = b;
    c->unix_sock = unix_sock;
    int rc = unix_sock ? uv_pipe_init(b->uv, &c->h.pipe, 0) : uv_tcp_init(b->uv, &c->h.tcp);
    if (rc < 0) {
        free(c);
        return;
    }
    c->h.handle.data = c;
    client_init(b, c, &b->clients);
    c->authed = b->requirepass == NULL;
    b->nclients++;
    if (uv_accept(server, &c->h.stream) < 0) {
        client_close_now(c);
        return;
    }
    b->total_conns++;
    if (unix_sock) {
        snprintf(c->addr, sizeof c->addr, "%s:0", b->unix_path);
        snprintf(c->laddr, sizeof c->laddr, "%s", b->unix_path);
    } else {
        struct sockaddr_storage ss;
        int len = sizeof ss;
        uv_tcp_nodelay(&c->h.tcp, 1);
        if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) == 0)
            format_addr(&ss, c->addr, sizeof c->addr);
        len = sizeof ss;
        if (uv_tcp_getsockname(&c->h.tcp, (struct sockaddr *)&ss, &len) == 0)
            format_addr(&ss, c->laddr, sizeof c->laddr);
    }
    if (b->nclients > b->o.max_clients) {
        b->rejected_conns++;
        cipc_buf_append_str(&c->out, "-ERR max number of clients reached\r\n");
        cipc__client_close(c, 1);
        return;
    }
    if (uv_read_start(&c->h.stream, on_alloc, on_read) == 0)
        c->reading = 1;
}

static void on_tcp_conn(uv_stream_t *server, int status)
{
    if (status == 0)
        accept_client(server->data, server, 0);
}

static void on_unix_conn(uv_stream_t *server, int status)
{
    if (status == 0)
        accept_client(server->data, server, 1);
}

/* --- cron ------------------------------------------------------------------------------ */

static void on_cron(uv_timer_t *t)
{
    cipc_broker *b = t->data;
    int64_t now = cipc_now_ms();
    for (bclient *c = b->clients, *next; c; c = next) {
        next = c->next;
        if (!c->closed && (c->channels.n || c->patterns.n) && over_limit(c, now)) {
            b->obuf_kills++;
            client_close_now(c);
        }
    }
    if (b->aof_fd >= 0)
        cipc__aof_cron(b);
}

/* --- lifecycle --------------------------------------------------------------------------- */

static int is_loopback(const char *host)
{
    return !strcmp(host, "127.0.0.1") || !strcmp(host, "::1") || !strcmp(host, "localhost") ||
           !strncmp(host, "127.", 4);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int listen_tcp(cipc_broker *b)
{
    struct sockaddr_storage ss;
    if (uv_ip4_addr(b->host, b->o.port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(b->host, b->o.port, (struct sockaddr_in6 *)&ss) != 0)
        return -EINVAL;
    int rc = uv_tcp_init(b->uv, &b->tcp);
    if (rc < 0)
        return rc;
    b->tcp_on = 1;
    b->tcp.data = b;
    if ((rc = uv_tcp_bind(&b->tcp, (struct sockaddr *)&ss, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&b->tcp, 511, on_tcp_conn)) < 0)
        return rc;
    int len = sizeof ss;
    if ((rc = uv_tcp_getsockname(&b->tcp, (struct sockaddr *)&ss, &len)) < 0)
        return rc;
    b->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                            : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

static int listen_unix(cipc_broker *b)
{
    int rc = uv_pipe_init(b->uv, &b->unix_listener, 0);
    if (rc < 0)
        return rc;
    b->unix_on = 1;
    b->unix_listener.data = b;
    /* A stale socket file from an earlier run: remove it unless someone listens. */
    struct stat st;
    if (stat(b->unix_path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(b->unix_path);
    if ((rc = uv_pipe_bind(&b->unix_listener, b->unix_path)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&b->unix_listener, 511, on_unix_conn)) < 0)
        return rc;
    chmod(b->unix_path, 0700);
    return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void free_data(cipc_broker *b);

int cipc_broker_new(cipc_loop *loop, const cipc_broker_opts *opts, cipc_broker **out)
{
    cipc_broker_opts o = {0};
    if (opts)
        memcpy(&o, opts, opts->size && opts->size < sizeof o ? opts->size : sizeof o);
    if (!loop || !out || o.port < -1 || o.port > 65535 ||
        o.appendfsync < 0 || o.appendfsync > CIPC_BROKER_FSYNC_NO || o.pubsub_obuf_soft_seconds < 0)
        return -EINVAL;
    const char *host = o.host ? o.host : "127.0.0.1";
    if (o.port >= 0 && !is_loopback(host) && !(o.requirepass && *o.requirepass) &&
        !o.allow_insecure_remote)
        return -EPERM;
    if (!o.max_clients)
        o.max_clients = 10000;
    if (!o.pubsub_obuf_hard)
        o.pubsub_obuf_hard = 32u << 20;
    if (!o.pubsub_obuf_soft)
        o.pubsub_obuf_soft = 8u << 20;
    if (!o.pubsub_obuf_soft_seconds)
        o.pubsub_obuf_soft_seconds = 60;
    if (!o.aof_rewrite_min_size)
        o.aof_rewrite_min_size = 64u << 20;
    if (!o.aof_rewrite_percentage)
        o.aof_rewrite_percentage = 100;
    cipc_broker *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    cipc__ignore_sigpipe();
    b->loop = loop;
    b->uv = cipc_loop_uv(loop);
    b->o = o;
    b->aof_fd = -1;
    b->port = -1;
    b->start_ms = cipc_now_ms();
    cipc__dict_init(&b->db);
    cipc__dict_init(&b->channels);
    cipc__dict_init(&b->patterns);
    cipc__dict_init(&b->blocking);
    cipc__dict_init(&b->ready);
    b->msgbuf = (cipc_buf)CIPC_BUF_INIT;
    b->aof_buf = (cipc_buf)CIPC_BUF_INIT;
    b->aof_rewrite_buf = (cipc_buf)CIPC_BUF_INIT;
    b->host = strdup(host);
    b->unix_path = dup_or_null(o.unix_path);
    b->requirepass = o.requirepass && *o.requirepass ? strdup(o.requirepass) : NULL;
    b->aof_path = dup_or_null(o.aof_path);
    b->rbuf = malloc(RBUF_SIZE);
    int rc = -ENOMEM;
    if (!b->host || !b->rbuf || (o.unix_path && !b->unix_path) ||
        (o.aof_path && !b->aof_path) || (o.requirepass && *o.requirepass && !b->requirepass))
        goto fail;
    if (b->aof_path && (rc = cipc__aof_open(b)) < 0)
        goto fail;
    uv_prepare_init(b->uv, &b->flush);
    b->flush.data = b;
    uv_prepare_start(&b->flush, on_flush);
    uv_timer_init(b->uv, &b->cron);
    b->cron.data = b;
    uv_timer_start(&b->cron, on_cron, 1000, 1000);
    if (o.port >= 0 && (rc = listen_tcp(b)) < 0)
        goto fail_handles;
    if (b->unix_path && (rc = listen_unix(b)) < 0)
        goto fail_handles;
    *out = b;
    return 0;
fail_handles:
    /* The handles are on the loop: close them and let the caller's loop run them out;
     * the broker itself must stay until then, so it is kept and marked closing. */
    cipc_broker_close(b);
    uv_run(b->uv, UV_RUN_NOWAIT);
    cipc_broker_free(b);
    return rc;
fail:
    cipc__aof_close(b);
    free_data(b); /* a replay that failed half-way has loaded some lists */
    free(b->host);
    free(b->unix_path);
    free(b->requirepass);
    free(b->aof_path);
    free(b->rbuf);
    free(b);
    return rc;
}

int cipc_broker_port(const cipc_broker *b)
{
    return b && b->tcp_on ? b->port : -1;
}

int cipc_broker_publish(cipc_broker *b, const void *channel, size_t channel_len,
                        const void *msg, size_t len)
{
    if (!b || (!channel && channel_len) || (!msg && len))
        return -EINVAL;
    return cipc__broker_publish(b, channel ? channel : "", channel_len, msg ? msg : "", len);
}

/* --- in-process clients ------------------------------------------------------------- */

struct cipc_broker_client {
    bclient c;
};

int cipc_broker_client_new(cipc_broker *b, const char *name, cipc_broker_reply_cb cb, void *ud,
                           cipc_broker_client **out)
{
    if (!b || !cb || !out || b->closing)
        return -EINVAL;
    cipc_broker_client *vc = calloc(1, sizeof *vc);
    if (!vc)
        return -ENOMEM;
    bclient *c = &vc->c;
    if (name && !(c->name = strdup(name))) {
        free(vc);
        return -ENOMEM;
    }
    c->virt = 1;
    c->vcb = cb;
    c->vud = ud;
    c->authed = 1;
    snprintf(c->addr, sizeof c->addr, "in-process");
    snprintf(c->laddr, sizeof c->laddr, "in-process");
    client_init(b, c, &b->vclients);
    *out = vc;
    return 0;
}

int cipc_broker_client_cmd(cipc_broker_client *vc, size_t argc, const char *const *argv,
                           const size_t *argl)
{
    if (!vc || !argc || !argv)
        return -EINVAL;
    bclient *c = &vc->c;
    if (c->closed || c->closing || c->b->closing)
        return CIPC_ECLOSING;
    /* As if it had come from a socket: RESP in, through the client's own parser, so
     * blocking, queueing behind a blocked command and the AOF all work unchanged. */
    cipc_buf req = CIPC_BUF_INIT;
    int rc = cipc__resp_array(&req, argc);
    for (size_t i = 0; rc == 0 && i < argc; i++) {
        size_t l = argl ? argl[i] : strlen(argv[i]);
        rc = cipc__resp_bulk(&req, argv[i], l);
    }
    if (rc < 0) {
        cipc_buf_free(&req);
        return -ENOMEM;
    }
    if (c->in_cmd || c->blk) { /* called from inside its own processing, or blocked */
        rc = cipc_buf_append(&c->inq, req.data, req.len) < 0 ? -ENOMEM : 0;
    } else {
        c->in_cmd = 1;
        feed(c, req.data, req.len);
        c->in_cmd = 0;
    }
    cipc_buf_free(&req);
    return rc;
}

void cipc_broker_client_close(cipc_broker_client *vc)
{
    if (!vc)
        return;
    bclient *c = &vc->c;
    if (c->writing) { /* inside its reply callback: closed when it returns */
        c->closing = 1;
        return;
    }
    client_close_now(c);
}

int cipc_broker_numsub(cipc_broker *b, const void *channel, size_t len)
{
    if (!b || (!channel && len))
        return -EINVAL;
    int n = 0;
    dict_entry *e = cipc__dict_find(&b->channels, channel ? channel : "", len);
    if (e)
        n += (int)((dict *)e->val)->n;
    size_t bk = 0;
    dict_entry *p = NULL;
    while (cipc__dict_next(&b->patterns, &bk, &p))
        if (cipc__glob_match(p->key, p->klen, channel ? channel : "", len, 0))
            n += (int)((dict *)p->val)->n;
    return n;
}

size_t cipc_broker_channels(cipc_broker *b,
                            void (*fn)(const char *channel, size_t len, size_t subscribers,
                                       void *ud),
                            void *ud)
{
    if (!b || !fn)
        return 0;
    size_t n = 0, bk = 0;
    dict_entry *e = NULL;
    while (cipc__dict_next(&b->channels, &bk, &e)) {
        size_t subs = ((dict *)e->val)->n;
        if (subs) {
            fn(e->key, e->klen, subs, ud);
            n++;
        }
    }
    return n;
}

size_t cipc_broker_clients(const cipc_broker *b)
{
    return b ? b->nclients : 0;
}

void cipc_broker_close(cipc_broker *b)
{
    if (!b || b->closing)
        return;
    b->closing = 1;
    if (b->tcp_on)
        uv_close((uv_handle_t *)&b->tcp, on_handle_closed);
    if (b->unix_on) {
        uv_close((uv_handle_t *)&b->unix_listener, on_handle_closed);
        unlink(b->unix_path);
    }
    if (b->aof_fd >= 0)
        cipc__aof_flush(b);
    for (bclient *c = b->clients; c; c = c->next)
        cipc__client_close(c, 1);
    on_flush(&b->flush);
    if (!uv_is_closing((uv_handle_t *)&b->cron))
        uv_close((uv_handle_t *)&b->cron, on_handle_closed);
    /* Clients still writing close from on_write; the flush handle goes with the last. */
    close_flush_if_done(b);
}

static void free_list(void *v)
{
    cipc__list_free(v);
}

static void free_dict_val(void *v)
{
    dict *d = v;
    cipc__dict_free(d, NULL);
    free(d);
}

static void free_waitq(void *v)
{
    waitq *q = v;
    free(q->c);
    free(q);
}

static void free_data(cipc_broker *b)
{
    cipc__dict_free(&b->db, free_list);
    cipc__dict_free(&b->channels, free_dict_val);
    cipc__dict_free(&b->patterns, free_dict_val);
    cipc__dict_free(&b->blocking, free_waitq);
    cipc__dict_free(&b->ready, NULL);
    cipc_buf_free(&b->msgbuf);
}

void cipc_broker_free(cipc_broker *b)
{
    if (!b)
        return;
    cipc_broker_close(b);
    /* Give pending writes up to CLOSE_GRACE_MS, then close what is left. */
    int64_t deadline = cipc_now_ms() + CLOSE_GRACE_MS;
    while (b->clients && cipc_now_ms() < deadline)
        (void)uv_run(b->uv, UV_RUN_NOWAIT);
    for (bclient *c = b->clients; c; c = c->next)
        client_close_now(c);
    while (b->vclients) /* in-process clients the program did not close */
        client_close_now(b->vclients);
    close_flush_if_done(b);
    while (b->clients)
        uv_run(b->uv, UV_RUN_NOWAIT);
    uv_run(b->uv, UV_RUN_NOWAIT); /* the listeners', timer's and flush's close callbacks */
    cipc__aof_close(b);
    free_data(b);
    free(b->host);
    free(b->unix_path);
    free(b->requirepass);
    free(b->aof_path);
    free(b->rbuf);
    free(b);
}
