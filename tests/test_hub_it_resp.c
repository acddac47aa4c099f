/* End-to-end tests of the hub's RESP port (docs/hub.md) with redis-cli and python3-redis,
 * and the three-way bridge: REST, WebSocket and RESP publishers at once, WebSocket (JSON
 * and raw), SSE and RESP subscribers; every subscriber gets every message exactly once,
 * in order per publisher, and the hub's seq numbers have no hole. */
#include <pthread.h>

#include "hub_helper.h"

static hub H;
static char script[512], port_s[16];

static int cli(char **out, const char *a, const char *b, const char *c, const char *d)
{
    const char *argv[] = {"/usr/bin/redis-cli", "-h", "127.0.0.1", "-p", port_s, a, b, c, d, NULL};
    return hub_cmd(argv, 10000, out);
}

static void test_redis_cli(void)
{
    char *out = NULL;
    CHECK_INT(cli(&out, "PING", NULL, NULL, NULL), ==, 0);
    CHECK_STR(out, "PONG\n");
    free(out);

    cipc_wsc *w = hub_ws(&H, "/v1/ws");
    hub_ws_send(w, "{\"op\":\"subscribe\",\"channel\":\"rc\"}");
    HUB_WS_EXPECT(w, "{\"type\":\"subscribed\",\"channel\":\"rc\",\"seq\":0}");
    CHECK_INT(cli(&out, "PUBLISH", "rc", "from redis-cli", NULL), ==, 0);
    CHECK_STR(out, "1\n"); /* the WebSocket subscriber */
    free(out);
    HUB_WS_EXPECT(w, "{\"type\":\"message\",\"channel\":\"rc\",\"seq\":1,\"data\":\"from redis-cli\"}");
    cipc_wsc_close(w, 1000, "");
    cipc_wsc_free(w);

    /* queues are shared: REST push, redis-cli sees the list; redis-cli LPUSH, REST pops */
    hub_res r;
    hub_reqx(&H, "POST", "/v1/queues/q/items", "text/plain", "one", 3, NULL, 0, &r);
    HUB_STATUS(&r, 200);
    hub_res_free(&r);
    CHECK_INT(cli(&out, "LPUSH", "q", "two", NULL), ==, 0);
    CHECK_STR(out, "2\n");
    free(out);
    CHECK_INT(cli(&out, "LRANGE", "q", "0", "-1"), ==, 0);
    CHECK_STR(out, "two\none\n");
    free(out);
    hub_req(&H, "POST", "/v1/queues/q/pop", NULL, &r);
    CHECK_JSON(r.j, "{\"queue\":\"q\",\"data\":\"one\"}");
    hub_res_free(&r);
    CHECK_INT(cli(&out, "RPOP", "q", NULL, NULL), ==, 0);
    CHECK_STR(out, "two\n");
    free(out);
    hub_req(&H, "GET", "/v1/queues/q", NULL, &r);
    HUB_STATUS(&r, 200);
    CHECK_JSON(r.j, "{\"name\":\"q\",\"length\":0,\"reserved\":0}");
    hub_res_free(&r);

    /* a blocking pop on the RESP side is answered by a REST push */
    const char *argv[] = {"/usr/bin/redis-cli", "-h", "127.0.0.1", "-p", port_s, "BRPOP", "bq", "10", NULL};
    hub_proc *p = hub_proc_start(argv);
    hub_wait_int(&H, "/v1/stats", "connections.resp", 1);
    hub_reqx(&H, "POST", "/v1/queues/bq/items", "text/plain", "wake", 4, NULL, 0, &r);
    HUB_STATUS(&r, 200);
    hub_res_free(&r);
    CHECK_INT(hub_proc_wait(p, 10000), ==, 0);
    CHECK_STR(p->out.buf, "bq\nwake\n");
    hub_proc_free(p);
}

static void test_python_redis(void)
{
    char *out = NULL;
    const char *q[] = {HUB_PY, script, "queue", port_s, "pyq", NULL};
    CHECK_INT(hub_cmd(q, 30000, &out), ==, 0);
    CHECK_STR(out, "OK\n");
    free(out);
    hub_res r; /* left: x2, x1 (x0 popped): REST pops from the right */
    hub_req(&H, "POST", "/v1/queues/pyq/pop", NULL, &r);
    CHECK_JSON(r.j, "{\"queue\":\"pyq\",\"data\":\"x1\"}");
    hub_res_free(&r);

    /* a redis-py subscriber receives REST and WebSocket publishes */
    const char *s[] = {HUB_PY, script, "sub", port_s, "py", "2", NULL};
    hub_proc *p = hub_proc_start(s);
    CHECK(hub_stream_until(&p->out, 0, "READY\n", 20000) != NULL); /* subscribed */
    hub_reqx(&H, "POST", "/v1/channels/py/messages", "text/plain", "rest msg", 8, NULL, 0, &r);
    CHECK_JSON(r.j, "{\"channel\":\"py\",\"seq\":1,\"receivers\":1}");
    hub_res_free(&r);
    cipc_wsc *w = hub_ws(&H, "/v1/ws");
    hub_ws_send(w, "{\"op\":\"publish\",\"channel\":\"py\",\"data\":\"ws msg\",\"id\":9}");
    HUB_WS_EXPECT(w, "{\"type\":\"published\",\"channel\":\"py\",\"seq\":2,\"receivers\":1,\"id\":9}");
    cipc_wsc_close(w, 1000, "");
    cipc_wsc_free(w);
    CHECK_INT(hub_proc_wait(p, 20000), ==, 0);
    CHECK_STR(p->out.buf, "READY\nMSG rest msg\nMSG ws msg\n");
    hub_proc_free(p);
}

/* --- The bridge ------------------------------------------------------------------- */

#define NPUB 50  /* per publisher */
#define NCLI 3   /* redis-cli publishes */
#define NALL (3 * NPUB + NCLI)

static void *rest_publisher(void *arg)
{
    (void)arg;
    cipc_session *s = peer_session(NULL, (cipc_session_opts){.base_url = H.base, .proxy = ""});
    for (int i = 1; i <= NPUB; i++) {
        char body[32];
        snprintf(body, sizeof body, "rest%d", i);
        cipc_response *r = NULL;
        cipc_request_opts o = {.body = body, .body_len = strlen(body), .content_type = "text/plain"};
        CHECK_INT(cipc_request(s, "POST", "/v1/channels/bridge/messages", &o, &r), ==, 0);
        CHECK_INT(cipc_response_status(r), ==, 200);
        cipc_response_free(r);
    }
    cipc_session_free(s);
    return NULL;
}

typedef struct tally {
    const char *who;
    int next[4]; /* rest, ws, py, cli */
    int total;
} tally;

static void count(tally *t, const char *data)
{
    static const char *const prefix[4] = {"rest", "ws", "py", "cli"};
    for (int k = 0; k < 4; k++) {
        size_t n = strlen(prefix[k]);
        if (!strncmp(data, prefix[k], n) && data[n] >= '1' && data[n] <= '9') {
            int i = atoi(data + n);
            if (i != t->next[k] + 1)
                fprintf(stderr, "%s: got %s after %s%d\n", t->who, data, prefix[k], t->next[k]);
            CHECK_INT(i, ==, t->next[k] + 1);
            t->next[k] = i;
            t->total++;
            return;
        }
    }
    fprintf(stderr, "%s: unexpected message \"%s\"\n", t->who, data);
    CHECK(0);
}

static void check_tally(const tally *t)
{
    CHECK_INT(t->total, ==, NALL);
    CHECK_INT(t->next[0], ==, NPUB);
    CHECK_INT(t->next[1], ==, NPUB);
    CHECK_INT(t->next[2], ==, NPUB);
    CHECK_INT(t->next[3], ==, NCLI);
}

static void test_bridge(void)
{
    /* subscribers: WebSocket JSON, raw WebSocket, SSE (curl), RESP (python3-redis) */
    cipc_wsc *wj = hub_ws(&H, "/v1/ws");
    hub_ws_send(wj, "{\"op\":\"subscribe\",\"channel\":\"bridge\"}");
    HUB_WS_EXPECT(wj, "{\"type\":\"subscribed\",\"channel\":\"bridge\",\"seq\":0}");
    cipc_wsc *wr = hub_ws(&H, "/v1/ws/channels/bridge");
    char url[256];
    snprintf(url, sizeof url, "%s/v1/channels/bridge/events", H.base);
    const char *sse_argv[] = {"/usr/bin/curl", "-sS", "-N", "--noproxy", "*", url, NULL};
    hub_proc *sse = hub_proc_start(sse_argv);
    char nall[16];
    snprintf(nall, sizeof nall, "%d", NALL);
    const char *sub_argv[] = {HUB_PY, script, "sub", port_s, "bridge", nall, NULL};
    hub_proc *rsub = hub_proc_start(sub_argv);
    CHECK(hub_stream_until(&rsub->out, 0, "READY\n", 20000) != NULL);
    hub_wait_subscribers(&H, "bridge", 4);

    /* publishers at once: REST (thread), python3-redis (process), WebSocket (here) */
    char npub[16];
    snprintf(npub, sizeof npub, "%d", NPUB);
    const char *pub_argv[] = {HUB_PY, script, "pub", port_s, "bridge", "py", npub, NULL};
    hub_proc *ppub = hub_proc_start(pub_argv);
    pthread_t t;
    CHECK_INT(pthread_create(&t, NULL, rest_publisher, NULL), ==, 0);
    cipc_wsc *wp = hub_ws(&H, "/v1/ws");
    for (int i = 1; i <= NPUB; i++) {
        char op[128];
        snprintf(op, sizeof op, "{\"op\":\"publish\",\"channel\":\"bridge\",\"data\":\"ws%d\"}", i);
        hub_ws_send(wp, op);
    }
    for (int i = 1; i <= NCLI; i++) {
        char m[16];
        snprintf(m, sizeof m, "cli%d", i);
        CHECK_INT(cli(NULL, "PUBLISH", "bridge", m, NULL), ==, 0);
    }
    pthread_join(t, NULL);
    CHECK_INT(hub_proc_wait(ppub, 30000), ==, 0);
    CHECK_STR(ppub->out.buf, "OK\n");
    hub_proc_free(ppub);

    /* WebSocket JSON: seq 1..NALL without a hole */
    tally tj = {.who = "ws json"}, tr = {.who = "ws raw"}, ts = {.who = "sse"}, tp = {.who = "resp"};
    for (int i = 1; i <= NALL; i++) {
        json_t *f = hub_ws_next(wj, 10000);
        CHECK(f != NULL);
        CHECK_STR(json_string_value(json_object_get(f, "type")), "message");
        CHECK_STR(json_string_value(json_object_get(f, "channel")), "bridge");
        CHECK_INT(json_integer_value(json_object_get(f, "seq")), ==, i);
        count(&tj, json_string_value(json_object_get(f, "data")));
        json_decref(f);
    }
    for (int i = 1; i <= NALL; i++) {
        cipc_ws_msg m;
        CHECK_INT(cipc_wsc_recv(wr, &m, 10000), ==, 0);
        char d[64];
        CHECK(m.len < sizeof d);
        memcpy(d, m.data, m.len);
        d[m.len] = '\0';
        count(&tr, d);
    }
    /* SSE: ids 1..NALL */
    size_t at = 0;
    for (int i = 1; i <= NALL; i++) {
        char head[32];
        snprintf(head, sizeof head, "id: %d\ndata: ", i);
        const char *p = hub_stream_until(&sse->out, at, head, 10000);
        if (!p)
            fprintf(stderr, "sse: no \"%s\" after %zu\n", head, at);
        CHECK(p != NULL);
        p += strlen(head);
        const char *e = hub_stream_until(&sse->out, (size_t)(p - sse->out.buf), "\n", 5000);
        CHECK(e != NULL);
        char d[64];
        CHECK((size_t)(e - p) < sizeof d);
        memcpy(d, p, (size_t)(e - p));
        d[e - p] = '\0';
        count(&ts, d);
        at = (size_t)(e - sse->out.buf);
    }
    /* RESP */
    CHECK_INT(hub_proc_wait(rsub, 30000), ==, 0);
    char *line = strstr(rsub->out.buf, "READY\n");
    CHECK(line != NULL);
    line += 6;
    while (*line) {
        CHECK(!strncmp(line, "MSG ", 4));
        char *nl = strchr(line, '\n');
        CHECK(nl != NULL);
        *nl = '\0';
        count(&tp, line + 4);
        line = nl + 1;
    }
    check_tally(&tj);
    check_tally(&tr);
    check_tally(&ts);
    check_tally(&tp);
    hub_ws_quiet(wj, 200);

    hub_res r;
    hub_req(&H, "GET", "/v1/stats", NULL, &r);
    HUB_STATUS(&r, 200);
    CHECK_INT(peer_jint(r.j, "messages_in.ws"), ==, NPUB + 1);      /* + the py channel's */
    CHECK_INT(peer_jint(r.j, "messages_in.resp"), ==, NPUB + NCLI + 1); /* + rc's */
    hub_res_free(&r);

    hub_proc_free(sse);
    hub_proc_free(rsub);
    cipc_wsc_close(wp, 1000, "");
    cipc_wsc_free(wp);
    cipc_wsc_close(wj, 1000, "");
    cipc_wsc_free(wj);
    cipc_wsc_close(wr, 1000, "");
    cipc_wsc_free(wr);
}

/* A channel that only a RESP client subscribed to is a channel the hub has seen: listed
 * with its subscriber (as one a WebSocket subscribed to is). */
static void test_resp_subscriber_listed(void)
{
    const char *s[] = {HUB_PY, script, "sub", port_s, "resp-only", "1", NULL};
    hub_proc *p = hub_proc_start(s);
    CHECK(hub_stream_until(&p->out, 0, "READY\n", 20000) != NULL);
    hub_wait_subscribers(&H, "resp-only", 1);
    CHECK_INT(hub_publish(&H, "resp-only", "x"), ==, 1);
    CHECK_INT(hub_proc_wait(p, 20000), ==, 0);
    hub_proc_free(p);
}

int main(void)
{
    hub_init();
    hub_start(&H, NULL);
    snprintf(port_s, sizeof port_s, "%d", H.resp);
    hub_peer_script("hub_redis.py", script, sizeof script);
    RUN(test_redis_cli);
    RUN(test_python_redis);
    RUN(test_bridge);
    RUN(test_resp_subscriber_listed);
    hub_stop(&H);
    return 0;
}
