/* examples/async_fetch.c -- the seed's aiohttp snippet in C, fetching many URLs at once.
 *
 *     async def fetch(session, url):
 *         async with session.get(url) as response:
 *             return await response.text()
 *
 *     async def main():
 *         async with aiohttp.ClientSession() as session:
 *             html = await fetch(session, 'http://python.org')
 *             print(html)
 *
 * Usage: async_fetch [BASE_URL] [COUNT]   (default http://127.0.0.1:8080, 20 URLs). */
#include <cipc.h>
#include <stdio.h>
#include <stdlib.h>

/* fetch(): a callback-style request; the response is a view valid in the callback. */
static void on_text(cipc_client *c, int rc, cipc_response *resp, void *ud)
{
    const char *url = ud;
    if (rc < 0)
        printf("fetch %s failed: %s\n", url, cipc_client_errmsg(c));
    else
        printf("fetch %s -> %d: %s\n", url, cipc_response_status(resp), cipc_response_text(resp));
}

int main(int argc, char **argv)
{
    const char *base = argc > 1 ? argv[1] : "http://127.0.0.1:8080";
    int count = argc > 2 ? atoi(argv[2]) : 20;
    if (count < 1 || count > 10000)
        count = 20;

    cipc_loop *loop = NULL;
    cipc_client *client = NULL;
    if (cipc_loop_new(NULL, &loop) < 0 ||
        cipc_client_new(loop, &(cipc_session_opts){.base_url = base, .max_concurrency = 8},
                        &client) < 0) {
        fprintf(stderr, "could not create the client\n");
        return 1;
    }

    /* html = await fetch(session, url) */
    char *one = "/users/1";
    cipc_client_get(client, one, on_text, one);
    cipc_client_wait(client, 10000);

    /* await asyncio.gather(*(fetch(session, url) for url in urls)) */
    cipc_fetch *fetches = calloc((size_t)count, sizeof *fetches);
    char(*urls)[32] = calloc((size_t)count, sizeof *urls);
    if (!fetches || !urls)
        return 1;
    for (int i = 0; i < count; i++) {
        snprintf(urls[i], sizeof urls[i], "/users/%d", i + 1);
        fetches[i].url = urls[i];
    }
    int64_t t0 = cipc_now_ns();
    int got = cipc_client_gather(client, fetches, (size_t)count, 10000);
    int64_t ms = (cipc_now_ns() - t0) / 1000000;
    int ok = 0;
    for (int i = 0; i < count; i++) {
        if (fetches[i].rc == 0 && cipc_response_status(fetches[i].resp) == 200)
            ok++;
        else if (fetches[i].rc < 0)
            printf("%s: %s\n", urls[i], cipc_strerror(fetches[i].rc));
        cipc_response_free(fetches[i].resp);
    }
    printf("gathered %d responses, %d with status 200, in %lld ms\n", got, ok, (long long)ms);

    free(fetches);
    free(urls);
    cipc_client_close(client);
    cipc_loop_free(loop);
    return ok == count ? 0 : 1;
}
