/* plan_trace.h - the spans of a plan of agents (docs/tracing.md): what agent_plan.c calls at each
 * of its steps so that the turn's trace (session's turn_trace) shows classification, agent
 * steps, model calls (prompts, streamed output, usage, cost, attempts), tool calls, guards,
 * escalations and handoffs with OpenTelemetry GenAI attribute names.
 *
 * Every function is a no-op when the turn has no trace (capture off): the plan calls them
 * unconditionally and pays a test and a return. Content (prompts, answers, tool input and
 * output) is recorded by trace.c only at capture full, redacted. */
#ifndef TRILEMMA_ORCHESTRATOR_PLAN_TRACE_H
#define TRILEMMA_ORCHESTRATOR_PLAN_TRACE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "orchestrator/model_call.h"
#include "orchestrator/tool_run.h"
#include "trace/trace.h"

#define PT_MAX_TOOLS 8

/* One model call's span as it runs; lives in the plan (the observer's context). */
struct pt_call {
    struct trace *tr;
    int span;
    struct buf out;   /* the current attempt's streamed text (capture full) */
    struct buf calls; /* its tool calls as output message parts (capture full) */
    char tp[56];      /* traceparent sent with the call */
    struct model_call_observer obs;
    const char *currency;
};

/* The plan's spans. Zeroed with the plan; pt_init names the trace. */
struct plan_trace {
    struct trace *tr;
    int classify, agent, prefetch, cache;
    int tools[PT_MAX_TOOLS];
    char tool_tp[PT_MAX_TOOLS][56]; /* each tool call's traceparent (its own span) */
    int64_t tools_start_us;
    struct pt_call cls, step;
};

void pt_init(struct plan_trace *pt, struct trace *tr);
void pt_free(struct plan_trace *pt);

/* Classification: started with the plan, ended once routed (query type and how it was
 * decided). */
void pt_classify_begin(struct plan_trace *pt);
void pt_classify_end(struct plan_trace *pt, const char *query_type, float confidence,
                     bool by_classifier);

/* A step of an agent: ends the previous step's span (its tools are its children). */
void pt_agent_step(struct plan_trace *pt, const char *agent, int level, uint32_t step);
void pt_agent_end(struct plan_trace *pt, const char *error);

/* A model call: opens its span under the classification or the current step and points spec's
 * observer and traceparent at pc (spec must be the one given to model_call_start). */
void pt_model_start(struct plan_trace *pt, struct pt_call *pc, struct model_call_spec *spec,
                    const char *agent, const char *prompt_version);
void pt_model_text(struct pt_call *pc, const char *text, size_t len);
void pt_model_tool_call(struct pt_call *pc, const struct model_tool_call *tc);
/* Ends the span; trilemma.capacity.tier (and .deployment) say which tier answered, and an
 * "overflow" event which provisioned attempt failed over to another route. */
void pt_model_end(struct pt_call *pc, const struct model_result *r);
/* The step's model has a provisioned deployment that did not take it (reason "full"): an
 * "overflow" event on the model span. */
void pt_model_overflow(struct pt_call *pc, const char *deployment, const char *reason);

/* Tool calls: spans for calls[0..n) started now (under the current step, or the root for the
 * prefetch: prefetch true), and the runner's traceparent set for their requests. */
void pt_tools_start(struct plan_trace *pt, struct tool_runner *runner,
                    const struct llm_msg_tool_call *calls, size_t n, bool prefetch);
/* Call i ended (its span ends start + latency): status, result as sent to the model and as
 * received. */
void pt_tool_end(struct plan_trace *pt, size_t i, const char *name, const char *args,
                 size_t args_len, const struct tool_result *r, const char *raw, size_t raw_len);

/* The answer caches' lookup (docs/caching.md): started before it, ended with its outcome
 * (layer NULL: a miss; saved: the cost the hit spared). */
void pt_cache_begin(struct plan_trace *pt, const char *model);
void pt_cache_end(struct plan_trace *pt, const char *layer, int64_t saved_micros);

/* A check: a span of kind guard with its verdict (error NULL = passed). */
void pt_guard(struct plan_trace *pt, const char *name, const char *error,
              const struct trace_attr *a, size_t n);
/* The cascade moved to the next model, and why. */
void pt_escalate(struct plan_trace *pt, const char *reason, const char *from, const char *to);
/* A handoff (verdict "ok", "loop", "limit"). */
void pt_handoff(struct plan_trace *pt, const char *from, const char *to, const char *verdict);

#endif
