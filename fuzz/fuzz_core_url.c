/* fuzz/fuzz_core_url.c -- pairs with src/core/url.c.
 *
 * Parses the input one-shot, in chunks split at offsets taken from the data, and byte by
 * byte, and aborts unless all results are equal. A valid result must also satisfy the
 * grammar's invariants (parts in bounds and in order, delimiters where they belong).
 * Percent-encoding must round-trip, decoding arbitrary bytes must not crash, and query
 * iteration must make progress and terminate. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cipc/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_part(cipc_url_part a, cipc_url_part b)
{
    return a.off == b.off && a.len == b.len;
}

static int same_url(const cipc_url *a, const cipc_url *b)
{
    return same_part(a->scheme, b->scheme) && same_part(a->userinfo, b->userinfo) &&
           same_part(a->host, b->host) && same_part(a->port, b->port) &&
           same_part(a->path, b->path) && same_part(a->query, b->query) &&
           same_part(a->fragment, b->fragment) && a->port_num == b->port_num &&
           a->flags == b->flags;
}

/* Parse s[0..size) in three chunks cut at c1 <= c2 (each chunk in its own allocation so
 * that reading past a chunk is caught by ASan). */
static int parse_chunks(const char *s, size_t size, size_t c1, size_t c2, cipc_url *out)
{
    cipc_url_parser p;
    cipc_url_parser_init(&p);
    size_t cuts[3] = {c1, c2, size};
    size_t from = 0;
    for (int i = 0; i < 3; i++) {
        size_t n = cuts[i] - from;
        char *chunk = malloc(n ? n : 1);
        if (!chunk)
            abort();
        if (n)
            memcpy(chunk, s + from, n);
        (void)cipc_url_parser_feed(&p, chunk, n);
        free(chunk);
        from = cuts[i];
    }
    return cipc_url_parser_finish(&p, out);
}

static int parse_bytes(const char *s, size_t size, cipc_url *out)
{
    cipc_url_parser p;
    cipc_url_parser_init(&p);
    for (size_t i = 0; i < size; i++)
        if (cipc_url_parser_feed(&p, s + i, 1) < 0)
            break;
    return cipc_url_parser_finish(&p, out);
}

static int in_bounds(cipc_url_part part, size_t size)
{
    return part.off <= size && part.len <= size - part.off;
}

static int absent(cipc_url_part part)
{
    return part.off == 0 && part.len == 0;
}

/* Invariants of a successful parse of s[0..size). Aborts if one does not hold. */
static void check_valid(const char *s, size_t size, const cipc_url *u)
{
    const cipc_url_part *parts[] = {&u->scheme, &u->userinfo, &u->host,    &u->port,
                                    &u->path,   &u->query,    &u->fragment};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (!in_bounds(*parts[i], size))
            abort();
    /* Only printable ASCII other than space ever parses. */
    for (size_t i = 0; i < size; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            abort();
    if (u->scheme.off != 0 || u->scheme.len == 0 || s[u->scheme.len] != ':')
        abort();
    unsigned f = u->flags;
    if (f & CIPC_URL_HAS_AUTHORITY) {
        if (u->host.len == 0 || size < u->scheme.len + 3 || s[u->scheme.len + 1] != '/' ||
            s[u->scheme.len + 2] != '/')
            abort();
    } else if (!absent(u->host) || (f & (CIPC_URL_HAS_USERINFO | CIPC_URL_HAS_PORT |
                                         CIPC_URL_HOST_IPV4 | CIPC_URL_HOST_IPV6))) {
        abort();
    }
    if ((f & CIPC_URL_HOST_IPV4) && (f & CIPC_URL_HOST_IPV6))
        abort();
    if (f & CIPC_URL_HAS_USERINFO) {
        if (s[u->userinfo.off + u->userinfo.len] != '@')
            abort();
    } else if (!absent(u->userinfo)) {
        abort();
    }
    if (f & CIPC_URL_HOST_IPV6) {
        if (s[u->host.off - 1] != '[' || s[u->host.off + u->host.len] != ']')
            abort();
    }
    if (f & CIPC_URL_HOST_IPV4) {
        int dots = 0;
        for (size_t i = 0; i < u->host.len; i++) {
            char c = s[u->host.off + i];
            if (c == '.')
                dots++;
            else if (c < '0' || c > '9')
                abort();
        }
        if (dots != 3)
            abort();
    }
    if (f & CIPC_URL_HAS_PORT) {
        uint32_t v = 0;
        if (u->port.len == 0 || s[u->port.off - 1] != ':')
            abort();
        for (size_t i = 0; i < u->port.len; i++) {
            char c = s[u->port.off + i];
            if (c < '0' || c > '9')
                abort();
            v = v > 65535 ? v : v * 10 + (uint32_t)(c - '0');
        }
        if (v != u->port_num)
            abort();
    } else if (!absent(u->port) || u->port_num != 0) {
        abort();
    }
    /* The path ends where the query, the fragment or the input begins. */
    size_t end = size;
    if (f & CIPC_URL_HAS_FRAGMENT) {
        if (u->fragment.off == 0 || s[u->fragment.off - 1] != '#' ||
            u->fragment.off + u->fragment.len != size)
            abort();
        end = u->fragment.off - 1;
    } else if (!absent(u->fragment)) {
        abort();
    }
    if (f & CIPC_URL_HAS_QUERY) {
        if (u->query.off == 0 || s[u->query.off - 1] != '?' || u->query.off + u->query.len != end)
            abort();
        end = u->query.off - 1;
    } else if (!absent(u->query)) {
        abort();
    }
    if (u->path.off + u->path.len != end || u->path.off <= u->scheme.len)
        abort();
    if (u->path.len && (f & CIPC_URL_HAS_AUTHORITY) && s[u->path.off] != '/')
        abort();
}

static void fuzz_parse(const char *s, size_t size, const uint8_t *data)
{
    cipc_url one, split, bytes;
    memset(&one, 0, sizeof one);
    memset(&split, 0, sizeof split);
    memset(&bytes, 0, sizeof bytes);
    int rc = cipc_url_parse(s, size, &one);
    if (rc != 0 && rc != CIPC_EURL)
        abort();
    size_t c1 = size ? data[0] % (size + 1) : 0;
    size_t c2 = size > 1 ? c1 + data[1] % (size - c1 + 1) : c1;
    if (parse_chunks(s, size, c1, c2, &split) != rc || parse_bytes(s, size, &bytes) != rc)
        abort();
    if (rc == 0) {
        if (!same_url(&one, &split) || !same_url(&one, &bytes))
            abort();
        check_valid(s, size, &one);
    }
}

static void fuzz_encoding(const char *s, size_t size, unsigned flags)
{
    cipc_buf enc = CIPC_BUF_INIT, dec = CIPC_BUF_INIT, url = CIPC_BUF_INIT;
    if (cipc_url_encode(s, size, flags, &enc) != 0)
        abort();
    if (cipc_url_decode(enc.data, enc.len, flags, &dec) != 0)
        abort();
    if (dec.len != size || (size && memcmp(dec.data, s, size) != 0))
        abort();
    /* An encoded string is always a valid query. */
    cipc_url u;
    if (cipc_buf_append(&url, "x:/?", 4) != 0 || cipc_buf_append(&url, enc.data, enc.len) != 0)
        abort();
    if (cipc_url_parse(url.data, url.len, &u) != 0 || u.query.len != enc.len)
        abort();
    cipc_buf_free(&enc);
    cipc_buf_free(&dec);
    cipc_buf_free(&url);

    /* Decoding arbitrary bytes: never longer than the input; on error nothing appended. */
    cipc_buf raw = CIPC_BUF_INIT;
    if (cipc_buf_append(&raw, "pre", 3) != 0)
        abort();
    int rc = cipc_url_decode(s, size, flags, &raw);
    if (rc == 0) {
        if (raw.len < 3 || raw.len - 3 > size)
            abort();
    } else if (rc != CIPC_EURL || raw.len != 3 || memcmp(raw.data, "pre", 4) != 0) {
        abort();
    }
    cipc_buf_free(&raw);
}

static void fuzz_query(const char *s, size_t size)
{
    size_t pos = 0, prev = 0, n = 0;
    cipc_url_part k, v;
    while (cipc_url_query_next(s, size, &pos, &k, &v) == 1) {
        if (pos <= prev && n > 0)
            abort();
        if (++n > size || pos > size || !in_bounds(k, size) || !in_bounds(v, size))
            abort();
        if (k.len == 0 && v.off == k.off)
            abort(); /* an empty pair was not skipped */
        if (memchr(s + k.off, '&', k.len) || memchr(s + k.off, '=', k.len) ||
            memchr(s + v.off, '&', v.len))
            abort();
        prev = pos;
    }
    if (cipc_url_query_next(s, size, &pos, &k, &v) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    fuzz_parse(s, size, data);
    fuzz_encoding(s, size, size ? data[size - 1] & 3u : 0);
    fuzz_query(s, size);
    return 0;
}
