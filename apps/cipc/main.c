/* cipc -- the command line. Uses the public API only (as redis-cli uses hiredis).
 * main.c only dispatches; each family of subcommands lives in its own file, with --help.
 *
 *   cipc get|post|put|patch|delete URL [REQUEST_ITEM... | JSON | -]
 *                                     HTTP in the manner of httpie (http.c): key=value,
 *                                     key:=json, Name:value, key==value; pretty coloured
 *                                     JSON on a terminal, the body as received when piped
 *   cipc request METHOD URL [...]     any method, same items and options
 *   cipc ws URL [MESSAGE...]          WebSocket (ws.c): interactive on a terminal, each
 *                                     line of stdin sent in pipes, replies printed a line each
 *   cipc pub CHANNEL MESSAGE          publish to a channel (cipc broker, hub or Redis)
 *   cipc sub CHANNEL|PATTERN...       print messages as they come
 *   cipc push QUEUE MESSAGE           push a work item
 *   cipc pop QUEUE [--wait S]         take the oldest work item
 *   cipc serve [options]              run the hub (serve.c; docs/hub.md)
 *   cipc map [-j N] -- COMMAND {}     run COMMAND for each line of stdin on a process
 *                                     pool, output in input order (map.c)
 *   cipc version
 *
 * pub/sub/push/pop are in bus.c (`cipc pub --help`): --url (default $CIPC_URL, else
 * redis://127.0.0.1:7379).
 *
 * HTTP options (`cipc get --help`): -H 'Name: value' (repeatable), --timeout SECONDS
 * (decimals allowed, default 30), --retries N, --follow, --check-status, --pretty=MODE,
 * -i (print the status line and headers), --insecure, --cacert FILE.
 * Exit status, httpie's: 0 for any HTTP response; with --check-status 3 for 3xx (not
 * followed), 4 for 4xx, 5 for 5xx, with "cipc: HTTP 404 Not Found" on stderr; 1 when no
 * response came (the reason is printed on one line); 2 for bad usage. `cipc ws`
 * (`cipc ws --help`): 0 after a close with 1000/1001, 1 when the connection failed or the
 * server closed with another code (printed), 2 for bad usage. `cipc serve` (serve.c,
 * `cipc serve --help`) runs the hub until SIGINT/SIGTERM. */
#include <cipc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: cipc get|post|put|patch|delete URL [REQUEST_ITEM... | JSON | -] [options]\n"
               "       cipc request METHOD URL [REQUEST_ITEM... | BODY | -] [options]\n"
               "            (see cipc get --help)\n"
               "       cipc ws URL [MESSAGE...] [options]  (see cipc ws --help)\n"
               "       cipc pub CHANNEL MESSAGE | sub NAME... | push QUEUE MESSAGE | pop QUEUE\n"
               "            [--url URL]   (see cipc pub --help)\n"
               "       cipc map [-j N] [options] -- COMMAND [ARGS...]  (see cipc map --help)\n"
               "       cipc serve [options]   the hub (see cipc serve --help)\n"
               "       cipc version\n");
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
        return cipc_cli_ws(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve"))
        return cipc_cli_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "map"))
        return cipc_cli_map(argc - 1, argv + 1);
    if (!strcmp(cmd, "pub") || !strcmp(cmd, "sub") || !strcmp(cmd, "push") ||
        !strcmp(cmd, "pop"))
        return cipc_cli_bus(argc - 1, argv + 1);
    if (!strcmp(cmd, "get") || !strcmp(cmd, "post") || !strcmp(cmd, "put") ||
        !strcmp(cmd, "patch") || !strcmp(cmd, "delete") || !strcmp(cmd, "request"))
        return cipc_cli_http(argc - 1, argv + 1);
    fprintf(stderr, "cipc: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
