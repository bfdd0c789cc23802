/* plan_trace.c - the spans of a plan of agents (plan_trace.h).
 *
 * Model calls: the span opens when the plan starts the call and closes with its completion; the
 * call's state machine tells the observer of every change (model_call.c's call_state), which
 * becomes an event: each attempt's start, backoff before a retry, a fallback to the next route.
 * Each attempt's ledger line (status, HTTP status, error, time to first token, duration, cost)
 * is an event at the end. Usage and cost are the sums the completion carries. */
#include "orchestrator/plan_trace.h"

#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "orchestrator/capacity.h"
#include "stream/jsonw.h"

void pt_init(struct plan_trace *pt, struct trace *tr)
{
    pt->tr = tr;
    pt->classify = pt->agent = pt->prefetch = pt->cache = -1;
    pt->cls.span = pt->step.span = -1;
    for (int i = 0; i < PT_MAX_TOOLS; i++)
        pt->tools[i] = -1;
}

void pt_free(struct plan_trace *pt)
{
    buf_free(&pt->cls.out);
    buf_free(&pt->cls.calls);
    buf_free(&pt->step.out);
    buf_free(&pt->step.calls);
}

/* ---- classification and steps ---- */

void pt_classify_begin(struct plan_trace *pt)
{
    pt->classify = trace_span(pt->tr, 0, "classify", "classify");
}

void pt_classify_end(struct plan_trace *pt, const char *query_type, float confidence,
                     bool by_classifier)
{
    if (pt->classify < 0)
        return;
    trace_str(pt->tr, pt->classify, "trilemma.query_type", query_type);
    trace_int(pt->tr, pt->classify, "trilemma.classify.confidence_pct",
              (int64_t)(confidence * 100 + 0.5f));
    trace_str(pt->tr, pt->classify, "trilemma.classify.by", by_classifier ? "classifier" : "rules");
    trace_end(pt->tr, pt->classify, NULL);
}

void pt_agent_end(struct plan_trace *pt, const char *error)
{
    trace_end(pt->tr, pt->agent, error);
}

void pt_agent_step(struct plan_trace *pt, const char *agent, int level, uint32_t step)
{
    if (!pt->tr)
        return;
    pt_agent_end(pt, NULL);
    char name[96];
    snprintf(name, sizeof(name), "invoke_agent %s", agent);
    pt->agent = trace_span(pt->tr, 0, "agent", name);
    trace_str(pt->tr, pt->agent, "gen_ai.operation.name", "invoke_agent");
    trace_str(pt->tr, pt->agent, "gen_ai.agent.name", agent);
    trace_int(pt->tr, pt->agent, "trilemma.cascade.level", level);
    trace_int(pt->tr, pt->agent, "trilemma.step", step);
}

/* ---- model calls ---- */

/* The OpenTelemetry name of a provider (gen_ai.provider.name). */
static const char *provider_name(enum llm_provider p)
{
    const char *n = llm_provider_name(p);
    return strcmp(n, "gemini") == 0 ? "gcp.gemini" : n;
}

static void on_state(void *ctx, const char *from, const char *to, const struct model_route *r,
                     unsigned attempt)
{
    struct pt_call *pc = ctx;
    (void)from;
    if (strcmp(to, "requested") && strcmp(to, "backoff"))
        return;                     /* streaming, the end: the attempt's records say it */
    if (!strcmp(to, "requested")) { /* a new attempt: what it streams is all that counts */
        buf_reset(&pc->out);
        buf_reset(&pc->calls);
    }
    struct trace_attr a[] = {{"gen_ai.provider.name", TA_STR, provider_name(r->provider), 0},
                             {"gen_ai.request.model", TA_STR, r->model, 0},
                             {"trilemma.attempt", TA_INT, NULL, attempt}};
    trace_event(pc->tr, pc->span, strcmp(to, "backoff") ? "attempt" : "backoff", -1, a, 3);
}

/* Parts of a message (OTel GenAI input/output message schema) into w. */
static void write_parts(struct jsonw *w, const struct llm_message *m)
{
    jw_key(w, "parts");
    jw_arr_begin(w);
    if (m->len) {
        jw_obj_begin(w);
        jw_kstr(w, "type", strcmp(m->role, "tool") ? "text" : "tool_call_response");
        if (!strcmp(m->role, "tool")) {
            jw_kstr(w, "id", m->tool_call_id ? m->tool_call_id : "");
            jw_kstrn(w, "response", m->content, m->len);
        } else {
            jw_kstrn(w, "content", m->content, m->len);
        }
        jw_obj_end(w);
    }
    for (size_t i = 0; i < m->n_tool_calls; i++) {
        const struct llm_msg_tool_call *c = &m->tool_calls[i];
        jw_obj_begin(w);
        jw_kstr(w, "type", "tool_call");
        jw_kstr(w, "id", c->id ? c->id : "");
        jw_kstr(w, "name", c->name);
        jw_kstrn(w, "arguments", c->arguments ? c->arguments : "{}",
                 c->arguments ? c->arguments_len : 2);
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

/* gen_ai.system_instructions and gen_ai.input.messages of the request (capture full). */
static void record_input(struct trace *tr, int span, const struct llm_request *req)
{
    struct buf sys = {0}, in = {0};
    struct jsonw ws, wi;
    jw_init(&ws, &sys);
    jw_init(&wi, &in);
    jw_arr_begin(&ws);
    jw_arr_begin(&wi);
    for (size_t i = 0; i < req->n_messages; i++) {
        const struct llm_message *m = &req->messages[i];
        if (!strcmp(m->role, "system")) {
            jw_obj_begin(&ws);
            jw_kstr(&ws, "type", "text");
            jw_kstrn(&ws, "content", m->content, m->len);
            jw_obj_end(&ws);
            continue;
        }
        jw_obj_begin(&wi);
        jw_kstr(&wi, "role", m->role);
        write_parts(&wi, m);
        jw_obj_end(&wi);
    }
    jw_arr_end(&ws);
    jw_arr_end(&wi);
    trace_content(tr, span, "gen_ai.system_instructions", buf_begin(&sys), buf_size(&sys));
    trace_content(tr, span, "gen_ai.input.messages", buf_begin(&in), buf_size(&in));
    buf_free(&sys);
    buf_free(&in);
}

/* Open a model call's span; see plan_trace.h. */
void pt_model_start(struct plan_trace *pt, struct pt_call *pc, struct model_call_spec *spec,
                    const char *agent, const char *prompt_version)
{
    if (!pt->tr)
        return;
    const struct model_route *r = &spec->routes[0];
    int parent = pc == &pt->cls ? pt->classify : pt->agent;
    char name[160];
    snprintf(name, sizeof(name), "chat %s", r->model);
    pc->tr = pt->tr;
    pc->span = trace_span(pt->tr, parent, "model", name);
    pc->currency = spec->pricing ? spec->pricing->currency : NULL;
    buf_reset(&pc->out);
    buf_reset(&pc->calls);
    struct trace *tr = pt->tr;
    trace_str(tr, pc->span, "gen_ai.operation.name", "chat");
    trace_str(tr, pc->span, "gen_ai.provider.name", provider_name(r->provider));
    trace_str(tr, pc->span, "gen_ai.request.model", r->model);
    if (spec->request->max_tokens)
        trace_int(tr, pc->span, "gen_ai.request.max_tokens", spec->request->max_tokens);
    trace_str(tr, pc->span, "trilemma.role", spec->role);
    if (r->deployment[0])
        trace_str(tr, pc->span, "trilemma.capacity.requested", r->deployment);
    if (r->region[0])
        trace_str(tr, pc->span, "trilemma.capacity.region", r->region);
    if (agent && agent[0]) {
        trace_str(tr, pc->span, "gen_ai.agent.name", agent);
        trace_str(tr, pc->span, "trilemma.prompt.version", prompt_version);
    }
    trace_int(tr, pc->span, "trilemma.request.tools", (int64_t)spec->request->n_tools);
    if (trace_full(tr))
        record_input(tr, pc->span, spec->request);
    pc->obs = (struct model_call_observer){on_state, pc};
    trace_traceparent(tr, pc->span, pc->tp);
    spec->observer = &pc->obs;
    spec->traceparent = pc->tp;
}

void pt_model_text(struct pt_call *pc, const char *text, size_t len)
{
    if (pc->span >= 0 && trace_full(pc->tr))
        buf_append(&pc->out, text, len);
}

void pt_model_tool_call(struct pt_call *pc, const struct model_tool_call *tc)
{
    if (pc->span < 0 || !trace_full(pc->tr))
        return;
    struct jsonw w;
    jw_init(&w, &pc->calls);
    if (buf_size(&pc->calls))
        buf_append(&pc->calls, ",", 1);
    jw_obj_begin(&w);
    jw_kstr(&w, "type", "tool_call");
    jw_kstr(&w, "id", tc->id);
    jw_kstr(&w, "name", tc->name);
    jw_kstrn(&w, "arguments", tc->arguments, tc->arguments_len);
    jw_obj_end(&w);
}

/* gen_ai.output.messages: the last attempt's text and tool calls. */
static void record_output(struct pt_call *pc, const char *finish)
{
    struct buf o = {0};
    struct jsonw w;
    jw_init(&w, &o);
    buf_append_str(&o, "[{\"role\":\"assistant\",\"parts\":[");
    if (buf_size(&pc->out)) {
        buf_append_str(&o, "{\"type\":\"text\",\"content\":");
        jw_strn(&w, buf_begin(&pc->out), buf_size(&pc->out));
        buf_append_str(&o, buf_size(&pc->calls) ? "}," : "}");
    }
    buf_append(&o, buf_begin(&pc->calls), buf_size(&pc->calls));
    buf_append_str(&o, "],\"finish_reason\":");
    jw_init(&w, &o);
    jw_str(&w, finish);
    buf_append_str(&o, "}]");
    trace_content(pc->tr, pc->span, "gen_ai.output.messages", buf_begin(&o), buf_size(&o));
    buf_free(&o);
}

static void attempt_event(struct pt_call *pc, const struct llm_call_record *c)
{
    struct trace_attr a[] = {
        {"gen_ai.response.model", TA_STR, c->model, 0},
        {"trilemma.role", TA_STR, c->role, 0},
        {"trilemma.status", TA_STR, c->status, 0},
        {"trilemma.attempt", TA_INT, NULL, c->attempt},
        {"http.response.status_code", TA_INT, NULL, c->http_status},
        {"trilemma.ttft_ms", TA_INT, NULL, c->ttft_ms},
        {"trilemma.duration_ms", TA_INT, NULL, c->duration_ms},
        {"trilemma.cost.micros", TA_INT, NULL, c->cost_micros},
        {"trilemma.capacity.tier", TA_STR, c->tier[0] ? c->tier : "standard", 0},
        {"trilemma.capacity.deployment", TA_STR, c->deployment, 0},
        {"error.type", TA_STR, c->error[0] ? c->error : NULL, 0},
    };
    trace_event(pc->tr, pc->span, "attempt_end", -1, a, c->error[0] ? 11 : 10);
}

/* See plan_trace.h. */
void pt_model_overflow(struct pt_call *pc, const char *deployment, const char *reason)
{
    if (pc->span < 0)
        return;
    struct trace_attr a[] = {{"trilemma.capacity.deployment", TA_STR, deployment, 0},
                             {"trilemma.capacity.overflow_reason", TA_STR, reason, 0}};
    trace_event(pc->tr, pc->span, "overflow", -1, a, 2);
}

/* The tier that answered (the last attempt's) and an overflow out of the provisioned tier. */
static void record_tier(struct pt_call *pc, const struct model_result *r)
{
    const struct llm_call_record *first = &r->attempts[0], *last = &r->attempts[r->n_attempts - 1];
    trace_str(pc->tr, pc->span, "trilemma.capacity.tier", last->tier[0] ? last->tier : "standard");
    if (last->deployment[0])
        trace_str(pc->tr, pc->span, "trilemma.capacity.deployment", last->deployment);
    const char *why = first->deployment[0]
                          ? capacity_overflow_reason(first->deployment, r->attempts, r->n_attempts)
                          : NULL;
    if (why)
        pt_model_overflow(pc, first->deployment, why);
}

/* Close a model call's span with its completion; see plan_trace.h. */
void pt_model_end(struct pt_call *pc, const struct model_result *r)
{
    if (pc->span < 0)
        return;
    struct trace *tr = pc->tr;
    int s = pc->span;
    for (uint32_t i = 0; i < r->n_attempts; i++)
        attempt_event(pc, &r->attempts[i]);
    if (r->n_attempts) {
        const struct llm_call_record *last = &r->attempts[r->n_attempts - 1];
        trace_str(tr, s, "gen_ai.response.model", last->model);
        if (last->ttft_ms >= 0)
            trace_int(tr, s, "trilemma.ttft_ms", last->ttft_ms);
        record_tier(pc, r);
    }
    trace_strs(tr, s, "gen_ai.response.finish_reasons", &r->finish, 1);
    trace_int(tr, s, "gen_ai.usage.input_tokens", (int64_t)r->usage.input_tokens);
    trace_int(tr, s, "gen_ai.usage.output_tokens", (int64_t)r->usage.output_tokens);
    trace_int(tr, s, "gen_ai.usage.cache_read.input_tokens", (int64_t)r->usage.cached_input_tokens);
    trace_int(tr, s, "gen_ai.usage.cache_creation.input_tokens",
              (int64_t)r->usage.cache_write_tokens);
    trace_int(tr, s, "trilemma.usage.reasoning_tokens", (int64_t)r->usage.reasoning_tokens);
    trace_int(tr, s, "trilemma.cost.micros", r->cost_micros);
    if (pc->currency)
        trace_str(tr, s, "trilemma.cost.currency", pc->currency);
    trace_int(tr, s, "trilemma.attempts", r->n_attempts);
    if (trace_full(tr))
        record_output(pc, r->finish);
    if (r->error_type)
        trace_str(tr, s, "error.type", r->error_type);
    trace_end(tr, s,
              r->outcome == MODEL_FAILED ? (r->error_message ? r->error_message : "failed") : NULL);
    if (r->outcome == MODEL_CANCELLED)
        trace_bool(tr, s, "trilemma.cancelled", true);
    pc->span = -1;
}

/* ---- tools ---- */

/* Spans for a batch (or the prefetch) of tool calls; see plan_trace.h. */
void pt_tools_start(struct plan_trace *pt, struct tool_runner *runner,
                    const struct llm_msg_tool_call *calls, size_t n, bool prefetch)
{
    char tp[56] = "";
    if (pt->tr) {
        pt->tools_start_us = trace_now_us();
        int parent = prefetch ? 0 : pt->agent;
        for (size_t i = 0; i < n; i++) {
            char name[96];
            snprintf(name, sizeof(name), "execute_tool %s", calls[i].name);
            int sp = trace_span_at(pt->tr, parent, "tool", name, pt->tools_start_us);
            trace_str(pt->tr, sp, "gen_ai.operation.name", "execute_tool");
            trace_str(pt->tr, sp, "gen_ai.tool.name", calls[i].name);
            trace_str(pt->tr, sp, "gen_ai.tool.call.id", calls[i].id ? calls[i].id : "");
            trace_str(pt->tr, sp, "gen_ai.tool.type", "function");
            if (prefetch)
                trace_bool(pt->tr, sp, "trilemma.tool.prefetch", true);
            if (prefetch)
                pt->prefetch = sp;
            else if (i < PT_MAX_TOOLS)
                pt->tools[i] = sp;
        }
        if (!prefetch)
            for (size_t i = 0; i < n && i < PT_MAX_TOOLS; i++)
                trace_traceparent(pt->tr, pt->tools[i], pt->tool_tp[i]);
        trace_traceparent(pt->tr, prefetch ? pt->prefetch : pt->agent, tp);
    }
    if (!runner)
        return;
    tool_runner_set_traceparent(runner, tp); /* the prefetch's; a batch's calls: their own */
    if (pt->tr && !prefetch)
        tool_runner_set_traceparents(runner, pt->tool_tp, n < PT_MAX_TOOLS ? n : PT_MAX_TOOLS);
}

/* A tool call ended; see plan_trace.h. i is its index in the batch, or -1 for the prefetch. */
void pt_tool_end(struct plan_trace *pt, size_t i, const char *name, const char *args,
                 size_t args_len, const struct tool_result *r, const char *raw, size_t raw_len)
{
    int sp = i == (size_t)-1 ? pt->prefetch : i < PT_MAX_TOOLS ? pt->tools[i] : -1;
    if (!pt->tr || sp < 0)
        return;
    struct trace *tr = pt->tr;
    (void)name;
    trace_str(tr, sp, "trilemma.tool.status", tool_status_name(r->status));
    if (r->http_status)
        trace_int(tr, sp, "http.response.status_code", r->http_status);
    trace_int(tr, sp, "trilemma.tool.attempts", r->attempts);
    trace_int(tr, sp, "trilemma.tool.latency_ms", (int64_t)(r->latency_us / 1000));
    trace_int(tr, sp, "trilemma.tool.result_bytes", (int64_t)r->raw_bytes);
    trace_bool(tr, sp, "trilemma.tool.cache_hit", r->cache_hit);
    if (r->stale)
        trace_bool(tr, sp, "trilemma.tool.cache_stale", true);
    trace_content(tr, sp, "gen_ai.tool.call.arguments", args, args_len);
    trace_content(tr, sp, "gen_ai.tool.call.result", buf_begin(&r->text), buf_size(&r->text));
    if (raw && r->status == TOOL_OK)
        trace_content(tr, sp, "trilemma.tool.result.raw", raw, raw_len);
    char err[200];
    snprintf(err, sizeof(err), "%.*s", (int)(buf_size(&r->text) > 190 ? 190 : buf_size(&r->text)),
             buf_begin(&r->text));
    trace_end_at(tr, sp, pt->tools_start_us + (int64_t)r->latency_us,
                 r->status == TOOL_OK ? NULL : err);
    if (i == (size_t)-1)
        pt->prefetch = -1;
    else
        pt->tools[i] = -1;
}

/* ---- the answer caches ---- */

void pt_cache_begin(struct plan_trace *pt, const char *model)
{
    pt->cache = trace_span(pt->tr, 0, "cache", "cache lookup");
    trace_str(pt->tr, pt->cache, "gen_ai.request.model", model);
}

void pt_cache_end(struct plan_trace *pt, const char *layer, int64_t saved_micros)
{
    if (pt->cache < 0)
        return;
    trace_bool(pt->tr, pt->cache, "trilemma.cache.hit", layer != NULL);
    if (layer) {
        trace_str(pt->tr, pt->cache, "trilemma.cache.layer", layer);
        trace_int(pt->tr, pt->cache, "trilemma.cache.saved_micros", saved_micros);
    }
    trace_end(pt->tr, pt->cache, NULL);
    pt->cache = -1;
}

/* ---- guards, escalations, handoffs ---- */

void pt_guard(struct plan_trace *pt, const char *name, const char *error,
              const struct trace_attr *a, size_t n)
{
    if (!pt->tr)
        return;
    int sp = trace_span(pt->tr, pt->agent >= 0 ? pt->agent : 0, "guard", name);
    for (size_t i = 0; i < n; i++) {
        if (a[i].type == TA_STR)
            trace_str(pt->tr, sp, a[i].key, a[i].s);
        else if (a[i].type == TA_BOOL)
            trace_bool(pt->tr, sp, a[i].key, a[i].i != 0);
        else
            trace_int(pt->tr, sp, a[i].key, a[i].i);
    }
    trace_end(pt->tr, sp, error);
}

void pt_escalate(struct plan_trace *pt, const char *reason, const char *from, const char *to)
{
    struct trace_attr a[] = {{"trilemma.escalation.reason", TA_STR, reason, 0},
                             {"trilemma.escalation.from", TA_STR, from, 0},
                             {"trilemma.escalation.to", TA_STR, to, 0}};
    pt_guard(pt, "cascade", NULL, a, 3);
    trace_event(pt->tr, pt->agent, "escalated", -1, a, 3);
}

void pt_handoff(struct plan_trace *pt, const char *from, const char *to, const char *verdict)
{
    if (!pt->tr)
        return;
    char name[96];
    snprintf(name, sizeof(name), "handoff %s -> %s", from, to);
    int sp = trace_span(pt->tr, pt->agent >= 0 ? pt->agent : 0, "handoff", name);
    trace_str(pt->tr, sp, "trilemma.handoff.from", from);
    trace_str(pt->tr, sp, "trilemma.handoff.to", to);
    trace_str(pt->tr, sp, "trilemma.handoff.verdict", verdict);
    trace_end(pt->tr, sp, strcmp(verdict, "ok") ? "routing loop" : NULL);
}
