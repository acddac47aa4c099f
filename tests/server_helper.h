/* tests/server_helper.h -- header-only helpers for the HTTP server's integration tests:
 * run a cipc_server on a thread (its port learnt from on_ready), raw-socket clients
 * that write exact bytes and read exact responses with poll() deadlines, running a
 * program (curl, python) with its stdout captured, and a few route handlers shared by
 * several tests.
 *
 *     srv_thread t;
 *     srvt_new(&t, (cipc_server_opts){.workers = 1});
 *     cipc_route(t.srv, "GET", "/ping", h_text, "pong");
 *     int port = srvt_start(&t);
 *     raw_conn c;
 *     raw_open(&c, port);
 *     raw_resp r;
 *     CHECK_INT(raw_roundtrip(&c, "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n", &r, 0), ==, 200);
 *     raw_resp_free(&r);
 *     raw_close(&c);
 *     srvt_stop(&t, 5000);
 *     srvt_free(&t);
 *
 * Everything is static inline so that files using part of it compile warning-free. */
#ifndef CIPC_TESTS_SERVER_HELPER_H
#define CIPC_TESTS_SERVER_HELPER_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "check.h"
#include "cipc/http_client.h" /* before peer.h: its client helpers too */
#include "cipc/http_server.h"
#include "cipc/loop.h"
#include "peer.h"

#define SRVT_READY_TIMEOUT_MS 10000
#define RAW_TIMEOUT_MS        10000 /* default deadline for a response */

/* Run one test function, logging how long it took. */
#define RUN(fn)                                                                                    \
    do {                                                                                           \
        int64_t t0_ = peer_now_ms();                                                               \
        fn();                                                                                      \
        fprintf(stderr, "%s: %lld ms\n", #fn, (long long)(peer_now_ms() - t0_));                   \
    } while (0)

/* --- A server on a thread ------------------------------------------------------------ */

typedef struct srv_thread {
    cipc_server *srv;
    cipc_loop *loop; /* embedded mode (srvt_start_embedded): the loop the thread runs */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started; /* the thread exists */
    int ready;   /* on_ready ran */
    int done;    /* cipc_server_run() returned */
    int port;
    int rc;          /* what cipc_server_run() returned */
    int64_t done_ms; /* when it returned (peer_now_ms) */
} srv_thread;

static inline void srvt_on_ready(cipc_server *s, void *ud)
{
    srv_thread *t = ud;
    pthread_mutex_lock(&t->mu);
    t->ready = 1;
    t->port = cipc_server_port(s);
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static inline void *srvt_main(void *arg)
{
    srv_thread *t = arg;
    int rc = cipc_server_run(t->srv);
    pthread_mutex_lock(&t->mu);
    t->rc = rc;
    t->done = 1;
    t->done_ms = peer_now_ms();
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* Wait on t->cv until *flag is set or `deadline_ms` (peer_now_ms) passes; t->mu held. */
static inline void srvt_wait_locked(srv_thread *t, const int *flag, int64_t deadline_ms)
{
    while (!*flag && !(flag == &t->ready && t->done)) {
        int64_t left = deadline_ms - peer_now_ms();
        if (left <= 0)
            return;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&t->cv, &t->mu, &ts);
    }
}

/* Embedded mode: a cipc_loop made on the thread, cipc_server_start() on it, and the
 * loop run until nothing is left on it (the shutdown has completed and the test's own
 * handles are closed); then the loop is freed. */
static inline void *srvt_embedded_main(void *arg)
{
    srv_thread *t = arg;
    int rc = cipc_loop_new(NULL, &t->loop);
    CHECK_INT(rc, ==, 0);
    rc = cipc_server_start(t->srv, t->loop);
    if (rc == 0)
        cipc_loop_run(t->loop, CIPC_RUN_DEFAULT);
    pthread_mutex_lock(&t->mu);
    t->rc = rc;
    t->done = 1;
    t->done_ms = peer_now_ms();
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    CHECK_INT(cipc_loop_free(t->loop), ==, 0);
    t->loop = NULL;
    return NULL;
}

/* Create the server with `o` (its on_ready is taken over). Add routes to t->srv next. */
static inline void srvt_new(srv_thread *t, cipc_server_opts o)
{
    memset(t, 0, sizeof *t);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&t->mu, NULL);
    o.size = sizeof o;
    o.on_ready = srvt_on_ready;
    o.on_ready_ud = t;
    int rc = cipc_server_new(&o, &t->srv);
    CHECK_INT(rc, ==, 0);
    CHECK(t->srv != NULL);
}

/* Run the server on a new thread and wait until it listens. Returns its TCP port. */
static inline int srvt_start_with(srv_thread *t, void *(*fn)(void *))
{
    CHECK_INT(pthread_create(&t->th, NULL, fn, t), ==, 0);
    t->started = 1;
    pthread_mutex_lock(&t->mu);
    srvt_wait_locked(t, &t->ready, peer_now_ms() + SRVT_READY_TIMEOUT_MS);
    int ready = t->ready, done = t->done, rc = t->rc;
    pthread_mutex_unlock(&t->mu);
    if (!ready)
        fprintf(stderr, "server: not ready (run returned: %d, rc %d: %s)\n", done, rc,
                cipc_server_errmsg(t->srv));
    CHECK(ready);
    CHECK_INT(t->port, >, 0);
    return t->port;
}

/* cipc_server_run() on a thread. */
static inline int srvt_start(srv_thread *t)
{
    return srvt_start_with(t, srvt_main);
}

/* cipc_server_start() on a loop of the thread's own (t->loop, for the test's handles:
 * use it only on that thread, from handlers and their callbacks). */
static inline int srvt_start_embedded(srv_thread *t)
{
    return srvt_start_with(t, srvt_embedded_main);
}

/* Wait up to `timeout_ms` for cipc_server_run() to return (without stopping it).
 * Returns 1 if it did. */
static inline int srvt_wait_done(srv_thread *t, int64_t timeout_ms)
{
    pthread_mutex_lock(&t->mu);
    srvt_wait_locked(t, &t->done, peer_now_ms() + timeout_ms);
    int done = t->done;
    pthread_mutex_unlock(&t->mu);
    return done;
}

/* cipc_server_stop(), then wait up to `timeout_ms` for cipc_server_run() to return
 * (CHECKed, as is its result 0) and join the thread. Returns the milliseconds from the
 * stop to the return. */
static inline int64_t srvt_stop(srv_thread *t, int64_t timeout_ms)
{
    int64_t t0 = peer_now_ms();
    cipc_server_stop(t->srv);
    int done = srvt_wait_done(t, timeout_ms);
    if (!done)
        fprintf(stderr, "server: cipc_server_run() did not return within %lld ms of stop\n",
                (long long)timeout_ms);
    CHECK(done);
    pthread_join(t->th, NULL);
    t->started = 0;
    CHECK_INT(t->rc, ==, 0);
    return t->done_ms - t0;
}

static inline void srvt_free(srv_thread *t)
{
    CHECK(!t->started);
    cipc_server_free(t->srv);
    t->srv = NULL;
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
}

/* --- A latch: one thread waits (with a deadline) until others have counted to n --- */

typedef struct latch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int count;
} latch;

#define LATCH_INIT                                                                                 \
    {                                                                                              \
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0                                     \
    }

static inline void latch_add(latch *l)
{
    pthread_mutex_lock(&l->mu);
    l->count++;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static inline int latch_count(latch *l)
{
    pthread_mutex_lock(&l->mu);
    int c = l->count;
    pthread_mutex_unlock(&l->mu);
    return c;
}

/* Wait until the count reaches n or `timeout_ms` passes (realtime clock, as the static
 * initialiser uses). Returns the count. */
static inline int latch_wait(latch *l, int n, int64_t timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&l->mu);
    while (l->count < n && pthread_cond_timedwait(&l->cv, &l->mu, &ts) != ETIMEDOUT)
        ;
    int c = l->count;
    pthread_mutex_unlock(&l->mu);
    return c;
}

/* --- Raw-socket clients -------------------------------------------------------------- */

typedef struct raw_conn {
    int fd;
    char *buf; /* received and not yet consumed: buf[0..len) */
    size_t len, cap;
    int eof; /* EOF or a reset was seen */
    int err; /* errno of a reset, or 0 */
} raw_conn;

/* Results of raw_read() other than 0. */
enum { RAW_TIMEOUT = -1, RAW_CLOSED = -2, RAW_TRUNCATED = -3, RAW_BAD = -4 };

typedef struct raw_resp {
    int status;
    int minor;       /* HTTP/1.<minor> */
    char head[8192]; /* the status line and headers (CRLFs kept), NUL-terminated */
    char *body;      /* malloc'd and NUL-terminated (the NUL not counted), or NULL */
    size_t body_len;
    int chunked;     /* the body was chunked */
    int64_t clen;    /* Content-Length, or -1 */
    int until_close; /* the body was delimited by the close */
    size_t chunks;   /* chunks received (chunked) */
} raw_resp;

/* Connect to `sa`. Returns 0 or -errno; `c` is set up on success. */
static inline int raw_connect_sa(raw_conn *c, const struct sockaddr *sa, socklen_t len)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    if (connect(c->fd, sa, len) != 0) {
        int e = errno;
        close(c->fd);
        c->fd = -1;
        return -e;
    }
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    return 0;
}

static inline int raw_connect(raw_conn *c, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return raw_connect_sa(c, (struct sockaddr *)&a, sizeof a);
}

/* Connect to 127.0.0.1:port, which must succeed. */
static inline void raw_open(raw_conn *c, int port)
{
    int rc = raw_connect(c, port);
    if (rc != 0)
        fprintf(stderr, "connect to port %d: %s\n", port, strerror(-rc));
    CHECK_INT(rc, ==, 0);
}

static inline int raw_connect_unix(raw_conn *c, const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n >= sizeof a.sun_path)
        return -ENAMETOOLONG;
    memcpy(a.sun_path, path, n + 1);
    return raw_connect_sa(c, (struct sockaddr *)&a, sizeof a);
}

static inline void raw_close(raw_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

/* Send all bytes (waiting up to 10 s for room). Returns 0 or -errno (EPIPE, ECONNRESET
 * when the server has closed). */
static inline int raw_send(raw_conn *c, const void *data, size_t len)
{
    const char *p = data;
    int64_t end = peer_now_ms() + RAW_TIMEOUT_MS;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return -errno;
        int64_t left = end - peer_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
        poll(&pfd, 1, (int)left);
    }
    return 0;
}

static inline int raw_sends(raw_conn *c, const char *s)
{
    return raw_send(c, s, strlen(s));
}

/* Receive more bytes until `deadline_ms`. Returns the count (> 0), 0 at EOF (or after a
 * reset: c->err says which), or -ETIMEDOUT. */
static inline int raw_fill(raw_conn *c, int64_t deadline_ms)
{
    if (c->eof)
        return 0;
    for (;;) {
        if (c->cap - c->len < 16384) {
            size_t cap = c->cap ? c->cap * 2 : 65536;
            char *nb = realloc(c->buf, cap);
            CHECK(nb != NULL);
            c->buf = nb;
            c->cap = cap;
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
        if (n > 0) {
            c->len += (size_t)n;
            c->buf[c->len] = '\0';
            return (int)n;
        }
        if (n == 0) {
            c->eof = 1;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            c->eof = 1;
            c->err = errno;
            return 0;
        }
        int64_t left = deadline_ms - peer_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        poll(&pfd, 1, (int)left);
    }
}

static inline void raw_consume(raw_conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    if (c->buf)
        c->buf[c->len] = '\0';
}

/* The offset of `needle` in buf[from..len), or -1. */
static inline long raw_find(const raw_conn *c, size_t from, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = from; i + n <= c->len; i++)
        if (memcmp(c->buf + i, needle, n) == 0)
            return (long)i;
    return -1;
}

/* Make sure buf holds at least `need` bytes. Returns 0 or a RAW_* code. */
static inline int raw_need(raw_conn *c, size_t need, int64_t deadline_ms)
{
    while (c->len < need) {
        int n = raw_fill(c, deadline_ms);
        if (n == -ETIMEDOUT)
            return RAW_TIMEOUT;
        if (n == 0)
            return RAW_TRUNCATED;
    }
    return 0;
}

/* The offset of the next CRLF at or after `from`, waiting for it. Returns >= 0 or a
 * RAW_* code. */
static inline long raw_need_line(raw_conn *c, size_t from, int64_t deadline_ms)
{
    for (;;) {
        long i = raw_find(c, from, "\r\n");
        if (i >= 0)
            return i;
        if (c->len - from > 65536)
            return RAW_BAD;
        int n = raw_fill(c, deadline_ms);
        if (n == -ETIMEDOUT)
            return RAW_TIMEOUT;
        if (n == 0)
            return RAW_TRUNCATED;
    }
}

/* Copy the value of response header `name` (the first one) into out. Returns out, or
 * NULL when absent. */
static inline const char *raw_hdr(const raw_resp *r, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    const char *p = strstr(r->head, "\r\n");
    while (p && p[2]) {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1, *e = strstr(v, "\r\n");
            while (*v == ' ' || *v == '\t')
                v++;
            size_t len = e ? (size_t)(e - v) : strlen(v);
            while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
                len--;
            snprintf(out, size, "%.*s", (int)len, v);
            return out;
        }
        p = strstr(p, "\r\n");
    }
    return NULL;
}

/* 1 if the response has header `name` with a value containing `token`
 * (case-insensitively). */
static inline int raw_hdr_has(const raw_resp *r, const char *name, const char *token)
{
    char v[1024];
    return raw_hdr(r, name, v, sizeof v) && peer_contains_ci(v, token);
}

static inline void raw_resp_free(raw_resp *r)
{
    free(r->body);
    r->body = NULL;
}

static inline void raw_body_append(raw_resp *r, const char *p, size_t n, size_t *cap)
{
    if (r->body_len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 4096;
        while (nc < r->body_len + n + 1)
            nc *= 2;
        char *nb = realloc(r->body, nc);
        CHECK(nb != NULL);
        r->body = nb;
        *cap = nc;
    }
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
}

/* Read one response within `timeout_ms`. `head_only`: the request was HEAD, so no body
 * follows whatever the headers say. Returns 0, RAW_TIMEOUT, RAW_CLOSED (closed before a
 * byte arrived), RAW_TRUNCATED (closed mid-response) or RAW_BAD (unparseable). */
static inline int raw_read(raw_conn *c, raw_resp *r, int head_only, int64_t timeout_ms)
{
    int64_t end = peer_now_ms() + timeout_ms;
    size_t cap = 0;
    memset(r, 0, sizeof *r);
    r->clen = -1;
    long he;
    for (;;) {
        he = raw_find(c, 0, "\r\n\r\n");
        if (he >= 0)
            break;
        int n = raw_fill(c, end);
        if (n == -ETIMEDOUT)
            return RAW_TIMEOUT;
        if (n == 0)
            return c->len ? RAW_TRUNCATED : RAW_CLOSED;
    }
    size_t hlen = (size_t)he + 4;
    if (hlen >= sizeof r->head)
        return RAW_BAD;
    memcpy(r->head, c->buf, hlen);
    r->head[hlen] = '\0';
    if (sscanf(r->head, "HTTP/1.%d %d", &r->minor, &r->status) != 2)
        return RAW_BAD;
    char v[64];
    if (raw_hdr(r, "Content-Length", v, sizeof v))
        r->clen = strtoll(v, NULL, 10);
    r->chunked = raw_hdr_has(r, "Transfer-Encoding", "chunked");
    raw_consume(c, hlen);
    if (head_only || r->status / 100 == 1 || r->status == 204 || r->status == 304)
        return 0;
    if (r->chunked) {
        for (;;) {
            long le = raw_need_line(c, 0, end);
            if (le < 0)
                return (int)le;
            char *x = NULL;
            unsigned long long size = strtoull(c->buf, &x, 16);
            if (x == c->buf)
                return RAW_BAD;
            raw_consume(c, (size_t)le + 2);
            if (size == 0)
                break;
            int rc = raw_need(c, (size_t)size + 2, end);
            if (rc < 0)
                return rc;
            if (memcmp(c->buf + size, "\r\n", 2) != 0)
                return RAW_BAD;
            raw_body_append(r, c->buf, (size_t)size, &cap);
            raw_consume(c, (size_t)size + 2);
            r->chunks++;
        }
        for (;;) { /* trailers up to the empty line */
            long le = raw_need_line(c, 0, end);
            if (le < 0)
                return (int)le;
            raw_consume(c, (size_t)le + 2);
            if (le == 0)
                break;
        }
    } else if (r->clen >= 0) {
        int rc = raw_need(c, (size_t)r->clen, end);
        if (rc < 0)
            return rc;
        raw_body_append(r, c->buf, (size_t)r->clen, &cap);
        raw_consume(c, (size_t)r->clen);
    } else {
        r->until_close = 1;
        for (;;) {
            int n = raw_fill(c, end);
            if (n == -ETIMEDOUT)
                return RAW_TIMEOUT;
            if (n == 0)
                break;
        }
        raw_body_append(r, c->buf ? c->buf : "", c->len, &cap);
        raw_consume(c, c->len);
    }
    if (!r->body)
        raw_body_append(r, "", 0, &cap);
    return 0;
}

/* Send `req` and read the response (CHECKed to arrive). Returns its status. */
static inline int raw_roundtrip(raw_conn *c, const char *req, raw_resp *r, int head_only)
{
    int rc = raw_sends(c, req);
    if (rc != 0)
        fprintf(stderr, "send: %s\n", strerror(-rc));
    CHECK_INT(rc, ==, 0);
    rc = raw_read(c, r, head_only, RAW_TIMEOUT_MS);
    if (rc != 0)
        fprintf(stderr, "no response (%d) to: %.200s\n", rc, req);
    CHECK_INT(rc, ==, 0);
    return r->status;
}

/* Wait up to `timeout_ms` for the server to close the connection. Returns 1 when it
 * closed (EOF or reset) with no unread bytes left over, 0 if still open at the
 * deadline, -1 if bytes arrived instead (left in c->buf). */
static inline int raw_wait_close(raw_conn *c, int64_t timeout_ms)
{
    int64_t end = peer_now_ms() + timeout_ms;
    if (c->len)
        return -1;
    int n = raw_fill(c, end);
    if (n == -ETIMEDOUT)
        return 0;
    return n == 0 ? 1 : -1;
}

/* Open a connection, send `req` (len 0: strlen) and read one response. Returns its
 * status, or the RAW_* code; the connection is left in `c` (to be closed). */
static inline int raw_one(int port, raw_conn *c, const char *req, size_t len, raw_resp *r)
{
    raw_open(c, port);
    int rc = raw_send(c, req, len ? len : strlen(req));
    if (rc != 0 && rc != -EPIPE && rc != -ECONNRESET)
        CHECK_INT(rc, ==, 0);
    rc = raw_read(c, r, 0, RAW_TIMEOUT_MS);
    return rc < 0 ? rc : r->status;
}

/* Check that the connection is still usable: GET `path` answers 200. */
static inline void raw_check_alive(raw_conn *c, const char *path)
{
    char req[512];
    raw_resp r;
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    CHECK_INT(raw_roundtrip(c, req, &r, 0), ==, 200);
    raw_resp_free(&r);
}

/* --- Programs -------------------------------------------------------------------- */

/* Run argv (argv[0] an absolute path), its stdin /dev/null, its stdout captured into
 * out (NUL-terminated, truncated to size - 1), its stderr passed through. Killed after
 * `timeout_ms`. Returns the exit status, or -1 (killed, or not started). */
static inline int prog_run(const char *const *argv, char *out, size_t size, int64_t timeout_ms)
{
    int fds[2];
    if (peer_pipe_cloexec(fds) != 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int nul = open("/dev/null", O_RDONLY);
        if (nul < 0 || dup2(nul, 0) < 0 || dup2(fds[1], 1) < 0)
            _exit(126);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    int64_t end = peer_now_ms() + timeout_ms;
    int killed = 0;
    for (;;) {
        int64_t left = end - peer_now_ms();
        if (left <= 0) {
            fprintf(stderr, "prog_run: %s still running after %lld ms: killing it\n", argv[0],
                    (long long)timeout_ms);
            kill(pid, SIGKILL);
            killed = 1;
            break;
        }
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        char tmp[4096];
        ssize_t n = read(fds[0], tmp, sizeof tmp);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n && out && len + 1 < size; i++)
            out[len++] = tmp[i];
    }
    if (out && size)
        out[len] = '\0';
    close(fds[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (killed)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* --- Files and digests --------------------------------------------------------------- */

static inline void sha256_hex_of(const void *data, size_t len, char hex[65])
{
    peer_sha256 s;
    peer_sha256_init(&s);
    peer_sha256_update(&s, data, len);
    peer_sha256_hex(&s, hex);
}

/* A deterministic pseudo-random byte pattern (xorshift), so that bodies are not
 * trivially compressible or periodic. */
static inline void fill_pattern(void *buf, size_t len, uint32_t seed)
{
    unsigned char *p = buf;
    uint32_t x = seed ? seed : 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
    }
}

/* Write len bytes to path (created or truncated). */
static inline void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK_INT(fwrite(data, 1, len, f), ==, len);
    CHECK_INT(fclose(f), ==, 0);
}

/* Read a whole file (malloc'd, NUL-terminated); *len gets its size. NULL if unreadable. */
static inline char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 65536, n = 0;
    char *b = malloc(cap);
    CHECK(b != NULL);
    for (;;) {
        if (cap - n < 65536) {
            cap *= 2;
            b = realloc(b, cap);
            CHECK(b != NULL);
        }
        size_t got = fread(b + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    b[n] = '\0';
    if (len)
        *len = n;
    return b;
}

/* A new mkdtemp() directory under $TMPDIR or /tmp. */
static inline void make_tmpdir(char *dir, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, size, "%s/cipc-srv-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CHECK(mkdtemp(dir) != NULL);
}

/* --- Shared handlers ----------------------------------------------------------------- */

/* 200 text/plain with the string `ud`. */
static inline void h_text(cipc_http_req *req, void *ud)
{
    const char *s = ud;
    CHECK_INT(cipc_http_respond(req, 200, "text/plain", s, strlen(s)), ==, 0);
}

/* 200 with the request body as it came (Content-Type application/octet-stream), plus
 * X-Method and X-Worker headers. */
static inline void h_echo(cipc_http_req *req, void *ud)
{
    (void)ud;
    size_t len = 0;
    const void *body = cipc_http_body(req, &len);
    char w[16];
    snprintf(w, sizeof w, "%d", cipc_http_worker(req));
    CHECK_INT(cipc_http_set_header(req, "X-Method", cipc_http_method(req)), ==, 0);
    CHECK_INT(cipc_http_set_header(req, "X-Worker", w), ==, 0);
    CHECK_INT(cipc_http_respond(req, 200, "application/octet-stream", body, len), ==, 0);
}

/* 200 JSON {"len": body length, "sha256": hex digest of the body}. */
static inline void h_sha(cipc_http_req *req, void *ud)
{
    (void)ud;
    size_t len = 0;
    const void *body = cipc_http_body(req, &len);
    char hex[65];
    sha256_hex_of(body, len, hex);
    json_t *j = json_pack("{s:I, s:s}", "len", (json_int_t)len, "sha256", hex);
    CHECK_INT(cipc_http_respond_json(req, 200, j), ==, 0);
    json_decref(j);
}

/* 200 JSON describing the request: method, path, query, worker, body length and the
 * X-Test header (null when absent). */
static inline void h_info(cipc_http_req *req, void *ud)
{
    (void)ud;
    size_t len = 0;
    cipc_http_body(req, &len);
    const char *xt = cipc_http_header(req, "x-test");
    json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:I, s:o}", "method", cipc_http_method(req), "path",
                          cipc_http_path(req), "query", cipc_http_query_string(req), "worker",
                          cipc_http_worker(req), "len", (json_int_t)len, "x_test",
                          xt ? json_string(xt) : json_null());
    CHECK(j != NULL);
    CHECK_INT(cipc_http_respond_json(req, 200, j), ==, 0);
    json_decref(j);
}

#endif
