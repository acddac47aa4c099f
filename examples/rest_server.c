/* examples/rest_server.c -- the server side of the seed's REST API: the users service
 * that `requests.get(f'.../users/{user_id}')` and `requests.post('.../users', json=...)`
 * talk to.
 *
 *   GET  /users/{id}  -> 200 {"id": N, "name": ...} or 404 {"error": "user N not found"}
 *   POST /users       -> 201 with the created user (a JSON object with a "name"),
 *                        400 {"error": ...} for a body that is not such an object
 *
 * The users live in memory. This example runs one worker, so the handlers need no
 * locking (with workers > 1 they would run on several threads at once).
 *
 * Usage: rest_server [--port N]   (default 8080; 0 picks a free port and prints it) */
#include <cipc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_USERS 1024

struct store {
    json_t *users[MAX_USERS]; /* users[id - 1] */
    int count;
};

static void reply_error(cipc_http_req *req, int status, const char *msg)
{
    json_t *e = json_pack("{s:s}", "error", msg);
    cipc_http_respond_json(req, status, e);
    json_decref(e);
}

/* GET /users/{id} */
static void get_user(cipc_http_req *req, void *ud)
{
    struct store *st = ud;
    const char *id = cipc_http_param(req, "id");
    char *end;
    long n = strtol(id, &end, 10);
    if (*end || n < 1 || n > st->count) {
        char msg[96];
        snprintf(msg, sizeof msg, "user %.40s not found", id);
        reply_error(req, 404, msg);
        return;
    }
    cipc_http_respond_json(req, 200, st->users[n - 1]);
}

/* POST /users */
static void create_user(cipc_http_req *req, void *ud)
{
    struct store *st = ud;
    json_t *body = NULL;
    const char *why = NULL;
    if (cipc_http_json(req, &body, &why) < 0) {
        reply_error(req, 400, why);
        return;
    }
    if (!json_is_object(body) || !json_is_string(json_object_get(body, "name"))) {
        json_decref(body);
        reply_error(req, 400, "expected a JSON object with a \"name\" string");
        return;
    }
    if (st->count == MAX_USERS) {
        json_decref(body);
        reply_error(req, 507, "the user store is full");
        return;
    }
    json_object_set_new(body, "id", json_integer(st->count + 1));
    st->users[st->count++] = body;
    cipc_http_respond_json(req, 201, body);
}

static void on_ready(cipc_server *srv, void *ud)
{
    (void)ud;
    printf("PORT %d\n", cipc_server_port(srv));
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int port = 8080;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
    }
    static struct store st;
    /* Two users to start with, so GET works before any POST. */
    st.users[st.count++] = json_pack("{s:i, s:s}", "id", 1, "name", "Ada Lovelace");
    st.users[st.count++] = json_pack("{s:i, s:s}", "id", 2, "name", "Grace Hopper");

    cipc_server *srv = NULL;
    int rc = cipc_server_new(
        &(cipc_server_opts){.port = port, .workers = 1, .on_ready = on_ready}, &srv);
    if (rc < 0) {
        fprintf(stderr, "rest_server: %s\n", cipc_strerror(rc));
        return 1;
    }
    cipc_route(srv, "GET", "/users/{id}", get_user, &st);
    cipc_route(srv, "POST", "/users", create_user, &st);
    rc = cipc_server_run(srv); /* until SIGINT or SIGTERM */
    if (rc < 0)
        fprintf(stderr, "rest_server: %s\n", cipc_server_errmsg(srv));
    cipc_server_free(srv);
    for (int i = 0; i < st.count; i++)
        json_decref(st.users[i]);
    return rc < 0 ? 1 : 0;
}
