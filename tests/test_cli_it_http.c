/* tests/test_cli_it_http.c -- `cipc get|post|put|patch|delete|request` against the aiohttp
 * peer (tests/peers/http_server.py, whose /echo returns the request it got): httpie's
 * request items (key=value, key:=json, Name:value, key==value, escapes, =@file), a JSON
 * or stdin body, URL shorthand, output exactly as received when piped and indented +
 * coloured with --pretty, --check-status exit codes (3, 4, 5, and 0 without it), no
 * response (refused, --timeout against a server that never answers: exit 1 with one
 * line), --retries, --follow, bad usage (exit 2) and --help on every subcommand. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "cipc/http_client.h" /* before peer.h: its JSON helpers */
#include "cli_helper.h"

static peer P;
static cli_out R;

static const char *url_of(const char *path)
{
    static char buf[8][512];
    static int i;
    i = (i + 1) % 8;
    return peer_url(&P, path, buf[i], sizeof buf[i]);
}

/* stdout as JSON (must parse). Returns owned. */
static json_t *out_json(void)
{
    json_error_t e;
    json_t *j = json_loads(R.out, 0, &e);
    if (!j)
        fprintf(stderr, "not JSON (%s): %s\n", e.text, R.out);
    CHECK(j != NULL);
    return j;
}

/* `s` without ANSI colour sequences (ESC [ ... m), into a static buffer. */
static const char *strip_ansi(const char *s)
{
    static char buf[65536];
    size_t n = 0;
    while (*s && n + 1 < sizeof buf) {
        if (s[0] == '\033' && s[1] == '[') {
            s += 2;
            while (*s && *s != 'm')
                s++;
            if (*s)
                s++;
            continue;
        }
        buf[n++] = *s++;
    }
    buf[n] = '\0';
    return buf;
}

static void test_help(void)
{
    static const char *const cmds[] = {"get", "post", "put", "patch", "delete", "request"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        CHECK_INT(cli_run(&R, NULL, 10000, cmds[i], "--help", NULL), ==, 0);
        CHECK(strstr(R.out, "usage: cipc get|post|put|patch|delete URL") != NULL);
        CHECK(strstr(R.out, "--timeout SECONDS") != NULL);
        CHECK(strstr(R.out, "--check-status") != NULL);
        CHECK_STR(R.err, "");
    }
    CHECK_INT(cli_run(&R, NULL, 10000, "request", "PUT", "-h", NULL), ==, 0);
    CHECK(strstr(R.out, "usage:") != NULL);
}

static void test_items(void)
{
    /* Data fields, raw JSON fields, headers, query parameters: one request. */
    CHECK_INT(cli_run(&R, NULL, 10000, "post", url_of("/echo"), "name=Ada", "age:=36",
                      "admin:=true", "tags:=[\"x\", 1]", "nothing:=null", "X-Api:secret",
                      "q==a b&c", "q==2", "-H", "X-Two: 2", "a\\:b=c", NULL),
              ==, 0);
    json_t *j = out_json();
    CHECK_STR(peer_jstr(j, "method"), "POST");
    CHECK_STR(peer_jstr(j, "json.name"), "Ada");
    CHECK_INT(peer_jint(j, "json.age"), ==, 36);
    CHECK(json_is_true(peer_jget(j, "json.admin")));
    CHECK(json_is_null(peer_jget(j, "json.nothing")));
    CHECK_STR(json_string_value(json_array_get(peer_jget(j, "json.tags"), 0)), "x");
    CHECK_INT(json_integer_value(json_array_get(peer_jget(j, "json.tags"), 1)), ==, 1);
    CHECK_STR(peer_jstr(j, "json.a:b"), "c"); /* a backslash escapes a separator */
    CHECK_STR(peer_jstr(j, "headers.x-api"), "secret");
    CHECK_STR(peer_jstr(j, "headers.x-two"), "2");
    CHECK_STR(peer_jstr(j, "headers.content-type"), "application/json");
    CHECK(strstr(peer_jstr(j, "headers.accept"), "application/json") != NULL);
    json_t *q = peer_jget(j, "query.q");
    CHECK_INT(json_array_size(q), ==, 2);
    CHECK_STR(json_string_value(json_array_get(q, 0)), "a b&c");
    CHECK_STR(json_string_value(json_array_get(q, 1)), "2");
    CHECK(strstr(peer_jstr(j, "url"), "q=a+b%26c") || strstr(peer_jstr(j, "url"), "q=a%20b%26c"));
    json_decref(j);

    /* The method follows the subcommand; a header item alone sends no body. */
    static const char *const cmds[][2] = {
        {"get", "GET"}, {"put", "PUT"}, {"patch", "PATCH"}, {"delete", "DELETE"}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        CHECK_INT(cli_run(&R, NULL, 10000, cmds[i][0], url_of("/echo"), "k=v", "X-M:1", NULL), ==,
                  0);
        j = out_json();
        CHECK_STR(peer_jstr(j, "method"), cmds[i][1]);
        CHECK_STR(peer_jstr(j, "json.k"), "v");
        CHECK_STR(peer_jstr(j, "headers.x-m"), "1");
        json_decref(j);
    }
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/echo"), "X-Only:yes", "p==1", NULL), ==, 0);
    j = out_json();
    CHECK_STR(peer_jstr(j, "body"), "");
    CHECK(peer_jget(j, "headers.content-type") == NULL);
    CHECK_STR(json_string_value(json_array_get(peer_jget(j, "query.p"), 0)), "1");
    json_decref(j);

    /* A -H Content-Type wins over ours and is sent once. */
    CHECK_INT(cli_run(&R, NULL, 10000, "post", url_of("/echo"), "a=1", "-H",
                      "Content-Type: application/vnd.x+json", NULL),
              ==, 0);
    j = out_json();
    CHECK_STR(peer_jstr(j, "headers.content-type"), "application/vnd.x+json");
    CHECK_STR(peer_jstr(j, "body"), "{\"a\":\"1\"}");
    json_decref(j);

    /* key=@file and key:=@file. */
    char path[128];
    snprintf(path, sizeof path, "/tmp/cipc_cli_http_%d.json", (int)getpid());
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs("{\"deep\": [1, 2]}", f);
    fclose(f);
    char a1[256], a2[256];
    snprintf(a1, sizeof a1, "text=@%s", path);
    snprintf(a2, sizeof a2, "obj:=@%s", path);
    CHECK_INT(cli_run(&R, NULL, 10000, "post", url_of("/echo"), a1, a2, NULL), ==, 0);
    j = out_json();
    CHECK_STR(peer_jstr(j, "json.text"), "{\"deep\": [1, 2]}");
    CHECK_INT(json_array_size(peer_jget(j, "json.obj.deep")), ==, 2);
    json_decref(j);
    unlink(path);
}

static void test_bodies(void)
{
    /* One JSON argument: sent as given. */
    CHECK_INT(cli_run(&R, NULL, 10000, "post", url_of("/echo"), "{\"n\": [1, 2.50]}", NULL), ==, 0);
    json_t *j = out_json();
    CHECK_STR(peer_jstr(j, "body"), "{\"n\": [1, 2.50]}");
    CHECK_STR(peer_jstr(j, "headers.content-type"), "application/json");
    json_decref(j);
    /* "-": stdin. */
    CHECK_INT(cli_run(&R, "[true, {\"s\": \"x\"}]\n", 10000, "put", url_of("/echo"), "-", NULL), ==,
              0);
    j = out_json();
    CHECK_STR(peer_jstr(j, "method"), "PUT");
    CHECK_STR(peer_jstr(j, "body"), "[true, {\"s\": \"x\"}]\n");
    json_decref(j);
    /* cipc request: any method, a text body that is not JSON goes as text/plain. */
    CHECK_INT(cli_run(&R, NULL, 10000, "request", "OPTIONS", url_of("/echo"), "plain words", NULL),
              ==, 0);
    j = out_json();
    CHECK_STR(peer_jstr(j, "method"), "OPTIONS");
    CHECK_STR(peer_jstr(j, "body"), "plain words");
    CHECK(strncmp(peer_jstr(j, "headers.content-type"), "text/plain", 10) == 0);
    json_decref(j);
}

static void test_shorthand(void)
{
    char u[128];
    snprintf(u, sizeof u, ":%d/users/7", P.port); /* http://localhost:PORT/users/7 */
    CHECK_INT(cli_run(&R, NULL, 10000, "get", u, NULL), ==, 0);
    CHECK_STR(R.out, "{\"id\": 7, \"name\": \"user7\"}");
    snprintf(u, sizeof u, "127.0.0.1:%d/users/8", P.port); /* no scheme: http:// */
    CHECK_INT(cli_run(&R, NULL, 10000, "get", u, NULL), ==, 0);
    CHECK_STR(R.out, "{\"id\": 8, \"name\": \"user8\"}");
}

static void test_output(void)
{
    /* Piped: the body exactly as received (no newline added, no colour). */
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/users/7"), NULL), ==, 0);
    CHECK_STR(R.out, "{\"id\": 7, \"name\": \"user7\"}");
    /* --pretty=format: jansson's JSON_INDENT(2) layout. */
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/users/7"), "--pretty=format", NULL), ==, 0);
    CHECK_STR(R.out, "{\n  \"id\": 7,\n  \"name\": \"user7\"\n}\n");
    /* --pretty=all: the same text, coloured: keys, strings, numbers, literals apart. */
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/users/7"), "--pretty", "all", NULL), ==, 0);
    CHECK_STR(strip_ansi(R.out), "{\n  \"id\": 7,\n  \"name\": \"user7\"\n}\n");
    CHECK_STR(R.out, "{\n  \033[1;34m\"id\"\033[0m: \033[36m7\033[0m,\n"
                     "  \033[1;34m\"name\"\033[0m: \033[33m\"user7\"\033[0m\n}\n");
    CHECK_INT(cli_run(&R, NULL, 10000, "post", url_of("/echo"), "t:=true", "--pretty=all", NULL),
              ==, 0);
    CHECK(strstr(R.out, "\033[35mtrue\033[0m") != NULL);     /* literals */
    CHECK(strstr(R.out, "\033[33m\"POST\"\033[0m") != NULL); /* strings */
    CHECK(strstr(R.out, "\n  \033[1;34m\"json\"\033[0m: {\n    \033[1;34m\"t\"") != NULL);
    CHECK(strstr(R.out, "\033[1;34m\"form\"\033[0m: {}") != NULL); /* empty object */
    json_t *j = json_loads(strip_ansi(R.out), 0, NULL);
    CHECK(j != NULL);
    CHECK(json_is_true(peer_jget(j, "json.t")));
    json_decref(j);
    /* --pretty=colors: coloured, not re-indented. */
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/users/7"), "--pretty=colors", NULL), ==, 0);
    CHECK_STR(strip_ansi(R.out), "{\"id\": 7, \"name\": \"user7\"}");
    CHECK(strstr(R.out, "\033[36m7\033[0m") != NULL);
    /* Not JSON: as is, even with --pretty=all. */
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/html"), "--pretty=all", NULL), ==, 0);
    CHECK(strstr(R.out, "<html") != NULL || strstr(R.out, "<!") != NULL);
    CHECK(strchr(R.out, '\033') == NULL);
    /* Invalid JSON with a JSON Content-Type: as is. */
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/badjson"), "--pretty=all", NULL), ==, 0);
    CHECK_STR(R.out, "{\"a\": 1,");
    /* On a terminal the default is --pretty=all. */
    cli_pty p;
    const char *args[] = {"get", url_of("/users/7"), NULL};
    cli_pty_start(&p, args);
    CHECK(cli_pty_wait_for(&p, "\033[1;34m\"name\"\033[0m: \033[33m\"user7\"\033[0m\r\n}", 10000));
    CHECK_INT(cli_pty_wait_exit(&p, 10000), ==, 0);
    CHECK(strstr(p.seen, "{\r\n  \033[1;34m\"id\"\033[0m: \033[36m7\033[0m,\r\n") != NULL);
    /* -i: status line and headers first. */
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/users/7"), "-i", NULL), ==, 0);
    CHECK(strncmp(R.out, "200 OK\n", 7) == 0);
    CHECK(peer_contains_ci(R.out, "\ncontent-type: application/json"));
    const char *sep = strstr(R.out, "\n\n");
    CHECK(sep != NULL);
    CHECK_STR(sep + 2, "{\"id\": 7, \"name\": \"user7\"}");
}

static void test_check_status(void)
{
    /* Without --check-status any response is exit 0 (httpie), with nothing on stderr. */
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/status/404"), NULL), ==, 0);
    CHECK_STR(R.err, "");
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/status/503"), NULL), ==, 0);
    /* With it: 4 and 5, one warning line. */
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/status/404"), "--check-status", NULL), ==,
              4);
    CHECK_STR(R.err, "cipc: HTTP 404 Not Found\n");
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/status/503"), "--check-status", NULL), ==,
              5);
    CHECK_STR(R.err, "cipc: HTTP 503 Service Unavailable\n");
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/users/7"), "--check-status", NULL), ==, 0);
    CHECK_STR(R.err, "");
    /* Redirects are not followed by default: 3 with --check-status; --follow follows. */
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/redirect/2"), "--check-status", NULL), ==,
              3);
    CHECK_STR(R.err, "cipc: HTTP 302 Found\n");
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/redirect/2"), NULL), ==, 0);
    CHECK_INT(
        cli_run(&R, NULL, 10000, "get", url_of("/redirect/2"), "--follow", "--check-status", NULL),
        ==, 0);
    CHECK_STR(R.out, "{\"redirected\": true}");
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/redirect/3"), "--follow",
                      "--max-redirects=1", NULL),
              ==, 1);
    CHECK_INT(cli_lines(R.err), ==, 1);
}

static void test_retries(void)
{
    char u[256];
    snprintf(u, sizeof u, "%s/flaky/cli-%d?fail=1&code=503", P.base_url, (int)getpid());
    CHECK_INT(cli_run(&R, NULL, 20000, "get", u, "--retries", "2", "--check-status", NULL), ==, 0);
    json_t *j = out_json();
    CHECK_INT(peer_jint(j, "attempts"), ==, 2);
    json_decref(j);
    snprintf(u, sizeof u, "%s/flaky/cli2-%d?fail=1&code=503", P.base_url, (int)getpid());
    CHECK_INT(cli_run(&R, NULL, 20000, "get", u, "--check-status", NULL), ==, 5);
}

static void test_no_response(void)
{
    /* Refused: exit 1, one line. */
    CHECK_INT(cli_run(&R, NULL, 10000, "get", "http://127.0.0.1:1/", NULL), ==, 1);
    CHECK_INT(cli_lines(R.err), ==, 1);
    CHECK(strstr(R.err, "refused") != NULL);
    CHECK_STR(R.out, "");
    /* A server that accepts (in the kernel) and never answers: --timeout in seconds. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    CHECK(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    CHECK(listen(fd, 16) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
    char u[128];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/never", ntohs(sa.sin_port));
    CHECK_INT(cli_run(&R, NULL, 15000, "get", u, "--timeout", "0.5", NULL), ==, 1);
    CHECK_INT(R.ms, >=, 450);
    CHECK_INT(R.ms, <, 5000);
    CHECK_INT(cli_lines(R.err), ==, 1);
    CHECK(strstr(R.err, "timed out") != NULL);
    close(fd);
}

static void test_bad_usage(void)
{
    CHECK_INT(cli_run(&R, NULL, 10000, "get", NULL), ==, 2);
    CHECK(strstr(R.err, "URL is missing") != NULL && strstr(R.err, "usage:") != NULL);
    CHECK_INT(cli_run(&R, NULL, 10000, "post", url_of("/echo"), "--frobnicate", NULL), ==, 2);
    CHECK(strstr(R.err, "unknown option '--frobnicate'") != NULL);
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/echo"), "--timeout", "soon", NULL), ==, 2);
    CHECK_STR(R.err, "cipc get: --timeout takes a number >= 0, not 'soon'\n");
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/echo"), "--pretty=loud", NULL), ==, 2);
    CHECK_INT(cli_lines(R.err), ==, 1);
    CHECK_INT(cli_run(&R, NULL, 10000, "post", url_of("/echo"), "a=1", "notanitem", NULL), ==, 2);
    CHECK(strstr(R.err, "'notanitem' is not a request item") != NULL);
    CHECK_INT(cli_lines(R.err), ==, 1);
    CHECK_INT(cli_run(&R, NULL, 10000, "post", url_of("/echo"), "n:=nope", NULL), ==, 2);
    CHECK(strstr(R.err, "not JSON") != NULL);
    CHECK_INT(cli_run(&R, NULL, 10000, "post", url_of("/echo"), "{\"a\": ", NULL), ==, 2);
    CHECK(strstr(R.err, "the body is not JSON") != NULL);
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/echo"), "-H", "NoColon", NULL), ==, 2);
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/echo"), "bad name:x", NULL), ==, 2);
    CHECK_INT(cli_run(&R, NULL, 10000, "request", NULL), ==, 2);
    CHECK_INT(cli_run(&R, NULL, 10000, "get", url_of("/echo"), "--timeout", NULL), ==, 2);
    CHECK_STR(R.out, "");
}

int main(void)
{
    cli_init();
    peer_clear_proxy_env();
    CHECK(peer_start(&P) == 0);
    RUN(test_help);
    RUN(test_items);
    RUN(test_bodies);
    RUN(test_shorthand);
    RUN(test_output);
    RUN(test_check_status);
    RUN(test_retries);
    RUN(test_no_response);
    RUN(test_bad_usage);
    peer_stop(&P);
    printf("test_cli_it_http: ok\n");
    return 0;
}
