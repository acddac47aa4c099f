/* The server over HTTPS with a self-signed certificate made at test time: curl, Python
 * requests and cipc's own session verify it with its CA and get the right bodies (a
 * small one and a 3 MiB file), ALPN settles on http/1.1, plain HTTP keeps working on its
 * own port, clients that do not trust the certificate fail, and a plain-text request on
 * the TLS port is refused without harming the server. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cipc/http_client.h"
#include "cipc/http_server.h"
#include "peer.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ready;
static char file_path[300];

static void on_ready(cipc_server *s, void *ud)
{
    (void)s;
    (void)ud;
    pthread_mutex_lock(&mu);
    ready = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

static void hello(cipc_http_req *r, void *ud)
{
    (void)ud;
    cipc_http_respond(r, 200, "text/plain", "Hello, TLS!", 11);
}

static void file(cipc_http_req *r, void *ud)
{
    (void)ud;
    if (cipc_http_respond_file(r, 200, file_path, "application/octet-stream") < 0)
        cipc_http_respond(r, 500, NULL, "", 0);
}

static void *run_server(void *arg)
{
    cipc_server *s = arg;
    long rc = cipc_server_run(s);
    return (void *)rc;
}

int main(void)
{
    peer_cert cert;
    CHECK(peer_make_cert(&cert) == 0);
    snprintf(file_path, sizeof file_path, "%s/big.bin", cert.dir);
    FILE *f = fopen(file_path, "wb");
    CHECK(f != NULL);
    for (uint64_t i = 0; i < 3u * 1024 * 1024; i++)
        fputc(peer_pattern_byte(i), f);
    fclose(f);

    cipc_server *s = NULL;
    CHECK_INT(cipc_server_new(&(cipc_server_opts){.workers = 1,
                                                  .on_ready = on_ready,
                                                  .tls_cert = cert.cert,
                                                  .tls_key = cert.key},
                              &s),
              ==, 0);
    CHECK_INT(cipc_route(s, "GET", "/", hello, NULL), ==, 0);
    CHECK_INT(cipc_route(s, "GET", "/file", file, NULL), ==, 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, run_server, s) == 0);
    pthread_mutex_lock(&mu);
    while (!ready)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    int port = cipc_server_port(s), tls_port = cipc_server_tls_port(s);
    CHECK(port > 0 && tls_port > 0 && port != tls_port);

    char url[128], log[300];
    snprintf(log, sizeof log, "%s/curl.log", cert.dir);

    /* curl with the CA: body, ALPN http/1.1. */
    snprintf(url, sizeof url, "https://127.0.0.1:%d/", tls_port);
    const char *curl_ok[] = {"/usr/bin/curl", "-sS", "-v", "--cacert", cert.cert, url, NULL};
    CHECK_INT(peer_run(curl_ok, log), ==, 0);
    f = fopen(log, "r");
    char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    CHECK(strstr(text, "Hello, TLS!") != NULL);
    CHECK(strstr(text, "ALPN: server accepted http/1.1") != NULL ||
          strstr(text, "ALPN, server accepted to use http/1.1") != NULL);

    /* curl without the CA fails verification (exit 60). */
    const char *curl_bad[] = {"/usr/bin/curl", "-sS", url, NULL};
    CHECK_INT(peer_run(curl_bad, NULL), ==, 60);

    /* Python requests with verify=CA, over one kept-alive session. */
    char script[1024];
    snprintf(script, sizeof script,
             "import requests\n"
             "s = requests.Session()\n"
             "for i in range(20):\n"
             "    r = s.get('https://127.0.0.1:%d/', verify='%s', timeout=10)\n"
             "    r.raise_for_status()\n"
             "    assert r.text == 'Hello, TLS!', r.text\n"
             "try:\n"
             "    requests.get('https://127.0.0.1:%d/', timeout=10)\n"
             "    raise SystemExit('unverified certificate was accepted')\n"
             "except requests.exceptions.SSLError:\n"
             "    pass\n",
             tls_port, cert.cert, tls_port);
    const char *py[] = {"/usr/bin/python3", "-c", script, NULL};
    CHECK_INT(peer_run(py, log), ==, 0);

    /* cipc's session with ca_file: the 3 MiB file arrives intact; plain HTTP still works. */
    cipc_session *cs = NULL;
    CHECK_INT(cipc_session_new(&(cipc_session_opts){.ca_file = cert.cert}, &cs), ==, 0);
    cipc_response *r = NULL;
    snprintf(url, sizeof url, "https://127.0.0.1:%d/file", tls_port);
    CHECK_RC(cipc_get(cs, url, NULL, &r), 0, cipc_session_errmsg(cs));
    size_t len = 0;
    const unsigned char *body = cipc_response_body(r, &len);
    CHECK_INT(len, ==, 3u * 1024 * 1024);
    for (size_t i = 0; i < len; i++) {
        if (body[i] != peer_pattern_byte(i))
            CHECK(!"file body differs");
    }
    cipc_response_free(r);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    CHECK_RC(cipc_get(cs, url, NULL, &r), 0, cipc_session_errmsg(cs));
    CHECK_STR(cipc_response_text(r), "Hello, TLS!");
    cipc_response_free(r);

    /* Plain HTTP sent to the TLS port is refused; the server keeps serving. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", tls_port);
    CHECK(cipc_get(cs, url, &(cipc_request_opts){.timeout_ms = 3000}, &r) < 0);
    snprintf(url, sizeof url, "https://127.0.0.1:%d/", tls_port);
    cipc_session_free(cs);
    CHECK_INT(cipc_session_new(&(cipc_session_opts){.ca_file = cert.cert}, &cs), ==, 0);
    CHECK_RC(cipc_get(cs, url, NULL, &r), 0, cipc_session_errmsg(cs));
    CHECK_INT(cipc_response_status(r), ==, 200);
    cipc_response_free(r);
    cipc_session_free(cs);

    cipc_server_stop(s);
    void *rc;
    pthread_join(th, &rc);
    CHECK_INT((long)rc, ==, 0);
    cipc_server_free(s);
    unlink(file_path);
    unlink(log);
    peer_cert_remove(&cert);
    printf("test_http_server_it_tls: ok\n");
    return 0;
}
