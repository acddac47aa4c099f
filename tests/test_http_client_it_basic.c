/* Proves the requests side of the blocking session against a real aiohttp peer: every
 * method, query parameter encoding, JSON/form/raw bodies, uploads from a file (also sent
 * again after a 307 and on a retry), base_url, default and per-request headers, the user
 * agent, the `size` field of option structs, and NULL values in parameters. */
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cipc/http_client.h"
#include "cipc/time.h"
#include "peer.h"

static peer P;

static cipc_session *session_with(cipc_session_opts o)
{
    return peer_session(&P, o);
}

static cipc_session *session_default(void)
{
    return session_with((cipc_session_opts){.size = sizeof(cipc_session_opts)});
}

/* Run a request on /echo (or `url`) and return the echoed JSON (owned). */
static json_t *echo(cipc_session *s, const char *method, const char *url,
                    const cipc_request_opts *o)
{
    cipc_response *r = NULL;
    CHECK_RC(cipc_request(s, method, url ? url : "/echo", o, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_status(r), ==, 200);
    json_t *j = peer_json(r);
    cipc_response_free(r);
    return j;
}

/* The first value of query parameter `key` as the server decoded it. */
static const char *query1(json_t *e, const char *key)
{
    return json_string_value(json_array_get(json_object_get(json_object_get(e, "query"), key), 0));
}
static void test_methods(cipc_session *s)
{
    static const char *const names[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    typedef int (*shorthand)(cipc_session *, const char *, const cipc_request_opts *,
                             cipc_response **);
    static const shorthand fns[] = {cipc_get,   cipc_post,   cipc_put,
                                    cipc_patch, cipc_delete, cipc_options};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        cipc_response *r = NULL;
        CHECK_RC(fns[i](s, "/echo", NULL, &r), 0, cipc_session_errmsg(s));
        CHECK_INT(cipc_response_status(r), ==, 200);
        json_t *j = peer_json(r);
        CHECK_STR(peer_jstr(j, "method"), names[i]);
        CHECK_STR(peer_jstr(j, "path"), "/echo");
        json_decref(j);
        cipc_response_free(r);

        j = echo(s, names[i], NULL, NULL); /* the same through cipc_request() */
        CHECK_STR(peer_jstr(j, "method"), names[i]);
        json_decref(j);
    }
    /* HEAD: the status and headers arrive, the body does not. */
    cipc_response *r = NULL;
    CHECK_RC(cipc_head(s, "/echo", NULL, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_status(r), ==, 200);
    CHECK_STR(cipc_response_header(r, "X-Echo-Method"), "HEAD");
    size_t len = 99;
    cipc_response_body(r, &len);
    CHECK_INT(len, ==, 0);
    cipc_response_free(r);
    /* Any token is a method; something that is not a token is rejected. */
    json_t *j = echo(s, "PURGE", NULL, NULL);
    CHECK_STR(peer_jstr(j, "method"), "PURGE");
    json_decref(j);
    r = (cipc_response *)&r;
    CHECK_RC(cipc_request(s, "GE T", "/echo", NULL, &r), -EINVAL, cipc_session_errmsg(s));
    CHECK(r == NULL);
    CHECK_RC(cipc_request(s, "GET\r\nX-Evil: 1", "/echo", NULL, &r), -EINVAL, "");
    CHECK_RC(cipc_request(s, "", "/echo", NULL, &r), -EINVAL, "");
}

static void test_query(cipc_session *s)
{
    const cipc_kv params[] = {
        {"q", "a b"}, {"amp", "x&y=z"}, {"u", "h\xc3\xa9llo \xe2\x9c\x93"}, {"k", "1"},
        {"k", "2"},   {"empty", ""},    {"a key+", "plus+sign/slash?#"},    {NULL, NULL}};
    cipc_request_opts o = {.size = sizeof o, .params = params};
    json_t *j = echo(s, "GET", NULL, &o);
    CHECK_STR(query1(j, "q"), "a b");
    CHECK_STR(query1(j, "amp"), "x&y=z");
    CHECK_STR(query1(j, "u"), "h\xc3\xa9llo \xe2\x9c\x93");
    json_t *k = peer_jget(j, "query.k");
    CHECK_INT(json_array_size(k), ==, 2);
    CHECK_STR(json_string_value(json_array_get(k, 0)), "1");
    CHECK_STR(json_string_value(json_array_get(k, 1)), "2");
    CHECK_STR(query1(j, "empty"), "");
    CHECK_STR(query1(j, "a key+"), "plus+sign/slash?#");
    CHECK_INT(json_object_size(json_object_get(j, "query")), ==, 6);
    json_decref(j);

    /* Parameters are appended to a query the URL already has, before any fragment. */
    const cipc_kv more[] = {{"x", "1"}, {NULL, NULL}};
    o.params = more;
    j = echo(s, "GET", "/echo?pre=0", &o);
    CHECK_STR(query1(j, "pre"), "0");
    CHECK_STR(query1(j, "x"), "1");
    json_decref(j);
    j = echo(s, "GET", "/echo?pre=0#frag", &o);
    CHECK_STR(query1(j, "pre"), "0");
    CHECK_STR(query1(j, "x"), "1");
    json_decref(j);
    j = echo(s, "GET", "/echo#frag", &o);
    CHECK_STR(query1(j, "x"), "1");
    json_decref(j);
}

static void test_bodies(cipc_session *s)
{
    /* JSON. */
    json_t *body = json_pack("{s:i, s:s}", "x", 1, "s", "\xc3\xa9");
    cipc_request_opts o = {.size = sizeof o, .json = body};
    json_t *j = echo(s, "PUT", NULL, &o);
    CHECK_STR(peer_jstr(j, "method"), "PUT");
    const char *ct = peer_jstr(j, "headers.content-type");
    CHECK(ct && strncmp(ct, "application/json", 16) == 0);
    CHECK_INT(peer_jint(j, "json.x"), ==, 1);
    CHECK_STR(peer_jstr(j, "json.s"), "\xc3\xa9");
    json_decref(j);

    cipc_response *r = NULL;
    CHECK_RC(cipc_post_json(s, "/users", body, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_status(r), ==, 201);
    CHECK_STR(cipc_response_reason(r), "Created");
    j = peer_json(r);
    CHECK_INT(peer_jint(j, "id"), ==, 1);
    CHECK_INT(peer_jint(j, "x"), ==, 1);
    json_decref(j);
    cipc_response_free(r);
    json_decref(body);

    /* The server's 400 for a JSON array is a response, not an error. */
    body = json_pack("[i]", 1);
    CHECK_RC(cipc_post_json(s, "/users", body, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_status(r), ==, 400);
    cipc_response_free(r);
    json_decref(body);

    /* Form. */
    const cipc_kv form[] = {{"a", "1 2"}, {"b", "&="}, {"c", "\xc3\xa9"}, {NULL, NULL}};
    o = (cipc_request_opts){.size = sizeof o, .form = form};
    j = echo(s, "PATCH", NULL, &o);
    CHECK_STR(peer_jstr(j, "method"), "PATCH");
    CHECK_STR(peer_jstr(j, "headers.content-type"), "application/x-www-form-urlencoded");
    CHECK_STR(peer_jstr(j, "form.a"), "1 2");
    CHECK_STR(peer_jstr(j, "form.b"), "&=");
    CHECK_STR(peer_jstr(j, "form.c"), "\xc3\xa9");
    json_decref(j);

    /* Raw bytes, with and without a content type. */
    o = (cipc_request_opts){
        .size = sizeof o, .body = "plain text", .body_len = 10, .content_type = "text/plain"};
    j = echo(s, "POST", NULL, &o);
    CHECK_STR(peer_jstr(j, "body"), "plain text");
    CHECK_STR(peer_jstr(j, "headers.content-type"), "text/plain");
    CHECK_STR(peer_jstr(j, "headers.content-length"), "10");
    json_decref(j);
    o = (cipc_request_opts){.size = sizeof o, .body = "abcdef", .body_len = 3};
    j = echo(s, "POST", NULL, &o);
    CHECK_STR(peer_jstr(j, "body"), "abc");
    CHECK_STR(peer_jstr(j, "headers.content-type"), "application/octet-stream");
    json_decref(j);

    /* Binary with NUL bytes arrives intact (the server hashes it). */
    unsigned char bin[1000];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (unsigned char)(i * 7);
    peer_sha256 h;
    char hex[65];
    peer_sha256_init(&h);
    peer_sha256_update(&h, bin, sizeof bin);
    peer_sha256_hex(&h, hex);
    o = (cipc_request_opts){.size = sizeof o, .body = bin, .body_len = sizeof bin};
    CHECK_RC(cipc_post(s, "/upload", &o, &r), 0, cipc_session_errmsg(s));
    j = peer_json(r);
    CHECK_INT(peer_jint(j, "bytes"), ==, sizeof bin);
    CHECK_STR(peer_jstr(j, "sha256"), hex);
    json_decref(j);
    cipc_response_free(r);

    /* DELETE without a body. */
    j = echo(s, "DELETE", NULL, NULL);
    CHECK_STR(peer_jstr(j, "body"), "");
    json_decref(j);
}

static void test_upload(cipc_session *s)
{
    char path[] = "/tmp/cipc-upload-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    size_t total = 3 * 1024 * 1024 + 123;
    unsigned char buf[65536];
    peer_sha256 h;
    char hex[65];
    peer_sha256_init(&h);
    for (size_t off = 0; off < total;) {
        size_t n = total - off < sizeof buf ? total - off : sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)((off + i) * 13 + ((off + i) >> 12));
        CHECK_INT(write(fd, buf, n), ==, n);
        peer_sha256_update(&h, buf, n);
        off += n;
    }
    close(fd);
    peer_sha256_hex(&h, hex);

    cipc_request_opts o = {.size = sizeof o, .upload_path = path};
    cipc_response *r = NULL;
    CHECK_RC(cipc_post(s, "/upload", &o, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_status(r), ==, 200);
    json_t *j = peer_json(r);
    CHECK_INT(peer_jint(j, "bytes"), ==, total);
    CHECK_STR(peer_jstr(j, "sha256"), hex);
    json_decref(j);
    cipc_response_free(r);

    /* A small file with PUT reaches /echo as the body. */
    fd = open(path, O_WRONLY | O_TRUNC);
    CHECK(fd >= 0);
    CHECK_INT(write(fd, "file body", 9), ==, 9);
    close(fd);
    j = echo(s, "PUT", NULL, &o);
    CHECK_STR(peer_jstr(j, "body"), "file body");
    CHECK_STR(peer_jstr(j, "headers.content-length"), "9");
    json_decref(j);
    unlink(path);
}

/* A file body is sent again from its start after a 307/308 redirect and on a retry. */
static void test_upload_resend(cipc_session *s)
{
    char path[] = "/tmp/cipc-upload-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    size_t total = 256 * 1024 + 3;
    static unsigned char buf[256 * 1024 + 3];
    for (size_t i = 0; i < total; i++)
        buf[i] = (unsigned char)(i * 31 + (i >> 9));
    CHECK_INT(write(fd, buf, total), ==, total);
    close(fd);
    peer_sha256 h;
    char hex[65];
    peer_sha256_init(&h);
    peer_sha256_update(&h, buf, total);
    peer_sha256_hex(&h, hex);
    cipc_request_opts o = {.size = sizeof o, .upload_path = path};
    cipc_response *r = NULL;
    json_t *j;

    /* The file is sent again from its start after a 307 redirect and on a retry. */
    int rc = cipc_post(s, "/redirect-to?url=/upload&code=307", &o, &r);
    fprintf(stderr, "upload_path + 307 -> %s: %s\n", cipc_err_name(rc), cipc_session_errmsg(s));
    CHECK_RC(rc, 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_status(r), ==, 200);
    CHECK_INT(cipc_response_redirects(r), ==, 1);
    j = peer_json(r);
    CHECK_INT(peer_jint(j, "bytes"), ==, total);
    CHECK_STR(peer_jstr(j, "sha256"), hex);
    json_decref(j);
    cipc_response_free(r);
    cipc_session_opts ro = {
        .size = sizeof ro, .base_url = P.base_url, .retry = {.max_attempts = 3, .base_ms = 10}};
    cipc_session *rs = NULL;
    CHECK_RC(cipc_session_new(&ro, &rs), 0, "");
    o.retry = 1;
    CHECK_RC(cipc_post(rs, "/flaky/upload-retry?fail=2", &o, &r), 0, cipc_session_errmsg(rs));
    CHECK_INT(cipc_response_status(r), ==, 200);
    CHECK_INT(cipc_response_attempts(r), ==, 3);
    j = peer_json(r);
    CHECK_INT(peer_jint(j, "bytes"), ==, total);
    CHECK_STR(peer_jstr(j, "sha256"), hex);
    json_decref(j);
    cipc_response_free(r);
    cipc_session_free(rs);
    o.retry = 0;

    unlink(path);
}

static void test_base_url(void)
{
    char base[128], abs_url[160];
    snprintf(base, sizeof base, "%s/users", P.base_url);
    cipc_session *s = session_with((cipc_session_opts){.base_url = base});
    json_t *j = peer_get_json(s, "/42", 200);
    CHECK_INT(peer_jint(j, "id"), ==, 42);
    json_decref(j);
    /* An absolute URL ignores base_url. */
    j = peer_get_json(s, peer_url(&P, "/echo", abs_url, sizeof abs_url), 200);
    CHECK_STR(peer_jstr(j, "path"), "/echo");
    json_decref(j);
    cipc_session_free(s);

    /* Without base_url, a relative URL is a bad URL. */
    cipc_session_opts none = {.size = sizeof none};
    CHECK_RC(cipc_session_new(&none, &s), 0, "");
    cipc_response *r = (cipc_response *)&r;
    CHECK_RC(cipc_get(s, "/users/1", NULL, &r), CIPC_EURL, cipc_session_errmsg(s));
    CHECK(r == NULL);
    cipc_session_free(s);

    /* A bad base_url fails cipc_session_new and leaves *out alone. */
    cipc_session_opts bad = {.size = sizeof bad, .base_url = "http://[::1"};
    s = (cipc_session *)&s;
    CHECK_RC(cipc_session_new(&bad, &s), CIPC_EURL, "");
    CHECK(s == (cipc_session *)&s);
}

static void test_headers(void)
{
    cipc_session *s = session_default();
    CHECK_RC(cipc_session_header(s, "Authorization", "Bearer t0k"), 0, "");
    for (int i = 0; i < 2; i++) {
        json_t *j = echo(s, "GET", NULL, NULL);
        CHECK_STR(peer_jstr(j, "headers.authorization"), "Bearer t0k");
        json_decref(j);
    }
    /* Added, overridden and removed per request; the session keeps its own. */
    const cipc_kv add[] = {{"X-Extra", "1"}, {NULL, NULL}};
    cipc_request_opts o = {.size = sizeof o, .headers = add};
    json_t *j = echo(s, "GET", NULL, &o);
    CHECK_STR(peer_jstr(j, "headers.x-extra"), "1");
    CHECK_STR(peer_jstr(j, "headers.authorization"), "Bearer t0k");
    json_decref(j);
    const cipc_kv override[] = {{"authorization", "Bearer other"}, {NULL, NULL}};
    o.headers = override;
    j = echo(s, "GET", NULL, &o);
    CHECK_STR(peer_jstr(j, "headers.authorization"), "Bearer other");
    json_decref(j);
    const cipc_kv removed[] = {{"Authorization", NULL}, {NULL, NULL}};
    o.headers = removed;
    j = echo(s, "GET", NULL, &o);
    CHECK(peer_jget(j, "headers.authorization") == NULL);
    json_decref(j);
    j = echo(s, "GET", NULL, NULL);
    CHECK_STR(peer_jstr(j, "headers.authorization"), "Bearer t0k");
    CHECK(peer_jget(j, "headers.x-extra") == NULL);
    json_decref(j);

    /* Redirects keep the Authorization header on the same host and drop it for another
     * host (as requests and curl do), so a token never leaks to a third party. */
    char url[160];
    snprintf(url, sizeof url, "/redirect-to?url=%s/echo", P.base_url);
    j = echo(s, "GET", url, NULL);
    CHECK_STR(peer_jstr(j, "headers.authorization"), "Bearer t0k");
    json_decref(j);
    snprintf(url, sizeof url, "/redirect-to?url=http://localhost:%d/echo", P.port);
    j = echo(s, "GET", url, NULL);
    char host[64];
    snprintf(host, sizeof host, "localhost:%d", P.port);
    CHECK_STR(peer_jstr(j, "headers.host"), host);
    fprintf(stderr, "Authorization after a redirect to localhost: %s\n",
            peer_jstr(j, "headers.authorization") ? peer_jstr(j, "headers.authorization")
                                                  : "(not sent)");
    CHECK(peer_jget(j, "headers.authorization") == NULL);
    json_decref(j);

    /* Setting a header again (any case) replaces it; NULL removes it. */
    CHECK_RC(cipc_session_header(s, "X-A", "1"), 0, "");
    CHECK_RC(cipc_session_header(s, "x-a", "2"), 0, "");
    CHECK_RC(cipc_session_header(s, "Authorization", NULL), 0, "");
    j = echo(s, "GET", NULL, NULL);
    CHECK_STR(peer_jstr(j, "headers.x-a"), "2");
    CHECK(peer_jget(j, "headers.authorization") == NULL);
    json_decref(j);
    cipc_session_free(s);
}

static void test_user_agent(void)
{
    char want[64];
    snprintf(want, sizeof want, "cipc/%s", cipc_version());
    cipc_session *s = session_default();
    json_t *j = echo(s, "GET", NULL, NULL);
    CHECK_STR(peer_jstr(j, "headers.user-agent"), want);
    json_decref(j);
    cipc_session_free(s);

    s = session_with((cipc_session_opts){.user_agent = "mytool/1.0"});
    j = echo(s, "GET", NULL, NULL);
    CHECK_STR(peer_jstr(j, "headers.user-agent"), "mytool/1.0");
    json_decref(j);
    cipc_session_free(s);
}
/* `size` lets the library read older callers' structs: fields past it are ignored. */
static void test_struct_size(void)
{
    cipc_session_opts so = {
        .size = offsetof(cipc_session_opts, no_cookies), .base_url = P.base_url, .no_cookies = 1};
    cipc_session *s = NULL;
    CHECK_RC(cipc_session_new(&so, &s), 0, "");
    json_decref(peer_get_json(s, "/cookies/set?kept=yes", 200));
    json_t *j = peer_get_json(s, "/cookies", 200);
    CHECK_STR(peer_jstr(j, "cookies.kept"), "yes"); /* no_cookies was not read */
    json_decref(j);

    cipc_request_opts o = {.size = offsetof(cipc_request_opts, timeout_ms), .timeout_ms = 1};
    cipc_response *r = NULL;
    CHECK_RC(cipc_get(s, "/sleep?ms=100", &o, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_status(r), ==, 200);
    cipc_response_free(r);
    cipc_session_free(s);
}

/* NULL values in params and forms: an error or a key without a value, never a crash. */
static void test_null_values(cipc_session *s)
{
    const cipc_kv params[] = {{"flag", NULL}, {"x", "1"}, {NULL, NULL}};
    cipc_request_opts o = {.size = sizeof o, .params = params};
    cipc_response *r = NULL;
    int rc = cipc_get(s, "/echo", &o, &r);
    fprintf(stderr, "param with NULL value -> %s: %s\n", cipc_err_name(rc), cipc_session_errmsg(s));
    if (rc == 0) {
        json_t *j = peer_json(r);
        CHECK(peer_jget(j, "query.flag") != NULL);
        CHECK_STR(query1(j, "x"), "1");
        json_decref(j);
        cipc_response_free(r);
    } else {
        CHECK_RC(rc, -EINVAL, cipc_session_errmsg(s));
    }
    o = (cipc_request_opts){.size = sizeof o, .form = params};
    rc = cipc_post(s, "/echo", &o, &r);
    fprintf(stderr, "form with NULL value -> %s\n", cipc_err_name(rc));
    if (rc == 0)
        cipc_response_free(r);
    else
        CHECK_RC(rc, -EINVAL, cipc_session_errmsg(s));
}
int main(void)
{
    peer_clear_proxy_env();
    CHECK(peer_start(&P) == 0);
    cipc_session *s = session_default();
    CHECK_STR(cipc_session_errmsg(s), "");

    test_methods(s);
    test_query(s);
    test_bodies(s);
    test_upload(s);
    test_base_url();
    test_headers();
    test_user_agent();
    test_struct_size();
    test_null_values(s);
    test_upload_resend(s);

    cipc_session_free(s);
    cipc_session_free(NULL);
    cipc_response_free(NULL);
    peer_stop(&P);
    return 0;
}
