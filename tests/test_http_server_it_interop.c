/* Proves real clients interoperate with the server (two workers): Python requests (100
 * requests on one kept-alive connection, JSON round trip, 404/405, Content-Length and
 * chunked uploads, a streamed response, HEAD), Python aiohttp (50 concurrent GETs and 50
 * concurrent JSON POSTs), cipc's own blocking cipc_session and async cipc_client (200
 * requests gathered at once). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_helper.h"

static char base[64];

static void h_user(cipc_http_req *req, void *ud)
{
    (void)ud;
    const char *q = cipc_http_query(req, "q");
    json_t *j = json_pack("{s:s, s:o, s:i}", "id", cipc_http_param(req, "id"), "q",
                          q ? json_string(q) : json_null(), "worker", cipc_http_worker(req));
    CHECK_INT(cipc_http_respond_json(req, 200, j), ==, 0);
    json_decref(j);
}

static void h_json(cipc_http_req *req, void *ud)
{
    (void)ud;
    json_t *body = NULL;
    const char *why = NULL;
    if (cipc_http_json(req, &body, &why) < 0 || !json_is_object(body)) {
        json_t *e = json_pack("{s:s}", "error", why ? why : "not an object");
        CHECK_INT(cipc_http_respond_json(req, 400, e), ==, 0);
        json_decref(e);
        json_decref(body);
        return;
    }
    json_object_set_new(body, "seen", json_true());
    CHECK_INT(cipc_http_respond_json(req, 201, body), ==, 0);
    json_decref(body);
}

/* 16 chunks of bytes 0..255 four times over. */
static void h_stream(cipc_http_req *req, void *ud)
{
    (void)ud;
    unsigned char chunk[1024];
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (unsigned char)i;
    CHECK_INT(cipc_http_start(req, 200, "application/octet-stream"), ==, 0);
    for (int i = 0; i < 16; i++)
        CHECK_INT(cipc_http_write(req, chunk, sizeof chunk), ==, 0);
    CHECK_INT(cipc_http_end(req), ==, 0);
}

static void run_python(const char *mode)
{
    char script[512], out[1024];
    snprintf(script, sizeof script, "%s/tests/peers/server_clients.py", peer_source_dir());
    const char *argv[] = {PEER_PYTHON, script, mode, base, NULL};
    int rc = prog_run(argv, out, sizeof out, 90000);
    fprintf(stderr, "  %s", out);
    CHECK_INT(rc, ==, 0);
}

static void test_python_requests(void)
{
    run_python("requests");
}

static void test_python_aiohttp(void)
{
    run_python("aiohttp");
}

static void test_cipc_session(void)
{
    cipc_session *s = NULL;
    CHECK_INT(cipc_session_new(&(cipc_session_opts){.base_url = base, .proxy = ""}, &s), ==, 0);
    for (int i = 0; i < 50; i++) {
        char url[64], q[16];
        snprintf(url, sizeof url, "/users/u%d", i);
        snprintf(q, sizeof q, "%d &+", i);
        cipc_request_opts o = {.size = sizeof o,
                               .params = (const cipc_kv[]){{"q", q}, {NULL, NULL}}};
        cipc_response *r = NULL;
        CHECK_RC(cipc_get(s, url, &o, &r), 0, cipc_session_errmsg(s));
        CHECK_INT(cipc_response_status(r), ==, 200);
        json_t *j = peer_json(r);
        CHECK_STR(peer_jstr(j, "id"), url + 7);
        CHECK_STR(peer_jstr(j, "q"), q);
        json_decref(j);
        cipc_response_free(r);
    }
    json_t *body = json_pack("{s:s, s:i}", "name", "Ada", "n", 7);
    cipc_response *r = NULL;
    CHECK_RC(cipc_post_json(s, "/json", body, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_status(r), ==, 201);
    json_t *j = peer_json(r);
    CHECK_STR(peer_jstr(j, "name"), "Ada");
    CHECK(json_is_true(json_object_get(j, "seen")));
    json_decref(j);
    json_decref(body);
    cipc_response_free(r);

    CHECK_RC(cipc_get(s, "/stream", NULL, &r), 0, cipc_session_errmsg(s));
    size_t len = 0;
    const unsigned char *b = cipc_response_body(r, &len);
    CHECK_INT(len, ==, 16 * 1024);
    for (size_t i = 0; i < len; i++)
        CHECK_INT(b[i], ==, i % 256);
    cipc_response_free(r);

    CHECK_RC(cipc_head(s, "/users/7", NULL, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_status(r), ==, 200);
    cipc_response_body(r, &len);
    CHECK_INT(len, ==, 0);
    cipc_response_free(r);

    CHECK_RC(cipc_get(s, "/nope", NULL, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_status(r), ==, 404);
    CHECK_INT(cipc_response_raise_for_status(r), ==, CIPC_EHTTP);
    cipc_response_free(r);
    CHECK_RC(cipc_delete(s, "/json", NULL, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_status(r), ==, 405);
    CHECK(strstr(cipc_response_header(r, "Allow"), "POST") != NULL);
    cipc_response_free(r);
    cipc_session_free(s);
}

static void test_cipc_client(void)
{
    enum { N = 200 };
    static char urls[N][32];
    static cipc_fetch f[N];
    cipc_loop *loop = NULL;
    cipc_client *c = NULL;
    CHECK_INT(cipc_loop_new(NULL, &loop), ==, 0);
    CHECK_INT(
        cipc_client_new(
            loop, &(cipc_session_opts){.base_url = base, .proxy = "", .max_concurrency = 64}, &c),
        ==, 0);
    for (int i = 0; i < N; i++) {
        snprintf(urls[i], sizeof urls[i], "/users/a%d", i);
        f[i] = (cipc_fetch){.url = urls[i], .rc = 12345};
    }
    CHECK_INT(cipc_client_gather(c, f, N, 30000), ==, N);
    int workers[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        CHECK_RC(f[i].rc, 0, cipc_client_errmsg(c));
        CHECK_INT(cipc_response_status(f[i].resp), ==, 200);
        json_t *j = peer_json(f[i].resp);
        CHECK_STR(peer_jstr(j, "id"), urls[i] + 7);
        workers[peer_jint(j, "worker") ? 1 : 0]++;
        json_decref(j);
        cipc_response_free(f[i].resp);
    }
    fprintf(stderr, "  cipc_client: %d requests on worker 0, %d on worker 1\n", workers[0],
            workers[1]);
    cipc_client_close(c);
    CHECK_INT(cipc_loop_free(loop), ==, 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    peer_clear_proxy_env();
    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 2});
    CHECK_INT(cipc_route(t.srv, "GET", "/users/{id}", h_user, NULL), ==, 0);
    CHECK_INT(cipc_route(t.srv, "POST", "/json", h_json, NULL), ==, 0);
    CHECK_INT(cipc_route(t.srv, "POST", "/sha", h_sha, NULL), ==, 0);
    CHECK_INT(cipc_route(t.srv, "GET", "/stream", h_stream, NULL), ==, 0);
    int port = srvt_start(&t);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);

    RUN(test_python_requests);
    RUN(test_python_aiohttp);
    RUN(test_cipc_session);
    RUN(test_cipc_client);

    srvt_stop(&t, 5000);
    srvt_free(&t);
    return 0;
}
