/* src/broker/aof.c -- the broker's append-only file (cipc/broker.h): replay at start,
 * append before replies leave, fsync always / every second / never, and rewrites in a
 * forked child. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker/internal.h"
#include "cipc/log.h"
#include "cipc/time.h"

#define READ_CHUNK (256 * 1024)

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Encode one command as a RESP multibulk. */
static int encode(cipc_buf *o, size_t argc, const char **argv, const size_t *argl)
{
    if (cipc__resp_array(o, argc) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < argc; i++)
        if (cipc__resp_bulk(o, argv[i], argl[i]) < 0)
            return -ENOMEM;
    return 0;
}

/* --- replay ---------------------------------------------------------------------------- */

static int replay(cipc_broker *b, int fd)
{
    bclient *fake = calloc(1, sizeof *fake);
    char *buf = malloc(READ_CHUNK);
    if (!fake || !buf) {
        free(fake);
        free(buf);
        return -ENOMEM;
    }
    fake->b = b;
    fake->authed = 1;
    fake->out = (cipc_buf)CIPC_BUF_INIT;
    cipc__dict_init(&fake->channels);
    cipc__dict_init(&fake->patterns);
    cipc__resp_parser_init(&fake->parser, NULL);
    b->loading = 1;
    int64_t off = 0, good = 0; /* good: end of the last complete command */
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = CIPC_EFILE;
            break;
        }
        if (n == 0)
            break;
        size_t pos = 0;
        while (pos < (size_t)n) {
            size_t used = 0;
            int prc = cipc__resp_parse(&fake->parser, buf + pos, (size_t)n - pos, &used);
            if (prc < 0) {
                cipc_log(CIPC_LOG_ERROR, "broker", "%s: bad command at byte %lld: %s", b->aof_path,
                               (long long)(off + (int64_t)pos + (int64_t)used), fake->parser.err);
                rc = prc == CIPC_EPROTO ? CIPC_EPROTO : prc;
                goto done;
            }
            pos += used;
            if (prc == 0)
                break;
            cipc__cmd_exec(b, fake, fake->parser.argc, fake->parser.argv, fake->parser.argl);
            fake->out.len = 0;
            good = off + (int64_t)pos;
        }
        off += n;
    }
done:
    b->loading = 0;
    if (rc == 0 && good < off) {
        /* A command cut short by a crash: drop it, as aof-load-truncated does. */
        cipc_log(CIPC_LOG_WARN, "broker", "%s: dropping a truncated last command (%lld bytes)",
                      b->aof_path, (long long)(off - good));
        if (ftruncate(fd, good) < 0)
            rc = CIPC_EFILE;
        off = good;
    }
    b->aof_size = b->aof_base_size = off;
    cipc__resp_parser_free(&fake->parser);
    cipc_buf_free(&fake->out);
    cipc__dict_free(&fake->channels, NULL);
    cipc__dict_free(&fake->patterns, NULL);
    free(fake);
    free(buf);
    return rc;
}

int cipc__aof_open(cipc_broker *b)
{
    int fd = open(b->aof_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        cipc_log(CIPC_LOG_ERROR, "broker", "cannot open %s: %s", b->aof_path, strerror(errno));
        return CIPC_EFILE;
    }
    int rc = replay(b, fd);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    if (lseek(fd, 0, SEEK_END) < 0) {
        close(fd);
        return CIPC_EFILE;
    }
    b->aof_fd = fd;
    b->aof_last_fsync_ms = cipc_now_ms();
    return 0;
}

/* --- appending -------------------------------------------------------------------------- */

void cipc__aof_append(cipc_broker *b, size_t argc, const char **argv, const size_t *argl)
{
    if (b->aof_fd < 0)
        return;
    encode(&b->aof_buf, argc, argv, argl);
    if (b->aof_child > 0)
        encode(&b->aof_rewrite_buf, argc, argv, argl);
}

static void fsync_work(uv_work_t *w)
{
    cipc_broker *b = w->data;
    fdatasync(b->aof_fd);
}

static void fsync_done(uv_work_t *w, int status)
{
    (void)status;
    cipc_broker *b = w->data;
    b->aof_fsync_busy = 0;
}

int cipc__aof_flush(cipc_broker *b)
{
    if (b->aof_fd < 0 || b->aof_buf.len == 0)
        return 0;
    int rc = write_all(b->aof_fd, b->aof_buf.data, b->aof_buf.len);
    if (rc < 0) {
        /* Kept in the buffer and tried again on the next flush. */
        cipc_log(CIPC_LOG_ERROR, "broker", "writing %s: %s", b->aof_path, strerror(-rc));
        return rc;
    }
    b->aof_size += (int64_t)b->aof_buf.len;
    b->aof_buf.len = 0;
    if (b->aof_buf.cap > 1u << 20)
        cipc_buf_free(&b->aof_buf);
    if (b->o.appendfsync == CIPC_BROKER_FSYNC_ALWAYS) {
        while (fdatasync(b->aof_fd) < 0 && errno == EINTR) {
        }
        b->aof_last_fsync_ms = cipc_now_ms();
    } else {
        b->aof_dirty = 1;
    }
    return 0;
}

/* --- rewrite ------------------------------------------------------------------------------ */

/* The child's output: a buffer allocated by the parent before fork(). The child of a
 * threaded process must not call malloc (another thread may have held an allocator lock
 * at the fork, and the child would wait for it forever: seen under ASan), so the child
 * only copies into this buffer, writes it out when full, and writes pieces larger than
 * the buffer straight to the file. */
#define REWRITE_BUF (1u << 20)

struct wout {
    int fd;
    char *buf;
    size_t len;
    int err;
};

static void w_flush(struct wout *w)
{
    if (!w->err && w->len && write_all(w->fd, w->buf, w->len) < 0)
        w->err = 1;
    w->len = 0;
}

static void w_put(struct wout *w, const void *p, size_t n)
{
    if (w->len + n > REWRITE_BUF)
        w_flush(w);
    if (n > REWRITE_BUF) {
        if (!w->err && write_all(w->fd, p, n) < 0)
            w->err = 1;
        return;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

/* "<c><n>\r\n": an array or bulk header. */
static void w_head(struct wout *w, char c, size_t n)
{
    char h[32];
    int k = snprintf(h, sizeof h, "%c%zu\r\n", c, n);
    w_put(w, h, (size_t)k);
}

static void w_bulk(struct wout *w, const void *p, size_t n)
{
    w_head(w, '$', n);
    w_put(w, p, n);
    w_put(w, "\r\n", 2);
}

/* In the child: the dataset as RPUSH commands, 64 items each. */
static int rewrite_dump(cipc_broker *b, int fd, char *buf)
{
    struct wout w = {fd, buf, 0, 0};
    size_t bk = 0;
    dict_entry *e = NULL;
    while (cipc__dict_next(&b->db, &bk, &e)) {
        blist *l = e->val;
        for (size_t i = 0; i < l->n; i += 64) {
            size_t n = l->n - i < 64 ? l->n - i : 64;
            w_head(&w, '*', n + 2);
            w_bulk(&w, "RPUSH", 5);
            w_bulk(&w, e->key, e->klen);
            for (size_t k = 0; k < n; k++) {
                litem *it = cipc__list_at(l, i + k);
                w_bulk(&w, it->data, it->len);
            }
        }
    }
    w_flush(&w);
    return w.err ? -1 : fsync(fd);
}

int cipc__aof_rewrite_start(cipc_broker *b)
{
    if (b->aof_fd < 0 || b->aof_child > 0)
        return -EBUSY;
    cipc__aof_flush(b);
    free(b->aof_tmp);
    b->aof_tmp = NULL;
    cipc_buf name = CIPC_BUF_INIT;
    if (cipc_buf_printf(&name, "%s.rewrite.%d", b->aof_path, (int)getpid()) < 0)
        return -ENOMEM;
    b->aof_tmp = cipc_buf_steal(&name, NULL);
    char *buf = malloc(REWRITE_BUF); /* the child's only memory (see struct wout) */
    if (!buf)
        return -ENOMEM;
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        free(buf);
        return -err;
    }
    if (pid == 0) {
        int fd = open(b->aof_tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        _exit(fd < 0 || rewrite_dump(b, fd, buf) < 0 ? 1 : 0);
    }
    free(buf);
    b->aof_child = pid;
    b->aof_rewrite_buf.len = 0;
    return 0;
}

/* The child has exited with `status`: install its file, or drop it. */
static void rewrite_done(cipc_broker *b, int status)
{
    b->aof_child = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        cipc_log(CIPC_LOG_ERROR, "broker", "AOF rewrite failed");
        unlink(b->aof_tmp);
        b->aof_rewrite_buf.len = 0;
        return;
    }
    cipc__aof_flush(b); /* everything up to now is in the old file (and the rewrite buf) */
    int fd = open(b->aof_tmp, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0 || write_all(fd, b->aof_rewrite_buf.data ? b->aof_rewrite_buf.data : "",
                            b->aof_rewrite_buf.len) < 0 ||
        fsync(fd) < 0 || rename(b->aof_tmp, b->aof_path) < 0) {
        cipc_log(CIPC_LOG_ERROR, "broker", "installing the rewritten AOF: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(b->aof_tmp);
        b->aof_rewrite_buf.len = 0;
        return;
    }
    close(b->aof_fd);
    struct stat st;
    b->aof_fd = open(b->aof_path, O_WRONLY | O_APPEND | O_CLOEXEC);
    close(fd);
    if (b->aof_fd < 0) {
        cipc_log(CIPC_LOG_ERROR, "broker", "reopening %s: %s", b->aof_path, strerror(errno));
        return;
    }
    if (fstat(b->aof_fd, &st) == 0)
        b->aof_size = b->aof_base_size = st.st_size;
    b->aof_rewrite_buf.len = 0;
    cipc_buf_free(&b->aof_rewrite_buf);
    b->aof_rewrites++;
    cipc_log(CIPC_LOG_INFO, "broker", "AOF rewritten (%lld bytes)", (long long)b->aof_size);
}

void cipc__aof_cron(cipc_broker *b)
{
    if (b->aof_child > 0 && !b->aof_fsync_busy) { /* not while a fsync uses the old fd */
        int status;
        pid_t r = waitpid(b->aof_child, &status, WNOHANG);
        if (r == b->aof_child)
            rewrite_done(b, status);
    }
    int64_t now = cipc_now_ms();
    if (b->o.appendfsync == CIPC_BROKER_FSYNC_EVERYSEC && b->aof_dirty && !b->aof_fsync_busy &&
        now - b->aof_last_fsync_ms >= 1000) {
        b->aof_dirty = 0;
        b->aof_fsync_busy = 1;
        b->aof_last_fsync_ms = now;
        b->aof_fsync_work.data = b;
        if (uv_queue_work(b->uv, &b->aof_fsync_work, fsync_work, fsync_done) < 0) {
            b->aof_fsync_busy = 0;
            fdatasync(b->aof_fd);
        }
    }
    if (b->o.aof_rewrite_percentage > 0 && b->aof_child == 0 &&
        b->aof_size >= (int64_t)b->o.aof_rewrite_min_size &&
        b->aof_size >= b->aof_base_size + b->aof_base_size * b->o.aof_rewrite_percentage / 100)
        cipc__aof_rewrite_start(b);
}

void cipc__aof_close(cipc_broker *b)
{
    int64_t deadline = cipc_now_ms() + 5000;
    while (b->aof_fsync_busy && cipc_now_ms() < deadline) /* its thread uses aof_fd */
        uv_run(b->uv, UV_RUN_ONCE);
    if (b->aof_child > 0) {
        kill(b->aof_child, SIGKILL);
        while (waitpid(b->aof_child, NULL, 0) < 0 && errno == EINTR) {
        }
        b->aof_child = 0;
        if (b->aof_tmp)
            unlink(b->aof_tmp);
    }
    if (b->aof_fd >= 0) {
        cipc__aof_flush(b);
        if (b->o.appendfsync != CIPC_BROKER_FSYNC_NO)
            fdatasync(b->aof_fd);
        close(b->aof_fd);
        b->aof_fd = -1;
    }
    cipc_buf_free(&b->aof_buf);
    cipc_buf_free(&b->aof_rewrite_buf);
    free(b->aof_tmp);
    b->aof_tmp = NULL;
}
