/* test_json_schema.c - orchestrator/json_schema.h: every supported keyword accepts what it should
 * and refuses what it should with the exact message a model will read; schemas with mistakes or
 * unsupported keywords are refused at compile with a message naming the place. Data-driven:
 * one row per case. */
#include "orchestrator/json_schema.h"
#include "tests/tap.h"

#include <errno.h>
#include <string.h>

static const char schema_text[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"id\":{\"type\":\"string\",\"minLength\":2,\"maxLength\":8},"
    "\"pincode\":{\"type\":\"string\",\"pattern\":\"^\\\\d{6}$\"},"
    "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":20},"
    "\"price\":{\"type\":\"number\",\"exclusiveMinimum\":0},"
    "\"sort\":{\"type\":\"string\",\"enum\":[\"price_asc\",\"rating\"]},"
    "\"in_stock\":{\"type\":\"boolean\"},"
    "\"note\":{\"type\":[\"string\",\"null\"]},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"minLength\":1},\"maxItems\":2},"
    "\"filters\":{\"type\":\"object\",\"properties\":{\"brand\":{\"type\":\"string\"}},"
    "\"additionalProperties\":false}},"
    "\"required\":[\"id\"],\"additionalProperties\":false,\"description\":\"ignored\"}";

static const struct {
    const char *args;
    const char *err; /* NULL = valid */
} cases[] = {
    /* 0 */ {"{\"id\":\"P1\"}", NULL},
    {"{\"id\":\"P1\",\"pincode\":\"560001\",\"limit\":5,\"price\":0.5,\"sort\":\"rating\","
     "\"in_stock\":true,\"note\":null,\"tags\":[\"a\",\"b\"],\"filters\":{\"brand\":\"X\"}}",
     NULL},
    {"{\"id\":\"\xe0\xa4\x85\xe0\xa4\x86\"}", NULL}, /* 2 code points, 6 bytes */
    {"{\"id\":\"P1\",\"limit\":7.0e0}", NULL},       /* integral: an integer */
    {"{}", "id: missing (required)"},
    /* 5 */ {"[]", "arguments: expected an object, got an array"},
    {"{\"id\":5}", "id: expected a string, got an integer"},
    {"{\"id\":\"P\"}", "id: expected at least 2 characters, got 1"},
    {"{\"id\":\"P123456789\"}", "id: expected at most 8 characters, got 10"},
    {"{\"id\":\"P1\",\"pincode\":\"56001\"}", "pincode: expected a string matching ^\\d{6}$"},
    /* 10 */
    {"{\"id\":\"P1\",\"pincode\":\"5600012\"}", "pincode: expected a string matching ^\\d{6}$"},
    {"{\"id\":\"P1\",\"limit\":0}", "limit: expected a value >= 1, got 0"},
    {"{\"id\":\"P1\",\"limit\":21}", "limit: expected a value <= 20, got 21"},
    {"{\"id\":\"P1\",\"limit\":2.5}", "limit: expected an integer, got a number"},
    {"{\"id\":\"P1\",\"limit\":\"5\"}", "limit: expected an integer, got a string"},
    /* 15 */ {"{\"id\":\"P1\",\"price\":0}", "price: expected a value > 0, got 0"},
    {"{\"id\":\"P1\",\"sort\":\"cheapest\"}", "sort: expected one of \"price_asc\", \"rating\""},
    {"{\"id\":\"P1\",\"in_stock\":\"yes\"}", "in_stock: expected a boolean, got a string"},
    {"{\"id\":\"P1\",\"note\":1}", "note: expected a string or null, got an integer"},
    {"{\"id\":\"P1\",\"tags\":[\"a\",\"\"]}", "tags[1]: expected at least 1 characters, got 0"},
    /* 20 */
    {"{\"id\":\"P1\",\"tags\":[\"a\",\"b\",\"c\"]}", "tags: expected at most 2 items, got 3"},
    {"{\"id\":\"P1\",\"filters\":{\"colour\":\"red\"}}", "filters.colour: unknown argument"},
    {"{\"id\":\"P1\",\"filters\":{\"brand\":1}}",
     "filters.brand: expected a string, got an integer"},
    {"{\"id\":\"P1\",\"extra\":1}", "extra: unknown argument"},
};

static const struct {
    const char *schema;
    const char *err;
} bad_schemas[] = {
    {"[]", "arguments: expected a schema object"},
    {"{\"type\":\"strng\"}", "type: expected a type name (object, string, integer, number, "
                             "boolean, array, null) or a non-empty array of them"},
    {"{\"type\":\"object\",\"oneOf\":[]}", "oneOf: unsupported keyword"},
    {"{\"properties\":{\"a\":{\"$ref\":\"#/x\"}}}", "properties.a.$ref: unsupported keyword"},
    {"{\"properties\":{\"a\":{\"minLength\":-1}}}",
     "properties.a.minLength: expected a non-negative integer"},
    {"{\"properties\":{\"a\":{\"minimum\":\"1\"}}}", "properties.a.minimum: expected a number"},
    {"{\"properties\":{\"a\":{}},\"required\":[\"b\"]}", "required: 'b' is not in properties"},
    {"{\"required\":\"a\"}", "required: expected an array of property names"},
    {"{\"enum\":[]}", "enum: expected a non-empty array of strings, numbers, booleans or null"},
    {"{\"enum\":[{}]}", "enum: expected a non-empty array of strings, numbers, booleans or null"},
    {"{\"additionalProperties\":{\"type\":\"string\"}}",
     "additionalProperties: only true or false is supported"},
    {"{\"pattern\":\"(?=x)\"}", "pattern: unsupported regular expression '(?=x)'"},
    {"{\"items\":[{\"type\":\"string\"}]}", "items: expected a schema object"},
};

static void test_validate(json_doc *d)
{
    char err[256];
    CHECK(json_doc_load(d, schema_text, sizeof(schema_text) - 1) == 0);
    struct js_schema *s = js_compile(d, "", err, sizeof(err));
    CHECKF(s != NULL, "%s", err);
    if (!s)
        return;
    CHECK(js_is_object(s) && js_has_property(s, "pincode") && !js_has_property(s, "pin"));
    CHECK(js_is_required(s, "id") && !js_is_required(s, "limit"));
    CHECK(js_property_count(s) == 9 && !strcmp(js_property_name(s, 1), "pincode") &&
          js_property_name(s, 9) == NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECKF(json_doc_load(d, cases[i].args, strlen(cases[i].args)) == 0, "case %zu", i);
        int rc = js_validate(s, d, "", err, sizeof(err));
        if (!cases[i].err)
            CHECKF(rc == 0, "case %zu: %s", i, err);
        else
            CHECKF(rc == -EINVAL && !strcmp(err, cases[i].err), "case %zu: rc %d '%s'", i, rc, err);
    }
    js_free(s);
}

static void test_bad_schemas(json_doc *d)
{
    char err[256];
    for (size_t i = 0; i < sizeof(bad_schemas) / sizeof(bad_schemas[0]); i++) {
        CHECK(json_doc_load(d, bad_schemas[i].schema, strlen(bad_schemas[i].schema)) == 0);
        struct js_schema *s = js_compile(d, "", err, sizeof(err));
        CHECKF(!s && !strcmp(err, bad_schemas[i].err), "schema %zu: '%s'", i, err);
        js_free(s);
    }
    /* a pattern with \w inside brackets and outside, unanchored: searched, as JSON Schema says */
    static const char pat[] = "{\"type\":\"string\",\"pattern\":\"[\\\\w-]+@\\\\w+\"}";
    CHECK(json_doc_load(d, pat, sizeof(pat) - 1) == 0);
    struct js_schema *s = js_compile(d, "", err, sizeof(err));
    CHECKF(s != NULL, "%s", err);
    CHECK(!js_is_object(s));
    CHECK(json_doc_load(d, "\"say a-b_1@host now\"", 20) == 0 &&
          js_validate(s, d, "", err, sizeof(err)) == 0);
    CHECK(json_doc_load(d, "\"@host\"", 7) == 0 &&
          js_validate(s, d, "", err, sizeof(err)) == -EINVAL);
    js_free(s);
}

int main(void)
{
    json_doc *d = json_doc_create();
    test_validate(d);
    test_bad_schemas(d);
    json_doc_destroy(d);
    return tap_done();
}
