/* Proves the retry policy: full-jitter backoff stays within its ceiling with a mean near
 * half of it, attempts and Retry-After limits stop retries, Retry-After values and
 * HTTP-dates (all three forms) parse, and invalid dates are rejected. */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "cipc/retry.h"
#include "cipc/time.h"

/* 1994-11-06T08:49:37Z, the example date of RFC 9110. */
#define RFC_EXAMPLE_MS 784111777000LL

static int64_t ceiling(int64_t base, int64_t cap, int retry)
{
    int64_t c = base;
    for (int i = 1; i < retry && c < cap; i++)
        c *= 2;
    return c < cap ? c : cap;
}

/* Draw `n` backoffs for retry `k` and check range and mean. */
static void check_draws(const cipc_retry_policy *p, int64_t base, int64_t cap, int k, uint64_t *rng)
{
    const int n = 10000;
    int64_t ceil = ceiling(base, cap, k);
    double sum = 0;
    int64_t lo = INT64_MAX, hi = -1;
    for (int i = 0; i < n; i++) {
        int64_t d = cipc_retry_backoff_ms(p, k, rng);
        CHECK_INT(d, >=, 0);
        CHECK_INT(d, <=, ceil);
        sum += (double)d;
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    double mean = sum / n;
    CHECK(mean >= 0.35 * (double)ceil);
    CHECK(mean <= 0.65 * (double)ceil);
    /* Full jitter spreads over the whole range, not just near the ceiling. */
    CHECK(lo <= ceil / 4);
    CHECK(hi >= ceil - ceil / 4);
}

static void test_backoff(void)
{
    uint64_t rng = cipc_retry_seed();
    CHECK(rng != 0);

    cipc_retry_policy p = {.max_attempts = 5, .base_ms = 100, .cap_ms = 10000};
    for (int k = 1; k <= 10; k++)
        check_draws(&p, 100, 10000, k, &rng);

    /* Zero fields and a NULL policy use the documented defaults. */
    cipc_retry_policy zero = {0};
    for (int k = 1; k <= 9; k++)
        check_draws(&zero, CIPC_RETRY_DEFAULT_BASE_MS, CIPC_RETRY_DEFAULT_CAP_MS, k, &rng);
    check_draws(NULL, CIPC_RETRY_DEFAULT_BASE_MS, CIPC_RETRY_DEFAULT_CAP_MS, 3, &rng);

    /* A cap that is not a power-of-two multiple of the base. */
    cipc_retry_policy odd = {.base_ms = 7, .cap_ms = 1000};
    for (int k = 1; k <= 12; k++)
        check_draws(&odd, 7, 1000, k, &rng);

    /* Very late retries and huge values do not overflow. */
    cipc_retry_policy huge = {.base_ms = INT64_MAX / 4, .cap_ms = INT64_MAX};
    for (int k = 1; k < 100; k += 7) {
        int64_t d = cipc_retry_backoff_ms(&huge, k, &rng);
        CHECK_INT(d, >=, 0);
    }
    for (int i = 0; i < 1000; i++) {
        int64_t d = cipc_retry_backoff_ms(&p, 1000000, &rng);
        CHECK_INT(d, >=, 0);
        CHECK_INT(d, <=, 10000);
    }

    /* A zero seed is replaced, and the state advances. */
    uint64_t z = 0;
    int64_t d = cipc_retry_backoff_ms(&p, 3, &z);
    CHECK_INT(d, >=, 0);
    CHECK_INT(d, <=, 400);
    CHECK(z != 0);

    /* The same seed gives the same sequence (the rng is the only source of randomness). */
    uint64_t s1 = 12345, s2 = 12345;
    for (int i = 0; i < 100; i++)
        CHECK_INT(cipc_retry_backoff_ms(&p, 4, &s1), ==, cipc_retry_backoff_ms(&p, 4, &s2));
}

static void test_delay(void)
{
    uint64_t rng = 42;
    cipc_retry_policy p = {.max_attempts = 3, .base_ms = 100, .cap_ms = 1000};

    /* Retries 1 and 2 of 3 attempts are allowed; retry 3 would be a fourth attempt. */
    for (int i = 0; i < 100; i++) {
        int64_t d = cipc_retry_delay_ms(&p, 1, -1, &rng);
        CHECK_INT(d, >=, 0);
        CHECK_INT(d, <=, 100);
        d = cipc_retry_delay_ms(&p, 2, -1, &rng);
        CHECK_INT(d, >=, 0);
        CHECK_INT(d, <=, 200);
    }
    CHECK_INT(cipc_retry_delay_ms(&p, 3, -1, &rng), ==, -1);
    CHECK_INT(cipc_retry_delay_ms(&p, 4, -1, &rng), ==, -1);
    CHECK_INT(cipc_retry_delay_ms(&p, 3, 10, &rng), ==, -1);

    /* max_attempts 0 or 1: no retry at all. */
    cipc_retry_policy none = {.max_attempts = 0};
    CHECK_INT(cipc_retry_delay_ms(&none, 1, -1, &rng), ==, -1);
    none.max_attempts = 1;
    CHECK_INT(cipc_retry_delay_ms(&none, 1, -1, &rng), ==, -1);
    CHECK_INT(cipc_retry_delay_ms(&none, 1, 0, &rng), ==, -1);

    /* Retry-After is honoured as is, up to the default limit of 60 s. */
    CHECK_INT(cipc_retry_delay_ms(&p, 1, 0, &rng), ==, 0);
    CHECK_INT(cipc_retry_delay_ms(&p, 1, 5000, &rng), ==, 5000);
    CHECK_INT(cipc_retry_delay_ms(&p, 2, CIPC_RETRY_DEFAULT_MAX_RETRY_AFTER_MS, &rng), ==,
              CIPC_RETRY_DEFAULT_MAX_RETRY_AFTER_MS);
    CHECK_INT(cipc_retry_delay_ms(&p, 1, CIPC_RETRY_DEFAULT_MAX_RETRY_AFTER_MS + 1, &rng), ==, -1);
    CHECK_INT(cipc_retry_delay_ms(&p, 1, INT64_MAX, &rng), ==, -1);

    /* ... or up to max_retry_after_ms when set. */
    p.max_retry_after_ms = 1000;
    CHECK_INT(cipc_retry_delay_ms(&p, 1, 1000, &rng), ==, 1000);
    CHECK_INT(cipc_retry_delay_ms(&p, 1, 1001, &rng), ==, -1);
    p.max_retry_after_ms = 120000;
    CHECK_INT(cipc_retry_delay_ms(&p, 1, 90000, &rng), ==, 90000);
}

static void check_after(const char *v, int64_t now, int64_t want)
{
    int64_t d = -12345;
    CHECK_INT(cipc_retry_after_parse(v, now, &d), ==, 0);
    CHECK_INT(d, ==, want);
}

static void check_after_bad(const char *v)
{
    int64_t d = -12345;
    CHECK_INT(cipc_retry_after_parse(v, 0, &d), ==, CIPC_EPROTO);
    CHECK_INT(d, ==, -12345);
}

static void test_retry_after(void)
{
    check_after("120", 0, 120000);
    check_after(" 3 ", 0, 3000);
    check_after("\t7\t", 0, 7000);
    check_after("0", 0, 0);
    check_after("007", 0, 7000);

    /* An absurd number of seconds saturates instead of overflowing. */
    int64_t d = 0;
    CHECK_INT(cipc_retry_after_parse("99999999999999999999999999", 0, &d), ==, 0);
    CHECK_INT(d, >, 1000LL * 1000 * 1000 * 1000);

    check_after_bad("abc");
    check_after_bad("");
    check_after_bad("   ");
    check_after_bad("-1");
    check_after_bad("+1");
    check_after_bad("1.5");
    check_after_bad("12a");
    check_after_bad("1 2");
    check_after_bad(NULL);

    /* HTTP-dates: in the future gives the difference, in the past gives 0. */
    check_after("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE_MS - 120000, 120000);
    check_after("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE_MS - 1, 1);
    check_after("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE_MS, 0);
    check_after("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE_MS + 5000, 0);
    check_after("  Sun, 06 Nov 1994 08:49:37 GMT  ", RFC_EXAMPLE_MS - 2000, 2000);
    check_after("Sun Nov  6 08:49:37 1994", RFC_EXAMPLE_MS - 30000, 30000);
    check_after("Sun Nov  6 08:49:37 1994", RFC_EXAMPLE_MS + 30000, 0);
    check_after_bad("Sun, 06 Nov 1994 08:49:37");
    check_after_bad("Sun, 31 Nov 1994 08:49:37 GMT");

    /* RFC 850 (two-digit year): build a date ten days from now, so that the century
     * rule ("more than 50 years ahead means the past century") cannot depend on the
     * year the test runs in. */
    time_t t = time(NULL) + 10 * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[64];
    CHECK(strftime(buf, sizeof buf, "%A, %d-%b-%y %H:%M:%S GMT", &tm) > 0);
    check_after(buf, (int64_t)t * 1000 - 45000, 45000);
    check_after(buf, (int64_t)t * 1000 + 45000, 0);
    /* And one ten days ago, in the past. */
    t = time(NULL) - 10 * 86400;
    gmtime_r(&t, &tm);
    CHECK(strftime(buf, sizeof buf, "%A, %d-%b-%y %H:%M:%S GMT", &tm) > 0);
    check_after(buf, (int64_t)t * 1000 + 1000, 0);
    check_after(buf, (int64_t)t * 1000 - 1000, 1000);
}

static void check_date(const char *s, int64_t want)
{
    int64_t ms = -12345;
    CHECK_INT(cipc_http_date_parse(s, &ms), ==, 0);
    CHECK_INT(ms, ==, want);
}

static void check_date_bad(const char *s)
{
    int64_t ms = -12345;
    CHECK_INT(cipc_http_date_parse(s, &ms), ==, CIPC_EPROTO);
    CHECK_INT(ms, ==, -12345);
}

/* Format `t` with strftime and parse it back. */
static void check_date_fmt(time_t t, const char *fmt)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[64];
    CHECK(strftime(buf, sizeof buf, fmt, &tm) > 0);
    check_date(buf, (int64_t)t * 1000);
}

static void test_http_date(void)
{
    /* The three forms of the same instant (RFC 9110 5.6.7). */
    check_date("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE_MS);
    check_date("Sunday, 06-Nov-94 08:49:37 GMT", RFC_EXAMPLE_MS);
    check_date("Sun Nov  6 08:49:37 1994", RFC_EXAMPLE_MS);

    check_date("Thu, 01 Jan 1970 00:00:00 GMT", 0);
    check_date("Wed, 31 Dec 1969 23:59:59 GMT", -1000);
    check_date("Sat, 29 Feb 2020 00:00:00 GMT", 1582934400000LL);
    check_date("Tue, 29 Feb 2000 12:00:00 GMT", 951825600000LL);
    check_date("Fri, 01 Jan 2021 00:00:00 GMT", 1609459200000LL);
    check_date("Fri Jan  1 00:00:00 2021", 1609459200000LL);
    check_date("Fri Jan 15 00:00:00 2021", 1609459200000LL + 14 * 86400000LL);
    check_date("Fri, 31 Dec 2021 23:59:59 GMT", 1640995199000LL);

    /* Every day of a few years, in all three forms, round-trips through strftime. */
    for (time_t t = 1700000000 - 400 * 86400; t < 1700000000 + 800 * 86400; t += 86400 + 3607) {
        check_date_fmt(t, "%a, %d %b %Y %H:%M:%S GMT");
        check_date_fmt(t, "%a %b %e %H:%M:%S %Y");
    }
    /* RFC 850 round-trips within +/- 40 years of now (inside the century window). */
    time_t now = time(NULL);
    for (time_t t = now - 40 * 365 * 86400LL; t < now + 40 * 365 * 86400LL; t += 97 * 86400 + 11)
        check_date_fmt(t, "%A, %d-%b-%y %H:%M:%S GMT");

    /* Invalid dates. */
    check_date_bad("");
    check_date_bad("Sun, 30 Feb 2020 00:00:00 GMT");
    check_date_bad("Sun, 29 Feb 2021 00:00:00 GMT");
    check_date_bad("Sun, 29 Feb 1900 00:00:00 GMT");
    check_date_bad("Sun, 31 Apr 2021 00:00:00 GMT");
    check_date_bad("Sun, 00 Nov 1994 08:49:37 GMT");
    check_date_bad("Sun, 32 Jan 1994 08:49:37 GMT");
    check_date_bad("Sun, 06 Foo 1994 08:49:37 GMT");
    check_date_bad("Sun, 06 nov 1994 08:49:37 GMT");
    check_date_bad("Sun, 06 Nov 1994 08:49:37");
    check_date_bad("Sun, 06 Nov 1994 08:49:37 UTC");
    check_date_bad("Sun, 06 Nov 1994 08:49:37 GMTx");
    check_date_bad("Sun, 06 Nov 1994 08:49:37 GMT ");
    check_date_bad("Sun, 06 Nov 1994 08:49:37 GMT, junk");
    check_date_bad("Sun, 6 Nov 1994 08:49:37 GMT");
    check_date_bad("Sun, 06 Nov 94 08:49:37 GMT");
    check_date_bad("Sun, 06 Nov 1994 24:00:00 GMT");
    check_date_bad("Sun, 06 Nov 1994 08:60:00 GMT");
    check_date_bad("Sun, 06 Nov 1994 08:49:61 GMT");
    check_date_bad("Sun, 06 Nov 1994 8:49:37 GMT");
    check_date_bad("Sun,06 Nov 1994 08:49:37 GMT");
    check_date_bad("Xyz, 06 Nov 1994 08:49:37 GMT");
    check_date_bad("06 Nov 1994 08:49:37 GMT");
    check_date_bad("Sunday, 06-Nov-1994 08:49:37 GMT");
    check_date_bad("Sunday, 06-Nov-94 08:49:37");
    check_date_bad("Sunday, 30-Feb-94 08:49:37 GMT");
    check_date_bad("Sun Nov 6 08:49:37 1994");
    check_date_bad("Sun Nov  6 08:49:37 94");
    check_date_bad("Sun Nov  6 08:49:37 1994 GMT");
    check_date_bad("Sun Feb 30 08:49:37 1994");
    check_date_bad("Sun Nov 06 08:49:37");
    check_date_bad("1994-11-06T08:49:37Z");
    check_date_bad("784111777");
}

int main(void)
{
    test_backoff();
    test_delay();
    test_retry_after();
    test_http_date();
    return 0;
}
