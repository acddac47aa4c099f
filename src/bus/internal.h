/* src/bus/internal.h -- private to the cipc_bus module (src/bus/): URL parsing, one
 * Redis connection over a file descriptor with deadline-bounded I/O (hiredis formats
 * commands and parses replies; the I/O is ours so every wait has a deadline), and the
 * TLS tunnel that gives hiredis 0.14 (no TLS of its own) a plain socket.
 *
 * Threading: a cipc__bus_conn is used by one thread at a time. */
#ifndef CIPC_BUS_INTERNAL_H
#define CIPC_BUS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#include "cipc/bus.h"
#include "cipc/time.h"

/* A parsed bus URL; strings are owned (NUL-terminated, percent-decoded). */
struct cipc__bus_url {
    int kind;   /* CIPC__BUS_TCP, CIPC__BUS_TLS or CIPC__BUS_UNIX */
    char *host; /* TCP/TLS: host name or address (no brackets) */
    int port;   /* TCP/TLS: 6379 when absent */
    char *path; /* UNIX: socket path */
    char *user; /* NULL: no user (AUTH pass) */
    char *pass; /* NULL: no AUTH */
    int db;     /* SELECT when > 0 */
};

enum { CIPC__BUS_TCP = 1, CIPC__BUS_TLS = 2, CIPC__BUS_UNIX = 3 };

/* Parse `url`; see cipc_bus_connect() for the forms. Returns 0, CIPC_EURL or -ENOMEM.
 * Called by cipc__bus_cfg_init(). */
int cipc__bus_url_parse(const char *url, struct cipc__bus_url *out);
void cipc__bus_url_free(struct cipc__bus_url *u);

/* Everything needed to (re)open a connection: the URL and the resolved options, with
 * owned copies of the strings. Shared by the blocking bus and the loop subscriber. */
struct cipc__bus_cfg {
    struct cipc__bus_url url;
    long connect_timeout_ms; /* < 0: none */
    long command_timeout_ms; /* < 0: none */
    long ping_interval_ms;   /* < 0: off */
    long ping_timeout_ms;
    cipc_retry_policy retry;
    int retry_forever; /* reconnect.max_attempts was 0 */
    char *client_name; /* NULL: none */
    char *ca_file;
    int insecure;
    int skip_confirmations;
    long visibility_ms;
};

/* Resolve `opts` (NULL -> defaults) and parse `url`. Returns 0, CIPC_EURL, -EINVAL or
 * -ENOMEM; on error nothing needs freeing. */
int cipc__bus_cfg_init(struct cipc__bus_cfg *cfg, const char *url, const cipc_bus_opts *opts);
void cipc__bus_cfg_free(struct cipc__bus_cfg *cfg);

/* A set of owned names (subscribed channels or patterns, registered queues). */
struct cipc__bus_names {
    char **v;
    size_t n, cap;
};

/* Index of `name`, or -1. */
ssize_t cipc__bus_names_find(const struct cipc__bus_names *s, const char *name);
/* Add a copy of `name` if absent. Returns 1 added, 0 present, -ENOMEM. */
int cipc__bus_names_add(struct cipc__bus_names *s, const char *name);
void cipc__bus_names_del(struct cipc__bus_names *s, const char *name);
void cipc__bus_names_clear(struct cipc__bus_names *s);
void cipc__bus_names_free(struct cipc__bus_names *s);

/* Is a connect error worth another attempt (network trouble, not a refusal)? */
int cipc__bus_retriable(int rc);

/* Fill *m with views into a subscribed-mode reply (message, pmessage, confirmation).
 * Returns 1 if it is an event to report, 0 if it is to be dropped (PING replies, unknown
 * shapes; confirmations when skip_confirmations). Called by listen() and the loop
 * subscriber. */
int cipc__bus_to_msg(const redisReply *r, int skip_confirmations, cipc_bus_msg *m);

struct cipc__bus_tunnel;

/* One connection to the server. fd < 0 means "not connected". */
struct cipc__bus_conn {
    int fd;
    redisReader *rd;
    struct cipc__bus_tunnel *tls;
    int64_t last_rx_ms; /* monotonic ms of the last bytes received */
    char errmsg[256];   /* detail of the last failure */
};

void cipc__bus_conn_init(struct cipc__bus_conn *c);

/* Open the connection and run the handshake: AUTH (if the URL has a password), SELECT
 * (db > 0), CLIENT SETNAME `name` (if not NULL). The whole is bounded by the connect
 * timeout. Returns 0, or CIPC_EDNS, CIPC_ECONNECT, CIPC_ECONNTIMEOUT, CIPC_ETLS, CIPC_ECERT,
 * CIPC_EAUTH (AUTH refused), CIPC_EPROTO, CIPC_ENET, -ENOMEM; c->errmsg says more. On error
 * the connection is closed. Blocking; called by the bus and by the loop subscriber's
 * worker thread. */
int cipc__bus_conn_open(struct cipc__bus_conn *c, const struct cipc__bus_cfg *cfg,
                        const char *name);

/* Close the socket (and stop the TLS tunnel). Safe on a closed connection. */
void cipc__bus_conn_close(struct cipc__bus_conn *c);

/* Send one command (argv as bytes). Returns 0, CIPC_ETIMEOUT or CIPC_ENET; on error the
 * connection has been closed. */
int cipc__bus_conn_send(struct cipc__bus_conn *c, int argc, const char **argv, const size_t *lens,
                        cipc_deadline d);

/* Read one reply before `d`. Returns 0 with *out (owned: freeReplyObject), or
 * CIPC_ETIMEOUT (the connection is left open: the caller decides), CIPC_ENET (EOF or
 * error) or CIPC_EPROTO (both close the connection). */
int cipc__bus_conn_read(struct cipc__bus_conn *c, cipc_deadline d, redisReply **out);

/* A reply already buffered, without reading the socket: 1 and *out, or 0. Returns
 * CIPC_EPROTO on a protocol error (connection closed). */
int cipc__bus_conn_buffered(struct cipc__bus_conn *c, redisReply **out);

/* Before using an idle connection: if the socket is readable (EOF, reset, or a stray
 * reply), close it so the caller reconnects instead of failing. Called by the bus before
 * every command on the command connection. */
void cipc__bus_conn_check(struct cipc__bus_conn *c);

/* Send a command and read its reply. A timeout closes the connection (the reply may
 * still come, so the stream would be out of sync). An error reply is returned as a
 * reply (type REDIS_REPLY_ERROR), not as an error code. */
int cipc__bus_conn_call(struct cipc__bus_conn *c, int argc, const char **argv, const size_t *lens,
                        cipc_deadline d, redisReply **out);

/* The TLS tunnel: connect to host:port, handshake (verifying the certificate unless
 * `insecure`, against `ca_file` or the system store), then pump bytes between the TLS
 * connection and one end of a socketpair on a thread of its own. *fd_out is the other
 * end (the caller closes it; that stops the thread). Returns 0, CIPC_EDNS,
 * CIPC_ECONNECT, CIPC_ECONNTIMEOUT, CIPC_ETLS, CIPC_ECERT, -ENOMEM. Called by
 * cipc__bus_conn_open(). */
int cipc__bus_tunnel_open(const char *host, int port, const char *ca_file, int insecure,
                          cipc_deadline d, int *fd_out, struct cipc__bus_tunnel **out, char *err,
                          size_t errlen);

/* Join the tunnel's thread (its socketpair end must already be closed) and free it. */
void cipc__bus_tunnel_free(struct cipc__bus_tunnel *t);

/* TCP connect to host:port (resolving the name) before `d`. Returns a blocking fd or a
 * negative code (CIPC_EDNS, CIPC_ECONNECT, CIPC_ECONNTIMEOUT). */
int cipc__bus_tcp_connect(const char *host, int port, cipc_deadline d, char *err, size_t errlen);

/* Poll one fd for `events` until `d`. Returns > 0 when ready, 0 on timeout, -errno. */
int cipc__bus_poll(int fd, short events, cipc_deadline d);

#endif
