/* Proves that the WebSocket engine applies every RFC 6455 framing, fragmentation, masking,
 * limit, UTF-8 and closing rule with the expected events, close codes and automatic
 * replies, gives the same events however its input is split (at every offset, in three,
 * byte by byte), fails fast on bad text and oversized declared lengths, ignores input
 * after the end, refuses to send after its close, and that what it sends parses back. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ws/deflate.h"
#include "ws/frame.h"
#include "ws/proto.h"

static char current[256];
static size_t current_len;

static void on_abort(int sig)
{
    (void)sig;
    ssize_t w = write(STDERR_FILENO, current, current_len);
    (void)w;
}

static void set_current(const char *what, const char *name)
{
    current_len = (size_t)snprintf(current, sizeof current, "while testing %s: %s\n", what, name);
    if (current_len >= sizeof current)
        current_len = sizeof current - 1;
}

/* ---- Building input ----------------------------------------------------------------- */

enum { END = 0, FR, RAW };

/* One frame of input (or raw bytes). Frames are masked when they go to a server, unless
 * `flip`; `form` forces the 16- or 64-bit length form; `decl` declares `dlen` as the
 * length instead of the payload's (the input then ends early or runs into the next
 * frame); `rsv` is ORed into the first byte. */
struct fr {
    int kind;
    unsigned op;
    int nofin, rsv, flip, form, decl;
    uint64_t dlen;
    const char *pl;
    size_t pln;
};

/* clang-format off */
#define P(s)            .pl = s, .pln = sizeof(s) - 1
#define OP(o, s, ...)   {.kind = FR, .op = o, P(s), __VA_ARGS__}
#define TXT(s, ...)     OP(1, s, __VA_ARGS__)
#define BIN(s, ...)     OP(2, s, __VA_ARGS__)
#define CONT(s, ...)    OP(0, s, __VA_ARGS__)
#define TXTF(s, ...)    OP(1, s, .nofin = 1, __VA_ARGS__)
#define BINF(s, ...)    OP(2, s, .nofin = 1, __VA_ARGS__)
#define CONTF(s, ...)   OP(0, s, .nofin = 1, __VA_ARGS__)
#define CLOSE(s, ...)   OP(8, s, __VA_ARGS__)
#define PING(s, ...)    OP(9, s, __VA_ARGS__)
#define PONG(s, ...)    OP(10, s, __VA_ARGS__)
#define RAWB(s)         {.kind = RAW, P(s)}
/* clang-format on */

#define S25  "abcdefghijklmnopqrstuvwxy"
#define S125 S25 S25 S25 S25 S25
#define S123 "ABCDEFGHIJKLMNOPQRSTUVW" S25 S25 S25 S25

static void build(struct cipc_buf *b, const struct fr *f, size_t nf, bool to_server)
{
    for (size_t i = 0; i < nf && f[i].kind != END; i++) {
        const struct fr *x = &f[i];
        if (x->kind == RAW) {
            CHECK_INT(cipc_buf_append(b, x->pl, x->pln), ==, 0);
            continue;
        }
        uint8_t h[CIPC__WS_MAX_HEADER];
        size_t hl = 0;
        bool masked = to_server != (bool)x->flip;
        uint64_t len = x->decl ? x->dlen : x->pln;
        uint8_t mbit = masked ? 0x80 : 0;
        h[hl++] = (uint8_t)((x->nofin ? 0 : 0x80) | x->rsv | x->op);
        if (x->form == 64 || (x->form == 0 && len > 0xffff)) {
            h[hl++] = mbit | 127;
            for (int k = 0; k < 8; k++)
                h[hl++] = (uint8_t)(len >> (56 - 8 * k));
        } else if (x->form == 16 || (x->form == 0 && len > 125)) {
            h[hl++] = mbit | 126;
            h[hl++] = (uint8_t)(len >> 8);
            h[hl++] = (uint8_t)len;
        } else {
            h[hl++] = (uint8_t)(mbit | len);
        }
        uint8_t key[4] = {(uint8_t)(0x37 + i), 0xfa, (uint8_t)(0x21 * i), 0x3d};
        if (masked) {
            memcpy(h + hl, key, 4);
            hl += 4;
        }
        CHECK_INT(cipc_buf_append(b, h, hl), ==, 0);
        size_t at = b->len;
        CHECK_INT(cipc_buf_append(b, x->pl, x->pln), ==, 0);
        if (masked)
            cipc__ws_mask((uint8_t *)b->data + at, x->pln, key, 0);
    }
}

/* ---- Describing events and output --------------------------------------------------- */

static void esc(struct cipc_buf *b, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '|')
            CHECK_INT(cipc_buf_append(b, &c, 1), ==, 0);
        else
            CHECK_INT(cipc_buf_printf(b, "\\x%02x", c), ==, 0);
    }
}

static void sep(struct cipc_buf *b)
{
    if (b->len)
        CHECK_INT(cipc_buf_append(b, "|", 1), ==, 0);
}

/* "T:<data>", "B:<data>", "PING:<data>", "PONG:<data>", "CLOSE:<code>:<reason>",
 * "ERR:<code>". */
static void describe(struct cipc_buf *b, const struct cipc__ws_event *ev)
{
    CHECK(ev->data != NULL && ev->reason != NULL);
    sep(b);
    switch (ev->type) {
    case CIPC__WS_EV_MESSAGE:
        CHECK(ev->opcode == CIPC__WS_OP_TEXT || ev->opcode == CIPC__WS_OP_BINARY);
        if (ev->opcode == CIPC__WS_OP_TEXT)
            CHECK(cipc__utf8_valid(ev->data, ev->len));
        cipc_buf_append_str(b, ev->opcode == CIPC__WS_OP_TEXT ? "T:" : "B:");
        esc(b, ev->data, ev->len);
        break;
    case CIPC__WS_EV_PING:
    case CIPC__WS_EV_PONG:
        CHECK(ev->len <= 125);
        cipc_buf_append_str(b, ev->type == CIPC__WS_EV_PING ? "PING:" : "PONG:");
        esc(b, ev->data, ev->len);
        break;
    case CIPC__WS_EV_CLOSE:
        cipc_buf_printf(b, "CLOSE:%u:", (unsigned)ev->code);
        esc(b, (const uint8_t *)ev->reason, ev->reason_len);
        break;
    case CIPC__WS_EV_ERROR:
        CHECK(ev->reason_len > 0 && ev->reason_len == strlen(ev->reason));
        cipc_buf_printf(b, "ERR:%u", (unsigned)ev->code);
        break;
    default:
        CHECK(!"unexpected event type");
    }
}

/* Decode the frames an engine queued: masked exactly when the engine is a client, FIN
 * set, no RSV bits unless `rsv1_ok`. "CLOSE" for an empty close, "CLOSE:<code>" (the
 * reason is checked for UTF-8 and length but not shown), the rest as describe(). */
static void describe_out(struct cipc_buf *b, const struct cipc_buf *out, bool client)
{
    size_t pos = 0;
    while (pos < out->len) {
        struct cipc__ws_header h;
        int hl = cipc__ws_header_decode((const uint8_t *)out->data + pos, out->len - pos, &h);
        CHECK_INT(hl, >, 0);
        CHECK_INT(h.len, <=, out->len - pos - (size_t)hl);
        CHECK_INT(h.masked, ==, client);
        CHECK(h.fin && !h.rsv1 && !h.rsv2 && !h.rsv3);
        uint8_t *pl = malloc(h.len + 1);
        CHECK(pl != NULL);
        memcpy(pl, out->data + pos + hl, h.len);
        if (h.masked)
            cipc__ws_mask(pl, h.len, h.key, 0);
        sep(b);
        switch (h.opcode) {
        case CIPC__WS_OP_TEXT:
        case CIPC__WS_OP_BINARY:
            cipc_buf_append_str(b, h.opcode == CIPC__WS_OP_TEXT ? "T:" : "B:");
            esc(b, pl, h.len);
            break;
        case CIPC__WS_OP_PING:
        case CIPC__WS_OP_PONG:
            cipc_buf_append_str(b, h.opcode == CIPC__WS_OP_PING ? "PING:" : "PONG:");
            esc(b, pl, h.len);
            break;
        case CIPC__WS_OP_CLOSE:
            if (h.len == 0) {
                cipc_buf_append_str(b, "CLOSE");
            } else {
                uint16_t code;
                const char *reason;
                size_t rlen;
                CHECK_INT(cipc__ws_close_parse(pl, h.len, &code, &reason, &rlen), ==, 0);
                CHECK_INT(rlen, <=, 123);
                cipc_buf_printf(b, "CLOSE:%u", (unsigned)code);
            }
            break;
        default:
            CHECK(!"unexpected opcode in out");
        }
        free(pl);
        pos += (size_t)hl + h.len;
    }
}

/* ---- Running the engine ------------------------------------------------------------- */

struct result {
    struct cipc_buf ev, out;
    struct cipc_buf reasons; /* of ERROR events, compared between splits only */
    int state;
};

static void result_free(struct result *r)
{
    cipc_buf_free(&r->ev);
    cipc_buf_free(&r->out);
    cipc_buf_free(&r->reasons);
}

/* Feed in[0..len) cut at cuts[0..ncuts) (each piece in its own exact-size buffer, handling
 * every event until the piece is used up), checking the feed contract on the way. */
static void run_engine(struct cipc__ws_proto *p, const uint8_t *in, size_t len, const size_t *cuts,
                       size_t ncuts, struct result *r)
{
    bool finished = false;
    size_t from = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        size_t n = to - from;
        uint8_t *piece = malloc(n ? n : 1);
        CHECK(piece != NULL);
        if (n)
            memcpy(piece, in + from, n);
        size_t off = 0;
        for (;;) {
            struct cipc__ws_event ev;
            size_t used = (size_t)-1;
            CHECK_INT(cipc__ws_proto_feed(p, piece + off, n - off, &used, &ev), ==, 0);
            CHECK_INT(used, <=, n - off);
            if (ev.type == CIPC__WS_EV_NONE) {
                CHECK_INT(used, ==, n - off);
                break;
            }
            CHECK(!finished); /* nothing after the end */
            CHECK_INT(used, >, 0);
            describe(&r->ev, &ev);
            if (ev.type == CIPC__WS_EV_ERROR)
                cipc_buf_append_str(&r->reasons, ev.reason);
            if (ev.type == CIPC__WS_EV_ERROR ||
                (ev.type == CIPC__WS_EV_CLOSE && cipc__ws_proto_state(p) == CIPC__WS_CLOSED)) {
                finished = true;
                CHECK_INT(used, ==, n - off);
                CHECK(cipc__ws_proto_should_close_tcp(p));
            }
            off += used;
        }
        free(piece);
        from = to;
    }
    describe_out(&r->out, &p->out, !p->is_server);
    r->state = cipc__ws_proto_state(p);
}

/* When set, every run() gets fresh permessage-deflate contexts with these parameters. */
static const struct cipc__ws_pmd_params *run_pmd;
static const struct cipc__ws_pmd_params pmd_default = {.server_max_window_bits = 15};

static void run(const struct cipc__ws_proto_opts *o, const uint8_t *in, size_t len,
                const size_t *cuts, size_t ncuts, struct result *r)
{
    struct cipc__ws_proto p;
    struct cipc__ws_proto_opts opts = *o;
    if (run_pmd)
        CHECK_INT(cipc__ws_deflate_new(run_pmd, o->is_server, 0, &opts.pmd), ==, 0);
    CHECK_INT(cipc__ws_proto_init(&p, &opts), ==, 0);
    memset(r, 0, sizeof *r);
    run_engine(&p, in, len, cuts, ncuts, r);
    cipc__ws_proto_free(&p);
    cipc__ws_deflate_free(opts.pmd);
}

static void check_same(const struct result *a, const struct result *b)
{
    CHECK_STR(b->ev.data ? b->ev.data : "", a->ev.data ? a->ev.data : "");
    CHECK_STR(b->out.data ? b->out.data : "", a->out.data ? a->out.data : "");
    CHECK_STR(b->reasons.data ? b->reasons.data : "", a->reasons.data ? a->reasons.data : "");
    CHECK_INT(b->state, ==, a->state);
}

/* Run in[0..len) whole, then split in two at every offset, in three at every pair of
 * offsets (short inputs), and byte by byte; all must agree. Returns the whole run. */
static void run_all_splits(const struct cipc__ws_proto_opts *o, const uint8_t *in, size_t len,
                           struct result *whole)
{
    run(o, in, len, NULL, 0, whole);
    struct result r;
    for (size_t c = 0; c <= len; c++) {
        run(o, in, len, &c, 1, &r);
        check_same(whole, &r);
        result_free(&r);
    }
    if (len <= 48) {
        for (size_t c1 = 1; c1 < len; c1++)
            for (size_t c2 = c1 + 1; c2 < len; c2++) {
                size_t cuts[2] = {c1, c2};
                run(o, in, len, cuts, 2, &r);
                check_same(whole, &r);
                result_free(&r);
            }
    }
    size_t *cuts = malloc((len + 1) * sizeof *cuts);
    CHECK(cuts != NULL);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i;
    run(o, in, len, cuts, len, &r);
    check_same(whole, &r);
    result_free(&r);
    free(cuts);
}

/* ---- The table ---------------------------------------------------------------------- */

struct pcase {
    const char *name;
    int client; /* the engine is the client: input frames come unmasked */
    int pmd;    /* permessage-deflate negotiated (default parameters) */
    size_t max_message, max_frame;
    struct fr f[8];
    const char *events; /* describe() of every event, joined by '|' */
    const char *out;    /* describe_out() of what the engine queued */
};

/* Close payloads: the code's two bytes. */
#define C999  "\x03\xe7"
#define C1000 "\x03\xe8"
#define C1001 "\x03\xe9"
#define C1003 "\x03\xeb"
#define C1004 "\x03\xec"
#define C1005 "\x03\xed"
#define C1006 "\x03\xee"
#define C1007 "\x03\xef"
#define C1011 "\x03\xf3"
#define C1012 "\x03\xf4"
#define C1014 "\x03\xf6"
#define C1015 "\x03\xf7"
#define C1016 "\x03\xf8"
#define C2999 "\x0b\xb7"
#define C3000 "\x0b\xb8"
#define C4999 "\x13\x87"
#define C5000 "\x13\x88"

#define E1002 .events = "ERR:1002", .out = "CLOSE:1002"
#define E1007 .events = "ERR:1007", .out = "CLOSE:1007"
#define E1009 .events = "ERR:1009", .out = "CLOSE:1009"

/* clang-format off */
static const struct pcase cases[] = {
    /* Valid data frames, both roles. */
    {"text", .f = {TXT("hello")}, .events = "T:hello", .out = ""},
    {"binary", .f = {BIN("\x00\x01\xff|")}, .events = "B:\\x00\\x01\\xff\\x7c", .out = ""},
    {"empty text", .f = {TXT("")}, .events = "T:", .out = ""},
    {"empty binary", .f = {BIN("")}, .events = "B:", .out = ""},
    {"client text", .client = 1, .f = {TXT("hi")}, .events = "T:hi", .out = ""},
    {"client binary", .client = 1, .f = {BIN("\x80")}, .events = "B:\\x80", .out = ""},
    {"three messages", .f = {TXT("a"), BIN("b"), TXT("c")}, .events = "T:a|B:b|T:c", .out = ""},
    {"125 bytes", .f = {BIN(S125)}, .events = "B:" S125, .out = ""},
    {"126 bytes", .f = {BIN(S125 "z")}, .events = "B:" S125 "z", .out = ""},
    {"multibyte text", .f = {TXT("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")},
     .events = "T:\\xce\\xba\\xe1\\xbd\\xb9\\xcf\\x83\\xce\\xbc\\xce\\xb5", .out = ""},
    /* Fragmentation (5.4), with control frames between the fragments. */
    {"fragments", .f = {TXTF("Hel"), CONTF("lo, "), CONT("world")}, .events = "T:Hello, world",
     .out = ""},
    {"binary fragments", .f = {BINF("\x01"), CONT("\x02")}, .events = "B:\\x01\\x02", .out = ""},
    {"empty fragments", .f = {TXTF(""), CONTF(""), CONT("")}, .events = "T:", .out = ""},
    {"ping between fragments", .f = {TXTF("a"), PING("p1"), CONTF("b"), PONG("x"), CONT("c")},
     .events = "PING:p1|PONG:x|T:abc", .out = "PONG:p1"},
    {"client ping between fragments", .client = 1, .f = {BINF("a"), PING("p"), CONT("c")},
     .events = "PING:p|B:ac", .out = "PONG:p"},
    {"utf-8 split over fragments", .f = {TXTF("\xce"), CONTF(""), CONT("\xba")},
     .events = "T:\\xce\\xba", .out = ""},
    {"utf-8 split around a ping", .f = {TXTF("\xe1\xbd"), PING(""), CONT("\xb9")},
     .events = "PING:|T:\\xe1\\xbd\\xb9", .out = "PONG:"},
    {"fragmented then whole", .f = {TXTF("a"), CONT("b"), TXT("c")}, .events = "T:ab|T:c",
     .out = ""},
    {"cont without message", .f = {CONT("x")}, E1002},
    {"cont (not fin) without message", .f = {CONTF("x")}, E1002},
    {"cont after a whole message", .f = {TXT("a"), CONT("b")}, .events = "T:a|ERR:1002",
     .out = "CLOSE:1002"},
    {"text inside a message", .f = {TXTF("a"), TXT("b")}, E1002},
    {"binary inside a message", .f = {TXTF("a"), BIN("b")}, E1002},
    {"binary start inside a message", .f = {BINF("a"), BINF("b")}, E1002},
    /* Control frames (5.5). */
    {"ping", .f = {PING("abc")}, .events = "PING:abc", .out = "PONG:abc"},
    {"empty ping", .f = {PING("")}, .events = "PING:", .out = "PONG:"},
    {"ping 125", .f = {PING(S125)}, .events = "PING:" S125, .out = "PONG:" S125},
    {"ping 126", .f = {PING(S125 "z")}, E1002},
    {"ping 126 declared", .f = {PING("", .decl = 1, .dlen = 126)}, E1002},
    {"pong", .f = {PONG("z")}, .events = "PONG:z", .out = ""},
    {"two pings", .f = {PING("1"), PING("2")}, .events = "PING:1|PING:2", .out = "PONG:1|PONG:2"},
    {"ping not fin", .f = {OP(9, "x", .nofin = 1)}, E1002},
    {"pong not fin", .f = {OP(10, "x", .nofin = 1)}, E1002},
    {"close not fin", .f = {OP(8, C1000, .nofin = 1)}, E1002},
    {"close 126", .f = {CLOSE(C1000 S123 "z")}, E1002},
    /* Reserved opcodes. */
    {"opcode 3", .f = {OP(3, "x")}, E1002},
    {"opcode 4", .f = {OP(4, "x")}, E1002},
    {"opcode 5", .f = {OP(5, "")}, E1002},
    {"opcode 6", .f = {OP(6, "x")}, E1002},
    {"opcode 7", .f = {OP(7, "x")}, E1002},
    {"opcode 11", .f = {OP(11, "x")}, E1002},
    {"opcode 12", .f = {OP(12, "x")}, E1002},
    {"opcode 13", .f = {OP(13, "x")}, E1002},
    {"opcode 14", .f = {OP(14, "x")}, E1002},
    {"opcode 15", .f = {OP(15, "")}, E1002},
    {"reserved opcode mid-message", .f = {TXTF("a"), OP(3, "b")}, E1002},
    {"client opcode 7", .client = 1, .f = {OP(7, "x")}, E1002},
    /* RSV bits without an extension. */
    {"rsv1 text", .f = {TXT("x", .rsv = 0x40)}, E1002},
    {"rsv2 text", .f = {TXT("x", .rsv = 0x20)}, E1002},
    {"rsv3 text", .f = {TXT("x", .rsv = 0x10)}, E1002},
    {"rsv1 ping", .f = {PING("x", .rsv = 0x40)}, E1002},
    {"rsv3 close", .f = {CLOSE(C1000, .rsv = 0x10)}, E1002},
    {"rsv1 cont", .f = {TXTF("a"), CONT("b", .rsv = 0x40)}, E1002},
    {"client rsv2", .client = 1, .f = {BIN("x", .rsv = 0x20)}, E1002},
    /* Masking (5.1, 5.3). */
    {"unmasked from client", .f = {TXT("x", .flip = 1)}, E1002},
    {"unmasked ping from client", .f = {PING("x", .flip = 1)}, E1002},
    {"unmasked fragment from client", .f = {TXTF("a"), CONT("b", .flip = 1)}, E1002},
    {"masked from server", .client = 1, .f = {TXT("x", .flip = 1)}, E1002},
    {"masked close from server", .client = 1, .f = {CLOSE(C1000, .flip = 1)}, E1002},
    /* Length forms (5.2). */
    {"16-bit form for 3", .f = {TXT("abc", .form = 16)}, E1002},
    {"16-bit form for 125", .f = {BIN(S125, .form = 16)}, E1002},
    {"16-bit form for 0", .f = {BIN("", .form = 16)}, E1002},
    {"64-bit form for 3", .f = {TXT("abc", .form = 64)}, E1002},
    {"64-bit form for 126", .f = {BIN(S125 "z", .form = 64)}, E1002},
    {"64-bit form for 65535", .f = {BIN("", .form = 64, .decl = 1, .dlen = 65535)}, E1002},
    {"64-bit top bit", .f = {BIN("", .form = 64, .decl = 1, .dlen = UINT64_C(1) << 63)}, E1002},
    {"64-bit all ones", .f = {BIN("", .form = 64, .decl = 1, .dlen = UINT64_MAX)}, E1002},
    {"client 16-bit form for 1", .client = 1, .f = {BIN("a", .form = 16)}, E1002},
    /* Limits: 1009, on the declared length before any payload. */
    {"max message exact", .max_message = 10, .f = {TXT("0123456789")}, .events = "T:0123456789",
     .out = ""},
    {"max message + 1", .max_message = 10, .f = {TXT("0123456789a")}, E1009},
    {"max message declared", .max_message = 10, .f = {BIN("", .decl = 1, .dlen = 11)}, E1009},
    {"max message huge declared", .max_message = 10,
     .f = {BIN("", .decl = 1, .dlen = UINT64_C(1) << 40)}, E1009},
    {"default max declared", .f = {BIN("", .decl = 1, .dlen = 16 * 1024 * 1024 + 1)}, E1009},
    {"default max ok declared", .f = {BIN("", .decl = 1, .dlen = 16 * 1024 * 1024)},
     .events = "", .out = ""},
    {"max message over fragments", .max_message = 10, .f = {TXTF("01234"), CONT("567890")},
     E1009},
    {"max message fragments exact", .max_message = 10, .f = {TXTF("01234"), CONT("56789")},
     .events = "T:0123456789", .out = ""},
    {"max message empty fragments", .max_message = 1, .f = {TXTF(""), CONTF("a"), CONT("")},
     .events = "T:a", .out = ""},
    {"max frame", .max_message = 10, .max_frame = 4, .f = {TXTF("0123"), CONT("4567")},
     .events = "T:01234567", .out = ""},
    {"max frame + 1", .max_message = 10, .max_frame = 4, .f = {TXTF("01234")}, E1009},
    {"max frame, not for pings", .max_frame = 4, .f = {PING("hello!")}, .events = "PING:hello!",
     .out = "PONG:hello!"},
    {"client max message", .client = 1, .max_message = 3, .f = {BIN("abcd")}, E1009},
    /* UTF-8 in text messages: 1007, as early as possible. */
    {"bad utf-8", .f = {TXT("\xff")}, E1007},
    {"overlong", .f = {TXT("a\xc0\x80")}, E1007},
    {"surrogate", .f = {TXT("\xed\xa0\x80")}, E1007},
    {"above U+10FFFF", .f = {TXT("\xf4\x90\x80\x80")}, E1007},
    {"text ends mid-character", .f = {TXT("\xce\xba\xe1")}, E1007},
    {"fragments end mid-character", .f = {TXTF("\xce"), CONT("")}, E1007},
    {"bad byte in first fragment", .f = {TXTF("\xc0")}, E1007},
    {"bad continuation in next fragment", .f = {TXTF("\xe1"), CONT("\x41")}, E1007},
    {"bad byte before the frame ends", .f = {TXTF("ab\xed\xa0", .decl = 1, .dlen = 100)}, E1007},
    {"bad byte before the message ends", .f = {TXT("ab\xf5", .decl = 1, .dlen = 100)}, E1007},
    {"binary is not checked", .f = {BIN("\xff\xed\xa0\x80")},
     .events = "B:\\xff\\xed\\xa0\\x80", .out = ""},
    {"client bad utf-8", .client = 1, .f = {TXTF("ok"), CONT("\xed\xbf\xbf")}, E1007},
    /* Close frames (5.5.1, 7.4). */
    {"close 1000", .f = {CLOSE(C1000 "bye")}, .events = "CLOSE:1000:bye", .out = "CLOSE:1000"},
    {"close empty", .f = {CLOSE("")}, .events = "CLOSE:1005:", .out = "CLOSE"},
    {"client close", .client = 1, .f = {CLOSE(C1000)}, .events = "CLOSE:1000:",
     .out = "CLOSE:1000"},
    {"close 1 byte", .f = {CLOSE("\x03")}, E1002},
    {"close 999", .f = {CLOSE(C999)}, E1002},
    {"close 1003", .f = {CLOSE(C1003)}, .events = "CLOSE:1003:", .out = "CLOSE:1003"},
    {"close 1004", .f = {CLOSE(C1004)}, E1002},
    {"close 1005", .f = {CLOSE(C1005)}, E1002},
    {"close 1006", .f = {CLOSE(C1006)}, E1002},
    {"close 1007", .f = {CLOSE(C1007)}, .events = "CLOSE:1007:", .out = "CLOSE:1007"},
    {"close 1011", .f = {CLOSE(C1011)}, .events = "CLOSE:1011:", .out = "CLOSE:1011"},
    {"close 1012", .f = {CLOSE(C1012)}, .events = "CLOSE:1012:", .out = "CLOSE:1012"},
    {"close 1014", .f = {CLOSE(C1014)}, .events = "CLOSE:1014:", .out = "CLOSE:1014"},
    {"close 1015", .f = {CLOSE(C1015)}, E1002},
    {"close 1016", .f = {CLOSE(C1016)}, E1002},
    {"close 2999", .f = {CLOSE(C2999)}, E1002},
    {"close 3000", .f = {CLOSE(C3000 "x")}, .events = "CLOSE:3000:x", .out = "CLOSE:3000"},
    {"close 4999", .f = {CLOSE(C4999)}, .events = "CLOSE:4999:", .out = "CLOSE:4999"},
    {"close 5000", .f = {CLOSE(C5000)}, E1002},
    {"close 0", .f = {CLOSE("\x00\x00")}, E1002},
    {"close 65535", .f = {CLOSE("\xff\xff")}, E1002},
    {"close reason 123", .f = {CLOSE(C1000 S123)}, .events = "CLOSE:1000:" S123,
     .out = "CLOSE:1000"},
    {"close bad utf-8 reason", .f = {CLOSE(C1000 "\xce\xba\xff")}, E1007},
    {"close truncated utf-8 reason", .f = {CLOSE(C1000 "\xce")}, E1007},
    {"close bad code and reason", .f = {CLOSE(C1004 "\xff")}, E1002},
    {"close utf-8 reason", .f = {CLOSE(C1000 "\xce\xba")}, .events = "CLOSE:1000:\\xce\\xba",
     .out = "CLOSE:1000"},
    {"close mid-message", .f = {TXTF("a"), CLOSE(C1000)}, .events = "CLOSE:1000:",
     .out = "CLOSE:1000"},
    /* Nothing is parsed after the end. */
    {"data after close", .f = {CLOSE(C1000), TXT("after"), RAWB("\xff\xff")},
     .events = "CLOSE:1000:", .out = "CLOSE:1000"},
    {"ping after close", .f = {CLOSE(""), PING("x")}, .events = "CLOSE:1005:", .out = "CLOSE"},
    {"data after error", .f = {OP(3, ""), TXT("ok"), PING("p")}, E1002},
    {"garbage after error", .f = {TXT("\xff"), RAWB("\x00\x00\x00")}, E1007},
    /* Incomplete input: no events. */
    {"truncated payload", .f = {TXT("abc", .decl = 1, .dlen = 10)}, .events = "", .out = ""},
    {"header only", .f = {RAWB("\x81")}, .events = "", .out = ""},
    {"nothing", .f = {{0}}, .events = "", .out = ""},
    /* permessage-deflate (RFC 7692 7.2.3 examples): RSV1 on a message's first frame. The
     * hand-made messages are stored blocks ("\x00" LEN NLEN data), each message ending in
     * "\x00", the start of the sync-flush block whose 00 00 FF FF the sender removes. */
#define HELLO_Z "\xf2\x48\xcd\xc9\xc9\x07\x00"
    {"pmd hello", .pmd = 1, .f = {TXT(HELLO_Z, .rsv = 0x40)}, .events = "T:Hello", .out = ""},
    {"pmd client", .pmd = 1, .client = 1, .f = {BIN(HELLO_Z, .rsv = 0x40)}, .events = "B:Hello",
     .out = ""},
    {"pmd fragments", .pmd = 1, .f = {TXTF("\xf2\x48\xcd", .rsv = 0x40), CONT("\xc9\xc9\x07\x00")},
     .events = "T:Hello", .out = ""},
    {"pmd fragments and ping", .pmd = 1,
     .f = {TXTF("\xf2\x48", .rsv = 0x40), PING("p"), CONTF("\xcd\xc9"), CONT("\xc9\x07\x00")},
     .events = "PING:p|T:Hello", .out = "PONG:p"},
    {"pmd stored block", .pmd = 1,
     .f = {TXT("\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00", .rsv = 0x40)},
     .events = "T:Hello", .out = ""},
    {"pmd bfinal", .pmd = 1, .f = {TXT("\xf3\x48\xcd\xc9\xc9\x07\x00\x00", .rsv = 0x40)},
     .events = "T:Hello", .out = ""},
    {"pmd context takeover", .pmd = 1,
     .f = {TXT(HELLO_Z, .rsv = 0x40), TXT("\xf2\x00\x11\x00\x01\x00", .rsv = 0x40)},
     .events = "T:Hello|T:Hello", .out = ""},
    {"pmd uncompressed message", .pmd = 1, .f = {TXT("plain"), BIN(HELLO_Z, .rsv = 0x40)},
     .events = "T:plain|B:Hello", .out = ""},
    {"pmd empty", .pmd = 1, .f = {BIN("", .rsv = 0x40), TXT("\x00", .rsv = 0x40)},
     .events = "B:|T:", .out = ""},
    {"pmd rsv1 on cont", .pmd = 1, .f = {TXTF("\xf2\x48\xcd", .rsv = 0x40),
                                          CONT("\xc9\xc9\x07\x00", .rsv = 0x40)}, E1002},
    {"pmd rsv1 on ping", .pmd = 1, .f = {PING("x", .rsv = 0x40)}, E1002},
    {"pmd rsv2", .pmd = 1, .f = {TXT(HELLO_Z, .rsv = 0x60)}, E1002},
    {"pmd corrupt", .pmd = 1, .f = {BIN("\xff\xff\xff\xff", .rsv = 0x40)}, E1002},
    {"pmd bad utf-8", .pmd = 1, .f = {TXT("\x00\x01\x00\xfe\xff\xff\x00", .rsv = 0x40)}, E1007},
    {"pmd bad utf-8 before fin", .pmd = 1,
     .f = {TXTF("\x00\x01\x00\xfe\xff\xff", .rsv = 0x40)}, E1007},
    {"pmd utf-8 split over fragments", .pmd = 1,
     .f = {TXTF("\x00\x01\x00\xfe\xff\xce", .rsv = 0x40), CONT("\x00\x01\x00\xfe\xff\xba\x00")},
     .events = "T:\\xce\\xba", .out = ""},
    {"pmd bad utf-8 over fragments", .pmd = 1,
     .f = {TXTF("\x00\x01\x00\xfe\xff\xce", .rsv = 0x40), CONT("\x00\x01\x00\xfe\xff\x41\x00")},
     E1007},
    {"pmd ends mid-character", .pmd = 1, .f = {TXT("\x00\x01\x00\xfe\xff\xce\x00", .rsv = 0x40)},
     E1007},
    {"pmd max message inflated", .pmd = 1, .max_message = 4, .f = {TXT(HELLO_Z, .rsv = 0x40)},
     E1009},
    {"pmd max message exact", .pmd = 1, .max_message = 5, .f = {TXT(HELLO_Z, .rsv = 0x40)},
     .events = "T:Hello", .out = ""},
    {"pmd max frame on the wire", .pmd = 1, .max_message = 100, .max_frame = 6,
     .f = {TXT(HELLO_Z, .rsv = 0x40)}, E1009},
    {"pmd close", .pmd = 1, .f = {TXTF("\xf2\x48", .rsv = 0x40), CLOSE(C1000)},
     .events = "CLOSE:1000:", .out = "CLOSE:1000"},
};
/* clang-format on */

static void test_table(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct pcase *t = &cases[i];
        set_current("case", t->name);
        struct cipc__ws_proto_opts o = {
            .is_server = !t->client, .max_message = t->max_message, .max_frame = t->max_frame};
        struct cipc_buf in = CIPC_BUF_INIT;
        build(&in, t->f, sizeof t->f / sizeof t->f[0], !t->client);
        struct result r;
        run_pmd = t->pmd ? &pmd_default : NULL;
        run_all_splits(&o, (const uint8_t *)in.data, in.len, &r);
        run_pmd = NULL;
        CHECK_STR(r.ev.data ? r.ev.data : "", t->events);
        CHECK_STR(r.out.data ? r.out.data : "", t->out);
        bool ended = strstr(t->events, "ERR:") || strstr(t->events, "CLOSE:");
        CHECK_INT(r.state, ==, ended ? CIPC__WS_CLOSED : CIPC__WS_OPEN);
        result_free(&r);
        cipc_buf_free(&in);
    }
}

/* ---- Specific behaviours ------------------------------------------------------------ */

static void init(struct cipc__ws_proto *p, bool server, size_t max_message)
{
    struct cipc__ws_proto_opts o = {.is_server = server, .max_message = max_message};
    CHECK_INT(cipc__ws_proto_init(p, &o), ==, 0);
}

/* Feed bytes one at a time; returns how many were fed when the first event came, and
 * the event. */
static size_t feed_until_event(struct cipc__ws_proto *p, uint8_t *in, size_t n,
                               struct cipc__ws_event *ev)
{
    for (size_t i = 0; i < n; i++) {
        size_t used;
        CHECK_INT(cipc__ws_proto_feed(p, in + i, 1, &used, ev), ==, 0);
        CHECK_INT(used, ==, 1);
        if (ev->type != CIPC__WS_EV_NONE)
            return i + 1;
    }
    return 0;
}

/* Bad text fails at the byte that makes it bad, before the frame or message ends; an
 * oversized declared length fails at the last header byte, before any payload. */
static void test_fail_fast(void)
{
    set_current("fail fast", "utf-8");
    struct cipc__ws_proto p;
    struct cipc__ws_event ev;
    struct cipc_buf in = CIPC_BUF_INIT;
    /* Header (4 with the 16-bit length, + 4 mask), "abc", then ED at 11 and A0 at 12 (the
     * failing byte: a surrogate), so the 13th byte fed fails. */
    struct fr f1[] = {TXTF("abc\xed\xa0\x80xyz", .decl = 1, .dlen = 1000)};
    build(&in, f1, 1, true);
    init(&p, true, 0);
    CHECK_INT(feed_until_event(&p, (uint8_t *)in.data, in.len, &ev), ==, 13);
    CHECK_INT(ev.type, ==, CIPC__WS_EV_ERROR);
    CHECK_INT(ev.code, ==, 1007);
    cipc__ws_proto_free(&p);

    /* The same in the second fragment, after a ping. */
    cipc_buf_reset(&in);
    struct fr f2[] = {TXTF("ab"), PING("p"), CONTF("c\xff", .decl = 1, .dlen = 50)};
    build(&in, f2, 3, true);
    init(&p, true, 0);
    size_t at = feed_until_event(&p, (uint8_t *)in.data, in.len, &ev);
    CHECK_INT(ev.type, ==, CIPC__WS_EV_PING);
    at += feed_until_event(&p, (uint8_t *)in.data + at, in.len - at, &ev);
    CHECK_INT(ev.type, ==, CIPC__WS_EV_ERROR);
    CHECK_INT(ev.code, ==, 1007);
    CHECK_INT(at, ==, in.len); /* the 0xff is the last byte given */
    cipc__ws_proto_free(&p);

    /* A 1 TiB frame: refused when its 14-byte header is complete, nothing allocated. */
    set_current("fail fast", "declared length");
    cipc_buf_reset(&in);
    struct fr f3[] = {BIN("", .decl = 1, .dlen = UINT64_C(1) << 40)};
    build(&in, f3, 1, true);
    CHECK_INT(in.len, ==, 14);
    init(&p, true, 0);
    CHECK_INT(feed_until_event(&p, (uint8_t *)in.data, in.len, &ev), ==, 14);
    CHECK_INT(ev.type, ==, CIPC__WS_EV_ERROR);
    CHECK_INT(ev.code, ==, 1009);
    CHECK_INT(p._msg.cap, ==, 0);
    cipc__ws_proto_free(&p);

    /* A continuation that would take the message over the limit: refused at its header. */
    cipc_buf_reset(&in);
    struct fr f4[] = {BINF("0123456789"), CONT("", .decl = 1, .dlen = 91)};
    build(&in, f4, 2, true);
    init(&p, true, 100);
    CHECK_INT(feed_until_event(&p, (uint8_t *)in.data, in.len, &ev), ==, in.len);
    CHECK_INT(ev.type, ==, CIPC__WS_EV_ERROR);
    CHECK_INT(ev.code, ==, 1009);
    cipc__ws_proto_free(&p);
    /* With 90 it waits for the payload. */
    cipc_buf_reset(&in);
    struct fr f5[] = {BINF("0123456789"), CONT("", .decl = 1, .dlen = 90)};
    build(&in, f5, 2, true);
    init(&p, true, 100);
    CHECK_INT(feed_until_event(&p, (uint8_t *)in.data, in.len, &ev), ==, 0);
    cipc__ws_proto_free(&p);

    /* Reserved opcode: known at the second byte, before the extended length. */
    set_current("fail fast", "header");
    uint8_t bad[] = {0x83, 0xfe, 0x10, 0x00};
    init(&p, true, 0);
    CHECK_INT(feed_until_event(&p, bad, sizeof bad, &ev), ==, 2);
    CHECK_INT(ev.code, ==, 1002);
    cipc__ws_proto_free(&p);
    cipc_buf_free(&in);
}

/* A whole single-frame message is a view into the input; a fragmented one is not. Data
 * stays valid until the next feed, which releases a big assembly buffer. */
static void test_zero_copy(void)
{
    set_current("zero copy", "");
    struct cipc__ws_proto p;
    struct cipc__ws_event ev;
    struct cipc_buf in = CIPC_BUF_INIT;
    struct fr f[] = {TXT("hello"), TXTF("he"), CONT("llo")};
    build(&in, f, 3, true);
    init(&p, true, 0);
    uint8_t *b = (uint8_t *)in.data;
    size_t used;
    CHECK_INT(cipc__ws_proto_feed(&p, b, in.len, &used, &ev), ==, 0);
    CHECK_INT(ev.type, ==, CIPC__WS_EV_MESSAGE);
    CHECK(ev.data == b + 6);
    CHECK_MEM(ev.data, ev.len, "hello");
    CHECK_INT(used, ==, 11);
    CHECK_INT(cipc__ws_proto_feed(&p, b + used, in.len - used, &used, &ev), ==, 0);
    CHECK_INT(ev.type, ==, CIPC__WS_EV_MESSAGE);
    CHECK(ev.data == (const uint8_t *)p._msg.data);
    CHECK_MEM(ev.data, ev.len, "hello");
    cipc__ws_proto_free(&p);

    /* 200 KiB in 4 fragments: assembled; the buffer is freed on the next feed. */
    cipc_buf_reset(&in);
    size_t part = 50 * 1024;
    char *chunk = malloc(part);
    CHECK(chunk != NULL);
    memset(chunk, 'q', part);
    static const uint8_t key[4] = {1, 2, 3, 4};
    for (int i = 0; i < 4; i++)
        CHECK_INT(cipc__ws_frame_append(&in, i ? 0 : 2, i == 3, false, chunk, part, key), ==, 0);
    init(&p, true, 0);
    CHECK_INT(cipc__ws_proto_feed(&p, (uint8_t *)in.data, in.len, &used, &ev), ==, 0);
    CHECK_INT(ev.type, ==, CIPC__WS_EV_MESSAGE);
    CHECK_INT(ev.len, ==, 4 * part);
    CHECK_INT(used, ==, in.len);
    CHECK_INT(p._msg.cap, >, 4 * part);
    CHECK_INT(cipc__ws_proto_feed(&p, NULL, 0, &used, &ev), ==, 0);
    CHECK_INT(ev.type, ==, CIPC__WS_EV_NONE);
    CHECK_INT(p._msg.cap, ==, 0);
    cipc__ws_proto_free(&p);
    free(chunk);
    cipc_buf_free(&in);
}

/* The exact bytes of automatic replies. */
static void test_reply_bytes(void)
{
    set_current("reply bytes", "");
    struct cipc__ws_proto p;
    struct cipc__ws_event ev;
    struct cipc_buf in = CIPC_BUF_INIT;
    size_t used;

    /* Server: unmasked pong with the same payload, then the close echo. */
    struct fr f[] = {PING("abc"), CLOSE(C1001 "going")};
    build(&in, f, 2, true);
    init(&p, true, 0);
    CHECK_INT(cipc__ws_proto_feed(&p, (uint8_t *)in.data, in.len, &used, &ev), ==, 0);
    CHECK_INT(ev.type, ==, CIPC__WS_EV_PING);
    CHECK_INT(p.out.len, ==, 5);
    CHECK(memcmp(p.out.data,
                 "\x8a\x03"
                 "abc",
                 5) == 0);
    cipc_buf_reset(&p.out);
    CHECK_INT(cipc__ws_proto_feed(&p, (uint8_t *)in.data + used, in.len - used, &used, &ev), ==, 0);
    CHECK_INT(ev.type, ==, CIPC__WS_EV_CLOSE);
    CHECK_INT(ev.code, ==, 1001);
    CHECK_MEM(ev.reason, ev.reason_len, "going");
    CHECK_INT(p.out.len, ==, 4);
    CHECK(memcmp(p.out.data, "\x88\x02\x03\xe9", 4) == 0);
    CHECK(cipc__ws_proto_out(&p) == &p.out);
    cipc__ws_proto_free(&p);

    /* Client: the pong is masked. */
    cipc_buf_reset(&in);
    build(&in, f, 1, false);
    init(&p, false, 0);
    CHECK_INT(cipc__ws_proto_feed(&p, (uint8_t *)in.data, in.len, &used, &ev), ==, 0);
    CHECK_INT(p.out.len, ==, 9);
    CHECK(memcmp(p.out.data, "\x8a\x83", 2) == 0);
    uint8_t pl[3];
    memcpy(pl, p.out.data + 6, 3);
    cipc__ws_mask(pl, 3, (const uint8_t *)p.out.data + 2, 0);
    CHECK(memcmp(pl, "abc", 3) == 0);
    cipc__ws_proto_free(&p);

    /* An error queues a close with the code and the reason of the event. */
    cipc_buf_reset(&in);
    struct fr g[] = {TXT("x", .rsv = 0x20)};
    build(&in, g, 1, true);
    init(&p, true, 0);
    CHECK_INT(cipc__ws_proto_feed(&p, (uint8_t *)in.data, in.len, &used, &ev), ==, 0);
    CHECK_INT(ev.type, ==, CIPC__WS_EV_ERROR);
    CHECK_INT(p.out.len, ==, 4 + ev.reason_len);
    CHECK(memcmp(p.out.data, "\x88", 1) == 0);
    CHECK_INT((uint8_t)p.out.data[1], ==, 2 + ev.reason_len);
    CHECK(memcmp(p.out.data + 2, "\x03\xea", 2) == 0);
    CHECK(memcmp(p.out.data + 4, ev.reason, ev.reason_len) == 0);
    cipc__ws_proto_free(&p);
    cipc_buf_free(&in);
}

/* Closing first: CLOSE_SENT, sends refused, the peer's data still delivered (pings not
 * answered), its close completes the handshake without an echo. */
static void test_close_first(void)
{
    for (int server = 0; server < 2; server++) {
        set_current("close first", server ? "server" : "client");
        struct cipc__ws_proto p;
        struct cipc__ws_event ev;
        struct cipc_buf in = CIPC_BUF_INIT, out = CIPC_BUF_INIT, d = CIPC_BUF_INIT;
        size_t used;
        init(&p, server, 0);
        CHECK_INT(cipc__ws_proto_state(&p), ==, CIPC__WS_OPEN);
        CHECK(!cipc__ws_proto_should_close_tcp(&p));
        CHECK_INT(cipc__ws_proto_close(&p, 1000, "done", 4), ==, 0);
        CHECK_INT(cipc__ws_proto_state(&p), ==, CIPC__WS_CLOSE_SENT);
        CHECK(!cipc__ws_proto_should_close_tcp(&p));
        describe_out(&d, &p.out, !server);
        CHECK_STR(d.data, "CLOSE:1000");
        CHECK_INT(cipc__ws_proto_send(&p, CIPC__WS_OP_TEXT, "x", 1, &out), ==, CIPC_ECLOSING);
        CHECK_INT(cipc__ws_proto_send_control(&p, CIPC__WS_OP_PING, "x", 1), ==, CIPC_ECLOSING);
        CHECK_INT(cipc__ws_proto_close(&p, 1000, NULL, 0), ==, CIPC_ECLOSING);
        CHECK_INT(out.len, ==, 0);
        size_t before = p.out.len;
        struct fr f[] = {TXT("late"), PING("p"), CLOSE(C1000), TXT("ignored")};
        build(&in, f, 4, server);
        uint8_t *b = (uint8_t *)in.data;
        size_t n = in.len;
        CHECK_INT(cipc__ws_proto_feed(&p, b, n, &used, &ev), ==, 0);
        CHECK_INT(ev.type, ==, CIPC__WS_EV_MESSAGE);
        b += used, n -= used;
        CHECK_INT(cipc__ws_proto_feed(&p, b, n, &used, &ev), ==, 0);
        CHECK_INT(ev.type, ==, CIPC__WS_EV_PING);
        b += used, n -= used;
        CHECK_INT(cipc__ws_proto_feed(&p, b, n, &used, &ev), ==, 0);
        CHECK_INT(ev.type, ==, CIPC__WS_EV_CLOSE);
        CHECK_INT(used, ==, n);
        CHECK_INT(p.out.len, ==, before); /* no pong, no echo */
        CHECK_INT(cipc__ws_proto_state(&p), ==, CIPC__WS_CLOSED);
        CHECK(cipc__ws_proto_should_close_tcp(&p));
        CHECK_INT(cipc__ws_proto_feed(&p, (uint8_t *)in.data, in.len, &used, &ev), ==, 0);
        CHECK_INT(ev.type, ==, CIPC__WS_EV_NONE);
        CHECK_INT(used, ==, in.len);
        cipc__ws_proto_free(&p);
        cipc_buf_free(&in);
        cipc_buf_free(&out);
        cipc_buf_free(&d);
    }
    /* A bad close while closing: ERROR, but no second close frame. */
    set_current("close first", "bad reply");
    struct cipc__ws_proto p;
    struct cipc__ws_event ev;
    struct cipc_buf in = CIPC_BUF_INIT;
    size_t used;
    init(&p, true, 0);
    CHECK_INT(cipc__ws_proto_close(&p, 1001, NULL, 0), ==, 0);
    size_t before = p.out.len;
    struct fr f[] = {CLOSE("\x03")};
    build(&in, f, 1, true);
    CHECK_INT(cipc__ws_proto_feed(&p, (uint8_t *)in.data, in.len, &used, &ev), ==, 0);
    CHECK_INT(ev.type, ==, CIPC__WS_EV_ERROR);
    CHECK_INT(p.out.len, ==, before);
    CHECK_INT(cipc__ws_proto_state(&p), ==, CIPC__WS_CLOSED);
    cipc__ws_proto_free(&p);
    cipc_buf_free(&in);
    /* After the peer's close, our own close and sends are refused. */
    init(&p, true, 0);
    cipc_buf_reset(&in);
    struct fr g[] = {CLOSE("")};
    build(&in, g, 1, true);
    CHECK_INT(cipc__ws_proto_feed(&p, (uint8_t *)in.data, in.len, &used, &ev), ==, 0);
    CHECK_INT(cipc__ws_proto_close(&p, 1000, NULL, 0), ==, CIPC_ECLOSING);
    CHECK_INT(cipc__ws_proto_send(&p, CIPC__WS_OP_BINARY, "", 0, &in), ==, CIPC_ECLOSING);
    cipc__ws_proto_free(&p);
    cipc_buf_free(&in);
}

/* Arguments of the sending calls. */
static void test_send_args(void)
{
    set_current("send args", "");
    struct cipc__ws_proto p;
    struct cipc_buf out = CIPC_BUF_INIT, d = CIPC_BUF_INIT;
    init(&p, true, 0);
    CHECK_INT(cipc__ws_proto_send(&p, CIPC__WS_OP_PING, "x", 1, &out), ==, -EINVAL);
    CHECK_INT(cipc__ws_proto_send(&p, CIPC__WS_OP_CONT, "x", 1, &out), ==, -EINVAL);
    CHECK_INT(cipc__ws_proto_send(&p, CIPC__WS_OP_TEXT, "\xc0\x80", 2, &out), ==, CIPC_EPROTO);
    CHECK_INT(cipc__ws_proto_send(&p, CIPC__WS_OP_TEXT, "\xe1\x80", 2, &out), ==, CIPC_EPROTO);
    CHECK_INT(cipc__ws_proto_send(&p, CIPC__WS_OP_BINARY, "\xc0\x80", 2, &out), ==, 0);
    CHECK_INT(cipc__ws_proto_send(&p, CIPC__WS_OP_TEXT, NULL, 0, &out), ==, 0);
    CHECK_INT(out.len, ==, 6);
    CHECK(memcmp(out.data, "\x82\x02\xc0\x80\x81\x00", 6) == 0);
    CHECK_INT(p.out.len, ==, 0);

    static const char big[126] = {0};
    CHECK_INT(cipc__ws_proto_send_control(&p, CIPC__WS_OP_PING, big, 126), ==, -EINVAL);
    CHECK_INT(cipc__ws_proto_send_control(&p, CIPC__WS_OP_TEXT, "x", 1), ==, -EINVAL);
    CHECK_INT(cipc__ws_proto_send_control(&p, CIPC__WS_OP_CLOSE, "", 0), ==, -EINVAL);
    CHECK_INT(cipc__ws_proto_send_control(&p, CIPC__WS_OP_PING, big, 125), ==, 0);
    CHECK_INT(cipc__ws_proto_send_control(&p, CIPC__WS_OP_PONG, "z", 1), ==, 0);

    static const char r124[] = S123 "!";
    static const unsigned bad_codes[] = {0, 999, 1004, 1006, 1015, 1016, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad_codes / sizeof bad_codes[0]; i++)
        CHECK_INT(cipc__ws_proto_close(&p, (uint16_t)bad_codes[i], NULL, 0), ==, -EINVAL);
    CHECK_INT(cipc__ws_proto_close(&p, 1000, r124, 124), ==, -EINVAL);
    CHECK_INT(cipc__ws_proto_close(&p, 1000, "\xff", 1), ==, -EINVAL);
    CHECK_INT(cipc__ws_proto_close(&p, 1005, "x", 1), ==, -EINVAL);
    CHECK_INT(cipc__ws_proto_state(&p), ==, CIPC__WS_OPEN);
    CHECK_INT(cipc__ws_proto_close(&p, 4999, r124, 123), ==, 0);
    describe_out(&d, &p.out, false);
    struct cipc_buf want = CIPC_BUF_INIT;
    cipc_buf_append_str(&want, "PING:");
    for (int i = 0; i < 125; i++)
        cipc_buf_append_str(&want, "\\x00");
    cipc_buf_append_str(&want, "|PONG:z|CLOSE:4999");
    CHECK_STR(d.data, want.data);
    cipc_buf_free(&want);
    cipc__ws_proto_free(&p);

    /* 1005 sends an empty close. */
    init(&p, false, 0);
    CHECK_INT(cipc__ws_proto_close(&p, 1005, NULL, 0), ==, 0);
    cipc_buf_reset(&d);
    describe_out(&d, &p.out, true);
    CHECK_STR(d.data, "CLOSE");
    cipc__ws_proto_free(&p);
    cipc_buf_free(&out);
    cipc_buf_free(&d);
    cipc__ws_proto_free(NULL);
}

/* Send a message with one engine and parse it with an engine of the other role, whole and
 * cut at several places (around the header, the middle, the end). */
static void roundtrip_one(bool sender_server, unsigned opcode, const uint8_t *msg, size_t n)
{
    struct cipc__ws_proto tx, rx;
    struct cipc_buf out = CIPC_BUF_INIT;
    init(&tx, sender_server, 0);
    CHECK_INT(cipc__ws_proto_send(&tx, opcode, msg, n, &out), ==, 0);
    struct cipc__ws_header h;
    int hl = cipc__ws_header_decode((const uint8_t *)out.data, out.len, &h);
    CHECK_INT(hl, ==, (n < 126 ? 2 : n < 65536 ? 4 : 10) + (sender_server ? 0 : 4));
    CHECK_INT(out.len, ==, (size_t)hl + n);
    CHECK(h.fin && !h.rsv1 && h.opcode == opcode && h.len == n && h.masked == !sender_server);
    size_t cuts[][2] = {{1, 2},
                        {(size_t)hl - 1, (size_t)hl},
                        {(size_t)hl, (size_t)hl + 1},
                        {out.len / 3, out.len / 2},
                        {out.len - 1, out.len}};
    for (size_t c = 0; c <= sizeof cuts / sizeof cuts[0]; c++) {
        init(&rx, !sender_server, 0);
        uint8_t *copy = malloc(out.len);
        CHECK(copy != NULL);
        memcpy(copy, out.data, out.len);
        size_t from = 0, got = 0;
        size_t ncut = c < sizeof cuts / sizeof cuts[0] ? 2 : 0;
        for (size_t k = 0; k <= ncut; k++) {
            size_t to = k < ncut ? cuts[c][k] : out.len;
            if (to < from || to > out.len)
                to = from;
            size_t used;
            struct cipc__ws_event ev;
            CHECK_INT(cipc__ws_proto_feed(&rx, copy + from, to - from, &used, &ev), ==, 0);
            if (ev.type == CIPC__WS_EV_MESSAGE) {
                CHECK_INT(ev.opcode, ==, opcode);
                CHECK_INT(ev.len, ==, n);
                CHECK(n == 0 || memcmp(ev.data, msg, n) == 0);
                got++;
            } else {
                CHECK_INT(ev.type, ==, CIPC__WS_EV_NONE);
            }
            CHECK_INT(used, ==, to - from);
            from = to;
        }
        CHECK_INT(got, ==, 1);
        CHECK_INT(rx.out.len, ==, 0);
        free(copy);
        cipc__ws_proto_free(&rx);
    }
    cipc__ws_proto_free(&tx);
    cipc_buf_free(&out);
}

static void test_roundtrip(void)
{
    static const size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 1 << 20};
    size_t max = 1 << 20;
    uint8_t *bin = malloc(max), *txt = malloc(max);
    CHECK(bin && txt);
    for (size_t i = 0; i < max; i++)
        bin[i] = (uint8_t)(i * 131 + (i >> 8));
    /* Text: ASCII with a 2-byte character every so often (never cut at the end). */
    for (size_t i = 0; i < max; i++)
        txt[i] = (uint8_t)('a' + i % 26);
    for (size_t i = 100; i + 2 < max; i += 1000) {
        txt[i] = 0xce;
        txt[i + 1] = 0xba;
    }
    for (int role = 0; role < 2; role++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            set_current("roundtrip", role ? "from server" : "from client");
            roundtrip_one(role, CIPC__WS_OP_BINARY, bin, sizes[s]);
            roundtrip_one(role, CIPC__WS_OP_TEXT, txt, sizes[s]);
        }
    free(bin);
    free(txt);
}

/* Fragmented output made with the encoder, pings between fragments, both roles, parsed
 * whole and split everywhere. */
static void test_fragmented_roundtrip(void)
{
    static const uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
    static const char text[] = "Fragmented \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 text";
    size_t n = sizeof text - 1;
    for (int server = 0; server < 2; server++) {
        set_current("fragmented roundtrip", server ? "to server" : "to client");
        const uint8_t *k = server ? key : NULL;
        /* Cut the text at every byte into two fragments, and into n one-byte fragments. */
        for (size_t cut = 0; cut <= n; cut++) {
            struct cipc_buf in = CIPC_BUF_INIT;
            CHECK_INT(cipc__ws_frame_append(&in, CIPC__WS_OP_TEXT, false, false, text, cut, k), ==,
                      0);
            CHECK_INT(cipc__ws_frame_append(&in, CIPC__WS_OP_PING, true, false, "p", 1, k), ==, 0);
            CHECK_INT(
                cipc__ws_frame_append(&in, CIPC__WS_OP_CONT, true, false, text + cut, n - cut, k),
                ==, 0);
            struct cipc__ws_proto_opts o = {.is_server = server};
            struct result r;
            run_all_splits(&o, (const uint8_t *)in.data, in.len, &r);
            struct cipc_buf want = CIPC_BUF_INIT;
            cipc_buf_append_str(&want, "PING:p|T:");
            esc(&want, (const uint8_t *)text, n);
            CHECK_STR(r.ev.data, want.data);
            CHECK_STR(r.out.data, "PONG:p");
            result_free(&r);
            cipc_buf_free(&want);
            cipc_buf_free(&in);
        }
        struct cipc_buf in = CIPC_BUF_INIT;
        for (size_t i = 0; i < n; i++)
            CHECK_INT(cipc__ws_frame_append(&in, i ? CIPC__WS_OP_CONT : CIPC__WS_OP_TEXT,
                                            i == n - 1, false, text + i, 1, k),
                      ==, 0);
        struct cipc__ws_proto_opts o = {.is_server = server};
        struct result r;
        run(&o, (const uint8_t *)in.data, in.len, NULL, 0, &r);
        struct cipc_buf want = CIPC_BUF_INIT;
        cipc_buf_append_str(&want, "T:");
        esc(&want, (const uint8_t *)text, n);
        CHECK_STR(r.ev.data, want.data);
        result_free(&r);
        cipc_buf_free(&want);
        cipc_buf_free(&in);
    }
}

/* Valid 16- and 64-bit lengths, split around and inside the header. */
static void test_long_lengths(void)
{
    static const size_t sizes[] = {126, 127, 65535, 65536, 65537};
    static const uint8_t key[4] = {5, 6, 7, 8};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        set_current("long lengths", "");
        uint8_t *pl = malloc(sizes[s]);
        CHECK(pl != NULL);
        for (size_t i = 0; i < sizes[s]; i++)
            pl[i] = (uint8_t)i;
        struct cipc_buf in = CIPC_BUF_INIT;
        CHECK_INT(cipc__ws_frame_append(&in, CIPC__WS_OP_BINARY, true, false, pl, sizes[s], key),
                  ==, 0);
        struct cipc__ws_proto_opts o = {.is_server = true};
        struct result whole, r;
        run(&o, (const uint8_t *)in.data, in.len, NULL, 0, &whole);
        CHECK_INT(whole.ev.len, >, sizes[s]);
        for (size_t c = 0; c < 20; c++) {
            size_t cuts[2] = {c, in.len - c};
            run(&o, (const uint8_t *)in.data, in.len, cuts, 2, &r);
            check_same(&whole, &r);
            result_free(&r);
        }
        result_free(&whole);
        cipc_buf_free(&in);
        free(pl);
    }
}

/* Compressed sends: RSV1 exactly when n >= compress_min (default 64; never for empty
 * messages), masked in the client role, parsed back by a peer engine with its own
 * contexts, over several messages (context takeover, and without it). */
static void test_pmd_roundtrip(void)
{
    static const struct cipc__ws_pmd_params params[] = {
        {.server_max_window_bits = 15},
        {.server_no_context_takeover = true,
         .client_no_context_takeover = true,
         .server_max_window_bits = 10,
         .client_max_window_bits = 9},
    };
    static const size_t sizes[] = {0, 1, 63, 64, 1000, 65536, 1 << 20};
    size_t max = 1 << 20;
    uint8_t *msg = malloc(max);
    CHECK(msg != NULL);
    for (size_t i = 0; i < max; i++)
        msg[i] = (uint8_t)("websocket "[i % 10] + (i % 977 == 0));
    for (size_t pi = 0; pi < sizeof params / sizeof params[0]; pi++)
        for (int server = 0; server < 2; server++)
            for (size_t cmin = 0; cmin <= 1; cmin++) {
                set_current("pmd roundtrip", server ? "from server" : "from client");
                struct cipc__ws_deflate *dtx, *drx;
                CHECK_INT(cipc__ws_deflate_new(&params[pi], server, 0, &dtx), ==, 0);
                CHECK_INT(cipc__ws_deflate_new(&params[pi], !server, 0, &drx), ==, 0);
                struct cipc__ws_proto tx, rx;
                struct cipc__ws_proto_opts to = {
                    .is_server = server, .pmd = dtx, .compress_min = cmin};
                struct cipc__ws_proto_opts ro = {.is_server = !server, .pmd = drx};
                CHECK_INT(cipc__ws_proto_init(&tx, &to), ==, 0);
                CHECK_INT(cipc__ws_proto_init(&rx, &ro), ==, 0);
                for (int round = 0; round < 2; round++)
                    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                        size_t n = sizes[s];
                        unsigned op = s & 1 ? CIPC__WS_OP_TEXT : CIPC__WS_OP_BINARY;
                        struct cipc_buf out = CIPC_BUF_INIT;
                        CHECK_INT(cipc__ws_proto_send(&tx, op, msg, n, &out), ==, 0);
                        struct cipc__ws_header h;
                        int hl = cipc__ws_header_decode((const uint8_t *)out.data, out.len, &h);
                        CHECK_INT(hl, >, 0);
                        CHECK_INT(out.len, ==, (size_t)hl + h.len);
                        bool compressed = n > 0 && n >= (cmin ? cmin : 64);
                        CHECK_INT(h.rsv1, ==, compressed);
                        CHECK(h.fin && h.opcode == op && h.masked == !server);
                        if (n == 1 << 20)
                            CHECK_INT(h.len, <, n / 10); /* it did compress */
                        /* Feed in two pieces. */
                        size_t cut = out.len / 2, used;
                        struct cipc__ws_event ev;
                        CHECK_INT(cipc__ws_proto_feed(&rx, (uint8_t *)out.data, cut, &used, &ev),
                                  ==, 0);
                        CHECK_INT(ev.type, ==, CIPC__WS_EV_NONE);
                        CHECK_INT(cipc__ws_proto_feed(&rx, (uint8_t *)out.data + cut, out.len - cut,
                                                      &used, &ev),
                                  ==, 0);
                        CHECK_INT(ev.type, ==, CIPC__WS_EV_MESSAGE);
                        CHECK_INT(ev.opcode, ==, op);
                        CHECK_INT(ev.len, ==, n);
                        CHECK(n == 0 || memcmp(ev.data, msg, n) == 0);
                        cipc_buf_free(&out);
                    }
                /* Text is still checked before compressing. */
                struct cipc_buf out = CIPC_BUF_INIT;
                CHECK_INT(cipc__ws_proto_send(&tx, CIPC__WS_OP_TEXT, "\xff" S125, 126, &out), ==,
                          CIPC_EPROTO);
                CHECK_INT(out.len, ==, 0);
                cipc__ws_proto_free(&tx);
                cipc__ws_proto_free(&rx);
                cipc__ws_deflate_free(dtx);
                cipc__ws_deflate_free(drx);
            }
    free(msg);
}

int main(void)
{
    signal(SIGABRT, on_abort);
    test_table();
    test_fail_fast();
    test_zero_copy();
    test_reply_bytes();
    test_close_first();
    test_send_args();
    test_roundtrip();
    test_fragmented_roundtrip();
    test_long_lengths();
    test_pmd_roundtrip();
    return 0;
}
