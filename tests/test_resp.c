/* Proves that the RESP request parser accepts every form Redis 7 accepts and rejects the
 * rest with Redis's error texts at the right byte, gives the same commands, arguments,
 * offsets and errors however its input is split (in two, in three, byte by byte), never
 * changes a result when more bytes arrive, returns views into the data when it can,
 * stops allocating once warmed up, enforces its limits at the exact sizes, and that the
 * reply writers produce exact bytes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "resp/resp.h"

/* --- transcripts ------------------------------------------------------------------ *
 * A run of the parser over some input is written as text: each command as
 * "N[arg|arg]@end;" (N arguments; bytes outside printable ASCII, and '\' '|' ']', as
 * \xHH; end is the absolute offset after the command), an error as "!text@offset;". */

static void put_arg(cipc_buf *t, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e || c == '\\' || c == '|' || c == ']')
            cipc_buf_printf(t, "\\x%02x", c);
        else
            cipc_buf_append(t, &s[i], 1);
    }
}

static void put_cmd(cipc_buf *t, const cipc__resp_parser *p, size_t end)
{
    cipc_buf_printf(t, "%zu[", p->argc);
    for (size_t i = 0; i < p->argc; i++) {
        if (i)
            cipc_buf_append(t, "|", 1);
        put_arg(t, p->argv[i], p->argl[i]);
    }
    cipc_buf_printf(t, "]@%zu;", end);
}

/* Feed in[0..n) cut at cuts[0..ncuts) (ascending), each piece in its own exact-size
 * allocation (so ASan sees any over-read); returns the transcript (free it). */
static char *run_cuts(const char *in, size_t n, const cipc__resp_limits *lim, const size_t *cuts,
                      size_t ncuts)
{
    cipc__resp_parser p;
    cipc__resp_parser_init(&p, lim);
    cipc_buf t = CIPC_BUF_INIT;
    size_t from = 0;
    int dead = 0;
    for (size_t k = 0; k <= ncuts && !dead; k++) {
        size_t to = k < ncuts ? cuts[k] : n;
        size_t len = to - from;
        char *piece = malloc(len ? len : 1);
        CHECK(piece != NULL);
        memcpy(piece, in + from, len);
        size_t off = 0;
        for (;;) {
            size_t used = (size_t)-1;
            int rc = cipc__resp_parse(&p, piece + off, len - off, &used);
            if (rc == 1) {
                CHECK(used > 0 && used <= len - off);
                /* Arguments lie in this piece or in the parser's store. */
                for (size_t i = 0; i < p.argc; i++) {
                    const char *a = p.argv[i];
                    int in_piece = a >= piece && a + p.argl[i] <= piece + off + used;
                    int in_store = p.argl[i] == 0 || (p.store && a >= p.store &&
                                                      a + p.argl[i] <= p.store + p.store_len);
                    CHECK(in_piece || in_store);
                }
                put_cmd(&t, &p, from + off + used);
                off += used;
                if (off == len)
                    break;
            } else if (rc == 0) {
                CHECK_INT(used, ==, len - off);
                break;
            } else {
                CHECK_INT(rc, ==, CIPC_EPROTO);
                CHECK(used < len - off);
                cipc_buf_printf(&t, "!%s@%zu;", p.err, from + off + used);
                /* Final: a later call says the same. */
                size_t u2 = 7;
                CHECK_INT(cipc__resp_parse(&p, "x", 1, &u2), ==, CIPC_EPROTO);
                CHECK_INT(u2, ==, 0);
                dead = 1;
                break;
            }
        }
        free(piece);
        from = to;
    }
    cipc__resp_parser_free(&p);
    if (!t.data)
        cipc_buf_append(&t, "", 0);
    return cipc_buf_steal(&t, NULL);
}

static char *run_one(const char *in, size_t n, const cipc__resp_limits *lim)
{
    return run_cuts(in, n, lim, NULL, 0);
}

/* The transcript of a prefix must be a prefix of the whole input's transcript. */
static int starts_with(const char *s, const char *pre)
{
    return strncmp(s, pre, strlen(pre)) == 0;
}

/* Check one input: its transcript is `want`, and every split gives the same. Inputs of up
 * to 80 bytes are also cut in every pair of places. */
static void check_splits(const char *in, size_t n, const cipc__resp_limits *lim, const char *want,
                         int line)
{
    char *one = run_one(in, n, lim);
    if (strcmp(one, want) != 0) {
        fprintf(stderr, "line %d: input \"%.*s\"\n  got  %s\n  want %s\n", line,
                (int)(n > 200 ? 200 : n), in, one, want);
        abort();
    }
    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    CHECK(cuts != NULL);
    for (size_t c = 0; c <= n; c++) {
        char *two = run_cuts(in, n, lim, &c, 1);
        if (strcmp(two, one) != 0) {
            fprintf(stderr, "line %d: cut at %zu\n  got  %s\n  want %s\n", line, c, two, one);
            abort();
        }
        free(two);
        char *pre = run_one(in, c, lim);
        if (!starts_with(one, pre)) {
            fprintf(stderr, "line %d: prefix %zu gives %s, whole gives %s\n", line, c, pre, one);
            abort();
        }
        free(pre);
    }
    if (n <= 80) {
        for (size_t a = 0; a <= n; a++)
            for (size_t b = a; b <= n; b++) {
                size_t c2[2] = {a, b};
                char *three = run_cuts(in, n, lim, c2, 2);
                if (strcmp(three, one) != 0) {
                    fprintf(stderr, "line %d: cuts %zu,%zu\n  got  %s\n  want %s\n", line, a, b,
                            three, one);
                    abort();
                }
                free(three);
            }
    }
    for (size_t c = 0; c < n; c++)
        cuts[c] = c + 1;
    char *bytes = run_cuts(in, n, lim, cuts, n ? n - 1 : 0);
    if (strcmp(bytes, one) != 0) {
        fprintf(stderr, "line %d: byte by byte\n  got  %s\n  want %s\n", line, bytes, one);
        abort();
    }
    free(bytes);
    free(cuts);
    free(one);
}

#define CASE(in, want)        check_splits(in, sizeof(in) - 1, NULL, want, __LINE__)
#define CASE_LIM(in, l, want) check_splits(in, sizeof(in) - 1, l, want, __LINE__)

#define E_MB    "!Protocol error: invalid multibulk length@"
#define E_BULK  "!Protocol error: invalid bulk length@"
#define E_QUOTE "!Protocol error: unbalanced quotes in request@"

static void test_multibulk(void)
{
    CASE("*1\r\n$4\r\nPING\r\n", "1[PING]@14;");
    CASE("*3\r\n$7\r\nPUBLISH\r\n$4\r\nchan\r\n$5\r\nhello\r\n", "3[PUBLISH|chan|hello]@38;");
    /* Incomplete: no result. */
    CASE("*3\r\n$7\r\nPUBLISH\r\n$4\r\nchan\r\n$5\r\nhell", "");
    CASE("*1\r\n$4\r\nPING\r", "");
    /* Counts <= 0 are skipped. */
    CASE("*0\r\n", "");
    CASE("*-1\r\n", "");
    CASE("*-10\r\n*1\r\n$4\r\nPING\r\n", "1[PING]@20;");
    CASE("*0\r\n*0\r\n*1\r\n$1\r\nx\r\n", "1[x]@19;");
    CASE("*-9223372036854775808\r\n", "");
    /* $0: an empty argument. */
    CASE("*2\r\n$3\r\nGET\r\n$0\r\n\r\n", "2[GET|]@19;");
    CASE("*3\r\n$0\r\n\r\n$0\r\n\r\n$0\r\n\r\n", "3[||]@22;");
    /* Binary arguments: CR, LF, NUL and '*' inside. */
    CASE("*2\r\n$5\r\na\r\n\0b\r\n$4\r\n*1\r\n\r\n", "2[a\\x0d\\x0a\\x00b|*1\\x0d\\x0a]@25;");
    /* Pipelined commands, mixed with inline ones and skipped ones. */
    CASE("*1\r\n$4\r\nPING\r\nPING\r\n*0\r\n\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nQUIT\n",
         "1[PING]@14;1[PING]@20;2[ECHO|hi]@48;1[QUIT]@53;");
    /* A longer argument. */
    CASE("*1\r\n$26\r\nabcdefghijklmnopqrstuvwxyz\r\n", "1[abcdefghijklmnopqrstuvwxyz]@37;");
}

static void test_multibulk_errors(void)
{
    /* Count line: not an integer (string2ll's rules). The error is at the byte after CR. */
    CASE("*x\r\n", E_MB "3;");
    CASE("*\r\n", E_MB "2;");
    CASE("*01\r\n", E_MB "4;");
    CASE("*+1\r\n", E_MB "4;");
    CASE("* 1\r\n", E_MB "4;");
    CASE("*1 \r\n", E_MB "4;");
    CASE("*-0\r\n", E_MB "4;");
    CASE("*-\r\n", E_MB "3;");
    CASE("*1x\r\n", E_MB "4;");
    CASE("*-9223372036854775809\r\n", E_MB "22;");
    CASE("*99999999999999999999\r\n", E_MB "22;");
    CASE("*9223372036854775807\r\n", E_MB "21;");
    CASE("*2000000\r\n", E_MB "9;");
    CASE("*1048577\r\n", E_MB "9;");
    /* CR not followed by LF. */
    CASE("*1\rx$4\r\nPING\r\n", E_MB "3;");
    CASE("*1\r\r\n", E_MB "3;");
    /* Bulk line. */
    CASE("*1\r\n$x\r\n", E_BULK "7;");
    CASE("*1\r\n$-1\r\n", E_BULK "8;");
    CASE("*1\r\n$-0\r\n", E_BULK "8;");
    CASE("*1\r\n$01\r\n", E_BULK "8;");
    CASE("*1\r\n$\r\n", E_BULK "6;");
    CASE("*1\r\n$536870913\r\n", E_BULK "15;");
    CASE("*1\r\n$4\rxPING\r\n", E_BULK "7;");
    /* Not a '$'. */
    CASE("*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", "!Protocol error: expected '$', got 'f'@25;");
    CASE("*1\r\n\r\n", "!Protocol error: expected '$', got ' '@5;");
    CASE("*1\r\n\n\r\n", "!Protocol error: expected '$', got ' '@6;");
    CASE("*1\r\n\0\r\n", "!Protocol error: expected '$', got '@6;");
    CASE("*1\r\n:1\rx", "!Protocol error: expected '$', got ':'@7;");
    /* Bulk data not followed by CRLF: reported at the offending byte. */
    CASE("*1\r\n$4\r\nPINGxx", E_BULK "12;");
    CASE("*1\r\n$4\r\nPING\rx", E_BULK "13;");
    CASE("*1\r\n$4\r\nPING\n\r", E_BULK "12;");
    CASE("*2\r\n$0\r\nx\r\n", E_BULK "8;");
    /* The first error in byte order wins. */
    CASE("*1\r\n$4\r\nPINGxx*x\r\n", E_BULK "12;");
    CASE("*1\r\n$1\r\nx\r\n*1\r\n$1\r\nxy", "1[x]@11;" E_BULK "20;");
}

static void test_inline(void)
{
    CASE("PING\r\n", "1[PING]@6;");
    CASE("PING\n", "1[PING]@5;");
    CASE("PING", "");
    CASE("  set   foo \t bar  \r\n", "3[set|foo|bar]@21;");
    /* Empty lines are skipped. */
    CASE("\r\n", "");
    CASE("\n", "");
    CASE("   \t \r\n\nPING\n", "1[PING]@13;");
    /* Only the CR right before the LF is dropped; others separate arguments. */
    CASE("a\rb\r\n", "2[a|b]@5;");
    CASE("a\r\r\n", "1[a]@4;");
    /* \v and \f separate arguments only between them, not inside an unquoted one. */
    CASE("\va\vb\fc \f d\n", "2[a\\x0bb\\x0cc|d]@11;");
    /* NUL is an ordinary byte. */
    CASE("a\0b c\r\n", "2[a\\x00b|c]@7;");
    /* Quoting, as sdssplitargs(). */
    CASE("set \"foo bar\" baz\r\n", "3[set|foo bar|baz]@19;");
    CASE("\"\\x41\\x4a\\x4b\\x6c\"\n", "1[AJKl]@19;");
    CASE("\"\\x4\"\n", "1[x4]@6;");
    CASE("\"\\xZZ\"\n", "1[xZZ]@7;");
    CASE("\"\\x4g\"\n", "1[x4g]@7;");
    CASE("\"\\xff\\x00\"\n", "1[\\xff\\x00]@11;");
    CASE("\"a\\nb\\r\\t\\b\\a\\\\\\\"c\\q\"\n", "1[a\\x0ab\\x0d\\x09\\x08\\x07\\x5c\"cq]@22;");
    CASE("'it\\'s' 'a\\nb' '\"'\n", "3[it's|a\\x5cnb|\"]@19;");
    CASE("\"\" ''\n", "2[|]@6;");
    CASE("a\"b c\"\n", "1[ab c]@7;");
    CASE("a'b c'\n", "1[ab c]@7;");
    CASE("\"x\" \"y\"\n", "2[x|y]@8;");
    CASE("\"a\"\tb\r\n", "2[a|b]@7;");
    CASE("\"a\"\vb\r\n", "2[a|b]@7;");
    CASE("\"a\"\r\n", "1[a]@5;");
    CASE("\"a\r\nb\"\r\n", E_QUOTE "3;");
    /* Unbalanced: unterminated, or a closing quote followed by a non-space. */
    CASE("\"foo\n", E_QUOTE "4;");
    CASE("'foo\n", E_QUOTE "4;");
    CASE("\"foo\"bar\n", E_QUOTE "8;");
    CASE("'foo'bar\n", E_QUOTE "8;");
    CASE("a\"b c\"d\n", E_QUOTE "7;");
    CASE("\"a\\\"\n", E_QUOTE "4;");
    CASE("\"a\\\n", E_QUOTE "3;");
    CASE("'a\\'\n", E_QUOTE "4;");
    CASE("\"a\"\0\n", E_QUOTE "4;");
    CASE("PING\n\"x\nPING\n", "1[PING]@5;" E_QUOTE "7;");
    /* Inline then multibulk, pipelined. */
    CASE("ECHO \"a b\"\n*1\r\n$1\r\nc\r\n", "2[ECHO|a b]@11;1[c]@22;");
}

/* A big input built at run time. */
static char *repeat(const char *head, char c, size_t n, const char *tail, size_t *len)
{
    size_t h = strlen(head), t = strlen(tail);
    char *s = malloc(h + n + t + 1);
    CHECK(s != NULL);
    memcpy(s, head, h);
    memset(s + h, c, n);
    memcpy(s + h + n, tail, t + 1);
    *len = h + n + t;
    return s;
}

/* Check a long input one-shot, in a few splits and byte by byte (not every split). */
static void check_big(const char *in, size_t n, const cipc__resp_limits *lim, const char *want,
                      int line)
{
    char *one = run_one(in, n, lim);
    if (strcmp(one, want) != 0) {
        fprintf(stderr, "line %d: got %.300s\n want %.300s\n", line, one, want);
        abort();
    }
    size_t pts[] = {0, 1, 2, 3, 5, 100, n / 2, n - 3, n - 2, n - 1, n};
    for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++) {
        if (pts[i] > n)
            continue;
        char *two = run_cuts(in, n, lim, &pts[i], 1);
        if (strcmp(two, one) != 0) {
            fprintf(stderr, "line %d: cut %zu: got %.300s\n", line, pts[i], two);
            abort();
        }
        free(two);
    }
    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    CHECK(cuts != NULL);
    for (size_t c = 0; c < n; c++)
        cuts[c] = c + 1;
    char *bytes = run_cuts(in, n, lim, cuts, n ? n - 1 : 0);
    CHECK_STR(bytes, one);
    free(bytes);
    free(cuts);
    free(one);
}

static void test_limits(void)
{
    char want[512];
    size_t n;
    char *s;

    /* '*' line: the CR may be at index 65536 (counting the '*'), not later. */
    s = repeat("*", '1', 65535, "", &n);
    check_big(s, n, NULL, "", __LINE__);
    free(s);
    s = repeat("*", '1', 65535, "\r\n", &n);
    snprintf(want, sizeof want, E_MB "%zu;", n - 1);
    check_big(s, n, NULL, want, __LINE__);
    free(s);
    s = repeat("*", '1', 65536, "", &n);
    check_big(s, n, NULL, "!Protocol error: too big mbulk count string@65536;", __LINE__);
    free(s);
    s = repeat("*", '\0', 70000, "\r\n", &n);
    check_big(s, n, NULL, "!Protocol error: too big mbulk count string@65536;", __LINE__);
    free(s);
    /* '$' line: the same, counted from the '$'; a missing '$' is seen only at the CR. */
    s = repeat("*1\r\n$", '1', 65535, "\r\n", &n);
    snprintf(want, sizeof want, E_BULK "%zu;", n - 1);
    check_big(s, n, NULL, want, __LINE__);
    free(s);
    s = repeat("*1\r\n$", '1', 65536, "\r\n", &n);
    check_big(s, n, NULL, "!Protocol error: too big bulk count string@65540;", __LINE__);
    free(s);
    s = repeat("*1\r\nX", '1', 65536, "\r\n", &n);
    check_big(s, n, NULL, "!Protocol error: too big bulk count string@65540;", __LINE__);
    free(s);
    /* Inline: up to max_inline bytes before the LF (65536 by default). */
    s = repeat("", 'a', 65536, "\n", &n);
    {
        char *one = run_one(s, n, NULL);
        CHECK(strncmp(one, "1[aaaa", 6) == 0);
        CHECK(strstr(one, "]@65537;") != NULL);
        free(one);
        size_t c = 30000;
        char *two = run_cuts(s, n, NULL, &c, 1);
        char *one2 = run_one(s, n, NULL);
        CHECK_STR(two, one2);
        free(two);
        free(one2);
    }
    free(s);
    s = repeat("", 'a', 65537, "\n", &n);
    check_big(s, n, NULL, "!Protocol error: too big inline request@65536;", __LINE__);
    free(s);
    s = repeat("PING\n", 'a', 65537, "\n", &n);
    check_big(s, n, NULL, "1[PING]@5;!Protocol error: too big inline request@65541;", __LINE__);
    free(s);

    /* Configured limits, at the exact sizes. */
    cipc__resp_limits lim = {.max_bulk = 5, .max_multibulk = 3, .max_inline = 10};
    CASE_LIM("*1\r\n$5\r\nhello\r\n", &lim, "1[hello]@15;");
    CASE_LIM("*1\r\n$6\r\nhello!\r\n", &lim, E_BULK "7;");
    CASE_LIM("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", &lim, "3[a|b|c]@25;");
    CASE_LIM("*4\r\n$1\r\na\r\n", &lim, E_MB "3;");
    CASE_LIM("0123456789\n", &lim, "1[0123456789]@11;");
    CASE_LIM("012345678\r\n", &lim, "1[012345678]@11;");
    CASE_LIM("0123456789\r\n", &lim, "!Protocol error: too big inline request@10;");
    CASE_LIM("01234567890", &lim, "!Protocol error: too big inline request@10;");
    CASE_LIM("0123456789", &lim, "");
    /* The count-string limit does not depend on max_inline. */
    s = repeat("*1\r\n$", '0', 1000, "\r\n", &n);
    snprintf(want, sizeof want, E_BULK "%zu;", n - 1);
    check_big(s, n, &lim, want, __LINE__);
    free(s);
    /* Defaults: 512 MiB bulk, 1 Mi arguments. */
    CASE("*1048576\r\n", "");
    CASE("*1\r\n$536870912\r\n", "");
}

/* Views when a command is whole in the data; the store only for parts split across
 * calls; no allocation once warmed up. */
static void test_zero_copy(void)
{
    static const char cmd[] = "*3\r\n$7\r\nPUBLISH\r\n$4\r\nchan\r\n$5\r\nhello\r\n";
    size_t cl = sizeof cmd - 1;
    enum { N = 64 };
    char *buf = malloc(cl * N);
    CHECK(buf != NULL);
    for (size_t i = 0; i < N; i++)
        memcpy(buf + i * cl, cmd, cl);
    cipc__resp_parser p;
    cipc__resp_parser_init(&p, NULL);
    size_t off = 0, used;
    const char **argv0 = NULL;
    for (size_t i = 0; i < N; i++) {
        CHECK_INT(cipc__resp_parse(&p, buf + off, cl * N - off, &used), ==, 1);
        CHECK_INT(used, ==, cl);
        CHECK_INT(p.argc, ==, 3);
        CHECK(p.argv[0] == buf + off + 8);
        CHECK(p.argv[1] == buf + off + 21);
        CHECK(p.argv[2] == buf + off + 31);
        CHECK_MEM(p.argv[2], p.argl[2], "hello");
        if (i == 0)
            argv0 = p.argv;
        CHECK(p.argv == argv0);
        off += used;
    }
    CHECK(p.store == NULL); /* nothing was ever copied */

    /* Split inside the second argument: the first is copied, the third is a view. */
    CHECK_INT(cipc__resp_parse(&p, cmd, 23, &used), ==, 0);
    CHECK_INT(used, ==, 23);
    CHECK_INT(cipc__resp_parse(&p, cmd + 23, cl - 23, &used), ==, 1);
    CHECK_INT(used, ==, cl - 23);
    CHECK(p.argv[0] >= p.store && p.argv[0] < p.store + p.store_len);
    CHECK(p.argv[1] >= p.store && p.argv[1] < p.store + p.store_len);
    CHECK(p.argv[2] == cmd + 31);
    CHECK_MEM(p.argv[0], p.argl[0], "PUBLISH");
    CHECK_MEM(p.argv[1], p.argl[1], "chan");
    /* Warmed up: the same split again does not reallocate anything. */
    char *store = p.store;
    size_t cap = p.store_cap;
    for (int k = 0; k < 100; k++) {
        for (size_t c = 1; c < cl; c++) {
            CHECK_INT(cipc__resp_parse(&p, cmd, c, &used), ==, 0);
            CHECK_INT(cipc__resp_parse(&p, cmd + c, cl - c, &used), ==, 1);
            CHECK_INT(p.argc, ==, 3);
            CHECK_MEM(p.argv[0], p.argl[0], "PUBLISH");
            CHECK_MEM(p.argv[1], p.argl[1], "chan");
            CHECK_MEM(p.argv[2], p.argl[2], "hello");
        }
    }
    CHECK(p.store == store && p.store_cap == cap && p.argv == argv0);
    cipc__resp_parser_free(&p);
    cipc__resp_parser_free(&p); /* twice is fine */
    cipc__resp_parser_free(NULL);
    free(buf);

    /* A bulk split across many calls, bigger than the store's first size. */
    cipc__resp_parser_init(&p, NULL);
    size_t big = 100000;
    char *s = malloc(big + 32);
    CHECK(s != NULL);
    int h = snprintf(s, 32, "*2\r\n$%zu\r\n", big);
    for (size_t i = 0; i < big; i++)
        s[h + i] = (char)(i * 7);
    memcpy(s + h + big, "\r\n$1\r\nz\r\n", 9);
    size_t total = (size_t)h + big + 9, at = 0;
    int rc = 0;
    while (at < total) {
        size_t step = total - at < 999 ? total - at : 999;
        rc = cipc__resp_parse(&p, s + at, step, &used);
        CHECK(rc == 0 || rc == 1);
        at += used;
    }
    CHECK_INT(rc, ==, 1);
    CHECK_INT(p.argc, ==, 2);
    CHECK_INT(p.argl[0], ==, big);
    CHECK(memcmp(p.argv[0], s + h, big) == 0);
    CHECK_MEM(p.argv[1], p.argl[1], "z");
    cipc__resp_parser_free(&p);
    free(s);

    /* Re-init after an error. */
    cipc__resp_parser_init(&p, NULL);
    CHECK_INT(cipc__resp_parse(&p, "*x\r\n", 4, &used), ==, CIPC_EPROTO);
    CHECK_INT(used, ==, 3);
    CHECK_STR(p.err, "Protocol error: invalid multibulk length");
    cipc__resp_parser_free(&p);
    cipc__resp_parser_init(&p, NULL);
    CHECK_INT(cipc__resp_parse(&p, "PING\r\n", 6, &used), ==, 1);
    CHECK_INT(cipc__resp_parse(&p, "", 0, &used), ==, 0);
    CHECK_INT(used, ==, 0);
    cipc__resp_parser_free(&p);
}

/* --- writers ---------------------------------------------------------------------- */

#define CHECK_BUF(b, lit)                                                                          \
    do {                                                                                           \
        CHECK_INT((b).len, ==, sizeof(lit) - 1);                                                   \
        CHECK(memcmp((b).data, lit, sizeof(lit) - 1) == 0);                                        \
        CHECK((b).data[(b).len] == '\0');                                                          \
        cipc_buf_reset(&(b));                                                                      \
    } while (0)

static void test_writers(void)
{
    cipc_buf b = CIPC_BUF_INIT;
    CHECK_INT(cipc__resp_simple(&b, "OK"), ==, 0);
    CHECK_BUF(b, "+OK\r\n");
    CHECK_INT(cipc__resp_simple(&b, ""), ==, 0);
    CHECK_BUF(b, "+\r\n");
    CHECK_INT(cipc__resp_error(&b, "ERR bad\r\nthing\n"), ==, 0);
    CHECK_BUF(b, "-ERR bad  thing \r\n");
    CHECK_INT(cipc__resp_errorf(&b, "ERR unknown command '%s', with args: %d", "FOO", 2), ==, 0);
    CHECK_BUF(b, "-ERR unknown command 'FOO', with args: 2\r\n");
    CHECK_INT(cipc__resp_errorf(&b, "ERR %s", "a\rb"), ==, 0);
    CHECK_BUF(b, "-ERR a b\r\n");
    {
        char longmsg[1000];
        memset(longmsg, 'x', sizeof longmsg - 1);
        longmsg[sizeof longmsg - 1] = '\0';
        CHECK_INT(cipc__resp_errorf(&b, "ERR %s\n", longmsg), ==, 0);
        CHECK_INT(b.len, ==, 1 + 4 + 999 + 1 + 2);
        CHECK(memcmp(b.data, "-ERR xxx", 8) == 0);
        CHECK(memcmp(b.data + b.len - 4, "xx \r\n", 4) == 0 ||
              memcmp(b.data + b.len - 3, " \r\n", 3) == 0);
        cipc_buf_reset(&b);
    }
    CHECK_INT(cipc__resp_int(&b, 0), ==, 0);
    CHECK_BUF(b, ":0\r\n");
    CHECK_INT(cipc__resp_int(&b, 1), ==, 0);
    CHECK_BUF(b, ":1\r\n");
    CHECK_INT(cipc__resp_int(&b, -1), ==, 0);
    CHECK_BUF(b, ":-1\r\n");
    CHECK_INT(cipc__resp_int(&b, 1234567890), ==, 0);
    CHECK_BUF(b, ":1234567890\r\n");
    CHECK_INT(cipc__resp_int(&b, INT64_MAX), ==, 0);
    CHECK_BUF(b, ":9223372036854775807\r\n");
    CHECK_INT(cipc__resp_int(&b, INT64_MIN), ==, 0);
    CHECK_BUF(b, ":-9223372036854775808\r\n");
    CHECK_INT(cipc__resp_bulk(&b, "a\r\n\0b", 5), ==, 0);
    CHECK_BUF(b, "$5\r\na\r\n\0b\r\n");
    CHECK_INT(cipc__resp_bulk(&b, NULL, 0), ==, 0);
    CHECK_BUF(b, "$0\r\n\r\n");
    CHECK_INT(cipc__resp_bulk_str(&b, "hello"), ==, 0);
    CHECK_BUF(b, "$5\r\nhello\r\n");
    CHECK_INT(cipc__resp_bulk_str(&b, NULL), ==, 0);
    CHECK_BUF(b, "$-1\r\n");
    CHECK_INT(cipc__resp_null(&b), ==, 0);
    CHECK_BUF(b, "$-1\r\n");
    CHECK_INT(cipc__resp_null_array(&b), ==, 0);
    CHECK_BUF(b, "*-1\r\n");
    CHECK_INT(cipc__resp_array(&b, 0), ==, 0);
    CHECK_BUF(b, "*0\r\n");
    CHECK_INT(cipc__resp_array(&b, 3), ==, 0);
    CHECK_BUF(b, "*3\r\n");
    CHECK_INT(cipc__resp_array(&b, 1000000), ==, 0);
    CHECK_BUF(b, "*1000000\r\n");
    CHECK_INT(cipc__resp_message(&b, "chan", 4, "hello", 5), ==, 0);
    CHECK_BUF(b, "*3\r\n$7\r\nmessage\r\n$4\r\nchan\r\n$5\r\nhello\r\n");
    CHECK_INT(cipc__resp_message(&b, "", 0, "", 0), ==, 0);
    CHECK_BUF(b, "*3\r\n$7\r\nmessage\r\n$0\r\n\r\n$0\r\n\r\n");
    CHECK_INT(cipc__resp_pmessage(&b, "ch*", 3, "chan", 4, "hi", 2), ==, 0);
    CHECK_BUF(b, "*4\r\n$8\r\npmessage\r\n$3\r\nch*\r\n$4\r\nchan\r\n$2\r\nhi\r\n");
    /* Appends after what is there. */
    CHECK_INT(cipc__resp_simple(&b, "A"), ==, 0);
    CHECK_INT(cipc__resp_int(&b, 42), ==, 0);
    CHECK_INT(cipc__resp_bulk(&b, "xy", 2), ==, 0);
    CHECK_BUF(b, "+A\r\n:42\r\n$2\r\nxy\r\n");
    /* A big bulk, and the writer output parses back. */
    size_t big = 70000;
    char *data = malloc(big);
    CHECK(data != NULL);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)i;
    CHECK_INT(cipc__resp_array(&b, 2), ==, 0);
    CHECK_INT(cipc__resp_bulk(&b, data, big), ==, 0);
    CHECK_INT(cipc__resp_bulk(&b, "k", 1), ==, 0);
    cipc__resp_parser p;
    cipc__resp_parser_init(&p, NULL);
    size_t used;
    CHECK_INT(cipc__resp_parse(&p, b.data, b.len, &used), ==, 1);
    CHECK_INT(used, ==, b.len);
    CHECK_INT(p.argl[0], ==, big);
    CHECK(memcmp(p.argv[0], data, big) == 0);
    cipc__resp_parser_free(&p);
    free(data);
    cipc_buf_free(&b);
}

int main(void)
{
    test_multibulk();
    test_multibulk_errors();
    test_inline();
    test_limits();
    test_zero_copy();
    test_writers();
    printf("test_resp: ok\n");
    return 0;
}
