/* Proves the WebSocket API end to end, cipc server against cipc clients (and raw sockets
 * where a misbehaving peer is needed): echo with compression and a subprotocol, refused
 * handshakes (on_handshake, an Origin allow-list), topics published from a foreign thread reaching connections on two workers,
 * cipc_ws_send_to() by id, zero-copy sends, the slow-consumer policies bounding memory,
 * keepalive pings closing a peer that never answers, close 1001 at shutdown, the
 * closing handshake started by either side, the async client reconnecting, and wss with
 * certificate verification on by default. */
#include <stdatomic.h>

#include "cipc/ws.h"
#include "server_helper.h"

#define WAIT_MS 10000

/* --- shared server-side state --------------------------------------------------------- */

struct srv_state {
    pthread_mutex_t mu;
    uint64_t ids[64];
    int nids;
    int opened, closed;
    int last_close_code;
    int last_err;
    int compressed;
    cipc_ws_stats last_stats;
    int zc_done;
    latch open_l, close_l;
};

static struct srv_state S;

static void reset_state(void)
{
    memset(&S, 0, sizeof S);
    pthread_mutex_init(&S.mu, NULL);
    S.open_l = (latch)LATCH_INIT;
    S.close_l = (latch)LATCH_INIT;
}

static void s_open(cipc_ws *ws, cipc_http_req *req, void *ud)
{
    (void)ud;
    CHECK(req != NULL);
    const char *room = cipc_http_query(req, "room");
    if (room)
        CHECK_INT(cipc_ws_subscribe(ws, room), ==, 0);
    pthread_mutex_lock(&S.mu);
    if (S.nids < 64)
        S.ids[S.nids++] = cipc_ws_id(ws);
    S.opened++;
    S.compressed = cipc_ws_compressed(ws);
    pthread_mutex_unlock(&S.mu);
    latch_add(&S.open_l);
}

static void zc_done(const void *data, void *ud)
{
    (void)data;
    (void)ud;
    pthread_mutex_lock(&S.mu);
    S.zc_done++;
    pthread_mutex_unlock(&S.mu);
}

static const char big_block[65536];

static void s_message(cipc_ws *ws, int type, const void *data, size_t len, void *ud)
{
    (void)ud;
    if (type == CIPC_WS_TEXT && len == 4 && !memcmp(data, "zero", 4)) {
        static const char msg[] = "zero-copy reply";
        CHECK_INT(cipc_ws_send_zc(ws, CIPC_WS_TEXT, msg, sizeof msg - 1, zc_done, NULL), ==, 0);
        return;
    }
    if (type == CIPC_WS_TEXT && len == 5 && !memcmp(data, "flood", 5)) {
        /* 64 MiB at a peer that does not read: the policy must stop it. */
        for (int i = 0; i < 1024; i++) {
            int rc = cipc_ws_send(ws, CIPC_WS_BINARY, big_block, sizeof big_block);
            if (rc == CIPC_ETOOBIG || rc == CIPC_ECLOSING)
                break;
        }
        pthread_mutex_lock(&S.mu);
        cipc_ws_stats_get(ws, &S.last_stats);
        pthread_mutex_unlock(&S.mu);
        return;
    }
    if (type == CIPC_WS_TEXT && len == 3 && !memcmp(data, "bye", 3)) {
        CHECK_INT(cipc_ws_close(ws, 4000, "bye"), ==, 0);
        return;
    }
    cipc_ws_send(ws, type, data, len);
}

static void s_close(cipc_ws *ws, int code, const char *reason, size_t len, void *ud)
{
    (void)reason;
    (void)len;
    (void)ud;
    pthread_mutex_lock(&S.mu);
    S.closed++;
    S.last_close_code = code;
    if (!S.last_stats.msgs_out)
        cipc_ws_stats_get(ws, &S.last_stats);
    pthread_mutex_unlock(&S.mu);
    latch_add(&S.close_l);
}

static void s_error(cipc_ws *ws, int err, const char *msg, void *ud)
{
    (void)ws;
    (void)msg;
    (void)ud;
    pthread_mutex_lock(&S.mu);
    S.last_err = err;
    pthread_mutex_unlock(&S.mu);
}

static int s_handshake(cipc_http_req *req, void *ud)
{
    (void)ud;
    const char *auth = cipc_http_header(req, "Authorization");
    return auth && !strcmp(auth, "Bearer good") ? 0 : 401;
}

static const char *const protos[] = {"chat.v2", "chat.v1", NULL};

static int start(srv_thread *t, int workers, const cipc_ws_opts *o)
{
    reset_state();
    srvt_new(t, (cipc_server_opts){.workers = workers, .shutdown_timeout_ms = 3000});
    cipc_ws_handlers h = {
        .on_open = s_open,
        .on_message = s_message,
        .on_close = s_close,
        .on_error = s_error,
        .opts = o,
    };
    CHECK_INT(cipc_route_ws(t->srv, "/ws", &h, NULL), ==, 0);
    h.on_handshake = s_handshake;
    CHECK_INT(cipc_route_ws(t->srv, "/private", &h, NULL), ==, 0);
    static const char *const origins[] = {"https://ok.example", NULL};
    cipc_ws_opts oo = o ? *o : (cipc_ws_opts){0};
    oo.origins = origins;
    h.on_handshake = NULL;
    h.opts = &oo; /* copied by cipc_route_ws */
    CHECK_INT(cipc_route_ws(t->srv, "/origin", &h, NULL), ==, 0);
    return srvt_start(t);
}

static cipc_wsc *connect_ok(const char *url, const cipc_ws_client_opts *co,
                            const cipc_ws_opts *o)
{
    cipc_wsc *c = NULL;
    int rc = cipc_wsc_connect(url, co, o, &c);
    if (rc != 0)
        fprintf(stderr, "connect %s: %s\n", url, c ? cipc_wsc_errmsg(c) : cipc_strerror(rc));
    CHECK_INT(rc, ==, 0);
    return c;
}

static void expect_msg(cipc_wsc *c, int type, const char *text)
{
    cipc_ws_msg m;
    CHECK_INT(cipc_wsc_recv(c, &m, WAIT_MS), ==, 0);
    CHECK_INT(m.type, ==, type);
    CHECK_MEM(m.data, m.len, text);
}

/* --- tests ------------------------------------------------------------------------------ */

static void test_echo_subprotocol_compression(void)
{
    srv_thread t;
    cipc_ws_opts so = {.subprotocols = protos};
    int port = start(&t, 1, &so);
    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/ws", port);
    static const char *const offer[] = {"chat.v1", "chat.v2", NULL};
    cipc_ws_opts co = {.subprotocols = offer, .compress_min = 1};
    cipc_wsc *c = connect_ok(url, NULL, &co);
    CHECK_STR(cipc_wsc_subprotocol(c), "chat.v2"); /* the server's preference */
    CHECK_INT(cipc_wsc_send_text(c, "hello"), ==, 0);
    expect_msg(c, CIPC_WS_TEXT, "hello");
    CHECK_INT(S.compressed, ==, 1);
    /* A large compressible message both ways. */
    size_t n = 1 << 20;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 7);
    CHECK_INT(cipc_wsc_send(c, CIPC_WS_BINARY, big, n), ==, 0);
    cipc_ws_msg m;
    CHECK_INT(cipc_wsc_recv(c, &m, WAIT_MS), ==, 0);
    CHECK_INT(m.len, ==, n);
    CHECK(memcmp(m.data, big, n) == 0);
    free(big);
    /* Zero-copy send from the server, its done callback called once. */
    CHECK_INT(cipc_wsc_send_text(c, "zero"), ==, 0);
    expect_msg(c, CIPC_WS_TEXT, "zero-copy reply");
    /* Invalid UTF-8 is refused by the sender. */
    CHECK_INT(cipc_wsc_send(c, CIPC_WS_TEXT, "\xc3\x28", 2), ==, CIPC_EPROTO);
    CHECK_INT(cipc_wsc_close(c, 1000, "done"), ==, 0);
    CHECK_INT(cipc_wsc_close_code(c), ==, 1000);
    cipc_wsc_free(c);
    CHECK_INT(latch_wait(&S.close_l, 1, WAIT_MS), ==, 1);
    CHECK_INT(S.last_close_code, ==, 1000);
    CHECK_INT(S.zc_done, ==, 1);
    srvt_stop(&t, WAIT_MS);
    srvt_free(&t);
}

static void test_handshake_refused(void)
{
    srv_thread t;
    int port = start(&t, 1, NULL);
    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/private", port);
    cipc_wsc *c = NULL;
    CHECK_INT(cipc_wsc_connect(url, NULL, NULL, &c), ==, CIPC_EPROTO);
    CHECK(strstr(cipc_wsc_errmsg(c), "401") != NULL);
    cipc_wsc_free(c);
    static const char *const hdrs[] = {"Authorization: Bearer good", NULL};
    c = connect_ok(url, &(cipc_ws_client_opts){.headers = hdrs}, NULL);
    CHECK_INT(cipc_wsc_send_text(c, "in"), ==, 0);
    expect_msg(c, CIPC_WS_TEXT, "in");
    cipc_wsc_free(c);
    /* An Origin allow-list: 403 for another Origin or none. */
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/origin", port);
    static const char *const good[] = {"Origin: https://ok.example", NULL};
    static const char *const bad[] = {"Origin: https://evil.example", NULL};
    c = connect_ok(url, &(cipc_ws_client_opts){.headers = good}, NULL);
    cipc_wsc_free(c);
    CHECK_INT(cipc_wsc_connect(url, &(cipc_ws_client_opts){.headers = bad}, NULL, &c), ==,
              CIPC_EPROTO);
    CHECK(strstr(cipc_wsc_errmsg(c), "403") != NULL);
    cipc_wsc_free(c);
    CHECK_INT(cipc_wsc_connect(url, NULL, NULL, &c), ==, CIPC_EPROTO);
    cipc_wsc_free(c);
    /* A plain GET on the endpoint: 426 with the version header. */
    raw_conn r;
    raw_open(&r, port);
    raw_resp resp;
    CHECK_INT(raw_roundtrip(&r, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", &resp, 0), ==, 426);
    CHECK(strstr(resp.head, "Sec-WebSocket-Version: 13") != NULL);
    raw_resp_free(&resp);
    raw_close(&r);
    /* Nothing listens there: a clear connect error. */
    srvt_stop(&t, WAIT_MS);
    srvt_free(&t);
    CHECK_INT(cipc_wsc_connect(url, &(cipc_ws_client_opts){.connect_timeout_ms = 2000}, NULL, &c),
              ==, CIPC_ECONNECT);
    cipc_wsc_free(c);
    CHECK_INT(cipc_wsc_connect("http://127.0.0.1/x", NULL, NULL, &c), ==, CIPC_EURL);
    cipc_wsc_free(c);
}

struct publisher {
    cipc_server *srv;
    int count;
};

static void *publish_thread(void *arg)
{
    struct publisher *p = arg;
    for (int i = 0; i < p->count; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "news %d", i);
        int rc;
        while ((rc = cipc_ws_publish(p->srv, "news", CIPC_WS_TEXT, msg, (size_t)n)) == CIPC_EBUSY)
            usleep(1000);
        CHECK_INT(rc, >=, 0);
    }
    return NULL;
}

static void test_topics_and_send_to_across_workers(void)
{
    srv_thread t;
    int port = start(&t, 2, NULL);
    enum { N = 8, MSGS = 50 };
    cipc_wsc *c[N];
    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/ws?room=news", port);
    for (int i = 0; i < N; i++)
        c[i] = connect_ok(url, NULL, NULL);
    CHECK_INT(latch_wait(&S.open_l, N, WAIT_MS), ==, N);
    /* Published from this thread (no worker's): every subscriber on either worker gets
     * every message, in order. */
    struct publisher p = {t.srv, MSGS};
    pthread_t th;
    pthread_create(&th, NULL, publish_thread, &p);
    pthread_join(th, NULL);
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < MSGS; k++) {
            char want[32];
            snprintf(want, sizeof want, "news %d", k);
            expect_msg(c[i], CIPC_WS_TEXT, want);
        }
    }
    /* Ids reach exactly one connection each. */
    pthread_mutex_lock(&S.mu);
    uint64_t ids[N];
    memcpy(ids, S.ids, sizeof ids);
    pthread_mutex_unlock(&S.mu);
    for (int i = 0; i < N; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "to %d", i);
        CHECK_INT(cipc_ws_send_to(t.srv, ids[i], CIPC_WS_TEXT, msg, (size_t)n), ==, 0);
    }
    int got = 0;
    for (int i = 0; i < N; i++) {
        cipc_ws_msg m;
        CHECK_INT(cipc_wsc_recv(c[i], &m, WAIT_MS), ==, 0);
        CHECK(m.len > 3 && !memcmp(m.data, "to ", 3));
        got++;
        CHECK_INT(cipc_wsc_recv(c[i], &m, 50), ==, CIPC_ETIMEOUT); /* exactly one each */
    }
    CHECK_INT(got, ==, N);
    CHECK_INT(cipc_ws_send_to(t.srv, 0, CIPC_WS_TEXT, "x", 1), ==, -EINVAL);
    /* Shutdown: every connection is told 1001 (going away). */
    cipc_server_stop(t.srv);
    for (int i = 0; i < N; i++) {
        cipc_ws_msg m;
        CHECK_INT(cipc_wsc_recv(c[i], &m, WAIT_MS), ==, CIPC_ECLOSING);
        CHECK_INT(cipc_wsc_close_code(c[i]), ==, 1001);
        cipc_wsc_free(c[i]);
    }
    srvt_stop(&t, WAIT_MS);
    srvt_free(&t);
}

/* A raw client: handshake, then nothing is read. Returns the connection. */
static void raw_ws_open(raw_conn *r, int port, const char *path)
{
    raw_open(r, port);
    char req[512];
    snprintf(req, sizeof req,
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
             path);
    CHECK_INT(raw_sends(r, req), ==, 0);
    int64_t end = peer_now_ms() + WAIT_MS;
    while (!strstr(r->buf ? r->buf : "", "\r\n\r\n") && raw_fill(r, end) > 0)
        ;
    CHECK(r->buf && strstr(r->buf, "101 Switching Protocols"));
    if (!strstr(r->buf, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
        fprintf(stderr, "handshake response: %s\n", r->buf);
    CHECK(strstr(r->buf, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != NULL);
}

/* A masked text frame from a raw client. */
static void raw_ws_text(raw_conn *r, const char *s)
{
    size_t n = strlen(s);
    CHECK(n < 126);
    unsigned char f[140] = {0x81, (unsigned char)(0x80 | n), 1, 2, 3, 4};
    for (size_t i = 0; i < n; i++)
        f[6 + i] = (unsigned char)s[i] ^ f[2 + i % 4];
    CHECK_INT(raw_send(r, f, 6 + n), ==, 0);
}

static void set_rcvbuf_small(raw_conn *r)
{
    int small = 4096;
    setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
}

static void test_slow_consumer(int policy)
{
    srv_thread t;
    cipc_ws_opts o = {.max_buffered = 1 << 20, .slow_policy = policy, .close_timeout_ms = 500};
    int port = start(&t, 1, &o);
    raw_conn r;
    raw_ws_open(&r, port, "/ws");
    set_rcvbuf_small(&r);
    raw_ws_text(&r, "flood");
    if (policy == CIPC_WS_SLOW_CLOSE) {
        /* The connection is closed (1008; the peer never takes the frame, so after the
         * close timeout) and on_close reports it. */
        CHECK_INT(latch_wait(&S.close_l, 1, WAIT_MS), ==, 1);
        CHECK_INT(S.last_err, ==, CIPC_ETOOBIG);
    } else {
        /* The flood ran to its end with messages dropped. */
        int64_t end = peer_now_ms() + WAIT_MS;
        for (;;) {
            pthread_mutex_lock(&S.mu);
            int done = S.last_stats.msgs_out > 0;
            pthread_mutex_unlock(&S.mu);
            if (done || peer_now_ms() > end)
                break;
            usleep(10000);
        }
    }
    pthread_mutex_lock(&S.mu);
    cipc_ws_stats st = S.last_stats;
    pthread_mutex_unlock(&S.mu);
    fprintf(stderr, "policy %d: out %llu dropped %llu peak %zu\n", policy,
            (unsigned long long)st.msgs_out, (unsigned long long)st.dropped, st.buffered_peak);
    CHECK(st.dropped > 0);
    /* Memory stayed bounded by the limit plus one message (and its header). */
    CHECK_INT(st.buffered_peak, <=, (1 << 20) + sizeof big_block + 14);
    raw_close(&r);
    srvt_stop(&t, WAIT_MS);
    srvt_free(&t);
}

static void test_slow_close(void)
{
    test_slow_consumer(CIPC_WS_SLOW_CLOSE);
}

static void test_slow_drop_newest(void)
{
    test_slow_consumer(CIPC_WS_SLOW_DROP_NEWEST);
}

static void test_slow_drop_oldest(void)
{
    test_slow_consumer(CIPC_WS_SLOW_DROP_OLDEST);
}

static void test_keepalive_closes_silent_peer(void)
{
    srv_thread t;
    cipc_ws_opts o = {.ping_interval_ms = 100, .pong_timeout_ms = 200};
    int port = start(&t, 1, &o);
    raw_conn r;
    raw_ws_open(&r, port, "/ws");
    int64_t t0 = peer_now_ms();
    /* Never answer: closed after about one interval plus the pong timeout. */
    CHECK_INT(latch_wait(&S.close_l, 1, WAIT_MS), ==, 1);
    int64_t took = peer_now_ms() - t0;
    CHECK_INT(took, >=, 250);
    CHECK_INT(took, <, 5000);
    CHECK_INT(S.last_err, ==, CIPC_ETIMEOUT);
    CHECK_INT(S.last_close_code, ==, 1006);
    /* The ping frame arrived (opcode 9, unmasked from the server). */
    int64_t end = peer_now_ms() + WAIT_MS;
    size_t off = (size_t)(strstr(r.buf, "\r\n\r\n") - r.buf) + 4;
    while (r.len < off + 2 && raw_fill(&r, end) > 0)
        ;
    CHECK_INT(r.len, >=, off + 2);
    CHECK_INT((unsigned char)r.buf[off], ==, 0x89);
    raw_close(&r);
    /* A cipc client answers pings by itself and stays open. */
    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/ws", port);
    cipc_wsc *c = connect_ok(url, NULL, NULL);
    cipc_ws_msg m;
    CHECK_INT(cipc_wsc_recv(c, &m, 800), ==, CIPC_ETIMEOUT); /* the loop ran, pongs went */
    CHECK_INT(cipc_wsc_send_text(c, "still here"), ==, 0);
    expect_msg(c, CIPC_WS_TEXT, "still here");
    cipc_wsc_free(c);
    srvt_stop(&t, WAIT_MS);
    srvt_free(&t);
}

static void test_server_initiated_close(void)
{
    srv_thread t;
    int port = start(&t, 1, NULL);
    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/ws", port);
    cipc_wsc *c = connect_ok(url, NULL, NULL);
    CHECK_INT(cipc_wsc_send_text(c, "bye"), ==, 0);
    cipc_ws_msg m;
    CHECK_INT(cipc_wsc_recv(c, &m, WAIT_MS), ==, CIPC_ECLOSING);
    CHECK_INT(cipc_wsc_close_code(c), ==, 4000);
    CHECK_STR(cipc_wsc_close_reason(c), "bye");
    CHECK_INT(cipc_wsc_send_text(c, "late"), ==, CIPC_ECLOSING);
    cipc_wsc_free(c);
    CHECK_INT(latch_wait(&S.close_l, 1, WAIT_MS), ==, 1);
    CHECK_INT(S.last_close_code, ==, 4000); /* the client echoed it */
    srvt_stop(&t, WAIT_MS);
    srvt_free(&t);
}

/* --- the async client with reconnects ------------------------------------------------- */

struct rc_state {
    int opens, closes, reconnects, messages;
    cipc_loop *loop;
    cipc_ws *ws;
    int done;
};

static void a_open(cipc_ws *ws, cipc_http_req *req, void *ud)
{
    struct rc_state *st = ud;
    CHECK(req == NULL);
    st->opens++;
    st->ws = ws;
    /* The first connection asks the server to close it; the second says hello. */
    cipc_ws_send_text(ws, st->opens == 1 ? "bye" : "again");
}

static void a_message(cipc_ws *ws, int type, const void *data, size_t len, void *ud)
{
    struct rc_state *st = ud;
    (void)type;
    st->messages++;
    CHECK_MEM(data, len, "again");
    cipc_ws_close(ws, 1000, NULL);
}

static void a_close(cipc_ws *ws, int code, const char *reason, size_t len, void *ud)
{
    struct rc_state *st = ud;
    (void)ws;
    (void)reason;
    (void)len;
    st->closes++;
    if (st->closes == 1)
        CHECK_INT(code, ==, 4000);
    else {
        CHECK_INT(code, ==, 1000);
        st->done = 1;
    }
}

static void a_reconnect(cipc_ws *ws, int attempt, void *ud)
{
    struct rc_state *st = ud;
    CHECK(ws == st->ws);
    CHECK_INT(attempt, >=, 1);
    st->reconnects++;
}

static void test_async_reconnect(void)
{
    srv_thread t;
    int port = start(&t, 1, NULL);
    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/ws", port);
    struct rc_state st = {0};
    CHECK_INT(cipc_loop_new(NULL, &st.loop), ==, 0);
    cipc_retry_policy rp = {.max_attempts = 5, .base_ms = 10, .cap_ms = 50};
    cipc_ws_handlers h = {
        .on_open = a_open,
        .on_message = a_message,
        .on_close = a_close,
        .on_reconnect = a_reconnect,
    };
    cipc_ws *ws = NULL;
    CHECK_INT(cipc_ws_connect(st.loop, url, &(cipc_ws_client_opts){.reconnect = &rp}, &h, &st, &ws),
              ==, 0);
    /* The loop ends by itself: the user's close ends the client for good. */
    CHECK_INT(cipc_loop_run(st.loop, CIPC_RUN_DEFAULT), ==, 0);
    CHECK_INT(st.opens, ==, 2);
    CHECK_INT(st.reconnects, ==, 1);
    CHECK_INT(st.closes, ==, 2);
    CHECK_INT(st.messages, ==, 1);
    CHECK_INT(st.done, ==, 1);
    CHECK_INT(cipc_loop_free(st.loop), ==, 0);
    srvt_stop(&t, WAIT_MS);
    srvt_free(&t);
}

static void test_wss(void)
{
    peer_cert cert;
    CHECK_INT(peer_make_cert(&cert), ==, 0);
    reset_state();
    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 1, .tls_cert = cert.cert, .tls_key = cert.key});
    cipc_ws_handlers h = {.on_open = s_open, .on_message = s_message, .on_close = s_close};
    CHECK_INT(cipc_route_ws(t.srv, "/ws", &h, NULL), ==, 0);
    srvt_start(&t);
    int port = cipc_server_tls_port(t.srv);
    char url[128];
    /* Verification is on by default: the self-signed certificate is refused... */
    snprintf(url, sizeof url, "wss://localhost:%d/ws", port);
    cipc_wsc *c = NULL;
    CHECK_INT(cipc_wsc_connect(url, NULL, NULL, &c), ==, CIPC_ECERT);
    fprintf(stderr, "untrusted: %s\n", cipc_wsc_errmsg(c));
    cipc_wsc_free(c);
    /* ...and accepted with its CA, by name and by address. */
    const char *hosts[] = {"localhost", "127.0.0.1"};
    for (int i = 0; i < 2; i++) {
        snprintf(url, sizeof url, "wss://%s:%d/ws", hosts[i], port);
        c = connect_ok(url, &(cipc_ws_client_opts){.ca_file = cert.cert}, NULL);
        size_t n = 300000;
        char *big = malloc(n);
        for (size_t k = 0; k < n; k++)
            big[k] = (char)(k * 7);
        CHECK_INT(cipc_wsc_send(c, CIPC_WS_BINARY, big, n), ==, 0);
        cipc_ws_msg m;
        CHECK_INT(cipc_wsc_recv(c, &m, WAIT_MS), ==, 0);
        CHECK_INT(m.len, ==, n);
        CHECK(memcmp(m.data, big, n) == 0);
        free(big);
        CHECK_INT(cipc_wsc_close(c, 1000, NULL), ==, 0);
        cipc_wsc_free(c);
    }
    srvt_stop(&t, WAIT_MS);
    srvt_free(&t);
    peer_cert_remove(&cert);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN(test_echo_subprotocol_compression);
    RUN(test_handshake_refused);
    RUN(test_topics_and_send_to_across_workers);
    RUN(test_slow_close);
    RUN(test_slow_drop_newest);
    RUN(test_slow_drop_oldest);
    RUN(test_keepalive_closes_silent_peer);
    RUN(test_server_initiated_close);
    RUN(test_async_reconnect);
    RUN(test_wss);
    return 0;
}
