/* Proves interoperability with Debian's python3-redis (run with /usr/bin/python3):
 * Python publishes to a cipc_bus subscriber (channel and pattern, binary payload), a
 * cipc_bus publishes to a Python subscriber (pubsub.listen(), the seed's loop), and the
 * queues interoperate both ways (Python LPUSH -> cipc pop; cipc push -> Python BRPOP),
 * including pop_reliable's processing list as Python sees it. */
#include <string.h>

#include "test_bus_it_server.h"

static bus_srv S;

/* A running Python script with its stdout piped to us. */
struct py {
    pid_t pid;
    FILE *out;
};

static void py_start(struct py *p, const char *script)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    char port[16];
    snprintf(port, sizeof port, "%d", S.port);
    fflush(stdout);
    fflush(stderr);
    p->pid = fork();
    CHECK(p->pid >= 0);
    if (p->pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl("/usr/bin/python3", "python3", "-c", script, port, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    p->out = fdopen(fds[0], "r");
    CHECK(p->out != NULL);
}

/* Read one line (without the newline), waiting at most 20 s. */
static void py_line(struct py *p, char *buf, size_t n)
{
    struct pollfd pf = {.fd = fileno(p->out), .events = POLLIN};
    CHECK_INT(poll(&pf, 1, 20000), ==, 1);
    CHECK(fgets(buf, (int)n, p->out) != NULL);
    buf[strcspn(buf, "\n")] = '\0';
}

static void py_wait(struct py *p)
{
    int st = 0;
    int64_t end = cipc_now_ms() + 20000;
    while (waitpid(p->pid, &st, WNOHANG) != p->pid) {
        if (cipc_now_ms() > end) {
            kill(p->pid, SIGKILL);
            CHECK(!"python did not exit");
        }
        cipc_sleep_ms(10);
    }
    fclose(p->out);
    CHECK(WIFEXITED(st));
    CHECK_INT(WEXITSTATUS(st), ==, 0);
}

static void test_python_publishes(void)
{
    cipc_bus *b = bus_open(S.url, &(cipc_bus_opts){.skip_confirmations = 1});
    CHECK_INT(cipc_bus_subscribe(b, "channel"), ==, 1);
    CHECK_INT(cipc_bus_psubscribe(b, "chan*"), ==, 2);
    struct py p;
    py_start(&p, "import sys, redis\n"
                 "r = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]))\n"
                 "print(r.publish('channel', 'Hello, subscribers!'))\n"
                 "print(r.publish('chanX', b'\\x00\\xff\\r\\n'))\n");
    char line[256];
    py_line(&p, line, sizeof line);
    CHECK_STR(line, "2");
    py_line(&p, line, sizeof line);
    CHECK_STR(line, "1");
    py_wait(&p);
    cipc_bus_msg m;
    CHECK_INT(cipc_bus_listen(b, &m, 2000), ==, 0);
    CHECK_INT(m.type, ==, CIPC_BUS_MESSAGE);
    CHECK_MEM(m.data, m.len, "Hello, subscribers!");
    CHECK_INT(cipc_bus_listen(b, &m, 2000), ==, 0);
    CHECK_INT(m.type, ==, CIPC_BUS_PMESSAGE);
    CHECK_INT(cipc_bus_listen(b, &m, 2000), ==, 0);
    CHECK_INT(m.type, ==, CIPC_BUS_PMESSAGE);
    CHECK_STR(m.channel, "chanX");
    CHECK_INT(m.len, ==, 4);
    CHECK(memcmp(m.data, "\0\xff\r\n", 4) == 0);
    cipc_bus_free(b);
}

static void test_python_subscribes(void)
{
    struct py p;
    /* The seed's subscriber loop, with a READY line once subscribed. */
    py_start(&p, "import sys, redis\n"
                 "r = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]))\n"
                 "pubsub = r.pubsub()\n"
                 "pubsub.subscribe('channel')\n"
                 "for message in pubsub.listen():\n"
                 "    if message['type'] == 'subscribe':\n"
                 "        print('READY', flush=True)\n"
                 "        continue\n"
                 "    print(f\"Received: {message['data'].decode()}\", flush=True)\n"
                 "    break\n");
    char line[256];
    py_line(&p, line, sizeof line);
    CHECK_STR(line, "READY");
    cipc_bus *b = bus_open(S.url, NULL);
    CHECK_INT(cipc_bus_publish(b, "channel", "Hello, subscribers!", 19), ==, 1);
    py_line(&p, line, sizeof line);
    CHECK_STR(line, "Received: Hello, subscribers!");
    py_wait(&p);
    cipc_bus_free(b);
}

static void test_queues(void)
{
    cipc_bus *b = bus_open(S.url, &(cipc_bus_opts){.client_name = "c-worker"});
    struct py p;
    py_start(&p, "import sys, redis\n"
                 "r = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]))\n"
                 "r.lpush('pyq', 'first'); r.lpush('pyq', 'second')\n"
                 "print('PUSHED', flush=True)\n"
                 "print(r.brpop('cq', 10)[1].decode(), flush=True)\n"
                 "print(r.brpop('cq', 10)[1].decode(), flush=True)\n");
    char line[256];
    py_line(&p, line, sizeof line);
    CHECK_STR(line, "PUSHED");
    void *d;
    size_t n;
    CHECK_INT(cipc_bus_pop(b, "pyq", 1000, &d, &n), ==, 0);
    CHECK_MEM(d, n, "first");
    free(d);
    CHECK_INT(cipc_bus_pop_reliable(b, "pyq", 1000, &d, &n), ==, 0);
    CHECK_MEM(d, n, "second");
    CHECK_INT(cipc_bus_push(b, "cq", "one", 3), >=, 1);
    CHECK_INT(cipc_bus_push(b, "cq", "two", 3), >=, 1);
    py_line(&p, line, sizeof line);
    CHECK_STR(line, "one");
    py_line(&p, line, sizeof line);
    CHECK_STR(line, "two");
    py_wait(&p);
    /* Python sees the processing list and the consumer registry. */
    py_start(&p,
             "import sys, redis\n"
             "r = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]))\n"
             "print(r.lrange('pyq:processing:c-worker', 0, -1), r.lrange('pyq:consumers', 0, -1),"
             " r.client_list()[0]['name'] != None, flush=True)\n");
    py_line(&p, line, sizeof line);
    CHECK_STR(line, "[b'second'] [b'c-worker'] True");
    py_wait(&p);
    CHECK_INT(cipc_bus_ack(b, "pyq", d, n), ==, 1);
    free(d);
    cipc_bus_free(b);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    bus_srv_start(&S, &(bus_srv_opts){0});
    test_python_publishes();
    test_python_subscribes();
    test_queues();
    bus_srv_stop(&S);
    return 0;
}
