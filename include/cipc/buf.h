/* cipc/buf.h -- a growable byte buffer.
 *
 * A cipc_buf is a plain value the caller owns (on the stack or inside a struct). Its
 * bytes are always followed by a NUL that is not counted in `len`, so text can be read
 * as a C string. Zero-initialised (CIPC_BUF_INIT) is an empty, valid buffer.
 *
 * Threading: a buffer belongs to one thread at a time. */
#ifndef CIPC_BUF_H
#define CIPC_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "cipc/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cipc_buf {
    char *data; /* NULL while cap is 0; otherwise data[len] == '\0' */
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated, including room for the NUL */
} cipc_buf;

#define CIPC_BUF_INIT                                                                              \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Make room for at least `extra` more bytes (plus the NUL) without changing len.
 * Returns 0, or -ENOMEM (the buffer is unchanged). */
CIPC_API int cipc_buf_reserve(cipc_buf *b, size_t extra);

/* Append `len` bytes. Ownership: copies `p`. Returns 0 or -ENOMEM (buffer unchanged). */
CIPC_API int cipc_buf_append(cipc_buf *b, const void *p, size_t len);

/* Append a C string (without its NUL). Returns 0 or -ENOMEM. */
CIPC_API int cipc_buf_append_str(cipc_buf *b, const char *s);

/* Append printf-formatted text. Returns 0, -ENOMEM, or -EINVAL on a format error;
 * on error the buffer is unchanged. */
CIPC_API int cipc_buf_printf(cipc_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
CIPC_API int cipc_buf_vprintf(cipc_buf *b, const char *fmt, va_list ap);

/* Remove the first `n` bytes (all of them if n >= len), keeping the rest in order. */
CIPC_API void cipc_buf_consume(cipc_buf *b, size_t n);

/* Set len to 0 and keep the allocation. */
CIPC_API void cipc_buf_reset(cipc_buf *b);

/* Give the bytes to the caller: returns owned memory (free() it; NUL-terminated, never
 * NULL unless out of memory) and leaves `b` empty. `len`, if not NULL, gets the length. */
CIPC_API char *cipc_buf_steal(cipc_buf *b, size_t *len);

/* Free the bytes and leave `b` empty and reusable. NULL does nothing. */
CIPC_API void cipc_buf_free(cipc_buf *b);

#ifdef __cplusplus
}
#endif
#endif
