/* A process pool (cipc/pool.h): workers forked from a single-threaded forkserver (the
 * default) or from the caller, one task queue per worker, one result queue; the parent
 * tracks what each worker holds so a dead worker's task is reported and its untaken
 * tasks go to another worker. No threads: the parent makes progress inside the pool's
 * calls (pump()).
 *
 * Copies. A map chunk is put straight from the caller's input array into the worker's
 * queue (a gathered put: header + slice), and results are applied straight out of the
 * result ring (a visiting get): the parent, which is the bottleneck of a map of cheap
 * items, copies each input and each result once. */
#define _GNU_SOURCE
#include "cipc/pool.h"

#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cipc/queue.h"
#include "process/queue_internal.h"

enum { K_MAP = 1, K_BYTES = 2 };
#define MAX_INFLIGHT   256  /* tasks queued to one worker; stolen back at the tail */
#define CHECK_EVERY_MS 10
#define SPAWN_WAIT_MS  10000 /* for the forkserver's answer */
#define LATENCY_SPIN   4000  /* pauses the parent spins for a result when few are due */

struct thdr { /* task message header */
    uint64_t id;
    uint32_t kind, count;
    cipc_pool_fn fn;
    cipc_pool_bytes_fn bfn;
    void *ud;
    uint64_t in_size, out_size;
};

struct rhdr { /* result message header */
    uint64_t id;
    uint32_t first, count; /* the items of the task this message holds */
    uint32_t widx, pad;
    int64_t pid;
};

/* A map, map_bytes or imap call: its inputs, cut into tasks lazily (feed()), and where
 * its results go. */
struct mapjob {
    int kind;
    const char *inputs; /* K_MAP: chunks are put from here (borrowed) */
    size_t in_size;
    const struct iovec *bin; /* K_BYTES inputs (borrowed) */
    cipc_pool_fn fn;
    cipc_pool_bytes_fn bfn;
    void *ud;
    size_t chunksize, fed; /* items [0, fed) are in tasks */
    struct mapjob *feed_next; /* in the pool's feed list while fed < n */
    char *outputs;
    size_t out_size;
    int *errs;
    struct iovec *bout;
    size_t n, remaining;
    int failed;
    /* imap: */
    int iter, orphan;      /* orphan: the iterator was freed; drop results, free at 0 */
    unsigned char *ready;  /* per item */
    size_t *fifo;          /* completion order (unordered) */
    size_t fifo_head, fifo_tail;
};

struct cipc_future {
    cipc_pool *pool;
    int done, rc, user_owned, cb_queued;
    void *data;
    size_t len;
    cipc_pool_done_cb cb;
    void *cb_ud;
    cipc_future *next_cb;
};

struct task {
    struct task *next;
    uint64_t id;
    struct thdr h;   /* K_MAP: the message is h + the job's inputs [first, first + count) */
    void *msg;       /* otherwise: the whole message (owned) */
    size_t msg_len;
    uint64_t started_ms;
    struct mapjob *job; /* map chunk: items [first, first + count) */
    size_t first, count;
    size_t received; /* items whose results arrived (results come in order) */
    cipc_future *fut; /* apply_async */
};

struct worker {
    pid_t pid;  /* 0: none */
    int pidfd;  /* forkserver workers (not our children): exit and kill go through it */
    cipc_queue *q;  /* its tasks: the parent puts, the worker gets */
    cipc_queue *rq; /* its results: the worker puts, the parent gets (no put contention
                       between workers: a contended robust mutex costs futex syscalls) */
    struct task *inflight[MAX_INFLIGHT];
    int n_inflight;
    int sent;
    int dying; /* in reap_and_replace() */
    int full;  /* dispatch(): its queue had no room */
};

/* A doorbell in shared memory: a worker bumps `seq` after each result it puts and wakes
 * the parent when it sleeps. The parent sleeps on this futex instead of in
 * cipc_queue_get(), whose spin before sleeping would take a CPU from the workers. */
struct bell {
    _Atomic uint32_t seq;
    _Atomic uint32_t waiting;
    _Atomic uint32_t want; /* wake the parent once seq reaches this */
};

struct cipc_pool {
    struct bell *bell;
    int nworkers, max_tasks, max_inflight, closed, terminated, stopping, joined, method;
    long task_timeout_ms;
    size_t max_msg, results_cap, max_result; /* results_cap: one worker's result ring;
                                                max_result: largest result seen */
    cipc_pool_init_fn init;
    void *initarg;
    pid_t self; /* in a worker, its pid */
    int srv_sock; /* forkserver: our end of its socket, -1 otherwise */
    pid_t srv_pid;
    struct worker *w;
    struct task *pend_head, *pend_tail;
    size_t n_pending, n_inflight;
    uint64_t next_id, last_check_ms;
    cipc_future *cb_head, *cb_tail; /* completed futures whose callbacks are due */
    struct mapjob *feed_head, *feed_tail; /* jobs with items not cut into tasks yet */
    int in_callbacks;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static size_t round8(size_t n) { return (n + 7) & ~(size_t)7; }

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

/* --- the worker side ---------------------------------------------------------------- */

static size_t run_map(const struct thdr *h, const char *in, char *out)
{
    struct rhdr *r = (struct rhdr *)out;
    int32_t *errs = (int32_t *)(out + sizeof *r);
    char *res = out + sizeof *r + round8(h->count * sizeof(int32_t));
    memset(res, 0, h->count * h->out_size);
    for (uint32_t i = 0; i < h->count; i++)
        errs[i] = h->fn(in + i * h->in_size, res + i * h->out_size, h->ud);
    return (size_t)(res - out) + h->count * h->out_size;
}

/* Send out[0..len) as a result message for items [first, first + count) of task h. */
static int send_result(cipc_pool *p, int widx, const struct thdr *h, char *out, size_t len,
                       uint32_t first, uint32_t count)
{
    struct rhdr r = {.id = h->id, .first = first, .count = count, .widx = (uint32_t)widx,
                     .pid = (int64_t)p->self};
    memcpy(out, &r, sizeof r);
    int rc = cipc_queue_put(p->w[widx].rq, out, len, -1);
    uint32_t seq = atomic_fetch_add(&p->bell->seq, 1) + 1;
    /* One wake per sleep: whoever clears `waiting` rings; the others see it clear. */
    if (atomic_load(&p->bell->waiting) && (int32_t)(seq - atomic_load(&p->bell->want)) >= 0 &&
        atomic_exchange(&p->bell->waiting, 0))
        syscall(SYS_futex, &p->bell->seq, FUTEX_WAKE, 1, NULL, NULL, 0);
    return rc;
}

/* Variable-size items: each result is [i32 rc][4 pad][u64 len][bytes, padded to 8]. Each
 * item writes into `tmp` (room for a message of one result); results are packed into `out`
 * and sent whenever the next one would not fit, so a task may give several messages. */
static int run_bytes(cipc_pool *p, int widx, const struct thdr *h, const char *in, size_t in_len,
                     char *out, char *tmp)
{
    size_t ip = 0, op = sizeof(struct rhdr);
    size_t cap = (p->max_msg - sizeof(struct rhdr) - 16) & ~(size_t)7;
    uint32_t first = 0;
    for (uint32_t i = 0; i < h->count; i++) {
        uint64_t len = 0;
        if (ip + 8 <= in_len)
            memcpy(&len, in + ip, 8);
        const char *item = in + ip + 8;
        ip += 8 + round8(len);
        size_t olen = 0;
        int32_t rc = h->bfn(item, len, tmp, cap, &olen, h->ud);
        if (olen > cap) {
            rc = CIPC_ETOOBIG;
            olen = 0;
        }
        if (op + 16 + round8(olen) > p->max_msg) {
            if (send_result(p, widx, h, out, op, first, i - first) < 0)
                return -1;
            op = sizeof(struct rhdr);
            first = i;
        }
        uint64_t l64 = olen;
        memcpy(out + op, &rc, 4);
        memset(out + op + 4, 0, 4);
        memcpy(out + op + 8, &l64, 8);
        memcpy(out + op + 16, tmp, olen);
        op += 16 + round8(olen);
    }
    return send_result(p, widx, h, out, op, first, h->count - first);
}

/* A worker: `ppid` is the process that forked it (the caller, or the forkserver). */
static _Noreturn void worker_main(cipc_pool *p, int widx, pid_t ppid)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != ppid)
        _exit(0);
    p->self = getpid();
    if (p->init)
        p->init(p->initarg);
    cipc_queue *q = p->w[widx].q;
    char *in = malloc(p->max_msg), *out = malloc(p->max_msg), *tmp = malloc(p->max_msg);
    if (!in || !out || !tmp)
        _exit(71);
    int done = 0;
    for (;;) {
        size_t len = 0;
        int rc = cipc_queue_get(q, in, p->max_msg, &len, -1);
        if (rc == CIPC_ECLOSING)
            break;
        if (rc < 0 || len < sizeof(struct thdr))
            _exit(70);
        struct thdr h;
        memcpy(&h, in, sizeof h);
        if (h.kind == K_MAP)
            rc = send_result(p, widx, &h, out, run_map(&h, in + sizeof h, out), 0, h.count);
        else
            rc = run_bytes(p, widx, &h, in + sizeof h, len - sizeof h, out, tmp);
        if (rc < 0)
            break;
        if (p->max_tasks > 0 && ++done >= p->max_tasks)
            break;
    }
    fflush(stdout);
    fflush(stderr);
    _exit(0);
}

/* --- the forkserver ------------------------------------------------------------------- *
 * A child forked when the pool is created, which then only ever forks workers: it has one
 * thread and holds no locks, so every worker (replacements included) starts from that
 * state whatever threads the program runs later. Requests are a 4-byte worker index on a
 * SOCK_SEQPACKET socket; the answer is {pid, errno} with the worker's pidfd attached
 * (SCM_RIGHTS), opened before the server can reap the worker, so it names that process
 * and no other. The server reaps its children itself and exits when the socket closes. */

struct spawn_reply {
    int32_t pid, err;
};

static _Noreturn void forkserver_main(cipc_pool *p, int sock)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    pid_t me = getpid();
    for (;;) {
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
        struct pollfd pf = {.fd = sock, .events = POLLIN};
        if (poll(&pf, 1, 200) <= 0)
            continue;
        int32_t widx;
        ssize_t r = recv(sock, &widx, sizeof widx, 0);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
            _exit(0); /* the pool is gone: the workers follow through PDEATHSIG */
        if (r != sizeof widx || widx < 0 || widx >= p->nworkers)
            continue;
        struct spawn_reply rep = {0};
        int pidfd = -1;
        pid_t pid = fork();
        if (pid == 0) {
            close(sock);
            worker_main(p, widx, me);
        }
        if (pid < 0) {
            rep.err = errno;
        } else {
            rep.pid = pid;
            pidfd = pidfd_open_(pid);
            if (pidfd < 0) {
                rep.err = errno;
                kill(pid, SIGKILL);
            }
        }
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } u;
        struct iovec iov = {&rep, sizeof rep};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        if (pidfd >= 0) {
            mh.msg_control = u.buf;
            mh.msg_controllen = sizeof u.buf;
            struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &pidfd, sizeof pidfd);
        }
        while (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 && errno == EINTR) {
        }
        if (pidfd >= 0)
            close(pidfd);
    }
}

static int forkserver_start(cipc_pool *p)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        int rc = -errno;
        close(sv[0]);
        close(sv[1]);
        return rc;
    }
    if (pid == 0) {
        close(sv[0]);
        forkserver_main(p, sv[1]);
    }
    close(sv[1]);
    p->srv_sock = sv[0];
    p->srv_pid = pid;
    return 0;
}

/* Ask the forkserver for worker widx: sets w->pid and w->pidfd. */
static int forkserver_spawn(cipc_pool *p, struct worker *w, int widx)
{
    if (p->srv_sock < 0)
        return -ECHILD;
    int32_t req = widx;
    if (send(p->srv_sock, &req, sizeof req, MSG_NOSIGNAL) != sizeof req)
        return -ECHILD;
    struct pollfd pf = {.fd = p->srv_sock, .events = POLLIN};
    int n;
    while ((n = poll(&pf, 1, SPAWN_WAIT_MS)) < 0 && errno == EINTR) {
    }
    if (n <= 0)
        return n == 0 ? CIPC_ETIMEOUT : -errno;
    struct spawn_reply rep;
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = {&rep, sizeof rep};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                        .msg_controllen = sizeof u.buf};
    ssize_t r = recvmsg(p->srv_sock, &mh, MSG_CMSG_CLOEXEC);
    if (r != sizeof rep)
        return -ECHILD; /* the server died: spawns fail from now on */
    int fd = -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
        memcpy(&fd, CMSG_DATA(c), sizeof fd);
    if (rep.err || fd < 0) {
        if (fd >= 0)
            close(fd);
        return rep.err ? -rep.err : -ECHILD;
    }
    w->pid = rep.pid;
    w->pidfd = fd;
    return 0;
}

static void forkserver_stop(cipc_pool *p)
{
    if (p->srv_sock >= 0) {
        close(p->srv_sock);
        p->srv_sock = -1;
    }
    if (p->srv_pid > 0) {
        kill(p->srv_pid, SIGKILL);
        while (waitpid(p->srv_pid, NULL, 0) < 0 && errno == EINTR) {
        }
        p->srv_pid = 0;
    }
}

/* --- worker processes, either method -------------------------------------------------- */

static int spawn_worker(cipc_pool *p, int widx)
{
    struct worker *w = &p->w[widx];
    w->n_inflight = 0;
    w->sent = 0;
    w->pidfd = -1;
    if (p->method == CIPC_POOL_FORKSERVER)
        return forkserver_spawn(p, w, widx);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0)
        worker_main(p, widx, p->self);
    w->pid = pid;
    return 0;
}

/* 1 if worker w has exited (and, for our own children, is reaped), else 0. */
static int worker_exited(struct worker *w)
{
    if (w->pidfd >= 0) {
        struct pollfd pf = {.fd = w->pidfd, .events = POLLIN};
        return poll(&pf, 1, 0) > 0;
    }
    int st;
    pid_t r = waitpid(w->pid, &st, WNOHANG);
    return r == w->pid || (r < 0 && errno == ECHILD);
}

static void worker_kill(struct worker *w)
{
    if (w->pidfd >= 0)
        syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
    else if (w->pid > 0)
        kill(w->pid, SIGKILL);
}

/* Wait for worker w to exit, up to timeout_ms (< 0 forever). 0 once gone, else
 * CIPC_ETIMEOUT. Forgets the process once it is gone. */
static int worker_wait(struct worker *w, long timeout_ms)
{
    if (w->pid <= 0)
        return 0;
    if (w->pidfd >= 0) {
        struct pollfd pf = {.fd = w->pidfd, .events = POLLIN};
        int n;
        while ((n = poll(&pf, 1, (int)timeout_ms)) < 0 && errno == EINTR) {
        }
        if (n == 0)
            return CIPC_ETIMEOUT;
        close(w->pidfd);
        w->pidfd = -1;
    } else if (timeout_ms < 0) {
        while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR) {
        }
    } else {
        uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
        for (;;) {
            pid_t r = waitpid(w->pid, NULL, WNOHANG);
            if (r == w->pid || (r < 0 && errno != EINTR))
                break;
            if (now_ms() >= deadline)
                return CIPC_ETIMEOUT;
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    w->pid = 0;
    return 0;
}

/* --- completing tasks ----------------------------------------------------------------- */

static void future_complete(cipc_pool *p, cipc_future *f, int rc, const void *data, size_t len)
{
    f->done = 1;
    f->pool = NULL; /* a completed future never needs its pool again */
    f->rc = rc;
    if (len) {
        f->data = malloc(len + 1);
        if (f->data) {
            memcpy(f->data, data, len);
            ((char *)f->data)[len] = 0;
            f->len = len;
        } else if (rc >= 0) {
            f->rc = -ENOMEM;
        }
    }
    if (f->cb) { /* run later, outside the result queue's lock: see run_callbacks() */
        f->cb_queued = 1;
        f->next_cb = NULL;
        if (p->cb_tail)
            p->cb_tail->next_cb = f;
        else
            p->cb_head = f;
        p->cb_tail = f;
    } else if (!f->user_owned) {
        free(f->data);
        free(f);
    }
}

static void run_callbacks(cipc_pool *p)
{
    if (p->in_callbacks) /* a callback that waits on a future ends up here */
        return;
    p->in_callbacks = 1;
    while (p->cb_head) {
        cipc_future *f = p->cb_head;
        p->cb_head = f->next_cb;
        if (!p->cb_head)
            p->cb_tail = NULL;
        f->cb(f->rc, f->data, f->len, f->cb_ud);
        f->cb_queued = 0;
        if (!f->user_owned) {
            free(f->data);
            free(f);
        }
    }
    p->in_callbacks = 0;
}

static void job_free(struct mapjob *j)
{
    if (j->bout && j->iter)
        for (size_t i = 0; i < j->n; i++)
            free(j->bout[i].iov_base);
    free(j->bout);
    free(j->outputs);
    free(j->errs);
    free(j->ready);
    free(j->fifo);
    free(j);
}

/* Item i of job j has completed with `code` (its result, if any, is stored already). */
static void item_done(struct mapjob *j, size_t i, int code)
{
    if (code != 0) {
        j->failed++;
        if (j->kind == K_MAP && j->outputs)
            memset(j->outputs + i * j->out_size, 0, j->out_size);
    }
    if (j->errs)
        j->errs[i] = code;
    if (j->iter) {
        j->ready[i] = 1;
        j->fifo[j->fifo_tail++] = i;
    }
}

/* count items of job j are accounted for; frees an orphaned job when it is finished.
 * Returns 1 if it freed it. */
static int job_progress(struct mapjob *j, size_t count)
{
    j->remaining -= count;
    if (j->orphan && j->remaining == 0) {
        job_free(j);
        return 1;
    }
    return 0;
}

/* Apply the results of items [first, first + count) of task t from result message `res`,
 * or with res NULL fail every item not received yet with `code`. */
static void task_apply(cipc_pool *p, struct task *t, const char *res, size_t first, size_t count,
                       int code)
{
    if (!res) {
        first = t->received;
        count = t->count - t->received;
    }
    t->received = first + count;
    if (t->job) {
        struct mapjob *j = t->job;
        if (j->orphan) {
            /* nobody reads these results */
        } else if (!res) {
            for (size_t i = first; i < first + count; i++)
                item_done(j, t->first + i, code);
        } else if (j->kind == K_MAP) {
            const int32_t *errs = (const int32_t *)(res + sizeof(struct rhdr));
            const char *out = res + sizeof(struct rhdr) + round8(count * sizeof(int32_t));
            size_t at = t->first + first;
            memcpy(j->outputs + at * j->out_size, out, count * j->out_size);
            for (size_t i = 0; i < count; i++)
                item_done(j, at + i, errs[i]);
        } else {
            size_t op = sizeof(struct rhdr);
            for (size_t i = 0; i < count; i++) {
                int32_t rc;
                uint64_t len;
                memcpy(&rc, res + op, 4);
                memcpy(&len, res + op + 8, 8);
                size_t at = t->first + first + i;
                struct iovec *o = &j->bout[at];
                if (rc == 0) {
                    o->iov_base = malloc(len + 1);
                    if (!o->iov_base) {
                        rc = -ENOMEM;
                    } else {
                        memcpy(o->iov_base, res + op + 16, len);
                        ((char *)o->iov_base)[len] = 0;
                        o->iov_len = len;
                    }
                }
                item_done(j, at, rc);
                op += 16 + round8(len);
            }
        }
        if (job_progress(j, count))
            t->job = NULL;
    } else if (t->fut && count > 0) {
        if (!res) {
            future_complete(p, t->fut, code, NULL, 0);
        } else {
            int32_t rc;
            uint64_t len;
            memcpy(&rc, res + sizeof(struct rhdr), 4);
            memcpy(&len, res + sizeof(struct rhdr) + 8, 8);
            future_complete(p, t->fut, rc, res + sizeof(struct rhdr) + 16, len);
        }
    }
}

/* Fail what task t has not received yet with `code`, and free it. */
static void task_complete(cipc_pool *p, struct task *t, int code)
{
    if (t->received < t->count)
        task_apply(p, t, NULL, 0, 0, code);
    free(t->msg);
    free(t);
}

/* Put task t's message into queue q without waiting: CIPC_EAGAIN when it is full. */
static int task_put(cipc_queue *q, struct task *t)
{
    if (t->msg)
        return cipc_queue_try_put(q, t->msg, t->msg_len);
    const struct mapjob *j = t->job;
    struct iovec parts[2] = {{&t->h, sizeof t->h},
                             {(void *)(j->inputs + t->first * j->in_size), t->count * j->in_size}};
    return cipc__queue_putv(q, parts, 2, 0);
}

static void inflight_remove(cipc_pool *p, struct worker *w, int k)
{
    for (int i = k; i + 1 < w->n_inflight; i++)
        w->inflight[i] = w->inflight[i + 1];
    w->n_inflight--;
    p->n_inflight--;
    if (k == 0 && w->n_inflight > 0)
        w->inflight[0]->started_ms = now_ms();
}

/* A result message, visited in place in the result ring (so: no pool calls that touch
 * the result queue, no user callbacks from here). */
static void on_result(void *ctx, const void *data, size_t len)
{
    cipc_pool *p = ctx;
    const char *res = data;
    if (len > p->max_result)
        p->max_result = len;
    struct rhdr r;
    if (len < sizeof r)
        return;
    memcpy(&r, res, sizeof r);
    if (r.widx >= (uint32_t)p->nworkers)
        return;
    struct worker *w = &p->w[r.widx];
    if (w->pid != (pid_t)r.pid)
        return; /* from a worker already replaced: its task was reported failed */
    for (int k = 0; k < w->n_inflight; k++) {
        struct task *t = w->inflight[k];
        if (t->id == r.id) {
            if (r.first != t->received || r.count > t->count - t->received)
                break; /* cannot happen: results of a task come in order */
            task_apply(p, t, res, r.first, r.count, 0);
            if (t->received == t->count) {
                inflight_remove(p, w, k);
                task_complete(p, t, 0);
            }
            break;
        }
    }
}

static void reap_and_replace(cipc_pool *p, int widx, int code);

/* After results were taken: recycle workers that reached max_tasks_per_child, run the
 * callbacks that are due. */
static void after_results(cipc_pool *p)
{
    if (p->max_tasks > 0) {
        for (int i = 0; i < p->nworkers; i++) {
            struct worker *w = &p->w[i];
            if (w->pid > 0 && w->sent >= p->max_tasks && w->n_inflight == 0 && !w->dying)
                reap_and_replace(p, i, CIPC_EWORKER); /* it exits by itself now */
        }
    }
    run_callbacks(p);
}

static int drain_results(cipc_pool *p)
{
    int total = 0;
    for (int i = 0; i < p->nworkers; i++) {
        cipc_queue *rq = p->w[i].rq;
        int n;
        while (cipc_queue_count(rq) > 0 && (n = cipc__queue_get_visit(rq, on_result, p, 64, 0)) > 0)
            total += n;
    }
    return total;
}

/* Parent: take results, waiting up to wait_ms for the first (on the doorbell). While
 * workers have deep queues the parent asks to be woken only after several results, so it
 * takes a CPU from them less often; when few results are due it spins briefly first, as
 * the next one is likely microseconds away. Returns the number taken. */
static int get_results(cipc_pool *p, long wait_ms)
{
    int n = drain_results(p);
    if (n > 0 || wait_ms == 0)
        return n;
    uint32_t seen = atomic_load(&p->bell->seq);
    if (p->n_inflight <= (size_t)p->nworkers) {
        for (int spent = 0, gap = 8; spent < LATENCY_SPIN;
             spent += gap, gap = gap < 32 ? gap * 2 : gap) {
            for (int k = 0; k < gap; k++)
                cpu_relax();
            if (atomic_load_explicit(&p->bell->seq, memory_order_relaxed) != seen)
                return drain_results(p);
        }
    }
    size_t batch = p->n_inflight / 2, room = p->results_cap / (2 * (p->max_result + 16));
    if (batch > room)
        batch = room;
    seen = atomic_load(&p->bell->seq);
    uint32_t want = seen + (uint32_t)(batch ? batch : 1);
    atomic_store(&p->bell->want, want);
    atomic_store(&p->bell->waiting, 1);
    n = drain_results(p);
    if (n == 0) {
        /* Sleep until `want` results are in (the worker that puts the last one rings) or
         * wait_ms passes. A futex wait returns early when seq moves before it sleeps:
         * then sleep again on the new value rather than take one result at a time. */
        struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000L};
        for (;;) {
            uint32_t cur = atomic_load(&p->bell->seq);
            if ((int32_t)(cur - want) >= 0 || !atomic_load(&p->bell->waiting))
                break;
            if (syscall(SYS_futex, &p->bell->seq, FUTEX_WAIT, cur, &ts, NULL, 0) < 0 &&
                errno == ETIMEDOUT)
                break;
        }
        n = drain_results(p);
    }
    atomic_store(&p->bell->waiting, 0);
    return n;
}

static void pending_push_front(cipc_pool *p, struct task *t)
{
    t->next = p->pend_head;
    p->pend_head = t;
    if (!p->pend_tail)
        p->pend_tail = t;
    p->n_pending++;
}

static void pending_push(cipc_pool *p, struct task *t)
{
    t->next = NULL;
    if (p->pend_tail)
        p->pend_tail->next = t;
    else
        p->pend_head = t;
    p->pend_tail = t;
    p->n_pending++;
}

static void fail_pending(cipc_pool *p, int code)
{
    while (p->pend_head) {
        struct task *t = p->pend_head;
        p->pend_head = t->next;
        p->n_pending--;
        task_complete(p, t, code);
    }
    p->pend_tail = NULL;
}

static void count_one(void *ctx, const void *data, size_t len)
{
    (void)data;
    (void)len;
    (*(int *)ctx)++;
}

/* Worker widx has exited or is about to (killed, or done with its quota): wait for it,
 * complete what it delivered, requeue what it never took, fail what it held with `code`,
 * and start a replacement unless the pool is stopping. Its task queue is kept (empty) for
 * the replacement: a queue survives a process killed while using it. */
static void reap_and_replace(cipc_pool *p, int widx, int code)
{
    struct worker *w = &p->w[widx];
    w->dying = 1;
    pid_t pid = w->pid;
    worker_wait(w, -1);
    w->pid = pid; /* until its last results are in: on_result() checks it */
    drain_results(p);
    /* Tasks still in its queue were never started: the last ones in flight, in order. */
    int untaken = 0;
    while (cipc__queue_get_visit(w->q, count_one, &untaken, 64, 0) > 0) {
    }
    if (untaken > w->n_inflight)
        untaken = w->n_inflight;
    for (int k = w->n_inflight - 1; k >= w->n_inflight - untaken; k--)
        pending_push_front(p, w->inflight[k]);
    for (int k = 0; k < w->n_inflight - untaken; k++)
        task_complete(p, w->inflight[k], code);
    p->n_inflight -= (size_t)w->n_inflight;
    w->n_inflight = 0;
    w->pid = 0;
    w->dying = 0;
    if (!p->stopping && !p->terminated)
        (void)spawn_worker(p, widx); /* retried by check_workers() if it fails */
}

static void check_workers(cipc_pool *p)
{
    uint64_t now = now_ms();
    p->last_check_ms = now;
    int alive = 0, spawn_rc = 0;
    for (int i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->w[i];
        if (w->pid == 0) {
            if (p->stopping || p->terminated)
                continue;
            spawn_rc = spawn_worker(p, i);
            if (spawn_rc < 0)
                continue;
        }
        if (worker_exited(w)) {
            reap_and_replace(p, i, CIPC_EWORKER);
        } else if (p->task_timeout_ms > 0 && w->n_inflight > 0 &&
                   now - w->inflight[0]->started_ms > (uint64_t)p->task_timeout_ms) {
            worker_kill(w);
            reap_and_replace(p, i, CIPC_ETIMEOUT);
        }
        if (w->pid > 0)
            alive++;
    }
    if (alive == 0 && spawn_rc < 0 && !p->stopping)
        fail_pending(p, spawn_rc); /* no worker can be started: do not hang */
    run_callbacks(p);
}

static void feed(cipc_pool *p);

/* Hand pending tasks out, each to the worker holding the fewest. */
static void dispatch(cipc_pool *p)
{
    feed(p);
    for (int i = 0; i < p->nworkers; i++)
        p->w[i].full = 0;
    while (p->pend_head) {
        struct task *t = p->pend_head;
        if (t->job && t->job->orphan) { /* its imap iterator was freed: drop it unread */
            p->pend_head = t->next;
            if (!p->pend_head)
                p->pend_tail = NULL;
            p->n_pending--;
            task_complete(p, t, CIPC_ECANCELED);
            continue;
        }
        struct worker *best = NULL;
        for (int i = 0; i < p->nworkers; i++) {
            struct worker *w = &p->w[i];
            if (w->pid > 0 && !w->full && !w->dying && w->n_inflight < p->max_inflight &&
                (p->max_tasks <= 0 || w->sent < p->max_tasks) &&
                (!best || w->n_inflight < best->n_inflight))
                best = w;
        }
        if (!best)
            return;
        if (task_put(best->q, t) < 0) {
            best->full = 1;
            continue;
        }
        p->pend_head = t->next;
        if (!p->pend_head)
            p->pend_tail = NULL;
        p->n_pending--;
        t->started_ms = now_ms();
        best->inflight[best->n_inflight++] = t;
        best->sent++;
        p->n_inflight++;
        if (!p->pend_head)
            feed(p);
    }
}

struct steal_ctx {
    cipc_pool *p;
    struct worker *v;
};

static void steal_one(void *ctx, const void *data, size_t len)
{
    struct steal_ctx *s = ctx;
    struct thdr h;
    if (len < sizeof h)
        return;
    memcpy(&h, data, sizeof h);
    for (int k = 0; k < s->v->n_inflight; k++) {
        if (s->v->inflight[k]->id == h.id) {
            struct task *t = s->v->inflight[k];
            inflight_remove(s->p, s->v, k);
            s->v->sent--;
            pending_push(s->p, t);
            return;
        }
    }
}

/* Nothing is pending and a worker is idle: take half of the tasks another worker has
 * queued but not started back out of its queue (the queue delivers each message once, so
 * either the worker or we get it), and hand them out again. Keeps the tail of a map with
 * deep per-worker queues balanced. */
static void steal(cipc_pool *p)
{
    if (p->pend_head || p->max_inflight < 2)
        return;
    for (int i = 0; i < p->nworkers; i++) {
        struct worker *idle = &p->w[i];
        if (idle->pid <= 0 || idle->n_inflight > 0 || idle->dying ||
            (p->max_tasks > 0 && idle->sent >= p->max_tasks))
            continue;
        struct worker *v = NULL;
        for (int k = 0; k < p->nworkers; k++)
            if (p->w[k].pid > 0 && !p->w[k].dying && p->w[k].n_inflight >= 2 &&
                (!v || p->w[k].n_inflight > v->n_inflight))
                v = &p->w[k];
        if (!v)
            return;
        struct steal_ctx s = {p, v};
        (void)cipc__queue_get_visit(v->q, steal_one, &s, (size_t)(v->n_inflight / 2), 0);
        dispatch(p);
    }
}

/* One step: hand out tasks, wait up to wait_ms for results, watch the workers. */
static void pump(cipc_pool *p, long wait_ms)
{
    dispatch(p);
    if (p->n_inflight == 0 && p->n_pending == 0 && !p->feed_head) {
        run_callbacks(p);
        return;
    }
    long w = wait_ms < 0 || wait_ms > CHECK_EVERY_MS ? CHECK_EVERY_MS : wait_ms;
    if (p->n_inflight > 0 && get_results(p, w) > 0)
        after_results(p);
    if (now_ms() - p->last_check_ms >= CHECK_EVERY_MS || (p->n_inflight == 0 && p->n_pending))
        check_workers(p);
    dispatch(p);
    steal(p);
    if (p->n_inflight == 0 && p->n_pending > 0 && wait_ms != 0) {
        struct timespec ts = {0, 1000000}; /* no worker can take a task yet */
        nanosleep(&ts, NULL);
    }
}

/* --- the public API ------------------------------------------------------------------- */

static void pool_destroy(cipc_pool *p)
{
    for (int i = 0; i < p->nworkers && p->w; i++) {
        struct worker *w = &p->w[i];
        if (w->pid > 0) {
            worker_kill(w);
            worker_wait(w, -1);
        }
        if (w->pidfd >= 0)
            close(w->pidfd);
        cipc_queue_close(w->q);
        cipc_queue_close(w->rq);
    }
    forkserver_stop(p);
    if (p->bell)
        munmap(p->bell, sizeof *p->bell);
    free(p->w);
    free(p);
}

int cipc_pool_new(const cipc_pool_opts *opts, cipc_pool **out)
{
    cipc_pool_opts o = {0};
    if (opts)
        memcpy(&o, opts, opts->size && opts->size < sizeof o ? opts->size : sizeof o);
    if (o.start_method == CIPC_POOL_DEFAULT || o.start_method == CIPC_POOL_FORKSERVER) {
        /* The forkserver hands out pidfds (Linux 5.3): without them the default falls back
         * to fork, and an explicit request fails. */
        int fd = pidfd_open_(getpid());
        if (fd >= 0)
            close(fd);
        else if (o.start_method == CIPC_POOL_FORKSERVER)
            return -ENOSYS;
        o.start_method = fd >= 0 ? CIPC_POOL_FORKSERVER : CIPC_POOL_FORK;
    }
    if (!out || o.workers < 0 || o.workers > 4096 ||
        (o.start_method != CIPC_POOL_FORK && o.start_method != CIPC_POOL_FORKSERVER) ||
        o.max_tasks_per_child < 0 || o.task_timeout_ms < 0 || (o.max_msg && o.max_msg < 4096) ||
        o.max_msg > CIPC_QUEUE_MAX_CAPACITY / 16)
        return -EINVAL;
    if (o.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o.workers = n > 0 ? (int)n : 1;
    }
    cipc_pool *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->srv_sock = -1;
    p->self = getpid(); /* a worker's parent, for its check that the parent lives */
    p->method = o.start_method;
    p->nworkers = o.workers;
    p->max_tasks = o.max_tasks_per_child;
    p->task_timeout_ms = o.task_timeout_ms;
    p->max_inflight = o.task_timeout_ms > 0 ? 1 : MAX_INFLIGHT;
    p->max_msg = o.max_msg ? round8(o.max_msg) : 1u << 20;
    p->init = o.initializer;
    p->initarg = o.initarg;
    p->w = calloc((size_t)o.workers, sizeof *p->w);
    int rc = -ENOMEM;
    if (!p->w)
        goto fail;
    for (int i = 0; i < o.workers; i++)
        p->w[i].pidfd = -1;
    p->bell = mmap(NULL, sizeof *p->bell, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    if (p->bell == MAP_FAILED) {
        p->bell = NULL;
        goto fail;
    }
    p->max_result = 4096;
    /* Every queue exists before the first fork, so a forkserver has them all mapped. */
    cipc_queue_opts qo = {.max_msg = p->max_msg, .capacity = 4 * (round8(p->max_msg) + 8)};
    p->results_cap = qo.capacity;
    for (int i = 0; i < o.workers; i++)
        if ((rc = cipc_queue_new(&qo, &p->w[i].q)) < 0 ||
            (rc = cipc_queue_new(&qo, &p->w[i].rq)) < 0)
            goto fail;
    if (p->method == CIPC_POOL_FORKSERVER && (rc = forkserver_start(p)) < 0)
        goto fail;
    for (int i = 0; i < o.workers; i++)
        if ((rc = spawn_worker(p, i)) < 0)
            goto fail;
    p->last_check_ms = now_ms();
    *out = p;
    return 0;
fail:
    pool_destroy(p);
    return rc;
}

int cipc_pool_workers(const cipc_pool *p) { return p ? p->nworkers : 0; }

int cipc_pool_start_method(const cipc_pool *p) { return p ? p->method : -EINVAL; }

size_t cipc_pool_chunksize(const cipc_pool *p, size_t n)
{
    size_t d = (size_t)(p ? p->nworkers : 1) * 4;
    size_t c = n / d + (n % d ? 1 : 0);
    return c ? c : 1;
}

static struct task *task_new(cipc_pool *p, size_t payload)
{
    struct task *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    if (payload != (size_t)-1) { /* else: a gathered map chunk, no message of its own */
        t->msg_len = sizeof(struct thdr) + payload;
        t->msg = malloc(t->msg_len);
        if (!t->msg) {
            free(t);
            return NULL;
        }
    }
    t->id = ++p->next_id;
    return t;
}

/* Cut the next task out of job j (a chunk of up to j->chunksize items that fits one
 * message) and queue it. Returns 0, or -ENOMEM after failing the job's remaining items. */
static int feed_one(cipc_pool *p, struct mapjob *j)
{
    size_t first = j->fed, n = j->n, c = 0, bytes = 0;
    if (j->kind == K_MAP) {
        c = n - first < j->chunksize ? n - first : j->chunksize;
    } else {
        /* Take items while they fit: the task message, and 16 bytes per result header. */
        bytes = sizeof(struct thdr);
        while (first + c < n && c < j->chunksize && c < UINT32_MAX) {
            size_t need = 8 + round8(j->bin[first + c].iov_len);
            if (bytes + need > p->max_msg ||
                sizeof(struct rhdr) + 16 * (c + 1) + 64 > p->max_msg)
                break;
            bytes += need;
            c++;
        }
        if (c == 0) { /* this item alone does not fit */
            j->fed++;
            item_done(j, first, CIPC_ETOOBIG);
            job_progress(j, 1);
            return 0;
        }
    }
    struct task *t = task_new(p, j->kind == K_MAP ? (size_t)-1 : bytes - sizeof(struct thdr));
    if (!t) {
        j->fed = n;
        for (size_t i = first; i < n; i++)
            item_done(j, i, -ENOMEM);
        job_progress(j, n - first);
        return -ENOMEM;
    }
    if (j->kind == K_MAP) {
        t->h = (struct thdr){.id = t->id, .kind = K_MAP, .count = (uint32_t)c, .fn = j->fn,
                             .ud = j->ud, .in_size = j->in_size, .out_size = j->out_size};
    } else {
        struct thdr h = {.id = t->id, .kind = K_BYTES, .count = (uint32_t)c, .bfn = j->bfn,
                         .ud = j->ud};
        memcpy(t->msg, &h, sizeof h);
        char *m = (char *)t->msg + sizeof h;
        for (size_t i = 0; i < c; i++) {
            uint64_t len = j->bin[first + i].iov_len;
            memcpy(m, &len, 8);
            if (len)
                memcpy(m + 8, j->bin[first + i].iov_base, len);
            memset(m + 8 + len, 0, round8(len) - len);
            m += 8 + round8(len);
        }
    }
    t->job = j;
    t->first = first;
    t->count = c;
    j->fed += c;
    pending_push(p, t);
    return 0;
}

/* Keep enough tasks pending to fill every worker's queue, cutting them from the jobs in
 * the feed list in order: a map of a million items with chunk size 1 holds a few hundred
 * tasks at a time, not a million. */
static void feed(cipc_pool *p)
{
    size_t want = (size_t)p->nworkers * (size_t)p->max_inflight;
    while (p->feed_head && p->n_pending < want) {
        struct mapjob *j = p->feed_head;
        if (j->fed >= j->n) {
            p->feed_head = j->feed_next;
            if (!p->feed_head)
                p->feed_tail = NULL;
        } else if (feed_one(p, j) < 0) {
            break;
        }
    }
}

static void feed_add(cipc_pool *p, struct mapjob *j)
{
    if (j->n == 0)
        return;
    j->feed_next = NULL;
    if (p->feed_tail)
        p->feed_tail->feed_next = j;
    else
        p->feed_head = j;
    p->feed_tail = j;
    dispatch(p);
}

/* Take job j out of the feed list (its unfed items will never run). */
static void feed_remove(cipc_pool *p, struct mapjob *j)
{
    struct mapjob **pp = &p->feed_head, *prev = NULL;
    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->feed_next;
    }
    if (!*pp)
        return;
    *pp = j->feed_next;
    if (p->feed_tail == j)
        p->feed_tail = prev;
}

/* Python's rule for fixed-size items, cut further so a chunk's bytes fit one message.
 * Returns the chunk size, or 0 when not even one item fits. */
static size_t map_chunk(const cipc_pool *p, size_t n, size_t in_size, size_t out_size,
                        size_t chunksize)
{
    size_t room_in = (p->max_msg - sizeof(struct thdr)) / in_size;
    size_t room_out = (p->max_msg - sizeof(struct rhdr) - 8) / (out_size + sizeof(int32_t));
    size_t maxc = room_in < room_out ? room_in : room_out;
    if (chunksize == 0)
        chunksize = cipc_pool_chunksize(p, n);
    if (chunksize > maxc)
        chunksize = maxc;
    if (chunksize > UINT32_MAX)
        chunksize = UINT32_MAX;
    return chunksize;
}

/* Wait for a map job: tasks already queued keep running even on -ENOMEM. */
static int run_job(cipc_pool *p, struct mapjob *j)
{
    while (j->remaining > 0)
        pump(p, -1);
    run_callbacks(p);
    return j->failed;
}

static int check_map(const cipc_pool *p, const void *fn, size_t in_size, size_t out_size)
{
    if (!p || !fn || !in_size || !out_size)
        return -EINVAL;
    if (in_size > p->max_msg || out_size > p->max_msg)
        return -EINVAL;
    return p->closed ? CIPC_ECLOSING : 0;
}

int cipc_pool_map(cipc_pool *p, cipc_pool_fn fn, void *ud, const void *inputs, size_t n,
                  size_t in_size, void *outputs, size_t out_size, size_t chunksize, int *errs)
{
    int rc = check_map(p, (const void *)fn, in_size, out_size);
    if (rc < 0)
        return rc;
    if (n && (!inputs || !outputs))
        return -EINVAL;
    struct mapjob j = {.kind = K_MAP, .inputs = inputs, .in_size = in_size, .outputs = outputs,
                       .out_size = out_size, .errs = errs, .n = n, .remaining = n, .fn = fn,
                       .ud = ud, .chunksize = map_chunk(p, n, in_size, out_size, chunksize)};
    if (j.chunksize == 0)
        return -EINVAL;
    feed_add(p, &j);
    return run_job(p, &j);
}

int cipc_pool_map_bytes(cipc_pool *p, cipc_pool_bytes_fn fn, void *ud, const struct iovec *in,
                        size_t n, size_t chunksize, struct iovec *out, int *errs)
{
    if (!p || !fn || (n && (!in || !out)))
        return -EINVAL;
    if (p->closed)
        return CIPC_ECLOSING;
    struct mapjob j = {.kind = K_BYTES, .errs = errs, .bout = out, .n = n, .remaining = n,
                       .bin = in, .bfn = fn, .ud = ud,
                       .chunksize = chunksize ? chunksize : cipc_pool_chunksize(p, n)};
    for (size_t i = 0; i < n; i++)
        out[i] = (struct iovec){0};
    feed_add(p, &j);
    return run_job(p, &j);
}

/* --- imap ----------------------------------------------------------------------------- */

struct cipc_pool_iter {
    cipc_pool *pool;
    struct mapjob *job;
    int ordered;
    size_t next;      /* ordered: the next index to return */
    size_t returned;  /* items returned so far */
    size_t last_bytes; /* bytes: the index whose result the caller holds a view of, or n */
};

static int iter_new(cipc_pool *p, int kind, size_t n, size_t out_size, unsigned flags,
                    cipc_pool_iter **out)
{
    cipc_pool_iter *it = calloc(1, sizeof *it);
    struct mapjob *j = calloc(1, sizeof *j);
    if (!it || !j) {
        free(it);
        free(j);
        return -ENOMEM;
    }
    j->kind = kind;
    j->n = j->remaining = n;
    j->out_size = out_size;
    j->iter = 1;
    size_t m = n ? n : 1;
    j->errs = calloc(m, sizeof *j->errs);
    j->ready = calloc(m, 1);
    j->fifo = calloc(m, sizeof *j->fifo);
    if (kind == K_MAP)
        j->outputs = calloc(m, out_size);
    else
        j->bout = calloc(m, sizeof *j->bout);
    if (!j->errs || !j->ready || !j->fifo || (kind == K_MAP ? !j->outputs : !j->bout)) {
        job_free(j);
        free(it);
        return -ENOMEM;
    }
    it->pool = p;
    it->job = j;
    it->ordered = !(flags & CIPC_POOL_UNORDERED);
    it->last_bytes = n;
    *out = it;
    return 0;
}

int cipc_pool_imap(cipc_pool *p, cipc_pool_fn fn, void *ud, const void *inputs, size_t n,
                   size_t in_size, size_t out_size, size_t chunksize, unsigned flags,
                   cipc_pool_iter **out)
{
    int rc = check_map(p, (const void *)fn, in_size, out_size);
    if (rc < 0)
        return rc;
    if (!out || (n && !inputs) || (flags & ~CIPC_POOL_UNORDERED))
        return -EINVAL;
    cipc_pool_iter *it;
    if ((rc = iter_new(p, K_MAP, n, out_size, flags, &it)) < 0)
        return rc;
    struct mapjob *j = it->job;
    j->inputs = inputs;
    j->in_size = in_size;
    j->fn = fn;
    j->ud = ud;
    j->chunksize = map_chunk(p, n, in_size, out_size, chunksize ? chunksize : 1);
    if (j->chunksize == 0) {
        job_free(j);
        free(it);
        return -EINVAL;
    }
    feed_add(p, j);
    *out = it;
    return 0;
}

int cipc_pool_imap_bytes(cipc_pool *p, cipc_pool_bytes_fn fn, void *ud, const struct iovec *in,
                         size_t n, size_t chunksize, unsigned flags, cipc_pool_iter **out)
{
    if (!p || !fn || !out || (n && !in) || (flags & ~CIPC_POOL_UNORDERED))
        return -EINVAL;
    if (p->closed)
        return CIPC_ECLOSING;
    cipc_pool_iter *it;
    int rc = iter_new(p, K_BYTES, n, 0, flags, &it);
    if (rc < 0)
        return rc;
    struct mapjob *j = it->job;
    j->bin = in;
    j->bfn = fn;
    j->ud = ud;
    j->chunksize = chunksize ? chunksize : 1;
    feed_add(p, j);
    *out = it;
    return 0;
}

int cipc_pool_iter_next(cipc_pool_iter *it, long timeout_ms, cipc_pool_item *item)
{
    if (!it || !item)
        return -EINVAL;
    struct mapjob *j = it->job;
    if (it->last_bytes < j->n) { /* the caller is done with the previous view */
        free(j->bout[it->last_bytes].iov_base);
        j->bout[it->last_bytes] = (struct iovec){0};
        it->last_bytes = j->n;
    }
    if (it->returned == j->n)
        return 0;
    uint64_t deadline = timeout_ms >= 0 ? now_ms() + (uint64_t)timeout_ms : 0;
    for (;;) {
        size_t i = (size_t)-1;
        if (it->ordered) {
            if (j->ready[it->next])
                i = it->next++;
        } else if (j->fifo_head < j->fifo_tail) {
            i = j->fifo[j->fifo_head++];
        }
        if (i != (size_t)-1) {
            it->returned++;
            item->index = i;
            item->rc = j->errs[i];
            if (j->kind == K_MAP) {
                item->data = j->outputs + i * j->out_size;
                item->len = j->out_size;
            } else {
                item->data = j->bout[i].iov_base;
                item->len = j->bout[i].iov_len;
                it->last_bytes = i;
            }
            return 1;
        }
        long left = -1;
        if (timeout_ms >= 0) {
            uint64_t now = now_ms();
            if (now >= deadline && timeout_ms > 0)
                return CIPC_ETIMEOUT;
            left = now >= deadline ? 0 : (long)(deadline - now);
        }
        pump(it->pool, left);
        if (left == 0 && !(it->ordered ? j->ready[it->next] : j->fifo_head < j->fifo_tail))
            return CIPC_ETIMEOUT;
    }
}

void cipc_pool_iter_free(cipc_pool_iter *it)
{
    if (!it)
        return;
    struct mapjob *j = it->job;
    if (j->remaining == 0) {
        job_free(j);
    } else {
        /* Tasks still pending or running refer to the job: drop their results from now
         * on and free the job with the last of them. */
        for (size_t i = 0; j->bout && i < j->n; i++) {
            free(j->bout[i].iov_base);
            j->bout[i] = (struct iovec){0};
        }
        j->orphan = 1;
        if (j->fed < j->n) { /* the caller may free the inputs now: cut no more tasks */
            feed_remove(it->pool, j);
            size_t unfed = j->n - j->fed;
            j->fed = j->n;
            if (job_progress(j, unfed))
                j = NULL;
        }
    }
    free(it);
}

/* --- apply_async ---------------------------------------------------------------------- */

int cipc_pool_apply_async(cipc_pool *p, cipc_pool_bytes_fn fn, void *ud, const void *in,
                          size_t len, cipc_pool_done_cb cb, void *cb_ud, cipc_future **out)
{
    if (!p || !fn || (len && !in))
        return -EINVAL;
    if (p->closed)
        return CIPC_ECLOSING;
    if (sizeof(struct thdr) + 8 + round8(len) > p->max_msg)
        return CIPC_ETOOBIG;
    cipc_future *f = calloc(1, sizeof *f);
    struct task *t = f ? task_new(p, 8 + round8(len)) : NULL;
    if (!t) {
        free(f);
        return -ENOMEM;
    }
    f->pool = p;
    f->cb = cb;
    f->cb_ud = cb_ud;
    f->user_owned = out != NULL;
    struct thdr h = {.id = t->id, .kind = K_BYTES, .count = 1, .bfn = fn, .ud = ud};
    char *m = (char *)t->msg;
    memcpy(m, &h, sizeof h);
    uint64_t l64 = len;
    memcpy(m + sizeof h, &l64, 8);
    if (len)
        memcpy(m + sizeof h + 8, in, len);
    memset(m + sizeof h + 8 + len, 0, round8(len) - len);
    t->fut = f;
    t->count = 1;
    pending_push(p, t);
    dispatch(p);
    if (out)
        *out = f;
    return 0;
}

int cipc_future_wait(cipc_future *f, long timeout_ms)
{
    if (!f)
        return -EINVAL;
    cipc_pool *p = f->pool; /* NULL once complete */
    uint64_t deadline = timeout_ms >= 0 ? now_ms() + (uint64_t)timeout_ms : 0;
    while (!f->done && p) {
        long left = -1;
        if (timeout_ms >= 0) {
            uint64_t now = now_ms();
            if (now >= deadline) {
                pump(p, 0);
                break;
            }
            left = (long)(deadline - now);
        }
        pump(p, left);
    }
    if (p)
        run_callbacks(p);
    return f->done ? 0 : CIPC_ETIMEOUT;
}

int cipc_future_done(const cipc_future *f) { return f && f->done; }

int cipc_future_result(const cipc_future *f, const void **data, size_t *len)
{
    if (!f)
        return -EINVAL;
    if (data)
        *data = f->done ? f->data : NULL;
    if (len)
        *len = f->done ? f->len : 0;
    return f->done ? f->rc : CIPC_EAGAIN;
}

void cipc_future_free(cipc_future *f)
{
    if (!f)
        return;
    if ((!f->done && f->pool) || f->cb_queued) {
        f->user_owned = 0; /* the pool frees it on completion, after its callback */
        return;
    }
    free(f->data);
    free(f);
}

/* --- close, terminate, join ----------------------------------------------------------- */

void cipc_pool_close(cipc_pool *p)
{
    if (p)
        p->closed = 1;
}

void cipc_pool_terminate(cipc_pool *p)
{
    if (!p || p->terminated)
        return;
    p->closed = p->terminated = p->stopping = 1;
    for (int i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->w[i];
        if (w->pid > 0) {
            worker_kill(w);
            worker_wait(w, -1);
        }
        for (int k = 0; k < w->n_inflight; k++)
            task_complete(p, w->inflight[k], CIPC_ECANCELED);
        p->n_inflight -= (size_t)w->n_inflight;
        w->n_inflight = 0;
    }
    fail_pending(p, CIPC_ECANCELED);
    while (p->feed_head) { /* items never cut into tasks */
        struct mapjob *j = p->feed_head;
        p->feed_head = j->feed_next;
        size_t first = j->fed;
        j->fed = j->n;
        for (size_t i = first; i < j->n && !j->orphan; i++)
            item_done(j, i, CIPC_ECANCELED);
        job_progress(j, j->n - first);
    }
    p->feed_tail = NULL;
    forkserver_stop(p);
    run_callbacks(p);
    p->joined = 1; /* nothing left to wait for */
}

int cipc_pool_join(cipc_pool *p, long timeout_ms)
{
    if (!p || !p->closed)
        return -EINVAL;
    if (p->joined)
        return 0;
    uint64_t deadline = timeout_ms >= 0 ? now_ms() + (uint64_t)timeout_ms : 0;
    while (p->n_pending || p->n_inflight || p->feed_head) {
        long left = -1;
        if (timeout_ms >= 0) {
            uint64_t now = now_ms();
            if (now >= deadline)
                return CIPC_ETIMEOUT;
            left = (long)(deadline - now);
        }
        pump(p, left);
    }
    run_callbacks(p);
    p->stopping = 1;
    for (int i = 0; i < p->nworkers; i++)
        if (p->w[i].q)
            cipc_queue_shutdown(p->w[i].q);
    for (int i = 0; i < p->nworkers; i++) {
        long left = -1;
        if (timeout_ms >= 0) {
            uint64_t now = now_ms();
            left = now >= deadline ? 0 : (long)(deadline - now);
        }
        if (worker_wait(&p->w[i], left) < 0)
            return CIPC_ETIMEOUT;
    }
    forkserver_stop(p);
    p->joined = 1;
    return 0;
}

void cipc_pool_free(cipc_pool *p)
{
    if (!p)
        return;
    if (!p->joined)
        cipc_pool_terminate(p);
    /* Orphaned imap jobs whose tasks never completed are freed with their tasks. */
    pool_destroy(p);
}
