/* apps/cipc/cli.h -- the subcommands of the `cipc` binary that live in their own files.
 * Each takes the arguments from its own name on (argv[0] is the subcommand) and returns
 * the process exit status. Not public API. */
#ifndef CIPC_APPS_CLI_H
#define CIPC_APPS_CLI_H

#include <stddef.h>

/* `cipc map [options] -- COMMAND [ARGS...]` (map.c): run COMMAND for each line of stdin
 * on a process pool, output in input order. Exit status 0, 1 (a task failed) or 2. */
int cipc_cli_map(int argc, char **argv);

/* cipc pub / sub / push / pop (bus.c); argv[0] is the subcommand. */
int cipc_cli_bus(int argc, char **argv);

/* cipc get / post / put / patch / delete / request (http.c); argv[0] is the subcommand
 * (for "request", argv[1] is the method). Exit status 0, 1, 2, or 3/4/5 (--check-status). */
int cipc_cli_http(int argc, char **argv);

/* cipc serve (serve.c): run the hub until SIGINT/SIGTERM. Exit 0, 1 or 2. */
int cipc_cli_serve(int argc, char **argv);

/* cipc ws (ws.c): interactive on a terminal, line by line in pipes. Exit 0, 1 or 2. */
int cipc_cli_ws(int argc, char **argv);

/* httpie's URL shorthand (http.c): ":8080/x" -> "<scheme>://localhost:8080/x", and a URL
 * without "scheme://" gets "<scheme>://". Writes into buf (truncating); returns buf. */
const char *cipc_cli_url_shorthand(const char *arg, const char *scheme, char *buf, size_t size);

/* An option "--name=value" or "--name" / "-x": the name into buf (truncated to size),
 * and the value after '=' (a view into arg), or NULL when there is none (http.c). */
const char *cipc_cli_split_opt(const char *arg, char *buf, size_t size);

#endif
