/* The hub's backend: commands to the store that holds the queues (the embedded broker,
 * through in-process clients, or a Redis server, through src/bus/async.c), the queue
 * listing, and reservations (leases) with their expiry. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cipc/log.h"
#include "cipc/time.h"
#include "hub/internal.h"

static void be_free(hub_be *be)
{
    cipc_hub *h = be->h;
    if (be->blocking) {
        if (be->prev)
            be->prev->next = be->next;
        else if (h->blocking == be)
            h->blocking = be->next;
        if (be->next)
            be->next->prev = be->prev;
    }
    if (be->rd)
        redisReaderFree(be->rd);
    free(be->w);
    free(be);
}

static int waiter_push(hub_be *be, hub_reply_cb cb, void *ud)
{
    if (be->wn == be->wcap) {
        size_t cap = be->wcap ? be->wcap * 2 : 16;
        struct hub_waiter *w = malloc(cap * sizeof *w);
        if (!w)
            return -ENOMEM;
        for (size_t i = 0; i < be->wn; i++)
            w[i] = be->w[(be->wh + i) % be->wcap];
        free(be->w);
        be->w = w;
        be->wh = 0;
        be->wcap = cap;
    }
    be->w[(be->wh + be->wn) % be->wcap] = (struct hub_waiter){cb, ud};
    be->wn++;
    return 0;
}

static int waiter_pop(hub_be *be, struct hub_waiter *out)
{
    if (!be->wn)
        return 0;
    *out = be->w[be->wh];
    be->wh = (be->wh + 1) % be->wcap;
    be->wn--;
    return 1;
}

static void fail_waiters(hub_be *be, const char *why)
{
    struct hub_waiter w;
    while (waiter_pop(be, &w))
        w.cb(be->h, NULL, why, w.ud);
}

/* Local mode: the in-process client's replies, as RESP. */
static void on_vc_reply(const char *resp, size_t len, void *ud)
{
    hub_be *be = ud;
    cipc__hub_kick(be->h);
    if (redisReaderFeed(be->rd, resp, len) != REDIS_OK) {
        fail_waiters(be, "out of memory");
        return;
    }
    for (;;) {
        void *r = NULL;
        if (redisReaderGetReply(be->rd, &r) != REDIS_OK) {
            fail_waiters(be, "protocol error");
            return;
        }
        if (!r)
            return;
        struct hub_waiter w;
        int have = waiter_pop(be, &w);
        if (have)
            w.cb(be->h, r, NULL, w.ud);
        freeReplyObject(r);
        if (be->blocking) { /* one command per blocking connection */
            cipc_broker_client_close(be->vc);
            be_free(be);
            return;
        }
    }
}

/* Redis mode: a reply for the shared connection's or a blocking connection's command. */
struct ra_wait {
    hub_be *be; /* blocking connection, or NULL */
    cipc_hub *h;
    hub_reply_cb cb;
    void *ud;
};

static void on_ra_reply(redisReply *r, const char *err, void *ud)
{
    struct ra_wait *w = ud;
    hub_be *be = w->be;
    if (be && be->dead) { /* cancelled: the callback already ran */
        free(w);
        return;
    }
    w->cb(w->h, r, err, w->ud);
    if (be) {
        be->dead = 1;
        cipc__bus_async_close(be->ra);
        be_free(be);
    }
    free(w);
}

static hub_be *be_new(cipc_hub *h, int blocking)
{
    hub_be *be = calloc(1, sizeof *be);
    if (!be)
        return NULL;
    be->h = h;
    be->blocking = blocking;
    int rc;
    if (h->redis_url) {
        rc = cipc__bus_async_new(h->loop, h->redis_url,
                                 &(cipc_bus_opts){.size = sizeof(cipc_bus_opts),
                                                  .command_timeout_ms = -1},
                                 &be->ra);
    } else {
        be->rd = redisReaderCreate();
        rc = be->rd ? cipc_broker_client_new(h->broker, blocking ? "hub-wait" : "hub",
                                             on_vc_reply, be, &be->vc)
                    : -ENOMEM;
    }
    if (rc < 0) {
        if (be->rd)
            redisReaderFree(be->rd);
        free(be);
        return NULL;
    }
    if (blocking) {
        be->next = h->blocking;
        if (h->blocking)
            h->blocking->prev = be;
        h->blocking = be;
    }
    return be;
}

static int be_cmd(hub_be *be, hub_reply_cb cb, void *ud, int argc, const char *const *argv,
                  const size_t *argl)
{
    if (be->ra) {
        struct ra_wait *w = malloc(sizeof *w);
        if (!w)
            return -ENOMEM;
        *w = (struct ra_wait){be->blocking ? be : NULL, be->h, cb, ud};
        int rc = cipc__bus_async_cmd(be->ra, on_ra_reply, w, argc, argv, argl);
        if (rc < 0)
            free(w);
        return rc;
    }
    int rc = waiter_push(be, cb, ud);
    if (rc < 0)
        return rc;
    rc = cipc_broker_client_cmd(be->vc, (size_t)argc, argv, argl);
    if (rc < 0)
        be->wn--;
    return rc;
}

int cipc__hub_be_open(cipc_hub *h)
{
    h->be = be_new(h, 0);
    return h->be ? 0 : -ENOMEM;
}

int cipc__hub_cmd(cipc_hub *h, hub_reply_cb cb, void *ud, int argc, const char *const *argv,
                  const size_t *argl)
{
    if (!h->be)
        return CIPC_ECLOSING;
    return be_cmd(h->be, cb, ud, argc, argv, argl);
}

int cipc__hub_cmd_blocking(cipc_hub *h, hub_reply_cb cb, void *ud, int argc,
                           const char *const *argv, const size_t *argl, hub_be **out)
{
    if (h->stopping)
        return CIPC_ECLOSING;
    hub_be *be = be_new(h, 1);
    if (!be)
        return -ENOMEM;
    int rc = be_cmd(be, cb, ud, argc, argv, argl);
    if (rc < 0) {
        if (be->ra)
            cipc__bus_async_close(be->ra);
        else
            cipc_broker_client_close(be->vc);
        be_free(be);
        return rc;
    }
    *out = be;
    return 0;
}

void cipc__hub_be_cancel(hub_be *be)
{
    if (!be || be->dead)
        return;
    if (be->ra) { /* fails the command: on_ra_reply runs its callback and frees be */
        cipc__bus_async_close(be->ra);
        return;
    }
    be->dead = 1;
    fail_waiters(be, "cancelled");
    cipc_broker_client_close(be->vc);
    be_free(be);
}

void cipc__hub_be_close_all(cipc_hub *h)
{
    while (h->blocking)
        cipc__hub_be_cancel(h->blocking);
    if (h->be) {
        hub_be *be = h->be;
        h->be = NULL;
        if (be->ra) {
            cipc__bus_async_close(be->ra); /* fails what is pending (shared: no be to free) */
        } else {
            fail_waiters(be, "cancelled");
            cipc_broker_client_close(be->vc);
        }
        be_free(be);
    }
}

/* --- queue listing ----------------------------------------------------------------------- */

static int internal_key(const char *k)
{
    size_t n = strlen(k);
    return strstr(k, ":processing:") || strstr(k, ":suspect:") ||
           (n >= 10 && !strcmp(k + n - 10, ":consumers"));
}

struct qlist {
    cipc_hub *h;
    hub_queues_cb cb;
    void *ud;
    json_t *arr;
    size_t waiting;
    int failed;
    char err[200];
};

static size_t reserved_in(cipc_hub *h, const char *queue)
{
    size_t n = 0, bk = 0;
    dict_entry *e = NULL;
    while (cipc__dict_next(&h->leases, &bk, &e))
        n += !strcmp(((hub_lease *)e->val)->queue, queue);
    return n;
}

struct qitem {
    struct qlist *l;
    json_t *obj;
};

static int by_name(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "name")),
                  json_string_value(json_object_get(*(json_t *const *)b, "name")));
}

static void qlist_done(struct qlist *l)
{
    if (l->waiting)
        return;
    size_t n = json_array_size(l->arr);
    json_t **v = n ? malloc(n * sizeof *v) : NULL;
    if (v) { /* sorted by name, for stable listings */
        for (size_t i = 0; i < n; i++)
            v[i] = json_incref(json_array_get(l->arr, i));
        qsort(v, n, sizeof *v, by_name);
        json_array_clear(l->arr);
        for (size_t i = 0; i < n; i++)
            json_array_append_new(l->arr, v[i]);
        free(v);
    }
    l->cb(l->h, l->failed ? NULL : l->arr, l->failed ? l->err : NULL, l->ud);
    json_decref(l->arr);
    free(l);
}

static void on_llen(cipc_hub *h, redisReply *r, const char *err, void *ud)
{
    (void)h;
    struct qitem *q = ud;
    struct qlist *l = q->l;
    if (!r) {
        l->failed = 1;
        snprintf(l->err, sizeof l->err, "%s", err);
    } else if (r->type == REDIS_REPLY_INTEGER) {
        json_object_set_new(q->obj, "length", json_integer(r->integer));
        json_array_append(l->arr, q->obj);
    }
    json_decref(q->obj);
    free(q);
    l->waiting--;
    qlist_done(l);
}

static void ask_len(struct qlist *l, const char *name, size_t len)
{
    struct qitem *q = malloc(sizeof *q);
    if (!q)
        return;
    q->l = l;
    q->obj = json_pack("{s:s%,s:I}", "name", name, len, "reserved",
                       (json_int_t)reserved_in(l->h, name));
    const char *argv[2] = {"LLEN", name};
    size_t argl[2] = {4, len};
    l->waiting++;
    if (!q->obj || cipc__hub_cmd(l->h, on_llen, q, 2, argv, argl) < 0) {
        l->waiting--;
        json_decref(q->obj);
        free(q);
    }
}

void cipc__hub_queue_seen(cipc_hub *h, const char *name)
{
    if (h->queues.n < 10000) /* a bound on names kept only for listing */
        cipc__dict_upsert(&h->queues, name, strlen(name), &(int){0});
}

static void on_keys(cipc_hub *h, redisReply *r, const char *err, void *ud)
{
    struct qlist *l = ud;
    l->waiting--;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        l->failed = 1;
        snprintf(l->err, sizeof l->err, "%s", r ? (r->str ? r->str : "bad reply") : err);
        qlist_done(l);
        return;
    }
    dict names; /* the keys, and the queues this hub has used (empty lists have no key) */
    cipc__dict_init(&names);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *k = r->element[i];
        if (k->type == REDIS_REPLY_STRING && !internal_key(k->str))
            cipc__dict_upsert(&names, k->str, k->len, &(int){0});
    }
    size_t bk = 0;
    dict_entry *e = NULL;
    while (cipc__dict_next(&h->queues, &bk, &e))
        cipc__dict_upsert(&names, e->key, e->klen, &(int){0});
    bk = 0;
    e = NULL;
    while (cipc__dict_next(&names, &bk, &e))
        ask_len(l, e->key, e->klen);
    cipc__dict_free(&names, NULL);
    qlist_done(l);
}

void cipc__hub_queues(cipc_hub *h, const char *only, hub_queues_cb cb, void *ud)
{
    struct qlist *l = calloc(1, sizeof *l);
    if (!l || !(l->arr = json_array())) {
        free(l);
        cb(h, NULL, "out of memory", ud);
        return;
    }
    l->h = h;
    l->cb = cb;
    l->ud = ud;
    l->waiting = 1;
    if (only) {
        ask_len(l, only, strlen(only));
        l->waiting--;
        qlist_done(l);
        return;
    }
    if (h->redis_url) { /* no KEYS on a shared Redis: the queues this hub has used */
        size_t bk = 0;
        dict_entry *e = NULL;
        while (cipc__dict_next(&h->queues, &bk, &e))
            ask_len(l, e->key, e->klen);
        l->waiting--;
        qlist_done(l);
        return;
    }
    const char *argv[2] = {"KEYS", "*"};
    if (cipc__hub_cmd(h, on_keys, l, 2, argv, NULL) < 0) {
        l->waiting = 0;
        l->failed = 1;
        snprintf(l->err, sizeof l->err, "the store is not reachable");
        qlist_done(l);
    }
}

/* --- leases ------------------------------------------------------------------------------ */

void cipc__hub_lease_free(void *v)
{
    hub_lease *l = v;
    if (!l)
        return;
    free(l->queue);
    free(l->proc);
    free(l->data);
    free(l);
}

void cipc__hub_leases_free(cipc_hub *h)
{
    cipc__dict_free(&h->leases, cipc__hub_lease_free);
}

static void on_requeued(cipc_hub *h, redisReply *r, const char *err, void *ud)
{
    (void)h;
    (void)r;
    (void)ud;
    if (!r)
        cipc_log(CIPC_LOG_WARN, "hub", "re-queueing a reservation failed: %s", err);
}

/* LREM answered: if the item was still reserved, put it back at the head of the queue. */
static void on_lease_lrem(cipc_hub *h, redisReply *r, const char *err, void *ud)
{
    hub_lease *l = ud;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
        const char *argv[3] = {"RPUSH", l->queue, l->data};
        size_t argl[3] = {5, strlen(l->queue), l->len};
        cipc__hub_cmd(h, on_requeued, NULL, 3, argv, argl);
    } else if (!r) {
        cipc_log(CIPC_LOG_WARN, "hub", "expiring a reservation failed: %s", err);
    }
    cipc__hub_lease_free(l);
}

/* Take the lease out of the table and give its item back to the queue. */
void cipc__hub_lease_requeue(cipc_hub *h, hub_lease *l)
{
    cipc__dict_remove(&h->leases, l->id, strlen(l->id));
    const char *argv[4] = {"LREM", l->proc, "1", l->data};
    size_t argl[4] = {4, strlen(l->proc), 1, l->len};
    if (cipc__hub_cmd(h, on_lease_lrem, l, 4, argv, argl) < 0)
        cipc__hub_lease_free(l);
}

void cipc__hub_leases_tick(cipc_hub *h)
{
    if (!h->leases.n)
        return;
    int64_t now = cipc_now_ms();
    hub_lease *expired[64];
    size_t n = 0, bk = 0;
    dict_entry *e = NULL;
    while (n < 64 && cipc__dict_next(&h->leases, &bk, &e))
        if (((hub_lease *)e->val)->deadline_ms <= now)
            expired[n++] = e->val;
    for (size_t i = 0; i < n; i++)
        cipc__hub_lease_requeue(h, expired[i]);
}

/* At shutdown: every reservation goes back to the head of its queue now (no client can
 * acknowledge it once the hub is gone). Both commands are sent at once, as the store may
 * not be reachable for a second round trip. */
void cipc__hub_leases_release(cipc_hub *h)
{
    size_t bk = 0;
    dict_entry *e = NULL;
    while (cipc__dict_next(&h->leases, &bk, &e)) {
        hub_lease *l = e->val;
        const char *lrem[4] = {"LREM", l->proc, "1", l->data};
        size_t lreml[4] = {4, strlen(l->proc), 1, l->len};
        const char *push[3] = {"RPUSH", l->queue, l->data};
        size_t pushl[3] = {5, strlen(l->queue), l->len};
        if (cipc__hub_cmd(h, on_requeued, NULL, 4, lrem, lreml) == 0)
            cipc__hub_cmd(h, on_requeued, NULL, 3, push, pushl);
    }
    cipc__hub_leases_free(h);
    cipc__dict_init(&h->leases);
}

/* Commands sent on the shared connection whose replies have not come. */
size_t cipc__hub_be_pending(cipc_hub *h)
{
    if (!h->be)
        return 0;
    return h->be->ra ? cipc__bus_async_pending(h->be->ra) : h->be->wn;
}

/* --- reclaiming the reservations of a previous run ----------------------------------- */

struct reclaim {
    char *proc, *queue;
    size_t moved;
};

static void on_reclaim_move(cipc_hub *h, redisReply *r, const char *err, void *ud)
{
    (void)err;
    struct reclaim *rc = ud;
    if (r && r->type == REDIS_REPLY_STRING) {
        rc->moved++;
        const char *argv[5] = {"LMOVE", rc->proc, rc->queue, "LEFT", "RIGHT"};
        if (cipc__hub_cmd(h, on_reclaim_move, rc, 5, argv, NULL) == 0)
            return;
    }
    if (rc->moved)
        cipc_log(CIPC_LOG_INFO, "hub", "%zu reserved item(s) of '%s' back in the queue",
                 rc->moved, rc->queue);
    free(rc->proc);
    free(rc->queue);
    free(rc);
}

static void on_reclaim_keys(cipc_hub *h, redisReply *r, const char *err, void *ud)
{
    (void)err;
    (void)ud;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return;
    size_t suffix = strlen(":processing:") + strlen(h->hub_id);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *k = r->element[i];
        if (k->type != REDIS_REPLY_STRING || k->len <= suffix)
            continue;
        struct reclaim *rc = calloc(1, sizeof *rc);
        if (!rc)
            return;
        rc->proc = strdup(k->str);
        rc->queue = strndup(k->str, k->len - suffix);
        const char *argv[5] = {"LMOVE", rc->proc, rc->queue, "LEFT", "RIGHT"};
        if (!rc->proc || !rc->queue || cipc__hub_cmd(h, on_reclaim_move, rc, 5, argv, NULL) < 0) {
            free(rc->proc);
            free(rc->queue);
            free(rc);
        }
    }
}

void cipc__hub_reclaim(cipc_hub *h)
{
    char pat[300];
    snprintf(pat, sizeof pat, "*:processing:%s", h->hub_id);
    const char *argv[2] = {"KEYS", pat};
    cipc__hub_cmd(h, on_reclaim_keys, NULL, 2, argv, NULL);
}
