/* semcache.h - the semantic cache (issue 13 item 3): an answer given to one question is served
 * again for a paraphrase of it. See docs/caching.md "Semantic cache".
 *
 * A question's embedding comes from an OpenAI-compatible POST /v1/embeddings (on the worker's
 * curl multi, with a deadline: a failure or a late answer is a miss, never an error). The process
 * keeps one vector index (semcache_index.h, exact cosine search, bounded), shared by its workers
 * under a read-write lock, and persisted in PostgreSQL (store/semcache_store.h): a process warms
 * from the table at its first lookup and then reads what other pods wrote, every sync interval.
 *
 * A hit needs: the same partition (query type, agent, prompt version, model, catalog version and
 * embeddings model: a new prompt or catalog version never reads old answers), a similarity at or
 * above the query type's threshold (types without one are not cached), a single-shot question
 * (nothing of the conversation reached the model: the caller says), and the guard's consent
 * (semcache_guard.h: numbers, names, negations and comparators must agree), counted by reason
 * when it refuses. */
#ifndef TRILEMMA_ORCHESTRATOR_SEMCACHE_H
#define TRILEMMA_ORCHESTRATOR_SEMCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/loop.h"
#include "orchestrator/semcache_guard.h"
#include "stream/http_client.h"

struct store;

enum { SEMCACHE_MAX_TYPES = 16 };

struct semcache_type {
    char type[32];   /* a query type: "policy" */
    float threshold; /* cosine similarity a hit needs, (0, 1] */
};

/* Filled by app/ from [cache] and the agents file's `semantic_threshold` per route. Strings are
 * copied by semcache_create. */
struct semcache_conf {
    const char *embeddings_url;   /* the endpoint itself: "http://host:port/v1/embeddings" */
    const char *embeddings_model; /* sent as "model"; part of every key */
    const char *embeddings_key;   /* "" = no Authorization header */
    uint32_t timeout_ms;          /* one embeddings request, connect included */
    uint32_t max_entries;         /* the process's index */
    uint32_t sync_ms;             /* how often a process reads what other pods wrote */
    const char *catalog_version;  /* part of every key: a new catalog never reads old answers */
    struct semcache_type types[SEMCACHE_MAX_TYPES];
    int n_types;
};

struct semcache;        /* the process's cache: thread-safe */
struct semcache_worker; /* a worker's side: its loop, HTTP client, pending operations */
struct semcache_op;

/* The process's cache (NULL when no type has a threshold or no URL is set). */
struct semcache *semcache_create(const struct semcache_conf *c);
void semcache_destroy(struct semcache *sc);

/* The threshold of query type t, 0 when the type is not cached. */
float semcache_threshold(const struct semcache *sc, const char *t);

/* A worker's side, created and used on that worker's thread. */
struct semcache_worker *semcache_worker_create(struct semcache *sc, struct loop *l, struct hc *hc);
/* Cancels what is pending (no callback runs). NULL is a no-op. */
void semcache_worker_destroy(struct semcache_worker *w);

/* What an answer was given for, besides the question. */
struct semcache_key {
    const char *query_type, *agent, *prompt_version, *model;
};

struct semcache_hit {
    const char *answer; /* valid during the callback only */
    size_t len;
    int64_t cost_micros; /* what the answer cost when it was made */
    const char *currency;
    float similarity;
};

/* hit NULL = a miss. */
typedef void (*semcache_fn)(void *ctx, const struct semcache_hit *hit);

/* Look the question text[0..len) up (everything is copied). st: the worker's store, NULL without a
 * database (then nothing is warmed or shared). fn runs exactly once from the loop, never inside
 * this call, unless semcache_cancel is called first. Never NULL. */
struct semcache_op *semcache_lookup(struct semcache_worker *w, struct store *st,
                                    const struct semcache_key *k, const char *text, size_t len,
                                    int64_t now_unix_ms, semcache_fn fn, void *ctx);
/* fn will not run. NULL is a no-op. */
void semcache_cancel(struct semcache_op *op);

/* Keep answer[0..alen) for the question (everything is copied), for ttl_s seconds: at once when
 * the question's embedding is known from its lookup, else after an embeddings request. Nothing is
 * kept for a type without a threshold or an empty answer. */
void semcache_offer(struct semcache_worker *w, struct store *st, const struct semcache_key *k,
                    const char *text, size_t len, const char *answer, size_t alen,
                    int64_t cost_micros, const char *currency, uint32_t ttl_s, int64_t now_unix_ms);

struct semcache_stats {
    uint64_t lookups, hits, below_threshold, embed_failures;
    uint64_t refusals[SG_NAME + 1]; /* by guard verdict ([SG_SAME] unused) */
    uint64_t entries, bytes;
};

/* The counters so far (relaxed reads: for /metrics and tests). */
void semcache_get_stats(const struct semcache *sc, struct semcache_stats *out);

/* The partition key of k under sc's catalog version and embeddings model: 16 hex digits. */
void semcache_part(const struct semcache *sc, const struct semcache_key *k, char out[17]);

#endif
