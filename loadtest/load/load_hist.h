/* load_hist.h - a log-linear histogram with HdrHistogram's bucket layout: fixed memory, no
 * samples kept, values recorded in O(1), percentiles within 1/128 (0.78%) of the true value.
 *
 * Values below 256 have a bucket each. Above, every power of two [2^k, 2^(k+1)) is split into
 * 128 equal sub-buckets, so a bucket's width is at most 1/128 of its lowest value. Values from
 * 2^HIST_MAX_BITS up are counted in the top bucket (max still records them exactly). The unit
 * is the caller's: microseconds for latencies, tokens, micro-units of money. A zero-filled
 * struct is an empty histogram. */
#ifndef TRILEMMA_LOAD_HIST_H
#define TRILEMMA_LOAD_HIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HIST_SUB_BITS 7                /* 128 sub-buckets per power of two */
#define HIST_SUB (1u << HIST_SUB_BITS) /* 128 */
#define HIST_MAX_BITS 40               /* 2^40 us = 12.7 days */
#define HIST_NBUCKETS ((HIST_MAX_BITS - HIST_SUB_BITS + 1) * HIST_SUB) /* 4352 */

struct hist {
    uint64_t count;
    uint64_t min, max; /* meaningful when count > 0 */
    double sum;        /* for the mean; a double so that sums of large values never wrap */
    uint64_t counts[HIST_NBUCKETS];
};

/* Bucket index of a value, and the lowest and highest value that bucket holds. */
size_t hist_index(uint64_t v);
uint64_t hist_bucket_lo(size_t idx);
uint64_t hist_bucket_hi(size_t idx);

void hist_record(struct hist *h, uint64_t v);
void hist_record_n(struct hist *h, uint64_t v, uint64_t n);
/* Add every count of src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);
void hist_reset(struct hist *h);

/* The value at percentile p (0..100]: the highest value equivalent to the bucket holding the
 * ceil(p/100 * count)-th smallest recorded value, never above the recorded max (as
 * HdrHistogram's getValueAtPercentile). 0 when empty. */
uint64_t hist_percentile(const struct hist *h, double p);
double hist_mean(const struct hist *h);

/* Percentiles p[0..n) in one pass (p ascending); out[i] as hist_percentile(h, p[i]). */
void hist_percentiles(const struct hist *h, const double *p, size_t n, uint64_t *out);

#endif
