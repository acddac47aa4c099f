/* The WebSocket protocol engine for one connection: frame parsing with the RFC 6455
 * rules, message assembly, automatic replies, the closing handshake, and sending.
 * See ws/proto.h for what is accepted. */
#include <errno.h>
#include <string.h>

#include <openssl/rand.h>

#include "ws/deflate.h"
#include "ws/proto.h"

/* After a message is delivered, an assembly buffer up to this size is kept for the next
 * one; a bigger one is freed, so an idle connection does not hold a huge buffer. */
#define KEEP_MSG_CAP (64u * 1024)

static const uint8_t no_bytes[1];

/* The reasons of the 1007 failures, the same on every path. */
static const char BAD_UTF8[] = "invalid UTF-8 in a text message";
static const char CUT_UTF8[] = "text message ends inside a character";

static void ev_clear(struct cipc__ws_event *ev)
{
    ev->type = CIPC__WS_EV_NONE;
    ev->opcode = 0;
    ev->data = no_bytes;
    ev->len = 0;
    ev->code = 0;
    ev->reason = "";
    ev->reason_len = 0;
}

/* A fresh mask key from the batch drawn from RAND_bytes, or NULL if OpenSSL fails.
 * Called by queue_frame() and cipc__ws_proto_send() in the client role. */
static const uint8_t *next_key(struct cipc__ws_proto *p)
{
    if (p->_key_pos + 4 > sizeof p->_keys) {
        if (RAND_bytes(p->_keys, (int)sizeof p->_keys) != 1)
            return NULL;
        p->_key_pos = 0;
    }
    const uint8_t *k = p->_keys + p->_key_pos;
    p->_key_pos += 4;
    return k;
}

/* Append one frame to `out`, masked in the client role. Returns 0, -ENOMEM or
 * CIPC_EINTERNAL (no random bytes). */
static int queue_frame(struct cipc__ws_proto *p, struct cipc_buf *out, unsigned opcode,
                       const void *data, size_t n)
{
    const uint8_t *key = NULL;
    if (!p->is_server && !(key = next_key(p)))
        return CIPC_EINTERNAL;
    return cipc__ws_frame_append(out, opcode, true, false, data, n, key);
}

/* Queue a close frame in p->out: no payload for 1005, else the code and the reason. */
static int queue_close(struct cipc__ws_proto *p, unsigned code, const char *reason, size_t n)
{
    uint8_t pl[CIPC__WS_MAX_CONTROL];
    if (code == CIPC__WS_CLOSE_NO_STATUS)
        return queue_frame(p, &p->out, CIPC__WS_OP_CLOSE, NULL, 0);
    if (n > sizeof pl - 2)
        n = sizeof pl - 2;
    pl[0] = (uint8_t)(code >> 8);
    pl[1] = (uint8_t)code;
    if (n)
        memcpy(pl + 2, reason, n);
    return queue_frame(p, &p->out, CIPC__WS_OP_CLOSE, pl, n + 2);
}

/* Fail the connection (RFC 6455 7.1.7): report an ERROR event, queue our close unless we
 * sent one already, and stop parsing. Returns 0, or the error from queueing the close. */
static int fail(struct cipc__ws_proto *p, struct cipc__ws_event *ev, unsigned code,
                const char *reason)
{
    ev_clear(ev);
    ev->type = CIPC__WS_EV_ERROR;
    ev->code = (uint16_t)code;
    ev->reason = reason;
    ev->reason_len = strlen(reason);
    int rc = 0;
    if (p->_state == CIPC__WS_OPEN)
        rc = queue_close(p, code, reason, ev->reason_len);
    p->_state = CIPC__WS_CLOSED;
    p->_done = true;
    return rc;
}

/* Fail the connection because of a failure of our own (rc < 0): 1011, and feed returns
 * rc. */
static int fail_local(struct cipc__ws_proto *p, struct cipc__ws_event *ev, int rc)
{
    (void)fail(p, ev, CIPC__WS_CLOSE_INTERNAL, "internal error");
    return rc;
}

/* Map an error from the inflater. */
static int fail_inflate(struct cipc__ws_proto *p, struct cipc__ws_event *ev, int rc)
{
    if (rc == CIPC_ETOOBIG)
        return fail(p, ev, CIPC__WS_CLOSE_TOO_BIG, "message too big");
    if (rc == CIPC_EPROTO)
        return fail(p, ev, CIPC__WS_CLOSE_PROTOCOL, "invalid compressed data");
    return fail_local(p, ev, rc);
}

int cipc__ws_proto_init(struct cipc__ws_proto *p, const struct cipc__ws_proto_opts *opts)
{
    static const struct cipc__ws_proto_opts defaults;
    if (!opts)
        opts = &defaults;
    memset(p, 0, sizeof *p);
    p->is_server = opts->is_server;
    p->max_message = opts->max_message ? opts->max_message : CIPC__WS_DEFAULT_MAX_MESSAGE;
    p->max_frame = opts->max_frame; /* 0: none of its own (see proto.h) */
    p->compress_min = opts->compress_min ? opts->compress_min : CIPC__WS_DEFAULT_COMPRESS_MIN;
    p->pmd = opts->pmd;
    p->_state = CIPC__WS_OPEN;
    cipc__utf8_init(&p->_utf8);
    p->_key_pos = (unsigned)sizeof p->_keys;
    if (!p->is_server && !next_key(p))
        return CIPC_EINTERNAL;
    p->_key_pos = 0;
    return 0;
}

void cipc__ws_proto_free(struct cipc__ws_proto *p)
{
    if (!p)
        return;
    cipc_buf_free(&p->out);
    cipc_buf_free(&p->_msg);
}

static bool is_control(unsigned op)
{
    return op >= 8;
}

/* Check what the first two header bytes say (RFC 6455 5.2-5.5), so that a bad frame fails
 * before the rest of its header arrives. Returns 0 or the result of fail(); *failed is
 * set when the frame is rejected. Called by cipc__ws_proto_feed(). */
static int check_start(struct cipc__ws_proto *p, struct cipc__ws_event *ev, bool *failed)
{
    uint8_t b0 = p->_hdr[0], b1 = p->_hdr[1];
    unsigned op = b0 & 0x0f, len7 = b1 & 0x7f;
    bool fin = b0 & 0x80, rsv1 = b0 & 0x40, masked = b1 & 0x80;
    const char *why = NULL;
    *failed = true;
    if (b0 & 0x30)
        why = "RSV2 or RSV3 set";
    else if ((op >= 3 && op <= 7) || op >= 0xb)
        why = "reserved opcode";
    else if (is_control(op) && !fin)
        why = "fragmented control frame";
    else if (is_control(op) && len7 > CIPC__WS_MAX_CONTROL)
        why = "control frame over 125 bytes";
    else if (rsv1 && !p->pmd)
        why = "RSV1 set without permessage-deflate";
    else if (rsv1 && (is_control(op) || op == CIPC__WS_OP_CONT))
        why = "RSV1 set on a continuation or control frame";
    else if (p->is_server && !masked)
        why = "unmasked frame from the client";
    else if (!p->is_server && masked)
        why = "masked frame from the server";
    else if (op == CIPC__WS_OP_CONT && !p->_in_msg)
        why = "continuation frame without a message";
    else if ((op == CIPC__WS_OP_TEXT || op == CIPC__WS_OP_BINARY) && p->_in_msg)
        why = "new message before the previous one ended";
    if (why)
        return fail(p, ev, CIPC__WS_CLOSE_PROTOCOL, why);
    *failed = false;
    return 0;
}

/* Validate and store (or inflate) a piece of a data frame's payload, already unmasked.
 * Returns 0, or the result of fail() / fail_local() with ev set to ERROR. Called by
 * cipc__ws_proto_feed(). */
static int data_piece(struct cipc__ws_proto *p, const uint8_t *d, size_t n,
                      struct cipc__ws_event *ev)
{
    if (!p->_compressed) {
        if (p->_msg_op == CIPC__WS_OP_TEXT && cipc__utf8_feed(&p->_utf8, d, n) < 0)
            return fail(p, ev, CIPC__WS_CLOSE_INVALID_DATA, BAD_UTF8);
        int rc = cipc_buf_append(&p->_msg, d, n);
        return rc < 0 ? fail_local(p, ev, rc) : 0;
    }
    size_t before = p->_msg.len;
    int rc = cipc__ws_inflate_feed(p->pmd, d, n, false, &p->_msg, p->max_message);
    if (p->_msg_op == CIPC__WS_OP_TEXT && p->_msg.len > before &&
        cipc__utf8_feed(&p->_utf8, (const uint8_t *)p->_msg.data + before, p->_msg.len - before) <
            0)
        return fail(p, ev, CIPC__WS_CLOSE_INVALID_DATA, BAD_UTF8);
    return rc < 0 ? fail_inflate(p, ev, rc) : 0;
}

/* A whole frame has been read: produce its event (none for a data frame that does not end
 * its message) and the automatic replies. Called by cipc__ws_proto_feed(). */
static int frame_end(struct cipc__ws_proto *p, struct cipc__ws_event *ev)
{
    const struct cipc__ws_header *h = &p->_h;
    size_t len = (size_t)h->len;
    int rc;
    if (h->opcode == CIPC__WS_OP_PING || h->opcode == CIPC__WS_OP_PONG) {
        ev->type = h->opcode == CIPC__WS_OP_PING ? CIPC__WS_EV_PING : CIPC__WS_EV_PONG;
        ev->opcode = h->opcode;
        ev->data = p->_ctl;
        ev->len = len;
        if (h->opcode == CIPC__WS_OP_PING && p->_state == CIPC__WS_OPEN &&
            (rc = queue_frame(p, &p->out, CIPC__WS_OP_PONG, p->_ctl, len)) < 0)
            return fail_local(p, ev, rc);
        return 0;
    }
    if (h->opcode == CIPC__WS_OP_CLOSE) {
        uint16_t code;
        const char *reason;
        size_t rlen;
        if (cipc__ws_close_parse(p->_ctl, len, &code, &reason, &rlen) < 0)
            return fail(p, ev, code,
                        code == CIPC__WS_CLOSE_INVALID_DATA ? "invalid UTF-8 in the close reason"
                        : len == 1                          ? "close payload of 1 byte"
                                                            : "invalid close code");
        ev->type = CIPC__WS_EV_CLOSE;
        ev->opcode = CIPC__WS_OP_CLOSE;
        ev->data = p->_ctl;
        ev->len = len;
        ev->code = code;
        ev->reason = reason;
        ev->reason_len = rlen;
        bool echo = p->_state == CIPC__WS_OPEN;
        p->_state = CIPC__WS_CLOSED;
        p->_done = true;
        if (echo && (rc = queue_close(p, code, NULL, 0)) < 0)
            return fail_local(p, ev, rc);
        return 0;
    }
    /* A data frame. */
    if (!h->fin)
        return 0;
    if (p->_compressed) {
        size_t before = p->_msg.len;
        rc = cipc__ws_inflate_feed(p->pmd, NULL, 0, true, &p->_msg, p->max_message);
        if (p->_msg_op == CIPC__WS_OP_TEXT && p->_msg.len > before &&
            cipc__utf8_feed(&p->_utf8, (const uint8_t *)p->_msg.data + before,
                            p->_msg.len - before) < 0)
            return fail(p, ev, CIPC__WS_CLOSE_INVALID_DATA, BAD_UTF8);
        if (rc < 0)
            return fail_inflate(p, ev, rc);
    }
    if (p->_msg_op == CIPC__WS_OP_TEXT && !cipc__utf8_complete(&p->_utf8))
        return fail(p, ev, CIPC__WS_CLOSE_INVALID_DATA, CUT_UTF8);
    ev->type = CIPC__WS_EV_MESSAGE;
    ev->opcode = p->_msg_op;
    ev->data = p->_msg.len ? (const uint8_t *)p->_msg.data : no_bytes;
    ev->len = p->_msg.len;
    p->_in_msg = false;
    p->_release_msg = true;
    return 0;
}

/* The header is complete in p->_hdr: decode it and apply the rules that need the whole
 * header (length encoding, limits), then set up the message state for a data frame.
 * Returns 0 or the result of fail(); *failed tells which. */
static int header_done(struct cipc__ws_proto *p, struct cipc__ws_event *ev, bool *failed)
{
    struct cipc__ws_header *h = &p->_h;
    *failed = true;
    if (cipc__ws_header_decode(p->_hdr, p->_hlen, h) < 0)
        return fail(p, ev, CIPC__WS_CLOSE_PROTOCOL,
                    (p->_hdr[1] & 0x7f) == 127 && (p->_hdr[2] & 0x80)
                        ? "64-bit payload length with the top bit set"
                        : "payload length not in its shortest form");
    if (!is_control(h->opcode)) {
        bool compressed = h->opcode == CIPC__WS_OP_CONT ? p->_compressed : h->rsv1;
        if (p->max_frame && h->len > p->max_frame)
            return fail(p, ev, CIPC__WS_CLOSE_TOO_BIG, "frame too big");
        size_t have = h->opcode == CIPC__WS_OP_CONT ? p->_msg.len : 0;
        if (!compressed && h->len > p->max_message - have)
            return fail(p, ev, CIPC__WS_CLOSE_TOO_BIG, "message too big");
    }
    *failed = false;
    return 0;
}

/* Start assembling the message that a TEXT or BINARY frame begins. */
static void message_start(struct cipc__ws_proto *p)
{
    p->_in_msg = true;
    p->_msg_op = p->_h.opcode;
    p->_compressed = p->_h.rsv1;
    cipc__utf8_init(&p->_utf8);
    p->_msg.len = 0;
}

int cipc__ws_proto_feed(struct cipc__ws_proto *p, uint8_t *in, size_t n, size_t *consumed,
                        struct cipc__ws_event *ev)
{
    int rc;
    bool failed;
    size_t pos = 0;
    ev_clear(ev);
    *consumed = n;
    if (p->_release_msg) {
        p->_release_msg = false;
        if (p->_msg.cap > KEEP_MSG_CAP)
            cipc_buf_free(&p->_msg);
        else
            cipc_buf_reset(&p->_msg);
    }
    if (p->_done)
        return 0;
    for (;;) {
        if (!p->_in_payload) {
            if (pos == n)
                break;
            if (p->_hlen < 2) {
                size_t want = 2 - (size_t)p->_hlen;
                size_t take = want < n - pos ? want : n - pos;
                memcpy(p->_hdr + p->_hlen, in + pos, take);
                p->_hlen = (uint8_t)(p->_hlen + take);
                pos += take;
                if (p->_hlen < 2)
                    break;
                if ((rc = check_start(p, ev, &failed)) < 0 || failed)
                    return rc;
            }
            size_t need = cipc__ws_header_size(p->_hdr[0], p->_hdr[1]);
            size_t take = need - p->_hlen < n - pos ? need - p->_hlen : n - pos;
            memcpy(p->_hdr + p->_hlen, in + pos, take);
            p->_hlen = (uint8_t)(p->_hlen + take);
            pos += take;
            if (p->_hlen < need)
                break;
            if ((rc = header_done(p, ev, &failed)) < 0 || failed)
                return rc;
            p->_hlen = 0;
            p->_in_payload = true;
            p->_fpos = 0;
            const struct cipc__ws_header *h = &p->_h;
            if (h->opcode == CIPC__WS_OP_TEXT || h->opcode == CIPC__WS_OP_BINARY) {
                if (h->fin && !h->rsv1 && h->len <= n - pos) {
                    /* The fast path: a whole uncompressed message, delivered in place. */
                    size_t len = (size_t)h->len;
                    if (h->masked)
                        cipc__ws_mask(in + pos, len, h->key, 0);
                    if (h->opcode == CIPC__WS_OP_TEXT) {
                        struct cipc__utf8 u;
                        cipc__utf8_init(&u);
                        if (cipc__utf8_feed(&u, in + pos, len) < 0)
                            return fail(p, ev, CIPC__WS_CLOSE_INVALID_DATA, BAD_UTF8);
                        if (!cipc__utf8_complete(&u))
                            return fail(p, ev, CIPC__WS_CLOSE_INVALID_DATA, CUT_UTF8);
                    }
                    p->_in_payload = false;
                    ev->type = CIPC__WS_EV_MESSAGE;
                    ev->opcode = h->opcode;
                    ev->data = len ? in + pos : no_bytes;
                    ev->len = len;
                    *consumed = pos + len;
                    return 0;
                }
                message_start(p);
            }
        }
        const struct cipc__ws_header *h = &p->_h;
        uint64_t left = h->len - p->_fpos;
        size_t take = left < n - pos ? (size_t)left : n - pos;
        if (take) {
            uint8_t *d = in + pos;
            if (h->masked)
                cipc__ws_mask(d, take, h->key, (size_t)(p->_fpos & 3));
            pos += take;
            p->_fpos += take;
            if (is_control(h->opcode))
                memcpy(p->_ctl + (p->_fpos - take), d, take);
            else if ((rc = data_piece(p, d, take, ev)) < 0 || ev->type != CIPC__WS_EV_NONE)
                return rc;
        }
        if (p->_fpos < h->len)
            break;
        p->_in_payload = false;
        rc = frame_end(p, ev);
        if (ev->type != CIPC__WS_EV_NONE) {
            *consumed = p->_done ? n : pos;
            return rc;
        }
    }
    *consumed = n;
    return 0;
}

int cipc__ws_proto_send(struct cipc__ws_proto *p, unsigned opcode, const void *data, size_t n,
                        struct cipc_buf *out)
{
    if (opcode != CIPC__WS_OP_TEXT && opcode != CIPC__WS_OP_BINARY)
        return -EINVAL;
    if (p->_state != CIPC__WS_OPEN)
        return CIPC_ECLOSING;
    if (opcode == CIPC__WS_OP_TEXT && !cipc__utf8_valid(data, n))
        return CIPC_EPROTO;
    if (!p->pmd || n == 0 || n < p->compress_min)
        return queue_frame(p, out, opcode, data, n);

    /* Compress after room for the longest header, then slide the payload down to meet
     * the real header. */
    const uint8_t *key = NULL;
    if (!p->is_server && !(key = next_key(p)))
        return CIPC_EINTERNAL;
    size_t start = out->len;
    int rc = cipc_buf_reserve(out, CIPC__WS_MAX_HEADER);
    if (rc < 0)
        return rc;
    out->len += CIPC__WS_MAX_HEADER;
    rc = cipc__ws_deflate_message(p->pmd, data, n, out);
    if (rc < 0) {
        out->len = start;
        out->data[start] = '\0';
        return rc;
    }
    size_t clen = out->len - start - CIPC__WS_MAX_HEADER;
    uint8_t hdr[CIPC__WS_MAX_HEADER];
    size_t hl = cipc__ws_header_encode(hdr, opcode, true, true, clen, key);
    uint8_t *base = (uint8_t *)out->data + start;
    memmove(base + hl, base + CIPC__WS_MAX_HEADER, clen);
    memcpy(base, hdr, hl);
    if (key)
        cipc__ws_mask(base + hl, clen, key, 0);
    out->len = start + hl + clen;
    out->data[out->len] = '\0';
    return 0;
}

int cipc__ws_proto_send_control(struct cipc__ws_proto *p, unsigned opcode, const void *data,
                                size_t n)
{
    if ((opcode != CIPC__WS_OP_PING && opcode != CIPC__WS_OP_PONG) || n > CIPC__WS_MAX_CONTROL)
        return -EINVAL;
    if (p->_state != CIPC__WS_OPEN)
        return CIPC_ECLOSING;
    return queue_frame(p, &p->out, opcode, data, n);
}

int cipc__ws_proto_close(struct cipc__ws_proto *p, uint16_t code, const char *reason, size_t n)
{
    if (code == CIPC__WS_CLOSE_NO_STATUS ? n != 0 : !cipc__ws_close_code_sendable(code))
        return -EINVAL;
    if (n > CIPC__WS_MAX_CONTROL - 2 || !cipc__utf8_valid(reason, n))
        return -EINVAL;
    if (p->_state != CIPC__WS_OPEN)
        return CIPC_ECLOSING;
    int rc = queue_close(p, code, reason, n);
    if (rc < 0)
        return rc;
    p->_state = CIPC__WS_CLOSE_SENT;
    return 0;
}

struct cipc_buf *cipc__ws_proto_out(struct cipc__ws_proto *p)
{
    return &p->out;
}

int cipc__ws_proto_state(const struct cipc__ws_proto *p)
{
    return (int)p->_state;
}

bool cipc__ws_proto_should_close_tcp(const struct cipc__ws_proto *p)
{
    return p->_state == CIPC__WS_CLOSED;
}
