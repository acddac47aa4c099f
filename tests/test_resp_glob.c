/* Proves that cipc__glob_match() gives Redis's stringmatchlen() results for a table of
 * patterns (stars, '?', sets, negated sets, ranges, reversed ranges, escapes, unclosed
 * '[', nocase, embedded NULs and Redis's quirks), that giving up early never changes a
 * result (checked against plain backtracking on random small inputs), that the 1000-star
 * nesting limit sits where Redis puts it, and that pathological patterns finish quickly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "resp/resp.h"

struct glob_case {
    const char *pat, *str;
    int nocase, want;
};

static const struct glob_case cases[] = {
    /* Empty inputs: "*" does not match the empty string (Redis's loop never starts). */
    {"", "", 0, 1},
    {"", "a", 0, 0},
    {"a", "", 0, 0},
    {"*", "", 0, 0},
    {"?", "", 0, 0},
    /* Literals. */
    {"hello", "hello", 0, 1},
    {"hello", "hell", 0, 0},
    {"hell", "hello", 0, 0},
    {"hello", "HELLO", 0, 0},
    {"hello", "HELLO", 1, 1},
    {"HeLLo", "hEllO", 1, 1},
    /* Stars. */
    {"*", "abc", 0, 1},
    {"**", "abc", 0, 1},
    {"a*", "a", 0, 1},
    {"a*", "abc", 0, 1},
    {"a*", "ba", 0, 0},
    {"*c", "abc", 0, 1},
    {"*b", "abc", 0, 0},
    {"*a", "a", 0, 1},
    {"a*c", "ac", 0, 1},
    {"a*c", "abbbc", 0, 1},
    {"a*c", "abbbcd", 0, 0},
    {"a**c", "abc", 0, 1},
    {"a*b*", "ab", 0, 1},
    {"a*b*c", "aXbYbZc", 0, 1},
    {"*.*", "news.tech", 0, 1},
    {"news.*", "news.tech", 0, 1},
    {"news.*", "news", 0, 0},
    {"h*llo", "hllo", 0, 1},
    {"h*llo", "heeeello", 0, 1},
    /* '?'. */
    {"?", "a", 0, 1},
    {"??", "a", 0, 0},
    {"a?c", "abc", 0, 1},
    {"h?llo", "hallo", 0, 1},
    {"?*", "a", 0, 1},
    /* Sets. */
    {"h[ae]llo", "hello", 0, 1},
    {"h[ae]llo", "hallo", 0, 1},
    {"h[ae]llo", "hillo", 0, 0},
    {"h[^e]llo", "hallo", 0, 1},
    {"h[^e]llo", "hello", 0, 0},
    {"h[a-b]llo", "hbllo", 0, 1},
    {"h[a-b]llo", "hcllo", 0, 0},
    {"h[b-a]llo", "hallo", 0, 1}, /* a reversed range */
    {"[z-a]", "m", 0, 1},
    {"[^a-c]", "d", 0, 1},
    {"[^a-c]", "b", 0, 0},
    {"[a]", "A", 1, 1},
    {"[A-Z]", "q", 1, 1},
    {"[a-z]", "Q", 1, 1},
    {"[a-z]", "Q", 0, 0},
    {"[Z-a]", "_", 0, 1}, /* 'Z' (90) to 'a' (97) includes '_' (95) */
    {"[Z-a]", "b", 1, 0}, /* nocase lowers after ordering: 'z'..'a', empty */
    {"[abc]d", "bd", 0, 1},
    {"[]a]", "]", 0, 0}, /* ']' right after '[' closes an empty set */
    {"[]a]", "a", 0, 0},
    {"[^]a]", "xa]", 0, 1},
    {"[a-]", "]", 0, 1}, /* "a-]" is a range; the set is then unclosed */
    {"[a-]", "_", 0, 1},
    {"[a-]", "-", 0, 0},
    {"[a-]", "b", 0, 0},
    /* Escapes. */
    {"\\*", "*", 0, 1},
    {"\\*", "a", 0, 0},
    {"\\?", "?", 0, 1},
    {"\\?", "x", 0, 0},
    {"\\[a]", "[a]", 0, 1},
    {"\\a", "a", 0, 1},
    {"\\", "\\", 0, 1}, /* a trailing backslash is itself */
    {"a\\", "a\\", 0, 1},
    {"a\\", "a", 0, 0},
    {"[\\]]", "]", 0, 1},
    {"[\\^a]", "^", 0, 1},
    {"[\\-]", "-", 0, 1},
    {"[\\a]", "a", 1, 1},
    {"[\\a]", "A", 1, 0}, /* an escaped byte in a set ignores nocase, as in Redis */
    {"[a\\", "\\", 0, 1}, /* unclosed, ending in a backslash */
    /* Unclosed '[': the set runs to the end of the pattern. */
    {"[abc", "a", 0, 1},
    {"[abc", "c", 0, 1},
    {"[abc", "d", 0, 0},
    {"[abc", "ab", 0, 0},
    {"[", "[", 0, 0},
    {"[", "", 0, 0},
    {"[^", "x", 0, 1},
    {"a[", "a[", 0, 0},
    {"*[", "x", 0, 0},
    {"[a-", "a", 0, 1},
    {"[a-", "-", 0, 1},
    /* Ranges compare bytes as signed char (x86). */
    {"[a-\xff]", "A", 0, 1},
    {"[a-\xff]", "b", 0, 0},
    {"[\x80-\xff]", "\x90", 0, 1},
    {"[\x80-\xff]", "a", 0, 0},
    {"\xc3\xa9*", "\xc3\xa9t\xc3\xa9", 0, 1},
    {"\xc3\xa9", "\xc3\x89", 1, 0}, /* ASCII-only case folding */
};

/* Patterns and strings with NUL bytes (explicit lengths). */
static void test_nul(void)
{
    CHECK_INT(cipc__glob_match("a\0*", 3, "a\0bc", 4, 0), ==, 1);
    CHECK_INT(cipc__glob_match("a\0*", 3, "a\1bc", 4, 0), ==, 0);
    CHECK_INT(cipc__glob_match("?", 1, "\0", 1, 0), ==, 1);
    CHECK_INT(cipc__glob_match("[\0]", 3, "\0", 1, 0), ==, 1);
    CHECK_INT(cipc__glob_match("*", 1, "\0\0\0", 3, 0), ==, 1);
    /* A pattern given by length: bytes past plen are not part of it. */
    CHECK_INT(cipc__glob_match("ab*", 2, "abc", 3, 0), ==, 0);
    CHECK_INT(cipc__glob_match("ab*", 2, "ab", 2, 0), ==, 1);
}

/* Cross-check on random small inputs: the give-up rule only prunes. A pattern that starts
 * with stars matches iff the rest matches some suffix of at least one byte (Redis's
 * definition), and each suffix is tried with a fresh matcher, so a wrong give-up shows as
 * a difference. */
static void test_random(void)
{
    static const char pa[] = "ab*?[]^-\\";
    static const char sa[] = "ab-]\\^";
    uint32_t seed = 12345;
    for (int it = 0; it < 200000; it++) {
        char pat[10], str[8];
        seed = seed * 1103515245u + 12345u;
        size_t pl = (seed >> 16) % 9;
        seed = seed * 1103515245u + 12345u;
        size_t sl = (seed >> 16) % 7;
        for (size_t i = 0; i < pl; i++) {
            seed = seed * 1103515245u + 12345u;
            pat[i] = pa[(seed >> 16) % (sizeof pa - 1)];
        }
        for (size_t i = 0; i < sl; i++) {
            seed = seed * 1103515245u + 12345u;
            str[i] = sa[(seed >> 16) % (sizeof sa - 1)];
        }
        int nocase = (int)((seed >> 8) & 1);
        int got = cipc__glob_match(pat, pl, str, sl, nocase);
        CHECK(got == 0 || got == 1);
        if (pl && pat[0] == '*') {
            size_t k = 0;
            while (k < pl && pat[k] == '*')
                k++;
            int any = 0;
            if (k == pl)
                any = sl > 0;
            else
                for (size_t i = 0; i < sl && !any; i++)
                    any = cipc__glob_match(pat + k, pl - k, str + i, sl - i, nocase);
            CHECK_INT(got, ==, any);
        }
        /* Appending the same byte to both never hurts a literal match. */
        if (got && pl < 9 && sl < 7 && memchr(pat, '[', pl) == NULL &&
            memchr(pat, '\\', pl) == NULL) {
            char p2[10], s2[8];
            memcpy(p2, pat, pl);
            memcpy(s2, str, sl);
            p2[pl] = 'z';
            s2[sl] = 'z';
            CHECK_INT(cipc__glob_match(p2, pl + 1, s2, sl + 1, nocase), ==, 1);
        }
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_bounded(void)
{
    /* 1000 nested stars match; 1001 do not (Redis's limit). */
    size_t n = 1001;
    char *pat = malloc(2 * n + 1), *str = malloc(n + 1);
    CHECK(pat && str);
    for (size_t i = 0; i < n; i++) {
        pat[2 * i] = '*';
        pat[2 * i + 1] = 'a';
        str[i] = 'a';
    }
    CHECK_INT(cipc__glob_match(pat, 2000, str, 1000, 0), ==, 1);
    CHECK_INT(cipc__glob_match(pat, 2002, str, 1001, 0), ==, 0);
    free(pat);
    free(str);

    /* Pathological: many stars and a final byte that never matches. */
    double t0 = now_s();
    static const char p1[] = "a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
    size_t sl = 100000;
    char *s = malloc(sl);
    CHECK(s != NULL);
    memset(s, 'a', sl);
    CHECK_INT(cipc__glob_match(p1, sizeof p1 - 1, s, sl, 0), ==, 0);
    CHECK_INT(cipc__glob_match(p1, sizeof p1 - 1, s, sl, 1), ==, 0);
    /* 500 stars against 20000 bytes: O(plen * slen) is 2e7 steps. */
    size_t k = 500;
    char *p2 = malloc(2 * k + 1);
    CHECK(p2 != NULL);
    for (size_t i = 0; i < k; i++) {
        p2[2 * i] = '*';
        p2[2 * i + 1] = 'a';
    }
    p2[2 * k] = 'b';
    CHECK_INT(cipc__glob_match(p2, 2 * k + 1, s, 20000, 0), ==, 0);
    CHECK_INT(cipc__glob_match(p2, 2 * k, s, 20000, 0), ==, 1);
    /* Sets and '?' between the stars. */
    static const char p3[] = "*[a-z]*?*[^b]*?*[a]*?*[a-a]*?*?*?*?*?*?*?*?*?*?*c";
    CHECK_INT(cipc__glob_match(p3, sizeof p3 - 1, s, sl, 0), ==, 0);
    double dt = now_s() - t0;
    printf("pathological patterns: %.3f s\n", dt);
    CHECK(dt < 5.0);
    free(p2);
    free(s);
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct glob_case *c = &cases[i];
        int got = cipc__glob_match(c->pat, strlen(c->pat), c->str, strlen(c->str), c->nocase);
        if (got != c->want) {
            fprintf(stderr, "glob(\"%s\", \"%s\", nocase=%d) = %d, want %d\n", c->pat, c->str,
                    c->nocase, got, c->want);
            abort();
        }
    }
    test_nul();
    test_random();
    test_bounded();
    printf("test_resp_glob: ok\n");
    return 0;
}
