/* Proves that every code in CIPC_ERR_LIST is unique, negative and below -1000, and has
 * its own message and "CIPC_" name; that negated errno values, 0 and unknown values get
 * the documented names and messages; and that the strings are never NULL. */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "check.h"
#include "cipc/error.h"

struct err_row {
    int code;
    const char *name;
    const char *msg;
};

static const struct err_row rows[] = {
#define ROW_(name, code, msg) {CIPC_##name, "CIPC_" #name, msg},
    CIPC_ERR_LIST(ROW_)
#undef ROW_
};

#define NROWS (sizeof rows / sizeof rows[0])

static void test_cipc_codes(void)
{
    CHECK_INT(NROWS, >=, 22);
    for (size_t i = 0; i < NROWS; i++) {
        const struct err_row *r = &rows[i];
        CHECK_INT(r->code, <=, -1001);
        const char *msg = cipc_strerror(r->code);
        CHECK(msg != NULL);
        CHECK(msg[0] != '\0');
        CHECK_STR(msg, r->msg);
        CHECK_STR(cipc_err_name(r->code), r->name);
        for (size_t j = 0; j < i; j++) {
            CHECK_INT(rows[j].code, !=, r->code);
            CHECK(strcmp(rows[j].name, r->name) != 0);
            CHECK(strcmp(rows[j].msg, r->msg) != 0);
        }
    }
    /* Codes are appended, never renumbered: a few pinned values. */
    CHECK_INT(CIPC_EPROTO, ==, -1001);
    CHECK_INT(CIPC_EURL, ==, -1004);
    CHECK_INT(CIPC_ETIMEOUT, ==, -1008);
    CHECK_INT(CIPC_EAGAIN, ==, -1015);
    CHECK_STR(cipc_err_name(CIPC_ETIMEOUT), "CIPC_ETIMEOUT");
    CHECK_STR(cipc_strerror(CIPC_EURL), "invalid URL");
}

static void test_ok(void)
{
    CHECK_INT(CIPC_OK, ==, 0);
    CHECK_STR(cipc_strerror(0), "success");
    CHECK_STR(cipc_err_name(0), "CIPC_OK");
}

static void test_errno(void)
{
    CHECK_STR(cipc_err_name(-ECONNREFUSED), "ECONNREFUSED");
    CHECK_STR(cipc_strerror(-ECONNREFUSED), strerror(ECONNREFUSED));
    CHECK_STR(cipc_err_name(-ENOMEM), "ENOMEM");
    CHECK_STR(cipc_strerror(-ENOMEM), strerror(ENOMEM));
    CHECK_STR(cipc_err_name(-EINVAL), "EINVAL");
    CHECK_STR(cipc_err_name(-ETIMEDOUT), "ETIMEDOUT");
    CHECK_STR(cipc_err_name(-EPIPE), "EPIPE");
    /* The messages are static: a second call returns the same text, and the text is not
     * overwritten by libc's strerror buffer. */
    const char *m = cipc_strerror(-ECONNREFUSED);
    (void)strerror(EPIPE);
    CHECK_STR(m, cipc_strerror(-ECONNREFUSED));
    CHECK_STR(m, strerror(ECONNREFUSED));
    /* Every errno value the system knows gets a name and a message that is not "unknown". */
    for (int e = 1; e < 134; e++) {
        const char *name = cipc_err_name(-e);
        const char *msg = cipc_strerror(-e);
        CHECK(name != NULL && msg != NULL && msg[0] != '\0');
        if (strcmp(name, "unknown") != 0)
            CHECK(strcmp(msg, "unknown error") != 0);
    }
}

static void test_unknown(void)
{
    static const int unknown[] = {1,     2,     12345, INT_MAX, INT_MIN, -999,
                                  -1000, -1999, -4095, -4096,   -5000,   -100000};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        int v = unknown[i];
        const char *name = cipc_err_name(v);
        const char *msg = cipc_strerror(v);
        CHECK(name != NULL);
        CHECK(msg != NULL);
        CHECK_STR(name, "unknown");
        CHECK_STR(msg, "unknown error");
    }
    /* The value just past the last code is unknown as well. */
    int past = rows[NROWS - 1].code - 1;
    CHECK_STR(cipc_err_name(past), "unknown");
}

static void test_version(void)
{
    const char *v = cipc_version();
    CHECK(v != NULL);
    int dots = 0;
    for (const char *p = v; *p; p++) {
        if (*p == '.')
            dots++;
        else
            CHECK(*p >= '0' && *p <= '9');
    }
    CHECK_INT(dots, ==, 2);
}

int main(void)
{
    test_cipc_codes();
    test_ok();
    test_errno();
    test_unknown();
    test_version();
    return 0;
}
