/* jsonw.c - JSON writer: comma tracking and RFC 8259 string escaping into a struct buf.
 *
 * Escaping copies runs of bytes that need no change with one append: printable ASCII is
 * checked eight bytes at a time, and well-formed multi-byte UTF-8 joins the run. Only quote,
 * backslash, control characters, U+2028/U+2029 and ill-formed UTF-8 leave the run. Ill-formed
 * input becomes one U+FFFD per maximal subpart (Unicode 15, section 3.9, "U+FFFD Substitution of
 * Maximal Subparts"; also what the WHATWG Encoding Standard's decoder does).
 *
 * Known weakness: nesting deeper than JSONW_MAX_DEPTH - 1 keeps valid brackets but loses comma
 * tracking for the levels past the limit (the struct is fixed-size and the calls return void). */
#include "stream/jsonw.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- structure --------------------------------------------------------------------------- */

static int level(const struct jsonw *w)
{
    if (w->depth < 0)
        return 0;
    return w->depth < JSONW_MAX_DEPTH ? w->depth : JSONW_MAX_DEPTH - 1;
}

/* Before a value or a key: a comma unless it is the first at this level or follows a key. */
static void sep(struct jsonw *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    int l = level(w);
    if (!w->first[l])
        buf_append(w->out, ",", 1);
    w->first[l] = false;
}

static void open_level(struct jsonw *w, char c)
{
    sep(w);
    buf_append(w->out, &c, 1);
    w->depth++;
    w->first[level(w)] = true;
}

static void close_level(struct jsonw *w, char c)
{
    buf_append(w->out, &c, 1);
    w->depth--;
    w->after_key = false;
}

/* Start writing to out (appending after whatever it holds). */
void jw_init(struct jsonw *w, struct buf *out)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
    w->first[0] = true;
}

/* Open an object as the next value. */
void jw_obj_begin(struct jsonw *w)
{
    open_level(w, '{');
}

/* Close the innermost object. */
void jw_obj_end(struct jsonw *w)
{
    close_level(w, '}');
}

/* Open an array as the next value. */
void jw_arr_begin(struct jsonw *w)
{
    open_level(w, '[');
}

/* Close the innermost array. */
void jw_arr_end(struct jsonw *w)
{
    close_level(w, ']');
}

/* Write a member name (escaped like a string value); the next call writes its value. */
void jw_key(struct jsonw *w, const char *key)
{
    sep(w);
    buf_append(w->out, "\"", 1);
    json_escape(w->out, key, strlen(key));
    buf_append(w->out, "\":", 2);
    w->after_key = true;
}

/* Write the NUL-terminated string s as a string value; NULL is written as null. */
void jw_str(struct jsonw *w, const char *s)
{
    if (!s) {
        jw_null(w);
        return;
    }
    jw_strn(w, s, strlen(s));
}

/* Write s[0..n) (which may contain NULs or ill-formed UTF-8) as a string value; NULL is null. */
void jw_strn(struct jsonw *w, const char *s, size_t n)
{
    if (!s) {
        jw_null(w);
        return;
    }
    sep(w);
    buf_append(w->out, "\"", 1);
    json_escape(w->out, s, n);
    buf_append(w->out, "\"", 1);
}

/* Decimal digits of v, written backwards ending at end; returns the first digit. */
static char *utoa_back(uint64_t v, char *end)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

/* Write a signed integer. */
void jw_int(struct jsonw *w, int64_t v)
{
    char tmp[24], *end = tmp + sizeof(tmp);
    /* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
    uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    char *p = utoa_back(mag, end);
    if (v < 0)
        *--p = '-';
    sep(w);
    buf_append(w->out, p, (size_t)(end - p));
}

/* Write an unsigned integer. */
void jw_uint(struct jsonw *w, uint64_t v)
{
    char tmp[24], *end = tmp + sizeof(tmp);
    char *p = utoa_back(v, end);
    sep(w);
    buf_append(w->out, p, (size_t)(end - p));
}

/* Write a double in the shortest %g precision (15, 16 or 17 digits) that reads back to the
 * same value; NaN and infinities are written as null (JSON has no spelling for them). */
void jw_double(struct jsonw *w, double v)
{
    if (!isfinite(v)) {
        jw_null(w);
        return;
    }
    char tmp[40];
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    /* A locale with a decimal comma would make %g write "1,5"; JSON wants a point. */
    for (int i = 0; i < n; i++)
        if (tmp[i] == ',')
            tmp[i] = '.';
    sep(w);
    buf_append(w->out, tmp, (size_t)n);
}

/* Write true or false. */
void jw_bool(struct jsonw *w, bool v)
{
    sep(w);
    if (v)
        buf_append(w->out, "true", 4);
    else
        buf_append(w->out, "false", 5);
}

/* Write null. */
void jw_null(struct jsonw *w)
{
    sep(w);
    buf_append(w->out, "null", 4);
}

/* Write json[0..n) unchanged as the next value; the caller vouches that it is valid JSON. */
void jw_raw(struct jsonw *w, const char *json, size_t n)
{
    sep(w);
    buf_append(w->out, json, n);
}

/* Key then string (NULL: null). */
void jw_kstr(struct jsonw *w, const char *key, const char *s)
{
    jw_key(w, key);
    jw_str(w, s);
}

/* Key then s[0..n) as a string (NULL: null). */
void jw_kstrn(struct jsonw *w, const char *key, const char *s, size_t n)
{
    jw_key(w, key);
    jw_strn(w, s, n);
}

/* Key then signed integer. */
void jw_kint(struct jsonw *w, const char *key, int64_t v)
{
    jw_key(w, key);
    jw_int(w, v);
}

/* Key then unsigned integer. */
void jw_kuint(struct jsonw *w, const char *key, uint64_t v)
{
    jw_key(w, key);
    jw_uint(w, v);
}

/* Key then boolean. */
void jw_kbool(struct jsonw *w, const char *key, bool v)
{
    jw_key(w, key);
    jw_bool(w, v);
}

/* ---- escaping ---------------------------------------------------------------------------- */

/* True if none of the eight bytes needs attention: each is 0x20..0x7F and not '"' or '\\'.
 * Classic SWAR tests (Bit Twiddling Hacks, "haszero"/"hasless"): they can flag a byte above a
 * real hit, never miss one, so "no flag at all" is exact. */
static bool word_plain(const uint8_t *p)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t x;
    memcpy(&x, p, 8);
    uint64_t q = x ^ (ones * '"');
    uint64_t b = x ^ (ones * '\\');
    uint64_t ctl = (x - ones * 0x20) & ~x;
    uint64_t quote = (q - ones) & ~q;
    uint64_t bslash = (b - ones) & ~b;
    return ((ctl | quote | bslash | x) & high) == 0;
}

static bool byte_plain(uint8_t c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* Decode one UTF-8 sequence at p (first byte >= 0x80, n >= 1 bytes available). Returns its
 * length with the code point in *cp, or minus the length of the maximal subpart to replace:
 * the longest prefix that could still begin a well-formed sequence (at least 1). */
static int utf8_next(const uint8_t *p, size_t n, uint32_t *cp)
{
    uint8_t c = p[0], lo = 0x80, hi = 0xBF;
    int need;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0F;
        lo = c == 0xE0 ? 0xA0 : 0x80; /* overlong */
        hi = c == 0xED ? 0x9F : 0xBF; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07;
        lo = c == 0xF0 ? 0x90 : 0x80; /* overlong */
        hi = c == 0xF4 ? 0x8F : 0xBF; /* above U+10FFFF */
    } else {
        return -1; /* continuation byte, C0/C1, F5..FF */
    }
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n || p[k] < lo || p[k] > hi)
            return -k;
        v = (v << 6) | (p[k] & 0x3F);
        lo = 0x80;
        hi = 0xBF;
    }
    *cp = v;
    return need + 1;
}

/* End of the run starting at p that can be copied as is. */
static const uint8_t *scan_run(const uint8_t *p, const uint8_t *end)
{
    for (;;) {
        while (end - p >= 8 && word_plain(p))
            p += 8;
        if (p == end)
            return p;
        if (byte_plain(*p)) {
            p++;
            continue;
        }
        if (*p < 0x80)
            return p;
        uint32_t cp;
        int k = utf8_next(p, (size_t)(end - p), &cp);
        if (k < 0 || cp == 0x2028 || cp == 0x2029)
            return p;
        p += k;
    }
}

/* Escape the special input at p (a byte the run stopped at); returns where to go on. */
static const uint8_t *escape_one(struct buf *out, const uint8_t *p, const uint8_t *end)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[8];
    uint8_t c = *p;
    if (c >= 0x80) {
        uint32_t cp;
        int k = utf8_next(p, (size_t)(end - p), &cp);
        if (k < 0) {
            buf_append(out, "\xEF\xBF\xBD", 3);
            return p - k;
        }
        buf_append(out, cp == 0x2028 ? "\\u2028" : "\\u2029", 6);
        return p + k;
    }
    tmp[0] = '\\';
    switch (c) {
    case '"':
    case '\\':
        tmp[1] = (char)c;
        break;
    case '\b':
        tmp[1] = 'b';
        break;
    case '\f':
        tmp[1] = 'f';
        break;
    case '\n':
        tmp[1] = 'n';
        break;
    case '\r':
        tmp[1] = 'r';
        break;
    case '\t':
        tmp[1] = 't';
        break;
    default:
        memcpy(tmp + 1, "u00", 3);
        tmp[4] = hex[c >> 4];
        tmp[5] = hex[c & 15];
        buf_append(out, tmp, 6);
        return p + 1;
    }
    buf_append(out, tmp, 2);
    return p + 1;
}

/* Append the escaped form of s[0..n), without quotes, to out. The result is valid UTF-8 and
 * valid inside a JSON string whatever the input bytes are. */
void json_escape(struct buf *out, const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s, *end = p + n;
    while (p < end) {
        const uint8_t *run = p;
        p = scan_run(p, end);
        buf_append(out, run, (size_t)(p - run));
        if (p < end)
            p = escape_one(out, p, end);
    }
}
