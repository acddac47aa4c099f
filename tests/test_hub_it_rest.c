/* End-to-end tests of every REST route of the hub (docs/hub.md, "REST API"), against a
 * real `cipc serve` child process, with the cipc HTTP client and curl. */
#include "hub_helper.h"

static hub H;

static void test_healthz_and_dashboard(void)
{
    hub_res r;
    hub_req(&H, "GET", "/healthz", NULL, &r);
    HUB_STATUS(&r, 200);
    CHECK(strstr(r.ctype, "application/json") != NULL);
    CHECK_JSON(r.j, "{\"status\":\"ok\"}");
    hub_res_free(&r);

    hub_req(&H, "GET", "/", NULL, &r);
    HUB_STATUS(&r, 200);
    CHECK(strstr(r.ctype, "text/html") != NULL);
    CHECK(peer_contains_ci(r.body, "<html"));
    hub_res_free(&r);

    /* curl, a real independent peer */
    char url[128], *out = NULL;
    snprintf(url, sizeof url, "%s/healthz", H.base);
    const char *argv[] = {"/usr/bin/curl", "-sS", "--noproxy", "*", "-w", " %{http_code}", url, NULL};
    CHECK_INT(hub_cmd(argv, 10000, &out), ==, 0);
    CHECK_STR(out, "{\"status\":\"ok\"} 200");
    free(out);
}

static void test_publish_and_channels(void)
{
    hub_res r;
    /* raw body */
    hub_reqx(&H, "POST", "/v1/channels/news/messages", "text/plain", "hello", 5, NULL, 0, &r);
    HUB_STATUS(&r, 200);
    CHECK_JSON(r.j, "{\"channel\":\"news\",\"seq\":1,\"receivers\":0}");
    hub_res_free(&r);
    /* JSON object with a string data */
    const char *js = "{\"data\":\"second\"}";
    hub_reqx(&H, "POST", "/v1/channels/news/messages", "application/json", js, strlen(js), NULL,
             0, &r);
    HUB_STATUS(&r, 200);
    CHECK_JSON(r.j, "{\"channel\":\"news\",\"seq\":2,\"receivers\":0}");
    hub_res_free(&r);
    /* non-string data: published as its JSON text */
    js = "{\"data\":{\"a\":[1,2]}}";
    hub_reqx(&H, "POST", "/v1/channels/news/messages", "application/json", js, strlen(js), NULL,
             0, &r);
    HUB_STATUS(&r, 200);
    CHECK_JSON(r.j, "{\"channel\":\"news\",\"seq\":3,\"receivers\":0}");
    hub_res_free(&r);
    /* binary payload */
    const char bin[] = {'\xff', '\x00', '\x01'};
    hub_reqx(&H, "POST", "/v1/channels/news/messages", "application/octet-stream", bin, 3, NULL,
             0, &r);
    HUB_STATUS(&r, 200);
    CHECK_JSON(r.j, "{\"channel\":\"news\",\"seq\":4,\"receivers\":0}");
    hub_res_free(&r);
    /* another channel numbers from 1 */
    CHECK_INT(hub_publish(&H, "other", "x"), ==, 1);

    /* a subscriber counts as a receiver */
    cipc_wsc *ws = hub_ws(&H, "/v1/ws");
    hub_ws_send(ws, "{\"op\":\"subscribe\",\"channel\":\"news\"}");
    HUB_WS_EXPECT(ws, "{\"type\":\"subscribed\",\"channel\":\"news\",\"seq\":4}");
    hub_reqx(&H, "POST", "/v1/channels/news/messages", "text/plain", "five", 4, NULL, 0, &r);
    HUB_STATUS(&r, 200);
    CHECK_JSON(r.j, "{\"channel\":\"news\",\"seq\":5,\"receivers\":1}");
    hub_res_free(&r);
    HUB_WS_EXPECT(ws, "{\"type\":\"message\",\"channel\":\"news\",\"seq\":5,\"data\":\"five\"}");

    hub_req(&H, "GET", "/v1/channels", NULL, &r);
    HUB_STATUS(&r, 200);
    json_t *chs = json_object_get(r.j, "channels");
    CHECK(json_is_array(chs));
    CHECK_INT(json_array_size(chs), ==, 2);
    int seen = 0;
    for (size_t i = 0; i < json_array_size(chs); i++) {
        json_t *c = json_array_get(chs, i);
        const char *name = json_string_value(json_object_get(c, "name"));
        CHECK(name != NULL);
        if (!strcmp(name, "news")) {
            CHECK_JSON(c, "{\"name\":\"news\",\"subscribers\":1,\"seq\":5,\"buffered\":5}");
            seen |= 1;
        } else {
            CHECK_JSON(c, "{\"name\":\"other\",\"subscribers\":0,\"seq\":1,\"buffered\":1}");
            seen |= 2;
        }
    }
    CHECK_INT(seen, ==, 3);
    hub_res_free(&r);

    hub_req(&H, "GET", "/v1/channels/news", NULL, &r);
    HUB_STATUS(&r, 200);
    CHECK_JSON(r.j, "{\"name\":\"news\",\"subscribers\":1,\"seq\":5,\"buffered\":5}");
    hub_res_free(&r);
    cipc_wsc_close(ws, 1000, "");
    cipc_wsc_free(ws);
    hub_wait_subscribers(&H, "news", 0);

    hub_req(&H, "GET", "/v1/channels/never-seen", NULL, &r);
    HUB_STATUS(&r, 404);
    CHECK(json_is_string(json_object_get(r.j, "error")));
    hub_res_free(&r);
}

/* Drops fields the docs do not list (e.g. timestamps) from each message. */
static void strip_messages(json_t *j)
{
    json_t *ms = json_object_get(j, "messages");
    for (size_t i = 0; i < json_array_size(ms); i++) {
        json_t *m = json_array_get(ms, i);
        json_object_del(m, "ts_ms");
    }
}

static void test_history(void)
{
    hub_res r;
    hub_req(&H, "GET", "/v1/channels/news/messages?since=0", NULL, &r);
    HUB_STATUS(&r, 200);
    strip_messages(r.j);
    CHECK_JSON(r.j, "{\"channel\":\"news\",\"seq\":5,\"gap\":null,\"messages\":["
                    "{\"seq\":1,\"data\":\"hello\"},{\"seq\":2,\"data\":\"second\"},"
                    "{\"seq\":3,\"data\":\"{\\\"a\\\":[1,2]}\"},"
                    "{\"seq\":4,\"data_base64\":\"/wAB\"},{\"seq\":5,\"data\":\"five\"}]}");
    hub_res_free(&r);

    hub_req(&H, "GET", "/v1/channels/news/messages?since=3", NULL, &r);
    HUB_STATUS(&r, 200);
    strip_messages(r.j);
    CHECK_JSON(r.j, "{\"channel\":\"news\",\"seq\":5,\"gap\":null,\"messages\":["
                    "{\"seq\":4,\"data_base64\":\"/wAB\"},{\"seq\":5,\"data\":\"five\"}]}");
    hub_res_free(&r);

    hub_req(&H, "GET", "/v1/channels/news/messages?since=5", NULL, &r);
    HUB_STATUS(&r, 200);
    CHECK_JSON(r.j, "{\"channel\":\"news\",\"seq\":5,\"gap\":null,\"messages\":[]}");
    hub_res_free(&r);

    /* --replay-count 5 on this hub: "small" keeps only the last 5 of 8 */
    for (int i = 1; i <= 8; i++) {
        char m[16];
        snprintf(m, sizeof m, "m%d", i);
        CHECK_INT(hub_publish(&H, "small", m), ==, i);
    }
    hub_req(&H, "GET", "/v1/channels/small/messages?since=1", NULL, &r);
    HUB_STATUS(&r, 200);
    strip_messages(r.j);
    CHECK_JSON(r.j, "{\"channel\":\"small\",\"seq\":8,\"gap\":{\"from\":2,\"to\":3},\"messages\":["
                    "{\"seq\":4,\"data\":\"m4\"},{\"seq\":5,\"data\":\"m5\"},"
                    "{\"seq\":6,\"data\":\"m6\"},{\"seq\":7,\"data\":\"m7\"},"
                    "{\"seq\":8,\"data\":\"m8\"}]}");
    hub_res_free(&r);
    hub_req(&H, "GET", "/v1/channels/small/messages?since=3", NULL, &r);
    HUB_STATUS(&r, 200);
    CHECK_JSON(json_object_get(r.j, "gap"), "null");
    CHECK_INT(json_array_size(json_object_get(r.j, "messages")), ==, 5);
    hub_res_free(&r);
    hub_req(&H, "GET", "/v1/channels/small", NULL, &r);
    CHECK_JSON(r.j, "{\"name\":\"small\",\"subscribers\":0,\"seq\":8,\"buffered\":5}");
    hub_res_free(&r);
}

static void test_queues(void)
{
    hub_res r;
    const char *items[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        hub_reqx(&H, "POST", "/v1/queues/jobs/items", "text/plain", items[i], 1, NULL, 0, &r);
        HUB_STATUS(&r, 200);
        char want[64];
        snprintf(want, sizeof want, "{\"queue\":\"jobs\",\"length\":%d}", i + 1);
        CHECK_JSON(r.j, want);
        hub_res_free(&r);
    }
    const char *js = "{\"data\":\"d\"}";
    hub_reqx(&H, "POST", "/v1/queues/jobs/items", "application/json", js, strlen(js), NULL, 0,
             &r);
    CHECK_JSON(r.j, "{\"queue\":\"jobs\",\"length\":4}");
    hub_res_free(&r);

    /* FIFO */
    hub_req(&H, "POST", "/v1/queues/jobs/pop", NULL, &r);
    HUB_STATUS(&r, 200);
    CHECK_JSON(r.j, "{\"queue\":\"jobs\",\"data\":\"a\"}");
    hub_res_free(&r);

    /* reserve, then ack */
    hub_req(&H, "POST", "/v1/queues/jobs/reserve", NULL, &r);
    HUB_STATUS(&r, 200);
    CHECK_STR(json_string_value(json_object_get(r.j, "data")), "b");
    CHECK_STR(json_string_value(json_object_get(r.j, "queue")), "jobs");
    char id[64], path[160];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(r.j, "id")));
    hub_res_free(&r);
    hub_req(&H, "GET", "/v1/queues/jobs", NULL, &r);
    HUB_STATUS(&r, 200);
    CHECK_JSON(r.j, "{\"name\":\"jobs\",\"length\":2,\"reserved\":1}");
    hub_res_free(&r);
    hub_req(&H, "GET", "/v1/queues", NULL, &r);
    HUB_STATUS(&r, 200);
    CHECK_JSON(r.j, "{\"queues\":[{\"name\":\"jobs\",\"length\":2,\"reserved\":1}]}");
    hub_res_free(&r);
    snprintf(path, sizeof path, "/v1/queues/jobs/ack/%s", id);
    hub_req(&H, "POST", path, NULL, &r);
    HUB_STATUS(&r, 200);
    CHECK_JSON(r.j, "{\"acked\":true}");
    hub_res_free(&r);
    hub_req(&H, "POST", path, NULL, &r); /* twice: unknown now */
    HUB_STATUS(&r, 404);
    CHECK(json_is_string(json_object_get(r.j, "error")));
    hub_res_free(&r);
    hub_req(&H, "POST", "/v1/queues/jobs/ack/r-999999", NULL, &r);
    HUB_STATUS(&r, 404);
    hub_res_free(&r);

    /* reserve, nack: back at the head */
    hub_req(&H, "POST", "/v1/queues/jobs/reserve", NULL, &r);
    CHECK_STR(json_string_value(json_object_get(r.j, "data")), "c");
    snprintf(path, sizeof path, "/v1/queues/jobs/nack/%s",
             json_string_value(json_object_get(r.j, "id")));
    hub_res_free(&r);
    hub_req(&H, "POST", path, NULL, &r);
    HUB_STATUS(&r, 200);
    CHECK_JSON(r.j, "{\"requeued\":true}");
    hub_res_free(&r);
    hub_req(&H, "POST", "/v1/queues/jobs/pop", NULL, &r);
    CHECK_JSON(r.j, "{\"queue\":\"jobs\",\"data\":\"c\"}");
    hub_res_free(&r);

    /* reserve with a 1 s visibility, no ack: back at the head after it */
    hub_req(&H, "POST", "/v1/queues/jobs/reserve?visibility=1", NULL, &r);
    HUB_STATUS(&r, 200);
    CHECK_STR(json_string_value(json_object_get(r.j, "data")), "d");
    snprintf(path, sizeof path, "/v1/queues/jobs/ack/%s",
             json_string_value(json_object_get(r.j, "id")));
    hub_res_free(&r);
    hub_wait_int(&H, "/v1/queues/jobs", "length", 1);
    hub_req(&H, "GET", "/v1/queues/jobs", NULL, &r);
    CHECK_JSON(r.j, "{\"name\":\"jobs\",\"length\":1,\"reserved\":0}");
    hub_res_free(&r);
    hub_req(&H, "POST", path, NULL, &r); /* expired */
    HUB_STATUS(&r, 404);
    hub_res_free(&r);
    hub_req(&H, "POST", "/v1/queues/jobs/pop", NULL, &r);
    CHECK_JSON(r.j, "{\"queue\":\"jobs\",\"data\":\"d\"}");
    hub_res_free(&r);

    /* empty: 204 now (timeout 0), 204 after ~1 s with timeout=1 */
    hub_req(&H, "POST", "/v1/queues/jobs/pop", NULL, &r);
    HUB_STATUS(&r, 204);
    hub_res_free(&r);
    hub_req(&H, "POST", "/v1/queues/jobs/reserve", NULL, &r);
    HUB_STATUS(&r, 204);
    hub_res_free(&r);
    int64_t t0 = peer_now_ms();
    hub_req(&H, "POST", "/v1/queues/jobs/pop?timeout=1", NULL, &r);
    int64_t took = peer_now_ms() - t0;
    HUB_STATUS(&r, 204);
    hub_res_free(&r);
    CHECK_INT(took, >=, 900);
    CHECK_INT(took, <, 5000);

    /* a long-poll answered by a push from a second client (curl, in the background) */
    char url[160];
    snprintf(url, sizeof url, "%s/v1/queues/jobs/items", H.base);
    const char *push[] = {"/bin/sh", "-c", "sleep 0.3; exec /usr/bin/curl -sS --noproxy '*' -X POST --data-binary late \"$0\"", url, NULL};
    hub_proc *p = hub_proc_start(push);
    t0 = peer_now_ms();
    hub_reqx(&H, "POST", "/v1/queues/jobs/pop?timeout=10", NULL, NULL, 0, NULL, 20000, &r);
    took = peer_now_ms() - t0;
    HUB_STATUS(&r, 200);
    CHECK_JSON(r.j, "{\"queue\":\"jobs\",\"data\":\"late\"}");
    hub_res_free(&r);
    CHECK_INT(took, <, 5000);
    CHECK_INT(hub_proc_wait(p, 10000), ==, 0);
    CHECK(strstr(p->out.buf, "\"length\":1") != NULL); /* the push made length 1 */
    hub_proc_free(p);
    hub_wait_int(&H, "/v1/queues/jobs", "length", 0);
}

static void test_stats_and_metrics(void)
{
    hub_res r;
    hub_req(&H, "GET", "/v1/stats", NULL, &r);
    HUB_STATUS(&r, 200);
    CHECK_STR(json_string_value(json_object_get(r.j, "mode")), "local");
    CHECK(json_is_integer(json_object_get(r.j, "uptime_s")));
    CHECK(peer_jint(r.j, "http_requests") > 10);
    /* 5 on news, 1 on other, 8 on small, all by REST */
    CHECK_INT(peer_jint(r.j, "messages_in.rest"), ==, 14);
    CHECK_INT(peer_jint(r.j, "messages_in.ws"), ==, 0);
    CHECK_INT(peer_jint(r.j, "messages_in.resp"), ==, 0);
    CHECK_INT(peer_jint(r.j, "messages_out.ws"), ==, 1);
    CHECK_INT(peer_jint(r.j, "messages_out.sse"), ==, 0);
    CHECK_INT(peer_jint(r.j, "connections.ws"), ==, 0);
    CHECK_INT(peer_jint(r.j, "connections.sse"), ==, 0);
    CHECK_INT(peer_jint(r.j, "connections.resp"), ==, 0);
    CHECK_INT(json_array_size(json_object_get(r.j, "channels")), ==, 3);
    CHECK(json_is_array(json_object_get(r.j, "queues")));
    hub_res_free(&r);

    hub_req(&H, "GET", "/metrics", NULL, &r);
    HUB_STATUS(&r, 200);
    CHECK(strstr(r.ctype, "text/plain") != NULL);
    CHECK(strstr(r.body, "# TYPE ") != NULL);
    CHECK(strstr(r.body, "cipc_hub_messages_in_total{transport=\"rest\"} 14\n") != NULL);
    CHECK(strstr(r.body, "cipc_hub_channel_seq{channel=\"news\"} 5\n") != NULL);
    hub_res_free(&r);
}

int main(void)
{
    hub_init();
    hub_startl(&H, "--replay-count", "5", NULL);
    RUN(test_healthz_and_dashboard);
    RUN(test_publish_and_channels);
    RUN(test_history);
    RUN(test_queues);
    RUN(test_stats_and_metrics);
    hub_stop(&H);
    return 0;
}
