/* examples/broker.c -- the embedded broker alone: a Redis-protocol server for pub/sub and
 * work queues (cipc/broker.h), until the hub (`cipc serve`) exists.
 *
 *     build/bin/broker --port N [--host ADDR] [--unix PATH] [--aof FILE]
 *                      [--appendfsync always|everysec|no] [--requirepass P]
 *
 * Prints "PORT n" once it listens (n is the port it got; --port 0 picks a free one), then
 * serves until SIGINT or SIGTERM, when it writes and fsyncs the AOF, closes its clients
 * and exits 0. Try it with redis-cli:
 *
 *     $ build/bin/broker --port 7379 --aof queues.aof --appendfsync always &
 *     $ redis-cli -p 7379 subscribe channel          (in one terminal)
 *     $ redis-cli -p 7379 publish channel "Hello, subscribers!"
 *     $ redis-cli -p 7379 rpush jobs job1 job2 && redis-cli -p 7379 blpop jobs 5
 *
 * Exit status: 0 after a signal, 1 when it cannot start (the reason on stderr), 2 for
 * bad arguments. */
#include <cipc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: broker --port N [--host ADDR] [--unix PATH] [--aof FILE]\n"
               "              [--appendfsync always|everysec|no] [--requirepass P]\n");
}

/* Waits for SIGINT/SIGTERM (blocked in every thread) and stops the loop: the only
 * cipc call that may be made from another thread. */
static void *signal_thread(void *arg)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig;
    sigwait(&set, &sig);
    cipc_loop_stop(arg);
    return NULL;
}

int main(int argc, char **argv)
{
    cipc_broker_opts o = {.size = sizeof o, .port = -2};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            usage(stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "--port")) {
            o.port = atoi(v);
        } else if (!strcmp(a, "--host")) {
            o.host = v;
        } else if (!strcmp(a, "--unix")) {
            o.unix_path = v;
        } else if (!strcmp(a, "--aof")) {
            o.aof_path = v;
        } else if (!strcmp(a, "--requirepass")) {
            o.requirepass = v;
        } else if (!strcmp(a, "--appendfsync")) {
            if (!strcmp(v, "always")) {
                o.appendfsync = CIPC_BROKER_FSYNC_ALWAYS;
            } else if (!strcmp(v, "everysec")) {
                o.appendfsync = CIPC_BROKER_FSYNC_EVERYSEC;
            } else if (!strcmp(v, "no")) {
                o.appendfsync = CIPC_BROKER_FSYNC_NO;
            } else {
                usage(stderr);
                return 2;
            }
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (o.port == -2) {
        if (!o.unix_path) {
            usage(stderr);
            return 2;
        }
        o.port = -1; /* a Unix socket only */
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    cipc_loop *loop = NULL;
    int rc = cipc_loop_new(NULL, &loop);
    cipc_broker *b = NULL;
    if (rc == 0)
        rc = cipc_broker_new(loop, &o, &b);
    if (rc < 0) {
        fprintf(stderr, "broker: %s\n", cipc_strerror(rc));
        cipc_loop_free(loop);
        return 1;
    }
    printf("PORT %d\n", cipc_broker_port(b));
    fflush(stdout);

    pthread_t th;
    pthread_create(&th, NULL, signal_thread, loop);
    cipc_loop_run(loop, CIPC_RUN_DEFAULT); /* until the signal thread stops it */
    pthread_join(th, NULL);

    cipc_broker_close(b);                  /* flush the AOF, close the clients */
    cipc_loop_run(loop, CIPC_RUN_DEFAULT); /* let the closes finish */
    cipc_broker_free(b);
    cipc_loop_free(loop);
    return 0;
}
