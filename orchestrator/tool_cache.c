/* tool_cache.c - the tool response cache (tool_cache.h). */
#include "orchestrator/tool_cache.h"

#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "base/log.h"
#include "base/mem.h"
#include "orchestrator/cache_lru.h"
#include "orchestrator/tool_run_int.h"
#include "store/cache_store.h"
#include "stream/jsonw.h"

#define CANON_DEPTH 16

/* The identical calls of one key in flight: one leader sends, the others wait for it. */
struct tc_flight {
    struct tc_flight *next;
    struct tool_cache *tc;
    uint8_t key[LRU_KEY];
    struct tool_call *leader;
    struct tool_call *waiters; /* linked by next_waiter */
    struct store_op *read;     /* the shared tier's read, before the leader sends */
};

struct tool_cache {
    const struct tool_cache_conf *conf;
    struct tool_runner *r;
    struct loop *l;
    struct lru *lru;
    struct store *st;
    struct tc_flight *flights;
    struct tool_call *refreshing; /* background refreshes, linked by next_waiter */
};

static int64_t unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---- canonical arguments ---- */

/* Trimmed, inner whitespace runs as one space. */
static void canon_string(struct jsonw *w, const char *s, size_t n)
{
    struct buf b = {0};
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    bool space = false;
    for (; i < n; i++) {
        bool ws = s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r';
        if (ws) {
            space = true;
            continue;
        }
        if (space && buf_size(&b))
            buf_append(&b, " ", 1);
        space = false;
        buf_append(&b, &s[i], 1);
    }
    jw_strn(w, buf_begin(&b) ? buf_begin(&b) : "", buf_size(&b));
    buf_free(&b);
}

static void canon_number(json_doc *d, const char *ptr, struct jsonw *w)
{
    double v = 0;
    json_get_double(d, ptr, &v);
    char s[40];
    int n = v == floor(v) && fabs(v) < 9007199254740992.0
                ? snprintf(s, sizeof(s), "%lld", (long long)v)
                : snprintf(s, sizeof(s), "%.17g", v);
    jw_raw(w, s, (size_t)n);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int canon(json_doc *d, struct buf *ptr, struct jsonw *w, int depth);

/* A pointer to member `key` of the object at ptr (RFC 6901 escapes). */
static void child_ptr(struct buf *ptr, size_t base, const char *key)
{
    buf_truncate(ptr, base);
    buf_append(ptr, "/", 1);
    for (const char *k = key; *k; k++)
        buf_append_str(ptr, *k == '~' ? "~0" : *k == '/' ? "~1" : (char[2]){*k, 0});
    buf_append(ptr, "", 1);
    ptr->len--;
}

static int canon_object(json_doc *d, struct buf *ptr, struct jsonw *w, int depth)
{
    size_t n = 0, base = buf_size(ptr);
    json_count(d, buf_begin(ptr) ? buf_begin(ptr) : "", &n);
    char **keys = xcalloc(n ? n : 1, sizeof(*keys));
    for (size_t i = 0; i < n; i++) {
        const char *k;
        size_t kl;
        json_key_at(d, buf_begin(ptr) ? buf_begin(ptr) : "", i, &k, &kl);
        keys[i] = xstrndup(k, kl);
    }
    qsort(keys, n, sizeof(*keys), cmp_str);
    int rc = 0;
    jw_obj_begin(w);
    for (size_t i = 0; i < n && rc == 0; i++) {
        child_ptr(ptr, base, keys[i]);
        if (json_type_at(d, buf_begin(ptr)) == JSON_NULL)
            continue; /* a null argument is not sent: the same call as without it */
        jw_key(w, keys[i]);
        rc = canon(d, ptr, w, depth + 1);
    }
    jw_obj_end(w);
    for (size_t i = 0; i < n; i++)
        xfree(keys[i]);
    xfree(keys);
    buf_truncate(ptr, base);
    return rc;
}

static int canon(json_doc *d, struct buf *ptr, struct jsonw *w, int depth)
{
    if (depth > CANON_DEPTH)
        return -EINVAL;
    buf_append(ptr, "", 1);
    ptr->len--;
    const char *p = buf_begin(ptr) ? buf_begin(ptr) : "";
    const char *s;
    size_t n = 0, base = buf_size(ptr);
    bool b;
    switch (json_type_at(d, p)) {
    case JSON_NULL:
        jw_null(w);
        return 0;
    case JSON_BOOL:
        json_get_bool(d, p, &b);
        jw_bool(w, b);
        return 0;
    case JSON_NUMBER:
        canon_number(d, p, w);
        return 0;
    case JSON_STRING:
        json_get_string(d, p, &s, &n);
        canon_string(w, s, n);
        return 0;
    case JSON_ARRAY:
        json_count(d, p, &n);
        jw_arr_begin(w);
        for (size_t i = 0; i < n; i++) {
            buf_truncate(ptr, base);
            buf_printf(ptr, "/%zu", i);
            if (canon(d, ptr, w, depth + 1) < 0)
                return -EINVAL;
        }
        jw_arr_end(w);
        buf_truncate(ptr, base);
        return 0;
    case JSON_OBJECT:
        return canon_object(d, ptr, w, depth);
    default:
        return -EINVAL;
    }
}

/* Canonical arguments; see the header. */
int tool_canonical_args(json_doc *d, const char *args, size_t len, struct buf *out)
{
    if (!args || !len)
        args = "{}", len = 2;
    if (json_doc_load(d, args, len) < 0)
        return -EINVAL;
    struct buf ptr = {0};
    struct jsonw w;
    size_t start = buf_size(out);
    jw_init(&w, out);
    int rc = canon(d, &ptr, &w, 0);
    buf_free(&ptr);
    if (rc < 0)
        buf_truncate(out, start);
    return rc;
}

static int call_key(struct tool_cache *tc, const struct tool_call *c, const char *args, size_t len,
                    uint8_t key[LRU_KEY])
{
    struct buf b = {0};
    buf_append_str(&b, "tool/1");
    buf_append(&b, "", 1);
    buf_append_str(&b, c->t->name);
    buf_append(&b, "", 1);
    if (tool_canonical_args(tc->r->doc, args, len, &b) < 0) {
        buf_free(&b);
        return -EINVAL;
    }
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    EVP_Digest(buf_begin(&b), buf_size(&b), d, &dl, EVP_sha256(), NULL);
    memcpy(key, d, LRU_KEY);
    buf_free(&b);
    return 0;
}

static void hex(const uint8_t key[LRU_KEY], char out[65])
{
    for (int i = 0; i < LRU_KEY; i++)
        snprintf(out + 2 * i, 3, "%02x", key[i]);
}

/* ---- entries: the shaped text (for the model) and the raw answer (for the client's cards) ---- */

static void keep_result(struct tool_cache *tc, const struct tool_call *c,
                        const uint8_t key[LRU_KEY])
{
    uint32_t sl = (uint32_t)buf_size(&c->res.text);
    size_t rl = buf_size(&c->raw);
    char *blob = xmalloc(4 + sl + rl + 1);
    memcpy(blob, &sl, 4);
    memcpy(blob + 4, buf_begin(&c->res.text), sl);
    memcpy(blob + 4 + sl, buf_begin(&c->raw), rl);
    int64_t expires = unix_ms() + (int64_t)c->t->cache_ttl_s * 1000;
    lru_put(tc->lru, key, blob, 4 + sl + rl, expires, 0);
    xfree(blob);
    if (tc->conf->shared && tc->st && rl && !memchr(buf_begin(&c->raw), '\0', rl)) {
        char k[65];
        hex(key, k);
        store_cache_put(tc->st, "tool", k, buf_begin(&c->raw), rl, 0, tc->conf->currency, expires,
                        c->t->name);
    }
}

/* c ends as an ok call whose text and raw answer are the entry's, on the next loop turn. */
static void serve_blob(struct tool_call *c, const char *blob, size_t len, bool stale)
{
    uint32_t sl;
    memcpy(&sl, blob, 4);
    buf_reset(&c->res.text);
    buf_append(&c->res.text, blob + 4, sl);
    buf_reset(&c->raw);
    buf_append(&c->raw, blob + 4 + sl, len - 4 - sl);
    c->res.http_status = 200;
    c->res.raw_bytes = len - 4 - sl;
    c->res.shaped_bytes = sl;
    c->res.cache_hit = true;
    c->res.stale = stale;
    cache_stat_add(CACHE_TOOL, CSTAT_HIT, 1);
    tool_call__end_deferred(c, TOOL_OK);
}

/* A waiting call gets the leader's outcome as its own (ok, error or timeout). */
static void share_result(struct tool_call *w, const struct tool_call *from)
{
    buf_reset(&w->res.text);
    buf_append(&w->res.text, buf_begin(&from->res.text), buf_size(&from->res.text));
    buf_reset(&w->raw);
    buf_append(&w->raw, buf_begin(&from->raw), buf_size(&from->raw));
    w->res.http_status = from->res.http_status;
    w->res.raw_bytes = from->res.raw_bytes;
    w->res.shaped_bytes = from->res.shaped_bytes;
    w->res.cache_hit = from->res.status == TOOL_OK;
    if (w->res.cache_hit)
        cache_stat_add(CACHE_TOOL, CSTAT_HIT, 1);
    tool_call__end_deferred(w, from->res.status);
}

/* ---- flights ---- */

static struct tc_flight *flight_find(struct tool_cache *tc, const uint8_t key[LRU_KEY])
{
    for (struct tc_flight *f = tc->flights; f; f = f->next)
        if (memcmp(f->key, key, LRU_KEY) == 0)
            return f;
    return NULL;
}

static struct tc_flight *flight_new(struct tool_cache *tc, const uint8_t key[LRU_KEY],
                                    struct tool_call *leader)
{
    struct tc_flight *f = xcalloc(1, sizeof(*f));
    f->tc = tc;
    memcpy(f->key, key, LRU_KEY);
    f->leader = leader;
    leader->flight = f;
    f->next = tc->flights;
    tc->flights = f;
    return f;
}

static void flight_free(struct tc_flight *f)
{
    struct tool_cache *tc = f->tc;
    for (struct tc_flight **p = &tc->flights; *p; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            break;
        }
    store_cache_cancel(f->read);
    xfree(f);
}

/* Detach the waiting calls of f (their ends are the caller's business). */
static struct tool_call *take_waiters(struct tc_flight *f)
{
    struct tool_call *w = f->waiters;
    f->waiters = NULL;
    for (struct tool_call *x = w; x; x = x->next_waiter)
        x->flight = NULL;
    return w;
}

/* The leader is gone without a result: the first waiting call sends its own request and leads
 * the others; with none waiting, the flight ends. */
static void promote(struct tc_flight *f)
{
    struct tool_call *w = f->waiters;
    if (!w) {
        flight_free(f);
        return;
    }
    f->waiters = w->next_waiter;
    w->next_waiter = NULL;
    f->leader = w;
    cache_stat_add(CACHE_TOOL, CSTAT_MISS, 1);
    tool_call__send(w);
}

/* ---- the shared tier ---- */

static void on_shared(void *ctx, int result, const struct store_cache_entry *e)
{
    struct tc_flight *f = ctx;
    struct tool_cache *tc = f->tc;
    struct tool_call *c = f->leader;
    f->read = NULL;
    if (result < 0) {
        cache_stat_add(CACHE_TOOL, CSTAT_MISS, 1);
        tool_call__send(c); /* none, or PostgreSQL away: the leader asks the tool itself */
        return;
    }
    buf_reset(&c->raw);
    buf_append(&c->raw, e->value, e->len);
    buf_reset(&c->res.text);
    tool_shape(c->t, tc->r->doc, e->value, e->len, &c->res.text);
    uint32_t sl = (uint32_t)buf_size(&c->res.text);
    char *blob = xmalloc(4 + sl + e->len + 1);
    memcpy(blob, &sl, 4);
    memcpy(blob + 4, buf_begin(&c->res.text), sl);
    memcpy(blob + 4 + sl, e->value, e->len);
    lru_put(tc->lru, f->key, blob, 4 + sl + e->len, e->expires_unix_ms, 0);
    struct tool_call *w = take_waiters(f);
    c->flight = NULL;
    flight_free(f);
    serve_blob(c, blob, 4 + sl + e->len, false);
    for (struct tool_call *next; w; w = next) {
        next = w->next_waiter;
        w->next_waiter = NULL;
        serve_blob(w, blob, 4 + sl + e->len, false);
    }
    xfree(blob);
}

/* ---- refreshes of stale entries ---- */

static void on_refreshed(void *ctx, struct tool_call *c)
{
    struct tool_cache *tc = ctx;
    for (struct tool_call **p = &tc->refreshing; *p; p = &(*p)->next_waiter)
        if (*p == c) {
            *p = c->next_waiter;
            break;
        }
    c->next_waiter = NULL;
    if (c->res.status != TOOL_OK)
        log_info("tool cache: refreshing a stale %s result failed: %.*s", c->name,
                 (int)buf_size(&c->res.text), buf_begin(&c->res.text));
    tool_call_free(c); /* its result went into the cache when it ended */
}

static void start_refresh(struct tool_cache *tc, const struct tool_def *t, const char *args,
                          size_t len)
{
    struct tool_call *rc = tool_call__new(tc->r, t, on_refreshed, tc);
    rc->refresh = true;
    rc->next_waiter = tc->refreshing;
    tc->refreshing = rc;
    tool_call__begin(rc, args, len);
}

/* ---- the runner's hooks ---- */

/* Serve, wait or send; see the header. */
bool tool_cache_begin(struct tool_cache *tc, struct tool_call *c, const char *args, size_t len)
{
    uint8_t key[LRU_KEY];
    if (call_key(tc, c, args, len, key) < 0)
        return false;
    struct tc_flight *f = flight_find(tc, key);
    if (c->refresh) { /* a background refresh leads a flight of its own */
        if (f)
            return false; /* cannot happen: a refresh starts only when none is in flight */
        flight_new(tc, key, c);
        return false;
    }
    struct lru_entry e;
    int64_t now = unix_ms();
    if (lru_get(tc->lru, key, &e)) {
        if (e.expires_ms > now) {
            serve_blob(c, e.val, e.len, false);
            return true;
        }
        if (e.expires_ms + (int64_t)tc->conf->max_stale_s * 1000 > now) {
            char *copy = xmalloc(e.len);
            size_t n = e.len;
            memcpy(copy, e.val, n);
            if (!f)
                start_refresh(tc, c->t, args, len); /* may replace the LRU entry: copied */
            serve_blob(c, copy, n, true);
            xfree(copy);
            return true;
        }
        lru_del(tc->lru, key); /* too stale to serve */
    }
    if (f) { /* an identical call is being made: wait for its answer */
        c->flight = f;
        c->next_waiter = f->waiters;
        f->waiters = c;
        c->state = TC_CACHED;
        return true;
    }
    f = flight_new(tc, key, c);
    if (tc->conf->shared && tc->st) {
        char k[65];
        hex(key, k);
        c->state = TC_CACHED;
        f->read = store_cache_get(tc->st, "tool", k, on_shared, f);
        return true;
    }
    cache_stat_add(CACHE_TOOL, CSTAT_MISS, 1);
    return false;
}

static void waiter_left(struct tc_flight *f, struct tool_call *c)
{
    for (struct tool_call **p = &f->waiters; *p; p = &(*p)->next_waiter)
        if (*p == c) {
            *p = c->next_waiter;
            break;
        }
    c->next_waiter = NULL;
}

/* A call of a flight ended; see the header. */
void tool_cache_call_ended(struct tool_cache *tc, struct tool_call *c)
{
    struct tc_flight *f = c->flight;
    c->flight = NULL;
    if (f->leader != c) {
        waiter_left(f, c); /* a waiting call was cancelled */
        return;
    }
    if (c->res.status == TOOL_CANCELLED) {
        store_cache_cancel(f->read);
        f->read = NULL;
        promote(f);
        return;
    }
    if (c->res.status == TOOL_OK)
        keep_result(tc, c, f->key);
    struct tool_call *w = take_waiters(f);
    flight_free(f);
    for (struct tool_call *next; w; w = next) {
        next = w->next_waiter;
        w->next_waiter = NULL;
        share_result(w, c);
    }
}

/* ---- life ---- */

/* See tool_cache.h. */
struct tool_cache *tool_cache_create(const struct tool_cache_conf *conf, struct tool_runner *r,
                                     struct loop *l)
{
    struct tool_cache *tc = xcalloc(1, sizeof(*tc));
    tc->conf = conf;
    tc->r = r;
    tc->l = l;
    tc->lru = lru_create(conf->lru_bytes, CACHE_TOOL);
    return tc;
}

/* See tool_cache.h. */
void tool_cache_set_store(struct tool_cache *tc, struct store *st)
{
    if (tc)
        tc->st = st;
}

/* See tool_cache.h. */
void tool_cache_destroy(struct tool_cache *tc)
{
    if (!tc)
        return;
    while (tc->refreshing) {
        struct tool_call *c = tc->refreshing;
        tc->refreshing = c->next_waiter;
        c->next_waiter = NULL;
        c->fn = NULL; /* cancelled here: on_refreshed must not run */
        tool_call_free(c);
    }
    while (tc->flights) {
        struct tc_flight *f = tc->flights;
        if (f->leader)
            f->leader->flight = NULL;
        take_waiters(f); /* no turn runs any more: nobody waits */
        flight_free(f);
    }
    lru_destroy(tc->lru);
    xfree(tc);
}
