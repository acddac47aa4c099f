/* Proves the router and the request/response API through cipc_session and raw sockets:
 * path parameters percent-decoded (every view still valid after further lookups, also for
 * long values), query parameters form-decoded, 404 for no route, 405
 * with an Allow header listing the route's methods, HEAD served by the GET route without
 * a body, "*" routes, handlers answering later from another request's callback (also with
 * a request pipelined behind), trimmed header lookup, response headers, JSON in and out,
 * 204 without Content-Length, a second answer refused with CIPC_EBUSY (nothing more on
 * the wire), and cipc_route()'s errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_helper.h"

#define H "Host: t\r\n"

static int port;
static cipc_session *S;

static void h_user(cipc_http_req *req, void *ud)
{
    (void)ud;
    json_t *j = json_pack("{s:s, s:b}", "id", cipc_http_param(req, "id"), "nope_is_null",
                          cipc_http_param(req, "nope") == NULL);
    CHECK_INT(cipc_http_respond_json(req, 200, j), ==, 0);
    json_decref(j);
}

static void h_post(cipc_http_req *req, void *ud)
{
    (void)ud;
    /* Three lookups: every view stays valid until the answer (the header's promise). */
    const char *id = cipc_http_param(req, "id");
    const char *post = cipc_http_param(req, "post");
    const char *id2 = cipc_http_param(req, "id");
    json_t *j = json_pack("{s:s, s:s, s:s}", "id", id, "post", post, "id2", id2);
    CHECK_INT(cipc_http_respond_json(req, 200, j), ==, 0);
    json_decref(j);
}

static json_t *jstr_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static void h_query(cipc_http_req *req, void *ud)
{
    (void)ud;
    static const char *const names[] = {"a", "b", "c", "d", "e", "k", "sp ace", "u"};
    json_t *j = json_object();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        json_object_set_new(j, names[i], jstr_or_null(cipc_http_query(req, names[i])));
    json_object_set_new(j, "raw", json_string(cipc_http_query_string(req)));
    json_object_set_new(j, "path", json_string(cipc_http_path(req)));
    CHECK_INT(cipc_http_respond_json(req, 200, j), ==, 0);
    json_decref(j);
}

/* GET /later waits for GET /release (same worker: workers = 1). */
static cipc_http_req *parked;
static latch parkings = LATCH_INIT;

static void h_later(cipc_http_req *req, void *ud)
{
    (void)ud;
    CHECK(parked == NULL);
    parked = req;
    latch_add(&parkings);
}

static void h_release(cipc_http_req *req, void *ud)
{
    (void)ud;
    CHECK(parked != NULL);
    CHECK_STR(cipc_http_path(parked), "/later"); /* its views are still valid */
    CHECK_STR(cipc_http_header(parked, "X-Test"), "parked");
    CHECK_INT(cipc_http_respond(parked, 200, "text/plain", "released", 8), ==, 0);
    parked = NULL;
    CHECK_INT(cipc_http_respond(req, 200, "text/plain", "ok", 2), ==, 0);
}

static void h_hdr(cipc_http_req *req, void *ud)
{
    (void)ud;
    CHECK_INT(cipc_http_set_header(req, "Bad Name", "v"), ==, CIPC_EHEADER);
    CHECK_INT(cipc_http_set_header(req, "X-Bad", "a\r\nX-Injected: 1"), ==, CIPC_EHEADER);
    CHECK_INT(cipc_http_set_header(req, "", "v"), ==, CIPC_EHEADER);
    CHECK_INT(cipc_http_set_header(req, "X-Custom", "yes"), ==, 0);
    CHECK_INT(cipc_http_set_header(req, "Set-Cookie", "a=1"), ==, 0);
    CHECK_INT(cipc_http_set_header(req, "Set-Cookie", "b=2"), ==, 0);
    json_t *j =
        json_pack("{s:o, s:o, s:o}", "x_test", jstr_or_null(cipc_http_header(req, "x-TEST")), "ua",
                  jstr_or_null(cipc_http_header(req, "User-Agent")), "absent",
                  jstr_or_null(cipc_http_header(req, "X-Absent")));
    CHECK_INT(cipc_http_respond_json(req, 200, j), ==, 0);
    json_decref(j);
}

static void h_json(cipc_http_req *req, void *ud)
{
    (void)ud;
    json_t *body = NULL;
    const char *why = NULL;
    if (cipc_http_json(req, &body, &why) < 0) {
        CHECK(why != NULL && *why);
        json_t *e = json_pack("{s:s}", "error", why);
        CHECK_INT(cipc_http_respond_json(req, 400, e), ==, 0);
        json_decref(e);
        return;
    }
    json_object_set_new(body, "seen", json_true());
    CHECK_INT(cipc_http_respond_json(req, 201, body), ==, 0);
    json_decref(body);
}

/* Answers twice: the second must be refused and send nothing. */
static int twice_rc = 1;

static void h_twice(cipc_http_req *req, void *ud)
{
    (void)ud;
    CHECK_INT(cipc_http_respond(req, 200, "text/plain", "first", 5), ==, 0);
    twice_rc = cipc_http_respond(req, 500, "text/plain", "second", 6);
}

static void h_nocontent(cipc_http_req *req, void *ud)
{
    (void)ud;
    CHECK_INT(cipc_http_respond(req, 204, NULL, NULL, 0), ==, 0);
}

static cipc_response *get(const char *method, const char *url, int want)
{
    cipc_response *r = NULL;
    CHECK_RC(cipc_request(S, method, url, NULL, &r), 0, cipc_session_errmsg(S));
    if (cipc_response_status(r) != want)
        fprintf(stderr, "%s %s: %d %s\n", method, url, cipc_response_status(r),
                cipc_response_text(r));
    CHECK_INT(cipc_response_status(r), ==, want);
    return r;
}

static json_t *get_json(const char *url)
{
    cipc_response *r = get("GET", url, 200);
    json_t *j = peer_json(r);
    cipc_response_free(r);
    return j;
}

static void test_params(void)
{
    static const struct {
        const char *url, *id;
    } cases[] = {{"/users/42", "42"}, {"/users/a%20b", "a b"}, {"/users/caf%C3%A9", "caf\xc3\xa9"},
                 {"/users/%2F", "/"}, {"/users/a+b", "a+b"},   {"/users/%41%42c", "ABc"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = get_json(cases[i].url);
        CHECK_STR(peer_jstr(j, "id"), cases[i].id);
        CHECK(json_is_true(json_object_get(j, "nope_is_null")));
        json_decref(j);
    }
    json_t *j = get_json("/users/a%20b/posts/p%3F1");
    CHECK_STR(peer_jstr(j, "id"), "a b");
    CHECK_STR(peer_jstr(j, "post"), "p?1");
    CHECK_STR(peer_jstr(j, "id2"), "a b");
    json_decref(j);
    /* Long parameters (the decoded copies no longer fit the first allocation). */
    char url[1200], a[201], b[801];
    memset(a, 'a', 200);
    a[200] = '\0';
    memset(b, 'b', 800);
    b[800] = '\0';
    snprintf(url, sizeof url, "/users/%s/posts/%s", a, b);
    j = get_json(url);
    CHECK_STR(peer_jstr(j, "id"), a);
    CHECK_STR(peer_jstr(j, "post"), b);
    CHECK_STR(peer_jstr(j, "id2"), a);
    json_decref(j);
    /* The root route. */
    cipc_response *r = get("GET", "/", 200);
    CHECK_STR(cipc_response_text(r), "root");
    cipc_response_free(r);
}

static void test_query(void)
{
    json_t *j = get_json("/query?a=1+2&b=%41%42&c=&d&k=first&k=second&sp+ace=x%2By&u=caf%C3%A9");
    CHECK_STR(peer_jstr(j, "a"), "1 2");
    CHECK_STR(peer_jstr(j, "b"), "AB");
    CHECK_STR(peer_jstr(j, "c"), "");
    CHECK_STR(peer_jstr(j, "d"), "");
    CHECK(json_is_null(json_object_get(j, "e")));
    CHECK_STR(peer_jstr(j, "k"), "first");
    CHECK_STR(peer_jstr(j, "sp ace"), "x+y");
    CHECK_STR(peer_jstr(j, "u"), "caf\xc3\xa9");
    CHECK_STR(peer_jstr(j, "raw"), "a=1+2&b=%41%42&c=&d&k=first&k=second&sp+ace=x%2By&u=caf%C3%A9");
    CHECK_STR(peer_jstr(j, "path"), "/query");
    json_decref(j);
    j = get_json("/query");
    CHECK_STR(peer_jstr(j, "raw"), "");
    CHECK(json_is_null(json_object_get(j, "a")));
    json_decref(j);
}

static void test_404_405(void)
{
    static const char *const missing[] = {"/nope",          "/users",     "/users/1/extra",
                                          "/users/1/posts", "/items/1/2", "/ITEMS"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++)
        cipc_response_free(get("GET", missing[i], 404));

    raw_conn c;
    raw_resp r;
    char allow[256];
    raw_open(&c, port);
    CHECK_INT(raw_roundtrip(&c, "PUT /items HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n", &r, 0), ==,
              405);
    CHECK(raw_hdr(&r, "Allow", allow, sizeof allow) != NULL);
    fprintf(stderr, "Allow for /items: %s\n", allow);
    CHECK(strstr(allow, "GET") && strstr(allow, "POST"));
    CHECK(!strstr(allow, "DELETE") && !strstr(allow, "PUT"));
    CHECK(!raw_hdr_has(&r, "Connection", "close"));
    raw_resp_free(&r);
    CHECK_INT(raw_roundtrip(&c, "POST /items/7 HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n", &r, 0),
              ==, 405);
    CHECK(raw_hdr(&r, "Allow", allow, sizeof allow) != NULL);
    CHECK(strstr(allow, "DELETE") && !strstr(allow, "GET"));
    raw_resp_free(&r);
    /* HEAD of a POST-only route is a 405 too (no body). */
    CHECK_INT(raw_roundtrip(&c, "HEAD /json HTTP/1.1\r\n" H "\r\n", &r, 1), ==, 405);
    CHECK(raw_hdr(&r, "Allow", allow, sizeof allow) != NULL);
    CHECK(strstr(allow, "POST"));
    raw_resp_free(&r);
    /* 404 and 405 keep the connection. */
    CHECK_INT(raw_roundtrip(&c, "GET /nope HTTP/1.1\r\n" H "\r\n", &r, 0), ==, 404);
    raw_resp_free(&r);
    CHECK_INT(raw_roundtrip(&c, "DELETE /items/7 HTTP/1.1\r\n" H "\r\n", &r, 0), ==, 200);
    CHECK_STR(r.body, "deleted");
    raw_resp_free(&r);
    raw_close(&c);
}

static void test_head_and_any(void)
{
    cipc_response *g = get("GET", "/users/7", 200);
    size_t glen = 0;
    cipc_response_body(g, &glen);
    raw_conn c;
    raw_resp r;
    raw_open(&c, port);
    CHECK_INT(raw_roundtrip(&c, "HEAD /users/7 HTTP/1.1\r\n" H "\r\n", &r, 1), ==, 200);
    CHECK_INT(r.clen, ==, glen);
    CHECK(raw_hdr_has(&r, "Content-Type", "application/json"));
    raw_resp_free(&r);
    /* An explicit HEAD route wins over the GET one. */
    CHECK_INT(raw_roundtrip(&c, "HEAD /explicit HTTP/1.1\r\n" H "\r\n", &r, 1), ==, 200);
    CHECK_INT(r.clen, ==, 4);
    raw_resp_free(&r);
    CHECK_INT(raw_roundtrip(&c, "GET /explicit HTTP/1.1\r\n" H "\r\n", &r, 0), ==, 200);
    CHECK_STR(r.body, "get!!");
    raw_resp_free(&r);
    raw_close(&c);
    cipc_response_free(g);

    static const char *const methods[] = {"GET", "POST", "PATCH", "OPTIONS", "PURGE", "DELETE"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        cipc_response *a = get(methods[i], "/any", 200);
        json_t *j = peer_json(a);
        CHECK_STR(peer_jstr(j, "method"), methods[i]);
        json_decref(j);
        cipc_response_free(a);
    }
}

static void test_async(void)
{
    raw_conn a, b;
    raw_resp r;
    raw_open(&a, port);
    raw_open(&b, port);
    /* /later is parked; /ping behind it on the same connection must wait for it. */
    int n0 = latch_count(&parkings);
    CHECK_INT(raw_sends(&a, "GET /later HTTP/1.1\r\n" H "X-Test: parked\r\n\r\n"
                            "GET /ping HTTP/1.1\r\n" H "\r\n"),
              ==, 0);
    CHECK_INT(latch_wait(&parkings, n0 + 1, 5000), ==, n0 + 1);
    CHECK_INT(raw_read(&a, &r, 0, 300), ==, RAW_TIMEOUT);
    CHECK_INT(raw_roundtrip(&b, "GET /release HTTP/1.1\r\n" H "\r\n", &r, 0), ==, 200);
    CHECK_STR(r.body, "ok");
    raw_resp_free(&r);
    CHECK_INT(raw_read(&a, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    CHECK_STR(r.body, "released");
    raw_resp_free(&r);
    CHECK_INT(raw_read(&a, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    CHECK_STR(r.body, "pong");
    raw_resp_free(&r);
    /* Twice more on the same connections. */
    for (int i = 0; i < 2; i++) {
        int n = latch_count(&parkings);
        CHECK_INT(raw_sends(&a, "GET /later HTTP/1.1\r\n" H "X-Test: parked\r\n\r\n"), ==, 0);
        CHECK_INT(latch_wait(&parkings, n + 1, 5000), ==, n + 1);
        CHECK_INT(raw_roundtrip(&b, "GET /release HTTP/1.1\r\n" H "\r\n", &r, 0), ==, 200);
        raw_resp_free(&r);
        CHECK_INT(raw_read(&a, &r, 0, RAW_TIMEOUT_MS), ==, 0);
        CHECK_STR(r.body, "released");
        raw_resp_free(&r);
    }
    raw_close(&a);
    raw_close(&b);
}

static void test_headers_json(void)
{
    cipc_request_opts o = {.size = sizeof o,
                           .headers = (const cipc_kv[]){{"X-Test", "v1"}, {NULL, NULL}}};
    cipc_response *r = NULL;
    CHECK_RC(cipc_get(S, "/hdr", &o, &r), 0, cipc_session_errmsg(S));
    CHECK_INT(cipc_response_status(r), ==, 200);
    CHECK_STR(cipc_response_header(r, "x-custom"), "yes");
    CHECK_STR(cipc_response_header_n(r, "Set-Cookie", 0), "a=1");
    CHECK_STR(cipc_response_header_n(r, "Set-Cookie", 1), "b=2");
    CHECK(cipc_response_header(r, "X-Injected") == NULL);
    json_t *j = peer_json(r);
    CHECK_STR(peer_jstr(j, "x_test"), "v1");
    CHECK(strncmp(peer_jstr(j, "ua"), "cipc/", 5) == 0);
    CHECK(json_is_null(json_object_get(j, "absent")));
    json_decref(j);
    cipc_response_free(r);

    json_t *body = json_pack("{s:s, s:[i,i]}", "name", "caf\xc3\xa9", "n", 1, 2);
    CHECK_RC(cipc_post_json(S, "/json", body, &r), 0, cipc_session_errmsg(S));
    CHECK_INT(cipc_response_status(r), ==, 201);
    j = peer_json(r);
    CHECK_STR(peer_jstr(j, "name"), "caf\xc3\xa9");
    CHECK(json_is_true(json_object_get(j, "seen")));
    CHECK_INT(json_array_size(json_object_get(j, "n")), ==, 2);
    json_decref(j);
    json_decref(body);
    cipc_response_free(r);

    o = (cipc_request_opts){.size = sizeof o, .body = "{\"a\": ", .body_len = 6};
    CHECK_RC(cipc_post(S, "/json", &o, &r), 0, cipc_session_errmsg(S));
    CHECK_INT(cipc_response_status(r), ==, 400);
    j = peer_json(r);
    CHECK(strstr(peer_jstr(j, "error"), "line 1"));
    json_decref(j);
    cipc_response_free(r);
}

/* 204: no Content-Length (RFC 9110 8.6: MUST NOT), no body, connection kept; request
 * header values come trimmed. */
static void test_204_and_trim(void)
{
    raw_conn c;
    raw_resp r;
    char v[64];
    raw_open(&c, port);
    CHECK_INT(raw_roundtrip(&c, "DELETE /nocontent HTTP/1.1\r\n" H "\r\n", &r, 0), ==, 204);
    if (raw_hdr(&r, "Content-Length", v, sizeof v))
        fprintf(stderr, "  204 response carries Content-Length: %s\n", v);
    CHECK(raw_hdr(&r, "Content-Length", v, sizeof v) == NULL);
    CHECK(!raw_hdr_has(&r, "Transfer-Encoding", "chunked"));
    raw_resp_free(&r);
    raw_check_alive(&c, "/ping");
    CHECK_INT(
        raw_roundtrip(&c, "GET /hdr HTTP/1.1\r\n" H "X-Test: \t  spaced out \t \r\n\r\n", &r, 0),
        ==, 200);
    CHECK(strstr(r.body, "\"x_test\":\"spaced out\"") != NULL);
    raw_resp_free(&r);
    raw_close(&c);
}

static void test_twice(void)
{
    raw_conn c;
    raw_resp r;
    raw_open(&c, port);
    CHECK_INT(raw_sends(&c, "GET /twice HTTP/1.1\r\n" H "\r\nGET /ping HTTP/1.1\r\n" H "\r\n"), ==,
              0);
    CHECK_INT(raw_read(&c, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    CHECK_INT(r.status, ==, 200);
    CHECK_STR(r.body, "first");
    raw_resp_free(&r);
    CHECK_INT(raw_read(&c, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    if (r.status != 200 || strcmp(r.body, "pong") != 0)
        fprintf(stderr, "after a double answer the next response is %d \"%s\"\n", r.status, r.body);
    CHECK_STR(r.body, "pong");
    raw_resp_free(&r);
    CHECK_INT(twice_rc, ==, CIPC_EBUSY);
    raw_close(&c);
}

static void test_route_errors(void)
{
    cipc_server *s = NULL;
    CHECK_INT(cipc_server_new(&(cipc_server_opts){.port = 70000}, &s), ==, -EINVAL);
    CHECK(s == NULL);
    CHECK_INT(cipc_server_new(&(cipc_server_opts){.workers = -1}, &s), ==, -EINVAL);
    CHECK_INT(cipc_server_new(NULL, &s), ==, 0);
    CHECK_INT(cipc_server_port(s), ==, 0);
    CHECK_STR(cipc_server_errmsg(s), "");
    CHECK_INT(cipc_route(s, "GET", "/a/{id}", h_text, "x"), ==, 0);
    CHECK_INT(cipc_route(s, "GET", "/a/{id}", h_text, "x"), ==, -EEXIST);
    CHECK_INT(cipc_route(s, "POST", "/a/{id}", h_text, "x"), ==, 0);
    CHECK_INT(cipc_route(s, "GET", "a", h_text, "x"), ==, -EINVAL);
    CHECK_INT(cipc_route(s, "GET", "/a/{}", h_text, "x"), ==, -EINVAL);
    CHECK_INT(cipc_route(s, "GET", "/a/{b", h_text, "x"), ==, -EINVAL);
    CHECK_INT(cipc_route(s, "GET", "/a b", h_text, "x"), ==, -EINVAL);
    CHECK_INT(cipc_route(s, "G T", "/b", h_text, "x"), ==, -EINVAL);
    CHECK_INT(cipc_route(s, "", "/b", h_text, "x"), ==, -EINVAL);
    CHECK_INT(cipc_route(s, "GET", NULL, h_text, "x"), ==, -EINVAL);
    CHECK_INT(cipc_route(s, "GET", "/b", NULL, "x"), ==, -EINVAL);
    cipc_server_free(s); /* never started */
    cipc_server_free(NULL);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 1});
    cipc_server *s = t.srv;
    CHECK_INT(cipc_route(s, "GET", "/", h_text, "root"), ==, 0);
    CHECK_INT(cipc_route(s, "GET", "/ping", h_text, "pong"), ==, 0);
    CHECK_INT(cipc_route(s, "GET", "/users/{id}", h_user, NULL), ==, 0);
    CHECK_INT(cipc_route(s, "GET", "/users/{id}/posts/{post}", h_post, NULL), ==, 0);
    CHECK_INT(cipc_route(s, "GET", "/items", h_text, "items"), ==, 0);
    CHECK_INT(cipc_route(s, "POST", "/items", h_text, "created"), ==, 0);
    CHECK_INT(cipc_route(s, "DELETE", "/items/{id}", h_text, "deleted"), ==, 0);
    CHECK_INT(cipc_route(s, "*", "/any", h_info, NULL), ==, 0);
    CHECK_INT(cipc_route(s, "GET", "/query", h_query, NULL), ==, 0);
    CHECK_INT(cipc_route(s, "GET", "/later", h_later, NULL), ==, 0);
    CHECK_INT(cipc_route(s, "GET", "/release", h_release, NULL), ==, 0);
    CHECK_INT(cipc_route(s, "GET", "/hdr", h_hdr, NULL), ==, 0);
    CHECK_INT(cipc_route(s, "POST", "/json", h_json, NULL), ==, 0);
    CHECK_INT(cipc_route(s, "GET", "/twice", h_twice, NULL), ==, 0);
    CHECK_INT(cipc_route(s, "GET", "/explicit", h_text, "get!!"), ==, 0);
    CHECK_INT(cipc_route(s, "DELETE", "/nocontent", h_nocontent, NULL), ==, 0);
    CHECK_INT(cipc_route(s, "HEAD", "/explicit", h_text, "head"), ==, 0);
    port = srvt_start(&t);
    CHECK_INT(cipc_route(s, "GET", "/late", h_text, "x"), ==, CIPC_EBUSY);

    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    CHECK_INT(cipc_session_new(&(cipc_session_opts){.base_url = base, .proxy = ""}, &S), ==, 0);

    RUN(test_params);
    RUN(test_query);
    RUN(test_404_405);
    RUN(test_head_and_any);
    RUN(test_async);
    RUN(test_headers_json);
    RUN(test_route_errors);
    RUN(test_204_and_trim);
    RUN(test_twice);

    cipc_session_free(S);
    srvt_stop(&t, 5000);
    srvt_free(&t);
    return 0;
}
