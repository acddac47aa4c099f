/* src/process/proc_internal.h -- cipc_process internals the tests reach. */
#ifndef CIPC_PROCESS_PROC_INTERNAL_H
#define CIPC_PROCESS_PROC_INTERNAL_H

#include "cipc/process.h"

/* Close the handle's pidfd, so cipc_process_join() takes its fallback path (waitpid with
 * a backing-off sleep), as on a kernel without pidfd_open. Tests only. */
void cipc__process_drop_pidfd(cipc_process *p);

#endif
