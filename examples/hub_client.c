/* Talking to the hub (`cipc serve`) from C over all three of its doors: a WebSocket
 * subscriber on the JSON endpoint receives what a REST client and a Redis-protocol client
 * publish, each message numbered by the hub.
 *
 * Usage: hub_client HTTP_PORT RESP_PORT       (the hub on 127.0.0.1: `make run` uses 7380
 *                                              and 7379)
 *
 * Prints, for example:
 *     subscribed to news at seq 0
 *     REST publish reached 1 subscriber(s)
 *     #1 from REST
 *     #2 from RESP
 * Exits 0 when both messages arrived, 1 otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cipc.h>

/* Wait for the next JSON frame; returns it (json_decref) or NULL after 5 s. */
static json_t *next_frame(cipc_wsc *ws)
{
    cipc_ws_msg m;
    if (cipc_wsc_recv(ws, &m, 5000) < 0)
        return NULL;
    return json_loadb(m.data, m.len, 0, NULL);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: hub_client HTTP_PORT RESP_PORT\n");
        return 2;
    }
    char url[128];
    int ok = 0;

    /* 1. subscribe over WebSocket (docs/hub.md: the /v1/ws JSON protocol) */
    snprintf(url, sizeof url, "ws://127.0.0.1:%s/v1/ws", argv[1]);
    cipc_wsc *ws = NULL;
    if (cipc_wsc_connect(url, NULL, NULL, &ws) < 0) {
        fprintf(stderr, "connect %s: %s\n", url, ws ? cipc_wsc_errmsg(ws) : "out of memory");
        cipc_wsc_free(ws);
        return 1;
    }
    cipc_wsc_send_text(ws, "{\"op\":\"subscribe\",\"channel\":\"news\"}");
    json_t *f = next_frame(ws);
    printf("subscribed to news at seq %lld\n",
           (long long)json_integer_value(json_object_get(f, "seq")));
    json_decref(f);

    /* 2. publish over REST, as `requests.post(url, json={"data": ...})` would */
    snprintf(url, sizeof url, "http://127.0.0.1:%s", argv[1]);
    cipc_session *s = NULL;
    cipc_session_new(&(cipc_session_opts){.base_url = url}, &s);
    cipc_response *r = NULL;
    json_t *body = json_pack("{s:s}", "data", "from REST");
    json_t *reply = NULL;
    if (cipc_post_json(s, "/v1/channels/news/messages", body, &r) == 0 &&
        cipc_response_json(r, &reply) == 0)
        printf("REST publish reached %lld subscriber(s)\n",
               (long long)json_integer_value(json_object_get(reply, "receivers")));
    json_decref(reply);
    json_decref(body);
    cipc_response_free(r);
    cipc_session_free(s);

    /* 3. publish over the Redis protocol, as redis-py's r.publish() would */
    snprintf(url, sizeof url, "redis://127.0.0.1:%s", argv[2]);
    cipc_bus *bus = NULL;
    if (cipc_bus_connect(url, NULL, &bus) == 0)
        cipc_bus_publish(bus, "news", "from RESP", 9);
    cipc_bus_free(bus);

    /* 4. both arrive on the WebSocket, in order, numbered */
    for (int i = 0; i < 2 && (f = next_frame(ws)); i++) {
        const char *type = json_string_value(json_object_get(f, "type"));
        if (type && !strcmp(type, "message")) {
            printf("#%lld %s\n", (long long)json_integer_value(json_object_get(f, "seq")),
                   json_string_value(json_object_get(f, "data")));
            ok++;
        }
        json_decref(f);
    }
    cipc_wsc_close(ws, 1000, "bye");
    cipc_wsc_free(ws);
    return ok == 2 ? 0 : 1;
}
