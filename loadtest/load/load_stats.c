/* load_stats.c - recording and merging measurements (see load_stats.h). */
#include "loadtest/load/load_stats.h"

#include <stdio.h>
#include <string.h>

#include "base/mem.h"

const char *const stats_metric_names[M_NMETRICS] = {
    "connect_ms", "handshake_ms", "ttft_ms",       "inter_token_ms",           "turn_ms",
    "lag_ms",     "resume_ms",    "output_tokens", "conversation_cost_micros",
};

const char *const stats_counter_names[C_NCOUNTERS] = {
    "connects",
    "sessions",
    "conversations",
    "conversations_completed",
    "turns",
    "turns_completed",
    "turns_ok",
    "cancels_sent",
    "turns_cancelled",
    "resumes",
    "resumes_exact",
    "resumes_complete",
    "duplicate_deltas",
    "turns_unfinished",
    "output_tokens",
    "input_tokens",
    "cost_micros",
    "errors",
};

/* See load_stats.h. */
void stats_init(struct stats *st, int nphases, size_t nsec)
{
    memset(st, 0, sizeof(*st));
    st->nphases = nphases;
    st->ph = xcalloc((size_t)nphases + 1, sizeof(*st->ph));
    st->nsec = nsec ? nsec : 1;
    st->sec = xcalloc(st->nsec, sizeof(*st->sec));
}

/* See load_stats.h. */
void stats_free(struct stats *st)
{
    xfree(st->ph);
    xfree(st->sec);
    memset(st, 0, sizeof(*st));
}

static int clamp_phase(const struct stats *st, int p)
{
    if (p < 0)
        return 0;
    return p >= st->nphases ? st->nphases - 1 : p;
}

/* See load_stats.h. */
void stats_rec(struct stats *st, int p, enum metric m, uint64_t v)
{
    hist_record(&st->ph[clamp_phase(st, p)].m[m], v);
    hist_record(&st->ph[st->nphases].m[m], v);
}

/* See load_stats.h. */
void stats_add(struct stats *st, int p, enum counter c, uint64_t n)
{
    st->ph[clamp_phase(st, p)].c[c] += n;
    st->ph[st->nphases].c[c] += n;
}

/* See load_stats.h. */
struct stats_sec *stats_sec_at(struct stats *st, int64_t s)
{
    if (s < 0)
        s = 0;
    if ((size_t)s >= st->nsec)
        s = (int64_t)st->nsec - 1;
    return &st->sec[s];
}

/* See load_stats.h. */
void stats_usage(struct stats *st, int p, int64_t s, const struct stats_usage *u)
{
    stats_add(st, p, C_TOKENS, u->output);
    stats_add(st, p, C_IN_TOKENS, u->input);
    stats_rec(st, p, M_TOKENS, u->output);
    struct stats_sec *sec = stats_sec_at(st, s);
    sec->tokens += u->output;
    sec->in_tokens += u->input;
    sec->cached_tokens += u->cached_input;
}

static void add_kind(struct stats *st, const char *kind, uint64_t n)
{
    for (int i = 0; i < st->nkinds; i++)
        if (strcmp(st->kind[i], kind) == 0) {
            st->kind_n[i] += n;
            return;
        }
    if (st->nkinds == STATS_MAX_KINDS) {
        st->kind_other += n;
        return;
    }
    snprintf(st->kind[st->nkinds], sizeof(st->kind[0]), "%s", kind);
    st->kind_n[st->nkinds++] = n;
}

/* See load_stats.h. */
void stats_error(struct stats *st, int p, int64_t s, const char *kind)
{
    stats_add(st, p, C_ERRORS, 1);
    stats_sec_at(st, s)->errors++;
    add_kind(st, kind, 1);
}

/* See load_stats.h. */
void stats_merge(struct stats *dst, const struct stats *src)
{
    for (int p = 0; p <= dst->nphases && p <= src->nphases; p++) {
        for (int c = 0; c < C_NCOUNTERS; c++)
            dst->ph[p].c[c] += src->ph[p].c[c];
        for (int m = 0; m < M_NMETRICS; m++)
            hist_merge(&dst->ph[p].m[m], &src->ph[p].m[m]);
    }
    for (size_t s = 0; s < dst->nsec && s < src->nsec; s++) {
        struct stats_sec *d = &dst->sec[s];
        const struct stats_sec *x = &src->sec[s];
        d->turns += x->turns;
        d->turns_done += x->turns_done;
        d->tokens += x->tokens;
        d->in_tokens += x->in_tokens;
        d->cached_tokens += x->cached_tokens;
        d->errors += x->errors;
        d->connects += x->connects;
        d->open += x->open;
        if (x->lag_max > d->lag_max)
            d->lag_max = x->lag_max;
    }
    for (int i = 0; i < src->nkinds; i++)
        add_kind(dst, src->kind[i], src->kind_n[i]);
    dst->kind_other += src->kind_other;
    if (!dst->currency[0])
        memcpy(dst->currency, src->currency, sizeof(dst->currency));
}
