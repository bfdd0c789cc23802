/* test_json.c - stream/json.h: validation, JSON Pointer lookups, every getter's outcomes,
 * string lifetime across lookups, provider stream chunks, and reuse of one doc.
 *
 * Lone surrogate escapes ("\ud800", "\udc00", a high surrogate not followed by a low one) are
 * REJECTED by json_doc_load (-EINVAL): simdjson refuses to unescape them, and the full
 * validation pass unescapes every string. */
#include "stream/json.h"
#include "base/buf.h"
#include "base/mem.h"
#include "tests/tap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LOAD(d, lit) json_doc_load((d), (lit), sizeof(lit) - 1)

static void load_ok(json_doc *d, const char *s)
{
    int rc = json_doc_load(d, s, strlen(s));
    CHECKF(rc == 0, "load %s -> %d", s, rc);
}

/* The string at ptr equals want[0..n). */
static void check_strn(json_doc *d, const char *ptr, const char *want, size_t n)
{
    const char *s = NULL;
    size_t len = 0;
    int rc = json_get_string(d, ptr, &s, &len);
    CHECKF(rc == 0, "%s -> %d", ptr, rc);
    if (rc)
        return;
    CHECKF(len == n && memcmp(s, want, n) == 0, "%s -> '%.*s'", ptr, (int)len, s);
    CHECKF(s[len] == '\0', "%s not NUL-terminated", ptr);
}

static void check_str(json_doc *d, const char *ptr, const char *want)
{
    check_strn(d, ptr, want, strlen(want));
}

static void check_int(json_doc *d, const char *ptr, int64_t want)
{
    int64_t v = 0;
    int rc = json_get_int(d, ptr, &v);
    CHECKF(rc == 0 && v == want, "%s -> %d %lld", ptr, rc, (long long)v);
}

static void check_raw(json_doc *d, const char *ptr, const char *want)
{
    const char *s = NULL;
    size_t len = 0;
    int rc = json_get_raw(d, ptr, &s, &len);
    CHECKF(rc == 0 && len == strlen(want) && memcmp(s, want, len) == 0, "%s -> %d '%.*s'", ptr, rc,
           rc ? 0 : (int)len, s ? s : "");
}

struct load_case {
    const char *json;
    size_t len; /* 0: strlen */
    int rc;
};

static void test_validation(json_doc *d)
{
    static const struct load_case cases[] = {
        /* valid */
        {"{}", 0, 0},
        {"[]", 0, 0},
        {"3", 0, 0},
        {"-0", 0, 0},
        {"\"x\"", 0, 0},
        {"true", 0, 0},
        {"false", 0, 0},
        {"null", 0, 0},
        {" \t\r\n[1, 2.5e3, -4, 1E-2]\n ", 0, 0},
        {"{\"a\":{\"b\":[null,true,false,{}]}}", 0, 0},
        {"123456789012345678901234567890", 0, 0}, /* beyond 64 bits: read as a double */
        {"[\"\\ud83d\\ude00\"]", 0, 0},
        {"\"\\u0000\"", 0, 0},
        {"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", 0, 0},
        {"\"\x7f\"", 0, 0},
        {"{\"\":\"\"}", 0, 0},
        /* structure and trailing content */
        {"", 0, -EINVAL},
        {"   ", 0, -EINVAL},
        {"[1,2", 0, -EINVAL},
        {"[1,2]]", 0, -EINVAL},
        {"{\"a\":1}x", 0, -EINVAL},
        {"{\"a\":1} {}", 0, -EINVAL},
        {"[1] [2]", 0, -EINVAL},
        {"\"a\" x", 0, -EINVAL},
        {"3 4", 0, -EINVAL},
        {"3,", 0, -EINVAL},
        {"[", 0, -EINVAL},
        {"]", 0, -EINVAL},
        {"{\"a\":1", 0, -EINVAL},
        {"{\"a\"}", 0, -EINVAL},
        {"{\"a\" 1}", 0, -EINVAL},
        {"{1:2}", 0, -EINVAL},
        {"[1,]", 0, -EINVAL},
        {"[,1]", 0, -EINVAL},
        {"{\"a\":1,}", 0, -EINVAL},
        {"[\"a\":1]", 0, -EINVAL},
        {"[1 2]", 0, -EINVAL},
        {"['a']", 0, -EINVAL},
        {"/*c*/1", 0, -EINVAL},
        {"\"abc", 0, -EINVAL},
        /* literals and numbers */
        {"nul", 0, -EINVAL},
        {"tru", 0, -EINVAL},
        {"[nulll]", 0, -EINVAL},
        {"[truex]", 0, -EINVAL},
        {"[01]", 0, -EINVAL},
        {"[1.]", 0, -EINVAL},
        {"[-]", 0, -EINVAL},
        {"[.5]", 0, -EINVAL},
        {"[+1]", 0, -EINVAL},
        {"[1e]", 0, -EINVAL},
        {"[NaN]", 0, -EINVAL},
        {"[Infinity]", 0, -EINVAL},
        {"[1e400]", 0, -EINVAL}, /* outside the double range: refused, not rounded to inf */
        /* escapes */
        {"\"\\x\"", 0, -EINVAL},
        {"[\"\\u00\"]", 0, -EINVAL},
        {"[\"\\u12G4\"]", 0, -EINVAL},
        {"{\"\\q\":1}", 0, -EINVAL},
        {"\"\\ud800\"", 0, -EINVAL},
        {"[\"\\udc00\"]", 0, -EINVAL},
        {"[\"\\ud800x\"]", 0, -EINVAL},
        {"[\"\\ud800\\u0041\"]", 0, -EINVAL},
        {"{\"\\ud800\":1}", 0, -EINVAL},
        /* unescaped control characters */
        {"\"a\x01"
         "b\"",
         0, -EINVAL},
        {"[\"a\nb\"]", 0, -EINVAL},
        {"[\"a\tb\"]", 0, -EINVAL},
        /* invalid UTF-8 inside strings and keys */
        {"\"\xff\"", 0, -EINVAL},
        {"[\"\xc0\x80\"]", 0, -EINVAL},
        {"[\"\xed\xa0\x80\"]", 0, -EINVAL},
        {"[\"\xf4\x90\x80\x80\"]", 0, -EINVAL},
        {"[\"\xe2\x82\"]", 0, -EINVAL},
        {"[\"\x80\"]", 0, -EINVAL},
        {"{\"\xfe\":1}", 0, -EINVAL},
        /* a NUL byte outside strings */
        {"[1]\0", 4, -EINVAL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct load_case *c = &cases[i];
        size_t len = c->len ? c->len : strlen(c->json);
        int rc = json_doc_load(d, c->json, len);
        CHECKF(rc == c->rc, "case %zu '%s': %d, want %d", i, c->json, rc, c->rc);
        /* a failed load leaves nothing to look up */
        if (c->rc)
            CHECKF(json_type_at(d, "") == JSON_MISSING, "case %zu still has a doc", i);
        else
            CHECKF(json_type_at(d, "") != JSON_MISSING, "case %zu has no root", i);
    }
}

/* "[[[...]]]" nested n deep. */
static char *nested(size_t n, char open, char close)
{
    char *s = xmalloc(2 * n + 1);
    memset(s, open, n);
    memset(s + n, close, n);
    s[2 * n] = '\0';
    return s;
}

static void test_limits(json_doc *d)
{
    char *s = nested(64, '[', ']');
    CHECK(json_doc_load(d, s, strlen(s)) == 0);
    xfree(s);
    s = nested(65, '[', ']');
    CHECK(json_doc_load(d, s, strlen(s)) == -E2BIG);
    xfree(s);
    /* far deeper than the limit: must neither recurse deeply nor succeed */
    s = nested(100000, '[', ']');
    CHECK(json_doc_load(d, s, strlen(s)) == -E2BIG);
    xfree(s);

    /* {"a":{"a":...{}}} 65 objects deep */
    struct buf b = {0};
    for (int i = 0; i < 64; i++)
        buf_append_str(&b, "{\"a\":");
    buf_append_str(&b, "{}");
    for (int i = 0; i < 64; i++)
        buf_append_str(&b, "}");
    CHECK(json_doc_load(d, buf_begin(&b), buf_size(&b)) == -E2BIG);
    buf_reset(&b);
    for (int i = 0; i < 63; i++)
        buf_append_str(&b, "{\"a\":");
    buf_append_str(&b, "[1]");
    for (int i = 0; i < 63; i++)
        buf_append_str(&b, "}");
    CHECK(json_doc_load(d, buf_begin(&b), buf_size(&b)) == 0);
    buf_free(&b);

    /* exactly 4 MiB loads; one byte more does not */
    size_t max = 4u << 20;
    s = xmalloc(max + 2);
    memset(s, 'a', max + 2);
    s[0] = '"';
    s[max - 1] = '"';
    CHECK(json_doc_load(d, s, max) == 0);
    size_t n = 0;
    const char *str;
    CHECK(json_get_string(d, "", &str, &n) == 0 && n == max - 2);
    s[max - 1] = 'a';
    s[max] = '"';
    CHECK(json_doc_load(d, s, max + 1) == -E2BIG);
    CHECK(json_doc_load_padded(d, s, max + 1) == -E2BIG);
    CHECK(json_type_at(d, "") == JSON_MISSING);
    xfree(s);
}

static void test_pointers(json_doc *d)
{
    load_ok(d, "{\"a\":{\"b/c\":1,\"d~e\":2,\"\":3,\"~01\":4,"
               "\"arr\":[10,[20,21],{\"x\":\"y\"}]},"
               "\"esc\\\"key\":5,\"\\u00e9\":6,\"caf\xc3\xa9\":7,\"k\":1,\"k\":2,"
               "\"a\\u0000b\":8}");
    CHECK(json_type_at(d, "") == JSON_OBJECT);
    CHECK(json_type_at(d, "/a") == JSON_OBJECT);
    check_int(d, "/a/b~1c", 1);
    check_int(d, "/a/d~0e", 2);
    check_int(d, "/a/", 3);
    check_int(d, "/a/~001", 4); /* "~0" then "1": the key "~01" */
    check_int(d, "/a/arr/0", 10);
    check_int(d, "/a/arr/1/1", 21);
    check_str(d, "/a/arr/2/x", "y");
    CHECK(json_type_at(d, "/a/arr") == JSON_ARRAY);
    CHECK(json_type_at(d, "/a/arr/1") == JSON_ARRAY);
    check_int(d, "/esc\"key", 5);                         /* key written with an escape */
    check_int(d, "/\xc3\xa9", 6);                         /* key written as \u00e9 */
    check_int(d, "/caf\xc3\xa9", 7);                      /* raw UTF-8 key */
    check_int(d, "/k", 1);                                /* duplicate keys: the first wins */
    CHECK(json_type_at(d, "/a\\u0000b") == JSON_MISSING); /* a C string cannot hold the NUL */

    static const char *missing[] = {
        "/a/arr/3",                    /* index out of range */
        "/a/arr/-",                    /* past-the-end marker */
        "/a/arr/01",                   /* leading zero */
        "/a/arr/x",                    /* name on an array */
        "/a/arr/",                     /* empty index */
        "/a/arr/-1",                   /* negative */
        "/a/arr/18446744073709551617", /* overflows size_t */
        "/a/arr/0/x",                  /* into a number */
        "/a/arr/2/x/y",                /* into a string */
        "/a/b~1c/0",                   /* into a number */
        "/a/b~2c",                     /* bad escape */
        "/a/b~",                       /* dangling escape */
        "/a/b/c",                      /* '/' is a separator unless escaped */
        "a",                           /* no leading slash */
        "/missing",
        "/A", /* keys are case-sensitive */
        "/a/arr/2/x/",
        "//",
    };
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        int64_t v;
        const char *s;
        size_t n;
        CHECKF(json_type_at(d, missing[i]) == JSON_MISSING, "%s", missing[i]);
        CHECKF(json_get_int(d, missing[i], &v) == -ENOENT, "%s", missing[i]);
        CHECKF(json_get_string(d, missing[i], &s, &n) == -ENOENT, "%s", missing[i]);
        CHECKF(json_get_raw(d, missing[i], &s, &n) == -ENOENT, "%s", missing[i]);
        CHECKF(json_count(d, missing[i], &n) == -ENOENT, "%s", missing[i]);
    }
    /* lookups in any order: each one starts from the root */
    check_int(d, "/a/arr/1/0", 20);
    check_int(d, "/a/b~1c", 1);
    check_int(d, "/a/arr/1/0", 20);

    load_ok(d, "[[1,2],[3,[4,{\"k\":[5]}]]]");
    check_int(d, "/0/1", 2);
    check_int(d, "/1/1/1/k/0", 5);
    CHECK(json_type_at(d, "/2") == JSON_MISSING);
    CHECK(json_type_at(d, "/k") == JSON_MISSING);
}

static void test_getters(json_doc *d)
{
    load_ok(d, "{\"s\":\"str\",\"i\":42,\"neg\":-7,\"f\":1.5,\"e\":1e3,\"z\":-0,"
               "\"big\":9223372036854775808,\"min\":-9223372036854775808,"
               "\"max\":9223372036854775807,\"under\":-9223372036854775809,"
               "\"t\":true,\"fa\":false,\"n\":null,\"o\":{},\"a\":[]}");
    const char *s;
    size_t n;
    int64_t i;
    double x;
    bool b;

    CHECK(json_type_at(d, "/s") == JSON_STRING);
    CHECK(json_type_at(d, "/i") == JSON_NUMBER);
    CHECK(json_type_at(d, "/f") == JSON_NUMBER);
    CHECK(json_type_at(d, "/t") == JSON_BOOL);
    CHECK(json_type_at(d, "/n") == JSON_NULL);
    CHECK(json_type_at(d, "/o") == JSON_OBJECT);
    CHECK(json_type_at(d, "/a") == JSON_ARRAY);

    check_str(d, "/s", "str");
    CHECK(json_get_string(d, "/i", &s, &n) == -EINVAL);
    CHECK(json_get_string(d, "/n", &s, &n) == -EINVAL);
    CHECK(json_get_string(d, "/o", &s, &n) == -EINVAL);
    CHECK(json_get_string(d, "/a", &s, &n) == -EINVAL);
    CHECK(json_get_string(d, "/x", &s, &n) == -ENOENT);

    check_int(d, "/i", 42);
    check_int(d, "/neg", -7);
    check_int(d, "/z", 0);
    check_int(d, "/min", INT64_MIN);
    check_int(d, "/max", INT64_MAX);
    CHECK(json_get_int(d, "/f", &i) == -EINVAL);
    CHECK(json_get_int(d, "/e", &i) == -EINVAL);
    CHECK(json_get_int(d, "/big", &i) == -EINVAL);
    CHECK(json_get_int(d, "/under", &i) == -EINVAL);
    CHECK(json_get_int(d, "/s", &i) == -EINVAL);
    CHECK(json_get_int(d, "/t", &i) == -EINVAL);
    CHECK(json_get_int(d, "/n", &i) == -EINVAL);
    CHECK(json_get_int(d, "/o", &i) == -EINVAL);
    CHECK(json_get_int(d, "/x", &i) == -ENOENT);

    CHECK(json_get_double(d, "/f", &x) == 0 && x == 1.5);
    CHECK(json_get_double(d, "/i", &x) == 0 && x == 42.0);
    CHECK(json_get_double(d, "/e", &x) == 0 && x == 1000.0);
    CHECK(json_get_double(d, "/big", &x) == 0 && x == 9223372036854775808.0);
    CHECK(json_get_double(d, "/s", &x) == -EINVAL);
    CHECK(json_get_double(d, "/n", &x) == -EINVAL);
    CHECK(json_get_double(d, "/a", &x) == -EINVAL);
    CHECK(json_get_double(d, "/x", &x) == -ENOENT);

    CHECK(json_get_bool(d, "/t", &b) == 0 && b == true);
    CHECK(json_get_bool(d, "/fa", &b) == 0 && b == false);
    CHECK(json_get_bool(d, "/n", &b) == -EINVAL);
    CHECK(json_get_bool(d, "/i", &b) == -EINVAL);
    CHECK(json_get_bool(d, "/s", &b) == -EINVAL);
    CHECK(json_get_bool(d, "/x", &b) == -ENOENT);

    CHECK(json_count(d, "", &n) == 0 && n == 15);
    CHECK(json_count(d, "/o", &n) == 0 && n == 0);
    CHECK(json_count(d, "/a", &n) == 0 && n == 0);
    CHECK(json_count(d, "/s", &n) == -EINVAL);
    CHECK(json_count(d, "/n", &n) == -EINVAL);
    CHECK(json_count(d, "/x", &n) == -ENOENT);

    CHECK(json_key_at(d, "", 0, &s, &n) == 0 && n == 1 && strcmp(s, "s") == 0);
    CHECK(json_key_at(d, "", 14, &s, &n) == 0 && n == 1 && strcmp(s, "a") == 0);
    CHECK(json_key_at(d, "", 15, &s, &n) == -ENOENT);
    CHECK(json_key_at(d, "/o", 0, &s, &n) == -ENOENT);
    CHECK(json_key_at(d, "/a", 0, &s, &n) == -EINVAL);
    CHECK(json_key_at(d, "/s", 0, &s, &n) == -EINVAL);
    CHECK(json_key_at(d, "/x", 0, &s, &n) == -ENOENT);

    check_raw(d, "/s", "\"str\"");
    check_raw(d, "/f", "1.5");
    check_raw(d, "/e", "1e3");
    check_raw(d, "/t", "true");
    check_raw(d, "/n", "null");
    check_raw(d, "/o", "{}");
    check_raw(d, "/a", "[]");

    /* raw keeps inner whitespace and escapes, trims what follows the value */
    static const char spaced[] = " { \"x\" : [ 1 , 2 ] , \"y\" : \"a\\\"b\" ,\n"
                                 "\"z\" : { \"k\" : null } , \"w\" : [ ] , \"v\" : -1.5e-3 } \n";
    CHECK(LOAD(d, spaced) == 0);
    check_raw(d, "/x", "[ 1 , 2 ]");
    check_raw(d, "/x/1", "2");
    check_raw(d, "/y", "\"a\\\"b\"");
    check_raw(d, "/z", "{ \"k\" : null }");
    check_raw(d, "/z/k", "null");
    check_raw(d, "/w", "[ ]");
    check_raw(d, "/v", "-1.5e-3");
    check_raw(d, "",
              "{ \"x\" : [ 1 , 2 ] , \"y\" : \"a\\\"b\" ,\n"
              "\"z\" : { \"k\" : null } , \"w\" : [ ] , \"v\" : -1.5e-3 }");
    /* after raw consumed containers, lookups still work */
    check_int(d, "/x/0", 1);
    check_str(d, "/y", "a\"b");
    CHECK(json_count(d, "/x", &n) == 0 && n == 2);
    CHECK(json_count(d, "/w", &n) == 0 && n == 0);
    CHECK(json_key_at(d, "/z", 0, &s, &n) == 0 && strcmp(s, "k") == 0);
}

static void test_root_scalars(json_doc *d)
{
    const char *s;
    size_t n;
    int64_t i;
    bool b;

    load_ok(d, " \"hi\" ");
    CHECK(json_type_at(d, "") == JSON_STRING);
    check_str(d, "", "hi");
    check_raw(d, "", "\"hi\"");
    CHECK(json_type_at(d, "/0") == JSON_MISSING);
    CHECK(json_get_int(d, "", &i) == -EINVAL);
    CHECK(json_count(d, "", &n) == -EINVAL);
    CHECK(json_key_at(d, "", 0, &s, &n) == -EINVAL);

    load_ok(d, "42\n");
    CHECK(json_type_at(d, "") == JSON_NUMBER);
    check_int(d, "", 42);
    check_raw(d, "", "42");
    CHECK(json_get_string(d, "", &s, &n) == -EINVAL);
    CHECK(json_get_int(d, "/x", &i) == -ENOENT);

    load_ok(d, "-1.25");
    CHECK(json_get_int(d, "", &i) == -EINVAL);

    load_ok(d, "true");
    CHECK(json_get_bool(d, "", &b) == 0 && b);
    load_ok(d, "null");
    CHECK(json_type_at(d, "") == JSON_NULL);
    check_raw(d, "", "null");

    load_ok(d, "[1,2,3]");
    CHECK(json_count(d, "", &n) == 0 && n == 3);
    check_raw(d, "", "[1,2,3]");
}

static void test_unescape(json_doc *d)
{
    load_ok(d, "{\"s\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t|\\u00e9\\u20ac\\ud83d\\ude00|"
               "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\",\"nul\":\"a\\u0000b\","
               "\"\\u006b\\n\":\"key\",\"ctl\":\"\\u001f\\u007f\",\"ls\":\"\\u2028\\u2029\"}");
    check_str(d, "/s",
              "a\"b\\c/d\b\f\n\r\t|\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|"
              "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    check_strn(d, "/nul", "a\0b", 3);
    check_str(d, "/k\n", "key");
    check_str(d, "/ctl", "\x1f\x7f");
    check_str(d, "/ls", "\xe2\x80\xa8\xe2\x80\xa9");
    const char *k;
    size_t n;
    CHECK(json_key_at(d, "", 2, &k, &n) == 0 && n == 2 && memcmp(k, "k\n", 3) == 0);
}

/* Strings from earlier lookups survive later ones (the rewind pitfall, see docs/json.md). */
static void test_string_lifetime(json_doc *d)
{
    load_ok(d, "{\"a\":\"first \\\"string\\\"\",\"b\":\"second\\n\",\"arr\":[\"x0\",\"x1\",\"x2\","
               "\"x3\",\"x4\",\"x5\",\"x6\",\"x7\",\"x8\",\"x9\"],\"o\":{\"k\\u00e9y\":1}}");
    const char *a, *b, *k, *arr[10];
    size_t na, nb, nk, narr[10];
    CHECK(json_get_string(d, "/a", &a, &na) == 0);
    CHECK(json_get_string(d, "/b", &b, &nb) == 0);
    CHECK(json_key_at(d, "/o", 0, &k, &nk) == 0);
    for (int i = 0; i < 10; i++) {
        char p[16];
        snprintf(p, sizeof(p), "/arr/%d", i);
        CHECK(json_get_string(d, p, &arr[i], &narr[i]) == 0);
    }
    /* unrelated lookups in between rewind again */
    int64_t v;
    CHECK(json_get_int(d, "/o/k\xc3\xa9y", &v) == 0 && v == 1);
    const char *raw;
    size_t nraw;
    CHECK(json_get_raw(d, "/arr", &raw, &nraw) == 0);
    CHECK(na == 14 && strcmp(a, "first \"string\"") == 0);
    CHECK(nb == 7 && strcmp(b, "second\n") == 0);
    CHECK(nk == 4 && strcmp(k, "k\xc3\xa9y") == 0);
    for (int i = 0; i < 10; i++) {
        char want[4] = {'x', (char)('0' + i), 0, 0};
        CHECKF(narr[i] == 2 && strcmp(arr[i], want) == 0, "arr[%d] = %s", i, arr[i]);
    }
    /* the same string twice gives two equal copies */
    const char *a2;
    CHECK(json_get_string(d, "/a", &a2, &na) == 0 && strcmp(a, a2) == 0);

    /* many large strings: the arena grows by chunks that never move */
    struct buf big = {0};
    buf_append_str(&big, "[");
    for (int i = 0; i < 40; i++) {
        if (i)
            buf_append_str(&big, ",");
        buf_printf(&big, "\"%d:", i);
        for (int j = 0; j < 1000 + i * 97; j++)
            buf_append(&big, &"abcdefghij"[j % 10], 1);
        buf_append_str(&big, "\"");
    }
    buf_append_str(&big, "]");
    CHECK(json_doc_load(d, buf_begin(&big), buf_size(&big)) == 0);
    const char *got[40];
    size_t ngot[40];
    for (int i = 0; i < 40; i++) {
        char p[16];
        snprintf(p, sizeof(p), "/%d", i);
        CHECK(json_get_string(d, p, &got[i], &ngot[i]) == 0);
    }
    for (int i = 0; i < 40; i++) {
        char pre[8];
        int np = snprintf(pre, sizeof(pre), "%d:", i);
        bool ok = ngot[i] == (size_t)(np + 1000 + i * 97) && memcmp(got[i], pre, np) == 0;
        for (int j = 0; ok && j < 1000 + i * 97; j++)
            ok = got[i][np + j] == "abcdefghij"[j % 10];
        CHECKF(ok, "big string %d", i);
    }
    buf_free(&big);
}

static void test_copy_and_padded(json_doc *d)
{
    /* json_doc_load copies: changing the input afterwards changes nothing */
    char in[] = "{\"k\":\"value\"}";
    CHECK(json_doc_load(d, in, strlen(in)) == 0);
    memset(in, 'X', strlen(in));
    check_str(d, "/k", "value");
    check_raw(d, "/k", "\"value\"");

    /* padded: no copy, raw points into the caller's buffer, padding bytes are ignored */
    char pad[32 + JSON_PADDING];
    memset(pad, '7', sizeof(pad));
    memcpy(pad, "[123]", 5);
    CHECK(json_doc_load_padded(d, pad, 5) == 0);
    const char *s;
    size_t n;
    CHECK(json_get_raw(d, "/0", &s, &n) == 0 && s == pad + 1 && n == 3);
    check_int(d, "/0", 123);

    memcpy(pad, "123", 3); /* a root number followed by more digits in the padding */
    CHECK(json_doc_load_padded(d, pad, 3) == 0);
    check_int(d, "", 123);
    check_raw(d, "", "123");

    memset(pad, 'e', sizeof(pad));
    memcpy(pad, "tru", 3); /* "true" only if the padding were read as input */
    CHECK(json_doc_load_padded(d, pad, 3) == -EINVAL);
    memset(pad, ']', sizeof(pad));
    memcpy(pad, "[[1", 3);
    CHECK(json_doc_load_padded(d, pad, 3) == -EINVAL);
    memset(pad, '"', sizeof(pad));
    memcpy(pad, "\"ab", 3);
    CHECK(json_doc_load_padded(d, pad, 3) == -EINVAL);
    CHECK(json_doc_load_padded(d, pad, 0) == -EINVAL);
}

static void test_providers(json_doc *d)
{
    const char *s;
    size_t n;
    int64_t v;

    /* OpenAI Chat Completions stream chunks */
    load_ok(d, "{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
               "\"delta\":{\"content\":\"Hel\\\"lo\"},\"finish_reason\":null}],\"usage\":null}");
    check_str(d, "/object", "chat.completion.chunk");
    check_str(d, "/choices/0/delta/content", "Hel\"lo");
    check_int(d, "/choices/0/index", 0);
    CHECK(json_type_at(d, "/choices/0/finish_reason") == JSON_NULL);
    CHECK(json_type_at(d, "/usage") == JSON_NULL);
    CHECK(json_type_at(d, "/choices/0/delta/tool_calls") == JSON_MISSING);
    CHECK(json_count(d, "/choices", &n) == 0 && n == 1);

    load_ok(d, "{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
               "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}");
    check_str(d, "/choices/0/delta/role", "assistant");
    check_str(d, "/choices/0/delta/content", "");

    load_ok(d, "{\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
               "\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
               "\"arguments\":\"{\\\"loc\"}}]},\"finish_reason\":null}]}");
    check_str(d, "/choices/0/delta/tool_calls/0/function/name", "get_weather");
    check_str(d, "/choices/0/delta/tool_calls/0/function/arguments", "{\"loc");
    check_str(d, "/choices/0/delta/tool_calls/0/id", "call_1");

    load_ok(d, "{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":"
               "{\"prompt_tokens\":1200,\"completion_tokens\":85,\"total_tokens\":1285,"
               "\"prompt_tokens_details\":{\"cached_tokens\":1024},"
               "\"completion_tokens_details\":{\"reasoning_tokens\":64}}}");
    CHECK(json_count(d, "/choices", &n) == 0 && n == 0);
    CHECK(json_type_at(d, "/choices/0") == JSON_MISSING);
    check_int(d, "/usage/prompt_tokens", 1200);
    check_int(d, "/usage/prompt_tokens_details/cached_tokens", 1024);
    check_int(d, "/usage/completion_tokens_details/reasoning_tokens", 64);

    /* Anthropic Messages events */
    load_ok(d, "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
               "\"role\":\"assistant\",\"content\":[],\"model\":\"claude-x\",\"stop_reason\":null,"
               "\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":100,"
               "\"cache_read_input_tokens\":2000,\"output_tokens\":1}}}");
    check_str(d, "/type", "message_start");
    check_int(d, "/message/usage/cache_read_input_tokens", 2000);
    check_int(d, "/message/usage/cache_creation_input_tokens", 100);

    load_ok(d, "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
               "\"text\":\"Hello \\u4e16\\u754c \xe2\x9c\x93\"}}");
    check_str(d, "/type", "content_block_delta");
    check_str(d, "/delta/type", "text_delta");
    check_str(d, "/delta/text", "Hello \xe4\xb8\x96\xe7\x95\x8c \xe2\x9c\x93");

    load_ok(d, "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
               "\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Par\"}}");
    check_int(d, "/index", 1);
    check_str(d, "/delta/partial_json", "{\"city\": \"Par");

    load_ok(d, "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
               "\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}");
    check_int(d, "/usage/output_tokens", 15);

    load_ok(d, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
               "\"Overloaded\"}}");
    check_str(d, "/error/type", "overloaded_error");

    /* Gemini streamGenerateContent */
    load_ok(d, "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"},{\"text\":\" there\"}],"
               "\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}],"
               "\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":2,"
               "\"totalTokenCount\":7,\"cachedContentTokenCount\":1,\"thoughtsTokenCount\":0},"
               "\"modelVersion\":\"gemini-2.0-flash\"}");
    CHECK(json_count(d, "/candidates/0/content/parts", &n) == 0 && n == 2);
    check_str(d, "/candidates/0/content/parts/0/text", "Hi");
    check_str(d, "/candidates/0/content/parts/1/text", " there");
    check_str(d, "/candidates/0/finishReason", "STOP");
    check_int(d, "/usageMetadata/promptTokenCount", 5);
    check_int(d, "/usageMetadata/cachedContentTokenCount", 1);
    CHECK(json_get_int(d, "/usageMetadata/missingCount", &v) == -ENOENT);
    CHECK(json_key_at(d, "/usageMetadata", 4, &s, &n) == 0 && strcmp(s, "thoughtsTokenCount") == 0);

    load_ok(d, "{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\","
               "\"args\":{\"a\":[1,2]}}}]}}]}");
    check_raw(d, "/candidates/0/content/parts/0/functionCall/args", "{\"a\":[1,2]}");
}

/* One doc over many loads of varied sizes and outcomes (ASan/LSan watch for leaks). */
static void test_reuse(json_doc *d)
{
    struct buf b = {0};
    int bad = 0;
    for (int i = 0; i < 3000; i++) {
        buf_reset(&b);
        int strings = i % 50;
        buf_append_str(&b, "{\"n\":");
        buf_printf(&b, "%d,\"s\":[", i);
        for (int j = 0; j < strings; j++)
            buf_printf(&b, "%s\"v%d-%d\\n%*s\"", j ? "," : "", i, j, (i * 7 + j) % 300, "");
        buf_append_str(&b, "]}");
        size_t len = buf_size(&b);
        if (i % 7 == 3)
            len--; /* truncated */
        int rc = json_doc_load(d, buf_begin(&b), len);
        if (i % 7 == 3) {
            bad += rc != -EINVAL;
            continue;
        }
        int64_t n;
        size_t cnt;
        bad += rc != 0 || json_get_int(d, "/n", &n) != 0 || n != i;
        bad += json_count(d, "/s", &cnt) != 0 || cnt != (size_t)strings;
        for (int j = 0; j < strings; j += 5) {
            char p[24];
            const char *s;
            size_t sl;
            snprintf(p, sizeof(p), "/s/%d", j);
            bad += json_get_string(d, p, &s, &sl) != 0 || sl != strlen(s);
        }
    }
    CHECKF(bad == 0, "%d reuse failures", bad);
    buf_free(&b);

    /* a fresh doc is destroyed without ever loading, and NULL is accepted */
    json_doc *e = json_doc_create();
    CHECK(e != NULL);
    CHECK(json_type_at(e, "") == JSON_MISSING);
    json_doc_destroy(e);
    json_doc_destroy(NULL);
}

/* json_doc_load_unique: duplicate keys at any level are refused (-EEXIST), compared after
 * unescaping; the same key in different objects, or in an array's objects, is fine; plain
 * json_doc_load keeps accepting them (providers' documents). Large objects take the sorted path. */
static void test_unique_keys(json_doc *d)
{
    static const char *const dup[] = {
        "{\"a\":1,\"a\":2}",
        "{\"type\":\"user_message\",\"id\":\"1\",\"text\":\"hi\",\"text\":\"bye\"}",
        "{\"a\":{\"b\":1,\"c\":2,\"b\":3}}",
        "[{\"x\":1},{\"y\":1,\"y\":1}]",
        "{\"a\":1,\"\\u0061\":2}",
        "{\"\":1,\"\":2}",
        "{\"k\":[{\"a\":{\"z\":1}},{\"q\":{\"r\":{\"s\":1,\"s\":2}}}]}",
    };
    for (size_t i = 0; i < sizeof(dup) / sizeof(dup[0]); i++) {
        int rc = json_doc_load_unique(d, dup[i], strlen(dup[i]));
        CHECKF(rc == -EEXIST, "unique %s -> %d", dup[i], rc);
        CHECK(json_type_at(d, "") == JSON_MISSING); /* nothing loaded */
        CHECKF(json_doc_load(d, dup[i], strlen(dup[i])) == 0, "plain %s", dup[i]);
    }
    static const char *const fine[] = {
        "{\"a\":1,\"b\":{\"a\":2},\"c\":[{\"a\":3},{\"a\":4}]}",
        "{\"a\":1,\"A\":2,\"a \":3,\"\\u00e9\":4,\"e\\u0301\":5}",
        "[1,2,{}]",
        "\"a\"",
        "{\"a\":{\"a\":{\"a\":{}}}}",
    };
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
        int rc = json_doc_load_unique(d, fine[i], strlen(fine[i]));
        CHECKF(rc == 0, "unique %s -> %d", fine[i], rc);
    }
    CHECK(json_doc_load_unique(d, "{\"a\":", 5) == -EINVAL);
    /* many members: 5000 distinct keys load; one repeated (first and last) is found */
    struct buf b = {0};
    buf_printf(&b, "{");
    for (int i = 0; i < 5000; i++)
        buf_printf(&b, "%s\"k%d\":%d", i ? "," : "", i, i);
    buf_printf(&b, "}");
    CHECK(json_doc_load_unique(d, buf_begin(&b), buf_size(&b)) == 0);
    CHECK(json_count(d, "", &(size_t){0}) == 0);
    b.len--; /* drop the '}' */
    buf_printf(&b, ",\"k0\":1}");
    CHECK(json_doc_load_unique(d, buf_begin(&b), buf_size(&b)) == -EEXIST);
    buf_free(&b);
}

int main(void)
{
    json_doc *d = json_doc_create();
    test_validation(d);
    test_limits(d);
    test_pointers(d);
    test_getters(d);
    test_root_scalars(d);
    test_unescape(d);
    test_string_lifetime(d);
    test_copy_and_padded(d);
    test_providers(d);
    test_reuse(d);
    test_unique_keys(d);
    json_doc_destroy(d);
    return tap_done();
}
