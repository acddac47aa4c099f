/* src/core/core_internal.h -- core helpers shared by cipc's modules, private to cipc. */
#ifndef CIPC_SRC_CORE_CORE_INTERNAL_H
#define CIPC_SRC_CORE_CORE_INTERNAL_H

/* Set SIGPIPE to ignored unless the program handles or ignores it already (loop.c). Called
 * by the servers when they are created; thread-safe (sigaction). */
void cipc__ignore_sigpipe(void);

#endif
