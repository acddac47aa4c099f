/* Proves the loop-based subscriber against a real server: confirmations, messages and
 * pattern messages arrive through the callback on the loop's thread; after the server is
 * killed and restarted it reconnects, resubscribes and reports CIPC_BUS_GAP, and later
 * messages arrive; a frozen server (SIGSTOP) is detected by the PING timeout and the
 * subscriber is back with another GAP after SIGCONT; unsubscribe stops delivery; close
 * runs its callback and leaves the loop with nothing active; a subscriber that cannot
 * connect (max_attempts 2) reports CIPC_BUS_ERROR. */
#include <pthread.h>
#include <string.h>
#include <uv.h>

#include "test_bus_it_server.h"

static bus_srv S;
static cipc_bus *pub;
static int step;
static int closed;
static int gaps;
static uv_timer_t watchdog, thaw;

static const cipc_bus_opts fast = {.size = sizeof(cipc_bus_opts),
                                   .connect_timeout_ms = 500,
                                   .ping_interval_ms = 200,
                                   .ping_timeout_ms = 300,
                                   .reconnect = {.base_ms = 20, .cap_ms = 100}};

static void on_closed(cipc_bus_sub *s, void *ud)
{
    closed = 1;
    uv_close((uv_handle_t *)&watchdog, NULL);
}

static void on_watchdog(uv_timer_t *t)
{
    fprintf(stderr, "watchdog: stuck at step %d\n", step);
    CHECK(!"loop test timed out");
}

static void on_thaw(uv_timer_t *t)
{
    kill(S.pid, SIGCONT);
    uv_close((uv_handle_t *)t, NULL);
}

static void on_msg(cipc_bus_sub *s, const cipc_bus_msg *m, void *ud)
{
    fprintf(stderr, "step %d: event %d %.*s\n", step, m->type, m->channel ? (int)m->channel_len : 0,
            m->channel ? m->channel : "");
    switch (step) {
    case 0: /* subscribe "ch" confirmed */
        CHECK_INT(m->type, ==, CIPC_BUS_SUBSCRIBE);
        CHECK_STR(m->channel, "ch");
        CHECK_INT(m->count, ==, 1);
        step = 1;
        CHECK_INT(cipc_bus_sub_psubscribe(s, "p.*"), ==, 0);
        break;
    case 1:
        CHECK_INT(m->type, ==, CIPC_BUS_PSUBSCRIBE);
        CHECK_INT(m->count, ==, 2);
        step = 2;
        CHECK_INT(cipc_bus_publish(pub, "ch", "hello\0x", 7), ==, 1);
        break;
    case 2:
        CHECK_INT(m->type, ==, CIPC_BUS_MESSAGE);
        CHECK_INT(m->len, ==, 7);
        CHECK(memcmp(m->data, "hello\0x", 7) == 0);
        step = 3;
        CHECK_INT(cipc_bus_publish(pub, "p.1", "pat", 3), ==, 1);
        break;
    case 3:
        CHECK_INT(m->type, ==, CIPC_BUS_PMESSAGE);
        CHECK_STR(m->pattern, "p.*");
        CHECK_STR(m->channel, "p.1");
        step = 4;
        /* Kill and restart the server (blocking here is fine in a test). */
        bus_srv_kill(&S, SIGKILL);
        bus_srv_restart(&S);
        break;
    case 4:
        CHECK_INT(m->type, ==, CIPC_BUS_GAP);
        CHECK_INT(m->count, ==, 2);
        gaps++;
        step = 5;
        {
            int rc = cipc_bus_publish(pub, "ch", "after", 5); /* its old connection died */
            if (rc < 0)
                rc = cipc_bus_publish(pub, "ch", "after", 5);
            CHECK_INT(rc, ==, 1);
        }
        break;
    case 5:
        CHECK_INT(m->type, ==, CIPC_BUS_MESSAGE);
        CHECK_MEM(m->data, m->len, "after");
        step = 6;
        /* Freeze: the keepalive must notice; thaw after 1.5 s. */
        kill(S.pid, SIGSTOP);
        uv_timer_init(cipc_loop_uv((cipc_loop *)ud), &thaw);
        uv_timer_start(&thaw, on_thaw, 1500, 0);
        break;
    case 6:
        CHECK_INT(m->type, ==, CIPC_BUS_GAP);
        gaps++;
        step = 7;
        CHECK_INT(cipc_bus_sub_unsubscribe(s, "ch"), ==, 0);
        break;
    case 7:
        CHECK_INT(m->type, ==, CIPC_BUS_UNSUBSCRIBE);
        CHECK_STR(m->channel, "ch");
        CHECK_INT(m->count, ==, 1);
        step = 8;
        /* Not delivered any more; the pattern still is. */
        CHECK_INT(cipc_bus_publish(pub, "ch", "no", 2), >=, 0);
        CHECK_INT(cipc_bus_publish(pub, "p.2", "yes", 3), >=, 1);
        break;
    case 8:
        CHECK_INT(m->type, ==, CIPC_BUS_PMESSAGE);
        CHECK_MEM(m->data, m->len, "yes");
        step = 9;
        cipc_bus_sub_close(s, on_closed, NULL); /* from its own callback */
        break;
    default:
        CHECK(!"event after close");
    }
}

static int errors;
static void on_err_msg(cipc_bus_sub *s, const cipc_bus_msg *m, void *ud)
{
    CHECK_INT(m->type, ==, CIPC_BUS_ERROR);
    CHECK_INT(m->err, ==, CIPC_ECONNECT);
    errors++;
    cipc_bus_sub_close(s, NULL, NULL);
}

/* rediss:// through the TLS tunnel, on the loop: subscribe, receive, close. */
static int tls_got;
static cipc_bus *tls_pub;
static void on_tls_msg(cipc_bus_sub *s, const cipc_bus_msg *m, void *ud)
{
    if (m->type == CIPC_BUS_SUBSCRIBE) {
        CHECK_INT(cipc_bus_publish(tls_pub, "secure", "over tls", 8), ==, 1);
        return;
    }
    CHECK_INT(m->type, ==, CIPC_BUS_MESSAGE);
    CHECK_MEM(m->data, m->len, "over tls");
    tls_got++;
    cipc_bus_sub_close(s, NULL, NULL);
}

static void test_tls(cipc_loop *loop)
{
    if (bus_srv_is_cipc()) {
        fprintf(stderr, "SKIP loop TLS: the cipc broker has no TLS\n");
        return;
    }
    bus_srv t;
    bus_srv_start(&t, &(bus_srv_opts){.tls = 1});
    cipc_bus_opts o = fast;
    o.ca_file = t.ca;
    tls_pub = bus_open(t.url, &o);
    cipc_bus_sub *s = NULL;
    CHECK_INT(cipc_bus_sub_new(loop, t.url, &o, on_tls_msg, NULL, &s), ==, 0);
    CHECK_INT(cipc_bus_sub_subscribe(s, "secure"), ==, 0);
    cipc_loop_run(loop, CIPC_RUN_DEFAULT);
    CHECK_INT(tls_got, ==, 1);
    cipc_bus_free(tls_pub);
    bus_srv_stop(&t);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    bus_srv_start(&S, &(bus_srv_opts){0});
    cipc_bus_opts po = fast;
    po.connect_timeout_ms = 2000;
    pub = bus_open(S.url, &po);
    cipc_loop *loop = NULL;
    CHECK_INT(cipc_loop_new(NULL, &loop), ==, 0);
    uv_timer_init(cipc_loop_uv(loop), &watchdog);
    uv_timer_start(&watchdog, on_watchdog, 30000, 0);

    cipc_bus_sub *s = NULL;
    CHECK_INT(cipc_bus_sub_new(loop, "bad://x", &fast, on_msg, loop, &s), ==, CIPC_EURL);
    CHECK_INT(cipc_bus_sub_new(loop, S.url, &fast, on_msg, loop, &s), ==, 0);
    CHECK_INT(cipc_bus_sub_subscribe(s, "ch"), ==, 0);
    cipc_loop_run(loop, CIPC_RUN_DEFAULT);
    CHECK_INT(step, ==, 9);
    CHECK_INT(closed, ==, 1);
    CHECK_INT(gaps, ==, 2);

    /* Nobody listening, two attempts: CIPC_BUS_ERROR, then close. */
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", bus_free_port());
    cipc_bus_opts o = fast;
    o.reconnect.max_attempts = 2;
    CHECK_INT(cipc_bus_sub_new(loop, url, &o, on_err_msg, NULL, &s), ==, 0);
    CHECK_INT(cipc_bus_sub_subscribe(s, "x"), ==, 0);
    cipc_loop_run(loop, CIPC_RUN_DEFAULT);
    CHECK_INT(errors, ==, 1);

    /* Closing right away, while the connect runs on the thread pool. */
    CHECK_INT(cipc_bus_sub_new(loop, S.url, &fast, on_msg, loop, &s), ==, 0);
    closed = 0;
    uv_timer_init(cipc_loop_uv(loop), &watchdog);
    cipc_bus_sub_close(s, on_closed, NULL);
    cipc_loop_run(loop, CIPC_RUN_DEFAULT);
    CHECK_INT(closed, ==, 1);

    test_tls(loop);
    CHECK_INT(cipc_loop_free(loop), ==, 0);
    cipc_bus_free(pub);
    bus_srv_stop(&S);
    return 0;
}
