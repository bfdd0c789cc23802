/* load_rng.h - a small seeded generator (splitmix64) for schedules, think times and query draws:
 * runs are reproducible for a given --seed and thread count. Not for anything secret. */
#ifndef TRILEMMA_LOAD_RNG_H
#define TRILEMMA_LOAD_RNG_H

#include <math.h>
#include <stdint.h>

static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static inline double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* Exponentially distributed with the given mean. */
static inline double rng_exp(uint64_t *s, double mean)
{
    return -mean * log(1.0 - rng_unit(s));
}

#endif
