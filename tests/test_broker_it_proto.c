/* tests/test_broker_it_proto.c -- the broker speaks Redis: a table of requests and the
 * exact bytes Redis 7 answers, run against Debian's redis-server (started here on a
 * private port, so the table itself is checked against the real thing) and against the
 * cipc broker. Then what only the broker is asked here: blocking pops served in arrival
 * order across clients, timeouts, subscribed mode, AUTH, protocol errors and limits
 * (error, then close), max clients, a slow subscriber disconnected while the others keep
 * receiving, a Unix socket, and the refusal of a non-loopback address without a
 * password. */
#include <fcntl.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "broker_helper.h"

/* --- a private redis-server ------------------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static pid_t start_redis(int port)
{
    if (access("/usr/bin/redis-server", X_OK) != 0)
        return -1;
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        char p[16];
        snprintf(p, sizeof p, "%d", port);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a test that aborts */
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        execl("/usr/bin/redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1",
              "--save", "", "--appendonly", "no", "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    /* Ready when it answers PING. */
    int64_t deadline = tb_now_ms() + 10000;
    while (tb_now_ms() < deadline) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            close(fd);
            return pid;
        }
        close(fd);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK(!"redis-server did not start");
    return -1;
}

static void stop_redis(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    int64_t deadline = tb_now_ms() + 5000;
    while (tb_now_ms() < deadline && waitpid(pid, NULL, WNOHANG) == 0)
        usleep(5000);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* --- the table ---------------------------------------------------------------------------- */

struct exchange {
    const char *send, *expect;
};

/* Run on a fresh connection, in order (later rows depend on earlier ones). A row of NULLs:
 * the server must have closed the connection; go on with a new one. */
static const struct exchange table[] = {
    {"FLUSHALL\r\n", "+OK\r\n"},
    {"PING\r\n", "+PONG\r\n"},
    {"ping\r\n", "+PONG\r\n"},
    {"*1\r\n$4\r\nPING\r\n", "+PONG\r\n"},
    {"*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n", "$2\r\nhi\r\n"},
    {"PING a b\r\n", "-ERR wrong number of arguments for 'ping' command\r\n"},
    {"ECHO\r\n", "-ERR wrong number of arguments for 'echo' command\r\n"},
    {"ECHO hello\r\n", "$5\r\nhello\r\n"},
    {"ECHO \"a b\\x41\\n\"\r\n", "$5\r\na bA\n\r\n"},
    {"ECHO 'it''s'\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
    {NULL, NULL}, /* a protocol error closes the connection: reconnect */
    {"*0\r\nPING\r\n", "+PONG\r\n"},
    {"\r\nPING\r\n", "+PONG\r\n"},
    {"FOO a b\r\n", "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n"},
    {"*1\r\n$3\r\nfoo\r\n", "-ERR unknown command 'foo', with args beginning with: \r\n"},
    {"SELECT 0\r\n", "+OK\r\n"},
    {"SELECT 1x\r\n", "-ERR value is not an integer or out of range\r\n"},
    {"DBSIZE\r\n", ":0\r\n"},
    {"RPUSH q a b c\r\n", ":3\r\n"},
    {"LPUSH q z\r\n", ":4\r\n"},
    {"LLEN q\r\n", ":4\r\n"},
    {"LLEN nosuch\r\n", ":0\r\n"},
    {"LRANGE q 0 -1\r\n", "*4\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"},
    {"LRANGE q 1 1\r\n", "*1\r\n$1\r\na\r\n"},
    {"LRANGE q -2 100\r\n", "*2\r\n$1\r\nb\r\n$1\r\nc\r\n"},
    {"LRANGE q 3 1\r\n", "*0\r\n"},
    {"LRANGE q x 1\r\n", "-ERR value is not an integer or out of range\r\n"},
    {"LRANGE nosuch 0 -1\r\n", "*0\r\n"},
    {"TYPE q\r\n", "+list\r\n"},
    {"TYPE nosuch\r\n", "+none\r\n"},
    {"EXISTS q nosuch q\r\n", ":2\r\n"},
    {"DBSIZE\r\n", ":1\r\n"},
    {"KEYS *\r\n", "*1\r\n$1\r\nq\r\n"},
    {"KEYS q?\r\n", "*0\r\n"},
    {"KEYS [pq]\r\n", "*1\r\n$1\r\nq\r\n"},
    {"KEYS\r\n", "-ERR wrong number of arguments for 'keys' command\r\n"},
    {"LPOP q\r\n", "$1\r\nz\r\n"},
    {"RPOP q\r\n", "$1\r\nc\r\n"},
    {"LPOP q 0\r\n", "*0\r\n"},
    {"LPOP q -1\r\n", "-ERR value is out of range, must be positive\r\n"},
    {"LPOP q x\r\n", "-ERR value is out of range, must be positive\r\n"},
    {"LPOP q 1 2\r\n", "-ERR wrong number of arguments for 'lpop' command\r\n"},
    {"RPOP q 5\r\n", "*2\r\n$1\r\nb\r\n$1\r\na\r\n"},
    {"LPOP q\r\n", "$-1\r\n"},
    {"LPOP q 2\r\n", "*-1\r\n"},
    {"EXISTS q\r\n", ":0\r\n"},
    {"RPUSH r x y x z x\r\n", ":5\r\n"},
    {"LREM r 2 x\r\n", ":2\r\n"},
    {"LRANGE r 0 -1\r\n", "*3\r\n$1\r\ny\r\n$1\r\nz\r\n$1\r\nx\r\n"},
    {"LREM r -1 y\r\n", ":1\r\n"},
    {"LREM r 0 nope\r\n", ":0\r\n"},
    {"LMOVE r s LEFT RIGHT\r\n", "$1\r\nz\r\n"},
    {"LMOVE r s up down\r\n", "-ERR syntax error\r\n"},
    {"RPOPLPUSH r s\r\n", "$1\r\nx\r\n"},
    {"LRANGE s 0 -1\r\n", "*2\r\n$1\r\nx\r\n$1\r\nz\r\n"},
    {"LMOVE nosuch s LEFT LEFT\r\n", "$-1\r\n"},
    {"BLPOP s 0\r\n", "*2\r\n$1\r\ns\r\n$1\r\nx\r\n"},
    {"BRPOP nosuch s 1\r\n", "*2\r\n$1\r\ns\r\n$1\r\nz\r\n"},
    {"BLPOP s x\r\n", "-ERR timeout is not a float or out of range\r\n"},
    {"BLPOP s -1\r\n", "-ERR timeout is negative\r\n"},
    {"BLPOP s 0.05\r\n", "*-1\r\n"},
    {"BLMOVE s d LEFT LEFT 0.05\r\n", "*-1\r\n"}, /* Redis: a null array, not a null bulk */
    {"DEL a b\r\n", ":0\r\n"},
    {"RPUSH a 1\r\n", ":1\r\n"},
    {"DEL a b a\r\n", ":1\r\n"},
    {"PUBLISH ch msg\r\n", ":0\r\n"},
    {"PUBSUB NUMPAT\r\n", ":0\r\n"},
    {"PUBSUB NUMSUB ch\r\n", "*2\r\n$2\r\nch\r\n:0\r\n"},
    {"PUBSUB CHANNELS\r\n", "*0\r\n"},
    {"CLIENT SETNAME worker-1\r\n", "+OK\r\n"},
    {"CLIENT GETNAME\r\n", "$8\r\nworker-1\r\n"},
    {"CLIENT SETNAME \"a b\"\r\n",
     "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"},
    {"CLIENT NOSUCH\r\n", "-ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP.\r\n"},
    {"CLIENT SETNAME\r\n", "-ERR wrong number of arguments for 'client|setname' command\r\n"},
    {"CLIENT ID x\r\n", "-ERR wrong number of arguments for 'client|id' command\r\n"},
    {"PUBSUB NUMPAT x\r\n", "-ERR wrong number of arguments for 'pubsub|numpat' command\r\n"},
    {"PUBSUB NOSUCH\r\n", "-ERR unknown subcommand 'NOSUCH'. Try PUBSUB HELP.\r\n"},
    {"COMMAND NOSUCH\r\n", "-ERR unknown subcommand 'NOSUCH'. Try COMMAND HELP.\r\n"},
    {"AUTH x\r\n", "-ERR AUTH <password> called without any password configured for the "
                   "default user. Are you sure your configuration is correct?\r\n"},
    {"HELLO 4\r\n", "-NOPROTO unsupported protocol version\r\n"},
    {"HELLO x\r\n", "-ERR Protocol version is not an integer or out of range\r\n"},
    {"FLUSHDB\r\n", "+OK\r\n"},
    {"FLUSHDB BOGUS\r\n", "-ERR syntax error\r\n"},
    {"SUBSCRIBE a b\r\n", "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
                          "*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"},
    {"PSUBSCRIBE h?llo\r\n", "*3\r\n$10\r\npsubscribe\r\n$5\r\nh?llo\r\n:3\r\n"},
    {"PING\r\n", "*2\r\n$4\r\npong\r\n$0\r\n\r\n"},
    {"PING x\r\n", "*2\r\n$4\r\npong\r\n$1\r\nx\r\n"},
    {"LLEN q\r\n", "-ERR Can't execute 'llen': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING "
                   "/ QUIT / RESET are allowed in this context\r\n"},
    {"UNSUBSCRIBE a\r\n", "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:2\r\n"},
    {"PUNSUBSCRIBE\r\n", "*3\r\n$12\r\npunsubscribe\r\n$5\r\nh?llo\r\n:1\r\n"},
    {"UNSUBSCRIBE\r\n", "*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n"},
    {"UNSUBSCRIBE\r\n", "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"},
    {"PING\r\n", "+PONG\r\n"},
    {"*2\r\n$4\r\nECHO\r\n$3\r\na\r\n\r\n", "$3\r\na\r\n\r\n"},
    {"*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
};

static void run_table(int port, const char *who)
{
    int fd = rc_connect(port);
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (!table[i].send) {
            CHECK(rc_closed(fd, RC_TIMEOUT_MS));
            close(fd);
            fd = rc_connect(port);
            continue;
        }
        rc_send(fd, table[i].send);
        char *buf = malloc(strlen(table[i].expect) + 1);
        size_t n = strlen(table[i].expect);
        size_t got = rc_read_n(fd, buf, n, RC_TIMEOUT_MS);
        if (got != n || memcmp(buf, table[i].expect, n) != 0) {
            buf[got] = 0;
            fprintf(stderr, "%s, row %zu: sent %s expected %s got %s\n", who, i, table[i].send,
                    table[i].expect, buf);
            abort();
        }
        free(buf);
    }
    CHECK(rc_closed(fd, RC_TIMEOUT_MS)); /* after the protocol error */
    close(fd);
}

static void test_table(int broker_port)
{
    int port = free_port();
    pid_t redis = start_redis(port);
    if (redis > 0) {
        run_table(port, "redis-server");
        stop_redis(redis);
    } else {
        fprintf(stderr, "note: /usr/bin/redis-server missing; the table runs on cipc only\n");
    }
    run_table(broker_port, "cipc broker");
}

/* --- what only the broker is asked --------------------------------------------------------- */

static void test_blocking_order(int port)
{
    int a = rc_connect(port), b = rc_connect(port), c = rc_connect(port), p = rc_connect(port);
    rc_send(a, "BLPOP jobs other 0\r\n");
    CHECK(rc_quiet(a, 50));
    rc_send(b, "BRPOP jobs 0\r\n");
    CHECK(rc_quiet(b, 50));
    rc_send(c, "BLMOVE jobs done LEFT RIGHT 0\r\n");
    CHECK(rc_quiet(c, 50));
    /* One push serves the first waiter only; the others keep waiting, in order. */
    rc_send(p, "RPUSH jobs j1\r\n");
    rc_expect(p, ":1\r\n");
    rc_expect(a, "*2\r\n$4\r\njobs\r\n$2\r\nj1\r\n");
    CHECK(rc_quiet(b, 50));
    rc_send(p, "RPUSH jobs j2 j3\r\n");
    rc_expect(p, ":2\r\n");
    rc_expect(b, "*2\r\n$4\r\njobs\r\n$2\r\nj3\r\n"); /* BRPOP: from the right */
    rc_expect(c, "$2\r\nj2\r\n");
    rc_send(p, "LRANGE done 0 -1\r\n");
    rc_expect(p, "*1\r\n$2\r\nj2\r\n");
    rc_send(p, "EXISTS jobs\r\n");
    rc_expect(p, ":0\r\n");
    /* A blocked client's next command waits until it is served. */
    rc_send(a, "BLPOP jobs 0\r\nPING\r\n");
    CHECK(rc_quiet(a, 50));
    rc_send(p, "LPUSH jobs k\r\n");
    rc_expect(p, ":1\r\n");
    rc_expect(a, "*2\r\n$4\r\njobs\r\n$1\r\nk\r\n+PONG\r\n");
    /* Timeouts: about when asked. */
    int64_t t0 = tb_now_ms();
    rc_send(b, "BLPOP jobs 0.2\r\n");
    rc_expect(b, "*-1\r\n");
    CHECK(tb_now_ms() - t0 >= 150);
    /* A client that disconnects while blocked is forgotten. */
    rc_send(c, "BLPOP gone 0\r\n");
    CHECK(rc_quiet(c, 50));
    close(c);
    usleep(50000);
    rc_send(p, "RPUSH gone v\r\n");
    rc_expect(p, ":1\r\n");
    rc_send(p, "LLEN gone\r\nDEL gone done\r\n");
    rc_expect(p, ":1\r\n:2\r\n"); /* "done" still holds j2 */
    close(a);
    close(b);
    close(p);
}

static void test_pubsub(int port)
{
    int s1 = rc_connect(port), s2 = rc_connect(port), s3 = rc_connect(port), p = rc_connect(port);
    rc_send(s1, "SUBSCRIBE news\r\n");
    rc_expect(s1, "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
    rc_send(s2, "PSUBSCRIBE n*s [a-c]?\r\n");
    rc_expect(s2, "*3\r\n$10\r\npsubscribe\r\n$3\r\nn*s\r\n:1\r\n"
                  "*3\r\n$10\r\npsubscribe\r\n$6\r\n[a-c]?\r\n:2\r\n");
    rc_send(s3, "SUBSCRIBE news\r\n");
    rc_expect(s3, "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
    rc_send(p, "PUBLISH news hello\r\n");
    rc_expect(p, ":3\r\n");
    rc_expect(s1, "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n");
    rc_expect(s3, "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n");
    rc_expect(s2, "*4\r\n$8\r\npmessage\r\n$3\r\nn*s\r\n$4\r\nnews\r\n$5\r\nhello\r\n");
    rc_send(p, "PUBLISH bz x\r\nPUBLISH dz x\r\n");
    rc_expect(p, ":1\r\n:0\r\n");
    rc_expect(s2, "*4\r\n$8\r\npmessage\r\n$6\r\n[a-c]?\r\n$2\r\nbz\r\n$1\r\nx\r\n");
    rc_send(p, "PUBSUB CHANNELS\r\nPUBSUB NUMSUB news x\r\nPUBSUB NUMPAT\r\nPUBSUB CHANNELS n?ws\r\n");
    rc_expect(p, "*1\r\n$4\r\nnews\r\n*4\r\n$4\r\nnews\r\n:2\r\n$1\r\nx\r\n:0\r\n:2\r\n"
                 "*1\r\n$4\r\nnews\r\n");
    /* Binary payloads pass unchanged. */
    rc_send_n(p, "*3\r\n$7\r\nPUBLISH\r\n$4\r\nnews\r\n$4\r\n\r\n\0\xff\r\n", 37);
    rc_expect(p, ":3\r\n");
    rc_expect_n(s1, "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$4\r\n\r\n\0\xff\r\n", 37);
    /* The embedding program publishes too. */
    close(s3);
    close(s2);
    usleep(50000);
    rc_send(p, "PUBSUB NUMSUB news\r\n");
    rc_expect(p, "*2\r\n$4\r\nnews\r\n:1\r\n");
    close(s1);
    close(p);
}

static void test_auth(void)
{
    tbroker tb;
    CHECK(tbroker_start(&tb, &(cipc_broker_opts){.requirepass = "s3cret"}) == 0);
    int fd = rc_connect(tb.port);
    rc_send(fd, "PING\r\nRPUSH q a\r\n");
    rc_expect(fd, "-NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n");
    rc_send(fd, "AUTH wrong\r\n");
    rc_expect(fd, "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    rc_send(fd, "AUTH bob s3cret\r\n");
    rc_expect(fd, "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    rc_send(fd, "AUTH s3cret\r\nPING\r\n");
    rc_expect(fd, "+OK\r\n+PONG\r\n");
    int f2 = rc_connect(tb.port);
    rc_send(f2, "HELLO 2 AUTH default s3cret SETNAME me\r\n");
    char buf[256];
    CHECK(rc_read_n(f2, buf, 4, RC_TIMEOUT_MS) == 4);
    CHECK(memcmp(buf, "*14\r", 4) == 0);
    close(f2);
    close(fd);
    tbroker_stop(&tb);
    /* A non-loopback address needs a password (or the explicit opt-out). */
    CHECK(tbroker_start(&tb, &(cipc_broker_opts){.host = "0.0.0.0"}) == -EPERM);
}

/* A connection that answers PING, retried while the broker is still at max_clients. */
static int connect_when_room(int port)
{
    int64_t deadline = tb_now_ms() + RC_TIMEOUT_MS;
    for (;;) {
        int fd = rc_connect(port);
        rc_send(fd, "PING\r\n");
        char buf[7];
        size_t n = rc_read_n(fd, buf, sizeof buf, RC_TIMEOUT_MS);
        if (n == 7 && memcmp(buf, "+PONG\r\n", 7) == 0)
            return fd;
        close(fd);
        CHECK(tb_now_ms() < deadline);
        usleep(10000);
    }
}

static void test_limits(void)
{
    tbroker tb;
    CHECK(tbroker_start(&tb, &(cipc_broker_opts){.max_clients = 2, .max_bulk = 1000,
                                                 .max_multibulk = 10, .max_inline = 100}) == 0);
    int a = rc_connect(tb.port);
    rc_send(a, "*11\r\n");
    rc_expect(a, "-ERR Protocol error: invalid multibulk length\r\n");
    CHECK(rc_closed(a, RC_TIMEOUT_MS));
    close(a);
    a = rc_connect(tb.port);
    rc_send(a, "*1\r\n$1001\r\n");
    rc_expect(a, "-ERR Protocol error: invalid bulk length\r\n");
    CHECK(rc_closed(a, RC_TIMEOUT_MS));
    close(a);
    a = rc_connect(tb.port);
    char line[200];
    memset(line, 'x', sizeof line);
    rc_send_n(a, line, sizeof line);
    rc_expect(a, "-ERR Protocol error: too big inline request\r\n");
    CHECK(rc_closed(a, RC_TIMEOUT_MS));
    close(a);
    a = rc_connect(tb.port);
    rc_send(a, "*1\r\nx\r\n");
    rc_expect(a, "-ERR Protocol error: expected '$', got 'x'\r\n");
    CHECK(rc_closed(a, RC_TIMEOUT_MS));
    close(a);
    /* max_clients = 2: the third is refused, the first two keep working. (The broker
     * frees the connections closed above asynchronously: retry until there is room.) */
    a = connect_when_room(tb.port);
    int b = connect_when_room(tb.port);
    int c = rc_connect(tb.port);
    rc_expect(c, "-ERR max number of clients reached\r\n");
    CHECK(rc_closed(c, RC_TIMEOUT_MS));
    close(c);
    rc_send(a, "PING\r\n");
    rc_expect(a, "+PONG\r\n");
    close(a);
    close(b);
    tbroker_stop(&tb);
}

/* A subscriber that never reads is disconnected at the hard limit; a reading one gets
 * every message; the broker's memory stays bounded meanwhile. */
static void test_slow_subscriber(void)
{
    tbroker tb;
    CHECK(tbroker_start(&tb, &(cipc_broker_opts){.pubsub_obuf_hard = 1u << 20,
                                                 .pubsub_obuf_soft = 512u << 10,
                                                 .pubsub_obuf_soft_seconds = 30}) == 0);
    int slow = rc_connect(tb.port), fast = rc_connect(tb.port), p = rc_connect(tb.port);
    int rcv = 16 * 1024;
    setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    rc_send(slow, "SUBSCRIBE c\r\n");
    rc_expect(slow, "*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n");
    rc_send(fast, "SUBSCRIBE c\r\n");
    rc_expect(fast, "*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n");
    enum { MSG = 1000, N = 20000 }; /* 20 MB published, far over the 1 MiB limit */
    char payload[MSG];
    memset(payload, 'm', sizeof payload);
    char cmd[MSG + 64];
    int hdr = snprintf(cmd, sizeof cmd, "*3\r\n$7\r\nPUBLISH\r\n$1\r\nc\r\n$%d\r\n", MSG);
    memcpy(cmd + hdr, payload, MSG);
    memcpy(cmd + hdr + MSG, "\r\n", 2);
    size_t cmdlen = (size_t)hdr + MSG + 2;
    const size_t want = 34 + MSG + 2 - 1; /* "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1000\r\n" + ... */
    (void)want;
    char *rb = malloc(1 << 16);
    size_t fast_got = 0, expect_per = 0;
    {
        char tmp[64];
        expect_per = (size_t)snprintf(tmp, sizeof tmp, "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$%d\r\n",
                                      MSG) + MSG + 2;
    }
    int slow_gone = 0;
    for (int i = 0; i < N; i++) {
        rc_send_n(p, cmd, cmdlen);
        /* The fast subscriber reads as it goes. */
        struct pollfd pf = {.fd = fast, .events = POLLIN};
        while (poll(&pf, 1, 0) > 0) {
            ssize_t r = recv(fast, rb, 1 << 16, 0);
            CHECK(r > 0);
            fast_got += (size_t)r;
        }
        if (i % 1000 == 999) { /* drain the publisher's replies */
            size_t left = 1000 * 4; /* ":2\r\n" or ":1\r\n" */
            while (left) {
                size_t r = rc_read_n(p, rb, left < 65536 ? left : 65536, RC_TIMEOUT_MS);
                CHECK(r > 0);
                left -= r;
            }
        }
    }
    int64_t deadline = tb_now_ms() + 20000;
    while (fast_got < (size_t)N * expect_per && tb_now_ms() < deadline) {
        size_t r = rc_read_n(fast, rb, 1 << 16, 200);
        fast_got += r;
    }
    CHECK_INT(fast_got, ==, (size_t)N * expect_per);
    slow_gone = rc_closed(slow, 10000);
    CHECK(slow_gone);
    /* The broker still serves, and says it dropped one client for its buffer. */
    rc_send(p, "PUBLISH c x\r\n");
    rc_expect(p, ":1\r\n");
    free(rb);
    close(slow);
    close(fast);
    close(p);
    tbroker_stop(&tb);
}

static void test_unix_socket(void)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/cipc-broker-test-%d.sock", (int)getpid());
    tbroker tb;
    CHECK(tbroker_start(&tb, &(cipc_broker_opts){.port = -1, .unix_path = path}) == 0);
    CHECK_INT(tb.port, ==, -1);
    int fd = rc_connect_unix(path);
    rc_send(fd, "RPUSH q 1\r\nCLIENT LIST\r\n");
    rc_expect(fd, ":1\r\n$");
    close(fd);
    tbroker_stop(&tb);
    CHECK(access(path, F_OK) != 0); /* removed at close */
}

int main(void)
{
    tbroker tb;
    CHECK(tbroker_start(&tb, NULL) == 0);
    CHECK(tb.port > 0);
    /* The broker ignores SIGPIPE itself: clients gone mid-write (the slow subscriber,
     * the protocol errors below) must not kill this process. */
    struct sigaction sa;
    CHECK(sigaction(SIGPIPE, NULL, &sa) == 0);
    CHECK(sa.sa_handler == SIG_IGN);
    test_table(tb.port);
    test_blocking_order(tb.port);
    test_pubsub(tb.port);
    tbroker_stop(&tb);
    test_auth();
    test_limits();
    test_slow_subscriber();
    test_unix_socket();
    puts("test_broker_it_proto: ok");
    return 0;
}
