/* Proves the connection options against real servers: rediss:// through the TLS tunnel
 * with certificate verification (the right CA passes; a wrong CA, a name mismatch and
 * the system store fail with CIPC_ECERT; insecure skips it) and pub/sub and queues over
 * it; unix:// sockets; AUTH with requirepass (right password, wrong password, none,
 * user:password with the default user); the client name is set (CLIENT LIST shows it). */
#include <string.h>

#include "test_bus_it_server.h"

static void roundtrip(cipc_bus *b, const char *tag)
{
    cipc_bus_msg m;
    CHECK_INT(cipc_bus_subscribe(b, tag), ==, 1);
    CHECK_INT(cipc_bus_publish(b, tag, "hello", 5), ==, 1);
    bus_expect(b, &m, CIPC_BUS_MESSAGE, 3000);
    CHECK_MEM(m.data, m.len, "hello");
    CHECK_INT(cipc_bus_push(b, tag, "item", 4), ==, 1);
    void *d;
    size_t n;
    CHECK_INT(cipc_bus_pop(b, tag, 1000, &d, &n), ==, 0);
    CHECK_MEM(d, n, "item");
    free(d);
    /* A large payload crosses the tunnel both ways. */
    size_t big = 3 << 20;
    char *p = malloc(big);
    for (size_t i = 0; i < big; i++)
        p[i] = (char)(i * 13 + 1);
    CHECK_INT(cipc_bus_push(b, tag, p, big), ==, 1);
    CHECK_INT(cipc_bus_pop(b, tag, 5000, &d, &n), ==, 0);
    CHECK_INT(n, ==, big);
    CHECK(memcmp(d, p, big) == 0);
    free(d);
    free(p);
}

static void test_tls(void)
{
    if (bus_srv_is_cipc()) {
        fprintf(stderr, "SKIP test_tls: the cipc broker has no TLS\n");
        return;
    }
    bus_srv s;
    bus_srv_start(&s, &(bus_srv_opts){.tls = 1});
    cipc_bus *b = NULL;
    /* Verified against the right CA. */
    b = bus_open(s.url, &(cipc_bus_opts){.ca_file = s.ca});
    roundtrip(b, "tls");
    cipc_bus_free(b);
    /* By IP address: the certificate has IP:127.0.0.1. */
    char url[128];
    snprintf(url, sizeof url, "rediss://127.0.0.1:%d", s.port);
    b = bus_open(url, &(cipc_bus_opts){.ca_file = s.ca});
    cipc_bus_free(b);
    /* A wrong CA, and the system store (which does not know ours): CIPC_ECERT. */
    CHECK_INT(cipc_bus_connect(s.url, &(cipc_bus_opts){.ca_file = s.other_ca}, &b), ==, CIPC_ECERT);
    CHECK_INT(cipc_bus_connect(s.url, NULL, &b), ==, CIPC_ECERT);
    /* A name the certificate does not have. */
    snprintf(url, sizeof url, "rediss://127.0.0.2:%d", s.port);
    int rc = cipc_bus_connect(url, &(cipc_bus_opts){.ca_file = s.ca}, &b);
    CHECK(rc == CIPC_ECERT || rc == CIPC_ECONNECT); /* 127.0.0.2 may not be routed */
    /* insecure: no verification. */
    b = bus_open(s.url, &(cipc_bus_opts){.insecure = 1});
    CHECK_INT(cipc_bus_publish(b, "x", "y", 1), ==, 0);
    cipc_bus_free(b);
    /* A missing CA file. */
    CHECK_INT(cipc_bus_connect(s.url, &(cipc_bus_opts){.ca_file = "/nonexistent.pem"}, &b), ==,
              CIPC_EFILE);
    /* Plain RESP to a TLS port: the server drops us, we notice. */
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", s.port);
    rc = cipc_bus_connect(url, &(cipc_bus_opts){.connect_timeout_ms = 2000}, &b);
    CHECK(rc == CIPC_ENET || rc == CIPC_ECONNTIMEOUT || rc == CIPC_EPROTO);
    /* A TLS subscriber survives a restart of the TLS server. */
    b = bus_open(s.url, &(cipc_bus_opts){.ca_file = s.ca,
                                         .skip_confirmations = 1,
                                         .reconnect = {.base_ms = 20, .cap_ms = 100}});
    CHECK_INT(cipc_bus_subscribe(b, "t"), ==, 1);
    bus_srv_kill(&s, SIGKILL);
    bus_srv_restart(&s);
    cipc_bus_msg m;
    bus_expect(b, &m, CIPC_BUS_GAP, 5000);
    CHECK_INT(cipc_bus_publish(b, "t", "z", 1), ==, 1);
    bus_expect(b, &m, CIPC_BUS_MESSAGE, 3000);
    cipc_bus_free(b);
    bus_srv_stop(&s);
}

static void test_unix_and_auth(void)
{
    bus_srv s;
    bus_srv_start(&s, &(bus_srv_opts){.unix_socket = 1, .requirepass = "s3cr:t@"});
    cipc_bus *b = NULL;
    /* No password: the server needs one -> -EACCES (found by the handshake's PING). */
    CHECK_INT(cipc_bus_connect(s.unix_url, NULL, &b), ==, -EACCES);
    CHECK_INT(cipc_bus_connect(s.url, NULL, &b), ==, -EACCES);
    char url[256];
    snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d", s.port);
    CHECK_INT(cipc_bus_connect(url, NULL, &b), ==, -EACCES);
    /* Percent-encoded password, with and without the "default" user. */
    snprintf(url, sizeof url, "redis://:s3cr%%3At%%40@127.0.0.1:%d", s.port);
    b = bus_open(url, &(cipc_bus_opts){.client_name = "auth-client"});
    roundtrip(b, "auth");
    cipc_bus_free(b);
    snprintf(url, sizeof url, "redis://default:s3cr%%3At%%40@127.0.0.1:%d/2", s.port);
    if (!bus_srv_is_cipc()) {
        b = bus_open(url, NULL);
        cipc_bus_free(b);
        snprintf(url, sizeof url, "redis://nobody:s3cr%%3At%%40@127.0.0.1:%d", s.port);
        CHECK_INT(cipc_bus_connect(url, NULL, &b), ==, -EACCES);
    }
    bus_srv_stop(&s);

    /* unix:// without a password. */
    bus_srv_start(&s, &(bus_srv_opts){.unix_socket = 1});
    b = bus_open(s.unix_url, &(cipc_bus_opts){.client_name = "unix-client"});
    roundtrip(b, "unix");
    /* The client name shows in CLIENT LIST: a reap by another consumer sees it live. */
    cipc_bus *other = bus_open(s.url, NULL);
    void *d;
    size_t n;
    CHECK_INT(cipc_bus_push(other, "uq", "a", 1), ==, 1);
    CHECK_INT(cipc_bus_pop_reliable(b, "uq", 1000, &d, &n), ==, 0);
    free(d);
    CHECK_INT(cipc_bus_reap(other, "uq", 0), ==, 0);
    CHECK_INT(cipc_bus_len(other, "uq:processing:unix-client"), ==, 1);
    cipc_bus_free(b);
    /* Once it is gone (the server notices the closed socket soon after), a reap with
     * visibility 0 re-queues its item at once. */
    int64_t end = cipc_now_ms() + 5000;
    int moved = 0;
    while (moved == 0 && cipc_now_ms() < end)
        CHECK_INT((moved = cipc_bus_reap(other, "uq", 0)), >=, 0);
    CHECK_INT(moved, ==, 1);
    CHECK_INT(cipc_bus_len(other, "uq"), ==, 1);
    cipc_bus_free(other);
    /* A socket path with nothing behind it. */
    snprintf(url, sizeof url, "unix://%s/none.sock", s.dir);
    CHECK_INT(cipc_bus_connect(url, NULL, &b), ==, CIPC_ECONNECT);
    bus_srv_stop(&s);
}

int main(void)
{
    /* SIGPIPE keeps its default action: the library must never raise it (the TLS tests
     * kill a server under a live tunnel). */
    test_tls();
    test_unix_and_auth();
    return 0;
}
