/* src/http/response.h -- the HTTP/1.1 response-head parser (RFC 9112), private to cipc.
 *
 * A pure function over bytes in the picohttpparser manner: call it again with the whole
 * buffer received so far (the same bytes plus more) until it stops returning CIPC_EAGAIN.
 * Results are slices into that buffer, valid while the buffer is unchanged. No I/O, no
 * allocation, no global state. The WebSocket client reads its 101 answer with it.
 *
 * What is accepted, and the choices made:
 * - Lines end in CRLF only; a bare LF or a bare CR anywhere is an error. No empty lines
 *   are skipped before the status line (a response is read on a fresh connection, so
 *   there is nothing to be robust about).
 * - Status line: "HTTP/1." DIGIT SP 3DIGIT SP reason CRLF, exactly one SP between the
 *   parts. The major version must be 1 (anything else is an error); any minor digit is
 *   accepted and reported. The status code is three digits from 100 to 999 (RFC 9110 15
 *   calls 600..999 invalid but leaves them to the recipient; the caller decides). The
 *   reason phrase is SP, HTAB, VCHAR and obs-text, and may be empty; the SP before an
 *   empty reason may also be missing ("HTTP/1.1 200\r\n"), as some servers send it.
 * - Field lines: exactly the request parser's rules (src/http/parser.h): name = token and
 *   ':' at once; value = field-vchar, obs-text, SP and HTAB with leading and trailing
 *   SP/HTAB removed; NUL, other controls and DEL are errors; a line starting with SP or
 *   HTAB (obs-fold) is an error. Field meanings (Content-Length, ...) are not checked.
 * - Every byte is judged from the bytes before it, so an error is reported at the byte
 *   that makes the head invalid: a prefix of an input gives CIPC_EAGAIN up to that byte
 *   and the final result from there on, however the input is split.
 * - Limits: the head may not reach max_head bytes without being complete (a complete
 *   head of exactly max_head bytes is fine), and field line max_hdrs + 1 may not start:
 *   both are CIPC_ETOOBIG. Bytes past max_head are never read.
 *
 * Each call rescans from byte 0, so a head that arrives one byte at a time costs
 * O(max_head^2) in the worst case; keep max_head small for heads you only expect to be
 * short (a WebSocket handshake answer), or call again only when a new LF has arrived.
 *
 * Threading: thread-safe (a pure function of its arguments). */
#ifndef CIPC_SRC_HTTP_RESPONSE_H
#define CIPC_SRC_HTTP_RESPONSE_H

#include <stddef.h>

#include "cipc/error.h"
#include "http/parser.h"

struct cipc__http_response_head {
    int minor;                 /* HTTP/1.<minor>, 0..9 */
    int status;                /* 100..999 */
    struct cipc__slice reason; /* the reason phrase, possibly empty (n == 0) */
    size_t n_headers;          /* field lines stored in the caller's array */
};

/* Parse a response head from buf[0..n).
 *
 * `hdrs` is an array of `max_hdrs` entries (it may be NULL when max_hdrs is 0) that
 * receives the field lines in order; `max_head` is the largest head in bytes (0: the
 * request parser's default, CIPC__HTTP_DEFAULT_MAX_HEAD; values above INT_MAX count as
 * INT_MAX). On errors and on CIPC_EAGAIN the contents of *out and hdrs are unspecified.
 *
 * Returns the size of the head in bytes (> 0; the body starts there), CIPC_EAGAIN if the
 * head is incomplete and no limit is reached yet, CIPC_EPROTO if no continuation can make
 * it valid, or CIPC_ETOOBIG when a limit above is reached. Never reads buf[n] or beyond. */
int cipc__http_parse_response(const char *buf, size_t n, struct cipc__http_response_head *out,
                              struct cipc__http_header *hdrs, size_t max_hdrs, size_t max_head);

#endif
