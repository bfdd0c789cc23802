/* sim_agent.h - the simulated models as shopping agents: offered the commerce tools
 * (search_products, get_product, get_offers, get_policy, get_order), they call them with
 * arguments taken from the user's words, and given the results they answer from them (titles,
 * prices, specs; a Markdown table for a comparison). Model tiers differ like real ones, and a
 * classifier tier (or any model asked for JSON) answers the query type as constrained JSON.
 *
 * Tiers, by model name (docs/sim.md):
 *   "...frontier..."   slower (2x time to first token, half the token rate), never wrong
 *   "...cheap..."      faster (1/3 the time to first token, 2x the rate); at --cheap-mistake-rate
 *                      picks a wrong product, misstates a price, or answers a comparison
 *                      without a table (which one: from the conversation and --seed)
 *   "...classifier..." the query-type JSON after --classifier-ms, in one write
 *   "...judge..."      an eval judge's scores as JSON (sim_judge.h)
 *   anything else      standard: the flags' timing, never wrong */
#ifndef TRILEMMA_SIM_AGENT_H
#define TRILEMMA_SIM_AGENT_H

#include <stdbool.h>

#include "loadtest/sim/sim.h"
#include "loadtest/sim/sim_answer.h"
#include "loadtest/sim/sim_request.h"
#include "loadtest/sim/sim_stream.h"

enum sim_tier {
    SIM_TIER_STANDARD,
    SIM_TIER_FRONTIER,
    SIM_TIER_CHEAP,
    SIM_TIER_CLASSIFIER,
    SIM_TIER_JUDGE
};

enum sim_tier sim_tier_of(const char *model);

/* Build the agent's answer into *a (zeroed here) when the request is one for an agent: a
 * judge or classifier request, or commerce tools on offer with no [[sim:tool]] / [[sim:echo]]
 * directive and something to do (a call to make, or tool results to answer from). Returns false,
 * with *a untouched, when the ordinary answer (sim_answer_build) applies. doc holds r's body; aux
 * is a second parser for the tool results. */
bool sim_agent_answer(struct sim_answer *a, const struct sim_req *r, json_doc *doc, json_doc *aux,
                      const struct sim_opts *o);

/* The tier's timing on top of the flags (directives ttft / tps still win). */
void sim_agent_tune_plan(const struct sim_req *r, const struct sim_opts *o, struct sim_plan *p);

#endif
