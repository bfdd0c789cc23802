/* semcache.c - the semantic cache (see semcache.h): the process's shared index, the workers'
 * embeddings requests, lookups, offers, and the warm and sync from PostgreSQL. */
#include "orchestrator/semcache.h"

#include "base/buf.h"
#include "base/log.h"
#include "base/mem.h"
#include "orchestrator/cache_stats.h"
#include "orchestrator/semcache_index.h"
#include "store/semcache_store.h"
#include "stream/json.h"
#include "stream/jsonw.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    BODY_MAX = 1 << 20, /* an embeddings answer larger than this is a failure */
    DIM_MAX = 4096,
    MEMO = 32,        /* recent embeddings per worker: an offer reuses its lookup's */
    QUERY_MAX = 4096, /* longer questions are not cached (the table's bound) */
};

struct semcache {
    struct semcache_conf c; /* strings owned */
    char *url, *model, *key, *catalog;
    pthread_rwlock_t lock; /* idx */
    struct semidx *idx;    /* created with the first vector's dimension */
    size_t dim;
    atomic_int_fast64_t max_id;    /* the newest row read from PostgreSQL */
    atomic_int_fast64_t synced_ms; /* when the last read started */
    atomic_bool syncing;
    atomic_bool warmed; /* the first read from PostgreSQL is over (or there is none) */
    atomic_uint_fast64_t lookups, hits, below, embed_failures, refusals[SG_NAME + 1];
    atomic_uint_fast64_t entries, bytes;
};

struct memo {
    uint64_t h;
    size_t dim;
    float *v;
};

struct semcache_worker {
    struct semcache *sc;
    struct loop *l;
    struct hc *hc;
    struct semcache_op *ops; /* pending, for destroy */
    struct memo memo[MEMO];
    unsigned memo_next;
    struct store *sync_st; /* a read from PostgreSQL in flight */
    struct store_op *sync_op;
};

struct semcache_op {
    struct semcache_op *next, *prev;
    struct semcache_worker *w;
    semcache_fn fn; /* NULL: an offer's embeddings request */
    void *ctx;
    char part[17];
    float threshold;
    char *text;
    size_t len;
    int64_t now_ms;
    struct hc_req *req;
    struct timer t; /* an answer on the next loop turn */
    float *vec;     /* parked: the embedding, waiting for the warm */
    size_t dim;
    int status;
    struct buf body;
    /* an offer */
    struct store *st;
    char *answer;
    size_t alen;
    int64_t cost, expires_ms;
    char currency[4];
    char label[160];
};

/* ---- the process's cache ---- */

static char *dup_str(const char *s)
{
    return xstrndup(s ? s : "", strlen(s ? s : ""));
}

/* Create the process's cache; see the header. */
struct semcache *semcache_create(const struct semcache_conf *c)
{
    if (!c->embeddings_url || !c->embeddings_url[0] || c->n_types <= 0)
        return NULL;
    struct semcache *sc = xcalloc(1, sizeof(*sc));
    sc->c = *c;
    sc->c.embeddings_url = sc->url = dup_str(c->embeddings_url);
    sc->c.embeddings_model = sc->model = dup_str(c->embeddings_model);
    sc->c.embeddings_key = sc->key = dup_str(c->embeddings_key);
    sc->c.catalog_version = sc->catalog = dup_str(c->catalog_version);
    if (!sc->c.max_entries)
        sc->c.max_entries = 10000;
    pthread_rwlock_init(&sc->lock, NULL);
    return sc;
}

/* Free the cache (every worker's side is gone). NULL is a no-op. */
void semcache_destroy(struct semcache *sc)
{
    if (!sc)
        return;
    if (sc->idx)
        cache_bytes_add(CACHE_SEMANTIC, -(int64_t)semidx_bytes(sc->idx));
    semidx_destroy(sc->idx);
    pthread_rwlock_destroy(&sc->lock);
    xfree(sc->url);
    xfree(sc->model);
    xfree(sc->key);
    xfree(sc->catalog);
    xfree(sc);
}

/* The type's threshold; see the header. */
float semcache_threshold(const struct semcache *sc, const char *t)
{
    for (int i = 0; sc && t && i < sc->c.n_types; i++)
        if (strcmp(sc->c.types[i].type, t) == 0)
            return sc->c.types[i].threshold;
    return 0;
}

static uint64_t fnv(uint64_t h, const char *s)
{
    for (const char *p = s ? s : ""; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return (h ^ 0xff) * 1099511628211ull; /* a separator no text has */
}

/* The partition key; see the header. */
void semcache_part(const struct semcache *sc, const struct semcache_key *k, char out[17])
{
    uint64_t h = 1469598103934665603ull;
    h = fnv(h, k->query_type);
    h = fnv(h, k->agent);
    h = fnv(h, k->prompt_version);
    h = fnv(h, k->model);
    h = fnv(h, sc->c.catalog_version);
    h = fnv(h, sc->c.embeddings_model);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static uint64_t part_u64(const char *hex)
{
    return strtoull(hex, NULL, 16);
}

/* Counters read by /metrics; see the header. */
void semcache_get_stats(const struct semcache *sc, struct semcache_stats *o)
{
    memset(o, 0, sizeof(*o));
    if (!sc)
        return;
    struct semcache *m = (struct semcache *)sc; /* atomics are read, never written here */
    o->lookups = atomic_load_explicit(&m->lookups, memory_order_relaxed);
    o->hits = atomic_load_explicit(&m->hits, memory_order_relaxed);
    o->below_threshold = atomic_load_explicit(&m->below, memory_order_relaxed);
    o->embed_failures = atomic_load_explicit(&m->embed_failures, memory_order_relaxed);
    for (int i = 0; i <= SG_NAME; i++)
        o->refusals[i] = atomic_load_explicit(&m->refusals[i], memory_order_relaxed);
    o->entries = atomic_load_explicit(&m->entries, memory_order_relaxed);
    o->bytes = atomic_load_explicit(&m->bytes, memory_order_relaxed);
}

/* Add one entry to the index (created with the first vector's dimension; a vector of another
 * dimension is dropped: another embeddings model wrote it). */
static void index_add(struct semcache *sc, const char *part, const float *v, size_t dim,
                      const char *q, size_t qlen, const char *a, size_t alen, int64_t cost,
                      const char *currency, int64_t expires_ms)
{
    pthread_rwlock_wrlock(&sc->lock);
    if (!sc->idx) {
        sc->idx = semidx_create(dim, sc->c.max_entries);
        sc->dim = dim;
    }
    size_t before = semidx_bytes(sc->idx);
    if (dim == sc->dim)
        semidx_add(sc->idx, part_u64(part), v, q, qlen, a, alen, cost, currency, expires_ms);
    size_t after = semidx_bytes(sc->idx);
    cache_bytes_add(CACHE_SEMANTIC, (int64_t)after - (int64_t)before);
    atomic_store_explicit(&sc->entries, semidx_count(sc->idx), memory_order_relaxed);
    atomic_store_explicit(&sc->bytes, after, memory_order_relaxed);
    pthread_rwlock_unlock(&sc->lock);
}

/* ---- warm and sync from PostgreSQL ---- */

static void answer_lookup(struct semcache_op *op, const float *v, size_t dim);
static void op_free(struct semcache_op *op);

/* The lookups that waited for the warm (their embeddings came first) are answered now. */
static void answer_parked(struct semcache_worker *w)
{
    for (;;) {
        struct semcache_op *op = w->ops;
        while (op && !op->vec)
            op = op->next;
        if (!op)
            return;
        float *v = op->vec;
        op->vec = NULL;
        answer_lookup(op, v, op->dim);
        xfree(v);
        op_free(op);
    }
}

static void on_rows(void *ctx, int result, const struct store_semcache_row *rows, size_t n)
{
    struct semcache_worker *w = ctx;
    struct semcache *sc = w->sc;
    w->sync_op = NULL;
    w->sync_st = NULL;
    int64_t max = atomic_load(&sc->max_id);
    /* newest first: add oldest first, so that the newest end up newest in the index */
    for (size_t i = n; result == 0 && i-- > 0;) {
        const struct store_semcache_row *r = &rows[i];
        index_add(sc, r->part, r->vec, r->dim, r->query, r->query_len, r->answer, r->answer_len,
                  r->cost_micros, r->currency, r->expires_unix_ms);
        if (r->id > max)
            max = r->id;
    }
    atomic_store(&sc->max_id, max);
    atomic_store(&sc->syncing, false);
    atomic_store(&sc->warmed, true);
    answer_parked(w);
}

/* Read the rows other pods wrote since the last read, at most once per sync interval per
 * process (the first call warms the index). */
static void maybe_sync(struct semcache_worker *w, struct store *st, int64_t now_ms)
{
    struct semcache *sc = w->sc;
    if (!st || now_ms - atomic_load(&sc->synced_ms) < (int64_t)sc->c.sync_ms)
        return;
    bool idle = false;
    if (!atomic_compare_exchange_strong(&sc->syncing, &idle, true))
        return;
    atomic_store(&sc->synced_ms, now_ms);
    w->sync_st = st;
    w->sync_op = store_semcache_read(st, atomic_load(&sc->max_id), sc->c.max_entries, on_rows, w);
}

/* ---- a worker's side ---- */

/* Create a worker's side; see the header. */
struct semcache_worker *semcache_worker_create(struct semcache *sc, struct loop *l, struct hc *hc)
{
    struct semcache_worker *w = xcalloc(1, sizeof(*w));
    w->sc = sc;
    w->l = l;
    w->hc = hc;
    return w;
}

static void op_free(struct semcache_op *op)
{
    struct semcache_worker *w = op->w;
    if (op->prev)
        op->prev->next = op->next;
    else
        w->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    if (timer_armed(&op->t))
        timer_disarm(w->l, &op->t);
    buf_free(&op->body);
    xfree(op->vec);
    xfree(op->text);
    xfree(op->answer);
    xfree(op);
}

/* Free a worker's side; see the header. */
void semcache_worker_destroy(struct semcache_worker *w)
{
    if (!w)
        return;
    while (w->ops)
        semcache_cancel(w->ops);
    if (w->sync_op) {
        store_semcache_cancel(w->sync_op);
        atomic_store(&w->sc->syncing, false);
    }
    for (int i = 0; i < MEMO; i++)
        xfree(w->memo[i].v);
    xfree(w);
}

static uint64_t text_hash(const char *part, const char *t, size_t n)
{
    uint64_t h = fnv(1469598103934665603ull, part);
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)t[i]) * 1099511628211ull;
    return h;
}

static void memo_put(struct semcache_worker *w, uint64_t h, const float *v, size_t dim)
{
    struct memo *m = &w->memo[w->memo_next++ % MEMO];
    m->v = xrealloc(m->v, dim * sizeof(float));
    memcpy(m->v, v, dim * sizeof(float));
    m->dim = dim;
    m->h = h;
}

static const struct memo *memo_get(const struct semcache_worker *w, uint64_t h)
{
    for (int i = 0; i < MEMO; i++)
        if (w->memo[i].v && w->memo[i].h == h)
            return &w->memo[i];
    return NULL;
}

/* ---- the embeddings request ---- */

/* "[0.1, -2e-05, ...]" (the raw JSON array) into v[0..cap); returns the count, 0 when malformed. */
static size_t parse_vec(const char *s, size_t n, float *v, size_t cap)
{
    const char *end = s + n;
    size_t k = 0;
    while (s < end && *s != '[')
        s++;
    for (s++; s < end && k < cap;) {
        while (s < end && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t' || *s == ','))
            s++;
        if (s < end && *s == ']')
            return k;
        char *stop;
        v[k] = strtof(s, &stop);
        if (stop == s)
            return 0;
        k++;
        s = stop;
    }
    return 0;
}

/* The vector of an OpenAI embeddings answer: data[0].embedding. Returns its dimension or 0. */
static size_t answer_vec(const struct buf *body, float *v)
{
    json_doc *d = json_doc_create();
    const char *raw;
    size_t n = 0, dim = 0;
    if (json_doc_load(d, buf_begin(body), buf_size(body)) == 0 &&
        json_get_raw(d, "/data/0/embedding", &raw, &n) == 0)
        dim = parse_vec(raw, n, v, DIM_MAX);
    json_doc_destroy(d);
    return dim && semidx_normalize(v, dim) ? dim : 0;
}

static void decide(struct semcache_op *op, const float *v, size_t dim);

static int on_response(void *ctx, int status, int64_t retry_after_ms)
{
    (void)retry_after_ms;
    ((struct semcache_op *)ctx)->status = status;
    return status == 200 ? 0 : -1; /* an error body is not read: a miss either way */
}

static int on_body(void *ctx, const char *p, size_t n)
{
    struct semcache_op *op = ctx;
    if (buf_size(&op->body) + n > BODY_MAX)
        return -1;
    buf_append(&op->body, p, n);
    return 0;
}

static void on_done(void *ctx, int result, int status, const char *message)
{
    struct semcache_op *op = ctx;
    op->req = NULL; /* freed by the client after this returns */
    float *v = xmalloc(DIM_MAX * sizeof(float));
    size_t dim =
        result == HC_OK && status == 200 && buf_size(&op->body) ? answer_vec(&op->body, v) : 0;
    if (!dim) {
        atomic_fetch_add_explicit(&op->w->sc->embed_failures, 1, memory_order_relaxed);
        log_debug("semantic cache: embeddings failed (result %d, HTTP %d, %s): a miss", result,
                  status, message ? message : "");
    }
    decide(op, dim ? v : NULL, dim);
    xfree(v);
}

static const struct hc_callbacks embed_cb = {on_response, on_body, on_done};

/* Start the embeddings request of op->text; false when it cannot start. */
static bool embed_start(struct semcache_op *op)
{
    struct semcache *sc = op->w->sc;
    struct buf body = {0};
    struct jsonw jw;
    jw_init(&jw, &body);
    jw_obj_begin(&jw);
    jw_kstr(&jw, "model", sc->c.embeddings_model);
    jw_kstrn(&jw, "input", op->text, op->len);
    jw_obj_end(&jw);
    char auth[600];
    const char *headers[3] = {"Content-Type: application/json", NULL, NULL};
    if (sc->c.embeddings_key[0] && snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
                                            sc->c.embeddings_key) < (int)sizeof(auth))
        headers[1] = auth;
    struct hc_request r = {
        .url = sc->c.embeddings_url,
        .headers = headers,
        .body = buf_begin(&body),
        .body_len = buf_size(&body),
        .connect_timeout_ms = sc->c.timeout_ms,
        .total_timeout_ms = sc->c.timeout_ms,
    };
    op->req = hc_start(op->w->hc, &r, &embed_cb, op);
    buf_free(&body);
    return op->req != NULL;
}

/* ---- lookups and offers ---- */

static void finish(struct semcache_op *op, const struct semcache_hit *hit)
{
    semcache_fn fn = op->fn;
    void *ctx = op->ctx;
    if (hit)
        atomic_fetch_add_explicit(&op->w->sc->hits, 1, memory_order_relaxed);
    fn(ctx, hit);
}

/* The best entry of op's partition: a hit when similar enough and the guard agrees. */
static void answer_lookup(struct semcache_op *op, const float *v, size_t dim)
{
    struct semcache *sc = op->w->sc;
    if (!v) {
        finish(op, NULL);
        return;
    }
    memo_put(op->w, text_hash(op->part, op->text, op->len), v, dim);
    pthread_rwlock_rdlock(&sc->lock);
    float sim = 0;
    int i = sc->idx && dim == sc->dim
                ? semidx_best(sc->idx, part_u64(op->part), v, op->now_ms, &sim)
                : -1;
    const struct semidx_entry *e = i >= 0 ? semidx_at(sc->idx, i) : NULL;
    enum semguard_verdict g = SG_SAME;
    if (e && sim >= op->threshold)
        g = semguard_check(e->query, e->query_len, op->text, op->len);
    if (!e || sim < op->threshold) {
        atomic_fetch_add_explicit(&sc->below, 1, memory_order_relaxed);
        pthread_rwlock_unlock(&sc->lock);
        finish(op, NULL);
    } else if (g != SG_SAME) {
        atomic_fetch_add_explicit(&sc->refusals[g], 1, memory_order_relaxed);
        cache_stat_add(CACHE_SEMANTIC, CSTAT_GUARD_REFUSAL, 1);
        log_debug("semantic cache: guard refused (%s, similarity %.3f)", semguard_name(g), sim);
        pthread_rwlock_unlock(&sc->lock);
        finish(op, NULL);
    } else {
        /* copied: the entry may be replaced once the lock is released */
        char *a = xstrndup(e->answer, e->answer_len);
        struct semcache_hit hit = {a, e->answer_len, e->cost_micros, NULL, sim};
        char cur[4];
        memcpy(cur, e->currency, sizeof(cur));
        hit.currency = cur;
        pthread_rwlock_unlock(&sc->lock);
        finish(op, &hit);
        xfree(a);
    }
}

static void keep(struct semcache_op *op, const float *v, size_t dim)
{
    index_add(op->w->sc, op->part, v, dim, op->text, op->len, op->answer, op->alen, op->cost,
              op->currency, op->expires_ms);
    if (op->st)
        store_semcache_put(op->st, op->part, op->text, op->len, v, dim, op->answer, op->alen,
                           op->cost, op->currency, op->expires_ms, op->label);
}

/* The embedding is in (v NULL: it failed): answer the lookup, or keep the offered answer. */
static void decide(struct semcache_op *op, const float *v, size_t dim)
{
    struct semcache_worker *w = op->w;
    if (op->fn && v && w->sync_op && !atomic_load(&w->sc->warmed)) {
        /* this worker is warming the index: a lookup before it ends would miss what is there */
        op->vec = xmalloc(dim * sizeof(float));
        memcpy(op->vec, v, dim * sizeof(float));
        op->dim = dim;
        return;
    }
    if (op->fn)
        answer_lookup(op, v, dim);
    else if (v)
        keep(op, v, dim);
    op_free(op);
}

static void on_miss_now(struct loop *l, struct timer *t)
{
    (void)l;
    struct semcache_op *op = (struct semcache_op *)((char *)t - offsetof(struct semcache_op, t));
    decide(op, NULL, 0);
}

static struct semcache_op *op_new(struct semcache_worker *w, const struct semcache_key *k,
                                  const char *text, size_t len, int64_t now_ms)
{
    struct semcache_op *op = xcalloc(1, sizeof(*op));
    op->w = w;
    semcache_part(w->sc, k, op->part);
    op->threshold = semcache_threshold(w->sc, k->query_type);
    op->text = xstrndup(text, len);
    op->len = len;
    op->now_ms = now_ms;
    op->next = w->ops;
    if (w->ops)
        w->ops->prev = op;
    w->ops = op;
    return op;
}

/* Look a question up; see the header. */
struct semcache_op *semcache_lookup(struct semcache_worker *w, struct store *st,
                                    const struct semcache_key *k, const char *text, size_t len,
                                    int64_t now_unix_ms, semcache_fn fn, void *ctx)
{
    struct semcache_op *op = op_new(w, k, text, len, now_unix_ms);
    op->fn = fn;
    op->ctx = ctx;
    atomic_fetch_add_explicit(&w->sc->lookups, 1, memory_order_relaxed);
    maybe_sync(w, st, now_unix_ms);
    if (op->threshold <= 0 || !len || len > QUERY_MAX || !embed_start(op))
        timer_arm(w->l, &op->t, loop_now_ms(w->l), on_miss_now); /* a miss, from the loop */
    return op;
}

/* Forget a lookup; see the header. */
void semcache_cancel(struct semcache_op *op)
{
    if (!op)
        return;
    if (op->req)
        hc_cancel(op->req);
    op_free(op);
}

/* Keep an answer; see the header. */
void semcache_offer(struct semcache_worker *w, struct store *st, const struct semcache_key *k,
                    const char *text, size_t len, const char *answer, size_t alen,
                    int64_t cost_micros, const char *currency, uint32_t ttl_s, int64_t now_unix_ms)
{
    if (semcache_threshold(w->sc, k->query_type) <= 0 || !alen || !len || len > QUERY_MAX || !ttl_s)
        return;
    maybe_sync(w, st, now_unix_ms);
    struct semcache_op *op = op_new(w, k, text, len, now_unix_ms);
    op->st = st;
    op->answer = xstrndup(answer, alen);
    op->alen = alen;
    op->cost = cost_micros;
    op->expires_ms = now_unix_ms + (int64_t)ttl_s * 1000;
    snprintf(op->currency, sizeof(op->currency), "%s", currency ? currency : "INR");
    snprintf(op->label, sizeof(op->label), "%s/%s/%s/%s", k->query_type, k->agent,
             k->prompt_version, k->model);
    const struct memo *m = memo_get(w, text_hash(op->part, text, len));
    if (m) {
        decide(op, m->v, m->dim);
        return;
    }
    if (!embed_start(op))
        op_free(op);
}
