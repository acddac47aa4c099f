/* Proves that log level names parse (any case, invalid ones rejected), that with
 * CIPC_LOG=debug each record is exactly one line on stderr in the documented format, and
 * that records below the threshold (CIPC_LOG=error, in a child process) write nothing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "cipc/log.h"

static void test_parse(void)
{
    static const struct {
        const char *name;
        cipc_log_level level;
    } good[] = {{"debug", CIPC_LOG_DEBUG},  {"DEBUG", CIPC_LOG_DEBUG},  {"info", CIPC_LOG_INFO},
                {"Info", CIPC_LOG_INFO},    {"warn", CIPC_LOG_WARN},    {"WARN", CIPC_LOG_WARN},
                {"warning", CIPC_LOG_WARN}, {"Warning", CIPC_LOG_WARN}, {"error", CIPC_LOG_ERROR},
                {"ERROR", CIPC_LOG_ERROR},  {"off", CIPC_LOG_OFF},      {"OFF", CIPC_LOG_OFF}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        cipc_log_level l = (cipc_log_level)99;
        CHECK_INT(cipc_log_level_parse(good[i].name, &l), ==, 0);
        CHECK_INT(l, ==, good[i].level);
    }
    static const char *const bad[] = {"", "verbose", "warn ", " warn", "deb", "debugx", "3", "err"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cipc_log_level l = CIPC_LOG_INFO;
        CHECK_INT(cipc_log_level_parse(bad[i], &l), ==, -EINVAL);
        CHECK_INT(l, ==, CIPC_LOG_INFO);
    }
    cipc_log_level l = CIPC_LOG_INFO;
    CHECK_INT(cipc_log_level_parse(NULL, &l), ==, -EINVAL);
    CHECK_INT(l, ==, CIPC_LOG_INFO);
}

/* Redirects stderr to a temporary file until capture_end(), which returns what was
 * written (malloc'd, NUL-terminated) and restores stderr. */
struct capture {
    int saved;
    int fd;
};

static void capture_begin(struct capture *c)
{
    char path[] = "/tmp/cipc_test_log_XXXXXX";
    c->fd = mkstemp(path);
    CHECK(c->fd >= 0);
    unlink(path);
    fflush(stderr);
    c->saved = dup(STDERR_FILENO);
    CHECK(c->saved >= 0);
    CHECK(dup2(c->fd, STDERR_FILENO) == STDERR_FILENO);
}

static char *capture_end(struct capture *c, size_t *len)
{
    fflush(stderr);
    CHECK(dup2(c->saved, STDERR_FILENO) == STDERR_FILENO);
    close(c->saved);
    off_t size = lseek(c->fd, 0, SEEK_END);
    CHECK(size >= 0);
    char *out = malloc((size_t)size + 1);
    CHECK(out != NULL);
    CHECK(lseek(c->fd, 0, SEEK_SET) == 0);
    size_t got = 0;
    while (got < (size_t)size) {
        ssize_t n = read(c->fd, out + got, (size_t)size - got);
        CHECK(n > 0);
        got += (size_t)n;
    }
    out[got] = '\0';
    close(c->fd);
    *len = got;
    return out;
}

static int is_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* Check one record: "YYYY-MM-DDTHH:MM:SS.mmmZ LEVEL module: message\n", where LEVEL is
 * left-aligned in 5 columns. */
static void check_record(const char *s, size_t len, const char *level, const char *module,
                         const char *msg)
{
    CHECK(len >= 25);
    CHECK(is_digits(s, 4) && s[4] == '-' && is_digits(s + 5, 2) && s[7] == '-');
    CHECK(is_digits(s + 8, 2) && s[10] == 'T' && is_digits(s + 11, 2) && s[13] == ':');
    CHECK(is_digits(s + 14, 2) && s[16] == ':' && is_digits(s + 17, 2) && s[19] == '.');
    CHECK(is_digits(s + 20, 3) && s[23] == 'Z' && s[24] == ' ');
    CHECK(strncmp(s, "2020", 4) >= 0 && strncmp(s, "2200", 4) < 0);
    CHECK(strncmp(s + 5, "01", 2) >= 0 && strncmp(s + 5, "12", 2) <= 0);
    char want[4096];
    snprintf(want, sizeof want, "%-5s %s: %s\n", level, module, msg);
    CHECK_MEM(s + 25, len - 25, want);
    /* Exactly one line. */
    CHECK(memchr(s, '\n', len) == s + len - 1);
}

/* With CIPC_LOG=debug (set before any logging call), every level is written. */
static void test_debug_level(void)
{
    CHECK_INT(setenv("CIPC_LOG", "debug", 1), ==, 0);
    CHECK_INT(cipc_log_level_get(), ==, CIPC_LOG_DEBUG);
    CHECK(cipc_log_enabled(CIPC_LOG_DEBUG));
    CHECK(cipc_log_enabled(CIPC_LOG_ERROR));
    CHECK(!cipc_log_enabled(CIPC_LOG_OFF));

    static const struct {
        cipc_log_level level;
        const char *name;
    } levels[] = {{CIPC_LOG_DEBUG, "DEBUG"},
                  {CIPC_LOG_INFO, "INFO"},
                  {CIPC_LOG_WARN, "WARN"},
                  {CIPC_LOG_ERROR, "ERROR"}};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        struct capture c;
        capture_begin(&c);
        cipc_log(levels[i].level, "http_client", "retrying %s (attempt %d/%d)", "GET", 2, 3);
        size_t len;
        char *out = capture_end(&c, &len);
        check_record(out, len, levels[i].name, "http_client", "retrying GET (attempt 2/3)");
        free(out);
    }

    /* The level is read once: changing CIPC_LOG later changes nothing. */
    CHECK_INT(setenv("CIPC_LOG", "off", 1), ==, 0);
    CHECK_INT(cipc_log_level_get(), ==, CIPC_LOG_DEBUG);

    /* OFF is not a level records are written at. */
    struct capture c;
    capture_begin(&c);
    cipc_log(CIPC_LOG_OFF, "test", "never");
    size_t len;
    char *out = capture_end(&c, &len);
    CHECK_INT(len, ==, 0);
    free(out);

    /* A very long message is still one line, written once. */
    size_t n = 10000;
    char *big = malloc(n + 1);
    CHECK(big != NULL);
    memset(big, 'x', n);
    big[n] = '\0';
    capture_begin(&c);
    cipc_log(CIPC_LOG_WARN, "test", "%s", big);
    out = capture_end(&c, &len);
    CHECK(len > 1000);
    CHECK(len < n);
    CHECK(memchr(out, '\n', len) == out + len - 1);
    CHECK(strncmp(out + 24, " WARN  test: xxx", 16) == 0);
    free(out);
    free(big);

    /* cipc_vlog is the same as cipc_log (exercised through cipc_log above); two records
     * give two lines. */
    capture_begin(&c);
    cipc_log(CIPC_LOG_INFO, "a", "one");
    cipc_log(CIPC_LOG_INFO, "b", "two");
    out = capture_end(&c, &len);
    char *nl = memchr(out, '\n', len);
    CHECK(nl != NULL);
    size_t first = (size_t)(nl - out) + 1;
    check_record(out, first, "INFO", "a", "one");
    check_record(out + first, len - first, "INFO", "b", "two");
    free(out);
}

/* In a child process (its own first logging call), CIPC_LOG=error: lower levels write
 * nothing and ERROR writes one line. Returns the child's exit status. */
static void test_threshold_in_child(void)
{
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        CHECK_INT(setenv("CIPC_LOG", "error", 1), ==, 0);
        CHECK_INT(cipc_log_level_get(), ==, CIPC_LOG_ERROR);
        CHECK(!cipc_log_enabled(CIPC_LOG_DEBUG));
        CHECK(!cipc_log_enabled(CIPC_LOG_INFO));
        CHECK(!cipc_log_enabled(CIPC_LOG_WARN));
        CHECK(cipc_log_enabled(CIPC_LOG_ERROR));
        struct capture c;
        capture_begin(&c);
        cipc_log(CIPC_LOG_DEBUG, "test", "debug %d", 1);
        cipc_log(CIPC_LOG_INFO, "test", "info %d", 2);
        cipc_log(CIPC_LOG_WARN, "test", "warn %d", 3);
        size_t len;
        char *out = capture_end(&c, &len);
        CHECK_INT(len, ==, 0);
        free(out);
        capture_begin(&c);
        cipc_log(CIPC_LOG_ERROR, "test", "error %d", 4);
        out = capture_end(&c, &len);
        check_record(out, len, "ERROR", "test", "error 4");
        free(out);
        _exit(0);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK_INT(WEXITSTATUS(status), ==, 0);
}

int main(void)
{
    test_parse();
    /* Fork before this process logs anything, so the child reads CIPC_LOG itself. */
    test_threshold_in_child();
    test_debug_level();
    return 0;
}
