/* cache_lru.c - a bytes-bounded LRU map (cache_lru.h): chained hash buckets (the key is already
 * a digest: its first 8 bytes are the hash) and one doubly linked recency list. */
#include "orchestrator/cache_lru.h"

#include <string.h>

#include "base/mem.h"

struct node {
    struct node *hnext;       /* bucket chain */
    struct node *prev, *next; /* recency: head = most recent */
    uint8_t key[LRU_KEY];
    char *val;
    size_t len;
    int64_t expires_ms;
    int64_t cost_micros;
};

struct lru {
    struct node **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    size_t bytes, max_bytes;
    struct node *head, *tail;
    enum cache_layer layer;
};

static size_t node_bytes(const struct node *n)
{
    return sizeof(*n) + n->len;
}

static size_t bucket_of(const struct lru *c, const uint8_t key[LRU_KEY])
{
    uint64_t h;
    memcpy(&h, key, sizeof(h));
    return (size_t)h & (c->nbuckets - 1);
}

/* See cache_lru.h. */
struct lru *lru_create(size_t max_bytes, enum cache_layer layer)
{
    struct lru *c = xcalloc(1, sizeof(*c));
    c->nbuckets = 64;
    c->buckets = xcalloc(c->nbuckets, sizeof(*c->buckets));
    c->max_bytes = max_bytes;
    c->layer = layer;
    return c;
}

static void list_unlink(struct lru *c, struct node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        c->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        c->tail = n->prev;
    n->prev = n->next = NULL;
}

static void list_push_front(struct lru *c, struct node *n)
{
    n->prev = NULL;
    n->next = c->head;
    if (c->head)
        c->head->prev = n;
    c->head = n;
    if (!c->tail)
        c->tail = n;
}

static struct node **find_slot(struct lru *c, const uint8_t key[LRU_KEY])
{
    struct node **p = &c->buckets[bucket_of(c, key)];
    while (*p && memcmp((*p)->key, key, LRU_KEY) != 0)
        p = &(*p)->hnext;
    return p;
}

static void node_remove(struct lru *c, struct node **slot)
{
    struct node *n = *slot;
    *slot = n->hnext;
    list_unlink(c, n);
    c->count--;
    c->bytes -= node_bytes(n);
    cache_bytes_add(c->layer, -(int64_t)node_bytes(n));
    xfree(n->val);
    xfree(n);
}

/* See cache_lru.h. */
void lru_destroy(struct lru *c)
{
    if (!c)
        return;
    while (c->tail)
        node_remove(c, find_slot(c, c->tail->key));
    xfree(c->buckets);
    xfree(c);
}

static void grow(struct lru *c)
{
    size_t nb = c->nbuckets * 2;
    struct node **b = xcalloc(nb, sizeof(*b));
    for (size_t i = 0; i < c->nbuckets; i++)
        for (struct node *n = c->buckets[i], *next; n; n = next) {
            next = n->hnext;
            uint64_t h;
            memcpy(&h, n->key, sizeof(h));
            n->hnext = b[h & (nb - 1)];
            b[h & (nb - 1)] = n;
        }
    xfree(c->buckets);
    c->buckets = b;
    c->nbuckets = nb;
}

/* See cache_lru.h. */
bool lru_get(struct lru *c, const uint8_t key[LRU_KEY], struct lru_entry *out)
{
    struct node *n = *find_slot(c, key);
    if (!n)
        return false;
    list_unlink(c, n);
    list_push_front(c, n);
    *out = (struct lru_entry){n->val, n->len, n->expires_ms, n->cost_micros};
    return true;
}

/* See cache_lru.h. */
void lru_del(struct lru *c, const uint8_t key[LRU_KEY])
{
    struct node **slot = find_slot(c, key);
    if (*slot)
        node_remove(c, slot);
}

/* See cache_lru.h. */
void lru_put(struct lru *c, const uint8_t key[LRU_KEY], const char *val, size_t len,
             int64_t expires_ms, int64_t cost_micros)
{
    lru_del(c, key);
    if (sizeof(struct node) + len > c->max_bytes)
        return;
    while (c->tail && c->bytes + sizeof(struct node) + len > c->max_bytes)
        node_remove(c, find_slot(c, c->tail->key));
    if (c->count + 1 > c->nbuckets)
        grow(c);
    struct node *n = xcalloc(1, sizeof(*n));
    memcpy(n->key, key, LRU_KEY);
    n->val = xmalloc(len ? len : 1);
    memcpy(n->val, val, len);
    n->len = len;
    n->expires_ms = expires_ms;
    n->cost_micros = cost_micros;
    size_t b = bucket_of(c, key);
    n->hnext = c->buckets[b];
    c->buckets[b] = n;
    list_push_front(c, n);
    c->count++;
    c->bytes += node_bytes(n);
    cache_bytes_add(c->layer, (int64_t)node_bytes(n));
}

/* See cache_lru.h. */
size_t lru_bytes(const struct lru *c)
{
    return c->bytes;
}

/* See cache_lru.h. */
size_t lru_count(const struct lru *c)
{
    return c->count;
}
