/* tool_cache.h - the tool response cache (docs/caching.md): tool results reused for the tool's
 * cache_ttl_s (tools.json), per worker, in front of the tool runner (tool_run.h).
 *
 * - Key: SHA-256 of the tool's name and its canonical arguments: object keys sorted, null members
 *   dropped (a null argument is not sent), numbers in one spelling (7.0 = 7, 1e3 = 1000), strings
 *   trimmed with inner whitespace runs made one space.
 * - Single-flight: a call whose key is already being fetched waits for that request and gets its
 *   result (N identical concurrent calls on a worker make one request). A failure is shared too;
 *   when the call leading the request is cancelled, a waiting call takes over and sends its own.
 * - Stale-while-revalidate: an entry past its TTL but within [cache] tool_max_stale_s of it is
 *   served at once, and one background request refreshes it; older entries are not served.
 * - Tiers: a bytes-bounded LRU per worker; with [cache] tool_shared, PostgreSQL's cache_entries
 *   (layer 'tool') read on a worker miss and written after a fresh result.
 * Only successful (2xx) results are kept. A hit is marked on the call's result (cache_hit, stale).
 */
#ifndef TRILEMMA_ORCHESTRATOR_TOOL_CACHE_H
#define TRILEMMA_ORCHESTRATOR_TOOL_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "orchestrator/tool_run.h"
#include "stream/json.h"

struct store;
struct tool_cache;

struct tool_cache_conf {
    size_t lru_bytes;     /* per worker */
    bool shared;          /* the PostgreSQL tier (when the worker has a store) */
    uint32_t max_stale_s; /* serve a stale entry this long past its TTL while refreshing it */
    const char *currency; /* of the cost column in the shared tier */
};

/* The worker's tool cache over runner r (which the cache's refreshes use). conf outlives it.
 * Attach it with tool_runner_set_cache(r, tc). Never NULL. */
struct tool_cache *tool_cache_create(const struct tool_cache_conf *conf, struct tool_runner *r,
                                     struct loop *l);
/* Cancels the refreshes and reads in flight. Before tool_runner_destroy; NULL is a no-op. */
void tool_cache_destroy(struct tool_cache *tc);
/* The worker's store, for the shared tier (NULL = none). */
void tool_cache_set_store(struct tool_cache *tc, struct store *st);

/* Write the canonical form of the JSON arguments args[0..len) to out (NULL or "" = {}), using d
 * as scratch. Returns 0, or -EINVAL when they are not valid JSON (nothing is cached then). */
int tool_canonical_args(json_doc *d, const char *args, size_t len, struct buf *out);

/* ---- for tool_run.c ---- */
struct tool_call;
/* A checked call of a tool with cache_ttl_s: serve it, make it wait for an identical call or the
 * shared tier, or let it go (false: the runner sends it, and the cache keeps its result). */
bool tool_cache_begin(struct tool_cache *tc, struct tool_call *c, const char *args, size_t len);
/* A call the cache knows of ended (any status, cancelled included). */
void tool_cache_call_ended(struct tool_cache *tc, struct tool_call *c);

#endif
