/* Private to src/http_server: the server, its workers, connections and requests. */
#ifndef CIPC_HTTP_SERVER_INTERNAL_H
#define CIPC_HTTP_SERVER_INTERNAL_H

#include <openssl/ssl.h>
#include <stdatomic.h>
#include <uv.h>

#include "cipc/buf.h"
#include "cipc/http_server.h"
#include "http/parser.h"

struct route {
    char *method;       /* "*" for any */
    char *tmpl;         /* as given */
    char **segs;        /* template split at '/' (without the leading one) */
    unsigned char *par; /* par[i]: segs[i] is "{name}" (name stored without braces) */
    size_t nsegs;
    cipc_http_handler h;
    void *ud;
    void (*ud_free)(void *ud); /* frees ud with the route (WebSocket endpoints) */
    int streaming;             /* cipc_route_stream(): called at the head, body streamed */
};

struct worker;
struct conn;

/* One request being handled (a connection handles one at a time; pipelined requests
 * wait in the connection's buffer). The strings point into the connection's read
 * buffer, NUL-terminated in place, and stay valid until the answer. */
struct cipc_http_req {
    struct conn *c;
    struct cipc__http_header *headers; /* the parsed array (n = p.n_headers): the worker's
                                          scratch, or an owned copy (headers_owned) */
    int headers_owned;
    const char *method, *path, *query;
    const struct route *route;
    size_t nsegs;
    cipc_buf decoded;       /* decoded parameters, NUL-separated */
    cipc_buf query_decoded; /* decoded query pairs: key\0value\0... */
    int query_parsed;
    cipc_buf body;        /* the request body */
    cipc_buf out_headers; /* extra response headers, "Name: value\r\n" each */
    char *why;            /* cipc_http_json() message */
    int status;
    int answered;  /* a whole response was queued, or cipc_http_end() ran */
    int streaming; /* head sent, chunks follow */
    int head_only; /* HEAD: no body bytes */
    int64_t t0_ns;
    uint64_t bytes_out;
    int streamed_route; /* the route takes the body as a stream */
    uint64_t streamed;  /* body bytes delivered so far */
    cipc_http_body_cb body_cb;
    void *body_ud;
    void (*abort_cb)(cipc_http_req *r, void *ud); /* cipc_http_on_abort() */
    void *abort_ud;
    /* Not cleared between requests (req_reset() stops here): the parser initialises `p`,
     * and segs[0..nsegs) are set by routing. */
    struct cipc__http_request p;
    struct cipc__slice segs[32]; /* path segments, for parameters */
};

enum conn_state { C_HEAD, C_BODY_CL, C_BODY_CHUNKED, C_HANDLER, C_CLOSING, C_WS };

struct conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uv_timer_t timer;
    struct worker *w;
    struct conn *prev, *next;
    char *buf; /* read buffer: [0, len) received, requests at the start */
    size_t len, cap;
    size_t prev_len;  /* bytes seen by an unfinished head parse (0: none in progress) */
    size_t head_len;  /* length of the current request's head */
    size_t body_done; /* body bytes received (CL) or decoded (chunked) */
    struct cipc__http_chunked chunked;
    enum conn_state state;
    int reading;
    int keep_alive;
    int in_process; /* inside conn_process(): do not recurse */
    int closed;     /* uv_close called */
    int pending_writes;
    int close_when_drained;
    int timer_kind;
    uint64_t idle_since; /* uv_now() when the connection last became idle */
    int orphan;          /* closed while its handler had not answered yet */
    SSL *ssl;            /* TLS connections only */
    struct cipc_ws *ws;  /* after a WebSocket upgrade (state C_WS) */
    int ws_err;          /* why the socket ended, for the cipc_ws */
    int flush_pending;   /* on the worker's flush list */
    struct conn *flush_next;
    char peer[48];
    struct cipc_http_req req;
};

struct worker {
    cipc_server *srv;
    int index;
    uv_loop_t own_loop;
    uv_loop_t *uv;
    uv_tcp_t listener;
    int has_listener;
    uv_pipe_t unix_listener;
    int has_unix;
    uv_tcp_t tls_listener;
    int has_tls;
    int tls_fd;
    char tls_in[16384]; /* ciphertext read buffer, shared by the worker's TLS conns */
    cipc_buf tls_out;   /* ciphertext staging */
    uv_async_t wake;    /* cipc_server_stop() from any thread */
    uv_timer_t shutdown_timer;
    uv_signal_t sigint, sigterm;
    int has_signals;
    uv_thread_t thread;
    struct conn *conns;
    int nconns;
    int stopping;
    int handles_open; /* worker-level handles not yet closed */
    time_t date_at;
    char date[40];                     /* "Date: ...\r\n" for this second */
    struct cipc__http_header *scratch; /* parser output before a request is dispatched */
    int forcing;                       /* shutdown deadline passed: close everything */
    int drained;                       /* worker handles closed: the loop is ending */
    int fd;                            /* the listening socket made for this worker */
    int no_thread;                     /* its thread could not be created */
    atomic_int ready;                  /* handles initialised: cipc_server_stop() may wake it */
    cipc_buf out;                      /* response assembly, reused */
    char *pool[256];                   /* idle read buffers (READ_CHUNK bytes each) */
    int in_handler;                    /* handlers running on this worker's stack */
    int n_pool;
    int rc; /* listen result for threads */
    /* WebSocket connections of this worker (ws.c). */
    uv_thread_t tid;         /* the thread running the worker's loop */
    uint64_t ws_seq;         /* for connection ids */
    struct cipc_ws **ws_tab; /* id -> connection, open addressing */
    size_t ws_cap, ws_n;
    struct ws_topic *topics;
    uv_mutex_t xlock; /* guards the cross-thread queue below */
    int has_xlock;
    struct ws_xmsg *xhead, *xtail;
    int xlen;
    /* WebSocket connections with gathered frames, sent before the loop next waits. */
    struct conn *flush_list;
    uv_prepare_t flush_prepare;
    uv_check_t flush_check;
    int flush_started;
};

struct cipc_server {
    cipc_server_opts o; /* defaults resolved */
    struct cipc__http_limits limits;
    struct route *routes;
    size_t nroutes;
    int started;
    atomic_int stop_requested;
    struct worker *workers;
    int nworkers;
    int port;
    int tls_port;
    SSL_CTX *ssl_ctx;
    char errmsg[512];
};

/* router.c */
const struct route *cipc__route_match(const cipc_server *s, const char *method, size_t mlen,
                                      const struct cipc__slice *segs, size_t nsegs,
                                      int *method_mismatch);
int cipc__route_allow(const cipc_server *s, const struct cipc__slice *segs, size_t nsegs,
                      cipc_buf *out);
void cipc__routes_free(cipc_server *s);
int cipc__route_add(cipc_server *s, const char *method, const char *path, cipc_http_handler h,
                    void *ud, int streaming, void (*ud_free)(void *));

/* conn.c */
enum { LISTENER_TCP, LISTENER_UNIX, LISTENER_TLS };
void cipc__conn_accept(struct worker *w, uv_stream_t *listener, int kind);
/* Write bytes to the socket as they are (ciphertext on TLS connections). len may be 0
 * with close_after to close once earlier writes are out. */
int cipc__conn_raw_send(struct conn *c, const char *data, size_t len, int close_after);

/* Grow c->buf to at least `need` free bytes, moving the current request's views with it.
 * Returns 0 or -ENOMEM. */
int cipc__conn_buf_grow(struct conn *c, size_t need);

/* WebSocket connections (conn.c): switch a connection whose upgrade request is being
 * handled to `ws` after sending `resp` (the 101 head). */
int cipc__conn_upgrade(struct conn *c, const char *resp, size_t len, struct cipc_ws *ws);
/* Set up / close the worker's flush handles (server.c calls these with its own handles). */
void cipc__conn_flush_init(struct worker *w);
void cipc__conn_flush_close(struct worker *w, uv_close_cb cb);
extern const struct cipc__ws_transport cipc__conn_ws_transport;

/* ws.c: worker-side WebSocket tables. */
void cipc__ws_worker_init(struct worker *w); /* before its thread starts */
void cipc__ws_worker_free(struct worker *w);
void cipc__ws_worker_wake(struct worker *w); /* drain the cross-thread queue */
void cipc__ws_worker_forget(struct worker *w, struct cipc_ws *ws);
uint64_t cipc__ws_worker_register(struct worker *w, struct cipc_ws *ws);

/* tls.c */
int cipc__tls_ctx_new(cipc_server *s);
void cipc__tls_ctx_free(cipc_server *s);
int cipc__tls_conn_new(struct conn *c);
void cipc__tls_conn_free(struct conn *c);
/* Feed ciphertext; plaintext is appended to c->buf. Returns 0 or a negative code. */
int cipc__tls_feed(struct conn *c, const char *cipher, size_t n);
/* Encrypt and send. */
int cipc__tls_send(struct conn *c, const char *data, size_t len, int close_after);
void cipc__worker_close_idle(struct worker *w);
void cipc__worker_force_close(struct worker *w);
const char *cipc__worker_date(struct worker *w);

/* server.c: the worker has no connections left during a shutdown. */
void cipc__worker_drained(struct worker *w);

#endif
