/* End-to-end tests of the hub's Server-Sent Events (docs/hub.md): events with ids,
 * multi-line and binary payloads, resuming with Last-Event-ID and ?since=, `gap` events,
 * the keepalive comment, the subscriber count and stats. The SSE client is curl (-N), a
 * real independent peer that also undoes the chunked encoding. The hub runs with
 * --replay-count 3. */
#include "hub_helper.h"

static hub H;

/* curl -N on the channel's events with an optional extra header / query. */
static hub_proc *sse(const char *ch, const char *query, const char *header)
{
    char url[256];
    snprintf(url, sizeof url, "%s/v1/channels/%s/events%s", H.base, ch, query ? query : "");
    const char *argv[12] = {"/usr/bin/curl", "-sS", "-N", "--noproxy", "*"};
    int n = 5;
    if (header) {
        argv[n++] = "-H";
        argv[n++] = header;
    }
    argv[n++] = url;
    argv[n] = NULL;
    return hub_proc_start(argv);
}

/* `text` appears in the stream within 5 s at or after *from; *from moves past it. */
static void expect(hub_proc *p, size_t *from, const char *text)
{
    const char *at = hub_stream_until(&p->out, *from, text, 5000);
    if (!at)
        fprintf(stderr, "SSE: no \"%s\" after offset %zu in:\n%s\n", text, *from, p->out.buf);
    CHECK(at != NULL);
    *from = (size_t)(at - p->out.buf) + strlen(text);
}

/* Nothing but (optional) comments/retry after *from for `ms`. */
static void quiet(hub_proc *p, size_t from, long ms)
{
    CHECK(hub_stream_until(&p->out, from, "data:", ms) == NULL);
}

static void test_live(void)
{
    hub_proc *a = sse("s", NULL, NULL);
    hub_proc *b = sse("s", NULL, NULL);
    hub_wait_subscribers(&H, "s", 2);
    hub_wait_int(&H, "/v1/stats", "connections.sse", 2);
    hub_res r;
    hub_reqx(&H, "POST", "/v1/channels/s/messages", "text/plain", "hello", 5, NULL, 0, &r);
    HUB_STATUS(&r, 200);
    CHECK_JSON(r.j, "{\"channel\":\"s\",\"seq\":1,\"receivers\":2}");
    hub_res_free(&r);
    hub_reqx(&H, "POST", "/v1/channels/s/messages", "text/plain", "two\nlines", 9, NULL, 0, &r);
    HUB_STATUS(&r, 200);
    hub_res_free(&r);
    hub_reqx(&H, "POST", "/v1/channels/s/messages", "application/octet-stream", "\xff\x01", 2, NULL,
             0, &r);
    HUB_STATUS(&r, 200);
    hub_res_free(&r);
    /* a WebSocket publish reaches SSE too */
    cipc_wsc *w = hub_ws(&H, "/v1/ws");
    hub_ws_send(w, "{\"op\":\"publish\",\"channel\":\"s\",\"data\":\"via ws\",\"id\":1}");
    HUB_WS_EXPECT(w, "{\"type\":\"published\",\"channel\":\"s\",\"seq\":4,\"receivers\":2,\"id\":1}");
    cipc_wsc_close(w, 1000, "");
    cipc_wsc_free(w);
    hub_proc *both[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        size_t at = 0;
        expect(both[i], &at, "id: 1\ndata: hello\n\n");
        expect(both[i], &at, "id: 2\ndata: two\ndata: lines\n\n");
        const char *ev = hub_stream_until(&both[i]->out, at, "\n\n", 5000);
        CHECK(ev != NULL);
        /* the binary event: "id: 3", "event: binary", "data: /wE=" in some order */
        char block[256];
        size_t n = (size_t)(ev - both[i]->out.buf) - at + 1; /* with its last "\n" */
        CHECK(n < sizeof block);
        memcpy(block, both[i]->out.buf + at, n);
        block[n] = '\0';
        if (!strstr(block, "id: 3\n") || !strstr(block, "event: binary\n") ||
            !strstr(block, "data: /wE=\n"))
            fprintf(stderr, "binary event: %s\n", block);
        CHECK(strstr(block, "id: 3\n") && strstr(block, "event: binary\n") &&
              strstr(block, "data: /wE=\n"));
        at += n + 1;
        expect(both[i], &at, "id: 4\ndata: via ws\n\n");
        quiet(both[i], at, 100);
    }
    hub_wait_int(&H, "/v1/stats", "messages_out.sse", 8);
    hub_proc_free(a);
    hub_proc_free(b);
}

/* A client that goes away (killed curl) stops being a subscriber without waiting for a
 * message or keepalive to fail on its socket. */
static void test_disconnect(void)
{
    hub_proc *p = sse("gone", NULL, NULL);
    hub_wait_subscribers(&H, "gone", 1);
    hub_proc_free(p);
    hub_wait_subscribers(&H, "gone", 0);
    hub_wait_int(&H, "/v1/stats", "connections.sse", 0);
}

static void test_resume(void)
{
    /* s holds 2..4 (replay-count 3). Last-Event-ID: 2 -> 3, 4 */
    hub_proc *p = sse("s", NULL, "Last-Event-ID: 2");
    size_t at = 0;
    expect(p, &at, "id: 3\n");
    expect(p, &at, "id: 4\ndata: via ws\n\n");
    quiet(p, at, 200);
    CHECK_INT(hub_publish(&H, "s", "five"), ==, 5);
    expect(p, &at, "id: 5\ndata: five\n\n");
    hub_proc_free(p);
    /* ?since=4 -> 5 only */
    p = sse("s", "?since=4", NULL);
    at = 0;
    expect(p, &at, "id: 5\ndata: five\n\n");
    quiet(p, at, 200);
    hub_proc_free(p);
    /* held: 3..5. Last-Event-ID: 1 -> gap 2..2, then 3.. */
    p = sse("s", NULL, "Last-Event-ID: 1");
    at = 0;
    expect(p, &at, "event: gap\ndata: {\"from\":2,\"to\":2}\n\n");
    size_t gap_end = at;
    expect(p, &at, "id: 3\n");
    CHECK(strstr(p->out.buf, "id: 2\n") == NULL);
    CHECK(strstr(p->out.buf, "id: 1\n") == NULL);
    CHECK(gap_end < at);
    expect(p, &at, "id: 5\ndata: five\n\n");
    hub_proc_free(p);
    /* since 0 on a new channel: nothing, then live */
    p = sse("fresh", "?since=0", NULL);
    hub_wait_subscribers(&H, "fresh", 1);
    CHECK_INT(hub_publish(&H, "fresh", "first"), ==, 1);
    at = 0;
    expect(p, &at, "id: 1\ndata: first\n\n");
    CHECK(strstr(p->out.buf, "event: gap") == NULL);
    hub_proc_free(p);
}

static void test_keepalive(void)
{
    hub_proc *p = sse("idle", NULL, NULL);
    int64_t t0 = peer_now_ms();
    CHECK(hub_stream_until(&p->out, 0, ": keepalive", 20000) != NULL);
    int64_t took = peer_now_ms() - t0;
    CHECK_INT(took, >=, 10000);
    CHECK_INT(took, <=, 17000);
    hub_proc_free(p);
}

static void test_errors(void)
{
    /* wrong method on the events route, and an unknown channel sub-route */
    hub_res r;
    hub_req(&H, "POST", "/v1/channels/s/events", NULL, &r);
    CHECK(r.status == 405 || r.status == 404);
    CHECK(json_is_string(json_object_get(r.j, "error")));
    hub_res_free(&r);
}

int main(void)
{
    hub_init();
    hub_startl(&H, "--replay-count", "3", NULL);
    RUN(test_live);
    RUN(test_resume);
    RUN(test_errors);
    RUN(test_keepalive);
    RUN(test_disconnect);
    hub_stop(&H);
    return 0;
}
