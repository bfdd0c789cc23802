/* sim_catalog.h - the commerce world of trilemma-sim: products, policies and orders loaded from
 * the generated catalog (loadtest/sim/catalog/catalog.jsonl, one JSON object per line), and the
 * word-matching product search behind GET /catalog/search.
 *
 * Loaded once before the workers start and read-only afterwards, so every worker searches it
 * without locks. The JSON of each record is kept as it was read and served as is. */
#ifndef TRILEMMA_SIM_CATALOG_H
#define TRILEMMA_SIM_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sim_catalog;

struct sim_product {
    const char *id, *category, *brand, *title; /* NUL-terminated, owned by the catalog */
    int64_t price;                             /* INR, whole rupees */
    double rating;
    const char *json; /* the whole record */
    size_t json_len;
    const char *summary; /* {id,title,brand,category,price,mrp,currency,rating,...,key_specs} */
    size_t summary_len;
    uint32_t word_off, nwords; /* into the catalog's word table */
};

enum sim_sort { SIM_SORT_RELEVANCE, SIM_SORT_PRICE_ASC, SIM_SORT_PRICE_DESC, SIM_SORT_RATING };

struct sim_search {
    const char *q;        /* words; "" = any */
    const char *category; /* "" = any; singular or plural ("phone" = "phones") */
    const char *brand;    /* "" = any; case-insensitive */
    int64_t min_price;    /* -1 = none */
    int64_t max_price;    /* -1 = none */
    enum sim_sort sort;
    uint32_t limit;
};

/* Load the catalog at path. Returns NULL with a message in err on failure (unreadable file, a
 * line that is not a valid record, no products). */
struct sim_catalog *sim_catalog_load(const char *path, char *err, size_t errcap);
void sim_catalog_destroy(struct sim_catalog *c);

uint32_t sim_catalog_nproducts(const struct sim_catalog *c);
uint32_t sim_catalog_norders(const struct sim_catalog *c);

/* Lookups by id; NULL when absent. The JSON stays owned by the catalog. */
const struct sim_product *sim_catalog_product(const struct sim_catalog *c, const char *id);
const char *sim_catalog_order(const struct sim_catalog *c, const char *id, size_t *len);
/* A policy by topic (case-insensitive; "return" = "returns"). */
const char *sim_catalog_policy(const struct sim_catalog *c, const char *topic, size_t *len);
/* The policy topics, i = 0.. until NULL. */
const char *sim_catalog_policy_topic(const struct sim_catalog *c, uint32_t i);

/* Search: the products matching every filter and every query word that the catalog knows
 * (words found in no product are dropped, so "big battery phone" means "battery phone"; words
 * such as "under" or "best" are ignored), ranked by s->sort. Writes up to cap products to out;
 * returns how many matched in all. */
uint32_t sim_catalog_search(const struct sim_catalog *c, const struct sim_search *s,
                            const struct sim_product **out, uint32_t cap);

/* Normalise a word for matching: ASCII lower case, a plural "s" dropped ("phones" -> "phone"),
 * a few synonyms ("mobile" -> "phone"). Writes at most cap - 1 bytes + NUL; returns the length. */
size_t sim_catalog_norm_word(const char *w, size_t n, char *out, size_t cap);
/* True for words that carry no product meaning ("best", "under", "with", ...). */
bool sim_catalog_stopword(const char *w);

#endif
