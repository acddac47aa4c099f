/* HTTP/1.1 response-head parser (RFC 9112), private to cipc.
 *
 * One pass from byte 0 over the buffer, in the manner of the request parser
 * (src/http/parser.c), with its character classes: each byte is judged only from the
 * bytes before it, so the result cannot depend on how the input was split, and max_head
 * bounds the scan. The rules and choices
 * are listed in response.h. */
#include <limits.h>
#include <string.h>

#include "http/response.h"

/* Character classes: the request parser's table (http/parser.h). */
enum { T = CIPC__HTTP_CLS_T, V = CIPC__HTTP_CLS_V };
#define cls cipc__http_cls

static int is_ows(int c)
{
    return c == ' ' || c == '\t';
}

/* Outcomes of a step of the scan below, beside "go on". */
enum { MORE = 1, BAD, BIG };

/* Expect the byte `c` at b[*pos]: MORE at the end of the scan, BAD if it differs, else 0
 * and *pos moves past it. */
static int expect(const unsigned char *b, size_t *pos, size_t end, int c)
{
    if (*pos == end)
        return MORE;
    if (b[*pos] != c)
        return BAD;
    (*pos)++;
    return 0;
}

/* The scan proper over b[0..end): 0 with *head set when the head is complete, else MORE,
 * BAD or BIG. Called by cipc__http_parse_response() only. */
static int scan(const unsigned char *b, size_t end, struct cipc__http_response_head *out,
                struct cipc__http_header *hdrs, size_t max_hdrs, size_t *head)
{
    static const char version[] = "HTTP/1.";
    size_t pos = 0;
    int rc;

    /* Status line. */
    for (size_t i = 0; i < sizeof version - 1; i++)
        if ((rc = expect(b, &pos, end, version[i])) != 0)
            return rc;
    if (pos == end)
        return MORE;
    if (b[pos] < '0' || b[pos] > '9')
        return BAD;
    out->minor = b[pos++] - '0';
    if ((rc = expect(b, &pos, end, ' ')) != 0)
        return rc;
    out->status = 0;
    for (int i = 0; i < 3; i++) {
        if (pos == end)
            return MORE;
        int c = b[pos];
        if (c < '0' || c > '9' || (i == 0 && c == '0'))
            return BAD;
        out->status = out->status * 10 + (c - '0');
        pos++;
    }
    if (pos == end)
        return MORE;
    out->reason.p = (const char *)b + pos;
    out->reason.n = 0;
    if (b[pos] == ' ') {
        pos++;
        size_t r = pos;
        while (pos < end && (cls[b[pos]] & V))
            pos++;
        out->reason.p = (const char *)b + r;
        out->reason.n = pos - r;
    }
    if ((rc = expect(b, &pos, end, '\r')) != 0 || (rc = expect(b, &pos, end, '\n')) != 0)
        return rc;

    /* Field lines, then the empty line. */
    out->n_headers = 0;
    for (;;) {
        if (pos == end)
            return MORE;
        if (b[pos] == '\r') {
            pos++;
            if ((rc = expect(b, &pos, end, '\n')) != 0)
                return rc;
            *head = pos;
            return 0;
        }
        if (!(cls[b[pos]] & T)) /* also obs-fold, a bare LF and an empty name */
            return BAD;
        if (out->n_headers == max_hdrs)
            return BIG;
        size_t name = pos;
        while (pos < end && (cls[b[pos]] & T))
            pos++;
        if ((rc = expect(b, &pos, end, ':')) != 0) /* also whitespace before the colon */
            return rc;
        size_t name_end = pos - 1;
        while (pos < end && is_ows(b[pos]))
            pos++;
        size_t v = pos;
        while (pos < end && (cls[b[pos]] & V))
            pos++;
        size_t ve = pos;
        if ((rc = expect(b, &pos, end, '\r')) != 0 || (rc = expect(b, &pos, end, '\n')) != 0)
            return rc;
        while (ve > v && is_ows(b[ve - 1]))
            ve--;
        struct cipc__http_header *h = &hdrs[out->n_headers++];
        h->name.p = (const char *)b + name;
        h->name.n = name_end - name;
        h->value.p = (const char *)b + v;
        h->value.n = ve - v;
    }
}

int cipc__http_parse_response(const char *buf, size_t n, struct cipc__http_response_head *out,
                              struct cipc__http_header *hdrs, size_t max_hdrs, size_t max_head)
{
    size_t limit = max_head ? max_head : CIPC__HTTP_DEFAULT_MAX_HEAD;
    if (limit > INT_MAX)
        limit = INT_MAX; /* the head's size must fit the return value */
    /* Bytes past max_head are never looked at: reaching it inside the head is too big. */
    size_t end = n < limit ? n : limit;
    size_t head = 0;
    switch (scan((const unsigned char *)buf, end, out, hdrs, max_hdrs, &head)) {
    case 0:
        return (int)head;
    case MORE:
        return end == limit ? CIPC_ETOOBIG : CIPC_EAGAIN;
    case BIG:
        return CIPC_ETOOBIG;
    default:
        return CIPC_EPROTO;
    }
}
