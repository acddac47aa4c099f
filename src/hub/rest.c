/* The hub's HTTP side: the REST routes under /v1, Server-Sent Events, /healthz,
 * /metrics and the dashboard's files. Protocol: docs/hub.md. */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cipc/log.h"
#include "cipc/time.h"
#include "hub/internal.h"


/* --- answers ------------------------------------------------------------------------- */

static void answer(cipc_hub *h, cipc_http_req *req, int status, json_t *j, int64_t t0)
{
    cipc_http_respond_json(req, status, j);
    json_decref(j);
    if (t0)
        cipc__hub_observe_latency(h, cipc_now_ns() - t0);
}

static void fail(cipc_hub *h, cipc_http_req *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(cipc_hub *h, cipc_http_req *req, int status, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    answer(h, req, status, json_pack("{s:s}", "error", msg), 0);
}

static int const_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char d = alen != blen;
    for (size_t i = 0; i < alen && i < blen; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

int cipc__hub_authorized(cipc_hub *h, cipc_http_req *req)
{
    if (!h->token)
        return 1;
    size_t tl = strlen(h->token);
    const char *a = cipc_http_header(req, "Authorization");
    if (a && !strncasecmp(a, "Bearer ", 7)) {
        a += 7;
        while (*a == ' ')
            a++;
        if (const_eq(a, strlen(a), h->token, tl))
            return 1;
    }
    const char *q = cipc_http_query(req, "token");
    return q && const_eq(q, strlen(q), h->token, tl);
}

/* Count the request and check the token; answers 401 and returns 0 when refused. */
static int guard(cipc_hub *h, cipc_http_req *req)
{
    h->http_requests++;
    if (cipc__hub_authorized(h, req))
        return 1;
    cipc_http_set_header(req, "WWW-Authenticate", "Bearer realm=\"cipc\"");
    fail(h, req, 401, "%s", cipc_http_header(req, "Authorization") || cipc_http_query(req, "token")
                                ? "invalid token"
                                : "a bearer token is required");
    return 0;
}

/* The message in a request body: raw bytes, or {"data": ...} with a JSON content type.
 * *hold keeps memory the result points into (free it). Answers and returns -1 on bad
 * input. */
static int body_message(cipc_hub *h, cipc_http_req *req, const char **data, size_t *len,
                        char **hold)
{
    *hold = NULL;
    size_t blen = 0;
    const char *body = cipc_http_body(req, &blen);
    if (blen > h->o.max_message) {
        fail(h, req, 413, "the message is %zu bytes; the limit is %zu", blen, h->o.max_message);
        return -1;
    }
    const char *ct = cipc_http_header(req, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16)) {
        *data = body;
        *len = blen;
        return 0;
    }
    json_t *j = NULL;
    const char *why = NULL;
    if (cipc_http_json(req, &j, &why) < 0) {
        fail(h, req, 400, "malformed JSON: %s", why ? why : "?");
        return -1;
    }
    json_t *d = json_is_object(j) ? json_object_get(j, "data") : NULL;
    if (!d) {
        json_decref(j);
        fail(h, req, 400, "expected a JSON object with a \"data\" member");
        return -1;
    }
    if (json_is_string(d)) {
        *len = json_string_length(d);
        *hold = malloc(*len + 1);
        if (*hold)
            memcpy(*hold, json_string_value(d), *len + 1);
    } else {
        *hold = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
        *len = *hold ? strlen(*hold) : 0;
    }
    json_decref(j);
    if (!*hold) {
        fail(h, req, 500, "out of memory");
        return -1;
    }
    *data = *hold;
    return 0;
}

/* ?name=<seconds> as milliseconds, between 0 and max_s. Answers 400 and returns -1. */
static int query_seconds(cipc_hub *h, cipc_http_req *req, const char *name, double dflt,
                         double max_s, double *out)
{
    const char *v = cipc_http_query(req, name);
    *out = dflt;
    if (!v || !*v)
        return 0;
    char *end = NULL;
    double d = strtod(v, &end);
    if (*end || !(d >= 0) || d > max_s) {
        fail(h, req, 400, "%s must be a number of seconds from 0 to %g", name, max_s);
        return -1;
    }
    *out = d;
    return 0;
}

/* --- channels ----------------------------------------------------------------------- */

/* A POST that carries a message for a named channel or queue (.../messages, .../items),
 * from the guard to the answer. */
struct msg_ctx {
    cipc_http_req *req;
    char *name;       /* the {name} parameter (a copy) */
    const char *data; /* the message (into the body, or into hold) */
    size_t len;
    char *hold;
    int64_t t0;
};

/* Check the token, a non-empty {name} and the body. Returns the context, or NULL after
 * answering. `what` names the thing for the error ("channel", "queue"). */
static struct msg_ctx *msg_begin(cipc_hub *h, cipc_http_req *req, const char *what)
{
    int64_t t0 = cipc_now_ns();
    if (!guard(h, req))
        return NULL;
    const char *name = cipc_http_param(req, "name");
    if (!*name) {
        fail(h, req, 400, "a %s name cannot be empty", what);
        return NULL;
    }
    struct msg_ctx *m = calloc(1, sizeof *m);
    if (!m || !(m->name = strdup(name))) {
        free(m);
        fail(h, req, 500, "out of memory");
        return NULL;
    }
    m->req = req;
    m->t0 = t0;
    if (body_message(h, req, &m->data, &m->len, &m->hold) < 0) {
        free(m->name);
        free(m);
        return NULL;
    }
    return m;
}

static void msg_end(struct msg_ctx *m)
{
    free(m->hold);
    free(m->name);
    free(m);
}

static void on_published(cipc_hub *h, int receivers, uint64_t seq, const char *err, void *ud)
{
    struct msg_ctx *m = ud;
    if (receivers < 0) {
        fail(h, m->req, 503, "publish failed: %s", err ? err : cipc_strerror(receivers));
    } else {
        json_t *j = json_pack("{s:s,s:i}", "channel", m->name, "receivers", receivers);
        json_object_set_new(j, "seq", seq ? json_integer((json_int_t)seq) : json_null());
        answer(h, m->req, 200, j, m->t0);
    }
    msg_end(m);
}

static void post_message(cipc_http_req *req, void *ud)
{
    cipc_hub *h = ud;
    struct msg_ctx *m = msg_begin(h, req, "channel");
    if (m)
        cipc__hub_publish(h, TR_REST, m->name, strlen(m->name), m->data, m->len, on_published, m);
}

static json_t *chan_json(cipc_hub *h, hub_chan *c)
{
    return json_pack("{s:s%,s:i,s:I,s:I}", "name", c->name, c->nlen, "subscribers",
                     cipc__hub_subscribers(h, c), "seq", (json_int_t)c->seq, "buffered",
                     (json_int_t)c->n);
}

struct chan_list {
    cipc_hub *h;
    json_t *a;
};

/* A channel the broker's RESP clients subscribe to but the hub has not seen yet. */
static void resp_only_channel(const char *name, size_t len, size_t subs, void *ud)
{
    struct chan_list *l = ud;
    if (cipc__hub_chan(l->h, name, len, 0))
        return;
    json_array_append_new(l->a, json_pack("{s:s%,s:i,s:i,s:i}", "name", name, len, "subscribers",
                                          cipc_broker_numsub(l->h->broker, name, len), "seq",
                                          0, "buffered", 0));
    (void)subs;
}

json_t *cipc__hub_channels_json(cipc_hub *h)
{
    json_t *a = json_array();
    size_t bk = 0;
    dict_entry *e = NULL;
    while (cipc__dict_next(&h->chans, &bk, &e))
        json_array_append_new(a, chan_json(h, e->val));
    if (h->broker) {
        struct chan_list l = {h, a};
        cipc_broker_channels(h->broker, resp_only_channel, &l);
    }
    return a;
}

static void get_channels(cipc_http_req *req, void *ud)
{
    cipc_hub *h = ud;
    int64_t t0 = cipc_now_ns();
    if (!guard(h, req))
        return;
    answer(h, req, 200, json_pack("{s:o}", "channels", cipc__hub_channels_json(h)), t0);
}

static void get_channel(cipc_http_req *req, void *ud)
{
    cipc_hub *h = ud;
    int64_t t0 = cipc_now_ns();
    if (!guard(h, req))
        return;
    const char *name = cipc_http_param(req, "name");
    size_t len = strlen(name);
    hub_chan *c = cipc__hub_chan(h, name, len, 0);
    int resp = h->broker ? cipc_broker_numsub(h->broker, name, len) : 0;
    if (!c && resp <= 0) {
        fail(h, req, 404, "no channel '%s'", name);
        return;
    }
    answer(h, req, 200,
           c ? chan_json(h, c)
             : json_pack("{s:s,s:i,s:i,s:i}", "name", name, "subscribers", resp, "seq", 0,
                         "buffered", 0),
           t0);
}

static int parse_seq(const char *v, uint64_t *out)
{
    if (!v || !*v)
        return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end || errno || *v == '-')
        return -1;
    *out = n;
    return 1;
}

static void get_history(cipc_http_req *req, void *ud)
{
    cipc_hub *h = ud;
    int64_t t0 = cipc_now_ns();
    if (!guard(h, req))
        return;
    const char *name = cipc_http_param(req, "name");
    uint64_t since = 0;
    if (parse_seq(cipc_http_query(req, "since"), &since) < 0) {
        fail(h, req, 400, "since must be a message number");
        return;
    }
    hub_chan *c = cipc__hub_chan(h, name, strlen(name), 0);
    if (!c) {
        json_t *j = json_pack("{s:s,s:i,s:[],s:n}", "channel", name, "seq", 0, "messages", "gap");
        answer(h, req, 200, j, t0);
        return;
    }
    answer(h, req, 200, cipc__hub_history(h, c, since), t0);
}

/* --- SSE ------------------------------------------------------------------------------ */

void cipc__hub_sse_close(hub_sse *s, int end)
{
    cipc_hub *h = s->h;
    if (s->prev)
        s->prev->next = s->next;
    else
        h->sses = s->next;
    if (s->next)
        s->next->prev = s->prev;
    h->nsse--;
    cipc__ptrvec_del(&s->ch->sse, s);
    if (end)
        cipc_http_end(s->req);
    free(s);
}

static void sse_aborted(cipc_http_req *req, void *ud)
{
    (void)req;
    cipc__hub_sse_close(ud, 1);
}

static void get_events(cipc_http_req *req, void *ud)
{
    cipc_hub *h = ud;
    if (!guard(h, req))
        return;
    const char *name = cipc_http_param(req, "name");
    uint64_t since = 0;
    int has = parse_seq(cipc_http_header(req, "Last-Event-ID"), &since);
    if (has == 0)
        has = parse_seq(cipc_http_query(req, "since"), &since);
    if (has < 0) {
        fail(h, req, 400, "Last-Event-ID / since must be a message number");
        return;
    }
    hub_chan *c = cipc__hub_chan(h, name, strlen(name), 1);
    hub_sse *s = calloc(1, sizeof *s);
    if (!c || !s || cipc__ptrvec_add(&c->sse, s) < 0) {
        free(s);
        fail(h, req, 500, "out of memory");
        return;
    }
    s->h = h;
    s->req = req;
    s->ch = c;
    s->next = h->sses;
    if (h->sses)
        h->sses->prev = s;
    h->sses = s;
    h->nsse++;
    h->sse_total++;
    cipc_http_set_header(req, "Cache-Control", "no-cache");
    cipc_http_set_header(req, "X-Accel-Buffering", "no");
    cipc_http_start(req, 200, "text/event-stream");
    if (cipc_http_write(req, "retry: 2000\n\n", 13) < 0) {
        cipc__hub_sse_close(s, 0);
        return;
    }
    cipc_http_on_abort(req, sse_aborted, s); /* the client going away ends the stream */
    if (has)
        cipc__hub_replay_sse(h, c, s, since);
}

void cipc__hub_sse_tick(cipc_hub *h)
{
    if (++h->sse_tick < 15)
        return;
    h->sse_tick = 0;
    for (hub_sse *s = h->sses, *next; s; s = next) {
        next = s->next;
        if (cipc_http_write(s->req, ": keepalive\n\n", 13) < 0)
            cipc__hub_sse_close(s, 0);
    }
}

/* --- queues --------------------------------------------------------------------------- */

static void on_pushed(cipc_hub *h, redisReply *r, const char *err, void *ud)
{
    struct msg_ctx *m = ud;
    if (!r)
        fail(h, m->req, 503, "push failed: %s", err);
    else if (r->type != REDIS_REPLY_INTEGER)
        fail(h, m->req, 409, "push failed: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    else
        answer(h, m->req, 200, json_pack("{s:s,s:I}", "queue", m->name, "length", (json_int_t)r->integer),
               m->t0);
    msg_end(m);
}

static void post_item(cipc_http_req *req, void *ud)
{
    cipc_hub *h = ud;
    struct msg_ctx *m = msg_begin(h, req, "queue");
    if (!m)
        return;
    const char *argv[3] = {"LPUSH", m->name, m->data};
    size_t argl[3] = {5, strlen(m->name), m->len};
    cipc__hub_queue_seen(h, m->name);
    if (cipc__hub_cmd(h, on_pushed, m, 3, argv, argl) < 0) {
        fail(h, req, 503, "the store is not reachable");
        msg_end(m);
    }
}

/* A pop or reserve waiting for its reply. */
struct pop_op {
    cipc_http_req *req;
    char *queue, *proc;
    int reserve;
    long visibility_ms;
    hub_be *be; /* blocking connection, or NULL */
};

static void pop_free(cipc_hub *h, struct pop_op *p)
{
    cipc__ptrvec_del(&h->pops, p);
    free(p->queue);
    free(p->proc);
    free(p);
}

static void on_ignored(cipc_hub *h, redisReply *r, const char *err, void *ud)
{
    (void)h;
    (void)ud;
    if (!r)
        cipc_log(CIPC_LOG_WARN, "hub", "putting an undelivered item back failed: %s", err);
}

static void on_popped(cipc_hub *h, redisReply *r, const char *err, void *ud)
{
    struct pop_op *p = ud;
    redisReply *item = r;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2) /* BRPOP: [key, value] */
        item = r->element[1];
    if (!r) {
        fail(h, p->req, 503, "%s", h->stopping ? "the hub is shutting down" : err);
    } else if (r->type == REDIS_REPLY_ERROR) {
        fail(h, p->req, 409, "%s", r->str);
    } else if (item->type != REDIS_REPLY_STRING) { /* nil: nothing came in time */
        cipc_http_respond(p->req, 204, NULL, NULL, 0);
    } else if (!p->reserve) {
        json_t *j = cipc__hub_data_json(json_pack("{s:s}", "queue", p->queue), item->str, item->len);
        if (cipc_http_respond_json(p->req, 200, j) < 0) {
            /* the client has gone: the item goes back to the head of the queue */
            const char *argv[3] = {"RPUSH", p->queue, item->str};
            size_t argl[3] = {5, strlen(p->queue), item->len};
            cipc__hub_cmd(h, on_ignored, NULL, 3, argv, argl);
        }
        json_decref(j);
    } else {
        hub_lease *l = calloc(1, sizeof *l);
        if (l) {
            snprintf(l->id, sizeof l->id, "r-%" PRIu64, ++h->next_lease);
            l->queue = strdup(p->queue);
            l->proc = strdup(p->proc);
            l->data = malloc(item->len + 1);
            l->len = item->len;
            l->deadline_ms = cipc_now_ms() + p->visibility_ms;
        }
        dict_entry *e = NULL;
        int added = 0;
        if (!l || !l->queue || !l->proc || !l->data ||
            !(e = cipc__dict_upsert(&h->leases, l->id, strlen(l->id), &added))) {
            cipc__hub_lease_free(l);
            fail(h, p->req, 500, "out of memory (the item stays reserved until the hub restarts)");
        } else {
            memcpy(l->data, item->str, item->len);
            ((char *)l->data)[item->len] = '\0';
            e->val = l;
            json_t *j = cipc__hub_data_json(json_pack("{s:s,s:s}", "queue", p->queue, "id", l->id),
                                            item->str, item->len);
            if (cipc_http_respond_json(p->req, 200, j) < 0)
                cipc__hub_lease_requeue(h, l); /* the client has gone */
            json_decref(j);
        }
    }
    pop_free(h, p);
}

static void pop_aborted(cipc_http_req *req, void *ud)
{
    (void)req;
    struct pop_op *p = ud;
    cipc__hub_be_cancel(p->be); /* on_popped answers (to nobody) and frees p */
}

static void pop_or_reserve(cipc_http_req *req, cipc_hub *h, int reserve)
{
    if (!guard(h, req))
        return;
    const char *q = cipc_http_param(req, "name");
    double timeout, vis;
    if (query_seconds(h, req, "timeout", 0, (double)h->o.max_wait_s, &timeout) < 0 ||
        query_seconds(h, req, "visibility", CIPC_HUB_DEFAULT_VISIBILITY_S, 86400, &vis) < 0)
        return;
    struct pop_op *p = calloc(1, sizeof *p);
    if (!p || !(p->queue = strdup(q)) || cipc__ptrvec_add(&h->pops, p) < 0) {
        if (p)
            free(p->queue);
        free(p);
        fail(h, req, 500, "out of memory");
        return;
    }
    cipc__hub_queue_seen(h, q);
    p->req = req;
    p->reserve = reserve;
    p->visibility_ms = (long)(vis * 1000);
    if (p->visibility_ms < 1)
        p->visibility_ms = 1;
    char tbuf[32];
    snprintf(tbuf, sizeof tbuf, "%.3f", timeout);
    int rc;
    if (reserve) {
        size_t n = strlen(q) + strlen(h->hub_id) + 16;
        p->proc = malloc(n);
        if (!p->proc) {
            pop_free(h, p);
            fail(h, req, 500, "out of memory");
            return;
        }
        snprintf(p->proc, n, "%s:processing:%s", q, h->hub_id);
        const char *argv[6] = {"BLMOVE", q, p->proc, "RIGHT", "LEFT", tbuf};
        if (timeout > 0) {
            rc = cipc__hub_cmd_blocking(h, on_popped, p, 6, argv, NULL, &p->be);
        } else {
            argv[0] = "LMOVE";
            rc = cipc__hub_cmd(h, on_popped, p, 5, argv, NULL);
        }
    } else if (timeout > 0) {
        const char *argv[3] = {"BRPOP", q, tbuf};
        rc = cipc__hub_cmd_blocking(h, on_popped, p, 3, argv, NULL, &p->be);
    } else {
        const char *argv[2] = {"RPOP", q};
        rc = cipc__hub_cmd(h, on_popped, p, 2, argv, NULL);
    }
    if (rc < 0) {
        pop_free(h, p);
        fail(h, req, 503, "the store is not reachable");
        return;
    }
    /* A client that goes away while waiting must not take an item with it: its blocked
     * command is cancelled (a pop already in flight on the shared connection is not). */
    if (p->be)
        cipc_http_on_abort(req, pop_aborted, p);
}

static void post_pop(cipc_http_req *req, void *ud)
{
    pop_or_reserve(req, ud, 0);
}

static void post_reserve(cipc_http_req *req, void *ud)
{
    pop_or_reserve(req, ud, 1);
}

void cipc__hub_pops_cancel(cipc_hub *h)
{
    while (h->pops.n) {
        struct pop_op *p = h->pops.p[h->pops.n - 1];
        if (p->be) {
            cipc__hub_be_cancel(p->be); /* on_popped answers 503 and frees p */
        } else {
            cipc__ptrvec_del(&h->pops, p); /* answered when the shared connection fails */
        }
    }
}

/* The lease {id} of queue {name}, or NULL after answering 404. */
static hub_lease *find_lease(cipc_hub *h, cipc_http_req *req)
{
    const char *q = cipc_http_param(req, "name"), *id = cipc_http_param(req, "id");
    dict_entry *e = cipc__dict_find(&h->leases, id, strlen(id));
    hub_lease *l = e ? e->val : NULL;
    if (!l || strcmp(l->queue, q)) {
        fail(h, req, 404, "no reservation '%s' on queue '%s' (unknown, acknowledged, or expired "
                          "and back in the queue)", id, q);
        return NULL;
    }
    return l;
}

struct ack_ctx {
    cipc_http_req *req;
    hub_lease *l;
    int64_t t0;
};

static void on_acked(cipc_hub *h, redisReply *r, const char *err, void *ud)
{
    struct ack_ctx *a = ud;
    if (!r)
        fail(h, a->req, 503, "ack failed: %s", err);
    else if (r->type == REDIS_REPLY_INTEGER && r->integer > 0)
        answer(h, a->req, 200, json_pack("{s:b}", "acked", 1), a->t0);
    else
        fail(h, a->req, 404, "the item was no longer reserved");
    cipc__hub_lease_free(a->l);
    free(a);
}

static void post_ack(cipc_http_req *req, void *ud)
{
    cipc_hub *h = ud;
    int64_t t0 = cipc_now_ns();
    if (!guard(h, req))
        return;
    hub_lease *l = find_lease(h, req);
    if (!l)
        return;
    struct ack_ctx *a = malloc(sizeof *a);
    if (!a) {
        fail(h, req, 500, "out of memory");
        return;
    }
    cipc__dict_remove(&h->leases, l->id, strlen(l->id));
    *a = (struct ack_ctx){req, l, t0};
    const char *argv[4] = {"LREM", l->proc, "1", l->data};
    size_t argl[4] = {4, strlen(l->proc), 1, l->len};
    if (cipc__hub_cmd(h, on_acked, a, 4, argv, argl) < 0) {
        dict_entry *e = cipc__dict_upsert(&h->leases, l->id, strlen(l->id), &(int){0});
        if (e)
            e->val = l;
        free(a);
        fail(h, req, 503, "the store is not reachable");
    }
}

static void post_nack(cipc_http_req *req, void *ud)
{
    cipc_hub *h = ud;
    int64_t t0 = cipc_now_ns();
    if (!guard(h, req))
        return;
    hub_lease *l = find_lease(h, req);
    if (!l)
        return;
    cipc__hub_lease_requeue(h, l);
    answer(h, req, 200, json_pack("{s:b}", "requeued", 1), t0);
}

struct list_ctx {
    cipc_http_req *req;
    int kind; /* 0 queues, 1 one queue, 2 stats, 3 metrics */
    int64_t t0;
};

static void on_queues(cipc_hub *h, json_t *queues, const char *err, void *ud)
{
    struct list_ctx *c = ud;
    if (!queues && c->kind != 2 && c->kind != 3) {
        fail(h, c->req, 503, "cannot list queues: %s", err);
    } else if (c->kind == 0) {
        answer(h, c->req, 200, json_pack("{s:O}", "queues", queues), c->t0);
    } else if (c->kind == 1) {
        json_t *q = json_array_get(queues, 0);
        if (q)
            answer(h, c->req, 200, json_incref(q), c->t0);
        else
            fail(h, c->req, 409, "not a queue (the key holds another type)");
    } else if (c->kind == 2) {
        answer(h, c->req, 200, cipc__hub_stats_json(h, queues ? json_incref(queues) : NULL), c->t0);
    } else {
        cipc_buf b = CIPC_BUF_INIT;
        cipc__hub_metrics(h, queues, &b);
        cipc_http_respond(c->req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
        cipc_buf_free(&b);
    }
    free(c);
}

static void list_route(cipc_http_req *req, cipc_hub *h, int kind)
{
    int64_t t0 = cipc_now_ns();
    if (!guard(h, req))
        return;
    struct list_ctx *c = malloc(sizeof *c);
    if (!c) {
        fail(h, req, 500, "out of memory");
        return;
    }
    *c = (struct list_ctx){req, kind, t0};
    cipc__hub_queues(h, kind == 1 ? cipc_http_param(req, "name") : NULL, on_queues, c);
}

static void get_queues(cipc_http_req *req, void *ud)
{
    list_route(req, ud, 0);
}

static void get_queue(cipc_http_req *req, void *ud)
{
    list_route(req, ud, 1);
}

static void get_stats(cipc_http_req *req, void *ud)
{
    list_route(req, ud, 2);
}

static void get_metrics(cipc_http_req *req, void *ud)
{
    list_route(req, ud, 3);
}

static void get_healthz(cipc_http_req *req, void *ud)
{
    cipc_hub *h = ud;
    h->http_requests++;
    answer(h, req, h->stopping ? 503 : 200,
           json_pack("{s:s}", "status", h->stopping ? "stopping" : "ok"), 0);
}

static void get_asset(cipc_http_req *req, void *ud)
{
    const hub_asset *a = ud;
    cipc_http_set_header(req, "Cache-Control", "no-cache");
    cipc_http_respond(req, 200, a->type, a->data, a->len);
}

int cipc__hub_routes(cipc_hub *h)
{
    static const struct {
        const char *method, *path;
        cipc_http_handler fn;
    } routes[] = {
        {"POST", "/v1/channels/{name}/messages", post_message},
        {"GET", "/v1/channels/{name}/messages", get_history},
        {"GET", "/v1/channels", get_channels},
        {"GET", "/v1/channels/{name}", get_channel},
        {"GET", "/v1/channels/{name}/events", get_events},
        {"POST", "/v1/queues/{name}/items", post_item},
        {"POST", "/v1/queues/{name}/pop", post_pop},
        {"POST", "/v1/queues/{name}/reserve", post_reserve},
        {"POST", "/v1/queues/{name}/ack/{id}", post_ack},
        {"POST", "/v1/queues/{name}/nack/{id}", post_nack},
        {"GET", "/v1/queues", get_queues},
        {"GET", "/v1/queues/{name}", get_queue},
        {"GET", "/v1/stats", get_stats},
        {"GET", "/healthz", get_healthz},
        {"GET", "/metrics", get_metrics},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        int rc = cipc_route(h->srv, routes[i].method, routes[i].path, routes[i].fn, h);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < cipc__hub_nassets; i++) {
        int rc = cipc_route(h->srv, "GET", cipc__hub_assets[i].path, get_asset,
                            (void *)&cipc__hub_assets[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}
