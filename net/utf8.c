/* utf8.c - incremental UTF-8 validation: a byte-class DFA (after Bjoern Hoehrmann's decoder)
 * with an ASCII fast path.
 *
 * The DFA encodes RFC 3629's table of well-formed sequences directly, so the reject state is
 * reached at the first byte that cannot continue any valid sequence: C0, C1 and F5..FF at once,
 * the second byte of an overlong (E0 80..9F, F0 80..8F), of a surrogate (ED A0..BF) or of a code
 * point above U+10FFFF (F4 90..BF). That is what lets the WebSocket parser fail a text message
 * on the byte that made it invalid instead of at the end of the frame. */
#include "net/utf8.h"

#include <string.h>

/* Byte classes. */
enum {
    C_ASCII, /* 00..7F */
    C_CONT1, /* 80..8F */
    C_CONT2, /* 90..9F */
    C_CONT3, /* A0..BF */
    C_BAD,   /* C0, C1, F5..FF: never valid */
    C_LEAD2, /* C2..DF */
    C_E0,    /* E0: next byte A0..BF (no overlongs) */
    C_LEAD3, /* E1..EC, EE, EF */
    C_ED,    /* ED: next byte 80..9F (no surrogates) */
    C_F0,    /* F0: next byte 90..BF (no overlongs) */
    C_LEAD4, /* F1..F3 */
    C_F4,    /* F4: next byte 80..8F (nothing above U+10FFFF) */
    C_COUNT
};

/* States: ACCEPT must be 0 (utf8_complete and zero-filled state rely on it). */
enum {
    S_ACCEPT, /* between code points */
    S_REJECT, /* sticky */
    S_NEED1,  /* one continuation byte left */
    S_NEED2,  /* two continuation bytes left */
    S_E0,     /* after E0 */
    S_ED,     /* after ED */
    S_NEED3,  /* three continuation bytes left (after F1..F3) */
    S_F0,     /* after F0 */
    S_F4,     /* after F4 */
    S_COUNT
};

static const uint8_t byte_class[256] = {
    [0x00 ... 0x7F] = C_ASCII,
    [0x80 ... 0x8F] = C_CONT1,
    [0x90 ... 0x9F] = C_CONT2,
    [0xA0 ... 0xBF] = C_CONT3,
    [0xC0 ... 0xC1] = C_BAD,
    [0xC2 ... 0xDF] = C_LEAD2,
    [0xE0] = C_E0,
    [0xE1 ... 0xEC] = C_LEAD3,
    [0xED] = C_ED,
    [0xEE ... 0xEF] = C_LEAD3,
    [0xF0] = C_F0,
    [0xF1 ... 0xF3] = C_LEAD4,
    [0xF4] = C_F4,
    [0xF5 ... 0xFF] = C_BAD,
};

#define R S_REJECT
static const uint8_t transition[S_COUNT][C_COUNT] = {
    /* columns: ASCII CONT1 CONT2 CONT3 BAD LEAD2 E0 LEAD3 ED F0 LEAD4 F4 */
    [S_ACCEPT] = {S_ACCEPT, R, R, R, R, S_NEED1, S_E0, S_NEED2, S_ED, S_F0, S_NEED3, S_F4},
    [S_REJECT] = {R, R, R, R, R, R, R, R, R, R, R, R},
    [S_NEED1] = {R, S_ACCEPT, S_ACCEPT, S_ACCEPT, R, R, R, R, R, R, R, R},
    [S_NEED2] = {R, S_NEED1, S_NEED1, S_NEED1, R, R, R, R, R, R, R, R},
    [S_E0] = {R, R, R, S_NEED1, R, R, R, R, R, R, R, R},
    [S_ED] = {R, S_NEED1, S_NEED1, R, R, R, R, R, R, R, R, R},
    [S_NEED3] = {R, S_NEED2, S_NEED2, S_NEED2, R, R, R, R, R, R, R, R},
    [S_F0] = {R, R, S_NEED2, S_NEED2, R, R, R, R, R, R, R, R},
    [S_F4] = {R, S_NEED2, R, R, R, R, R, R, R, R, R, R},
};
#undef R

#define HIGH_BITS 0x8080808080808080ULL

/* Skip the ASCII run at s[0..n), eight bytes at a time; returns its length (a multiple of 8 or
 * n). memcpy makes the unaligned load well-defined; compilers turn it into one mov. */
static size_t ascii_run(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (n - i >= 8) {
        uint64_t w;
        memcpy(&w, s + i, sizeof(w));
        if (w & HIGH_BITS)
            break;
        i += 8;
    }
    return i;
}

/* Run the DFA over s[0..n). See utf8.h. */
bool utf8_feed(struct utf8_state *st, const uint8_t *s, size_t n)
{
    uint32_t state = st->state;
    size_t i = 0;

    if (state >= S_COUNT)
        state = S_REJECT; /* a corrupted state is not a way to sneak bytes through */
    while (i < n && state != S_REJECT) {
        if (state == S_ACCEPT) {
            i += ascii_run(s + i, n - i);
            /* the word that stopped the fast path is stepped through byte by byte */
            size_t stop = n - i < 8 ? n : i + 8;
            while (i < stop && state != S_REJECT)
                state = transition[state][byte_class[s[i++]]];
        } else {
            state = transition[state][byte_class[s[i++]]];
        }
    }
    st->state = state;
    return state != S_REJECT;
}

/* Validate s[0..n) as a whole: valid and ending on a code point boundary. */
bool utf8_valid(const uint8_t *s, size_t n)
{
    struct utf8_state st = {0};
    return utf8_feed(&st, s, n) && utf8_complete(&st);
}

/* Remove invalid bytes in place; see the header. */
size_t utf8_scrub(char *s)
{
    size_t r = 0, w = 0, n = strlen(s);
    while (r < n) {
        uint8_t c = (uint8_t)s[r];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len && r + len <= n && utf8_valid((const uint8_t *)s + r, len)) {
            memmove(s + w, s + r, len);
            w += len;
            r += len;
        } else {
            r++;
        }
    }
    s[w] = '\0';
    return w;
}
