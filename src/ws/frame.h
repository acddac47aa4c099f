/* src/ws/frame.h -- the WebSocket frame codec (RFC 6455 section 5), private to cipc.
 *
 * Pure functions over bytes: no I/O, no global state, no allocation except where a
 * cipc_buf is passed in. The connection engine (ws/proto.h) is built on these; the I/O
 * layer may also use cipc__ws_header_encode() directly to frame a payload it sends from
 * its own memory (zero-copy sends, one encoded frame broadcast to many connections).
 *
 * What is accepted, and the choices made:
 * - Header decoding (cipc__ws_header_decode) checks only what the bytes themselves say:
 *   the payload length must use the shortest form (the 16-bit form for lengths >= 126 and
 *   < 65536 only, the 64-bit form for >= 65536 only) and the 64-bit length must have its
 *   most significant bit clear (RFC 6455 5.2). Rules that depend on the connection
 *   (opcodes, RSV bits, masking direction, fragmentation, limits) are ws/proto.c's.
 * - The encoder always writes the shortest length form.
 * - UTF-8 (cipc__utf8_*) is validated strictly per RFC 3629: no overlong forms (C0, C1,
 *   E0 80..9F, F0 80..8F), no surrogates (ED A0..BF), nothing above U+10FFFF (F4 90..BF,
 *   F5..FF), and it fails at the first byte that cannot start or continue a valid
 *   sequence, so a stream is rejected as early as the bytes allow.
 * - Close codes (RFC 6455 7.4): 1000-1003, 1007-1014 and 3000-4999 are valid on the wire
 *   and may be sent; 1004, 1005, 1006, 1015, 1016-2999, < 1000 and >= 5000 are not.
 *   1012-1014 (registered with IANA after the RFC) count as valid.
 *
 * Threading: thread-safe (pure functions of their arguments). */
#ifndef CIPC_SRC_WS_FRAME_H
#define CIPC_SRC_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cipc/buf.h"
#include "cipc/error.h"

/* Opcodes (RFC 6455 5.2). 3-7 and 0xB-0xF are reserved. */
#define CIPC__WS_OP_CONT   0x0
#define CIPC__WS_OP_TEXT   0x1
#define CIPC__WS_OP_BINARY 0x2
#define CIPC__WS_OP_CLOSE  0x8
#define CIPC__WS_OP_PING   0x9
#define CIPC__WS_OP_PONG   0xA

/* Control frames (opcode >= 8) carry at most this many payload bytes. */
#define CIPC__WS_MAX_CONTROL 125
/* The longest frame header: 2 + 8 (64-bit length) + 4 (mask key). */
#define CIPC__WS_MAX_HEADER 14

/* Close codes with a meaning of their own here. */
#define CIPC__WS_CLOSE_NORMAL       1000
#define CIPC__WS_CLOSE_GOING_AWAY   1001
#define CIPC__WS_CLOSE_PROTOCOL     1002
#define CIPC__WS_CLOSE_UNSUPPORTED  1003
#define CIPC__WS_CLOSE_NO_STATUS    1005 /* never on the wire: "the close frame had no code" */
#define CIPC__WS_CLOSE_ABNORMAL     1006 /* never on the wire: "no close frame at all" */
#define CIPC__WS_CLOSE_INVALID_DATA 1007
#define CIPC__WS_CLOSE_POLICY       1008
#define CIPC__WS_CLOSE_TOO_BIG      1009
#define CIPC__WS_CLOSE_INTERNAL     1011

/* A decoded frame header. */
struct cipc__ws_header {
    bool fin;
    bool rsv1, rsv2, rsv3;
    bool masked;
    unsigned opcode; /* 0..15 */
    uint64_t len;    /* payload length */
    uint8_t key[4];  /* the mask key when `masked`, else zeros */
};

/* Encode a frame header into out[0..14): FIN, RSV1 (RSV2/3 are always 0), the opcode
 * (0..15, not checked), the payload length in its shortest form, and the mask key if
 * `mask_key` is not NULL (then the payload must be masked with it, cipc__ws_mask()).
 * Ownership: borrows `mask_key`. Returns the header length (2..14). */
size_t cipc__ws_header_encode(uint8_t out[CIPC__WS_MAX_HEADER], unsigned opcode, bool fin,
                              bool rsv1, uint64_t len, const uint8_t *mask_key);

/* The full header length (2, 4, 6, 8, 10 or 14) announced by its first two bytes. */
size_t cipc__ws_header_size(uint8_t b0, uint8_t b1);

/* Decode the frame header at p[0..n).
 * Returns the header length (> 0; the payload starts there) with *h filled, CIPC_EAGAIN
 * if n is less than that (*h unspecified), or CIPC_EPROTO for a length in a longer form
 * than needed or a 64-bit length with its top bit set. Never reads p[n] or beyond. */
int cipc__ws_header_decode(const uint8_t *p, size_t n, struct cipc__ws_header *h);

/* XOR p[0..n) in place with the mask key, where p[0] is byte `offset` of the payload (so a
 * payload can be unmasked piece by piece as it arrives). Masking twice restores the
 * bytes. Any alignment of p is fine. */
void cipc__ws_mask(uint8_t *p, size_t n, const uint8_t key[4], size_t offset);

/* Append one whole frame (header, then the payload, masked when mask_key is not NULL)
 * to `out`. Nothing is checked: this is the encoder under ws/proto.c and the tests, which
 * use it to write fragmented, reserved or otherwise invalid frames on purpose.
 * Ownership: copies `data`, borrows `mask_key`. Returns 0 or -ENOMEM (out unchanged). */
int cipc__ws_frame_append(struct cipc_buf *out, unsigned opcode, bool fin, bool rsv1,
                          const void *data, size_t n, const uint8_t *mask_key);

/* Incremental UTF-8 validator. Zero it (or cipc__utf8_init) before the first byte. */
struct cipc__utf8 {
    uint32_t state; /* continuation bytes still expected; 0 between characters; 4 failed */
    uint8_t lo, hi; /* the range allowed for the next continuation byte */
};

void cipc__utf8_init(struct cipc__utf8 *u);

/* Validate the next n bytes of a stream. Returns 0 if the bytes so far are valid UTF-8 or
 * a prefix of it, -1 as soon as a byte cannot start or continue a valid sequence; after
 * -1 every later call returns -1. */
int cipc__utf8_feed(struct cipc__utf8 *u, const uint8_t *p, size_t n);

/* True if the stream fed so far ends between characters (and never failed). */
bool cipc__utf8_complete(const struct cipc__utf8 *u);

/* One-shot: true if p[0..n) is valid UTF-8. */
bool cipc__utf8_valid(const void *p, size_t n);

/* True for the close codes valid on the wire and that an application may send:
 * 1000-1003, 1007-1014, 3000-4999. */
bool cipc__ws_close_code_sendable(unsigned code);

/* Parse a close frame's payload p[0..n) (RFC 6455 5.5.1, 7.4).
 * Accepted: an empty payload (then *code = 1005, CIPC__WS_CLOSE_NO_STATUS, and the reason
 * is empty), or a 2-byte big-endian code that cipc__ws_close_code_sendable() accepts
 * followed by a valid UTF-8 reason. *reason points into p (a view valid while p is
 * unchanged; not NUL-terminated).
 * Returns 0, or CIPC_EPROTO with *code set to the close code to fail the connection with:
 * 1002 for a 1-byte payload or an invalid code, 1007 for a reason that is not UTF-8. */
int cipc__ws_close_parse(const uint8_t *p, size_t n, uint16_t *code, const char **reason,
                         size_t *reason_len);

#endif
