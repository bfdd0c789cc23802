/* guard.h - copy fuzz input so that it ends right before a PROT_NONE page: a parser reading one
 * byte too far faults in every build. The replay also runs in the plain build, where xmalloc is
 * mimalloc and no sanitizer would notice an overread of an exactly sized heap copy; and the
 * libFuzzer build's tri_base is not built with TRILEMMA_SANITIZE either. One region, reused: a
 * copy is valid until the next call. */
#ifndef TRILEMMA_TESTS_FUZZ_GUARD_H
#define TRILEMMA_TESTS_FUZZ_GUARD_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static inline uint8_t *guard_copy(const void *src, size_t n)
{
    static uint8_t *base;
    static size_t cap;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);

    if (!base || n > cap) {
        if (base)
            munmap(base, cap + pg);
        cap = (n / pg + 1) * pg;
        base = mmap(NULL, cap + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == MAP_FAILED || mprotect(base + cap, pg, PROT_NONE) != 0) {
            perror("guard_copy");
            abort();
        }
    }
    uint8_t *p = base + cap - n;
    if (n)
        memmove(p, src, n);
    return p;
}

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
