/* End-to-end tests of the hub's authentication and TLS (docs/hub.md, "Authentication"):
 * the bearer token on REST, WebSocket (header and ?token=), SSE and RESP (AUTH, with the
 * token or --requirepass), refusal to listen on a non-loopback address without a token,
 * --insecure-no-auth, and HTTPS + wss with a self-signed certificate made by openssl at
 * test time. */
#include "hub_helper.h"

#define TOKEN "s3cret-t0ken"

static char script[512];

static int curl_code(const char *url, const char *header)
{
    const char *argv[14] = {"/usr/bin/curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                            "--noproxy", "*", "-k", url};
    int n = 10;
    if (header) {
        argv[n++] = "-H";
        argv[n++] = header;
    }
    argv[n] = NULL;
    char *out = NULL;
    CHECK_INT(hub_cmd(argv, 10000, &out), ==, 0);
    int code = atoi(out);
    free(out);
    return code;
}

static void test_token_rest_ws_sse(void)
{
    hub h;
    hub_startl(&h, "--token", TOKEN, NULL);
    hub_res r;
    /* no token needed */
    hub_reqx(&h, "GET", "/healthz", NULL, NULL, 0, "", 0, &r);
    HUB_STATUS(&r, 200);
    hub_res_free(&r);
    /* refused: no token, wrong token, wrong scheme */
    const char *paths[] = {"/v1/stats", "/v1/channels", "/v1/queues", "/v1/channels/x/messages?since=0"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        hub_reqx(&h, "GET", paths[i], NULL, NULL, 0, "", 0, &r);
        HUB_STATUS(&r, 401);
        CHECK(peer_contains_ci(r.www_auth, "Bearer"));
        CHECK(json_is_string(json_object_get(r.j, "error")));
        hub_res_free(&r);
        hub_reqx(&h, "GET", paths[i], NULL, NULL, 0, "wrong", 0, &r);
        HUB_STATUS(&r, 401);
        CHECK(peer_contains_ci(r.www_auth, "Bearer"));
        hub_res_free(&r);
    }
    hub_reqx(&h, "POST", "/v1/channels/x/messages", "text/plain", "no", 2, "", 0, &r);
    HUB_STATUS(&r, 401);
    hub_res_free(&r);
    hub_reqx(&h, "POST", "/v1/queues/x/items", "text/plain", "no", 2, "wrong", 0, &r);
    HUB_STATUS(&r, 401);
    hub_res_free(&r);
    char url[256], hdr[128];
    snprintf(url, sizeof url, "%s/v1/stats", h.base);
    CHECK_INT(curl_code(url, "Authorization: Basic " TOKEN), ==, 401);
    CHECK_INT(curl_code(url, "Authorization: Bearer " TOKEN "x"), ==, 401);
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", TOKEN);
    CHECK_INT(curl_code(url, hdr), ==, 200);
    snprintf(url, sizeof url, "%s/v1/stats?token=%s", h.base, TOKEN);
    CHECK_INT(curl_code(url, NULL), ==, 200);
    snprintf(url, sizeof url, "%s/v1/stats?token=nope", h.base);
    CHECK_INT(curl_code(url, NULL), ==, 401);
    /* nothing was published by the refused requests */
    hub_reqx(&h, "GET", "/v1/channels", NULL, NULL, 0, TOKEN, 0, &r);
    HUB_STATUS(&r, 200);
    CHECK_JSON(r.j, "{\"channels\":[]}");
    hub_res_free(&r);

    /* WebSocket: refused without / with a wrong token; header or ?token= accepted */
    cipc_wsc *c = NULL;
    char err[256] = "";
    CHECK(hub_ws_try(&h, "/v1/ws", "", 0, NULL, &c, err, sizeof err) != 0);
    CHECK(strstr(err, "401") != NULL);
    CHECK(hub_ws_try(&h, "/v1/ws", "wrong", 0, NULL, &c, err, sizeof err) != 0);
    CHECK(strstr(err, "401") != NULL);
    CHECK(hub_ws_try(&h, "/v1/ws/channels/x", "", 0, NULL, &c, err, sizeof err) != 0);
    CHECK(strstr(err, "401") != NULL);
    CHECK(hub_ws_try(&h, "/v1/ws?token=nope", "", 0, NULL, &c, err, sizeof err) != 0);
    cipc_wsc *w1 = NULL, *w2 = NULL;
    CHECK_INT(hub_ws_try(&h, "/v1/ws", TOKEN, 0, NULL, &w1, err, sizeof err), ==, 0);
    CHECK_INT(hub_ws_try(&h, "/v1/ws?token=" TOKEN, "", 0, NULL, &w2, err, sizeof err), ==, 0);
    hub_ws_send(w1, "{\"op\":\"subscribe\",\"channel\":\"a\"}");
    HUB_WS_EXPECT(w1, "{\"type\":\"subscribed\",\"channel\":\"a\",\"seq\":0}");
    hub_ws_send(w2, "{\"op\":\"publish\",\"channel\":\"a\",\"data\":\"ok\",\"id\":1}");
    HUB_WS_EXPECT(w2, "{\"type\":\"published\",\"channel\":\"a\",\"seq\":1,\"receivers\":1,\"id\":1}");
    HUB_WS_EXPECT(w1, "{\"type\":\"message\",\"channel\":\"a\",\"seq\":1,\"data\":\"ok\"}");

    /* SSE: 401 without, a stream with ?token= */
    snprintf(url, sizeof url, "%s/v1/channels/a/events", h.base);
    CHECK_INT(curl_code(url, NULL), ==, 401);
    snprintf(url, sizeof url, "%s/v1/channels/a/events?token=%s&since=0", h.base, TOKEN);
    const char *sse_argv[] = {"/usr/bin/curl", "-sS", "-N", "--noproxy", "*", url, NULL};
    hub_proc *p = hub_proc_start(sse_argv);
    CHECK(hub_stream_until(&p->out, 0, "id: 1\ndata: ok\n\n", 5000) != NULL);
    hub_proc_free(p);

    /* RESP: the token is the password */
    char port[16], *out = NULL;
    snprintf(port, sizeof port, "%d", h.resp);
    const char *py[] = {HUB_PY, script, "auth", port, TOKEN, NULL};
    CHECK_INT(hub_cmd(py, 30000, &out), ==, 0);
    CHECK_STR(out, "OK\n");
    free(out);
    const char *rc[] = {"/usr/bin/redis-cli", "-h", "127.0.0.1", "-p", port, "PUBLISH", "a", "x", NULL};
    hub_cmd(rc, 10000, &out);
    CHECK(strstr(out, "NOAUTH") != NULL);
    free(out);
    hub_ws_send(w1, "{\"op\":\"ping\"}"); /* the refused PUBLISH reached nobody */
    HUB_WS_EXPECT(w1, "{\"type\":\"pong\"}");
    cipc_wsc_close(w1, 1000, "");
    cipc_wsc_free(w1);
    cipc_wsc_close(w2, 1000, "");
    cipc_wsc_free(w2);
    hub_stop(&h);
}

static void test_requirepass(void)
{
    hub h;
    hub_startl(&h, "--token", TOKEN, "--requirepass", "resp-pass", NULL);
    char port[16], *out = NULL;
    snprintf(port, sizeof port, "%d", h.resp);
    const char *py[] = {HUB_PY, script, "auth", port, "resp-pass", NULL};
    CHECK_INT(hub_cmd(py, 30000, &out), ==, 0);
    CHECK_STR(out, "OK\n");
    free(out);
    const char *rc[] = {"/usr/bin/redis-cli", "-h", "127.0.0.1", "-p", port, "--no-auth-warning",
                        "-a", TOKEN, "PING", NULL};
    hub_cmd(rc, 10000, &out); /* the token is not the RESP password now */
    CHECK(strstr(out, "PONG") == NULL);
    free(out);
    hub_stop(&h);
}

static void test_public_bind(void)
{
    hub h;
    /* refused: a non-loopback address without a token */
    int st = hub_try_start(&h, (const char *const[]){"--host", "0.0.0.0", NULL});
    if (st == 0)
        hub_stop(&h);
    CHECK(st > 0);
    CHECK(access(h.portfile, F_OK) != 0);
    CHECK(hub_log_has(&h, "token") || hub_log_has(&h, "insecure"));
    hub_cleanup(&h);
    /* accepted: with --insecure-no-auth, or with a token (reached through 127.0.0.1) */
    hub_startl(&h, "--host", "0.0.0.0", "--insecure-no-auth", NULL);
    hub_res r;
    hub_req(&h, "GET", "/v1/stats", NULL, &r);
    HUB_STATUS(&r, 200);
    hub_res_free(&r);
    hub_stop(&h);
    hub_startl(&h, "--host", "0.0.0.0", "--token", TOKEN, NULL);
    hub_reqx(&h, "GET", "/v1/stats", NULL, NULL, 0, "", 0, &r);
    HUB_STATUS(&r, 401);
    hub_res_free(&r);
    hub_reqx(&h, "GET", "/v1/stats", NULL, NULL, 0, TOKEN, 0, &r);
    HUB_STATUS(&r, 200);
    hub_res_free(&r);
    hub_stop(&h);
}

static void test_tls(void)
{
    peer_cert cert;
    CHECK_INT(peer_make_cert(&cert), ==, 0);
    hub h;
    hub_startl(&h, "--tls-cert", cert.cert, "--tls-key", cert.key, "--token", TOKEN, NULL);
    CHECK(h.tls > 0);
    /* HTTPS with the cipc client, verifying against the certificate */
    cipc_session *s = peer_session(NULL, (cipc_session_opts){.base_url = h.tls_base,
                                                             .ca_file = cert.cert, .proxy = ""});
    CHECK_INT(cipc_session_header(s, "Authorization", "Bearer " TOKEN), ==, 0);
    json_t *j = peer_get_json(s, "/healthz", 200);
    CHECK_JSON(j, "{\"status\":\"ok\"}");
    json_decref(j);
    /* curl over HTTPS, verifying too */
    char url[256], *out = NULL;
    snprintf(url, sizeof url, "%s/v1/stats", h.tls_base);
    const char *argv[] = {"/usr/bin/curl", "-sS", "--noproxy", "*", "--cacert", cert.cert, "-H",
                          "Authorization: Bearer " TOKEN, "-o", "/dev/null", "-w", "%{http_code}",
                          url, NULL};
    CHECK_INT(hub_cmd(argv, 10000, &out), ==, 0);
    CHECK_STR(out, "200");
    free(out);
    /* wss: subscribe, publish over HTTPS, receive */
    cipc_wsc *w = NULL;
    char err[256] = "";
    int rc = hub_ws_try(&h, "/v1/ws", TOKEN, 1, NULL, &w, err, sizeof err);
    if (rc)
        fprintf(stderr, "wss: %s\n", err);
    CHECK_INT(rc, ==, 0);
    hub_ws_send(w, "{\"op\":\"subscribe\",\"channel\":\"t\"}");
    HUB_WS_EXPECT(w, "{\"type\":\"subscribed\",\"channel\":\"t\",\"seq\":0}");
    cipc_response *r = NULL;
    cipc_request_opts o = {.body = "secure", .body_len = 6, .content_type = "text/plain"};
    CHECK_INT(cipc_request(s, "POST", "/v1/channels/t/messages", &o, &r), ==, 0);
    CHECK_INT(cipc_response_status(r), ==, 200);
    cipc_response_free(r);
    HUB_WS_EXPECT(w, "{\"type\":\"message\",\"channel\":\"t\",\"seq\":1,\"data\":\"secure\"}");
    /* wss without the token: refused */
    cipc_wsc *bad = NULL;
    CHECK(hub_ws_try(&h, "/v1/ws", "", 1, NULL, &bad, err, sizeof err) != 0);
    CHECK(strstr(err, "401") != NULL);
    cipc_wsc_close(w, 1000, "");
    cipc_wsc_free(w);
    cipc_session_free(s);
    hub_stop(&h);
    peer_cert_remove(&cert);
}

int main(void)
{
    hub_init();
    hub_peer_script("hub_redis.py", script, sizeof script);
    RUN(test_token_rest_ws_sse);
    RUN(test_requirepass);
    RUN(test_public_bind);
    RUN(test_tls);
    return 0;
}
