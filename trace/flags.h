/* flags.h - anomaly flags computed on every turn (docs/tracing.md): pure functions over what the
 * turn did, stored with the turn (turns.flags) and counted in /metrics.
 *
 * Flags the plan raises as it runs (routing_loop, escalated:<reason>, narration_removed,
 * ungrounded_number, classifier_late) are joined here at the end of the turn by:
 *   silent_confabulation  a tool failed or returned nothing, and the answer still states prices
 *                         or specs without saying anything was unavailable
 *   slow_first_token      first token later than the query type's target
 *   cost_outlier          cost above factor x the median cost of the query type's recent turns
 *                         (kept per worker thread: each worker has its own window) */
#ifndef TRILEMMA_TRACE_FLAGS_H
#define TRILEMMA_TRACE_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trace/trace.h"

#define FLAG_COST_WINDOW 101 /* costs kept per query type */
#define FLAG_COST_TYPES 16
#define FLAG_COST_MIN_SAMPLES 20 /* no outlier verdict before this many turns of the type */

/* The last FLAG_COST_WINDOW costs of each query type (per worker; no locking). */
struct cost_windows {
    struct {
        char query_type[24];
        int64_t v[FLAG_COST_WINDOW];
        uint32_t n, next;
    } t[FLAG_COST_TYPES];
    uint32_t n_types;
};

/* What the flags look at. */
struct flag_turn {
    const char *query_type; /* "" = not routed */
    int64_t first_token_ms; /* -1: no token */
    int64_t cost_micros;
    const char *answer;
    size_t answer_len;
    uint32_t tools_failed; /* ended in error, timeout or invalid arguments */
    uint32_t tools_empty;  /* answered, but with nothing in it */
    bool error;            /* the turn ended with an error */
};

/* The first-token target of a query type (its own, else the default). */
uint32_t flags_ttft_target(const struct trace_conf *c, const char *query_type);
/* Prices or numbers with units in the answer (the grounding check's claims). */
bool flags_answer_states_facts(const char *answer, size_t len);
/* The answer says something could not be found or checked ("couldn't", "unavailable" ...). */
bool flags_answer_admits_failure(const char *answer, size_t len);
/* A tool result with nothing in it: empty, null, [], {}, or an object whose arrays are all
 * empty and that has no other member. */
bool flags_result_empty(const char *raw, size_t len);

/* The median of the type's window (0 with fewer than FLAG_COST_MIN_SAMPLES), then add cost. */
int64_t cost_windows_median(const struct cost_windows *w, const char *query_type);
void cost_windows_add(struct cost_windows *w, const char *query_type, int64_t cost);

/* The flags of turn t: add(ctx, name) for each (the caller de-duplicates). w may be NULL (no
 * cost flag); the turn's cost is added to it after the verdict. */
void flags_compute(const struct trace_conf *c, const struct flag_turn *t, struct cost_windows *w,
                   void (*add)(void *ctx, const char *flag), void *ctx);

/* The metric kind of a flag: its name up to ':' ("escalated:empty" -> "escalated"). */
void flags_kind(const char *flag, char out[32]);

#endif
