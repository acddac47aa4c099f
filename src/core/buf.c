/* Growable byte buffer: doubling growth, always NUL-terminated. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cipc/buf.h"

int cipc_buf_reserve(cipc_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1)
        return -ENOMEM;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    b->data[b->len] = '\0';
    return 0;
}

int cipc_buf_append(cipc_buf *b, const void *p, size_t len)
{
    int rc = cipc_buf_reserve(b, len);
    if (rc < 0)
        return rc;
    if (len)
        memcpy(b->data + b->len, p, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int cipc_buf_append_str(cipc_buf *b, const char *s)
{
    return cipc_buf_append(b, s, strlen(s));
}

int cipc_buf_vprintf(cipc_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return -EINVAL;
    int rc = cipc_buf_reserve(b, (size_t)n);
    if (rc < 0)
        return rc;
    if ((size_t)n < sizeof small)
        memcpy(b->data + b->len, small, (size_t)n + 1);
    else
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int cipc_buf_printf(cipc_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = cipc_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void cipc_buf_consume(cipc_buf *b, size_t n)
{
    if (n >= b->len) {
        cipc_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

void cipc_buf_reset(cipc_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *cipc_buf_steal(cipc_buf *b, size_t *len)
{
    if (!b->data && cipc_buf_reserve(b, 0) < 0)
        return NULL;
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void cipc_buf_free(cipc_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
