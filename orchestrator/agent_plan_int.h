/* agent_plan_int.h - the agent plan's internals, shared by its files: agent_plan.c (the state
 * machine: steps, tools, escalations, handoffs, the end), plan_route.c (classification, the
 * search prefetch, routing), plan_preload.c (the slate, the prefetch's result, follow-up
 * preloads) and plan_cache.c (the answer cache). Not for other modules: see agent_plan.h. */
#ifndef TRILEMMA_ORCHESTRATOR_AGENT_PLAN_INT_H
#define TRILEMMA_ORCHESTRATOR_AGENT_PLAN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "orchestrator/agent_plan.h"
#include "orchestrator/guard.h"
#include "orchestrator/plan_trace.h"
#include "orchestrator/query.h"
#include "orchestrator/slate.h"

enum ap_state { AP_CLASSIFY = 0, AP_CACHE, AP_STEP, AP_TOOLS, AP_DONE };

#define AP_MAX_CALLS 8 /* tool calls of one response that are run; more are refused */

/* The tool exchange of this turn: what the models called and what the tools answered, in the
 * order the next request must carry it. Strings are owned by the turn (at->owned). */
struct exch_msg {
    struct llm_message m;
};

struct agent_turn {
    struct turn *t;
    const struct agent_plan_conf *c;
    struct agent_plan_env env;
    enum ap_state state;
    /* classification */
    struct query_guess guess;
    struct model_call *cls;
    struct buf cls_text;
    struct timer cls_deadline;
    bool cls_running;
    struct llm_message cls_msgs[2];
    struct llm_request cls_req;
    /* the search prefetch */
    struct tool_call *prefetch;
    char prefetch_args[512];
    bool prefetch_running, prefetch_wanted;
    /* routing */
    int agent;
    int chain[AGENT_MAX_HANDOFFS + 2];
    int n_chain;
    int level; /* cascade position */
    uint32_t steps;
    enum escalation escalated_for;
    /* the step in flight */
    struct model_call *call;
    struct model_route step_routes[2]; /* [provisioned,] standard: what the call tries */
    struct capacity_hold hold;         /* the provisioned reservation, until the call ends */
    struct llm_request req;
    char cache_key[48]; /* OpenAI prompt_cache_key: agent and prompt version */
    struct llm_message *msgs;
    size_t n_ctx; /* msgs[1..n_ctx): the step's notes and history, before the exchange */
    struct llm_tool *tools;
    size_t n_tools;
    struct llm_msg_tool_call calls[AP_MAX_CALLS];
    size_t n_calls, n_refused;
    struct buf held; /* hold_opening: the answer's opening not shown yet; verify: all of it */
    bool holding;
    bool verifying;       /* the route's verify: held to the end and checked (not the last model) */
    size_t verified;      /* bytes of held already checked line by line */
    bool verify_lines;    /* verify = lines: passed lines are shown, failed ones left out */
    size_t released;      /* verify = lines: bytes of held shown or left out */
    uint32_t dropped;     /* verify = lines: lines left out of this turn's answer */
    char verify_note[96]; /* why the last verified answer failed: told to the next model */
    bool shown;           /* a delta of the answer reached the client */
    struct narr_filter narr;
    struct tool_batch *batch;
    /* the turn's exchange and evidence */
    struct exch_msg *ex;
    size_t n_ex;
    void **owned; /* what the exchange points into: freed with the plan */
    size_t n_owned;
    struct slate slate; /* products shown in this turn */
    struct slate prev;  /* the slate of an earlier turn of the session (follow-ups) */
    struct buf answer;  /* the text shown, for the grounding check */
    /* the answer cache (docs/caching.md) */
    struct ac_lookup *lookup; /* in flight */
    struct ac_query *cq;      /* the turn's cache query: offered the answer at the end */
    bool from_cache;          /* the answer came from a cache layer */
    int64_t spent;            /* cost of the calls and tools after routing (an answer's price) */
    int64_t cost;             /* cost of every call and tool so far (the turn's ceiling) */
    uint32_t model_steps;     /* agent model calls started (steps, escalations, handoffs) */
    bool cls_decided;         /* the classifier's answer was taken (else the rules') */
    struct plan_trace pt;     /* the turn's spans (plan_trace.h) */
};

/* agent_plan.c */

/* The one place the plan changes state (and logs it). */
void ap__state(struct agent_turn *at, enum ap_state to);
/* The turn takes p (xmalloc'd): freed with the plan. Returns p. */
void *ap__own(struct agent_turn *at, void *p);
/* A copy of p[0..n) the turn owns (NULL: ""). */
const char *ap__keep(struct agent_turn *at, const char *p, size_t n);
/* Append m to the turn's tool exchange (its strings owned by the turn). */
void ap__ex_add(struct agent_turn *at, struct llm_message m);
/* Record the attempts of a model call (the classifier's too) and add their cost. */
void ap__record_attempts(struct agent_turn *at, const struct model_result *r);
/* Call i of the batch (-1: the prefetch) ended: its record, its saving, its span. */
void ap__record_tool(struct agent_turn *at, size_t i, const char *name, const char *args,
                     size_t args_len, const struct tool_result *res, const char *raw,
                     size_t raw_len);
/* End the turn (code NULL: an answer) and free the plan; at is gone on return. */
void ap__finish(struct agent_turn *at, const char *reason, const char *code, const char *msg);
/* Answer text for the client (ctx: the turn): shown, and kept for the grounding check. */
void ap__to_client(void *ctx, const char *text, size_t len);
/* Start a step: one model call of the current agent (or end the turn at its cost ceiling). */
void ap__step_start(struct agent_turn *at);
/* Run the tool calls in at->calls all at once (or escalate on an invalid one). */
void ap__run_tools(struct agent_turn *at);
/* The current agent's messages into at->msgs. Returns how many. */
size_t ap__build_messages(struct agent_turn *at, const struct agent *a);
/* The current agent's tools and handoffs into at->tools. Returns how many. */
size_t ap__build_tools(struct agent_turn *at, const struct agent *a);

/* plan_preload.c */

/* Products of a search or product tool join the turn's slate (sent by ap__send_slate). */
void ap__add_slate(struct agent_turn *at, const char *name, const char *text, size_t len);
/* The slate goes out once, before the answer, with what the first tool step found. */
void ap__send_slate(struct agent_turn *at);
/* Record the prefetch and, when the agent may search, put its result in the exchange. */
void ap__use_prefetch(struct agent_turn *at);
/* Routed (and not answered by a cache): preload what a follow-up refers to, or the first step. */
void ap__answer(struct agent_turn *at);

/* plan_cache.c */

/* Offer the turn's answer to the answer cache (unless flagged). */
void ap__offer_answer(struct agent_turn *at);
/* Ask the cache layers before the first model call. Returns true when a lookup started. */
bool ap__cache_lookup(struct agent_turn *at);

/* plan_route.c */

/* Both the classification and the prefetch are over: route and take the first step. */
void ap__route(struct agent_turn *at);
/* Start the search prefetch when the message looks like a search. */
void ap__start_prefetch(struct agent_turn *at, const char *text, size_t len);
/* Start the classifier model (with its deadline) when one is configured. */
void ap__start_classifier(struct agent_turn *at, const char *text, size_t len);

#endif
