/* exact_cache.c - the exact response cache layer (exact_cache.h). */
#include "orchestrator/exact_cache.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "orchestrator/cache_lru.h"
#include "store/cache_store.h"

struct exact {
    const struct exact_cache_conf *conf;
    struct loop *l;
    struct lru *lru;
};

/* A pending lookup: answered from the LRU on the next loop turn, or from PostgreSQL. */
struct xop {
    struct exact *x;
    uint8_t key[LRU_KEY];
    struct timer soon;
    struct store_op *read;
    bool found;
    int64_t now_unix_ms;
    ac_found_fn fn;
    void *ctx;
};

static int key_digest(const struct norm_words *w, const struct ac_query *q, uint8_t out[LRU_KEY])
{
    struct buf norm = {0};
    if (query_normalize(w, q->text, q->len, &norm) < 0)
        return -EINVAL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    const char *parts[] = {"exact/1", q->agent, q->prompt_version, q->model, q->context_hash};
    if (buf_size(&norm))
        EVP_DigestUpdate(md, buf_begin(&norm), buf_size(&norm));
    EVP_DigestUpdate(md, "", 1);
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        EVP_DigestUpdate(md, parts[i] ? parts[i] : "", (parts[i] ? strlen(parts[i]) : 0) + 1);
    unsigned int dl = 0;
    unsigned char d[EVP_MAX_MD_SIZE];
    EVP_DigestFinal_ex(md, d, &dl);
    EVP_MD_CTX_free(md);
    memcpy(out, d, LRU_KEY);
    buf_free(&norm);
    return 0;
}

static void hex(const uint8_t key[LRU_KEY], char out[65])
{
    for (int i = 0; i < LRU_KEY; i++)
        snprintf(out + 2 * i, 3, "%02x", key[i]);
}

/* The key as hex; see the header. */
int exact_cache_key(const struct norm_words *w, const struct ac_query *q, char out[65])
{
    uint8_t k[LRU_KEY];
    if (key_digest(w, q, k) < 0)
        return -EINVAL;
    hex(k, out);
    return 0;
}

static void *x_create(const void *conf, struct loop *l, struct hc *hc)
{
    (void)hc;
    struct exact *x = xcalloc(1, sizeof(*x));
    x->conf = conf;
    x->l = l;
    x->lru = lru_create(x->conf->lru_bytes, CACHE_EXACT);
    return x;
}

static void x_destroy(void *state)
{
    struct exact *x = state;
    if (!x)
        return;
    lru_destroy(x->lru);
    xfree(x);
}

/* The LRU's answer (or a miss without a database), from the loop as the seam requires. */
static void on_soon(struct loop *l, struct timer *t)
{
    (void)l;
    struct xop *op = (struct xop *)((char *)t - offsetof(struct xop, soon));
    struct lru_entry e;
    ac_found_fn fn = op->fn;
    void *ctx = op->ctx;
    bool hit = op->found && lru_get(op->x->lru, op->key, &e) && e.expires_ms > op->now_unix_ms;
    xfree(op);
    if (!hit) {
        fn(ctx, NULL);
        return;
    }
    struct ac_hit h = {e.val, e.len, e.cost_micros};
    fn(ctx, &h);
}

static void on_read(void *ctx, int result, const struct store_cache_entry *e)
{
    struct xop *op = ctx;
    op->read = NULL;
    ac_found_fn fn = op->fn;
    void *fctx = op->ctx;
    if (result < 0) {
        if (result == -EIO)
            log_debug("cache: the shared exact cache could not be read: a miss");
        xfree(op);
        fn(fctx, NULL);
        return;
    }
    /* the shared tier's entry warms this worker's LRU for the rest of its life */
    lru_put(op->x->lru, op->key, e->value, e->len, e->expires_unix_ms, e->cost_micros);
    xfree(op);
    struct ac_hit h = {e->value, e->len, e->cost_micros};
    fn(fctx, &h);
}

static void *x_lookup(void *state, const struct ac_query *q, ac_found_fn fn, void *ctx)
{
    struct exact *x = state;
    struct xop *op = xcalloc(1, sizeof(*op));
    op->x = x;
    op->fn = fn;
    op->ctx = ctx;
    op->now_unix_ms = q->now_unix_ms;
    if (key_digest(x->conf->words, q, op->key) < 0) {
        timer_arm(x->l, &op->soon, loop_now_ms(x->l), on_soon); /* not cacheable: a miss */
        return op;
    }
    struct lru_entry e;
    if (lru_get(x->lru, op->key, &e)) {
        if (e.expires_ms > q->now_unix_ms) {
            op->found = true;
            timer_arm(x->l, &op->soon, loop_now_ms(x->l), on_soon);
            return op;
        }
        lru_del(x->lru, op->key); /* expired: never served */
    }
    if (q->store && x->conf->shared) {
        char k[65];
        hex(op->key, k);
        op->read = store_cache_get(q->store, "exact", k, on_read, op);
        return op;
    }
    timer_arm(x->l, &op->soon, loop_now_ms(x->l), on_soon);
    return op;
}

static void x_cancel(void *state, void *p)
{
    struct exact *x = state;
    struct xop *op = p;
    if (!op)
        return;
    timer_disarm(x->l, &op->soon);
    store_cache_cancel(op->read);
    xfree(op);
}

static void x_offer(void *state, const struct ac_query *q, const struct ac_answer *a)
{
    struct exact *x = state;
    uint8_t key[LRU_KEY];
    if (!q->ttl_s || !a->len || memchr(a->text, '\0', a->len) ||
        key_digest(x->conf->words, q, key) < 0)
        return;
    int64_t expires = q->now_unix_ms + (int64_t)q->ttl_s * 1000;
    lru_put(x->lru, key, a->text, a->len, expires, a->cost_micros);
    if (q->store && x->conf->shared) {
        char k[65], label[200];
        hex(key, k);
        snprintf(label, sizeof(label), "%s/%s %s", q->agent, q->prompt_version, q->model);
        store_cache_put(q->store, "exact", k, a->text, a->len, a->cost_micros, q->currency, expires,
                        label);
    }
}

const struct ac_layer_ops exact_cache_ops = {
    .layer = CACHE_EXACT,
    .create = x_create,
    .destroy = x_destroy,
    .lookup = x_lookup,
    .cancel = x_cancel,
    .offer = x_offer,
};
