/* fuzz/fuzz_ws_frame.c -- pairs with src/ws/frame.c and src/ws/proto.c (the WebSocket
 * frame codec and the connection engine built on it).
 *
 * The first input byte picks the setup: bit 0 the role (1: server, so frames must come
 * masked; 0: client), bit 1 permessage-deflate (with context takeover; fresh contexts for
 * every run), bit 2 small limits (max_message from bits 3-7, and max_frame on bit 3); the
 * rest is the byte stream received from the peer.
 *
 * The stream is fed whole, then in pieces whose sizes come from a generator seeded by the
 * input, then (up to 4 KiB) byte by byte, each piece in its own exact-size buffer; abort
 * unless all three give the same events (type, opcode, data, close code, reason), the
 * same final state and the same control frames queued in `out`. Invariants checked on
 * the way: feed returns 0; it consumes everything when there is no event and at least one
 * byte when there is; nothing at all comes after an ERROR event or the close that ends
 * the handshake; messages respect max_message and text is valid UTF-8; pings and pongs
 * carry at most 125 bytes; close codes are valid on the wire (or 1005) and reasons are
 * UTF-8; error codes are 1002, 1007 or 1009; `out` holds well-formed frames, masked
 * exactly in the client role. Finally the engine's sender is checked: a message made of
 * the input, sent by a fresh engine (compressed when permessage-deflate is on), parses
 * back to the same bytes in an engine of the other role. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws/deflate.h"
#include "ws/frame.h"
#include "ws/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BYTEWISE 4096

static const struct cipc__ws_pmd_params pmd_params = {.server_max_window_bits = 15};

struct setup {
    struct cipc__ws_proto_opts o;
    bool pmd;
};

struct engine {
    struct cipc__ws_proto p;
    struct cipc__ws_deflate *d;
};

static void engine_init(struct engine *e, const struct setup *s, bool is_server)
{
    struct cipc__ws_proto_opts o = s->o;
    o.is_server = is_server;
    e->d = NULL;
    if (s->pmd && cipc__ws_deflate_new(&pmd_params, is_server, 0, &e->d) != 0)
        abort();
    o.pmd = e->d;
    if (cipc__ws_proto_init(&e->p, &o) != 0)
        abort();
}

static void engine_free(struct engine *e)
{
    cipc__ws_proto_free(&e->p);
    cipc__ws_deflate_free(e->d);
}

static void put(struct cipc_buf *b, const void *p, size_t n)
{
    if (cipc_buf_append(b, p, n) != 0)
        abort();
}

/* Check one event and append its serialisation to `log`. */
static void record(const struct cipc__ws_proto *p, const struct cipc__ws_event *ev,
                   struct cipc_buf *log)
{
    if (!ev->data || !ev->reason)
        abort();
    switch (ev->type) {
    case CIPC__WS_EV_MESSAGE:
        if (ev->opcode != CIPC__WS_OP_TEXT && ev->opcode != CIPC__WS_OP_BINARY)
            abort();
        if (ev->len > p->max_message)
            abort();
        if (ev->opcode == CIPC__WS_OP_TEXT && !cipc__utf8_valid(ev->data, ev->len))
            abort();
        break;
    case CIPC__WS_EV_PING:
    case CIPC__WS_EV_PONG:
        if (ev->len > CIPC__WS_MAX_CONTROL)
            abort();
        break;
    case CIPC__WS_EV_CLOSE:
        if (ev->code != CIPC__WS_CLOSE_NO_STATUS && !cipc__ws_close_code_sendable(ev->code))
            abort();
        if (ev->reason_len > CIPC__WS_MAX_CONTROL - 2 ||
            !cipc__utf8_valid(ev->reason, ev->reason_len))
            abort();
        break;
    case CIPC__WS_EV_ERROR:
        if (ev->code != 1002 && ev->code != 1007 && ev->code != 1009)
            abort();
        if (ev->reason_len == 0 || ev->reason_len != strlen(ev->reason))
            abort();
        break;
    default:
        abort();
    }
    uint8_t h[1 + 1 + 2 + 8 + 8];
    uint64_t len = ev->len, rlen = ev->reason_len;
    h[0] = (uint8_t)ev->type;
    h[1] = (uint8_t)ev->opcode;
    memcpy(h + 2, &ev->code, 2);
    memcpy(h + 4, &len, 8);
    memcpy(h + 12, &rlen, 8);
    put(log, h, sizeof h);
    put(log, ev->data, ev->len);
    put(log, ev->reason, (size_t)rlen);
}

/* Check that p->out is a sequence of well-formed frames and append their kinds and
 * (unmasked) payloads to `log`. */
static void record_out(const struct cipc__ws_proto *p, struct cipc_buf *log)
{
    const uint8_t *b = (const uint8_t *)p->out.data;
    size_t pos = 0, n = p->out.len;
    while (pos < n) {
        struct cipc__ws_header h;
        int hl = cipc__ws_header_decode(b + pos, n - pos, &h);
        if (hl <= 0 || h.len > n - pos - (size_t)hl)
            abort();
        if (h.masked == p->is_server || !h.fin || h.rsv1 || h.rsv2 || h.rsv3)
            abort();
        if (h.opcode != CIPC__WS_OP_PONG && h.opcode != CIPC__WS_OP_CLOSE)
            abort();
        uint8_t pl[CIPC__WS_MAX_CONTROL];
        if (h.len > sizeof pl)
            abort();
        memcpy(pl, b + pos + hl, (size_t)h.len);
        if (h.masked)
            cipc__ws_mask(pl, (size_t)h.len, h.key, 0);
        if (h.opcode == CIPC__WS_OP_CLOSE && h.len) {
            uint16_t code;
            const char *reason;
            size_t rlen;
            if (cipc__ws_close_parse(pl, (size_t)h.len, &code, &reason, &rlen) != 0)
                abort();
        }
        uint8_t k = (uint8_t)h.opcode;
        put(log, &k, 1);
        put(log, pl, (size_t)h.len);
        pos += (size_t)hl + (size_t)h.len;
    }
}

/* A small generator for piece sizes. */
static uint32_t next_rand(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

/* Feed in[0..n) in pieces: mode 0 whole, 1 generated sizes, 2 byte by byte. Returns the
 * log of events and queued frames. */
static void run(const struct setup *s, const uint8_t *in, size_t n, int mode, uint32_t seed,
                struct cipc_buf *log)
{
    struct engine e;
    engine_init(&e, s, s->o.is_server);
    bool finished = false;
    size_t from = 0;
    while (from < n || (from == 0 && n == 0)) {
        size_t len = n - from;
        if (mode == 1)
            len = 1 + next_rand(&seed) % (seed & 0x100 ? 7 : 300);
        else if (mode == 2)
            len = 1;
        if (len > n - from)
            len = n - from;
        uint8_t *piece = malloc(len ? len : 1);
        if (!piece)
            abort();
        memcpy(piece, in + from, len);
        size_t off = 0;
        for (;;) {
            struct cipc__ws_event ev;
            size_t used = (size_t)-1;
            if (cipc__ws_proto_feed(&e.p, piece + off, len - off, &used, &ev) != 0)
                abort();
            if (used > len - off)
                abort();
            if (ev.type == CIPC__WS_EV_NONE) {
                if (used != len - off)
                    abort();
                break;
            }
            if (finished || used == 0)
                abort();
            record(&e.p, &ev, log);
            if (ev.type == CIPC__WS_EV_ERROR ||
                (ev.type == CIPC__WS_EV_CLOSE && cipc__ws_proto_state(&e.p) == CIPC__WS_CLOSED)) {
                finished = true;
                if (used != len - off || !cipc__ws_proto_should_close_tcp(&e.p))
                    abort();
            }
            off += used;
        }
        free(piece);
        from += len;
        if (n == 0)
            break;
    }
    if (finished != (cipc__ws_proto_state(&e.p) == CIPC__WS_CLOSED))
        abort();
    uint8_t st = (uint8_t)cipc__ws_proto_state(&e.p);
    put(log, &st, 1);
    record_out(&e.p, log);
    engine_free(&e);
}

/* Send `msg` from one engine and parse it back in the other role. */
static void roundtrip(const struct setup *s, const uint8_t *msg, size_t n)
{
    struct engine tx, rx;
    engine_init(&tx, s, s->o.is_server);
    engine_init(&rx, s, !s->o.is_server);
    struct cipc_buf out = CIPC_BUF_INIT;
    unsigned op = cipc__utf8_valid(msg, n) ? CIPC__WS_OP_TEXT : CIPC__WS_OP_BINARY;
    if (cipc__ws_proto_send(&tx.p, op, msg, n, &out) != 0)
        abort();
    struct cipc__ws_header h;
    int hl = cipc__ws_header_decode((const uint8_t *)out.data, out.len, &h);
    if (hl <= 0 || out.len != (size_t)hl + h.len || h.masked == s->o.is_server)
        abort();
    if (h.rsv1 != (s->pmd && n > 0 && n >= tx.p.compress_min))
        abort();
    size_t used;
    struct cipc__ws_event ev;
    if (cipc__ws_proto_feed(&rx.p, (uint8_t *)out.data, out.len, &used, &ev) != 0)
        abort();
    if (n > rx.p.max_message || (rx.p.max_frame && h.len > rx.p.max_frame)) {
        if (ev.type != CIPC__WS_EV_ERROR || ev.code != 1009)
            abort();
    } else if (ev.type != CIPC__WS_EV_MESSAGE || ev.opcode != op || ev.len != n ||
               (n && memcmp(ev.data, msg, n) != 0) || used != out.len) {
        abort();
    }
    cipc_buf_free(&out);
    engine_free(&tx);
    engine_free(&rx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t sel = data[0];
    struct setup s;
    memset(&s, 0, sizeof s);
    s.o.is_server = sel & 1;
    s.pmd = (sel & 2) != 0;
    if (sel & 4) {
        s.o.max_message = 1 + (size_t)(sel >> 3) * 13;
        if (sel & 8)
            s.o.max_frame = 1 + (size_t)(sel >> 4) * 5;
    }
    const uint8_t *in = data + 1;
    size_t n = size - 1;

    struct cipc_buf whole = CIPC_BUF_INIT, other = CIPC_BUF_INIT;
    run(&s, in, n, 0, 0, &whole);
    uint32_t seed = (uint32_t)size * 2654435761u ^ (n ? in[n - 1] : 0);
    run(&s, in, n, 1, seed, &other);
    if (other.len != whole.len || memcmp(other.data, whole.data, whole.len) != 0)
        abort();
    if (n <= MAX_BYTEWISE) {
        cipc_buf_reset(&other);
        run(&s, in, n, 2, 0, &other);
        if (other.len != whole.len || memcmp(other.data, whole.data, whole.len) != 0)
            abort();
    }
    cipc_buf_free(&whole);
    cipc_buf_free(&other);

    roundtrip(&s, in, n);
    return 0;
}
