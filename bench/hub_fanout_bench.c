/* hub_fanout_bench -- end-to-end fan-out through the hub (`cipc serve`) to WebSocket
 * subscribers, against the same fan-out through redis-server to RESP subscribers.
 *
 *     hub_fanout_bench [--targets hub,redis] [--cipc PATH] [--subscribers N]
 *                      [--messages M] [--window W] [--size BYTES] [--publisher resp|rest]
 *                      [--json] [--lat-seconds T] [--lat-rate R] [--peak-seconds T2]
 *                      [--peak-rate R2] [--tput-seconds S] [--timeout-ms T]
 *                      [--hub-http-port H --hub-resp-port P [--hub-pid PID]]
 *                      [--redis-port P [--redis-pid PID]]
 *
 * For each target in turn (the hub, then redis-server) it starts the server on 127.0.0.1
 * (or uses the one given by port), connects N subscribers (default 1000) and one
 * publisher, runs the phases below, closes everything and stops the server by its PID.
 *
 *   hub:    `cipc serve --http-port 0 --resp-port 0 --port-file F --log-level warn
 *           --max-rate 1000000`; subscribers are WebSocket clients of the raw channel
 *           socket /v1/ws/channels/bench (every frame one message), or of /v1/ws with
 *           {"op":"subscribe","channel":"bench"} with --json; confirmed by polling
 *           GET /v1/channels/bench until it counts N subscribers. The publisher is a RESP
 *           client (PUBLISH bench <payload>) on the hub's RESP port, or with
 *           --publisher rest POST /v1/channels/bench/messages, kept alive and pipelined.
 *   redis:  `redis-server --bind 127.0.0.1 --port P --save '' --appendonly no`;
 *           subscribers send SUBSCRIBE bench and wait for its confirmation; the publisher
 *           is the same RESP code as for the hub.
 *
 * Phases (after an untimed warm-up of 100 messages):
 *
 *   tput:   M messages (default 2000) published as fast as the server takes them, at
 *           most W (default 64) replies outstanding, publishing for at most S seconds
 *           (default 20); deliveries/s = messages received by all subscribers / (first
 *           publish to last delivery). Server CPU (utime + stime of its PID, in clock
 *           ticks) and this client's CPU are reported in ms per million deliveries (= ns
 *           per delivery) and as % of the elapsed time: the client is one thread
 *           and may be the bottleneck, in which case server CPU per delivery is the
 *           figure that compares the servers.
 *   lat_d10k: publishes at R messages/s (default 10,000 / N: 10,000 deliveries/s in all)
 *           for T seconds (default 5); p50, p99 and max of publish-to-receive latency over
 *           all deliveries.
 *   lat_p10k: publishes at R2 messages/s (default 10,000: 10,000 x N deliveries/s) for
 *           T2 seconds (default 0.5; 0 skips it); the same figures, and whether the
 *           server kept up (`_feasible: 1` when nothing was lost and the last delivery came
 *           within 10% (+50 ms) of the publishing time).
 *
 * Payloads are BYTES long (default 64, at least 32): 16 hex digits of sequence number, 16
 * of send time (CLOCK_MONOTONIC ns), then padding. Every subscriber checks it gets every
 * message once and in order (loss, reordering). Latency goes into a histogram (1 us
 * steps to 100 ms, then 1 ms steps to 100 s): bounded memory.
 *
 * Prints `name: value unit` lines prefixed with the target (hub_, hub_rest_, hub_json_,
 * redis_), and `errors: N` last. Every wait has a deadline; nothing leaves 127.0.0.1. The
 * client is one thread on epoll with non-blocking sockets and minimal parsing (a WebSocket
 * handshake then unmasked server frames; RESP push arrays): the same client machinery
 * cost on both sides, so the ratio compares the servers. Nothing but the socket API. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHANNEL "bench"
#define SUB_BUF (16 * 1024)
#define MAX_PENDING_CONNECTS 128
#define QUIET_NS 5000000000LL /* a phase ends this long after the last delivery */

/* --- options and global state -------------------------------------------------------- */

enum { PUB_RESP, PUB_REST };
enum { T_HUB, T_REDIS };

static struct {
    int nsubs, window, publisher, json;
    long msgs, size, timeout_ms;
    double lat_seconds, lat_rate, peak_seconds, peak_rate, tput_seconds;
    char cipc[PATH_MAX];
    int hub_http, hub_resp, hub_pid, redis_port, redis_pid;
} opt = {
    .nsubs = 1000,
    .window = 64,
    .msgs = 2000,
    .size = 64,
    .timeout_ms = 60000,
    .lat_seconds = 5,
    .lat_rate = -1,
    .peak_seconds = 0.5,
    .peak_rate = 10000,
    .tput_seconds = 20,
};

static long errors;
static pid_t child_pid; /* the server this program started, if any */
static char tmpdir[64];

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double cpu_self_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* utime + stime of PID in seconds (-1 if unknown). */
static double cpu_pid_s(int pid)
{
    if (pid <= 0)
        return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ut = 0, st = 0;
    /* after ") ": state(3) ... utime is field 14, stime 15 */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void stop_child(void)
{
    if (child_pid <= 0)
        return;
    pid_t pid = child_pid;
    child_pid = 0;
    kill(pid, SIGTERM);
    for (int i = 0; i < 100; i++) { /* 10 s */
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        usleep(100000);
    }
    fprintf(stderr, "hub_fanout_bench: PID %d did not exit 10 s after SIGTERM; killing it\n",
            (int)pid);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void remove_tmpdir(void)
{
    if (!tmpdir[0])
        return;
    char path[128];
    const char *files[] = {"ports", "ports.tmp", "server.log"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, files[i]);
        unlink(path);
    }
    rmdir(tmpdir);
    tmpdir[0] = 0;
}

static void cleanup(void)
{
    stop_child();
    remove_tmpdir();
}

static void on_signal(int sig)
{
    (void)sig;
    exit(130); /* runs cleanup() */
}

static void die(const char *what)
{
    fprintf(stderr, "hub_fanout_bench: %s: %s\n", what, strerror(errno));
    printf("errors: %ld\n", errors + 1);
    exit(1);
}

static void fail(const char *what)
{
    fprintf(stderr, "hub_fanout_bench: %s\n", what);
    printf("errors: %ld\n", errors + 1);
    exit(1);
}

/* --- sockets -------------------------------------------------------------------------- */

static int tcp_socket(int port, int nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) < 0)
        die("free port");
    close(fd);
    return ntohs(a.sin_port);
}

/* Blocking request/response on a fresh connection with a 2 s receive timeout: sends REQ,
 * reads until EOF or until STOP appears; returns bytes read (NUL-terminated) or -1. */
static ssize_t roundtrip(int port, const char *req, const char *stop, char *out, size_t cap)
{
    int fd = tcp_socket(port, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    size_t n = strlen(req), got = 0;
    if (send(fd, req, n, MSG_NOSIGNAL) != (ssize_t)n) {
        close(fd);
        return -1;
    }
    while (got + 1 < cap) {
        ssize_t r = recv(fd, out + got, cap - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
        out[got] = 0;
        if (stop && strstr(out, stop))
            break;
    }
    out[got] = 0;
    close(fd);
    return (ssize_t)got;
}

/* --- servers -------------------------------------------------------------------------- */

static void spawn(char *const argv[])
{
    char log[128];
    snprintf(log, sizeof log, "%s/server.log", tmpdir);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the benchmark */
        if (getppid() != parent)
            _exit(1);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (nul >= 0)
            dup2(nul, 0);
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    child_pid = pid;
}

static void dump_log(void)
{
    char path[128], line[512];
    snprintf(path, sizeof path, "%s/server.log", tmpdir);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        fprintf(stderr, "    %s", line);
    fclose(f);
}

/* Start the hub; sets opt.hub_http, opt.hub_resp and opt.hub_pid. */
static void start_hub(void)
{
    char pf[128];
    snprintf(pf, sizeof pf, "%s/ports", tmpdir);
    unlink(pf);
    char *argv[] = {opt.cipc,         "serve",   "--http-port",  "0",          "--resp-port",
                    "0",              "--port-file", pf,         "--log-level", "warn",
                    "--max-rate",     "1000000", NULL};
    spawn(argv);
    int64_t deadline = now_ns() + 10000000000LL;
    while (now_ns() < deadline) {
        if (waitpid(child_pid, NULL, WNOHANG) == child_pid) {
            child_pid = 0;
            break;
        }
        FILE *f = fopen(pf, "r");
        if (f) {
            int h = 0, r = 0;
            char line[64];
            while (fgets(line, sizeof line, f)) {
                sscanf(line, "http=%d", &h);
                sscanf(line, "resp=%d", &r);
            }
            fclose(f);
            if (h > 0 && r > 0) {
                opt.hub_http = h;
                opt.hub_resp = r;
                opt.hub_pid = child_pid;
                return;
            }
        }
        usleep(20000);
    }
    dump_log();
    fail("the hub did not write its ports within 10 s");
}

/* Start redis-server on a free port; sets opt.redis_port and opt.redis_pid. */
static void start_redis(void)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        char port[16];
        int p = free_port();
        snprintf(port, sizeof port, "%d", p);
        char *argv[] = {"redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "",
                        "--appendonly", "no", "--daemonize", "no", NULL};
        spawn(argv);
        int64_t deadline = now_ns() + 10000000000LL;
        while (now_ns() < deadline) {
            if (waitpid(child_pid, NULL, WNOHANG) == child_pid) {
                child_pid = 0;
                break;
            }
            char out[64];
            if (roundtrip(p, "PING\r\n", "\r\n", out, sizeof out) > 0 && !strncmp(out, "+PONG", 5)) {
                opt.redis_port = p;
                opt.redis_pid = child_pid;
                return;
            }
            usleep(20000);
        }
        dump_log();
        stop_child();
    }
    fail("could not start redis-server");
}

/* Subscribers the hub counts on the channel (-1 if unknown). */
static int hub_subscribers(void)
{
    char req[256], out[4096];
    snprintf(req, sizeof req,
             "GET /v1/channels/" CHANNEL " HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n",
             opt.hub_http);
    if (roundtrip(opt.hub_http, req, NULL, out, sizeof out) <= 0)
        return -1;
    const char *p = strstr(out, "\"subscribers\":");
    return p ? atoi(p + 14) : -1;
}

/* --- latency histogram ----------------------------------------------------------------- */

#define H_US 100000 /* 1 us steps below 100 ms */
#define H_MS 100000 /* then 1 ms steps below 100 s */

typedef struct hist {
    uint32_t us[H_US], ms[H_MS];
    uint64_t n;
    int64_t max_ns;
} hist;

static void hist_add(hist *h, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    int64_t us = ns / 1000;
    if (us < H_US)
        h->us[us]++;
    else if (us / 1000 < H_MS)
        h->ms[us / 1000]++;
    else
        h->ms[H_MS - 1]++;
    h->n++;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

/* The q-quantile in microseconds (upper edge of its bucket is not used: the low edge). */
static double hist_q(const hist *h, double q)
{
    if (!h->n)
        return 0;
    uint64_t want = (uint64_t)((double)h->n * q), seen = 0;
    if (want >= h->n)
        want = h->n - 1;
    for (int i = 0; i < H_US; i++) {
        seen += h->us[i];
        if (seen > want)
            return i;
    }
    for (int i = 0; i < H_MS; i++) {
        seen += h->ms[i];
        if (seen > want)
            return (double)i * 1000;
    }
    return (double)h->max_ns / 1e3;
}

/* --- connections ------------------------------------------------------------------------ */

enum { S_CONNECTING, S_HANDSHAKE, S_SUBSCRIBING, S_OPEN, S_CLOSED };

typedef struct sub {
    int fd, state;
    char *buf;
    size_t len;
    uint64_t next; /* next sequence number expected */
    int seen_any;
} sub;

typedef struct run {
    int kind, ep, nsubs;
    sub *subs;
    int pending, open, confirmed;
    /* publisher */
    int pfd;
    char *pout;
    size_t pout_len, pout_cap;
    char pin[65536];
    size_t pin_len;
    long sent, replies; /* since the publisher connected */
    int pin_line_start;
    uint64_t seq; /* next sequence number to publish */
    /* current phase */
    uint64_t ph_first, ph_end; /* sequence numbers [first, end) belong to the phase */
    uint64_t received, late, reordered, gaps, dups;
    int64_t t_last_recv;
    hist *h;
    int record;
    char head[128]; /* the publish request up to the payload */
    size_t head_len;
} run;

static void send_all_nb(int fd, const char *p, size_t n)
{
    /* Small control writes (handshakes, pongs, SUBSCRIBE) on a non-blocking socket: they
     * fit the empty send buffer; retry briefly if not. */
    int64_t deadline = now_ns() + 2000000000LL;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
            if (now_ns() > deadline)
                die("send (stalled)");
            continue;
        }
        if (w <= 0)
            die("send");
        p += w;
        n -= (size_t)w;
    }
}

static uint64_t hex16(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        unsigned c = (unsigned char)p[i];
        v = v << 4 | (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

static void on_message(run *r, sub *s, const char *p, size_t n, int64_t t)
{
    if (n < 32) {
        fprintf(stderr, "hub_fanout_bench: short message (%zu bytes)\n", n);
        errors++;
        return;
    }
    uint64_t seq = hex16(p), ts = hex16(p + 16);
    if (s->seen_any && seq != s->next) {
        if (seq > s->next)
            r->gaps += seq - s->next;
        else if (seq + 1 == s->next)
            r->dups++;
        else
            r->reordered++;
    }
    s->seen_any = 1;
    s->next = seq + 1;
    if (seq < r->ph_first || seq >= r->ph_end) {
        r->late++;
        return;
    }
    r->received++;
    r->t_last_recv = t;
    if (r->record)
        hist_add(r->h, t - (int64_t)ts);
}

/* One RESP push array of at most 3 elements at P (N bytes): returns the bytes it takes,
 * 0 if incomplete, -1 if malformed. Elements are bulk strings or integers. */
static long resp_push(const char *p, size_t n, const char *el[3], size_t ell[3])
{
    if (n < 4)
        return 0;
    if (p[0] != '*')
        return -1;
    const char *e = memchr(p, '\r', n);
    if (!e || (size_t)(e - p) + 2 > n)
        return e ? 0 : (n > 32 ? -1 : 0);
    int cnt = atoi(p + 1);
    if (cnt < 1 || cnt > 3)
        return -1;
    size_t off = (size_t)(e - p) + 2;
    for (int i = 0; i < cnt; i++) {
        if (off + 3 > n)
            return 0;
        const char *q = p + off;
        e = memchr(q, '\r', n - off);
        if (!e || (size_t)(e - p) + 2 > n)
            return 0;
        size_t hl = (size_t)(e - q) + 2;
        if (q[0] == ':') {
            el[i] = q + 1;
            ell[i] = hl - 3;
            off += hl;
        } else if (q[0] == '$') {
            long len = atol(q + 1);
            if (len < 0)
                return -1;
            if (off + hl + (size_t)len + 2 > n)
                return 0;
            el[i] = q + hl;
            ell[i] = (size_t)len;
            off += hl + (size_t)len + 2;
        } else {
            return -1;
        }
    }
    for (int i = cnt; i < 3; i++) {
        el[i] = "";
        ell[i] = 0;
    }
    return (long)off;
}

static void ws_send_text(int fd, const char *msg)
{
    /* A masked client frame; the mask key is zero, so the payload goes as it is. */
    char f[256];
    size_t n = strlen(msg);
    f[0] = (char)0x81;
    f[1] = (char)(0x80 | n);
    memset(f + 2, 0, 4);
    memcpy(f + 6, msg, n);
    send_all_nb(fd, f, n + 6);
}

static void sub_close(run *r, sub *s, const char *why)
{
    if (s->state == S_CLOSED)
        return;
    if (why) {
        fprintf(stderr, "hub_fanout_bench: subscriber %d: %s\n", (int)(s - r->subs), why);
        errors++;
    }
    if (s->state != S_OPEN)
        r->pending--;
    else
        r->open--;
    epoll_ctl(r->ep, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    s->state = S_CLOSED;
}

/* Parse what subscriber S has buffered. */
static void sub_parse(run *r, sub *s, int64_t t)
{
    size_t pos = 0;
    if (s->state == S_HANDSHAKE) {
        char *end = memmem(s->buf, s->len, "\r\n\r\n", 4);
        if (!end) {
            if (s->len == SUB_BUF)
                sub_close(r, s, "handshake response too long");
            return;
        }
        if (s->len < 12 || memcmp(s->buf + 9, "101", 3) != 0) {
            sub_close(r, s, "WebSocket handshake refused");
            return;
        }
        pos = (size_t)(end - s->buf) + 4;
        if (opt.json) {
            ws_send_text(s->fd, "{\"op\":\"subscribe\",\"channel\":\"" CHANNEL "\"}");
            s->state = S_SUBSCRIBING;
        } else {
            s->state = S_OPEN; /* confirmed by GET /v1/channels/bench */
            r->pending--;
            r->open++;
        }
    }
    while (s->state != S_CLOSED && pos < s->len) {
        const char *p = s->buf + pos;
        size_t n = s->len - pos;
        if (r->kind == T_REDIS) {
            const char *el[3];
            size_t ell[3];
            long used = resp_push(p, n, el, ell);
            if (used < 0) {
                sub_close(r, s, "malformed RESP");
                return;
            }
            if (used == 0)
                break;
            pos += (size_t)used;
            if (ell[0] == 7 && !memcmp(el[0], "message", 7)) {
                on_message(r, s, el[2], ell[2], t);
            } else if (ell[0] == 9 && !memcmp(el[0], "subscribe", 9) && s->state == S_SUBSCRIBING) {
                s->state = S_OPEN;
                r->pending--;
                r->open++;
                r->confirmed++;
            }
            continue;
        }
        /* a WebSocket frame from the server: unmasked */
        if (n < 2)
            break;
        unsigned op = (unsigned char)p[0] & 0x0f;
        uint64_t len = (unsigned char)p[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) {
            if (n < 4)
                break;
            len = (uint64_t)(unsigned char)p[2] << 8 | (unsigned char)p[3];
            hl = 4;
        } else if (len == 127) {
            if (n < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | (unsigned char)p[2 + i];
            hl = 10;
        }
        if (len > SUB_BUF - 16) {
            sub_close(r, s, "frame too large");
            return;
        }
        if (n < hl + len)
            break;
        const char *pl = p + hl;
        pos += hl + (size_t)len;
        if (op == 1 || op == 2) {
            if (!opt.json) {
                on_message(r, s, pl, (size_t)len, t);
            } else if (memmem(pl, (size_t)len, "\"type\":\"message\"", 16)) {
                const char *d = memmem(pl, (size_t)len, "\"data\":\"", 8);
                if (!d) {
                    sub_close(r, s, "message without data");
                    return;
                }
                d += 8;
                const char *q = memchr(d, '"', (size_t)(pl + len - d));
                on_message(r, s, d, q ? (size_t)(q - d) : 0, t);
            } else if (memmem(pl, (size_t)len, "\"type\":\"subscribed\"", 19) &&
                       s->state == S_SUBSCRIBING) {
                s->state = S_OPEN;
                r->pending--;
                r->open++;
                r->confirmed++;
            }
        } else if (op == 9) { /* ping: pong with the same payload, masked with zeros */
            char f[140];
            f[0] = (char)0x8a;
            f[1] = (char)(0x80 | (len & 0x7f));
            memset(f + 2, 0, 4);
            memcpy(f + 6, pl, (size_t)len < 125 ? (size_t)len : 125);
            send_all_nb(s->fd, f, 6 + ((size_t)len < 125 ? (size_t)len : 125));
        } else if (op == 8) {
            sub_close(r, s, "closed by the server");
            return;
        }
    }
    if (pos) {
        memmove(s->buf, s->buf + pos, s->len - pos);
        s->len -= pos;
    }
}

static void sub_readable(run *r, sub *s, int64_t t)
{
    ssize_t n = recv(s->fd, s->buf + s->len, SUB_BUF - s->len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        sub_close(r, s, n == 0 ? "connection closed" : strerror(errno));
        return;
    }
    s->len += (size_t)n;
    sub_parse(r, s, t);
}

static void sub_connected(run *r, sub *s, int port)
{
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
        errno = err;
        sub_close(r, s, strerror(err));
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)(s - r->subs)};
    epoll_ctl(r->ep, EPOLL_CTL_MOD, s->fd, &ev);
    if (r->kind == T_REDIS) {
        send_all_nb(s->fd, "SUBSCRIBE " CHANNEL "\r\n", strlen("SUBSCRIBE " CHANNEL "\r\n"));
        s->state = S_SUBSCRIBING;
    } else {
        char req[512];
        int n = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n",
                         opt.json ? "/v1/ws" : "/v1/ws/channels/" CHANNEL, port);
        send_all_nb(s->fd, req, (size_t)n);
        s->state = S_HANDSHAKE;
    }
}

/* Handle the events of one epoll_wait; the publisher is id nsubs. */
static void publisher_readable(run *r);
static void publisher_flush(run *r);

static int poll_once(run *r, int timeout_ms, int port)
{
    struct epoll_event evs[256];
    int n = epoll_wait(r->ep, evs, 256, timeout_ms);
    if (n < 0 && errno != EINTR)
        die("epoll_wait");
    int64_t t = now_ns();
    for (int e = 0; e < n; e++) {
        uint32_t id = evs[e].data.u32;
        if ((int)id == r->nsubs) {
            if (evs[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                publisher_readable(r);
            if (evs[e].events & EPOLLOUT)
                publisher_flush(r);
            continue;
        }
        sub *s = &r->subs[id];
        if (s->state == S_CONNECTING)
            sub_connected(r, s, port);
        else if (s->state != S_CLOSED)
            sub_readable(r, s, t);
    }
    return n;
}

/* Connect every subscriber (at most MAX_PENDING_CONNECTS in progress) and wait until each
 * is confirmed. Returns the seconds it took. */
static double connect_subscribers(run *r, int port)
{
    int64_t t0 = now_ns(), deadline = t0 + opt.timeout_ms * 1000000LL;
    int next = 0;
    while (r->open < r->nsubs || (r->kind == T_REDIS || opt.json ? r->confirmed < r->nsubs : 0)) {
        if (now_ns() > deadline)
            fail("timed out connecting the subscribers");
        while (next < r->nsubs && r->pending < MAX_PENDING_CONNECTS) {
            sub *s = &r->subs[next];
            s->fd = tcp_socket(port, 1);
            if (s->fd < 0)
                die("connect");
            s->buf = malloc(SUB_BUF);
            if (!s->buf)
                die("malloc");
            s->state = S_CONNECTING;
            struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)next};
            if (epoll_ctl(r->ep, EPOLL_CTL_ADD, s->fd, &ev) < 0)
                die("epoll_ctl");
            r->pending++;
            next++;
        }
        if (next == r->nsubs && r->pending == 0 && r->open < r->nsubs)
            fail("some subscribers failed to connect");
        poll_once(r, 100, port);
    }
    if (r->kind == T_HUB) { /* the hub has them all when its channel counts N */
        int have = -1;
        while ((have = hub_subscribers()) != r->nsubs) {
            if (now_ns() > deadline) {
                fprintf(stderr, "hub_fanout_bench: the hub counts %d subscribers, not %d\n", have,
                        r->nsubs);
                fail("timed out waiting for the hub's subscriber count");
            }
            poll_once(r, 20, port);
        }
    }
    return (double)(now_ns() - t0) / 1e9;
}

/* --- publisher ------------------------------------------------------------------------ */

static void publisher_connect(run *r, int port)
{
    r->pfd = tcp_socket(port, 0); /* blocking connect, then non-blocking */
    if (r->pfd < 0)
        die("publisher connect");
    fcntl(r->pfd, F_SETFL, fcntl(r->pfd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)r->nsubs};
    epoll_ctl(r->ep, EPOLL_CTL_ADD, r->pfd, &ev);
    r->pout_cap = 4u << 20;
    r->pout = malloc(r->pout_cap);
    r->pin_line_start = 1;
    if (opt.publisher == PUB_REST)
        r->head_len = (size_t)snprintf(r->head, sizeof r->head,
                                       "POST /v1/channels/" CHANNEL "/messages HTTP/1.1\r\n"
                                       "Host: 127.0.0.1\r\nContent-Length: %ld\r\n\r\n",
                                       opt.size);
    else
        r->head_len = (size_t)snprintf(r->head, sizeof r->head,
                                       "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n" CHANNEL "\r\n$%ld\r\n",
                                       sizeof CHANNEL - 1, opt.size);
}

static void publisher_flush(run *r)
{
    size_t off = 0;
    while (off < r->pout_len) {
        ssize_t w = send(r->pfd, r->pout + off, r->pout_len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            break;
        if (w <= 0)
            die("publisher send");
        off += (size_t)w;
    }
    memmove(r->pout, r->pout + off, r->pout_len - off);
    r->pout_len -= off;
    struct epoll_event ev = {.events = EPOLLIN | (r->pout_len ? EPOLLOUT : 0),
                             .data.u32 = (uint32_t)r->nsubs};
    epoll_ctl(r->ep, EPOLL_CTL_MOD, r->pfd, &ev);
}

/* Append K publish requests (each stamped now) and write what the socket takes. */
static void publish(run *r, long k)
{
    size_t one = r->head_len + (size_t)opt.size + (opt.publisher == PUB_REST ? 0 : 2);
    for (long i = 0; i < k; i++) {
        if (r->pout_len + one > r->pout_cap)
            break;
        char *f = r->pout + r->pout_len;
        memcpy(f, r->head, r->head_len);
        char *pl = f + r->head_len;
        char num[40];
        snprintf(num, sizeof num, "%016llx%016llx", (unsigned long long)r->seq,
                 (unsigned long long)now_ns());
        memcpy(pl, num, 32);
        memset(pl + 32, 'x', (size_t)opt.size - 32);
        if (opt.publisher != PUB_REST)
            memcpy(pl + opt.size, "\r\n", 2);
        r->pout_len += one;
        r->seq++;
        r->sent++;
    }
    publisher_flush(r);
}

/* Count replies: RESP integers (":N\r\n", one a line) or HTTP responses. */
static void publisher_readable(run *r)
{
    ssize_t n = recv(r->pfd, r->pin + r->pin_len, sizeof r->pin - r->pin_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0)
        die("publisher recv");
    if (opt.publisher != PUB_REST) {
        for (ssize_t i = 0; i < n; i++) {
            char c = r->pin[i];
            if (r->pin_line_start && c != ':') {
                fprintf(stderr, "hub_fanout_bench: PUBLISH got an error reply\n");
                errors++;
            }
            r->pin_line_start = c == '\n';
            r->replies += c == '\n';
        }
        return;
    }
    r->pin_len += (size_t)n;
    size_t pos = 0;
    for (;;) {
        char *p = r->pin + pos;
        size_t left = r->pin_len - pos;
        char *end = memmem(p, left, "\r\n\r\n", 4);
        if (!end)
            break;
        size_t hl = (size_t)(end - p) + 4;
        long clen = 0;
        for (char *q = p; q < end; q++) {
            if ((*q == 'C' || *q == 'c') && !strncasecmp(q, "content-length:", 15)) {
                clen = atol(q + 15);
                break;
            }
        }
        if (left < hl + (size_t)clen)
            break;
        if (left < 12 || memcmp(p + 9, "200", 3) != 0) {
            fprintf(stderr, "hub_fanout_bench: POST answered %.12s\n", p);
            errors++;
        }
        pos += hl + (size_t)clen;
        r->replies++;
    }
    memmove(r->pin, r->pin + pos, r->pin_len - pos);
    r->pin_len -= pos;
    if (r->pin_len == sizeof r->pin)
        fail("HTTP response too large");
}

/* --- phases ---------------------------------------------------------------------------- */

typedef struct phase_result {
    long published;
    uint64_t received, lost, late, reordered;
    double elapsed_s, pub_s;             /* first publish to last delivery; publishing */
    double server_cpu_s, client_cpu_s;
} phase_result;

/* Publish COUNT messages: at RATE per second, or (RATE 0) as fast as the window lets;
 * stop publishing after MAX_S seconds. Then wait for every delivery (or QUIET_NS without
 * one). Latencies go to H when it is not NULL. */
static phase_result run_phase(run *r, long count, double rate, double max_s, hist *h, int srv_pid,
                              int port)
{
    phase_result res = {0};
    if (h)
        memset(h, 0, sizeof *h);
    r->h = h;
    r->record = h != NULL;
    r->ph_first = r->seq;
    r->ph_end = r->seq + (uint64_t)count;
    r->received = r->late = r->reordered = r->gaps = r->dups = 0;
    uint64_t want_total = 0;
    long sent0 = r->sent;
    double scpu0 = cpu_pid_s(srv_pid), ccpu0 = cpu_self_s();
    int64_t t0 = now_ns(), pub_stop = t0 + (int64_t)(max_s * 1e9), t_pub_done = 0;
    int64_t deadline = t0 + (int64_t)(max_s * 1e9) + opt.timeout_ms * 1000000LL;
    long max_out = rate > 0 ? 100000 : opt.window;
    r->t_last_recv = t0;
    for (;;) {
        int64_t now = now_ns();
        long published = r->sent - sent0;
        int timeout = 100;
        if (!t_pub_done && (published >= count || now >= pub_stop)) {
            t_pub_done = now;
            r->ph_end = r->ph_first + (uint64_t)published;
        }
        if (!t_pub_done) {
            long k;
            if (rate > 0) {
                long due = (long)((double)(now - t0) * rate / 1e9) + 1;
                if (due > count)
                    due = count;
                k = due - published;
            } else {
                k = max_out - (r->sent - r->replies);
                if (k > count - published)
                    k = count - published;
            }
            if (r->sent - r->replies + k > max_out)
                k = max_out - (r->sent - r->replies);
            if (k > 0 && r->pout_len == 0)
                publish(r, k);
            if (rate > 0) { /* sleep until the next one is due, in whole ms (no spinning) */
                double next_ns = (double)(r->sent - sent0) * 1e9 / rate - (double)(now_ns() - t0);
                timeout = next_ns <= 0 ? 0 : (int)(next_ns / 1e6) + 1;
            }
        }
        published = r->sent - sent0;
        want_total = (uint64_t)published * (uint64_t)r->open;
        if (t_pub_done && r->received >= want_total && r->replies == r->sent)
            break;
        if (t_pub_done && now - r->t_last_recv > QUIET_NS && now - t_pub_done > QUIET_NS)
            break;
        if (now > deadline) {
            fprintf(stderr, "hub_fanout_bench: phase timed out (%llu of %llu delivered)\n",
                    (unsigned long long)r->received, (unsigned long long)want_total);
            errors++;
            break;
        }
        poll_once(r, timeout, port);
    }
    if (want_total > r->received)
        fprintf(stderr,
                "hub_fanout_bench: %llu of %llu deliveries missing (%llu gaps, %llu reordered, "
                "%llu duplicates seen by subscribers; %d of %d subscribers open)\n",
                (unsigned long long)(want_total - r->received), (unsigned long long)want_total,
                (unsigned long long)r->gaps, (unsigned long long)r->reordered,
                (unsigned long long)r->dups, r->open, r->nsubs);
    res.published = r->sent - sent0;
    res.received = r->received;
    res.lost = want_total > r->received ? want_total - r->received : 0;
    res.late = r->late;
    res.reordered = r->reordered + r->dups;
    res.elapsed_s = (double)(r->t_last_recv - t0) / 1e9;
    res.pub_s = (double)((t_pub_done ? t_pub_done : now_ns()) - t0) / 1e9;
    double scpu1 = cpu_pid_s(srv_pid);
    res.server_cpu_s = scpu0 >= 0 && scpu1 >= 0 ? scpu1 - scpu0 : -1;
    res.client_cpu_s = cpu_self_s() - ccpu0;
    r->record = 0;
    r->h = NULL;
    /* Deliveries still in flight after a timeout count as late in the next phase. */
    return res;
}

static void print_cpu(const char *pfx, const char *ph, const phase_result *p)
{
    double m = (double)p->received / 1e6;
    if (p->server_cpu_s >= 0 && m > 0) {
        printf("%s_%s_server_cpu_ms_per_M: %.0f ms\n", pfx, ph, 1e3 * p->server_cpu_s / m);
        printf("%s_%s_server_cpu_pct: %.0f %%\n", pfx, ph,
               p->elapsed_s > 0 ? 100 * p->server_cpu_s / p->elapsed_s : 0.0);
    }
    if (m > 0) {
        printf("%s_%s_client_cpu_ms_per_M: %.0f ms\n", pfx, ph, 1e3 * p->client_cpu_s / m);
        printf("%s_%s_client_cpu_pct: %.0f %%\n", pfx, ph,
               p->elapsed_s > 0 ? 100 * p->client_cpu_s / p->elapsed_s : 0.0);
    }
}

static void print_latency(const char *pfx, const char *ph, const char *what, double rate,
                          const phase_result *p, const hist *h, int nsubs)
{
    double offered = rate * nsubs;
    double achieved = p->elapsed_s > 0 ? (double)p->received / p->elapsed_s : 0;
    printf("# %s %s: %s\n", pfx, ph, what);
    printf("%s_%s_publish_rate: %.0f msg/s\n", pfx, ph, rate);
    printf("%s_%s_offered_deliveries_per_s: %.0f msg/s\n", pfx, ph, offered);
    printf("%s_%s_deliveries_per_s: %.0f msg/s\n", pfx, ph, achieved);
    printf("%s_%s_messages: %ld msg\n", pfx, ph, p->published);
    printf("%s_%s_p50_us: %.0f us\n", pfx, ph, hist_q(h, 0.50));
    printf("%s_%s_p99_us: %.0f us\n", pfx, ph, hist_q(h, 0.99));
    printf("%s_%s_max_us: %.0f us\n", pfx, ph, (double)h->max_ns / 1e3);
    printf("%s_%s_loss: %llu\n", pfx, ph, (unsigned long long)p->lost);
    printf("%s_%s_reordered: %llu\n", pfx, ph, (unsigned long long)p->reordered);
    /* Kept up: every message delivered within the publishing time plus 10% (and 50 ms). */
    int kept = p->lost == 0 && p->elapsed_s <= p->pub_s * 1.1 + 0.05;
    printf("%s_%s_feasible: %d\n", pfx, ph, kept);
    print_cpu(pfx, ph, p);
}

/* --- one target -------------------------------------------------------------------------- */

static void bench_target(int kind)
{
    char pfx[32];
    snprintf(pfx, sizeof pfx, "%s%s%s", kind == T_HUB ? "hub" : "redis",
             kind == T_HUB && opt.publisher == PUB_REST ? "_rest" : "",
             kind == T_HUB && opt.json ? "_json" : "");
    int started = 0;
    if (kind == T_HUB && !opt.hub_http) {
        start_hub();
        started = 1;
    } else if (kind == T_REDIS && !opt.redis_port) {
        start_redis();
        started = 1;
    }
    int sub_port = kind == T_HUB ? opt.hub_http : opt.redis_port;
    int pub_port = kind == T_REDIS ? opt.redis_port
                   : opt.publisher == PUB_REST ? opt.hub_http
                                               : opt.hub_resp;
    int srv_pid = kind == T_HUB ? opt.hub_pid : opt.redis_pid;
    int save_pub = opt.publisher, save_json = opt.json;
    if (kind == T_REDIS) { /* the reference: RESP on both ends */
        opt.publisher = PUB_RESP;
        opt.json = 0;
    }

    run r = {.kind = kind, .nsubs = opt.nsubs};
    r.ep = epoll_create1(EPOLL_CLOEXEC);
    r.subs = calloc((size_t)opt.nsubs, sizeof *r.subs);
    hist *h = malloc(sizeof *h);
    if (r.ep < 0 || !r.subs || !h)
        die("setup");
    printf("%s_server_pid: %d\n", pfx, srv_pid);
    printf("%s_subscribers: %d\n", pfx, opt.nsubs);
    double cs = connect_subscribers(&r, sub_port);
    printf("%s_connect_s: %.2f s\n", pfx, cs);
    publisher_connect(&r, pub_port);

    /* warm-up, untimed */
    run_phase(&r, 100, 0, opt.tput_seconds, NULL, srv_pid, sub_port);

    phase_result t = run_phase(&r, opt.msgs, 0, opt.tput_seconds, h, srv_pid, sub_port);
    printf("# %s tput: %ld messages as fast as the publisher gets replies (window %d)\n", pfx,
           t.published, opt.window);
    printf("%s_deliveries_per_s: %.0f msg/s\n", pfx,
           t.elapsed_s > 0 ? (double)t.received / t.elapsed_s : 0.0);
    printf("%s_tput_messages: %ld msg\n", pfx, t.published);
    printf("%s_tput_publishes_per_s: %.0f msg/s\n", pfx,
           t.pub_s > 0 ? (double)t.published / t.pub_s : 0.0);
    printf("%s_tput_elapsed_s: %.3f s\n", pfx, t.elapsed_s);
    printf("%s_tput_loss: %llu\n", pfx, (unsigned long long)t.lost);
    printf("%s_tput_reordered: %llu\n", pfx, (unsigned long long)t.reordered);
    printf("%s_tput_p50_us: %.0f us\n", pfx, hist_q(h, 0.50));
    printf("%s_tput_p99_us: %.0f us\n", pfx, hist_q(h, 0.99));
    print_cpu(pfx, "tput", &t);
    if (t.lost)
        errors++;

    double lrate = opt.lat_rate > 0 ? opt.lat_rate : 10000.0 / opt.nsubs;
    if (opt.lat_seconds > 0) {
        long n = (long)(lrate * opt.lat_seconds + 0.5);
        phase_result l = run_phase(&r, n < 1 ? 1 : n, lrate, opt.lat_seconds, h, srv_pid, sub_port);
        char what[160];
        snprintf(what, sizeof what,
                 "%.0f publishes/s x %d subscribers = %.0f deliveries/s (\"10,000 msgs/s\" as "
                 "deliveries)",
                 lrate, opt.nsubs, lrate * opt.nsubs);
        print_latency(pfx, "lat_d10k", what, lrate, &l, h, opt.nsubs);
        if (l.lost)
            errors++;
    }
    if (opt.peak_seconds > 0) {
        long n = (long)(opt.peak_rate * opt.peak_seconds + 0.5);
        phase_result l =
            run_phase(&r, n < 1 ? 1 : n, opt.peak_rate, opt.peak_seconds, h, srv_pid, sub_port);
        char what[160];
        snprintf(what, sizeof what,
                 "%.0f publishes/s x %d subscribers = %.0f deliveries/s (\"10,000 msgs/s\" as "
                 "publishes)",
                 opt.peak_rate, opt.nsubs, opt.peak_rate * opt.nsubs);
        print_latency(pfx, "lat_p10k", what, opt.peak_rate, &l, h, opt.nsubs);
        if (l.lost)
            errors++;
    }
    fflush(stdout);

    for (int i = 0; i < r.nsubs; i++) {
        if (r.subs[i].state != S_CLOSED)
            close(r.subs[i].fd);
        free(r.subs[i].buf);
    }
    close(r.pfd);
    close(r.ep);
    free(r.pout);
    free(r.subs);
    free(h);
    opt.publisher = save_pub;
    opt.json = save_json;
    if (started) {
        stop_child();
        if (kind == T_HUB)
            opt.hub_http = opt.hub_resp = opt.hub_pid = 0;
        else
            opt.redis_port = opt.redis_pid = 0;
    }
}

/* --- main ------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hub_fanout_bench [--targets hub,redis] [--cipc PATH] [--subscribers N]\n"
            "                        [--messages M] [--window W] [--size BYTES]\n"
            "                        [--publisher resp|rest] [--json] [--lat-seconds T]\n"
            "                        [--lat-rate R] [--peak-seconds T2] [--peak-rate R2]\n"
            "                        [--tput-seconds S] [--timeout-ms T]\n"
            "                        [--hub-http-port H --hub-resp-port P [--hub-pid PID]]\n"
            "                        [--redis-port P [--redis-pid PID]]\n");
}

int main(int argc, char **argv)
{
    const char *targets = "hub,redis";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) {
            opt.json = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "hub_fanout_bench: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--targets"))
            targets = v;
        else if (!strcmp(a, "--cipc"))
            snprintf(opt.cipc, sizeof opt.cipc, "%s", v);
        else if (!strcmp(a, "--subscribers"))
            opt.nsubs = atoi(v);
        else if (!strcmp(a, "--messages"))
            opt.msgs = atol(v);
        else if (!strcmp(a, "--window"))
            opt.window = atoi(v);
        else if (!strcmp(a, "--size"))
            opt.size = atol(v);
        else if (!strcmp(a, "--publisher"))
            opt.publisher = !strcmp(v, "rest") ? PUB_REST : !strcmp(v, "resp") ? PUB_RESP : -1;
        else if (!strcmp(a, "--lat-seconds"))
            opt.lat_seconds = atof(v);
        else if (!strcmp(a, "--lat-rate"))
            opt.lat_rate = atof(v);
        else if (!strcmp(a, "--peak-seconds"))
            opt.peak_seconds = atof(v);
        else if (!strcmp(a, "--peak-rate"))
            opt.peak_rate = atof(v);
        else if (!strcmp(a, "--tput-seconds"))
            opt.tput_seconds = atof(v);
        else if (!strcmp(a, "--timeout-ms"))
            opt.timeout_ms = atol(v);
        else if (!strcmp(a, "--hub-http-port"))
            opt.hub_http = atoi(v);
        else if (!strcmp(a, "--hub-resp-port"))
            opt.hub_resp = atoi(v);
        else if (!strcmp(a, "--hub-pid"))
            opt.hub_pid = atoi(v);
        else if (!strcmp(a, "--redis-port"))
            opt.redis_port = atoi(v);
        else if (!strcmp(a, "--redis-pid"))
            opt.redis_pid = atoi(v);
        else {
            fprintf(stderr, "hub_fanout_bench: unknown option %s\n", a);
            return 2;
        }
    }
    int do_hub = strstr(targets, "hub") != NULL, do_redis = strstr(targets, "redis") != NULL;
    if (opt.nsubs < 1 || opt.msgs < 1 || opt.window < 1 || opt.size < 32 || opt.size > 8192 ||
        opt.publisher < 0 || opt.peak_rate <= 0 || opt.timeout_ms < 1 || (!do_hub && !do_redis) ||
        (opt.hub_http && !opt.hub_resp && opt.publisher == PUB_RESP)) {
        fprintf(stderr, "hub_fanout_bench: bad arguments (see --help)\n");
        return 2;
    }
    if (!opt.cipc[0]) { /* default: the cipc next to this program */
        char self[PATH_MAX - 8];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n > 0) {
            self[n] = 0;
            char *slash = strrchr(self, '/');
            if (slash)
                *slash = 0;
            snprintf(opt.cipc, sizeof opt.cipc, "%s/cipc", self);
        }
    }

    /* Room for N subscribers (and the servers started here inherit it). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)opt.nsubs * 2 + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)opt.nsubs + 64)
            fail("RLIMIT_NOFILE is too low for that many subscribers");
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hub_fanout_bench.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        tmpdir[0] = 0;
        die("mkdtemp");
    }
    atexit(cleanup);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    printf("subscribers: %d\n", opt.nsubs);
    printf("payload_bytes: %ld B\n", opt.size);
    printf("hub_publisher: %s\n", opt.publisher == PUB_REST ? "rest" : "resp");
    printf("hub_subscriber_endpoint: %s\n", opt.json ? "/v1/ws (json)" : "/v1/ws/channels/" CHANNEL);
    if (do_hub)
        bench_target(T_HUB);
    if (do_redis)
        bench_target(T_REDIS);
    printf("errors: %ld\n", errors);
    return errors ? 1 : 0;
}
