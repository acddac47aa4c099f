/* Proves that retries happen exactly as configured against a real peer that counts
 * requests: off by default; 429/502/503/504, timeouts and refused connections retried
 * for idempotent methods up to max_attempts; other statuses and POST/PATCH not retried
 * unless the caller opts in (per session or per request); Retry-After in seconds and as
 * an HTTP-date is honoured (measured), and one over max_retry_after_ms stops retrying. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "cipc/http_client.h"
#include "cipc/time.h"
#include "peer.h"

static peer P;
static cipc_session *counter; /* a session of its own for /flaky/{key}/count */

static cipc_session *session_with(cipc_session_opts o)
{
    return peer_session(&P, o);
}

/* Three attempts with short backoffs, so tests stay fast. */
static cipc_session *retrying(int non_idempotent)
{
    return session_with(
        (cipc_session_opts){.retry = {.max_attempts = 3, .base_ms = 10, .cap_ms = 20},
                            .retry_non_idempotent = non_idempotent});
}

static long long server_count(const char *key)
{
    char url[128];
    snprintf(url, sizeof url, "/flaky/%s/count", key);
    return peer_get_int(counter, url, "count");
}

/* Run `method` on /flaky/<key>?<query> and check status, attempts and the server's
 * count of requests for the key. Returns the wall time in ms. */
static int64_t flaky(cipc_session *s, const char *method, const char *key, const char *query,
                     const cipc_request_opts *o, int want_status, int want_attempts)
{
    char url[256];
    snprintf(url, sizeof url, "/flaky/%s?%s", key, query);
    cipc_response *r = NULL;
    int64_t t0 = cipc_now_ms();
    CHECK_RC(cipc_request(s, method, url, o, &r), 0, cipc_session_errmsg(s));
    int64_t ms = cipc_now_ms() - t0;
    fprintf(stderr, "%s %s -> %d after %d attempt(s), %lld ms\n", method, url,
            cipc_response_status(r), cipc_response_attempts(r), (long long)ms);
    CHECK_INT(cipc_response_status(r), ==, want_status);
    CHECK_INT(cipc_response_attempts(r), ==, want_attempts);
    if (want_status == 200 && strcmp(method, "HEAD") != 0) {
        json_t *j = peer_json(r);
        CHECK_INT(peer_jint(j, "attempts"), ==, want_attempts);
        json_decref(j);
    }
    CHECK_INT(server_count(key), ==, want_attempts);
    cipc_response_free(r);
    return ms;
}

static void test_default_off(void)
{
    cipc_session *s = session_with((cipc_session_opts){0});
    flaky(s, "GET", "off", "fail=1", NULL, 503, 1);
    cipc_session_free(s);
    /* max_attempts 1 is no retry either. */
    s = session_with((cipc_session_opts){.retry = {.max_attempts = 1}});
    flaky(s, "GET", "one", "fail=1", NULL, 503, 1);
    cipc_session_free(s);
}

static void test_statuses(void)
{
    cipc_session *s = retrying(0);
    flaky(s, "GET", "ok2", "fail=2", NULL, 200, 3);
    /* Attempts used up: the last response is returned, not an error. */
    flaky(s, "GET", "give-up", "fail=5", NULL, 503, 3);
    flaky(s, "GET", "s429", "fail=1&code=429", NULL, 200, 2);
    flaky(s, "GET", "s502", "fail=1&code=502", NULL, 200, 2);
    flaky(s, "GET", "s504", "fail=1&code=504", NULL, 200, 2);
    /* Other statuses are answers, not transient failures. */
    flaky(s, "GET", "s500", "fail=1&code=500", NULL, 500, 1);
    flaky(s, "GET", "s404", "fail=1&code=404", NULL, 404, 1);
    flaky(s, "GET", "s501", "fail=1&code=501", NULL, 501, 1);
    cipc_session_free(s);
}

static void test_methods(void)
{
    cipc_session *s = retrying(0);
    /* Idempotent methods are retried. */
    flaky(s, "HEAD", "head", "fail=1", NULL, 200, 2);
    flaky(s, "PUT", "put", "fail=1", NULL, 200, 2);
    flaky(s, "DELETE", "delete", "fail=1", NULL, 200, 2);
    flaky(s, "OPTIONS", "options", "fail=1", NULL, 200, 2);
    /* POST and PATCH are not, by default... */
    json_t *body = json_pack("{s:i}", "n", 1);
    cipc_request_opts with_body = {.size = sizeof with_body, .json = body};
    flaky(s, "POST", "post", "fail=1", &with_body, 503, 1);
    flaky(s, "PATCH", "patch", "fail=1", &with_body, 503, 1);
    /* ...but are when the request opts in (the body is sent again each time). */
    cipc_request_opts opt_in = {.size = sizeof opt_in, .json = body, .retry = 1};
    flaky(s, "POST", "post-optin", "fail=2", &opt_in, 200, 3);
    /* A request can also refuse retries on an idempotent method. */
    cipc_request_opts opt_out = {.size = sizeof opt_out, .retry = -1};
    flaky(s, "GET", "get-optout", "fail=1", &opt_out, 503, 1);
    cipc_session_free(s);

    /* ...or when the session opts in. */
    s = retrying(1);
    flaky(s, "POST", "post-session", "fail=1", &with_body, 200, 2);
    flaky(s, "PATCH", "patch-session", "fail=1", &with_body, 200, 2);
    cipc_session_free(s);
    json_decref(body);
}

static void test_retry_after(void)
{
    cipc_session *s = retrying(0);
    /* The backoff alone is <= 20 ms; Retry-After: 1 makes it about a second. */
    int64_t ms = flaky(s, "GET", "ra-secs", "fail=1&retry_after=1", NULL, 200, 2);
    CHECK_INT(ms, >=, 900);
    CHECK_INT(ms, <, 5000);
    /* An HTTP-date at least 1 s ahead (whole seconds, so 1 to 2 s). */
    ms = flaky(s, "GET", "ra-date", "fail=1&retry_after=date", NULL, 200, 2);
    CHECK_INT(ms, >=, 900);
    CHECK_INT(ms, <, 5000);
    /* The response is the last attempt's: its headers, and elapsed time of that attempt
     * only. */
    cipc_response *r = NULL;
    int64_t t0 = cipc_now_ms();
    CHECK_RC(cipc_get(s, "/flaky/ra-last?fail=1&retry_after=1", NULL, &r), 0,
             cipc_session_errmsg(s));
    CHECK_INT(cipc_now_ms() - t0, >=, 900);
    CHECK_INT(cipc_response_attempts(r), ==, 2);
    CHECK(cipc_response_header(r, "Retry-After") == NULL);
    CHECK_INT(cipc_response_elapsed_us(r), <, 800000);
    cipc_response_free(r);
    /* Retry-After 0 retries at once. */
    ms = flaky(s, "GET", "ra-zero", "fail=2&retry_after=0", NULL, 200, 3);
    CHECK_INT(ms, <, 3000);
    cipc_session_free(s);

    /* A server asking for longer than max_retry_after_ms gets no retry. */
    s = session_with((cipc_session_opts){
        .retry = {.max_attempts = 3, .base_ms = 10, .max_retry_after_ms = 500}});
    ms = flaky(s, "GET", "ra-long", "fail=1&retry_after=30", NULL, 503, 1);
    CHECK_INT(ms, <, 3000);
    cipc_session_free(s);
}

static void test_timeout_retried(void)
{
    cipc_session *s = session_with((cipc_session_opts){
        .timeout_ms = 300, .retry = {.max_attempts = 2, .base_ms = 10, .cap_ms = 20}});
    /* The first attempt hangs for 5 s and times out; the second answers at once. */
    int64_t ms = flaky(s, "GET", "slow", "fail=1&slow_ms=5000&code=200", NULL, 200, 2);
    CHECK_INT(ms, >=, 250);
    CHECK_INT(ms, <, 3000);
    /* Both attempts time out: the error is the timeout. */
    cipc_response *r = (cipc_response *)&r;
    int64_t t0 = cipc_now_ms();
    CHECK_RC(cipc_get(s, "/flaky/slow2?fail=5&slow_ms=5000", NULL, &r), CIPC_ETIMEOUT,
             cipc_session_errmsg(s));
    ms = cipc_now_ms() - t0;
    CHECK(r == NULL);
    CHECK_INT(ms, >=, 500);
    CHECK_INT(ms, <, 4000);
    CHECK_INT(server_count("slow2"), ==, 2);
    cipc_session_free(s);
}

/* A bound socket refuses connections until listen() is called on it; then it answers
 * one request with "ok". */
struct late_server {
    int fd;
    int64_t listen_after_ms;
    int served;
};

static void *late_server_main(void *arg)
{
    struct late_server *ls = arg;
    cipc_sleep_ms(ls->listen_after_ms); /* the delay is the point of the test */
    CHECK(listen(ls->fd, 8) == 0);
    int c = accept(ls->fd, NULL, NULL);
    CHECK(c >= 0);
    char buf[4096];
    size_t len = 0;
    while (len < sizeof buf - 1) {
        ssize_t n = read(c, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            break;
    }
    static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n"
                                "\r\nok";
    CHECK_INT(write(c, reply, sizeof reply - 1), ==, sizeof reply - 1);
    close(c);
    ls->served = 1;
    return NULL;
}

static void test_refused_retried(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(a.sin_port));

    /* Without retries: refused at once. */
    cipc_session *s = session_with((cipc_session_opts){0});
    cipc_response *r = (cipc_response *)&r;
    CHECK_RC(cipc_get(s, url, NULL, &r), -ECONNREFUSED, cipc_session_errmsg(s));
    cipc_session_free(s);

    /* Attempts used up: still refused, after some backoff. */
    s = session_with((cipc_session_opts){.retry = {.max_attempts = 3, .base_ms = 10}});
    CHECK_RC(cipc_get(s, url, NULL, &r), -ECONNREFUSED, cipc_session_errmsg(s));
    CHECK(r == NULL);
    cipc_session_free(s);

    /* The server appears after 300 ms: a retry reaches it. */
    struct late_server ls = {.fd = fd, .listen_after_ms = 300};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, late_server_main, &ls) == 0);
    s = session_with(
        (cipc_session_opts){.retry = {.max_attempts = 30, .base_ms = 50, .cap_ms = 100}});
    int64_t t0 = cipc_now_ms();
    CHECK_RC(cipc_get(s, url, NULL, &r), 0, cipc_session_errmsg(s));
    int64_t ms = cipc_now_ms() - t0;
    fprintf(stderr, "refused until listen: %d attempts, %lld ms\n", cipc_response_attempts(r),
            (long long)ms);
    CHECK_INT(cipc_response_status(r), ==, 200);
    CHECK_STR(cipc_response_text(r), "ok");
    CHECK_INT(cipc_response_attempts(r), >=, 2);
    CHECK_INT(ms, >=, 250);
    cipc_response_free(r);
    CHECK(pthread_join(th, NULL) == 0);
    CHECK(ls.served);
    cipc_session_free(s);
    close(fd);
}

int main(void)
{
    peer_clear_proxy_env();
    CHECK(peer_start(&P) == 0);
    counter = session_with((cipc_session_opts){0});
    test_default_off();
    test_statuses();
    test_methods();
    test_retry_after();
    test_timeout_retried();
    test_refused_retried();
    cipc_session_free(counter);
    peer_stop(&P);
    return 0;
}
