/* cipc/process.h -- child processes in the manner of Python's multiprocessing.Process
 * (a C function run in a forked child) and subprocess.Popen (a program with argv, envp,
 * pipes and a working directory), and cipc_pipe, a duplex message channel like
 * multiprocessing.Pipe().
 *
 *     static int work(void *arg)
 *     {
 *         printf("Worker %d PID: %d\n", *(int *)arg, (int)getpid());
 *         return 0;                                       (the child's exit code)
 *     }
 *
 *     cipc_process *p = NULL;
 *     int id = 0;
 *     if (cipc_process_start(work, &id, NULL, &p) == 0) {
 *         cipc_process_join(p, -1);
 *         printf("exit code %d\n", cipc_process_exitcode(p));
 *     }
 *     cipc_process_free(p);
 *
 * Exit codes are Python's: the child's exit status (0..255), or -N when signal N killed
 * it (-9 for SIGKILL, -6 for abort()), or CIPC_PROCESS_RUNNING while it has not exited.
 *
 * Fork safety (cipc_process_start). The child is a copy of the parent made by fork(2):
 * it has one thread (the one that called cipc_process_start), a copy of the memory and
 * the file descriptors. In the child:
 * - never use a cipc_loop (or a libuv loop), cipc_client, cipc_server, cipc_session,
 *   WebSocket or other connection inherited from the parent: they share sockets and
 *   epoll state with the parent's copies. Create new ones in the child if it needs them;
 * - a cipc_pipe made before the start is fine to use (that is its purpose): close, in
 *   each process, the end that process does not use (cipc_pipe_close());
 * - if the parent has other threads, only the calling thread exists in the child, and
 *   any lock another thread held at the fork stays locked forever. POSIX then allows
 *   only async-signal-safe functions until exec. In practice with glibc, malloc, free
 *   and stdio are fine (glibc resets their locks at fork), but `fn` must not take locks
 *   of your own or of other libraries (curl, OpenSSL, a logger) that other threads may
 *   hold. From a multi-threaded program prefer cipc_process_spawn() (fork + exec at
 *   once), or start processes before starting threads (the coming process pool's
 *   "forkserver" start method does exactly that for you).
 * Before forking, cipc_process_start() flushes stdout and stderr (so text buffered in
 * the parent is not printed twice). After `fn` returns the child flushes all stdio
 * streams and leaves with _exit(), so the parent's atexit handlers do not run in it.
 *
 * Pipes: with opts.stdin_pipe / stdout_pipe / stderr_pipe the child's fd 0 / 1 / 2 is
 * a pipe whose other end the parent gets from cipc_process_stdin_fd() and friends (they
 * are close-on-exec, blocking, and owned by the cipc_process: closed by
 * cipc_process_free()). Without a pipe the child inherits the parent's fd.
 *
 * Spawned programs inherit only fds 0, 1 and 2 (every other fd of the parent is
 * close-on-exec in the child, like Python's close_fds=True), get an empty signal mask and
 * SIGPIPE back at its default action.
 *
 * Reaping: the child is reaped (waited for) by cipc_process_join(),
 * cipc_process_is_alive() or cipc_process_exitcode() once it has exited. Something else
 * that waits for all children (waitpid(-1), SIGCHLD set to SIG_IGN) takes the exit
 * status away from cipc: those calls then report -ECHILD / not alive.
 *
 * Errors: -EINVAL (bad argument), -ENOMEM, -EAGAIN / -EMFILE (fork, pipe or fd limits),
 * the exec errno negated for a program that cannot be run (-ENOENT, -EACCES, ...),
 * CIPC_ETIMEOUT, CIPC_ECLOSING (pipe: the other end closed), CIPC_ETOOBIG (pipe: a
 * message over the limit), CIPC_ETRUNCATED (pipe: the other end closed mid-message),
 * -EPIPE (pipe: writing to a closed end), CIPC_EPROTO (pipe: broken by an earlier
 * send that timed out part-way).
 *
 * Threading: a cipc_process is used by one thread at a time; different ones from
 * different threads at once. Same for each end of a cipc_pipe (the two ends of a pipe
 * may be used by two threads at once). With opts.daemon, see the note about threads. */
#ifndef CIPC_PROCESS_H
#define CIPC_PROCESS_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include "cipc/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cipc_process cipc_process;
typedef struct cipc_pipe cipc_pipe;

/* cipc_process_exitcode() while the child has not exited (Python's None). */
#define CIPC_PROCESS_RUNNING INT_MIN

/* The body of a child started with cipc_process_start(): its return value, truncated to
 * 8 bits (so -1 gives 255), becomes the child's exit status. */
typedef int (*cipc_process_fn)(void *arg);

/* Process options; zero means the default. Only ever extended at the end. */
typedef struct cipc_process_opts {
    size_t size;          /* sizeof(cipc_process_opts), or 0 for "this version" */
    const char *name;     /* shown by cipc_process_name(); copied. NULL -> "Process-<pid>" */
    int stdin_pipe;       /* 1: the child's stdin is a pipe; write to cipc_process_stdin_fd() */
    int stdout_pipe;      /* 1: the child's stdout is a pipe; read cipc_process_stdout_fd() */
    int stderr_pipe;      /* 1: the child's stderr is a pipe; read cipc_process_stderr_fd() */
    int stderr_to_stdout; /* 1: the child's stderr goes where its stdout goes (2>&1);
                             overrides stderr_pipe */
    int daemon;           /* 1: the child is killed (SIGKILL) when the parent dies. Linux's
                             PR_SET_PDEATHSIG: it fires when the *thread* that started the
                             child exits, so start daemons from a thread that lives as long
                             as the process (the main thread). Survives exec, so it works
                             for cipc_process_spawn() too. */
    const char *cwd;      /* the child's working directory (chdir before fn or exec); NULL:
                             the parent's. A bad one fails the call with its -errno (for
                             cipc_process_start it is checked before the fork; should chdir
                             still fail in the child, it exits 127 without running fn). */
} cipc_process_opts;

/* Start a child process that runs fn(arg) (fork) and exits with its return value, like
 * multiprocessing.Process(target=fn, args=(arg,)).start(). `arg` is used in the child's
 * copy of memory: the parent's later changes are not seen. `opts` may be NULL (borrowed).
 * Read the fork-safety notes at the top before using this in a multi-threaded program.
 * Returns 0 and sets *out (returns owned: cipc_process_free()), or -EINVAL (fn or out
 * NULL), -ENOMEM, -EAGAIN, -EMFILE, the -errno of a bad cwd; *out untouched on error.
 * In the child, *out is never set: the child only runs fn. */
CIPC_API int cipc_process_start(cipc_process_fn fn, void *arg, const cipc_process_opts *opts,
                                cipc_process **out);

/* Run a program (fork + exec, like subprocess.Popen). `path` containing a '/' is used
 * as it is; otherwise it is searched in $PATH (as execvp does) before the fork. `argv` is
 * the NULL-terminated argument list (argv[0] included); `envp` the NULL-terminated
 * environment ("NAME=value"), or NULL to inherit the parent's. All borrowed. A program
 * that cannot be run is reported here, not as an exit code: the call returns -ENOENT
 * (no such program), -EACCES (not executable), -ENOEXEC, ... and no process is left
 * behind. Returns 0 and sets *out (returns owned: cipc_process_free()), or those errors,
 * -EINVAL (path or argv NULL), -ENOMEM, -EAGAIN, -EMFILE; *out untouched on error.
 * Safe to call from a multi-threaded program (the child only calls async-signal-safe
 * functions before exec). */
CIPC_API int cipc_process_spawn(const char *path, char *const argv[], char *const envp[],
                                const cipc_process_opts *opts, cipc_process **out);

/* Wait up to `timeout_ms` (< 0: forever, 0: just check) for the child to exit, without
 * spinning (a pidfd, where the kernel has one), and reap it. Returns 0 once it has exited
 * (also on later calls), CIPC_ETIMEOUT if it is still running, -ECHILD if something else
 * reaped it. */
CIPC_API int cipc_process_join(cipc_process *p, long timeout_ms);

/* The exit code: 0..255 for a normal exit, -N for death by signal N,
 * CIPC_PROCESS_RUNNING while running (checks without waiting, and reaps if it has exited),
 * CIPC_PROCESS_RUNNING also after -ECHILD (the status is unknown). */
CIPC_API int cipc_process_exitcode(cipc_process *p);

/* 1 while the child runs, 0 once it has exited (and is then reaped). Does not wait. */
CIPC_API int cipc_process_is_alive(cipc_process *p);

/* The child's process id. Stays the same after the child exits (but once it has been
 * reaped the id may be reused by another process). */
CIPC_API pid_t cipc_process_pid(const cipc_process *p);

/* The name from opts.name, or "Process-<pid>". A view valid until cipc_process_free(). */
CIPC_API const char *cipc_process_name(const cipc_process *p);

/* Send SIGTERM (terminate) or SIGKILL (kill) to the child. Does nothing and returns 0
 * once the child has been reaped (so a reused pid is never signalled); otherwise returns
 * 0 or the -errno of kill(2). Follow with cipc_process_join() to reap it. */
CIPC_API int cipc_process_terminate(cipc_process *p);
CIPC_API int cipc_process_kill(cipc_process *p);

/* The parent's end of the child's stdin (write), stdout or stderr (read) pipe, or -1
 * when that pipe was not asked for (or stdin was closed). A view: the fd belongs to `p`,
 * do not close it (use cipc_process_close_stdin() for stdin). */
CIPC_API int cipc_process_stdin_fd(const cipc_process *p);
CIPC_API int cipc_process_stdout_fd(const cipc_process *p);
CIPC_API int cipc_process_stderr_fd(const cipc_process *p);

/* Close the parent's end of the child's stdin pipe, so the child reads EOF. Idempotent. */
CIPC_API void cipc_process_close_stdin(cipc_process *p);

/* Free the handle and close its pipe ends. It never kills the child (as Python's
 * Process object): a child that has exited is reaped; a running one is detached and keeps
 * running. A detached child is not waited for by cipc any more: once it exits it stays a
 * zombie until this process exits or waits for its pid (saved with cipc_process_pid()).
 * To leave nothing behind, join (or kill then join) before freeing. NULL does nothing. */
CIPC_API void cipc_process_free(cipc_process *p);

/* --- cipc_pipe: a duplex message channel (multiprocessing.Pipe()) ------------------- */

/* Default limit on one message, either way: 64 MiB. */
#define CIPC_PIPE_DEFAULT_MAX (64u * 1024 * 1024)

/* Create a connected pair of ends over an AF_UNIX stream socketpair; what is sent on
 * one end is received on the other, whole and in order, as messages of any size up to
 * the limit (4-byte length prefix). Make the pair, start or fork the child, then in each
 * process close the end it does not use with cipc_pipe_close(). The fds are inherited by
 * fork but not by exec (close-on-exec). Returns 0 and sets *a and *b (returns owned:
 * cipc_pipe_close() each), or -EINVAL, -ENOMEM, -EMFILE; untouched on error. */
CIPC_API int cipc_pipe_new(cipc_pipe **a, cipc_pipe **b);

/* Set this end's limit on the size of one message, sent or received. 0 restores the
 * default; at most 0xFFFFFFFF (larger values are clamped). */
CIPC_API void cipc_pipe_set_max(cipc_pipe *p, size_t max_bytes);

/* Send one message of `len` bytes (0 is fine; `data` may be NULL then), waiting up to
 * `timeout_ms` (< 0 forever) for room. Borrows `data`. Returns 0 once the whole message
 * was handed to the kernel; CIPC_ETOOBIG (len over this end's limit: nothing sent);
 * CIPC_ETIMEOUT (if nothing of it was written the pipe stays usable; if part of it was,
 * the stream is out of step and the end is broken: later sends return CIPC_EPROTO);
 * -EPIPE (the other end was closed; no SIGPIPE is raised); -EINVAL. */
CIPC_API int cipc_pipe_send_bytes(cipc_pipe *p, const void *data, size_t len, long timeout_ms);

/* Receive one message, waiting up to `timeout_ms` (< 0 forever, 0 just check). On 0,
 * *data is the message (returns owned: free() it; never NULL, even for 0 bytes, and
 * followed by a NUL byte not counted in *len) and *len its size. A timeout keeps what
 * was received of a message so far, and the next call goes on where it stopped. Returns
 * CIPC_ETIMEOUT; CIPC_ECLOSING (the other end was closed and every message was read:
 * EOF); CIPC_ETRUNCATED (closed in the middle of a message); CIPC_ETOOBIG (the next
 * message is over this end's limit: it is skipped, not stored, and the pipe stays
 * usable: the next call discards its bytes and then returns the message after it);
 * -ENOMEM; -EINVAL. *data and *len are set only on success. */
CIPC_API int cipc_pipe_recv_bytes(cipc_pipe *p, void **data, size_t *len, long timeout_ms);

/* Wait up to `timeout_ms` for something to read. Returns 1 when a recv would not wait
 * for the first byte (a message is arriving, or the other end closed), 0 on timeout, or
 * a negative -errno. */
CIPC_API int cipc_pipe_poll(cipc_pipe *p, long timeout_ms);

/* The socket fd of this end, to wait on with poll(2) or a libuv poll handle (readable:
 * call cipc_pipe_recv_bytes()). A view: do not read, write or close it. */
CIPC_API int cipc_pipe_fd(const cipc_pipe *p);

/* Close this end and free it. The other end then reads EOF (CIPC_ECLOSING) after the
 * messages already sent, and its sends fail with -EPIPE. NULL does nothing. */
CIPC_API void cipc_pipe_close(cipc_pipe *p);

#ifdef __cplusplus
}
#endif
#endif
