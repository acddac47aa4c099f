/* tests/test_cli_it_bus.c -- `cipc pub/sub/push/pop` against the cipc broker (run in this
 * process): output and exit codes, a subscriber that prints what redis-cli publishes,
 * patterns with the channel prefix, FIFO pops, an empty queue, --wait, --timeout,
 * --count, a server that is not there, and bad usage. */
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "broker_helper.h"

static char g_cipc[512];

/* Run cipc with args (NULL-terminated), stdout into out; returns the exit status. */
static int run(char *out, size_t cap, ...)
{
    const char *argv[16] = {g_cipc};
    int n = 1;
    va_list ap;
    va_start(ap, cap);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 15)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execv(g_cipc, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < cap && (r = read(p[0], out + got, cap - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = 0;
    close(p[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Start `cipc sub ...` with its stdout on a pipe; returns the pid, *fd the read end. */
static pid_t start_sub(int *fd, const char *url, const char *a1, const char *a2, const char *a3)
{
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl(g_cipc, "cipc", "sub", a1, a2 ? a2 : "--url", a2 ? a3 : url, a2 ? "--url" : NULL,
              a2 ? url : NULL, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    *fd = p[0];
    return pid;
}

/* Wait until NUMSUB/NUMPAT shows the subscriber (so a publish reaches it). */
static void wait_subscribed(int port, const char *cmd, const char *want)
{
    int64_t deadline = tb_now_ms() + 10000;
    for (;;) {
        int fd = rc_connect(port);
        rc_send(fd, cmd);
        char buf[128] = {0};
        size_t n = rc_read_n(fd, buf, strlen(want), 2000);
        close(fd);
        if (n == strlen(want) && memcmp(buf, want, n) == 0)
            return;
        CHECK(tb_now_ms() < deadline);
        usleep(10000);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *bin = getenv("CIPC_BIN_DIR");
    snprintf(g_cipc, sizeof g_cipc, "%s/cipc", bin ? bin : "build/bin");
    tbroker tb;
    CHECK(tbroker_start(&tb, NULL) == 0);
    char url[64], out[4096];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", tb.port);

    /* push / pop: FIFO, lengths, an empty queue, --wait. */
    CHECK_INT(run(out, sizeof out, "push", "jobs", "first", "--url", url, NULL), ==, 0);
    CHECK_STR(out, "1\n");
    CHECK_INT(run(out, sizeof out, "push", "jobs", "second item", "--url", url, NULL), ==, 0);
    CHECK_STR(out, "2\n");
    CHECK_INT(run(out, sizeof out, "pop", "jobs", "--url", url, NULL), ==, 0);
    CHECK_STR(out, "first\n");
    CHECK_INT(run(out, sizeof out, "pop", "jobs", "--url", url, NULL), ==, 0);
    CHECK_STR(out, "second item\n");
    CHECK_INT(run(out, sizeof out, "pop", "jobs", "--url", url, NULL), ==, 1);
    CHECK_STR(out, "");
    int64_t t0 = tb_now_ms();
    CHECK_INT(run(out, sizeof out, "pop", "jobs", "--wait", "0.3", "--url", url, NULL), ==, 1);
    CHECK(tb_now_ms() - t0 >= 250);

    /* pub with nobody listening, then a subscriber that counts two messages. */
    CHECK_INT(run(out, sizeof out, "pub", "news", "nobody", "--url", url, NULL), ==, 0);
    CHECK_STR(out, "0\n");
    int sfd;
    pid_t sub = start_sub(&sfd, url, "news", "--count", "2");
    wait_subscribed(tb.port, "PUBSUB NUMSUB news\r\n", "*2\r\n$4\r\nnews\r\n:1\r\n");
    CHECK_INT(run(out, sizeof out, "pub", "news", "hello there", "--url", url, NULL), ==, 0);
    CHECK_STR(out, "1\n");
    int fd = rc_connect(tb.port); /* a raw publisher, as any Redis client would */
    rc_send(fd, "PUBLISH news second\r\n");
    rc_expect(fd, ":1\r\n");
    close(fd);
    char sbuf[256];
    size_t n = rc_read_n(sfd, sbuf, strlen("hello there\nsecond\n"), RC_TIMEOUT_MS);
    sbuf[n] = 0;
    CHECK_STR(sbuf, "hello there\nsecond\n");
    int st = 0;
    CHECK(waitpid(sub, &st, 0) == sub); /* --count 2: exits by itself */
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(sfd);

    /* A pattern: "channel: payload". */
    sub = start_sub(&sfd, url, "n*s", "--count", "1");
    wait_subscribed(tb.port, "PUBSUB NUMPAT\r\n", ":1\r\n");
    CHECK_INT(run(out, sizeof out, "pub", "nets", "x", "--url", url, NULL), ==, 0);
    n = rc_read_n(sfd, sbuf, strlen("nets: x\n"), RC_TIMEOUT_MS);
    sbuf[n] = 0;
    CHECK_STR(sbuf, "nets: x\n");
    CHECK(waitpid(sub, &st, 0) == sub);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(sfd);

    /* --timeout with no message: 1. */
    t0 = tb_now_ms();
    CHECK_INT(run(out, sizeof out, "sub", "quiet", "--timeout", "0.3", "--url", url, NULL), ==, 1);
    CHECK(tb_now_ms() - t0 >= 250);

    /* $CIPC_URL is the default URL. */
    setenv("CIPC_URL", url, 1);
    CHECK_INT(run(out, sizeof out, "push", "env", "v", NULL), ==, 0);
    CHECK_STR(out, "1\n");
    unsetenv("CIPC_URL");

    /* No server, bad usage, --help. */
    CHECK_INT(run(out, sizeof out, "pub", "a", "b", "--url", "redis://127.0.0.1:1", NULL), ==, 1);
    CHECK_INT(run(out, sizeof out, "pub", "a", "--url", url, NULL), ==, 2);
    CHECK_INT(run(out, sizeof out, "pop", "q", "--wait", "soon", "--url", url, NULL), ==, 2);
    CHECK_INT(run(out, sizeof out, "push", "a", "b", "--url", "http://x", NULL), ==, 1);
    CHECK_INT(run(out, sizeof out, "sub", "--help", NULL), ==, 0);
    CHECK(strstr(out, "usage: cipc pub") != NULL);

    tbroker_stop(&tb);
    puts("test_cli_it_bus: ok");
    return 0;
}
