/* apportion.c - the largest remainder method (apportion.h). */
#include "store/apportion.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "base/mem.h"

struct rem {
    uint64_t r; /* total * w[i] mod W */
    size_t i;
};

/* Largest remainder first; equal ones in index order (deterministic: the same rows give the
 * same shares on every read). */
static int cmp_rem(const void *a, const void *b)
{
    const struct rem *x = a, *y = b;
    if (x->r != y->r)
        return x->r > y->r ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* See apportion.h. */
int apportion(int64_t total, const uint64_t *w, size_t n, int64_t *out)
{
    if (n == 0 || total < 0)
        return -EINVAL;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (w[i] > UINT64_MAX - sum)
            return -EOVERFLOW;
        sum += w[i];
    }
    bool equal = sum == 0; /* nothing to weigh by: equal shares */
    unsigned __int128 W = equal ? n : sum;
    struct rem *rem = xmalloc(n * sizeof(*rem));
    int64_t given = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned __int128 p = (unsigned __int128)(uint64_t)total * (equal ? 1 : w[i]);
        out[i] = (int64_t)(p / W); /* <= total */
        rem[i] = (struct rem){(uint64_t)(p % W), i};
        given += out[i];
    }
    /* the floors fall short by less than n units: one each to the largest remainders */
    uint64_t left = (uint64_t)(total - given);
    if (left) {
        qsort(rem, n, sizeof(*rem), cmp_rem);
        for (size_t k = 0; k < left; k++)
            out[rem[k].i]++;
    }
    xfree(rem);
    return 0;
}
