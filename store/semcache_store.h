/* semcache_store.h - the semantic cache's rows in PostgreSQL (table semantic_cache, migration
 * 009): written when an answer is offered, read by every process to warm its vector index and
 * then to follow what other pods wrote. Both run on the worker's reader connection (store_query),
 * never blocking the worker. See docs/caching.md "Semantic cache". */
#ifndef TRILEMMA_STORE_SEMCACHE_STORE_H
#define TRILEMMA_STORE_SEMCACHE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* One row as read (valid during the callback only). */
struct store_semcache_row {
    int64_t id;
    const char *part; /* 16 hex digits */
    const char *query;
    size_t query_len;
    const float *vec;
    size_t dim;
    const char *answer;
    size_t answer_len;
    int64_t cost_micros;
    const char *currency;
    int64_t expires_unix_ms;
};

/* result 0 with rows[0..n) (newest first), or -EIO when PostgreSQL is away or the read failed. */
typedef void (*store_semcache_fn)(void *ctx, int result, const struct store_semcache_row *rows,
                                  size_t n);

/* The live rows with an id above after_id, newest first, at most limit. fn runs once on a later
 * loop turn unless store_semcache_cancel(op) is called first. st must not be NULL. */
struct store_op *store_semcache_read(struct store *st, int64_t after_id, uint32_t limit,
                                     store_semcache_fn fn, void *ctx);
void store_semcache_cancel(struct store_op *op);

/* Write a row (replacing the one of the same part and query, which takes a new id) and purge up
 * to 100 expired rows. No turn waits for it; a failure is logged at debug level. label: what the
 * entry is for (at most 256 bytes kept). Texts must be UTF-8 without NUL bytes. */
void store_semcache_put(struct store *st, const char *part_hex, const char *query, size_t qlen,
                        const float *vec, size_t dim, const char *answer, size_t alen,
                        int64_t cost_micros, const char *currency, int64_t expires_unix_ms,
                        const char *label);

#endif
