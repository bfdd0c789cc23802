/* agent_plan.c - a turn as a plan of agents (agent_plan.h).
 *
 *   CLASSIFY --(classifier answer | deadline | no classifier)--> route --> STEP
 *   STEP --tool calls--> TOOLS --all ended--> STEP          (at most max_steps with tools)
 *   STEP --handoff--> STEP of the other agent                (loop or limit: routing_loop)
 *   STEP --nothing shown and a detectable failure--> STEP on the next model of the cascade
 *   STEP --answer--> DONE (narration removed as it streamed; grounding checked; turn ends)
 *
 * One enum and one transition function (plan_state) hold the plan's state. The search prefetch
 * runs beside CLASSIFY; when the turn routes to an agent that may search, its result enters the
 * context as if the agent had called the tool, so the first model call can answer at once. */
#include "orchestrator/agent_plan.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "base/log.h"
#include "base/mem.h"
#include "orchestrator/context.h"
#include "orchestrator/guard.h"
#include "orchestrator/plan_trace.h"
#include "orchestrator/query.h"
#include "orchestrator/slate.h"
#include "stream/jsonw.h"
#include "trace/flags.h"

enum ap_state { AP_CLASSIFY = 0, AP_CACHE, AP_STEP, AP_TOOLS, AP_DONE };

static const char *const state_names[] = {"classify", "cache", "step", "tools", "done"};

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
    struct llm_request req;
    char cache_key[48]; /* OpenAI prompt_cache_key: agent and prompt version */
    struct llm_message *msgs;
    struct llm_tool *tools;
    size_t n_tools;
    struct llm_msg_tool_call calls[AP_MAX_CALLS];
    size_t n_calls, n_refused;
    struct buf held; /* hold_opening: the answer's opening not shown yet */
    bool holding;
    bool shown; /* a delta of the answer reached the client */
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

static void step_start(struct agent_turn *at);
static void offer_answer(struct agent_turn *at);
static void finish(struct agent_turn *at, const char *reason, const char *code, const char *msg);

/* The one place the plan changes state (and logs it). */
static void plan_state(struct agent_turn *at, enum ap_state to)
{
    log_debug("plan %p: %s -> %s", (void *)at, state_names[at->state], state_names[to]);
    at->state = to;
}

/* The turn takes p (xmalloc'd): freed with the plan. Returns p. */
static void *own(struct agent_turn *at, void *p)
{
    at->owned = xrealloc(at->owned, (at->n_owned + 1) * sizeof(*at->owned));
    at->owned[at->n_owned++] = p;
    return p;
}

/* A copy of p[0..n) the turn owns. */
static const char *keep(struct agent_turn *at, const char *p, size_t n)
{
    return own(at, xstrndup(p ? p : "", p ? n : 0));
}

static int64_t unix_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void ex_add(struct agent_turn *at, struct llm_message m)
{
    at->ex = xrealloc(at->ex, (at->n_ex + 1) * sizeof(*at->ex));
    at->ex[at->n_ex++].m = m;
}

static void plan_free(struct agent_turn *at)
{
    timer_disarm(at->env.l, &at->cls_deadline);
    answer_cache_cancel(at->lookup);
    ac_query_free(at->cq);
    tool_call_free(at->prefetch);
    tool_batch_free(at->batch);
    for (size_t i = 0; i < at->n_owned; i++)
        xfree(at->owned[i]);
    xfree(at->owned);
    xfree(at->ex);
    xfree(at->msgs);
    xfree(at->tools);
    buf_free(&at->cls_text);
    buf_free(&at->held);
    buf_free(&at->answer);
    pt_free(&at->pt);
    xfree(at);
}

/* ---- records ---- */

static void record_attempts(struct agent_turn *at, const struct model_result *r)
{
    const struct agent *a = at->agent >= 0 ? &at->c->orch->agents[at->agent] : NULL;
    for (uint32_t i = 0; i < r->n_attempts; i++) {
        struct llm_call_record rec = r->attempts[i];
        if (a) { /* the classifier works for no agent */
            snprintf(rec.agent, sizeof(rec.agent), "%s", a->name);
            snprintf(rec.prompt_version, sizeof(rec.prompt_version), "%s", a->prompt_version);
            at->spent += rec.cost_micros;
        }
        at->cost += rec.cost_micros;
        turn_add_call(at->t, &rec);
    }
}

/* Call i of the batch (-1: the prefetch) ended: its record and its span. raw: the answer as
 * received (NULL when there is none). */
static void record_tool(struct agent_turn *at, size_t i, const char *name, const char *args,
                        size_t args_len, const struct tool_result *res, const char *raw,
                        size_t raw_len)
{
    struct tool_call_record rec = {0};
    snprintf(rec.name, sizeof(rec.name), "%s", name);
    size_t n = args_len < sizeof(rec.arguments) - 1 ? args_len : sizeof(rec.arguments) - 1;
    memcpy(rec.arguments, args ? args : "", args ? n : 0);
    rec.arguments_len = args ? n : 0;
    rec.result_bytes = res->raw_bytes;
    rec.duration_ms = (int64_t)(res->latency_us / 1000);
    const char *st = res->status == TOOL_OK          ? "ok"
                     : res->status == TOOL_TIMEOUT   ? "timeout"
                     : res->status == TOOL_CANCELLED ? "cancelled"
                                                     : "error";
    snprintf(rec.status, sizeof(rec.status), "%s", st);
    rec.cache_hit = res->cache_hit;
    at->spent += rec.cost_micros;
    at->cost += rec.cost_micros;
    rec.empty = res->status == TOOL_OK && raw && flags_result_empty(raw, raw_len);
    turn_add_tool(at->t, &rec);
    if (res->cache_hit) { /* what the request would have cost: tools here are free, still counted */
        struct cache_saving_record s = {.layer = "tool", .amount_micros = -rec.cost_micros};
        snprintf(s.description, sizeof(s.description), "tool cache: %s%s", name,
                 res->stale ? " (stale, refreshing)" : "");
        turn_add_saving(at->t, &s);
    }
    pt_tool_end(&at->pt, i, name, args, args_len, res, raw, raw_len);
}

/* ---- the end ---- */

static void ground(struct agent_turn *at)
{
    const char *src[64];
    size_t lens[64], n = 0;
    for (size_t i = 0; i < at->n_ex && n < 63; i++)
        if (!strcmp(at->ex[i].m.role, "tool") && !at->ex[i].m.is_error)
            src[n] = at->ex[i].m.content, lens[n++] = at->ex[i].m.len;
    const struct history_msg *h;
    size_t hn = turn_history(at->t, &h);
    if (hn)
        src[n] = h[hn - 1].text, lens[n++] = h[hn - 1].len;
    struct grounding g;
    ground_check(buf_begin(&at->answer), buf_size(&at->answer), src, lens, n, &g);
    struct trace_attr ga[] = {{"trilemma.grounding.claims", TA_INT, NULL, g.claims},
                              {"trilemma.grounding.mismatches", TA_INT, NULL, g.mismatches},
                              {"trilemma.grounding.first_mismatch", TA_STR, g.first_mismatch, 0}};
    pt_guard(&at->pt, "grounding", g.mismatches ? "ungrounded_number" : NULL, ga,
             g.mismatches ? 3 : 2);
    if (g.mismatches) {
        turn_add_flag(at->t, "ungrounded_number");
        log_info("turn answer states %s, which no tool result of the turn has (%u of %u claims)",
                 g.first_mismatch, g.mismatches, g.claims);
    }
}

static void finish(struct agent_turn *at, const char *reason, const char *code, const char *msg)
{
    struct turn *t = at->t;
    char m[256];
    snprintf(m, sizeof(m), "%s", msg ? msg : "");
    if (at->narr.removed)
        turn_add_flag(t, "narration_removed");
    struct trace_attr na[] = {{"trilemma.narration.removed", TA_INT, NULL, at->narr.removed}};
    pt_guard(&at->pt, "narration", NULL, na, 1);
    if (!code && !at->from_cache)
        ground(at);
    if (!code && !at->from_cache && at->cq && strcmp(reason, "stop") == 0)
        offer_answer(at);
    pt_agent_end(&at->pt, code ? m : NULL);
    plan_state(at, AP_DONE);
    turn_set_responder_state(t, NULL);
    plan_free(at);
    session_turn_done(t, reason, code, code ? m : NULL);
}

/* ---- the client side of a step: narration filter, optional held opening ---- */

static void to_client(void *ctx, const char *text, size_t len)
{
    struct agent_turn *at = ctx;
    at->shown = true;
    buf_append(&at->answer, text, len);
    session_turn_delta(at->t, text, len);
}

static bool opening_complete(const struct buf *b)
{
    const char *p = buf_begin(b);
    size_t n = buf_size(b);
    if (n >= 160)
        return true;
    for (size_t i = 0; i + 1 < n; i++)
        if ((p[i] == '.' || p[i] == '!' || p[i] == '?' || p[i] == '\n') &&
            (p[i + 1] == ' ' || p[i + 1] == '\n'))
            return true;
    return false;
}

static void release_held(struct agent_turn *at)
{
    at->holding = false;
    if (buf_size(&at->held))
        narr_feed(&at->narr, buf_begin(&at->held), buf_size(&at->held), to_client, at);
    buf_reset(&at->held);
}

static void step_text(void *ctx, const char *text, size_t len)
{
    struct agent_turn *at = ctx;
    if (!len)
        return;
    pt_model_text(&at->pt.step, text, len);
    session_turn_status(at->t, "answering", NULL);
    if (!at->holding) {
        narr_feed(&at->narr, text, len, to_client, at);
        return;
    }
    buf_append(&at->held, text, len);
    if (!opening_complete(&at->held))
        return;
    if (at->level + 1 < at->c->orch->agents[at->agent].n_cascade &&
        answer_is_refusal(buf_begin(&at->held), buf_size(&at->held))) {
        at->escalated_for = ESC_REFUSAL; /* the completion escalates (nothing was shown) */
        model_call_cancel(at->call);
        return;
    }
    release_held(at);
}

static void step_tool_call(void *ctx, const struct model_tool_call *tc)
{
    struct agent_turn *at = ctx;
    pt_model_tool_call(&at->pt.step, tc);
    if (at->n_calls == AP_MAX_CALLS) {
        at->n_refused++;
        return;
    }
    struct llm_msg_tool_call *c = &at->calls[at->n_calls++];
    char id[40];
    if (!tc->id || !tc->id[0]) /* Gemini names no id: make one per call */
        snprintf(id, sizeof(id), "call_%u_%zu", at->steps, at->n_calls);
    c->id = keep(at, tc->id && tc->id[0] ? tc->id : id, strlen(tc->id && tc->id[0] ? tc->id : id));
    c->name = keep(at, tc->name, strlen(tc->name));
    c->arguments = keep(at, tc->arguments, tc->arguments_len);
    c->arguments_len = tc->arguments_len;
}

static bool step_committed(void *ctx)
{
    return ((struct agent_turn *)ctx)->shown;
}

static void step_reset(void *ctx)
{
    struct agent_turn *at = ctx;
    at->n_calls = at->n_refused = 0;
    buf_reset(&at->held);
}

/* ---- after a step ---- */

static bool can_escalate(const struct agent_turn *at)
{
    return !at->shown && at->level + 1 < at->c->orch->agents[at->agent].n_cascade;
}

static void escalate(struct agent_turn *at, enum escalation why)
{
    char flag[32];
    snprintf(flag, sizeof(flag), "escalated:%s", escalation_name(why));
    turn_add_flag(at->t, flag);
    const struct agent *a = &at->c->orch->agents[at->agent];
    log_info("cascade: agent %s escalates from %s (%s)", a->name, a->cascade[at->level],
             escalation_name(why));
    pt_escalate(&at->pt, escalation_name(why), a->cascade[at->level], a->cascade[at->level + 1]);
    at->level++;
    at->escalated_for = ESC_NONE;
    step_start(at);
}

static int handoff_target(const struct agent_turn *at, const char *name)
{
    if (strncmp(name, "transfer_to_", 12) != 0)
        return -1;
    return orch_agent_find(at->c->orch, name + 12);
}

/* A transfer_to_AGENT call: hand the turn over, or end it on a loop. Returns true when the step
 * was handled (a new step started or the turn ended). */
static bool maybe_handoff(struct agent_turn *at)
{
    for (size_t i = 0; i < at->n_calls; i++) {
        int to = handoff_target(at, at->calls[i].name);
        if (to < 0)
            continue;
        enum handoff_verdict v = orch_handoff_check(at->c->orch, at->chain, at->n_chain, to);
        if (v == HANDOFF_NOT_ALLOWED)
            return false; /* reported to the model as an unknown tool */
        if (v != HANDOFF_OK) {
            char msg[160];
            snprintf(msg, sizeof(msg), "the assistant could not decide who answers (%s -> %s: %s)",
                     at->c->orch->agents[at->agent].name, at->c->orch->agents[to].name,
                     v == HANDOFF_LOOP ? "a loop" : "too many handoffs");
            turn_add_flag(at->t, "routing_loop");
            pt_handoff(&at->pt, at->c->orch->agents[at->agent].name, at->c->orch->agents[to].name,
                       v == HANDOFF_LOOP ? "loop" : "limit");
            finish(at, "error", "routing_loop", msg);
            return true;
        }
        log_info("handoff: %s -> %s", at->c->orch->agents[at->agent].name,
                 at->c->orch->agents[to].name);
        pt_handoff(&at->pt, at->c->orch->agents[at->agent].name, at->c->orch->agents[to].name,
                   "ok");
        at->chain[at->n_chain++] = to;
        at->agent = to;
        at->level = 0;
        step_start(at);
        return true;
    }
    return false;
}

static void tools_done(void *ctx, struct tool_batch *b);

static bool call_is_valid(struct agent_turn *at, const struct llm_msg_tool_call *c)
{
    const struct agent *a = &at->c->orch->agents[at->agent];
    const struct tool_def *td = tool_set_find(at->c->tools, c->name, strlen(c->name));
    char err[160];
    return td && orch_agent_has_tool(a, c->name) &&
           tool_check_args(td, at->env.doc, c->arguments, c->arguments_len, err, sizeof(err)) == 0;
}

/* The model asked for tools: run them all at once, the exchange grows by the call and results. */
static void run_tools(struct agent_turn *at)
{
    size_t invalid = at->n_refused;
    for (size_t i = 0; i < at->n_calls; i++)
        invalid += !call_is_valid(at, &at->calls[i]);
    if (invalid && can_escalate(at)) {
        escalate(at, ESC_INVALID_TOOL_CALL);
        return;
    }
    struct llm_msg_tool_call *calls = own(at, xmalloc(at->n_calls * sizeof(*calls)));
    memcpy(calls, at->calls, at->n_calls * sizeof(*calls));
    ex_add(at, (struct llm_message){.role = "assistant",
                                    .content = "",
                                    .len = 0,
                                    .tool_calls = calls,
                                    .n_tool_calls = at->n_calls});
    bool search = false;
    for (size_t i = 0; i < at->n_calls; i++)
        search |= strstr(calls[i].name, "search") != NULL;
    session_turn_status(at->t, search ? "searching" : "calling_tool",
                        search ? NULL : calls[0].name);
    plan_state(at, AP_TOOLS);
    pt_tools_start(&at->pt, at->env.tools, calls, at->n_calls, false);
    at->batch = tool_batch_start(at->env.tools, at->c->tools, calls, at->n_calls, tools_done, at);
}

/* Products of a search or product tool join the turn's slate (sent by send_slate). */
static void add_slate(struct agent_turn *at, const char *name, const char *text, size_t len)
{
    if (!at->shown && (strstr(name, "search") || !strcmp(name, "get_product"))) {
        const struct tool_def *td = tool_set_find(at->c->tools, name, strlen(name));
        slate_add_result(&at->slate, at->env.doc, text, len, 5, td ? td->base_url : NULL);
    }
}

/* The slate goes out once, before the answer, with what the first tool step found. */
static void send_slate(struct agent_turn *at)
{
    if (at->shown || !at->slate.n)
        return;
    struct buf items = {0};
    slate_to_json(&at->slate, &items);
    session_turn_products(at->t, buf_begin(&items), buf_size(&items));
    buf_free(&items);
    turn_set_memo(at->t, &at->slate, sizeof(at->slate));
}

static void tools_done(void *ctx, struct tool_batch *b)
{
    struct agent_turn *at = ctx;
    /* the calls array is owned apart from at->ex, which ex_add below may move */
    const struct llm_msg_tool_call *asked = at->ex[at->n_ex - 1].m.tool_calls;
    uint32_t failed = 0;
    for (size_t i = 0; i < tool_batch_count(b); i++) {
        const struct tool_result *r = tool_batch_result(b, i);
        const struct llm_msg_tool_call *c = &asked[i];
        size_t rl;
        const char *raw = tool_batch_raw(b, i, &rl);
        record_tool(at, i, c->name, c->arguments, c->arguments_len, r, raw, rl);
        failed += r->status != TOOL_OK;
        const char *text = keep(at, buf_begin(&r->text), buf_size(&r->text));
        ex_add(at, (struct llm_message){.role = "tool",
                                        .content = text,
                                        .len = buf_size(&r->text),
                                        .tool_call_id = c->id,
                                        .tool_name = c->name,
                                        .is_error = r->status != TOOL_OK});
        if (r->status == TOOL_OK && raw)
            add_slate(at, c->name, raw, rl); /* the cards show what the model was spared */
    }
    tool_batch_free(b);
    at->batch = NULL;
    send_slate(at);
    if (failed && at->c->orch->agents[at->agent].escalate_on_tool_failure && can_escalate(at)) {
        escalate(at, ESC_TOOL_FAILED);
        return;
    }
    step_start(at);
}

static const char *turn_finish(const char *provider_finish)
{
    return strcmp(provider_finish, "length") == 0 ? "length" : "stop";
}

static void step_complete(void *ctx, const struct model_result *r)
{
    struct agent_turn *at = ctx;
    pt_model_end(&at->pt.step, r);
    record_attempts(at, r);
    at->call = NULL;
    if (r->outcome == MODEL_CANCELLED && at->escalated_for == ESC_NONE)
        return; /* the session cancelled the turn (agent_plan_cancel) */
    if (at->escalated_for != ESC_NONE) {
        escalate(at, at->escalated_for);
        return;
    }
    if (r->outcome == MODEL_FAILED) {
        if (can_escalate(at)) {
            escalate(at, ESC_MODEL_ERROR);
            return;
        }
        finish(at, "error", at->shown ? "provider_error" : "provider_unavailable",
               r->client_message);
        return;
    }
    if (at->n_calls || at->n_refused) {
        if (at->holding)
            release_held(at);
        if (!maybe_handoff(at))
            run_tools(at);
        return;
    }
    if (at->holding) {
        if (!buf_size(&at->held) && can_escalate(at)) {
            escalate(at, ESC_EMPTY);
            return;
        }
        release_held(at);
    } else if (!at->shown && can_escalate(at)) {
        escalate(at, ESC_EMPTY); /* no text, no tool call */
        return;
    }
    narr_finish(&at->narr, to_client, at);
    finish(at, turn_finish(r->finish), NULL, NULL);
}

static const struct model_sink_ops step_sink = {
    .on_text = step_text,
    .on_tool_call = step_tool_call,
    .committed = step_committed,
    .on_reset = step_reset,
    .on_complete = step_complete,
};

/* ---- a step: one model call of the current agent ---- */

/* What a follow-up refers to, from the products shown before: the specialist gets the one product
 * the message points at (not the results the user passed over); a comparison gets the products
 * shown. Returns the messages written to out (0 or 1). */
static size_t slate_note(struct agent_turn *at, const struct agent *a, const struct slate *sl,
                         const struct history_msg *user, struct llm_message *out)
{
    char note[1200];
    size_t nl = 0;
    if (a->context == CTX_CHOSEN_PRODUCT) {
        struct slate_ref refs[SLATE_MAX];
        for (int i = 0; i < sl->n; i++)
            refs[i] = (struct slate_ref){sl->items[i].id, sl->items[i].title,
                                         sl->items[i].price_micros / 1000000};
        int pick = context_resolve_product(user->text, user->len, refs, (size_t)sl->n);
        if (pick < 0)
            return 0;
        nl = (size_t)snprintf(note, sizeof(note), "The customer is asking about product id %s: %s.",
                              sl->items[pick].id, sl->items[pick].title);
    } else if (at->guess.type == QT_COMPARISON && sl != &at->slate) {
        nl = (size_t)snprintf(note, sizeof(note), "Products shown to the customer before:");
        for (int i = 0; i < sl->n && nl < sizeof(note) - 200; i++)
            nl += (size_t)snprintf(note + nl, sizeof(note) - nl, "%s id %s: %s (price %lld)",
                                   i ? ";" : "", sl->items[i].id, sl->items[i].title,
                                   (long long)(sl->items[i].price_micros / 1000000));
        nl += (size_t)snprintf(note + nl, sizeof(note) - nl, ".");
    } else {
        return 0;
    }
    if (nl >= sizeof(note))
        nl = sizeof(note) - 1;
    *out = (struct llm_message){"system", keep(at, note, nl), nl};
    return 1;
}

/* System prompt, tool schemas (in the request's own field), then the context: a stable prefix
 * for provider prompt caches. The exchange of this turn comes last. */
static size_t build_messages(struct agent_turn *at, const struct agent *a)
{
    const struct history_msg *h;
    size_t hn = turn_history(at->t, &h);
    struct ctx_msg *cm = xcalloc(hn ? hn : 1, sizeof(*cm));
    for (size_t i = 0; i < hn; i++)
        cm[i] = (struct ctx_msg){h[i].role, h[i].text, h[i].len};
    size_t idx[64];
    size_t k = context_select(a->context, cm, hn, idx, 64);
    xfree(cm);
    at->msgs = xrealloc(at->msgs, (k + at->n_ex + 3) * sizeof(*at->msgs));
    size_t m = 0;
    at->msgs[m++] = (struct llm_message){"system", a->prompt, a->prompt_len};
    /* A chosen-product question ("the second one") points into the slate the customer saw
     * before this turn, not at what this turn's preload fetched (that slate has the chosen
     * product only, so an ordinal above one resolved to nothing). */
    const struct slate *sl = a->context == CTX_CHOSEN_PRODUCT && at->prev.n ? &at->prev
                             : at->slate.n                                  ? &at->slate
                                                                            : &at->prev;
    if (sl->n && hn)
        m += slate_note(at, a, sl, &h[hn - 1], &at->msgs[m]);
    for (size_t i = 0; i < k; i++)
        at->msgs[m++] = (struct llm_message){h[idx[i]].role, h[idx[i]].text, h[idx[i]].len};
    for (size_t i = 0; i < at->n_ex; i++)
        at->msgs[m++] = at->ex[i].m;
    return m;
}

static size_t build_tools(struct agent_turn *at, const struct agent *a)
{
    const struct orch_conf *oc = at->c->orch;
    at->tools = xrealloc(at->tools, (AGENT_MAX_TOOLS + AGENT_MAX_HANDOFFS) * sizeof(*at->tools));
    size_t n = 0;
    for (int i = 0; i < a->n_tools; i++) {
        const struct tool_def *td = tool_set_find(at->c->tools, a->tools[i], strlen(a->tools[i]));
        if (td)
            tool_to_llm(td, &at->tools[n++]);
    }
    for (int i = 0; i < a->n_handoffs; i++) {
        int to = orch_agent_find(oc, a->handoffs[i]);
        char name[48];
        int nl = snprintf(name, sizeof(name), "transfer_to_%s", a->handoffs[i]);
        at->tools[n++] = (struct llm_tool){
            .name = keep(at, name, (size_t)nl),
            .description = keep(at, oc->agents[to].name, strlen(oc->agents[to].name)),
            .parameters_json = "{\"type\":\"object\",\"properties\":{}}",
        };
    }
    return n;
}

/* The turn's cost ceiling is reached: no further model call (docs/routing.md). Returns true when
 * the turn was ended. */
static bool cost_ceiling_stop(struct agent_turn *at)
{
    int64_t ceiling = route_cost_ceiling(at->c->orch->routes[at->guess.type].max_cost_micros,
                                         at->c->turn_max_micros);
    if (!turn_cost_stop(ceiling, at->cost, at->model_steps))
        return false;
    char msg[160];
    snprintf(msg, sizeof(msg),
             "this turn reached its cost ceiling (%lld of %lld micros) and was stopped",
             (long long)at->cost, (long long)ceiling);
    log_info("turn stopped at its cost ceiling: %lld of %lld micros after %u model calls",
             (long long)at->cost, (long long)ceiling, at->model_steps);
    turn_add_flag(at->t, "turn_cost_limit");
    finish(at, "error", "turn_cost_limit", msg);
    return true;
}

static void step_start(struct agent_turn *at)
{
    const struct orch_conf *oc = at->c->orch;
    const struct agent *a = &oc->agents[at->agent];
    if (cost_ceiling_stop(at))
        return;
    at->model_steps++;
    plan_state(at, AP_STEP);
    pt_agent_step(&at->pt, a->name, at->level, at->steps + 1);
    at->n_calls = at->n_refused = 0;
    at->holding = oc->hold_opening && !at->shown;
    buf_reset(&at->held);
    size_t m = build_messages(at, a);
    at->n_tools = build_tools(at, a);
    at->req = (struct llm_request){
        .messages = at->msgs,
        .n_messages = m,
        .tools = at->n_tools ? at->tools : NULL,
        .n_tools = at->n_tools,
        .max_tokens = oc->routes[at->guess.type].max_tokens,
        .temperature = -1,
        /* out of steps: the answer now, from what the tools said */
        .tool_choice = at->n_tools && at->steps >= a->max_steps ? "none" : NULL,
        /* the prefix (tools, the agent's prompt) is byte-stable across turns: cache it */
        .cache_key = at->cache_key,
        .cache_prefix = true,
    };
    snprintf(at->cache_key, sizeof(at->cache_key), "%s:%s", a->name, a->prompt_version);
    at->steps++;
    struct model_call_spec spec = {
        .routes = &at->c->routes[at->agent][at->level],
        .n_routes = 1,
        .request = &at->req,
        .policy = at->c->policy,
        .pricing = at->c->pricing,
        .role = at->level ? "escalation" : "model",
    };
    struct model_sink sink = {&step_sink, at};
    pt_model_start(&at->pt, &at->pt.step, &spec, a->name, a->prompt_version);
    at->call = model_call_start(at->env.l, at->env.hc, &spec, &sink);
    if (!at->call)
        finish(at, "error", "internal", "the model call could not start");
}

/* ---- classification, prefetch, routing ---- */

static void use_prefetch(struct agent_turn *at)
{
    const struct tool_result *r = tool_call_result(at->prefetch);
    const char *name = at->c->prefetch_tool;
    size_t rl;
    const char *raw = tool_call_raw(at->prefetch, &rl);
    record_tool(at, (size_t)-1, name, at->prefetch_args, strlen(at->prefetch_args), r, raw, rl);
    const struct agent *a = &at->c->orch->agents[at->agent];
    if (r->status != TOOL_OK || !orch_agent_has_tool(a, name) ||
        at->guess.type != QT_PRODUCT_SEARCH)
        return;
    struct llm_msg_tool_call *c = own(at, xcalloc(1, sizeof(*c)));
    c->id = "call_prefetch";
    c->name = name;
    c->arguments = keep(at, at->prefetch_args, strlen(at->prefetch_args));
    c->arguments_len = strlen(at->prefetch_args);
    ex_add(at,
           (struct llm_message){
               .role = "assistant", .content = "", .len = 0, .tool_calls = c, .n_tool_calls = 1});
    const char *text = keep(at, buf_begin(&r->text), buf_size(&r->text));
    ex_add(at, (struct llm_message){.role = "tool",
                                    .content = text,
                                    .len = buf_size(&r->text),
                                    .tool_call_id = c->id,
                                    .tool_name = name});
    add_slate(at, name, raw, rl);
    send_slate(at);
}

static bool slate_names(const struct slate *s, const char *word)
{
    for (int i = 0; i < s->n; i++)
        if (strcasestr(s->items[i].title, word))
            return true;
    return false;
}

/* Which products of the previous slate the message refers to, into idx[0..4): none when it
 * asks for a new search instead. Returns how many. */
static size_t preload_picks(struct agent_turn *at, size_t idx[4])
{
    enum query_type qt = at->guess.type;
    const struct history_msg *h;
    size_t hn = turn_history(at->t, &h);
    struct slate_ref refs[SLATE_MAX];
    for (int i = 0; i < at->prev.n; i++)
        refs[i] = (struct slate_ref){at->prev.items[i].id, at->prev.items[i].title,
                                     at->prev.items[i].price_micros / 1000000};
    const char *text = h[hn - 1].text;
    size_t len = h[hn - 1].len, n = (size_t)at->prev.n;
    if (qt == QT_COMPARISON) {
        /* "compare the two cheapest laptops under 100000" after a search for headphones asks for
         * a new search, not for what was shown: a new budget, or a kind of product no shown
         * title names, goes to the agent's own tools */
        char kind[24];
        if (at->guess.slots.max_price >= 0 || at->guess.slots.min_price >= 0 ||
            (query_product_kind(text, len, kind, sizeof(kind)) && !slate_names(&at->prev, kind)))
            return 0;
        return context_pick_products(text, len, refs, n, idx, 4);
    }
    int pick = context_resolve_product(text, len, refs, n);
    if (pick < 0 && n == 1)
        pick = 0; /* "it": the one product the last answer was about */
    idx[0] = (size_t)pick;
    return pick >= 0 ? 1 : 0;
}

/* "can it be delivered to 560001?": the offer of the chosen product for that pincode too. */
static void preload_offer(struct agent_turn *at, const struct agent *a, size_t pick)
{
    const char *offers = "get_offers";
    const struct tool_def *od = tool_set_find(at->c->tools, offers, strlen(offers));
    if (!od || !orch_agent_has_tool(a, offers) || strchr(at->prev.items[pick].id, '"'))
        return;
    char args[200], err[160];
    snprintf(args, sizeof(args), "{\"id\":\"%s\",\"pincode\":\"%s\"}", at->prev.items[pick].id,
             at->guess.slots.pincode);
    if (tool_check_args(od, at->env.doc, args, strlen(args), err, sizeof(err)) == 0)
        at->calls[at->n_calls++] = (struct llm_msg_tool_call){
            "call_preload_offers", offers, keep(at, args, strlen(args)), strlen(args)};
}

/* A follow-up about products shown before ("compare the two cheapest", "battery of the second
 * one"): the agent gets those products' details at once (get_product for each, all at once), as
 * if it had asked, instead of the whole earlier conversation. Returns true when tools started. */
static bool preload(struct agent_turn *at)
{
    const char *tool = "get_product";
    const struct agent *a = &at->c->orch->agents[at->agent];
    const struct tool_def *td = tool_set_find(at->c->tools, tool, strlen(tool));
    enum query_type qt = at->guess.type;
    if (!at->prev.n || !td || !orch_agent_has_tool(a, tool) ||
        (qt != QT_COMPARISON && qt != QT_PRODUCT_FACT))
        return false;
    size_t idx[4], k = preload_picks(at, idx);
    at->n_calls = 0;
    for (size_t i = 0; i < k; i++) {
        char args[160], id[40]; /* "call_preload_" and any size_t */
        struct buf b = {0};
        struct jsonw w;
        jw_init(&w, &b);
        jw_obj_begin(&w);
        jw_kstr(&w, "id", at->prev.items[idx[i]].id);
        jw_obj_end(&w);
        snprintf(args, sizeof(args), "%.*s", (int)buf_size(&b), buf_begin(&b));
        buf_free(&b);
        char err[160];
        if (tool_check_args(td, at->env.doc, args, strlen(args), err, sizeof(err)) < 0)
            return false; /* this API's product tool takes other arguments */
        snprintf(id, sizeof(id), "call_preload_%zu", i + 1);
        at->calls[at->n_calls++] = (struct llm_msg_tool_call){
            keep(at, id, strlen(id)), tool, keep(at, args, strlen(args)), strlen(args)};
    }
    if (qt == QT_PRODUCT_FACT && k == 1 && at->guess.slots.pincode[0])
        preload_offer(at, a, idx[0]);
    if (!at->n_calls)
        return false;
    run_tools(at);
    return true;
}

/* Routed (and not answered by a cache): preload what a follow-up refers to, or the first step. */
static void answer(struct agent_turn *at)
{
    if (preload(at))
        return;
    step_start(at);
}

/* ---- the answer cache (docs/caching.md) ---- */

/* A flag that says the answer may be wrong is never cached; a cheaper-model retry is not one. */
static bool answer_flagged(struct agent_turn *at)
{
    uint32_t n;
    const char(*f)[32] = turn_flags(at->t, &n);
    for (uint32_t i = 0; i < n; i++)
        if (strncmp(f[i], "escalated:", 10) != 0 && strcmp(f[i], "classifier_late") != 0)
            return true;
    return false;
}

static void offer_answer(struct agent_turn *at)
{
    if (!buf_size(&at->answer) || answer_flagged(at))
        return;
    struct ac_answer a = {buf_begin(&at->answer), buf_size(&at->answer), at->spent};
    answer_cache_offer(at->env.cache, at->cq, &a);
}

static void cache_done(void *ctx, int layer, const struct ac_hit *hit)
{
    struct agent_turn *at = ctx;
    at->lookup = NULL;
    pt_cache_end(&at->pt, hit ? cache_layer_name((enum cache_layer)layer) : NULL,
                 hit ? hit->cost_micros : 0);
    if (!hit) {
        plan_state(at, AP_STEP);
        answer(at);
        return;
    }
    const char *name = cache_layer_name((enum cache_layer)layer);
    struct cache_saving_record s = {.amount_micros = -hit->cost_micros};
    snprintf(s.layer, sizeof(s.layer), "%s", name);
    snprintf(s.description, sizeof(s.description), "%s cache: answer of %s (%s, %s)", name,
             at->cq->agent, at->cq->prompt_version, at->cq->model);
    turn_add_saving(at->t, &s);
    turn_set_cache(at->t, name);
    at->from_cache = true;
    for (size_t off = 0, end; off < hit->len; off = end) {
        end = ac_chunk_end(hit->text, hit->len, off);
        to_client(at, hit->text + off, end - off);
    }
    finish(at, "stop", NULL, NULL);
}

/* A route some cache layer serves (cacheable, or a semantic_threshold): ask the layers before the
 * first model call, keyed on what that call would send. Returns true when a lookup started
 * (cache_done goes on). */
static bool cache_lookup(struct agent_turn *at)
{
    const struct orch_conf *oc = at->c->orch;
    const struct route *rc = &oc->routes[at->guess.type];
    if (!answer_cache_layers(at->env.cache))
        return false;
    const struct agent *a = &oc->agents[at->agent];
    const struct history_msg *h;
    size_t hn = turn_history(at->t, &h), m = build_messages(at, a), user = m;
    for (size_t i = 0; i < m; i++)
        if (at->msgs[i].content == h[hn - 1].text)
            user = i;
    at->n_tools = build_tools(at, a);
    const struct model_route *r = &at->c->routes[at->agent][at->level];
    char model[200];
    snprintf(model, sizeof(model), "%s/%s", llm_provider_name(r->provider), r->model);
    struct ac_query q = {
        .text = h[hn - 1].text,
        .len = h[hn - 1].len,
        .query_type = query_type_name(at->guess.type),
        .agent = a->name,
        .prompt_version = a->prompt_version,
        .model = model,
        .cacheable = rc->cacheable,
        .ttl_s = rc->cache_ttl_s,
        .now_unix_ms = unix_now_ms(),
        .store = turn_store(at->t),
        .currency = at->c->pricing->currency,
    };
    ac_context_hash(at->msgs, m, 0, user, at->tools, at->n_tools, q.context_hash, &q.single_shot);
    if (!answer_cache_wants(at->env.cache, &q))
        return false;
    at->cq = ac_query_dup(&q);
    plan_state(at, AP_CACHE);
    pt_cache_begin(&at->pt, model);
    at->lookup = answer_cache_lookup(at->env.cache, &q, cache_done, at);
    return true;
}

/* Both the classification and the prefetch are over: route and take the first step. */
static void route(struct agent_turn *at)
{
    if (at->cls_running || at->prefetch_running || at->state != AP_CLASSIFY)
        return;
    const struct orch_conf *oc = at->c->orch;
    at->agent = oc->routes[at->guess.type].agent;
    at->chain[0] = at->agent;
    at->n_chain = 1;
    turn_set_route(at->t, query_type_name(at->guess.type), oc->agents[at->agent].name);
    pt_classify_end(&at->pt, query_type_name(at->guess.type), at->guess.confidence,
                    at->cls_decided);
    if (at->prefetch) {
        use_prefetch(at);
        tool_call_free(at->prefetch);
        at->prefetch = NULL;
    }
    const struct agent *a = &oc->agents[at->agent];
    if (oc->min_confidence > 0 && at->guess.confidence < oc->min_confidence && a->n_cascade > 1) {
        turn_add_flag(at->t, "escalated:low_confidence");
        at->level = 1;
    }
    if (cache_lookup(at))
        return;
    answer(at);
}

static void prefetch_done(void *ctx, struct tool_call *c)
{
    (void)c;
    struct agent_turn *at = ctx;
    at->prefetch_running = false;
    route(at);
}

static void start_prefetch(struct agent_turn *at, const char *text, size_t len)
{
    const char *name = at->c->prefetch_tool;
    const struct tool_def *td =
        name && name[0] ? tool_set_find(at->c->tools, name, strlen(name)) : NULL;
    if (!td || !query_looks_like_search(text, len))
        return;
    struct buf b = {0};
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj_begin(&w);
    jw_kstr(&w, "q", at->guess.query);
    if (at->guess.slots.max_price > 0)
        jw_kint(&w, "max_price", at->guess.slots.max_price);
    if (at->guess.slots.min_price > 0)
        jw_kint(&w, "min_price", at->guess.slots.min_price);
    jw_obj_end(&w);
    snprintf(at->prefetch_args, sizeof(at->prefetch_args), "%.*s", (int)buf_size(&b),
             buf_begin(&b));
    buf_free(&b);
    char err[160];
    if (tool_check_args(td, at->env.doc, at->prefetch_args, strlen(at->prefetch_args), err,
                        sizeof(err)) < 0)
        return; /* this API's search takes other arguments: no prefetch */
    session_turn_status(at->t, "searching", NULL);
    at->prefetch_running = true;
    struct llm_msg_tool_call pc = {"call_prefetch", name, at->prefetch_args,
                                   strlen(at->prefetch_args)};
    pt_tools_start(&at->pt, at->env.tools, &pc, 1, true);
    at->prefetch = tool_call_start(at->env.tools, td, at->prefetch_args, strlen(at->prefetch_args),
                                   prefetch_done, at);
}

static const char classifier_prompt[] =
    "Classify the customer's message for an online store. Reply with JSON only: "
    "{\"query_type\": one of \"product_search\", \"product_fact\", \"comparison\", \"policy\", "
    "\"order_status\", \"chitchat\", \"other\"; \"confidence\": 0 to 1; \"query\": the search "
    "words}";

static void cls_text_cb(void *ctx, const char *text, size_t len)
{
    struct agent_turn *at = ctx;
    pt_model_text(&at->pt.cls, text, len);
    if (buf_size(&at->cls_text) < 4096)
        buf_append(&at->cls_text, text, len);
}

static void cls_reset(void *ctx)
{
    buf_reset(&((struct agent_turn *)ctx)->cls_text);
}

static void cls_complete(void *ctx, const struct model_result *r)
{
    struct agent_turn *at = ctx;
    pt_model_end(&at->pt.cls, r);
    record_attempts(at, r);
    at->cls = NULL;
    at->cls_running = false;
    timer_disarm(at->env.l, &at->cls_deadline);
    const struct history_msg *h;
    size_t hn = turn_history(at->t, &h);
    char err[160];
    if (r->outcome == MODEL_OK && hn) {
        struct query_guess g;
        /* The classifier decides, except that its "other" does not overrule a type the rules
         * recognise with confidence (a small model misses follow-ups like "the second one"). */
        if (query_parse_classifier(buf_begin(&at->cls_text), buf_size(&at->cls_text),
                                   h[hn - 1].text, h[hn - 1].len, &g, err, sizeof(err)) < 0)
            log_info("classifier: %s; the rules decide", err);
        else if (g.type == QT_OTHER && at->guess.type != QT_OTHER && at->guess.confidence >= 0.65f)
            log_info("classifier: says other; the rules' %s stands",
                     query_type_name(at->guess.type));
        else
            at->guess = g, at->cls_decided = true;
    } else if (r->outcome == MODEL_CANCELLED) {
        turn_add_flag(at->t, "classifier_late");
    }
    if (at->state == AP_CLASSIFY)
        route(at);
}

static const struct model_sink_ops cls_sink = {
    .on_text = cls_text_cb,
    .on_reset = cls_reset,
    .on_complete = cls_complete,
};

static void cls_deadline_fired(struct loop *l, struct timer *tm)
{
    (void)l;
    struct agent_turn *at =
        (struct agent_turn *)((char *)tm - offsetof(struct agent_turn, cls_deadline));
    if (at->cls)
        model_call_cancel(at->cls); /* cls_complete routes with the rules' answer */
}

static void start_classifier(struct agent_turn *at, const char *text, size_t len)
{
    const struct orch_conf *oc = at->c->orch;
    if (!oc->classifier_model[0])
        return;
    at->cls_msgs[0] =
        (struct llm_message){"system", classifier_prompt, sizeof(classifier_prompt) - 1};
    at->cls_msgs[1] = (struct llm_message){"user", text, len};
    at->cls_req = (struct llm_request){
        .messages = at->cls_msgs,
        .n_messages = 2,
        .max_tokens = oc->classifier_max_tokens,
        .temperature = 0,
        .cache_key = "classifier",
        .cache_prefix = true,
    };
    struct model_call_spec spec = {
        .routes = &at->c->classifier,
        .n_routes = 1,
        .request = &at->cls_req,
        .policy = at->c->policy,
        .pricing = at->c->pricing,
        .role = "classifier",
    };
    struct model_sink sink = {&cls_sink, at};
    session_turn_status(at->t, "classifying", NULL);
    pt_model_start(&at->pt, &at->pt.cls, &spec, NULL, NULL);
    at->cls = model_call_start(at->env.l, at->env.hc, &spec, &sink);
    if (!at->cls)
        return;
    at->cls_running = true;
    timer_arm(at->env.l, &at->cls_deadline, loop_now_ms(at->env.l) + oc->classifier_deadline_ms,
              cls_deadline_fired);
}

/* Start a turn's plan; see the header. */
struct agent_turn *agent_plan_start(const struct agent_plan_conf *c,
                                    const struct agent_plan_env *env, struct turn *t)
{
    const struct history_msg *h;
    size_t hn = turn_history(t, &h);
    if (!hn)
        return NULL;
    struct agent_turn *at = xcalloc(1, sizeof(*at));
    at->t = t;
    at->c = c;
    at->env = *env;
    at->agent = -1;
    tool_cache_set_store(env->tool_cache, turn_store(t));
    narr_init(&at->narr);
    pt_init(&at->pt, turn_trace(t));
    pt_classify_begin(&at->pt);
    size_t ml;
    const void *memo = turn_memo(t, &ml);
    if (memo && ml == sizeof(at->prev))
        memcpy(&at->prev, memo, sizeof(at->prev));
    const char *text = h[hn - 1].text;
    size_t len = h[hn - 1].len;
    query_classify_rules(text, len, &at->guess);
    turn_set_responder_state(t, at);
    start_classifier(at, text, len);
    start_prefetch(at, text, len);
    if (!at->cls_running && !at->prefetch_running)
        route(at); /* nothing to wait for */
    return at;
}

/* Cancel the turn's plan; see the header. */
void agent_plan_cancel(struct agent_turn *at)
{
    turn_set_responder_state(at->t, NULL);
    at->state = AP_DONE;
    if (at->cls)
        model_call_cancel(at->cls); /* records the call (cls_complete: state is DONE) */
    answer_cache_cancel(at->lookup);
    at->lookup = NULL;
    if (at->call) {
        at->escalated_for = ESC_NONE;
        model_call_cancel(at->call);
    }
    if (at->batch) {
        tool_batch_cancel(at->batch);
        const struct llm_message *asked = &at->ex[at->n_ex - 1].m;
        for (size_t i = 0; i < tool_batch_count(at->batch); i++)
            record_tool(at, i, asked->tool_calls[i].name, asked->tool_calls[i].arguments,
                        asked->tool_calls[i].arguments_len, tool_batch_result(at->batch, i), NULL,
                        0);
    }
    plan_free(at);
}
