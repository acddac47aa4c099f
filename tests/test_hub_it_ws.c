/* End-to-end tests of the hub's WebSocket endpoints (docs/hub.md): the JSON protocol on
 * /v1/ws (every op, every frame type, errors), resuming with `since` (exactly what was
 * missed, a `gap` when the buffer no longer holds it, a `reset` gap after a restart), and
 * the raw per-channel sockets /v1/ws/channels/{name}. The hub runs with
 * --replay-count 5. */
#include <pthread.h>

#include "hub_helper.h"

static hub H;

static cipc_wsc *subscribed(const char *ch, long long seq)
{
    cipc_wsc *c = hub_ws(&H, "/v1/ws");
    char op[256], want[256];
    snprintf(op, sizeof op, "{\"op\":\"subscribe\",\"channel\":\"%s\"}", ch);
    hub_ws_send(c, op);
    snprintf(want, sizeof want, "{\"type\":\"subscribed\",\"channel\":\"%s\",\"seq\":%lld}", ch, seq);
    HUB_WS_EXPECT(c, want);
    return c;
}

static void bye(cipc_wsc *c)
{
    cipc_wsc_close(c, 1000, "");
    cipc_wsc_free(c);
}

static void test_ops(void)
{
    cipc_wsc *sub = hub_ws(&H, "/v1/ws");
    hub_ws_send(sub, "{\"op\":\"subscribe\",\"channels\":[\"a\",\"b\"],\"id\":7}");
    HUB_WS_EXPECT(sub, "{\"type\":\"subscribed\",\"channel\":\"a\",\"seq\":0,\"id\":7}");
    HUB_WS_EXPECT(sub, "{\"type\":\"subscribed\",\"channel\":\"b\",\"seq\":0,\"id\":7}");
    hub_ws_send(sub, "{\"op\":\"psubscribe\",\"pattern\":\"news.*\"}");
    HUB_WS_EXPECT(sub, "{\"type\":\"psubscribed\",\"pattern\":\"news.*\"}");
    hub_ws_send(sub, "{\"op\":\"ping\"}");
    HUB_WS_EXPECT(sub, "{\"type\":\"pong\"}");
    hub_ws_send(sub, "{\"op\":\"ping\",\"id\":\"p1\"}");
    HUB_WS_EXPECT(sub, "{\"type\":\"pong\",\"id\":\"p1\"}");

    cipc_wsc *pub = hub_ws(&H, "/v1/ws");
    hub_ws_send(pub, "{\"op\":\"publish\",\"channel\":\"a\",\"data\":\"hello\",\"id\":1}");
    HUB_WS_EXPECT(pub, "{\"type\":\"published\",\"channel\":\"a\",\"seq\":1,\"receivers\":1,\"id\":1}");
    HUB_WS_EXPECT(sub, "{\"type\":\"message\",\"channel\":\"a\",\"seq\":1,\"data\":\"hello\"}");
    /* without id: no acknowledgement, but delivered */
    hub_ws_send(pub, "{\"op\":\"publish\",\"channel\":\"b\",\"data\":\"quiet\"}");
    HUB_WS_EXPECT(sub, "{\"type\":\"message\",\"channel\":\"b\",\"seq\":1,\"data\":\"quiet\"}");
    hub_ws_send(pub, "{\"op\":\"publish\",\"channel\":\"news.uk\",\"data\":\"hi\",\"id\":2}");
    HUB_WS_EXPECT(pub, "{\"type\":\"published\",\"channel\":\"news.uk\",\"seq\":1,\"receivers\":1,\"id\":2}");
    HUB_WS_EXPECT(sub, "{\"type\":\"message\",\"channel\":\"news.uk\",\"pattern\":\"news.*\",\"seq\":1,\"data\":\"hi\"}");
    /* a REST publish reaches the socket; binary as data_base64 */
    const char bin[] = {'\x00', '\xfe', 'A'};
    hub_res r;
    hub_reqx(&H, "POST", "/v1/channels/a/messages", "application/octet-stream", bin, 3, NULL, 0, &r);
    HUB_STATUS(&r, 200);
    CHECK_JSON(r.j, "{\"channel\":\"a\",\"seq\":2,\"receivers\":1}");
    hub_res_free(&r);
    HUB_WS_EXPECT(sub, "{\"type\":\"message\",\"channel\":\"a\",\"seq\":2,\"data_base64\":\"AP5B\"}");
    /* non-string data is published as its JSON text */
    hub_ws_send(pub, "{\"op\":\"publish\",\"channel\":\"a\",\"data\":{\"k\":1},\"id\":3}");
    HUB_WS_EXPECT(pub, "{\"type\":\"published\",\"channel\":\"a\",\"seq\":3,\"receivers\":1,\"id\":3}");
    HUB_WS_EXPECT(sub, "{\"type\":\"message\",\"channel\":\"a\",\"seq\":3,\"data\":\"{\\\"k\\\":1}\"}");

    /* unsubscribe one, then punsubscribe, then unsubscribe all */
    hub_ws_send(sub, "{\"op\":\"unsubscribe\",\"channel\":\"a\"}");
    HUB_WS_EXPECT(sub, "{\"type\":\"unsubscribed\",\"channel\":\"a\"}");
    hub_ws_send(sub, "{\"op\":\"punsubscribe\",\"pattern\":\"news.*\",\"id\":4}");
    /* the reply's exact name is not in the docs' list: any frame carrying id 4 */
    json_t *f = hub_ws_next(sub, 5000);
    CHECK(f != NULL);
    CHECK_INT(json_integer_value(json_object_get(f, "id")), ==, 4);
    CHECK(json_object_get(f, "error") == NULL);
    json_decref(f);
    CHECK_INT(hub_publish(&H, "a", "gone"), ==, 4);
    CHECK_INT(hub_publish(&H, "news.uk", "gone"), ==, 2);
    CHECK_INT(hub_publish(&H, "b", "still"), ==, 2);
    HUB_WS_EXPECT(sub, "{\"type\":\"message\",\"channel\":\"b\",\"seq\":2,\"data\":\"still\"}");
    hub_ws_send(sub, "{\"op\":\"unsubscribe\"}");
    HUB_WS_EXPECT(sub, "{\"type\":\"unsubscribed\",\"channel\":\"b\"}");
    CHECK_INT(hub_publish(&H, "b", "gone"), ==, 3);
    hub_ws_send(sub, "{\"op\":\"ping\"}");
    HUB_WS_EXPECT(sub, "{\"type\":\"pong\"}"); /* and nothing before it */

    bye(pub);
    bye(sub);
}

static void test_errors(void)
{
    cipc_wsc *c = hub_ws(&H, "/v1/ws");
    hub_ws_send(c, "{\"op\":\"x\",\"id\":1}");
    HUB_WS_EXPECT(c, "{\"type\":\"error\",\"error\":\"unknown op 'x'\",\"id\":1}");
    const char *bad[] = {"not json", "[1,2]", "{\"op\":", "42", "{\"op\":\"publish\",\"data\":\"no channel\",\"id\":2}",
                         "{\"op\":\"subscribe\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hub_ws_send(c, bad[i]);
        json_t *f = hub_ws_next(c, 5000);
        if (!f)
            fprintf(stderr, "no answer to %s\n", bad[i]);
        CHECK(f != NULL);
        CHECK_STR(json_string_value(json_object_get(f, "type")), "error");
        CHECK(json_is_string(json_object_get(f, "error")));
        json_decref(f);
    }
    hub_ws_send(c, "{\"op\":\"ping\"}"); /* the connection stays */
    HUB_WS_EXPECT(c, "{\"type\":\"pong\"}");
    CHECK_INT(cipc_wsc_send(c, CIPC_WS_BINARY, "\x01\x02", 2), ==, 0);
    CHECK_INT(hub_ws_wait_close(c, 5000), ==, 1003);
    cipc_wsc_free(c);

    /* /v1/ws/channels without a name, or an unknown WS path */
    cipc_wsc *x = NULL;
    CHECK(hub_ws_try(&H, "/v1/nope", NULL, 0, NULL, &x, NULL, 0) != 0);
}

static void test_resume(void)
{
    for (int i = 1; i <= 4; i++)
        CHECK_INT(hub_publish(&H, "r", i == 1 ? "m1" : i == 2 ? "m2" : i == 3 ? "m3" : "m4"), ==, i);
    /* since 2: exactly 3 and 4, then live 5 */
    cipc_wsc *c = hub_ws(&H, "/v1/ws");
    hub_ws_send(c, "{\"op\":\"subscribe\",\"channel\":\"r\",\"since\":2}");
    HUB_WS_EXPECT(c, "{\"type\":\"subscribed\",\"channel\":\"r\",\"seq\":4}");
    HUB_WS_EXPECT(c, "{\"type\":\"message\",\"channel\":\"r\",\"seq\":3,\"data\":\"m3\"}");
    HUB_WS_EXPECT(c, "{\"type\":\"message\",\"channel\":\"r\",\"seq\":4,\"data\":\"m4\"}");
    CHECK_INT(hub_publish(&H, "r", "m5"), ==, 5);
    HUB_WS_EXPECT(c, "{\"type\":\"message\",\"channel\":\"r\",\"seq\":5,\"data\":\"m5\"}");
    bye(c);
    /* since == seq: nothing */
    c = hub_ws(&H, "/v1/ws");
    hub_ws_send(c, "{\"op\":\"subscribe\",\"channel\":\"r\",\"since\":5}");
    HUB_WS_EXPECT(c, "{\"type\":\"subscribed\",\"channel\":\"r\",\"seq\":5}");
    hub_ws_quiet(c, 300);
    bye(c);
    /* 8 messages, 5 held (4..8): since 1 -> gap 2..3, then 4..8 */
    CHECK_INT(hub_publish(&H, "r", "m6"), ==, 6);
    CHECK_INT(hub_publish(&H, "r", "m7"), ==, 7);
    CHECK_INT(hub_publish(&H, "r", "m8"), ==, 8);
    c = hub_ws(&H, "/v1/ws");
    hub_ws_send(c, "{\"op\":\"subscribe\",\"channel\":\"r\",\"since\":1}");
    HUB_WS_EXPECT(c, "{\"type\":\"subscribed\",\"channel\":\"r\",\"seq\":8}");
    HUB_WS_EXPECT(c, "{\"type\":\"gap\",\"channel\":\"r\",\"from\":2,\"to\":3}");
    for (int i = 4; i <= 8; i++) {
        char want[128];
        snprintf(want, sizeof want, "{\"type\":\"message\",\"channel\":\"r\",\"seq\":%d,\"data\":\"m%d\"}", i, i);
        HUB_WS_EXPECT(c, want);
    }
    hub_ws_quiet(c, 200);
    bye(c);
    /* since 0 on a channel that lost its head: gap 1..3 */
    c = hub_ws(&H, "/v1/ws");
    hub_ws_send(c, "{\"op\":\"subscribe\",\"channel\":\"r\",\"since\":0}");
    HUB_WS_EXPECT(c, "{\"type\":\"subscribed\",\"channel\":\"r\",\"seq\":8}");
    HUB_WS_EXPECT(c, "{\"type\":\"gap\",\"channel\":\"r\",\"from\":1,\"to\":3}");
    HUB_WS_EXPECT(c, "{\"type\":\"message\",\"channel\":\"r\",\"seq\":4,\"data\":\"m4\"}");
    bye(c);
    /* since > seq (the hub restarted): a reset gap, then every held message */
    c = hub_ws(&H, "/v1/ws");
    hub_ws_send(c, "{\"op\":\"subscribe\",\"channel\":\"r\",\"since\":100}");
    HUB_WS_EXPECT(c, "{\"type\":\"subscribed\",\"channel\":\"r\",\"seq\":8}");
    json_t *g = hub_ws_next(c, 5000);
    CHECK(g != NULL);
    CHECK_STR(json_string_value(json_object_get(g, "type")), "gap");
    CHECK_STR(json_string_value(json_object_get(g, "channel")), "r");
    CHECK(json_is_true(json_object_get(g, "reset")));
    json_decref(g);
    for (int i = 4; i <= 8; i++) {
        char want[128];
        snprintf(want, sizeof want, "{\"type\":\"message\",\"channel\":\"r\",\"seq\":%d,\"data\":\"m%d\"}", i, i);
        HUB_WS_EXPECT(c, want);
    }
    hub_ws_quiet(c, 200);
    bye(c);
}

/* A publisher thread keeps publishing on "live" while a subscriber disconnects and
 * resumes: it must see every seq exactly once, in order. --replay-count 5 is small, so
 * the resume happens while at most a few messages were missed (the publisher paces). */
static volatile int pub_stop;
static void *publisher(void *arg)
{
    (void)arg;
    cipc_session *s = peer_session(NULL, (cipc_session_opts){.base_url = H.base, .proxy = ""});
    for (int i = 1; i <= 200 && !pub_stop; i++) {
        char body[32];
        snprintf(body, sizeof body, "L%d", i);
        cipc_response *r = NULL;
        cipc_request_opts o = {.body = body, .body_len = strlen(body), .content_type = "text/plain"};
        CHECK_INT(cipc_request(s, "POST", "/v1/channels/live/messages", &o, &r), ==, 0);
        CHECK_INT(cipc_response_status(r), ==, 200);
        cipc_response_free(r);
        usleep(2000);
    }
    cipc_session_free(s);
    return NULL;
}

static void test_resume_under_load(void)
{
    hub h2;
    hub_startl(&h2, "--replay-count", "1000", NULL);
    hub saved = H;
    H = h2;
    pthread_t t;
    pub_stop = 0;
    CHECK_INT(pthread_create(&t, NULL, publisher, NULL), ==, 0);
    long long last = 0;
    int rounds = 0, total = 0;
    while (last < 200 && rounds < 20) {
        cipc_wsc *c = hub_ws(&H, "/v1/ws");
        char op[128];
        snprintf(op, sizeof op, "{\"op\":\"subscribe\",\"channel\":\"live\",\"since\":%lld}", last);
        hub_ws_send(c, op);
        json_t *f = hub_ws_next(c, 5000);
        CHECK(f != NULL);
        CHECK_STR(json_string_value(json_object_get(f, "type")), "subscribed");
        json_decref(f);
        for (int k = 0; k < 25 && last < 200; k++) {
            f = hub_ws_next(c, 5000);
            CHECK(f != NULL);
            const char *type = json_string_value(json_object_get(f, "type"));
            if (strcmp(type, "message") != 0) {
                char *s = hub_jdump(f);
                fprintf(stderr, "round %d after seq %lld: %s\n", rounds, last, s);
                free(s);
            }
            CHECK_STR(type, "message");
            long long seq = (long long)json_integer_value(json_object_get(f, "seq"));
            CHECK_INT(seq, ==, last + 1);
            char want[32];
            snprintf(want, sizeof want, "L%lld", seq);
            CHECK_STR(json_string_value(json_object_get(f, "data")), want);
            last = seq;
            total++;
            json_decref(f);
        }
        cipc_wsc_free(c); /* abruptly, without a closing handshake */
        rounds++;
    }
    pub_stop = 1;
    pthread_join(t, NULL);
    CHECK_INT(last, ==, 200);
    CHECK_INT(total, ==, 200);
    CHECK_INT(rounds, >=, 8);
    hub_stop(&H);
    H = saved;
}

static void test_raw(void)
{
    cipc_wsc *r1 = hub_ws(&H, "/v1/ws/channels/raw");
    cipc_wsc *r2 = hub_ws(&H, "/v1/ws/channels/raw");
    hub_wait_subscribers(&H, "raw", 2);
    cipc_wsc *j = subscribed("raw", 0);
    /* a raw socket is a subscriber too: the sender gets its own message */
    CHECK_INT(cipc_wsc_send_text(r1, "plain text"), ==, 0);
    cipc_ws_msg m;
    cipc_wsc *both[2] = {r1, r2};
    for (int i = 0; i < 2; i++) {
        CHECK_INT(cipc_wsc_recv(both[i], &m, 5000), ==, 0);
        CHECK_INT(m.type, ==, CIPC_WS_TEXT);
        CHECK_MEM(m.data, m.len, "plain text");
    }
    HUB_WS_EXPECT(j, "{\"type\":\"message\",\"channel\":\"raw\",\"seq\":1,\"data\":\"plain text\"}");
    /* binary frame: published, and delivered as binary */
    CHECK_INT(cipc_wsc_send(r2, CIPC_WS_BINARY, "\xff\x00\x10", 3), ==, 0);
    for (int i = 0; i < 2; i++) {
        CHECK_INT(cipc_wsc_recv(both[i], &m, 5000), ==, 0);
        CHECK_INT(m.type, ==, CIPC_WS_BINARY);
        CHECK(m.len == 3 && memcmp(m.data, "\xff\x00\x10", 3) == 0);
    }
    HUB_WS_EXPECT(j, "{\"type\":\"message\",\"channel\":\"raw\",\"seq\":2,\"data_base64\":\"/wAQ\"}");
    /* a REST publish as a text frame */
    CHECK_INT(hub_publish(&H, "raw", "from rest"), ==, 3);
    for (int i = 0; i < 2; i++) {
        CHECK_INT(cipc_wsc_recv(both[i], &m, 5000), ==, 0);
        CHECK_INT(m.type, ==, CIPC_WS_TEXT);
        CHECK_MEM(m.data, m.len, "from rest");
        CHECK_INT(cipc_wsc_recv(both[i], &m, 100), ==, CIPC_ETIMEOUT);
    }
    bye(r1);
    bye(r2);
    bye(j);
}

static void test_raw_resume(void)
{
    /* ?since=1: 2 and 3 (binary, text), then live */
    cipc_wsc *c = hub_ws(&H, "/v1/ws/channels/raw?since=1");
    cipc_ws_msg m;
    CHECK_INT(cipc_wsc_recv(c, &m, 5000), ==, 0);
    CHECK_INT(m.type, ==, CIPC_WS_BINARY);
    CHECK(m.len == 3 && memcmp(m.data, "\xff\x00\x10", 3) == 0);
    CHECK_INT(cipc_wsc_recv(c, &m, 5000), ==, 0);
    CHECK_MEM(m.data, m.len, "from rest");
    CHECK_INT(hub_publish(&H, "raw", "live"), ==, 4);
    CHECK_INT(cipc_wsc_recv(c, &m, 5000), ==, 0);
    CHECK_MEM(m.data, m.len, "live");
    CHECK_INT(cipc_wsc_recv(c, &m, 200), ==, CIPC_ETIMEOUT);
    bye(c);
}

/* {"op":"stats"}: a stats frame now, then one every second */
static void test_stats(void)
{
    cipc_wsc *sub = hub_ws(&H, "/v1/ws");
    cipc_wsc *other = hub_ws(&H, "/v1/ws");
    /* stats: one now, then every second */
    hub_ws_send(sub, "{\"op\":\"stats\"}");
    int stats = 0;
    int64_t t0 = peer_now_ms(), t_first = 0;
    while (stats < 2 && peer_now_ms() - t0 < 5000) {
        cipc_ws_msg m;
        if (cipc_wsc_recv(sub, &m, 3000) != 0)
            break;
        json_t *j = json_loadb(m.data, m.len, 0, NULL);
        CHECK(j != NULL);
        CHECK_STR(json_string_value(json_object_get(j, "type")), "stats");
        CHECK_STR(json_string_value(json_object_get(j, "mode")), "local");
        CHECK_INT(peer_jint(j, "connections.ws"), ==, 2);
        CHECK(json_is_array(json_object_get(j, "channels")));
        CHECK(json_is_object(json_object_get(j, "messages_in")));
        json_decref(j);
        if (++stats == 1)
            t_first = peer_now_ms();
    }
    CHECK_INT(stats, ==, 2);
    CHECK_INT(t_first - t0, <, 500); /* "now" */
    bye(other);
    bye(sub);
}

int main(void)
{
    hub_init();
    hub_startl(&H, "--replay-count", "5", NULL);
    RUN(test_ops);
    RUN(test_errors);
    RUN(test_resume);
    RUN(test_resume_under_load);
    RUN(test_raw);
    RUN(test_raw_resume);
    RUN(test_stats);
    hub_stop(&H);
    return 0;
}
