/* Proves proxy selection against a real peer acting as a forward proxy (aiohttp accepts
 * absolute-form request targets): http_proxy from the environment is used as curl uses
 * it, no_proxy bypasses it, opts.proxy = "" ignores the environment, and an explicit
 * opts.proxy works without any environment. The target host is under .invalid, so the
 * request can only succeed through the proxy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cipc/http_client.h"
#include "peer.h"

static peer P;

static cipc_session *session_with(cipc_session_opts o)
{
    cipc_session *s = NULL;
    CHECK_RC(cipc_session_new(&o, &s), 0, "cipc_session_new");
    return s;
}

/* GET through the proxy: the peer sees the absolute URL and the original Host. */
static void expect_proxied(cipc_session *s)
{
    cipc_response *r = NULL;
    CHECK_RC(cipc_get(s, "http://proxied.invalid/echo?x=1", NULL, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_status(r), ==, 200);
    json_t *j = peer_json(r);
    CHECK_STR(peer_jstr(j, "path"), "/echo");
    CHECK_STR(peer_jstr(j, "url"), "http://proxied.invalid/echo?x=1");
    CHECK_STR(peer_jstr(j, "headers.host"), "proxied.invalid");
    json_decref(j);
    cipc_response_free(r);
}

static void expect_direct(cipc_session *s)
{
    cipc_response *r = (cipc_response *)&r;
    CHECK_RC(cipc_get(s, "http://proxied.invalid/echo", NULL, &r), CIPC_EDNS,
             cipc_session_errmsg(s));
    CHECK(r == NULL);
}

int main(void)
{
    peer_clear_proxy_env();
    CHECK(peer_start(&P) == 0);

    /* No proxy anywhere: the .invalid name does not resolve. */
    cipc_session *s = session_with((cipc_session_opts){0});
    expect_direct(s);
    cipc_session_free(s);

    /* From the environment (read per request, as curl does). */
    CHECK(setenv("http_proxy", P.base_url, 1) == 0);
    s = session_with((cipc_session_opts){0});
    expect_proxied(s);
    cipc_session_free(s);

    /* no_proxy exempts the host. */
    CHECK(setenv("no_proxy", "proxied.invalid", 1) == 0);
    s = session_with((cipc_session_opts){0});
    expect_direct(s);
    cipc_session_free(s);
    CHECK(unsetenv("no_proxy") == 0);

    /* proxy = "": no proxy at all, whatever the environment says. */
    s = session_with((cipc_session_opts){.proxy = ""});
    expect_direct(s);
    cipc_session_free(s);

    /* An explicit proxy without the environment. */
    CHECK(unsetenv("http_proxy") == 0);
    s = session_with((cipc_session_opts){.proxy = P.base_url});
    expect_proxied(s);
    cipc_session_free(s);

    peer_stop(&P);
    return 0;
}
