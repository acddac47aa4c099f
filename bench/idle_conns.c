/* idle_conns -- measure a server's memory per idle keep-alive connection.
 *
 *     idle_conns --port P [--host 127.0.0.1] [--conns N] [--path /] [--pid PID]...
 *                [--inflight K] [--settle-ms S] [--timeout-ms T]
 *
 * Opens N TCP connections to HOST:P (K connects in flight at a time, so the server's
 * accept queue never overflows), sends one keep-alive `GET PATH HTTP/1.1` on each and
 * reads the whole response (Content-Length framing; the status must be 200), so the
 * server has allocated whatever a connection needs and then gone back to idling it.
 * Once all N are idle it waits S ms (default 1000), checks that the server closed none
 * of them, then reads VmRSS (and RssAnon) of every PID (summed: pass the nginx master
 * and its worker, say) from /proc/PID/status, and prints:
 *
 *     idle_conns: N
 *     rss_before_kib: ...        (read before the first connect)
 *     rss_after_kib: ...
 *     anon_before_kib / anon_after_kib: ...
 *     bytes_per_idle_conn: (after - before) * 1024 / N
 *     anon_bytes_per_idle_conn: the same from RssAnon
 *     connect_s: time to open N connections and finish their requests
 *
 * Then it closes every connection with a reset (SO_LINGER 0, so no TIME_WAIT is left
 * behind to eat ephemeral ports) and exits. Without --pid it only opens, checks and
 * closes. The whole run is bounded by T ms (default 60000): past it, everything is
 * closed and the exit status is 1. RLIMIT_NOFILE is raised to its hard limit first.
 *
 * Plain sockets and epoll; no libcipc. Linux only. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PIDS  8
#define RESP_BUF  4096
#define MAX_EVENT 256

enum conn_state { C_FREE = 0, C_CONNECTING, C_READING, C_IDLE };

struct conn {
    int fd;
    uint8_t state;
    uint16_t got; /* bytes of the response in buf */
    char *buf;    /* RESP_BUF bytes while the request is in flight, NULL when idle */
};

struct args {
    const char *host;
    int port;
    long conns;
    const char *path;
    int pids[MAX_PIDS];
    int npids;
    long inflight;
    long settle_ms;
    long timeout_ms;
};

static struct conn *conns;
static long nconns;

static void usage(void)
{
    fprintf(stderr, "usage: idle_conns --port P [--host H] [--conns N] [--path /] [--pid PID]...\n"
                    "                  [--inflight K] [--settle-ms S] [--timeout-ms T]\n");
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_long(const char *name, const char *s, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "idle_conns: %s wants an integer in %ld..%ld, got '%s'\n", name, min, max,
                s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Sum of the `key` lines (in kB) of /proc/PID/status over the PIDs; -1 if one is missing. */
static long proc_status_kib(const struct args *a, const char *key)
{
    long total = 0;
    size_t klen = strlen(key);
    for (int i = 0; i < a->npids; i++) {
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%d/status", a->pids[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            fprintf(stderr, "idle_conns: %s: %s\n", path, strerror(errno));
            return -1;
        }
        long v = -1;
        while (fgets(line, sizeof(line), f) != NULL) {
            if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
                v = strtol(line + klen + 1, NULL, 10);
                break;
            }
        }
        fclose(f);
        if (v < 0) {
            fprintf(stderr, "idle_conns: no %s in %s\n", key, path);
            return -1;
        }
        total += v;
    }
    return total;
}

static void close_all(void)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    for (long i = 0; i < nconns; i++) {
        if (conns[i].state != C_FREE) {
            setsockopt(conns[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            close(conns[i].fd);
            conns[i].state = C_FREE;
        }
        free(conns[i].buf);
        conns[i].buf = NULL;
    }
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* The value of the Content-Length header in the head [p, p + n), or -1. */
static long content_length(const char *p, size_t n)
{
    static const char key[] = "\r\ncontent-length:";
    size_t k = sizeof(key) - 1;
    for (size_t i = 0; i + k <= n; i++) {
        size_t j = 0;
        while (j < k && lower((unsigned char)p[i + j]) == key[j]) {
            j++;
        }
        if (j == k) {
            return strtol(p + i + k, NULL, 10);
        }
    }
    return -1;
}

/* 1 when buf holds a whole 200 response, 0 when more is needed, -1 on a bad response. */
static int response_done(struct conn *c)
{
    const char *end = NULL;
    for (size_t i = 0; i + 4 <= c->got; i++) {
        if (memcmp(c->buf + i, "\r\n\r\n", 4) == 0) {
            end = c->buf + i + 4;
            break;
        }
    }
    if (end == NULL) {
        return c->got >= RESP_BUF ? -1 : 0;
    }
    size_t head = (size_t)(end - c->buf);
    if (c->got < 12 || memcmp(c->buf, "HTTP/1.1 200", 12) != 0) {
        fprintf(stderr, "idle_conns: response was not 'HTTP/1.1 200': %.*s\n",
                (int)(head > 80 ? 80 : head), c->buf);
        return -1;
    }
    long cl = content_length(c->buf, head);
    if (cl < 0) {
        fprintf(stderr, "idle_conns: response has no Content-Length\n");
        return -1;
    }
    if (head + (size_t)cl > c->got) {
        return head + (size_t)cl >= RESP_BUF ? -1 : 0;
    }
    if (head + (size_t)cl < c->got) {
        fprintf(stderr, "idle_conns: extra bytes after the response\n");
        return -1;
    }
    return 1;
}

static int open_one(int ep, long i, const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "idle_conns: socket (connection %ld): %s\n", i, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conns[i].fd = fd;
    conns[i].state = C_CONNECTING;
    conns[i].got = 0;
    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 && errno != EINPROGRESS) {
        fprintf(stderr, "idle_conns: connect (connection %ld): %s\n", i, strerror(errno));
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        fprintf(stderr, "idle_conns: epoll_ctl: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

/* Drive connection i after an event; returns 1 when it went idle, 0 if still busy, -1. */
static int step(int ep, long i, const char *req, size_t reqlen)
{
    struct conn *c = &conns[i];
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            fprintf(stderr, "idle_conns: connect (connection %ld): %s\n", i, strerror(err));
            return -1;
        }
        ssize_t n = send(c->fd, req, reqlen, MSG_NOSIGNAL);
        if (n != (ssize_t)reqlen) {
            fprintf(stderr, "idle_conns: send (connection %ld): %s\n", i,
                    n < 0 ? strerror(errno) : "short write");
            return -1;
        }
        c->buf = malloc(RESP_BUF);
        if (c->buf == NULL) {
            fprintf(stderr, "idle_conns: out of memory\n");
            return -1;
        }
        c->state = C_READING;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
            fprintf(stderr, "idle_conns: epoll_ctl: %s\n", strerror(errno));
            return -1;
        }
        return 0;
    }
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->got, RESP_BUF - c->got, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            fprintf(stderr, "idle_conns: recv (connection %ld): %s\n", i,
                    n < 0 ? strerror(errno) : "server closed the connection");
            return -1;
        }
        c->got += (uint16_t)n;
        int done = response_done(c);
        if (done < 0) {
            return -1;
        }
        if (done == 1) {
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            free(c->buf);
            c->buf = NULL;
            c->state = C_IDLE;
            return 1;
        }
    }
}

/* How many idle connections the server has closed (EOF or error on a peek). */
static long count_closed(void)
{
    long closed = 0;
    char b;
    for (long i = 0; i < nconns; i++) {
        ssize_t n = recv(conns[i].fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            closed++;
        }
    }
    return closed;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n = 0;
        if (v == NULL) {
            usage();
            return -1;
        }
        if (strcmp(o, "--port") == 0) {
            if (parse_long(o, v, 1, 65535, &n) != 0) {
                return -1;
            }
            a->port = (int)n;
        } else if (strcmp(o, "--host") == 0) {
            a->host = v;
        } else if (strcmp(o, "--path") == 0) {
            a->path = v;
        } else if (strcmp(o, "--conns") == 0) {
            if (parse_long(o, v, 1, 1000000, &a->conns) != 0) {
                return -1;
            }
        } else if (strcmp(o, "--pid") == 0) {
            if (a->npids == MAX_PIDS || parse_long(o, v, 1, 1L << 30, &n) != 0) {
                return -1;
            }
            a->pids[a->npids++] = (int)n;
        } else if (strcmp(o, "--inflight") == 0) {
            if (parse_long(o, v, 1, 100000, &a->inflight) != 0) {
                return -1;
            }
        } else if (strcmp(o, "--settle-ms") == 0) {
            if (parse_long(o, v, 0, 600000, &a->settle_ms) != 0) {
                return -1;
            }
        } else if (strcmp(o, "--timeout-ms") == 0) {
            if (parse_long(o, v, 1, 3600000, &a->timeout_ms) != 0) {
                return -1;
            }
        } else {
            fprintf(stderr, "idle_conns: unknown option '%s'\n", o);
            usage();
            return -1;
        }
    }
    if (a->port == 0) {
        fprintf(stderr, "idle_conns: --port is required\n");
        usage();
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct args a = {
        .host = "127.0.0.1",
        .conns = 10000,
        .path = "/",
        .inflight = 64,
        .settle_ms = 1000,
        .timeout_ms = 60000,
    };
    if (parse_args(argc, argv, &a) != 0) {
        return 2;
    }
    int64_t deadline = now_ms() + a.timeout_ms;

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < a.conns + 16) {
            fprintf(stderr,
                    "idle_conns: RLIMIT_NOFILE hard limit %ld is too low for %ld "
                    "connections\n",
                    (long)rl.rlim_cur, a.conns);
            return 2;
        }
    }

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)a.port)};
    if (inet_pton(AF_INET, a.host, &sa.sin_addr) != 1) {
        fprintf(stderr, "idle_conns: --host wants an IPv4 address, got '%s'\n", a.host);
        return 2;
    }
    char req[512];
    int reqlen = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n", a.path,
                          a.host, a.port);
    if (reqlen <= 0 || reqlen >= (int)sizeof(req)) {
        fprintf(stderr, "idle_conns: --path too long\n");
        return 2;
    }

    conns = calloc((size_t)a.conns, sizeof(*conns));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (conns == NULL || ep < 0) {
        fprintf(stderr, "idle_conns: setup failed: %s\n", strerror(errno));
        return 1;
    }

    long rss_before = 0, anon_before = 0;
    if (a.npids > 0) {
        rss_before = proc_status_kib(&a, "VmRSS");
        anon_before = proc_status_kib(&a, "RssAnon");
        if (rss_before < 0 || anon_before < 0) {
            return 1;
        }
    }

    int64_t t0 = now_ms();
    long opened = 0, active = 0, idle = 0;
    int failed = 0;
    struct epoll_event evs[MAX_EVENT];
    while (idle < a.conns && !failed) {
        while (active < a.inflight && opened < a.conns) {
            nconns = opened + 1;
            if (open_one(ep, opened, &sa) != 0) {
                failed = 1;
                break;
            }
            opened++;
            active++;
        }
        if (failed) {
            break;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            fprintf(stderr, "idle_conns: deadline passed with %ld of %ld connections idle\n", idle,
                    a.conns);
            failed = 1;
            break;
        }
        int n = epoll_wait(ep, evs, MAX_EVENT, left > 1000 ? 1000 : (int)left);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "idle_conns: epoll_wait: %s\n", strerror(errno));
            failed = 1;
            break;
        }
        for (int k = 0; k < n && !failed; k++) {
            int r = step(ep, (long)evs[k].data.u64, req, (size_t)reqlen);
            if (r < 0) {
                failed = 1;
            } else if (r == 1) {
                active--;
                idle++;
            }
        }
    }
    int64_t t1 = now_ms();

    if (!failed) {
        int64_t settle_end = now_ms() + a.settle_ms;
        if (settle_end > deadline) {
            settle_end = deadline;
        }
        while (now_ms() < settle_end) {
            struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};
            nanosleep(&ts, NULL);
        }
        long closed = count_closed();
        printf("idle_conns: %ld\n", a.conns);
        printf("connect_s: %.3f s\n", (double)(t1 - t0) / 1000.0);
        if (closed != 0) {
            fprintf(stderr, "idle_conns: the server closed %ld of the %ld idle connections\n",
                    closed, a.conns);
            failed = 1;
        } else if (a.npids > 0) {
            long rss_after = proc_status_kib(&a, "VmRSS");
            long anon_after = proc_status_kib(&a, "RssAnon");
            if (rss_after < 0 || anon_after < 0) {
                failed = 1;
            } else {
                printf("rss_before_kib: %ld KiB\n", rss_before);
                printf("rss_after_kib: %ld KiB\n", rss_after);
                printf("anon_before_kib: %ld KiB\n", anon_before);
                printf("anon_after_kib: %ld KiB\n", anon_after);
                printf("bytes_per_idle_conn: %.0f B\n",
                       (double)(rss_after - rss_before) * 1024.0 / (double)a.conns);
                printf("anon_bytes_per_idle_conn: %.0f B\n",
                       (double)(anon_after - anon_before) * 1024.0 / (double)a.conns);
            }
        }
    }
    close_all();
    close(ep);
    free(conns);
    return failed ? 1 : 0;
}
