/* Proves blocking pub/sub against a real server: publish returns receiver counts
 * (subscribe, psubscribe, unsubscribe, punsubscribe change them); listen() returns
 * confirmations, messages and pattern messages with exact views, binary payloads
 * intact, times out as asked (0, short, and while idle with keepalive PINGs), and the
 * seed's subscribe/publish/listen flow works; bad URLs are CIPC_EURL. */
#include <string.h>

#include "test_bus_it_server.h"

static bus_srv S;

static void test_bad_urls(void)
{
    const char *bad[] = {"",
                         "http://127.0.0.1:6379",
                         "redis://",
                         "redis:///0",
                         "redis://127.0.0.1:99999",
                         "redis://127.0.0.1:0",
                         "redis://127.0.0.1:6379/x",
                         "redis://127.0.0.1:6379/0/1",
                         "redis://127.0.0.1:6379?db=1",
                         "redis://pass@127.0.0.1:6379",
                         "redis://h o:1",
                         "unix://",
                         "unix://relative/path",
                         "unix:///",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        cipc_bus *b = (cipc_bus *)&b;
        int rc = cipc_bus_connect(bad[i], NULL, &b);
        if (rc != CIPC_EURL)
            fprintf(stderr, "url \"%s\" -> %d\n", bad[i], rc);
        CHECK_INT(rc, ==, CIPC_EURL);
        CHECK(b == (cipc_bus *)&b);
    }
    cipc_bus *b = NULL;
    CHECK_INT(cipc_bus_connect(NULL, NULL, &b), ==, CIPC_EURL);
    /* A bad client name is -EINVAL. */
    CHECK_INT(cipc_bus_connect(S.url, &(cipc_bus_opts){.client_name = "a b"}, &b), ==, -EINVAL);
    /* Nobody listening: refused. */
    char url[320];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", bus_free_port());
    CHECK_INT(cipc_bus_connect(url, NULL, &b), ==, CIPC_ECONNECT);
    /* A database number is sent with SELECT; one out of range is refused. */
    snprintf(url, sizeof url, "%s/3", S.url);
    if (bus_srv_is_cipc()) { /* the broker has database 0 only */
        CHECK_INT(cipc_bus_connect(url, NULL, &b), ==, CIPC_EPROTO);
    } else {
        b = bus_open(url, NULL);
        cipc_bus_free(b);
    }
    snprintf(url, sizeof url, "%s/0", S.url); /* db 0: no SELECT sent */
    b = bus_open(url, NULL);
    cipc_bus_free(b);
    snprintf(url, sizeof url, "%s/99999", S.url);
    CHECK_INT(cipc_bus_connect(url, NULL, &b), ==, CIPC_EPROTO);
}

static void test_counts(void)
{
    cipc_bus *pub = bus_open(S.url, NULL);
    cipc_bus *sub = bus_open(S.url, NULL);
    cipc_bus_msg m;

    CHECK_INT(cipc_bus_publish(pub, "news", "x", 1), ==, 0);
    /* listen without any subscription: -EINVAL, not a hang. */
    CHECK_INT(cipc_bus_listen(sub, &m, 1000), ==, -EINVAL);

    CHECK_INT(cipc_bus_subscribe(sub, "news"), ==, 1);
    CHECK_INT(cipc_bus_subscribe(sub, "sport"), ==, 2);
    CHECK_INT(cipc_bus_psubscribe(sub, "n*"), ==, 3);
    /* The confirmations come first, in order. */
    CHECK_INT(cipc_bus_listen(sub, &m, 0), ==, 0);
    CHECK_INT(m.type, ==, CIPC_BUS_SUBSCRIBE);
    CHECK_MEM(m.channel, m.channel_len, "news");
    CHECK_INT(m.count, ==, 1);
    CHECK_INT(cipc_bus_listen(sub, &m, 0), ==, 0);
    CHECK_INT(m.type, ==, CIPC_BUS_SUBSCRIBE);
    CHECK_STR(m.channel, "sport");
    CHECK_INT(m.count, ==, 2);
    CHECK_INT(cipc_bus_listen(sub, &m, 0), ==, 0);
    CHECK_INT(m.type, ==, CIPC_BUS_PSUBSCRIBE);
    CHECK_STR(m.channel, "n*");
    CHECK_INT(m.count, ==, 3);
    CHECK_INT(cipc_bus_listen(sub, &m, 0), ==, CIPC_ETIMEOUT);

    /* One channel subscription plus one pattern: two receivers (Redis counts both). */
    CHECK_INT(cipc_bus_publish(pub, "news", "hello", 5), ==, 2);
    CHECK_INT(cipc_bus_listen(sub, &m, 2000), ==, 0);
    CHECK_INT(m.type, ==, CIPC_BUS_MESSAGE);
    CHECK_STR(m.channel, "news");
    CHECK(m.pattern == NULL);
    CHECK_MEM(m.data, m.len, "hello");
    CHECK_INT(cipc_bus_listen(sub, &m, 2000), ==, 0);
    CHECK_INT(m.type, ==, CIPC_BUS_PMESSAGE);
    CHECK_STR(m.pattern, "n*");
    CHECK_STR(m.channel, "news");
    CHECK_MEM(m.data, m.len, "hello");

    CHECK_INT(cipc_bus_publish(pub, "sport", "goal", 4), ==, 1);
    CHECK_INT(cipc_bus_publish(pub, "nature", "tree", 4), ==, 1);
    CHECK_INT(cipc_bus_listen(sub, &m, 2000), ==, 0);
    CHECK_INT(m.type, ==, CIPC_BUS_MESSAGE);
    CHECK_STR(m.channel, "sport");
    CHECK_INT(cipc_bus_listen(sub, &m, 2000), ==, 0);
    CHECK_INT(m.type, ==, CIPC_BUS_PMESSAGE);
    CHECK_STR(m.channel, "nature");
    CHECK_MEM(m.data, m.len, "tree");

    /* A second subscriber bus counts too. */
    cipc_bus *sub2 = bus_open(S.url, &(cipc_bus_opts){.skip_confirmations = 1});
    CHECK_INT(cipc_bus_subscribe(sub2, "sport"), ==, 1);
    CHECK_INT(cipc_bus_publish(pub, "sport", "x", 1), ==, 2);
    /* skip_confirmations: the first event is the message itself. */
    CHECK_INT(cipc_bus_listen(sub2, &m, 2000), ==, 0);
    CHECK_INT(m.type, ==, CIPC_BUS_MESSAGE);
    CHECK_MEM(m.data, m.len, "x");
    cipc_bus_free(sub2);
    CHECK_INT(cipc_bus_listen(sub, &m, 2000), ==, 0);
    CHECK_MEM(m.data, m.len, "x");

    /* Unsubscribe and punsubscribe lower the counts. */
    CHECK_INT(cipc_bus_unsubscribe(sub, "sport"), ==, 2);
    CHECK_INT(cipc_bus_listen(sub, &m, 0), ==, 0);
    CHECK_INT(m.type, ==, CIPC_BUS_UNSUBSCRIBE);
    CHECK_STR(m.channel, "sport");
    CHECK_INT(m.count, ==, 2);
    CHECK_INT(cipc_bus_publish(pub, "sport", "x", 1), ==, 0);
    CHECK_INT(cipc_bus_punsubscribe(sub, "n*"), ==, 1);
    CHECK_INT(cipc_bus_listen(sub, &m, 0), ==, 0);
    CHECK_INT(m.type, ==, CIPC_BUS_PUNSUBSCRIBE);
    CHECK_INT(cipc_bus_publish(pub, "news", "x", 1), ==, 1);
    CHECK_INT(cipc_bus_listen(sub, &m, 2000), ==, 0);
    CHECK_INT(m.type, ==, CIPC_BUS_MESSAGE);
    /* Unsubscribe from everything. */
    CHECK_INT(cipc_bus_subscribe(sub, "a"), ==, 2);
    CHECK_INT(cipc_bus_listen(sub, &m, 0), ==, 0);
    CHECK_INT(cipc_bus_unsubscribe(sub, NULL), ==, 0);
    int unsubs = 0;
    while (cipc_bus_listen(sub, &m, 0) == 0) {
        CHECK_INT(m.type, ==, CIPC_BUS_UNSUBSCRIBE);
        unsubs++;
    }
    CHECK_INT(unsubs, ==, 2);
    CHECK_INT(cipc_bus_publish(pub, "news", "x", 1), ==, 0);
    CHECK_INT(cipc_bus_listen(sub, &m, 100), ==, -EINVAL);
    /* And subscribe again on the same bus. */
    CHECK_INT(cipc_bus_subscribe(sub, "again"), ==, 1);
    CHECK_INT(cipc_bus_publish(pub, "again", "y", 1), ==, 1);
    bus_expect(sub, &m, CIPC_BUS_MESSAGE, 2000);
    CHECK_MEM(m.data, m.len, "y");
    cipc_bus_free(sub);
    cipc_bus_free(pub);
}

static void test_binary_and_timeouts(void)
{
    /* Keepalive PINGs every 100 ms must not surface as events nor break timeouts. */
    cipc_bus *b = bus_open(S.url, &(cipc_bus_opts){.ping_interval_ms = 100,
                                                   .ping_timeout_ms = 1000,
                                                   .skip_confirmations = 1});
    cipc_bus_msg m;
    CHECK_INT(cipc_bus_subscribe(b, "bin\r\n\x01"), ==, 1);
    int64_t t0 = cipc_now_ms();
    CHECK_INT(cipc_bus_listen(b, &m, 0), ==, CIPC_ETIMEOUT);
    CHECK_INT(cipc_now_ms() - t0, <, 100);
    t0 = cipc_now_ms();
    CHECK_INT(cipc_bus_listen(b, &m, 700), ==, CIPC_ETIMEOUT);
    int64_t ms = cipc_now_ms() - t0;
    CHECK_INT(ms, >=, 690);
    CHECK_INT(ms, <, 2000);

    /* Every byte value, NULs and CRLFs included, and a 1 MiB payload, on the same bus
     * (publishing while subscribed uses the command connection). */
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    CHECK_INT(cipc_bus_publish(b, "bin\r\n\x01", all, sizeof all), ==, 1);
    CHECK_INT(cipc_bus_listen(b, &m, 2000), ==, 0);
    CHECK_INT(m.type, ==, CIPC_BUS_MESSAGE);
    CHECK_INT(m.len, ==, 256);
    CHECK(memcmp(m.data, all, 256) == 0);
    CHECK_INT(m.channel_len, ==, 6);
    size_t big = 1 << 20;
    char *p = malloc(big);
    for (size_t i = 0; i < big; i++)
        p[i] = (char)(i * 7);
    CHECK_INT(cipc_bus_publish(b, "bin\r\n\x01", p, big), ==, 1);
    CHECK_INT(cipc_bus_publish(b, "bin\r\n\x01", "", 0), ==, 1);
    CHECK_INT(cipc_bus_listen(b, &m, 5000), ==, 0);
    CHECK_INT(m.len, ==, big);
    CHECK(memcmp(m.data, p, big) == 0);
    CHECK_INT(cipc_bus_listen(b, &m, 5000), ==, 0);
    CHECK_INT(m.len, ==, 0);
    CHECK(((const char *)m.data)[0] == '\0');
    free(p);
    cipc_bus_free(b);
}

/* The seed:
 *     r.publish('channel', 'Hello, subscribers!')
 *     pubsub = r.pubsub(); pubsub.subscribe('channel')
 *     for message in pubsub.listen(): print(f"Received: {message['data']}") */
static void test_seed_flow(void)
{
    cipc_bus *r = bus_open(S.url, NULL);
    cipc_bus_msg m;
    CHECK_INT(cipc_bus_subscribe(r, "channel"), ==, 1);
    CHECK_INT(cipc_bus_publish(r, "channel", "Hello, subscribers!", 19), ==, 1);
    int seen = 0;
    while (!seen && cipc_bus_listen(r, &m, 2000) == 0) {
        if (m.type == CIPC_BUS_SUBSCRIBE)
            continue;
        CHECK_INT(m.type, ==, CIPC_BUS_MESSAGE);
        char line[64];
        snprintf(line, sizeof line, "Received: %.*s", (int)m.len, (const char *)m.data);
        CHECK_STR(line, "Received: Hello, subscribers!");
        seen = 1;
    }
    CHECK(seen);
    CHECK_STR(cipc_bus_errmsg(r), "");
    CHECK(strncmp(cipc_bus_consumer_id(r), "cipc-", 5) == 0);
    cipc_bus_free(r);
    cipc_bus_free(NULL);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    bus_srv_start(&S, &(bus_srv_opts){0});
    test_bad_urls();
    test_counts();
    test_binary_and_timeouts();
    test_seed_flow();
    bus_srv_stop(&S);
    return 0;
}
