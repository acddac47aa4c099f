/* apps/cipc/cli.h -- the subcommands of the `cipc` binary that live in their own files.
 * Each takes the arguments from its own name on (argv[0] is the subcommand) and returns
 * the process exit status. Not public API. */
#ifndef CIPC_APPS_CLI_H
#define CIPC_APPS_CLI_H

/* `cipc map [options] -- COMMAND [ARGS...]` (map.c): run COMMAND for each line of stdin
 * on a process pool, output in input order. Exit status 0, 1 (a task failed) or 2. */
int cipc_cli_map(int argc, char **argv);

/* cipc pub / sub / push / pop (bus.c); argv[0] is the subcommand. */
int cipc_cli_bus(int argc, char **argv);

/* cipc serve (serve.c): run the hub until SIGINT/SIGTERM. Exit 0, 1 or 2. */
int cipc_cli_serve(int argc, char **argv);

#endif
