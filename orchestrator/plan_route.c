/* plan_route.c - the start of an agent plan: classification (rules, then the classifier model
 * with its deadline), the search prefetch beside it, and routing to an agent. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "orchestrator/agent_plan_int.h"
#include "stream/jsonw.h"

/* Both the classification and the prefetch are over: route and take the first step. */
void ap__route(struct agent_turn *at)
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
        /* See agent_plan_int.h. */
        ap__use_prefetch(at);
        tool_call_free(at->prefetch);
        at->prefetch = NULL;
    }
    const struct agent *a = &oc->agents[at->agent];
    if (oc->min_confidence > 0 && at->guess.confidence < oc->min_confidence && a->n_cascade > 1) {
        turn_add_flag(at->t, "escalated:low_confidence");
        at->level = 1;
    }
    if (ap__cache_lookup(at))
        return;
    /* See agent_plan_int.h. */
    ap__answer(at);
}

static void prefetch_done(void *ctx, struct tool_call *c)
{
    (void)c;
    struct agent_turn *at = ctx;
    at->prefetch_running = false;
    /* See agent_plan_int.h. */
    ap__route(at);
}

/* See agent_plan_int.h. */
void ap__start_prefetch(struct agent_turn *at, const char *text, size_t len)
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
    /* See agent_plan_int.h. */
    ap__record_attempts(at, r);
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
        /* See agent_plan_int.h. */
        ap__route(at);
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

/* See agent_plan_int.h. */
void ap__start_classifier(struct agent_turn *at, const char *text, size_t len)
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
