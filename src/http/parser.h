/* src/http/parser.h -- the HTTP/1.1 request parser (RFC 9112), private to cipc.
 *
 * Pure functions over bytes: no I/O, no allocation, no global state. The head parser works
 * in the picohttpparser manner: call it again with the whole buffer received so far (the
 * same bytes plus more) until it stops returning CIPC_EAGAIN; results are slices into that
 * buffer, valid while the buffer is unchanged. cipc__http_parse_request() rescans from
 * byte 0 on each call; cipc__http_parse_request_more() keeps its place in the request
 * and scans only the new bytes. The chunked-body decoder keeps a small state struct and
 * decodes in place, so it resumes at any byte boundary.
 *
 * What is accepted, and the choices made where RFC 9112 allows more than one:
 * - Lines end in CRLF only; a bare LF or a bare CR anywhere is a 400. Empty lines (CRLF)
 *   before the request line are skipped, as many as fit in max_head; they count towards
 *   the head's size.
 * - Request line: method SP request-target SP HTTP-version, exactly one SP between parts.
 *   The method is a token (case-sensitive, any token). The version is "HTTP/1.1" or
 *   "HTTP/1.0"; a digit other than 1 as the major version or other than 0 or 1 as the
 *   minor version is a 505 at that digit (so "HTTP/2.0", "HTTP/1.2" and "HTTP/0.9" are
 *   505); anything else that is not exactly that syntax ("http/1.1", "HTTP/1.10", a
 *   missing version) is a 400.
 * - Request target: origin-form ("/...") accepts every VCHAR except '#' (a fragment is
 *   not part of a request target), so that the characters browsers send unescaped in
 *   queries ('{', '|', '"', ...) pass; bytes >= 0x80, controls, DEL and SP are a 400.
 *   Absolute-form ("scheme://authority...", any scheme) must be a valid URL for
 *   cipc_url_parse(), which is stricter (RFC 3986 characters only), and may not contain
 *   userinfo or a fragment. Asterisk-form ("*") only with OPTIONS. CONNECT takes only
 *   authority-form (host ":" port, port required) and the parser accepts it: the caller
 *   decides what to answer (cipc's server answers 501).
 * - Field lines: name = token, then ':' at once (whitespace before the colon is a 400);
 *   value = field-vchar, obs-text, SP and HTAB, with leading and trailing SP/HTAB removed;
 *   NUL, other controls and DEL are a 400. A line starting with SP or HTAB (obs-fold, or
 *   whitespace after the request line) is a 400. Names are not limited one by one.
 * - Content-Length: 1*DIGIT (leading zeros allowed) up to INT64_MAX; a comma list of
 *   identical values, and repeated field lines with identical values, are accepted as that
 *   value (RFC 9110 8.6); differing values, empty list elements, signs or other characters
 *   are a 400; a value above max_body is a 413.
 * - Transfer-Encoding (its field lines form one list): each element must be a bare token;
 *   "chunked" (any case) must come last and only once, anything after it is a 400; a coding
 *   other than chunked before it (e.g. "gzip", "gzip, chunked") is a 501, since no other
 *   coding is implemented. Transfer-Encoding with Content-Length, or in an HTTP/1.0
 *   request, is a 400 whichever comes first.
 * - Host: required exactly once in HTTP/1.1 (missing or repeated is a 400; repeated is a
 *   400 in HTTP/1.0 too). The value must be uri-host [":" port] as cipc_url_parse() reads
 *   hosts (reg-name, dotted quad, [IPv6]; a host of only digits and dots must be a valid
 *   dotted quad, so "8080" and "1.2.3" are rejected; a non-empty port up to 65535); an
 *   empty Host is a 400. For absolute-form and authority-form targets, `host` is the
 *   target's authority (RFC 9112 3.2.2 says to use it instead of the Host field, which
 *   must still be valid).
 * - Connection: the options close, keep-alive and upgrade are recognised in any case;
 *   others are ignored. Expect: only "100-continue" (any case) means anything; other
 *   expectations are ignored (no 417); in HTTP/1.0 it is ignored (RFC 9110 10.1.1).
 *   Upgrade: only counts in HTTP/1.1, with "upgrade" in Connection (RFC 9110 7.8).
 *
 * When errors are found: syntax errors at the byte that makes the head invalid; errors in
 * the meaning of a field line (Content-Length, Transfer-Encoding, Host) at the LF ending
 * that line; an invalid absolute- or authority-form target at the SP after it; a missing
 * Host at the end of the head. 414 as soon as the request line has max_request_line bytes
 * and is not complete, 431 as soon as the head has max_head bytes and is not complete, or
 * when field line max_headers + 1 starts. The first error in byte order wins, so a longer
 * prefix of the same input always gives the same result.
 *
 * Threading: thread-safe (pure functions of their arguments). */
#ifndef CIPC_SRC_HTTP_PARSER_H
#define CIPC_SRC_HTTP_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include "cipc/error.h"

/* Character classes of bytes in HTTP/1.1 heads, shared by the request and response
 * parsers: cipc__http_cls[byte] is a mask of these. */
enum {
    CIPC__HTTP_CLS_T = 1, /* tchar (RFC 9110 5.6.2): method, field names, codings */
    CIPC__HTTP_CLS_V = 2, /* field-vchar, obs-text, SP or HTAB: field values, reason
                             phrases, chunk extensions */
    CIPC__HTTP_CLS_G = 4  /* accepted in a request target: VCHAR except '#' */
};
extern const unsigned char cipc__http_cls[256];

/* A view into the caller's buffer. */
struct cipc__slice {
    const char *p;
    size_t n;
};

struct cipc__http_header {
    struct cipc__slice name;  /* as received; compare case-insensitively */
    struct cipc__slice value; /* leading and trailing SP/HTAB removed */
};

/* The form of the request target (RFC 9112 3.2). */
enum cipc__http_target_form {
    CIPC__TARGET_ORIGIN = 0, /* "/path?query" */
    CIPC__TARGET_ABSOLUTE,   /* "http://host/path?query" */
    CIPC__TARGET_AUTHORITY,  /* "host:port" (CONNECT only) */
    CIPC__TARGET_ASTERISK    /* "*" (OPTIONS only) */
};

/* Limits; zero fields take the defaults below. */
struct cipc__http_limits {
    size_t max_request_line; /* bytes of the request line without CRLF; over -> 414 */
    size_t max_head;         /* bytes of the whole head (line + headers); over -> 431 */
    size_t max_headers;      /* header fields; over -> 431. Also the capacity of
                                req->headers, which must hold this many entries */
    uint64_t max_body;       /* Content-Length above this -> 413 (chunked bodies are
                                checked by the caller as they decode) */
};

#define CIPC__HTTP_DEFAULT_MAX_REQUEST_LINE 8192
#define CIPC__HTTP_DEFAULT_MAX_HEAD         (64 * 1024)
#define CIPC__HTTP_DEFAULT_MAX_HEADERS      100
#define CIPC__HTTP_DEFAULT_MAX_BODY         (8u * 1024 * 1024)

struct cipc__http_request {
    struct cipc__slice method;
    struct cipc__slice target; /* the raw request target */
    struct cipc__slice path;   /* target without "?query"; for absolute-form the URL's path;
                                  "*" for asterisk-form; {NULL, 0} for authority-form and for
                                  absolute-form without a path (which means "/") */
    struct cipc__slice query;  /* without the '?'; p == NULL if there is no '?' */
    enum cipc__http_target_form form;
    int minor;                         /* HTTP/1.<minor>: 0 or 1 */
    struct cipc__http_header *headers; /* caller-provided array (limits.max_headers) */
    size_t n_headers;
    /* Derived from the headers: */
    int64_t content_length;  /* -1 if absent */
    int chunked;             /* Transfer-Encoding: chunked (the only coding accepted) */
    int keep_alive;          /* 1.1: on unless "close"; 1.0: only with "keep-alive" and no
                                "close" */
    int expect_continue;     /* Expect: 100-continue (HTTP/1.1 only) */
    int upgrade;             /* an Upgrade header and "upgrade" in Connection (1.1 only) */
    struct cipc__slice host; /* the Host header value (n == 0 if absent on HTTP/1.0),
                                or the target's authority for absolute-form and
                                authority-form */
    /* Private to the parser: the scan state, and for cipc__http_parse_request_more() where
       to resume after CIPC_EAGAIN. */
    const char *_buf;
    size_t _len, _pos, _line, _mark, _hdr0;
    struct cipc__http_header _field; /* the field line being scanned */
    unsigned _state, _flags;
    int _resumed;
};

/* Parse a request head from buf[0..len).
 *
 * `prev_len` is the `len` of the previous call for the same request (0 the first time);
 * it is accepted for picohttpparser-style callers, but the result never depends on it:
 * every call scans from byte 0 (to scan only new bytes, use
 * cipc__http_parse_request_more()). `req->headers` must point to an array of
 * limits->max_headers entries (or the default 100); nothing else in *req is read (it may
 * be uninitialised), and the parser fills every other field. `limits` may be NULL for the
 * defaults. `status` is written only when CIPC_EPROTO is returned. On errors and on
 * CIPC_EAGAIN the contents of *req are unspecified.
 *
 * Returns the size of the head in bytes (> 0, the body starts there), CIPC_EAGAIN if
 * the head is incomplete and no limit is exceeded yet, or CIPC_EPROTO with *status set
 * to the HTTP status to answer before closing: 400 (malformed, smuggling-prone or
 * missing/duplicate Host on 1.1), 414, 431, 413 (Content-Length over max_body), 501
 * (a transfer coding other than chunked), 505 (a version
 * other than HTTP/1.0 or 1.1). Never reads buf[len] or beyond. */
int cipc__http_parse_request(const char *buf, size_t len, size_t prev_len,
                             const struct cipc__http_limits *limits, struct cipc__http_request *req,
                             int *status);

/* Prepare `req` for cipc__http_parse_request_more(): a new request head, whose fields
 * will go to `headers` (limits->max_headers entries). */
void cipc__http_request_init(struct cipc__http_request *req, struct cipc__http_header *headers);

/* cipc__http_parse_request() for a head that arrives over several calls, scanning only
 * the bytes that are new since the previous call: a head fed one byte at a time costs
 * O(n) in total instead of O(n^2) (slowloris clients).
 *
 * `req` must have been set up by cipc__http_request_init() and left untouched since the
 * previous call (it holds the resume point), except that req->headers may be changed, and
 * the array it points to may be used by others between calls: it is refilled when the
 * head completes. `buf[0..len)` must hold the bytes of the previous call unchanged plus
 * any new ones, and `limits` must be the same. If `buf` is at a different address than
 * in the previous call, or after any result other than CIPC_EAGAIN, the parse starts
 * over from byte 0 (correct, only slower): so growing the buffer by doubling keeps the
 * total cost linear. Results and statuses are exactly those of cipc__http_parse_request()
 * on the same bytes. For the next request on the connection, call
 * cipc__http_request_init() again. */
int cipc__http_parse_request_more(const char *buf, size_t len,
                                  const struct cipc__http_limits *limits,
                                  struct cipc__http_request *req, int *status);

/* Limits of the chunked decoder: bytes of a chunk-size line before its CRLF (size and
 * extensions), and bytes of the trailer section (after the last-chunk line, up to and
 * including the final CRLF). Over either is CIPC_EPROTO. */
#define CIPC__HTTP_CHUNKED_MAX_LINE     4096
#define CIPC__HTTP_CHUNKED_MAX_TRAILERS (64 * 1024)

/* Chunked transfer-coding decoder state. Zero it (or cipc__http_chunked_init) per body. */
struct cipc__http_chunked {
    unsigned state;
    uint64_t remaining; /* bytes left in the current chunk */
    size_t line;        /* bytes of the current size line seen (for its limit) */
    size_t trailers;    /* trailer bytes seen (for their limit) */
    unsigned hex;       /* hex digits in the current size */
};

void cipc__http_chunked_init(struct cipc__http_chunked *d);

/* Decode the next part of a chunked body in place (RFC 9112 7.1).
 *
 * Accepted: chunk-size = 1 to 16 HEXDIG (leading zeros count), below 2^63; chunk
 * extensions after it, checked loosely (any field-vchar, SP or HTAB up to the CRLF, so no
 * controls; SP/HTAB between the size and the first ';' but not before the CRLF) and
 * ignored; CRLF after each chunk's data; the last chunk ("0", any number of zeros)
 * followed by trailer fields checked like header fields (token name, ':' at once,
 * field-vchar values, no obs-fold, CRLF) and discarded, then CRLF.
 *
 * On entry buf[0..*len) holds newly received bytes. On return buf[0..*len) holds the
 * decoded body bytes from them (moved down over the framing), in order.
 * Returns CIPC_EAGAIN when the body is not finished (every input byte was consumed),
 * a value >= 0 when the last chunk and trailers ended: the number of input bytes that
 * followed the body (pipelined data), moved to sit right after the decoded bytes, at
 * buf[*len .. *len + returned value), or CIPC_EPROTO for a malformed size line, an
 * overflowing size, a bad chunk terminator, bad trailers or a limit above (answer 400 and
 * close); *len is then the bytes decoded before the error. Errors stick: later calls
 * return CIPC_EPROTO. After the end, a further call returns all its input as pipelined
 * data. *len must not exceed INT_MAX. */
int cipc__http_chunked_decode(struct cipc__http_chunked *d, char *buf, size_t *len);

/* Case-insensitive comparison of a slice with a NUL-terminated lower-case token. */
int cipc__slice_ieq(struct cipc__slice s, const char *lower);

#endif
