/* tests/broker_helper.h -- header-only helpers for the broker's tests: run a cipc_broker on
 * its own loop thread, and talk RESP to it over raw sockets with deadlines.
 *
 *     tbroker tb;
 *     CHECK(tbroker_start(&tb, &(cipc_broker_opts){.port = 0}) == 0);
 *     int fd = rc_connect(tb.port);
 *     rc_send(fd, "PING\r\n");
 *     rc_expect(fd, "+PONG\r\n");             (reads exactly those bytes, 5 s deadline)
 *     close(fd);
 *     tbroker_stop(&tb);
 *
 * The broker runs on a thread of this process (the loop is touched only by that thread;
 * tbroker_stop() asks it to stop through cipc_loop_stop(), the thread-safe call). */
#ifndef CIPC_TESTS_BROKER_HELPER_H
#define CIPC_TESTS_BROKER_HELPER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cipc/broker.h"
#include "cipc/loop.h"

#define RC_TIMEOUT_MS 5000

typedef struct tbroker {
    cipc_loop *loop;
    cipc_broker *b;
    cipc_broker_opts opts;
    pthread_t th;
    int port;
    int rc;
    _Atomic int ready;
} tbroker;

static inline int64_t tb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *tbroker_thread(void *arg)
{
    tbroker *tb = arg;
    tb->rc = cipc_loop_new(NULL, &tb->loop);
    if (tb->rc == 0)
        tb->rc = cipc_broker_new(tb->loop, &tb->opts, &tb->b);
    if (tb->rc == 0)
        tb->port = cipc_broker_port(tb->b);
    atomic_store(&tb->ready, 1);
    if (tb->rc < 0) {
        cipc_loop_free(tb->loop);
        return NULL;
    }
    cipc_loop_run(tb->loop, CIPC_RUN_DEFAULT);
    cipc_broker_close(tb->b);
    cipc_loop_run(tb->loop, CIPC_RUN_DEFAULT);
    cipc_broker_free(tb->b);
    cipc_loop_free(tb->loop);
    return NULL;
}

/* Start a broker with opts (copied) on a new thread; returns its result. */
static inline int tbroker_start(tbroker *tb, const cipc_broker_opts *opts)
{
    memset(tb, 0, sizeof *tb);
    if (opts)
        tb->opts = *opts;
    if (pthread_create(&tb->th, NULL, tbroker_thread, tb) != 0)
        return -EAGAIN;
    int64_t deadline = tb_now_ms() + RC_TIMEOUT_MS;
    while (!atomic_load(&tb->ready) && tb_now_ms() < deadline)
        usleep(1000);
    if (!atomic_load(&tb->ready))
        return CIPC_ETIMEOUT;
    if (tb->rc < 0)
        pthread_join(tb->th, NULL);
    return tb->rc;
}

static inline void tbroker_stop(tbroker *tb)
{
    cipc_loop_stop(tb->loop);
    pthread_join(tb->th, NULL);
}

/* --- raw RESP connections ------------------------------------------------------------- */

static inline int rc_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static inline int rc_connect_unix(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    return fd;
}

static inline void rc_send_n(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        CHECK(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

static inline void rc_send(int fd, const char *s)
{
    rc_send_n(fd, s, strlen(s));
}

/* Read exactly n bytes within timeout_ms; returns the count read (< n on EOF/timeout). */
static inline size_t rc_read_n(int fd, char *buf, size_t n, int timeout_ms)
{
    size_t got = 0;
    int64_t deadline = tb_now_ms() + timeout_ms;
    while (got < n) {
        int64_t left = deadline - tb_now_ms();
        if (left <= 0)
            break;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, (int)left) <= 0)
            break;
        ssize_t r = read(fd, buf + got, n - got); /* sockets and pipes */
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

#define rc_expect(fd, want) rc_expect_at(__FILE__, __LINE__, fd, want, strlen(want))
#define rc_expect_n(fd, want, n) rc_expect_at(__FILE__, __LINE__, fd, want, n)

static inline void rc_expect_at(const char *file, int line, int fd, const char *want, size_t n)
{
    char *buf = malloc(n + 1);
    CHECK(buf != NULL);
    size_t got = rc_read_n(fd, buf, n, RC_TIMEOUT_MS);
    buf[got] = 0;
    if (got != n || memcmp(buf, want, n) != 0) {
        fprintf(stderr, "%s:%d: expected %zu bytes \"", file, line, n);
        for (size_t i = 0; i < n; i++)
            fputs(want[i] == '\r' ? "\\r" : want[i] == '\n' ? "\\n" : (char[]){want[i], 0}, stderr);
        fprintf(stderr, "\", got %zu \"", got);
        for (size_t i = 0; i < got; i++)
            fputs(buf[i] == '\r' ? "\\r" : buf[i] == '\n' ? "\\n" : (char[]){buf[i], 0}, stderr);
        fprintf(stderr, "\"\n");
        abort();
    }
    free(buf);
}

/* 1 if nothing arrives within ms. */
static inline int rc_quiet(int fd, int ms)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    return poll(&pf, 1, ms) == 0;
}

/* 1 if the peer closes (EOF or reset) within ms, reading and dropping what comes first. */
static inline int rc_closed(int fd, int ms)
{
    char buf[4096];
    int64_t deadline = tb_now_ms() + ms;
    for (;;) {
        int64_t left = deadline - tb_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, (int)left) <= 0)
            return 0;
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r <= 0)
            return 1;
    }
}

#endif
