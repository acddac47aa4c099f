/* src/process/queue.c -- cipc_queue: a robust MPMC queue of variable-size messages in
 * shared memory (cipc/queue.h).
 *
 * Layout of the mapping: one header page (struct qshm) and then the ring of `cap` bytes.
 * The ring holds records: an 8-byte header {uint32 len, uint32 kind} and the message,
 * padded to 8. A record never straddles the end of the ring: when one does not fit in
 * the bytes left before the end, a WRAP record is written there and the message goes
 * at offset 0. The ring therefore needs cap >= 2 * largest record, so that an empty ring
 * always has room for any message, wherever its offsets stand.
 *
 * Two commit words describe the queue, each a 64-bit atomic on its own cache line:
 *
 *     tail = [closed:1][puts:31][offset:32]   written only by a putter holding put_lock
 *     head = [closed:1][gets:31][offset:32]   written only by a getter holding get_lock
 *
 * `offset` is where the next record goes (tail) or comes from (head); `puts`/`gets`
 * count committed messages modulo 2^31. The queue is empty when the counts are equal,
 * holds (puts - gets) messages, and uses (tail.offset - head.offset) mod cap bytes, or
 * cap when the offsets are equal and the counts are not. The high half of each word
 * doubles as the futex that waiters sleep on: getters wait for tail.hi to change,
 * putters for head.hi; cipc_queue_shutdown() sets `closed` in both, which also changes
 * them, so no sleeper misses it.
 *
 * THE COMMIT RULES (what makes the queue survive SIGKILL at any instruction):
 *  R1. A putter writes its record(s) only into free bytes (between tail and head), and
 *      only then publishes them with ONE atomic store (a CAS) of the new tail. Killed
 *      before that store, its bytes are invisible: free space again.
 *  R2. A getter copies a record out and only then releases it with ONE atomic store of
 *      the new head. Killed before that store, the record stays queued (the partial copy
 *      was never returned: not a delivery); killed after it, the get is committed and
 *      the message went with that process (it was delivered exactly once).
 *  R3. The locks (one for putters, one for getters) are process-shared ROBUST mutexes.
 *      All state they protect is the commit word plus a cache of the other side's
 *      word that is only ever stale in the safe direction (it overestimates the used
 *      bytes or underestimates the messages available). So when a lock comes back with
 *      EOWNERDEAD the state is consistent as it stands: we mark the mutex consistent
 *      and go on. No other state exists.
 *  R4. Waiting uses no process-shared condition variable (a killed waiter can leave
 *      glibc's condvar inconsistent). A waiter first spins briefly on the word it waits
 *      for, then increments the `waiters` count of that word, re-reads the word and
 *      sleeps with FUTEX_WAIT on its high half (with the caller's deadline), and
 *      decrements the count itself when it wakes. A committer stores its word and, if
 *      the count is non-zero, wakes every sleeper. Both sides are seq_cst, so either the
 *      waiter sees the new word or the committer sees the count: no lost wake-up. A
 *      waiter killed while counted leaves the count too high, which only costs wake
 *      syscalls that find nobody. (A flag cleared by the waker would save those, but
 *      a waker for an older value can clear the flag of a newer sleeper: a lost
 *      wake-up, seen in testing.) Waking all sleepers means a woken waiter that dies
 *      cannot strand a message while others sleep.
 */
#define _GNU_SOURCE
#include "cipc/queue.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cipc/time.h"
#include "process/queue_internal.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cipc_queue assumes a little-endian machine (futex on the high half of a word)"
#endif

#define QMAGIC   0x31515043504943ull /* "CIPCPQ1" */
#define QVERSION 2u /* 2: each lock on its side's line */
#define HDR_SIZE 4096u
#define LINE     64

#define REC_MSG  1u
#define REC_WRAP 2u

#define CLOSED_BIT (1ull << 63)
#define CNT_MASK   0x7fffffffu

/* Spin for this many pauses (about 19 ns each on the AMD EPYC of these machines, so
 * about 0.1 ms) before sleeping on a futex: enough
 * for a peer on another CPU to commit without a sleep/wake pair of syscalls. */
#define SPIN_TRIES 5000

struct rec {
    uint32_t len;
    uint32_t kind;
};

struct qshm {
    uint64_t magic; /* written last by the creator (release) */
    uint32_t version;
    uint32_t hdr_size;
    uint64_t cap;
    uint64_t max_msg;
    _Atomic uint32_t recoveries; /* EOWNERDEAD takeovers, for tests */

    /* Putters' line: their lock, tail and their cache of head. Each side's lock shares a
     * line with what it protects and with nothing of the other side's (a lock word that
     * shares a line with the other side's lock moves between CPUs on every message). */
    _Alignas(LINE) pthread_mutex_t put_lock;
    _Atomic uint64_t tail;
    _Atomic uint64_t head_cache; /* under put_lock */

    /* Getters' line: their lock, head and their cache of tail. */
    _Alignas(LINE) pthread_mutex_t get_lock;
    _Atomic uint64_t head;
    _Atomic uint64_t tail_cache; /* under get_lock */

    /* Read on every commit, written only around sleeps: lines of their own, so that
     * reading them does not pull the other side's busy line across. */
    _Alignas(LINE) _Atomic uint32_t put_waiters; /* putters asleep (or about to be) */
    _Alignas(LINE) _Atomic uint32_t get_waiters; /* getters asleep (or about to be) */
    char pad_[LINE - sizeof(uint32_t)];
};

_Static_assert(sizeof(struct qshm) <= HDR_SIZE, "header page");
_Static_assert(offsetof(struct qshm, head_cache) + 8 <= offsetof(struct qshm, get_lock),
               "the putters' line");

struct cipc_queue {
    struct qshm *s;
    unsigned char *ring;
    size_t map_len;
    uint32_t cap;
    uint32_t max_msg;
    int spin; /* pauses before a futex sleep (cipc__queue_set_spin()) */
};

static inline uint32_t w_off(uint64_t w)
{
    return (uint32_t)w;
}

static inline uint32_t w_cnt(uint64_t w)
{
    return (uint32_t)(w >> 32) & CNT_MASK;
}

static inline uint32_t *w_futex(_Atomic uint64_t *w)
{
    return (uint32_t *)((char *)w + 4);
}

static inline size_t rec_size(size_t len)
{
    return sizeof(struct rec) + ((len + 7) & ~(size_t)7);
}

/* Bytes in use, given a tail and a head word (see the top comment). */
static inline uint32_t used_bytes(uint32_t cap, uint64_t t, uint64_t h)
{
    if (w_cnt(t) == w_cnt(h))
        return 0;
    uint32_t d = (w_off(t) + cap - w_off(h)) % cap;
    return d ? d : cap;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static struct timespec ns_to_ts(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    return ts;
}

/* Sleep while *word == val, until `deadline` (absolute, CLOCK_MONOTONIC; INT64_MAX =
 * never). Returns 0 when woken or the word differs, CIPC_ETIMEOUT past the deadline. */
static int futex_wait_until(uint32_t *word, uint32_t val, int64_t deadline)
{
    struct timespec ts, *tp = NULL;
    if (deadline != INT64_MAX) {
        ts = ns_to_ts(deadline);
        tp = &ts;
    }
    long rc = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, val, tp, NULL, FUTEX_BITSET_MATCH_ANY);
    if (rc < 0 && errno == ETIMEDOUT)
        return CIPC_ETIMEOUT;
    return 0;
}

static void futex_wake_all(uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Take a robust lock, until `deadline` (INT64_MAX: no limit). EOWNERDEAD is success: by
 * rule R3 the protected state is consistent whatever instant the owner died at. */
static int qlock(struct qshm *s, pthread_mutex_t *m, int64_t deadline)
{
    int rc;
    if (deadline == INT64_MAX) {
        rc = pthread_mutex_lock(m);
    } else {
        struct timespec ts = ns_to_ts(deadline);
        rc = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
    }
    if (rc == EOWNERDEAD) {
        /* The previous owner died holding the lock: nothing to repair (R1-R3). */
        pthread_mutex_consistent(m);
        atomic_fetch_add_explicit(&s->recoveries, 1, memory_order_relaxed);
        return 0;
    }
    if (rc == ETIMEDOUT)
        return CIPC_ETIMEOUT;
    return -rc;
}

/* Commit a new value of a commit word (R1/R2): one CAS from the value read under the
 * lock. Only cipc_queue_shutdown() can have changed it meanwhile (setting the closed
 * bit without taking the lock), in which case the commit keeps that bit. */
static void commit_word(_Atomic uint64_t *w, uint64_t old, uint64_t val)
{
    if (!atomic_compare_exchange_strong(w, &old, val))
        atomic_store(w, val | CLOSED_BIT);
}

/* --- creation -------------------------------------------------------------------- */

static int shm_name(const char *name, char *out, size_t n)
{
    if (!name || !*name)
        return -EINVAL;
    size_t len = strlen(name);
    const char *p = name[0] == '/' ? name + 1 : name;
    if (!*p || strchr(p, '/') || len + 2 > n || len > NAME_MAX)
        return -EINVAL;
    out[0] = '/';
    memcpy(out + 1, p, strlen(p) + 1);
    return 0;
}

static int map_queue(int fd, size_t len, cipc_queue **out)
{
    cipc_queue *q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        int e = -errno;
        free(q);
        return e;
    }
    q->s = m;
    q->ring = (unsigned char *)m + HDR_SIZE;
    q->map_len = len;
    *out = q;
    return 0;
}

static int init_mutex(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    int rc = pthread_mutexattr_init(&a);
    if (rc)
        return -rc;
    rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (!rc)
        rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (!rc)
        rc = pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    return -rc;
}

int cipc_queue_new(const cipc_queue_opts *opts, cipc_queue **out)
{
    cipc_queue_opts o = {0};
    if (!out)
        return -EINVAL;
    if (opts) {
        size_t n = opts->size && opts->size < sizeof o ? opts->size : sizeof o;
        memcpy(&o, opts, n);
    }
    size_t max_msg = o.max_msg ? o.max_msg : CIPC_QUEUE_DEFAULT_MAX_MSG;
    if (max_msg > CIPC_QUEUE_MAX_CAPACITY / 2)
        return -EINVAL;
    size_t need = 2 * rec_size(max_msg);
    size_t cap = o.capacity;
    if (cap == 0)
        cap = need > CIPC_QUEUE_DEFAULT_CAPACITY ? need : CIPC_QUEUE_DEFAULT_CAPACITY;
    if (cap > CIPC_QUEUE_MAX_CAPACITY)
        return -EINVAL;
    cap = (cap + 7) & ~(size_t)7;
    if (cap < need)
        return -EINVAL;

    char name[NAME_MAX + 2];
    int fd, rc;
    if (o.name) {
        if ((rc = shm_name(o.name, name, sizeof name)) < 0)
            return rc;
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, o.mode ? o.mode : 0600);
    } else {
        fd = memfd_create("cipc_queue", MFD_CLOEXEC);
    }
    if (fd < 0)
        return -errno;
    size_t len = HDR_SIZE + cap;
    cipc_queue *q = NULL;
    if (ftruncate(fd, (off_t)len) < 0)
        rc = -errno;
    else
        rc = map_queue(fd, len, &q);
    close(fd);
    if (rc == 0) {
        struct qshm *s = q->s; /* fresh pages are zero: offsets 0, counts 0 */
        s->version = QVERSION;
        s->hdr_size = HDR_SIZE;
        s->cap = cap;
        s->max_msg = max_msg;
        rc = init_mutex(&s->put_lock);
        if (!rc)
            rc = init_mutex(&s->get_lock);
        if (!rc)
            __atomic_store_n(&s->magic, QMAGIC, __ATOMIC_RELEASE);
        if (rc) {
            munmap(q->s, q->map_len);
            free(q);
        }
    }
    if (rc < 0) {
        if (o.name)
            shm_unlink(name);
        return rc;
    }
    q->cap = (uint32_t)cap;
    q->max_msg = (uint32_t)max_msg;
    q->spin = SPIN_TRIES;
    *out = q;
    return 0;
}

int cipc_queue_open(const char *name, cipc_queue **out)
{
    char nm[NAME_MAX + 2];
    int rc;
    if (!out)
        return -EINVAL;
    if ((rc = shm_name(name, nm, sizeof nm)) < 0)
        return rc;
    int fd = shm_open(nm, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    if ((uint64_t)st.st_size < HDR_SIZE + 16) {
        close(fd);
        return CIPC_EPROTO;
    }
    cipc_queue *q = NULL;
    rc = map_queue(fd, (size_t)st.st_size, &q);
    close(fd);
    if (rc < 0)
        return rc;
    struct qshm *s = q->s;
    if (__atomic_load_n(&s->magic, __ATOMIC_ACQUIRE) != QMAGIC || s->version != QVERSION ||
        s->hdr_size != HDR_SIZE || s->cap > CIPC_QUEUE_MAX_CAPACITY || s->cap % 8 ||
        HDR_SIZE + s->cap != (uint64_t)st.st_size || s->max_msg > s->cap ||
        2 * rec_size(s->max_msg) > s->cap) {
        cipc_queue_close(q);
        return CIPC_EPROTO;
    }
    q->cap = (uint32_t)s->cap;
    q->max_msg = (uint32_t)s->max_msg;
    q->spin = SPIN_TRIES;
    *out = q;
    return 0;
}

void cipc_queue_close(cipc_queue *q)
{
    if (!q)
        return;
    munmap(q->s, q->map_len);
    free(q);
}

int cipc_queue_unlink(const char *name)
{
    char nm[NAME_MAX + 2];
    int rc = shm_name(name, nm, sizeof nm);
    if (rc < 0)
        return rc;
    return shm_unlink(nm) < 0 ? -errno : 0;
}

/* --- put ------------------------------------------------------------------------- */

/* Write records for msgs[0..n) while they fit, then commit them with one tail store
 * (R1). Called by put_common() with put_lock held. Returns the number written (>= 1), or
 * CIPC_EAGAIN with *seen set to head's futex half (to sleep on) when the first does not
 * fit, or CIPC_ECLOSING. Sizes were checked by the caller. */
static int put_locked(cipc_queue *q, const struct iovec *msgs, size_t n, size_t gather,
                      uint32_t *seen)
{
    struct qshm *s = q->s;
    const uint32_t cap = q->cap;
    uint64_t t0 = atomic_load_explicit(&s->tail, memory_order_relaxed);
    if (t0 & CLOSED_BIT)
        return CIPC_ECLOSING;
    uint64_t h = atomic_load_explicit(&s->head_cache, memory_order_relaxed);
    uint32_t off = w_off(t0), cnt = w_cnt(t0);
    uint32_t used = used_bytes(cap, t0, h);
    bool fresh = false;
    size_t i = 0;
    for (; i < n; i++) {
        size_t mlen = gather ? gather : msgs[i].iov_len;
        uint32_t rs = (uint32_t)rec_size(mlen);
        uint32_t waste = off + rs > cap ? cap - off : 0;
        if (used + waste + rs > cap) {
            if (fresh)
                break;
            /* The cache says full: look at the real head (acquire: the getters' copies
             * out of those bytes are done before we overwrite them). */
            h = atomic_load_explicit(&s->head, memory_order_acquire);
            atomic_store_explicit(&s->head_cache, h, memory_order_relaxed);
            fresh = true;
            uint64_t cur = ((uint64_t)(cnt & CNT_MASK) << 32) | off;
            used = used_bytes(cap, cur, h);
            if (used + waste + rs > cap) {
                if (i == 0)
                    *seen = (uint32_t)(h >> 32);
                break;
            }
        }
        if (waste) {
            struct rec *w = (struct rec *)(q->ring + off);
            w->len = 0;
            w->kind = REC_WRAP;
            off = 0;
        }
        struct rec *r = (struct rec *)(q->ring + off);
        r->len = (uint32_t)mlen;
        r->kind = REC_MSG;
        if (gather) { /* one message from the parts msgs[0..n) */
            unsigned char *dst = (unsigned char *)(r + 1);
            for (size_t k = 0; k < n; k++) {
                if (msgs[k].iov_len)
                    memcpy(dst, msgs[k].iov_base, msgs[k].iov_len);
                dst += msgs[k].iov_len;
            }
            n = 1;
        } else if (mlen) {
            memcpy(r + 1, msgs[i].iov_base, mlen);
        }
        off += rs;
        if (off == cap)
            off = 0;
        cnt = (cnt + 1) & CNT_MASK;
        used += waste + rs;
    }
    if (i == 0)
        return CIPC_EAGAIN;
    /* The commit: one store makes every record above visible at once. */
    commit_word(&s->tail, t0, ((uint64_t)cnt << 32) | off);
    return (int)i;
}

/* After a commit of tail (head): wake sleeping getters (putters), if any (R4). The
 * common case, nobody asleep, costs a read of a line that is rarely written. */
static void wake_getters(struct qshm *s)
{
    if (atomic_load(&s->get_waiters))
        futex_wake_all(w_futex(&s->tail));
}

/* Putters that sleep wait for the ring to be at most half full (hysteresis): waking them
 * as soon as one record is free would make a producer that outruns its consumer sleep
 * and be woken once per message, a futex syscall on both sides of every message. */
static void wake_putters(cipc_queue *q)
{
    struct qshm *s = q->s;
    if (!atomic_load(&s->put_waiters))
        return;
    uint64_t h = atomic_load(&s->head), t = atomic_load(&s->tail);
    if ((h & CLOSED_BIT) || used_bytes(q->cap, t, h) <= q->cap / 2)
        futex_wake_all(w_futex(&s->head));
}

/* Wait for the futex half of *w to differ from `seen` (or the deadline). Spins briefly
 * first, then counts itself in `waiters` and sleeps (R4). Returns 0 or CIPC_ETIMEOUT.
 * Called by put_common() and get_common() without locks. A putter (q != NULL) spins
 * until half the ring is free rather than until any change: refilling a full ring one
 * record per get would bounce the lines between the two sides on every message. The
 * spin is bounded, so a putter still gets in once the room it needs is there. */
/* A putter may go on: the queue is closed, or the ring is at most half full and has room
 * for a record of `need` bytes (with the waste of a wrap, as put_locked() counts it). */
static bool putter_may_go(const cipc_queue *q, uint64_t t, uint64_t h, size_t need)
{
    if (h & CLOSED_BIT)
        return true;
    uint32_t used = used_bytes(q->cap, t, h), off = w_off(t);
    uint32_t waste = off + need > q->cap ? q->cap - off : 0;
    return used <= q->cap / 2 && used + waste + need <= q->cap;
}

static int wait_change(cipc_queue *q, size_t need, int spin, _Atomic uint64_t *w,
                       _Atomic uint32_t *waiters, uint32_t seen, int64_t deadline)
{
    /* Look at the word every 64-128 pauses (1.2-2.4 us): every look pulls the line from
     * the other side's cache and slows its next commit down, and a first look after 64
     * lets a producer commit a few messages before a consumer that caught up pulls the
     * line back (30% more single messages a second than a first look after 8, for about
     * 0.5 us more latency). */
    for (int spent = 0, gap = 64; spent < spin;
         spent += gap, gap = gap < 128 ? gap * 2 : gap) {
        for (int k = 0; k < gap; k++)
            cpu_relax();
        uint64_t cur = atomic_load_explicit(w, memory_order_relaxed);
        if ((uint32_t)(cur >> 32) != seen) {
            if (!q)
                return 0;
            if (putter_may_go(q, atomic_load_explicit(&q->s->tail, memory_order_relaxed), cur,
                              need))
                return 0;
        }
    }
    int rc = 0;
    atomic_fetch_add(waiters, 1);
    if (!q) {
        if ((uint32_t)(atomic_load(w) >> 32) == seen)
            rc = futex_wait_until(w_futex(w), seen, deadline);
    } else {
        /* A putter: sleep until the ring is at most half full (see wake_putters()); the
         * getter that gets it there wakes us. Re-check after counting ourselves in:
         * either we see its head or it sees our count (both seq_cst). */
        for (;;) {
            uint64_t h = atomic_load(w), t = atomic_load(&q->s->tail);
            if (putter_may_go(q, t, h, need))
                break;
            rc = futex_wait_until(w_futex(w), (uint32_t)(h >> 32), deadline);
            if (rc < 0)
                break;
        }
    }
    atomic_fetch_sub(waiters, 1);
    if (rc == 0 && deadline != INT64_MAX && cipc_now_ns() >= deadline)
        rc = CIPC_ETIMEOUT;
    return rc;
}

static int64_t deadline_ns(long timeout_ms)
{
    return cipc_deadline_in(timeout_ms).at_ns;
}

/* Put msgs[0..n) as n messages, or with `gather` as one message of `gather` bytes made
 * of the parts msgs[0..n) (checked by the caller). */
static int put_common(cipc_queue *q, const struct iovec *msgs, size_t n, size_t gather,
                      long timeout_ms)
{
    if (!q || !msgs || n == 0)
        return -EINVAL;
    for (size_t i = 0; i < n && !gather; i++) {
        if (msgs[i].iov_len > q->max_msg) {
            if (i == 0)
                return CIPC_ETOOBIG;
            n = i;
            break;
        }
        if (!msgs[i].iov_base && msgs[i].iov_len) {
            if (i == 0)
                return -EINVAL;
            n = i;
            break;
        }
    }
    struct qshm *s = q->s;
    /* try_ (timeout 0) and untimed calls wait for the lock without limit: it is held
     * only for a bounded copy. Timed calls give up on it at their deadline too. */
    int64_t deadline = timeout_ms > 0 ? deadline_ns(timeout_ms) : INT64_MAX;
    bool last = false;
    for (;;) {
        int rc = qlock(s, &s->put_lock, deadline);
        if (rc < 0)
            return rc;
        uint32_t seen = 0;
        rc = put_locked(q, msgs, n, gather, &seen);
        pthread_mutex_unlock(&s->put_lock);
        if (rc > 0) {
            wake_getters(s);
            return rc;
        }
        if (rc != CIPC_EAGAIN)
            return rc;
        if (timeout_ms == 0)
            return CIPC_EAGAIN;
        if (last)
            return CIPC_ETIMEOUT;
        if (wait_change(q, rec_size(gather ? gather : msgs[0].iov_len), q->spin, &s->head,
                        &s->put_waiters, seen, deadline) < 0)
            last = true; /* one last attempt, then time out */
    }
}

int cipc_queue_put(cipc_queue *q, const void *data, size_t len, long timeout_ms)
{
    struct iovec v = {.iov_base = (void *)data, .iov_len = len};
    int rc = put_common(q, &v, 1, 0, timeout_ms);
    return rc > 0 ? 0 : rc;
}

int cipc_queue_try_put(cipc_queue *q, const void *data, size_t len)
{
    return cipc_queue_put(q, data, len, 0);
}

int cipc_queue_put_many(cipc_queue *q, const struct iovec *msgs, size_t n, long timeout_ms)
{
    return put_common(q, msgs, n, 0, timeout_ms);
}

int cipc__queue_putv(cipc_queue *q, const struct iovec *parts, size_t n, long timeout_ms)
{
    if (!q || !parts || n == 0)
        return -EINVAL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!parts[i].iov_base && parts[i].iov_len)
            return -EINVAL;
        total += parts[i].iov_len;
        if (total > q->max_msg)
            return CIPC_ETOOBIG;
    }
    if (total == 0) { /* an empty message: no part has bytes to gather */
        struct iovec v = {0};
        int rc = put_common(q, &v, 1, 0, timeout_ms);
        return rc > 0 ? 0 : rc;
    }
    int rc = put_common(q, parts, n, total, timeout_ms);
    return rc > 0 ? 0 : rc;
}

/* --- get ------------------------------------------------------------------------- */

struct getdst {
    unsigned char *buf; /* NULL: allocate (get_alloc) or visit */
    size_t cap;
    size_t *lens;
    size_t max_n;
    void **alloc_out;
    cipc__queue_visit_fn visit; /* non-NULL: call it on each record in place */
    void *visit_ctx;
};

/* Copy out up to d->max_n records, then release them with one head store (R2). Called
 * by get_common() with get_lock held. Returns the number taken (>= 1), or CIPC_EAGAIN
 * with *seen set to tail's futex half when empty, CIPC_ECLOSING (closed and empty),
 * CIPC_ETOOBIG (first too big; d->lens[0] set), CIPC_EPROTO, -ENOMEM. */
static int get_locked(cipc_queue *q, struct getdst *d, uint32_t *seen)
{
    struct qshm *s = q->s;
    const uint32_t cap = q->cap;
    uint64_t h0 = atomic_load_explicit(&s->head, memory_order_relaxed);
    uint64_t t = atomic_load_explicit(&s->tail_cache, memory_order_relaxed);
    uint32_t off = w_off(h0), cnt = w_cnt(h0);
    if (w_cnt(t) == cnt) {
        /* Acquire: the putter's record bytes are visible before its tail. */
        t = atomic_load_explicit(&s->tail, memory_order_acquire);
        atomic_store_explicit(&s->tail_cache, t, memory_order_relaxed);
        if (w_cnt(t) == cnt) {
            if (t & CLOSED_BIT)
                return CIPC_ECLOSING;
            *seen = (uint32_t)(t >> 32);
            return CIPC_EAGAIN;
        }
    }
    size_t i = 0, pos = 0;
    while (i < d->max_n && cnt != w_cnt(t)) {
        if (off > cap - sizeof(struct rec) || off % 8)
            return i ? (int)i : CIPC_EPROTO;
        struct rec r = *(struct rec *)(q->ring + off);
        if (r.kind == REC_WRAP) {
            off = 0;
            r = *(struct rec *)q->ring;
        }
        if (r.kind != REC_MSG || r.len > q->max_msg || off + rec_size(r.len) > cap) {
            if (i)
                break;
            return CIPC_EPROTO;
        }
        unsigned char *dst;
        if (d->visit) {
            d->visit(d->visit_ctx, q->ring + off + sizeof r, r.len);
            dst = NULL;
        } else if (!d->buf) {
            dst = malloc(r.len ? r.len : 1);
            if (!dst)
                return -ENOMEM;
            *d->alloc_out = dst;
        } else {
            if (r.len > d->cap - pos) {
                if (i)
                    break;
                d->lens[0] = r.len;
                return CIPC_ETOOBIG;
            }
            dst = d->buf + pos;
        }
        if (r.len && dst)
            memcpy(dst, q->ring + off + sizeof r, r.len);
        d->lens[d->visit ? 0 : i] = r.len;
        i++;
        pos += r.len;
        off += (uint32_t)rec_size(r.len);
        if (off == cap)
            off = 0;
        cnt = (cnt + 1) & CNT_MASK;
        if (cnt == w_cnt(t) && i < d->max_n) {
            t = atomic_load_explicit(&s->tail, memory_order_acquire);
            atomic_store_explicit(&s->tail_cache, t, memory_order_relaxed);
        }
    }
    /* The commit: the records are ours only once head moves past them. */
    commit_word(&s->head, h0, ((uint64_t)cnt << 32) | off);
    return (int)i;
}

static int get_common(cipc_queue *q, struct getdst *d, long timeout_ms)
{
    struct qshm *s = q->s;
    /* try_ (timeout 0) and untimed calls wait for the lock without limit: it is held
     * only for a bounded copy. Timed calls give up on it at their deadline too. */
    int64_t deadline = timeout_ms > 0 ? deadline_ns(timeout_ms) : INT64_MAX;
    bool last = false;
    for (;;) {
        int rc = qlock(s, &s->get_lock, deadline);
        if (rc < 0)
            return rc;
        uint32_t seen = 0;
        rc = get_locked(q, d, &seen);
        pthread_mutex_unlock(&s->get_lock);
        if (rc > 0) {
            wake_putters(q);
            return rc;
        }
        if (rc != CIPC_EAGAIN)
            return rc;
        if (timeout_ms == 0)
            return CIPC_EAGAIN;
        if (last)
            return CIPC_ETIMEOUT;
        if (wait_change(NULL, 0, q->spin, &s->tail, &s->get_waiters, seen, deadline) < 0)
            last = true; /* one last attempt, then time out */
    }
}

int cipc_queue_get(cipc_queue *q, void *buf, size_t cap, size_t *len, long timeout_ms)
{
    if (!q || !len || (!buf && cap))
        return -EINVAL;
    size_t l = 0;
    struct getdst d = {.buf = buf ? buf : (unsigned char *)&l, .cap = cap, .lens = &l, .max_n = 1};
    int rc = get_common(q, &d, timeout_ms);
    if (rc > 0 || rc == CIPC_ETOOBIG)
        *len = l;
    return rc > 0 ? 0 : rc;
}

int cipc_queue_try_get(cipc_queue *q, void *buf, size_t cap, size_t *len)
{
    return cipc_queue_get(q, buf, cap, len, 0);
}

int cipc_queue_get_alloc(cipc_queue *q, void **out, size_t *len, long timeout_ms)
{
    if (!q || !out || !len)
        return -EINVAL;
    size_t l = 0;
    void *p = NULL;
    struct getdst d = {.buf = NULL, .lens = &l, .max_n = 1, .alloc_out = &p};
    int rc = get_common(q, &d, timeout_ms);
    if (rc > 0) {
        *out = p;
        *len = l;
        return 0;
    }
    return rc;
}

int cipc_queue_get_many(cipc_queue *q, void *buf, size_t cap, size_t *lens, size_t max_n,
                        long timeout_ms)
{
    if (!q || !lens || max_n == 0 || (!buf && cap))
        return -EINVAL;
    unsigned char dummy;
    struct getdst d = {.buf = buf ? buf : &dummy, .cap = cap, .lens = lens, .max_n = max_n};
    return get_common(q, &d, timeout_ms);
}

int cipc__queue_get_visit(cipc_queue *q, cipc__queue_visit_fn fn, void *ctx, size_t max_n,
                          long timeout_ms)
{
    if (!q || !fn || max_n == 0)
        return -EINVAL;
    size_t l = 0;
    struct getdst d = {.lens = &l, .max_n = max_n, .visit = fn, .visit_ctx = ctx};
    return get_common(q, &d, timeout_ms);
}

void cipc__queue_set_spin(cipc_queue *q, int pauses)
{
    if (q)
        q->spin = pauses < 0 ? SPIN_TRIES : pauses;
}

/* --- the rest -------------------------------------------------------------------- */

int cipc_queue_count(const cipc_queue *q)
{
    if (!q)
        return -EINVAL;
    uint64_t h = atomic_load(&q->s->head);
    uint64_t t = atomic_load(&q->s->tail);
    return (int)((w_cnt(t) - w_cnt(h)) & CNT_MASK);
}

uint32_t cipc__queue_recoveries(const cipc_queue *q)
{
    return atomic_load_explicit(&q->s->recoveries, memory_order_relaxed);
}

int cipc__queue_lock_for_test(cipc_queue *q, int put_side)
{
    struct qshm *s = q->s;
    int rc = qlock(s, put_side ? &s->put_lock : &s->get_lock, INT64_MAX);
    if (rc < 0 || !put_side)
        return rc;
    uint64_t t = atomic_load(&s->tail), h = atomic_load(&s->head);
    uint32_t free_bytes = q->cap - used_bytes(q->cap, t, h);
    for (uint32_t i = 0, off = w_off(t); i < free_bytes; i++, off = (off + 1) % q->cap)
        q->ring[off] = 0xee;
    return 0;
}

size_t cipc_queue_max_msg(const cipc_queue *q)
{
    return q ? q->max_msg : 0;
}

int cipc_queue_shutdown(cipc_queue *q)
{
    if (!q)
        return -EINVAL;
    struct qshm *s = q->s;
    atomic_fetch_or(&s->tail, CLOSED_BIT);
    atomic_fetch_or(&s->head, CLOSED_BIT);
    futex_wake_all(w_futex(&s->tail));
    futex_wake_all(w_futex(&s->head));
    return 0;
}
