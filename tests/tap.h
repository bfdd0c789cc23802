/* tap.h - the smallest test harness: CHECK records a failure with file:line and goes on;
 * tests end with `return tap_done();`, which prints "N passed, N failed". */
#ifndef TRILEMMA_TESTS_TAP_H
#define TRILEMMA_TESTS_TAP_H

#include <stdio.h>

static int tap_pass, tap_fail;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            tap_pass++;                                                                            \
        } else {                                                                                   \
            tap_fail++;                                                                            \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECKF(cond, ...)                                                                          \
    do {                                                                                           \
        if (cond) {                                                                                \
            tap_pass++;                                                                            \
        } else {                                                                                   \
            tap_fail++;                                                                            \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static inline int tap_done(void)
{
    printf("%d passed, %d failed\n", tap_pass, tap_fail);
    return tap_fail ? 1 : 0;
}

#endif
