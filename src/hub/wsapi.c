/* The hub's WebSocket endpoints: /v1/ws (the JSON protocol of docs/hub.md) and
 * /v1/ws/channels/{name} (raw: every frame is a message). */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cipc/time.h"
#include "hub/internal.h"

static int on_handshake(cipc_http_req *req, void *ud)
{
    cipc_hub *h = ud;
    if (h->stopping)
        return 503;
    return cipc__hub_authorized(h, req) ? 0 : 401;
}

static hub_conn *conn_new(cipc_hub *h, cipc_ws *ws)
{
    hub_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->h = h;
    c->ws = ws;
    cipc__dict_init(&c->chans);
    cipc__dict_init(&c->pats);
    c->tokens = h->o.max_rate;
    c->refill_ms = cipc_now_ms();
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    h->ws_total++;
    cipc_ws_set_user(ws, c);
    return c;
}

/* Token bucket: max_rate ops per second, bursts up to max_rate. 0 when over. */
static int rate_ok(hub_conn *c)
{
    if (c->flooded)
        return 0;
    int64_t now = cipc_now_ms();
    c->tokens += (double)(now - c->refill_ms) * c->h->o.max_rate / 1000.0;
    if (c->tokens > c->h->o.max_rate)
        c->tokens = c->h->o.max_rate;
    c->refill_ms = now;
    if (c->tokens < 1) {
        if (!c->flooded) { /* frames already received still arrive: count it once */
            c->flooded = 1;
            c->h->rate_kills++;
            cipc_ws_close(c->ws, CIPC_WS_CLOSE_POLICY, "rate limit exceeded");
        }
        return 0;
    }
    c->tokens -= 1;
    return 1;
}

static void on_close(cipc_ws *ws, int code, const char *reason, size_t len, void *ud)
{
    (void)code;
    (void)reason;
    (void)len;
    cipc_hub *h = ud;
    hub_conn *c = cipc_ws_user(ws);
    if (!c)
        return;
    size_t bk = 0;
    dict_entry *e = NULL;
    while (cipc__dict_next(&c->chans, &bk, &e))
        cipc__ptrvec_del(&((hub_chan *)e->val)->json, ws);
    bk = 0;
    e = NULL;
    while (cipc__dict_next(&c->pats, &bk, &e))
        cipc__ptrvec_del(&((hub_pat *)e->val)->json, ws);
    if (c->raw)
        cipc__ptrvec_del(&c->raw->raw, ws);
    cipc__dict_free(&c->chans, NULL);
    cipc__dict_free(&c->pats, NULL);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->nconns--;
    free(c);
}

/* --- the JSON protocol ---------------------------------------------------------------- */

static void send_json(cipc_ws *ws, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    if (s)
        cipc_ws_send(ws, CIPC_WS_TEXT, s, strlen(s));
    free(s);
    json_decref(j);
}

static void send_error(cipc_ws *ws, json_t *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void send_error(cipc_ws *ws, json_t *id, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *j = json_pack("{s:s,s:s}", "type", "error", "error", msg);
    if (id)
        json_object_set(j, "id", id);
    send_json(ws, j);
}

static void subscribe(hub_conn *c, const char *name, size_t len, json_t *since, json_t *id)
{
    cipc_hub *h = c->h;
    if (!len) {
        send_error(c->ws, id, "a channel name cannot be empty");
        return;
    }
    if (!cipc__dict_find(&c->chans, name, len) &&
        c->chans.n + c->pats.n >= h->o.max_subscriptions) {
        send_error(c->ws, id, "too many subscriptions on this connection (the limit is %zu)",
                   h->o.max_subscriptions);
        return;
    }
    hub_chan *ch = cipc__hub_chan(h, name, len, 1);
    if (!ch) {
        send_error(c->ws, id, "out of memory");
        return;
    }
    int added = 0;
    dict_entry *e = cipc__dict_upsert(&c->chans, name, len, &added);
    if (!e || (added && cipc__ptrvec_add(&ch->json, c->ws) < 0)) {
        if (e && added)
            cipc__dict_remove(&c->chans, name, len);
        send_error(c->ws, id, "out of memory");
        return;
    }
    e->val = ch;
    json_t *j = json_pack("{s:s,s:s%,s:I}", "type", "subscribed", "channel", name, len, "seq",
                          (json_int_t)ch->seq);
    if (id)
        json_object_set(j, "id", id);
    send_json(c->ws, j);
    if (json_is_integer(since) && json_integer_value(since) >= 0)
        cipc__hub_replay_ws(h, ch, c->ws, 1, (uint64_t)json_integer_value(since));
}

static void unsubscribe(hub_conn *c, const char *name, size_t len, json_t *id)
{
    hub_chan *ch = cipc__dict_remove(&c->chans, name, len);
    if (ch)
        cipc__ptrvec_del(&ch->json, c->ws);
    json_t *j = json_pack("{s:s,s:s%}", "type", "unsubscribed", "channel", name, len);
    if (id)
        json_object_set(j, "id", id);
    send_json(c->ws, j);
}

static void psubscribe(hub_conn *c, const char *pat, size_t len, json_t *id)
{
    cipc_hub *h = c->h;
    if (!len) {
        send_error(c->ws, id, "a pattern cannot be empty");
        return;
    }
    if (!cipc__dict_find(&c->pats, pat, len) &&
        c->chans.n + c->pats.n >= h->o.max_subscriptions) {
        send_error(c->ws, id, "too many subscriptions on this connection (the limit is %zu)",
                   h->o.max_subscriptions);
        return;
    }
    int added = 0;
    dict_entry *pe = cipc__dict_upsert(&h->pats, pat, len, &added);
    if (!pe) {
        send_error(c->ws, id, "out of memory");
        return;
    }
    if (added) {
        hub_pat *p = calloc(1, sizeof *p);
        if (!p) {
            cipc__dict_remove(&h->pats, pat, len);
            send_error(c->ws, id, "out of memory");
            return;
        }
        p->pat = pe->key;
        p->plen = len;
        pe->val = p;
    }
    hub_pat *p = pe->val;
    dict_entry *e = cipc__dict_upsert(&c->pats, pat, len, &added);
    if (!e || (added && cipc__ptrvec_add(&p->json, c->ws) < 0)) {
        if (e && added)
            cipc__dict_remove(&c->pats, pat, len);
        send_error(c->ws, id, "out of memory");
        return;
    }
    e->val = p;
    json_t *j = json_pack("{s:s,s:s%}", "type", "psubscribed", "pattern", pat, len);
    if (id)
        json_object_set(j, "id", id);
    send_json(c->ws, j);
}

static void punsubscribe(hub_conn *c, const char *pat, size_t len, json_t *id)
{
    hub_pat *p = cipc__dict_remove(&c->pats, pat, len);
    if (p)
        cipc__ptrvec_del(&p->json, c->ws);
    json_t *j = json_pack("{s:s,s:s%}", "type", "punsubscribed", "pattern", pat, len);
    if (id)
        json_object_set(j, "id", id);
    send_json(c->ws, j);
}

/* Apply fn to "channel" (a string) or every string of "channels"; or, when neither is
 * given and all_ok, to every current subscription. */
static int each_name(hub_conn *c, json_t *req, const char *one, const char *many, json_t *id,
                     dict *current, void (*fn)(hub_conn *, const char *, size_t, json_t *))
{
    json_t *s = json_object_get(req, one), *a = json_object_get(req, many);
    if (json_is_string(s)) {
        fn(c, json_string_value(s), json_string_length(s), id);
        return 0;
    }
    if (json_is_array(a)) {
        size_t i;
        json_t *v;
        json_array_foreach(a, i, v) if (!json_is_string(v)) return -1;
        json_array_foreach(a, i, v) fn(c, json_string_value(v), json_string_length(v), id);
        return 0;
    }
    if (s || a || !current)
        return -1;
    /* every current one: collect names first (fn changes the dict) */
    size_t n = current->n, k = 0, bk = 0;
    char **names = calloc(n ? n : 1, sizeof *names);
    size_t *lens = calloc(n ? n : 1, sizeof *lens);
    dict_entry *e = NULL;
    while (names && lens && k < n && cipc__dict_next(current, &bk, &e)) {
        names[k] = strndup(e->key, e->klen);
        lens[k++] = e->klen;
    }
    for (size_t i = 0; i < k; i++) {
        if (names[i])
            fn(c, names[i], lens[i], id);
        free(names[i]);
    }
    free(names);
    free(lens);
    return 0;
}

struct ws_pub {
    cipc_hub *h;
    uint64_t wsid;
    cipc_ws *ws; /* while the publish call has not returned */
    json_t *id;
    char *channel;
};

static void on_ws_published(cipc_hub *h, int receivers, uint64_t seq, const char *err, void *ud)
{
    struct ws_pub *p = ud;
    if (h->pub_pending == p)
        h->pub_pending = NULL;
    json_t *j;
    if (receivers < 0) {
        j = json_pack("{s:s,s:s}", "type", "error", "error", err ? err : cipc_strerror(receivers));
    } else {
        j = json_pack("{s:s,s:s,s:i}", "type", "published", "channel", p->channel, "receivers",
                      receivers);
        json_object_set_new(j, "seq", seq ? json_integer((json_int_t)seq) : json_null());
    }
    json_object_set(j, "id", p->id);
    if (p->ws) {
        send_json(p->ws, j);
    } else { /* answered later (Redis mode): the connection may have gone meanwhile */
        char *s = json_dumps(j, JSON_COMPACT);
        if (s)
            cipc_ws_send_to(h->srv, p->wsid, CIPC_WS_TEXT, s, strlen(s));
        free(s);
        json_decref(j);
    }
    json_decref(p->id);
    free(p->channel);
    free(p);
}

static void on_ws_published_quiet(cipc_hub *h, int receivers, uint64_t seq, const char *err,
                                  void *ud)
{
    (void)h;
    (void)receivers;
    (void)seq;
    (void)err;
    (void)ud;
}

static void op_publish(hub_conn *c, json_t *req, json_t *id)
{
    json_t *ch = json_object_get(req, "channel"), *d = json_object_get(req, "data");
    if (!json_is_string(ch) || !json_string_length(ch) || !d) {
        send_error(c->ws, id, "publish needs \"channel\" (a non-empty string) and \"data\"");
        return;
    }
    char *hold = NULL;
    const char *data;
    size_t len;
    if (json_is_string(d)) {
        data = json_string_value(d);
        len = json_string_length(d);
    } else {
        hold = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
        data = hold ? hold : "";
        len = hold ? strlen(hold) : 0;
    }
    if (!id) {
        cipc__hub_publish(c->h, TR_WS, json_string_value(ch), json_string_length(ch), data, len,
                          on_ws_published_quiet, NULL);
    } else {
        struct ws_pub *p = calloc(1, sizeof *p);
        if (!p || !(p->channel = strdup(json_string_value(ch)))) {
            free(p);
            free(hold);
            send_error(c->ws, id, "out of memory");
            return;
        }
        p->h = c->h;
        p->wsid = cipc_ws_id(c->ws);
        p->ws = c->ws;
        p->id = json_incref(id);
        /* answered during the call (local mode) directly; later (Redis mode) by id, as the
         * connection may be gone by then: p->ws is cleared if the call returns first */
        c->h->pub_pending = p;
        cipc__hub_publish(c->h, TR_WS, json_string_value(ch), json_string_length(ch), data,
                          len, on_ws_published, p);
        if (c->h->pub_pending == p) /* not answered yet */
            p->ws = NULL;
        c->h->pub_pending = NULL;
    }
    free(hold);
}

/* A stats frame (after the queue listing): to the connection with id *ud when it asked
 * just now, else (the once-a-second tick) to every connection that asked. */
static void on_stats_queues(cipc_hub *h, json_t *queues, const char *err, void *ud)
{
    (void)err;
    uint64_t *one = ud;
    json_t *j = cipc__hub_stats_json(h, queues ? json_incref(queues) : NULL);
    json_object_set_new(j, "type", json_string("stats"));
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (s && one) {
        cipc_ws_send_to(h->srv, *one, CIPC_WS_TEXT, s, strlen(s)); /* it may have gone */
    } else if (s) {
        for (hub_conn *c = h->conns; c; c = c->next)
            if (c->stats)
                cipc_ws_send(c->ws, CIPC_WS_TEXT, s, strlen(s));
    }
    free(s);
    free(one);
}

void cipc__hub_ws_stats_tick(cipc_hub *h)
{
    for (hub_conn *c = h->conns; c; c = c->next)
        if (c->stats) {
            cipc__hub_queues(h, NULL, on_stats_queues, NULL);
            return;
        }
}

static void on_json_message(cipc_ws *ws, int type, const void *data, size_t len, void *ud)
{
    (void)ud;
    hub_conn *c = cipc_ws_user(ws);
    if (!c || !rate_ok(c))
        return;
    if (type != CIPC_WS_TEXT) {
        cipc_ws_close(ws, CIPC_WS_CLOSE_UNSUPPORTED, "frames on /v1/ws are JSON text");
        return;
    }
    json_error_t jerr;
    json_t *req = json_loadb(data, len, 0, &jerr);
    if (!json_is_object(req)) {
        send_error(ws, NULL, "%s", req ? "expected a JSON object" : jerr.text);
        json_decref(req);
        return;
    }
    json_t *id = json_object_get(req, "id");
    const char *op = json_string_value(json_object_get(req, "op"));
    if (!op) {
        send_error(ws, id, "missing \"op\"");
    } else if (!strcmp(op, "publish")) {
        op_publish(c, req, id);
    } else if (!strcmp(op, "subscribe")) {
        json_t *since = json_object_get(req, "since");
        json_t *s = json_object_get(req, "channel"), *a = json_object_get(req, "channels");
        if (json_is_string(s)) {
            subscribe(c, json_string_value(s), json_string_length(s), since, id);
        } else if (json_is_array(a)) {
            size_t i;
            json_t *v;
            json_array_foreach(a, i, v) if (json_is_string(v))
                subscribe(c, json_string_value(v), json_string_length(v), since, id);
        } else {
            send_error(ws, id, "subscribe needs \"channel\" or \"channels\"");
        }
    } else if (!strcmp(op, "unsubscribe")) {
        if (each_name(c, req, "channel", "channels", id, &c->chans, unsubscribe) < 0)
            send_error(ws, id, "unsubscribe takes \"channel\", \"channels\" or nothing");
    } else if (!strcmp(op, "psubscribe")) {
        if (each_name(c, req, "pattern", "patterns", id, NULL, psubscribe) < 0)
            send_error(ws, id, "psubscribe needs \"pattern\" or \"patterns\"");
    } else if (!strcmp(op, "punsubscribe")) {
        if (each_name(c, req, "pattern", "patterns", id, &c->pats, punsubscribe) < 0)
            send_error(ws, id, "punsubscribe takes \"pattern\", \"patterns\" or nothing");
    } else if (!strcmp(op, "stats")) {
        c->stats = 1;
        uint64_t *one = malloc(sizeof *one);
        if (one) {
            *one = cipc_ws_id(ws);
            cipc__hub_queues(c->h, NULL, on_stats_queues, one);
        }
    } else if (!strcmp(op, "ping")) {
        json_t *j = json_pack("{s:s}", "type", "pong");
        if (id)
            json_object_set(j, "id", id);
        send_json(ws, j);
    } else {
        send_error(ws, id, "unknown op '%s'", op);
    }
    json_decref(req);
}

static void on_json_open(cipc_ws *ws, cipc_http_req *req, void *ud)
{
    (void)req;
    if (!conn_new(ud, ws))
        cipc_ws_close(ws, CIPC_WS_CLOSE_INTERNAL, "out of memory");
}

/* --- raw channel sockets ------------------------------------------------------------- */

static void on_raw_open(cipc_ws *ws, cipc_http_req *req, void *ud)
{
    cipc_hub *h = ud;
    hub_conn *c = conn_new(h, ws);
    const char *name = cipc_http_param(req, "name");
    hub_chan *ch = c ? cipc__hub_chan(h, name, strlen(name), 1) : NULL;
    if (!ch || cipc__ptrvec_add(&ch->raw, ws) < 0) {
        cipc_ws_close(ws, CIPC_WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    c->raw = ch;
    const char *since = cipc_http_query(req, "since");
    if (since && *since) {
        char *end = NULL;
        unsigned long long s = strtoull(since, &end, 10);
        if (!*end && *since != '-')
            cipc__hub_replay_ws(h, ch, ws, 0, s);
    }
}

static void on_raw_message(cipc_ws *ws, int type, const void *data, size_t len, void *ud)
{
    (void)type;
    cipc_hub *h = ud;
    hub_conn *c = cipc_ws_user(ws);
    if (!c || !c->raw || !rate_ok(c))
        return;
    cipc__hub_publish(h, TR_WS, c->raw->name, c->raw->nlen, data, len, on_ws_published_quiet,
                      NULL);
}

int cipc__hub_ws_routes(cipc_hub *h)
{
    cipc_ws_opts o = {
        .max_message = h->o.max_message,
        .max_buffered = h->o.max_buffered,
        .slow_policy = CIPC_WS_SLOW_CLOSE,
        .ping_interval_ms = 30000,
        .pong_timeout_ms = 30000,
    };
    cipc_ws_handlers json = {.on_handshake = on_handshake,
                             .on_open = on_json_open,
                             .on_message = on_json_message,
                             .on_close = on_close,
                             .opts = &o};
    int rc = cipc_route_ws(h->srv, "/v1/ws", &json, h);
    if (rc < 0)
        return rc;
    cipc_ws_handlers raw = {.on_handshake = on_handshake,
                            .on_open = on_raw_open,
                            .on_message = on_raw_message,
                            .on_close = on_close,
                            .opts = &o};
    return cipc_route_ws(h->srv, "/v1/ws/channels/{name}", &raw, h);
}
