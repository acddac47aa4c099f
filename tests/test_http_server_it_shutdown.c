/* Proves graceful shutdown: with a slow handler in flight (embedded mode, answered from a
 * uv_timer 500 ms later, and a response streamed from a timer) cipc_server_stop() closes
 * idle connections at once, refuses new ones, still delivers both responses complete
 * (with Connection: close) and the loop ends right after them; a handler that never
 * answers gets its client a 500 at shutdown_timeout_ms and cipc_server_run() returns
 * then; two workers with idle connections stop promptly; a stop before run is honoured;
 * and the rest_server example exits 0 on SIGTERM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_helper.h"

#define H "Host: t\r\n"

static latch entered = LATCH_INIT; /* counts slow/hanging handlers that started */

/* GET /slow (embedded mode): answered by a timer on the server's loop after 500 ms. */
struct slow {
    uv_timer_t timer;
    cipc_http_req *req;
};

static void slow_closed(uv_handle_t *h)
{
    free(h->data);
}

static void slow_fire(uv_timer_t *t)
{
    struct slow *s = t->data;
    CHECK_INT(cipc_http_respond(s->req, 200, "text/plain", "slow-done", 9), ==, 0);
    uv_close((uv_handle_t *)t, slow_closed);
}

static void h_slow(cipc_http_req *req, void *ud)
{
    srv_thread *t = ud;
    struct slow *s = calloc(1, sizeof *s);
    CHECK(s != NULL);
    s->req = req;
    CHECK_INT(uv_timer_init(cipc_loop_uv(t->loop), &s->timer), ==, 0);
    s->timer.data = s;
    CHECK_INT(uv_timer_start(&s->timer, slow_fire, 500, 0), ==, 0);
    latch_add(&entered);
}

/* GET /drip (embedded mode): five chunks, one every 100 ms from a timer. */
struct drip {
    uv_timer_t timer;
    cipc_http_req *req;
    int sent;
};

static void drip_fire(uv_timer_t *t)
{
    struct drip *d = t->data;
    char chunk[16];
    int n = snprintf(chunk, sizeof chunk, "drop%d;", d->sent++);
    CHECK_INT(cipc_http_write(d->req, chunk, (size_t)n), ==, 0);
    if (d->sent == 5) {
        CHECK_INT(cipc_http_end(d->req), ==, 0);
        uv_close((uv_handle_t *)t, slow_closed);
    }
}

static void h_drip(cipc_http_req *req, void *ud)
{
    srv_thread *t = ud;
    struct drip *d = calloc(1, sizeof *d);
    CHECK(d != NULL);
    d->req = req;
    CHECK_INT(cipc_http_start(req, 200, "text/plain"), ==, 0);
    CHECK_INT(uv_timer_init(cipc_loop_uv(t->loop), &d->timer), ==, 0);
    d->timer.data = d;
    CHECK_INT(uv_timer_start(&d->timer, drip_fire, 100, 100), ==, 0);
    latch_add(&entered);
}

/* GET /hang: never answered. */
static void h_hang(cipc_http_req *req, void *ud)
{
    (void)req;
    (void)ud;
    latch_add(&entered);
}

/* Connecting after the stop fails, or the connection is closed without a 200. */
static void check_refused(int port)
{
    raw_conn c;
    int rc = raw_connect(&c, port);
    if (rc == 0) {
        raw_resp r;
        (void)raw_sends(&c, "GET /ping HTTP/1.1\r\n" H "\r\n");
        int st = raw_read(&c, &r, 0, 3000);
        fprintf(stderr, "  a connection after the stop was accepted: %d\n",
                st == 0 ? r.status : st);
        CHECK(st != 0 || r.status != 200);
        if (st == 0)
            raw_resp_free(&r);
        raw_close(&c);
    } else {
        CHECK_INT(rc, ==, -ECONNREFUSED);
    }
}

static void test_inflight_embedded(void)
{
    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.shutdown_timeout_ms = 5000});
    CHECK_INT(cipc_route(t.srv, "GET", "/ping", h_text, "pong"), ==, 0);
    CHECK_INT(cipc_route(t.srv, "GET", "/slow", h_slow, &t), ==, 0);
    CHECK_INT(cipc_route(t.srv, "GET", "/drip", h_drip, &t), ==, 0);
    int port = srvt_start_embedded(&t);
    raw_conn idle, slow, drip;
    raw_resp r;
    raw_open(&idle, port);
    raw_check_alive(&idle, "/ping");
    raw_open(&slow, port);
    raw_open(&drip, port);
    int before = latch_count(&entered);
    CHECK_INT(raw_sends(&slow, "GET /slow HTTP/1.1\r\n" H "\r\n"), ==, 0);
    CHECK_INT(raw_sends(&drip, "GET /drip HTTP/1.1\r\n" H "\r\n"), ==, 0);
    CHECK_INT(latch_wait(&entered, before + 2, 5000), ==, before + 2);

    int64_t t0 = peer_now_ms();
    cipc_server_stop(t.srv);
    CHECK_INT(raw_wait_close(&idle, 3000), ==, 1);
    int64_t idle_ms = peer_now_ms() - t0;
    check_refused(port);
    CHECK_INT(raw_read(&slow, &r, 0, 5000), ==, 0);
    int64_t slow_ms = peer_now_ms() - t0;
    CHECK_INT(r.status, ==, 200);
    CHECK_STR(r.body, "slow-done");
    CHECK(raw_hdr_has(&r, "Connection", "close"));
    raw_resp_free(&r);
    CHECK_INT(raw_wait_close(&slow, 3000), ==, 1);
    /* The streamed response in flight at the stop is finished too. */
    CHECK_INT(raw_read(&drip, &r, 0, 5000), ==, 0);
    CHECK_INT(r.status, ==, 200);
    CHECK_STR(r.body, "drop0;drop1;drop2;drop3;drop4;");
    raw_resp_free(&r);
    CHECK_INT(raw_wait_close(&drip, 3000), ==, 1);
    CHECK(srvt_wait_done(&t, 3000));
    int64_t done_ms = t.done_ms - t0;
    fprintf(stderr,
            "  idle closed after %lld ms, slow answered after %lld ms, loop done after "
            "%lld ms\n",
            (long long)idle_ms, (long long)slow_ms, (long long)done_ms);
    CHECK_INT(idle_ms, <, 1000);
    CHECK_INT(done_ms, <, 3000); /* well before shutdown_timeout_ms */
    raw_close(&idle);
    raw_close(&slow);
    raw_close(&drip);
    srvt_stop(&t, 1000);
    srvt_free(&t);
}

static void test_never_answered(void)
{
    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 1, .shutdown_timeout_ms = 1000});
    CHECK_INT(cipc_route(t.srv, "GET", "/hang", h_hang, NULL), ==, 0);
    int port = srvt_start(&t);
    raw_conn c;
    raw_resp r;
    raw_open(&c, port);
    int before = latch_count(&entered);
    CHECK_INT(raw_sends(&c, "GET /hang HTTP/1.1\r\n" H "\r\n"), ==, 0);
    CHECK_INT(latch_wait(&entered, before + 1, 5000), ==, before + 1);
    int64_t ms = srvt_stop(&t, 5000);
    fprintf(stderr, "  cipc_server_run returned %lld ms after the stop\n", (long long)ms);
    CHECK_INT(ms, >=, 800);
    CHECK_INT(ms, <=, 3000);
    int rc = raw_read(&c, &r, 0, 3000);
    if (rc != 0)
        fprintf(stderr,
                "  the unanswered request got no response (raw code %d), not the 500 "
                "the header promises\n",
                rc);
    CHECK_INT(rc, ==, 0);
    CHECK_INT(r.status, ==, 500);
    raw_resp_free(&r);
    CHECK_INT(raw_wait_close(&c, 3000), ==, 1);
    raw_close(&c);
    srvt_free(&t);
}

static void test_idle_workers(void)
{
    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 2});
    CHECK_INT(cipc_route(t.srv, "GET", "/ping", h_text, "pong"), ==, 0);
    int port = srvt_start(&t);
    raw_conn c[16];
    for (int i = 0; i < 16; i++) {
        raw_open(&c[i], port);
        raw_check_alive(&c[i], "/ping");
    }
    int64_t ms = srvt_stop(&t, 5000);
    fprintf(stderr, "  2 workers with 16 idle connections stopped in %lld ms\n", (long long)ms);
    CHECK_INT(ms, <, 1500);
    for (int i = 0; i < 16; i++) {
        CHECK_INT(raw_wait_close(&c[i], 1000), ==, 1);
        raw_close(&c[i]);
    }
    check_refused(port);
    cipc_server_stop(t.srv); /* again, after the end: harmless */
    srvt_free(&t);
}

static void test_stop_before_run(void)
{
    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 2});
    cipc_server_stop(t.srv);
    CHECK_INT(pthread_create(&t.th, NULL, srvt_main, &t), ==, 0);
    t.started = 1;
    CHECK(srvt_wait_done(&t, 3000));
    srvt_stop(&t, 1000);
    srvt_free(&t);
}

static void test_rest_server_sigterm(void)
{
    const char *bin = getenv("CIPC_BIN_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/rest_server", bin && *bin ? bin : ".");
    CHECK(access(path, X_OK) == 0);
    int out[2];
    CHECK_INT(peer_pipe_cloexec(out), ==, 0);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (dup2(out[1], 1) < 0)
            _exit(126);
        signal(SIGPIPE, SIG_DFL);
        execl(path, path, "--port", "0", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char line[64];
    size_t n = 0;
    int64_t end = peer_now_ms() + 10000;
    while (n + 1 < sizeof line && (n == 0 || line[n - 1] != '\n')) {
        struct pollfd pfd = {.fd = out[0], .events = POLLIN};
        CHECK_INT(poll(&pfd, 1, (int)(end - peer_now_ms())), ==, 1);
        CHECK_INT(read(out[0], line + n, 1), ==, 1);
        n++;
    }
    line[n] = '\0';
    int port = 0;
    CHECK_INT(sscanf(line, "PORT %d", &port), ==, 1);
    raw_conn c, idle;
    raw_resp r;
    raw_open(&c, port);
    CHECK_INT(raw_roundtrip(&c, "GET /users/1 HTTP/1.1\r\n" H "\r\n", &r, 0), ==, 200);
    CHECK(strstr(r.body, "Ada Lovelace") != NULL);
    raw_resp_free(&r);
    CHECK_INT(raw_roundtrip(&c,
                            "POST /users HTTP/1.1\r\n" H "Content-Type: application/json\r\n"
                            "Content-Length: 16\r\n\r\n{\"name\": \"Alan\"}",
                            &r, 0),
              ==, 201);
    CHECK(strstr(r.body, "\"id\":3") != NULL);
    raw_resp_free(&r);
    CHECK_INT(raw_roundtrip(&c, "GET /users/9 HTTP/1.1\r\n" H "\r\n", &r, 0), ==, 404);
    raw_resp_free(&r);
    raw_open(&idle, port);
    raw_check_alive(&idle, "/users/2");

    int64_t t0 = peer_now_ms();
    CHECK_INT(kill(pid, SIGTERM), ==, 0);
    int st = 0;
    int reaped = peer_reap(pid, 5000, &st);
    if (!reaped) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    fprintf(stderr, "  rest_server exited %lld ms after SIGTERM (status 0x%x)\n",
            (long long)(peer_now_ms() - t0), st);
    CHECK(reaped);
    CHECK(WIFEXITED(st));
    CHECK_INT(WEXITSTATUS(st), ==, 0);
    CHECK_INT(raw_wait_close(&idle, 1000), ==, 1);
    raw_close(&c);
    raw_close(&idle);
    close(out[0]);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN(test_inflight_embedded);
    RUN(test_idle_workers);
    RUN(test_rest_server_sigterm);
    RUN(test_never_answered);
    RUN(test_stop_before_run);
    return 0;
}
