/* The TLS tunnel for rediss:// URLs. hiredis 0.14 has no TLS, so the bus speaks plain
 * RESP over one end of a socketpair and a thread of the tunnel's own pumps the bytes
 * between the other end and an OpenSSL connection to the server:
 *
 *     bus (hiredis reader) <-> app_fd ==socketpair== pair_fd <-> [pump thread] <-> TLS/TCP
 *
 * The handshake runs on the caller's thread, before the thread starts, so certificate
 * errors are returned by connect. The thread exits when either side closes: the bus
 * closing app_fd (its pair_fd then reads EOF / gets POLLHUP), or the server closing or
 * failing (the thread then closes pair_fd, so the bus reads EOF). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "bus/internal.h"

struct cipc__bus_tunnel {
    pthread_t thread;
    SSL_CTX *ctx;
    SSL *ssl;
    int tcp_fd;
    int pair_fd;
};

static void tls_err(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[200] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "%s%s%s", what, *buf ? ": " : "", buf);
    ERR_clear_error();
}

/* Wait for what OpenSSL asked for. Returns 1 ready, 0 timeout, < 0 error. */
static int ssl_wait(SSL *ssl, int fd, int ret, cipc_deadline d)
{
    int e = SSL_get_error(ssl, ret);
    if (e == SSL_ERROR_WANT_READ)
        return cipc__bus_poll(fd, POLLIN, d);
    if (e == SSL_ERROR_WANT_WRITE)
        return cipc__bus_poll(fd, POLLOUT, d);
    return -1;
}

/* Write all of buf to the bus's side. Returns 0 or -1 (the bus closed its end). */
static int pair_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* The pump. Both sockets are non-blocking except for writes to pair_fd (the bus reads
 * those; blocking there is the backpressure that stops us reading the server). */
static void *pump(void *arg)
{
    struct cipc__bus_tunnel *t = arg;
    char out[16384]; /* bytes from the bus not yet written to TLS */
    size_t out_len = 0, out_off = 0;
    int want_write_on_read = 0; /* SSL_read asked for POLLOUT */
    int write_wants = 0;        /* pending SSL_write wants POLLIN (1) or POLLOUT (2) */
    char in[16384];
    for (;;) {
        struct pollfd p[2] = {{.fd = t->tcp_fd, .events = POLLIN},
                              {.fd = t->pair_fd, .events = out_len ? 0 : POLLIN}};
        if (want_write_on_read || write_wants == 2)
            p[0].events |= POLLOUT;
        int r = poll(p, 2, -1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        if (p[1].revents & (POLLHUP | POLLERR | POLLNVAL))
            if (!(p[1].revents & POLLIN) || out_len)
                break;
        if (!out_len && (p[1].revents & POLLIN)) {
            ssize_t n = recv(t->pair_fd, out, sizeof out, MSG_DONTWAIT);
            if (n == 0)
                break; /* the bus closed its end */
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                break;
            if (n > 0) {
                out_len = (size_t)n;
                out_off = 0;
            }
        }
        /* Read everything TLS has (SSL_read until it wants more bytes), so no decrypted
         * data sits in OpenSSL's buffer unseen by poll. */
        want_write_on_read = 0;
        for (;;) {
            int n = SSL_read(t->ssl, in, sizeof in);
            if (n > 0) {
                if (pair_write_all(t->pair_fd, in, (size_t)n) < 0)
                    goto done;
                continue;
            }
            int e = SSL_get_error(t->ssl, n);
            if (e == SSL_ERROR_WANT_READ)
                break;
            if (e == SSL_ERROR_WANT_WRITE) {
                want_write_on_read = 1;
                break;
            }
            goto done; /* closed by the server, or an error */
        }
        write_wants = 0;
        while (out_off < out_len) {
            int n = SSL_write(t->ssl, out + out_off, (int)(out_len - out_off));
            if (n > 0) {
                out_off += (size_t)n;
                continue;
            }
            int e = SSL_get_error(t->ssl, n);
            if (e == SSL_ERROR_WANT_READ)
                write_wants = 1;
            else if (e == SSL_ERROR_WANT_WRITE)
                write_wants = 2;
            else
                goto done;
            break;
        }
        if (out_off >= out_len)
            out_len = out_off = 0;
    }
done:
    /* The bus reads EOF from now on. */
    shutdown(t->pair_fd, SHUT_RDWR);
    return NULL;
}

int cipc__bus_tunnel_open(const char *host, int port, const char *ca_file, int insecure,
                          cipc_deadline d, int *fd_out, struct cipc__bus_tunnel **out, char *err,
                          size_t errlen)
{
    struct cipc__bus_tunnel *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->tcp_fd = t->pair_fd = -1;
    int app_fd = -1;
    /* OpenSSL writes to the socket with write(): a server that has gone would raise
     * SIGPIPE. Block it on this thread for the handshake (the pump thread, created with
     * this mask, keeps it blocked), and discard one raised meanwhile. */
    sigset_t pipe_set, old_mask, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
    int rc = cipc__bus_tcp_connect(host, port, d, err, errlen);
    if (rc < 0)
        goto fail;
    t->tcp_fd = rc;
    rc = CIPC_ETLS;
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (!t->ctx) {
        tls_err(err, errlen, "SSL_CTX_new");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    if (!insecure) {
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
        int ok = ca_file ? SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL)
                         : SSL_CTX_set_default_verify_paths(t->ctx);
        if (ok != 1) {
            tls_err(err, errlen, ca_file ? "loading the CA file" : "loading the system CAs");
            rc = CIPC_EFILE;
            goto fail;
        }
    }
    t->ssl = SSL_new(t->ctx);
    if (!t->ssl) {
        tls_err(err, errlen, "SSL_new");
        goto fail;
    }
    struct in6_addr a6;
    struct in_addr a4;
    int is_ip = inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
    if (!is_ip)
        SSL_set_tlsext_host_name(t->ssl, host);
    if (!insecure) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
        if (is_ip)
            X509_VERIFY_PARAM_set1_ip_asc(vp, host);
        else
            X509_VERIFY_PARAM_set1_host(vp, host, 0);
    }
    fcntl(t->tcp_fd, F_SETFL, fcntl(t->tcp_fd, F_GETFL) | O_NONBLOCK);
    SSL_set_fd(t->ssl, t->tcp_fd);
    for (;;) {
        int r = SSL_connect(t->ssl);
        if (r == 1)
            break;
        int w = ssl_wait(t->ssl, t->tcp_fd, r, d);
        if (w > 0)
            continue;
        if (w == 0) {
            snprintf(err, errlen, "TLS handshake timed out");
            rc = CIPC_ECONNTIMEOUT;
        } else if (SSL_get_verify_result(t->ssl) != X509_V_OK) {
            snprintf(err, errlen, "certificate verification failed: %s",
                     X509_verify_cert_error_string(SSL_get_verify_result(t->ssl)));
            ERR_clear_error();
            rc = CIPC_ECERT;
        } else {
            tls_err(err, errlen, "TLS handshake failed");
        }
        goto fail;
    }
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        rc = -errno;
        goto fail;
    }
    app_fd = sp[0];
    t->pair_fd = sp[1];
    int e = pthread_create(&t->thread, NULL, pump, t);
    if (e != 0) {
        snprintf(err, errlen, "pthread_create: %s", strerror(e));
        rc = -e;
        goto fail;
    }
    *fd_out = app_fd;
    *out = t;
    rc = 0;
    goto restore_mask;
fail:
    if (app_fd >= 0)
        close(app_fd);
    if (t->pair_fd >= 0)
        close(t->pair_fd);
    if (t->ssl)
        SSL_free(t->ssl);
    if (t->ctx)
        SSL_CTX_free(t->ctx);
    if (t->tcp_fd >= 0)
        close(t->tcp_fd);
    free(t);
restore_mask:
    if (!was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) > 0) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    return rc;
}

void cipc__bus_tunnel_free(struct cipc__bus_tunnel *t)
{
    if (!t)
        return;
    pthread_join(t->thread, NULL);
    SSL_free(t->ssl);
    SSL_CTX_free(t->ctx);
    close(t->tcp_fd);
    close(t->pair_fd);
    free(t);
}
