/* user_limits.c - the per-user turn limits table (user_limits.h).
 *
 * Each stripe sits on its own cache lines, so the workers' turns of different stripes never
 * share a written line. An entry's bucket holds thousandths of a turn, refilled evenly over a
 * minute (per_minute turns a minute, a burst of per_minute). Entries are removed lazily: when a
 * stripe's array is full, the entries equal to a fresh one (nothing running, bucket full) are
 * dropped before it grows. */
#include "session/user_limits.h"

#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#include "base/mem.h"

#define ULIM_STRIPES 64
#define MINUTE_MS 60000u

struct entry {
    uint64_t key;
    uint64_t at_ms; /* when tokens was last refilled */
    uint32_t running;
    uint32_t tokens; /* thousandths of a turn */
    bool anonymous;
};

struct stripe {
    pthread_mutex_t mu;
    struct entry *e;
    uint32_t n, cap;
} __attribute__((aligned(64)));

struct ulim {
    struct stripe stripes[ULIM_STRIPES];
    struct ulim_conf conf;
    uint64_t seed[2];
    uint64_t limited[3]; /* atomics */
};

/* See user_limits.h. */
struct ulim *ulim_create(const struct ulim_conf *conf)
{
    struct ulim *u = xcalloc(1, sizeof(*u));
    u->conf = *conf;
    if (getrandom(u->seed, sizeof(u->seed), 0) != (ssize_t)sizeof(u->seed))
        u->seed[0] = (uint64_t)(uintptr_t)u ^ 0x9e3779b97f4a7c15ull; /* still per process */
    for (int i = 0; i < ULIM_STRIPES; i++)
        pthread_mutex_init(&u->stripes[i].mu, NULL);
    return u;
}

void ulim_destroy(struct ulim *u)
{
    if (!u)
        return;
    for (int i = 0; i < ULIM_STRIPES; i++) {
        pthread_mutex_destroy(&u->stripes[i].mu);
        xfree(u->stripes[i].e);
    }
    xfree(u);
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* FNV-1a over the seed, the kind and the bytes, then a 64-bit finalizer. */
uint64_t ulim_key(const struct ulim *u, const char *who, size_t len, bool anonymous)
{
    uint64_t h = 0xcbf29ce484222325ull ^ u->seed[0];
    h = (h ^ (anonymous ? 'a' : 'u')) * 0x100000001b3ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)who[i]) * 0x100000001b3ull;
    return mix(h ^ u->seed[1]);
}

static uint32_t per_minute(const struct ulim *u, bool anonymous)
{
    return anonymous ? u->conf.anon_per_minute : u->conf.user_per_minute;
}

/* Refill e's bucket up to now. */
static void refill(const struct ulim *u, struct entry *e, uint64_t now_ms)
{
    uint32_t pm = per_minute(u, e->anonymous);
    if (!pm || now_ms <= e->at_ms)
        return;
    uint64_t cap = (uint64_t)pm * 1000;
    uint64_t idle = now_ms - e->at_ms; /* a minute refills all: the product never wraps */
    uint64_t add = idle >= MINUTE_MS ? cap : idle * pm * 1000 / MINUTE_MS;
    if (!add)
        return; /* keep at_ms: the fractions add up */
    e->tokens = (uint32_t)(e->tokens + add > cap ? cap : e->tokens + add);
    e->at_ms = now_ms;
}

static bool fresh(const struct ulim *u, struct entry *e, uint64_t now_ms)
{
    refill(u, e, now_ms);
    uint32_t pm = per_minute(u, e->anonymous);
    return e->running == 0 && (!pm || e->tokens >= pm * 1000u);
}

/* The entry of key in s, made if missing (fresh: nothing running, bucket full). */
static struct entry *find(struct ulim *u, struct stripe *s, uint64_t key, bool anonymous,
                          uint64_t now_ms)
{
    for (uint32_t i = 0; i < s->n; i++)
        if (s->e[i].key == key)
            return &s->e[i];
    if (s->n == s->cap) {
        uint32_t k = 0;
        for (uint32_t i = 0; i < s->n; i++)
            if (!fresh(u, &s->e[i], now_ms))
                s->e[k++] = s->e[i];
        s->n = k;
        if (s->n > s->cap / 2 || s->cap == 0) {
            s->cap = s->cap ? s->cap * 2 : 8;
            s->e = xrealloc(s->e, s->cap * sizeof(*s->e));
        }
    }
    struct entry *e = &s->e[s->n++];
    *e = (struct entry){.key = key,
                        .at_ms = now_ms,
                        .anonymous = anonymous,
                        .tokens = per_minute(u, anonymous) * 1000u};
    return e;
}

/* See user_limits.h. */
enum ulim_verdict ulim_turn_begin(struct ulim *u, uint64_t key, bool anonymous, uint64_t now_ms,
                                  uint64_t *retry_ms)
{
    uint32_t max = anonymous ? u->conf.anon_max_turns : u->conf.user_max_turns;
    uint32_t pm = per_minute(u, anonymous);
    struct stripe *s = &u->stripes[key % ULIM_STRIPES];
    enum ulim_verdict v = ULIM_OK;
    *retry_ms = 0;
    pthread_mutex_lock(&s->mu);
    struct entry *e = find(u, s, key, anonymous, now_ms);
    refill(u, e, now_ms);
    if (max && e->running >= max) {
        v = ULIM_CONCURRENT;
        *retry_ms = ULIM_CONCURRENT_RETRY_MS;
    } else if (pm && e->tokens < 1000) {
        v = ULIM_RATE;
        /* the time the missing thousandths take to come back, rounded up */
        *retry_ms = ((uint64_t)(1000 - e->tokens) * MINUTE_MS + pm * 1000ull - 1) / (pm * 1000ull);
    } else {
        e->running++;
        if (pm)
            e->tokens -= 1000;
    }
    pthread_mutex_unlock(&s->mu);
    if (v != ULIM_OK)
        __atomic_add_fetch(&u->limited[v], 1, __ATOMIC_RELAXED);
    return v;
}

/* See user_limits.h. */
void ulim_turn_end(struct ulim *u, uint64_t key)
{
    struct stripe *s = &u->stripes[key % ULIM_STRIPES];
    pthread_mutex_lock(&s->mu);
    for (uint32_t i = 0; i < s->n; i++)
        if (s->e[i].key == key) {
            if (s->e[i].running)
                s->e[i].running--;
            break;
        }
    pthread_mutex_unlock(&s->mu);
}

/* See user_limits.h. The stripes are read under their locks, one at a time (a scrape is rare). */
void ulim_stats(struct ulim *u, struct ulim_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < ULIM_STRIPES; i++) {
        struct stripe *s = &u->stripes[i];
        pthread_mutex_lock(&s->mu);
        out->users += s->n;
        for (uint32_t k = 0; k < s->n; k++)
            out->running += s->e[k].running;
        pthread_mutex_unlock(&s->mu);
    }
    for (int v = ULIM_CONCURRENT; v <= ULIM_RATE; v++)
        out->limited[v] = __atomic_load_n(&u->limited[v], __ATOMIC_RELAXED);
}
