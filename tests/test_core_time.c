/* Proves the clock and deadline helpers: "never", zero and positive deadlines, rounding up
 * of the remaining time, expiry after a real (measured) wait, and that cipc_sleep_ms
 * sleeps at least as long as asked, even when signals interrupt it. */
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>

#include "check.h"
#include "cipc/time.h"

#define NS_PER_MS 1000000LL

static void test_clocks(void)
{
    int64_t a = cipc_now_ns();
    int64_t b = cipc_now_ns();
    CHECK_INT(a, >, 0);
    CHECK_INT(b, >=, a);
    int64_t ms = cipc_now_ms();
    int64_t ns = cipc_now_ns();
    CHECK_INT(ms, <=, ns / NS_PER_MS);
    CHECK_INT(ms, >=, b / NS_PER_MS);
    /* Wall clock: after 2020-01-01 and before 2200-01-01. */
    int64_t wall = cipc_wall_ms();
    CHECK_INT(wall, >, 1577836800000LL);
    CHECK_INT(wall, <, 7258118400000LL);
}

static void test_never(void)
{
    cipc_deadline d = cipc_deadline_in(-1);
    CHECK_INT(d.at_ns, ==, INT64_MAX);
    CHECK_INT(cipc_deadline_remaining_ms(d), ==, -1);
    CHECK(!cipc_deadline_expired(d));
    d = cipc_deadline_in(INT64_MIN);
    CHECK_INT(d.at_ns, ==, INT64_MAX);
    CHECK(!cipc_deadline_expired(d));
    /* A huge timeout saturates instead of overflowing into the past. */
    d = cipc_deadline_in(INT64_MAX);
    CHECK(!cipc_deadline_expired(d));
    CHECK(cipc_deadline_remaining_ms(d) != 0);
    d = cipc_deadline_in(INT64_MAX / NS_PER_MS - 1);
    CHECK(!cipc_deadline_expired(d));
    CHECK(cipc_deadline_remaining_ms(d) != 0);
}

static void test_zero(void)
{
    cipc_deadline d = cipc_deadline_in(0);
    CHECK(d.at_ns != INT64_MAX);
    CHECK(cipc_deadline_expired(d));
    CHECK_INT(cipc_deadline_remaining_ms(d), ==, 0);
    /* A deadline in the past. */
    cipc_deadline past = {cipc_now_ns() - 5 * NS_PER_MS};
    CHECK(cipc_deadline_expired(past));
    CHECK_INT(cipc_deadline_remaining_ms(past), ==, 0);
}

static void test_positive(void)
{
    int64_t t0 = cipc_now_ns();
    cipc_deadline d = cipc_deadline_in(10000);
    int64_t t1 = cipc_now_ns();
    CHECK_INT(d.at_ns, >=, t0 + 10000 * NS_PER_MS);
    CHECK_INT(d.at_ns, <=, t1 + 10000 * NS_PER_MS);
    CHECK(!cipc_deadline_expired(d));
    int64_t r = cipc_deadline_remaining_ms(d);
    CHECK_INT(r, >, 0);
    CHECK_INT(r, <=, 10000);

    /* Rounding up: for a deadline 10.5 ms away, the answer r satisfies
     * r ms >= the time left at the end of the call and (r - 1) ms < the time left at the
     * start of it; in particular it is never 0 while time is left. */
    for (int i = 0; i < 200; i++) {
        int64_t start = cipc_now_ns();
        cipc_deadline e = {start + 10 * NS_PER_MS + NS_PER_MS / 2};
        int64_t before = cipc_now_ns();
        int64_t left_ms = cipc_deadline_remaining_ms(e);
        int64_t after = cipc_now_ns();
        CHECK_INT(left_ms * NS_PER_MS, >=, e.at_ns - after);
        CHECK_INT((left_ms - 1) * NS_PER_MS, <, e.at_ns - before);
        CHECK_INT(left_ms, <=, 11);
    }
    /* One nanosecond left still counts as a whole millisecond. */
    cipc_deadline soon = {cipc_now_ns() + 500 * NS_PER_MS + 1};
    int64_t left = cipc_deadline_remaining_ms(soon);
    CHECK_INT(left, >=, 1);
    CHECK_INT(left, <=, 501);
}

static void test_expiry_after_wait(void)
{
    /* Wait for a 30 ms deadline by polling; it expires, and no earlier than 30 ms after a
     * timestamp taken before it was set. */
    int64_t t0 = cipc_now_ns();
    cipc_deadline d = cipc_deadline_in(30);
    int polls = 0;
    while (!cipc_deadline_expired(d)) {
        CHECK_INT(cipc_now_ns() - t0, <, 10000 * NS_PER_MS);
        int64_t r = cipc_deadline_remaining_ms(d);
        CHECK_INT(r, >=, 0);
        CHECK_INT(r, <=, 30);
        cipc_sleep_ms(1);
        polls++;
    }
    int64_t t1 = cipc_now_ns();
    CHECK_INT(t1 - t0, >=, 30 * NS_PER_MS);
    CHECK_INT(polls, >=, 1);
    CHECK_INT(cipc_deadline_remaining_ms(d), ==, 0);
    CHECK(cipc_deadline_expired(d));
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

static void test_sleep(void)
{
    /* Lower bound: never wakes early. */
    static const int64_t waits[] = {1, 5, 20, 60};
    for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++) {
        int64_t t0 = cipc_now_ns();
        cipc_sleep_ms(waits[i]);
        CHECK_INT(cipc_now_ns() - t0, >=, waits[i] * NS_PER_MS);
    }
    /* Zero and negative return at once (well under the 1 s we allow for a slow host). */
    int64_t t0 = cipc_now_ns();
    cipc_sleep_ms(0);
    cipc_sleep_ms(-5);
    CHECK_INT(cipc_now_ns() - t0, <, 1000 * NS_PER_MS);

    /* Signals that interrupt the sleep (no SA_RESTART) do not cut it short. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    CHECK_INT(sigaction(SIGALRM, &sa, NULL), ==, 0);
    struct itimerval it = {{0, 5000}, {0, 5000}};
    CHECK_INT(setitimer(ITIMER_REAL, &it, NULL), ==, 0);
    t0 = cipc_now_ns();
    cipc_sleep_ms(100);
    int64_t slept = cipc_now_ns() - t0;
    struct itimerval off = {{0, 0}, {0, 0}};
    CHECK_INT(setitimer(ITIMER_REAL, &off, NULL), ==, 0);
    CHECK_INT(slept, >=, 100 * NS_PER_MS);
    CHECK_INT(alarms, >=, 1);
}

int main(void)
{
    test_clocks();
    test_never();
    test_zero();
    test_positive();
    test_expiry_after_wait();
    test_sleep();
    return 0;
}
