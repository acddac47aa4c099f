/* The WebSocket frame codec: header encoding and decoding, masking, UTF-8 validation and
 * close payloads. See ws/frame.h for what is accepted. */
#include <errno.h>
#include <string.h>

#include "ws/frame.h"

size_t cipc__ws_header_encode(uint8_t out[CIPC__WS_MAX_HEADER], unsigned opcode, bool fin,
                              bool rsv1, uint64_t len, const uint8_t *mask_key)
{
    size_t n = 2;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0f));
    uint8_t mbit = mask_key ? 0x80 : 0;
    if (len < 126) {
        out[1] = (uint8_t)(mbit | len);
    } else if (len <= 0xffff) {
        out[1] = (uint8_t)(mbit | 126);
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = (uint8_t)(mbit | 127);
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask_key) {
        memcpy(out + n, mask_key, 4);
        n += 4;
    }
    return n;
}

size_t cipc__ws_header_size(uint8_t b0, uint8_t b1)
{
    (void)b0;
    size_t n = 2;
    if ((b1 & 0x7f) == 126)
        n += 2;
    else if ((b1 & 0x7f) == 127)
        n += 8;
    if (b1 & 0x80)
        n += 4;
    return n;
}

int cipc__ws_header_decode(const uint8_t *p, size_t n, struct cipc__ws_header *h)
{
    if (n < 2)
        return CIPC_EAGAIN;
    size_t need = cipc__ws_header_size(p[0], p[1]);
    if (n < need)
        return CIPC_EAGAIN;
    h->fin = (p[0] & 0x80) != 0;
    h->rsv1 = (p[0] & 0x40) != 0;
    h->rsv2 = (p[0] & 0x20) != 0;
    h->rsv3 = (p[0] & 0x10) != 0;
    h->opcode = p[0] & 0x0f;
    h->masked = (p[1] & 0x80) != 0;
    unsigned l7 = p[1] & 0x7f;
    size_t pos = 2;
    if (l7 == 126) {
        h->len = (uint64_t)p[2] << 8 | p[3];
        if (h->len < 126)
            return CIPC_EPROTO;
        pos = 4;
    } else if (l7 == 127) {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
            v = v << 8 | p[2 + i];
        if (v >> 63 || v <= 0xffff)
            return CIPC_EPROTO;
        h->len = v;
        pos = 10;
    } else {
        h->len = l7;
    }
    if (h->masked)
        memcpy(h->key, p + pos, 4);
    else
        memset(h->key, 0, 4);
    return (int)need;
}

/* Word at a time: a byte loop up to 8-byte alignment, then 8 bytes per step through
 * memcpy (no unaligned or aliasing UB; compilers turn it into plain loads and stores),
 * then the tail. The key is rotated by the payload offset, and stays in phase across
 * 8-byte steps since 8 is a multiple of 4. */
void cipc__ws_mask(uint8_t *p, size_t n, const uint8_t key[4], size_t offset)
{
    size_t i = 0, k = offset & 3;
    while (i < n && ((uintptr_t)(p + i) & 7) != 0) {
        p[i++] ^= key[k];
        k = (k + 1) & 3;
    }
    if (n - i >= 8) {
        uint8_t kb[8];
        for (size_t j = 0; j < 8; j++)
            kb[j] = key[(k + j) & 3];
        uint64_t kw;
        memcpy(&kw, kb, 8);
        for (; n - i >= 32; i += 32) {
            uint64_t w[4];
            memcpy(w, p + i, 32);
            w[0] ^= kw;
            w[1] ^= kw;
            w[2] ^= kw;
            w[3] ^= kw;
            memcpy(p + i, w, 32);
        }
        for (; n - i >= 8; i += 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            w ^= kw;
            memcpy(p + i, &w, 8);
        }
    }
    while (i < n) {
        p[i++] ^= key[k];
        k = (k + 1) & 3;
    }
}

int cipc__ws_frame_append(struct cipc_buf *out, unsigned opcode, bool fin, bool rsv1,
                          const void *data, size_t n, const uint8_t *mask_key)
{
    uint8_t h[CIPC__WS_MAX_HEADER];
    size_t hl = cipc__ws_header_encode(h, opcode, fin, rsv1, n, mask_key);
    if (n > SIZE_MAX - hl)
        return -ENOMEM;
    int rc = cipc_buf_reserve(out, hl + n);
    if (rc < 0)
        return rc;
    uint8_t *dst = (uint8_t *)out->data + out->len;
    memcpy(dst, h, hl);
    if (n) {
        memcpy(dst + hl, data, n);
        if (mask_key)
            cipc__ws_mask(dst + hl, n, mask_key, 0);
    }
    out->len += hl + n;
    out->data[out->len] = '\0';
    return 0;
}

/* UTF-8. For a lead byte, utf8_lead() returns the number of continuation bytes that
 * follow, or -1 if the byte cannot start a character, and sets the range allowed for the
 * first continuation byte, narrowed for E0, ED, F0 and F4 so that overlongs, surrogates
 * and code points above U+10FFFF fail at their second byte. Called by cipc__utf8_feed(). */
#define UTF8_FAILED 4u

static int utf8_lead(uint8_t b, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xbf;
    if (b < 0x80)
        return 0;
    if (b < 0xc2)
        return -1; /* a continuation byte, or C0/C1 (overlong 2-byte forms) */
    if (b < 0xe0)
        return 1;
    if (b < 0xf0) {
        if (b == 0xe0)
            *lo = 0xa0;
        else if (b == 0xed)
            *hi = 0x9f;
        return 2;
    }
    if (b < 0xf5) {
        if (b == 0xf0)
            *lo = 0x90;
        else if (b == 0xf4)
            *hi = 0x8f;
        return 3;
    }
    return -1;
}

void cipc__utf8_init(struct cipc__utf8 *u)
{
    u->state = 0;
    u->lo = 0x80;
    u->hi = 0xbf;
}

int cipc__utf8_feed(struct cipc__utf8 *u, const uint8_t *p, size_t n)
{
    uint32_t need = u->state;
    uint8_t lo = u->lo, hi = u->hi;
    size_t i = 0;
    if (need == UTF8_FAILED)
        return -1;
    while (i < n) {
        if (need == 0) {
            /* ASCII runs, 8 bytes at a time. */
            while (n - i >= 8) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                if (w & UINT64_C(0x8080808080808080))
                    break;
                i += 8;
            }
            while (i < n && p[i] < 0x80)
                i++;
            if (i == n)
                break;
            int c = utf8_lead(p[i], &lo, &hi);
            if (c < 0)
                goto fail;
            need = (uint32_t)c;
            i++;
            continue;
        }
        uint8_t b = p[i];
        if (b < lo || b > hi)
            goto fail;
        lo = 0x80;
        hi = 0xbf;
        need--;
        i++;
    }
    u->state = need;
    u->lo = lo;
    u->hi = hi;
    return 0;
fail:
    u->state = UTF8_FAILED;
    return -1;
}

bool cipc__utf8_complete(const struct cipc__utf8 *u)
{
    return u->state == 0;
}

bool cipc__utf8_valid(const void *p, size_t n)
{
    struct cipc__utf8 u;
    cipc__utf8_init(&u);
    return cipc__utf8_feed(&u, p, n) == 0 && cipc__utf8_complete(&u);
}

bool cipc__ws_close_code_sendable(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

int cipc__ws_close_parse(const uint8_t *p, size_t n, uint16_t *code, const char **reason,
                         size_t *reason_len)
{
    *reason = "";
    *reason_len = 0;
    if (n == 0) {
        *code = CIPC__WS_CLOSE_NO_STATUS;
        return 0;
    }
    if (n == 1) {
        *code = CIPC__WS_CLOSE_PROTOCOL;
        return CIPC_EPROTO;
    }
    unsigned c = (unsigned)p[0] << 8 | p[1];
    if (!cipc__ws_close_code_sendable(c)) {
        *code = CIPC__WS_CLOSE_PROTOCOL;
        return CIPC_EPROTO;
    }
    if (!cipc__utf8_valid(p + 2, n - 2)) {
        *code = CIPC__WS_CLOSE_INVALID_DATA;
        return CIPC_EPROTO;
    }
    *code = (uint16_t)c;
    *reason = (const char *)p + 2;
    *reason_len = n - 2;
    return 0;
}
