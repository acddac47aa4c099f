/* cipc's own WebSocket conformance suite, server side: a raw-socket client against a cipc
 * server, one table row per rule of RFC 6455 sections 4-10 and RFC 7692, named after the
 * section it checks (as Autobahn groups its cases).
 *
 * The client does the opening handshake itself, then writes exact frame bytes (masked,
 * as RFC 6455 5.3 requires, unless the row says otherwise; payloads compressed with zlib
 * here for the permessage-deflate rows) and reads the server's exact reply frames and
 * the TCP close, every read under a deadline. Each row states its whole outcome: the
 * frames the server must send back (echo, pong, a close with its code), then either
 * "still open" (a normal closing handshake must follow) or "closed" (the TCP connection
 * ends with nothing more sent).
 *
 * The server (in this process) has three endpoints: /echo echoes text and binary
 * messages, /small does the same with max_message 1000, /nopmd with no compression.
 * Besides the rows: the compression bomb (1009 quickly, the server's RSS barely moves),
 * 1000 concurrent connections, a stalled half frame that blocks nobody, random garbage. */
#include <sys/resource.h>
#include <zlib.h>

#include "cipc/ws.h"
#include "server_helper.h"
#include "ws/frame.h"

#define WAIT_MS   10000
#define SMALL_MAX 1000

/* --- the server --------------------------------------------------------------------- */

static latch opened_l = LATCH_INIT, closed_l = LATCH_INIT;

/* What the handlers saw of a tracked connection (one opened with "?t=<n>"), so that each
 * row also checks what the application is told: on_error (the error and its message)
 * and on_close (the code). */
#define MAX_TRACK 2048
struct track {
    int closed, code, err, errors;
    char errmsg[160];
};
static struct track tracks[MAX_TRACK];
static pthread_mutex_t track_mu = PTHREAD_MUTEX_INITIALIZER;
static int track_seq;

static void s_open(cipc_ws *ws, cipc_http_req *req, void *ud)
{
    (void)ud;
    const char *t = cipc_http_query(req, "t");
    long id = t ? strtol(t, NULL, 10) : 0;
    CHECK(id >= 0 && id < MAX_TRACK);
    cipc_ws_set_user(ws, (void *)(intptr_t)id);
    latch_add(&opened_l);
}

static void s_error(cipc_ws *ws, int err, const char *msg, void *ud)
{
    (void)ud;
    intptr_t id = (intptr_t)cipc_ws_user(ws);
    pthread_mutex_lock(&track_mu);
    tracks[id].errors++;
    tracks[id].err = err;
    snprintf(tracks[id].errmsg, sizeof tracks[id].errmsg, "%s", msg);
    pthread_mutex_unlock(&track_mu);
}

static void s_message(cipc_ws *ws, int type, const void *data, size_t len, void *ud)
{
    (void)ud;
    cipc_ws_send(ws, type, data, len);
}

static void s_close(cipc_ws *ws, int code, const char *reason, size_t len, void *ud)
{
    (void)reason;
    (void)len;
    (void)ud;
    intptr_t id = (intptr_t)cipc_ws_user(ws);
    pthread_mutex_lock(&track_mu);
    tracks[id].closed++;
    tracks[id].code = code;
    pthread_mutex_unlock(&track_mu);
    latch_add(&closed_l);
}

/* Wait (bounded) for the tracked connection `id` to be closed; returns its record. */
static struct track track_wait(int id)
{
    int64_t end = peer_now_ms() + WAIT_MS;
    for (;;) {
        pthread_mutex_lock(&track_mu);
        struct track t = tracks[id];
        pthread_mutex_unlock(&track_mu);
        int64_t left = end - peer_now_ms();
        if (t.closed || left <= 0)
            return t;
        latch_wait(&closed_l, latch_count(&closed_l) + 1, left < 50 ? left : 50);
    }
}

static int start_server(srv_thread *t, int workers)
{
    srvt_new(t, (cipc_server_opts){.workers = workers, .shutdown_timeout_ms = 3000});
    cipc_ws_handlers h = {
        .on_open = s_open, .on_message = s_message, .on_close = s_close, .on_error = s_error};
    static const cipc_ws_opts echo_o = {.close_timeout_ms = 2000};
    static const cipc_ws_opts small_o = {.max_message = SMALL_MAX, .close_timeout_ms = 2000};
    static const cipc_ws_opts nopmd_o = {.no_compression = 1, .close_timeout_ms = 2000};
    h.opts = &echo_o;
    CHECK_INT(cipc_route_ws(t->srv, "/echo", &h, NULL), ==, 0);
    h.opts = &small_o;
    CHECK_INT(cipc_route_ws(t->srv, "/small", &h, NULL), ==, 0);
    h.opts = &nopmd_o;
    CHECK_INT(cipc_route_ws(t->srv, "/nopmd", &h, NULL), ==, 0);
    return srvt_start(t);
}

/* --- the raw client ----------------------------------------------------------------- */

#define RFC_KEY    "dGhlIHNhbXBsZSBub25jZQ=="     /* RFC 6455 1.3 */
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" /* its accept value */

typedef struct wsc {
    raw_conn c;
    int pmd;         /* permessage-deflate agreed */
    int tx_bits;     /* our compressor's window (client_max_window_bits agreed, else 15) */
    int tx_reset;    /* client_no_context_takeover agreed: reset it after each message */
    char ext[256];   /* the Sec-WebSocket-Extensions answered, "" if none */
    z_stream tx, rx; /* our compressor; the decompressor of the server's messages */
    int tx_live, rx_live;
    int rx_bits;  /* the server's window (server_max_window_bits agreed, else 15): inflating
                     with it fails if the server reaches further back */
    int rx_reset; /* server_no_context_takeover agreed: inflate each message afresh, which
                     fails if the server refers to an earlier one */
} wsc;

/* A growable byte buffer for building frames. */
typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void bytes_put(bytes *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        CHECK(b->p != NULL);
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
}

/* Byte i of a generated payload: printable ASCII for text (and control frames), every
 * byte value for binary. */
static uint8_t pat(size_t i, unsigned op)
{
    return op == 2 ? (uint8_t)(i * 31 + 7) : (uint8_t)('a' + i % 26);
}

static uint8_t *pattern(size_t n, unsigned op)
{
    uint8_t *p = malloc(n ? n : 1);
    CHECK(p != NULL);
    for (size_t i = 0; i < n; i++)
        p[i] = pat(i, op);
    return p;
}

/* The opening handshake with the RFC's example key; `ext`: a Sec-WebSocket-Extensions
 * offer or NULL. The 101 and its accept value are CHECKed. */
static void ws_open(wsc *w, int port, const char *path, const char *ext)
{
    memset(w, 0, sizeof *w);
    w->tx_bits = w->rx_bits = 15;
    raw_open(&w->c, port);
    char req[1024];
    snprintf(req, sizeof req,
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: " RFC_KEY "\r\n"
             "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n",
             path, ext ? "Sec-WebSocket-Extensions: " : "", ext ? ext : "", ext ? "\r\n" : "");
    CHECK_INT(raw_sends(&w->c, req), ==, 0);
    raw_resp r;
    int rc = raw_read(&w->c, &r, 0, WAIT_MS);
    if (rc != 0 || r.status != 101)
        fprintf(stderr, "handshake to %s failed (%d): %s\n", path, rc, r.head);
    CHECK_INT(rc, ==, 0);
    CHECK_INT(r.status, ==, 101);
    char v[256];
    CHECK(raw_hdr(&r, "Sec-WebSocket-Accept", v, sizeof v) != NULL);
    CHECK_STR(v, RFC_ACCEPT);
    if (raw_hdr(&r, "Sec-WebSocket-Extensions", w->ext, sizeof w->ext)) {
        w->pmd = peer_contains_ci(w->ext, "permessage-deflate");
        const char *b = strstr(w->ext, "client_max_window_bits=");
        if (b)
            w->tx_bits = atoi(b + strlen("client_max_window_bits="));
        w->tx_reset = strstr(w->ext, "client_no_context_takeover") != NULL;
        w->rx_reset = strstr(w->ext, "server_no_context_takeover") != NULL;
        if ((b = strstr(w->ext, "server_max_window_bits=")) != NULL)
            w->rx_bits = atoi(b + strlen("server_max_window_bits="));
    }
    raw_resp_free(&r);
}

static void ws_free(wsc *w)
{
    raw_close(&w->c);
    if (w->tx_live)
        deflateEnd(&w->tx);
    if (w->rx_live)
        inflateEnd(&w->rx);
}

/* Compress one message as permessage-deflate does (RFC 7692 7.2.1): raw deflate up to a
 * sync flush, the trailing 00 00 FF FF removed. The compressor keeps its context from
 * message to message (context takeover). `final`: end the deflate stream with a BFINAL
 * block instead (7.2.3.4), from a fresh one-off compressor. */
static void z_compress(wsc *w, const uint8_t *p, size_t n, int final, bytes *out)
{
    z_stream one, *z = &w->tx;
    if (final) {
        memset(&one, 0, sizeof one);
        CHECK_INT(deflateInit2(&one, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), ==, Z_OK);
        z = &one;
    } else if (!w->tx_live) {
        memset(&w->tx, 0, sizeof w->tx);
        int bits = w->tx_bits < 9 ? 9 : w->tx_bits;
        CHECK_INT(deflateInit2(&w->tx, 6, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY), ==, Z_OK);
        w->tx_live = 1;
    }
    z->next_in = (Bytef *)(uintptr_t)p;
    z->avail_in = (uInt)n;
    for (;;) {
        uint8_t buf[16384];
        z->next_out = buf;
        z->avail_out = sizeof buf;
        int zr = deflate(z, final ? Z_FINISH : Z_SYNC_FLUSH);
        CHECK(zr == Z_OK || zr == Z_STREAM_END || zr == Z_BUF_ERROR);
        bytes_put(out, buf, sizeof buf - z->avail_out);
        if (final ? zr == Z_STREAM_END : (z->avail_in == 0 && z->avail_out != 0))
            break;
    }
    if (final) {
        deflateEnd(&one);
        return;
    }
    CHECK(out->n >= 4 && memcmp(out->p + out->n - 4, "\x00\x00\xff\xff", 4) == 0);
    out->n -= 4;
    if (w->tx_reset)
        CHECK_INT(deflateReset(&w->tx), ==, Z_OK);
}

/* Decompress one message of the server's (its tail restored). Returns owned bytes. */
static uint8_t *z_inflate(wsc *w, const uint8_t *p, size_t n, size_t *outlen)
{
    if (!w->rx_live) {
        memset(&w->rx, 0, sizeof w->rx);
        CHECK_INT(inflateInit2(&w->rx, -w->rx_bits), ==, Z_OK);
        w->rx_live = 1;
    }
    bytes in = {0}, out = {0};
    bytes_put(&in, p, n);
    bytes_put(&in, "\x00\x00\xff\xff", 4);
    w->rx.next_in = in.p;
    w->rx.avail_in = (uInt)in.n;
    for (;;) {
        uint8_t buf[65536];
        w->rx.next_out = buf;
        w->rx.avail_out = sizeof buf;
        int zr = inflate(&w->rx, Z_SYNC_FLUSH);
        if (zr != Z_OK && zr != Z_BUF_ERROR)
            fprintf(stderr, "inflating the server's message (window %d bits%s): %s\n", w->rx_bits,
                    w->rx_reset ? ", no context takeover" : "", w->rx.msg ? w->rx.msg : "?");
        CHECK(zr == Z_OK || zr == Z_BUF_ERROR);
        bytes_put(&out, buf, sizeof buf - w->rx.avail_out);
        if (w->rx.avail_in == 0 && w->rx.avail_out != 0)
            break;
    }
    free(in.p);
    if (w->rx_reset)
        CHECK_INT(inflateReset(&w->rx), ==, Z_OK);
    *outlen = out.n;
    return out.p ? out.p : calloc(1, 1);
}

/* --- frames to send ------------------------------------------------------------------ */

enum {
    F_UNMASKED = 1 << 0, /* no mask (a client must mask: 5.1) */
    F_LEN16 = 1 << 1,    /* the 16-bit length form whatever the length */
    F_LEN64 = 1 << 2,    /* the 64-bit length form whatever the length */
    F_RAW = 1 << 3,      /* `data` is the whole frame, sent as it is */
    F_CUT = 1 << 4,      /* send the header and only `cut` bytes of the payload */
    F_Z = 1 << 5,        /* `data` is plaintext: send it compressed (w->tx) */
    F_ZFRAG = 1 << 6,    /* with F_Z: split the compressed message into `cut` frames (the
                            first keeps b0's RSV1 and opcode without FIN, then CONTs) */
    F_ZFIN = 1 << 7,     /* with F_Z: compressed as a whole deflate stream (BFINAL) */
    /* F_Z alone: one frame with b0 as given (FIN clear: the message stays open) */
};

struct fr {
    uint8_t b0;       /* FIN, RSV1-3 and the opcode, as on the wire */
    const char *data; /* payload; NULL with len > 0: the generated pattern */
    size_t len;       /* payload length (declared in the header) */
    int flags;
    size_t cut;
};

static unsigned key_seq;

/* Append one frame: header (length form as asked), mask key, masked payload. */
static void frame_put(bytes *out, uint8_t b0, const uint8_t *pl, size_t len, size_t send_len,
                      int flags)
{
    uint8_t h[14];
    size_t hl = 2;
    uint8_t mbit = (flags & F_UNMASKED) ? 0 : 0x80;
    h[0] = b0;
    if ((flags & F_LEN64) || len > 0xffff) {
        h[1] = mbit | 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        hl = 10;
    } else if ((flags & F_LEN16) || len >= 126) {
        h[1] = mbit | 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        hl = 4;
    } else {
        h[1] = (uint8_t)(mbit | len);
    }
    uint8_t key[4];
    if (mbit) {
        key_seq++;
        key[0] = (uint8_t)(0x37 + key_seq);
        key[1] = (uint8_t)(0xfa ^ key_seq);
        key[2] = 0x21;
        key[3] = (uint8_t)(0x3d + 7 * key_seq);
        memcpy(h + hl, key, 4);
        hl += 4;
    }
    bytes_put(out, h, hl);
    size_t at = out->n;
    bytes_put(out, pl, send_len);
    if (mbit)
        cipc__ws_mask(out->p + at, send_len, key, 0);
}

/* Build the bytes of one frame spec (several frames for F_ZFRAG). */
static void fr_build(wsc *w, const struct fr *f, bytes *out)
{
    if (f->flags & F_RAW) {
        bytes_put(out, f->data, f->len);
        return;
    }
    uint8_t *gen = NULL;
    const uint8_t *pl = (const uint8_t *)f->data;
    if (!pl && f->len)
        pl = gen = pattern(f->len, f->b0 & 0x0f);
    if (!pl)
        pl = (const uint8_t *)"";
    if (f->flags & F_Z) {
        bytes z = {0};
        z_compress(w, pl, f->len, (f->flags & F_ZFIN) != 0, &z);
        size_t parts = (f->flags & F_ZFRAG) ? f->cut : 1, off = 0;
        CHECK(parts >= 1 && parts <= z.n + 1);
        for (size_t i = 0; i < parts; i++) {
            size_t take = i + 1 == parts ? z.n - off : z.n / parts;
            uint8_t b0 = i == 0 ? (uint8_t)(f->b0 & 0x7f) : 0x00;
            if (i + 1 == parts)
                b0 |= 0x80;
            if (!(f->flags & F_ZFRAG))
                b0 = f->b0;
            frame_put(out, b0, z.p ? z.p + off : (const uint8_t *)"", take, take, f->flags);
            off += take;
        }
        free(z.p);
    } else {
        frame_put(out, f->b0, pl, f->len, (f->flags & F_CUT) ? f->cut : f->len, f->flags);
    }
    free(gen);
}

static void ws_send_bytes(wsc *w, const bytes *b)
{
    int rc = raw_send(&w->c, b->p, b->n);
    /* The server may have failed the connection already (the rows that expect so). */
    if (rc != 0 && rc != -EPIPE && rc != -ECONNRESET)
        CHECK_INT(rc, ==, 0);
}

static void ws_send_fr(wsc *w, const struct fr *f)
{
    bytes b = {0};
    fr_build(w, f, &b);
    ws_send_bytes(w, &b);
    free(b.p);
}

/* --- frames received ------------------------------------------------------------------ */

struct rframe {
    uint8_t b0;
    int masked;
    uint8_t *data; /* owned, NUL-terminated */
    size_t len;
};

/* Read the next frame of the server's. Returns 0, RAW_TIMEOUT or RAW_TRUNCATED. */
static int read_frame(wsc *w, struct rframe *f, int64_t deadline)
{
    raw_conn *c = &w->c;
    memset(f, 0, sizeof *f);
    int rc = raw_need(c, 2, deadline);
    if (rc)
        return rc;
    const uint8_t *p = (const uint8_t *)c->buf;
    unsigned l7 = p[1] & 0x7f;
    size_t hl = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((p[1] & 0x80) ? 4 : 0);
    if ((rc = raw_need(c, hl, deadline)) != 0)
        return rc;
    p = (const uint8_t *)c->buf;
    uint64_t len = l7;
    if (l7 == 126)
        len = (uint64_t)p[2] << 8 | p[3];
    if (l7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
    }
    CHECK(len < (64u << 20));
    if ((rc = raw_need(c, hl + (size_t)len, deadline)) != 0)
        return rc;
    p = (const uint8_t *)c->buf;
    f->b0 = p[0];
    f->masked = (p[1] & 0x80) != 0;
    f->len = (size_t)len;
    f->data = malloc(f->len + 1);
    CHECK(f->data != NULL);
    memcpy(f->data, p + hl, f->len);
    f->data[f->len] = 0;
    if (f->masked)
        cipc__ws_mask(f->data, f->len, p + hl - 4, 0);
    raw_consume(c, hl + (size_t)len);
    return 0;
}

/* --- expectations -------------------------------------------------------------------- */

enum {
    X_EXACT = 1 << 0, /* close: the payload is exactly the code (an echo), or empty */
};

struct ex {
    uint8_t b0;       /* the exact first byte (FIN, RSV1, opcode); 0 ends the list */
    const char *data; /* payload (plaintext when RSV1 is expected); NULL: the pattern */
    size_t len;
    int code; /* close frames: the code; -1: an empty close */
    int flags;
};

static const char *raw_err(int rc)
{
    return rc == RAW_TIMEOUT ? "timeout" : rc == RAW_TRUNCATED ? "TCP closed" : "error";
}

static void show(const char *what, const uint8_t *p, size_t n)
{
    fprintf(stderr, "  %s (%zu bytes):", what, n);
    for (size_t i = 0; i < n && i < 24; i++)
        fprintf(stderr, " %02x", p[i]);
    fprintf(stderr, "%s\n", n > 24 ? " ..." : "");
}

/* Read the next frame and check it against `x`. */
static void expect_frame(wsc *w, const struct ex *x, const char *id)
{
    struct rframe f;
    int rc = read_frame(w, &f, peer_now_ms() + WAIT_MS);
    if (rc != 0) {
        fprintf(stderr, "[%s] expected a frame %02x, got %s\n", id, x->b0, raw_err(rc));
        CHECK_INT(rc, ==, 0);
    }
    int ok = !f.masked && f.b0 == x->b0;
    const uint8_t *got = f.data;
    size_t got_len = f.len;
    uint8_t *plain = NULL;
    if (ok && (f.b0 & 0x40)) {
        plain = z_inflate(w, f.data, f.len, &got_len);
        got = plain;
    }
    if (ok && (x->b0 & 0x0f) == 8) {
        if (x->code == -1)
            ok = got_len == 0;
        else if (got_len < 2 || (got[0] << 8 | got[1]) != x->code)
            ok = 0;
        else if (x->flags & X_EXACT)
            ok = got_len == 2;
        else
            ok = got_len <= 125 && cipc__utf8_valid(got + 2, got_len - 2);
    } else if (ok) {
        uint8_t *gen = NULL;
        const uint8_t *want = (const uint8_t *)x->data;
        if (!want && x->len)
            want = gen = pattern(x->len, x->b0 & 0x0f);
        ok = got_len == x->len && (x->len == 0 || memcmp(got, want, x->len) == 0);
        free(gen);
    }
    if (!ok) {
        fprintf(stderr, "[%s] unexpected frame: got b0 %02x%s, want b0 %02x", id, f.b0,
                f.masked ? " (masked!)" : "", x->b0);
        if ((x->b0 & 0x0f) == 8)
            fprintf(stderr, " code %d\n", x->code);
        else
            fprintf(stderr, " len %zu\n", x->len);
        show("got payload", got, got_len);
    }
    CHECK(ok);
    free(plain);
    free(f.data);
}

/* The server ends the TCP connection with nothing more sent. */
static void expect_tcp_close(wsc *w, const char *id)
{
    int rc = raw_wait_close(&w->c, WAIT_MS);
    if (rc != 1) {
        fprintf(stderr, "[%s] expected the TCP close, got %s\n", id,
                rc == 0 ? "nothing (still open)" : "more bytes");
        if (rc < 0)
            show("extra bytes", (const uint8_t *)w->c.buf, w->c.len);
    }
    CHECK_INT(rc, ==, 1);
}

/* Complete a normal closing handshake (1000 each way, then the TCP close). */
static void close_normally(wsc *w, const char *id)
{
    ws_send_fr(w, &(struct fr){0x88, "\x03\xe8", 2, 0, 0});
    expect_frame(w, &(struct ex){0x88, NULL, 0, 1000, X_EXACT}, id);
    expect_tcp_close(w, id);
}

/* --- the rows -------------------------------------------------------------------------- */

enum { END_OPEN, END_CLOSED };

#define MAXF 8
#define MAXX 4

struct row {
    const char *id;   /* "<RFC section>/<case>" */
    const char *path; /* NULL: /echo */
    const char *ext;  /* a Sec-WebSocket-Extensions offer, or NULL */
    struct fr send[MAXF];
    struct ex want[MAXX];
    int end; /* END_OPEN: a normal closing handshake follows; END_CLOSED: TCP closes now */
};

#define S(s)  s, sizeof(s) - 1
#define TXT   0x81
#define BIN   0x82
#define CLOSE 0x88
#define PING  0x89
#define PONG  0x8a
/* Frames the server sends back. */
/* clang-format off */
#define W(b0, s) {b0, s, sizeof(s) - 1, 0, 0}
#define WFAIL(c) {CLOSE, NULL, 0, c, 0}       /* a close with code c (and any reason) */
#define WECHO(c) {CLOSE, NULL, 0, c, X_EXACT} /* the echo of our close with code c */
#define WEMPTY   {CLOSE, NULL, 0, -1, X_EXACT} /* an empty close */
/* clang-format on */

static int row_nsend(const struct row *r)
{
    int n = 0;
    while (n < MAXF && (r->send[n].b0 || r->send[n].data || r->send[n].len || r->send[n].flags))
        n++;
    return n;
}

static int rows_run;
static int split_mode; /* send rows byte by byte (each a write of its own) */

static void run_row(int port, const struct row *r)
{
    wsc w;
    char path[64];
    int tid = 1 + track_seq++ % (MAX_TRACK - 1);
    pthread_mutex_lock(&track_mu);
    memset(&tracks[tid], 0, sizeof tracks[tid]);
    pthread_mutex_unlock(&track_mu);
    snprintf(path, sizeof path, "%s?t=%d", r->path ? r->path : "/echo", tid);
    ws_open(&w, port, path, r->ext);
    if (r->ext)
        CHECK(w.pmd);
    int n = row_nsend(r);
    bytes all = {0};
    for (int i = 0; i < n; i++)
        fr_build(&w, &r->send[i], &all);
    if (split_mode && all.n <= 8192) {
        /* The parser must give the same events however the bytes are cut. */
        int one = 1;
        setsockopt(w.c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        for (size_t i = 0; i < all.n; i++)
            ws_send_bytes(&w, &(bytes){all.p + i, 1, 1});
    } else {
        ws_send_bytes(&w, &all);
    }
    free(all.p);
    for (int i = 0; i < MAXX && r->want[i].b0; i++)
        expect_frame(&w, &r->want[i], r->id);
    if (r->end == END_OPEN)
        close_normally(&w, r->id);
    else
        expect_tcp_close(&w, r->id);
    ws_free(&w);

    /* What the application was told: on_close once with the peer's code (1005 for an
     * empty close), or 1006 after on_error(CIPC_EPROTO, "... <the code we sent> ...")
     * when the server failed the connection. */
    int code = r->end == END_OPEN ? 1000 : 0, fail = 0;
    for (int i = 0; i < MAXX && r->want[i].b0; i++)
        if (r->want[i].b0 == CLOSE) {
            fail = !(r->want[i].flags & X_EXACT);
            code = r->want[i].code < 0 ? 1005 : r->want[i].code;
        }
    struct track t = track_wait(tid);
    char num[16];
    snprintf(num, sizeof num, "%d", code);
    int ok = t.closed == 1 && (fail ? t.code == 1006 && t.errors == 1 && t.err == CIPC_EPROTO &&
                                          strstr(t.errmsg, num) != NULL
                                    : t.code == code && t.errors == 0);
    if (!ok)
        fprintf(stderr, "[%s] handlers: on_close x%d code %d, on_error x%d %s \"%s\"; want %s %d\n",
                r->id, t.closed, t.code, t.errors, cipc_err_name(t.err), t.errmsg,
                fail ? "a failure with" : "a close with", code);
    CHECK(ok);
    rows_run++;
}

static void run_rows(int port, const struct row *rows, size_t n, int *count)
{
    for (size_t i = 0; i < n; i++)
        run_row(port, &rows[i]);
    *count += (int)n;
}

/* Per-section counts, for the summary. */
struct tally {
    const char *section;
    int n;
};
static struct tally tallies[32];
static int ntallies;

static int *tally(const char *section)
{
    for (int i = 0; i < ntallies; i++)
        if (!strcmp(tallies[i].section, section))
            return &tallies[i].n;
    tallies[ntallies].section = section;
    return &tallies[ntallies++].n;
}

/* 5.1 / 5.3: masking. */
/* clang-format off */
static const struct row rows_masking[] = {
    {"5.1/unmasked-text", NULL, NULL, {{TXT, S("Hello"), F_UNMASKED, 0}}, {WFAIL(1002)},
     END_CLOSED},
    {"5.1/unmasked-binary", NULL, NULL, {{BIN, S("\x01\x02"), F_UNMASKED, 0}}, {WFAIL(1002)},
     END_CLOSED},
    {"5.1/unmasked-ping", NULL, NULL, {{PING, S("x"), F_UNMASKED, 0}}, {WFAIL(1002)}, END_CLOSED},
    {"5.1/unmasked-close", NULL, NULL, {{CLOSE, S("\x03\xe8"), F_UNMASKED, 0}}, {WFAIL(1002)},
     END_CLOSED},
    {"5.1/unmasked-continuation", NULL, NULL,
     {{0x01, S("He"), 0, 0}, {0x80, S("llo"), F_UNMASKED, 0}}, {WFAIL(1002)}, END_CLOSED},
    {"5.3/masked-text-echoed", NULL, NULL, {{TXT, S("Hello"), 0, 0}}, {W(TXT, "Hello")}, END_OPEN},
};
/* clang-format on */

/* 5.2: base framing. */
/* clang-format off */
static const struct row rows_framing[] = {
    {"5.2/rsv1-without-extension", "/nopmd", NULL, {{0xc1, S("Hello"), 0, 0}}, {WFAIL(1002)},
     END_CLOSED},
    {"5.2/rsv1-not-negotiated", NULL, NULL, {{0xc1, S("Hello"), 0, 0}}, {WFAIL(1002)}, END_CLOSED},
    {"5.2/rsv2", NULL, NULL, {{0xa1, S("Hello"), 0, 0}}, {WFAIL(1002)}, END_CLOSED},
    {"5.2/rsv3", NULL, NULL, {{0x91, S("Hello"), 0, 0}}, {WFAIL(1002)}, END_CLOSED},
    {"5.2/rsv123", NULL, NULL, {{0xf1, S("Hello"), 0, 0}}, {WFAIL(1002)}, END_CLOSED},
    {"5.2/rsv2-on-ping", NULL, NULL, {{0xa9, S("x"), 0, 0}}, {WFAIL(1002)}, END_CLOSED},
    {"5.2/rsv3-on-continuation", NULL, NULL, {{0x01, S("a"), 0, 0}, {0x90, S("b"), 0, 0}},
     {WFAIL(1002)}, END_CLOSED},
    {"5.2/rsv-after-valid-message", NULL, NULL, {{TXT, S("ok"), 0, 0}, {0xa1, S("x"), 0, 0}},
     {W(TXT, "ok"), WFAIL(1002)}, END_CLOSED},
    {"5.2/len16-non-minimal-5", NULL, NULL, {{TXT, S("Hello"), F_LEN16, 0}}, {WFAIL(1002)},
     END_CLOSED},
    {"5.2/len16-non-minimal-125", NULL, NULL, {{BIN, NULL, 125, F_LEN16, 0}}, {WFAIL(1002)},
     END_CLOSED},
    {"5.2/len16-minimal-126", NULL, NULL, {{BIN, NULL, 126, F_LEN16, 0}}, {{BIN, NULL, 126, 0, 0}},
     END_OPEN},
    {"5.2/len64-non-minimal-5", NULL, NULL, {{TXT, S("Hello"), F_LEN64, 0}}, {WFAIL(1002)},
     END_CLOSED},
    {"5.2/len64-non-minimal-200", NULL, NULL, {{BIN, NULL, 200, F_LEN64, 0}}, {WFAIL(1002)},
     END_CLOSED},
    {"5.2/len64-non-minimal-65535", NULL, NULL, {{BIN, NULL, 65535, F_LEN64, 0}}, {WFAIL(1002)},
     END_CLOSED},
    {"5.2/len64-minimal-65536", NULL, NULL, {{BIN, NULL, 65536, F_LEN64, 0}},
     {{BIN, NULL, 65536, 0, 0}}, END_OPEN},
    {"5.2/len64-top-bit", NULL, NULL,
     {{0, S("\x82\xff\x80\x00\x00\x00\x00\x00\x00\x05\x01\x02\x03\x04"), F_RAW, 0}},
     {WFAIL(1002)}, END_CLOSED},
    {"5.2/len64-top-bit-only", NULL, NULL,
     {{0, S("\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03\x04"), F_RAW, 0}},
     {WFAIL(1002)}, END_CLOSED},
};
/* clang-format on */

/* 5.4: fragmentation. */
/* clang-format off */
static const struct row rows_fragmentation[] = {
    {"5.4/text-2-fragments", NULL, NULL, {{0x01, S("Hel"), 0, 0}, {0x80, S("lo"), 0, 0}},
     {W(TXT, "Hello")}, END_OPEN},
    {"5.4/text-3-fragments", NULL, NULL,
     {{0x01, S("He"), 0, 0}, {0x00, S("ll"), 0, 0}, {0x80, S("o"), 0, 0}}, {W(TXT, "Hello")},
     END_OPEN},
    {"5.4/binary-3-fragments", NULL, NULL,
     {{0x02, S("\x00\x01"), 0, 0}, {0x00, S("\xfe"), 0, 0}, {0x80, S("\xff\x00"), 0, 0}},
     {W(BIN, "\x00\x01\xfe\xff\x00")}, END_OPEN},
    {"5.4/ping-between-fragments", NULL, NULL,
     {{0x01, S("Hel"), 0, 0}, {PING, S("ping!"), 0, 0}, {0x80, S("lo"), 0, 0}},
     {W(PONG, "ping!"), W(TXT, "Hello")}, END_OPEN},
    {"5.4/two-pings-between-fragments", NULL, NULL,
     {{0x01, S("a"), 0, 0}, {PING, S("1"), 0, 0}, {0x00, S("b"), 0, 0}, {PING, S("2"), 0, 0},
      {0x80, S("c"), 0, 0}},
     {W(PONG, "1"), W(PONG, "2"), W(TXT, "abc")}, END_OPEN},
    {"5.4/pong-between-fragments", NULL, NULL,
     {{0x01, S("Hel"), 0, 0}, {PONG, S("x"), 0, 0}, {0x80, S("lo"), 0, 0}}, {W(TXT, "Hello")},
     END_OPEN},
    {"5.4/close-between-fragments", NULL, NULL, {{0x01, S("Hel"), 0, 0}, {CLOSE, S("\x03\xe8"), 0,
     0}},
     {WECHO(1000)}, END_CLOSED},
    {"5.4/continuation-without-start-fin", NULL, NULL, {{0x80, S("x"), 0, 0}}, {WFAIL(1002)},
     END_CLOSED},
    {"5.4/continuation-without-start", NULL, NULL, {{0x00, S("x"), 0, 0}}, {WFAIL(1002)},
     END_CLOSED},
    {"5.4/continuation-after-message", NULL, NULL, {{TXT, S("a"), 0, 0}, {0x80, S("b"), 0, 0}},
     {W(TXT, "a"), WFAIL(1002)}, END_CLOSED},
    {"5.4/text-while-fragmented", NULL, NULL, {{0x01, S("a"), 0, 0}, {TXT, S("b"), 0, 0}},
     {WFAIL(1002)}, END_CLOSED},
    {"5.4/binary-while-fragmented", NULL, NULL, {{0x01, S("a"), 0, 0}, {0x02, S("b"), 0, 0}},
     {WFAIL(1002)}, END_CLOSED},
    {"5.4/fragmented-ping", NULL, NULL, {{0x09, S("x"), 0, 0}, {0x80, S("y"), 0, 0}},
     {WFAIL(1002)}, END_CLOSED},
    {"5.4/fragmented-pong", NULL, NULL, {{0x0a, S("x"), 0, 0}}, {WFAIL(1002)}, END_CLOSED},
    {"5.4/fragmented-close", NULL, NULL, {{0x08, S("\x03\xe8"), 0, 0}}, {WFAIL(1002)}, END_CLOSED},
    {"5.4/empty-fragments", NULL, NULL,
     {{0x01, S(""), 0, 0}, {0x00, S("abc"), 0, 0}, {0x00, S(""), 0, 0}, {0x80, S(""), 0, 0}},
     {W(TXT, "abc")}, END_OPEN},
    {"5.4/all-fragments-empty", NULL, NULL, {{0x02, S(""), 0, 0}, {0x80, S(""), 0, 0}},
     {W(BIN, "")}, END_OPEN},
};
/* clang-format on */

/* 5.5: control frames. */
/* clang-format off */
static const struct row rows_control[] = {
    {"5.5.2/ping-empty", NULL, NULL, {{PING, S(""), 0, 0}}, {W(PONG, "")}, END_OPEN},
    {"5.5.2/ping-125", NULL, NULL, {{PING, NULL, 125, 0, 0}}, {{PONG, NULL, 125, 0, 0}}, END_OPEN},
    {"5.5.2/ping-binary-payload", NULL, NULL, {{PING, S("\x00\xff\xfe\x80"), 0, 0}},
     {W(PONG, "\x00\xff\xfe\x80")}, END_OPEN},
    {"5.5.2/two-pings", NULL, NULL, {{PING, S("one"), 0, 0}, {PING, S("two"), 0, 0}},
     {W(PONG, "one"), W(PONG, "two")}, END_OPEN},
    {"5.5/ping-126", NULL, NULL, {{PING, NULL, 126, 0, 0}}, {WFAIL(1002)}, END_CLOSED},
    {"5.5/ping-126-never-sent", NULL, NULL, {{PING, NULL, 126, F_CUT, 0}}, {WFAIL(1002)},
     END_CLOSED},
    {"5.5/close-126", NULL, NULL, {{CLOSE, NULL, 126, 0, 0}}, {WFAIL(1002)}, END_CLOSED},
    {"5.5/pong-126", NULL, NULL, {{PONG, NULL, 126, 0, 0}}, {WFAIL(1002)}, END_CLOSED},
    {"5.5.3/unsolicited-pong", NULL, NULL, {{PONG, S("x"), 0, 0}, {TXT, S("a"), 0, 0}},
     {W(TXT, "a")}, END_OPEN},
    {"5.5.3/unsolicited-pong-125", NULL, NULL, {{PONG, NULL, 125, 0, 0}, {TXT, S("a"), 0, 0}},
     {W(TXT, "a")}, END_OPEN},
    {"5.5.1/close-1-byte", NULL, NULL, {{CLOSE, S("\x03"), 0, 0}}, {WFAIL(1002)}, END_CLOSED},
    {"5.5.1/close-125", NULL, NULL,
     {{CLOSE,
       S("\x03\xe8"
         "0123456789012345678901234567890123456789012345678901234567890123456789"
         "01234567890123456789012345678901234567890123456789012"),
       0, 0}},
     {WECHO(1000)}, END_CLOSED},
};
/* clang-format on */

/* 8.1 / 5.6: UTF-8 in text messages. */
/* clang-format off */
static const char *const utf8_valid[] = {
    "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!",
    "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", /* kosme */
    "\x7f",                                         /* U+007F */
    "\xc2\x80",                                     /* U+0080 */
    "\xdf\xbf",                                     /* U+07FF */
    "\xe0\xa0\x80",                                 /* U+0800 */
    "\xed\x9f\xbf",                                 /* U+D7FF */
    "\xee\x80\x80",                                 /* U+E000 */
    "\xef\xbf\xbd",                                 /* U+FFFD */
    "\xef\xbf\xbf",                                 /* U+FFFF */
    "\xf0\x90\x80\x80",                             /* U+10000 */
    "\xf0\x9f\x98\x80",                             /* U+1F600 */
    "\xf4\x8f\xbf\xbf",                             /* U+10FFFF */
};
/* clang-format on */

/* clang-format off */
static const char *const utf8_invalid[] = {
    "\xc0\xaf",                  /* overlong '/' (2 bytes) */
    "\xc1\xbf",                  /* overlong (2 bytes) */
    "\xe0\x80\xaf",              /* overlong '/' (3 bytes) */
    "\xe0\x9f\xbf",              /* overlong U+07FF (3 bytes) */
    "\xf0\x80\x80\xaf",          /* overlong '/' (4 bytes) */
    "\xf0\x8f\xbf\xbf",          /* overlong U+FFFF (4 bytes) */
    "\xed\xa0\x80",              /* U+D800, a surrogate */
    "\xed\xbf\xbf",              /* U+DFFF, a surrogate */
    "\xed\xa0\x80\xed\xb0\x80",  /* a surrogate pair */
    "\xf4\x90\x80\x80",          /* U+110000 */
    "\xf5\x80\x80\x80",          /* beyond U+10FFFF */
    "\xf8\x88\x80\x80\x80",      /* 5-byte form */
    "\xfe",                      /* never valid */
    "\xff",                      /* never valid */
    "\x80",                      /* a lone continuation byte */
    "a\xbf" "b",                 /* a continuation byte inside ASCII */
    "\xc2" "a",                  /* a lead byte then ASCII */
    "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80" "edited", /* kosme + surrogate */
    "abc\xe2\x82",               /* truncated at the end of the message */
    "\xf0\x9f\x98",              /* truncated 4-byte character */
    "\xc3",                      /* truncated 2-byte character */
};
/* clang-format on */

/* clang-format off */
static const struct row rows_utf8[] = {
    {"8.1/valid-split-inside-character", NULL, NULL,
     {{0x01, S("\xce"), 0, 0}, {0x00, S("\xba\xe1"), 0, 0}, {0x80, S("\xbd\xb9"), 0, 0}},
     {W(TXT, "\xce\xba\xe1\xbd\xb9")}, END_OPEN},
    {"8.1/valid-4-byte-split-per-byte", NULL, NULL,
     {{0x01, S("\xf0"), 0, 0}, {0x00, S("\x9f"), 0, 0}, {0x00, S("\x98"), 0, 0},
      {0x80, S("\x80"), 0, 0}},
     {W(TXT, "\xf0\x9f\x98\x80")}, END_OPEN},
    {"8.1/truncated-at-end-of-fragmented", NULL, NULL,
     {{0x01, S("a\xe2\x82"), 0, 0}, {0x80, S(""), 0, 0}}, {WFAIL(1007)}, END_CLOSED},
    {"8.1/fail-fast-first-fragment", NULL, NULL, {{0x01, S("abc\xc0\xaf"), 0, 0}}, {WFAIL(1007)},
     END_CLOSED},
    {"8.1/fail-fast-surrogate-first-fragment", NULL, NULL, {{0x01, S("ok\xed\xa0\x80"), 0, 0}},
     {WFAIL(1007)}, END_CLOSED},
    {"8.1/fail-fast-continuation", NULL, NULL,
     {{0x01, S("abc"), 0, 0}, {0x00, S("\xff"), 0, 0}}, {WFAIL(1007)}, END_CLOSED},
    /* The frame announces 100 bytes and only 4 come: the bad byte is enough. */
    {"8.1/fail-fast-inside-frame", NULL, NULL, {{TXT, "ab\xc0\xaf", 100, F_CUT, 4}},
     {WFAIL(1007)}, END_CLOSED},
    {"8.1/fail-fast-inside-first-fragment", NULL, NULL, {{0x01, "ab\xf5", 1000, F_CUT, 3}},
     {WFAIL(1007)}, END_CLOSED},
    {"8.1/binary-not-checked", NULL, NULL, {{BIN, S("\xc0\xaf\xed\xa0\x80\xff"), 0, 0}},
     {W(BIN, "\xc0\xaf\xed\xa0\x80\xff")}, END_OPEN},
};
/* clang-format on */

/* 7.4 / 5.5.1: the closing handshake and close codes. */
/* clang-format off */
static const struct row rows_close[] = {
    {"7.1.5/empty-close", NULL, NULL, {{CLOSE, S(""), 0, 0}}, {WEMPTY}, END_CLOSED},
    {"7.1.6/close-with-utf8-reason", NULL, NULL,
     {{CLOSE, S("\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), 0, 0}}, {WECHO(1000)},
     END_CLOSED},
    {"7.1.6/close-reason-invalid-utf8", NULL, NULL, {{CLOSE, S("\x03\xe8\xff"), 0, 0}},
     {WFAIL(1007)}, END_CLOSED},
    {"7.1.6/close-reason-overlong", NULL, NULL, {{CLOSE, S("\x03\xe8" "ok\xc0\xaf"), 0, 0}},
     {WFAIL(1007)}, END_CLOSED},
    {"7.1.6/close-reason-truncated", NULL, NULL, {{CLOSE, S("\x03\xe8" "ok\xe2\x82"), 0, 0}},
     {WFAIL(1007)}, END_CLOSED},
    {"5.5.1/text-after-close-ignored", NULL, NULL, {{CLOSE, S("\x03\xe8"), 0, 0}, {TXT, S("x"), 0,
     0}},
     {WECHO(1000)}, END_CLOSED},
    {"5.5.1/ping-after-close-ignored", NULL, NULL,
     {{CLOSE, S("\x03\xe8"), 0, 0}, {PING, S("x"), 0, 0}}, {WECHO(1000)}, END_CLOSED},
    {"5.5.1/garbage-after-close-ignored", NULL, NULL,
     {{CLOSE, S("\x03\xe8"), 0, 0}, {0, S("\xff\xff\xff\xff"), F_RAW, 0}}, {WECHO(1000)},
     END_CLOSED},
    {"7.1.2/message-then-close", NULL, NULL, {{TXT, S("last"), 0, 0}, {CLOSE, S("\x03\xe8"), 0, 0}},
     {W(TXT, "last"), WECHO(1000)}, END_CLOSED},
    {"7.1.2/ping-then-close", NULL, NULL, {{PING, S("p"), 0, 0}, {CLOSE, S("\x0f\xa0"), 0, 0}},
     {W(PONG, "p"), WECHO(4000)}, END_CLOSED},
    {"5.5.1/second-close-ignored", NULL, NULL,
     {{CLOSE, S("\x03\xe8"), 0, 0}, {CLOSE, S("\x03\xe9"), 0, 0}}, {WECHO(1000)}, END_CLOSED},
};
/* clang-format on */

/* clang-format off */
static const int close_valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                  1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
/* clang-format on */
/* clang-format off */
static const int close_invalid[] = {0,    1,    999,  1004, 1005, 1006, 1015,
                                    1016, 1100, 2000, 2999, 5000, 65535};
/* clang-format on */

/* 10.4: limits (/small has max_message 1000). */
/* clang-format off */
static const struct row rows_limits[] = {
    {"10.4/at-limit", "/small", NULL, {{BIN, NULL, SMALL_MAX, 0, 0}}, {{BIN, NULL, SMALL_MAX, 0,
     0}},
     END_OPEN},
    {"10.4/over-limit-binary", "/small", NULL, {{BIN, NULL, SMALL_MAX + 1, 0, 0}}, {WFAIL(1009)},
     END_CLOSED},
    {"10.4/over-limit-text", "/small", NULL, {{TXT, NULL, SMALL_MAX + 1, 0, 0}}, {WFAIL(1009)},
     END_CLOSED},
    {"10.4/over-limit-declared-only", "/small", NULL, {{BIN, NULL, SMALL_MAX + 1, F_CUT, 0}},
     {WFAIL(1009)}, END_CLOSED},
    {"10.4/fragments-at-limit", "/small", NULL, {{0x02, NULL, 500, 0, 0}, {0x80, NULL, 500, 0, 0}},
     {{BIN, NULL, 0, 0, 0}}, END_OPEN}, /* want replaced at run time (mixed pattern) */
    {"10.4/fragments-over-limit", "/small", NULL,
     {{0x02, NULL, 600, 0, 0}, {0x80, NULL, 600, F_CUT, 0}}, {WFAIL(1009)}, END_CLOSED},
    {"10.4/declared-2GiB-small", "/small", NULL,
     {{0, S("\x82\xff\x00\x00\x00\x00\x80\x00\x00\x00\x01\x02\x03\x04"), F_RAW, 0}},
     {WFAIL(1009)}, END_CLOSED},
    {"10.4/declared-2GiB-default-limit", NULL, NULL,
     {{0, S("\x82\xff\x00\x00\x00\x00\x80\x00\x00\x00\x01\x02\x03\x04"), F_RAW, 0}},
     {WFAIL(1009)}, END_CLOSED},
    {"10.4/declared-2GiB-continuation", NULL, NULL,
     {{0x02, S("ab"), 0, 0}, {0, S("\x80\xff\x00\x00\x00\x00\x80\x00\x00\x00\x01\x02\x03\x04"),
      F_RAW, 0}},
     {WFAIL(1009)}, END_CLOSED},
};
/* clang-format on */

/* RFC 7692: compressed messages (the client offers plain "permessage-deflate"). */
#define PMD "permessage-deflate"
/* clang-format off */
static const struct row rows_pmd[] = {
    {"7692-6.1/compressed-short-text", NULL, PMD, {{0xc1, S("Hello"), F_Z, 0}}, {W(TXT, "Hello")},
     END_OPEN},
    {"7692-6.1/compressed-long-text", NULL, PMD, {{0xc1, NULL, 1000, F_Z, 0}},
     {{0xc1, NULL, 1000, 0, 0}}, END_OPEN},
    {"7692-6.1/compressed-binary-64k", NULL, PMD, {{0xc2, NULL, 65536, F_Z, 0}},
     {{0xc2, NULL, 65536, 0, 0}}, END_OPEN},
    {"7692-6.1/uncompressed-on-pmd-connection", NULL, PMD, {{TXT, S("plain"), 0, 0}},
     {W(TXT, "plain")}, END_OPEN},
    {"7692-7.2.3.2/context-takeover-3-messages", NULL, PMD,
     {{0xc1, NULL, 1000, F_Z, 0}, {0xc1, NULL, 1000, F_Z, 0}, {0xc1, NULL, 1000, F_Z, 0}},
     {{0xc1, NULL, 1000, 0, 0}, {0xc1, NULL, 1000, 0, 0}, {0xc1, NULL, 1000, 0, 0}}, END_OPEN},
    {"7692-6.2/compressed-3-fragments", NULL, PMD, {{0xc1, NULL, 3000, F_Z | F_ZFRAG, 3}},
     {{0xc1, NULL, 3000, 0, 0}}, END_OPEN},
    {"7692-6.2/compressed-binary-2-fragments", NULL, PMD, {{0xc2, NULL, 5000, F_Z | F_ZFRAG, 2}},
     {{0xc2, NULL, 5000, 0, 0}}, END_OPEN},
    {"7692-7.2.3.6/empty-compressed-00", NULL, PMD, {{0xc1, S(""), F_Z, 0}}, {W(TXT, "")},
     END_OPEN},
    {"7692-7.2.3.6/empty-compressed-no-bytes", NULL, PMD, {{0xc1, S(""), 0, 0}}, {W(TXT, "")},
     END_OPEN},
    {"7692-7.2.3.4/bfinal-block", NULL, PMD, {{0xc1, NULL, 500, F_Z | F_ZFIN, 0}},
     {{0xc1, NULL, 500, 0, 0}}, END_OPEN},
    {"7692-6.1/rsv1-on-continuation", NULL, PMD, {{0x01, S("abc"), 0, 0}, {0xc0, S("def"), 0, 0}},
     {WFAIL(1002)}, END_CLOSED},
    {"7692-6.1/rsv1-on-middle-continuation", NULL, PMD,
     {{0x41, S("\xf2\x48\xcd"), 0, 0}, {0x40, S("\xc9"), 0, 0}}, {WFAIL(1002)}, END_CLOSED},
    {"7692-6.1/rsv1-on-ping", NULL, PMD, {{0xc9, S("x"), 0, 0}}, {WFAIL(1002)}, END_CLOSED},
    {"7692-6.1/rsv1-on-pong", NULL, PMD, {{0xca, S("x"), 0, 0}}, {WFAIL(1002)}, END_CLOSED},
    {"7692-6.1/rsv1-on-close", NULL, PMD, {{0xc8, S("\x03\xe8"), 0, 0}}, {WFAIL(1002)}, END_CLOSED},
    {"7692-6.1/rsv2-still-reserved", NULL, PMD, {{0xe1, S("x"), 0, 0}}, {WFAIL(1002)}, END_CLOSED},
    /* proto.h: corrupt compressed data fails with 1002. */
    {"7692-6.2/corrupt-block-type", NULL, PMD, {{0xc1, S("\xff\xff\xff\xff"), 0, 0}},
     {WFAIL(1002)}, END_CLOSED},
    {"7692-6.2/corrupt-stored-length", NULL, PMD, {{0xc2, S("\x00\x05\x00\x00\x00"), 0, 0}},
     {WFAIL(1002)}, END_CLOSED},
    {"7692-6.2/compressed-invalid-utf8", NULL, PMD, {{0xc1, S("ok\xc0\xaf"), F_Z, 0}},
     {WFAIL(1007)}, END_CLOSED},
    {"7692-6.2/compressed-invalid-utf8-fail-fast", NULL, PMD, {{0x41, S("ok\xc0\xaf"), F_Z, 0}},
     {WFAIL(1007)}, END_CLOSED},
    {"7692-6.2/compressed-truncated-utf8-at-end", NULL, PMD, {{0xc1, S("ok\xe2\x82"), F_Z, 0}},
     {WFAIL(1007)}, END_CLOSED},
    {"7692-6.2/compressed-then-ping-then-end", NULL, PMD,
     {{0x41, S("Hello, "), F_Z, 0}, {PING, S("p"), 0, 0}, {0x80, S(""), 0, 0}},
     {W(PONG, "p"), W(TXT, "Hello, ")}, END_OPEN},
    {"7692-6.2/compressed-over-limit", "/small", PMD, {{0xc2, NULL, 2000, F_Z, 0}}, {WFAIL(1009)},
     END_CLOSED},
    {"7692-6.1/compressed-binary-1MiB", NULL, PMD, {{0xc2, NULL, 1 << 20, F_Z, 0}},
     {{0xc2, NULL, 1 << 20, 0, 0}}, END_OPEN},
    {"7692-7.2.3.2/context-kept-across-uncompressed", NULL, PMD,
     {{0xc1, NULL, 1000, F_Z, 0}, {TXT, S("plain"), 0, 0}, {0xc1, NULL, 1000, F_Z, 0}},
     {{0xc1, NULL, 1000, 0, 0}, W(TXT, "plain"), {0xc1, NULL, 1000, 0, 0}}, END_OPEN},
    {"7692-6.2/compressed-at-limit", "/small", PMD, {{0xc2, NULL, SMALL_MAX, F_Z, 0}},
     {{0xc2, NULL, SMALL_MAX, 0, 0}}, END_OPEN},
};
/* clang-format on */

static void test_rows(int port)
{
    run_rows(port, rows_masking, sizeof rows_masking / sizeof rows_masking[0], tally("5.1/5.3"));
    run_rows(port, rows_framing, sizeof rows_framing / sizeof rows_framing[0], tally("5.2"));

    /* 5.2: every reserved opcode, data (3-7) and control (0xB-0xF), with FIN. */
    static const unsigned reserved[] = {3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        char id[64];
        snprintf(id, sizeof id, "5.2/reserved-opcode-%x", reserved[i]);
        struct row r = {
            id,        NULL, NULL, {{(uint8_t)(0x80 | reserved[i]), S("x"), 0, 0}}, {WFAIL(1002)},
            END_CLOSED};
        run_row(port, &r);
        /* ...and after a valid message, so it is the opcode that fails. */
        snprintf(id, sizeof id, "5.2/reserved-opcode-%x-after-message", reserved[i]);
        struct row r2 = {id,
                         NULL,
                         NULL,
                         {{TXT, S("ok"), 0, 0}, {(uint8_t)(0x80 | reserved[i]), S(""), 0, 0}},
                         {W(TXT, "ok"), WFAIL(1002)},
                         END_CLOSED};
        run_row(port, &r2);
        *tally("5.2") += 2;
    }

    run_rows(port, rows_fragmentation, sizeof rows_fragmentation / sizeof rows_fragmentation[0],
             tally("5.4"));
    run_rows(port, rows_control, sizeof rows_control / sizeof rows_control[0], tally("5.5"));

    /* 5.6: text and binary of the boundary sizes, echoed whole. */
    static const size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 1 << 20};
    for (int op = 1; op <= 2; op++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            char id[64];
            snprintf(id, sizeof id, "5.6/%s-%zu", op == 1 ? "text" : "binary", sizes[i]);
            struct row r = {id,
                            NULL,
                            NULL,
                            {{(uint8_t)(0x80 | op), NULL, sizes[i], 0, 0}},
                            {{(uint8_t)(0x80 | op), NULL, sizes[i], 0, 0}},
                            END_OPEN};
            run_row(port, &r);
            (*tally("5.6"))++;
        }
    }

    /* 8.1: valid texts echoed, in one frame and byte by byte in fragments. */
    for (size_t i = 0; i < sizeof utf8_valid / sizeof utf8_valid[0]; i++) {
        const char *s = utf8_valid[i];
        size_t n = strlen(s);
        char id[64];
        snprintf(id, sizeof id, "8.1/valid-%zu", i);
        struct row r = {id, NULL, NULL, {{TXT, s, n, 0, 0}}, {{TXT, s, n, 0, 0}}, END_OPEN};
        run_row(port, &r);
        (*tally("8.1"))++;
    }
    for (size_t i = 0; i < sizeof utf8_invalid / sizeof utf8_invalid[0]; i++) {
        const char *s = utf8_invalid[i];
        char id[64];
        snprintf(id, sizeof id, "8.1/invalid-%zu", i);
        struct row r = {id, NULL, NULL, {{TXT, s, strlen(s), 0, 0}}, {WFAIL(1007)}, END_CLOSED};
        run_row(port, &r);
        /* The same bytes as the last fragment of a fragmented message. */
        snprintf(id, sizeof id, "8.1/invalid-%zu-fragmented", i);
        struct row r2 = {id,
                         NULL,
                         NULL,
                         {{0x01, S("ok"), 0, 0}, {0x80, s, strlen(s), 0, 0}},
                         {WFAIL(1007)},
                         END_CLOSED};
        run_row(port, &r2);
        *tally("8.1") += 2;
    }
    run_rows(port, rows_utf8, sizeof rows_utf8 / sizeof rows_utf8[0], tally("8.1"));

    /* 7.4: close codes. Valid ones are echoed (with no reason), then TCP closes. */
    for (size_t i = 0; i < sizeof close_valid / sizeof close_valid[0]; i++) {
        int code = close_valid[i];
        char id[64], pl[8] = {(char)(code >> 8), (char)code, 'b', 'y', 'e'};
        snprintf(id, sizeof id, "7.4.1/close-%d", code);
        struct row r = {id, NULL, NULL, {{CLOSE, pl, 2, 0, 0}}, {WECHO(code)}, END_CLOSED};
        run_row(port, &r);
        snprintf(id, sizeof id, "7.4.1/close-%d-with-reason", code);
        struct row r2 = {id, NULL, NULL, {{CLOSE, pl, 5, 0, 0}}, {WECHO(code)}, END_CLOSED};
        run_row(port, &r2);
        *tally("7.4") += 2;
    }
    for (size_t i = 0; i < sizeof close_invalid / sizeof close_invalid[0]; i++) {
        int code = close_invalid[i];
        char id[64], pl[2] = {(char)(code >> 8), (char)code};
        snprintf(id, sizeof id, "7.4.1/close-%d-invalid", code);
        struct row r = {id, NULL, NULL, {{CLOSE, pl, 2, 0, 0}}, {WFAIL(1002)}, END_CLOSED};
        run_row(port, &r);
        (*tally("7.4"))++;
    }
    run_rows(port, rows_close, sizeof rows_close / sizeof rows_close[0], tally("7.4"));

    /* 10.4: limits. Row 4 echoes a message made of two patterns: fix its expectation. */
    struct row lim[sizeof rows_limits / sizeof rows_limits[0]];
    memcpy(lim, rows_limits, sizeof lim);
    static char two[1001];
    for (size_t i = 0; i < 500; i++)
        two[i] = (char)pat(i, 2), two[500 + i] = (char)pat(i, 0);
    lim[4].want[0] = (struct ex){BIN, two, 1000, 0, 0};
    run_rows(port, lim, sizeof lim / sizeof lim[0], tally("10.4"));

    run_rows(port, rows_pmd, sizeof rows_pmd / sizeof rows_pmd[0], tally("7692 frames"));
}

/* 5.4: many fragments, and a 1 MiB message in 16 fragments. */
static void test_many_fragments(int port)
{
    static const size_t counts[] = {100, 1000};
    for (size_t k = 0; k < 2; k++) {
        size_t n = counts[k];
        wsc w;
        ws_open(&w, port, "/echo", NULL);
        bytes b = {0};
        for (size_t i = 0; i < n; i++) {
            uint8_t ch = pat(i, 1);
            frame_put(&b, (uint8_t)((i + 1 == n ? 0x80 : 0) | (i == 0 ? 1 : 0)), &ch, 1, 1, 0);
        }
        ws_send_bytes(&w, &b);
        free(b.p);
        expect_frame(&w, &(struct ex){TXT, NULL, n, 0, 0}, "5.4/many-fragments");
        close_normally(&w, "5.4/many-fragments");
        ws_free(&w);
    }
    wsc w;
    ws_open(&w, port, "/echo", NULL);
    uint8_t *p = pattern(1 << 20, 2);
    bytes b = {0};
    for (size_t i = 0; i < 16; i++)
        frame_put(&b, (uint8_t)((i == 15 ? 0x80 : 0) | (i == 0 ? 2 : 0)), p + i * 65536, 65536,
                  65536, 0);
    ws_send_bytes(&w, &b);
    free(b.p);
    free(p);
    expect_frame(&w, &(struct ex){BIN, NULL, 1 << 20, 0, 0}, "5.4/1MiB-in-16-fragments");
    close_normally(&w, "5.4/1MiB-in-16-fragments");
    ws_free(&w);
    *tally("5.4") += 3;
}

/* --- 4.2.1: the opening handshake ---------------------------------------------------- */

struct hs_row {
    const char *id;
    const char *req; /* the whole request */
    int status;
    const char *hdr; /* a header line the response must hold, or NULL */
};

#define HS_HOST "Host: 127.0.0.1\r\n"
#define HS_UPG  "Upgrade: websocket\r\n"
#define HS_CONN "Connection: Upgrade\r\n"
#define HS_KEY  "Sec-WebSocket-Key: " RFC_KEY "\r\n"
#define HS_VER  "Sec-WebSocket-Version: 13\r\n"
#define HS_GET  "GET /echo HTTP/1.1\r\n"

/* clang-format off */
static const struct hs_row hs_rows[] = {
    {"4.2.1/valid", HS_GET HS_HOST HS_UPG HS_CONN HS_KEY HS_VER "\r\n", 101,
     "Sec-WebSocket-Accept: " RFC_ACCEPT},
    {"4.2.1/valid-mixed-case-and-lists",
     HS_GET HS_HOST "upgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n"
                    "sec-websocket-key: " RFC_KEY "\r\nsec-websocket-version: 13\r\n\r\n",
     101, "Sec-WebSocket-Accept: " RFC_ACCEPT},
    {"4.2.1/valid-upgrade-list",
     HS_GET HS_HOST "Upgrade: foo/1, websocket\r\n" HS_CONN HS_KEY HS_VER "\r\n",
     101, "Sec-WebSocket-Accept: " RFC_ACCEPT},
    {"4.2.1/missing-key", HS_GET HS_HOST HS_UPG HS_CONN HS_VER "\r\n", 400, NULL},
    {"4.2.1/key-15-bytes",
     HS_GET HS_HOST HS_UPG HS_CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j\r\n" HS_VER "\r\n",
     400, NULL},
    {"4.2.1/key-17-bytes",
     HS_GET HS_HOST HS_UPG HS_CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZTE=\r\n" HS_VER "\r\n",
     400, NULL},
    {"4.2.1/key-not-base64",
     HS_GET HS_HOST HS_UPG HS_CONN "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\n" HS_VER "\r\n",
     400, NULL},
    {"4.2.1/key-empty", HS_GET HS_HOST HS_UPG HS_CONN "Sec-WebSocket-Key: \r\n" HS_VER "\r\n", 400,
     NULL},
    {"4.2.1/two-keys", HS_GET HS_HOST HS_UPG HS_CONN HS_KEY HS_KEY HS_VER "\r\n", 400, NULL},
    {"4.2.1/two-versions", HS_GET HS_HOST HS_UPG HS_CONN HS_KEY HS_VER HS_VER "\r\n", 400, NULL},
    {"4.2.1/upgrade-not-websocket", HS_GET HS_HOST "Upgrade: h2c\r\n" HS_CONN HS_KEY HS_VER "\r\n",
     400, NULL},
    {"4.2.1/version-8", HS_GET HS_HOST HS_UPG HS_CONN HS_KEY "Sec-WebSocket-Version: 8\r\n\r\n",
     426, "Sec-WebSocket-Version: 13"},
    {"4.2.1/version-14", HS_GET HS_HOST HS_UPG HS_CONN HS_KEY "Sec-WebSocket-Version: 14\r\n\r\n",
     426, "Sec-WebSocket-Version: 13"},
    {"4.2.1/version-missing", HS_GET HS_HOST HS_UPG HS_CONN HS_KEY "\r\n", 426,
     "Sec-WebSocket-Version: 13"},
    {"4.2.1/body-in-handshake",
     HS_GET HS_HOST HS_UPG HS_CONN HS_KEY HS_VER "Content-Length: 5\r\n\r\nhello", 400, NULL},
    /* The endpoint is a GET route: the router answers a POST with 405 and "Allow: GET"
     * (an "appropriate HTTP error code" in 4.2.1's words, more precise than 400). */
    {"4.2.1/post",
     "POST /echo HTTP/1.1\r\n" HS_HOST HS_UPG HS_CONN HS_KEY HS_VER "Content-Length: 0\r\n\r\n",
     405, "Allow: GET"},
    {"4.2.2/malformed-extensions",
     HS_GET HS_HOST HS_UPG HS_CONN HS_KEY HS_VER
     "Sec-WebSocket-Extensions: permessage-deflate;;\r\n\r\n",
     400, NULL},
};
/* clang-format on */

/* Requests that try the handshake (they carry Sec-WebSocket-Key) but break a 4.2.1 rule
 * the parser's upgrade flag already reflects: 400, as handshake.h and RFC 6455 4.2.1
 * ("such as 400 Bad Request") say. A plain GET without any of it gets 426 (hs_rows). */
/* clang-format off */
static const struct hs_row hs_rows_not_400[] = {
    {"4.2.1/missing-upgrade", HS_GET HS_HOST HS_CONN HS_KEY HS_VER "\r\n", 400, NULL},
    {"4.2.1/missing-connection", HS_GET HS_HOST HS_UPG HS_KEY HS_VER "\r\n", 400, NULL},
    {"4.2.1/connection-without-upgrade",
     HS_GET HS_HOST HS_UPG "Connection: keep-alive\r\n" HS_KEY HS_VER "\r\n",
     400, NULL},
    {"4.2.1/http-1.0", "GET /echo HTTP/1.0\r\n" HS_HOST HS_UPG HS_CONN HS_KEY HS_VER "\r\n", 400,
     NULL},
};
/* clang-format on */

static void run_hs_row(int port, const struct hs_row *h, int want)
{
    raw_conn c;
    raw_resp r;
    int st = raw_one(port, &c, h->req, 0, &r);
    if (st != want)
        fprintf(stderr, "[%s] status %d, want %d\n%s\n", h->id, st, want, st > 0 ? r.head : "");
    CHECK_INT(st, ==, want);
    if (h->hdr && !strstr(r.head, h->hdr))
        fprintf(stderr, "[%s] no \"%s\" in:\n%s\n", h->id, h->hdr, r.head);
    if (h->hdr)
        CHECK(strstr(r.head, h->hdr) != NULL);
    if (want == 101) {
        /* A real WebSocket follows: echo, then close. */
        wsc w;
        memset(&w, 0, sizeof w);
        w.c = c;
        ws_send_fr(&w, &(struct fr){TXT, S("hs"), 0, 0});
        expect_frame(&w, &(struct ex)W(TXT, "hs"), h->id);
        close_normally(&w, h->id);
        c = w.c;
    } else {
        /* No 101: nothing was upgraded (a response with a body, not frames). */
        CHECK(!strstr(r.head, "Sec-WebSocket-Accept"));
    }
    raw_resp_free(&r);
    raw_close(&c);
}

static void test_handshake(int port)
{
    for (size_t i = 0; i < sizeof hs_rows / sizeof hs_rows[0]; i++)
        run_hs_row(port, &hs_rows[i], hs_rows[i].status);
    *tally("4.2.1") += (int)(sizeof hs_rows / sizeof hs_rows[0]);
    for (size_t i = 0; i < sizeof hs_rows_not_400 / sizeof hs_rows_not_400[0]; i++)
        run_hs_row(port, &hs_rows_not_400[i], hs_rows_not_400[i].status);
    *tally("4.2.1") += (int)(sizeof hs_rows_not_400 / sizeof hs_rows_not_400[0]);

    /* Robustness: a client that sends its first frames in the same write as its request
     * (4.1 says it must wait for the 101, but conn.c keeps the bytes after the head as the
     * first frames): they are read as frames once the upgrade is done. */
    raw_conn c;
    raw_open(&c, port);
    bytes b = {0};
    bytes_put(&b, S(HS_GET HS_HOST HS_UPG HS_CONN HS_KEY HS_VER "\r\n"));
    wsc w;
    memset(&w, 0, sizeof w);
    frame_put(&b, TXT, (const uint8_t *)"first", 5, 5, 0);
    frame_put(&b, PING, (const uint8_t *)"p", 1, 1, 0);
    CHECK_INT(raw_send(&c, b.p, b.n), ==, 0);
    free(b.p);
    raw_resp r;
    CHECK_INT(raw_read(&c, &r, 0, WAIT_MS), ==, 0);
    CHECK_INT(r.status, ==, 101);
    raw_resp_free(&r);
    w.c = c;
    expect_frame(&w, &(struct ex)W(TXT, "first"), "robust/frames-before-101");
    expect_frame(&w, &(struct ex)W(PONG, "p"), "robust/frames-before-101");
    close_normally(&w, "robust/frames-before-101");
    ws_free(&w);
    (*tally("robustness"))++;
}

/* --- RFC 7692 negotiation -------------------------------------------------------------- */

struct pmd_row {
    const char *id;
    const char *offer;
    const char *answer; /* the exact Sec-WebSocket-Extensions of the 101, NULL: none */
};

/* clang-format off */
static const struct pmd_row pmd_rows[] = {
    {"7692-7/plain", "permessage-deflate", "permessage-deflate"},
    {"7692-7/case-insensitive", "PerMessage-Deflate", "permessage-deflate"},
    {"7692-7.1.2.2/client_max_window_bits-bare", "permessage-deflate; client_max_window_bits",
     "permessage-deflate"},
    {"7692-7.1.2.2/client_max_window_bits=10", "permessage-deflate; client_max_window_bits=10",
     "permessage-deflate; client_max_window_bits=10"},
    {"7692-7.1.2.2/client_max_window_bits-quoted",
     "permessage-deflate; client_max_window_bits=\"12\"",
     "permessage-deflate; client_max_window_bits=12"},
    {"7692-7.1.2.1/server_max_window_bits=10", "permessage-deflate; server_max_window_bits=10",
     "permessage-deflate; server_max_window_bits=10"},
    {"7692-7.1.2.1/server_max_window_bits=8", "permessage-deflate; server_max_window_bits=8",
     "permessage-deflate; server_max_window_bits=8"},
    {"7692-7.1.2.2/client_max_window_bits=8", "permessage-deflate; client_max_window_bits=8",
     "permessage-deflate; client_max_window_bits=8"},
    {"7692-7.1.1.1/server_no_context_takeover", "permessage-deflate; server_no_context_takeover",
     "permessage-deflate; server_no_context_takeover"},
    {"7692-7.1.1.2/client_no_context_takeover", "permessage-deflate; client_no_context_takeover",
     "permessage-deflate; client_no_context_takeover"},
    {"7692-7.1/all-parameters",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
     "server_max_window_bits=9; client_max_window_bits=11",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
     "server_max_window_bits=9; client_max_window_bits=11"},
    {"7692-7.1.2.1/server_max_window_bits=7", "permessage-deflate; server_max_window_bits=7", NULL},
    {"7692-7.1.2.1/server_max_window_bits=16", "permessage-deflate; server_max_window_bits=16",
     NULL},
    {"7692-7.1.2.1/server_max_window_bits-no-value", "permessage-deflate; server_max_window_bits",
     NULL},
    {"7692-7.1.2.1/server_max_window_bits=010", "permessage-deflate; server_max_window_bits=010",
     NULL},
    {"7692-7.1.2.2/client_max_window_bits=7", "permessage-deflate; client_max_window_bits=7", NULL},
    {"7692-7.1.1.1/server_no_context_takeover-with-value",
     "permessage-deflate; server_no_context_takeover=1", NULL},
    {"7692-7.1/unknown-parameter", "permessage-deflate; foo", NULL},
    {"7692-7.1/unknown-parameter-with-value", "permessage-deflate; foo=bar", NULL},
    {"7692-7.1/duplicate-parameter",
     "permessage-deflate; server_no_context_takeover; server_no_context_takeover", NULL},
    {"7692-7.1/duplicate-window-bits",
     "permessage-deflate; client_max_window_bits=10; client_max_window_bits=11", NULL},
    {"7692-5/second-offer-after-invalid",
     "permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits",
     "permessage-deflate"},
    {"7692-5/second-offer-after-unknown-param",
     "permessage-deflate; foo, permessage-deflate; server_no_context_takeover",
     "permessage-deflate; server_no_context_takeover"},
    {"7692-5/first-valid-offer-wins",
     "permessage-deflate; server_max_window_bits=10, permessage-deflate",
     "permessage-deflate; server_max_window_bits=10"},
    {"7692-5/other-extension-first", "x-webkit-deflate-frame, permessage-deflate",
     "permessage-deflate"},
    {"7692-5/only-other-extension", "x-webkit-deflate-frame", NULL},
};
/* clang-format on */

/* 2 * n bytes: n pseudo-random bytes, then the same again. */
static uint8_t *rep_block(size_t n)
{
    uint8_t *m = malloc(2 * n);
    CHECK(m != NULL);
    uint32_t x = 0x9e3779b9u;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        m[i] = m[n + i] = (uint8_t)(x >> 24);
    }
    return m;
}

static void test_pmd_negotiation(int port)
{
    for (size_t i = 0; i < sizeof pmd_rows / sizeof pmd_rows[0]; i++) {
        const struct pmd_row *p = &pmd_rows[i];
        wsc w;
        ws_open(&w, port, "/echo", p->offer);
        if (!p->answer ? w.ext[0] != 0 : strcmp(w.ext, p->answer) != 0)
            fprintf(stderr, "[%s] offer \"%s\": answered \"%s\", want \"%s\"\n", p->id, p->offer,
                    w.ext, p->answer ? p->answer : "(none)");
        if (p->answer)
            CHECK_STR(w.ext, p->answer);
        else
            CHECK_STR(w.ext, "");
        /* The agreement holds: the same message twice each way. Its only repeats are
         * 2000 bytes apart, so the server's echo can only keep to an agreed smaller
         * window by not using them (we inflate with that window), and its second echo
         * can only do without the first one's context when told so by not referring to
         * it (then we inflate each message afresh). We compress as agreed likewise. */
        uint8_t *m = rep_block(2000);
        for (int k = 0; k < 2; k++) {
            uint8_t b0 = (uint8_t)(w.pmd ? 0xc2 : BIN);
            ws_send_fr(&w, &(struct fr){b0, (const char *)m, 4000, w.pmd ? F_Z : 0, 0});
            expect_frame(&w, &(struct ex){b0, (const char *)m, 4000, 0, 0}, p->id);
        }
        free(m);
        close_normally(&w, p->id);
        ws_free(&w);
    }
    *tally("7692 negotiation") += (int)(sizeof pmd_rows / sizeof pmd_rows[0]);
    /* An endpoint without compression never accepts it. */
    wsc w;
    ws_open(&w, port, "/nopmd", "permessage-deflate");
    CHECK_STR(w.ext, "");
    close_normally(&w, "7692/endpoint-without-compression");
    ws_free(&w);
    (*tally("7692 negotiation"))++;
}

/* RFC 7692: compressed messages with unusual but valid shapes. */
static void test_pmd_shapes(int port)
{
    wsc w;
    ws_open(&w, port, "/echo", PMD);
    /* 7.2.3.4: two deflate streams, each ended by a BFINAL block, in one message. */
    bytes z = {0}, f = {0};
    z_compress(&w, (const uint8_t *)"Hello, ", 7, 1, &z);
    z_compress(&w, (const uint8_t *)"world", 5, 1, &z);
    frame_put(&f, 0xc1, z.p, z.n, z.n, 0);
    ws_send_bytes(&w, &f);
    expect_frame(&w, &(struct ex)W(TXT, "Hello, world"), "7692-7.2.3.4/two-bfinal-streams");
    /* 6.1: an empty first fragment (RSV1), the compressed bytes in the continuation. */
    uint8_t *p = pattern(1000, 1);
    z.n = f.n = 0;
    z_compress(&w, p, 1000, 0, &z);
    frame_put(&f, 0x41, (const uint8_t *)"", 0, 0, 0);
    frame_put(&f, 0x80, z.p, z.n, z.n, 0);
    ws_send_bytes(&w, &f);
    expect_frame(&w, &(struct ex){0xc1, NULL, 1000, 0, 0}, "7692-6.1/empty-first-fragment");
    /* 6.1: a compressed message in one-byte fragments, a ping among them. */
    z.n = f.n = 0;
    z_compress(&w, p, 300, 0, &z);
    for (size_t i = 0; i < z.n; i++) {
        uint8_t b0 = (uint8_t)(i == 0 ? 0x41 : 0x00) | (i + 1 == z.n ? 0x80 : 0);
        frame_put(&f, b0, z.p + i, 1, 1, 0);
        if (i == z.n / 2)
            frame_put(&f, PING, (const uint8_t *)"mid", 3, 3, 0);
    }
    ws_send_bytes(&w, &f);
    expect_frame(&w, &(struct ex)W(PONG, "mid"), "7692-6.1/one-byte-fragments");
    expect_frame(&w, &(struct ex){0xc1, NULL, 300, 0, 0}, "7692-6.1/one-byte-fragments");
    close_normally(&w, "7692/shapes");
    ws_free(&w);
    free(p);
    free(z.p);
    free(f.p);
    *tally("7692 frames") += 3;
}

/* --- RFC 7692 + 10.4: a compression bomb ------------------------------------------------ */

static void test_compression_bomb(int port)
{
    const size_t total = 50u << 20; /* 50 MiB of zeros */
    wsc w;
    ws_open(&w, port, "/small", "permessage-deflate");
    CHECK(w.pmd);
    /* Compress them piece by piece (no 50 MiB buffer in this process either). */
    z_stream z;
    memset(&z, 0, sizeof z);
    CHECK_INT(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), ==, Z_OK);
    static const uint8_t zeros[65536];
    bytes comp = {0};
    for (size_t done = 0; done < total; done += sizeof zeros) {
        z.next_in = (Bytef *)(uintptr_t)zeros;
        z.avail_in = sizeof zeros;
        int last = done + sizeof zeros >= total;
        do {
            uint8_t buf[16384];
            z.next_out = buf;
            z.avail_out = sizeof buf;
            CHECK(deflate(&z, last ? Z_SYNC_FLUSH : Z_NO_FLUSH) != Z_STREAM_ERROR);
            bytes_put(&comp, buf, sizeof buf - z.avail_out);
        } while (z.avail_out == 0);
    }
    deflateEnd(&z);
    CHECK(comp.n > 4 && memcmp(comp.p + comp.n - 4, "\x00\x00\xff\xff", 4) == 0);
    comp.n -= 4;
    bytes frame = {0};
    frame_put(&frame, 0xc2, comp.p, comp.n, comp.n, 0);
    free(comp.p);

    int reset = peer_reset_peak_rss();
    long before = reset == 0 ? peer_peak_rss_kb() : peer_rss_kb();
    int64_t t0 = peer_now_ms();
    ws_send_bytes(&w, &frame);
    expect_frame(&w, &(struct ex)WFAIL(1009), "7692/compression-bomb");
    int64_t took = peer_now_ms() - t0;
    expect_tcp_close(&w, "7692/compression-bomb");
    long after = reset == 0 ? peer_peak_rss_kb() : peer_rss_kb();
    fprintf(stderr,
            "compression bomb: %zu compressed bytes for %zu MiB; 1009 after %lld ms; "
            "%s RSS %ld -> %ld KiB (+%ld)\n",
            frame.n, total >> 20, (long long)took, reset == 0 ? "peak" : "current", before, after,
            after - before);
    free(frame.p);
    CHECK_INT(took, <, 3000);
    /* Far less than the 50 MiB the bomb inflates to (the limit is 1000 bytes). */
    CHECK_INT(after - before, <, 8 * 1024);
    ws_free(&w);
    (*tally("7692 frames"))++;
}

/* --- robustness -------------------------------------------------------------------------- */

static void raise_nofile(long want)
{
    struct rlimit rl;
    CHECK_INT(getrlimit(RLIMIT_NOFILE, &rl), ==, 0);
    if ((long)rl.rlim_cur < want) {
        rl.rlim_cur =
            rl.rlim_max == RLIM_INFINITY || (long)rl.rlim_max > want ? (rlim_t)want : rl.rlim_max;
        CHECK_INT(setrlimit(RLIMIT_NOFILE, &rl), ==, 0);
    }
    CHECK_INT(getrlimit(RLIMIT_NOFILE, &rl), ==, 0);
    CHECK_INT((long)rl.rlim_cur, >=, want);
}

/* 1000 connections open at once, each a handshake and one echo; then all closed. */
static void test_many_connections(void)
{
    enum { N = 1000 };
    raise_nofile(4 * N + 256);
    srv_thread t;
    int port = start_server(&t, 2);
    int open0 = latch_count(&opened_l), closed0 = latch_count(&closed_l);
    int64_t t0 = peer_now_ms(), end = t0 + 60000;
    wsc *w = calloc(N, sizeof *w);
    CHECK(w != NULL);
    static const char req[] = "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: " RFC_KEY "\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";
    /* All connect and send their handshake before any answer is read. */
    for (int i = 0; i < N; i++) {
        raw_open(&w[i].c, port);
        CHECK_INT(raw_sends(&w[i].c, req), ==, 0);
    }
    for (int i = 0; i < N; i++) {
        raw_resp r;
        CHECK_INT(raw_read(&w[i].c, &r, 0, end - peer_now_ms()), ==, 0);
        CHECK_INT(r.status, ==, 101);
        CHECK(strstr(r.head, RFC_ACCEPT) != NULL);
        raw_resp_free(&r);
    }
    CHECK_INT(latch_wait(&opened_l, open0 + N, end - peer_now_ms()), ==, open0 + N);
    /* Every connection echoes its own message. */
    for (int i = 0; i < N; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "connection %d", i);
        ws_send_fr(&w[i], &(struct fr){TXT, msg, (size_t)n, 0, 0});
    }
    for (int i = 0; i < N; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "connection %d", i);
        expect_frame(&w[i], &(struct ex){TXT, msg, (size_t)n, 0, 0}, "robust/1000-connections");
    }
    int64_t echoed = peer_now_ms() - t0;
    for (int i = 0; i < N; i++)
        ws_send_fr(&w[i], &(struct fr){CLOSE, S("\x03\xe8"), 0, 0});
    for (int i = 0; i < N; i++) {
        expect_frame(&w[i], &(struct ex)WECHO(1000), "robust/1000-connections");
        expect_tcp_close(&w[i], "robust/1000-connections");
        ws_free(&w[i]);
    }
    CHECK_INT(latch_wait(&closed_l, closed0 + N, end - peer_now_ms()), ==, closed0 + N);
    free(w);
    fprintf(stderr, "1000 connections: all echoed after %lld ms, all closed after %lld ms\n",
            (long long)echoed, (long long)(peer_now_ms() - t0));
    CHECK_INT(peer_now_ms(), <, end);
    srvt_stop(&t, WAIT_MS);
    srvt_free(&t);
    (*tally("robustness"))++;
}

/* A peer that sends half a frame and stalls blocks nobody (one worker, so they share
 * its loop), and its frame completes later. */
static void test_stalled_half_frame(void)
{
    srv_thread t;
    int port = start_server(&t, 1);
    wsc a, a2, b;
    ws_open(&a, port, "/echo", NULL);
    ws_open(&a2, port, "/echo", NULL);
    uint8_t *p = pattern(1000, 2);
    bytes fa = {0};
    frame_put(&fa, BIN, p, 1000, 1000, 0);
    /* a: the header and 10 payload bytes; a2: one header byte. */
    CHECK_INT(raw_send(&a.c, fa.p, 4 + 4 + 10), ==, 0);
    CHECK_INT(raw_send(&a2.c, "\x81", 1), ==, 0);
    int64_t t0 = peer_now_ms();
    for (int i = 0; i < 5; i++) {
        ws_open(&b, port, "/echo", NULL);
        ws_send_fr(&b, &(struct fr){TXT, S("not blocked"), 0, 0});
        expect_frame(&b, &(struct ex)W(TXT, "not blocked"), "robust/stalled-half-frame");
        close_normally(&b, "robust/stalled-half-frame");
        ws_free(&b);
    }
    int64_t took = peer_now_ms() - t0;
    CHECK_INT(took, <, 3000);
    /* The stalled frames complete. */
    CHECK_INT(raw_send(&a.c, fa.p + 18, fa.n - 18), ==, 0);
    expect_frame(&a, &(struct ex){BIN, NULL, 1000, 0, 0}, "robust/stalled-half-frame");
    close_normally(&a, "robust/stalled-half-frame");
    ws_send_bytes(&a2, &(bytes){(uint8_t *)"\x80\x11\x22\x33\x44", 5, 5});
    expect_frame(&a2, &(struct ex)W(TXT, ""), "robust/stalled-half-frame");
    close_normally(&a2, "robust/stalled-half-frame");
    ws_free(&a);
    ws_free(&a2);
    free(fa.p);
    free(p);
    srvt_stop(&t, WAIT_MS);
    srvt_free(&t);
    (*tally("robustness"))++;
}

/* Random bytes after the handshake: the server closes the connection (with whatever
 * close code the first bad frame earns) and keeps serving others. */
static void test_random_garbage(int port)
{
    for (uint32_t seed = 1; seed <= 16; seed++) {
        wsc w;
        ws_open(&w, port, "/echo", NULL);
        uint8_t junk[4096];
        uint32_t x = seed * 2654435761u;
        for (size_t i = 0; i < sizeof junk; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            junk[i] = (uint8_t)x;
        }
        ws_send_bytes(&w, &(bytes){junk, sizeof junk, sizeof junk});
        /* A frame that announced up to 64 KiB still waiting: fill it with 0xff, which is
         * also a header with RSV bits set. */
        static uint8_t ff[70000];
        memset(ff, 0xff, sizeof ff);
        ws_send_bytes(&w, &(bytes){ff, sizeof ff, sizeof ff});
        int64_t end = peer_now_ms() + 5000;
        int rc;
        while ((rc = raw_fill(&w.c, end)) > 0)
            ;
        if (rc != 0)
            fprintf(stderr, "[robust/garbage seed %u] the connection is still open\n", seed);
        CHECK_INT(rc, ==, 0);
        ws_free(&w);
    }
    /* The server still serves. */
    wsc w;
    ws_open(&w, port, "/echo", NULL);
    ws_send_fr(&w, &(struct fr){TXT, S("alive"), 0, 0});
    expect_frame(&w, &(struct ex)W(TXT, "alive"), "robust/garbage");
    close_normally(&w, "robust/garbage");
    ws_free(&w);
    (*tally("robustness"))++;
}

static srv_thread the_srv;
static int the_port;

static void test_conformance_rows(void)
{
    test_rows(the_port);
}

/* The same rows again, every byte written on its own. */
static void test_conformance_rows_split(void)
{
    split_mode = 1;
    test_rows(the_port);
    split_mode = 0;
}

static void test_fragments(void)
{
    test_many_fragments(the_port);
}

static void test_opening_handshake(void)
{
    test_handshake(the_port);
}

static void test_deflate_negotiation(void)
{
    test_pmd_negotiation(the_port);
}

static void test_deflate_shapes(void)
{
    test_pmd_shapes(the_port);
}

static void test_bomb(void)
{
    test_compression_bomb(the_port);
}

static void test_garbage(void)
{
    test_random_garbage(the_port);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    int64_t t0 = peer_now_ms();
    the_port = start_server(&the_srv, 2);
    RUN(test_opening_handshake);
    RUN(test_conformance_rows);
    RUN(test_conformance_rows_split);
    RUN(test_fragments);
    RUN(test_deflate_negotiation);
    RUN(test_deflate_shapes);
    RUN(test_bomb);
    RUN(test_garbage);
    srvt_stop(&the_srv, WAIT_MS);
    srvt_free(&the_srv);
    RUN(test_stalled_half_frame);
    RUN(test_many_connections);
    int total = 0;
    for (int i = 0; i < ntallies; i++)
        total += tallies[i].n;
    fprintf(stderr, "conformance (server side): %d cases (%d table rows) in %lld ms\n", total,
            rows_run, (long long)(peer_now_ms() - t0));
    for (int i = 0; i < ntallies; i++)
        fprintf(stderr, "  %-18s %d\n", tallies[i].section, tallies[i].n);
    return 0;
}
