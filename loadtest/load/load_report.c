/* load_report.c - the JSON report (format in docs/loadtest.md): the configuration, totals and
 * per-phase counts, percentiles and CDF points of every metric, errors by kind, the per-second
 * timeline, the schedule lag verdict and the cost per conversation distribution. */
#include <stdio.h>
#include <string.h>

#include "loadtest/load/load.h"
#include "stream/jsonw.h"

#define LAG_BEHIND_P99_US 10000 /* lag p99 above this: the tool fell behind its schedule */
#define LAG_BEHIND_MAX_US 100000

static const char *const think_names[] = {"fixed", "uniform", "exponential"};

/* Metrics in microseconds are reported in milliseconds; counts as they are. */
static bool is_time(enum metric m)
{
    return m != M_TOKENS && m != M_CONV_COST;
}

static void kdouble(struct jsonw *w, const char *k, double v)
{
    jw_key(w, k);
    jw_double(w, v);
}

static void cdf(struct jsonw *w, const struct hist *h, double unit)
{
    uint64_t seen = 0;
    double last = -1;
    jw_key(w, "cdf");
    jw_arr_begin(w);
    for (size_t i = 0; i < HIST_NBUCKETS && h->count; i++) {
        if (!h->counts[i])
            continue;
        seen += h->counts[i];
        double q = (double)seen / (double)h->count;
        /* one point per 0.1% of the mass is enough for a plot, plus the whole tail */
        if (q - last < 0.001 && q < 0.99 && seen != h->count)
            continue;
        last = q;
        uint64_t v = hist_bucket_hi(i);
        jw_arr_begin(w);
        jw_double(w, (double)(v > h->max ? h->max : v) / unit);
        jw_double(w, q);
        jw_arr_end(w);
    }
    jw_arr_end(w);
}

static void metric(struct jsonw *w, const struct hist *h, enum metric m, bool with_cdf)
{
    static const double ps[] = {50, 90, 99, 99.9};
    static const char *const names[] = {"p50", "p90", "p99", "p99_9"};
    double unit = is_time(m) ? 1000.0 : 1.0;
    uint64_t v[4];
    hist_percentiles(h, ps, 4, v);
    jw_key(w, stats_metric_names[m]);
    jw_obj_begin(w);
    jw_kuint(w, "count", h->count);
    kdouble(w, "min", h->count ? (double)h->min / unit : 0);
    kdouble(w, "mean", hist_mean(h) / unit);
    for (int i = 0; i < 4; i++)
        kdouble(w, names[i], (double)v[i] / unit);
    kdouble(w, "max", h->count ? (double)h->max / unit : 0);
    if (with_cdf)
        cdf(w, h, unit);
    jw_obj_end(w);
}

static void counts(struct jsonw *w, const struct stats_phase *ph)
{
    jw_key(w, "counts");
    jw_obj_begin(w);
    for (int c = 0; c < C_NCOUNTERS; c++)
        jw_kuint(w, stats_counter_names[c], ph->c[c]);
    jw_obj_end(w);
}

static void metrics(struct jsonw *w, const struct stats_phase *ph, bool with_cdf)
{
    jw_key(w, "metrics");
    jw_obj_begin(w);
    for (int m = 0; m < M_NMETRICS; m++)
        metric(w, &ph->m[m], (enum metric)m, with_cdf);
    jw_obj_end(w);
}

static void config_phases(struct jsonw *w, const struct scenario *sc)
{
    jw_key(w, "phases");
    jw_arr_begin(w);
    for (int i = 0; i < sc->nphases; i++) {
        const struct scn_phase *ph = &sc->phase[i];
        jw_obj_begin(w);
        jw_kstr(w, "name", ph->name);
        kdouble(w, "duration_s", ph->duration_ms / 1000.0);
        if (ph->open) {
            kdouble(w, "arrival_rate", ph->rate);
            jw_kstr(w, "arrivals", ph->poisson ? "poisson" : "uniform");
        } else {
            jw_kuint(w, "users", ph->users);
            kdouble(w, "ramp_s", ph->ramp_ms / 1000.0);
        }
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

static void config_conversation(struct jsonw *w, const struct load *L)
{
    const struct scenario *sc = &L->sc;
    jw_key(w, "conversation");
    jw_obj_begin(w);
    jw_kuint(w, "turns_min", sc->turns_min);
    jw_kuint(w, "turns_max", sc->turns_max);
    jw_key(w, "think");
    jw_obj_begin(w);
    jw_kstr(w, "dist", think_names[sc->think]);
    jw_kuint(w, "a_ms", sc->think_a_ms);
    jw_kuint(w, "b_ms", sc->think_b_ms);
    jw_obj_end(w);
    kdouble(w, "cancel_share", sc->cancel_share);
    jw_kuint(w, "cancel_after", sc->cancel_after);
    kdouble(w, "resume_share", sc->resume_share);
    jw_kuint(w, "resume_after", sc->resume_after);
    jw_obj_end(w);
    jw_key(w, "queries");
    jw_obj_begin(w);
    jw_kstr(w, "corpus", sc->corpus);
    jw_kuint(w, "count", L->corpus.n);
    jw_key(w, "mix");
    jw_obj_begin(w);
    for (int i = 0; i < L->corpus.ncats; i++) {
        double prev = i ? L->corpus.cum[i - 1] : 0;
        kdouble(w, L->corpus.cat[i], L->corpus.cum[i] - prev);
    }
    jw_obj_end(w);
    jw_obj_end(w);
}

static void config(struct jsonw *w, const struct report_info *ri)
{
    const struct load *L = ri->L;
    const struct target *t = &L->tgt;
    bool v6 = strchr(t->host, ':') != NULL;
    char url[600];
    const char *q = strchr(t->path, '?');
    /* the target without its query string: the token is a secret */
    snprintf(url, sizeof(url), "%s://%s%s%s:%d%.*s", t->scheme, v6 ? "[" : "", t->host,
             v6 ? "]" : "", t->port, (int)(q ? (size_t)(q - t->path) : strlen(t->path)), t->path);
    jw_key(w, "config");
    jw_obj_begin(w);
    jw_kstr(w, "mode", L->mode == MODE_WS ? "websocket" : "direct_sse");
    jw_kstr(w, "target", url);
    jw_kstr(w, "address", t->addr);
    if (L->has_tgt2) /* two processes: conversations split, resumes go to the other one */
        jw_kstr(w, "target2", L->sc.url2);
    jw_key(w, "scenario");
    if (ri->scenario_path)
        jw_str(w, ri->scenario_path);
    else
        jw_null(w);
    jw_kuint(w, "threads", L->sc.threads);
    jw_kuint(w, "seed", L->sc.seed);
    jw_kbool(w, "idle", L->sc.idle);
    jw_kbool(w, "expect_echo", L->sc.expect_echo);
    kdouble(w, "max_rate", L->sc.max_rate);
    kdouble(w, "grace_s", L->sc.grace_ms / 1000.0);
    kdouble(w, "turn_timeout_s", L->sc.turn_timeout_ms / 1000.0);
    kdouble(w, "duration_s", (double)L->dur_us / 1e6);
    if (L->mode == MODE_SSE)
        jw_kstr(w, "model", L->sc.model);
    config_phases(w, &L->sc);
    config_conversation(w, L);
    jw_obj_end(w);
}

static void phases(struct jsonw *w, const struct report_info *ri)
{
    const struct stats *st = ri->st;
    double start = 0;
    jw_key(w, "phases");
    jw_arr_begin(w);
    for (int p = 0; p < st->nphases; p++) {
        const struct scn_phase *ph = &ri->L->sc.phase[p];
        jw_obj_begin(w);
        jw_kstr(w, "name", ph->name);
        kdouble(w, "start_s", start);
        kdouble(w, "duration_s", ph->duration_ms / 1000.0);
        counts(w, &st->ph[p]);
        metrics(w, &st->ph[p], false);
        jw_obj_end(w);
        start += ph->duration_ms / 1000.0;
    }
    jw_arr_end(w);
}

static void errors(struct jsonw *w, const struct stats *st)
{
    jw_key(w, "errors");
    jw_obj_begin(w);
    jw_kuint(w, "total", st->ph[st->nphases].c[C_ERRORS]);
    jw_key(w, "by_kind");
    jw_obj_begin(w);
    for (int i = 0; i < st->nkinds; i++)
        jw_kuint(w, st->kind[i], st->kind_n[i]);
    if (st->kind_other)
        jw_kuint(w, "other", st->kind_other);
    jw_obj_end(w);
    jw_obj_end(w);
}

static void series(struct jsonw *w, const char *name, const struct stats *st, size_t n,
                   size_t field)
{
    jw_key(w, name);
    jw_arr_begin(w);
    for (size_t s = 0; s < n; s++)
        jw_uint(w, *(const uint64_t *)(const void *)((const char *)&st->sec[s] + field));
    jw_arr_end(w);
}

/* Columns, one value per second from the start of the schedule. */
static void timeline(struct jsonw *w, const struct report_info *ri)
{
    const struct stats *st = ri->st;
    size_t n = (size_t)ri->elapsed_s + 1;
    if (n > st->nsec)
        n = st->nsec;
    jw_key(w, "timeline");
    jw_obj_begin(w);
    jw_key(w, "t");
    jw_arr_begin(w);
    for (size_t s = 0; s < n; s++)
        jw_uint(w, s);
    jw_arr_end(w);
    series(w, "turns_started", st, n, offsetof(struct stats_sec, turns));
    series(w, "turns_completed", st, n, offsetof(struct stats_sec, turns_done));
    series(w, "output_tokens", st, n, offsetof(struct stats_sec, tokens));
    series(w, "input_tokens", st, n, offsetof(struct stats_sec, in_tokens));
    series(w, "cached_input_tokens", st, n, offsetof(struct stats_sec, cached_tokens));
    series(w, "errors", st, n, offsetof(struct stats_sec, errors));
    series(w, "connects", st, n, offsetof(struct stats_sec, connects));
    series(w, "sessions_open", st, n, offsetof(struct stats_sec, open));
    jw_key(w, "lag_max_ms");
    jw_arr_begin(w);
    for (size_t s = 0; s < n; s++)
        jw_double(w, (double)st->sec[s].lag_max / 1000.0);
    jw_arr_end(w);
    jw_obj_end(w);
}

static void schedule(struct jsonw *w, const struct stats *st)
{
    const struct hist *lag = &st->ph[st->nphases].m[M_LAG];
    uint64_t p99 = hist_percentile(lag, 99);
    bool behind = p99 > LAG_BEHIND_P99_US || lag->max > LAG_BEHIND_MAX_US;
    jw_key(w, "schedule");
    jw_obj_begin(w);
    kdouble(w, "lag_p99_ms", (double)p99 / 1000.0);
    kdouble(w, "lag_max_ms", lag->count ? (double)lag->max / 1000.0 : 0);
    jw_kbool(w, "behind", behind);
    jw_kstr(w, "note",
            behind ? "the load generator fell behind its schedule: latencies, measured from "
                     "intended times, include its own delay"
                   : "the load generator kept its schedule");
    jw_obj_end(w);
}

/* The cost per conversation as up to 30 equal-width bins between min and max. */
static void cost(struct jsonw *w, const struct stats *st)
{
    const struct hist *h = &st->ph[st->nphases].m[M_CONV_COST];
    enum { NBINS = 30 };
    uint64_t bins[NBINS] = {0};
    double lo = h->count ? (double)h->min : 0, hi = h->count ? (double)h->max : 0;
    double width = hi > lo ? (hi - lo) / NBINS : 1;
    int nb = hi > lo ? NBINS : 1;
    for (size_t i = 0; i < HIST_NBUCKETS && h->count; i++) {
        if (!h->counts[i])
            continue;
        double mid = ((double)hist_bucket_lo(i) + (double)hist_bucket_hi(i)) / 2;
        int b = (int)((mid - lo) / width);
        bins[b < 0 ? 0 : b >= nb ? nb - 1 : b] += h->counts[i];
    }
    jw_key(w, "cost_per_conversation");
    jw_obj_begin(w);
    jw_kstr(w, "currency", st->currency[0] ? st->currency : "");
    jw_kstr(w, "unit", "micros");
    jw_key(w, "histogram");
    jw_arr_begin(w);
    for (int b = 0; b < nb && h->count; b++) {
        jw_arr_begin(w);
        jw_double(w, lo + b * width);
        jw_double(w, hi > lo ? lo + (b + 1) * width : hi);
        jw_uint(w, bins[b]);
        jw_arr_end(w);
    }
    jw_arr_end(w);
    jw_obj_end(w);
}

static void process(struct jsonw *w, const struct report_info *ri)
{
    jw_key(w, "process");
    jw_obj_begin(w);
    kdouble(w, "cpu_user_s", ri->cpu_user_s);
    kdouble(w, "cpu_sys_s", ri->cpu_sys_s);
    kdouble(w, "cpu_per_s",
            ri->elapsed_s > 0 ? (ri->cpu_user_s + ri->cpu_sys_s) / ri->elapsed_s : 0);
    jw_kint(w, "max_rss_kb", ri->max_rss_kb);
    jw_kuint(w, "users_per_thread_cap", ri->L->users_cap);
    jw_obj_end(w);
}

/* See load.h. Appends the whole report to out. */
void report_json(struct buf *out, const struct report_info *ri)
{
    const struct stats *st = ri->st;
    struct jsonw w;
    jw_init(&w, out);
    jw_obj_begin(&w);
    jw_kstr(&w, "tool", "trilemma-load");
    jw_kint(&w, "format", 1);
    jw_kstr(&w, "started_at", ri->started_at);
    kdouble(&w, "elapsed_s", ri->elapsed_s);
    config(&w, ri);
    jw_key(&w, "totals");
    jw_obj_begin(&w);
    counts(&w, &st->ph[st->nphases]);
    jw_kstr(&w, "currency", st->currency);
    kdouble(&w, "turns_per_s",
            ri->elapsed_s > 0 ? (double)st->ph[st->nphases].c[C_TURNS_DONE] / ri->elapsed_s : 0);
    /* the share of dropped-and-resumed answers that arrived whole, each delta once */
    const uint64_t *tc = st->ph[st->nphases].c;
    kdouble(&w, "resume_complete_share",
            tc[C_RESUMES] ? (double)tc[C_RESUMED_FULL] / (double)tc[C_RESUMES] : 0);
    metrics(&w, &st->ph[st->nphases], true);
    jw_obj_end(&w);
    phases(&w, ri);
    errors(&w, st);
    timeline(&w, ri);
    schedule(&w, st);
    cost(&w, st);
    process(&w, ri);
    jw_obj_end(&w);
    buf_append_str(out, "\n");
}
