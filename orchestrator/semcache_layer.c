/* semcache_layer.c - the semantic cache as the second answer-cache layer (answer_cache.h): the
 * seam's vtable over semcache.h. The layer's conf is the process's struct semcache. */
#include "orchestrator/semcache_layer.h"

#include "base/mem.h"
#include "orchestrator/semcache.h"

#include <string.h>

struct layer {
    struct semcache *sc;
    struct semcache_worker *w;
};

struct pending {
    struct layer *ly;
    struct semcache_op *op;
    ac_found_fn fn;
    void *ctx;
};

static void *sl_create(const void *conf, struct loop *l, struct hc *hc)
{
    struct layer *ly = xcalloc(1, sizeof(*ly));
    ly->sc = (struct semcache *)conf;
    ly->w = semcache_worker_create(ly->sc, l, hc);
    return ly;
}

static void sl_destroy(void *state)
{
    struct layer *ly = state;
    if (!ly)
        return;
    semcache_worker_destroy(ly->w);
    xfree(ly);
}

static struct semcache_key key_of(const struct ac_query *q)
{
    return (struct semcache_key){q->query_type, q->agent, q->prompt_version, q->model};
}

static void on_found(void *ctx, const struct semcache_hit *hit)
{
    struct pending p = *(struct pending *)ctx;
    xfree(ctx);
    if (!hit) {
        p.fn(p.ctx, NULL);
        return;
    }
    struct ac_hit h = {hit->answer, hit->len, hit->cost_micros};
    p.fn(p.ctx, &h);
}

/* A conversation-dependent question is never looked up: its answer depends on more than the
 * words (semcache.h); the semcache answers a miss from the loop. */
static void *sl_lookup(void *state, const struct ac_query *q, ac_found_fn fn, void *ctx)
{
    struct layer *ly = state;
    struct pending *p = xcalloc(1, sizeof(*p));
    *p = (struct pending){ly, NULL, fn, ctx};
    struct semcache_key k = key_of(q);
    if (!q->single_shot)
        k.query_type = ""; /* no threshold: a miss */
    p->op = semcache_lookup(ly->w, q->store, &k, q->text, q->len, q->now_unix_ms, on_found, p);
    return p;
}

static void sl_cancel(void *state, void *op)
{
    (void)state;
    struct pending *p = op;
    if (!p)
        return;
    semcache_cancel(p->op);
    xfree(p);
}

static void sl_offer(void *state, const struct ac_query *q, const struct ac_answer *a)
{
    struct layer *ly = state;
    if (!q->single_shot)
        return;
    struct semcache_key k = key_of(q);
    semcache_offer(ly->w, q->store, &k, q->text, q->len, a->text, a->len, a->cost_micros,
                   q->currency, q->ttl_s, q->now_unix_ms);
}

/* Its query types opt in by their own threshold, cacheable or not; single-shot questions only. */
static bool sl_wants(void *state, const struct ac_query *q)
{
    const struct layer *ly = state;
    return q->single_shot && semcache_threshold(ly->sc, q->query_type) > 0;
}

const struct ac_layer_ops semcache_layer_ops = {
    .layer = CACHE_SEMANTIC,
    .create = sl_create,
    .destroy = sl_destroy,
    .lookup = sl_lookup,
    .cancel = sl_cancel,
    .offer = sl_offer,
    .wants = sl_wants,
};
