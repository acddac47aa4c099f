/* Proves connection pooling and thread-safety against a real peer that counts accepted
 * TCP connections: 100 sequential GETs on one session use exactly 1 connection (also
 * over POSTs with bodies and after a 404); 4 threads, each with its own session, run
 * 50 requests at once and all succeed with the right bodies; 2 threads each running
 * their own loop and async client gather at once. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "cipc/http_client.h"
#include "cipc/loop.h"
#include "peer.h"

static peer P;

static cipc_session *new_session(void)
{
    cipc_session_opts o = {.size = sizeof o, .base_url = P.base_url};
    cipc_session *s = NULL;
    CHECK_RC(cipc_session_new(&o, &s), 0, "cipc_session_new");
    return s;
}

/* Zero the peer's connection count from a session of its own (whose connection was
 * accepted before the reset, so it is not counted afterwards). */
static void reset_connections(void)
{
    cipc_session *s = new_session();
    cipc_response *r = NULL;
    CHECK_RC(cipc_post(s, "/connections/reset", NULL, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_status(r), ==, 200);
    cipc_response_free(r);
    cipc_session_free(s);
}

static void test_pooling(void)
{
    reset_connections();
    cipc_session *s = new_session();
    char url[64];
    for (int i = 0; i < 100; i++) {
        snprintf(url, sizeof url, "/users/%d", i);
        json_t *j = peer_get_json(s, url, 200);
        CHECK_INT(peer_jint(j, "id"), ==, i);
        json_decref(j);
    }
    /* This request rides the same connection: the count is of new accepts. */
    CHECK_INT(peer_get_int(s, "/connections", "connections"), ==, 1);

    /* POSTs with bodies, other methods and error statuses keep the connection too. */
    json_t *body = json_pack("{s:s}", "k", "v");
    cipc_request_opts o = {.size = sizeof o, .json = body};
    for (int i = 0; i < 20; i++) {
        cipc_response *r = NULL;
        CHECK_RC(cipc_request(s, i % 2 ? "PUT" : "POST", "/echo", &o, &r), 0,
                 cipc_session_errmsg(s));
        cipc_response_free(r);
        CHECK_RC(cipc_get(s, "/status/404", NULL, &r), 0, cipc_session_errmsg(s));
        cipc_response_free(r);
    }
    json_decref(body);
    CHECK_INT(peer_get_int(s, "/connections", "connections"), ==, 1);
    cipc_session_free(s);
}

struct worker {
    int id;
    int ok;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    cipc_session *s = new_session();
    char url[64], tag[32];
    snprintf(tag, sizeof tag, "thread-%d", w->id);
    CHECK_RC(cipc_session_header(s, "X-Thread", tag), 0, "");
    for (int i = 0; i < 50; i++) {
        int id = w->id * 1000 + i;
        if (i % 2 == 0) {
            snprintf(url, sizeof url, "/users/%d", id);
            json_t *j = peer_get_json(s, url, 200);
            CHECK_INT(peer_jint(j, "id"), ==, id);
            json_decref(j);
        } else {
            json_t *body = json_pack("{s:i}", "id", id);
            cipc_request_opts o = {.size = sizeof o, .json = body};
            cipc_response *r = NULL;
            CHECK_RC(cipc_post(s, "/echo", &o, &r), 0, cipc_session_errmsg(s));
            json_t *j = peer_json(r);
            CHECK_INT(peer_jint(j, "json.id"), ==, id);
            CHECK_STR(peer_jstr(j, "headers.x-thread"), tag);
            json_decref(j);
            cipc_response_free(r);
            json_decref(body);
        }
        w->ok++;
    }
    cipc_session_free(s);
    return NULL;
}

static void test_threads(void)
{
    enum { T = 4 };
    pthread_t th[T];
    struct worker w[T];
    for (int i = 0; i < T; i++) {
        w[i] = (struct worker){.id = i + 1};
        CHECK(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0);
    }
    for (int i = 0; i < T; i++) {
        CHECK(pthread_join(th[i], NULL) == 0);
        CHECK_INT(w[i].ok, ==, 50);
    }
}

struct async_worker {
    int id;
    int got;
};

static void *async_main(void *arg)
{
    enum { N = 100 };
    struct async_worker *w = arg;
    cipc_loop *loop = NULL;
    CHECK_RC(cipc_loop_new(NULL, &loop), 0, "");
    cipc_session_opts o = {.size = sizeof o, .base_url = P.base_url, .max_concurrency = 8};
    cipc_client *c = NULL;
    CHECK_RC(cipc_client_new(loop, &o, &c), 0, "");
    static char urls[2][N][32];
    cipc_fetch f[N];
    for (int i = 0; i < N; i++) {
        snprintf(urls[w->id][i], sizeof urls[w->id][i], "/users/%d", w->id * 1000 + i);
        f[i] = (cipc_fetch){.url = urls[w->id][i]};
    }
    w->got = cipc_client_gather(c, f, N, 60000);
    for (int i = 0; i < N; i++) {
        CHECK_RC(f[i].rc, 0, cipc_client_errmsg(c));
        json_t *j = peer_json(f[i].resp);
        CHECK_INT(peer_jint(j, "id"), ==, w->id * 1000 + i);
        json_decref(j);
        cipc_response_free(f[i].resp);
    }
    cipc_client_close(c);
    CHECK_RC(cipc_loop_free(loop), 0, "");
    return NULL;
}

static void test_async_threads(void)
{
    pthread_t th[2];
    struct async_worker w[2] = {{.id = 0}, {.id = 1}};
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&th[i], NULL, async_main, &w[i]) == 0);
    for (int i = 0; i < 2; i++) {
        CHECK(pthread_join(th[i], NULL) == 0);
        CHECK_INT(w[i].got, ==, 100);
    }
}

int main(void)
{
    peer_clear_proxy_env();
    CHECK(peer_start(&P) == 0);
    test_threads(); /* first: the sessions are created in threads, concurrently */
    test_pooling();
    test_async_threads();
    peer_stop(&P);
    return 0;
}
