/* Proves WebSocket interop both ways with the two foreign implementations people use:
 * Python's websockets (Debian's python3-websockets) and Node's ws (npm, from
 * tests/node/package-lock.json). Their clients against cipc's server: the seed exchange,
 * compression on and off, fragmented messages, 16 MiB messages, subprotocols, close codes
 * both ways, broadcasts, and a message over the limit closed with 1009. cipc's client
 * against their servers: the seed exchange, compression on and off, 16 MiB round trips,
 * subprotocols, and the close handshake. */
#include "cipc/ws.h"
#include "server_helper.h"

#define WAIT_MS 20000
#define NODE    "/usr/bin/node"

static const char *const protos[] = {"chat.v2", "chat.v1", NULL};

static void on_message(cipc_ws *ws, int type, const void *data, size_t len, void *ud)
{
    cipc_server *srv = *(cipc_server **)ud;
    if (type == CIPC_WS_TEXT && len > 6 && len < 20 && !memcmp(data, "BCAST ", 6)) {
        long n = strtol((const char *)data + 6, NULL, 10);
        for (long i = 0; i < n; i++) {
            /* "BCAST %010d" padded with '.' to 32 bytes, as the peers expect. */
            char msg[48];
            memset(msg, '.', sizeof msg);
            int k = snprintf(msg, sizeof msg, "BCAST %010ld", i % 10000000000L);
            msg[k] = '.';
            cipc_ws_publish(srv, "all", CIPC_WS_TEXT, msg, 32);
        }
        return;
    }
    if (type == CIPC_WS_TEXT && len == 13 && !memcmp(data, "Hello server!", 13)) {
        cipc_ws_send_text(ws, "Echo: Hello server!");
        return;
    }
    cipc_ws_send(ws, type, data, len);
}

static void on_open(cipc_ws *ws, cipc_http_req *req, void *ud)
{
    (void)req;
    (void)ud;
    cipc_ws_subscribe(ws, "all");
}

/* The cipc server every foreign client talks to: "/" echoes (the seed's greeting gets the
 * seed's reply), "/small" accepts messages up to 1000 bytes. */
static cipc_server *the_srv;

static int start_server(srv_thread *t)
{
    srvt_new(t, (cipc_server_opts){.workers = 2});
    the_srv = t->srv;
    static cipc_ws_opts big = {.max_message = 32u << 20, .subprotocols = protos};
    static cipc_ws_opts small = {.max_message = 1000};
    cipc_ws_handlers h = {.on_open = on_open, .on_message = on_message, .opts = &big};
    CHECK_INT(cipc_route_ws(t->srv, "/", &h, &the_srv), ==, 0);
    h.opts = &small;
    CHECK_INT(cipc_route_ws(t->srv, "/small", &h, &the_srv), ==, 0);
    return srvt_start(t);
}

/* Run a command, capture stdout into out (NUL-terminated), require exit status 0 and that
 * the output contains `want`. */
static void run_expect(const char *const *argv, const char *want)
{
    char log[] = "/tmp/cipc-ws-interop-XXXXXX";
    int fd = mkstemp(log);
    CHECK(fd >= 0);
    close(fd);
    int st = peer_run(argv, log);
    char out[4096] = "";
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
    out[n] = '\0';
    if (f)
        fclose(f);
    unlink(log);
    if (st != 0 || !strstr(out, want)) {
        fprintf(stderr, "command:");
        for (int i = 0; argv[i]; i++)
            fprintf(stderr, " %s", argv[i]);
        fprintf(stderr, "\nstatus %d, output:\n%s\nexpected to contain: %s\n", st, out, want);
    }
    CHECK_INT(st, ==, 0);
    CHECK(strstr(out, want) != NULL);
}

static void foreign_clients_against_cipc(const char *prog, const char *script)
{
    srv_thread t;
    int port = start_server(&t);
    char url[128], small[128], path[512];
    snprintf(url, sizeof url, "ws://localhost:%d/", port);
    snprintf(small, sizeof small, "ws://127.0.0.1:%d/small", port);
    snprintf(path, sizeof path, "%s/%s", peer_source_dir(), script);
    const char *to = "60";
    {
        const char *a[] = {prog, path, url, NULL};
        run_expect(a, "Received: Echo: Hello server!");
    }
    const char *comp[] = {"none", "deflate"};
    for (int i = 0; i < 2; i++) {
        const char *a[] = {prog, path, url, "--compression", comp[i], "--send-size", "1000",
                           "--count", "50", "--timeout", to, NULL};
        run_expect(a, "OK 50");
        const char *b[] = {prog, path, url, "--compression", comp[i], "--send-size", "16777216",
                           "--count", "2", "--binary", "--timeout", to, NULL};
        run_expect(b, "OK 2");
        const char *c[] = {prog, path, url, "--compression", comp[i], "--send-size", "100000",
                           "--count", "3", "--fragment", "7000", "--timeout", to, NULL};
        run_expect(c, "OK 3");
        const char *d[] = {prog, path, url, "--compression", comp[i], "--send-size", "65536",
                           "--count", "3", "--binary", "--fragment", "1000", "--timeout", to, NULL};
        run_expect(d, "OK 3");
    }
    {
        const char *a[] = {prog, path, url, "--subprotocol", "chat.v1", "--subprotocol", "chat.v2",
                           NULL};
        run_expect(a, "SUBPROTOCOL chat.v2");
        /* No common subprotocol: the server answers without one (Node's ws then fails the
         * connection by its own rule, so only Python's client checks this). */
        const char *b[] = {prog, path, url, "--subprotocol", "other", NULL};
        if (strcmp(prog, PEER_PYTHON) == 0)
            run_expect(b, "SUBPROTOCOL none");
    }
    {
        const char *a[] = {prog, path, url, "--close-code", "4001", "--close-reason", "done", NULL};
        run_expect(a, "CLOSED 4001");
        const char *b[] = {prog, path, url, "--bcast", "100", NULL};
        run_expect(b, "OK bcast 100");
        const char *c[] = {prog, path, small, "--send-size", "2000", "--count", "1",
                           "--expect-close", "1009", NULL};
        run_expect(c, "CLOSED 1009");
        const char *d[] = {prog, path, small, "--compression", "deflate", "--send-size",
                           "200000", "--count", "1", "--binary", "--expect-close", "1009", NULL};
        run_expect(d, "CLOSED 1009"); /* compresses to little: the inflated size decides */
    }
    srvt_stop(&t, WAIT_MS);
    srvt_free(&t);
}

static void test_python_clients(void)
{
    foreign_clients_against_cipc(PEER_PYTHON, "tests/peers/ws_client.py");
}

static void test_node_clients(void)
{
    foreign_clients_against_cipc(NODE, "tests/node/ws_client.js");
}

/* --- cipc's client against foreign servers ------------------------------------------- */

static void roundtrip(cipc_wsc *c, int type, size_t n)
{
    char *p = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        p[i] = type == CIPC_WS_TEXT ? (char)(33 + i % 94) : (char)(i * 31 + 7);
    CHECK_INT(cipc_wsc_send(c, type, p, n), ==, 0);
    cipc_ws_msg m;
    CHECK_INT(cipc_wsc_recv(c, &m, WAIT_MS), ==, 0);
    CHECK_INT(m.type, ==, type);
    CHECK_INT(m.len, ==, n);
    CHECK(memcmp(m.data, p, n) == 0);
    free(p);
}

static void cipc_client_against(const char *prog, const char *script)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", peer_source_dir(), script);
    const char *comp[] = {"none", "deflate"};
    for (int i = 0; i < 2; i++) {
        /* The seed's server. */
        peer p;
        const char *a[] = {prog, path, "--port", "0", "--mode", "seed", "--compression", comp[i],
                           NULL};
        CHECK_INT(peer_start_cmd(&p, a, 0), ==, 0);
        char url[128];
        snprintf(url, sizeof url, "ws://localhost:%d", p.port);
        cipc_wsc *c = NULL;
        int rc = cipc_wsc_connect(url, NULL, NULL, &c);
        if (rc)
            fprintf(stderr, "%s\n", cipc_wsc_errmsg(c));
        CHECK_INT(rc, ==, 0);
        CHECK_INT(cipc_wsc_send_text(c, "Hello server!"), ==, 0);
        cipc_ws_msg m;
        CHECK_INT(cipc_wsc_recv(c, &m, WAIT_MS), ==, 0);
        CHECK_MEM(m.data, m.len, "Echo: Hello server!");
        CHECK_INT(cipc_wsc_close(c, 1000, "bye"), ==, 0);
        CHECK_INT(cipc_wsc_close_code(c), ==, 1000);
        cipc_wsc_free(c);
        peer_stop(&p);

        /* The echo server: large messages, compression as the server allows, subprotocols. */
        const char *b[] = {prog, path, "--port", "0", "--mode", "echo", "--compression", comp[i],
                           "--subprotocols", "chat.v1,chat.v2", NULL};
        CHECK_INT(peer_start_cmd(&p, b, 0), ==, 0);
        snprintf(url, sizeof url, "ws://127.0.0.1:%d/echo", p.port);
        static const char *const offer[] = {"chat.v2", NULL};
        cipc_ws_opts o = {.subprotocols = offer, .max_message = 32u << 20};
        c = NULL;
        rc = cipc_wsc_connect(url, NULL, &o, &c);
        if (rc)
            fprintf(stderr, "%s\n", cipc_wsc_errmsg(c));
        CHECK_INT(rc, ==, 0);
        CHECK_STR(cipc_wsc_subprotocol(c), "chat.v2");
        roundtrip(c, CIPC_WS_TEXT, 0);
        roundtrip(c, CIPC_WS_TEXT, 125);
        roundtrip(c, CIPC_WS_BINARY, 126);
        roundtrip(c, CIPC_WS_BINARY, 65536);
        roundtrip(c, CIPC_WS_BINARY, 16u << 20);
        roundtrip(c, CIPC_WS_TEXT, 1u << 20);
        CHECK_INT(cipc_wsc_ping(c, "p", 1), ==, 0);
        roundtrip(c, CIPC_WS_TEXT, 10);
        CHECK_INT(cipc_wsc_close(c, 4002, "again"), ==, 0);
        CHECK_INT(cipc_wsc_close_code(c), ==, 4002);
        cipc_wsc_free(c);
        peer_stop(&p);
    }
}

static void test_cipc_client_python_server(void)
{
    cipc_client_against(PEER_PYTHON, "tests/peers/ws_echo_server.py");
}

static void test_cipc_client_node_server(void)
{
    cipc_client_against(NODE, "tests/node/ws_echo_server.js");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN(test_python_clients);
    RUN(test_node_clients);
    RUN(test_cipc_client_python_server);
    RUN(test_cipc_client_node_server);
    return 0;
}
