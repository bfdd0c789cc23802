/* test_slate.c - product slates read from commerce API results of several shapes. */
#include <string.h>

#include "orchestrator/slate.h"
#include "tests/tap.h"

static void test_shapes(json_doc *d)
{
    struct slate s = {0};
    const char *search = "{\"q\":\"phone\",\"total\":2,\"results\":["
                         "{\"id\":\"P1\",\"title\":\"Nova X\",\"brand\":\"Nova\",\"price\":18999,"
                         "\"currency\":\"INR\",\"rating\":4.3,\"image\":\"/catalog/images/P1.svg\","
                         "\"key_specs\":[\"6000 mAh\",\"6.7\\\" 120 Hz\",\"8 GB\",\"128 GB\"]},"
                         "{\"title\":\"no id: skipped\"},"
                         "{\"id\":\"P2\",\"name\":\"Zen Lite\",\"price\":{\"value\":12999.5}}]}";
    CHECK(slate_add_result(&s, d, search, strlen(search), 5, "http://api.example:8090/") == 2);
    CHECK(s.n == 2 && !strcmp(s.items[0].id, "P1") && !strcmp(s.items[1].title, "Zen Lite"));
    CHECK(!strcmp(s.items[0].image, "http://api.example:8090/catalog/images/P1.svg"));
    CHECK(s.items[0].n_specs == 3 && !strcmp(s.items[0].specs[1], "6.7\" 120 Hz"));
    CHECK(s.items[1].price_micros == 12999500000 && s.items[1].rating < 0);
    /* the same product again is not added twice; a single product object is one item */
    const char *one = "{\"id\":\"P1\",\"title\":\"Nova X\"}";
    CHECK(slate_add_result(&s, d, one, strlen(one), 5, NULL) == 0);
    const char *prod = "{\"id\":\"P3\",\"title\":\"Orbit\",\"image\":\"https://cdn/x.png\","
                       "\"specs\":{\"battery_mah\":5000,\"display\":\"6.1-inch\",\"ram\":\"6 GB\","
                       "\"storage\":\"128 GB\"}}";
    CHECK(slate_add_result(&s, d, prod, strlen(prod), 5, "http://api") == 1);
    CHECK(!strcmp(s.items[2].image, "https://cdn/x.png")); /* absolute: kept */
    CHECK(s.items[2].n_specs == 3 && !strcmp(s.items[2].specs[0], "battery mah: 5000"));
    struct buf out = {0};
    slate_to_json(&s, &out);
    buf_append(&out, "", 1); /* a C string for strstr */
    out.len--;
    CHECKF(strstr(buf_begin(&out), "\"price\":12999.50") != NULL, "%.*s", (int)buf_size(&out),
           buf_begin(&out));
    CHECK(strstr(buf_begin(&out), "\"price\":18999,") != NULL);
    CHECK(json_doc_load(d, buf_begin(&out), buf_size(&out)) == 0); /* valid JSON */
    buf_free(&out);
}

static void test_not_products(json_doc *d)
{
    struct slate s = {0};
    const char *bad[] = {"not json", "{\"error\":{\"code\":404}}", "[1,2,3]", "\"text\"",
                         "{\"results\":[{\"id\":\"x\"}]}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECKF(slate_add_result(&s, d, bad[i], strlen(bad[i]), 5, NULL) == 0, "%s", bad[i]);
    CHECK(s.n == 0);
    /* at most max items */
    char many[2048] = "[";
    for (int i = 0; i < 12; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many),
                 "%s{\"id\":\"%d\",\"title\":\"t\"}", i ? "," : "", i);
    strcat(many, "]");
    CHECK(slate_add_result(&s, d, many, strlen(many), 5, NULL) == 5 && s.n == 5);
}

int main(void)
{
    json_doc *d = json_doc_create();
    test_shapes(d);
    test_not_products(d);
    json_doc_destroy(d);
    return tap_done();
}
