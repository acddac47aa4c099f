/* src/core/dict.c -- the hash table of src/core/dict.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/dict.h"

/* FNV-1a, 64-bit, then a final mix: keys are short and the table is a power of two. */
static uint64_t hash_bytes(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

void cipc__dict_init(dict *d)
{
    d->b = NULL;
    d->nb = d->n = 0;
}

void cipc__dict_free(dict *d, void (*free_val)(void *))
{
    for (size_t i = 0; i < d->nb; i++) {
        dict_entry *e = d->b[i];
        while (e) {
            dict_entry *next = e->next;
            if (free_val)
                free_val(e->val);
            free(e);
            e = next;
        }
    }
    free(d->b);
    cipc__dict_init(d);
}

dict_entry *cipc__dict_find(const dict *d, const void *key, size_t klen)
{
    if (!d->nb)
        return NULL;
    uint64_t h = hash_bytes(key, klen);
    for (dict_entry *e = d->b[h & (d->nb - 1)]; e; e = e->next)
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
    return NULL;
}

static int grow(dict *d)
{
    size_t nb = d->nb ? d->nb * 2 : 8;
    dict_entry **b = calloc(nb, sizeof *b);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < d->nb; i++) {
        dict_entry *e = d->b[i];
        while (e) {
            dict_entry *next = e->next;
            size_t k = e->hash & (nb - 1);
            e->next = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(d->b);
    d->b = b;
    d->nb = nb;
    return 0;
}

dict_entry *cipc__dict_upsert(dict *d, const void *key, size_t klen, int *added)
{
    dict_entry *e = cipc__dict_find(d, key, klen);
    if (e) {
        *added = 0;
        return e;
    }
    if (d->n >= d->nb && grow(d) < 0)
        return NULL;
    e = malloc(sizeof *e + klen + 1);
    if (!e)
        return NULL;
    e->hash = hash_bytes(key, klen);
    e->klen = klen;
    memcpy(e->key, key, klen);
    e->key[klen] = 0;
    e->val = NULL;
    size_t k = e->hash & (d->nb - 1);
    e->next = d->b[k];
    d->b[k] = e;
    d->n++;
    *added = 1;
    return e;
}

void *cipc__dict_remove(dict *d, const void *key, size_t klen)
{
    if (!d->nb)
        return NULL;
    uint64_t h = hash_bytes(key, klen);
    for (dict_entry **pp = &d->b[h & (d->nb - 1)]; *pp; pp = &(*pp)->next) {
        dict_entry *e = *pp;
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0) {
            void *v = e->val;
            *pp = e->next;
            free(e);
            d->n--;
            return v;
        }
    }
    return NULL;
}

dict_entry *cipc__dict_next(const dict *d, size_t *bucket, dict_entry **cur)
{
    if (*cur && (*cur)->next) {
        *cur = (*cur)->next;
        return *cur;
    }
    size_t i = *cur ? *bucket + 1 : *bucket;
    for (; i < d->nb; i++) {
        if (d->b[i]) {
            *bucket = i;
            *cur = d->b[i];
            return *cur;
        }
    }
    *bucket = d->nb;
    *cur = NULL;
    return NULL;
}
