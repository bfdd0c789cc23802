/* semcache_index.h - the semantic cache's vector index of one process: bounded entries of
 * (partition, unit vector, query, answer, cost, expiry), exact cosine search.
 *
 * Exact search is a dot product per entry of the same partition over contiguous floats: at 256
 * dimensions about 0.1 ms per 1,000 entries on one core (loadtest/semcache/bench_semcache
 * measures it), so the default bound of 10,000 entries costs about a millisecond per lookup and
 * no approximate index is needed. When full, the oldest entry gives way (FIFO). Not thread-safe:
 * one index per worker, or behind the caller's lock. Pure memory, no I/O. */
#ifndef TRILEMMA_ORCHESTRATOR_SEMCACHE_INDEX_H
#define TRILEMMA_ORCHESTRATOR_SEMCACHE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct semidx;

struct semidx_entry {
    uint64_t part; /* the key everything else must share: type, agent, prompt, model, catalog */
    char *query;   /* the question whose answer this is (for the guard) */
    size_t query_len;
    char *answer;
    size_t answer_len;
    int64_t cost_micros; /* what producing the answer cost (the saving of a hit) */
    char currency[4];
    int64_t expires_unix_ms;
    bool used; /* a slot in use */
};

/* An index of at most max_entries vectors of dim floats. NULL on a zero size. */
struct semidx *semidx_create(size_t dim, size_t max_entries);
void semidx_destroy(struct semidx *x);

/* Add a copy of an entry (v is normalized here; a zero vector is refused: -EINVAL). An entry of
 * the same partition and query text is replaced; otherwise the oldest slot is reused when full.
 * Returns 0 or -EINVAL. */
int semidx_add(struct semidx *x, uint64_t part, const float *v, const char *query, size_t qlen,
               const char *answer, size_t alen, int64_t cost_micros, const char *currency,
               int64_t expires_unix_ms);

/* The live entry of partition part most similar to v (unit length expected) at now_unix_ms: its
 * slot, and the cosine in *sim; -1 when the partition has none. */
int semidx_best(const struct semidx *x, uint64_t part, const float *v, int64_t now_unix_ms,
                float *sim);

/* The entry in slot i (valid until the next add). */
const struct semidx_entry *semidx_at(const struct semidx *x, int i);

/* Entries in use, and the bytes they and their vectors hold. */
size_t semidx_count(const struct semidx *x);
size_t semidx_bytes(const struct semidx *x);

/* Normalize v[0..dim) to unit length in place; returns false for a zero (or non-finite) vector. */
bool semidx_normalize(float *v, size_t dim);

#endif
