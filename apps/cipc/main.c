/* cipc -- the command line. Uses the public API only (as redis-cli uses hiredis).
 *
 *   cipc get URL [options]            GET and print the body
 *   cipc post URL [JSON|-] [options]  POST a JSON body (an argument, or stdin with "-")
 *   cipc request METHOD URL [BODY|-]  any method; BODY is sent as JSON if it parses
 *   cipc ws URL [MESSAGE...]          WebSocket: send each message (or each line of stdin)
 *                                     as text and print each reply on a line
 *   cipc pub CHANNEL MESSAGE          publish to a channel (cipc broker, hub or Redis)
 *   cipc sub CHANNEL|PATTERN...       print messages as they come
 *   cipc push QUEUE MESSAGE           push a work item
 *   cipc pop QUEUE [--wait S]         take the oldest work item
 *   cipc serve [options]              run the hub (serve.c; cipc serve --help)
 *   cipc map [-j N] -- COMMAND {}     run COMMAND for each line of stdin on a process
 *                                     pool, output in input order (map.c)
 *   cipc version
 *
 * pub/sub/push/pop are in bus.c (`cipc pub --help`): --url (default $CIPC_URL, else
 * redis://127.0.0.1:7379).
 *
 * Options: -H 'Name: value' (repeatable), --timeout MS, --retries N, -i (print the
 * status line and headers), --insecure (do not verify TLS certificates), --cacert FILE.
 * Exit status: 0 for a 1xx-3xx response, 4 for 4xx, 5 for 5xx, 1 when no response came
 * (the reason is printed), 2 for bad usage. `cipc ws`: 0 after a clean close, 1 when the
 * connection failed or a reply did not come within --timeout (default 10000 ms). The hub (`cipc serve`) arrives with its
 * own issue. */
#include <cipc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"


static void usage(FILE *f)
{
    fprintf(f, "usage: cipc get URL [options]\n"
               "       cipc post URL [JSON|-] [options]\n"
               "       cipc request METHOD URL [BODY|-] [options]\n"
               "       cipc ws URL [MESSAGE...] [-H ...] [--timeout MS] [--cacert FILE]\n"
               "       cipc pub CHANNEL MESSAGE | sub NAME... | push QUEUE MESSAGE | pop QUEUE\n"
               "            [--url URL]   (see cipc pub --help)\n"
               "       cipc map [-j N] [options] -- COMMAND [ARGS...]  (see cipc map --help)\n"
               "       cipc version\n"
               "options:\n"
               "  -H 'Name: value'  add a request header (repeatable)\n"
               "  --timeout MS      total timeout per attempt (default 30000)\n"
               "  --retries N       attempts in all for failures and 429/502/503/504\n"
               "  -i                print the status line and headers before the body\n"
               "  --cacert FILE     verify the server with this CA bundle\n"
               "  --insecure        do not verify TLS certificates (testing only)\n");
}

static char *read_stdin(size_t *len)
{
    cipc_buf b = CIPC_BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
        if (cipc_buf_append(&b, chunk, n) < 0) {
            cipc_buf_free(&b);
            return NULL;
        }
    }
    return cipc_buf_steal(&b, len);
}

#define MAX_HEADERS 64

/* One message: send it, wait for the reply, print it. Returns 0 or 1. */
static int ws_exchange(cipc_wsc *c, const char *msg, size_t len, long timeout)
{
    int rc = cipc_wsc_send(c, CIPC_WS_TEXT, msg, len);
    cipc_ws_msg m;
    if (rc == 0)
        rc = cipc_wsc_recv(c, &m, timeout);
    if (rc < 0) {
        fprintf(stderr, "cipc: %s%s%s\n", cipc_strerror(rc), *cipc_wsc_errmsg(c) ? ": " : "",
                cipc_wsc_errmsg(c));
        return 1;
    }
    fwrite(m.data, 1, m.len, stdout);
    putchar('\n');
    fflush(stdout);
    return 0;
}

/* cipc ws URL [MESSAGE...]: text messages out, replies printed a line each. */
static int cmd_ws(int argc, char **argv)
{
    const char *url = NULL, *headers[MAX_HEADERS + 1];
    int nh = 0, first_msg = argc;
    long timeout = 10000;
    cipc_ws_client_opts co = {0};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-H") && i + 1 < argc && nh < MAX_HEADERS) {
            headers[nh++] = argv[++i];
        } else if (!strcmp(a, "--timeout") && i + 1 < argc) {
            timeout = strtol(argv[++i], NULL, 10);
        } else if (!strcmp(a, "--cacert") && i + 1 < argc) {
            co.ca_file = argv[++i];
        } else if (!strcmp(a, "--insecure")) {
            co.insecure = 1;
        } else if (!url) {
            url = a;
        } else {
            first_msg = i; /* messages from here on (options before them) */
            break;
        }
    }
    if (!url) {
        usage(stderr);
        return 2;
    }
    headers[nh] = NULL;
    co.headers = headers;
    co.connect_timeout_ms = timeout;
    cipc_wsc *c = NULL;
    int rc = cipc_wsc_connect(url, &co, NULL, &c);
    if (rc < 0) {
        fprintf(stderr, "cipc: %s\n", c ? cipc_wsc_errmsg(c) : cipc_strerror(rc));
        cipc_wsc_free(c);
        return rc == CIPC_EURL ? 2 : 1;
    }
    int status = 0;
    if (first_msg < argc) {
        for (int i = first_msg; i < argc && status == 0; i++)
            status = ws_exchange(c, argv[i], strlen(argv[i]), timeout);
    } else {
        char line[65536];
        while (status == 0 && fgets(line, sizeof line, stdin)) {
            size_t n = strcspn(line, "\r\n");
            status = ws_exchange(c, line, n, timeout);
        }
    }
    if (cipc_wsc_close(c, CIPC_WS_CLOSE_NORMAL, NULL) < 0 && status == 0)
        status = 1;
    cipc_wsc_free(c);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("cipc %s\n", cipc_version());
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "ws"))
        return cmd_ws(argc, argv);
    if (!strcmp(cmd, "serve"))
        return cipc_cli_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "map"))
        return cipc_cli_map(argc - 1, argv + 1);
    if (!strcmp(cmd, "pub") || !strcmp(cmd, "sub") || !strcmp(cmd, "push") ||
        !strcmp(cmd, "pop"))
        return cipc_cli_bus(argc - 1, argv + 1);
    const char *method = NULL;
    int argi = 2;
    if (!strcmp(cmd, "get")) {
        method = "GET";
    } else if (!strcmp(cmd, "post")) {
        method = "POST";
    } else if (!strcmp(cmd, "request") && argc > 2) {
        method = argv[2];
        argi = 3;
    } else {
        fprintf(stderr, "cipc: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }

    const char *url = NULL, *body_arg = NULL, *cacert = NULL;
    long timeout = 0;
    int retries = 0, show_head = 0, insecure = 0, nh = 0;
    cipc_kv headers[MAX_HEADERS + 1];
    char *hbuf[MAX_HEADERS];
    for (; argi < argc; argi++) {
        const char *a = argv[argi];
        if (!strcmp(a, "-H") && argi + 1 < argc) {
            char *h = strdup(argv[++argi]);
            char *colon = h ? strchr(h, ':') : NULL;
            if (!colon || nh == MAX_HEADERS) {
                fprintf(stderr, "cipc: bad header '%s' (want 'Name: value')\n", argv[argi]);
                free(h);
                return 2;
            }
            *colon = '\0';
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            hbuf[nh] = h;
            headers[nh].key = h;
            headers[nh].value = v;
            nh++;
        } else if (!strcmp(a, "--timeout") && argi + 1 < argc) {
            timeout = strtol(argv[++argi], NULL, 10);
        } else if (!strcmp(a, "--retries") && argi + 1 < argc) {
            retries = atoi(argv[++argi]);
        } else if (!strcmp(a, "--cacert") && argi + 1 < argc) {
            cacert = argv[++argi];
        } else if (!strcmp(a, "--insecure")) {
            insecure = 1;
        } else if (!strcmp(a, "-i")) {
            show_head = 1;
        } else if (!url) {
            url = a;
        } else if (!body_arg) {
            body_arg = a;
        } else {
            fprintf(stderr, "cipc: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    headers[nh].key = NULL;
    headers[nh].value = NULL;
    if (!url) {
        usage(stderr);
        return 2;
    }

    char *stdin_body = NULL;
    size_t body_len = 0;
    const char *body = body_arg;
    if (body_arg && !strcmp(body_arg, "-")) {
        stdin_body = read_stdin(&body_len);
        body = stdin_body;
    } else if (body_arg) {
        body_len = strlen(body_arg);
    }
    json_t *json = NULL;
    if (body) {
        json_error_t jerr;
        json = json_loadb(body, body_len, JSON_DECODE_ANY, &jerr);
        if (!json && !strcmp(cmd, "post")) {
            fprintf(stderr, "cipc: the body is not JSON: %s (line %d, column %d)\n", jerr.text,
                    jerr.line, jerr.column);
            free(stdin_body);
            return 2;
        }
    }

    cipc_session_opts so = {.size = sizeof so,
                            .timeout_ms = timeout,
                            .ca_file = cacert,
                            .danger_accept_invalid_certs = insecure,
                            .retry = {.max_attempts = retries}};
    cipc_session *s = NULL;
    int rc = cipc_session_new(&so, &s);
    if (rc < 0) {
        fprintf(stderr, "cipc: %s\n", cipc_strerror(rc));
        return 1;
    }
    cipc_request_opts ro = {.size = sizeof ro, .headers = headers};
    if (json)
        ro.json = json;
    else if (body) {
        ro.body = body;
        ro.body_len = body_len;
        ro.content_type = "text/plain; charset=utf-8";
    }
    cipc_response *r = NULL;
    rc = cipc_request(s, method, url, &ro, &r);
    int status = 1;
    if (rc < 0) {
        fprintf(stderr, "cipc: %s\n", cipc_session_errmsg(s));
    } else {
        if (show_head) {
            printf("%d %s\n", cipc_response_status(r), cipc_response_reason(r));
            for (size_t i = 0; i < cipc_response_header_count(r); i++) {
                const char *n, *v;
                cipc_response_header_at(r, i, &n, &v);
                printf("%s: %s\n", n, v);
            }
            printf("\n");
        }
        size_t len;
        const void *p = cipc_response_body(r, &len);
        fwrite(p, 1, len, stdout);
        if (len && ((const char *)p)[len - 1] != '\n')
            putchar('\n');
        int code = cipc_response_status(r);
        status = code >= 500 ? 5 : code >= 400 ? 4 : 0;
        if (cipc_response_raise_for_status(r) < 0)
            fprintf(stderr, "cipc: %s\n", cipc_response_errmsg(r));
    }
    cipc_response_free(r);
    cipc_session_free(s);
    json_decref(json);
    free(stdin_body);
    for (int i = 0; i < nh; i++)
        free(hbuf[i]);
    return status;
}
