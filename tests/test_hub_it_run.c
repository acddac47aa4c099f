/* `make run` starts the hub: the Makefile's run target runs `cipc serve`; the recipe is
 * run for real (make -o build: without rebuilding) and GET /healthz succeeds; then the
 * hub on its default ports (7380, 7379) when they are free. */
#include "hub_helper.h"

static int port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Run make in its own process group; returns its pid. */
static pid_t start_make(const char *const *argv)
{
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    setpgid(pid, pid);
    hub_child_add(pid);
    return pid;
}

static void healthz(const char *base)
{
    cipc_session *s = peer_session(NULL, (cipc_session_opts){.base_url = base, .proxy = ""});
    json_t *j = peer_get_json(s, "/healthz", 200);
    CHECK_JSON(j, "{\"status\":\"ok\"}");
    json_decref(j);
    cipc_session_free(s);
}

/* SIGTERM to the hub (make's child), as Ctrl-C would reach it; make then exits with
 * the hub's status. */
static void stop_group(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    FILE *f = fopen(path, "r");
    int child = 0;
    if (f) {
        if (fscanf(f, "%d", &child) != 1)
            child = 0;
        fclose(f);
    }
    CHECK(child > 0);
    kill(child, SIGTERM);
    int st = 0;
    int reaped = peer_reap(pid, 15000, &st);
    if (!reaped) {
        kill(-pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    hub_child_del(pid);
    CHECK(reaped);
    CHECK(WIFEXITED(st));
    CHECK_INT(WEXITSTATUS(st), ==, 0);
}

static void test_make_run(void)
{
    char mk[512], bin[512], build[512], args[700], pf[128];
    snprintf(mk, sizeof mk, "%s/Makefile", peer_source_dir());
    FILE *f = fopen(mk, "r");
    CHECK(f != NULL);
    static char text[65536];
    text[fread(text, 1, sizeof text - 1, f)] = '\0';
    fclose(f);
    const char *run = strstr(text, "\nrun:");
    CHECK(run != NULL);
    CHECK(strstr(run, "bin/cipc serve") != NULL);

    /* BUILD is the directory holding bin/cipc */
    snprintf(bin, sizeof bin, "%s", getenv("CIPC_BIN_DIR"));
    snprintf(build, sizeof build, "BUILD=%.*s", (int)(strrchr(bin, '/') - bin), bin);
    char dir[] = "/tmp/cipc-hubit-run-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    snprintf(pf, sizeof pf, "%s/ports", dir);
    snprintf(args, sizeof args, "ARGS=--http-port 0 --resp-port 0 --port-file %s", pf);
    const char *argv[] = {"/usr/bin/make", "-s", "-C", peer_source_dir(), "-o", "build", "-o",
                          "bootstrap", build, args, "run", NULL};
    pid_t pid = start_make(argv);
    int64_t end = peer_now_ms() + 15000;
    int http = 0;
    while (!http && peer_now_ms() < end) {
        f = fopen(pf, "r");
        if (f) {
            if (fscanf(f, "http=%d", &http) != 1)
                http = 0;
            fclose(f);
        }
        if (!http)
            usleep(10000);
    }
    CHECK(http > 0);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", http);
    healthz(base);
    stop_group(pid);
    rmdir(dir);
}

static void test_default_ports(void)
{
    if (!port_free(7380) || !port_free(7379)) {
        fprintf(stderr, "SKIP: 7380 or 7379 is in use: the default ports are not tested\n");
        return;
    }
    hub h;
    /* no port flags but the port file: the defaults */
    const char *extra[] = {"--http-port", "7380", "--resp-port", "7379", NULL};
    hub_start(&h, extra);
    CHECK_INT(h.http, ==, 7380);
    CHECK_INT(h.resp, ==, 7379);
    healthz("http://127.0.0.1:7380");
    hub_stop(&h);
}

int main(void)
{
    hub_init();
    RUN(test_make_run);
    RUN(test_default_ports);
    return 0;
}
