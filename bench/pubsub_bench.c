/* pubsub_bench -- end-to-end pub/sub delivery through any Redis-protocol server (the cipc
 * broker or redis-server), as a subscriber sees it.
 *
 *     pubsub_bench --port P [--subscribers N] [--messages M] [--size BYTES]
 *                  [--window W] [--latency-messages L] [--timeout-ms T]
 *
 * N connections SUBSCRIBE to one channel; one more connection PUBLISHes. Two phases:
 *
 *     rate:    M messages (default 100,000 / N, at least 1000) published as fast as the
 *              server takes them, at most W (default 16) PUBLISH replies outstanding;
 *              deliveries per second = M * N / (first publish to last delivery).
 *     latency: L messages (default 2000) published one at a time, each after every
 *              subscriber got the previous one; p50 and p99 over all M * N deliveries of
 *              the time from writing the PUBLISH to a subscriber reading the message.
 *
 * Prints `name: value unit` lines: deliveries_per_s, latency_p50_us, latency_p99_us,
 * errors. Payloads are BYTES long (default 64, at least 16) and carry the send time; each
 * subscriber checks it gets every message once, in order. Every wait stops at
 * --timeout-ms (default 60000), a failure. One thread, epoll; nothing but the public
 * socket API. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "pubsub_bench: %s: %s\n", what, strerror(errno));
    printf("errors: 1\n");
    exit(1);
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("send");
        p += w;
        n -= (size_t)w;
    }
}

typedef struct sub {
    int fd;
    char *buf;
    size_t len;
    long got;       /* messages received */
} sub;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int port = 0, nsubs = 1, window = 16;
    long msgs = -1, lat_msgs = 2000, size = 64, timeout_ms = 60000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            printf("usage: pubsub_bench --port P [--subscribers N] [--messages M] [--size BYTES]\n"
                   "                    [--window W] [--latency-messages L] [--timeout-ms T]\n");
            return 0;
        }
        if (!v) {
            fprintf(stderr, "pubsub_bench: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--port"))
            port = atoi(v);
        else if (!strcmp(a, "--subscribers"))
            nsubs = atoi(v);
        else if (!strcmp(a, "--messages"))
            msgs = atol(v);
        else if (!strcmp(a, "--size"))
            size = atol(v);
        else if (!strcmp(a, "--window"))
            window = atoi(v);
        else if (!strcmp(a, "--latency-messages"))
            lat_msgs = atol(v);
        else if (!strcmp(a, "--timeout-ms"))
            timeout_ms = atol(v);
        else {
            fprintf(stderr, "pubsub_bench: unknown option %s\n", a);
            return 2;
        }
    }
    if (port <= 0 || nsubs < 1 || size < 16 || window < 1) {
        fprintf(stderr, "pubsub_bench: bad arguments (see --help)\n");
        return 2;
    }
    if (msgs < 0)
        msgs = 100000 / nsubs < 1000 ? 1000 : 100000 / nsubs;

    /* One message as a subscriber receives it: fixed size, so the stream can be cut. */
    char head[64];
    int hl = snprintf(head, sizeof head, "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$%ld\r\n", size);
    size_t frame = (size_t)hl + (size_t)size + 2;
    char phead[64];
    int phl = snprintf(phead, sizeof phead, "*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$%ld\r\n", size);
    size_t pframe = (size_t)phl + (size_t)size + 2;

    int ep = epoll_create1(EPOLL_CLOEXEC);
    sub *subs = calloc((size_t)nsubs, sizeof *subs);
    size_t cap = frame * 4096;
    for (int i = 0; i < nsubs; i++) {
        subs[i].fd = connect_to(port);
        subs[i].buf = malloc(cap);
        send_all(subs[i].fd, "SUBSCRIBE ch\r\n", 14);
    }
    /* Each confirmation: *3 $9 subscribe $2 ch :1 */
    const char *conf = "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
    for (int i = 0; i < nsubs; i++) {
        size_t got = 0;
        char cb[64];
        while (got < strlen(conf)) {
            ssize_t r = recv(subs[i].fd, cb + got, strlen(conf) - got, 0);
            if (r <= 0)
                die("subscribe");
            got += (size_t)r;
        }
        if (memcmp(cb, conf, strlen(conf)) != 0) {
            fprintf(stderr, "pubsub_bench: unexpected SUBSCRIBE reply\n");
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, subs[i].fd, &ev);
    }
    int pub = connect_to(port);
    struct epoll_event pev = {.events = EPOLLIN, .data.u32 = (uint32_t)nsubs};
    epoll_ctl(ep, EPOLL_CTL_ADD, pub, &pev);

    long total = msgs + lat_msgs;
    int64_t *lat = malloc((size_t)lat_msgs * (size_t)nsubs * sizeof *lat);
    size_t nlat = 0;
    char *pbuf = malloc(pframe * (size_t)window);
    long sent = 0, replies = 0, errors = 0;
    int64_t t_start = 0, t_rate_end = 0, deadline = now_ns() + timeout_ms * 1000000;
    long min_got = 0;
    struct epoll_event evs[256];
    char rbuf[65536];
    while (min_got < total) {
        if (now_ns() > deadline) {
            fprintf(stderr, "pubsub_bench: timed out (%ld of %ld delivered to all)\n", min_got,
                    total);
            errors++;
            break;
        }
        /* Publish: the rate phase keeps `window` in flight; the latency phase sends the
         * next message once every subscriber has the previous one. */
        long can = 0;
        if (sent < msgs)
            can = (long)window - (sent - replies);
        else if (sent < total && min_got == sent && replies == sent)
            can = 1;
        if (can > 0) {
            if (sent < msgs && sent + can > msgs)
                can = msgs - sent;
            size_t off = 0;
            for (long k = 0; k < can; k++) {
                char *f = pbuf + off;
                memcpy(f, phead, (size_t)phl);
                char *payload = f + phl;
                memset(payload, 'x', (size_t)size);
                snprintf(payload, 17, "%016llx", (unsigned long long)now_ns());
                payload[16] = '|';
                memcpy(payload + size, "\r\n", 2);
                off += pframe;
            }
            if (!t_start)
                t_start = now_ns();
            send_all(pub, pbuf, off);
            sent += can;
        }
        int n = epoll_wait(ep, evs, 256, 100);
        for (int e = 0; e < n; e++) {
            uint32_t id = evs[e].data.u32;
            if ((int)id == nsubs) { /* publisher replies: ":N\r\n" each */
                ssize_t r = recv(pub, rbuf, sizeof rbuf, 0);
                if (r <= 0)
                    die("publisher");
                for (ssize_t k = 0; k < r; k++)
                    replies += rbuf[k] == '\n';
                continue;
            }
            sub *s = &subs[id];
            ssize_t r = recv(s->fd, s->buf + s->len, cap - s->len, 0);
            if (r <= 0)
                die("subscriber");
            s->len += (size_t)r;
            int64_t t = now_ns();
            size_t pos = 0;
            while (s->len - pos >= frame) {
                const char *f = s->buf + pos;
                if (memcmp(f, head, (size_t)hl) != 0) {
                    fprintf(stderr, "pubsub_bench: malformed message at %ld\n", s->got);
                    errors++;
                    min_got = total;
                    break;
                }
                if (s->got >= msgs) {
                    char ts[17];
                    memcpy(ts, f + hl, 16);
                    ts[16] = 0;
                    lat[nlat++] = t - (int64_t)strtoull(ts, NULL, 16);
                }
                s->got++;
                pos += frame;
            }
            memmove(s->buf, s->buf + pos, s->len - pos);
            s->len -= pos;
        }
        long m = total;
        for (int i = 0; i < nsubs; i++)
            if (subs[i].got < m)
                m = subs[i].got;
        if (m >= msgs && !t_rate_end)
            t_rate_end = now_ns();
        min_got = m > min_got ? m : min_got;
    }
    double rate_s = (double)(t_rate_end - t_start) / 1e9;
    printf("deliveries_per_s: %.0f msg/s\n", rate_s > 0 ? (double)msgs * nsubs / rate_s : 0.0);
    if (nlat) {
        qsort(lat, nlat, sizeof *lat, cmp_i64);
        printf("latency_p50_us: %.1f us\n", (double)lat[nlat / 2] / 1e3);
        printf("latency_p99_us: %.1f us\n", (double)lat[(size_t)((double)nlat * 0.99)] / 1e3);
    }
    printf("errors: %ld\n", errors);
    return errors ? 1 : 0;
}
