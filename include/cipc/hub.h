/* cipc/hub.h -- the hub: one process that lets programs in any language talk to each
 * other over HTTP (a REST API), WebSocket, Server-Sent Events and the Redis protocol,
 * all bridged: a message published through any of them reaches subscribers on all of
 * them, in order per publisher. `cipc serve` is this, configured from flags. The
 * protocol (routes, JSON frames, SSE) is in docs/hub.md.
 *
 *     cipc_hub *h = NULL;
 *     if (cipc_hub_new(&(cipc_hub_opts){.http_port = 7380, .resp_port = 7379}, &h) == 0)
 *         cipc_hub_run(h);            (until SIGINT/SIGTERM or cipc_hub_stop())
 *     cipc_hub_free(h);
 *
 * What it composes: a cipc_server (REST, WebSocket endpoints, SSE, the dashboard) and a
 * cipc_broker (the RESP port, channels and queues), both on one loop and one thread, so a
 * publish is delivered to every transport in the order it arrived. Every channel message
 * gets a per-channel sequence number (from 1, per hub process) and the hub keeps the last
 * replay_count messages (at most replay_bytes) of each channel, so a WebSocket or SSE
 * client that reconnects with the last number it saw gets exactly what it missed, or a
 * `gap` notice naming what is no longer held.
 *
 * Multi-machine mode (opts.redis_url): the hub runs no broker; channels and queues live
 * in that Redis server. Publishes go out with PUBLISH and come back through one
 * PSUBSCRIBE * connection per hub, so every hub (and every Redis client) sees every
 * message, and each hub numbers them for its own clients; queues are Redis lists, shared
 * by every hub. RESP clients talk to the Redis server directly (resp_port is ignored).
 *
 * Security: binds 127.0.0.1 unless opts.host says otherwise, and refuses a non-loopback
 * host without a token unless opts.insecure_no_auth. With opts.token, /v1 routes and
 * WebSocket endpoints need "Authorization: Bearer <token>" (or ?token= in the query, for
 * browsers), and the RESP port needs AUTH (opts.requirepass, else the token).
 *
 * Shutdown (SIGINT, SIGTERM, cipc_hub_stop()): stop accepting, answer waiting long-polls
 * with 503, end SSE streams, close WebSockets with 1001, let in-flight requests finish
 * (shutdown_timeout_ms), write and fsync the queues' log, close RESP clients.
 *
 * Threading: the hub runs on the thread that calls cipc_hub_run(); only cipc_hub_stop()
 * may be called from other threads. */
#ifndef CIPC_HUB_H
#define CIPC_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "cipc/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cipc_hub cipc_hub;

#define CIPC_HUB_DEFAULT_HTTP_PORT    7380
#define CIPC_HUB_DEFAULT_RESP_PORT    7379
#define CIPC_HUB_DEFAULT_REPLAY_COUNT 1000
#define CIPC_HUB_DEFAULT_REPLAY_BYTES (1024u * 1024)
#define CIPC_HUB_DEFAULT_MAX_MESSAGE  (1024u * 1024)
#define CIPC_HUB_DEFAULT_MAX_RATE     10000  /* WebSocket ops per second per connection */
#define CIPC_HUB_DEFAULT_MAX_BUFFERED (8u * 1024 * 1024)
#define CIPC_HUB_DEFAULT_MAX_WAIT_S   300    /* longest queue long-poll */
#define CIPC_HUB_DEFAULT_VISIBILITY_S 30     /* reserved items come back after this */
#define CIPC_HUB_DEFAULT_MAX_CHANNELS 10000
#define CIPC_HUB_DEFAULT_MAX_SUBSCRIPTIONS 1000

/* Options; zero means the default. Only ever extended at the end. */
typedef struct cipc_hub_opts {
    size_t size;              /* sizeof(cipc_hub_opts), or 0 for "this version" */
    const char *host;         /* numeric address for every listener; NULL -> "127.0.0.1" */
    int http_port;            /* HTTP + WebSocket + SSE + dashboard; 0 -> ephemeral */
    int resp_port;            /* RESP; 0 -> ephemeral; -1 -> none */
    const char *token;        /* bearer token for /v1 and WebSockets; NULL -> none */
    const char *requirepass;  /* RESP AUTH password; NULL -> the token, if any */
    int insecure_no_auth;     /* 1: allow a non-loopback host without a token */
    const char *tls_cert;     /* PEM files: also serve HTTPS / wss on tls_port */
    const char *tls_key;
    int tls_port;             /* 0 -> ephemeral (cipc_hub_tls_port()) */
    const char *aof_path;     /* the broker's append-only file (queues); NULL -> memory only */
    int appendfsync;          /* enum cipc_broker_fsync */
    const char *redis_url;    /* multi-machine mode: redis://host:port (see above) */
    const char *hub_id;       /* names this hub's reservations; NULL -> "<host>:<http_port>" */
    size_t replay_count;      /* messages kept per channel */
    size_t replay_bytes;      /* payload bytes kept per channel */
    size_t max_message;       /* largest message (REST body, WebSocket frame, RESP bulk) */
    unsigned max_rate;        /* WebSocket ops per second per connection; over -> close 1008 */
    size_t max_buffered;      /* unsent bytes per WebSocket subscriber; over -> close 1008 */
    int max_connections;      /* HTTP + WebSocket connections; 0 -> the server's default */
    long max_wait_s;          /* longest long-poll a client may ask for */
    long shutdown_timeout_ms; /* 0 -> the server's default (10000) */
    int access_log;           /* 1: one line per HTTP request on stderr */
    size_t max_channels;      /* channels remembered (sequence and replay); beyond, the least
                                 recently used one without subscribers is forgotten */
    size_t max_subscriptions; /* channels + patterns per WebSocket connection */
    void (*on_ready)(cipc_hub *h, void *ud); /* listening: ports are known */
    void *on_ready_ud;
} cipc_hub_opts;

/* Create a hub (copies opts and their strings). Listens at cipc_hub_run(). Returns 0 and
 * *out, or -EINVAL (bad option), -EPERM (non-loopback host without a token), CIPC_EURL
 * (bad redis_url), -ENOMEM; cipc_hub_errmsg() of a NULL hub is not available, so the
 * reason is also logged. */
CIPC_API int cipc_hub_new(const cipc_hub_opts *opts, cipc_hub **out);

/* Listen and serve on the calling thread until SIGINT/SIGTERM or cipc_hub_stop(), then
 * shut down gracefully. Returns 0, or a negative code if it could not start (the
 * message in cipc_hub_errmsg()). */
CIPC_API int cipc_hub_run(cipc_hub *h);

/* Begin the graceful shutdown. Thread-safe; returns at once. */
CIPC_API void cipc_hub_stop(cipc_hub *h);

/* Ports listened on (after on_ready), or 0 (-1 for RESP when there is none). */
CIPC_API int cipc_hub_http_port(const cipc_hub *h);
CIPC_API int cipc_hub_resp_port(const cipc_hub *h);
CIPC_API int cipc_hub_tls_port(const cipc_hub *h);

CIPC_API const char *cipc_hub_errmsg(const cipc_hub *h);

/* Free a hub that is not running. NULL does nothing. */
CIPC_API void cipc_hub_free(cipc_hub *h);

#ifdef __cplusplus
}
#endif
#endif
