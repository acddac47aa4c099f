/* src/hub/internal.h -- the hub's private structures (cipc/hub.h).
 *
 * One loop thread owns everything. hub.c: options, lifecycle, signals, shutdown.
 * chan.c: channels, sequence numbers, replay buffers and the fan-out to every transport.
 * backend.c: commands to the queues' store (the embedded broker through an in-process
 * client, or Redis through src/bus/async.c) and reservations. rest.c: the REST routes
 * and SSE. wsapi.c: the WebSocket endpoints. stats.c: counters, /v1/stats, /metrics.
 * www.c (generated from src/hub/www/ at build time): the dashboard's files. */
#ifndef CIPC_SRC_HUB_INTERNAL_H
#define CIPC_SRC_HUB_INTERNAL_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "bus/async.h"
#include "cipc/broker.h"
#include "cipc/buf.h"
#include "cipc/http_server.h"
#include "cipc/hub.h"
#include "cipc/ws.h"
#include "core/dict.h"

/* --- small vectors of pointers ---------------------------------------------------------- */

typedef struct ptrvec {
    void **p;
    size_t n, cap;
} ptrvec;

int cipc__ptrvec_add(ptrvec *v, void *x);   /* 0 / -ENOMEM */
void cipc__ptrvec_del(ptrvec *v, void *x);  /* swap-remove the first x */
void cipc__ptrvec_free(ptrvec *v);

/* --- channels -------------------------------------------------------------------------- */

typedef struct hub_msg {
    uint64_t seq;
    int64_t ts_ms; /* wall clock, for the dashboard's tail */
    size_t len;
    char data[];   /* NUL after len bytes */
} hub_msg;

typedef struct hub_chan {
    char *name;
    size_t nlen;
    uint64_t seq;     /* the last message's number; 0 before the first */
    hub_msg **ring;   /* replay buffer: n messages from head, cap slots */
    size_t head, n, cap, bytes;
    ptrvec json;      /* cipc_ws * subscribed through /v1/ws */
    ptrvec raw;       /* cipc_ws * of /v1/ws/channels/{name} */
    ptrvec sse;       /* hub_sse * */
    struct hub_chan *lru_prev, *lru_next; /* most recently used first */
} hub_chan;

typedef struct hub_pat {
    char *pat;
    size_t plen;
    ptrvec json; /* cipc_ws * */
} hub_pat;

/* A WebSocket connection's state (cipc_ws_user()). */
typedef struct hub_conn {
    cipc_hub *h;
    cipc_ws *ws;
    hub_chan *raw;  /* raw socket: its channel; NULL on /v1/ws */
    dict chans;     /* subscribed channel name -> hub_chan * */
    dict pats;      /* subscribed pattern -> hub_pat * */
    double tokens;  /* rate limit bucket */
    int64_t refill_ms;
    int stats;      /* sent a stats frame every second */
    int flooded;    /* closed for going over max_rate */
    struct hub_conn *prev, *next;
} hub_conn;

/* An SSE stream. */
typedef struct hub_sse {
    cipc_hub *h;
    cipc_http_req *req;
    hub_chan *ch;
    struct hub_sse *prev, *next;
} hub_sse;

/* --- the backend: commands to the queues' store -------------------------------------- */

/* A reply (a view valid during the call) or NULL and a reason. */
typedef void (*hub_reply_cb)(cipc_hub *h, redisReply *r, const char *err, void *ud);

typedef struct hub_be {
    cipc_hub *h;
    cipc_broker_client *vc;       /* local mode */
    struct cipc__bus_async *ra;   /* Redis mode */
    redisReader *rd;              /* local mode: parses the in-process client's replies */
    struct hub_waiter {
        hub_reply_cb cb;
        void *ud;
    } *w;
    size_t wh, wn, wcap;
    int blocking;                 /* one blocking command, then closed */
    int dead;
    struct hub_be *prev, *next;   /* the hub's blocking connections */
} hub_be;

/* A reservation (POST /v1/queues/{q}/reserve). */
typedef struct hub_lease {
    char id[32];
    char *queue;
    char *proc;  /* the processing list */
    void *data;
    size_t len;
    int64_t deadline_ms;
} hub_lease;

/* --- the hub ---------------------------------------------------------------------------- */

enum { TR_REST, TR_WS, TR_RESP, TR_SSE, TR_N };

struct cipc_hub {
    cipc_hub_opts o;
    char *host, *token, *requirepass, *tls_cert, *tls_key, *aof_path, *redis_url, *hub_id;
    cipc_loop *loop;
    uv_loop_t *uv;
    cipc_server *srv;
    cipc_broker *broker;
    struct cipc__bus_async *redis_cmd;  /* Redis mode: publishes and queue commands */
    cipc_bus_sub *redis_sub;            /* Redis mode: PSUBSCRIBE * */
    hub_be *be;                         /* the shared backend connection */
    hub_be *blocking;                   /* blocking backend connections in flight */
    uv_signal_t sigint, sigterm;
    uv_async_t stop_async;
    uv_timer_t tick;                    /* once a second: stats frames, leases, SSE keepalive */
    uv_timer_t drain;                   /* shutdown: waits for the store's last replies */
    uv_idle_t kick;                     /* one turn without waiting: see cipc__hub_kick() */
    int64_t drain_deadline_ms;
    int started, stopping, http_port, resp_port, tls_port;
    int64_t start_ms;
    char errmsg[256];
    dict chans;                         /* name -> hub_chan * */
    hub_chan *lru_head, *lru_tail;      /* channels by last use, for eviction */
    dict pats;                          /* pattern -> hub_pat * */
    hub_conn *conns;                    /* every WebSocket connection */
    size_t nconns;
    hub_sse *sses;
    size_t nsse;
    dict leases;                        /* id -> hub_lease * */
    dict queues;                        /* queue names used through the hub (listed even
                                           when empty; values unused) */
    uint64_t next_lease;
    ptrvec pops;                        /* long-polls waiting (struct pop_op *) */
    int sse_tick;
    cipc_buf scratch;                   /* one encoded message */
    void *pub_pending;                  /* a WebSocket publish whose answer may come later */
    /* counters */
    uint64_t in[TR_N], out[TR_N];
    uint64_t http_requests, ws_total, sse_total, rate_kills, gaps;
    uint64_t lat_buckets[12];           /* REST handler latency histogram */
    double lat_sum;
    uint64_t lat_count;
};

/* chan.c */
/* Find a channel, or create it (create = 1; NULL on -ENOMEM). Beyond max_channels the
 * least recently used channel without local subscribers is dropped, replay and all. */
hub_chan *cipc__hub_chan(cipc_hub *h, const char *name, size_t len, int create);
void cipc__hub_chans_free(cipc_hub *h);
/* A message arrived from `tr` (TR_REST, TR_WS, TR_RESP; -1: from Redis in multi-machine
 * mode): number it, keep it, send it to this hub's WebSocket and SSE subscribers.
 * Returns the number of receivers reached, and the message's seq in *seq. */
int cipc__hub_deliver(cipc_hub *h, const char *ch, size_t chlen, const void *msg, size_t len,
                      uint64_t *seq);
/* Publish from a client of the hub (REST, WebSocket): locally, deliver and hand it to the
 * broker's RESP subscribers, then call cb at once; in Redis mode, PUBLISH and call cb with
 * the reply. cb gets receivers (or a negative code) and the seq (0 in Redis mode). */
typedef void (*hub_pub_cb)(cipc_hub *h, int receivers, uint64_t seq, const char *err,
                           void *ud);
void cipc__hub_publish(cipc_hub *h, int tr, const char *ch, size_t chlen, const void *msg,
                       size_t len, hub_pub_cb cb, void *ud);
/* Send what a resuming subscriber missed after `since` to ws (JSON when json=1, else raw
 * frames) or to an SSE stream. */
void cipc__hub_replay_ws(cipc_hub *h, hub_chan *c, cipc_ws *ws, int json, uint64_t since);
void cipc__hub_replay_sse(cipc_hub *h, hub_chan *c, hub_sse *s, uint64_t since);
int cipc__hub_subscribers(cipc_hub *h, hub_chan *c); /* every transport */
/* The messages held after `since`: {"channel","seq","messages":[...],"gap"} (owned). */
json_t *cipc__hub_history(cipc_hub *h, hub_chan *c, uint64_t since);
/* JSON text helpers */
void cipc__hub_json_str(cipc_buf *b, const void *s, size_t len); /* a quoted JSON string */
/* "data":"..." or "data_base64":"..." */
void cipc__hub_json_data(cipc_buf *b, const void *data, size_t len);
json_t *cipc__hub_data_json(json_t *obj, const void *data, size_t len); /* sets data/_base64 */
/* SSE: one event into b */
void cipc__hub_sse_event(cipc_buf *b, const char *event, uint64_t id, const void *data,
                         size_t len);
void cipc__hub_sse_close(hub_sse *s, int end);

/* hub.c: make the loop's next turn not wait for events. Output queued from a prepare
 * callback (the broker delivers the in-process clients' replies there) would otherwise
 * sit in the WebSocket layer's cork until some other event. */
void cipc__hub_kick(cipc_hub *h);

/* backend.c */
int cipc__hub_be_open(cipc_hub *h);
void cipc__hub_be_close_all(cipc_hub *h);
/* A command on the shared connection. Returns 0 (cb follows once) or a negative code. */
int cipc__hub_cmd(cipc_hub *h, hub_reply_cb cb, void *ud, int argc, const char *const *argv,
                  const size_t *argl);
/* A blocking command on a connection of its own; *out can cancel it (cb then gets NULL). */
int cipc__hub_cmd_blocking(cipc_hub *h, hub_reply_cb cb, void *ud, int argc,
                           const char *const *argv, const size_t *argl, hub_be **out);
void cipc__hub_be_cancel(hub_be *be);
void cipc__hub_leases_tick(cipc_hub *h);
/* Take a lease out of the table and put its item back at the head of its queue. */
void cipc__hub_lease_requeue(cipc_hub *h, hub_lease *l);
void cipc__hub_lease_free(void *lease); /* a hub_lease and what it owns; NULL is fine */
void cipc__hub_leases_free(cipc_hub *h);
void cipc__hub_leases_release(cipc_hub *h); /* shutdown: every item back in its queue */
size_t cipc__hub_be_pending(cipc_hub *h);
void cipc__hub_reclaim(cipc_hub *h); /* at start: this hub's old reservations back */

/* rest.c */
int cipc__hub_routes(cipc_hub *h);
int cipc__hub_authorized(cipc_hub *h, cipc_http_req *req);
void cipc__hub_pops_cancel(cipc_hub *h);
void cipc__hub_sse_tick(cipc_hub *h);
json_t *cipc__hub_channels_json(cipc_hub *h); /* [{name, subscribers, seq, buffered}] */
/* The queues with their lengths, asynchronously: cb gets a JSON array (borrowed). */
typedef void (*hub_queues_cb)(cipc_hub *h, json_t *queues, const char *err, void *ud);
void cipc__hub_queues(cipc_hub *h, const char *only, hub_queues_cb cb, void *ud);
void cipc__hub_queue_seen(cipc_hub *h, const char *name); /* remember for listing */

/* wsapi.c */
int cipc__hub_ws_routes(cipc_hub *h);
void cipc__hub_ws_stats_tick(cipc_hub *h);

/* stats.c */
json_t *cipc__hub_stats_json(cipc_hub *h, json_t *queues); /* steals queues (may be NULL) */
void cipc__hub_metrics(cipc_hub *h, json_t *queues, cipc_buf *out);
void cipc__hub_observe_latency(cipc_hub *h, int64_t ns);

/* www.c (generated) */
typedef struct hub_asset {
    const char *path; /* "/app.js" ("/" for index.html) */
    const char *type;
    const unsigned char *data;
    size_t len;
} hub_asset;
extern const hub_asset cipc__hub_assets[];
extern const size_t cipc__hub_nassets;

#endif
