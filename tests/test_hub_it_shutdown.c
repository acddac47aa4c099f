/* The hub's graceful shutdown on SIGTERM and SIGINT (docs/hub.md, include/cipc/hub.h):
 * WebSocket clients get close 1001, a waiting long-poll gets 503 (or completes), an SSE
 * stream ends, the queues' AOF is written so the items survive a restart with --aof, and
 * the hub exits 0 within a deadline. */
#include "hub_helper.h"

/* Wait until the hub reports `n` long-polls waiting (GET /v1/stats). */
static void wait_long_polls(hub *h, int n)
{
    int64_t end = peer_now_ms() + 10000;
    for (;;) {
        hub_res r;
        hub_req(h, "GET", "/v1/stats", NULL, &r);
        HUB_STATUS(&r, 200);
        json_int_t got = json_integer_value(json_object_get(r.j, "long_polls"));
        hub_res_free(&r);
        if (got == n)
            return;
        CHECK(peer_now_ms() < end);
        usleep(5000);
    }
}

static void test_sigterm(void)
{
    char aof[128];
    hub h;
    char dir[] = "/tmp/cipc-hubit-aof-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    snprintf(aof, sizeof aof, "%s/queues.aof", dir);
    hub_startl(&h, "--aof", aof, "--appendfsync", "no", "--shutdown-timeout", "3000", NULL);

    /* queue items that must survive */
    const char *items[] = {"first", "second", "third"};
    for (int i = 0; i < 3; i++) {
        hub_res r;
        hub_reqx(&h, "POST", "/v1/queues/keep/items", "text/plain", items[i], strlen(items[i]),
                 NULL, 0, &r);
        HUB_STATUS(&r, 200);
        hub_res_free(&r);
    }
    /* a WebSocket subscriber, a raw one, an SSE stream, a long-poll */
    cipc_wsc *w = hub_ws(&h, "/v1/ws");
    hub_ws_send(w, "{\"op\":\"subscribe\",\"channel\":\"c\"}");
    HUB_WS_EXPECT(w, "{\"type\":\"subscribed\",\"channel\":\"c\",\"seq\":0}");
    cipc_wsc *raw = hub_ws(&h, "/v1/ws/channels/c");
    char url[256];
    snprintf(url, sizeof url, "%s/v1/channels/c/events", h.base);
    const char *sse_argv[] = {"/usr/bin/curl", "-sS", "-N", "--noproxy", "*", url, NULL};
    hub_proc *sse = hub_proc_start(sse_argv);
    hub_wait_subscribers(&h, "c", 3);
    CHECK_INT(hub_publish(&h, "c", "before"), ==, 1);
    HUB_WS_EXPECT(w, "{\"type\":\"message\",\"channel\":\"c\",\"seq\":1,\"data\":\"before\"}");
    CHECK(hub_stream_until(&sse->out, 0, "id: 1\ndata: before\n\n", 5000) != NULL);

    snprintf(url, sizeof url, "%s/v1/queues/empty/pop?timeout=60", h.base);
    const char *lp_argv[] = {"/usr/bin/curl", "-sS", "--noproxy", "*", "-X", "POST", "-o", "/dev/null",
                             "-w", "%{http_code}", url, NULL};
    hub_proc *lp = hub_proc_start(lp_argv);
    wait_long_polls(&h, 1);

    int64_t t0 = peer_now_ms();
    pid_t pid = h.pid;
    CHECK_INT(kill(pid, SIGTERM), ==, 0);
    /* WebSockets: 1001 */
    CHECK_INT(hub_ws_wait_close(w, 5000), ==, 1001);
    cipc_ws_msg m;
    int rc;
    do
        rc = cipc_wsc_recv(raw, &m, 5000);
    while (rc == 0);
    CHECK_INT(cipc_wsc_close_code(raw), ==, 1001);
    /* the long-poll: 503 at once (well before its 60 s) */
    CHECK_INT(hub_proc_wait(lp, 10000), ==, 0);
    if (strcmp(lp->out.buf, "503") != 0)
        fprintf(stderr, "long-poll at shutdown: %s\n", lp->out.buf);
    CHECK_STR(lp->out.buf, "503");
    /* SSE: the stream ends cleanly (curl exits 0: the chunked body was terminated) */
    CHECK_INT(hub_proc_wait(sse, 10000), ==, 0);
    /* the hub: exit 0 within the deadline */
    int st = hub_stop_status(&h, 10000);
    int64_t took = peer_now_ms() - t0;
    if (st != 0)
        hub_dump_log(&h);
    CHECK_INT(st, ==, 0);
    CHECK_INT(took, <, 5000);
    CHECK(hub_log_has(&h, "SIGTERM"));
    hub_proc_free(lp);
    hub_proc_free(sse);
    cipc_wsc_free(w);
    cipc_wsc_free(raw);
    hub_cleanup(&h);

    /* restart with the same AOF: the items are back, in order */
    struct stat sb;
    CHECK_INT(stat(aof, &sb), ==, 0);
    CHECK(sb.st_size > 0);
    hub_startl(&h, "--aof", aof, NULL);
    hub_res r;
    hub_req(&h, "GET", "/v1/queues/keep", NULL, &r);
    HUB_STATUS(&r, 200);
    CHECK_JSON(r.j, "{\"name\":\"keep\",\"length\":3,\"reserved\":0}");
    hub_res_free(&r);
    for (int i = 0; i < 3; i++) {
        hub_req(&h, "POST", "/v1/queues/keep/pop", NULL, &r);
        HUB_STATUS(&r, 200);
        CHECK_STR(json_string_value(json_object_get(r.j, "data")), items[i]);
        hub_res_free(&r);
    }
    hub_stop(&h);
    /* and a third time: the pops were logged too */
    hub_startl(&h, "--aof", aof, NULL);
    hub_req(&h, "GET", "/v1/queues/keep", NULL, &r);
    CHECK(r.status == 404 || (r.status == 200 && json_integer_value(json_object_get(r.j, "length")) == 0));
    hub_res_free(&r);
    hub_stop(&h);
    unlink(aof);
    rmdir(dir);
}

static void test_sigint_idle(void)
{
    hub h;
    hub_start(&h, NULL);
    int64_t t0 = peer_now_ms();
    kill(h.pid, SIGINT);
    int st = 0;
    CHECK(peer_reap(h.pid, 10000, &st));
    hub_child_del(h.pid);
    h.pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        hub_dump_log(&h);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_INT(peer_now_ms() - t0, <, 3000);
    cipc_session_free(h.s);
    hub_cleanup(&h);
}

/* A request in flight (a long-poll that is answered by the shutdown) does not hold the
 * hub past --shutdown-timeout even when the client never reads. */
static void test_stuck_client(void)
{
    hub h;
    hub_startl(&h, "--shutdown-timeout", "1000", NULL);
    int fd = hub_tcp(h.http); /* connected, sends half a request, never more */
    hub_tcp_send(fd, "GET /v1/stats HTTP/1.1\r\nHost: x\r\n");
    int64_t t0 = peer_now_ms();
    int st = hub_stop_status(&h, 10000);
    if (st != 0)
        hub_dump_log(&h);
    CHECK_INT(st, ==, 0);
    CHECK_INT(peer_now_ms() - t0, <, 4000);
    close(fd);
    hub_cleanup(&h);
}

int main(void)
{
    hub_init();
    RUN(test_sigterm);
    RUN(test_sigint_idle);
    RUN(test_stuck_client);
    return 0;
}
