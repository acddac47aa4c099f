/* The hub (cipc/hub.h): options, start, the bridge hooks, the once-a-second tick, and the
 * graceful shutdown. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cipc/bus.h"
#include "cipc/log.h"
#include "cipc/time.h"
#include "hub/internal.h"

#define LOG_MODULE "hub"

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int is_loopback(const char *host)
{
    return !strcmp(host, "127.0.0.1") || !strcmp(host, "::1") || !strncmp(host, "127.", 4) ||
           !strcmp(host, "localhost");
}

int cipc_hub_new(const cipc_hub_opts *opts, cipc_hub **out)
{
    cipc_hub_opts o = {0};
    if (opts)
        memcpy(&o, opts, opts->size && opts->size < sizeof o ? opts->size : sizeof o);
    if (!out || o.http_port < 0 || o.http_port > 65535 || o.resp_port < -1 ||
        o.resp_port > 65535 || o.tls_port < 0 || o.tls_port > 65535 || !o.tls_cert != !o.tls_key ||
        o.max_wait_s < 0 || o.appendfsync < 0 || o.appendfsync > CIPC_BROKER_FSYNC_NO)
        return -EINVAL;
    const char *host = o.host ? o.host : "127.0.0.1";
    if (!is_loopback(host) && !(o.token && *o.token) && !o.insecure_no_auth) {
        cipc_log(CIPC_LOG_ERROR, LOG_MODULE,
                 "refusing to listen on %s without a token (give --token, or "
                 "--insecure-no-auth to accept anyone who can reach it)", host);
        return -EPERM;
    }
    if (o.redis_url && strncmp(o.redis_url, "redis://", 8) && strncmp(o.redis_url, "rediss://", 9) &&
        strncmp(o.redis_url, "unix://", 7))
        return CIPC_EURL;
    if (!o.replay_count)
        o.replay_count = CIPC_HUB_DEFAULT_REPLAY_COUNT;
    if (!o.replay_bytes)
        o.replay_bytes = CIPC_HUB_DEFAULT_REPLAY_BYTES;
    if (!o.max_message)
        o.max_message = CIPC_HUB_DEFAULT_MAX_MESSAGE;
    if (!o.max_rate)
        o.max_rate = CIPC_HUB_DEFAULT_MAX_RATE;
    if (!o.max_buffered)
        o.max_buffered = CIPC_HUB_DEFAULT_MAX_BUFFERED;
    if (!o.max_wait_s)
        o.max_wait_s = CIPC_HUB_DEFAULT_MAX_WAIT_S;
    if (!o.max_channels)
        o.max_channels = CIPC_HUB_DEFAULT_MAX_CHANNELS;
    if (!o.max_subscriptions)
        o.max_subscriptions = CIPC_HUB_DEFAULT_MAX_SUBSCRIPTIONS;
    cipc_hub *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    h->o = o;
    h->o.size = sizeof o;
    h->host = strdup(host);
    h->token = o.token && *o.token ? strdup(o.token) : NULL;
    const char *pass = o.requirepass ? o.requirepass : o.token;
    h->requirepass = pass && *pass ? strdup(pass) : NULL;
    h->tls_cert = dup_or_null(o.tls_cert);
    h->tls_key = dup_or_null(o.tls_key);
    h->aof_path = dup_or_null(o.aof_path);
    h->redis_url = dup_or_null(o.redis_url);
    h->hub_id = dup_or_null(o.hub_id);
    cipc__dict_init(&h->chans);
    cipc__dict_init(&h->pats);
    cipc__dict_init(&h->leases);
    cipc__dict_init(&h->queues);
    h->scratch = (cipc_buf)CIPC_BUF_INIT;
    if (!h->host || (o.token && *o.token && !h->token) || (pass && *pass && !h->requirepass) ||
        (o.tls_cert && !h->tls_cert) || (o.tls_key && !h->tls_key) ||
        (o.aof_path && !h->aof_path) || (o.redis_url && !h->redis_url) ||
        (o.hub_id && !h->hub_id)) {
        cipc_hub_free(h);
        return -ENOMEM;
    }
    *out = h;
    return 0;
}

/* --- the bridges ------------------------------------------------------------------------ */

/* A RESP client published (local mode): the broker's subscribers have it; the hub's get it
 * here. */
static int on_resp_publish(const void *ch, size_t chlen, const void *msg, size_t len, void *ud)
{
    cipc_hub *h = ud;
    h->in[TR_RESP]++;
    int n = cipc__hub_deliver(h, ch, chlen, msg, len, NULL);
    int r = cipc_broker_numsub(h->broker, ch, chlen);
    if (r > 0)
        h->out[TR_RESP] += (uint64_t)r;
    return n > 0 ? n : 0;
}

/* Redis mode: every message published anywhere comes back here (PSUBSCRIBE *). */
static void on_redis_msg(cipc_bus_sub *s, const cipc_bus_msg *m, void *ud)
{
    (void)s;
    cipc_hub *h = ud;
    if (m->type == CIPC_BUS_PMESSAGE || m->type == CIPC_BUS_MESSAGE)
        cipc__hub_deliver(h, m->channel, m->channel_len, m->data, m->len, NULL);
    else if (m->type == CIPC_BUS_GAP)
        cipc_log(CIPC_LOG_WARN, LOG_MODULE,
                 "reconnected to Redis: messages published meanwhile were not seen");
    else if (m->type == CIPC_BUS_ERROR)
        cipc_log(CIPC_LOG_ERROR, LOG_MODULE, "Redis subscription failed: %s",
                 cipc_strerror(m->err));
}

/* --- shutdown --------------------------------------------------------------------------- */

static void on_closed(uv_handle_t *hd)
{
    (void)hd;
}

static void on_kick(uv_idle_t *k)
{
    uv_idle_stop(k);
}

void cipc__hub_kick(cipc_hub *h)
{
    if (h->started && !uv_is_closing((uv_handle_t *)&h->kick))
        uv_idle_start(&h->kick, on_kick);
}

static void on_drain(uv_timer_t *t)
{
    cipc_hub *h = t->data;
    if (cipc__hub_be_pending(h) && cipc_now_ms() < h->drain_deadline_ms)
        return;
    uv_close((uv_handle_t *)&h->drain, on_closed);
    cipc__hub_be_close_all(h);
    if (h->broker)
        cipc_broker_close(h->broker); /* writes and fsyncs the log */
}

static void begin_stop(cipc_hub *h)
{
    if (h->stopping)
        return;
    h->stopping = 1;
    cipc_log(CIPC_LOG_INFO, LOG_MODULE, "shutting down");
    cipc__hub_pops_cancel(h);
    while (h->sses)
        cipc__hub_sse_close(h->sses, 1);
    if (h->srv)
        cipc_server_stop(h->srv); /* WebSockets get 1001; requests in flight finish */
    uv_close((uv_handle_t *)&h->tick, on_closed);
    /* The signal handlers stay (a second SIGTERM during the shutdown must not kill the
     * process with the default action) but no longer keep the loop running. */
    uv_unref((uv_handle_t *)&h->sigint);
    uv_unref((uv_handle_t *)&h->sigterm);
    uv_unref((uv_handle_t *)&h->kick);
    uv_close((uv_handle_t *)&h->stop_async, on_closed);
    if (h->redis_sub) {
        cipc_bus_sub_close(h->redis_sub, NULL, NULL);
        h->redis_sub = NULL;
    }
    cipc__hub_leases_release(h);
    /* Let the store answer what was sent (the reservations going back, pushes in flight),
     * for up to two seconds, then close it. */
    h->drain_deadline_ms = cipc_now_ms() + 2000;
    uv_timer_init(h->uv, &h->drain);
    h->drain.data = h;
    uv_timer_start(&h->drain, on_drain, 0, 10);
}

static void on_signal(uv_signal_t *s, int signum)
{
    cipc_hub *h = s->data;
    cipc_log(CIPC_LOG_INFO, LOG_MODULE, "%s received", signum == SIGINT ? "SIGINT" : "SIGTERM");
    begin_stop(h);
}

static void on_stop_async(uv_async_t *a)
{
    begin_stop(a->data);
}

void cipc_hub_stop(cipc_hub *h)
{
    if (h && h->started)
        uv_async_send(&h->stop_async);
}

static void on_tick(uv_timer_t *t)
{
    cipc_hub *h = t->data;
    cipc__hub_ws_stats_tick(h);
    cipc__hub_leases_tick(h);
    cipc__hub_sse_tick(h);
}

/* --- start ------------------------------------------------------------------------------ */

static int fail(cipc_hub *h, int rc, const char *fmt, const char *detail)
{
    snprintf(h->errmsg, sizeof h->errmsg, fmt, detail);
    cipc_log(CIPC_LOG_ERROR, LOG_MODULE, "%s", h->errmsg);
    return rc;
}

static int start(cipc_hub *h)
{
    int rc;
    if (!h->redis_url) {
        cipc_broker_opts bo = {
            .size = sizeof bo,
            .host = h->host,
            .port = h->o.resp_port,
            .requirepass = h->requirepass,
            .allow_insecure_remote = h->o.insecure_no_auth,
            .max_bulk = h->o.max_message,
            .aof_path = h->aof_path,
            .appendfsync = h->o.appendfsync,
            .on_publish = on_resp_publish,
            .on_publish_ud = h,
        };
        rc = cipc_broker_new(h->loop, &bo, &h->broker);
        if (rc < 0)
            return fail(h, rc, "cannot start the RESP broker: %s", cipc_strerror(rc));
        h->resp_port = cipc_broker_port(h->broker);
    } else {
        h->resp_port = -1;
        cipc_bus_opts so = {.size = sizeof so, .skip_confirmations = 1};
        rc = cipc_bus_sub_new(h->loop, h->redis_url, &so, on_redis_msg, h, &h->redis_sub);
        if (rc == 0)
            rc = cipc_bus_sub_psubscribe(h->redis_sub, "*");
        if (rc < 0)
            return fail(h, rc, "cannot use the Redis URL: %s", cipc_strerror(rc));
    }
    if ((rc = cipc__hub_be_open(h)) < 0)
        return fail(h, rc, "cannot open the queue store: %s", cipc_strerror(rc));
    cipc_server_opts so = {
        .size = sizeof so,
        .host = h->host,
        .port = h->o.http_port,
        .workers = 1,
        .max_body = h->o.max_message + 64 * 1024, /* room for a JSON wrapping */
        .max_connections = h->o.max_connections,
        .shutdown_timeout_ms = h->o.shutdown_timeout_ms,
        .access_log = h->o.access_log,
        .tls_cert = h->tls_cert,
        .tls_key = h->tls_key,
        .tls_port = h->o.tls_port,
    };
    if ((rc = cipc_server_new(&so, &h->srv)) < 0)
        return fail(h, rc, "cannot create the HTTP server: %s", cipc_strerror(rc));
    if ((rc = cipc__hub_routes(h)) < 0 || (rc = cipc__hub_ws_routes(h)) < 0)
        return fail(h, rc, "cannot add routes: %s", cipc_strerror(rc));
    if ((rc = cipc_server_start(h->srv, h->loop)) < 0)
        return fail(h, rc, "cannot listen for HTTP: %s", *cipc_server_errmsg(h->srv)
                                                             ? cipc_server_errmsg(h->srv)
                                                             : cipc_strerror(rc));
    h->http_port = cipc_server_port(h->srv);
    h->tls_port = cipc_server_tls_port(h->srv);
    if (!h->hub_id) {
        char id[300];
        snprintf(id, sizeof id, "%s:%d", h->host, h->http_port);
        if (!(h->hub_id = strdup(id)))
            return -ENOMEM;
    }
    uv_signal_init(h->uv, &h->sigint);
    uv_signal_init(h->uv, &h->sigterm);
    h->sigint.data = h->sigterm.data = h;
    uv_signal_start(&h->sigint, on_signal, SIGINT);
    uv_signal_start(&h->sigterm, on_signal, SIGTERM);
    uv_async_init(h->uv, &h->stop_async, on_stop_async);
    h->stop_async.data = h;
    uv_idle_init(h->uv, &h->kick);
    uv_timer_init(h->uv, &h->tick);
    h->tick.data = h;
    uv_timer_start(&h->tick, on_tick, 1000, 1000);
    h->started = 1;
    cipc__hub_reclaim(h);
    if (h->resp_port > 0)
        cipc_log(CIPC_LOG_INFO, LOG_MODULE, "HTTP + WebSocket on %s:%d, RESP on %s:%d",
                 h->host, h->http_port, h->host, h->resp_port);
    else
        cipc_log(CIPC_LOG_INFO, LOG_MODULE, "HTTP + WebSocket on %s:%d%s%s", h->host,
                 h->http_port, h->redis_url ? ", channels and queues in " : "",
                 h->redis_url ? h->redis_url : "");
    if (h->o.on_ready)
        h->o.on_ready(h, h->o.on_ready_ud);
    return 0;
}

int cipc_hub_run(cipc_hub *h)
{
    if (!h || h->loop)
        return -EINVAL;
    int rc = cipc_loop_new(NULL, &h->loop);
    if (rc < 0)
        return rc;
    h->uv = cipc_loop_uv(h->loop);
    h->start_ms = cipc_now_ms();
    rc = start(h);
    if (rc < 0) {
        h->stopping = 1;
        cipc__hub_be_close_all(h);
        if (h->srv)
            cipc_server_stop(h->srv);
        if (h->broker)
            cipc_broker_close(h->broker);
        if (h->redis_sub)
            cipc_bus_sub_close(h->redis_sub, NULL, NULL);
        h->redis_sub = NULL;
    }
    cipc_loop_run(h->loop, CIPC_RUN_DEFAULT);
    cipc_server_free(h->srv);
    h->srv = NULL;
    cipc_broker_free(h->broker);
    h->broker = NULL;
    if (h->started) { /* last: from here a SIGTERM has its default effect again */
        uv_close((uv_handle_t *)&h->sigint, on_closed);
        uv_close((uv_handle_t *)&h->sigterm, on_closed);
        uv_close((uv_handle_t *)&h->kick, on_closed);
    }
    cipc_loop_run(h->loop, CIPC_RUN_DEFAULT);
    if (cipc_loop_free(h->loop) == 0)
        h->loop = NULL;
    cipc_log(CIPC_LOG_INFO, LOG_MODULE, "stopped");
    return rc;
}

int cipc_hub_http_port(const cipc_hub *h)
{
    return h ? h->http_port : 0;
}

int cipc_hub_resp_port(const cipc_hub *h)
{
    return h ? h->resp_port : -1;
}

int cipc_hub_tls_port(const cipc_hub *h)
{
    return h ? h->tls_port : 0;
}

const char *cipc_hub_errmsg(const cipc_hub *h)
{
    return h ? h->errmsg : "no hub";
}

void cipc_hub_free(cipc_hub *h)
{
    if (!h)
        return;
    cipc__hub_chans_free(h);
    cipc__hub_leases_free(h);
    cipc__dict_free(&h->queues, NULL);
    cipc__ptrvec_free(&h->pops);
    cipc_buf_free(&h->scratch);
    free(h->host);
    free(h->token);
    free(h->requirepass);
    free(h->tls_cert);
    free(h->tls_key);
    free(h->aof_path);
    free(h->redis_url);
    free(h->hub_id);
    free(h);
}
