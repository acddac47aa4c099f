/* The WebSocket opening handshake (RFC 6455 section 4) and permessage-deflate negotiation
 * (RFC 7692 section 7), private to cipc. The rules and choices are listed in handshake.h.
 *
 * Everything works on field lines already split by the HTTP parsers: list-valued fields
 * are walked element by element across all their lines without copying, and the
 * Sec-WebSocket-Extensions grammar has its own small scanner (cipc__ws_ext_next) because
 * its elements may contain quoted strings. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ws/handshake.h"

/* ---- Small helpers ------------------------------------------------------------------ */

static int is_ows(int c)
{
    return c == ' ' || c == '\t';
}

static int is_tchar(int c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* field-vchar, obs-text, SP or HTAB: what a field value may hold. */
static int is_field_char(int c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int is_token(const char *p, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)p[i]))
            return 0;
    return 1;
}

static int name_is(const struct cipc__http_header *h, const char *lower)
{
    return cipc__slice_ieq(h->name, lower);
}

/* Walk the comma-separated elements of a field value p[0..n) from *i, with OWS trimmed
 * and empty elements skipped: returns 1 with *el set, 0 at the end. Used for Connection,
 * Upgrade and Sec-WebSocket-Protocol, whose elements hold no quoted strings. */
static int next_element(const char *p, size_t n, size_t *i, struct cipc__slice *el)
{
    while (*i < n) {
        size_t s = *i, e;
        while (s < n && is_ows(p[s]))
            s++;
        e = s;
        while (e < n && p[e] != ',')
            e++;
        *i = e < n ? e + 1 : n;
        while (e > s && is_ows(p[e - 1]))
            e--;
        if (e > s) {
            el->p = p + s;
            el->n = e - s;
            return 1;
        }
    }
    return 0;
}

/* Does any line of the list field `name` hold the element `lower` (any case)? */
static int list_has(const struct cipc__http_header *hdrs, size_t nh, const char *name,
                    const char *lower)
{
    for (size_t k = 0; k < nh; k++) {
        if (!name_is(&hdrs[k], name))
            continue;
        size_t i = 0;
        struct cipc__slice el;
        while (next_element(hdrs[k].value.p, hdrs[k].value.n, &i, &el))
            if (cipc__slice_ieq(el, lower))
                return 1;
    }
    return 0;
}

/* The field lines called `name`: how many, and the first in *first. */
static size_t find_field(const struct cipc__http_header *hdrs, size_t nh, const char *name,
                         const struct cipc__http_header **first)
{
    size_t count = 0;
    *first = NULL;
    for (size_t k = 0; k < nh; k++) {
        if (name_is(&hdrs[k], name)) {
            if (count++ == 0)
                *first = &hdrs[k];
        }
    }
    return count;
}

static int is_b64(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* A base64 text that decodes to exactly 16 bytes: 22 characters and "==". */
static int valid_key(const char *p, size_t n)
{
    if (n != 24 || p[22] != '=' || p[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64((unsigned char)p[i]))
            return 0;
    return 1;
}

/* ---- Keys ---------------------------------------------------------------------------- */

int cipc__ws_accept_key(const char *key, size_t key_len, char out[CIPC__WS_ACCEPT_SIZE])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    out[0] = '\0';
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return CIPC_EINTERNAL;
    int ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, key, key_len) == 1 &&
             EVP_DigestUpdate(ctx, CIPC__WS_GUID, sizeof CIPC__WS_GUID - 1) == 1 &&
             EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 20;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return CIPC_EINTERNAL;
    EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 characters and a NUL */
    return 0;
}

int cipc__ws_client_key(char out[CIPC__WS_KEY_SIZE])
{
    unsigned char raw[16];
    out[0] = '\0';
    if (RAND_bytes(raw, sizeof raw) != 1)
        return CIPC_EINTERNAL;
    EVP_EncodeBlock((unsigned char *)out, raw, sizeof raw); /* 24 characters and a NUL */
    return 0;
}

/* ---- Server side ---------------------------------------------------------------------- */

int cipc__ws_server_check(const struct cipc__http_header *hdrs, size_t nh, const char *method,
                          size_t method_len, int http_minor, struct cipc__ws_server_hs *out)
{
    const struct cipc__http_header *h;
    memset(out, 0, sizeof *out);
    if (method_len != 3 || memcmp(method, "GET", 3) != 0 || http_minor < 1)
        return 400;
    if (!list_has(hdrs, nh, "upgrade", "websocket") || !list_has(hdrs, nh, "connection", "upgrade"))
        return 400;
    if (find_field(hdrs, nh, "sec-websocket-key", &h) != 1 || !valid_key(h->value.p, h->value.n))
        return 400;
    out->key = h->value;
    if (find_field(hdrs, nh, "origin", &h) > 1)
        return 400;
    if (h)
        out->origin = h->value;
    for (size_t k = 0; k < nh; k++) {
        if (!name_is(&hdrs[k], "sec-websocket-protocol"))
            continue;
        size_t i = 0;
        struct cipc__slice el;
        while (next_element(hdrs[k].value.p, hdrs[k].value.n, &i, &el)) {
            if (!is_token(el.p, el.n))
                return 400;
            if (out->n_protocols < CIPC__WS_MAX_SUBPROTOCOLS)
                out->protocols[out->n_protocols++] = el;
            out->n_protocols_offered++;
        }
    }
    out->n_extension_lines = find_field(hdrs, nh, "sec-websocket-extensions", &h);
    if (h)
        out->extensions = h->value;
    size_t nv = find_field(hdrs, nh, "sec-websocket-version", &h);
    if (nv > 1)
        return 400;
    if (nv == 0 || h->value.n != 2 || memcmp(h->value.p, "13", 2) != 0)
        return 426;
    if (cipc__ws_accept_key(out->key.p, out->key.n, out->accept) != 0)
        return CIPC_EINTERNAL;
    return 0;
}

int cipc__ws_pick_subprotocol(const struct cipc__ws_server_hs *hs, const char *const *supported,
                              size_t n)
{
    for (size_t s = 0; s < n; s++) {
        size_t len = strlen(supported[s]);
        for (size_t i = 0; i < hs->n_protocols; i++)
            if (hs->protocols[i].n == len && memcmp(hs->protocols[i].p, supported[s], len) == 0)
                return s > (size_t)INT32_MAX ? -1 : (int)s;
    }
    return -1;
}

/* ---- Sec-WebSocket-Extensions ---------------------------------------------------------- */

static size_t skip_ows(const char *p, size_t n, size_t i)
{
    while (i < n && is_ows(p[i]))
        i++;
    return i;
}

static size_t scan_token(const char *p, size_t n, size_t i)
{
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    return i;
}

/* A quoted-string starting at p[i] == '"': returns the offset after the closing quote,
 * or 0 if it is malformed or its unescaped content is not a token (RFC 6455 9.1). */
static size_t scan_quoted(const char *p, size_t n, size_t i)
{
    size_t len = 0;
    for (i++; i < n; i++) {
        int c = (unsigned char)p[i];
        if (c == '"')
            return len > 0 ? i + 1 : 0;
        if (c == '\\') {
            if (++i == n)
                return 0;
            c = (unsigned char)p[i];
        }
        if (!is_tchar(c)) /* also rules out controls, which qdtext and quoted-pair forbid */
            return 0;
        len++;
    }
    return 0;
}

int cipc__ws_ext_next(const char *p, size_t n, size_t *pos, struct cipc__ws_ext *ext)
{
    size_t i = *pos, e;
    /* Skip empty list elements. */
    while (i < n && (is_ows(p[i]) || p[i] == ','))
        i++;
    if (i == n) {
        *pos = n;
        return 0;
    }
    e = scan_token(p, n, i);
    if (e == i)
        return CIPC_EPROTO;
    ext->name.p = p + i;
    ext->name.n = e - i;
    ext->n_params = 0;
    i = e;
    for (;;) {
        i = skip_ows(p, n, i);
        if (i == n)
            break;
        if (p[i] == ',') {
            i++;
            break;
        }
        if (p[i] != ';')
            return CIPC_EPROTO;
        i = skip_ows(p, n, i + 1);
        e = scan_token(p, n, i);
        if (e == i)
            return CIPC_EPROTO;
        struct cipc__ws_ext_param prm = {{p + i, e - i}, {NULL, 0}, false};
        i = skip_ows(p, n, e);
        if (i < n && p[i] == '=') {
            i = skip_ows(p, n, i + 1);
            if (i < n && p[i] == '"') {
                e = scan_quoted(p, n, i);
                if (e == 0)
                    return CIPC_EPROTO;
                prm.value.p = p + i + 1;
                prm.value.n = e - i - 2;
                prm.quoted = true;
            } else {
                e = scan_token(p, n, i);
                if (e == i)
                    return CIPC_EPROTO;
                prm.value.p = p + i;
                prm.value.n = e - i;
            }
            i = e;
        }
        if (ext->n_params < CIPC__WS_EXT_MAX_PARAMS)
            ext->params[ext->n_params] = prm;
        ext->n_params++;
    }
    *pos = i;
    return 1;
}

/* ---- permessage-deflate ---------------------------------------------------------------- */

/* Parameters as read from one offer or response. For the window bits: 0 absent, -1
 * present without a value, else 8..15. */
struct pmd_raw {
    bool snct, cnct;
    int smwb, cmwb;
};

/* A window-bits value: exactly "8" to "15" once unescaped; -1 if not. */
static int window_bits(const struct cipc__ws_ext_param *prm)
{
    char v[3];
    size_t len = 0;
    for (size_t i = 0; i < prm->value.n; i++) {
        char c = prm->value.p[i];
        if (prm->quoted && c == '\\')
            c = prm->value.p[++i]; /* the scanner made sure an escape has its character */
        if (len == sizeof v - 1)
            return -1;
        v[len++] = c;
    }
    if (len == 1 && v[0] == '8')
        return 8;
    if (len == 1 && v[0] == '9')
        return 9;
    if (len == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
        return 10 + (v[1] - '0');
    return -1;
}

/* Read the parameters of a permessage-deflate element. In a response (`response`),
 * client_max_window_bits needs a value. Returns 0, or -1 for an unknown or repeated
 * parameter or a value against the rules (the offer is declined / the response fails). */
static int pmd_parse(const struct cipc__ws_ext *ext, bool response, struct pmd_raw *r)
{
    memset(r, 0, sizeof *r);
    if (ext->n_params > 4) /* more than the four distinct parameters: a repeat or unknown */
        return -1;
    for (size_t k = 0; k < ext->n_params; k++) {
        const struct cipc__ws_ext_param *prm = &ext->params[k];
        bool has = prm->value.p != NULL;
        if (cipc__slice_ieq(prm->name, "server_no_context_takeover")) {
            if (r->snct || has)
                return -1;
            r->snct = true;
        } else if (cipc__slice_ieq(prm->name, "client_no_context_takeover")) {
            if (r->cnct || has)
                return -1;
            r->cnct = true;
        } else if (cipc__slice_ieq(prm->name, "server_max_window_bits")) {
            if (r->smwb != 0 || !has || (r->smwb = window_bits(prm)) < 0)
                return -1;
        } else if (cipc__slice_ieq(prm->name, "client_max_window_bits")) {
            if (r->cmwb != 0)
                return -1;
            if (!has) {
                if (response)
                    return -1;
                r->cmwb = -1;
            } else if ((r->cmwb = window_bits(prm)) < 0) {
                return -1;
            }
        } else {
            return -1;
        }
    }
    return 0;
}

/* Append printf-formatted text to buf[*len..cap). Returns 0, or -1 if it does not fit. */
static int put(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int put(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= cap - *len)
        return -1;
    *len += (size_t)w;
    return 0;
}

static int valid_bits_cfg(int bits)
{
    return bits == 0 || (bits >= 8 && bits <= 15);
}

static int mem_level_of(const struct cipc__ws_pmd_config *cfg)
{
    return cfg->mem_level >= 1 && cfg->mem_level <= 9 ? cfg->mem_level : 0;
}

/* Server: the answer to one valid offer `r` under `cfg`, into *agreed and resp. Returns 1,
 * or CIPC_ETOOBIG if resp is too small. Called for the first acceptable offer. */
static int pmd_answer(const struct pmd_raw *r, const struct cipc__ws_pmd_config *cfg,
                      struct cipc__ws_pmd_params *agreed, char *resp, size_t resp_cap)
{
    int cfg_s = cfg->server_max_window_bits >= 8 && cfg->server_max_window_bits <= 15
                    ? cfg->server_max_window_bits
                    : 15;
    int cfg_c = cfg->client_max_window_bits >= 8 && cfg->client_max_window_bits <= 15
                    ? cfg->client_max_window_bits
                    : 0;
    size_t len = 0;

    memset(agreed, 0, sizeof *agreed);
    agreed->mem_level = mem_level_of(cfg);
    agreed->server_no_context_takeover = r->snct || cfg->server_no_context_takeover;
    agreed->client_no_context_takeover = r->cnct || cfg->client_no_context_takeover;
    agreed->server_max_window_bits = r->smwb > 0 && r->smwb < cfg_s ? r->smwb : cfg_s;
    if (r->cmwb == -1)
        agreed->client_max_window_bits = cfg_c; /* 0: not answered */
    else if (r->cmwb > 0)
        agreed->client_max_window_bits = cfg_c && cfg_c < r->cmwb ? cfg_c : r->cmwb;

    if (put(resp, resp_cap, &len, "permessage-deflate") != 0 ||
        (agreed->server_no_context_takeover &&
         put(resp, resp_cap, &len, "; server_no_context_takeover") != 0) ||
        (agreed->client_no_context_takeover &&
         put(resp, resp_cap, &len, "; client_no_context_takeover") != 0) ||
        ((r->smwb > 0 || agreed->server_max_window_bits < 15) &&
         put(resp, resp_cap, &len, "; server_max_window_bits=%d", agreed->server_max_window_bits) !=
             0) ||
        (agreed->client_max_window_bits && put(resp, resp_cap, &len, "; client_max_window_bits=%d",
                                               agreed->client_max_window_bits) != 0)) {
        if (resp_cap)
            resp[0] = '\0';
        return CIPC_ETOOBIG;
    }
    return 1;
}

int cipc__ws_pmd_negotiate_server(const struct cipc__http_header *hdrs, size_t nh,
                                  const struct cipc__ws_pmd_config *cfg,
                                  struct cipc__ws_pmd_params *agreed, char *resp, size_t resp_cap)
{
    int result = 0;
    if (resp_cap)
        resp[0] = '\0';
    if (!cfg || !cfg->enabled)
        return 0;
    /* Parse every line even after an offer was accepted: a malformed header is a 400
     * wherever the error is. */
    for (size_t k = 0; k < nh; k++) {
        if (!name_is(&hdrs[k], "sec-websocket-extensions"))
            continue;
        size_t pos = 0;
        struct cipc__ws_ext ext;
        int rc;
        while ((rc = cipc__ws_ext_next(hdrs[k].value.p, hdrs[k].value.n, &pos, &ext)) == 1) {
            struct pmd_raw r;
            if (result != 0 || !cipc__slice_ieq(ext.name, "permessage-deflate") ||
                pmd_parse(&ext, false, &r) != 0)
                continue; /* another extension, or an offer declined */
            result = pmd_answer(&r, cfg, agreed, resp, resp_cap);
            if (result < 0)
                return result;
        }
        if (rc < 0) {
            if (resp_cap)
                resp[0] = '\0';
            return CIPC_EPROTO;
        }
    }
    return result;
}

int cipc__ws_pmd_offer(const struct cipc__ws_pmd_config *cfg, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap)
        buf[0] = '\0';
    if (!cfg || !cfg->enabled)
        return 0;
    if (!valid_bits_cfg(cfg->server_max_window_bits) ||
        !valid_bits_cfg(cfg->client_max_window_bits))
        return -EINVAL;
    if (cap == 0 || put(buf, cap, &len, "permessage-deflate") != 0 ||
        (cfg->server_no_context_takeover &&
         put(buf, cap, &len, "; server_no_context_takeover") != 0) ||
        (cfg->client_no_context_takeover &&
         put(buf, cap, &len, "; client_no_context_takeover") != 0) ||
        (cfg->server_max_window_bits &&
         put(buf, cap, &len, "; server_max_window_bits=%d", cfg->server_max_window_bits) != 0) ||
        put(buf, cap, &len, "; client_max_window_bits") != 0 ||
        (cfg->client_max_window_bits &&
         put(buf, cap, &len, "=%d", cfg->client_max_window_bits) != 0)) {
        if (cap)
            buf[0] = '\0';
        return CIPC_ETOOBIG;
    }
    return (int)len;
}

/* Client: judge one permessage-deflate element of the response against our offer. */
static int pmd_accept_ext(const struct cipc__ws_ext *ext, const struct cipc__ws_pmd_config *cfg,
                          struct cipc__ws_pmd_params *agreed)
{
    struct pmd_raw r;
    if (!cipc__slice_ieq(ext->name, "permessage-deflate") || pmd_parse(ext, true, &r) != 0)
        return CIPC_EPROTO;
    if (cfg->server_no_context_takeover && !r.snct)
        return CIPC_EPROTO;
    if (cfg->server_max_window_bits && (r.smwb == 0 || r.smwb > cfg->server_max_window_bits))
        return CIPC_EPROTO;
    if (cfg->client_max_window_bits && r.cmwb > cfg->client_max_window_bits)
        return CIPC_EPROTO;
    memset(agreed, 0, sizeof *agreed);
    agreed->mem_level = mem_level_of(cfg);
    agreed->server_no_context_takeover = r.snct;
    agreed->client_no_context_takeover = r.cnct || cfg->client_no_context_takeover;
    agreed->server_max_window_bits = r.smwb ? r.smwb : 15;
    agreed->client_max_window_bits = r.cmwb ? r.cmwb : cfg->client_max_window_bits;
    return 0;
}

int cipc__ws_pmd_accept_client(const char *p, size_t n, const struct cipc__ws_pmd_config *cfg,
                               struct cipc__ws_pmd_params *agreed)
{
    size_t pos = 0;
    struct cipc__ws_ext ext, extra;
    if (!cfg || !cfg->enabled || !valid_bits_cfg(cfg->server_max_window_bits) ||
        !valid_bits_cfg(cfg->client_max_window_bits))
        return CIPC_EPROTO;
    if (cipc__ws_ext_next(p, n, &pos, &ext) != 1 || cipc__ws_ext_next(p, n, &pos, &extra) != 0)
        return CIPC_EPROTO;
    return pmd_accept_ext(&ext, cfg, agreed);
}

/* ---- Client side ---------------------------------------------------------------------- */

static int fail(char *err, size_t errcap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errcap, const char *fmt, ...)
{
    if (err && errcap) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(err, errcap, fmt, ap);
        va_end(ap);
        if (w < 0)
            err[0] = '\0';
    }
    return CIPC_EPROTO;
}

/* At most this much of a peer's value goes into a message. */
#define SHOW     64
#define SHOWN(s) (int)((s).n < SHOW ? (s).n : SHOW), (s).p

int cipc__ws_client_check(const struct cipc__http_response_head *head,
                          const struct cipc__http_header *hdrs, size_t nh, const char *sent_key,
                          const char *const *offered_protocols, size_t n_offered,
                          const struct cipc__ws_pmd_config *pmd, struct cipc__ws_client_hs *out,
                          char *err, size_t errcap)
{
    const struct cipc__http_header *h;
    char accept[CIPC__WS_ACCEPT_SIZE];

    memset(out, 0, sizeof *out);
    out->protocol_index = -1;
    if (err && errcap)
        err[0] = '\0';
    if (head->status != 101)
        return fail(err, errcap, "handshake failed: status %d, expected 101", head->status);
    if (head->minor < 1)
        return fail(err, errcap, "handshake failed: 101 answered with HTTP/1.0");

    /* Upgrade: exactly one element, websocket. */
    size_t n_upgrade = 0;
    int websocket = 0;
    for (size_t k = 0; k < nh; k++) {
        if (!name_is(&hdrs[k], "upgrade"))
            continue;
        size_t i = 0;
        struct cipc__slice el;
        while (next_element(hdrs[k].value.p, hdrs[k].value.n, &i, &el)) {
            n_upgrade++;
            websocket = cipc__slice_ieq(el, "websocket");
        }
    }
    if (n_upgrade != 1 || !websocket)
        return fail(err, errcap, "handshake failed: Upgrade is not \"websocket\"");
    if (!list_has(hdrs, nh, "connection", "upgrade"))
        return fail(err, errcap, "handshake failed: Connection does not hold \"upgrade\"");

    /* Sec-WebSocket-Accept. */
    size_t na = find_field(hdrs, nh, "sec-websocket-accept", &h);
    if (na != 1)
        return fail(err, errcap, "handshake failed: %s Sec-WebSocket-Accept",
                    na ? "more than one" : "no");
    if (cipc__ws_accept_key(sent_key, strlen(sent_key), accept) != 0)
        return fail(err, errcap, "handshake failed: could not compute the accept key");
    if (h->value.n != CIPC__WS_ACCEPT_SIZE - 1 || memcmp(h->value.p, accept, h->value.n) != 0)
        return fail(err, errcap, "handshake failed: Sec-WebSocket-Accept \"%.*s\" is wrong",
                    SHOWN(h->value));

    /* Sec-WebSocket-Protocol: absent, or one we offered. */
    size_t np = find_field(hdrs, nh, "sec-websocket-protocol", &h);
    if (np > 1)
        return fail(err, errcap, "handshake failed: more than one Sec-WebSocket-Protocol");
    if (np == 1) {
        struct cipc__slice v = h->value;
        for (size_t i = 0; i < n_offered && out->protocol_index < 0; i++)
            if (strlen(offered_protocols[i]) == v.n && memcmp(offered_protocols[i], v.p, v.n) == 0)
                out->protocol_index = (int)i;
        if (out->protocol_index < 0)
            return fail(err, errcap,
                        "handshake failed: the server chose subprotocol \"%.*s\", not offered",
                        SHOWN(v));
        out->protocol = v;
    }

    /* Sec-WebSocket-Extensions: nothing, or the one permessage-deflate we offered. */
    size_t n_ext = 0;
    for (size_t k = 0; k < nh; k++) {
        if (!name_is(&hdrs[k], "sec-websocket-extensions"))
            continue;
        size_t pos = 0;
        struct cipc__ws_ext ext;
        int rc;
        while ((rc = cipc__ws_ext_next(hdrs[k].value.p, hdrs[k].value.n, &pos, &ext)) == 1) {
            if (++n_ext > 1)
                return fail(err, errcap, "handshake failed: more than one extension accepted");
            if (!pmd || !pmd->enabled || !cipc__slice_ieq(ext.name, "permessage-deflate"))
                return fail(err, errcap, "handshake failed: extension \"%.*s\" was not offered",
                            SHOWN(ext.name));
            if (pmd_accept_ext(&ext, pmd, &out->pmd_params) != 0)
                return fail(err, errcap,
                            "handshake failed: invalid permessage-deflate answer \"%.*s\"",
                            SHOWN(hdrs[k].value));
            out->pmd = true;
        }
        if (rc < 0)
            return fail(err, errcap, "handshake failed: malformed Sec-WebSocket-Extensions");
    }
    return 0;
}

/* The fields cipc__ws_client_request() writes itself, and the body framing fields. */
static int reserved_name(const char *p, size_t n)
{
    static const char *const names[] = {"host", "upgrade", "connection", "content-length",
                                        "transfer-encoding"};
    struct cipc__slice s = {p, n};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (cipc__slice_ieq(s, names[i]))
            return 1;
    static const char prefix[] = "sec-websocket-";
    if (n >= sizeof prefix - 1) {
        struct cipc__slice head = {p, sizeof prefix - 1};
        if (cipc__slice_ieq(head, prefix))
            return 1;
    }
    return 0;
}

static int valid_field_value(const char *s)
{
    for (; *s; s++)
        if (!is_field_char((unsigned char)*s))
            return 0;
    return 1;
}

/* "Name: value" with a token name not reserved above and a clean value. */
static int valid_extra(const char *s)
{
    const char *colon = strchr(s, ':');
    if (!colon || !is_token(s, (size_t)(colon - s)) || reserved_name(s, (size_t)(colon - s)))
        return 0;
    return valid_field_value(colon + 1);
}

int cipc__ws_client_request(cipc_buf *out, const char *host_header, const char *path_and_query,
                            const char *key, const char *const *protocols, size_t nproto,
                            const char *extensions_offer, const char *const *extra_headers,
                            size_t nextra)
{
    if (!path_and_query || path_and_query[0] != '/')
        return CIPC_EURL;
    for (const char *s = path_and_query; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || *s == '#')
            return CIPC_EURL;
    if (!host_header || !host_header[0] || !valid_field_value(host_header) || !key ||
        !valid_key(key, strlen(key)))
        return CIPC_EHEADER;
    for (size_t i = 0; i < nproto; i++)
        if (!protocols[i] || !is_token(protocols[i], strlen(protocols[i])))
            return CIPC_EHEADER;
    if (extensions_offer && !valid_field_value(extensions_offer))
        return CIPC_EHEADER;
    for (size_t i = 0; i < nextra; i++)
        if (!extra_headers[i] || !valid_extra(extra_headers[i]))
            return CIPC_EHEADER;

    size_t orig = out->len;
    int rc = cipc_buf_printf(out,
                             "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                             "Sec-WebSocket-Version: 13\r\n",
                             path_and_query, host_header, key);
    for (size_t i = 0; rc == 0 && i < nproto; i++)
        rc = cipc_buf_printf(out, "%s%s%s", i ? ", " : "Sec-WebSocket-Protocol: ", protocols[i],
                             i + 1 == nproto ? "\r\n" : "");
    if (rc == 0 && extensions_offer && extensions_offer[0])
        rc = cipc_buf_printf(out, "Sec-WebSocket-Extensions: %s\r\n", extensions_offer);
    for (size_t i = 0; rc == 0 && i < nextra; i++)
        rc = cipc_buf_printf(out, "%s\r\n", extra_headers[i]);
    if (rc == 0)
        rc = cipc_buf_append(out, "\r\n", 2);
    if (rc != 0) {
        out->len = orig;
        if (out->data)
            out->data[orig] = '\0';
        return rc;
    }
    return 0;
}
