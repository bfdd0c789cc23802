/* agents.h - the orchestrator's configuration: agents, the route of each query type, the
 * classifier, handoffs, and the context each agent receives.
 *
 * One strict INI file (default config/agents.ini; docs/orchestrator.md):
 *
 *   [classifier]           model, deadline_ms, min_confidence, max_tokens
 *   [turn]                 max_handoffs, max_steps, hold_opening
 *   [agent NAME]           prompt (a file), tools, cascade, context, handoffs, max_steps,
 *                          escalate_on_tool_failure
 *   [route QUERY_TYPE]     agent, max_tokens, cacheable, cache_ttl_s, semantic_threshold,
 *                          max_cost_micros, verify, format
 *   [capacity NAME]        model, deployment_model, base_url, tpm, streams, hourly_price,
 *                          currency, region (a provisioned deployment of a cascade model)
 *
 * Every query type needs a route; every route names a known agent; unknown sections and keys,
 * duplicate keys, and values out of range are errors naming the file and line. A prompt file is
 * read at load time and versioned by the hash of its bytes: the version is recorded on every
 * call, so a changed prompt is visible in the ledger and the traces. Pure data and pure
 * functions, loaded once on the main thread and read-only afterwards. */
#ifndef TRILEMMA_ORCHESTRATOR_AGENTS_H
#define TRILEMMA_ORCHESTRATOR_AGENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orchestrator/query.h"

#define AGENTS_MAX 16
#define AGENT_MAX_TOOLS 16
#define AGENT_MAX_CASCADE 4
#define AGENT_MAX_HANDOFFS 4
#define CAPACITY_MAX 8

/* What an agent sees of the conversation (besides its system prompt and tool schemas). */
enum context_policy {
    CTX_QUERY = 0,      /* the current message only */
    CTX_CLARIFICATION,  /* the current message, and the last exchange when the assistant's
                           last message asked a question */
    CTX_CHOSEN_PRODUCT, /* the current message and the product it refers to (from the last
                           slate shown), not the results the user passed over */
    CTX_FULL,           /* the whole history window: the "send everything" baseline */
    CTX__COUNT,
};

const char *context_policy_name(enum context_policy p);

struct agent {
    char name[32];
    char prompt_path[256];
    char *prompt; /* the file's text (owned) */
    size_t prompt_len;
    char prompt_version[13]; /* 12 hex digits of the SHA-256 of the prompt's bytes */
    char tools[AGENT_MAX_TOOLS][48];
    int n_tools;
    char cascade[AGENT_MAX_CASCADE][160]; /* "provider/model", cheapest first */
    int n_cascade;
    enum context_policy context;
    char handoffs[AGENT_MAX_HANDOFFS][32]; /* agents this one may hand the turn to */
    int n_handoffs;
    uint32_t max_steps;            /* model calls with tool results before a final answer */
    bool escalate_on_tool_failure; /* cascade: a failed tool escalates (default: tell the model) */
};

struct route {
    int agent; /* index into agents */
    uint32_t max_tokens;
    bool cacheable;
    uint32_t cache_ttl_s;
    int64_t max_cost_micros; /* the turn's cost ceiling on this route; 0 = [budget] turn_max */
    /* the semantic cache (docs/caching.md): the similarity a hit needs, 0 = this type is not in
     * the semantic cache (opt-in per type); its entries live cache_ttl_s */
    float semantic_threshold;
    /* a cheaper model's whole answer is held and checked (claims, names, format) before it is
     * shown; a failure escalates (docs/routing.md, "The verified answer") */
    bool verify;
    /* verify = lines: each line is shown as soon as it passes; a later line that fails is left
     * out instead of escalating (only a failure before anything was shown escalates) */
    bool verify_lines;
    bool want_table; /* format = table: the answer must have a Markdown table */
};

/* The cost ceiling of a turn on a route (route_max: its max_cost_micros, global_max: [budget]
 * turn_max_micros; 0 = none): the route's when it has one. */
static inline int64_t route_cost_ceiling(int64_t route_max, int64_t global_max)
{
    return route_max > 0 ? route_max : global_max;
}

/* Whether a turn that has cost spent (micros) so far, and made model_steps agent model calls,
 * stops before its next one: the first call always runs (a turn gets one answer); after it, the
 * loop stops once the cost reached the ceiling (0 = none). */
static inline bool turn_cost_stop(int64_t ceiling, int64_t spent, uint32_t model_steps)
{
    return ceiling > 0 && model_steps > 0 && spent >= ceiling;
}

/* A provisioned deployment of a cascade model (docs/routing.md, "Capacity tiers"): a capacity
 * bought for the whole deployment (every pod), in tokens per minute and concurrent streams, at a
 * fixed price per hour. Steps of that model go to it while this pod's share has room. */
struct capacity_section {
    char name[32];              /* 1-31 of a-z 0-9 _ -: the ledger's deployment */
    char model[160];            /* the cascade entry it serves, "provider/model" */
    char deployment_model[128]; /* the model id sent to its endpoint ("" = model's) */
    char base_url[512];         /* absolute http(s) URL, or a path against the provider's origin */
    uint64_t tpm;               /* tokens per minute (input + output), the whole deployment */
    uint32_t streams;           /* concurrent streams, the whole deployment */
    int64_t hourly_micros;      /* the whole deployment, in currency */
    char currency[4];           /* "USD" (default) or "INR" */
    char region[32];            /* a label ("" = none) */
};

struct orch_conf {
    struct agent agents[AGENTS_MAX];
    int n_agents;
    struct route routes[QT__COUNT];
    /* [classifier] */
    char classifier_model[160]; /* "" = rules only */
    uint32_t classifier_deadline_ms;
    float min_confidence; /* below: the cascade starts one model up */
    uint32_t classifier_max_tokens;
    /* [turn] */
    uint32_t max_handoffs;
    bool hold_opening; /* hold the answer's first sentence for the guards (default off) */
    /* [capacity NAME], in file order; at most one per model */
    struct capacity_section capacity[CAPACITY_MAX];
    int n_capacity;
};

/* Load path into c (zeroed first; on error c is freed and zeroed). Relative prompt paths are
 * read relative to the file's folder. Returns 0, or -1 with "PATH:LINE: message" in err. */
int orch_conf_load(struct orch_conf *c, const char *path, char *err, size_t errlen);
void orch_conf_free(struct orch_conf *c);

/* The agent named name, or -1. */
int orch_agent_find(const struct orch_conf *c, const char *name);
/* The [capacity NAME] section serving cascade entry model ("provider/model"), or -1. */
int orch_capacity_for_model(const struct orch_conf *c, const char *model);
/* True when agent a may call tool name. */
bool orch_agent_has_tool(const struct agent *a, const char *name);

enum handoff_verdict {
    HANDOFF_OK = 0,
    HANDOFF_NOT_ALLOWED, /* the agent does not list the target among its handoffs */
    HANDOFF_LOOP,        /* the target already ran in this turn (A -> B -> A) */
    HANDOFF_LIMIT,       /* more than max_handoffs */
};

/* May the turn, having run agents chain[0..n) (in order, chain[n-1] the current one), hand over
 * to agent `to`? */
enum handoff_verdict orch_handoff_check(const struct orch_conf *c, const int *chain, int n, int to);

#endif
