/* cipc/broker.h -- an embeddable message broker that speaks the Redis protocol: pub/sub
 * and work queues on lists, on a cipc_loop, so that every Redis client (redis-cli,
 * redis-py, hiredis, cipc_bus) works with it unchanged.
 *
 *     cipc_loop *loop = NULL;
 *     cipc_loop_new(NULL, &loop);
 *     cipc_broker *b = NULL;
 *     cipc_broker_new(loop, &(cipc_broker_opts){.port = 7379, .aof_path = "queues.aof"}, &b);
 *     cipc_loop_run(loop, CIPC_RUN_DEFAULT);          (serves until cipc_broker_close())
 *     cipc_broker_free(b);
 *
 *     $ redis-cli -p 7379 publish channel "Hello, subscribers!"
 *
 * What it implements, with Redis 7's reply shapes and error texts:
 * - RESP2 over TCP and Unix sockets, and inline commands (telnet, redis-cli). HELLO 2 is
 *   answered; HELLO 3 gets "-NOPROTO unsupported protocol version" (RESP3 is not
 *   implemented), which clients such as redis-py and hiredis handle by staying on RESP2.
 * - Pub/sub: SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE PUBLISH, PUBSUB CHANNELS /
 *   NUMSUB / NUMPAT; Redis glob patterns; PING in subscribed mode; the subscribed-mode
 *   error for other commands.
 * - Lists as work queues: LPUSH RPUSH LPOP RPOP (with count) LLEN LRANGE LREM LMOVE
 *   RPOPLPUSH, and the blocking BLPOP BRPOP BLMOVE BRPOPLPUSH (timeouts in seconds,
 *   decimals allowed, 0 = forever; blocked clients are served in the order they
 *   blocked); DEL EXISTS TYPE KEYS DBSIZE FLUSHDB FLUSHALL (one database, SELECT 0).
 * - Connection and admin: PING ECHO QUIT AUTH (with opts.requirepass) HELLO
 *   CLIENT SETNAME/GETNAME/ID/LIST/INFO, SELECT, INFO (server, clients, memory, stats,
 *   persistence), COMMAND (COUNT, DOCS, INFO: enough for redis-cli), RESET. Anything else:
 *   "-ERR unknown command 'x', with args beginning with: ...".
 *
 * Durability (opts.aof_path): every command that changes a list is appended to the file
 * in RESP before its reply leaves, and the file is replayed when the broker starts. With
 * CIPC_BROKER_FSYNC_ALWAYS the file is fsync'ed before any reply to such a command is
 * sent (one fsync per loop iteration covers every command of that iteration), so a push
 * that was acknowledged survives kill -9 and a power loss; EVERYSEC fsyncs once a second
 * (off the loop thread), so at most about a second of acknowledged pushes can be lost;
 * NO leaves it to the kernel. When the file has grown to aof_rewrite_percentage % of its
 * size after the last rewrite (and at least aof_rewrite_min_size), a forked child
 * rewrites it as the shortest list of RPUSH commands that rebuilds the data, while the
 * broker goes on; the commands of the meantime are appended when the child is done, and
 * the new file replaces the old with rename(2). A truncated last command (a crash in the
 * middle of a write) is dropped at replay, as Redis's aof-load-truncated does; any other
 * damage makes cipc_broker_new() fail with CIPC_EPROTO. Pub/sub is never persisted.
 *
 * Limits (0 = default): max_clients (10000; one more is answered "-ERR max number of
 * clients reached" and closed), the RESP request limits (cipc's RESP parser: 512 MiB
 * bulk, 1M arguments, 64 KiB inline: an error in Redis's words, then close), and the
 * pub/sub output buffer of each client: a subscriber whose unsent output exceeds
 * pubsub_obuf_hard (32 MiB), or stays above pubsub_obuf_soft (8 MiB) for
 * pubsub_obuf_soft_seconds (60), is disconnected (Redis's client-output-buffer-limit
 * pubsub 32mb 8mb 60), so one slow subscriber costs bounded memory and never slows the
 * others.
 *
 * Security: binds 127.0.0.1 unless opts.host says otherwise, and refuses (-EPERM) a
 * non-loopback address without requirepass unless opts.allow_insecure_remote is set.
 *
 * Signals: cipc_broker_new() sets SIGPIPE to ignored unless the program has a handler for
 * it or ignores it already (a client that goes away while a reply is being written would
 * otherwise kill the process; the write then fails with EPIPE and the client is dropped).
 *
 * Threading: a broker and its clients live on the loop's thread; every call here must be
 * made on that thread. */
#ifndef CIPC_BROKER_H
#define CIPC_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include "cipc/error.h"
#include "cipc/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cipc_broker cipc_broker;

enum cipc_broker_fsync {
    CIPC_BROKER_FSYNC_EVERYSEC = 0, /* the default, as Redis's */
    CIPC_BROKER_FSYNC_ALWAYS = 1,
    CIPC_BROKER_FSYNC_NO = 2
};

/* Broker options; zero means the default. Only ever extended at the end. */
typedef struct cipc_broker_opts {
    size_t size;              /* sizeof(cipc_broker_opts), or 0 for "this version" */
    const char *host;         /* address to listen on; NULL -> "127.0.0.1" */
    int port;                 /* TCP port; 0 -> an ephemeral port (cipc_broker_port());
                                 -1 -> no TCP listener (only unix_path, or only in-process
                                 clients when there is no unix_path either) */
    const char *unix_path;    /* also listen on this Unix socket (replaced if it exists
                                 and no one listens on it); NULL -> no */
    const char *requirepass;  /* NULL -> no password (AUTH then fails as in Redis) */
    int allow_insecure_remote; /* 1: allow a non-loopback host without requirepass */
    size_t max_clients;       /* 0 -> 10000 */
    size_t max_bulk;          /* largest bulk argument; 0 -> 512 MiB */
    size_t max_multibulk;     /* most arguments in a command; 0 -> 1048576 */
    size_t max_inline;        /* longest inline command; 0 -> 64 KiB */
    size_t pubsub_obuf_hard;  /* 0 -> 32 MiB */
    size_t pubsub_obuf_soft;  /* 0 -> 8 MiB */
    long pubsub_obuf_soft_seconds; /* 0 -> 60 */
    const char *aof_path;     /* append-only file; NULL -> nothing is persisted */
    int appendfsync;          /* enum cipc_broker_fsync */
    size_t aof_rewrite_min_size; /* 0 -> 64 MiB */
    int aof_rewrite_percentage;  /* 0 -> 100; < 0 -> never rewrite automatically */
    /* Called after every PUBLISH command from a client (not for cipc_broker_publish()),
     * once the broker's own subscribers have the message: the embedding program can carry
     * the message further (the hub sends it to its WebSocket and SSE subscribers). The
     * views are valid during the call. Return how many more receivers got it (added to
     * PUBLISH's reply), or 0. NULL -> none. */
    int (*on_publish)(const void *channel, size_t channel_len, const void *msg, size_t len,
                      void *ud);
    void *on_publish_ud;
} cipc_broker_opts;

/* Create a broker on `loop` and start listening (replaying opts.aof_path first). Borrows
 * `loop` (it must outlive the broker) and opts (strings are copied). Returns 0 and sets
 * *out (returns owned: cipc_broker_free()), or -EINVAL (bad option), -EPERM (non-loopback
 * host without requirepass), CIPC_EPROTO (the AOF is damaged beyond a truncated tail),
 * CIPC_EFILE (the AOF cannot be opened or read), -EADDRINUSE and other negated errno
 * values from listening, -ENOMEM. */
CIPC_API int cipc_broker_new(cipc_loop *loop, const cipc_broker_opts *opts, cipc_broker **out);

/* The TCP port it listens on (useful with port 0), or -1 without TCP. */
CIPC_API int cipc_broker_port(const cipc_broker *b);

/* Publish from the embedding program, as PUBLISH does. Copies the bytes. Returns the
 * number of clients that received it (>= 0), or -EINVAL, -ENOMEM. */
CIPC_API int cipc_broker_publish(cipc_broker *b, const void *channel, size_t channel_len,
                                 const void *msg, size_t len);

/* The number of clients subscribed to `channel`, counting each matching pattern
 * subscription too (what PUBLISH on it would reach now), or -EINVAL. */
CIPC_API int cipc_broker_numsub(cipc_broker *b, const void *channel, size_t len);

/* Call fn for every channel with at least one subscriber (the count excludes pattern
 * subscriptions). Returns the number of channels. */
CIPC_API size_t cipc_broker_channels(cipc_broker *b,
                                     void (*fn)(const char *channel, size_t len,
                                                size_t subscribers, void *ud),
                                     void *ud);

/* The number of connected clients (sockets; in-process clients are not counted). */
CIPC_API size_t cipc_broker_clients(const cipc_broker *b);

/* --- In-process clients -------------------------------------------------------------
 *
 * A client without a socket, for the embedding program: commands go in as argument
 * vectors and their replies come out as RESP bytes, exactly as a socket client would
 * receive them, through `cb` at the end of the loop iteration (after the AOF write and
 * fsync that the command needs, as for any client). Everything a socket client has
 * applies: a blocking command (BLMOVE ...) holds the replies of the commands sent after
 * it until it is served or times out, so give every concurrent blocking wait a client of
 * its own. One reply per command (no SUBSCRIBE: use opts.on_publish). */
typedef struct cipc_broker_client cipc_broker_client;

/* Receives the replies of one or more commands, in order, as RESP (`resp` is a view valid
 * during the call). The callback may send commands and close its own client. */
typedef void (*cipc_broker_reply_cb)(const char *resp, size_t len, void *ud);

/* Create an in-process client named `name` (NULL: none). Returns 0 and *out, -EINVAL
 * (also once the broker is closing), -ENOMEM. */
CIPC_API int cipc_broker_client_new(cipc_broker *b, const char *name, cipc_broker_reply_cb cb,
                                    void *ud, cipc_broker_client **out);

/* Run a command: argv[i] of argl[i] bytes (argl NULL: NUL-terminated strings). Returns 0
 * (the reply follows through the callback), CIPC_ECLOSING, -EINVAL, -ENOMEM. */
CIPC_API int cipc_broker_client_cmd(cipc_broker_client *c, size_t argc,
                                    const char *const *argv, const size_t *argl);

/* Close it: a blocked command is abandoned and replies not yet delivered are dropped.
 * cipc_broker_close() leaves in-process clients open (close them first at shutdown);
 * cipc_broker_free() frees any left. NULL does nothing. */
CIPC_API void cipc_broker_client_close(cipc_broker_client *c);

/* Stop: stop accepting, write and fsync the AOF, close every client (after its pending
 * output has been written, for up to a second). The loop then runs out of the broker's
 * handles. Idempotent. */
CIPC_API void cipc_broker_close(cipc_broker *b);

/* Close if needed and free. Call after the loop has run the close through (or on a loop
 * that will not run again: handles are then abandoned, not leaked to callbacks). NULL
 * does nothing. */
CIPC_API void cipc_broker_free(cipc_broker *b);

#ifdef __cplusplus
}
#endif
#endif
