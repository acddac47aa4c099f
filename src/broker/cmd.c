/* src/broker/cmd.c -- the broker's commands (cipc/broker.h), with Redis 7's arities,
 * reply shapes and error texts. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/internal.h"
#include "cipc/time.h"

#define REDIS_COMPAT_VERSION "7.0.0" /* what INFO and HELLO say: clients gate features
                                        (LMOVE, BLMOVE, LPOP count) on it */

typedef struct cmdctx {
    cipc_broker *b;
    bclient *c;
    size_t argc;
    const char **argv;
    const size_t *argl;
    cipc_buf *out;
} cmdctx;

typedef void (*cmd_fn)(cmdctx *x);

enum {
    F_WRITE = 1,   /* changes data: propagated to the AOF by the handler */
    F_PUBSUB = 2,  /* allowed in subscribed mode */
    F_NOAUTH = 4,  /* allowed before AUTH */
    F_BLOCKING = 8
};

typedef struct cmddef {
    const char *name;
    int arity; /* > 0 exactly, < 0 at least -arity (name included) */
    int flags;
    cmd_fn fn;
} cmddef;

static const cmddef *find_cmd(const char *name, size_t len);

/* --- helpers -------------------------------------------------------------------------- */

static int arg_is(const cmdctx *x, size_t i, const char *s)
{
    size_t n = strlen(s);
    return x->argl[i] == n && strncasecmp(x->argv[i], s, n) == 0;
}

/* Redis's string2ll: optional '-', digits, no leading zeros, no overflow. */
static int parse_ll(const char *s, size_t len, long long *out)
{
    if (len == 0 || len > 20)
        return -1;
    size_t i = 0;
    int neg = 0;
    if (s[0] == '-') {
        neg = 1;
        i = 1;
        if (len == 1)
            return -1;
    }
    if (s[i] == '0' && len > i + 1)
        return -1;
    unsigned long long v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (18446744073709551615ull - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > 9223372036854775808ull)
            return -1;
        *out = v == 9223372036854775808ull ? INT64_MIN : -(long long)v;
    } else {
        if (v > 9223372036854775807ull)
            return -1;
        *out = (long long)v;
    }
    return 0;
}

static int get_ll(cmdctx *x, size_t i, long long *v)
{
    if (parse_ll(x->argv[i], x->argl[i], v) < 0) {
        cipc__resp_error(x->out, "ERR value is not an integer or out of range");
        return -1;
    }
    return 0;
}

static void reply_ok(cmdctx *x)
{
    cipc__resp_simple(x->out, "OK");
}

static void lower_name(const char *s, size_t len, char *out, size_t cap);

/* Redis 7's replies for a container command (CLIENT, PUBSUB, COMMAND): a known
 * subcommand with the wrong arity, or an unknown one. */
static void subcommand_error(cmdctx *x, const char *container, const char *const *known)
{
    char sub[32];
    lower_name(x->argv[1], x->argl[1], sub, sizeof sub);
    for (size_t i = 0; known[i]; i++) {
        if (x->argl[1] < sizeof sub && !strcmp(sub, known[i])) {
            cipc__resp_errorf(x->out, "ERR wrong number of arguments for '%s|%s' command",
                              container, known[i]);
            return;
        }
    }
    char upper[16];
    size_t n = strlen(container) < sizeof upper - 1 ? strlen(container) : sizeof upper - 1;
    for (size_t i = 0; i < n; i++)
        upper[i] = (char)(container[i] - 32);
    upper[n] = 0;
    cipc__resp_errorf(x->out, "ERR unknown subcommand '%.*s'. Try %s HELP.",
                      (int)(x->argl[1] > 128 ? 128 : x->argl[1]), x->argv[1], upper);
}

static void syntax_error(cmdctx *x)
{
    cipc__resp_error(x->out, "ERR syntax error");
}

static void lower_name(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        out[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    out[n] = 0;
}

static void propagate(cmdctx *x)
{
    if (x->b->aof_fd >= 0 && !x->b->loading)
        cipc__aof_append(x->b, x->argc, x->argv, x->argl);
}

static void propagate_args(cipc_broker *b, size_t argc, const char **argv, const size_t *argl)
{
    if (b->aof_fd >= 0 && !b->loading)
        cipc__aof_append(b, argc, argv, argl);
}

static blist *get_list(cipc_broker *b, const char *key, size_t klen)
{
    dict_entry *e = cipc__dict_find(&b->db, key, klen);
    return e ? e->val : NULL;
}

/* The list at key, created if missing; NULL on -ENOMEM. */
static blist *get_or_create(cipc_broker *b, const char *key, size_t klen)
{
    int added;
    dict_entry *e = cipc__dict_upsert(&b->db, key, klen, &added);
    if (!e)
        return NULL;
    if (added) {
        e->val = cipc__list_new();
        if (!e->val) {
            cipc__dict_remove(&b->db, key, klen);
            return NULL;
        }
    }
    return e->val;
}

static void delete_if_empty(cipc_broker *b, const char *key, size_t klen)
{
    dict_entry *e = cipc__dict_find(&b->db, key, klen);
    if (e && ((blist *)e->val)->n == 0)
        cipc__list_free(cipc__dict_remove(&b->db, key, klen));
}

/* A push to key: clients blocked on it may be served after this command. */
static void signal_key(cipc_broker *b, const char *key, size_t klen)
{
    if (!cipc__dict_find(&b->blocking, key, klen))
        return;
    int added;
    cipc__dict_upsert(&b->ready, key, klen, &added);
}

/* --- connection ---------------------------------------------------------------------- */

static int subscribed(const bclient *c)
{
    return c->channels.n + c->patterns.n > 0;
}

static void cmd_ping(cmdctx *x)
{
    if (x->argc > 2) {
        cipc__resp_error(x->out, "ERR wrong number of arguments for 'ping' command");
        return;
    }
    if (subscribed(x->c)) {
        cipc__resp_array(x->out, 2);
        cipc__resp_bulk(x->out, "pong", 4);
        cipc__resp_bulk(x->out, x->argc == 2 ? x->argv[1] : "", x->argc == 2 ? x->argl[1] : 0);
    } else if (x->argc == 2) {
        cipc__resp_bulk(x->out, x->argv[1], x->argl[1]);
    } else {
        cipc__resp_simple(x->out, "PONG");
    }
}

static void cmd_echo(cmdctx *x)
{
    cipc__resp_bulk(x->out, x->argv[1], x->argl[1]);
}

static void cmd_quit(cmdctx *x)
{
    reply_ok(x);
    cipc__client_close(x->c, 1);
}

static int check_password(cmdctx *x, const char *user, size_t ulen, const char *pass,
                          size_t plen)
{
    cipc_broker *b = x->b;
    if (!b->requirepass) {
        if (!user)
            cipc__resp_error(x->out, "ERR AUTH <password> called without any password "
                                     "configured for the default user. Are you sure your "
                                     "configuration is correct?");
        else if (ulen == 7 && memcmp(user, "default", 7) == 0)
            return 0; /* nopass default user: any password */
        else
            cipc__resp_error(x->out, "WRONGPASS invalid username-password pair or user is "
                                     "disabled.");
        return user ? -1 : -1;
    }
    size_t n = strlen(b->requirepass);
    if ((user && !(ulen == 7 && memcmp(user, "default", 7) == 0)) || plen != n ||
        memcmp(pass, b->requirepass, n) != 0) {
        cipc__resp_error(x->out, "WRONGPASS invalid username-password pair or user is disabled.");
        return -1;
    }
    x->c->authed = 1;
    return 0;
}

static void cmd_auth(cmdctx *x)
{
    if (x->argc > 3) {
        syntax_error(x);
        return;
    }
    int rc = x->argc == 2 ? check_password(x, NULL, 0, x->argv[1], x->argl[1])
                          : check_password(x, x->argv[1], x->argl[1], x->argv[2], x->argl[2]);
    if (rc == 0)
        reply_ok(x);
}

static void cmd_hello(cmdctx *x)
{
    size_t i = 1;
    if (x->argc >= 2) {
        long long ver;
        if (parse_ll(x->argv[1], x->argl[1], &ver) < 0) {
            cipc__resp_error(x->out, "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (ver != 2) { /* RESP3 is not implemented: clients fall back to RESP2 */
            cipc__resp_error(x->out, "NOPROTO unsupported protocol version");
            return;
        }
        i = 2;
    }
    const char *setname = NULL;
    size_t setname_len = 0;
    for (; i < x->argc; i++) {
        if (arg_is(x, i, "AUTH") && i + 2 < x->argc) {
            if (check_password(x, x->argv[i + 1], x->argl[i + 1], x->argv[i + 2],
                               x->argl[i + 2]) < 0)
                return;
            i += 2;
        } else if (arg_is(x, i, "SETNAME") && i + 1 < x->argc) {
            setname = x->argv[i + 1];
            setname_len = x->argl[i + 1];
            i++;
        } else {
            cipc__resp_errorf(x->out, "ERR Syntax error in HELLO option '%.*s'",
                              (int)(x->argl[i] > 128 ? 128 : x->argl[i]), x->argv[i]);
            return;
        }
    }
    if (!x->c->authed) {
        cipc__resp_error(x->out, "NOAUTH HELLO must be called with the client already "
                                 "authenticated, otherwise the HELLO <proto> AUTH <user> "
                                 "<pass> option can be used to authenticate the client and "
                                 "select the RESP protocol version at the same time");
        return;
    }
    if (setname) {
        char *n = strndup(setname, setname_len);
        if (n) {
            free(x->c->name);
            x->c->name = n;
        }
    }
    cipc__resp_array(x->out, 14);
    cipc__resp_bulk_str(x->out, "server");
    cipc__resp_bulk_str(x->out, "redis");
    cipc__resp_bulk_str(x->out, "version");
    cipc__resp_bulk_str(x->out, REDIS_COMPAT_VERSION);
    cipc__resp_bulk_str(x->out, "proto");
    cipc__resp_int(x->out, 2);
    cipc__resp_bulk_str(x->out, "id");
    cipc__resp_int(x->out, (int64_t)x->c->id);
    cipc__resp_bulk_str(x->out, "mode");
    cipc__resp_bulk_str(x->out, "standalone");
    cipc__resp_bulk_str(x->out, "role");
    cipc__resp_bulk_str(x->out, "master");
    cipc__resp_bulk_str(x->out, "modules");
    cipc__resp_array(x->out, 0);
}

static void cmd_select(cmdctx *x)
{
    long long db;
    if (get_ll(x, 1, &db) < 0)
        return;
    if (db != 0)
        cipc__resp_error(x->out, "ERR DB index is out of range");
    else
        reply_ok(x);
}

static void client_list_line(cipc_buf *o, const bclient *c, int64_t now)
{
    uv_os_fd_t fd = -1;
    uv_fileno(&c->h.handle, &fd);
    cipc_buf_printf(o,
                    "id=%llu addr=%s laddr=%s fd=%d name=%s age=%lld idle=%lld flags=%s db=0 "
                    "sub=%zu psub=%zu ssub=0 multi=-1 qbuf=%zu qbuf-free=0 argv-mem=0 "
                    "multi-mem=0 rbs=0 rbp=0 obl=%zu oll=0 omem=%zu tot-mem=%zu events=r "
                    "cmd=%s user=default redir=-1 resp=2\n",
                    (unsigned long long)c->id, c->addr, c->laddr, (int)fd, c->name ? c->name : "", (long long)((now - c->created_ms) / 1000),
                    (long long)((now - c->last_ms) / 1000),
                    c->blk ? "b" : (subscribed(c) ? "P" : "N"), c->channels.n, c->patterns.n,
                    c->inq.len, c->out.len, c->out.cap + c->wbuf.cap,
                    sizeof *c + c->out.cap + c->wbuf.cap + c->inq.cap,
                    c->last_cmd[0] ? c->last_cmd : "NULL");
}

static void cmd_client(cmdctx *x)
{
    bclient *c = x->c;
    if (arg_is(x, 1, "SETNAME") && x->argc == 3) {
        for (size_t i = 0; i < x->argl[2]; i++) {
            unsigned char ch = (unsigned char)x->argv[2][i];
            if (ch < '!' || ch > '~') {
                cipc__resp_error(x->out, "ERR Client names cannot contain spaces, newlines or "
                                         "special characters.");
                return;
            }
        }
        free(c->name);
        c->name = x->argl[2] ? strndup(x->argv[2], x->argl[2]) : NULL;
        reply_ok(x);
    } else if (arg_is(x, 1, "GETNAME") && x->argc == 2) {
        if (c->name)
            cipc__resp_bulk_str(x->out, c->name);
        else
            cipc__resp_null(x->out);
    } else if (arg_is(x, 1, "ID") && x->argc == 2) {
        cipc__resp_int(x->out, (int64_t)c->id);
    } else if (arg_is(x, 1, "LIST")) {
        cipc_buf o = CIPC_BUF_INIT;
        int64_t now = cipc_now_ms();
        for (bclient *k = x->b->clients; k; k = k->next)
            if (!k->closed)
                client_list_line(&o, k, now);
        cipc__resp_bulk(x->out, o.data ? o.data : "", o.len);
        cipc_buf_free(&o);
    } else if (arg_is(x, 1, "INFO") && x->argc == 2) {
        cipc_buf o = CIPC_BUF_INIT;
        client_list_line(&o, c, cipc_now_ms());
        cipc__resp_bulk(x->out, o.data ? o.data : "", o.len);
        cipc_buf_free(&o);
    } else if (arg_is(x, 1, "SETINFO") && x->argc == 4) {
        reply_ok(x);
    } else {
        static const char *const known[] = {"setname", "getname", "id",    "list",
                                            "info",    "setinfo", NULL};
        subcommand_error(x, "client", known);
    }
}

static void cmd_reset(cmdctx *x)
{
    cipc__client_pubsub_clear(x->c);
    free(x->c->name);
    x->c->name = NULL;
    x->c->authed = x->b->requirepass == NULL;
    cipc__resp_simple(x->out, "RESET");
}

/* --- server ---------------------------------------------------------------------------- */

static void cmd_dbsize(cmdctx *x)
{
    cipc__resp_int(x->out, (int64_t)x->b->db.n);
}

static void free_list(void *v)
{
    cipc__list_free(v);
}

static void cmd_flush(cmdctx *x)
{
    if (x->argc > 2 || (x->argc == 2 && !arg_is(x, 1, "ASYNC") && !arg_is(x, 1, "SYNC"))) {
        syntax_error(x);
        return;
    }
    cipc__dict_free(&x->b->db, free_list);
    propagate(x);
    reply_ok(x);
}

static int want_section(cmdctx *x, const char *name, int deflt)
{
    if (x->argc < 2)
        return deflt;
    for (size_t i = 1; i < x->argc; i++)
        if (arg_is(x, i, name) || arg_is(x, i, "all") || arg_is(x, i, "everything") ||
            (deflt && arg_is(x, i, "default")))
            return 1;
    return 0;
}

static void cmd_info(cmdctx *x)
{
    cipc_broker *b = x->b;
    cipc_buf o = CIPC_BUF_INIT;
    int64_t now = cipc_now_ms();
    if (want_section(x, "server", 1))
        cipc_buf_printf(&o,
                        "# Server\r\nredis_version:%s\r\nserver_name:cipc\r\ncipc_version:%s\r\n"
                        "redis_mode:standalone\r\nos:Linux\r\nprocess_id:%d\r\ntcp_port:%d\r\n"
                        "uptime_in_seconds:%lld\r\nuptime_in_days:%lld\r\n\r\n",
                        REDIS_COMPAT_VERSION, cipc_version(), (int)getpid(),
                        b->port > 0 ? b->port : 0, (long long)((now - b->start_ms) / 1000),
                        (long long)((now - b->start_ms) / 86400000));
    if (want_section(x, "clients", 1)) {
        size_t nblocked = 0, pubsub = 0;
        for (bclient *c = b->clients; c; c = c->next) {
            nblocked += c->blk != NULL;
            pubsub += subscribed(c);
        }
        cipc_buf_printf(&o,
                        "# Clients\r\nconnected_clients:%zu\r\nmaxclients:%zu\r\n"
                        "blocked_clients:%zu\r\npubsub_clients:%zu\r\n\r\n",
                        b->nclients, b->o.max_clients, nblocked, pubsub);
    }
    if (want_section(x, "memory", 1)) {
        size_t items = 0, bytes = 0, obuf = 0;
        size_t bk = 0;
        dict_entry *e = NULL;
        while (cipc__dict_next(&b->db, &bk, &e)) {
            blist *l = e->val;
            items += l->n;
            bytes += l->bytes + l->cap * sizeof(litem *) + l->n * sizeof(litem) + e->klen;
        }
        for (bclient *c = b->clients; c; c = c->next)
            obuf += c->out.cap + c->wbuf.cap + sizeof *c;
        cipc_buf_printf(&o,
                        "# Memory\r\nused_memory:%zu\r\nused_memory_dataset:%zu\r\n"
                        "used_memory_clients:%zu\r\nlist_items:%zu\r\n\r\n",
                        bytes + obuf, bytes, obuf, items);
    }
    if (want_section(x, "persistence", 1))
        cipc_buf_printf(&o,
                        "# Persistence\r\nloading:0\r\naof_enabled:%d\r\n"
                        "aof_rewrite_in_progress:%d\r\naof_rewrites:%llu\r\n"
                        "aof_current_size:%lld\r\naof_base_size:%lld\r\n\r\n",
                        b->aof_fd >= 0, b->aof_child > 0, (unsigned long long)b->aof_rewrites,
                        (long long)b->aof_size, (long long)b->aof_base_size);
    if (want_section(x, "stats", 1))
        cipc_buf_printf(&o,
                        "# Stats\r\ntotal_connections_received:%llu\r\n"
                        "total_commands_processed:%llu\r\nrejected_connections:%llu\r\n"
                        "pubsub_channels:%zu\r\npubsub_patterns:%zu\r\n"
                        "total_pubsub_messages:%llu\r\nclient_output_buffer_limit_disconnections:%llu\r\n\r\n",
                        (unsigned long long)b->total_conns, (unsigned long long)b->total_cmds,
                        (unsigned long long)b->rejected_conns, b->channels.n, b->patterns.n,
                        (unsigned long long)b->pubsub_msgs, (unsigned long long)b->obuf_kills);
    if (want_section(x, "keyspace", 1)) {
        cipc_buf_append_str(&o, "# Keyspace\r\n");
        if (b->db.n)
            cipc_buf_printf(&o, "db0:keys=%zu,expires=0,avg_ttl=0\r\n", b->db.n);
    }
    /* Redis ends the text without the last blank line. */
    while (o.len >= 2 && o.data[o.len - 1] == '\n' && o.data[o.len - 3] == '\n')
        o.len -= 2;
    cipc__resp_bulk(x->out, o.data ? o.data : "", o.len);
    cipc_buf_free(&o);
}

static const cmddef cmds[];
static const size_t ncmds;

static void command_entry(cipc_buf *o, const cmddef *d)
{
    cipc__resp_array(o, 6);
    cipc__resp_bulk_str(o, d->name);
    cipc__resp_int(o, d->arity);
    int nf = !!(d->flags & F_WRITE) + !(d->flags & F_WRITE) + !!(d->flags & F_PUBSUB) +
             !!(d->flags & F_BLOCKING);
    cipc__resp_array(o, (size_t)nf);
    cipc__resp_simple(o, d->flags & F_WRITE ? "write" : "readonly");
    if (d->flags & F_PUBSUB)
        cipc__resp_simple(o, "pubsub");
    if (d->flags & F_BLOCKING)
        cipc__resp_simple(o, "blocking");
    int haskey = (d->flags & (F_WRITE | F_BLOCKING)) || !strcmp(d->name, "llen") ||
                 !strcmp(d->name, "lrange") || !strcmp(d->name, "exists") ||
                 !strcmp(d->name, "type");
    if (!strcmp(d->name, "flushall") || !strcmp(d->name, "flushdb"))
        haskey = 0;
    cipc__resp_int(o, haskey);
    cipc__resp_int(o, haskey ? (d->arity < 0 && (!strcmp(d->name, "del") ||
                                                 !strcmp(d->name, "exists")) ? -1 : 1)
                             : 0);
    cipc__resp_int(o, haskey);
}

static void cmd_command(cmdctx *x)
{
    if (x->argc == 1) {
        cipc__resp_array(x->out, ncmds);
        for (size_t i = 0; i < ncmds; i++)
            command_entry(x->out, &cmds[i]);
    } else if (arg_is(x, 1, "COUNT") && x->argc == 2) {
        cipc__resp_int(x->out, (int64_t)ncmds);
    } else if (arg_is(x, 1, "DOCS")) {
        cipc__resp_array(x->out, 0); /* no docs: redis-cli then shows no hints */
    } else if (arg_is(x, 1, "INFO")) {
        cipc__resp_array(x->out, x->argc - 2);
        for (size_t i = 2; i < x->argc; i++) {
            const cmddef *d = find_cmd(x->argv[i], x->argl[i]);
            if (d)
                command_entry(x->out, d);
            else
                cipc__resp_null_array(x->out);
        }
    } else {
        static const char *const known[] = {"count", "docs", "info", NULL};
        subcommand_error(x, "command", known);
    }
}

/* --- keys ------------------------------------------------------------------------------ */

static void cmd_del(cmdctx *x)
{
    int64_t n = 0;
    for (size_t i = 1; i < x->argc; i++) {
        blist *l = cipc__dict_remove(&x->b->db, x->argv[i], x->argl[i]);
        if (l) {
            cipc__list_free(l);
            n++;
        }
    }
    if (n)
        propagate(x);
    cipc__resp_int(x->out, n);
}

static void cmd_exists(cmdctx *x)
{
    int64_t n = 0;
    for (size_t i = 1; i < x->argc; i++)
        n += get_list(x->b, x->argv[i], x->argl[i]) != NULL;
    cipc__resp_int(x->out, n);
}

/* KEYS pattern: every key matching the glob (Redis's order is unspecified too). */
static void cmd_keys(cmdctx *x)
{
    size_t n = 0, bk = 0;
    dict_entry *e = NULL;
    while (cipc__dict_next(&x->b->db, &bk, &e))
        n += cipc__glob_match(x->argv[1], x->argl[1], e->key, e->klen, 0);
    cipc__resp_array(x->out, n);
    bk = 0;
    e = NULL;
    while (cipc__dict_next(&x->b->db, &bk, &e))
        if (cipc__glob_match(x->argv[1], x->argl[1], e->key, e->klen, 0))
            cipc__resp_bulk(x->out, e->key, e->klen);
}

static void cmd_type(cmdctx *x)
{
    cipc__resp_simple(x->out, get_list(x->b, x->argv[1], x->argl[1]) ? "list" : "none");
}

/* --- lists ------------------------------------------------------------------------------ */

static void push(cmdctx *x, int left)
{
    blist *l = get_or_create(x->b, x->argv[1], x->argl[1]);
    if (!l) {
        cipc__resp_error(x->out, "ERR out of memory");
        return;
    }
    for (size_t i = 2; i < x->argc; i++) {
        if (cipc__list_push(l, left, x->argv[i], x->argl[i]) < 0) {
            cipc__resp_error(x->out, "ERR out of memory");
            delete_if_empty(x->b, x->argv[1], x->argl[1]);
            return;
        }
    }
    propagate(x);
    signal_key(x->b, x->argv[1], x->argl[1]);
    cipc__resp_int(x->out, (int64_t)l->n);
}

static void cmd_lpush(cmdctx *x) { push(x, 1); }
static void cmd_rpush(cmdctx *x) { push(x, 0); }

static void pop(cmdctx *x, int left)
{
    long long count = -1;
    if (x->argc > 3) {
        cipc__resp_errorf(x->out, "ERR wrong number of arguments for '%s' command",
                          left ? "lpop" : "rpop");
        return;
    }
    if (x->argc == 3) {
        if (parse_ll(x->argv[2], x->argl[2], &count) < 0 || count < 0) {
            cipc__resp_error(x->out, "ERR value is out of range, must be positive");
            return;
        }
    }
    blist *l = get_list(x->b, x->argv[1], x->argl[1]);
    if (!l) {
        if (count >= 0)
            cipc__resp_null_array(x->out);
        else
            cipc__resp_null(x->out);
        return;
    }
    if (count < 0) {
        litem *it = cipc__list_pop(l, left);
        cipc__resp_bulk(x->out, it->data, it->len);
        free(it);
    } else {
        size_t n = (size_t)count < l->n ? (size_t)count : l->n;
        cipc__resp_array(x->out, n);
        for (size_t i = 0; i < n; i++) {
            litem *it = cipc__list_pop(l, left);
            cipc__resp_bulk(x->out, it->data, it->len);
            free(it);
        }
        if (n == 0)
            return; /* nothing changed */
    }
    propagate(x);
    delete_if_empty(x->b, x->argv[1], x->argl[1]);
}

static void cmd_lpop(cmdctx *x) { pop(x, 1); }
static void cmd_rpop(cmdctx *x) { pop(x, 0); }

static void cmd_llen(cmdctx *x)
{
    blist *l = get_list(x->b, x->argv[1], x->argl[1]);
    cipc__resp_int(x->out, l ? (int64_t)l->n : 0);
}

static void cmd_lrange(cmdctx *x)
{
    long long start, stop;
    if (get_ll(x, 2, &start) < 0 || get_ll(x, 3, &stop) < 0)
        return;
    blist *l = get_list(x->b, x->argv[1], x->argl[1]);
    long long n = l ? (long long)l->n : 0;
    if (start < 0)
        start += n;
    if (stop < 0)
        stop += n;
    if (start < 0)
        start = 0;
    if (start > stop || start >= n) {
        cipc__resp_array(x->out, 0);
        return;
    }
    if (stop >= n)
        stop = n - 1;
    cipc__resp_array(x->out, (size_t)(stop - start + 1));
    for (long long i = start; i <= stop; i++) {
        litem *it = cipc__list_at(l, (size_t)i);
        cipc__resp_bulk(x->out, it->data, it->len);
    }
}

static void cmd_lrem(cmdctx *x)
{
    long long count;
    if (get_ll(x, 2, &count) < 0)
        return;
    blist *l = get_list(x->b, x->argv[1], x->argl[1]);
    size_t n = l ? cipc__list_rem(l, count, x->argv[3], x->argl[3]) : 0;
    if (n) {
        propagate(x);
        delete_if_empty(x->b, x->argv[1], x->argl[1]);
    }
    cipc__resp_int(x->out, (int64_t)n);
}

static int parse_dir(cmdctx *x, size_t i, int *left)
{
    if (arg_is(x, i, "LEFT"))
        *left = 1;
    else if (arg_is(x, i, "RIGHT"))
        *left = 0;
    else
        return -1;
    return 0;
}

/* Move one item from src to dst; 1 moved (reply written), 0 src empty, -1 OOM. */
static int move_item(cipc_broker *b, cipc_buf *out, const char *src, size_t srclen,
                     const char *dst, size_t dstlen, int from_left, int to_left)
{
    blist *s = get_list(b, src, srclen);
    if (!s)
        return 0;
    blist *d = get_or_create(b, dst, dstlen);
    if (!d)
        return -1;
    s = get_list(b, src, srclen); /* the table may have grown */
    litem *it = cipc__list_pop(s, from_left);
    if (cipc__list_push_item(d, to_left, it) < 0) {
        cipc__list_push_item(s, from_left, it); /* back where it was (room is there) */
        return -1;
    }
    cipc__resp_bulk(out, it->data, it->len);
    delete_if_empty(b, src, srclen);
    signal_key(b, dst, dstlen);
    return 1;
}

static void lmove_common(cmdctx *x, int from_left, int to_left)
{
    int rc = move_item(x->b, x->out, x->argv[1], x->argl[1], x->argv[2], x->argl[2], from_left,
                       to_left);
    if (rc == 0) {
        cipc__resp_null(x->out);
        return;
    }
    if (rc < 0) {
        cipc__resp_error(x->out, "ERR out of memory");
        return;
    }
    const char *argv[5] = {"LMOVE", x->argv[1], x->argv[2], from_left ? "LEFT" : "RIGHT",
                           to_left ? "LEFT" : "RIGHT"};
    size_t argl[5] = {5, x->argl[1], x->argl[2], strlen(argv[3]), strlen(argv[4])};
    propagate_args(x->b, 5, argv, argl);
}

static void cmd_lmove(cmdctx *x)
{
    int from_left, to_left;
    if (parse_dir(x, 3, &from_left) < 0 || parse_dir(x, 4, &to_left) < 0) {
        syntax_error(x);
        return;
    }
    lmove_common(x, from_left, to_left);
}

static void cmd_rpoplpush(cmdctx *x)
{
    lmove_common(x, 0, 1);
}

/* --- blocking ----------------------------------------------------------------------------- */

/* Redis: "timeout is not a float or out of range" / "timeout is negative"; seconds with
 * decimals. Returns ms (0 = forever) or -1 after replying an error. */
static long long parse_timeout(cmdctx *x, size_t i)
{
    char tmp[64];
    if (x->argl[i] == 0 || x->argl[i] >= sizeof tmp) {
        cipc__resp_error(x->out, "ERR timeout is not a float or out of range");
        return -1;
    }
    memcpy(tmp, x->argv[i], x->argl[i]);
    tmp[x->argl[i]] = 0;
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    if (*end || errno || isnan(v) || isinf(v) || tmp[0] == ' ') {
        cipc__resp_error(x->out, "ERR timeout is not a float or out of range");
        return -1;
    }
    if (v < 0) {
        cipc__resp_error(x->out, "ERR timeout is negative");
        return -1;
    }
    double ms = v * 1000.0;
    if (ms > 9.2e15) {
        cipc__resp_error(x->out, "ERR timeout is out of range");
        return -1;
    }
    long long r = (long long)ms;
    return r == 0 && v > 0 ? 1 : r;
}

static void on_block_timeout(uv_timer_t *t);

static void block_client(cmdctx *x, int kind, size_t first_key, size_t nkeys, int left,
                         int to_left, long long timeout_ms)
{
    cipc_broker *b = x->b;
    bclient *c = x->c;
    blocked *bk = calloc(1, sizeof *bk);
    if (!bk) {
        cipc__resp_error(x->out, "ERR out of memory");
        return;
    }
    bk->kind = kind;
    bk->left = left;
    bk->to_left = to_left;
    bk->seq = ++b->block_seq;
    bk->keys = calloc(nkeys, sizeof *bk->keys);
    bk->klens = calloc(nkeys, sizeof *bk->klens);
    if (!bk->keys || !bk->klens)
        goto oom;
    for (size_t i = 0; i < nkeys; i++) {
        const char *k = x->argv[first_key + i];
        size_t kl = x->argl[first_key + i];
        /* A key named twice waits once. */
        size_t j = 0;
        while (j < bk->nkeys && !(bk->klens[j] == kl && memcmp(bk->keys[j], k, kl) == 0))
            j++;
        if (j < bk->nkeys)
            continue;
        bk->keys[bk->nkeys] = malloc(kl + 1);
        if (!bk->keys[bk->nkeys])
            goto oom;
        memcpy(bk->keys[bk->nkeys], k, kl);
        bk->keys[bk->nkeys][kl] = 0;
        bk->klens[bk->nkeys++] = kl;
        int added;
        dict_entry *e = cipc__dict_upsert(&b->blocking, k, kl, &added);
        if (!e)
            goto oom;
        if (added)
            e->val = calloc(1, sizeof(waitq));
        waitq *q = e->val;
        if (!q)
            goto oom;
        if (q->n == q->cap) {
            size_t cap = q->cap ? q->cap * 2 : 4;
            bclient **nc = realloc(q->c, cap * sizeof *nc);
            if (!nc)
                goto oom;
            q->c = nc;
            q->cap = cap;
        }
        q->c[q->n++] = c;
    }
    if (kind == BLK_MOVE) {
        bk->dstlen = x->argl[2];
        bk->dst = malloc(bk->dstlen + 1);
        if (!bk->dst)
            goto oom;
        memcpy(bk->dst, x->argv[2], bk->dstlen);
        bk->dst[bk->dstlen] = 0;
    }
    c->blk = bk;
    if (timeout_ms > 0) {
        uv_timer_init(b->uv, &bk->timer);
        bk->timer.data = c;
        uv_timer_start(&bk->timer, on_block_timeout, (uint64_t)timeout_ms, 0);
        bk->timer_on = 1;
    }
    return;
oom:
    c->blk = bk;
    cipc__client_blocked_clear(c);
    cipc__resp_error(x->out, "ERR out of memory");
}

static void cmd_bpop(cmdctx *x, int left)
{
    long long timeout = parse_timeout(x, x->argc - 1);
    if (timeout < 0)
        return;
    for (size_t i = 1; i + 1 < x->argc; i++) {
        blist *l = get_list(x->b, x->argv[i], x->argl[i]);
        if (l) {
            litem *it = cipc__list_pop(l, left);
            cipc__resp_array(x->out, 2);
            cipc__resp_bulk(x->out, x->argv[i], x->argl[i]);
            cipc__resp_bulk(x->out, it->data, it->len);
            free(it);
            const char *argv[2] = {left ? "LPOP" : "RPOP", x->argv[i]};
            size_t argl[2] = {4, x->argl[i]};
            propagate_args(x->b, 2, argv, argl);
            delete_if_empty(x->b, x->argv[i], x->argl[i]);
            return;
        }
    }
    block_client(x, BLK_POP, 1, x->argc - 2, left, 0, timeout);
}

static void cmd_blpop(cmdctx *x) { cmd_bpop(x, 1); }
static void cmd_brpop(cmdctx *x) { cmd_bpop(x, 0); }

static void bmove_common(cmdctx *x, int from_left, int to_left, size_t timeout_arg)
{
    long long timeout = parse_timeout(x, timeout_arg);
    if (timeout < 0)
        return;
    if (get_list(x->b, x->argv[1], x->argl[1])) {
        lmove_common(x, from_left, to_left);
        return;
    }
    block_client(x, BLK_MOVE, 1, 1, from_left, to_left, timeout);
}

static void cmd_blmove(cmdctx *x)
{
    int from_left, to_left;
    if (parse_dir(x, 3, &from_left) < 0 || parse_dir(x, 4, &to_left) < 0) {
        syntax_error(x);
        return;
    }
    bmove_common(x, from_left, to_left, 5);
}

static void cmd_brpoplpush(cmdctx *x)
{
    bmove_common(x, 0, 1, 3);
}

static void blocked_free_cb(uv_handle_t *h)
{
    blocked *bk = h->data;
    free(bk);
}

/* Take c out of every wait queue and free its blocked state (no reply). */
void cipc__client_blocked_clear(bclient *c)
{
    blocked *bk = c->blk;
    if (!bk)
        return;
    cipc_broker *b = c->b;
    for (size_t i = 0; i < bk->nkeys; i++) {
        if (!bk->keys || !bk->keys[i])
            continue;
        dict_entry *e = cipc__dict_find(&b->blocking, bk->keys[i], bk->klens[i]);
        if (e) {
            waitq *q = e->val;
            size_t k = 0;
            while (k < q->n && q->c[k] != c)
                k++;
            if (k < q->n) {
                memmove(&q->c[k], &q->c[k + 1], (q->n - k - 1) * sizeof *q->c);
                q->n--;
            }
            if (q->n == 0) {
                free(q->c);
                free(q);
                cipc__dict_remove(&b->blocking, bk->keys[i], bk->klens[i]);
            }
        }
        free(bk->keys[i]);
    }
    free(bk->keys);
    free(bk->klens);
    free(bk->dst);
    c->blk = NULL;
    if (bk->timer_on) {
        uv_timer_stop(&bk->timer);
        bk->timer.data = bk;
        uv_close((uv_handle_t *)&bk->timer, blocked_free_cb);
    } else {
        free(bk);
    }
}

static void unblock_and_resume(bclient *c)
{
    cipc__client_blocked_clear(c);
    cipc__client_out_ready(c);
    cipc__client_process_input(c);
}

static void on_block_timeout(uv_timer_t *t)
{
    bclient *c = t->data;
    if (!c->blk)
        return;
    cipc__resp_null_array(&c->out); /* BLMOVE too, as Redis (not a null bulk) */
    unblock_and_resume(c);
}

/* Serve clients blocked on keys that were pushed to, in the order they blocked. */
void cipc__broker_serve_ready(cipc_broker *b)
{
    while (b->ready.n) {
        size_t bk_i = 0;
        dict_entry *e = NULL;
        cipc__dict_next(&b->ready, &bk_i, &e);
        char key[1024];
        char *k = e->klen < sizeof key ? key : malloc(e->klen + 1);
        if (!k)
            return;
        size_t klen = e->klen;
        memcpy(k, e->key, klen);
        cipc__dict_remove(&b->ready, k, klen);
        for (;;) {
            dict_entry *we = cipc__dict_find(&b->blocking, k, klen);
            blist *l = get_list(b, k, klen);
            if (!we || !l || l->n == 0)
                break;
            waitq *q = we->val;
            bclient *c = q->c[0];
            blocked *bk = c->blk;
            if (bk->kind == BLK_POP) {
                litem *it = cipc__list_pop(l, bk->left);
                cipc__resp_array(&c->out, 2);
                cipc__resp_bulk(&c->out, k, klen);
                cipc__resp_bulk(&c->out, it->data, it->len);
                free(it);
                const char *argv[2] = {bk->left ? "LPOP" : "RPOP", k};
                size_t argl[2] = {4, klen};
                propagate_args(b, 2, argv, argl);
                delete_if_empty(b, k, klen);
            } else {
                int rc = move_item(b, &c->out, k, klen, bk->dst, bk->dstlen, bk->left,
                                   bk->to_left);
                if (rc < 0) {
                    cipc__resp_error(&c->out, "ERR out of memory");
                } else {
                    const char *argv[5] = {"LMOVE", k, bk->dst, bk->left ? "LEFT" : "RIGHT",
                                           bk->to_left ? "LEFT" : "RIGHT"};
                    size_t argl[5] = {5, klen, bk->dstlen, strlen(argv[3]), strlen(argv[4])};
                    propagate_args(b, 5, argv, argl);
                }
            }
            unblock_and_resume(c); /* may run its queued commands: they may push too */
        }
        if (k != key)
            free(k);
    }
}

/* --- pub/sub ------------------------------------------------------------------------------ */

static void sub_reply(cipc_buf *o, const char *kind, const char *name, size_t len, int null_name,
                      size_t count)
{
    cipc__resp_array(o, 3);
    cipc__resp_bulk_str(o, kind);
    if (null_name)
        cipc__resp_null(o);
    else
        cipc__resp_bulk(o, name, len);
    cipc__resp_int(o, (int64_t)count);
}

/* Add c to the subscribers of `name` in `table`; 1 if it was new. */
static int sub_add(dict *table, dict *mine, bclient *c, const char *name, size_t len)
{
    int added;
    dict_entry *m = cipc__dict_upsert(mine, name, len, &added);
    if (!m || !added)
        return 0;
    dict_entry *e = cipc__dict_upsert(table, name, len, &added);
    if (!e) {
        cipc__dict_remove(mine, name, len);
        return 0;
    }
    if (added) {
        e->val = calloc(1, sizeof(dict));
        if (!e->val) {
            cipc__dict_remove(table, name, len);
            cipc__dict_remove(mine, name, len);
            return 0;
        }
        cipc__dict_init(e->val);
    }
    dict_entry *s = cipc__dict_upsert(e->val, &c->id, sizeof c->id, &added);
    if (!s)
        return 0;
    s->val = c;
    return 1;
}

static int sub_del(dict *table, dict *mine, bclient *c, const char *name, size_t len)
{
    if (!cipc__dict_find(mine, name, len))
        return 0;
    cipc__dict_remove(mine, name, len);
    dict_entry *e = cipc__dict_find(table, name, len);
    if (e) {
        dict *subs = e->val;
        cipc__dict_remove(subs, &c->id, sizeof c->id);
        if (subs->n == 0) {
            cipc__dict_free(subs, NULL);
            free(subs);
            cipc__dict_remove(table, name, len);
        }
    }
    return 1;
}

static void do_subscribe(cmdctx *x, int pattern)
{
    bclient *c = x->c;
    for (size_t i = 1; i < x->argc; i++) {
        if (pattern)
            sub_add(&x->b->patterns, &c->patterns, c, x->argv[i], x->argl[i]);
        else
            sub_add(&x->b->channels, &c->channels, c, x->argv[i], x->argl[i]);
        sub_reply(x->out, pattern ? "psubscribe" : "subscribe", x->argv[i], x->argl[i], 0,
                  c->channels.n + c->patterns.n);
    }
}

static void cmd_subscribe(cmdctx *x) { do_subscribe(x, 0); }
static void cmd_psubscribe(cmdctx *x) { do_subscribe(x, 1); }

static void do_unsubscribe(cmdctx *x, int pattern)
{
    bclient *c = x->c;
    dict *mine = pattern ? &c->patterns : &c->channels;
    dict *table = pattern ? &x->b->patterns : &x->b->channels;
    const char *kind = pattern ? "punsubscribe" : "unsubscribe";
    if (x->argc == 1) {
        if (mine->n == 0) {
            sub_reply(x->out, kind, NULL, 0, 1, c->channels.n + c->patterns.n);
            return;
        }
        while (mine->n) {
            size_t bk = 0;
            dict_entry *e = NULL;
            cipc__dict_next(mine, &bk, &e);
            char buf[256];
            size_t len = e->klen;
            char *name = len < sizeof buf ? buf : malloc(len + 1);
            if (!name)
                return;
            memcpy(name, e->key, len);
            sub_del(table, mine, c, name, len);
            sub_reply(x->out, kind, name, len, 0, c->channels.n + c->patterns.n);
            if (name != buf)
                free(name);
        }
        return;
    }
    for (size_t i = 1; i < x->argc; i++) {
        sub_del(table, mine, c, x->argv[i], x->argl[i]);
        sub_reply(x->out, kind, x->argv[i], x->argl[i], 0, c->channels.n + c->patterns.n);
    }
}

static void cmd_unsubscribe(cmdctx *x) { do_unsubscribe(x, 0); }
static void cmd_punsubscribe(cmdctx *x) { do_unsubscribe(x, 1); }

void cipc__client_pubsub_clear(bclient *c)
{
    cipc_broker *b = c->b;
    while (c->channels.n) {
        size_t bk = 0;
        dict_entry *e = NULL;
        cipc__dict_next(&c->channels, &bk, &e);
        char *name = strndup(e->key, e->klen);
        size_t len = e->klen;
        if (!name)
            return;
        sub_del(&b->channels, &c->channels, c, name, len);
        free(name);
    }
    while (c->patterns.n) {
        size_t bk = 0;
        dict_entry *e = NULL;
        cipc__dict_next(&c->patterns, &bk, &e);
        char *name = strndup(e->key, e->klen);
        size_t len = e->klen;
        if (!name)
            return;
        sub_del(&b->patterns, &c->patterns, c, name, len);
        free(name);
    }
}

/* Append the encoded message to every subscriber in subs; returns how many got it. */
static int deliver(cipc_broker *b, dict *subs, const cipc_buf *msg)
{
    int n = 0;
    size_t bk = 0;
    dict_entry *e = NULL;
    /* Subscribers over their limit are closed after the walk (closing edits subs). */
    bclient *kill[64];
    size_t nkill = 0;
    while (cipc__dict_next(subs, &bk, &e)) {
        bclient *c = e->val;
        if (c->closed || c->closing)
            continue;
        if (cipc_buf_append(&c->out, msg->data, msg->len) < 0)
            continue;
        cipc__client_out_ready(c);
        n++;
        if (c->out.len + c->wbuf.len > b->o.pubsub_obuf_soft && nkill < 64)
            kill[nkill++] = c;
    }
    for (size_t i = 0; i < nkill; i++)
        cipc__client_check_obuf(kill[i]);
    return n;
}

int cipc__broker_publish(cipc_broker *b, const char *ch, size_t chlen, const char *msg,
                         size_t len)
{
    int n = 0;
    dict_entry *e = cipc__dict_find(&b->channels, ch, chlen);
    if (e) {
        b->msgbuf.len = 0;
        if (cipc__resp_message(&b->msgbuf, ch, chlen, msg, len) < 0)
            return -ENOMEM;
        n += deliver(b, e->val, &b->msgbuf);
    }
    if (b->patterns.n) {
        size_t bk = 0;
        dict_entry *p = NULL;
        while (cipc__dict_next(&b->patterns, &bk, &p)) {
            if (!cipc__glob_match(p->key, p->klen, ch, chlen, 0))
                continue;
            b->msgbuf.len = 0;
            if (cipc__resp_pmessage(&b->msgbuf, p->key, p->klen, ch, chlen, msg, len) < 0)
                return -ENOMEM;
            n += deliver(b, p->val, &b->msgbuf);
        }
    }
    b->pubsub_msgs++;
    return n;
}

static void cmd_publish(cmdctx *x)
{
    int n = cipc__broker_publish(x->b, x->argv[1], x->argl[1], x->argv[2], x->argl[2]);
    if (n >= 0 && x->b->o.on_publish) {
        int more = x->b->o.on_publish(x->argv[1], x->argl[1], x->argv[2], x->argl[2],
                                      x->b->o.on_publish_ud);
        if (more > 0)
            n += more;
    }
    if (n < 0)
        cipc__resp_error(x->out, "ERR out of memory");
    else
        cipc__resp_int(x->out, n);
}

static void cmd_pubsub(cmdctx *x)
{
    cipc_broker *b = x->b;
    if (arg_is(x, 1, "CHANNELS") && x->argc <= 3) {
        size_t n = 0, bk = 0;
        dict_entry *e = NULL;
        while (cipc__dict_next(&b->channels, &bk, &e))
            n += x->argc < 3 || cipc__glob_match(x->argv[2], x->argl[2], e->key, e->klen, 0);
        cipc__resp_array(x->out, n);
        bk = 0;
        e = NULL;
        while (cipc__dict_next(&b->channels, &bk, &e))
            if (x->argc < 3 || cipc__glob_match(x->argv[2], x->argl[2], e->key, e->klen, 0))
                cipc__resp_bulk(x->out, e->key, e->klen);
    } else if (arg_is(x, 1, "NUMSUB")) {
        cipc__resp_array(x->out, (x->argc - 2) * 2);
        for (size_t i = 2; i < x->argc; i++) {
            dict_entry *e = cipc__dict_find(&b->channels, x->argv[i], x->argl[i]);
            cipc__resp_bulk(x->out, x->argv[i], x->argl[i]);
            cipc__resp_int(x->out, e ? (int64_t)((dict *)e->val)->n : 0);
        }
    } else if (arg_is(x, 1, "NUMPAT") && x->argc == 2) {
        size_t n = 0, bk = 0;
        dict_entry *e = NULL;
        while (cipc__dict_next(&b->patterns, &bk, &e))
            n += ((dict *)e->val)->n;
        cipc__resp_int(x->out, (int64_t)n);
    } else {
        static const char *const known[] = {"channels", "numsub", "numpat", NULL};
        subcommand_error(x, "pubsub", known);
    }
}

/* --- the table ------------------------------------------------------------------------------ */

/* Sorted by name (bsearch). */
static const cmddef cmds[] = {
    {"auth", -2, F_NOAUTH | F_PUBSUB, cmd_auth},
    {"blmove", 6, F_WRITE | F_BLOCKING, cmd_blmove},
    {"blpop", -3, F_WRITE | F_BLOCKING, cmd_blpop},
    {"brpop", -3, F_WRITE | F_BLOCKING, cmd_brpop},
    {"brpoplpush", 4, F_WRITE | F_BLOCKING, cmd_brpoplpush},
    {"client", -2, 0, cmd_client},
    {"command", -1, 0, cmd_command},
    {"dbsize", 1, 0, cmd_dbsize},
    {"del", -2, F_WRITE, cmd_del},
    {"echo", 2, 0, cmd_echo},
    {"exists", -2, 0, cmd_exists},
    {"flushall", -1, F_WRITE, cmd_flush},
    {"flushdb", -1, F_WRITE, cmd_flush},
    {"hello", -1, F_NOAUTH, cmd_hello},
    {"info", -1, 0, cmd_info},
    {"keys", 2, 0, cmd_keys},
    {"llen", 2, 0, cmd_llen},
    {"lmove", 5, F_WRITE, cmd_lmove},
    {"lpop", -2, F_WRITE, cmd_lpop},
    {"lpush", -3, F_WRITE, cmd_lpush},
    {"lrange", 4, 0, cmd_lrange},
    {"lrem", 4, F_WRITE, cmd_lrem},
    {"ping", -1, F_PUBSUB, cmd_ping},
    {"psubscribe", -2, F_PUBSUB, cmd_psubscribe},
    {"publish", 3, 0, cmd_publish},
    {"pubsub", -2, 0, cmd_pubsub},
    {"punsubscribe", -1, F_PUBSUB, cmd_punsubscribe},
    {"quit", -1, F_NOAUTH | F_PUBSUB, cmd_quit},
    {"reset", 1, F_NOAUTH | F_PUBSUB, cmd_reset},
    {"rpop", -2, F_WRITE, cmd_rpop},
    {"rpoplpush", 3, F_WRITE, cmd_rpoplpush},
    {"rpush", -3, F_WRITE, cmd_rpush},
    {"select", 2, 0, cmd_select},
    {"subscribe", -2, F_PUBSUB, cmd_subscribe},
    {"type", 2, 0, cmd_type},
    {"unsubscribe", -1, F_PUBSUB, cmd_unsubscribe},
};
static const size_t ncmds = sizeof cmds / sizeof cmds[0];

static int cmp_cmd(const void *key, const void *elem)
{
    return strcmp(key, ((const cmddef *)elem)->name);
}

static const cmddef *find_cmd(const char *name, size_t len)
{
    char lower[24];
    if (len >= sizeof lower)
        return NULL;
    lower_name(name, len, lower, sizeof lower);
    return bsearch(lower, cmds, ncmds, sizeof cmds[0], cmp_cmd);
}

static void unknown_command(cmdctx *x)
{
    cipc_buf *o = x->out;
    cipc_buf msg = CIPC_BUF_INIT;
    cipc_buf_printf(&msg, "ERR unknown command '%.*s', with args beginning with: ",
                    (int)(x->argl[0] > 128 ? 128 : x->argl[0]), x->argv[0]);
    for (size_t i = 1; i < x->argc && msg.len < 512; i++)
        cipc_buf_printf(&msg, "'%.*s' ", (int)(x->argl[i] > 128 ? 128 : x->argl[i]), x->argv[i]);
    cipc__resp_error(o, msg.data);
    cipc_buf_free(&msg);
}

int cipc__cmd_exec(cipc_broker *b, bclient *c, size_t argc, const char **argv,
                   const size_t *argl)
{
    cmdctx x = {b, c, argc, argv, argl, &c->out};
    if (argc == 0)
        return 0;
    const cmddef *d = find_cmd(argv[0], argl[0]);
    if (!d) {
        unknown_command(&x);
        return 0;
    }
    if (argc > 1 && (!strcmp(d->name, "client") || !strcmp(d->name, "pubsub") ||
                     !strcmp(d->name, "command"))) {
        char sub[16];
        lower_name(argv[1], argl[1], sub, sizeof sub);
        snprintf(c->last_cmd, sizeof c->last_cmd, "%s|%s", d->name, sub);
    } else {
        snprintf(c->last_cmd, sizeof c->last_cmd, "%s", d->name);
    }
    if ((d->arity > 0 && argc != (size_t)d->arity) || (d->arity < 0 && argc < (size_t)-d->arity)) {
        cipc__resp_errorf(&c->out, "ERR wrong number of arguments for '%s' command", d->name);
        return 0;
    }
    if (!c->authed && !(d->flags & F_NOAUTH)) {
        cipc__resp_error(&c->out, "NOAUTH Authentication required.");
        return 0;
    }
    if (subscribed(c) && !(d->flags & F_PUBSUB)) {
        cipc__resp_errorf(&c->out,
                          "ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
                          "PING / QUIT / RESET are allowed in this context",
                          d->name);
        return 0;
    }
    d->fn(&x);
    return 0;
}
