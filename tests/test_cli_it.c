/* The `cipc` command line against real peers: get/post/request print the body, send
 * headers, map HTTP statuses to exit codes with --check-status (0, 4, 5), print errors, and
 * reject bad usage with exit code 2; `cipc ws` exchanges messages with python3-websockets'
 * seed echo server. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cipc/http_client.h"
#include "peer.h"

static peer P;
static char cipc_bin[512];
static char log_path[64];

/* Run `cipc` with up to 8 arguments; returns the exit status and leaves the combined
 * output in `out`. */
static int run(char *out, size_t size, const char *a1, const char *a2, const char *a3,
               const char *a4, const char *a5, const char *a6)
{
    const char *argv[] = {cipc_bin, a1, a2, a3, a4, a5, a6, NULL};
    int st = peer_run(argv, log_path);
    FILE *f = fopen(log_path, "r");
    CHECK(f != NULL);
    size_t n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    fclose(f);
    fprintf(stderr, "cipc %s %s -> %d: %.300s\n", a1 ? a1 : "", a2 ? a2 : "", st, out);
    return st;
}

int main(void)
{
    const char *bin = getenv("CIPC_BIN_DIR");
    CHECK(bin != NULL);
    snprintf(cipc_bin, sizeof cipc_bin, "%s/cipc", bin);
    CHECK(access(cipc_bin, X_OK) == 0);
    snprintf(log_path, sizeof log_path, "/tmp/cipc_cli_%d.log", (int)getpid());
    CHECK(peer_start(&P) == 0);

    char out[8192], url[256];

    CHECK_INT(run(out, sizeof out, "version", NULL, NULL, NULL, NULL, NULL), ==, 0);
    CHECK(strncmp(out, "cipc ", 5) == 0);

    CHECK_INT(run(out, sizeof out, "get", peer_url(&P, "/users/7", url, sizeof url), NULL, NULL,
                  NULL, NULL),
              ==, 0);
    json_t *j = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);
    CHECK(j != NULL);
    CHECK_INT(json_integer_value(json_object_get(j, "id")), ==, 7);
    json_decref(j);

    /* post: a JSON body, Content-Type set, 201 is success. */
    CHECK_INT(run(out, sizeof out, "post", peer_url(&P, "/users", url, sizeof url),
                  "{\"name\": \"Ada\"}", NULL, NULL, NULL),
              ==, 0);
    CHECK(strstr(out, "\"Ada\"") != NULL && strstr(out, "\"id\"") != NULL);

    /* Headers reach the server; -i prints the status line. */
    CHECK_INT(run(out, sizeof out, "get", peer_url(&P, "/echo", url, sizeof url), "-H",
                  "X-Cli: yes", "-i", NULL),
              ==, 0);
    CHECK(strncmp(out, "200 OK\n", 7) == 0);
    CHECK(strstr(out, "\"x-cli\": \"yes\"") != NULL || strstr(out, "\"x-cli\":\"yes\"") != NULL);

    /* request with another method. */
    CHECK_INT(run(out, sizeof out, "request", "DELETE", peer_url(&P, "/echo", url, sizeof url),
                  NULL, NULL, NULL),
              ==, 0);
    CHECK(strstr(out, "DELETE") != NULL);

    /* 4xx and 5xx (httpie's rules): exit 0 for any response; with --check-status 4 and 5
     * with a one-line warning. (More in test_cli_it_http.c.) */
    CHECK_INT(run(out, sizeof out, "get", peer_url(&P, "/status/404", url, sizeof url), NULL,
                  NULL, NULL, NULL),
              ==, 0);
    CHECK_INT(run(out, sizeof out, "get", peer_url(&P, "/status/404", url, sizeof url),
                  "--check-status", NULL, NULL, NULL),
              ==, 4);
    CHECK(strstr(out, "cipc: HTTP 404 Not Found") != NULL);
    CHECK_INT(run(out, sizeof out, "get", peer_url(&P, "/status/503", url, sizeof url),
                  "--check-status", NULL, NULL, NULL),
              ==, 5);

    /* No response: exit 1 with the reason. Bad usage: exit 2. */
    CHECK_INT(run(out, sizeof out, "get", "http://127.0.0.1:1/", NULL, NULL, NULL, NULL), ==, 1);
    CHECK(strstr(out, "refused") != NULL);
    CHECK_INT(run(out, sizeof out, "get", "ht tp://bad", NULL, NULL, NULL, NULL), ==, 1);
    CHECK(strstr(out, "Invalid URL") != NULL);
    CHECK_INT(run(out, sizeof out, "frobnicate", NULL, NULL, NULL, NULL, NULL), ==, 2);
    CHECK_INT(run(out, sizeof out, "post", peer_url(&P, "/users", url, sizeof url), "{not json",
                  NULL, NULL, NULL),
              ==, 2);
    CHECK_INT(run(out, sizeof out, "get", url, "-H", "NoColon", NULL, NULL), ==, 2);

    /* cipc ws: each message out, each reply printed on a line. */
    peer W;
    char script[512];
    snprintf(script, sizeof script, "%s/tests/peers/ws_echo_server.py", peer_source_dir());
    const char *wargv[] = {PEER_PYTHON, script, "--port", "0", "--mode", "seed", NULL};
    CHECK_INT(peer_start_cmd(&W, wargv, 0), ==, 0);
    snprintf(url, sizeof url, "ws://localhost:%d/", W.port);
    CHECK_INT(run(out, sizeof out, "ws", url, "hello", "two words", NULL, NULL), ==, 0);
    CHECK_STR(out, "Echo: hello\nEcho: two words\n");
    peer_stop(&W);
    CHECK_INT(run(out, sizeof out, "ws", url, "hello", NULL, NULL, NULL), ==, 1);
    CHECK(strstr(out, "refused") != NULL);
    CHECK_INT(run(out, sizeof out, "ws", "http://127.0.0.1/", "x", NULL, NULL, NULL), ==, 2);

    unlink(log_path);
    peer_stop(&P);
    printf("test_cli_it: ok\n");
    return 0;
}
