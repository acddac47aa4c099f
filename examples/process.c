/* examples/process.c -- the seed's multiprocessing.Process snippet in C.
 *
 *     def worker_function(name):
 *         print(f'Worker {name} PID: {os.getpid()}')
 *
 *     if __name__ == '__main__':
 *         processes = []
 *         for i in range(4):
 *             p = Process(target=worker_function, args=(i,))
 *             processes.append(p)
 *             p.start()
 *
 *         for p in processes:
 *             p.join()
 *
 * Prints "Worker 0 PID: <pid>" .. "Worker 3 PID: <pid>", one line per child, in whatever
 * order the children run. Exits 0 when every worker exited 0. Takes no arguments (any
 * are ignored). */
#include <cipc.h>
#include <stdio.h>
#include <unistd.h>

/* Runs in the child: its own copy of `arg`, its own pid. */
static int worker_function(void *arg)
{
    int name = *(const int *)arg;
    printf("Worker %d PID: %ld\n", name, (long)getpid());
    return 0;
}

int main(void)
{
    cipc_process *processes[4] = {NULL};
    int ids[4];
    int failed = 0;
    for (int i = 0; i < 4; i++) {
        ids[i] = i;
        int rc = cipc_process_start(worker_function, &ids[i], NULL, &processes[i]);
        if (rc < 0) {
            fprintf(stderr, "start worker %d: %s\n", i, cipc_strerror(rc));
            failed = 1;
        }
    }
    for (int i = 0; i < 4; i++) {
        if (!processes[i])
            continue;
        if (cipc_process_join(processes[i], -1) < 0 || cipc_process_exitcode(processes[i]) != 0)
            failed = 1;
        cipc_process_free(processes[i]);
    }
    return failed;
}
