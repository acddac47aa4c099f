/* cipc/log.h -- leveled logging to stderr.
 *
 * The level comes from the environment variable CIPC_LOG (debug, info, warn, error, off;
 * default warn), read once on first use. Each record is one line written with a single
 * write(2), so lines from several threads or processes do not interleave:
 *
 *     2026-11-26T02:52:45.123Z WARN  http_client: retrying GET http://... (attempt 2/3)
 *
 * Threading: everything here is thread-safe. */
#ifndef CIPC_LOG_H
#define CIPC_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include "cipc/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cipc_log_level {
    CIPC_LOG_DEBUG = 0,
    CIPC_LOG_INFO = 1,
    CIPC_LOG_WARN = 2,
    CIPC_LOG_ERROR = 3,
    CIPC_LOG_OFF = 4
} cipc_log_level;

/* The level in force: CIPC_LOG if set to a known name, else CIPC_LOG_WARN. */
CIPC_API cipc_log_level cipc_log_level_get(void);

/* Parse a level name ("debug", "info", "warn"/"warning", "error", "off"; any case).
 * Returns 0 and sets *out, or -EINVAL. */
CIPC_API int cipc_log_level_parse(const char *name, cipc_log_level *out);

/* True if a record at `level` would be written. Cheap; call it before formatting
 * expensive arguments. */
CIPC_API bool cipc_log_enabled(cipc_log_level level);

/* Write one record if `level` is enabled. `module` names the source ("http_client"). */
CIPC_API void cipc_log(cipc_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
CIPC_API void cipc_vlog(cipc_log_level level, const char *module, const char *fmt, va_list ap);

#ifdef __cplusplus
}
#endif
#endif
