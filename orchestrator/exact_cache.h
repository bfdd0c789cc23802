/* exact_cache.h - the exact response cache, the first answer-cache layer (answer_cache.h).
 *
 * Key: SHA-256 of the normalized query (normalize.h: NFKC, case folding, punctuation and
 * whitespace, synonyms and fillers), the agent, its prompt version, the model and the context
 * hash (everything else that reached the model). A per-worker LRU bounded in bytes sits in front
 * of PostgreSQL's cache_entries (layer 'exact'), shared by every pod: read on a miss of the LRU,
 * written when an answer is offered. An entry lives the route's cache_ttl_s; expired entries are
 * never served. See docs/caching.md. */
#ifndef TRILEMMA_ORCHESTRATOR_EXACT_CACHE_H
#define TRILEMMA_ORCHESTRATOR_EXACT_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orchestrator/answer_cache.h"
#include "orchestrator/normalize.h"

struct exact_cache_conf {
    size_t lru_bytes;               /* per worker */
    bool shared;                    /* the PostgreSQL tier (when a database is configured) */
    const struct norm_words *words; /* synonyms and fillers; NULL = none */
};

extern const struct ac_layer_ops exact_cache_ops;

/* The key of q as 64 hex digits (for tests and tools): out[65]. Returns 0, or -EINVAL when the
 * message is not valid UTF-8 (nothing is cached for it). */
int exact_cache_key(const struct norm_words *w, const struct ac_query *q, char out[65]);

#endif
