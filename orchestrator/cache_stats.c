/* cache_stats.c - per-layer cache counters (cache_stats.h). */
#include "orchestrator/cache_stats.h"

/* One cache line per layer, so that workers counting different layers do not share one. */
struct layer_stats {
    uint64_t n[CSTAT__N];
    int64_t bytes;
} __attribute__((aligned(64)));

static struct layer_stats stats[CACHE__LAYERS];

static const char *const layer_names[CACHE__LAYERS] = {"exact", "semantic", "tool", "prompt"};

/* See cache_stats.h. */
const char *cache_layer_name(enum cache_layer l)
{
    return (unsigned)l < CACHE__LAYERS ? layer_names[l] : "unknown";
}

/* See cache_stats.h. */
void cache_stat_add(enum cache_layer l, enum cache_stat s, uint64_t n)
{
    if ((unsigned)l < CACHE__LAYERS && (unsigned)s < CSTAT__N)
        __atomic_fetch_add(&stats[l].n[s], n, __ATOMIC_RELAXED);
}

/* See cache_stats.h. */
void cache_bytes_add(enum cache_layer l, int64_t delta)
{
    if ((unsigned)l < CACHE__LAYERS)
        __atomic_fetch_add(&stats[l].bytes, delta, __ATOMIC_RELAXED);
}

/* See cache_stats.h. */
uint64_t cache_stat_get(enum cache_layer l, enum cache_stat s)
{
    return __atomic_load_n(&stats[l].n[s], __ATOMIC_RELAXED);
}

/* See cache_stats.h. */
int64_t cache_bytes_get(enum cache_layer l)
{
    return __atomic_load_n(&stats[l].bytes, __ATOMIC_RELAXED);
}

/* Render every counter; see the header. */
void cache_stats_metrics(struct buf *out)
{
    static const char *const names[CSTAT__N] = {"trilemma_cache_hits_total",
                                                "trilemma_cache_misses_total",
                                                "trilemma_cache_guard_refusals_total"};
    static const char *const help[CSTAT__N] = {
        "Answers or tool results served from a cache layer.",
        "Cache layer lookups that found nothing usable.",
        "Hits a layer's guard refused (the words that matter differ)."};
    for (int s = 0; s < CSTAT__N; s++) {
        buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", names[s], help[s], names[s]);
        for (int l = 0; l < CACHE__LAYERS; l++)
            buf_printf(out, "%s{layer=\"%s\"} %llu\n", names[s], layer_names[l],
                       (unsigned long long)cache_stat_get((enum cache_layer)l, (enum cache_stat)s));
    }
    buf_printf(out, "# HELP trilemma_cache_bytes Bytes held by a cache layer in this process.\n"
                    "# TYPE trilemma_cache_bytes gauge\n");
    for (int l = 0; l < CACHE__LAYERS; l++) {
        int64_t b = cache_bytes_get((enum cache_layer)l);
        buf_printf(out, "trilemma_cache_bytes{layer=\"%s\"} %lld\n", layer_names[l],
                   (long long)(b > 0 ? b : 0));
    }
}
