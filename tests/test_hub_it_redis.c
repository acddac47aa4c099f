/* Multi-machine mode (docs/hub.md, --redis): two hubs on different ports share channels and
 * queues through one redis-server started here (127.0.0.1, a free port, no persistence):
 * a WebSocket subscriber on hub A receives what a REST client publishes on hub B; queue
 * items pushed on A are popped on A and B exactly once; a reservation made on A hides the
 * item from B, is acked on A only, and once expired goes back where B can take it. */
#include "hub_helper.h"

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_INT(bind(fd, (struct sockaddr *)&a, sizeof a), ==, 0);
    socklen_t len = sizeof a;
    CHECK_INT(getsockname(fd, (struct sockaddr *)&a, &len), ==, 0);
    close(fd);
    return ntohs(a.sin_port);
}

int main(void)
{
    hub_init();
    int port = free_port();
    char port_s[16], url[64];
    snprintf(port_s, sizeof port_s, "%d", port);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    const char *rs[] = {"/usr/bin/redis-server", "--bind", "127.0.0.1", "--port", port_s, "--save", "",
                        "--appendonly", "no", NULL};
    pid_t redis = hub_spawn(rs, -1, -1);
    const char *ping[] = {"/usr/bin/redis-cli", "-h", "127.0.0.1", "-p", port_s, "PING", NULL};
    int64_t end = peer_now_ms() + 10000;
    char *out = NULL;
    int up = 0;
    while (!up && peer_now_ms() < end) {
        hub_proc *p = hub_proc_start(ping);
        up = hub_proc_wait(p, 2000) == 0 && !strcmp(p->out.buf, "PONG\n");
        hub_proc_free(p);
        if (!up)
            usleep(20000);
    }
    CHECK(up);

    hub a, b;
    hub_startl(&a, "--redis", url, NULL);
    hub_startl(&b, "--redis", url, NULL);
    hub_res r;
    hub_req(&a, "GET", "/v1/stats", NULL, &r);
    HUB_STATUS(&r, 200);
    CHECK(strcmp(json_string_value(json_object_get(r.j, "mode")), "local") != 0);
    hub_res_free(&r);

    /* pub/sub across hubs */
    cipc_wsc *w = hub_ws(&a, "/v1/ws");
    hub_ws_send(w, "{\"op\":\"subscribe\",\"channel\":\"x\"}");
    HUB_WS_EXPECT(w, "{\"type\":\"subscribed\",\"channel\":\"x\",\"seq\":0}");
    for (int i = 1; i <= 20; i++) {
        char m[16];
        snprintf(m, sizeof m, "b%d", i);
        hub_publish(&b, "x", m); /* B numbers for its own clients */
    }
    for (int i = 1; i <= 20; i++) {
        char want[128];
        snprintf(want, sizeof want, "{\"type\":\"message\",\"channel\":\"x\",\"seq\":%d,\"data\":\"b%d\"}", i, i);
        HUB_WS_EXPECT(w, want);
    }
    /* and a plain Redis client's PUBLISH reaches the hub's subscriber too */
    const char *rp[] = {"/usr/bin/redis-cli", "-h", "127.0.0.1", "-p", port_s, "PUBLISH", "x", "r1", NULL};
    CHECK_INT(hub_cmd(rp, 10000, NULL), ==, 0);
    HUB_WS_EXPECT(w, "{\"type\":\"message\",\"channel\":\"x\",\"seq\":21,\"data\":\"r1\"}");

    /* queues: 20 pushed on A, popped alternately on B and A: each exactly once, FIFO */
    for (int i = 1; i <= 20; i++) {
        char m[16];
        snprintf(m, sizeof m, "j%d", i);
        hub_reqx(&a, "POST", "/v1/queues/jobs/items", "text/plain", m, strlen(m), NULL, 0, &r);
        HUB_STATUS(&r, 200);
        CHECK_INT(json_integer_value(json_object_get(r.j, "length")), ==, i);
        hub_res_free(&r);
    }
    const char *llen[] = {"/usr/bin/redis-cli", "-h", "127.0.0.1", "-p", port_s, "LLEN", "jobs", NULL};
    CHECK_INT(hub_cmd(llen, 10000, &out), ==, 0);
    CHECK_STR(out, "20\n");
    free(out);
    for (int i = 1; i <= 20; i++) {
        hub *h = i % 2 ? &b : &a;
        hub_req(h, "POST", "/v1/queues/jobs/pop", NULL, &r);
        HUB_STATUS(&r, 200);
        char want[64];
        snprintf(want, sizeof want, "{\"queue\":\"jobs\",\"data\":\"j%d\"}", i);
        CHECK_JSON(r.j, want);
        hub_res_free(&r);
    }
    hub_req(&a, "POST", "/v1/queues/jobs/pop", NULL, &r);
    HUB_STATUS(&r, 204);
    hub_res_free(&r);
    hub_req(&b, "POST", "/v1/queues/jobs/pop", NULL, &r);
    HUB_STATUS(&r, 204);
    hub_res_free(&r);

    /* reserve on A: B sees the item gone from the shared queue; a reservation lives in
     * the hub that made it (docs/hub.md), so B does not know the id and A acks it */
    hub_reqx(&a, "POST", "/v1/queues/rq/items", "text/plain", "task", 4, NULL, 0, &r);
    HUB_STATUS(&r, 200);
    hub_res_free(&r);
    hub_req(&a, "POST", "/v1/queues/rq/reserve", NULL, &r);
    HUB_STATUS(&r, 200);
    CHECK_STR(json_string_value(json_object_get(r.j, "data")), "task");
    char path[192];
    snprintf(path, sizeof path, "/v1/queues/rq/ack/%s", json_string_value(json_object_get(r.j, "id")));
    hub_res_free(&r);
    hub_req(&b, "POST", "/v1/queues/rq/reserve", NULL, &r); /* nothing left for B */
    HUB_STATUS(&r, 204);
    hub_res_free(&r);
    hub_req(&b, "POST", path, NULL, &r);
    HUB_STATUS(&r, 404);
    hub_res_free(&r);
    hub_req(&a, "POST", path, NULL, &r);
    HUB_STATUS(&r, 200);
    CHECK_JSON(r.j, "{\"acked\":true}");
    hub_res_free(&r);
    hub_req(&a, "POST", path, NULL, &r); /* once only */
    HUB_STATUS(&r, 404);
    hub_res_free(&r);
    /* an expired reservation goes back to the shared queue, where B can take it */
    hub_reqx(&a, "POST", "/v1/queues/rq/items", "text/plain", "again", 5, NULL, 0, &r);
    HUB_STATUS(&r, 200);
    hub_res_free(&r);
    hub_req(&a, "POST", "/v1/queues/rq/reserve?visibility=0.2", NULL, &r);
    HUB_STATUS(&r, 200);
    hub_res_free(&r);
    hub_req(&b, "POST", "/v1/queues/rq/pop?timeout=5", NULL, &r); /* the tick requeues it */
    HUB_STATUS(&r, 200);
    CHECK_STR(json_string_value(json_object_get(r.j, "data")), "again");
    hub_res_free(&r);

    cipc_wsc_close(w, 1000, "");
    cipc_wsc_free(w);
    hub_stop(&a);
    hub_stop(&b);
    kill(redis, SIGTERM);
    CHECK(peer_reap(redis, 10000, NULL));
    hub_child_del(redis);
    return 0;
}
