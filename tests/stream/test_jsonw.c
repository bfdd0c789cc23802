/* test_jsonw.c - stream/jsonw.h: structure and commas, every escape, U+FFFD replacement of
 * ill-formed UTF-8 (maximal subparts), doubles, and round trips through json_doc_load against
 * a slow reference escaper written straight from Unicode Table 3-7. */
#include "stream/jsonw.h"
#include "stream/json.h"
#include "base/buf.h"
#include "tests/tap.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FFFD "\xef\xbf\xbd"

static bool buf_is(const struct buf *b, const char *want, size_t n)
{
    return buf_size(b) == n && (n == 0 || memcmp(buf_begin(b), want, n) == 0);
}

/* memcmp with empty buffers allowed (an untouched struct buf has data == NULL) */
static bool same(const void *a, size_t an, const void *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

#define CHECK_BUF(b, lit)                                                                          \
    CHECKF(buf_is((b), (lit), sizeof(lit) - 1), "got '%.*s'", (int)buf_size(b), buf_begin(b))

static void test_structure(void)
{
    struct buf b = {0};
    struct jsonw w;

    jw_init(&w, &b);
    jw_obj_begin(&w);
    jw_kstr(&w, "a", "x");
    jw_kint(&w, "b", -1);
    jw_key(&w, "c");
    jw_arr_begin(&w);
    jw_int(&w, 1);
    jw_uint(&w, 2);
    jw_obj_begin(&w);
    jw_obj_end(&w);
    jw_arr_begin(&w);
    jw_arr_end(&w);
    jw_null(&w);
    jw_bool(&w, true);
    jw_arr_end(&w);
    jw_kbool(&w, "d", false);
    jw_kuint(&w, "e", UINT64_MAX);
    jw_key(&w, "f");
    jw_raw(&w, "{\"r\":[1]}", 9);
    jw_kstrn(&w, "g", "a\0b", 3);
    jw_key(&w, "h");
    jw_double(&w, 0.5);
    jw_kstr(&w, "i", NULL);
    jw_kint(&w, "min", INT64_MIN);
    jw_kint(&w, "max", INT64_MAX);
    jw_kint(&w, "zero", 0);
    jw_key(&w, "k\"\n");
    jw_strn(&w, NULL, 3);
    jw_obj_end(&w);
    CHECK_BUF(&b, "{\"a\":\"x\",\"b\":-1,\"c\":[1,2,{},[],null,true],\"d\":false,"
                  "\"e\":18446744073709551615,\"f\":{\"r\":[1]},\"g\":\"a\\u0000b\",\"h\":0.5,"
                  "\"i\":null,\"min\":-9223372036854775808,\"max\":9223372036854775807,"
                  "\"zero\":0,\"k\\\"\\n\":null}");
    CHECK(w.depth == 0);

    /* an array of objects; jw_init appends after what the buffer already holds */
    buf_reset(&b);
    buf_append_str(&b, "data: ");
    jw_init(&w, &b);
    jw_arr_begin(&w);
    for (int i = 0; i < 3; i++) {
        jw_obj_begin(&w);
        jw_kint(&w, "i", i);
        jw_key(&w, "l");
        jw_arr_begin(&w);
        jw_str(&w, "p");
        jw_str(&w, "q");
        jw_arr_end(&w);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    CHECK_BUF(&b, "data: [{\"i\":0,\"l\":[\"p\",\"q\"]},{\"i\":1,\"l\":[\"p\",\"q\"]},"
                  "{\"i\":2,\"l\":[\"p\",\"q\"]}]");

    /* nesting to the last tracked level keeps commas right */
    buf_reset(&b);
    jw_init(&w, &b);
    for (int i = 0; i < JSONW_MAX_DEPTH - 1; i++) {
        jw_arr_begin(&w);
        jw_int(&w, i);
    }
    for (int i = 0; i < JSONW_MAX_DEPTH - 1; i++)
        jw_arr_end(&w);
    json_doc *d = json_doc_create();
    CHECK(json_doc_load(d, buf_begin(&b), buf_size(&b)) == 0);
    int64_t v;
    CHECK(json_get_int(d, "/1/1/1/0", &v) == 0 && v == 3);
    json_doc_destroy(d);

    /* scalars at the top level */
    buf_reset(&b);
    jw_init(&w, &b);
    jw_str(&w, "solo");
    CHECK_BUF(&b, "\"solo\"");
    buf_free(&b);
}

static void check_escape(const char *in, size_t n, const char *want, size_t wn, int line)
{
    struct buf b = {0};
    json_escape(&b, in, n);
    if (!buf_is(&b, want, wn)) {
        tap_fail++;
        fprintf(stderr, "%s:%d: escape got '%.*s' want '%.*s'\n", __FILE__, line, (int)buf_size(&b),
                buf_begin(&b), (int)wn, want);
    } else {
        tap_pass++;
    }
    buf_free(&b);
}

#define ESC(in, want) check_escape((in), sizeof(in) - 1, (want), sizeof(want) - 1, __LINE__)

static void test_escapes(void)
{
    ESC("", "");
    ESC("plain ascii text, longer than one word", "plain ascii text, longer than one word");
    ESC("\"", "\\\"");
    ESC("\\", "\\\\");
    ESC("/", "/");
    ESC("\b\f\n\r\t", "\\b\\f\\n\\r\\t");
    ESC("\x7f", "\x7f");
    ESC("a\0b", "a\\u0000b");
    ESC("\x01\x02\x03\x04\x05\x06\x07\x0b\x0e\x0f", "\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006"
                                                    "\\u0007\\u000b\\u000e\\u000f");
    ESC("\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f",
        "\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b"
        "\\u001c\\u001d\\u001e\\u001f");
    ESC("\xe2\x80\xa8", "\\u2028");
    ESC("\xe2\x80\xa9", "\\u2029");
    ESC("x\xe2\x80\xa8y\xe2\x80\xa9z", "x\\u2028y\\u2029z");
    ESC("\xe2\x80\xa7\xe2\x80\xaa", "\xe2\x80\xa7\xe2\x80\xaa"); /* neighbours stay */
    /* well-formed multi-byte text is copied */
    ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf");
    ESC("\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xf0\x90\x80\x80",
        "\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xf0\x90\x80\x80");
    /* a special byte at every offset of a run that spans several words */
    for (int pos = 0; pos < 24; pos++) {
        char in[25], want[40];
        memset(in, 'a', 24);
        in[24] = 0;
        in[pos] = '"';
        memset(want, 'a', 25);
        memcpy(want + pos, "\\\"", 2);
        want[25] = 0;
        check_escape(in, 24, want, 25, __LINE__);
    }
}

static void test_replacement(void)
{
    /* the example of Unicode 15 section 3.9 (Table 3-8) */
    ESC("\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64",
        "a" FFFD FFFD FFFD "b" FFFD "c" FFFD FFFD "d");
    /* stray continuation bytes and impossible bytes: one each */
    ESC("\x80", FFFD);
    ESC("\xbf\x80", FFFD FFFD);
    ESC("\xc0\xc1\xf5\xf8\xfe\xff", FFFD FFFD FFFD FFFD FFFD FFFD);
    /* overlong forms: the lead cannot start them, so every byte is replaced */
    ESC("\xc0\x80", FFFD FFFD);
    ESC("\xc1\xbf", FFFD FFFD);
    ESC("\xe0\x80\x80", FFFD FFFD FFFD);
    ESC("\xe0\x9f\xbf", FFFD FFFD FFFD);
    ESC("\xf0\x80\x80\x80", FFFD FFFD FFFD FFFD);
    ESC("\xf0\x8f\xbf\xbf", FFFD FFFD FFFD FFFD);
    /* UTF-16 surrogates encoded as UTF-8 */
    ESC("\xed\xa0\x80", FFFD FFFD FFFD);
    ESC("\xed\xbf\xbf", FFFD FFFD FFFD);
    ESC("\xed\xa0\x80\xed\xb0\x80", FFFD FFFD FFFD FFFD FFFD FFFD);
    /* above U+10FFFF */
    ESC("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD);
    ESC("\xf7\xbf\xbf\xbf", FFFD FFFD FFFD FFFD);
    /* truncated sequences: the maximal subpart is one replacement */
    ESC("\xc3", FFFD);
    ESC("\xe2\x82", FFFD);
    ESC("\xf0\x9f\x98", FFFD);
    ESC("\xf0\x9f", FFFD);
    ESC("a\xe2\x82", "a" FFFD);
    ESC("\xe2\x82z", FFFD "z");
    ESC("\xf0\x9f\x98\"", FFFD "\\\"");
    ESC("\xe2\x82\xe2\x82\xac", FFFD "\xe2\x82\xac");
    ESC("\xf4\x8f\xbf", FFFD);
    ESC("\xe0\xa0", FFFD);
    ESC("\xed\x9f", FFFD);
    /* a lead byte followed by another lead byte */
    ESC("\xc3\xc3\xa9", FFFD "\xc3\xa9");
    /* replacement inside long ASCII runs */
    ESC("0123456789abcdef\xff"
        "0123456789abcdef",
        "0123456789abcdef" FFFD "0123456789abcdef");
}

static void test_doubles(void)
{
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0.0, "0"},
        {0.5, "0.5"},
        {0.1, "0.1"},
        {-2.25, "-2.25"},
        {1e300, "1e+300"},
        {123456789.0, "123456789"},
        {1.0 / 3, "0.3333333333333333"},
        {0.3, "0.3"},
        {-0.0, "-0"},
    };
    struct buf b = {0};
    struct jsonw w;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        buf_reset(&b);
        jw_init(&w, &b);
        jw_double(&w, cases[i].v);
        CHECKF(buf_is(&b, cases[i].want, strlen(cases[i].want)), "%s: got '%.*s'", cases[i].want,
               (int)buf_size(&b), buf_begin(&b));
    }
    buf_reset(&b);
    jw_init(&w, &b);
    jw_arr_begin(&w);
    jw_double(&w, NAN);
    jw_double(&w, INFINITY);
    jw_double(&w, -INFINITY);
    jw_arr_end(&w);
    CHECK_BUF(&b, "[null,null,null]");

    /* random finite doubles come back bit for bit through json_doc_load */
    json_doc *d = json_doc_create();
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int bad = 0;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v;
        memcpy(&v, &x, sizeof(v));
        if (!isfinite(v))
            continue;
        buf_reset(&b);
        jw_init(&w, &b);
        jw_arr_begin(&w);
        jw_double(&w, v);
        jw_arr_end(&w);
        double back = 0;
        if (json_doc_load(d, buf_begin(&b), buf_size(&b)) != 0 ||
            json_get_double(d, "/0", &back) != 0 || memcmp(&back, &v, sizeof(v)) != 0) {
            if (bad++ < 5)
                fprintf(stderr, "double %.17g -> '%.*s'\n", v, (int)buf_size(&b), buf_begin(&b));
        }
    }
    CHECKF(bad == 0, "%d doubles did not round trip", bad);
    json_doc_destroy(d);
    buf_free(&b);
}

/* ---- reference: Unicode Table 3-7 (well-formed UTF-8 byte sequences), read literally ------ */

static const struct {
    int len;
    uint8_t lo[4], hi[4];
} table37[] = {
    {2, {0xC2, 0x80}, {0xDF, 0xBF}},
    {3, {0xE0, 0xA0, 0x80}, {0xE0, 0xBF, 0xBF}},
    {3, {0xE1, 0x80, 0x80}, {0xEC, 0xBF, 0xBF}},
    {3, {0xED, 0x80, 0x80}, {0xED, 0x9F, 0xBF}},
    {3, {0xEE, 0x80, 0x80}, {0xEF, 0xBF, 0xBF}},
    {4, {0xF0, 0x90, 0x80, 0x80}, {0xF0, 0xBF, 0xBF, 0xBF}},
    {4, {0xF1, 0x80, 0x80, 0x80}, {0xF3, 0xBF, 0xBF, 0xBF}},
    {4, {0xF4, 0x80, 0x80, 0x80}, {0xF4, 0x8F, 0xBF, 0xBF}},
};

/* Length of the longest prefix of s that matches a row (*whole if a row matched fully). */
static size_t ref_match(const uint8_t *s, size_t n, bool *whole)
{
    size_t best = 0;
    *whole = false;
    for (size_t r = 0; r < sizeof(table37) / sizeof(table37[0]); r++) {
        size_t k = 0;
        while (k < (size_t)table37[r].len && k < n && s[k] >= table37[r].lo[k] &&
               s[k] <= table37[r].hi[k])
            k++;
        if (k == (size_t)table37[r].len)
            *whole = true;
        if (k > best)
            best = k;
    }
    return best;
}

/* The expected output: escaped for JSON (escape) or just cleaned (what a parser returns). */
static void ref_escape(struct buf *o, const uint8_t *s, size_t n, bool escape)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (escape && (c < 0x20 || c == '"' || c == '\\')) {
                const char *named = c == '"'    ? "\\\""
                                    : c == '\\' ? "\\\\"
                                    : c == '\b' ? "\\b"
                                    : c == '\f' ? "\\f"
                                    : c == '\n' ? "\\n"
                                    : c == '\r' ? "\\r"
                                    : c == '\t' ? "\\t"
                                                : NULL;
                if (named)
                    buf_append_str(o, named);
                else
                    buf_printf(o, "\\u%04x", c);
            } else {
                buf_append(o, &c, 1);
            }
            i++;
            continue;
        }
        bool whole;
        size_t k = ref_match(s + i, n - i, &whole);
        if (!whole) {
            buf_append_str(o, FFFD);
            i += k ? k : 1;
        } else if (escape && k == 3 && s[i] == 0xE2 && s[i + 1] == 0x80 &&
                   (s[i + 2] == 0xA8 || s[i + 2] == 0xA9)) {
            buf_append_str(o, s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029");
            i += k;
        } else {
            buf_append(o, s + i, k);
            i += k;
        }
    }
}

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)((rng >> 11) % n);
}

static void put_cp(struct buf *b, uint32_t cp)
{
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (uint8_t)(0xC0 | cp >> 6);
        u[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (uint8_t)(0xE0 | cp >> 12);
        u[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (uint8_t)(0xF0 | cp >> 18);
        u[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        u[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    buf_append(b, u, n);
}

/* A random code point, weighted towards the interesting ones; never a surrogate. */
static uint32_t rnd_cp(void)
{
    switch (rnd(10)) {
    case 0:
        return rnd(0x20); /* control, NUL included */
    case 1:
        return "\"\\/"[rnd(3)];
    case 2:
        return 0x80 + rnd(0x800 - 0x80);
    case 3: {
        uint32_t cp = 0x800 + rnd(0x10000 - 0x800);
        return cp >= 0xD800 && cp <= 0xDFFF ? 0xFFFD : cp;
    }
    case 4:
        return 0x2028 + rnd(2);
    case 5:
        return 0x10000 + rnd(0x110000 - 0x10000);
    default:
        return 0x20 + rnd(0x5F);
    }
}

/* A random byte string: pieces of valid text mixed with fragments that break UTF-8. */
static void rnd_bytes(struct buf *b, size_t pieces)
{
    for (size_t i = 0; i < pieces; i++) {
        switch (rnd(8)) {
        case 0: {
            uint8_t c = (uint8_t)(0x80 + rnd(0x80)); /* any high byte */
            buf_append(b, &c, 1);
            break;
        }
        case 1: { /* a valid sequence cut short */
            struct buf t = {0};
            put_cp(&t, rnd_cp());
            buf_append(b, buf_begin(&t), buf_size(&t) > 1 ? 1 + rnd(buf_size(&t) - 1) : 1);
            buf_free(&t);
            break;
        }
        case 2: { /* lead byte plus random continuation-ish bytes */
            uint8_t u[4] = {(uint8_t)(0xC0 + rnd(0x40)), (uint8_t)(0x80 + rnd(0x40)),
                            (uint8_t)(0x80 + rnd(0x40)), (uint8_t)(0x80 + rnd(0x40))};
            buf_append(b, u, 1 + rnd(4));
            break;
        }
        default:
            put_cp(b, rnd_cp());
        }
    }
}

/* json_escape against the reference, and the output read back by json_doc_load. */
static void test_random(void)
{
    json_doc *d = json_doc_create();
    struct buf in = {0}, got = {0}, want = {0}, doc = {0};
    int bad_escape = 0, bad_trip = 0;
    for (int round = 0; round < 2000; round++) {
        bool valid = round % 2 == 0;
        buf_reset(&in);
        if (valid) {
            size_t n = rnd(40);
            for (size_t i = 0; i < n; i++)
                put_cp(&in, rnd_cp());
        } else {
            rnd_bytes(&in, rnd(40));
        }
        buf_reset(&got);
        buf_reset(&want);
        json_escape(&got, buf_begin(&in), buf_size(&in));
        ref_escape(&want, (const uint8_t *)buf_begin(&in), buf_size(&in), true);
        if (!same(buf_begin(&got), buf_size(&got), buf_begin(&want), buf_size(&want))) {
            if (bad_escape++ < 3)
                fprintf(stderr, "escape mismatch: '%.*s' vs '%.*s'\n", (int)buf_size(&got),
                        buf_begin(&got), (int)buf_size(&want), buf_begin(&want));
        }

        /* {"s": <string>} through the writer and back through the parser */
        buf_reset(&doc);
        struct jsonw w;
        jw_init(&w, &doc);
        jw_obj_begin(&w);
        jw_kstrn(&w, "s", buf_begin(&in), buf_size(&in));
        jw_obj_end(&w);
        buf_reset(&want);
        ref_escape(&want, (const uint8_t *)buf_begin(&in), buf_size(&in), false);
        const char *s;
        size_t n;
        if (json_doc_load(d, buf_begin(&doc), buf_size(&doc)) != 0 ||
            json_get_string(d, "/s", &s, &n) != 0 ||
            !same(s, n, buf_begin(&want), buf_size(&want))) {
            if (bad_trip++ < 3)
                fprintf(stderr, "round trip failed for '%.*s'\n", (int)buf_size(&doc),
                        buf_begin(&doc));
        } else if (valid && !same(s, n, buf_begin(&in), buf_size(&in))) {
            bad_trip++; /* valid input must come back unchanged */
        }
    }
    CHECKF(bad_escape == 0, "%d escape mismatches", bad_escape);
    CHECKF(bad_trip == 0, "%d round trip failures", bad_trip);

    /* one long valid string: many runs, many words */
    buf_reset(&in);
    for (int i = 0; i < 20000; i++)
        put_cp(&in, rnd_cp());
    buf_reset(&doc);
    struct jsonw w;
    jw_init(&w, &doc);
    jw_arr_begin(&w);
    jw_strn(&w, buf_begin(&in), buf_size(&in));
    jw_arr_end(&w);
    const char *s;
    size_t n;
    CHECK(json_doc_load(d, buf_begin(&doc), buf_size(&doc)) == 0);
    CHECK(json_get_string(d, "/0", &s, &n) == 0 && n == buf_size(&in) &&
          memcmp(s, buf_begin(&in), n) == 0);

    buf_free(&in);
    buf_free(&got);
    buf_free(&want);
    buf_free(&doc);
    json_doc_destroy(d);
}

int main(void)
{
    test_structure();
    test_escapes();
    test_replacement();
    test_doubles();
    test_random();
    return tap_done();
}
