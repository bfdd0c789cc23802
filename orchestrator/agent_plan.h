/* agent_plan.h - a turn as a plan of agents: classify the query (a small model with a deadline,
 * the built-in rules as fallback, a search prefetched meanwhile), route it to an agent with its
 * model cascade, token budget and context policy, then run agent steps - one model call each,
 * the tool calls of a response all at once - until the answer, which streams to the client
 * through the narration guard and is checked against the tool results at the end.
 *
 * Configured by agents.h (agents, routes, classifier) and tool.h (the tools); used by the turn
 * plan responder (turn_plan.h) when an agents file is configured. See docs/routing.md. */
#ifndef TRILEMMA_ORCHESTRATOR_AGENT_PLAN_H
#define TRILEMMA_ORCHESTRATOR_AGENT_PLAN_H

#include "orchestrator/agents.h"
#include "orchestrator/answer_cache.h"
#include "orchestrator/capacity.h"
#include "orchestrator/model_call.h"
#include "orchestrator/tool_cache.h"
#include "orchestrator/tool.h"
#include "orchestrator/tool_run.h"
#include "session/session.h"

/* Read-only after set-up (app/orch_setup.c). */
struct agent_plan_conf {
    const struct orch_conf *orch;
    const struct tool_set *tools;
    /* each agent's cascade as routes, cheapest first */
    struct model_route routes[AGENTS_MAX][AGENT_MAX_CASCADE];
    struct model_route classifier; /* used when orch->classifier_model is set */
    /* the provisioned deployments (orch->capacity): their routes (tier provisioned, overflow),
     * the deployment serving each cascade step (-1: none) and the process's tracker (NULL: no
     * [capacity NAME] section); see docs/routing.md, "Capacity tiers" */
    struct model_route provisioned[CAPACITY_MAX];
    int capacity_of[AGENTS_MAX][AGENT_MAX_CASCADE];
    struct capacity *capacity;
    const struct model_call_policy *policy;
    const struct model_pricing *pricing;
    const char *prefetch_tool; /* "search_products" by default; "" = no prefetch */
    /* the answer-cache layers, in order (docs/caching.md); none = no response cache */
    struct ac_layer_reg cache_layers[AC_MAX_LAYERS];
    int n_cache_layers;
    uint32_t cache_lookup_timeout_ms;
    const struct tool_cache_conf *tool_cache; /* NULL = no tool cache */
    int64_t turn_max_micros; /* [budget] turn_max_micros: a turn's cost ceiling; 0 = none */
};

/* What a worker lends a plan: its loop, HTTP client, tool runner and a JSON scratch doc. */
struct agent_plan_env {
    struct loop *l;
    struct hc *hc;
    struct tool_runner *tools;
    json_doc *doc;
    struct answer_cache *cache;    /* NULL = no answer cache */
    struct tool_cache *tool_cache; /* NULL = no tool cache */
};

struct agent_turn;

/* Start the plan of turn t (its user message is the last of turn_history). Returns the plan
 * (also set as the turn's responder state), or NULL when it cannot start (the session then ends
 * the turn with an internal error). The plan ends the turn itself with session_turn_done. */
struct agent_turn *agent_plan_start(const struct agent_plan_conf *c,
                                    const struct agent_plan_env *env, struct turn *t);

/* The session cancels the turn: stop every call and tool at once, record them, free the plan. */
void agent_plan_cancel(struct agent_turn *at);

#endif
