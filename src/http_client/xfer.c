/* One HTTP exchange on a curl easy handle: validating and preparing the request (URL,
 * headers, body), setting curl's options for each attempt, collecting the response,
 * mapping curl's results to cipc codes, and deciding about retries. Used by both the
 * blocking session (session.c) and the async client (client.c). */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cipc/log.h"
#include "cipc/time.h"
#include "cipc/url.h"
#include "http_client/internal.h"

#define LOG_MODULE "http_client"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_OK; /* written once, under curl_once */

static void curl_init_once(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int cipc__curl_global_init(void)
{
    pthread_once(&curl_once, curl_init_once);
    return curl_init_result == CURLE_OK ? 0 : CIPC_EINTERNAL;
}

CURLSH *cipc__share_new(const struct http_cfg *cfg)
{
    CURLSH *sh = curl_share_init();
    if (!sh)
        return NULL;
    if ((!cfg->no_cookies &&
         curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_COOKIE) != CURLSHE_OK) ||
        curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
        curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
        curl_share_cleanup(sh);
        return NULL;
    }
    return sh;
}

/* --- configuration ------------------------------------------------------------------ */

static char *dup_or_null(const char *s, int *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = 1;
    return d;
}

/* Copy a caller's options struct of any older size into a zeroed current one. */
static void copy_sized(void *dst, size_t dst_size, const void *src, size_t src_size)
{
    memset(dst, 0, dst_size);
    if (!src)
        return;
    size_t n = src_size == 0 || src_size > dst_size ? dst_size : src_size;
    memcpy(dst, src, n);
}

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int valid_token(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++) {
        if (!is_tchar((unsigned char)*s))
            return 0;
    }
    return 1;
}

/* A header value may not contain CR, LF or NUL (it is a C string, so no NUL). */
static int valid_value(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

static int check_header(const char *name, const char *value, struct errbox *err)
{
    if (!valid_token(name)) {
        cipc__errbox_set(err, "invalid header name '%.100s': must be a non-empty token",
                         name ? name : "(null)");
        return CIPC_EHEADER;
    }
    if (value && !valid_value(value)) {
        cipc__errbox_set(err, "invalid value for header '%.100s': contains CR or LF", name);
        return CIPC_EHEADER;
    }
    return 0;
}

static int url_ok(const char *s)
{
    cipc_url u;
    return cipc_url_parse(s, strlen(s), &u) == 0 && (u.flags & CIPC_URL_HAS_AUTHORITY);
}

int cipc__http_cfg_init(struct http_cfg *cfg, const cipc_session_opts *in, struct errbox *err)
{
    cipc_session_opts o;
    copy_sized(&o, sizeof o, in, in ? in->size : 0);
    memset(cfg, 0, sizeof *cfg);
    int oom = 0;
    if (o.base_url && !url_ok(o.base_url)) {
        cipc__errbox_set(err, "Invalid base URL '%.300s'", o.base_url);
        return CIPC_EURL;
    }
    cfg->base_url = dup_or_null(o.base_url, &oom);
    cfg->timeout_ms = o.timeout_ms == 0  ? CIPC_HTTP_DEFAULT_TIMEOUT_MS
                      : o.timeout_ms < 0 ? 0
                                         : o.timeout_ms;
    cfg->connect_timeout_ms = o.connect_timeout_ms == 0  ? CIPC_HTTP_DEFAULT_CONNECT_TIMEOUT_MS
                              : o.connect_timeout_ms < 0 ? 0
                                                         : o.connect_timeout_ms;
    if (o.user_agent) {
        cfg->user_agent = dup_or_null(o.user_agent, &oom);
    } else {
        char ua[64];
        snprintf(ua, sizeof ua, "cipc/%s", cipc_version());
        cfg->user_agent = dup_or_null(ua, &oom);
    }
    if (o.user_agent && !valid_value(o.user_agent)) {
        cipc__http_cfg_free(cfg);
        cipc__errbox_set(err, "invalid user agent: contains CR or LF");
        return CIPC_EHEADER;
    }
    cfg->max_redirects = o.max_redirects == 0 ? CIPC_HTTP_DEFAULT_MAX_REDIRECTS : o.max_redirects;
    cfg->ca_file = dup_or_null(o.ca_file, &oom);
    cfg->insecure = o.danger_accept_invalid_certs != 0;
    cfg->max_response_bytes =
        o.max_response_bytes ? o.max_response_bytes : CIPC_HTTP_DEFAULT_MAX_RESPONSE_BYTES;
    cfg->retry = o.retry;
    cfg->retry_non_idempotent = o.retry_non_idempotent != 0;
    cfg->proxy = dup_or_null(o.proxy, &oom);
    cfg->no_cookies = o.no_cookies != 0;
    cfg->max_concurrency =
        o.max_concurrency > 0 ? o.max_concurrency : CIPC_HTTP_DEFAULT_MAX_CONCURRENCY;
    cfg->rng = cipc_retry_seed();
    if (oom) {
        cipc__http_cfg_free(cfg);
        return -ENOMEM;
    }
    if (cfg->insecure)
        cipc_log(CIPC_LOG_WARN, LOG_MODULE,
                 "danger_accept_invalid_certs is set: TLS certificates are NOT verified");
    return 0;
}

void cipc__http_cfg_free(struct http_cfg *cfg)
{
    free(cfg->base_url);
    free(cfg->user_agent);
    free(cfg->ca_file);
    free(cfg->proxy);
    for (size_t i = 0; i < cfg->n_headers; i++) {
        free(cfg->headers[i].name);
        free(cfg->headers[i].value);
    }
    free(cfg->headers);
    memset(cfg, 0, sizeof *cfg);
}

int cipc__http_cfg_header(struct http_cfg *cfg, const char *name, const char *value,
                          struct errbox *err)
{
    int rc = check_header(name, value, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < cfg->n_headers; i++) {
        if (strcasecmp(cfg->headers[i].name, name) != 0)
            continue;
        if (!value) {
            free(cfg->headers[i].name);
            free(cfg->headers[i].value);
            memmove(&cfg->headers[i], &cfg->headers[i + 1],
                    (cfg->n_headers - i - 1) * sizeof cfg->headers[0]);
            cfg->n_headers--;
            return 0;
        }
        char *v = strdup(value);
        if (!v)
            return -ENOMEM;
        free(cfg->headers[i].value);
        cfg->headers[i].value = v;
        return 0;
    }
    if (!value)
        return 0;
    struct hdr *h = realloc(cfg->headers, (cfg->n_headers + 1) * sizeof *h);
    if (!h)
        return -ENOMEM;
    cfg->headers = h;
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return -ENOMEM;
    }
    h[cfg->n_headers].name = n;
    h[cfg->n_headers].value = v;
    cfg->n_headers++;
    return 0;
}

/* --- preparing a request ------------------------------------------------------------- */

/* "scheme://..." at the start of `url`? */
static int has_scheme(const char *url)
{
    const char *p = url;
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        return 0;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '+' || *p == '-' || *p == '.')
        p++;
    return p[0] == ':';
}

static size_t kv_count(const cipc_kv *kv)
{
    size_t n = 0;
    while (kv && kv[n].key)
        n++;
    return n;
}

/* Append key=value pairs, form-encoded and '&'-separated, to `b`. */
static int append_pairs(cipc_buf *b, const cipc_kv *kv, int first)
{
    for (size_t i = 0; kv && kv[i].key; i++) {
        const char *v = kv[i].value ? kv[i].value : "";
        if ((!first || i > 0) && cipc_buf_append(b, "&", 1) < 0)
            return -ENOMEM;
        if (cipc_url_encode(kv[i].key, strlen(kv[i].key), CIPC_URL_ENC_FORM, b) < 0 ||
            cipc_buf_append(b, "=", 1) < 0 ||
            cipc_url_encode(v, strlen(v), CIPC_URL_ENC_FORM, b) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* Resolve `url` against the base URL, add the query parameters, and validate the
 * result with the strict URL parser: only absolute http(s) URLs with a host pass. */
static int build_url(struct xfer *x, const char *url, const cipc_kv *params)
{
    cipc_buf b = CIPC_BUF_INIT;
    int rc = -ENOMEM;
    if (has_scheme(url)) {
        if (cipc_buf_append_str(&b, url) < 0)
            goto out;
    } else if (x->cfg->base_url) {
        const char *base = x->cfg->base_url;
        size_t blen = strlen(base);
        while (blen && base[blen - 1] == '/')
            blen--;
        if (cipc_buf_append(&b, base, blen) < 0)
            goto out;
        if (url[0] != '/' && url[0] != '?' && url[0] != '#' && cipc_buf_append(&b, "/", 1) < 0)
            goto out;
        if (cipc_buf_append_str(&b, url) < 0)
            goto out;
    } else {
        cipc__errbox_set(x->err,
                         "Invalid URL '%.300s': No scheme supplied. Perhaps you meant "
                         "https://%.300s?",
                         url, url);
        rc = CIPC_EURL;
        goto out;
    }
    if (kv_count(params)) {
        /* Insert before any fragment. */
        char *hash = memchr(b.data, '#', b.len);
        size_t at = hash ? (size_t)(hash - b.data) : b.len;
        cipc_buf q = CIPC_BUF_INIT;
        char *qmark = memchr(b.data, '?', at);
        int first = 1;
        if (!qmark) {
            rc = cipc_buf_append(&q, "?", 1);
        } else if (at > 0 && b.data[at - 1] != '?' && b.data[at - 1] != '&') {
            first = 0;
            rc = 0;
        } else {
            rc = 0;
        }
        if (rc == 0)
            rc = append_pairs(&q, params, first);
        if (rc == 0) {
            cipc_buf nb = CIPC_BUF_INIT;
            if (cipc_buf_append(&nb, b.data, at) < 0 || cipc_buf_append(&nb, q.data, q.len) < 0 ||
                cipc_buf_append(&nb, b.data + at, b.len - at) < 0) {
                cipc_buf_free(&nb);
                rc = -ENOMEM;
            } else {
                cipc_buf_free(&b);
                b = nb;
            }
        }
        cipc_buf_free(&q);
        if (rc < 0)
            goto out;
    }
    cipc_url u;
    if (cipc_url_parse(b.data, b.len, &u) < 0) {
        cipc__errbox_set(x->err, "Invalid URL '%.400s'", b.data);
        rc = CIPC_EURL;
        goto out;
    }
    const char *scheme = b.data + u.scheme.off;
    int http = (u.scheme.len == 4 && strncasecmp(scheme, "http", 4) == 0) ||
               (u.scheme.len == 5 && strncasecmp(scheme, "https", 5) == 0);
    if (!http) {
        cipc__errbox_set(x->err, "Invalid URL '%.400s': scheme must be http or https", b.data);
        rc = CIPC_EURL;
        goto out;
    }
    if (!(u.flags & CIPC_URL_HAS_AUTHORITY) || u.host.len == 0) {
        cipc__errbox_set(x->err, "Invalid URL '%.400s': no host supplied", b.data);
        rc = CIPC_EURL;
        goto out;
    }
    x->url = cipc_buf_steal(&b, NULL);
    rc = x->url ? 0 : -ENOMEM;
out:
    cipc_buf_free(&b);
    return rc;
}

static int add_header(struct xfer *x, const char *name, const char *value)
{
    cipc_buf line = CIPC_BUF_INIT;
    int rc;
    /* curl sends "Name;" as a header with an empty value. */
    if (value[0] == '\0')
        rc = cipc_buf_printf(&line, "%s;", name);
    else
        rc = cipc_buf_printf(&line, "%s: %s", name, value);
    if (rc < 0)
        return rc;
    struct curl_slist *l = curl_slist_append(x->hlist, line.data);
    cipc_buf_free(&line);
    if (!l)
        return -ENOMEM;
    x->hlist = l;
    return 0;
}

static const cipc_kv *find_kv(const cipc_kv *kv, const char *name)
{
    for (size_t i = 0; kv && kv[i].key; i++) {
        if (strcasecmp(kv[i].key, name) == 0)
            return &kv[i];
    }
    return NULL;
}

/* Session headers (unless the request overrides or removes them), then the request's
 * own, then the content type for the body, then "Expect:" to turn off curl's
 * 100-continue wait. Every name and value is validated first: nothing is sent if one
 * is bad. */
static int build_headers(struct xfer *x, const cipc_kv *req, const char *content_type)
{
    for (size_t i = 0; req && req[i].key; i++) {
        int rc = check_header(req[i].key, req[i].value, x->err);
        if (rc < 0)
            return rc;
    }
    if (content_type && !valid_value(content_type)) {
        cipc__errbox_set(x->err, "invalid content type: contains CR or LF");
        return CIPC_EHEADER;
    }
    int user_ct = 0;
    for (size_t i = 0; i < x->cfg->n_headers; i++) {
        const struct hdr *h = &x->cfg->headers[i];
        if (find_kv(req, h->name))
            continue;
        if (strcasecmp(h->name, "Content-Type") == 0)
            user_ct = 1;
        if (add_header(x, h->name, h->value) < 0)
            return -ENOMEM;
    }
    for (size_t i = 0; req && req[i].key; i++) {
        if (!req[i].value)
            continue;
        if (strcasecmp(req[i].key, "Content-Type") == 0)
            user_ct = 1;
        if (add_header(x, req[i].key, req[i].value) < 0)
            return -ENOMEM;
    }
    if (content_type && !user_ct && add_header(x, "Content-Type", content_type) < 0)
        return -ENOMEM;
    if (!find_kv(req, "Expect")) {
        struct curl_slist *l = curl_slist_append(x->hlist, "Expect:");
        if (!l)
            return -ENOMEM;
        x->hlist = l;
    }
    return 0;
}

static int method_is_idempotent(const char *m)
{
    static const char *const idem[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < sizeof idem / sizeof idem[0]; i++) {
        if (strcmp(m, idem[i]) == 0)
            return 1;
    }
    return 0;
}

int cipc__xfer_prepare(struct xfer *x, struct http_cfg *cfg, struct errbox *err, const char *method,
                       const char *url, const cipc_request_opts *in, int copy_body)
{
    cipc_request_opts o;
    copy_sized(&o, sizeof o, in, in ? in->size : 0);
    memset(x, 0, sizeof *x);
    x->cfg = cfg;
    x->err = err;
    if (!method || !valid_token(method) || strlen(method) >= sizeof x->method) {
        cipc__errbox_set(err, "invalid HTTP method '%.40s'", method ? method : "(null)");
        return -EINVAL;
    }
    strcpy(x->method, method);
    if (!url) {
        cipc__errbox_set(err, "no URL given");
        return -EINVAL;
    }
    int kinds = (o.body != NULL || o.body_len > 0) + (o.json != NULL) + (o.form != NULL) +
                (o.upload_path != NULL);
    if (kinds > 1) {
        cipc__errbox_set(err, "give at most one of body, json, form and upload_path");
        return -EINVAL;
    }
    if (o.on_body && o.download_path) {
        cipc__errbox_set(err, "give at most one of on_body and download_path");
        return -EINVAL;
    }
    if (o.body_len > 0 && !o.body) {
        cipc__errbox_set(err, "body_len is set but body is NULL");
        return -EINVAL;
    }
    int rc = build_url(x, url, o.params);
    if (rc < 0)
        return rc;

    const char *ctype = NULL;
    if (o.json) {
        x->body = json_dumps(o.json, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!x->body) {
            cipc__errbox_set(err, "could not serialise the JSON body");
            return CIPC_EJSON;
        }
        x->body_len = strlen(x->body);
        x->has_body = 1;
        ctype = "application/json";
    } else if (o.form) {
        cipc_buf b = CIPC_BUF_INIT;
        if (append_pairs(&b, o.form, 1) < 0 || cipc_buf_reserve(&b, 0) < 0) {
            cipc_buf_free(&b);
            return -ENOMEM;
        }
        x->body = cipc_buf_steal(&b, &x->body_len);
        x->has_body = 1;
        ctype = "application/x-www-form-urlencoded";
    } else if (o.body) {
        if (copy_body) {
            x->body = malloc(o.body_len ? o.body_len : 1);
            if (!x->body)
                return -ENOMEM;
            memcpy(x->body, o.body, o.body_len);
        } else {
            x->body_view = o.body;
        }
        x->body_len = o.body_len;
        x->has_body = 1;
        ctype = o.content_type ? o.content_type : "application/octet-stream";
    } else if (o.upload_path) {
        struct stat st;
        if (stat(o.upload_path, &st) != 0) {
            cipc__errbox_set(err, "cannot upload '%.300s': %s", o.upload_path, strerror(errno));
            return CIPC_EFILE;
        }
        if (!S_ISREG(st.st_mode)) {
            cipc__errbox_set(err, "cannot upload '%.300s': not a regular file", o.upload_path);
            return CIPC_EFILE;
        }
        x->upload_path = strdup(o.upload_path);
        if (!x->upload_path)
            return -ENOMEM;
        x->upload_size = (curl_off_t)st.st_size;
        x->has_body = 1;
        ctype = o.content_type ? o.content_type : "application/octet-stream";
    } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
               strcmp(method, "PATCH") == 0) {
        /* As requests: these methods always carry a (possibly empty) body. */
        x->has_body = 1;
    }
    rc = build_headers(x, o.headers, ctype);
    if (rc < 0)
        return rc;
    if (o.download_path) {
        x->download_path = strdup(o.download_path);
        if (!x->download_path)
            return -ENOMEM;
    }
    x->on_body = o.on_body;
    x->on_body_ud = o.on_body_ud;
    x->timeout_ms = o.timeout_ms == 0 ? cfg->timeout_ms : o.timeout_ms < 0 ? 0 : o.timeout_ms;
    x->connect_timeout_ms = o.connect_timeout_ms == 0  ? cfg->connect_timeout_ms
                            : o.connect_timeout_ms < 0 ? 0
                                                       : o.connect_timeout_ms;
    x->max_bytes = o.max_response_bytes ? o.max_response_bytes : cfg->max_response_bytes;
    x->retry_mode = o.retry;
    x->idempotent = method_is_idempotent(x->method);
    x->attempt = 1;
    return 0;
}

/* --- running an attempt -------------------------------------------------------------- */

enum { STOP_NONE, STOP_NOMEM, STOP_TOOBIG, STOP_ABORTED, STOP_FILE };

static int status_retryable(int status)
{
    return status == 429 || status == 502 || status == 503 || status == 504;
}

static int retry_allowed(const struct xfer *x)
{
    if (x->retry_mode < 0 || x->cfg->retry.max_attempts <= 1)
        return 0;
    return x->idempotent || x->cfg->retry_non_idempotent || x->retry_mode > 0;
}

/* The server's Retry-After in ms, or -1 when absent or unparsable. */
static int64_t retry_after_ms(const struct xfer *x)
{
    const char *v = cipc_response_header(x->resp, "Retry-After");
    int64_t ms;
    if (v && cipc_retry_after_parse(v, cipc_wall_ms(), &ms) == 0)
        return ms;
    return -1;
}

/* Will the response now in x->resp be retried? Decided when its body starts, so a body
 * that is going to be thrown away is not streamed to the caller. */
static int will_retry_status(const struct xfer *x)
{
    if (!retry_allowed(x) || !status_retryable(cipc_response_status(x->resp)) ||
        x->attempt >= x->cfg->retry.max_attempts)
        return 0;
    int64_t ra = retry_after_ms(x);
    int64_t lim = x->cfg->retry.max_retry_after_ms > 0 ? x->cfg->retry.max_retry_after_ms
                                                       : CIPC_RETRY_DEFAULT_MAX_RETRY_AFTER_MS;
    return ra <= lim;
}

static int is_redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* Will this response be followed (a redirect) or retried? Then its body is not the
 * caller's: it is neither buffered nor streamed. */
static int will_discard(const struct xfer *x)
{
    if (x->cfg->max_redirects >= 0 && is_redirect(cipc_response_status(x->resp)) &&
        cipc_response_header(x->resp, "Location"))
        return 1;
    return will_retry_status(x);
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * n;
    if (cipc__response_add_header_line(x->resp, buf, len) < 0) {
        x->stop_reason = STOP_NOMEM;
        return 0;
    }
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0)
        x->discard_body = -1; /* a new response: decide again at its first body byte */
    return len;
}

static size_t on_write(char *buf, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * n;
    if (x->discard_body < 0)
        x->discard_body = will_discard(x);
    if (x->discard_body)
        return len;
    if (x->on_body) {
        if (x->on_body(buf, len, x->on_body_ud) != 0) {
            x->stop_reason = STOP_ABORTED;
            return 0;
        }
        return len;
    }
    if (x->download) {
        if (fwrite(buf, 1, len, x->download) != len) {
            x->stop_reason = STOP_FILE;
            return 0;
        }
        return len;
    }
    cipc_buf *b = cipc__response_body_buf(x->resp);
    if (len > x->max_bytes - b->len) {
        x->stop_reason = STOP_TOOBIG;
        return 0;
    }
    if (cipc_buf_append(b, buf, len) < 0) {
        x->stop_reason = STOP_NOMEM;
        return 0;
    }
    return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    if (!x->upload)
        return 0;
    size_t got = fread(buf, 1, size * n, x->upload);
    if (got == 0 && ferror(x->upload)) {
        x->stop_reason = STOP_FILE;
        return CURL_READFUNC_ABORT;
    }
    return got;
}

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (curl_easy_setopt(e, opt, val) != CURLE_OK)                                             \
            bad = #opt;                                                                            \
    } while (0)

/* Options that stay the same for every request of a session or client, set once on a
 * new easy handle. Easy handles are reused without curl_easy_reset(): in libcurl 7.88 a
 * reset drops (and leaks) the cookie file list, and setting everything again would cost
 * time on every request. Returns 0 or CIPC_EINTERNAL. */
int cipc__easy_setup(CURL *e, const struct http_cfg *cfg, CURLSH *share)
{
    const char *bad = NULL;
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    /* Redirects are followed by cipc__xfer_redirect(), not by curl: curl keeps a custom
     * method (PUT, PATCH, DELETE) across a 303 and drops its body, and cannot apply
     * requests' rules for which method and headers survive a redirect. */
    SETOPT(CURLOPT_USERAGENT, cfg->user_agent);
    SETOPT(CURLOPT_ACCEPT_ENCODING, "");
    SETOPT(CURLOPT_SSL_VERIFYPEER, cfg->insecure ? 0L : 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, cfg->insecure ? 0L : 2L);
    if (cfg->ca_file)
        SETOPT(CURLOPT_CAINFO, cfg->ca_file);
    if (cfg->proxy)
        SETOPT(CURLOPT_PROXY, cfg->proxy);
    if (share)
        SETOPT(CURLOPT_SHARE, share);
    /* With a share holding the cookies, "" just switches the cookie engine on. */
    if (!cfg->no_cookies)
        SETOPT(CURLOPT_COOKIEFILE, "");
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_WRITEFUNCTION, on_write);
    SETOPT(CURLOPT_READFUNCTION, on_read);
    return bad ? CIPC_EINTERNAL : 0;
}

int cipc__xfer_arm(struct xfer *x)
{
    CURL *e = x->easy;
    const char *bad = NULL;
    x->stop_reason = STOP_NONE;
    x->discard_body = -1;
    x->curl_err[0] = '\0';
    cipc_response_free(x->resp);
    x->resp = cipc__response_new(x->err);
    if (!x->resp)
        return -ENOMEM;
    if (x->upload_path) {
        x->upload = fopen(x->upload_path, "rb");
        if (!x->upload) {
            cipc__errbox_set(x->err, "cannot open '%.300s': %s", x->upload_path, strerror(errno));
            return CIPC_EFILE;
        }
    }
    if (x->download_path) {
        x->download = fopen(x->download_path, "wb");
        if (!x->download) {
            cipc__errbox_set(x->err, "cannot create '%.300s': %s", x->download_path,
                             strerror(errno));
            return CIPC_EFILE;
        }
    }

    /* Every option a previous request on this handle may have set is set again here. */
    SETOPT(CURLOPT_URL, x->url);
    SETOPT(CURLOPT_ERRORBUFFER, x->curl_err);
    SETOPT(CURLOPT_TIMEOUT_MS, x->timeout_ms);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, x->connect_timeout_ms);
    SETOPT(CURLOPT_HTTPHEADER, x->hlist);
    SETOPT(CURLOPT_HEADERDATA, x);
    SETOPT(CURLOPT_WRITEDATA, x);
    SETOPT(CURLOPT_READDATA, x);
    /* A HEAD response announces a length it does not send: no limit applies to it. */
    int limited = !x->on_body && !x->download && strcmp(x->method, "HEAD") != 0;
    SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)(limited ? x->max_bytes : 0));
    /* Order matters: POSTFIELDS switches the method to POST, HTTPGET back to GET. */
    SETOPT(CURLOPT_POSTFIELDS, (char *)NULL);
    SETOPT(CURLOPT_CUSTOMREQUEST, (char *)NULL);
    SETOPT(CURLOPT_NOBODY, 0L);
    SETOPT(CURLOPT_HTTPGET, 1L);
    if (strcmp(x->method, "HEAD") == 0) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else if (x->has_body) {
        SETOPT(CURLOPT_POST, 1L);
        if (x->upload) {
            SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, x->upload_size);
        } else {
            const void *p = x->body ? x->body : x->body_view ? x->body_view : "";
            SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
            SETOPT(CURLOPT_POSTFIELDS, p);
        }
        if (strcmp(x->method, "POST") != 0)
            SETOPT(CURLOPT_CUSTOMREQUEST, x->method);
    } else if (strcmp(x->method, "GET") != 0) {
        SETOPT(CURLOPT_CUSTOMREQUEST, x->method);
    }
    if (bad) {
        cipc__errbox_set(x->err, "libcurl refused option %s", bad);
        return CIPC_EINTERNAL;
    }
    return 0;
}

/* Map curl's result for a failed attempt to a cipc code. */
static int map_curl_error(struct xfer *x, CURLcode res)
{
    long os_errno = 0;
    curl_off_t connect_us = 0;
    switch (res) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return CIPC_EURL;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return CIPC_EDNS;
    case CURLE_COULDNT_CONNECT:
        curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &os_errno);
        return os_errno > 0 ? -(int)os_errno : CIPC_ECONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        /* Name the limit that fired: the connect timeout only if the connection never
         * came up and it is the shorter of the two. */
        /* The transfer never got past connecting if it never reached "pretransfer"
         * (CONNECT_TIME is 0 on a reused connection too, so it cannot tell). */
        curl_easy_getinfo(x->easy, CURLINFO_PRETRANSFER_TIME_T, &connect_us);
        if (connect_us == 0 && x->connect_timeout_ms > 0 &&
            (x->timeout_ms == 0 || x->connect_timeout_ms < x->timeout_ms))
            return CIPC_ECONNTIMEOUT;
        return CIPC_ETIMEOUT;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        return CIPC_ECERT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_USE_SSL_FAILED:
        return CIPC_ETLS;
    case CURLE_TOO_MANY_REDIRECTS:
        return CIPC_EREDIRECTS;
    case CURLE_FILESIZE_EXCEEDED:
        return CIPC_ETOOBIG;
    case CURLE_PARTIAL_FILE:
        return CIPC_ETRUNCATED;
    case CURLE_WRITE_ERROR:
    case CURLE_READ_ERROR:
    case CURLE_ABORTED_BY_CALLBACK:
        switch (x->stop_reason) {
        case STOP_NOMEM:
            return -ENOMEM;
        case STOP_TOOBIG:
            return CIPC_ETOOBIG;
        case STOP_ABORTED:
            return CIPC_EABORTED;
        case STOP_FILE:
            return CIPC_EFILE;
        default:
            return res == CURLE_ABORTED_BY_CALLBACK ? CIPC_EABORTED : CIPC_EFILE;
        }
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_BAD_CONTENT_ENCODING:
        return CIPC_EPROTO;
    case CURLE_RECV_ERROR:
        /* A reset after the head arrived is a truncated body. */
        return cipc_response_status(x->resp) > 0 ? CIPC_ETRUNCATED : CIPC_ENET;
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
        return CIPC_ENET;
    default:
        return CIPC_EINTERNAL;
    }
}

int cipc__xfer_result(struct xfer *x, CURLcode res)
{
    if (x->upload) {
        fclose(x->upload);
        x->upload = NULL;
    }
    if (x->download) {
        if (fclose(x->download) != 0 && res == CURLE_OK) {
            x->download = NULL;
            cipc__errbox_set(x->err, "cannot write '%.300s': %s", x->download_path,
                             strerror(errno));
            return CIPC_EFILE;
        }
        x->download = NULL;
    }
    if (res == CURLE_OK) {
        curl_off_t total_us = 0;
        curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME_T, &total_us);
        x->elapsed_us += (int64_t)total_us;
        if (cipc__response_set_url(x->resp, x->url) < 0)
            return -ENOMEM;
        cipc__response_set_meta(x->resp, x->redirects, x->elapsed_us, x->attempt);
        return 0;
    }
    int rc = map_curl_error(x, res);
    const char *detail = x->curl_err[0] ? x->curl_err : curl_easy_strerror(res);
    switch (rc) {
    case CIPC_ETOOBIG:
        cipc__errbox_set(x->err, "%s %.300s: response body exceeds the limit of %zu bytes",
                         x->method, x->url, x->max_bytes);
        break;
    case CIPC_EABORTED:
        cipc__errbox_set(x->err, "%s %.300s: aborted by the on_body callback", x->method, x->url);
        break;
    case CIPC_EREDIRECTS:
        cipc__errbox_set(x->err, "%s %.300s: too many redirects (limit %d)", x->method, x->url,
                         x->cfg->max_redirects);
        break;
    default:
        cipc__errbox_set(x->err, "%s %.300s: %s (%s)", x->method, x->url, cipc_strerror(rc),
                         detail);
        break;
    }
    return rc;
}

int64_t cipc__xfer_retry_delay(struct xfer *x, int rc)
{
    if (!retry_allowed(x))
        return -1;
    int64_t ra = -1;
    if (rc == 0) {
        if (!status_retryable(cipc_response_status(x->resp)))
            return -1;
        ra = retry_after_ms(x);
    } else {
        switch (rc) {
        case -ECONNREFUSED:
        case -ECONNRESET:
        case -EHOSTUNREACH:
        case -ENETUNREACH:
        case CIPC_ECONNECT:
        case CIPC_ECONNTIMEOUT:
        case CIPC_ETIMEOUT:
        case CIPC_EDNS:
        case CIPC_ENET:
        case CIPC_ETRUNCATED:
            break;
        default:
            return -1;
        }
        /* Bytes already handed to the caller cannot be taken back. */
        if ((x->on_body || x->download_path) && x->discard_body == 0)
            return -1;
    }
    int64_t d = cipc_retry_delay_ms(&x->cfg->retry, x->attempt, ra, &x->cfg->rng);
    if (d < 0)
        return -1;
    cipc_log(CIPC_LOG_INFO, LOG_MODULE, "%s %s: attempt %d failed (%s), retrying in %lld ms",
             x->method, x->url, x->attempt, rc == 0 ? "retryable status" : cipc_strerror(rc),
             (long long)d);
    x->attempt++;
    x->elapsed_us = 0;
    return d;
}

/* A new header list without the headers named in `drop` (NULL-terminated). */
static int filter_headers(struct xfer *x, const char *const *drop)
{
    struct curl_slist *out = NULL;
    for (struct curl_slist *l = x->hlist; l; l = l->next) {
        int skip = 0;
        for (size_t i = 0; drop[i]; i++) {
            size_t n = strlen(drop[i]);
            if (strncasecmp(l->data, drop[i], n) == 0 && (l->data[n] == ':' || l->data[n] == ';'))
                skip = 1;
        }
        if (skip)
            continue;
        struct curl_slist *nl = curl_slist_append(out, l->data);
        if (!nl) {
            curl_slist_free_all(out);
            return -ENOMEM;
        }
        out = nl;
    }
    curl_slist_free_all(x->hlist);
    x->hlist = out;
    return 0;
}

/* The origin (scheme, host, port) of a URL, for comparing two of them. */
static void origin_of(const char *url, char *out, size_t size)
{
    cipc_url u;
    out[0] = '\0';
    if (cipc_url_parse(url, strlen(url), &u) < 0)
        return;
    unsigned port = u.port_num;
    int https = u.scheme.len == 5;
    if (!(u.flags & CIPC_URL_HAS_PORT))
        port = https ? 443 : 80;
    snprintf(out, size, "%s://%.*s:%u", https ? "https" : "http", (int)u.host.len, url + u.host.off,
             port);
    for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
}

int cipc__xfer_redirect(struct xfer *x)
{
    int status = cipc_response_status(x->resp);
    if (x->cfg->max_redirects < 0 || !is_redirect(status))
        return 0;
    char *next = NULL;
    curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_URL, &next);
    if (!next)
        return 0;
    if (x->redirects >= x->cfg->max_redirects) {
        cipc__errbox_set(x->err, "%s %.300s: too many redirects (limit %d)", x->method, x->url,
                         x->cfg->max_redirects);
        return CIPC_EREDIRECTS;
    }
    cipc_url u;
    if (cipc_url_parse(next, strlen(next), &u) < 0 ||
        !((u.scheme.len == 4 && strncasecmp(next, "http", 4) == 0) ||
          (u.scheme.len == 5 && strncasecmp(next, "https", 5) == 0))) {
        cipc__errbox_set(x->err, "%s %.300s: redirect to an invalid or non-HTTP URL '%.300s'",
                         x->method, x->url, next);
        return CIPC_EURL;
    }
    char *url = strdup(next);
    if (!url)
        return -ENOMEM;
    /* requests' rules (sessions.py rebuild_method): 303 makes anything but HEAD a GET;
     * so does 302; 301 turns POST into GET; 307 and 308 keep method and body. */
    int to_get = strcmp(x->method, "HEAD") != 0 &&
                 (status == 303 || status == 302 || (status == 301 && !strcmp(x->method, "POST")));
    if (to_get && strcmp(x->method, "GET") != 0) {
        strcpy(x->method, "GET");
        x->idempotent = 1;
        x->has_body = 0;
        free(x->body);
        x->body = NULL;
        x->body_view = NULL;
        x->body_len = 0;
        free(x->upload_path);
        x->upload_path = NULL;
        static const char *const body_headers[] = {"Content-Type", "Content-Length",
                                                   "Transfer-Encoding", NULL};
        if (filter_headers(x, body_headers) < 0) {
            free(url);
            return -ENOMEM;
        }
    }
    /* Credentials never follow a redirect to another origin (requests strips
     * Authorization when the host changes). */
    char from[300], to[300];
    origin_of(x->url, from, sizeof from);
    origin_of(url, to, sizeof to);
    if (strcmp(from, to) != 0) {
        static const char *const auth[] = {"Authorization", "Proxy-Authorization", "Cookie", NULL};
        if (filter_headers(x, auth) < 0) {
            free(url);
            return -ENOMEM;
        }
    }
    free(x->url);
    x->url = url;
    x->redirects++;
    return 1;
}

void cipc__xfer_end_attempt(struct xfer *x)
{
    if (x->upload) {
        fclose(x->upload);
        x->upload = NULL;
    }
    if (x->download) {
        fclose(x->download);
        x->download = NULL;
    }
}

cipc_response *cipc__xfer_take_response(struct xfer *x)
{
    cipc_response *r = x->resp;
    x->resp = NULL;
    return r;
}

void cipc__xfer_free(struct xfer *x)
{
    cipc__xfer_end_attempt(x);
    cipc_response_free(x->resp);
    free(x->url);
    curl_slist_free_all(x->hlist);
    if (x->body)
        free(x->body);
    free(x->upload_path);
    free(x->download_path);
    x->resp = NULL;
    x->url = NULL;
    x->hlist = NULL;
    x->body = NULL;
    x->upload_path = NULL;
    x->download_path = NULL;
}
