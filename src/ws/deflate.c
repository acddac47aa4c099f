/* permessage-deflate compression over zlib raw deflate, private to cipc. The choices (window
 * bits 8, the default level, empty messages, BFINAL blocks) are explained in deflate.h.
 *
 * Both streams are created lazily. Output goes straight into the caller's cipc_buf: the
 * buffer is grown, zlib writes into its spare room, and out->len follows; the NUL that
 * cipc_buf promises is restored after every step. zlib counts in uInt, so inputs and
 * output room are handed over in pieces of at most UINT_MAX bytes. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "ws/deflate.h"

/* Room asked for at a time when output must grow. */
#define STEP 16384

struct cipc__ws_deflate {
    z_stream tx, rx;
    bool tx_live, rx_live;   /* the stream exists (deflateInit2 / inflateInit2 done) */
    bool tx_reset, rx_reset; /* no context takeover in that direction */
    int tx_bits, tx_strategy, level, mem_level;
    /* The message being received. */
    bool rx_mid;   /* a piece of it was fed (fin not yet seen) */
    bool rx_any;   /* it had payload bytes */
    bool rx_ended; /* the current deflate stream ended (a BFINAL block) */
    int rx_err;    /* sticky error, 0 if none */
};

static const unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};

int cipc__ws_deflate_new(const struct cipc__ws_pmd_params *agreed, bool is_server, int level,
                         struct cipc__ws_deflate **out)
{
    int sb = agreed->server_max_window_bits ? agreed->server_max_window_bits : 15;
    int cb = agreed->client_max_window_bits ? agreed->client_max_window_bits : 15;
    int mem = agreed->mem_level ? agreed->mem_level : 8;
    if (sb < 8 || sb > 15 || cb < 8 || cb > 15 || mem < 1 || mem > 9 || level < 0 || level > 9)
        return -EINVAL;
    struct cipc__ws_deflate *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    d->tx_bits = is_server ? sb : cb;
    d->tx_strategy = Z_DEFAULT_STRATEGY;
    if (d->tx_bits == 8) {
        /* zlib cannot deflate raw data with a 256-byte window: use 9 bits with matches at
           distance 1 only (deflate.h). */
        d->tx_bits = 9;
        d->tx_strategy = Z_RLE;
    }
    d->tx_reset =
        is_server ? agreed->server_no_context_takeover : agreed->client_no_context_takeover;
    d->rx_reset =
        is_server ? agreed->client_no_context_takeover : agreed->server_no_context_takeover;
    d->level = level ? level : CIPC__WS_DEFLATE_DEFAULT_LEVEL;
    d->mem_level = mem;
    *out = d;
    return 0;
}

void cipc__ws_deflate_free(struct cipc__ws_deflate *d)
{
    if (!d)
        return;
    if (d->tx_live)
        deflateEnd(&d->tx);
    if (d->rx_live)
        inflateEnd(&d->rx);
    free(d);
}

void cipc__ws_deflate_trim(struct cipc__ws_deflate *d)
{
    if (!d)
        return;
    if (d->tx_live && d->tx_reset) {
        deflateEnd(&d->tx);
        d->tx_live = false;
    }
    if (d->rx_live && d->rx_reset && !d->rx_mid && d->rx_err == 0) {
        inflateEnd(&d->rx);
        d->rx_live = false;
    }
}

static int zerr(int zr)
{
    return zr == Z_MEM_ERROR ? -ENOMEM : CIPC_EINTERNAL;
}

/* Room for zlib in `out`: at least 1 byte, at most `want` (and UINT_MAX) when it must
 * grow. Returns the room (> 0), or -ENOMEM. */
static long long room(struct cipc_buf *out, size_t want)
{
    size_t have = out->cap > out->len ? out->cap - out->len - 1 : 0;
    if (have == 0) {
        if (cipc_buf_reserve(out, want ? want : 1) < 0)
            return -ENOMEM;
        have = out->cap - out->len - 1;
    }
    return (long long)(have > UINT_MAX ? UINT_MAX : have);
}

int cipc__ws_deflate_message(struct cipc__ws_deflate *d, const void *p, size_t n,
                             struct cipc_buf *out)
{
    if (n == 0) /* an empty stored block; the compressor is not involved */
        return cipc_buf_append(out, "", 1);
    if (!d->tx_live) {
        memset(&d->tx, 0, sizeof d->tx);
        int zr =
            deflateInit2(&d->tx, d->level, Z_DEFLATED, -d->tx_bits, d->mem_level, d->tx_strategy);
        if (zr != Z_OK)
            return zerr(zr);
        d->tx_live = true;
    }
    const size_t orig = out->len;
    const unsigned char *in = p;
    size_t left = n;
    int rc = 0;
    /* The first growth is sized to the likely output; later ones double. */
    size_t want = deflateBound(&d->tx, n > UINT_MAX ? UINT_MAX : (uLong)n) + 16;
    if (want > 4 * STEP)
        want = 4 * STEP;
    while (rc == 0) {
        uInt chunk = left > UINT_MAX ? UINT_MAX : (uInt)left;
        int flush = left > UINT_MAX ? Z_NO_FLUSH : Z_SYNC_FLUSH;
        d->tx.next_in = (Bytef *)(uintptr_t)in;
        d->tx.avail_in = chunk;
        for (;;) {
            long long r = room(out, want);
            if (r < 0) {
                rc = (int)r;
                break;
            }
            want = out->len - orig > STEP ? out->len - orig : STEP;
            d->tx.next_out = (Bytef *)out->data + out->len;
            d->tx.avail_out = (uInt)r;
            int zr = deflate(&d->tx, flush);
            out->len += (size_t)r - d->tx.avail_out;
            if (zr == Z_STREAM_ERROR) {
                rc = CIPC_EINTERNAL;
                break;
            }
            /* Z_OK or Z_BUF_ERROR (nothing left to do): done once output room is left. */
            if (d->tx.avail_out != 0)
                break;
        }
        if (rc != 0)
            break;
        if (d->tx.avail_in != 0) {
            rc = CIPC_EINTERNAL;
            break;
        }
        in += chunk;
        left -= chunk;
        if (flush == Z_SYNC_FLUSH)
            break;
    }
    /* A sync flush ends the output with an empty stored block: 00 00 FF FF after the
       header bits, which RFC 7692 7.2.1 removes. */
    if (rc == 0 && (out->len - orig < 5 || memcmp(out->data + out->len - 4, tail, 4) != 0))
        rc = CIPC_EINTERNAL;
    if (rc != 0) {
        /* Nothing was sent: a fresh compressor stays consistent with the peer whatever
           its window holds, since its output never refers back. */
        deflateReset(&d->tx);
        out->len = orig;
        if (out->data)
            out->data[orig] = '\0';
        return rc;
    }
    out->len -= 4;
    out->data[out->len] = '\0';
    if (d->tx_reset)
        deflateReset(&d->tx);
    return 0;
}

/* Inflate a new deflate stream that keeps the window of the one that ended (for context
 * takeover across a BFINAL block). Returns 0 or a negative code. Called by feed(). */
static int restart_keep_window(struct cipc__ws_deflate *d)
{
    unsigned char *win = malloc(32768);
    uInt len = 0;
    if (!win)
        return -ENOMEM;
    int zr = inflateGetDictionary(&d->rx, win, &len);
    if (zr == Z_OK)
        zr = inflateReset(&d->rx);
    if (zr == Z_OK && len)
        zr = inflateSetDictionary(&d->rx, win, len);
    free(win);
    return zr == Z_OK ? 0 : zerr(zr);
}

/* Inflate in[0..n) into out under max_total. `is_tail` marks the 00 00 FF FF tail, which is
 * dropped when the stream has ended. Returns 0 or a negative code. Called by
 * cipc__ws_inflate_feed(). */
static int feed(struct cipc__ws_deflate *d, const unsigned char *in, size_t n, bool is_tail,
                struct cipc_buf *out, size_t max_total)
{
    size_t left = n;
    for (;;) {
        if (d->rx_ended) {
            if (is_tail || left == 0)
                return 0;
            /* More data after a BFINAL block: a new deflate stream. */
            int rc = d->rx_reset ? (inflateReset(&d->rx) == Z_OK ? 0 : CIPC_EINTERNAL)
                                 : restart_keep_window(d);
            if (rc < 0)
                return rc;
            d->rx_ended = false;
        }
        if (out->len > max_total)
            return CIPC_ETOOBIG;
        /* Room up to one byte past max_total, so reaching it is seen. */
        size_t space = max_total - out->len;
        space = space == SIZE_MAX ? SIZE_MAX : space + 1;
        long long r = room(out, space < STEP ? space : STEP);
        if (r < 0)
            return (int)r;
        uInt avail = (unsigned long long)r > space ? (uInt)space : (uInt)r;
        uInt chunk = left > UINT_MAX ? UINT_MAX : (uInt)left;
        d->rx.next_in = (Bytef *)(uintptr_t)in;
        d->rx.avail_in = chunk;
        d->rx.next_out = (Bytef *)out->data + out->len;
        d->rx.avail_out = avail;
        int zr = inflate(&d->rx, Z_SYNC_FLUSH);
        out->len += avail - d->rx.avail_out;
        out->data[out->len] = '\0';
        in += chunk - d->rx.avail_in;
        left -= chunk - d->rx.avail_in;
        if (out->len > max_total)
            return CIPC_ETOOBIG;
        switch (zr) {
        case Z_STREAM_END:
            d->rx_ended = true;
            continue;
        case Z_OK:
        case Z_BUF_ERROR: /* no progress possible: more input needed (or none left) */
            break;
        case Z_DATA_ERROR:
        case Z_NEED_DICT:
            return CIPC_EPROTO;
        default:
            return zerr(zr);
        }
        /* Done when the input is used up and zlib had output room to spare (so nothing
           is pending inside it). */
        if (left == 0 && d->rx.avail_out != 0)
            return 0;
        if (zr == Z_BUF_ERROR && d->rx.avail_out != 0)
            return CIPC_EINTERNAL; /* cannot happen: input left and room, yet no progress */
    }
}

int cipc__ws_inflate_feed(struct cipc__ws_deflate *d, const void *p, size_t n, bool fin,
                          struct cipc_buf *out, size_t max_total)
{
    if (d->rx_err)
        return d->rx_err;
    if (!d->rx_live) {
        memset(&d->rx, 0, sizeof d->rx);
        int zr = inflateInit2(&d->rx, -15);
        if (zr != Z_OK)
            return zerr(zr); /* not sticky: nothing was consumed */
        d->rx_live = true;
        d->rx_ended = false;
    }
    int rc = 0;
    d->rx_mid = !fin;
    if (n) {
        d->rx_any = true;
        rc = feed(d, p, n, false, out, max_total);
    }
    if (rc == 0 && fin) {
        if (d->rx_any) {
            rc = feed(d, tail, sizeof tail, true, out, max_total);
            /* The message must end between blocks: bit 7 of data_type is set when inflate
               stopped right after a block (zlib.h), and an ended stream is complete. */
            if (rc == 0 && !d->rx_ended && !(d->rx.data_type & 128))
                rc = CIPC_EPROTO;
        }
        if (rc == 0) {
            d->rx_any = false;
            if (d->rx_reset) {
                if (inflateReset(&d->rx) != Z_OK)
                    rc = CIPC_EINTERNAL;
                d->rx_ended = false;
            } else if (d->rx_ended) {
                rc = restart_keep_window(d);
                d->rx_ended = false;
            }
        }
    }
    if (rc != 0)
        d->rx_err = rc;
    return rc;
}
