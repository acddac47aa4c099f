/* tests/check.h -- a tiny assert helper for cipc's tests: failures print the
 * expression and both values, then abort (ctest reports the test as failed). */
#ifndef CIPC_TESTS_CHECK_H
#define CIPC_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void check_fail(const char *file, int line, const char *expr, const char *vals)
{
    fprintf(stderr, "%s:%d: CHECK(%s) failed%s%s\n", file, line, expr, vals ? ": " : "",
            vals ? vals : "");
    fflush(stderr);
    abort();
}

#define CHECK(c) ((c) ? (void)0 : check_fail(__FILE__, __LINE__, #c, NULL))

#define CHECK_INT(a, op, b)                                                                        \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (!(a_ op b_)) {                                                                         \
            char v_[96];                                                                           \
            snprintf(v_, sizeof v_, "%lld %s %lld", a_, #op, b_);                                  \
            check_fail(__FILE__, __LINE__, #a " " #op " " #b, v_);                                 \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                   \
            char v_[512];                                                                          \
            snprintf(v_, sizeof v_, "\"%.200s\" != \"%.200s\"", a_ ? a_ : "(null)",                \
                     b_ ? b_ : "(null)");                                                          \
            check_fail(__FILE__, __LINE__, #a " == " #b, v_);                                      \
        }                                                                                          \
    } while (0)

/* Compare a (pointer, length) view with a C string. */
#define CHECK_MEM(p, n, s)                                                                         \
    do {                                                                                           \
        const char *p_ = (const char *)(p), *s_ = (s);                                             \
        size_t n_ = (n);                                                                           \
        if (n_ != strlen(s_) || memcmp(p_, s_, n_) != 0) {                                         \
            char v_[512];                                                                          \
            snprintf(v_, sizeof v_, "\"%.*s\" != \"%.200s\"", (int)(n_ > 200 ? 200 : n_), p_, s_); \
            check_fail(__FILE__, __LINE__, #p " == " #s, v_);                                      \
        }                                                                                          \
    } while (0)

#endif
