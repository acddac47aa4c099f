/* Proves the response side of the blocking session against a real aiohttp peer: status
 * and reason, case-insensitive and repeated headers, body bytes, references, JSON (good,
 * invalid, wrong content type, +json, gzip), redirects (count, final URL, limits, loops,
 * methods across 301/302/303/307/308), elapsed time, raise_for_status messages, cookies. */
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

static void test_response(cipc_session *s)
{
    cipc_response *r = NULL;
    CHECK_RC(cipc_get(s, "/users/7", NULL, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_status(r), ==, 200);
    CHECK_STR(cipc_response_reason(r), "OK");
    size_t len = 0;
    const char *body = cipc_response_body(r, &len);
    CHECK_MEM(body, len, "{\"id\": 7, \"name\": \"user7\"}");
    CHECK(body[len] == '\0');
    CHECK_STR(cipc_response_text(r), "{\"id\": 7, \"name\": \"user7\"}");
    CHECK_INT(cipc_response_attempts(r), ==, 1);
    CHECK_INT(cipc_response_redirects(r), ==, 0);
    CHECK_INT(cipc_response_elapsed_us(r), >, 0);
    char want[128];
    CHECK_STR(cipc_response_url(r), peer_url(&P, "/users/7", want, sizeof want));
    /* References: the response lives until the last free. */
    CHECK(cipc_response_ref(r) == r);
    cipc_response_free(r);
    CHECK_INT(cipc_response_status(r), ==, 200);
    CHECK_STR(cipc_response_text(r), "{\"id\": 7, \"name\": \"user7\"}");
    cipc_response_free(r);

    CHECK_RC(cipc_get(s, "/status/404", NULL, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_status(r), ==, 404);
    CHECK_STR(cipc_response_reason(r), "Not Found");
    cipc_response_free(r);
    CHECK_RC(cipc_get(s, "/status/503", NULL, &r), 0, cipc_session_errmsg(s));
    CHECK_STR(cipc_response_reason(r), "Service Unavailable");
    cipc_response_free(r);

    /* Case-insensitive lookup, repeated headers, and the ordered list. */
    CHECK_RC(cipc_get(s, "/headers/repeat", NULL, &r), 0, cipc_session_errmsg(s));
    CHECK_STR(cipc_response_header(r, "content-type"), "application/json; charset=utf-8");
    CHECK_STR(cipc_response_header(r, "CONTENT-TYPE"), "application/json; charset=utf-8");
    CHECK_STR(cipc_response_header(r, "X-MULTI"), "a");
    CHECK_STR(cipc_response_header_n(r, "x-multi", 0), "a");
    CHECK_STR(cipc_response_header_n(r, "X-Multi", 1), "b");
    CHECK(cipc_response_header_n(r, "X-Multi", 2) == NULL);
    CHECK(cipc_response_header(r, "X-Nope") == NULL);
    CHECK(strncmp(cipc_response_header_n(r, "set-cookie", 0), "c1=v1", 5) == 0);
    CHECK(strncmp(cipc_response_header_n(r, "Set-Cookie", 1), "c2=v2", 5) == 0);
    size_t n = cipc_response_header_count(r), multi = 0, cookies = 0;
    CHECK_INT(n, >=, 5);
    for (size_t i = 0; i < n; i++) {
        const char *name = NULL, *value = NULL;
        CHECK_RC(cipc_response_header_at(r, i, &name, &value), 0, "");
        CHECK(name && value && !strchr(name, ':') && !strchr(value, '\r'));
        if (peer_contains_ci(name, "x-multi") && strlen(name) == 7)
            CHECK_STR(value, multi++ ? "b" : "a");
        if (peer_contains_ci(name, "set-cookie") && strlen(name) == 10)
            cookies++;
    }
    CHECK_INT(multi, ==, 2);
    CHECK_INT(cookies, ==, 2);
    const char *name = NULL, *value = NULL;
    CHECK_RC(cipc_response_header_at(r, n, &name, &value), -ERANGE, "");
    cipc_response_free(r);
}

static void test_json(cipc_session *s)
{
    cipc_response *r = NULL;
    json_t *j = (json_t *)&j;
    CHECK_RC(cipc_get(s, "/badjson", NULL, &r), 0, cipc_session_errmsg(s));
    CHECK_RC(cipc_response_json(r, &j), CIPC_EJSON, cipc_response_errmsg(r));
    CHECK(j == NULL);
    const char *msg = cipc_response_errmsg(r);
    fprintf(stderr, "badjson: %s\n", msg);
    CHECK(peer_contains_ci(msg, "line 1") && peer_contains_ci(msg, "column"));
    cipc_response_free(r);

    CHECK_RC(cipc_get(s, "/html", NULL, &r), 0, cipc_session_errmsg(s));
    j = (json_t *)&j;
    CHECK_RC(cipc_response_json(r, &j), CIPC_EJSON, cipc_response_errmsg(r));
    CHECK(j == NULL);
    fprintf(stderr, "html: %s\n", cipc_response_errmsg(r));
    CHECK(peer_contains_ci(cipc_response_errmsg(r), "text/html"));
    cipc_response_free(r);

    /* text/plain and no body at all are not JSON either. */
    CHECK_RC(cipc_get(s, "/status/404", NULL, &r), 0, cipc_session_errmsg(s));
    CHECK_RC(cipc_response_json(r, &j), CIPC_EJSON, cipc_response_errmsg(r));
    cipc_response_free(r);
    CHECK_RC(cipc_get(s, "/status/204", NULL, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_status(r), ==, 204);
    CHECK_RC(cipc_response_json(r, &j), CIPC_EJSON, cipc_response_errmsg(r));
    cipc_response_free(r);

    /* A gzip-encoded body is decoded. */
    CHECK_RC(cipc_get(s, "/gzip", NULL, &r), 0, cipc_session_errmsg(s));
    CHECK_STR(cipc_response_header(r, "Content-Encoding"), "gzip");
    j = peer_json(r);
    CHECK(json_is_true(json_object_get(j, "compressed")));
    CHECK_INT(strlen(peer_jstr(j, "pad")), ==, 1000);
    json_decref(j);
    cipc_response_free(r);

    /* +json with parameters is JSON; parsing twice gives two owned values. */
    CHECK_RC(cipc_get(s, "/problem", NULL, &r), 0, cipc_session_errmsg(s));
    j = peer_json(r);
    json_t *j2 = peer_json(r);
    CHECK(j != j2);
    CHECK_STR(peer_jstr(j, "title"), "x");
    CHECK_STR(cipc_response_errmsg(r), "");
    json_decref(j);
    json_decref(j2);
    cipc_response_free(r);
}

static void test_redirects(cipc_session *s)
{
    char want[128];
    cipc_response *r = NULL;
    CHECK_RC(cipc_get(s, "/redirect/3", NULL, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_status(r), ==, 200);
    CHECK_INT(cipc_response_redirects(r), ==, 3);
    CHECK_STR(cipc_response_url(r), peer_url(&P, "/redirect/0", want, sizeof want));
    CHECK(cipc_response_header(r, "Location") == NULL); /* the final response's headers */
    json_t *j = peer_json(r);
    CHECK(json_is_true(json_object_get(j, "redirected")));
    json_decref(j);
    cipc_response_free(r);

    /* The default limit is 30: 30 redirects pass, 31 do not; loops stop. */
    CHECK_RC(cipc_get(s, "/redirect/30", NULL, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_redirects(r), ==, 30);
    cipc_response_free(r);
    r = (cipc_response *)&r;
    CHECK_RC(cipc_get(s, "/redirect/31", NULL, &r), CIPC_EREDIRECTS, cipc_session_errmsg(s));
    CHECK(r == NULL);
    CHECK_RC(cipc_get(s, "/redirect-loop", NULL, &r), CIPC_EREDIRECTS, cipc_session_errmsg(s));
    CHECK(r == NULL);
    CHECK(cipc_session_errmsg(s)[0] != '\0');

    cipc_session *two = session_with((cipc_session_opts){.max_redirects = 2});
    CHECK_RC(cipc_get(two, "/redirect/5", NULL, &r), CIPC_EREDIRECTS, cipc_session_errmsg(two));
    CHECK_RC(cipc_get(two, "/redirect/2", NULL, &r), 0, cipc_session_errmsg(two));
    CHECK_INT(cipc_response_redirects(r), ==, 2);
    cipc_response_free(r);
    cipc_session_free(two);

    /* max_redirects < 0: the 302 itself is the response. */
    cipc_session *none = session_with((cipc_session_opts){.max_redirects = -1});
    CHECK_RC(cipc_get(none, "/redirect/5", NULL, &r), 0, cipc_session_errmsg(none));
    CHECK_INT(cipc_response_status(r), ==, 302);
    CHECK_STR(cipc_response_reason(r), "Found");
    CHECK_STR(cipc_response_header(r, "Location"), "/redirect/4");
    CHECK_INT(cipc_response_redirects(r), ==, 0);
    CHECK_STR(cipc_response_url(r), peer_url(&P, "/redirect/5", want, sizeof want));
    CHECK_RC(cipc_response_raise_for_status(r), 0, cipc_response_errmsg(r));
    cipc_response_free(r);
    cipc_session_free(none);
}

static void test_redirect_methods(cipc_session *s)
{
    cipc_response *r = NULL;
    json_t *j;
    /* Methods across redirects. 303 turns anything into a GET without the body (RFC 9110
     * 15.4.4, and requests); so do 301/302 for POST; 307/308 keep method and body. For
     * 301/302 with other methods, requests switches to GET and browsers keep the method:
     * either is accepted, but never the method without its body. */
    static const struct {
        const char *method;
        int code;
        const char *want; /* NULL: GET without body, or the method with its body */
    } hops[] = {{"POST", 301, "GET"}, {"POST", 302, "GET"},   {"POST", 303, "GET"},
                {"PUT", 303, "GET"},  {"DELETE", 303, "GET"}, {"PATCH", 303, "GET"},
                {"PUT", 302, NULL},   {"PATCH", 301, NULL},   {"POST", 307, "POST"},
                {"PUT", 308, "PUT"}};
    int wrong = 0;
    for (size_t i = 0; i < sizeof hops / sizeof hops[0]; i++) {
        char url[64];
        snprintf(url, sizeof url, "/redirect-to?url=/echo&code=%d", hops[i].code);
        cipc_request_opts o = {
            .size = sizeof o, .body = "payload", .body_len = 7, .content_type = "text/plain"};
        CHECK_RC(cipc_request(s, hops[i].method, url, &o, &r), 0, cipc_session_errmsg(s));
        CHECK_INT(cipc_response_redirects(r), ==, 1);
        j = peer_json(r);
        const char *m = peer_jstr(j, "method"), *b = peer_jstr(j, "body");
        int ok = hops[i].want ? strcmp(m, hops[i].want) == 0 : 1;
        if (strcmp(m, "GET") == 0)
            ok = ok && strcmp(b, "") == 0;
        else
            ok = ok && strcmp(m, hops[i].method) == 0 && strcmp(b, "payload") == 0;
        fprintf(stderr, "%s + %d -> %s with body \"%s\"%s\n", hops[i].method, hops[i].code, m, b,
                ok ? "" : "  <-- wrong");
        wrong += !ok;
        json_decref(j);
        cipc_response_free(r);
    }
    CHECK_INT(wrong, ==, 0);
}

static void test_elapsed(cipc_session *s)
{
    cipc_response *r = NULL;
    int64_t t0 = cipc_now_ms();
    CHECK_RC(cipc_get(s, "/sleep?ms=200", NULL, &r), 0, cipc_session_errmsg(s));
    int64_t wall = cipc_now_ms() - t0;
    CHECK_STR(cipc_response_text(r), "slept");
    int64_t us = cipc_response_elapsed_us(r);
    CHECK_INT(us, >=, 190000);
    CHECK_INT(us, <, 3000000);
    CHECK_INT(us / 1000, <=, wall + 1);
    cipc_response_free(r);
}

static void test_raise_for_status(cipc_session *s)
{
    char want[256];
    cipc_response *r = NULL;
    CHECK_RC(cipc_get(s, "/users/1", NULL, &r), 0, cipc_session_errmsg(s));
    CHECK_RC(cipc_response_raise_for_status(r), 0, cipc_response_errmsg(r));
    cipc_response_free(r);

    CHECK_RC(cipc_get(s, "/status/404", NULL, &r), 0, cipc_session_errmsg(s));
    CHECK_RC(cipc_response_raise_for_status(r), CIPC_EHTTP, cipc_response_errmsg(r));
    snprintf(want, sizeof want, "404 Client Error: Not Found for url: %s/status/404", P.base_url);
    CHECK_STR(cipc_response_errmsg(r), want);
    CHECK_STR(cipc_session_errmsg(s), want);
    cipc_response_free(r);

    CHECK_RC(cipc_get(s, "/status/500", NULL, &r), 0, cipc_session_errmsg(s));
    CHECK_RC(cipc_response_raise_for_status(r), CIPC_EHTTP, cipc_response_errmsg(r));
    snprintf(want, sizeof want, "500 Server Error: Internal Server Error for url: %s/status/500",
             P.base_url);
    CHECK_STR(cipc_response_errmsg(r), want);
    CHECK_STR(cipc_session_errmsg(s), want);
    /* The response outlives its session and still raises. */
    cipc_session *tmp = session_default();
    cipc_response *r2 = NULL;
    CHECK_RC(cipc_get(tmp, "/status/418", NULL, &r2), 0, cipc_session_errmsg(tmp));
    cipc_session_free(tmp);
    CHECK_RC(cipc_response_raise_for_status(r2), CIPC_EHTTP, cipc_response_errmsg(r2));
    CHECK(strncmp(cipc_response_errmsg(r2), "418 Client Error: ", 18) == 0);
    cipc_response_free(r2);
    cipc_response_free(r);
}

static void test_cookies(void)
{
    cipc_session *s = session_default();
    json_t *j = peer_get_json(s, "/cookies/set?flavor=choc", 200);
    json_decref(j);
    j = peer_get_json(s, "/cookies", 200);
    CHECK_STR(peer_jstr(j, "cookies.flavor"), "choc");
    json_decref(j);
    j = peer_get_json(s, "/headers/repeat", 200);
    json_decref(j);
    j = peer_get_json(s, "/cookies", 200);
    CHECK_STR(peer_jstr(j, "cookies.flavor"), "choc");
    CHECK_STR(peer_jstr(j, "cookies.c1"), "v1");
    CHECK_STR(peer_jstr(j, "cookies.c2"), "v2");
    json_decref(j);

    /* Sessions do not share cookies; no_cookies keeps none. */
    cipc_session *other = session_default();
    j = peer_get_json(other, "/cookies", 200);
    CHECK_INT(json_object_size(json_object_get(j, "cookies")), ==, 0);
    json_decref(j);
    cipc_session_free(other);
    cipc_session *nc = session_with((cipc_session_opts){.no_cookies = 1});
    json_decref(peer_get_json(nc, "/cookies/set?flavor=choc", 200));
    j = peer_get_json(nc, "/cookies", 200);
    CHECK_INT(json_object_size(json_object_get(j, "cookies")), ==, 0);
    json_decref(j);
    cipc_session_free(nc);
    cipc_session_free(s);
}
int main(void)
{
    peer_clear_proxy_env();
    CHECK(peer_start(&P) == 0);
    cipc_session *s = session_default();

    test_response(s);
    test_json(s);
    test_redirects(s);
    test_elapsed(s);
    test_raise_for_status(s);
    test_cookies();
    test_redirect_methods(s);

    cipc_session_free(s);
    peer_stop(&P);
    return 0;
}
