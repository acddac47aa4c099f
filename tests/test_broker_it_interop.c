/* tests/test_broker_it_interop.c -- real Redis clients against the cipc broker, unchanged:
 *
 * 1. the seed's snippet (tests/peers/seed_redis.py, byte-for-byte the seed's code) run by
 *    tests/peers/redis_interop.py with only redis.Redis's host/port redirected: its
 *    publish reaches a raw subscriber, and it prints "Received: b'Hello, subscribers!'"
 *    for our publish;
 * 2. python3-redis pub/sub and patterns, 3. lists, blocking pops, admin commands and
 *    error texts, 4. AUTH, 6. a 1000-command pipeline -- checked in Python
 *    (tests/peers/redis_interop.py: "OK <section>" and exit 0, or "FAIL what: expected
 *    x, got y" on stderr);
 * 5. redis-cli: raw and --no-raw output, info, client list, subscribe and psubscribe as
 *    long-running children, commands piped on stdin, -x, --csv, -a; and a telnet-style
 *    raw inline session.
 *
 * Every section first runs against Debian's redis-server on a private port (so the
 * expectations here are Redis 7's own behaviour), then against the broker, in-process.
 * Children are /usr/bin/python3 (Debian's, with python3-redis) and /usr/bin/redis-cli,
 * with PR_SET_PDEATHSIG so an aborting test leaves nothing behind; every wait has a
 * deadline; only the pids started here are ever signalled. */
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "broker_helper.h"

#define PYTHON     "/usr/bin/python3"
#define REDIS_CLI  "/usr/bin/redis-cli"
#define WAIT_MS    20000 /* generous: Python's start on a loaded 2-core machine */
#define PASSWORD   "s3cret-pw"

/* The seed's snippet, as tests/peers/seed_redis.py must hold it (byte-for-byte). */
static const char seed_text[] =
    "import redis\n"
    "\n"
    "# Connect to Redis\n"
    "r = redis.Redis(host='localhost', port=6379, db=0)\n"
    "\n"
    "# Publish message\n"
    "r.publish('channel', 'Hello, subscribers!')\n"
    "\n"
    "# Subscribe to channel\n"
    "pubsub = r.pubsub()\n"
    "pubsub.subscribe('channel')\n"
    "\n"
    "for message in pubsub.listen():\n"
    "    if message['type'] == 'message':\n"
    "        print(f\"Received: {message['data']}\")\n";

static char g_interop_py[1024], g_seed_py[1024];

/* The server under test: its name (for messages), its port, and a second instance that
 * requires PASSWORD. */
struct target {
    const char *name;
    int port;
    int auth_port;
};

/* --- child processes ------------------------------------------------------------------------ */

struct out {
    char *p;
    size_t len, cap;
};

static void out_add(struct out *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        o->cap = (o->len + n + 1) * 2;
        o->p = realloc(o->p, o->cap);
        CHECK(o->p != NULL);
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = 0;
}

struct proc {
    pid_t pid;
    int out_fd, err_fd; /* -1 once at EOF */
    struct out out, err;
    char what[512]; /* the command line, for messages */
};

static void proc_spawn(struct proc *pr, const char *const *argv, const char *input)
{
    int in[2], o[2], e[2];
    memset(pr, 0, sizeof *pr);
    for (size_t i = 0, n = 0; argv[i] && n < sizeof pr->what - 1; i++)
        n += (size_t)snprintf(pr->what + n, sizeof pr->what - n, "%s%s", i ? " " : "", argv[i]);
    CHECK(pipe(in) == 0 && pipe(o) == 0 && pipe(e) == 0);
    for (int i = 0; i < 2; i++) { /* dup2() clears it on the child's 0, 1, 2 */
        fcntl(in[i], F_SETFD, FD_CLOEXEC);
        fcntl(o[i], F_SETFD, FD_CLOEXEC);
        fcntl(e[i], F_SETFD, FD_CLOEXEC);
    }
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pr->pid = fork();
    CHECK(pr->pid >= 0);
    if (pr->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a test that aborts */
        if (getppid() != parent)
            _exit(125);
        if (dup2(in[0], 0) < 0 || dup2(o[1], 1) < 0 || dup2(e[1], 2) < 0)
            _exit(126);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(o[1]);
    close(e[1]);
    if (input)
        CHECK(write(in[1], input, strlen(input)) == (ssize_t)strlen(input)); /* < PIPE_BUF */
    close(in[1]); /* EOF on its stdin */
    pr->out_fd = o[0];
    pr->err_fd = e[0];
}

static void proc_dump(const struct proc *pr)
{
    fprintf(stderr, "--- %s\n--- stdout (%zu bytes):\n%s\n--- stderr (%zu bytes):\n%s\n---\n",
            pr->what, pr->out.len, pr->out.p ? pr->out.p : "", pr->err.len,
            pr->err.p ? pr->err.p : "");
}

/* Read what the child writes for up to ms (or until both pipes reach EOF). */
static void proc_pump(struct proc *pr, int ms)
{
    struct pollfd pf[2] = {{.fd = pr->out_fd, .events = POLLIN},
                           {.fd = pr->err_fd, .events = POLLIN}};
    if (pr->out_fd < 0 && pr->err_fd < 0)
        return;
    if (poll(pf, 2, ms) <= 0)
        return;
    for (int i = 0; i < 2; i++) {
        if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        char buf[4096];
        ssize_t r = read(pf[i].fd, buf, sizeof buf);
        if (r > 0) {
            out_add(i ? &pr->err : &pr->out, buf, (size_t)r);
        } else if (r == 0 || errno != EINTR) {
            close(pf[i].fd);
            *(i ? &pr->err_fd : &pr->out_fd) = -1;
        }
    }
}

/* Wait until the child's stdout contains `needle`, at most ms; fail loudly otherwise. */
#define proc_wait_for(pr, needle, ms) proc_wait_for_at(__LINE__, pr, needle, ms)
static void proc_wait_for_at(int line, struct proc *pr, const char *needle, int ms)
{
    int64_t end = tb_now_ms() + ms;
    while (!(pr->out.p && strstr(pr->out.p, needle))) {
        int64_t left = end - tb_now_ms();
        if (left <= 0 || (pr->out_fd < 0 && pr->err_fd < 0)) {
            fprintf(stderr, "line %d: expected \"%s\" on the stdout of the child within %d ms; %s\n",
                    line, needle, ms, left <= 0 ? "timed out" : "it closed its output");
            proc_dump(pr);
            abort();
        }
        proc_pump(pr, (int)(left > 100 ? 100 : left));
    }
}

static void proc_close_fds(struct proc *pr)
{
    if (pr->out_fd >= 0)
        close(pr->out_fd);
    if (pr->err_fd >= 0)
        close(pr->err_fd);
    pr->out_fd = pr->err_fd = -1;
}

static void proc_free(struct proc *pr)
{
    proc_close_fds(pr);
    free(pr->out.p);
    free(pr->err.p);
    memset(pr, 0, sizeof *pr);
}

/* Kill the child (by its pid) and reap it. */
static void proc_kill(struct proc *pr)
{
    kill(pr->pid, SIGKILL);
    int64_t end = tb_now_ms() + WAIT_MS;
    while (waitpid(pr->pid, NULL, WNOHANG) != pr->pid) {
        CHECK(tb_now_ms() < end);
        usleep(2000);
    }
    /* Whatever it wrote before dying (its pipes are at EOF now). */
    end = tb_now_ms() + WAIT_MS;
    while ((pr->out_fd >= 0 || pr->err_fd >= 0) && tb_now_ms() < end)
        proc_pump(pr, 100);
    proc_close_fds(pr);
}

/* Let the child finish (EOF on both pipes, then exit) within ms; returns its exit status,
 * or fails loudly (after killing it) if it does not finish or dies of a signal. */
static int proc_finish(struct proc *pr, int ms)
{
    int64_t end = tb_now_ms() + ms;
    while (pr->out_fd >= 0 || pr->err_fd >= 0) {
        int64_t left = end - tb_now_ms();
        if (left <= 0)
            break;
        proc_pump(pr, (int)(left > 100 ? 100 : left));
    }
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pr->pid, &st, WNOHANG);
        if (r == pr->pid)
            break;
        if (tb_now_ms() >= end) {
            fprintf(stderr, "child did not finish within %d ms; killing pid %d\n", ms,
                    (int)pr->pid);
            proc_kill(pr);
            proc_dump(pr);
            abort();
        }
        usleep(2000);
    }
    if (!WIFEXITED(st)) {
        fprintf(stderr, "child died of signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
        proc_dump(pr);
        abort();
    }
    return WEXITSTATUS(st);
}

/* Run argv to completion with `input` on its stdin; its stdout must be exactly `want`
 * (and its stderr empty unless want_err says what it must be), its exit status 0. */
#define run_expect(argv, input, want) run_expect_at(__LINE__, argv, input, want, "")
#define run_expect_err(argv, input, want, want_err) run_expect_at(__LINE__, argv, input, want, want_err)
static void run_expect_at(int line, const char *const *argv, const char *input, const char *want,
                          const char *want_err)
{
    struct proc pr;
    proc_spawn(&pr, argv, input);
    int st = proc_finish(&pr, WAIT_MS);
    const char *got = pr.out.p ? pr.out.p : "", *got_err = pr.err.p ? pr.err.p : "";
    if (st != 0 || strcmp(got, want) != 0 || strcmp(got_err, want_err) != 0) {
        fprintf(stderr, "line %d: expected exit 0, stdout \"%s\", stderr \"%s\"; got exit %d\n",
                line, want, want_err, st);
        proc_dump(&pr);
        abort();
    }
    proc_free(&pr);
}

/* Run argv; its stdout must contain each of the NULL-terminated `needles`. */
#define run_contains(argv, ...) run_contains_at(__LINE__, argv, (const char *[]){__VA_ARGS__, NULL})
static void run_contains_at(int line, const char *const *argv, const char **needles)
{
    struct proc pr;
    proc_spawn(&pr, argv, NULL);
    int st = proc_finish(&pr, WAIT_MS);
    for (size_t i = 0; needles[i]; i++) {
        if (st != 0 || !pr.out.p || !strstr(pr.out.p, needles[i])) {
            fprintf(stderr, "line %d: expected exit 0 and \"%s\" in stdout; got exit %d\n", line,
                    needles[i], st);
            proc_dump(&pr);
            abort();
        }
    }
    proc_free(&pr);
}

/* --- raw RESP with a long deadline ------------------------------------------------------------ */

#define raw_expect(fd, want, ms) raw_expect_at(__LINE__, fd, want, strlen(want), ms)
static void raw_expect_at(int line, int fd, const char *want, size_t n, int ms)
{
    char *buf = malloc(n + 1);
    CHECK(buf != NULL);
    size_t got = rc_read_n(fd, buf, n, ms);
    buf[got] = 0;
    if (got != n || memcmp(buf, want, n) != 0) {
        fprintf(stderr, "line %d: expected %zu bytes \"%s\" within %d ms, got %zu \"%s\"\n", line,
                n, want, ms, got, buf);
        abort();
    }
    free(buf);
}

/* Send cmd on fd until the reply is exactly `want`, polling every 10 ms, for at most ms. */
#define raw_poll_until(fd, cmd, want, ms) raw_poll_until_at(__LINE__, fd, cmd, want, ms)
static void raw_poll_until_at(int line, int fd, const char *cmd, const char *want, int ms)
{
    size_t n = strlen(want);
    char *buf = malloc(n + 1);
    CHECK(buf != NULL);
    int64_t end = tb_now_ms() + ms;
    for (;;) {
        rc_send(fd, cmd);
        size_t got = rc_read_n(fd, buf, n, RC_TIMEOUT_MS);
        buf[got] = 0;
        if (got == n && memcmp(buf, want, n) == 0)
            break;
        /* A reply of another length would desynchronise the connection: the replies
         * polled here (":N\r\n" inside a fixed frame) all have the length of `want`. */
        if (tb_now_ms() >= end || got != n) {
            fprintf(stderr, "line %d: sent \"%s\" until the reply was \"%s\" for %d ms; last got \"%s\"\n",
                    line, cmd, want, ms, buf);
            abort();
        }
        usleep(10000);
    }
    free(buf);
}

/* --- 1. the seed's snippet, unchanged ---------------------------------------------------------- */

static void check_seed_file(void)
{
    FILE *f = fopen(g_seed_py, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", g_seed_py);
        abort();
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    if (n != strlen(seed_text) || memcmp(buf, seed_text, n) != 0) {
        fprintf(stderr, "%s is not the seed's snippet byte-for-byte:\n--- expected\n%s--- got\n%s---\n",
                g_seed_py, seed_text, buf);
        abort();
    }
}

#define SEED_MSG "*3\r\n$7\r\nmessage\r\n$7\r\nchannel\r\n$19\r\nHello, subscribers!\r\n"

static void test_seed(const struct target *t)
{
    char port[16];
    snprintf(port, sizeof port, "%d", t->port);
    int sub = rc_connect(t->port), ctl = rc_connect(t->port);
    rc_send(sub, "SUBSCRIBE channel\r\n");
    raw_expect(sub, "*3\r\n$9\r\nsubscribe\r\n$7\r\nchannel\r\n:1\r\n", WAIT_MS);

    struct proc pr;
    proc_spawn(&pr, (const char *[]){PYTHON, g_interop_py, "seed", port, g_seed_py, NULL}, NULL);
    /* The snippet's own publish, before it subscribes, reaches our subscriber. */
    raw_expect(sub, SEED_MSG, WAIT_MS);
    /* Then it subscribes: wait for that, then publish once. */
    raw_poll_until(ctl, "PUBSUB NUMSUB channel\r\n", "*2\r\n$7\r\nchannel\r\n:2\r\n", WAIT_MS);
    rc_send(ctl, "*3\r\n$7\r\nPUBLISH\r\n$7\r\nchannel\r\n$19\r\nHello, subscribers!\r\n");
    raw_expect(ctl, ":2\r\n", WAIT_MS);
    proc_wait_for(&pr, "Received: b'Hello, subscribers!'\n", WAIT_MS);
    raw_expect(sub, SEED_MSG, WAIT_MS);
    /* Still listening (it loops forever): kill it by its pid. */
    proc_kill(&pr);
    if (strcmp(pr.out.p, "Received: b'Hello, subscribers!'\n") != 0 || pr.err.len != 0) {
        fprintf(stderr, "%s: the snippet printed other than one \"Received: b'Hello, "
                        "subscribers!'\" line\n", t->name);
        proc_dump(&pr);
        abort();
    }
    proc_free(&pr);
    /* The server notices that the snippet's connections are gone. */
    raw_poll_until(ctl, "PUBSUB NUMSUB channel\r\n", "*2\r\n$7\r\nchannel\r\n:1\r\n", WAIT_MS);
    rc_send(sub, "UNSUBSCRIBE\r\n");
    raw_expect(sub, "*3\r\n$11\r\nunsubscribe\r\n$7\r\nchannel\r\n:0\r\n", WAIT_MS);
    close(sub);
    close(ctl);
}

/* --- 2, 3, 4, 6: python3-redis -------------------------------------------------------------------- */

static void run_py_section(const struct target *t, const char *section, int port, const char *extra)
{
    char p[16], ok[64];
    snprintf(p, sizeof p, "%d", port);
    snprintf(ok, sizeof ok, "OK %s\n", section);
    struct proc pr;
    proc_spawn(&pr, (const char *[]){PYTHON, g_interop_py, section, p, extra, NULL}, NULL);
    int st = proc_finish(&pr, WAIT_MS * 2);
    if (st != 0 || !pr.out.p || strcmp(pr.out.p, ok) != 0) {
        fprintf(stderr, "%s: python3-redis section '%s': expected exit 0 and \"%s\", got exit %d\n",
                t->name, section, ok, st);
        proc_dump(&pr);
        abort();
    }
    proc_free(&pr);
}

static void test_python(const struct target *t)
{
    run_py_section(t, "pubsub", t->port, NULL);
    run_py_section(t, "lists", t->port, NULL);
    run_py_section(t, "auth", t->auth_port, PASSWORD);
    run_py_section(t, "pipeline", t->port, NULL);
}

/* --- 5. redis-cli, and a raw inline session ------------------------------------------------------- */

#define CLI(...) ((const char *[]){REDIS_CLI, "-p", port, __VA_ARGS__, NULL})

static void test_redis_cli(const struct target *t)
{
    char port[16], aport[16];
    snprintf(port, sizeof port, "%d", t->port);
    snprintf(aport, sizeof aport, "%d", t->auth_port);

    run_expect(CLI("flushall"), NULL, "OK\n");
    run_expect(CLI("ping"), NULL, "PONG\n");
    run_expect(CLI("--no-raw", "ping"), NULL, "PONG\n");
    run_expect(CLI("rpush", "q", "a", "b", "c d"), NULL, "3\n");
    /* Raw output when stdout is not a terminal; --no-raw gives the terminal's format. */
    run_expect(CLI("lrange", "q", "0", "-1"), NULL, "a\nb\nc d\n");
    run_expect(CLI("--raw", "lrange", "q", "0", "-1"), NULL, "a\nb\nc d\n");
    run_expect(CLI("--no-raw", "lrange", "q", "0", "-1"), NULL, "1) \"a\"\n2) \"b\"\n3) \"c d\"\n");
    run_expect(CLI("--no-raw", "llen", "q"), NULL, "(integer) 3\n");
    run_expect(CLI("--no-raw", "lpop", "nosuch"), NULL, "(nil)\n");
    run_expect(CLI("--no-raw", "lrange", "nosuch", "0", "-1"), NULL, "(empty array)\n");
    run_expect(CLI("--no-raw", "blpop", "nosuch", "0.05"), NULL, "(nil)\n");
    run_expect(CLI("--no-raw", "echo", "a b"), NULL, "\"a b\"\n");
    run_expect(CLI("--csv", "lrange", "q", "0", "-1"), NULL, "\"a\",\"b\",\"c d\"\n");
    run_expect(CLI("--no-raw", "pubsub", "numsub", "x"), NULL, "1) \"x\"\n2) (integer) 0\n");
    run_expect(CLI("-r", "3", "ping"), NULL, "PONG\nPONG\nPONG\n");
    /* Errors, as redis-cli shows them. */
    run_expect(CLI("--no-raw", "nosuch", "x"), NULL,
               "(error) ERR unknown command 'nosuch', with args beginning with: 'x' \n");
    run_expect(CLI("nosuch", "x"), NULL,
               "ERR unknown command 'nosuch', with args beginning with: 'x' \n\n");
    run_expect(CLI("llen"), NULL, "ERR wrong number of arguments for 'llen' command\n\n");
    /* -x: the last argument from stdin, newlines and all. */
    run_expect(CLI("-x", "rpush", "xq"), "multi\nline\n", "1\n");
    run_expect(CLI("--no-raw", "lrange", "xq", "0", "-1"), NULL, "1) \"multi\\nline\\n\"\n");
    run_expect(CLI("del", "q", "xq"), NULL, "2\n");
    /* INFO and CLIENT LIST. */
    run_contains(CLI("info", "server"), "# Server\r\n", "\r\nredis_version:", "\r\ntcp_port:");
    run_contains(CLI("info"), "# Server\r\n", "# Clients\r\n", "\r\nconnected_clients:");
    run_contains(CLI("client", "list"), "id=", " addr=127.0.0.1:", " name= ", " cmd=");
    /* Commands piped on stdin, one per line (inline, as a user types them). */
    run_expect(CLI(NULL), "PING\nRPUSH pq a\nRPUSH pq \"b c\"\nLRANGE pq 0 -1\nECHO \"x y\"\n",
               "PONG\n1\n2\na\nb c\nx y\n");
    run_expect(CLI("--no-raw"), "PING\nLLEN pq\nDEL pq\nLLEN pq\n",
               "PONG\n(integer) 2\n(integer) 1\n(integer) 0\n");
    /* AUTH: -a, no password, a wrong one. */
    const char *A = "--no-auth-warning";
    run_expect(((const char *[]){REDIS_CLI, "-p", aport, A, "-a", PASSWORD, "ping", NULL}), NULL,
               "PONG\n");
    run_expect(((const char *[]){REDIS_CLI, "-p", aport, "ping", NULL}), NULL,
               "NOAUTH Authentication required.\n\n");
    run_expect_err(((const char *[]){REDIS_CLI, "-p", aport, A, "-a", "bad", "ping", NULL}), NULL,
                   "NOAUTH Authentication required.\n\n",
                   "AUTH failed: WRONGPASS invalid username-password pair or user is disabled.\n");

    /* SUBSCRIBE and PSUBSCRIBE: long-running children, fed until they print. */
    int ctl = rc_connect(t->port);
    struct proc sub, psub;
    proc_spawn(&sub, CLI("subscribe", "ch"), NULL);
    proc_spawn(&psub, CLI("psubscribe", "n*s", "x?"), NULL);
    proc_wait_for(&sub, "subscribe\nch\n1\n", WAIT_MS);
    proc_wait_for(&psub, "psubscribe\nn*s\n1\npsubscribe\nx?\n2\n", WAIT_MS);
    rc_send(ctl, "PUBLISH ch \"hello world\"\r\n");
    raw_expect(ctl, ":1\r\n", WAIT_MS);
    proc_wait_for(&sub, "message\nch\nhello world\n", WAIT_MS);
    rc_send(ctl, "PUBLISH news flash\r\nPUBLISH xy z\r\nPUBLISH nope z\r\n");
    raw_expect(ctl, ":1\r\n:1\r\n:0\r\n", WAIT_MS);
    proc_wait_for(&psub, "pmessage\nn*s\nnews\nflash\npmessage\nx?\nxy\nz\n", WAIT_MS);
    proc_kill(&sub);
    proc_kill(&psub);
    if (strcmp(sub.out.p, "subscribe\nch\n1\nmessage\nch\nhello world\n") != 0 ||
        strcmp(psub.out.p, "psubscribe\nn*s\n1\npsubscribe\nx?\n2\n"
                           "pmessage\nn*s\nnews\nflash\npmessage\nx?\nxy\nz\n") != 0) {
        fprintf(stderr, "%s: redis-cli subscribers printed more than expected\n", t->name);
        proc_dump(&sub);
        proc_dump(&psub);
        abort();
    }
    proc_free(&sub);
    proc_free(&psub);
    raw_poll_until(ctl, "PUBSUB NUMPAT\r\n", ":0\r\n", WAIT_MS);
    close(ctl);

    /* A telnet-style session: inline commands on a raw socket, CRLF or bare LF. */
    int fd = rc_connect(t->port);
    rc_send(fd, "PING\r\n");
    raw_expect(fd, "+PONG\r\n", WAIT_MS);
    rc_send(fd, "ECHO \"a b\"\r\n");
    raw_expect(fd, "$3\r\na b\r\n", WAIT_MS);
    rc_send(fd, "echo 'single quoted' \n");
    raw_expect(fd, "$13\r\nsingle quoted\r\n", WAIT_MS);
    rc_send(fd, "RPUSH tq \"x y\" z\r\nLRANGE tq 0 -1\r\nDEL tq\r\n");
    raw_expect(fd, ":2\r\n*2\r\n$3\r\nx y\r\n$1\r\nz\r\n:1\r\n", WAIT_MS);
    rc_send(fd, "QUIT\r\n");
    raw_expect(fd, "+OK\r\n", WAIT_MS);
    CHECK(rc_closed(fd, WAIT_MS));
    close(fd);
}

/* --- a private redis-server (the reference) ----------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t len = sizeof a;
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static pid_t start_redis(int port, const char *password)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(125);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        const char *argv[] = {"/usr/bin/redis-server", "--port", p, "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--daemonize", "no",
                              password ? "--requirepass" : NULL, password, NULL};
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    /* Ready when it answers PING (NOAUTH counts: it is up). */
    int64_t deadline = tb_now_ms() + WAIT_MS;
    while (tb_now_ms() < deadline) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            char buf[8];
            rc_send(fd, "PING\r\n");
            size_t n = rc_read_n(fd, buf, 1, RC_TIMEOUT_MS);
            close(fd);
            if (n == 1 && (buf[0] == '+' || buf[0] == '-'))
                return pid;
        } else {
            close(fd);
        }
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return -1; /* it died: the port was taken meanwhile? */
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK(!"redis-server did not start");
    return -1;
}

/* A redis-server on a free port (retried if another process takes the port first). */
static pid_t start_redis_free(int *port, const char *password)
{
    for (int i = 0; i < 5; i++) {
        *port = free_port();
        pid_t pid = start_redis(*port, password);
        if (pid > 0)
            return pid;
    }
    CHECK(!"redis-server did not start on 5 free ports");
    return -1;
}

static void stop_redis(pid_t pid)
{
    kill(pid, SIGTERM);
    int64_t deadline = tb_now_ms() + 5000;
    while (tb_now_ms() < deadline && waitpid(pid, NULL, WNOHANG) == 0)
        usleep(5000);
    if (waitpid(pid, NULL, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

static void run_all(const struct target *t)
{
    int64_t t0 = tb_now_ms();
    test_seed(t);
    int64_t t1 = tb_now_ms();
    test_python(t);
    int64_t t2 = tb_now_ms();
    if (access(REDIS_CLI, X_OK) == 0)
        test_redis_cli(t);
    else
        fprintf(stderr, "note: %s missing; the redis-cli checks are skipped\n", REDIS_CLI);
    fprintf(stderr, "%s: seed %lld ms, python3-redis %lld ms, redis-cli %lld ms\n", t->name,
            (long long)(t1 - t0), (long long)(t2 - t1), (long long)(tb_now_ms() - t2));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *src = getenv("CIPC_SOURCE_DIR");
    if (!src || !*src)
        src = ".";
    snprintf(g_interop_py, sizeof g_interop_py, "%s/tests/peers/redis_interop.py", src);
    snprintf(g_seed_py, sizeof g_seed_py, "%s/tests/peers/seed_redis.py", src);
    CHECK(access(PYTHON, X_OK) == 0);
    CHECK(access(g_interop_py, R_OK) == 0);
    check_seed_file();

    /* The reference: Debian's redis-server, so every expectation here is Redis's own. */
    if (access("/usr/bin/redis-server", X_OK) == 0) {
        struct target ref = {.name = "redis-server"};
        pid_t r1 = start_redis_free(&ref.port, NULL);
        pid_t r2 = start_redis_free(&ref.auth_port, PASSWORD);
        run_all(&ref);
        stop_redis(r2);
        stop_redis(r1);
    } else {
        fprintf(stderr, "note: /usr/bin/redis-server missing; the checks run on cipc only\n");
    }

    tbroker tb, tba;
    CHECK_INT(tbroker_start(&tb, &(cipc_broker_opts){.port = 0}), ==, 0);
    CHECK_INT(tbroker_start(&tba, &(cipc_broker_opts){.port = 0, .requirepass = PASSWORD}), ==, 0);
    struct target cipc = {.name = "cipc broker", .port = tb.port, .auth_port = tba.port};
    run_all(&cipc);
    tbroker_stop(&tba);
    tbroker_stop(&tb);
    return 0;
}
