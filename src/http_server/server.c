/* cipc_server: options, workers (one libuv loop per thread, each accepting on its own
 * SO_REUSEPORT socket), signals and graceful shutdown. Connections live in conn.c,
 * routes in router.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cipc/log.h"
#include "core/core_internal.h"
#include "http_server/internal.h"

#define LOG_MODULE "http_server"

int cipc_server_new(const cipc_server_opts *in, cipc_server **out)
{
    cipc_server *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    cipc__ignore_sigpipe(); /* a client gone mid-write must not kill the process */
    size_t n = in && in->size && in->size < sizeof s->o ? in->size : sizeof s->o;
    if (in)
        memcpy(&s->o, in, n);
    cipc_server_opts *o = &s->o;
    o->size = sizeof *o;
    if (o->port < 0 || o->port > 65535 || o->workers < 0 || o->max_connections < 0) {
        free(s);
        return -EINVAL;
    }
    if (!o->host)
        o->host = "127.0.0.1";
    if (!o->workers)
        o->workers = (int)uv_available_parallelism();
    if (!o->max_request_line)
        o->max_request_line = CIPC_SERVER_DEFAULT_MAX_REQUEST_LINE;
    if (!o->max_head)
        o->max_head = CIPC_SERVER_DEFAULT_MAX_HEAD;
    if (!o->max_headers)
        o->max_headers = CIPC_SERVER_DEFAULT_MAX_HEADERS;
    if (!o->max_body)
        o->max_body = CIPC_SERVER_DEFAULT_MAX_BODY;
    if (!o->header_timeout_ms)
        o->header_timeout_ms = CIPC_SERVER_DEFAULT_HEADER_TIMEOUT_MS;
    if (!o->body_timeout_ms)
        o->body_timeout_ms = CIPC_SERVER_DEFAULT_BODY_TIMEOUT_MS;
    if (!o->idle_timeout_ms)
        o->idle_timeout_ms = CIPC_SERVER_DEFAULT_IDLE_TIMEOUT_MS;
    if (!o->write_timeout_ms)
        o->write_timeout_ms = CIPC_SERVER_DEFAULT_WRITE_TIMEOUT_MS;
    if (!o->shutdown_timeout_ms)
        o->shutdown_timeout_ms = CIPC_SERVER_DEFAULT_SHUTDOWN_MS;
    if (!o->max_connections)
        o->max_connections = CIPC_SERVER_DEFAULT_MAX_CONNECTIONS;
    /* Strings are copied so the caller's may go. */
    if (!o->tls_cert != !o->tls_key || o->tls_port < 0 || o->tls_port > 65535) {
        free(s);
        return -EINVAL;
    }

    o->host = strdup(o->host);
    o->unix_path = o->unix_path ? strdup(o->unix_path) : NULL;
    o->tls_cert = o->tls_cert ? strdup(o->tls_cert) : NULL;
    o->tls_key = o->tls_key ? strdup(o->tls_key) : NULL;
    if (!o->host || (in && in->unix_path && !o->unix_path) ||
        (in && in->tls_cert && !o->tls_cert) || (in && in->tls_key && !o->tls_key)) {
        free((char *)o->host);
        free((char *)o->unix_path);
        free((char *)o->tls_cert);
        free((char *)o->tls_key);
        free(s);
        return -ENOMEM;
    }
    s->limits.max_request_line = o->max_request_line;
    s->limits.max_head = o->max_head;
    s->limits.max_headers = o->max_headers;
    s->limits.max_body = o->max_body;
    atomic_init(&s->stop_requested, 0);
    *out = s;
    return 0;
}

const char *cipc_server_errmsg(const cipc_server *s)
{
    return s->errmsg;
}

int cipc_server_port(const cipc_server *s)
{
    return s->port;
}

int cipc_server_tls_port(const cipc_server *s)
{
    return s->tls_port;
}

/* A listening TCP socket on host:port with SO_REUSEPORT, so every worker can bind the
 * same port and the kernel spreads connections. Returns the fd or a negative code. */
static int listen_socket(cipc_server *s, int port, int *bound)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, s->o.host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        len = sizeof *a4;
    } else if (inet_pton(AF_INET6, s->o.host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        len = sizeof *a6;
    } else {
        snprintf(s->errmsg, sizeof s->errmsg, "host '%s' is not an IPv4 or IPv6 address",
                 s->o.host);
        return -EINVAL;
    }
    int one = 1;
    if (port != 0 && *bound != port) {
        /* SO_REUSEPORT would let us share a port another program already listens on
         * (the kernel would split its connections with us): probe first without it. */
        int probe = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe < 0)
            return -errno;
        setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ss.ss_family == AF_INET6)
            setsockopt(probe, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(probe, (struct sockaddr *)&ss, len) != 0) {
            int err = errno;
            close(probe);
            snprintf(s->errmsg, sizeof s->errmsg, "cannot listen on %s:%d: %s", s->o.host, port,
                     strerror(err));
            return -err;
        }
        close(probe);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 1024) != 0) {
        int err = errno;
        close(fd);
        snprintf(s->errmsg, sizeof s->errmsg, "cannot listen on %s:%d: %s", s->o.host, port,
                 strerror(err));
        return -err;
    }
    if (port == 0) {
        getsockname(fd, (struct sockaddr *)&ss, &len);
        *bound = ntohs(ss.ss_family == AF_INET ? a4->sin_port : a6->sin6_port);
    } else {
        *bound = port;
    }
    return fd;
}

static void on_connection(uv_stream_t *l, int status)
{
    struct worker *w = l->data;
    if (status < 0)
        return;
    int kind = (uv_handle_t *)l == (uv_handle_t *)&w->unix_listener  ? LISTENER_UNIX
               : (uv_handle_t *)l == (uv_handle_t *)&w->tls_listener ? LISTENER_TLS
                                                                     : LISTENER_TCP;
    cipc__conn_accept(w, l, kind);
}

static void on_worker_handle_closed(uv_handle_t *h)
{
    struct worker *w = h->data;
    w->handles_open--;
}

/* Close the worker's own handles: its loop then runs out and uv_run() returns. */
void cipc__worker_drained(struct worker *w)
{
    if (w->drained)
        return;
    w->drained = 1;
    uv_close((uv_handle_t *)&w->wake, on_worker_handle_closed);
    uv_close((uv_handle_t *)&w->shutdown_timer, on_worker_handle_closed);
    cipc__conn_flush_close(w, on_worker_handle_closed);
    if (w->has_signals) {
        uv_close((uv_handle_t *)&w->sigint, on_worker_handle_closed);
        uv_close((uv_handle_t *)&w->sigterm, on_worker_handle_closed);
    }
}

static void on_shutdown_deadline(uv_timer_t *t)
{
    struct worker *w = t->data;
    cipc_log(CIPC_LOG_WARN, LOG_MODULE,
             "worker %d: %d connection(s) still busy at the "
             "shutdown deadline: closing them",
             w->index, w->nconns);
    cipc__worker_force_close(w);
}

/* Stop accepting, close idle connections, let busy ones finish (they close after their
 * response) until the shutdown deadline. */
static void begin_shutdown(struct worker *w)
{
    if (w->stopping)
        return;
    w->stopping = 1;
    if (w->has_listener)
        uv_close((uv_handle_t *)&w->listener, on_worker_handle_closed);
    if (w->has_unix)
        uv_close((uv_handle_t *)&w->unix_listener, on_worker_handle_closed);
    if (w->has_tls)
        uv_close((uv_handle_t *)&w->tls_listener, on_worker_handle_closed);
    w->has_listener = w->has_unix = w->has_tls = 0;
    cipc__worker_close_idle(w);
    if (w->nconns == 0)
        cipc__worker_drained(w);
    else
        uv_timer_start(&w->shutdown_timer, on_shutdown_deadline,
                       (uint64_t)w->srv->o.shutdown_timeout_ms, 0);
}

static void on_wake(uv_async_t *a)
{
    struct worker *w = a->data;
    cipc__ws_worker_wake(w);
    if (atomic_load(&w->srv->stop_requested))
        begin_shutdown(w);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct worker *w = sig->data;
    cipc_log(CIPC_LOG_INFO, LOG_MODULE, "signal %d: shutting down", signum);
    cipc_server_stop(w->srv);
}

/* Set up a worker's handles on `uv` and start listening on `fd` (and the Unix socket
 * for worker 0). Returns 0 or a negative code. */
static int worker_start(struct worker *w, uv_loop_t *uv, int fd)
{
    cipc_server *s = w->srv;
    w->uv = uv;
    w->tid = uv_thread_self();
    w->scratch = calloc(s->o.max_headers, sizeof *w->scratch);
    if (!w->scratch)
        return -ENOMEM;
    uv_async_init(uv, &w->wake, on_wake);
    uv_timer_init(uv, &w->shutdown_timer);
    w->wake.data = w->shutdown_timer.data = w;
    cipc__conn_flush_init(w);
    w->handles_open = 4;
    uv_tcp_init(uv, &w->listener);
    w->listener.data = w;
    w->handles_open++;
    w->has_listener = 1;
    int rc = uv_tcp_open(&w->listener, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&w->listener, 1024, on_connection);
    if (rc < 0) {
        snprintf(s->errmsg, sizeof s->errmsg, "listen: %s", uv_strerror(rc));
        return rc;
    }
    if (w->tls_fd >= 0) {
        uv_tcp_init(uv, &w->tls_listener);
        w->tls_listener.data = w;
        w->handles_open++;
        w->has_tls = 1;
        rc = uv_tcp_open(&w->tls_listener, w->tls_fd);
        w->tls_fd = -1;
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&w->tls_listener, 1024, on_connection);
        if (rc < 0) {
            snprintf(s->errmsg, sizeof s->errmsg, "TLS listen: %s", uv_strerror(rc));
            return rc;
        }
    }
    if (w->index == 0 && s->o.unix_path) {
        if (strlen(s->o.unix_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            snprintf(s->errmsg, sizeof s->errmsg, "unix_path is longer than %zu bytes",
                     sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
            return -ENAMETOOLONG;
        }
        unlink(s->o.unix_path);
        uv_pipe_init(uv, &w->unix_listener, 0);
        w->unix_listener.data = w;
        w->handles_open++;
        w->has_unix = 1;
        rc = uv_pipe_bind(&w->unix_listener, s->o.unix_path);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&w->unix_listener, 1024, on_connection);
        if (rc < 0) {
            snprintf(s->errmsg, sizeof s->errmsg, "cannot listen on %s: %s", s->o.unix_path,
                     uv_strerror(rc));
            return rc;
        }
    }
    atomic_store(&w->ready, 1);
    if (atomic_load(&s->stop_requested))
        begin_shutdown(w);
    return 0;
}

/* Close whatever worker_start() opened when it failed, and run the loop until closed. */
static void worker_abort(struct worker *w)
{
    w->stopping = 1;
    if (w->has_listener)
        uv_close((uv_handle_t *)&w->listener, on_worker_handle_closed);
    if (w->has_unix)
        uv_close((uv_handle_t *)&w->unix_listener, on_worker_handle_closed);
    if (w->has_tls)
        uv_close((uv_handle_t *)&w->tls_listener, on_worker_handle_closed);
    w->has_listener = w->has_unix = w->has_tls = 0;
    cipc__worker_drained(w);
    uv_run(w->uv, UV_RUN_DEFAULT);
}

static void worker_thread(void *arg)
{
    struct worker *w = arg;
    if (uv_loop_init(&w->own_loop) < 0) {
        w->rc = -ENOMEM;
        return;
    }
    w->rc = worker_start(w, &w->own_loop, w->fd);
    if (w->rc < 0)
        worker_abort(w);
    else
        uv_run(&w->own_loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->own_loop);
}

static int make_workers(cipc_server *s, int n)
{
    s->workers = calloc((size_t)n, sizeof *s->workers);
    if (!s->workers)
        return -ENOMEM;
    s->nworkers = n;
    if (s->o.tls_cert) {
        int rc = cipc__tls_ctx_new(s);
        if (rc < 0)
            return rc;
    }
    int port = s->o.port, tls_port = s->o.tls_port;
    for (int i = 0; i < n; i++) {
        struct worker *w = &s->workers[i];
        w->srv = s;
        w->index = i;
        w->fd = -1;
        w->tls_fd = -1;
        atomic_init(&w->ready, 0);
        cipc_buf_reset(&w->out);
        cipc__ws_worker_init(w);
    }
    for (int i = 0; i < n; i++) {
        int fd = listen_socket(s, port, &s->port);
        int tfd = fd >= 0 && s->ssl_ctx ? listen_socket(s, tls_port, &s->tls_port) : -1;
        if (fd < 0 || (s->ssl_ctx && tfd < 0)) {
            if (fd >= 0)
                close(fd);
            for (int k = 0; k < i; k++) {
                close(s->workers[k].fd);
                if (s->workers[k].tls_fd >= 0)
                    close(s->workers[k].tls_fd);
            }
            return fd < 0 ? fd : tfd;
        }
        s->workers[i].fd = fd;
        s->workers[i].tls_fd = tfd;
        port = s->port; /* the others share the ports the first one got */
        tls_port = s->tls_port;
    }
    return 0;
}

int cipc_server_run(cipc_server *s)
{
    if (s->started)
        return CIPC_EBUSY;
    s->started = 1;
    int rc = make_workers(s, s->o.workers);
    if (rc < 0)
        return rc;
    struct worker *w0 = &s->workers[0];
    for (int i = 1; i < s->nworkers; i++) {
        if (uv_thread_create(&s->workers[i].thread, worker_thread, &s->workers[i]) != 0) {
            s->workers[i].rc = -EAGAIN;
            s->workers[i].no_thread = 1;
            close(s->workers[i].fd);
        }
    }
    if (uv_loop_init(&w0->own_loop) < 0)
        return -ENOMEM;
    rc = worker_start(w0, &w0->own_loop, w0->fd);
    if (rc == 0 && !w0->drained) { /* (drained already if stopped before it ran) */
        uv_signal_init(w0->uv, &w0->sigint);
        uv_signal_init(w0->uv, &w0->sigterm);
        w0->sigint.data = w0->sigterm.data = w0;
        uv_signal_start(&w0->sigint, on_signal, SIGINT);
        uv_signal_start(&w0->sigterm, on_signal, SIGTERM);
        w0->has_signals = 1;
        w0->handles_open += 2;
        cipc_log(CIPC_LOG_INFO, LOG_MODULE, "listening on %s:%d with %d worker(s)", s->o.host,
                 s->port, s->nworkers);
        if (s->o.on_ready)
            s->o.on_ready(s, s->o.on_ready_ud);
        uv_run(w0->uv, UV_RUN_DEFAULT);
    } else if (rc == 0) {
        uv_run(w0->uv, UV_RUN_DEFAULT); /* stopped before it ran: close what it opened */
    } else {
        cipc_server_stop(s);
        worker_abort(w0);
    }
    for (int i = 1; i < s->nworkers; i++) {
        if (!s->workers[i].no_thread)
            uv_thread_join(&s->workers[i].thread);
        if (rc == 0 && s->workers[i].rc < 0)
            rc = s->workers[i].rc;
    }
    uv_loop_close(&w0->own_loop);
    return rc;
}

int cipc_server_start(cipc_server *s, cipc_loop *loop)
{
    if (s->started)
        return CIPC_EBUSY;
    s->started = 1;
    int rc = make_workers(s, 1);
    if (rc < 0)
        return rc;
    struct worker *w = &s->workers[0];
    rc = worker_start(w, cipc_loop_uv(loop), w->fd);
    if (rc < 0) {
        w->stopping = 1;
        if (w->has_listener)
            uv_close((uv_handle_t *)&w->listener, on_worker_handle_closed);
        if (w->has_unix)
            uv_close((uv_handle_t *)&w->unix_listener, on_worker_handle_closed);
        w->has_listener = w->has_unix = 0;
        cipc__worker_drained(w);
    } else if (s->o.on_ready) {
        s->o.on_ready(s, s->o.on_ready_ud);
    }
    return rc;
}

void cipc_server_stop(cipc_server *s)
{
    atomic_store(&s->stop_requested, 1);
    for (int i = 0; i < s->nworkers; i++) {
        if (atomic_load(&s->workers[i].ready) && !s->workers[i].drained)
            uv_async_send(&s->workers[i].wake);
    }
}

void cipc_server_free(cipc_server *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nworkers; i++) {
        free(s->workers[i].scratch);
        for (int k = 0; k < s->workers[i].n_pool; k++)
            free(s->workers[i].pool[k]);
        cipc_buf_free(&s->workers[i].out);
        cipc_buf_free(&s->workers[i].tls_out);
        cipc__ws_worker_free(&s->workers[i]);
    }
    free(s->workers);
    cipc__routes_free(s);
    if (s->o.unix_path)
        unlink(s->o.unix_path);
    cipc__tls_ctx_free(s);
    free((char *)s->o.host);
    free((char *)s->o.unix_path);
    free((char *)s->o.tls_cert);
    free((char *)s->o.tls_key);
    free(s);
}
