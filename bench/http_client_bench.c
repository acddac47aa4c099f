/* http_client_bench -- drive cipc's HTTP client against one URL and print its throughput.
 *
 *     http_client_bench URL --requests N [--concurrency C] [--warmup W] [--timeout-ms T]
 *     http_client_bench --version        (prints cipc_version() and exits)
 *
 * C == 1 (the default): one blocking cipc_session performs N sequential GETs of URL over
 * one kept-alive connection. C > 1: one cipc_client on a cipc_loop with max_concurrency C
 * keeps C GETs in flight, starting a new one from each completion callback until N have
 * been started. Either way W warm-up requests (default 50) run first, untimed, so the
 * connections exist before the clock starts.
 *
 * Every figure is printed as one `name: value unit` line (docs/benchmarks.md) so scripts
 * can compare runs. A response that is not a 200 counts as an error; the exit status is
 * 0 only if there were no errors. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cipc/error.h"
#include "cipc/http_client.h"
#include "cipc/loop.h"
#include "cipc/time.h"

#define DEFAULT_WARMUP     50
#define DEFAULT_TIMEOUT_MS 120000

struct bench_args {
    const char *url;
    long requests;
    long concurrency;
    long warmup;
    long timeout_ms;
};

/* State of one async run (warm-up or timed): how many requests were started and have
 * completed, their errors, and each request's start time for the latency figures. */
struct async_run {
    cipc_client *client;
    const char *url;
    long total;
    long concurrency;
    long started;
    long completed;
    long errors;
    int stopping;        /* set once the run is over: callbacks start nothing new */
    int64_t *start_ns;   /* total entries: when request i was started */
    int64_t *latency_ns; /* total entries: filled as requests complete */
    long nlatency;
    struct async_slot *slots; /* total entries: the `ud` of each request */
};

/* One in-flight async request: which run it belongs to and its index in that run. */
struct async_slot {
    struct async_run *run;
    long index;
};

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s URL --requests N [--concurrency C] [--warmup W] [--timeout-ms T]\n"
            "  C == 1: sequential GETs over one cipc_session; C > 1: cipc_client on a loop\n",
            argv0);
}

/* Parse a positive decimal option value; returns 0 or -1 with a message on stderr. */
static int parse_long(const char *name, const char *s, long min, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min) {
        fprintf(stderr, "http_client_bench: %s wants an integer >= %ld, got '%s'\n", name, min, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, struct bench_args *a)
{
    a->url = NULL;
    a->requests = 0;
    a->concurrency = 1;
    a->warmup = DEFAULT_WARMUP;
    a->timeout_ms = DEFAULT_TIMEOUT_MS;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        long *dst = NULL;
        long min = 0;
        if (strcmp(arg, "--requests") == 0) {
            dst = &a->requests;
            min = 1;
        } else if (strcmp(arg, "--concurrency") == 0) {
            dst = &a->concurrency;
            min = 1;
        } else if (strcmp(arg, "--warmup") == 0) {
            dst = &a->warmup;
            min = 0;
        } else if (strcmp(arg, "--timeout-ms") == 0) {
            dst = &a->timeout_ms;
            min = 1;
        } else if (strcmp(arg, "--version") == 0) {
            printf("%s\n", cipc_version());
            exit(0);
        } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage(argv[0]);
            exit(0);
        } else if (arg[0] == '-') {
            fprintf(stderr, "http_client_bench: unknown option '%s'\n", arg);
            return -1;
        } else if (a->url == NULL) {
            a->url = arg;
            continue;
        } else {
            fprintf(stderr, "http_client_bench: more than one URL ('%s')\n", arg);
            return -1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "http_client_bench: %s needs a value\n", arg);
            return -1;
        }
        if (parse_long(arg, argv[++i], min, dst) < 0)
            return -1;
    }
    if (a->url == NULL || a->requests < 1) {
        usage(argv[0]);
        return -1;
    }
    return 0;
}

/* Print the machine the figures come from: CPU model, online cores, kernel. */
static void print_machine(void)
{
    char model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f != NULL) {
        char line[512];
        while (fgets(line, sizeof line, f) != NULL) {
            if (strncmp(line, "model name", 10) != 0)
                continue;
            const char *colon = strchr(line, ':');
            if (colon == NULL)
                continue;
            colon++;
            while (*colon == ' ' || *colon == '\t')
                colon++;
            snprintf(model, sizeof model, "%s", colon);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
        fclose(f);
    }
    struct utsname u;
    const char *kernel = uname(&u) == 0 ? u.release : "unknown";
    printf("cpu_model: %s\n", model);
    printf("cpu_cores: %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
    printf("kernel: %s\n", kernel);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The q-th quantile (0..1) of sorted[0..n) by the nearest-rank method. */
static int64_t quantile(const int64_t *sorted, long n, double q)
{
    if (n <= 0)
        return 0;
    long rank = (long)(q * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

static void print_results(const char *mode, const struct bench_args *a, int64_t elapsed_ns,
                          long errors, int64_t *latency_ns, long nlatency)
{
    double secs = (double)elapsed_ns / 1e9;
    printf("mode: %s\n", mode);
    printf("requests: %ld\n", a->requests);
    printf("concurrency: %ld\n", a->concurrency);
    printf("errors: %ld\n", errors);
    printf("elapsed_s: %.6f s\n", secs);
    printf("requests_per_s: %.1f req/s\n", secs > 0 ? (double)a->requests / secs : 0.0);
    if (nlatency > 0) {
        qsort(latency_ns, (size_t)nlatency, sizeof *latency_ns, cmp_i64);
        printf("latency_p50_us: %.1f us\n", (double)quantile(latency_ns, nlatency, 0.50) / 1e3);
        printf("latency_p99_us: %.1f us\n", (double)quantile(latency_ns, nlatency, 0.99) / 1e3);
        printf("latency_max_us: %.1f us\n", (double)latency_ns[nlatency - 1] / 1e3);
    }
}

/* One blocking GET; returns 0 for a 200, else -1 after reporting the first few failures. */
static int sync_get(cipc_session *s, const char *url, long *reported)
{
    cipc_response *r = NULL;
    int rc = cipc_get(s, url, NULL, &r);
    int status = rc == 0 ? cipc_response_status(r) : 0;
    cipc_response_free(r);
    if (rc == 0 && status == 200)
        return 0;
    if ((*reported)++ < 5) {
        if (rc < 0)
            fprintf(stderr, "http_client_bench: %s: %s\n", cipc_err_name(rc),
                    cipc_session_errmsg(s));
        else
            fprintf(stderr, "http_client_bench: GET %s: status %d\n", url, status);
    }
    return -1;
}

/* C == 1: N sequential GETs over one session, timing each. Returns the error count or -1
 * if the session could not be created. */
static long run_sync(const struct bench_args *a)
{
    cipc_session_opts opts = {.size = sizeof opts, .timeout_ms = a->timeout_ms};
    cipc_session *s = NULL;
    int rc = cipc_session_new(&opts, &s);
    if (rc < 0) {
        fprintf(stderr, "http_client_bench: cipc_session_new: %s\n", cipc_strerror(rc));
        return -1;
    }
    int64_t *lat = malloc((size_t)a->requests * sizeof *lat);
    if (lat == NULL) {
        cipc_session_free(s);
        fprintf(stderr, "http_client_bench: out of memory\n");
        return -1;
    }
    long reported = 0;
    long errors = 0;
    for (long i = 0; i < a->warmup; i++)
        (void)sync_get(s, a->url, &reported);

    int64_t t0 = cipc_now_ns();
    int64_t prev = t0;
    for (long i = 0; i < a->requests; i++) {
        if (sync_get(s, a->url, &reported) < 0)
            errors++;
        int64_t now = cipc_now_ns();
        lat[i] = now - prev;
        prev = now;
    }
    int64_t elapsed = prev - t0;
    print_results("sync", a, elapsed, errors, lat, a->requests);
    free(lat);
    cipc_session_free(s);
    return errors;
}

static void on_response(cipc_client *c, int rc, cipc_response *resp, void *ud);

/* Start requests until `run` has `want_in_flight` outstanding or all are started. A
 * request that cannot be started counts as an error and as completed at once. Called
 * before the loop runs and from each completion callback. */
static void async_fill(struct async_run *run, long want_in_flight)
{
    while (run->started < run->total && run->started - run->completed < want_in_flight) {
        long i = run->started++;
        run->slots[i].run = run;
        run->slots[i].index = i;
        run->start_ns[i] = cipc_now_ns();
        int rc = cipc_client_get(run->client, run->url, on_response, &run->slots[i]);
        if (rc < 0) {
            if (run->errors++ < 5)
                fprintf(stderr, "http_client_bench: cipc_client_get: %s (%s)\n", cipc_err_name(rc),
                        cipc_client_errmsg(run->client));
            run->completed++;
        }
    }
}

/* Completion callback: record the latency and the outcome, then start the next request
 * so the number in flight stays at the concurrency. Runs on the loop's thread. */
static void on_response(cipc_client *c, int rc, cipc_response *resp, void *ud)
{
    struct async_slot *slot = ud;
    struct async_run *run = slot->run;
    int64_t now = cipc_now_ns();
    if (run->nlatency < run->total)
        run->latency_ns[run->nlatency++] = now - run->start_ns[slot->index];
    run->completed++;
    int status = rc == 0 && resp != NULL ? cipc_response_status(resp) : 0;
    if (rc != 0 || status != 200) {
        if (run->errors++ < 5) {
            if (rc != 0)
                fprintf(stderr, "http_client_bench: %s: %s\n", cipc_err_name(rc),
                        cipc_client_errmsg(c));
            else
                fprintf(stderr, "http_client_bench: GET %s: status %d\n", run->url, status);
        }
    }
    if (!run->stopping)
        async_fill(run, run->concurrency);
}

/* Run `total` GETs with a->concurrency outstanding at most and wait for all of them.
 * The caller frees run->start_ns, run->latency_ns and run->slots (run_free()), even on
 * error. Returns the elapsed nanoseconds, or -1 on a timeout or an allocation failure. */
static int64_t async_batch(cipc_client *c, const struct bench_args *a, long total,
                           struct async_run *run)
{
    memset(run, 0, sizeof *run);
    run->client = c;
    run->url = a->url;
    run->total = total;
    run->concurrency = a->concurrency;
    run->start_ns = calloc((size_t)total, sizeof *run->start_ns);
    run->latency_ns = calloc((size_t)total, sizeof *run->latency_ns);
    run->slots = calloc((size_t)total, sizeof *run->slots);
    if (run->start_ns == NULL || run->latency_ns == NULL || run->slots == NULL) {
        fprintf(stderr, "http_client_bench: out of memory\n");
        return -1;
    }
    int64_t t0 = cipc_now_ns();
    /* Fill to the concurrency: the client queues any excess itself, but keeping exactly C
     * outstanding measures the client, not its queue. */
    async_fill(run, run->concurrency);
    int rc = cipc_client_wait(c, a->timeout_ms);
    int64_t elapsed = cipc_now_ns() - t0;
    run->stopping = 1;
    if (rc < 0 || run->completed != run->total) {
        fprintf(stderr, "http_client_bench: async run stopped with %ld of %ld completed (%s)\n",
                run->completed, run->total, rc < 0 ? cipc_err_name(rc) : "loop idle");
        return -1;
    }
    return elapsed;
}

static void run_free(struct async_run *run)
{
    free(run->start_ns);
    free(run->latency_ns);
    free(run->slots);
}

/* C > 1: N GETs with C in flight on a cipc_client. Returns the error count or -1. */
static long run_async(const struct bench_args *a)
{
    cipc_loop *loop = NULL;
    int rc = cipc_loop_new(NULL, &loop);
    if (rc < 0) {
        fprintf(stderr, "http_client_bench: cipc_loop_new: %s\n", cipc_strerror(rc));
        return -1;
    }
    cipc_session_opts opts = {
        .size = sizeof opts, .timeout_ms = a->timeout_ms, .max_concurrency = (int)a->concurrency};
    cipc_client *c = NULL;
    rc = cipc_client_new(loop, &opts, &c);
    if (rc < 0) {
        fprintf(stderr, "http_client_bench: cipc_client_new: %s\n", cipc_strerror(rc));
        cipc_loop_free(loop);
        return -1;
    }
    long errors = -1;
    struct async_run warm, timed;
    memset(&warm, 0, sizeof warm);
    memset(&timed, 0, sizeof timed);
    /* Warm up with at least C requests so all C connections are open before timing. */
    long warm_n = a->warmup > 0 && a->warmup < a->concurrency ? a->concurrency : a->warmup;
    int64_t elapsed = 0;
    if (warm_n > 0)
        elapsed = async_batch(c, a, warm_n, &warm);
    if (elapsed >= 0)
        elapsed = async_batch(c, a, a->requests, &timed);
    if (elapsed >= 0) {
        errors = timed.errors;
        print_results("async", a, elapsed, errors, timed.latency_ns, timed.nlatency);
    }
    /* Closing cancels whatever a timed-out run left pending; those callbacks still use
     * the runs' arrays, so free them only afterwards. */
    cipc_client_close(c);
    run_free(&warm);
    run_free(&timed);
    rc = cipc_loop_free(loop);
    if (rc < 0)
        fprintf(stderr, "http_client_bench: cipc_loop_free: %s\n", cipc_err_name(rc));
    return errors;
}

int main(int argc, char **argv)
{
    struct bench_args a;
    if (parse_args(argc, argv, &a) < 0)
        return 2;
    printf("bench: http_client\n");
    printf("cipc_version: %s\n", cipc_version());
    print_machine();
    printf("url: %s\n", a.url);
    long errors = a.concurrency == 1 ? run_sync(&a) : run_async(&a);
    fflush(stdout);
    if (errors < 0)
        return 1;
    return errors == 0 ? 0 : 1;
}
