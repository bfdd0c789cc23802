/* cache_store.h - the shared tier of the cache layers in PostgreSQL (table cache_entries,
 * migration 008): one row per (layer, key), read by every pod when its own per-worker LRU misses,
 * written after a turn. Both run on the worker's reader connection (store_query), so they never
 * wait behind a group commit and never block the worker. See docs/caching.md. */
#ifndef TRILEMMA_STORE_CACHE_STORE_H
#define TRILEMMA_STORE_CACHE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* The bound on one worker's shared-tier writes in flight ([cache] shared_writes_max,
 * shared_write_bytes_max, shared_entry_max_bytes; docs/caching.md). They share the reader
 * connection with conversation loads and resume reads, so a burst of them must neither grow
 * memory without bound nor queue those reads behind megabytes of cache rows. */
struct store_cache_bound {
    uint32_t writes_max; /* writes in flight at most (0 = the shared tier is read only) */
    uint64_t bytes_max;  /* their values' bytes in flight at most */
    uint64_t entry_max;  /* a larger value is never written to the shared tier */
};

enum store_cache_verdict {
    STORE_CACHE_WRITE,     /* send it */
    STORE_CACHE_BUSY,      /* drop it: the writes in flight are at the bound */
    STORE_CACHE_TOO_LARGE, /* drop it: the value is over entry_max (or bytes_max alone) */
};

/* Whether a write of len bytes may start while writes (of bytes in total) are in flight under b.
 * Pure. A dropped write loses nothing acknowledged: the entry stays in the worker's LRU. */
enum store_cache_verdict store_cache_admit(const struct store_cache_bound *b, uint32_t writes,
                                           uint64_t bytes, size_t len);

/* One entry as read (valid during the callback only). */
struct store_cache_entry {
    const char *value;
    size_t len;
    int64_t cost_micros;
    const char *currency;
    int64_t expires_unix_ms;
};

/* result: 0 = found and not expired (e valid), -ENOENT = none (or expired), -EIO = PostgreSQL
 * is away or the read failed (a miss for the caller). */
typedef void (*store_cache_fn)(void *ctx, int result, const struct store_cache_entry *e);

/* Read (layer, key_hex): layer "exact" or "tool", key_hex 64 lowercase hex digits. fn runs once
 * on a later loop turn unless store_cancel(op) is called first. st must not be NULL. */
struct store_op *store_cache_get(struct store *st, const char *layer, const char *key_hex,
                                 store_cache_fn fn, void *ctx);

/* The callback of a pending store_cache_get will not run (use this, not store_cancel). */
void store_cache_cancel(struct store_op *op);

/* Write (layer, key_hex) = value (UTF-8 text without NUL bytes), replacing an older row, and
 * purge up to 100 expired rows of any key. No turn waits for it (a failure is logged at debug
 * level: a cache row may be lost); a draining worker does (store_idle). A write the worker's
 * bound (store_conf.cache_bound, store_cache_admit) refuses is dropped and counted
 * (trilemma_cache_shared_writes_dropped_total{layer,reason}). label: what the entry is
 * for (agent, prompt version, model; or the tool), at most 256 bytes kept. */
void store_cache_put(struct store *st, const char *layer, const char *key_hex, const char *value,
                     size_t len, int64_t cost_micros, const char *currency, int64_t expires_unix_ms,
                     const char *label);

#endif
