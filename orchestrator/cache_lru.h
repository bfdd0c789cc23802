/* cache_lru.h - a per-worker least-recently-used map bounded in bytes, the first tier of the
 * exact response cache and of the tool cache: 32-byte keys (SHA-256 digests), owned byte values,
 * each with an expiry, a staleness bound and the cost it saved. One worker, no locks.
 *
 * Expiry is the caller's business (the tool cache serves stale entries within a bound): get
 * returns what is there, put replaces, and the least recently used entries leave when the bytes
 * would exceed the bound. The bytes counted are the value, the key and the entry's bookkeeping. */
#ifndef TRILEMMA_ORCHESTRATOR_CACHE_LRU_H
#define TRILEMMA_ORCHESTRATOR_CACHE_LRU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orchestrator/cache_stats.h"

#define LRU_KEY 32

struct lru;

struct lru_entry {
    const char *val; /* valid until the next put or del on the LRU */
    size_t len;
    int64_t expires_ms;  /* unix ms: fresh until then */
    int64_t cost_micros; /* what producing the value cost */
};

/* max_bytes 0 = nothing is kept. layer: whose bytes gauge (cache_bytes_add) the LRU moves. */
struct lru *lru_create(size_t max_bytes, enum cache_layer layer);
void lru_destroy(struct lru *c);

/* The entry of key, made the most recent. Returns false when absent. */
bool lru_get(struct lru *c, const uint8_t key[LRU_KEY], struct lru_entry *out);
/* Insert or replace (val copied). A value larger than the whole bound is not kept. */
void lru_put(struct lru *c, const uint8_t key[LRU_KEY], const char *val, size_t len,
             int64_t expires_ms, int64_t cost_micros);
void lru_del(struct lru *c, const uint8_t key[LRU_KEY]);
size_t lru_bytes(const struct lru *c);
size_t lru_count(const struct lru *c);

#endif
