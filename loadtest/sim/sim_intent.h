/* sim_intent.h - what a shopper's message asks, read the way a simple model would: the query
 * type (product_search, product_fact, comparison, policy, order_status, chitchat, other) with a
 * confidence, and the slots a tool call needs (category, brand, budget, pincode, order id,
 * product ids, policy topic, sort order, the spec asked about, a reformulated search query).
 *
 * Pure functions over text: the simulated agents (sim_agent.c) and the classifier tier use it.
 * Deterministic; nothing here depends on the catalog's data. */
#ifndef TRILEMMA_SIM_INTENT_H
#define TRILEMMA_SIM_INTENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sim_qtype {
    SIM_Q_PRODUCT_SEARCH,
    SIM_Q_PRODUCT_FACT,
    SIM_Q_COMPARISON,
    SIM_Q_POLICY,
    SIM_Q_ORDER_STATUS,
    SIM_Q_CHITCHAT,
    SIM_Q_OTHER,
    SIM_NQTYPES,
};

enum { SIM_INTENT_MAX_IDS = 4 };

struct sim_intent {
    enum sim_qtype type;
    double confidence;
    char category[16]; /* phones, laptops, headphones, shoes, clothing, or "" */
    char brand[32];
    int64_t max_price, min_price; /* -1 = not said */
    char pincode[8];
    char order_id[16];
    char topic[24];                   /* policy topic, e.g. "returns" */
    char ids[SIM_INTENT_MAX_IDS][16]; /* product ids such as P00012 */
    int nids;
    char sort[16];   /* "price_asc", "price_desc", "rating" or "" (relevance) */
    char spec[24];   /* the spec asked about: "battery", "display", "network", "warranty", ... */
    char want[8];    /* the value a yes/no spec question names: "5G" in "does it have 5G?" */
    char query[256]; /* the search words: content words of the message */
    bool cheapest;   /* "cheapest", "cheaper", "lowest price" */
    bool delivery;   /* about delivery, stock, availability, sellers or today's price */
};

/* Read text[0..n) (directives already removed) into *it. */
void sim_intent_read(const char *text, size_t n, struct sim_intent *it);

/* The type's name as the classifier spells it ("product_search", ...). */
const char *sim_qtype_name(enum sim_qtype t);

#endif
