/* test_utf8.c - net/utf8.c against Markus Kuhn's "UTF-8 decoder capability and stress test"
 * (sections 1-5), fail-fast positions, split feeding, the word-at-a-time fast path, and an
 * exhaustive comparison with a naive reference decoder over all 1-3 byte sequences. */
#include "net/utf8.h"
#include "tests/tap.h"

#include <string.h>

#define OK (-1)    /* valid and complete */
#define TRUNC (-2) /* a valid prefix, but a sequence is unfinished */

struct utf8_case {
    const char *name;
    const uint8_t *s;
    size_t n;
    int expect; /* OK, TRUNC, or the index of the first byte that makes it invalid */
};

#define U(name, str, expect)                                                                       \
    {                                                                                              \
        name, (const uint8_t *)(str), sizeof(str) - 1, expect                                      \
    }

static const struct utf8_case kuhn[] = {
    /* 1 some correct UTF-8 text */
    U("1 kosme", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5", OK),
    /* 2.1 first possible sequence of a certain length */
    U("2.1.1 U+0000", "\x00", OK),
    U("2.1.2 U+0080", "\xC2\x80", OK),
    U("2.1.3 U+0800", "\xE0\xA0\x80", OK),
    U("2.1.4 U+10000", "\xF0\x90\x80\x80", OK),
    U("2.1.5 5 bytes U+200000", "\xF8\x88\x80\x80\x80", 0),
    U("2.1.6 6 bytes U+4000000", "\xFC\x84\x80\x80\x80\x80", 0),
    /* 2.2 last possible sequence of a certain length */
    U("2.2.1 U+007F", "\x7F", OK),
    U("2.2.2 U+07FF", "\xDF\xBF", OK),
    U("2.2.3 U+FFFF", "\xEF\xBF\xBF", OK),
    U("2.2.4 U+1FFFFF", "\xF7\xBF\xBF\xBF", 0),
    U("2.2.5 U+3FFFFFF", "\xFB\xBF\xBF\xBF\xBF", 0),
    U("2.2.6 U+7FFFFFFF", "\xFD\xBF\xBF\xBF\xBF\xBF", 0),
    /* 2.3 other boundary conditions */
    U("2.3.1 U+D7FF", "\xED\x9F\xBF", OK),
    U("2.3.2 U+E000", "\xEE\x80\x80", OK),
    U("2.3.3 U+FFFD", "\xEF\xBF\xBD", OK),
    U("2.3.4 U+10FFFF", "\xF4\x8F\xBF\xBF", OK),
    U("2.3.5 U+110000", "\xF4\x90\x80\x80", 1),
    /* 3.1 unexpected continuation bytes */
    U("3.1.1 80", "\x80", 0),
    U("3.1.2 BF", "\xBF", 0),
    U("3.1.3 2 continuations", "\x80\xBF", 0),
    U("3.1.4 3 continuations", "\x80\xBF\x80", 0),
    U("3.1.5 4 continuations", "\x80\xBF\x80\xBF", 0),
    U("3.1.6 5 continuations", "\x80\xBF\x80\xBF\x80", 0),
    U("3.1.7 6 continuations", "\x80\xBF\x80\xBF\x80\xBF", 0),
    U("3.1.8 7 continuations", "\x80\xBF\x80\xBF\x80\xBF\x80", 0),
    U("3.1 after ASCII", "abc\x80", 3),
    /* 3.3 sequences with the last continuation byte missing */
    U("3.3.1 C0", "\xC0", 0),
    U("3.3.2 E0 80", "\xE0\x80", 1),
    U("3.3.3 F0 80 80", "\xF0\x80\x80", 1),
    U("3.3.4 F8 80 80 80", "\xF8\x80\x80\x80", 0),
    U("3.3.5 FC 80 80 80 80", "\xFC\x80\x80\x80\x80", 0),
    U("3.3.6 DF", "\xDF", TRUNC),
    U("3.3.7 EF BF", "\xEF\xBF", TRUNC),
    U("3.3.8 F7 BF BF", "\xF7\xBF\xBF", 0),
    U("3.3.9 FB BF BF BF", "\xFB\xBF\xBF\xBF", 0),
    U("3.3.10 FD BF BF BF BF", "\xFD\xBF\xBF\xBF\xBF", 0),
    U("3.3 truncated U+10000", "\xF0\x90\x80", TRUNC),
    /* 3.4 concatenation of incomplete sequences */
    U("3.4 concatenation",
      "\xC0\xE0\x80\xF0\x80\x80\xF8\x80\x80\x80\xFC\x80\x80\x80\x80"
      "\xDF\xEF\xBF\xF7\xBF\xBF\xFB\xBF\xBF\xBF\xFD\xBF\xBF\xBF\xBF",
      0),
    U("3.4 DF then EF BF", "\xDF\xEF\xBF", 1),
    U("3.4 EF BF then DF", "\xEF\xBF\xDF", 2),
    /* 3.5 impossible bytes */
    U("3.5.1 FE", "\xFE", 0),
    U("3.5.2 FF", "\xFF", 0),
    U("3.5.3 FE FE FF FF", "\xFE\xFE\xFF\xFF", 0),
    /* 4.1 overlong ASCII '/' */
    U("4.1.1 C0 AF", "\xC0\xAF", 0),
    U("4.1.2 E0 80 AF", "\xE0\x80\xAF", 1),
    U("4.1.3 F0 80 80 AF", "\xF0\x80\x80\xAF", 1),
    U("4.1.4 F8 80 80 80 AF", "\xF8\x80\x80\x80\xAF", 0),
    U("4.1.5 FC 80 80 80 80 AF", "\xFC\x80\x80\x80\x80\xAF", 0),
    /* 4.2 maximum overlong sequences */
    U("4.2.1 C1 BF", "\xC1\xBF", 0),
    U("4.2.2 E0 9F BF", "\xE0\x9F\xBF", 1),
    U("4.2.3 F0 8F BF BF", "\xF0\x8F\xBF\xBF", 1),
    U("4.2.4 F8 87 BF BF BF", "\xF8\x87\xBF\xBF\xBF", 0),
    U("4.2.5 FC 83 BF BF BF BF", "\xFC\x83\xBF\xBF\xBF\xBF", 0),
    /* 4.3 overlong NUL */
    U("4.3.1 C0 80", "\xC0\x80", 0),
    U("4.3.2 E0 80 80", "\xE0\x80\x80", 1),
    U("4.3.3 F0 80 80 80", "\xF0\x80\x80\x80", 1),
    U("4.3.4 F8 80 80 80 80", "\xF8\x80\x80\x80\x80", 0),
    U("4.3.5 FC 80 80 80 80 80", "\xFC\x80\x80\x80\x80\x80", 0),
    /* 5.1 single UTF-16 surrogates */
    U("5.1.1 U+D800", "\xED\xA0\x80", 1),
    U("5.1.2 U+DB7F", "\xED\xAD\xBF", 1),
    U("5.1.3 U+DB80", "\xED\xAE\x80", 1),
    U("5.1.4 U+DBFF", "\xED\xAF\xBF", 1),
    U("5.1.5 U+DC00", "\xED\xB0\x80", 1),
    U("5.1.6 U+DF80", "\xED\xBE\x80", 1),
    U("5.1.7 U+DFFF", "\xED\xBF\xBF", 1),
    /* 5.2 paired UTF-16 surrogates */
    U("5.2.1 D800 DC00", "\xED\xA0\x80\xED\xB0\x80", 1),
    U("5.2.2 D800 DFFF", "\xED\xA0\x80\xED\xBF\xBF", 1),
    U("5.2.3 DB7F DC00", "\xED\xAD\xBF\xED\xB0\x80", 1),
    U("5.2.4 DB7F DFFF", "\xED\xAD\xBF\xED\xBF\xBF", 1),
    U("5.2.5 DB80 DC00", "\xED\xAE\x80\xED\xB0\x80", 1),
    U("5.2.6 DB80 DFFF", "\xED\xAE\x80\xED\xBF\xBF", 1),
    U("5.2.7 DBFF DC00", "\xED\xAF\xBF\xED\xB0\x80", 1),
    U("5.2.8 DBFF DFFF", "\xED\xAF\xBF\xED\xBF\xBF", 1),
    /* 5.3 noncharacters: valid UTF-8 (only "illegal" for interchange, not for a decoder) */
    U("5.3.1 U+FFFE", "\xEF\xBF\xBE", OK),
    U("5.3.2 U+FFFF", "\xEF\xBF\xBF", OK),
    U("5.3.3 U+FDD0", "\xEF\xB7\x90", OK),
    U("5.3.3 U+FDEF", "\xEF\xB7\xAF", OK),
    U("5.3.4 U+1FFFE", "\xF0\x9F\xBF\xBE", OK),
    U("5.3.4 U+10FFFF", "\xF4\x8F\xBF\xBF", OK),
};

/* Naive reference: decode each sequence, then reject overlongs, surrogates, > U+10FFFF. */
static bool ref_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t c = s[i];
        size_t len = c < 0x80 ? 1 : c < 0xC0 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF8 ? 4 : 0;
        if (!len || i + len > n)
            return false;
        uint32_t cp = len == 1 ? c : c & (0x7Fu >> len);
        for (size_t j = 1; j < len; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

static size_t encode(uint32_t cp, uint8_t *out)
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Feed one byte at a time; return the index where utf8_feed first says false, else OK/TRUNC. */
static int bytewise(const uint8_t *s, size_t n)
{
    struct utf8_state st = {0};
    int at = -3;

    for (size_t i = 0; i < n; i++) {
        if (!utf8_feed(&st, s + i, 1) && at == -3)
            at = (int)i;
    }
    if (at != -3) {
        /* the error state is sticky, even for bytes that would be fine on their own */
        CHECK(!utf8_feed(&st, (const uint8_t *)"a", 1));
        return at;
    }
    return utf8_complete(&st) ? OK : TRUNC;
}

/* The whole case, then every split into two feeds, must agree with the expectation. */
static void check_case(const struct utf8_case *c)
{
    int got = bytewise(c->s, c->n);
    CHECKF(got == c->expect, "%s: bytewise got %d want %d", c->name, got, c->expect);
    CHECKF(utf8_valid(c->s, c->n) == (c->expect == OK), "%s: utf8_valid", c->name);
    CHECKF(ref_valid(c->s, c->n) == (c->expect == OK), "%s: reference disagrees", c->name);

    int bad = 0;
    for (size_t k = 0; k <= c->n; k++) {
        struct utf8_state st = {0};
        bool ok = utf8_feed(&st, c->s, k);
        ok = utf8_feed(&st, c->s + k, c->n - k) && ok;
        int r = !ok ? 0 : utf8_complete(&st) ? OK : TRUNC;
        if (r != (c->expect >= 0 ? 0 : c->expect))
            bad++;
    }
    CHECKF(bad == 0, "%s: %d split points disagree", c->name, bad);
}

/* 3.1.9, 3.2: generated families. */
static void test_generated(void)
{
    uint8_t all[64], two[2];
    int bad = 0;

    for (int i = 0; i < 64; i++) {
        all[i] = (uint8_t)(0x80 + i);
        if (bytewise(all + i, 1) != 0)
            bad++;
    }
    CHECKF(bad == 0, "3.1.9 lone continuation bytes: %d accepted", bad);
    CHECK(bytewise(all, 64) == 0);

    /* 3.2 lonely start characters followed by a space fail at the space (or at once when the
     * start byte can never be valid: C0, C1, F5..FF) */
    bad = 0;
    for (int c = 0xC0; c <= 0xFD; c++) {
        two[0] = (uint8_t)c;
        two[1] = ' ';
        int want = (c == 0xC0 || c == 0xC1 || c >= 0xF5) ? 0 : 1;
        if (bytewise(two, 2) != want)
            bad++;
    }
    CHECKF(bad == 0, "3.2 lonely start characters: %d wrong", bad);

    /* 5.3.3/5.3.4 all noncharacters are valid */
    uint8_t buf[4];
    bad = 0;
    for (uint32_t cp = 0xFDD0; cp <= 0xFDEF; cp++)
        bad += !utf8_valid(buf, encode(cp, buf));
    for (uint32_t plane = 0; plane <= 0x10; plane++) {
        bad += !utf8_valid(buf, encode(plane << 16 | 0xFFFE, buf));
        bad += !utf8_valid(buf, encode(plane << 16 | 0xFFFF, buf));
    }
    CHECKF(bad == 0, "5.3 noncharacters: %d rejected", bad);
}

/* Every code point encodes to valid UTF-8; every surrogate's encoding is refused at byte 1. */
static void test_all_code_points(void)
{
    uint8_t buf[4];
    int bad = 0;

    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        size_t n = encode(cp, buf);
        bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        if (utf8_valid(buf, n) == surrogate)
            bad++;
    }
    CHECKF(bad == 0, "%d code points misjudged", bad);
}

/* Exhaustive over all 1-, 2- and 3-byte strings, and 4-byte strings with a plausible lead. */
static void test_exhaustive(void)
{
    uint8_t s[4];
    long bad = 0;

    for (int a = 0; a < 256; a++) {
        s[0] = (uint8_t)a;
        bad += utf8_valid(s, 1) != ref_valid(s, 1);
        for (int b = 0; b < 256; b++) {
            s[1] = (uint8_t)b;
            bad += utf8_valid(s, 2) != ref_valid(s, 2);
            for (int c = 0; c < 256; c++) {
                s[2] = (uint8_t)c;
                bad += utf8_valid(s, 3) != ref_valid(s, 3);
            }
        }
    }
    CHECKF(bad == 0, "1-3 byte strings: %ld disagree with the reference", bad);

    static const uint8_t last[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0};
    bad = 0;
    for (int a = 0xF0; a <= 0xF7; a++) {
        s[0] = (uint8_t)a;
        for (int b = 0; b < 256; b++) {
            s[1] = (uint8_t)b;
            for (int c = 0x70; c < 0xD0; c++) {
                s[2] = (uint8_t)c;
                for (size_t d = 0; d < sizeof(last); d++) {
                    s[3] = last[d];
                    bad += utf8_valid(s, 4) != ref_valid(s, 4);
                }
            }
        }
    }
    CHECKF(bad == 0, "4-byte strings: %ld disagree with the reference", bad);
}

/* The ASCII fast path: a bad byte or a multi-byte character at every offset of long runs. */
static void test_fast_path(void)
{
    uint8_t buf[80];
    int bad = 0;

    for (size_t at = 0; at < 64; at++) {
        memset(buf, 'a', sizeof(buf));
        buf[at] = 0xFF;
        for (size_t start = 0; start < 8 && start <= at; start++) {
            if (bytewise(buf + start, sizeof(buf) - start) != (int)(at - start))
                bad++;
            struct utf8_state st = {0};
            if (utf8_feed(&st, buf + start, sizeof(buf) - start))
                bad++;
        }
        /* a 3-byte character straddling every word boundary, then a truncated one at the end */
        memset(buf, 'a', sizeof(buf));
        memcpy(buf + at, "\xE2\x82\xAC", 3);
        if (!utf8_valid(buf, sizeof(buf)))
            bad++;
        buf[sizeof(buf) - 1] = 0xE2;
        if (utf8_valid(buf, sizeof(buf)))
            bad++;
        struct utf8_state st = {0};
        if (!utf8_feed(&st, buf, sizeof(buf)) || utf8_complete(&st))
            bad++;
    }
    CHECKF(bad == 0, "fast path: %d wrong", bad);
    CHECK(utf8_valid((const uint8_t *)"", 0));
    CHECK(utf8_valid(NULL, 0));
}

/* A long mixed text fed in chunks of every size from 1 to 17. */
static void test_chunks(void)
{
    static const char *text = "Hello, κόσμε! € 𝄞 日本語 — plain ASCII runs of sixteen bytes "
                              "and then 😀😀 emoji, and the end.";
    const uint8_t *s = (const uint8_t *)text;
    size_t n = strlen(text);
    int bad = 0;

    for (size_t chunk = 1; chunk <= 17; chunk++) {
        struct utf8_state st = {0};
        for (size_t i = 0; i < n; i += chunk) {
            size_t k = n - i < chunk ? n - i : chunk;
            if (!utf8_feed(&st, s + i, k))
                bad++;
        }
        if (!utf8_complete(&st))
            bad++;
    }
    CHECKF(bad == 0, "chunked feeding: %d wrong", bad);
}

int main(void)
{
    for (size_t i = 0; i < sizeof(kuhn) / sizeof(kuhn[0]); i++)
        check_case(&kuhn[i]);
    test_generated();
    test_all_code_points();
    test_exhaustive();
    test_fast_path();
    test_chunks();
    return tap_done();
}
