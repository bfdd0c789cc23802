/* prices.h - the versioned price table (config/prices.csv) and exact cost arithmetic.
 *
 * Prices are parsed from decimal text into integer micro-units per million tokens, and costs are
 * computed in 128-bit integers with one rounding (half up) at the end: no floating point touches
 * money. */
#ifndef TRILEMMA_ORCHESTRATOR_PRICES_H
#define TRILEMMA_ORCHESTRATOR_PRICES_H

#include <stddef.h>
#include <stdint.h>

#include "stream/llm.h"

struct price {
    char provider[16];
    char model[128];
    char tier[16];
    char effective_from[11]; /* YYYY-MM-DD */
    char currency[4];        /* "USD" or "INR" */
    int64_t input;           /* micro-units of currency per million tokens */
    int64_t cached_input;
    int64_t cache_write;
    int64_t output;
};

struct price_table;

/* Load the CSV (header comments start with '#'). Returns NULL with a message naming the line
 * on a malformed file. */
struct price_table *prices_load(const char *path, char *err, size_t errlen);
void prices_free(struct price_table *t);
size_t prices_count(const struct price_table *t);
const struct price *prices_at(const struct price_table *t, size_t i);

/* The price in force on `date` (YYYY-MM-DD; NULL = today, UTC) for provider/model at tier
 * ("standard": pay-as-you-go, "provisioned": a capacity deployment's per-token price; NULL =
 * "standard"): the exact model name, else the longest listed name that prefixes it (dated
 * snapshots such as "gpt-4.1-mini-2025-04-14"). NULL when unpriced at that tier. */
const struct price *prices_find(const struct price_table *t, const char *provider,
                                const char *model, const char *tier, const char *date);

/* Parse a non-negative decimal ("0.075", "84", "84.50") into millionths. -1 if malformed or
 * more than six decimals. */
int64_t prices_parse_micros(const char *s, size_t len);

/* Cost of usage at price p in micro-units of `currency` ("INR" or "USD"), converting with
 * usd_to_inr_micros (INR micro-units per USD) when the currencies differ. Normalized usage:
 * uncached input = input - cached_input - cache_write; reasoning is billed inside output. */
int64_t prices_cost(const struct price *p, const struct llm_usage *u, const char *currency,
                    int64_t usd_to_inr_micros);

#endif
