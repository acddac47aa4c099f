/* examples/pool_map.c -- the seed's multiprocessing.Pool snippet in C.
 *
 *     def square_number(n):
 *         return n * n
 *
 *     if __name__ == '__main__':
 *         with Pool(4) as pool:
 *             results = pool.map(square_number, [1, 2, 3, 4, 5])
 *         print(results)
 *
 * Prints "[1, 4, 9, 16, 25]" (the results in input order). Exits 0 when every item
 * succeeded. Takes no arguments (any are ignored). */
#include <cipc.h>
#include <stdio.h>

/* Runs in a worker process: one int in, one int out. */
static int square_number(const void *in, void *out, void *ud)
{
    (void)ud;
    int n = *(const int *)in;
    *(int *)out = n * n;
    return 0;
}

int main(void)
{
    cipc_pool *pool = NULL;
    int rc = cipc_pool_new(&(cipc_pool_opts){.workers = 4}, &pool);
    if (rc < 0) {
        fprintf(stderr, "pool: %s\n", cipc_strerror(rc));
        return 1;
    }
    int inputs[] = {1, 2, 3, 4, 5}, results[5];
    rc = cipc_pool_map(pool, square_number, NULL, inputs, 5, sizeof(int), results, sizeof(int),
                       0, NULL);
    cipc_pool_close(pool);
    cipc_pool_join(pool, -1);
    cipc_pool_free(pool);
    if (rc != 0) {
        fprintf(stderr, "map: %s\n", rc < 0 ? cipc_strerror(rc) : "some items failed");
        return 1;
    }
    printf("[");
    for (int i = 0; i < 5; i++)
        printf("%s%d", i ? ", " : "", results[i]);
    printf("]\n");
    return 0;
}
