/* model_call.h - one model call as a unit: a list of routes tried in order, retries with backoff,
 * fallbacks, deadlines (connect, first token, stall), the provider's usage priced per HTTP
 * attempt, and a completion record with one ledger line per attempt.
 *
 * A route may be provisioned capacity (docs/routing.md, "Capacity tiers"): its attempts are
 * recorded and priced at its tier, and with overflow set a failure moves to the next route at
 * once instead of retrying.
 *
 * A call reports to an event sink (h2o-style: a small vtable and its context): text, reasoning,
 * complete tool calls and usage as they arrive, then exactly one completion. Who listens decides
 * what the output means: the client sink streams it (the answer), a buffering sink keeps it (a
 * classifier, a planner, a judge). The call may retry or fall back only while nothing it produced
 * is COMMITTED: it asks the sink (committed()), and a sink that had received output from an
 * abandoned attempt is told to discard it (on_reset) before the next attempt starts.
 *
 * The call runs on the worker's loop and HTTP client; it takes everything else by pointer (no
 * process-wide state, no application config). See docs/orchestrator.md. */
#ifndef TRILEMMA_ORCHESTRATOR_MODEL_CALL_H
#define TRILEMMA_ORCHESTRATOR_MODEL_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/loop.h"
#include "orchestrator/prices.h"
#include "store/turn_record.h"
#include "stream/http_client.h"
#include "stream/llm.h"

#define MODEL_CALL_MAX_ROUTES 8

/* Where a call can go: one provider, model, endpoint and key, and the capacity tier it bills.
 * A zeroed tier and deployment are the standard (pay-as-you-go) tier. */
struct model_route {
    enum llm_provider provider;
    char model[128];
    char base_url[512];  /* without a trailing '/' */
    const char *key;     /* "" for keyless OpenAI-compatible servers; must outlive the calls */
    char tier[16];       /* "provisioned" or "standard" ("" = standard): the price row's tier */
    char deployment[32]; /* tier provisioned: the agents file's [capacity NAME]; else "" */
    char region[32];     /* its region label, for traces ("" = none) */
    /* a failed attempt on this route is never retried on it: the next route follows at once,
     * without a backoff or a Retry-After wait (a provisioned deployment that is full or failing
     * overflows to pay-as-you-go) */
    bool overflow;
};

/* Deadlines and retries, in milliseconds. */
struct model_call_policy {
    uint32_t connect_timeout_ms;
    uint32_t first_token_timeout_ms; /* request sent -> first output */
    uint32_t stall_timeout_ms;       /* between received chunks once output flows */
    uint32_t max_retries;            /* per route */
    uint32_t retry_base_ms;          /* doubled per retry, +-50% jitter; Retry-After wins */
};

/* How attempts are priced: the price in force today for each route's provider/model. */
struct model_pricing {
    const struct price_table *prices; /* NULL: every attempt costs 0 */
    const char *currency;             /* "INR" / "USD" */
    int64_t usd_to_inr_micros;
};

/* Who watches a call's state machine (tracing): on_state runs on every change of state, with
 * the state names of model_call.c ("requested", "streaming", "backoff", "done", "failed",
 * "cancelled"), the route in use and its attempt number. It must not touch the call. */
struct model_call_observer {
    void (*on_state)(void *ctx, const char *from, const char *to, const struct model_route *r,
                     unsigned attempt);
    void *ctx;
};

/* What to call. Every pointer must stay valid until the completion (or model_call_cancel). */
struct model_call_spec {
    const struct model_route *routes; /* tried in order */
    int n_routes;
    const struct llm_request *request; /* its model is ignored: each route names its own */
    const struct model_call_policy *policy;
    const struct model_pricing *pricing;
    const char *role; /* ledger role of first attempts: "model", "classifier", "judge"...;
                       * later attempts are "retry" (same route) or "fallback" (next route) */
    const struct model_call_observer *observer; /* NULL: nobody watches */
    const char *traceparent; /* W3C traceparent value sent with every attempt; NULL/"": none */
};

/* A complete tool call of the response (arguments assembled: the whole JSON text). */
struct model_tool_call {
    int index; /* ordinal in this response */
    const char *id;
    const char *name;
    const char *arguments;
    size_t arguments_len;
};

enum model_outcome {
    MODEL_OK,        /* the provider finished the answer */
    MODEL_FAILED,    /* no route answered, or the answer broke after output was committed */
    MODEL_CANCELLED, /* model_call_cancel */
};

/* The completion record. Pointers are valid during on_complete only. */
struct model_result {
    enum model_outcome outcome;
    const char *finish;     /* MODEL_OK: the provider's "stop", "length", "tool_calls",
                             * "content_filter"; else "error" / "cancelled" */
    const char *error_type; /* MODEL_FAILED: e.g. "timeout", "rate_limit"; else NULL */
    /* MODEL_FAILED: what went wrong, with the provider's own text ("HTTP 401: Incorrect API
     * key provided: sk-...abcd"): for the log and the stored call record, never the client */
    const char *error_message;
    /* MODEL_FAILED: the same for the client: generic words and the HTTP status class ("the
     * model provider refused the request (HTTP 4xx)"); providers put organisation ids and key
     * suffixes in their texts */
    const char *client_message;
    bool committed;                         /* the sink had committed output when the call ended */
    const struct llm_call_record *attempts; /* one per HTTP attempt, in order */
    uint32_t n_attempts;
    struct llm_usage usage; /* sums over the attempts */
    int64_t cost_micros;
};

/* The event sink. Every function but on_complete may be NULL. Pointers in arguments are valid
 * during the call only. A sink may call model_call_cancel from any of these except on_complete;
 * the call then makes no further sink call after the cancel's own on_complete. */
struct model_sink_ops {
    void (*on_text)(void *ctx, const char *text, size_t len);
    void (*on_reasoning)(void *ctx, const char *text, size_t len);
    void (*on_tool_call)(void *ctx, const struct model_tool_call *tc);
    void (*on_usage)(void *ctx, const struct llm_usage *totals); /* this attempt's, so far */
    /* Is output received so far irrevocable (e.g. shown to a user)? NULL = never. */
    bool (*committed)(void *ctx);
    /* The attempt that produced the output received so far was abandoned; another follows. */
    void (*on_reset)(void *ctx);
    /* The end: the call is freed when this returns (never touch it afterwards). */
    void (*on_complete)(void *ctx, const struct model_result *r);
};

struct model_sink {
    const struct model_sink_ops *ops;
    void *ctx;
};

struct model_call;

/* Start a call on the worker's loop and HTTP client. spec and sink are copied (the memory they
 * point to is not: see model_call_spec). The sink is never called from inside this function: a
 * route refused at once ends on a later loop turn. Returns NULL (and calls nothing) when spec
 * has no route. */
struct model_call *model_call_start(struct loop *l, struct hc *hc,
                                    const struct model_call_spec *spec,
                                    const struct model_sink *sink);

/* Stop the call at once: the transfer in flight is aborted, recorded as "cancelled", and
 * on_complete runs inside this call with MODEL_CANCELLED. Safe from inside sink callbacks (the
 * call's memory is released when the provider parser returns). mc is invalid afterwards. */
void model_call_cancel(struct model_call *mc);

#endif
