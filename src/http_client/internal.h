/* Private to src/http_client: the pieces the blocking session (session.c) and the async
 * client (client.c) share, so both build requests and responses with one implementation
 * (xfer.c, response.c). */
#ifndef CIPC_HTTP_CLIENT_INTERNAL_H
#define CIPC_HTTP_CLIENT_INTERNAL_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>

#include "cipc/buf.h"
#include "cipc/http_client.h"

#define ERRMSG_SIZE 512

/* A message slot shared by a session/client and the responses it made, so that
 * cipc_response_raise_for_status() can also set cipc_session_errmsg() even if the
 * response outlives the session. Refcounted; the text is written by one thread at a
 * time (the session's threading rule). */
struct errbox {
    atomic_int refs;
    char msg[ERRMSG_SIZE];
};

struct errbox *cipc__errbox_new(void);
struct errbox *cipc__errbox_ref(struct errbox *e);
void cipc__errbox_unref(struct errbox *e);
void cipc__errbox_set(struct errbox *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct hdr {
    char *name;
    char *value;
};

/* The configuration a session or async client was created with (owned copies). */
struct http_cfg {
    char *base_url;
    long timeout_ms;         /* 0 = none (curl's meaning) */
    long connect_timeout_ms; /* 0 = none */
    char *user_agent;
    int max_redirects; /* < 0: do not follow */
    char *ca_file;
    int insecure;
    size_t max_response_bytes;
    cipc_retry_policy retry;
    int retry_non_idempotent;
    char *proxy; /* NULL: environment */
    int no_cookies;
    int max_concurrency;
    struct hdr *headers; /* default headers, in insertion order */
    size_t n_headers;
    uint64_t rng; /* jitter state */
};

int cipc__http_cfg_init(struct http_cfg *cfg, const cipc_session_opts *opts, struct errbox *err);
void cipc__http_cfg_free(struct http_cfg *cfg);
int cipc__http_cfg_header(struct http_cfg *cfg, const char *name, const char *value,
                          struct errbox *err);

/* One HTTP exchange being built and run on a curl easy handle. Owns everything it
 * points to except `on_body_ud` and the easy handle. */
struct xfer {
    CURL *easy;
    struct http_cfg *cfg;
    struct errbox *err;
    char method[32];
    char *url;                /* the full URL, params applied */
    struct curl_slist *hlist; /* request headers */
    char *body;               /* owned copy or serialised JSON/form */
    const void *body_view;    /* borrowed raw body (sync only) */
    size_t body_len;
    int has_body;
    char *upload_path;
    FILE *upload;
    curl_off_t upload_size;
    cipc_body_cb on_body;
    void *on_body_ud;
    char *download_path;
    FILE *download;
    long timeout_ms, connect_timeout_ms;
    size_t max_bytes;
    int retry_mode; /* opts->retry */
    int idempotent;
    int attempt;        /* 1-based attempt number being run */
    int redirects;      /* redirects followed so far */
    int64_t elapsed_us; /* time spent in this attempt's hops */
    /* Per-attempt state. */
    cipc_response *resp; /* being filled; handed out on success */
    int discard_body;    /* body of a response that will be retried */
    int stop_reason;     /* why a write callback stopped the transfer */
    char curl_err[CURL_ERROR_SIZE];
};

/* Validate and prepare everything for the request (URL, headers, body). Copies what
 * it needs from opts (`copy_body`: copy a raw body too; the async client needs that).
 * Returns 0 or a negative code with the message in x->err. */
int cipc__xfer_prepare(struct xfer *x, struct http_cfg *cfg, struct errbox *err, const char *method,
                       const char *url, const cipc_request_opts *opts, int copy_body);

/* Set the options that are the same for every request of a session or client on a
 * new easy handle. Returns 0 or CIPC_EINTERNAL. */
int cipc__easy_setup(CURL *e, const struct http_cfg *cfg, CURLSH *share);

/* Set every curl option on x->easy for the next attempt (opens files, makes a fresh
 * response). Returns 0 or a negative code. */
int cipc__xfer_arm(struct xfer *x);

/* The attempt ended with curl result `res`. Returns 0 when x->resp holds a complete
 * response, or a negative code (message in x->err). */
int cipc__xfer_result(struct xfer *x, CURLcode res);

/* After a complete response: if it is a redirect to follow, point the xfer at the next
 * hop (method, body and credentials as requests does) and return 1; 0 if it is the
 * final response; CIPC_EREDIRECTS past max_redirects, CIPC_EURL for a bad Location, or
 * -ENOMEM. */
int cipc__xfer_redirect(struct xfer *x);

/* After an attempt: the delay in ms before the next attempt (and x->attempt is
 * advanced), or -1 for "no retry". `rc` is the attempt's result (0 means x->resp is a
 * response to look at). */
int64_t cipc__xfer_retry_delay(struct xfer *x, int rc);

/* Close files and drop the attempt's response. Keeps the prepared request. */
void cipc__xfer_end_attempt(struct xfer *x);

/* Free everything the xfer owns (not the easy handle). */
void cipc__xfer_free(struct xfer *x);

/* Take the finished response out of the xfer (returns owned). */
cipc_response *cipc__xfer_take_response(struct xfer *x);

/* A curl share for one session or client: cookies (unless cfg->no_cookies), the DNS
 * cache and TLS sessions. Single-threaded use, so no lock callbacks. */
CURLSH *cipc__share_new(const struct http_cfg *cfg);

/* Libcurl's global init, once per process (thread-safe). */
int cipc__curl_global_init(void);

/* Response construction (response.c). */
cipc_response *cipc__response_new(struct errbox *owner);
int cipc__response_add_header_line(cipc_response *r, const char *line, size_t len);
int cipc__response_set_url(cipc_response *r, const char *url);
void cipc__response_set_meta(cipc_response *r, int redirects, int64_t elapsed_us, int attempts);
cipc_buf *cipc__response_body_buf(cipc_response *r);

#endif
