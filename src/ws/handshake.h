/* src/ws/handshake.h -- the WebSocket opening handshake (RFC 6455 section 4) and the
 * negotiation of permessage-deflate (RFC 7692 section 7), private to cipc.
 *
 * Pure functions over parsed heads: the HTTP parsers (http/parser.h for requests,
 * http/response.h for responses) split the bytes into field lines, and the functions here
 * judge them and build what to send back. No I/O, no global state; the only allocation is
 * OpenSSL's inside the digest of cipc__ws_accept_key().
 *
 * What is accepted, and the choices made:
 * - Header names are compared case-insensitively; list-valued fields (Connection,
 *   Upgrade, Sec-WebSocket-Protocol, Sec-WebSocket-Extensions) may be split over several
 *   field lines, which form one list (RFC 9110 5.3); empty list elements are ignored
 *   (RFC 9110 5.6.1.2), including a whole empty field value.
 * - Server side (cipc__ws_server_check): GET, HTTP/1.1, "websocket" among the Upgrade
 *   elements and "upgrade" among the Connection elements (both any case), and
 *   Sec-WebSocket-Key on exactly one line with 22 base64 characters and "==" (which is
 *   what decodes to exactly 16 bytes; the unused low bits of the last character are not
 *   checked, as Python's websockets does not). Sec-WebSocket-Protocol elements must be
 *   tokens; Origin and Sec-WebSocket-Version may appear at most once. Any of these
 *   failing is a 400. Then Sec-WebSocket-Version missing or not exactly "13" is a 426
 *   (the answer must carry "Sec-WebSocket-Version: 13").
 * - Subprotocols are compared case-sensitively (they are registered tokens); the server's
 *   preference order wins (cipc__ws_pick_subprotocol), as in Python's websockets.
 * - Sec-WebSocket-Extensions follows RFC 6455 9.1: a list of
 *   name *( ";" param [ "=" ( token / quoted-string ) ] ), with OWS around ';', '=' and
 *   ','. A quoted-string value must be a token once unescaped. Anything else makes the
 *   whole header malformed (CIPC_EPROTO; the server answers 400). Extension and parameter
 *   names are compared case-insensitively.
 * - permessage-deflate parameters (RFC 7692 7.1): server_no_context_takeover and
 *   client_no_context_takeover take no value; server_max_window_bits needs a value;
 *   client_max_window_bits may come without a value in an offer but needs one in a
 *   response; values are exactly "8" to "15" (no sign, no leading zero), quoted or not.
 *   An offer with an unknown or repeated parameter, or a value that breaks these rules,
 *   is declined (RFC 7692 5), and the next offer is tried; a response with one fails the
 *   client's handshake.
 * - Window bits 8 are accepted on both sides: ws/deflate.h can compress within a 256-byte
 *   window (see there), and inflating is always done with a 32 KiB window.
 *
 * Threading: thread-safe (pure functions of their arguments; OpenSSL's RAND_bytes and
 * digests are thread-safe in OpenSSL 1.1 and later). */
#ifndef CIPC_SRC_WS_HANDSHAKE_H
#define CIPC_SRC_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "cipc/buf.h"
#include "cipc/error.h"
#include "http/parser.h"
#include "http/response.h"

#define CIPC__WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* Sizes with the NUL: a Sec-WebSocket-Accept value (28 characters), a key (24). */
#define CIPC__WS_ACCEPT_SIZE 29
#define CIPC__WS_KEY_SIZE    25

/* Subprotocols kept from an offer; later ones are ignored (never chosen). */
#define CIPC__WS_MAX_SUBPROTOCOLS 16

/* Room for any permessage-deflate header value built here (offer or response). */
#define CIPC__WS_PMD_HDR_MAX 160

/* Compute the Sec-WebSocket-Accept value for a key: base64(SHA-1(key + GUID)), 28
 * characters and a NUL in out. Ownership: borrows `key`. Returns 0, or CIPC_EINTERNAL if
 * OpenSSL fails (out of memory); out is then "". The RFC 6455 example: key
 * "dGhlIHNhbXBsZSBub25jZQ==" gives "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" (section 1.3). */
int cipc__ws_accept_key(const char *key, size_t key_len, char out[CIPC__WS_ACCEPT_SIZE]);

/* Make a fresh Sec-WebSocket-Key: 16 bytes from RAND_bytes, base64, 24 characters and a
 * NUL in out. Returns 0, or CIPC_EINTERNAL if OpenSSL has no random bytes to give; out is
 * then "". */
int cipc__ws_client_key(char out[CIPC__WS_KEY_SIZE]);

/* What the server learns from a valid opening handshake request. Slices point into the
 * request's buffer (views valid while it is unchanged). */
struct cipc__ws_server_hs {
    struct cipc__slice key;            /* Sec-WebSocket-Key */
    char accept[CIPC__WS_ACCEPT_SIZE]; /* the Sec-WebSocket-Accept value to send */
    struct cipc__slice protocols[CIPC__WS_MAX_SUBPROTOCOLS]; /* offered, in order */
    size_t n_protocols;                                      /* entries used in protocols[] */
    size_t n_protocols_offered;    /* all the offered subprotocols (may exceed the array) */
    struct cipc__slice origin;     /* Origin; p == NULL when absent */
    struct cipc__slice extensions; /* the first Sec-WebSocket-Extensions line; p == NULL
                                      when there is none (negotiation reads them all) */
    size_t n_extension_lines;      /* Sec-WebSocket-Extensions field lines */
};

/* Check an opening handshake request (RFC 6455 4.2.1) given its method, its HTTP minor
 * version and its field lines hdrs[0..nh).
 *
 * Ownership: borrows everything; `out` gets views into the buffer of hdrs and method.
 * Returns 0 with *out filled, or the HTTP status to answer (then *out is unspecified):
 * 400 for a request that is not a valid handshake, 426 for a missing or unsupported
 * Sec-WebSocket-Version (answer with "Sec-WebSocket-Version: 13"), or CIPC_EINTERNAL if
 * the accept key could not be computed. See the top of this file for the rules. */
int cipc__ws_server_check(const struct cipc__http_header *hdrs, size_t nh, const char *method,
                          size_t method_len, int http_minor, struct cipc__ws_server_hs *out);

/* The subprotocol to answer with: the index in supported[0..n) of the first entry (the
 * server's preference) that the client offered (case-sensitive), or -1 if none. */
int cipc__ws_pick_subprotocol(const struct cipc__ws_server_hs *hs, const char *const *supported,
                              size_t n);

/* Parsing Sec-WebSocket-Extensions (exposed for tests and the fuzzer). */

#define CIPC__WS_EXT_MAX_PARAMS 8

struct cipc__ws_ext_param {
    struct cipc__slice name;
    struct cipc__slice value; /* p == NULL: no value. A quoted-string value is the text
                                 between the quotes, escapes ('\') still in it */
    bool quoted;
};

struct cipc__ws_ext {
    struct cipc__slice name;
    size_t n_params; /* all its parameters (may exceed the array) */
    struct cipc__ws_ext_param params[CIPC__WS_EXT_MAX_PARAMS]; /* the first ones */
};

/* Parse the next extension of the list p[0..n) from *pos (0 the first time).
 * Returns 1 with *ext filled (views into p) and *pos moved past it, 0 at the end of the
 * list, or CIPC_EPROTO if the list is malformed from here (then *pos is unspecified). */
int cipc__ws_ext_next(const char *p, size_t n, size_t *pos, struct cipc__ws_ext *ext);

/* permessage-deflate. */

/* Local settings, one struct for both roles (zero is the default for every field). */
struct cipc__ws_pmd_config {
    bool enabled;                    /* offer (client) / accept (server) permessage-deflate */
    bool server_no_context_takeover; /* server: always answer with it (reset our compressor
                                        after every message); client: ask for it, and
                                        fail if the server does not agree */
    bool client_no_context_takeover; /* server: ask the client to reset its compressor;
                                        client: offer it (we reset ours) */
    int server_max_window_bits;      /* 8..15; 0: no preference. Server: the largest window our
                                        compressor uses (answered when < 15 or when the client
                                        asked); client: ask the server for at most this */
    int client_max_window_bits;      /* 8..15; 0: no preference. Server: ask a client that
                                        offered client_max_window_bits to use at most this;
                                        client: offer "client_max_window_bits=N" instead of the
                                        bare parameter (our compressor uses at most N) */
    int level;     /* compression level for cipc__ws_deflate_new(), 0: its default */
    int mem_level; /* zlib memLevel 1..9, 0: 8; copied into the agreed parameters */
};

/* The parameters both ends agreed on. */
struct cipc__ws_pmd_params {
    bool server_no_context_takeover, client_no_context_takeover;
    int server_max_window_bits; /* 8..15, 15 when not limited */
    int client_max_window_bits; /* 8..15; 0 when the response did not limit it (15) */
    int mem_level; /* local, not negotiated: zlib memLevel 1..9 for our compressor, 0: 8 */
};

/* Server: choose among the client's offers in its Sec-WebSocket-Extensions field lines
 * (every line named so among hdrs[0..nh), in order, forming one list). The first
 * permessage-deflate offer with valid parameters is accepted; how each parameter is
 * answered (RFC 7692 7.1, following Python's websockets):
 *   server_no_context_takeover: agreed and answered if offered or cfg asks for it;
 *   client_no_context_takeover: the same;
 *   server_max_window_bits: min(offered, cfg) (15 for a 0 cfg), answered if offered or
 *     cfg limits it below 15;
 *   client_max_window_bits: only if offered (else the client may use 15): cfg's value if
 *     set, capped by the offered value if one came; an offered value is echoed when cfg
 *     has none; a bare offer with no cfg is not answered.
 * `resp` (resp_cap bytes, CIPC__WS_PMD_HDR_MAX is always enough) receives the
 * NUL-terminated Sec-WebSocket-Extensions value to answer with, such as
 * "permessage-deflate; server_no_context_takeover; client_max_window_bits=10".
 * cfg NULL or not enabled: nothing is parsed and 0 is returned.
 *
 * Ownership: borrows everything. Returns 1 (accepted: *agreed and resp filled), 0 (no
 * acceptable offer: answer without the extension), CIPC_EPROTO (a malformed header:
 * answer 400), or CIPC_ETOOBIG (resp_cap too small). */
int cipc__ws_pmd_negotiate_server(const struct cipc__http_header *hdrs, size_t nh,
                                  const struct cipc__ws_pmd_config *cfg,
                                  struct cipc__ws_pmd_params *agreed, char *resp, size_t resp_cap);

/* Client: build the offer into buf (cap bytes, CIPC__WS_PMD_HDR_MAX is enough),
 * NUL-terminated: "permessage-deflate", then server_no_context_takeover,
 * client_no_context_takeover and server_max_window_bits=N as cfg asks, and always
 * client_max_window_bits (with "=N" when cfg sets it), as browsers offer.
 * Returns the length, 0 if cfg is NULL or not enabled (buf is then ""), -EINVAL for a
 * window-bits value outside 8..15, or CIPC_ETOOBIG if cap is too small. */
int cipc__ws_pmd_offer(const struct cipc__ws_pmd_config *cfg, char *buf, size_t cap);

/* Client: check the server's Sec-WebSocket-Extensions value p[0..n) against the offer
 * cipc__ws_pmd_offer(cfg) made. It must hold exactly one extension, permessage-deflate,
 * with valid parameters that answer the offer: server_no_context_takeover present if we
 * asked for it; server_max_window_bits present and not above ours if we asked; a value on
 * client_max_window_bits, not above ours if we set one. *agreed gets the result
 * (client_no_context_takeover is also set when we offered it).
 * Returns 0, or CIPC_EPROTO (the client must fail the connection). */
int cipc__ws_pmd_accept_client(const char *p, size_t n, const struct cipc__ws_pmd_config *cfg,
                               struct cipc__ws_pmd_params *agreed);

/* What the client learns from a valid handshake response. */
struct cipc__ws_client_hs {
    struct cipc__slice protocol; /* the chosen subprotocol; p == NULL if none */
    int protocol_index;          /* its index in offered_protocols, or -1 */
    bool pmd;                    /* permessage-deflate is in use with pmd_params */
    struct cipc__ws_pmd_params pmd_params;
};

/* Client: check the handshake response (RFC 6455 4.1, the client's part): status 101 on
 * HTTP/1.1 or later; Upgrade holding exactly one element, "websocket" (any case);
 * "upgrade" among the Connection elements; Sec-WebSocket-Accept on exactly one line and
 * equal to the accept value of `sent_key`; Sec-WebSocket-Protocol absent, or on one line
 * holding one of offered_protocols[0..n_offered); Sec-WebSocket-Extensions absent, or
 * (on any number of lines) exactly one permessage-deflate accepted by
 * cipc__ws_pmd_accept_client() when pmd is enabled. `err` (errcap bytes; may be NULL)
 * gets a human message on failure, always NUL-terminated when errcap > 0.
 *
 * Ownership: borrows everything; `out` gets views into the buffer of hdrs.
 * Returns 0 with *out filled, or CIPC_EPROTO (fail the connection). */
int cipc__ws_client_check(const struct cipc__http_response_head *head,
                          const struct cipc__http_header *hdrs, size_t nh, const char *sent_key,
                          const char *const *offered_protocols, size_t n_offered,
                          const struct cipc__ws_pmd_config *pmd, struct cipc__ws_client_hs *out,
                          char *err, size_t errcap);

/* Client: append the opening handshake request to `out`:
 *   GET <path_and_query> HTTP/1.1, Host, Upgrade: websocket, Connection: Upgrade,
 *   Sec-WebSocket-Key, Sec-WebSocket-Version: 13, Sec-WebSocket-Protocol (the protocols
 *   joined with ", ", if nproto > 0), Sec-WebSocket-Extensions (if extensions_offer is
 *   not NULL or ""), then each of extra_headers ("Name: value"), then the empty line.
 * Checks: path_and_query starts with '/' and holds only VCHAR except '#'; host_header is
 * non-empty field-vchar/SP/HTAB; key is 24 base64 characters; each protocol is a token;
 * extensions_offer is field-vchar/SP/HTAB; each extra header is a token name, ':', and a
 * value without CR, LF or other controls (HTAB allowed), and may not name a field this
 * function writes (Host, Upgrade, Connection, Sec-WebSocket-*) or a body framing field
 * (Content-Length, Transfer-Encoding).
 *
 * Ownership: copies everything. Returns 0; CIPC_EURL for a bad path, CIPC_EHEADER for any
 * other bad argument, or -ENOMEM; on error `out` is unchanged. */
int cipc__ws_client_request(cipc_buf *out, const char *host_header, const char *path_and_query,
                            const char *key, const char *const *protocols, size_t nproto,
                            const char *extensions_offer, const char *const *extra_headers,
                            size_t nextra);

#endif
