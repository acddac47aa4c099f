/* cipc/bus.h -- a Redis-protocol client for pub/sub and work queues: talks to a Redis
 * server (6.2 or later) or to the cipc broker with the same calls.
 *
 *     cipc_bus *b = NULL;
 *     if (cipc_bus_connect("redis://127.0.0.1:6379", NULL, &b) < 0)
 *         return;                                    // nothing to free
 *     cipc_bus_subscribe(b, "channel");              // as pubsub.subscribe('channel')
 *     cipc_bus_publish(b, "channel", "Hello, subscribers!", 19);
 *     cipc_bus_msg m;
 *     while (cipc_bus_listen(b, &m, 5000) == 0)      // as `for message in pubsub.listen()`
 *         if (m.type == CIPC_BUS_MESSAGE)
 *             printf("Received: %.*s\n", (int)m.len, (const char *)m.data);
 *     cipc_bus_free(b);
 *
 *     // work queue, at least once:
 *     cipc_bus_push(b, "jobs", "job-1", 5);
 *     void *job; size_t len;
 *     if (cipc_bus_pop_reliable(b, "jobs", 1000, &job, &len) == 0) {
 *         ...work...
 *         cipc_bus_ack(b, "jobs", job, len);
 *         free(job);
 *     }
 *
 * URLs: `redis://[[user]:password@]host[:port][/db]` (port 6379 by default; AUTH is sent
 * when a password is given, `AUTH user password` when a user is given too; SELECT when db
 * > 0), `rediss://...` (the same over TLS; the certificate is verified against
 * opts.ca_file or the system's CAs, and its name must match host, unless opts.insecure),
 * and `unix:///absolute/path` (a Unix-domain socket). Userinfo may be percent-encoded.
 * Anything else is CIPC_EURL.
 *
 * Connections: a bus opens up to two connections, each lazily reopened when it has been
 * lost: the command connection (opened by cipc_bus_connect(); used by publish, push, pop,
 * ack, reap) and the subscriber connection (opened by the first subscribe; a connection
 * in subscribed mode cannot run other commands, so publishing on a subscribing bus uses
 * the command connection). Every connection sends AUTH / SELECT / CLIENT SETNAME as the
 * URL and options ask, then a PING, all within the connect timeout.
 *
 * Timeouts: every call that waits has a bound. Connecting (TCP, TLS handshake and the
 * commands above) is bounded by opts.connect_timeout_ms. Other commands wait at most
 * opts.command_timeout_ms for their reply; blocking pops wait `timeout_ms` plus that.
 * When a wait times out while a reply may still arrive, the connection is closed (so a
 * late reply can never be taken for the answer to a later command) and reopened by the
 * next call; CIPC_ETIMEOUT is returned. A command that fails with a network error or a
 * timeout is not retried (it may have run on the server): the error is returned and the
 * next call reconnects, following opts.reconnect. A call that has to reconnect may
 * overrun its own timeout by up to one connect attempt (connect_timeout_ms).
 *
 * Dead connections: a subscriber connection is quiet while no message is published, so
 * a half-open socket (server host gone, network cut, server frozen) would go unnoticed.
 * While cipc_bus_listen() waits, it sends PING when nothing has been received for
 * opts.ping_interval_ms and declares the connection dead when nothing at all arrives
 * opts.ping_timeout_ms after that PING. Blocking pops are cut into slices of at most
 * ping_interval_ms, each a round trip bounded by command_timeout_ms, for the same reason.
 *
 * What pub/sub can lose: pub/sub is fire-and-forget, in Redis and in the cipc broker.
 * A message published while a subscriber is disconnected (between the loss of its
 * connection and the end of its resubscription), or dropped by the server because the
 * subscriber was too slow (client-output-buffer-limit), is lost for that subscriber and
 * never redelivered. After a reconnection the bus resubscribes to every channel and
 * pattern by itself and reports a CIPC_BUS_GAP event, so the application knows messages
 * may be missing; it is the only signal. Use the queues when every item matters.
 *
 * What the queues guarantee: a push that returned >= 0 is stored as the server stores
 * lists (in memory; on disk only as its persistence settings say: Redis AOF with
 * appendfsync always, or the cipc broker's log). cipc_bus_pop() removes the item before
 * it returns it: at most once (a crash of the consumer loses it). cipc_bus_pop_reliable()
 * moves the item atomically (BLMOVE) to the consumer's processing list
 * `<queue>:processing:<consumer-id>` and cipc_bus_ack() removes it from there: at least
 * once. If the consumer dies before acking, a reaper (cipc_bus_reap(), or pop_reliable
 * itself when opts.visibility_ms > 0) moves its items back to the head of the queue, in
 * their original order, once the consumer has been absent from CLIENT LIST for
 * visibility_ms. Duplicates are therefore possible: a consumer that was only cut off
 * (not dead) for longer than visibility_ms, or died after the work but before the ack,
 * has its items processed again. Make processing idempotent. Items are FIFO (LPUSH, then
 * BRPOP / BLMOVE from the right); re-queued items are next in line.
 *
 * Keys used: `<queue>` (a list), `<queue>:processing:<id>` (a list per consumer),
 * `<queue>:consumers` (a list of consumer ids), `<queue>:suspect:<id>` (a one-item list:
 * the wall-clock ms when a reaper first saw the consumer absent; reapers on different
 * hosts should have roughly synchronised clocks). Only list, pub/sub and connection
 * commands are used, so the cipc broker serves everything here.
 *
 * Consumer id: the command connection's CLIENT SETNAME, which is opts.client_name, or a
 * generated name unique per bus ("cipc-<pid>-<random hex>"). Consumers of one queue must
 * have distinct names: do not share a client_name between consumers. Subscriber
 * connections (a bus's, and a cipc_bus_sub's) are named `<id>-sub`.
 *
 * Errors common to all calls: -EINVAL (a NULL or invalid argument), -ENOMEM,
 * CIPC_ETIMEOUT, CIPC_ENET (the connection was lost or could not be used), CIPC_EPROTO
 * (the server sent something malformed, or answered with an error reply: the reply's
 * text is in cipc_bus_errmsg(), e.g. "WRONGTYPE ..."), and the connect errors of
 * cipc_bus_connect() when a lost connection cannot be reopened.
 *
 * Threading: a cipc_bus belongs to one thread at a time: use a bus per thread (each is
 * cheap: one or two sockets). No call may run concurrently with another on the same bus.
 * Different buses are independent. A cipc_bus_sub belongs to its loop's thread. The TLS
 * tunnel runs a helper thread per TLS connection, invisible to the caller. */
#ifndef CIPC_BUS_H
#define CIPC_BUS_H

#include <stddef.h>

#include "cipc/error.h"
#include "cipc/loop.h"
#include "cipc/retry.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cipc_bus cipc_bus;

/* Options; zero means the default. Only ever extended at the end. */
typedef struct cipc_bus_opts {
    size_t size;             /* sizeof(cipc_bus_opts), or 0 for "this version" */
    long connect_timeout_ms; /* 0 -> 5000; < 0 -> none. TCP + TLS + AUTH/SELECT/SETNAME/PING */
    long command_timeout_ms; /* 0 -> 5000; < 0 -> none. A reply's wait (blocking pops: extra) */
    long ping_interval_ms;   /* 0 -> 10000; < 0 -> no keepalive PING. Quiet time before a PING */
    long ping_timeout_ms;    /* 0 -> 5000. Silence after a PING that makes a connection dead */
    cipc_retry_policy reconnect; /* per reconnection: max_attempts 0 -> without limit (within
                                    each call's timeout), 1 -> one attempt; backoff base_ms
                                    0 -> 100, cap_ms 0 -> 2000 (not retry.h's 10000) */
    const char *client_name;     /* CLIENT SETNAME and consumer id; NULL -> generated. Printable
                                    ASCII without spaces, at most 200 bytes; copied */
    const char *ca_file;         /* rediss://: PEM CA bundle; NULL -> the system's; copied */
    int insecure;                /* rediss://: 1 -> no certificate verification (tests only) */
    int skip_confirmations;      /* 1 -> listen()/callbacks do not report (un)subscribe
                                    confirmations (redis-py's ignore_subscribe_messages) */
    long visibility_ms;          /* > 0: pop_reliable() reaps its queue every visibility_ms/2
                                    with this visibility; 0 -> only cipc_bus_reap() does */
} cipc_bus_opts;

#define CIPC_BUS_OPTS_INIT                                                                         \
    {                                                                                              \
        .size = sizeof(cipc_bus_opts)                                                              \
    }

/* What a cipc_bus_msg is. */
typedef enum cipc_bus_msg_type {
    CIPC_BUS_MESSAGE = 1,     /* a message on a subscribed channel: channel, data */
    CIPC_BUS_PMESSAGE = 2,    /* a message matching a pattern: pattern, channel, data */
    CIPC_BUS_SUBSCRIBE = 3,   /* confirmation: channel; count = subscriptions now */
    CIPC_BUS_UNSUBSCRIBE = 4, /* confirmation: channel (NULL after an unsubscribe from
                                 nothing); count = subscriptions left */
    CIPC_BUS_PSUBSCRIBE = 5,  /* confirmation: pattern (in `channel`, as Redis sends it) */
    CIPC_BUS_PUNSUBSCRIBE = 6,
    CIPC_BUS_GAP = 7,  /* the connection was lost and has been re-established, and every
                          subscription renewed: messages published meanwhile are lost.
                          count = channels + patterns resubscribed */
    CIPC_BUS_ERROR = 8 /* cipc_bus_sub only: reconnection gave up (attempts used up, or an
                          error no retry can fix, e.g. AUTH refused); err says why. No
                          more messages come; close the handle */
} cipc_bus_msg_type;

/* One pub/sub event. Every pointer is a view (see the function that filled it in);
 * channel and pattern are NUL-terminated too (data is, as well, after its len bytes). */
typedef struct cipc_bus_msg {
    cipc_bus_msg_type type;
    const char *channel; /* NULL when absent */
    size_t channel_len;
    const char *pattern; /* CIPC_BUS_PMESSAGE only, else NULL */
    size_t pattern_len;
    const void *data; /* payload (any bytes), CIPC_BUS_MESSAGE / PMESSAGE only, else NULL */
    size_t len;
    long long count; /* confirmations and CIPC_BUS_GAP, else 0 */
    int err;         /* CIPC_BUS_ERROR only, else 0 */
} cipc_bus_msg;

/* Connect to the server at `url` (one attempt, bounded by opts.connect_timeout_ms) and
 * open the command connection. `opts` may be NULL. Ownership: borrows `url` and `opts`
 * (copies the strings it keeps). Returns 0 and sets *out (returns owned:
 * cipc_bus_free()), or CIPC_EURL (bad URL), -EINVAL (bad option), CIPC_EDNS,
 * CIPC_ECONNECT (refused, unreachable), CIPC_ECONNTIMEOUT (connect or handshake too
 * slow), CIPC_ETLS (TLS handshake failed), CIPC_ECERT (certificate not trusted or name
 * mismatch), CIPC_EFILE (ca_file unreadable), -EACCES (AUTH refused, or the server
 * requires a password and none was given), CIPC_EPROTO (SELECT or SETNAME refused, or a
 * malformed reply), CIPC_ENET, -ENOMEM. *out is untouched on error. Blocking. */
CIPC_API int cipc_bus_connect(const char *url, const cipc_bus_opts *opts, cipc_bus **out);

/* Close the connections and free the bus, including the view of the last listen()
 * message. NULL does nothing. Subscriptions end with the connection. */
CIPC_API void cipc_bus_free(cipc_bus *b);

/* A message about the last failure on this bus (never NULL; "" if none). Returns a view
 * valid until the next call on the bus. */
CIPC_API const char *cipc_bus_errmsg(const cipc_bus *b);

/* The consumer id (the command connection's client name). Returns a view valid until
 * cipc_bus_free(). */
CIPC_API const char *cipc_bus_consumer_id(const cipc_bus *b);

/* PUBLISH `len` bytes of `data` (any bytes) on `channel`. Ownership: borrows both.
 * Returns the number of subscribers that received it (>= 0; Redis counts each matching
 * subscription of each client), or an error. Never retried after a failure: a message
 * whose PUBLISH timed out may or may not have been delivered. */
CIPC_API int cipc_bus_publish(cipc_bus *b, const char *channel, const void *data, size_t len);

/* SUBSCRIBE to a channel / PSUBSCRIBE to a Redis glob pattern, on the subscriber
 * connection (opened now if needed), and wait up to command_timeout_ms for the server's
 * confirmation: once this returns, every message published afterwards on the channel
 * reaches this bus. The confirmation is also queued for cipc_bus_listen() (as redis-py's
 * listen() yields it), unless opts.skip_confirmations. Subscribing twice to one name is
 * harmless. Ownership: borrows `name` (copied into the bus's subscription set, used to
 * resubscribe after a reconnection). Returns the connection's subscription count (>= 1),
 * or an error (the subscription is then not in the set). */
CIPC_API int cipc_bus_subscribe(cipc_bus *b, const char *channel);
CIPC_API int cipc_bus_psubscribe(cipc_bus *b, const char *pattern);

/* UNSUBSCRIBE / PUNSUBSCRIBE one name, or every channel (pattern) when the name is NULL,
 * and wait for the confirmations (queued for listen() as above). Messages received before
 * the confirmation are still delivered by listen(). Ownership: borrows `name`. Returns
 * the subscription count left (>= 0), or an error (the names are removed from the set
 * even then: they will not be resubscribed). */
CIPC_API int cipc_bus_unsubscribe(cipc_bus *b, const char *channel);
CIPC_API int cipc_bus_punsubscribe(cipc_bus *b, const char *pattern);

/* Wait up to `timeout_ms` (< 0: forever; 0: only what has already arrived) for the next
 * pub/sub event: a message, a confirmation, or CIPC_BUS_GAP after a reconnection. PING
 * replies are consumed here and never reported. The connection is kept alive and
 * checked as described above; a lost connection is reopened here (following
 * opts.reconnect, within the timeout, and across calls) and every subscription renewed.
 * Ownership: fills *m with views valid until the next call on the bus (or
 * cipc_bus_free()). Returns 0, CIPC_ETIMEOUT (no event in time: also while the server is
 * unreachable and the reconnection goes on), -EINVAL (no subscription and no event
 * pending), the error of the last attempt when reconnection gave up (attempts used up;
 * the next listen() starts again) or cannot succeed (-EACCES, CIPC_ECERT...). */
CIPC_API int cipc_bus_listen(cipc_bus *b, cipc_bus_msg *m, long timeout_ms);

/* LPUSH one item (any bytes) onto the queue. Ownership: borrows `queue` and `data`.
 * Returns the queue's new length (>= 1), or an error (the item may have been stored if
 * the error is CIPC_ETIMEOUT or CIPC_ENET). */
CIPC_API int cipc_bus_push(cipc_bus *b, const char *queue, const void *data, size_t len);

/* Take the oldest item (BRPOP; RPOP for timeout 0), waiting up to `timeout_ms` (< 0:
 * forever) for one. At most once: the item is no longer in the queue when this returns.
 * Ownership: *data returns owned (free() it; NUL-terminated after its *len bytes, never
 * NULL). Returns 0, CIPC_EAGAIN (timeout 0 and the queue is empty), CIPC_ETIMEOUT, or an
 * error (with CIPC_ETIMEOUT/CIPC_ENET on a slice in flight, an item may have been taken
 * by the server and lost with the connection; use pop_reliable when that matters). */
CIPC_API int cipc_bus_pop(cipc_bus *b, const char *queue, long timeout_ms, void **data,
                          size_t *len);

/* As cipc_bus_pop(), but at least once: registers this consumer in `<queue>:consumers`
 * (once per connection), then atomically moves the oldest item to
 * `<queue>:processing:<consumer-id>` (BLMOVE; LMOVE for timeout 0) and returns a copy.
 * The item stays there until cipc_bus_ack() or until a reaper re-queues it after this
 * consumer has gone. With opts.visibility_ms > 0, also reaps `queue` (see
 * cipc_bus_reap()) first and every visibility_ms/2 while waiting. Same returns and
 * ownership as cipc_bus_pop(); an item moved by a command whose reply was lost stays in
 * the processing list and is re-queued by the reaper once this consumer is gone. */
CIPC_API int cipc_bus_pop_reliable(cipc_bus *b, const char *queue, long timeout_ms, void **data,
                                   size_t *len);

/* Acknowledge an item returned by cipc_bus_pop_reliable(): remove one copy of it (the
 * oldest) from this consumer's processing list (LREM). Ownership: borrows everything.
 * Returns 1 if removed, 0 if it was not there (already acked, or re-queued by a reaper:
 * another consumer may then process it too), or an error. */
CIPC_API int cipc_bus_ack(cipc_bus *b, const char *queue, const void *data, size_t len);

/* Re-queue the items of dead consumers of `queue`: every consumer registered in
 * `<queue>:consumers` whose id has been absent from CLIENT LIST for at least
 * `visibility_ms` (as first noticed by any reaper) has its processing list moved back to
 * the head of the queue in order (LMOVE, item by item, so concurrent reapers never
 * duplicate an item) and is unregistered. A consumer noticed absent for the first time
 * is only marked (with visibility_ms 0 it is re-queued at once). Returns the number of items
 * re-queued (>= 0) or an error. Bounded by command_timeout_ms per command. */
CIPC_API int cipc_bus_reap(cipc_bus *b, const char *queue, long visibility_ms);

/* LLEN of a list (a queue or a processing list). Returns the length (>= 0) or an error. */
CIPC_API int cipc_bus_len(cipc_bus *b, const char *list);

/* ---- loop-based subscriber -------------------------------------------------------------
 *
 *     static void on_msg(cipc_bus_sub *s, const cipc_bus_msg *m, void *ud) {
 *         if (m->type == CIPC_BUS_MESSAGE)
 *             printf("Received: %.*s\n", (int)m->len, (const char *)m->data);
 *     }
 *     cipc_bus_sub *s = NULL;
 *     cipc_bus_sub_new(loop, "redis://127.0.0.1:6379", NULL, on_msg, NULL, &s);
 *     cipc_bus_sub_subscribe(s, "channel");
 *     cipc_loop_run(loop, CIPC_RUN_DEFAULT);
 *
 * One subscriber connection driven by the loop: connects on libuv's thread pool (the
 * blocking connect and handshake above, so the loop never blocks), then reads with a
 * uv_poll handle and parses with hiredis's reader. Keepalive PINGs run on a uv timer;
 * a lost or dead connection is reopened with opts.reconnect's backoff (on a timer), every
 * subscription renewed, and CIPC_BUS_GAP reported, exactly as cipc_bus_listen() does.
 * The handle keeps the loop alive until it is closed or has reported CIPC_BUS_ERROR. */
typedef struct cipc_bus_sub cipc_bus_sub;

/* Called on the loop's thread for every event; `m` and its views are valid only inside
 * the callback. The callback may call cipc_bus_sub_(un)subscribe() and
 * cipc_bus_sub_close() on its own handle. */
typedef void (*cipc_bus_msg_cb)(cipc_bus_sub *s, const cipc_bus_msg *m, void *ud);
typedef void (*cipc_bus_sub_close_cb)(cipc_bus_sub *s, void *ud);

/* Create the subscriber and start connecting. Ownership: borrows `url`, `opts` (copies
 * what it keeps). Returns 0 and sets *out (close it with cipc_bus_sub_close()), or
 * CIPC_EURL, -EINVAL, -ENOMEM; connection errors are not returned here: the connection
 * is retried per opts.reconnect, and CIPC_BUS_ERROR is reported through `cb` if it gives
 * up. */
CIPC_API int cipc_bus_sub_new(cipc_loop *loop, const char *url, const cipc_bus_opts *opts,
                              cipc_bus_msg_cb cb, void *ud, cipc_bus_sub **out);

/* Add a channel / pattern to the subscription set and send (P)SUBSCRIBE when connected
 * (or on connection). Confirmations come through the callback (unless
 * opts.skip_confirmations). Ownership: copies `name`. Returns 0, -EINVAL, -ENOMEM,
 * CIPC_ECLOSING. */
CIPC_API int cipc_bus_sub_subscribe(cipc_bus_sub *s, const char *channel);
CIPC_API int cipc_bus_sub_psubscribe(cipc_bus_sub *s, const char *pattern);

/* Remove a name (NULL: every channel / pattern) from the set and send (P)UNSUBSCRIBE
 * when connected. Returns 0, -EINVAL, CIPC_ECLOSING. */
CIPC_API int cipc_bus_sub_unsubscribe(cipc_bus_sub *s, const char *channel);
CIPC_API int cipc_bus_sub_punsubscribe(cipc_bus_sub *s, const char *pattern);

/* Close the connection and free the handle: `cb` (may be NULL) runs on the loop's thread
 * once everything is released (after a connect in progress on the thread pool finishes);
 * no message callback runs after this call. NULL `s` does nothing. */
CIPC_API void cipc_bus_sub_close(cipc_bus_sub *s, cipc_bus_sub_close_cb cb, void *ud);

/* A message about the last connection failure (never NULL). A view valid until the next
 * loop iteration. */
CIPC_API const char *cipc_bus_sub_errmsg(const cipc_bus_sub *s);

#ifdef __cplusplus
}
#endif
#endif
