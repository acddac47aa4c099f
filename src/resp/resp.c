/* RESP request parser (multibulk and inline, with Redis 7's rules and error texts) and
 * RESP2 reply writers. See resp.h for the contract.
 *
 * The parser is a state machine over the bytes of one call. Arguments that lie wholly
 * inside the current call's data are returned as views into it; whatever must survive
 * the end of a call (arguments already complete when the data runs out, the part of a
 * bulk or of an inline line seen so far) is copied into p->store, and arguments are
 * then recorded by their offset there (p->argo) until the command completes, because
 * the store may move when it grows. '*' and '$' lines split across calls keep their
 * first bytes in p->line (a longer line cannot be a valid integer anyway). */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp/resp.h"

enum {
    S_START,     /* at the first byte of a command */
    S_MB_LINE,   /* in the '*' line, before its CR */
    S_MB_LF,     /* after the '*' line's CR */
    S_BULK_LINE, /* in a '$' line, before its CR */
    S_BULK_LF,   /* after a '$' line's CR */
    S_BULK,      /* in a bulk's data or its CRLF */
    S_INLINE,    /* in an inline line, before its LF */
    S_DEAD       /* after an error: final */
};

#define COUNT_LINE_MAX 65536u /* PROTO_INLINE_MAX_SIZE, for '*' and '$' lines */
#define NOT_STORED     SIZE_MAX
#define LINE_KEEP      sizeof(((cipc__resp_parser *)0)->line)

void cipc__resp_parser_init(cipc__resp_parser *p, const cipc__resp_limits *lim)
{
    memset(p, 0, sizeof *p);
    if (lim)
        p->lim = *lim;
    if (!p->lim.max_bulk)
        p->lim.max_bulk = CIPC__RESP_DEFAULT_MAX_BULK;
    if (!p->lim.max_multibulk)
        p->lim.max_multibulk = CIPC__RESP_DEFAULT_MAX_MULTIBULK;
    if (!p->lim.max_inline)
        p->lim.max_inline = CIPC__RESP_DEFAULT_MAX_INLINE;
    if (p->lim.max_inline > SIZE_MAX / 2)
        p->lim.max_inline = SIZE_MAX / 2; /* so that max_inline + 1 cannot wrap */
    p->state = S_START;
}

void cipc__resp_parser_free(cipc__resp_parser *p)
{
    if (!p)
        return;
    free(p->argv);
    free(p->argl);
    free(p->argo);
    free(p->store);
    p->argv = NULL;
    p->argl = NULL;
    p->argo = NULL;
    p->store = NULL;
    p->arg_cap = p->argc = p->kept = p->store_len = p->store_cap = 0;
}

/* Parse a Redis integer (string2ll's rules: optional '-', then "0" alone or a digit 1-9
 * followed by digits, at most 20 characters, no overflow). Returns 1 and sets *v, or 0. */
static int parse_ll(const char *s, size_t n, int64_t *v)
{
    if (n == 0 || n >= 21)
        return 0;
    if (n == 1 && s[0] == '0') {
        *v = 0;
        return 1;
    }
    size_t i = 0;
    int neg = 0;
    if (s[0] == '-') {
        neg = 1;
        if (++i == n)
            return 0;
    }
    if (s[i] < '1' || s[i] > '9')
        return 0;
    uint64_t u = (uint64_t)(s[i++] - '0');
    for (; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d > 9)
            return 0;
        if (u > UINT64_MAX / 10 || u * 10 > UINT64_MAX - d)
            return 0;
        u = u * 10 + d;
    }
    if (neg) {
        if (u > (uint64_t)INT64_MAX + 1)
            return 0;
        *v = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
    } else {
        if (u > (uint64_t)INT64_MAX)
            return 0;
        *v = (int64_t)u;
    }
    return 1;
}

/* Make the store hold at least `need` bytes. Returns 0 or -ENOMEM. */
static int store_reserve(cipc__resp_parser *p, size_t need)
{
    if (need <= p->store_cap)
        return 0;
    size_t cap = p->store_cap ? p->store_cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *s = realloc(p->store, cap);
    if (!s)
        return -ENOMEM;
    p->store = s;
    p->store_cap = cap;
    return 0;
}

static int store_append(cipc__resp_parser *p, const char *s, size_t n)
{
    if (n > SIZE_MAX - p->store_len)
        return -ENOMEM;
    if (store_reserve(p, p->store_len + n) < 0)
        return -ENOMEM;
    if (n)
        memcpy(p->store + p->store_len, s, n);
    p->store_len += n;
    return 0;
}

/* Make room for one more argument. Returns 0 or -ENOMEM. */
static int args_grow(cipc__resp_parser *p)
{
    size_t cap = p->arg_cap ? p->arg_cap * 2 : 16;
    const char **v = realloc(p->argv, cap * sizeof *v);
    if (!v)
        return -ENOMEM;
    p->argv = v;
    size_t *l = realloc(p->argl, cap * sizeof *l);
    if (!l)
        return -ENOMEM;
    p->argl = l;
    size_t *o = realloc(p->argo, cap * sizeof *o);
    if (!o)
        return -ENOMEM;
    p->argo = o;
    p->arg_cap = cap;
    return 0;
}

/* Add an argument: a view (s != NULL) or the store bytes at `off`. */
static inline int arg_add(cipc__resp_parser *p, const char *s, size_t off, size_t n)
{
    if (p->argc == p->arg_cap && args_grow(p) < 0)
        return -ENOMEM;
    p->argv[p->argc] = s;
    p->argl[p->argc] = n;
    p->argo[p->argc] = s ? NOT_STORED : off;
    p->argc++;
    return 0;
}

/* Copy every argument that is still a view into the caller's data into the store.
 * Called before a call returns without a complete command, and before a partial bulk is
 * appended to the store (so that the bulk's bytes stay contiguous). */
static int spill(cipc__resp_parser *p)
{
    for (size_t i = p->kept; i < p->argc; i++) {
        if (p->argo[i] != NOT_STORED)
            continue;
        size_t off = p->store_len;
        if (store_append(p, p->argv[i], p->argl[i]) < 0)
            return -ENOMEM;
        p->argo[i] = off;
    }
    p->kept = p->argc;
    return 0;
}

/* Point the stored arguments of a complete command into the store. */
static void fixup(cipc__resp_parser *p)
{
    for (size_t i = 0; i < p->argc; i++)
        if (p->argo[i] != NOT_STORED)
            p->argv[i] = p->store ? p->store + p->argo[i] : ""; /* "": empty, never stored */
}

static int fail(cipc__resp_parser *p, const char *msg, size_t at, size_t *consumed)
{
    size_t n = strlen(msg);
    if (n >= sizeof p->err)
        n = sizeof p->err - 1;
    memcpy(p->err, msg, n);
    p->err[n] = '\0';
    p->state = S_DEAD;
    *consumed = at;
    return CIPC_EPROTO;
}

static int fail_nomem(cipc__resp_parser *p, size_t *consumed)
{
    memcpy(p->err, "out of memory", sizeof "out of memory");
    p->state = S_DEAD;
    *consumed = 0;
    return -ENOMEM;
}

/* Keep the first bytes of a line split across calls. */
static inline void line_keep(cipc__resp_parser *p, const char *s, size_t n)
{
    if (p->got < LINE_KEEP) {
        size_t k = LINE_KEEP - p->got;
        memcpy(p->line + p->got, s, n < k ? n : k);
    }
}

/* --- inline commands -------------------------------------------------------------- */

static inline int is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r'); /* isspace() in the C locale */
}

static inline int hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Split an inline line into arguments as sdssplitargs() does. `line` is a view into the
 * caller's data, or (in_store) the store's first n bytes. Tokens without quotes become
 * views (or store offsets); tokens with quotes are unescaped into the store. Returns 0,
 * 1 for unbalanced quotes, or -ENOMEM. Called once per inline line by
 * cipc__resp_parse(). */
static int split_inline(cipc__resp_parser *p, const char *line, size_t n, int in_store)
{
    size_t i = 0;
    for (;;) {
        while (i < n && is_space((unsigned char)line[i]))
            i++;
        if (i == n)
            return 0;
        size_t ts = i;
        while (i < n) {
            char c = line[i];
            if (c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '"' || c == '\'')
                break;
            i++;
        }
        if (i == n || (line[i] != '"' && line[i] != '\'')) {
            int rc = in_store ? arg_add(p, NULL, ts, i - ts) : arg_add(p, line + ts, 0, i - ts);
            if (rc < 0)
                return rc;
            continue;
        }
        /* A token with quotes: its unescaped bytes are at most the rest of the line. */
        if (store_reserve(p, p->store_len + (n - ts)) < 0)
            return -ENOMEM;
        if (in_store)
            line = p->store;
        size_t off = p->store_len;
        char *out = p->store + off;
        size_t o = 0, j = ts;
        int q = 0; /* 0, '"' or '\'' */
        for (;;) {
            if (q == 0) {
                if (j == n)
                    break;
                char c = line[j];
                if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
                    break;
                if (c == '"' || c == '\'')
                    q = c;
                else
                    out[o++] = c;
                j++;
            } else if (q == '"') {
                if (j == n)
                    return 1;
                char c = line[j];
                if (c == '\\' && j + 3 < n && line[j + 1] == 'x' &&
                    hex_val((unsigned char)line[j + 2]) >= 0 &&
                    hex_val((unsigned char)line[j + 3]) >= 0) {
                    out[o++] = (char)(hex_val((unsigned char)line[j + 2]) * 16 +
                                      hex_val((unsigned char)line[j + 3]));
                    j += 4;
                } else if (c == '\\' && j + 1 < n) {
                    char e = line[j + 1];
                    switch (e) {
                    case 'n':
                        e = '\n';
                        break;
                    case 'r':
                        e = '\r';
                        break;
                    case 't':
                        e = '\t';
                        break;
                    case 'b':
                        e = '\b';
                        break;
                    case 'a':
                        e = '\a';
                        break;
                    default:
                        break;
                    }
                    out[o++] = e;
                    j += 2;
                } else if (c == '"') {
                    if (j + 1 < n && !is_space((unsigned char)line[j + 1]))
                        return 1;
                    j++;
                    break;
                } else {
                    out[o++] = c;
                    j++;
                }
            } else {
                if (j == n)
                    return 1;
                char c = line[j];
                if (c == '\\' && j + 1 < n && line[j + 1] == '\'') {
                    out[o++] = '\'';
                    j += 2;
                } else if (c == '\'') {
                    if (j + 1 < n && !is_space((unsigned char)line[j + 1]))
                        return 1;
                    j++;
                    break;
                } else {
                    out[o++] = c;
                    j++;
                }
            }
        }
        p->store_len += o;
        if (arg_add(p, NULL, off, o) < 0)
            return -ENOMEM;
        i = j;
    }
}

/* --- the parser ------------------------------------------------------------------- */

/* Read a '*' or '$' line (state S_MB_LINE/S_BULK_LINE, then the matching _LF state).
 * Returns 1 when the line is complete, with its bytes (without CR) at *lp (p->line or
 * the data; only the first LINE_KEEP bytes when buffered), its length in *ln and *lf_ok
 * telling whether the byte after the CR is LF; 0 if the data ran out (all consumed);
 * -1 if no CR came within COUNT_LINE_MAX + 1 bytes (*pos is the offending byte). */
static inline int read_count_line(cipc__resp_parser *p, const char *data, size_t len, size_t *pos,
                                  const char **lp, size_t *ln, int *lf_ok)
{
    size_t at = *pos;
    if (p->state == S_MB_LINE || p->state == S_BULK_LINE) {
        size_t avail = len - at, room = COUNT_LINE_MAX + 1 - p->got;
        size_t scan = avail < room ? avail : room;
        const char *cr = memchr(data + at, '\r', scan);
        if (!cr) {
            if (scan == room) {
                *pos = at + room - 1;
                return -1;
            }
            line_keep(p, data + at, scan);
            p->got += scan;
            *pos = len;
            return 0;
        }
        size_t n = (size_t)(cr - (data + at));
        if (p->got == 0 && at + n + 1 < len) {
            *lp = data + at;
            *ln = n;
            *lf_ok = data[at + n + 1] == '\n';
            *pos = at + n + 2;
            return 1;
        }
        line_keep(p, data + at, n);
        p->got += n;
        p->state++; /* S_MB_LINE -> S_MB_LF, S_BULK_LINE -> S_BULK_LF */
        at += n + 1;
        if (at == len) {
            *pos = len;
            return 0;
        }
    }
    *lp = p->line;
    *ln = p->got;
    *lf_ok = data[at] == '\n';
    *pos = at + 1;
    return 1;
}

int cipc__resp_parse(cipc__resp_parser *p, const char *data, size_t len, size_t *consumed)
{
    size_t pos = 0;
    if (len == 0 && p->state != S_DEAD) {
        *consumed = 0; /* no byte, no progress (and nothing new to copy) */
        return 0;
    }
    if (p->state == S_DEAD) {
        *consumed = 0;
        /* fail_nomem() wrote "out of memory"; every protocol error starts with 'P'. */
        return p->err[0] == 'o' ? -ENOMEM : CIPC_EPROTO;
    }
    for (;;) {
        switch (p->state) {
        case S_START:
            p->argc = 0;
            p->kept = 0;
            p->store_len = 0;
            p->got = 0;
            if (pos == len)
                goto need_more;
            p->state = data[pos] == '*' ? S_MB_LINE : S_INLINE;
            continue;

        case S_MB_LINE:
        case S_MB_LF: {
            const char *lp;
            size_t ln;
            int lf_ok;
            int rc = read_count_line(p, data, len, &pos, &lp, &ln, &lf_ok);
            if (rc == 0)
                goto need_more;
            if (rc < 0)
                return fail(p, "Protocol error: too big mbulk count string", pos, consumed);
            int64_t v;
            if (!lf_ok || !parse_ll(lp + 1, ln - 1, &v) ||
                (v > 0 && (uint64_t)v > p->lim.max_multibulk))
                return fail(p, "Protocol error: invalid multibulk length", pos - 1, consumed);
            if (v <= 0) {
                p->state = S_START;
                continue;
            }
            p->count = v;
            p->got = 0;
            p->state = S_BULK_LINE;
            continue;
        }

        case S_BULK_LINE:
        case S_BULK_LF: {
            const char *lp;
            size_t ln;
            int lf_ok;
            int rc = read_count_line(p, data, len, &pos, &lp, &ln, &lf_ok);
            if (rc == 0)
                goto need_more;
            if (rc < 0)
                return fail(p, "Protocol error: too big bulk count string", pos, consumed);
            if (ln == 0 || lp[0] != '$') {
                char msg[64];
                char c = ln == 0 || lp[0] == '\n' ? ' ' : lp[0]; /* ln == 0: the CR */
                /* Redis formats this with %c and then reads it as a C string, so a NUL
                 * ends the message there. */
                memcpy(msg, "Protocol error: expected '$', got '", 35);
                msg[35] = c;
                msg[36] = '\'';
                msg[37] = '\0';
                return fail(p, msg, pos - 1, consumed);
            }
            int64_t v;
            if (!lf_ok || !parse_ll(lp + 1, ln - 1, &v) || v < 0 || (uint64_t)v > p->lim.max_bulk)
                return fail(p, "Protocol error: invalid bulk length", pos - 1, consumed);
            p->bulk_len = v;
            p->got = 0;
            p->state = S_BULK;
        }
            /* fall through */
        case S_BULK: {
            size_t bl = (size_t)p->bulk_len, avail = len - pos;
            if (p->got == 0 && avail >= 2 && avail - 2 >= bl) {
                /* The whole bulk and its CRLF are here: a view. */
                if (data[pos + bl] != '\r')
                    return fail(p, "Protocol error: invalid bulk length", pos + bl, consumed);
                if (data[pos + bl + 1] != '\n')
                    return fail(p, "Protocol error: invalid bulk length", pos + bl + 1, consumed);
                if (arg_add(p, data + pos, 0, bl) < 0)
                    return fail_nomem(p, consumed);
                pos += bl + 2;
            } else {
                /* The data runs out inside this bulk: keep what is here. */
                if (pos == len)
                    goto need_more;
                if (p->got == 0) {
                    if (spill(p) < 0)
                        return fail_nomem(p, consumed);
                    p->cur_off = p->store_len;
                }
                if (p->got < bl) {
                    size_t n = bl - p->got < avail ? bl - p->got : avail;
                    if (store_append(p, data + pos, n) < 0)
                        return fail_nomem(p, consumed);
                    p->got += n;
                    pos += n;
                    if (pos == len)
                        goto need_more;
                }
                if (p->got == bl) {
                    if (data[pos] != '\r')
                        return fail(p, "Protocol error: invalid bulk length", pos, consumed);
                    p->got++;
                    if (++pos == len)
                        goto need_more;
                }
                if (data[pos] != '\n')
                    return fail(p, "Protocol error: invalid bulk length", pos, consumed);
                pos++;
                if (arg_add(p, NULL, p->cur_off, bl) < 0)
                    return fail_nomem(p, consumed);
            }
            p->got = 0;
            if ((int64_t)p->argc < p->count) {
                p->state = S_BULK_LINE;
                continue;
            }
            p->state = S_START;
            fixup(p);
            *consumed = pos;
            return 1;
        }

        case S_INLINE: {
            size_t avail = len - pos, room = p->lim.max_inline + 1 - p->got;
            size_t scan = avail < room ? avail : room;
            const char *lf = memchr(data + pos, '\n', scan);
            if (!lf) {
                if (scan == room)
                    return fail(p, "Protocol error: too big inline request", pos + room - 1,
                                consumed);
                if (store_append(p, data + pos, scan) < 0)
                    return fail_nomem(p, consumed);
                p->got += scan;
                pos = len;
                goto need_more;
            }
            size_t n = (size_t)(lf - (data + pos));
            const char *line = data + pos;
            int in_store = p->got != 0;
            if (in_store) {
                if (store_append(p, data + pos, n) < 0)
                    return fail_nomem(p, consumed);
                line = p->store;
                n = p->store_len;
            }
            pos = (size_t)(lf - data) + 1;
            if (n && line[n - 1] == '\r')
                n--;
            int rc = split_inline(p, line, n, in_store);
            if (rc < 0)
                return fail_nomem(p, consumed);
            if (rc > 0)
                return fail(p, "Protocol error: unbalanced quotes in request", pos - 1, consumed);
            p->state = S_START;
            if (p->argc == 0)
                continue; /* an empty line: no command */
            fixup(p);
            *consumed = pos;
            return 1;
        }

        default:
            *consumed = 0;
            return CIPC_EPROTO;
        }
    }
need_more:
    if (spill(p) < 0)
        return fail_nomem(p, consumed);
    *consumed = len;
    return 0;
}

/* --- replies ---------------------------------------------------------------------- */

/* Write v in decimal at s (room for 20 bytes); returns the length. Used by every writer
 * that emits a number, instead of printf. */
static size_t fmt_u64(char *s, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        s[i] = tmp[n - 1 - i];
    return n;
}

/* Append prefix, the number, CRLF. */
static int write_num(cipc_buf *b, char prefix, int64_t v)
{
    if (cipc_buf_reserve(b, 24) < 0)
        return -ENOMEM;
    char *s = b->data + b->len;
    size_t n = 0;
    s[n++] = prefix;
    uint64_t u = (uint64_t)v;
    if (v < 0) {
        s[n++] = '-';
        u = 0 - u;
    }
    n += fmt_u64(s + n, u);
    s[n++] = '\r';
    s[n++] = '\n';
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

/* Append "$len\r\n" data "\r\n" at s (room checked by the caller); returns bytes. */
static size_t put_bulk(char *s, const void *data, size_t len)
{
    size_t n = 0;
    s[n++] = '$';
    n += fmt_u64(s + n, len);
    s[n++] = '\r';
    s[n++] = '\n';
    if (len)
        memcpy(s + n, data, len);
    n += len;
    s[n++] = '\r';
    s[n++] = '\n';
    return n;
}

#define BULK_OVERHEAD 25 /* '$' + 20 digits + 2 CRLF */

int cipc__resp_simple(cipc_buf *b, const char *s)
{
    size_t n = strlen(s);
    if (n > SIZE_MAX - 3 || cipc_buf_reserve(b, n + 3) < 0)
        return -ENOMEM;
    char *d = b->data + b->len;
    d[0] = '+';
    memcpy(d + 1, s, n);
    d[n + 1] = '\r';
    d[n + 2] = '\n';
    b->len += n + 3;
    b->data[b->len] = '\0';
    return 0;
}

static int write_error(cipc_buf *b, const char *msg, size_t n)
{
    if (n > SIZE_MAX - 3 || cipc_buf_reserve(b, n + 3) < 0)
        return -ENOMEM;
    char *d = b->data + b->len;
    d[0] = '-';
    for (size_t i = 0; i < n; i++) {
        char c = msg[i];
        d[i + 1] = c == '\r' || c == '\n' ? ' ' : c;
    }
    d[n + 1] = '\r';
    d[n + 2] = '\n';
    b->len += n + 3;
    b->data[b->len] = '\0';
    return 0;
}

int cipc__resp_error(cipc_buf *b, const char *msg)
{
    return write_error(b, msg, strlen(msg));
}

int cipc__resp_errorf(cipc_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return write_error(b, "ERR", 3);
    if ((size_t)n < sizeof small)
        return write_error(b, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big)
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = write_error(b, big, (size_t)n);
    free(big);
    return rc;
}

int cipc__resp_int(cipc_buf *b, int64_t v)
{
    return write_num(b, ':', v);
}

int cipc__resp_bulk(cipc_buf *b, const void *data, size_t len)
{
    if (len > SIZE_MAX - BULK_OVERHEAD || cipc_buf_reserve(b, len + BULK_OVERHEAD) < 0)
        return -ENOMEM;
    b->len += put_bulk(b->data + b->len, data, len);
    b->data[b->len] = '\0';
    return 0;
}

int cipc__resp_bulk_str(cipc_buf *b, const char *s)
{
    return s ? cipc__resp_bulk(b, s, strlen(s)) : cipc__resp_null(b);
}

int cipc__resp_null(cipc_buf *b)
{
    return cipc_buf_append(b, "$-1\r\n", 5);
}

int cipc__resp_null_array(cipc_buf *b)
{
    return cipc_buf_append(b, "*-1\r\n", 5);
}

int cipc__resp_array(cipc_buf *b, size_t n)
{
    if (cipc_buf_reserve(b, 24) < 0)
        return -ENOMEM;
    char *s = b->data + b->len;
    size_t k = 0;
    s[k++] = '*';
    k += fmt_u64(s + k, n);
    s[k++] = '\r';
    s[k++] = '\n';
    b->len += k;
    b->data[b->len] = '\0';
    return 0;
}

int cipc__resp_message(cipc_buf *b, const void *ch, size_t chlen, const void *msg, size_t msglen)
{
    static const char head[] = "*3\r\n$7\r\nmessage\r\n";
    size_t hn = sizeof head - 1;
    if (chlen > SIZE_MAX / 4 || msglen > SIZE_MAX / 4 ||
        cipc_buf_reserve(b, hn + chlen + msglen + 2 * BULK_OVERHEAD) < 0)
        return -ENOMEM;
    char *s = b->data + b->len;
    memcpy(s, head, hn);
    size_t n = hn;
    n += put_bulk(s + n, ch, chlen);
    n += put_bulk(s + n, msg, msglen);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int cipc__resp_pmessage(cipc_buf *b, const void *pat, size_t patlen, const void *ch, size_t chlen,
                        const void *msg, size_t msglen)
{
    static const char head[] = "*4\r\n$8\r\npmessage\r\n";
    size_t hn = sizeof head - 1;
    if (patlen > SIZE_MAX / 4 || chlen > SIZE_MAX / 4 || msglen > SIZE_MAX / 4 ||
        cipc_buf_reserve(b, hn + patlen + chlen + msglen + 3 * BULK_OVERHEAD) < 0)
        return -ENOMEM;
    char *s = b->data + b->len;
    memcpy(s, head, hn);
    size_t n = hn;
    n += put_bulk(s + n, pat, patlen);
    n += put_bulk(s + n, ch, chlen);
    n += put_bulk(s + n, msg, msglen);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}
