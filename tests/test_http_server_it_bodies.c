/* Proves request and response bodies arrive intact: a 5 MiB body buffered and echoed
 * (raw socket, SHA-256 compared) and uploaded by curl with Content-Length and chunked;
 * a raw upload of 1000 small chunks; 413 over max_body for curl; streamed chunked
 * responses read raw and by curl, also finished later from another request's handler;
 * files sent with cipc_http_respond_file (small, and 3 MiB through sendfile, to a
 * reader that stalls, pipelined, under HEAD) byte for byte; a missing file is CIPC_EFILE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_helper.h"

#define H         "Host: t\r\n"
#define MAX_BODY  (6u * 1024 * 1024)
#define BIG_BODY  (5u * 1024 * 1024)
#define BIG_FILE  (3u * 1024 * 1024 + 17)
#define SMALL_LEN 1000

static int port;
static char base[64];
static char tmpdir[256];
static char *big, *bigfile, *smallfile; /* contents */
static char big_path[300], small_path[300], bigfile_path[300];

/* GET /file/{name}: the file tmpdir/name, or 404 when it cannot be opened. */
static void h_file(cipc_http_req *req, void *ud)
{
    (void)ud;
    char path[600];
    snprintf(path, sizeof path, "%s/%s", tmpdir, cipc_http_param(req, "name"));
    int rc = cipc_http_respond_file(req, 200, path, "application/octet-stream");
    if (rc == CIPC_EFILE)
        CHECK_INT(cipc_http_respond(req, 404, "text/plain", "no file", 7), ==, 0);
    else
        CHECK_INT(rc, ==, 0);
}

/* GET /stream?n=N&size=S: N chunks of S pattern bytes (seed 3). */
static void h_stream(cipc_http_req *req, void *ud)
{
    (void)ud;
    int n = atoi(cipc_http_query(req, "n"));
    size_t size = (size_t)atol(cipc_http_query(req, "size"));
    char *data = malloc((size_t)n * size + 1);
    CHECK(data != NULL);
    fill_pattern(data, (size_t)n * size, 3);
    CHECK_INT(cipc_http_start(req, 200, "application/octet-stream"), ==, 0);
    for (int i = 0; i < n; i++)
        CHECK_INT(cipc_http_write(req, data + (size_t)i * size, size), ==, 0);
    CHECK_INT(cipc_http_end(req), ==, 0);
    free(data);
}

/* GET /later writes "first" and waits; GET /finish (same worker) writes "second" to
 * it and ends it. */
static cipc_http_req *later;

static void h_later(cipc_http_req *req, void *ud)
{
    (void)ud;
    CHECK(later == NULL);
    CHECK_INT(cipc_http_set_header(req, "X-Later", "1"), ==, 0);
    CHECK_INT(cipc_http_start(req, 200, "text/plain"), ==, 0);
    CHECK_INT(cipc_http_write(req, "first", 5), ==, 0);
    CHECK_INT(cipc_http_set_header(req, "X-Too-Late", "1"), ==, CIPC_EBUSY);
    later = req;
}

static void h_finish(cipc_http_req *req, void *ud)
{
    (void)ud;
    CHECK(later != NULL);
    CHECK_INT(cipc_http_write(later, "second", 6), ==, 0);
    CHECK_INT(cipc_http_end(later), ==, 0);
    later = NULL;
    CHECK_INT(cipc_http_respond(req, 200, "text/plain", "ok", 2), ==, 0);
}

/* Run curl with extra arguments and `url`; returns its stdout ("-w" output). */
static void curl(const char *const *args, const char *path, char *out, size_t size)
{
    const char *argv[32] = {"/usr/bin/curl", "-sS", "--noproxy", "*"};
    int n = 4;
    for (int i = 0; args[i]; i++)
        argv[n++] = args[i];
    char url[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    argv[n++] = url;
    argv[n] = NULL;
    CHECK_INT(prog_run(argv, out, size, 60000), ==, 0);
}

static void check_sha_json(const char *text, size_t len, const char *data)
{
    char hex[65];
    sha256_hex_of(data, len, hex);
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    CHECK(j != NULL);
    CHECK_INT(json_integer_value(json_object_get(j, "len")), ==, len);
    CHECK_STR(json_string_value(json_object_get(j, "sha256")), hex);
    json_decref(j);
}

static void test_echo_big_raw(void)
{
    raw_conn c;
    raw_resp r;
    char head[128];
    raw_open(&c, port);
    int n = snprintf(head, sizeof head, "POST /echo HTTP/1.1\r\n" H "Content-Length: %u\r\n\r\n",
                     BIG_BODY);
    CHECK_INT(raw_send(&c, head, (size_t)n), ==, 0);
    CHECK_INT(raw_send(&c, big, BIG_BODY), ==, 0);
    CHECK_INT(raw_read(&c, &r, 0, 30000), ==, 0);
    CHECK_INT(r.status, ==, 200);
    CHECK_INT(r.body_len, ==, BIG_BODY);
    char h1[65], h2[65];
    sha256_hex_of(big, BIG_BODY, h1);
    sha256_hex_of(r.body, r.body_len, h2);
    CHECK_STR(h2, h1);
    raw_resp_free(&r);
    raw_check_alive(&c, "/file/small.bin");
    raw_close(&c);
}

static void test_upload_curl(void)
{
    char at[310], out[512];
    snprintf(at, sizeof at, "@%s", big_path);
    /* Content-Length (curl also sends Expect: 100-continue for this size). */
    const char *a1[] = {"--data-binary", at, NULL};
    curl(a1, "/sha", out, sizeof out);
    check_sha_json(out, BIG_BODY, big);
    /* Chunked. */
    const char *a2[] = {"-H", "Transfer-Encoding: chunked", "--data-binary", at, NULL};
    curl(a2, "/sha", out, sizeof out);
    check_sha_json(out, BIG_BODY, big);
    /* Echoed back through curl. */
    char outpath[300];
    snprintf(outpath, sizeof outpath, "%s/echoed.bin", tmpdir);
    const char *a3[] = {"-H",    "Expect:", "--data-binary", at,  "-o",
                        outpath, "-w",      "%{http_code}",  NULL};
    curl(a3, "/echo", out, sizeof out);
    CHECK_STR(out, "200");
    size_t len = 0;
    char *got = read_file(outpath, &len);
    CHECK(got != NULL);
    CHECK_INT(len, ==, BIG_BODY);
    CHECK(memcmp(got, big, BIG_BODY) == 0);
    free(got);
    unlink(outpath);
}

static void test_chunked_raw(void)
{
    /* 1000 chunks of 1..2000 bytes, with extensions on some, then trailers. */
    size_t cap = 4u * 1024 * 1024, n = 0, total = 0;
    char *req = malloc(cap);
    CHECK(req != NULL);
    n +=
        (size_t)snprintf(req, cap, "POST /sha HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n");
    uint32_t x = 12345;
    for (int i = 0; i < 1000; i++) {
        x = x * 1103515245u + 12345u;
        size_t len = 1 + (x >> 8) % 2000;
        n += (size_t)snprintf(req + n, cap - n, "%zx%s\r\n", len, i % 7 ? "" : ";ext=1");
        memcpy(req + n, big + total, len);
        n += len;
        total += len;
        memcpy(req + n, "\r\n", 2);
        n += 2;
    }
    n += (size_t)snprintf(req + n, cap - n, "0\r\nX-Sum: 1\r\n\r\n");
    raw_conn c;
    raw_resp r;
    raw_open(&c, port);
    CHECK_INT(raw_send(&c, req, n), ==, 0);
    CHECK_INT(raw_read(&c, &r, 0, 30000), ==, 0);
    CHECK_INT(r.status, ==, 200);
    check_sha_json(r.body, total, big);
    raw_resp_free(&r);
    raw_check_alive(&c, "/file/small.bin");
    raw_close(&c);
    free(req);
}

static void test_too_large(void)
{
    /* curl sends Expect: 100-continue for a 7 MiB body and gets the 413 instead of the
     * 100, without sending the body. */
    size_t len = 7u * 1024 * 1024;
    char path[300], at[310], out[64];
    snprintf(path, sizeof path, "%s/huge.bin", tmpdir);
    char *data = malloc(len);
    CHECK(data != NULL);
    fill_pattern(data, len, 9);
    write_file(path, data, len);
    free(data);
    snprintf(at, sizeof at, "@%s", path);
    const char *a[] = {
        "-H", "Expect: 100-continue", "--data-binary", at, "-o", "/dev/null", "-w", "%{http_code}",
        NULL};
    curl(a, "/echo", out, sizeof out);
    CHECK_STR(out, "413");
    unlink(path);
}

static void test_stream(void)
{
    raw_conn c;
    raw_resp r;
    raw_open(&c, port);
    CHECK_INT(raw_roundtrip(&c, "GET /stream?n=64&size=32768 HTTP/1.1\r\n" H "\r\n", &r, 0), ==,
              200);
    CHECK(r.chunked);
    CHECK_INT(r.clen, ==, -1);
    CHECK_INT(r.chunks, ==, 64);
    CHECK_INT(r.body_len, ==, 64 * 32768);
    char *want = malloc(64 * 32768);
    CHECK(want != NULL);
    fill_pattern(want, 64 * 32768, 3);
    CHECK(memcmp(r.body, want, r.body_len) == 0);
    raw_resp_free(&r);
    raw_check_alive(&c, "/file/small.bin");
    raw_close(&c);

    char outpath[300], out[64];
    snprintf(outpath, sizeof outpath, "%s/stream.bin", tmpdir);
    const char *a[] = {"-o", outpath, "-w", "%{http_code}", NULL};
    curl(a, "/stream?n=64&size=32768", out, sizeof out);
    CHECK_STR(out, "200");
    size_t len = 0;
    char *got = read_file(outpath, &len);
    CHECK(got != NULL);
    CHECK_INT(len, ==, 64 * 32768);
    CHECK(memcmp(got, want, len) == 0);
    free(got);
    free(want);
    unlink(outpath);
}

/* The first chunk arrives before the handler has finished; another request ends it. */
static void test_stream_later(void)
{
    raw_conn a, b;
    raw_resp r;
    raw_open(&a, port);
    CHECK_INT(
        raw_sends(&a, "GET /later HTTP/1.1\r\n" H "\r\nGET /file/small.bin HTTP/1.1\r\n" H "\r\n"),
        ==, 0);
    int64_t end = peer_now_ms() + RAW_TIMEOUT_MS;
    while (raw_find(&a, 0, "\r\n\r\n5\r\nfirst\r\n") < 0)
        CHECK_INT(raw_fill(&a, end), >, 0);
    CHECK(raw_find(&a, 0, "X-Later: 1\r\n") > 0);
    CHECK(raw_find(&a, 0, "X-Too-Late") < 0);
    raw_open(&b, port);
    CHECK_INT(raw_roundtrip(&b, "GET /finish HTTP/1.1\r\n" H "\r\n", &r, 0), ==, 200);
    raw_resp_free(&r);
    CHECK_INT(raw_read(&a, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    CHECK_INT(r.status, ==, 200);
    CHECK_STR(r.body, "firstsecond");
    raw_resp_free(&r);
    /* The pipelined request behind it is answered after it. */
    CHECK_INT(raw_read(&a, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    CHECK_INT(r.body_len, ==, SMALL_LEN);
    raw_resp_free(&r);
    raw_close(&a);
    raw_close(&b);
}

static void check_file_body(const raw_resp *r, const char *data, size_t len)
{
    CHECK_INT(r->status, ==, 200);
    CHECK_INT(r->clen, ==, len);
    CHECK_INT(r->body_len, ==, len);
    CHECK(memcmp(r->body, data, len) == 0);
}

static void test_files(void)
{
    raw_conn c;
    raw_resp r;
    raw_open(&c, port);
    raw_roundtrip(&c, "GET /file/small.bin HTTP/1.1\r\n" H "\r\n", &r, 0);
    check_file_body(&r, smallfile, SMALL_LEN);
    raw_resp_free(&r);
    raw_roundtrip(&c, "GET /file/big.bin HTTP/1.1\r\n" H "\r\n", &r, 0);
    check_file_body(&r, bigfile, BIG_FILE);
    raw_resp_free(&r);
    /* HEAD: the length of the file, no body. */
    CHECK_INT(raw_roundtrip(&c, "HEAD /file/big.bin HTTP/1.1\r\n" H "\r\n", &r, 1), ==, 200);
    CHECK_INT(r.clen, ==, BIG_FILE);
    raw_resp_free(&r);
    /* Pipelined: big, small, big, each complete and in order. */
    CHECK_INT(raw_sends(&c, "GET /file/big.bin HTTP/1.1\r\n" H "\r\n"
                            "GET /file/small.bin HTTP/1.1\r\n" H "\r\n"
                            "GET /file/big.bin HTTP/1.1\r\n" H "\r\n"),
              ==, 0);
    CHECK_INT(raw_read(&c, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    check_file_body(&r, bigfile, BIG_FILE);
    raw_resp_free(&r);
    CHECK_INT(raw_read(&c, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    check_file_body(&r, smallfile, SMALL_LEN);
    raw_resp_free(&r);
    CHECK_INT(raw_read(&c, &r, 0, RAW_TIMEOUT_MS), ==, 0);
    check_file_body(&r, bigfile, BIG_FILE);
    raw_resp_free(&r);
    /* A missing file: CIPC_EFILE, and the handler answers otherwise. */
    CHECK_INT(raw_roundtrip(&c, "GET /file/nope.bin HTTP/1.1\r\n" H "\r\n", &r, 0), ==, 404);
    CHECK_STR(r.body, "no file");
    raw_resp_free(&r);
    raw_close(&c);

    /* A reader that stalls while the socket buffers fill, then reads everything. */
    raw_conn s;
    int small = 4096;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    memset(&s, 0, sizeof s);
    s.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(s.fd >= 0);
    setsockopt(s.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    CHECK_INT(connect(s.fd, (struct sockaddr *)&sa, sizeof sa), ==, 0);
    fcntl(s.fd, F_SETFL, fcntl(s.fd, F_GETFL) | O_NONBLOCK);
    CHECK_INT(raw_sends(&s, "GET /file/big.bin HTTP/1.1\r\n" H "\r\n"), ==, 0);
    poll(NULL, 0, 400); /* the stall itself: not reading for 400 ms */
    CHECK_INT(raw_read(&s, &r, 0, 30000), ==, 0);
    check_file_body(&r, bigfile, BIG_FILE);
    raw_resp_free(&r);
    raw_check_alive(&s, "/file/small.bin");
    raw_close(&s);

    /* curl. */
    char outpath[300], out[64];
    snprintf(outpath, sizeof outpath, "%s/got.bin", tmpdir);
    const char *a[] = {"-o", outpath, "-w", "%{http_code}", NULL};
    curl(a, "/file/big.bin", out, sizeof out);
    CHECK_STR(out, "200");
    size_t len = 0;
    char *got = read_file(outpath, &len);
    CHECK(got != NULL);
    CHECK_INT(len, ==, BIG_FILE);
    CHECK(memcmp(got, bigfile, len) == 0);
    free(got);
    unlink(outpath);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    make_tmpdir(tmpdir, sizeof tmpdir);
    big = malloc(BIG_BODY);
    bigfile = malloc(BIG_FILE);
    smallfile = malloc(SMALL_LEN);
    CHECK(big && bigfile && smallfile);
    fill_pattern(big, BIG_BODY, 1);
    fill_pattern(bigfile, BIG_FILE, 2);
    fill_pattern(smallfile, SMALL_LEN, 4);
    snprintf(big_path, sizeof big_path, "%s/upload.bin", tmpdir);
    snprintf(bigfile_path, sizeof bigfile_path, "%s/big.bin", tmpdir);
    snprintf(small_path, sizeof small_path, "%s/small.bin", tmpdir);
    write_file(big_path, big, BIG_BODY);
    write_file(bigfile_path, bigfile, BIG_FILE);
    write_file(small_path, smallfile, SMALL_LEN);

    srv_thread t;
    srvt_new(&t, (cipc_server_opts){.workers = 1, .max_body = MAX_BODY});
    CHECK_INT(cipc_route(t.srv, "POST", "/echo", h_echo, NULL), ==, 0);
    CHECK_INT(cipc_route(t.srv, "POST", "/sha", h_sha, NULL), ==, 0);
    CHECK_INT(cipc_route(t.srv, "GET", "/file/{name}", h_file, NULL), ==, 0);
    CHECK_INT(cipc_route(t.srv, "GET", "/stream", h_stream, NULL), ==, 0);
    CHECK_INT(cipc_route(t.srv, "GET", "/later", h_later, NULL), ==, 0);
    CHECK_INT(cipc_route(t.srv, "GET", "/finish", h_finish, NULL), ==, 0);
    port = srvt_start(&t);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);

    RUN(test_files);
    RUN(test_stream);
    RUN(test_stream_later);
    RUN(test_too_large);
    RUN(test_chunked_raw);
    RUN(test_echo_big_raw);
    RUN(test_upload_curl);

    srvt_stop(&t, 5000);
    srvt_free(&t);
    unlink(big_path);
    unlink(bigfile_path);
    unlink(small_path);
    rmdir(tmpdir);
    free(big);
    free(bigfile);
    free(smallfile);
    return 0;
}
