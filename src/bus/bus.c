/* cipc_bus: the blocking client. A command connection for publish and the queues, a
 * subscriber connection for pub/sub; both reopened lazily. See cipc/bus.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bus/internal.h"
#include "cipc/time.h"

/* Reconnection state of one connection. */
struct reconn {
    int attempt;         /* failed attempts in this episode */
    int64_t next_try_ms; /* no attempt before this monotonic time */
    int last_rc;
};

struct cipc_bus {
    struct cipc__bus_cfg cfg;
    char name[224];     /* consumer id: the command connection's client name */
    char sub_name[232]; /* name + "-sub" */
    struct cipc__bus_conn cmd, sub;
    struct reconn cmd_rc, sub_rc;
    struct cipc__bus_names chans, pats;
    struct cipc__bus_names registered; /* queues this command connection registered a consumer in */
    int gap_pending;
    long long gap_count;
    /* Replies received on the subscriber connection, not yet returned by listen(). */
    redisReply **pend;
    size_t pend_head, pend_n, pend_cap;
    redisReply *cur;      /* the reply the last listen() returned views into */
    int64_t ping_sent_ms; /* 0: no PING outstanding */
    uint64_t rng;
    int64_t last_reap_ms;
    char errmsg[320];
};

static void seterr(cipc_bus *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->errmsg, sizeof b->errmsg, fmt, ap);
    va_end(ap);
}

/* ---- pending replies ---------------------------------------------------------------- */

static int pend_push(cipc_bus *b, redisReply *r)
{
    if (b->pend_n == b->pend_cap) {
        size_t cap = b->pend_cap ? b->pend_cap * 2 : 16;
        redisReply **v = malloc(cap * sizeof *v);
        if (!v) {
            freeReplyObject(r);
            return -ENOMEM;
        }
        for (size_t i = 0; i < b->pend_n; i++)
            v[i] = b->pend[(b->pend_head + i) % b->pend_cap];
        free(b->pend);
        b->pend = v;
        b->pend_cap = cap;
        b->pend_head = 0;
    }
    b->pend[(b->pend_head + b->pend_n) % b->pend_cap] = r;
    b->pend_n++;
    return 0;
}

static redisReply *pend_pop(cipc_bus *b)
{
    if (!b->pend_n)
        return NULL;
    redisReply *r = b->pend[b->pend_head];
    b->pend_head = (b->pend_head + 1) % b->pend_cap;
    b->pend_n--;
    return r;
}

/* ---- connections -------------------------------------------------------------------- */

int cipc__bus_retriable(int rc)
{
    return rc == CIPC_ECONNECT || rc == CIPC_ECONNTIMEOUT || rc == CIPC_ENET || rc == CIPC_EDNS ||
           rc == CIPC_ETIMEOUT || rc == CIPC_ETLS;
}

/* Make sure `c` is open, (re)connecting as opts.reconnect says, until `d`. Returns 1 if
 * it was opened now, 0 if it was open, or the last connect error (also when `d` passed
 * or the attempts ran out; the episode then restarts with the next call). Called before
 * every command and by listen(). */
static int ensure(cipc_bus *b, struct cipc__bus_conn *c, struct reconn *st, const char *name,
                  cipc_deadline d)
{
    if (c->fd >= 0)
        return 0;
    for (;;) {
        int64_t now = cipc_now_ms();
        if (now < st->next_try_ms) {
            int64_t wait = st->next_try_ms - now;
            int64_t left = cipc_deadline_remaining_ms(d);
            if (left >= 0 && left < wait) {
                cipc_sleep_ms(left);
                return st->last_rc ? st->last_rc : CIPC_ETIMEOUT;
            }
            cipc_sleep_ms(wait);
        }
        int rc = cipc__bus_conn_open(c, &b->cfg, name);
        if (rc == 0) {
            st->attempt = 0;
            st->next_try_ms = 0;
            st->last_rc = 0;
            return 1;
        }
        seterr(b, "%s", c->errmsg);
        st->last_rc = rc;
        if (!cipc__bus_retriable(rc)) {
            st->attempt = 0;
            return rc;
        }
        st->attempt++;
        int64_t delay = b->cfg.retry_forever
                            ? cipc_retry_backoff_ms(&b->cfg.retry, st->attempt, &b->rng)
                            : cipc_retry_delay_ms(&b->cfg.retry, st->attempt, -1, &b->rng);
        if (delay < 0) {
            st->attempt = 0;
            st->next_try_ms = 0;
            return rc;
        }
        st->next_try_ms = cipc_now_ms() + delay;
        if (cipc_deadline_expired(d))
            return rc;
    }
}

static cipc_deadline cmd_deadline(const cipc_bus *b)
{
    return cipc_deadline_in(b->cfg.command_timeout_ms);
}

/* Run one command on the command connection before `d`. Returns 0 and *out (owned), or
 * an error (an error reply becomes CIPC_EPROTO, or -EACCES for NOAUTH/WRONGPASS, with
 * its text in errmsg). */
static int call(cipc_bus *b, int argc, const char **argv, const size_t *lens, cipc_deadline d,
                redisReply **out)
{
    cipc__bus_conn_check(&b->cmd);
    int rc = ensure(b, &b->cmd, &b->cmd_rc, b->name, d);
    if (rc < 0)
        return rc;
    if (rc == 1)
        cipc__bus_names_clear(&b->registered);
    redisReply *r = NULL;
    rc = cipc__bus_conn_call(&b->cmd, argc, argv, lens, d, &r);
    if (rc < 0) {
        seterr(b, "%s", b->cmd.errmsg);
        return rc;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        seterr(b, "%.*s: %s", (int)(lens[0] > 32 ? 32 : lens[0]), argv[0], r->str);
        rc = strncmp(r->str, "NOAUTH", 6) == 0 || strncmp(r->str, "WRONGPASS", 9) == 0
                 ? -EACCES
                 : CIPC_EPROTO;
        freeReplyObject(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* call() with C-string arguments (up to 6) and an integer reply. */
static int call_int(cipc_bus *b, long long *val, int argc, ...)
{
    const char *argv[8];
    size_t lens[8];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++) {
        argv[i] = va_arg(ap, const char *);
        lens[i] = strlen(argv[i]);
    }
    va_end(ap);
    redisReply *r = NULL;
    int rc = call(b, argc, argv, lens, cmd_deadline(b), &r);
    if (rc < 0)
        return rc;
    if (r->type != REDIS_REPLY_INTEGER) {
        seterr(b, "%s: unexpected reply type %d", argv[0], r->type);
        rc = CIPC_EPROTO;
    } else if (val) {
        *val = r->integer;
    }
    freeReplyObject(r);
    return rc;
}

static int clamp_int(long long v)
{
    return v > 0x7fffffff ? 0x7fffffff : (int)v;
}

/* ---- connect / free ----------------------------------------------------------------- */

int cipc_bus_connect(const char *url, const cipc_bus_opts *opts, cipc_bus **out)
{
    if (!out)
        return -EINVAL;
    cipc_bus *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    int rc = cipc__bus_cfg_init(&b->cfg, url, opts);
    if (rc < 0) {
        free(b);
        return rc;
    }
    cipc__bus_conn_init(&b->cmd);
    cipc__bus_conn_init(&b->sub);
    b->rng = cipc_retry_seed();
    if (b->cfg.client_name)
        snprintf(b->name, sizeof b->name, "%s", b->cfg.client_name);
    else
        snprintf(b->name, sizeof b->name, "cipc-%ld-%016llx", (long)getpid(),
                 (unsigned long long)cipc_retry_seed());
    snprintf(b->sub_name, sizeof b->sub_name, "%s-sub", b->name);
    rc = cipc__bus_conn_open(&b->cmd, &b->cfg, b->name);
    if (rc < 0) {
        cipc_bus_free(b);
        return rc;
    }
    *out = b;
    return 0;
}

void cipc_bus_free(cipc_bus *b)
{
    if (!b)
        return;
    cipc__bus_conn_close(&b->cmd);
    cipc__bus_conn_close(&b->sub);
    cipc__bus_names_free(&b->chans);
    cipc__bus_names_free(&b->pats);
    cipc__bus_names_free(&b->registered);
    redisReply *r;
    while ((r = pend_pop(b)))
        freeReplyObject(r);
    free(b->pend);
    if (b->cur)
        freeReplyObject(b->cur);
    cipc__bus_cfg_free(&b->cfg);
    free(b);
}

const char *cipc_bus_errmsg(const cipc_bus *b)
{
    return b ? b->errmsg : "no bus";
}

const char *cipc_bus_consumer_id(const cipc_bus *b)
{
    return b ? b->name : "";
}

/* ---- publish ------------------------------------------------------------------------ */

/* `cmd key data` with an integer reply (PUBLISH: receivers, LPUSH: the new length):
 * returns it (clamped to int) or an error. */
static int int_command(cipc_bus *b, const char *cmd, const char *key, const void *data,
                       size_t len)
{
    if (!b || !key || (!data && len))
        return -EINVAL;
    const char *argv[3] = {cmd, key, data ? data : ""};
    size_t lens[3] = {strlen(cmd), strlen(key), len};
    redisReply *r = NULL;
    int rc = call(b, 3, argv, lens, cmd_deadline(b), &r);
    if (rc < 0)
        return rc;
    rc = r->type == REDIS_REPLY_INTEGER ? clamp_int(r->integer) : CIPC_EPROTO;
    if (rc < 0)
        seterr(b, "%s: unexpected reply type %d", cmd, r->type);
    freeReplyObject(r);
    return rc;
}

int cipc_bus_publish(cipc_bus *b, const char *channel, const void *data, size_t len)
{
    return int_command(b, "PUBLISH", channel, data, len);
}

/* ---- subscriber connection ---------------------------------------------------------- */

/* The kind of a push reply in subscribed mode: "message", "subscribe", ... or NULL. */
static const char *push_kind(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return NULL;
    return r->element[0]->str;
}

/* Is `r` the confirmation `kind` (e.g. "subscribe") for `name` (NULL: any name)? */
static int is_confirm(const redisReply *r, const char *kind, const char *name)
{
    const char *k = push_kind(r);
    if (!k || strcasecmp(k, kind) != 0 || r->elements != 3 ||
        r->element[2]->type != REDIS_REPLY_INTEGER)
        return 0;
    if (!name)
        return 1;
    const redisReply *n = r->element[1];
    return n->type == REDIS_REPLY_STRING && n->len == strlen(name) &&
           memcmp(n->str, name, n->len) == 0;
}

/* Send a (P)SUBSCRIBE/(P)UNSUBSCRIBE with the given names on the subscriber connection
 * and read until `want` confirmations of `kind` arrived (for `name` when want is 1 and
 * name is not NULL). Confirmations are queued for listen() if `keep` and not
 * skip_confirmations; other replies are queued. Sets *count from the last confirmation.
 * Returns 0 or an error (the connection is closed on a timeout). Called by the
 * subscribe functions and by resubscribe(). */
static int sub_command(cipc_bus *b, const char *cmd, const char *kind, const char **names, size_t n,
                       const char *name, size_t want, int keep, long long *count, cipc_deadline d)
{
    const char **argv = malloc((n + 1) * sizeof *argv);
    size_t *lens = malloc((n + 1) * sizeof *lens);
    if (!argv || !lens) {
        free(argv);
        free(lens);
        return -ENOMEM;
    }
    argv[0] = cmd;
    lens[0] = strlen(cmd);
    for (size_t i = 0; i < n; i++) {
        argv[i + 1] = names[i];
        lens[i + 1] = strlen(names[i]);
    }
    int rc = cipc__bus_conn_send(&b->sub, (int)(n + 1), argv, lens, d);
    free(argv);
    free(lens);
    size_t got = 0;
    while (rc == 0 && got < want) {
        redisReply *r = NULL;
        rc = cipc__bus_conn_read(&b->sub, d, &r);
        if (rc < 0)
            break;
        if (r->type == REDIS_REPLY_ERROR) {
            seterr(b, "%s: %s", cmd, r->str);
            freeReplyObject(r);
            cipc__bus_conn_close(&b->sub); /* unknown state: start afresh */
            return CIPC_EPROTO;
        }
        if (is_confirm(r, kind, want == 1 ? name : NULL)) {
            got++;
            *count = r->element[2]->integer;
            if (!keep || b->cfg.skip_confirmations) {
                freeReplyObject(r);
                continue;
            }
        }
        if ((rc = pend_push(b, r)) < 0)
            break;
    }
    if (rc == CIPC_ETIMEOUT)
        cipc__bus_conn_close(&b->sub);
    if (rc < 0 && b->sub.errmsg[0])
        seterr(b, "%s", b->sub.errmsg);
    return rc;
}

/* After the subscriber connection was (re)opened: renew every subscription and, if it
 * was a reconnection, queue a GAP. Returns 0 or an error (connection closed). */
static int resubscribe(cipc_bus *b, cipc_deadline d)
{
    long long count = 0;
    int rc = 0;
    b->ping_sent_ms = 0;
    if (b->chans.n)
        rc = sub_command(b, "SUBSCRIBE", "subscribe", (const char **)b->chans.v, b->chans.n, NULL,
                         b->chans.n, 0, &count, d);
    if (rc == 0 && b->pats.n)
        rc = sub_command(b, "PSUBSCRIBE", "psubscribe", (const char **)b->pats.v, b->pats.n, NULL,
                         b->pats.n, 0, &count, d);
    if (rc < 0) {
        cipc__bus_conn_close(&b->sub);
        return rc;
    }
    if (b->chans.n + b->pats.n) {
        b->gap_pending = 1;
        b->gap_count = (long long)(b->chans.n + b->pats.n);
    }
    return 0;
}

/* Open the subscriber connection if needed (and resubscribe). */
static int ensure_sub(cipc_bus *b, cipc_deadline d)
{
    int rc = ensure(b, &b->sub, &b->sub_rc, b->sub_name, d);
    if (rc == 1)
        rc = resubscribe(b, d);
    return rc;
}

static int do_subscribe(cipc_bus *b, struct cipc__bus_names *set, const char *cmd, const char *kind,
                        const char *name)
{
    if (!b || !name)
        return -EINVAL;
    cipc_deadline d = cmd_deadline(b);
    int rc = ensure_sub(b, d);
    if (rc < 0)
        return rc;
    int added = cipc__bus_names_add(set, name);
    if (added < 0)
        return added;
    long long count = 0;
    rc = sub_command(b, cmd, kind, &name, 1, name, 1, 1, &count, d);
    if (rc < 0) {
        if (added)
            cipc__bus_names_del(set, name);
        return rc;
    }
    return clamp_int(count);
}

int cipc_bus_subscribe(cipc_bus *b, const char *channel)
{
    return do_subscribe(b, b ? &b->chans : NULL, "SUBSCRIBE", "subscribe", channel);
}

int cipc_bus_psubscribe(cipc_bus *b, const char *pattern)
{
    return do_subscribe(b, b ? &b->pats : NULL, "PSUBSCRIBE", "psubscribe", pattern);
}

static int do_unsubscribe(cipc_bus *b, struct cipc__bus_names *set, const char *cmd,
                          const char *kind, const char *name)
{
    if (!b)
        return -EINVAL;
    size_t had = set->n;
    if (name)
        cipc__bus_names_del(set, name);
    else
        cipc__bus_names_clear(set);
    if (b->sub.fd < 0) /* nothing to tell the server: the set is what we resubscribe */
        return clamp_int((long long)(b->chans.n + b->pats.n));
    long long count = 0;
    size_t want = name ? 1 : had ? had : 1;
    int rc = sub_command(b, cmd, kind, name ? &name : NULL, name ? 1 : 0, name, want, 1, &count,
                         cmd_deadline(b));
    return rc < 0 ? rc : clamp_int(count);
}

int cipc_bus_unsubscribe(cipc_bus *b, const char *channel)
{
    return do_unsubscribe(b, b ? &b->chans : NULL, "UNSUBSCRIBE", "unsubscribe", channel);
}

int cipc_bus_punsubscribe(cipc_bus *b, const char *pattern)
{
    return do_unsubscribe(b, b ? &b->pats : NULL, "PUNSUBSCRIBE", "punsubscribe", pattern);
}

int cipc__bus_to_msg(const redisReply *r, int skip_confirmations, cipc_bus_msg *m)
{
    memset(m, 0, sizeof *m);
    const char *k = push_kind(r);
    if (!k)
        return 0; /* +PONG outside subscribed mode, or anything unexpected */
    redisReply *const *e = r->element;
    for (size_t i = 1; i < r->elements && i < 4; i++)
        if (e[i]->type != REDIS_REPLY_STRING && e[i]->type != REDIS_REPLY_INTEGER &&
            e[i]->type != REDIS_REPLY_NIL)
            return 0;
    int strs =
        r->elements >= 3 && e[1]->type == REDIS_REPLY_STRING && e[2]->type == REDIS_REPLY_STRING;
    if (strcasecmp(k, "message") == 0 && r->elements == 3 && strs) {
        m->type = CIPC_BUS_MESSAGE;
        m->channel = e[1]->str;
        m->channel_len = e[1]->len;
        m->data = e[2]->str;
        m->len = e[2]->len;
        return 1;
    }
    if (strcasecmp(k, "pmessage") == 0 && r->elements == 4 && strs &&
        e[3]->type == REDIS_REPLY_STRING) {
        m->type = CIPC_BUS_PMESSAGE;
        m->pattern = e[1]->str;
        m->pattern_len = e[1]->len;
        m->channel = e[2]->str;
        m->channel_len = e[2]->len;
        m->data = e[3]->str;
        m->len = e[3]->len;
        return 1;
    }
    static const struct {
        const char *kind;
        cipc_bus_msg_type type;
    } confirms[] = {{"subscribe", CIPC_BUS_SUBSCRIBE},
                    {"unsubscribe", CIPC_BUS_UNSUBSCRIBE},
                    {"psubscribe", CIPC_BUS_PSUBSCRIBE},
                    {"punsubscribe", CIPC_BUS_PUNSUBSCRIBE}};
    for (size_t i = 0; i < sizeof confirms / sizeof confirms[0]; i++) {
        if (strcasecmp(k, confirms[i].kind) == 0 && r->elements == 3 &&
            e[2]->type == REDIS_REPLY_INTEGER) {
            if (skip_confirmations)
                return 0;
            m->type = confirms[i].type;
            if (e[1]->type == REDIS_REPLY_STRING) {
                m->channel = e[1]->str;
                m->channel_len = e[1]->len;
            }
            m->count = e[2]->integer;
            return 1;
        }
    }
    return 0; /* ["pong", ""] */
}

int cipc_bus_listen(cipc_bus *b, cipc_bus_msg *m, long timeout_ms)
{
    if (!b || !m)
        return -EINVAL;
    if (b->cur) {
        freeReplyObject(b->cur);
        b->cur = NULL;
    }
    cipc_deadline d = cipc_deadline_in(timeout_ms);
    for (;;) {
        if (b->gap_pending) {
            b->gap_pending = 0;
            memset(m, 0, sizeof *m);
            m->type = CIPC_BUS_GAP;
            m->count = b->gap_count;
            return 0;
        }
        redisReply *r = pend_pop(b);
        if (r) {
            if (cipc__bus_to_msg(r, b->cfg.skip_confirmations, m)) {
                b->cur = r;
                return 0;
            }
            freeReplyObject(r);
            continue;
        }
        if (b->chans.n + b->pats.n == 0) {
            seterr(b, "listen: not subscribed to any channel or pattern");
            return -EINVAL;
        }
        if (b->sub.fd < 0) {
            int rc = ensure_sub(b, d);
            if (rc < 0) {
                if (cipc_deadline_expired(d) && cipc__bus_retriable(rc))
                    return CIPC_ETIMEOUT;
                return rc;
            }
            continue;
        }
        /* Wait for data, but no later than the next keepalive step. */
        int64_t now = cipc_now_ms();
        cipc_deadline wd = d;
        int64_t step = -1; /* monotonic ms of the next keepalive step */
        if (b->cfg.ping_interval_ms > 0) {
            step = b->ping_sent_ms ? b->ping_sent_ms + b->cfg.ping_timeout_ms
                                   : b->sub.last_rx_ms + b->cfg.ping_interval_ms;
            cipc_deadline sd = cipc_deadline_in(step > now ? step - now : 0);
            if (sd.at_ns < wd.at_ns)
                wd = sd;
        }
        int rc = cipc__bus_conn_read(&b->sub, wd, &r);
        if (rc == 0) {
            b->ping_sent_ms = 0; /* anything received proves the connection alive */
            if ((rc = pend_push(b, r)) < 0)
                return rc;
            continue;
        }
        if (rc != CIPC_ETIMEOUT) {
            seterr(b, "subscriber connection lost: %s", b->sub.errmsg);
            continue; /* closed: reconnect above */
        }
        now = cipc_now_ms();
        if (step >= 0 && now >= step) {
            if (b->ping_sent_ms) {
                seterr(b, "subscriber connection dead: no reply to PING within %ld ms",
                       b->cfg.ping_timeout_ms);
                cipc__bus_conn_close(&b->sub);
                b->ping_sent_ms = 0;
                continue;
            }
            const char *argv[1] = {"PING"};
            size_t lens[1] = {4};
            if (cipc__bus_conn_send(&b->sub, 1, argv, lens,
                                    cipc_deadline_in(b->cfg.ping_timeout_ms)) < 0)
                continue; /* closed: reconnect */
            b->ping_sent_ms = now;
            continue;
        }
        if (cipc_deadline_expired(d))
            return CIPC_ETIMEOUT;
    }
}

/* ---- queues ------------------------------------------------------------------------- */

int cipc_bus_push(cipc_bus *b, const char *queue, const void *data, size_t len)
{
    return int_command(b, "LPUSH", queue, data, len);
}

int cipc_bus_len(cipc_bus *b, const char *list)
{
    if (!b || !list)
        return -EINVAL;
    long long n = 0;
    int rc = call_int(b, &n, 2, "LLEN", list);
    return rc < 0 ? rc : clamp_int(n);
}

/* Copy a bulk reply into a new NUL-terminated buffer. */
static int take_bulk(cipc_bus *b, const redisReply *r, void **data, size_t *len)
{
    if (r->type != REDIS_REPLY_STRING) {
        seterr(b, "unexpected reply type %d for a queue item", r->type);
        return CIPC_EPROTO;
    }
    char *p = malloc(r->len + 1);
    if (!p)
        return -ENOMEM;
    memcpy(p, r->str, r->len);
    p[r->len] = '\0';
    *data = p;
    *len = r->len;
    return 0;
}

static void processing_key(char *out, size_t n, const char *queue, const char *id)
{
    snprintf(out, n, "%s:processing:%s", queue, id);
}

/* Register this consumer in `<queue>:consumers` once per command connection. */
static int register_consumer(cipc_bus *b, const char *queue)
{
    if (cipc__bus_names_find(&b->registered, queue) >= 0 && b->cmd.fd >= 0)
        return 0;
    char key[1024];
    snprintf(key, sizeof key, "%s:consumers", queue);
    int rc = call_int(b, NULL, 4, "LREM", key, "0", b->name);
    if (rc == 0)
        rc = call_int(b, NULL, 3, "LPUSH", key, b->name);
    if (rc == 0 && (rc = cipc__bus_names_add(&b->registered, queue)) > 0)
        rc = 0;
    return rc;
}

/* The shared loop of pop and pop_reliable: run the blocking command in slices of at most
 * the ping interval (so a dead server is noticed), until an item or the deadline. */
static int pop_common(cipc_bus *b, const char *queue, long timeout_ms, void **data, size_t *len,
                      int reliable)
{
    if (!b || !queue || !data || !len || strlen(queue) > 512)
        return -EINVAL;
    char proc[1024];
    processing_key(proc, sizeof proc, queue, b->name);
    cipc_deadline d = cipc_deadline_in(timeout_ms);
    for (;;) {
        if (reliable && b->cfg.visibility_ms > 0 &&
            cipc_now_ms() - b->last_reap_ms >= b->cfg.visibility_ms / 2) {
            int rc = cipc_bus_reap(b, queue, b->cfg.visibility_ms);
            if (rc < 0)
                return rc;
        }
        if (reliable) {
            int rc = register_consumer(b, queue);
            if (rc < 0)
                return rc;
        }
        int64_t left = cipc_deadline_remaining_ms(d);
        int64_t slice = left;
        int64_t max_slice = b->cfg.ping_interval_ms > 0 ? b->cfg.ping_interval_ms : 10000;
        if (reliable && b->cfg.visibility_ms > 0 && b->cfg.visibility_ms / 2 < max_slice)
            max_slice = b->cfg.visibility_ms / 2 > 0 ? b->cfg.visibility_ms / 2 : 1;
        if (slice < 0 || slice > max_slice)
            slice = max_slice;
        char secs[32];
        snprintf(secs, sizeof secs, "%.3f", (double)slice / 1000.0);
        const char *argv[6];
        size_t lens[6];
        int argc;
        if (timeout_ms == 0) {
            if (reliable) {
                const char *a[] = {"LMOVE", queue, proc, "RIGHT", "LEFT"};
                argc = 5;
                memcpy(argv, a, sizeof a);
            } else {
                const char *a[] = {"RPOP", queue};
                argc = 2;
                memcpy(argv, a, sizeof a);
            }
        } else if (reliable) {
            const char *a[] = {"BLMOVE", queue, proc, "RIGHT", "LEFT", secs};
            argc = 6;
            memcpy(argv, a, sizeof a);
        } else {
            const char *a[] = {"BRPOP", queue, secs};
            argc = 3;
            memcpy(argv, a, sizeof a);
        }
        for (int i = 0; i < argc; i++)
            lens[i] = strlen(argv[i]);
        cipc_deadline rd = cipc_deadline_in(
            b->cfg.command_timeout_ms < 0 ? -1
                                          : (timeout_ms ? slice : 0) + b->cfg.command_timeout_ms);
        redisReply *r = NULL;
        int rc = call(b, argc, argv, lens, rd, &r);
        if (rc < 0)
            return rc;
        if (r->type == REDIS_REPLY_NIL) {
            freeReplyObject(r);
            if (timeout_ms == 0)
                return CIPC_EAGAIN;
            if (cipc_deadline_expired(d))
                return CIPC_ETIMEOUT;
            continue;
        }
        if (!reliable && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
            rc = take_bulk(b, r->element[1], data, len);
        else
            rc = take_bulk(b, r, data, len);
        freeReplyObject(r);
        return rc;
    }
}

int cipc_bus_pop(cipc_bus *b, const char *queue, long timeout_ms, void **data, size_t *len)
{
    return pop_common(b, queue, timeout_ms, data, len, 0);
}

int cipc_bus_pop_reliable(cipc_bus *b, const char *queue, long timeout_ms, void **data, size_t *len)
{
    return pop_common(b, queue, timeout_ms, data, len, 1);
}

int cipc_bus_ack(cipc_bus *b, const char *queue, const void *data, size_t len)
{
    if (!b || !queue || (!data && len) || strlen(queue) > 512)
        return -EINVAL;
    char proc[1024];
    processing_key(proc, sizeof proc, queue, b->name);
    const char *argv[4] = {"LREM", proc, "-1", data ? data : ""};
    size_t lens[4] = {4, strlen(proc), 2, len};
    redisReply *r = NULL;
    int rc = call(b, 4, argv, lens, cmd_deadline(b), &r);
    if (rc < 0)
        return rc;
    rc = r->type == REDIS_REPLY_INTEGER ? (r->integer > 0) : CIPC_EPROTO;
    freeReplyObject(r);
    return rc;
}

/* Is `name` among the names in a CLIENT LIST reply? */
static int client_listed(const char *list, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = list; (p = strstr(p, "name=")) != NULL; p += 5) {
        if (p != list && p[-1] != ' ')
            continue;
        if (strncmp(p + 5, name, nl) == 0 &&
            (p[5 + nl] == ' ' || p[5 + nl] == '\n' || p[5 + nl] == '\r' || p[5 + nl] == '\0'))
            return 1;
    }
    return 0;
}

/* Move every item of `proc` back to the head of `queue`, in order. Returns the count. */
static int requeue(cipc_bus *b, const char *proc, const char *queue)
{
    int moved = 0;
    for (;;) {
        const char *argv[5] = {"LMOVE", proc, queue, "LEFT", "RIGHT"};
        size_t lens[5] = {5, strlen(proc), strlen(queue), 4, 5};
        redisReply *r = NULL;
        int rc = call(b, 5, argv, lens, cmd_deadline(b), &r);
        if (rc < 0)
            return rc;
        int nil = r->type == REDIS_REPLY_NIL;
        freeReplyObject(r);
        if (nil)
            return moved;
        moved++;
    }
}

int cipc_bus_reap(cipc_bus *b, const char *queue, long visibility_ms)
{
    if (!b || !queue || visibility_ms < 0 || strlen(queue) > 512)
        return -EINVAL;
    b->last_reap_ms = cipc_now_ms();
    char key[1024], proc[1024], suspect[1024];
    snprintf(key, sizeof key, "%s:consumers", queue);
    const char *argv[4] = {"LRANGE", key, "0", "-1"};
    size_t lens[4] = {6, strlen(key), 1, 2};
    redisReply *ids = NULL, *list = NULL;
    int rc = call(b, 4, argv, lens, cmd_deadline(b), &ids);
    if (rc < 0)
        return rc;
    const char *cl[2] = {"CLIENT", "LIST"};
    size_t cll[2] = {6, 4};
    if (ids->type != REDIS_REPLY_ARRAY || ids->elements == 0) {
        freeReplyObject(ids);
        return 0;
    }
    rc = call(b, 2, cl, cll, cmd_deadline(b), &list);
    if (rc < 0) {
        freeReplyObject(ids);
        return rc;
    }
    if (list->type != REDIS_REPLY_STRING && list->type != REDIS_REPLY_STATUS) {
        seterr(b, "CLIENT LIST: unexpected reply type %d", list->type);
        freeReplyObject(ids);
        freeReplyObject(list);
        return CIPC_EPROTO;
    }
    int total = 0;
    int64_t now = cipc_wall_ms();
    for (size_t i = 0; i < ids->elements && rc >= 0; i++) {
        const redisReply *e = ids->element[i];
        if (e->type != REDIS_REPLY_STRING || strlen(e->str) != e->len)
            continue;
        const char *id = e->str;
        snprintf(suspect, sizeof suspect, "%s:suspect:%s", queue, id);
        if (client_listed(list->str, id)) {
            rc = call_int(b, NULL, 2, "DEL", suspect);
            continue;
        }
        /* Absent: since when? */
        const char *la[4] = {"LRANGE", suspect, "0", "0"};
        size_t ll[4] = {6, strlen(suspect), 1, 1};
        redisReply *s = NULL;
        if ((rc = call(b, 4, la, ll, cmd_deadline(b), &s)) < 0)
            break;
        long long since = -1;
        if (s->type == REDIS_REPLY_ARRAY && s->elements == 1 &&
            s->element[0]->type == REDIS_REPLY_STRING)
            since = atoll(s->element[0]->str);
        freeReplyObject(s);
        if (since < 0 && visibility_ms > 0) {
            char ts[32];
            snprintf(ts, sizeof ts, "%lld", (long long)now);
            rc = call_int(b, NULL, 3, "RPUSH", suspect, ts);
            continue;
        }
        if (since >= 0 && now - since < visibility_ms)
            continue;
        processing_key(proc, sizeof proc, queue, id);
        int moved = requeue(b, proc, queue);
        if (moved < 0) {
            rc = moved;
            break;
        }
        total += moved;
        if ((rc = call_int(b, NULL, 4, "LREM", key, "0", id)) == 0)
            rc = call_int(b, NULL, 2, "DEL", suspect);
    }
    freeReplyObject(ids);
    freeReplyObject(list);
    return rc < 0 ? rc : total;
}
