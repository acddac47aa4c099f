/* WebSocket endpoints on the HTTP server: the upgrade handler (RFC 6455 4.2 handshake,
 * subprotocol and permessage-deflate negotiation), each worker's connection ids and
 * topics, and the bounded cross-thread queue behind cipc_ws_send_to() and
 * cipc_ws_publish(). The connections themselves are cipc_ws objects (src/ws/ws.c) over
 * the server connection as transport (conn.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cipc/log.h"
#include "http_server/internal.h"
#include "ws/handshake.h"
#include "ws/ws.h"

#define LOG_MODULE "ws"

/* An endpoint: the handlers and options given to cipc_route_ws(), copied. */
struct ws_endpoint {
    cipc_ws_handlers h;
    cipc_ws_opts o;
    char **protos; /* supported subprotocols, NULL-terminated */
    size_t nprotos;
    char **origins; /* accepted Origin values, NULL-terminated; NULL: any */
    size_t norigins;
    void *ud;
};

struct ws_topic {
    struct ws_topic *next;
    char *name;
    cipc_ws **subs;
    size_t n, cap;
};

enum { X_SEND_TO, X_PUBLISH };

/* A message from another thread. */
struct ws_xmsg {
    struct ws_xmsg *next;
    int kind;
    uint64_t id;
    char *topic;
    int type;
    size_t len;
    unsigned char data[];
};

static void endpoint_free(void *p)
{
    struct ws_endpoint *ep = p;
    if (!ep)
        return;
    for (size_t i = 0; i < ep->nprotos; i++)
        free(ep->protos[i]);
    free(ep->protos);
    for (size_t i = 0; i < ep->norigins; i++)
        free(ep->origins[i]);
    free(ep->origins);
    free(ep);
}

/* --- the handshake ------------------------------------------------------------------ */

static void refuse(cipc_http_req *r, int status, const char *why)
{
    if (status == 426) {
        cipc_http_set_header(r, "Upgrade", "websocket");
        cipc_http_set_header(r, "Sec-WebSocket-Version", "13");
    }
    char body[160];
    int n = snprintf(body, sizeof body, "%s\n", why);
    cipc_http_respond(r, status, "text/plain", body, (size_t)n);
}

static void upgrade_handler(cipc_http_req *r, void *ud)
{
    struct ws_endpoint *ep = ud;
    struct conn *c = r->c;
    struct worker *w = c->w;
    if (!r->p.upgrade && !cipc_http_header(r, "Sec-WebSocket-Key")) {
        /* A plain request: say what this endpoint wants. A request that tries the
         * handshake and gets it wrong gets 400 from the check below. */
        refuse(r, 426, "this endpoint speaks WebSocket: send an Upgrade: websocket request");
        return;
    }
    struct cipc__ws_server_hs hs;
    int status = cipc__ws_server_check(r->headers, r->p.n_headers, r->method, strlen(r->method),
                                       r->p.minor, &hs);
    if (status != 0) {
        refuse(r, status,
               status == 426 ? "unsupported Sec-WebSocket-Version (13 is)"
                             : "invalid WebSocket handshake");
        return;
    }
    if (r->body.len || c->state != C_HANDLER) {
        refuse(r, 400, "a WebSocket handshake has no body");
        return;
    }
    if (ep->origins) {
        const char *origin = cipc_http_header(r, "Origin");
        size_t i = 0;
        while (origin && i < ep->norigins && strcmp(ep->origins[i], origin) != 0)
            i++;
        if (!origin || i == ep->norigins) {
            refuse(r, 403, "Origin not allowed");
            return;
        }
    }
    if (ep->h.on_handshake) {
        w->in_handler++;
        status = ep->h.on_handshake(r, ep->ud);
        w->in_handler--;
        if (status != 0) {
            if (status < 400 || status > 599)
                status = 403;
            if (!r->answered)
                refuse(r, status, "WebSocket handshake refused");
            return;
        }
        if (r->answered)
            return;
    }
    int pi = ep->nprotos ? cipc__ws_pick_subprotocol(&hs, (const char *const *)ep->protos,
                                                     ep->nprotos)
                         : -1;
    struct cipc__ws_pmd_params agreed;
    char ext[CIPC__WS_PMD_HDR_MAX];
    int pmd = 0;
    if (!ep->o.no_compression) {
        struct cipc__ws_pmd_config cfg = {.enabled = true, .level = ep->o.compress_level};
        pmd = cipc__ws_pmd_negotiate_server(r->headers, r->p.n_headers, &cfg, &agreed, ext,
                                            sizeof ext);
        if (pmd < 0) {
            refuse(r, 400, "malformed Sec-WebSocket-Extensions");
            return;
        }
    }
    char resp[512];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s%s%s%s\r\n",
                     hs.accept, pi >= 0 ? "Sec-WebSocket-Protocol: " : "",
                     pi >= 0 ? ep->protos[pi] : "", pi >= 0 ? "\r\n" : "",
                     pmd == 1 ? "Sec-WebSocket-Extensions: " : "", pmd == 1 ? ext : "",
                     pmd == 1 ? "\r\n" : "");
    if (n <= 0 || (size_t)n >= sizeof resp) {
        refuse(r, 500, "handshake response too long");
        return;
    }
    cipc_ws_handlers h = ep->h;
    h.opts = &ep->o;
    struct cipc__ws_init in = {
        .is_server = true,
        .h = &h,
        .ud = ep->ud,
        .tops = &cipc__conn_ws_transport,
        .t = c,
        .pmd = pmd == 1 ? &agreed : NULL,
        .subprotocol = pi >= 0 ? ep->protos[pi] : NULL,
        .path = r->path,
        .peer = c->peer,
        .owner = w,
    };
    cipc_ws *ws = NULL;
    if (cipc__ws_new(&in, &ws) < 0) {
        refuse(r, 500, "out of memory");
        return;
    }
    if (cipc__conn_upgrade(c, resp, (size_t)n, ws) < 0) {
        /* The socket failed and is closing: the connection was never opened. */
        c->ws = NULL;
        ws->h.on_close = NULL;
        ws->h.on_error = NULL;
        cipc__ws_gone(ws, 0);
        return;
    }
    ws->id = cipc__ws_worker_register(w, ws);
    r->answered = 1;
    w->in_handler++;
    cipc__ws_opened(ws, r);
    w->in_handler--;
}

/* Copy a NULL-terminated list (NULL stays NULL). Returns 0 or -ENOMEM; *n counts the
 * entries copied so far, for the caller's cleanup. */
static int copy_list(const char *const *in, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!in)
        return 0;
    size_t len = 0;
    while (in[len])
        len++;
    *out = calloc(len + 1, sizeof **out);
    if (!*out)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++) {
        if (!((*out)[i] = strdup(in[i])))
            return -ENOMEM;
        (*n)++;
    }
    return 0;
}

int cipc_route_ws(cipc_server *s, const char *path, const cipc_ws_handlers *h, void *ud)
{
    if (!s || !path || !h)
        return -EINVAL;
    struct ws_endpoint *ep = calloc(1, sizeof *ep);
    if (!ep)
        return -ENOMEM;
    ep->h = *h;
    cipc__ws_opts_resolve(h->opts, &ep->o);
    ep->h.opts = NULL;
    ep->ud = ud;
    if (copy_list(h->opts ? h->opts->subprotocols : NULL, &ep->protos, &ep->nprotos) < 0 ||
        copy_list(h->opts ? h->opts->origins : NULL, &ep->origins, &ep->norigins) < 0) {
        endpoint_free(ep);
        return -ENOMEM;
    }
    int rc = cipc__route_add(s, "GET", path, upgrade_handler, ep, 0, endpoint_free);
    if (rc < 0)
        endpoint_free(ep);
    return rc;
}

/* --- connection ids ------------------------------------------------------------------ */

/* Ids: a per-worker sequence number above 8 bits of worker index. */
#define ID_WORKER(id) ((int)((id)&0xff))

static size_t slot_of(uint64_t id, size_t cap)
{
    uint64_t x = id * UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(x >> 32) & (cap - 1);
}

static int tab_grow(struct worker *w)
{
    size_t cap = w->ws_cap ? w->ws_cap * 2 : 64;
    cipc_ws **tab = calloc(cap, sizeof *tab);
    if (!tab)
        return -ENOMEM;
    for (size_t i = 0; i < w->ws_cap; i++) {
        cipc_ws *ws = w->ws_tab[i];
        if (!ws)
            continue;
        size_t k = slot_of(ws->id, cap);
        while (tab[k])
            k = (k + 1) & (cap - 1);
        tab[k] = ws;
    }
    free(w->ws_tab);
    w->ws_tab = tab;
    w->ws_cap = cap;
    return 0;
}

uint64_t cipc__ws_worker_register(struct worker *w, cipc_ws *ws)
{
    uint64_t id = (++w->ws_seq << 8) | (uint64_t)(w->index & 0xff);
    ws->id = id;
    if ((w->ws_n + 1) * 2 > w->ws_cap && tab_grow(w) < 0)
        return id; /* not reachable by id; everything else works */
    size_t k = slot_of(id, w->ws_cap);
    while (w->ws_tab[k])
        k = (k + 1) & (w->ws_cap - 1);
    w->ws_tab[k] = ws;
    w->ws_n++;
    return id;
}

static cipc_ws *tab_find(struct worker *w, uint64_t id)
{
    if (!w->ws_cap)
        return NULL;
    size_t k = slot_of(id, w->ws_cap);
    while (w->ws_tab[k]) {
        if (w->ws_tab[k]->id == id)
            return w->ws_tab[k];
        k = (k + 1) & (w->ws_cap - 1);
    }
    return NULL;
}

static void tab_remove(struct worker *w, cipc_ws *ws)
{
    if (!w->ws_cap)
        return;
    size_t k = slot_of(ws->id, w->ws_cap);
    while (w->ws_tab[k] && w->ws_tab[k] != ws)
        k = (k + 1) & (w->ws_cap - 1);
    if (!w->ws_tab[k])
        return;
    w->ws_tab[k] = NULL;
    w->ws_n--;
    /* Re-insert the rest of the cluster (linear probing deletion). */
    size_t j = (k + 1) & (w->ws_cap - 1);
    while (w->ws_tab[j]) {
        cipc_ws *m = w->ws_tab[j];
        w->ws_tab[j] = NULL;
        size_t s = slot_of(m->id, w->ws_cap);
        while (w->ws_tab[s])
            s = (s + 1) & (w->ws_cap - 1);
        w->ws_tab[s] = m;
        j = (j + 1) & (w->ws_cap - 1);
    }
}

/* --- topics ------------------------------------------------------------------------- */

static struct ws_topic *topic_find(struct worker *w, const char *name)
{
    for (struct ws_topic *t = w->topics; t; t = t->next)
        if (!strcmp(t->name, name))
            return t;
    return NULL;
}

static void topic_drop(struct worker *w, struct ws_topic *t, cipc_ws *ws)
{
    for (size_t i = 0; i < t->n; i++) {
        if (t->subs[i] == ws) {
            t->subs[i] = t->subs[--t->n];
            break;
        }
    }
    if (t->n == 0) {
        struct ws_topic **pp = &w->topics;
        while (*pp != t)
            pp = &(*pp)->next;
        *pp = t->next;
        free(t->subs);
        free(t->name);
        free(t);
    }
}

int cipc_ws_subscribe(cipc_ws *ws, const char *topic)
{
    if (!ws || !topic || !ws->is_server || !ws->owner)
        return -EINVAL;
    struct worker *w = ws->owner;
    for (size_t i = 0; i < ws->ntopics; i++)
        if (!strcmp(ws->topics[i], topic))
            return 0;
    struct ws_topic *t = topic_find(w, topic);
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t || !(t->name = strdup(topic))) {
            free(t);
            return -ENOMEM;
        }
        t->next = w->topics;
        w->topics = t;
    }
    char *copy = strdup(topic);
    char **nt = copy ? realloc(ws->topics, (ws->ntopics + 1) * sizeof *nt) : NULL;
    if (nt)
        ws->topics = nt;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        cipc_ws **ns = nt ? realloc(t->subs, cap * sizeof *ns) : NULL;
        if (ns) {
            t->subs = ns;
            t->cap = cap;
        } else {
            nt = NULL;
        }
    }
    if (!nt) {
        free(copy);
        if (t->n == 0)
            topic_drop(w, t, ws);
        return -ENOMEM;
    }
    ws->topics[ws->ntopics++] = copy;
    t->subs[t->n++] = ws;
    return 0;
}

int cipc_ws_unsubscribe(cipc_ws *ws, const char *topic)
{
    if (!ws || !topic || !ws->owner)
        return -EINVAL;
    struct worker *w = ws->owner;
    for (size_t i = 0; i < ws->ntopics; i++) {
        if (strcmp(ws->topics[i], topic) != 0)
            continue;
        free(ws->topics[i]);
        ws->topics[i] = ws->topics[--ws->ntopics];
        struct ws_topic *t = topic_find(w, topic);
        if (t)
            topic_drop(w, t, ws);
        return 0;
    }
    return 0;
}

void cipc__ws_worker_forget(struct worker *w, cipc_ws *ws)
{
    tab_remove(w, ws);
    for (size_t i = 0; i < ws->ntopics; i++) {
        struct ws_topic *t = topic_find(w, ws->topics[i]);
        if (t)
            topic_drop(w, t, ws);
        free(ws->topics[i]);
    }
    ws->ntopics = 0;
}

/* --- sending to many ---------------------------------------------------------------- */

int cipc_ws_broadcast(cipc_ws *const *list, size_t n, int type, const void *data, size_t len)
{
    if ((type != CIPC_WS_TEXT && type != CIPC_WS_BINARY) || (!data && len))
        return -EINVAL;
    if (type == CIPC_WS_TEXT && !cipc__utf8_valid(data, len))
        return CIPC_EPROTO;
    struct cipc__ws_block *b = cipc__ws_block_frame(type, data, len);
    if (!b)
        return -ENOMEM;
    int sent = 0;
    for (size_t i = 0; i < n; i++)
        if (list[i] && cipc__ws_send_block(list[i], b) == 0)
            sent++;
    cipc__ws_block_unref(b);
    return sent;
}

static int publish_local(struct worker *w, const char *topic, int type, const void *data,
                         size_t len)
{
    struct ws_topic *t = topic_find(w, topic);
    if (!t || t->n == 0)
        return 0;
    /* A send can close a slow subscriber, which leaves the topic: iterate over a copy. */
    cipc_ws **subs = malloc(t->n * sizeof *subs);
    if (!subs)
        return -ENOMEM;
    size_t n = t->n;
    memcpy(subs, t->subs, n * sizeof *subs);
    int rc = cipc_ws_broadcast(subs, n, type, data, len);
    free(subs);
    return rc;
}

static int on_worker_thread(const struct worker *w)
{
    uv_thread_t self = uv_thread_self();
    return atomic_load(&((struct worker *)w)->ready) && uv_thread_equal(&self, &w->tid);
}

static int post(struct worker *w, int kind, uint64_t id, const char *topic, int type,
                const void *data, size_t len)
{
    if (!w->has_xlock)
        return CIPC_ECLOSING;
    struct ws_xmsg *m = malloc(sizeof *m + len);
    if (!m)
        return -ENOMEM;
    m->next = NULL;
    m->kind = kind;
    m->id = id;
    m->type = type;
    m->len = len;
    m->topic = topic ? strdup(topic) : NULL;
    if (topic && !m->topic) {
        free(m);
        return -ENOMEM;
    }
    if (len)
        memcpy(m->data, data, len);
    uv_mutex_lock(&w->xlock);
    int full = w->xlen >= CIPC_WS_DEFAULT_QUEUE;
    if (!full) {
        if (w->xtail)
            w->xtail->next = m;
        else
            w->xhead = m;
        w->xtail = m;
        w->xlen++;
    }
    uv_mutex_unlock(&w->xlock);
    if (full) {
        free(m->topic);
        free(m);
        return CIPC_EBUSY;
    }
    if (atomic_load(&w->ready))
        uv_async_send(&w->wake);
    return 0;
}

int cipc_ws_send_to(cipc_server *s, uint64_t id, int type, const void *data, size_t len)
{
    if (!s || (type != CIPC_WS_TEXT && type != CIPC_WS_BINARY) || (!data && len))
        return -EINVAL;
    int wi = ID_WORKER(id);
    if (!s->workers || wi >= s->nworkers || id == 0)
        return -EINVAL;
    if (type == CIPC_WS_TEXT && !cipc__utf8_valid(data, len))
        return CIPC_EPROTO;
    struct worker *w = &s->workers[wi];
    if (on_worker_thread(w)) {
        cipc_ws *ws = tab_find(w, id);
        return ws ? cipc_ws_send(ws, type, data, len) : 0;
    }
    return post(w, X_SEND_TO, id, NULL, type, data, len);
}

int cipc_ws_publish(cipc_server *s, const char *topic, int type, const void *data, size_t len)
{
    if (!s || !topic || (type != CIPC_WS_TEXT && type != CIPC_WS_BINARY) || (!data && len))
        return -EINVAL;
    if (type == CIPC_WS_TEXT && !cipc__utf8_valid(data, len))
        return CIPC_EPROTO;
    int local = 0, busy = 0;
    for (int i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        if (on_worker_thread(w)) {
            int rc = publish_local(w, topic, type, data, len);
            if (rc > 0)
                local = rc;
        } else if (post(w, X_PUBLISH, 0, topic, type, data, len) == CIPC_EBUSY) {
            busy = 1;
        }
    }
    return busy ? CIPC_EBUSY : local;
}

/* --- the worker side ------------------------------------------------------------------ */

void cipc__ws_worker_init(struct worker *w)
{
    if (!w->has_xlock && uv_mutex_init(&w->xlock) == 0)
        w->has_xlock = 1;
}

void cipc__ws_worker_wake(struct worker *w)
{
    if (!w->has_xlock)
        return;
    uv_mutex_lock(&w->xlock);
    struct ws_xmsg *m = w->xhead;
    w->xhead = w->xtail = NULL;
    w->xlen = 0;
    uv_mutex_unlock(&w->xlock);
    while (m) {
        struct ws_xmsg *next = m->next;
        if (m->kind == X_SEND_TO) {
            cipc_ws *ws = tab_find(w, m->id);
            if (ws)
                cipc_ws_send(ws, m->type, m->data, m->len);
        } else {
            publish_local(w, m->topic, m->type, m->data, m->len);
        }
        free(m->topic);
        free(m);
        m = next;
    }
}

void cipc__ws_worker_free(struct worker *w)
{
    if (w->has_xlock) {
        struct ws_xmsg *m = w->xhead;
        while (m) {
            struct ws_xmsg *next = m->next;
            free(m->topic);
            free(m);
            m = next;
        }
        w->xhead = w->xtail = NULL;
        uv_mutex_destroy(&w->xlock);
        w->has_xlock = 0;
    }
    while (w->topics) {
        struct ws_topic *t = w->topics;
        w->topics = t->next;
        free(t->subs);
        free(t->name);
        free(t);
    }
    free(w->ws_tab);
    w->ws_tab = NULL;
    w->ws_cap = w->ws_n = 0;
}
