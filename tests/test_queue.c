/* test_queue -- cipc_queue in one process: order, wrap-around with every size, timeouts
 * with bounds, try_ variants, max size, CIPC_ETOOBIG keeps the message, count, batches,
 * shutdown semantics, bad input, and producer/consumer threads sharing one handle. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "cipc/queue.h"
#include "cipc/time.h"
#include "process/queue_internal.h"
#include <sys/wait.h>
#include <unistd.h>

static void fill(unsigned char *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)(seed * 31 + i * 7);
}

static int same(const unsigned char *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != (unsigned char)(seed * 31 + i * 7))
            return 0;
    return 1;
}

static void test_order(void)
{
    cipc_queue *q = NULL;
    CHECK_INT(cipc_queue_new(NULL, &q), ==, 0);
    CHECK_INT(cipc_queue_max_msg(q), ==, CIPC_QUEUE_DEFAULT_MAX_MSG);
    char buf[64];
    size_t len = 99;
    CHECK_INT(cipc_queue_count(q), ==, 0);
    for (int i = 0; i < 100; i++) {
        int n = snprintf(buf, sizeof buf, "message %d", i);
        CHECK_INT(cipc_queue_put(q, buf, (size_t)n, 0), ==, 0);
    }
    CHECK_INT(cipc_queue_count(q), ==, 100);
    for (int i = 0; i < 100; i++) {
        char want[64];
        int n = snprintf(want, sizeof want, "message %d", i);
        CHECK_INT(cipc_queue_get(q, buf, sizeof buf, &len, 0), ==, 0);
        CHECK_INT(len, ==, n);
        CHECK(memcmp(buf, want, len) == 0);
    }
    CHECK_INT(cipc_queue_count(q), ==, 0);
    CHECK_INT(cipc_queue_try_get(q, buf, sizeof buf, &len), ==, CIPC_EAGAIN);
    /* Zero-length messages are messages. */
    CHECK_INT(cipc_queue_put(q, NULL, 0, 0), ==, 0);
    CHECK_INT(cipc_queue_count(q), ==, 1);
    len = 99;
    CHECK_INT(cipc_queue_get(q, NULL, 0, &len, 0), ==, 0);
    CHECK_INT(len, ==, 0);
    cipc_queue_close(q);
}

/* Every size 0..300 several times through a small ring: records wrap at every offset. */
static void test_wrap(void)
{
    cipc_queue *q = NULL;
    CHECK_INT(cipc_queue_new(&(cipc_queue_opts){.capacity = 1024, .max_msg = 300}, &q), ==, 0);
    unsigned char in[300], out[300];
    unsigned seed = 0, rseed = 0;
    size_t rsize = 0;
    for (int round = 0; round < 7; round++) {
        for (size_t sz = 0; sz <= 300; sz++) {
            fill(in, sz, seed);
            int rc = cipc_queue_try_put(q, in, sz);
            while (rc == CIPC_EAGAIN) { /* full: take one, then retry */
                size_t len = 0;
                size_t want = rsize;
                CHECK_INT(cipc_queue_try_get(q, out, sizeof out, &len), ==, 0);
                CHECK_INT(len, ==, want);
                CHECK(same(out, len, rseed));
                rseed++;
                rsize = (rsize + 1) % 301;
                rc = cipc_queue_try_put(q, in, sz);
            }
            CHECK_INT(rc, ==, 0);
            seed++;
        }
    }
    while (rseed < seed) {
        size_t len = 0;
        CHECK_INT(cipc_queue_try_get(q, out, sizeof out, &len), ==, 0);
        CHECK_INT(len, ==, rsize);
        CHECK(same(out, len, rseed));
        rseed++;
        rsize = (rsize + 1) % 301;
    }
    CHECK_INT(cipc_queue_count(q), ==, 0);
    cipc_queue_close(q);
}

static void test_limits_and_bad_input(void)
{
    cipc_queue *q = NULL;
    /* Wrong sizes. */
    CHECK_INT(cipc_queue_new(&(cipc_queue_opts){.capacity = 100, .max_msg = 64}, &q), ==, -EINVAL);
    CHECK_INT(cipc_queue_new(&(cipc_queue_opts){.capacity = (size_t)2 << 30}, &q), ==, -EINVAL);
    CHECK_INT(cipc_queue_new(&(cipc_queue_opts){.max_msg = (size_t)1 << 30}, &q), ==, -EINVAL);
    CHECK_INT(cipc_queue_new(&(cipc_queue_opts){.name = ""}, &q), ==, -EINVAL);
    CHECK_INT(cipc_queue_new(&(cipc_queue_opts){.name = "/a/b"}, &q), ==, -EINVAL);
    CHECK_INT(cipc_queue_new(NULL, NULL), ==, -EINVAL);
    CHECK(q == NULL);
    CHECK_INT(cipc_queue_open(NULL, &q), ==, -EINVAL);
    CHECK_INT(cipc_queue_open("/cipc-test-does-not-exist", &q), ==, -ENOENT);
    CHECK_INT(cipc_queue_unlink("/cipc-test-does-not-exist"), ==, -ENOENT);
    CHECK(q == NULL);
    cipc_queue_close(NULL);

    /* The smallest legal ring for max_msg 64: two 72-byte records. */
    CHECK_INT(cipc_queue_new(&(cipc_queue_opts){.capacity = 144, .max_msg = 64}, &q), ==, 0);
    unsigned char big[65] = {0}, out[64];
    size_t len = 0;
    CHECK_INT(cipc_queue_put(q, big, 65, 0), ==, CIPC_ETOOBIG);
    CHECK_INT(cipc_queue_put(q, NULL, 5, 0), ==, -EINVAL);
    CHECK_INT(cipc_queue_put(NULL, big, 5, 0), ==, -EINVAL);
    CHECK_INT(cipc_queue_count(q), ==, 0);
    fill(big, 64, 1);
    CHECK_INT(cipc_queue_put(q, big, 64, 0), ==, 0);
    CHECK_INT(cipc_queue_put(q, big, 64, 0), ==, 0);
    /* Full, without a timeout: CIPC_EAGAIN, at once; nothing lost. */
    CHECK_INT(cipc_queue_try_put(q, big, 1), ==, CIPC_EAGAIN);
    CHECK_INT(cipc_queue_count(q), ==, 2);
    /* A buffer too small: CIPC_ETOOBIG, the size is reported, the message stays. */
    len = 0;
    CHECK_INT(cipc_queue_get(q, out, 10, &len, 0), ==, CIPC_ETOOBIG);
    CHECK_INT(len, ==, 64);
    CHECK_INT(cipc_queue_count(q), ==, 2);
    CHECK_INT(cipc_queue_get(q, NULL, 5, &len, 0), ==, -EINVAL);
    CHECK_INT(cipc_queue_get(q, out, sizeof out, NULL, 0), ==, -EINVAL);
    CHECK_INT(cipc_queue_get(q, out, sizeof out, &len, 0), ==, 0);
    CHECK_INT(len, ==, 64);
    CHECK(same(out, 64, 1));
    void *p = NULL;
    CHECK_INT(cipc_queue_get_alloc(q, &p, &len, 0), ==, 0);
    CHECK_INT(len, ==, 64);
    CHECK(same(p, 64, 1));
    free(p);
    CHECK_INT(cipc_queue_get_alloc(q, &p, &len, 0), ==, CIPC_EAGAIN);
    CHECK_INT(cipc_queue_count(NULL), ==, -EINVAL);
    CHECK_INT(cipc_queue_shutdown(NULL), ==, -EINVAL);
    cipc_queue_close(q);
}

/* Timeouts: a full put and an empty get wait about as long as asked, no less. */
static void test_timeouts(void)
{
    cipc_queue *q = NULL;
    CHECK_INT(cipc_queue_new(&(cipc_queue_opts){.capacity = 144, .max_msg = 64}, &q), ==, 0);
    char buf[64];
    size_t len;
    int64_t t0 = cipc_now_ms();
    CHECK_INT(cipc_queue_get(q, buf, sizeof buf, &len, 150), ==, CIPC_ETIMEOUT);
    int64_t el = cipc_now_ms() - t0;
    CHECK_INT(el, >=, 150);
    CHECK_INT(el, <, 2000);
    CHECK_INT(cipc_queue_put(q, buf, 64, 0), ==, 0);
    CHECK_INT(cipc_queue_put(q, buf, 64, 0), ==, 0);
    t0 = cipc_now_ms();
    CHECK_INT(cipc_queue_put(q, buf, 64, 120), ==, CIPC_ETIMEOUT);
    el = cipc_now_ms() - t0;
    CHECK_INT(el, >=, 120);
    CHECK_INT(el, <, 2000);
    CHECK_INT(cipc_queue_count(q), ==, 2);
    cipc_queue_close(q);
}

static void test_batches(void)
{
    cipc_queue *q = NULL;
    CHECK_INT(cipc_queue_new(&(cipc_queue_opts){.capacity = 4096, .max_msg = 256}, &q), ==, 0);
    unsigned char data[10][100];
    struct iovec v[10];
    for (int i = 0; i < 10; i++) {
        fill(data[i], (size_t)i * 10, (unsigned)i);
        v[i].iov_base = data[i];
        v[i].iov_len = (size_t)i * 10;
    }
    CHECK_INT(cipc_queue_put_many(q, v, 10, 0), ==, 10);
    CHECK_INT(cipc_queue_count(q), ==, 10);
    unsigned char out[1000];
    size_t lens[10];
    /* Room for messages 0..3 (0+10+20+30 bytes) but not 4 (40 more). */
    CHECK_INT(cipc_queue_get_many(q, out, 70, lens, 10, 0), ==, 4);
    size_t pos = 0;
    for (int i = 0; i < 4; i++) {
        CHECK_INT(lens[i], ==, i * 10);
        CHECK(same(out + pos, lens[i], (unsigned)i));
        pos += lens[i];
    }
    CHECK_INT(cipc_queue_get_many(q, out, 10, lens, 10, 0), ==, CIPC_ETOOBIG);
    CHECK_INT(lens[0], ==, 40);
    CHECK_INT(cipc_queue_get_many(q, out, sizeof out, lens, 10, 0), ==, 6);
    CHECK_INT(lens[5], ==, 90);
    /* A batch larger than the ring: as many as fit. */
    struct iovec w[100];
    for (int i = 0; i < 100; i++)
        w[i] = (struct iovec){.iov_base = data[9], .iov_len = 90};
    int n = cipc_queue_put_many(q, w, 100, 0);
    CHECK_INT(n, ==, 4096 / 104);
    CHECK_INT(cipc_queue_count(q), ==, n);
    CHECK_INT(cipc_queue_put_many(q, w, 1, 0), ==, CIPC_EAGAIN);
    CHECK_INT(cipc_queue_put_many(q, w, 0, 0), ==, -EINVAL);
    cipc_queue_close(q);
}

static void test_shutdown(void)
{
    cipc_queue *q = NULL;
    CHECK_INT(cipc_queue_new(&(cipc_queue_opts){.capacity = 4096, .max_msg = 256}, &q), ==, 0);
    CHECK_INT(cipc_queue_put(q, "a", 1, 0), ==, 0);
    CHECK_INT(cipc_queue_put(q, "b", 1, 0), ==, 0);
    CHECK_INT(cipc_queue_shutdown(q), ==, 0);
    CHECK_INT(cipc_queue_put(q, "c", 1, 0), ==, CIPC_ECLOSING);
    CHECK_INT(cipc_queue_put(q, "c", 1, -1), ==, CIPC_ECLOSING);
    CHECK_INT(cipc_queue_count(q), ==, 2);
    char buf[8];
    size_t len;
    CHECK_INT(cipc_queue_get(q, buf, sizeof buf, &len, -1), ==, 0);
    CHECK(buf[0] == 'a');
    CHECK_INT(cipc_queue_get(q, buf, sizeof buf, &len, -1), ==, 0);
    CHECK(buf[0] == 'b');
    CHECK_INT(cipc_queue_get(q, buf, sizeof buf, &len, -1), ==, CIPC_ECLOSING);
    CHECK_INT(cipc_queue_try_get(q, buf, sizeof buf, &len), ==, CIPC_ECLOSING);
    CHECK_INT(cipc_queue_shutdown(q), ==, 0);
    cipc_queue_close(q);
}

/* Threads: a blocked get is woken by shutdown, well before its timeout. */
static void *shutdown_later(void *arg)
{
    cipc_sleep_ms(100);
    cipc_queue_shutdown(arg);
    return NULL;
}

static void test_shutdown_wakes(void)
{
    cipc_queue *q = NULL;
    CHECK_INT(cipc_queue_new(NULL, &q), ==, 0);
    pthread_t th;
    CHECK_INT(pthread_create(&th, NULL, shutdown_later, q), ==, 0);
    char buf[8];
    size_t len;
    int64_t t0 = cipc_now_ms();
    CHECK_INT(cipc_queue_get(q, buf, sizeof buf, &len, 10000), ==, CIPC_ECLOSING);
    CHECK_INT(cipc_now_ms() - t0, <, 5000);
    pthread_join(th, NULL);
    cipc_queue_close(q);
}

/* Threads: 3 producers and 3 consumers on one handle through a small ring. */
#define TP 3
#define TN 20000
static cipc_queue *tq;
static unsigned char tseen[TP][TN];

static void *tprod(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;
    for (uint32_t i = 0; i < TN; i++) {
        uint32_t m[8] = {id, i};
        CHECK_INT(cipc_queue_put(tq, m, 8 + (i % 25), 10000), ==, 0);
    }
    return NULL;
}

static void *tcons(void *arg)
{
    (void)arg;
    uint32_t last[TP];
    memset(last, 0xff, sizeof last);
    for (;;) {
        uint32_t m[8];
        size_t len;
        int rc = cipc_queue_get(tq, m, sizeof m, &len, 10000);
        if (rc == CIPC_ECLOSING)
            return NULL;
        CHECK_INT(rc, ==, 0);
        CHECK_INT(m[0], <, TP);
        CHECK_INT(m[1], <, TN);
        CHECK_INT(len, ==, 8 + (m[1] % 25));
        CHECK(last[m[0]] == UINT32_MAX || m[1] > last[m[0]]);
        last[m[0]] = m[1];
        CHECK_INT(__atomic_fetch_add(&tseen[m[0]][m[1]], 1, __ATOMIC_RELAXED), ==, 0);
    }
}

static void test_threads(void)
{
    CHECK_INT(cipc_queue_new(&(cipc_queue_opts){.capacity = 2048, .max_msg = 64}, &tq), ==, 0);
    pthread_t p[TP], c[TP];
    for (int i = 0; i < TP; i++) {
        CHECK_INT(pthread_create(&c[i], NULL, tcons, NULL), ==, 0);
        CHECK_INT(pthread_create(&p[i], NULL, tprod, (void *)(uintptr_t)i), ==, 0);
    }
    for (int i = 0; i < TP; i++)
        pthread_join(p[i], NULL);
    cipc_queue_shutdown(tq);
    for (int i = 0; i < TP; i++)
        pthread_join(c[i], NULL);
    for (int i = 0; i < TP; i++)
        for (int j = 0; j < TN; j++)
            CHECK_INT(tseen[i][j], ==, 1);
    cipc_queue_close(tq);
}

/* A process that dies holding a lock (a putter in the middle of its copy, a getter in
 * the middle of its) blocks nobody and changes nothing that was committed. */
static void test_owner_dead(void)
{
    cipc_queue *q = NULL;
    CHECK_INT(cipc_queue_new(&(cipc_queue_opts){.capacity = 1024, .max_msg = 64}, &q), ==, 0);
    CHECK_INT(cipc_queue_put(q, "one", 3, 0), ==, 0);
    for (int side = 1; side >= 0; side--) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            if (cipc__queue_lock_for_test(q, side) < 0)
                _exit(1);
            _exit(0); /* dies holding the lock */
        }
        int st = 0;
        CHECK(waitpid(pid, &st, 0) == pid);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    CHECK_INT(cipc__queue_recoveries(q), ==, 0);
    CHECK_INT(cipc_queue_count(q), ==, 1);
    CHECK_INT(cipc_queue_put(q, "two", 3, 1000), ==, 0);
    char buf[64];
    size_t len = 0;
    CHECK_INT(cipc_queue_get(q, buf, sizeof buf, &len, 1000), ==, 0);
    CHECK_MEM(buf, len, "one");
    CHECK_INT(cipc_queue_get(q, buf, sizeof buf, &len, 1000), ==, 0);
    CHECK_MEM(buf, len, "two");
    CHECK_INT(cipc__queue_recoveries(q), ==, 2);
    CHECK_INT(cipc_queue_try_get(q, buf, sizeof buf, &len), ==, CIPC_EAGAIN);
    cipc_queue_close(q);
}

int main(void)
{
    test_order();
    test_wrap();
    test_limits_and_bad_input();
    test_timeouts();
    test_batches();
    test_shutdown();
    test_shutdown_wakes();
    test_threads();
    test_owner_dead();
    printf("test_queue: ok\n");
    return 0;
}
