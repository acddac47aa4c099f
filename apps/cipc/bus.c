/* cipc pub / sub / push / pop -- pub/sub and work queues from the shell, against the cipc
 * broker (or the hub, once it exists) or any Redis server, through cipc_bus.
 *
 *   cipc pub CHANNEL MESSAGE            publish; prints how many subscribers got it
 *   cipc sub NAME... [--count N] [--timeout S]
 *                                       subscribe (a NAME with * ? or [ is a pattern) and
 *                                       print each message's payload on a line; with more
 *                                       than one NAME, or a pattern, "channel: payload"
 *   cipc push QUEUE MESSAGE             push (FIFO); prints the queue's new length
 *   cipc pop QUEUE [--wait S]           pop the oldest item and print it; waits up to S
 *                                       seconds (default 0: do not wait)
 *
 * Every one takes --url URL (redis://, rediss://, unix://; default $CIPC_URL, else
 * redis://127.0.0.1:7379, the broker's and hub's default port) and --help.
 * Exit status: 0 on success; 1 when the server cannot be reached or answers an error, when
 * pop finds nothing, and when sub's --timeout passes with no message (the reason on
 * stderr); 2 for bad usage. `cipc sub` reports a reconnect ("messages may have been
 * missed") on stderr and goes on. */
#include <cipc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define DEFAULT_URL "redis://127.0.0.1:7379"

static void bus_usage(FILE *f)
{
    fprintf(f, "usage: cipc pub CHANNEL MESSAGE [--url URL]\n"
               "       cipc sub CHANNEL|PATTERN... [--count N] [--timeout S] [--url URL]\n"
               "       cipc push QUEUE MESSAGE [--url URL]\n"
               "       cipc pop QUEUE [--wait S] [--url URL]\n"
               "  --url URL   redis://[user:pass@]host:port[/db], rediss://..., unix:///path\n"
               "              (default: $CIPC_URL, else " DEFAULT_URL ")\n"
               "  --count N   sub: exit 0 after N messages\n"
               "  --timeout S sub: exit 1 if no message comes for S seconds\n"
               "  --wait S    pop: wait up to S seconds for an item (default 0)\n");
}

static int is_pattern(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

static int fail(cipc_bus *b, const char *what, int rc)
{
    fprintf(stderr, "cipc %s: %s\n", what, b && cipc_bus_errmsg(b)[0] ? cipc_bus_errmsg(b)
                                                                       : cipc_strerror(rc));
    return 1;
}


int cipc_cli_bus(int argc, char **argv)
{
    const char *cmd = argv[0], *url = getenv("CIPC_URL");
    const char *pos[64];
    int npos = 0;
    long count = -1;
    double timeout_s = -1, wait_s = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            bus_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--url") || !strcmp(a, "--count") || !strcmp(a, "--timeout") ||
            !strcmp(a, "--wait")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "cipc %s: %s needs a value\n", cmd, a);
                return 2;
            }
            const char *v = argv[++i];
            char *end = NULL;
            if (!strcmp(a, "--url")) {
                url = v;
                continue;
            }
            double d = strtod(v, &end);
            if (!*v || *end || d < 0) {
                fprintf(stderr, "cipc %s: %s takes a number >= 0, not '%s'\n", cmd, a, v);
                return 2;
            }
            if (!strcmp(a, "--count"))
                count = (long)d;
            else if (!strcmp(a, "--timeout"))
                timeout_s = d;
            else
                wait_s = d;
            continue;
        }
        if (npos == 64) {
            fprintf(stderr, "cipc %s: too many arguments\n", cmd);
            return 2;
        }
        pos[npos++] = a;
    }
    if (!url || !*url)
        url = DEFAULT_URL;
    int want = !strcmp(cmd, "pub") || !strcmp(cmd, "push") ? 2 : !strcmp(cmd, "pop") ? 1 : -1;
    if ((want > 0 && npos != want) || (want < 0 && npos < 1)) {
        bus_usage(stderr);
        return 2;
    }
    cipc_bus *b = NULL;
    int rc = cipc_bus_connect(url, NULL, &b);
    if (rc < 0) {
        fprintf(stderr, "cipc %s: %s: %s\n", cmd, url, cipc_strerror(rc));
        return 1;
    }
    int status = 0;
    if (!strcmp(cmd, "pub")) {
        rc = cipc_bus_publish(b, pos[0], pos[1], strlen(pos[1]));
        if (rc < 0)
            status = fail(b, cmd, rc);
        else
            printf("%d\n", rc);
    } else if (!strcmp(cmd, "push")) {
        rc = cipc_bus_push(b, pos[0], pos[1], strlen(pos[1]));
        if (rc < 0)
            status = fail(b, cmd, rc);
        else
            printf("%d\n", rc);
    } else if (!strcmp(cmd, "pop")) {
        void *data = NULL;
        size_t len = 0;
        rc = cipc_bus_pop(b, pos[0], (long)(wait_s * 1000), &data, &len);
        if (rc == CIPC_EAGAIN || rc == CIPC_ETIMEOUT) {
            fprintf(stderr, "cipc pop: %s is empty\n", pos[0]);
            status = 1;
        } else if (rc < 0) {
            status = fail(b, cmd, rc);
        } else {
            fwrite(data, 1, len, stdout);
            fputc('\n', stdout);
            free(data);
        }
    } else { /* sub */
        int prefix = npos > 1;
        for (int i = 0; i < npos && status == 0; i++) {
            prefix |= is_pattern(pos[i]);
            rc = is_pattern(pos[i]) ? cipc_bus_psubscribe(b, pos[i]) : cipc_bus_subscribe(b, pos[i]);
            if (rc < 0)
                status = fail(b, cmd, rc);
        }
        long got = 0;
        long wait_ms = timeout_s < 0 ? -1 : (long)(timeout_s * 1000);
        while (status == 0 && (count < 0 || got < count)) {
            cipc_bus_msg m;
            rc = cipc_bus_listen(b, &m, wait_ms);
            if (rc == CIPC_ETIMEOUT && wait_ms >= 0) {
                fprintf(stderr, "cipc sub: no message for %g s\n", timeout_s);
                status = 1;
                break;
            }
            if (rc < 0) {
                status = fail(b, cmd, rc);
                break;
            }
            if (m.type == CIPC_BUS_GAP) {
                fprintf(stderr, "cipc sub: reconnected; messages may have been missed\n");
                continue;
            }
            if (m.type != CIPC_BUS_MESSAGE && m.type != CIPC_BUS_PMESSAGE)
                continue;
            if (prefix)
                printf("%.*s: ", (int)m.channel_len, m.channel);
            fwrite(m.data, 1, m.len, stdout);
            fputc('\n', stdout);
            fflush(stdout);
            got++;
        }
    }
    cipc_bus_free(b);
    return status;
}
