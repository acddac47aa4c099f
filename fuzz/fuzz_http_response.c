/* fuzz/fuzz_http_response.c -- pairs with src/http/response.c (the response-head parser).
 *
 * The input is a response as received. Its last byte picks the limits: when its low three
 * bits are 0, a small max_head and max_hdrs derived from its other bits (to reach
 * CIPC_ETOOBIG); else the defaults. Parse one-shot from an exact-size copy and check the
 * result's invariants; then parse prefixes (every prefix for inputs up to 600 bytes, else
 * a few), each from its own exact-size copy: a prefix gives CIPC_EAGAIN until the result
 * is known and the one-shot result (with the same fields) from there on, and a complete
 * head is never reported as incomplete. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/response.h"

#define MAXH 100

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *dup_exact(const uint8_t *s, size_t n)
{
    char *p = calloc(1, n ? n : 1);
    if (!p)
        abort();
    if (n)
        memcpy(p, s, n);
    return p;
}

static int is_tchar(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void check_in(struct cipc__slice s, const char *buf, size_t head)
{
    if (!s.p || s.p < buf || (size_t)(s.p - buf) > head || s.n > head - (size_t)(s.p - buf))
        abort();
}

static void check_text(struct cipc__slice s)
{
    for (size_t k = 0; k < s.n; k++) {
        unsigned char c = (unsigned char)s.p[k];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            abort();
    }
}

/* Invariants of a parsed head buf[0..head). */
static void check_valid(const char *buf, size_t head, const struct cipc__http_response_head *h,
                        const struct cipc__http_header *hdrs, size_t max_hdrs, size_t max_head)
{
    if (head < 16 || memcmp(buf, "HTTP/1.", 7) != 0 || memcmp(buf + head - 4, "\r\n\r\n", 4) != 0)
        abort();
    if (head > (max_head ? max_head : CIPC__HTTP_DEFAULT_MAX_HEAD))
        abort();
    if (h->minor < 0 || h->minor > 9 || h->status < 100 || h->status > 999)
        abort();
    check_in(h->reason, buf, head);
    check_text(h->reason);
    if (h->n_headers > max_hdrs)
        abort();
    for (size_t i = 0; i < h->n_headers; i++) {
        check_in(hdrs[i].name, buf, head);
        check_in(hdrs[i].value, buf, head);
        if (hdrs[i].name.n == 0 || hdrs[i].name.p[hdrs[i].name.n] != ':')
            abort();
        for (size_t k = 0; k < hdrs[i].name.n; k++)
            if (!is_tchar((unsigned char)hdrs[i].name.p[k]))
                abort();
        check_text(hdrs[i].value);
        const struct cipc__slice v = hdrs[i].value;
        if (v.n && (v.p[0] == ' ' || v.p[0] == '\t' || v.p[v.n - 1] == ' ' || v.p[v.n - 1] == '\t'))
            abort();
    }
}

static long long off(struct cipc__slice s, const char *buf)
{
    return s.p ? (long long)(s.p - buf) : -1;
}

static void check_same(const struct cipc__http_response_head *a, const struct cipc__http_header *ha,
                       const char *ba, const struct cipc__http_response_head *b,
                       const struct cipc__http_header *hb, const char *bb)
{
    if (a->minor != b->minor || a->status != b->status || a->n_headers != b->n_headers ||
        off(a->reason, ba) != off(b->reason, bb) || a->reason.n != b->reason.n)
        abort();
    for (size_t i = 0; i < a->n_headers; i++)
        if (off(ha[i].name, ba) != off(hb[i].name, bb) || ha[i].name.n != hb[i].name.n ||
            off(ha[i].value, ba) != off(hb[i].value, bb) || ha[i].value.n != hb[i].value.n)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct cipc__http_header h1[MAXH], h2[MAXH];
    size_t max_hdrs = MAXH, max_head = 0;
    uint8_t sel = size ? data[size - 1] : 1;
    if ((sel & 7) == 0) {
        max_hdrs = (size_t)(sel >> 3) % 5;
        max_head = 1 + (size_t)(sel >> 3) * 5;
    }

    struct cipc__http_response_head one, h;
    memset(&one, 0xa5, sizeof one);
    char *one_buf = dup_exact(data, size);
    int rc = cipc__http_parse_response(one_buf, size, &one, h1, max_hdrs, max_head);
    if (rc > 0) {
        if ((size_t)rc > size)
            abort();
        check_valid(one_buf, (size_t)rc, &one, h1, max_hdrs, max_head);
    } else if (rc != CIPC_EAGAIN && rc != CIPC_EPROTO && rc != CIPC_ETOOBIG) {
        abort();
    }

    /* Prefixes: EAGAIN, then the final result for good. */
    size_t step = size <= 600 ? 1 : size / 16 + 1;
    int final_seen = 0;
    for (size_t k = 0; k <= size; k += step) {
        char *pre = dup_exact(data, k);
        memset(&h, 0x5a, sizeof h);
        int krc = cipc__http_parse_response(pre, k, &h, h2, max_hdrs, max_head);
        if (krc == CIPC_EAGAIN) {
            if (final_seen || (rc > 0 && (size_t)rc <= k))
                abort();
        } else {
            if (krc != rc)
                abort();
            if (krc > 0)
                check_same(&h, h2, pre, &one, h1, one_buf);
            final_seen = 1;
        }
        free(pre);
    }
    free(one_buf);
    return 0;
}
