/* Proves TLS verification against a real HTTPS peer with a self-signed certificate made
 * at test time: verification is on by default (CIPC_ECERT), passes with the certificate
 * as ca_file (sync and async), fails with another CA or a certificate for another host
 * name, and is skipped only with danger_accept_invalid_certs. Also HTTPS to a plain
 * server and plain HTTP to a TLS server fail cleanly. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "cipc/http_client.h"
#include "cipc/loop.h"
#include "peer.h"

static peer P;     /* HTTPS, certificate for 127.0.0.1 and localhost */
static peer PLAIN; /* plain HTTP */
static peer WRONG; /* HTTPS, certificate for wrong.example only */
static peer_cert CERT, OTHER, WRONG_CERT;

static cipc_session *session_with(cipc_session_opts o)
{
    cipc_session *s = NULL;
    if (!o.base_url)
        o.base_url = P.base_url;
    CHECK_RC(cipc_session_new(&o, &s), 0, "cipc_session_new");
    return s;
}

static void expect_get(cipc_session *s, const char *url, int want)
{
    cipc_response *r = (cipc_response *)&r;
    int rc = cipc_get(s, url, NULL, &r);
    fprintf(stderr, "GET %s -> %s: %s\n", url, cipc_err_name(rc), cipc_session_errmsg(s));
    CHECK_RC(rc, want, cipc_session_errmsg(s));
    if (want != 0) {
        CHECK(r == NULL);
        CHECK(cipc_session_errmsg(s)[0] != '\0');
    } else {
        CHECK_INT(cipc_response_status(r), ==, 200);
        json_t *j = peer_json(r);
        CHECK_INT(peer_jint(j, "id"), ==, 3);
        cipc_response_free(r);
        json_decref(j);
    }
}

static void test_verify(void)
{
    /* Default: the system store does not know our certificate. */
    cipc_session *s = session_with((cipc_session_opts){0});
    expect_get(s, "/users/3", CIPC_ECERT);
    cipc_session_free(s);

    /* Our certificate as the CA: verified, by IP and by name; the pool is reused. */
    s = session_with((cipc_session_opts){.ca_file = CERT.cert});
    expect_get(s, "/users/3", 0);
    expect_get(s, "/users/3", 0);
    char url[128];
    snprintf(url, sizeof url, "https://localhost:%d/users/3", P.port);
    expect_get(s, url, 0);
    cipc_session_free(s);

    /* Another CA: fails. */
    s = session_with((cipc_session_opts){.ca_file = OTHER.cert});
    expect_get(s, "/users/3", CIPC_ECERT);
    cipc_session_free(s);

    /* A trusted certificate for another host name: fails. */
    s = session_with((cipc_session_opts){.base_url = WRONG.base_url, .ca_file = WRONG_CERT.cert});
    expect_get(s, "/users/3", CIPC_ECERT);
    cipc_session_free(s);

    /* Verification off: everything passes. */
    s = session_with((cipc_session_opts){.danger_accept_invalid_certs = 1});
    expect_get(s, "/users/3", 0);
    cipc_session_free(s);
    s = session_with(
        (cipc_session_opts){.base_url = WRONG.base_url, .danger_accept_invalid_certs = 1});
    expect_get(s, "/users/3", 0);
    cipc_session_free(s);

    /* A CA file that does not exist is an error, never a silent pass. */
    s = session_with((cipc_session_opts){.ca_file = "/nonexistent/ca.pem"});
    cipc_response *r = (cipc_response *)&r;
    int rc = cipc_get(s, "/users/3", NULL, &r);
    fprintf(stderr, "missing ca_file -> %s: %s\n", cipc_err_name(rc), cipc_session_errmsg(s));
    CHECK_INT(rc, <, 0);
    CHECK(r == NULL);
    cipc_session_free(s);
}

static void test_mismatch(void)
{
    /* HTTPS to a plain HTTP server: the handshake fails. */
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/users/3", PLAIN.port);
    cipc_session *s = session_with((cipc_session_opts){.danger_accept_invalid_certs = 1});
    expect_get(s, url, CIPC_ETLS);
    cipc_session_free(s);

    /* Plain HTTP to the TLS server: an error, not a hang or a crash. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/users/3", P.port);
    s = session_with((cipc_session_opts){.timeout_ms = 5000});
    cipc_response *r = (cipc_response *)&r;
    int rc = cipc_get(s, url, NULL, &r);
    fprintf(stderr, "http to https port -> %s: %s\n", cipc_err_name(rc), cipc_session_errmsg(s));
    if (rc == 0) {
        CHECK_INT(cipc_response_status(r), ==, 400); /* some servers answer in plain text */
        cipc_response_free(r);
    } else {
        CHECK(r == NULL);
        CHECK(rc != CIPC_ETIMEOUT);
    }
    cipc_session_free(s);
}

struct result {
    int called, rc, status;
};

static void on_done(cipc_client *c, int rc, cipc_response *resp, void *ud)
{
    struct result *res = ud;
    res->called++;
    res->rc = rc;
    res->status = resp ? cipc_response_status(resp) : -1;
}

static void test_async(void)
{
    cipc_loop *loop = NULL;
    CHECK_RC(cipc_loop_new(NULL, &loop), 0, "");
    cipc_client *c = NULL;
    cipc_session_opts o = {.base_url = P.base_url};
    CHECK_RC(cipc_client_new(loop, &o, &c), 0, "");
    cipc_client *ok = NULL;
    o.ca_file = CERT.cert;
    CHECK_RC(cipc_client_new(loop, &o, &ok), 0, "");

    struct result bad = {0}, good[4] = {{0}};
    CHECK_RC(cipc_client_get(c, "/users/3", on_done, &bad), 0, cipc_client_errmsg(c));
    for (int i = 0; i < 4; i++)
        CHECK_RC(cipc_client_get(ok, "/users/3", on_done, &good[i]), 0, cipc_client_errmsg(ok));
    CHECK_RC(cipc_client_wait(c, 20000), 0, cipc_client_errmsg(c));
    CHECK_RC(cipc_client_wait(ok, 20000), 0, cipc_client_errmsg(ok));
    CHECK_INT(bad.called, ==, 1);
    CHECK_RC(bad.rc, CIPC_ECERT, cipc_client_errmsg(c));
    for (int i = 0; i < 4; i++) {
        CHECK_INT(good[i].called, ==, 1);
        CHECK_RC(good[i].rc, 0, cipc_client_errmsg(ok));
        CHECK_INT(good[i].status, ==, 200);
    }
    cipc_client_close(c);
    cipc_client_close(ok);
    CHECK_RC(cipc_loop_free(loop), 0, "");
}

int main(void)
{
    peer_clear_proxy_env();
    CHECK(peer_make_cert(&CERT) == 0);
    CHECK(peer_make_cert(&OTHER) == 0);
    CHECK(peer_make_cert_for(&WRONG_CERT, "wrong.example", "DNS:wrong.example") == 0);
    CHECK(peer_start_tls(&P, CERT.cert, CERT.key) == 0);
    CHECK(strncmp(P.base_url, "https://", 8) == 0);
    CHECK(peer_start_tls(&WRONG, WRONG_CERT.cert, WRONG_CERT.key) == 0);
    CHECK(peer_start(&PLAIN) == 0);

    test_verify();
    test_mismatch();
    test_async();

    peer_stop(&PLAIN);
    peer_stop(&WRONG);
    peer_stop(&P);
    peer_cert_remove(&WRONG_CERT);
    peer_cert_remove(&OTHER);
    peer_cert_remove(&CERT);
    return 0;
}
