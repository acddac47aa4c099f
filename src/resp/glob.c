/* Redis glob patterns: cipc__glob_match() gives the results of Redis 7's stringmatchlen()
 * (util.c), quirks included (see resp.h), over bytes with explicit lengths.
 *
 * Redis reads its patterns as NUL-terminated sds strings and in a few places looks at the
 * byte just past the end; pat_at() returns '\0' there, which is what Redis sees.
 *
 * Bounded work: the matcher walks pattern and string together; at a '*' it tries the
 * rest of the pattern at each later string position (recursively). If none matches, no
 * longer match of an enclosing '*' can help either (the rest of the pattern would then
 * have to match even later in the string, which was just ruled out), so `giveup` is set
 * and every enclosing '*' returns at once. Each '*' level therefore scans the string at
 * most once past its own start, and the whole match is O(plen * slen); the recursion is
 * at most MAX_NESTING + 1 frames deep, one per '*' (Redis's own limit, which we keep so
 * that results agree: deeper branches do not match). */
#include <stddef.h>

#include "resp/resp.h"

#define MAX_NESTING 1000

static inline int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static inline char pat_at(const char *pat, size_t plen, size_t k)
{
    return k < plen ? pat[k] : '\0';
}

/* One level of the matcher; called by cipc__glob_match() and by itself at each '*'. */
static int match(const char *pat, size_t plen, const char *str, size_t slen, int nocase,
                 int *giveup, int nesting)
{
    if (nesting > MAX_NESTING)
        return 0;
    while (plen && slen) {
        switch (pat[0]) {
        case '*':
            while (plen && pat_at(pat, plen, 1) == '*') {
                pat++;
                plen--;
            }
            if (plen == 1)
                return 1;
            while (slen) {
                if (match(pat + 1, plen - 1, str, slen, nocase, giveup, nesting + 1))
                    return 1;
                if (*giveup)
                    return 0;
                str++;
                slen--;
            }
            *giveup = 1;
            return 0;
        case '?':
            str++;
            slen--;
            break;
        case '[': {
            int neg, hit = 0;
            pat++;
            plen--;
            neg = pat_at(pat, plen, 0) == '^';
            if (neg) {
                pat++;
                plen--;
            }
            for (;;) {
                char c0 = pat_at(pat, plen, 0);
                if (c0 == '\\' && plen >= 2) {
                    pat++;
                    plen--;
                    if (pat[0] == str[0]) /* case-sensitive even with nocase, as Redis */
                        hit = 1;
                } else if (c0 == ']') {
                    break;
                } else if (plen == 0) {
                    /* Unclosed set: step back so that the pattern ends after it. */
                    pat--;
                    plen++;
                    break;
                } else if (plen >= 3 && pat[1] == '-') {
                    int lo = (signed char)pat[0], hi = (signed char)pat[2];
                    int c = (signed char)str[0];
                    if (lo > hi) {
                        int t = lo;
                        lo = hi;
                        hi = t;
                    }
                    if (nocase) {
                        lo = lower(lo);
                        hi = lower(hi);
                        c = lower(c);
                    }
                    pat += 2;
                    plen -= 2;
                    if (c >= lo && c <= hi)
                        hit = 1;
                } else if (nocase ? lower((unsigned char)pat[0]) == lower((unsigned char)str[0])
                                  : pat[0] == str[0]) {
                    hit = 1;
                }
                pat++;
                plen--;
            }
            if (neg)
                hit = !hit;
            if (!hit)
                return 0;
            str++;
            slen--;
            break;
        }
        case '\\':
            if (plen >= 2) {
                pat++;
                plen--;
            }
            /* fall through */
        default:
            if (nocase ? lower((unsigned char)pat[0]) != lower((unsigned char)str[0])
                       : pat[0] != str[0])
                return 0;
            str++;
            slen--;
            break;
        }
        pat++;
        plen--;
        if (slen == 0) {
            while (pat_at(pat, plen, 0) == '*') {
                pat++;
                plen--;
            }
            break;
        }
    }
    return plen == 0 && slen == 0;
}

int cipc__glob_match(const char *pat, size_t plen, const char *str, size_t slen, int nocase)
{
    int giveup = 0;
    return match(pat, plen, str, slen, nocase, &giveup, 0);
}
