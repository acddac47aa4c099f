/* Private to src/http_server: the server, its workers, connections and requests. */
#ifndef CIPC_HTTP_SERVER_INTERNAL_H
#define CIPC_HTTP_SERVER_INTERNAL_H

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
};

struct worker;
struct conn;

/* One request being handled (a connection handles one at a time; pipelined requests
 * wait in the connection's buffer). The strings point into the connection's read
 * buffer, NUL-terminated in place, and stay valid until the answer. */
struct cipc_http_req {
    struct conn *c;
    struct cipc__http_request p;
    struct cipc__http_header *headers; /* owned copy of the parsed array (n = p.n_headers) */
    const char *method, *path, *query;
    const struct route *route;
    struct cipc__slice segs[32]; /* path segments, for parameters */
    size_t nsegs;
    cipc_buf decoded;            /* decoded parameters, NUL-separated */
    cipc_buf query_decoded;      /* decoded query pairs: key\0value\0... */
    int query_parsed;
    cipc_buf body;               /* the request body */
    cipc_buf out_headers;        /* extra response headers, "Name: value\r\n" each */
    char *why;                   /* cipc_http_json() message */
    int status;
    int answered;                /* a whole response was queued, or cipc_http_end() ran */
    int streaming;               /* head sent, chunks follow */
    int head_only;               /* HEAD: no body bytes */
    int64_t t0_ns;
    uint64_t bytes_out;
};

enum conn_state { C_HEAD, C_BODY_CL, C_BODY_CHUNKED, C_HANDLER, C_CLOSING };

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
    char *buf;        /* read buffer: [0, len) received, requests at the start */
    size_t len, cap;
    size_t prev_len;  /* parser's prev_len for the head being read */
    size_t head_len;  /* length of the current request's head */
    size_t body_done; /* body bytes received (CL) or decoded (chunked) */
    struct cipc__http_chunked chunked;
    enum conn_state state;
    int reading;
    int keep_alive;
    int in_process;   /* inside conn_process(): do not recurse */
    int closed;       /* uv_close called */
    int pending_writes;
    int timer_kind;
    int orphan;       /* closed while its handler had not answered yet */
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
    uv_async_t wake;   /* cipc_server_stop() from any thread */
    uv_timer_t shutdown_timer;
    uv_signal_t sigint, sigterm;
    int has_signals;
    uv_thread_t thread;
    struct conn *conns;
    int nconns;
    int stopping;
    int handles_open; /* worker-level handles not yet closed */
    time_t date_at;
    char date[40];    /* "Date: ...\r\n" for this second */
    struct cipc__http_header *scratch; /* parser output before a request is dispatched */
    int forcing;      /* shutdown deadline passed: close everything */
    int drained;      /* worker handles closed: the loop is ending */
    int fd;           /* the listening socket made for this worker */
    int no_thread;    /* its thread could not be created */
    atomic_int ready; /* handles initialised: cipc_server_stop() may wake it */
    cipc_buf out;     /* response assembly, reused */
    int rc;           /* listen result for threads */
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
    char errmsg[256];
};

/* router.c */
const struct route *cipc__route_match(const cipc_server *s, const char *method, size_t mlen,
                                      const struct cipc__slice *segs, size_t nsegs,
                                      int *method_mismatch);
int cipc__route_allow(const cipc_server *s, const struct cipc__slice *segs, size_t nsegs,
                      cipc_buf *out);
void cipc__routes_free(cipc_server *s);

/* conn.c */
void cipc__conn_accept(struct worker *w, uv_stream_t *listener, int is_unix);
void cipc__worker_close_idle(struct worker *w);
void cipc__worker_force_close(struct worker *w);
const char *cipc__worker_date(struct worker *w);

/* server.c: the worker has no connections left during a shutdown. */
void cipc__worker_drained(struct worker *w);

#endif
