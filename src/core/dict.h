/* src/core/dict.h -- a hash table from byte-string keys to void * (chained,
 * power-of-two buckets, grows at load 1). Internal: used by the broker (keys, channels)
 * and the hub (channels, subscriptions). Not thread-safe. */
#ifndef CIPC_SRC_CORE_DICT_H
#define CIPC_SRC_CORE_DICT_H

#include <stddef.h>
#include <stdint.h>

typedef struct dict_entry {
    struct dict_entry *next;
    void *val;
    uint64_t hash;
    size_t klen;
    char key[]; /* NUL-terminated copy */
} dict_entry;

typedef struct dict {
    dict_entry **b;
    size_t nb, n;
} dict;

void cipc__dict_init(dict *d);
void cipc__dict_free(dict *d, void (*free_val)(void *));
dict_entry *cipc__dict_find(const dict *d, const void *key, size_t klen);
/* Find or add (val NULL when added). *added says which. NULL on -ENOMEM. */
dict_entry *cipc__dict_upsert(dict *d, const void *key, size_t klen, int *added);
/* Remove; returns the value (NULL if absent). */
void *cipc__dict_remove(dict *d, const void *key, size_t klen);
/* Iterate: *it starts at 0; returns NULL at the end. Not across inserts/removes. */
dict_entry *cipc__dict_next(const dict *d, size_t *bucket, dict_entry **cur);

#endif
