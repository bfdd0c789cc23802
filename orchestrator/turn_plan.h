/* turn_plan.h - the session's responder: a turn's plan, which composes model calls (and, later,
 * tools) to answer one user message. Today a plan is one model call whose sink is the session:
 * text deltas go to the client as they arrive, and the call's completion record (one ledger line
 * per HTTP attempt) ends the turn. The session is one sink among others (see model_call.h).
 *
 * What a plan may use is in a turn_plan_conf, built once at set-up (orchestrator.h) and read-only
 * while workers run; each worker keeps its own HTTP client. */
#ifndef TRILEMMA_ORCHESTRATOR_TURN_PLAN_H
#define TRILEMMA_ORCHESTRATOR_TURN_PLAN_H

#include <stdint.h>

#include "orchestrator/model_call.h"
#include "session/session.h"

struct agent_plan_conf;

struct turn_plan_conf {
    struct model_route routes[MODEL_CALL_MAX_ROUTES]; /* the model, then its fallbacks */
    int n_routes;
    struct model_call_policy policy;
    struct model_pricing pricing;
    const char *system_prompt;            /* "" = none */
    uint32_t max_tokens;                  /* 0 = the provider's default */
    const struct agent_plan_conf *agents; /* NULL: one model call per turn (the relay) */
};

/* Fill *out with the responder that runs turn plans with conf. conf must outlive the server. */
void turn_plan_responder(const struct turn_plan_conf *conf, struct responder *out);

#endif
