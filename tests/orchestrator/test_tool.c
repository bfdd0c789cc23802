/* test_tool.c - orchestrator/tool.h: the reference tools file loads; every kind of mistake in a
 * tools file is refused with a message naming the tool and the key; arguments are checked with
 * the message the model gets; URLs (placeholders, query strings, encoding) and POST bodies are
 * built exactly; results are shaped (items, top_k, kept fields, byte cap, non-JSON text). */
#include "orchestrator/tool.h"
#include "tests/tap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *bstr(const struct buf *b)
{
    return b->data ? buf_begin(b) : "";
}

static bool buf_is(const struct buf *b, const char *s)
{
    return buf_size(b) == strlen(s) && !memcmp(bstr(b), s, buf_size(b));
}

/* A tools file with one tool of each method; a tool entry can be swapped in by the bad cases. */
#define OFFERS                                                                                     \
    "{\"name\":\"get_offers\",\"description\":\"Offers.\",\"parameters\":{\"type\":\"object\","    \
    "\"properties\":{\"id\":{\"type\":\"string\"},\"pincode\":{\"type\":\"string\","               \
    "\"pattern\":\"^[1-9][0-9]{5}$\"},\"express\":{\"type\":\"boolean\"}},"                        \
    "\"required\":[\"id\",\"pincode\"],\"additionalProperties\":false},"                           \
    "\"http\":{\"method\":\"GET\",\"path\":\"/catalog/products/{id}/offers\","                     \
    "\"headers\":{\"Accept\":\"application/json\"}},\"timeout_ms\":900,\"retries\":2,"             \
    "\"cache_ttl_s\":60}"
#define SEARCH                                                                                     \
    "{\"name\":\"search\",\"description\":\"Search.\",\"parameters\":{\"type\":\"object\","        \
    "\"properties\":{\"q\":{\"type\":\"string\"},\"brand\":{\"type\":[\"string\",\"null\"]},"      \
    "\"max_price\":{\"type\":\"integer\"},\"limit\":{\"type\":\"integer\"}}},"                     \
    "\"http\":{\"method\":\"GET\",\"path\":\"/search?v=2\"},"                                      \
    "\"result\":{\"items\":\"/results\",\"keep\":[\"id\",\"specs.battery_mah\"],\"top_k\":2,"      \
    "\"max_bytes\":80}}"
#define NOTE                                                                                       \
    "{\"name\":\"add_note\",\"description\":\"Note.\",\"parameters\":{\"type\":\"object\","        \
    "\"properties\":{\"text\":{\"type\":\"string\"}}},"                                            \
    "\"http\":{\"method\":\"POST\",\"path\":\"/notes\",\"base_url\":\"http://notes.test/\","       \
    "\"headers\":{\"Authorization\":{\"env\":\"TEST_TOOL_TOKEN\"}}},\"result\":{\"max_bytes\":16}" \
    "}"
#define FILE_OF(tools)                                                                             \
    "{\"base_url\":\"http://127.0.0.1:9/\",\"base_url_env\":\"TEST_TOOL_URL\",\"tools\":[" tools   \
    "]}"

static struct tool_set *parse(const char *text, char *err, size_t errlen)
{
    return tool_set_parse(text, strlen(text), "t.json", err, errlen);
}

static void test_reference_file(void)
{
    char err[512];
    unsetenv("TRILEMMA_CATALOG_URL");
    struct tool_set *ts = tool_set_load(SOURCE_DIR "/config/tools.json", err, sizeof(err));
    CHECKF(ts != NULL, "%s", err);
    static const char *const names[] = {"search_products", "get_product", "get_offers",
                                        "get_policy", "get_order"};
    CHECK(tool_set_count(ts) == 5);
    for (size_t i = 0; i < 5 && ts; i++) {
        const struct tool_def *t = tool_set_find(ts, names[i], strlen(names[i]));
        CHECKF(t && t->method == TOOL_GET, "%s", names[i]);
        /* what the model is shown is minified: schema tokens are counted per request */
        CHECK(t && !strchr(t->parameters_json, ' ') && !strchr(t->parameters_json, '\n'));
        CHECK(t && !strcmp(t->base_url, "http://127.0.0.1:8090"));
    }
    tool_set_free(ts);
    setenv("TRILEMMA_CATALOG_URL", "http://catalog.internal:81/", 1);
    ts = tool_set_load(SOURCE_DIR "/config/tools.json", err, sizeof(err));
    CHECK(ts && !strcmp(tool_set_at(ts, 0)->base_url, "http://catalog.internal:81"));
    tool_set_free(ts);
    unsetenv("TRILEMMA_CATALOG_URL");
    CHECK(tool_set_load("/nonexistent/tools.json", err, sizeof(err)) == NULL &&
          !strcmp(err, "/nonexistent/tools.json: No such file or directory"));
}

static void test_load(void)
{
    char err[512];
    setenv("TEST_TOOL_TOKEN", "Bearer t0k", 1);
    unsetenv("TEST_TOOL_URL");
    struct tool_set *ts = parse(FILE_OF(OFFERS "," SEARCH "," NOTE), err, sizeof(err));
    CHECKF(ts != NULL, "%s", err);
    if (!ts)
        return;
    const struct tool_def *o = tool_set_at(ts, 0), *s = tool_set_at(ts, 1), *n = tool_set_at(ts, 2);
    CHECK(!strcmp(o->name, "get_offers") && o->timeout_ms == 900 && o->retries == 2 &&
          o->cache_ttl_s == 60 && !strcmp(o->headers[0], "Accept: application/json") &&
          o->headers[1] == NULL && !strcmp(o->base_url, "http://127.0.0.1:9"));
    CHECK(s->timeout_ms == 5000 && s->retries == 0 && s->shape.top_k == 2 && s->shape.n_keep == 2 &&
          !strcmp(s->shape.items, "/results"));
    CHECK(n->method == TOOL_POST && !strcmp(n->base_url, "http://notes.test") &&
          !strcmp(n->headers[0], "Authorization: Bearer t0k"));
    struct llm_tool lt;
    tool_to_llm(o, &lt);
    CHECK(!strcmp(lt.name, "get_offers") && !strcmp(lt.description, "Offers.") &&
          !strncmp(lt.parameters_json, "{\"type\":\"object\",\"properties\":{\"id\"", 35));
    CHECK(tool_set_find(ts, "search", 6) == s && !tool_set_find(ts, "searc", 5));
    tool_set_free(ts);

    setenv("TEST_TOOL_URL", "http://env.test:8080", 1);
    ts = parse(FILE_OF(OFFERS "," NOTE), err, sizeof(err));
    CHECK(ts && !strcmp(tool_set_at(ts, 0)->base_url, "http://env.test:8080") &&
          !strcmp(tool_set_at(ts, 1)->base_url, "http://env.test:8080"));
    tool_set_free(ts);
    unsetenv("TEST_TOOL_URL");
}

#define T(extra)                                                                                   \
    "{\"name\":\"t\",\"description\":\"d\",\"parameters\":{\"type\":\"object\","                   \
    "\"properties\":{\"id\":{\"type\":\"string\"}},\"required\":[\"id\"]},"                        \
    "\"http\":{\"method\":\"GET\",\"path\":\"/x/{id}\"}" extra "}"

static const struct {
    const char *text;
    const char *err;
} bad_files[] = {
    {"{\"tools\":[", "t.json: JSON: not valid JSON"},
    {"[]", "t.json: top level: expected an object with \"tools\""},
    {"{\"tool\":[]}", "t.json: top level: unknown key 'tool'"},
    {"{\"base_url\":\"http://h\"}", "t.json: tools: expected an array of tools"},
    {FILE_OF("{\"description\":\"d\"}"),
     "t.json: tool 'tools[0]': name: expected a non-empty string"},
    {FILE_OF(T(",\"timeout\":5")), "t.json: tool 't': keys: unknown key 'timeout'"},
    {FILE_OF(T("") "," T("")), "t.json: tool 't': name: a second tool of that name"},
    {FILE_OF("{\"name\":\"a b\"}"), "t.json: tool 'tools[0]': name: 'a b': expected 1-64 of "
                                    "a-z A-Z 0-9 _ -"},
    {FILE_OF("{\"name\":\"t\",\"description\":\"d\",\"parameters\":{\"type\":\"object\","
             "\"properties\":{\"id\":{\"type\":\"text\"}}}}"),
     "t.json: tool 't': parameters.properties.id.type: expected a type name (object, string, "
     "integer, number, boolean, array, null) or a non-empty array of them"},
    {FILE_OF("{\"name\":\"t\",\"description\":\"d\",\"parameters\":{\"type\":\"string\"}}"),
     "t.json: tool 't': parameters: expected a schema with \"type\": \"object\""},
    {FILE_OF("{\"name\":\"t\",\"description\":\"d\",\"parameters\":{\"type\":\"object\"},"
             "\"http\":{\"method\":\"GET\",\"path\":\"/p/{sku}\"}}"),
     "t.json: tool 't': http.path: placeholder {sku} is not a parameter"},
    {FILE_OF("{\"name\":\"t\",\"description\":\"d\",\"parameters\":{\"type\":\"object\","
             "\"properties\":{\"sku\":{\"type\":\"string\"}}},"
             "\"http\":{\"method\":\"GET\",\"path\":\"/p/{sku}\"}}"),
     "t.json: tool 't': http.path: placeholder {sku} must be a required parameter"},
    {FILE_OF("{\"name\":\"t\",\"description\":\"d\",\"parameters\":{\"type\":\"object\"},"
             "\"http\":{\"method\":\"PUT\",\"path\":\"/p\"}}"),
     "t.json: tool 't': http.method: expected \"GET\" or \"POST\""},
    {FILE_OF("{\"name\":\"t\",\"description\":\"d\",\"parameters\":{\"type\":\"object\"},"
             "\"http\":{\"method\":\"GET\",\"path\":\"p\"}}"),
     "t.json: tool 't': http.path: expected a path starting with '/' (no spaces or '#')"},
    {FILE_OF("{\"name\":\"t\",\"description\":\"d\",\"parameters\":{\"type\":\"object\"},"
             "\"http\":{\"method\":\"GET\",\"path\":\"/p\",\"headers\":{\"X-Key\":{\"env\":"
             "\"TEST_TOOL_UNSET\"}}}}"),
     "t.json: tool 't': http.headers.X-Key: environment variable TEST_TOOL_UNSET is not set"},
    {FILE_OF("{\"name\":\"t\",\"description\":\"d\",\"parameters\":{\"type\":\"object\"},"
             "\"http\":{\"method\":\"GET\",\"path\":\"/p\",\"base_url\":\"ftp://h\"}}"),
     "t.json: tool 't': http.base_url: 'ftp://h' does not start with http:// or https://"},
    {FILE_OF(T(",\"result\":{\"items\":\"results\"}")),
     "t.json: tool 't': result.items: expected a JSON Pointer (\"/results\")"},
    {FILE_OF(T(",\"result\":{\"keep\":[\"a..b\"]}")),
     "t.json: tool 't': result.keep: 'a..b' is not a dotted path"},
    {FILE_OF(T(",\"result\":{\"top\":1}")), "t.json: tool 't': result: unknown key 'top'"},
    {FILE_OF(T(",\"timeout_ms\":0")),
     "t.json: tool 't': timeout_ms: expected an integer 1..600000"},
    {FILE_OF(T(",\"retries\":9")), "t.json: tool 't': retries: expected an integer 0..5"},
    {FILE_OF("{\"name\":\"t\",\"parameters\":{\"type\":\"object\"}}"),
     "t.json: tool 't': description: expected a non-empty string"},
};

static void test_bad_files(void)
{
    char err[512];
    unsetenv("TEST_TOOL_UNSET");
    for (size_t i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
        struct tool_set *ts = parse(bad_files[i].text, err, sizeof(err));
        CHECKF(!ts && !strcmp(err, bad_files[i].err), "case %zu: '%s'", i, err);
        tool_set_free(ts);
    }
}

static void test_args_and_calls(json_doc *d)
{
    char err[512];
    struct buf url = {0}, body = {0};
    setenv("TEST_TOOL_TOKEN", "x", 1);
    struct tool_set *ts = parse(FILE_OF(OFFERS "," SEARCH "," NOTE), err, sizeof(err));
    CHECKF(ts != NULL, "%s", err);
    if (!ts)
        return;
    const struct tool_def *o = tool_set_at(ts, 0), *s = tool_set_at(ts, 1), *n = tool_set_at(ts, 2);
    static const char bad_pin[] = "{\"id\":\"P1\",\"pincode\":\"056001\"}";
    CHECK(tool_check_args(o, d, bad_pin, sizeof(bad_pin) - 1, err, sizeof(err)) == -EINVAL &&
          !strcmp(err, "get_offers: pincode: expected a string matching ^[1-9][0-9]{5}$"));
    CHECK(tool_check_args(o, d, "{\"id\":", 6, err, sizeof(err)) == -EINVAL &&
          !strcmp(err, "get_offers: arguments are not valid JSON"));
    CHECK(tool_check_args(o, d, NULL, 0, err, sizeof(err)) == -EINVAL &&
          !strcmp(err, "get_offers: id: missing (required)"));

    static const char ok[] = "{\"pincode\":\"560001\",\"id\":\"P 1/\xc3\xa9\",\"express\":true}";
    CHECK(tool_check_args(o, d, ok, sizeof(ok) - 1, err, sizeof(err)) == 0);
    CHECK(tool_build_call(o, d, &url, &body, err, sizeof(err)) == 0 &&
          buf_is(&url, "http://127.0.0.1:9/catalog/products/P%201%2F%C3%A9/offers?"
                       "pincode=560001&express=true") &&
          buf_size(&body) == 0);

    static const char q[] = "{\"limit\":5,\"brand\":null,\"q\":\"red & blue=shoes?\","
                            "\"max_price\":2000}";
    buf_reset(&url);
    CHECK(tool_check_args(s, d, q, sizeof(q) - 1, err, sizeof(err)) == 0);
    CHECK(tool_build_call(s, d, &url, &body, err, sizeof(err)) == 0 &&
          buf_is(&url, "http://127.0.0.1:9/search?v=2&q=red%20%26%20blue%3Dshoes%3F"
                       "&max_price=2000&limit=5"));

    static const char note[] = "{\"text\":\"hi\\n\"}";
    buf_reset(&url);
    CHECK(tool_check_args(n, d, note, sizeof(note) - 1, err, sizeof(err)) == 0);
    CHECK(tool_build_call(n, d, &url, &body, err, sizeof(err)) == 0 &&
          buf_is(&url, "http://notes.test/notes") && buf_is(&body, note));
    buf_free(&url);
    buf_free(&body);
    tool_set_free(ts);
}

static void test_shape(json_doc *d)
{
    char err[512];
    struct buf out = {0};
    setenv("TEST_TOOL_TOKEN", "x", 1);
    struct tool_set *ts = parse(FILE_OF(OFFERS "," SEARCH "," NOTE), err, sizeof(err));
    if (!ts)
        return;
    const struct tool_def *o = tool_set_at(ts, 0), *s = tool_set_at(ts, 1), *n = tool_set_at(ts, 2);
    static const char res[] =
        "{\"total\": 3, \"results\": [\n"
        " {\"id\": \"A\", \"title\": \"x\", \"specs\": {\"battery_mah\": 5000, \"ram\": 8}},\n"
        " {\"id\": \"B\", \"specs\": {}},\n"
        " {\"id\": \"C\", \"specs\": {\"battery_mah\": 4000}}]}";
    tool_shape(s, d, res, sizeof(res) - 1, &out); /* top_k 2, kept fields flat, minified */
    CHECKF(buf_is(&out, "[{\"id\":\"A\",\"specs.battery_mah\":5000},{\"id\":\"B\"}]"), "%.*s",
           (int)buf_size(&out), bstr(&out));
    buf_reset(&out);
    static const char big[] =
        "{\"results\":[{\"id\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"},"
        "{\"id\":\"BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\"}]}";
    tool_shape(s, d, big, sizeof(big) - 1, &out); /* max_bytes 80: whole items only */
    CHECKF(buf_is(&out, "[{\"id\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]"), "%.*s",
           (int)buf_size(&out), bstr(&out));
    buf_reset(&out);
    static const char obj[] = "{ \"a\" : [1, 2] }";
    tool_shape(o, d, obj, sizeof(obj) - 1, &out); /* no shaper: the body, minified */
    CHECK(buf_is(&out, "{\"a\":[1,2]}"));
    buf_reset(&out);
    static const char text[] = "abc\xc3\xa9 is not JSON at all";
    tool_shape(n, d, text, sizeof(text) - 1, &out); /* max_bytes 16: cut on a UTF-8 boundary */
    CHECKF(buf_is(&out, "abc [truncated]"), "'%.*s'", (int)buf_size(&out), bstr(&out));
    buf_reset(&out);
    tool_shape(n, d, "short", 5, &out);
    CHECK(buf_is(&out, "short"));
    buf_free(&out);
    tool_set_free(ts);
}

int main(void)
{
    json_doc *d = json_doc_create();
    test_reference_file();
    test_load();
    test_bad_files();
    test_args_and_calls(d);
    test_shape(d);
    json_doc_destroy(d);
    return tap_done();
}
