/* ws_bench_client -- the load client of cipc's WebSocket benchmarks: one C client for
 * every server under test (cipc, Node.js `ws`, Python `websockets`), so that the client
 * is never what saturates first.
 *
 *     ws_bench_client URL --mode rtt|pipe|fanout|idle [--count N] [--size BYTES]
 *                     [--clients C] [--warmup W] [--timeout-ms T] [--inflight K]
 *                     [--conns N] [--pid PID]... [--settle-ms S]
 *
 * URL is ws://HOST[:PORT][/PATH]. The client speaks just enough RFC 6455 for an echo
 * server: a handshake with a fixed key and no extensions offered (so no compression),
 * masked client frames (one fixed mask key per connection, the frame built once and
 * masked eight bytes at a time), unmasked server frames with 7-, 16- and 64-bit lengths,
 * fragmented messages counted when their last frame ends. Pings, pongs and anything
 * else the server sends are read and ignored; a close frame or a closed connection before
 * the end is a failure. libuv directly, not the cipc WebSocket client.
 *
 * Modes (timing with uv_hrtime, after W untimed warm-up messages or broadcasts):
 *   rtt     one connection, N times: send one --size (32) byte binary message and wait
 *           for its echo. Prints rtt_per_s, rtt_p50_us, rtt_p99_us.
 *   pipe    one connection: N binary messages of --size bytes written as fast as the
 *           socket takes them while the echoes are read, with at most 8 MiB (and at least
 *           one message) sent but not yet echoed; timed from the first write to the last
 *           echo. Prints pipe_msgs_per_s and pipe_mb_per_s (payload bytes one way, 10^6).
 *   fanout  C connections (default 1000), at most K connecting at a time; once all are
 *           open, the first one sends the text message "BCAST N" and every data message
 *           of 32 bytes on any connection counts as a delivery, until C*N have arrived;
 *           timed from the BCAST to the last delivery. Prints fanout_deliveries_per_s and
 *           fanout_deliveries.
 *   idle    N connections (--conns, default 10000), at most K connecting at a time, each
 *           one handshaken and then left idle. Reads VmRSS and RssAnon of the --pid
 *           processes (summed) from /proc/PID/status before the first connect and S ms
 *           (default 1000) after the last handshake, checks that the server closed none
 *           of them, and prints bytes_per_idle_conn and anon_bytes_per_idle_conn
 *           ((after - before) / N), as bench/idle_conns.c does for HTTP.
 *
 * Every figure goes to stdout as a `name: value unit` line, messages to stderr. The run
 * stops by itself T ms after it started (default 60000), which is a failure. Every
 * connection is closed with a reset at the end (SO_LINGER 0: no TIME_WAIT left to eat
 * ephemeral ports). RLIMIT_NOFILE is raised to its hard limit first.
 * Exit status: 0 on success, 1 on failure or timeout, 2 for usage errors. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <uv.h>

#define READ_BUF         (256 * 1024) /* one shared read buffer: the loop is single-threaded */
#define MAX_PIDS         8
#define MAX_WRITES       4            /* pipe: uv_write requests in flight */
#define BATCH_BYTES      (256 * 1024) /* pipe: bytes of frames per uv_write */
#define WINDOW_BYTES     (8u << 20)   /* pipe: payload bytes sent but not yet echoed */
#define HS_MAX           4096         /* largest handshake response head accepted */
#define FANOUT_LEN       32           /* payload size of a broadcast message */
#define FANOUT_SETTLE_MS 100          /* fanout: wait after the last handshake before BCAST */

enum mode { M_RTT, M_PIPE, M_FANOUT, M_IDLE };
enum cstate { C_NEW = 0, C_CONNECTING, C_HANDSHAKE, C_OPEN };

/* One connection. The frame parser is streaming: it keeps the header bytes of the frame
 * in progress and how much payload is left, and never buffers payload, so an idle
 * connection holds nothing but this struct. */
struct conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uint32_t idx;
    uint8_t state;
    uint8_t hlen;       /* header bytes of the current frame in hdr */
    uint8_t hneed;      /* header size once known (2 until the length byte is in) */
    uint8_t opcode;     /* of the current frame */
    uint8_t msg_opcode; /* of the message in progress (its first frame) */
    uint8_t in_payload; /* 1 while reading the current frame's payload */
    uint8_t hdr[14];
    uint64_t flen;    /* payload size of the current frame */
    uint64_t left;    /* payload bytes of the current frame still to come */
    uint64_t msg_len; /* payload bytes of the message in progress so far */
    char *hs;         /* the handshake response so far (HS_MAX bytes), NULL after */
    uint32_t hs_len;
};

struct args {
    const char *url;
    enum mode mode;
    long count;
    long size;
    long clients;
    long conns;
    long warmup;
    long timeout_ms;
    long inflight;
    long settle_ms;
    int pids[MAX_PIDS];
    int npids;
};

/* The whole run's state (one run per process). */
static struct {
    struct args a;
    uv_loop_t loop;
    uv_timer_t deadline;
    uv_timer_t settle;
    struct sockaddr_storage addr;
    char *hs_req;
    size_t hs_req_len;
    struct conn *conns;
    long nconns;     /* connections to open */
    long started;    /* connects started */
    long connecting; /* started and not yet open */
    long open;       /* handshake done */
    int done;        /* finish() ran */
    int rc;
    /* rtt and pipe */
    uint8_t *frame; /* rtt: one masked frame; pipe: batch_msgs frames back to back */
    size_t frame_len;
    long batch_msgs;
    long window_msgs;
    uv_write_t wreqs[MAX_WRITES];
    int wfree[MAX_WRITES];
    int nwfree;
    uint64_t queued;   /* messages handed to the socket */
    uint64_t received; /* messages (echoes, deliveries) received */
    uint64_t target;   /* received count that ends the current phase */
    int timed;         /* 0 during the warm-up phase */
    uint64_t t0, t1, sent_at;
    uint64_t *lat; /* rtt: per-message round trips, ns */
    /* fanout */
    uint8_t bcast[32];
    size_t bcast_len;
    /* idle */
    long rss_before, anon_before;
    uint64_t connect_t0, connect_t1;
} B;

static char read_buf[READ_BUF];

/* The accept value of the fixed key below (RFC 6455 1.3's example). */
static const char ws_key[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char ws_accept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

static void open_more(void);
static void finish(int rc);

static void usage(void)
{
    fprintf(stderr,
            "usage: ws_bench_client URL --mode rtt|pipe|fanout|idle [--count N] [--size BYTES]\n"
            "                       [--clients C] [--warmup W] [--timeout-ms T] [--inflight K]\n"
            "                       [--conns N] [--pid PID]... [--settle-ms S]\n");
}

/* Report a failure and end the run with status 1. */
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    if (B.done) {
        return;
    }
    fputs("ws_bench_client: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    finish(1);
}

/* XOR len bytes of src with the 4-byte mask key into dst, eight bytes at a time. */
static void mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4])
{
    uint8_t k8[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
    uint64_t m;
    size_t i = 0;
    memcpy(&m, k8, 8);
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, src + i, 8);
        v ^= m;
        memcpy(dst + i, &v, 8);
    }
    for (; i < len; i++) {
        dst[i] = src[i] ^ key[i & 3];
    }
}

/* The mask key of connection idx: fixed per connection, so its frames can be built once. */
static void mask_key(uint32_t idx, uint8_t key[4])
{
    uint32_t k = 0x9e3779b9u * (idx + 1) ^ 0x5bd1e995u;
    memcpy(key, &k, 4);
}

/* The size of a masked client frame with len payload bytes. */
static size_t frame_size(size_t len)
{
    return (len < 126 ? 2 : len < 65536 ? 4 : 10) + 4 + len;
}

/* Write one masked client frame (FIN set) into out (frame_size(len) bytes); returns its
 * size. */
static size_t build_frame(uint8_t *out, int opcode, const uint8_t *payload, size_t len,
                          uint32_t idx)
{
    size_t h = 2;
    out[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        out[1] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        out[1] = 0x80 | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        h = 4;
    } else {
        out[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++) {
            out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        }
        h = 10;
    }
    mask_key(idx, out + h);
    mask_copy(out + h + 4, payload, len, out + h);
    return h + 4 + len;
}

static uint64_t now_ns(void)
{
    return uv_hrtime();
}

/* --- writing ------------------------------------------------------------------------- */

static void free_write_cb(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    free(req);
    if (status < 0 && status != UV_ECANCELED) {
        fail("write (connection %u): %s", c->idx, uv_strerror(status));
    }
}

/* Send len bytes of data, which must stay unchanged until the run ends: straight to the
 * socket when it takes them all, else the rest through uv_write (in order behind any
 * write already queued). */
static void send_bytes(struct conn *c, const void *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)len) {
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        fail("write (connection %u): %s", c->idx, uv_strerror(n));
        return;
    }
    if (n < 0) {
        n = 0;
    }
    uv_write_t *req = malloc(sizeof(*req));
    if (req == NULL) {
        fail("out of memory");
        return;
    }
    req->data = c;
    b = uv_buf_init((char *)data + n, (unsigned)(len - (size_t)n));
    int rc = uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, free_write_cb);
    if (rc < 0) {
        free(req);
        fail("write (connection %u): %s", c->idx, uv_strerror(rc));
    }
}

static void pipe_pump(void);

static void pipe_write_cb(uv_write_t *req, int status)
{
    B.wfree[B.nwfree++] = (int)(req - B.wreqs);
    if (status < 0) {
        if (status != UV_ECANCELED) {
            fail("write: %s", uv_strerror(status));
        }
        return;
    }
    pipe_pump();
}

/* pipe: hand the socket more frames while fewer than MAX_WRITES writes are in flight,
 * messages remain in this phase and the echo window has room. Called when a phase
 * starts, after each write completes and after each read. */
static void pipe_pump(void)
{
    struct conn *c = &B.conns[0];
    while (!B.done && B.nwfree > 0 && B.queued < B.target) {
        uint64_t inflight = B.queued - B.received;
        if (inflight >= (uint64_t)B.window_msgs) {
            break;
        }
        uint64_t k = (uint64_t)B.batch_msgs;
        if (k > B.target - B.queued) {
            k = B.target - B.queued;
        }
        if (k > (uint64_t)B.window_msgs - inflight) {
            k = (uint64_t)B.window_msgs - inflight;
        }
        int slot = B.wfree[--B.nwfree];
        uv_buf_t b = uv_buf_init((char *)B.frame, (unsigned)(k * B.frame_len));
        int rc = uv_write(&B.wreqs[slot], (uv_stream_t *)&c->tcp, &b, 1, pipe_write_cb);
        if (rc < 0) {
            B.wfree[B.nwfree++] = slot;
            fail("write: %s", uv_strerror(rc));
            return;
        }
        B.queued += k;
    }
}

/* --- the workloads ------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The nearest-rank percentile p (0..100) of the sorted v[0..n). */
static double pct_us(const uint64_t *v, uint64_t n, double p)
{
    uint64_t r = (uint64_t)((p / 100.0) * (double)n + 0.999999);
    if (r < 1) {
        r = 1;
    }
    if (r > n) {
        r = n;
    }
    return (double)v[r - 1] / 1000.0;
}

/* rtt and pipe: start the timed phase once the warm-up's echoes are all back. */
static void start_timed(void)
{
    B.timed = 1;
    B.t0 = now_ns();
    B.target = B.received + (uint64_t)B.a.count;
}

static void rtt_send(void)
{
    B.sent_at = now_ns();
    B.queued++;
    send_bytes(&B.conns[0], B.frame, B.frame_len);
}

static void fanout_send(long n)
{
    char text[32];
    int len = snprintf(text, sizeof(text), "BCAST %ld", n);
    B.bcast_len = build_frame(B.bcast, 1, (const uint8_t *)text, (size_t)len, 0);
    B.target = B.received + (uint64_t)B.nconns * (uint64_t)n;
    send_bytes(&B.conns[0], B.bcast, B.bcast_len);
}

static void fanout_settled(uv_timer_t *t)
{
    (void)t;
    if (B.a.warmup > 0) {
        fanout_send(B.a.warmup);
    } else {
        B.timed = 1;
        B.t0 = now_ns();
        fanout_send(B.a.count);
    }
}

/* /proc/PID/status `key` (kB) summed over the --pid processes; -1 if one is missing. */
static long proc_status_kib(const char *key)
{
    long total = 0;
    size_t klen = strlen(key);
    for (int i = 0; i < B.a.npids; i++) {
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%d/status", B.a.pids[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            fprintf(stderr, "ws_bench_client: %s: %s\n", path, strerror(errno));
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
            fprintf(stderr, "ws_bench_client: no %s in %s\n", key, path);
            return -1;
        }
        total += v;
    }
    return total;
}

/* idle: S ms after the last handshake. Every connection is still open (a close would
 * have failed the run already), so read the memory again and report. */
static void idle_settled(uv_timer_t *t)
{
    (void)t;
    printf("idle_conns: %ld conn\n", B.nconns);
    printf("connect_s: %.3f s\n", (double)(B.connect_t1 - B.connect_t0) / 1e9);
    if (B.a.npids > 0) {
        long rss = proc_status_kib("VmRSS");
        long anon = proc_status_kib("RssAnon");
        if (rss < 0 || anon < 0) {
            fail("could not read the servers' memory");
            return;
        }
        printf("rss_before_kib: %ld KiB\n", B.rss_before);
        printf("rss_after_kib: %ld KiB\n", rss);
        printf("anon_before_kib: %ld KiB\n", B.anon_before);
        printf("anon_after_kib: %ld KiB\n", anon);
        printf("bytes_per_idle_conn: %.0f B\n",
               (double)(rss - B.rss_before) * 1024.0 / (double)B.nconns);
        printf("anon_bytes_per_idle_conn: %.0f B\n",
               (double)(anon - B.anon_before) * 1024.0 / (double)B.nconns);
    }
    finish(0);
}

/* A connection finished its handshake. */
static void on_open(struct conn *c)
{
    c->state = C_OPEN;
    B.connecting--;
    B.open++;
    switch (B.a.mode) {
    case M_RTT:
    case M_PIPE:
        if (B.a.warmup > 0) {
            B.target = (uint64_t)B.a.warmup;
        } else {
            start_timed();
        }
        if (B.a.mode == M_RTT) {
            rtt_send();
        } else {
            pipe_pump();
        }
        break;
    case M_FANOUT:
    case M_IDLE:
        if (B.open < B.nconns) {
            open_more();
        } else {
            B.connect_t1 = now_ns();
            uv_timer_start(&B.settle, B.a.mode == M_IDLE ? idle_settled : fanout_settled,
                           B.a.mode == M_IDLE ? (uint64_t)B.a.settle_ms : FANOUT_SETTLE_MS, 0);
        }
        break;
    }
}

/* A whole data message arrived on c. */
static void on_message(struct conn *c, int opcode, uint64_t len)
{
    switch (B.a.mode) {
    case M_RTT:
        if (opcode != 2 || len != (uint64_t)B.a.size) {
            fail("echo of opcode %d and %llu bytes, expected binary of %ld", opcode,
                 (unsigned long long)len, B.a.size);
            return;
        }
        if (B.timed) {
            B.lat[B.received - (B.target - (uint64_t)B.a.count)] = now_ns() - B.sent_at;
        }
        B.received++;
        if (B.received < B.target) {
            rtt_send();
        } else if (!B.timed) {
            start_timed();
            rtt_send();
        } else {
            B.t1 = now_ns();
            uint64_t n = (uint64_t)B.a.count;
            double s = (double)(B.t1 - B.t0) / 1e9;
            qsort(B.lat, n, sizeof(*B.lat), cmp_u64);
            printf("rtt_count: %llu msg\n", (unsigned long long)n);
            printf("rtt_s: %.3f s\n", s);
            printf("rtt_per_s: %.1f msg/s\n", (double)n / s);
            printf("rtt_p50_us: %.1f us\n", pct_us(B.lat, n, 50));
            printf("rtt_p99_us: %.1f us\n", pct_us(B.lat, n, 99));
            finish(0);
        }
        break;
    case M_PIPE:
        if (opcode != 2 || len != (uint64_t)B.a.size) {
            fail("echo of opcode %d and %llu bytes, expected binary of %ld", opcode,
                 (unsigned long long)len, B.a.size);
            return;
        }
        B.received++;
        if (B.received == B.target) {
            if (!B.timed) {
                start_timed();
            } else {
                B.t1 = now_ns();
                double s = (double)(B.t1 - B.t0) / 1e9;
                double n = (double)B.a.count;
                printf("pipe_count: %ld msg\n", B.a.count);
                printf("pipe_size: %ld B\n", B.a.size);
                printf("pipe_s: %.3f s\n", s);
                printf("pipe_msgs_per_s: %.1f msg/s\n", n / s);
                printf("pipe_mb_per_s: %.1f MB/s\n", n * (double)B.a.size / s / 1e6);
                finish(0);
            }
        }
        /* pipe_pump() runs once per read, after the whole buffer is parsed. */
        break;
    case M_FANOUT:
        if ((opcode != 1 && opcode != 2) || len != FANOUT_LEN) {
            fail("connection %u: a message of opcode %d and %llu bytes, expected %d bytes", c->idx,
                 opcode, (unsigned long long)len, FANOUT_LEN);
            return;
        }
        B.received++;
        if (B.received == B.target) {
            if (!B.timed) {
                B.timed = 1;
                B.t0 = now_ns();
                fanout_send(B.a.count);
            } else {
                B.t1 = now_ns();
                double s = (double)(B.t1 - B.t0) / 1e9;
                double n = (double)B.nconns * (double)B.a.count;
                printf("fanout_clients: %ld conn\n", B.nconns);
                printf("fanout_messages: %ld msg\n", B.a.count);
                printf("fanout_connect_s: %.3f s\n", (double)(B.connect_t1 - B.connect_t0) / 1e9);
                printf("fanout_s: %.3f s\n", s);
                printf("fanout_deliveries: %.0f msg\n", n);
                printf("fanout_deliveries_per_s: %.1f msg/s\n", n / s);
                finish(0);
            }
        }
        break;
    case M_IDLE:
        break;
    }
}

/* --- the protocol -------------------------------------------------------------------- */

/* Feed server frame bytes to c's parser; messages go to on_message(). Returns 0, or -1
 * after failing the run. */
static int feed_frames(struct conn *c, const uint8_t *p, size_t n)
{
    const uint8_t *end = p + n;
    while (p < end && !B.done) {
        if (!c->in_payload) {
            if (c->hlen < 2) {
                c->hdr[c->hlen++] = *p++;
                if (c->hlen < 2) {
                    continue;
                }
                if (c->hdr[1] & 0x80) {
                    fail("connection %u: the server sent a masked frame", c->idx);
                    return -1;
                }
                uint8_t l7 = c->hdr[1] & 0x7f;
                c->hneed = (uint8_t)(2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0));
            }
            size_t take = (size_t)(c->hneed - c->hlen);
            if (take > (size_t)(end - p)) {
                take = (size_t)(end - p);
            }
            memcpy(c->hdr + c->hlen, p, take);
            c->hlen = (uint8_t)(c->hlen + take);
            p += take;
            if (c->hlen < c->hneed) {
                continue;
            }
            uint8_t l7 = c->hdr[1] & 0x7f;
            uint64_t len = l7;
            if (l7 == 126) {
                len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
            } else if (l7 == 127) {
                len = 0;
                for (int i = 0; i < 8; i++) {
                    len = len << 8 | c->hdr[2 + i];
                }
            }
            c->opcode = c->hdr[0] & 0x0f;
            if (c->hdr[0] & 0x70) {
                fail("connection %u: a frame with RSV bits set (no extension was offered)", c->idx);
                return -1;
            }
            if (c->opcode == 1 || c->opcode == 2) {
                c->msg_opcode = c->opcode;
                c->msg_len = 0;
            }
            c->flen = len;
            c->left = len;
            c->in_payload = 1;
        }
        size_t take = (size_t)(end - p);
        if ((uint64_t)take > c->left) {
            take = (size_t)c->left;
        }
        p += take;
        c->left -= take;
        if (c->left > 0) {
            continue;
        }
        /* The frame is complete. */
        int fin = c->hdr[0] & 0x80;
        c->in_payload = 0;
        c->hlen = 0;
        switch (c->opcode) {
        case 0:
        case 1:
        case 2:
            c->msg_len += c->flen;
            if (fin) {
                on_message(c, c->msg_opcode, c->msg_len);
            }
            break;
        case 8:
            fail("connection %u: the server sent a close frame", c->idx);
            return -1;
        default: /* ping, pong: ignored */
            break;
        }
    }
    return 0;
}

/* Feed handshake response bytes; on a complete 101 the connection opens and what follows
 * the head goes to the frame parser. */
static void feed_handshake(struct conn *c, const char *p, size_t n)
{
    size_t take = n;
    if (take > HS_MAX - c->hs_len) {
        take = HS_MAX - c->hs_len;
    }
    memcpy(c->hs + c->hs_len, p, take);
    size_t scan = c->hs_len > 3 ? c->hs_len - 3 : 0;
    c->hs_len += (uint32_t)take;
    size_t head = 0;
    for (size_t i = scan; i + 4 <= c->hs_len; i++) {
        if (memcmp(c->hs + i, "\r\n\r\n", 4) == 0) {
            head = i + 4;
            break;
        }
    }
    if (head == 0) {
        if (c->hs_len >= HS_MAX) {
            fail("connection %u: handshake response head over %d bytes", c->idx, HS_MAX);
        }
        return;
    }
    if (c->hs_len < 12 || memcmp(c->hs, "HTTP/1.1 101", 12) != 0) {
        size_t l = head > 80 ? 80 : head;
        fail("connection %u: handshake answered '%.*s'", c->idx, (int)l, c->hs);
        return;
    }
    c->hs[head - 1] = '\0';
    if (strstr(c->hs, ws_accept) == NULL) {
        fail("connection %u: no Sec-WebSocket-Accept: %s in the 101", c->idx, ws_accept);
        return;
    }
    size_t rest = (size_t)c->hs_len - head; /* bytes after the head, in this read */
    const char *after = p + (take - rest);
    free(c->hs);
    c->hs = NULL;
    on_open(c);
    if (rest > 0 && !B.done) {
        feed_frames(c, (const uint8_t *)after, rest);
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(read_buf, sizeof(read_buf));
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (B.done) {
        return;
    }
    if (n < 0) {
        fail("connection %u: %s", c->idx,
             n == UV_EOF ? "the server closed the connection" : uv_strerror((int)n));
        return;
    }
    if (n == 0) {
        return;
    }
    if (c->state == C_HANDSHAKE) {
        feed_handshake(c, buf->base, (size_t)n);
    } else {
        feed_frames(c, (const uint8_t *)buf->base, (size_t)n);
    }
    if (B.a.mode == M_PIPE && !B.done) {
        pipe_pump();
    }
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    if (B.done) {
        return;
    }
    if (status < 0) {
        fail("connect (connection %u): %s", c->idx, uv_strerror(status));
        return;
    }
    c->state = C_HANDSHAKE;
    c->hs = malloc(HS_MAX);
    if (c->hs == NULL) {
        fail("out of memory");
        return;
    }
    int rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (rc < 0) {
        fail("read (connection %u): %s", c->idx, uv_strerror(rc));
        return;
    }
    send_bytes(c, B.hs_req, B.hs_req_len);
}

/* Start connects while fewer than --inflight are in progress and some remain. */
static void open_more(void)
{
    while (!B.done && B.started < B.nconns && B.connecting < B.a.inflight) {
        struct conn *c = &B.conns[B.started];
        c->idx = (uint32_t)B.started;
        int rc = uv_tcp_init(&B.loop, &c->tcp);
        if (rc < 0) {
            fail("tcp init: %s", uv_strerror(rc));
            return;
        }
        c->state = C_CONNECTING;
        c->tcp.data = c;
        c->creq.data = c;
        B.started++;
        B.connecting++;
        uv_tcp_nodelay(&c->tcp, 1);
        rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&B.addr, connect_cb);
        if (rc < 0) {
            fail("connect (connection %u): %s", c->idx, uv_strerror(rc));
            return;
        }
    }
}

static void on_deadline(uv_timer_t *t)
{
    (void)t;
    fail("deadline of %ld ms passed: %ld of %ld connections open, %llu of %llu messages "
         "received in this phase",
         B.a.timeout_ms, B.open, B.nconns, (unsigned long long)B.received,
         (unsigned long long)B.target);
}

/* End the run with status rc: close every connection with a reset and the timers, so
 * the loop runs out. */
static void finish(int rc)
{
    if (B.done) {
        return;
    }
    B.done = 1;
    B.rc = rc;
    fflush(stdout);
    for (long i = 0; i < B.started; i++) {
        struct conn *c = &B.conns[i];
        uv_handle_t *h = (uv_handle_t *)&c->tcp;
        if (c->state != C_NEW && !uv_is_closing(h)) {
            if (uv_tcp_close_reset(&c->tcp, NULL) < 0) {
                uv_close(h, NULL);
            }
        }
        free(c->hs);
        c->hs = NULL;
    }
    uv_close((uv_handle_t *)&B.deadline, NULL);
    uv_close((uv_handle_t *)&B.settle, NULL);
}

/* --- setup --------------------------------------------------------------------------- */

static int parse_long(const char *name, const char *s, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "ws_bench_client: %s wants an integer in %ld..%ld, got '%s'\n", name, min,
                max, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (o[0] != '-') {
            if (a->url != NULL) {
                fprintf(stderr, "ws_bench_client: more than one URL\n");
                return -1;
            }
            a->url = o;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n = 0;
        if (v == NULL) {
            fprintf(stderr, "ws_bench_client: %s needs a value\n", o);
            return -1;
        }
        int rc = 0;
        if (strcmp(o, "--mode") == 0) {
            if (strcmp(v, "rtt") == 0) {
                a->mode = M_RTT;
            } else if (strcmp(v, "pipe") == 0) {
                a->mode = M_PIPE;
            } else if (strcmp(v, "fanout") == 0) {
                a->mode = M_FANOUT;
            } else if (strcmp(v, "idle") == 0) {
                a->mode = M_IDLE;
            } else {
                fprintf(stderr, "ws_bench_client: unknown mode '%s'\n", v);
                return -1;
            }
        } else if (strcmp(o, "--count") == 0) {
            rc = parse_long(o, v, 1, 1000000000L, &a->count);
        } else if (strcmp(o, "--size") == 0) {
            rc = parse_long(o, v, 0, 64L << 20, &a->size);
        } else if (strcmp(o, "--clients") == 0) {
            rc = parse_long(o, v, 1, 1000000, &a->clients);
        } else if (strcmp(o, "--conns") == 0) {
            rc = parse_long(o, v, 1, 1000000, &a->conns);
        } else if (strcmp(o, "--warmup") == 0) {
            rc = parse_long(o, v, 0, 1000000000L, &a->warmup);
        } else if (strcmp(o, "--timeout-ms") == 0) {
            rc = parse_long(o, v, 1, 3600000, &a->timeout_ms);
        } else if (strcmp(o, "--inflight") == 0) {
            rc = parse_long(o, v, 1, 100000, &a->inflight);
        } else if (strcmp(o, "--settle-ms") == 0) {
            rc = parse_long(o, v, 0, 600000, &a->settle_ms);
        } else if (strcmp(o, "--pid") == 0) {
            if (a->npids == MAX_PIDS) {
                fprintf(stderr, "ws_bench_client: at most %d --pid\n", MAX_PIDS);
                return -1;
            }
            rc = parse_long(o, v, 1, 1L << 30, &n);
            a->pids[a->npids++] = (int)n;
        } else {
            fprintf(stderr, "ws_bench_client: unknown option '%s'\n", o);
            return -1;
        }
        if (rc != 0) {
            return -1;
        }
        i++;
    }
    if (a->url == NULL || (int)a->mode < 0) {
        fprintf(stderr, "ws_bench_client: a URL and --mode are required\n");
        return -1;
    }
    return 0;
}

/* Split ws://HOST[:PORT][/PATH], resolve HOST (blocking) and build the handshake request.
 * Returns 0 or -1 with a message. */
static int setup_url(const char *url)
{
    static const char scheme[] = "ws://";
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0) {
        fprintf(stderr, "ws_bench_client: the URL must start with ws://, got '%s'\n", url);
        return -1;
    }
    const char *h = url + sizeof(scheme) - 1;
    const char *slash = strchr(h, '/');
    const char *path = slash != NULL ? slash : "/";
    size_t hp_len = slash != NULL ? (size_t)(slash - h) : strlen(h);
    char hostport[256], host[256], port[16] = "80";
    if (hp_len == 0 || hp_len >= sizeof(hostport)) {
        fprintf(stderr, "ws_bench_client: bad host in '%s'\n", url);
        return -1;
    }
    memcpy(hostport, h, hp_len);
    hostport[hp_len] = '\0';
    snprintf(host, sizeof(host), "%s", hostport);
    char *colon = strrchr(host, ':');
    if (colon != NULL) {
        *colon = '\0';
        snprintf(port, sizeof(port), "%s", colon + 1);
    }
    uv_getaddrinfo_t gai;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = uv_getaddrinfo(&B.loop, &gai, NULL, host, port, &hints);
    if (rc < 0) {
        fprintf(stderr, "ws_bench_client: resolve %s:%s: %s\n", host, port, uv_strerror(rc));
        return -1;
    }
    memcpy(&B.addr, gai.addrinfo->ai_addr, gai.addrinfo->ai_addrlen);
    uv_freeaddrinfo(gai.addrinfo);
    size_t cap = strlen(path) + strlen(hostport) + 256;
    B.hs_req = malloc(cap);
    if (B.hs_req == NULL) {
        return -1;
    }
    B.hs_req_len = (size_t)snprintf(B.hs_req, cap,
                                    "GET %s HTTP/1.1\r\n"
                                    "Host: %s\r\n"
                                    "Upgrade: websocket\r\n"
                                    "Connection: Upgrade\r\n"
                                    "Sec-WebSocket-Key: %s\r\n"
                                    "Sec-WebSocket-Version: 13\r\n"
                                    "\r\n",
                                    path, hostport, ws_key);
    return 0;
}

/* rtt and pipe: build the message frames (the payload is a byte pattern). */
static int setup_frames(void)
{
    size_t size = (size_t)B.a.size;
    uint8_t *payload = malloc(size > 0 ? size : 1);
    if (payload == NULL) {
        return -1;
    }
    for (size_t i = 0; i < size; i++) {
        payload[i] = (uint8_t)('a' + i % 26);
    }
    B.frame_len = frame_size(size);
    if (B.a.mode == M_PIPE) {
        long window = (long)(WINDOW_BYTES / (size > 0 ? size : 1));
        B.window_msgs = window > 0 ? window : 1;
        long batch = (long)(BATCH_BYTES / B.frame_len);
        B.batch_msgs = batch < 1 ? 1 : batch > B.window_msgs ? B.window_msgs : batch;
    } else {
        B.batch_msgs = 1;
    }
    B.frame = malloc((size_t)B.batch_msgs * B.frame_len);
    if (B.frame == NULL) {
        free(payload);
        return -1;
    }
    build_frame(B.frame, 2, payload, size, 0);
    for (long i = 1; i < B.batch_msgs; i++) {
        memcpy(B.frame + (size_t)i * B.frame_len, B.frame, B.frame_len);
    }
    free(payload);
    for (int i = 0; i < MAX_WRITES; i++) {
        B.wfree[B.nwfree++] = i;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct args *a = &B.a;
    a->mode = (enum mode) - 1;
    a->count = -1;
    a->size = 32;
    a->clients = 1000;
    a->conns = 10000;
    a->warmup = -1;
    a->timeout_ms = 60000;
    a->inflight = 64;
    a->settle_ms = 1000;
    if (parse_args(argc, argv, a) != 0) {
        usage();
        return 2;
    }
    if (a->count < 0) {
        a->count = a->mode == M_RTT ? 10000 : a->mode == M_PIPE ? 100000 : 1000;
    }
    if (a->warmup < 0) {
        a->warmup = a->mode == M_FANOUT ? 10 : 1000;
    }
    if (a->mode == M_FANOUT && a->size != 32) {
        fprintf(stderr, "ws_bench_client: fanout messages are 32 bytes; --size does not apply\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    B.nconns = a->mode == M_FANOUT ? a->clients : a->mode == M_IDLE ? a->conns : 1;

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < B.nconns + 16) {
            fprintf(stderr,
                    "ws_bench_client: RLIMIT_NOFILE hard limit %ld is too low for %ld "
                    "connections\n",
                    (long)rl.rlim_cur, B.nconns);
            return 2;
        }
    }

    if (uv_loop_init(&B.loop) != 0) {
        fprintf(stderr, "ws_bench_client: uv_loop_init failed\n");
        return 1;
    }
    if (setup_url(a->url) != 0) {
        return 2;
    }
    B.conns = calloc((size_t)B.nconns, sizeof(*B.conns));
    if (B.conns == NULL) {
        fprintf(stderr, "ws_bench_client: out of memory\n");
        return 1;
    }
    if ((a->mode == M_RTT || a->mode == M_PIPE) && setup_frames() != 0) {
        fprintf(stderr, "ws_bench_client: out of memory\n");
        return 1;
    }
    if (a->mode == M_RTT) {
        B.lat = malloc((size_t)a->count * sizeof(*B.lat));
        if (B.lat == NULL) {
            fprintf(stderr, "ws_bench_client: out of memory\n");
            return 1;
        }
    }
    if (a->mode == M_IDLE && a->npids > 0) {
        B.rss_before = proc_status_kib("VmRSS");
        B.anon_before = proc_status_kib("RssAnon");
        if (B.rss_before < 0 || B.anon_before < 0) {
            return 1;
        }
    }

    uv_timer_init(&B.loop, &B.deadline);
    uv_timer_init(&B.loop, &B.settle);
    uv_timer_start(&B.deadline, on_deadline, (uint64_t)a->timeout_ms, 0);
    B.connect_t0 = now_ns();
    open_more();
    uv_run(&B.loop, UV_RUN_DEFAULT);
    uv_loop_close(&B.loop);
    free(B.conns);
    free(B.frame);
    free(B.lat);
    free(B.hs_req);
    return B.rc;
}
