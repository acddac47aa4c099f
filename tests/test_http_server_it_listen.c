/* Proves where and how the server listens and logs: two workers share the port
 * (SO_REUSEPORT) and serve many requests from four client threads at once, with both
 * worker indexes seen; the Unix-domain socket serves curl --unix-socket and raw clients;
 * host "::1" serves IPv6 (skipped when ::1 is unavailable); access_log=1 writes one
 * Common Log Format line with the latency per request to stderr; listening failures (bad
 * host, unix_path over 107 bytes or in a missing directory, a port another server holds)
 * make cipc_server_run() fail with a message instead of listening. */
#include <dirent.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_helper.h"

#define H "Host: t\r\n"

/* --- Two workers ----------------------------------------------------------------------- */

static atomic_int served[2];
static int wport;

static void h_worker(cipc_http_req *req, void *ud)
{
    (void)ud;
    int w = cipc_http_worker(req);
    CHECK(w == 0 || w == 1);
    atomic_fetch_add(&served[w], 1);
    char body[16];
    int n = snprintf(body, sizeof body, "%d", w);
    CHECK_INT(cipc_http_respond(req, 200, "text/plain", body, (size_t)n), ==, 0);
}

enum { THREADS = 4, CONNS = 32, REQS = 5 };

struct client_stats {
    int by_worker[2];
    int conns_on[2];
};

/* One client thread: CONNS connections one after another, REQS requests on each (all
 * must land on the same worker: a connection belongs to one). */
static void *client_main(void *arg)
{
    struct client_stats *st = arg;
    for (int i = 0; i < CONNS; i++) {
        raw_conn c;
        raw_resp r;
        raw_open(&c, wport);
        int first = -1;
        for (int k = 0; k < REQS; k++) {
            CHECK_INT(raw_roundtrip(&c, "GET /w HTTP/1.1\r\n" H "\r\n", &r, 0), ==, 200);
            int w = atoi(r.body);
            raw_resp_free(&r);
            CHECK(w == 0 || w == 1);
            if (first < 0)
                first = w;
            CHECK_INT(w, ==, first);
            st->by_worker[w]++;
        }
        st->conns_on[first]++;
        raw_close(&c);
    }
    return NULL;
}

static void test_workers(void)
{
    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 2});
    CHECK_INT(cipc_route(t.srv, "GET", "/w", h_worker, NULL), ==, 0);
    wport = srvt_start(&t);
    pthread_t th[THREADS];
    struct client_stats st[THREADS];
    memset(st, 0, sizeof st);
    for (int i = 0; i < THREADS; i++)
        CHECK_INT(pthread_create(&th[i], NULL, client_main, &st[i]), ==, 0);
    int total[2] = {0, 0}, conns[2] = {0, 0};
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        for (int w = 0; w < 2; w++) {
            total[w] += st[i].by_worker[w];
            conns[w] += st[i].conns_on[w];
        }
    }
    srvt_stop(&t, 5000);
    srvt_free(&t);
    fprintf(stderr,
            "  worker 0: %d connections, %d requests; worker 1: %d connections, %d "
            "requests\n",
            conns[0], total[0], conns[1], total[1]);
    CHECK_INT(total[0] + total[1], ==, THREADS * CONNS * REQS);
    CHECK_INT(atomic_load(&served[0]), ==, total[0]);
    CHECK_INT(atomic_load(&served[1]), ==, total[1]);
    /* 128 connections hashed over two sockets: both get some (2^-127 odds otherwise). */
    CHECK_INT(conns[0], >, 0);
    CHECK_INT(conns[1], >, 0);
}

/* --- Unix-domain socket ---------------------------------------------------------------- */

static void test_unix(void)
{
    char dir[256], path[300];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/srv.sock", dir);
    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 2, .unix_path = path});
    CHECK_INT(cipc_route(t.srv, "GET", "/ping", h_text, "pong"), ==, 0);
    CHECK_INT(cipc_route(t.srv, "POST", "/echo", h_echo, NULL), ==, 0);
    int port = srvt_start(&t);

    char out[256];
    const char *argv[] = {"/usr/bin/curl", "-sS", "--noproxy", "*",
                          "--unix-socket", path,  "-w",        "|%{http_code}",
                          "http://x/ping", NULL};
    CHECK_INT(prog_run(argv, out, sizeof out, 20000), ==, 0);
    CHECK_STR(out, "pong|200");
    const char *argv2[] = {"/usr/bin/curl", "-sS", "--noproxy",     "*",
                           "--unix-socket", path,  "--data-binary", "over unix",
                           "http://x/echo", NULL};
    CHECK_INT(prog_run(argv2, out, sizeof out, 20000), ==, 0);
    CHECK_STR(out, "over unix");

    raw_conn c;
    raw_resp r;
    CHECK_INT(raw_connect_unix(&c, path), ==, 0);
    for (int i = 0; i < 3; i++) {
        CHECK_INT(raw_roundtrip(&c, "GET /ping HTTP/1.1\r\n" H "\r\n", &r, 0), ==, 200);
        CHECK_STR(r.body, "pong");
        raw_resp_free(&r);
    }
    raw_close(&c);
    /* TCP keeps working beside it. */
    raw_open(&c, port);
    raw_check_alive(&c, "/ping");
    raw_close(&c);
    srvt_stop(&t, 5000);
    srvt_free(&t);
    /* The socket file is gone with the server. */
    CHECK(access(path, F_OK) != 0);
    rmdir(dir);
}

/* --- IPv6 ---------------------------------------------------------------------------- */

static int ipv6_loopback_usable(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void test_ipv6(void)
{
    if (!ipv6_loopback_usable()) {
        fprintf(stderr, "  SKIP: ::1 is not available on this machine (no IPv6 loopback)\n");
        return;
    }
    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 1, .host = "::1"});
    CHECK_INT(cipc_route(t.srv, "GET", "/ping", h_text, "pong6"), ==, 0);
    int port = srvt_start(&t);
    raw_conn c;
    raw_resp r;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6,
                             .sin6_port = htons((uint16_t)port),
                             .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    CHECK_INT(raw_connect_sa(&c, (struct sockaddr *)&a, sizeof a), ==, 0);
    CHECK_INT(raw_roundtrip(&c, "GET /ping HTTP/1.1\r\nHost: [::1]\r\n\r\n", &r, 0), ==, 200);
    CHECK_STR(r.body, "pong6");
    raw_resp_free(&r);
    raw_close(&c);
    char url[64], out[128];
    snprintf(url, sizeof url, "http://[::1]:%d/ping", port);
    const char *argv[] = {"/usr/bin/curl", "-sS", "-g", "--noproxy", "*", url, NULL};
    CHECK_INT(prog_run(argv, out, sizeof out, 20000), ==, 0);
    CHECK_STR(out, "pong6");
    /* Not on IPv4. */
    CHECK_INT(raw_connect(&c, port), ==, -ECONNREFUSED);
    srvt_stop(&t, 5000);
    srvt_free(&t);
}

/* --- Access log ---------------------------------------------------------------------- */

static void test_access_log(void)
{
    char dir[256], path[300];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/stderr.log", dir);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(saved >= 0 && fd >= 0);
    CHECK_INT(dup2(fd, 2), ==, 2);
    close(fd);

    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 1, .access_log = 1});
    CHECK_INT(cipc_route(t.srv, "GET", "/ping", h_text, "pong"), ==, 0);
    CHECK_INT(cipc_route(t.srv, "POST", "/echo", h_echo, NULL), ==, 0);
    int port = srvt_start(&t);
    raw_conn c;
    raw_resp r;
    raw_open(&c, port);
    int s1 = raw_roundtrip(&c, "GET /ping?x=1&y=%20 HTTP/1.1\r\n" H "\r\n", &r, 0);
    raw_resp_free(&r);
    int s2 = raw_roundtrip(&c, "POST /echo HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\nhello", &r, 0);
    raw_resp_free(&r);
    int s3 = raw_roundtrip(&c, "GET /nope HTTP/1.1\r\n" H "\r\n", &r, 0);
    raw_resp_free(&r);
    int s4 = raw_roundtrip(&c, "HEAD /ping HTTP/1.1\r\n" H "\r\n", &r, 1);
    raw_resp_free(&r);
    int s5 = raw_roundtrip(&c, "GET /ping HTTP/1.0\r\n\r\n", &r, 0);
    raw_resp_free(&r);
    raw_close(&c);
    srvt_stop(&t, 5000);
    srvt_free(&t);

    fflush(stderr);
    CHECK_INT(dup2(saved, 2), ==, 2);
    close(saved);
    CHECK(s1 == 200 && s2 == 200 && s3 == 404 && s4 == 200 && s5 == 200);

    size_t len = 0;
    char *log = read_file(path, &len);
    CHECK(log != NULL);
    fprintf(stderr, "  --- captured stderr ---\n%s  ---\n", log);
    /* host ident authuser [date] "request" status bytes latency */
    regex_t re;
    CHECK_INT(regcomp(&re,
                      "^127\\.0\\.0\\.1 - - \\[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:"
                      "[0-9]{2} [+-][0-9]{4}\\] \"([A-Z]+ [^ \"]+ HTTP/1\\.[01])\" ([0-9]{3}) "
                      "([0-9]+|-) [0-9]+(\\.[0-9]+)? ?(ms|us|s)$",
                      REG_EXTENDED),
              ==, 0);
    static const struct {
        const char *request, *status, *bytes;
    } want[] = {{"GET /ping?x=1&y=%20 HTTP/1.1", "200", "4"},
                {"POST /echo HTTP/1.1", "200", "5"},
                {"GET /nope HTTP/1.1", "404", NULL},
                {"HEAD /ping HTTP/1.1", "200", NULL},
                {"GET /ping HTTP/1.0", "200", "4"}};
    size_t next = 0;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strstr(line, "HTTP/1."))
            continue; /* other log output */
        regmatch_t m[6];
        if (regexec(&re, line, 6, m, 0) != 0) {
            fprintf(stderr, "access log line of the wrong shape: %s\n", line);
            CHECK(0);
        }
        CHECK(next < sizeof want / sizeof want[0]);
        CHECK_MEM(line + m[1].rm_so, (size_t)(m[1].rm_eo - m[1].rm_so), want[next].request);
        CHECK_MEM(line + m[2].rm_so, (size_t)(m[2].rm_eo - m[2].rm_so), want[next].status);
        if (want[next].bytes)
            CHECK_MEM(line + m[3].rm_so, (size_t)(m[3].rm_eo - m[3].rm_so), want[next].bytes);
        next++;
    }
    CHECK_INT(next, ==, sizeof want / sizeof want[0]);
    regfree(&re);
    free(log);
    unlink(path);
    rmdir(dir);
}

/* --- Listening failures ------------------------------------------------------------- */

static int listen_failures;

/* cipc_server_run() must fail at once with a message (on_ready never called). When it
 * listens instead, the server is stopped and the case counted as a failure. */
static void expect_run_fails(cipc_server_opts o, const char *what)
{
    srv_thread t;
    srvt_new(&t, o);
    CHECK_INT(cipc_route(t.srv, "GET", "/ping", h_text, "pong"), ==, 0);
    CHECK_INT(pthread_create(&t.th, NULL, srvt_main, &t), ==, 0);
    t.started = 1;
    pthread_mutex_lock(&t.mu);
    srvt_wait_locked(&t, &t.ready, peer_now_ms() + 5000);
    int ready = t.ready;
    pthread_mutex_unlock(&t.mu);
    if (ready) {
        fprintf(stderr, "  FAIL %s: the server listens (port %d) instead of failing\n", what,
                t.port);
        listen_failures++;
        srvt_stop(&t, 5000);
    } else {
        CHECK(srvt_wait_done(&t, 1000));
        pthread_join(t.th, NULL);
        t.started = 0;
        fprintf(stderr, "  %s: %s (%s)\n", what, cipc_err_name(t.rc), cipc_server_errmsg(t.srv));
        CHECK_INT(t.rc, <, 0);
        CHECK(cipc_server_errmsg(t.srv)[0] != '\0');
    }
    srvt_free(&t);
}

static void test_listen_errors(void)
{
    expect_run_fails((cipc_server_opts){.workers = 1, .host = "256.1.1.1"}, "host 256.1.1.1");
    expect_run_fails((cipc_server_opts){.workers = 1, .host = "192.0.2.1"},
                     "host 192.0.2.1 (not local)");
    expect_run_fails((cipc_server_opts){.workers = 1, .unix_path = "/nonexistent-dir/x.sock"},
                     "unix_path in a missing directory");
    /* A path longer than sun_path (108 bytes), inside a directory of our own: whatever a
     * truncating bind creates lands there and is removed with it. */
    char dir[256], longpath[400];
    make_tmpdir(dir, sizeof dir);
    int n = snprintf(longpath, sizeof longpath, "%s/", dir);
    memset(longpath + n, 'p', 200);
    longpath[n + 200] = '\0';
    expect_run_fails((cipc_server_opts){.workers = 1, .unix_path = longpath},
                     "a unix_path over 108 bytes");
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char junk[600];
        snprintf(junk, sizeof junk, "%s/%s", dir, e->d_name);
        fprintf(stderr, "  removing %s (%zu-byte name) left by the server\n", junk,
                strlen(e->d_name));
        unlink(junk);
    }
    closedir(d);
    rmdir(dir);

    /* A port another server of ours already listens on: the second must not share it
     * silently (SO_REUSEPORT would let both bind and split the connections). */
    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 1});
    CHECK_INT(cipc_route(t.srv, "GET", "/ping", h_text, "first"), ==, 0);
    int port = srvt_start(&t);
    char what[64];
    snprintf(what, sizeof what, "port %d, in use by another server", port);
    expect_run_fails((cipc_server_opts){.workers = 1, .port = port}, what);
    srvt_stop(&t, 5000);
    srvt_free(&t);
    CHECK_INT(listen_failures, ==, 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN(test_workers);
    RUN(test_unix);
    RUN(test_ipv6);
    RUN(test_access_log);
    RUN(test_listen_errors);
    return 0;
}
