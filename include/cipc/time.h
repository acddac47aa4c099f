/* cipc/time.h -- monotonic clocks and deadlines.
 *
 * Every blocking call in cipc takes a timeout in milliseconds and turns it into a
 * deadline on the monotonic clock, so wall-clock jumps never stretch or cut a wait.
 * Convention everywhere: timeout_ms < 0 waits forever, 0 does not wait (or, in option
 * structs, means "use the default"), > 0 waits at most that long.
 *
 * Threading: everything here is thread-safe. */
#ifndef CIPC_TIME_H
#define CIPC_TIME_H

#include <stdbool.h>
#include <stdint.h>

#include "cipc/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Monotonic time in nanoseconds and milliseconds (CLOCK_MONOTONIC). */
CIPC_API int64_t cipc_now_ns(void);
CIPC_API int64_t cipc_now_ms(void);

/* Wall-clock time in milliseconds since the Unix epoch (CLOCK_REALTIME). */
CIPC_API int64_t cipc_wall_ms(void);

/* A point on the monotonic clock; at_ns == INT64_MAX means "never". */
typedef struct cipc_deadline {
    int64_t at_ns;
} cipc_deadline;

/* The deadline `timeout_ms` from now; timeout_ms < 0 gives a deadline that never
 * expires. Saturates instead of overflowing. */
CIPC_API cipc_deadline cipc_deadline_in(int64_t timeout_ms);

/* Milliseconds left before `d`, rounded up: 0 once it has passed, -1 for "never". */
CIPC_API int64_t cipc_deadline_remaining_ms(cipc_deadline d);

/* True once `d` has passed; never true for a "never" deadline. */
CIPC_API bool cipc_deadline_expired(cipc_deadline d);

/* Sleep for `ms` milliseconds on the monotonic clock, resuming after signals. */
CIPC_API void cipc_sleep_ms(int64_t ms);

/* Parse an HTTP-date (RFC 9110 5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime
 * forms) into milliseconds since the Unix epoch. Borrows `s` (NUL-terminated).
 * Returns 0, or CIPC_EPROTO if `s` is not an HTTP-date. Thread-safe. */
CIPC_API int cipc_http_date_parse(const char *s, int64_t *epoch_ms);

#ifdef __cplusplus
}
#endif
#endif
