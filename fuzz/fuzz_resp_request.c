/* fuzz/fuzz_resp_request.c -- pairs with src/resp/resp.c (the RESP request parser).
 *
 * The input is what a client sends. Its last byte picks the limits: when its low three
 * bits are 0, small limits derived from its other bits (to reach every limit error);
 * else the defaults. Its first byte picks a split offset.
 *
 * The input is parsed one-shot, split in two at that offset, and byte by byte (each piece
 * in its own exact-size allocation, freed before the next piece is parsed, so a view into
 * an old piece is a use-after-free). Every run writes a transcript: each command's end
 * offset and arguments, and an error's text and offset. Abort unless the three agree, the
 * error texts are Redis's, a prefix's transcript is a prefix of the whole's (checked on
 * the split), every argument lies in its piece or in the parser's store, and each
 * multibulk command re-encoded by the writers is the tail of the bytes it consumed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "resp/resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const errors[] = {
    "Protocol error: invalid multibulk length",   "Protocol error: invalid bulk length",
    "Protocol error: too big mbulk count string", "Protocol error: too big bulk count string",
    "Protocol error: too big inline request",     "Protocol error: unbalanced quotes in request",
};

static void check_err(const char *e)
{
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (strcmp(e, errors[i]) == 0)
            return;
    static const char exp[] = "Protocol error: expected '$', got '";
    size_t n = strlen(e);
    if (strncmp(e, exp, sizeof exp - 1) == 0 &&
        (n == sizeof exp - 1 || (n == sizeof exp + 1 && e[n - 1] == '\'' && e[n - 2] != '$' &&
                                 e[n - 2] != '\r' && e[n - 2] != '\n')))
        return;
    abort();
}

static void put(cipc_buf *t, const void *p, size_t n)
{
    if (cipc_buf_append(t, p, n) < 0)
        abort();
}

static void put_num(cipc_buf *t, size_t v)
{
    put(t, &v, sizeof v);
}

/* A command parsed one-shot from region[0..used): if it was multibulk, the writers'
 * encoding of its arguments is the tail of the region (the encoding is unique, since
 * lengths have no leading zeros or '+'; what precedes it was skipped: "*0", empty
 * lines). Otherwise it was inline: its line is the region's last line, which does not
 * start with '*' and gives the same arguments when parsed alone. */
static void check_encoding(const cipc__resp_parser *p, const char *region, size_t used,
                           const cipc__resp_limits *lim, cipc_buf *enc)
{
    cipc_buf_reset(enc);
    if (cipc__resp_array(enc, p->argc) < 0)
        abort();
    for (size_t i = 0; i < p->argc; i++)
        if (cipc__resp_bulk(enc, p->argv[i], p->argl[i]) < 0)
            abort();
    if (enc->len <= used && memcmp(region + used - enc->len, enc->data, enc->len) == 0)
        return;
    if (region[used - 1] != '\n')
        abort();
    size_t ls = used - 1;
    while (ls > 0 && region[ls - 1] != '\n')
        ls--;
    if (region[ls] == '*')
        abort();
    cipc__resp_parser q;
    cipc__resp_parser_init(&q, lim);
    size_t u = 0;
    if (cipc__resp_parse(&q, region + ls, used - ls, &u) != 1 || u != used - ls ||
        q.argc != p->argc)
        abort();
    for (size_t i = 0; i < q.argc; i++)
        if (q.argl[i] != p->argl[i] || memcmp(q.argv[i], p->argv[i], q.argl[i]) != 0)
            abort();
    cipc__resp_parser_free(&q);
}

/* Parse in[0..n) cut at cuts[0..ncuts); write the transcript to t. Returns the number of
 * commands. */
static size_t run(const uint8_t *in, size_t n, const cipc__resp_limits *lim, const size_t *cuts,
                  size_t ncuts, cipc_buf *t)
{
    cipc__resp_parser p;
    cipc__resp_parser_init(&p, lim);
    size_t from = 0, cmds = 0;
    int dead = 0;
    cipc_buf enc = CIPC_BUF_INIT;
    for (size_t k = 0; k <= ncuts && !dead; k++) {
        size_t to = k < ncuts ? cuts[k] : n;
        size_t len = to - from;
        char *piece = malloc(len ? len : 1);
        if (!piece)
            abort();
        if (len)
            memcpy(piece, in + from, len);
        size_t off = 0;
        while (!dead) {
            size_t used = (size_t)-1;
            int rc = cipc__resp_parse(&p, piece + off, len - off, &used);
            if (rc == 1) {
                if (used == 0 || used > len - off || p.argc == 0)
                    abort();
                put(t, "C", 1);
                put_num(t, from + off + used);
                put_num(t, p.argc);
                for (size_t i = 0; i < p.argc; i++) {
                    const char *a = p.argv[i];
                    size_t l = p.argl[i];
                    int in_piece = a >= piece && a + l <= piece + off + used;
                    int in_store =
                        l == 0 || (p.store && a >= p.store && a + l <= p.store + p.store_len);
                    if (!in_piece && !in_store)
                        abort();
                    put_num(t, l);
                    put(t, a, l);
                }
                if (ncuts == 0)
                    check_encoding(&p, piece + off, used, lim, &enc);
                cmds++;
                off += used;
                if (off == len)
                    break;
            } else if (rc == 0) {
                if (used != len - off)
                    abort();
                break;
            } else if (rc == CIPC_EPROTO) {
                if (used >= len - off)
                    abort();
                check_err(p.err);
                put(t, "E", 1);
                put_num(t, from + off + used);
                put(t, p.err, strlen(p.err) + 1);
                size_t u2 = 1;
                if (cipc__resp_parse(&p, "x", 1, &u2) != CIPC_EPROTO || u2 != 0)
                    abort();
                dead = 1;
            } else {
                abort();
            }
        }
        free(piece);
        from = to;
    }
    cipc_buf_free(&enc);
    cipc__resp_parser_free(&p);
    return cmds;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cipc__resp_limits small, *lim = NULL;
    uint8_t sel = size ? data[size - 1] : 1;
    if ((sel & 7) == 0) {
        memset(&small, 0, sizeof small);
        small.max_bulk = (sel >> 3) % 8;
        small.max_multibulk = 1 + (sel >> 4) % 4;
        small.max_inline = 1 + (sel >> 3) % 16;
        if (small.max_bulk == 0)
            small.max_bulk = 1;
        lim = &small;
    }
    size_t cut = size ? data[0] % (size + 1) : 0;

    cipc_buf one = CIPC_BUF_INIT, two = CIPC_BUF_INIT, bytes = CIPC_BUF_INIT, pre = CIPC_BUF_INIT;
    run(data, size, lim, NULL, 0, &one);
    run(data, size, lim, &cut, 1, &two);
    if (one.len != two.len || (one.len && memcmp(one.data, two.data, one.len) != 0))
        abort();
    /* The prefix before the cut: its transcript starts the whole one. */
    run(data, cut, lim, NULL, 0, &pre);
    if (pre.len > one.len || (pre.len && memcmp(pre.data, one.data, pre.len) != 0))
        abort();
    size_t *cuts = malloc((size + 1) * sizeof *cuts);
    if (!cuts)
        abort();
    for (size_t i = 0; i + 1 < size; i++)
        cuts[i] = i + 1;
    run(data, size, lim, cuts, size ? size - 1 : 0, &bytes);
    if (one.len != bytes.len || (one.len && memcmp(one.data, bytes.data, one.len) != 0))
        abort();
    free(cuts);
    cipc_buf_free(&one);
    cipc_buf_free(&two);
    cipc_buf_free(&bytes);
    cipc_buf_free(&pre);
    return 0;
}
