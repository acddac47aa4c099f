/* cipc serve -- the hub (cipc/hub.h) from the command line: flags, an optional config
 * file with the same names, and --help listing them with their defaults.
 *
 *   cipc serve [--http-port N] [--resp-port M] [--config FILE] [options]
 *
 * Exit status: 0 after a graceful shutdown (SIGINT, SIGTERM), 1 when it cannot start
 * (the reason on stderr), 2 for bad usage. */
#include <cipc.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <unistd.h>

#include "cli.h"

enum kind { K_STR, K_INT, K_SIZE, K_BOOL, K_FSYNC, K_LEVEL };

struct cfg {
    cipc_hub_opts o;
    const char *log_level;
    const char *port_file;
    char *strings[32]; /* owned copies of config-file values */
    int nstrings;
};

static const struct opt {
    const char *name;
    enum kind kind;
    size_t off; /* into struct cfg */
    const char *dflt, *help;
} opts[] = {
#define O(field) offsetof(struct cfg, o.field)
    {"host", K_STR, O(host), "127.0.0.1", "address to listen on (numeric; \"::\" or \"0.0.0.0\" for all)"},
    {"http-port", K_INT, O(http_port), "7380", "HTTP, WebSocket, SSE and the dashboard (0: any free port)"},
    {"resp-port", K_INT, O(resp_port), "7379", "Redis protocol (0: any free port; -1: none)"},
    {"token", K_STR, O(token), "none", "bearer token required by /v1 and the WebSockets"},
    {"requirepass", K_STR, O(requirepass), "the token", "password for AUTH on the RESP port"},
    {"insecure-no-auth", K_BOOL, O(insecure_no_auth), "off", "allow a non-loopback --host without a token"},
    {"tls-cert", K_STR, O(tls_cert), "none", "PEM certificate: also serve HTTPS and wss"},
    {"tls-key", K_STR, O(tls_key), "none", "PEM private key of --tls-cert"},
    {"tls-port", K_INT, O(tls_port), "any free port", "the HTTPS / wss port"},
    {"aof", K_STR, O(aof_path), "none (memory only)", "append-only file that keeps the queues"},
    {"appendfsync", K_FSYNC, O(appendfsync), "everysec", "always | everysec | no"},
    {"redis", K_STR, O(redis_url), "none", "multi-machine mode: channels and queues in this Redis"},
    {"hub-id", K_STR, O(hub_id), "HOST:HTTP-PORT", "names this hub's reservations"},
    {"replay-count", K_SIZE, O(replay_count), "1000", "messages kept per channel for resuming clients"},
    {"replay-bytes", K_SIZE, O(replay_bytes), "1048576", "payload bytes kept per channel"},
    {"max-message", K_SIZE, O(max_message), "1048576", "largest message, bytes (REST, WebSocket, RESP)"},
    {"max-rate", K_INT, O(max_rate), "10000", "WebSocket ops per second per connection (over: close 1008)"},
    {"max-buffered", K_SIZE, O(max_buffered), "8388608", "unsent bytes per WebSocket subscriber (over: close 1008)"},
    {"max-connections", K_INT, O(max_connections), "10000", "HTTP and WebSocket connections"},
    {"max-channels", K_SIZE, O(max_channels), "10000", "channels remembered for numbering and replay (least recently used without subscribers forgotten)"},
    {"max-subscriptions", K_SIZE, O(max_subscriptions), "1000", "channels + patterns per WebSocket connection"},
    {"max-wait", K_INT, O(max_wait_s), "300", "longest queue long-poll, seconds"},
    {"shutdown-timeout", K_INT, O(shutdown_timeout_ms), "10000", "ms given to requests in flight at shutdown"},
    {"access-log", K_BOOL, O(access_log), "off", "one line per HTTP request on stderr"},
    {"log-level", K_LEVEL, offsetof(struct cfg, log_level), "info", "debug | info | warn | error | off"},
    {"port-file", K_STR, offsetof(struct cfg, port_file), "none", "write \"http=N\\nresp=M\\n\" here once listening"},
#undef O
};

#define NOPTS (sizeof opts / sizeof opts[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: cipc serve [options]\n"
               "Runs the hub: REST, WebSocket, SSE and RESP on one bus (docs/hub.md).\n"
               "options (also \"name = value\" lines in --config FILE; flags win):\n");
    for (size_t i = 0; i < NOPTS; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s", opts[i].name, opts[i].kind == K_BOOL ? "" : " V");
        fprintf(f, "  %-22s %s (default: %s)\n", left, opts[i].help, opts[i].dflt);
    }
    fprintf(f, "  %-22s %s\n", "--config FILE", "read options from FILE");
}

static const struct opt *find(const char *name)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (!strcmp(opts[i].name, name))
            return &opts[i];
    return NULL;
}

/* Set one option from text. Returns 0, or -1 after printing why. */
static int set(struct cfg *c, const struct opt *o, const char *v, const char *where)
{
    void *p = (char *)c + o->off;
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case K_STR:
    case K_LEVEL:
        if (o->kind == K_LEVEL) {
            cipc_log_level lv;
            if (cipc_log_level_parse(v, &lv) < 0)
                goto bad;
        }
        *(const char **)p = v;
        return 0;
    case K_INT: {
        long n = strtol(v, &end, 10);
        if (!*v || *end || errno || n < -1 || n > 1000000000)
            goto bad;
        if (o->off == offsetof(struct cfg, o.max_wait_s) || o->off == offsetof(struct cfg, o.shutdown_timeout_ms))
            *(long *)p = n;
        else if (o->off == offsetof(struct cfg, o.max_rate))
            *(unsigned *)p = (unsigned)n;
        else
            *(int *)p = (int)n;
        return 0;
    }
    case K_SIZE: {
        unsigned long long n = strtoull(v, &end, 10);
        if (!*v || *end || errno || *v == '-')
            goto bad;
        *(size_t *)p = (size_t)n;
        return 0;
    }
    case K_BOOL:
        if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "on"))
            *(int *)p = 1;
        else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "off"))
            *(int *)p = 0;
        else
            goto bad;
        return 0;
    case K_FSYNC:
        if (!strcmp(v, "always"))
            *(int *)p = CIPC_BROKER_FSYNC_ALWAYS;
        else if (!strcmp(v, "everysec"))
            *(int *)p = CIPC_BROKER_FSYNC_EVERYSEC;
        else if (!strcmp(v, "no"))
            *(int *)p = CIPC_BROKER_FSYNC_NO;
        else
            goto bad;
        return 0;
    }
bad:
    fprintf(stderr, "cipc serve: %s: bad value '%s' for %s (%s)\n", where, v, o->name, o->help);
    return -1;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

static int read_config(struct cfg *c, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cipc serve: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[1024];
    int ln = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        ln++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        char where[300];
        snprintf(where, sizeof where, "%s:%d", path, ln);
        if (!eq) {
            fprintf(stderr, "cipc serve: %s: expected \"name = value\"\n", where);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *name = trim(s), *val = trim(eq + 1);
        const struct opt *o = find(name);
        if (!o) {
            fprintf(stderr, "cipc serve: %s: unknown option '%s'\n", where, name);
            rc = -1;
            break;
        }
        if (c->nstrings == (int)(sizeof c->strings / sizeof c->strings[0]) ||
            !(c->strings[c->nstrings] = strdup(val))) {
            rc = -1;
            break;
        }
        rc = set(c, o, c->strings[c->nstrings++], where);
    }
    fclose(f);
    return rc;
}

static void on_ready(cipc_hub *h, void *ud)
{
    struct cfg *c = ud;
    if (!c->port_file)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", c->port_file);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "cipc serve: cannot write %s: %s\n", tmp, strerror(errno));
        return;
    }
    fprintf(f, "http=%d\nresp=%d\n", cipc_hub_http_port(h), cipc_hub_resp_port(h));
    if (cipc_hub_tls_port(h) > 0)
        fprintf(f, "tls=%d\n", cipc_hub_tls_port(h));
    fclose(f);
    rename(tmp, c->port_file); /* readers see the whole file or none */
}

int cipc_cli_serve(int argc, char **argv)
{
    struct cfg c = {.o = {.size = sizeof(cipc_hub_opts),
                          .http_port = CIPC_HUB_DEFAULT_HTTP_PORT,
                          .resp_port = CIPC_HUB_DEFAULT_RESP_PORT}};
    int rc = 2;
    /* the config file first, so that flags override it */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "cipc serve: --config needs a file\n");
                return 2;
            }
            if (read_config(&c, argv[i + 1]) < 0)
                goto out;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        const struct opt *o = strncmp(a, "--", 2) ? NULL : find(a + 2);
        if (!o) {
            fprintf(stderr, "cipc serve: unknown option '%s' (see cipc serve --help)\n", a);
            goto out;
        }
        const char *v = "1";
        if (o->kind != K_BOOL) {
            if (i + 1 >= argc) {
                fprintf(stderr, "cipc serve: %s needs a value\n", a);
                goto out;
            }
            v = argv[++i];
        }
        if (set(&c, o, v, "argument") < 0)
            goto out;
    }
    setenv("CIPC_LOG", c.log_level ? c.log_level : (getenv("CIPC_LOG") ? getenv("CIPC_LOG") : "info"), 1);
    c.o.on_ready = on_ready;
    c.o.on_ready_ud = &c;
    cipc_hub *h = NULL;
    int err = cipc_hub_new(&c.o, &h);
    if (err < 0) {
        if (err != -EPERM) /* (that one is explained by the hub's own log line) */
            fprintf(stderr, "cipc serve: %s\n", cipc_strerror(err));
        rc = err == -EINVAL ? 2 : 1;
        goto out;
    }
    err = cipc_hub_run(h);
    /* The hub has shut down: another SIGINT/SIGTERM (an impatient second Ctrl-C) must not
     * turn the clean exit into a kill while the process winds down. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    if (err < 0)
        fprintf(stderr, "cipc serve: %s\n", cipc_hub_errmsg(h));
    cipc_hub_free(h);
    if (c.port_file)
        unlink(c.port_file);
    rc = err < 0 ? 1 : 0;
out:
    for (int i = 0; i < c.nstrings; i++)
        free(c.strings[i]);
    return rc;
}
