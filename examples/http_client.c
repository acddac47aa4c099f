/* examples/http_client.c -- the seed's `requests` snippet in C.
 *
 *     def get_user(user_id):
 *         response = requests.get(f'https://api.example.com/users/{user_id}')
 *         response.raise_for_status()
 *         return response.json()
 *
 *     def create_user(user_data):
 *         response = requests.post('https://api.example.com/users', json=user_data, ...)
 *         response.raise_for_status()
 *         return response.json()
 *
 *     session = requests.Session()
 *     session.headers.update({'Authorization': 'Bearer token'})
 *
 * Usage: http_client [BASE_URL]   (default http://127.0.0.1:8080; the tests point it at a
 * local server that implements GET /users/{id} and POST /users). */
#include <cipc.h>
#include <stdio.h>

/* GET /users/{id}: returns the user as JSON (owned: json_decref), or NULL with the
 * reason printed. */
static json_t *get_user(cipc_session *s, int user_id)
{
    char path[64];
    snprintf(path, sizeof path, "/users/%d", user_id);
    cipc_response *r = NULL;
    json_t *user = NULL;
    if (cipc_get(s, path, NULL, &r) < 0 || cipc_response_raise_for_status(r) < 0 ||
        cipc_response_json(r, &user) < 0)
        fprintf(stderr, "get_user(%d): %s\n", user_id, cipc_session_errmsg(s));
    cipc_response_free(r);
    return user;
}

/* POST /users with a JSON body (Content-Type: application/json is set for us). */
static json_t *create_user(cipc_session *s, json_t *user_data)
{
    cipc_response *r = NULL;
    json_t *user = NULL;
    if (cipc_post_json(s, "/users", user_data, &r) < 0 || cipc_response_raise_for_status(r) < 0 ||
        cipc_response_json(r, &user) < 0)
        fprintf(stderr, "create_user: %s\n", cipc_session_errmsg(s));
    cipc_response_free(r);
    return user;
}

static void print_json(const char *what, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    printf("%s: %s\n", what, text ? text : "(null)");
    free(text);
}

int main(int argc, char **argv)
{
    const char *base = argc > 1 ? argv[1] : "http://127.0.0.1:8080";
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep stdout and stderr lines in order */

    /* session = requests.Session(); with a base URL and a 5 s timeout. */
    cipc_session *s = NULL;
    int rc = cipc_session_new(&(cipc_session_opts){.base_url = base, .timeout_ms = 5000}, &s);
    if (rc < 0) {
        fprintf(stderr, "session: %s\n", cipc_strerror(rc));
        return 1;
    }
    /* session.headers.update({'Authorization': 'Bearer token'}) */
    cipc_session_header(s, "Authorization", "Bearer token");

    int failures = 0;
    json_t *user = get_user(s, 1);
    if (user)
        print_json("get_user(1)", user);
    else
        failures++;
    json_decref(user);

    json_t *data = json_pack("{s:s, s:s}", "name", "Ada Lovelace", "email", "ada@example.com");
    json_t *created = create_user(s, data);
    if (created)
        print_json("create_user", created);
    else
        failures++;
    json_decref(created);
    json_decref(data);

    /* A missing user: raise_for_status turns the 404 into an error that reads like
     * requests' HTTPError. */
    json_t *missing = get_user(s, 404);
    if (missing) {
        failures++;
        json_decref(missing);
    }

    cipc_session_free(s);
    return failures ? 1 : 0;
}
