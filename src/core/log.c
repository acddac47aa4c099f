/* Leveled logging to stderr; the level is read once from CIPC_LOG. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cipc/log.h"

static pthread_once_t level_once = PTHREAD_ONCE_INIT;
static cipc_log_level level_in_force = CIPC_LOG_WARN; /* written once, under level_once */

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR", "OFF"};

int cipc_log_level_parse(const char *name, cipc_log_level *out)
{
    static const struct {
        const char *name;
        cipc_log_level level;
    } names[] = {{"debug", CIPC_LOG_DEBUG},  {"info", CIPC_LOG_INFO},   {"warn", CIPC_LOG_WARN},
                 {"warning", CIPC_LOG_WARN}, {"error", CIPC_LOG_ERROR}, {"off", CIPC_LOG_OFF},
                 {"none", CIPC_LOG_OFF}};
    if (!name)
        return -EINVAL;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return -EINVAL;
}

static void read_level(void)
{
    const char *env = getenv("CIPC_LOG");
    cipc_log_level l;
    if (env && cipc_log_level_parse(env, &l) == 0)
        level_in_force = l;
}

cipc_log_level cipc_log_level_get(void)
{
    pthread_once(&level_once, read_level);
    return level_in_force;
}

bool cipc_log_enabled(cipc_log_level level)
{
    return level < CIPC_LOG_OFF && level >= cipc_log_level_get();
}

void cipc_vlog(cipc_log_level level, const char *module, const char *fmt, va_list ap)
{
    if (!cipc_log_enabled(level))
        return;
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], module ? module : "cipc");
    if (n < 0)
        return;
    if ((size_t)n < sizeof line) {
        int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void cipc_log(cipc_log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cipc_vlog(level, module, fmt, ap);
    va_end(ap);
}
