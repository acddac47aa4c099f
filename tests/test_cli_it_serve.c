/* tests/test_cli_it_serve.c -- `cipc serve` configuration: --help lists every option with
 * its default; a config file sets options (ports, token, limits) and flags override it;
 * a bad value, an unknown option or a bad config line is one line on stderr and exit 2;
 * a public address without a token is refused (exit 1) unless --insecure-no-auth; and
 * SIGTERM ends the hub with exit 0, removing its port file. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static char g_cipc[512], g_dir[64];

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run cipc with args (NULL-terminated) to completion (at most 20 s): stdout into out,
 * stderr into err; returns the exit status. */
static int run(char *out, size_t ocap, char *err, size_t ecap, ...)
{
    const char *argv[24] = {g_cipc};
    int n = 1;
    va_list ap;
    va_start(ap, ecap);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 23)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    char opath[128], epath[128];
    snprintf(opath, sizeof opath, "%s/out", g_dir);
    snprintf(epath, sizeof epath, "%s/err", g_dir);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int o = open(opath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(o, 1);
        dup2(e, 2);
        execv(g_cipc, (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    int64_t deadline = now_ms() + 20000;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            CHECK(!"cipc serve did not exit within 20 s");
        }
        usleep(10000);
    }
    FILE *f = fopen(opath, "r");
    size_t got = f ? fread(out, 1, ocap - 1, f) : 0;
    out[got] = 0;
    if (f)
        fclose(f);
    f = fopen(epath, "r");
    got = f ? fread(err, 1, ecap - 1, f) : 0;
    err[got] = 0;
    if (f)
        fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void help(void)
{
    static char out[16384], err[4096];
    CHECK_INT(run(out, sizeof out, err, sizeof err, "serve", "--help", NULL), ==, 0);
    static const char *const want[] = {
        "--http-port V", "(default: 7380)", "--resp-port V", "(default: 7379)", "--token V",
        "--tls-cert V", "--aof V", "(default: everysec)", "--redis V", "--replay-count V",
        "(default: 1000)", "--max-message V", "--max-rate V", "--log-level V",
        "--insecure-no-auth", "--config FILE", "--port-file V", "--host V", "(default: 127.0.0.1)"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(out, want[i])) {
            fprintf(stderr, "--help lacks '%s':\n%s", want[i], out);
            CHECK(!"--help output");
        }
}

static void bad_usage(void)
{
    static char out[4096], err[4096];
    CHECK_INT(run(out, sizeof out, err, sizeof err, "serve", "--no-such-flag", NULL), ==, 2);
    CHECK(strstr(err, "unknown option '--no-such-flag'"));
    CHECK_INT(count_lines(err), ==, 1);
    CHECK_INT(run(out, sizeof out, err, sizeof err, "serve", "--http-port", "x", NULL), ==, 2);
    CHECK(strstr(err, "bad value 'x' for http-port"));
    CHECK_INT(run(out, sizeof out, err, sizeof err, "serve", "--appendfsync", "sometimes", NULL), ==, 2);
    CHECK(strstr(err, "bad value 'sometimes' for appendfsync"));
    CHECK_INT(run(out, sizeof out, err, sizeof err, "serve", "--http-port", NULL), ==, 2);
    CHECK(strstr(err, "--http-port needs a value"));
    char path[128];
    snprintf(path, sizeof path, "%s/bad.conf", g_dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "# a comment\n\nhttp-port = 0\nno-such-thing = 3\n");
    fclose(f);
    CHECK_INT(run(out, sizeof out, err, sizeof err, "serve", "--config", path, NULL), ==, 2);
    CHECK(strstr(err, "bad.conf:4: unknown option 'no-such-thing'"));
    CHECK_INT(run(out, sizeof out, err, sizeof err, "serve", "--config", "/nonexistent/x.conf", NULL), ==, 2);
    CHECK(strstr(err, "cannot read /nonexistent/x.conf"));
}

static void public_needs_token(void)
{
    static char out[4096], err[4096];
    CHECK_INT(run(out, sizeof out, err, sizeof err, "serve", "--host", "0.0.0.0", "--http-port",
                  "0", "--resp-port", "0", NULL),
              ==, 1);
    CHECK(strstr(err, "refusing to listen on 0.0.0.0 without a token"));
}

/* Start a hub in the background; returns its pid once the port file exists. */
static pid_t start_hub(const char *pf, ...)
{
    const char *argv[24] = {g_cipc, "serve", "--port-file", pf, "--log-level", "warn"};
    int n = 6;
    va_list ap;
    va_start(ap, pf);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 23)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    unlink(pf);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execv(g_cipc, (char *const *)argv);
        _exit(127);
    }
    int64_t deadline = now_ms() + 15000;
    struct stat st;
    while (stat(pf, &st) != 0) {
        int s;
        CHECK(waitpid(pid, &s, WNOHANG) == 0); /* it must not have exited */
        CHECK(now_ms() < deadline);
        usleep(10000);
    }
    return pid;
}

static int read_port(const char *pf, const char *key)
{
    FILE *f = fopen(pf, "r");
    CHECK(f != NULL);
    char line[64];
    int port = -2;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == '=')
            port = atoi(line + kl + 1);
    fclose(f);
    return port;
}

static int stop_hub(pid_t pid)
{
    kill(pid, SIGTERM);
    int st = 0;
    int64_t deadline = now_ms() + 15000;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            CHECK(!"the hub did not exit within 15 s of SIGTERM");
        }
        usleep(10000);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* HTTP status of GET http://127.0.0.1:port/path with curl (optionally a bearer token). */
static int http_status(int port, const char *path, const char *token)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "curl -s -o /dev/null -w '%%{http_code}' --max-time 10 %s%s%s "
                              "http://127.0.0.1:%d%s",
             token ? "-H 'Authorization: Bearer " : "", token ? token : "", token ? "'" : "", port,
             path);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    char buf[16] = {0};
    CHECK(fgets(buf, sizeof buf, p) != NULL);
    pclose(p);
    return atoi(buf);
}

static void config_file(void)
{
    char conf[128], pf[128];
    snprintf(conf, sizeof conf, "%s/hub.conf", g_dir);
    snprintf(pf, sizeof pf, "%s/ports", g_dir);
    FILE *f = fopen(conf, "w");
    fprintf(f, "# the hub's settings\nhttp-port = 0   # any free port\nresp-port = -1\n"
               "token = from-file\nmax-message = 100\n");
    fclose(f);
    /* the file alone: token required, no RESP port, small messages */
    pid_t pid = start_hub(pf, "--config", conf, NULL);
    int http = read_port(pf, "http");
    CHECK_INT(http, >, 0);
    CHECK_INT(read_port(pf, "resp"), ==, -1);
    CHECK_INT(http_status(http, "/v1/channels", NULL), ==, 401);
    CHECK_INT(http_status(http, "/v1/channels", "from-file"), ==, 200);
    CHECK_INT(http_status(http, "/healthz", NULL), ==, 200);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "curl -s -o /dev/null -w '%%{http_code}' --max-time 10 -H "
                              "'Authorization: Bearer from-file' --data-binary @%s "
                              "http://127.0.0.1:%d/v1/channels/c/messages", conf, http);
    FILE *p = popen(cmd, "r"); /* the config file itself is over 100 bytes: 413 */
    char buf[16] = {0};
    CHECK(fgets(buf, sizeof buf, p) != NULL);
    pclose(p);
    CHECK_INT(atoi(buf), ==, 413);
    CHECK_INT(stop_hub(pid), ==, 0);
    struct stat st;
    CHECK(stat(pf, &st) != 0 && errno == ENOENT); /* removed at exit */
    /* a flag overrides the file: another token, and a RESP port after all */
    pid = start_hub(pf, "--config", conf, "--token", "from-flag", "--resp-port", "0", NULL);
    http = read_port(pf, "http");
    CHECK_INT(read_port(pf, "resp"), >, 0);
    CHECK_INT(http_status(http, "/v1/channels", "from-file"), ==, 401);
    CHECK_INT(http_status(http, "/v1/channels", "from-flag"), ==, 200);
    CHECK_INT(stop_hub(pid), ==, 0);
    /* --insecure-no-auth lets it listen on every address without a token */
    pid = start_hub(pf, "--host", "0.0.0.0", "--insecure-no-auth", "--http-port", "0",
                    "--resp-port", "0", NULL);
    http = read_port(pf, "http");
    CHECK_INT(http_status(http, "/v1/channels", NULL), ==, 200);
    CHECK_INT(stop_hub(pid), ==, 0);
}

int main(void)
{
    const char *bin = getenv("CIPC_BIN_DIR");
    snprintf(g_cipc, sizeof g_cipc, "%s/cipc", bin ? bin : "bin");
    snprintf(g_dir, sizeof g_dir, "/tmp/cipc-serve-test.XXXXXX");
    CHECK(mkdtemp(g_dir) != NULL);
    help();
    bad_usage();
    public_needs_token();
    config_file();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    CHECK(system(cmd) == 0);
    puts("test_cli_it_serve: ok");
    return 0;
}
