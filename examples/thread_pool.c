/* examples/thread_pool.c -- threads for I/O-bound tasks: four blocking waits overlap on a
 * cipc_tpool, so together they take as long as one.
 *
 * The seed's advice, "use threading for I/O-bound tasks", in the manner of
 *
 *     def fetch(i):
 *         time.sleep(0.2)                     # stands in for a network call
 *         return f"response {i}"
 *
 *     with ThreadPoolExecutor(max_workers=4) as pool:
 *         futures = [pool.submit(fetch, i) for i in range(4)]
 *         for f in futures:
 *             print(f.result())
 *
 * Each task blocks for 200 ms in poll() on a pipe nobody writes to (a read from a slow
 * peer that times out). Prints the four results in submission order, then a line such as
 * "4 I/O-bound tasks took 0.2 s on 4 threads". Exits 0 when every task succeeded. Takes
 * no arguments (any are ignored). */
#include <cipc.h>
#include <poll.h>
#include <stdio.h>
#include <unistd.h>

#define TASKS 4

struct fetch {
    int id;
    int fd;          /* the read end of a pipe that stays silent */
    char result[32]; /* written by the task */
};

/* Runs on a pool thread: wait up to 200 ms for data, like a blocking network read. */
static int fetch(void *arg)
{
    struct fetch *f = arg;
    struct pollfd p = {.fd = f->fd, .events = POLLIN};
    if (poll(&p, 1, 200) < 0)
        return -1;
    snprintf(f->result, sizeof f->result, "response %d", f->id);
    return 0;
}

int main(void)
{
    int fds[2];
    if (pipe(fds) < 0) {
        perror("pipe");
        return 1;
    }
    cipc_tpool *pool = NULL;
    int rc = cipc_tpool_new(&(cipc_tpool_opts){.threads = TASKS}, &pool);
    if (rc < 0) {
        fprintf(stderr, "tpool: %s\n", cipc_strerror(rc));
        return 1;
    }
    struct fetch jobs[TASKS];
    cipc_tfuture *futures[TASKS] = {NULL};
    int64_t start = cipc_now_ns();
    int failed = 0;
    for (int i = 0; i < TASKS; i++) {
        jobs[i] = (struct fetch){.id = i, .fd = fds[0]};
        rc = cipc_tpool_submit(pool, fetch, &jobs[i], NULL, NULL, &futures[i]);
        if (rc < 0) {
            fprintf(stderr, "submit %d: %s\n", i, cipc_strerror(rc));
            failed = 1;
        }
    }
    for (int i = 0; i < TASKS; i++) { /* results in submission order */
        if (!futures[i])
            continue;
        cipc_tfuture_wait(futures[i], -1);
        rc = cipc_tfuture_result(futures[i]);
        if (rc == 0) {
            printf("%s\n", jobs[i].result);
        } else {
            fprintf(stderr, "task %d: %s\n", i, cipc_strerror(rc));
            failed = 1;
        }
        cipc_tfuture_free(futures[i]);
    }
    double secs = (double)(cipc_now_ns() - start) / 1e9;
    printf("%d I/O-bound tasks took %.1f s on %d threads\n", TASKS, secs, cipc_tpool_threads(pool));
    cipc_tpool_free(pool);
    close(fds[0]);
    close(fds[1]);
    return failed;
}
