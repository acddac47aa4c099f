/* fuzz/fuzz_ws_handshake.c -- pairs with src/ws/handshake.c (the WebSocket opening
 * handshake and permessage-deflate negotiation).
 *
 * The first byte picks the permessage-deflate configuration (its bits: the two
 * no_context_takeover requests, window bits for either side) and the error buffer's size;
 * the rest is the input, read three ways:
 * - as a request head (http/parser.h): then cipc__ws_server_check(), the subprotocol
 *   choice, and server negotiation. Results must be one of the documented codes, every
 *   slice must lie in the head, an accepted offer's answer must fit its buffer and be
 *   accepted by a client with the default offer with the same parameters;
 * - as a response head (http/response.h): then cipc__ws_client_check() against a fixed
 *   key and offer; the error message must be NUL-terminated inside its buffer, a success
 *   must mean status 101 and in-range parameters;
 * - as one Sec-WebSocket-Extensions value: the extension scanner must stay inside it and
 *   always progress, and cipc__ws_pmd_accept_client() must give in-range parameters. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"
#include "http/response.h"
#include "ws/handshake.h"

#define MAXH 100

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *dup_exact(const uint8_t *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    if (!p)
        abort();
    if (n)
        memcpy(p, s, n);
    return p;
}

static void check_in(struct cipc__slice s, const char *buf, size_t len)
{
    if (!s.p) {
        if (s.n)
            abort();
        return;
    }
    if (s.p < buf || (size_t)(s.p - buf) > len || s.n > len - (size_t)(s.p - buf))
        abort();
}

static void check_params(const struct cipc__ws_pmd_params *p)
{
    if (p->server_max_window_bits < 8 || p->server_max_window_bits > 15)
        abort();
    if (p->client_max_window_bits != 0 &&
        (p->client_max_window_bits < 8 || p->client_max_window_bits > 15))
        abort();
}

/* Walk a Sec-WebSocket-Extensions value p[0..n) with the scanner. */
static void walk_extensions(const char *p, size_t n)
{
    size_t pos = 0;
    struct cipc__ws_ext e;
    int rc;
    while ((rc = cipc__ws_ext_next(p, n, &pos, &e)) == 1) {
        if (pos > n)
            abort();
        check_in(e.name, p, n);
        if (e.name.n == 0)
            abort();
        size_t shown = e.n_params < CIPC__WS_EXT_MAX_PARAMS ? e.n_params : CIPC__WS_EXT_MAX_PARAMS;
        for (size_t k = 0; k < shown; k++) {
            check_in(e.params[k].name, p, n);
            check_in(e.params[k].value, p, n);
            if (e.params[k].name.n == 0 || (e.params[k].value.p && e.params[k].value.n == 0))
                abort();
        }
    }
    if (rc != 0 && rc != CIPC_EPROTO)
        abort();
    if (rc == 0 && pos != n)
        abort();
}

static void fuzz_request(const char *buf, size_t len, const struct cipc__ws_pmd_config *cfg)
{
    static struct cipc__http_header hdrs[MAXH];
    struct cipc__http_request req;
    memset(&req, 0, sizeof req);
    req.headers = hdrs;
    int status = 0;
    int rc = cipc__http_parse_request(buf, len, 0, NULL, &req, &status);
    if (rc <= 0)
        return;
    size_t head = (size_t)rc;

    struct cipc__ws_server_hs hs;
    int sc = cipc__ws_server_check(req.headers, req.n_headers, req.method.p, req.method.n,
                                   req.minor, &hs);
    if (sc != 0 && sc != 400 && sc != 426)
        abort();
    if (sc == 0) {
        check_in(hs.key, buf, head);
        check_in(hs.origin, buf, head);
        check_in(hs.extensions, buf, head);
        if (hs.key.n != 24 || strlen(hs.accept) != 28)
            abort();
        if (hs.n_protocols > CIPC__WS_MAX_SUBPROTOCOLS || hs.n_protocols > hs.n_protocols_offered)
            abort();
        for (size_t i = 0; i < hs.n_protocols; i++) {
            check_in(hs.protocols[i], buf, head);
            if (hs.protocols[i].n == 0)
                abort();
        }
        static const char *const supported[] = {"chat", "superchat", "json", "x"};
        int pick = cipc__ws_pick_subprotocol(&hs, supported, 4);
        if (pick < -1 || pick > 3)
            abort();
    }

    for (size_t i = 0; i < req.n_headers; i++)
        if (cipc__slice_ieq(req.headers[i].name, "sec-websocket-extensions"))
            walk_extensions(req.headers[i].value.p, req.headers[i].value.n);

    struct cipc__ws_pmd_params agreed;
    char resp[CIPC__WS_PMD_HDR_MAX + 1];
    resp[CIPC__WS_PMD_HDR_MAX] = 'Z';
    int nr = cipc__ws_pmd_negotiate_server(req.headers, req.n_headers, cfg, &agreed, resp,
                                           CIPC__WS_PMD_HDR_MAX);
    if (resp[CIPC__WS_PMD_HDR_MAX] != 'Z' || memchr(resp, 0, CIPC__WS_PMD_HDR_MAX) == NULL)
        abort();
    if (nr != 1 && nr != 0 && nr != CIPC_EPROTO)
        abort();
    if (nr != 1) {
        if (resp[0] != '\0')
            abort();
        return;
    }
    check_params(&agreed);
    /* The answer is one a default client offer accepts, with the same outcome. */
    struct cipc__ws_pmd_config plain = {.enabled = true};
    struct cipc__ws_pmd_params back;
    if (cipc__ws_pmd_accept_client(resp, strlen(resp), &plain, &back) != 0)
        abort();
    if (back.server_no_context_takeover != agreed.server_no_context_takeover ||
        back.client_no_context_takeover != agreed.client_no_context_takeover ||
        back.server_max_window_bits != agreed.server_max_window_bits ||
        back.client_max_window_bits != agreed.client_max_window_bits)
        abort();
}

static void fuzz_response(const char *buf, size_t len, const struct cipc__ws_pmd_config *cfg,
                          size_t errcap)
{
    static struct cipc__http_header hdrs[MAXH];
    struct cipc__http_response_head head;
    int rc = cipc__http_parse_response(buf, len, &head, hdrs, MAXH, 0);
    if (rc <= 0)
        return;
    static const char *const offered[] = {"chat", "superchat"};
    struct cipc__ws_client_hs hs;
    char err[80];
    memset(err, 'Z', sizeof err);
    int cc = cipc__ws_client_check(&head, hdrs, head.n_headers, "dGhlIHNhbXBsZSBub25jZQ==", offered,
                                   2, cfg, &hs, errcap ? err : NULL, errcap);
    if (errcap) {
        if (memchr(err, 0, errcap) == NULL)
            abort();
        for (size_t i = errcap; i < sizeof err; i++)
            if (err[i] != 'Z')
                abort();
    }
    if (cc == CIPC_EPROTO) {
        if (errcap > 1 && err[0] == '\0')
            abort();
        return;
    }
    if (cc != 0 || head.status != 101)
        abort();
    check_in(hs.protocol, buf, (size_t)rc);
    if (hs.protocol.p ? (hs.protocol_index < 0 || hs.protocol_index > 1) : hs.protocol_index != -1)
        abort();
    if (hs.pmd)
        check_params(&hs.pmd_params);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t sel = data[0];
    static const int bits[4] = {0, 8, 10, 15};
    struct cipc__ws_pmd_config cfg = {
        .enabled = (sel & 0x80) == 0, /* mostly on */
        .server_no_context_takeover = (sel & 1) != 0,
        .client_no_context_takeover = (sel & 2) != 0,
        .server_max_window_bits = bits[(sel >> 2) & 3],
        .client_max_window_bits = bits[(sel >> 4) & 3],
    };
    size_t errcap = (size_t)(sel >> 2) % 65; /* 0: no error buffer */
    char *buf = dup_exact(data + 1, size - 1);
    size_t len = size - 1;

    fuzz_request(buf, len, &cfg);
    fuzz_response(buf, len, &cfg, errcap);

    walk_extensions(buf, len);
    struct cipc__ws_pmd_params agreed;
    int ac = cipc__ws_pmd_accept_client(buf, len, &cfg, &agreed);
    if (ac == 0)
        check_params(&agreed);
    else if (ac != CIPC_EPROTO)
        abort();
    free(buf);
    return 0;
}
