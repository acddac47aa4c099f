/* cipc_client: the asynchronous client (aiohttp.ClientSession) on a cipc_loop, driving
 * libcurl's multi socket interface from libuv polls and timers. Requests beyond the
 * concurrency limit wait in a FIFO queue; retries wait in a backoff list served by one
 * timer; easy handles are pooled and reused. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cipc/time.h"
#include "http_client/internal.h"

enum req_state { REQ_QUEUED, REQ_ACTIVE, REQ_BACKOFF };

struct cipc_req {
    cipc_client *c;
    struct xfer x;
    cipc_response_cb cb;
    void *ud;
    enum req_state state;
    uint64_t due; /* uv_now() at which a backoff ends */
    cipc_req *prev, *next;
};

struct req_list {
    cipc_req *head, *tail;
};

struct sockctx {
    uv_poll_t poll;
    curl_socket_t fd;
    int events; /* what the poll watches now */
    int idle;   /* curl said REMOVE: the connection sits in its cache; the watcher is
                   kept (stopped at its next event) until curl closes the fd */
    cipc_client *c;
    struct sockctx *prev, *next;
};

struct cipc_client {
    uv_loop_t *uv;
    CURLM *multi;
    CURLSH *share;
    struct http_cfg cfg;
    struct errbox *err;
    uv_timer_t curl_timer;    /* curl's own timeouts */
    uv_timer_t backoff_timer; /* the earliest retry due */
    uv_timer_t wake_timer;    /* wakes gather()/wait() at their deadline */
    struct req_list queued, active, backoff;
    size_t n_active;
    size_t n_pending;
    CURL **pool; /* idle easy handles */
    size_t n_pool, cap_pool;
    struct sockctx *socks;
    int open_handles; /* uv handles not yet closed */
    int waiting;      /* inside cipc_client_wait()/gather(): stop the loop on completions */
    int closing;
};

/* --- lists -------------------------------------------------------------------------- */

static void list_push(struct req_list *l, cipc_req *r, int front)
{
    r->prev = r->next = NULL;
    if (!l->head) {
        l->head = l->tail = r;
    } else if (front) {
        r->next = l->head;
        l->head->prev = r;
        l->head = r;
    } else {
        r->prev = l->tail;
        l->tail->next = r;
        l->tail = r;
    }
}

static void list_remove(struct req_list *l, cipc_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        l->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        l->tail = r->prev;
    r->prev = r->next = NULL;
}

static struct req_list *list_of(cipc_client *c, cipc_req *r)
{
    return r->state == REQ_QUEUED ? &c->queued : r->state == REQ_ACTIVE ? &c->active : &c->backoff;
}

static int on_close_socket(void *clientp, curl_socket_t fd);

/* --- easy handle pool ---------------------------------------------------------------- */

static CURL *easy_get(cipc_client *c)
{
    if (c->n_pool)
        return c->pool[--c->n_pool];
    CURL *e = curl_easy_init();
    if (e && cipc__easy_setup(e, &c->cfg, c->share) < 0) {
        curl_easy_cleanup(e);
        e = NULL;
    }
    if (e) {
        curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
        curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, c);
    }
    return e;
}

static void easy_put(cipc_client *c, CURL *e)
{
    if (!e)
        return;
    curl_easy_setopt(e, CURLOPT_PRIVATE, NULL);
    if (c->n_pool == c->cap_pool) {
        size_t cap = c->cap_pool ? c->cap_pool * 2 : 16;
        if (cap > (size_t)c->cfg.max_concurrency + 16) {
            curl_easy_cleanup(e);
            return;
        }
        CURL **p = realloc(c->pool, cap * sizeof *p);
        if (!p) {
            curl_easy_cleanup(e);
            return;
        }
        c->pool = p;
        c->cap_pool = cap;
    }
    c->pool[c->n_pool++] = e;
}

/* --- completion -------------------------------------------------------------------- */

static void pump(cipc_client *c);

/* Finish a request that is in no list and holds no curl transfer: run its callback
 * exactly once with `rc` (and the response when rc == 0), then free it. */
static void complete(cipc_req *r, int rc)
{
    cipc_client *c = r->c;
    easy_put(c, r->x.easy);
    r->x.easy = NULL;
    cipc_response *resp = rc == 0 ? cipc__xfer_take_response(&r->x) : NULL;
    cipc__xfer_free(&r->x);
    c->n_pending--;
    cipc_response_cb cb = r->cb;
    void *ud = r->ud;
    free(r);
    cb(c, rc, resp, ud);
    cipc_response_free(resp);
    /* Let run_until() look at its condition now: without this, a completion in the
     * timers phase would leave uv_run(UV_RUN_ONCE) blocked in poll until the next timer. */
    if (c->waiting)
        uv_stop(c->uv);
}

/* Put the request on a curl transfer. Returns 0, or a negative code (the request is then
 * in no list and the caller completes or drops it). */
static int start(cipc_client *c, cipc_req *r)
{
    if (!r->x.easy)
        r->x.easy = easy_get(c);
    if (!r->x.easy)
        return -ENOMEM;
    int rc = cipc__xfer_arm(&r->x);
    if (rc < 0)
        return rc;
    curl_easy_setopt(r->x.easy, CURLOPT_PRIVATE, r);
    if (curl_multi_add_handle(c->multi, r->x.easy) != CURLM_OK) {
        cipc__errbox_set(c->err, "libcurl refused a new transfer");
        return CIPC_EINTERNAL;
    }
    r->state = REQ_ACTIVE;
    list_push(&c->active, r, 0);
    c->n_active++;
    return 0;
}

/* Start queued requests while the concurrency limit allows. */
static void pump(cipc_client *c)
{
    while (!c->closing && c->queued.head && c->n_active < (size_t)c->cfg.max_concurrency) {
        cipc_req *r = c->queued.head;
        list_remove(&c->queued, r);
        int rc = start(c, r);
        if (rc < 0) {
            cipc__xfer_end_attempt(&r->x);
            complete(r, rc);
        }
    }
}

static void arm_backoff_timer(cipc_client *c);

/* A transfer ended: retry it after a delay, or complete it. */
static void transfer_done(cipc_client *c, cipc_req *r, CURLcode res)
{
    curl_multi_remove_handle(c->multi, r->x.easy);
    list_remove(&c->active, r);
    c->n_active--;
    int rc = cipc__xfer_result(&r->x, res);
    if (rc == 0 && !c->closing) {
        int follow = cipc__xfer_redirect(&r->x);
        if (follow > 0) {
            /* The next hop goes straight back on the same easy handle. */
            cipc__xfer_end_attempt(&r->x);
            follow = start(c, r);
            if (follow == 0)
                return;
        }
        if (follow < 0) {
            cipc__xfer_end_attempt(&r->x);
            complete(r, follow);
            return;
        }
    }
    int64_t delay = cipc__xfer_retry_delay(&r->x, rc);
    if (delay < 0 || c->closing) {
        complete(r, rc);
        return;
    }
    cipc__xfer_end_attempt(&r->x);
    easy_put(c, r->x.easy);
    r->x.easy = NULL;
    r->state = REQ_BACKOFF;
    r->due = uv_now(c->uv) + (uint64_t)delay;
    list_push(&c->backoff, r, 0);
    arm_backoff_timer(c);
}

static void check_done(cipc_client *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        cipc_req *r = (cipc_req *)priv;
        CURLcode res = m->data.result;
        if (r)
            transfer_done(c, r, res);
    }
    pump(c);
}

/* --- libuv <-> curl glue --------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    cipc_client *c = h->data;
    if (h->type == UV_POLL)
        free(h); /* the uv_poll_t is the first member of its sockctx */
    if (--c->open_handles == 0 && c->closing) {
        cipc__http_cfg_free(&c->cfg);
        cipc__errbox_unref(c->err);
        free(c->pool);
        free(c);
    }
}

static void sock_unlink(cipc_client *c, struct sockctx *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct sockctx *s = (struct sockctx *)p;
    cipc_client *c = s->c;
    if (s->idle) {
        uv_poll_stop(&s->poll);
        s->events = 0;
        return;
    }
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    check_done(c);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    cipc_client *c = userp;
    struct sockctx *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            s->idle = 1;
            curl_multi_assign(c->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        for (struct sockctx *i = c->socks; i; i = i->next) {
            if (i->fd == fd) {
                s = i;
                break;
            }
        }
        if (s)
            curl_multi_assign(c->multi, fd, s);
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            return -1;
        if (uv_poll_init_socket(c->uv, &s->poll, fd) < 0) {
            free(s);
            return -1;
        }
        s->fd = fd;
        s->c = c;
        s->poll.data = c;
        c->open_handles++;
        s->next = c->socks;
        if (c->socks)
            c->socks->prev = s;
        c->socks = s;
        curl_multi_assign(c->multi, fd, s);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    s->idle = 0;
    if (ev != s->events) {
        uv_poll_start(&s->poll, ev, on_poll);
        s->events = ev;
    }
    return 0;
}

/* curl is about to close a socket (a cached connection dies or the multi handle is
 * cleaned up): close its watcher first, then the fd, so a reused fd number never meets a
 * stale watcher. Keeping watchers across CURL_POLL_REMOVE saves a poll init, an epoll
 * ADD/DEL pair and an ioctl per request on a kept-alive connection. */
static int on_close_socket(void *clientp, curl_socket_t fd)
{
    cipc_client *c = clientp;
    for (struct sockctx *s = c->socks; s; s = s->next) {
        if (s->fd == fd) {
            uv_poll_stop(&s->poll);
            sock_unlink(c, s);
            uv_close((uv_handle_t *)&s->poll, on_handle_closed);
            break;
        }
    }
    return close(fd);
}

static void on_curl_timer(uv_timer_t *t)
{
    cipc_client *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static int on_timer_change(CURLM *m, long timeout_ms, void *userp)
{
    cipc_client *c = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&c->curl_timer);
    else
        uv_timer_start(&c->curl_timer, on_curl_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static void on_backoff_timer(uv_timer_t *t)
{
    cipc_client *c = t->data;
    uint64_t now = uv_now(c->uv);
    cipc_req *r = c->backoff.head;
    while (r) {
        cipc_req *next = r->next;
        if (r->due <= now) {
            list_remove(&c->backoff, r);
            r->state = REQ_QUEUED;
            list_push(&c->queued, r, 1); /* retries go ahead of new work */
        }
        r = next;
    }
    arm_backoff_timer(c);
    pump(c);
}

static void arm_backoff_timer(cipc_client *c)
{
    if (!c->backoff.head) {
        uv_timer_stop(&c->backoff_timer);
        return;
    }
    uint64_t first = UINT64_MAX;
    for (cipc_req *r = c->backoff.head; r; r = r->next)
        first = r->due < first ? r->due : first;
    uint64_t now = uv_now(c->uv);
    uv_timer_start(&c->backoff_timer, on_backoff_timer, first > now ? first - now : 0, 0);
}

/* --- public API ---------------------------------------------------------------------- */

int cipc_client_new(cipc_loop *loop, const cipc_session_opts *opts, cipc_client **out)
{
    int rc = cipc__curl_global_init();
    if (rc < 0)
        return rc;
    cipc_client *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->uv = cipc_loop_uv(loop);
    c->err = cipc__errbox_new();
    if (!c->err) {
        free(c);
        return -ENOMEM;
    }
    rc = cipc__http_cfg_init(&c->cfg, opts, c->err);
    if (rc < 0) {
        cipc__errbox_unref(c->err);
        free(c);
        return rc;
    }
    c->multi = curl_multi_init();
    c->share = cipc__share_new(&c->cfg);
    if (!c->multi || !c->share) {
        if (c->multi)
            curl_multi_cleanup(c->multi);
        if (c->share)
            curl_share_cleanup(c->share);
        cipc__http_cfg_free(&c->cfg);
        cipc__errbox_unref(c->err);
        free(c);
        return -ENOMEM;
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer_change);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)c->cfg.max_concurrency);
    uv_timer_init(c->uv, &c->curl_timer);
    uv_timer_init(c->uv, &c->backoff_timer);
    uv_timer_init(c->uv, &c->wake_timer);
    c->curl_timer.data = c->backoff_timer.data = c->wake_timer.data = c;
    c->open_handles = 3;
    *out = c;
    return 0;
}

int cipc_client_header(cipc_client *c, const char *name, const char *value)
{
    return cipc__http_cfg_header(&c->cfg, name, value, c->err);
}

const char *cipc_client_errmsg(const cipc_client *c)
{
    return c->err->msg;
}

size_t cipc_client_pending(const cipc_client *c)
{
    return c->n_pending;
}

int cipc_client_request(cipc_client *c, const char *method, const char *url,
                        const cipc_request_opts *opts, cipc_response_cb cb, void *ud,
                        cipc_req **req_out)
{
    if (!cb)
        return -EINVAL;
    if (c->closing)
        return CIPC_ECLOSING;
    cipc_req *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    int rc = cipc__xfer_prepare(&r->x, &c->cfg, c->err, method, url, opts, 1);
    if (rc < 0) {
        cipc__xfer_free(&r->x);
        free(r);
        return rc;
    }
    r->c = c;
    r->cb = cb;
    r->ud = ud;
    if (c->n_active < (size_t)c->cfg.max_concurrency && !c->queued.head) {
        rc = start(c, r);
        if (rc < 0) {
            cipc__xfer_end_attempt(&r->x);
            easy_put(c, r->x.easy);
            cipc__xfer_free(&r->x);
            free(r);
            return rc;
        }
    } else {
        r->state = REQ_QUEUED;
        list_push(&c->queued, r, 0);
    }
    c->n_pending++;
    if (req_out)
        *req_out = r;
    return 0;
}

int cipc_client_get(cipc_client *c, const char *url, cipc_response_cb cb, void *ud)
{
    return cipc_client_request(c, "GET", url, NULL, cb, ud, NULL);
}

int cipc_request_cancel(cipc_req *r)
{
    if (!r)
        return -EINVAL;
    cipc_client *c = r->c;
    list_remove(list_of(c, r), r);
    if (r->state == REQ_ACTIVE) {
        curl_multi_remove_handle(c->multi, r->x.easy);
        c->n_active--;
    } else if (r->state == REQ_BACKOFF) {
        arm_backoff_timer(c);
    }
    cipc__xfer_end_attempt(&r->x);
    cipc__errbox_set(c->err, "%s %.300s: canceled", r->x.method, r->x.url);
    complete(r, CIPC_ECANCELED);
    pump(c);
    return 0;
}

void cipc_client_close(cipc_client *c)
{
    if (!c || c->closing)
        return;
    c->closing = 1;
    struct req_list *lists[] = {&c->queued, &c->backoff, &c->active};
    for (size_t i = 0; i < 3; i++) {
        while (lists[i]->head)
            cipc_request_cancel(lists[i]->head);
    }
    for (size_t i = 0; i < c->n_pool; i++)
        curl_easy_cleanup(c->pool[i]);
    c->n_pool = 0;
    curl_multi_cleanup(c->multi);
    curl_share_cleanup(c->share);
    c->multi = NULL;
    c->share = NULL;
    while (c->socks) {
        struct sockctx *s = c->socks;
        sock_unlink(c, s);
        uv_poll_stop(&s->poll);
        uv_close((uv_handle_t *)&s->poll, on_handle_closed);
    }
    uv_close((uv_handle_t *)&c->curl_timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->backoff_timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->wake_timer, on_handle_closed);
}

static void on_wake(uv_timer_t *t)
{
    (void)t; /* only wakes uv_run(UV_RUN_ONCE) so the caller can check its deadline */
}

/* Run the loop until *remaining reaches 0 or the deadline passes. Returns 0 or
 * CIPC_ETIMEOUT. */
static int run_until(cipc_client *c, const size_t *remaining, long timeout_ms)
{
    cipc_deadline d = cipc_deadline_in(timeout_ms);
    int rc = 0;
    int outer = c->waiting;
    c->waiting = 1;
    while (*remaining > 0) {
        int64_t left = cipc_deadline_remaining_ms(d);
        if (left == 0) {
            rc = CIPC_ETIMEOUT;
            break;
        }
        if (left > 0)
            uv_timer_start(&c->wake_timer, on_wake, (uint64_t)left, 0);
        uv_run(c->uv, UV_RUN_ONCE);
    }
    c->waiting = outer;
    uv_timer_stop(&c->wake_timer);
    return rc;
}

int cipc_client_wait(cipc_client *c, long timeout_ms)
{
    int rc = run_until(c, &c->n_pending, timeout_ms);
    uv_timer_stop(&c->wake_timer);
    return rc;
}

struct gather_item {
    cipc_fetch *f;
    cipc_req *req;
    size_t *remaining;
};

static void on_gathered(cipc_client *c, int rc, cipc_response *resp, void *ud)
{
    struct gather_item *it = ud;
    it->f->rc = rc;
    it->f->resp = resp ? cipc_response_ref(resp) : NULL;
    it->req = NULL;
    (*it->remaining)--;
}

int cipc_client_gather(cipc_client *c, cipc_fetch *fetches, size_t n, long timeout_ms)
{
    struct gather_item *items = calloc(n ? n : 1, sizeof *items);
    if (!items)
        return -ENOMEM;
    size_t remaining = 0;
    int started = 0, first_err = 0;
    for (size_t i = 0; i < n; i++) {
        fetches[i].resp = NULL;
        items[i].f = &fetches[i];
        items[i].remaining = &remaining;
        remaining++;
        int rc =
            cipc_client_request(c, fetches[i].method ? fetches[i].method : "GET", fetches[i].url,
                                fetches[i].opts, on_gathered, &items[i], &items[i].req);
        if (rc < 0) {
            remaining--;
            fetches[i].rc = rc;
            items[i].req = NULL;
            if (!first_err)
                first_err = rc;
        } else {
            started++;
        }
    }
    if (n > 0 && started == 0) {
        free(items);
        return first_err;
    }
    if (run_until(c, &remaining, timeout_ms) < 0) {
        for (size_t i = 0; i < n; i++) {
            if (items[i].req)
                cipc_request_cancel(items[i].req);
        }
    }
    uv_timer_stop(&c->wake_timer);
    free(items);
    int got = 0;
    for (size_t i = 0; i < n; i++)
        got += fetches[i].resp != NULL;
    return got;
}
