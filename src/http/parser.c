/* HTTP/1.1 request-head parser and chunked-body decoder (RFC 9112), private to cipc.
 *
 * The head parser is a state machine over bytes. Each state runs a tight loop over a class
 * table (no per-byte calls), and every byte is judged only from the bytes before it, so an
 * error is reported at the byte that makes the head invalid and the result cannot depend on
 * how the input was split. Three kinds of check need more than one byte and run later:
 * the meaning of a field line (Content-Length, Transfer-Encoding, Host, ...) is checked
 * when its CRLF arrives, an absolute-form or authority-form target when the SP after it
 * arrives, and the Host requirement of HTTP/1.1 at the end of the head. Limits are bounds
 * on the scan: the request line may not reach max_request_line bytes without being
 * complete (414), and the head may not reach max_head bytes without being complete (431).
 *
 * cipc__http_parse_request() scans from byte 0 on every call and reads nothing from the
 * request but its headers array, so it is safe with a fresh (uninitialised) request each
 * time. cipc__http_parse_request_more() is the same scan, but when it returns CIPC_EAGAIN
 * it leaves its position and state in the request's private fields, and the next call
 * resumes at the byte where it stopped: a head fed one byte at a time costs O(n), not
 * O(n^2). While resuming it keeps the field line in progress in the request itself, and
 * refills the headers array from the buffer when the head completes, so the array may be
 * shared (and overwritten) between calls.
 *
 * Decisions where RFC 9112 leaves a choice are listed in parser.h. */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "cipc/url.h"
#include "http/parser.h"

/* Character classes (CIPC__HTTP_CLS_* in parser.h). */
enum { T = CIPC__HTTP_CLS_T, V = CIPC__HTTP_CLS_V, G = CIPC__HTTP_CLS_G };

#define TV  (T | V)
#define VG  (V | G)
#define TVG (T | V | G)

/* clang-format off */
const unsigned char cipc__http_cls[256] = {
      0,   0,   0,   0,   0,   0,   0,   0,   0,   V,   0,   0,   0,   0,   0,   0, /* 0x00 */
      0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0, /* 0x10 */
      V, TVG,  VG,  TV, TVG, TVG, TVG, TVG,  VG,  VG, TVG, TVG,  VG, TVG, TVG,  VG, /* 0x20 */
    TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG,  VG,  VG,  VG,  VG,  VG,  VG, /* 0x30 */
     VG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, /* 0x40 */
    TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG,  VG,  VG,  VG, TVG, TVG, /* 0x50 */
    TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, /* 0x60 */
    TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG, TVG,  VG, TVG,  VG, TVG,   0, /* 0x70 */
      V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V, /* 0x80 */
      V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V, /* 0x90 */
      V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V, /* 0xa0 */
      V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V, /* 0xb0 */
      V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V, /* 0xc0 */
      V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V, /* 0xd0 */
      V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V, /* 0xe0 */
      V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V,   V, /* 0xf0 */
};
/* clang-format on */
#define cls cipc__http_cls

/* Eight bytes at a time: a word with a byte below n (n <= 128), above n (n <= 127), or
 * equal to zero. Exact (no false positives) in whether any byte matches. */
#define REP(c)        (UINT64_C(0x0101010101010101) * (uint64_t)(c))
#define HASLESS(x, n) (((x)-REP(n)) & ~(x)&REP(0x80))
#define HASMORE(x, n) ((((x) + REP(127 - (n))) | (x)) & REP(0x80))
#define HASZERO(x)    (((x)-REP(1)) & ~(x)&REP(0x80))

static uint64_t load8(const unsigned char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    return x;
}

/* Skip field-value bytes (class V) in b[pos..end); returns the offset of the first other
 * byte, or end. Words of printable bytes go eight at a time. Called for header values. */
static size_t scan_value(const unsigned char *b, size_t pos, size_t end)
{
    for (;;) {
        while (end - pos >= 8) {
            uint64_t x = load8(b + pos);
            if (HASLESS(x, 0x20) | HASZERO(x ^ REP(0x7f)))
                break;
            pos += 8;
        }
        size_t lim = end - pos > 8 ? pos + 8 : end;
        while (pos < lim && (cls[b[pos]] & V))
            pos++;
        if (pos < lim || pos == end)
            return pos;
    }
}

/* Skip request-target bytes (class G) in b[pos..end), as scan_value() does. */
static size_t scan_target(const unsigned char *b, size_t pos, size_t end)
{
    for (;;) {
        while (end - pos >= 8) {
            uint64_t x = load8(b + pos);
            if (HASLESS(x, 0x21) | HASMORE(x, 0x7e) | HASZERO(x ^ REP('#')))
                break;
            pos += 8;
        }
        size_t lim = end - pos > 8 ? pos + 8 : end;
        while (pos < lim && (cls[b[pos]] & G))
            pos++;
        if (pos < lim || pos == end)
            return pos;
    }
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

int cipc__slice_ieq(struct cipc__slice s, const char *lower_token)
{
    for (size_t i = 0; i < s.n; i++)
        if (lower_token[i] == '\0' || lower((unsigned char)s.p[i]) != (unsigned char)lower_token[i])
            return 0;
    return lower_token[s.n] == '\0';
}

/* Case-insensitive comparison of p[0..n) with the lower-case token `tok` of length n. */
static int ieq(const char *p, const char *tok, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)p[i]) != (unsigned char)tok[i])
            return 0;
    return 1;
}

static int is_ows(int c)
{
    return c == ' ' || c == '\t';
}

/* Head parser states (req->_state). */
enum {
    H_LEAD,     /* before the request line: an empty line or the method */
    H_LEAD_LF,  /* after the CR of an empty line before the request line */
    H_METHOD,   /* in the method */
    H_TARGET0,  /* first byte of the request target */
    H_TARGET,   /* in an origin-, absolute- or authority-form target */
    H_ASTERISK, /* after the '*' of an asterisk-form target */
    H_VERSION,  /* in "HTTP/1.x"; req->_mark is where it starts */
    H_RL_CR,    /* after the version */
    H_RL_LF,    /* after the CR that ends the request line */
    H_LINE,     /* start of a field line or of the empty line that ends the head */
    H_NAME,     /* in a field name */
    H_OWS,      /* after the ':' */
    H_VALUE,    /* in a field value; req->_mark is where it starts */
    H_VALUE_LF, /* after the CR that ends a field line */
    H_END_LF    /* after the CR of the empty line that ends the head */
};

/* Facts about the fields seen so far (req->_flags). */
enum {
    F_CL = 1u << 0,        /* a Content-Length field */
    F_TE = 1u << 1,        /* a Transfer-Encoding field */
    F_HOST = 1u << 2,      /* a Host field */
    F_CLOSE = 1u << 3,     /* Connection: close */
    F_KEEPALIVE = 1u << 4, /* Connection: keep-alive */
    F_CONN_UPG = 1u << 5,  /* Connection: upgrade */
    F_UPGRADE = 1u << 6,   /* a non-empty Upgrade field */
    F_EXPECT = 1u << 7     /* Expect: 100-continue */
};

/* Limits with defaults filled in. */
struct lim {
    size_t line, head, headers;
    uint64_t body;
};

/* Validate `uri-host [":" port]` (RFC 9110 7.2) in p[0..n) with the URL parser, which
 * checks reg-names, dotted quads and IPv6 literals, and ports up to 65535. With
 * `need_port` the port is required (a CONNECT target). Returns 1 if valid. Called for the
 * Host field and for authority-form targets. */
static int valid_authority(const char *p, size_t n, int need_port)
{
    cipc_url_parser up;
    cipc_url u;
    cipc_url_parser_init(&up);
    if (cipc_url_parser_feed(&up, "http://", 7) != 0 || (n && cipc_url_parser_feed(&up, p, n)) ||
        cipc_url_parser_finish(&up, &u) != 0)
        return 0;
    if (u.flags & (CIPC_URL_HAS_USERINFO | CIPC_URL_HAS_QUERY | CIPC_URL_HAS_FRAGMENT))
        return 0;
    if (u.path.len != 0 || !(u.flags & CIPC_URL_HAS_AUTHORITY))
        return 0;
    return !need_port || (u.flags & CIPC_URL_HAS_PORT);
}

/* Fast path of valid_authority() for the common Host values: a name of letters, digits,
 * '-', '.', '_' and '~' with at least one character that is not a digit or a dot, or a
 * dotted quad (four decimal octets up to 255 without leading zeros, as the URL parser
 * requires), and an optional port of 1 to 5 digits up to 65535. Returns 1 if p[0..n) is
 * such a value, 0 if the full check must decide. */
static int simple_host(const char *p, size_t n)
{
    size_t i = 0;
    int name = 0;
    unsigned dots = 0, digits = 0, octet = 0, quad = 1;
    for (; i < n; i++) {
        int c = (unsigned char)p[i];
        if (c >= '0' && c <= '9') {
            if ((digits == 1 && octet == 0) || digits == 3)
                quad = 0;
            octet = octet * 10 + (unsigned)(c - '0');
            digits++;
        } else if (c == '.') {
            if (digits == 0 || octet > 255)
                quad = 0;
            dots++;
            digits = octet = 0;
        } else if (((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '-' || c == '_' || c == '~') {
            name = 1;
        } else {
            break;
        }
    }
    if (!name && (!quad || dots != 3 || digits == 0 || octet > 255))
        return 0;
    if (i == n)
        return 1;
    if (p[i] != ':' || n - i < 2 || n - i > 6)
        return 0;
    unsigned port = 0;
    for (i++; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        port = port * 10 + (unsigned)(p[i] - '0');
    }
    return port <= 65535;
}

/* Split the trimmed value p[0..n) into comma-separated elements with OWS around the commas.
 * Calls back per element through the loop in each user; this returns the end of the
 * element starting at *i and moves *i past the following comma (or to n). */
static size_t next_element(const char *p, size_t n, size_t *i, size_t *start)
{
    size_t s = *i, e;
    while (s < n && is_ows(p[s]))
        s++;
    e = s;
    while (e < n && p[e] != ',')
        e++;
    *i = e < n ? e + 1 : n;
    while (e > s && is_ows(p[e - 1]))
        e--;
    *start = s;
    return e;
}

/* Content-Length: 1*DIGIT, or a list of identical such values (RFC 9110 8.6). Returns the
 * value, or -1 if malformed, differing or above INT64_MAX. */
static int64_t parse_content_length(const char *p, size_t n)
{
    int64_t first = -1;
    size_t i = 0;
    do {
        size_t s, e = next_element(p, n, &i, &s);
        if (s == e)
            return -1;
        int64_t v = 0;
        for (size_t k = s; k < e; k++) {
            if (p[k] < '0' || p[k] > '9')
                return -1;
            int d = p[k] - '0';
            if (v > (INT64_MAX - d) / 10)
                return -1;
            v = v * 10 + d;
        }
        if (first >= 0 && v != first)
            return -1;
        first = v;
    } while (i < n);
    if (n && p[n - 1] == ',')
        return -1; /* a trailing empty element */
    return first;
}

/* Transfer-Encoding: each element must be a bare token; "chunked" (any case) may occur
 * once, last. Returns 0 and sets *chunked, or the status: 400 for an empty or non-token
 * element or anything after chunked, 501 for a coding other than chunked before it. */
static int parse_transfer_encoding(const char *p, size_t n, int *chunked)
{
    size_t i = 0;
    do {
        size_t s, e = next_element(p, n, &i, &s);
        if (s == e)
            return 400;
        for (size_t k = s; k < e; k++)
            if (!(cls[(unsigned char)p[k]] & T))
                return 400;
        if (*chunked)
            return 400;
        if (e - s != 7 || !ieq(p + s, "chunked", 7))
            return 501;
        *chunked = 1;
    } while (i < n);
    if (n == 0 || p[n - 1] == ',')
        return 400;
    return 0;
}

/* Connection: remember close, keep-alive and upgrade (any case); ignore other options. */
static unsigned parse_connection(const char *p, size_t n)
{
    unsigned f = 0;
    size_t i = 0;
    while (i < n) {
        size_t s, e = next_element(p, n, &i, &s);
        if (e - s == 5 && ieq(p + s, "close", 5))
            f |= F_CLOSE;
        else if (e - s == 10 && ieq(p + s, "keep-alive", 10))
            f |= F_KEEPALIVE;
        else if (e - s == 7 && ieq(p + s, "upgrade", 7))
            f |= F_CONN_UPG;
    }
    return f;
}

/* Expect: does the list hold 100-continue (any case)? */
static int has_100_continue(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t s, e = next_element(p, n, &i, &s);
        if (e - s == 12 && ieq(p + s, "100-continue", 12))
            return 1;
    }
    return 0;
}

/* Act on the field line just completed, `h`. Returns 0 or the status to fail with. Called
 * at the LF of every field line. */
static int on_field(struct cipc__http_request *req, const struct cipc__http_header *h,
                    const struct lim *lim)
{
    const char *v = h->value.p;
    size_t n = h->value.n;
    switch (h->name.n) {
    case 4:
        if (!ieq(h->name.p, "host", 4))
            return 0;
        if (req->_flags & F_HOST)
            return 400;
        req->_flags |= F_HOST;
        if (!simple_host(v, n) && !valid_authority(v, n, 0))
            return 400;
        if (req->form == CIPC__TARGET_ORIGIN || req->form == CIPC__TARGET_ASTERISK)
            req->host = h->value;
        return 0;
    case 6:
        if (ieq(h->name.p, "expect", 6) && has_100_continue(v, n))
            req->_flags |= F_EXPECT;
        return 0;
    case 7:
        if (ieq(h->name.p, "upgrade", 7) && n > 0)
            req->_flags |= F_UPGRADE;
        return 0;
    case 10:
        if (ieq(h->name.p, "connection", 10))
            req->_flags |= parse_connection(v, n);
        return 0;
    case 14: {
        if (!ieq(h->name.p, "content-length", 14))
            return 0;
        int64_t cl = parse_content_length(v, n);
        if (cl < 0 || (req->_flags & F_TE))
            return 400;
        if ((req->_flags & F_CL) && cl != req->content_length)
            return 400;
        req->_flags |= F_CL;
        req->content_length = cl;
        return (uint64_t)cl > lim->body ? 413 : 0;
    }
    case 17: {
        if (!ieq(h->name.p, "transfer-encoding", 17))
            return 0;
        if (req->minor == 0 || (req->_flags & F_CL))
            return 400;
        req->_flags |= F_TE;
        return parse_transfer_encoding(v, n, &req->chunked);
    }
    default:
        return 0;
    }
}

/* The request target ends at `end` (its SP): check it by its form and fill path, query
 * and (for absolute- and authority-form) host. Returns 0 or 400. */
static int on_target(const char *buf, size_t end, struct cipc__http_request *req)
{
    const char *t = req->target.p;
    size_t n = (size_t)(buf + end - t);
    req->target.n = n;
    if (req->form == CIPC__TARGET_ORIGIN) {
        const char *q = memchr(t, '?', n);
        req->path.p = t;
        req->path.n = q ? (size_t)(q - t) : n;
        if (q) {
            req->query.p = q + 1;
            req->query.n = n - req->path.n - 1;
        }
        return 0;
    }
    if (req->form == CIPC__TARGET_AUTHORITY) {
        if (!valid_authority(t, n, 1))
            return 400;
        req->host = req->target;
        return 0;
    }
    /* Absolute-form: scheme "://" authority, without userinfo (RFC 9110 4.2.4) or fragment. */
    cipc_url u;
    if (cipc_url_parse(t, n, &u) != 0 || !(u.flags & CIPC_URL_HAS_AUTHORITY) ||
        (u.flags & (CIPC_URL_HAS_USERINFO | CIPC_URL_HAS_FRAGMENT)))
        return 400;
    if (u.path.len) { /* else {NULL, 0}, which means "/" */
        req->path.p = t + u.path.off;
        req->path.n = u.path.len;
    }
    if (u.flags & CIPC_URL_HAS_QUERY) {
        req->query.p = t + u.query.off;
        req->query.n = u.query.len;
    }
    size_t hs = u.host.off, he = u.host.off + u.host.len;
    if (u.flags & CIPC_URL_HOST_IPV6) {
        hs--;
        he++;
    }
    if (u.flags & CIPC_URL_HAS_PORT)
        he = u.port.off + u.port.len;
    req->host.p = t + hs;
    req->host.n = he - hs;
    return 0;
}

/* The empty line ended the head: apply the rules that need all of it. Returns 0 or 400. */
static int on_head_end(struct cipc__http_request *req)
{
    unsigned f = req->_flags;
    if (req->minor == 1 && !(f & F_HOST))
        return 400;
    if (f & F_CLOSE)
        req->keep_alive = 0;
    else
        req->keep_alive = req->minor == 1 || (f & F_KEEPALIVE);
    /* HTTP/1.0 requests: ignore 100-continue (RFC 9110 10.1.1) and Upgrade (7.8). */
    req->expect_continue = req->minor == 1 && (f & F_EXPECT);
    req->upgrade = req->minor == 1 && (f & F_UPGRADE) && (f & F_CONN_UPG);
    return 0;
}

/* Refill req->headers from the field lines in buf[req->_hdr0 .. end), which the scan has
 * checked: the name up to the ':', the value without the OWS around it. Called when a
 * resumed parse completes, since the array may have been reused between calls. */
static void refill_headers(const char *buf, size_t end, struct cipc__http_request *req)
{
    const char *p = buf + req->_hdr0, *e = buf + end;
    for (size_t i = 0; i < req->n_headers; i++) {
        const char *colon = memchr(p, ':', (size_t)(e - p));
        const char *cr = memchr(colon, '\r', (size_t)(e - colon));
        const char *v = colon + 1, *ve = cr;
        while (v < cr && is_ows(*v))
            v++;
        while (ve > v && is_ows(ve[-1]))
            ve--;
        req->headers[i].name.p = p;
        req->headers[i].name.n = (size_t)(colon - p);
        req->headers[i].value.p = v;
        req->headers[i].value.n = (size_t)(ve - v);
        p = cr + 2;
    }
}

static void reset(struct cipc__http_request *req, struct cipc__http_header *headers)
{
    memset(req, 0, sizeof *req);
    req->headers = headers;
    req->content_length = -1;
    req->_state = H_LEAD;
}

static void resolve_limits(const struct cipc__http_limits *limits, struct lim *lim)
{
    lim->line = CIPC__HTTP_DEFAULT_MAX_REQUEST_LINE;
    lim->head = CIPC__HTTP_DEFAULT_MAX_HEAD;
    lim->headers = CIPC__HTTP_DEFAULT_MAX_HEADERS;
    lim->body = CIPC__HTTP_DEFAULT_MAX_BODY;
    if (limits) {
        if (limits->max_request_line)
            lim->line = limits->max_request_line;
        if (limits->max_head)
            lim->head = limits->max_head;
        if (limits->max_headers)
            lim->headers = limits->max_headers;
        if (limits->max_body)
            lim->body = limits->max_body;
    }
    if (lim->head > INT_MAX)
        lim->head = INT_MAX; /* the head's size must fit the return value */
}

static int scan(const char *buf, size_t len, const struct lim *lim, struct cipc__http_request *req,
                int *status);

int cipc__http_parse_request(const char *buf, size_t len, size_t prev_len,
                             const struct cipc__http_limits *limits, struct cipc__http_request *req,
                             int *status)
{
    struct lim lim;
    (void)prev_len; /* every call scans from byte 0; see cipc__http_parse_request_more() */
    resolve_limits(limits, &lim);
    reset(req, req->headers);
    return scan(buf, len, &lim, req, status);
}

void cipc__http_request_init(struct cipc__http_request *req, struct cipc__http_header *headers)
{
    reset(req, headers);
}

int cipc__http_parse_request_more(const char *buf, size_t len,
                                  const struct cipc__http_limits *limits,
                                  struct cipc__http_request *req, int *status)
{
    struct lim lim;
    resolve_limits(limits, &lim);
    if (req->_buf != NULL && req->_buf == buf && req->_len <= len && req->_pos <= req->_len) {
        req->_resumed = 1;
    } else {
        reset(req, req->headers);
    }
    return scan(buf, len, &lim, req, status);
}

/* The scan shared by both entry points: from req->_pos in state req->_state (byte 0 and
 * H_LEAD after a reset) to a result. Only a CIPC_EAGAIN return leaves a resume point. */
static int scan(const char *buf, size_t len, const struct lim *limp, struct cipc__http_request *req,
                int *status)
{
    const struct lim lim = *limp;
    const unsigned char *b = (const unsigned char *)buf;
    size_t pos = req->_pos;
    unsigned st = req->_state;
    req->_buf = NULL; /* only a CIPC_EAGAIN return leaves a resume point */
    /* Bytes past max_head are never looked at: reaching it inside the head is a 431. */
    const size_t end = len < lim.head ? len : lim.head;
    size_t e; /* the scan bound of the current state */
    int code = 400;
    int c;

    for (;;) {
        switch (st) {
        case H_LEAD:
            if (pos == end)
                goto more;
            if (b[pos] == '\r') {
                pos++;
                st = H_LEAD_LF;
                continue;
            }
            req->_line = pos;
            st = H_METHOD;
            continue;
        case H_LEAD_LF:
            if (pos == end)
                goto more;
            if (b[pos++] != '\n')
                goto fail;
            st = H_LEAD;
            continue;
        case H_METHOD:
            e = end - req->_line > lim.line ? req->_line + lim.line : end;
            while (pos < e && (cls[b[pos]] & T))
                pos++;
            if (pos == e)
                goto more_line;
            if (b[pos] != ' ' || pos == req->_line)
                goto fail;
            req->method.p = buf + req->_line;
            req->method.n = pos - req->_line;
            pos++;
            st = H_TARGET0;
            continue;
        case H_TARGET0: {
            e = end - req->_line > lim.line ? req->_line + lim.line : end;
            if (pos == e)
                goto more_line;
            c = b[pos];
            int connect = req->method.n == 7 && memcmp(req->method.p, "CONNECT", 7) == 0;
            req->target.p = buf + pos;
            if (c == '*') {
                if (req->method.n != 7 || memcmp(req->method.p, "OPTIONS", 7) != 0)
                    goto fail;
                req->form = CIPC__TARGET_ASTERISK;
                pos++;
                st = H_ASTERISK;
                continue;
            }
            if (connect) {
                if (c == '/' || !(cls[c] & G))
                    goto fail;
                req->form = CIPC__TARGET_AUTHORITY;
            } else if (c == '/') {
                req->form = CIPC__TARGET_ORIGIN;
            } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') {
                req->form = CIPC__TARGET_ABSOLUTE;
            } else {
                goto fail;
            }
            pos++;
            st = H_TARGET;
            continue;
        }
        case H_TARGET:
            e = end - req->_line > lim.line ? req->_line + lim.line : end;
            pos = scan_target(b, pos, e);
            if (pos == e)
                goto more_line;
            if (b[pos] != ' ' || on_target(buf, pos, req) != 0)
                goto fail;
            pos++;
            req->_mark = pos;
            st = H_VERSION;
            continue;
        case H_ASTERISK:
            e = end - req->_line > lim.line ? req->_line + lim.line : end;
            if (pos == e)
                goto more_line;
            if (b[pos] != ' ')
                goto fail;
            req->target.n = 1;
            req->path = req->target;
            pos++;
            req->_mark = pos;
            st = H_VERSION;
            continue;
        case H_VERSION:
            e = end - req->_line > lim.line ? req->_line + lim.line : end;
            /* The common case in one comparison: the whole version is here. */
            if (pos == req->_mark && e - pos >= 8 && memcmp(b + pos, "HTTP/1.", 7) == 0 &&
                (b[pos + 7] == '1' || b[pos + 7] == '0')) {
                req->minor = b[pos + 7] - '0';
                pos += 8;
                st = H_RL_CR;
                continue;
            }
            for (;;) {
                if (pos == e)
                    goto more_line;
                size_t i = pos - req->_mark;
                c = b[pos];
                if (i < 5) {
                    if (c != "HTTP/"[i])
                        goto fail;
                } else if (i == 6) {
                    if (c != '.')
                        goto fail;
                } else if (c < '0' || c > '9') {
                    goto fail;
                } else if (i == 5 ? c != '1' : c > '1') {
                    code = 505;
                    goto fail;
                } else if (i == 7) {
                    req->minor = c - '0';
                    pos++;
                    break;
                }
                pos++;
            }
            st = H_RL_CR;
            continue;
        case H_RL_CR:
            if (pos == end)
                goto more;
            if (b[pos++] != '\r')
                goto fail;
            st = H_RL_LF;
            continue;
        case H_RL_LF:
        case H_VALUE_LF:
            if (pos == end)
                goto more;
            if (b[pos++] != '\n')
                goto fail;
            if (st == H_VALUE_LF) {
                int bad = on_field(req, &req->_field, &lim);
                if (bad != 0) {
                    code = bad;
                    goto fail;
                }
                req->headers[req->n_headers++] = req->_field;
            } else {
                req->_hdr0 = pos;
            }
            st = H_LINE;
            continue;
        case H_LINE:
            if (pos == end)
                goto more;
            c = b[pos];
            if (c == '\r') {
                pos++;
                st = H_END_LF;
                continue;
            }
            if (!(cls[c] & T)) /* also obs-fold, a bare LF and an empty name */
                goto fail;
            if (req->n_headers == lim.headers) {
                code = 431;
                goto fail;
            }
            req->_field.name.p = buf + pos;
            pos++;
            st = H_NAME;
            continue;
        case H_NAME: {
            while (pos < end && (cls[b[pos]] & T))
                pos++;
            if (pos == end)
                goto more;
            if (b[pos] != ':') /* also whitespace before the colon */
                goto fail;
            req->_field.name.n = (size_t)(buf + pos - req->_field.name.p);
            pos++;
            st = H_OWS;
            continue;
        }
        case H_OWS:
            while (pos < end && is_ows(b[pos]))
                pos++;
            if (pos == end)
                goto more;
            req->_mark = pos;
            st = H_VALUE;
            continue;
        case H_VALUE: {
            pos = scan_value(b, pos, end);
            if (pos == end)
                goto more;
            if (b[pos] != '\r') /* a control character, DEL or a bare LF */
                goto fail;
            size_t ve = pos;
            while (ve > req->_mark && is_ows(b[ve - 1]))
                ve--;
            req->_field.value.p = buf + req->_mark;
            req->_field.value.n = ve - req->_mark;
            pos++;
            st = H_VALUE_LF;
            continue;
        }
        case H_END_LF:
            if (pos == end)
                goto more;
            if (b[pos++] != '\n')
                goto fail;
            if (on_head_end(req) != 0)
                goto fail;
            if (req->_resumed)
                refill_headers(buf, pos, req);
            return (int)pos;
        default:
            goto fail;
        }
    }

more_line:
    /* The request line has max_request_line bytes and is not complete. */
    if (pos == req->_line + lim.line) {
        code = 414;
        goto fail;
    }
more:
    if (end == lim.head) {
        code = 431;
        goto fail;
    }
    req->_buf = buf;
    req->_len = len;
    req->_pos = pos;
    req->_state = st;
    return CIPC_EAGAIN;

fail:
    if (status)
        *status = code;
    return CIPC_EPROTO;
}

/* Chunked decoder states (d->state). */
enum {
    K_SIZE0,     /* first hex digit of a chunk size */
    K_SIZE,      /* more hex digits, BWS, ';' or CR */
    K_SIZE_WS,   /* BWS after the size: more of it, then ';' */
    K_EXT,       /* chunk extensions up to CR */
    K_SIZE_LF,   /* after the CR of a size line */
    K_DATA,      /* d->remaining bytes of chunk data */
    K_DATA_CR,   /* the CR after chunk data */
    K_DATA_LF,   /* the LF after chunk data */
    K_TLINE,     /* start of a trailer line or of the final empty line */
    K_TNAME,     /* in a trailer field name */
    K_TVALUE,    /* in a trailer field value */
    K_TVALUE_LF, /* after the CR of a trailer line */
    K_END_LF,    /* after the CR of the final empty line */
    K_DONE,      /* the body ended */
    K_ERROR      /* a malformed body (sticky) */
};

void cipc__http_chunked_init(struct cipc__http_chunked *d)
{
    memset(d, 0, sizeof *d);
}

/* The value of the hex digit c, or -1. */
static int hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int cipc__http_chunked_decode(struct cipc__http_chunked *d, char *buf, size_t *len)
{
    unsigned char *b = (unsigned char *)buf;
    const size_t n = *len;
    size_t r = 0, w = 0; /* read and write offsets: w <= r */
    unsigned st = d->state;
    int c;

    if (st == K_ERROR) {
        *len = 0;
        return CIPC_EPROTO;
    }
    if (st == K_DONE) {
        *len = 0; /* everything after the body is pipelined data */
        return (int)n;
    }
    while (r < n) {
        if (st == K_DATA) {
            size_t take = n - r;
            if (take > d->remaining)
                take = (size_t)d->remaining;
            if (w != r)
                memmove(b + w, b + r, take);
            w += take;
            r += take;
            d->remaining -= take;
            if (d->remaining == 0)
                st = K_DATA_CR;
            continue;
        }
        c = b[r++];
        if (st >= K_TLINE && ++d->trailers > CIPC__HTTP_CHUNKED_MAX_TRAILERS)
            goto fail;
        switch (st) {
        case K_SIZE0:
            if (hex_digit(c) < 0)
                goto fail;
            d->remaining = (uint64_t)hex_digit(c);
            d->hex = 1;
            d->line = 1;
            st = K_SIZE;
            break;
        case K_SIZE:
        case K_SIZE_WS:
        case K_EXT:
            if (c == '\r' && st != K_SIZE_WS) { /* BWS only before a ';' */
                st = K_SIZE_LF;
                break;
            }
            if (++d->line > CIPC__HTTP_CHUNKED_MAX_LINE)
                goto fail;
            if (st == K_SIZE && hex_digit(c) >= 0) {
                /* At most 16 digits, and the value stays below 2^63. */
                if (d->hex == 16 || (d->remaining >> 59) != 0)
                    goto fail;
                d->remaining = d->remaining * 16 + (uint64_t)hex_digit(c);
                d->hex++;
            } else if (st != K_EXT && is_ows(c)) {
                st = K_SIZE_WS;
            } else if (st != K_EXT && c == ';') {
                st = K_EXT;
            } else if (st != K_EXT || !(cls[c] & V)) {
                goto fail;
            }
            break;
        case K_SIZE_LF:
            if (c != '\n')
                goto fail;
            st = d->remaining ? K_DATA : K_TLINE;
            break;
        case K_DATA_CR:
            if (c != '\r')
                goto fail;
            st = K_DATA_LF;
            break;
        case K_DATA_LF:
            if (c != '\n')
                goto fail;
            st = K_SIZE0;
            break;
        case K_TLINE:
            if (c == '\r')
                st = K_END_LF;
            else if (cls[c] & T) /* not obs-fold, a bare LF or an empty name */
                st = K_TNAME;
            else
                goto fail;
            break;
        case K_TNAME:
            if (c == ':')
                st = K_TVALUE;
            else if (!(cls[c] & T))
                goto fail;
            break;
        case K_TVALUE:
            if (c == '\r')
                st = K_TVALUE_LF;
            else if (!(cls[c] & V))
                goto fail;
            break;
        case K_TVALUE_LF:
            if (c != '\n')
                goto fail;
            st = K_TLINE;
            break;
        case K_END_LF: {
            if (c != '\n')
                goto fail;
            size_t rest = n - r;
            if (rest && w != r)
                memmove(b + w, b + r, rest);
            d->state = K_DONE;
            *len = w;
            return (int)rest;
        }
        default:
            goto fail;
        }
    }
    d->state = st;
    *len = w;
    return CIPC_EAGAIN;

fail:
    d->state = K_ERROR;
    *len = w;
    return CIPC_EPROTO;
}
