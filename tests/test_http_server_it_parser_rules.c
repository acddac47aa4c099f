/* Proves the server enforces RFC 9112's message rules on real sockets: every malformed or
 * smuggling-prone request (CL+TE, conflicting Content-Lengths, unknown or non-final
 * transfer codings, obs-fold, whitespace before the colon, bare CR, NUL and control
 * characters, missing/duplicate/invalid Host, bad chunk sizes, overflowing lengths) gets
 * its 4xx/5xx answer and the connection is closed; limits give 414, 431, 413; HTTP/2.0
 * gets 505; Transfer-Encoding on HTTP/1.0 closes; a bad request in a pipeline is answered
 * after the good one before it; valid edge cases are served and the connection kept. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_helper.h"

#define H "Host: t\r\n"
/* Requests with a NUL byte inside (their length is not strlen()). */
#define NUL_VALUE "GET /ping HTTP/1.1\r\n" H "X-A: b\0c\r\n\r\n"
#define NUL_PATH  "GET /pi\0ng HTTP/1.1\r\n" H "\r\n"

static int port;

struct rule {
    const char *name;
    const char *req;
    size_t len;   /* 0: strlen(req) */
    int st1, st2; /* acceptable statuses (st2 0: only st1) */
};

static int failures;

/* Send the request on a new connection; the answer must be one of the statuses, and
 * the server's own errors (>= 400 except the router's 404/405) must close the
 * connection while other answers keep it open. A mismatch is
 * printed and counted (so that one run lists them all). */
static void check_rule(const struct rule *t)
{
    raw_conn c;
    raw_resp r;
    int st = raw_one(port, &c, t->req, t->len, &r);
    if (st != t->st1 && (t->st2 == 0 || st != t->st2)) {
        fprintf(stderr, "FAIL rule \"%s\": got %d (raw codes < 0), want %d%s%.0d\n%s", t->name, st,
                t->st1, t->st2 ? " or " : "", t->st2, st > 0 ? r.head : "");
        failures++;
    } else if (st >= 400 && st != 404 && st != 405) {
        int closed = raw_wait_close(&c, 3000);
        if (closed != 1 || !raw_hdr_has(&r, "Connection", "close")) {
            fprintf(stderr, "FAIL rule \"%s\": %d but the connection was not closed (%d)\n",
                    t->name, st, closed);
            failures++;
        }
    } else {
        raw_check_alive(&c, "/ping");
    }
    if (st > 0)
        raw_resp_free(&r);
    raw_close(&c);
}

static void test_rules(void)
{
    static const struct rule rules[] = {
        /* Valid requests and edge cases that must be accepted. */
        {"plain", "GET /ping HTTP/1.1\r\n" H "\r\n", 0, 200, 0},
        {"lower-case header names", "GET /ping HTTP/1.1\r\nhost: t\r\n\r\n", 0, 200, 0},
        {"absolute-form", "GET http://t/ping HTTP/1.1\r\n" H "\r\n", 0, 200, 0},
        {"host with port", "GET /ping HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", 0, 200, 0},
        {"host ipv6 literal", "GET /ping HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", 0, 200, 0},
        {"empty host (valid, may be refused)", "GET /ping HTTP/1.1\r\nHost:\r\n\r\n", 0, 200, 400},
        {"value with tab and obs-text", "GET /ping HTTP/1.1\r\n" H "X-A: a\tb \xe9\r\n\r\n", 0, 200,
         0},
        {"content-length 0", "POST /echo HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n", 0, 200, 0},
        {"upper-case CL name", "POST /echo HTTP/1.1\r\n" H "CONTENT-LENGTH: 3\r\n\r\nabc", 0, 200,
         0},
        {"chunk extension and trailer",
         "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
         "3;name=\"v\"\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n",
         0, 200, 0},
        {"chunk size leading zeros",
         "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n0003\r\nabc\r\n0\r\n\r\n",
         0, 200, 0},
        {"Chunked mixed case",
         "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 0,
         200, 0},
        {"identical duplicate CL (may be rejected)",
         "POST /echo HTTP/1.1\r\n" H "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 0, 200,
         400},

        /* Request smuggling vectors. */
        {"CL and TE",
         "POST /echo HTTP/1.1\r\n" H
         "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         0, 400, 0},
        {"TE and CL",
         "POST /echo HTTP/1.1\r\n" H
         "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
         0, 400, 0},
        {"differing duplicate CL",
         "POST /echo HTTP/1.1\r\n" H "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 0, 400,
         0},
        {"CL list", "POST /echo HTTP/1.1\r\n" H "Content-Length: 3, 4\r\n\r\nabcd", 0, 400, 0},
        {"CL negative", "POST /echo HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n", 0, 400, 0},
        {"CL plus sign", "POST /echo HTTP/1.1\r\n" H "Content-Length: +3\r\n\r\nabc", 0, 400, 0},
        {"CL hex", "POST /echo HTTP/1.1\r\n" H "Content-Length: 0x3\r\n\r\nabc", 0, 400, 0},
        {"CL empty", "POST /echo HTTP/1.1\r\n" H "Content-Length:\r\n\r\n", 0, 400, 0},
        {"CL overflow", "POST /echo HTTP/1.1\r\n" H "Content-Length: 184467440737095516170\r\n\r\n",
         0, 400, 413},
        {"TE gzip only", "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n", 0, 400,
         501},
        {"TE chunked not final",
         "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 0, 400,
         501},
        {"TE gzip, chunked",
         "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 0, 400,
         501},
        {"TE chunked twice",
         "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 0, 400,
         501},
        {"TE identity", "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: identity\r\n\r\n", 0, 400,
         501},
        {"TE xchunked", "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: xchunked\r\n\r\n", 0, 400,
         501},
        {"TE two headers",
         "POST /echo HTTP/1.1\r\n" H
         "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n",
         0, 400, 501},

        /* Header syntax. */
        {"obs-fold", "GET /ping HTTP/1.1\r\n" H "X-A: b\r\n c\r\n\r\n", 0, 400, 0},
        {"obs-fold tab", "GET /ping HTTP/1.1\r\n" H "X-A: b\r\n\tc\r\n\r\n", 0, 400, 0},
        {"space before colon", "GET /ping HTTP/1.1\r\nHost : t\r\n\r\n", 0, 400, 0},
        {"tab before colon", "GET /ping HTTP/1.1\r\n" H "X-A\t: b\r\n\r\n", 0, 400, 0},
        {"space in name", "GET /ping HTTP/1.1\r\n" H "X A: b\r\n\r\n", 0, 400, 0},
        {"empty name", "GET /ping HTTP/1.1\r\n" H ": b\r\n\r\n", 0, 400, 0},
        {"no colon", "GET /ping HTTP/1.1\r\n" H "X-A b\r\n\r\n", 0, 400, 0},
        {"bad char in name", "GET /ping HTTP/1.1\r\n" H "X(A): b\r\n\r\n", 0, 400, 0},
        {"bare CR in value", "GET /ping HTTP/1.1\r\n" H "X-A: b\rc\r\n\r\n", 0, 400, 0},
        {"bare CR line end", "GET /ping HTTP/1.1\r\n" H "X-A: b\r\r\n\r\n", 0, 400, 0},
        {"bare CR request line", "GET /ping\r HTTP/1.1\r\n" H "\r\n", 0, 400, 0},
        {"NUL in value", NUL_VALUE, sizeof NUL_VALUE - 1, 400, 0},
        {"NUL in path", NUL_PATH, sizeof NUL_PATH - 1, 400, 0},
        {"SOH in value",
         "GET /ping HTTP/1.1\r\n" H "X-A: b\x01"
         "c\r\n\r\n",
         0, 400, 0},
        {"DEL in value",
         "GET /ping HTTP/1.1\r\n" H "X-A: b\x7f"
         "c\r\n\r\n",
         0, 400, 0},
        {"ESC in value", "GET /ping HTTP/1.1\r\n" H "X-A: \x1b[31m\r\n\r\n", 0, 400, 0},
        {"control in name", "GET /ping HTTP/1.1\r\n" H "X-\x02: b\r\n\r\n", 0, 400, 0},

        /* Host. */
        {"1.1 without Host", "GET /ping HTTP/1.1\r\n\r\n", 0, 400, 0},
        {"duplicate Host", "GET /ping HTTP/1.1\r\n" H "Host: u\r\n\r\n", 0, 400, 0},
        {"Host with space", "GET /ping HTTP/1.1\r\nHost: a b\r\n\r\n", 0, 400, 0},
        {"Host with slash", "GET /ping HTTP/1.1\r\nHost: a/b\r\n\r\n", 0, 400, 0},
        {"Host bad port", "GET /ping HTTP/1.1\r\nHost: a:8x\r\n\r\n", 0, 400, 0},
        {"Host open bracket", "GET /ping HTTP/1.1\r\nHost: [::1\r\n\r\n", 0, 400, 0},

        /* Chunked framing. */
        {"chunk size not hex",
         "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 0,
         400, 0},
        {"chunk size negative",
         "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n", 0,
         400, 0},
        {"chunk size empty",
         "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n", 0,
         400, 0},
        {"chunk size 0x prefix",
         "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", 0,
         400, 0},
        {"chunk size overflow",
         "POST /echo HTTP/1.1\r\n" H
         "Transfer-Encoding: chunked\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n",
         0, 400, 413},
        {"chunk size huge",
         "POST /echo HTTP/1.1\r\n" H
         "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
         0, 400, 413},
        {"chunk data too long",
         "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", 0,
         400, 0},
        {"chunk bare LF terminator",
         "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n", 0,
         400, 0},

        /* Request line and version. */
        {"HTTP/2.0", "GET /ping HTTP/2.0\r\n" H "\r\n", 0, 505, 0},
        {"HTTP/3.0", "GET /ping HTTP/3.0\r\n" H "\r\n", 0, 505, 0},
        {"lower-case version", "GET /ping http/1.1\r\n" H "\r\n", 0, 400, 0},
        {"version without minor", "GET /ping HTTP/1\r\n" H "\r\n", 0, 400, 505},
        {"HTTP/0.9 style", "GET /ping\r\n\r\n", 0, 400, 505},
        {"double space", "GET  /ping HTTP/1.1\r\n" H "\r\n", 0, 400, 0},
        {"bad method char", "G(T /ping HTTP/1.1\r\n" H "\r\n", 0, 400, 0},
        {"target without slash", "GET ping HTTP/1.1\r\n" H "\r\n", 0, 400, 0},
        {"space in target", "GET /pi ng HTTP/1.1\r\n" H "\r\n", 0, 400, 0},
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        check_rule(&rules[i]);
    fprintf(stderr, "%zu rules checked, %d failed\n", sizeof rules / sizeof rules[0], failures);
}

/* Limits set in main(): max_request_line 512, max_head 2048, max_headers 16,
 * max_body 4096. */
static void test_limits(void)
{
    char req[8192], pad[4096];
    struct rule t = {.req = req};

    /* 414: a request line over 512 bytes. */
    memset(pad, 'a', 600);
    pad[600] = '\0';
    snprintf(req, sizeof req, "GET /%.700s HTTP/1.1\r\n" H "\r\n", pad);
    t.name = "request line too long";
    t.st1 = 414;
    check_rule(&t);
    /* Just under the limit is fine (a 404: no such route). */
    pad[480] = '\0';
    snprintf(req, sizeof req, "GET /%.700s HTTP/1.1\r\n" H "\r\n", pad);
    t.name = "request line near the limit";
    t.st1 = 404;
    check_rule(&t);

    /* 431: a head over 2048 bytes with few headers. */
    memset(pad, 'v', 600);
    pad[600] = '\0';
    snprintf(req, sizeof req,
             "GET /ping HTTP/1.1\r\n" H "X-A: %.600s\r\nX-B: %.600s\r\nX-C: %.600s\r\n"
             "X-D: %.600s\r\n\r\n",
             pad, pad, pad, pad);
    t.name = "head too large";
    t.st1 = 431;
    check_rule(&t);

    /* 431: 20 headers (the limit is 16). */
    size_t n = (size_t)snprintf(req, sizeof req, "GET /ping HTTP/1.1\r\n" H);
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(req + n, sizeof req - n, "X-%d: v\r\n", i);
    snprintf(req + n, sizeof req - n, "\r\n");
    t.name = "too many headers";
    t.st1 = 431;
    check_rule(&t);
    /* 15 + Host = 16 headers: accepted. */
    n = (size_t)snprintf(req, sizeof req, "GET /ping HTTP/1.1\r\n" H);
    for (int i = 0; i < 15; i++)
        n += (size_t)snprintf(req + n, sizeof req - n, "X-%d: v\r\n", i);
    snprintf(req + n, sizeof req - n, "\r\n");
    t.name = "16 headers";
    t.st1 = 200;
    check_rule(&t);

    /* 413: Content-Length over 4096, answered before any body byte is sent. */
    snprintf(req, sizeof req, "POST /echo HTTP/1.1\r\n" H "Content-Length: 5000\r\n\r\n");
    t.name = "Content-Length over max_body";
    t.st1 = 413;
    check_rule(&t);
    /* 413: a chunked body over 4096. */
    n = (size_t)snprintf(req, sizeof req,
                         "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n");
    memset(pad, 'b', 1000);
    for (int i = 0; i < 5; i++)
        n += (size_t)snprintf(req + n, sizeof req - n, "3e8\r\n%.1000s\r\n", pad);
    snprintf(req + n, sizeof req - n, "0\r\n\r\n");
    t.name = "chunked body over max_body";
    t.st1 = 413;
    check_rule(&t);
    /* Exactly max_body is fine. */
    raw_conn c;
    raw_resp r;
    memset(pad, 'c', 4096);
    n = (size_t)snprintf(req, sizeof req,
                         "POST /echo HTTP/1.1\r\n" H "Content-Length: 4096\r\n\r\n");
    memcpy(req + n, pad, 4096);
    CHECK_INT(raw_one(port, &c, req, n + 4096, &r), ==, 200);
    CHECK_INT(r.body_len, ==, 4096);
    CHECK(memcmp(r.body, pad, 4096) == 0);
    raw_check_alive(&c, "/ping");
    raw_resp_free(&r);
    raw_close(&c);
}

/* An error in a pipeline: the good request before it is answered, then the error, then
 * the close; nothing after the bad request is served. */
static void test_error_in_pipeline(void)
{
    raw_conn c;
    raw_resp r;
    raw_open(&c, port);
    CHECK_INT(raw_sends(&c, "GET /ping HTTP/1.1\r\n" H "\r\n"
                            "GET /ping HTTP/1.1\r\n" H "X-A : b\r\n\r\n"
                            "GET /ping HTTP/1.1\r\n" H "\r\n"),
              ==, 0);
    CHECK_INT(raw_read(&c, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    CHECK_INT(r.status, ==, 200);
    raw_resp_free(&r);
    CHECK_INT(raw_read(&c, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    CHECK_INT(r.status, ==, 400);
    raw_resp_free(&r);
    CHECK_INT(raw_wait_close(&c, 3000), ==, 1);
    raw_close(&c);
}

/* RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 request means faulty framing: a 400, or
 * an answer and then the close, even when keep-alive is asked for. */
static void test_http10_transfer_encoding(void)
{
    raw_conn c;
    raw_resp r;
    int st = raw_one(port, &c,
                     "POST /echo HTTP/1.0\r\nConnection: keep-alive\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                     0, &r);
    fprintf(stderr, "  HTTP/1.0 with Transfer-Encoding: %d\n", st);
    CHECK(st == 400 || st == 200);
    raw_resp_free(&r);
    int closed = raw_wait_close(&c, 3000);
    if (closed != 1)
        fprintf(stderr, "  FAIL: the connection stays open after an HTTP/1.0 request with "
                        "Transfer-Encoding\n");
    failures += closed != 1;
    raw_close(&c);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 1,
                                    .max_request_line = 512,
                                    .max_head = 2048,
                                    .max_headers = 16,
                                    .max_body = 4096,
                                    .header_timeout_ms = 3000});
    CHECK_INT(cipc_route(t.srv, "GET", "/ping", h_text, "pong"), ==, 0);
    CHECK_INT(cipc_route(t.srv, "POST", "/echo", h_echo, NULL), ==, 0);
    port = srvt_start(&t);

    RUN(test_rules);
    RUN(test_limits);
    RUN(test_error_in_pipeline);
    RUN(test_http10_transfer_encoding);
    CHECK_INT(failures, ==, 0);

    /* The server is still healthy. */
    raw_conn c;
    raw_open(&c, port);
    raw_check_alive(&c, "/ping");
    raw_close(&c);
    srvt_stop(&t, 5000);
    srvt_free(&t);
    return 0;
}
