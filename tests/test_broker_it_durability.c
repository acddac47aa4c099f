/* tests/test_broker_it_durability.c -- the broker's append-only file.
 *
 * kill -9: build/bin/broker runs with --appendfsync always while four producers push
 * numbered items, each recording the pushes the broker acknowledged; the broker is killed
 * with SIGKILL in the middle, restarted on the same file, and every acknowledged item must
 * be there exactly once, in each producer's order (an item sent but not acknowledged may
 * be there or not, but never twice). Done several times, killing at different moments.
 * everysec: pushes acknowledged more than 2 s before a SIGKILL survive it.
 * Rewrite: with a tiny rewrite threshold the file is rewritten while pushes and pops go
 * on; a new broker on the rewritten file holds exactly what the first one held.
 * A damaged file (not a truncated tail) stops the broker from starting. */
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "broker_helper.h"

typedef struct proc {
    pid_t pid;
    int port;
} proc;

static proc start_broker(const char *aof, const char *fsync)
{
    const char *dir = getenv("CIPC_BIN_DIR");
    char bin[512];
    snprintf(bin, sizeof bin, "%s/broker", dir ? dir : "build/bin");
    int out[2];
    CHECK(pipe(out) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        execl(bin, "broker", "--port", "0", "--aof", aof, "--appendfsync", fsync, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char line[64];
    size_t n = 0;
    int64_t deadline = tb_now_ms() + 10000;
    while (n < sizeof line - 1 && tb_now_ms() < deadline) {
        struct pollfd pf = {.fd = out[0], .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        if (read(out[0], line + n, 1) != 1)
            break;
        if (line[n++] == '\n')
            break;
    }
    line[n] = 0;
    close(out[0]);
    proc p = {pid, 0};
    CHECK(sscanf(line, "PORT %d", &p.port) == 1);
    return p;
}

static void kill9(proc *p)
{
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = -1;
}

static void stop(proc *p)
{
    kill(p->pid, SIGTERM);
    int st = 0;
    CHECK(waitpid(p->pid, &st, 0) == p->pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    p->pid = -1;
}

/* --- a tiny RESP reader for replies ------------------------------------------------------ */

typedef struct reader {
    int fd;
    char buf[1 << 16];
    size_t len, pos;
} reader;

/* Next line (without CRLF) into out; 0 on EOF/timeout. */
static int read_line(reader *r, char *out, size_t cap)
{
    for (;;) {
        char *nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);
        if (nl) {
            size_t n = (size_t)(nl - (r->buf + r->pos));
            size_t k = n && nl[-1] == '\r' ? n - 1 : n;
            if (k >= cap)
                k = cap - 1;
            memcpy(out, r->buf + r->pos, k);
            out[k] = 0;
            r->pos += n + 1;
            return 1;
        }
        if (r->pos) {
            memmove(r->buf, r->buf + r->pos, r->len - r->pos);
            r->len -= r->pos;
            r->pos = 0;
        }
        struct pollfd pf = {.fd = r->fd, .events = POLLIN};
        if (poll(&pf, 1, RC_TIMEOUT_MS) <= 0)
            return 0;
        ssize_t got = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, 0);
        if (got <= 0)
            return 0;
        r->len += (size_t)got;
    }
}

/* LRANGE key 0 -1 as an array of strings "p<k>-<seq>" parsed into counts per producer. */
static void read_all(int port, const char *key, int nprod, long *seen_max, char **seen,
                     long cap)
{
    reader *r = calloc(1, sizeof *r);
    r->fd = rc_connect(port);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "LRANGE %s 0 -1\r\n", key);
    rc_send(r->fd, cmd);
    char line[256];
    CHECK(read_line(r, line, sizeof line));
    CHECK(line[0] == '*');
    long n = atol(line + 1);
    long last[16];
    for (int k = 0; k < nprod; k++)
        last[k] = -1;
    for (long i = 0; i < n; i++) {
        CHECK(read_line(r, line, sizeof line)); /* $len */
        CHECK(read_line(r, line, sizeof line));
        int k;
        long seq;
        CHECK(sscanf(line, "p%d-%ld", &k, &seq) == 2);
        CHECK(k >= 0 && k < nprod && seq >= 0 && seq < cap);
        CHECK(!seen[k][seq]);     /* never twice */
        CHECK(seq > last[k]);     /* in the producer's order */
        last[k] = seq;
        seen[k][seq] = 1;
        if (seq > seen_max[k])
            seen_max[k] = seq;
    }
    close(r->fd);
    free(r);
}

/* Four producers on one thread: each keeps one RPUSH in flight; acked[k] counts the
 * acknowledged ones (items 0 .. acked[k]-1). Stops when the broker dies or after
 * max_ms. */
enum { NPROD = 4, CAP = 200000 };

static void produce(int port, long *acked, long *sent, int64_t max_ms)
{
    reader *r[NPROD];
    for (int k = 0; k < NPROD; k++) {
        r[k] = calloc(1, sizeof *r[k]);
        r[k]->fd = rc_connect(port);
    }
    int64_t deadline = tb_now_ms() + max_ms;
    int alive = NPROD;
    int dead[NPROD] = {0};
    char cmd[128], line[64];
    for (int k = 0; k < NPROD; k++) {
        snprintf(cmd, sizeof cmd, "RPUSH q p%d-%ld\r\n", k, sent[k]);
        rc_send_n(r[k]->fd, cmd, strlen(cmd));
        sent[k]++;
    }
    while (alive && tb_now_ms() < deadline) {
        for (int k = 0; k < NPROD; k++) {
            if (dead[k])
                continue;
            if (!read_line(r[k], line, sizeof line) || line[0] != ':') {
                dead[k] = 1;
                alive--;
                continue;
            }
            acked[k]++;
            if (sent[k] >= CAP) {
                dead[k] = 1;
                alive--;
                continue;
            }
            snprintf(cmd, sizeof cmd, "RPUSH q p%d-%ld\r\n", k, sent[k]);
            if (send(r[k]->fd, cmd, strlen(cmd), MSG_NOSIGNAL) != (ssize_t)strlen(cmd)) {
                dead[k] = 1;
                alive--;
                continue;
            }
            sent[k]++;
        }
    }
    for (int k = 0; k < NPROD; k++) {
        close(r[k]->fd);
        free(r[k]);
    }
}

struct killer {
    pid_t pid;
    int after_ms;
};

static void *killer_thread(void *arg)
{
    struct killer *kl = arg;
    usleep((useconds_t)kl->after_ms * 1000);
    kill(kl->pid, SIGKILL);
    return NULL;
}

static void test_kill9_always(const char *dir)
{
    char aof[512];
    snprintf(aof, sizeof aof, "%s/always.aof", dir);
    unlink(aof);
    long acked[NPROD] = {0}, sent[NPROD] = {0};
    for (int round = 0; round < 4; round++) {
        proc p = start_broker(aof, "always");
        struct killer kl = {p.pid, 150 + 120 * round};
        pthread_t th;
        pthread_create(&th, NULL, killer_thread, &kl);
        /* Pushes continue from where each producer's acknowledged items end. */
        long before[NPROD];
        for (int k = 0; k < NPROD; k++) {
            before[k] = acked[k];
            sent[k] = acked[k] > sent[k] ? acked[k] : sent[k];
        }
        produce(p.port, acked, sent, 20000);
        pthread_join(th, NULL);
        waitpid(p.pid, NULL, 0);
        long total = 0;
        for (int k = 0; k < NPROD; k++)
            total += acked[k] - before[k];
        CHECK(total > 0); /* something was pushed before the kill */
        /* Restart on the same file and check. */
        p = start_broker(aof, "always");
        long seen_max[NPROD];
        char *seen[NPROD];
        for (int k = 0; k < NPROD; k++) {
            seen_max[k] = -1;
            seen[k] = calloc(CAP, 1);
        }
        read_all(p.port, "q", NPROD, seen_max, seen, CAP);
        for (int k = 0; k < NPROD; k++) {
            for (long i = 0; i < acked[k]; i++)
                CHECK(seen[k][i]); /* every acknowledged push survived */
            /* Unacknowledged pushes that made it: at most the one in flight. The next
             * round continues after them. */
            CHECK(seen_max[k] <= sent[k] - 1);
            acked[k] = seen_max[k] + 1;
            sent[k] = acked[k];
            free(seen[k]);
        }
        kill9(&p);
    }
    unlink(aof);
}

static void test_everysec(const char *dir)
{
    char aof[512];
    snprintf(aof, sizeof aof, "%s/everysec.aof", dir);
    unlink(aof);
    proc p = start_broker(aof, "everysec");
    int fd = rc_connect(p.port);
    for (int i = 0; i < 1000; i++) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "RPUSH e item-%d\r\n", i);
        rc_send(fd, cmd);
        char want[16];
        snprintf(want, sizeof want, ":%d\r\n", i + 1);
        rc_expect(fd, want);
    }
    /* The documented window: at most about a second of acknowledged pushes. */
    usleep(2500 * 1000);
    close(fd);
    kill9(&p);
    p = start_broker(aof, "everysec");
    fd = rc_connect(p.port);
    rc_send(fd, "LLEN e\r\n");
    rc_expect(fd, ":1000\r\n");
    close(fd);
    stop(&p);
    unlink(aof);
}

static void info_field(int port, const char *field, char *out, size_t cap)
{
    reader *r = calloc(1, sizeof *r);
    r->fd = rc_connect(port);
    rc_send(r->fd, "INFO persistence\r\n");
    char line[256];
    out[0] = 0;
    CHECK(read_line(r, line, sizeof line));
    long n = atol(line + 1), got = 0;
    while (got < n && read_line(r, line, sizeof line)) {
        got += (long)strlen(line) + 2;
        size_t fl = strlen(field);
        if (!strncmp(line, field, fl) && line[fl] == ':') {
            size_t vl = strlen(line + fl + 1);
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, line + fl + 1, vl);
            out[vl] = 0;
        }
    }
    close(r->fd);
    free(r);
}

static void test_rewrite(const char *dir)
{
    char aof[512];
    snprintf(aof, sizeof aof, "%s/rewrite.aof", dir);
    unlink(aof);
    tbroker tb;
    CHECK(tbroker_start(&tb, &(cipc_broker_opts){.aof_path = aof,
                                                 .appendfsync = CIPC_BROKER_FSYNC_NO,
                                                 .aof_rewrite_min_size = 64 * 1024,
                                                 .aof_rewrite_percentage = 100}) == 0);
    int fd = rc_connect(tb.port);
    /* Push 3000, pop 1000 (in batches): the log holds 4000 commands' worth of bytes, the
     * data only 2000 items. Keep going until a rewrite has happened, then a bit more. */
    char val[64], rewrites[32] = "0";
    long pushed = 0, popped = 0;
    int64_t deadline = tb_now_ms() + 30000;
    while (tb_now_ms() < deadline) {
        for (int i = 0; i < 300; i++) {
            snprintf(val, sizeof val, "RPUSH w value-%06ld-padding-padding\r\n", pushed++);
            rc_send(fd, val);
        }
        rc_send(fd, "LPOP w 100\r\n");
        popped += 100;
        /* Replies: 300 integers and one array of 100 bulks. */
        reader *r = calloc(1, sizeof *r);
        r->fd = fd;
        char line[128];
        for (int i = 0; i < 300 + 1 + 200; i++)
            CHECK(read_line(r, line, sizeof line));
        free(r);
        info_field(tb.port, "aof_rewrites", rewrites, sizeof rewrites);
        if (atoi(rewrites) >= 1 && pushed > 6000)
            break;
    }
    CHECK(atoi(rewrites) >= 1);
    close(fd);
    tbroker_stop(&tb);
    /* A new broker on the rewritten file: exactly items popped .. pushed - 1, in order. */
    CHECK(tbroker_start(&tb, &(cipc_broker_opts){.aof_path = aof}) == 0);
    reader *r = calloc(1, sizeof *r);
    r->fd = rc_connect(tb.port);
    rc_send(r->fd, "LRANGE w 0 -1\r\n");
    char line[128];
    CHECK(read_line(r, line, sizeof line));
    CHECK_INT(atol(line + 1), ==, pushed - popped);
    for (long i = popped; i < pushed; i++) {
        CHECK(read_line(r, line, sizeof line));
        CHECK(read_line(r, line, sizeof line));
        snprintf(val, sizeof val, "value-%06ld-padding-padding", i);
        CHECK_STR(line, val);
    }
    close(r->fd);
    free(r);
    tbroker_stop(&tb);
    unlink(aof);
}

static void test_damaged(const char *dir)
{
    char aof[512];
    snprintf(aof, sizeof aof, "%s/damaged.aof", dir);
    /* A truncated last command is dropped; the rest loads. */
    int f = open(aof, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const char *ok = "*3\r\n$5\r\nRPUSH\r\n$1\r\nk\r\n$1\r\nv\r\n*3\r\n$5\r\nRPUSH\r\n$1\r\nk\r\n$3\r\nab";
    CHECK(write(f, ok, strlen(ok)) == (ssize_t)strlen(ok));
    close(f);
    tbroker tb;
    CHECK(tbroker_start(&tb, &(cipc_broker_opts){.aof_path = aof}) == 0);
    int fd = rc_connect(tb.port);
    rc_send(fd, "LRANGE k 0 -1\r\n");
    rc_expect(fd, "*1\r\n$1\r\nv\r\n");
    close(fd);
    tbroker_stop(&tb);
    /* Garbage in the middle: the broker refuses to start rather than lose data silently. */
    f = open(aof, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const char *bad = "*3\r\n$5\r\nRPUSH\r\n$1\r\nk\r\n$1\r\nv\r\n*x\r\n*1\r\n$4\r\nPING\r\n";
    CHECK(write(f, bad, strlen(bad)) == (ssize_t)strlen(bad));
    close(f);
    CHECK(tbroker_start(&tb, &(cipc_broker_opts){.aof_path = aof}) == CIPC_EPROTO);
    unlink(aof);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    char dir[] = "/tmp/cipc-aof-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    test_damaged(dir);
    test_rewrite(dir);
    test_everysec(dir);
    test_kill9_always(dir);
    rmdir(dir);
    puts("test_broker_it_durability: ok");
    return 0;
}
