/* cipc's own WebSocket conformance suite, client side: the blocking client (cipc_wsc)
 * against a tiny raw server in this test that misbehaves on purpose, one case per rule of
 * RFC 6455 (4.1 the client's handshake, 5 framing, 7 closing, 8.1 UTF-8, 10.4 limits)
 * and RFC 7692 (the client's side of permessage-deflate), named after the section.
 *
 * The raw server listens on 127.0.0.1:0; a thread accepts one connection and follows the
 * case's script: read the handshake request, answer with crafted bytes, send crafted
 * frames, and read everything the client sends (checking that every frame is masked)
 * until the client closes TCP, every step under a deadline. The main thread drives
 * cipc_wsc_connect / recv / close and checks the return codes, then the script's record
 * of what the client sent. */
#include <openssl/evp.h>
#include <zlib.h>

#include "cipc/ws.h"
#include "server_helper.h"
#include "ws/frame.h"

#define WAIT_MS   10000
#define SCRIPT_MS 5000 /* how long a script waits for the client at most */

/* --- the raw server ------------------------------------------------------------------- */

struct cframe {
    uint8_t b0;
    int masked;
    uint8_t key[4];
    uint8_t *data; /* unmasked, owned, NUL-terminated */
    size_t len;
};

#define MAX_FRAMES 16

typedef struct rsrv {
    int lfd, port;
    pthread_t th;
    void (*script)(struct rsrv *rs, raw_conn *c);
    const void *arg; /* the case's parameters */
    /* What the script saw. */
    char req[8192]; /* the handshake request head */
    char key[64];   /* its Sec-WebSocket-Key */
    struct cframe frames[MAX_FRAMES];
    int nframes;
    int eof;         /* the client closed TCP (within the script's deadline) */
    int64_t eof_ms;  /* when */
    int64_t mark_ms; /* a time the script noted (for instance, when it sent its close) */
} rsrv;

static void *rs_main(void *arg)
{
    rsrv *rs = arg;
    struct pollfd pfd = {.fd = rs->lfd, .events = POLLIN};
    CHECK_INT(poll(&pfd, 1, WAIT_MS), ==, 1);
    int fd = accept(rs->lfd, NULL, NULL);
    CHECK(fd >= 0);
    raw_conn c;
    memset(&c, 0, sizeof c);
    c.fd = fd;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    rs->script(rs, &c);
    raw_close(&c);
    return NULL;
}

static void rs_start(rsrv *rs, void (*script)(rsrv *, raw_conn *), const void *arg)
{
    memset(rs, 0, sizeof *rs);
    rs->script = script;
    rs->arg = arg;
    rs->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(rs->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    CHECK_INT(bind(rs->lfd, (struct sockaddr *)&a, sizeof a), ==, 0);
    CHECK_INT(listen(rs->lfd, 8), ==, 0);
    CHECK_INT(getsockname(rs->lfd, (struct sockaddr *)&a, &len), ==, 0);
    rs->port = ntohs(a.sin_port);
    CHECK_INT(pthread_create(&rs->th, NULL, rs_main, rs), ==, 0);
}

/* Wait for the script to end (it is bounded by its deadlines). */
static void rs_join(rsrv *rs)
{
    pthread_join(rs->th, NULL);
    close(rs->lfd);
}

static void rs_free(rsrv *rs)
{
    for (int i = 0; i < rs->nframes; i++)
        free(rs->frames[i].data);
    rs->nframes = 0;
}

static const char *rs_url(const rsrv *rs, char *buf, size_t n)
{
    snprintf(buf, n, "ws://127.0.0.1:%d/conf?x=1", rs->port);
    return buf;
}

/* base64(SHA-1(key + GUID)), computed here independently of cipc. */
static void accept_of(const char *key, char out[64])
{
    char in[128];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    int n = snprintf(in, sizeof in, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    CHECK_INT(EVP_Digest(in, (size_t)n, md, &mdlen, EVP_sha1(), NULL), ==, 1);
    CHECK_INT(mdlen, ==, 20);
    CHECK_INT(EVP_EncodeBlock((unsigned char *)out, md, 20), ==, 28);
}

/* Read the request head (into rs->req) and its key. */
static void read_request(rsrv *rs, raw_conn *c)
{
    int64_t end = peer_now_ms() + SCRIPT_MS;
    long he;
    while ((he = raw_find(c, 0, "\r\n\r\n")) < 0)
        CHECK_INT(raw_fill(c, end), >, 0);
    CHECK((size_t)he + 4 < sizeof rs->req);
    memcpy(rs->req, c->buf, (size_t)he + 4);
    rs->req[he + 4] = '\0';
    raw_consume(c, (size_t)he + 4);
    const char *k = strstr(rs->req, "\r\nSec-WebSocket-Key: ");
    CHECK(k != NULL);
    k += strlen("\r\nSec-WebSocket-Key: ");
    size_t kn = strcspn(k, "\r");
    CHECK(kn < sizeof rs->key);
    memcpy(rs->key, k, kn);
    rs->key[kn] = '\0';
}

/* Send `tmpl` with "@ACCEPT@" replaced by the right accept value for the request. */
static void send_response(rsrv *rs, raw_conn *c, const char *tmpl)
{
    char acc[64], out[4096];
    accept_of(rs->key, acc);
    const char *at = strstr(tmpl, "@ACCEPT@");
    if (at)
        snprintf(out, sizeof out, "%.*s%s%s", (int)(at - tmpl), tmpl, acc, at + 8);
    else
        snprintf(out, sizeof out, "%s", tmpl);
    raw_sends(c, out);
}

#define R101 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
#define RACC "Sec-WebSocket-Accept: @ACCEPT@\r\n"

/* Send the 101 with `extra` header lines ("Name: value\r\n"...). */
static void send_101(rsrv *rs, raw_conn *c, const char *extra)
{
    char t[2048];
    snprintf(t, sizeof t, R101 RACC "%s\r\n", extra ? extra : "");
    send_response(rs, c, t);
}

/* Read the next frame from the client. Returns 0, RAW_TIMEOUT or RAW_TRUNCATED. */
static int read_client_frame(raw_conn *c, struct cframe *f, int64_t deadline)
{
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
    if (f->masked)
        memcpy(f->key, p + hl - 4, 4);
    f->len = (size_t)len;
    f->data = malloc(f->len + 1);
    CHECK(f->data != NULL);
    memcpy(f->data, p + hl, f->len);
    f->data[f->len] = 0;
    if (f->masked)
        cipc__ws_mask(f->data, f->len, f->key, 0);
    raw_consume(c, hl + (size_t)len);
    return 0;
}

/* Read frames until the client closes TCP, `n` frames arrived (n < 0: no such limit),
 * or `ms` pass. Returns the number read now. */
static int collect(rsrv *rs, raw_conn *c, int n, int64_t ms)
{
    int64_t end = peer_now_ms() + ms;
    int got = 0;
    while (n < 0 || got < n) {
        struct cframe f;
        int rc = read_client_frame(c, &f, end);
        if (rc == RAW_TRUNCATED) {
            if (c->len == 0) {
                rs->eof = 1;
                rs->eof_ms = peer_now_ms();
            }
            break;
        }
        if (rc != 0)
            break;
        if (rs->nframes < MAX_FRAMES)
            rs->frames[rs->nframes++] = f;
        else
            free(f.data);
        got++;
    }
    return got;
}

/* Wait for the client to close TCP (frames it sends are recorded). */
static void wait_eof(rsrv *rs, raw_conn *c, int64_t ms)
{
    collect(rs, c, -1, ms);
}

/* A server frame (unmasked unless `mask`). */
static void send_frame(raw_conn *c, uint8_t b0, const void *data, size_t len, int mask)
{
    uint8_t h[14];
    size_t hl = cipc__ws_header_encode(h, 0, false, false, len,
                                       mask ? (const uint8_t *)"\x0f\x1e\x2d\x3c" : NULL);
    h[0] = b0;
    uint8_t *buf = malloc(hl + len + 1);
    CHECK(buf != NULL);
    memcpy(buf, h, hl);
    if (len)
        memcpy(buf + hl, data, len);
    if (mask)
        cipc__ws_mask(buf + hl, len, (const uint8_t *)"\x0f\x1e\x2d\x3c", 0);
    int rc = raw_send(c, buf, hl + len);
    CHECK(rc == 0 || rc == -EPIPE || rc == -ECONNRESET);
    free(buf);
}

/* --- checks on what the client sent ------------------------------------------------- */

static void show_frames(const rsrv *rs, const char *id)
{
    fprintf(stderr, "[%s] the client sent %d frame(s)%s:\n", id, rs->nframes,
            rs->eof ? " then closed TCP" : " (no TCP close seen)");
    for (int i = 0; i < rs->nframes; i++) {
        const struct cframe *f = &rs->frames[i];
        fprintf(stderr, "  b0 %02x %s len %zu:", f->b0, f->masked ? "masked" : "UNMASKED", f->len);
        for (size_t k = 0; k < f->len && k < 16; k++)
            fprintf(stderr, " %02x", f->data[k]);
        fprintf(stderr, "\n");
    }
}

/* Every frame the client sent is masked (RFC 6455 5.1, 5.3) and has no RSV bit, except
 * RSV1 on compressed data frames when `pmd`. */
static void check_all_masked(const rsrv *rs, const char *id, int pmd)
{
    for (int i = 0; i < rs->nframes; i++) {
        const struct cframe *f = &rs->frames[i];
        int rsv_ok = (f->b0 & 0x30) == 0 &&
                     (!(f->b0 & 0x40) || (pmd && ((f->b0 & 0x0f) == 1 || (f->b0 & 0x0f) == 2)));
        if (!f->masked || !rsv_ok)
            show_frames(rs, id);
        CHECK(f->masked);
        CHECK(rsv_ok);
    }
}

/* Frame i is a close with `code` (-1: an empty close) and, when `reason` is not NULL,
 * exactly that reason. */
static void check_close_frame(const rsrv *rs, int i, int code, const char *reason, const char *id)
{
    int ok = i < rs->nframes && rs->frames[i].b0 == 0x88;
    if (ok) {
        const struct cframe *f = &rs->frames[i];
        if (code < 0)
            ok = f->len == 0;
        else
            ok = f->len >= 2 && (f->data[0] << 8 | f->data[1]) == code &&
                 cipc__utf8_valid(f->data + 2, f->len - 2) &&
                 (!reason ||
                  (f->len - 2 == strlen(reason) && !memcmp(f->data + 2, reason, f->len - 2)));
    }
    if (!ok) {
        fprintf(stderr, "[%s] want frame %d to be a close with code %d\n", id, i, code);
        show_frames(rs, id);
    }
    CHECK(ok);
}

/* --- connecting ----------------------------------------------------------------------- */

static int connect_to(const rsrv *rs, const cipc_ws_client_opts *co, const cipc_ws_opts *o,
                      cipc_wsc **out)
{
    char url[128];
    *out = NULL;
    return cipc_wsc_connect(rs_url(rs, url, sizeof url), co, o, out);
}

static cipc_wsc *connect_ok(const rsrv *rs, const cipc_ws_client_opts *co, const cipc_ws_opts *o,
                            const char *id)
{
    cipc_wsc *c = NULL;
    int rc = connect_to(rs, co, o, &c);
    if (rc != 0)
        fprintf(stderr, "[%s] connect: %s (%s)\n", id, cipc_err_name(rc),
                c ? cipc_wsc_errmsg(c) : "");
    CHECK_INT(rc, ==, 0);
    return c;
}

/* Section counts, for the summary. */
struct tally {
    const char *section;
    int n;
};
static struct tally tallies[16];
static int ntallies;

static void count(const char *section)
{
    for (int i = 0; i < ntallies; i++)
        if (!strcmp(tallies[i].section, section)) {
            tallies[i].n++;
            return;
        }
    tallies[ntallies].section = section;
    tallies[ntallies++].n = 1;
}

/* --- 4.1: the handshake response, checked by the client -------------------------------- */

struct hs_row {
    const char *id;
    const char *response; /* "@ACCEPT@" stands for the right accept value */
    int nocomp;           /* the client does not offer permessage-deflate */
    const char *const *protos;
    int want;        /* what cipc_wsc_connect returns */
    const char *msg; /* a substring of cipc_wsc_errmsg(), or NULL */
};

static const char *const protos_ab[] = {"a", "b", NULL};

/* clang-format off */
static const struct hs_row hs_rows[] = {
    {"4.1/wrong-accept", R101 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", 0, NULL,
     CIPC_EPROTO, "Sec-WebSocket-Accept"},
    {"4.1/accept-with-extra-character", R101 "Sec-WebSocket-Accept: @ACCEPT@x\r\n\r\n", 0, NULL,
     CIPC_EPROTO, "Sec-WebSocket-Accept"},
    {"4.1/missing-accept", R101 "\r\n", 0, NULL, CIPC_EPROTO, "Sec-WebSocket-Accept"},
    {"4.1/two-accepts", R101 RACC RACC "\r\n", 0, NULL, CIPC_EPROTO, "Sec-WebSocket-Accept"},
    {"4.1/status-200", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, NULL, CIPC_EPROTO,
     "200"},
    {"4.1/status-403", "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", 0, NULL, CIPC_EPROTO,
     "403"},
    {"4.1/status-426",
     "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n",
     0, NULL, CIPC_EPROTO, "426"},
    {"4.1/status-101-http-1.0",
     "HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" RACC
     "\r\n",
     0, NULL, CIPC_EPROTO, NULL},
    {"4.1/missing-upgrade",
     "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n" RACC "\r\n",
     0, NULL, CIPC_EPROTO, "Upgrade"},
    {"4.1/upgrade-not-websocket",
     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n" RACC "\r\n",
     0, NULL, CIPC_EPROTO, "Upgrade"},
    {"4.1/missing-connection",
     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" RACC "\r\n",
     0, NULL, CIPC_EPROTO, "Connection"},
    {"4.1/garbage-response", "SSH-2.0-OpenSSH_9.2\r\n\r\n", 0, NULL, CIPC_EPROTO, NULL},
    {"4.1/extension-not-offered", R101 RACC "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
     1, NULL, CIPC_EPROTO, "not offered"},
    {"4.1/unknown-extension", R101 RACC "Sec-WebSocket-Extensions: x-foo\r\n\r\n", 0, NULL,
     CIPC_EPROTO, "not offered"},
    {"4.1/extension-twice",
     R101 RACC "Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate\r\n\r\n",
     0, NULL, CIPC_EPROTO, NULL},
    {"4.1/subprotocol-not-offered", R101 RACC "Sec-WebSocket-Protocol: chat\r\n\r\n", 0, NULL,
     CIPC_EPROTO, "subprotocol"},
    {"4.1/subprotocol-other", R101 RACC "Sec-WebSocket-Protocol: c\r\n\r\n", 0, protos_ab,
     CIPC_EPROTO, "subprotocol"},
    {"4.1/subprotocol-list", R101 RACC "Sec-WebSocket-Protocol: a, b\r\n\r\n", 0, protos_ab,
     CIPC_EPROTO, "subprotocol"},
    {"7692-7.1.2.1/server_max_window_bits=7",
     R101 RACC "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7\r\n\r\n", 0,
     NULL, CIPC_EPROTO, "permessage-deflate"},
    {"7692-7.1.2.2/client_max_window_bits-without-value",
     R101 RACC "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n", 0,
     NULL, CIPC_EPROTO, "permessage-deflate"},
    {"7692-7.1.2.2/client_max_window_bits=16",
     R101 RACC "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=16\r\n\r\n", 0,
     NULL, CIPC_EPROTO, "permessage-deflate"},
    {"7692-7.1/unknown-parameter",
     R101 RACC "Sec-WebSocket-Extensions: permessage-deflate; foo\r\n\r\n",
     0, NULL, CIPC_EPROTO, "permessage-deflate"},
    {"7692-7.1/duplicate-parameter",
     R101 RACC
     "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
     "server_no_context_takeover\r\n\r\n",
     0, NULL, CIPC_EPROTO, "permessage-deflate"},
};
/* clang-format on */

static void sc_hs(rsrv *rs, raw_conn *c)
{
    const struct hs_row *r = rs->arg;
    read_request(rs, c);
    send_response(rs, c, r->response);
    wait_eof(rs, c, SCRIPT_MS);
}

static void test_handshake_rows(void)
{
    for (size_t i = 0; i < sizeof hs_rows / sizeof hs_rows[0]; i++) {
        const struct hs_row *r = &hs_rows[i];
        rsrv rs;
        rs_start(&rs, sc_hs, r);
        cipc_ws_opts o = {.no_compression = r->nocomp, .subprotocols = r->protos};
        cipc_wsc *c = NULL;
        int rc = connect_to(&rs, NULL, &o, &c);
        const char *msg = c ? cipc_wsc_errmsg(c) : "";
        if (rc != r->want || (r->msg && !strstr(msg, r->msg)))
            fprintf(stderr, "[%s] connect: %s, \"%s\"; want %s with \"%s\"\n", r->id,
                    cipc_err_name(rc), msg, cipc_err_name(r->want), r->msg ? r->msg : "");
        CHECK_INT(rc, ==, r->want);
        if (r->msg)
            CHECK(strstr(msg, r->msg) != NULL);
        cipc_wsc_free(c);
        rs_join(&rs);
        /* Nothing was sent after the refused handshake, and the socket was closed. */
        if (rs.nframes)
            show_frames(&rs, r->id);
        CHECK_INT(rs.nframes, ==, 0);
        CHECK(rs.eof);
        if (r->nocomp)
            CHECK(!strstr(rs.req, "Sec-WebSocket-Extensions"));
        rs_free(&rs);
        count("4.1 / 7692 handshake");
    }
}

/* 4.1: the request itself. */
static void sc_request(rsrv *rs, raw_conn *c)
{
    read_request(rs, c);
    send_101(rs, c, "Sec-WebSocket-Protocol: b\r\n");
    CHECK_INT(collect(rs, c, 1, SCRIPT_MS), ==, 1); /* the client's close: echoed, then */
    send_frame(c, 0x88, "\x03\xe8", 2, 0);          /* the server closes TCP (7.1.1) */
}

static void test_request(void)
{
    rsrv rs;
    rs_start(&rs, sc_request, NULL);
    cipc_ws_opts o = {.subprotocols = protos_ab};
    cipc_wsc *c = connect_ok(&rs, NULL, &o, "4.1/request");
    CHECK_STR(cipc_wsc_subprotocol(c), "b");
    CHECK_INT(cipc_wsc_close(c, 1000, NULL), ==, 0);
    CHECK_INT(cipc_wsc_close_code(c), ==, 1000);
    cipc_wsc_free(c);
    rs_join(&rs);
    char want[128];
    snprintf(want, sizeof want, "GET /conf?x=1 HTTP/1.1\r\n");
    CHECK(strncmp(rs.req, want, strlen(want)) == 0);
    snprintf(want, sizeof want, "\r\nHost: 127.0.0.1:%d\r\n", rs.port);
    CHECK(peer_contains_ci(rs.req, want));
    CHECK(peer_contains_ci(rs.req, "\r\nUpgrade: websocket\r\n"));
    CHECK(peer_contains_ci(rs.req, "\r\nConnection: Upgrade\r\n"));
    CHECK(peer_contains_ci(rs.req, "\r\nSec-WebSocket-Version: 13\r\n"));
    CHECK(strstr(rs.req, "\r\nSec-WebSocket-Protocol: a, b\r\n") != NULL);
    CHECK(peer_contains_ci(rs.req, "\r\nSec-WebSocket-Extensions: permessage-deflate"));
    /* The key: 16 random bytes in base64 (24 characters, "==" at the end). */
    CHECK_INT(strlen(rs.key), ==, 24);
    unsigned char raw[32];
    CHECK_INT(EVP_DecodeBlock(raw, (const unsigned char *)rs.key, 24), ==, 18);
    CHECK(!strcmp(rs.key + 22, "=="));
    rs_free(&rs);
    count("4.1 / 7692 handshake");
}

/* A server that never answers the handshake (or answers half of it). */
static void sc_silent(rsrv *rs, raw_conn *c)
{
    read_request(rs, c);
    if (rs->arg)
        raw_sends(c, (const char *)rs->arg);
    wait_eof(rs, c, SCRIPT_MS);
}

static void test_connect_timeout(void)
{
    static const char *const partial[] = {NULL, "HTTP/1.1 101 Switching Protocols\r\nUpgr"};
    for (int i = 0; i < 2; i++) {
        rsrv rs;
        rs_start(&rs, sc_silent, partial[i]);
        cipc_ws_client_opts co = {.connect_timeout_ms = 300};
        cipc_wsc *c = NULL;
        int64_t t0 = peer_now_ms();
        int rc = connect_to(&rs, &co, NULL, &c);
        int64_t took = peer_now_ms() - t0;
        fprintf(stderr, "4.1/connect-timeout%s: %s after %lld ms (%s)\n", i ? "-partial" : "",
                cipc_err_name(rc), (long long)took, c ? cipc_wsc_errmsg(c) : "");
        CHECK_INT(rc, ==, CIPC_ECONNTIMEOUT);
        CHECK_INT(took, >=, 290);
        CHECK_INT(took, <, 300 + 1500);
        cipc_wsc_free(c);
        rs_join(&rs);
        CHECK(rs.eof);
        CHECK_INT(rs.nframes, ==, 0);
        rs_free(&rs);
        count("4.1 / 7692 handshake");
    }
}

/* --- 5-10: frames from a misbehaving server ------------------------------------------- */

struct frame_row {
    const char *id;
    const char *frames; /* the bytes the server sends after its 101 */
    size_t n;
    int want;           /* the close code the client must send (masked), then close TCP */
    size_t max_message; /* the client's, 0: default */
    const char *ext;    /* Sec-WebSocket-Extensions of the 101, or NULL (then the client
                           does not offer compression either) */
};

#define B(s) s, sizeof(s) - 1
#define PMD  "permessage-deflate"

/* clang-format off */
static const struct frame_row frame_rows[] = {
    {"5.1/masked-server-frame", B("\x81\x85\x01\x02\x03\x04" "Ifomn"), 1002, 0, NULL},
    {"5.1/masked-server-ping", B("\x89\x80\x01\x02\x03\x04"), 1002, 0, NULL},
    {"5.2/rsv1-not-negotiated", B("\xc1\x01x"), 1002, 0, NULL},
    {"5.2/rsv2", B("\xa1\x01x"), 1002, 0, NULL},
    {"5.2/rsv3", B("\x91\x01x"), 1002, 0, NULL},
    {"5.2/reserved-opcode-3", B("\x83\x01x"), 1002, 0, NULL},
    {"5.2/reserved-opcode-7", B("\x87\x00"), 1002, 0, NULL},
    {"5.2/reserved-opcode-b", B("\x8b\x00"), 1002, 0, NULL},
    {"5.2/reserved-opcode-f", B("\x8f\x01x"), 1002, 0, NULL},
    {"5.2/len16-non-minimal", B("\x81\x7e\x00\x05Hello"), 1002, 0, NULL},
    {"5.2/len64-non-minimal", B("\x82\x7f\x00\x00\x00\x00\x00\x00\x00\x01x"), 1002, 0, NULL},
    {"5.2/len64-top-bit", B("\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x01x"), 1002, 0, NULL},
    {"5.4/continuation-without-start", B("\x80\x01x"), 1002, 0, NULL},
    {"5.4/text-while-fragmented", B("\x01\x01" "a" "\x81\x01" "b"), 1002, 0, NULL},
    {"5.4/fragmented-ping", B("\x09\x01x"), 1002, 0, NULL},
    {"5.5/ping-126", B("\x89\x7e\x00\x7e"), 1002, 0, NULL},
    {"5.5.1/close-1-byte", B("\x88\x01\x03"), 1002, 0, NULL},
    {"7.4.1/close-999", B("\x88\x02\x03\xe7"), 1002, 0, NULL},
    {"7.4.1/close-1005-on-wire", B("\x88\x02\x03\xed"), 1002, 0, NULL},
    {"7.4.1/close-1006-on-wire", B("\x88\x02\x03\xee"), 1002, 0, NULL},
    {"7.4.1/close-2999", B("\x88\x02\x0b\xb7"), 1002, 0, NULL},
    {"7.4.1/close-5000", B("\x88\x02\x13\x88"), 1002, 0, NULL},
    {"7.1.6/close-reason-invalid-utf8", B("\x88\x03\x03\xe8\xff"), 1007, 0, NULL},
    {"8.1/invalid-utf8", B("\x81\x02\xc0\xaf"), 1007, 0, NULL},
    {"8.1/surrogate", B("\x81\x03\xed\xa0\x80"), 1007, 0, NULL},
    {"8.1/truncated-at-end", B("\x81\x02" "a" "\xe2"), 1007, 0, NULL},
    {"8.1/fail-fast-first-fragment", B("\x01\x03ok\xff"), 1007, 0, NULL},
    {"8.1/fail-fast-inside-frame", B("\x81\x64ok\xff"), 1007, 0, NULL}, /* 100 announced, 3 sent */
    {"10.4/over-max-message-declared", B("\x82\x7e\x03\xe9"), 1009, 1000, NULL},
    {"10.4/declared-2GiB", B("\x82\x7f\x00\x00\x00\x00\x80\x00\x00\x00"), 1009, 0, NULL},
    {"10.4/fragments-over-max-message", B("\x02\x7e\x01\xf4"), 1009, 1000, NULL}, /* + runtime */
    {"7692-6.1/rsv1-on-continuation", B("\x01\x01" "a" "\xc0\x01" "b"), 1002, 0, PMD},
    {"7692-6.1/rsv1-on-ping", B("\xc9\x00"), 1002, 0, PMD},
    {"7692-6.1/rsv1-on-close", B("\xc8\x02\x03\xe8"), 1002, 0, PMD},
    {"7692-6.2/corrupt-deflate", B("\xc1\x04\xff\xff\xff\xff"), 1002, 0, PMD},
    /* "ok\xc0\xaf" compressed (a stored block): invalid UTF-8 once inflated. */
    {"7692-6.2/compressed-invalid-utf8", B("\xc1\x09\x00\x04\x00\xfb\xff" "ok\xc0\xaf"), 1007, 0,
     PMD},
};
/* clang-format on */

static void sc_frames(rsrv *rs, raw_conn *c)
{
    const struct frame_row *r = rs->arg;
    read_request(rs, c);
    char ext[256] = "";
    if (r->ext)
        snprintf(ext, sizeof ext, "Sec-WebSocket-Extensions: %s\r\n", r->ext);
    send_101(rs, c, ext);
    raw_send(c, r->frames, r->n);
    if (!strcmp(r->id, "10.4/fragments-over-max-message")) {
        /* 500 bytes, then a continuation announcing 501 more: 500 + 501 > 1000. */
        static char pad[500];
        memset(pad, 'x', sizeof pad);
        raw_send(c, pad, sizeof pad);
        raw_send(c, "\x80\x7e\x01\xf5", 4);
    }
    wait_eof(rs, c, SCRIPT_MS);
}

static void test_frame_rows(void)
{
    for (size_t i = 0; i < sizeof frame_rows / sizeof frame_rows[0]; i++) {
        const struct frame_row *r = &frame_rows[i];
        rsrv rs;
        rs_start(&rs, sc_frames, r);
        cipc_ws_opts o = {.max_message = r->max_message, .no_compression = !r->ext};
        cipc_wsc *c = connect_ok(&rs, NULL, &o, r->id);
        cipc_ws_msg m;
        int rc = cipc_wsc_recv(c, &m, WAIT_MS);
        if (rc != CIPC_ECLOSING)
            fprintf(stderr, "[%s] recv: %s\n", r->id, cipc_err_name(rc));
        CHECK_INT(rc, ==, CIPC_ECLOSING);
        /* No close frame came from the server (or an invalid one): 1006. */
        CHECK_INT(cipc_wsc_close_code(c), ==, 1006);
        char want[32];
        snprintf(want, sizeof want, "%d", r->want);
        if (!strstr(cipc_wsc_errmsg(c), want))
            fprintf(stderr, "[%s] errmsg \"%s\" without %s\n", r->id, cipc_wsc_errmsg(c), want);
        CHECK(strstr(cipc_wsc_errmsg(c), want) != NULL);
        cipc_wsc_free(c);
        rs_join(&rs);
        /* The client sent exactly one frame, its close with the code, masked; then it
         * closed TCP. */
        check_all_masked(&rs, r->id, r->ext != NULL);
        if (rs.nframes != 1 || !rs.eof)
            show_frames(&rs, r->id);
        CHECK_INT(rs.nframes, ==, 1);
        check_close_frame(&rs, 0, r->want, NULL, r->id);
        CHECK(rs.eof);
        rs_free(&rs);
        count(r->want == 1007   ? "8.1"
              : r->want == 1009 ? "10.4"
              : r->ext          ? "7692 frames"
                                : "5 / 7.4");
    }
}

/* 5.5.2 / 5.5.3: a server ping is answered with a pong of the same payload (masked),
 * also between the fragments of a message; an unsolicited pong is ignored. */
static void sc_ping(rsrv *rs, raw_conn *c)
{
    read_request(rs, c);
    send_101(rs, c, NULL);
    char big[125];
    for (int i = 0; i < 125; i++)
        big[i] = (char)(i * 3);
    send_frame(c, 0x89, "hello-ping", 10, 0);
    send_frame(c, 0x89, big, sizeof big, 0);
    send_frame(c, 0x89, "", 0, 0);
    send_frame(c, 0x8a, "unsolicited", 11, 0);
    send_frame(c, 0x01, "frag", 4, 0);
    send_frame(c, 0x89, "mid", 3, 0);
    send_frame(c, 0x80, "mented", 6, 0);
    CHECK_INT(collect(rs, c, 4, SCRIPT_MS), ==, 4);
    send_frame(c, 0x81, "after", 5, 0);
    /* The client closes: echo it, then close TCP. */
    CHECK_INT(collect(rs, c, 1, SCRIPT_MS), ==, 1);
    send_frame(c, 0x88, "\x03\xe8", 2, 0);
    rs->mark_ms = peer_now_ms();
}

static void test_ping(void)
{
    rsrv rs;
    rs_start(&rs, sc_ping, NULL);
    cipc_ws_opts o = {.no_compression = 1};
    cipc_wsc *c = connect_ok(&rs, NULL, &o, "5.5.2/ping");
    cipc_ws_msg m;
    CHECK_INT(cipc_wsc_recv(c, &m, WAIT_MS), ==, 0);
    CHECK_INT(m.type, ==, CIPC_WS_TEXT);
    CHECK_MEM(m.data, m.len, "fragmented");
    CHECK_INT(cipc_wsc_recv(c, &m, WAIT_MS), ==, 0);
    CHECK_MEM(m.data, m.len, "after");
    CHECK_INT(cipc_wsc_close(c, 1000, "done"), ==, 0);
    CHECK_INT(cipc_wsc_close_code(c), ==, 1000);
    cipc_wsc_free(c);
    rs_join(&rs);
    check_all_masked(&rs, "5.5.2/ping", 0);
    if (rs.nframes != 5)
        show_frames(&rs, "5.5.2/ping");
    CHECK_INT(rs.nframes, ==, 5);
    char big[125];
    for (int i = 0; i < 125; i++)
        big[i] = (char)(i * 3);
    CHECK_INT(rs.frames[0].b0, ==, 0x8a);
    CHECK_MEM(rs.frames[0].data, rs.frames[0].len, "hello-ping");
    CHECK_INT(rs.frames[1].b0, ==, 0x8a);
    CHECK_INT(rs.frames[1].len, ==, 125);
    CHECK(!memcmp(rs.frames[1].data, big, 125));
    CHECK_INT(rs.frames[2].b0, ==, 0x8a);
    CHECK_INT(rs.frames[2].len, ==, 0);
    CHECK_INT(rs.frames[3].b0, ==, 0x8a);
    CHECK_MEM(rs.frames[3].data, rs.frames[3].len, "mid");
    check_close_frame(&rs, 4, 1000, "done", "5.5.2/ping");
    rs_free(&rs);
    count("5 / 7.4");
}

/* 5.1 / 5.3: every frame of the client's is masked, with keys that change. */
static void sc_masks(rsrv *rs, raw_conn *c)
{
    read_request(rs, c);
    send_101(rs, c, NULL);
    CHECK_INT(collect(rs, c, 6, SCRIPT_MS), ==, 6);
    send_frame(c, 0x88, "\x03\xe8", 2, 0);
}

static void test_masks(void)
{
    rsrv rs;
    rs_start(&rs, sc_masks, NULL);
    cipc_ws_opts o = {.no_compression = 1};
    cipc_wsc *c = connect_ok(&rs, NULL, &o, "5.3/masks");
    size_t big = 70000;
    char *p = malloc(big);
    for (size_t i = 0; i < big; i++)
        p[i] = (char)(i % 251);
    CHECK_INT(cipc_wsc_send_text(c, "text"), ==, 0);
    CHECK_INT(cipc_wsc_send(c, CIPC_WS_BINARY, p, big), ==, 0);
    CHECK_INT(cipc_wsc_send(c, CIPC_WS_BINARY, p, 200), ==, 0);
    CHECK_INT(cipc_wsc_send(c, CIPC_WS_TEXT, "", 0), ==, 0);
    CHECK_INT(cipc_wsc_ping(c, "pi", 2), ==, 0);
    /* 5.5: no control payload over 125 bytes; 7.4.1/7.4.2: no close code that may not be
     * sent, no reason over 123 bytes. Refused without anything sent. */
    static const char p126[127] = "x";
    CHECK_INT(cipc_wsc_ping(c, p126, 126), ==, -EINVAL);
    static const int bad_codes[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad_codes / sizeof bad_codes[0]; i++)
        CHECK_INT(cipc_wsc_close(c, bad_codes[i], NULL), ==, -EINVAL);
    char r124[125];
    memset(r124, 'r', 124);
    r124[124] = '\0';
    CHECK_INT(cipc_wsc_close(c, 1000, r124), ==, -EINVAL);
    CHECK_INT(cipc_wsc_close(c, 1000, "\xc0\xaf"), ==, -EINVAL);
    CHECK_INT(cipc_wsc_close(c, 1001, "away"), ==, 0);
    CHECK_INT(cipc_wsc_close_code(c), ==, 1000);
    cipc_wsc_free(c);
    rs_join(&rs);
    check_all_masked(&rs, "5.3/masks", 0);
    CHECK_INT(rs.nframes, ==, 6);
    CHECK_INT(rs.frames[0].b0, ==, 0x81);
    CHECK_MEM(rs.frames[0].data, rs.frames[0].len, "text");
    CHECK_INT(rs.frames[1].b0, ==, 0x82);
    CHECK_INT(rs.frames[1].len, ==, big);
    CHECK(!memcmp(rs.frames[1].data, p, big));
    CHECK_INT(rs.frames[2].len, ==, 200);
    CHECK_INT(rs.frames[3].b0, ==, 0x81);
    CHECK_INT(rs.frames[3].len, ==, 0);
    CHECK_INT(rs.frames[4].b0, ==, 0x89);
    CHECK_MEM(rs.frames[4].data, rs.frames[4].len, "pi");
    check_close_frame(&rs, 5, 1001, "away", "5.3/masks");
    /* A fresh key per frame (5.3: unpredictable; at least not all the same). */
    int distinct = 0;
    for (int i = 1; i < rs.nframes; i++)
        distinct += memcmp(rs.frames[i].key, rs.frames[0].key, 4) != 0;
    CHECK_INT(distinct, >=, rs.nframes - 2);
    free(p);
    rs_free(&rs);
    count("5 / 7.4");
}

/* --- 7: the closing handshake ---------------------------------------------------------- */

struct close_case {
    const char *id;
    const char *before; /* frames sent in the same write, before the close */
    size_t nbefore;
    const char *payload; /* the server's close payload */
    size_t n;
    const char *after; /* frames sent in the same write, after the close (ignored) */
    size_t nafter;
    int close_tcp; /* 1: the server closes TCP after the client's echo; 0: it
                      leaves that to the client; 2: it closes at once, not reading;
                      3: it resets TCP (RST) after the client's echo */
    int code;      /* what cipc_wsc_close_code() says */
    const char *reason;
    int echo; /* the code the echo must carry (-1: empty close) */
};

/* clang-format off */
static const struct close_case close_cases[] = {
    {"7.1.2/server-close-1000-reason", B(""), B("\x03\xe8" "bye now"), B(""), 1, 1000, "bye now",
     1000},
    {"7.1.2/server-close-4000", B(""), B("\x0f\xa0"), B(""), 1, 4000, "", 4000},
    {"7.1.5/server-close-empty", B(""), B(""), B(""), 1, 1005, "", -1},
    {"7.1.1/server-keeps-tcp-open", B(""), B("\x03\xe9" "later"), B(""), 0, 1001, "later", 1001},
    {"7.1.1/server-closes-tcp-at-once", B(""), B("\x03\xe8" "gone"), B(""), 2, 1000, "gone", 1000},
    {"7.1.5/server-resets-after-handshake", B(""), B("\x03\xe8" "rst"), B(""), 3, 1000, "rst",
     1000},
    /* Messages before the close are delivered (recv returns them, then CIPC_ECLOSING). */
    {"7.1.2/messages-then-close", B("\x81\x03one" "\x82\x03two"), B("\x03\xe8"), B(""), 1, 1000, "",
     1000},
    /* 5.5.1: nothing after a close frame is read: no message, no pong, no error. */
    {"5.5.1/data-after-close-ignored", B(""), B("\x03\xe8"),
     B("\x81\x04late" "\x89\x01p" "\xff\xff"), 1, 1000,
     "", 1000},
};
/* clang-format on */

static void sc_close(rsrv *rs, raw_conn *c)
{
    const struct close_case *k = rs->arg;
    read_request(rs, c);
    send_101(rs, c, NULL);
    char buf[512];
    uint8_t h[14];
    size_t hl = cipc__ws_header_encode(h, CIPC__WS_OP_CLOSE, true, false, k->n, NULL);
    CHECK(k->nbefore + hl + k->n + k->nafter <= sizeof buf);
    memcpy(buf, k->before, k->nbefore);
    memcpy(buf + k->nbefore, h, hl);
    memcpy(buf + k->nbefore + hl, k->payload, k->n);
    memcpy(buf + k->nbefore + hl + k->n, k->after, k->nafter);
    raw_send(c, buf, k->nbefore + hl + k->n + k->nafter);
    rs->mark_ms = peer_now_ms();
    if (k->close_tcp == 2)
        return;
    /* The client's echo. */
    collect(rs, c, 1, SCRIPT_MS);
    if (k->close_tcp == 3) {
        struct linger lg = {1, 0}; /* close with a reset */
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    if (!k->close_tcp)
        wait_eof(rs, c, SCRIPT_MS); /* it is the client's turn to close TCP */
}

static void test_server_close(void)
{
    for (size_t i = 0; i < sizeof close_cases / sizeof close_cases[0]; i++) {
        const struct close_case *k = &close_cases[i];
        rsrv rs;
        rs_start(&rs, sc_close, k);
        cipc_ws_opts o = {.no_compression = 1, .close_timeout_ms = 300};
        cipc_wsc *c = connect_ok(&rs, NULL, &o, k->id);
        cipc_ws_msg m;
        if (k->nbefore) {
            CHECK_INT(cipc_wsc_recv(c, &m, WAIT_MS), ==, 0);
            CHECK_INT(m.type, ==, CIPC_WS_TEXT);
            CHECK_MEM(m.data, m.len, "one");
            CHECK_INT(cipc_wsc_recv(c, &m, WAIT_MS), ==, 0);
            CHECK_INT(m.type, ==, CIPC_WS_BINARY);
            CHECK_MEM(m.data, m.len, "two");
        }
        CHECK_INT(cipc_wsc_recv(c, &m, WAIT_MS), ==, CIPC_ECLOSING);
        if (*cipc_wsc_errmsg(c))
            fprintf(stderr, "[%s] errmsg \"%s\"\n", k->id, cipc_wsc_errmsg(c));
        if (k->close_tcp != 2) {
            /* A clean close, even with a reset after both close frames (RFC 6455 7.1.5):
             * no error. */
            CHECK_STR(cipc_wsc_errmsg(c), ""); /* a clean close: no error */
        }
        int64_t ended = peer_now_ms();
        CHECK_INT(cipc_wsc_close_code(c), ==, k->code);
        CHECK_STR(cipc_wsc_close_reason(c), k->reason);
        CHECK_INT(cipc_wsc_send_text(c, "late"), ==, CIPC_ECLOSING);
        /* Closing again after the handshake completed is harmless. */
        CHECK_INT(cipc_wsc_close(c, 1000, NULL), ==, 0);
        cipc_wsc_free(c);
        rs_join(&rs);
        if (k->close_tcp == 2) {
            rs_free(&rs);
            count("5 / 7.4");
            continue;
        }
        check_all_masked(&rs, k->id, 0);
        CHECK_INT(rs.nframes, ==, 1);
        check_close_frame(&rs, 0, k->echo, k->echo < 0 ? NULL : "", k->id);
        if (!k->close_tcp) {
            /* RFC 6455 7.1.1: the client waits for the server to close TCP, and closes it
             * itself after a while (close_timeout_ms here). */
            CHECK(rs.eof);
            long long waited = (long long)(rs.eof_ms - rs.mark_ms);
            fprintf(stderr, "%s: the client closed TCP %lld ms after the server's close\n", k->id,
                    waited);
            CHECK_INT(waited, >=, 250);
            CHECK_INT(waited, <, 300 + 1500);
            CHECK_INT(ended - rs.mark_ms, <, 300 + 1500);
        }
        rs_free(&rs);
        count("5 / 7.4");
    }
}

/* 7.1.3: a server that never completes the closing handshake. */
static void sc_no_close_echo(rsrv *rs, raw_conn *c)
{
    read_request(rs, c);
    send_101(rs, c, NULL);
    wait_eof(rs, c, SCRIPT_MS); /* the client's close arrives; never answered */
}

static void test_close_timeout(void)
{
    rsrv rs;
    rs_start(&rs, sc_no_close_echo, NULL);
    cipc_ws_opts o = {.no_compression = 1, .close_timeout_ms = 300};
    cipc_wsc *c = connect_ok(&rs, NULL, &o, "7.1.3/close-timeout");
    int64_t t0 = peer_now_ms();
    int rc = cipc_wsc_close(c, 1000, "bye");
    int64_t took = peer_now_ms() - t0;
    fprintf(stderr, "7.1.3/close-timeout: cipc_wsc_close returned %s after %lld ms\n",
            cipc_err_name(rc), (long long)took);
    CHECK_INT(took, >=, 250);
    CHECK_INT(took, <, 300 + 1500);
    /* The connection ended without the peer's close frame. */
    CHECK_INT(cipc_wsc_close_code(c), ==, 1006);
    /* Without the peer's close frame, cipc_wsc_close() reports the timeout. */
    CHECK_INT(rc, ==, CIPC_ETIMEOUT);
    cipc_wsc_free(c);
    rs_join(&rs);
    check_all_masked(&rs, "7.1.3/close-timeout", 0);
    CHECK_INT(rs.nframes, ==, 1);
    check_close_frame(&rs, 0, 1000, "bye", "7.1.3/close-timeout");
    CHECK(rs.eof);
    rs_free(&rs);
    count("5 / 7.4");
}

/* Valid but unusual deliveries: the client must read each message whole. */
struct deliver_case {
    const char *id;
    const char *response; /* the whole 101 ("@ACCEPT@" as above) */
    const char *frames;   /* sent after it */
    size_t n;
    int together; /* 101 and frames in one write */
    int bytewise; /* the frames one byte per write */
    size_t max_message;
    const char *want; /* the message (text) the client receives */
    size_t want_len;
};

/* clang-format off */
static const struct deliver_case deliver_cases[] = {
    {"4.1/101-and-first-frame-together", R101 RACC "\r\n", B("\x81\x05Hello"), 1, 0, 0,
     B("Hello")},
    {"4.1/accept-with-whitespace-and-case",
     "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\n"
     "sec-websocket-accept:   @ACCEPT@  \r\n\r\n",
     B("\x81\x02ok"), 0, 0, 0, B("ok")},
    {"5.4/fragments-byte-by-byte", R101 RACC "\r\n",
     B("\x01\x02He" "\x89\x01p" "\x00\x02ll" "\x8a\x00" "\x80\x01o"), 0, 1, 0, B("Hello")},
    {"5.4/empty-fragments", R101 RACC "\r\n", B("\x01\x00" "\x00\x03" "abc" "\x00\x00" "\x80\x00"),
     0, 0, 0, B("abc")},
    {"8.1/utf8-split-inside-character", R101 RACC "\r\n",
     B("\x01\x01\xf0" "\x00\x02\x9f\x98" "\x80\x01\x80"), 0, 1, 0, B("\xf0\x9f\x98\x80")},
    {"10.4/at-max-message", R101 RACC "\r\n", B("\x01\x05" "12345" "\x80\x05" "67890"), 0, 0, 10,
     B("1234567890")},
    {"5.6/len16-126", R101 RACC "\r\n",
     B("\x81\x7e\x00\x7e"
       "012345678901234567890123456789012345678901234567890123456789"
       "012345678901234567890123456789012345678901234567890123456789"
       "012345"),
     0, 1, 0,
     B("012345678901234567890123456789012345678901234567890123456789"
       "012345678901234567890123456789012345678901234567890123456789"
       "012345")},
};
/* clang-format on */

static void sc_deliver(rsrv *rs, raw_conn *c)
{
    const struct deliver_case *k = rs->arg;
    read_request(rs, c);
    if (k->together) {
        char t[4096];
        snprintf(t, sizeof t, "%s%.*s", k->response, (int)k->n, k->frames);
        CHECK(strlen(t) == strlen(k->response) + k->n); /* no NUL in these frames */
        send_response(rs, c, t);
    } else {
        send_response(rs, c, k->response);
        for (size_t i = 0; i < k->n; i += k->bytewise ? 1 : k->n)
            raw_send(c, k->frames + i, k->bytewise ? 1 : k->n);
    }
    /* Its pongs, then its close: echoed, and TCP closed. */
    for (;;) {
        int before = rs->nframes;
        if (collect(rs, c, 1, SCRIPT_MS) != 1)
            break;
        if (rs->frames[before].b0 == 0x88) {
            send_frame(c, 0x88, "\x03\xe8", 2, 0);
            break;
        }
    }
}

static void test_deliveries(void)
{
    for (size_t i = 0; i < sizeof deliver_cases / sizeof deliver_cases[0]; i++) {
        const struct deliver_case *k = &deliver_cases[i];
        rsrv rs;
        rs_start(&rs, sc_deliver, k);
        cipc_ws_opts o = {.no_compression = 1, .max_message = k->max_message};
        cipc_wsc *c = connect_ok(&rs, NULL, &o, k->id);
        cipc_ws_msg m;
        int rc = cipc_wsc_recv(c, &m, WAIT_MS);
        if (rc != 0)
            fprintf(stderr, "[%s] recv: %s (%s)\n", k->id, cipc_err_name(rc), cipc_wsc_errmsg(c));
        CHECK_INT(rc, ==, 0);
        CHECK_INT(m.type, ==, CIPC_WS_TEXT);
        CHECK_INT(m.len, ==, k->want_len);
        CHECK(!memcmp(m.data, k->want, m.len));
        CHECK_INT(cipc_wsc_close(c, 1000, NULL), ==, 0);
        CHECK_INT(cipc_wsc_close_code(c), ==, 1000);
        cipc_wsc_free(c);
        rs_join(&rs);
        check_all_masked(&rs, k->id, 0);
        CHECK(rs.nframes >= 1);
        check_close_frame(&rs, rs.nframes - 1, 1000, "", k->id);
        rs_free(&rs);
        count(k->id[0] == '4'   ? "4.1 / 7692 handshake"
              : k->id[0] == '8' ? "8.1"
              : k->id[0] == '1' ? "10.4"
                                : "5 / 7.4");
    }
}

/* 7.1.3 / 7.1.4: both ends close at the same time: neither echoes the other's close (each
 * has sent one), and the client ends with the server's code. */
static void sc_simultaneous(rsrv *rs, raw_conn *c)
{
    read_request(rs, c);
    send_101(rs, c, NULL);
    send_frame(c, 0x88,
               "\x03\xe9"
               "srv",
               5, 0);
    CHECK_INT(collect(rs, c, 1, SCRIPT_MS), ==, 1); /* the client's own close */
    /* then close TCP, as a server does once both closes are seen */
}

static void test_simultaneous_close(void)
{
    rsrv rs;
    rs_start(&rs, sc_simultaneous, NULL);
    cipc_ws_opts o = {.no_compression = 1, .close_timeout_ms = 2000};
    cipc_wsc *c = connect_ok(&rs, NULL, &o, "7.1.4/simultaneous-close");
    /* The server's close is on its way (or here) already; the client closes too. */
    int rc = cipc_wsc_close(c, 1000, "cli");
    CHECK_INT(rc, ==, 0);
    CHECK_INT(cipc_wsc_close_code(c), ==, 1001);
    CHECK_STR(cipc_wsc_close_reason(c), "srv");
    cipc_wsc_free(c);
    rs_join(&rs);
    check_all_masked(&rs, "7.1.4/simultaneous-close", 0);
    CHECK_INT(rs.nframes, ==, 1);
    /* Either the client's own close (it called close first) or the echo of the server's
     * code: one close frame, nothing after it. */
    CHECK_INT(rs.frames[0].b0, ==, 0x88);
    rs_free(&rs);
    count("5 / 7.4");
}

/* --- RFC 7692: the client's side of permessage-deflate ----------------------------------- */

/* Decompress what the client sent: raw inflate with the window the response allowed it,
 * the 00 00 FF FF tail restored. */
static uint8_t *inflate_msg(z_stream *z, const uint8_t *p, size_t n, size_t *outlen)
{
    uint8_t *in = malloc(n + 4), *out = NULL;
    size_t len = 0, cap = 0;
    memcpy(in, p, n);
    memcpy(in + n, "\x00\x00\xff\xff", 4);
    z->next_in = in;
    z->avail_in = (uInt)(n + 4);
    for (;;) {
        if (cap - len < 65536) {
            cap = cap ? cap * 2 : 131072;
            out = realloc(out, cap);
            CHECK(out != NULL);
        }
        z->next_out = out + len;
        z->avail_out = (uInt)(cap - len);
        int zr = inflate(z, Z_SYNC_FLUSH);
        len = cap - z->avail_out;
        if (zr != Z_OK && zr != Z_BUF_ERROR)
            fprintf(stderr, "inflating the client's message: %s\n", z->msg ? z->msg : "?");
        CHECK(zr == Z_OK || zr == Z_BUF_ERROR);
        if (z->avail_in == 0 && z->avail_out != 0)
            break;
    }
    free(in);
    *outlen = len;
    return out;
}

/* n pseudo-random letters, then (rep) the same again: the only repeats are n bytes
 * apart. */
static char *rand_text(size_t n, int rep, uint32_t seed)
{
    size_t total = rep ? 2 * n : n;
    char *m = malloc(total + 1);
    uint32_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        m[i] = (char)('A' + (x >> 24) % 58);
        if (m[i] > 'Z' && m[i] < 'a')
            m[i] = '_';
        if (rep)
            m[n + i] = m[i];
    }
    m[total] = '\0';
    return m;
}

/* The server agrees to "server_no_context_takeover; client_max_window_bits=10", reads
 * five messages (inflating with a 10-bit window and the client's context kept, as the
 * response allows), then sends two compressed messages of its own (each from a fresh
 * compressor, as server_no_context_takeover says) and one in two fragments. */
static void sc_pmd(rsrv *rs, raw_conn *c)
{
    read_request(rs, c);
    send_101(rs, c,
             "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
             "client_max_window_bits=10\r\n");
    CHECK_INT(collect(rs, c, 5, SCRIPT_MS), ==, 5);
    char *m = rand_text(2000, 1, 12345);
    for (int k = 0; k < 3; k++) {
        uint8_t out[8192];
        z_stream z;
        memset(&z, 0, sizeof z);
        CHECK_INT(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), ==, Z_OK);
        const char *msg = k == 2 ? "a message in two compressed fragments" : m;
        z.next_in = (Bytef *)(uintptr_t)msg;
        z.avail_in = (uInt)strlen(msg);
        z.next_out = out;
        z.avail_out = sizeof out;
        CHECK_INT(deflate(&z, Z_SYNC_FLUSH), ==, Z_OK);
        size_t n = sizeof out - z.avail_out - 4;
        deflateEnd(&z);
        if (k < 2) {
            send_frame(c, 0xc1, out, n, 0);
        } else {
            send_frame(c, 0x41, out, n / 2, 0);
            send_frame(c, 0x80, out + n / 2, n - n / 2, 0);
        }
    }
    free(m);
    CHECK_INT(collect(rs, c, 1, SCRIPT_MS), ==, 1); /* the close */
    send_frame(c, 0x88, "\x03\xe8", 2, 0);
}

static void test_pmd_client(void)
{
    rsrv rs;
    rs_start(&rs, sc_pmd, NULL);
    cipc_wsc *c = connect_ok(&rs, NULL, NULL, "7692/client");
    /* m: its only repeats are 2000 bytes apart, beyond the 10-bit window the client was
     * given; r: 500 bytes without repeats, sent twice (the second can refer to the first
     * within the window, the context being kept). */
    char *m = rand_text(2000, 1, 12345), *r = rand_text(500, 0, 777);
    const char *sent[5] = {m, m, r, r, "short"};
    for (int k = 0; k < 5; k++)
        CHECK_INT(cipc_wsc_send_text(c, sent[k]), ==, 0);
    cipc_ws_msg msg;
    for (int k = 0; k < 2; k++) {
        CHECK_INT(cipc_wsc_recv(c, &msg, WAIT_MS), ==, 0);
        CHECK_INT(msg.type, ==, CIPC_WS_TEXT);
        CHECK_INT(msg.len, ==, strlen(m));
        CHECK(!memcmp(msg.data, m, msg.len));
    }
    CHECK_INT(cipc_wsc_recv(c, &msg, WAIT_MS), ==, 0);
    CHECK_MEM(msg.data, msg.len, "a message in two compressed fragments");
    CHECK_INT(cipc_wsc_close(c, 1000, NULL), ==, 0);
    CHECK_INT(cipc_wsc_close_code(c), ==, 1000);
    cipc_wsc_free(c);
    rs_join(&rs);
    /* The offer (RFC 7692 7.1): permessage-deflate with client_max_window_bits. */
    CHECK(strstr(rs.req,
                 "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n") !=
          NULL);
    check_all_masked(&rs, "7692/client", 1);
    CHECK_INT(rs.nframes, ==, 6);
    /* The compressed messages inflate, with the client's 10-bit window (a reference
     * further back fails) and its context kept from one message to the next, to what was
     * sent. */
    z_stream z;
    memset(&z, 0, sizeof z);
    CHECK_INT(inflateInit2(&z, -10), ==, Z_OK);
    for (int k = 0; k < 5; k++) {
        const struct cframe *f = &rs.frames[k];
        const char *want = sent[k];
        CHECK_INT(f->b0 & 0x0f, ==, 1);
        CHECK(f->b0 & 0x80);
        if (k < 4)
            CHECK(f->b0 & 0x40); /* compressed (at least compress_min bytes) */
        size_t n = f->len;
        uint8_t *plain = NULL;
        const uint8_t *got = f->data;
        if (f->b0 & 0x40) {
            plain = inflate_msg(&z, f->data, f->len, &n);
            got = plain;
        }
        if (k < 4)
            fprintf(stderr, "7692/client: message %d, %zu bytes compressed to %zu\n", k, n, f->len);
        CHECK_INT(n, ==, strlen(want));
        CHECK(!memcmp(got, want, n));
        free(plain);
    }
    /* With context takeover, the second copy of r refers back to the first. */
    CHECK_INT(rs.frames[3].len, <, rs.frames[2].len / 4);
    inflateEnd(&z);
    check_close_frame(&rs, 5, 1000, NULL, "7692/client");
    free(m);
    free(r);
    rs_free(&rs);
    count("7692 frames");
}

/* 10.4 + RFC 7692: a compression bomb (50 MiB of zeros) at a client with max_message
 * 1000 is failed with 1009 quickly, and the client (in this process) never holds it. */
struct bomb {
    uint8_t *frame;
    size_t n;
};

static void sc_bomb(rsrv *rs, raw_conn *c)
{
    const struct bomb *b = rs->arg;
    read_request(rs, c);
    send_101(rs, c, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
    int rc = raw_send(c, b->frame, b->n);
    CHECK(rc == 0 || rc == -EPIPE || rc == -ECONNRESET);
    wait_eof(rs, c, SCRIPT_MS);
}

static void test_client_bomb(void)
{
    const size_t total = 50u << 20;
    z_stream z;
    memset(&z, 0, sizeof z);
    CHECK_INT(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), ==, Z_OK);
    static const uint8_t zeros[65536];
    size_t cap = 1 << 20, len = 14;
    uint8_t *buf = malloc(cap);
    for (size_t done = 0; done < total; done += sizeof zeros) {
        z.next_in = (Bytef *)(uintptr_t)zeros;
        z.avail_in = sizeof zeros;
        int last = done + sizeof zeros >= total;
        do {
            z.next_out = buf + len;
            z.avail_out = (uInt)(cap - len);
            CHECK(deflate(&z, last ? Z_SYNC_FLUSH : Z_NO_FLUSH) != Z_STREAM_ERROR);
            len = cap - z.avail_out;
            CHECK(z.avail_out != 0);
        } while (z.avail_in != 0);
    }
    deflateEnd(&z);
    size_t clen = len - 14 - 4; /* without the 00 00 FF FF tail */
    uint8_t h[14];
    size_t hl = cipc__ws_header_encode(h, CIPC__WS_OP_BINARY, true, true, clen, NULL);
    memmove(buf + hl, buf + 14, clen);
    memcpy(buf, h, hl);
    struct bomb b = {buf, hl + clen};

    rsrv rs;
    rs_start(&rs, sc_bomb, &b);
    cipc_ws_opts o = {.max_message = 1000};
    cipc_wsc *c = connect_ok(&rs, NULL, &o, "7692/client-compression-bomb");
    int reset = peer_reset_peak_rss();
    long before = reset == 0 ? peer_peak_rss_kb() : peer_rss_kb();
    int64_t t0 = peer_now_ms();
    cipc_ws_msg m;
    CHECK_INT(cipc_wsc_recv(c, &m, WAIT_MS), ==, CIPC_ECLOSING);
    int64_t took = peer_now_ms() - t0;
    long after = reset == 0 ? peer_peak_rss_kb() : peer_rss_kb();
    fprintf(stderr,
            "7692/client-compression-bomb: %zu bytes; closed after %lld ms (%s); RSS +%ld KiB\n",
            b.n, (long long)took, cipc_wsc_errmsg(c), after - before);
    CHECK(strstr(cipc_wsc_errmsg(c), "1009") != NULL);
    CHECK_INT(took, <, 3000);
    CHECK_INT(after - before, <, 8 * 1024);
    cipc_wsc_free(c);
    rs_join(&rs);
    check_all_masked(&rs, "7692/client-compression-bomb", 1);
    CHECK_INT(rs.nframes, ==, 1);
    check_close_frame(&rs, 0, 1009, NULL, "7692/client-compression-bomb");
    CHECK(rs.eof);
    rs_free(&rs);
    free(buf);
    count("10.4");
}

/* A server that agrees to client_no_context_takeover: the client resets its compressor
 * after each message, so each inflates on its own. */
static void sc_pmd_cnct(rsrv *rs, raw_conn *c)
{
    read_request(rs, c);
    send_101(rs, c, "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n");
    CHECK_INT(collect(rs, c, 3, SCRIPT_MS), ==, 3);
    send_frame(c, 0x88, "\x03\xe8", 2, 0);
}

static void test_pmd_client_no_context(void)
{
    rsrv rs;
    rs_start(&rs, sc_pmd_cnct, NULL);
    cipc_wsc *c = connect_ok(&rs, NULL, NULL, "7692/client-no-context-takeover");
    char *m = rand_text(500, 0, 99);
    CHECK_INT(cipc_wsc_send_text(c, m), ==, 0);
    CHECK_INT(cipc_wsc_send_text(c, m), ==, 0);
    CHECK_INT(cipc_wsc_close(c, 1000, NULL), ==, 0);
    cipc_wsc_free(c);
    rs_join(&rs);
    check_all_masked(&rs, "7692/client-no-context-takeover", 1);
    CHECK_INT(rs.nframes, ==, 3);
    for (int k = 0; k < 2; k++) {
        z_stream z; /* a fresh inflater per message */
        memset(&z, 0, sizeof z);
        CHECK_INT(inflateInit2(&z, -15), ==, Z_OK);
        CHECK_INT(rs.frames[k].b0, ==, 0xc1);
        size_t n;
        uint8_t *plain = inflate_msg(&z, rs.frames[k].data, rs.frames[k].len, &n);
        CHECK_INT(n, ==, strlen(m));
        CHECK(!memcmp(plain, m, n));
        free(plain);
        inflateEnd(&z);
    }
    check_close_frame(&rs, 2, 1000, NULL, "7692/client-no-context-takeover");
    free(m);
    rs_free(&rs);
    count("7692 frames");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    int64_t t0 = peer_now_ms();
    RUN(test_handshake_rows);
    RUN(test_request);
    RUN(test_connect_timeout);
    RUN(test_frame_rows);
    RUN(test_deliveries);
    RUN(test_ping);
    RUN(test_masks);
    RUN(test_server_close);
    RUN(test_close_timeout);
    RUN(test_simultaneous_close);
    RUN(test_pmd_client);
    RUN(test_pmd_client_no_context);
    RUN(test_client_bomb);
    int total = 0;
    for (int i = 0; i < ntallies; i++)
        total += tallies[i].n;
    fprintf(stderr, "conformance (client side): %d cases in %lld ms\n", total,
            (long long)(peer_now_ms() - t0));
    for (int i = 0; i < ntallies; i++)
        fprintf(stderr, "  %-22s %d\n", tallies[i].section, tallies[i].n);
    return 0;
}
