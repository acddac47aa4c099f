/* cipc map -- run a command for each line of stdin on a process pool, like `xargs -P` or
 * GNU parallel, printing each command's output in input order.
 *
 *   cipc map [-j N] [--timeout SECONDS] [--keep-going|--halt-on-error] [--no-progress]
 *            [--max-output BYTES] -- COMMAND [ARGS...]
 *
 * Decisions (also in `cipc map --help`):
 * - Input: all of stdin is read first (so the total is known for the progress bar), then
 *   split on '\n'. A line is used without its '\n' (a '\r' before it is kept). Empty
 *   lines are skipped, as xargs does, but still counted in the line numbers of error
 *   messages. A line holding a NUL byte cannot be an argument: it fails without running.
 *   Empty stdin runs nothing and exits 0 (GNU parallel's behaviour, xargs -r).
 * - Command line: every "{}" in COMMAND and ARGS is replaced by the line; when no word
 *   contains "{}" the line is appended as the last argument (xargs). The program is run
 *   directly with execvp (no shell); for one, pass `sh -c '...' _ {}`.
 * - The command runs with stdin from /dev/null, in its own process group, and with
 *   PR_SET_PDEATHSIG (SIGKILL) so it dies with its worker. Its stdout and stderr are both
 *   captured (GNU parallel's default --group): when its turn comes in input order, its
 *   stdout is written to cipc's stdout and then its stderr to cipc's stderr, so the output
 *   of different commands never interleaves. --max-output (default 1 MiB) bounds the two
 *   together: a command that writes more is killed and fails (what it wrote up to the
 *   limit is still printed).
 * - --timeout: the worker kills the command's whole process group (SIGKILL) when the time
 *   is up and the task fails as "timed out". The pool's own task timeout is set a few
 *   seconds later as a backstop (it kills the worker; PDEATHSIG then kills the command).
 * - Exit status: 0 when every command exited 0; 1 when any failed (non-zero exit, killed
 *   by a signal, could not be run, timed out, too much output), and then one line per
 *   failed task is printed to stderr at the end, in input order:
 *       cipc map: line N (INPUT): exit 3 | killed by signal 9 | not found | timed out | ...
 *   1 also when cipc itself cannot run (stdin unreadable, pool not started); 2 for bad
 *   usage (one line on stderr).
 * - --halt-on-error: at the first failure in input order no new command is started;
 *   commands still running are killed (their process groups) and their output dropped,
 *   and the number of later lines not run or killed is reported. --keep-going (the
 *   default) runs every line.
 * - Progress bar on stderr only when stderr is a terminal and --no-progress is not given:
 *   `[=====>     ] 40/100  12.3/s  ETA 5s`, counted in input order, redrawn with \r at
 *   most 10 times a second, cleared before any output is printed and at the end.
 * - Signals: SIGINT, SIGTERM or SIGHUP reaching cipc or a worker (Ctrl-C reaches them
 *   all) is passed on to the process group of every running command, then cipc dies of
 *   it. Signals ignored when cipc started (nohup, `cmd &` in a script) stay ignored.
 *
 * How: cipc_pool (forkserver) with cipc_pool_imap_bytes in order, chunk size 1. Each task
 * is [u64 item index][the line]; the worker forks and execs the command, reads its two
 * pipes with poll, waits for it and returns [kind, value, stdout length, stderr length]
 * [stdout][stderr]. While a command runs, its process group is in a table shared by the
 * parent and the workers (MAP_SHARED), so the parent can kill every running command on
 * --halt-on-error, on a signal, or when the pool kills a worker. The template (the words
 * after "--", the limits, the table) is set up before the pool is created, so the
 * workers' copy of memory has it. */
#include "cli.h"

#include <cipc.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_OUTPUT (1u << 20)
#define MAX_MAX_OUTPUT     (48u << 20) /* the pool's messages are at most 64 MiB */
#define MAX_JOBS           1024
#define HDR                24 /* i32 kind, i32 value, u64 stdout length, u64 stderr length */
#define TIMEOUT_BACKSTOP   5000

/* What happened to one task; `value` says more. */
enum outcome {
    R_EXIT,    /* exited; value: its status */
    R_SIGNAL,  /* killed by signal `value` */
    R_EXEC,    /* could not be exec'd; value: errno */
    R_TIMEOUT, /* ran past --timeout and was killed */
    R_TOOBIG,  /* wrote more than --max-output and was killed */
    R_NUL,     /* the line holds a NUL byte: not run */
    R_SPAWN,   /* pipe/fork failed in the worker; value: errno */
    R_POOL     /* the pool failed the item; value: its cipc error code */
};

/* The command template, shared with the workers through the pool's `ud`. */
struct tmpl {
    char **words; /* COMMAND [ARGS...], a view of argv */
    int nwords;
    int append;      /* no word contains "{}": append the line */
    long timeout_ms; /* 0: none */
    size_t max_output;
    _Atomic int *pgids; /* shared with the workers (MAP_SHARED): the process group of item
                           i's command while it runs, else 0 */
};

/* In a worker: the process group of the running command, 0 when none. */
static volatile sig_atomic_t running_pgid;

/* In the parent, for its signal handler: the shared table of tmpl.pgids. */
static _Atomic int *parent_pgids;
static size_t parent_npgids;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cipc map [options] -- COMMAND [ARGS...]\n"
            "Run COMMAND once for each line of stdin on a pool of worker processes, and\n"
            "print each command's output in input order, as soon as the earlier ones are "
            "done.\n"
            "\n"
            "  -j, --jobs N         run N commands at once (default: the number of CPUs)\n"
            "  --timeout SECONDS    kill a command (its whole process group) that runs longer;\n"
            "                       it counts as failed (\"timed out\")\n"
            "  --halt-on-error      start no new command after the first failure (in input\n"
            "                       order); commands still running are killed\n"
            "  --keep-going         run every line even when some fail (the default)\n"
            "  --no-progress        never draw the progress bar\n"
            "  --max-output BYTES   most stdout+stderr kept per command (suffix K or M;\n"
            "                       default 1M); a command that writes more is killed and fails\n"
            "  -h, --help           print this help and exit\n"
            "\n"
            "Each line (without its newline) replaces every {} in COMMAND and ARGS; when no\n"
            "argument contains {}, the line is appended as the last argument (as xargs does).\n"
            "Empty lines are skipped but counted in line numbers. All of stdin is read first.\n"
            "The program is run directly, not through a shell; for pipes or redirections use\n"
            "    cipc map -- sh -c 'wc -l < \"$1\"' _ {}\n"
            "Each command's stdin is /dev/null. Its stdout and stderr are captured, and when\n"
            "its turn comes its stdout goes to stdout, then its stderr to stderr, so outputs\n"
            "never interleave.\n"
            "\n"
            "When stderr is a terminal a progress bar is drawn there (done/total, rate, ETA).\n"
            "\n"
            "Exit status: 0 if every command exited 0; 1 if any failed (non-zero exit,\n"
            "killed by a signal, not found, timed out, too much output), each then listed on\n"
            "stderr as \"cipc map: line N (INPUT): exit 3\"; 2 for bad usage.\n"
            "\n"
            "example: ls *.log | cipc map -j 4 -- gzip -9 {}\n");
}

static int bad_usage(const char *msg, const char *arg)
{
    fprintf(stderr, "cipc map: %s%s%s%s (see cipc map --help)\n", msg, arg ? " '" : "",
            arg ? arg : "", arg ? "'" : "");
    return 2;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* --- in the workers ---------------------------------------------------------------- */

/* Forward a terminating signal to the running command's group, then die of it. */
static void worker_forward(int sig)
{
    pid_t g = (pid_t)running_pgid;
    if (g > 0)
        kill(-g, sig);
    signal(sig, SIG_DFL);
    raise(sig); /* delivered when the handler returns */
}

/* Pool initializer: runs once in each worker, before its first task. */
static void worker_init(void *arg)
{
    (void)arg;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = worker_forward;
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old;
        /* A signal ignored when cipc started (nohup, `cmd &` in a script) stays ignored. */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            sigaction(sigs[i], &sa, NULL);
    }
}

/* `w` with every "{}" replaced by line[0..len). Returns owned (free()), NULL for ENOMEM. */
static char *subst(const char *w, const char *line, size_t len)
{
    size_t k = 0, wl = strlen(w);
    for (const char *p = w; (p = strstr(p, "{}")) != NULL; p += 2)
        k++;
    char *r = malloc(wl - 2 * k + k * len + 1), *o = r;
    if (!r)
        return NULL;
    for (const char *p = w;;) {
        const char *q = strstr(p, "{}");
        size_t n = q ? (size_t)(q - p) : strlen(p);
        memcpy(o, p, n);
        o += n;
        if (!q)
            break;
        memcpy(o, line, len);
        o += len;
        p = q + 2;
    }
    *o = '\0';
    return r;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Fork and exec argv in its own process group (recorded in *slot while it runs), capture stdout
 * into `o` and stderr into `e` (at most t->max_output bytes together), enforce t->timeout_ms, wait
 * for it and set *kind / *value. Called by map_task() in a worker (single-threaded). */
static void run_command(const struct tmpl *t, char **argv, _Atomic int *slot, cipc_buf *o,
                        cipc_buf *e, int32_t *kind, int32_t *value)
{
    int fds[6] = {-1, -1, -1, -1, -1, -1}; /* stdout, stderr, exec-error pipes */
    for (int i = 0; i < 6; i += 2) {
        if (pipe(fds + i) < 0) {
            *kind = R_SPAWN;
            *value = errno;
            for (int j = 0; j < 6; j++)
                close_fd(&fds[j]);
            return;
        }
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
        fcntl(fds[i + 1], F_SETFD, FD_CLOEXEC);
    }
    pid_t me = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        *kind = R_SPAWN;
        *value = errno;
        for (int j = 0; j < 6; j++)
            close_fd(&fds[j]);
        return;
    }
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != me)
            _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        int nul = open("/dev/null", O_RDONLY);
        if (nul < 0 || dup2(nul, 0) < 0 || dup2(fds[1], 1) < 0 || dup2(fds[3], 2) < 0)
            _exit(127);
        execvp(argv[0], argv);
        int err = errno;
        ssize_t wr = write(fds[5], &err, sizeof err);
        (void)wr;
        _exit(127);
    }
    setpgid(pid, pid); /* also here, so the group exists before we may kill it */
    running_pgid = pid;
    atomic_store(slot, (int)pid);
    close_fd(&fds[1]);
    close_fd(&fds[3]);
    close_fd(&fds[5]);
    int err = 0;
    ssize_t r;
    while ((r = read(fds[4], &err, sizeof err)) < 0 && errno == EINTR) {
    }
    close_fd(&fds[4]);
    int killed = 0;
    if (r == (ssize_t)sizeof err) {
        *kind = R_EXEC;
        *value = err;
        killed = 1;
    }
    double deadline = now_s() + t->timeout_ms / 1000.0;
    struct pollfd pf[2] = {{.fd = fds[0], .events = POLLIN}, {.fd = fds[2], .events = POLLIN}};
    cipc_buf *dst[2] = {o, e};
    char chunk[65536];
    while (!killed && (pf[0].fd >= 0 || pf[1].fd >= 0)) {
        int wait_ms = -1;
        if (t->timeout_ms > 0) {
            double left = deadline - now_s();
            if (left <= 0) {
                *kind = R_TIMEOUT;
                killed = 1;
                break;
            }
            wait_ms = left > 1e6 ? 1000000000 : (int)(left * 1000) + 1;
        }
        int n = poll(pf, 2, wait_ms);
        if (n < 0 && errno != EINTR) {
            *kind = R_SPAWN;
            *value = errno;
            killed = 1;
        }
        for (int i = 0; i < 2 && n > 0 && !killed; i++) {
            if (pf[i].fd < 0 || !pf[i].revents)
                continue;
            ssize_t k = read(pf[i].fd, chunk, sizeof chunk);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                close(pf[i].fd);
                pf[i].fd = -1;
                continue;
            }
            size_t room = t->max_output - (o->len + e->len), take = (size_t)k;
            if (take > room) {
                take = room;
                *kind = R_TOOBIG;
                killed = 1;
            }
            if (cipc_buf_append(dst[i], chunk, take) < 0) {
                *kind = R_SPAWN;
                *value = ENOMEM;
                killed = 1;
            }
        }
    }
    if (killed) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
    }
    close_fd(&pf[0].fd);
    close_fd(&pf[1].fd);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    running_pgid = 0;
    atomic_store(slot, 0);
    if (!killed) {
        if (WIFEXITED(st)) {
            *kind = R_EXIT;
            *value = WEXITSTATUS(st);
        } else {
            *kind = R_SIGNAL;
            *value = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
        }
    }
}

/* The pool task: in[0..in_len) is [u64 item index][the line]. Writes
 * [kind][value][olen][elen][out][err]. Always returns 0: failures of the command are results, not
 * pool errors. */
static int map_task(const void *in, size_t in_len, void *out, size_t out_cap, size_t *out_len,
                    void *ud)
{
    const struct tmpl *t = ud;
    int32_t kind = R_EXIT, value = 0;
    cipc_buf o = CIPC_BUF_INIT, e = CIPC_BUF_INIT;
    char **argv = NULL;
    int nargs = 0;
    uint64_t idx = 0;
    if (in_len < 8)
        return CIPC_EPROTO;
    memcpy(&idx, in, 8);
    in = (const char *)in + 8;
    in_len -= 8;
    if (in_len && memchr(in, 0, in_len)) {
        kind = R_NUL;
        goto done;
    }
    argv = calloc((size_t)t->nwords + 2, sizeof *argv);
    if (!argv)
        goto nomem;
    for (; nargs < t->nwords; nargs++)
        if (!(argv[nargs] = subst(t->words[nargs], in, in_len)))
            goto nomem;
    if (t->append) {
        if (!(argv[nargs] = malloc(in_len + 1)))
            goto nomem;
        memcpy(argv[nargs], in, in_len);
        argv[nargs++][in_len] = '\0';
    }
    run_command(t, argv, &t->pgids[idx], &o, &e, &kind, &value);
    goto done;
nomem:
    kind = R_SPAWN;
    value = ENOMEM;
done:
    for (int i = 0; argv && i < nargs; i++)
        free(argv[i]);
    free(argv);
    uint64_t ol = o.len, el = e.len;
    if (HDR > out_cap) {
        ol = el = 0;
    } else {
        if (ol > out_cap - HDR)
            ol = out_cap - HDR;
        if (el > out_cap - HDR - ol)
            el = out_cap - HDR - ol;
    }
    char *p = out;
    memcpy(p, &kind, 4);
    memcpy(p + 4, &value, 4);
    memcpy(p + 8, &ol, 8);
    memcpy(p + 16, &el, 8);
    if (ol)
        memcpy(p + HDR, o.data, ol);
    if (el)
        memcpy(p + HDR + ol, e.data, el);
    *out_len = HDR + ol + el;
    cipc_buf_free(&o);
    cipc_buf_free(&e);
    return 0;
}

/* --- in the parent ----------------------------------------------------------------- */

/* Send `sig` to the process group of every command still running. Async-signal-safe.
 * Called by parent_forward() and by cipc_cli_map() before it stops the pool. */
static void kill_groups(_Atomic int *pgids, size_t n, int sig)
{
    for (size_t i = 0; pgids && i < n; i++) {
        int g = atomic_load(&pgids[i]);
        if (g > 0)
            kill(-g, sig);
    }
}

/* The parent's SIGINT/SIGTERM/SIGHUP handler: pass the signal on to the commands' groups
 * (the workers are killed by PDEATHSIG when we die, and only a command's first process
 * with them), then die of it. */
static void parent_forward(int sig)
{
    kill_groups(parent_pgids, parent_npgids, sig);
    signal(sig, SIG_DFL);
    raise(sig);
}

struct bar {
    int on, drawn;
    size_t done, total;
    double t0, last;
};

static void fmt_eta(char *s, size_t n, double secs)
{
    long v = (long)(secs + 0.5);
    if (v >= 3600)
        snprintf(s, n, "%ldh%02ldm", v / 3600, v / 60 % 60);
    else if (v >= 60)
        snprintf(s, n, "%ldm%02lds", v / 60, v % 60);
    else
        snprintf(s, n, "%lds", v);
}

/* Redraw the progress bar if it is on and (unless `force`) 100 ms have passed since the
 * last time. Called from the result loop in cipc_cli_map(). */
static void bar_draw(struct bar *b, int force)
{
    if (!b->on)
        return;
    double now = now_s();
    if (!force && now - b->last < 0.1)
        return;
    b->last = now;
    enum { W = 30 };
    char cells[W + 1];
    size_t fill = b->total ? b->done * W / b->total : W;
    for (size_t i = 0; i < W; i++)
        cells[i] = i < fill ? '=' : ' ';
    if (fill > 0 && fill < W)
        cells[fill - 1] = '>';
    else if (fill == 0)
        cells[0] = '>';
    cells[W] = '\0';
    double el = now - b->t0, rate = el > 0 ? b->done / el : 0;
    char eta[32];
    if (b->done >= b->total)
        snprintf(eta, sizeof eta, "0s");
    else if (rate > 0)
        fmt_eta(eta, sizeof eta, (double)(b->total - b->done) / rate);
    else
        snprintf(eta, sizeof eta, "?");
    fprintf(stderr, "\r[%s] %zu/%zu  %.1f/s  ETA %s\033[K", cells, b->done, b->total, rate, eta);
    fflush(stderr);
    b->drawn = 1;
}

static void bar_clear(struct bar *b)
{
    if (b->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        b->drawn = 0;
    }
}

/* One failed task, kept for the summary. */
struct failure {
    size_t idx;
    int32_t kind, value;
};

/* The reason text of a failure. */
static void describe(char *s, size_t n, const struct failure *f, size_t max_output)
{
    switch (f->kind) {
    case R_EXIT:
        snprintf(s, n, "exit %d", (int)f->value);
        break;
    case R_SIGNAL:
        snprintf(s, n, "killed by signal %d", (int)f->value);
        break;
    case R_EXEC:
        if (f->value == ENOENT)
            snprintf(s, n, "not found");
        else
            snprintf(s, n, "cannot run: %s", strerror(f->value));
        break;
    case R_TIMEOUT:
        snprintf(s, n, "timed out");
        break;
    case R_TOOBIG:
        snprintf(s, n, "more than %zu bytes of output (killed)", max_output);
        break;
    case R_NUL:
        snprintf(s, n, "the line contains a NUL byte (not run)");
        break;
    case R_SPAWN:
        snprintf(s, n, "could not start: %s", strerror(f->value));
        break;
    default:
        if (f->value == CIPC_ETIMEOUT)
            snprintf(s, n, "timed out");
        else if (f->value == CIPC_EWORKER)
            snprintf(s, n, "its worker process died");
        else
            snprintf(s, n, "%s", cipc_strerror(f->value));
    }
}

/* Parse a positive size with an optional K or M suffix; 0 on error. */
static size_t parse_size(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        return 0;
    if (*end == 'K' || *end == 'k')
        v <<= 10, end++;
    else if (*end == 'M' || *end == 'm')
        v <<= 20, end++;
    if (*end || v == 0 || v > MAX_MAX_OUTPUT)
        return 0;
    return (size_t)v;
}

/* Read all of fd 0. Returns 0 or a negative errno. */
static int read_all_stdin(cipc_buf *b)
{
    for (;;) {
        if (cipc_buf_reserve(b, 65536) < 0)
            return -ENOMEM;
        ssize_t n = read(0, b->data + b->len, b->cap - b->len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return 0;
        b->len += (size_t)n;
        b->data[b->len] = '\0';
    }
}

int cipc_cli_map(int argc, char **argv)
{
    long jobs = 0;
    long timeout_ms = 0;
    int halt = 0, progress = 1, cmd = -1;
    size_t max_output = DEFAULT_MAX_OUTPUT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        if (!strcmp(a, "--")) {
            cmd = i + 1;
            break;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--halt-on-error")) {
            halt = 1;
        } else if (!strcmp(a, "--keep-going")) {
            halt = 0;
        } else if (!strcmp(a, "--no-progress")) {
            progress = 0;
        } else if (!strcmp(a, "-j") || !strcmp(a, "--jobs") || !strncmp(a, "-j", 2) ||
                   !strncmp(a, "--jobs=", 7)) {
            if (!strcmp(a, "-j") || !strcmp(a, "--jobs")) {
                if (i + 1 >= argc)
                    return bad_usage("missing a number after", a);
                val = argv[++i];
            } else {
                val = a[1] == 'j' ? a + 2 : a + 7;
            }
            char *end;
            errno = 0;
            jobs = strtol(val, &end, 10);
            if (errno || end == val || *end || jobs < 1 || jobs > MAX_JOBS)
                return bad_usage("-j wants a number of jobs from 1 to 1024, not", val);
        } else if (!strcmp(a, "--timeout")) {
            if (i + 1 >= argc)
                return bad_usage("missing a number of seconds after", a);
            val = argv[++i];
            char *end;
            errno = 0;
            double s = strtod(val, &end);
            if (errno || end == val || *end || !(s > 0) || s > 1e7)
                return bad_usage("--timeout wants a number of seconds > 0, not", val);
            timeout_ms = (long)(s * 1000);
            if (timeout_ms < 1)
                timeout_ms = 1;
        } else if (!strcmp(a, "--max-output")) {
            if (i + 1 >= argc)
                return bad_usage("missing a size after", a);
            val = argv[++i];
            if (!(max_output = parse_size(val)))
                return bad_usage("--max-output wants a size from 1 to 48M, not", val);
        } else if (a[0] == '-') {
            return bad_usage("unknown option", a);
        } else {
            return bad_usage("missing '--' before COMMAND", NULL);
        }
    }
    if (cmd < 0)
        return bad_usage("missing '--' before COMMAND", NULL);
    if (cmd >= argc)
        return bad_usage("missing COMMAND after '--'", NULL);

    /* The lines: views into one buffer, with their 1-based line numbers. */
    cipc_buf in = CIPC_BUF_INIT;
    int rc = read_all_stdin(&in);
    if (rc < 0) {
        fprintf(stderr, "cipc map: cannot read stdin: %s\n", strerror(-rc));
        cipc_buf_free(&in);
        return 1;
    }
    size_t cap = 0, n = 0, lineno = 0;
    for (size_t i = 0; i < in.len; i++)
        cap += in.data[i] == '\n';
    cap++;
    struct iovec *iov = malloc(cap * sizeof *iov);   /* the lines (views into `in`) */
    struct iovec *tiov = malloc(cap * sizeof *tiov); /* the tasks (views into `items`) */
    char *items = NULL;
    size_t *lines = malloc(cap * sizeof *lines);
    _Atomic int *pgids = NULL;
    size_t pgids_size = 0;
    struct sigaction old_act[3];
    const int fwd_sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    int forwarding = 0;
    struct failure *fails = NULL;
    size_t nfails = 0;
    struct tmpl *t = calloc(1, sizeof *t);
    cipc_pool *pool = NULL;
    cipc_pool_iter *it = NULL;
    int status = 1;
    if (!iov || !tiov || !lines || !t) {
        fprintf(stderr, "cipc map: out of memory\n");
        goto out;
    }
    for (size_t pos = 0; pos < in.len;) {
        char *nl = memchr(in.data + pos, '\n', in.len - pos);
        size_t end = nl ? (size_t)(nl - in.data) : in.len;
        lineno++;
        if (end > pos) {
            iov[n].iov_base = in.data + pos;
            iov[n].iov_len = end - pos;
            lines[n++] = lineno;
        }
        pos = end + 1;
    }
    if (n == 0) {
        status = 0;
        goto out;
    }
    /* Each task is [u64 index][the line], so a worker can record its command's process
     * group in pgids[index], a table shared with the workers (made before the pool). */
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += 8 + iov[i].iov_len;
    pgids_size = n * sizeof *pgids;
    pgids = mmap(NULL, pgids_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (pgids == MAP_FAILED)
        pgids = NULL;
    if (!pgids || !(items = malloc(total))) {
        fprintf(stderr, "cipc map: out of memory\n");
        goto out;
    }
    for (size_t i = 0, off = 0; i < n; i++) {
        uint64_t idx = i;
        memcpy(items + off, &idx, 8);
        memcpy(items + off + 8, iov[i].iov_base, iov[i].iov_len);
        tiov[i].iov_base = items + off;
        tiov[i].iov_len = 8 + iov[i].iov_len;
        off += tiov[i].iov_len;
    }

    t->words = argv + cmd;
    t->nwords = argc - cmd;
    t->append = 1;
    for (int i = 0; i < t->nwords; i++)
        if (strstr(t->words[i], "{}"))
            t->append = 0;
    t->timeout_ms = timeout_ms;
    t->max_output = max_output;
    t->pgids = pgids;

    if (!jobs) {
        jobs = sysconf(_SC_NPROCESSORS_ONLN);
        if (jobs < 1)
            jobs = 1;
    }
    if ((size_t)jobs > n)
        jobs = (long)n;
    cipc_pool_opts po = {.size = sizeof po,
                         .workers = (int)jobs,
                         .initializer = worker_init,
                         .task_timeout_ms = timeout_ms ? timeout_ms + TIMEOUT_BACKSTOP : 0,
                         .max_msg = (max_output + HDR + 4096 + 4095) & ~(size_t)4095};
    rc = cipc_pool_new(&po, &pool);
    if (rc < 0) {
        fprintf(stderr, "cipc map: cannot start the worker processes: %s\n", cipc_strerror(rc));
        goto out;
    }
    /* After the pool is made, so the forkserver and the workers it forks keep the default
     * actions (the workers install their own in worker_init()). */
    parent_pgids = pgids;
    parent_npgids = n;
    for (int i = 0; i < 3; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = parent_forward;
        sigemptyset(&sa.sa_mask);
        if (sigaction(fwd_sigs[i], NULL, &old_act[i]) == 0 && old_act[i].sa_handler != SIG_IGN)
            sigaction(fwd_sigs[i], &sa, NULL);
    }
    forwarding = 1;
    rc = cipc_pool_imap_bytes(pool, map_task, t, tiov, n, 1, 0, &it);
    if (rc < 0) {
        fprintf(stderr, "cipc map: cannot submit the tasks: %s\n", cipc_strerror(rc));
        goto out;
    }
    if (!(fails = malloc(n * sizeof *fails))) {
        fprintf(stderr, "cipc map: out of memory\n");
        goto out;
    }

    struct bar bar = {.on = progress && isatty(2), .total = n, .t0 = now_s()};
    int out_tty = isatty(1);
    size_t not_run = 0;
    bar_draw(&bar, 1);
    for (;;) {
        cipc_pool_item item;
        rc = cipc_pool_iter_next(it, bar.on ? 100 : -1, &item);
        if (rc == CIPC_ETIMEOUT) {
            bar_draw(&bar, 0);
            continue;
        }
        if (rc < 0) {
            bar_clear(&bar);
            fprintf(stderr, "cipc map: %s\n", cipc_strerror(rc));
            goto out;
        }
        if (rc == 0)
            break;
        struct failure f = {.idx = item.index, .kind = R_POOL, .value = item.rc};
        uint64_t ol = 0, el = 0;
        const char *d = item.data;
        if (item.rc == 0 && d && item.len >= HDR) {
            memcpy(&f.kind, d, 4);
            memcpy(&f.value, d + 4, 4);
            memcpy(&ol, d + 8, 8);
            memcpy(&el, d + 16, 8);
            if (ol > item.len - HDR || el > item.len - HDR - ol)
                ol = el = 0;
        } else if (item.rc == 0) {
            f.value = CIPC_EPROTO;
        }
        if (bar.drawn && ((ol && out_tty) || el))
            bar_clear(&bar);
        if (ol) {
            fwrite(d + HDR, 1, ol, stdout);
            fflush(stdout);
        }
        if (el) {
            fwrite(d + HDR + ol, 1, el, stderr);
            fflush(stderr);
        }
        bar.done++;
        int failed = !(f.kind == R_EXIT && f.value == 0);
        if (f.kind == R_POOL) { /* its worker was killed: make sure its command dies too */
            int g = atomic_load(&pgids[item.index]);
            if (g > 0)
                kill(-g, SIGKILL);
        }
        if (failed)
            fails[nfails++] = f;
        if (failed && halt) {
            not_run = n - bar.done;
            break;
        }
        bar_draw(&bar, !bar.drawn);
    }
    bar_clear(&bar);
    for (size_t i = 0; i < nfails; i++) {
        char why[128];
        describe(why, sizeof why, &fails[i], max_output);
        const struct iovec *v = &iov[fails[i].idx];
        size_t show = v->iov_len > 60 ? 57 : v->iov_len;
        char text[64];
        for (size_t k = 0; k < show; k++) {
            unsigned char c = ((const unsigned char *)v->iov_base)[k];
            text[k] = c < 0x20 || c == 0x7f ? '?' : (char)c;
        }
        text[show] = '\0';
        fprintf(stderr, "cipc map: line %zu (%s%s): %s\n", lines[fails[i].idx], text,
                show < v->iov_len ? "..." : "", why);
    }
    if (not_run)
        fprintf(stderr,
                "cipc map: stopped at the first failure (--halt-on-error): %zu later %s not "
                "run or killed\n",
                not_run, not_run == 1 ? "line" : "lines");
    status = nfails ? 1 : 0;
out:
    /* Commands still running (--halt-on-error, an error): kill them, their whole groups,
     * before the pool kills the workers. */
    kill_groups(pgids, n, SIGKILL);
    cipc_pool_iter_free(it);
    cipc_pool_free(pool);
    if (forwarding)
        for (int i = 0; i < 3; i++)
            sigaction(fwd_sigs[i], &old_act[i], NULL);
    parent_pgids = NULL;
    parent_npgids = 0;
    if (pgids)
        munmap((void *)pgids, pgids_size);
    free(items);
    free(tiov);
    free(fails);
    free(t);
    free(lines);
    free(iov);
    cipc_buf_free(&in);
    return status;
}
