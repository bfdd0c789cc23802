/* sim_hash.h - the simulator's hashing and pseudo-random numbers: FNV-1a for request content,
 * splitmix64 for mixing and for deterministic streams of choices.
 *
 * Everything here is deterministic on purpose: the same request must give the same answer,
 * byte for byte, on every run and every machine. */
#ifndef TRILEMMA_SIM_HASH_H
#define TRILEMMA_SIM_HASH_H

#include <stddef.h>
#include <stdint.h>

#define SIM_HASH_SEED 1469598103934665603ull

/* FNV-1a over n bytes, continuing from h. */
static inline uint64_t sim_hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

/* Fold a 64-bit value into h (order matters). */
static inline uint64_t sim_hash_u64(uint64_t h, uint64_t v)
{
    return sim_hash_bytes(h, &v, sizeof(v));
}

/* splitmix64: advances *s and returns the next value. Good enough statistics for choosing
 * words and jitter, and a fine finaliser for hashes. */
static inline uint64_t sim_rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A uniform double in [0, 1). */
static inline double sim_rng_unit(uint64_t *s)
{
    return (double)(sim_rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

#endif
