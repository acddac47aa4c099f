/* src/ws/ws.h -- the cipc_ws connection object, private to cipc: one WebSocket connection
 * over some byte transport (a cipc_server connection after the upgrade, or a client
 * socket). It drives the protocol engine (proto.h) with what the transport reads, calls
 * the user's handlers, and owns the send queue with its slow-consumer policy.
 *
 * The transport gives four operations (struct cipc__ws_transport) and calls back:
 * cipc__ws_input() with received bytes, cipc__ws_writable() when bytes it accepted have
 * been written, cipc__ws_timer() when the timer it arms fires, and cipc__ws_gone() once
 * the socket is closed (the cipc_ws is freed there, after on_close).
 *
 * Write path: frames up to CIPC__WS_CORK_MAX bytes are gathered in the cipc_ws's cork
 * buffer and leave together in one send when the transport calls cipc__ws_flush() (see
 * `defer`), so a burst of small messages (an echo of pipelined messages, a broadcast)
 * costs one system call per connection rather than one per message. The cork goes to the
 * transport (which writes what the socket takes and copies the rest) while the transport
 * holds less than CIPC__WS_LOW_WATER bytes; beyond that, messages wait in the cipc_ws's
 * own queue, from which the slow-consumer policy can drop them. cipc_ws_buffered() is the
 * cork, the queue and what the transport holds.
 *
 * Threading: a cipc_ws and its transport belong to one loop thread. */
#ifndef CIPC_SRC_WS_WS_H
#define CIPC_SRC_WS_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cipc/ws.h"
#include "ws/proto.h"

struct cipc__ws_pmd_params; /* ws/handshake.h */

/* Bytes the transport may hold before messages queue in the cipc_ws. */
#define CIPC__WS_LOW_WATER (256u * 1024)

/* Frames larger than this bypass the cork (they are worth a system call of their own). */
#define CIPC__WS_CORK_MAX (8u * 1024)

/* A cork that would grow past this is sent at once and its buffer reused for the rest of
 * the turn: a burst (a broadcast to a busy subscriber) then costs one write per 64 KiB and
 * no regrowing of a large buffer per connection per turn. */
#define CIPC__WS_CORK_FLUSH (64u * 1024)

struct cipc__ws_iov {
    const void *p;
    size_t n;
};

struct cipc__ws_transport {
    /* Send the pieces in order: write what the socket takes now, copy the rest. Returns 0
     * or a negative code (the transport then closes and calls cipc__ws_gone()). */
    int (*send)(void *t, const struct cipc__ws_iov *iov, unsigned n);
    /* Bytes accepted by send() and not yet written. */
    size_t (*queued)(void *t);
    /* Close the socket once what send() accepted is written (at once if `now`). Calls
     * cipc__ws_gone() later, from the loop, never from inside this call. */
    void (*close)(void *t, bool now);
    /* Arm the timer to call cipc__ws_timer() in `ms` milliseconds; ms <= 0 disarms. */
    void (*timer)(void *t, long ms);
    /* Optional: call cipc__ws_flush() before the loop next waits for I/O (from a prepare or
     * check handle), so that frames sent meanwhile leave in one write. Without it, frames
     * sent while input is handled leave at its end and others at once. */
    void (*defer)(void *t);
};

/* A queued message: the frame bytes (header and payload) are either a shared block or a
 * caller's buffer (zero-copy, header kept here). */
struct cipc__ws_block {
    int refs;
    size_t len;
    uint8_t data[]; /* the whole frame */
};

struct cipc__ws_qent {
    struct cipc__ws_qent *next;
    struct cipc__ws_block *blk;
    const void *zc; /* zero-copy payload, or NULL */
    size_t zc_len;
    void (*done)(const void *data, void *done_ud);
    void *done_ud;
    uint8_t hdr[CIPC__WS_MAX_HEADER];
    uint8_t hlen;
    bool control; /* pong/close: never dropped */
    size_t bytes; /* on-the-wire size */
};

struct cipc_ws {
    struct cipc__ws_proto proto;
    struct cipc__ws_deflate *pmd;
    cipc_ws_handlers h;
    cipc_ws_opts o; /* defaults resolved */
    void *ud, *user;
    const struct cipc__ws_transport *tops;
    void *t;
    bool is_server;
    bool opened;     /* on_open has run */
    bool closing;    /* the socket is being closed */
    bool gone;       /* the transport closed: only cipc__ws_gone() frees */
    bool in_input;   /* inside cipc__ws_input() */
    bool peer_closed; /* the peer's close frame arrived */
    bool refuse_full; /* SLOW_REFUSE refused a send: on_drain is owed */
    bool awaiting_pong;
    bool user_closed; /* cipc_ws_close() was called: no reconnect */
    int close_code;   /* as for on_close */
    char close_reason[124];
    size_t close_reason_len;
    int err;          /* the first error, reported by on_error */
    char errmsg[256];
    struct cipc__ws_qent *qhead, *qtail;
    size_t qbytes;
    cipc_buf cork;     /* frames gathered for one send */
    bool deferred;     /* the transport was asked to call cipc__ws_flush() */
    cipc_ws_stats st;
    uint64_t last_rx_ms; /* for keepalive pings */
    int timer_kind;
    char *subprotocol;
    char *path;
    char peer[48];
    uint64_t id;
    void *owner;   /* the server worker (server side) or the client (client side) */
    char **topics; /* server: topics subscribed */
    size_t ntopics;
    struct cipc_ws *reg_next; /* server worker's id table chain */
};

struct cipc__ws_init {
    bool is_server;
    const cipc_ws_handlers *h;
    void *ud;
    const struct cipc__ws_transport *tops;
    void *t;
    const struct cipc__ws_pmd_params *pmd; /* agreed, or NULL */
    const char *subprotocol;               /* agreed, or NULL (copied) */
    const char *path;                      /* copied */
    const char *peer;                      /* copied */
    uint64_t id;
    void *owner;
};

/* Fill in the defaults of `o` (NULL: all defaults). */
void cipc__ws_opts_resolve(const cipc_ws_opts *in, cipc_ws_opts *o);

/* Make the object for a connection whose handshake succeeded. Returns 0 or -ENOMEM. */
int cipc__ws_new(const struct cipc__ws_init *in, cipc_ws **out);

/* Call on_open (req as for the handler) and start the keepalive timer. */
void cipc__ws_opened(cipc_ws *ws, cipc_http_req *req);

/* Received bytes: parsed in place (unmasked there). Everything is consumed. */
void cipc__ws_input(cipc_ws *ws, uint8_t *in, size_t n);

/* The transport wrote some of what it held. */
void cipc__ws_writable(cipc_ws *ws);

/* Send what the cork holds (the transport's deferred flush). */
void cipc__ws_flush(cipc_ws *ws);

/* The transport's timer fired. */
void cipc__ws_timer(cipc_ws *ws);

/* The socket is closed (err: why, 0 for an orderly end). Calls on_error (if an error is
 * owed) and on_close, then frees the object. */
void cipc__ws_gone(cipc_ws *ws, int err);

/* Client reconnect: like cipc__ws_gone() (on_error, on_close), but the object stays and is
 * reset for a new connection. Returns 0 or a negative code (then cipc__ws_free() it). */
int cipc__ws_lost(cipc_ws *ws, int err);

/* Free without calling any handler. */
void cipc__ws_free(cipc_ws *ws);

/* Client: what the handshake agreed (pmd NULL: no compression). Returns 0 or -ENOMEM. */
int cipc__ws_set_negotiated(cipc_ws *ws, const struct cipc__ws_pmd_params *pmd,
                            const char *subprotocol);

/* Fail the connection from the transport's side (a read error, EOF): records err/msg
 * and closes at once. */
void cipc__ws_fail(cipc_ws *ws, int err, const char *msg);

/* Queue an encoded shared frame block (broadcast). Returns 0 or a policy error. */
int cipc__ws_send_block(cipc_ws *ws, struct cipc__ws_block *b);

/* A block for a whole unmasked, uncompressed frame of `len` payload bytes (refs 1). */
struct cipc__ws_block *cipc__ws_block_frame(int type, const void *data, size_t len);
void cipc__ws_block_unref(struct cipc__ws_block *b);

#endif
