/* redact.h - removal of personal data from trace content before it is stored or exported:
 * payment card numbers (13-19 digits, spaces or dashes between groups, that pass the Luhn
 * check), phone numbers (10-15 digits with an optional +, spaces, dashes, dots, parentheses) and
 * e-mail addresses, each replaced by a marker ("[card]", "[phone]", "[email]"). Pure functions. */
#ifndef TRILEMMA_TRACE_REDACT_H
#define TRILEMMA_TRACE_REDACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* True when the digits of s[0..n) (other characters skipped) pass the Luhn check. */
bool redact_luhn_ok(const char *s, size_t n);

/* Append in[0..n) to out with the patterns of mask (REDACT_* of trace.h) replaced. Returns how
 * many were replaced. */
size_t redact_apply(uint32_t mask, const char *in, size_t n, struct buf *out);

/* Parse a [trace] redact list ("card,phone,email", "none"): 0 and *mask, or -1. */
int redact_parse(const char *list, uint32_t *mask);

#endif
