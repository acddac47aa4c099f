/* Proves the server (two workers) holds up under connection churn and bad input: 1000
 * sequential connections (half closed by the server, half by the client) are each
 * answered, 200 concurrent connections each get their own echo back and stay usable,
 * and a few hundred connections of random bytes and mutated requests each end with an
 * answer or a close (never a hang or a crash), after which a good request is served. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_helper.h"

#define H "Host: t\r\n"

static int port;

static void test_sequential(void)
{
    for (int i = 0; i < 1000; i++) {
        raw_conn c;
        raw_resp r;
        raw_open(&c, port);
        if (i % 2 == 0) {
            CHECK_INT(
                raw_roundtrip(&c, "GET /ping HTTP/1.1\r\n" H "Connection: close\r\n\r\n", &r, 0),
                ==, 200);
            CHECK_STR(r.body, "pong");
            raw_resp_free(&r);
            CHECK_INT(raw_wait_close(&c, 3000), ==, 1);
        } else {
            CHECK_INT(raw_roundtrip(&c, "GET /ping HTTP/1.1\r\n" H "\r\n", &r, 0), ==, 200);
            CHECK_STR(r.body, "pong");
            raw_resp_free(&r);
        }
        raw_close(&c);
    }
}

static void test_concurrent(void)
{
    enum { N = 200 };
    static raw_conn c[N];
    char req[256], body[32];
    raw_resp r;
    for (int i = 0; i < N; i++)
        raw_open(&c[i], port);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            int n = snprintf(body, sizeof body, "conn-%d-round-%d", i, round);
            snprintf(req, sizeof req, "POST /echo HTTP/1.1\r\n" H "Content-Length: %d\r\n\r\n%s", n,
                     body);
            CHECK_INT(raw_sends(&c[i], req), ==, 0);
        }
        for (int i = 0; i < N; i++) {
            snprintf(body, sizeof body, "conn-%d-round-%d", i, round);
            CHECK_INT(raw_read(&c[i], &r, 0, RAW_TIMEOUT_MS), ==, 0);
            CHECK_INT(r.status, ==, 200);
            CHECK_STR(r.body, body);
            raw_resp_free(&r);
        }
    }
    for (int i = 0; i < N; i++)
        raw_close(&c[i]);
}

static uint32_t rng = 2463534242u;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* Bad input number `i` into buf; returns its length. */
static size_t make_garbage(int i, char *buf, size_t cap)
{
    static const char *const seeds[] = {
        "GET /ping HTTP/1.1\r\nHost: t\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
        ("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: "
         "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        "GET /users/%41?a=1&b=%zz HTTP/1.1\r\nHost: t\r\nX-A: b\r\n\r\n",
    };
    size_t n = 0;
    switch (i % 4) {
    case 0: /* random bytes */
        n = 1 + rnd() % 2048;
        for (size_t k = 0; k < n; k++)
            buf[k] = (char)rnd();
        break;
    case 1: /* random printable text with line breaks */
        n = 1 + rnd() % 2048;
        for (size_t k = 0; k < n; k++) {
            uint32_t x = rnd() % 100;
            buf[k] = x < 5 ? '\r' : x < 10 ? '\n' : x < 14 ? ':' : (char)(' ' + rnd() % 95);
        }
        break;
    default: { /* a valid request with a few bytes changed, inserted or cut */
        const char *s = seeds[rnd() % 4];
        n = strlen(s);
        memcpy(buf, s, n);
        int edits = 1 + (int)(rnd() % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = rnd() % n;
            static const char specials[] = {'\r', '\n', '\0', ' ', ':', '\x7f', '\x80', '\t'};
            switch (rnd() % 3) {
            case 0:
                buf[at] = (char)rnd();
                break;
            case 1:
                if (n + 1 < cap) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = specials[rnd() % sizeof specials];
                    n++;
                }
                break;
            default:
                n = at + 1;
                break;
            }
        }
        break;
    }
    }
    return n;
}

static void test_garbage(void)
{
    enum { BATCH = 100, BATCHES = 3 };
    static raw_conn c[BATCH];
    char buf[4096];
    int answered = 0, closed = 0, statuses[6] = {0};
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < BATCH; i++) {
            raw_open(&c[i], port);
            size_t n = make_garbage(b * BATCH + i, buf, sizeof buf);
            int rc = raw_send(&c[i], buf, n);
            CHECK(rc == 0 || rc == -EPIPE || rc == -ECONNRESET);
        }
        for (int i = 0; i < BATCH; i++) {
            raw_resp r;
            /* An answer or a close within the timeouts (300 ms) plus slack. */
            int rc = raw_read(&c[i], &r, 0, 5000);
            if (rc == 0) {
                CHECK_INT(r.status, >=, 100);
                CHECK_INT(r.status, <=, 599);
                statuses[r.status / 100]++;
                answered++;
                raw_resp_free(&r);
            } else {
                if (rc != RAW_CLOSED)
                    fprintf(stderr, "garbage %d: raw code %d\n", b * BATCH + i, rc);
                CHECK_INT(rc, ==, RAW_CLOSED);
                closed++;
            }
            raw_close(&c[i]);
        }
    }
    fprintf(stderr, "  %d answered (2xx %d, 4xx %d, 5xx %d), %d closed without an answer\n",
            answered, statuses[2], statuses[4], statuses[5], closed);

    /* Specific nasty inputs. */
    static char big[70000];
    memset(big, '\r', 1000);
    memset(big + 1000, '\n', 1000);
    raw_conn x;
    raw_resp r;
    int st = raw_one(port, &x, big, 2000, &r);
    CHECK(st == RAW_CLOSED || st == 400);
    if (st > 0)
        raw_resp_free(&r);
    raw_close(&x);
    /* A header line that never ends: 431 (max_head 64 KiB), not unbounded buffering. */
    size_t n = (size_t)snprintf(big, sizeof big, "GET /ping HTTP/1.1\r\n" H "X-Long: ");
    memset(big + n, 'a', sizeof big - n);
    st = raw_one(port, &x, big, sizeof big, &r);
    CHECK_INT(st, ==, 431);
    raw_resp_free(&r);
    raw_close(&x);

    raw_open(&x, port);
    raw_check_alive(&x, "/ping");
    raw_close(&x);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 2,
                                    .header_timeout_ms = 300,
                                    .body_timeout_ms = 300,
                                    .idle_timeout_ms = 2000});
    CHECK_INT(cipc_route(t.srv, "GET", "/ping", h_text, "pong"), ==, 0);
    CHECK_INT(cipc_route(t.srv, "POST", "/echo", h_echo, NULL), ==, 0);
    CHECK_INT(cipc_route(t.srv, "GET", "/users/{id}", h_info, NULL), ==, 0);
    port = srvt_start(&t);

    RUN(test_sequential);
    RUN(test_concurrent);
    RUN(test_garbage);

    srvt_stop(&t, 5000);
    srvt_free(&t);
    return 0;
}
