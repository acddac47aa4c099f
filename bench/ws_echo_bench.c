/* ws_echo_bench -- the WebSocket echo server that cipc's WebSocket benchmarks and
 * conformance runs talk to, on the public API only.
 *
 *     ws_echo_bench --port N [--path P] [--workers W] [--no-compression]
 *                   [--tls CERT KEY]
 *     ws_echo_bench --version
 *
 * Every text and binary message is echoed unchanged, except the text message "BCAST n":
 * then n messages of 32 bytes go to every connected client (one frame encoded per worker
 * for each message, through the "all" topic every connection joins). permessage-deflate is
 * accepted unless --no-compression; messages up to 64 MiB are accepted, and up to 256 MiB
 * may be buffered per connection, so conformance suites with large messages pass. P
 * defaults to "/", W to 1. With --tls the server speaks wss on --port.
 *
 * Prints "PORT n" once listening; runs until SIGINT or SIGTERM. Exit status: 0 after a
 * clean shutdown, 1 if the server could not start, 2 for usage errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cipc/http_server.h"
#include "cipc/ws.h"

static cipc_server *srv;

static void on_open(cipc_ws *ws, cipc_http_req *req, void *ud)
{
    (void)req;
    (void)ud;
    cipc_ws_subscribe(ws, "all");
}

static void on_message(cipc_ws *ws, int type, const void *data, size_t len, void *ud)
{
    (void)ud;
    if (type == CIPC_WS_TEXT && len > 6 && len < 20 && !memcmp(data, "BCAST ", 6)) {
        char num[16];
        memcpy(num, (const char *)data + 6, len - 6);
        num[len - 6] = '\0';
        long n = strtol(num, NULL, 10);
        static const char payload[32] = "0123456789abcdef0123456789abcdef";
        for (long i = 0; i < n; i++)
            cipc_ws_publish(srv, "all", CIPC_WS_BINARY, payload, sizeof payload);
        return;
    }
    cipc_ws_send(ws, type, data, len);
}

static void on_ready(cipc_server *s, void *ud)
{
    (void)ud;
    printf("PORT %d\n", cipc_server_tls_port(s) ? cipc_server_tls_port(s) : cipc_server_port(s));
    fflush(stdout);
}

static void usage(void)
{
    fprintf(stderr, "usage: ws_echo_bench --port N [--path P] [--workers W] [--no-compression] "
                    "[--tls CERT KEY]\n");
}

int main(int argc, char **argv)
{
    cipc_server_opts so = {.port = -1, .workers = 1, .max_connections = 65536};
    cipc_ws_opts wo = {
        .max_message = 64u << 20,
        .max_buffered = 256u << 20,
    };
    const char *path = "/";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--version")) {
            printf("%s\n", cipc_version());
            return 0;
        } else if (!strcmp(a, "--no-compression")) {
            wo.no_compression = 1;
        } else if (!strcmp(a, "--tls") && i + 2 < argc) {
            so.tls_cert = argv[++i];
            so.tls_key = argv[++i];
        } else if (!strcmp(a, "--port") && i + 1 < argc) {
            so.port = atoi(argv[++i]);
        } else if (!strcmp(a, "--workers") && i + 1 < argc) {
            so.workers = atoi(argv[++i]);
        } else if (!strcmp(a, "--path") && i + 1 < argc) {
            path = argv[++i];
        } else {
            usage();
            return 2;
        }
    }
    if (so.port < 0 || so.port > 65535 || so.workers < 1) {
        usage();
        return 2;
    }
    if (so.tls_cert) {
        so.tls_port = so.port;
        so.port = 0;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    so.on_ready = on_ready;
    int rc = cipc_server_new(&so, &srv);
    if (rc < 0) {
        fprintf(stderr, "ws_echo_bench: %s\n", cipc_strerror(rc));
        return 1;
    }
    cipc_ws_handlers h = {.on_open = on_open, .on_message = on_message, .opts = &wo};
    if ((rc = cipc_route_ws(srv, path, &h, NULL)) < 0) {
        fprintf(stderr, "ws_echo_bench: cipc_route_ws: %s\n", cipc_strerror(rc));
        cipc_server_free(srv);
        return 1;
    }
    rc = cipc_server_run(srv);
    if (rc < 0)
        fprintf(stderr, "ws_echo_bench: %s\n", cipc_server_errmsg(srv));
    cipc_server_free(srv);
    return rc < 0 ? 1 : 0;
}
