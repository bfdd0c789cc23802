/* agent_plan.c - a turn as a plan of agents (agent_plan.h): the state machine, its steps, tools,
 * escalations, handoffs and end.
 *
 *   CLASSIFY --(classifier answer | deadline | no classifier)--> route --> STEP
 *   STEP --tool calls--> TOOLS --all ended--> STEP          (at most max_steps with tools)
 *   STEP --handoff--> STEP of the other agent                (loop or limit: routing_loop)
 *   STEP --nothing shown and a detectable failure--> STEP on the next model of the cascade
 *   STEP --answer--> DONE (narration removed as it streamed; grounding checked; turn ends)
 *
 * One enum and one transition function (ap__state) hold the plan's state. The search prefetch
 * runs beside CLASSIFY; when the turn routes to an agent that may search, its result enters the
 * context as if the agent had called the tool, so the first model call can answer at once.
 * Classification, prefetch and routing are in plan_route.c, the slate and follow-up preloads in
 * plan_preload.c, the answer cache in plan_cache.c; agent_plan_int.h is what they share. */
#include "orchestrator/agent_plan.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "orchestrator/agent_plan_int.h"
#include "orchestrator/context.h"
#include "orchestrator/guard.h"
#include "orchestrator/plan_trace.h"
#include "orchestrator/query.h"
#include "orchestrator/slate.h"
#include "trace/flags.h"

static const char *const state_names[] = {"classify", "cache", "step", "tools", "done"};

/* The one place the plan changes state (and logs it). */
void ap__state(struct agent_turn *at, enum ap_state to)
{
    log_debug("plan %p: %s -> %s", (void *)at, state_names[at->state], state_names[to]);
    at->state = to;
}

/* The turn takes p (xmalloc'd): freed with the plan. Returns p. */
void *ap__own(struct agent_turn *at, void *p)
{
    at->owned = xrealloc(at->owned, (at->n_owned + 1) * sizeof(*at->owned));
    at->owned[at->n_owned++] = p;
    return p;
}

/* A copy of p[0..n) the turn owns. */
const char *ap__keep(struct agent_turn *at, const char *p, size_t n)
{
    /* See agent_plan_int.h. */
    return ap__own(at, xstrndup(p ? p : "", p ? n : 0));
}

/* See agent_plan_int.h. */
void ap__ex_add(struct agent_turn *at, struct llm_message m)
{
    at->ex = xrealloc(at->ex, (at->n_ex + 1) * sizeof(*at->ex));
    at->ex[at->n_ex++].m = m;
}

/* The step's call ended (any outcome): its reservation becomes what it used, once. */
static void release_capacity(struct agent_turn *at, const struct model_result *r)
{
    capacity_complete(at->c->capacity, &at->hold, r ? r->attempts : NULL, r ? r->n_attempts : 0,
                      capacity_now_ms());
}

static void plan_free(struct agent_turn *at)
{
    release_capacity(at, NULL); /* a step that never completed (nothing when it did) */
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

/* See agent_plan_int.h. */
void ap__record_attempts(struct agent_turn *at, const struct model_result *r)
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
void ap__record_tool(struct agent_turn *at, size_t i, const char *name, const char *args,
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

/* What an answer may state: the turn's tool results, then what the step's request carried
 * before them - the notes on products shown before, the conversation in the agent's context,
 * the user's message (newest first when they do not all fit) - at most 64. The exchange's own
 * system notes (a withdrawn draft's reason, which quotes the mistake) are not sources. */
static size_t answer_sources(const struct agent_turn *at, const char **src, size_t *lens)
{
    size_t n = 0;
    for (size_t i = 0; i < at->n_ex && n < 48; i++)
        if (!strcmp(at->ex[i].m.role, "tool") && !at->ex[i].m.is_error)
            src[n] = at->ex[i].m.content, lens[n++] = at->ex[i].m.len;
    if (at->msgs && at->n_ctx > 1) {
        for (size_t i = at->n_ctx - 1; i >= 1 && n < 64; i--)
            if (at->msgs[i].len)
                src[n] = at->msgs[i].content, lens[n++] = at->msgs[i].len;
        return n;
    }
    const struct history_msg *h;
    size_t hn = turn_history(at->t, &h);
    if (hn)
        src[n] = h[hn - 1].text, lens[n++] = h[hn - 1].len;
    return n;
}

static void ground(struct agent_turn *at)
{
    const char *src[64];
    size_t lens[64];
    size_t n = answer_sources(at, src, lens);
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

/* See agent_plan_int.h. */
void ap__finish(struct agent_turn *at, const char *reason, const char *code, const char *msg)
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
        /* See agent_plan_int.h. */
        ap__offer_answer(at);
    pt_agent_end(&at->pt, code ? m : NULL);
    /* See agent_plan_int.h. */
    ap__state(at, AP_DONE);
    turn_set_responder_state(t, NULL);
    plan_free(at);
    session_turn_done(t, reason, code, code ? m : NULL);
}

/* ---- the client side of a step: narration filter, optional held opening ---- */

/* See agent_plan_int.h. */
void ap__to_client(void *ctx, const char *text, size_t len)
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
        narr_feed(&at->narr, buf_begin(&at->held), buf_size(&at->held), ap__to_client, at);
    buf_reset(&at->held);
}

/* The route's verify: check held[from..from + len) (want_table only for the whole answer).
 * Returns the escalation it calls for (ESC_NONE: it may be shown). */
static enum escalation verify_range(struct agent_turn *at, size_t from, size_t len, bool whole)
{
    const char *src[64];
    size_t lens[64];
    size_t n = answer_sources(at, src, lens);
    struct verify_result vr;
    bool table = whole && at->c->orch->routes[at->guess.type].want_table;
    enum verify_verdict v =
        verify_answer(buf_begin(&at->held) + from, len, src, lens, n, table, &vr);
    if (v == VERIFY_OK && !whole)
        return ESC_NONE;
    const char *why = v == VERIFY_FORMAT ? "no_table" : v ? "ungrounded" : NULL;
    struct trace_attr va[] = {{"trilemma.verify.claims", TA_INT, NULL, vr.g.claims},
                              {"trilemma.verify.mismatches", TA_INT, NULL, vr.g.mismatches},
                              {"trilemma.verify.names", TA_INT, NULL, vr.names},
                              {"trilemma.verify.unknown_names", TA_INT, NULL, vr.unknown_names},
                              {"trilemma.verify.first_mismatch", TA_STR,
                               vr.g.mismatches ? vr.g.first_mismatch : vr.first_name, 0}};
    pt_guard(&at->pt, "verify", why, va, v ? 5 : 4);
    if (v == VERIFY_FORMAT)
        snprintf(at->verify_note, sizeof(at->verify_note), "it had no Markdown table");
    else if (v)
        snprintf(at->verify_note, sizeof(at->verify_note), "it stated \"%s\"",
                 vr.g.mismatches ? vr.g.first_mismatch : vr.first_name);
    if (v)
        log_info("verify: the %s answer %s (%s)", at->c->orch->agents[at->agent].cascade[at->level],
                 v == VERIFY_FORMAT ? "has no table" : "states what no tool result has",
                 v == VERIFY_FORMAT ? "format = table"
                 : vr.g.mismatches  ? vr.g.first_mismatch
                                    : vr.first_name);
    return v == VERIFY_FORMAT ? ESC_FORMAT : v ? ESC_UNGROUNDED : ESC_NONE;
}

static enum escalation verify_held(struct agent_turn *at, size_t len, bool whole)
{
    return verify_range(at, 0, len, whole);
}

/* Hand held[at->released..to) to the client (through the narration filter). */
static void release_upto(struct agent_turn *at, size_t to)
{
    if (to > at->released)
        narr_feed(&at->narr, buf_begin(&at->held) + at->released, to - at->released, ap__to_client,
                  at);
    at->released = to;
}

/* verify = lines: check the lines of held completed since the last call (with final, the last
 * one too). A line that passes is shown - on a format = table route only once the table has
 * begun, so that until then nothing is shown and a missing table still escalates -; a line that
 * fails escalates while nothing was shown, and is left out afterwards (flag verify_dropped).
 * Returns the escalation it calls for. */
static enum escalation verify_stream(struct agent_turn *at, bool final)
{
    bool want_table = at->c->orch->routes[at->guess.type].want_table;
    const char *p = buf_begin(&at->held);
    size_t size = buf_size(&at->held);
    while (at->verified < size) {
        const char *nl = memchr(p + at->verified, '\n', size - at->verified);
        if (!nl && !final)
            break;
        size_t from = at->verified, to = nl ? (size_t)(nl - p) + 1 : size;
        at->verified = to;
        bool blank = true;
        for (size_t i = from; i < to && blank; i++)
            blank = isspace((unsigned char)p[i]) != 0;
        bool none_shown = !at->shown && at->released == 0;
        if (!blank && none_shown && answer_is_refusal(p, to))
            return ESC_REFUSAL;
        enum escalation e = verify_range(at, from, to - from, false);
        if (e != ESC_NONE && none_shown)
            return e;
        if (e != ESC_NONE) {
            release_upto(at, from); /* what passed before it */
            at->released = to;      /* and not this line */
            if (!at->dropped++)
                turn_add_flag(at->t, "verify_dropped");
            continue;
        }
        if (!want_table || answer_has_table(p, to))
            release_upto(at, to);
    }
    if (!final)
        return ESC_NONE;
    if (want_table && at->released == 0 && !answer_has_table(p, size))
        return verify_range(at, 0, size, true); /* ESC_FORMAT, traced */
    release_upto(at, size);
    return ESC_NONE;
}

/* Verifying: check each completed line as it arrives, so that a mistake early in a long answer
 * escalates without waiting for the rest. Returns true when the call was cancelled for it. */
static bool verify_lines(struct agent_turn *at)
{
    const char *p = buf_begin(&at->held);
    size_t end = buf_size(&at->held);
    while (end > at->verified && p[end - 1] != '\n')
        end--;
    if (end <= at->verified)
        return false;
    at->verified = end;
    enum escalation e = verify_held(at, end, false);
    if (e == ESC_NONE)
        return false;
    at->escalated_for = e; /* the completion escalates (nothing was shown) */
    model_call_cancel(at->call);
    return true;
}

static void step_text(void *ctx, const char *text, size_t len)
{
    struct agent_turn *at = ctx;
    if (!len)
        return;
    pt_model_text(&at->pt.step, text, len);
    session_turn_status(at->t, "answering", NULL);
    if (!at->holding) {
        narr_feed(&at->narr, text, len, ap__to_client, at);
        return;
    }
    buf_append(&at->held, text, len);
    if (at->verifying && at->verify_lines) {
        enum escalation e = memchr(text, '\n', len) ? verify_stream(at, false) : ESC_NONE;
        if (e != ESC_NONE) {
            at->escalated_for = e; /* the completion escalates (nothing was shown) */
            model_call_cancel(at->call);
        }
        return;
    }
    if (at->verifying) {
        if (memchr(text, '\n', len))
            verify_lines(at);
        return; /* all of it is held to the end */
    }
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
    c->id =
        ap__keep(at, tc->id && tc->id[0] ? tc->id : id, strlen(tc->id && tc->id[0] ? tc->id : id));
    c->name = ap__keep(at, tc->name, strlen(tc->name));
    c->arguments = ap__keep(at, tc->arguments, tc->arguments_len);
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
    at->verified = at->released = 0;
    buf_reset(&at->held);
}

/* ---- after a step ---- */

static bool can_escalate(const struct agent_turn *at)
{
    return !at->shown && at->level + 1 < at->c->orch->agents[at->agent].n_cascade;
}

/* A verified answer failed: the next model (the same one again, or the next of the cascade) is
 * told why, so that it does not repeat the mistake (docs/routing.md, "The verified answer"). */
static void verify_feedback(struct agent_turn *at, enum escalation why)
{
    char note[320];
    int n = snprintf(note, sizeof(note),
                     "A draft of this answer was withdrawn before the customer saw it: %s, %s. "
                     "Write the answer again%s.",
                     at->verify_note,
                     why == ESC_FORMAT ? "and this question needs one"
                                       : "which the tool results do not have",
                     why == ESC_FORMAT ? " with a Markdown table"
                                       : " using only the names, prices and specs in the tool "
                                         "results");
    size_t len = n < 0 ? 0 : (size_t)n < sizeof(note) ? (size_t)n : sizeof(note) - 1;
    /* See agent_plan_int.h. */
    ap__ex_add(at, (struct llm_message){"system", ap__keep(at, note, len), len});
}

static void escalate(struct agent_turn *at, enum escalation why)
{
    if (why == ESC_UNGROUNDED || why == ESC_FORMAT)
        verify_feedback(at, why);
    char flag[32];
    snprintf(flag, sizeof(flag), "escalated:%s", escalation_name(why));
    turn_add_flag(at->t, flag);
    const struct agent *a = &at->c->orch->agents[at->agent];
    log_info("cascade: agent %s escalates from %s (%s)", a->name, a->cascade[at->level],
             escalation_name(why));
    pt_escalate(&at->pt, escalation_name(why), a->cascade[at->level], a->cascade[at->level + 1]);
    at->level++;
    at->escalated_for = ESC_NONE;
    /* See agent_plan_int.h. */
    ap__step_start(at);
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
            /* See agent_plan_int.h. */
            ap__finish(at, "error", "routing_loop", msg);
            return true;
        }
        log_info("handoff: %s -> %s", at->c->orch->agents[at->agent].name,
                 at->c->orch->agents[to].name);
        pt_handoff(&at->pt, at->c->orch->agents[at->agent].name, at->c->orch->agents[to].name,
                   "ok");
        at->chain[at->n_chain++] = to;
        at->agent = to;
        at->level = 0;
        /* See agent_plan_int.h. */
        ap__step_start(at);
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
void ap__run_tools(struct agent_turn *at)
{
    size_t invalid = at->n_refused;
    for (size_t i = 0; i < at->n_calls; i++)
        invalid += !call_is_valid(at, &at->calls[i]);
    if (invalid && can_escalate(at)) {
        escalate(at, ESC_INVALID_TOOL_CALL);
        return;
    }
    struct llm_msg_tool_call *calls = ap__own(at, xmalloc(at->n_calls * sizeof(*calls)));
    memcpy(calls, at->calls, at->n_calls * sizeof(*calls));
    /* See agent_plan_int.h. */
    ap__ex_add(at, (struct llm_message){.role = "assistant",
                                        .content = "",
                                        .len = 0,
                                        .tool_calls = calls,
                                        .n_tool_calls = at->n_calls});
    bool search = false;
    for (size_t i = 0; i < at->n_calls; i++)
        search |= strstr(calls[i].name, "search") != NULL;
    session_turn_status(at->t, search ? "searching" : "calling_tool",
                        search ? NULL : calls[0].name);
    /* See agent_plan_int.h. */
    ap__state(at, AP_TOOLS);
    pt_tools_start(&at->pt, at->env.tools, calls, at->n_calls, false);
    at->batch = tool_batch_start(at->env.tools, at->c->tools, calls, at->n_calls, tools_done, at);
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
        /* See agent_plan_int.h. */
        ap__record_tool(at, i, c->name, c->arguments, c->arguments_len, r, raw, rl);
        failed += r->status != TOOL_OK;
        const char *text = ap__keep(at, buf_begin(&r->text), buf_size(&r->text));
        /* See agent_plan_int.h. */
        ap__ex_add(at, (struct llm_message){.role = "tool",
                                            .content = text,
                                            .len = buf_size(&r->text),
                                            .tool_call_id = c->id,
                                            .tool_name = c->name,
                                            .is_error = r->status != TOOL_OK});
        if (r->status == TOOL_OK && raw)
            /* See agent_plan_int.h. */
            ap__add_slate(at, c->name, raw, rl); /* the cards show what the model was spared */
    }
    tool_batch_free(b);
    at->batch = NULL;
    /* See agent_plan_int.h. */
    ap__send_slate(at);
    if (failed && at->c->orch->agents[at->agent].escalate_on_tool_failure && can_escalate(at)) {
        escalate(at, ESC_TOOL_FAILED);
        return;
    }
    /* See agent_plan_int.h. */
    ap__step_start(at);
}

static const char *turn_finish(const char *provider_finish)
{
    return strcmp(provider_finish, "length") == 0 ? "length" : "stop";
}

static void step_complete(void *ctx, const struct model_result *r)
{
    struct agent_turn *at = ctx;
    release_capacity(at, r);
    pt_model_end(&at->pt.step, r);
    /* See agent_plan_int.h. */
    ap__record_attempts(at, r);
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
        /* See agent_plan_int.h. */
        ap__finish(at, "error", at->shown ? "provider_error" : "provider_unavailable",
                   r->client_message);
        return;
    }
    if (at->n_calls || at->n_refused) {
        if (at->verifying) {
            /* words before a tool call are no answer yet: showing them would end the route's
             * verification for the rest of the turn (nothing shown = still escalatable) */
            buf_reset(&at->held);
            at->verified = at->released = 0;
        } else if (at->holding) {
            release_held(at);
        }
        if (!maybe_handoff(at))
            /* See agent_plan_int.h. */
            ap__run_tools(at);
        return;
    }
    if (at->holding) {
        if (!buf_size(&at->held) && can_escalate(at)) {
            escalate(at, ESC_EMPTY);
            return;
        }
        /* the whole answer was held: a refusal is no answer to show when a next model exists
         * (step_text's refusal check of a held opening does not run while verifying) */
        enum escalation e = !at->verifying     ? ESC_NONE
                            : at->verify_lines ? verify_stream(at, true)
                            : answer_is_refusal(buf_begin(&at->held), buf_size(&at->held))
                                ? ESC_REFUSAL
                                : verify_held(at, buf_size(&at->held), true);
        if (e != ESC_NONE && can_escalate(at)) {
            escalate(at, e);
            return;
        }
        if (at->verifying && at->verify_lines) {
            release_upto(at, buf_size(&at->held)); /* nothing when verify_stream showed it */
            at->holding = false;
            buf_reset(&at->held);
        } else {
            release_held(at);
        }
    } else if (!at->shown && can_escalate(at)) {
        escalate(at, ESC_EMPTY); /* no text, no tool call */
        return;
    }
    narr_finish(&at->narr, ap__to_client, at);
    /* See agent_plan_int.h. */
    ap__finish(at, turn_finish(r->finish), NULL, NULL);
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
    *out = (struct llm_message){"system", ap__keep(at, note, nl), nl};
    return 1;
}

/* System prompt, tool schemas (in the request's own field), then the context: a stable prefix
 * for provider prompt caches. The exchange of this turn comes last. */
size_t ap__build_messages(struct agent_turn *at, const struct agent *a)
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
    at->n_ctx = m;
    for (size_t i = 0; i < at->n_ex; i++)
        at->msgs[m++] = at->ex[i].m;
    return m;
}

/* See agent_plan_int.h. */
size_t ap__build_tools(struct agent_turn *at, const struct agent *a)
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
            .name = ap__keep(at, name, (size_t)nl),
            .description = ap__keep(at, oc->agents[to].name, strlen(oc->agents[to].name)),
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
    /* See agent_plan_int.h. */
    ap__finish(at, "error", "turn_cost_limit", msg);
    return true;
}

/* The step's routes into at->step_routes: the cascade model's provisioned deployment first when
 * this pod's share has room for the request (reserved until the call ends), then its standard
 * route. Returns how many; *full: the model has a deployment that had no room (an overflow). */
static int step_routes(struct agent_turn *at, int *dep, bool *full)
{
    const struct agent_plan_conf *c = at->c;
    int n = 0;
    *dep = c->capacity ? c->capacity_of[at->agent][at->level] : -1;
    *full = false;
    if (*dep >= 0) {
        uint64_t est = capacity_estimate(&at->req, 1024);
        if (capacity_admit(c->capacity, *dep, est, capacity_now_ms(), &at->hold))
            at->step_routes[n++] = c->provisioned[*dep];
        else
            *full = true;
    }
    at->step_routes[n++] = c->routes[at->agent][at->level];
    return n;
}

/* See agent_plan_int.h. */
void ap__step_start(struct agent_turn *at)
{
    const struct orch_conf *oc = at->c->orch;
    const struct agent *a = &oc->agents[at->agent];
    if (cost_ceiling_stop(at))
        return;
    at->model_steps++;
    /* See agent_plan_int.h. */
    ap__state(at, AP_STEP);
    pt_agent_step(&at->pt, a->name, at->level, at->steps + 1);
    at->n_calls = at->n_refused = 0;
    at->verifying = oc->routes[at->guess.type].verify && !at->shown && at->level + 1 < a->n_cascade;
    at->holding = (oc->hold_opening || at->verifying) && !at->shown;
    at->verify_lines = at->verifying && oc->routes[at->guess.type].verify_lines;
    at->verified = at->released = 0;
    buf_reset(&at->held);
    size_t m = ap__build_messages(at, a);
    at->n_tools = ap__build_tools(at, a);
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
    int dep;
    bool full;
    int n_routes = step_routes(at, &dep, &full);
    struct model_call_spec spec = {
        .routes = at->step_routes,
        .n_routes = n_routes,
        .request = &at->req,
        .policy = at->c->policy,
        .pricing = at->c->pricing,
        .role = at->level ? "escalation" : "model",
    };
    struct model_sink sink = {&step_sink, at};
    pt_model_start(&at->pt, &at->pt.step, &spec, a->name, a->prompt_version);
    if (full)
        pt_model_overflow(&at->pt.step, at->c->provisioned[dep].deployment, "full");
    at->call = model_call_start(at->env.l, at->env.hc, &spec, &sink);
    if (!at->call) {
        release_capacity(at, NULL);
        /* See agent_plan_int.h. */
        ap__finish(at, "error", "internal", "the model call could not start");
    }
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
    /* See agent_plan_int.h. */
    ap__start_classifier(at, text, len);
    /* See agent_plan_int.h. */
    ap__start_prefetch(at, text, len);
    if (!at->cls_running && !at->prefetch_running)
        /* See agent_plan_int.h. */
        ap__route(at); /* nothing to wait for */
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
            /* See agent_plan_int.h. */
            ap__record_tool(at, i, asked->tool_calls[i].name, asked->tool_calls[i].arguments,
                            asked->tool_calls[i].arguments_len, tool_batch_result(at->batch, i),
                            NULL, 0);
    }
    plan_free(at);
}