/* sim_agent_int.h - what the agent's two halves share: the tool results of the current turn as
 * read from a request (sim_agent.c) and the grounded answer written from them
 * (sim_agent_reply.c). Private to loadtest/sim. */
#ifndef TRILEMMA_SIM_AGENT_INT_H
#define TRILEMMA_SIM_AGENT_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "loadtest/sim/sim_intent.h"
#include "stream/json.h"

enum { AG_MAX_PRODUCTS = 12, AG_MAX_DETAILS = 4, AG_MAX_SPECS = 14, AG_STR = 200 };

enum ag_mistake { AG_OK, AG_WRONG_PRODUCT, AG_WRONG_NUMBER, AG_NO_TABLE };

struct ag_product {
    char id[24], title[AG_STR], brand[48];
    int64_t price; /* -1 = unknown */
    double rating; /* 0 = unknown */
    int nspecs;
    char spec_k[AG_MAX_SPECS][32];  /* label, e.g. "Battery" */
    char spec_v[AG_MAX_SPECS][96];  /* value with its unit, e.g. "6000 mAh" */
    char spec_id[AG_MAX_SPECS][24]; /* which asked-about spec it answers ("battery", ...) */
    int64_t warranty_months;        /* top-level fields of a product, -1 = not given */
};

struct ag_results {
    bool any;                                 /* at least one tool result in this turn */
    bool searched;                            /* a search result (possibly empty) */
    struct ag_product found[AG_MAX_PRODUCTS]; /* search results, in order */
    int nfound;
    struct ag_product detail[AG_MAX_DETAILS]; /* get_product results */
    int ndetail;
    bool offer; /* pincode, title and product id may be missing from a shaped result */
    char offer_pin[8], offer_title[AG_STR], offer_pid[24];
    int64_t offer_price, offer_fee;
    bool offer_stock, offer_cod, offer_express;
    int64_t offer_dmin, offer_dmax;
    bool policy;
    char policy_title[64], policy_text[1024];
    bool order;
    char order_id[16], order_status[32], order_expected[16], order_delivered[16], order_carrier[32];
    char order_items[3][AG_STR];
    int norder_items;
    int64_t order_total;
    bool error;
    char error_msg[AG_STR];
    int ncalls_made[5]; /* calls of this turn by tool: search, product, offers, policy, order */
};

/* Read one tool result text into res (JSON in any of the API's shapes, possibly wrapped once
 * in {"result": ...}; other text only counts when it reports a failure). */
void ag_read_result(struct ag_results *res, json_doc *aux, const char *text, size_t len);

/* The grounded answer text for intent it from res, with mistake m written in on purpose. */
void ag_reply(struct buf *out, const struct sim_intent *it, const struct ag_results *res,
              enum ag_mistake m);

/* A shop assistant's short reply to small talk or to what it cannot serve without tools:
 * greeting, thanks, "who are you", goodbye, a shopping request (shop: ask what they need) or
 * anything else; one of a few templates per kind, chosen by pick. */
void ag_chat_reply(struct buf *out, const char *text, size_t n, bool shop, uint64_t pick);

/* ₹ and Indian digit grouping: 104990 -> "₹1,04,990". */
void ag_inr(struct buf *out, int64_t v);

#endif
