/* cipc/ws.h -- WebSocket (RFC 6455, permessage-deflate RFC 7692) server endpoints on a
 * cipc_server, and a WebSocket client, both async (callbacks on a libuv loop) and
 * blocking.
 *
 * Server: an endpoint shares the HTTP server's port, loop and workers (and its TLS: wss).
 *
 *     static void echo(cipc_ws *ws, int type, const void *data, size_t len, void *ud)
 *     {
 *         cipc_ws_send(ws, type, data, len);
 *     }
 *
 *     cipc_route_ws(srv, "/ws", &(cipc_ws_handlers){.on_message = echo}, NULL);
 *
 * Blocking client:
 *
 *     cipc_wsc *c = NULL;
 *     if (cipc_wsc_connect("ws://localhost:8765", NULL, &c) == 0) {
 *         cipc_wsc_send_text(c, "Hello server!");
 *         cipc_ws_msg m;
 *         if (cipc_wsc_recv(c, &m, 5000) == 0)
 *             printf("Received: %.*s\n", (int)m.len, (const char *)m.data);
 *         cipc_wsc_close(c, 1000, "bye");
 *     }
 *     cipc_wsc_free(c);
 *
 * What the library does by itself: it answers pings with pongs, completes the closing
 * handshake (echoes the peer's close, then closes TCP; after a close it sends, it waits
 * close_timeout_ms for the peer's), validates every frame and text message (UTF-8,
 * incrementally, so a bad text message fails at the first bad byte, even mid-fragment),
 * reassembles fragmented messages up to max_message, and compresses and decompresses
 * with permessage-deflate when both sides agree. A peer that breaks the protocol is closed
 * with the RFC's code: 1002 protocol error, 1007 invalid UTF-8, 1009 message too big;
 * a handshake the server refuses gets an HTTP status (400, or 426 with
 * Sec-WebSocket-Version: 13 for another version, or whatever on_handshake returns).
 *
 * Sending and backpressure: a send queues the message and returns; cipc_ws_buffered() is
 * the number of bytes queued but not yet taken by the socket. When a send would take it
 * over max_buffered, `slow_policy` decides (see enum cipc_ws_slow_policy); a message larger
 * than max_buffered is still sent when nothing is buffered, so memory per connection stays
 * under the larger of max_buffered and one message.
 *
 * Threading: a cipc_ws belongs to the loop thread it runs on (a server worker, or the
 * client's loop); every cipc_ws_* call taking a cipc_ws must be made on that thread,
 * except the ones marked thread-safe: cipc_ws_send_to() and cipc_ws_publish(), which take
 * a connection id or a topic instead of a pointer and go through a bounded queue per
 * worker that wakes its loop. Handlers of a multi-worker server run on several threads at
 * once, as HTTP handlers do. */
#ifndef CIPC_WS_H
#define CIPC_WS_H

#include <stddef.h>
#include <stdint.h>

#include "cipc/error.h"
#include "cipc/http_server.h"
#include "cipc/loop.h"
#include "cipc/retry.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cipc_ws cipc_ws;

/* Message types (the RFC 6455 opcodes). */
enum { CIPC_WS_TEXT = 1, CIPC_WS_BINARY = 2 };

/* Close codes used by the library (RFC 6455 7.4.1). */
enum {
    CIPC_WS_CLOSE_NORMAL = 1000,
    CIPC_WS_CLOSE_GOING_AWAY = 1001,
    CIPC_WS_CLOSE_PROTOCOL = 1002,
    CIPC_WS_CLOSE_UNSUPPORTED = 1003,
    CIPC_WS_CLOSE_NO_STATUS = 1005, /* reported, never sent: the close frame had no code */
    CIPC_WS_CLOSE_ABNORMAL = 1006,  /* reported, never sent: no close frame at all */
    CIPC_WS_CLOSE_INVALID_DATA = 1007,
    CIPC_WS_CLOSE_POLICY = 1008,
    CIPC_WS_CLOSE_TOO_BIG = 1009,
    CIPC_WS_CLOSE_INTERNAL = 1011,
    CIPC_WS_CLOSE_TRY_AGAIN = 1013
};

/* What a send does when it would take cipc_ws_buffered() over max_buffered. */
enum cipc_ws_slow_policy {
    CIPC_WS_SLOW_CLOSE = 0,  /* default: close the connection with 1008 (the send returns
                                CIPC_ETOOBIG) */
    CIPC_WS_SLOW_DROP_NEWEST, /* drop this message (counted; the send returns CIPC_EBUSY) */
    CIPC_WS_SLOW_DROP_OLDEST, /* drop queued messages not yet started, oldest first, until
                                 this one fits (counted) */
    CIPC_WS_SLOW_REFUSE       /* the send returns CIPC_EBUSY and nothing is dropped or
                                 counted; on_drain is called when the queue has drained
                                 below half of max_buffered */
};

#define CIPC_WS_DEFAULT_MAX_MESSAGE      (16u * 1024 * 1024)
#define CIPC_WS_DEFAULT_MAX_BUFFERED     (16u * 1024 * 1024)
#define CIPC_WS_DEFAULT_CLOSE_TIMEOUT_MS 5000
#define CIPC_WS_DEFAULT_COMPRESS_MIN     64
#define CIPC_WS_DEFAULT_QUEUE            4096 /* cross-thread sends queued per worker */

/* Options of an endpoint or a client connection; zero fields take the defaults. */
typedef struct cipc_ws_opts {
    size_t max_message;          /* largest message accepted (after decompression), bytes;
                                    over -> close 1009 */
    size_t max_buffered;         /* send queue limit per connection, bytes */
    enum cipc_ws_slow_policy slow_policy;
    int no_compression;          /* 1: do not offer / accept permessage-deflate */
    size_t compress_min;         /* messages shorter than this are sent uncompressed */
    int compress_level;          /* zlib level 1..9; 0 -> 1 (fastest) */
    const char *const *subprotocols; /* NULL-terminated; server: supported, in order of
                                        preference; client: offered */
    const char *const *origins;  /* server: NULL-terminated list of accepted Origin values
                                    ("https://example.com"); a handshake with another or no
                                    Origin gets 403. NULL: any (check in on_handshake) */
    long ping_interval_ms;       /* > 0: send a ping after this long without traffic... */
    long pong_timeout_ms;        /* ...and close (1011... see on_close code 1006) when no pong
                                    comes in this long; 0 -> ping_interval_ms */
    long close_timeout_ms;       /* wait for the peer's close frame / TCP close */
} cipc_ws_opts;

/* Per-connection statistics. */
typedef struct cipc_ws_stats {
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out; /* payload bytes, before compression */
    uint64_t dropped;       /* messages dropped by the slow-consumer policy */
    size_t buffered;        /* as cipc_ws_buffered() */
    size_t buffered_peak;
} cipc_ws_stats;

/* Event handlers (all optional). `ud` is the pointer given with them. */
typedef struct cipc_ws_handlers {
    /* Server only, before the handshake is answered: return 0 to accept, or an HTTP status
     * (401, 403, ...) to refuse. `req` has the path, query, headers (Origin, cookies,
     * Authorization) and route parameters. */
    int (*on_handshake)(cipc_http_req *req, void *ud);
    /* The connection is open. Server: `req` is the upgrade request, valid during this call
     * only; client: `req` is NULL. */
    void (*on_open)(cipc_ws *ws, cipc_http_req *req, void *ud);
    /* A whole message (reassembled, decompressed, validated UTF-8 if text). `data` is valid
     * during the call. */
    void (*on_message)(cipc_ws *ws, int type, const void *data, size_t len, void *ud);
    void (*on_ping)(cipc_ws *ws, const void *data, size_t len, void *ud); /* already ponged */
    void (*on_pong)(cipc_ws *ws, const void *data, size_t len, void *ud);
    /* The connection is closed (called once, last; the cipc_ws is freed after it returns):
     * `code` is the peer's close code, 1005 if its close frame had none, or 1006 if the
     * connection ended without a close frame (then on_error came first when there was an
     * error). `reason` is valid during the call. */
    void (*on_close)(cipc_ws *ws, int code, const char *reason, size_t len, void *ud);
    /* Something went wrong: a protocol violation by the peer (the library closes with the
     * RFC's code), a socket error, a failed connect or handshake (client). */
    void (*on_error)(cipc_ws *ws, int err, const char *msg, void *ud);
    /* CIPC_WS_SLOW_REFUSE: the send queue drained below half of max_buffered. */
    void (*on_drain)(cipc_ws *ws, void *ud);
    /* Client with auto-reconnect: a new connection replaced a lost one (on_open follows). */
    void (*on_reconnect)(cipc_ws *ws, int attempt, void *ud);
    const cipc_ws_opts *opts; /* NULL -> defaults */
} cipc_ws_handlers;

/* --- Server ------------------------------------------------------------------------ */

/* Add a WebSocket endpoint at `path` (a route template as for cipc_route(): "/ws",
 * "/rooms/{name}"). A GET with a valid upgrade becomes a WebSocket connection; a plain GET
 * (no Upgrade, no Sec-WebSocket-Key) gets 426 Upgrade Required, a handshake that breaks an
 * RFC 6455 4.2.1 rule 400, another Sec-WebSocket-Version 426 with
 * Sec-WebSocket-Version: 13. Copies `h` and what its opts point to. Returns as
 * cipc_route(). */
CIPC_API int cipc_route_ws(cipc_server *s, const char *path, const cipc_ws_handlers *h, void *ud);

/* --- A connection (server or async client) ------------------------------------------- */

/* Send a message (copied). `type` is CIPC_WS_TEXT (must be valid UTF-8, else CIPC_EPROTO)
 * or CIPC_WS_BINARY. Returns 0, CIPC_ECLOSING after a close, CIPC_EBUSY / CIPC_ETOOBIG by
 * the slow-consumer policy, -EINVAL. */
CIPC_API int cipc_ws_send(cipc_ws *ws, int type, const void *data, size_t len);
CIPC_API int cipc_ws_send_text(cipc_ws *ws, const char *text);

/* Zero-copy send: `data` is written from where it is and must stay unchanged until
 * `done(data, done_ud)` is called (after the write, or at once on failure; always called
 * exactly once). Not compressed. */
CIPC_API int cipc_ws_send_zc(cipc_ws *ws, int type, const void *data, size_t len,
                             void (*done)(const void *data, void *done_ud), void *done_ud);

/* Send a ping (payload up to 125 bytes). */
CIPC_API int cipc_ws_ping(cipc_ws *ws, const void *data, size_t len);

/* Start the closing handshake with `code` (1000-1003, 1007-1014, 3000-4999) and a reason
 * of at most 123 bytes (NULL for none). on_close follows when it completes or times out.
 * Returns 0, -EINVAL, or CIPC_ECLOSING if already closing. */
CIPC_API int cipc_ws_close(cipc_ws *ws, int code, const char *reason);

/* Bytes queued for this connection and not yet written to the socket. */
CIPC_API size_t cipc_ws_buffered(const cipc_ws *ws);
CIPC_API void cipc_ws_stats_get(const cipc_ws *ws, cipc_ws_stats *out);

/* The subprotocol agreed in the handshake, or NULL. */
CIPC_API const char *cipc_ws_subprotocol(const cipc_ws *ws);

/* 1 if permessage-deflate was agreed. */
CIPC_API int cipc_ws_compressed(const cipc_ws *ws);

/* Per-connection user pointer (NULL at first). */
CIPC_API void cipc_ws_set_user(cipc_ws *ws, void *user);
CIPC_API void *cipc_ws_user(const cipc_ws *ws);

/* The request path of the upgrade ("/ws") and the peer's address ("127.0.0.1"). */
CIPC_API const char *cipc_ws_path(const cipc_ws *ws);
CIPC_API const char *cipc_ws_peer(const cipc_ws *ws);

/* A server connection's id: unique within its server, never reused, for
 * cipc_ws_send_to() from other threads. 0 for client connections. */
CIPC_API uint64_t cipc_ws_id(const cipc_ws *ws);

/* --- Broadcast and topics (server) ------------------------------------------------- */

/* Send one message to `n` connections of the calling worker, encoding the frame once
 * (uncompressed). Each connection's slow-consumer policy applies. Returns the number of
 * connections it was queued for. */
CIPC_API int cipc_ws_broadcast(cipc_ws *const *list, size_t n, int type, const void *data,
                               size_t len);

/* Subscribe a connection to a named topic (copied), or unsubscribe it (a closed connection
 * leaves all its topics). Returns 0, -ENOMEM, or -EINVAL. */
CIPC_API int cipc_ws_subscribe(cipc_ws *ws, const char *topic);
CIPC_API int cipc_ws_unsubscribe(cipc_ws *ws, const char *topic);

/* Send a message to every subscriber of `topic` on every worker of `s`. Thread-safe:
 * callable from any thread, including handlers. The calling worker's subscribers (if
 * called on a worker thread) get it at once; other workers get it through their queues.
 * Returns the number of subscribers it was queued for on the calling worker (0 off a
 * worker), or CIPC_EBUSY if some worker's queue was full (that worker misses it). */
CIPC_API int cipc_ws_publish(cipc_server *s, const char *topic, int type, const void *data,
                             size_t len);

/* Send a message to the connection with `id` (see cipc_ws_id()). Thread-safe. Returns 0
 * when queued (the connection may have gone meanwhile: then it is dropped), CIPC_EBUSY if
 * its worker's queue is full, -EINVAL for an id of no worker. */
CIPC_API int cipc_ws_send_to(cipc_server *s, uint64_t id, int type, const void *data, size_t len);

/* --- Client ------------------------------------------------------------------------ */

typedef struct cipc_ws_client_opts {
    long connect_timeout_ms;        /* TCP + TLS + handshake; 0 -> 10000 */
    const char *const *headers;     /* NULL-terminated "Name: value" strings */
    const char *ca_file;            /* wss: trust these CAs instead of the system's */
    int insecure;                   /* wss: 1 skips certificate verification (tests only) */
    const cipc_retry_policy *reconnect; /* async only: reconnect after a lost connection
                                           (not after cipc_ws_close()), waiting the
                                           policy's backoff; max_attempts 0 -> without
                                           end; NULL -> never */
    long send_timeout_ms;           /* blocking client: how long a send may wait for the
                                       socket to take the message; 0 -> 10000 */
} cipc_ws_client_opts;

/* Connect asynchronously on `loop` to a ws:// or wss:// URL. Handlers as for the server
 * (on_open with req NULL; on_error then on_close with 1006 if the connection fails). *out
 * is the connection from now on (sends before on_open are queued). Returns 0, CIPC_EURL,
 * -ENOMEM. */
CIPC_API int cipc_ws_connect(cipc_loop *loop, const char *url, const cipc_ws_client_opts *co,
                             const cipc_ws_handlers *h, void *ud, cipc_ws **out);

/* Blocking client: a connection with its own private loop. Not thread-safe; one thread
 * at a time. */
typedef struct cipc_wsc cipc_wsc;

/* A received message: `data` stays valid until the next cipc_wsc_recv() or
 * cipc_wsc_free(). */
typedef struct cipc_ws_msg {
    int type; /* CIPC_WS_TEXT or CIPC_WS_BINARY */
    const void *data;
    size_t len;
} cipc_ws_msg;

/* Connect and complete the handshake within co->connect_timeout_ms. `opts` as for the
 * server (NULL -> defaults). Returns 0 and *out, or a negative code (CIPC_EURL,
 * CIPC_ECONNECT, CIPC_ECONNTIMEOUT, CIPC_ETLS, CIPC_ECERT, CIPC_EPROTO for a refused or
 * invalid handshake); on failure *out is still set (for cipc_wsc_errmsg) and must be
 * freed, unless -ENOMEM. */
CIPC_API int cipc_wsc_connect(const char *url, const cipc_ws_client_opts *co,
                              const cipc_ws_opts *opts, cipc_wsc **out);
CIPC_API int cipc_wsc_send(cipc_wsc *c, int type, const void *data, size_t len);
CIPC_API int cipc_wsc_send_text(cipc_wsc *c, const char *text);
CIPC_API int cipc_wsc_ping(cipc_wsc *c, const void *data, size_t len);

/* Wait up to timeout_ms (< 0: forever) for the next message. Returns 0, CIPC_ETIMEOUT,
 * or CIPC_ECLOSING when the connection closed (cipc_wsc_close_code() tells how). */
CIPC_API int cipc_wsc_recv(cipc_wsc *c, cipc_ws_msg *m, long timeout_ms);

/* Close with `code` and `reason` and wait for the closing handshake (close_timeout_ms).
 * Returns 0, or CIPC_ETIMEOUT if the peer did not complete it. */
CIPC_API int cipc_wsc_close(cipc_wsc *c, int code, const char *reason);

/* How the connection closed: the peer's code (1005, 1006 as in on_close), 0 while open. */
CIPC_API int cipc_wsc_close_code(const cipc_wsc *c);
CIPC_API const char *cipc_wsc_close_reason(const cipc_wsc *c);
CIPC_API const char *cipc_wsc_subprotocol(const cipc_wsc *c);
CIPC_API const char *cipc_wsc_errmsg(const cipc_wsc *c);
CIPC_API void cipc_wsc_free(cipc_wsc *c);

#ifdef __cplusplus
}
#endif
#endif
