/* Proves the server's timers and connection limit on real sockets (timeouts 500 ms):
 * a head that stops or trickles in gets 408 and a close within header_timeout_ms, a body
 * that stalls gets 408 within body_timeout_ms, an idle kept-alive connection (or one
 * that never sends a byte) is closed after idle_timeout_ms, a slow handler is not cut
 * off by any of them, and with max_connections=2 a third connection gets 503 and a close
 * while the first two keep working and a new one is accepted once a slot is free. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_helper.h"

#define H          "Host: t\r\n"
#define TIMEOUT_MS 500
#define LOW_MS     400  /* not closed before this */
#define HIGH_MS    3000 /* closed by then */

static int port;

/* Wait for the 408 and the close; returns the ms from `t0`. */
static int64_t expect_408(raw_conn *c, int64_t t0)
{
    raw_resp r;
    int rc = raw_read(c, &r, 0, HIGH_MS);
    int64_t ms = peer_now_ms() - t0;
    if (rc != 0)
        fprintf(stderr, "no 408 (raw code %d) after %lld ms\n", rc, (long long)ms);
    CHECK_INT(rc, ==, 0);
    CHECK_INT(r.status, ==, 408);
    CHECK(raw_hdr_has(&r, "Connection", "close"));
    raw_resp_free(&r);
    CHECK_INT(raw_wait_close(c, HIGH_MS), ==, 1);
    fprintf(stderr, "  408 after %lld ms\n", (long long)ms);
    CHECK_INT(ms, >=, LOW_MS);
    CHECK_INT(ms, <=, HIGH_MS);
    return ms;
}

static void test_head_stops(void)
{
    raw_conn c;
    raw_open(&c, port);
    int64_t t0 = peer_now_ms();
    CHECK_INT(raw_sends(&c, "GET /ping HTTP/1.1\r\n" H), ==, 0);
    expect_408(&c, t0);
    raw_close(&c);
}

/* A byte every 100 ms: activity does not extend the head's deadline. */
static void test_head_trickles(void)
{
    raw_conn c;
    raw_open(&c, port);
    int64_t t0 = peer_now_ms();
    CHECK_INT(raw_sends(&c, "GET /ping HTTP/1.1\r\n" H "X-Slow: "), ==, 0);
    for (;;) {
        struct pollfd pfd = {.fd = c.fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) > 0)
            break; /* the answer (or the close) is here */
        CHECK_INT(peer_now_ms() - t0, <, HIGH_MS);
        if (raw_sends(&c, "a") != 0)
            break;
    }
    expect_408(&c, t0);
    raw_close(&c);
}

static void test_body_stalls(void)
{
    raw_conn c;
    raw_open(&c, port);
    CHECK_INT(raw_sends(&c, "POST /echo HTTP/1.1\r\n" H "Content-Length: 100\r\n\r\n0123456789"),
              ==, 0);
    expect_408(&c, peer_now_ms());
    raw_close(&c);
    /* Chunked, stalling inside a chunk. */
    raw_open(&c, port);
    CHECK_INT(
        raw_sends(&c, "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n10\r\nabc"),
        ==, 0);
    expect_408(&c, peer_now_ms());
    raw_close(&c);
}

static void test_idle(void)
{
    raw_conn c;
    raw_resp r;
    raw_open(&c, port);
    CHECK_INT(raw_roundtrip(&c, "GET /ping HTTP/1.1\r\n" H "\r\n", &r, 0), ==, 200);
    raw_resp_free(&r);
    int64_t t0 = peer_now_ms();
    /* Closed without a response (or with a 408, which RFC 9110 allows). */
    int rc = raw_read(&c, &r, 0, HIGH_MS);
    int64_t ms = peer_now_ms() - t0;
    if (rc == 0) {
        CHECK_INT(r.status, ==, 408);
        raw_resp_free(&r);
        CHECK_INT(raw_wait_close(&c, HIGH_MS), ==, 1);
    } else {
        CHECK_INT(rc, ==, RAW_CLOSED);
    }
    fprintf(stderr, "  idle connection closed after %lld ms\n", (long long)ms);
    CHECK_INT(ms, >=, LOW_MS);
    CHECK_INT(ms, <=, HIGH_MS);
    raw_close(&c);

    /* A connection that never sends anything. */
    raw_open(&c, port);
    t0 = peer_now_ms();
    rc = raw_read(&c, &r, 0, HIGH_MS);
    ms = peer_now_ms() - t0;
    if (rc == 0) {
        CHECK_INT(r.status, ==, 408);
        raw_resp_free(&r);
    } else {
        CHECK_INT(rc, ==, RAW_CLOSED);
    }
    fprintf(stderr, "  silent connection closed after %lld ms\n", (long long)ms);
    CHECK_INT(ms, >=, LOW_MS);
    CHECK_INT(ms, <=, HIGH_MS);
    raw_close(&c);
}

/* GET /later is answered by GET /release after more than every timeout. */
static cipc_http_req *parked;
static latch parkings = LATCH_INIT;

static void h_later(cipc_http_req *req, void *ud)
{
    (void)ud;
    parked = req;
    latch_add(&parkings);
}

static void h_release(cipc_http_req *req, void *ud)
{
    (void)ud;
    CHECK(parked != NULL);
    CHECK_INT(cipc_http_respond(parked, 200, "text/plain", "late", 4), ==, 0);
    parked = NULL;
    CHECK_INT(cipc_http_respond(req, 200, "text/plain", "ok", 2), ==, 0);
}

static void test_slow_handler(void)
{
    raw_conn a, b;
    raw_resp r;
    raw_open(&a, port);
    CHECK_INT(raw_sends(&a, "GET /later HTTP/1.1\r\n" H "\r\n"), ==, 0);
    CHECK_INT(latch_wait(&parkings, 1, 5000), ==, 1);
    /* Nothing (no 408, no close) while the handler holds the request. */
    CHECK_INT(raw_read(&a, &r, 0, 3 * TIMEOUT_MS), ==, RAW_TIMEOUT);
    raw_open(&b, port);
    CHECK_INT(raw_roundtrip(&b, "GET /release HTTP/1.1\r\n" H "\r\n", &r, 0), ==, 200);
    raw_resp_free(&r);
    CHECK_INT(raw_read(&a, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    CHECK_INT(r.status, ==, 200);
    CHECK_STR(r.body, "late");
    raw_resp_free(&r);
    raw_check_alive(&a, "/ping");
    raw_close(&a);
    raw_close(&b);
}

static void test_max_connections(void)
{
    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 1, .max_connections = 2});
    CHECK_INT(cipc_route(t.srv, "GET", "/ping", h_text, "pong"), ==, 0);
    int p = srvt_start(&t);
    raw_conn c1, c2, c3;
    raw_resp r;
    raw_open(&c1, p);
    raw_check_alive(&c1, "/ping");
    raw_open(&c2, p);
    raw_check_alive(&c2, "/ping");
    raw_open(&c3, p);
    /* The third gets 503 without sending anything, then the close. */
    CHECK_INT(raw_read(&c3, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    CHECK_INT(r.status, ==, 503);
    CHECK(raw_hdr_has(&r, "Connection", "close"));
    raw_resp_free(&r);
    CHECK_INT(raw_wait_close(&c3, HIGH_MS), ==, 1);
    raw_close(&c3);
    raw_check_alive(&c1, "/ping");
    raw_check_alive(&c2, "/ping");
    /* Free a slot: a new connection is served once the server has seen the close. */
    raw_close(&c1);
    int64_t end = peer_now_ms() + HIGH_MS;
    int tries = 0;
    for (;;) {
        tries++;
        raw_open(&c3, p);
        CHECK_INT(raw_sends(&c3, "GET /ping HTTP/1.1\r\n" H "\r\n"), ==, 0);
        CHECK_INT(raw_read(&c3, &r, 0, RAW_TIMEOUT_MS), ==, 0);
        int st = r.status;
        raw_resp_free(&r);
        if (st == 200)
            break;
        CHECK_INT(st, ==, 503);
        raw_close(&c3);
        CHECK_INT(peer_now_ms(), <, end);
        poll(NULL, 0, 20);
    }
    fprintf(stderr, "  a freed slot was usable after %d attempt(s)\n", tries);
    raw_check_alive(&c2, "/ping");
    raw_close(&c2);
    raw_close(&c3);
    srvt_stop(&t, 5000);
    srvt_free(&t);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 1,
                                    .header_timeout_ms = TIMEOUT_MS,
                                    .body_timeout_ms = TIMEOUT_MS,
                                    .idle_timeout_ms = TIMEOUT_MS});
    CHECK_INT(cipc_route(t.srv, "GET", "/ping", h_text, "pong"), ==, 0);
    CHECK_INT(cipc_route(t.srv, "POST", "/echo", h_echo, NULL), ==, 0);
    CHECK_INT(cipc_route(t.srv, "GET", "/later", h_later, NULL), ==, 0);
    CHECK_INT(cipc_route(t.srv, "GET", "/release", h_release, NULL), ==, 0);
    port = srvt_start(&t);

    RUN(test_head_stops);
    RUN(test_head_trickles);
    RUN(test_body_stalls);
    RUN(test_idle);
    RUN(test_slow_handler);
    RUN(test_max_connections);

    srvt_stop(&t, 5000);
    srvt_free(&t);
    return 0;
}
