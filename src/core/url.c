/* Strict RFC 3986 URL parser (resumable, allocation-free) and percent-encoding.
 *
 * The parser is a byte-at-a-time state machine: step() takes one byte (or -1 for the end
 * of input) and all state lives in the cipc_url_parser, so the result cannot depend on
 * how the input was split into chunks. Parts of the cipc_url are filled in as soon as
 * their boundaries are known; parts that are absent stay {0, 0}.
 *
 * The authority is the only ambiguous component: in "http://a:b@c" nothing before the
 * '@' says whether "a:b" is a userinfo or a host and port. Until an '@' is seen the
 * parser accepts the union of both grammars (state ST_AUTH) and keeps enough facts to
 * decide at the end of the authority: where the first ':' was, whether everything after
 * it is digits, the port value, and whether the text before it is a valid host.
 *
 * Decision beyond RFC 3986: a host made only of digits and dots must be a valid dotted
 * quad ("01.2.3.4", "1.2.3", "256.1.1.1" and "123" are rejected rather than read as
 * registered names), because other URL parsers read such hosts as IPv4 addresses in
 * octal, short or integer notation, and the two readings must never differ. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "cipc/url.h"

/* Parser states (_state). */
enum {
    ST_SCHEME_START, /* expecting the first letter of the scheme */
    ST_SCHEME,       /* inside the scheme */
    ST_AFTER_SCHEME, /* just after "scheme:" */
    ST_SLASH1,       /* after "scheme:/"; a second '/' starts an authority */
    ST_AUTH,         /* authority, before any '@': userinfo or host[:port] */
    ST_HOST,         /* host after "userinfo@" */
    ST_IPLIT,        /* inside "[...]" */
    ST_AFTER_IPLIT,  /* just after the ']' */
    ST_PORT,         /* port digits after a host that is known to be a host */
    ST_PATH,
    ST_QUERY,
    ST_FRAGMENT,
    ST_DONE /* end of input was accepted (only ever in finish()'s copy) */
};

/* Flag bits (_sub). */
enum {
    F_COLON = 1u << 0,    /* ST_AUTH: a ':' was seen; host.len and port.off are set */
    F_PORT_BAD = 1u << 1, /* ST_AUTH: something other than digits follows the first ':' */
    F_NONNUM = 1u << 2,   /* host so far has a character other than a digit or '.' */
    F_V4_BAD = 1u << 3,   /* host so far is not the prefix of a valid dotted quad */
    F_DCOLON = 1u << 4,   /* IPv6: "::" was seen */
    F_LEAD = 1u << 5,     /* IPv6: the literal started with ':', which must be "::" */
    F_V4TAIL = 1u << 6,   /* IPv6: inside the dotted-quad tail */
    F_NOTDEC = 1u << 7,   /* IPv6: the current group has a hex digit that is not decimal */
    F_ZERO = 1u << 8      /* IPv6: the current group starts with '0' */
};

/* Scratch fields, by meaning. For a host: V_GROUPS counts dots, V_NDIG and V_DEC are the
 * digits and value of the current octet. For an IPv6 literal: V_GROUPS counts the h16
 * groups completed, V_NDIG and V_DEC are the digit count and decimal value of the
 * current group (or of the current octet in the IPv4 tail, whose dots _acc counts),
 * V_COLONS is the number of ':' just read. */
#define V_GROUPS 0
#define V_NDIG   1
#define V_DEC    2
#define V_COLONS 3

static int is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int hex_val(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int is_unreserved(int c)
{
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static int is_sub_delim(int c)
{
    switch (c) {
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
        return 1;
    default:
        return 0;
    }
}

/* pchar without the pct-encoded alternative, which callers handle through '%'. */
static int is_pchar(int c)
{
    return is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '@';
}

/* Add the decimal digit `d` to the octet in V_NDIG/V_DEC. Returns 0, or -1 (state
 * unchanged) if the octet would not be a dec-octet: more than 3 digits, a leading zero,
 * or a value above 255. Called for hosts and for the IPv4 tail of IPv6 literals. */
static int octet_digit(cipc_url_parser *p, unsigned d)
{
    unsigned nd = p->_v6[V_NDIG], v = p->_v6[V_DEC];
    if (nd == 3 || (nd == 1 && v == 0) || v * 10 + d > 255)
        return -1;
    p->_v6[V_NDIG] = nd + 1;
    p->_v6[V_DEC] = v * 10 + d;
    return 0;
}

/* Start a host candidate at offset `at`. Called at the start of the authority and after
 * the '@' that ends a userinfo. */
static void host_reset(cipc_url_parser *p, size_t at)
{
    p->_url.host.off = at;
    p->_url.host.len = 0;
    p->_url.port.off = 0;
    p->_url.port.len = 0;
    p->_sub &= ~(F_COLON | F_PORT_BAD | F_NONNUM | F_V4_BAD);
    p->_v6[V_GROUPS] = p->_v6[V_NDIG] = p->_v6[V_DEC] = 0;
    p->_acc = 0;
}

/* Track one host byte (a reg-name character or '%') for the dotted-quad check. */
static void host_char(cipc_url_parser *p, int c)
{
    if (p->_sub & (F_NONNUM | F_V4_BAD)) {
        if (!is_digit(c) && c != '.')
            p->_sub |= F_NONNUM;
        return;
    }
    if (is_digit(c)) {
        if (octet_digit(p, (unsigned)(c - '0')) < 0)
            p->_sub |= F_V4_BAD;
    } else if (c == '.') {
        if (p->_v6[V_NDIG] == 0 || p->_v6[V_GROUPS] == 3) {
            p->_sub |= F_V4_BAD;
        } else {
            p->_v6[V_GROUPS]++;
            p->_v6[V_NDIG] = p->_v6[V_DEC] = 0;
        }
    } else {
        p->_sub |= F_NONNUM;
    }
}

/* The host candidate ends at offset `end`. Returns 0 and sets host.len (and the IPv4
 * flag), or -1 for an empty host or a numeric host that is not a dotted quad. */
static int host_end(cipc_url_parser *p, size_t end)
{
    p->_url.host.len = end - p->_url.host.off;
    if (p->_url.host.len == 0)
        return -1;
    if (!(p->_sub & F_NONNUM)) {
        if ((p->_sub & F_V4_BAD) || p->_v6[V_GROUPS] != 3 || p->_v6[V_NDIG] == 0)
            return -1;
        p->_url.flags |= CIPC_URL_HOST_IPV4;
    }
    return 0;
}

/* The port digits end at the current position. Returns 0 and records the port, or -1
 * if it is empty, not all digits, or above 65535. */
static int port_end(cipc_url_parser *p)
{
    size_t len = p->_pos - p->_url.port.off;
    if (len == 0 || (p->_sub & F_PORT_BAD) || p->_acc > 65535)
        return -1;
    p->_url.port.len = len;
    p->_url.port_num = (uint16_t)p->_acc;
    p->_url.flags |= CIPC_URL_HAS_PORT;
    return 0;
}

/* The path has ended at the current position with byte `c` ('?', '#', -1 for the end of
 * input, or anything else, which is an error). */
static int path_end(cipc_url_parser *p, int c)
{
    cipc_url *u = &p->_url;
    u->path.len = p->_pos - u->path.off;
    if (c == '?') {
        u->flags |= CIPC_URL_HAS_QUERY;
        u->query.off = p->_pos + 1;
        p->_state = ST_QUERY;
        return 0;
    }
    if (c == '#') {
        u->flags |= CIPC_URL_HAS_FRAGMENT;
        u->fragment.off = p->_pos + 1;
        p->_state = ST_FRAGMENT;
        return 0;
    }
    if (c < 0) {
        p->_state = ST_DONE;
        return 0;
    }
    return -1;
}

/* One byte of a path (the path started at path.off). */
static int path_step(cipc_url_parser *p, int c)
{
    if (c == '%') {
        p->_count = 2;
        return 0;
    }
    if (is_pchar(c) || c == '/')
        return 0;
    return path_end(p, c);
}

/* The authority ends at the current position with `c`, one of '/', '?', '#' or -1.
 * Settles the pending host and port, then starts the path. */
static int authority_end(cipc_url_parser *p, int c)
{
    cipc_url *u = &p->_url;
    switch (p->_state) {
    case ST_AUTH:
        if (p->_sub & F_COLON) {
            if (host_end(p, u->host.off + u->host.len) < 0 || port_end(p) < 0)
                return -1;
        } else if (host_end(p, p->_pos) < 0) {
            return -1;
        }
        break;
    case ST_HOST:
        if (host_end(p, p->_pos) < 0)
            return -1;
        break;
    case ST_PORT:
        if (port_end(p) < 0)
            return -1;
        break;
    default: /* ST_AFTER_IPLIT */
        break;
    }
    u->path.off = p->_pos;
    if (c == '/') {
        p->_state = ST_PATH;
        return 0;
    }
    return path_end(p, c);
}

/* One byte inside an IPv6 literal (after '['). Returns 0, 1 when `c` is the closing ']'
 * of a valid literal, or -1. Follows RFC 3986's IPv6address rule: eight h16 groups, or
 * fewer with exactly one "::", the last two optionally written as a dotted quad. */
static int v6_step(cipc_url_parser *p, int c)
{
    unsigned *v = p->_v6;
    unsigned dcolon = (p->_sub & F_DCOLON) ? 1 : 0;
    if ((p->_sub & F_LEAD) && c != ':')
        return -1;
    if (p->_sub & F_V4TAIL) {
        if (is_digit(c))
            return octet_digit(p, (unsigned)(c - '0'));
        if (c == '.') {
            if (v[V_NDIG] == 0 || p->_acc == 3)
                return -1;
            p->_acc++;
            v[V_NDIG] = v[V_DEC] = 0;
            return 0;
        }
        if (c == ']' && v[V_NDIG] > 0 && p->_acc == 3)
            return 1;
        return -1;
    }
    if (hex_val(c) >= 0) {
        if (v[V_NDIG] == 4)
            return -1;
        if (v[V_NDIG] == 0) {
            p->_sub &= ~(F_NOTDEC | F_ZERO);
            v[V_DEC] = 0;
            if (c == '0')
                p->_sub |= F_ZERO;
        }
        if (is_digit(c))
            v[V_DEC] = v[V_DEC] * 10 + (unsigned)(c - '0');
        else
            p->_sub |= F_NOTDEC;
        v[V_NDIG]++;
        v[V_COLONS] = 0;
        return 0;
    }
    if (c == ':') {
        if (v[V_NDIG] > 0) {
            /* A group ends; at least one more group must follow. */
            v[V_GROUPS]++;
            v[V_NDIG] = 0;
            v[V_COLONS] = 1;
            return v[V_GROUPS] + dcolon > 7 ? -1 : 0;
        }
        if (v[V_COLONS] == 0) {
            /* Only possible right after '['. */
            p->_sub |= F_LEAD;
            v[V_COLONS] = 1;
            return 0;
        }
        if (v[V_COLONS] == 1 && !dcolon) {
            p->_sub = (p->_sub | F_DCOLON) & ~F_LEAD;
            v[V_COLONS] = 2;
            return 0;
        }
        return -1;
    }
    if (c == '.') {
        /* The current group was the first octet of a dotted-quad tail, which stands for
         * two groups and must come last. */
        if (v[V_NDIG] == 0 || v[V_NDIG] > 3 || (p->_sub & F_NOTDEC) ||
            (v[V_NDIG] > 1 && (p->_sub & F_ZERO)) || v[V_DEC] > 255)
            return -1;
        if (dcolon ? v[V_GROUPS] > 5 : v[V_GROUPS] != 6)
            return -1;
        p->_sub |= F_V4TAIL;
        p->_acc = 1;
        v[V_NDIG] = v[V_DEC] = 0;
        return 0;
    }
    if (c == ']') {
        if (v[V_COLONS] == 1)
            return -1;
        unsigned groups = v[V_GROUPS] + (v[V_NDIG] > 0 ? 1 : 0);
        if (dcolon ? groups > 7 : groups != 8)
            return -1;
        return 1;
    }
    return -1;
}

/* One byte of an authority in ST_AUTH or ST_HOST. */
static int host_step(cipc_url_parser *p, int c)
{
    cipc_url *u = &p->_url;
    int undecided = p->_state == ST_AUTH;
    if (c == '[' && p->_pos == u->host.off) {
        u->host.off = p->_pos + 1;
        p->_sub &= ~(F_DCOLON | F_LEAD | F_V4TAIL | F_NOTDEC | F_ZERO);
        memset(p->_v6, 0, sizeof p->_v6);
        p->_acc = 0;
        p->_state = ST_IPLIT;
        return 0;
    }
    if (c == '@') {
        if (!undecided)
            return -1;
        u->userinfo.off = p->_mark;
        u->userinfo.len = p->_pos - p->_mark;
        u->flags |= CIPC_URL_HAS_USERINFO;
        host_reset(p, p->_pos + 1);
        p->_state = ST_HOST;
        return 0;
    }
    if (c == ':') {
        if (!undecided) {
            if (host_end(p, p->_pos) < 0)
                return -1;
            u->port.off = p->_pos + 1;
            p->_acc = 0;
            p->_sub &= ~F_PORT_BAD;
            p->_state = ST_PORT;
        } else if (!(p->_sub & F_COLON)) {
            p->_sub |= F_COLON;
            u->host.len = p->_pos - u->host.off;
            u->port.off = p->_pos + 1;
            p->_acc = 0;
        } else {
            p->_sub |= F_PORT_BAD;
        }
        return 0;
    }
    if (c == '/' || c == '?' || c == '#' || c < 0)
        return authority_end(p, c);
    if (!is_unreserved(c) && !is_sub_delim(c) && c != '%')
        return -1;
    if (c == '%')
        p->_count = 2;
    if (p->_sub & F_COLON) {
        /* Undecided and past the first ':': a port if no '@' follows. Saturate. */
        if (!is_digit(c))
            p->_sub |= F_PORT_BAD;
        else if (p->_acc <= 65535)
            p->_acc = p->_acc * 10 + (uint32_t)(c - '0');
        return 0;
    }
    host_char(p, c);
    return 0;
}

/* Consume one byte `c` at offset p->_pos, or the end of input when c is -1. Returns 0,
 * or -1 when no continuation can make the input a valid URL. */
static int step(cipc_url_parser *p, int c)
{
    cipc_url *u = &p->_url;
    if (p->_count) {
        /* Inside a %XX escape. */
        if (hex_val(c) < 0)
            return -1;
        p->_count--;
        return 0;
    }
    switch (p->_state) {
    case ST_SCHEME_START:
        if (!is_alpha(c))
            return -1;
        p->_state = ST_SCHEME;
        return 0;
    case ST_SCHEME:
        if (is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.')
            return 0;
        if (c != ':')
            return -1;
        u->scheme.len = p->_pos;
        p->_state = ST_AFTER_SCHEME;
        return 0;
    case ST_AFTER_SCHEME:
        u->path.off = p->_pos;
        if (c == '/') {
            p->_state = ST_SLASH1;
            return 0;
        }
        p->_state = ST_PATH;
        return path_step(p, c);
    case ST_SLASH1:
        if (c == '/') {
            u->path.off = 0;
            u->flags |= CIPC_URL_HAS_AUTHORITY;
            p->_mark = p->_pos + 1;
            host_reset(p, p->_pos + 1);
            p->_state = ST_AUTH;
            return 0;
        }
        p->_state = ST_PATH;
        return path_step(p, c);
    case ST_AUTH:
    case ST_HOST:
        return host_step(p, c);
    case ST_IPLIT: {
        int rc = v6_step(p, c);
        if (rc == 1) {
            u->host.len = p->_pos - u->host.off;
            u->flags |= CIPC_URL_HOST_IPV6;
            p->_state = ST_AFTER_IPLIT;
            return 0;
        }
        return rc;
    }
    case ST_AFTER_IPLIT:
        if (c == ':') {
            u->port.off = p->_pos + 1;
            p->_acc = 0;
            p->_sub &= ~F_PORT_BAD;
            p->_state = ST_PORT;
            return 0;
        }
        if (c == '/' || c == '?' || c == '#' || c < 0)
            return authority_end(p, c);
        return -1;
    case ST_PORT:
        if (is_digit(c)) {
            p->_acc = p->_acc * 10 + (uint32_t)(c - '0');
            return p->_acc > 65535 ? -1 : 0;
        }
        if (c == '/' || c == '?' || c == '#' || c < 0)
            return authority_end(p, c);
        return -1;
    case ST_PATH:
        return path_step(p, c);
    case ST_QUERY:
    case ST_FRAGMENT:
        if (c == '%') {
            p->_count = 2;
            return 0;
        }
        if (is_pchar(c) || c == '/' || c == '?')
            return 0;
        if (p->_state == ST_QUERY) {
            u->query.len = p->_pos - u->query.off;
            if (c == '#') {
                u->flags |= CIPC_URL_HAS_FRAGMENT;
                u->fragment.off = p->_pos + 1;
                p->_state = ST_FRAGMENT;
                return 0;
            }
        } else {
            u->fragment.len = p->_pos - u->fragment.off;
        }
        if (c < 0) {
            p->_state = ST_DONE;
            return 0;
        }
        return -1;
    default:
        return -1;
    }
}

void cipc_url_parser_init(cipc_url_parser *p)
{
    memset(p, 0, sizeof *p);
    p->_state = ST_SCHEME_START;
}

int cipc_url_parser_feed(cipc_url_parser *p, const char *chunk, size_t len)
{
    if (p->_err)
        return p->_err;
    if (!chunk && len) {
        p->_err = CIPC_EURL;
        return p->_err;
    }
    for (size_t i = 0; i < len; i++) {
        if (step(p, (unsigned char)chunk[i]) < 0) {
            p->_err = CIPC_EURL;
            return p->_err;
        }
        p->_pos++;
    }
    return 0;
}

int cipc_url_parser_finish(cipc_url_parser *p, cipc_url *out)
{
    if (p->_err)
        return p->_err;
    /* Settle the end of input on a copy: on success the parser itself is unchanged. */
    cipc_url_parser end = *p;
    if (step(&end, -1) < 0) {
        p->_err = CIPC_EURL;
        return p->_err;
    }
    *out = end._url;
    return 0;
}

int cipc_url_parse(const char *s, size_t len, cipc_url *out)
{
    cipc_url_parser p;
    cipc_url_parser_init(&p);
    int rc = cipc_url_parser_feed(&p, s, len);
    if (rc < 0)
        return rc;
    return cipc_url_parser_finish(&p, out);
}

/* --- Percent-encoding ---------------------------------------------------------------- */

static int enc_keep(unsigned char c, unsigned flags)
{
    return is_unreserved(c) || (c == '/' && (flags & CIPC_URL_ENC_KEEP_SLASH)) ||
           (c == ' ' && (flags & CIPC_URL_ENC_FORM));
}

int cipc_url_encode(const char *s, size_t len, unsigned flags, cipc_buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    if (len > (SIZE_MAX - 1) / 3)
        return -ENOMEM;
    size_t need = 0;
    for (size_t i = 0; i < len; i++)
        need += enc_keep((unsigned char)s[i], flags) ? 1 : 3;
    int rc = cipc_buf_reserve(out, need);
    if (rc < 0)
        return rc;
    char *d = out->data + out->len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' && (flags & CIPC_URL_ENC_FORM)) {
            *d++ = '+';
        } else if (enc_keep(c, flags)) {
            *d++ = (char)c;
        } else {
            *d++ = '%';
            *d++ = hex[c >> 4];
            *d++ = hex[c & 15];
        }
    }
    out->len += need;
    out->data[out->len] = '\0';
    return 0;
}

int cipc_url_decode(const char *s, size_t len, unsigned flags, cipc_buf *out)
{
    /* Validate first, so that nothing is appended on error. */
    size_t need = 0;
    for (size_t i = 0; i < len; i++, need++) {
        if (s[i] != '%')
            continue;
        if (len - i < 3 || hex_val((unsigned char)s[i + 1]) < 0 ||
            hex_val((unsigned char)s[i + 2]) < 0)
            return CIPC_EURL;
        i += 2;
    }
    int rc = cipc_buf_reserve(out, need);
    if (rc < 0)
        return rc;
    char *d = out->data + out->len;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            c = (char)(hex_val((unsigned char)s[i + 1]) * 16 + hex_val((unsigned char)s[i + 2]));
            i += 2;
        } else if (c == '+' && (flags & CIPC_URL_ENC_FORM)) {
            c = ' ';
        }
        *d++ = c;
    }
    out->len += need;
    out->data[out->len] = '\0';
    return 0;
}

int cipc_url_query_next(const char *q, size_t len, size_t *pos, cipc_url_part *key,
                        cipc_url_part *value)
{
    size_t i = *pos;
    while (i < len && q[i] == '&')
        i++;
    if (i >= len) {
        if (*pos < len)
            *pos = len;
        return 0;
    }
    size_t start = i;
    while (i < len && q[i] != '&')
        i++;
    const char *eq = memchr(q + start, '=', i - start);
    key->off = start;
    if (eq) {
        key->len = (size_t)(eq - (q + start));
        value->off = key->off + key->len + 1;
        value->len = i - value->off;
    } else {
        key->len = i - start;
        value->off = i;
        value->len = 0;
    }
    *pos = i < len ? i + 1 : i;
    return 1;
}
