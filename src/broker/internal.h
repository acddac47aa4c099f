/* src/broker/internal.h -- the broker's private structures (cipc/broker.h).
 *
 * One loop thread owns everything. broker.c: listeners, clients, reading, writing,
 * output limits. cmd.c: the command table and every command. list.c: the list type.
 * aof.c: the append-only file. The hash table (keys, channels) is src/core/dict.c. */
#ifndef CIPC_SRC_BROKER_INTERNAL_H
#define CIPC_SRC_BROKER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cipc/broker.h"
#include "cipc/buf.h"
#include "core/dict.h"
#include "resp/resp.h"

/* --- list: a deque of byte strings ---------------------------------------------------- */

typedef struct litem {
    size_t len;
    char data[];
} litem;

typedef struct blist {
    litem **a; /* ring of cap slots, head at `head` */
    size_t head, n, cap;
    size_t bytes; /* payload bytes, for INFO */
} blist;

blist *cipc__list_new(void);
void cipc__list_free(blist *l);
int cipc__list_push(blist *l, int left, const void *data, size_t len); /* 0 / -ENOMEM */
int cipc__list_push_item(blist *l, int left, litem *it);
litem *cipc__list_pop(blist *l, int left); /* NULL when empty; caller frees */
litem *cipc__list_at(const blist *l, size_t i);
/* Remove up to |count| items equal to data (count > 0 from the head, < 0 from the
 * tail, 0 all); returns how many. */
size_t cipc__list_rem(blist *l, long long count, const void *data, size_t len);

/* --- clients ---------------------------------------------------------------------------- */

enum { BLK_POP = 1, BLK_MOVE = 2 };

typedef struct bclient bclient;

/* A client blocked in BLPOP/BRPOP/BLMOVE. */
typedef struct blocked {
    int kind;           /* BLK_POP, BLK_MOVE */
    int left;           /* pop from the left (BLPOP; BLMOVE wherefrom LEFT) */
    int to_left;        /* BLMOVE whereto LEFT */
    size_t nkeys;
    char **keys;        /* NUL-terminated copies */
    size_t *klens;
    char *dst;          /* BLMOVE destination */
    size_t dstlen;
    uv_timer_t timer;   /* when the timeout is not 0 */
    int timer_on;
    uint64_t seq;       /* blocking order */
} blocked;

struct bclient {
    cipc_broker *b;
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    bclient *prev, *next;           /* every client */
    bclient *pend_next;             /* clients with output to flush */
    int pending;                    /* in the pending list */
    uint64_t id;
    char *name;
    char addr[64];                  /* peer "ip:port" (the socket path for Unix sockets) */
    char laddr[64];                 /* local "ip:port" */
    int unix_sock;
    int authed;
    int closing;                    /* close once the output is written */
    int closed;                     /* uv_close called */
    int reading;
    int in_cmd;                     /* processing input (re-entrancy guard) */
    cipc__resp_parser parser;
    cipc_buf inq;                   /* input received while blocked */
    cipc_buf out;                   /* output not handed to libuv yet */
    cipc_buf wbuf;                  /* output being written by uv_write */
    uv_write_t wreq;
    int writing;
    int64_t soft_since_ms;          /* pub/sub output above the soft limit since */
    int64_t created_ms, last_ms;
    char last_cmd[24];
    dict channels;                  /* subscribed channels (values unused) */
    dict patterns;                  /* subscribed patterns */
    blocked *blk;                   /* non-NULL while blocked */
    uint64_t ncmds;
    /* An in-process client (cipc_broker_client): no socket; its output goes to vcb. */
    int virt;
    cipc_broker_reply_cb vcb;
    void *vud;
};

/* --- the broker ------------------------------------------------------------------------ */

typedef struct waitq { /* clients blocked on one key, in blocking order */
    bclient **c;
    size_t n, cap;
} waitq;

struct cipc_broker {
    cipc_loop *loop;
    uv_loop_t *uv;
    cipc_broker_opts o;
    char *host, *unix_path, *requirepass, *aof_path;
    uv_tcp_t tcp;
    uv_pipe_t unix_listener;
    int tcp_on, unix_on, port;
    uv_prepare_t flush;
    uv_timer_t cron;               /* once a second: soft limits, everysec fsync, rewrite */
    int closing;
    bclient *clients;
    size_t nclients;
    bclient *vclients;             /* in-process clients (prev/next chain of their own) */
    bclient *pend_head;
    uint64_t next_id, block_seq;
    char *rbuf;                    /* one read buffer for every client (one thread) */
    int rbuf_busy;
    dict db;                       /* key -> blist* */
    dict channels;                 /* channel -> dict of bclient* (keyed by id) */
    dict patterns;                 /* pattern -> dict of bclient* */
    dict blocking;                 /* key -> waitq* */
    dict ready;                    /* keys pushed to while clients wait on them */
    cipc_buf msgbuf;               /* scratch: one encoded pub/sub message */
    /* stats */
    int64_t start_ms;
    uint64_t total_conns, total_cmds, rejected_conns, pubsub_msgs, obuf_kills;
    /* AOF */
    int aof_fd;
    cipc_buf aof_buf;              /* commands not written to the file yet */
    int aof_dirty;                 /* written, not fsync'ed */
    int64_t aof_size, aof_base_size;
    int64_t aof_last_fsync_ms;
    uv_work_t aof_fsync_work;
    int aof_fsync_busy;
    pid_t aof_child;               /* rewrite in progress */
    cipc_buf aof_rewrite_buf;      /* commands during the rewrite */
    char *aof_tmp;
    uv_signal_t sigchld;
    int sigchld_on;
    int loading;                   /* replaying: no replies, no AOF appends */
    uint64_t aof_rewrites;
};

/* broker.c */
void cipc__client_out_ready(bclient *c); /* c->out has new bytes: flush at the end of
                                            the loop iteration */
void cipc__client_close(bclient *c, int after_output);
void cipc__client_unblock(bclient *c);
void cipc__client_process_input(bclient *c); /* after unblocking: run queued input */
/* After output was queued to a subscriber: close it (and return -1) if it is over its
 * pub/sub output limits. */
int cipc__client_check_obuf(bclient *c);

/* cmd.c: run one command (argv/argl) for c (c may be the AOF loader's fake client, whose
 * output is discarded). Returns 0, or -1 when the client must be closed now. */
int cipc__cmd_exec(cipc_broker *b, bclient *c, size_t argc, const char **argv,
                   const size_t *argl);
void cipc__broker_serve_ready(cipc_broker *b); /* serve clients blocked on pushed keys */
void cipc__client_pubsub_clear(bclient *c);
void cipc__client_blocked_clear(bclient *c);
int cipc__broker_publish(cipc_broker *b, const char *ch, size_t chlen, const char *msg,
                         size_t len);

/* aof.c */
int cipc__aof_open(cipc_broker *b);        /* replay, then open for appending */
void cipc__aof_append(cipc_broker *b, size_t argc, const char **argv, const size_t *argl);
int cipc__aof_flush(cipc_broker *b);       /* write aof_buf (and fsync under always) */
void cipc__aof_cron(cipc_broker *b);       /* everysec fsync, automatic rewrite */
void cipc__aof_close(cipc_broker *b);
int cipc__aof_rewrite_start(cipc_broker *b);

#endif
