/* tests/peer.h -- header-only helpers for integration tests that talk to a real peer:
 * start and stop tests/peers/http_server.py, make a self-signed certificate, read the
 * process's (peak) RSS, and compute SHA-256 digests.
 *
 *     peer p;
 *     CHECK(peer_start(&p, NULL) == 0);          (or peer_start_tls(&p, cert, key))
 *     ... requests to p.base_url ("http://127.0.0.1:<port>") ...
 *     peer_stop(&p);
 *
 * The peer is /usr/bin/python3 (Debian's, which has aiohttp) running
 * $CIPC_SOURCE_DIR/tests/peers/http_server.py with its stdin and stdout piped: it prints
 * "PORT <n>" once listening and exits when its stdin reaches EOF, so it never outlives
 * the test, even one that aborts. Only the pid started here is ever signalled.
 *
 * When cipc/http_client.h is included before this header, a few HTTP client helpers
 * (CHECK_RC, peer_json, peer_jstr, ...) are defined too.
 *
 * Everything is static inline so that files using part of it compile warning-free. Not
 * thread-safe: start and stop peers from the main thread, before starting threads. */
#ifndef CIPC_TESTS_PEER_H
#define CIPC_TESTS_PEER_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define PEER_PYTHON           "/usr/bin/python3"
#define PEER_START_TIMEOUT_MS 20000
#define PEER_STOP_TIMEOUT_MS  5000

typedef struct peer {
    pid_t pid;         /* the python process, or -1 */
    int port;          /* the port it listens on */
    int stdin_fd;      /* write end of its stdin: closing it makes the peer exit */
    int stdout_fd;     /* read end of its stdout */
    char base_url[64]; /* "http://127.0.0.1:<port>" or "https://..." */
} peer;

static inline int64_t peer_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The repository root: $CIPC_SOURCE_DIR (ctest sets it), else ".". */
static inline const char *peer_source_dir(void)
{
    const char *d = getenv("CIPC_SOURCE_DIR");
    return d && *d ? d : ".";
}

/* Wait for `pid` to exit for up to `timeout_ms`. Returns 1 if it was reaped. */
static inline int peer_reap(pid_t pid, int64_t timeout_ms, int *status)
{
    int64_t end = peer_now_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return 1;
        if (peer_now_ms() >= end)
            return 0;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* pipe() with both ends close-on-exec, so a second peer does not inherit the first's
 * stdin (which would keep the first alive). */
static inline int peer_pipe_cloexec(int fds[2])
{
    if (pipe(fds) != 0)
        return -1;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
}

/* Start a program that prints "PORT <n>" as its first line once it listens: argv[0] an
 * absolute path, NULL-terminated. `tls` makes base_url https. Returns 0 with `p` filled
 * in, or -1 after printing why to stderr. */
static inline int peer_start_cmd(peer *p, const char *const *argv, int tls)
{
    const char *script = argv[1] ? argv[1] : argv[0];
    int in[2], out[2];

    memset(p, 0, sizeof *p);
    p->pid = -1;
    p->stdin_fd = p->stdout_fd = -1;
    if (peer_pipe_cloexec(in) != 0) {
        perror("peer: pipe");
        return -1;
    }
    if (peer_pipe_cloexec(out) != 0) {
        perror("peer: pipe");
        close(in[0]);
        close(in[1]);
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("peer: fork");
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        return -1;
    }
    if (pid == 0) {
        /* dup2 clears O_CLOEXEC on the new descriptors; every other pipe end closes. */
        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
            _exit(126);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "peer: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    p->pid = pid;
    p->stdin_fd = in[1];
    p->stdout_fd = out[0];

    /* Read the "PORT <n>" line, a byte at a time, with a deadline. */
    char line[64];
    size_t len = 0;
    int64_t end = peer_now_ms() + PEER_START_TIMEOUT_MS;
    for (;;) {
        int64_t left = end - peer_now_ms();
        if (left <= 0) {
            fprintf(stderr, "peer: no PORT line from %s within %d ms\n", script,
                    PEER_START_TIMEOUT_MS);
            goto fail;
        }
        struct pollfd pfd = {.fd = p->stdout_fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        char c;
        ssize_t got = read(p->stdout_fd, &c, 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            int st = 0;
            peer_reap(pid, 1000, &st);
            fprintf(stderr, "peer: %s exited before printing PORT (status 0x%x)\n", script, st);
            p->pid = -1;
            goto fail;
        }
        if (c == '\n')
            break;
        if (len + 1 >= sizeof line) {
            fprintf(stderr, "peer: overlong first line from the peer\n");
            goto fail;
        }
        line[len++] = c;
    }
    line[len] = '\0';
    if (sscanf(line, "PORT %d", &p->port) != 1 || p->port <= 0 || p->port > 65535) {
        fprintf(stderr, "peer: expected \"PORT <n>\", got \"%s\"\n", line);
        goto fail;
    }
    snprintf(p->base_url, sizeof p->base_url, "%s://127.0.0.1:%d", tls ? "https" : "http", p->port);
    return 0;

fail:
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        peer_reap(p->pid, PEER_STOP_TIMEOUT_MS, NULL);
    }
    close(p->stdin_fd);
    close(p->stdout_fd);
    p->pid = -1;
    p->stdin_fd = p->stdout_fd = -1;
    return -1;
}

/* Start the HTTP peer (tests/peers/http_server.py) with extra command-line arguments (a
 * NULL-terminated array, or NULL). Returns 0 with `p` filled in, or -1 after printing why
 * to stderr. */
static inline int peer_start_args(peer *p, const char *const *extra)
{
    static char script[4096];
    const char *argv[32];
    int n = 0, tls = 0;
    snprintf(script, sizeof script, "%s/tests/peers/http_server.py", peer_source_dir());
    if (access(script, R_OK) != 0) {
        fprintf(stderr, "peer: cannot read %s (set CIPC_SOURCE_DIR to the repository root)\n",
                script);
        return -1;
    }
    argv[n++] = PEER_PYTHON;
    argv[n++] = script;
    for (size_t i = 0; extra && extra[i] && n < 31; i++) {
        if (strcmp(extra[i], "--tls-cert") == 0)
            tls = 1;
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    return peer_start_cmd(p, argv, tls);
}

/* Start a plain HTTP peer on an ephemeral port. */
static inline int peer_start(peer *p)
{
    return peer_start_args(p, NULL);
}

/* Start an HTTPS-only peer with this certificate and key. */
static inline int peer_start_tls(peer *p, const char *cert, const char *key)
{
    const char *args[] = {"--tls-cert", cert, "--tls-key", key, NULL};
    return peer_start_args(p, args);
}

/* Stop the peer: SIGTERM, wait up to 5 s, then SIGKILL. Safe to call twice. */
static inline void peer_stop(peer *p)
{
    if (p->pid > 0) {
        int st = 0;
        kill(p->pid, SIGTERM);
        if (!peer_reap(p->pid, PEER_STOP_TIMEOUT_MS, &st)) {
            fprintf(stderr, "peer: pid %d ignored SIGTERM, killing it\n", (int)p->pid);
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
        }
        p->pid = -1;
    }
    if (p->stdin_fd >= 0)
        close(p->stdin_fd);
    if (p->stdout_fd >= 0)
        close(p->stdout_fd);
    p->stdin_fd = p->stdout_fd = -1;
}

/* "<base_url><path>" into buf. */
static inline const char *peer_url(const peer *p, const char *path, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s", p->base_url, path);
    return buf;
}

/* Run argv (argv[0] an absolute path) with stdout and stderr sent to /dev/null, or to
 * `log` when not NULL. Returns the exit status, or -1. */
static inline int peer_run(const char *const *argv, const char *log)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int nul = open("/dev/null", O_RDONLY);
        if (fd < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(126);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A temporary directory holding a self-signed certificate and its key. */
typedef struct peer_cert {
    char dir[256];
    char cert[300];
    char key[300];
} peer_cert;

/* Make a self-signed RSA certificate valid for 1 day with subject /CN=`cn` and the
 * subjectAltName `san` (e.g. "IP:127.0.0.1,DNS:localhost"), in a new mkdtemp()
 * directory. Returns 0, or -1 after printing why. */
static inline int peer_make_cert_for(peer_cert *c, const char *cn, const char *san)
{
    const char *tmp = getenv("TMPDIR");
    char subj[128], ext[256], log[300];

    snprintf(c->dir, sizeof c->dir, "%s/cipc-cert-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(c->dir)) {
        perror("peer: mkdtemp");
        return -1;
    }
    snprintf(c->cert, sizeof c->cert, "%s/cert.pem", c->dir);
    snprintf(c->key, sizeof c->key, "%s/key.pem", c->dir);
    snprintf(log, sizeof log, "%s/openssl.log", c->dir);
    snprintf(subj, sizeof subj, "/CN=%s", cn);
    snprintf(ext, sizeof ext, "subjectAltName=%s", san);
    const char *argv[] = {"/usr/bin/openssl",
                          "req",
                          "-x509",
                          "-newkey",
                          "rsa:2048",
                          "-nodes",
                          "-days",
                          "1",
                          "-subj",
                          subj,
                          "-addext",
                          ext,
                          "-keyout",
                          c->key,
                          "-out",
                          c->cert,
                          NULL};
    int rc = peer_run(argv, log);
    if (rc != 0) {
        fprintf(stderr, "peer: openssl req failed (exit %d); see %s\n", rc, log);
        return -1;
    }
    unlink(log);
    return 0;
}

/* The certificate the TLS peer uses: CN and SAN for 127.0.0.1 and localhost. */
static inline int peer_make_cert(peer_cert *c)
{
    return peer_make_cert_for(c, "127.0.0.1", "IP:127.0.0.1,DNS:localhost");
}

/* Remove the certificate, the key and their directory. */
static inline void peer_cert_remove(peer_cert *c)
{
    if (!c->dir[0])
        return;
    unlink(c->cert);
    unlink(c->key);
    rmdir(c->dir);
    c->dir[0] = '\0';
}

/* A field of /proc/self/status in KiB ("VmRSS", "VmHWM"), or -1. */
static inline long peer_proc_status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t n = strlen(field);
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kb = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* Current resident set size in KiB. */
static inline long peer_rss_kb(void)
{
    return peer_proc_status_kb("VmRSS");
}

/* Peak resident set size in KiB: VmHWM, or getrusage()'s ru_maxrss without /proc. */
static inline long peer_peak_rss_kb(void)
{
    long kb = peer_proc_status_kb("VmHWM");
    if (kb < 0) {
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0)
            kb = ru.ru_maxrss;
    }
    return kb;
}

/* Reset the peak RSS (VmHWM) to the current RSS (Linux >= 4.0). Returns 0, or -1 when
 * the kernel does not allow it (then compare against peer_peak_rss_kb() taken before). */
static inline int peer_reset_peak_rss(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, "5", 1);
    close(fd);
    return w == 1 ? 0 : -1;
}

/* Byte `i` of the body of the peer's /stream and /big. */
static inline unsigned char peer_pattern_byte(uint64_t i)
{
    return (unsigned char)(i % 251);
}

/* --- SHA-256 (FIPS 180-4), to check what /upload received ------------------------- */

typedef struct peer_sha256 {
    uint32_t h[8];
    uint64_t len;
    unsigned char blk[64];
    size_t used;
} peer_sha256;

static inline uint32_t peer_ror32(uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

static inline void peer_sha256_block(peer_sha256 *s, const unsigned char *b)
{
    static const uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2};
    uint32_t w[64], v[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 |
               (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = peer_ror32(w[i - 15], 7) ^ peer_ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = peer_ror32(w[i - 2], 17) ^ peer_ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(v, s->h, sizeof v);
    for (int i = 0; i < 64; i++) {
        uint32_t s1 = peer_ror32(v[4], 6) ^ peer_ror32(v[4], 11) ^ peer_ror32(v[4], 25);
        uint32_t ch = (v[4] & v[5]) ^ (~v[4] & v[6]);
        uint32_t t1 = v[7] + s1 + ch + k[i] + w[i];
        uint32_t s0 = peer_ror32(v[0], 2) ^ peer_ror32(v[0], 13) ^ peer_ror32(v[0], 22);
        uint32_t maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
        memmove(v + 1, v, 7 * sizeof v[0]);
        v[4] += t1;
        v[0] = t1 + s0 + maj;
    }
    for (int i = 0; i < 8; i++)
        s->h[i] += v[i];
}

static inline void peer_sha256_init(peer_sha256 *s)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->len = 0;
    s->used = 0;
}

static inline void peer_sha256_update(peer_sha256 *s, const void *data, size_t n)
{
    const unsigned char *p = data;
    s->len += n;
    while (n > 0) {
        size_t take = 64 - s->used < n ? 64 - s->used : n;
        memcpy(s->blk + s->used, p, take);
        s->used += take;
        p += take;
        n -= take;
        if (s->used == 64) {
            peer_sha256_block(s, s->blk);
            s->used = 0;
        }
    }
}

/* Finish and write the digest as 64 lower-case hex digits plus a NUL into hex. */
static inline void peer_sha256_hex(peer_sha256 *s, char hex[65])
{
    uint64_t bits = s->len * 8;
    unsigned char pad = 0x80, zero = 0, be[8];
    peer_sha256_update(s, &pad, 1);
    while (s->used != 56)
        peer_sha256_update(s, &zero, 1);
    for (int i = 0; i < 8; i++)
        be[i] = (unsigned char)(bits >> (56 - 8 * i));
    peer_sha256_update(s, be, 8);
    for (int i = 0; i < 8; i++)
        snprintf(hex + 8 * i, 9, "%08x", s->h[i]);
}

/* Case-insensitive substring test (no _GNU_SOURCE strcasestr). */
static inline int peer_contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; hay && *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && (hay[i] | 0x20) == (needle[i] | 0x20))
            i++;
        if (i == n)
            return 1;
    }
    return n == 0;
}

/* --- HTTP client helpers (with cipc/http_client.h) -------------------------------- */
#ifdef CIPC_HTTP_CLIENT_H

/* Check a return code, printing both codes' names and a message on failure. */
#define CHECK_RC(rc, want, msg)                                                                    \
    do {                                                                                           \
        int r_ = (rc), w_ = (want);                                                                \
        if (r_ != w_) {                                                                            \
            char v_[640];                                                                          \
            snprintf(v_, sizeof v_, "%s (%d) != %s (%d); message: \"%.400s\"", cipc_err_name(r_),  \
                     r_, cipc_err_name(w_), w_, (msg) ? (msg) : "(null)");                         \
            check_fail(__FILE__, __LINE__, #rc " == " #want, v_);                                  \
        }                                                                                          \
    } while (0)

/* A session for tests: `o.base_url` defaults to the peer's base URL. Fails the test if
 * the session cannot be made. Returns owned: cipc_session_free(). */
static inline cipc_session *peer_session(const peer *p, cipc_session_opts o)
{
    cipc_session *s = NULL;
    if (!o.base_url && p)
        o.base_url = p->base_url;
    CHECK_RC(cipc_session_new(&o, &s), 0, "cipc_session_new");
    CHECK(s != NULL);
    return s;
}

/* Parse the body of `r` as JSON (which must succeed). Returns owned: json_decref(). */
static inline json_t *peer_json(const cipc_response *r)
{
    json_t *j = NULL;
    int rc = cipc_response_json(r, &j);
    CHECK_RC(rc, 0, cipc_response_errmsg(r));
    CHECK(j != NULL);
    return j;
}

/* The value at a dotted path ("headers.user-agent", "json.x") of a JSON object. */
static inline json_t *peer_jget(json_t *o, const char *path)
{
    char key[256];
    while (o && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof key)
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        o = json_object_get(o, key);
        path += n;
        if (*path == '.')
            path++;
    }
    return o;
}

/* A string at a dotted path, or NULL when absent or not a string. */
static inline const char *peer_jstr(json_t *o, const char *path)
{
    return json_string_value(peer_jget(o, path));
}

/* An integer at a dotted path (which must be there). */
static inline long long peer_jint(json_t *o, const char *path)
{
    json_t *v = peer_jget(o, path);
    if (!json_is_integer(v)) {
        fprintf(stderr, "peer_jint: no integer at \"%s\"\n", path);
        CHECK(json_is_integer(v));
    }
    return (long long)json_integer_value(v);
}

/* GET `url` on `s`, check the status, and return the body's JSON (owned). */
static inline json_t *peer_get_json(cipc_session *s, const char *url, int want_status)
{
    cipc_response *r = NULL;
    int rc = cipc_get(s, url, NULL, &r);
    CHECK_RC(rc, 0, cipc_session_errmsg(s));
    CHECK_INT(cipc_response_status(r), ==, want_status);
    json_t *j = peer_json(r);
    cipc_response_free(r);
    return j;
}

/* The integer `field` of the JSON that GET `url` returns. */
static inline long long peer_get_int(cipc_session *s, const char *url, const char *field)
{
    json_t *j = peer_get_json(s, url, 200);
    long long v = peer_jint(j, field);
    json_decref(j);
    return v;
}

/* Remove every proxy variable, so that the tests talk to 127.0.0.1 directly whatever
 * the environment of the machine running them says. */
static inline void peer_clear_proxy_env(void)
{
    static const char *const vars[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                                       "all_proxy",  "ALL_PROXY",  "no_proxy",    "NO_PROXY"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

#endif /* CIPC_HTTP_CLIENT_H */

#endif
