/* Proves streaming against a real peer: a 50 MiB chunked download through on_body
 * arrives whole and in order while peak RSS grows by less than 20 MiB; the same into a
 * file with download_path; the buffered-body limit does not apply to streamed bodies;
 * on_body returning non-zero aborts with CIPC_EABORTED; a 20 MiB upload from a file is
 * streamed (hash checked, small RSS growth); only the final body reaches on_body or the
 * file (not those of redirects or retried attempts). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cipc/http_client.h"
#include "peer.h"

#define MIB (1024 * 1024)

#define RSS_LIMIT_KB (20 * 1024)

static peer P;

struct sink {
    uint64_t bytes;
    uint64_t calls;
    uint64_t bad_at;      /* first offset where the pattern was wrong, or UINT64_MAX */
    uint64_t abort_after; /* return non-zero once this many bytes arrived (0: never) */
    int calls_after_abort;
    int aborted;
};

static int on_body(const void *data, size_t len, void *ud)
{
    struct sink *k = ud;
    const unsigned char *p = data;
    if (k->aborted)
        k->calls_after_abort++;
    k->calls++;
    for (size_t i = 0; i < len; i++)
        if (p[i] != peer_pattern_byte(k->bytes + i) && k->bad_at == UINT64_MAX)
            k->bad_at = k->bytes + i;
    k->bytes += len;
    if (k->abort_after && k->bytes >= k->abort_after) {
        k->aborted = 1;
        return 1;
    }
    return 0;
}

static cipc_session *session_with(cipc_session_opts o)
{
    cipc_session *s = NULL;
    o.base_url = P.base_url;
    CHECK_RC(cipc_session_new(&o, &s), 0, "cipc_session_new");
    return s;
}

/* Reset the peak RSS and return the baseline to compare VmHWM against later. */
static long rss_baseline(void)
{
    return peer_reset_peak_rss() == 0 ? peer_rss_kb() : peer_peak_rss_kb();
}

static void check_rss(const char *what, long base_kb)
{
    long grow = peer_peak_rss_kb() - base_kb;
    fprintf(stderr, "%s: peak RSS grew by %ld KiB (limit %d KiB)\n", what, grow, RSS_LIMIT_KB);
    CHECK_INT(grow, <, RSS_LIMIT_KB);
}

static void test_on_body(cipc_session *s)
{
    struct sink k = {.bad_at = UINT64_MAX};
    cipc_request_opts o = {.size = sizeof o, .on_body = on_body, .on_body_ud = &k};
    cipc_response *r = NULL;
    long base = rss_baseline();
    CHECK_RC(cipc_get(s, "/stream?mb=50", &o, &r), 0, cipc_session_errmsg(s));
    check_rss("50 MiB to on_body", base);
    CHECK_INT(cipc_response_status(r), ==, 200);
    CHECK_STR(cipc_response_header(r, "Transfer-Encoding"), "chunked");
    CHECK_INT(k.bytes, ==, 50ull * MIB);
    CHECK_INT(k.bad_at, ==, UINT64_MAX);
    CHECK_INT(k.calls, >, 1);
    size_t len = 99;
    cipc_response_body(r, &len);
    CHECK_INT(len, ==, 0);
    cipc_response_free(r);

    /* A Content-Length body too. */
    k = (struct sink){.bad_at = UINT64_MAX};
    CHECK_RC(cipc_get(s, "/big?mb=3&kb=7", &o, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(k.bytes, ==, 3ull * MIB + 7 * 1024);
    CHECK_INT(k.bad_at, ==, UINT64_MAX);
    cipc_response_free(r);

    /* An empty body. */
    k = (struct sink){.bad_at = UINT64_MAX};
    CHECK_RC(cipc_get(s, "/stream?mb=0", &o, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(k.bytes, ==, 0);
    cipc_response_free(r);
}

static void test_limit_is_for_buffering(void)
{
    cipc_session *s = session_with((cipc_session_opts){.max_response_bytes = MIB});
    struct sink k = {.bad_at = UINT64_MAX};
    cipc_request_opts o = {.size = sizeof o, .on_body = on_body, .on_body_ud = &k};
    cipc_response *r = NULL;
    CHECK_RC(cipc_get(s, "/big?mb=4", &o, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(k.bytes, ==, 4ull * MIB);
    cipc_response_free(r);
    cipc_session_free(s);
}

static void test_abort(cipc_session *s)
{
    struct sink k = {.bad_at = UINT64_MAX, .abort_after = MIB};
    cipc_request_opts o = {.size = sizeof o, .on_body = on_body, .on_body_ud = &k};
    cipc_response *r = (cipc_response *)&r;
    CHECK_RC(cipc_get(s, "/stream?mb=50", &o, &r), CIPC_EABORTED, cipc_session_errmsg(s));
    CHECK(r == NULL);
    CHECK(k.aborted);
    CHECK_INT(k.calls_after_abort, ==, 0);
    CHECK_INT(k.bytes, <, 50ull * MIB);
    /* The session goes on working. */
    json_t *j = peer_get_json(s, "/users/1", 200);
    json_decref(j);
}

static void test_download_path(cipc_session *s)
{
    char path[] = "/tmp/cipc-download-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    cipc_request_opts o = {.size = sizeof o, .download_path = path};
    cipc_response *r = NULL;
    long base = rss_baseline();
    CHECK_RC(cipc_get(s, "/stream?mb=50", &o, &r), 0, cipc_session_errmsg(s));
    check_rss("50 MiB to download_path", base);
    CHECK_INT(cipc_response_status(r), ==, 200);
    size_t len = 99;
    cipc_response_body(r, &len);
    CHECK_INT(len, ==, 0);
    cipc_response_free(r);

    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK_INT(st.st_size, ==, 50ll * MIB);
    fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    static unsigned char buf[256 * 1024];
    uint64_t off = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != peer_pattern_byte(off + (uint64_t)i))
                CHECK_INT(off + (uint64_t)i, ==, UINT64_MAX);
        off += (uint64_t)n;
    }
    close(fd);
    CHECK_INT(off, ==, 50ull * MIB);

    /* An existing file is replaced, not appended to. */
    CHECK_RC(cipc_get(s, "/big?kb=5", &o, &r), 0, cipc_session_errmsg(s));
    cipc_response_free(r);
    CHECK(stat(path, &st) == 0);
    CHECK_INT(st.st_size, ==, 5 * 1024);
    unlink(path);
}

static void test_upload_streamed(cipc_session *s)
{
    char path[] = "/tmp/cipc-upload-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    static unsigned char buf[64 * 1024];
    uint64_t total = 20ull * MIB;
    peer_sha256 h;
    char hex[65];
    peer_sha256_init(&h);
    for (uint64_t off = 0; off < total; off += sizeof buf) {
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = (unsigned char)((off + i) * 2654435761u >> 13);
        CHECK_INT(write(fd, buf, sizeof buf), ==, sizeof buf);
        peer_sha256_update(&h, buf, sizeof buf);
    }
    close(fd);
    peer_sha256_hex(&h, hex);

    cipc_request_opts o = {.size = sizeof o, .upload_path = path};
    cipc_response *r = NULL;
    long base = rss_baseline();
    CHECK_RC(cipc_post(s, "/upload", &o, &r), 0, cipc_session_errmsg(s));
    check_rss("20 MiB from upload_path", base);
    CHECK_INT(cipc_response_status(r), ==, 200);
    json_t *j = peer_json(r);
    CHECK_INT(peer_jint(j, "bytes"), ==, total);
    CHECK_STR(peer_jstr(j, "sha256"), hex);
    json_decref(j);
    cipc_response_free(r);
    unlink(path);
}

/* Collects a small streamed body. */
struct text {
    char buf[256];
    size_t len;
};

static int collect(const void *data, size_t len, void *ud)
{
    struct text *t = ud;
    CHECK_INT(t->len + len, <, sizeof t->buf);
    memcpy(t->buf + t->len, data, len);
    t->len += len;
    t->buf[t->len] = '\0';
    return 0;
}

static int64_t file_size(const char *path)
{
    struct stat st;
    CHECK(stat(path, &st) == 0);
    return (int64_t)st.st_size;
}

/* Only the final response's body is streamed: not the bodies of redirects, nor those of
 * attempts that were retried. */
static void test_only_final_body(void)
{
    cipc_session *s = session_with(
        (cipc_session_opts){.retry = {.max_attempts = 3, .base_ms = 10, .cap_ms = 20}});
    struct text t = {{0}, 0};
    cipc_request_opts o = {.size = sizeof o, .on_body = collect, .on_body_ud = &t};
    cipc_response *r = NULL;
    CHECK_RC(cipc_get(s, "/redirect/2", &o, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_redirects(r), ==, 2);
    CHECK_STR(t.buf, "{\"redirected\": true}");
    cipc_response_free(r);

    t.len = 0;
    t.buf[0] = '\0';
    CHECK_RC(cipc_get(s, "/flaky/stream-retry?fail=2", &o, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_attempts(r), ==, 3);
    CHECK_STR(t.buf, "{\"attempts\": 3}");
    cipc_response_free(r);

    char path[] = "/tmp/cipc-download-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    o = (cipc_request_opts){.size = sizeof o, .download_path = path};
    CHECK_RC(cipc_get(s, "/flaky/file-retry?fail=2", &o, &r), 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_attempts(r), ==, 3);
    cipc_response_free(r);
    CHECK_INT(file_size(path), ==, strlen("{\"attempts\": 3}"));
    CHECK_RC(cipc_get(s, "/redirect/3", &o, &r), 0, cipc_session_errmsg(s));
    cipc_response_free(r);
    CHECK_INT(file_size(path), ==, strlen("{\"redirected\": true}"));
    /* A failed transfer reports the error (the file's content is then unspecified). */
    CHECK_RC(cipc_get(s, "/truncated", &o, &r), CIPC_ETRUNCATED, cipc_session_errmsg(s));
    unlink(path);
    cipc_session_free(s);
}

static void test_buffered_big(cipc_session *s)
{
    cipc_response *r = NULL;
    CHECK_RC(cipc_get(s, "/stream?mb=8", NULL, &r), 0, cipc_session_errmsg(s));
    size_t len = 0;
    const unsigned char *p = cipc_response_body(r, &len);
    CHECK_INT(len, ==, 8 * MIB);
    for (size_t i = 0; i < len; i++)
        if (p[i] != peer_pattern_byte(i))
            CHECK_INT(i, ==, SIZE_MAX);
    cipc_response_free(r);
}

int main(void)
{
    peer_clear_proxy_env();
    CHECK(peer_start(&P) == 0);
    cipc_session *s = session_with((cipc_session_opts){0});
    /* Warm up (connection, libcurl's buffers) before measuring memory. */
    json_decref(peer_get_json(s, "/users/1", 200));

    test_on_body(s);
    test_download_path(s);
    test_upload_streamed(s);
    test_limit_is_for_buffering();
    test_abort(s);
    test_buffered_big(s);
    test_only_final_body();

    cipc_session_free(s);
    peer_stop(&P);
    return 0;
}
