/* answer_cache.h - the answer-cache seam: an ordered list of cache layers (exact first, semantic
 * second) consulted before the answering model call of a cacheable route, and offered the
 * finished answer after it. See docs/caching.md.
 *
 * A layer is a small vtable (as h2o's handlers): lookup (asynchronous: it may read PostgreSQL or
 * call an embeddings endpoint; its answer comes from the loop, never from inside the call), cancel,
 * offer, and a per-worker state created on the worker thread. The seam runs the layers one after
 * another until one hits, bounds each lookup with a deadline (a late layer counts as a miss),
 * and counts hits and misses per layer (cache_stats.h); a layer counts its own guard refusals
 * and bytes.
 *
 * The plan (agent_plan.c) decides what is cacheable (the route's `cacheable`, single-shot
 * context or a context hash in the key) and what may be offered (a complete answer: never an
 * error, a truncated, cancelled or flagged one); it streams a hit as deltas, sets turn_end's
 * "cache", and writes the hit's cache_saving ledger line. */
#ifndef TRILEMMA_ORCHESTRATOR_ANSWER_CACHE_H
#define TRILEMMA_ORCHESTRATOR_ANSWER_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/loop.h"
#include "orchestrator/cache_stats.h"
#include "stream/http_client.h"
#include "stream/llm.h"

struct store;

#define AC_MAX_LAYERS 4

/* What a layer sees of a cacheable turn. */
struct ac_query {
    const char *text; /* the user's message as sent */
    size_t len;
    const char *query_type;     /* "policy" */
    const char *agent;          /* the agent that would answer */
    const char *prompt_version; /* its prompt's version (12 hex digits) */
    const char *model;          /* "provider/model" the first call would use */
    char context_hash[65];      /* SHA-256 (hex) of what reaches the model besides the system
                                   prompt and the message: other context messages, the slate
                                   note, the tool exchange so far, the tool schemas */
    bool single_shot;           /* nothing but the system prompt and the message reach the model */
    bool cacheable;             /* the route's `cacheable` */
    uint32_t ttl_s;             /* the route's cache_ttl_s */
    int64_t now_unix_ms;
    struct store *store; /* the worker's store: NULL = no database */
    const char *currency;
};

/* A hit (valid during the callback only). */
struct ac_hit {
    const char *text;
    size_t len;
    int64_t cost_micros; /* what producing the answer cost when it was made */
};

/* A clean finished answer offered to every layer. */
struct ac_answer {
    const char *text;
    size_t len;
    int64_t cost_micros; /* what the turn's calls after routing cost */
};

/* A layer's answer to a lookup: hit NULL = miss. */
typedef void (*ac_found_fn)(void *ctx, const struct ac_hit *hit);

struct ac_layer_ops {
    enum cache_layer layer;
    /* Per-worker state, on the worker thread; conf is the registration's (read-only). */
    void *(*create)(const void *conf, struct loop *l, struct hc *hc);
    void (*destroy)(void *state);
    /* Whether the layer serves q at all (its own opt-in per query type); NULL = the route's
     * `cacheable` decides. A layer that does not want q is neither asked nor offered (and no miss
     * is counted for it). */
    bool (*wants)(void *state, const struct ac_query *q);
    /* Start a lookup of q (valid during the call only: copy what is kept). fn runs exactly
     * once, from the loop and never inside lookup, unless cancel is called first. Returns a
     * handle for cancel (never NULL). */
    void *(*lookup)(void *state, const struct ac_query *q, ac_found_fn fn, void *ctx);
    void (*cancel)(void *state, void *op);
    /* Keep a (if the layer wants it) under q; both valid during the call only. */
    void (*offer)(void *state, const struct ac_query *q, const struct ac_answer *a);
};

/* One layer as configured (app/orch_setup.c): its vtable and its read-only configuration. */
struct ac_layer_reg {
    const struct ac_layer_ops *ops;
    const void *conf;
};

struct answer_cache;
struct ac_lookup;

/* The worker's layers, in the order of regs[0..n) (each layer's create is called here).
 * lookup_timeout_ms bounds each layer's lookup. Never NULL. */
struct answer_cache *answer_cache_create(const struct ac_layer_reg *regs, int n,
                                         uint32_t lookup_timeout_ms, struct loop *l, struct hc *hc);
/* No lookup may be pending. NULL is a no-op. */
void answer_cache_destroy(struct answer_cache *ac);
int answer_cache_layers(const struct answer_cache *ac);

/* Whether any layer wants q (see ac_layer_ops.wants). */
bool answer_cache_wants(const struct answer_cache *ac, const struct ac_query *q);

/* layer: the layer that hit (hit valid during the call), or -1 with hit NULL (every layer
 * missed). The lookup is freed after the call. */
typedef void (*ac_result_fn)(void *ctx, int layer, const struct ac_hit *hit);

/* Consult the layers that want q in order (q is copied); at least one does
 * (answer_cache_wants). fn runs once, from the loop. */
struct ac_lookup *answer_cache_lookup(struct answer_cache *ac, const struct ac_query *q,
                                      ac_result_fn fn, void *ctx);
/* fn will not run; the layer's pending lookup is cancelled. NULL is a no-op. */
void answer_cache_cancel(struct ac_lookup *lk);
/* Offer a clean finished answer to every layer. */
void answer_cache_offer(struct answer_cache *ac, const struct ac_query *q,
                        const struct ac_answer *a);

/* An owned deep copy of q (its strings too); free with ac_query_free. */
struct ac_query *ac_query_dup(const struct ac_query *q);
void ac_query_free(struct ac_query *q);

/* The context hash of a request: every message but msgs[skip_system] (the system prompt: the
 * prompt version covers it) and msgs[user] (the message: the layers key on it themselves), and
 * every tool offered. single_shot: no such other message. */
void ac_context_hash(const struct llm_message *msgs, size_t n, size_t system, size_t user,
                     const struct llm_tool *tools, size_t n_tools, char out[65], bool *single_shot);

/* Where the delta that starts at text[off] ends: a few words (about 24 bytes), never inside a
 * UTF-8 sequence, so that a cached answer streams like a model's. Returns len at the end. */
size_t ac_chunk_end(const char *text, size_t len, size_t off);

#endif
