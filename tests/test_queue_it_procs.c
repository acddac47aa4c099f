/* test_queue_it_procs -- cipc_queue between processes: 4 forked producers x 4 forked
 * consumers move 1,000,000 messages with nothing lost, nothing duplicated and each
 * producer's order kept; an unrelated process opens a named queue by name; and producers
 * and consumers SIGKILLed at random moments in a loop neither deadlock the survivors nor
 * lose or duplicate a committed message. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cipc/queue.h"
#include "cipc/time.h"
#include "process/queue_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static void *shared_map(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    return p;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* In every child: die with the test, so a failing run leaves no process behind. */
static void child_init(void)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/* Wait for `pid` until `deadline_ms` (monotonic); returns its status, or -1 on timeout. */
static int wait_until(pid_t pid, int64_t deadline_ms)
{
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        CHECK(r == 0);
        if (cipc_now_ms() > deadline_ms)
            return -1;
        cipc_sleep_ms(2);
    }
}

/* --- 1. Four producers, four consumers ------------------------------------------- */

#define NP 4
#define NC 4

struct msg4 {
    uint32_t prod;
    uint32_t seq;
    uint64_t check;
    unsigned char pad[48];
};

struct shared4 {
    _Atomic uint64_t sum[NC];
    _Atomic uint64_t count[NC];
    unsigned char seen[]; /* [NP][per] delivery counts */
};

static void test_many(void)
{
    const uint32_t total = SANITIZED ? 200000 : 1000000, per = total / NP;
    struct shared4 *sh = shared_map(sizeof *sh + (size_t)NP * per);
    cipc_queue *q = NULL;
    CHECK_INT(cipc_queue_new(&(cipc_queue_opts){.capacity = 64 * 1024, .max_msg = 64}, &q), ==, 0);
    int64_t t0 = cipc_now_ms();
    pid_t pids[NP + NC];
    for (int c = 0; c < NC; c++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            child_init();
            uint32_t last[NP];
            uint64_t sum = 0, n = 0;
            memset(last, 0xff, sizeof last);
            for (;;) {
                struct msg4 m;
                size_t len = 0;
                int rc = cipc_queue_get(q, &m, sizeof m, &len, 60000);
                if (rc == CIPC_ECLOSING)
                    break;
                CHECK_INT(rc, ==, 0);
                CHECK_INT(m.prod, <, NP);
                CHECK_INT(m.seq, <, per);
                CHECK_INT(len, ==, 16 + m.seq % 49);
                CHECK(m.check == mix((uint64_t)m.prod << 32 | m.seq));
                /* A producer's messages reach each consumer in the producer's order. */
                CHECK(last[m.prod] == UINT32_MAX || m.seq > last[m.prod]);
                last[m.prod] = m.seq;
                CHECK_INT(__atomic_fetch_add(&sh->seen[(size_t)m.prod * per + m.seq], 1,
                                             __ATOMIC_RELAXED),
                          ==, 0);
                sum += m.check;
                n++;
            }
            sh->sum[c] = sum;
            sh->count[c] = n;
            _exit(0);
        }
        pids[NP + c] = pid;
    }
    for (int p = 0; p < NP; p++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            child_init();
            for (uint32_t s = 0; s < per; s++) {
                struct msg4 m = {.prod = (uint32_t)p, .seq = s};
                m.check = mix((uint64_t)m.prod << 32 | s);
                CHECK_INT(cipc_queue_put(q, &m, 16 + s % 49, 60000), ==, 0);
            }
            _exit(0);
        }
        pids[p] = pid;
    }
    int64_t deadline = cipc_now_ms() + 150000;
    for (int p = 0; p < NP; p++)
        CHECK_INT(wait_until(pids[p], deadline), ==, 0);
    CHECK_INT(cipc_queue_shutdown(q), ==, 0);
    for (int c = 0; c < NC; c++)
        CHECK_INT(wait_until(pids[NP + c], deadline), ==, 0);
    int64_t el = cipc_now_ms() - t0;
    uint64_t sum = 0, want = 0, n = 0;
    for (int c = 0; c < NC; c++) {
        sum += sh->sum[c];
        n += sh->count[c];
    }
    for (uint32_t p = 0; p < NP; p++)
        for (uint32_t s = 0; s < per; s++) {
            want += mix((uint64_t)p << 32 | s);
            CHECK_INT(sh->seen[(size_t)p * per + s], ==, 1);
        }
    CHECK_INT(n, ==, (uint64_t)per * NP);
    CHECK(sum == want);
    CHECK_INT(cipc_queue_count(q), ==, 0);
    printf("many: %u messages, %d producers x %d consumers, %lld ms\n", per * NP, NP, NC,
           (long long)el);
    cipc_queue_close(q);
    munmap(sh, sizeof *sh + (size_t)NP * per);
}

/* --- 2. Unrelated processes, by name ----------------------------------------------- */

static void test_named(void)
{
    char name[64];
    snprintf(name, sizeof name, "/cipc-test-q-%d", (int)getpid());
    cipc_queue_unlink(name);
    cipc_queue *q = NULL;
    CHECK_INT(cipc_queue_new(&(cipc_queue_opts){.name = name, .mode = 0640, .max_msg = 128}, &q),
              ==, 0);
    cipc_queue *q2 = NULL;
    CHECK_INT(cipc_queue_new(&(cipc_queue_opts){.name = name}, &q2), ==, -EEXIST);
    char path[128];
    snprintf(path, sizeof path, "/dev/shm%s", name);
    struct stat st;
    CHECK_INT(stat(path, &st), ==, 0);
    CHECK_INT(st.st_mode & 0777, ==, 0640);

    _Atomic int *drained = shared_map(sizeof *drained);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        child_init();
        /* Do not use the inherited mapping: open the queue as an unrelated process would. */
        cipc_queue *c = NULL;
        CHECK_INT(cipc_queue_open(name + 1, &c), ==, 0); /* without the leading slash */
        CHECK_INT(cipc_queue_max_msg(c), ==, 128);
        for (uint32_t i = 0; i < 10000; i++)
            CHECK_INT(cipc_queue_put(c, &i, sizeof i, 10000), ==, 0);
        /* Wait until the parent has taken them all, so this get cannot take one. */
        int64_t until = cipc_now_ms() + 20000;
        while (!atomic_load(drained) && cipc_now_ms() < until)
            cipc_sleep_ms(1);
        char buf[16];
        size_t len;
        CHECK_INT(cipc_queue_get(c, buf, sizeof buf, &len, 10000), ==, 0);
        CHECK_MEM(buf, len, "bye");
        cipc_queue_close(c);
        _exit(0);
    }
    for (uint32_t i = 0; i < 10000; i++) {
        uint32_t v = 0;
        size_t len = 0;
        CHECK_INT(cipc_queue_get(q, &v, sizeof v, &len, 10000), ==, 0);
        CHECK_INT(len, ==, sizeof v);
        CHECK_INT(v, ==, i);
    }
    atomic_store(drained, 1);
    CHECK_INT(cipc_queue_put(q, "bye", 3, 0), ==, 0);
    CHECK_INT(wait_until(pid, cipc_now_ms() + 20000), ==, 0);
    CHECK_INT(cipc_queue_count(q), ==, 0);
    CHECK_INT(cipc_queue_unlink(name), ==, 0);
    CHECK_INT(cipc_queue_open(name, &q2), ==, -ENOENT);
    /* The unlinked queue still works for those who have it mapped. */
    CHECK_INT(cipc_queue_put(q, "x", 1, 0), ==, 0);
    CHECK_INT(cipc_queue_count(q), ==, 1);
    cipc_queue_close(q);

    /* A shared-memory object that is not a queue. */
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    CHECK_INT(ftruncate(fd, 8192), ==, 0);
    close(fd);
    CHECK_INT(cipc_queue_open(name, &q2), ==, CIPC_EPROTO);
    CHECK_INT(cipc_queue_unlink(name), ==, 0);
    munmap((void *)drained, sizeof *drained);
    printf("named: ok\n");
}

/* --- 3. SIGKILL at random moments ------------------------------------------------ *
 *
 * Producers and consumers run in a loop while the parent SIGKILLs a random one every
 * few milliseconds and starts a replacement. Bookkeeping, all in shared memory:
 *
 * - Each producer incarnation takes a fresh id. Before each put it stores the seq it is
 *   about to put in attempted[id]; after the put returns 0 it stores committed[id] =
 *   seq + 1. So seqs < committed[id] were reported done; seq == attempted[id] may or may
 *   not have been committed (killed inside or just after the put); later seqs were never
 *   put.
 * - Every byte of a message is non-zero and the message encodes its id, seq and length.
 *   A consumer zeroes its slot buffer (shared memory), sets slot.inflight = 1, gets
 *   straight into the slot buffer, records the delivery (deliv[id][seq]++, failing at
 *   once if it was not 0), then sets inflight = 0. When the parent kills a consumer whose
 *   inflight is 1 and whose slot holds a complete valid message (no zero byte), that
 *   message is added to `dead` (it may or may not have been taken: killed after its copy,
 *   before or after the get's commit).
 *
 * Invariants checked once the survivors have drained the queue after shutdown:
 *   I1 deliv[m] <= 1 for every m: no message is recorded as delivered twice.
 *   I2 every delivered m was attempted: seq <= attempted[id] (and its bytes are intact).
 *   I3 every m with seq < committed[id] (its put returned 0) has deliv[m] == 1 or is in
 *      `dead` (taken by a consumer killed between the get's commit and its record).
 *   I4 |dead| <= consumers killed, and the final drain finishes before its deadline: no
 *      deadlock, whoever died holding a lock.
 * A duplicate involving a killed consumer cannot be seen from outside (its copy and its
 * commit cannot be told apart), so I1 covers deliveries that returned. */

#define KP      3
#define KC      3
#define MAXID   4096
#define SEQMAX  1024
#define KMAXMSG 200

struct cslot {
    _Atomic int inflight;
    unsigned char buf[KMAXMSG];
};

struct kshared {
    _Atomic uint32_t next_id;
    _Atomic int stop;
    _Atomic int failed;
    _Atomic int32_t attempted[MAXID];
    _Atomic int32_t committed[MAXID];
    struct cslot slot[KC];
    _Atomic unsigned char deliv[MAXID][SEQMAX];
};

static struct kshared *ks;
static cipc_queue *kq;

/* Encode id (12 bits), seq (10 bits), len into a message with no zero byte. */
static size_t kmsg_make(unsigned char *b, uint32_t id, uint32_t seq)
{
    size_t len = 16 + mix((uint64_t)id << 16 | seq) % (KMAXMSG - 15);
    b[0] = (unsigned char)(0x80 | (id & 0x7f));
    b[1] = (unsigned char)(0x80 | (id >> 7));
    b[2] = (unsigned char)(0x80 | (seq & 0x7f));
    b[3] = (unsigned char)(0x80 | (seq >> 7));
    b[4] = (unsigned char)(0x80 | (len & 0x7f));
    b[5] = (unsigned char)(0x80 | (len >> 7));
    uint64_t h = mix((uint64_t)id << 20 | seq);
    for (size_t i = 6; i < len; i++)
        b[i] = (unsigned char)(1 + (h + i * 13) % 255);
    return len;
}

/* Decode and verify a message of `len` bytes (or, len 0, whatever length it claims).
 * Returns 1 and sets id/seq if every byte is as kmsg_make() writes it. */
static int kmsg_check(const unsigned char *b, size_t len, uint32_t *id, uint32_t *seq)
{
    if (!(b[0] & 0x80) || !(b[1] & 0x80) || !(b[2] & 0x80) || !(b[3] & 0x80) || !(b[4] & 0x80) ||
        !(b[5] & 0x80))
        return 0;
    *id = (uint32_t)(b[0] & 0x7f) | (uint32_t)(b[1] & 0x7f) << 7;
    *seq = (uint32_t)(b[2] & 0x7f) | (uint32_t)(b[3] & 0x7f) << 7;
    size_t l = (size_t)(b[4] & 0x7f) | (size_t)(b[5] & 0x7f) << 7;
    if (*id >= MAXID || *seq >= SEQMAX || l > KMAXMSG || (len && l != len))
        return 0;
    unsigned char want[KMAXMSG];
    if (kmsg_make(want, *id, *seq) != l)
        return 0;
    return memcmp(want, b, l) == 0;
}

static void kfail(const char *what, uint32_t id, uint32_t seq)
{
    fprintf(stderr, "kill test: %s (id %u seq %u)\n", what, id, seq);
    ks->failed = 1;
    _exit(1);
}

static void kproducer(void)
{
    unsigned char b[KMAXMSG];
    while (!ks->stop) {
        uint32_t id = atomic_fetch_add(&ks->next_id, 1);
        if (id >= MAXID)
            _exit(0);
        for (uint32_t seq = 0; seq < SEQMAX && !ks->stop; seq++) {
            size_t len = kmsg_make(b, id, seq);
            ks->attempted[id] = (int32_t)seq;
            int rc;
            while ((rc = cipc_queue_put(kq, b, len, 50)) == CIPC_ETIMEOUT)
                if (ks->stop)
                    _exit(0);
            if (rc == CIPC_ECLOSING)
                _exit(0);
            if (rc != 0)
                kfail(cipc_err_name(rc), id, seq);
            ks->committed[id] = (int32_t)seq + 1;
        }
    }
    _exit(0);
}

static void kconsumer(int k)
{
    struct cslot *sl = &ks->slot[k];
    for (;;) {
        memset(sl->buf, 0, sizeof sl->buf);
        atomic_store(&sl->inflight, 1);
        size_t len = 0;
        int rc = cipc_queue_get(kq, sl->buf, sizeof sl->buf, &len, 50);
        if (rc == CIPC_ECLOSING)
            _exit(0);
        if (rc == 0) {
            uint32_t id, seq;
            if (!kmsg_check(sl->buf, len, &id, &seq))
                kfail("corrupt message", 0, 0);
            if (id >= atomic_load(&ks->next_id) || (int32_t)seq > ks->attempted[id])
                kfail("delivered a message never put", id, seq); /* I2 */
            if (atomic_fetch_add(&ks->deliv[id][seq], 1) != 0)
                kfail("duplicate delivery", id, seq); /* I1 */
        } else if (rc != CIPC_ETIMEOUT) {
            kfail(cipc_err_name(rc), 0, 0);
        }
        atomic_store(&sl->inflight, 0);
    }
}

static pid_t kspawn(int who)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        child_init();
        if (who < KP)
            kproducer();
        else
            kconsumer(who - KP);
    }
    return pid;
}

static void test_kill(void)
{
    ks = shared_map(sizeof *ks);
    for (int i = 0; i < MAXID; i++)
        ks->attempted[i] = -1;
    /* A small ring: it is full or empty often, records wrap constantly. */
    CHECK_INT(cipc_queue_new(&(cipc_queue_opts){.capacity = 2048, .max_msg = KMAXMSG}, &kq), ==, 0);
    pid_t pids[KP + KC];
    for (int i = 0; i < KP + KC; i++)
        pids[i] = kspawn(i);
    static uint32_t dead_id[1000], dead_seq[1000];
    int ndead = 0, kills = 0, ckills = 0;
    uint64_t rnd = mix((uint64_t)getpid() ^ (uint64_t)cipc_now_ns());
    int64_t t0 = cipc_now_ms(), stop_at = t0 + (SANITIZED ? 30000 : 20000);
    for (int it = 0; it < 300 && cipc_now_ms() < stop_at && !ks->failed; it++) {
        rnd = mix(rnd + 1);
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(50000 + rnd % 5000000)};
        nanosleep(&ts, NULL);
        int v = (int)((rnd >> 32) % (KP + KC));
        CHECK_INT(kill(pids[v], SIGKILL), ==, 0);
        int st = 0;
        CHECK(waitpid(pids[v], &st, 0) == pids[v]);
        if (WIFEXITED(st)) /* a producer that ran out of ids, or a failure */
            CHECK_INT(WEXITSTATUS(st), ==, 0);
        kills++;
        if (v >= KP) {
            struct cslot *sl = &ks->slot[v - KP];
            uint32_t id, seq;
            ckills++;
            if (sl->inflight && kmsg_check(sl->buf, 0, &id, &seq)) {
                CHECK_INT(ndead, <, 1000);
                dead_id[ndead] = id;
                dead_seq[ndead++] = seq;
            }
            sl->inflight = 0;
        }
        pids[v] = kspawn(v);
    }
    CHECK_INT(ks->failed, ==, 0);
    /* Stop the producers, then shut down: the consumers drain the queue and exit. */
    ks->stop = 1;
    int64_t deadline = cipc_now_ms() + 30000;
    for (int i = 0; i < KP; i++)
        CHECK_INT(wait_until(pids[i], deadline), ==, 0);
    CHECK_INT(cipc_queue_shutdown(kq), ==, 0);
    for (int i = KP; i < KP + KC; i++)
        CHECK_INT(wait_until(pids[i], deadline), ==, 0); /* -1 here would be a deadlock */
    CHECK_INT(ks->failed, ==, 0);
    CHECK_INT(cipc_queue_count(kq), ==, 0);

    uint32_t ids = ks->next_id < MAXID ? ks->next_id : MAXID;
    uint64_t committed = 0, delivered = 0, lost_to_dead = 0;
    for (uint32_t id = 0; id < ids; id++) {
        for (int32_t s = 0; s < SEQMAX; s++) {
            unsigned d = ks->deliv[id][s];
            CHECK_INT(d, <=, 1); /* I1 */
            if (d)
                CHECK_INT(s, <=, ks->attempted[id]); /* I2 */
            delivered += d;
            if (s < ks->committed[id]) {
                committed++;
                if (!d) { /* I3 */
                    int found = 0;
                    for (int k = 0; k < ndead && !found; k++)
                        found = dead_id[k] == id && dead_seq[k] == (uint32_t)s;
                    if (!found)
                        fprintf(stderr, "lost: id %u seq %d\n", id, s);
                    CHECK(found);
                    lost_to_dead++;
                }
            }
        }
    }
    CHECK_INT(ndead, <=, ckills); /* I4 */
    printf("kill: %d kills (%d consumers), %u locks recovered from dead owners, %lld ms, %u "
           "producer ids, %llu committed, %llu delivered, %llu taken by killed consumers\n",
           kills, ckills, cipc__queue_recoveries(kq), (long long)(cipc_now_ms() - t0), ids,
           (unsigned long long)committed, (unsigned long long)delivered,
           (unsigned long long)lost_to_dead);
    CHECK_INT(delivered, >, 1000);
    cipc_queue_close(kq);
    munmap(ks, sizeof *ks);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    test_named();
    test_kill();
    test_many();
    printf("test_queue_it_procs: ok\n");
    return 0;
}
