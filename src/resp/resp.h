/* src/resp/resp.h -- RESP, the Redis serialization protocol, for the broker: the request
 * parser (pure, resumable at any byte boundary), reply writers, and Redis's glob matcher.
 * Private to cipc.
 *
 * Requests are what a Redis server accepts (RESP2 "multibulk" commands and inline
 * commands), with Redis's rules and Redis's error texts, so that every Redis client and
 * redis-cli/telnet behave with the broker as with Redis 7:
 * - multibulk: '*' count CRLF, then count times '$' len CRLF bytes CRLF. A count <= 0
 *   ("*0", "*-1") is no command: it is skipped. Each element must be a bulk string.
 * - inline: any other first byte. The line ends at LF (a CR before it is dropped); it is
 *   split into arguments as Redis's sdssplitargs() does (blanks separate: space, \t, \r,
 *   \v, \f, though an unquoted argument ends only at space, \t or \r; "double quoted"
 *   with \n \r \t \b \a \\ \" and \xHH escapes, any other \c giving c; 'single quoted'
 *   with \' only; a quote may start inside an argument, as in a"b c"; a closing quote
 *   must be followed by a blank or the end). An empty line (no arguments) is skipped.
 * - errors (the text after "-ERR " that Redis sends, then Redis closes the connection):
 *     "Protocol error: invalid multibulk length"   count not an integer, or > max_multibulk
 *     "Protocol error: invalid bulk length"        length not an integer, < 0 or > max_bulk
 *     "Protocol error: expected '$', got 'X'"      an element not starting with '$' (X is
 *                                                  that byte)
 *     "Protocol error: too big mbulk count string" no CRLF within 64 KiB after '*'
 *     "Protocol error: too big bulk count string"  no CRLF within 64 KiB after '$'
 *     "Protocol error: too big inline request"     no LF within max_inline bytes
 *     "Protocol error: unbalanced quotes in request"
 *   A bulk's data must be followed by CRLF; anything else there is
 *     "Protocol error: invalid bulk length" (Redis does not check the CRLF; we do, since
 *     a client whose lengths are wrong is out of sync and every later command would be
 *     garbage). Likewise the CR that ends a '*' or '$' line must be followed by LF (Redis
 *     skips that byte unseen); anything else is "invalid multibulk length" / "invalid
 *     bulk length" ("expected '$'" first if the '$' is missing).
 *   Lines: a '*' or '$' line may hold at most 65536 bytes before its CR (counting the
 *   '*'/'$'), an inline line at most max_inline bytes before its LF; the error is
 *   reported at the first byte past that. Integers follow Redis's string2ll(): an
 *   optional '-', no '+', no leading zeros, no spaces, at most 20 characters.
 *   A NUL byte is an ordinary byte everywhere (Redis scans its query buffer with
 *   strchr() and so stalls on one; we do not copy that).
 *   The first error in byte order wins, and it is reported as soon as the bytes that
 *   prove it have arrived: a longer prefix of the same input never changes a result.
 *
 * Threading: a parser is used by one thread at a time; the other functions are pure. */
#ifndef CIPC_SRC_RESP_RESP_H
#define CIPC_SRC_RESP_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "cipc/buf.h"
#include "cipc/error.h"

#define CIPC__RESP_DEFAULT_MAX_BULK      (512u * 1024 * 1024) /* proto-max-bulk-len */
#define CIPC__RESP_DEFAULT_MAX_MULTIBULK (1024u * 1024)       /* Redis 6's limit (7: INT_MAX) */
#define CIPC__RESP_DEFAULT_MAX_INLINE    (64u * 1024)         /* PROTO_INLINE_MAX_SIZE */

/* Limits; 0 means the default above. */
typedef struct cipc__resp_limits {
    size_t max_bulk;      /* largest bulk string argument, bytes */
    size_t max_multibulk; /* most arguments in one multibulk command */
    size_t max_inline;    /* longest inline command line, bytes */
} cipc__resp_limits;

/* Parser state. Treat as opaque; zero-initialised is NOT valid: use
 * cipc__resp_parser_init(). */
typedef struct cipc__resp_parser {
    cipc__resp_limits lim;
    int state;            /* internal */
    int64_t count;        /* multibulk: arguments announced */
    int64_t bulk_len;     /* the bulk being read */
    size_t got;           /* bytes of the current line or bulk seen so far */
    size_t argc;          /* arguments of the command being parsed / just parsed */
    size_t arg_cap;
    const char **argv;    /* argument pointers (into the caller's data or into store) */
    size_t *argl;         /* argument lengths */
    size_t *argo;         /* internal: offsets into store while the command is partial */
    char *store;          /* copies of arguments that were split across calls */
    size_t store_len, store_cap;
    size_t cur_off;       /* internal: store offset of the bulk being copied */
    size_t kept;          /* internal: arguments [0, kept) are already in store */
    char line[24];        /* internal: start of a '*'/'$' line split across calls */
    char err[96];         /* after CIPC_EPROTO: Redis's message, e.g. "Protocol error:
                             invalid bulk length" (without "ERR ") */
} cipc__resp_parser;

void cipc__resp_parser_init(cipc__resp_parser *p, const cipc__resp_limits *lim);

/* Free the parser's memory (it may be initialised again afterwards). NULL does nothing. */
void cipc__resp_parser_free(cipc__resp_parser *p);

/* Parse from data[0..len). Returns
 *   1  a command is complete: *consumed is the number of bytes it used (the bytes after
 *      it are the next command: call again with data + *consumed). Its arguments are
 *      p->argv[0 .. p->argc) with lengths p->argl[]; each points into `data` or into the
 *      parser's own storage (for parts that arrived in earlier calls), and is valid until
 *      the next call on p, while data[0..*consumed) stays unchanged. Arguments are not
 *      NUL-terminated.
 *   0  every byte was consumed (*consumed == len) and no command is complete yet: call
 *      again with the bytes that follow (not with these again).
 *   CIPC_EPROTO  the input is not RESP: p->err says why, in Redis's words; *consumed is
 *      the offset of the byte that showed it (for a bad '*'/'$' line: the byte after its
 *      CR; for a bad inline line: its LF; for a missing CRLF after bulk data: the
 *      offending byte; for a line that is too long: its first byte past the limit).
 *      Every later call returns CIPC_EPROTO again with *consumed 0; free the parser
 *      (and init it again to reuse it).
 *   -ENOMEM  likewise final (later calls return -ENOMEM).
 * Commands that are skipped ("*0", empty inline lines) are consumed silently.
 * Memory: the argument arrays and the store grow geometrically and are kept between
 * commands, so a warmed-up parser does not allocate. */
int cipc__resp_parse(cipc__resp_parser *p, const char *data, size_t len, size_t *consumed);

/* --- replies (RESP2): each appends to b and returns 0 or -ENOMEM ----------------------- */

int cipc__resp_simple(cipc_buf *b, const char *s);               /* +s\r\n */
int cipc__resp_error(cipc_buf *b, const char *msg);              /* -msg\r\n ("ERR ..." etc.;
                                                                    CR/LF in msg become spaces) */
int cipc__resp_errorf(cipc_buf *b, const char *fmt, ...)         /* the same, printf-style */
    __attribute__((format(printf, 2, 3)));
int cipc__resp_int(cipc_buf *b, int64_t v);                      /* :v\r\n */
int cipc__resp_bulk(cipc_buf *b, const void *data, size_t len);  /* $len\r\ndata\r\n */
int cipc__resp_bulk_str(cipc_buf *b, const char *s);              /* NULL s: $-1\r\n */
int cipc__resp_null(cipc_buf *b);                                /* $-1\r\n */
int cipc__resp_null_array(cipc_buf *b);                          /* *-1\r\n */
int cipc__resp_array(cipc_buf *b, size_t n);                     /* *n\r\n */

/* The bytes of a whole pub/sub "message" push (*3 $7 message $ch $payload), for brokers
 * that encode one message once and send it to many subscribers. */
int cipc__resp_message(cipc_buf *b, const void *ch, size_t chlen, const void *msg,
                       size_t msglen);
/* "pmessage" (*4 $8 pmessage $pattern $ch $payload). */
int cipc__resp_pmessage(cipc_buf *b, const void *pat, size_t patlen, const void *ch,
                        size_t chlen, const void *msg, size_t msglen);

/* --- Redis glob patterns ---------------------------------------------------------------
 * 1 if str[0..slen) matches pat[0..plen), else 0, exactly as Redis's stringmatchlen()
 * (PSUBSCRIBE, PUBSUB CHANNELS, KEYS): '*' any run (also empty), '?' one byte,
 * "[abc]" "[^abc]" "[a-z]" sets (a range may be reversed, "[z-a]"; '\' escapes inside a
 * set; an unclosed '[' matches up to the end of the pattern as if closed there), '\x'
 * matches x literally; everything else matches itself. nocase: ASCII case-insensitive.
 * Bytes, not characters; embedded NULs allowed. Redis's quirks are kept: an empty
 * string matches no pattern except the empty one (not even "*"); an escaped byte inside
 * a set is compared case-sensitively even with nocase; range ends compare as signed
 * char (as on x86), and with nocase they are lowered after being ordered; in "[a-]" the
 * ']' is the end of the range (so the set is unclosed); a pattern needing more than 1000
 * nested '*' does not match.
 * Bounded work: like Redis 7 (after CVE-2022-36021) a '*' that found no match for the
 * rest of the pattern at any later position makes every enclosing '*' give up, so each
 * (pattern position, string position) pair is tried at most a constant number of times:
 * O(plen * slen) time, and recursion depth is at most 1001 frames (one per '*'). */
int cipc__glob_match(const char *pat, size_t plen, const char *str, size_t slen, int nocase);

#endif
