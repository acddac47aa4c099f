/* The hub against bad input (docs/hub.md; issue 7 "Bad input"): malformed JSON, unknown
 * routes, oversized messages (413 on REST, close 1009 on a WebSocket), a wrong token, a
 * client flooding ops (close 1008) and a subscriber that never reads (closed at
 * --max-buffered): a clear error or close for that client, and everyone else unaffected. */
#include "hub_helper.h"

static hub H;

static cipc_wsc *watcher(const char *ch)
{
    cipc_wsc *c = hub_ws(&H, "/v1/ws");
    char op[128];
    snprintf(op, sizeof op, "{\"op\":\"subscribe\",\"channel\":\"%s\"}", ch);
    hub_ws_send(c, op);
    json_t *f = hub_ws_next(c, 5000);
    CHECK(f != NULL);
    CHECK_STR(json_string_value(json_object_get(f, "type")), "subscribed");
    json_decref(f);
    return c;
}

/* The watcher still gets a message published now. */
static void still_served(cipc_wsc *w, const char *ch)
{
    long long seq = hub_publish(&H, ch, "still here");
    char want[192];
    snprintf(want, sizeof want, "{\"type\":\"message\",\"channel\":\"%s\",\"seq\":%lld,\"data\":\"still here\"}", ch, seq);
    HUB_WS_EXPECT(w, want);
}

static void test_malformed_and_unknown(void)
{
    hub_res r;
    const char *bad[] = {"{bad", "", "[1,2", "{\"data\":\"x\"", "\xff\xfe"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hub_reqx(&H, "POST", "/v1/channels/j/messages", "application/json", bad[i], strlen(bad[i]),
                 NULL, 0, &r);
        HUB_STATUS(&r, 400);
        CHECK(strstr(r.ctype, "application/json") != NULL);
        CHECK(json_is_string(json_object_get(r.j, "error")));
        hub_res_free(&r);
        hub_reqx(&H, "POST", "/v1/queues/j/items", "application/json", bad[i], strlen(bad[i]),
                 NULL, 0, &r);
        HUB_STATUS(&r, 400);
        CHECK(json_is_string(json_object_get(r.j, "error")));
        hub_res_free(&r);
    }
    hub_reqx(&H, "POST", "/v1/channels/j/messages", "application/json", "{\"nodata\":1}", 12, NULL, 0, &r);
    HUB_STATUS(&r, 400);
    hub_res_free(&r);
    /* nothing was published or queued */
    hub_req(&H, "GET", "/v1/channels/j", NULL, &r);
    HUB_STATUS(&r, 404);
    hub_res_free(&r);
    hub_req(&H, "GET", "/v1/queues", NULL, &r);
    CHECK_JSON(r.j, "{\"queues\":[]}");
    hub_res_free(&r);

    const char *unknown[][2] = {{"GET", "/v1/nope"}, {"GET", "/v2/channels"}, {"GET", "/nothing/here"},
                                {"POST", "/v1/channels/x/nope"}, {"GET", "/v1/queues/x/items/y"}};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        hub_req(&H, unknown[i][0], unknown[i][1], NULL, &r);
        if (r.status != 404)
            fprintf(stderr, "%s %s -> %d %s\n", unknown[i][0], unknown[i][1], r.status, r.body);
        HUB_STATUS(&r, 404);
        CHECK(json_is_string(json_object_get(r.j, "error")));
        hub_res_free(&r);
    }
    /* bad numbers */
    hub_req(&H, "GET", "/v1/channels/x/messages?since=abc", NULL, &r);
    HUB_STATUS(&r, 400);
    hub_res_free(&r);
    hub_req(&H, "POST", "/v1/queues/x/pop?timeout=-5", NULL, &r);
    HUB_STATUS(&r, 400);
    hub_res_free(&r);
    hub_req(&H, "POST", "/v1/queues/x/pop?timeout=301", NULL, &r); /* over --max-wait 300 */
    CHECK(r.status == 400 || r.status == 204);
    hub_res_free(&r);
    /* a garbage request line: 400, connection closed, hub fine */
    int fd = hub_tcp(H.http);
    hub_tcp_send(fd, "THIS IS NOT HTTP\r\n\r\n");
    hub_stream *s = calloc(1, sizeof *s);
    s->fd = fd;
    CHECK(hub_stream_until(s, 0, "HTTP/1.1 400", 5000) != NULL);
    hub_stream_close(s);
    hub_req(&H, "GET", "/healthz", NULL, &r);
    HUB_STATUS(&r, 200);
    hub_res_free(&r);
}

static void test_oversized(void)
{
    cipc_wsc *w = watcher("big");
    /* --max-message 4096 */
    static char body[8192];
    memset(body, 'x', sizeof body);
    hub_res r;
    hub_reqx(&H, "POST", "/v1/channels/big/messages", "text/plain", body, 5000, NULL, 0, &r);
    HUB_STATUS(&r, 413);
    CHECK(json_is_string(json_object_get(r.j, "error")));
    hub_res_free(&r);
    hub_reqx(&H, "POST", "/v1/queues/big/items", "text/plain", body, 5000, NULL, 0, &r);
    HUB_STATUS(&r, 413);
    hub_res_free(&r);
    hub_reqx(&H, "POST", "/v1/channels/big/messages", "text/plain", body, 4096, NULL, 0, &r);
    HUB_STATUS(&r, 200); /* exactly the limit */
    hub_res_free(&r);
    json_t *f = hub_ws_next(w, 5000);
    CHECK(f != NULL);
    CHECK_INT(strlen(json_string_value(json_object_get(f, "data"))), ==, 4096);
    json_decref(f);
    /* over WebSocket: JSON op and raw frame -> 1009 */
    cipc_wsc *c = hub_ws(&H, "/v1/ws");
    char *op = malloc(6000);
    snprintf(op, 6000, "{\"op\":\"publish\",\"channel\":\"big\",\"data\":\"%.5000s\"}", body);
    hub_ws_send(c, op);
    free(op);
    CHECK_INT(hub_ws_wait_close(c, 5000), ==, 1009);
    cipc_wsc_free(c);
    c = hub_ws(&H, "/v1/ws/channels/big");
    CHECK_INT(cipc_wsc_send(c, CIPC_WS_BINARY, body, 5000), ==, 0);
    CHECK_INT(hub_ws_wait_close(c, 5000), ==, 1009);
    cipc_wsc_free(c);
    still_served(w, "big");
    cipc_wsc_close(w, 1000, "");
    cipc_wsc_free(w);
}

static void test_flood(void)
{
    cipc_wsc *w = watcher("flood");
    cipc_wsc *c = hub_ws(&H, "/v1/ws");
    /* --max-rate 200: 2000 ops as fast as possible */
    int sent = 0;
    for (int i = 0; i < 2000; i++, sent++)
        if (cipc_wsc_send_text(c, "{\"op\":\"publish\",\"channel\":\"flood\",\"data\":\"f\"}") != 0)
            break;
    CHECK_INT(hub_ws_wait_close(c, 10000), ==, 1008);
    cipc_wsc_free(c);
    /* the watcher got at most max-rate-ish of them, then the hub still serves it */
    int got = 0;
    json_t *f;
    while ((f = hub_ws_next(w, 300))) {
        CHECK_STR(json_string_value(json_object_get(f, "data")), "f");
        got++;
        json_decref(f);
    }
    CHECK(got <= 400);
    still_served(w, "flood");
    cipc_wsc_close(w, 1000, "");
    cipc_wsc_free(w);
    /* "WebSocket connections closed for flooding": one */
    hub_res r;
    hub_req(&H, "GET", "/metrics", NULL, &r);
    const char *m = strstr(r.body, "\ncipc_hub_rate_limited_total ");
    CHECK(m != NULL);
    if (atoi(m + 29) != 1)
        fprintf(stderr, "%.60s\n", m);
    CHECK_INT(atoi(m + 29), ==, 1);
    hub_res_free(&r);
}

/* A WebSocket client made by hand that subscribes and then never reads. */
static int lazy_subscriber(const char *ch)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)H.http)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_INT(connect(fd, (struct sockaddr *)&a, sizeof a), ==, 0);
    hub_tcp_send(fd, "GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n");
    hub_stream *s = calloc(1, sizeof *s);
    s->fd = fd;
    CHECK(hub_stream_until(s, 0, "\r\n\r\n", 5000) != NULL);
    CHECK(strstr(s->buf, "101") != NULL);
    free(s);
    char op[128];
    int n = snprintf(op, sizeof op, "{\"op\":\"subscribe\",\"channel\":\"%s\"}", ch);
    unsigned char fr[160] = {0x81, (unsigned char)(0x80 | n), 0, 0, 0, 0}; /* mask key 0 */
    memcpy(fr + 6, op, (size_t)n);
    CHECK_INT(send(fd, fr, (size_t)n + 6, MSG_NOSIGNAL), ==, n + 6);
    return fd;
}

static void test_slow_subscriber(void)
{
    cipc_wsc *w = watcher("slow");
    int lazy = lazy_subscriber("slow");
    hub_wait_subscribers(&H, "slow", 2);
    /* --max-buffered 65536: 3000 messages of 4000 bytes = 12 MB unread (more than the
     * kernel's socket buffers can hide) */
    static char body[4000];
    memset(body, 'y', sizeof body);
    for (int i = 1; i <= 3000; i++) {
        hub_res r;
        hub_reqx(&H, "POST", "/v1/channels/slow/messages", "text/plain", body, sizeof body, NULL, 0, &r);
        HUB_STATUS(&r, 200);
        hub_res_free(&r);
        json_t *f = hub_ws_next(w, 5000); /* the good subscriber keeps up */
        CHECK(f != NULL);
        CHECK_INT(json_integer_value(json_object_get(f, "seq")), ==, i);
        json_decref(f);
    }
    hub_wait_subscribers(&H, "slow", 1); /* the lazy one was closed */
    still_served(w, "slow");
    close(lazy);
    cipc_wsc_close(w, 1000, "");
    cipc_wsc_free(w);
}

static void test_wrong_token(void)
{
    hub h;
    hub_startl(&h, "--token", "right", NULL);
    snprintf(h.token, sizeof h.token, "wrong");
    hub_res r;
    hub_req(&h, "GET", "/v1/channels", NULL, &r);
    HUB_STATUS(&r, 401);
    CHECK(json_is_string(json_object_get(r.j, "error")));
    hub_res_free(&r);
    cipc_wsc *c = NULL;
    char err[256];
    CHECK(hub_ws_try(&h, "/v1/ws", NULL, 0, NULL, &c, err, sizeof err) != 0);
    CHECK(strstr(err, "401") != NULL);
    snprintf(h.token, sizeof h.token, "right");
    hub_req(&h, "GET", "/v1/channels", NULL, &r);
    HUB_STATUS(&r, 200);
    hub_res_free(&r);
    hub_stop(&h);
}

int main(void)
{
    hub_init();
    hub_startl(&H, "--max-message", "4096", "--max-rate", "200", "--max-buffered", "65536", NULL);
    RUN(test_malformed_and_unknown);
    RUN(test_oversized);
    RUN(test_slow_subscriber);
    RUN(test_wrong_token);
    RUN(test_flood);
    hub_stop(&H);
    return 0;
}
