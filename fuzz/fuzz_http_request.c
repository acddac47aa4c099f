/* fuzz/fuzz_http_request.c -- pairs with src/http/parser.c (the request head parser and
 * the chunked decoder).
 *
 * The input is a request as received. Its last byte picks the limits: when its low three
 * bits are 0, small limits derived from its other bits (to reach 414, 431 and 413); else
 * the defaults. The first byte picks a split offset.
 *
 * Head: parse one-shot (into a request full of garbage: only its headers pointer may be
 * read), then a prefix (split) alone, then the prefix and the whole buffer with
 * cipc__http_parse_request_more() resuming, then every prefix resuming byte by byte with
 * the headers array wiped between calls; abort unless all agree. A final result on a
 * prefix must equal the one-shot result (errors are never reported for a prefix that the
 * whole input contradicts), and a parsed head must satisfy the grammar's invariants.
 * Body: if the head parsed and is chunked, decode the bytes after it; otherwise decode the
 * whole input as a chunked body. Decode one-shot, split in two, and byte by byte; abort
 * unless the decoded bytes, the pipelined bytes and the results agree. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif
#ifdef HAVE_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define MAX_HEADERS CIPC__HTTP_DEFAULT_MAX_HEADERS

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *dup_exact(const uint8_t *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    if (!p)
        abort();
    if (n)
        memcpy(p, s, n);
    return p;
}

static long long off(struct cipc__slice s, const char *buf)
{
    return s.p ? (long long)(s.p - buf) : -1;
}

static int same_slice(struct cipc__slice a, const char *ba, struct cipc__slice b, const char *bb)
{
    return off(a, ba) == off(b, bb) && a.n == b.n;
}

static void check_same(const struct cipc__http_request *a, const char *ba,
                       const struct cipc__http_request *b, const char *bb)
{
    if (!same_slice(a->method, ba, b->method, bb) || !same_slice(a->target, ba, b->target, bb) ||
        !same_slice(a->path, ba, b->path, bb) || !same_slice(a->query, ba, b->query, bb) ||
        !same_slice(a->host, ba, b->host, bb) || a->form != b->form || a->minor != b->minor ||
        a->n_headers != b->n_headers || a->content_length != b->content_length ||
        a->chunked != b->chunked || a->keep_alive != b->keep_alive ||
        a->expect_continue != b->expect_continue || a->upgrade != b->upgrade)
        abort();
    for (size_t i = 0; i < a->n_headers; i++)
        if (!same_slice(a->headers[i].name, ba, b->headers[i].name, bb) ||
            !same_slice(a->headers[i].value, ba, b->headers[i].value, bb))
            abort();
}

/* The slice lies inside buf[0..head). */
static void check_in(struct cipc__slice s, const char *buf, size_t head)
{
    if (!s.p) {
        if (s.n)
            abort();
        return;
    }
    if (s.p < buf || (size_t)(s.p - buf) > head || s.n > head - (size_t)(s.p - buf))
        abort();
}

static int is_tchar(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Invariants of a parsed head buf[0..head). */
static void check_valid(const char *buf, size_t head, const struct cipc__http_request *r,
                        const struct cipc__http_limits *lim)
{
    if (head < 16 || memcmp(buf + head - 4, "\r\n\r\n", 4) != 0)
        abort();
    check_in(r->method, buf, head);
    check_in(r->target, buf, head);
    check_in(r->path, buf, head);
    check_in(r->query, buf, head);
    check_in(r->host, buf, head);
    if (r->method.n == 0 || r->target.n == 0 || (r->minor != 0 && r->minor != 1))
        abort();
    for (size_t i = 0; i < r->method.n; i++)
        if (!is_tchar((unsigned char)r->method.p[i]))
            abort();
    if (r->target.p != r->method.p + r->method.n + 1)
        abort();
    size_t max_headers = lim && lim->max_headers ? lim->max_headers : MAX_HEADERS;
    if (r->n_headers > max_headers)
        abort();
    for (size_t i = 0; i < r->n_headers; i++) {
        const struct cipc__http_header *h = &r->headers[i];
        check_in(h->name, buf, head);
        check_in(h->value, buf, head);
        if (h->name.n == 0 || h->name.p[h->name.n] != ':')
            abort();
        for (size_t k = 0; k < h->value.n; k++) {
            unsigned char c = (unsigned char)h->value.p[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                abort();
        }
        if (h->value.n && (h->value.p[0] == ' ' || h->value.p[0] == '\t' ||
                           h->value.p[h->value.n - 1] == ' ' || h->value.p[h->value.n - 1] == '\t'))
            abort();
    }
    if (r->chunked && r->content_length >= 0)
        abort();
    uint64_t max_body = lim && lim->max_body ? lim->max_body : CIPC__HTTP_DEFAULT_MAX_BODY;
    if (r->content_length > (int64_t)max_body)
        abort();
    if (r->minor == 1 && r->host.n == 0)
        abort();
    if (r->form == CIPC__TARGET_ORIGIN && (r->target.p[0] != '/' || r->path.p != r->target.p))
        abort();
    if (r->form == CIPC__TARGET_ASTERISK && (r->target.n != 1 || r->target.p[0] != '*'))
        abort();
    if (r->path.n && r->path.p[0] != '/' && r->form != CIPC__TARGET_ASTERISK)
        abort();
    if (r->query.p && r->query.p[-1] != '?')
        abort();
}

/* Decode body[0..n) in pieces cut at cuts[0..ncuts), each in its own exact-size buffer.
 * The decoded bytes go to out (capacity n), the pipelined bytes to after (capacity n);
 * returns the final result (see decode_pieces in the test) and sets *out_n, *after_n. */
static int decode(const uint8_t *body, size_t n, const size_t *cuts, size_t ncuts, char *out,
                  size_t *out_n, char *after, size_t *after_n)
{
    struct cipc__http_chunked d;
    cipc__http_chunked_init(&d);
    int result = CIPC_EAGAIN;
    size_t from = 0;
    *out_n = *after_n = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        size_t len = to - from;
        char *p = dup_exact(body + from, len);
        int rc = cipc__http_chunked_decode(&d, p, &len);
        if (len > to - from)
            abort();
        if (result == CIPC_EPROTO && rc != CIPC_EPROTO)
            abort();
        if (result >= 0 && (rc != (int)(to - from) || len != 0))
            abort();
        memcpy(out + *out_n, p, len);
        *out_n += len;
        if (rc >= 0) {
            if (len + (size_t)rc > to - from)
                abort();
            memcpy(after + *after_n, p + len, (size_t)rc);
            *after_n += (size_t)rc;
            result = result >= 0 ? result + rc : rc;
        } else if (rc == CIPC_EPROTO) {
            result = CIPC_EPROTO;
        } else if (rc != CIPC_EAGAIN) {
            abort();
        }
        free(p);
        from = to;
    }
    return result;
}

static void fuzz_chunked(const uint8_t *body, size_t n, size_t cut)
{
    char *out1 = malloc(n + 1), *after1 = malloc(n + 1);
    char *out2 = malloc(n + 1), *after2 = malloc(n + 1);
    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    if (!out1 || !after1 || !out2 || !after2 || !cuts)
        abort();
    size_t o1, a1, o2, a2;
    int rc = decode(body, n, NULL, 0, out1, &o1, after1, &a1);
    if (rc >= 0 && (size_t)rc != a1)
        abort();
    if (o1 + a1 > n)
        abort();
    /* The pipelined bytes are the tail of the input. */
    if (rc >= 0 && a1 && memcmp(after1, body + n - a1, a1) != 0)
        abort();
    size_t c = n ? cut % (n + 1) : 0;
    if (decode(body, n, &c, 1, out2, &o2, after2, &a2) != rc || o2 != o1 || a2 != a1 ||
        memcmp(out1, out2, o1) != 0 || memcmp(after1, after2, a1) != 0)
        abort();
    for (size_t i = 0; i < n; i++)
        cuts[i] = i;
    if (decode(body, n, cuts, n, out2, &o2, after2, &a2) != rc || o2 != o1 || a2 != a1 ||
        memcmp(out1, out2, o1) != 0 || memcmp(after1, after2, a1) != 0)
        abort();
    free(out1);
    free(after1);
    free(out2);
    free(after2);
    free(cuts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct cipc__http_header h1[MAX_HEADERS], h2[MAX_HEADERS];
    struct cipc__http_limits small, *lim = NULL;
    uint8_t sel = size ? data[size - 1] : 1;
    if ((sel & 7) == 0) {
        memset(&small, 0, sizeof small);
        small.max_request_line = 8 + (sel >> 3) % 32 * 2;
        small.max_head = 24 + (size_t)((sel >> 3) * 7 % 200);
        small.max_headers = 1 + (size_t)(sel >> 4) % 4;
        small.max_body = 1 + (sel >> 3) % 50;
        lim = &small;
    }
    size_t cut = size ? data[0] % (size + 1) : 0;

    /* One-shot, from an exact-size copy. */
    struct cipc__http_request one, req;
    memset(&one, 0xa5, sizeof one);
    one.headers = h1;
    char *one_buf = dup_exact(data, size);
    int one_status = -7, status;
    int rc = cipc__http_parse_request(one_buf, size, 0, lim, &one, &one_status);
    if (rc == CIPC_EPROTO) {
        static const int ok[] = {400, 413, 414, 431, 501, 505};
        size_t i = 0;
        while (i < sizeof ok / sizeof ok[0] && ok[i] != one_status)
            i++;
        if (i == sizeof ok / sizeof ok[0])
            abort();
    } else if (rc == CIPC_EAGAIN) {
        if (one_status != -7)
            abort();
    } else if (rc > 0 && (size_t)rc <= size) {
        check_valid(one_buf, (size_t)rc, &one, lim);
    } else {
        abort();
    }

    /* A prefix in its own exact-size copy: a final result there is the final result. */
    memset(&req, 0, sizeof req);
    req.headers = h2;
    char *pre = dup_exact(data, cut);
    status = -7;
    int prc = cipc__http_parse_request(pre, cut, 0, lim, &req, &status);
    if (prc != CIPC_EAGAIN) {
        if (prc != rc || (prc == CIPC_EPROTO && status != one_status))
            abort();
        if (prc > 0)
            check_same(&req, pre, &one, one_buf);
    } else if (rc > 0 && (size_t)rc <= cut) {
        abort();
    }
    free(pre);

    /* The prefix, then the whole input resuming from it, in one buffer whose bytes past the
     * prefix are poisoned during the first call. */
    char *buf = dup_exact(data, size);
    cipc__http_request_init(&req, h2);
    POISON(buf + cut, size - cut);
    prc = cipc__http_parse_request_more(buf, cut, lim, &req, &status);
    UNPOISON(buf + cut, size - cut);
    status = -7;
    int rrc = cipc__http_parse_request_more(buf, size, lim, &req, &status);
    if (rrc != rc || (rc == CIPC_EPROTO && status != one_status))
        abort();
    if (rc > 0)
        check_same(&req, buf, &one, one_buf);

    /* Every prefix, resuming byte by byte. */
    cipc__http_request_init(&req, h2);
    for (size_t k = 0; k <= size; k++) {
        POISON(buf + k, size - k);
        status = -7;
        int krc = cipc__http_parse_request_more(buf, k, lim, &req, &status);
        UNPOISON(buf + k, size - k);
        if (krc != CIPC_EAGAIN) {
            if (krc != rc || (krc == CIPC_EPROTO && status != one_status))
                abort();
            if (krc > 0)
                check_same(&req, buf, &one, one_buf);
            break;
        }
        if (k == size && rc != CIPC_EAGAIN)
            abort();
        memset(h2, 0x5a, sizeof h2);
    }
    free(buf);

    /* The body. */
    uint8_t cut2 = size > 1 ? data[1] : 0;
    if (rc > 0 && one.chunked)
        fuzz_chunked(data + rc, size - (size_t)rc, cut2);
    else
        fuzz_chunked(data, size, cut2);
    free(one_buf);
    return 0;
}
