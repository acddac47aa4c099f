/* The seed's Redis pub/sub snippet in C:
 *
 *     r.publish('channel', 'Hello, subscribers!')
 *     pubsub = r.pubsub()
 *     pubsub.subscribe('channel')
 *     for message in pubsub.listen():
 *         print(f"Received: {message['data']}")
 *
 * Usage: pubsub URL   (e.g. redis://127.0.0.1:6379, or the cipc broker's URL)
 *
 * Pub/sub is fire-and-forget: a message published before anyone subscribes is lost. So
 * a subscriber process is started first; once its SUBSCRIBE is confirmed it tells the
 * publisher (through a pipe), the publisher publishes, and the subscriber prints
 * "Received: Hello, subscribers!" and exits. Exits 0 on success. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cipc/bus.h"

static int subscriber(const char *url, int ready_fd)
{
    cipc_bus *r = NULL;
    int rc = cipc_bus_connect(url, NULL, &r);
    if (rc < 0) {
        fprintf(stderr, "subscriber: connect %s: %s\n", url, cipc_strerror(rc));
        return 1;
    }
    rc = cipc_bus_subscribe(r, "channel"); /* returns once the server confirmed */
    if (rc < 0) {
        fprintf(stderr, "subscribe: %s\n", cipc_bus_errmsg(r));
        cipc_bus_free(r);
        return 1;
    }
    (void)!write(ready_fd, "R", 1);
    close(ready_fd);
    cipc_bus_msg m;
    while ((rc = cipc_bus_listen(r, &m, 10000)) == 0) {
        if (m.type != CIPC_BUS_MESSAGE)
            continue; /* the subscribe confirmation */
        printf("Received: %.*s\n", (int)m.len, (const char *)m.data);
        fflush(stdout); /* the process ends with _exit() */
        break;
    }
    if (rc < 0)
        fprintf(stderr, "listen: %s (%s)\n", cipc_strerror(rc), cipc_bus_errmsg(r));
    cipc_bus_free(r);
    return rc < 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s redis://host:port\n", argv[0]);
        return 2;
    }
    int p[2];
    if (pipe(p) < 0)
        return 1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        close(p[0]);
        _exit(subscriber(argv[1], p[1]));
    }
    close(p[1]);
    char c;
    int ok = read(p[0], &c, 1) == 1; /* the subscriber is subscribed (or failed: EOF) */
    close(p[0]);
    int rc = 0;
    if (ok) {
        cipc_bus *r = NULL;
        rc = cipc_bus_connect(argv[1], NULL, &r);
        if (rc == 0) {
            rc = cipc_bus_publish(r, "channel", "Hello, subscribers!",
                                  strlen("Hello, subscribers!"));
            if (rc < 0)
                fprintf(stderr, "publish: %s\n", cipc_bus_errmsg(r));
            cipc_bus_free(r);
        } else {
            fprintf(stderr, "publisher: connect %s: %s\n", argv[1], cipc_strerror(rc));
        }
        if (rc < 0)
            kill(pid, SIGTERM);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return ok && rc >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
