/* Proves the server's connection handling with raw sockets and curl: many requests on
 * one kept-alive connection, pipelined requests (3 and 50 in one write, byte by byte, a
 * streamed response in the middle) answered in order, HEAD sending headers with the GET
 * Content-Length but no body, Expect: 100-continue (raw and curl, no 1 s client wait),
 * HTTP/1.0 (closes unless keep-alive is asked; streamed bodies unframed; no 100 Continue)
 * and "Connection: close". */
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_helper.h"

#define H "Host: t\r\n"

static int port;
static char base[64];
static char tmpdir[256];

/* GET /stream: three chunks "one,", "two,", "three". */
static void h_stream(cipc_http_req *req, void *ud)
{
    (void)ud;
    CHECK_INT(cipc_http_start(req, 200, "text/plain"), ==, 0);
    CHECK_INT(cipc_http_write(req, "one,", 4), ==, 0);
    CHECK_INT(cipc_http_write(req, "two,", 4), ==, 0);
    CHECK_INT(cipc_http_write(req, "three", 5), ==, 0);
    CHECK_INT(cipc_http_end(req), ==, 0);
}

static void test_keepalive(void)
{
    raw_conn c;
    raw_resp r;
    raw_open(&c, port);
    for (int i = 0; i < 30; i++) {
        char req[256], body[32];
        int n = snprintf(body, sizeof body, "body-%d", i);
        switch (i % 3) {
        case 0:
            CHECK_INT(raw_roundtrip(&c, "GET /ping HTTP/1.1\r\n" H "\r\n", &r, 0), ==, 200);
            CHECK_STR(r.body, "pong");
            break;
        case 1:
            snprintf(req, sizeof req, "POST /echo HTTP/1.1\r\n" H "Content-Length: %d\r\n\r\n%s", n,
                     body);
            CHECK_INT(raw_roundtrip(&c, req, &r, 0), ==, 200);
            CHECK_STR(r.body, body);
            break;
        default:
            CHECK_INT(raw_roundtrip(&c, "GET /stream HTTP/1.1\r\n" H "\r\n", &r, 0), ==, 200);
            CHECK(r.chunked);
            CHECK_INT(r.chunks, ==, 3);
            CHECK_STR(r.body, "one,two,three");
            break;
        }
        CHECK(!raw_hdr_has(&r, "Connection", "close"));
        CHECK(raw_hdr_has(&r, "Date", "GMT"));
        raw_resp_free(&r);
    }
    /* "Connection: close" ends it: the response says so and the server closes. */
    CHECK_INT(raw_roundtrip(&c, "GET /ping HTTP/1.1\r\n" H "Connection: close\r\n\r\n", &r, 0), ==,
              200);
    CHECK(raw_hdr_has(&r, "Connection", "close"));
    CHECK_STR(r.body, "pong");
    raw_resp_free(&r);
    CHECK_INT(raw_wait_close(&c, 3000), ==, 1);
    raw_close(&c);

    /* curl reuses the connection for a second URL. */
    char url[128], out[256];
    snprintf(url, sizeof url, "%s/ping", base);
    const char *argv[] = {"/usr/bin/curl",      "-sS", "--noproxy", "*", "-w",
                          "|%{num_connects}\n", url,   url,         NULL};
    CHECK_INT(prog_run(argv, out, sizeof out, 20000), ==, 0);
    CHECK_STR(out, "pong|1\npong|0\n");
}

static void read_expect(raw_conn *c, int status, const char *body)
{
    raw_resp r;
    int rc = raw_read(c, &r, 0, RAW_TIMEOUT_MS);
    CHECK_INT(rc, ==, 0);
    CHECK_INT(r.status, ==, status);
    if (body)
        CHECK_STR(r.body, body);
    raw_resp_free(&r);
}

static void test_pipelining(void)
{
    raw_conn c;
    raw_open(&c, port);
    /* Three requests in one write, answered in order. */
    CHECK_INT(raw_sends(&c, "GET /ping HTTP/1.1\r\n" H "\r\n"
                            "POST /echo HTTP/1.1\r\n" H "Content-Length: 3\r\n\r\ntwo"
                            "PUT /echo HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\nthree"),
              ==, 0);
    read_expect(&c, 200, "pong");
    read_expect(&c, 200, "two");
    read_expect(&c, 200, "three");

    /* A streamed response and a chunked upload in the middle of a pipeline. */
    CHECK_INT(raw_sends(&c, "POST /echo HTTP/1.1\r\n" H "Content-Length: 1\r\n\r\na"
                            "GET /stream HTTP/1.1\r\n" H "\r\n"
                            "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
                            "2\r\nbc\r\n1\r\nd\r\n0\r\n\r\n"
                            "GET /ping HTTP/1.1\r\n" H "\r\n"),
              ==, 0);
    read_expect(&c, 200, "a");
    read_expect(&c, 200, "one,two,three");
    read_expect(&c, 200, "bcd");
    read_expect(&c, 200, "pong");

    /* 50 in one write. */
    char *big = malloc(50 * 128);
    CHECK(big != NULL);
    size_t n = 0;
    for (int i = 0; i < 50; i++)
        n += (size_t)snprintf(big + n, 128,
                              "POST /echo HTTP/1.1\r\n" H "Content-Length: %d\r\n\r\n%04d", 4, i);
    CHECK_INT(raw_send(&c, big, n), ==, 0);
    for (int i = 0; i < 50; i++) {
        char want[8];
        snprintf(want, sizeof want, "%04d", i);
        read_expect(&c, 200, want);
    }

    /* One byte per segment: the parser resumes at any byte boundary. */
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const char *slow = "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
                       "3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"
                       "GET /ping HTTP/1.1\r\n" H "\r\n";
    for (size_t i = 0; slow[i]; i++)
        CHECK_INT(raw_send(&c, slow + i, 1), ==, 0);
    read_expect(&c, 200, "abc");
    read_expect(&c, 200, "pong");
    free(big);
    raw_close(&c);
}

static void test_head(void)
{
    raw_conn c;
    raw_resp r;
    raw_open(&c, port);
    CHECK_INT(raw_roundtrip(&c, "HEAD /ping HTTP/1.1\r\n" H "\r\n", &r, 1), ==, 200);
    char v[64];
    CHECK(raw_hdr(&r, "Content-Length", v, sizeof v) != NULL);
    CHECK_STR(v, "4");
    CHECK(raw_hdr_has(&r, "Content-Type", "text/plain"));
    raw_resp_free(&r);
    /* No body bytes followed: the next response starts right away. */
    CHECK_INT(raw_roundtrip(&c, "HEAD /stream HTTP/1.1\r\n" H "\r\n", &r, 1), ==, 200);
    raw_resp_free(&r);
    CHECK_INT(raw_roundtrip(&c, "GET /ping HTTP/1.1\r\n" H "\r\n", &r, 0), ==, 200);
    CHECK_STR(r.body, "pong");
    raw_resp_free(&r);
    /* HEAD pipelined between GETs. */
    CHECK_INT(raw_sends(&c, "HEAD /ping HTTP/1.1\r\n" H "\r\nGET /ping HTTP/1.1\r\n" H "\r\n"), ==,
              0);
    CHECK_INT(raw_read(&c, &r, 1, RAW_TIMEOUT_MS), ==, 0);
    CHECK_INT(r.status, ==, 200);
    raw_resp_free(&r);
    read_expect(&c, 200, "pong");
    raw_close(&c);

    /* curl -I. */
    char url[128], out[1024];
    snprintf(url, sizeof url, "%s/ping", base);
    const char *argv[] = {"/usr/bin/curl", "-sS", "--noproxy", "*", "-I", url, NULL};
    CHECK_INT(prog_run(argv, out, sizeof out, 20000), ==, 0);
    CHECK(strncmp(out, "HTTP/1.1 200", 12) == 0);
    CHECK(peer_contains_ci(out, "\r\ncontent-length: 4\r\n"));
}

static void test_expect_continue(void)
{
    raw_conn c;
    raw_resp r;
    raw_open(&c, port);
    /* The head alone: 100 Continue, then the body, then the answer. */
    CHECK_INT(raw_sends(&c, "POST /echo HTTP/1.1\r\n" H
                            "Content-Length: 10\r\nExpect: 100-continue\r\n\r\n"),
              ==, 0);
    CHECK_INT(raw_read(&c, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    CHECK_INT(r.status, ==, 100);
    CHECK(strncmp(r.head, "HTTP/1.1 100 Continue\r\n", 23) == 0);
    raw_resp_free(&r);
    CHECK_INT(raw_sends(&c, "0123456789"), ==, 0);
    read_expect(&c, 200, "0123456789");
    /* Head and body together: a 100 is optional, the 200 must come. */
    CHECK_INT(raw_sends(&c, "POST /echo HTTP/1.1\r\n" H
                            "Content-Length: 3\r\nExpect: 100-continue\r\n\r\nxyz"),
              ==, 0);
    CHECK_INT(raw_read(&c, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    if (r.status == 100) {
        raw_resp_free(&r);
        CHECK_INT(raw_read(&c, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    }
    CHECK_INT(r.status, ==, 200);
    CHECK_STR(r.body, "xyz");
    raw_resp_free(&r);
    /* Too large: 413 at once, no 100, and the connection closes. */
    CHECK_INT(raw_sends(&c, "POST /echo HTTP/1.1\r\n" H
                            "Content-Length: 2000000\r\nExpect: 100-continue\r\n\r\n"),
              ==, 0);
    CHECK_INT(raw_read(&c, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    CHECK_INT(r.status, ==, 413);
    raw_resp_free(&r);
    CHECK_INT(raw_wait_close(&c, 3000), ==, 1);
    raw_close(&c);

    /* curl waits up to 1 s for the 100 before sending the body; it must not have to. */
    char path[300], url[128], out[256];
    snprintf(path, sizeof path, "%s/body.bin", tmpdir);
    size_t len = 200000;
    char *data = malloc(len);
    CHECK(data != NULL);
    fill_pattern(data, len, 7);
    write_file(path, data, len);
    char at[310], outpath[300];
    snprintf(at, sizeof at, "@%s", path);
    snprintf(outpath, sizeof outpath, "%s/echoed.bin", tmpdir);
    snprintf(url, sizeof url, "%s/echo", base);
    const char *argv[] = {"/usr/bin/curl",
                          "-sS",
                          "--noproxy",
                          "*",
                          "-H",
                          "Expect: 100-continue",
                          "--data-binary",
                          at,
                          "-o",
                          outpath,
                          "-w",
                          "%{http_code} %{time_total}",
                          url,
                          NULL};
    CHECK_INT(prog_run(argv, out, sizeof out, 20000), ==, 0);
    int code = 0;
    double secs = 99;
    CHECK_INT(sscanf(out, "%d %lf", &code, &secs), ==, 2);
    CHECK_INT(code, ==, 200);
    fprintf(stderr, "curl with Expect: 100-continue took %.3f s\n", secs);
    CHECK(secs < 0.9);
    size_t got = 0;
    char *echoed = read_file(outpath, &got);
    CHECK(echoed != NULL);
    CHECK_INT(got, ==, len);
    CHECK(memcmp(echoed, data, len) == 0);
    free(echoed);
    free(data);
    unlink(path);
    unlink(outpath);
}

static void test_http10(void)
{
    raw_conn c;
    raw_resp r;
    /* HTTP/1.0 without keep-alive: answered, then closed. */
    raw_open(&c, port);
    CHECK_INT(raw_roundtrip(&c, "GET /ping HTTP/1.0\r\n\r\n", &r, 0), ==, 200);
    CHECK_STR(r.body, "pong");
    CHECK(!raw_hdr_has(&r, "Connection", "keep-alive"));
    raw_resp_free(&r);
    CHECK_INT(raw_wait_close(&c, 3000), ==, 1);
    raw_close(&c);

    /* HTTP/1.0 with keep-alive: the response says keep-alive and the connection stays. */
    raw_open(&c, port);
    for (int i = 0; i < 3; i++) {
        CHECK_INT(raw_roundtrip(&c, "GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r, 0),
                  ==, 200);
        CHECK(raw_hdr_has(&r, "Connection", "keep-alive"));
        CHECK_STR(r.body, "pong");
        raw_resp_free(&r);
    }
    /* A streamed response to HTTP/1.0: no chunked framing, delimited by the close. */
    CHECK_INT(raw_roundtrip(&c, "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r, 0),
              ==, 200);
    CHECK(!r.chunked);
    CHECK(r.until_close);
    CHECK_STR(r.body, "one,two,three");
    raw_resp_free(&r);
    CHECK(c.eof);
    raw_close(&c);

    /* Expect: 100-continue from an HTTP/1.0 client is ignored (RFC 9110 10.1.1): no 100. */
    raw_open(&c, port);
    CHECK_INT(raw_sends(&c, "POST /echo HTTP/1.0\r\nExpect: 100-continue\r\n"
                            "Content-Length: 3\r\n\r\n"),
              ==, 0);
    int rc = raw_read(&c, &r, 0, 300);
    if (rc == 0) {
        fprintf(stderr, "  an HTTP/1.0 request got a %d to its Expect: 100-continue\n", r.status);
        raw_resp_free(&r);
    }
    CHECK_INT(rc, ==, RAW_TIMEOUT);
    CHECK_INT(raw_sends(&c, "abc"), ==, 0);
    CHECK_INT(raw_read(&c, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    CHECK_INT(r.status, ==, 200);
    CHECK_STR(r.body, "abc");
    raw_resp_free(&r);
    raw_close(&c);

    /* curl --http1.0: one request, one connection. */
    char url[128], out[256];
    snprintf(url, sizeof url, "%s/ping", base);
    const char *argv[] = {"/usr/bin/curl",
                          "-sS",
                          "--noproxy",
                          "*",
                          "--http1.0",
                          "-w",
                          "|%{http_version}|%{num_connects}\n",
                          url,
                          url,
                          NULL};
    CHECK_INT(prog_run(argv, out, sizeof out, 20000), ==, 0);
    CHECK_STR(out, "pong|1.1|1\npong|1.1|1\n");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    peer_clear_proxy_env();
    make_tmpdir(tmpdir, sizeof tmpdir);
    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 1, .max_body = 1024 * 1024});
    CHECK_INT(cipc_route(t.srv, "GET", "/ping", h_text, "pong"), ==, 0);
    CHECK_INT(cipc_route(t.srv, "POST", "/echo", h_echo, NULL), ==, 0);
    CHECK_INT(cipc_route(t.srv, "PUT", "/echo", h_echo, NULL), ==, 0);
    CHECK_INT(cipc_route(t.srv, "GET", "/stream", h_stream, NULL), ==, 0);
    port = srvt_start(&t);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);

    RUN(test_keepalive);
    RUN(test_pipelining);
    RUN(test_head);
    RUN(test_http10);
    RUN(test_expect_continue);

    srvt_stop(&t, 5000);
    srvt_free(&t);
    rmdir(tmpdir);
    return 0;
}
