/* cipc/url.h -- a strict URL parser (RFC 3986) and percent-encoding.
 *
 * The parser is a pure function over bytes that allocates nothing: results are
 * (offset, length) views into the input. It is also resumable: feed the URL in any
 * number of chunks with cipc_url_parser_feed() and finish with cipc_url_parser_finish();
 * the result is the same as cipc_url_parse() over the concatenation, offsets counted
 * from the first byte fed.
 *
 * Accepted: absolute URIs `scheme ":" ["//" authority] path ["?" query] ["#" fragment]`
 * where authority is `[userinfo "@"] host [":" port]`, host is an IPv6 literal in
 * brackets (RFC 4291 text forms, optionally with an embedded IPv4 tail), an IPv4
 * address, or a registered name. Every character must be allowed by RFC 3986 for its
 * component and every '%' must start a %XX escape; spaces, control characters, bytes
 * >= 0x80, bad escapes, empty or non-numeric ports, ports > 65535 and malformed IPv6
 * literals are rejected with CIPC_EURL. Scheme and host are not case-folded (compare
 * them case-insensitively).
 *
 * Stricter or more precise than RFC 3986 in a few places, as curl and browsers read URLs:
 * a host made only of digits and dots must be a valid dotted quad (01.2.3.4, 1.2.3,
 * 256.1.1.1 and 123 are rejected); an authority must have a non-empty host (so
 * "file:///etc/hosts" is rejected); IPvFuture ("[v1.x]") and IPv6 zone IDs ("%25eth0")
 * are rejected; an empty port ("http://h:/") is rejected, leading zeros are accepted
 * ("0080" is 80). Absent parts are {0, 0}; the path is always set, possibly empty.
 * On error *out is left untouched.
 *
 * Threading: all functions are thread-safe (pure functions of their arguments). */
#ifndef CIPC_URL_H
#define CIPC_URL_H

#include <stddef.h>
#include <stdint.h>

#include "cipc/buf.h"
#include "cipc/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A view into the parsed input: bytes [off, off + len). */
typedef struct cipc_url_part {
    size_t off;
    size_t len;
} cipc_url_part;

enum {
    CIPC_URL_HAS_AUTHORITY = 1u << 0, /* "//" followed the scheme */
    CIPC_URL_HAS_USERINFO = 1u << 1,
    CIPC_URL_HAS_PORT = 1u << 2,
    CIPC_URL_HAS_QUERY = 1u << 3,    /* a '?' was present (the query may be empty) */
    CIPC_URL_HAS_FRAGMENT = 1u << 4, /* a '#' was present (the fragment may be empty) */
    CIPC_URL_HOST_IPV6 = 1u << 5,    /* host is an IP literal; `host` excludes the brackets */
    CIPC_URL_HOST_IPV4 = 1u << 6
};

typedef struct cipc_url {
    cipc_url_part scheme;   /* without the ':' */
    cipc_url_part userinfo; /* without the '@' */
    cipc_url_part host;     /* without brackets for IPv6 */
    cipc_url_part port;     /* the digits */
    cipc_url_part path;     /* may be empty */
    cipc_url_part query;    /* without the '?' */
    cipc_url_part fragment; /* without the '#' */
    uint16_t port_num;      /* the port's value when CIPC_URL_HAS_PORT, else 0 */
    unsigned flags;         /* CIPC_URL_* bits */
} cipc_url;

/* Incremental parser state. Zero it with cipc_url_parser_init(); the fields are private. */
typedef struct cipc_url_parser {
    size_t _pos;
    unsigned _state;
    unsigned _sub;
    unsigned _count;
    uint32_t _acc;
    size_t _mark;
    int _err;
    unsigned _v6[4];
    cipc_url _url;
} cipc_url_parser;

CIPC_API void cipc_url_parser_init(cipc_url_parser *p);

/* Feed the next `len` bytes (a NULL chunk with len > 0 is an error). Returns 0, or CIPC_EURL as
 * soon as no continuation can make the input a valid URL (the error sticks: later calls return it
 * too). */
CIPC_API int cipc_url_parser_feed(cipc_url_parser *p, const char *chunk, size_t len);

/* End of input. Returns 0 and fills *out, or CIPC_EURL. */
CIPC_API int cipc_url_parser_finish(cipc_url_parser *p, cipc_url *out);

/* Parse s[0..len) in one call. Returns 0 and fills *out, or CIPC_EURL. */
CIPC_API int cipc_url_parse(const char *s, size_t len, cipc_url *out);

enum {
    CIPC_URL_ENC_FORM = 1u << 0,      /* application/x-www-form-urlencoded: ' ' <-> '+' */
    CIPC_URL_ENC_KEEP_SLASH = 1u << 1 /* encode: leave '/' as is (for paths) */
};

/* Percent-encode s[0..len) and append to `out`: every byte except RFC 3986 unreserved
 * characters (ALPHA DIGIT - . _ ~) becomes %XX (upper-case hex). Ownership: borrows `s`.
 * Returns 0 or -ENOMEM. */
CIPC_API int cipc_url_encode(const char *s, size_t len, unsigned flags, cipc_buf *out);

/* Decode %XX escapes in s[0..len) and append to `out` (with CIPC_URL_ENC_FORM, '+'
 * becomes ' '). Returns 0, CIPC_EURL for a '%' not followed by two hex digits (nothing
 * is appended then), or -ENOMEM. The result may contain NUL bytes; use out->len. */
CIPC_API int cipc_url_decode(const char *s, size_t len, unsigned flags, cipc_buf *out);

/* Iterate over the `&`-separated pairs of a query string q[0..len). Start with *pos = 0;
 * each call returns 1 and sets the raw (still encoded) key and value views (value.len is
 * 0 and value.off == key.off + key.len when there is no '='), or 0 when done. Empty pairs
 * ("a=1&&b=2") are skipped; "=x" gives an empty key. */
CIPC_API int cipc_url_query_next(const char *q, size_t len, size_t *pos, cipc_url_part *key,
                                 cipc_url_part *value);

#ifdef __cplusplus
}
#endif
#endif
