/* cipc ws -- a WebSocket client for people and for scripts, on the asynchronous client
 * (cipc_ws_connect on a cipc_loop; the public API only).
 *
 *   cipc ws URL [options]              stdin a terminal: interactive; a pipe or file: pipe mode
 *   cipc ws URL MESSAGE... [options]   send each MESSAGE, print the replies
 *
 * Interactive (stdin is a terminal): each line typed is sent as a text message and each
 * message received is printed on its own line as soon as it arrives, while you type.
 * Ctrl-D closes the connection with 1000 and exits 0; Ctrl-C does the same.
 * Pipe mode (stdin not a terminal): each line of stdin is sent as a text message (a line
 * that is not UTF-8 goes as a binary message) and every message received is printed on a
 * line; once stdin has ended and everything is sent, cipc closes with 1000 and exits 0
 * when --count N messages have been received in all, or when no message has come for
 * --wait MS (default 1000). With MESSAGE arguments they replace stdin, and --count
 * defaults to their number (one reply each).
 * Binary messages are written raw, except on a terminal, where a note with their size is
 * printed instead; with --binary they are printed in base64 (RFC 4648, one line each).
 *
 * Exit status: 0 after a close with 1000 or 1001 (or a close frame without a code), by
 * either side; 1 when connecting fails or the server closes with another code or the
 * connection is lost (one line on stderr with the code and reason); 2 for bad usage
 * (including a URL that is not ws:// or wss://). URL shorthand as for cipc get:
 * ":8080/x" is ws://localhost:8080/x; no scheme means ws://.
 *
 * How: a thread reads stdin (so a terminal, a pipe and a file all work, blocking) and
 * hands lines to the loop through a uv_async; at most STDIN_QUEUE_MAX bytes wait in that
 * queue, and sends use CIPC_WS_SLOW_REFUSE + on_drain, so a large stdin is streamed with
 * bounded memory. */
#include <cipc.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cli.h"

#define MAX_HEADERS       64
#define DEFAULT_TIMEOUT_S 10
#define DEFAULT_WAIT_MS   1000
#define STDIN_QUEUE_MAX   (1u << 20)

static void ws_usage(FILE *f)
{
    fprintf(f,
            "usage: cipc ws URL [options]              (interactive on a terminal, else\n"
            "                                          each line of stdin is sent)\n"
            "       cipc ws URL MESSAGE... [options]   send each MESSAGE, print the replies\n"
            "URL: ws://host[:port]/path or wss://...; ':8080/x' means ws://localhost:8080/x\n"
            "options:\n"
            "  -H 'Name: value'   add a handshake header (repeatable)\n"
            "  --timeout SECONDS  connect + handshake timeout; decimals allowed, 0 waits\n"
            "                     forever (default %d)\n"
            "  --count N          pipe mode: exit 0 once N messages have been received and\n"
            "                     stdin has ended (default: the number of MESSAGEs)\n"
            "  --wait MS          pipe mode: after stdin ends, exit 0 when no message has\n"
            "                     come for MS milliseconds (default %d)\n"
            "  --binary           print binary messages in base64, one line each (default:\n"
            "                     raw bytes; on a terminal only a note with the size)\n"
            "  --cacert FILE      wss: verify the server with this CA bundle\n"
            "  --insecure         wss: do not verify certificates (testing only)\n"
            "  -h, --help         this help\n"
            "Ctrl-D (end of input) closes with 1000. Exit status: 0 after a close with\n"
            "1000/1001, 1 when the connection fails or closes with another code, 2 for bad usage\n",
            DEFAULT_TIMEOUT_S, DEFAULT_WAIT_MS);
}

typedef struct line {
    struct line *next;
    size_t len;
    char data[];
} line;

typedef struct wsapp {
    cipc_loop *loop;
    cipc_ws *ws;     /* NULL once on_close has run */
    uv_async_t wake; /* the stdin thread: lines queued or stdin ended */
    uv_timer_t idle; /* pipe mode: --wait */
    uv_signal_t sigint;
    int handles_open; /* wake, idle, sigint initialised (close them once) */

    /* Shared with the stdin thread, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    line *head, *tail;
    size_t queued; /* bytes in the queue */
    int eof;       /* no more lines will come */
    int stop;      /* the loop side is gone: the thread must not touch `wake` */

    int interactive, tty_out, binary_b64;
    int opened, we_closed, busy, status, thread_started;
    long count, got, wait_ms;
    char err[512]; /* the first error reported by on_error */
} wsapp;

/* --- The queue of lines (both threads) -------------------------------------------------- */

/* Append a line; waits while the queue is full. Returns 0, or -1 when the loop side is
 * gone. Called from the stdin thread, or from the loop thread before anything runs. */
static int enqueue(wsapp *a, const char *data, size_t len, int wait)
{
    line *l = malloc(sizeof *l + len + 1);
    if (!l)
        return -1;
    l->next = NULL;
    l->len = len;
    memcpy(l->data, data, len);
    l->data[len] = '\0';
    pthread_mutex_lock(&a->mu);
    while (wait && a->queued > STDIN_QUEUE_MAX && !a->stop)
        pthread_cond_wait(&a->cv, &a->mu);
    if (a->stop) {
        pthread_mutex_unlock(&a->mu);
        free(l);
        return -1;
    }
    if (a->tail)
        a->tail->next = l;
    else
        a->head = l;
    a->tail = l;
    a->queued += len;
    if (wait)
        uv_async_send(&a->wake); /* under mu: the loop closes `wake` only after setting stop */
    pthread_mutex_unlock(&a->mu);
    return 0;
}

static void set_eof(wsapp *a)
{
    pthread_mutex_lock(&a->mu);
    a->eof = 1;
    if (!a->stop && a->thread_started)
        uv_async_send(&a->wake);
    pthread_mutex_unlock(&a->mu);
}

/* The stdin thread: read lines (without "\n" or "\r\n") and queue them. */
static void *stdin_main(void *arg)
{
    wsapp *a = arg;
    cipc_buf part = CIPC_BUF_INIT;
    char chunk[65536];
    for (;;) {
        ssize_t n = read(0, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        const char *p = chunk, *end = chunk + n;
        int gone = 0;
        while (p < end && !gone) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl) {
                if (cipc_buf_append(&part, p, (size_t)(end - p)) < 0)
                    gone = 1;
                break;
            }
            if (cipc_buf_append(&part, p, (size_t)(nl - p)) < 0) {
                gone = 1;
                break;
            }
            size_t len = part.len;
            if (len && part.data[len - 1] == '\r')
                len--;
            gone = enqueue(a, len ? part.data : "", len, 1) < 0;
            cipc_buf_reset(&part);
            p = nl + 1;
        }
        if (gone) {
            cipc_buf_free(&part);
            return NULL;
        }
    }
    if (part.len)
        enqueue(a, part.data, part.len, 1);
    cipc_buf_free(&part);
    set_eof(a);
    return NULL;
}

/* --- The loop side ---------------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

/* The connection is over: let the stdin thread go and close our handles, so the loop
 * runs out of work. */
static void finish(wsapp *a)
{
    pthread_mutex_lock(&a->mu);
    a->stop = 1;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    if (a->handles_open) {
        a->handles_open = 0;
        uv_close((uv_handle_t *)&a->wake, on_handle_closed);
        uv_close((uv_handle_t *)&a->idle, on_handle_closed);
        uv_close((uv_handle_t *)&a->sigint, on_handle_closed);
    }
}

static void start_close(wsapp *a)
{
    if (!a->ws || a->we_closed)
        return;
    a->we_closed = 1;
    uv_timer_stop(&a->idle);
    if (cipc_ws_close(a->ws, CIPC_WS_CLOSE_NORMAL, NULL) < 0)
        a->we_closed = 1; /* already closing: on_close follows anyway */
}

static void on_idle(uv_timer_t *t)
{
    start_close(t->data);
}

static void arm_idle(wsapp *a)
{
    if (!a->we_closed && a->ws)
        uv_timer_start(&a->idle, on_idle, (uint64_t)a->wait_ms, 0);
}

/* Send queued lines until the queue is empty or the socket is busy. */
static void pump(wsapp *a)
{
    if (!a->ws || !a->opened || a->we_closed)
        return;
    for (;;) {
        pthread_mutex_lock(&a->mu);
        line *l = a->head;
        if (l) {
            a->head = l->next;
            if (!a->head)
                a->tail = NULL;
            a->queued -= l->len;
            pthread_cond_broadcast(&a->cv);
        }
        int eof = a->eof;
        pthread_mutex_unlock(&a->mu);
        if (!l) {
            if (eof) {
                if (a->interactive || (a->count > 0 && a->got >= a->count))
                    start_close(a);
                else
                    arm_idle(a);
            }
            return;
        }
        int rc = cipc_ws_send(a->ws, CIPC_WS_TEXT, l->data, l->len);
        if (rc == CIPC_EPROTO) { /* not UTF-8: send the bytes as they are */
            fprintf(stderr, "cipc ws: a line is not UTF-8; sent as a binary message\n");
            rc = cipc_ws_send(a->ws, CIPC_WS_BINARY, l->data, l->len);
        }
        if (rc == CIPC_EBUSY) { /* put it back; on_drain calls us again */
            pthread_mutex_lock(&a->mu);
            l->next = a->head;
            a->head = l;
            if (!a->tail)
                a->tail = l;
            a->queued += l->len;
            pthread_mutex_unlock(&a->mu);
            a->busy = 1;
            return;
        }
        free(l);
        if (rc < 0) {
            fprintf(stderr, "cipc ws: send: %s\n", cipc_strerror(rc));
            a->status = 1;
            start_close(a);
            return;
        }
    }
}

static void on_wake(uv_async_t *h)
{
    wsapp *a = h->data;
    if (!a->busy)
        pump(a);
}

static void on_sigint(uv_signal_t *h, int signum)
{
    (void)signum;
    wsapp *a = h->data;
    if (a->we_closed || !a->opened)
        exit(130); /* a second Ctrl-C, or still connecting */
    start_close(a);
}

static void ws_thread_start(wsapp *a)
{
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    a->thread_started = 1;
    if (pthread_create(&th, &at, stdin_main, a) != 0) {
        a->thread_started = 0;
        fprintf(stderr, "cipc ws: cannot start the stdin thread\n");
        set_eof(a);
    }
    pthread_attr_destroy(&at);
}

static void h_open(cipc_ws *ws, cipc_http_req *req, void *ud)
{
    (void)ws;
    (void)req;
    wsapp *a = ud;
    a->opened = 1;
    if (a->interactive)
        fprintf(stderr, "cipc ws: connected; type lines to send them, Ctrl-D to close\n");
    if (!a->eof)
        ws_thread_start(a);
    pump(a);
}

static void put_base64(const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char out[4];
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        out[0] = tab[v >> 18 & 63];
        out[1] = tab[v >> 12 & 63];
        out[2] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[3] = i + 2 < n ? tab[v & 63] : '=';
        fwrite(out, 1, 4, stdout);
    }
}

static void h_message(cipc_ws *ws, int type, const void *data, size_t len, void *ud)
{
    (void)ws;
    wsapp *a = ud;
    a->got++;
    if (type == CIPC_WS_BINARY && a->binary_b64)
        put_base64(data, len);
    else if (type == CIPC_WS_BINARY && a->tty_out)
        printf("[binary message: %zu bytes; --binary prints it in base64]", len);
    else
        fwrite(data, 1, len, stdout);
    putchar('\n');
    fflush(stdout);
    if (ferror(stdout)) {
        a->status = 1;
        start_close(a);
        return;
    }
    pthread_mutex_lock(&a->mu);
    int done_input = a->eof && !a->head;
    pthread_mutex_unlock(&a->mu);
    if (done_input && !a->interactive) {
        if (a->count > 0 && a->got >= a->count)
            start_close(a);
        else
            arm_idle(a);
    }
}

static void h_drain(cipc_ws *ws, void *ud)
{
    (void)ws;
    wsapp *a = ud;
    a->busy = 0;
    pump(a);
}

static void h_error(cipc_ws *ws, int err, const char *msg, void *ud)
{
    (void)ws;
    wsapp *a = ud;
    if (!a->err[0])
        snprintf(a->err, sizeof a->err, "%s", msg && *msg ? msg : cipc_strerror(err));
}

static void h_close(cipc_ws *ws, int code, const char *reason, size_t len, void *ud)
{
    (void)ws;
    wsapp *a = ud;
    a->ws = NULL;
    if (!a->opened) {
        fprintf(stderr, "cipc ws: %s\n", a->err[0] ? a->err : "cannot connect");
        a->status = 1;
    } else if (code == CIPC_WS_CLOSE_ABNORMAL && !a->we_closed) {
        fprintf(stderr, "cipc ws: connection lost (1006)%s%s\n", a->err[0] ? ": " : "", a->err);
        a->status = 1;
    } else if (!a->we_closed && code != CIPC_WS_CLOSE_NORMAL && code != CIPC_WS_CLOSE_GOING_AWAY &&
               code != CIPC_WS_CLOSE_NO_STATUS) {
        fprintf(stderr, "cipc ws: closed by the server with %d%s%.*s\n", code, len ? ": " : "",
                (int)len, reason ? reason : "");
        a->status = 1;
    }
    finish(a);
}

/* --- The command ------------------------------------------------------------------------ */

static int parse_num(const char *opt, const char *v, double *out)
{
    char *end = NULL;
    double d = strtod(v, &end);
    if (!*v || *end || !isfinite(d) || d < 0) {
        fprintf(stderr, "cipc ws: %s takes a number >= 0, not '%s'\n", opt, v);
        return 2;
    }
    *out = d;
    return 0;
}

int cipc_cli_ws(int argc, char **argv)
{
    const char *url_arg = NULL, *headers[MAX_HEADERS + 1];
    int nh = 0, binary = 0, no_more_opts = 0;
    double timeout_s = DEFAULT_TIMEOUT_S, count = -1, wait_ms = DEFAULT_WAIT_MS;
    cipc_ws_client_opts co = {0};
    int nmsgs = 0;
    const char *msgs[256];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!no_more_opts && a[0] == '-' && a[1] != '\0') {
            char name[64];
            const char *v;
            if (!strcmp(a, "--")) {
                no_more_opts = 1;
                continue;
            }
            if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
                ws_usage(stdout);
                return 0;
            }
            v = cipc_cli_split_opt(a, name, sizeof name);
            int takes = !strcmp(name, "-H") || !strcmp(name, "--header") ||
                        !strcmp(name, "--timeout") || !strcmp(name, "--count") ||
                        !strcmp(name, "--wait") || !strcmp(name, "--cacert");
            if (takes && !v) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "cipc ws: %s needs a value\n", name);
                    return 2;
                }
                v = argv[++i];
            } else if (!takes && v) {
                fprintf(stderr, "cipc ws: %s takes no value\n", name);
                return 2;
            }
            int rc = 0;
            if (!strcmp(name, "-H") || !strcmp(name, "--header")) {
                const char *colon = strchr(v, ':');
                if (!colon || colon == v || nh == MAX_HEADERS) {
                    fprintf(stderr, "cipc ws: bad header '%s' (want 'Name: value')\n", v);
                    return 2;
                }
                headers[nh++] = v;
            } else if (!strcmp(name, "--timeout")) {
                rc = parse_num(name, v, &timeout_s);
            } else if (!strcmp(name, "--count")) {
                rc = parse_num(name, v, &count);
            } else if (!strcmp(name, "--wait")) {
                rc = parse_num(name, v, &wait_ms);
            } else if (!strcmp(name, "--cacert")) {
                co.ca_file = v;
            } else if (!strcmp(name, "--insecure")) {
                co.insecure = 1;
            } else if (!strcmp(name, "--binary")) {
                binary = 1;
            } else {
                fprintf(stderr, "cipc ws: unknown option '%s'\n", a);
                ws_usage(stderr);
                return 2;
            }
            if (rc)
                return rc;
        } else if (!url_arg) {
            url_arg = a;
        } else if (nmsgs < (int)(sizeof msgs / sizeof msgs[0])) {
            msgs[nmsgs++] = a;
        } else {
            fprintf(stderr, "cipc ws: too many MESSAGE arguments (at most 256)\n");
            return 2;
        }
    }
    if (!url_arg) {
        fprintf(stderr, "cipc ws: the URL is missing\n");
        ws_usage(stderr);
        return 2;
    }
    headers[nh] = NULL;
    co.headers = headers;
    /* 0: "forever" (a year: the client takes 0 and negative values as its default). */
    co.connect_timeout_ms = timeout_s == 0 ? 365L * 86400 * 1000 : (long)ceil(timeout_s * 1000);
    char url[4096];
    cipc_cli_url_shorthand(url_arg, "ws", url, sizeof url);
    if (strncmp(url, "ws://", 5) && strncmp(url, "wss://", 6)) {
        fprintf(stderr, "cipc ws: '%s' is not a ws:// or wss:// URL\n", url_arg);
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    wsapp *a = calloc(1, sizeof *a);
    if (!a) {
        fprintf(stderr, "cipc ws: out of memory\n");
        return 1;
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->interactive = nmsgs == 0 && isatty(0);
    a->tty_out = isatty(1);
    a->binary_b64 = binary;
    a->count = count >= 0 ? (long)count : nmsgs;
    a->wait_ms = (long)wait_ms;
    for (int i = 0; i < nmsgs; i++)
        enqueue(a, msgs[i], strlen(msgs[i]), 0);
    if (nmsgs)
        a->eof = 1;

    int status = 1, rc = cipc_loop_new(NULL, &a->loop);
    if (rc < 0) {
        fprintf(stderr, "cipc ws: %s\n", cipc_strerror(rc));
        goto out;
    }
    uv_loop_t *uv = cipc_loop_uv(a->loop);
    uv_async_init(uv, &a->wake, on_wake);
    uv_timer_init(uv, &a->idle);
    uv_signal_init(uv, &a->sigint);
    a->wake.data = a->idle.data = a->sigint.data = a;
    a->handles_open = 1;
    if (a->interactive)
        uv_signal_start(&a->sigint, on_sigint, SIGINT);

    cipc_ws_opts wo = {.slow_policy = CIPC_WS_SLOW_REFUSE};
    cipc_ws_handlers hs = {.on_open = h_open,
                           .on_message = h_message,
                           .on_close = h_close,
                           .on_error = h_error,
                           .on_drain = h_drain,
                           .opts = &wo};
    rc = cipc_ws_connect(a->loop, url, &co, &hs, a, &a->ws);
    if (rc < 0) {
        fprintf(stderr, "cipc ws: %s: %s\n", url, cipc_strerror(rc));
        a->status = rc == CIPC_EURL ? 2 : 1;
        a->ws = NULL;
        finish(a);
    }
    cipc_loop_run(a->loop, CIPC_RUN_DEFAULT);
    status = a->status;
    if (cipc_loop_free(a->loop) < 0) {
        fprintf(stderr, "cipc ws: the loop still had open handles\n");
        status = status ? status : 1;
    }

out:
    pthread_mutex_lock(&a->mu);
    a->stop = 1;
    pthread_cond_broadcast(&a->cv);
    line *l = a->head;
    a->head = a->tail = NULL;
    int thread = a->thread_started && !a->eof;
    pthread_mutex_unlock(&a->mu);
    while (l) {
        line *next = l->next;
        free(l);
        l = next;
    }
    /* A stdin thread still blocked in read() keeps `a` (and exits with the process). */
    if (!thread) {
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->cv);
        free(a);
    }
    return status;
}
