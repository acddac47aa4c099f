/* Proves recovery from a lost or frozen server: after the server is killed and
 * restarted on the same port, listen() reconnects with the retry policy, resubscribes
 * (channels and patterns) and reports CIPC_BUS_GAP, and messages published afterwards
 * arrive; a frozen server (SIGSTOP: a half-open connection) is detected by the PING
 * timeout, and after SIGCONT the subscriber is back with a GAP; a command whose reply
 * does not come (publish, push, pop, subscribe, connect) times out after the configured
 * time and the next call works on a fresh connection; a limited retry policy gives up
 * with the connect error. */
#include <string.h>

#include "test_bus_it_server.h"

static bus_srv S;

static const cipc_bus_opts fast = {.size = sizeof(cipc_bus_opts),
                                   .connect_timeout_ms = 500,
                                   .command_timeout_ms = 500,
                                   .ping_interval_ms = 200,
                                   .ping_timeout_ms = 300,
                                   .reconnect = {.base_ms = 20, .cap_ms = 100}};

static void test_restart(void)
{
    cipc_bus *sub = bus_open(S.url, &fast);
    cipc_bus *pub = bus_open(S.url, &fast);
    cipc_bus_msg m;
    CHECK_INT(cipc_bus_subscribe(sub, "ch"), ==, 1);
    CHECK_INT(cipc_bus_psubscribe(sub, "p.*"), ==, 2);
    bus_expect(sub, &m, CIPC_BUS_PSUBSCRIBE, 1000);

    bus_srv_kill(&S, SIGKILL);
    /* While the server is down, listen times out (reconnecting in the background of
     * each call) rather than failing. */
    int64_t t0 = cipc_now_ms();
    CHECK_INT(cipc_bus_listen(sub, &m, 400), ==, CIPC_ETIMEOUT);
    CHECK_INT(cipc_now_ms() - t0, <, 2000);
    /* Publishing fails fast with a connect error, and the message is simply lost. */
    int rc = cipc_bus_publish(pub, "ch", "lost", 4);
    CHECK(rc == CIPC_ENET || rc == CIPC_ECONNECT);
    bus_srv_restart(&S);
    /* The next listen reconnects, resubscribes both and reports the gap. */
    CHECK_INT(cipc_bus_listen(sub, &m, 5000), ==, 0);
    CHECK_INT(m.type, ==, CIPC_BUS_GAP);
    CHECK_INT(m.count, ==, 2);
    /* Messages published after the reconnection arrive (publish reconnects too). */
    CHECK_INT(cipc_bus_publish(pub, "ch", "after", 5), ==, 1);
    CHECK_INT(cipc_bus_publish(pub, "p.x", "pat", 3), ==, 1);
    CHECK_INT(cipc_bus_listen(sub, &m, 2000), ==, 0);
    CHECK_INT(m.type, ==, CIPC_BUS_MESSAGE);
    CHECK_MEM(m.data, m.len, "after");
    CHECK_INT(cipc_bus_listen(sub, &m, 2000), ==, 0);
    CHECK_INT(m.type, ==, CIPC_BUS_PMESSAGE);
    CHECK_MEM(m.data, m.len, "pat");
    CHECK_INT(cipc_bus_listen(sub, &m, 0), ==, CIPC_ETIMEOUT);
    cipc_bus_free(sub);
    cipc_bus_free(pub);
}

static void test_give_up(void)
{
    cipc_bus_opts o = fast;
    o.reconnect.max_attempts = 2;
    o.skip_confirmations = 1;
    cipc_bus *sub = bus_open(S.url, &o);
    cipc_bus_msg m;
    CHECK_INT(cipc_bus_subscribe(sub, "ch"), ==, 1);
    bus_srv_kill(&S, SIGKILL);
    /* Two attempts (immediate, then after <= 20 ms), then the connect error. */
    int rc = cipc_bus_listen(sub, &m, 5000);
    CHECK_INT(rc, ==, CIPC_ECONNECT);
    CHECK(strstr(cipc_bus_errmsg(sub), "connect") != NULL);
    bus_srv_restart(&S);
    /* The next call starts a new episode and succeeds. */
    bus_expect(sub, &m, CIPC_BUS_GAP, 5000);
    cipc_bus_free(sub);
}

static void test_half_open(void)
{
    cipc_bus *sub = bus_open(S.url, &fast);
    cipc_bus_msg m;
    CHECK_INT(cipc_bus_subscribe(sub, "ch"), ==, 1);
    CHECK_INT(cipc_bus_listen(sub, &m, 0), ==, 0); /* the confirmation */
    kill(S.pid, SIGSTOP);
    /* The socket stays open, but PING goes unanswered: after 200 + 300 ms the
     * connection is declared dead, and reconnection attempts time out meanwhile. */
    int64_t t0 = cipc_now_ms();
    CHECK_INT(cipc_bus_listen(sub, &m, 1500), ==, CIPC_ETIMEOUT);
    CHECK_INT(cipc_now_ms() - t0, <, 3000);
    fprintf(stderr, "while frozen: %s\n", cipc_bus_errmsg(sub));
    CHECK(strstr(cipc_bus_errmsg(sub), "PING") != NULL ||
          strstr(cipc_bus_errmsg(sub), "timed out") != NULL);
    kill(S.pid, SIGCONT);
    /* Back: the old connection was dropped, a new one made, so a GAP is reported. */
    CHECK_INT(cipc_bus_listen(sub, &m, 5000), ==, 0);
    CHECK_INT(m.type, ==, CIPC_BUS_GAP);
    CHECK_INT(m.count, ==, 1);
    cipc_bus *pub = bus_open(S.url, &fast);
    /* Stale connections from the frozen period may linger as subscribers until the
     * server notices them; our live subscription is one of the receivers. */
    CHECK_INT(cipc_bus_publish(pub, "ch", "back", 4), >=, 1);
    bus_expect(sub, &m, CIPC_BUS_MESSAGE, 2000);
    CHECK_MEM(m.data, m.len, "back");
    cipc_bus_free(pub);
    cipc_bus_free(sub);
}

static void test_command_timeouts(void)
{
    cipc_bus *b = bus_open(S.url, &fast);
    cipc_bus *s = bus_open(S.url, &fast);
    void *d;
    size_t n;
    /* One live connection per call, so each meets the command timeout itself. */
    enum { ACK, REAP, LEN, UNSUB, PSUB, POPR, LISTEN, NB };
    cipc_bus *each[NB];
    for (int i = 0; i < NB; i++)
        each[i] = bus_open(S.url, &fast);
    CHECK_INT(cipc_bus_subscribe(each[UNSUB], "u"), ==, 1);
    CHECK_INT(cipc_bus_subscribe(each[PSUB], "u"), ==, 1);
    CHECK_INT(cipc_bus_subscribe(each[LISTEN], "u"), ==, 1);
    kill(S.pid, SIGSTOP);
    for (int i = 0; i < NB; i++) {
        int64_t t = cipc_now_ms();
        cipc_bus_msg m;
        int r = i == ACK     ? cipc_bus_ack(each[i], "q", "x", 1)
                : i == REAP  ? cipc_bus_reap(each[i], "q", 1000)
                : i == LEN   ? cipc_bus_len(each[i], "q")
                : i == UNSUB ? cipc_bus_unsubscribe(each[i], "u")
                : i == PSUB  ? cipc_bus_psubscribe(each[i], "p*")
                : i == POPR  ? cipc_bus_pop_reliable(each[i], "q", 200, &d, &n)
                             : (cipc_bus_listen(each[i], &m, 0), cipc_bus_listen(each[i], &m, 300));
        int64_t took = cipc_now_ms() - t;
        fprintf(stderr, "call %d while frozen: %d after %lld ms\n", i, r, (long long)took);
        CHECK_INT(r, ==, CIPC_ETIMEOUT);
        CHECK_INT(took, >=, i == LISTEN ? 290 : 490); /* POPR: its registration times out */
        CHECK_INT(took, <, 1500);
        cipc_bus_free(each[i]);
    }
    int64_t t0 = cipc_now_ms();
    CHECK_INT(cipc_bus_publish(b, "ch", "x", 1), ==, CIPC_ETIMEOUT);
    int64_t ms = cipc_now_ms() - t0;
    CHECK_INT(ms, >=, 490);
    CHECK_INT(ms, <, 1500);
    /* The next call must not read the late reply to PUBLISH: the connection was
     * dropped, and a new one cannot be made while the server is frozen. */
    t0 = cipc_now_ms();
    int rc = cipc_bus_push(b, "q", "x", 1);
    CHECK(rc == CIPC_ECONNTIMEOUT || rc == CIPC_ETIMEOUT);
    CHECK_INT(cipc_now_ms() - t0, <, 1500);
    t0 = cipc_now_ms();
    rc = cipc_bus_pop(b, "q", 100, &d, &n);
    CHECK(rc == CIPC_ECONNTIMEOUT || rc == CIPC_ETIMEOUT);
    CHECK_INT(cipc_now_ms() - t0, <, 1500);
    t0 = cipc_now_ms();
    rc = cipc_bus_subscribe(s, "ch");
    CHECK(rc == CIPC_ECONNTIMEOUT || rc == CIPC_ETIMEOUT);
    CHECK_INT(cipc_now_ms() - t0, <, 1500);
    /* Connecting to a frozen server: the handshake times out. */
    cipc_bus *c = NULL;
    t0 = cipc_now_ms();
    CHECK_INT(cipc_bus_connect(S.url, &fast, &c), ==, CIPC_ECONNTIMEOUT);
    ms = cipc_now_ms() - t0;
    CHECK_INT(ms, >=, 490);
    CHECK_INT(ms, <, 1500);
    kill(S.pid, SIGCONT);
    /* Everything works again, in sync: push returns its own reply. */
    CHECK_INT(cipc_bus_push(b, "tq", "x", 1), ==, 1);
    CHECK_INT(cipc_bus_push(b, "tq", "y", 1), ==, 2);
    CHECK_INT(cipc_bus_pop(b, "tq", 1000, &d, &n), ==, 0);
    CHECK_MEM(d, n, "x");
    free(d);
    CHECK_INT(cipc_bus_subscribe(s, "ch"), ==, 1);
    cipc_bus_free(b);
    cipc_bus_free(s);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    bus_srv_start(&S, &(bus_srv_opts){0});
    test_restart();
    test_give_up();
    test_half_open();
    test_command_timeouts();
    bus_srv_stop(&S);
    return 0;
}
