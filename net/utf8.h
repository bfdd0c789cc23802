/* utf8.h - incremental UTF-8 validation (RFC 3629) that fails at the first impossible byte.
 *
 * A DFA (Hoehrmann style) with an ASCII fast path that checks a machine word at a time.
 * Rejects overlong forms, surrogates (U+D800..U+DFFF) and code points above U+10FFFF. */
#ifndef TRILEMMA_NET_UTF8_H
#define TRILEMMA_NET_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct utf8_state {
    uint32_t state; /* 0 = between code points (accept); zero-fill to start */
};

/* Feed n more bytes. Returns false as soon as the bytes so far cannot be a prefix of valid
 * UTF-8 (the state is then stuck in error); true otherwise, even if a sequence is unfinished. */
bool utf8_feed(struct utf8_state *st, const uint8_t *s, size_t n);

/* True if the bytes fed so far end on a code point boundary (no unfinished sequence). */
static inline bool utf8_complete(const struct utf8_state *st)
{
    return st->state == 0;
}

/* Whole-buffer check: valid and complete. */
bool utf8_valid(const uint8_t *s, size_t n);

/* Drop every byte of s (NUL-terminated) that is not part of a valid UTF-8 sequence, in place:
 * for text cut at a byte limit (snprintf "%.40s") before it goes to a database or a client.
 * Returns the new length. */
size_t utf8_scrub(char *s);

#endif
