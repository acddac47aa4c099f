/* Proves that the URL parser accepts and rejects a table of URLs with the expected parts,
 * gives the one-shot result for every split of every input, and that percent-encoding
 * round-trips, rejects bad escapes, and query iteration works. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cipc/url.h"

enum { A = CIPC_URL_HAS_AUTHORITY, V4 = CIPC_URL_HOST_IPV4, V6 = CIPC_URL_HOST_IPV6 };

/* One table row. NULL parts are absent; `flags` holds only A, V4 and V6 (the presence
 * flags are derived from the expected parts). `len` is 0 for strlen(in). */
struct url_case {
    const char *in;
    size_t len;
    int ok;
    const char *scheme, *userinfo, *host, *port, *path, *query, *fragment;
    unsigned port_num;
    unsigned flags;
};

#define BAD(s)                                                                                     \
    {                                                                                              \
        .in = (s), .ok = 0                                                                         \
    }
#define BADN(s)                                                                                    \
    {                                                                                              \
        .in = (s), .len = sizeof(s) - 1, .ok = 0                                                   \
    }

static const struct url_case cases[] = {
    /* Valid: authority forms. */
    {"http://example.com/", 0, 1, "http", NULL, "example.com", NULL, "/", NULL, NULL, 0, A},
    {"http://example.com", 0, 1, "http", NULL, "example.com", NULL, "", NULL, NULL, 0, A},
    {"https://user:pass@example.com:8443/a/b?x=1&y=2#frag", 0, 1, "https", "user:pass",
     "example.com", "8443", "/a/b", "x=1&y=2", "frag", 8443, A},
    {"http://[::1]:8080/p?q#f", 0, 1, "http", NULL, "::1", "8080", "/p", "q", "f", 8080, A | V6},
    {"http://user:pa%20ss@host/", 0, 1, "http", "user:pa%20ss", "host", NULL, "/", NULL, NULL, 0,
     A},
    {"http://127.0.0.1/", 0, 1, "http", NULL, "127.0.0.1", NULL, "/", NULL, NULL, 0, A | V4},
    {"http://0.0.0.0:0/", 0, 1, "http", NULL, "0.0.0.0", "0", "/", NULL, NULL, 0, A | V4},
    {"http://255.255.255.255:65535", 0, 1, "http", NULL, "255.255.255.255", "65535", "", NULL, NULL,
     65535, A | V4},
    {"http://h:65535/", 0, 1, "http", NULL, "h", "65535", "/", NULL, NULL, 65535, A},
    {"http://h:0/", 0, 1, "http", NULL, "h", "0", "/", NULL, NULL, 0, A},
    {"http://h:1/", 0, 1, "http", NULL, "h", "1", "/", NULL, NULL, 1, A},
    {"http://h:80", 0, 1, "http", NULL, "h", "80", "", NULL, NULL, 80, A},
    {"http://h:0080/", 0, 1, "http", NULL, "h", "0080", "/", NULL, NULL, 80, A},
    {"http://h:000000000000000000000080/", 0, 1, "http", NULL, "h", "000000000000000000000080", "/",
     NULL, NULL, 80, A},
    {"http://1.2.3.4:5/", 0, 1, "http", NULL, "1.2.3.4", "5", "/", NULL, NULL, 5, A | V4},
    {"http://0.1.2.3/", 0, 1, "http", NULL, "0.1.2.3", NULL, "/", NULL, NULL, 0, A | V4},
    {"http://10.0.0.255/", 0, 1, "http", NULL, "10.0.0.255", NULL, "/", NULL, NULL, 0, A | V4},
    {"http://1.2.3.4.example/", 0, 1, "http", NULL, "1.2.3.4.example", NULL, "/", NULL, NULL, 0, A},
    {"http://a.b-c_d~e/", 0, 1, "http", NULL, "a.b-c_d~e", NULL, "/", NULL, NULL, 0, A},
    {"http://h.:1/", 0, 1, "http", NULL, "h.", "1", "/", NULL, NULL, 1, A},
    {"http://%41b.c/", 0, 1, "http", NULL, "%41b.c", NULL, "/", NULL, NULL, 0, A},
    {"HTTP://EXAMPLE.COM/", 0, 1, "HTTP", NULL, "EXAMPLE.COM", NULL, "/", NULL, NULL, 0, A},
    {"http://example.com:8080?x", 0, 1, "http", NULL, "example.com", "8080", "", "x", NULL, 8080,
     A},
    {"http://example.com#f", 0, 1, "http", NULL, "example.com", NULL, "", NULL, "f", 0, A},
    {"http://h:8080#", 0, 1, "http", NULL, "h", "8080", "", NULL, "", 8080, A},
    {"http://x.y/~user/", 0, 1, "http", NULL, "x.y", NULL, "/~user/", NULL, NULL, 0, A},
    /* Valid: userinfo. */
    {"http://@h/", 0, 1, "http", "", "h", NULL, "/", NULL, NULL, 0, A},
    {"http://u@h", 0, 1, "http", "u", "h", NULL, "", NULL, NULL, 0, A},
    {"http://a:b:c@h/", 0, 1, "http", "a:b:c", "h", NULL, "/", NULL, NULL, 0, A},
    {"http://u:@h/", 0, 1, "http", "u:", "h", NULL, "/", NULL, NULL, 0, A},
    {"http://:@h/", 0, 1, "http", ":", "h", NULL, "/", NULL, NULL, 0, A},
    {"http://u:80@h:81/", 0, 1, "http", "u:80", "h", "81", "/", NULL, NULL, 81, A},
    {"http://h:99999@x/", 0, 1, "http", "h:99999", "x", NULL, "/", NULL, NULL, 0, A},
    {"http://1.2.3.4@5.6.7.8/", 0, 1, "http", "1.2.3.4", "5.6.7.8", NULL, "/", NULL, NULL, 0,
     A | V4},
    {"http://256@h/", 0, 1, "http", "256", "h", NULL, "/", NULL, NULL, 0, A},
    {"ftp://!$&'()*+,;=@h/", 0, 1, "ftp", "!$&'()*+,;=", "h", NULL, "/", NULL, NULL, 0, A},
    {"http://user@[::1]:1/", 0, 1, "http", "user", "::1", "1", "/", NULL, NULL, 1, A | V6},
    /* Valid: IPv6 literals. */
    {"http://[::]/", 0, 1, "http", NULL, "::", NULL, "/", NULL, NULL, 0, A | V6},
    {"http://[1:2:3:4:5:6:7:8]/", 0, 1, "http", NULL, "1:2:3:4:5:6:7:8", NULL, "/", NULL, NULL, 0,
     A | V6},
    {"http://[::ffff:1.2.3.4]/", 0, 1, "http", NULL, "::ffff:1.2.3.4", NULL, "/", NULL, NULL, 0,
     A | V6},
    {"http://[1::]/", 0, 1, "http", NULL, "1::", NULL, "/", NULL, NULL, 0, A | V6},
    {"http://[1:2:3:4:5:6:7::]/", 0, 1, "http", NULL, "1:2:3:4:5:6:7::", NULL, "/", NULL, NULL, 0,
     A | V6},
    {"http://[::2:3:4:5:6:7:8]/", 0, 1, "http", NULL, "::2:3:4:5:6:7:8", NULL, "/", NULL, NULL, 0,
     A | V6},
    {"http://[1:2:3:4:5:6:1.2.3.4]/", 0, 1, "http", NULL, "1:2:3:4:5:6:1.2.3.4", NULL, "/", NULL,
     NULL, 0, A | V6},
    {"http://[1:2:3:4:5::1.2.3.4]/", 0, 1, "http", NULL, "1:2:3:4:5::1.2.3.4", NULL, "/", NULL,
     NULL, 0, A | V6},
    {"http://[::1:2:3:4:5:1.2.3.4]/", 0, 1, "http", NULL, "::1:2:3:4:5:1.2.3.4", NULL, "/", NULL,
     NULL, 0, A | V6},
    {"http://[::1.2.3.4]/", 0, 1, "http", NULL, "::1.2.3.4", NULL, "/", NULL, NULL, 0, A | V6},
    {"http://[::255.255.255.255]/", 0, 1, "http", NULL, "::255.255.255.255", NULL, "/", NULL, NULL,
     0, A | V6},
    {"http://[fe80::1:2]/", 0, 1, "http", NULL, "fe80::1:2", NULL, "/", NULL, NULL, 0, A | V6},
    {"http://[ABCD:ef01::]/", 0, 1, "http", NULL, "ABCD:ef01::", NULL, "/", NULL, NULL, 0, A | V6},
    {"http://[0:0:0:0:0:0:0:0]/", 0, 1, "http", NULL, "0:0:0:0:0:0:0:0", NULL, "/", NULL, NULL, 0,
     A | V6},
    {"http://[2001:db8:85a3::8a2e:370:7334]/", 0, 1, "http", NULL, "2001:db8:85a3::8a2e:370:7334",
     NULL, "/", NULL, NULL, 0, A | V6},
    {"http://[1::2:3.4.5.6]/", 0, 1, "http", NULL, "1::2:3.4.5.6", NULL, "/", NULL, NULL, 0,
     A | V6},
    {"http://[::1]", 0, 1, "http", NULL, "::1", NULL, "", NULL, NULL, 0, A | V6},
    {"http://[::1]?q", 0, 1, "http", NULL, "::1", NULL, "", "q", NULL, 0, A | V6},
    {"http://[::1]#", 0, 1, "http", NULL, "::1", NULL, "", NULL, "", 0, A | V6},
    /* Valid: paths, queries, fragments. */
    {"http://h?", 0, 1, "http", NULL, "h", NULL, "", "", NULL, 0, A},
    {"http://h#", 0, 1, "http", NULL, "h", NULL, "", NULL, "", 0, A},
    {"http://h/?#", 0, 1, "http", NULL, "h", NULL, "/", "", "", 0, A},
    {"http://h/p?q?r/s#f?g/h", 0, 1, "http", NULL, "h", NULL, "/p", "q?r/s", "f?g/h", 0, A},
    {"http://h/%41%2f%7E", 0, 1, "http", NULL, "h", NULL, "/%41%2f%7E", NULL, NULL, 0, A},
    {"http://h/a;b=c,d!$&'()*+@:", 0, 1, "http", NULL, "h", NULL, "/a;b=c,d!$&'()*+@:", NULL, NULL,
     0, A},
    {"http://h//double", 0, 1, "http", NULL, "h", NULL, "//double", NULL, NULL, 0, A},
    {"http://h/?a=1&b=%20", 0, 1, "http", NULL, "h", NULL, "/", "a=1&b=%20", NULL, 0, A},
    {"s://h/p%25", 0, 1, "s", NULL, "h", NULL, "/p%25", NULL, NULL, 0, A},
    /* Valid: no authority. */
    {"mailto:x@y", 0, 1, "mailto", NULL, NULL, NULL, "x@y", NULL, NULL, 0, 0},
    {"urn:isbn:0451450523", 0, 1, "urn", NULL, NULL, NULL, "isbn:0451450523", NULL, NULL, 0, 0},
    {"urn:a:b?c#d", 0, 1, "urn", NULL, NULL, NULL, "a:b", "c", "d", 0, 0},
    {"tel:+1-816-555-1212", 0, 1, "tel", NULL, NULL, NULL, "+1-816-555-1212", NULL, NULL, 0, 0},
    {"x:", 0, 1, "x", NULL, NULL, NULL, "", NULL, NULL, 0, 0},
    {"http:", 0, 1, "http", NULL, NULL, NULL, "", NULL, NULL, 0, 0},
    {"a+b-c.d:/p", 0, 1, "a+b-c.d", NULL, NULL, NULL, "/p", NULL, NULL, 0, 0},
    {"http:/p", 0, 1, "http", NULL, NULL, NULL, "/p", NULL, NULL, 0, 0},
    {"http:/", 0, 1, "http", NULL, NULL, NULL, "/", NULL, NULL, 0, 0},
    {"http:/p//q", 0, 1, "http", NULL, NULL, NULL, "/p//q", NULL, NULL, 0, 0},
    {"http:p", 0, 1, "http", NULL, NULL, NULL, "p", NULL, NULL, 0, 0},
    {"http:?q", 0, 1, "http", NULL, NULL, NULL, "", "q", NULL, 0, 0},
    {"http:#f", 0, 1, "http", NULL, NULL, NULL, "", NULL, "f", 0, 0},
    {"http:/?#", 0, 1, "http", NULL, NULL, NULL, "/", "", "", 0, 0},

    /* Invalid: scheme. */
    BAD(""),
    BAD("http"),
    BAD(":foo"),
    BAD("1http://h/"),
    BAD("ht tp://h/"),
    BAD("http_x://h"),
    BAD(" http://h/"),
    BAD("-x:y"),
    /* Invalid: authority and host. */
    BAD("http://"),
    BAD("http:///p"),
    BAD("http://?q"),
    BAD("http://#f"),
    BAD("http://user@/"),
    BAD("http://user@"),
    BAD("http://:80/"),
    BAD("http://a@b@c/"),
    BAD("http://user:pass/"),
    BAD("http://us er@h/"),
    BAD("http://u%zz@h/"),
    BAD("http://h%2/"),
    BAD("http://h%"),
    BAD("http://h]/"),
    BAD("http://h[/"),
    BAD("http://h[::1]/"),
    BAD("http:// h/"),
    BAD("http://h\n/"),
    BAD("http://h\xc3\xa9/"),
    BAD("http://h\"/"),
    BAD("http://h{}/"),
    /* Invalid: numeric hosts that are not dotted quads. */
    BAD("http://256.1.1.1/"),
    BAD("http://1.2.3.256/"),
    BAD("http://01.2.3.4/"),
    BAD("http://1.2.3.00/"),
    BAD("http://1.2.3.1234/"),
    BAD("http://1.2.3/"),
    BAD("http://1.2.3.4.5/"),
    BAD("http://1..2.3/"),
    BAD("http://.1.2.3/"),
    BAD("http://1.2.3.4./"),
    BAD("http://123/"),
    BAD("http://u@1.2.3:80/"),
    /* Invalid: ports. */
    BAD("http://h:/"),
    BAD("http://h:"),
    BAD("http://h:?q"),
    BAD("http://h:65536/"),
    BAD("http://h:99999999999/"),
    BAD("http://h:8a/"),
    BAD("http://h:-1/"),
    BAD("http://h:+80/"),
    BAD("http://h:1:2/"),
    BAD("http://h:80:80/"),
    BAD("http://h:8%30/"),
    BAD("http://u@h:/"),
    BAD("http://u@h:65536/"),
    BAD("http://u@h:8a/"),
    BAD("http://u@h:1:2/"),
    BAD("http://[::1]:/"),
    BAD("http://[::1]:65536/"),
    BAD("http://[::1]:x/"),
    /* Invalid: IPv6 literals. */
    BAD("http://[::1"),
    BAD("http://[::1]x/"),
    BAD("http://[::1]@h/"),
    BAD("http://[]/"),
    BAD("http://[:]/"),
    BAD("http://[:::]/"),
    BAD("http://[1:2:3:4:5:6:7:8:9]/"),
    BAD("http://[1::2::3]/"),
    BAD("http://[12345::]/"),
    BAD("http://[:1::]/"),
    BAD("http://[1:]/"),
    BAD("http://[::1:]/"),
    BAD("http://[1:2:3:4:5:6:7]/"),
    BAD("http://[1:2:3:4:5:6:7:8::]/"),
    BAD("http://[::1:2:3:4:5:6:7:8]/"),
    BAD("http://[1:2:3:4:5:6:7::8]/"),
    BAD("http://[::1.2.3.256]/"),
    BAD("http://[::1.2.3]/"),
    BAD("http://[::01.2.3.4]/"),
    BAD("http://[::1.2.3.4.5]/"),
    BAD("http://[::a1.2.3.4]/"),
    BAD("http://[1.2.3.4]/"),
    BAD("http://[1:2:3:4:5:6:7:1.2.3.4]/"),
    BAD("http://[::1:2:3:4:5:6:1.2.3.4]/"),
    BAD("http://[::1.2.3.4:5]/"),
    BAD("http://[::1.2.3.]/"),
    BAD("http://[v1.fe]/"),
    BAD("http://[fe80::1%25eth0]/"),
    BAD("http://[::g]/"),
    BAD("http://[ ::1]/"),
    BAD("http://[[::1]]/"),
    /* Invalid: characters and escapes in path, query, fragment. */
    BAD("http://h/a b"),
    BAD("http://h/ "),
    BAD("http://h/a\tb"),
    BAD("http://h/\x01"),
    BAD("http://h/\x7f"),
    BAD("http://h/\xc3\xa9"),
    BAD("http://h/\xff"),
    BADN("http://h/\0"),
    BADN("http://h/a\0b"),
    BAD("http://h/%"),
    BAD("http://h/%4"),
    BAD("http://h/%4g"),
    BAD("http://h/%g4"),
    BAD("http://h/?%"),
    BAD("http://h/?%1"),
    BAD("http://h/#%1"),
    BAD("http://h/#a#b"),
    BAD("http://h/p\"q"),
    BAD("http://h/<>"),
    BAD("http://h/\\"),
    BAD("http://h/^"),
    BAD("http://h/`"),
    BAD("http://h/{}"),
    BAD("http://h/|"),
    BAD("http://h/[x]"),
    BAD("http://h/?q[]=1"),
    BAD("http://h/#]"),
    BAD("mailto:a b"),
    BAD("x:%"),
    BAD("x:\r\n"),
};

/* The input being tested, printed if a CHECK aborts. */
static char current[1024];
static size_t current_len;

static void on_abort(int sig)
{
    (void)sig;
    ssize_t w = write(STDERR_FILENO, current, current_len);
    (void)w;
}

static void set_current(const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    const char *pre = "while testing URL \"";
    memcpy(current, pre, strlen(pre));
    n = strlen(pre);
    for (size_t i = 0; i < len && n < sizeof current - 16; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            current[n++] = (char)c;
        } else {
            current[n++] = '\\';
            current[n++] = 'x';
            current[n++] = hex[c >> 4];
            current[n++] = hex[c & 15];
        }
    }
    current[n++] = '"';
    current[n++] = '\n';
    current_len = n;
}

static void check_part(const char *s, size_t len, cipc_url_part part, const char *want)
{
    if (!want) {
        CHECK_INT(part.off, ==, 0);
        CHECK_INT(part.len, ==, 0);
        return;
    }
    CHECK(part.off <= len && part.len <= len - part.off);
    CHECK_MEM(s + part.off, part.len, want);
}

static void check_expected(const struct url_case *t, const char *s, size_t len, const cipc_url *u)
{
    unsigned flags = t->flags;
    if (t->userinfo)
        flags |= CIPC_URL_HAS_USERINFO;
    if (t->port)
        flags |= CIPC_URL_HAS_PORT;
    if (t->query)
        flags |= CIPC_URL_HAS_QUERY;
    if (t->fragment)
        flags |= CIPC_URL_HAS_FRAGMENT;
    CHECK_INT(u->flags, ==, flags);
    check_part(s, len, u->scheme, t->scheme);
    check_part(s, len, u->userinfo, t->userinfo);
    check_part(s, len, u->host, t->host);
    check_part(s, len, u->port, t->port);
    check_part(s, len, u->path, t->path);
    check_part(s, len, u->query, t->query);
    check_part(s, len, u->fragment, t->fragment);
    CHECK_INT(u->port_num, ==, t->port_num);
    /* The scheme always starts the input; the path is present even when empty. */
    CHECK_INT(u->scheme.off, ==, 0);
    if (t->host && (t->flags & V6)) {
        CHECK_INT(s[u->host.off - 1], ==, '[');
        CHECK_INT(s[u->host.off + u->host.len], ==, ']');
    }
}

static void check_same_part(cipc_url_part a, cipc_url_part b)
{
    CHECK_INT(a.off, ==, b.off);
    CHECK_INT(a.len, ==, b.len);
}

static void check_same(const cipc_url *a, const cipc_url *b)
{
    check_same_part(a->scheme, b->scheme);
    check_same_part(a->userinfo, b->userinfo);
    check_same_part(a->host, b->host);
    check_same_part(a->port, b->port);
    check_same_part(a->path, b->path);
    check_same_part(a->query, b->query);
    check_same_part(a->fragment, b->fragment);
    CHECK_INT(a->port_num, ==, b->port_num);
    CHECK_INT(a->flags, ==, b->flags);
}

/* Feed s[0..len) from its own exact-size allocation, so that ASan catches any read past
 * `len`. Returns the feed result. */
static int feed_exact(cipc_url_parser *p, const char *s, size_t len)
{
    char *copy = malloc(len ? len : 1);
    CHECK(copy != NULL);
    if (len)
        memcpy(copy, s, len);
    int rc = cipc_url_parser_feed(p, len ? copy : NULL, len);
    free(copy);
    return rc;
}

/* Feed the chunks of s delimited by cuts[0..ncuts) (ascending offsets), then finish.
 * Checks that a valid input never fails a feed and that errors stick. */
static void parse_split(const char *s, size_t len, const size_t *cuts, size_t ncuts, int want_rc,
                        const cipc_url *want)
{
    cipc_url_parser p;
    cipc_url_parser_init(&p);
    int failed = 0;
    size_t from = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        int rc = feed_exact(&p, s + from, to - from);
        if (failed || want_rc == 0)
            CHECK_INT(rc, ==, failed ? CIPC_EURL : 0);
        else
            CHECK(rc == 0 || rc == CIPC_EURL);
        if (rc < 0)
            failed = 1;
        from = to;
    }
    cipc_url u;
    memset(&u, 0xa5, sizeof u);
    int rc = cipc_url_parser_finish(&p, &u);
    CHECK_INT(rc, ==, want_rc);
    if (rc == 0)
        check_same(&u, want);
    /* Errors are sticky: a further feed and finish keep failing. */
    if (rc < 0) {
        CHECK_INT(cipc_url_parser_feed(&p, "/", 1), ==, CIPC_EURL);
        CHECK_INT(cipc_url_parser_finish(&p, &u), ==, CIPC_EURL);
    }
}

/* Parse `s` one-shot, then split at every offset (two chunks and three chunks) and byte by
 * byte with empty feeds in between; every way must give the one-shot result. */
static int check_all_splits(const char *s, size_t len, cipc_url *one)
{
    char *exact = malloc(len ? len : 1);
    CHECK(exact != NULL);
    if (len)
        memcpy(exact, s, len);
    int rc = cipc_url_parse(len ? exact : NULL, len, one);
    free(exact);
    CHECK(rc == 0 || rc == CIPC_EURL);

    for (size_t i = 0; i <= len; i++) {
        size_t cut[2] = {i, 0};
        parse_split(s, len, cut, 1, rc, one);
    }
    for (size_t i = 0; i <= len; i++) {
        for (size_t j = i; j <= len; j++) {
            size_t cut[2] = {i, j};
            parse_split(s, len, cut, 2, rc, one);
        }
    }

    cipc_url_parser p;
    cipc_url_parser_init(&p);
    int failed = 0;
    for (size_t i = 0; i < len; i++) {
        CHECK_INT(cipc_url_parser_feed(&p, s + i, 0), ==, failed ? CIPC_EURL : 0);
        int frc = feed_exact(&p, s + i, 1);
        if (rc == 0)
            CHECK_INT(frc, ==, 0);
        if (failed)
            CHECK_INT(frc, ==, CIPC_EURL);
        if (frc < 0)
            failed = 1;
    }
    CHECK_INT(cipc_url_parser_feed(&p, NULL, 0), ==, failed ? CIPC_EURL : 0);
    cipc_url u;
    CHECK_INT(cipc_url_parser_finish(&p, &u), ==, rc);
    if (rc == 0)
        check_same(&u, one);
    return rc;
}

static void test_table(void)
{
    size_t nvalid = 0, ninvalid = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct url_case *t = &cases[i];
        size_t len = t->len ? t->len : strlen(t->in);
        set_current(t->in, len);
        cipc_url u;
        int rc = check_all_splits(t->in, len, &u);
        if (t->ok) {
            CHECK_INT(rc, ==, 0);
            check_expected(t, t->in, len, &u);
            nvalid++;
        } else {
            CHECK_INT(rc, ==, CIPC_EURL);
            ninvalid++;
        }
    }
    CHECK(nvalid >= 60);
    CHECK(ninvalid >= 60);
    current_len = 0;
}

/* Reference character sets, written out from RFC 3986 independently of the parser. */
static int ref_in(int c, const char *set)
{
    return c != 0 && strchr(set, c) != NULL;
}

#define REF_UNRESERVED "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
#define REF_SUB_DELIMS "!$&'()*+,;="

static int ref_pchar(int c)
{
    return ref_in(c, REF_UNRESERVED REF_SUB_DELIMS ":@");
}

/* Every byte value in each component position: accepted exactly when RFC 3986 allows it
 * there (or when it starts the next component). */
static void test_every_byte(void)
{
    for (int c = 0; c < 256; c++) {
        char s[32];
        cipc_url u;
        int ok;
        size_t n;

        n = (size_t)snprintf(s, sizeof s, "http://h/a%cb", c ? c : '?');
        s[10] = (char)c;
        ok = ref_pchar(c) || c == '/' || c == '?' || c == '#';
        set_current(s, n);
        CHECK_INT(check_all_splits(s, n, &u), ==, ok ? 0 : CIPC_EURL);

        n = (size_t)snprintf(s, sizeof s, "http://h/?a%cb", c ? c : '?');
        s[11] = (char)c;
        ok = ref_pchar(c) || c == '/' || c == '?' || c == '#';
        set_current(s, n);
        CHECK_INT(check_all_splits(s, n, &u), ==, ok ? 0 : CIPC_EURL);

        n = (size_t)snprintf(s, sizeof s, "http://h/#a%cb", c ? c : '?');
        s[11] = (char)c;
        ok = ref_pchar(c) || c == '/' || c == '?';
        set_current(s, n);
        CHECK_INT(check_all_splits(s, n, &u), ==, ok ? 0 : CIPC_EURL);

        /* Userinfo: "http://a<c>b@h/". */
        n = (size_t)snprintf(s, sizeof s, "http://a%cb@h/", c ? c : '?');
        s[8] = (char)c;
        ok = ref_in(c, REF_UNRESERVED REF_SUB_DELIMS ":");
        set_current(s, n);
        /* '/', '?' and '#' end the authority "a", and the rest is a valid path, query or
         * fragment. */
        CHECK_INT(check_all_splits(s, n, &u), ==,
                  ok || c == '/' || c == '?' || c == '#' ? 0 : CIPC_EURL);
        if (ok)
            CHECK_INT(u.flags & CIPC_URL_HAS_USERINFO, !=, 0);

        /* Registered name: "http://a<c>b/" (':' makes "b" a port, which is not numeric;
         * '@' makes "a" a userinfo). */
        n = (size_t)snprintf(s, sizeof s, "http://a%cb/", c ? c : '?');
        s[8] = (char)c;
        ok = ref_in(c, REF_UNRESERVED REF_SUB_DELIMS "@/?#");
        set_current(s, n);
        CHECK_INT(check_all_splits(s, n, &u), ==, ok ? 0 : CIPC_EURL);

        /* Scheme: "a<c>b:x" (':' ends the scheme "a" and leaves the path "b:x"). */
        n = (size_t)snprintf(s, sizeof s, "a%cb:x", c ? c : '?');
        s[1] = (char)c;
        ok = ref_in(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-.:");
        set_current(s, n);
        CHECK_INT(check_all_splits(s, n, &u), ==, ok ? 0 : CIPC_EURL);
    }
    current_len = 0;
}

/* Long inputs: offsets are counted from the first byte fed, whatever the chunking. */
static void test_long(void)
{
    size_t n = 20000;
    char *s = malloc(n + 1);
    CHECK(s != NULL);
    memcpy(s, "http://", 7);
    memset(s + 7, 'h', 5000);
    s[5007] = '/';
    memset(s + 5008, 'p', n - 5008);
    s[15000] = '?';
    s[18000] = '#';
    s[n] = '\0';
    cipc_url u, v;
    CHECK_INT(cipc_url_parse(s, n, &u), ==, 0);
    CHECK_INT(u.host.off, ==, 7);
    CHECK_INT(u.host.len, ==, 5000);
    CHECK_INT(u.path.off, ==, 5007);
    CHECK_INT(u.path.len, ==, 15000 - 5007);
    CHECK_INT(u.query.off, ==, 15001);
    CHECK_INT(u.query.len, ==, 18000 - 15001);
    CHECK_INT(u.fragment.off, ==, 18001);
    CHECK_INT(u.fragment.len, ==, n - 18001);

    cipc_url_parser p;
    cipc_url_parser_init(&p);
    for (size_t i = 0; i < n; i += 7)
        CHECK_INT(cipc_url_parser_feed(&p, s + i, n - i < 7 ? n - i : 7), ==, 0);
    CHECK_INT(cipc_url_parser_finish(&p, &v), ==, 0);
    check_same(&u, &v);
    free(s);
}

/* A result is delivered only by finish; a bad chunk makes every later call fail. */
static void test_feed_api(void)
{
    cipc_url_parser p;
    cipc_url u;

    cipc_url_parser_init(&p);
    CHECK_INT(cipc_url_parser_feed(&p, NULL, 0), ==, 0);
    CHECK_INT(cipc_url_parser_feed(&p, "http://h/ x", 11), ==, CIPC_EURL);
    CHECK_INT(cipc_url_parser_feed(&p, "", 0), ==, CIPC_EURL);
    CHECK_INT(cipc_url_parser_finish(&p, &u), ==, CIPC_EURL);

    /* An error found only at the end of input also sticks. */
    cipc_url_parser_init(&p);
    CHECK_INT(cipc_url_parser_feed(&p, "http://[::1", 11), ==, 0);
    CHECK_INT(cipc_url_parser_finish(&p, &u), ==, CIPC_EURL);
    CHECK_INT(cipc_url_parser_feed(&p, "]/", 2), ==, CIPC_EURL);
    CHECK_INT(cipc_url_parser_finish(&p, &u), ==, CIPC_EURL);

    /* A '%' with one hex digit at the very end. */
    cipc_url_parser_init(&p);
    CHECK_INT(cipc_url_parser_feed(&p, "http://h/%4", 11), ==, 0);
    CHECK_INT(cipc_url_parser_finish(&p, &u), ==, CIPC_EURL);

    /* Errors are reported by the feed that makes the input hopeless, not only at finish. */
    static const char *const hopeless[] = {"1",
                                           "http:/ ",
                                           "http://u@h:65536",
                                           "http://u@h:8a",
                                           "http://[::1]x",
                                           "http://[12345",
                                           "http://a@b@",
                                           "http://h/%zz",
                                           "http://h/#a#"};
    for (size_t i = 0; i < sizeof hopeless / sizeof hopeless[0]; i++) {
        cipc_url_parser_init(&p);
        CHECK_INT(feed_exact(&p, hopeless[i], strlen(hopeless[i])), ==, CIPC_EURL);
    }
    /* ... but not while a continuation can still make the input valid. */
    static const char *const hopeful[] = {
        "h",           "http://user:pass", "http://h:65536", "http://01.2.3.4",
        "http://[::1", "http://h/%4",      "http://1.2.3"};
    for (size_t i = 0; i < sizeof hopeful / sizeof hopeful[0]; i++) {
        cipc_url_parser_init(&p);
        CHECK_INT(feed_exact(&p, hopeful[i], strlen(hopeful[i])), ==, 0);
    }

    /* init resets a parser that has failed. */
    cipc_url_parser_init(&p);
    CHECK_INT(cipc_url_parser_feed(&p, "ws://h:9/x", 10), ==, 0);
    CHECK_INT(cipc_url_parser_finish(&p, &u), ==, 0);
    CHECK_INT(u.port_num, ==, 9);
    CHECK_INT(u.flags, ==, CIPC_URL_HAS_AUTHORITY | CIPC_URL_HAS_PORT);
}

static void check_encode(const char *in, unsigned flags, const char *want)
{
    cipc_buf b = CIPC_BUF_INIT;
    CHECK_INT(cipc_url_encode(in, strlen(in), flags, &b), ==, 0);
    CHECK(b.data != NULL);
    CHECK_MEM(b.data, b.len, want);
    CHECK_INT(b.data[b.len], ==, '\0');
    cipc_buf_free(&b);
}

static void check_decode(const char *in, unsigned flags, const char *want)
{
    cipc_buf b = CIPC_BUF_INIT;
    CHECK_INT(cipc_url_decode(in, strlen(in), flags, &b), ==, 0);
    CHECK(b.data != NULL);
    CHECK_MEM(b.data, b.len, want);
    CHECK_INT(b.data[b.len], ==, '\0');
    cipc_buf_free(&b);
}

static void test_encode(void)
{
    check_encode("", 0, "");
    check_encode("abcXYZ019-._~", 0, "abcXYZ019-._~");
    check_encode("a b/c+d", 0, "a%20b%2Fc%2Bd");
    check_encode("a b/c+d", CIPC_URL_ENC_KEEP_SLASH, "a%20b/c%2Bd");
    check_encode("a b/c+d", CIPC_URL_ENC_FORM, "a+b%2Fc%2Bd");
    check_encode("a b/c+d", CIPC_URL_ENC_FORM | CIPC_URL_ENC_KEEP_SLASH, "a+b/c%2Bd");
    check_encode("\xff\x01\x7f%&=?#:@", 0, "%FF%01%7F%25%26%3D%3F%23%3A%40");
    check_encode("caf\xc3\xa9", 0, "caf%C3%A9");

    /* Appends to what the buffer holds; embedded NUL bytes are encoded too. */
    cipc_buf b = CIPC_BUF_INIT;
    CHECK_INT(cipc_buf_append_str(&b, "k="), ==, 0);
    CHECK_INT(cipc_url_encode("a\0b", 3, 0, &b), ==, 0);
    CHECK_MEM(b.data, b.len, "k=a%00b");
    cipc_buf_free(&b);

    /* Every byte, every flag combination: only unreserved bytes, '%XX' (upper case), and
     * the bytes the flags keep come out, and decoding gives the input back. */
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    for (unsigned flags = 0; flags < 4; flags++) {
        cipc_buf e = CIPC_BUF_INIT, d = CIPC_BUF_INIT;
        CHECK_INT(cipc_url_encode(all, sizeof all, flags, &e), ==, 0);
        for (size_t i = 0; i < e.len; i++) {
            char c = e.data[i];
            if (c == '%') {
                CHECK(i + 2 < e.len);
                CHECK(strchr("0123456789ABCDEF", e.data[i + 1]) != NULL);
                CHECK(strchr("0123456789ABCDEF", e.data[i + 2]) != NULL);
                i += 2;
            } else if (c == '/') {
                CHECK(flags & CIPC_URL_ENC_KEEP_SLASH);
            } else if (c == '+') {
                CHECK(flags & CIPC_URL_ENC_FORM);
            } else {
                CHECK(ref_in(c, REF_UNRESERVED));
            }
        }
        CHECK_INT(cipc_url_decode(e.data, e.len, flags, &d), ==, 0);
        CHECK_INT(d.len, ==, sizeof all);
        CHECK(memcmp(d.data, all, sizeof all) == 0);
        /* An encoded string is always a valid query. */
        cipc_buf url = CIPC_BUF_INIT;
        CHECK_INT(cipc_buf_append_str(&url, "x://h/?"), ==, 0);
        CHECK_INT(cipc_buf_append(&url, e.data, e.len), ==, 0);
        cipc_url u;
        CHECK_INT(cipc_url_parse(url.data, url.len, &u), ==, 0);
        CHECK_INT(u.query.len, ==, e.len);
        cipc_buf_free(&url);
        cipc_buf_free(&e);
        cipc_buf_free(&d);
    }
}

static void test_decode(void)
{
    check_decode("", 0, "");
    check_decode("abc", 0, "abc");
    check_decode("%41%42c", 0, "ABc");
    check_decode("%7e%7E%2f", 0, "~~/");
    check_decode("a+b", 0, "a+b");
    check_decode("a+b", CIPC_URL_ENC_FORM, "a b");
    check_decode("%2B+%20", CIPC_URL_ENC_FORM, "+  ");
    check_decode("raw \xff bytes", 0, "raw \xff bytes");
    check_decode("100%25", 0, "100%");

    /* %00 decodes to a NUL byte that counts in len. */
    cipc_buf b = CIPC_BUF_INIT;
    CHECK_INT(cipc_url_decode("a%00b", 5, 0, &b), ==, 0);
    CHECK_INT(b.len, ==, 3);
    CHECK(memcmp(b.data, "a\0b", 3) == 0);
    cipc_buf_free(&b);

    /* Bad escapes: CIPC_EURL and nothing appended. */
    static const char *const bad[] = {"%",    "%4",  "%4g", "%g4",  "abc%",     "abc%4",
                                      "%%41", "%-1", "a%2", "% 41", "%\xff\xff"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cipc_buf k = CIPC_BUF_INIT;
        CHECK_INT(cipc_buf_append_str(&k, "keep"), ==, 0);
        CHECK_INT(cipc_url_decode(bad[i], strlen(bad[i]), 0, &k), ==, CIPC_EURL);
        CHECK_INT(cipc_url_decode(bad[i], strlen(bad[i]), CIPC_URL_ENC_FORM, &k), ==, CIPC_EURL);
        CHECK_MEM(k.data, k.len, "keep");
        CHECK_INT(k.data[k.len], ==, '\0');
        cipc_buf_free(&k);
    }

    /* The escape check does not look past len: "%4" followed by an unrelated '1'. */
    cipc_buf t = CIPC_BUF_INIT;
    CHECK_INT(cipc_url_decode("%41", 2, 0, &t), ==, CIPC_EURL);
    CHECK_INT(t.len, ==, 0);
    cipc_buf_free(&t);
}

/* Collect the pairs of q as "key=value;" (or "key;" without '=') for easy comparison. */
static void check_query(const char *q, const char *want)
{
    size_t len = strlen(q), pos = 0;
    cipc_url_part k, v;
    cipc_buf b = CIPC_BUF_INIT;
    int n = 0;
    while (cipc_url_query_next(q, len, &pos, &k, &v) == 1) {
        CHECK(n++ <= (int)len);
        CHECK(k.off <= len && k.len <= len - k.off);
        CHECK(v.off <= len && v.len <= len - v.off);
        CHECK_INT(cipc_buf_append(&b, q + k.off, k.len), ==, 0);
        if (v.off == k.off + k.len) {
            /* No '=': an empty value right after the key. */
            CHECK_INT(v.len, ==, 0);
            CHECK(memchr(q + k.off, '=', k.len) == NULL);
            CHECK(k.off + k.len == len || q[k.off + k.len] == '&');
            CHECK_INT(cipc_buf_append_str(&b, ";"), ==, 0);
        } else {
            CHECK_INT(v.off, ==, k.off + k.len + 1);
            CHECK_INT(q[v.off - 1], ==, '=');
            CHECK(memchr(q + k.off, '=', k.len) == NULL);
            CHECK_INT(cipc_buf_append_str(&b, "="), ==, 0);
            CHECK_INT(cipc_buf_append(&b, q + v.off, v.len), ==, 0);
            CHECK_INT(cipc_buf_append_str(&b, ";"), ==, 0);
        }
    }
    /* Done stays done. */
    CHECK_INT(cipc_url_query_next(q, len, &pos, &k, &v), ==, 0);
    CHECK_MEM(b.data ? b.data : "", b.len, want);
    cipc_buf_free(&b);
}

static void test_query_next(void)
{
    check_query("", "");
    check_query("&", "");
    check_query("&&&", "");
    check_query("a=1&b=2", "a=1;b=2;");
    check_query("a=1&&b=2", "a=1;b=2;");
    check_query("&&a&", "a;");
    check_query("a", "a;");
    check_query("a=", "a=;");
    check_query("=x&k=", "=x;k=;");
    check_query("=", "=;");
    check_query("a=b=c&d", "a=b=c;d;");
    check_query("k=%20+v&x", "k=%20+v;x;");

    /* The exact views of a pair without '='. */
    size_t pos = 0;
    cipc_url_part k, v;
    CHECK_INT(cipc_url_query_next("ab&cd=e", 7, &pos, &k, &v), ==, 1);
    CHECK_INT(k.off, ==, 0);
    CHECK_INT(k.len, ==, 2);
    CHECK_INT(v.off, ==, 2);
    CHECK_INT(v.len, ==, 0);
    CHECK_INT(cipc_url_query_next("ab&cd=e", 7, &pos, &k, &v), ==, 1);
    CHECK_INT(k.off, ==, 3);
    CHECK_INT(k.len, ==, 2);
    CHECK_INT(v.off, ==, 6);
    CHECK_INT(v.len, ==, 1);
    CHECK_INT(cipc_url_query_next("ab&cd=e", 7, &pos, &k, &v), ==, 0);

    /* Iterating the query view of a parsed URL. */
    const char *url = "http://h/p?x=1&&y=%41#frag";
    cipc_url u;
    CHECK_INT(cipc_url_parse(url, strlen(url), &u), ==, 0);
    const char *q = url + u.query.off;
    pos = 0;
    CHECK_INT(cipc_url_query_next(q, u.query.len, &pos, &k, &v), ==, 1);
    CHECK_MEM(q + k.off, k.len, "x");
    CHECK_MEM(q + v.off, v.len, "1");
    CHECK_INT(cipc_url_query_next(q, u.query.len, &pos, &k, &v), ==, 1);
    CHECK_MEM(q + k.off, k.len, "y");
    CHECK_MEM(q + v.off, v.len, "%41");
    CHECK_INT(cipc_url_query_next(q, u.query.len, &pos, &k, &v), ==, 0);
}

int main(void)
{
    signal(SIGABRT, on_abort);
    test_table();
    test_every_byte();
    test_long();
    test_feed_api();
    test_encode();
    test_decode();
    test_query_next();
    return 0;
}
