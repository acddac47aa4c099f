/* Proves that each failure gives its specific error and message against a real peer:
 * refused port, bad URLs, DNS failure, CR/LF header injection (rejected, nothing sent),
 * bodies over the limit, servers closing mid-body, total and connect timeouts (within
 * bounds, per session and per request, and which one fired, also on a kept-alive
 * connection), bad files and bad arguments, HEAD against the body limit; and that the
 * session keeps working afterwards. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "cipc/http_client.h"
#include "cipc/time.h"
#include "peer.h"

static peer P;

static cipc_session *session_with(cipc_session_opts o)
{
    return peer_session(&P, o);
}

/* Expect `rc` from GET url on s; *out must come back NULL. */
static void expect_get(cipc_session *s, const char *url, const cipc_request_opts *o, int want)
{
    cipc_response *r = (cipc_response *)&r;
    int rc = cipc_get(s, url, o, &r);
    fprintf(stderr, "GET %s -> %s: %s\n", url ? url : "(null)", cipc_err_name(rc),
            cipc_session_errmsg(s));
    CHECK_RC(rc, want, cipc_session_errmsg(s));
    CHECK(r == NULL);
    if (want != 0)
        CHECK(cipc_session_errmsg(s)[0] != '\0');
}

/* The session still works after a failure. */
static void still_works(cipc_session *s)
{
    json_t *j = peer_get_json(s, "/users/5", 200);
    CHECK_INT(peer_jint(j, "id"), ==, 5);
    json_decref(j);
}

/* A TCP socket bound to 127.0.0.1 but not listening: connecting to it is refused, and
 * the port stays ours while the socket is open. */
static int refused_port(int *fd_out)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
    *fd_out = fd;
    return ntohs(a.sin_port);
}

static void test_refused(void)
{
    int fd, port = refused_port(&fd);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/users/1", port);
    cipc_session *s = session_with((cipc_session_opts){0});
    int64_t t0 = cipc_now_ms();
    expect_get(s, url, NULL, -ECONNREFUSED);
    CHECK_INT(cipc_now_ms() - t0, <, 3000);
    CHECK(peer_contains_ci(cipc_session_errmsg(s), "refused"));
    still_works(s);
    cipc_session_free(s);
    close(fd);
}

static void test_bad_urls(void)
{
    static const char *const bad[] = {"http://[::1",
                                      "ht tp://x",
                                      "http://host:99999/",
                                      "",
                                      "http://",
                                      "://nohost/",
                                      "http://exa mple.com/",
                                      "file:///etc/passwd",
                                      "ftp://127.0.0.1/",
                                      "gopher://127.0.0.1:70/"};
    cipc_session_opts none = {.size = sizeof none};
    cipc_session *s = NULL;
    CHECK_RC(cipc_session_new(&none, &s), 0, "");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_get(s, bad[i], NULL, CIPC_EURL);
    expect_get(s, "relative/path", NULL, CIPC_EURL);
    expect_get(s, NULL, NULL, -EINVAL);
    cipc_response *r = (cipc_response *)&r;
    CHECK_RC(cipc_request(s, NULL, "http://127.0.0.1:1/", NULL, &r), -EINVAL, "");
    CHECK(r == NULL);
    cipc_session_free(s);

    /* A redirect to a non-HTTP scheme is not followed into the local file system. */
    s = session_with((cipc_session_opts){0});
    r = NULL;
    int rc = cipc_get(s, "/redirect-to?url=file:///etc/passwd", NULL, &r);
    fprintf(stderr, "redirect to file:// -> %s: %s\n", cipc_err_name(rc), cipc_session_errmsg(s));
    if (rc == 0) {
        CHECK_INT(cipc_response_status(r), ==, 302);
        CHECK(strstr(cipc_response_text(r), "root:") == NULL);
        cipc_response_free(r);
    } else {
        CHECK(r == NULL);
    }
    still_works(s);
    cipc_session_free(s);
}

static void test_dns(void)
{
    cipc_session *s = session_with((cipc_session_opts){0});
    int64_t t0 = cipc_now_ms();
    expect_get(s, "http://nonexistent.invalid/", NULL, CIPC_EDNS);
    CHECK_INT(cipc_now_ms() - t0, <, 10000);
    still_works(s);
    cipc_session_free(s);
}

static void test_header_injection(void)
{
    cipc_session *counter = session_with((cipc_session_opts){0});
    long long before = peer_get_int(counter, "/connections", "connections");

    /* Session headers are checked when set and never stored. */
    cipc_session *s = session_with((cipc_session_opts){0});
    CHECK_RC(cipc_session_header(s, "X-Inject", "a\r\nX-Evil: 1"), CIPC_EHEADER, "");
    CHECK_RC(cipc_session_header(s, "X-Inject", "a\nX-Evil: 1"), CIPC_EHEADER, "");
    CHECK_RC(cipc_session_header(s, "X-Inject", "a\rb"), CIPC_EHEADER, "");
    CHECK_RC(cipc_session_header(s, "Bad Name", "v"), CIPC_EHEADER, "");
    CHECK_RC(cipc_session_header(s, "X-Evil:", "v"), CIPC_EHEADER, "");
    CHECK_RC(cipc_session_header(s, "", "v"), CIPC_EHEADER, "");
    CHECK_RC(cipc_session_header(s, "X\r\nY", "v"), CIPC_EHEADER, "");

    /* Per-request headers: the request fails before anything is sent. */
    static const cipc_kv bad_name[] = {{"Bad Name", "v"}, {NULL, NULL}};
    static const cipc_kv bad_value[] = {{"X-Ok", "v\r\nX-Evil: 1"}, {NULL, NULL}};
    static const cipc_kv bad_colon[] = {{"X-Evil: 1\r\nX", "v"}, {NULL, NULL}};
    cipc_request_opts o = {.size = sizeof o, .headers = bad_name};
    expect_get(s, "/echo", &o, CIPC_EHEADER);
    o.headers = bad_value;
    expect_get(s, "/echo", &o, CIPC_EHEADER);
    o.headers = bad_colon;
    expect_get(s, "/echo", &o, CIPC_EHEADER);

    /* s never connected: the peer accepted no connection since `before` (the counter
     * session reuses its own). */
    CHECK_INT(peer_get_int(counter, "/connections", "connections"), ==, before);

    json_t *j = peer_get_json(s, "/echo", 200);
    CHECK(peer_jget(j, "headers.x-evil") == NULL);
    CHECK(peer_jget(j, "headers.x-inject") == NULL);
    CHECK(peer_jget(j, "headers.bad name") == NULL);
    json_decref(j);
    cipc_session_free(s);
    cipc_session_free(counter);
}

static void test_too_big(void)
{
    cipc_session *s = session_with((cipc_session_opts){.max_response_bytes = 1024 * 1024});
    expect_get(s, "/big?mb=4", NULL, CIPC_ETOOBIG);    /* known from Content-Length */
    expect_get(s, "/stream?mb=4", NULL, CIPC_ETOOBIG); /* found out while reading */
    /* Exactly at the limit is not over it. */
    cipc_response *r = NULL;
    CHECK_RC(cipc_get(s, "/big?mb=1", NULL, &r), 0, cipc_session_errmsg(s));
    size_t len = 0;
    cipc_response_body(r, &len);
    CHECK_INT(len, ==, 1024 * 1024);
    cipc_response_free(r);
    still_works(s);
    cipc_session_free(s);

    /* The default limit is 64 MiB. */
    s = session_with((cipc_session_opts){0});
    expect_get(s, "/big?mb=65", NULL, CIPC_ETOOBIG);
    cipc_session_free(s);

    /* The per-request limit overrides the session's (the default, 64 MiB). */
    s = session_with((cipc_session_opts){0});
    cipc_request_opts o = {.size = sizeof o, .max_response_bytes = 512 * 1024};
    expect_get(s, "/big?mb=1", &o, CIPC_ETOOBIG);
    expect_get(s, "/stream?mb=1", &o, CIPC_ETOOBIG);
    o.max_response_bytes = 8 * 1024 * 1024;
    CHECK_RC(cipc_get(s, "/big?mb=4", &o, &r), 0, cipc_session_errmsg(s));
    cipc_response_body(r, &len);
    CHECK_INT(len, ==, 4 * 1024 * 1024);
    cipc_response_free(r);
    cipc_session_free(s);
}

static void test_truncated(void)
{
    cipc_session *s = session_with((cipc_session_opts){0});
    expect_get(s, "/truncated", NULL, CIPC_ETRUNCATED);
    still_works(s);
    expect_get(s, "/truncated?chunked=1", NULL, CIPC_ETRUNCATED);
    still_works(s);
    cipc_session_free(s);
}

/* Expect CIPC_ETIMEOUT (or `want`) after between lo and hi ms. */
static void expect_timeout(cipc_session *s, const char *url, const cipc_request_opts *o, int want,
                           int64_t lo, int64_t hi)
{
    int64_t t0 = cipc_now_ms();
    expect_get(s, url, o, want);
    int64_t ms = cipc_now_ms() - t0;
    fprintf(stderr, "  took %lld ms\n", (long long)ms);
    CHECK_INT(ms, >=, lo);
    CHECK_INT(ms, <, hi);
}

static void test_timeouts(void)
{
    /* Session total timeout. */
    cipc_session *s = session_with((cipc_session_opts){.timeout_ms = 300});
    expect_timeout(s, "/sleep?ms=5000", NULL, CIPC_ETIMEOUT, 250, 3000);
    CHECK(peer_contains_ci(cipc_session_errmsg(s), "time"));
    /* Per request: longer, and no timeout at all. */
    cipc_request_opts o = {.size = sizeof o, .timeout_ms = 3000};
    cipc_response *r = NULL;
    CHECK_RC(cipc_get(s, "/sleep?ms=600", &o, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_status(r), ==, 200);
    cipc_response_free(r);
    o.timeout_ms = CIPC_TIMEOUT_NONE;
    CHECK_RC(cipc_get(s, "/sleep?ms=600", &o, &r), 0, cipc_session_errmsg(s));
    cipc_response_free(r);
    still_works(s);
    cipc_session_free(s);

    /* No total timeout on the session. */
    s = session_with((cipc_session_opts){.timeout_ms = CIPC_TIMEOUT_NONE});
    CHECK_RC(cipc_get(s, "/sleep?ms=400", NULL, &r), 0, cipc_session_errmsg(s));
    cipc_response_free(r);
    cipc_session_free(s);

    /* The default session (30 s) with a short per-request timeout. */
    s = session_with((cipc_session_opts){0});
    o.timeout_ms = 300;
    expect_timeout(s, "/sleep?ms=5000", &o, CIPC_ETIMEOUT, 250, 3000);
    still_works(s);
    cipc_session_free(s);
}

static void test_timeout_reused(void)
{
    cipc_session *s;
    /* A total timeout on a kept-alive connection is the total one, also when the connect
     * timeout is the shorter (as with the defaults, 10 s and 30 s). */
    s = session_with((cipc_session_opts){.timeout_ms = 1000, .connect_timeout_ms = 500});
    still_works(s); /* opens the connection the next request reuses */
    expect_timeout(s, "/sleep?ms=5000", NULL, CIPC_ETIMEOUT, 950, 3000);
    cipc_session_free(s);
}

/* A listener with a full accept queue: listen(fd, 0) and never accept, then fill the
 * queue with non-blocking connects. Linux then drops new SYNs, so connecting hangs
 * (the kernel retries the SYN after 1 s, 3 s, ...) instead of being refused. */
static int blackhole(int *lfd, int *fill, int nfill)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    *lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(*lfd >= 0);
    CHECK(bind(*lfd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(*lfd, 0) == 0);
    CHECK(getsockname(*lfd, (struct sockaddr *)&a, &alen) == 0);
    for (int i = 0; i < nfill; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        CHECK(fill[i] >= 0);
        int rc = connect(fill[i], (struct sockaddr *)&a, sizeof a);
        CHECK(rc == 0 || errno == EINPROGRESS);
    }
    /* Wait briefly for each handshake that the queue still admits to complete. */
    for (int i = 0; i < nfill; i++) {
        struct pollfd pfd = {.fd = fill[i], .events = POLLOUT};
        poll(&pfd, 1, 100);
    }
    return ntohs(a.sin_port);
}

static void test_connect_timeout(void)
{
    int lfd, fill[4];
    int port = blackhole(&lfd, fill, 4);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);

    cipc_session *s = session_with((cipc_session_opts){.connect_timeout_ms = 500});
    int64_t t0 = cipc_now_ms();
    cipc_response *r = (cipc_response *)&r;
    int rc = cipc_get(s, url, NULL, &r);
    int64_t ms = cipc_now_ms() - t0;
    fprintf(stderr, "connect to a full backlog -> %s after %lld ms: %s\n", cipc_err_name(rc),
            (long long)ms, cipc_session_errmsg(s));
    CHECK(r == NULL);
    CHECK_RC(rc, CIPC_ECONNTIMEOUT, cipc_session_errmsg(s));
    CHECK_INT(ms, >=, 450);
    CHECK_INT(ms, <, 3000);
    cipc_session_free(s);

    /* Per request, on a session with the default connect timeout; and a total timeout
     * shorter than the connect timeout reports the total one. */
    s = session_with((cipc_session_opts){0});
    cipc_request_opts o = {.size = sizeof o, .connect_timeout_ms = 300};
    expect_timeout(s, url, &o, CIPC_ECONNTIMEOUT, 250, 3000);
    o = (cipc_request_opts){.size = sizeof o, .timeout_ms = 300};
    expect_timeout(s, url, &o, CIPC_ETIMEOUT, 250, 3000);
    cipc_session_free(s);

    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

static void test_files(void)
{
    cipc_session *s = session_with((cipc_session_opts){0});
    cipc_request_opts o = {.size = sizeof o, .upload_path = "/nonexistent/cipc-upload"};
    cipc_response *r = (cipc_response *)&r;
    CHECK_RC(cipc_post(s, "/upload", &o, &r), CIPC_EFILE, cipc_session_errmsg(s));
    CHECK(r == NULL);
    /* A directory opens for reading on Linux but cannot be read. */
    o = (cipc_request_opts){.size = sizeof o, .upload_path = "/tmp"};
    int rc = cipc_post(s, "/upload", &o, &r);
    fprintf(stderr, "upload_path=/tmp -> %s: %s\n", cipc_err_name(rc), cipc_session_errmsg(s));
    CHECK_RC(rc, CIPC_EFILE, cipc_session_errmsg(s));
    CHECK(r == NULL);
    o = (cipc_request_opts){.size = sizeof o, .download_path = "/nonexistent/dir/file"};
    expect_get(s, "/users/1", &o, CIPC_EFILE);
    o.download_path = "/tmp";
    expect_get(s, "/users/1", &o, CIPC_EFILE);
    still_works(s);
    cipc_session_free(s);
}

static void test_head_limit(void)
{
    cipc_session *s = session_with((cipc_session_opts){.max_response_bytes = 1024 * 1024});
    /* HEAD has no body, whatever its Content-Length says. */
    cipc_response *h = NULL;
    int rc = cipc_head(s, "/big?mb=4", NULL, &h);
    fprintf(stderr, "HEAD /big?mb=4 with a 1 MiB limit -> %s: %s\n", cipc_err_name(rc),
            cipc_session_errmsg(s));
    CHECK_RC(rc, 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_status(h), ==, 200);
    CHECK_STR(cipc_response_header(h, "Content-Length"), "4194304");
    cipc_response_free(h);
    cipc_session_free(s);
}

int main(void)
{
    peer_clear_proxy_env();
    CHECK(peer_start(&P) == 0);
    test_refused();
    test_bad_urls();
    test_dns();
    test_header_injection();
    test_too_big();
    test_truncated();
    test_timeouts();
    test_connect_timeout();
    test_files();
    test_head_limit();
    test_timeout_reused();
    peer_stop(&P);
    return 0;
}
