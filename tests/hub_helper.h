/* tests/hub_helper.h -- header-only helpers for the end-to-end tests of the hub
 * (`$CIPC_BIN_DIR/cipc serve`, docs/hub.md): start a hub with extra flags on ephemeral
 * ports (read from its --port-file, with a deadline), stop it with SIGTERM and check it
 * exited 0 (an ASan build reports leaks and errors through its exit code: its stderr is
 * printed on failure), a small HTTP helper (cipc_session), WebSocket helpers (the blocking
 * cipc_wsc client, JSON frames), raw TCP reads with deadlines (SSE, RESP), and child
 * processes (redis-cli, python peers) whose output is read with deadlines.
 *
 * Every child is started with PR_SET_PDEATHSIG and registered: a failed CHECK (abort)
 * kills every registered child by PID before the test dies. */
#ifndef CIPC_TESTS_HUB_HELPER_H
#define CIPC_TESTS_HUB_HELPER_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "cipc/http_client.h"
#include "cipc/ws.h"

#include "check.h"
#include "peer.h"

#ifndef RUN
#define RUN(fn)                                                                                    \
    do {                                                                                           \
        int64_t t0_ = peer_now_ms();                                                               \
        fprintf(stderr, "--- %s\n", #fn);                                                          \
        fn();                                                                                      \
        fprintf(stderr, "%s: %lld ms\n", #fn, (long long)(peer_now_ms() - t0_));                   \
    } while (0)
#endif

#define HUB_PY "/usr/bin/python3"
#define HUB_MAX_ARGS 48

/* --- Child registry: killed on abort ---------------------------------------------- */

static pid_t hub_children[64];

static inline void hub_child_add(pid_t pid)
{
    for (size_t i = 0; i < sizeof hub_children / sizeof hub_children[0]; i++)
        if (hub_children[i] == 0) {
            hub_children[i] = pid;
            return;
        }
}

static inline void hub_child_del(pid_t pid)
{
    for (size_t i = 0; i < sizeof hub_children / sizeof hub_children[0]; i++)
        if (hub_children[i] == pid)
            hub_children[i] = 0;
}

static void hub_kill_children(void)
{
    for (size_t i = 0; i < sizeof hub_children / sizeof hub_children[0]; i++)
        if (hub_children[i] > 0) {
            kill(hub_children[i], SIGKILL);
            waitpid(hub_children[i], NULL, 0);
            hub_children[i] = 0;
        }
}

static void hub_on_abort(int sig)
{
    hub_kill_children();
    signal(sig, SIG_DFL);
    raise(sig);
}

static char hub_bin[512];

/* Call once first: finds the binary, ignores SIGPIPE, clears proxies, arms the abort
 * handler. */
static inline void hub_init(void)
{
    const char *bin = getenv("CIPC_BIN_DIR");
    CHECK(bin != NULL);
    snprintf(hub_bin, sizeof hub_bin, "%s/cipc", bin);
    CHECK(access(hub_bin, X_OK) == 0);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGABRT, hub_on_abort);
    signal(SIGSEGV, hub_on_abort);
    atexit(hub_kill_children);
    peer_clear_proxy_env();
}

/* fork + exec argv (argv[0] absolute), stdout to `out_fd` (or /dev/null when < 0), stderr
 * to `err_fd` (or inherited when < 0). Registered; dies with the test. */
static inline pid_t hub_spawn(const char *const *argv, int out_fd, int err_fd)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(out_fd >= 0 ? out_fd : devnull, 1);
        if (err_fd >= 0)
            dup2(err_fd, 2);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGABRT, SIG_DFL);
        signal(SIGSEGV, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    hub_child_add(pid);
    return pid;
}

/* --- The hub ----------------------------------------------------------------------- */

typedef struct hub {
    pid_t pid;
    int http, resp, tls;
    char dir[64];       /* mkdtemp: port file, log */
    char portfile[128];
    char logpath[128];
    char base[64];      /* http://127.0.0.1:<http> */
    char tls_base[64];  /* https://127.0.0.1:<tls> */
    char token[128];    /* sent by hub_req() when not overridden */
    cipc_session *s;
    int status;         /* exit status after hub_stop() */
} hub;

/* Print the hub's stderr log (to ours). */
static inline void hub_dump_log(const hub *h)
{
    FILE *f = fopen(h->logpath, "r");
    if (!f)
        return;
    char line[1024];
    fprintf(stderr, "----- hub log (%s) -----\n", h->logpath);
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fprintf(stderr, "----- end of hub log -----\n");
    fclose(f);
}

/* Whether the hub's log contains `text`. */
static inline int hub_log_has(const hub *h, const char *text)
{
    FILE *f = fopen(h->logpath, "r");
    if (!f)
        return 0;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, text) != NULL;
}

/* Start `cipc serve --http-port 0 --resp-port 0 --port-file F` plus `extra`
 * (NULL-terminated, may be NULL; later flags override earlier ones). Waits up to 15 s for
 * the port file. Returns 0, or the hub's exit status (> 0) when it exited before listening
 * (its log kept in h->logpath), or -1 on timeout. */
static inline int hub_try_start(hub *h, const char *const *extra)
{
    memset(h, 0, sizeof *h);
    snprintf(h->dir, sizeof h->dir, "/tmp/cipc-hubit-XXXXXX");
    CHECK(mkdtemp(h->dir) != NULL);
    snprintf(h->portfile, sizeof h->portfile, "%s/ports", h->dir);
    snprintf(h->logpath, sizeof h->logpath, "%s/hub.log", h->dir);
    const char *argv[HUB_MAX_ARGS + 10] = {hub_bin,        "serve",      "--http-port", "0",
                                           "--resp-port",  "0",          "--port-file", h->portfile};
    int n = 8;
    for (int i = 0; extra && extra[i] && n < HUB_MAX_ARGS; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    int log = open(h->logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(log >= 0);
    h->pid = hub_spawn(argv, -1, log);
    close(log);
    int64_t end = peer_now_ms() + 15000;
    while (peer_now_ms() < end) {
        int st;
        pid_t w = waitpid(h->pid, &st, WNOHANG);
        if (w == h->pid) {
            hub_child_del(h->pid);
            h->pid = 0;
            h->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return h->status > 0 ? h->status : 255;
        }
        /* complete: has "http=", ends with a newline, and the same 20 ms later */
        char a[256] = "", b[256] = "";
        FILE *f = fopen(h->portfile, "r");
        if (f) {
            a[fread(a, 1, sizeof a - 1, f)] = '\0';
            fclose(f);
        }
        size_t al = strlen(a);
        if (strstr(a, "http=") && al && a[al - 1] == '\n') {
            usleep(20000);
            f = fopen(h->portfile, "r");
            if (f) {
                b[fread(b, 1, sizeof b - 1, f)] = '\0';
                fclose(f);
            }
        }
        if (al && !strcmp(a, b)) {
            int http = 0, resp = 0, tls = 0;
            const char *q;
            if ((q = strstr(a, "http=")))
                http = atoi(q + 5);
            if ((q = strstr(a, "resp=")))
                resp = atoi(q + 5);
            if ((q = strstr(a, "tls=")))
                tls = atoi(q + 4);
            if (http > 0) {
                h->http = http;
                h->resp = resp;
                h->tls = tls;
                snprintf(h->base, sizeof h->base, "http://127.0.0.1:%d", http);
                if (tls > 0)
                    snprintf(h->tls_base, sizeof h->tls_base, "https://127.0.0.1:%d", tls);
                h->s = peer_session(NULL, (cipc_session_opts){.base_url = h->base,
                                                              .timeout_ms = 20000,
                                                              .max_redirects = -1,
                                                              .proxy = ""});
                return 0;
            }
        }
        usleep(10000);
    }
    fprintf(stderr, "hub: no port file after 15 s\n");
    return -1;
}

/* hub_try_start() that must succeed. */
static inline void hub_start(hub *h, const char *const *extra)
{
    int rc = hub_try_start(h, extra);
    if (rc != 0) {
        hub_dump_log(h);
        CHECK_INT(rc, ==, 0);
    }
}

/* hub_start() with the extra flags listed, NULL-terminated. */
static inline void hub_startl(hub *h, ...)
{
    const char *args[HUB_MAX_ARGS + 1];
    int n = 0;
    va_list ap;
    va_start(ap, h);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < HUB_MAX_ARGS)
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    hub_start(h, args);
}

/* Send SIGTERM and wait up to `timeout_ms`. Returns the exit status (128 + signal when
 * killed by one), or -1 when it had to be SIGKILLed at the deadline. Frees the session;
 * keeps the directory (hub_cleanup()). */
static inline int hub_stop_status(hub *h, int64_t timeout_ms)
{
    if (h->s) {
        cipc_session_free(h->s);
        h->s = NULL;
    }
    if (h->pid <= 0)
        return h->status;
    kill(h->pid, SIGTERM);
    int st = 0;
    if (peer_reap(h->pid, timeout_ms, &st)) {
        h->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    } else {
        fprintf(stderr, "hub: still running %lld ms after SIGTERM: killing it\n",
                (long long)timeout_ms);
        kill(h->pid, SIGKILL);
        waitpid(h->pid, NULL, 0);
        h->status = -1;
    }
    hub_child_del(h->pid);
    h->pid = 0;
    return h->status;
}

static inline void hub_cleanup(hub *h)
{
    unlink(h->portfile);
    unlink(h->logpath);
    rmdir(h->dir);
}

/* Stop the hub and check it exited 0 within 15 s (its log printed otherwise). */
static inline void hub_stop(hub *h)
{
    int st = hub_stop_status(h, 15000);
    if (st != 0)
        hub_dump_log(h);
    CHECK_INT(st, ==, 0);
    hub_cleanup(h);
}

/* --- HTTP ------------------------------------------------------------------------------ */

typedef struct hub_res {
    int status;
    char *body;         /* NUL-terminated copy */
    size_t len;
    json_t *j;          /* the body as JSON when it parses, else NULL */
    char ctype[128];
    char www_auth[128];
} hub_res;

static inline void hub_res_free(hub_res *r)
{
    free(r->body);
    if (r->j)
        json_decref(r->j);
    memset(r, 0, sizeof *r);
}

/* `method` `path` (relative to h->base, or absolute) with an optional body. `token`: NULL
 * -> h->token when set; "" -> no Authorization header; else "Bearer <token>". Fails the
 * test on a transport error. */
static inline void hub_reqx(hub *h, const char *method, const char *path, const char *ctype,
                            const void *body, size_t len, const char *token, long timeout_ms,
                            hub_res *out)
{
    memset(out, 0, sizeof *out);
    char auth[192];
    cipc_kv hdrs[2] = {{0}};
    const char *tok = token ? token : h->token;
    if (tok && *tok) {
        snprintf(auth, sizeof auth, "Bearer %s", tok);
        hdrs[0] = (cipc_kv){"Authorization", auth};
    }
    cipc_request_opts o = {.headers = hdrs, .body = body, .body_len = len,
                           .content_type = ctype, .timeout_ms = timeout_ms};
    cipc_response *r = NULL;
    int rc = cipc_request(h->s, method, path, &o, &r);
    CHECK_RC(rc, 0, cipc_session_errmsg(h->s));
    out->status = cipc_response_status(r);
    size_t n = 0;
    const void *b = cipc_response_body(r, &n);
    out->body = malloc(n + 1);
    CHECK(out->body != NULL);
    if (n)
        memcpy(out->body, b, n);
    out->body[n] = '\0';
    out->len = n;
    const char *ct = cipc_response_header(r, "Content-Type");
    snprintf(out->ctype, sizeof out->ctype, "%s", ct ? ct : "");
    const char *wa = cipc_response_header(r, "WWW-Authenticate");
    snprintf(out->www_auth, sizeof out->www_auth, "%s", wa ? wa : "");
    out->j = json_loadb(out->body, n, 0, NULL);
    cipc_response_free(r);
}

static inline void hub_req(hub *h, const char *method, const char *path, const char *body,
                           hub_res *out)
{
    hub_reqx(h, method, path, NULL, body, body ? strlen(body) : 0, NULL, 0, out);
}

/* The response must have `status`; print the body otherwise. */
#define HUB_STATUS(r, want)                                                                        \
    do {                                                                                           \
        if ((r)->status != (want))                                                                 \
            fprintf(stderr, "unexpected status %d, body: %.500s\n", (r)->status, (r)->body);      \
        CHECK_INT((r)->status, ==, (want));                                                        \
    } while (0)

/* A JSON value serialized compactly with sorted keys (owned: free()). */
static inline char *hub_jdump(json_t *j)
{
    return j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : strdup("null");
}

/* JSON `j` must equal the JSON text `want` (keys in any order). */
#define CHECK_JSON(j, want)                                                                        \
    do {                                                                                           \
        json_t *w_ = json_loads((want), JSON_DECODE_ANY, NULL);                                                  \
        CHECK(w_ != NULL);                                                                         \
        if (!json_equal((j), w_)) {                                                                \
            char *g_ = hub_jdump(j), *e_ = hub_jdump(w_);                                          \
            fprintf(stderr, "JSON mismatch:\n  got      %s\n  expected %s\n", g_, e_);           \
            free(g_);                                                                              \
            free(e_);                                                                              \
            check_fail(__FILE__, __LINE__, #j " == " #want, NULL);                                 \
        }                                                                                          \
        json_decref(w_);                                                                           \
    } while (0)

/* Publish `data` (raw) on `ch` by REST; returns the seq (and checks the channel name). */
static inline long long hub_publish(hub *h, const char *ch, const char *data)
{
    char path[512];
    snprintf(path, sizeof path, "/v1/channels/%s/messages", ch);
    hub_res r;
    hub_reqx(h, "POST", path, "text/plain", data, strlen(data), NULL, 0, &r);
    HUB_STATUS(&r, 200);
    CHECK(r.j != NULL);
    CHECK_STR(json_string_value(json_object_get(r.j, "channel")), ch);
    long long seq = (long long)json_integer_value(json_object_get(r.j, "seq"));
    hub_res_free(&r);
    return seq;
}

/* Poll GET `path` until integer `field` (dotted) equals `want` or 10 s pass. */
static inline void hub_wait_int(hub *h, const char *path, const char *field, long long want)
{
    int64_t end = peer_now_ms() + 10000;
    long long got = -12345;
    while (peer_now_ms() < end) {
        hub_res r;
        hub_req(h, "GET", path, NULL, &r);
        json_t *v = r.status == 200 ? peer_jget(r.j, field) : NULL;
        got = json_is_integer(v) ? (long long)json_integer_value(v) : -12345;
        hub_res_free(&r);
        if (got == want)
            return;
        usleep(10000);
    }
    fprintf(stderr, "hub_wait_int: %s %s stayed %lld\n", path, field, got);
    CHECK_INT(got, ==, want);
}

/* The subscriber count of channel `ch` (0 when the hub has not seen it). */
static inline long long hub_subscribers(hub *h, const char *ch)
{
    char path[512];
    snprintf(path, sizeof path, "/v1/channels/%s", ch);
    hub_res r;
    hub_req(h, "GET", path, NULL, &r);
    long long n = 0;
    if (r.status == 200)
        n = (long long)json_integer_value(json_object_get(r.j, "subscribers"));
    hub_res_free(&r);
    return n;
}

/* Wait until channel `ch` has `n` subscribers (all transports). */
static inline void hub_wait_subscribers(hub *h, const char *ch, long long n)
{
    int64_t end = peer_now_ms() + 10000;
    long long got = -1;
    while (peer_now_ms() < end && (got = hub_subscribers(h, ch)) != n)
        usleep(10000);
    if (got != n)
        fprintf(stderr, "hub_wait_subscribers(%s): %lld, want %lld\n", ch, got, n);
    CHECK_INT(got, ==, n);
}

/* --- WebSocket --------------------------------------------------------------------- */

/* Connect to ws://127.0.0.1:<http><path> (or wss when `tls`) with `token` as for
 * hub_reqx(). Returns 0 and *out, or the connect error (then *out is NULL and the error
 * message is copied into err when given). */
static inline int hub_ws_try(hub *h, const char *path, const char *token, int tls,
                             const cipc_ws_opts *wo, cipc_wsc **out, char *err, size_t errsz)
{
    char url[512], auth[192];
    snprintf(url, sizeof url, "%s://127.0.0.1:%d%s", tls ? "wss" : "ws", tls ? h->tls : h->http,
             path);
    const char *hdrs[2] = {NULL, NULL};
    const char *tok = token ? token : h->token;
    if (tok && *tok) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
        hdrs[0] = auth;
    }
    cipc_ws_client_opts co = {.connect_timeout_ms = 10000, .headers = hdrs, .insecure = tls};
    cipc_wsc *c = NULL;
    int rc = cipc_wsc_connect(url, &co, wo, &c);
    if (rc != 0) {
        if (err)
            snprintf(err, errsz, "%s", c ? cipc_wsc_errmsg(c) : "?");
        cipc_wsc_free(c);
        *out = NULL;
        return rc;
    }
    *out = c;
    return 0;
}

static inline cipc_wsc *hub_ws(hub *h, const char *path)
{
    cipc_wsc *c = NULL;
    char err[256] = "";
    int rc = hub_ws_try(h, path, NULL, 0, NULL, &c, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "hub_ws %s: %s\n", path, err);
    CHECK_INT(rc, ==, 0);
    return c;
}

static inline void hub_ws_send(cipc_wsc *c, const char *text)
{
    CHECK_INT(cipc_wsc_send_text(c, text), ==, 0);
}

/* The next text frame as a JSON object, skipping {"type":"stats"} frames; NULL on timeout
 * or close. Owned. */
static inline json_t *hub_ws_next(cipc_wsc *c, long timeout_ms)
{
    int64_t end = peer_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = end - peer_now_ms();
        if (left < 0)
            left = 0;
        cipc_ws_msg m;
        if (cipc_wsc_recv(c, &m, (long)left) != 0)
            return NULL;
        if (m.type != CIPC_WS_TEXT) {
            fprintf(stderr, "hub_ws_next: unexpected binary frame of %zu bytes\n", m.len);
            CHECK(m.type == CIPC_WS_TEXT);
        }
        json_error_t e;
        json_t *j = json_loadb(m.data, m.len, 0, &e);
        if (!j || !json_is_object(j)) {
            fprintf(stderr, "hub_ws_next: not a JSON object: %.*s\n", (int)m.len,
                    (const char *)m.data);
            CHECK(j && json_is_object(j));
        }
        const char *t = json_string_value(json_object_get(j, "type"));
        if (t && !strcmp(t, "stats")) {
            json_decref(j);
            continue;
        }
        return j;
    }
}

/* The next frame (hub_ws_next) must be JSON equal to `want`. */
#define HUB_WS_EXPECT(c, want)                                                                     \
    do {                                                                                           \
        json_t *f_ = hub_ws_next((c), 5000);                                                       \
        if (!f_)                                                                                   \
            fprintf(stderr, "no frame within 5 s (close code %d), expected %s\n",                 \
                    cipc_wsc_close_code(c), (want));                                               \
        CHECK(f_ != NULL);                                                                         \
        CHECK_JSON(f_, want);                                                                      \
        json_decref(f_);                                                                           \
    } while (0)

/* Read (and drop) frames until the connection closes; returns the close code, or -1 when
 * it is still open after timeout_ms. */
static inline int hub_ws_wait_close(cipc_wsc *c, long timeout_ms)
{
    int64_t end = peer_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = end - peer_now_ms();
        if (left <= 0)
            return -1;
        cipc_ws_msg m;
        int rc = cipc_wsc_recv(c, &m, (long)left);
        if (rc == CIPC_ETIMEOUT)
            return -1;
        if (rc != 0)
            return cipc_wsc_close_code(c);
    }
}

/* Nothing (but stats) arrives within `ms`. */
static inline void hub_ws_quiet(cipc_wsc *c, long ms)
{
    json_t *j = hub_ws_next(c, ms);
    if (j) {
        char *s = hub_jdump(j);
        fprintf(stderr, "hub_ws_quiet: unexpected frame %s\n", s);
        free(s);
    }
    CHECK(j == NULL);
    CHECK_INT(cipc_wsc_close_code(c), ==, 0);
}

/* --- Raw TCP (SSE, RESP, hand-made HTTP) ------------------------------------------ */

static inline int hub_tcp(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_INT(connect(fd, (struct sockaddr *)&a, sizeof a), ==, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static inline void hub_tcp_send(int fd, const char *s)
{
    size_t n = strlen(s), off = 0;
    while (off < n) {
        ssize_t w = send(fd, s + off, n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        CHECK(w > 0);
        off += (size_t)w;
    }
}

typedef struct hub_stream {
    int fd;
    char buf[1 << 18];
    size_t len;
    int eof;
} hub_stream;

/* Read into s->buf until `needle` occurs at or after offset `from`, EOF, or the deadline.
 * Returns a pointer to the match, or NULL. */
static inline const char *hub_stream_until(hub_stream *s, size_t from, const char *needle,
                                           long timeout_ms)
{
    int64_t end = peer_now_ms() + timeout_ms;
    for (;;) {
        s->buf[s->len] = '\0';
        if (from <= s->len) {
            const char *p = strstr(s->buf + from, needle);
            if (p)
                return p;
        }
        if (s->eof)
            return NULL;
        int64_t left = end - peer_now_ms();
        if (left <= 0)
            return NULL;
        struct pollfd pf = {.fd = s->fd, .events = POLLIN};
        int pr = poll(&pf, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        if (s->len >= sizeof s->buf - 1)
            return NULL;
        ssize_t got = read(s->fd, s->buf + s->len, sizeof s->buf - 1 - s->len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            s->eof = 1;
        else
            s->len += (size_t)got;
    }
}

/* Wait for EOF up to timeout_ms; returns 1 on EOF. */
static inline int hub_stream_eof(hub_stream *s, long timeout_ms)
{
    hub_stream_until(s, s->len + 1, "\x01\x02never", timeout_ms);
    return s->eof;
}

/* Open an SSE stream: GET `path` on the hub with extra header lines (each ending in
 * "\r\n", or NULL), then wait for the response head. Returns a malloc'd stream. */
static inline hub_stream *hub_sse_open(hub *h, const char *path, const char *extra_headers)
{
    hub_stream *s = calloc(1, sizeof *s);
    CHECK(s != NULL);
    s->fd = hub_tcp(h->http);
    char req[2048];
    char auth[192] = "";
    if (h->token[0])
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", h->token);
    snprintf(req, sizeof req,
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n%s%s\r\n", path,
             auth, extra_headers ? extra_headers : "");
    hub_tcp_send(s->fd, req);
    CHECK(hub_stream_until(s, 0, "\r\n\r\n", 5000) != NULL);
    return s;
}

static inline void hub_stream_close(hub_stream *s)
{
    if (!s)
        return;
    close(s->fd);
    free(s);
}

/* --- Child processes with captured stdout ---------------------------------------- */

typedef struct hub_proc {
    pid_t pid;
    hub_stream out; /* its stdout */
    int status;
} hub_proc;

/* Start argv (argv[0] absolute), NULL-terminated; stdout captured, stderr inherited. */
static inline hub_proc *hub_proc_start(const char *const *argv)
{
    hub_proc *p = calloc(1, sizeof *p);
    CHECK(p != NULL);
    int fds[2];
    CHECK(peer_pipe_cloexec(fds) == 0);
    p->pid = hub_spawn(argv, fds[1], -1);
    close(fds[1]);
    p->out.fd = fds[0];
    return p;
}

/* Wait up to timeout_ms for it to exit (reading its stdout); kill it after. Returns its
 * exit status, or -1 when killed. Frees nothing: hub_proc_free(). */
static inline int hub_proc_wait(hub_proc *p, long timeout_ms)
{
    hub_stream_eof(&p->out, timeout_ms);
    int st = 0;
    if (peer_reap(p->pid, p->out.eof ? 5000 : 10, &st)) {
        p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    } else {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->status = -1;
    }
    hub_child_del(p->pid);
    p->pid = 0;
    return p->status;
}

static inline void hub_proc_free(hub_proc *p)
{
    if (!p)
        return;
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        hub_child_del(p->pid);
    }
    close(p->out.fd);
    free(p);
}

/* Run argv to completion within timeout_ms; returns the exit status and its stdout
 * (owned: free()) in *out when out is not NULL. */
static inline int hub_cmd(const char *const *argv, long timeout_ms, char **out)
{
    hub_proc *p = hub_proc_start(argv);
    int st = hub_proc_wait(p, timeout_ms);
    if (out)
        *out = strdup(p->out.buf);
    if (st != 0)
        fprintf(stderr, "hub_cmd %s %s: exit %d, stdout: %.400s\n", argv[0],
                argv[1] ? argv[1] : "", st, p->out.buf);
    hub_proc_free(p);
    return st;
}

/* The path of a Python peer script, tests/peers/<name>. */
static inline const char *hub_peer_script(const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/tests/peers/%s", peer_source_dir(), name);
    return buf;
}

#endif
