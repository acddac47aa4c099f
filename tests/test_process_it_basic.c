/* test_process_it_basic -- cipc_process (start, spawn, join, exit codes, signals, pipes,
 * env, cwd, daemon) and cipc_pipe (round trips across fork, 0 bytes and 10 MiB, timeouts,
 * EOF, truncation, the size limit) behave as cipc/process.h says. Every wait has a
 * deadline. */
#define _GNU_SOURCE /* pipe2 */
#include <cipc/process.h>
#include <cipc/time.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "process/proc_internal.h"

#define JOIN_MS 10000 /* generous bound for children that should exit promptly */

static int ret_code(void *arg)
{
    return *(int *)arg;
}

static int do_abort(void *arg)
{
    abort();
}

static int sleep_long(void *arg)
{
    /* Sleeps 10 s at most, so a failing test never leaves it behind for long. */
    struct timespec ts = {10, 0};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    return 42;
}

static void test_exit_codes(void)
{
    int codes[] = {0, 3, 255, -1};
    int want[] = {0, 3, 255, 255};
    for (int i = 0; i < 4; i++) {
        cipc_process *p = NULL;
        CHECK_INT(cipc_process_start(ret_code, &codes[i], NULL, &p), ==, 0);
        CHECK(cipc_process_pid(p) > 0 && cipc_process_pid(p) != getpid());
        CHECK_INT(cipc_process_join(p, JOIN_MS), ==, 0);
        CHECK_INT(cipc_process_exitcode(p), ==, want[i]);
        CHECK_INT(cipc_process_is_alive(p), ==, 0);
        CHECK_INT(cipc_process_join(p, 0), ==, 0);   /* again: still 0 */
        CHECK_INT(cipc_process_terminate(p), ==, 0); /* reaped: no signal, no error */
        cipc_process_free(p);
    }
    CHECK_INT(cipc_process_start(NULL, NULL, NULL, &(cipc_process *){NULL}), ==, -EINVAL);
}

static void test_abort(void)
{
    cipc_process *p = NULL;
    CHECK_INT(cipc_process_start(do_abort, NULL, NULL, &p), ==, 0);
    CHECK_INT(cipc_process_join(p, JOIN_MS), ==, 0);
    CHECK_INT(cipc_process_exitcode(p), ==, -SIGABRT);
    cipc_process_free(p);
}

static void test_join_timeout_kill(void)
{
    cipc_process *p = NULL;
    CHECK_INT(cipc_process_start(sleep_long, NULL, &(cipc_process_opts){.name = "sleeper"}, &p), ==,
              0);
    CHECK_STR(cipc_process_name(p), "sleeper");
    CHECK_INT(cipc_process_is_alive(p), ==, 1);
    CHECK_INT(cipc_process_exitcode(p), ==, CIPC_PROCESS_RUNNING);
    int64_t t0 = cipc_now_ms();
    CHECK_INT(cipc_process_join(p, 100), ==, CIPC_ETIMEOUT);
    int64_t el = cipc_now_ms() - t0;
    CHECK_INT(el, >=, 95);
    CHECK_INT(el, <, 2000);
    CHECK_INT(cipc_process_join(p, 0), ==, CIPC_ETIMEOUT);
    CHECK_INT(cipc_process_is_alive(p), ==, 1);
    CHECK_INT(cipc_process_kill(p), ==, 0);
    t0 = cipc_now_ms();
    CHECK_INT(cipc_process_join(p, -1), ==, 0);
    CHECK_INT(cipc_now_ms() - t0, <, 5000); /* woken by the exit, not by the 10 s sleep */
    CHECK_INT(cipc_process_exitcode(p), ==, -SIGKILL);
    CHECK_INT(cipc_process_is_alive(p), ==, 0);
    cipc_process_free(p);
}

/* join without a pidfd: the waitpid + backoff fallback keeps the same contract. */
static void test_join_fallback(void)
{
    cipc_process *p = NULL;
    CHECK_INT(cipc_process_start(sleep_long, NULL, NULL, &p), ==, 0);
    cipc__process_drop_pidfd(p);
    int64_t t0 = cipc_now_ms();
    CHECK_INT(cipc_process_join(p, 100), ==, CIPC_ETIMEOUT);
    int64_t el = cipc_now_ms() - t0;
    CHECK_INT(el, >=, 95);
    CHECK_INT(el, <, 2000);
    CHECK_INT(cipc_process_kill(p), ==, 0);
    CHECK_INT(cipc_process_join(p, JOIN_MS), ==, 0);
    CHECK_INT(cipc_now_ms() - t0, <, 5000);
    CHECK_INT(cipc_process_exitcode(p), ==, -SIGKILL);
    cipc_process_free(p);
    int three = 3;
    CHECK_INT(cipc_process_start(ret_code, &three, NULL, &p), ==, 0);
    cipc__process_drop_pidfd(p);
    CHECK_INT(cipc_process_join(p, -1), ==, 0);
    CHECK_INT(cipc_process_exitcode(p), ==, 3);
    cipc_process_free(p);
}

static void test_terminate(void)
{
    cipc_process *p = NULL;
    CHECK_INT(cipc_process_start(sleep_long, NULL, NULL, &p), ==, 0);
    char want[32];
    snprintf(want, sizeof want, "Process-%ld", (long)cipc_process_pid(p));
    CHECK_STR(cipc_process_name(p), want);
    CHECK_INT(cipc_process_terminate(p), ==, 0);
    CHECK_INT(cipc_process_join(p, JOIN_MS), ==, 0);
    CHECK_INT(cipc_process_exitcode(p), ==, -SIGTERM);
    cipc_process_free(p);
}

/* free() of a running child neither kills it nor waits: it is detached. */
static void test_free_detaches(void)
{
    cipc_process *p = NULL;
    CHECK_INT(cipc_process_start(sleep_long, NULL, NULL, &p), ==, 0);
    pid_t pid = cipc_process_pid(p);
    cipc_process_free(p);
    int st = 0;
    CHECK_INT(waitpid(pid, &st, WNOHANG), ==, 0); /* still running, still our child */
    CHECK_INT(kill(pid, SIGKILL), ==, 0);
    CHECK_INT(waitpid(pid, &st, 0), ==, pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

/* Read `fd` until EOF, with a deadline, into buf (NUL-terminated). Returns the length. */
static size_t read_all(int fd, char *buf, size_t cap, int64_t timeout_ms)
{
    cipc_deadline d = cipc_deadline_in(timeout_ms);
    size_t n = 0;
    for (;;) {
        int64_t left = cipc_deadline_remaining_ms(d);
        CHECK(left != 0);
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int r = poll(&pf, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        CHECK_INT(r, >=, 0);
        if (r == 0)
            continue;
        ssize_t k = read(fd, buf + n, cap - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        CHECK_INT(k, >=, 0);
        if (k == 0)
            break;
        n += (size_t)k;
        CHECK(n < cap - 1);
    }
    buf[n] = 0;
    return n;
}

static void write_str(int fd, const char *s)
{
    size_t len = strlen(s);
    CHECK_INT(write(fd, s, len), ==, (long long)len);
}

static void test_spawn_pipes(void)
{
    /* stdin -> sh -> stdout round trip */
    cipc_process *p = NULL;
    char *argv[] = {"sh", "-c", "read x; echo \"got:$x\"; cat", NULL};
    CHECK_INT(cipc_process_spawn("/bin/sh", argv, NULL,
                                 &(cipc_process_opts){.stdin_pipe = 1, .stdout_pipe = 1}, &p),
              ==, 0);
    CHECK(cipc_process_stdin_fd(p) > 2);
    CHECK(cipc_process_stdout_fd(p) > 2);
    CHECK_INT(cipc_process_stderr_fd(p), ==, -1);
    write_str(cipc_process_stdin_fd(p), "hello\nsecond line\n");
    cipc_process_close_stdin(p);
    cipc_process_close_stdin(p); /* idempotent */
    CHECK_INT(cipc_process_stdin_fd(p), ==, -1);
    char buf[256];
    read_all(cipc_process_stdout_fd(p), buf, sizeof buf, JOIN_MS);
    CHECK_STR(buf, "got:hello\nsecond line\n");
    CHECK_INT(cipc_process_join(p, JOIN_MS), ==, 0);
    CHECK_INT(cipc_process_exitcode(p), ==, 0);
    cipc_process_free(p);

    /* a PATH search ("sh"), exit status and stderr on its own pipe */
    char *argv2[] = {"sh", "-c", "echo out; echo err >&2; exit 7", NULL};
    CHECK_INT(cipc_process_spawn("sh", argv2, NULL,
                                 &(cipc_process_opts){.stdout_pipe = 1, .stderr_pipe = 1}, &p),
              ==, 0);
    read_all(cipc_process_stdout_fd(p), buf, sizeof buf, JOIN_MS);
    CHECK_STR(buf, "out\n");
    read_all(cipc_process_stderr_fd(p), buf, sizeof buf, JOIN_MS);
    CHECK_STR(buf, "err\n");
    CHECK_INT(cipc_process_join(p, JOIN_MS), ==, 0);
    CHECK_INT(cipc_process_exitcode(p), ==, 7);
    cipc_process_free(p);

    /* stderr merged into stdout */
    char *argv3[] = {"sh", "-c", "echo out; echo err >&2", NULL};
    CHECK_INT(cipc_process_spawn(
                  "/bin/sh", argv3, NULL,
                  &(cipc_process_opts){.stdout_pipe = 1, .stderr_pipe = 1, .stderr_to_stdout = 1},
                  &p),
              ==, 0);
    CHECK_INT(cipc_process_stderr_fd(p), ==, -1);
    read_all(cipc_process_stdout_fd(p), buf, sizeof buf, JOIN_MS);
    CHECK_STR(buf, "out\nerr\n");
    CHECK_INT(cipc_process_join(p, JOIN_MS), ==, 0);
    cipc_process_free(p);

    /* a signal death of a program */
    char *argv4[] = {"sh", "-c", "kill -9 $$", NULL};
    CHECK_INT(cipc_process_spawn("/bin/sh", argv4, NULL, NULL, &p), ==, 0);
    CHECK_INT(cipc_process_join(p, JOIN_MS), ==, 0);
    CHECK_INT(cipc_process_exitcode(p), ==, -SIGKILL);
    cipc_process_free(p);

    /* only 0, 1, 2 are inherited: fd 3.. of the parent are not open in the program */
    int extra[2];
    CHECK_INT(pipe(extra), ==, 0); /* not close-on-exec */
    char check[128];
    snprintf(check, sizeof check,
             "if [ -e /proc/self/fd/%d ]; then echo open; else echo closed; fi", extra[0]);
    char *argv5[] = {"sh", "-c", check, NULL};
    CHECK_INT(
        cipc_process_spawn("/bin/sh", argv5, NULL, &(cipc_process_opts){.stdout_pipe = 1}, &p), ==,
        0);
    read_all(cipc_process_stdout_fd(p), buf, sizeof buf, JOIN_MS);
    CHECK_STR(buf, "closed\n");
    CHECK_INT(cipc_process_join(p, JOIN_MS), ==, 0);
    cipc_process_free(p);
    close(extra[0]);
    close(extra[1]);
}

static void test_spawn_env_cwd(void)
{
    cipc_process *p = NULL;
    char buf[256];
    char *argv[] = {"sh", "-c", "echo \"$FOO|$HOME|$(pwd)\"", NULL};
    char *envp[] = {"FOO=bar baz", NULL};
    CHECK_INT(cipc_process_spawn("/bin/sh", argv, envp,
                                 &(cipc_process_opts){.stdout_pipe = 1, .cwd = "/"}, &p),
              ==, 0);
    read_all(cipc_process_stdout_fd(p), buf, sizeof buf, JOIN_MS);
    CHECK_STR(buf, "bar baz||/\n");
    CHECK_INT(cipc_process_join(p, JOIN_MS), ==, 0);
    CHECK_INT(cipc_process_exitcode(p), ==, 0);
    cipc_process_free(p);

    /* NULL envp inherits */
    CHECK_INT(setenv("CIPC_TEST_VAR", "inherited", 1), ==, 0);
    char *argv2[] = {"sh", "-c", "echo \"$CIPC_TEST_VAR\"", NULL};
    CHECK_INT(
        cipc_process_spawn("/bin/sh", argv2, NULL, &(cipc_process_opts){.stdout_pipe = 1}, &p), ==,
        0);
    read_all(cipc_process_stdout_fd(p), buf, sizeof buf, JOIN_MS);
    CHECK_STR(buf, "inherited\n");
    CHECK_INT(cipc_process_join(p, JOIN_MS), ==, 0);
    cipc_process_free(p);
}

static int print_cwd(void *arg)
{
    char buf[512];
    if (!getcwd(buf, sizeof buf))
        return 1;
    printf("%s\n", buf);
    return 0;
}

static void test_errors(void)
{
    cipc_process *p = NULL;
    char *argv[] = {"x", NULL};
    CHECK_INT(cipc_process_spawn("/nonexistent/cipc-no-such-program", argv, NULL, NULL, &p), ==,
              -ENOENT);
    CHECK_INT(cipc_process_spawn("cipc-no-such-program-in-path", argv, NULL, NULL, &p), ==,
              -ENOENT);
    CHECK(p == NULL);
    /* a file that is not executable */
    char path[] = "/tmp/cipc-test-noexec-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK_INT(cipc_process_spawn(path, argv, NULL, NULL, &p), ==, -EACCES);
    unlink(path);
    /* a bad cwd, both ways */
    char *argv2[] = {"true", NULL};
    CHECK_INT(cipc_process_spawn("/bin/true", argv2, NULL,
                                 &(cipc_process_opts){.cwd = "/nonexistent/dir"}, &p),
              ==, -ENOENT);
    CHECK_INT(
        cipc_process_start(print_cwd, NULL, &(cipc_process_opts){.cwd = "/nonexistent/dir"}, &p),
        ==, -ENOENT);
    CHECK(p == NULL);
    CHECK_INT(cipc_process_spawn(NULL, argv, NULL, NULL, &p), ==, -EINVAL);
    CHECK_INT(cipc_process_spawn("/bin/true", NULL, NULL, NULL, &p), ==, -EINVAL);
    /* no zombie left behind by the failed spawns */
    CHECK_INT(waitpid(-1, NULL, WNOHANG), ==, -1);
    CHECK_INT(errno, ==, ECHILD);

    /* start with cwd and a stdout pipe */
    CHECK_INT(cipc_process_start(print_cwd, NULL,
                                 &(cipc_process_opts){.cwd = "/tmp", .stdout_pipe = 1}, &p),
              ==, 0);
    char buf[256];
    read_all(cipc_process_stdout_fd(p), buf, sizeof buf, JOIN_MS);
    CHECK_STR(buf, "/tmp\n");
    CHECK_INT(cipc_process_join(p, JOIN_MS), ==, 0);
    CHECK_INT(cipc_process_exitcode(p), ==, 0);
    cipc_process_free(p);
}

/* The daemon flag: an intermediate process starts daemon children (one forked, one
 * spawned), reports their pids, and is then SIGKILLed: the children must die with it.
 * This test process is a child subreaper, so the orphans are reparented to it and it can
 * reap them and see how they died. (The other half of the daemon logic -- the parent
 * dying between fork() and prctl(PR_SET_PDEATHSIG), caught by comparing getppid() with
 * the pid recorded before the fork -- is a race no test can trigger on purpose.) */
static int intermediate(void *arg)
{
    int wfd = *(int *)arg;
    cipc_process *a = NULL, *b = NULL;
    if (cipc_process_start(sleep_long, NULL, &(cipc_process_opts){.daemon = 1}, &a) < 0)
        return 1;
    char *argv[] = {"sleep", "10", NULL};
    if (cipc_process_spawn("sleep", argv, NULL, &(cipc_process_opts){.daemon = 1}, &b) < 0)
        return 1;
    pid_t pids[2] = {cipc_process_pid(a), cipc_process_pid(b)};
    if (write(wfd, pids, sizeof pids) != (ssize_t)sizeof pids)
        return 1;
    for (;;)
        pause();
}

static void wait_orphan_killed(pid_t pid)
{
    /* A pidfd becomes readable when the process exits: no sleeping. */
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd >= 0) {
        struct pollfd pf = {.fd = pfd, .events = POLLIN};
        int r;
        while ((r = poll(&pf, 1, JOIN_MS)) < 0 && errno == EINTR)
            ;
        CHECK_INT(r, ==, 1); /* died within the deadline */
        close(pfd);
    }
    int st = 0;
    pid_t r;
    cipc_deadline d = cipc_deadline_in(JOIN_MS);
    while ((r = waitpid(pid, &st, WNOHANG)) == 0 && !cipc_deadline_expired(d))
        cipc_sleep_ms(5); /* only without a pidfd */
    CHECK_INT(r, ==, pid);
    CHECK(WIFSIGNALED(st));
    CHECK_INT(WTERMSIG(st), ==, SIGKILL);
}

static void test_daemon(void)
{
    CHECK_INT(prctl(PR_SET_CHILD_SUBREAPER, 1), ==, 0);
    int fds[2];
    CHECK_INT(pipe2(fds, O_CLOEXEC), ==, 0);
    cipc_process *mid = NULL;
    CHECK_INT(cipc_process_start(intermediate, &fds[1], NULL, &mid), ==, 0);
    close(fds[1]);
    pid_t pids[2];
    struct pollfd pf = {.fd = fds[0], .events = POLLIN};
    CHECK_INT(poll(&pf, 1, JOIN_MS), ==, 1);
    CHECK_INT(read(fds[0], pids, sizeof pids), ==, (long long)sizeof pids);
    close(fds[0]);
    CHECK(kill(pids[0], 0) == 0 && kill(pids[1], 0) == 0); /* both running */
    CHECK_INT(cipc_process_kill(mid), ==, 0);
    CHECK_INT(cipc_process_join(mid, JOIN_MS), ==, 0);
    CHECK_INT(cipc_process_exitcode(mid), ==, -SIGKILL);
    cipc_process_free(mid);
    wait_orphan_killed(pids[0]);
    wait_orphan_killed(pids[1]);
    CHECK_INT(prctl(PR_SET_CHILD_SUBREAPER, 0), ==, 0);
}

/* --- cipc_pipe ---------------------------------------------------------------------- */

struct ends {
    cipc_pipe *a, *b;
};

#define BIG (10u * 1024 * 1024)

/* Child side: says "ready", then echoes every message back until EOF. Exit 0 on a clean
 * EOF, 10 + step on anything unexpected. */
static int echo_child(void *arg)
{
    struct ends *e = arg;
    cipc_pipe_close(e->a); /* the parent's end */
    if (cipc_pipe_send_bytes(e->b, "ready", 5, JOIN_MS) < 0)
        return 10;
    for (;;) {
        void *m = NULL;
        size_t len = 0;
        int rc = cipc_pipe_recv_bytes(e->b, &m, &len, JOIN_MS);
        if (rc == CIPC_ECLOSING)
            break;
        if (rc < 0)
            return 11;
        rc = cipc_pipe_send_bytes(e->b, m, len, JOIN_MS);
        free(m);
        if (rc < 0)
            return 12;
    }
    cipc_pipe_close(e->b);
    return 0;
}

static void recv_expect(cipc_pipe *p, const void *want, size_t want_len)
{
    void *m = NULL;
    size_t len = 1234;
    CHECK_INT(cipc_pipe_recv_bytes(p, &m, &len, JOIN_MS), ==, 0);
    CHECK(m != NULL);
    CHECK_INT(len, ==, want_len);
    CHECK(memcmp(m, want, want_len) == 0);
    CHECK_INT(((char *)m)[len], ==, 0);
    free(m);
}

static void test_pipe_fork(void)
{
    struct ends e;
    CHECK_INT(cipc_pipe_new(&e.a, &e.b), ==, 0);
    cipc_process *p = NULL;
    CHECK_INT(cipc_process_start(echo_child, &e, NULL, &p), ==, 0);
    cipc_pipe_close(e.b); /* the child's end */
    recv_expect(e.a, "ready", 5);
    CHECK_INT(cipc_pipe_send_bytes(e.a, "hello", 5, JOIN_MS), ==, 0);
    recv_expect(e.a, "hello", 5);
    CHECK_INT(cipc_pipe_send_bytes(e.a, NULL, 0, JOIN_MS), ==, 0);
    recv_expect(e.a, "", 0);
    unsigned char *big = malloc(BIG);
    CHECK(big != NULL);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (unsigned char)(i * 2654435761u >> 13);
    CHECK_INT(cipc_pipe_send_bytes(e.a, big, BIG, JOIN_MS), ==, 0);
    CHECK_INT(cipc_pipe_poll(e.a, JOIN_MS), ==, 1);
    recv_expect(e.a, big, BIG);
    free(big);
    CHECK_INT(cipc_pipe_send_bytes(e.a, "bye", 3, JOIN_MS), ==, 0);
    recv_expect(e.a, "bye", 3);
    cipc_pipe_close(e.a); /* the child reads EOF and exits 0 */
    CHECK_INT(cipc_process_join(p, JOIN_MS), ==, 0);
    CHECK_INT(cipc_process_exitcode(p), ==, 0);
    cipc_process_free(p);
}

static void test_pipe_local(void)
{
    cipc_pipe *a = NULL, *b = NULL;
    CHECK_INT(cipc_pipe_new(&a, &b), ==, 0);
    CHECK(cipc_pipe_fd(a) >= 0 && cipc_pipe_fd(b) >= 0);

    /* recv timeout and poll */
    void *m = NULL;
    size_t len = 0;
    int64_t t0 = cipc_now_ms();
    CHECK_INT(cipc_pipe_recv_bytes(b, &m, &len, 100), ==, CIPC_ETIMEOUT);
    int64_t el = cipc_now_ms() - t0;
    CHECK_INT(el, >=, 95);
    CHECK_INT(el, <, 2000);
    CHECK_INT(cipc_pipe_recv_bytes(b, &m, &len, 0), ==, CIPC_ETIMEOUT);
    CHECK_INT(cipc_pipe_poll(b, 50), ==, 0);
    CHECK_INT(cipc_pipe_send_bytes(a, "x", 1, 0), ==, 0);
    CHECK_INT(cipc_pipe_poll(b, JOIN_MS), ==, 1);
    recv_expect(b, "x", 1);
    /* both ways */
    CHECK_INT(cipc_pipe_send_bytes(b, "back", 4, JOIN_MS), ==, 0);
    recv_expect(a, "back", 4);

    /* a message received in pieces: a timeout keeps the part, the next call resumes */
    unsigned char hdr[4] = {0, 0, 0, 6};
    CHECK_INT(write(cipc_pipe_fd(a), hdr, 4), ==, 4);
    CHECK_INT(write(cipc_pipe_fd(a), "abc", 3), ==, 3);
    CHECK_INT(cipc_pipe_recv_bytes(b, &m, &len, 50), ==, CIPC_ETIMEOUT);
    CHECK_INT(write(cipc_pipe_fd(a), "def", 3), ==, 3);
    recv_expect(b, "abcdef", 6);

    /* over the limit: the receiver skips it and stays usable */
    cipc_pipe_set_max(b, 1024);
    char *two_k = calloc(1, 2000);
    CHECK(two_k != NULL);
    CHECK_INT(cipc_pipe_send_bytes(a, two_k, 2000, JOIN_MS), ==, 0);
    CHECK_INT(cipc_pipe_send_bytes(a, "ok", 2, JOIN_MS), ==, 0);
    CHECK_INT(cipc_pipe_recv_bytes(b, &m, &len, JOIN_MS), ==, CIPC_ETOOBIG);
    recv_expect(b, "ok", 2);
    /* and the sender refuses what is over its own limit, sending nothing */
    cipc_pipe_set_max(a, 10);
    CHECK_INT(cipc_pipe_send_bytes(a, two_k, 11, JOIN_MS), ==, CIPC_ETOOBIG);
    CHECK_INT(cipc_pipe_send_bytes(a, two_k, 10, JOIN_MS), ==, 0);
    recv_expect(b, two_k, 10);
    cipc_pipe_set_max(a, 0); /* back to the default */
    cipc_pipe_set_max(b, 0);
    free(two_k);

    /* EOF after the messages already sent; then sends fail with -EPIPE */
    CHECK_INT(cipc_pipe_send_bytes(a, "last", 4, JOIN_MS), ==, 0);
    cipc_pipe_close(a);
    recv_expect(b, "last", 4);
    CHECK_INT(cipc_pipe_poll(b, JOIN_MS), ==, 1);
    CHECK_INT(cipc_pipe_recv_bytes(b, &m, &len, JOIN_MS), ==, CIPC_ECLOSING);
    CHECK_INT(cipc_pipe_recv_bytes(b, &m, &len, JOIN_MS), ==, CIPC_ECLOSING);
    CHECK_INT(cipc_pipe_send_bytes(b, "x", 1, JOIN_MS), ==, -EPIPE);
    cipc_pipe_close(b);

    /* EOF in the middle of a message */
    CHECK_INT(cipc_pipe_new(&a, &b), ==, 0);
    unsigned char hdr10[4] = {0, 0, 0, 10};
    CHECK_INT(write(cipc_pipe_fd(a), hdr10, 4), ==, 4);
    CHECK_INT(write(cipc_pipe_fd(a), "abc", 3), ==, 3);
    cipc_pipe_close(a);
    CHECK_INT(cipc_pipe_recv_bytes(b, &m, &len, JOIN_MS), ==, CIPC_ETRUNCATED);
    CHECK_INT(cipc_pipe_recv_bytes(b, &m, &len, JOIN_MS), ==, CIPC_ECLOSING);
    cipc_pipe_close(b);

    /* a send that times out part-way breaks the sending end */
    CHECK_INT(cipc_pipe_new(&a, &b), ==, 0);
    char *big = calloc(1, BIG);
    CHECK(big != NULL);
    t0 = cipc_now_ms();
    CHECK_INT(cipc_pipe_send_bytes(a, big, BIG, 100), ==, CIPC_ETIMEOUT);
    CHECK_INT(cipc_now_ms() - t0, <, 2000);
    CHECK_INT(cipc_pipe_send_bytes(a, "x", 1, 0), ==, CIPC_EPROTO);
    free(big);
    cipc_pipe_close(a);
    cipc_pipe_close(b);

    CHECK_INT(cipc_pipe_new(NULL, &b), ==, -EINVAL);
    cipc_pipe_close(NULL);
    cipc_process_free(NULL);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* abort() in a child must not write a core file */
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);

    test_exit_codes();
    test_abort();
    test_join_timeout_kill();
    test_join_fallback();
    test_terminate();
    test_free_detaches();
    test_spawn_pipes();
    test_spawn_env_cwd();
    test_errors();
    test_daemon();
    test_pipe_fork();
    test_pipe_local();
    printf("test_process_it_basic: ok\n");
    return 0;
}
