/* tests/cli_helper.h -- header-only helpers for the tests of the `cipc` binary
 * ($CIPC_BIN_DIR/cipc): run it with given stdin bytes and capture stdout and stderr apart,
 * with a deadline (killed when it passes: never a test that hangs), or run it on a
 * pseudo-terminal and wait for text to appear on it.
 *
 *     cli_init();
 *     cli_out r;
 *     CHECK_INT(cli_run(&r, NULL, 10000, "get", url, "--check-status", NULL), ==, 4);
 *     CHECK(strstr(r.err, "404") != NULL);
 *
 * Everything is static inline so that files using part of it compile warning-free. */
#ifndef CIPC_TESTS_CLI_HELPER_H
#define CIPC_TESTS_CLI_HELPER_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "peer.h"

#define CLI_MAX_ARGS 32

#ifndef RUN /* as server_helper.h's */
#define RUN(fn)                                                                                    \
    do {                                                                                           \
        int64_t t0_ = peer_now_ms();                                                               \
        fn();                                                                                      \
        fprintf(stderr, "%s: %lld ms\n", #fn, (long long)(peer_now_ms() - t0_));                   \
    } while (0)
#endif

static char cli_bin[512];

/* Find the binary ($CIPC_BIN_DIR/cipc) and ignore SIGPIPE. Call once first. */
static inline void cli_init(void)
{
    const char *bin = getenv("CIPC_BIN_DIR");
    CHECK(bin != NULL);
    snprintf(cli_bin, sizeof cli_bin, "%s/cipc", bin);
    CHECK(access(cli_bin, X_OK) == 0);
    signal(SIGPIPE, SIG_IGN);
}

typedef struct cli_out {
    int status;      /* exit status, 128 + signal, or -1 when killed at the deadline */
    char out[65536]; /* stdout, NUL-terminated (truncated) */
    size_t out_len;
    char err[8192]; /* stderr, NUL-terminated (truncated) */
    size_t err_len;
    int64_t ms; /* how long it ran */
} cli_out;

/* Number of lines in s (counting a last one without "\n"). */
static inline int cli_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        if (*s == '\n' || !s[1])
            n++;
    return n;
}

/* Run `cipc` with the NULL-terminated `argv` (without argv[0]); stdin is `in` (or
 * /dev/null when NULL). Kills it after `timeout_ms`. Returns r->status. */
static inline int cli_runv(cli_out *r, const char *in, int64_t timeout_ms, const char *const *args)
{
    const char *argv[CLI_MAX_ARGS + 2] = {cli_bin};
    int n = 1;
    for (; args[n - 1] && n <= CLI_MAX_ARGS; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    int pin[2] = {-1, -1}, pout[2], perr[2];
    CHECK(in == NULL || peer_pipe_cloexec(pin) == 0);
    CHECK(peer_pipe_cloexec(pout) == 0);
    CHECK(peer_pipe_cloexec(perr) == 0);
    fflush(stdout);
    fflush(stderr);
    int64_t t0 = peer_now_ms();
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int fd0 = in ? pin[0] : open("/dev/null", O_RDONLY);
        if (fd0 < 0 || dup2(fd0, 0) < 0 || dup2(pout[1], 1) < 0 || dup2(perr[1], 2) < 0)
            _exit(126);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pout[1]);
    close(perr[1]);
    if (in) {
        close(pin[0]);
        size_t len = strlen(in), off = 0;
        while (off < len) { /* small inputs: they fit in the pipe */
            ssize_t w = write(pin[1], in + off, len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        close(pin[1]);
    }
    r->out_len = r->err_len = 0;
    int64_t end = t0 + timeout_ms;
    int open_fds = 2, killed = 0;
    struct pollfd pf[2] = {{.fd = pout[0], .events = POLLIN}, {.fd = perr[0], .events = POLLIN}};
    while (open_fds > 0) {
        int64_t left = end - peer_now_ms();
        if (left <= 0) {
            fprintf(stderr, "cli_run: cipc %s %s still running after %lld ms: killing it\n",
                    args[0] ? args[0] : "", args[0] && args[1] ? args[1] : "",
                    (long long)timeout_ms);
            kill(pid, SIGKILL);
            killed = 1;
            break;
        }
        int pr = poll(pf, 2, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char tmp[4096];
            ssize_t got = read(pf[i].fd, tmp, sizeof tmp);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                close(pf[i].fd);
                pf[i].fd = -1;
                open_fds--;
                continue;
            }
            char *dst = i == 0 ? r->out : r->err;
            size_t *len = i == 0 ? &r->out_len : &r->err_len;
            size_t cap = (i == 0 ? sizeof r->out : sizeof r->err) - 1;
            for (ssize_t k = 0; k < got && *len < cap; k++)
                dst[(*len)++] = tmp[k];
        }
    }
    for (int i = 0; i < 2; i++)
        if (pf[i].fd >= 0)
            close(pf[i].fd);
    r->out[r->out_len] = '\0';
    r->err[r->err_len] = '\0';
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    r->ms = peer_now_ms() - t0;
    r->status = killed ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    fprintf(stderr, "cipc %s %s -> %d in %lld ms; stdout: %.300s; stderr: %.300s\n",
            args[0] ? args[0] : "", args[0] && args[1] ? args[1] : "", r->status, (long long)r->ms,
            r->out, r->err);
    return r->status;
}

/* cli_runv() with the arguments listed, NULL-terminated. */
static inline int cli_run(cli_out *r, const char *in, int64_t timeout_ms, ...)
{
    const char *args[CLI_MAX_ARGS + 1];
    int n = 0;
    va_list ap;
    va_start(ap, timeout_ms);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < CLI_MAX_ARGS)
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    return cli_runv(r, in, timeout_ms, args);
}

/* --- On a pseudo-terminal --------------------------------------------------------- */

typedef struct cli_pty {
    pid_t pid;
    int master;       /* read what cipc prints, write what the user types */
    char seen[65536]; /* everything read so far, NUL-terminated */
    size_t len;
} cli_pty;

/* Start `cipc` with the NULL-terminated args on a new pseudo-terminal (its stdin, stdout
 * and stderr). */
static inline void cli_pty_start(cli_pty *p, const char *const *args)
{
    const char *argv[CLI_MAX_ARGS + 2] = {cli_bin};
    int n = 1;
    for (; args[n - 1] && n <= CLI_MAX_ARGS; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    memset(p, 0, sizeof *p);
    fflush(stdout);
    fflush(stderr);
    p->pid = forkpty(&p->master, NULL, NULL, NULL);
    CHECK(p->pid >= 0);
    if (p->pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
}

/* Read from the terminal until `text` has appeared (anywhere in what was read so far) or
 * `timeout_ms` passes. Returns 1 if it appeared. */
static inline int cli_pty_wait_for(cli_pty *p, const char *text, int64_t timeout_ms)
{
    int64_t end = peer_now_ms() + timeout_ms;
    while (!strstr(p->seen, text)) {
        int64_t left = end - peer_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd pf = {.fd = p->master, .events = POLLIN};
        int pr = poll(&pf, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        ssize_t got = read(p->master, p->seen + p->len, sizeof p->seen - 1 - p->len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) /* EIO: the child closed the terminal */
            return strstr(p->seen, text) != NULL;
        p->len += (size_t)got;
        p->seen[p->len] = '\0';
    }
    return 1;
}

/* Type `s` on the terminal. */
static inline void cli_pty_type(cli_pty *p, const char *s)
{
    size_t len = strlen(s);
    CHECK_INT(write(p->master, s, len), ==, (long long)len);
}

/* Wait up to `timeout_ms` for cipc to exit (killing it after). Returns its exit status,
 * or -1 when it had to be killed. */
static inline int cli_pty_wait_exit(cli_pty *p, int64_t timeout_ms)
{
    int st = 0, status = -1;
    if (peer_reap(p->pid, timeout_ms, &st)) {
        status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    } else {
        fprintf(stderr, "cli_pty: cipc still running after %lld ms: killing it\n",
                (long long)timeout_ms);
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &st, 0);
    }
    close(p->master);
    fprintf(stderr, "cipc (pty) -> %d; terminal: %.600s\n", status, p->seen);
    return status;
}

#endif
