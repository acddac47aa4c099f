/* http_bench_server -- the HTTP server that cipc's server benchmarks and conformance runs
 * talk to, on the public cipc_server API only.
 *
 *     http_bench_server --port N [--workers W] [--host H] [--max-connections C]
 *                       [--tls CERT KEY]
 *     http_bench_server --version        (prints cipc_version() and exits)
 *
 * Routes:
 *     GET  /      200 text/plain        the 13 bytes "Hello, World!"
 *     GET  /json  200 application/json  {"message":"Hello, World!"} (27 bytes)
 *     POST /echo  200, the request body back with the request's Content-Type (none if
 *                 the request had none)
 * Anything else gets the server's own answers (404, 405 with Allow, ...).
 *
 * The bodies are static: a handler does no allocation of its own (cipc_http_respond()
 * copies the body into the connection's output). W defaults to 1 worker thread, so a
 * benchmark names its worker count; the host defaults to 127.0.0.1. C is the server's
 * max_connections per worker (default 65536, so an idle-connection measurement with
 * 10,000 connections is not cut off at the library's default of 10,000).
 * RLIMIT_NOFILE is raised to its hard limit at start.
 *
 * --tls CERT KEY: serve HTTPS on --port with that certificate and key (plain HTTP then
 * listens on an ephemeral port; both are printed).
 *
 * Runs until SIGINT or SIGTERM (cipc_server_run() handles both and drains gracefully).
 * Exit status: 0 after a clean shutdown, 1 if the server could not start, 2 for usage
 * errors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cipc/error.h"
#include "cipc/http_server.h"

#define DEFAULT_WORKERS         1
#define DEFAULT_MAX_CONNECTIONS 65536

static const char hello_body[] = "Hello, World!";
static const char json_body[] = "{\"message\":\"Hello, World!\"}";

static void get_root(cipc_http_req *req, void *ud)
{
    cipc_http_respond(req, 200, "text/plain", hello_body, sizeof(hello_body) - 1);
}

static void get_json(cipc_http_req *req, void *ud)
{
    cipc_http_respond(req, 200, "application/json", json_body, sizeof(json_body) - 1);
}

static void post_echo(cipc_http_req *req, void *ud)
{
    size_t len = 0;
    const void *body = cipc_http_body(req, &len);
    cipc_http_respond(req, 200, cipc_http_header(req, "Content-Type"), body, len);
}

static void usage(void)
{
    fprintf(stderr, "usage: http_bench_server --port N [--workers W] [--host H] "
                    "[--max-connections C] [--tls CERT KEY]\n"
                    "       http_bench_server --version\n"
                    "Prints \"PORT n\" once listening (--port 0 picks a free port). With --tls,\n"
                    "HTTPS is served on --port (\"TLS_PORT n\") and plain HTTP on a free port.\n");
}

/* Parse a decimal option value in [min, max]; returns 0 or -1 with a message on stderr. */
static int parse_int(const char *name, const char *s, long min, long max, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "http_bench_server: %s wants an integer in %ld..%ld, got '%s'\n", name, min,
                max, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* Raise the soft RLIMIT_NOFILE to the hard limit (idle-connection runs hold 10,000+). */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            perror("http_bench_server: setrlimit(RLIMIT_NOFILE)");
        }
    }
}

/* Print the ports once listening, so scripts can use --port 0. */
static void on_ready(cipc_server *srv, void *ud)
{
    (void)ud;
    printf("PORT %d\n", cipc_server_port(srv));
    if (cipc_server_tls_port(srv))
        printf("TLS_PORT %d\n", cipc_server_tls_port(srv));
    fflush(stdout);
}

int main(int argc, char **argv)
{
    cipc_server_opts opts = {
        .size = sizeof(cipc_server_opts),
        .host = "127.0.0.1",
        .port = -1,
        .workers = DEFAULT_WORKERS,
        .max_connections = DEFAULT_MAX_CONNECTIONS,
    };
    int tls = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--version") == 0) {
            printf("%s\n", cipc_version());
            return 0;
        } else if (strcmp(a, "--tls") == 0) {
            if (i + 2 >= argc) {
                usage();
                return 2;
            }
            tls = 1;
            opts.tls_cert = argv[i + 1];
            opts.tls_key = argv[i + 2];
            i += 2;
            continue;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage();
            return 0;
        }
        if (v == NULL) {
            usage();
            return 2;
        }
        if (strcmp(a, "--port") == 0) {
            if (parse_int(a, v, 0, 65535, &opts.port) != 0) {
                return 2;
            }
        } else if (strcmp(a, "--workers") == 0) {
            if (parse_int(a, v, 1, 1024, &opts.workers) != 0) {
                return 2;
            }
        } else if (strcmp(a, "--max-connections") == 0) {
            if (parse_int(a, v, 1, 10000000, &opts.max_connections) != 0) {
                return 2;
            }
        } else if (strcmp(a, "--host") == 0) {
            opts.host = v;
        } else {
            fprintf(stderr, "http_bench_server: unknown option '%s'\n", a);
            usage();
            return 2;
        }
        i++;
    }
    if (opts.port < 0) {
        fprintf(stderr, "http_bench_server: --port is required\n");
        usage();
        return 2;
    }

    if (tls) {
        /* HTTPS on --port; plain HTTP moves to an ephemeral port. */
        opts.tls_port = opts.port;
        opts.port = 0;
    }
    opts.on_ready = on_ready;
    raise_nofile();

    cipc_server *srv = NULL;
    int rc = cipc_server_new(&opts, &srv);
    if (rc != 0) {
        fprintf(stderr, "http_bench_server: cipc_server_new: %s\n", cipc_strerror(rc));
        return 1;
    }
    if ((rc = cipc_route(srv, "GET", "/", get_root, NULL)) != 0 ||
        (rc = cipc_route(srv, "GET", "/json", get_json, NULL)) != 0 ||
        (rc = cipc_route(srv, "POST", "/echo", post_echo, NULL)) != 0) {
        fprintf(stderr, "http_bench_server: cipc_route: %s\n", cipc_strerror(rc));
        cipc_server_free(srv);
        return 1;
    }
    rc = cipc_server_run(srv);
    if (rc != 0) {
        fprintf(stderr, "http_bench_server: %s (%s)\n", cipc_server_errmsg(srv), cipc_strerror(rc));
        cipc_server_free(srv);
        return 1;
    }
    cipc_server_free(srv);
    return 0;
}
