/* test_sim_intent.c - the simulated agents' decision logic without sockets: how a message is
 * read into a query type and tool slots (loadtest/sim/sim_intent.c), word normalisation for the
 * catalog search, and how prices are written (₹ with Indian digit grouping). */
#include <string.h>

#include "base/buf.h"
#include "loadtest/sim/sim_agent_int.h"
#include "loadtest/sim/sim_catalog.h"
#include "loadtest/sim/sim_intent.h"
#include "tests/tap.h"

static struct sim_intent read_it(const char *text)
{
    struct sim_intent it;
    sim_intent_read(text, strlen(text), &it);
    return it;
}

static void budgets(void)
{
    struct sim_intent it = read_it("best phone under 20000 with a big battery");
    CHECK(it.type == SIM_Q_PRODUCT_SEARCH && it.max_price == 20000 && it.min_price == -1);
    CHECK(strcmp(it.category, "phones") == 0 && strcmp(it.spec, "battery") == 0);
    CHECKF(strcmp(it.query, "phone battery") == 0, "query '%s'", it.query);
    CHECK(read_it("laptop below ₹55,000").max_price == 55000);
    CHECK(read_it("shoes under 2k").max_price == 2000);
    CHECK(read_it("laptops up to 1.5 lakh").max_price == 150000);
    CHECK(read_it("headphones less than rs. 3000").max_price == 3000);
    it = read_it("phones between 10000 and 15000");
    CHECK(it.min_price == 10000 && it.max_price == 15000);
    CHECK(read_it("jeans above 999").min_price == 999);
    /* a 6-digit budget is not a pincode; a 6-digit number alone is */
    it = read_it("laptops under 100000");
    CHECK(it.max_price == 100000 && it.pincode[0] == '\0');
    it = read_it("deliver P00002 to 560001");
    CHECK(strcmp(it.pincode, "560001") == 0 && it.nids == 1 && it.type == SIM_Q_PRODUCT_FACT);
    CHECK(read_it("ship to 056001").pincode[0] == '\0'); /* no pincode starts with 0 */
}

static void types(void)
{
    struct sim_intent it = read_it("where is my order 1234-5678?");
    CHECK(it.type == SIM_Q_ORDER_STATUS && strcmp(it.order_id, "1234-5678") == 0);
    /* written with a number sign, as shoppers copy it from an e-mail */
    it = read_it("when will my order #1254-8541 arrive");
    CHECK(it.type == SIM_Q_ORDER_STATUS && strcmp(it.order_id, "1254-8541") == 0);
    it = read_it("What is the return policy");
    CHECK(it.type == SIM_Q_POLICY && strcmp(it.topic, "returns") == 0);
    CHECK(strcmp(read_it("can I cancel it").topic, "cancellation") == 0);
    CHECK(strcmp(read_it("is cash on delivery possible").topic, "cod") == 0);
    it = read_it("compare p00001 and P00002");
    CHECK(it.type == SIM_Q_COMPARISON && it.nids == 2 && strcmp(it.ids[0], "P00001") == 0);
    it = read_it("compare the two cheapest");
    CHECK(it.type == SIM_Q_COMPARISON && strcmp(it.sort, "price_asc") == 0);
    CHECK(read_it("hello there!").type == SIM_Q_CHITCHAT);
    CHECK(read_it("what is the meaning of life").type == SIM_Q_OTHER);
    it = read_it("new balance running shoes");
    CHECK(strcmp(it.brand, "New Balance") == 0 && strcmp(it.category, "shoes") == 0);
    CHECK(strcmp(read_it("redmi mobiles").brand, "Xiaomi") == 0);
    CHECK(strcmp(read_it("top rated earbuds").sort, "rating") == 0);
    CHECK(strcmp(read_it("top rated earbuds").category, "headphones") == 0);
    /* "delivery" with a product is not the delivery policy */
    CHECK(read_it("delivery time for P00002 at 110001").type == SIM_Q_PRODUCT_FACT);
    CHECK(read_it("what is your delivery policy").type == SIM_Q_POLICY);
}

/* Yes/no feature questions and words about delivery (what a preloaded offer answers). */
static void features(void)
{
    struct sim_intent it = read_it("does it have 5G?");
    CHECK(strcmp(it.spec, "network") == 0 && strcmp(it.want, "5G") == 0 && !it.delivery);
    CHECK(strcmp(read_it("is it waterproof").spec, "water") == 0);
    CHECK(strcmp(read_it("what is the warranty?").spec, "warranty") == 0);
    CHECK(strcmp(read_it("what is the battery of the second one?").spec, "battery") == 0);
    static const char *const delivery[] = {
        "can it be delivered to 560001?", "is it in stock at 110001", "when will it arrive",
        "is COD available for 400001?",   "which sellers have it",    "what is the price today"};
    for (size_t i = 0; i < sizeof(delivery) / sizeof(delivery[0]); i++)
        CHECKF(read_it(delivery[i]).delivery, "'%s' is about delivery", delivery[i]);
    CHECK(!read_it("what is the battery of the second one?").delivery);
}

/* Small talk: one kind of reply per kind of message, whatever template is picked. */
static void small_talk(void)
{
    static const char *const same[][2] = {{"hi", "Hello there!"},
                                          {"thanks", "thank you so much"},
                                          {"who are you?", "what can you do"},
                                          {"bye", "goodbye, see you"}};
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        struct buf a = {0}, b = {0}, c = {0};
        ag_chat_reply(&a, same[i][0], strlen(same[i][0]), false, 7);
        ag_chat_reply(&b, same[i][1], strlen(same[i][1]), false, 7);
        ag_chat_reply(&c, same[i][0], strlen(same[i][0]), false, 8);
        CHECKF(buf_size(&a) && buf_size(&a) == buf_size(&b) &&
                   memcmp(buf_begin(&a), buf_begin(&b), buf_size(&a)) == 0,
               "'%s' and '%s' get the same kind of reply", same[i][0], same[i][1]);
        CHECK(buf_size(&a) != buf_size(&c) || memcmp(buf_begin(&a), buf_begin(&c), buf_size(&a)));
        buf_free(&a);
        buf_free(&b);
        buf_free(&c);
    }
}

static void words(void)
{
    char w[48];
    CHECK(sim_catalog_norm_word("Phones", 6, w, sizeof(w)) == 5 && strcmp(w, "phone") == 0);
    sim_catalog_norm_word("earbuds", 7, w, sizeof(w));
    CHECK(strcmp(w, "headphone") == 0);
    sim_catalog_norm_word("glass", 5, w, sizeof(w));
    CHECK(strcmp(w, "glass") == 0);
    sim_catalog_norm_word("this", 4, w, sizeof(w));
    CHECK(strcmp(w, "this") == 0);
    CHECK(sim_catalog_stopword("under") && !sim_catalog_stopword("battery"));
}

static void prices(void)
{
    static const struct {
        int64_t v;
        const char *want;
    } cases[] = {{0, "₹0"},
                 {499, "₹499"},
                 {1299, "₹1,299"},
                 {18999, "₹18,999"},
                 {104990, "₹1,04,990"},
                 {1234567, "₹12,34,567"},
                 {12345678, "₹1,23,45,678"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf b = {0};
        ag_inr(&b, cases[i].v);
        buf_append(&b, "", 1);
        CHECKF(strcmp(buf_begin(&b), cases[i].want) == 0, "%lld -> %s", (long long)cases[i].v,
               buf_begin(&b));
        buf_free(&b);
    }
}

int main(void)
{
    budgets();
    types();
    features();
    small_talk();
    words();
    prices();
    return tap_done();
}
