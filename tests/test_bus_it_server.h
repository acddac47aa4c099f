/* tests/test_bus_it_server.h -- header-only helpers for the cipc_bus integration tests:
 * start a Redis-protocol server on a free 127.0.0.1 port (and optionally a Unix socket,
 * a password, TLS), restart it on the same port, freeze it (SIGSTOP) and thaw it, and
 * wait for conditions with deadlines.
 *
 *     bus_srv s;
 *     bus_srv_start(&s, &(bus_srv_opts){0});       // s.url = "redis://127.0.0.1:<port>"
 *     ... cipc_bus_connect(s.url, ...) ...
 *     bus_srv_stop(&s);
 *
 * The server program is chosen by $CIPC_BUS_TEST_SERVER: "redis" (default: Debian's
 * /usr/bin/redis-server with --save '' --appendonly no --daemonize no) or "cipc" (the
 * cipc broker, $CIPC_BIN_DIR/broker --port N [--unix P] [--requirepass P]; no TLS: TLS
 * tests are skipped). Only the pid started here is ever signalled; servers are started
 * with PR_SET_PDEATHSIG so they never outlive an aborted test.
 *
 * Everything is static inline so that files using part of it compile warning-free. Not
 * thread-safe: start and stop servers from the main thread. */
#ifndef CIPC_TESTS_BUS_IT_SERVER_H
#define CIPC_TESTS_BUS_IT_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cipc/bus.h"
#include "cipc/time.h"

#define BUS_SRV_START_TIMEOUT_MS 15000

typedef struct bus_srv_opts {
    const char *requirepass; /* NULL: none */
    int unix_socket;         /* 1: also listen on <dir>/redis.sock */
    int tls;                 /* 1: TLS only (port 0 for plain); makes <dir>/ca.pem etc. */
    int port;                /* 0: a free port */
} bus_srv_opts;

typedef struct bus_srv {
    pid_t pid;
    int port;
    bus_srv_opts o;
    char dir[64];       /* private temporary directory */
    char url[256];      /* redis://127.0.0.1:<port> (or rediss://localhost:<port>) */
    char unix_url[256]; /* unix://<dir>/redis.sock when unix_socket */
    char unix_path[128];
    char ca[128];       /* TLS: the CA that signed the server certificate */
    char other_ca[128]; /* TLS: an unrelated CA */
} bus_srv;

/* Is the cipc broker the server under test? */
static inline int bus_srv_is_cipc(void)
{
    const char *s = getenv("CIPC_BUS_TEST_SERVER");
    return s && strcmp(s, "cipc") == 0;
}

static inline int bus_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CHECK(fd >= 0);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Run a shell command line, quietly. Returns its exit status. */
static inline int bus_sh(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A CA and a server certificate for localhost / 127.0.0.1 signed by it, plus an
 * unrelated CA, made with the openssl tool in s->dir. */
static inline void bus_make_certs(bus_srv *s)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cd %s && "
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
             "-subj /CN=cipc-test-ca >/dev/null 2>&1 && "
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 "
             "-subj /CN=other-ca >/dev/null 2>&1 && "
             "openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr "
             "-subj /CN=localhost >/dev/null 2>&1 && "
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf && "
             "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out srv.pem -days 2 -extfile ext.cnf >/dev/null 2>&1",
             s->dir);
    CHECK_INT(bus_sh(cmd), ==, 0);
    snprintf(s->ca, sizeof s->ca, "%s/ca.pem", s->dir);
    snprintf(s->other_ca, sizeof s->other_ca, "%s/other.pem", s->dir);
}

/* Can we connect to the server's port (TLS) or get a reply to PING (plain)? */
static inline int bus_srv_ready(const bus_srv *s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)s->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return 0;
    }
    if (s->o.tls) {
        close(fd);
        return 1;
    }
    int ok = 0;
    if (write(fd, "PING\r\n", 6) == 6) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char buf[64];
        ok = poll(&p, 1, 1000) == 1 && read(fd, buf, sizeof buf) > 0;
    }
    close(fd);
    if (ok && s->o.unix_socket) {
        struct stat st;
        ok = stat(s->unix_path, &st) == 0;
    }
    return ok;
}

/* Start (or restart, on the same port) the server described by s->o. */
static inline void bus_srv_spawn(bus_srv *s)
{
    char portstr[16], pass[256];
    snprintf(portstr, sizeof portstr, "%d", s->port);
    const char *argv[40];
    int n = 0;
    char bin[512], cert[160], key[160];
    if (bus_srv_is_cipc()) {
        const char *bd = getenv("CIPC_BIN_DIR");
        snprintf(bin, sizeof bin, "%s/broker", bd && *bd ? bd : "build/bin");
        argv[n++] = bin;
        argv[n++] = "--port";
        argv[n++] = portstr;
        if (s->o.unix_socket) {
            argv[n++] = "--unix";
            argv[n++] = s->unix_path;
        }
        if (s->o.requirepass) {
            argv[n++] = "--requirepass";
            argv[n++] = s->o.requirepass;
        }
    } else {
        argv[n++] = "/usr/bin/redis-server";
        argv[n++] = "--bind";
        argv[n++] = "127.0.0.1";
        argv[n++] = "--port";
        argv[n++] = s->o.tls ? "0" : portstr;
        argv[n++] = "--save";
        argv[n++] = "";
        argv[n++] = "--appendonly";
        argv[n++] = "no";
        argv[n++] = "--daemonize";
        argv[n++] = "no";
        argv[n++] = "--dir";
        argv[n++] = s->dir;
        if (s->o.unix_socket) {
            argv[n++] = "--unixsocket";
            argv[n++] = s->unix_path;
        }
        if (s->o.requirepass) {
            snprintf(pass, sizeof pass, "%s", s->o.requirepass);
            argv[n++] = "--requirepass";
            argv[n++] = pass;
        }
        if (s->o.tls) {
            snprintf(cert, sizeof cert, "%s/srv.pem", s->dir);
            snprintf(key, sizeof key, "%s/srv.key", s->dir);
            argv[n++] = "--tls-port";
            argv[n++] = portstr;
            argv[n++] = "--tls-cert-file";
            argv[n++] = cert;
            argv[n++] = "--tls-key-file";
            argv[n++] = key;
            argv[n++] = "--tls-ca-cert-file";
            argv[n++] = s->ca;
            argv[n++] = "--tls-auth-clients";
            argv[n++] = "no";
        }
    }
    argv[n] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        char log[128];
        snprintf(log, sizeof log, "%s/server.log", s->dir);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int nul = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (nul >= 0)
            dup2(nul, 0);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    int64_t end = cipc_now_ms() + BUS_SRV_START_TIMEOUT_MS;
    while (!bus_srv_ready(s)) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "bus_srv: %s exited (status 0x%x); log in %s/server.log\n", argv[0], st,
                    s->dir);
            char cmd[256];
            snprintf(cmd, sizeof cmd, "cat %s/server.log >&2", s->dir);
            bus_sh(cmd);
            CHECK(!"server exited");
        }
        CHECK(cipc_now_ms() < end);
        cipc_sleep_ms(20); /* polling for readiness, bounded by the deadline above */
    }
}

static inline void bus_srv_start(bus_srv *s, const bus_srv_opts *o)
{
    memset(s, 0, sizeof *s);
    s->o = *o;
    snprintf(s->dir, sizeof s->dir, "/tmp/cipc-bus-XXXXXX");
    CHECK(mkdtemp(s->dir) != NULL);
    s->port = o->port ? o->port : bus_free_port();
    snprintf(s->unix_path, sizeof s->unix_path, "%s/redis.sock", s->dir);
    snprintf(s->unix_url, sizeof s->unix_url, "unix://%s", s->unix_path);
    if (o->tls) {
        bus_make_certs(s);
        snprintf(s->url, sizeof s->url, "rediss://localhost:%d", s->port);
    } else {
        snprintf(s->url, sizeof s->url, "redis://127.0.0.1:%d", s->port);
    }
    bus_srv_spawn(s);
}

/* Kill the server with `sig` and reap it (SIGTERM or SIGKILL). */
static inline void bus_srv_kill(bus_srv *s, int sig)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGCONT);
    kill(s->pid, sig);
    int st;
    int64_t end = cipc_now_ms() + 5000;
    while (waitpid(s->pid, &st, WNOHANG) != s->pid) {
        if (cipc_now_ms() > end) {
            fprintf(stderr, "bus_srv: server %d ignored signal %d for 5 s: SIGKILL\n",
                    (int)s->pid, sig);
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
            break;
        }
        cipc_sleep_ms(10);
    }
    s->pid = -1;
}

static inline void bus_srv_restart(bus_srv *s)
{
    bus_srv_spawn(s);
}

static inline void bus_srv_stop(bus_srv *s)
{
    bus_srv_kill(s, SIGTERM);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s->dir);
    bus_sh(cmd);
}

/* A URL for the server with a different scheme/userinfo: fmt gets the port. */
static inline cipc_bus *bus_open(const char *url, const cipc_bus_opts *o)
{
    cipc_bus *b = NULL;
    int rc = cipc_bus_connect(url, o, &b);
    if (rc < 0)
        fprintf(stderr, "cipc_bus_connect(%s): %s\n", url, cipc_strerror(rc));
    CHECK_INT(rc, ==, 0);
    return b;
}

/* Listen until an event of `type` arrives (others are skipped), within `ms`. */
static inline void bus_expect(cipc_bus *b, cipc_bus_msg *m, cipc_bus_msg_type type, long ms)
{
    int64_t end = cipc_now_ms() + ms;
    for (;;) {
        long left = (long)(end - cipc_now_ms());
        CHECK_INT(left, >, 0);
        int rc = cipc_bus_listen(b, m, left);
        if (rc == CIPC_ETIMEOUT)
            continue;
        if (rc < 0)
            fprintf(stderr, "listen: %s (%s)\n", cipc_strerror(rc), cipc_bus_errmsg(b));
        CHECK_INT(rc, ==, 0);
        if ((int)m->type == (int)type)
            return;
        fprintf(stderr, "(skipping event type %d)\n", m->type);
    }
}

#endif
