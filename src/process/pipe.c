/* src/process/pipe.c -- cipc_pipe: a duplex message channel over an AF_UNIX stream
 * socketpair. Each message is a 4-byte length (big-endian) followed by its bytes.
 * (SOCK_SEQPACKET would keep boundaries for us, but caps a message at the socket buffer
 * size, far below the 64 MiB default limit.)
 *
 * The fd stays in blocking mode (it is shared with forked children and may be handed to
 * other code); every read and write uses MSG_DONTWAIT and waits with poll() against a
 * monotonic deadline. recv keeps a partly received message in the handle, so a timeout
 * loses nothing and the next call resumes. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cipc/process.h"
#include "cipc/time.h"

struct cipc_pipe {
    int fd;
    size_t max;
    int broken; /* a send timed out part-way: the stream is out of step */
    unsigned char hdr[4];
    size_t hdr_got;  /* bytes of the length prefix received so far (0..4) */
    size_t body_len; /* valid once hdr_got == 4 */
    size_t body_got;
    unsigned char *body; /* body_len + 1 bytes, or NULL while discarding */
    int discarding;      /* skipping a message over the limit */
};

int cipc_pipe_new(cipc_pipe **a, cipc_pipe **b)
{
    if (!a || !b)
        return -EINVAL;
    cipc_pipe *pa = calloc(1, sizeof *pa), *pb = calloc(1, sizeof *pb);
    if (!pa || !pb) {
        free(pa);
        free(pb);
        return -ENOMEM;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        int rc = -errno;
        free(pa);
        free(pb);
        return rc;
    }
    pa->fd = sv[0];
    pb->fd = sv[1];
    pa->max = pb->max = CIPC_PIPE_DEFAULT_MAX;
    *a = pa;
    *b = pb;
    return 0;
}

void cipc_pipe_set_max(cipc_pipe *p, size_t max_bytes)
{
    if (!p)
        return;
    if (max_bytes == 0)
        max_bytes = CIPC_PIPE_DEFAULT_MAX;
    if (max_bytes > UINT32_MAX)
        max_bytes = UINT32_MAX;
    p->max = max_bytes;
}

int cipc_pipe_fd(const cipc_pipe *p)
{
    return p ? p->fd : -1;
}

void cipc_pipe_close(cipc_pipe *p)
{
    if (!p)
        return;
    if (p->fd >= 0)
        close(p->fd);
    free(p->body);
    free(p);
}

/* Wait until `fd` is ready for `events` or `d` passes. Returns 1 ready, 0 timed out,
 * or -errno. Called by send, recv and poll. */
static int wait_fd(int fd, short events, cipc_deadline d)
{
    for (;;) {
        int64_t left = cipc_deadline_remaining_ms(d);
        int t = left < 0 || left > INT_MAX ? -1 : (int)left;
        struct pollfd pf = {.fd = fd, .events = events};
        int r = poll(&pf, 1, t);
        if (r > 0)
            return 1;
        if (r == 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

int cipc_pipe_poll(cipc_pipe *p, long timeout_ms)
{
    if (!p || p->fd < 0)
        return -EINVAL;
    return wait_fd(p->fd, POLLIN, cipc_deadline_in(timeout_ms));
}

/* Write all of buf[0..len) by pieces, or stop at the deadline. *sent counts what went
 * out. Returns 0, CIPC_ETIMEOUT or -errno. Called by send for the prefix and the body. */
static int write_all(cipc_pipe *p, const unsigned char *buf, size_t len, size_t *sent,
                     cipc_deadline d)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(p->fd, buf + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            *sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int w = wait_fd(p->fd, POLLOUT, d);
        if (w < 0)
            return w;
        if (w == 0)
            return CIPC_ETIMEOUT;
    }
    return 0;
}

int cipc_pipe_send_bytes(cipc_pipe *p, const void *data, size_t len, long timeout_ms)
{
    if (!p || p->fd < 0 || (len && !data))
        return -EINVAL;
    if (p->broken)
        return CIPC_EPROTO;
    if (len > p->max)
        return CIPC_ETOOBIG;
    cipc_deadline d = cipc_deadline_in(timeout_ms);
    unsigned char hdr[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                            (unsigned char)(len >> 8), (unsigned char)len};
    size_t sent = 0;
    int rc = write_all(p, hdr, sizeof hdr, &sent, d);
    if (rc == 0 && len)
        rc = write_all(p, data, len, &sent, d);
    if (rc < 0 && sent > 0)
        p->broken = 1; /* part of a message is in the stream: nothing can follow it */
    return rc;
}

/* Read what is available into dst (up to want bytes) without blocking. Returns the
 * count (> 0), 0 at EOF, CIPC_EAGAIN when nothing is there yet, or -errno. A NULL dst
 * reads into a scratch buffer and drops the bytes (discarding an oversize message). */
static ssize_t read_some(cipc_pipe *p, void *dst, size_t want)
{
    unsigned char scratch[65536];
    if (!dst) {
        dst = scratch;
        if (want > sizeof scratch)
            want = sizeof scratch;
    }
    for (;;) {
        ssize_t n = recv(p->fd, dst, want, MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return CIPC_EAGAIN;
        return -errno;
    }
}

static void reset_msg(cipc_pipe *p)
{
    p->hdr_got = 0;
    p->body_len = 0;
    p->body_got = 0;
    p->body = NULL;
    p->discarding = 0;
}

int cipc_pipe_recv_bytes(cipc_pipe *p, void **data, size_t *len, long timeout_ms)
{
    if (!p || p->fd < 0 || !data || !len)
        return -EINVAL;
    cipc_deadline d = cipc_deadline_in(timeout_ms);
    for (;;) {
        ssize_t n;
        if (p->hdr_got < sizeof p->hdr) {
            n = read_some(p, p->hdr + p->hdr_got, sizeof p->hdr - p->hdr_got);
        } else if (p->body_got < p->body_len) {
            n = read_some(p, p->discarding ? NULL : p->body + p->body_got,
                          p->body_len - p->body_got);
        } else {
            n = 0; /* unreachable: a complete message returns below */
        }
        if (n == CIPC_EAGAIN) {
            int w = wait_fd(p->fd, POLLIN, d);
            if (w < 0)
                return w;
            if (w == 0)
                return CIPC_ETIMEOUT;
            continue;
        }
        if (n < 0)
            return (int)n;
        if (n == 0) { /* EOF */
            int mid = p->hdr_got > 0;
            free(p->body);
            reset_msg(p);
            return mid ? CIPC_ETRUNCATED : CIPC_ECLOSING;
        }
        if (p->hdr_got < sizeof p->hdr) {
            p->hdr_got += (size_t)n;
            if (p->hdr_got < sizeof p->hdr)
                continue;
            p->body_len = (size_t)p->hdr[0] << 24 | (size_t)p->hdr[1] << 16 |
                          (size_t)p->hdr[2] << 8 | (size_t)p->hdr[3];
            p->body_got = 0;
            if (p->body_len > p->max) {
                p->discarding = 1; /* the next calls skip its bytes */
                return CIPC_ETOOBIG;
            }
            p->body = malloc(p->body_len + 1);
            if (!p->body) {
                /* Skip it rather than leave the stream stuck on a message we cannot hold. */
                p->discarding = 1;
                return -ENOMEM;
            }
        } else {
            p->body_got += (size_t)n;
        }
        if (p->body_got == p->body_len) {
            if (p->discarding) {
                reset_msg(p);
                continue;
            }
            p->body[p->body_len] = 0;
            *data = p->body;
            *len = p->body_len;
            reset_msg(p);
            return 0;
        }
    }
}
