/* metrics.c - the store's Prometheus metrics, summed over the workers. */
#include "base/buf.h"
#include "store/journal.h"
#include "store/store_int.h"

static uint64_t rd(const uint64_t *c)
{
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

static void sum_stats(struct store *const *workers, int n, struct store_stats *s)
{
    const size_t words = sizeof(*s) / sizeof(uint64_t);
    uint64_t *dst = (uint64_t *)s;
    for (int w = 0; w < n; w++) {
        if (!workers[w])
            continue;
        const uint64_t *src = (const uint64_t *)&workers[w]->stats;
        for (size_t i = 0; i < words; i++)
            dst[i] += rd(&src[i]);
    }
}

static void counter(struct buf *out, const char *name, const char *help, uint64_t v)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
               (unsigned long long)v);
}

static void gauge(struct buf *out, const char *name, const char *help, uint64_t v)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", name, help, name, name,
               (unsigned long long)v);
}

static void histogram(struct buf *out, const struct store_stats *s)
{
    const char *name = "trilemma_store_commit_seconds";
    buf_printf(out, "# HELP %s Time from store_commit_turn to durable (PostgreSQL or journal).\n",
               name);
    buf_printf(out, "# TYPE %s histogram\n", name);
    uint64_t cum = 0;
    for (int b = 0; b < STORE_LAT_BUCKETS; b++) {
        cum += s->lat[b];
        if (b < STORE_LAT_BUCKETS - 1)
            buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, store_lat_bounds[b],
                       (unsigned long long)cum);
        else
            buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    }
    buf_printf(out, "%s_sum %.6f\n%s_count %llu\n", name, (double)s->lat_sum_ns / 1e9, name,
               (unsigned long long)cum);
}

static void cache_drops(struct buf *out, const struct store_stats *s)
{
    static const char *const layers[2] = {"exact", "tool"};
    static const char *const reasons[2] = {"busy", "too_large"};
    const char *name = "trilemma_cache_shared_writes_dropped_total";
    buf_printf(out,
               "# HELP %s Shared cache tier writes dropped: the worker's writes in flight were at "
               "[cache] shared_writes_max or shared_write_bytes_max (busy), or the entry was over "
               "shared_entry_max_bytes (too_large).\n# TYPE %s counter\n",
               name, name);
    for (int l = 0; l < 2; l++)
        for (int r = 0; r < 2; r++)
            buf_printf(out, "%s{layer=\"%s\",reason=\"%s\"} %llu\n", name, layers[l], reasons[r],
                       (unsigned long long)s->cache_dropped[l][r]);
}

/* Append the stores' metrics; see store.h. */
void store_metrics(struct store *const *workers, int n, struct buf *out)
{
    static const char *const kinds[SE__COUNT] = {
        [SE_CONNECTION] = "connection",
        [SE_TRANSIENT] = "transient",
        [SE_REJECTED] = "rejected",
        [SE_JOURNAL] = "journal",
        [SE_JOURNAL_FULL] = "journal_full",
        [SE_NO_JOURNAL] = "no_journal",
        [SE_READ] = "read",
    };
    struct store_stats s = {0};
    sum_stats(workers, n, &s);
    counter(out, "trilemma_store_commits_total",
            "Turns made durable (committed to PostgreSQL or written to the spill journal).",
            s.commits);
    counter(out, "trilemma_store_batches_total",
            "Group commits that succeeded (new turns and journal replays).", s.batches);
    counter(out, "trilemma_store_journaled_total", "Turns written to the spill journal.",
            s.journaled);
    counter(out, "trilemma_store_replayed_total", "Journal records replayed into PostgreSQL.",
            s.replayed);
    histogram(out, &s);
    gauge(out, "trilemma_store_journal_bytes", "Bytes in the workers' spill journals.",
          s.journal_bytes);
    gauge(out, "trilemma_store_degraded",
          "Workers whose writes go to the spill journal (PostgreSQL away or being caught up).",
          s.degraded);
    gauge(out, "trilemma_store_foreign_journals",
          "Orphaned spill journals of another database in journal_dir, left alone.",
          journal_foreign_count());
    buf_printf(out, "# HELP trilemma_store_errors_total Store failures by kind.\n"
                    "# TYPE trilemma_store_errors_total counter\n");
    for (int k = 0; k < SE__COUNT; k++)
        buf_printf(out, "trilemma_store_errors_total{kind=\"%s\"} %llu\n", kinds[k],
                   (unsigned long long)s.errors[k]);
    cache_drops(out, &s);
}
