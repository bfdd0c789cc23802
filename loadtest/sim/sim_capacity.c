/* sim_capacity.c - the provider's limits: concurrent generations and output tokens per minute.
 *
 * Tokens per minute is a sliding window of 60 one-second buckets. A request is admitted while the
 * window holds fewer than `tpm` tokens and then charges its whole planned output at once (like
 * real providers, which reserve max_tokens up front), so one big request may overshoot and the
 * next ones wait. Retry-After is the number of seconds until enough old buckets fall out of the
 * window to bring it under the limit. */
#include "loadtest/sim/sim.h"

#include <errno.h>
#include <string.h>

/* Set up the shared counters. */
void sim_capacity_init(struct sim *s)
{
    atomic_init(&s->streams, 0);
    pthread_mutex_init(&s->tpm_lock, NULL);
    memset(s->tpm_sec, 0, sizeof(s->tpm_sec));
    memset(s->tpm_count, 0, sizeof(s->tpm_count));
}

/* Release what sim_capacity_init set up. */
void sim_capacity_fini(struct sim *s)
{
    pthread_mutex_destroy(&s->tpm_lock);
}

/* Tokens admitted in the 60 s ending at sec; *free_in = seconds until the window is below
 * limit. Called with tpm_lock held. */
static uint64_t window_used(struct sim *s, uint64_t sec, uint64_t limit, uint32_t *free_in)
{
    uint64_t used = 0;
    for (int i = 0; i < SIM_TPM_WINDOW; i++)
        if (s->tpm_sec[i] && s->tpm_sec[i] + SIM_TPM_WINDOW > sec)
            used += s->tpm_count[i];
    *free_in = 1;
    uint64_t left = used;
    /* Walk forward in time: the oldest bucket leaves first. */
    for (uint32_t d = 1; d <= SIM_TPM_WINDOW && left >= limit; d++) {
        uint64_t leaving = sec + d - SIM_TPM_WINDOW; /* bucket second that expires at sec + d */
        int i = (int)(leaving % SIM_TPM_WINDOW);
        if (s->tpm_sec[i] == leaving)
            left -= s->tpm_count[i];
        *free_in = d;
    }
    return used;
}

static int admit_tokens(struct sim *s, uint64_t tokens, uint64_t now_ms, uint32_t *retry_after)
{
    uint64_t sec = now_ms / 1000 + SIM_TPM_WINDOW; /* never 0: 0 marks an empty bucket */
    int ret = 0;
    pthread_mutex_lock(&s->tpm_lock);
    uint32_t free_in;
    if (window_used(s, sec, s->o.tpm, &free_in) >= s->o.tpm) {
        *retry_after = free_in;
        ret = -EBUSY;
        goto out_unlock;
    }
    int i = (int)(sec % SIM_TPM_WINDOW);
    if (s->tpm_sec[i] != sec) {
        s->tpm_sec[i] = sec;
        s->tpm_count[i] = 0;
    }
    s->tpm_count[i] += tokens;
out_unlock:
    pthread_mutex_unlock(&s->tpm_lock);
    return ret;
}

/* Admit one generation; see sim.h. */
int sim_capacity_admit(struct sim *s, uint64_t tokens, uint64_t now_ms, uint32_t *retry_after,
                       const char **why)
{
    if (s->o.max_streams) {
        unsigned n = atomic_fetch_add(&s->streams, 1);
        if (n >= s->o.max_streams) {
            atomic_fetch_sub(&s->streams, 1);
            *retry_after = 1;
            *why = "streams";
            return -EBUSY;
        }
    } else {
        atomic_fetch_add(&s->streams, 1);
    }
    if (s->o.tpm && admit_tokens(s, tokens, now_ms, retry_after) < 0) {
        atomic_fetch_sub(&s->streams, 1);
        *why = "tokens";
        return -EBUSY;
    }
    return 0;
}

/* One admitted generation ended. */
void sim_capacity_release(struct sim *s)
{
    atomic_fetch_sub(&s->streams, 1);
}
