/* src/broker/list.c -- the broker's list type: a deque of byte strings. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"

/* --- lists ------------------------------------------------------------------------------ */

blist *cipc__list_new(void)
{
    return calloc(1, sizeof(blist));
}

void cipc__list_free(blist *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->a[(l->head + i) % l->cap]);
    free(l->a);
    free(l);
}

static int list_grow(blist *l)
{
    size_t cap = l->cap ? l->cap * 2 : 8;
    litem **a = malloc(cap * sizeof *a);
    if (!a)
        return -ENOMEM;
    for (size_t i = 0; i < l->n; i++)
        a[i] = l->a[(l->head + i) % l->cap];
    free(l->a);
    l->a = a;
    l->cap = cap;
    l->head = 0;
    return 0;
}

int cipc__list_push_item(blist *l, int left, litem *it)
{
    if (l->n == l->cap && list_grow(l) < 0)
        return -ENOMEM;
    if (left) {
        l->head = (l->head + l->cap - 1) % l->cap;
        l->a[l->head] = it;
    } else {
        l->a[(l->head + l->n) % l->cap] = it;
    }
    l->n++;
    l->bytes += it->len;
    return 0;
}

int cipc__list_push(blist *l, int left, const void *data, size_t len)
{
    litem *it = malloc(sizeof *it + len);
    if (!it)
        return -ENOMEM;
    it->len = len;
    memcpy(it->data, data, len);
    if (cipc__list_push_item(l, left, it) < 0) {
        free(it);
        return -ENOMEM;
    }
    return 0;
}

litem *cipc__list_pop(blist *l, int left)
{
    if (!l->n)
        return NULL;
    litem *it;
    if (left) {
        it = l->a[l->head];
        l->head = (l->head + 1) % l->cap;
    } else {
        it = l->a[(l->head + l->n - 1) % l->cap];
    }
    l->n--;
    l->bytes -= it->len;
    return it;
}

litem *cipc__list_at(const blist *l, size_t i)
{
    return i < l->n ? l->a[(l->head + i) % l->cap] : NULL;
}

size_t cipc__list_rem(blist *l, long long count, const void *data, size_t len)
{
    size_t removed = 0, limit = count == 0 ? (size_t)-1 : (size_t)(count < 0 ? -count : count);
    int from_tail = count < 0;
    /* Compact in place: walk in the direction asked, keep what is not removed. */
    litem **keep = malloc((l->n ? l->n : 1) * sizeof *keep);
    if (!keep)
        return 0;
    size_t nk = 0;
    for (size_t k = 0; k < l->n; k++) {
        size_t i = from_tail ? l->n - 1 - k : k;
        litem *it = l->a[(l->head + i) % l->cap];
        if (removed < limit && it->len == len && memcmp(it->data, data, len) == 0) {
            l->bytes -= it->len;
            free(it);
            removed++;
        } else {
            keep[nk++] = it;
        }
    }
    for (size_t k = 0; k < nk; k++) /* back in list order */
        l->a[k] = from_tail ? keep[nk - 1 - k] : keep[k];
    l->head = 0;
    l->n = nk;
    free(keep);
    return removed;
}
