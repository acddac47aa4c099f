/* cipc/http_server.h -- an HTTP/1.1 server for REST APIs on libuv: routing with path
 * parameters, JSON, keep-alive and pipelining, streamed responses, timeouts, graceful
 * shutdown, and several worker threads sharing the port (SO_REUSEPORT).
 *
 *     static void get_user(cipc_http_req *req, void *ud)
 *     {
 *         const char *id = cipc_http_param(req, "id");
 *         json_t *user = json_pack("{s:s}", "id", id);
 *         cipc_http_respond_json(req, 200, user);
 *         json_decref(user);
 *     }
 *
 *     cipc_server *srv = NULL;
 *     cipc_server_new(&(cipc_server_opts){.port = 8080}, &srv);
 *     cipc_route(srv, "GET", "/users/{id}", get_user, NULL);
 *     cipc_server_run(srv);          (until SIGINT/SIGTERM, then drains gracefully)
 *     cipc_server_free(srv);
 *
 * HTTPS: give tls_cert and tls_key; the server then also listens on tls_port (OpenSSL,
 * TLS 1.2 and 1.3, ALPN http/1.1). Files are sent with sendfile on plain connections
 * and read and encrypted on TLS ones.
 *
 * The server answers by itself: 404 (no route), 405 with Allow (route exists for another
 * method), 400/413/414/431/501/505 for requests the parser rejects (then closes), 408
 * when the head or body does not arrive in time, 503 when max_connections is reached,
 * 500 when a handler returns without answering and never answers (at shutdown).
 *
 * Signals: cipc_server_new() sets SIGPIPE to ignored unless the program has a handler for
 * it or ignores it already (a client that goes away while a response is being written
 * would otherwise kill the process).
 *
 * Threading: routes are added before the server starts and are read-only afterwards.
 * With workers > 1, handlers run on several threads at once (one libuv loop per worker,
 * each accepting on its own SO_REUSEPORT socket): the handler's `ud` is shared by every
 * worker, so state behind it needs its own locking, or keep per-worker state indexed by
 * cipc_http_worker(). A cipc_http_req belongs to the worker thread that received it; all
 * cipc_http_* calls on it must be made on that thread (from the handler, or later from
 * another callback on the same loop). cipc_server_stop() is thread-safe. */
#ifndef CIPC_HTTP_SERVER_H
#define CIPC_HTTP_SERVER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cipc/error.h"
#include "cipc/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cipc_server cipc_server;
typedef struct cipc_http_req cipc_http_req;

/* A route handler. It must eventually answer exactly once (cipc_http_respond*,
 * or cipc_http_write... cipc_http_end), either before returning or later from another
 * callback on the same loop. */
typedef void (*cipc_http_handler)(cipc_http_req *req, void *ud);

/* Called once the server listens (cipc_server_port() is then known), on the thread that
 * called cipc_server_run() or cipc_server_start(). */
typedef void (*cipc_server_ready_cb)(cipc_server *s, void *ud);

#define CIPC_SERVER_DEFAULT_MAX_REQUEST_LINE  8192
#define CIPC_SERVER_DEFAULT_MAX_HEAD          (64 * 1024)
#define CIPC_SERVER_DEFAULT_MAX_HEADERS       100
#define CIPC_SERVER_DEFAULT_MAX_BODY          (8u * 1024 * 1024)
#define CIPC_SERVER_DEFAULT_HEADER_TIMEOUT_MS 10000
#define CIPC_SERVER_DEFAULT_BODY_TIMEOUT_MS   30000
#define CIPC_SERVER_DEFAULT_IDLE_TIMEOUT_MS   60000
#define CIPC_SERVER_DEFAULT_WRITE_TIMEOUT_MS  30000
#define CIPC_SERVER_DEFAULT_SHUTDOWN_MS       10000
#define CIPC_SERVER_DEFAULT_MAX_CONNECTIONS   10000

/* Server options; zero fields take the defaults above. */
typedef struct cipc_server_opts {
    size_t size;                   /* sizeof(cipc_server_opts), or 0 for "this version" */
    const char *host;              /* a numeric IPv4 or IPv6 address (no name lookup);
                                      NULL -> "127.0.0.1"; "::" or "0.0.0.0" for all */
    int port;                      /* 0 -> an ephemeral port (cipc_server_port()) */
    const char *unix_path;         /* also listen on this Unix-domain socket path (at most 107
                                      bytes; longer fails with -ENAMETOOLONG) */
    int workers;                   /* worker threads; 0 -> the number of cores */
    size_t max_request_line;       /* over -> 414 */
    size_t max_head;               /* request line + headers; over -> 431 */
    size_t max_headers;            /* over -> 431 */
    uint64_t max_body;             /* over -> 413 */
    long header_timeout_ms;        /* the whole head must arrive in this time -> 408 */
    long body_timeout_ms;          /* the whole body must arrive in this time -> 408 */
    long idle_timeout_ms;          /* a kept-alive connection with no request is closed */
    long write_timeout_ms;         /* a response that cannot be written for this long: close */
    long shutdown_timeout_ms;      /* graceful shutdown: in-flight requests get this long */
    int max_connections;           /* per worker (the kernel picks a connection's worker);
                                      over -> 503 and close */
    int access_log;                /* 1: one Common Log Format line (plus latency) per request
                                      on stderr */
    cipc_server_ready_cb on_ready; /* optional */
    void *on_ready_ud;
    const char *tls_cert; /* PEM certificate (chain) file: also serve HTTPS */
    const char *tls_key;  /* PEM private key file for tls_cert */
    int tls_port;         /* the HTTPS port; 0 -> ephemeral (cipc_server_tls_port()).
                             Plain HTTP keeps listening on `port`. ALPN: http/1.1 */
} cipc_server_opts;

/* Create a server (not yet listening). Copies `opts`. Returns 0 and sets *out, or
 * -ENOMEM / -EINVAL; *out is untouched on error. */
CIPC_API int cipc_server_new(const cipc_server_opts *opts, cipc_server **out);

/* Add a route: `method` is a token ("GET", "POST", ...; "*" for any), `path` a template
 * whose segments may be "{name}" parameters ("/users/{id}"). A HEAD request is routed to
 * the GET handler when no HEAD route exists (the body is not sent). Copies both strings.
 * Returns 0, -EINVAL (bad template or method), -EEXIST (same method and template), or
 * CIPC_EBUSY if the server has started. */
CIPC_API int cipc_route(cipc_server *s, const char *method, const char *path, cipc_http_handler h,
                        void *ud);

/* Add a streaming route: the handler runs as soon as the request head has arrived, and
 * takes the body piece by piece with cipc_http_read_body() (called from the handler) instead
 * of as one buffer; max_body still bounds the total. Requests without a body are handled
 * as by cipc_route(). If the handler answers before the body has been read, the rest of the
 * body is not read and the connection closes after the response. Returns as cipc_route(). */
CIPC_API int cipc_route_stream(cipc_server *s, const char *method, const char *path,
                               cipc_http_handler h, void *ud);

/* Listen and serve on the calling thread until cipc_server_stop() or SIGINT/SIGTERM,
 * then shut down gracefully (stop accepting, let in-flight requests finish within
 * shutdown_timeout_ms, close idle connections). Extra workers run on threads of their
 * own. Returns 0, or a negative code if listening failed (message in
 * cipc_server_errmsg()). */
CIPC_API int cipc_server_run(cipc_server *s);

/* Embedded mode: listen on the caller's loop (one worker: the loop's thread) and return
 * at once; the caller runs the loop. Stop with cipc_server_stop(); the loop keeps running
 * until the shutdown is complete. Returns 0 or a negative code. */
CIPC_API int cipc_server_start(cipc_server *s, cipc_loop *loop);

/* The TCP port listened on (useful with port 0), or 0 before listening. */
CIPC_API int cipc_server_port(const cipc_server *s);

/* The HTTPS port listened on, or 0 without TLS or before listening. */
CIPC_API int cipc_server_tls_port(const cipc_server *s);

/* Begin a graceful shutdown. Thread-safe; returns at once. */
CIPC_API void cipc_server_stop(cipc_server *s);

/* Free a server that is not running (never started, or cipc_server_run() returned, or
 * the embedding loop finished the shutdown). NULL does nothing. */
CIPC_API void cipc_server_free(cipc_server *s);

/* The message about the server's last failure ("" if none). */
CIPC_API const char *cipc_server_errmsg(const cipc_server *s);

/* --- The request ----------------------------------------------------------------- */

/* Every string returned below is a view valid until the request is answered. The
 * cipc_http_req pointer itself is valid until then too: afterwards the object serves the
 * connection's next request, so keep no pointer to an answered request. A handler that
 * answers later is not told if the client has gone meanwhile; its answer then returns
 * an error (CIPC_ECLOSING, -ECONNRESET, -EPIPE) or 0 if the close was not seen yet. */

/* The method ("GET") and the path of the request target, not decoded ("/users/42"). */
CIPC_API const char *cipc_http_method(const cipc_http_req *r);
CIPC_API const char *cipc_http_path(const cipc_http_req *r);

/* The raw query string without '?' ("" if none). */
CIPC_API const char *cipc_http_query_string(const cipc_http_req *r);

/* A path parameter of the route ("{id}"), percent-decoded; NULL if the route has none of
 * that name. */
CIPC_API const char *cipc_http_param(cipc_http_req *r, const char *name);

/* The first value of query parameter `name`, form-decoded ('+' is a space); NULL if
 * absent, "" if present without a value. */
CIPC_API const char *cipc_http_query(cipc_http_req *r, const char *name);

/* The first value of request header `name` (case-insensitive), or NULL. */
CIPC_API const char *cipc_http_header(const cipc_http_req *r, const char *name);

/* The request body (buffered, decoded from chunked if it was), NUL-terminated for
 * convenience (the NUL not counted). */
CIPC_API const void *cipc_http_body(const cipc_http_req *r, size_t *len);

/* Parse the body as JSON (returns owned: json_decref). Returns 0, or CIPC_EJSON with a
 * message in *why (a view valid until the request is answered) if `why` is not NULL. */
CIPC_API int cipc_http_json(const cipc_http_req *r, json_t **out, const char **why);

/* Receives a streamed body: each piece as it arrives (a view valid during the call), then
 * one call with data NULL and len 0 at the end. The handler may answer from any of these
 * calls (typically the last). If the body cannot complete (bad chunk framing -> 400,
 * max_body -> 413, body timeout -> 408, the client left), the last call instead has data
 * NULL and len CIPC_HTTP_BODY_ABORTED: release per-request state then; the server has
 * answered or closed, and the request must not be answered. */
typedef void (*cipc_http_body_cb)(cipc_http_req *req, const void *data, size_t len, void *ud);

#define CIPC_HTTP_BODY_ABORTED ((size_t)-1)

/* In a cipc_route_stream() handler: deliver the body to `cb`. Must be called from the
 * handler itself. A request without a body gets the end mark at once, from inside this
 * call. Returns 0, or CIPC_EBUSY outside a streaming handler. Without it, the body of a
 * streaming route is read and discarded. */
CIPC_API int cipc_http_read_body(cipc_http_req *req, cipc_http_body_cb cb, void *ud);

/* For a request answered later (a long-poll, a stream): call `cb` once if the connection
 * ends before the answer is complete (the client closed or reset it, or a read failed),
 * so the handler's owner can stop waiting. The request must still be answered, from `cb`
 * or later (the answer then returns CIPC_ECLOSING and releases the request). Watching
 * means the connection keeps reading while the handler works (bytes a client pipelines
 * meanwhile wait in the buffer, up to 16 KiB); a client that half-closes its side after
 * the request counts as gone. Not called at a forced shutdown. Returns 0, CIPC_EBUSY (the
 * request is answered, its connection gone, or its body still streaming), -EINVAL. */
CIPC_API int cipc_http_on_abort(cipc_http_req *r, void (*cb)(cipc_http_req *r, void *ud),
                                void *ud);

/* The index of the worker thread running this request (0 .. workers-1). */
CIPC_API int cipc_http_worker(const cipc_http_req *r);

/* --- The response ---------------------------------------------------------------- */

/* Add a response header (before the response starts). Copies both. Returns 0,
 * CIPC_EHEADER (bad name, CR/LF in value), or CIPC_EBUSY once the head is sent. */
CIPC_API int cipc_http_set_header(cipc_http_req *r, const char *name, const char *value);

/* Answer with a whole body (Content-Length). Copies `body`. `content_type` NULL means
 * none. Returns 0, or CIPC_EBUSY if already answered, or -ENOMEM. */
CIPC_API int cipc_http_respond(cipc_http_req *r, int status, const char *content_type,
                               const void *body, size_t len);

/* Answer with a JSON body (application/json). Borrows `json`. */
CIPC_API int cipc_http_respond_json(cipc_http_req *r, int status, json_t *json);

/* Answer with the contents of a file (Content-Length, sent with sendfile). Returns 0,
 * CIPC_EFILE if it cannot be opened (nothing is sent then; answer otherwise). */
CIPC_API int cipc_http_respond_file(cipc_http_req *r, int status, const char *path,
                                    const char *content_type);

/* Streamed answer: the first call sends the head (status and headers given by
 * cipc_http_start) with Transfer-Encoding: chunked, each call sends one chunk (copied),
 * cipc_http_end() sends the last chunk. For HTTP/1.0 clients the body is sent unframed
 * and the connection closes at the end. */
CIPC_API int cipc_http_start(cipc_http_req *r, int status, const char *content_type);
CIPC_API int cipc_http_write(cipc_http_req *r, const void *data, size_t len);
CIPC_API int cipc_http_end(cipc_http_req *r);

#ifdef __cplusplus
}
#endif
#endif
