/* cipc get|post|put|patch|delete|request -- HTTP from the shell, in the manner of httpie,
 * through cipc_session (the public API only).
 *
 *   cipc get URL [REQUEST_ITEM...] [options]
 *   cipc post URL [REQUEST_ITEM... | JSON | -] [options]     (put, patch, delete alike)
 *   cipc request METHOD URL [REQUEST_ITEM... | BODY | -] [options]
 *
 * Request items (httpie's syntax; the first positional argument is always the URL):
 *   key=value    a JSON string field      key:=json   a raw JSON field (3, true, [1], {...})
 *   key=@file    a string field from FILE key:=@file  a raw JSON field from FILE
 *   Name:value   a request header         key==value  a query parameter (percent-encoded)
 * The separator that comes first in the argument wins (the longest at that place), and a
 * backslash makes the next character literal ('a\:b=c' is the field "a:b"). With data
 * fields the body is one JSON object, sent with Content-Type: application/json and an
 * Accept of application/json with a q=0.5 fallback to anything (JSON_ACCEPT, httpie's
 * value); -H or a header item overrides either. A single argument that is a JSON object
 * or array is sent as the body as given; "-" sends stdin (which must be JSON, except for
 * `cipc request`, where anything else goes as text/plain). With --retries, requests of
 * every method are retried. URL shorthand as httpie's: ":8080/x" is
 * http://localhost:8080/x, and a URL without a scheme gets http://.
 *
 * Output: the body. On a terminal a JSON body (Content-Type *json, or a body that starts
 * with { or [ and parses) is indented by 2 spaces and coloured (keys, strings, numbers and
 * true/false/null each in their own colour); anything else is printed as it came, with a
 * newline added on a terminal. Piped, the body is written exactly as received. --pretty
 * forces a mode: all (indent + colours), colors, format (indent only), none. The
 * indentation is jansson's JSON_INDENT(2) layout, done by re-spacing the received text
 * (validated with jansson first) so that numbers keep their exact digits and objects
 * their order.
 *
 * Exit status (httpie's): 0 for any response; with --check-status 3 for a 3xx (redirects
 * not followed), 4 for a 4xx, 5 for a 5xx, with "cipc: HTTP 404 Not Found" on stderr;
 * 1 when no response came (refused, timed out, DNS, TLS: one line on stderr); 2 for bad
 * usage. Redirects are followed only with --follow (httpie's default). */
#include <cipc.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"

#define MAX_ITEMS         256
#define JSON_ACCEPT       "application/json, */*;q=0.5"
#define DEFAULT_TIMEOUT_S 30
#define DEFAULT_REDIRECTS 30

/* ANSI colours of the pretty printer. */
#define C_RESET  "\033[0m"
#define C_KEY    "\033[1;34m" /* object keys: bold blue */
#define C_STRING "\033[33m"   /* string values: yellow */
#define C_NUMBER "\033[36m"   /* numbers: cyan */
#define C_LIT    "\033[35m"   /* true, false, null: magenta */
#define C_STATUS "\033[1m"    /* the status line: bold */
#define C_HNAME  "\033[36m"   /* header names: cyan */

enum { PRETTY_COLORS = 1, PRETTY_FORMAT = 2 };

static void http_usage(FILE *f)
{
    fprintf(f,
            "usage: cipc get|post|put|patch|delete URL [REQUEST_ITEM...] [options]\n"
            "       cipc post|put|patch|delete URL JSON|- [options]\n"
            "       cipc request METHOD URL [REQUEST_ITEM... | BODY | -] [options]\n"
            "URL: http(s)://host[:port]/path; 'localhost:8080/x' means http://localhost:8080/x,\n"
            "     ':8080/x' means http://localhost:8080/x.\n"
            "request items (as httpie):\n"
            "  key=value            JSON string field of the body object\n"
            "  key:=json            raw JSON field (number, true/false/null, array, object)\n"
            "  key=@FILE, key:=@FILE  the same with the value read from FILE\n"
            "  Name:value           request header\n"
            "  key==value           URL query parameter (percent-encoded for you)\n"
            "  With data fields the body is a JSON object sent with Content-Type:\n"
            "  application/json and Accept: " JSON_ACCEPT ".\n"
            "  A single JSON object or array argument is sent as the body; '-' sends stdin.\n"
            "options:\n"
            "  -H 'Name: value'     add a request header (repeatable)\n"
            "  --timeout SECONDS    give up on an attempt after this long; decimals allowed,\n"
            "                       0 waits forever (default %d)\n"
            "  --retries N          retry up to N times after connection failures, timeouts\n"
            "                       and 429/502/503/504, with backoff, whatever the method\n"
            "                       (default 0)\n"
            "  --follow             follow redirects (default: do not, like httpie)\n"
            "  --max-redirects N    with --follow, at most N redirects (default %d)\n"
            "  --check-status       exit 3/4/5 for a 3xx/4xx/5xx response, with a warning\n"
            "  --pretty=MODE        all, colors, format or none (default: all on a terminal,\n"
            "                       none when piped: the body exactly as received)\n"
            "  -i, --print-headers  print the status line and headers before the body\n"
            "  --cacert FILE        verify the server with this CA bundle\n"
            "  --insecure           do not verify TLS certificates (testing only)\n"
            "  -h, --help           this help\n"
            "exit status: 0 for any response (3, 4, 5 for 3xx, 4xx, 5xx with --check-status),\n"
            "             1 when no response came, 2 for bad usage\n",
            DEFAULT_TIMEOUT_S, DEFAULT_REDIRECTS);
}

/* --- URLs -------------------------------------------------------------------------- */

/* httpie's URL shorthand: ":PORT/path" and ":/path" mean localhost, and an argument
 * without "scheme://" gets `scheme`://. Writes the URL into buf; returns buf. */
const char *cipc_cli_split_opt(const char *arg, char *buf, size_t size)
{
    const char *eq = strchr(arg, '=');
    if (!strncmp(arg, "--", 2) && eq && (size_t)(eq - arg) < size) {
        memcpy(buf, arg, (size_t)(eq - arg));
        buf[eq - arg] = '\0';
        return eq + 1;
    }
    snprintf(buf, size, "%s", arg);
    return NULL;
}

const char *cipc_cli_url_shorthand(const char *arg, const char *scheme, char *buf, size_t size)
{
    size_t i = 0;
    if (isalpha((unsigned char)arg[0])) {
        i = 1;
        while (isalnum((unsigned char)arg[i]) || arg[i] == '+' || arg[i] == '-' || arg[i] == '.')
            i++;
    }
    if (i > 0 && !strncmp(arg + i, "://", 3))
        snprintf(buf, size, "%s", arg);
    else if (arg[0] == ':')
        snprintf(buf, size, "%s://localhost%s%s", scheme,
                 arg[1] == '/' || arg[1] == '\0' ? "" : ":", arg + 1);
    else
        snprintf(buf, size, "%s://%s", scheme, arg);
    return buf;
}

/* --- Request items ------------------------------------------------------------------ */

enum item_kind { IT_HEADER, IT_QUERY, IT_DATA, IT_JSON, IT_DATA_FILE, IT_JSON_FILE };

typedef struct item {
    enum item_kind kind;
    char *key;         /* unescaped, malloc'd */
    const char *value; /* a view into argv */
} item;

/* Split `arg` at its first separator (httpie's rule: the earliest, then the longest).
 * Returns 0 and fills *it (it->key malloc'd), or -1 when `arg` has no separator. */
static int item_parse(const char *arg, item *it)
{
    static const struct {
        const char *sep;
        enum item_kind kind;
    } seps[] = {{":=@", IT_JSON_FILE}, {":=", IT_JSON}, {"==", IT_QUERY},
                {"=@", IT_DATA_FILE},  {"=", IT_DATA},  {":", IT_HEADER}};
    size_t n = strlen(arg);
    char *key = malloc(n + 1);
    size_t k = 0;
    if (!key)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (arg[i] == '\\' && i + 1 < n) {
            key[k++] = arg[++i];
            continue;
        }
        if (arg[i] == ':' || arg[i] == '=') {
            for (size_t s = 0; s < sizeof seps / sizeof seps[0]; s++) {
                size_t sl = strlen(seps[s].sep);
                if (!strncmp(arg + i, seps[s].sep, sl)) {
                    key[k] = '\0';
                    it->kind = seps[s].kind;
                    it->key = key;
                    it->value = arg + i + sl;
                    return 0;
                }
            }
        }
        key[k++] = arg[i];
    }
    free(key);
    return -1;
}

/* An RFC 9110 token (header names). */
static int is_token(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return 0;
    return 1;
}

static char *read_all(FILE *f, size_t *len)
{
    cipc_buf b = CIPC_BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (cipc_buf_append(&b, chunk, n) < 0) {
            cipc_buf_free(&b);
            return NULL;
        }
    }
    if (ferror(f)) {
        cipc_buf_free(&b);
        return NULL;
    }
    if (cipc_buf_append(&b, "", 0) < 0) /* data is never NULL below */
        return NULL;
    return cipc_buf_steal(&b, len);
}

static char *read_path(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *s = read_all(f, len);
    fclose(f);
    return s;
}

/* --- Output ------------------------------------------------------------------------- */

static void color(FILE *f, int on, const char *c)
{
    if (on)
        fputs(c, f);
}

static void newline_indent(FILE *f, int depth)
{
    fputc('\n', f);
    for (int i = 0; i < depth; i++)
        fputs("  ", f);
}

static int json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Print JSON text `s` (already validated): re-spaced with a 2-space indent when
 * `format` (the layout of jansson's JSON_INDENT(2)), coloured when `colors`. Tokens are
 * copied verbatim, so numbers and escapes stay exactly as received. */
static void json_print(FILE *f, const char *s, size_t n, int format, int colors)
{
    int depth = 0;
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (json_space(c)) {
            if (!format)
                fputc(c, f);
            i++;
        } else if (c == '"') {
            size_t j = i + 1;
            while (j < n && s[j] != '"')
                j += s[j] == '\\' ? 2 : 1;
            j = j < n ? j + 1 : n;
            size_t k = j;
            while (k < n && json_space(s[k]))
                k++;
            color(f, colors, k < n && s[k] == ':' ? C_KEY : C_STRING);
            fwrite(s + i, 1, j - i, f);
            color(f, colors, C_RESET);
            i = j;
        } else if (c == '{' || c == '[') {
            fputc(c, f);
            i++;
            if (!format)
                continue;
            size_t k = i;
            while (k < n && json_space(s[k]))
                k++;
            if (k < n && s[k] == (c == '{' ? '}' : ']')) {
                fputc(s[k], f);
                i = k + 1;
            } else {
                newline_indent(f, ++depth);
            }
        } else if (c == '}' || c == ']') {
            if (format)
                newline_indent(f, depth > 0 ? --depth : 0);
            fputc(c, f);
            i++;
        } else if (c == ',') {
            fputc(c, f);
            i++;
            if (format)
                newline_indent(f, depth);
        } else if (c == ':') {
            fputs(format ? ": " : ":", f);
            i++;
        } else {
            size_t j = i;
            while (j < n && !json_space(s[j]) && !strchr(",:]}", s[j]))
                j++;
            color(f, colors, c == 't' || c == 'f' || c == 'n' ? C_LIT : C_NUMBER);
            fwrite(s + i, 1, j - i, f);
            color(f, colors, C_RESET);
            i = j;
        }
    }
    if (format)
        fputc('\n', f);
}

/* Whether to treat the body as JSON: the Content-Type says so, or it looks like an object
 * or array; and it parses. */
static int body_is_json(const cipc_response *r, const char *body, size_t len)
{
    const char *ct = cipc_response_header(r, "Content-Type");
    size_t i = 0;
    while (i < len && json_space(body[i]))
        i++;
    int looks = i < len && (body[i] == '{' || body[i] == '[');
    if (!looks && !(ct && strstr(ct, "json")))
        return 0;
    json_t *j = json_loadb(body, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    json_decref(j);
    return j != NULL;
}

static void print_response(const cipc_response *r, int pretty, int show_head, int tty)
{
    int colors = (pretty & PRETTY_COLORS) != 0;
    if (show_head) {
        color(stdout, colors, C_STATUS);
        printf("%d %s", cipc_response_status(r), cipc_response_reason(r));
        color(stdout, colors, C_RESET);
        putchar('\n');
        for (size_t i = 0; i < cipc_response_header_count(r); i++) {
            const char *n, *v;
            cipc_response_header_at(r, i, &n, &v);
            color(stdout, colors, C_HNAME);
            fputs(n, stdout);
            color(stdout, colors, C_RESET);
            printf(": %s\n", v);
        }
        putchar('\n');
    }
    size_t len;
    const char *body = cipc_response_body(r, &len);
    if (pretty && len && body_is_json(r, body, len)) {
        json_print(stdout, body, len, (pretty & PRETTY_FORMAT) != 0, colors);
        if (!(pretty & PRETTY_FORMAT) && tty && body[len - 1] != '\n')
            putchar('\n');
        return;
    }
    fwrite(body, 1, len, stdout);
    if (tty && len && body[len - 1] != '\n')
        putchar('\n');
}

/* --- The command -------------------------------------------------------------------- */

typedef struct http_cmd {
    const char *cmd;    /* as typed: "get", "request" */
    const char *method; /* "GET" */
    const char *url;
    const char *pos[MAX_ITEMS]; /* positional arguments after the URL */
    int npos;
    cipc_kv headers[MAX_ITEMS + 3];
    int nh;
    cipc_kv params[MAX_ITEMS + 1];
    int np;
    char *owned[4 * MAX_ITEMS + 8]; /* strings to free */
    int nowned;
    double timeout_s;
    int retries, follow, max_redirects, check_status, pretty, show_head, insecure;
    const char *cacert;
} http_cmd;

static int bad(const http_cmd *h, const char *fmt, const char *arg)
{
    fprintf(stderr, "cipc %s: ", h->cmd);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return 2;
}

/* Keep `s` (malloc'd) until the command ends. Returns s, or NULL (s freed) when s is NULL
 * or there is no room left. */
static char *own(http_cmd *h, char *s)
{
    if (s && h->nowned < (int)(sizeof h->owned / sizeof h->owned[0]))
        return h->owned[h->nowned++] = s;
    free(s);
    return NULL;
}

/* "Name: value" or "Name:value" into a header. Returns 0 or 2 (usage). */
static int add_header(http_cmd *h, const char *name, size_t name_len, const char *value)
{
    if (h->nh >= MAX_ITEMS)
        return bad(h, "too many headers (at most %s)", "256");
    char *n = own(h, strndup(name, name_len));
    if (!n || !is_token(n))
        return bad(h, "bad header name in '%s' (want 'Name: value')", name);
    while (*value == ' ' || *value == '\t')
        value++;
    h->headers[h->nh].key = n;
    h->headers[h->nh].value = value;
    h->nh++;
    return 0;
}

static int has_header(const http_cmd *h, const char *name)
{
    for (int i = 0; i < h->nh; i++)
        if (!strcasecmp(h->headers[i].key, name))
            return 1;
    return 0;
}

static int parse_number(const http_cmd *h, const char *opt, const char *v, double *out)
{
    char *end = NULL;
    double d = strtod(v, &end);
    if (!*v || *end || !isfinite(d) || d < 0) {
        fprintf(stderr, "cipc %s: %s takes a number >= 0, not '%s'\n", h->cmd, opt, v);
        return 2;
    }
    *out = d;
    return 0;
}

/* Parse the options and positional arguments. Returns -1 to go on, or an exit status. */
static int parse_args(http_cmd *h, int argc, char **argv)
{
    int i = 1, no_more_opts = 0;
    if (!strcmp(h->cmd, "request")) {
        for (int j = 1; j < argc; j++)
            if (!strcmp(argv[j], "--help") || !strcmp(argv[j], "-h")) {
                http_usage(stdout);
                return 0;
            }
        if (argc < 2 || argv[1][0] == '-') {
            fprintf(stderr, "cipc request: the METHOD comes first (cipc request PUT URL ...)\n");
            http_usage(stderr);
            return 2;
        }
        h->method = argv[1];
        i = 2;
    }
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!no_more_opts && a[0] == '-' && a[1] != '\0') {
            if (!strcmp(a, "--")) {
                no_more_opts = 1;
                continue;
            }
            if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
                http_usage(stdout);
                return 0;
            }
            /* --name=value or --name value */
            char name[64];
            const char *v = cipc_cli_split_opt(a, name, sizeof name);
            int takes = !strcmp(name, "-H") || !strcmp(name, "--header") ||
                        !strcmp(name, "--timeout") || !strcmp(name, "--retries") ||
                        !strcmp(name, "--max-redirects") || !strcmp(name, "--pretty") ||
                        !strcmp(name, "--cacert");
            if (takes && !v) {
                if (i + 1 >= argc)
                    return bad(h, "%s needs a value", name);
                v = argv[++i];
            } else if (!takes && v) {
                return bad(h, "%s takes no value", name);
            }
            int rc = 0;
            double d = 0;
            if (!strcmp(name, "-H") || !strcmp(name, "--header")) {
                const char *colon = strchr(v, ':');
                if (!colon)
                    return bad(h, "bad header '%s' (want 'Name: value')", v);
                rc = add_header(h, v, (size_t)(colon - v), colon + 1);
            } else if (!strcmp(name, "--timeout")) {
                rc = parse_number(h, name, v, &h->timeout_s);
            } else if (!strcmp(name, "--retries") || !strcmp(name, "--max-redirects")) {
                rc = parse_number(h, name, v, &d);
                if (!rc && (d != floor(d) || d > 1000))
                    return bad(h, "%s takes a whole number up to 1000", name);
                if (!strcmp(name, "--retries"))
                    h->retries = (int)d;
                else
                    h->max_redirects = (int)d;
            } else if (!strcmp(name, "--pretty")) {
                if (!strcmp(v, "all"))
                    h->pretty = PRETTY_COLORS | PRETTY_FORMAT;
                else if (!strcmp(v, "colors"))
                    h->pretty = PRETTY_COLORS;
                else if (!strcmp(v, "format"))
                    h->pretty = PRETTY_FORMAT;
                else if (!strcmp(v, "none"))
                    h->pretty = 0;
                else
                    return bad(h, "--pretty takes all, colors, format or none, not '%s'", v);
            } else if (!strcmp(name, "--cacert")) {
                h->cacert = v;
            } else if (!strcmp(name, "--insecure")) {
                h->insecure = 1;
            } else if (!strcmp(name, "--follow") || !strcmp(name, "-F")) {
                h->follow = 1;
            } else if (!strcmp(name, "--check-status")) {
                h->check_status = 1;
            } else if (!strcmp(name, "-i") || !strcmp(name, "--print-headers")) {
                h->show_head = 1;
            } else {
                fprintf(stderr, "cipc %s: unknown option '%s'\n", h->cmd, a);
                http_usage(stderr);
                return 2;
            }
            if (rc)
                return rc;
        } else if (!h->url) {
            h->url = a;
        } else if (h->npos < MAX_ITEMS) {
            h->pos[h->npos++] = a;
        } else {
            return bad(h, "too many arguments (at most %s request items)", "256");
        }
    }
    if (!h->url) {
        fprintf(stderr, "cipc %s: the URL is missing\n", h->cmd);
        http_usage(stderr);
        return 2;
    }
    return -1;
}

/* The body from the positional arguments: request items, one JSON argument, or "-".
 * Sets *body (owned by h) and *content_type, or leaves them NULL. Returns -1 to go on,
 * or an exit status. */
static int build_body(http_cmd *h, char **body, size_t *body_len, const char **content_type)
{
    *body = NULL;
    *body_len = 0;
    *content_type = NULL;
    int is_request = !strcmp(h->cmd, "request");
    if (h->npos == 1) {
        const char *a = h->pos[0];
        size_t len = strlen(a);
        char *text = NULL;
        if (!strcmp(a, "-")) {
            text = own(h, read_all(stdin, &len));
            if (!text) {
                fprintf(stderr, "cipc %s: cannot read stdin\n", h->cmd);
                return 1;
            }
            if (len == 0)
                return -1;
        } else if (a[0] == '{' || a[0] == '[') {
            text = (char *)a;
        }
        item probe;
        if (!text && item_parse(a, &probe) < 0) {
            if (!is_request)
                return bad(h,
                           "'%s' is not a request item (key=value, key:=json, "
                           "Name:value, key==value) nor JSON",
                           a);
            text = (char *)a; /* cipc request METHOD URL BODY: any text */
        } else if (!text) {
            free(probe.key); /* an item: handled below */
        }
        if (text) {
            json_error_t err;
            json_t *j = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
            json_decref(j);
            if (j) {
                *content_type = "application/json";
            } else if (is_request) {
                *content_type = "text/plain; charset=utf-8";
            } else {
                fprintf(stderr, "cipc %s: the body is not JSON: %s (line %d, column %d)\n", h->cmd,
                        err.text, err.line, err.column);
                return 2;
            }
            *body = text;
            *body_len = len;
            return -1;
        }
    }
    json_t *obj = NULL;
    for (int p = 0; p < h->npos; p++) {
        const char *a = h->pos[p];
        item it;
        if (!strcmp(a, "-") || a[0] == '{' || a[0] == '[' || item_parse(a, &it) < 0) {
            json_decref(obj);
            return bad(h,
                       "'%s' is not a request item (key=value, key:=json, Name:value, "
                       "key==value); a JSON or '-' body must be the only argument",
                       a);
        }
        if (!own(h, it.key)) {
            json_decref(obj);
            return bad(h, "%s", "out of memory");
        }
        int rc = 0;
        const char *v = it.value;
        size_t vlen = strlen(v);
        if (it.kind == IT_DATA_FILE || it.kind == IT_JSON_FILE) {
            char *file = own(h, read_path(v, &vlen));
            if (!file) {
                json_decref(obj);
                fprintf(stderr, "cipc %s: cannot read '%s' (from '%s')\n", h->cmd, v, a);
                return 2;
            }
            v = file;
        }
        switch (it.kind) {
        case IT_HEADER:
            rc = add_header(h, it.key, strlen(it.key), v);
            break;
        case IT_QUERY: /* np < npos <= MAX_ITEMS */
            h->params[h->np].key = it.key;
            h->params[h->np].value = v;
            h->np++;
            break;
        case IT_DATA:
        case IT_DATA_FILE:
        case IT_JSON:
        case IT_JSON_FILE: {
            json_t *val;
            json_error_t err;
            if (it.kind == IT_DATA || it.kind == IT_DATA_FILE) {
                val = json_stringn(v, vlen);
                if (!val)
                    rc = bad(h, "'%s': the value is not valid UTF-8", a);
            } else {
                val = json_loadb(v, vlen, JSON_DECODE_ANY, &err);
                if (!val) {
                    fprintf(stderr, "cipc %s: '%s': the value is not JSON: %s\n", h->cmd, a,
                            err.text);
                    rc = 2;
                }
            }
            if (val) {
                if (!obj)
                    obj = json_object();
                if (!obj || json_object_set_new(obj, it.key, val) < 0)
                    rc = bad(h, "'%s': cannot add this field", a);
            }
            break;
        }
        }
        if (rc) {
            json_decref(obj);
            return rc;
        }
    }
    if (obj) {
        *body = own(h, json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY));
        json_decref(obj);
        if (!*body)
            return bad(h, "%s", "out of memory");
        *body_len = strlen(*body);
        *content_type = "application/json";
    }
    return -1;
}

int cipc_cli_http(int argc, char **argv)
{
    static const char *const methods[][2] = {{"get", "GET"},       {"post", "POST"},
                                             {"put", "PUT"},       {"patch", "PATCH"},
                                             {"delete", "DELETE"}, {"request", NULL}};
    http_cmd *h = calloc(1, sizeof *h);
    if (!h) {
        fprintf(stderr, "cipc: out of memory\n");
        return 1;
    }
    h->cmd = argv[0];
    for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++)
        if (!strcmp(argv[0], methods[m][0]))
            h->method = methods[m][1];
    h->timeout_s = DEFAULT_TIMEOUT_S;
    h->max_redirects = DEFAULT_REDIRECTS;
    int tty = isatty(1);
    h->pretty = tty ? PRETTY_COLORS | PRETTY_FORMAT : 0;

    char *body = NULL, url[4096];
    size_t body_len = 0;
    const char *content_type = NULL;
    cipc_session *s = NULL;
    cipc_response *r = NULL;
    int status = parse_args(h, argc, argv);
    if (status < 0)
        status = build_body(h, &body, &body_len, &content_type);
    if (status >= 0)
        goto out;
    status = 1;

    if (body) {
        /* A Content-Type of the user's wins over ours (and is not sent twice). */
        for (int i = 0; i < h->nh; i++)
            if (!strcasecmp(h->headers[i].key, "Content-Type")) {
                content_type = h->headers[i].value;
                memmove(h->headers + i, h->headers + i + 1,
                        (size_t)(h->nh - i - 1) * sizeof h->headers[0]);
                h->nh--;
                i--;
            }
    }
    if (content_type && !strcmp(content_type, "application/json") && !has_header(h, "Accept")) {
        h->headers[h->nh].key = "Accept";
        h->headers[h->nh].value = JSON_ACCEPT;
        h->nh++;
    }
    h->headers[h->nh].key = h->headers[h->nh].value = NULL;
    h->params[h->np].key = h->params[h->np].value = NULL;

    long timeout_ms = h->timeout_s == 0 ? CIPC_TIMEOUT_NONE : (long)ceil(h->timeout_s * 1000);
    cipc_session_opts so = {.size = sizeof so,
                            .timeout_ms = timeout_ms,
                            .ca_file = h->cacert,
                            .danger_accept_invalid_certs = h->insecure,
                            .max_redirects =
                                h->follow ? (h->max_redirects ? h->max_redirects : -1) : -1,
                            .retry = {.max_attempts = h->retries + 1}};
    if (timeout_ms != CIPC_TIMEOUT_NONE && timeout_ms < CIPC_HTTP_DEFAULT_CONNECT_TIMEOUT_MS)
        so.connect_timeout_ms = timeout_ms;
    int rc = cipc_session_new(&so, &s);
    if (rc < 0) {
        fprintf(stderr, "cipc %s: %s\n", h->cmd, cipc_strerror(rc));
        goto out;
    }
    cipc_request_opts ro = {.size = sizeof ro,
                            .headers = h->headers,
                            .params = h->np ? h->params : NULL,
                            .body = body,
                            .body_len = body_len,
                            .content_type = content_type,
                            .retry = h->retries > 0 ? 1 : 0};
    rc = cipc_request(s, h->method, cipc_cli_url_shorthand(h->url, "http", url, sizeof url), &ro,
                      &r);
    if (rc < 0) {
        const char *msg = cipc_session_errmsg(s);
        fprintf(stderr, "cipc %s: %s\n", h->cmd, *msg ? msg : cipc_strerror(rc));
        goto out;
    }
    print_response(r, h->pretty, h->show_head, tty);
    fflush(stdout);
    status = 0;
    int code = cipc_response_status(r);
    if (h->check_status && code >= (h->follow ? 400 : 300) && code < 600) {
        status = code >= 500 ? 5 : code >= 400 ? 4 : 3;
        fprintf(stderr, "cipc: HTTP %d %s\n", code, cipc_response_reason(r));
    }
    if (ferror(stdout)) {
        fprintf(stderr, "cipc %s: cannot write the output\n", h->cmd);
        status = 1;
    }

out:
    cipc_response_free(r);
    cipc_session_free(s);
    for (int i = 0; i < h->nowned; i++)
        free(h->owned[i]);
    free(h);
    return status;
}
