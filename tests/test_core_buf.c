/* Proves that cipc_buf appends, formats (short and > 256-byte output), consumes, resets,
 * steals and frees as documented, and keeps its bytes NUL-terminated throughout. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "check.h"
#include "cipc/buf.h"

/* The invariant of a buffer that holds bytes: data[len] == '\0' and len < cap. */
static void check_terminated(const cipc_buf *b)
{
    CHECK(b->data != NULL);
    CHECK_INT(b->len, <, b->cap);
    CHECK_INT(b->data[b->len], ==, '\0');
}

static void test_init_and_free(void)
{
    cipc_buf b = CIPC_BUF_INIT;
    CHECK(b.data == NULL);
    CHECK_INT(b.len, ==, 0);
    CHECK_INT(b.cap, ==, 0);
    /* An empty buffer can be reset, consumed and freed. */
    cipc_buf_reset(&b);
    cipc_buf_consume(&b, 10);
    CHECK_INT(b.len, ==, 0);
    cipc_buf_free(&b);
    CHECK(b.data == NULL);
    cipc_buf_free(NULL);

    /* Freed buffers are empty and reusable. */
    CHECK_INT(cipc_buf_append_str(&b, "x"), ==, 0);
    cipc_buf_free(&b);
    CHECK(b.data == NULL);
    CHECK_INT(b.len, ==, 0);
    CHECK_INT(b.cap, ==, 0);
    CHECK_INT(cipc_buf_append_str(&b, "again"), ==, 0);
    CHECK_STR(b.data, "again");
    cipc_buf_free(&b);
}

static void test_append(void)
{
    cipc_buf b = CIPC_BUF_INIT;
    CHECK_INT(cipc_buf_append(&b, "abc", 3), ==, 0);
    check_terminated(&b);
    CHECK_MEM(b.data, b.len, "abc");
    CHECK_INT(cipc_buf_append_str(&b, "def"), ==, 0);
    check_terminated(&b);
    CHECK_STR(b.data, "abcdef");
    /* Zero bytes (even from NULL) change nothing but leave a valid string. */
    CHECK_INT(cipc_buf_append(&b, NULL, 0), ==, 0);
    CHECK_INT(cipc_buf_append_str(&b, ""), ==, 0);
    CHECK_STR(b.data, "abcdef");
    /* Embedded NUL bytes are kept and counted. */
    CHECK_INT(cipc_buf_append(&b, "\0z", 2), ==, 0);
    CHECK_INT(b.len, ==, 8);
    CHECK(memcmp(b.data, "abcdef\0z", 8) == 0);
    check_terminated(&b);

    /* Many appends grow the buffer and keep every byte in order. */
    cipc_buf big = CIPC_BUF_INIT;
    for (int i = 0; i < 10000; i++) {
        char c = (char)('a' + i % 26);
        CHECK_INT(cipc_buf_append(&big, &c, 1), ==, 0);
        check_terminated(&big);
    }
    CHECK_INT(big.len, ==, 10000);
    for (int i = 0; i < 10000; i++)
        CHECK_INT(big.data[i], ==, 'a' + i % 26);
    cipc_buf_free(&big);

    /* Appending the buffer's own bytes after a reserve (no reallocation in between). */
    CHECK_INT(cipc_buf_reserve(&b, b.len), ==, 0);
    size_t n = b.len;
    CHECK_INT(cipc_buf_append(&b, b.data, n), ==, 0);
    CHECK_INT(b.len, ==, 2 * n);
    CHECK(memcmp(b.data, b.data + n, n) == 0);
    cipc_buf_free(&b);
}

static void test_reserve(void)
{
    cipc_buf b = CIPC_BUF_INIT;
    CHECK_INT(cipc_buf_reserve(&b, 100), ==, 0);
    CHECK_INT(b.len, ==, 0);
    CHECK_INT(b.cap, >=, 101);
    check_terminated(&b);
    char *before = b.data;
    size_t cap = b.cap;
    /* Room that is already there does not reallocate. */
    for (int i = 0; i < 100; i++)
        CHECK_INT(cipc_buf_append(&b, "x", 1), ==, 0);
    CHECK(b.data == before);
    CHECK_INT(b.cap, ==, cap);
    check_terminated(&b);

    /* An impossible size fails with -ENOMEM and leaves the buffer as it was. */
    CHECK_INT(cipc_buf_reserve(&b, SIZE_MAX), ==, -ENOMEM);
    CHECK_INT(cipc_buf_reserve(&b, SIZE_MAX - b.len), ==, -ENOMEM);
    CHECK_INT(cipc_buf_append(&b, "y", SIZE_MAX), ==, -ENOMEM);
    CHECK(b.data == before);
    CHECK_INT(b.len, ==, 100);
    CHECK_INT(b.cap, ==, cap);
    check_terminated(&b);
    cipc_buf_free(&b);
}

static void test_printf(void)
{
    cipc_buf b = CIPC_BUF_INIT;
    CHECK_INT(cipc_buf_printf(&b, "%d-%s", 42, "x"), ==, 0);
    CHECK_STR(b.data, "42-x");
    CHECK_INT(b.len, ==, 4);
    CHECK_INT(cipc_buf_printf(&b, "%s", ""), ==, 0);
    CHECK_INT(b.len, ==, 4);
    CHECK_INT(cipc_buf_printf(&b, "[%5.1f]", 2.25), ==, 0);
    CHECK_STR(b.data, "42-x[  2.2]");
    check_terminated(&b);
    cipc_buf_free(&b);

    /* Outputs around and well beyond the 256-byte stack buffer used internally. */
    static const size_t sizes[] = {254, 255, 256, 257, 300, 1000, 70000};
    char *src = malloc(70001);
    CHECK(src != NULL);
    for (size_t i = 0; i < 70000; i++)
        src[i] = (char)('A' + i % 23);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        cipc_buf p = CIPC_BUF_INIT;
        CHECK_INT(cipc_buf_append_str(&p, "pre:"), ==, 0);
        CHECK_INT(cipc_buf_printf(&p, "%.*s|%zu", (int)n, src, n), ==, 0);
        check_terminated(&p);
        char tail[32];
        int tn = snprintf(tail, sizeof tail, "|%zu", n);
        CHECK_INT(p.len, ==, 4 + n + (size_t)tn);
        CHECK(memcmp(p.data, "pre:", 4) == 0);
        CHECK(memcmp(p.data + 4, src, n) == 0);
        CHECK_STR(p.data + 4 + n, tail);
        CHECK_INT(strlen(p.data), ==, p.len);
        cipc_buf_free(&p);
    }
    free(src);

    /* A conversion error (a wide character the C locale cannot encode) gives -EINVAL and
     * leaves the buffer unchanged. */
    static const wchar_t euro[] = {0x20AC, 0};
    cipc_buf e = CIPC_BUF_INIT;
    CHECK_INT(cipc_buf_append_str(&e, "keep"), ==, 0);
    CHECK_INT(cipc_buf_printf(&e, "%ls", euro), ==, -EINVAL);
    CHECK_STR(e.data, "keep");
    CHECK_INT(e.len, ==, 4);
    cipc_buf_free(&e);
}

static void test_consume_reset(void)
{
    cipc_buf b = CIPC_BUF_INIT;
    CHECK_INT(cipc_buf_append_str(&b, "0123456789"), ==, 0);
    cipc_buf_consume(&b, 0);
    CHECK_STR(b.data, "0123456789");
    cipc_buf_consume(&b, 3);
    CHECK_STR(b.data, "3456789");
    CHECK_INT(b.len, ==, 7);
    check_terminated(&b);
    cipc_buf_consume(&b, 6);
    CHECK_STR(b.data, "9");
    cipc_buf_consume(&b, 1);
    CHECK_INT(b.len, ==, 0);
    check_terminated(&b);
    CHECK_INT(cipc_buf_append_str(&b, "abc"), ==, 0);
    cipc_buf_consume(&b, 1000);
    CHECK_INT(b.len, ==, 0);
    check_terminated(&b);

    /* reset keeps the allocation. */
    CHECK_INT(cipc_buf_append_str(&b, "hello world"), ==, 0);
    char *data = b.data;
    size_t cap = b.cap;
    cipc_buf_reset(&b);
    CHECK_INT(b.len, ==, 0);
    CHECK(b.data == data);
    CHECK_INT(b.cap, ==, cap);
    CHECK_STR(b.data, "");
    CHECK_INT(cipc_buf_append_str(&b, "x"), ==, 0);
    CHECK_STR(b.data, "x");
    cipc_buf_free(&b);
}

static void test_steal(void)
{
    /* From an empty, never-allocated buffer: an owned "" and len 0. */
    cipc_buf b = CIPC_BUF_INIT;
    size_t len = 99;
    char *s = cipc_buf_steal(&b, &len);
    CHECK(s != NULL);
    CHECK_STR(s, "");
    CHECK_INT(len, ==, 0);
    CHECK(b.data == NULL);
    free(s);

    /* From a buffer with bytes: they move to the caller and the buffer is empty. */
    CHECK_INT(cipc_buf_append_str(&b, "owned bytes"), ==, 0);
    s = cipc_buf_steal(&b, &len);
    CHECK(s != NULL);
    CHECK_STR(s, "owned bytes");
    CHECK_INT(len, ==, 11);
    CHECK(b.data == NULL);
    CHECK_INT(b.len, ==, 0);
    CHECK_INT(b.cap, ==, 0);
    free(s);

    /* len may be NULL; the buffer stays usable. */
    CHECK_INT(cipc_buf_append_str(&b, "again"), ==, 0);
    s = cipc_buf_steal(&b, NULL);
    CHECK_STR(s, "again");
    free(s);
    CHECK_INT(cipc_buf_append_str(&b, "third"), ==, 0);
    CHECK_STR(b.data, "third");
    cipc_buf_free(&b);
}

int main(void)
{
    test_init_and_free();
    test_append();
    test_reserve();
    test_printf();
    test_consume_reset();
    test_steal();
    return 0;
}
