/* Channels: sequence numbers, replay buffers and the fan-out to the hub's WebSocket and
 * SSE subscribers (the broker reaches RESP subscribers itself). */
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cipc/log.h"
#include "cipc/time.h"
#include "hub/internal.h"
#include "resp/resp.h"
#include "ws/frame.h"

/* --- vectors --------------------------------------------------------------------------- */

int cipc__ptrvec_add(ptrvec *v, void *x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        void **p = realloc(v->p, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = x;
    return 0;
}

void cipc__ptrvec_del(ptrvec *v, void *x)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->p[i] == x) {
            v->p[i] = v->p[--v->n];
            return;
        }
}

void cipc__ptrvec_free(ptrvec *v)
{
    free(v->p);
    *v = (ptrvec){0};
}

/* --- JSON and SSE text ----------------------------------------------------------------- */

void cipc__hub_json_str(cipc_buf *b, const void *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = s;
    cipc_buf_append(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = p[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        cipc_buf_append(b, p + run, i - run);
        run = i + 1;
        char esc[7] = {'\\', 0};
        size_t n = 2;
        switch (ch) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            n = 6;
        }
        cipc_buf_append(b, esc, n);
    }
    cipc_buf_append(b, p + run, len - run);
    cipc_buf_append(b, "\"", 1);
}

static char *b64(const void *data, size_t len, size_t *outlen)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (!out)
        return NULL;
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    *outlen = (size_t)n;
    return out;
}

void cipc__hub_json_data(cipc_buf *b, const void *data, size_t len)
{
    if (cipc__utf8_valid(data, len)) {
        cipc_buf_append_str(b, "\"data\":");
        cipc__hub_json_str(b, data, len);
        return;
    }
    size_t n = 0;
    char *e = b64(data, len, &n);
    cipc_buf_append_str(b, "\"data_base64\":\"");
    if (e)
        cipc_buf_append(b, e, n);
    cipc_buf_append(b, "\"", 1);
    free(e);
}

json_t *cipc__hub_data_json(json_t *obj, const void *data, size_t len)
{
    if (cipc__utf8_valid(data, len)) {
        json_object_set_new(obj, "data", json_stringn(data, len));
    } else {
        size_t n = 0;
        char *e = b64(data, len, &n);
        json_object_set_new(obj, "data_base64", e ? json_stringn(e, n) : json_null());
        free(e);
    }
    return obj;
}

void cipc__hub_sse_event(cipc_buf *b, const char *event, uint64_t id, const void *data,
                         size_t len)
{
    char line[64];
    if (event) {
        cipc_buf_append_str(b, "event: ");
        cipc_buf_append_str(b, event);
        cipc_buf_append(b, "\n", 1);
    }
    if (id) {
        snprintf(line, sizeof line, "id: %" PRIu64 "\n", id);
        cipc_buf_append_str(b, line);
    }
    /* data: one line per line of the payload (CR, LF and CRLF all end a line in SSE) */
    const char *p = data, *end = p + len;
    do {
        const char *e = p;
        while (e < end && *e != '\n' && *e != '\r')
            e++;
        cipc_buf_append_str(b, "data: ");
        cipc_buf_append(b, p, (size_t)(e - p));
        cipc_buf_append(b, "\n", 1);
        if (e < end && *e == '\r' && e + 1 < end && e[1] == '\n')
            e++;
        p = e + 1;
    } while (p <= end);
    cipc_buf_append(b, "\n", 1);
}

/* --- channels -------------------------------------------------------------------------- */

static void lru_unlink(cipc_hub *h, hub_chan *c)
{
    if (c->lru_prev)
        c->lru_prev->lru_next = c->lru_next;
    else
        h->lru_head = c->lru_next;
    if (c->lru_next)
        c->lru_next->lru_prev = c->lru_prev;
    else
        h->lru_tail = c->lru_prev;
    c->lru_prev = c->lru_next = NULL;
}

static void lru_front(cipc_hub *h, hub_chan *c)
{
    if (h->lru_head == c)
        return;
    if (c->lru_prev || c->lru_next || h->lru_tail == c)
        lru_unlink(h, c);
    c->lru_next = h->lru_head;
    if (h->lru_head)
        h->lru_head->lru_prev = c;
    h->lru_head = c;
    if (!h->lru_tail)
        h->lru_tail = c;
}

static void chan_free(void *v);

/* Over max_channels: forget the least recently used channel nobody here listens to (a
 * bounded walk from the tail; if every one of those has listeners, keep them all). */
static void evict(cipc_hub *h)
{
    hub_chan *c = h->lru_tail;
    for (int steps = 0; c && steps < 64; steps++, c = c->lru_prev) {
        if (c->json.n || c->raw.n || c->sse.n)
            continue;
        lru_unlink(h, c);
        cipc__dict_remove(&h->chans, c->name, c->nlen); /* c->name was the entry's key */
        chan_free(c);
        return;
    }
}

hub_chan *cipc__hub_chan(cipc_hub *h, const char *name, size_t len, int create)
{
    if (!create) {
        dict_entry *e = cipc__dict_find(&h->chans, name, len);
        return e ? e->val : NULL;
    }
    dict_entry *e = cipc__dict_find(&h->chans, name, len);
    if (e) {
        lru_front(h, e->val);
        return e->val;
    }
    if (h->chans.n >= h->o.max_channels)
        evict(h);
    hub_chan *c = calloc(1, sizeof *c);
    int added = 0;
    if (!c || !(e = cipc__dict_upsert(&h->chans, name, len, &added))) {
        free(c);
        return NULL;
    }
    c->name = e->key;
    c->nlen = len;
    e->val = c;
    lru_front(h, c);
    return c;
}

static void chan_free(void *v)
{
    hub_chan *c = v;
    for (size_t i = 0; i < c->n; i++)
        free(c->ring[(c->head + i) % c->cap]);
    free(c->ring);
    cipc__ptrvec_free(&c->json);
    cipc__ptrvec_free(&c->raw);
    cipc__ptrvec_free(&c->sse);
    free(c);
}

static void pat_free(void *v)
{
    hub_pat *p = v;
    cipc__ptrvec_free(&p->json);
    free(p);
}

void cipc__hub_chans_free(cipc_hub *h)
{
    cipc__dict_free(&h->chans, chan_free);
    cipc__dict_free(&h->pats, pat_free);
}

static hub_msg *ring_at(const hub_chan *c, size_t i)
{
    return c->ring[(c->head + i) % c->cap];
}

static void ring_drop_oldest(hub_chan *c)
{
    hub_msg *m = c->ring[c->head];
    c->bytes -= m->len;
    free(m);
    c->head = (c->head + 1) % c->cap;
    c->n--;
}

/* Keep m, dropping the oldest messages beyond the count and byte limits. */
static void ring_keep(cipc_hub *h, hub_chan *c, hub_msg *m)
{
    size_t maxn = h->o.replay_count;
    if (maxn == 0) {
        free(m);
        return;
    }
    if (c->n == c->cap && c->cap < maxn) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        if (cap > maxn)
            cap = maxn;
        hub_msg **r = malloc(cap * sizeof *r);
        if (!r) {
            free(m);
            return;
        }
        for (size_t i = 0; i < c->n; i++)
            r[i] = ring_at(c, i);
        free(c->ring);
        c->ring = r;
        c->head = 0;
        c->cap = cap;
    }
    while (c->n && (c->n >= maxn || c->bytes + m->len > h->o.replay_bytes))
        ring_drop_oldest(c);
    if (m->len > h->o.replay_bytes) { /* larger than the whole buffer: not kept */
        free(m);
        return;
    }
    c->ring[(c->head + c->n) % c->cap] = m;
    c->n++;
    c->bytes += m->len;
}

int cipc__hub_subscribers(cipc_hub *h, hub_chan *c)
{
    int n = (int)(c->json.n + c->raw.n + c->sse.n);
    size_t bk = 0;
    dict_entry *e = NULL;
    while (cipc__dict_next(&h->pats, &bk, &e)) {
        hub_pat *p = e->val;
        if (cipc__glob_match(p->pat, p->plen, c->name, c->nlen, 0))
            n += (int)p->json.n;
    }
    if (h->broker) {
        int r = cipc_broker_numsub(h->broker, c->name, c->nlen);
        if (r > 0)
            n += r;
    }
    return n;
}

/* The JSON text of a message frame into h->scratch. */
static void json_message(cipc_buf *b, const hub_chan *c, const hub_pat *p, uint64_t seq,
                         const void *msg, size_t len)
{
    char num[32];
    b->len = 0;
    cipc_buf_append_str(b, "{\"type\":\"message\",\"channel\":");
    cipc__hub_json_str(b, c->name, c->nlen);
    if (p) {
        cipc_buf_append_str(b, ",\"pattern\":");
        cipc__hub_json_str(b, p->pat, p->plen);
    }
    snprintf(num, sizeof num, ",\"seq\":%" PRIu64 ",", seq);
    cipc_buf_append_str(b, num);
    cipc__hub_json_data(b, msg, len);
    cipc_buf_append(b, "}", 1);
}

static void sse_send(cipc_hub *h, hub_chan *c, uint64_t seq, const void *msg, size_t len)
{
    if (!c->sse.n)
        return;
    cipc_buf *b = &h->scratch;
    b->len = 0;
    if (cipc__utf8_valid(msg, len)) {
        cipc__hub_sse_event(b, NULL, seq, msg, len);
    } else {
        size_t n = 0;
        char *e = b64(msg, len, &n);
        cipc__hub_sse_event(b, "binary", seq, e ? e : "", e ? n : 0);
        free(e);
    }
    for (size_t i = c->sse.n; i-- > 0;) {
        hub_sse *s = c->sse.p[i];
        if (cipc_http_write(s->req, b->data, b->len) < 0)
            cipc__hub_sse_close(s, 0);
        else
            h->out[TR_SSE]++;
    }
}

int cipc__hub_deliver(cipc_hub *h, const char *ch, size_t chlen, const void *msg, size_t len,
                      uint64_t *seq_out)
{
    hub_chan *c = cipc__hub_chan(h, ch, chlen, 1);
    if (!c)
        return -ENOMEM;
    uint64_t seq = ++c->seq;
    if (seq_out)
        *seq_out = seq;
    hub_msg *m = malloc(sizeof *m + len + 1);
    if (m) {
        m->seq = seq;
        m->ts_ms = cipc_wall_ms();
        m->len = len;
        memcpy(m->data, msg, len);
        m->data[len] = '\0';
        ring_keep(h, c, m);
    }
    int n = 0;
    if (c->json.n) {
        json_message(&h->scratch, c, NULL, seq, msg, len);
        n += cipc_ws_broadcast((cipc_ws *const *)c->json.p, c->json.n, CIPC_WS_TEXT,
                               h->scratch.data, h->scratch.len);
    }
    if (c->raw.n) {
        int type = cipc__utf8_valid(msg, len) ? CIPC_WS_TEXT : CIPC_WS_BINARY;
        n += cipc_ws_broadcast((cipc_ws *const *)c->raw.p, c->raw.n, type, msg, len);
    }
    if (h->pats.n) {
        size_t bk = 0;
        dict_entry *e = NULL;
        while (cipc__dict_next(&h->pats, &bk, &e)) {
            hub_pat *p = e->val;
            if (!p->json.n || !cipc__glob_match(p->pat, p->plen, ch, chlen, 0))
                continue;
            json_message(&h->scratch, c, p, seq, msg, len);
            n += cipc_ws_broadcast((cipc_ws *const *)p->json.p, p->json.n, CIPC_WS_TEXT,
                                   h->scratch.data, h->scratch.len);
        }
    }
    h->out[TR_WS] += (uint64_t)n;
    size_t before = h->out[TR_SSE];
    sse_send(h, c, seq, msg, len);
    n += (int)(h->out[TR_SSE] - before);
    return n;
}

/* --- publishing ------------------------------------------------------------------------ */

struct pub_wait {
    hub_pub_cb cb;
    void *ud;
};

static void on_redis_publish(cipc_hub *h, redisReply *r, const char *err, void *ud)
{
    struct pub_wait *w = ud;
    if (!r)
        w->cb(h, CIPC_ENET, 0, err, w->ud);
    else if (r->type == REDIS_REPLY_INTEGER)
        w->cb(h, (int)r->integer, 0, NULL, w->ud);
    else
        w->cb(h, CIPC_EPROTO, 0, r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply",
              w->ud);
    free(w);
}

void cipc__hub_publish(cipc_hub *h, int tr, const char *ch, size_t chlen, const void *msg,
                       size_t len, hub_pub_cb cb, void *ud)
{
    h->in[tr]++;
    if (h->redis_url) { /* everything comes back through the PSUBSCRIBE connection */
        struct pub_wait *w = malloc(sizeof *w);
        if (!w) {
            cb(h, -ENOMEM, 0, "out of memory", ud);
            return;
        }
        *w = (struct pub_wait){cb, ud};
        const char *argv[3] = {"PUBLISH", ch, msg};
        size_t argl[3] = {7, chlen, len};
        if (cipc__hub_cmd(h, on_redis_publish, w, 3, argv, argl) < 0) {
            free(w);
            cb(h, CIPC_ENET, 0, "cannot reach Redis", ud);
        }
        return;
    }
    uint64_t seq = 0;
    int n = cipc__hub_deliver(h, ch, chlen, msg, len, &seq);
    if (n < 0) {
        cb(h, n, 0, "out of memory", ud);
        return;
    }
    int r = cipc_broker_publish(h->broker, ch, chlen, msg, len);
    if (r > 0) {
        n += r;
        h->out[TR_RESP] += (uint64_t)r;
    }
    cb(h, n, seq, NULL, ud);
}

/* --- resuming -------------------------------------------------------------------------- */

/* The held messages after `since`: first index into the ring, and the gap before it
 * (from..to, to 0 when none). reset: since is beyond the channel (the hub restarted). */
static size_t resume_from(const hub_chan *c, uint64_t since, uint64_t *gfrom, uint64_t *gto,
                          int *reset)
{
    *gfrom = *gto = 0;
    *reset = 0;
    if (since > c->seq) {
        *reset = 1;
        return 0;
    }
    uint64_t oldest = c->n ? ring_at(c, 0)->seq : c->seq + 1;
    if (since + 1 < oldest) {
        *gfrom = since + 1;
        *gto = oldest - 1;
        return 0;
    }
    size_t i = 0;
    while (i < c->n && ring_at(c, i)->seq <= since)
        i++;
    return i;
}

void cipc__hub_replay_ws(cipc_hub *h, hub_chan *c, cipc_ws *ws, int json, uint64_t since)
{
    uint64_t gf, gt;
    int reset;
    size_t i = resume_from(c, since, &gf, &gt, &reset);
    if (json && (gt || reset)) {
        char b[160];
        cipc_buf *s = &h->scratch;
        s->len = 0;
        cipc_buf_append_str(s, "{\"type\":\"gap\",\"channel\":");
        cipc__hub_json_str(s, c->name, c->nlen);
        if (reset)
            snprintf(b, sizeof b, ",\"from\":%" PRIu64 ",\"to\":null,\"reset\":true}",
                     since + 1);
        else
            snprintf(b, sizeof b, ",\"from\":%" PRIu64 ",\"to\":%" PRIu64 "}", gf, gt);
        cipc_buf_append_str(s, b);
        cipc_ws_send(ws, CIPC_WS_TEXT, s->data, s->len);
        h->gaps++;
    }
    for (; i < c->n; i++) {
        hub_msg *m = ring_at(c, i);
        if (json) {
            json_message(&h->scratch, c, NULL, m->seq, m->data, m->len);
            cipc_ws_send(ws, CIPC_WS_TEXT, h->scratch.data, h->scratch.len);
        } else {
            cipc_ws_send(ws, cipc__utf8_valid(m->data, m->len) ? CIPC_WS_TEXT : CIPC_WS_BINARY,
                         m->data, m->len);
        }
        h->out[TR_WS]++;
    }
}

void cipc__hub_replay_sse(cipc_hub *h, hub_chan *c, hub_sse *s, uint64_t since)
{
    uint64_t gf, gt;
    int reset;
    size_t i = resume_from(c, since, &gf, &gt, &reset);
    cipc_buf *b = &h->scratch;
    b->len = 0;
    if (gt || reset) {
        char d[96];
        if (reset)
            snprintf(d, sizeof d, "{\"from\":%" PRIu64 ",\"to\":null,\"reset\":true}", since + 1);
        else
            snprintf(d, sizeof d, "{\"from\":%" PRIu64 ",\"to\":%" PRIu64 "}", gf, gt);
        cipc__hub_sse_event(b, "gap", 0, d, strlen(d));
        h->gaps++;
    }
    for (; i < c->n; i++) {
        hub_msg *m = ring_at(c, i);
        if (cipc__utf8_valid(m->data, m->len)) {
            cipc__hub_sse_event(b, NULL, m->seq, m->data, m->len);
        } else {
            size_t n = 0;
            char *e = b64(m->data, m->len, &n);
            cipc__hub_sse_event(b, "binary", m->seq, e ? e : "", e ? n : 0);
            free(e);
        }
        h->out[TR_SSE]++;
    }
    if (b->len && cipc_http_write(s->req, b->data, b->len) < 0)
        cipc__hub_sse_close(s, 0);
}

json_t *cipc__hub_history(cipc_hub *h, hub_chan *c, uint64_t since)
{
    (void)h;
    uint64_t gf, gt;
    int reset;
    size_t i = resume_from(c, since, &gf, &gt, &reset);
    json_t *o = json_object();
    json_object_set_new(o, "channel", json_stringn(c->name, c->nlen));
    json_object_set_new(o, "seq", json_integer((json_int_t)c->seq));
    json_t *a = json_array();
    for (; i < c->n; i++) {
        hub_msg *m = ring_at(c, i);
        json_t *x = json_pack("{s:I,s:I}", "seq", (json_int_t)m->seq, "ts_ms", (json_int_t)m->ts_ms);
        json_array_append_new(a, cipc__hub_data_json(x, m->data, m->len));
    }
    json_object_set_new(o, "messages", a);
    if (gt)
        json_object_set_new(o, "gap", json_pack("{s:I,s:I}", "from", (json_int_t)gf, "to", (json_int_t)gt));
    else if (reset)
        json_object_set_new(o, "gap", json_pack("{s:I,s:n,s:b}", "from", (json_int_t)(since + 1), "to", "reset", 1));
    else
        json_object_set_new(o, "gap", json_null());
    return o;
}
