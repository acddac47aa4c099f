/* cipc_response: status, headers, body and metadata of one HTTP response, shared by
 * the blocking session and the async client. Refcounted so an async callback can keep
 * the response it was handed. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/status.h"
#include "http_client/internal.h"

struct cipc_response {
    atomic_int refs;
    int status;
    char *reason;
    struct hdr *hdrs;
    size_t n_hdrs, cap_hdrs;
    cipc_buf body;
    char *url;
    int redirects;
    int attempts;
    int64_t elapsed_us;
    struct errbox *owner; /* the session's or client's message slot (may outlive it) */
    char errmsg[ERRMSG_SIZE];
};

/* --- errbox ------------------------------------------------------------------------ */

struct errbox *cipc__errbox_new(void)
{
    struct errbox *e = calloc(1, sizeof *e);
    if (e)
        atomic_init(&e->refs, 1);
    return e;
}

struct errbox *cipc__errbox_ref(struct errbox *e)
{
    if (e)
        atomic_fetch_add(&e->refs, 1);
    return e;
}

void cipc__errbox_unref(struct errbox *e)
{
    if (e && atomic_fetch_sub(&e->refs, 1) == 1)
        free(e);
}

void cipc__errbox_set(struct errbox *e, const char *fmt, ...)
{
    if (!e)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
}

/* --- construction ------------------------------------------------------------------ */

cipc_response *cipc__response_new(struct errbox *owner)
{
    cipc_response *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    atomic_init(&r->refs, 1);
    r->owner = cipc__errbox_ref(owner);
    r->attempts = 1;
    return r;
}

static void clear_headers(cipc_response *r)
{
    for (size_t i = 0; i < r->n_hdrs; i++) {
        free(r->hdrs[i].name);
        free(r->hdrs[i].value);
    }
    r->n_hdrs = 0;
}

static char *dup_trimmed(const char *p, size_t len)
{
    while (len && (*p == ' ' || *p == '\t')) {
        p++;
        len--;
    }
    while (len &&
           (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\r' || p[len - 1] == '\n'))
        len--;
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, p, len);
        s[len] = '\0';
    }
    return s;
}

/* Take one raw header line from curl's header callback. A status line starts a new
 * response (interim 1xx responses and redirects replace the previous one), so the
 * response ends up describing the final one. Returns 0 or -ENOMEM. */
int cipc__response_add_header_line(cipc_response *r, const char *line, size_t len)
{
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        clear_headers(r);
        free(r->reason);
        r->reason = NULL;
        r->status = 0;
        const char *p = memchr(line, ' ', len);
        const char *end = line + len;
        if (!p)
            return 0;
        p++;
        int code = 0, digits = 0;
        while (p < end && isdigit((unsigned char)*p) && digits < 3) {
            code = code * 10 + (*p - '0');
            p++;
            digits++;
        }
        r->status = code;
        if (p < end && *p == ' ')
            p++;
        r->reason = dup_trimmed(p, (size_t)(end - p));
        return r->reason ? 0 : -ENOMEM;
    }
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line)
        return 0; /* the blank line ending the head, or junk curl let through */
    if (r->n_hdrs == r->cap_hdrs) {
        size_t cap = r->cap_hdrs ? r->cap_hdrs * 2 : 16;
        struct hdr *h = realloc(r->hdrs, cap * sizeof *h);
        if (!h)
            return -ENOMEM;
        r->hdrs = h;
        r->cap_hdrs = cap;
    }
    char *name = dup_trimmed(line, (size_t)(colon - line));
    char *value = dup_trimmed(colon + 1, (size_t)(line + len - colon - 1));
    if (!name || !value) {
        free(name);
        free(value);
        return -ENOMEM;
    }
    r->hdrs[r->n_hdrs].name = name;
    r->hdrs[r->n_hdrs].value = value;
    r->n_hdrs++;
    return 0;
}

int cipc__response_set_url(cipc_response *r, const char *url)
{
    free(r->url);
    r->url = strdup(url ? url : "");
    return r->url ? 0 : -ENOMEM;
}

void cipc__response_set_meta(cipc_response *r, int redirects, int64_t elapsed_us, int attempts)
{
    r->redirects = redirects;
    r->elapsed_us = elapsed_us;
    r->attempts = attempts;
}

cipc_buf *cipc__response_body_buf(cipc_response *r)
{
    return &r->body;
}

/* --- accessors --------------------------------------------------------------------- */

int cipc_response_status(const cipc_response *r)
{
    return r->status;
}

const char *cipc_response_reason(const cipc_response *r)
{
    if (r->reason && r->reason[0])
        return r->reason;
    return cipc__http_reason(r->status);
}

const char *cipc_response_header_n(const cipc_response *r, const char *name, size_t index)
{
    for (size_t i = 0; i < r->n_hdrs; i++) {
        if (strcasecmp(r->hdrs[i].name, name) == 0 && index-- == 0)
            return r->hdrs[i].value;
    }
    return NULL;
}

const char *cipc_response_header(const cipc_response *r, const char *name)
{
    return cipc_response_header_n(r, name, 0);
}

size_t cipc_response_header_count(const cipc_response *r)
{
    return r->n_hdrs;
}

int cipc_response_header_at(const cipc_response *r, size_t i, const char **name, const char **value)
{
    if (i >= r->n_hdrs)
        return -ERANGE;
    if (name)
        *name = r->hdrs[i].name;
    if (value)
        *value = r->hdrs[i].value;
    return 0;
}

const void *cipc_response_body(const cipc_response *r, size_t *len)
{
    if (len)
        *len = r->body.len;
    return r->body.data ? r->body.data : "";
}

const char *cipc_response_text(const cipc_response *r)
{
    return r->body.data ? r->body.data : "";
}

const char *cipc_response_url(const cipc_response *r)
{
    return r->url ? r->url : "";
}

int cipc_response_redirects(const cipc_response *r)
{
    return r->redirects;
}

int64_t cipc_response_elapsed_us(const cipc_response *r)
{
    return r->elapsed_us;
}

int cipc_response_attempts(const cipc_response *r)
{
    return r->attempts;
}

const char *cipc_response_errmsg(const cipc_response *r)
{
    return r->errmsg;
}

static void set_errmsg(const cipc_response *cr, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Record a message on the response (and on its session/client). Responses are always
 * heap objects created non-const, so writing through the const view is defined. */
static void set_errmsg(const cipc_response *cr, const char *fmt, ...)
{
    cipc_response *r = (cipc_response *)cr;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->errmsg, sizeof r->errmsg, fmt, ap);
    va_end(ap);
    if (r->owner)
        snprintf(r->owner->msg, sizeof r->owner->msg, "%s", r->errmsg);
}

/* True if the media type is application/json or any type ending in "+json". */
static int is_json_type(const char *ct)
{
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    while (n && (*ct == ' ' || *ct == '\t')) {
        ct++;
        n--;
    }
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return 1;
    return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0 && memchr(ct, '/', n) != NULL;
}

int cipc_response_json(const cipc_response *r, json_t **out)
{
    *out = NULL;
    const char *ct = cipc_response_header(r, "Content-Type");
    if (!ct) {
        set_errmsg(r, "response has no Content-Type, not JSON (url: %s)", cipc_response_url(r));
        return CIPC_EJSON;
    }
    if (!is_json_type(ct)) {
        set_errmsg(r, "Content-Type is %s, not JSON (url: %s)", ct, cipc_response_url(r));
        return CIPC_EJSON;
    }
    json_error_t jerr;
    json_t *j = json_loadb(r->body.data ? r->body.data : "", r->body.len,
                           JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!j) {
        set_errmsg(r, "invalid JSON at line %d, column %d: %s (url: %s)", jerr.line, jerr.column,
                   jerr.text, cipc_response_url(r));
        return CIPC_EJSON;
    }
    *out = j;
    return 0;
}

int cipc_response_raise_for_status(const cipc_response *r)
{
    /* As requests: only 4xx and 5xx raise. */
    if (r->status < 400 || r->status >= 600)
        return 0;
    const char *kind = r->status < 500 ? "Client" : "Server";
    set_errmsg(r, "%d %s Error: %s for url: %s", r->status, kind, cipc_response_reason(r),
               cipc_response_url(r));
    return CIPC_EHTTP;
}

cipc_response *cipc_response_ref(cipc_response *r)
{
    if (r)
        atomic_fetch_add(&r->refs, 1);
    return r;
}

void cipc_response_free(cipc_response *r)
{
    if (!r || atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    clear_headers(r);
    free(r->hdrs);
    free(r->reason);
    free(r->url);
    cipc_buf_free(&r->body);
    cipc__errbox_unref(r->owner);
    free(r);
}
