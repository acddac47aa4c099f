/* queue_bench -- cipc_queue between two processes against the kernel's mechanisms.
 *
 *     queue_bench [--mode NAME] [--count N] [--big-count N] [--help]
 *
 * One producer process sends messages to one consumer process (forked), and the time
 * from the consumer being ready to it having received the last message is measured (the
 * consumer stores that instant in shared memory: its exit is not timed).
 * Every figure is printed as a `name: value unit` line:
 *
 *     queue_64B: X msgs/s          cipc_queue_put / cipc_queue_get, one message a call
 *     queue_batch_64B: X msgs/s    cipc_queue_put_many / get_many, up to 64 a call
 *     pipe_64B, socketpair_64B (AF_UNIX SOCK_SEQPACKET), mq_64B (POSIX mq_send/receive)
 *     queue_64KiB, pipe_64KiB, socketpair_64KiB, mq_64KiB: X MB/s
 *     memcpy_64KiB: X MB/s         one process copying one 64 KiB buffer to another, again
 *                                  and again (both stay in the CPU's cache: the ceiling)
 *     memcpy_ring_64KiB: X MB/s    one process copying 64 KiB slices of a 1 MiB ring (the
 *                                  queue's ring size) into one buffer in turn, as a
 *                                  consumer reads them: a reference for what a copy
 *                                  costs when its source is not already in cache
 *
 * N (default 1,000,000) messages of 64 bytes; big-count (default 16384, 1 GiB) messages
 * of 64 KiB. --mode runs one of the names above ("queue_64B", ...) or "all" (default).
 * Every consumer checks a sequence number in each message. mq_64KiB needs a message
 * size over fs.mqueue.msgsize_max for unprivileged users: it prints "n/a" when the
 * kernel refuses. The queue's ring is 256 KiB for 64-byte messages and 1 MiB for 64 KiB
 * ones (a ring that stays in cache beats a bigger one). Linux only; uses the public API
 * of libcipc. */
#define _GNU_SOURCE
#include <cipc.h>
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SMALL 64
#define BIG   (64 * 1024)
#define BATCH 64

static long g_count = 1000000, g_big = 16384;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "queue_bench: %s: %s\n", what, rc ? cipc_strerror(rc) : strerror(errno));
    exit(1);
}

/* Where a consumer records when it received its last message (CLOCK_MONOTONIC is the same
 * clock in every process), so that its exit and the parent's waitpid() are not timed. */
static double *g_done_at;

static void consumer_done(void)
{
    *g_done_at = now_s();
}

static double elapsed_since(double t0)
{
    return *g_done_at - t0;
}

static void fail_child(const char *what, long i)
{
    fprintf(stderr, "queue_bench: consumer: %s at message %ld\n", what, i);
    _exit(1);
}

/* A transport: the producer's send and the consumer's receive, run in two processes. */
struct transport {
    void (*send)(void *ctx, const void *msg, size_t len);
    size_t (*recv)(void *ctx, void *buf, size_t cap); /* returns the length */
    void *ctx;
};

/* Run `n` messages of `size` bytes through `t` (the consumer forked); returns seconds. */
static double run(struct transport *t, long n, size_t size, void (*after_fork_parent)(void *),
                  void (*after_fork_child)(void *))
{
    int ready[2];
    if (pipe(ready) < 0)
        die("pipe", 0);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", 0);
    if (pid == 0) {
        close(ready[0]);
        if (after_fork_child)
            after_fork_child(t->ctx);
        char *buf = malloc(size);
        if (write(ready[1], "r", 1) != 1)
            _exit(1);
        for (long i = 0; i < n; i++) {
            size_t len = t->recv(t->ctx, buf, size);
            if (len != size)
                fail_child("wrong length", i);
            uint64_t seq;
            memcpy(&seq, buf, sizeof seq);
            if (seq != (uint64_t)i)
                fail_child("wrong sequence", i);
        }
        consumer_done();
        _exit(0);
    }
    close(ready[1]);
    if (after_fork_parent)
        after_fork_parent(t->ctx);
    char *msg = calloc(1, size);
    for (size_t i = 8; i < size; i++)
        msg[i] = (char)i;
    char c;
    if (read(ready[0], &c, 1) != 1)
        die("consumer did not start", 0);
    close(ready[0]);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        uint64_t seq = (uint64_t)i;
        memcpy(msg, &seq, sizeof seq);
        t->send(t->ctx, msg, size);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        die("consumer failed", 0);
    double el = elapsed_since(t0);
    free(msg);
    return el;
}

/* --- cipc_queue ------------------------------------------------------------------ */

static void q_send(void *ctx, const void *msg, size_t len)
{
    int rc = cipc_queue_put(ctx, msg, len, -1);
    if (rc < 0)
        die("cipc_queue_put", rc);
}

static size_t q_recv(void *ctx, void *buf, size_t cap)
{
    size_t len = 0;
    int rc = cipc_queue_get(ctx, buf, cap, &len, -1);
    if (rc < 0)
        die("cipc_queue_get", rc);
    return len;
}

static cipc_queue *new_queue(size_t cap, size_t max_msg)
{
    cipc_queue *q = NULL;
    int rc = cipc_queue_new(&(cipc_queue_opts){.capacity = cap, .max_msg = max_msg}, &q);
    if (rc < 0)
        die("cipc_queue_new", rc);
    return q;
}

static double bench_queue(size_t size, long n)
{
    cipc_queue *q = new_queue(size == SMALL ? 256 * 1024 : 1u << 20, size);
    struct transport t = {q_send, q_recv, q};
    double el = run(&t, n, size, NULL, NULL);
    cipc_queue_close(q);
    return el;
}

/* Batched: the producer queues up to BATCH messages a call, the consumer takes up to
 * BATCH a call; both still move n separate 64-byte messages. */
static double bench_queue_batch(long n)
{
    cipc_queue *q = new_queue(256 * 1024, SMALL);
    int ready[2];
    if (pipe(ready) < 0)
        die("pipe", 0);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", 0);
    if (pid == 0) {
        static char buf[BATCH * SMALL];
        size_t lens[BATCH];
        if (write(ready[1], "r", 1) != 1)
            _exit(1);
        long i = 0;
        while (i < n) {
            int got = cipc_queue_get_many(q, buf, sizeof buf, lens, BATCH, -1);
            if (got < 0)
                die("cipc_queue_get_many", got);
            for (int k = 0; k < got; k++, i++) {
                uint64_t seq;
                memcpy(&seq, buf + (size_t)k * SMALL, sizeof seq);
                if (lens[k] != SMALL || seq != (uint64_t)i)
                    fail_child("wrong message", i);
            }
        }
        consumer_done();
        _exit(0);
    }
    static char msgs[BATCH][SMALL];
    struct iovec v[BATCH];
    for (int k = 0; k < BATCH; k++)
        v[k] = (struct iovec){.iov_base = msgs[k], .iov_len = SMALL};
    char c;
    if (read(ready[0], &c, 1) != 1)
        die("consumer did not start", 0);
    close(ready[0]);
    close(ready[1]);
    double t0 = now_s();
    long i = 0;
    while (i < n) {
        int k = (int)(n - i < BATCH ? n - i : BATCH);
        for (int j = 0; j < k; j++) {
            uint64_t seq = (uint64_t)(i + j);
            memcpy(msgs[j], &seq, sizeof seq);
        }
        int put = cipc_queue_put_many(q, v, (size_t)k, -1);
        if (put < 0)
            die("cipc_queue_put_many", put);
        i += put; /* those not taken are stamped again, from i, on the next call */
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        die("consumer failed", 0);
    double el = elapsed_since(t0);
    cipc_queue_close(q);
    return el;
}

/* --- kernel mechanisms ------------------------------------------------------------ */

struct fds {
    int rd, wr;
};

static void fd_send(void *ctx, const void *msg, size_t len)
{
    struct fds *f = ctx;
    const char *p = msg;
    while (len) {
        ssize_t w = write(f->wr, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            die("write", 0);
        }
        p += w;
        len -= (size_t)w;
    }
}

/* Pipes are byte streams: read exactly `cap` bytes (one message). */
static size_t pipe_recv(void *ctx, void *buf, size_t cap)
{
    struct fds *f = ctx;
    size_t got = 0;
    while (got < cap) {
        ssize_t r = read(f->rd, (char *)buf + got, cap - got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            fail_child("read", -1);
        }
        got += (size_t)r;
    }
    return got;
}

/* SOCK_SEQPACKET keeps message boundaries: one recv, one message. */
static size_t sock_recv(void *ctx, void *buf, size_t cap)
{
    struct fds *f = ctx;
    ssize_t r;
    do
        r = recv(f->rd, buf, cap, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        fail_child("recv", -1);
    return (size_t)r;
}

static void close_wr(void *ctx)
{
    close(((struct fds *)ctx)->wr);
}

static void close_rd(void *ctx)
{
    close(((struct fds *)ctx)->rd);
}

static double bench_pipe(size_t size, long n)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        die("pipe", 0);
    struct fds f = {p[0], p[1]};
    struct transport t = {fd_send, pipe_recv, &f};
    double el = run(&t, n, size, close_rd, close_wr);
    close(p[1]);
    return el;
}

static double bench_socketpair(size_t size, long n)
{
    int s[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s) < 0)
        die("socketpair", 0);
    int sz = 4 << 20;
    setsockopt(s[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(s[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    struct fds f = {s[1], s[0]};
    struct transport t = {fd_send, sock_recv, &f};
    double el = run(&t, n, size, close_rd, close_wr);
    close(s[0]);
    return el;
}

static void mq_send_(void *ctx, const void *msg, size_t len)
{
    while (mq_send(*(mqd_t *)ctx, msg, len, 0) < 0)
        if (errno != EINTR)
            die("mq_send", 0);
}

static size_t mq_recv_(void *ctx, void *buf, size_t cap)
{
    ssize_t r;
    while ((r = mq_receive(*(mqd_t *)ctx, buf, cap, NULL)) < 0)
        if (errno != EINTR)
            fail_child("mq_receive", -1);
    return (size_t)r;
}

/* Returns seconds, or a negative value when the kernel refuses such a queue. */
static double bench_mq(size_t size, long n)
{
    char name[64];
    snprintf(name, sizeof name, "/cipc-bench-%d", (int)getpid());
    mq_unlink(name);
    struct mq_attr a = {.mq_maxmsg = 10, .mq_msgsize = (long)size};
    mqd_t m = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &a);
    if (m == (mqd_t)-1)
        return -1;
    mq_unlink(name);
    struct transport t = {mq_send_, mq_recv_, &m};
    double el = run(&t, n, size, NULL, NULL);
    mq_close(m);
    return el;
}

static double bench_memcpy_ring(long n)
{
    enum { RING = 1 << 20 };
    char *ring = malloc(RING), *b = malloc(BIG);
    if (!ring || !b)
        die("malloc", 0);
    memset(ring, 1, RING);
    memset(b, 2, BIG);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        char *src = ring + (size_t)(i % (RING / BIG)) * BIG;
        src[0] = (char)i; /* the producer's write: the line is dirty, as in a queue */
        memcpy(b, src, BIG);
        __asm__ __volatile__("" : : "r"(b) : "memory");
    }
    double el = now_s() - t0;
    free(ring);
    free(b);
    return el;
}

static double bench_memcpy(long n)
{
    char *a = malloc(BIG), *b = malloc(BIG);
    memset(a, 1, BIG);
    memset(b, 2, BIG);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        a[0] = (char)i;
        memcpy(b, a, BIG);
        __asm__ __volatile__("" : : "r"(b) : "memory");
    }
    double el = now_s() - t0;
    free(a);
    free(b);
    return el;
}

/* --- main ------------------------------------------------------------------------ */

static void print_rate(const char *name, double el, long n, size_t size)
{
    if (el < 0)
        printf("%s: n/a\n", name);
    else if (size == SMALL)
        printf("%s: %.0f msgs/s\n", name, (double)n / el);
    else
        printf("%s: %.0f MB/s\n", name, (double)n * (double)size / el / 1e6);
    fflush(stdout);
}

static int want(const char *mode, const char *name)
{
    return !strcmp(mode, "all") || !strcmp(mode, name);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: queue_bench [--mode all|queue_64B|queue_batch_64B|pipe_64B|socketpair_64B|"
               "mq_64B|queue_64KiB|pipe_64KiB|socketpair_64KiB|mq_64KiB|memcpy_64KiB|\n"
               "                   memcpy_ring_64KiB]\n"
               "                   [--count N] [--big-count N]\n");
}

int main(int argc, char **argv)
{
    const char *mode = "all";
    g_done_at = mmap(NULL, sizeof *g_done_at, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                     -1, 0);
    if (g_done_at == MAP_FAILED)
        die("mmap", 0);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
            mode = argv[++i];
        } else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
            g_count = atol(argv[++i]);
        } else if (!strcmp(argv[i], "--big-count") && i + 1 < argc) {
            g_big = atol(argv[++i]);
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (g_count <= 0 || g_big <= 0) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (want(mode, "queue_64B"))
        print_rate("queue_64B", bench_queue(SMALL, g_count), g_count, SMALL);
    if (want(mode, "queue_batch_64B"))
        print_rate("queue_batch_64B", bench_queue_batch(g_count), g_count, SMALL);
    if (want(mode, "pipe_64B"))
        print_rate("pipe_64B", bench_pipe(SMALL, g_count), g_count, SMALL);
    if (want(mode, "socketpair_64B"))
        print_rate("socketpair_64B", bench_socketpair(SMALL, g_count), g_count, SMALL);
    if (want(mode, "mq_64B"))
        print_rate("mq_64B", bench_mq(SMALL, g_count), g_count, SMALL);
    if (want(mode, "queue_64KiB"))
        print_rate("queue_64KiB", bench_queue(BIG, g_big), g_big, BIG);
    if (want(mode, "pipe_64KiB"))
        print_rate("pipe_64KiB", bench_pipe(BIG, g_big), g_big, BIG);
    if (want(mode, "socketpair_64KiB"))
        print_rate("socketpair_64KiB", bench_socketpair(BIG, g_big), g_big, BIG);
    if (want(mode, "mq_64KiB"))
        print_rate("mq_64KiB", bench_mq(BIG, g_big), g_big, BIG);
    if (want(mode, "memcpy_64KiB"))
        print_rate("memcpy_64KiB", bench_memcpy(g_big), g_big, BIG);
    if (want(mode, "memcpy_ring_64KiB"))
        print_rate("memcpy_ring_64KiB", bench_memcpy_ring(g_big), g_big, BIG);
    return 0;
}
