/* turn_plan.c - a turn's plan (see turn_plan.h): the context (system prompt, then the
 * conversation window the session keeps), one model call, and the client sink that streams its
 * text to the session and ends the turn with the call's records.
 *
 * The client sink commits output as soon as one delta was sent: from then on the call may not
 * retry (the client would see the answer restart), so a later failure ends the turn with
 * provider_error; a call that fails before any delta ends it with provider_unavailable. */
#include "orchestrator/turn_plan.h"

#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "orchestrator/agent_plan.h"
#include "orchestrator/cache_stats.h"
#include "orchestrator/plan_trace.h"

struct plan_worker {
    struct loop *l;
    struct hc *hc;
    const struct turn_plan_conf *conf;
    struct tool_runner *tools; /* agents mode */
    json_doc *doc;
    struct answer_cache *cache;    /* agents mode with cache layers */
    struct tool_cache *tool_cache; /* agents mode with [cache] tool */
};

struct turn_plan {
    struct turn *t;
    struct plan_worker *pw;
    struct model_call *call;
    struct llm_message *msgs; /* the context; texts belong to the session's history */
    struct llm_request req;
    bool sent;            /* a delta reached the session: the client sink's output is committed */
    struct plan_trace pt; /* the call's span in the turn's trace */
};

static void plan_free(struct turn_plan *p)
{
    pt_free(&p->pt);
    xfree(p->msgs);
    xfree(p);
}

/* ---- the client sink ---- */

static void client_text(void *ctx, const char *text, size_t len)
{
    struct turn_plan *p = ctx;
    p->sent = true;
    pt_model_text(&p->pt.step, text, len);
    session_turn_delta(p->t, text, len);
}

static bool client_committed(void *ctx)
{
    return ((struct turn_plan *)ctx)->sent;
}

static const char *turn_finish(const char *provider_finish)
{
    return strcmp(provider_finish, "length") == 0 ? "length" : "stop";
}

static void client_complete(void *ctx, const struct model_result *r)
{
    struct turn_plan *p = ctx;
    struct turn *t = p->t;
    pt_model_end(&p->pt.step, r);
    for (uint32_t i = 0; i < r->n_attempts; i++)
        turn_add_call(t, &r->attempts[i]);
    if (r->outcome == MODEL_CANCELLED)
        return; /* the session ends the turn (plan_cancel) */
    turn_set_responder_state(t, NULL);
    plan_free(p);
    if (r->outcome == MODEL_OK) {
        session_turn_done(t, turn_finish(r->finish), NULL, NULL);
        return;
    }
    session_turn_done(t, "error", r->committed ? "provider_error" : "provider_unavailable",
                      r->client_message);
}

static const struct model_sink_ops client_sink = {
    .on_text = client_text,
    .committed = client_committed,
    .on_complete = client_complete,
};

/* ---- the plan ---- */

/* System prompt first (a stable prefix for provider prompt caches), then the conversation. */
static void build_context(struct turn_plan *p)
{
    const struct turn_plan_conf *c = p->pw->conf;
    const struct history_msg *h;
    size_t n = turn_history(p->t, &h), m = 0;
    p->msgs = xcalloc(n + 1, sizeof(*p->msgs));
    if (c->system_prompt[0])
        p->msgs[m++] = (struct llm_message){"system", c->system_prompt, strlen(c->system_prompt)};
    for (size_t i = 0; i < n; i++)
        p->msgs[m++] = (struct llm_message){h[i].role, h[i].text, h[i].len};
    p->req = (struct llm_request){
        .messages = p->msgs,
        .n_messages = m,
        .max_tokens = c->max_tokens,
        .temperature = -1,
        /* Anthropic: breakpoints on the system prompt and on the newest message, since the next
         * turn sends this whole conversation again */
        .cache_prefix = true,
        .cache_history = true,
    };
}

static int plan_start(struct turn *t, const char *text, size_t len)
{
    (void)text; /* the user's message is the last one of turn_history */
    (void)len;
    struct plan_worker *pw = turn_responder_worker(t);
    if (!pw || !pw->hc)
        return -1; /* the session ends the turn with an internal error */
    if (pw->conf->agents) {
        if (!pw->tools || !pw->doc)
            return -1;
        struct agent_plan_env env = {pw->l, pw->hc, pw->tools, pw->doc, pw->cache, pw->tool_cache};
        return agent_plan_start(pw->conf->agents, &env, t) ? 0 : -1;
    }
    struct turn_plan *p = xcalloc(1, sizeof(*p));
    p->t = t;
    p->pw = pw;
    build_context(p);
    struct model_call_spec spec = {
        .routes = pw->conf->routes,
        .n_routes = pw->conf->n_routes,
        .request = &p->req,
        .policy = &pw->conf->policy,
        .pricing = &pw->conf->pricing,
        .role = "model",
    };
    struct model_sink sink = {&client_sink, p};
    pt_init(&p->pt, turn_trace(t));
    pt_model_start(&p->pt, &p->pt.step, &spec, NULL, NULL);
    p->call = model_call_start(pw->l, pw->hc, &spec, &sink);
    if (!p->call) {
        plan_free(p);
        return -1;
    }
    turn_set_responder_state(t, p);
    return 0;
}

static void plan_cancel(struct turn *t)
{
    struct turn_plan *p = turn_responder_state(t);
    if (!p)
        return;
    struct plan_worker *pw = turn_responder_worker(t);
    if (pw->conf->agents) {
        agent_plan_cancel((struct agent_turn *)p);
        return;
    }
    turn_set_responder_state(t, NULL);
    model_call_cancel(p->call); /* records the call cut short (client_complete) */
    plan_free(p);
}

static void *plan_worker_create(void *arg, struct loop *l, const struct config *conf)
{
    (void)conf;
    struct plan_worker *pw = xcalloc(1, sizeof(*pw));
    pw->l = l;
    pw->conf = arg;
    uint8_t op = loop_op_alloc(l, 1);
    pw->hc = op ? hc_create(l, op) : NULL;
    if (!pw->hc)
        log_error("cannot create the HTTP client: model calls will fail");
    if (pw->hc && pw->conf->agents) {
        pw->tools = tool_runner_create(l, pw->hc);
        pw->doc = json_doc_create();
        const struct agent_plan_conf *ap = pw->conf->agents;
        if (ap->n_cache_layers)
            pw->cache = answer_cache_create(ap->cache_layers, ap->n_cache_layers,
                                            ap->cache_lookup_timeout_ms, l, pw->hc);
        if (ap->tool_cache && pw->tools) {
            pw->tool_cache = tool_cache_create(ap->tool_cache, pw->tools, l);
            tool_runner_set_cache(pw->tools, pw->tool_cache);
        }
    }
    return pw;
}

static struct hc *plan_worker_hc(void *state)
{
    return state ? ((struct plan_worker *)state)->hc : NULL;
}

static void plan_worker_destroy(void *state)
{
    struct plan_worker *pw = state;
    if (!pw)
        return;
    answer_cache_destroy(pw->cache);
    tool_cache_destroy(pw->tool_cache);
    tool_runner_destroy(pw->tools);
    json_doc_destroy(pw->doc);
    hc_destroy(pw->hc);
    xfree(pw);
}

static void plan_metrics(void *arg, struct buf *out)
{
    const struct turn_plan_conf *conf = arg;
    cache_stats_metrics(out);
    if (conf && conf->agents)
        capacity_metrics(conf->agents->capacity, out); /* nothing without capacity sections */
}

/* The responder running plans with conf; see the header. */
void turn_plan_responder(const struct turn_plan_conf *conf, struct responder *out)
{
    *out = (struct responder){
        .name = "relay",
        .arg = (void *)conf,
        .worker_create = plan_worker_create,
        .worker_destroy = plan_worker_destroy,
        .start = plan_start,
        .cancel = plan_cancel,
        .metrics = plan_metrics,
        .worker_hc = plan_worker_hc,
    };
}
