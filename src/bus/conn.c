/* cipc_bus connections: URL parsing, options, TCP/Unix connect with a deadline, the
 * handshake (AUTH, SELECT, CLIENT SETNAME), and command I/O where every wait is a poll()
 * with a deadline. hiredis formats commands (redisFormatCommandArgv) and parses replies
 * (redisReader); the sockets are ours. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bus/internal.h"
#include "cipc/buf.h"
#include "cipc/url.h"

/* ---- URL ---------------------------------------------------------------------------- */

/* Percent-decode u[part] into a new string. Returns it, or NULL (bad escape, NUL byte
 * or no memory: *rc says which). */
static char *dup_decoded(const char *s, cipc_url_part p, int *rc)
{
    cipc_buf b = CIPC_BUF_INIT;
    int r = cipc_url_decode(s + p.off, p.len, 0, &b);
    if (r == 0 && cipc_buf_append(&b, "", 0) < 0)
        r = -ENOMEM;
    if (r == 0 && strlen(b.data) != b.len)
        r = CIPC_EURL; /* an embedded NUL */
    if (r < 0) {
        cipc_buf_free(&b);
        *rc = r;
        return NULL;
    }
    return cipc_buf_steal(&b, NULL);
}

void cipc__bus_url_free(struct cipc__bus_url *u)
{
    free(u->host);
    free(u->path);
    free(u->user);
    free(u->pass);
    memset(u, 0, sizeof *u);
}

int cipc__bus_url_parse(const char *url, struct cipc__bus_url *out)
{
    struct cipc__bus_url u = {0};
    int rc = 0;
    if (!url)
        return CIPC_EURL;
    if (strncasecmp(url, "unix://", 7) == 0) {
        const char *path = url + 7;
        if (path[0] != '/' || path[1] == '\0' ||
            strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return CIPC_EURL;
        for (const char *p = path; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == '?' || *p == '#')
                return CIPC_EURL;
        u.kind = CIPC__BUS_UNIX;
        if (!(u.path = strdup(path)))
            return -ENOMEM;
        *out = u;
        return 0;
    }
    cipc_url pu;
    if (cipc_url_parse(url, strlen(url), &pu) < 0)
        return CIPC_EURL;
    if (pu.scheme.len == 5 && strncasecmp(url + pu.scheme.off, "redis", 5) == 0)
        u.kind = CIPC__BUS_TCP;
    else if (pu.scheme.len == 6 && strncasecmp(url + pu.scheme.off, "rediss", 6) == 0)
        u.kind = CIPC__BUS_TLS;
    else
        return CIPC_EURL;
    if (!(pu.flags & CIPC_URL_HAS_AUTHORITY) || pu.host.len == 0 ||
        (pu.flags & (CIPC_URL_HAS_QUERY | CIPC_URL_HAS_FRAGMENT)))
        return CIPC_EURL;
    if ((pu.flags & CIPC_URL_HAS_PORT) && pu.port_num == 0)
        return CIPC_EURL;
    u.port = (pu.flags & CIPC_URL_HAS_PORT) ? pu.port_num : 6379;
    /* The path: empty, "/", or "/<db>" with a decimal db number. */
    const char *path = url + pu.path.off;
    size_t plen = pu.path.len;
    if (plen > 1) {
        if (path[0] != '/' || plen > 6)
            return CIPC_EURL;
        int db = 0;
        for (size_t i = 1; i < plen; i++) {
            if (path[i] < '0' || path[i] > '9')
                return CIPC_EURL;
            db = db * 10 + (path[i] - '0');
        }
        u.db = db;
    }
    if (!(u.host = dup_decoded(url, pu.host, &rc)))
        goto fail;
    if (pu.flags & CIPC_URL_HAS_USERINFO) {
        const char *ui = url + pu.userinfo.off;
        const char *colon = memchr(ui, ':', pu.userinfo.len);
        if (!colon) { /* "redis://pass@host" is not accepted: ambiguous */
            rc = CIPC_EURL;
            goto fail;
        }
        cipc_url_part up = {pu.userinfo.off, (size_t)(colon - ui)};
        cipc_url_part pp = {pu.userinfo.off + up.len + 1, pu.userinfo.len - up.len - 1};
        if (up.len > 0 && !(u.user = dup_decoded(url, up, &rc)))
            goto fail;
        if (!(u.pass = dup_decoded(url, pp, &rc)))
            goto fail;
    }
    *out = u;
    return 0;
fail:
    cipc__bus_url_free(&u);
    return rc ? rc : CIPC_EURL;
}

/* ---- name sets: the subscription sets of the bus and the loop subscriber ----------- */

ssize_t cipc__bus_names_find(const struct cipc__bus_names *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], name) == 0)
            return (ssize_t)i;
    return -1;
}

/* Add (if absent). Returns 1 added, 0 present, -ENOMEM. */
int cipc__bus_names_add(struct cipc__bus_names *s, const char *name)
{
    if (cipc__bus_names_find(s, name) >= 0)
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    if (!(s->v[s->n] = strdup(name)))
        return -ENOMEM;
    s->n++;
    return 1;
}

void cipc__bus_names_del(struct cipc__bus_names *s, const char *name)
{
    ssize_t i = cipc__bus_names_find(s, name);
    if (i < 0)
        return;
    free(s->v[i]);
    s->v[i] = s->v[--s->n];
}

void cipc__bus_names_clear(struct cipc__bus_names *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    s->n = 0;
}

void cipc__bus_names_free(struct cipc__bus_names *s)
{
    cipc__bus_names_clear(s);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* ---- options ------------------------------------------------------------------------ */

static int dup_opt(const char *s, char **out)
{
    *out = NULL;
    if (s && !(*out = strdup(s)))
        return -ENOMEM;
    return 0;
}

int cipc__bus_cfg_init(struct cipc__bus_cfg *cfg, const char *url, const cipc_bus_opts *opts)
{
    cipc_bus_opts o = {0};
    if (opts) {
        size_t n = opts->size && opts->size < sizeof o ? opts->size : sizeof o;
        memcpy(&o, opts, n);
    }
    memset(cfg, 0, sizeof *cfg);
    if (o.client_name) {
        if (!*o.client_name || strlen(o.client_name) > 200)
            return -EINVAL;
        for (const char *p = o.client_name; *p; p++)
            if (*p <= ' ' || *p > '~')
                return -EINVAL; /* Redis refuses spaces and newlines in names */
    }
    int rc = cipc__bus_url_parse(url, &cfg->url);
    if (rc < 0)
        return rc;
    cfg->connect_timeout_ms = o.connect_timeout_ms ? o.connect_timeout_ms : 5000;
    cfg->command_timeout_ms = o.command_timeout_ms ? o.command_timeout_ms : 5000;
    cfg->ping_interval_ms = o.ping_interval_ms ? o.ping_interval_ms : 10000;
    cfg->ping_timeout_ms = o.ping_timeout_ms > 0 ? o.ping_timeout_ms : 5000;
    cfg->retry = o.reconnect;
    cfg->retry_forever = o.reconnect.max_attempts == 0;
    if (cfg->retry.cap_ms == 0)
        cfg->retry.cap_ms = 2000;
    cfg->insecure = o.insecure;
    cfg->skip_confirmations = o.skip_confirmations;
    cfg->visibility_ms = o.visibility_ms;
    if (dup_opt(o.client_name, &cfg->client_name) < 0 || dup_opt(o.ca_file, &cfg->ca_file) < 0) {
        cipc__bus_cfg_free(cfg);
        return -ENOMEM;
    }
    return 0;
}

void cipc__bus_cfg_free(struct cipc__bus_cfg *cfg)
{
    cipc__bus_url_free(&cfg->url);
    free(cfg->client_name);
    free(cfg->ca_file);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- sockets ------------------------------------------------------------------------ */

int cipc__bus_poll(int fd, short events, cipc_deadline d)
{
    for (;;) {
        int64_t left = cipc_deadline_remaining_ms(d);
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, left < 0 ? -1 : left > 1000000 ? 1000000 : (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r > 0)
            return r;
        if (cipc_deadline_expired(d))
            return 0;
    }
}

/* Non-blocking connect of `fd` to `sa` before `d`; leaves the socket blocking.
 * Returns 0, CIPC_ECONNECT or CIPC_ECONNTIMEOUT. */
static int connect_fd(int fd, const struct sockaddr *sa, socklen_t salen, cipc_deadline d,
                      char *err, size_t errlen)
{
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int r = connect(fd, sa, salen);
    if (r < 0 && errno != EINPROGRESS && errno != EINTR) {
        snprintf(err, errlen, "connect: %s", strerror(errno));
        return CIPC_ECONNECT;
    }
    if (r < 0) {
        int p = cipc__bus_poll(fd, POLLOUT, d);
        if (p == 0) {
            snprintf(err, errlen, "connect timed out");
            return CIPC_ECONNTIMEOUT;
        }
        int so = 0;
        socklen_t sl = sizeof so;
        if (p < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) < 0 || so != 0) {
            snprintf(err, errlen, "connect: %s", strerror(so ? so : p < 0 ? -p : errno));
            return CIPC_ECONNECT;
        }
    }
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return 0;
}

int cipc__bus_tcp_connect(const char *host, int port, cipc_deadline d, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int g = getaddrinfo(host, portstr, &hints, &res);
    if (g != 0) {
        snprintf(err, errlen, "resolving %s: %s", host, gai_strerror(g));
        return CIPC_EDNS;
    }
    int rc = CIPC_ECONNECT;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            snprintf(err, errlen, "socket: %s", strerror(errno));
            continue;
        }
        rc = connect_fd(fd, ai->ai_addr, ai->ai_addrlen, d, err, errlen);
        if (rc == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
            freeaddrinfo(res);
            return fd;
        }
        close(fd);
        if (rc == CIPC_ECONNTIMEOUT)
            break;
    }
    freeaddrinfo(res);
    return rc;
}

static int unix_connect(const char *path, cipc_deadline d, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return CIPC_ECONNECT;
    }
    int rc = connect_fd(fd, (struct sockaddr *)&sa, sizeof sa, d, err, errlen);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/* ---- connection --------------------------------------------------------------------- */

void cipc__bus_conn_init(struct cipc__bus_conn *c)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

void cipc__bus_conn_close(struct cipc__bus_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->tls)
        cipc__bus_tunnel_free(c->tls);
    c->tls = NULL;
    if (c->rd)
        redisReaderFree(c->rd);
    c->rd = NULL;
}

int cipc__bus_conn_send(struct cipc__bus_conn *c, int argc, const char **argv, const size_t *lens,
                        cipc_deadline d)
{
    if (c->fd < 0)
        return CIPC_ENET;
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (n < 0)
        return -ENOMEM;
    size_t off = 0;
    int rc = 0;
    while (off < (size_t)n) {
        ssize_t w = send(c->fd, cmd + off, (size_t)n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int p = cipc__bus_poll(c->fd, POLLOUT, d);
            if (p == 0) {
                snprintf(c->errmsg, sizeof c->errmsg, "timed out sending a command");
                rc = CIPC_ETIMEOUT;
                break;
            }
            if (p > 0)
                continue;
        }
        snprintf(c->errmsg, sizeof c->errmsg, "send: %s", strerror(errno));
        rc = CIPC_ENET;
        break;
    }
    redisFreeCommand(cmd);
    if (rc < 0)
        cipc__bus_conn_close(c); /* a partial command cannot be taken back */
    return rc;
}

int cipc__bus_conn_buffered(struct cipc__bus_conn *c, redisReply **out)
{
    void *r = NULL;
    if (!c->rd)
        return 0;
    if (redisReaderGetReply(c->rd, &r) != REDIS_OK) {
        snprintf(c->errmsg, sizeof c->errmsg, "protocol error: %s", c->rd->errstr);
        cipc__bus_conn_close(c);
        return CIPC_EPROTO;
    }
    if (!r)
        return 0;
    *out = r;
    return 1;
}

int cipc__bus_conn_read(struct cipc__bus_conn *c, cipc_deadline d, redisReply **out)
{
    for (;;) {
        if (c->fd < 0)
            return CIPC_ENET;
        int b = cipc__bus_conn_buffered(c, out);
        if (b != 0)
            return b < 0 ? b : 0;
        int p = cipc__bus_poll(c->fd, POLLIN, d);
        if (p == 0) {
            snprintf(c->errmsg, sizeof c->errmsg, "timed out waiting for a reply");
            return CIPC_ETIMEOUT;
        }
        char buf[16384];
        ssize_t n = p > 0 ? recv(c->fd, buf, sizeof buf, MSG_DONTWAIT) : -1;
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (n <= 0) {
            snprintf(c->errmsg, sizeof c->errmsg, "%s",
                     n == 0 ? "connection closed by the server" : strerror(errno));
            cipc__bus_conn_close(c);
            return CIPC_ENET;
        }
        c->last_rx_ms = cipc_now_ms();
        if (redisReaderFeed(c->rd, buf, (size_t)n) != REDIS_OK) {
            cipc__bus_conn_close(c);
            return -ENOMEM;
        }
    }
}

void cipc__bus_conn_check(struct cipc__bus_conn *c)
{
    if (c->fd < 0)
        return;
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
        return;
    /* An idle connection has nothing to say: readable means closed, reset, or a stray
     * reply. In every case it is not usable. */
    snprintf(c->errmsg, sizeof c->errmsg, "idle connection closed by the server");
    cipc__bus_conn_close(c);
}

int cipc__bus_conn_call(struct cipc__bus_conn *c, int argc, const char **argv, const size_t *lens,
                        cipc_deadline d, redisReply **out)
{
    int rc = cipc__bus_conn_send(c, argc, argv, lens, d);
    if (rc < 0)
        return rc;
    rc = cipc__bus_conn_read(c, d, out);
    if (rc == CIPC_ETIMEOUT) {
        /* The reply may still arrive; the stream would be out of sync. */
        cipc__bus_conn_close(c);
        snprintf(c->errmsg, sizeof c->errmsg, "timed out waiting for the reply to %.*s",
                 (int)(lens[0] > 32 ? 32 : lens[0]), argv[0]);
    }
    return rc;
}

/* Run one handshake command; an error reply becomes `err_rc` with its text. */
static int handshake_cmd(struct cipc__bus_conn *c, int argc, const char **argv, cipc_deadline d,
                         int err_rc)
{
    size_t lens[4];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = NULL;
    int rc = cipc__bus_conn_call(c, argc, argv, lens, d, &r);
    if (rc == CIPC_ETIMEOUT)
        return CIPC_ECONNTIMEOUT;
    if (rc < 0)
        return rc;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(c->errmsg, sizeof c->errmsg, "%s: %s", argv[0], r->str);
        rc = strncmp(r->str, "NOAUTH", 6) == 0 || strncmp(r->str, "WRONGPASS", 9) == 0 ? -EACCES
                                                                                       : err_rc;
    }
    freeReplyObject(r);
    return rc;
}

int cipc__bus_conn_open(struct cipc__bus_conn *c, const struct cipc__bus_cfg *cfg, const char *name)
{
    cipc__bus_conn_close(c);
    c->errmsg[0] = '\0';
    cipc_deadline d = cipc_deadline_in(cfg->connect_timeout_ms);
    const struct cipc__bus_url *u = &cfg->url;
    int fd;
    if (u->kind == CIPC__BUS_UNIX)
        fd = unix_connect(u->path, d, c->errmsg, sizeof c->errmsg);
    else if (u->kind == CIPC__BUS_TLS) {
        int rc = cipc__bus_tunnel_open(u->host, u->port, cfg->ca_file, cfg->insecure, d, &fd,
                                       &c->tls, c->errmsg, sizeof c->errmsg);
        if (rc < 0)
            fd = rc;
    } else
        fd = cipc__bus_tcp_connect(u->host, u->port, d, c->errmsg, sizeof c->errmsg);
    if (fd < 0) {
        if (c->tls)
            cipc__bus_tunnel_free(c->tls);
        c->tls = NULL;
        return fd;
    }
    c->fd = fd;
    c->rd = redisReaderCreate();
    if (!c->rd) {
        cipc__bus_conn_close(c);
        return -ENOMEM;
    }
    c->last_rx_ms = cipc_now_ms();
    int rc = 0;
    if (u->pass) {
        const char *a[3] = {"AUTH", u->user ? u->user : u->pass, u->pass};
        rc = handshake_cmd(c, u->user ? 3 : 2, a, d, -EACCES);
    }
    if (rc == 0 && u->db > 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", u->db);
        const char *a[2] = {"SELECT", db};
        rc = handshake_cmd(c, 2, a, d, CIPC_EPROTO);
    }
    if (rc == 0 && name) {
        const char *a[3] = {"CLIENT", "SETNAME", name};
        rc = handshake_cmd(c, 3, a, d, CIPC_EPROTO);
    }
    if (rc == 0) {
        /* Without AUTH, a server with requirepass answers the first command with NOAUTH:
         * find out now, with a PING, rather than in the middle of the first real call. */
        const char *a[1] = {"PING"};
        rc = handshake_cmd(c, 1, a, d, -EACCES);
    }
    if (rc < 0)
        cipc__bus_conn_close(c);
    return rc;
}
