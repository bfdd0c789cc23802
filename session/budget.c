/* budget.c - the daily spend table (budget.h).
 *
 * Each stripe is an open-addressing table (linear probing, at most half full) of entries keyed by
 * a keyed 64-bit hash of the user; key 0 marks a free slot. An entry belongs to one UTC day: an
 * entry of an earlier day counts as nothing and is reset when that user spends again. A finished
 * read rebuilds every stripe with the users it returned, which also drops the entries of users
 * who spent nothing today (yesterday's, or refused ones). */
#include "session/budget.h"

#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#include "base/mem.h"

#define BUDGET_STRIPES 64

struct entry {
    uint64_t key; /* 0 = free */
    int64_t day;
    int64_t db, pending, fresh;
};

struct stripe {
    pthread_mutex_t mu;
    struct entry *e;
    uint32_t n, cap; /* cap: 0 or a power of two */
} __attribute__((aligned(64)));

struct budget {
    struct stripe stripes[BUDGET_STRIPES];
    struct budget_conf conf;
    uint64_t seed;
    pthread_mutex_t dep_mu; /* the deployment's total (an entry of its own) */
    struct entry dep;
    uint64_t refused[3]; /* atomics */
    uint64_t refreshes, refresh_failures;
};

/* See budget.h. */
int64_t budget_day_start(int64_t unix_ms)
{
    int64_t d = unix_ms / BUDGET_DAY_MS;
    if (unix_ms < 0 && unix_ms % BUDGET_DAY_MS)
        d--;
    return d * BUDGET_DAY_MS;
}

/* See budget.h. */
enum budget_verdict budget_decide(const struct budget_conf *c, bool anonymous, int64_t user_spent,
                                  int64_t deployment_spent)
{
    if (c->deployment_daily_micros > 0 && deployment_spent >= c->deployment_daily_micros)
        return BUDGET_DEPLOYMENT;
    if (!anonymous && c->user_daily_micros > 0 && user_spent >= c->user_daily_micros)
        return BUDGET_USER;
    return BUDGET_OK;
}

/* See budget.h. */
struct budget *budget_create(const struct budget_conf *conf)
{
    struct budget *b = xcalloc(1, sizeof(*b));
    b->conf = *conf;
    if (getrandom(&b->seed, sizeof(b->seed), 0) != (ssize_t)sizeof(b->seed))
        b->seed = (uint64_t)(uintptr_t)b ^ 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < BUDGET_STRIPES; i++)
        pthread_mutex_init(&b->stripes[i].mu, NULL);
    pthread_mutex_init(&b->dep_mu, NULL);
    return b;
}

void budget_destroy(struct budget *b)
{
    if (!b)
        return;
    for (int i = 0; i < BUDGET_STRIPES; i++) {
        pthread_mutex_destroy(&b->stripes[i].mu);
        xfree(b->stripes[i].e);
    }
    pthread_mutex_destroy(&b->dep_mu);
    xfree(b);
}

static uint64_t user_key(const struct budget *b, const char *user)
{
    uint64_t h = 0xcbf29ce484222325ull ^ b->seed;
    for (const char *p = user; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    return h ? h : 1;
}

static struct stripe *stripe_of(struct budget *b, uint64_t key)
{
    return &b->stripes[(key >> 58) % BUDGET_STRIPES];
}

static struct entry *lookup(struct stripe *s, uint64_t key)
{
    if (!s->cap)
        return NULL;
    for (uint32_t i = (uint32_t)key & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->e[i].key == key)
            return &s->e[i];
        if (!s->e[i].key)
            return NULL;
    }
}

static struct entry *insert(struct stripe *s, uint64_t key);

static void grow(struct stripe *s, uint32_t cap)
{
    struct entry *old = s->e;
    uint32_t oldcap = s->cap;
    s->e = xcalloc(cap, sizeof(*s->e));
    s->cap = cap;
    s->n = 0;
    for (uint32_t i = 0; i < oldcap; i++)
        if (old[i].key)
            *insert(s, old[i].key) = old[i];
    xfree(old);
}

/* The entry of key, made (all zero, day 0) if missing. */
static struct entry *insert(struct stripe *s, uint64_t key)
{
    struct entry *e = lookup(s, key);
    if (e)
        return e;
    if ((s->n + 1) * 2 > s->cap)
        grow(s, s->cap ? s->cap * 2 : 16);
    uint32_t i = (uint32_t)key & (s->cap - 1);
    while (s->e[i].key)
        i = (i + 1) & (s->cap - 1);
    s->e[i] = (struct entry){.key = key};
    s->n++;
    return &s->e[i];
}

static int64_t spent_on(const struct entry *e, int64_t day)
{
    return e && e->day == day ? e->db + e->pending + e->fresh : 0;
}

/* Count micros on e for day: a later day starts the entry afresh, an earlier one is dropped. */
static void add_to(struct entry *e, int64_t day, int64_t micros)
{
    if (day < e->day)
        return;
    if (day > e->day)
        *e = (struct entry){.key = e->key, .day = day};
    e->fresh += micros;
}

/* See budget.h. */
enum budget_verdict budget_check(struct budget *b, const char *user, int64_t now_unix_ms,
                                 int64_t *spent, int64_t *limit)
{
    int64_t day = budget_day_start(now_unix_ms), us = 0, ds;
    bool anon = !user[0];
    if (!anon && b->conf.user_daily_micros > 0) {
        uint64_t key = user_key(b, user);
        struct stripe *s = stripe_of(b, key);
        pthread_mutex_lock(&s->mu);
        us = spent_on(lookup(s, key), day);
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_lock(&b->dep_mu);
    ds = spent_on(&b->dep, day);
    pthread_mutex_unlock(&b->dep_mu);
    enum budget_verdict v = budget_decide(&b->conf, anon, us, ds);
    *spent = v == BUDGET_USER ? us : ds;
    *limit = v == BUDGET_USER ? b->conf.user_daily_micros : b->conf.deployment_daily_micros;
    if (v != BUDGET_OK)
        __atomic_add_fetch(&b->refused[v], 1, __ATOMIC_RELAXED);
    return v;
}

/* See budget.h. */
void budget_add(struct budget *b, const char *user, int64_t started_unix_ms, int64_t micros)
{
    int64_t day = budget_day_start(started_unix_ms);
    if (micros <= 0)
        return;
    if (user[0]) {
        uint64_t key = user_key(b, user);
        struct stripe *s = stripe_of(b, key);
        pthread_mutex_lock(&s->mu);
        add_to(insert(s, key), day, micros);
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_lock(&b->dep_mu);
    add_to(&b->dep, day, micros);
    pthread_mutex_unlock(&b->dep_mu);
}

static void begin_entry(struct entry *e, int64_t day)
{
    if (e->day == day) {
        e->pending += e->fresh;
        e->fresh = 0;
    }
}

/* See budget.h. */
int64_t budget_refresh_begin(struct budget *b, int64_t now_unix_ms)
{
    int64_t day = budget_day_start(now_unix_ms);
    for (int i = 0; i < BUDGET_STRIPES; i++) {
        struct stripe *s = &b->stripes[i];
        pthread_mutex_lock(&s->mu);
        for (uint32_t k = 0; k < s->cap; k++)
            if (s->e[k].key)
                begin_entry(&s->e[k], day);
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_lock(&b->dep_mu);
    begin_entry(&b->dep, day);
    pthread_mutex_unlock(&b->dep_mu);
    return day;
}

/* After a read of day: ok = the ledger's db replaces ours and pending is in it; else pending is
 * still ours alone. Returns whether the entry still holds anything of that day or later. */
static bool end_entry(struct entry *e, int64_t day, bool ok)
{
    if (e->day == day) {
        if (ok)
            e->db = e->pending = 0;
        else
            e->fresh += e->pending, e->pending = 0;
    }
    return e->day > day || (e->day == day && (e->db || e->fresh));
}

/* Rebuild stripe s after a read of day (its lock held): the entries still worth keeping, then
 * the read's users of this stripe (idx[0..n) into rows, keys[] their keys). */
static void end_stripe(struct stripe *s, int64_t day, bool ok, const struct store_spend_row *rows,
                       const uint64_t *keys, const uint32_t *idx, uint32_t n)
{
    struct entry *old = s->e;
    uint32_t oldcap = s->cap;
    s->e = NULL;
    s->cap = s->n = 0;
    for (uint32_t k = 0; k < oldcap; k++)
        if (old[k].key && end_entry(&old[k], day, ok))
            *insert(s, old[k].key) = old[k];
    xfree(old);
    for (uint32_t i = 0; ok && i < n; i++) {
        struct entry *e = insert(s, keys[idx[i]]);
        if (e->day > day)
            continue;
        if (e->day < day)
            *e = (struct entry){.key = e->key, .day = day};
        e->db = rows[idx[i]].micros;
    }
}

/* See budget.h. The rows are sorted by stripe first (a counting sort), so that each stripe is
 * rebuilt and refilled under one hold of its lock: a check never sees a user between the two. */
void budget_refresh_end(struct budget *b, int64_t day, bool ok, const struct store_spend_row *rows,
                        size_t n)
{
    uint64_t *keys = xcalloc(n ? n : 1, sizeof(*keys));
    uint32_t *idx = xcalloc(n ? n : 1, sizeof(*idx));
    uint32_t start[BUDGET_STRIPES + 1] = {0}, fill[BUDGET_STRIPES];
    int64_t total = 0;
    for (size_t i = 0; ok && i < n; i++) {
        total += rows[i].micros;
        if (!rows[i].user_sub[0])
            continue;
        keys[i] = user_key(b, rows[i].user_sub);
        start[(keys[i] >> 58) % BUDGET_STRIPES + 1]++;
    }
    for (int i = 0; i < BUDGET_STRIPES; i++)
        start[i + 1] += start[i];
    for (int i = 0; i < BUDGET_STRIPES; i++)
        fill[i] = start[i];
    for (size_t i = 0; ok && i < n; i++)
        if (keys[i])
            idx[fill[(keys[i] >> 58) % BUDGET_STRIPES]++] = (uint32_t)i;
    for (int i = 0; i < BUDGET_STRIPES; i++) {
        struct stripe *s = &b->stripes[i];
        pthread_mutex_lock(&s->mu);
        end_stripe(s, day, ok, rows, keys, idx + start[i], start[i + 1] - start[i]);
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_lock(&b->dep_mu);
    end_entry(&b->dep, day, ok);
    if (ok && b->dep.day <= day) {
        if (b->dep.day < day)
            b->dep = (struct entry){.day = day};
        b->dep.db = total;
    }
    pthread_mutex_unlock(&b->dep_mu);
    xfree(keys);
    xfree(idx);
    __atomic_add_fetch(ok ? &b->refreshes : &b->refresh_failures, 1, __ATOMIC_RELAXED);
}

/* See budget.h. */
void budget_stats(struct budget *b, int64_t now_unix_ms, struct budget_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (int v = BUDGET_USER; v <= BUDGET_DEPLOYMENT; v++)
        out->refused[v] = __atomic_load_n(&b->refused[v], __ATOMIC_RELAXED);
    out->refreshes = __atomic_load_n(&b->refreshes, __ATOMIC_RELAXED);
    out->refresh_failures = __atomic_load_n(&b->refresh_failures, __ATOMIC_RELAXED);
    pthread_mutex_lock(&b->dep_mu);
    out->deployment_spent = spent_on(&b->dep, budget_day_start(now_unix_ms));
    pthread_mutex_unlock(&b->dep_mu);
}
