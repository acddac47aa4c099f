/* Proves permessage-deflate compression (RFC 7692 7.2): round trips of 0 bytes to 1 MiB in
 * both roles with and without context takeover, every window size 8..15 (checked against
 * zlib's own raw inflate at exactly that window), the RFC's sample byte strings, inflation
 * fed in pieces cut at every offset, a 100 MiB compression bomb stopped at max_total without
 * the memory to hold it, and corrupt data rejected. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <zlib.h>

#include "check.h"
#include "ws/deflate.h"

#define MiB (1024u * 1024u)

static uint32_t rng = 12345;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* Text-like data: words from a small vocabulary, so there are matches at all distances. */
static void fill_text(unsigned char *p, size_t n)
{
    static const char *words[] = {"alpha",   "beta", "gamma", "delta", "\"id\":", "{",     "}",
                                  "epsilon", "zeta", "eta",   "theta", "iota",    "kappa", "lambda",
                                  "mu",      " ",    ",",     "\n",    "0123",    "xyz"};
    size_t i = 0;
    while (i < n) {
        const char *w = words[next_rand() % (sizeof words / sizeof words[0])];
        for (size_t k = 0; w[k] && i < n; k++)
            p[i++] = (unsigned char)w[k];
    }
}

static void fill_random(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)next_rand();
}

static struct cipc__ws_deflate *make(const struct cipc__ws_pmd_params *pp, bool server)
{
    struct cipc__ws_deflate *d = NULL;
    CHECK_INT(cipc__ws_deflate_new(pp, server, 0, &d), ==, 0);
    CHECK(d != NULL);
    return d;
}

/* Compress msg with tx and inflate with rx in one piece; check the bytes come back. Returns
 * the compressed size. */
static size_t round_trip(struct cipc__ws_deflate *tx, struct cipc__ws_deflate *rx,
                         const unsigned char *msg, size_t n)
{
    cipc_buf z = CIPC_BUF_INIT, out = CIPC_BUF_INIT;
    CHECK_INT(cipc__ws_deflate_message(tx, msg, n, &z), ==, 0);
    CHECK(z.len > 0);
    CHECK_INT(cipc__ws_inflate_feed(rx, z.data, z.len, true, &out, n), ==, 0);
    CHECK_INT(out.len, ==, n);
    CHECK(n == 0 || memcmp(out.data, msg, n) == 0);
    size_t zl = z.len;
    cipc_buf_free(&z);
    cipc_buf_free(&out);
    return zl;
}

static void test_round_trips(void)
{
    static const size_t sizes[] = {0,    1,    2,     5,     100,   1000,   4095,
                                   4096, 4097, 65535, 65536, 65537, 300000, MiB};
    unsigned char *msg = malloc(MiB);
    CHECK(msg != NULL);
    for (int takeover = 0; takeover < 2; takeover++) {
        struct cipc__ws_pmd_params pp = {.server_max_window_bits = 15};
        pp.server_no_context_takeover = pp.client_no_context_takeover = !takeover;
        struct cipc__ws_deflate *srv = make(&pp, true), *cli = make(&pp, false);
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            for (int kind = 0; kind < 3; kind++) {
                size_t n = sizes[i];
                if (kind == 0)
                    fill_text(msg, n);
                else if (kind == 1)
                    fill_random(msg, n);
                else
                    memset(msg, 'z', n);
                round_trip(srv, cli, msg, n);
                round_trip(cli, srv, msg, n);
            }
        }
        cipc__ws_deflate_free(srv);
        cipc__ws_deflate_free(cli);
    }
    free(msg);
}

/* With context takeover, a repeated message refers back to the first one. */
static void test_takeover_gain(void)
{
    unsigned char msg[2000];
    fill_text(msg, sizeof msg);
    for (int takeover = 0; takeover < 2; takeover++) {
        struct cipc__ws_pmd_params pp = {.server_max_window_bits = 15};
        pp.server_no_context_takeover = !takeover;
        struct cipc__ws_deflate *srv = make(&pp, true), *cli = make(&pp, false);
        size_t first = round_trip(srv, cli, msg, sizeof msg);
        size_t second = round_trip(srv, cli, msg, sizeof msg);
        if (takeover)
            CHECK_INT(second * 4, <, first);
        else
            CHECK_INT(second, ==, first);
        cipc__ws_deflate_free(srv);
        cipc__ws_deflate_free(cli);
    }
}

/* Inflate with zlib's own raw inflate (set up by the caller at exactly the window to
 * check), strictly: one output byte per call, so every back reference must come from
 * zlib's window and not from earlier output of the same call (which zlib also allows).
 * Appends the 00 00 FF FF tail. Returns Z_OK with *out_len set, or zlib's error. */
static int zlib_inflate(z_stream *zs, const void *p, size_t n, unsigned char *out, size_t cap,
                        size_t *out_len)
{
    static const unsigned char tail[4] = {0, 0, 0xff, 0xff};
    size_t produced = 0;
    for (int part = 0; part < 2; part++) {
        zs->next_in = part ? (Bytef *)(uintptr_t)tail : (Bytef *)(uintptr_t)p;
        zs->avail_in = part ? 4 : (uInt)n;
        for (;;) {
            if (produced == cap)
                return Z_BUF_ERROR;
            zs->next_out = out + produced;
            zs->avail_out = 1;
            int zr = inflate(zs, Z_SYNC_FLUSH);
            if (zr != Z_OK && zr != Z_BUF_ERROR)
                return zr;
            produced += 1 - zs->avail_out;
            if (zs->avail_in == 0 && zs->avail_out == 1)
                break;
        }
    }
    *out_len = produced;
    return Z_OK;
}

/* Every window size: our compressor stays within it (zlib's inflate at exactly that window
 * accepts everything, across messages with takeover), and our inflater reads it. */
static void test_window_bits(void)
{
    enum { N = 20000 };
    unsigned char *msg = malloc(N), *back = malloc(N + 16);
    CHECK(msg && back);
    for (int bits = 8; bits <= 15; bits++) {
        for (int server = 0; server < 2; server++) {
            struct cipc__ws_pmd_params pp = {.server_max_window_bits = server ? bits : 15,
                                             .client_max_window_bits = server ? 0 : bits};
            struct cipc__ws_deflate *tx = make(&pp, server), *rx = make(&pp, !server);
            z_stream zs;
            memset(&zs, 0, sizeof zs);
            CHECK_INT(inflateInit2(&zs, -bits), ==, Z_OK);
            for (int m = 0; m < 30; m++) {
                size_t n = (size_t)(next_rand() % N) + 1;
                if (m % 3 == 0)
                    fill_text(msg, n);
                else if (m % 3 == 1)
                    memset(msg, 'a' + m, n);
                else
                    for (size_t i = 0; i < n; i++) /* long-distance repeats */
                        msg[i] =
                            (unsigned char)"abcdefghijklmnopqrstuvwxyz0123456789"[(i * 7) % 36];
                cipc_buf z = CIPC_BUF_INIT, out = CIPC_BUF_INIT;
                CHECK_INT(cipc__ws_deflate_message(tx, msg, n, &z), ==, 0);
                size_t got = 0;
                CHECK_INT(zlib_inflate(&zs, z.data, z.len, back, N + 16, &got), ==, Z_OK);
                CHECK_INT(got, ==, n);
                CHECK(memcmp(back, msg, n) == 0);
                CHECK_INT(cipc__ws_inflate_feed(rx, z.data, z.len, true, &out, N), ==, 0);
                CHECK_INT(out.len, ==, n);
                CHECK(memcmp(out.data, msg, n) == 0);
                cipc_buf_free(&z);
                cipc_buf_free(&out);
            }
            inflateEnd(&zs);
            cipc__ws_deflate_free(tx);
            cipc__ws_deflate_free(rx);
        }
    }
    /* The check has teeth: data compressed with a 32 KiB window fails it at 8 bits. */
    fill_text(msg, N);
    z_stream big, small;
    memset(&big, 0, sizeof big);
    memset(&small, 0, sizeof small);
    CHECK_INT(deflateInit2(&big, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), ==, Z_OK);
    CHECK_INT(inflateInit2(&small, -8), ==, Z_OK);
    unsigned char *z = malloc(2 * N);
    CHECK(z != NULL);
    big.next_in = msg;
    big.avail_in = N;
    big.next_out = z;
    big.avail_out = 2 * N;
    CHECK_INT(deflate(&big, Z_SYNC_FLUSH), ==, Z_OK);
    size_t got = 0;
    CHECK_INT(zlib_inflate(&small, z, 2 * N - big.avail_out - 4, back, N + 16, &got), ==,
              Z_DATA_ERROR);
    deflateEnd(&big);
    inflateEnd(&small);
    free(z);
    free(msg);
    free(back);
}

static void check_inflate(struct cipc__ws_deflate *d, const char *hex_in, size_t n,
                          const char *want)
{
    cipc_buf out = CIPC_BUF_INIT;
    CHECK_INT(cipc__ws_inflate_feed(d, hex_in, n, true, &out, 1000), ==, 0);
    CHECK_MEM(out.data ? out.data : "", out.len, want);
    cipc_buf_free(&out);
}

/* RFC 7692 7.2.3: the sample byte strings. */
static void test_rfc_vectors(void)
{
    struct cipc__ws_pmd_params takeover = {.server_max_window_bits = 15};
    struct cipc__ws_pmd_params reset = {.server_max_window_bits = 15,
                                        .server_no_context_takeover = true,
                                        .client_no_context_takeover = true};
    cipc_buf z = CIPC_BUF_INIT;

    /* 7.2.3.1: "Hello", one block. */
    struct cipc__ws_deflate *d = make(&reset, true);
    CHECK_INT(cipc__ws_deflate_message(d, "Hello", 5, &z), ==, 0);
    CHECK_INT(z.len, ==, 7);
    CHECK(memcmp(z.data, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7) == 0);
    cipc_buf_reset(&z);
    CHECK_INT(cipc__ws_deflate_message(d, "Hello", 5, &z), ==, 0); /* no takeover: the same */
    CHECK(z.len == 7 && memcmp(z.data, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7) == 0);
    cipc_buf_reset(&z);
    check_inflate(d, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7, "Hello");
    check_inflate(d, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7, "Hello");
    cipc__ws_deflate_free(d);

    /* 7.2.3.2: with takeover the second "Hello" is a back reference. */
    d = make(&takeover, true);
    CHECK_INT(cipc__ws_deflate_message(d, "Hello", 5, &z), ==, 0);
    CHECK(z.len == 7 && memcmp(z.data, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7) == 0);
    cipc_buf_reset(&z);
    CHECK_INT(cipc__ws_deflate_message(d, "Hello", 5, &z), ==, 0);
    CHECK_INT(z.len, ==, 5);
    CHECK(memcmp(z.data, "\xf2\x00\x11\x00\x00", 5) == 0);
    cipc_buf_reset(&z);
    check_inflate(d, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7, "Hello");
    check_inflate(d, "\xf2\x00\x11\x00\x00", 5, "Hello");
    cipc__ws_deflate_free(d);

    /* ... which a peer without takeover cannot read: distance too far back. */
    d = make(&takeover, true);
    cipc_buf out = CIPC_BUF_INIT;
    CHECK_INT(cipc__ws_inflate_feed(d, "\xf2\x00\x11\x00\x00", 5, true, &out, 100), ==,
              CIPC_EPROTO);
    CHECK_INT(cipc__ws_inflate_feed(d, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7, true, &out, 100), ==,
              CIPC_EPROTO); /* sticky */
    cipc_buf_free(&out);
    cipc__ws_deflate_free(d);

    /* 7.2.3.3: a stored block. 7.2.3.5: two blocks in one message. */
    d = make(&takeover, false);
    check_inflate(d, "\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00", 11, "Hello");
    check_inflate(d, "\xf2\x48\x05\x00\x00\x00\xff\xff\xca\xc9\xc9\x07\x00", 13, "Hello");
    cipc__ws_deflate_free(d);

    /* 7.2.3.4: a BFINAL block and a padding byte; with takeover the window survives the
     * end of that deflate stream. */
    for (int i = 0; i < 2; i++) {
        d = make(&takeover, i == 1);
        check_inflate(d, "\xf3\x48\xcd\xc9\xc9\x07\x00\x00", 8, "Hello");
        check_inflate(d, "\xf2\x00\x11\x00\x00", 5, "Hello");
        /* Without the padding byte too (the tail is then dropped). */
        check_inflate(d, "\xf3\x48\xcd\xc9\xc9\x07\x00", 7, "Hello");
        check_inflate(d, "\xf2\x00\x11\x00\x00", 5, "Hello");
        /* A BFINAL block, then more of the same message in a new stream. */
        check_inflate(d, "\xf3\x48\xcd\xc9\xc9\x07\x00\xf2\x00\x11\x00\x00", 12, "HelloHello");
        cipc__ws_deflate_free(d);
    }

    /* 7.2.3.6: an empty fragment ends a message. */
    d = make(&takeover, false);
    out = (cipc_buf)CIPC_BUF_INIT;
    CHECK_INT(cipc__ws_inflate_feed(d, "\xf2\x48\xcd\xc9\xc9\x07\x00\x00\x00\xff\xff", 11, false,
                                    &out, 100),
              ==, 0);
    CHECK_INT(cipc__ws_inflate_feed(d, "\x00", 1, true, &out, 100), ==, 0);
    CHECK_MEM(out.data, out.len, "Hello");
    cipc_buf_free(&out);
    cipc__ws_deflate_free(d);

    /* Empty messages: sent as 00; a message with no payload at all is empty too, and
     * neither disturbs the context. */
    d = make(&takeover, true);
    CHECK_INT(cipc__ws_deflate_message(d, "", 0, &z), ==, 0);
    CHECK(z.len == 1 && z.data[0] == 0);
    cipc_buf_reset(&z);
    CHECK_INT(cipc__ws_deflate_message(d, "Hello", 5, &z), ==, 0);
    CHECK(z.len == 7 && memcmp(z.data, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7) == 0);
    cipc_buf_reset(&z);
    CHECK_INT(cipc__ws_deflate_message(d, NULL, 0, &z), ==, 0);
    CHECK(z.len == 1 && z.data[0] == 0);
    cipc_buf_reset(&z);
    CHECK_INT(cipc__ws_deflate_message(d, "Hello", 5, &z), ==, 0);
    CHECK(z.len == 5 && memcmp(z.data, "\xf2\x00\x11\x00\x00", 5) == 0);
    cipc_buf_reset(&z);
    check_inflate(d, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7, "Hello");
    check_inflate(d, "\x00", 1, "");
    check_inflate(d, "", 0, "");
    out = (cipc_buf)CIPC_BUF_INIT;
    CHECK_INT(cipc__ws_inflate_feed(d, NULL, 0, false, &out, 100), ==, 0);
    CHECK_INT(cipc__ws_inflate_feed(d, NULL, 0, true, &out, 100), ==, 0);
    CHECK_INT(out.len, ==, 0);
    cipc_buf_free(&out);
    check_inflate(d, "\xf2\x00\x11\x00\x00", 5, "Hello");
    cipc__ws_deflate_free(d);
    cipc_buf_free(&z);
}

/* A small message fed in two and three pieces cut at every offset gives the same bytes. */
static void test_split_offsets(void)
{
    unsigned char msg[300];
    fill_text(msg, sizeof msg);
    for (int takeover = 0; takeover < 2; takeover++) {
        struct cipc__ws_pmd_params pp = {.server_max_window_bits = 15};
        pp.server_no_context_takeover = !takeover;
        struct cipc__ws_deflate *srv = make(&pp, true);
        cipc_buf z1 = CIPC_BUF_INIT, z2 = CIPC_BUF_INIT;
        CHECK_INT(cipc__ws_deflate_message(srv, msg, sizeof msg, &z1), ==, 0);
        CHECK_INT(cipc__ws_deflate_message(srv, msg, sizeof msg, &z2), ==, 0);
        for (size_t a = 0; a <= z1.len; a++) {
            for (size_t b = a; b <= z1.len; b += (z1.len > 100 ? 7 : 1)) {
                struct cipc__ws_deflate *cli = make(&pp, false);
                cipc_buf out = CIPC_BUF_INIT;
                /* Each piece in its own exact-size allocation. */
                size_t cuts[4] = {0, a, b, z1.len};
                for (int k = 0; k < 3; k++) {
                    size_t len = cuts[k + 1] - cuts[k];
                    char *piece = malloc(len ? len : 1);
                    CHECK(piece != NULL);
                    memcpy(piece, z1.data + cuts[k], len);
                    CHECK_INT(cipc__ws_inflate_feed(cli, piece, len, k == 2, &out, sizeof msg), ==,
                              0);
                    free(piece);
                }
                CHECK_INT(out.len, ==, sizeof msg);
                CHECK(memcmp(out.data, msg, sizeof msg) == 0);
                /* The next message still reads (after takeover, it refers back). */
                cipc_buf_reset(&out);
                CHECK_INT(cipc__ws_inflate_feed(cli, z2.data, z2.len, true, &out, sizeof msg), ==,
                          0);
                CHECK_INT(out.len, ==, sizeof msg);
                CHECK(memcmp(out.data, msg, sizeof msg) == 0);
                cipc_buf_free(&out);
                cipc__ws_deflate_free(cli);
            }
        }
        cipc_buf_free(&z1);
        cipc_buf_free(&z2);
        cipc__ws_deflate_free(srv);
    }
}

static long max_rss_kib(void)
{
    struct rusage ru;
    CHECK_INT(getrusage(RUSAGE_SELF, &ru), ==, 0);
    return ru.ru_maxrss;
}

/* max_total: exact fits pass, one byte more fails, and a 100 MiB bomb stops at the limit
 * without ever holding much more than it. */
static void test_limits_and_bomb(void)
{
    struct cipc__ws_pmd_params pp = {.server_max_window_bits = 15};
    unsigned char msg[5000];
    fill_text(msg, sizeof msg);
    struct cipc__ws_deflate *srv = make(&pp, true), *cli = make(&pp, false);
    cipc_buf z = CIPC_BUF_INIT, out = CIPC_BUF_INIT;
    CHECK_INT(cipc__ws_deflate_message(srv, msg, sizeof msg, &z), ==, 0);
    CHECK_INT(cipc__ws_inflate_feed(cli, z.data, z.len, true, &out, sizeof msg), ==, 0);
    CHECK_INT(out.len, ==, sizeof msg);
    cipc__ws_deflate_free(cli);
    cli = make(&pp, false);
    cipc_buf_reset(&out);
    CHECK_INT(cipc__ws_inflate_feed(cli, z.data, z.len, true, &out, sizeof msg - 1), ==,
              CIPC_ETOOBIG);
    CHECK_INT(out.len, <=, sizeof msg);
    CHECK_INT(cipc__ws_inflate_feed(cli, z.data, z.len, true, &out, 1 << 20), ==, CIPC_ETOOBIG);
    /* The limit counts what `out` held already. */
    cipc__ws_deflate_free(cli);
    cli = make(&pp, false);
    cipc_buf_reset(&out);
    CHECK_INT(cipc_buf_append(&out, "0123456789", 10), ==, 0);
    CHECK_INT(cipc__ws_inflate_feed(cli, z.data, z.len, true, &out, sizeof msg + 9), ==,
              CIPC_ETOOBIG);
    cipc__ws_deflate_free(cli);
    cipc__ws_deflate_free(srv);
    cipc_buf_free(&z);
    cipc_buf_free(&out);

    /* The bomb: 100 MiB of zeros, compressed in a stream from a small buffer. */
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    CHECK_INT(deflateInit2(&zs, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), ==, Z_OK);
    static unsigned char zeros[65536];
    cipc_buf bomb = CIPC_BUF_INIT;
    CHECK_INT(cipc_buf_reserve(&bomb, 256 * 1024), ==, 0);
    for (int i = 0; i < 1600; i++) {
        zs.next_in = zeros;
        zs.avail_in = sizeof zeros;
        do {
            zs.next_out = (Bytef *)bomb.data + bomb.len;
            zs.avail_out = (uInt)(bomb.cap - bomb.len - 1);
            CHECK(deflate(&zs, i == 1599 ? Z_SYNC_FLUSH : Z_NO_FLUSH) != Z_STREAM_ERROR);
            bomb.len = bomb.cap - 1 - zs.avail_out;
            if (zs.avail_out == 0)
                CHECK_INT(cipc_buf_reserve(&bomb, bomb.cap), ==, 0);
        } while (zs.avail_out == 0 || zs.avail_in != 0);
    }
    deflateEnd(&zs);
    CHECK(bomb.len > 4 && memcmp(bomb.data + bomb.len - 4, "\x00\x00\xff\xff", 4) == 0);
    bomb.len -= 4;
    CHECK_INT(bomb.len, <, 200 * 1024); /* ~100 KiB for 100 MiB */

    long before = max_rss_kib();
    const size_t max_total = MiB;
    for (int pieces = 0; pieces < 2; pieces++) {
        cli = make(&pp, false);
        out = (cipc_buf)CIPC_BUF_INIT;
        int rc = 0;
        if (pieces == 0) {
            rc = cipc__ws_inflate_feed(cli, bomb.data, bomb.len, true, &out, max_total);
        } else {
            /* As 4 KiB frames: the limit holds across pieces. */
            for (size_t off = 0; off < bomb.len && rc == 0; off += 4096) {
                size_t len = bomb.len - off < 4096 ? bomb.len - off : 4096;
                rc = cipc__ws_inflate_feed(cli, bomb.data + off, len, off + len == bomb.len, &out,
                                           max_total);
            }
        }
        CHECK_INT(rc, ==, CIPC_ETOOBIG);
        CHECK_INT(out.len, <=, max_total + 1);
        CHECK_INT(out.cap, <=, 2 * (max_total + 1) + 64);
        cipc_buf_free(&out);
        cipc__ws_deflate_free(cli);
    }
    long after = max_rss_kib();
    CHECK_INT(after - before, <, 16 * 1024); /* KiB: far below the 100 MiB it unpacks to */
    cipc_buf_free(&bomb);
}

static void test_corrupt(void)
{
    struct cipc__ws_pmd_params pp = {.server_max_window_bits = 15};
    static const struct {
        const char *p;
        size_t n;
    } bad[] = {
        {"\xff\xff\xff\xff", 4},           /* BTYPE 11 (reserved) */
        {"\x07", 1},                       /* BFINAL, BTYPE 11 */
        {"\x00\x05\x00\x00\x00Hello", 10}, /* stored block: NLEN is not ~LEN */
        {"\xf2\x48\xcd", 3},               /* cut inside a block: no block boundary at the end */
        {"\x04", 1},                       /* a dynamic block cut in its header */
        {"\xf2\x00\x11\x00\x00", 5},       /* a match before any data */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct cipc__ws_deflate *d = make(&pp, i % 2 == 0);
        cipc_buf out = CIPC_BUF_INIT;
        int rc = cipc__ws_inflate_feed(d, bad[i].p, bad[i].n, true, &out, 1000);
        if (rc != CIPC_EPROTO)
            fprintf(stderr, "corrupt case %zu: %d\n", i, rc);
        CHECK_INT(rc, ==, CIPC_EPROTO);
        CHECK_INT(cipc__ws_inflate_feed(d, "\x00", 1, true, &out, 1000), ==, CIPC_EPROTO);
        cipc_buf_free(&out);
        cipc__ws_deflate_free(d);
    }
    /* Random garbage: never a crash, always a clean result. */
    for (int i = 0; i < 2000; i++) {
        unsigned char junk[64];
        size_t n = next_rand() % sizeof junk;
        fill_random(junk, n);
        struct cipc__ws_deflate *d = make(&pp, true);
        cipc_buf out = CIPC_BUF_INIT;
        int rc = cipc__ws_inflate_feed(d, junk, n, true, &out, 4096);
        CHECK(rc == 0 || rc == CIPC_EPROTO || rc == CIPC_ETOOBIG);
        CHECK_INT(out.len, <=, 4097);
        cipc_buf_free(&out);
        cipc__ws_deflate_free(d);
    }
}

static void test_args_and_trim(void)
{
    struct cipc__ws_deflate *d = NULL;
    struct cipc__ws_pmd_params ok = {.server_max_window_bits = 15};
    struct cipc__ws_pmd_params bad_s = {.server_max_window_bits = 16};
    struct cipc__ws_pmd_params bad_c = {.server_max_window_bits = 15, .client_max_window_bits = 7};
    struct cipc__ws_pmd_params bad_m = {.server_max_window_bits = 15, .mem_level = 10};
    CHECK_INT(cipc__ws_deflate_new(&bad_s, true, 0, &d), ==, -EINVAL);
    CHECK_INT(cipc__ws_deflate_new(&bad_c, true, 0, &d), ==, -EINVAL);
    CHECK_INT(cipc__ws_deflate_new(&bad_m, true, 0, &d), ==, -EINVAL);
    CHECK_INT(cipc__ws_deflate_new(&ok, true, 10, &d), ==, -EINVAL);
    CHECK_INT(cipc__ws_deflate_new(&ok, true, -1, &d), ==, -EINVAL);
    CHECK(d == NULL);
    cipc__ws_deflate_free(NULL);
    cipc__ws_deflate_trim(NULL);

    /* Every level and a small memLevel work; 0 server bits means 15. */
    unsigned char msg[3000];
    fill_text(msg, sizeof msg);
    for (int level = 0; level <= 9; level++) {
        struct cipc__ws_pmd_params pp = {.mem_level = level ? level : 1};
        struct cipc__ws_deflate *a = NULL, *b = NULL;
        CHECK_INT(cipc__ws_deflate_new(&pp, true, level, &a), ==, 0);
        CHECK_INT(cipc__ws_deflate_new(&pp, false, level, &b), ==, 0);
        round_trip(a, b, msg, sizeof msg);
        round_trip(b, a, msg, sizeof msg);
        cipc__ws_deflate_free(a);
        cipc__ws_deflate_free(b);
    }

    /* trim frees the streams of no-takeover directions; they come back on use. */
    struct cipc__ws_pmd_params nt = {.server_max_window_bits = 15,
                                     .server_no_context_takeover = true,
                                     .client_no_context_takeover = true};
    struct cipc__ws_deflate *s = make(&nt, true), *c = make(&nt, false);
    for (int i = 0; i < 3; i++) {
        round_trip(s, c, msg, sizeof msg);
        round_trip(c, s, msg, sizeof msg);
        cipc__ws_deflate_trim(s);
        cipc__ws_deflate_trim(c);
    }
    /* Mid-message, the receiving stream is kept. */
    cipc_buf z = CIPC_BUF_INIT, out = CIPC_BUF_INIT;
    CHECK_INT(cipc__ws_deflate_message(s, msg, sizeof msg, &z), ==, 0);
    CHECK_INT(cipc__ws_inflate_feed(c, z.data, 10, false, &out, sizeof msg), ==, 0);
    cipc__ws_deflate_trim(c);
    CHECK_INT(cipc__ws_inflate_feed(c, z.data + 10, z.len - 10, true, &out, sizeof msg), ==, 0);
    CHECK_INT(out.len, ==, sizeof msg);
    CHECK(memcmp(out.data, msg, sizeof msg) == 0);
    /* Output is appended after what `out` holds. */
    cipc_buf_reset(&z);
    CHECK_INT(cipc_buf_append(&z, "head", 4), ==, 0);
    CHECK_INT(cipc__ws_deflate_message(s, "Hello", 5, &z), ==, 0);
    CHECK(z.len == 11 && memcmp(z.data, "head\xf2\x48\xcd\xc9\xc9\x07\x00", 11) == 0);
    CHECK_INT(z.data[z.len], ==, 0);
    cipc_buf_free(&z);
    cipc_buf_free(&out);
    cipc__ws_deflate_free(s);
    cipc__ws_deflate_free(c);
}

int main(void)
{
    test_rfc_vectors();
    test_round_trips();
    test_takeover_gain();
    test_window_bits();
    test_split_offsets();
    test_limits_and_bomb();
    test_corrupt();
    test_args_and_trim();
    printf("test_ws_deflate: ok\n");
    return 0;
}
