/* tests/test_cli_it_ws.c -- `cipc ws` against a cipc WebSocket server run in this process:
 * pipe mode (lines of stdin out, replies printed, exit 0 on --count or after --wait), the
 * MESSAGE-argument form, the exit status and the one line on stderr when the server closes
 * with another code than 1000/1001, --binary (base64), -H reaching the handshake, a refused
 * connection, a handshake that never completes (--timeout), bad usage, --help, and the
 * interactive mode on a pseudo-terminal: a message the server pushes unprompted is printed
 * while nothing has been typed, a typed line is sent, Ctrl-D closes with 1000. */
#include "server_helper.h"

#include "cli_helper.h"

#include "cipc/ws.h"

#define WAIT_MS 10000

static struct {
    pthread_mutex_t mu;
    uint64_t last_id;
    int last_close;
} S = {PTHREAD_MUTEX_INITIALIZER, 0, 0};
static latch open_l = LATCH_INIT, close_l = LATCH_INIT;
static cli_out R;

static void s_open(cipc_ws *ws, cipc_http_req *req, void *ud)
{
    (void)req;
    (void)ud;
    pthread_mutex_lock(&S.mu);
    S.last_id = cipc_ws_id(ws);
    pthread_mutex_unlock(&S.mu);
    latch_add(&open_l);
}

/* "close-me": close with 4001; "bye": close with 1000; "bin": a binary reply; else
 * "echo: <text>". */
static void s_message(cipc_ws *ws, int type, const void *data, size_t len, void *ud)
{
    (void)type;
    (void)ud;
    if (len == 8 && !memcmp(data, "close-me", 8)) {
        cipc_ws_close(ws, 4001, "told to");
    } else if (len == 3 && !memcmp(data, "bye", 3)) {
        cipc_ws_close(ws, 1000, "bye");
    } else if (len == 3 && !memcmp(data, "bin", 3)) {
        cipc_ws_send(ws, CIPC_WS_BINARY, "\x00\x01\x02\xff", 4);
    } else {
        char buf[512];
        int n = snprintf(buf, sizeof buf, "echo: %.*s", (int)(len > 400 ? 400 : len),
                         (const char *)data);
        cipc_ws_send(ws, CIPC_WS_TEXT, buf, (size_t)n);
    }
}

static void s_close(cipc_ws *ws, int code, const char *reason, size_t len, void *ud)
{
    (void)ws;
    (void)reason;
    (void)len;
    (void)ud;
    pthread_mutex_lock(&S.mu);
    S.last_close = code;
    pthread_mutex_unlock(&S.mu);
    latch_add(&close_l);
}

static int s_handshake(cipc_http_req *req, void *ud)
{
    (void)ud;
    const char *auth = cipc_http_header(req, "Authorization");
    return auth && !strcmp(auth, "Bearer t0k") ? 0 : 401;
}

static int last_close(void)
{
    pthread_mutex_lock(&S.mu);
    int c = S.last_close;
    pthread_mutex_unlock(&S.mu);
    return c;
}

/* Wait until the server has seen `n` closes in all; returns the last code. */
static int wait_closes(int n)
{
    CHECK_INT(latch_wait(&close_l, n, WAIT_MS), >=, n);
    return last_close();
}

int main(void)
{
    cli_init();
    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 1, .shutdown_timeout_ms = 3000});
    cipc_ws_handlers h = {.on_open = s_open, .on_message = s_message, .on_close = s_close};
    CHECK_INT(cipc_route_ws(t.srv, "/ws", &h, NULL), ==, 0);
    h.on_handshake = s_handshake;
    CHECK_INT(cipc_route_ws(t.srv, "/private", &h, NULL), ==, 0);
    int port = srvt_start(&t);
    char url[128], priv[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/ws", port);
    snprintf(priv, sizeof priv, "ws://127.0.0.1:%d/private", port);
    int closes = 0;

    /* --help. */
    CHECK_INT(cli_run(&R, NULL, WAIT_MS, "ws", "--help", NULL), ==, 0);
    CHECK(strstr(R.out, "usage: cipc ws URL") != NULL && strstr(R.out, "--wait MS") != NULL);

    /* Pipe mode with --count: lines out, replies in order, exit 0 at once, close 1000. */
    CHECK_INT(cli_run(&R, "one\ntwo words\r\n\nlast", WAIT_MS, "ws", url, "--count", "4", NULL), ==,
              0);
    CHECK_STR(R.out, "echo: one\necho: two words\necho: \necho: last\n");
    CHECK_STR(R.err, "");
    CHECK_INT(wait_closes(++closes), ==, 1000);

    /* Pipe mode without --count: exit 0 once no message came for --wait ms. */
    CHECK_INT(cli_run(&R, "a\n", WAIT_MS, "ws", url, "--wait", "300", NULL), ==, 0);
    CHECK_STR(R.out, "echo: a\n");
    CHECK_INT(R.ms, >=, 300);
    CHECK_INT(wait_closes(++closes), ==, 1000);

    /* MESSAGE arguments: a reply each (stdin is not read). */
    CHECK_INT(cli_run(&R, "ignored\n", WAIT_MS, "ws", url, "hello", "two words", NULL), ==, 0);
    CHECK_STR(R.out, "echo: hello\necho: two words\n");
    CHECK_INT(wait_closes(++closes), ==, 1000);

    /* The server closes with 4001: exit 1, the code and reason on one line. */
    CHECK_INT(cli_run(&R, "close-me\n", WAIT_MS, "ws", url, NULL), ==, 1);
    CHECK_INT(cli_lines(R.err), ==, 1);
    CHECK(strstr(R.err, "4001") != NULL && strstr(R.err, "told to") != NULL);
    CHECK_INT(wait_closes(++closes), ==, 4001);
    /* ...with 1000: exit 0. */
    CHECK_INT(cli_run(&R, "bye\n", WAIT_MS, "ws", url, NULL), ==, 0);
    CHECK_STR(R.err, "");
    CHECK_INT(wait_closes(++closes), ==, 1000);

    /* Binary messages: raw when piped, base64 with --binary. */
    CHECK_INT(cli_run(&R, "bin\n", WAIT_MS, "ws", url, "--count=1", NULL), ==, 0);
    CHECK_INT(R.out_len, ==, 5);
    CHECK(memcmp(R.out, "\x00\x01\x02\xff\n", 5) == 0);
    CHECK_INT(wait_closes(++closes), ==, 1000);
    CHECK_INT(cli_run(&R, "bin\n", WAIT_MS, "ws", url, "--count", "1", "--binary", NULL), ==, 0);
    CHECK_STR(R.out, "AAEC/w==\n");
    CHECK_INT(wait_closes(++closes), ==, 1000);

    /* -H reaches the handshake; without it the server's 401 is one line, exit 1. */
    CHECK_INT(cli_run(&R, "x\n", WAIT_MS, "ws", priv, "--count", "1", NULL), ==, 1);
    CHECK_INT(cli_lines(R.err), ==, 1);
    CHECK(strstr(R.err, "401") != NULL);
    CHECK_INT(cli_run(&R, "x\n", WAIT_MS, "ws", priv, "--count", "1", "-H",
                      "Authorization: Bearer t0k", NULL),
              ==, 0);
    CHECK_STR(R.out, "echo: x\n");
    /* (the refused handshake never opened: no close on the server) */
    CHECK_INT(wait_closes(++closes), ==, 1000);

    /* URL shorthand: ":PORT/ws" is ws://localhost:PORT/ws. */
    char short_url[64];
    snprintf(short_url, sizeof short_url, ":%d/ws", port);
    CHECK_INT(cli_run(&R, NULL, WAIT_MS, "ws", short_url, "hi", NULL), ==, 0);
    CHECK_STR(R.out, "echo: hi\n");
    CHECK_INT(wait_closes(++closes), ==, 1000);

    /* Refused: exit 1, one line. */
    CHECK_INT(cli_run(&R, "x\n", WAIT_MS, "ws", "ws://127.0.0.1:1/", NULL), ==, 1);
    CHECK_INT(cli_lines(R.err), ==, 1);
    CHECK(strstr(R.err, "refused") != NULL);
    /* A listener that never answers the handshake: --timeout (seconds) bounds the wait. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 8) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
    char silent[64];
    snprintf(silent, sizeof silent, "ws://127.0.0.1:%d/", ntohs(sa.sin_port));
    CHECK_INT(cli_run(&R, "x\n", 15000, "ws", silent, "--timeout", "0.5", NULL), ==, 1);
    CHECK_INT(R.ms, <, 5000);
    CHECK_INT(cli_lines(R.err), ==, 1);
    close(fd);

    /* Bad usage: exit 2. */
    CHECK_INT(cli_run(&R, NULL, WAIT_MS, "ws", NULL), ==, 2);
    CHECK(strstr(R.err, "usage:") != NULL);
    CHECK_INT(cli_run(&R, NULL, WAIT_MS, "ws", "http://127.0.0.1/", "x", NULL), ==, 2);
    CHECK_INT(cli_lines(R.err), ==, 1);
    CHECK_INT(cli_run(&R, NULL, WAIT_MS, "ws", url, "--count", "many", NULL), ==, 2);
    CHECK_INT(cli_lines(R.err), ==, 1);
    CHECK_INT(cli_run(&R, NULL, WAIT_MS, "ws", url, "--loud", NULL), ==, 2);
    CHECK_INT(cli_run(&R, NULL, WAIT_MS, "ws", url, "-H", "nocolon", NULL), ==, 2);

    /* Interactive, on a terminal: a pushed message shows while nothing is typed. */
    int opens = latch_count(&open_l);
    cli_pty p;
    const char *args[] = {"ws", url, NULL};
    cli_pty_start(&p, args);
    CHECK_INT(latch_wait(&open_l, opens + 1, WAIT_MS), >=, opens + 1);
    CHECK(cli_pty_wait_for(&p, "Ctrl-D to close", WAIT_MS)); /* the hint on stderr */
    pthread_mutex_lock(&S.mu);
    uint64_t id = S.last_id;
    pthread_mutex_unlock(&S.mu);
    CHECK_INT(cipc_ws_send_to(t.srv, id, CIPC_WS_TEXT, "pushed by the server", 20), ==, 0);
    CHECK(cli_pty_wait_for(&p, "pushed by the server", WAIT_MS));
    CHECK(!strstr(p.seen, "echo:"));
    /* A typed line is sent; the reply is printed. */
    cli_pty_type(&p, "typed line\n");
    CHECK(cli_pty_wait_for(&p, "echo: typed line", WAIT_MS));
    /* A second push while a line is half typed still shows at once. */
    cli_pty_type(&p, "half");
    CHECK_INT(cipc_ws_send_to(t.srv, id, CIPC_WS_TEXT, "second push", 11), ==, 0);
    CHECK(cli_pty_wait_for(&p, "second push", WAIT_MS));
    cli_pty_type(&p, "\n");
    CHECK(cli_pty_wait_for(&p, "echo: half", WAIT_MS));
    /* Ctrl-D: close with 1000, exit 0. */
    cli_pty_type(&p, "\x04");
    CHECK_INT(cli_pty_wait_exit(&p, WAIT_MS), ==, 0);
    CHECK_INT(wait_closes(++closes), ==, 1000);

    /* Interactive, the server closes with 4001 while stdin is still open: exit 1. */
    cli_pty_start(&p, args);
    CHECK(cli_pty_wait_for(&p, "Ctrl-D to close", WAIT_MS));
    cli_pty_type(&p, "close-me\n");
    CHECK(cli_pty_wait_for(&p, "closed by the server with 4001: told to", WAIT_MS));
    CHECK_INT(cli_pty_wait_exit(&p, WAIT_MS), ==, 1);
    CHECK_INT(wait_closes(++closes), ==, 4001);

    srvt_stop(&t, WAIT_MS);
    srvt_free(&t);
    printf("test_cli_it_ws: ok\n");
    return 0;
}
