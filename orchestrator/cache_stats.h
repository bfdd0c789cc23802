/* cache_stats.h - the cache layers' names and counters: hits, misses, false-hit guard refusals
 * and resident bytes per layer, process-wide, for /metrics (trilemma_cache_*).
 *
 * The counters are shared by every worker: each update is one relaxed atomic add on a counter of
 * its own cache line. A cache is consulted once or twice per turn (and per tool call), far below
 * where that contention would show. */
#ifndef TRILEMMA_ORCHESTRATOR_CACHE_STATS_H
#define TRILEMMA_ORCHESTRATOR_CACHE_STATS_H

#include <stdint.h>

#include "base/buf.h"

/* The four cache layers of docs/caching.md, in the order a turn meets them. */
enum cache_layer { CACHE_EXACT = 0, CACHE_SEMANTIC, CACHE_TOOL, CACHE_PROMPT, CACHE__LAYERS };

/* "exact", "semantic", "tool", "prompt". */
const char *cache_layer_name(enum cache_layer l);

enum cache_stat { CSTAT_HIT = 0, CSTAT_MISS, CSTAT_GUARD_REFUSAL, CSTAT__N };

/* Count n events of kind s on layer l (any thread). */
void cache_stat_add(enum cache_layer l, enum cache_stat s, uint64_t n);
/* The layer's resident bytes (LRUs, indexes) grew (or shrank, delta < 0): any thread. */
void cache_bytes_add(enum cache_layer l, int64_t delta);
/* Current values (for tests and benchmarks). */
uint64_t cache_stat_get(enum cache_layer l, enum cache_stat s);
int64_t cache_bytes_get(enum cache_layer l);

/* Append the Prometheus text of every counter: trilemma_cache_hits_total{layer},
 * trilemma_cache_misses_total{layer}, trilemma_cache_guard_refusals_total{layer},
 * trilemma_cache_bytes{layer}. */
void cache_stats_metrics(struct buf *out);

#endif
