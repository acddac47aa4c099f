/* A reliable work queue: one producer, four consumer processes taking jobs with
 * cipc_bus_pop_reliable() and acknowledging them with cipc_bus_ack(). Consumer 0 is
 * killed (SIGKILL) while it holds a job; after the visibility timeout (1 s) the other
 * consumers' automatic reaping puts the job back in the queue and one of them does it.
 * Every job is done at least once; the program checks that and prints a summary.
 *
 * Usage: work_queue URL   (e.g. redis://127.0.0.1:6379, or the cipc broker's URL)
 * Exits 0 when every job was processed at least once. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cipc/bus.h"

#define JOBS      20
#define CONSUMERS 4

static char queue[64], done[80];

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A consumer: take jobs until a "stop" job. Consumer 0 reports its first job through
 * `held_fd` and then hangs, to be killed while holding it. */
static int consumer(const char *url, int id, int held_fd)
{
    cipc_bus *b = NULL;
    cipc_bus_opts o = {.size = sizeof o, .visibility_ms = 1000};
    int rc = cipc_bus_connect(url, &o, &b);
    if (rc < 0) {
        fprintf(stderr, "consumer %d: connect: %s\n", id, cipc_strerror(rc));
        return 1;
    }
    for (;;) {
        void *job;
        size_t len;
        rc = cipc_bus_pop_reliable(b, queue, 500, &job, &len);
        if (rc == CIPC_ETIMEOUT)
            continue;
        if (rc < 0) {
            fprintf(stderr, "consumer %d: pop: %s\n", id, cipc_bus_errmsg(b));
            break;
        }
        if (id == 0) {
            (void)!write(held_fd, job, len); /* "I hold this one" */
            for (;;)
                pause(); /* killed here, job unacknowledged */
        }
        int stop = len == 4 && memcmp(job, "stop", 4) == 0;
        if (!stop) {
            msleep(20); /* the work */
            rc = cipc_bus_push(b, done, job, len);
        }
        if (rc >= 0)
            rc = cipc_bus_ack(b, queue, job, len);
        free(job);
        if (rc < 0 || stop)
            break;
    }
    cipc_bus_free(b);
    return rc < 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s redis://host:port\n", argv[0]);
        return 2;
    }
    snprintf(queue, sizeof queue, "jobs-%ld", (long)getpid());
    snprintf(done, sizeof done, "%s:done", queue);
    cipc_bus *b = NULL;
    int rc = cipc_bus_connect(argv[1], NULL, &b);
    if (rc < 0) {
        fprintf(stderr, "connect %s: %s\n", argv[1], cipc_strerror(rc));
        return 1;
    }
    for (int i = 0; i < JOBS; i++) {
        char job[32];
        int n = snprintf(job, sizeof job, "job-%d", i);
        if ((rc = cipc_bus_push(b, queue, job, (size_t)n)) < 0) {
            fprintf(stderr, "push: %s\n", cipc_bus_errmsg(b));
            return 1;
        }
    }
    int held[2];
    if (pipe(held) < 0)
        return 1;
    pid_t pids[CONSUMERS];
    fflush(stdout);
    for (int i = 0; i < CONSUMERS; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            close(held[0]);
            _exit(consumer(argv[1], i, held[1]));
        }
    }
    close(held[1]);
    char job[64] = "";
    ssize_t n = read(held[0], job, sizeof job - 1);
    close(held[0]);
    if (n > 0) {
        job[n] = '\0';
        kill(pids[0], SIGKILL);
        waitpid(pids[0], NULL, 0);
        printf("consumer 0 killed while holding %s\n", job);
    }

    /* Collect the results until every job was seen, for at most 30 s. */
    int seen[JOBS] = {0}, distinct = 0, deliveries = 0;
    time_t end = time(NULL) + 30;
    while (distinct < JOBS && time(NULL) < end) {
        void *d;
        size_t len;
        rc = cipc_bus_pop(b, done, 500, &d, &len);
        if (rc == CIPC_ETIMEOUT)
            continue;
        if (rc < 0) {
            fprintf(stderr, "pop results: %s\n", cipc_bus_errmsg(b));
            break;
        }
        int k = -1;
        if (sscanf(d, "job-%d", &k) == 1 && k >= 0 && k < JOBS) {
            deliveries++;
            if (!seen[k]++)
                distinct++;
        }
        free(d);
    }
    /* Stop the live consumers: one "stop" job each. */
    for (int i = 1; i < CONSUMERS; i++)
        cipc_bus_push(b, queue, "stop", 4);
    int failed = 0;
    for (int i = 1; i < CONSUMERS; i++) {
        int st = 0;
        waitpid(pids[i], &st, 0);
        failed += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    cipc_bus_free(b);
    if (distinct == JOBS && !failed) {
        printf("all %d jobs processed at least once (%d deliveries, %d consumers, 1 killed)\n",
               JOBS, deliveries, CONSUMERS);
        return 0;
    }
    printf("only %d of %d jobs processed; %d consumer(s) failed\n", distinct, JOBS, failed);
    return 1;
}
