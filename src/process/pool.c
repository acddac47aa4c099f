/* A process pool (cipc/pool.h): forked workers, one task queue per worker, one result
 * queue; the parent tracks what each worker holds so a dead worker's task is reported and
 * its untaken tasks go to another worker. No threads: the parent makes progress inside
 * the pool's calls (pump()). */
#include "cipc/pool.h"

#include <errno.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cipc/queue.h"

enum { K_MAP = 1, K_BYTES = 2 };
#define MAX_INFLIGHT 64 /* tasks queued to one worker; stolen back at the tail */
#define CHECK_EVERY_MS 10

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

struct mapjob {
    int kind;
    char *outputs;
    size_t out_size;
    int *errs;
    struct iovec *bout;
    size_t remaining;
    int failed;
};

struct cipc_future {
    cipc_pool *pool;
    int done, rc, user_owned;
    void *data;
    size_t len;
    cipc_pool_done_cb cb;
    void *cb_ud;
};

struct task {
    struct task *next;
    uint64_t id;
    void *msg;
    size_t msg_len;
    uint64_t started_ms;
    struct mapjob *job; /* map chunk: items [first, first + count) */
    size_t first, count;
    size_t received; /* items whose results arrived (results come in order) */
    cipc_future *fut; /* apply_async */
};

struct worker {
    pid_t pid; /* 0: none */
    cipc_queue *q;
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
    int nworkers, max_tasks, max_inflight, closed, terminated, stopping, joined;
    long task_timeout_ms;
    size_t max_msg, results_cap, max_result; /* max_result: largest result seen */
    cipc_pool_init_fn init;
    void *initarg;
    pid_t parent, self; /* self: in a worker, its pid */
    cipc_queue *results;
    struct worker *w;
    struct task *pend_head, *pend_tail;
    size_t n_pending, n_inflight;
    uint64_t next_id, last_check_ms;
    void *rbuf;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static size_t round8(size_t n) { return (n + 7) & ~(size_t)7; }

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
    int rc = cipc_queue_put(p->results, out, len, -1);
    uint32_t seq = atomic_fetch_add(&p->bell->seq, 1) + 1;
    if (atomic_load(&p->bell->waiting) && (int32_t)(seq - atomic_load(&p->bell->want)) >= 0)
        syscall(SYS_futex, &p->bell->seq, FUTEX_WAKE, 1, NULL, NULL, 0);
    return rc;
}

/* Parent: take one result, waiting up to wait_ms for it (on the doorbell). While workers
 * have deep queues the parent asks to be woken only after several results, so it takes a
 * CPU from them less often. */
static int get_result(cipc_pool *p, size_t *len, long wait_ms)
{
    int rc = cipc_queue_try_get(p->results, p->rbuf, p->max_msg, len);
    if (rc != CIPC_EAGAIN || wait_ms == 0)
        return rc;
    size_t batch = p->n_inflight / 4, room = p->results_cap / (2 * (p->max_result + 16));
    if (batch > room)
        batch = room;
    if (batch > (size_t)p->nworkers * 8)
        batch = (size_t)p->nworkers * 8;
    uint32_t seen = atomic_load(&p->bell->seq);
    atomic_store(&p->bell->want, seen + (uint32_t)(batch ? batch : 1));
    atomic_store(&p->bell->waiting, 1);
    rc = cipc_queue_try_get(p->results, p->rbuf, p->max_msg, len);
    if (rc == CIPC_EAGAIN) {
        struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000L};
        syscall(SYS_futex, &p->bell->seq, FUTEX_WAIT, seen, &ts, NULL, 0);
        rc = cipc_queue_try_get(p->results, p->rbuf, p->max_msg, len);
    }
    atomic_store(&p->bell->waiting, 0);
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

static void worker_main(cipc_pool *p, int widx)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != p->parent)
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

static int spawn_worker(cipc_pool *p, int widx)
{
    struct worker *w = &p->w[widx];
    cipc_queue_opts qo = {.max_msg = p->max_msg, .capacity = 2 * (round8(p->max_msg) + 8) * 2};
    int rc = cipc_queue_new(&qo, &w->q);
    if (rc < 0)
        return rc;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        rc = -errno;
        cipc_queue_close(w->q);
        w->q = NULL;
        return rc;
    }
    if (pid == 0)
        worker_main(p, widx);
    w->pid = pid;
    w->n_inflight = 0;
    w->sent = 0;
    return 0;
}

/* --- completing tasks ----------------------------------------------------------------- */

static void future_complete(cipc_future *f, int rc, const void *data, size_t len)
{
    f->done = 1;
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
    if (f->cb)
        f->cb(f->rc, f->data, f->len, f->cb_ud);
    if (!f->user_owned) {
        free(f->data);
        free(f);
    }
}

static void item_fail(struct mapjob *j, size_t i, int code)
{
    if (j->errs)
        j->errs[i] = code;
    j->failed++;
}

/* Apply the results of items [first, first + count) of task t from result message `res`,
 * or with res NULL fail every item not received yet with `code`. */
static void task_apply(struct task *t, const char *res, size_t first, size_t count, int code)
{
    if (!res) {
        first = t->received;
        count = t->count - t->received;
    }
    if (t->job) {
        struct mapjob *j = t->job;
        if (!res) {
            for (size_t i = first; i < first + count; i++)
                item_fail(j, t->first + i, code);
        } else if (j->kind == K_MAP) {
            const int32_t *errs = (const int32_t *)(res + sizeof(struct rhdr));
            const char *out = res + sizeof(struct rhdr) + round8(count * sizeof(int32_t));
            for (size_t i = 0; i < count; i++) {
                size_t at = t->first + first + i;
                if (errs[i] != 0) {
                    item_fail(j, at, errs[i]);
                } else {
                    if (j->errs)
                        j->errs[at] = 0;
                    memcpy(j->outputs + at * j->out_size, out + i * j->out_size, j->out_size);
                }
            }
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
                if (rc != 0)
                    item_fail(j, at, rc);
                else if (j->errs)
                    j->errs[at] = 0;
                op += 16 + round8(len);
            }
        }
        j->remaining -= count;
    } else if (t->fut && count > 0) {
        if (!res) {
            future_complete(t->fut, code, NULL, 0);
        } else {
            int32_t rc;
            uint64_t len;
            memcpy(&rc, res + sizeof(struct rhdr), 4);
            memcpy(&len, res + sizeof(struct rhdr) + 8, 8);
            future_complete(t->fut, rc, res + sizeof(struct rhdr) + 16, len);
        }
    }
    t->received = first + count;
}

/* Fail what task t has not received yet with `code`, and free it. */
static void task_complete(cipc_pool *p, struct task *t, const char *res, size_t res_len, int code)
{
    (void)p;
    (void)res;
    (void)res_len;
    task_apply(t, NULL, 0, 0, code);
    free(t->msg);
    free(t);
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

static void reap_and_replace(cipc_pool *p, int widx, int code, int reaped);

static void handle_result(cipc_pool *p, const char *res, size_t len)
{
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
            task_apply(t, res, r.first, r.count, 0);
            if (t->received == t->count) {
                inflight_remove(p, w, k);
                task_complete(p, t, NULL, 0, 0);
            }
            break;
        }
    }
    if (p->max_tasks > 0 && w->sent >= p->max_tasks && w->n_inflight == 0 && !w->dying)
        reap_and_replace(p, (int)r.widx, CIPC_EABORTED, 0); /* it exits by itself now */
}

static void drain_results(cipc_pool *p)
{
    size_t len;
    while (cipc_queue_try_get(p->results, p->rbuf, p->max_msg, &len) == 0)
        handle_result(p, p->rbuf, len);
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
        task_complete(p, t, NULL, 0, code);
    }
    p->pend_tail = NULL;
}

/* Worker widx has exited or is about to (killed, or done with its quota): reap it,
 * complete what it delivered, requeue what it never took, fail what it held with `code`,
 * and start a replacement unless the pool is stopping. */
static void reap_and_replace(cipc_pool *p, int widx, int code, int reaped)
{
    struct worker *w = &p->w[widx];
    w->dying = 1;
    if (!reaped && w->pid > 0) {
        int st;
        while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR) {
        }
    }
    drain_results(p);
    /* Tasks still in its queue were never started: the last ones in flight, in order. */
    size_t len;
    int untaken = 0;
    while (cipc_queue_try_get(w->q, p->rbuf, p->max_msg, &len) == 0)
        untaken++;
    if (untaken > w->n_inflight)
        untaken = w->n_inflight;
    for (int k = w->n_inflight - 1; k >= w->n_inflight - untaken; k--)
        pending_push_front(p, w->inflight[k]);
    for (int k = 0; k < w->n_inflight - untaken; k++)
        task_complete(p, w->inflight[k], NULL, 0, code);
    p->n_inflight -= (size_t)w->n_inflight;
    w->n_inflight = 0;
    cipc_queue_close(w->q);
    w->q = NULL;
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
        int st;
        pid_t r = waitpid(w->pid, &st, WNOHANG);
        if (r == w->pid || (r < 0 && errno == ECHILD)) {
            reap_and_replace(p, i, CIPC_EABORTED, 1);
            if (w->pid > 0)
                alive++;
            continue;
        }
        if (p->task_timeout_ms > 0 && w->n_inflight > 0 &&
            now - w->inflight[0]->started_ms > (uint64_t)p->task_timeout_ms) {
            kill(w->pid, SIGKILL);
            reap_and_replace(p, i, CIPC_ETIMEOUT, 0);
        }
        if (w->pid > 0)
            alive++;
    }
    if (alive == 0 && spawn_rc < 0 && !p->stopping)
        fail_pending(p, spawn_rc); /* no worker can be started: do not hang */
}

/* Hand pending tasks out, each to the worker holding the fewest. */
static void dispatch(cipc_pool *p)
{
    for (int i = 0; i < p->nworkers; i++)
        p->w[i].full = 0;
    while (p->pend_head) {
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
        struct task *t = p->pend_head;
        if (cipc_queue_try_put(best->q, t->msg, t->msg_len) < 0) {
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
        size_t len;
        for (int n = v->n_inflight / 2; n > 0; n--) {
            if (cipc_queue_try_get(v->q, p->rbuf, p->max_msg, &len) != 0 ||
                len < sizeof(struct thdr))
                break;
            struct thdr h;
            memcpy(&h, p->rbuf, sizeof h);
            for (int k = 0; k < v->n_inflight; k++) {
                if (v->inflight[k]->id == h.id) {
                    struct task *t = v->inflight[k];
                    inflight_remove(p, v, k);
                    v->sent--;
                    pending_push(p, t);
                    break;
                }
            }
        }
        dispatch(p);
    }
}

/* One step: hand out tasks, wait up to wait_ms for results, watch the workers. */
static void pump(cipc_pool *p, long wait_ms)
{
    dispatch(p);
    if (p->n_inflight == 0 && p->n_pending == 0)
        return;
    long w = wait_ms < 0 || wait_ms > CHECK_EVERY_MS ? CHECK_EVERY_MS : wait_ms;
    size_t len;
    if (p->n_inflight > 0 && get_result(p, &len, w) == 0) {
        handle_result(p, p->rbuf, len);
        drain_results(p);
    }
    if (now_ms() - p->last_check_ms >= CHECK_EVERY_MS || p->n_inflight == 0)
        check_workers(p);
    dispatch(p);
    steal(p);
    if (p->n_inflight == 0 && p->n_pending > 0 && wait_ms != 0) {
        struct timespec ts = {0, 1000000}; /* no worker can take a task yet */
        nanosleep(&ts, NULL);
    }
}

/* --- the public API ------------------------------------------------------------------- */

int cipc_pool_new(const cipc_pool_opts *opts, cipc_pool **out)
{
    cipc_pool_opts o = {0};
    if (opts)
        memcpy(&o, opts, opts->size && opts->size < sizeof o ? opts->size : sizeof o);
    if (!out || o.workers < 0 || o.start_method != CIPC_POOL_FORK || o.max_tasks_per_child < 0 ||
        o.task_timeout_ms < 0 || (o.max_msg && o.max_msg < 4096) ||
        o.max_msg > CIPC_QUEUE_MAX_CAPACITY / 16)
        return -EINVAL;
    if (o.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o.workers = n > 0 ? (int)n : 1;
    }
    cipc_pool *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->nworkers = o.workers;
    p->max_tasks = o.max_tasks_per_child;
    p->task_timeout_ms = o.task_timeout_ms;
    p->max_inflight = o.task_timeout_ms > 0 ? 1 : MAX_INFLIGHT;
    p->max_msg = o.max_msg ? round8(o.max_msg) : 1u << 20;
    p->init = o.initializer;
    p->initarg = o.initarg;
    p->parent = getpid();
    p->w = calloc((size_t)o.workers, sizeof *p->w);
    p->rbuf = malloc(p->max_msg);
    int rc = -ENOMEM;
    if (!p->w || !p->rbuf)
        goto fail;
    p->bell = mmap(NULL, sizeof *p->bell, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    if (p->bell == MAP_FAILED) {
        p->bell = NULL;
        goto fail;
    }
    size_t cap = 4 * (p->max_msg + 8) * (size_t)(o.workers < 4 ? 4 : 2);
    if (cap > CIPC_QUEUE_MAX_CAPACITY)
        cap = CIPC_QUEUE_MAX_CAPACITY;
    p->results_cap = cap;
    p->max_result = 4096;
    rc = cipc_queue_new(&(cipc_queue_opts){.max_msg = p->max_msg, .capacity = cap}, &p->results);
    if (rc < 0)
        goto fail;
    for (int i = 0; i < o.workers; i++)
        if ((rc = spawn_worker(p, i)) < 0)
            goto fail;
    p->last_check_ms = now_ms();
    *out = p;
    return 0;
fail:
    if (p->w) {
        for (int i = 0; i < p->nworkers; i++) {
            if (p->w[i].pid > 0) {
                kill(p->w[i].pid, SIGKILL);
                waitpid(p->w[i].pid, NULL, 0);
            }
            cipc_queue_close(p->w[i].q);
        }
    }
    cipc_queue_close(p->results);
    if (p->bell)
        munmap(p->bell, sizeof *p->bell);
    free(p->w);
    free(p->rbuf);
    free(p);
    return rc;
}

int cipc_pool_workers(const cipc_pool *p) { return p ? p->nworkers : 0; }

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
    t->msg_len = sizeof(struct thdr) + payload;
    t->msg = malloc(t->msg_len);
    if (!t->msg) {
        free(t);
        return NULL;
    }
    t->id = ++p->next_id;
    return t;
}

/* Wait for a map job: tasks already queued keep running even on -ENOMEM. */
static int run_job(cipc_pool *p, struct mapjob *j)
{
    while (j->remaining > 0)
        pump(p, -1);
    return j->failed;
}

int cipc_pool_map(cipc_pool *p, cipc_pool_fn fn, void *ud, const void *inputs, size_t n,
                  size_t in_size, void *outputs, size_t out_size, size_t chunksize, int *errs)
{
    if (!p || !fn || !in_size || !out_size || (n && (!inputs || !outputs)))
        return -EINVAL;
    if (p->closed)
        return CIPC_ECLOSING;
    size_t room_in = (p->max_msg - sizeof(struct thdr)) / in_size;
    size_t room_out = (p->max_msg - sizeof(struct rhdr) - 8) / (out_size + sizeof(int32_t));
    size_t maxc = room_in < room_out ? room_in : room_out;
    if (maxc == 0)
        return -EINVAL;
    if (chunksize == 0)
        chunksize = cipc_pool_chunksize(p, n);
    if (chunksize > maxc)
        chunksize = maxc;
    if (chunksize > UINT32_MAX)
        chunksize = UINT32_MAX;
    struct mapjob j = {.kind = K_MAP, .outputs = outputs, .out_size = out_size, .errs = errs,
                       .remaining = n};
    if (n)
        memset(outputs, 0, n * out_size);
    for (size_t first = 0; first < n; first += chunksize) {
        size_t c = n - first < chunksize ? n - first : chunksize;
        struct task *t = task_new(p, c * in_size);
        if (!t) {
            for (size_t i = first; i < n; i++)
                item_fail(&j, i, -ENOMEM);
            j.remaining -= n - first;
            break;
        }
        struct thdr h = {.id = t->id, .kind = K_MAP, .count = (uint32_t)c, .fn = fn, .ud = ud,
                         .in_size = in_size, .out_size = out_size};
        memcpy(t->msg, &h, sizeof h);
        memcpy((char *)t->msg + sizeof h, (const char *)inputs + first * in_size, c * in_size);
        t->job = &j;
        t->first = first;
        t->count = c;
        pending_push(p, t);
        if (p->n_pending > (size_t)p->nworkers * 4)
            pump(p, 0);
    }
    return run_job(p, &j);
}

int cipc_pool_map_bytes(cipc_pool *p, cipc_pool_bytes_fn fn, void *ud, const struct iovec *in,
                        size_t n, size_t chunksize, struct iovec *out, int *errs)
{
    if (!p || !fn || (n && (!in || !out)))
        return -EINVAL;
    if (p->closed)
        return CIPC_ECLOSING;
    if (chunksize == 0)
        chunksize = cipc_pool_chunksize(p, n);
    struct mapjob j = {.kind = K_BYTES, .errs = errs, .bout = out, .remaining = n};
    for (size_t i = 0; i < n; i++)
        out[i] = (struct iovec){0};
    size_t first = 0;
    while (first < n) {
        /* Take items while they fit: the task message, and 16 bytes per result header. */
        size_t c = 0, bytes = sizeof(struct thdr);
        while (first + c < n && c < chunksize && c < UINT32_MAX) {
            size_t need = 8 + round8(in[first + c].iov_len);
            if (bytes + need > p->max_msg ||
                sizeof(struct rhdr) + 16 * (c + 1) + 64 > p->max_msg)
                break;
            bytes += need;
            c++;
        }
        if (c == 0) { /* this item alone does not fit */
            item_fail(&j, first, CIPC_ETOOBIG);
            j.remaining--;
            first++;
            continue;
        }
        struct task *t = task_new(p, bytes - sizeof(struct thdr));
        if (!t) {
            for (size_t i = first; i < n; i++)
                item_fail(&j, i, -ENOMEM);
            j.remaining -= n - first;
            break;
        }
        struct thdr h = {.id = t->id, .kind = K_BYTES, .count = (uint32_t)c, .bfn = fn, .ud = ud};
        memcpy(t->msg, &h, sizeof h);
        char *m = (char *)t->msg + sizeof h;
        for (size_t i = 0; i < c; i++) {
            uint64_t len = in[first + i].iov_len;
            memcpy(m, &len, 8);
            if (len)
                memcpy(m + 8, in[first + i].iov_base, len);
            memset(m + 8 + len, 0, round8(len) - len);
            m += 8 + round8(len);
        }
        t->job = &j;
        t->first = first;
        t->count = c;
        pending_push(p, t);
        if (p->n_pending > (size_t)p->nworkers * 4)
            pump(p, 0);
        first += c;
    }
    return run_job(p, &j);
}

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
    uint64_t deadline = timeout_ms >= 0 ? now_ms() + (uint64_t)timeout_ms : 0;
    while (!f->done && f->pool) {
        long left = -1;
        if (timeout_ms >= 0) {
            uint64_t now = now_ms();
            if (now >= deadline) {
                pump(f->pool, 0);
                break;
            }
            left = (long)(deadline - now);
        }
        pump(f->pool, left);
    }
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
    if (!f->done && f->pool) {
        f->user_owned = 0; /* the pool frees it on completion */
        return;
    }
    free(f->data);
    free(f);
}

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
            kill(w->pid, SIGKILL);
            while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR) {
            }
        }
        w->pid = 0;
        for (int k = 0; k < w->n_inflight; k++)
            task_complete(p, w->inflight[k], NULL, 0, CIPC_ECANCELED);
        p->n_inflight -= (size_t)w->n_inflight;
        w->n_inflight = 0;
    }
    fail_pending(p, CIPC_ECANCELED);
    p->joined = 1; /* nothing left to wait for */
}

int cipc_pool_join(cipc_pool *p, long timeout_ms)
{
    if (!p || !p->closed)
        return -EINVAL;
    if (p->joined)
        return 0;
    uint64_t deadline = timeout_ms >= 0 ? now_ms() + (uint64_t)timeout_ms : 0;
    while (p->n_pending || p->n_inflight) {
        long left = -1;
        if (timeout_ms >= 0) {
            uint64_t now = now_ms();
            if (now >= deadline)
                return CIPC_ETIMEOUT;
            left = (long)(deadline - now);
        }
        pump(p, left);
    }
    p->stopping = 1;
    for (int i = 0; i < p->nworkers; i++)
        if (p->w[i].q)
            cipc_queue_shutdown(p->w[i].q);
    for (int i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->w[i];
        while (w->pid > 0) {
            pid_t r = waitpid(w->pid, NULL, WNOHANG);
            if (r == w->pid || (r < 0 && errno != EINTR)) {
                w->pid = 0;
                break;
            }
            if (timeout_ms >= 0 && now_ms() >= deadline)
                return CIPC_ETIMEOUT;
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    p->joined = 1;
    return 0;
}

void cipc_pool_free(cipc_pool *p)
{
    if (!p)
        return;
    if (!p->joined)
        cipc_pool_terminate(p);
    for (int i = 0; i < p->nworkers; i++)
        cipc_queue_close(p->w[i].q);
    cipc_queue_close(p->results);
    munmap(p->bell, sizeof *p->bell);
    free(p->w);
    free(p->rbuf);
    free(p);
}
