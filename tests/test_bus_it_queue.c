/* Proves the work queues against a real server: push returns the new length, pop is
 * FIFO, pop with timeout 0 is CIPC_EAGAIN and with a timeout is CIPC_ETIMEOUT after that
 * long; pop_reliable keeps the item in the consumer's processing list until ack; a
 * consumer that dies (a forked child that _exit()s without ack) has its item re-queued
 * by the reaper only after the visibility timeout, and exactly one of two other
 * consumers then gets it; a live consumer is never reaped; automatic reaping via
 * opts.visibility_ms. */
#include <string.h>

#include "test_bus_it_server.h"

static bus_srv S;

static void pop_expect(cipc_bus *b, const char *q, const char *want, int reliable)
{
    void *d = NULL;
    size_t n = 0;
    int rc =
        reliable ? cipc_bus_pop_reliable(b, q, 2000, &d, &n) : cipc_bus_pop(b, q, 2000, &d, &n);
    if (rc < 0)
        fprintf(stderr, "pop: %s (%s)\n", cipc_strerror(rc), cipc_bus_errmsg(b));
    CHECK_INT(rc, ==, 0);
    CHECK_MEM(d, n, want);
    free(d);
}

static void test_fifo_and_timeouts(void)
{
    cipc_bus *b = bus_open(S.url, NULL);
    CHECK_INT(cipc_bus_push(b, "q", "one", 3), ==, 1);
    CHECK_INT(cipc_bus_push(b, "q", "two", 3), ==, 2);
    CHECK_INT(cipc_bus_push(b, "q", "", 0), ==, 3);
    CHECK_INT(cipc_bus_push(b, "q", "b\0in\r\n", 6), ==, 4);
    CHECK_INT(cipc_bus_len(b, "q"), ==, 4);
    pop_expect(b, "q", "one", 0);
    pop_expect(b, "q", "two", 0);
    void *d = NULL;
    size_t n = 99;
    CHECK_INT(cipc_bus_pop(b, "q", 0, &d, &n), ==, 0);
    CHECK_INT(n, ==, 0);
    CHECK(d != NULL);
    free(d);
    CHECK_INT(cipc_bus_pop(b, "q", 1000, &d, &n), ==, 0);
    CHECK_INT(n, ==, 6);
    CHECK(memcmp(d, "b\0in\r\n", 6) == 0);
    free(d);
    /* Empty: timeout 0 -> EAGAIN at once; 300 ms -> ETIMEOUT after ~300 ms. */
    int64_t t0 = cipc_now_ms();
    CHECK_INT(cipc_bus_pop(b, "q", 0, &d, &n), ==, CIPC_EAGAIN);
    CHECK_INT(cipc_bus_pop_reliable(b, "q", 0, &d, &n), ==, CIPC_EAGAIN);
    CHECK_INT(cipc_now_ms() - t0, <, 500);
    t0 = cipc_now_ms();
    CHECK_INT(cipc_bus_pop(b, "q", 300, &d, &n), ==, CIPC_ETIMEOUT);
    int64_t ms = cipc_now_ms() - t0;
    CHECK_INT(ms, >=, 290);
    CHECK_INT(ms, <, 2000);
    t0 = cipc_now_ms();
    CHECK_INT(cipc_bus_pop_reliable(b, "q", 300, &d, &n), ==, CIPC_ETIMEOUT);
    ms = cipc_now_ms() - t0;
    CHECK_INT(ms, >=, 290);
    CHECK_INT(ms, <, 2000);
    /* A long wait is cut into slices of the ping interval and still returns the item. */
    cipc_bus *sliced = bus_open(S.url, &(cipc_bus_opts){.ping_interval_ms = 100});
    t0 = cipc_now_ms();
    CHECK_INT(cipc_bus_pop(sliced, "q", 450, &d, &n), ==, CIPC_ETIMEOUT);
    ms = cipc_now_ms() - t0;
    CHECK_INT(ms, >=, 440);
    CHECK_INT(ms, <, 2000);
    CHECK_INT(cipc_bus_push(b, "q", "late", 4), ==, 1);
    pop_expect(sliced, "q", "late", 0);
    cipc_bus_free(sliced);
    /* Argument checks. */
    CHECK_INT(cipc_bus_push(b, NULL, "a", 1), ==, -EINVAL);
    CHECK_INT(cipc_bus_pop(b, "q", 0, NULL, &n), ==, -EINVAL);
    cipc_bus_free(b);
}

static void test_reliable_ack(void)
{
    cipc_bus *b = bus_open(S.url, &(cipc_bus_opts){.client_name = "worker-1"});
    CHECK_STR(cipc_bus_consumer_id(b), "worker-1");
    CHECK_INT(cipc_bus_push(b, "jobs", "j1", 2), ==, 1);
    CHECK_INT(cipc_bus_push(b, "jobs", "j2", 2), ==, 2);
    pop_expect(b, "jobs", "j1", 1);
    CHECK_INT(cipc_bus_len(b, "jobs"), ==, 1);
    CHECK_INT(cipc_bus_len(b, "jobs:processing:worker-1"), ==, 1);
    CHECK_INT(cipc_bus_len(b, "jobs:consumers"), ==, 1);
    pop_expect(b, "jobs", "j2", 1);
    CHECK_INT(cipc_bus_len(b, "jobs:processing:worker-1"), ==, 2);
    CHECK_INT(cipc_bus_ack(b, "jobs", "j1", 2), ==, 1);
    CHECK_INT(cipc_bus_ack(b, "jobs", "j1", 2), ==, 0);
    CHECK_INT(cipc_bus_len(b, "jobs:processing:worker-1"), ==, 1);
    /* A live consumer is never reaped, whatever the visibility. */
    CHECK_INT(cipc_bus_reap(b, "jobs", 0), ==, 0);
    CHECK_INT(cipc_bus_len(b, "jobs:processing:worker-1"), ==, 1);
    CHECK_INT(cipc_bus_ack(b, "jobs", "j2", 2), ==, 1);
    CHECK_INT(cipc_bus_len(b, "jobs:processing:worker-1"), ==, 0);
    /* Registered once, even after several pops. */
    CHECK_INT(cipc_bus_len(b, "jobs:consumers"), ==, 1);
    cipc_bus_free(b);
}

/* A child pops reliably then dies without ack. Returns after it has been reaped. */
static void dying_consumer(const char *queue, const char *name)
{
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        cipc_bus *b = NULL;
        if (cipc_bus_connect(S.url, &(cipc_bus_opts){.client_name = name}, &b) < 0)
            _exit(2);
        void *d;
        size_t n;
        if (cipc_bus_pop_reliable(b, queue, 2000, &d, &n) < 0)
            _exit(3);
        _exit(n == 6 && memcmp(d, "item-A", 6) == 0 ? 0 : 4); /* no ack, no free */
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st));
    CHECK_INT(WEXITSTATUS(st), ==, 0);
}

struct consumer {
    cipc_bus *b;
    int got;
};

static void test_dead_consumer(void)
{
    cipc_bus *prod = bus_open(S.url, NULL);
    CHECK_INT(cipc_bus_push(prod, "work", "item-A", 6), ==, 1);
    CHECK_INT(cipc_bus_push(prod, "work", "item-B", 6), ==, 2);
    dying_consumer("work", "doomed");
    CHECK_INT(cipc_bus_len(prod, "work:processing:doomed"), ==, 1);
    CHECK_INT(cipc_bus_len(prod, "work"), ==, 1);

    /* Two other consumers; visibility 600 ms. The first reap only marks the dead one. */
    struct consumer c[2];
    for (int i = 0; i < 2; i++) {
        c[i].b = bus_open(S.url, NULL);
        c[i].got = 0;
    }
    /* item-B is taken by consumer 0 and acked. */
    pop_expect(c[0].b, "work", "item-B", 1);
    CHECK_INT(cipc_bus_ack(c[0].b, "work", "item-B", 6), ==, 1);
    int64_t t0 = cipc_now_ms();
    CHECK_INT(cipc_bus_reap(c[0].b, "work", 600), ==, 0);
    CHECK_INT(cipc_bus_reap(c[1].b, "work", 600), ==, 0);
    CHECK_INT(cipc_bus_len(prod, "work:processing:doomed"), ==, 1);
    /* Both consumers reap and pop until one of them gets item-A; it must come after the
     * visibility timeout, exactly once. */
    int64_t end = t0 + 10000;
    int total = 0;
    while (total == 0 && cipc_now_ms() < end) {
        for (int i = 0; i < 2; i++) {
            int r = cipc_bus_reap(c[i].b, "work", 600);
            CHECK_INT(r, >=, 0);
            void *d;
            size_t n;
            int rc = cipc_bus_pop_reliable(c[i].b, "work", 50, &d, &n);
            if (rc == CIPC_ETIMEOUT)
                continue;
            CHECK_INT(rc, ==, 0);
            CHECK_MEM(d, n, "item-A");
            CHECK_INT(cipc_bus_ack(c[i].b, "work", d, n), ==, 1);
            free(d);
            c[i].got++;
            total++;
        }
    }
    CHECK_INT(total, ==, 1);
    CHECK_INT(cipc_now_ms() - t0, >=, 590);
    /* Nothing more arrives for anyone; the dead consumer is gone from the registry. */
    for (int i = 0; i < 2; i++) {
        void *d;
        size_t n;
        CHECK_INT(cipc_bus_pop_reliable(c[i].b, "work", 200, &d, &n), ==, CIPC_ETIMEOUT);
    }
    CHECK_INT(c[0].got + c[1].got, ==, 1);
    CHECK_INT(cipc_bus_len(prod, "work:processing:doomed"), ==, 0);
    CHECK_INT(cipc_bus_len(prod, "work:consumers"), ==, 2);
    CHECK_INT(cipc_bus_len(prod, "work:suspect:doomed"), ==, 0);
    for (int i = 0; i < 2; i++)
        cipc_bus_free(c[i].b);
    cipc_bus_free(prod);
}

static void test_auto_reap(void)
{
    cipc_bus *prod = bus_open(S.url, NULL);
    CHECK_INT(cipc_bus_push(prod, "auto", "item-A", 6), ==, 1);
    dying_consumer("auto", "doomed2");
    /* visibility_ms makes pop_reliable reap by itself while it waits. */
    cipc_bus *c = bus_open(S.url, &(cipc_bus_opts){.visibility_ms = 400});
    void *d;
    size_t n;
    int64_t t0 = cipc_now_ms();
    int rc = cipc_bus_pop_reliable(c, "auto", 5000, &d, &n);
    if (rc < 0)
        fprintf(stderr, "%s\n", cipc_bus_errmsg(c));
    CHECK_INT(rc, ==, 0);
    int64_t ms = cipc_now_ms() - t0;
    CHECK_INT(ms, >=, 390);
    CHECK_INT(ms, <, 3000);
    CHECK_MEM(d, n, "item-A");
    CHECK_INT(cipc_bus_ack(c, "auto", d, n), ==, 1);
    free(d);
    cipc_bus_free(c);
    cipc_bus_free(prod);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    bus_srv_start(&S, &(bus_srv_opts){0});
    test_fifo_and_timeouts();
    test_reliable_ack();
    test_dead_consumer();
    test_auto_reap();
    bus_srv_stop(&S);
    return 0;
}
