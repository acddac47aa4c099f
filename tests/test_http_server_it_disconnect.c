/* Proves the server survives clients that go away or stop reading (run it under ASan):
 * a client closing while its request is parked (answered later), while a streamed
 * response is in progress, during a sendfile and during a large buffered response, or in
 * the middle of its request body; a client that stops reading a large response is cut
 * off after write_timeout_ms; a client that pipelines many requests without reading gets
 * every response once it reads (backpressure, not loss). The server keeps serving. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_helper.h"

#define H        "Host: t\r\n"
#define BIG_FILE (4u * 1024 * 1024)
#define BIG_RESP (32u * 1024 * 1024)

static int port;
static char tmpdir[256], file_path[300];
static char *big_resp;

static cipc_http_req *parked;
static latch parkings = LATCH_INIT;
static int release_rc[3];

/* GET /later: parked. GET /stream-later: head and one chunk, then parked. */
static void h_later(cipc_http_req *req, void *ud)
{
    (void)ud;
    CHECK(parked == NULL);
    if (strcmp(cipc_http_path(req), "/stream-later") == 0) {
        CHECK_INT(cipc_http_start(req, 200, "text/plain"), ==, 0);
        CHECK_INT(cipc_http_write(req, "first", 5), ==, 0);
    }
    parked = req;
    latch_add(&parkings);
}

/* GET /release?stream=1: answer the parked request (its client may be gone). */
static void h_release(cipc_http_req *req, void *ud)
{
    (void)ud;
    CHECK(parked != NULL);
    if (cipc_http_query(req, "stream")) {
        release_rc[0] = cipc_http_write(parked, "second", 6);
        release_rc[1] = cipc_http_write(parked, "third", 5);
        release_rc[2] = cipc_http_end(parked);
    } else {
        release_rc[0] = cipc_http_respond(parked, 200, "text/plain", "late", 4);
    }
    parked = NULL;
    CHECK_INT(cipc_http_respond(req, 200, "text/plain", "ok", 2), ==, 0);
}

static void h_file(cipc_http_req *req, void *ud)
{
    (void)ud;
    CHECK_INT(cipc_http_respond_file(req, 200, file_path, "application/octet-stream"), ==, 0);
}

static void h_big(cipc_http_req *req, void *ud)
{
    (void)ud;
    size_t len = cipc_http_query(req, "small") ? 256 * 1024 : BIG_RESP;
    CHECK_INT(cipc_http_respond(req, 200, "application/octet-stream", big_resp, len), ==, 0);
}

static void release(const char *query)
{
    raw_conn b;
    raw_resp r;
    char req[128];
    snprintf(req, sizeof req, "GET /release%s HTTP/1.1\r\n" H "\r\n", query);
    raw_open(&b, port);
    CHECK_INT(raw_roundtrip(&b, req, &r, 0), ==, 200);
    raw_resp_free(&r);
    raw_close(&b);
}

static void check_healthy(void)
{
    raw_conn c;
    raw_open(&c, port);
    raw_check_alive(&c, "/ping");
    raw_close(&c);
}

/* Close a connection with a reset (SO_LINGER 0), the rudest way to go. */
static void abort_conn(raw_conn *c)
{
    struct linger l = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    raw_close(c);
}

static void test_parked_client_gone(void)
{
    for (int rude = 0; rude < 2; rude++) {
        raw_conn a;
        raw_open(&a, port);
        int n = latch_count(&parkings);
        CHECK_INT(raw_sends(&a, "GET /later HTTP/1.1\r\n" H "\r\n"), ==, 0);
        CHECK_INT(latch_wait(&parkings, n + 1, 5000), ==, n + 1);
        if (rude)
            abort_conn(&a);
        else
            raw_close(&a);
        check_healthy(); /* the server has seen the close by the time this is answered */
        release("");
        fprintf(stderr, "  respond to a gone client (%s close): %s\n", rude ? "RST" : "FIN",
                cipc_err_name(release_rc[0]));
        check_healthy();
    }
}

/* A streamed response whose client leaves after the first chunk: the handler goes on
 * writing and ends it; each call may fail, none may crash. */
static void test_stream_client_gone(void)
{
    raw_conn a;
    raw_open(&a, port);
    int n = latch_count(&parkings);
    CHECK_INT(raw_sends(&a, "GET /stream-later HTTP/1.1\r\n" H "\r\n"), ==, 0);
    CHECK_INT(latch_wait(&parkings, n + 1, 5000), ==, n + 1);
    abort_conn(&a);
    check_healthy();
    release("?stream=1");
    fprintf(stderr, "  write/write/end to a gone client: %s %s %s\n", cipc_err_name(release_rc[0]),
            cipc_err_name(release_rc[1]), cipc_err_name(release_rc[2]));
    check_healthy();
}

static void test_gone_mid_response(void)
{
    for (int i = 0; i < 4; i++) {
        raw_conn a;
        raw_open(&a, port);
        CHECK_INT(raw_sends(&a, i % 2 ? "GET /file HTTP/1.1\r\n" H "\r\n"
                                      : "GET /big HTTP/1.1\r\n" H "\r\n"),
                  ==, 0);
        int64_t end = peer_now_ms() + RAW_TIMEOUT_MS;
        while (a.len < 100000)
            CHECK_INT(raw_fill(&a, end), >, 0);
        if (i < 2)
            abort_conn(&a);
        else
            raw_close(&a);
    }
    check_healthy();
    /* Gone in the middle of the request body. */
    raw_conn a;
    raw_open(&a, port);
    CHECK_INT(raw_sends(&a, "POST /echo HTTP/1.1\r\n" H "Content-Length: 100000\r\n\r\nabc"), ==,
              0);
    raw_close(&a);
    raw_open(&a, port);
    CHECK_INT(raw_sends(&a, "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
                            "100\r\nabc"),
              ==, 0);
    abort_conn(&a);
    check_healthy();
}

/* write_timeout_ms is 500: a client that reads nothing for 1.5 s is cut off. */
static void test_write_timeout(void)
{
    raw_conn a;
    raw_open(&a, port);
    CHECK_INT(raw_sends(&a, "GET /big HTTP/1.1\r\n" H "\r\n"), ==, 0);
    poll(NULL, 0, 1500); /* the stall itself */
    size_t total = 0;
    int64_t end = peer_now_ms() + RAW_TIMEOUT_MS;
    for (;;) {
        int n = raw_fill(&a, end);
        if (n == -ETIMEDOUT)
            fprintf(stderr,
                    "  the stalled client got %zu of %u body bytes and then nothing "
                    "for %d ms, with the connection still open\n",
                    total, BIG_RESP, RAW_TIMEOUT_MS);
        CHECK_INT(n, !=, -ETIMEDOUT);
        if (n == 0)
            break;
        total += (size_t)n;
        raw_consume(&a, a.len);
    }
    fprintf(stderr, "  the stalled client got %zu of %u body bytes before the close\n", total,
            BIG_RESP);
    CHECK(total < BIG_RESP);
    raw_close(&a);
    check_healthy();
}

/* 200 pipelined requests for 256 KiB each, sent before reading anything. */
static void test_backpressure(void)
{
    raw_conn a;
    raw_resp r;
    raw_open(&a, port);
    char *reqs = malloc(200 * 64);
    CHECK(reqs != NULL);
    size_t n = 0;
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(reqs + n, 64, "GET /big?small=1 HTTP/1.1\r\n" H "\r\n");
    CHECK_INT(raw_send(&a, reqs, n), ==, 0);
    poll(NULL, 0, 300); /* let the server run into the full socket */
    for (int i = 0; i < 200; i++) {
        CHECK_INT(raw_read(&a, &r, 0, RAW_TIMEOUT_MS), ==, 0);
        CHECK_INT(r.status, ==, 200);
        CHECK_INT(r.body_len, ==, 256 * 1024);
        CHECK(memcmp(r.body, big_resp, r.body_len) == 0);
        raw_resp_free(&r);
    }
    raw_check_alive(&a, "/ping");
    raw_close(&a);
    free(reqs);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    make_tmpdir(tmpdir, sizeof tmpdir);
    snprintf(file_path, sizeof file_path, "%s/big.bin", tmpdir);
    big_resp = malloc(BIG_RESP);
    CHECK(big_resp != NULL);
    fill_pattern(big_resp, BIG_RESP, 11);
    write_file(file_path, big_resp, BIG_FILE);

    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 1, .write_timeout_ms = 500});
    CHECK_INT(cipc_route(t.srv, "GET", "/ping", h_text, "pong"), ==, 0);
    CHECK_INT(cipc_route(t.srv, "POST", "/echo", h_echo, NULL), ==, 0);
    CHECK_INT(cipc_route(t.srv, "GET", "/later", h_later, NULL), ==, 0);
    CHECK_INT(cipc_route(t.srv, "GET", "/stream-later", h_later, NULL), ==, 0);
    CHECK_INT(cipc_route(t.srv, "GET", "/release", h_release, NULL), ==, 0);
    CHECK_INT(cipc_route(t.srv, "GET", "/file", h_file, NULL), ==, 0);
    CHECK_INT(cipc_route(t.srv, "GET", "/big", h_big, NULL), ==, 0);
    port = srvt_start(&t);

    RUN(test_parked_client_gone);
    RUN(test_gone_mid_response);
    RUN(test_backpressure);
    RUN(test_write_timeout);
    RUN(test_stream_client_gone);

    srvt_stop(&t, 5000);
    srvt_free(&t);
    unlink(file_path);
    rmdir(tmpdir);
    free(big_resp);
    return 0;
}
