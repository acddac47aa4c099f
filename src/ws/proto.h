/* src/ws/proto.h -- the WebSocket protocol engine for one connection (RFC 6455), sans-I/O,
 * private to cipc.
 *
 * In the manner of Python's wsproto: the I/O layer hands received bytes to
 * cipc__ws_proto_feed() and gets back events (a message, a ping, a pong, the peer's
 * close, or a protocol error); the bytes the engine wants sent (pong replies, the close
 * echo, the close that fails the connection, and whatever cipc__ws_proto_send_control()
 * and cipc__ws_proto_close() queue) collect in `p->out`, which the I/O layer drains after
 * every call. No sockets, threads, clocks or timers: timeouts (waiting for the peer's
 * close, closing TCP) are the I/O layer's.
 *
 * What is accepted, and the choices made (close codes are those of the _ERROR event, and
 * of the close frame queued for it):
 * - Server role: every frame from the peer must be masked; we send unmasked. Client role:
 *   the reverse, and every frame we send is masked with a fresh key from OpenSSL's
 *   RAND_bytes (drawn in batches of 32 keys). Violations: 1002.
 * - RSV1 only on the first frame of a TEXT or BINARY message, and only when
 *   permessage-deflate was negotiated (opts.pmd); RSV2 and RSV3 never. Else 1002.
 * - Reserved opcodes (3-7, 0xB-0xF): 1002. Control frames with FIN clear or a payload
 *   over 125 bytes: 1002. CONT with no message in progress, TEXT or BINARY while one is:
 *   1002. Control frames may come between the fragments of a message.
 * - A length not in its shortest form, or a 64-bit length with the top bit set: 1002.
 * - Limits, checked on the declared length as soon as the header is complete (before any
 *   payload byte is buffered): a data frame longer than max_frame (if set), or an
 *   uncompressed message whose fragments add up to more than max_message: 1009. A
 *   compressed message is limited by its inflated size (max_message), checked as it
 *   inflates (its compressed bytes are never buffered), and its frames by max_frame (if
 *   set) on the wire. Control frames are limited to 125 bytes only.
 * - TEXT messages must be UTF-8: each fragment is validated as its bytes arrive (the
 *   inflated bytes, for compressed messages), so invalid text fails at the first bad
 *   byte, before the frame or message is complete: 1007. A message ending mid-character:
 *   1007 at its last frame.
 * - Corrupt compressed data: 1002 (a framing-level failure rather than bad text; RFC 7692
 *   leaves the code open).
 * - Close frames: a 1-byte payload or a code that is invalid on the wire (see
 *   cipc__ws_close_code_sendable in ws/frame.h): 1002; a reason that is not UTF-8: 1007.
 *   A valid close is answered at once with a close carrying the same code and no reason
 *   (an empty close if it had no code), unless we sent ours already.
 * - After an _ERROR event, and once both closes have been seen, the engine is finished:
 *   feed consumes and ignores everything (data after a close is never parsed).
 * - Failures of our own (out of memory, a compression error) fail the connection with
 *   1011.
 *
 * Threading: a cipc__ws_proto belongs to one thread at a time; the functions here keep no
 * global state. */
#ifndef CIPC_SRC_WS_PROTO_H
#define CIPC_SRC_WS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cipc/buf.h"
#include "cipc/error.h"
#include "ws/frame.h"

struct cipc__ws_deflate; /* ws/deflate.h: the permessage-deflate contexts of a connection */

#define CIPC__WS_DEFAULT_MAX_MESSAGE  (16u * 1024 * 1024)
#define CIPC__WS_DEFAULT_COMPRESS_MIN 64

struct cipc__ws_proto_opts {
    bool is_server;     /* the role; see above for what it changes */
    size_t max_message; /* most bytes in a (reassembled, inflated) message; 0: 16 MiB */
    size_t max_frame;   /* most payload bytes in one data frame on the wire; 0: no limit of
                           its own (an uncompressed frame is still held to max_message, and
                           a compressed one, which may be a little longer than what it
                           inflates to, by its inflated size) */
    struct cipc__ws_deflate *pmd; /* NULL unless permessage-deflate was negotiated; borrowed:
                                     it must outlive the engine, which never frees it */
    size_t compress_min;          /* with pmd, messages shorter than this are sent uncompressed;
                                     0: 64 (CIPC__WS_DEFAULT_COMPRESS_MIN); 1 compresses every
                                     non-empty message. Empty messages are never compressed. */
};

enum cipc__ws_event_type {
    CIPC__WS_EV_NONE = 0, /* every input byte was consumed; feed more */
    CIPC__WS_EV_MESSAGE,  /* a whole TEXT or BINARY message: opcode, data, len */
    CIPC__WS_EV_PING,     /* a ping (data, len); the pong is queued in `out` (not once we
                             sent a close) */
    CIPC__WS_EV_PONG,     /* a pong (data, len) */
    CIPC__WS_EV_CLOSE,    /* the peer's close: code (1005 if none), reason, reason_len */
    CIPC__WS_EV_ERROR     /* protocol failure: code is the close code of the close we
                             queued (none if we had sent one already), reason a short
                             message in English (a static string, NUL-terminated) */
};

struct cipc__ws_event {
    int type;            /* enum cipc__ws_event_type */
    unsigned opcode;     /* MESSAGE: CIPC__WS_OP_TEXT or _BINARY; else the frame's opcode */
    const uint8_t *data; /* a view, never NULL: valid until the next cipc__ws_proto_feed()
                            or _free() and while the input buffer is unchanged (a message
                            may point into it); TEXT data is valid UTF-8 */
    size_t len;
    uint16_t code;      /* CLOSE, ERROR */
    const char *reason; /* CLOSE (a view like data, not NUL-terminated), ERROR; never NULL */
    size_t reason_len;
};

enum cipc__ws_state {
    CIPC__WS_OPEN = 0,
    CIPC__WS_CLOSE_SENT,     /* we sent a close and wait for the peer's */
    CIPC__WS_CLOSE_RECEIVED, /* never reported: the engine answers a close at once */
    CIPC__WS_CLOSED          /* both closes seen, or the connection failed */
};

/* Defined here so it can be embedded in a connection; the fields starting with '_' are
 * private. */
struct cipc__ws_proto {
    struct cipc_buf out; /* bytes to send, in order; the I/O layer sends and consumes them */

    bool is_server;
    size_t max_message, max_frame, compress_min;
    struct cipc__ws_deflate *pmd;

    unsigned _state;   /* enum cipc__ws_state */
    bool _done;        /* feed ignores all input */
    bool _release_msg; /* the last event pointed into _msg: empty it on the next feed */
    /* The frame being parsed. */
    bool _in_payload; /* false: reading a header */
    uint8_t _hdr[CIPC__WS_MAX_HEADER];
    uint8_t _hlen;
    struct cipc__ws_header _h;
    uint64_t _fpos;                     /* payload bytes of this frame consumed so far */
    uint8_t _ctl[CIPC__WS_MAX_CONTROL]; /* a control frame's payload */
    /* The data message in progress. */
    bool _in_msg, _compressed;
    unsigned _msg_op;
    struct cipc__utf8 _utf8;
    struct cipc_buf _msg;
    /* Mask keys (client role). */
    uint8_t _keys[128];
    unsigned _key_pos;
};

/* Set up an engine. `opts` is copied (the pmd it points to is borrowed).
 * Returns 0, or CIPC_EINTERNAL if OpenSSL cannot supply random bytes (client role); then
 * there is nothing to free. */
int cipc__ws_proto_init(struct cipc__ws_proto *p, const struct cipc__ws_proto_opts *opts);

/* Free the buffers (out included). The pmd is not touched. NULL does nothing. */
void cipc__ws_proto_free(struct cipc__ws_proto *p);

/* Parse received bytes in[0..n) up to the first event.
 *
 * Masked payloads are unmasked in place, so `in` must be writable, and an uncompressed
 * message that arrives as one frame wholly inside `in` is returned as a view into it
 * (no copy); everything else is assembled inside the engine. The input may be cut at any
 * byte: partial headers, control payloads and fragments are kept between calls, and the
 * events are the same however the bytes are split.
 *
 * *consumed gets the number of bytes used: up to the end of the frame that produced the
 * event, or n when the event is NONE. After an ERROR event, a CLOSE that completes the
 * closing handshake, and in every call after those, *consumed is n and the rest is
 * ignored. Call again with in + *consumed until the event is NONE, and drain `p->out`
 * after every call.
 *
 * Returns 0 (the event is in *ev), or -ENOMEM (or another negative code from pmd) if a
 * failure of our own stopped the engine; *ev is then an ERROR event with code 1011 and the
 * engine is finished, like after any ERROR. */
int cipc__ws_proto_feed(struct cipc__ws_proto *p, uint8_t *in, size_t n, size_t *consumed,
                        struct cipc__ws_event *ev);

/* Append one whole message frame to `out` (not p->out, so the I/O layer can send it from
 * wherever it likes): compressed, with RSV1, when pmd is set and n >= compress_min;
 * masked in the client role.
 * Ownership: copies `data`. Returns 0; -EINVAL for an opcode other than TEXT or BINARY;
 * CIPC_EPROTO for TEXT that is not valid UTF-8; CIPC_ECLOSING once we sent a close (or
 * the connection is closed); -ENOMEM, CIPC_EINTERNAL or a pmd error, with `out`
 * unchanged. */
int cipc__ws_proto_send(struct cipc__ws_proto *p, unsigned opcode, const void *data, size_t n,
                        struct cipc_buf *out);

/* Queue a PING or PONG with payload data[0..n) in p->out.
 * Ownership: copies `data`. Returns 0; -EINVAL for another opcode or n > 125;
 * CIPC_ECLOSING once we sent a close; -ENOMEM or CIPC_EINTERNAL. */
int cipc__ws_proto_send_control(struct cipc__ws_proto *p, unsigned opcode, const void *data,
                                size_t n);

/* Start the closing handshake: queue a close frame with `code` and the UTF-8 `reason`
 * (n bytes, at most 123) in p->out; the state becomes CLOSE_SENT. Code 1005
 * (CIPC__WS_CLOSE_NO_STATUS) sends a close with no payload (n must then be 0).
 * Ownership: copies `reason`. Returns 0; -EINVAL for a code that
 * cipc__ws_close_code_sendable() rejects, a reason too long or not UTF-8; CIPC_ECLOSING
 * if we sent a close already or the connection is closed; -ENOMEM or CIPC_EINTERNAL. */
int cipc__ws_proto_close(struct cipc__ws_proto *p, uint16_t code, const char *reason, size_t n);

/* The bytes to send (the same as &p->out). */
struct cipc_buf *cipc__ws_proto_out(struct cipc__ws_proto *p);

/* The closing-handshake state (enum cipc__ws_state). */
int cipc__ws_proto_state(const struct cipc__ws_proto *p);

/* True once the connection is CLOSED: the I/O layer sends what is left in p->out and
 * then, as the server, closes TCP; as the client, it waits briefly for the server to
 * close TCP first (RFC 6455 7.1.1) and closes it itself after that. */
bool cipc__ws_proto_should_close_tcp(const struct cipc__ws_proto *p);

#endif
