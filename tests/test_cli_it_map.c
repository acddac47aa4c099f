/* `cipc map` run as a program: output in input order whatever each command's duration,
 * a speed-up with -j, {} substitution (inside an argument, twice, appended when absent),
 * failures (exit status, not found, killed by a signal, timed out, too much output)
 * listed with their line numbers and exit status 1, --halt-on-error, empty stdin, many
 * lines, --help, bad usage (exit 2, one line), and a progress bar only on a terminal. */
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static char cipc_bin[512];
static char in_path[64], out_path[64], err_path[64];

/* What one run of `cipc` gave. */
struct res {
    int status;      /* exit status, or 128 + signal */
    char *out, *err; /* stdout and stderr (owned; NUL-terminated) */
    size_t out_len;
    double secs;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    size_t cap = 4096, n = 0, k;
    char *b = malloc(cap);
    CHECK(b != NULL);
    while ((k = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (cap - n < 2) {
            b = realloc(b, cap *= 2);
            CHECK(b != NULL);
        }
    }
    fclose(f);
    b[n] = '\0';
    if (len)
        *len = n;
    return b;
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(data, 1, len, f) == len);
    CHECK(fclose(f) == 0);
}

/* Run `cipc map ARGS...` (a NULL-terminated list) with `input` on stdin. If `tty_err` is
 * not NULL, stderr is the slave side of a pty and what the pty showed is stored there
 * (owned) instead of in r->err. */
static struct res run_map_in(const char *input, size_t input_len, char **tty_err,
                             const char *const *args)
{
    const char *argv[64] = {cipc_bin, "map"};
    int n = 2;
    for (; args[n - 2]; n++) {
        CHECK(n < 63);
        argv[n] = args[n - 2];
    }
    argv[n] = NULL;
    write_file(in_path, input, input_len);
    int master = -1, slave = -1;
    if (tty_err)
        CHECK(openpty(&master, &slave, NULL, NULL, NULL) == 0);
    fflush(stdout);
    fflush(stderr);
    double t0 = now_s();
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int i = open(in_path, O_RDONLY);
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = tty_err ? slave : open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (i < 0 || o < 0 || e < 0 || dup2(i, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(126);
        if (master >= 0)
            close(master);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    struct res r = {0};
    if (tty_err) {
        close(slave);
        size_t cap = 65536, len = 0;
        char *b = malloc(cap);
        CHECK(b != NULL);
        for (;;) {
            ssize_t k = read(master, b + len, cap - len - 1);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                break; /* EIO once the last holder of the slave has gone */
            len += (size_t)k;
            if (cap - len < 2) {
                b = realloc(b, cap *= 2);
                CHECK(b != NULL);
            }
        }
        b[len] = '\0';
        close(master);
        *tty_err = b;
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        CHECK(errno == EINTR);
    r.secs = now_s() - t0;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.out = slurp(out_path, &r.out_len);
    r.err = tty_err ? strdup("") : slurp(err_path, NULL);
    fprintf(stderr, "cipc map %s %s ... -> %d in %.2fs; stderr: %.300s\n", argv[2],
            argv[3] ? argv[3] : "", r.status, r.secs, r.err);
    return r;
}

#define RUN(input, ...)                                                                            \
    run_map_in((input), strlen(input), NULL, (const char *const[]){__VA_ARGS__, NULL})

static void res_free(struct res *r)
{
    free(r->out);
    free(r->err);
}

static int count_char(const char *s, char c)
{
    int n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

/* Is a process whose command line is exactly "sleep <arg>" alive? */
static int sleep_alive(const char *arg)
{
    char want[64];
    int wl = snprintf(want, sizeof want, "sleep%c%s", '\0', arg) + 1;
    FILE *p = popen("ls /proc", "r");
    CHECK(p != NULL);
    char name[64];
    int found = 0;
    while (fscanf(p, "%63s", name) == 1) {
        if (name[0] < '0' || name[0] > '9')
            continue;
        char path[128], buf[128];
        snprintf(path, sizeof path, "/proc/%s/cmdline", name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        size_t k = fread(buf, 1, sizeof buf, f);
        fclose(f);
        if ((int)k == wl && memcmp(buf, want, (size_t)wl) == 0)
            found = 1;
    }
    pclose(p);
    return found;
}

/* Wait up to `secs` for sleep_alive(arg) to become `want`. */
static int wait_sleep(const char *arg, int want, double secs)
{
    double end = now_s() + secs;
    while (sleep_alive(arg) != want) {
        if (now_s() > end)
            return 0;
        usleep(20000);
    }
    return 1;
}

/* SIGTERM to cipc alone reaches every command's process group, grandchildren included. */
static void test_signal(void)
{
    write_file(in_path, "100.4343\n100.4343\n", 18);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int i = open(in_path, O_RDONLY), o = open("/dev/null", O_WRONLY);
        if (i < 0 || o < 0 || dup2(i, 0) < 0 || dup2(o, 1) < 0)
            _exit(126);
        execl(cipc_bin, cipc_bin, "map", "-j", "2", "--", "sh", "-c", "sleep $0; :", "{}",
              (char *)NULL);
        _exit(127);
    }
    CHECK(wait_sleep("100.4343", 1, 10));
    CHECK(kill(pid, SIGTERM) == 0);
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    CHECK(wait_sleep("100.4343", 0, 5));
}

static void test_order(void)
{
    /* Durations vary with the line (0 to 40 ms), so they finish out of order. */
    char input[512] = "", want[512] = "";
    for (int i = 1; i <= 40; i++) {
        char l[16];
        snprintf(l, sizeof l, "%d\n", i);
        strcat(input, l);
        snprintf(l, sizeof l, "<%d>\n", i);
        strcat(want, l);
    }
    struct res r = RUN(input, "-j", "4", "--", "sh", "-c",
                       "sleep 0.0$(( ($0 * 7) % 5 )); echo \"<$0>\"", "{}");
    CHECK_INT(r.status, ==, 0);
    CHECK_STR(r.out, want);
    CHECK_STR(r.err, "");
    res_free(&r);
}

static void test_speedup(void)
{
    const char *input = "1\n2\n3\n4\n5\n6\n7\n8\n";
    struct res a = RUN(input, "-j", "1", "--", "sh", "-c", "sleep 0.4; echo $0", "{}");
    struct res b = RUN(input, "-j", "4", "--", "sh", "-c", "sleep 0.4; echo $0", "{}");
    CHECK_INT(a.status, ==, 0);
    CHECK_INT(b.status, ==, 0);
    CHECK_STR(a.out, "1\n2\n3\n4\n5\n6\n7\n8\n");
    CHECK_STR(b.out, a.out);
    CHECK(a.secs >= 3.2);         /* eight sleeps one after another */
    CHECK(b.secs < a.secs * 0.6); /* four at a time: about a quarter, with room to spare */
    res_free(&a);
    res_free(&b);
}

static void test_substitution(void)
{
    struct res r = RUN("a\nb c\n", "--", "echo", "pre-{}-post", "[{}{}]");
    CHECK_INT(r.status, ==, 0);
    CHECK_STR(r.out, "pre-a-post [aa]\npre-b c-post [b cb c]\n");
    res_free(&r);

    /* No {}: the line is the last argument. The line is one argument, spaces and all. */
    r = RUN("a\nb c\n", "--", "printf", "<%s>\\n");
    CHECK_INT(r.status, ==, 0);
    CHECK_STR(r.out, "<a>\n<b c>\n");
    res_free(&r);

    /* Empty lines are skipped; a last line without '\n' counts; {} in the program name. */
    r = RUN("x\n\n\ny", "--", "ech{}", "{}");
    CHECK_INT(r.status, ==, 1);
    CHECK(strstr(r.err, "cipc map: line 1 (x): not found\n") != NULL);
    CHECK(strstr(r.err, "cipc map: line 4 (y): not found\n") != NULL);
    CHECK_INT(count_char(r.err, '\n'), ==, 2);
    res_free(&r);

    /* stdout to stdout, stderr to stderr, each task's together. */
    r = RUN("1\n2\n", "-j", "2", "--", "sh", "-c", "echo out$0; echo err$0 >&2", "{}");
    CHECK_INT(r.status, ==, 0);
    CHECK_STR(r.out, "out1\nout2\n");
    CHECK_STR(r.err, "err1\nerr2\n");
    res_free(&r);
}

static void test_failures(void)
{
    /* Exit codes and a missing program, with line numbers (empty lines count). */
    struct res r = RUN("0\n3\n\n0\n", "--", "sh", "-c", "echo ran $0; exit $0", "{}");
    CHECK_INT(r.status, ==, 1);
    CHECK_STR(r.out, "ran 0\nran 3\nran 0\n");
    CHECK_STR(r.err, "cipc map: line 2 (3): exit 3\n");
    res_free(&r);

    r = RUN("a\nb\n", "--", "/nonexistent/cipc-map-prog", "{}");
    CHECK_INT(r.status, ==, 1);
    CHECK_STR(r.err, "cipc map: line 1 (a): not found\ncipc map: line 2 (b): not found\n");
    res_free(&r);

    r = RUN("a\n", "--", "sh", "-c", "kill -9 $$", "{}");
    CHECK_INT(r.status, ==, 1);
    CHECK_STR(r.err, "cipc map: line 1 (a): killed by signal 9\n");
    res_free(&r);

    /* --timeout kills the command (its whole group), reports it and goes on. */
    CHECK(!sleep_alive("100.4242"));
    r = RUN("100.4242\n0\n", "-j", "2", "--timeout", "1", "--", "sh", "-c", "sleep $0; echo ok $0",
            "{}");
    CHECK_INT(r.status, ==, 1);
    CHECK(r.secs < 8);
    CHECK_STR(r.out, "ok 0\n");
    CHECK_STR(r.err, "cipc map: line 1 (100.4242): timed out\n");
    res_free(&r);
    CHECK(!sleep_alive("100.4242"));

    /* The same with the program itself as the command. */
    r = RUN("100.4242\n", "--timeout", "0.5", "--", "sleep");
    CHECK_INT(r.status, ==, 1);
    CHECK(r.secs < 6);
    CHECK_STR(r.err, "cipc map: line 1 (100.4242): timed out\n");
    res_free(&r);
    CHECK(!sleep_alive("100.4242"));

    /* --max-output: the command is killed, what fitted is printed. */
    r = RUN("5000\n", "--max-output", "1K", "--", "head", "-c", "{}", "/dev/zero");
    CHECK_INT(r.status, ==, 1);
    CHECK_INT(r.out_len, ==, 1024);
    CHECK_STR(r.err, "cipc map: line 1 (5000): more than 1024 bytes of output (killed)\n");
    res_free(&r);

    /* --halt-on-error: nothing after the first failure is printed or reported as run. */
    r = RUN("1\n2\n3\n4\n5\n", "-j", "1", "--halt-on-error", "--", "sh", "-c",
            "echo $0; exit $(( $0 == 2 ))", "{}");
    CHECK_INT(r.status, ==, 1);
    CHECK_STR(r.out, "1\n2\n");
    CHECK_STR(r.err, "cipc map: line 2 (2): exit 1\n"
                     "cipc map: stopped at the first failure (--halt-on-error): 3 later lines not "
                     "run or killed\n");
    res_free(&r);

    /* --halt-on-error kills the commands still running, grandchildren included. */
    CHECK(!sleep_alive("100.4545"));
    r = RUN("1\n100.4545\n100.4545\n4\n", "-j", "3", "--halt-on-error", "--", "sh", "-c",
            "if [ $0 = 1 ]; then sleep 0.3; exit 1; fi; sleep $0; :", "{}");
    CHECK_INT(r.status, ==, 1);
    CHECK(r.secs < 5);
    CHECK_STR(r.err, "cipc map: line 1 (1): exit 1\n"
                     "cipc map: stopped at the first failure (--halt-on-error): 3 later lines not "
                     "run or killed\n");
    res_free(&r);
    CHECK(wait_sleep("100.4545", 0, 5));

    /* --keep-going (the default) runs them all. */
    r = RUN("1\n2\n3\n", "-j", "1", "--keep-going", "--", "sh", "-c",
            "echo $0; exit $(( $0 == 2 ))", "{}");
    CHECK_INT(r.status, ==, 1);
    CHECK_STR(r.out, "1\n2\n3\n");
    CHECK_STR(r.err, "cipc map: line 2 (2): exit 1\n");
    res_free(&r);
}

static void test_many_lines(void)
{
    /* Every line is a fork and an exec, which takes several ms on a small VM, so the
     * default is 2,000 lines; CIPC_MAP_TEST_LINES=10000 runs the full size. */
    const char *env = getenv("CIPC_MAP_TEST_LINES");
    int n = env ? atoi(env) : 2000;
    CHECK(n > 0);
    size_t cap = (size_t)n * 8 + 1, len = 0;
    char *input = malloc(cap);
    CHECK(input != NULL);
    for (int i = 1; i <= n; i++)
        len += (size_t)snprintf(input + len, cap - len, "%d\n", i);
    struct res r = run_map_in(input, len, NULL, (const char *const[]){"--", "echo", "{}", NULL});
    CHECK_INT(r.status, ==, 0);
    CHECK_INT(r.out_len, ==, len);
    CHECK(memcmp(r.out, input, len) == 0);
    CHECK_STR(r.err, "");
    res_free(&r);
    free(input);
}

static void test_empty_and_usage(void)
{
    struct res r = RUN("", "--", "echo", "{}");
    CHECK_INT(r.status, ==, 0);
    CHECK_STR(r.out, "");
    CHECK_STR(r.err, "");
    res_free(&r);

    r = RUN("\n\n", "--", "false");
    CHECK_INT(r.status, ==, 0);
    CHECK_STR(r.out, "");
    res_free(&r);

    r = RUN("", "--help");
    CHECK_INT(r.status, ==, 0);
    CHECK(strncmp(r.out, "usage: cipc map", 15) == 0);
    CHECK(strstr(r.out, "--timeout") != NULL && strstr(r.out, "Exit status") != NULL);
    CHECK_STR(r.err, "");
    res_free(&r);

    /* Bad usage: exit 2 with one line on stderr, and nothing run. */
    const char *const bad[][6] = {
        {"echo", "{}", NULL}, /* no -- */
        {"--", NULL},         /* no COMMAND */
        {"-j", "0", "--", "echo", NULL},
        {"-j", "x", "--", "echo", NULL},
        {"-j", NULL},
        {"--timeout", "-1", "--", "echo", NULL},
        {"--max-output", "lots", "--", "echo", NULL},
        {"--frobnicate", "--", "echo", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = run_map_in("a\n", 2, NULL, bad[i]);
        CHECK_INT(r.status, ==, 2);
        CHECK_STR(r.out, "");
        CHECK(strncmp(r.err, "cipc map: ", 10) == 0);
        CHECK_INT(count_char(r.err, '\n'), ==, 1);
        res_free(&r);
    }
}

static void test_progress(void)
{
    /* stderr is a file: no progress bar, not even for slow tasks. */
    struct res r = RUN("1\n2\n3\n", "-j", "1", "--", "sh", "-c", "sleep 0.3; echo $0", "{}");
    CHECK_INT(r.status, ==, 0);
    CHECK_STR(r.out, "1\n2\n3\n");
    CHECK_STR(r.err, "");
    res_free(&r);

    /* stderr is a terminal: the bar is drawn, then cleared; stdout stays clean. */
    char *tty = NULL;
    const char *in = "1\n2\n3\n4\n5\n";
    r = run_map_in(
        in, strlen(in), &tty,
        (const char *const[]){"-j", "1", "--", "sh", "-c", "sleep 0.3; echo $0", "{}", NULL});
    fprintf(stderr, "pty showed %zu bytes\n", strlen(tty));
    CHECK_INT(r.status, ==, 0);
    CHECK_STR(r.out, "1\n2\n3\n4\n5\n");
    CHECK(strstr(tty, "\r[") != NULL);
    CHECK(strstr(tty, "] 0/5  ") != NULL);
    CHECK(strstr(tty, "] 2/5  ") != NULL);
    CHECK(strstr(tty, "/s  ETA ") != NULL);
    size_t tl = strlen(tty);
    CHECK(tl >= 4 && strcmp(tty + tl - 4, "\r\033[K") == 0);
    free(tty);
    res_free(&r);

    /* --no-progress on a terminal: nothing on it. */
    r = run_map_in(in, strlen(in), &tty,
                   (const char *const[]){"--no-progress", "--", "echo", "{}", NULL});
    CHECK_INT(r.status, ==, 0);
    CHECK_STR(tty, "");
    free(tty);
    res_free(&r);
}

int main(void)
{
    const char *bin = getenv("CIPC_BIN_DIR");
    CHECK(bin != NULL);
    snprintf(cipc_bin, sizeof cipc_bin, "%s/cipc", bin);
    CHECK(access(cipc_bin, X_OK) == 0);
    int pid = (int)getpid();
    snprintf(in_path, sizeof in_path, "/tmp/cipc_map_%d.in", pid);
    snprintf(out_path, sizeof out_path, "/tmp/cipc_map_%d.out", pid);
    snprintf(err_path, sizeof err_path, "/tmp/cipc_map_%d.err", pid);

    test_empty_and_usage();
    test_order();
    test_substitution();
    test_failures();
    test_progress();
    test_signal();
    test_speedup();
    test_many_lines();

    unlink(in_path);
    unlink(out_path);
    unlink(err_path);
    printf("test_cli_it_map: ok\n");
    return 0;
}
