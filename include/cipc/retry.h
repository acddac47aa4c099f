/* cipc/retry.h -- a retry policy: bounded attempts, exponential backoff with full
 * jitter, a cap, and server-requested delays (HTTP Retry-After).
 *
 * The delay before retry number k (k = 1 for the first retry) is a uniformly random
 * value in [0, min(cap_ms, base_ms * 2^(k-1))] ("full jitter"), unless the server asked
 * for a delay with Retry-After, which is then honoured up to max_retry_after_ms.
 *
 * Threading: the policy is a plain value; the functions are thread-safe. */
#ifndef CIPC_RETRY_H
#define CIPC_RETRY_H

#include <stdint.h>

#include "cipc/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cipc_retry_policy {
    int max_attempts;           /* attempts in all, the first included; 0 or 1 -> no retry */
    int64_t base_ms;            /* first backoff ceiling; 0 -> 100 ms */
    int64_t cap_ms;             /* largest backoff ceiling; 0 -> 10000 ms */
    int64_t max_retry_after_ms; /* longest Retry-After honoured; 0 -> 60000 ms. A server
                                   asking for longer gets no retry (the error is returned) */
} cipc_retry_policy;

#define CIPC_RETRY_DEFAULT_BASE_MS            100
#define CIPC_RETRY_DEFAULT_CAP_MS             10000
#define CIPC_RETRY_DEFAULT_MAX_RETRY_AFTER_MS 60000

/* The backoff before retry number `retry` (1-based): full jitter over
 * [0, min(cap, base * 2^(retry-1))]. `rng` is the caller's random state (any seed but
 * 0; 0 is replaced by a fixed seed); it is advanced. Returns milliseconds >= 0. */
CIPC_API int64_t cipc_retry_backoff_ms(const cipc_retry_policy *p, int retry, uint64_t *rng);

/* Parse a Retry-After header value: delay-seconds or an HTTP-date. `now_wall_ms` is the
 * current wall-clock time (cipc_wall_ms()); a date in the past gives 0. Borrows `value`.
 * Returns 0 and sets *delay_ms, or CIPC_EPROTO for anything else. */
CIPC_API int cipc_retry_after_parse(const char *value, int64_t now_wall_ms, int64_t *delay_ms);

/* The delay before retry number `retry`: `retry_after_ms` if >= 0 (a server's request),
 * otherwise the jittered backoff. Returns the delay in ms (>= 0), or -1 when no retry
 * should be made: attempts are used up (retry >= max_attempts) or the server asked for
 * more than max_retry_after_ms. */
CIPC_API int64_t cipc_retry_delay_ms(const cipc_retry_policy *p, int retry, int64_t retry_after_ms,
                                     uint64_t *rng);

/* A seed for the `rng` arguments above, from the kernel's random source. Never 0. */
CIPC_API uint64_t cipc_retry_seed(void);

#ifdef __cplusplus
}
#endif
#endif
