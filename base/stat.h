/* stat.h - statistics counters with one writer (their worker) and readers on other threads
 * (/metrics): relaxed atomic stores instead of locked read-modify-write, and the bucket of a
 * value in a fixed histogram. */
#ifndef TRILEMMA_BASE_STAT_H
#define TRILEMMA_BASE_STAT_H

#include <stdint.h>

/* Only the owning thread may call these; readers use __atomic_load_n(.., __ATOMIC_RELAXED). */
static inline void metric_add(uint64_t *c, uint64_t n)
{
    __atomic_store_n(c, *c + n, __ATOMIC_RELAXED);
}
static inline void metric_sub(uint64_t *c, uint64_t n)
{
    __atomic_store_n(c, *c - n, __ATOMIC_RELAXED);
}
static inline void metric_set(uint64_t *c, uint64_t v)
{
    __atomic_store_n(c, v, __ATOMIC_RELAXED);
}

/* The index of the first of the n upper bounds that v does not exceed; n when above them all
 * (the +Inf bucket). */
static inline unsigned metric_bucket(const double *bounds, unsigned n, double v)
{
    unsigned b = 0;
    while (b < n && v > bounds[b])
        b++;
    return b;
}

#endif
