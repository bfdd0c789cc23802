/* test_load_hist.c - the log-linear histogram of trilemma-load (loadtest/load/load_hist.c):
 * bucket layout, percentiles against a sorted reference on random data (within the bucket
 * precision), merge, clamping, and the empty histogram. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loadtest/load/load_hist.h"
#include "loadtest/load/load_rng.h"
#include "tests/tap.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The reference: the ceil(p/100 * n)-th smallest value (1-based). */
static uint64_t ref_percentile(const uint64_t *sorted, size_t n, double p)
{
    double r = p / 100.0 * (double)n;
    size_t rank = (size_t)r;
    if ((double)rank < r)
        rank++;
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

static void test_layout(void)
{
    /* exact below 256, then every bucket is within 1/128 of its low end, contiguous */
    for (uint64_t v = 0; v < 256; v++)
        CHECK(hist_index(v) == v && hist_bucket_lo(v) == v && hist_bucket_hi(v) == v);
    for (size_t i = 256; i < HIST_NBUCKETS - 1; i++) {
        uint64_t lo = hist_bucket_lo(i), hi = hist_bucket_hi(i);
        CHECKF(hist_bucket_lo(i + 1) == hi + 1, "bucket %zu not contiguous", i);
        CHECKF((double)(hi - lo) <= (double)lo / 128.0, "bucket %zu too wide", i);
        CHECKF(hist_index(lo) == i && hist_index(hi) == i, "bucket %zu index", i);
    }
    CHECK(hist_index(UINT64_MAX) == HIST_NBUCKETS - 1);
    CHECK(hist_index(1ull << HIST_MAX_BITS) == HIST_NBUCKETS - 1);
}

static void check_against_reference(const char *what, uint64_t *vals, size_t n)
{
    static const double ps[] = {0.1, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};
    struct hist *h = calloc(1, sizeof(*h));
    for (size_t i = 0; i < n; i++)
        hist_record(h, vals[i]);
    qsort(vals, n, sizeof(*vals), cmp_u64);
    CHECK(h->count == n && h->min == vals[0] && h->max == vals[n - 1]);
    for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
        uint64_t ref = ref_percentile(vals, n, ps[k]), got = hist_percentile(h, ps[k]);
        /* the histogram answers its bucket's highest value: never below the reference and
         * at most one bucket width (1/128 of the value) above it */
        CHECKF(got >= ref && (double)(got - ref) <= (double)ref / 128.0 + 1,
               "%s p%g: got %llu, reference %llu", what, ps[k], (unsigned long long)got,
               (unsigned long long)ref);
    }
    uint64_t multi[4];
    static const double four[] = {50, 90, 99, 99.9};
    hist_percentiles(h, four, 4, multi);
    for (int k = 0; k < 4; k++)
        CHECK(multi[k] == hist_percentile(h, four[k]));
    CHECK(multi[0] <= multi[1] && multi[1] <= multi[2] && multi[2] <= multi[3]);
    free(h);
}

static void test_random(void)
{
    enum { N = 200000 };
    uint64_t *v = malloc(N * sizeof(*v)), rng = 42;
    for (size_t i = 0; i < N; i++) /* log-uniform over 1 us .. 1000 s */
        v[i] = (uint64_t)exp(rng_unit(&rng) * log(1e9));
    check_against_reference("log-uniform", v, N);
    for (size_t i = 0; i < N; i++) /* latencies: a body and a long tail */
        v[i] = (uint64_t)(20000 + rng_exp(&rng, 5000) + (rng_unit(&rng) < 0.01 ? 1e6 : 0));
    check_against_reference("tail", v, N);
    for (size_t i = 0; i < 1000; i++) /* small counts, small values */
        v[i] = rng_next(&rng) % 300;
    check_against_reference("small", v, 1000);
    v[0] = 123456789;
    check_against_reference("single", v, 1);
    free(v);
}

static void test_merge_and_edges(void)
{
    struct hist *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b)),
                *all = calloc(1, sizeof(*all));
    uint64_t rng = 7;
    CHECK(hist_percentile(a, 99) == 0 && hist_mean(a) == 0);
    for (int i = 0; i < 5000; i++) {
        uint64_t x = rng_next(&rng) % 1000000;
        hist_record(i % 2 ? a : b, x);
        hist_record(all, x);
    }
    hist_merge(a, b);
    CHECK(memcmp(a->counts, all->counts, sizeof(a->counts)) == 0);
    CHECK(a->count == all->count && a->min == all->min && a->max == all->max);
    CHECK(hist_percentile(a, 99.9) == hist_percentile(all, 99.9));
    hist_reset(a);
    hist_record(a, (1ull << 45) + 3); /* beyond the range: counted on top, max exact */
    CHECK(a->max == (1ull << 45) + 3 && hist_percentile(a, 50) == a->max);
    hist_record_n(a, 5, 3);
    CHECK(a->count == 4 && a->min == 5 && hist_percentile(a, 75) == 5);
    free(a);
    free(b);
    free(all);
}

int main(void)
{
    test_layout();
    test_random();
    test_merge_and_edges();
    return tap_done();
}
