/* Proves the WebSocket opening handshake rules: the RFC 6455 accept key, the server's 400 and
 * 426 decisions, subprotocol choice in the server's order, the Sec-WebSocket-Extensions
 * grammar, permessage-deflate negotiation on both sides (RFC 7692 7.1), the client's checks
 * of the 101 answer and the request it builds, and that the HTTP response-head parser gives
 * CIPC_EAGAIN for every prefix before the result is known and the one-shot result from there
 * on. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "check.h"
#include "http/parser.h"
#include "http/response.h"
#include "ws/handshake.h"

#define MAXH 64

static char *dup_exact(const char *s, size_t len)
{
    char *p = malloc(len ? len : 1);
    CHECK(p != NULL);
    if (len)
        memcpy(p, s, len);
    return p;
}

/* ---- Keys ----------------------------------------------------------------------------- */

static void test_keys(void)
{
    char acc[CIPC__WS_ACCEPT_SIZE];
    const char *k = "dGhlIHNhbXBsZSBub25jZQ==";
    CHECK_INT(cipc__ws_accept_key(k, strlen(k), acc), ==, 0);
    CHECK_STR(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

    char k1[CIPC__WS_KEY_SIZE], k2[CIPC__WS_KEY_SIZE];
    CHECK_INT(cipc__ws_client_key(k1), ==, 0);
    CHECK_INT(cipc__ws_client_key(k2), ==, 0);
    CHECK_INT(strlen(k1), ==, 24);
    CHECK(strcmp(k1, k2) != 0);
    unsigned char raw[32];
    int n = EVP_DecodeBlock(raw, (const unsigned char *)k1, 24);
    CHECK_INT(n, ==, 18); /* EVP_DecodeBlock counts the two padding bytes */
    CHECK(k1[22] == '=' && k1[23] == '=');
}

/* ---- Server check ---------------------------------------------------------------------- */

struct srv_case {
    const char *head; /* the whole request head */
    int want;         /* 0, 400 or 426 */
    const char *origin;
    const char *protos; /* the stored protocols joined with '|' */
    int offered;        /* n_protocols_offered when protos is set */
    int ext_lines;
};

#define GOOD_KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define V13      "Sec-WebSocket-Version: 13\r\n"
#define UPG      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
#define REQ(x)   "GET /chat HTTP/1.1\r\nHost: h\r\n" x "\r\n"

static const struct srv_case srv_cases[] = {
    {.head = REQ(UPG GOOD_KEY V13), .want = 0},
    {.head = REQ("upgrade: WebSocket\r\nCONNECTION: keep-alive, Upgrade\r\n" GOOD_KEY V13),
     .want = 0},
    {.head =
         REQ("Upgrade: h2c, websocket\r\nConnection: keep-alive\r\nConnection: upgrade\r\n" GOOD_KEY
                 V13),
     .want = 0},
    {.head = REQ("Upgrade: WEBSOCKET\r\nConnection: UPGRADE\r\n" GOOD_KEY V13), .want = 0},
    {.head = REQ(UPG GOOD_KEY V13 "Origin: http://example.com\r\n"),
     .want = 0,
     .origin = "http://example.com"},
    {.head = REQ(UPG GOOD_KEY V13 "Sec-WebSocket-Protocol: chat, superchat\r\n"
                                  "sec-websocket-protocol: ,v2.bin.example.com,\r\n"),
     .want = 0,
     .protos = "chat|superchat|v2.bin.example.com",
     .offered = 3},
    {.head =
         REQ(UPG GOOD_KEY V13 "Sec-WebSocket-Protocol: a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r\r\n"),
     .want = 0,
     .protos = "a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p",
     .offered = 18},
    {.head = REQ(UPG GOOD_KEY V13 "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                                  "Sec-WebSocket-Extensions: x-foo\r\n"),
     .want = 0,
     .ext_lines = 2},
    /* Upgrade and Connection. */
    {.head = REQ("Connection: Upgrade\r\n" GOOD_KEY V13), .want = 400},
    {.head = REQ("Upgrade: websocket2\r\nConnection: Upgrade\r\n" GOOD_KEY V13), .want = 400},
    {.head = REQ("Upgrade: web socket\r\nConnection: Upgrade\r\n" GOOD_KEY V13), .want = 400},
    {.head = REQ("Upgrade:\r\nConnection: Upgrade\r\n" GOOD_KEY V13), .want = 400},
    {.head = REQ("Upgrade: websocket\r\n" GOOD_KEY V13), .want = 400},
    {.head = REQ("Upgrade: websocket\r\nConnection: close\r\n" GOOD_KEY V13), .want = 400},
    {.head = REQ("Upgrade: websocket\r\nConnection: upgrades\r\n" GOOD_KEY V13), .want = 400},
    {.head = REQ("Upgrade: websocket\r\nConnection: keep-alive upgrade\r\n" GOOD_KEY V13),
     .want = 400},
    /* Method and version. */
    {.head = "POST /chat HTTP/1.1\r\nHost: h\r\n" UPG GOOD_KEY V13 "\r\n", .want = 400},
    {.head = "get /chat HTTP/1.1\r\nHost: h\r\n" UPG GOOD_KEY V13 "\r\n", .want = 400},
    {.head = "GET /chat HTTP/1.0\r\nHost: h\r\n" UPG GOOD_KEY V13 "\r\n", .want = 400},
    /* Sec-WebSocket-Key. */
    {.head = REQ(UPG V13), .want = 400},
    {.head = REQ(UPG GOOD_KEY GOOD_KEY V13), .want = 400},
    {.head = REQ(UPG "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n" V13), .want = 400},
    {.head = REQ(UPG "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n" V13), .want = 400},
    {.head = REQ(UPG "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n" V13),
     .want = 400}, /* 15 bytes */
    {.head = REQ(UPG "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\r\n" V13),
     .want = 400}, /* 17 bytes */
    {.head = REQ(UPG "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA\r\n" V13),
     .want = 400}, /* 18 bytes */
    {.head = REQ(UPG "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q==\r\n" V13), .want = 400},
    {.head = REQ(UPG "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==x\r\n" V13), .want = 400},
    {.head = REQ(UPG "Sec-WebSocket-Key:\r\n" V13), .want = 400},
    {.head = REQ(UPG "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAB==\r\n" V13),
     .want = 0}, /* bits not checked */
    /* Other 400s. */
    {.head = REQ(UPG GOOD_KEY V13 "Origin: a\r\nOrigin: b\r\n"), .want = 400},
    {.head = REQ(UPG GOOD_KEY V13 "Sec-WebSocket-Protocol: chat, super chat\r\n"), .want = 400},
    {.head = REQ(UPG GOOD_KEY V13 "Sec-WebSocket-Protocol: \"chat\"\r\n"), .want = 400},
    {.head = REQ(UPG GOOD_KEY V13 V13), .want = 400},
    /* Sec-WebSocket-Version: 426. */
    {.head = REQ(UPG GOOD_KEY), .want = 426},
    {.head = REQ(UPG GOOD_KEY "Sec-WebSocket-Version: 8\r\n"), .want = 426},
    {.head = REQ(UPG GOOD_KEY "Sec-WebSocket-Version: 13, 8\r\n"), .want = 426},
    {.head = REQ(UPG GOOD_KEY "Sec-WebSocket-Version: 013\r\n"), .want = 426},
    {.head = REQ(UPG GOOD_KEY "Sec-WebSocket-Version:\r\n"), .want = 426},
    /* A 400 rule beats the version. */
    {.head = REQ("Upgrade: websocket\r\n" GOOD_KEY "Sec-WebSocket-Version: 8\r\n"), .want = 400},
};

static void join(char *out, size_t cap, const struct cipc__slice *s, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        CHECK(len + s[i].n + 2 < cap);
        if (i)
            out[len++] = '|';
        memcpy(out + len, s[i].p, s[i].n);
        len += s[i].n;
        out[len] = '\0';
    }
}

/* Parse a request head with the request parser, then cipc__ws_server_check() it. */
static int server_check_text(const char *text, char **copy, struct cipc__http_request *req,
                             struct cipc__http_header *hdrs, struct cipc__ws_server_hs *hs)
{
    size_t len = strlen(text);
    int status = 0;
    *copy = dup_exact(text, len);
    memset(req, 0, sizeof *req);
    req->headers = hdrs;
    struct cipc__http_limits lim = {.max_headers = MAXH};
    int rc = cipc__http_parse_request(*copy, len, 0, &lim, req, &status);
    CHECK_INT(rc, ==, (int)len);
    return cipc__ws_server_check(req->headers, req->n_headers, req->method.p, req->method.n,
                                 req->minor, hs);
}

static void test_server_check(void)
{
    for (size_t i = 0; i < sizeof srv_cases / sizeof srv_cases[0]; i++) {
        const struct srv_case *t = &srv_cases[i];
        struct cipc__http_header hdrs[MAXH];
        struct cipc__http_request req;
        struct cipc__ws_server_hs hs;
        char *copy;
        int rc = server_check_text(t->head, &copy, &req, hdrs, &hs);
        if (rc != t->want)
            fprintf(stderr, "case %zu: %s", i, t->head);
        CHECK_INT(rc, ==, t->want);
        if (rc == 0) {
            CHECK_INT(hs.key.n, ==, 24);
            char acc[CIPC__WS_ACCEPT_SIZE];
            CHECK_INT(cipc__ws_accept_key(hs.key.p, hs.key.n, acc), ==, 0);
            CHECK_STR(hs.accept, acc);
            if (t->origin)
                CHECK_MEM(hs.origin.p, hs.origin.n, t->origin);
            else
                CHECK(hs.origin.p == NULL);
            char all[512];
            join(all, sizeof all, hs.protocols, hs.n_protocols);
            CHECK_STR(all, t->protos ? t->protos : "");
            CHECK_INT(hs.n_protocols_offered, ==, t->offered);
            CHECK_INT(hs.n_extension_lines, ==, t->ext_lines);
            CHECK(t->ext_lines ? hs.extensions.p != NULL : hs.extensions.p == NULL);
        }
        free(copy);
    }
    /* The accept value of the RFC's sample request. */
    struct cipc__http_header hdrs[MAXH];
    struct cipc__http_request req;
    struct cipc__ws_server_hs hs;
    char *copy;
    CHECK_INT(server_check_text(REQ(UPG GOOD_KEY V13), &copy, &req, hdrs, &hs), ==, 0);
    CHECK_STR(hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK_MEM(hs.key.p, hs.key.n, "dGhlIHNhbXBsZSBub25jZQ==");
    free(copy);
}

static void test_pick_subprotocol(void)
{
    struct cipc__http_header hdrs[MAXH];
    struct cipc__http_request req;
    struct cipc__ws_server_hs hs;
    char *copy;
    CHECK_INT(
        server_check_text(REQ(UPG GOOD_KEY V13 "Sec-WebSocket-Protocol: chat, json, Soap\r\n"),
                          &copy, &req, hdrs, &hs),
        ==, 0);
    const char *a[] = {"xml", "json", "chat"};
    CHECK_INT(cipc__ws_pick_subprotocol(&hs, a, 3), ==, 1); /* the server's order wins */
    const char *b[] = {"chat", "json"};
    CHECK_INT(cipc__ws_pick_subprotocol(&hs, b, 2), ==, 0);
    const char *c[] = {"soap", "CHAT", "jso"};
    CHECK_INT(cipc__ws_pick_subprotocol(&hs, c, 3), ==, -1); /* case-sensitive, whole token */
    const char *d[] = {"Soap"};
    CHECK_INT(cipc__ws_pick_subprotocol(&hs, d, 1), ==, 0);
    CHECK_INT(cipc__ws_pick_subprotocol(&hs, NULL, 0), ==, -1);
    free(copy);
    CHECK_INT(server_check_text(REQ(UPG GOOD_KEY V13), &copy, &req, hdrs, &hs), ==, 0);
    CHECK_INT(cipc__ws_pick_subprotocol(&hs, a, 3), ==, -1);
    free(copy);
}

/* ---- Extension grammar ----------------------------------------------------------------- */

/* The extensions of a list as "name;p=v;q" joined with '|'; a quoted value as p="v". NULL
 * result in `want`: CIPC_EPROTO expected. */
struct ext_case {
    const char *in, *want;
};

static const struct ext_case ext_cases[] = {
    {"permessage-deflate", "permessage-deflate"},
    {"permessage-deflate; client_max_window_bits", "permessage-deflate;client_max_window_bits"},
    {"permessage-deflate;client_max_window_bits=10 ; server_no_context_takeover",
     "permessage-deflate;client_max_window_bits=10;server_no_context_takeover"},
    {"a; b = 1 ,c;d=\"2\" , e", "a;b=1|c;d=\"2\"|e"},
    {"a;b=\"x\\yz\"", "a;b=\"x\\yz\""},
    {" , ,a,, b ,", "a|b"},
    {"", ""},
    {"  ", ""},
    {"\t a \t;\t b \t", "a;b"},
    {"a;b;c;d;e;f;g;h;i;j", "a;b;c;d;e;f;g;h;i;[9]"},
    /* Malformed. */
    {"a b", NULL},
    {";a", NULL},
    {"a;", NULL},
    {"a;;b", NULL},
    {"a;b=", NULL},
    {"a;b==1", NULL},
    {"a;=1", NULL},
    {"a;b=\"1", NULL},
    {"a;b=\"\"", NULL},
    {"a;b=\"1 0\"", NULL},
    {"a;b=\"1\\\"", NULL},
    {"a;b=\"1\\", NULL},
    {"a;b=\"1\"x", NULL},
    {"a;b=1 2", NULL},
    {"a;b=(1)", NULL},
    {"a;b=\"(1)\"", NULL},
    {"a=1", NULL},
    {"\"a\"", NULL},
    {"a,\x01", NULL},
    {"a;b=caf\xc3\xa9", NULL},
};

static void render_exts(const char *in, char *out, size_t cap, int *rc_out)
{
    size_t n = strlen(in), pos = 0, len = 0;
    struct cipc__ws_ext e;
    int rc;
    out[0] = '\0';
    char *src = dup_exact(in, n);
    while ((rc = cipc__ws_ext_next(src, n, &pos, &e)) == 1) {
        CHECK(pos <= n);
        len += (size_t)snprintf(out + len, cap - len, "%s%.*s", len ? "|" : "", (int)e.name.n,
                                e.name.p);
        size_t shown = e.n_params < CIPC__WS_EXT_MAX_PARAMS ? e.n_params : CIPC__WS_EXT_MAX_PARAMS;
        for (size_t k = 0; k < shown; k++) {
            const struct cipc__ws_ext_param *p = &e.params[k];
            len += (size_t)snprintf(out + len, cap - len, ";%.*s", (int)p->name.n, p->name.p);
            if (p->value.p)
                len += (size_t)snprintf(out + len, cap - len, p->quoted ? "=\"%.*s\"" : "=%.*s",
                                        (int)p->value.n, p->value.p);
        }
        if (e.n_params > shown)
            len += (size_t)snprintf(out + len, cap - len, ";[%zu]", e.n_params);
        CHECK(len < cap);
    }
    *rc_out = rc;
    if (rc == 0)
        CHECK_INT(pos, ==, n);
    free(src);
}

static void test_ext_grammar(void)
{
    for (size_t i = 0; i < sizeof ext_cases / sizeof ext_cases[0]; i++) {
        char out[512];
        int rc;
        render_exts(ext_cases[i].in, out, sizeof out, &rc);
        if (ext_cases[i].want) {
            CHECK_INT(rc, ==, 0);
            CHECK_STR(out, ext_cases[i].want);
        } else {
            if (rc != CIPC_EPROTO)
                fprintf(stderr, "case \"%s\" parsed as \"%s\"\n", ext_cases[i].in, out);
            CHECK_INT(rc, ==, CIPC_EPROTO);
        }
    }
}

/* ---- permessage-deflate, server side --------------------------------------------------- */

struct neg_case {
    const char *lines[3];           /* Sec-WebSocket-Extensions values */
    struct cipc__ws_pmd_config cfg; /* .enabled is forced on */
    int want;                       /* 1, 0 or CIPC_EPROTO */
    const char *resp;
    bool snct, cnct;
    int smwb, cmwb;
};

#define PMD "permessage-deflate"

static const struct neg_case neg_cases[] = {
    {.lines = {PMD}, .cfg = {0}, .want = 1, .resp = PMD, .smwb = 15},
    {.lines = {PMD "; client_max_window_bits"}, .cfg = {0}, .want = 1, .resp = PMD, .smwb = 15},
    {.lines = {PMD "; client_max_window_bits=10"},
     .cfg = {0},
     .want = 1,
     .resp = PMD "; client_max_window_bits=10",
     .smwb = 15,
     .cmwb = 10},
    {.lines = {PMD "; client_max_window_bits=\"10\""},
     .cfg = {0},
     .want = 1,
     .resp = PMD "; client_max_window_bits=10",
     .smwb = 15,
     .cmwb = 10},
    {.lines = {PMD "; client_max_window_bits=\"1\\0\""},
     .cfg = {0},
     .want = 1,
     .resp = PMD "; client_max_window_bits=10",
     .smwb = 15,
     .cmwb = 10},
    {.lines = {PMD "; server_max_window_bits=8"},
     .cfg = {0},
     .want = 1,
     .resp = PMD "; server_max_window_bits=8",
     .smwb = 8},
    {.lines = {PMD "; server_max_window_bits=15"},
     .cfg = {0},
     .want = 1,
     .resp = PMD "; server_max_window_bits=15",
     .smwb = 15},
    {.lines = {PMD "; server_max_window_bits=\"12\""},
     .cfg = {0},
     .want = 1,
     .resp = PMD "; server_max_window_bits=12",
     .smwb = 12},
    {.lines = {PMD "; server_no_context_takeover"},
     .cfg = {0},
     .want = 1,
     .resp = PMD "; server_no_context_takeover",
     .snct = true,
     .smwb = 15},
    {.lines = {PMD "; client_no_context_takeover"},
     .cfg = {0},
     .want = 1,
     .resp = PMD "; client_no_context_takeover",
     .cnct = true,
     .smwb = 15},
    {.lines =
         {PMD "; Server_No_Context_Takeover; CLIENT_NO_CONTEXT_TAKEOVER; server_max_window_bits=9; "
              "client_max_window_bits=9"},
     .cfg = {0},
     .want = 1,
     .resp =
         PMD "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; "
             "client_max_window_bits=9",
     .snct = true,
     .cnct = true,
     .smwb = 9,
     .cmwb = 9},
    {.lines = {"PerMessage-Deflate"}, .cfg = {0}, .want = 1, .resp = PMD, .smwb = 15},
    /* The configuration's requests. */
    {.lines = {PMD},
     .cfg = {.server_no_context_takeover = true, .client_no_context_takeover = true},
     .want = 1,
     .resp = PMD "; server_no_context_takeover; client_no_context_takeover",
     .snct = true,
     .cnct = true,
     .smwb = 15},
    {.lines = {PMD},
     .cfg = {.server_max_window_bits = 12},
     .want = 1,
     .resp = PMD "; server_max_window_bits=12",
     .smwb = 12},
    {.lines = {PMD}, .cfg = {.server_max_window_bits = 15}, .want = 1, .resp = PMD, .smwb = 15},
    {.lines = {PMD "; server_max_window_bits=10"},
     .cfg = {.server_max_window_bits = 12},
     .want = 1,
     .resp = PMD "; server_max_window_bits=10",
     .smwb = 10},
    {.lines = {PMD "; server_max_window_bits=14"},
     .cfg = {.server_max_window_bits = 12},
     .want = 1,
     .resp = PMD "; server_max_window_bits=12",
     .smwb = 12},
    {.lines = {PMD},
     .cfg = {.client_max_window_bits = 10},
     .want = 1,
     .resp = PMD,
     .smwb = 15}, /* not offered: not limited */
    {.lines = {PMD "; client_max_window_bits"},
     .cfg = {.client_max_window_bits = 10},
     .want = 1,
     .resp = PMD "; client_max_window_bits=10",
     .smwb = 15,
     .cmwb = 10},
    {.lines = {PMD "; client_max_window_bits=9"},
     .cfg = {.client_max_window_bits = 10},
     .want = 1,
     .resp = PMD "; client_max_window_bits=9",
     .smwb = 15,
     .cmwb = 9},
    {.lines = {PMD "; client_max_window_bits=12"},
     .cfg = {.client_max_window_bits = 10},
     .want = 1,
     .resp = PMD "; client_max_window_bits=10",
     .smwb = 15,
     .cmwb = 10},
    {.lines = {PMD "; client_no_context_takeover"},
     .cfg = {.server_no_context_takeover = true},
     .want = 1,
     .resp = PMD "; server_no_context_takeover; client_no_context_takeover",
     .snct = true,
     .cnct = true,
     .smwb = 15},
    /* Invalid parameters decline the offer (and no other offer: 0). */
    {.lines = {PMD "; client_max_window_bits=7"}, .cfg = {0}, .want = 0},
    {.lines = {PMD "; client_max_window_bits=16"}, .cfg = {0}, .want = 0},
    {.lines = {PMD "; server_max_window_bits=7"}, .cfg = {0}, .want = 0},
    {.lines = {PMD "; server_max_window_bits=16"}, .cfg = {0}, .want = 0},
    {.lines = {PMD "; server_max_window_bits=08"}, .cfg = {0}, .want = 0},
    {.lines = {PMD "; server_max_window_bits=+9"}, .cfg = {0}, .want = 0},
    {.lines = {PMD "; server_max_window_bits=\"\\x\""}, .cfg = {0}, .want = 0},
    {.lines = {PMD "; server_max_window_bits=100"}, .cfg = {0}, .want = 0},
    {.lines = {PMD "; server_max_window_bits"}, .cfg = {0}, .want = 0},
    {.lines = {PMD "; server_no_context_takeover=1"}, .cfg = {0}, .want = 0},
    {.lines = {PMD "; client_no_context_takeover=\"x\""}, .cfg = {0}, .want = 0},
    {.lines = {PMD "; server_no_context_takeover; server_no_context_takeover"},
     .cfg = {0},
     .want = 0},
    {.lines = {PMD "; client_no_context_takeover; client_no_context_takeover"},
     .cfg = {0},
     .want = 0},
    {.lines = {PMD "; client_max_window_bits; client_max_window_bits=10"}, .cfg = {0}, .want = 0},
    {.lines = {PMD "; server_max_window_bits=10; server_max_window_bits=10"},
     .cfg = {0},
     .want = 0},
    {.lines = {PMD "; foo"}, .cfg = {0}, .want = 0},
    {.lines = {PMD "; foo=1"}, .cfg = {0}, .want = 0},
    {.lines = {PMD "; a; b; c; d; e; f; g; h; i; j"}, .cfg = {0}, .want = 0},
    {.lines = {"x-webkit-deflate-frame"}, .cfg = {0}, .want = 0},
    {.lines = {""}, .cfg = {0}, .want = 0},
    /* The first acceptable offer wins; others are skipped. */
    {.lines = {PMD "; server_max_window_bits=7, " PMD "; client_max_window_bits"},
     .cfg = {0},
     .want = 1,
     .resp = PMD,
     .smwb = 15},
    {.lines = {PMD "; foo, " PMD "; server_max_window_bits=10, " PMD},
     .cfg = {0},
     .want = 1,
     .resp = PMD "; server_max_window_bits=10",
     .smwb = 10},
    {.lines = {"x-foo; a=1, " PMD "; client_no_context_takeover"},
     .cfg = {0},
     .want = 1,
     .resp = PMD "; client_no_context_takeover",
     .cnct = true,
     .smwb = 15},
    {.lines = {PMD "; client_max_window_bits=16", "foo", PMD "; server_no_context_takeover"},
     .cfg = {0},
     .want = 1,
     .resp = PMD "; server_no_context_takeover",
     .snct = true,
     .smwb = 15},
    {.lines = {PMD "; server_max_window_bits=11", PMD},
     .cfg = {0},
     .want = 1,
     .resp = PMD "; server_max_window_bits=11",
     .smwb = 11},
    /* Malformed headers: the whole handshake fails, even after an accepted offer. */
    {.lines = {PMD "; server_max_window_bits=\"1 0\""}, .cfg = {0}, .want = CIPC_EPROTO},
    {.lines = {PMD ";"}, .cfg = {0}, .want = CIPC_EPROTO},
    {.lines = {PMD, "x y"}, .cfg = {0}, .want = CIPC_EPROTO},
    {.lines = {PMD "; a=\"unterminated"}, .cfg = {0}, .want = CIPC_EPROTO},
};

static void make_lines(const char *const *lines, struct cipc__http_header *hdrs, size_t *nh)
{
    static const char *names[] = {"Sec-WebSocket-Extensions", "sec-websocket-extensions", "X"};
    *nh = 0;
    /* An unrelated field first, so the walk must skip it. */
    hdrs[(*nh)++] = (struct cipc__http_header){{"Host", 4}, {"h", 1}};
    for (size_t i = 0; i < 3 && lines[i]; i++) {
        hdrs[*nh].name.p = names[i % 2];
        hdrs[*nh].name.n = strlen(names[i % 2]);
        hdrs[*nh].value.p = lines[i];
        hdrs[*nh].value.n = strlen(lines[i]);
        (*nh)++;
    }
}

static void test_negotiate_server(void)
{
    for (size_t i = 0; i < sizeof neg_cases / sizeof neg_cases[0]; i++) {
        const struct neg_case *t = &neg_cases[i];
        struct cipc__http_header hdrs[4];
        size_t nh;
        make_lines(t->lines, hdrs, &nh);
        struct cipc__ws_pmd_config cfg = t->cfg;
        cfg.enabled = true;
        cfg.mem_level = 5;
        struct cipc__ws_pmd_params agreed;
        memset(&agreed, 0x5a, sizeof agreed);
        char resp[CIPC__WS_PMD_HDR_MAX];
        int rc = cipc__ws_pmd_negotiate_server(hdrs, nh, &cfg, &agreed, resp, sizeof resp);
        if (rc != t->want)
            fprintf(stderr, "case %zu: %s -> %d \"%s\"\n", i, t->lines[0], rc, resp);
        CHECK_INT(rc, ==, t->want);
        if (rc != 1) {
            CHECK_STR(resp, "");
            continue;
        }
        CHECK_STR(resp, t->resp);
        CHECK_INT(agreed.server_no_context_takeover, ==, t->snct);
        CHECK_INT(agreed.client_no_context_takeover, ==, t->cnct);
        CHECK_INT(agreed.server_max_window_bits, ==, t->smwb);
        CHECK_INT(agreed.client_max_window_bits, ==, t->cmwb);
        CHECK_INT(agreed.mem_level, ==, 5);

        /* A client that made this offer accepts the answer with the same result. */
        struct cipc__ws_pmd_params back;
        struct cipc__ws_pmd_config ccfg = {.enabled = true, .mem_level = 5};
        CHECK_INT(cipc__ws_pmd_accept_client(resp, strlen(resp), &ccfg, &back), ==, 0);
        CHECK_INT(back.server_no_context_takeover, ==, t->snct);
        CHECK_INT(back.client_no_context_takeover, ==, t->cnct);
        CHECK_INT(back.server_max_window_bits, ==, t->smwb);
        CHECK_INT(back.client_max_window_bits, ==, t->cmwb);
    }

    /* Disabled or absent configuration: nothing is parsed. */
    const char *bad[] = {"x y", NULL, NULL};
    struct cipc__http_header hdrs[4];
    size_t nh;
    make_lines(bad, hdrs, &nh);
    struct cipc__ws_pmd_params agreed;
    char resp[CIPC__WS_PMD_HDR_MAX];
    struct cipc__ws_pmd_config off = {0};
    CHECK_INT(cipc__ws_pmd_negotiate_server(hdrs, nh, &off, &agreed, resp, sizeof resp), ==, 0);
    CHECK_INT(cipc__ws_pmd_negotiate_server(hdrs, nh, NULL, &agreed, resp, sizeof resp), ==, 0);

    /* Too small an answer buffer. */
    const char *full[] = {PMD "; server_no_context_takeover; client_no_context_takeover; "
                              "server_max_window_bits=15; client_max_window_bits=15",
                          NULL, NULL};
    make_lines(full, hdrs, &nh);
    struct cipc__ws_pmd_config on = {.enabled = true};
    CHECK_INT(cipc__ws_pmd_negotiate_server(hdrs, nh, &on, &agreed, resp, sizeof resp), ==, 1);
    CHECK_STR(resp, full[0]);
    CHECK_INT(strlen(resp) + 1, <=, CIPC__WS_PMD_HDR_MAX);
    CHECK_INT(cipc__ws_pmd_negotiate_server(hdrs, nh, &on, &agreed, resp, 20), ==, CIPC_ETOOBIG);
    CHECK_STR(resp, "");
}

/* ---- permessage-deflate, client side --------------------------------------------------- */

static void test_offer(void)
{
    char buf[CIPC__WS_PMD_HDR_MAX];
    struct cipc__ws_pmd_config cfg = {.enabled = true};
    CHECK_INT(cipc__ws_pmd_offer(&cfg, buf, sizeof buf), ==, (int)strlen(buf));
    CHECK_STR(buf, PMD "; client_max_window_bits");
    cfg = (struct cipc__ws_pmd_config){.enabled = true,
                                       .server_no_context_takeover = true,
                                       .client_no_context_takeover = true,
                                       .server_max_window_bits = 10,
                                       .client_max_window_bits = 9};
    CHECK_INT(cipc__ws_pmd_offer(&cfg, buf, sizeof buf), >, 0);
    CHECK_STR(buf, PMD "; server_no_context_takeover; client_no_context_takeover; "
                       "server_max_window_bits=10; client_max_window_bits=9");
    CHECK_INT(cipc__ws_pmd_offer(&cfg, buf, 30), ==, CIPC_ETOOBIG);
    CHECK_STR(buf, "");
    cfg.server_max_window_bits = 7;
    CHECK_INT(cipc__ws_pmd_offer(&cfg, buf, sizeof buf), ==, -EINVAL);
    cfg.server_max_window_bits = 0;
    cfg.client_max_window_bits = 16;
    CHECK_INT(cipc__ws_pmd_offer(&cfg, buf, sizeof buf), ==, -EINVAL);
    cfg.enabled = false;
    CHECK_INT(cipc__ws_pmd_offer(&cfg, buf, sizeof buf), ==, 0);
    CHECK_STR(buf, "");
    CHECK_INT(cipc__ws_pmd_offer(NULL, buf, sizeof buf), ==, 0);
}

struct acc_case {
    const char *resp;
    struct cipc__ws_pmd_config cfg; /* .enabled is forced on */
    int want;                       /* 0 or CIPC_EPROTO */
    bool snct, cnct;
    int smwb, cmwb;
};

static const struct acc_case acc_cases[] = {
    {.resp = PMD, .cfg = {0}, .want = 0, .smwb = 15},
    {.resp = "PERMESSAGE-DEFLATE", .cfg = {0}, .want = 0, .smwb = 15},
    {.resp = PMD "; server_no_context_takeover", .cfg = {0}, .want = 0, .snct = true, .smwb = 15},
    {.resp = PMD "; client_no_context_takeover", .cfg = {0}, .want = 0, .cnct = true, .smwb = 15},
    {.resp = PMD "; server_max_window_bits=8", .cfg = {0}, .want = 0, .smwb = 8},
    {.resp = PMD "; client_max_window_bits=8", .cfg = {0}, .want = 0, .smwb = 15, .cmwb = 8},
    {.resp = PMD "; client_max_window_bits=\"15\"", .cfg = {0}, .want = 0, .smwb = 15, .cmwb = 15},
    {.resp = PMD, .cfg = {.client_no_context_takeover = true}, .want = 0, .cnct = true, .smwb = 15},
    {.resp = PMD, .cfg = {.client_max_window_bits = 10}, .want = 0, .smwb = 15, .cmwb = 10},
    {.resp = PMD "; client_max_window_bits=9",
     .cfg = {.client_max_window_bits = 10},
     .want = 0,
     .smwb = 15,
     .cmwb = 9},
    {.resp = PMD "; server_max_window_bits=10",
     .cfg = {.server_max_window_bits = 10},
     .want = 0,
     .smwb = 10},
    {.resp = PMD "; server_max_window_bits=9",
     .cfg = {.server_max_window_bits = 10},
     .want = 0,
     .smwb = 9},
    {.resp = PMD "; server_no_context_takeover",
     .cfg = {.server_no_context_takeover = true},
     .want = 0,
     .snct = true,
     .smwb = 15},
    /* Failures. */
    {.resp = PMD, .cfg = {.server_no_context_takeover = true}, .want = CIPC_EPROTO},
    {.resp = PMD, .cfg = {.server_max_window_bits = 10}, .want = CIPC_EPROTO},
    {.resp = PMD "; server_max_window_bits=11",
     .cfg = {.server_max_window_bits = 10},
     .want = CIPC_EPROTO},
    {.resp = PMD "; client_max_window_bits=11",
     .cfg = {.client_max_window_bits = 10},
     .want = CIPC_EPROTO},
    {.resp = PMD "; client_max_window_bits", .cfg = {0}, .want = CIPC_EPROTO},
    {.resp = PMD "; client_max_window_bits=7", .cfg = {0}, .want = CIPC_EPROTO},
    {.resp = PMD "; server_max_window_bits=16", .cfg = {0}, .want = CIPC_EPROTO},
    {.resp = PMD "; server_max_window_bits", .cfg = {0}, .want = CIPC_EPROTO},
    {.resp = PMD "; foo", .cfg = {0}, .want = CIPC_EPROTO},
    {.resp = PMD "; server_no_context_takeover; server_no_context_takeover",
     .cfg = {0},
     .want = CIPC_EPROTO},
    {.resp = PMD "; server_no_context_takeover=1", .cfg = {0}, .want = CIPC_EPROTO},
    {.resp = PMD ", " PMD, .cfg = {0}, .want = CIPC_EPROTO},
    {.resp = "x-foo", .cfg = {0}, .want = CIPC_EPROTO},
    {.resp = "", .cfg = {0}, .want = CIPC_EPROTO},
    {.resp = PMD ";", .cfg = {0}, .want = CIPC_EPROTO},
};

static void test_accept_client(void)
{
    for (size_t i = 0; i < sizeof acc_cases / sizeof acc_cases[0]; i++) {
        const struct acc_case *t = &acc_cases[i];
        struct cipc__ws_pmd_config cfg = t->cfg;
        cfg.enabled = true;
        struct cipc__ws_pmd_params agreed;
        int rc = cipc__ws_pmd_accept_client(t->resp, strlen(t->resp), &cfg, &agreed);
        if (rc != t->want)
            fprintf(stderr, "case %zu: %s -> %d\n", i, t->resp, rc);
        CHECK_INT(rc, ==, t->want);
        if (rc == 0) {
            CHECK_INT(agreed.server_no_context_takeover, ==, t->snct);
            CHECK_INT(agreed.client_no_context_takeover, ==, t->cnct);
            CHECK_INT(agreed.server_max_window_bits, ==, t->smwb);
            CHECK_INT(agreed.client_max_window_bits, ==, t->cmwb);
        }
    }
    struct cipc__ws_pmd_params agreed;
    struct cipc__ws_pmd_config off = {0};
    CHECK_INT(cipc__ws_pmd_accept_client(PMD, strlen(PMD), &off, &agreed), ==, CIPC_EPROTO);
    CHECK_INT(cipc__ws_pmd_accept_client(PMD, strlen(PMD), NULL, &agreed), ==, CIPC_EPROTO);
}

/* ---- Client: checking the response ----------------------------------------------------- */

struct cli_case {
    const char *head;
    bool pmd_on;
    const char *err; /* NULL: success; else a substring of the message */
    const char *proto;
    int proto_index;
    bool pmd;
};

#define ACC     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
#define R101    "HTTP/1.1 101 Switching Protocols\r\n"
#define RESP(x) R101 x "\r\n"

static const struct cli_case cli_cases[] = {
    {.head = RESP(UPG ACC), .pmd_on = false, .err = NULL, .proto_index = -1},
    {.head = RESP("upgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n" ACC),
     .pmd_on = false,
     .err = NULL,
     .proto_index = -1},
    {.head = RESP(UPG ACC "Sec-WebSocket-Protocol: superchat\r\n"),
     .pmd_on = false,
     .err = NULL,
     .proto = "superchat",
     .proto_index = 1},
    {.head = RESP(UPG ACC "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
     .pmd_on = true,
     .err = NULL,
     .proto_index = -1,
     .pmd = true},
    {.head =
         RESP(UPG ACC "Sec-WebSocket-Extensions:\r\nSec-WebSocket-Extensions: permessage-deflate; "
                      "client_max_window_bits=12\r\n"),
     .pmd_on = true,
     .err = NULL,
     .proto_index = -1,
     .pmd = true},
    {.head = "HTTP/1.1 200 OK\r\n" UPG ACC "\r\n", .pmd_on = false, .err = "status 200"},
    {.head = "HTTP/1.0 101 Switching Protocols\r\n" UPG ACC "\r\n",
     .pmd_on = false,
     .err = "HTTP/1.0"},
    {.head = RESP("Connection: Upgrade\r\n" ACC), .pmd_on = false, .err = "Upgrade"},
    {.head = RESP("Upgrade: websocket, h2c\r\nConnection: Upgrade\r\n" ACC),
     .pmd_on = false,
     .err = "Upgrade"},
    {.head = RESP("Upgrade: websocket\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ACC),
     false,
     "Upgrade"},
    {.head = RESP("Upgrade: ws\r\nConnection: Upgrade\r\n" ACC), .pmd_on = false, .err = "Upgrade"},
    {.head = RESP("Upgrade: websocket\r\n" ACC), .pmd_on = false, .err = "Connection"},
    {.head = RESP(UPG), .pmd_on = false, .err = "no Sec-WebSocket-Accept"},
    {.head = RESP(UPG ACC ACC), .pmd_on = false, .err = "more than one Sec-WebSocket-Accept"},
    {.head = RESP(UPG "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kCOzMoo+pO+lkQ\r\n"),
     .pmd_on = false,
     .err = "is wrong"},
    {.head = RESP(UPG "Sec-WebSocket-Accept: S3pPLMBiTxaQ9kCOzMoo+pO+lkQ=\r\n"),
     .pmd_on = false,
     .err = "is wrong"},
    {.head = RESP(UPG "Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
     .pmd_on = false,
     .err = "is wrong"},
    {.head = RESP(UPG ACC "Sec-WebSocket-Protocol: soap\r\n"),
     .pmd_on = false,
     .err = "\"soap\", not offered"},
    {.head = RESP(UPG ACC "Sec-WebSocket-Protocol: Chat\r\n"),
     .pmd_on = false,
     .err = "not offered"},
    {.head = RESP(UPG ACC "Sec-WebSocket-Protocol: chat, superchat\r\n"),
     .pmd_on = false,
     .err = "not offered"},
    {.head = RESP(UPG ACC "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n"),
     false,
     "more than one Sec-WebSocket-Protocol"},
    {.head = RESP(UPG ACC "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
     .pmd_on = false,
     .err = "not offered"},
    {.head = RESP(UPG ACC "Sec-WebSocket-Extensions: x-foo\r\n"),
     .pmd_on = true,
     .err = "\"x-foo\" was not offered"},
    {.head = RESP(UPG ACC "Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate\r\n"),
     true,
     "more than one extension"},
    {.head = RESP(UPG ACC "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                          "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
     .pmd_on = true,
     .err = "more than one extension"},
    {.head = RESP(UPG ACC "Sec-WebSocket-Extensions: permessage-deflate; foo\r\n"),
     true,
     "invalid permessage-deflate"},
    {.head =
         RESP(UPG ACC "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"),
     true,
     "invalid permessage-deflate"},
    {.head = RESP(UPG ACC "Sec-WebSocket-Extensions: permessage-deflate;\r\n"),
     .pmd_on = true,
     .err = "malformed"},
};

static void test_client_check(void)
{
    const char *offered[] = {"chat", "superchat"};
    for (size_t i = 0; i < sizeof cli_cases / sizeof cli_cases[0]; i++) {
        const struct cli_case *t = &cli_cases[i];
        struct cipc__http_header hdrs[MAXH];
        struct cipc__http_response_head head;
        size_t len = strlen(t->head);
        char *copy = dup_exact(t->head, len);
        CHECK_INT(cipc__http_parse_response(copy, len, &head, hdrs, MAXH, 0), ==, (int)len);
        struct cipc__ws_pmd_config pmd = {.enabled = t->pmd_on};
        struct cipc__ws_client_hs hs;
        char err[256];
        int rc =
            cipc__ws_client_check(&head, hdrs, head.n_headers, "dGhlIHNhbXBsZSBub25jZQ==", offered,
                                  2, &pmd, &hs, err, sizeof err);
        if (!t->err) {
            if (rc != 0)
                fprintf(stderr, "case %zu: %s", i, err);
            CHECK_INT(rc, ==, 0);
            CHECK_STR(err, "");
            if (t->proto)
                CHECK_MEM(hs.protocol.p, hs.protocol.n, t->proto);
            else
                CHECK(hs.protocol.p == NULL);
            CHECK_INT(hs.protocol_index, ==, t->proto_index);
            CHECK_INT(hs.pmd, ==, t->pmd);
        } else {
            CHECK_INT(rc, ==, CIPC_EPROTO);
            if (!strstr(err, t->err))
                fprintf(stderr, "case %zu: \"%s\" lacks \"%s\"\n", i, err, t->err);
            CHECK(strstr(err, t->err) != NULL);
        }
        /* A tiny or absent error buffer is fine. */
        char tiny[4];
        CHECK_INT(cipc__ws_client_check(&head, hdrs, head.n_headers, "dGhlIHNhbXBsZSBub25jZQ==",
                                        offered, 2, &pmd, &hs, tiny, sizeof tiny),
                  ==, rc);
        CHECK_INT(strlen(tiny), <, sizeof tiny);
        CHECK_INT(cipc__ws_client_check(&head, hdrs, head.n_headers,
                                        "dGhlIHNhbXBsZSBub25jZQ==", offered, 2, &pmd, &hs, NULL, 0),
                  ==, rc);
        free(copy);
    }

    /* The agreed parameters come through. */
    const char *r = RESP(UPG ACC "Sec-WebSocket-Extensions: permessage-deflate; "
                                 "server_no_context_takeover; client_max_window_bits=11\r\n");
    struct cipc__http_header hdrs[MAXH];
    struct cipc__http_response_head head;
    CHECK_INT(cipc__http_parse_response(r, strlen(r), &head, hdrs, MAXH, 0), ==, (int)strlen(r));
    struct cipc__ws_pmd_config pmd = {.enabled = true, .server_no_context_takeover = true};
    struct cipc__ws_client_hs hs;
    CHECK_INT(cipc__ws_client_check(&head, hdrs, head.n_headers, "dGhlIHNhbXBsZSBub25jZQ==", NULL,
                                    0, &pmd, &hs, NULL, 0),
              ==, 0);
    CHECK(hs.pmd);
    CHECK(hs.pmd_params.server_no_context_takeover);
    CHECK(!hs.pmd_params.client_no_context_takeover);
    CHECK_INT(hs.pmd_params.server_max_window_bits, ==, 15);
    CHECK_INT(hs.pmd_params.client_max_window_bits, ==, 11);
}

/* ---- Client: building the request ------------------------------------------------------ */

static void test_client_request(void)
{
    cipc_buf b = CIPC_BUF_INIT;
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    CHECK_INT(
        cipc__ws_client_request(&b, "example.com:8080", "/chat?x=1", key, NULL, 0, NULL, NULL, 0),
        ==, 0);
    CHECK_STR(b.data, "GET /chat?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n");
    cipc_buf_reset(&b);
    const char *protos[] = {"chat", "superchat"};
    const char *extra[] = {"Origin: http://example.com", "Authorization:Bearer x\ty"};
    CHECK_INT(cipc__ws_client_request(&b, "h", "/", key, protos, 2,
                                      "permessage-deflate; client_max_window_bits", extra, 2),
              ==, 0);
    CHECK_STR(b.data, "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Protocol: chat, superchat\r\n"
                      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                      "Origin: http://example.com\r\nAuthorization:Bearer x\ty\r\n\r\n");

    /* The request is what the server side accepts. */
    struct cipc__http_header hdrs[MAXH];
    struct cipc__http_request req = {.headers = hdrs};
    int status;
    CHECK_INT(cipc__http_parse_request(b.data, b.len, 0, NULL, &req, &status), ==, (int)b.len);
    struct cipc__ws_server_hs hs;
    CHECK_INT(cipc__ws_server_check(req.headers, req.n_headers, req.method.p, req.method.n,
                                    req.minor, &hs),
              ==, 0);
    CHECK_INT(hs.n_protocols, ==, 2);
    CHECK_MEM(hs.origin.p, hs.origin.n, "http://example.com");

    /* Bad arguments leave the buffer as it was. */
    size_t before = b.len;
    const char *bad_extra[][1] = {{"X-A: a\r\nX-B: b"},
                                  {"X-A: a\nb"},
                                  {"X A: a"},
                                  {": a"},
                                  {"X-A"},
                                  {"Host: other"},
                                  {"sec-websocket-key: x"},
                                  {"Sec-WebSocket-Protocol: x"},
                                  {"content-length: 5"},
                                  {"Transfer-Encoding: chunked"},
                                  {"connection: close"},
                                  {"X-A: a\x7f"}};
    for (size_t i = 0; i < sizeof bad_extra / sizeof bad_extra[0]; i++)
        CHECK_INT(cipc__ws_client_request(&b, "h", "/", key, NULL, 0, NULL, bad_extra[i], 1), ==,
                  CIPC_EHEADER);
    const char *bad_proto[] = {"a b"};
    CHECK_INT(cipc__ws_client_request(&b, "h", "/", key, bad_proto, 1, NULL, NULL, 0), ==,
              CIPC_EHEADER);
    const char *empty_proto[] = {""};
    CHECK_INT(cipc__ws_client_request(&b, "h", "/", key, empty_proto, 1, NULL, NULL, 0), ==,
              CIPC_EHEADER);
    CHECK_INT(cipc__ws_client_request(&b, "h\r\nX: y", "/", key, NULL, 0, NULL, NULL, 0), ==,
              CIPC_EHEADER);
    CHECK_INT(cipc__ws_client_request(&b, "", "/", key, NULL, 0, NULL, NULL, 0), ==, CIPC_EHEADER);
    CHECK_INT(cipc__ws_client_request(&b, "h", "/", "short", NULL, 0, NULL, NULL, 0), ==,
              CIPC_EHEADER);
    CHECK_INT(cipc__ws_client_request(&b, "h", "/", key, NULL, 0, "a\r\nb", NULL, 0), ==,
              CIPC_EHEADER);
    CHECK_INT(cipc__ws_client_request(&b, "h", "chat", key, NULL, 0, NULL, NULL, 0), ==, CIPC_EURL);
    CHECK_INT(cipc__ws_client_request(&b, "h", "/a b", key, NULL, 0, NULL, NULL, 0), ==, CIPC_EURL);
    CHECK_INT(cipc__ws_client_request(&b, "h", "/a#f", key, NULL, 0, NULL, NULL, 0), ==, CIPC_EURL);
    CHECK_INT(cipc__ws_client_request(&b, "h", "/a\r\n", key, NULL, 0, NULL, NULL, 0), ==,
              CIPC_EURL);
    CHECK_INT(cipc__ws_client_request(&b, "h", "/caf\xc3\xa9", key, NULL, 0, NULL, NULL, 0), ==,
              CIPC_EURL);
    CHECK_INT(b.len, ==, before);
    cipc_buf_free(&b);
}

/* ---- The response-head parser ---------------------------------------------------------- */

enum { VALID = 0, MORE = 1, BAD = 2, BIG = 3 };

struct resp_case {
    const char *in;
    size_t len;       /* 0: strlen(in) */
    int kind;         /* VALID, MORE, BAD, BIG */
    const char *upto; /* errors: the input through the byte where the result is known */
    size_t at;        /* instead of upto: that prefix's length */
    size_t max_hdrs;  /* 0: MAXH */
    size_t max_head;
    int minor, status;
    const char *reason, *hdrs; /* hdrs: "name=value;" for every field */
};

static const struct resp_case resp_cases[] = {
    {.in = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
     .minor = 1,
     .status = 101,
     .reason = "Switching Protocols",
     .hdrs = "Upgrade=websocket;Connection=Upgrade;"},
    {.in = "HTTP/1.0 200 OK\r\n\r\n", .minor = 0, .status = 200, .reason = "OK", .hdrs = ""},
    {.in = "HTTP/1.1 204 \r\n\r\n", .minor = 1, .status = 204, .reason = "", .hdrs = ""},
    {.in = "HTTP/1.1 204\r\n\r\n", .minor = 1, .status = 204, .reason = "", .hdrs = ""},
    {.in = "HTTP/1.9 999 x\r\n\r\n", .minor = 9, .status = 999, .reason = "x", .hdrs = ""},
    {.in = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
     .minor = 1,
     .status = 100,
     .reason = "Continue",
     .hdrs = ""},
    {.in = "HTTP/1.1 200 OK \t caf\xc3\xa9 \x80\r\nX:   a b \t \r\nY:\r\nZ:\t:x:\r\n\r\nbody",
     .minor = 1,
     .status = 200,
     .reason = "OK \t caf\xc3\xa9 \x80",
     .hdrs = "X=a b;Y=;Z=:x:;"},
    {.in = "HTTP/1.1 200 OK\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n",
     .minor = 1,
     .status = 200,
     .reason = "OK",
     .hdrs = "!#$%&'*+-.^_`|~09azAZ=v;"},
    {.in = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n",
     .max_hdrs = 2,
     .minor = 1,
     .status = 200,
     .reason = "OK",
     .hdrs = "A=1;B=2;"},
    {.in = "HTTP/1.1 200 OK\r\nA: 1\r\n\r\n",
     .max_head = 25,
     .minor = 1,
     .status = 200,
     .reason = "OK",
     .hdrs = "A=1;"},
    /* Incomplete. */
    {.in = "", .kind = MORE},
    {.in = "HTTP/1.1 101", .kind = MORE},
    {.in = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n", .kind = MORE},
    {.in = "HTTP/1.1 101 x\r\n\r", .kind = MORE},
    /* Malformed. */
    {.in = "HTTP/2.0 200 OK\r\n\r\n", .kind = BAD, .upto = "HTTP/2"},
    {.in = "HTTP/1.x 200 OK\r\n\r\n", .kind = BAD, .upto = "HTTP/1.x"},
    {.in = "HTTP/1.10 200 OK\r\n\r\n", .kind = BAD, .upto = "HTTP/1.10"},
    {.in = "http/1.1 200 OK\r\n\r\n", .kind = BAD, .upto = "h"},
    {.in = "\r\nHTTP/1.1 200 OK\r\n\r\n", .kind = BAD, .upto = "\r"},
    {.in = "HTTP/1.1  200 OK\r\n\r\n", .kind = BAD, .upto = "HTTP/1.1  "},
    {.in = "HTTP/1.1 20 OK\r\n\r\n", .kind = BAD, .upto = "HTTP/1.1 20 "},
    {.in = "HTTP/1.1 2000 OK\r\n\r\n", .kind = BAD, .upto = "HTTP/1.1 2000"},
    {.in = "HTTP/1.1 099 OK\r\n\r\n", .kind = BAD, .upto = "HTTP/1.1 0"},
    {.in = "HTTP/1.1 20x OK\r\n\r\n", .kind = BAD, .upto = "HTTP/1.1 20x"},
    {.in = "HTTP/1.1 200\tOK\r\n\r\n", .kind = BAD, .upto = "200\t"},
    {.in = "HTTP/1.1 200 OK\n\r\n", .kind = BAD, .upto = "OK\n"},
    {.in = "HTTP/1.1 200 OK\rX\r\n\r\n", .kind = BAD, .upto = "OK\rX"},
    {.in = "HTTP/1.1 200 O\x01K\r\n\r\n", .kind = BAD, .upto = "O\x01"},
    {.in = "HTTP/1.1 200 O\x7fK\r\n\r\n", .kind = BAD, .upto = "O\x7f"},
    {.in = "HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n", .kind = BAD, .upto = "a\n"},
    {.in = "HTTP/1.1 200 OK\r\nX: a\r\n\n", .kind = BAD, .upto = "a\r\n\n"},
    {.in = "HTTP/1.1 200 OK\r\nX: a\r\n\rX", .kind = BAD, .upto = "\rX"},
    {.in = "HTTP/1.1 200 OK\r\nX : a\r\n\r\n", .kind = BAD, .upto = "X "},
    {.in = "HTTP/1.1 200 OK\r\n: a\r\n\r\n", .kind = BAD, .upto = "OK\r\n:"},
    {.in = "HTTP/1.1 200 OK\r\nX\r\n\r\n", .kind = BAD, .upto = "X\r"},
    {.in = "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", .kind = BAD, .upto = "a\r\n "},
    {.in = "HTTP/1.1 200 OK\r\n X: a\r\n\r\n", .kind = BAD, .upto = "OK\r\n "},
    {.in = "HTTP/1.1 200 OK\r\nX: a\x01\r\n\r\n", .kind = BAD, .upto = "\x01"},
    {.in = "HTTP/1.1 200 OK\r\nX: a\x7f\r\n\r\n", .kind = BAD, .upto = "\x7f"},
    {.in = "HTTP/1.1 200 OK\r\nX\xc3\xa9: a\r\n\r\n", .kind = BAD, .upto = "X\xc3"},
    {.in = "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n", .len = 27, .kind = BAD, .at = 22},
    /* Limits. */
    {.in = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n", .max_hdrs = 1, .kind = BIG, .upto = "1\r\nB"},
    {.in = "HTTP/1.1 200 OK\r\nA: 1\r\n\r\n",
     .max_head = 24,
     .kind = BIG,
     .upto = "HTTP/1.1 200 OK\r\nA: 1\r\n\r"},
    {.in = "HTTP/1.1 200 OK\r\nA: 1\r\n\r\n", .max_head = 5, .kind = BIG, .upto = "HTTP/"},
    /* An error before the limit wins. */
    {.in = "HTTP/1.1 200 OK\r\nA\x01: 1\r\n\r\n", .max_head = 24, .kind = BAD, .upto = "A\x01"},
};

static size_t find_upto(const char *in, size_t len, const char *what)
{
    size_t n = strlen(what);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(in + i, what, n) == 0)
            return i + n;
    CHECK(!"upto text not found in the input");
    return 0;
}

static void check_resp_fields(const struct resp_case *t, const char *buf, size_t head_len,
                              const struct cipc__http_response_head *h,
                              const struct cipc__http_header *hdrs)
{
    CHECK_INT(h->minor, ==, t->minor);
    CHECK_INT(h->status, ==, t->status);
    CHECK(h->reason.p >= buf && h->reason.p + h->reason.n <= buf + head_len);
    CHECK_MEM(h->reason.p, h->reason.n, t->reason);
    char all[512];
    size_t n = 0;
    for (size_t i = 0; i < h->n_headers; i++) {
        CHECK(hdrs[i].name.p >= buf && hdrs[i].value.p + hdrs[i].value.n <= buf + head_len);
        n += (size_t)snprintf(all + n, sizeof all - n, "%.*s=%.*s;", (int)hdrs[i].name.n,
                              hdrs[i].name.p, (int)hdrs[i].value.n, hdrs[i].value.p);
        CHECK(n < sizeof all);
    }
    all[n] = '\0';
    CHECK_STR(all, t->hdrs);
}

static void test_response_parser(void)
{
    for (size_t i = 0; i < sizeof resp_cases / sizeof resp_cases[0]; i++) {
        const struct resp_case *t = &resp_cases[i];
        size_t len = t->len ? t->len : strlen(t->in);
        size_t max_hdrs = t->max_hdrs ? t->max_hdrs : MAXH;
        /* The point where the result is known: the head's end or the error byte. */
        size_t known = len + 1;
        int want = CIPC_EAGAIN;
        if (t->kind == VALID) {
            known = find_upto(t->in, len, "\r\n\r\n");
            want = (int)known;
        } else if (t->kind == BAD || t->kind == BIG) {
            known = t->at ? t->at : t->upto ? find_upto(t->in, len, t->upto) : len;
            want = t->kind == BAD ? CIPC_EPROTO : CIPC_ETOOBIG;
        }
        /* Every prefix, each from its own exact-size copy (ASan sees any over-read). */
        for (size_t k = 0; k <= len; k++) {
            char *copy = dup_exact(t->in, k);
            struct cipc__http_header hdrs[MAXH];
            struct cipc__http_response_head h;
            memset(&h, 0xa5, sizeof h);
            int rc = cipc__http_parse_response(copy, k, &h, hdrs, max_hdrs, t->max_head);
            int expect = k < known ? CIPC_EAGAIN : want;
            if (rc != expect)
                fprintf(stderr, "case %zu, prefix %zu: %d, expected %d\n", i, k, rc, expect);
            CHECK_INT(rc, ==, expect);
            if (rc > 0)
                check_resp_fields(t, copy, (size_t)rc, &h, hdrs);
            free(copy);
        }
    }
    /* max_hdrs 0 with a NULL array: a head without fields parses, one with fields is BIG. */
    struct cipc__http_response_head h;
    const char *a = "HTTP/1.1 101 x\r\n\r\n", *b = "HTTP/1.1 101 x\r\nA: b\r\n\r\n";
    CHECK_INT(cipc__http_parse_response(a, strlen(a), &h, NULL, 0, 0), ==, (int)strlen(a));
    CHECK_INT(h.n_headers, ==, 0);
    CHECK_INT(cipc__http_parse_response(b, strlen(b), &h, NULL, 0, 0), ==, CIPC_ETOOBIG);
}

int main(void)
{
    test_keys();
    test_server_check();
    test_pick_subprotocol();
    test_ext_grammar();
    test_negotiate_server();
    test_offer();
    test_accept_client();
    test_client_check();
    test_client_request();
    test_response_parser();
    printf("test_ws_handshake: ok\n");
    return 0;
}
