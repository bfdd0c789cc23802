/* apportion.h - an amount split over shares in proportion to weights, exactly, in integer
 * micro-units (the largest remainder method): the provisioned hourly price split over the turns
 * an hour served (docs/store.md, "Provisioned capacity"). Pure: no allocation but the scratch
 * the call frees, no state. */
#ifndef TRILEMMA_STORE_APPORTION_H
#define TRILEMMA_STORE_APPORTION_H

#include <stddef.h>
#include <stdint.h>

/* Split total (>= 0) over n >= 1 shares in proportion to w[0..n): out[i] = floor(total * w[i] /
 * W) with W the sum of the weights, then one more micro-unit to each of the (total - sum of the
 * floors) shares with the largest remainders (total * w[i] mod W), ties to the lower index, so
 * the shares sum to total exactly and no share is off its exact value by a unit or more. When
 * every weight is 0 the shares are equal (every weight taken as 1). The products are 128-bit,
 * so no total and weights overflow. Returns 0, or -EINVAL (n == 0, total < 0) or -EOVERFLOW (the
 * weights' sum exceeds UINT64_MAX); out is then untouched. */
int apportion(int64_t total, const uint64_t *w, size_t n, int64_t *out);

#endif
