/* Retry policy: exponential backoff with full jitter, and Retry-After parsing. */
#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

#include "cipc/retry.h"
#include "cipc/time.h"

/* xorshift64*: small, fast, good enough for jitter. */
static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

uint64_t cipc_retry_seed(void)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s)
        s = (uint64_t)cipc_now_ns() ^ (uint64_t)(uintptr_t)&s;
    return s ? s : 1;
}

int64_t cipc_retry_backoff_ms(const cipc_retry_policy *p, int retry, uint64_t *rng)
{
    int64_t base = p && p->base_ms > 0 ? p->base_ms : CIPC_RETRY_DEFAULT_BASE_MS;
    int64_t cap = p && p->cap_ms > 0 ? p->cap_ms : CIPC_RETRY_DEFAULT_CAP_MS;
    if (retry < 1)
        retry = 1;
    int64_t ceil = base;
    for (int i = 1; i < retry && ceil < cap; i++)
        ceil = ceil > INT64_MAX / 2 ? INT64_MAX : ceil * 2;
    if (ceil > cap)
        ceil = cap;
    return (int64_t)(next_rand(rng) % ((uint64_t)ceil + 1));
}

int cipc_retry_after_parse(const char *value, int64_t now_wall_ms, int64_t *delay_ms)
{
    if (!value)
        return CIPC_EPROTO;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t n = strlen(value);
    while (n && (value[n - 1] == ' ' || value[n - 1] == '\t'))
        n--;
    if (n == 0)
        return CIPC_EPROTO;
    if (isdigit((unsigned char)value[0])) {
        int64_t secs = 0;
        for (size_t i = 0; i < n; i++) {
            if (!isdigit((unsigned char)value[i]))
                return CIPC_EPROTO;
            if (secs > (INT64_MAX / 1000 - 9) / 10)
                secs = INT64_MAX / 1000; /* saturate: "a very long time" */
            else
                secs = secs * 10 + (value[i] - '0');
        }
        *delay_ms = secs * 1000;
        return 0;
    }
    char date[64];
    if (n >= sizeof date)
        return CIPC_EPROTO;
    memcpy(date, value, n);
    date[n] = '\0';
    int64_t when;
    if (cipc_http_date_parse(date, &when) < 0)
        return CIPC_EPROTO;
    *delay_ms = when > now_wall_ms ? when - now_wall_ms : 0;
    return 0;
}

int64_t cipc_retry_delay_ms(const cipc_retry_policy *p, int retry, int64_t retry_after_ms,
                            uint64_t *rng)
{
    int max = p ? p->max_attempts : 0;
    if (retry < 1 || retry >= max)
        return -1;
    if (retry_after_ms >= 0) {
        int64_t lim = p->max_retry_after_ms > 0 ? p->max_retry_after_ms
                                                : CIPC_RETRY_DEFAULT_MAX_RETRY_AFTER_MS;
        return retry_after_ms <= lim ? retry_after_ms : -1;
    }
    return cipc_retry_backoff_ms(p, retry, rng);
}
