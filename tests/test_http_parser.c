/* Proves that the HTTP/1.1 request parser accepts and rejects a table of heads with the
 * expected fields and statuses, gives CIPC_EAGAIN for every prefix before the point where
 * the result is known and the one-shot result from there on (rescanning, and resuming with
 * cipc__http_parse_request_more()), enforces its limits at the right sizes, and that the
 * chunked decoder gives the same body and pipelined bytes however its input is split. */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "http/parser.h"

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif
#ifdef HAVE_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define MAX_HEADERS 128

enum {
    ORIGIN = CIPC__TARGET_ORIGIN,
    ABS = CIPC__TARGET_ABSOLUTE,
    AUTH = CIPC__TARGET_AUTHORITY,
    STAR = CIPC__TARGET_ASTERISK
};

/* Expected result kinds (`status`): a valid head, an incomplete one, or an HTTP status. */
enum { VALID = 0, MORE = -1 };

/* One table row. For valid heads: the expected fields (NULL query: no '?'; NULL host:
 * none; NULL cl: no Content-Length; NULL path: {NULL, 0}), `v10` for HTTP/1.0, `close` when
 * keep_alive is 0; `hdrs`, if set, is every field as "name=value;" in order. The head ends
 * at the first CRLF CRLF after any leading CRLFs. For errors: `upto`, if set, is the text
 * through the byte where the error is found (its first occurrence), or `at` gives that
 * prefix length; otherwise the whole input. `len` is 0 for strlen(in). */
struct req_case {
    const char *in;
    size_t len;
    int status;
    const char *upto;
    size_t at; /* instead of upto: the prefix length where the error is found */
    const struct cipc__http_limits *limits;
    const char *method, *target, *path, *query, *host, *cl, *hdrs;
    int form, v10, nh, chunked, close, expect, upgrade;
};

static const struct cipc__http_limits small_line = {.max_request_line = 20};
static const struct cipc__http_limits small_head = {.max_head = 64};
static const struct cipc__http_limits two_headers = {.max_headers = 2};
static const struct cipc__http_limits small_body = {.max_body = 10};

#define H11 "HTTP/1.1\r\nHost: h\r\n"

/* clang-format off */
static const struct req_case cases[] = {
    /* Valid: origin-form basics. */
    {.in = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", .method = "GET", .target = "/",
     .path = "/", .host = "example.com", .nh = 1, .hdrs = "Host=example.com;"},
    {.in = "GET /a/b?x=1&y=2 " H11 "\r\n", .method = "GET", .target = "/a/b?x=1&y=2",
     .path = "/a/b", .query = "x=1&y=2", .host = "h", .nh = 1},
    {.in = "GET /p? " H11 "\r\n", .method = "GET", .target = "/p?", .path = "/p", .query = "",
     .host = "h", .nh = 1},
    {.in = "GET /p?a?b/c " H11 "\r\n", .method = "GET", .target = "/p?a?b/c", .path = "/p",
     .query = "a?b/c", .host = "h", .nh = 1},
    {.in = "GET /s?q={\"a\":[1|2]}^`\\<> " H11 "\r\n", .method = "GET",
     .target = "/s?q={\"a\":[1|2]}^`\\<>", .path = "/s", .query = "q={\"a\":[1|2]}^`\\<>",
     .host = "h", .nh = 1},
    {.in = "GET //a//b/%2F.. " H11 "\r\n", .method = "GET", .target = "//a//b/%2F..",
     .path = "//a//b/%2F..", .host = "h", .nh = 1},
    {.in = "GET /index.html HTTP/1.1\r\n"
           "Host: www.example.com\r\n"
           "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
           "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
           "Accept-Language: en-US,en;q=0.5\r\n"
           "Accept-Encoding: gzip, deflate, br\r\n"
           "Connection: keep-alive\r\n"
           "Cookie: session=abc123; theme=dark\r\n"
           "Upgrade-Insecure-Requests: 1\r\n"
           "\r\n",
     .method = "GET", .target = "/index.html", .path = "/index.html", .host = "www.example.com",
     .nh = 8},
    /* Methods: any token, case-sensitive. */
    {.in = "PURGE /x " H11 "\r\n", .method = "PURGE", .target = "/x", .path = "/x", .host = "h",
     .nh = 1},
    {.in = "get / " H11 "\r\n", .method = "get", .target = "/", .path = "/", .host = "h", .nh = 1},
    {.in = "M-SEARCH * HTTP/1.1\r\nHost: h\r\n\r\n", .status = 400, .upto = "M-SEARCH *"},
    {.in = "M-SEARCH /x " H11 "\r\n", .method = "M-SEARCH", .target = "/x", .path = "/x",
     .host = "h", .nh = 1},
    {.in = "!#$%&'*+-.^_`|~09azAZ / " H11 "\r\n", .method = "!#$%&'*+-.^_`|~09azAZ",
     .target = "/", .path = "/", .host = "h", .nh = 1},
    /* OPTIONS and CONNECT forms. */
    {.in = "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", .method = "OPTIONS", .target = "*",
     .path = "*", .form = STAR, .host = "h", .nh = 1},
    {.in = "OPTIONS /x " H11 "\r\n", .method = "OPTIONS", .target = "/x", .path = "/x",
     .host = "h", .nh = 1},
    {.in = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
     .method = "CONNECT", .target = "example.com:443", .form = AUTH, .host = "example.com:443",
     .nh = 1},
    {.in = "CONNECT [::1]:8080 HTTP/1.1\r\nHost: x\r\n\r\n", .method = "CONNECT",
     .target = "[::1]:8080", .form = AUTH, .host = "[::1]:8080", .nh = 1},
    /* Absolute-form: host and path come from the target. */
    {.in = "GET http://example.com/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n", .method = "GET",
     .target = "http://example.com/p?q=1", .path = "/p", .query = "q=1", .form = ABS,
     .host = "example.com", .nh = 1},
    {.in = "GET http://example.com:8080 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
     .method = "GET", .target = "http://example.com:8080", .path = NULL, .form = ABS,
     .host = "example.com:8080", .nh = 1},
    {.in = "GET https://h?x HTTP/1.1\r\nHost: h\r\n\r\n", .method = "GET",
     .target = "https://h?x", .path = NULL, .query = "x", .form = ABS, .host = "h", .nh = 1},
    {.in = "POST http://[::1]:80/a/b HTTP/1.0\r\n\r\n", .method = "POST",
     .target = "http://[::1]:80/a/b", .path = "/a/b", .form = ABS, .host = "[::1]:80", .v10 = 1,
     .close = 1},
    /* HTTP/1.0 and keep-alive. */
    {.in = "GET / HTTP/1.0\r\n\r\n", .method = "GET", .target = "/", .path = "/", .v10 = 1,
     .close = 1},
    {.in = "GET / HTTP/1.0\r\nHost: h:81\r\n\r\n", .method = "GET", .target = "/", .path = "/",
     .host = "h:81", .v10 = 1, .close = 1, .nh = 1},
    {.in = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", .method = "GET", .target = "/",
     .path = "/", .v10 = 1, .nh = 1},
    {.in = "GET / HTTP/1.0\r\nConnection: foo,  Keep-Alive \r\n\r\n", .method = "GET",
     .target = "/", .path = "/", .v10 = 1, .nh = 1},
    {.in = "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", .method = "GET",
     .target = "/", .path = "/", .v10 = 1, .close = 1, .nh = 1},
    {.in = "GET / " H11 "Connection: close\r\n\r\n", .method = "GET", .target = "/", .path = "/",
     .host = "h", .close = 1, .nh = 2},
    {.in = "GET / " H11 "connection: CLOSE\r\n\r\n", .method = "GET", .target = "/", .path = "/",
     .host = "h", .close = 1, .nh = 2},
    {.in = "GET / " H11 "Connection: keep-alive\r\nConnection: close\r\n\r\n", .method = "GET",
     .target = "/", .path = "/", .host = "h", .close = 1, .nh = 3},
    {.in = "GET / " H11 "Connection: closed, ,x\r\n\r\n", .method = "GET", .target = "/",
     .path = "/", .host = "h", .nh = 2},
    /* Content-Length. */
    {.in = "POST /f " H11 "Content-Length: 5\r\n\r\nhello", .method = "POST", .target = "/f",
     .path = "/f", .host = "h", .cl = "5", .nh = 2},
    {.in = "POST / " H11 "Content-Length: 0\r\n\r\n", .method = "POST", .target = "/", .path = "/",
     .host = "h", .cl = "0", .nh = 2},
    {.in = "POST / " H11 "content-LENGTH:007\r\n\r\n", .method = "POST", .target = "/",
     .path = "/", .host = "h", .cl = "7", .nh = 2},
    {.in = "POST / " H11 "Content-Length: 5, 5,5\r\n\r\n", .method = "POST", .target = "/",
     .path = "/", .host = "h", .cl = "5", .nh = 2},
    {.in = "POST / " H11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", .method = "POST",
     .target = "/", .path = "/", .host = "h", .cl = "5", .nh = 3},
    {.in = "POST / " H11 "Content-Length: 8388608\r\n\r\n", .method = "POST", .target = "/",
     .path = "/", .host = "h", .cl = "8388608", .nh = 2},
    {.in = "POST / " H11 "Content-Length: 10\r\n\r\n", .limits = &small_body, .method = "POST",
     .target = "/", .path = "/", .host = "h", .cl = "10", .nh = 2},
    /* Transfer-Encoding. */
    {.in = "POST / " H11 "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     .method = "POST", .target = "/", .path = "/", .host = "h", .chunked = 1, .nh = 2},
    {.in = "POST / " H11 "transfer-encoding:   CHUNKED  \r\n\r\n", .method = "POST",
     .target = "/", .path = "/", .host = "h", .chunked = 1, .nh = 2,
     .hdrs = "Host=h;transfer-encoding=CHUNKED;"},
    /* Expect and Upgrade. */
    {.in = "PUT / " H11 "Expect: 100-continue\r\nContent-Length: 3\r\n\r\n", .method = "PUT",
     .target = "/", .path = "/", .host = "h", .cl = "3", .expect = 1, .nh = 3},
    {.in = "PUT / " H11 "expect: 100-Continue\r\n\r\n", .method = "PUT", .target = "/",
     .path = "/", .host = "h", .expect = 1, .nh = 2},
    {.in = "PUT / " H11 "Expect: something-else\r\n\r\n", .method = "PUT", .target = "/",
     .path = "/", .host = "h", .nh = 2},
    {.in = "PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", .method = "PUT", .target = "/",
     .path = "/", .v10 = 1, .close = 1, .nh = 1},
    {.in = "GET /ws " H11 "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n", .method = "GET",
     .target = "/ws", .path = "/ws", .host = "h", .upgrade = 1, .nh = 3},
    {.in = "GET /ws " H11 "Connection: keep-alive, upgrade\r\nUpgrade: websocket\r\n\r\n",
     .method = "GET", .target = "/ws", .path = "/ws", .host = "h", .upgrade = 1, .nh = 3},
    {.in = "GET /ws " H11 "Upgrade: websocket\r\n\r\n", .method = "GET", .target = "/ws",
     .path = "/ws", .host = "h", .nh = 2},
    {.in = "GET /ws " H11 "Connection: upgrade\r\n\r\n", .method = "GET", .target = "/ws",
     .path = "/ws", .host = "h", .nh = 2},
    {.in = "GET /ws " H11 "Upgrade:\r\nConnection: upgrade\r\n\r\n", .method = "GET",
     .target = "/ws", .path = "/ws", .host = "h", .nh = 3},
    {.in = "GET /ws HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
     .method = "GET", .target = "/ws", .path = "/ws", .v10 = 1, .close = 1, .nh = 2},
    /* Field values: trimming, empty values, obs-text, HTAB, colons. */
    {.in = "GET / " H11 "X:   a b \t \r\nY:\r\nZ: \t \r\nW:\t:\tx:y\t\r\n\r\n", .method = "GET",
     .target = "/", .path = "/", .host = "h", .nh = 5,
     .hdrs = "Host=h;X=a b;Y=;Z=;W=:\tx:y;"},
    {.in = "GET / " H11 "X-Utf8: caf\xc3\xa9 \x80\xff\r\n\r\n", .method = "GET", .target = "/",
     .path = "/", .host = "h", .nh = 2, .hdrs = "Host=h;X-Utf8=caf\xc3\xa9 \x80\xff;"},
    {.in = "GET / HTTP/1.1\r\nHOST: h\r\n\r\n", .method = "GET", .target = "/", .path = "/",
     .host = "h", .nh = 1},
    /* Host forms. */
    {.in = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n", .method = "GET", .target = "/",
     .path = "/", .host = "127.0.0.1:8080", .nh = 1},
    {.in = "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", .method = "GET", .target = "/",
     .path = "/", .host = "[::1]:8080", .nh = 1},
    {.in = "GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n", .method = "GET", .target = "/",
     .path = "/", .host = "[2001:db8::1]", .nh = 1},
    {.in = "GET / HTTP/1.1\r\nHost: A.b-c_d~e.:0080\r\n\r\n", .method = "GET", .target = "/",
     .path = "/", .host = "A.b-c_d~e.:0080", .nh = 1},
    {.in = "GET / HTTP/1.1\r\nHost: xn--bcher-kva.example%41\r\n\r\n", .method = "GET",
     .target = "/", .path = "/", .host = "xn--bcher-kva.example%41", .nh = 1},
    {.in = "GET / HTTP/1.1\r\nHost: 255.255.255.255:65535\r\n\r\n", .method = "GET",
     .target = "/", .path = "/", .host = "255.255.255.255:65535", .nh = 1},
    {.in = "GET / HTTP/1.1\r\nHost: 0.0.0.0\r\n\r\n", .method = "GET", .target = "/",
     .path = "/", .host = "0.0.0.0", .nh = 1},
    {.in = "GET / HTTP/1.1\r\nHost: 1.2.3.4.example\r\n\r\n", .method = "GET", .target = "/",
     .path = "/", .host = "1.2.3.4.example", .nh = 1},
    /* Leading empty lines are skipped; a pipelined request is not part of the head. */
    {.in = "\r\nGET / " H11 "\r\n", .method = "GET", .target = "/", .path = "/", .host = "h",
     .nh = 1},
    {.in = "\r\n\r\n\r\nGET / " H11 "\r\n", .method = "GET", .target = "/", .path = "/",
     .host = "h", .nh = 1},
    {.in = "GET /1 " H11 "\r\nGET /2 " H11 "\r\n", .method = "GET", .target = "/1", .path = "/1",
     .host = "h", .nh = 1},
    /* Limits met exactly. */
    {.in = "GET /012345 HTTP/1.1\r\nHost: h\r\n\r\n", .limits = &small_line, .method = "GET",
     .target = "/012345", .path = "/012345", .host = "h", .nh = 1},
    {.in = "GET / " H11 "A: 1\r\n\r\n", .limits = &two_headers, .method = "GET", .target = "/",
     .path = "/", .host = "h", .nh = 2},
    {.in = "GET / " H11 "X: 01234567890123456789012345678901\r\n\r\n", .limits = &small_head,
     .method = "GET", .target = "/", .path = "/", .host = "h", .nh = 2},

    /* Incomplete. */
    {.in = "", .status = MORE},
    {.in = "\r\n\r\n", .status = MORE},
    {.in = "GET", .status = MORE},
    {.in = "GET / HTTP/1.1", .status = MORE},
    {.in = "GET / HTTP/1.1\r\nHost: h\r\n", .status = MORE},
    {.in = "GET / HTTP/1.1\r\nHost: h\r\n\r", .status = MORE},
    {.in = "POST / HTTP/1.1\r\nContent-Length: 5, 6", .status = MORE},

    /* Smuggling: Content-Length and Transfer-Encoding. */
    {.in = "POST / " H11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", .status = 400,
     .upto = "chunked\r\n"},
    {.in = "POST / " H11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", .status = 400,
     .upto = "5\r\n"},
    {.in = "POST / " H11 "Content-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n", .status = 400,
     .upto = "gzip\r\n"},
    {.in = "POST / " H11 "Transfer-Encoding: chunked, gzip\r\n\r\n", .status = 400,
     .upto = "gzip\r\n"},
    {.in = "POST / " H11 "Transfer-Encoding: gzip, chunked\r\n\r\n", .status = 501,
     .upto = "chunked\r\n"},
    {.in = "POST / " H11 "Transfer-Encoding: gzip\r\n\r\n", .status = 501, .upto = "gzip\r\n"},
    {.in = "POST / " H11 "Transfer-Encoding: identity\r\n\r\n", .status = 501,
     .upto = "identity\r\n"},
    {.in = "POST / " H11 "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
     .status = 501, .upto = "gzip\r\n"},
    {.in = "POST / " H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
     .status = 400, .upto = "gzip\r\n"},
    {.in = "POST / " H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
     .status = 400, .upto = "chunked\r\nTransfer-Encoding: chunked\r\n"},
    {.in = "POST / " H11 "Transfer-Encoding: chunked, chunked\r\n\r\n", .status = 400,
     .upto = "chunked\r\n"},
    {.in = "POST / " H11 "Transfer-Encoding: ,chunked\r\n\r\n", .status = 400,
     .upto = "chunked\r\n"},
    {.in = "POST / " H11 "Transfer-Encoding: chunked,\r\n\r\n", .status = 400,
     .upto = "chunked,\r\n"},
    {.in = "POST / " H11 "Transfer-Encoding:\r\n\r\n", .status = 400, .upto = "Encoding:\r\n"},
    {.in = "POST / " H11 "Transfer-Encoding: chunked;q=1\r\n\r\n", .status = 400,
     .upto = "q=1\r\n"},
    {.in = "POST / " H11 "Transfer-Encoding: \"chunked\"\r\n\r\n", .status = 400,
     .upto = "\"\r\n"},
    {.in = "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", .status = 400,
     .upto = "chunked\r\n"},
    {.in = "POST / " H11 "Transfer-Encoding: chunked\r\n Transfer-Encoding: x\r\n\r\n",
     .status = 400, .upto = "chunked\r\n "},
    {.in = "POST / HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: h\r\n\r\n", .status = 400,
     .upto = "1.1\r\n "},
    {.in = "POST / " H11 "Transfer-Encoding : chunked\r\n\r\n", .status = 400,
     .upto = "Encoding "},
    {.in = "POST / " H11 "Transfer-Encoding:\x0b" "chunked\r\n\r\n", .status = 400,
     .upto = "Encoding:\x0b"},
    /* Content-Length values. */
    {.in = "POST / " H11 "Content-Length: 1, 2\r\n\r\n", .status = 400, .upto = "2\r\n"},
    {.in = "POST / " H11 "Content-Length: 1\r\nContent-Length: 2\r\n\r\n", .status = 400,
     .upto = "2\r\n"},
    {.in = "POST / " H11 "Content-Length: +1\r\n\r\n", .status = 400, .upto = "+1\r\n"},
    {.in = "POST / " H11 "Content-Length: -1\r\n\r\n", .status = 400, .upto = "-1\r\n"},
    {.in = "POST / " H11 "Content-Length: 1 2\r\n\r\n", .status = 400, .upto = "2\r\n"},
    {.in = "POST / " H11 "Content-Length: 0x10\r\n\r\n", .status = 400, .upto = "10\r\n"},
    {.in = "POST / " H11 "Content-Length:\r\n\r\n", .status = 400, .upto = "Length:\r\n"},
    {.in = "POST / " H11 "Content-Length: 5,\r\n\r\n", .status = 400, .upto = "5,\r\n"},
    {.in = "POST / " H11 "Content-Length: 5,,5\r\n\r\n", .status = 400, .upto = "5\r\n"},
    {.in = "POST / " H11 "Content-Length: 99999999999999999999\r\n\r\n", .status = 400,
     .upto = "9\r\n"},
    {.in = "POST / " H11 "Content-Length: 9223372036854775808\r\n\r\n", .status = 400,
     .upto = "8\r\n"},
    {.in = "POST / " H11 "Content-Length: 9223372036854775807\r\n\r\n", .status = 413,
     .upto = "7\r\n"},
    {.in = "POST / " H11 "Content-Length: 8388609\r\n\r\n", .status = 413, .upto = "9\r\n"},
    {.in = "POST / " H11 "Content-Length: 11\r\n\r\n", .limits = &small_body, .status = 413,
     .upto = "11\r\n"},
    /* Host. */
    {.in = "GET / HTTP/1.1\r\n\r\n", .status = 400},
    {.in = "GET / HTTP/1.1\r\nX: y\r\n\r\n", .status = 400},
    {.in = "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", .status = 400,
     .upto = "a\r\nHost: a\r\n"},
    {.in = "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", .status = 400, .upto = "b\r\n"},
    {.in = "GET / HTTP/1.1\r\nHost:\r\n\r\n", .status = 400, .upto = "Host:\r\n"},
    {.in = "GET / HTTP/1.1\r\nHost : h\r\n\r\n", .status = 400, .upto = "Host "},
    {.in = "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", .status = 400, .upto = "b\r\n"},
    {.in = "GET / HTTP/1.1\r\nHost: h:99999\r\n\r\n", .status = 400, .upto = "9\r\n"},
    {.in = "GET / HTTP/1.1\r\nHost: h:\r\n\r\n", .status = 400, .upto = "h:\r\n"},
    {.in = "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", .status = 400, .upto = "::1\r\n"},
    {.in = "GET / HTTP/1.1\r\nHost: u@h\r\n\r\n", .status = 400, .upto = "h\r\n"},
    {.in = "GET / HTTP/1.1\r\nHost: h/p\r\n\r\n", .status = 400, .upto = "p\r\n"},
    {.in = "GET / HTTP/1.1\r\nHost: 1.2.3\r\n\r\n", .status = 400, .upto = "3\r\n"},
    {.in = "GET / HTTP/1.1\r\nHost: 01.2.3.4\r\n\r\n", .status = 400, .upto = "4\r\n"},
    {.in = "GET / HTTP/1.1\r\nHost: 1.2.3.256\r\n\r\n", .status = 400, .upto = "6\r\n"},
    {.in = "GET / HTTP/1.1\r\nHost: 1.2.3.4.5\r\n\r\n", .status = 400, .upto = "5\r\n"},
    {.in = "GET / HTTP/1.1\r\nHost: 8080\r\n\r\n", .status = 400, .upto = "0\r\n"},
    {.in = "GET / HTTP/1.1\r\nHost: 1.2.3.4:\r\n\r\n", .status = 400, .upto = ":\r\n"},
    {.in = "GET / HTTP/1.1\r\nHost: 1.2.3.4:65536\r\n\r\n", .status = 400, .upto = "6\r\n"},
    {.in = "GET / HTTP/1.1\r\nHost: h\x80\r\n\r\n", .status = 400, .upto = "\x80\r\n"},
    /* Line endings, CR, NUL and control characters. */
    {.in = "GET / HTTP/1.1\nHost: h\n\n", .status = 400, .upto = "1.1\n"},
    {.in = "GET / HTTP/1.1\r\nHost: h\n\r\n", .status = 400, .upto = "h\n"},
    {.in = "GET / HTTP/1.1\r\nHost: h\r\n\n", .status = 400, .upto = "h\r\n\n"},
    {.in = "GET / HTTP/1.1\r\nHost: h\r\n\rX", .status = 400, .upto = "\rX"},
    {.in = "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", .status = 400, .upto = "\rb"},
    {.in = "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\r\n\r\n", .status = 400, .upto = "a\r\r"},
    {.in = "GET / HTTP/1.1\rHost: h\r\n\r\n", .status = 400, .upto = "1.1\rH"},
    {.in = "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", .len = 35, .status = 400, .at = 30},
    {.in = "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01\r\n\r\n", .status = 400, .upto = "\x01"},
    {.in = "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", .status = 400, .upto = "\x7f"},
    {.in = "GET / HTTP/1.1\r\nHost: h\r\nX\x01: a\r\n\r\n", .status = 400, .upto = "\x01"},
    {.in = "GET / HTTP/1.1\r\nHost: h\r\n: a\r\n\r\n", .status = 400, .upto = "h\r\n:"},
    {.in = "GET / HTTP/1.1\r\nHost: h\r\nX@Y: a\r\n\r\n", .status = 400, .upto = "X@"},
    {.in = "GET / HTTP/1.1\r\nHost: h\r\nX\xc3\xa9: a\r\n\r\n", .status = 400, .upto = "X\xc3"},
    {.in = "GET / HTTP/1.1\r\nHost: h\r\nX\r\n\r\n", .status = 400, .upto = "X\r"},
    {.in = "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", .status = 400, .upto = "\t"},
    {.in = "\nGET / " H11 "\r\n", .status = 400, .upto = "\n"},
    {.in = "\r\rGET / " H11 "\r\n", .status = 400, .upto = "\r\r"},
    {.in = "\r\n \r\nGET / " H11 "\r\n", .status = 400, .upto = "\r\n "},
    /* Request line. */
    {.in = "GET  / " H11 "\r\n", .status = 400, .upto = "GET  "},
    {.in = "GET /  HTTP/1.1\r\nHost: h\r\n\r\n", .status = 400, .upto = "/  "},
    {.in = "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", .status = 400, .upto = "1.1 "},
    {.in = " GET / " H11 "\r\n", .status = 400, .upto = " "},
    {.in = "GET\t/ " H11 "\r\n", .status = 400, .upto = "GET\t"},
    {.in = "G(T / " H11 "\r\n", .status = 400, .upto = "G("},
    {.in = "GET / http/1.1\r\nHost: h\r\n\r\n", .status = 400, .upto = "/ h"},
    {.in = "GET / HTTP/1.10\r\nHost: h\r\n\r\n", .status = 400, .upto = "1.10"},
    {.in = "GET / HTTP/1.x\r\nHost: h\r\n\r\n", .status = 400, .upto = "1.x"},
    {.in = "GET / HTTP/11\r\nHost: h\r\n\r\n", .status = 400, .upto = "/11"},
    {.in = "GET / HTTP/2.0\r\nHost: h\r\n\r\n", .status = 505, .upto = "HTTP/2"},
    {.in = "GET / HTTP/1.2\r\nHost: h\r\n\r\n", .status = 505, .upto = "HTTP/1.2"},
    {.in = "GET / HTTP/0.9\r\n\r\n", .status = 505, .upto = "HTTP/0"},
    {.in = "GET / HTTP/3\r\n\r\n", .status = 505, .upto = "HTTP/3"},
    {.in = "GET /\r\n\r\n", .status = 400, .upto = "/\r"},
    {.in = "GET / \r\n\r\n", .status = 400, .upto = "/ \r"},
    {.in = "GET /a\x01" "b " H11 "\r\n", .status = 400, .upto = "\x01"},
    {.in = "GET /a\x7f" "b " H11 "\r\n", .status = 400, .upto = "\x7f"},
    {.in = "GET /caf\xc3\xa9 " H11 "\r\n", .status = 400, .upto = "\xc3"},
    {.in = "GET /a#f " H11 "\r\n", .status = 400, .upto = "#"},
    {.in = "GET %2F " H11 "\r\n", .status = 400, .upto = "%"},
    {.in = "GET * " H11 "\r\n", .status = 400, .upto = "*"},
    {.in = "OPTIONS *x " H11 "\r\n", .status = 400, .upto = "*x"},
    {.in = "OPTIONS */ " H11 "\r\n", .status = 400, .upto = "*/"},
    {.in = "CONNECT / " H11 "\r\n", .status = 400, .upto = "CONNECT /"},
    {.in = "CONNECT example.com " H11 "\r\n", .status = 400, .upto = ".com "},
    {.in = "CONNECT u@h:1 " H11 "\r\n", .status = 400, .upto = ":1 "},
    {.in = "GET http://u@h/ " H11 "\r\n", .status = 400, .upto = "h/ "},
    {.in = "GET http:/x " H11 "\r\n", .status = 400, .upto = "/x "},
    {.in = "GET mailto:x@y " H11 "\r\n", .status = 400, .upto = "@y "},
    {.in = "GET a/b " H11 "\r\n", .status = 400, .upto = "a/b "},
    {.in = "GET http://h/{} " H11 "\r\n", .status = 400, .upto = "} "},
    /* Limits. */
    {.in = "GET /01234567 HTTP/1.1\r\nHost: h\r\n\r\n", .limits = &small_line, .status = 414,
     .upto = "GET /01234567 HTTP/1"},
    {.in = "GET /0123456789012345678901234 HTTP/1.1\r\n", .limits = &small_line,
     .status = 414, .upto = "GET /012345678901234"},
    {.in = "GET / " H11 "A: 1\r\nB: 2\r\n\r\n", .limits = &two_headers, .status = 431,
     .upto = "1\r\nB"},
    {.in = "GET / " H11 "X: 012345678901234567890123456789012\r\n\r\n", .limits = &small_head,
     .status = 431, .upto = "GET / " H11 "X: 012345678901234567890123456789012\r\n\r"},
    {.in = "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
           "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET",
     .limits = &small_head, .status = 431,
     .upto = "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
             "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"},
    /* A syntax error before a limit is reached wins, and the other way round. */
    {.in = "GET /\x01" "0123456789012345678901234 HTTP/1.1\r\n", .limits = &small_line,
     .status = 400, .upto = "\x01"},
    {.in = "POST / " H11 "Content-Length: 11\r\nTransfer-Encoding: chunked\r\n\r\n",
     .limits = &small_body, .status = 413, .upto = "11\r\n"},
};
/* clang-format on */

/* The input being tested, printed if a CHECK aborts. */
static char current[2048];
static size_t current_len;

static void on_abort(int sig)
{
    (void)sig;
    ssize_t w = write(STDERR_FILENO, current, current_len);
    (void)w;
}

static void set_current(const char *what, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = (size_t)snprintf(current, sizeof current, "while testing %s \"", what);
    for (size_t i = 0; i < len && n < sizeof current - 16; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            current[n++] = (char)c;
        } else if (c == '\r' || c == '\n') {
            current[n++] = '\\';
            current[n++] = c == '\r' ? 'r' : 'n';
        } else {
            current[n++] = '\\';
            current[n++] = 'x';
            current[n++] = hex[c >> 4];
            current[n++] = hex[c & 15];
        }
    }
    current[n++] = '"';
    current[n++] = '\n';
    current_len = n;
}

static char *dup_exact(const char *s, size_t len)
{
    char *p = malloc(len ? len : 1);
    CHECK(p != NULL);
    if (len)
        memcpy(p, s, len);
    return p;
}

static void init_req(struct cipc__http_request *req, struct cipc__http_header *hdrs)
{
    memset(req, 0, sizeof *req);
    req->headers = hdrs;
}

/* Offset of a slice's start in its buffer, or -1 for NULL. */
static long long off(struct cipc__slice s, const char *buf)
{
    return s.p ? (long long)(s.p - buf) : -1;
}

static void check_same_slice(struct cipc__slice a, const char *ba, struct cipc__slice b,
                             const char *bb)
{
    CHECK_INT(off(a, ba), ==, off(b, bb));
    CHECK_INT(a.n, ==, b.n);
}

/* Every result field of two parses of the same bytes (in buffers ba and bb) agree. */
static void check_same_req(const struct cipc__http_request *a, const char *ba,
                           const struct cipc__http_request *b, const char *bb)
{
    check_same_slice(a->method, ba, b->method, bb);
    check_same_slice(a->target, ba, b->target, bb);
    check_same_slice(a->path, ba, b->path, bb);
    check_same_slice(a->query, ba, b->query, bb);
    check_same_slice(a->host, ba, b->host, bb);
    CHECK_INT(a->form, ==, b->form);
    CHECK_INT(a->minor, ==, b->minor);
    CHECK_INT(a->n_headers, ==, b->n_headers);
    for (size_t i = 0; i < a->n_headers; i++) {
        check_same_slice(a->headers[i].name, ba, b->headers[i].name, bb);
        check_same_slice(a->headers[i].value, ba, b->headers[i].value, bb);
    }
    CHECK_INT(a->content_length, ==, b->content_length);
    CHECK_INT(a->chunked, ==, b->chunked);
    CHECK_INT(a->keep_alive, ==, b->keep_alive);
    CHECK_INT(a->expect_continue, ==, b->expect_continue);
    CHECK_INT(a->upgrade, ==, b->upgrade);
}

/* A slice is inside buf[0..len) and equals `want` (NULL: the slice is {NULL, 0}). */
static void check_slice(struct cipc__slice s, const char *buf, size_t len, const char *want)
{
    if (!want) {
        CHECK(s.p == NULL);
        CHECK_INT(s.n, ==, 0);
        return;
    }
    CHECK(s.p != NULL && s.p >= buf && s.n <= len && (size_t)(s.p - buf) <= len - s.n);
    CHECK_MEM(s.p, s.n, want);
}

/* The expected head size of a valid case: after leading CRLFs, through the first CRLF CRLF. */
static size_t head_size(const char *in, size_t len)
{
    size_t i = 0;
    while (i + 1 < len && in[i] == '\r' && in[i + 1] == '\n')
        i += 2;
    for (; i + 3 < len; i++)
        if (memcmp(in + i, "\r\n\r\n", 4) == 0)
            return i + 4;
    return 0;
}

static size_t find(const char *in, size_t len, const char *what)
{
    size_t n = strlen(what);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(in + i, what, n) == 0)
            return i + n;
    CHECK(!"upto text not found in the input");
    return 0;
}

static void check_expected(const struct req_case *t, const char *buf, size_t len,
                           const struct cipc__http_request *req)
{
    check_slice(req->method, buf, len, t->method);
    check_slice(req->target, buf, len, t->target);
    check_slice(req->path, buf, len, t->path);
    check_slice(req->query, buf, len, t->query);
    if (t->host)
        check_slice(req->host, buf, len, t->host);
    else
        CHECK_INT(req->host.n, ==, 0);
    CHECK_INT(req->form, ==, t->form);
    CHECK_INT(req->minor, ==, t->v10 ? 0 : 1);
    CHECK_INT(req->n_headers, ==, t->nh);
    CHECK_INT(req->content_length, ==, t->cl ? strtoll(t->cl, NULL, 10) : -1);
    CHECK_INT(req->chunked, ==, t->chunked);
    CHECK_INT(req->keep_alive, ==, !t->close);
    CHECK_INT(req->expect_continue, ==, t->expect);
    CHECK_INT(req->upgrade, ==, t->upgrade);
    if (t->hdrs) {
        char all[1024];
        size_t n = 0;
        for (size_t i = 0; i < req->n_headers; i++) {
            const struct cipc__http_header *h = &req->headers[i];
            CHECK(n + h->name.n + h->value.n + 2 < sizeof all);
            memcpy(all + n, h->name.p, h->name.n);
            n += h->name.n;
            all[n++] = '=';
            memcpy(all + n, h->value.p, h->value.n);
            n += h->value.n;
            all[n++] = ';';
        }
        all[n] = '\0';
        CHECK_STR(all, t->hdrs);
    }
}

/* One parse of in[0..len) from an exact-size copy; fills *copy (freed by the caller). */
static int parse_copy(const char *in, size_t len, size_t prev_len,
                      const struct cipc__http_limits *lim, struct cipc__http_request *req,
                      int *status, char **copy)
{
    *copy = dup_exact(in, len);
    *status = -7;
    int rc = cipc__http_parse_request(*copy, len, prev_len, lim, req, status);
    if (rc != CIPC_EPROTO)
        CHECK_INT(*status, ==, -7);
    return rc;
}

/* The result for a prefix: CIPC_EAGAIN before `at`, the one-shot result from there on. */
static void check_prefix_result(size_t k, size_t at, int rc, int status, int want_rc,
                                int want_status, const struct cipc__http_request *req,
                                const char *buf, const struct cipc__http_request *one,
                                const char *one_buf)
{
    if (k < at) {
        CHECK_INT(rc, ==, CIPC_EAGAIN);
        return;
    }
    CHECK_INT(rc, ==, want_rc);
    if (rc == CIPC_EPROTO)
        CHECK_INT(status, ==, want_status);
    if (rc > 0)
        check_same_req(req, buf, one, one_buf);
}

/* Parse `in` one-shot, then every prefix: (1) each prefix in its own exact-size buffer with
 * prev_len = the previous prefix length, (2) growing prefixes of one buffer with
 * cipc__http_parse_request_more() (it resumes), the bytes past the prefix poisoned under
 * ASan and the headers array overwritten between calls, (3) the same in uneven steps, and
 * (4) cipc__http_parse_request() on a request full of garbage (it reads only `headers`).
 * Every way must give CIPC_EAGAIN before `at` (SIZE_MAX: never) and the one-shot result
 * after. Returns the one-shot result. */
static int check_all_prefixes(const char *in, size_t len, const struct cipc__http_limits *lim,
                              size_t at, int *status_out,
                              void (*check)(const char *, size_t, const struct cipc__http_request *,
                                            const void *),
                              const void *ud)
{
    static struct cipc__http_header h1[MAX_HEADERS], h2[MAX_HEADERS];
    struct cipc__http_request one, req;
    char *one_buf, *buf;
    int one_status, status;

    init_req(&one, h1);
    int one_rc = parse_copy(in, len, 0, lim, &one, &one_status, &one_buf);
    if (check)
        check(one_buf, len, &one, ud);
    if (at == 0)
        at = one_rc > 0 ? (size_t)one_rc : len;

    /* (1) Exact-size copies. */
    init_req(&req, h2);
    size_t prev = 0;
    for (size_t k = 0; k <= len; k++) {
        int rc = parse_copy(in, k, prev, lim, &req, &status, &buf);
        check_prefix_result(k, at, rc, status, one_rc, one_status, &req, buf, &one, one_buf);
        free(buf);
        prev = k;
    }

    /* (2) One buffer, resumed. */
    buf = dup_exact(in, len);
    cipc__http_request_init(&req, h2);
    for (size_t k = 0; k <= len; k++) {
        POISON(buf + k, len - k);
        status = -7;
        int rc = cipc__http_parse_request_more(buf, k, lim, &req, &status);
        UNPOISON(buf + k, len - k);
        check_prefix_result(k, at, rc, status, one_rc, one_status, &req, buf, &one, one_buf);
        if (rc == CIPC_EAGAIN) {
            CHECK(req._buf == buf && req._len == k);
            memset(h2, 0x5a, sizeof h2);
        }
    }

    /* (3) Uneven steps 1, 2, 3, ... bytes, resumed. */
    cipc__http_request_init(&req, h2);
    for (size_t k = 0, step = 1;; step++) {
        status = -7;
        int rc = cipc__http_parse_request_more(buf, k, lim, &req, &status);
        check_prefix_result(k, at, rc, status, one_rc, one_status, &req, buf, &one, one_buf);
        if (k == len)
            break;
        k = len - k > step ? k + step : len;
    }

    /* (4) A request full of garbage, with any prev_len. */
    for (size_t k = 0; k <= len; k += len / 7 + 1) {
        memset(&req, 0xa5, sizeof req);
        req.headers = h2;
        status = -7;
        int rc = cipc__http_parse_request(buf, len, k, lim, &req, &status);
        check_prefix_result(len, at, rc, status, one_rc, one_status, &req, buf, &one, one_buf);
    }
    free(buf);
    free(one_buf);
    if (status_out)
        *status_out = one_status;
    return one_rc;
}

static void check_case(const char *buf, size_t len, const struct cipc__http_request *req,
                       const void *ud)
{
    check_expected(ud, buf, len, req);
}

static void test_table(void)
{
    size_t nvalid = 0, ninvalid = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct req_case *t = &cases[i];
        size_t len = t->len ? t->len : strlen(t->in);
        set_current("request", t->in, len);
        size_t at = 0;
        if (t->status == MORE)
            at = SIZE_MAX;
        else if (t->upto)
            at = find(t->in, len, t->upto);
        else if (t->at)
            at = t->at;
        int status;
        int rc = check_all_prefixes(t->in, len, t->limits, at, &status,
                                    t->status == VALID ? check_case : NULL, t);
        if (t->status == VALID) {
            CHECK_INT(rc, ==, head_size(t->in, len));
            nvalid++;
        } else if (t->status == MORE) {
            CHECK_INT(rc, ==, CIPC_EAGAIN);
        } else {
            CHECK_INT(rc, ==, CIPC_EPROTO);
            CHECK_INT(status, ==, t->status);
            ninvalid++;
        }
    }
    CHECK(nvalid >= 50);
    CHECK(ninvalid >= 100);
    current_len = 0;
}

/* Text in a growable buffer for the generated inputs. */
struct text {
    char *p;
    size_t n, cap;
};

static void put(struct text *t, const char *s, size_t n)
{
    if (t->n + n + 1 > t->cap) {
        t->cap = (t->n + n + 1) * 2;
        t->p = realloc(t->p, t->cap);
        CHECK(t->p != NULL);
    }
    memcpy(t->p + t->n, s, n);
    t->n += n;
    t->p[t->n] = '\0';
}

static void puts_(struct text *t, const char *s)
{
    put(t, s, strlen(s));
}

static void put_fill(struct text *t, char c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put(t, &c, 1);
}

/* Parse a generated input one-shot and at every prefix; check the result and where it
 * appears (`at` 0: the head size or the whole input). With `stride` > 1 only every
 * stride-th prefix (and those next to `at`) is parsed in exact-size copies, for big inputs. */
static void check_generated(const char *what, struct text *t, const struct cipc__http_limits *lim,
                            int want_status, size_t at)
{
    set_current(what, t->p, t->n > 300 ? 300 : t->n);
    int status;
    int rc = check_all_prefixes(t->p, t->n, lim, at, &status, NULL, NULL);
    if (want_status == VALID) {
        CHECK_INT(rc, ==, head_size(t->p, t->n));
    } else {
        CHECK_INT(rc, ==, CIPC_EPROTO);
        CHECK_INT(status, ==, want_status);
    }
    t->n = 0;
}

/* A big input: one-shot, and resumed over every prefix of one buffer (cheap: the parser
 * resumes), with exact-size copies only around `at`. */
static void check_big(const char *what, struct text *t, const struct cipc__http_limits *lim,
                      int want_status, size_t at)
{
    static struct cipc__http_header hdrs[MAX_HEADERS];
    struct cipc__http_request req;
    int status = -7;
    set_current(what, t->p, 200);
    char *buf = dup_exact(t->p, t->n);
    init_req(&req, hdrs);
    int rc = cipc__http_parse_request(buf, t->n, 0, lim, &req, &status);
    if (want_status == VALID) {
        CHECK_INT(rc, ==, head_size(t->p, t->n));
        at = (size_t)rc;
    } else {
        CHECK_INT(rc, ==, CIPC_EPROTO);
        CHECK_INT(status, ==, want_status);
    }
    cipc__http_request_init(&req, hdrs);
    for (size_t k = 0; k <= t->n; k++) {
        int st = -7;
        int r = cipc__http_parse_request_more(buf, k, lim, &req, &st);
        CHECK_INT(r, ==, k < at ? CIPC_EAGAIN : rc);
        if (r == CIPC_EPROTO)
            CHECK_INT(st, ==, status);
    }
    free(buf);
    for (size_t k = at - 2; k <= at + 1 && k <= t->n; k++) {
        char *p = dup_exact(t->p, k);
        init_req(&req, hdrs);
        int st = -7;
        int r = cipc__http_parse_request(p, k, 0, lim, &req, &st);
        CHECK_INT(r, ==, k < at ? CIPC_EAGAIN : rc);
        free(p);
    }
    t->n = 0;
}

/* Limits, default and custom, are enforced at exactly the documented sizes. */
static void test_limits(void)
{
    struct text t = {0};
    struct cipc__http_limits lim;

    /* Request line of exactly max_request_line bytes, and one more. */
    for (size_t max = 14; max <= 40; max += 13) {
        memset(&lim, 0, sizeof lim);
        lim.max_request_line = max;
        for (int extra = 0; extra <= 1; extra++) {
            puts_(&t, "GET /");
            put_fill(&t, 'a', max - 14 + (size_t)extra);
            puts_(&t, " HTTP/1.1\r\nHost: h\r\n\r\n");
            check_generated("request line limit", &t, &lim, extra ? 414 : VALID, extra ? max : 0);
        }
    }
    /* Default: 8192. */
    puts_(&t, "GET /");
    put_fill(&t, 'a', 8192 - 14);
    puts_(&t, " HTTP/1.1\r\nHost: h\r\n\r\n");
    check_big("default request line", &t, NULL, VALID, 0);
    puts_(&t, "GET /");
    put_fill(&t, 'a', 8192 - 13);
    puts_(&t, " HTTP/1.1\r\nHost: h\r\n\r\n");
    check_big("default request line + 1", &t, NULL, 414, 8192);
    /* Leading empty lines do not count towards the request line. */
    memset(&lim, 0, sizeof lim);
    lim.max_request_line = 16;
    puts_(&t, "\r\n\r\nGET /ab HTTP/1.1\r\nHost: h\r\n\r\n");
    check_generated("request line after CRLFs", &t, &lim, VALID, 0);

    /* Header count: max_headers fields, then one more. */
    for (size_t max = 1; max <= 5; max += 2) {
        memset(&lim, 0, sizeof lim);
        lim.max_headers = max;
        for (int extra = 0; extra <= 1; extra++) {
            puts_(&t, "GET / HTTP/1.1\r\nHost: h\r\n");
            for (size_t i = 1; i < max + (size_t)extra; i++)
                puts_(&t, "X: y\r\n");
            size_t at = t.n - 5; /* the first byte of the last field line */
            puts_(&t, "\r\n");
            check_generated("header count", &t, &lim, extra ? 431 : VALID, extra ? at : 0);
        }
    }
    /* Default: 100. */
    for (int extra = 0; extra <= 1; extra++) {
        puts_(&t, "GET / HTTP/1.1\r\nHost: h\r\n");
        for (int i = 1; i < 100 + extra; i++)
            puts_(&t, "X-Header: value\r\n");
        size_t at = t.n - 16;
        puts_(&t, "\r\n");
        check_big("default header count", &t, NULL, extra ? 431 : VALID, at);
    }

    /* Head size: exactly max_head bytes, then one more (431 at max_head bytes). */
    for (size_t max = 40; max <= 100; max += 30) {
        memset(&lim, 0, sizeof lim);
        lim.max_head = max;
        for (int extra = 0; extra <= 1; extra++) {
            puts_(&t, "GET / HTTP/1.1\r\nHost: h\r\nX: ");
            put_fill(&t, 'v', max - 32 + (size_t)extra);
            puts_(&t, "\r\n\r\nbody");
            check_generated("head size", &t, &lim, extra ? 431 : VALID, extra ? max : 0);
        }
    }
    /* Default: 64 KiB. */
    for (int extra = 0; extra <= 1; extra++) {
        puts_(&t, "GET / HTTP/1.1\r\nHost: h\r\n");
        while (t.n < 65536 - 2 * 1030) { /* 64 fields of about 1 KiB */
            puts_(&t, "X: ");
            put_fill(&t, 'x', 1024);
            puts_(&t, "\r\n");
        }
        puts_(&t, "Y: ");
        put_fill(&t, 'w', 65536 - 4 - t.n + (size_t)extra);
        puts_(&t, "\r\n\r\n");
        CHECK_INT(t.n, ==, 65536 + extra);
        check_big("default head size", &t, NULL, extra ? 431 : VALID, 65536);
    }

    /* Body size: Content-Length at max_body and above. */
    memset(&lim, 0, sizeof lim);
    lim.max_body = 1000;
    puts_(&t, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n");
    check_generated("body limit", &t, &lim, VALID, 0);
    puts_(&t, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n");
    check_generated("body limit + 1", &t, &lim, 413, t.n - 2);
    puts_(&t, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000, 1000\r\n\r\n");
    check_generated("body limit list", &t, &lim, VALID, 0);
    puts_(&t, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0000000000000000000000001001\r\n\r\n");
    check_generated("body limit zeros", &t, &lim, 413, t.n - 2);

    /* When the request line limit is reached first, 414; when the head limit is, 431. */
    memset(&lim, 0, sizeof lim);
    lim.max_request_line = 30;
    lim.max_head = 20;
    puts_(&t, "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n");
    check_generated("head before line", &t, &lim, 431, 20);
    lim.max_request_line = 20;
    lim.max_head = 20;
    puts_(&t, "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n");
    check_generated("line and head", &t, &lim, 414, 20);
    free(t.p);
}

/* Reference character sets, written from RFC 9110 independently of the parser's table. */
static int ref_tchar(int c)
{
    return c != 0 && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int ref_field_char(int c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Every byte value at every position of a method, a target, a field name and a long field
 * value (so the eight-at-a-time scans see it in every lane) is judged as RFC 9110 says. */
static void test_every_byte(void)
{
    struct text t = {0};
    for (int c = 0; c < 256; c++) {
        char ch = (char)c;
        int ok;

        /* Method "G<c>T". */
        puts_(&t, "G");
        put(&t, &ch, 1);
        puts_(&t, "T / HTTP/1.1\r\nHost: h\r\n\r\n");
        ok = ref_tchar(c);
        if (c == ' ') /* method "G", absolute-form target "T" */
            check_generated("method byte", &t, NULL, 400, 4);
        else
            check_generated("method byte", &t, NULL, ok ? VALID : 400, ok ? 0 : 2);

        /* Field name "X<c>Y". */
        puts_(&t, "GET / HTTP/1.1\r\nHost: h\r\nX");
        put(&t, &ch, 1);
        puts_(&t, "Y: z\r\n\r\n");
        ok = ref_tchar(c);
        check_generated("name byte", &t, NULL, ok || c == ':' ? VALID : 400,
                        ok || c == ':' ? 0 : 27);

        for (size_t at = 0; at < 20; at++) {
            /* Target "/aaa<c>aaa...". */
            puts_(&t, "GET /");
            put_fill(&t, 'a', at);
            put(&t, &ch, 1);
            put_fill(&t, 'a', 20 - at);
            puts_(&t, " HTTP/1.1\r\nHost: h\r\n\r\n");
            ok = c > 0x20 && c < 0x7f && c != '#';
            size_t where = 5 + at + 1;
            if (c == ' ')
                check_generated("target byte", &t, NULL, 400, where + 1);
            else
                check_generated("target byte", &t, NULL, ok ? VALID : 400, ok ? 0 : where);

            /* Value "vvv<c>vvv...". */
            puts_(&t, "GET / HTTP/1.1\r\nHost: h\r\nX: v");
            put_fill(&t, 'v', at);
            put(&t, &ch, 1);
            put_fill(&t, 'v', 20 - at);
            puts_(&t, "\r\n\r\n");
            ok = ref_field_char(c);
            where = 29 + at + 1;
            if (c == '\r')
                check_generated("value byte", &t, NULL, 400, where + 1);
            else
                check_generated("value byte", &t, NULL, ok ? VALID : 400, ok ? 0 : where);
        }
    }
    free(t.p);
}

/* cipc__http_parse_request_more() after the buffer moved (realloc) starts over, with another
 * headers array refills it, and after a final result starts over; the result is always the
 * one-shot result. */
static void test_resume_rules(void)
{
    static const char in[] = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nA:  b \r\n\r\nhi";
    size_t len = sizeof in - 1;
    struct cipc__http_header h1[8], h2[8];
    struct cipc__http_limits lim = {.max_headers = 8};
    struct cipc__http_request req;
    int status;
    cipc__http_request_init(&req, h1);
    char *a = dup_exact(in, 20);
    CHECK_INT(cipc__http_parse_request_more(a, 20, &lim, &req, &status), ==, CIPC_EAGAIN);
    CHECK(req._buf == a && req._pos == 20);
    char *b = dup_exact(in, 40);
    CHECK_INT(cipc__http_parse_request_more(b, 40, &lim, &req, &status), ==, CIPC_EAGAIN);
    CHECK(req._buf == b && req._pos == 40 && !req._resumed);
    CHECK_INT(cipc__http_parse_request_more(b, 40, &lim, &req, &status), ==, CIPC_EAGAIN);
    CHECK(req._resumed);
    memset(h1, 0, sizeof h1);
    req.headers = h2;
    char *c = dup_exact(in, len);
    memcpy(c, b, 40);
    free(b);
    int rc = cipc__http_parse_request_more(c, len, &lim, &req, &status);
    CHECK_INT(rc, ==, (int)len - 2);
    CHECK(!req._resumed); /* c is a new address: started over */
    CHECK_INT(req.n_headers, ==, 3);
    CHECK(req.headers == h2);
    CHECK_MEM(h2[2].name.p, h2[2].name.n, "A");
    CHECK_MEM(h2[2].value.p, h2[2].value.n, "b");
    CHECK_INT(req.content_length, ==, 2);
    /* After a final result there is no resume point: a later call parses afresh. */
    CHECK(req._buf == NULL);
    CHECK_INT(cipc__http_parse_request_more(c, len, &lim, &req, &status), ==, rc);
    CHECK(!req._resumed);
    /* Resumed to the end in the same buffer, with the array swapped and wiped between calls:
     * the headers are refilled from the buffer. */
    cipc__http_request_init(&req, h1);
    CHECK_INT(cipc__http_parse_request_more(c, 45, &lim, &req, &status), ==, CIPC_EAGAIN);
    req.headers = h2;
    memset(h2, 0, sizeof h2);
    memset(h1, 0, sizeof h1);
    CHECK_INT(cipc__http_parse_request_more(c, len, &lim, &req, &status), ==, rc);
    CHECK(req._resumed);
    CHECK_INT(req.n_headers, ==, 3);
    CHECK_MEM(h2[0].name.p, h2[0].name.n, "Host");
    CHECK_MEM(h2[0].value.p, h2[0].value.n, "h");
    CHECK_MEM(h2[1].name.p, h2[1].name.n, "Content-Length");
    CHECK_MEM(h2[1].value.p, h2[1].value.n, "2");
    CHECK_MEM(h2[2].value.p, h2[2].value.n, "b");
    CHECK_MEM(req.host.p, req.host.n, "h");
    free(a);
    free(c);

    /* limits == NULL means the defaults; a zero field means its default. */
    struct cipc__http_header hd[CIPC__HTTP_DEFAULT_MAX_HEADERS];
    struct cipc__http_limits zero = {0};
    init_req(&req, hd);
    CHECK_INT(cipc__http_parse_request(in, len, 0, NULL, &req, &status), ==, (int)len - 2);
    CHECK_INT(cipc__http_parse_request(in, len, 0, &zero, &req, &status), ==, (int)len - 2);

    /* cipc__slice_ieq. */
    struct cipc__slice s = {"Keep-ALIVE", 10};
    CHECK(cipc__slice_ieq(s, "keep-alive"));
    CHECK(!cipc__slice_ieq(s, "keep-aliv"));
    CHECK(!cipc__slice_ieq(s, "keep-alivee"));
    s.n = 4;
    CHECK(cipc__slice_ieq(s, "keep"));
    s.n = 0;
    CHECK(cipc__slice_ieq(s, ""));
    CHECK(!cipc__slice_ieq(s, "k"));
    struct cipc__slice z = {"\xc0", 1}; /* no folding beyond ASCII */
    CHECK(!cipc__slice_ieq(z, "\xe0"));
}

/* ---- Chunked decoder ---- */

struct chunk_case {
    const char *in;
    size_t len;
    int rc;            /* CIPC_EAGAIN, CIPC_EPROTO, or >= 0 (then the pipelined bytes) */
    const char *out;   /* decoded body (before the error for CIPC_EPROTO) */
    const char *after; /* the pipelined bytes when rc >= 0 */
    size_t out_len;    /* 0 for strlen(out) */
};

/* clang-format off */
static const struct chunk_case chunk_cases[] = {
    /* Valid. */
    {"5\r\nhello\r\n0\r\n\r\n", 0, 0, "hello", "", 0},
    {"0\r\n\r\n", 0, 0, "", "", 0},
    {"000\r\n\r\n", 0, 0, "", "", 0},
    {"1\r\na\r\n2\r\nbc\r\n3\r\ndef\r\n4\r\nghij\r\n0\r\n\r\n", 0, 0, "abcdefghij", "", 0},
    {"A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", 0, 0, "0123456789abcdefghij", "", 0},
    {"0005\r\nhello\r\n0000\r\n\r\n", 0, 0, "hello", "", 0},
    {"5;name=value\r\nhello\r\n0;x\r\n\r\n", 0, 0, "hello", "", 0},
    {"5 ;a=b ; c=\"q;x\\\" y\"\t;d\r\nhello\r\n0\r\n\r\n", 0, 0, "hello", "", 0},
    {"5;\x80\xff\r\nhello\r\n0\r\n\r\n", 0, 0, "hello", "", 0},
    {"5\r\nhello\r\n0\r\nX-Trailer: v\r\nY:\r\nZ: a\tb \r\n\r\n", 0, 0, "hello", "", 0},
    {"5\r\nhe\r\nl\r\n0\r\n\r\n", 0, 0, "he\r\nl", "", 0},
    {"3\r\n\0\1\2\r\n0\r\n\r\n", 13, 0, "\0\1\2", "", 3},
    {"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 0, 27, "hello",
     "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 0},
    {"0\r\nT: 1\r\n\r\nX", 0, 1, "", "X", 0},
    {"7fffffffffffffff\r\nabc", 0, CIPC_EAGAIN, "abc", NULL, 0},
    {"0000000000000005\r\nhello\r\n0\r\n\r\n", 0, 0, "hello", "", 0},
    /* Incomplete. */
    {"", 0, CIPC_EAGAIN, "", NULL, 0},
    {"5\r\nhel", 0, CIPC_EAGAIN, "hel", NULL, 0},
    {"5\r\nhello\r\n0\r\n\r", 0, CIPC_EAGAIN, "hello", NULL, 0},
    {"5\r\nhello\r\n0\r\nX: y\r\n", 0, CIPC_EAGAIN, "hello", NULL, 0},
    /* Invalid: framing. */
    {"5\r\nhelloX\r\n0\r\n\r\n", 0, CIPC_EPROTO, "hello", NULL, 0},
    {"5\r\nhello\rX0\r\n\r\n", 0, CIPC_EPROTO, "hello", NULL, 0},
    {"5\r\nhello\n0\r\n\r\n", 0, CIPC_EPROTO, "hello", NULL, 0},
    {"5\nhello\r\n0\r\n\r\n", 0, CIPC_EPROTO, "", NULL, 0},
    {"0\n\r\n", 0, CIPC_EPROTO, "", NULL, 0},
    /* Invalid: sizes. */
    {"g\r\n", 0, CIPC_EPROTO, "", NULL, 0},
    {"5g\r\nhello\r\n", 0, CIPC_EPROTO, "", NULL, 0},
    {"\r\nhello\r\n", 0, CIPC_EPROTO, "", NULL, 0},
    {";x\r\nhello\r\n", 0, CIPC_EPROTO, "", NULL, 0},
    {" 5\r\nhello\r\n", 0, CIPC_EPROTO, "", NULL, 0},
    {"5 \r\nhello\r\n", 0, CIPC_EPROTO, "", NULL, 0},
    {"5 5\r\nhello\r\n", 0, CIPC_EPROTO, "", NULL, 0},
    {"-5\r\nhello\r\n", 0, CIPC_EPROTO, "", NULL, 0},
    {"0x5\r\nhello\r\n", 0, CIPC_EPROTO, "", NULL, 0},
    {"8000000000000000\r\n", 0, CIPC_EPROTO, "", NULL, 0},
    {"ffffffffffffffff\r\n", 0, CIPC_EPROTO, "", NULL, 0},
    {"00000000000000005\r\nhello\r\n0\r\n\r\n", 0, CIPC_EPROTO, "", NULL, 0},
    {"10000000000000000\r\n", 0, CIPC_EPROTO, "", NULL, 0},
    /* Invalid: extensions. */
    {"5;a\x01\r\nhello\r\n", 0, CIPC_EPROTO, "", NULL, 0},
    {"5;a\x7f\r\nhello\r\n", 0, CIPC_EPROTO, "", NULL, 0},
    {"5;a\rb\r\nhello\r\n", 0, CIPC_EPROTO, "", NULL, 0},
    {"5;a\nhello\r\n", 0, CIPC_EPROTO, "", NULL, 0},
    {"2\r\nab\r\n5;a\0\r\nhello\r\n", 20, CIPC_EPROTO, "ab", NULL, 0},
    /* Invalid: trailers. */
    {"5\r\nhello\r\n0\r\nX: a\r\n b\r\n\r\n", 0, CIPC_EPROTO, "hello", NULL, 0},
    {"5\r\nhello\r\n0\r\n\tX: a\r\n\r\n", 0, CIPC_EPROTO, "hello", NULL, 0},
    {"5\r\nhello\r\n0\r\nX : a\r\n\r\n", 0, CIPC_EPROTO, "hello", NULL, 0},
    {"5\r\nhello\r\n0\r\n: a\r\n\r\n", 0, CIPC_EPROTO, "hello", NULL, 0},
    {"5\r\nhello\r\n0\r\nX: a\x01\r\n\r\n", 0, CIPC_EPROTO, "hello", NULL, 0},
    {"5\r\nhello\r\n0\r\nX: a\rb\r\n\r\n", 0, CIPC_EPROTO, "hello", NULL, 0},
    {"5\r\nhello\r\n0\r\nX\r\n\r\n", 0, CIPC_EPROTO, "hello", NULL, 0},
    {"5\r\nhello\r\n0\r\n\n", 0, CIPC_EPROTO, "hello", NULL, 0},
    {"5\r\nhello\r\n0\r\n\rX", 0, CIPC_EPROTO, "hello", NULL, 0},
};
/* clang-format on */

/* Feed in[0..len) to a decoder in pieces cut at cuts[0..ncuts), each piece in its own
 * exact-size buffer; collect the decoded bytes in *out and the pipelined bytes in *after.
 * Returns the final result: CIPC_EPROTO if any call failed (later calls must fail too),
 * the total pipelined byte count if the body ended, else CIPC_EAGAIN. */
static int decode_pieces(const char *in, size_t len, const size_t *cuts, size_t ncuts,
                         struct text *out, struct text *after)
{
    struct cipc__http_chunked d;
    cipc__http_chunked_init(&d);
    int result = CIPC_EAGAIN;
    size_t from = 0;
    out->n = after->n = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        size_t n = to - from;
        char *p = dup_exact(in + from, n);
        int rc = cipc__http_chunked_decode(&d, p, &n);
        CHECK(n <= to - from);
        if (result == CIPC_EPROTO) {
            CHECK_INT(rc, ==, CIPC_EPROTO);
        } else if (result >= 0) {
            /* After the end, everything is pipelined data. */
            CHECK_INT(rc, ==, (int)(to - from));
            CHECK_INT(n, ==, 0);
        }
        put(out, p, n);
        if (rc >= 0) {
            CHECK(n + (size_t)rc <= to - from);
            put(after, p + n, (size_t)rc);
            result = result >= 0 ? result + rc : rc;
        } else if (rc == CIPC_EPROTO) {
            result = CIPC_EPROTO;
        } else {
            CHECK_INT(rc, ==, CIPC_EAGAIN);
        }
        free(p);
        from = to;
    }
    return result;
}

static void check_chunked(const char *in, size_t len, int want_rc, const char *want_out,
                          size_t want_out_len, const char *want_after)
{
    struct text out = {0}, after = {0};
    set_current("chunked body", in, len);
    int rc = decode_pieces(in, len, NULL, 0, &out, &after);
    CHECK_INT(rc, ==, want_rc);
    if (want_out) {
        CHECK_INT(out.n, ==, want_out_len);
        CHECK(out.n == 0 || memcmp(out.p, want_out, out.n) == 0);
    }
    if (rc >= 0 && want_after)
        CHECK_MEM(after.p ? after.p : "", after.n, want_after);
    struct text one_out = out, one_after = after;
    struct text o2 = {0}, a2 = {0};

    /* Every split in two, and in three for short inputs. */
    for (size_t i = 0; i <= len; i++) {
        size_t cut[1] = {i};
        CHECK_INT(decode_pieces(in, len, cut, 1, &o2, &a2), ==, rc);
        CHECK_INT(o2.n, ==, one_out.n);
        CHECK(o2.n == 0 || memcmp(o2.p, one_out.p, o2.n) == 0);
        CHECK_INT(a2.n, ==, one_after.n);
        CHECK(a2.n == 0 || memcmp(a2.p, one_after.p, a2.n) == 0);
        for (size_t j = i; len <= 64 && j <= len; j++) {
            size_t cut2[2] = {i, j};
            CHECK_INT(decode_pieces(in, len, cut2, 2, &o2, &a2), ==, rc);
            CHECK_INT(o2.n, ==, one_out.n);
            CHECK(o2.n == 0 || memcmp(o2.p, one_out.p, o2.n) == 0);
            CHECK_INT(a2.n, ==, one_after.n);
        }
    }
    /* Byte by byte. */
    size_t *cuts = malloc((len + 1) * sizeof *cuts);
    CHECK(cuts != NULL);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i;
    CHECK_INT(decode_pieces(in, len, cuts, len, &o2, &a2), ==, rc);
    CHECK_INT(o2.n, ==, one_out.n);
    CHECK(o2.n == 0 || memcmp(o2.p, one_out.p, o2.n) == 0);
    CHECK_INT(a2.n, ==, one_after.n);
    CHECK(a2.n == 0 || memcmp(a2.p, one_after.p, a2.n) == 0);
    free(cuts);
    free(out.p);
    free(after.p);
    free(o2.p);
    free(a2.p);
}

static void test_chunked_table(void)
{
    for (size_t i = 0; i < sizeof chunk_cases / sizeof chunk_cases[0]; i++) {
        const struct chunk_case *t = &chunk_cases[i];
        size_t len = t->len ? t->len : strlen(t->in);
        size_t out_len = t->out_len ? t->out_len : strlen(t->out);
        check_chunked(t->in, len, t->rc, t->out, out_len, t->after);
    }
}

/* Generated bodies: big chunks, the size-line and trailer limits, and errors after data. */
static void test_chunked_generated(void)
{
    struct text t = {0}, want = {0};

    /* Size line of exactly CIPC__HTTP_CHUNKED_MAX_LINE bytes, and one more. */
    for (int extra = 0; extra <= 1; extra++) {
        puts_(&t, "3;");
        put_fill(&t, 'e', CIPC__HTTP_CHUNKED_MAX_LINE - 2 + (size_t)extra);
        puts_(&t, "\r\nabc\r\n0\r\n\r\n");
        check_chunked(t.p, t.n, extra ? CIPC_EPROTO : 0, extra ? "" : "abc", extra ? 0 : 3, "");
        t.n = 0;
    }
    /* Trailer section of exactly CIPC__HTTP_CHUNKED_MAX_TRAILERS bytes, and one more. */
    for (int extra = 0; extra <= 1; extra++) {
        puts_(&t, "1\r\nz\r\n0\r\n");
        size_t start = t.n;
        while (t.n - start < CIPC__HTTP_CHUNKED_MAX_TRAILERS - 1000)
            puts_(&t, "Trailer-Field: 0123456789012345678901234567890123456789\r\n");
        puts_(&t, "Last: ");
        put_fill(&t, 'x', CIPC__HTTP_CHUNKED_MAX_TRAILERS - (t.n - start) - 4 + (size_t)extra);
        puts_(&t, "\r\n\r\n");
        CHECK_INT(t.n - start, ==, CIPC__HTTP_CHUNKED_MAX_TRAILERS + (size_t)extra);
        struct cipc__http_chunked d;
        cipc__http_chunked_init(&d);
        char *p = dup_exact(t.p, t.n);
        size_t n = t.n;
        CHECK_INT(cipc__http_chunked_decode(&d, p, &n), ==, extra ? CIPC_EPROTO : 0);
        CHECK_INT(n, ==, 1);
        free(p);
        t.n = 0;
    }
    /* Many chunks of many sizes, with the body rebuilt independently. */
    for (size_t size = 1; size < 3000; size = size * 3 + 1) {
        char line[64];
        int n = snprintf(line, sizeof line, "%zx;ext=%zu\r\n", size, size);
        put(&t, line, (size_t)n);
        for (size_t i = 0; i < size; i++) {
            char c = (char)('a' + (i + size) % 26);
            put(&t, &c, 1);
            put(&want, &c, 1);
        }
        puts_(&t, "\r\n");
    }
    puts_(&t, "0\r\n\r\nNEXT");
    check_chunked(t.p, t.n, 4, want.p, want.n, "NEXT");
    /* The same with a bad terminator after the last data. */
    t.n -= strlen("0\r\n\r\nNEXT") + 2;
    puts_(&t, "\n\n0\r\n\r\n");
    check_chunked(t.p, t.n, CIPC_EPROTO, want.p, want.n, NULL);
    free(t.p);
    free(want.p);

    /* An error sticks; after the end everything is pipelined data. */
    struct cipc__http_chunked d;
    cipc__http_chunked_init(&d);
    char bad[] = "x\r\n5\r\nhello\r\n";
    size_t n = sizeof bad - 1;
    CHECK_INT(cipc__http_chunked_decode(&d, bad, &n), ==, CIPC_EPROTO);
    char more[] = "0\r\n\r\n";
    n = sizeof more - 1;
    CHECK_INT(cipc__http_chunked_decode(&d, more, &n), ==, CIPC_EPROTO);
    cipc__http_chunked_init(&d);
    char done[] = "0\r\n\r\n";
    n = sizeof done - 1;
    CHECK_INT(cipc__http_chunked_decode(&d, done, &n), ==, 0);
    CHECK_INT(n, ==, 0);
    char next[] = "GET";
    n = 3;
    CHECK_INT(cipc__http_chunked_decode(&d, next, &n), ==, 3);
    CHECK_INT(n, ==, 0);
    CHECK_MEM(next, 3, "GET");
}

int main(void)
{
    signal(SIGABRT, on_abort);
    test_table();
    test_limits();
    test_every_byte();
    test_resume_rules();
    test_chunked_table();
    test_chunked_generated();
    return 0;
}
