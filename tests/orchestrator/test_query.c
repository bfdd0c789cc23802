/* test_query.c - the rule-based classifier, slots, and the classifier route's JSON. */
#include <errno.h>
#include <string.h>

#include "orchestrator/query.h"
#include "tests/tap.h"

static struct query_guess classify(const char *s)
{
    struct query_guess g;
    query_classify_rules(s, strlen(s), &g);
    return g;
}

static void check_type(const char *s, enum query_type want)
{
    struct query_guess g = classify(s);
    CHECKF(g.type == want, "'%s': got %s, want %s", s, query_type_name(g.type),
           query_type_name(want));
    CHECK(g.from_rules);
    CHECK(g.confidence > 0 && g.confidence <= 1);
}

static void test_types(void)
{
    check_type("best phone under 20000 with a big battery", QT_PRODUCT_SEARCH);
    check_type("show me running shoes", QT_PRODUCT_SEARCH);
    check_type("laptops below ₹60,000", QT_PRODUCT_SEARCH);
    check_type("I need a gift for my dad, budget 5k", QT_PRODUCT_SEARCH);
    check_type("compare the two cheapest", QT_COMPARISON);
    check_type("Galaxy A15 vs Redmi 13C", QT_COMPARISON);
    check_type("which is better for gaming, the first or the second?", QT_COMPARISON);
    check_type("what is the return policy", QT_POLICY);
    check_type("How do refunds work?", QT_POLICY);
    check_type("can I cancel after it ships?", QT_POLICY);
    check_type("where is order 1234-5678", QT_ORDER_STATUS);
    check_type("track my order #98765432", QT_ORDER_STATUS);
    check_type("what's the status of my order?", QT_ORDER_STATUS);
    check_type("hi", QT_CHITCHAT);
    check_type("thank you so much!", QT_CHITCHAT);
    check_type("how big is the battery on the second one?", QT_PRODUCT_FACT);
    check_type("does it have 5G?", QT_PRODUCT_FACT);
    check_type("Tell me the sole of the second one?", QT_PRODUCT_FACT);
    check_type("what about the water resistance of the first?", QT_PRODUCT_FACT);
    check_type("can it be delivered to 560001 by friday", QT_PRODUCT_FACT);
    check_type("what is the meaning of life", QT_OTHER);
    check_type("", QT_OTHER);
}

static void test_slots(void)
{
    struct query_guess g = classify("best phone under 20000 with a big battery");
    CHECK(g.slots.max_price == 20000);
    CHECK(g.slots.min_price == -1);
    CHECKF(strcmp(g.query, "phone big battery") == 0, "query '%s'", g.query);
    g = classify("laptops below ₹60,000");
    CHECK(g.slots.max_price == 60000);
    g = classify("headphones under 2.5k");
    CHECK(g.slots.max_price == 2500);
    g = classify("shoes between 1000 and 3000");
    CHECK(g.slots.min_price == 1000 && g.slots.max_price == 3000);
    g = classify("a phone for Rs 15000");
    CHECK(g.slots.max_price == 15000);
    g = classify("tv under 1 lakh");
    CHECK(g.slots.max_price == 100000);
    g = classify("where is order 1234-5678");
    CHECK(strcmp(g.slots.order_id, "1234-5678") == 0);
    CHECK(g.slots.pincode[0] == '\0');
    g = classify("track my order #98765432");
    CHECK(strcmp(g.slots.order_id, "98765432") == 0);
    g = classify("can it be delivered to 560001 by friday");
    CHECK(strcmp(g.slots.pincode, "560001") == 0);
    CHECK(g.slots.order_id[0] == '\0');
    g = classify("phones under 200000"); /* a six-digit budget is not a pincode */
    CHECK(g.slots.pincode[0] == '\0' && g.slots.max_price == 200000);
    g = classify("what is the return policy");
    CHECK(strcmp(g.slots.topic, "returns") == 0);
    g = classify("warranty on laptops?");
    CHECK(strcmp(g.slots.topic, "warranty") == 0);
    /* a very long message is read up to its bound, never past it */
    char big[5000];
    memset(big, 'a', sizeof(big));
    query_classify_rules(big, sizeof(big), &g);
    CHECK(g.type == QT_OTHER);
    CHECK(strlen(g.query) < sizeof(g.query));
}

static void test_prefetch(void)
{
    const char *yes = "best phone under 20000 with a big battery";
    const char *no = "what is the return policy";
    CHECK(query_looks_like_search(yes, strlen(yes)));
    CHECK(!query_looks_like_search(no, strlen(no)));
    CHECK(!query_looks_like_search("hi", 2));
}

static void test_classifier_json(void)
{
    const char *text = "cheap laptops under 40k";
    struct query_guess g;
    char err[160];
    const char *ok = "{\"query_type\":\"product_search\",\"confidence\":0.82,\"query\":\"laptop\"}";
    CHECK(query_parse_classifier(ok, strlen(ok), text, strlen(text), &g, err, sizeof(err)) == 0);
    CHECK(g.type == QT_PRODUCT_SEARCH && !g.from_rules);
    CHECK(g.confidence > 0.81f && g.confidence < 0.83f);
    CHECK(strcmp(g.query, "laptop") == 0);
    CHECK(g.slots.max_price == 40000); /* slots come from the user's words */
    const char *bare = "{\"query_type\":\"policy\"}";
    CHECK(query_parse_classifier(bare, strlen(bare), text, strlen(text), &g, err, sizeof(err)) ==
          0);
    CHECK(g.type == QT_POLICY && g.confidence == 1.0f);

    struct query_guess before = g;
    static const struct {
        const char *json, *msg;
    } bad[] = {
        {"not json", "not a JSON object"},
        {"[1,2]", "not a JSON object"},
        {"{\"type\":\"policy\"}", "no query_type"},
        {"{\"query_type\":7}", "no query_type"},
        {"{\"query_type\":\"refund\"}", "'refund' is not a known type"},
        {"{\"query_type\":\"policy\",\"confidence\":1.5}", "confidence"},
        {"{\"query_type\":\"policy\",\"confidence\":\"high\"}", "confidence"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        int rc = query_parse_classifier(bad[i].json, strlen(bad[i].json), text, strlen(text), &g,
                                        err, sizeof(err));
        CHECKF(rc == -EINVAL && strstr(err, bad[i].msg), "%s -> %d '%s'", bad[i].json, rc, err);
        CHECK(memcmp(&g, &before, sizeof(g)) == 0); /* unchanged on error */
    }
}

static void test_product_kind(void)
{
    char k[24];
    CHECK(query_product_kind("compare the two cheapest laptops under 100000", 45, k, sizeof(k)));
    CHECK(strcmp(k, "laptop") == 0);
    CHECK(query_product_kind("Headphones with ANC", 19, k, sizeof(k)) && !strcmp(k, "headphone"));
    CHECK(!query_product_kind("compare the two cheapest", 24, k, sizeof(k)) && k[0] == '\0');
}

static void test_names(void)
{
    for (int t = 0; t < QT__COUNT; t++) {
        const char *n = query_type_name((enum query_type)t);
        CHECK(query_type_from_name(n, strlen(n)) == t);
    }
    CHECK(query_type_from_name("Policy", 6) == -1);
    CHECK(strcmp(query_type_name(QT__COUNT), "?") == 0);
}

int main(void)
{
    test_types();
    test_slots();
    test_prefetch();
    test_classifier_json();
    test_names();
    test_product_kind();
    return tap_done();
}
