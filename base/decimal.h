/* decimal.h - exact decimal text to integer millionths (money and rates never touch floats). */
#ifndef TRILEMMA_BASE_DECIMAL_H
#define TRILEMMA_BASE_DECIMAL_H

#include <stddef.h>
#include <stdint.h>

/* Parse a non-negative decimal ("0.075", "84", "84.50") into millionths. Returns -1 when
 * malformed, negative, over 10^12, or with more than six decimals. */
int64_t decimal_parse_micros(const char *s, size_t len);

#endif
