/* query.h - what a user message asks for: the query type, the classifier's answer and the
 * built-in rule-based fallback.
 *
 * A turn is routed by its query type. The classifier route (a small model returning
 * constrained JSON) decides first; when it is slow, down or returns something that does not
 * parse, query_classify_rules() decides instead. The rules use only the shape of the language
 * (intent words, budgets, order numbers, pincodes), never a catalog's data, so they work for
 * any shop behind the same commerce API. Pure functions over plain structs: no I/O. */
#ifndef TRILEMMA_ORCHESTRATOR_QUERY_H
#define TRILEMMA_ORCHESTRATOR_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum query_type {
    QT_PRODUCT_SEARCH = 0,
    QT_PRODUCT_FACT,
    QT_COMPARISON,
    QT_POLICY,
    QT_ORDER_STATUS,
    QT_CHITCHAT,
    QT_OTHER,
    QT__COUNT,
};

/* "product_search", "product_fact", "comparison", "policy", "order_status", "chitchat",
 * "other"; "?" for a value out of range. */
const char *query_type_name(enum query_type t);
/* The type named by name[0..len) (exact, lowercase), or -1. */
int query_type_from_name(const char *name, size_t len);

/* What the words of the query say besides its type (empty / -1 when absent). */
struct query_slots {
    int64_t max_price; /* "under 20000", "below 20k", "within Rs 1,500": whole currency units */
    int64_t min_price; /* "above 5000", "over 10k" */
    char order_id[32]; /* "1234-5678", "#98765432": digits with at most two separators */
    char pincode[8];   /* six digits that are not part of a price or an order id */
    char topic[16]; /* policy topic: returns, refund, warranty, cancellation, delivery, payment */
};

struct query_guess {
    enum query_type type;
    float confidence; /* 0..1 */
    char query[256];  /* the query reformulated for search (filler and budget words removed) */
    struct query_slots slots;
    bool from_rules; /* decided by the built-in rules, not the classifier route */
};

/* Classify text[0..len) (UTF-8) by the built-in rules. Always fills out (QT_OTHER with a low
 * confidence when nothing matches). */
void query_classify_rules(const char *text, size_t len, struct query_guess *out);

/* True when the words look like a product search (intent words or a budget), so that the search
 * tool may be prefetched with the raw query while the classifier runs. */
bool query_looks_like_search(const char *text, size_t len);

/* The first kind of product the words name ("phones", "laptop", "shoes"...), lowercase, into
 * kind[0..cap), without a plural "s". Returns false (kind "") when none is named. */
bool query_product_kind(const char *text, size_t len, char *kind, size_t cap);

/* Parse the classifier route's answer: a JSON object {"query_type": NAME, "confidence": 0..1,
 * "query": TEXT} (the last two optional; extra members ignored). The slots are taken from the
 * user's own words (text[0..len)) by the rules. Returns 0, or -EINVAL with a message in err
 * (not JSON, no or unknown query_type, confidence out of range). out is unchanged on error. */
int query_parse_classifier(const char *json, size_t json_len, const char *text, size_t len,
                           struct query_guess *out, char *err, size_t errlen);

#endif
