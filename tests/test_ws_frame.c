/* Proves that the WebSocket frame codec encodes headers in the shortest form and decodes
 * them back (rejecting non-minimal lengths and the 64-bit top bit), that masking matches
 * a byte-wise reference for every length, offset and alignment, that the UTF-8 validator
 * agrees with an independent reference on which streams are valid and at which byte an
 * invalid one fails (however the stream is split), and that close payloads and codes are
 * judged per RFC 6455 7.4. */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ws/frame.h"

static char current[512];
static size_t current_len;

static void on_abort(int sig)
{
    (void)sig;
    ssize_t w = write(STDERR_FILENO, current, current_len);
    (void)w;
}

static void set_current(const char *what, const void *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *b = s;
    size_t n = (size_t)snprintf(current, sizeof current, "while testing %s: ", what);
    for (size_t i = 0; i < len && n < sizeof current - 8; i++) {
        current[n++] = hex[b[i] >> 4];
        current[n++] = hex[b[i] & 15];
        current[n++] = ' ';
    }
    current[n++] = '\n';
    current_len = n;
}

/* ---- Headers ---------------------------------------------------------------------- */

struct hdr_case {
    unsigned opcode;
    int fin, rsv1;
    uint64_t len;
    int masked;
    const char *bytes; /* the expected header */
    size_t n;
};

/* clang-format off */
#define HC(op, fin, rsv1, len, masked, s) {op, fin, rsv1, len, masked, s, sizeof(s) - 1}
/* clang-format on */

/* clang-format off */
static const struct hdr_case hdr_cases[] = {
    HC(1, 1, 0, 0, 0, "\x81\x00"),
    HC(1, 1, 0, 5, 0, "\x81\x05"),
    HC(2, 0, 0, 125, 0, "\x02\x7d"),
    HC(0, 1, 0, 126, 0, "\x80\x7e\x00\x7e"),
    HC(0, 0, 0, 65535, 0, "\x00\x7e\xff\xff"),
    HC(2, 1, 0, 65536, 0, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    HC(2, 1, 1, UINT64_C(0x7fffffffffffffff), 0, "\xc2\x7f\x7f\xff\xff\xff\xff\xff\xff\xff"),
    HC(8, 1, 0, 2, 1, "\x88\x82\x01\x02\x03\x04"),
    HC(9, 1, 0, 125, 1, "\x89\xfd\x01\x02\x03\x04"),
    HC(1, 1, 1, 300, 1, "\xc1\xfe\x01\x2c\x01\x02\x03\x04"),
    HC(2, 1, 0, UINT64_C(0x0102030405), 1, "\x82\xff\x00\x00\x00\x01\x02\x03\x04\x05\x01\x02\x03\x04"),
    HC(0xa, 1, 0, 0, 1, "\x8a\x80\x01\x02\x03\x04"),
};
/* clang-format on */

static void test_header_encode_decode(void)
{
    static const uint8_t key[4] = {1, 2, 3, 4};
    for (size_t i = 0; i < sizeof hdr_cases / sizeof hdr_cases[0]; i++) {
        const struct hdr_case *t = &hdr_cases[i];
        set_current("header", t->bytes, t->n);
        uint8_t out[CIPC__WS_MAX_HEADER];
        size_t n =
            cipc__ws_header_encode(out, t->opcode, t->fin, t->rsv1, t->len, t->masked ? key : NULL);
        CHECK_INT(n, ==, t->n);
        CHECK(memcmp(out, t->bytes, n) == 0);
        CHECK_INT(cipc__ws_header_size(out[0], out[1]), ==, n);
        /* Every prefix is incomplete; the whole decodes back. */
        struct cipc__ws_header h;
        for (size_t k = 0; k < n; k++)
            CHECK_INT(cipc__ws_header_decode(out, k, &h), ==, CIPC_EAGAIN);
        CHECK_INT(cipc__ws_header_decode(out, n, &h), ==, (int)n);
        CHECK_INT(h.opcode, ==, t->opcode);
        CHECK_INT(h.fin, ==, t->fin);
        CHECK_INT(h.rsv1, ==, t->rsv1);
        CHECK(!h.rsv2 && !h.rsv3);
        CHECK_INT(h.masked, ==, t->masked);
        CHECK(h.len == t->len);
        if (t->masked)
            CHECK(memcmp(h.key, key, 4) == 0);
    }
    /* RSV2/RSV3 are decoded (the engine rejects them). */
    static const uint8_t r23[] = {0xb1, 0x00};
    struct cipc__ws_header h;
    CHECK_INT(cipc__ws_header_decode(r23, 2, &h), ==, 2);
    CHECK(h.rsv2 && h.rsv3 && !h.rsv1 && h.fin && h.opcode == 1);
}

/* Non-minimal length forms and the 64-bit top bit. */
static void test_header_lengths(void)
{
    struct cipc__ws_header h;
    uint8_t b[10] = {0x82, 126};
    for (unsigned v = 0; v < 70000; v += (v < 300 ? 1 : 97)) {
        if (v > 0xffff)
            break;
        b[2] = (uint8_t)(v >> 8);
        b[3] = (uint8_t)v;
        CHECK_INT(cipc__ws_header_decode(b, 4, &h), ==, v < 126 ? CIPC_EPROTO : 4);
    }
    b[1] = 127;
    static const uint64_t vals[] = {0,
                                    125,
                                    126,
                                    65535,
                                    65536,
                                    UINT64_C(0x7fffffffffffffff),
                                    UINT64_C(0x8000000000000000),
                                    UINT64_C(0x8000000000010000),
                                    UINT64_MAX};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        for (int k = 0; k < 8; k++)
            b[2 + k] = (uint8_t)(vals[i] >> (56 - 8 * k));
        int want = vals[i] < 65536 || vals[i] >> 63 ? CIPC_EPROTO : 10;
        CHECK_INT(cipc__ws_header_decode(b, 10, &h), ==, want);
        if (want > 0)
            CHECK(h.len == vals[i]);
    }
    /* The encoder picks the form at the boundaries. */
    uint8_t out[CIPC__WS_MAX_HEADER];
    CHECK_INT(cipc__ws_header_encode(out, 2, 1, 0, 125, NULL), ==, 2);
    CHECK_INT(cipc__ws_header_encode(out, 2, 1, 0, 126, NULL), ==, 4);
    CHECK_INT(cipc__ws_header_encode(out, 2, 1, 0, 65535, NULL), ==, 4);
    CHECK_INT(cipc__ws_header_encode(out, 2, 1, 0, 65536, NULL), ==, 10);
}

/* ---- Masking ---------------------------------------------------------------------- */

static void test_mask(void)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t src[128 + 16], buf[128 + 16], ref[128 + 16];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)(i * 7 + 3);
    for (size_t align = 0; align < 8; align++) {
        for (size_t off = 0; off < 8; off++) {
            for (size_t n = 0; n <= 100; n++) {
                memcpy(buf, src, sizeof buf);
                memcpy(ref, src, sizeof ref);
                for (size_t i = 0; i < n; i++)
                    ref[align + i] ^= key[(off + i) % 4];
                cipc__ws_mask(buf + align, n, key, off);
                CHECK(memcmp(buf, ref, sizeof buf) == 0); /* no byte outside touched */
                cipc__ws_mask(buf + align, n, key, off);
                CHECK(memcmp(buf, src, sizeof buf) == 0);
            }
        }
    }
    /* Unmasking piece by piece at any cut equals unmasking at once. */
    uint8_t whole[100], parts[100];
    for (size_t i = 0; i < sizeof whole; i++)
        whole[i] = parts[i] = (uint8_t)(i ^ 0x5a);
    cipc__ws_mask(whole, sizeof whole, key, 0);
    for (size_t c1 = 0; c1 <= 100; c1 += 3) {
        for (size_t c2 = c1; c2 <= 100; c2 += 7) {
            uint8_t t[100];
            memcpy(t, parts, sizeof t);
            cipc__ws_mask(t, c1, key, 0);
            cipc__ws_mask(t + c1, c2 - c1, key, c1);
            cipc__ws_mask(t + c2, 100 - c2, key, c2);
            CHECK(memcmp(t, whole, sizeof t) == 0);
        }
    }
}

static void test_frame_append(void)
{
    static const uint8_t key[4] = {9, 8, 7, 6};
    cipc_buf b = CIPC_BUF_INIT;
    size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 70000};
    uint8_t *payload = malloc(70000);
    CHECK(payload != NULL);
    for (size_t i = 0; i < 70000; i++)
        payload[i] = (uint8_t)(i * 31);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (int masked = 0; masked < 2; masked++) {
            cipc_buf_reset(&b);
            CHECK_INT(
                cipc__ws_frame_append(&b, 2, s & 1, masked, payload, sizes[s], masked ? key : NULL),
                ==, 0);
            struct cipc__ws_header h;
            int hl = cipc__ws_header_decode((const uint8_t *)b.data, b.len, &h);
            CHECK_INT(hl, >, 0);
            CHECK_INT(b.len, ==, (size_t)hl + sizes[s]);
            CHECK(h.len == sizes[s] && h.opcode == 2 && h.fin == (bool)(s & 1));
            CHECK(h.masked == (bool)masked && h.rsv1 == (bool)masked);
            if (masked)
                cipc__ws_mask((uint8_t *)b.data + hl, sizes[s], h.key, 0);
            CHECK(sizes[s] == 0 || memcmp(b.data + hl, payload, sizes[s]) == 0);
        }
    }
    free(payload);
    cipc_buf_free(&b);
}

/* ---- UTF-8 ------------------------------------------------------------------------ */

/* The reference: the number of leading bytes of p[0..n) that are a prefix of some valid
 * UTF-8 string (n if all are), computed from code point ranges rather than byte ranges,
 * and whether the whole is complete. */
static size_t ref_utf8(const uint8_t *p, size_t n, bool *complete)
{
    size_t i = 0;
    *complete = true;
    while (i < n) {
        uint8_t b = p[i];
        size_t need;
        uint32_t cp, min;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xe0) == 0xc0) {
            need = 1, cp = b & 0x1f, min = 0x80;
        } else if ((b & 0xf0) == 0xe0) {
            need = 2, cp = b & 0x0f, min = 0x800;
        } else if ((b & 0xf8) == 0xf0) {
            need = 3, cp = b & 0x07, min = 0x10000;
        } else {
            return i;
        }
        size_t j = 1;
        for (; j <= need; j++) {
            /* Which code points can the bytes so far still become? */
            size_t rest = need - (j - 1);
            uint32_t lo = cp << (6 * rest), hi = lo | ((1u << (6 * rest)) - 1);
            bool ok = hi >= min && lo <= 0x10ffff && !(lo >= 0xd800 && hi <= 0xdfff);
            if (!ok)
                return j == 1 ? i : i + j - 1;
            if (i + j >= n) {
                *complete = false;
                return n;
            }
            uint8_t c = p[i + j];
            if ((c & 0xc0) != 0x80) {
                return i + j;
            }
            cp = cp << 6 | (c & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return i + need; /* the last byte made it invalid */
        i += need + 1;
    }
    return n;
}

/* Feed p in pieces cut at `cut` and check the result; then byte by byte, checking the
 * failure comes exactly at byte `fail_at` (n if valid). */
static void check_utf8(const uint8_t *p, size_t n, size_t fail_at, bool complete)
{
    struct cipc__utf8 u;
    for (size_t cut = 0; cut <= n; cut++) {
        cipc__utf8_init(&u);
        int a = cipc__utf8_feed(&u, p, cut);
        int b = cipc__utf8_feed(&u, p + cut, n - cut);
        CHECK_INT(a, ==, cut > fail_at ? -1 : 0);
        CHECK_INT(b, ==, fail_at < n ? -1 : 0);
        if (fail_at == n)
            CHECK_INT(cipc__utf8_complete(&u), ==, complete);
        else
            CHECK(!cipc__utf8_complete(&u));
    }
    cipc__utf8_init(&u);
    for (size_t i = 0; i < n; i++) {
        int rc = cipc__utf8_feed(&u, p + i, 1);
        CHECK_INT(rc, ==, i >= fail_at ? -1 : 0);
    }
    CHECK_INT(cipc__utf8_valid(p, n), ==, fail_at == n && complete);
}

struct utf8_case {
    const char *s;
    size_t n;
    long fail_at; /* -1: valid (complete or not) */
    int incomplete;
};

/* clang-format off */
#define U8(s, at)  {s, sizeof(s) - 1, at, 0}
#define U8I(s)     {s, sizeof(s) - 1, -1, 1}
/* clang-format on */

/* clang-format off */
static const struct utf8_case utf8_cases[] = {
    U8("", -1),
    U8("Hello-\x7f", -1),
    U8("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", -1),           /* kosme */
    U8("\xc2\x80", -1), U8("\xdf\xbf", -1),                            /* U+0080, U+07FF */
    U8("\xe0\xa0\x80", -1), U8("\xef\xbf\xbf", -1),                    /* U+0800, U+FFFF */
    U8("\xf0\x90\x80\x80", -1), U8("\xf4\x8f\xbf\xbf", -1),            /* U+10000, U+10FFFF */
    U8("\xed\x9f\xbf", -1), U8("\xee\x80\x80", -1),                    /* U+D7FF, U+E000 */
    U8("\xef\xbf\xbe", -1),                                            /* U+FFFE: allowed */
    U8("\x80", 0), U8("\xbf", 0), U8("a\x80", 1),                     /* lone continuation */
    U8("\xc0\x80", 0), U8("\xc1\xbf", 0),                             /* overlong 2-byte */
    U8("\xe0\x80\x80", 1), U8("\xe0\x9f\xbf", 1),                     /* overlong 3-byte */
    U8("\xf0\x80\x80\x80", 1), U8("\xf0\x8f\xbf\xbf", 1),             /* overlong 4-byte */
    U8("\xed\xa0\x80", 1), U8("\xed\xbf\xbf", 1),                     /* surrogates */
    U8("\xed\xa0\x80\xed\xb0\x80", 1),                                 /* surrogate pair */
    U8("\xf4\x90\x80\x80", 1), U8("\xf5\x80\x80\x80", 0),             /* > U+10FFFF */
    U8("\xf7\xbf\xbf\xbf", 0), U8("\xf8\x88\x80\x80\x80", 0),
    U8("\xfc\x84\x80\x80\x80\x80", 0), U8("\xfe", 0), U8("\xff", 0),
    U8("\xc2\x41", 1), U8("\xe1\x80\x41", 2), U8("\xf1\x80\x80\x41", 3), /* cut short */
    U8("\xc2\xc2\x80", 1),
    U8I("\xc2"), U8I("\xe1\x80"), U8I("\xf0\x90\x80"), U8I("abc\xf4"),
    /* Autobahn 6.4.x style: valid text, then a bad sequence mid-stream. */
    U8("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64", 12),
    U8("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74", 12),
    /* After long ASCII runs (the 8-byte fast path), at every position modulo 8. */
    U8("0123456789abcdefghij\x80", 20),
    U8("0123456789abcdefghi\xc3\xa9jklmnopqrstuv\xc3(", 35),
    U8("01234567\xe2\x82\xac" "89abcdef\xf0\x9f\x98\x80" "0123456789abcdefg", -1),
};
/* clang-format on */

static void test_utf8_table(void)
{
    for (size_t i = 0; i < sizeof utf8_cases / sizeof utf8_cases[0]; i++) {
        const struct utf8_case *t = &utf8_cases[i];
        set_current("utf8", t->s, t->n);
        bool complete;
        size_t ref = ref_utf8((const uint8_t *)t->s, t->n, &complete);
        size_t at = t->fail_at < 0 ? t->n : (size_t)t->fail_at;
        CHECK_INT(ref, ==, at); /* the reference agrees with the table */
        CHECK_INT(!complete, ==, t->incomplete);
        check_utf8((const uint8_t *)t->s, t->n, at, !t->incomplete);
    }
}

/* Every 1-, 2- and 3-byte sequence, and 4-byte ones with each first continuation byte,
 * compared with the reference; each also after 13 ASCII bytes (to go through the
 * 8-byte path) and followed by ASCII. */
static void test_utf8_exhaustive(void)
{
    uint8_t buf[32];
    memset(buf, 'a', sizeof buf);
    for (uint32_t v = 0; v < (1u << 24); v++) {
        size_t len = v < 256 ? 1 : v < 65536 ? 2 : 3;
        uint8_t s[4] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
        const uint8_t *seq = s + 3 - len;
        if (len == 2 && seq[0] < 0x80)
            continue; /* covered by 1-byte sequences */
        if (len == 3 && (seq[0] < 0xe0 || seq[0] >= 0xf8))
            continue; /* only 3-byte-lead triples are new beyond pairs */
        bool complete;
        size_t ref = ref_utf8(seq, len, &complete);
        struct cipc__utf8 u;
        cipc__utf8_init(&u);
        size_t got = len;
        for (size_t i = 0; i < len; i++)
            if (cipc__utf8_feed(&u, seq + i, 1) < 0) {
                got = i;
                break;
            }
        if (got != ref || (got == len && cipc__utf8_complete(&u) != complete)) {
            set_current("utf8 exhaustive", seq, len);
            CHECK_INT(got, ==, ref);
            CHECK_INT(cipc__utf8_complete(&u), ==, complete);
        }
        if ((v & 0xff) == 0x41 || len < 3) {
            memcpy(buf + 13, seq, len);
            size_t total = 13 + len + 10;
            bool c2;
            size_t r2 = ref_utf8(buf, total, &c2);
            CHECK_INT(cipc__utf8_valid(buf, total), ==, r2 == total && c2);
            memset(buf + 13, 'a', len);
        }
    }
    for (unsigned b0 = 0xf0; b0 <= 0xff; b0++)
        for (unsigned b1 = 0; b1 < 256; b1++)
            for (unsigned b2 = 0x70; b2 < 0xd0; b2 += 0x0f)
                for (unsigned b3 = 0x70; b3 < 0xd0; b3 += 0x0f) {
                    uint8_t s[4] = {(uint8_t)b0, (uint8_t)b1, (uint8_t)b2, (uint8_t)b3};
                    bool complete;
                    size_t ref = ref_utf8(s, 4, &complete);
                    struct cipc__utf8 u;
                    cipc__utf8_init(&u);
                    size_t got = 4;
                    for (size_t i = 0; i < 4; i++)
                        if (cipc__utf8_feed(&u, s + i, 1) < 0) {
                            got = i;
                            break;
                        }
                    if (got != ref) {
                        set_current("utf8 4-byte", s, 4);
                        CHECK_INT(got, ==, ref);
                    }
                }
}

/* ---- Close payloads --------------------------------------------------------------- */

static void test_close_codes(void)
{
    static const struct {
        unsigned code;
        int ok;
    } codes[] = {{0, 0},    {999, 0},  {1000, 1}, {1001, 1}, {1002, 1}, {1003, 1}, {1004, 0},
                 {1005, 0}, {1006, 0}, {1007, 1}, {1008, 1}, {1009, 1}, {1010, 1}, {1011, 1},
                 {1012, 1}, {1013, 1}, {1014, 1}, {1015, 0}, {1016, 0}, {1100, 0}, {2000, 0},
                 {2999, 0}, {3000, 1}, {3999, 1}, {4000, 1}, {4999, 1}, {5000, 0}, {65535, 0}};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        set_current("close code", &codes[i].code, sizeof codes[i].code);
        CHECK_INT(cipc__ws_close_code_sendable(codes[i].code), ==, codes[i].ok);
        uint8_t p[8] = {(uint8_t)(codes[i].code >> 8), (uint8_t)codes[i].code, 'b', 'y', 'e'};
        for (size_t n = 2; n <= 5; n += 3) {
            uint16_t code = 0;
            const char *reason = NULL;
            size_t rlen = 99;
            int rc = cipc__ws_close_parse(p, n, &code, &reason, &rlen);
            if (codes[i].ok) {
                CHECK_INT(rc, ==, 0);
                CHECK_INT(code, ==, codes[i].code);
                CHECK_MEM(reason, rlen, n == 5 ? "bye" : "");
            } else {
                CHECK_INT(rc, ==, CIPC_EPROTO);
                CHECK_INT(code, ==, 1002);
            }
        }
    }
    CHECK(!cipc__ws_close_code_sendable(70000));
}

static void test_close_parse(void)
{
    uint16_t code = 0;
    const char *reason = NULL;
    size_t rlen = 99;
    CHECK_INT(cipc__ws_close_parse((const uint8_t *)"", 0, &code, &reason, &rlen), ==, 0);
    CHECK_INT(code, ==, 1005);
    CHECK_INT(rlen, ==, 0);
    CHECK(reason != NULL);
    CHECK_INT(cipc__ws_close_parse((const uint8_t *)"\x03", 1, &code, &reason, &rlen), ==,
              CIPC_EPROTO);
    CHECK_INT(code, ==, 1002);
    /* A bad UTF-8 reason: 1007; a bad code wins over a bad reason. */
    CHECK_INT(cipc__ws_close_parse((const uint8_t *)"\x03\xe8\xce\xba\xed\xa0\x80", 7, &code,
                                   &reason, &rlen),
              ==, CIPC_EPROTO);
    CHECK_INT(code, ==, 1007);
    CHECK_INT(cipc__ws_close_parse((const uint8_t *)"\x03\xe8\xc2", 3, &code, &reason, &rlen), ==,
              CIPC_EPROTO);
    CHECK_INT(code, ==, 1007);
    CHECK_INT(cipc__ws_close_parse((const uint8_t *)"\x03\xed\xff", 3, &code, &reason, &rlen), ==,
              CIPC_EPROTO);
    CHECK_INT(code, ==, 1002);
    /* A valid multi-byte reason is a view into the payload. */
    static const uint8_t ok[] = "\x0f\xa0\xce\xba\xe1\xbd\xb9";
    CHECK_INT(cipc__ws_close_parse(ok, 7, &code, &reason, &rlen), ==, 0);
    CHECK_INT(code, ==, 4000);
    CHECK(reason == (const char *)ok + 2 && rlen == 5);
}

int main(void)
{
    signal(SIGABRT, on_abort);
    test_header_encode_decode();
    test_header_lengths();
    test_mask();
    test_frame_append();
    test_utf8_table();
    test_utf8_exhaustive();
    test_close_codes();
    test_close_parse();
    return 0;
}
