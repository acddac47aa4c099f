/* The hub's counters: GET /v1/stats (and the dashboard's stats frames) and GET /metrics
 * in Prometheus's text format. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cipc/time.h"
#include "hub/internal.h"

/* Upper bounds of the REST latency histogram, in seconds (Prometheus's le labels). */
static const double bounds[12] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                  0.005,   0.01,   0.025,   0.05,   0.1,   1.0};

void cipc__hub_observe_latency(cipc_hub *h, int64_t ns)
{
    double s = (double)ns / 1e9;
    for (size_t i = 0; i < 12; i++)
        if (s <= bounds[i]) {
            h->lat_buckets[i]++;
            break;
        }
    h->lat_sum += s;
    h->lat_count++;
}

static size_t resp_clients(cipc_hub *h)
{
    return h->broker ? cipc_broker_clients(h->broker) : 0;
}

json_t *cipc__hub_stats_json(cipc_hub *h, json_t *queues)
{
    json_t *j = json_pack(
        "{s:I,s:s,s:I,s:I,s:{s:I,s:I,s:I},s:{s:I,s:I,s:I},s:{s:I,s:I,s:I},s:o,s:o}", "uptime_s",
        (json_int_t)((cipc_now_ms() - h->start_ms) / 1000), "mode",
        h->redis_url ? "redis" : "local", "http_requests", (json_int_t)h->http_requests,
        "long_polls", (json_int_t)h->pops.n,
        "connections", "ws", (json_int_t)h->nconns, "sse", (json_int_t)h->nsse, "resp",
        (json_int_t)resp_clients(h), "messages_in", "rest", (json_int_t)h->in[TR_REST], "ws",
        (json_int_t)h->in[TR_WS], "resp", (json_int_t)h->in[TR_RESP], "messages_out", "ws",
        (json_int_t)h->out[TR_WS], "sse", (json_int_t)h->out[TR_SSE], "resp",
        (json_int_t)h->out[TR_RESP], "channels", cipc__hub_channels_json(h), "queues",
        queues ? queues : json_array());
    return j;
}

static void line(cipc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(cipc_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        cipc_buf_append(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A label value: Prometheus escapes backslash, double quote and newline. */
static void label(cipc_buf *b, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\' || s[i] == '"')
            cipc_buf_append(b, "\\", 1);
        if (s[i] == '\n')
            cipc_buf_append(b, "\\n", 2);
        else
            cipc_buf_append(b, s + i, 1);
    }
}

void cipc__hub_metrics(cipc_hub *h, json_t *queues, cipc_buf *b)
{
    static const char *const tr[TR_N] = {"rest", "ws", "resp", "sse"};
    line(b, "# HELP cipc_hub_uptime_seconds Seconds since the hub started.\n"
            "# TYPE cipc_hub_uptime_seconds gauge\ncipc_hub_uptime_seconds %" PRId64 "\n",
         (cipc_now_ms() - h->start_ms) / 1000);
    line(b, "# HELP cipc_hub_connections Open connections per transport.\n"
            "# TYPE cipc_hub_connections gauge\n");
    line(b, "cipc_hub_connections{transport=\"ws\"} %zu\n", h->nconns);
    line(b, "cipc_hub_connections{transport=\"sse\"} %zu\n", h->nsse);
    line(b, "cipc_hub_connections{transport=\"resp\"} %zu\n", resp_clients(h));
    line(b, "# HELP cipc_hub_long_polls Queue pops and reservations waiting for an item.\n"
            "# TYPE cipc_hub_long_polls gauge\ncipc_hub_long_polls %zu\n", h->pops.n);
    line(b, "# HELP cipc_hub_http_requests_total HTTP requests served.\n"
            "# TYPE cipc_hub_http_requests_total counter\ncipc_hub_http_requests_total %" PRIu64 "\n",
         h->http_requests);
    line(b, "# HELP cipc_hub_messages_in_total Messages published, per transport.\n"
            "# TYPE cipc_hub_messages_in_total counter\n");
    for (int i = 0; i < TR_N; i++)
        if (i != TR_SSE)
            line(b, "cipc_hub_messages_in_total{transport=\"%s\"} %" PRIu64 "\n", tr[i], h->in[i]);
    line(b, "# HELP cipc_hub_messages_out_total Messages delivered, per transport.\n"
            "# TYPE cipc_hub_messages_out_total counter\n");
    for (int i = 0; i < TR_N; i++)
        if (i != TR_REST)
            line(b, "cipc_hub_messages_out_total{transport=\"%s\"} %" PRIu64 "\n", tr[i], h->out[i]);
    line(b, "# HELP cipc_hub_gaps_total Gap notices sent to resuming clients.\n"
            "# TYPE cipc_hub_gaps_total counter\ncipc_hub_gaps_total %" PRIu64 "\n", h->gaps);
    line(b, "# HELP cipc_hub_rate_limited_total WebSocket connections closed for flooding.\n"
            "# TYPE cipc_hub_rate_limited_total counter\ncipc_hub_rate_limited_total %" PRIu64 "\n",
         h->rate_kills);
    line(b, "# HELP cipc_hub_channel_seq The last sequence number of each channel.\n"
            "# TYPE cipc_hub_channel_seq counter\n");
    size_t bk = 0;
    dict_entry *e = NULL;
    while (cipc__dict_next(&h->chans, &bk, &e)) {
        hub_chan *c = e->val;
        cipc_buf_append_str(b, "cipc_hub_channel_seq{channel=\"");
        label(b, c->name, c->nlen);
        line(b, "\"} %" PRIu64 "\n", c->seq);
    }
    line(b, "# HELP cipc_hub_queue_depth Items waiting in each queue.\n"
            "# TYPE cipc_hub_queue_depth gauge\n");
    size_t i;
    json_t *q;
    json_array_foreach(queues, i, q)
    {
        const char *name = json_string_value(json_object_get(q, "name"));
        if (!name)
            continue;
        cipc_buf_append_str(b, "cipc_hub_queue_depth{queue=\"");
        label(b, name, strlen(name));
        line(b, "\"} %" JSON_INTEGER_FORMAT "\n", json_integer_value(json_object_get(q, "length")));
    }
    line(b, "# HELP cipc_hub_request_duration_seconds REST handling time (long-polls and SSE "
            "excluded).\n# TYPE cipc_hub_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t k = 0; k < 12; k++) {
        cum += h->lat_buckets[k];
        line(b, "cipc_hub_request_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n", bounds[k], cum);
    }
    line(b, "cipc_hub_request_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", h->lat_count);
    line(b, "cipc_hub_request_duration_seconds_sum %.9f\n", h->lat_sum);
    line(b, "cipc_hub_request_duration_seconds_count %" PRIu64 "\n", h->lat_count);
}
