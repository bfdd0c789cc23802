/* sim_capacity.c - the providers' limits: concurrent generations and tokens per minute, of the
 * pay-as-you-go deployment (--max-streams, --tpm) and of each provisioned pool (--pool).
 *
 * Tokens per minute is a sliding window of 60 one-second buckets. A request is admitted while the
 * window holds fewer than `tpm` tokens and then charges its whole planned use at once (like
 * real providers, which reserve max_tokens up front), so one big request may overshoot and the
 * next ones wait. Retry-After is the number of seconds until enough old buckets fall out of the
 * window to bring it under the limit. The window is kept without a limit too: /metrics reports
 * it. */
#include "loadtest/sim/sim.h"

#include <errno.h>
#include <string.h>

/* Set up one deployment's counters. */
static void cap_init(struct sim_cap *c, uint32_t max_streams, uint64_t tpm)
{
    memset(c, 0, sizeof(*c));
    c->max_streams = max_streams;
    c->tpm = tpm;
    atomic_init(&c->streams, 0);
    atomic_init(&c->admitted, 0);
    atomic_init(&c->refused_streams, 0);
    atomic_init(&c->refused_tokens, 0);
    pthread_mutex_init(&c->lock, NULL);
}

/* Set up the pay-as-you-go counters and each pool's. */
void sim_capacity_init(struct sim *s)
{
    cap_init(&s->payg, s->o.max_streams, s->o.tpm);
    for (int i = 0; i < s->o.npools; i++)
        cap_init(&s->pools[i], s->o.pools[i].streams, s->o.pools[i].tpm);
}

/* Release what sim_capacity_init set up. */
void sim_capacity_fini(struct sim *s)
{
    pthread_mutex_destroy(&s->payg.lock);
    for (int i = 0; i < s->o.npools; i++)
        pthread_mutex_destroy(&s->pools[i].lock);
}

/* Bucket second of time now_ms: never 0, which marks an empty bucket. */
static uint64_t sec_of(uint64_t now_ms)
{
    return now_ms / 1000 + SIM_TPM_WINDOW;
}

/* Tokens admitted in the 60 s ending at sec. Called with the lock held. */
static uint64_t window_used(const struct sim_cap *c, uint64_t sec)
{
    uint64_t used = 0;
    for (int i = 0; i < SIM_TPM_WINDOW; i++)
        if (c->sec[i] && c->sec[i] + SIM_TPM_WINDOW > sec)
            used += c->count[i];
    return used;
}

/* Seconds until a window holding `used` tokens at sec is below the limit: the oldest bucket
 * leaves first. Called with the lock held. */
static uint32_t window_frees_in(const struct sim_cap *c, uint64_t sec, uint64_t used)
{
    uint32_t free_in = 1;
    for (uint32_t d = 1; d <= SIM_TPM_WINDOW && used >= c->tpm; d++) {
        uint64_t leaving = sec + d - SIM_TPM_WINDOW; /* bucket second that expires at sec + d */
        int i = (int)(leaving % SIM_TPM_WINDOW);
        if (c->sec[i] == leaving)
            used -= c->count[i];
        free_in = d;
    }
    return free_in;
}

static int admit_tokens(struct sim_cap *c, uint64_t tokens, uint64_t now_ms, uint32_t *retry_after)
{
    uint64_t sec = sec_of(now_ms);
    int ret = 0;
    pthread_mutex_lock(&c->lock);
    uint64_t used = window_used(c, sec);
    if (c->tpm && used >= c->tpm) {
        *retry_after = window_frees_in(c, sec, used);
        ret = -EBUSY;
        goto out_unlock;
    }
    int i = (int)(sec % SIM_TPM_WINDOW);
    if (c->sec[i] != sec) {
        c->sec[i] = sec;
        c->count[i] = 0;
    }
    c->count[i] += tokens;
out_unlock:
    pthread_mutex_unlock(&c->lock);
    return ret;
}

/* Admit one generation; see sim.h. */
int sim_capacity_admit(struct sim_cap *c, uint64_t tokens, uint64_t now_ms, uint32_t *retry_after,
                       const char **why)
{
    unsigned n = atomic_fetch_add(&c->streams, 1);
    if (c->max_streams && n >= c->max_streams) {
        atomic_fetch_sub(&c->streams, 1);
        atomic_fetch_add_explicit(&c->refused_streams, 1, memory_order_relaxed);
        *retry_after = 1;
        *why = "streams";
        return -EBUSY;
    }
    if (admit_tokens(c, tokens, now_ms, retry_after) < 0) {
        atomic_fetch_sub(&c->streams, 1);
        atomic_fetch_add_explicit(&c->refused_tokens, 1, memory_order_relaxed);
        *why = "tokens";
        return -EBUSY;
    }
    atomic_fetch_add_explicit(&c->admitted, 1, memory_order_relaxed);
    return 0;
}

/* One admitted generation ended. */
void sim_capacity_release(struct sim_cap *c)
{
    atomic_fetch_sub(&c->streams, 1);
}

/* Tokens charged in the minute ending at now_ms; see sim.h. */
uint64_t sim_capacity_window(struct sim_cap *c, uint64_t now_ms)
{
    pthread_mutex_lock(&c->lock);
    uint64_t used = window_used(c, sec_of(now_ms));
    pthread_mutex_unlock(&c->lock);
    return used;
}
