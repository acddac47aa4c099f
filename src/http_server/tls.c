/* TLS for the server: OpenSSL with memory BIOs, so libuv keeps doing the socket I/O.
 * Ciphertext read from the socket is fed to the connection's SSL object and the
 * plaintext lands in the connection's read buffer; responses are encrypted before they
 * are written. One SSL_CTX per server, shared by every worker (SSL_new is thread-safe). */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_server/internal.h"

/* ALPN: we speak http/1.1 only. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    static const unsigned char h11[] = "\x08http/1.1";
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, h11, sizeof h11 - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static void ssl_error_text(char *buf, size_t size)
{
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, size);
    else
        snprintf(buf, size, "unknown TLS error");
    ERR_clear_error();
}

int cipc__tls_ctx_new(cipc_server *s)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return -ENOMEM;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    char why[200];
    if (SSL_CTX_use_certificate_chain_file(ctx, s->o.tls_cert) != 1) {
        ssl_error_text(why, sizeof why);
        snprintf(s->errmsg, sizeof s->errmsg, "TLS certificate '%.60s': %s", s->o.tls_cert, why);
        SSL_CTX_free(ctx);
        return CIPC_ETLS;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, s->o.tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ssl_error_text(why, sizeof why);
        snprintf(s->errmsg, sizeof s->errmsg, "TLS key '%.60s': %s", s->o.tls_key, why);
        SSL_CTX_free(ctx);
        return CIPC_ETLS;
    }
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    s->ssl_ctx = ctx;
    return 0;
}

void cipc__tls_ctx_free(cipc_server *s)
{
    if (s->ssl_ctx)
        SSL_CTX_free(s->ssl_ctx);
    s->ssl_ctx = NULL;
}

int cipc__tls_conn_new(struct conn *c)
{
    SSL *ssl = SSL_new(c->w->srv->ssl_ctx);
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    if (!ssl || !rbio || !wbio) {
        SSL_free(ssl);
        BIO_free(rbio);
        BIO_free(wbio);
        return -ENOMEM;
    }
    SSL_set_bio(ssl, rbio, wbio); /* the SSL owns both BIOs now */
    SSL_set_accept_state(ssl);
    c->ssl = ssl;
    return 0;
}

void cipc__tls_conn_free(struct conn *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    c->ssl = NULL;
}

/* Send whatever OpenSSL has queued for the peer (handshake messages, records). */
static int flush_out(struct conn *c, int close_after)
{
    BIO *wbio = SSL_get_wbio(c->ssl);
    size_t pending = BIO_ctrl_pending(wbio);
    if (pending == 0) {
        return close_after ? cipc__conn_raw_send(c, NULL, 0, 1) : 0;
    }
    cipc_buf *b = &c->w->tls_out;
    cipc_buf_reset(b);
    if (cipc_buf_reserve(b, pending) < 0)
        return -ENOMEM;
    int n = BIO_read(wbio, b->data, (int)pending);
    if (n <= 0)
        return 0;
    return cipc__conn_raw_send(c, b->data, (size_t)n, close_after);
}

int cipc__tls_feed(struct conn *c, const char *cipher, size_t n)
{
    BIO *rbio = SSL_get_rbio(c->ssl);
    while (n > 0) {
        int w = BIO_write(rbio, cipher, (int)n);
        if (w <= 0)
            return CIPC_ETLS;
        cipher += w;
        n -= (size_t)w;
    }
    for (;;) {
        if (cipc__conn_buf_grow(c, 4096) < 0)
            return -ENOMEM;
        int got = SSL_read(c->ssl, c->buf + c->len, (int)(c->cap - c->len));
        if (got > 0) {
            c->len += (size_t)got;
            continue;
        }
        int err = SSL_get_error(c->ssl, got);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
            break;
        ERR_clear_error();
        flush_out(c, 0); /* a TLS alert, if any */
        return err == SSL_ERROR_ZERO_RETURN ? CIPC_ECLOSING : CIPC_ETLS;
    }
    return flush_out(c, 0);
}

int cipc__tls_send(struct conn *c, const char *data, size_t len, int close_after)
{
    while (len > 0) {
        int chunk = len > (1 << 30) ? (1 << 30) : (int)len;
        int w = SSL_write(c->ssl, data, chunk);
        if (w <= 0) {
            ERR_clear_error();
            return CIPC_ETLS;
        }
        data += w;
        len -= (size_t)w;
        /* Flush as we go so the staging buffer stays the size of one chunk. */
        if (len > 0) {
            int rc = flush_out(c, 0);
            if (rc < 0)
                return rc;
        }
    }
    return flush_out(c, close_after);
}
