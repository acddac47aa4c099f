/* Proves streaming routes (cipc_route_stream + cipc_http_read_body): the handler runs
 * once the head is in, before any body byte is sent; a 5 MiB body (Content-Length, raw)
 * and a chunked one (curl) arrive in several pieces and intact, answered from the end
 * mark, keeping the connection; Expect: 100-continue works; max_body bounds a chunked
 * stream (413); a handler that answers without reading gets its response out and the
 * connection closes; cipc_http_read_body() outside a streaming route is CIPC_EBUSY. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_helper.h"

#define H        "Host: t\r\n"
#define MAX_BODY (8u * 1024 * 1024)
#define BIG      (5u * 1024 * 1024)

static int port;
static char base[64];
static latch heads = LATCH_INIT; /* streaming handlers entered */

struct upload {
    peer_sha256 sha;
    uint64_t len;
    int pieces;
};

static void on_body(cipc_http_req *req, const void *data, size_t len, void *ud)
{
    struct upload *u = ud;
    if (data) {
        CHECK_INT(len, >, 0);
        peer_sha256_update(&u->sha, data, len);
        u->len += len;
        u->pieces++;
        return;
    }
    if (len == CIPC_HTTP_BODY_ABORTED) { /* cut off: release the state, answer nothing */
        free(u);
        return;
    }
    CHECK_INT(len, ==, 0);
    char hex[65];
    peer_sha256_hex(&u->sha, hex);
    json_t *j =
        json_pack("{s:I, s:s, s:i}", "len", (json_int_t)u->len, "sha256", hex, "pieces", u->pieces);
    free(u);
    CHECK_INT(cipc_http_respond_json(req, 200, j), ==, 0);
    json_decref(j);
}

/* POST /up (streaming): hash the body as it comes; a GET (no body) is answered at once. */
static void h_up(cipc_http_req *req, void *ud)
{
    (void)ud;
    latch_add(&heads);
    size_t len = 1;
    cipc_http_body(req, &len);
    CHECK_INT(len, ==, 0); /* nothing buffered on a streaming route */
    if (strcmp(cipc_http_method(req), "GET") == 0) {
        CHECK_INT(cipc_http_respond(req, 200, "text/plain", "no body", 7), ==, 0);
        return;
    }
    struct upload *u = calloc(1, sizeof *u);
    CHECK(u != NULL);
    peer_sha256_init(&u->sha);
    /* A request without a body gets the end mark from inside this call. */
    CHECK_INT(cipc_http_read_body(req, on_body, u), ==, 0);
}

/* POST /up on the small server: the body is cut off by the 413; the callback then gets
 * one CIPC_HTTP_BODY_ABORTED call and the request is not answered. */
static struct upload aborted;
static int aborted_calls;

static void on_body_static(cipc_http_req *req, const void *data, size_t len, void *ud)
{
    (void)ud;
    if (data) {
        aborted.len += len;
        return;
    }
    if (len == CIPC_HTTP_BODY_ABORTED) {
        aborted_calls++;
        CHECK_INT(cipc_http_respond(req, 200, "text/plain", "late", 4), ==, CIPC_EBUSY);
        return;
    }
    CHECK_INT(cipc_http_respond(req, 200, "text/plain", "unexpected", 10), ==, 0);
}

static void h_up_static(cipc_http_req *req, void *ud)
{
    (void)ud;
    CHECK_INT(cipc_http_read_body(req, on_body_static, NULL), ==, 0);
}

/* POST /deny (streaming): answers 401 without reading the body. */
static void h_deny(cipc_http_req *req, void *ud)
{
    (void)ud;
    CHECK_INT(cipc_http_respond(req, 401, "text/plain", "denied", 6), ==, 0);
}

/* POST /buffered (normal route): cipc_http_read_body is refused. */
static void h_buffered(cipc_http_req *req, void *ud)
{
    (void)ud;
    CHECK_INT(cipc_http_read_body(req, on_body, NULL), ==, CIPC_EBUSY);
    size_t len = 0;
    cipc_http_body(req, &len);
    char n[32];
    snprintf(n, sizeof n, "%zu", len);
    CHECK_INT(cipc_http_respond(req, 200, "text/plain", n, strlen(n)), ==, 0);
}

static json_t *body_json(const raw_resp *r)
{
    json_error_t e;
    json_t *j = json_loadb(r->body, r->body_len, 0, &e);
    if (!j)
        fprintf(stderr, "not JSON: %.200s\n", r->body);
    CHECK(j != NULL);
    return j;
}

static void check_upload(json_t *j, const char *data, size_t len, int min_pieces)
{
    char hex[65];
    sha256_hex_of(data, len, hex);
    CHECK_INT(json_integer_value(json_object_get(j, "len")), ==, len);
    CHECK_STR(json_string_value(json_object_get(j, "sha256")), hex);
    int pieces = (int)json_integer_value(json_object_get(j, "pieces"));
    fprintf(stderr, "  %zu bytes in %d pieces\n", len, pieces);
    CHECK_INT(pieces, >=, min_pieces);
}

static void test_raw(char *big)
{
    raw_conn c;
    raw_resp r;
    char head[160];
    raw_open(&c, port);
    int before = latch_count(&heads);
    int n =
        snprintf(head, sizeof head, "POST /up HTTP/1.1\r\n" H "Content-Length: %u\r\n\r\n", BIG);
    CHECK_INT(raw_send(&c, head, (size_t)n), ==, 0);
    /* The handler runs before any of the body has been sent. */
    CHECK_INT(latch_wait(&heads, before + 1, 5000), ==, before + 1);
    CHECK_INT(raw_send(&c, big, BIG), ==, 0);
    CHECK_INT(raw_read(&c, &r, 0, 30000), ==, 0);
    CHECK_INT(r.status, ==, 200);
    json_t *j = body_json(&r);
    check_upload(j, big, BIG, 2);
    json_decref(j);
    raw_resp_free(&r);

    /* Same connection: Expect: 100-continue, then a small body. */
    CHECK_INT(raw_sends(&c, "POST /up HTTP/1.1\r\n" H
                            "Content-Length: 5\r\nExpect: 100-continue\r\n\r\n"),
              ==, 0);
    CHECK_INT(raw_read(&c, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    CHECK_INT(r.status, ==, 100);
    raw_resp_free(&r);
    CHECK_INT(raw_sends(&c, "hello"), ==, 0);
    CHECK_INT(raw_read(&c, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    CHECK_INT(r.status, ==, 200);
    j = body_json(&r);
    check_upload(j, "hello", 5, 1);
    json_decref(j);
    raw_resp_free(&r);

    /* No body: handled like a normal route; then a chunked body pipelined behind. */
    CHECK_INT(raw_sends(&c, "GET /up HTTP/1.1\r\n" H "\r\n"
                            "POST /up HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
                            "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                            "POST /up HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n"),
              ==, 0);
    CHECK_INT(raw_read(&c, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    CHECK_STR(r.body, "no body");
    raw_resp_free(&r);
    CHECK_INT(raw_read(&c, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    j = body_json(&r);
    check_upload(j, "abcde", 5, 1);
    json_decref(j);
    raw_resp_free(&r);
    CHECK_INT(raw_read(&c, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    CHECK_INT(r.status, ==, 200);
    j = body_json(&r);
    check_upload(j, "", 0, 0);
    json_decref(j);
    raw_resp_free(&r);
    raw_close(&c);
}

static void test_curl_chunked(const char *path, char *big)
{
    char at[320], url[128], out[512];
    snprintf(at, sizeof at, "@%s", path);
    snprintf(url, sizeof url, "%s/up", base);
    const char *argv[] = {
        "/usr/bin/curl", "-sS", "--noproxy", "*", "-H", "Transfer-Encoding: chunked",
        "--data-binary", at,    url,         NULL};
    CHECK_INT(prog_run(argv, out, sizeof out, 60000), ==, 0);
    json_error_t e;
    json_t *j = json_loads(out, 0, &e);
    CHECK(j != NULL);
    check_upload(j, big, BIG, 2);
    json_decref(j);
}

static void test_limits_and_early_answer(void)
{
    raw_conn c;
    raw_resp r;
    /* A chunked stream over max_body (1 MiB on this server): 413 and the close. */
    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 1, .max_body = 1024 * 1024});
    CHECK_INT(cipc_route_stream(t.srv, "POST", "/up", h_up_static, NULL), ==, 0);
    int p = srvt_start(&t);
    raw_open(&c, p);
    CHECK_INT(raw_sends(&c, "POST /up HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"), ==, 0);
    static char chunk[65536 + 16];
    int n = snprintf(chunk, sizeof chunk, "10000\r\n");
    memset(chunk + n, 'x', 65536);
    memcpy(chunk + n + 65536, "\r\n", 2);
    int sent = 0;
    for (int i = 0; i < 32; i++) { /* 2 MiB unless the server stops us first */
        if (raw_send(&c, chunk, (size_t)n + 65538) != 0)
            break;
        sent++;
    }
    int rc = raw_read(&c, &r, 0, RAW_TIMEOUT_MS);
    fprintf(stderr, "  %d chunks of 64 KiB sent before the answer; the handler saw %llu bytes\n",
            sent, (unsigned long long)aborted.len);
    CHECK_INT(aborted.len, <=, 1024 * 1024);
    CHECK_INT(aborted_calls, ==, 1);
    if (rc == 0) {
        CHECK_INT(r.status, ==, 413);
        raw_resp_free(&r);
    } else {
        /* The 413 can be lost to a reset when the server closes with body bytes unread. */
        CHECK(c.err == ECONNRESET);
    }
    raw_close(&c);
    srvt_stop(&t, 5000);
    srvt_free(&t);

    /* Answering without reading: the response arrives, then the close. */
    raw_open(&c, port);
    CHECK_INT(raw_sends(&c, "POST /deny HTTP/1.1\r\n" H "Content-Length: 100000\r\n\r\n"), ==, 0);
    CHECK_INT(raw_read(&c, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    CHECK_INT(r.status, ==, 401);
    CHECK_STR(r.body, "denied");
    CHECK(raw_hdr_has(&r, "Connection", "close"));
    raw_resp_free(&r);
    CHECK_INT(raw_wait_close(&c, 3000), ==, 1);
    raw_close(&c);

    /* A normal route refuses cipc_http_read_body and buffers as usual. */
    raw_open(&c, port);
    CHECK_INT(
        raw_roundtrip(&c, "POST /buffered HTTP/1.1\r\n" H "Content-Length: 3\r\n\r\nabc", &r, 0),
        ==, 200);
    CHECK_STR(r.body, "3");
    raw_resp_free(&r);
    raw_close(&c);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    char dir[256], path[300];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/big.bin", dir);
    char *big = malloc(BIG);
    CHECK(big != NULL);
    fill_pattern(big, BIG, 5);
    write_file(path, big, BIG);

    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 1, .max_body = MAX_BODY});
    CHECK_INT(cipc_route_stream(t.srv, "*", "/up", h_up, NULL), ==, 0);
    CHECK_INT(cipc_route_stream(t.srv, "POST", "/deny", h_deny, NULL), ==, 0);
    CHECK_INT(cipc_route(t.srv, "POST", "/buffered", h_buffered, NULL), ==, 0);
    CHECK_INT(cipc_route_stream(t.srv, "POST", "/buffered", h_buffered, NULL), ==, -EEXIST);
    port = srvt_start(&t);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);

    int64_t t0 = peer_now_ms();
    test_raw(big);
    fprintf(stderr, "test_raw: %lld ms\n", (long long)(peer_now_ms() - t0));
    t0 = peer_now_ms();
    test_curl_chunked(path, big);
    fprintf(stderr, "test_curl_chunked: %lld ms\n", (long long)(peer_now_ms() - t0));
    RUN(test_limits_and_early_answer);

    srvt_stop(&t, 5000);
    srvt_free(&t);
    free(big);
    unlink(path);
    rmdir(dir);
    return 0;
}
