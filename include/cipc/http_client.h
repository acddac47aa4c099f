/* cipc/http_client.h -- HTTP clients in the manner of Python's requests (blocking
 * cipc_session) and aiohttp (cipc_client on a cipc_loop), built on libcurl and jansson.
 *
 *     cipc_session *s = NULL;
 *     cipc_session_new(&(cipc_session_opts){.base_url = "http://127.0.0.1:8080"}, &s);
 *     cipc_session_header(s, "Authorization", "Bearer token");
 *     cipc_response *r = NULL;
 *     if (cipc_get(s, "/users/42", NULL, &r) < 0 || cipc_response_raise_for_status(r) < 0)
 *         fprintf(stderr, "%s\n", cipc_session_errmsg(s));
 *     json_t *user = NULL;
 *     cipc_response_json(r, &user);
 *
 * Defaults that differ from requests, on purpose:
 * - a total timeout of 30 s and a connect timeout of 10 s (requests waits forever);
 * - buffered response bodies are limited to 64 MiB (stream larger ones with on_body);
 * - redirects are followed, at most 30 (as requests), for every method.
 * TLS certificates are verified against the system store (or `ca_file`) unless
 * `danger_accept_invalid_certs` is set. Proxies come from the environment
 * (http_proxy, https_proxy, no_proxy) as curl reads them, unless `proxy` is set.
 *
 * Requests follow requests' rules: a per-request header replaces a session header of
 * the same name (case-insensitively; a NULL value removes it); redirects (301, 302, 303,
 * 307, 308) turn POST into GET on 301/302/303 and anything but HEAD into GET on 302/303,
 * dropping the body, while 307/308 keep method and body; Authorization, Proxy-
 * Authorization and Cookie headers are not sent to another origin after a redirect.
 * Only the final response's body reaches on_body or download_path (never a redirect's
 * or a retried attempt's). With retries, one call can take up to max_attempts times
 * timeout_ms plus the backoff delays. NULL values in params and form are sent as "".
 *
 * Errors: calls return 0 or a negative CIPC_E... code (cipc/error.h); the session or
 * client keeps a message about the last failure (cipc_session_errmsg()). The codes
 * the clients produce: CIPC_EURL (bad URL), -EINVAL (bad argument, unknown method),
 * CIPC_EHEADER (CR/LF/NUL or a bad name in a header), CIPC_EDNS, -ECONNREFUSED,
 * CIPC_ECONNECT (other connect failures), CIPC_ECONNTIMEOUT, CIPC_ETIMEOUT (total),
 * CIPC_ECERT, CIPC_ETLS, CIPC_EREDIRECTS, CIPC_ETOOBIG (response over the limit),
 * CIPC_ETRUNCATED (the server closed mid-body), CIPC_ENET, CIPC_EFILE (upload or
 * download file), CIPC_EABORTED (on_body asked to stop), CIPC_EJSON, CIPC_EHTTP
 * (raise_for_status), CIPC_ECANCELED (async only), -ENOMEM.
 *
 * Threading: a cipc_session is used by one thread at a time; separate sessions may be
 * used from separate threads at once. A cipc_client belongs to its loop's thread.
 * A cipc_response may be read from any one thread at a time. */
#ifndef CIPC_HTTP_CLIENT_H
#define CIPC_HTTP_CLIENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cipc/error.h"
#include "cipc/loop.h"
#include "cipc/retry.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cipc_session cipc_session;
typedef struct cipc_client cipc_client;
typedef struct cipc_response cipc_response;
typedef struct cipc_req cipc_req; /* a pending async request (cipc_client_request) */

/* A key/value pair for query parameters, headers and forms. Arrays of them end with a
 * {NULL, NULL} entry. */
typedef struct cipc_kv {
    const char *key;
    const char *value;
} cipc_kv;

#define CIPC_TIMEOUT_NONE (-1) /* for timeout fields: wait forever */

#define CIPC_HTTP_DEFAULT_TIMEOUT_MS         30000
#define CIPC_HTTP_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define CIPC_HTTP_DEFAULT_MAX_REDIRECTS      30
#define CIPC_HTTP_DEFAULT_MAX_RESPONSE_BYTES (64u * 1024 * 1024)
#define CIPC_HTTP_DEFAULT_MAX_CONCURRENCY    100

/* Session (and async client) options; zero means the default. The struct is only ever
 * extended at the end; `size` lets the library read older callers' structs. */
typedef struct cipc_session_opts {
    size_t size;                     /* sizeof(cipc_session_opts), or 0 for "this version" */
    const char *base_url;            /* prefix for relative URLs: "http://h:1/api" + "/users"
                                        -> "http://h:1/api/users"; NULL: URLs must be absolute */
    long timeout_ms;                 /* total per attempt; 0 -> 30000; CIPC_TIMEOUT_NONE */
    long connect_timeout_ms;         /* 0 -> 10000; CIPC_TIMEOUT_NONE */
    const char *user_agent;          /* NULL -> "cipc/VERSION" */
    int max_redirects;               /* 0 -> 30; < 0 -> do not follow redirects */
    const char *ca_file;             /* PEM bundle to verify servers with; NULL -> system store */
    int danger_accept_invalid_certs; /* 1: do not verify TLS certificates or host names.
                                        Never use outside tests. */
    size_t max_response_bytes;       /* buffered body limit; 0 -> 64 MiB. Not applied to
                                        streamed bodies (on_body, download_path) nor to HEAD */
    cipc_retry_policy retry;         /* retry.max_attempts > 1 enables retries of connection
                                        failures, timeouts and 429/502/503/504 */
    int retry_non_idempotent;        /* 1: POST and PATCH are retried too */
    const char *proxy;               /* NULL -> environment; "" -> no proxy at all */
    int no_cookies;                  /* 1: do not keep cookies between requests */
    int max_concurrency;             /* async client: requests in flight at once; 0 -> 100 */
} cipc_session_opts;

/* Streaming download: called with each piece of the body as it arrives; the bytes are
 * a view valid only during the call. Return 0 to go on, non-zero to abort the transfer
 * (the request then fails with CIPC_EABORTED). */
typedef int (*cipc_body_cb)(const void *data, size_t len, void *ud);

/* Per-request options; NULL or zero fields take the session's. */
typedef struct cipc_request_opts {
    size_t size;            /* sizeof(cipc_request_opts), or 0 */
    const cipc_kv *params;  /* query parameters, percent-encoded and appended */
    const cipc_kv *headers; /* extra headers; a value of NULL removes a session header */
    const void *body;       /* raw body (borrowed for the call) */
    size_t body_len;
    const char *content_type; /* for `body`; NULL -> application/octet-stream */
    json_t *json;             /* JSON body (borrowed); sets Content-Type: application/json */
    const cipc_kv *form;      /* urlencoded form body; sets its Content-Type */
    const char *upload_path;  /* body read from this file, streamed */
    cipc_body_cb on_body;     /* stream the response body here instead of buffering */
    void *on_body_ud;
    const char *download_path; /* stream the response body into this file */
    long timeout_ms;           /* overrides the session's (CIPC_TIMEOUT_NONE allowed) */
    long connect_timeout_ms;
    size_t max_response_bytes; /* overrides the session's buffered-body limit */
    int retry;                 /* 1: allow retries for this non-idempotent request;
                                  -1: never retry this request; 0: session rules */
} cipc_request_opts;

/* --- Sessions (blocking, like requests.Session) ------------------------------------ */

/* Create a session. `opts` may be NULL; it is copied (strings too). Returns 0 and sets
 * *out, or -ENOMEM / CIPC_EURL (bad base_url) / -EINVAL; *out is untouched on error. */
CIPC_API int cipc_session_new(const cipc_session_opts *opts, cipc_session **out);

/* Free the session, closing its connections. NULL does nothing. */
CIPC_API void cipc_session_free(cipc_session *s);

/* Set a default header sent with every request (value NULL removes it). Copies both.
 * Returns 0, CIPC_EHEADER for an invalid name or a value with CR, LF or NUL, or -ENOMEM. */
CIPC_API int cipc_session_header(cipc_session *s, const char *name, const char *value);

/* The message about the session's last failure ("" if none; each request clears it). A
 * view valid until the next call on the session. */
CIPC_API const char *cipc_session_errmsg(const cipc_session *s);

/* Perform a request and wait for the response (retrying as configured).
 * `method` is any token (GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, ...); `url` is
 * absolute or relative to base_url. On success *out receives the response (returns
 * owned: cipc_response_free()), whatever its HTTP status. On failure *out is set to
 * NULL and a negative code is returned (see the list at the top). */
CIPC_API int cipc_request(cipc_session *s, const char *method, const char *url,
                          const cipc_request_opts *opts, cipc_response **out);

/* Shorthands for cipc_request(). `opts` may be NULL. */
CIPC_API int cipc_get(cipc_session *s, const char *url, const cipc_request_opts *opts,
                      cipc_response **out);
CIPC_API int cipc_post(cipc_session *s, const char *url, const cipc_request_opts *opts,
                       cipc_response **out);
CIPC_API int cipc_put(cipc_session *s, const char *url, const cipc_request_opts *opts,
                      cipc_response **out);
CIPC_API int cipc_patch(cipc_session *s, const char *url, const cipc_request_opts *opts,
                        cipc_response **out);
CIPC_API int cipc_delete(cipc_session *s, const char *url, const cipc_request_opts *opts,
                         cipc_response **out);
CIPC_API int cipc_head(cipc_session *s, const char *url, const cipc_request_opts *opts,
                       cipc_response **out);
CIPC_API int cipc_options(cipc_session *s, const char *url, const cipc_request_opts *opts,
                          cipc_response **out);

/* POST a JSON body: requests.post(url, json=body). Borrows `body`. */
CIPC_API int cipc_post_json(cipc_session *s, const char *url, json_t *body, cipc_response **out);

/* --- Responses ------------------------------------------------------------------- */

/* The HTTP status code (200, 404, ...). */
CIPC_API int cipc_response_status(const cipc_response *r);

/* The reason phrase of the status line ("Not Found"), or the standard phrase for the
 * code when the server sent none (HTTP/2). A view valid as long as `r`. Never NULL. */
CIPC_API const char *cipc_response_reason(const cipc_response *r);

/* The first value of header `name` (case-insensitive) of the final response, or NULL.
 * A view valid as long as `r`. */
CIPC_API const char *cipc_response_header(const cipc_response *r, const char *name);

/* The `index`th (0-based) value of header `name`, for repeated headers (Set-Cookie),
 * or NULL when there are fewer. */
CIPC_API const char *cipc_response_header_n(const cipc_response *r, const char *name, size_t index);

/* Headers in the order received: returns the count; `name`/`value` (views) of the
 * `i`th header via cipc_response_header_at(), which returns 0 or -ERANGE. */
CIPC_API size_t cipc_response_header_count(const cipc_response *r);
CIPC_API int cipc_response_header_at(const cipc_response *r, size_t i, const char **name,
                                     const char **value);

/* The body as bytes (a view valid as long as `r`; NUL-terminated for convenience, the
 * NUL not counted). Empty when the body was streamed with on_body or download_path. */
CIPC_API const void *cipc_response_body(const cipc_response *r, size_t *len);

/* The body as a C string (same storage as cipc_response_body()). */
CIPC_API const char *cipc_response_text(const cipc_response *r);

/* Parse the body as JSON. The Content-Type must be application/json or end in +json
 * (parameters allowed), and the body must be one JSON value. Returns 0 and sets *out
 * (returns owned: json_decref()), or CIPC_EJSON with a message in
 * cipc_response_errmsg() ("invalid JSON at line 1, column 7: ..." or "Content-Type is
 * text/html, not JSON"); *out is then NULL. */
CIPC_API int cipc_response_json(const cipc_response *r, json_t **out);

/* The URL of the final response, after redirects. A view valid as long as `r`. */
CIPC_API const char *cipc_response_url(const cipc_response *r);

/* Redirects followed to reach this response. */
CIPC_API int cipc_response_redirects(const cipc_response *r);

/* Microseconds from the start of the (last) attempt to the end of the response. */
CIPC_API int64_t cipc_response_elapsed_us(const cipc_response *r);

/* Attempts made (1 unless retries happened). */
CIPC_API int cipc_response_attempts(const cipc_response *r);

/* requests' raise_for_status(): returns 0 for statuses below 400 (and 600 or above),
 * else CIPC_EHTTP with the message "404 Client Error: Not Found for url: http://..."
 * (5xx: "Server Error") in cipc_response_errmsg() and in the message of the session or
 * client that made the response (even if it has been freed since). Because it writes
 * that message, call it on the thread that uses the session. */
CIPC_API int cipc_response_raise_for_status(const cipc_response *r);

/* The message about the last failure of a response helper ("" if none). A view valid
 * until the next call on `r`. */
CIPC_API const char *cipc_response_errmsg(const cipc_response *r);

/* Keep a response past the callback that received it: adds a reference, returns `r`.
 * Each cipc_response_ref() needs its own cipc_response_free(). */
CIPC_API cipc_response *cipc_response_ref(cipc_response *r);

/* Drop a reference; the response is freed with the last one. NULL does nothing. */
CIPC_API void cipc_response_free(cipc_response *r);

/* --- Async client (like aiohttp.ClientSession) ------------------------------------ */

/* Completion callback. `rc` is 0 with a response, or a negative code with resp NULL
 * (CIPC_ECANCELED when cancelled or when the client closed first). `resp` is a view
 * valid during the callback; call cipc_response_ref() to keep it. Runs on the loop's
 * thread, exactly once per started request. */
typedef void (*cipc_response_cb)(cipc_client *c, int rc, cipc_response *resp, void *ud);

/* Create an async client on `loop` with the same options as a session (plus
 * max_concurrency). Copies `opts`. Returns 0 and sets *out, or a negative code. */
CIPC_API int cipc_client_new(cipc_loop *loop, const cipc_session_opts *opts, cipc_client **out);

/* Close the client: cancels every pending request (their callbacks run with
 * CIPC_ECANCELED before this returns), then releases the client once the loop has run
 * its close callbacks (cipc_loop_free() or the next cipc_loop_run() does it).
 * Must not be called from inside one of the client's callbacks. NULL does nothing. */
CIPC_API void cipc_client_close(cipc_client *c);

/* Set a default header for later requests (as cipc_session_header()). */
CIPC_API int cipc_client_header(cipc_client *c, const char *name, const char *value);

/* The message about the client's last failure ("" if none). */
CIPC_API const char *cipc_client_errmsg(const cipc_client *c);

/* Start a request. Copies everything in `opts` it needs (the body and JSON are
 * serialised at once), so `opts` and what it points to may go after the call; on_body
 * and its ud must stay valid until the callback. Requests beyond max_concurrency wait
 * in a FIFO queue. `req_out`, if not NULL, receives a handle for cipc_request_cancel()
 * valid until the callback starts. Returns 0, or a negative code (the callback is then
 * never called). */
CIPC_API int cipc_client_request(cipc_client *c, const char *method, const char *url,
                                 const cipc_request_opts *opts, cipc_response_cb cb, void *ud,
                                 cipc_req **req_out);

/* Shorthand for a GET. */
CIPC_API int cipc_client_get(cipc_client *c, const char *url, cipc_response_cb cb, void *ud);

/* Cancel a pending request: its callback runs with CIPC_ECANCELED before this returns.
 * Returns 0, or -EINVAL if `req` is NULL. */
CIPC_API int cipc_request_cancel(cipc_req *req);

/* Requests started and not yet completed. */
CIPC_API size_t cipc_client_pending(const cipc_client *c);

/* One request for cipc_client_gather(): fill method (NULL -> GET), url and opts; read
 * rc and resp afterwards (resp returns owned: cipc_response_free()). */
typedef struct cipc_fetch {
    const char *method;
    const char *url;
    const cipc_request_opts *opts;
    int rc;
    cipc_response *resp;
} cipc_fetch;

/* asyncio.gather for HTTP: start all `n` fetches on the client and run its loop until
 * every one has completed or `timeout_ms` has passed (those still pending are then
 * cancelled with CIPC_ECANCELED). Each fetch gets its own rc and resp. Returns the
 * number of fetches that got a response (any status; 0 when n is 0), or a negative code
 * if none could be started. Must not be called from a callback of the same loop. */
CIPC_API int cipc_client_gather(cipc_client *c, cipc_fetch *fetches, size_t n, long timeout_ms);

/* Run the client's loop until it has no pending requests or `timeout_ms` passes.
 * Returns 0, or CIPC_ETIMEOUT (requests are left running). */
CIPC_API int cipc_client_wait(cipc_client *c, long timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
