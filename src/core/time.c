/* Monotonic clocks, deadlines, sleeping, and the HTTP-date parser. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "cipc/time.h"

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t cipc_now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

int64_t cipc_now_ms(void)
{
    return cipc_now_ns() / 1000000;
}

int64_t cipc_wall_ms(void)
{
    return clock_ns(CLOCK_REALTIME) / 1000000;
}

cipc_deadline cipc_deadline_in(int64_t timeout_ms)
{
    cipc_deadline d = {INT64_MAX};
    if (timeout_ms < 0)
        return d;
    int64_t now = cipc_now_ns();
    if (timeout_ms > (INT64_MAX - now) / 1000000)
        return d;
    d.at_ns = now + timeout_ms * 1000000;
    return d;
}

int64_t cipc_deadline_remaining_ms(cipc_deadline d)
{
    if (d.at_ns == INT64_MAX)
        return -1;
    int64_t left = d.at_ns - cipc_now_ns();
    if (left <= 0)
        return 0;
    return (left + 999999) / 1000000;
}

bool cipc_deadline_expired(cipc_deadline d)
{
    return d.at_ns != INT64_MAX && cipc_now_ns() >= d.at_ns;
}

void cipc_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* --- HTTP-date (RFC 9110 5.6.7) ----------------------------------------------------- */

static const char *const month_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const day_names[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const day_long[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                        "Thursday", "Friday", "Saturday"};

/* Read exactly `n` digits at *p into *out; advances *p. Returns 0 or -1. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int lit(const char **p, const char *s)
{
    size_t n = strlen(s);
    if (strncmp(*p, s, n) != 0)
        return -1;
    *p += n;
    return 0;
}

static int month(const char **p, int *out)
{
    for (int i = 0; i < 12; i++) {
        if (strncmp(*p, month_names[i], 3) == 0) {
            *p += 3;
            *out = i;
            return 0;
        }
    }
    return -1;
}

static int day_name(const char **p, const char *const *names)
{
    for (int i = 0; i < 7; i++) {
        size_t n = strlen(names[i]);
        if (strncmp(*p, names[i], n) == 0) {
            *p += n;
            return 0;
        }
    }
    return -1;
}

/* hh:mm:ss */
static int hms(const char **p, struct tm *tm)
{
    if (digits(p, 2, &tm->tm_hour) || lit(p, ":") || digits(p, 2, &tm->tm_min) || lit(p, ":") ||
        digits(p, 2, &tm->tm_sec))
        return -1;
    return 0;
}

/* Check the fields before timegm(), which would silently normalise "Feb 30" to Mar 2. */
static int valid_tm(const struct tm *tm, int year)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (tm->tm_mon == 1 && tm->tm_mday == 29 && !leap)
        return 0;
    return tm->tm_mday >= 1 && tm->tm_mday <= mdays[tm->tm_mon] && tm->tm_hour <= 23 &&
           tm->tm_min <= 59 && tm->tm_sec <= 60;
}

int cipc_http_date_parse(const char *s, int64_t *epoch_ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = s;
    int year = 0;
    if (day_name(&p, day_names) == 0 && *p == ',') {
        /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
        p++;
        if (lit(&p, " ") || digits(&p, 2, &tm.tm_mday) || lit(&p, " ") || month(&p, &tm.tm_mon) ||
            lit(&p, " ") || digits(&p, 4, &year) || lit(&p, " ") || hms(&p, &tm) || lit(&p, " GMT"))
            return CIPC_EPROTO;
    } else if (p = s, day_name(&p, day_long) == 0 && *p == ',') {
        /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT (two-digit year, RFC 9110 rule: a year
         * more than 50 years in the future is taken as the past century). */
        p++;
        if (lit(&p, " ") || digits(&p, 2, &tm.tm_mday) || lit(&p, "-") || month(&p, &tm.tm_mon) ||
            lit(&p, "-") || digits(&p, 2, &year) || lit(&p, " ") || hms(&p, &tm) || lit(&p, " GMT"))
            return CIPC_EPROTO;
        time_t now = time(NULL);
        struct tm nowtm;
        gmtime_r(&now, &nowtm);
        int cur = nowtm.tm_year + 1900;
        year += (cur / 100) * 100;
        if (year > cur + 50)
            year -= 100;
    } else if (p = s, day_name(&p, day_names) == 0 && *p == ' ') {
        /* asctime: Sun Nov  6 08:49:37 1994 */
        p++;
        if (month(&p, &tm.tm_mon) || lit(&p, " "))
            return CIPC_EPROTO;
        if (*p == ' ') {
            p++;
            if (digits(&p, 1, &tm.tm_mday))
                return CIPC_EPROTO;
        } else if (digits(&p, 2, &tm.tm_mday)) {
            return CIPC_EPROTO;
        }
        if (lit(&p, " ") || hms(&p, &tm) || lit(&p, " ") || digits(&p, 4, &year))
            return CIPC_EPROTO;
    } else {
        return CIPC_EPROTO;
    }
    if (*p != '\0' || !valid_tm(&tm, year))
        return CIPC_EPROTO;
    tm.tm_year = year - 1900;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 && !(year == 1969))
        return CIPC_EPROTO;
    *epoch_ms = (int64_t)t * 1000;
    return 0;
}
