/* answer_cache.c - the answer-cache seam (answer_cache.h): the layers of a worker, a lookup that
 * walks them in order with a deadline each, and the helpers the plan uses around it. */
#include "orchestrator/answer_cache.h"

#include <openssl/evp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"

struct layer {
    const struct ac_layer_ops *ops;
    void *state;
};

struct answer_cache {
    struct layer layers[AC_MAX_LAYERS];
    int n;
    uint32_t timeout_ms;
    struct loop *l;
};

struct ac_lookup {
    struct answer_cache *ac;
    struct ac_query *q;
    int at;   /* the layer being asked */
    void *op; /* its pending lookup, NULL when none */
    struct timer deadline;
    ac_result_fn fn;
    void *ctx;
};

/* Create the worker's layers; see the header. */
struct answer_cache *answer_cache_create(const struct ac_layer_reg *regs, int n,
                                         uint32_t lookup_timeout_ms, struct loop *l, struct hc *hc)
{
    struct answer_cache *ac = xcalloc(1, sizeof(*ac));
    ac->l = l;
    ac->timeout_ms = lookup_timeout_ms ? lookup_timeout_ms : 1;
    for (int i = 0; i < n && ac->n < AC_MAX_LAYERS; i++) {
        void *st = regs[i].ops->create ? regs[i].ops->create(regs[i].conf, l, hc) : NULL;
        ac->layers[ac->n++] = (struct layer){regs[i].ops, st};
    }
    return ac;
}

/* Destroy the layers; see the header. */
void answer_cache_destroy(struct answer_cache *ac)
{
    if (!ac)
        return;
    for (int i = 0; i < ac->n; i++)
        if (ac->layers[i].ops->destroy)
            ac->layers[i].ops->destroy(ac->layers[i].state);
    xfree(ac);
}

/* See answer_cache.h. */
int answer_cache_layers(const struct answer_cache *ac)
{
    return ac ? ac->n : 0;
}

static bool layer_wants(const struct layer *ly, const struct ac_query *q)
{
    return ly->ops->wants ? ly->ops->wants(ly->state, q) : q->cacheable;
}

/* Whether any layer wants q; see the header. */
bool answer_cache_wants(const struct answer_cache *ac, const struct ac_query *q)
{
    for (int i = 0; ac && i < ac->n; i++)
        if (layer_wants(&ac->layers[i], q))
            return true;
    return false;
}

static void ask(struct ac_lookup *lk);

static void lookup_end(struct ac_lookup *lk, int layer, const struct ac_hit *hit)
{
    timer_disarm(lk->ac->l, &lk->deadline);
    ac_result_fn fn = lk->fn;
    void *ctx = lk->ctx;
    ac_query_free(lk->q);
    xfree(lk);
    fn(ctx, layer, hit);
}

static void on_found(void *ctx, const struct ac_hit *hit)
{
    struct ac_lookup *lk = ctx;
    const struct layer *ly = &lk->ac->layers[lk->at];
    lk->op = NULL;
    timer_disarm(lk->ac->l, &lk->deadline);
    if (hit) {
        cache_stat_add(ly->ops->layer, CSTAT_HIT, 1);
        lookup_end(lk, (int)ly->ops->layer, hit);
        return;
    }
    cache_stat_add(ly->ops->layer, CSTAT_MISS, 1);
    lk->at++;
    ask(lk);
}

/* A layer too slow to answer counts as a miss: the turn goes on without it. */
static void on_deadline(struct loop *l, struct timer *t)
{
    (void)l;
    struct ac_lookup *lk = (struct ac_lookup *)((char *)t - offsetof(struct ac_lookup, deadline));
    const struct layer *ly = &lk->ac->layers[lk->at];
    log_info("cache: the %s layer did not answer within %u ms: a miss",
             cache_layer_name(ly->ops->layer), lk->ac->timeout_ms);
    ly->ops->cancel(ly->state, lk->op);
    lk->op = NULL;
    cache_stat_add(ly->ops->layer, CSTAT_MISS, 1);
    lk->at++;
    ask(lk);
}

/* Ask the next layer, or report the miss of them all. */
static void ask(struct ac_lookup *lk)
{
    struct answer_cache *ac = lk->ac;
    while (lk->at < ac->n && !layer_wants(&ac->layers[lk->at], lk->q))
        lk->at++;
    if (lk->at >= ac->n) {
        lookup_end(lk, -1, NULL);
        return;
    }
    const struct layer *ly = &ac->layers[lk->at];
    timer_arm(ac->l, &lk->deadline, loop_now_ms(ac->l) + ac->timeout_ms, on_deadline);
    lk->op = ly->ops->lookup(ly->state, lk->q, on_found, lk);
}

/* Start a lookup; see the header. */
struct ac_lookup *answer_cache_lookup(struct answer_cache *ac, const struct ac_query *q,
                                      ac_result_fn fn, void *ctx)
{
    struct ac_lookup *lk = xcalloc(1, sizeof(*lk));
    lk->ac = ac;
    lk->q = ac_query_dup(q);
    lk->fn = fn;
    lk->ctx = ctx;
    ask(lk);
    return lk;
}

/* Cancel a lookup; see the header. */
void answer_cache_cancel(struct ac_lookup *lk)
{
    if (!lk)
        return;
    if (lk->op) {
        const struct layer *ly = &lk->ac->layers[lk->at];
        ly->ops->cancel(ly->state, lk->op);
    }
    timer_disarm(lk->ac->l, &lk->deadline);
    ac_query_free(lk->q);
    xfree(lk);
}

/* Offer an answer to every layer; see the header. */
void answer_cache_offer(struct answer_cache *ac, const struct ac_query *q,
                        const struct ac_answer *a)
{
    for (int i = 0; ac && i < ac->n; i++)
        if (ac->layers[i].ops->offer && layer_wants(&ac->layers[i], q))
            ac->layers[i].ops->offer(ac->layers[i].state, q, a);
}

/* ---- helpers ---- */

/* Copy q with its strings; see the header. */
struct ac_query *ac_query_dup(const struct ac_query *q)
{
    struct ac_query *c = xmalloc(sizeof(*c));
    *c = *q;
    c->text = xstrndup(q->text ? q->text : "", q->text ? q->len : 0);
    c->query_type = xstrdup(q->query_type ? q->query_type : "");
    c->agent = xstrdup(q->agent ? q->agent : "");
    c->prompt_version = xstrdup(q->prompt_version ? q->prompt_version : "");
    c->model = xstrdup(q->model ? q->model : "");
    c->currency = xstrdup(q->currency ? q->currency : "");
    return c;
}

/* See answer_cache.h. */
void ac_query_free(struct ac_query *q)
{
    if (!q)
        return;
    xfree((char *)q->text);
    xfree((char *)q->query_type);
    xfree((char *)q->agent);
    xfree((char *)q->prompt_version);
    xfree((char *)q->model);
    xfree((char *)q->currency);
    xfree(q);
}

/* A field, then a NUL: no two different sequences of fields hash the same bytes. */
static void field(EVP_MD_CTX *md, const char *s, size_t n)
{
    if (s && n)
        EVP_DigestUpdate(md, s, n);
    EVP_DigestUpdate(md, "", 1);
}

static void sfield(EVP_MD_CTX *md, const char *s)
{
    field(md, s, s ? strlen(s) : 0);
}

/* Hash a request's context; see the header. */
void ac_context_hash(const struct llm_message *msgs, size_t n, size_t system, size_t user,
                     const struct llm_tool *tools, size_t n_tools, char out[65], bool *single_shot)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    bool single = true;
    for (size_t i = 0; i < n; i++) {
        if (i == system || i == user)
            continue;
        single = false;
        const struct llm_message *m = &msgs[i];
        sfield(md, m->role);
        field(md, m->content, m->len);
        for (size_t k = 0; k < m->n_tool_calls; k++) {
            sfield(md, m->tool_calls[k].name);
            field(md, m->tool_calls[k].arguments, m->tool_calls[k].arguments_len);
        }
        sfield(md, m->tool_name);
        field(md, m->is_error ? "e" : "", m->is_error ? 1 : 0);
    }
    EVP_DigestUpdate(md, "\x1e", 1); /* messages end, tools begin */
    for (size_t i = 0; i < n_tools; i++) {
        sfield(md, tools[i].name);
        sfield(md, tools[i].description);
        sfield(md, tools[i].parameters_json);
    }
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    EVP_DigestFinal_ex(md, d, &dl);
    EVP_MD_CTX_free(md);
    for (unsigned i = 0; i < 32 && i < dl; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    *single_shot = single;
}

/* The end of the next delta of a cached answer; see the header. */
size_t ac_chunk_end(const char *text, size_t len, size_t off)
{
    enum { TARGET = 24, MAX = 64 };
    size_t end = off + TARGET;
    if (end >= len)
        return len;
    /* end after the next space (a word boundary), within MAX bytes */
    while (end < len && end < off + MAX && text[end - 1] != ' ' && text[end - 1] != '\n')
        end++;
    /* never inside a UTF-8 sequence: back off continuation bytes */
    while (end > off + 1 && end < len && ((unsigned char)text[end] & 0xC0) == 0x80)
        end--;
    return end;
}
