/* plan_cache.c - the agent plan's answer cache (docs/caching.md): the lookup before the first
 * model call, streaming a hit, offering the answer at the end. */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "orchestrator/agent_plan_int.h"

static int64_t unix_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
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

/* See agent_plan_int.h. */
void ap__offer_answer(struct agent_turn *at)
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
        /* See agent_plan_int.h. */
        ap__state(at, AP_STEP);
        /* See agent_plan_int.h. */
        ap__answer(at);
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
        /* See agent_plan_int.h. */
        ap__to_client(at, hit->text + off, end - off);
    }
    /* See agent_plan_int.h. */
    ap__finish(at, "stop", NULL, NULL);
}

/* A route some cache layer serves (cacheable, or a semantic_threshold): ask the layers before the
 * first model call, keyed on what that call would send. Returns true when a lookup started
 * (cache_done goes on). */
bool ap__cache_lookup(struct agent_turn *at)
{
    const struct orch_conf *oc = at->c->orch;
    const struct route *rc = &oc->routes[at->guess.type];
    if (!answer_cache_layers(at->env.cache))
        return false;
    const struct agent *a = &oc->agents[at->agent];
    const struct history_msg *h;
    size_t hn = turn_history(at->t, &h), m = ap__build_messages(at, a), user = m;
    for (size_t i = 0; i < m; i++)
        if (at->msgs[i].content == h[hn - 1].text)
            user = i;
    at->n_tools = ap__build_tools(at, a);
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
    /* See agent_plan_int.h. */
    ap__state(at, AP_CACHE);
    pt_cache_begin(&at->pt, model);
    at->lookup = answer_cache_lookup(at->env.cache, &q, cache_done, at);
    return true;
}
