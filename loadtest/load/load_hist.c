/* load_hist.c - the log-linear histogram (see load_hist.h for the layout). */
#include "loadtest/load/load_hist.h"

#include <math.h>
#include <string.h>

/* See load_hist.h. */
size_t hist_index(uint64_t v)
{
    if (v >= (1ull << HIST_MAX_BITS))
        return HIST_NBUCKETS - 1;
    if (v < 2 * HIST_SUB)
        return (size_t)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - HIST_SUB_BITS; /* v >> shift is in [128, 256) */
    return (size_t)(shift + 1) * HIST_SUB + (size_t)((v >> shift) - HIST_SUB);
}

/* See load_hist.h. */
uint64_t hist_bucket_lo(size_t idx)
{
    if (idx < 2 * HIST_SUB)
        return idx;
    size_t shift = idx / HIST_SUB - 1;
    return (uint64_t)(idx % HIST_SUB + HIST_SUB) << shift;
}

/* See load_hist.h. */
uint64_t hist_bucket_hi(size_t idx)
{
    if (idx < 2 * HIST_SUB)
        return idx;
    size_t shift = idx / HIST_SUB - 1;
    return hist_bucket_lo(idx) + (1ull << shift) - 1;
}

/* See load_hist.h. */
void hist_record_n(struct hist *h, uint64_t v, uint64_t n)
{
    if (n == 0)
        return;
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (h->count == 0 || v > h->max)
        h->max = v;
    h->count += n;
    h->sum += (double)v * (double)n;
    h->counts[hist_index(v)] += n;
}

/* See load_hist.h. */
void hist_record(struct hist *h, uint64_t v)
{
    hist_record_n(h, v, 1);
}

/* See load_hist.h. */
void hist_merge(struct hist *dst, const struct hist *src)
{
    if (src->count == 0)
        return;
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (dst->count == 0 || src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
    dst->sum += src->sum;
    for (size_t i = 0; i < HIST_NBUCKETS; i++)
        dst->counts[i] += src->counts[i];
}

/* See load_hist.h. */
void hist_reset(struct hist *h)
{
    memset(h, 0, sizeof(*h));
}

static uint64_t rank_of(const struct hist *h, double p)
{
    if (p > 100)
        p = 100;
    double r = ceil(p / 100.0 * (double)h->count);
    if (r < 1)
        r = 1;
    return r > (double)h->count ? h->count : (uint64_t)r;
}

/* See load_hist.h. */
void hist_percentiles(const struct hist *h, const double *p, size_t n, uint64_t *out)
{
    size_t k = 0, i = 0;
    uint64_t seen = 0;
    if (h->count == 0) {
        for (k = 0; k < n; k++)
            out[k] = 0;
        return;
    }
    for (; k < n; k++) {
        uint64_t rank = rank_of(h, p[k]);
        while (i < HIST_NBUCKETS && seen + h->counts[i] < rank)
            seen += h->counts[i++];
        if (i >= HIST_NBUCKETS) {
            out[k] = h->max;
            continue;
        }
        uint64_t v = hist_bucket_hi(i);
        if (v > h->max || i == HIST_NBUCKETS - 1)
            v = h->max;
        if (v < h->min)
            v = h->min;
        out[k] = v;
    }
}

/* See load_hist.h. */
uint64_t hist_percentile(const struct hist *h, double p)
{
    uint64_t v;
    hist_percentiles(h, &p, 1, &v);
    return v;
}

/* See load_hist.h. */
double hist_mean(const struct hist *h)
{
    return h->count ? h->sum / (double)h->count : 0.0;
}
