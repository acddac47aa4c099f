/* Proves the async client on a cipc_loop against a real peer: 1000 concurrent GETs via
 * cipc_client_gather all complete with the right bodies; completion callbacks run once
 * each (and may chain requests); max_concurrency is respected (the peer measures
 * in-flight requests); cancellation is prompt and drops the connection; timeouts and
 * retries behave as in the sync client without blocking other requests; errors arrive
 * with their codes; redirects and cookies work; bodies and opts are copied at the call;
 * cipc_client_wait/gather return as soon as their requests are done; cipc_client_close
 * cancels everything (also requests waiting to retry) and cipc_loop_free returns 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cipc/http_client.h"
#include "cipc/loop.h"
#include "cipc/time.h"
#include "peer.h"

static peer P;

/* Run one test function, logging how long it took. */
#define RUN(fn)                                                                                    \
    do {                                                                                           \
        int64_t t0_ = cipc_now_ms();                                                               \
        fn();                                                                                      \
        fprintf(stderr, "%s: %lld ms\n", #fn, (long long)(cipc_now_ms() - t0_));                   \
    } while (0)
static cipc_loop *L;
static cipc_session *sync_s; /* a blocking session for asking the peer things */

struct result {
    int called;
    int rc;
    int status;
    int attempts;
    int64_t at_ms; /* when the callback ran */
    char body[2048];
    cipc_response *kept;
    int keep;
};

static void on_done(cipc_client *c, int rc, cipc_response *resp, void *ud)
{
    struct result *res = ud;
    res->called++;
    res->rc = rc;
    res->at_ms = cipc_now_ms();
    CHECK((rc == 0) == (resp != NULL));
    if (resp) {
        res->status = cipc_response_status(resp);
        res->attempts = cipc_response_attempts(resp);
        snprintf(res->body, sizeof res->body, "%s", cipc_response_text(resp));
        if (res->keep)
            res->kept = cipc_response_ref(resp);
    }
}

static cipc_client *client_with(cipc_session_opts o)
{
    cipc_client *c = NULL;
    if (!o.base_url)
        o.base_url = P.base_url;
    CHECK_RC(cipc_client_new(L, &o, &c), 0, "cipc_client_new");
    return c;
}

static void test_gather_1000(void)
{
    enum { N = 1000 };
    static char urls[N][32];
    static cipc_fetch f[N];
    cipc_client *c = client_with((cipc_session_opts){.max_concurrency = 64});
    cipc_response *r = NULL;
    CHECK_RC(cipc_post(sync_s, "/connections/reset", NULL, &r), 0, cipc_session_errmsg(sync_s));
    cipc_response_free(r);
    for (int i = 0; i < N; i++) {
        snprintf(urls[i], sizeof urls[i], "/users/%d", 1000 + i); /* not 404 */
        f[i] = (cipc_fetch){.url = urls[i], .rc = 12345};
    }
    int64_t t0 = cipc_now_ms();
    int got = cipc_client_gather(c, f, N, 60000);
    fprintf(stderr, "gather %d: %d responses in %lld ms\n", N, got,
            (long long)(cipc_now_ms() - t0));
    CHECK_RC(got, N, cipc_client_errmsg(c));
    for (int i = 0; i < N; i++) {
        CHECK_RC(f[i].rc, 0, cipc_client_errmsg(c));
        CHECK(f[i].resp != NULL);
        CHECK_INT(cipc_response_status(f[i].resp), ==, 200);
        json_t *j = peer_json(f[i].resp);
        CHECK_INT(peer_jint(j, "id"), ==, 1000 + i);
        json_decref(j);
        cipc_response_free(f[i].resp);
    }
    CHECK_INT(cipc_client_pending(c), ==, 0);
    /* Connections were pooled: at most one per concurrent slot. */
    long long conns = peer_get_int(sync_s, "/connections", "connections");
    fprintf(stderr, "gather %d: %lld TCP connections\n", N, conns);
    CHECK_INT(conns, <=, 64);
    CHECK_INT(conns, >=, 1);
    cipc_client_close(c);
}

/* Each callback starts the next request until `left` reaches 0. */
struct chain {
    cipc_client *c;
    int left, done;
};

static void on_chain(cipc_client *c, int rc, cipc_response *resp, void *ud)
{
    struct chain *ch = ud;
    CHECK_RC(rc, 0, cipc_client_errmsg(c));
    CHECK_INT(cipc_response_status(resp), ==, 200);
    ch->done++;
    if (--ch->left > 0)
        CHECK_RC(cipc_client_get(c, "/users/2", on_chain, ch), 0, cipc_client_errmsg(c));
}

static void test_callbacks(void)
{
    cipc_client *c = client_with((cipc_session_opts){0});
    CHECK_RC(cipc_client_header(c, "Authorization", "Bearer async"), 0, "");
    struct result res[10] = {{0}};
    res[0].keep = 1;
    const cipc_kv params[] = {{"q", "a b&c"}, {NULL, NULL}};
    json_t *body = json_pack("{s:i}", "n", 7);
    cipc_request_opts o = {.size = sizeof o, .params = params, .json = body};
    /* opts and the JSON may go away right after the call. */
    CHECK_RC(cipc_client_request(c, "POST", "/echo", &o, on_done, &res[0], NULL), 0,
             cipc_client_errmsg(c));
    json_decref(body);
    memset(&o, 0, sizeof o);
    for (int i = 1; i < 10; i++)
        CHECK_RC(cipc_client_get(c, "/users/9", on_done, &res[i]), 0, cipc_client_errmsg(c));
    CHECK_INT(cipc_client_pending(c), ==, 10);
    CHECK_INT(res[1].called, ==, 0); /* callbacks run only from the loop */
    CHECK_RC(cipc_client_wait(c, 20000), 0, cipc_client_errmsg(c));
    CHECK_INT(cipc_client_pending(c), ==, 0);
    for (int i = 0; i < 10; i++) {
        CHECK_INT(res[i].called, ==, 1);
        CHECK_RC(res[i].rc, 0, cipc_client_errmsg(c));
        CHECK_INT(res[i].status, ==, 200);
        if (i > 0)
            CHECK_STR(res[i].body, "{\"id\": 9, \"name\": \"user9\"}");
    }
    /* A raw body, params and headers on the heap, freed right after the call. */
    struct result heap = {0};
    char *raw = strdup("raw body"), *pk = strdup("p"), *pv = strdup("v w");
    char *hk = strdup("X-Heap"), *hv = strdup("yes");
    cipc_kv *hp = calloc(2, sizeof *hp), *hh = calloc(2, sizeof *hh);
    CHECK(raw && pk && pv && hk && hv && hp && hh);
    hp[0] = (cipc_kv){pk, pv};
    hh[0] = (cipc_kv){hk, hv};
    cipc_request_opts *ho = calloc(1, sizeof *ho);
    CHECK(ho != NULL);
    *ho = (cipc_request_opts){.size = sizeof *ho,
                              .params = hp,
                              .headers = hh,
                              .body = raw,
                              .body_len = strlen(raw),
                              .content_type = "text/plain"};
    CHECK_RC(cipc_client_request(c, "PUT", "/echo", ho, on_done, &heap, NULL), 0,
             cipc_client_errmsg(c));
    memset(raw, 'X', strlen(raw));
    free(raw), free(pk), free(pv), free(hk), free(hv), free(hp), free(hh), free(ho);
    CHECK_RC(cipc_client_wait(c, 20000), 0, cipc_client_errmsg(c));
    CHECK_RC(heap.rc, 0, cipc_client_errmsg(c));
    CHECK(strstr(heap.body, "\"body\": \"raw body\"") != NULL);

    /* The response kept with cipc_response_ref outlives its callback. */
    CHECK(res[0].kept != NULL);
    json_t *j = peer_json(res[0].kept);
    CHECK_STR(peer_jstr(j, "method"), "POST");
    CHECK_STR(peer_jstr(j, "headers.authorization"), "Bearer async");
    CHECK_INT(peer_jint(j, "json.n"), ==, 7);
    CHECK_STR(json_string_value(json_array_get(peer_jget(j, "query.q"), 0)), "a b&c");
    json_decref(j);
    cipc_response_free(res[0].kept);

    /* Callbacks may start new requests. */
    struct chain ch = {.c = c, .left = 5};
    CHECK_RC(cipc_client_get(c, "/users/2", on_chain, &ch), 0, cipc_client_errmsg(c));
    CHECK_RC(cipc_client_wait(c, 20000), 0, cipc_client_errmsg(c));
    CHECK_INT(ch.done, ==, 5);

    /* cipc_client_wait times out while a request is still running. */
    struct result slow = {0};
    CHECK_RC(cipc_client_get(c, "/sleep?ms=1500", on_done, &slow), 0, cipc_client_errmsg(c));
    int64_t t0 = cipc_now_ms();
    CHECK_RC(cipc_client_wait(c, 200), CIPC_ETIMEOUT, cipc_client_errmsg(c));
    CHECK_INT(cipc_now_ms() - t0, <, 1400);
    CHECK_INT(slow.called, ==, 0);
    CHECK_RC(cipc_client_wait(c, 20000), 0, cipc_client_errmsg(c));
    CHECK_INT(slow.called, ==, 1);
    CHECK_STR(slow.body, "slept");
    cipc_client_close(c);
}

/* Run the loop (if `run_loop`) until the peer reports `n` sleeping handlers, for at
 * most 10 s. */
static void wait_inflight_loop(int n, int run_loop)
{
    int64_t end = cipc_now_ms() + 10000;
    for (;;) {
        if (run_loop)
            cipc_loop_run(L, CIPC_RUN_NOWAIT);
        if (peer_get_int(sync_s, "/inflight", "current") == n)
            return;
        CHECK_INT(cipc_now_ms(), <, end);
    }
}

static void wait_inflight(int n)
{
    wait_inflight_loop(n, 1);
}

static void test_cancel(void)
{
    cipc_client *c = client_with((cipc_session_opts){.max_concurrency = 1});
    struct result a = {0}, b = {0};
    cipc_req *ra = NULL, *rb = NULL;
    CHECK_RC(cipc_client_request(c, "GET", "/sleep?ms=5000", NULL, on_done, &a, &ra), 0,
             cipc_client_errmsg(c));
    CHECK_RC(cipc_client_request(c, "GET", "/users/1", NULL, on_done, &b, &rb), 0,
             cipc_client_errmsg(c));
    CHECK(ra && rb);
    wait_inflight(1); /* a is at the server, b waits in the queue */

    /* A queued request. */
    CHECK_RC(cipc_request_cancel(rb), 0, "");
    CHECK_INT(b.called, ==, 1);
    CHECK_RC(b.rc, CIPC_ECANCELED, "");
    /* A request in flight: promptly, and its connection is dropped. */
    int64_t t0 = cipc_now_ms();
    CHECK_RC(cipc_request_cancel(ra), 0, "");
    CHECK_INT(a.called, ==, 1);
    CHECK_RC(a.rc, CIPC_ECANCELED, "");
    CHECK_INT(cipc_now_ms() - t0, <, 1000);
    CHECK_INT(cipc_client_pending(c), ==, 0);
    CHECK_RC(cipc_client_wait(c, 5000), 0, cipc_client_errmsg(c));
    wait_inflight(0);
    CHECK_INT(a.called, ==, 1);
    CHECK_RC(cipc_request_cancel(NULL), -EINVAL, "");

    /* The client works on after cancellations. */
    struct result d = {0};
    CHECK_RC(cipc_client_get(c, "/users/4", on_done, &d), 0, cipc_client_errmsg(c));
    CHECK_RC(cipc_client_wait(c, 10000), 0, cipc_client_errmsg(c));
    CHECK_RC(d.rc, 0, cipc_client_errmsg(c));
    cipc_client_close(c);
}

static void test_concurrency_limit(void)
{
    enum { N = 16 };
    static cipc_fetch f[N];
    cipc_client *c = client_with((cipc_session_opts){.max_concurrency = 4});
    wait_inflight(0);
    cipc_response *r = NULL;
    CHECK_RC(cipc_post(sync_s, "/inflight/reset", NULL, &r), 0, cipc_session_errmsg(sync_s));
    cipc_response_free(r);
    for (int i = 0; i < N; i++)
        f[i] = (cipc_fetch){.url = "/sleep?ms=200"};
    int64_t t0 = cipc_now_ms();
    CHECK_RC(cipc_client_gather(c, f, N, 30000), N, cipc_client_errmsg(c));
    int64_t ms = cipc_now_ms() - t0;
    long long max = peer_get_int(sync_s, "/inflight", "max");
    fprintf(stderr, "max_concurrency 4: peer saw at most %lld at once; %lld ms\n", max,
            (long long)ms);
    CHECK_INT(max, <=, 4);
    CHECK_INT(max, >=, 3);
    CHECK_INT(ms, >=, 4 * 200 - 50); /* 16 requests, 4 at a time */
    for (int i = 0; i < N; i++) {
        CHECK_RC(f[i].rc, 0, "");
        cipc_response_free(f[i].resp);
    }
    cipc_client_close(c);
}

static void test_timeouts_and_retries(void)
{
    cipc_client *c = client_with((cipc_session_opts){
        .timeout_ms = 300, .retry = {.max_attempts = 3, .base_ms = 10, .cap_ms = 20}});
    struct result slow = {0}, flaky = {0}, post = {0}, after = {0}, quick = {0};
    int64_t t0 = cipc_now_ms();
    CHECK_RC(cipc_client_get(c, "/flaky/as?fail=5&slow_ms=5000", on_done, &slow), 0, "");
    CHECK_RC(cipc_client_get(c, "/flaky/a1?fail=2", on_done, &flaky), 0, "");
    CHECK_RC(cipc_client_request(c, "POST", "/flaky/a2?fail=1", NULL, on_done, &post, NULL), 0, "");
    cipc_request_opts longer = {.size = sizeof longer, .timeout_ms = 5000};
    CHECK_RC(cipc_client_request(c, "GET", "/flaky/a3?fail=1&retry_after=1", &longer, on_done,
                                 &after, NULL),
             0, "");
    CHECK_RC(cipc_client_get(c, "/users/5", on_done, &quick), 0, "");
    CHECK_RC(cipc_client_wait(c, 20000), 0, cipc_client_errmsg(c));

    /* Three attempts of 300 ms each, then the timeout. */
    CHECK_RC(slow.rc, CIPC_ETIMEOUT, "");
    CHECK_INT(slow.at_ms - t0, >=, 3 * 300 - 50);
    CHECK_INT(slow.at_ms - t0, <, 6000);
    CHECK_INT(peer_get_int(sync_s, "/flaky/as/count", "count"), ==, 3);
    CHECK_RC(flaky.rc, 0, "");
    CHECK_INT(flaky.status, ==, 200);
    CHECK_INT(flaky.attempts, ==, 3);
    CHECK_INT(peer_get_int(sync_s, "/flaky/a1/count", "count"), ==, 3);
    CHECK_INT(post.status, ==, 503); /* POST is not retried */
    CHECK_INT(post.attempts, ==, 1);
    CHECK_INT(peer_get_int(sync_s, "/flaky/a2/count", "count"), ==, 1);
    CHECK_INT(after.status, ==, 200);
    CHECK_INT(after.attempts, ==, 2);
    CHECK_INT(after.at_ms - t0, >=, 900);
    /* Waiting for a retry does not block the loop. */
    CHECK_RC(quick.rc, 0, "");
    CHECK_INT(quick.at_ms, <, after.at_ms);
    CHECK_INT(quick.at_ms - t0, <, 900);
    cipc_client_close(c);
}

static void test_errors(void)
{
    cipc_client *c = client_with((cipc_session_opts){0});
    CHECK_RC(cipc_client_header(c, "X-Inject", "a\r\nX-Evil: 1"), CIPC_EHEADER, "");
    CHECK_RC(cipc_client_header(c, "Bad Name", "v"), CIPC_EHEADER, "");

    /* An error is either returned at once (no callback) or given to the callback. */
    static const struct {
        const char *url;
        int want;
    } cases[] = {{"http://[::1", CIPC_EURL},
                 {"ht tp://x", CIPC_EURL},
                 {"http://nonexistent.invalid/", CIPC_EDNS},
                 {"/truncated", CIPC_ETRUNCATED}};
    static const cipc_kv bad_header[] = {{"Bad Name", "v"}, {NULL, NULL}};
    struct result res[5] = {{0}};
    int started[5] = {0};
    for (int i = 0; i < 5; i++) {
        cipc_request_opts o = {.size = sizeof o, .headers = i == 4 ? bad_header : NULL};
        const char *url = i < 4 ? cases[i].url : "/echo";
        int rc = cipc_client_request(c, "GET", url, &o, on_done, &res[i], NULL);
        if (rc < 0)
            CHECK_RC(rc, i < 4 ? cases[i].want : CIPC_EHEADER, cipc_client_errmsg(c));
        started[i] = rc == 0;
    }
    CHECK_RC(cipc_client_wait(c, 20000), 0, cipc_client_errmsg(c));
    for (int i = 0; i < 5; i++) {
        CHECK_INT(res[i].called, ==, started[i]);
        if (started[i])
            CHECK_RC(res[i].rc, i < 4 ? cases[i].want : CIPC_EHEADER, "");
    }
    CHECK_RC(cipc_client_request(c, "GE T", "/echo", NULL, on_done, &res[0], NULL), -EINVAL, "");
    CHECK_INT(cipc_client_request(c, "GET", "/echo", NULL, NULL, NULL, NULL), <, 0);
    CHECK_INT(cipc_client_pending(c), ==, 0);

    /* gather: one bad fetch does not spoil the others. */
    cipc_fetch f[3] = {{.url = "/users/1"}, {.url = "http://[::1"}, {.url = "/users/2"}};
    CHECK_RC(cipc_client_gather(c, f, 3, 20000), 2, cipc_client_errmsg(c));
    CHECK_RC(f[1].rc, CIPC_EURL, "");
    CHECK(f[1].resp == NULL);
    for (int i = 0; i < 3; i += 2) {
        CHECK_RC(f[i].rc, 0, "");
        cipc_response_free(f[i].resp);
    }
    /* gather's own timeout cancels what is left. */
    cipc_fetch g[2] = {{.url = "/sleep?ms=5000"}, {.url = "/sleep?ms=5000"}};
    int64_t t0 = cipc_now_ms();
    CHECK_RC(cipc_client_gather(c, g, 2, 300), 0, cipc_client_errmsg(c));
    CHECK_INT(cipc_now_ms() - t0, >=, 250);
    CHECK_INT(cipc_now_ms() - t0, <, 3000);
    for (int i = 0; i < 2; i++) {
        CHECK_RC(g[i].rc, CIPC_ECANCELED, "");
        CHECK(g[i].resp == NULL);
    }
    cipc_client_close(c);
}

static void test_close_pending(void)
{
    cipc_client *c = client_with((cipc_session_opts){.max_concurrency = 2});
    struct result res[5] = {{0}};
    for (int i = 0; i < 5; i++)
        CHECK_RC(cipc_client_get(c, "/sleep?ms=5000", on_done, &res[i]), 0, "");
    wait_inflight(2);
    CHECK_INT(cipc_client_pending(c), ==, 5);
    int64_t t0 = cipc_now_ms();
    cipc_client_close(c);
    CHECK_INT(cipc_now_ms() - t0, <, 2000);
    for (int i = 0; i < 5; i++) {
        CHECK_INT(res[i].called, ==, 1);
        CHECK_RC(res[i].rc, CIPC_ECANCELED, "");
    }
}

/* Cancelling another request from inside a callback; closing while a request waits
 * between retries; streaming a body with on_body. */
struct canceller {
    cipc_req *victim;
    struct result *victim_res;
    int called;
    int victim_done_inside;
};

static void on_cancel_other(cipc_client *c, int rc, cipc_response *resp, void *ud)
{
    struct canceller *k = ud;
    k->called++;
    CHECK_RC(rc, 0, cipc_client_errmsg(c));
    CHECK_RC(cipc_request_cancel(k->victim), 0, "");
    k->victim_done_inside = k->victim_res->called;
}

struct counter {
    uint64_t bytes;
    int bad;
};

static int count_body(const void *data, size_t len, void *ud)
{
    struct counter *k = ud;
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        if (p[i] != peer_pattern_byte(k->bytes + i))
            k->bad = 1;
    k->bytes += len;
    return 0;
}

static void test_more(void)
{
    cipc_client *c = client_with((cipc_session_opts){.retry = {.max_attempts = 5, .base_ms = 10}});
    struct result victim = {0};
    struct canceller k = {.victim_res = &victim};
    CHECK_RC(cipc_client_request(c, "GET", "/sleep?ms=5000", NULL, on_done, &victim, &k.victim), 0,
             "");
    CHECK_RC(cipc_client_request(c, "GET", "/users/3", NULL, on_cancel_other, &k, NULL), 0, "");
    CHECK_RC(cipc_client_wait(c, 10000), 0, cipc_client_errmsg(c));
    CHECK_INT(k.called, ==, 1);
    CHECK_INT(k.victim_done_inside, ==, 1);
    CHECK_INT(victim.called, ==, 1);
    CHECK_RC(victim.rc, CIPC_ECANCELED, "");

    struct counter cnt = {0};
    cipc_request_opts o = {.size = sizeof o, .on_body = count_body, .on_body_ud = &cnt};
    struct result streamed = {0};
    CHECK_RC(cipc_client_request(c, "GET", "/stream?mb=5", &o, on_done, &streamed, NULL), 0, "");
    CHECK_RC(cipc_client_wait(c, 20000), 0, cipc_client_errmsg(c));
    CHECK_RC(streamed.rc, 0, "");
    CHECK_INT(cnt.bytes, ==, 5ull * 1024 * 1024);
    CHECK(!cnt.bad);
    CHECK_STR(streamed.body, "");

    /* Waiting 10 s between attempts when the client closes, and when cancelled. */
    struct result waiting[2] = {{0}};
    cipc_req *req = NULL;
    CHECK_RC(cipc_client_request(c, "GET", "/flaky/aw0?fail=5&retry_after=10", NULL, on_done,
                                 &waiting[0], &req),
             0, "");
    CHECK_RC(cipc_client_get(c, "/flaky/aw1?fail=5&retry_after=10", on_done, &waiting[1]), 0, "");
    int64_t end = cipc_now_ms() + 10000;
    while (peer_get_int(sync_s, "/flaky/aw0/count", "count") < 1 ||
           peer_get_int(sync_s, "/flaky/aw1/count", "count") < 1) {
        cipc_loop_run(L, CIPC_RUN_NOWAIT);
        CHECK_INT(cipc_now_ms(), <, end);
    }
    int64_t t0 = cipc_now_ms();
    CHECK_RC(cipc_request_cancel(req), 0, "");
    CHECK_RC(waiting[0].rc, CIPC_ECANCELED, "");
    cipc_client_close(c);
    CHECK_INT(cipc_now_ms() - t0, <, 2000);
    CHECK_INT(waiting[1].called, ==, 1);
    CHECK_RC(waiting[1].rc, CIPC_ECANCELED, "");
}

/* Redirects and cookies work as in the sync client. */
static void test_redirects_cookies(void)
{
    cipc_client *c = client_with((cipc_session_opts){.max_redirects = 4});
    cipc_fetch f[4] = {{.url = "/redirect/3"},
                       {.url = "/redirect/5"},
                       {.url = "/redirect-loop"},
                       {.method = "PUT", .url = "/redirect-to?url=/echo&code=307"}};
    CHECK_RC(cipc_client_gather(c, f, 4, 20000), 2, cipc_client_errmsg(c));
    CHECK_RC(f[0].rc, 0, "");
    CHECK_INT(cipc_response_status(f[0].resp), ==, 200);
    CHECK_INT(cipc_response_redirects(f[0].resp), ==, 3);
    const char *u = cipc_response_url(f[0].resp);
    CHECK(strlen(u) > 11 && strcmp(u + strlen(u) - 11, "/redirect/0") == 0);
    CHECK_RC(f[1].rc, CIPC_EREDIRECTS, "");
    CHECK_RC(f[2].rc, CIPC_EREDIRECTS, "");
    CHECK_RC(f[3].rc, 0, "");
    json_t *j = peer_json(f[3].resp);
    CHECK_STR(peer_jstr(j, "method"), "PUT");
    json_decref(j);
    cipc_response_free(f[0].resp);
    cipc_response_free(f[3].resp);

    cipc_fetch set = {.url = "/cookies/set?async=1"}, get = {.url = "/cookies"};
    CHECK_RC(cipc_client_gather(c, &set, 1, 20000), 1, cipc_client_errmsg(c));
    cipc_response_free(set.resp);
    CHECK_RC(cipc_client_gather(c, &get, 1, 20000), 1, cipc_client_errmsg(c));
    j = peer_json(get.resp);
    CHECK_STR(peer_jstr(j, "cookies.async"), "1");
    json_decref(j);
    cipc_response_free(get.resp);
    cipc_client_close(c);
}

/* cipc_client_wait() and cipc_client_gather() return as soon as their requests are done,
 * however the loop iteration that completed them was woken (a poll event or a timer). */
static void test_wait_prompt(void)
{
    cipc_client *c = client_with((cipc_session_opts){0});
    int slow = 0;
    int64_t worst = 0;
    for (int i = 0; i < 150 && slow < 3; i++) {
        struct result res = {0};
        const char *what = i % 2 ? "gather" : "wait";
        int64_t t0 = cipc_now_ms();
        if (i % 2 == 0) {
            CHECK_RC(cipc_client_get(c, "/users/1", on_done, &res), 0, "");
            CHECK_RC(cipc_client_wait(c, 3000), 0, cipc_client_errmsg(c));
            CHECK_INT(res.called, ==, 1);
        } else {
            cipc_fetch f = {.url = "/users/1"};
            CHECK_RC(cipc_client_gather(c, &f, 1, 3000), 1, cipc_client_errmsg(c));
            cipc_response_free(f.resp);
        }
        int64_t ms = cipc_now_ms() - t0;
        if (ms > 1500) {
            fprintf(stderr, "round %d: %s returned after %lld ms", i, what, (long long)ms);
            if (res.called)
                fprintf(stderr, "; the callback ran after %lld ms", (long long)(res.at_ms - t0));
            fprintf(stderr, "\n");
            slow++;
        }
        worst = ms > worst ? ms : worst;
    }
    fprintf(stderr, "wait/gather rounds: worst %lld ms\n", (long long)worst);
    CHECK_INT(slow, ==, 0);
    cipc_client_close(c);
}

int main(void)
{
    peer_clear_proxy_env();
    CHECK(peer_start(&P) == 0);
    CHECK_RC(cipc_loop_new(NULL, &L), 0, "");
    cipc_session_opts so = {.base_url = P.base_url};
    CHECK_RC(cipc_session_new(&so, &sync_s), 0, "");

    RUN(test_gather_1000);
    RUN(test_callbacks);
    RUN(test_cancel);
    RUN(test_concurrency_limit);
    RUN(test_timeouts_and_retries);
    RUN(test_errors);
    RUN(test_close_pending);
    RUN(test_more);
    RUN(test_redirects_cookies);
    RUN(test_wait_prompt);

    cipc_client_close(NULL);
    CHECK_RC(cipc_loop_free(L), 0, "");
    wait_inflight_loop(0, 0); /* closed requests dropped their connections */
    cipc_session_free(sync_s);
    peer_stop(&P);
    return 0;
}
