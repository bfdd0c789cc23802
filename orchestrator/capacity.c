/* capacity.c - this pod's share of the provisioned deployments (capacity.h).
 *
 * Per deployment: the 60 s window of tokens served (completed calls' actual usage, counted when
 * they end), the tokens reserved by calls in flight, and the streams in flight, under one mutex.
 * A call's tokens are counted in the second it ends, not spread over its duration: a long answer
 * weighs on the window a little later than the provider counted it, which errs towards
 * admitting; the reservation, counted from admission to the end, makes up for it. */
#include "orchestrator/capacity.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"

/* ---- the pure part ---- */

static int64_t second_of(int64_t ms)
{
    return ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
}

static size_t slot_of(int64_t sec)
{
    int64_t m = sec % CAPACITY_WINDOW_S;
    return (size_t)(m < 0 ? m + CAPACITY_WINDOW_S : m);
}

/* See capacity.h. */
void cap_window_add(struct cap_window *w, int64_t now_ms, uint64_t tokens)
{
    int64_t s = second_of(now_ms);
    size_t i = slot_of(s);
    if (w->sec[i] != s) { /* the slot held a second that left the window */
        w->sec[i] = s;
        w->tokens[i] = 0;
    }
    w->tokens[i] += tokens;
}

/* See capacity.h. */
uint64_t cap_window_sum(const struct cap_window *w, int64_t now_ms)
{
    int64_t s = second_of(now_ms);
    uint64_t sum = 0;
    for (size_t i = 0; i < CAPACITY_WINDOW_S; i++)
        if (w->tokens[i] && w->sec[i] > s - CAPACITY_WINDOW_S && w->sec[i] <= s)
            sum += w->tokens[i];
    return sum;
}

/* See capacity.h. */
uint64_t capacity_share_tpm(uint64_t tpm, uint32_t pods)
{
    return tpm / (pods ? pods : 1);
}

/* See capacity.h. */
uint32_t capacity_share_streams(uint32_t streams, uint32_t pods)
{
    uint32_t s = streams / (pods ? pods : 1);
    return s ? s : 1;
}

/* See capacity.h. */
enum cap_verdict capacity_decide(uint64_t share_tpm, uint32_t share_streams, uint64_t window,
                                 uint64_t reserved, uint32_t inflight, uint64_t estimate)
{
    if (inflight >= share_streams)
        return CAP_FULL_STREAMS;
    /* written as a subtraction: the sum could wrap for absurd estimates */
    uint64_t used = window + reserved;
    if (used > share_tpm || estimate > share_tpm - used)
        return CAP_FULL_TOKENS;
    return CAP_ADMIT;
}

/* See capacity.h. */
uint64_t capacity_estimate(const struct llm_request *req, uint32_t default_max)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < req->n_messages; i++) {
        const struct llm_message *m = &req->messages[i];
        bytes += m->len;
        for (size_t k = 0; k < m->n_tool_calls; k++)
            bytes += strlen(m->tool_calls[k].name) + m->tool_calls[k].arguments_len;
    }
    for (size_t i = 0; i < req->n_tools; i++) {
        const struct llm_tool *t = &req->tools[i];
        bytes += strlen(t->name) + (t->description ? strlen(t->description) : 0) +
                 (t->parameters_json ? strlen(t->parameters_json) : 0);
    }
    return (bytes + 3) / 4 + (req->max_tokens ? req->max_tokens : default_max);
}

/* See capacity.h. */
const char *capacity_overflow_reason(const char *deployment, const struct llm_call_record *a,
                                     uint32_t n)
{
    for (uint32_t i = 0; i + 1 < n; i++) {
        if (strcmp(a[i].deployment, deployment) != 0 || strcmp(a[i].status, "error") != 0)
            continue;
        for (uint32_t j = i + 1; j < n; j++)
            if (strcmp(a[j].deployment, deployment) != 0)
                return a[i].http_status == 429 ? "rate_limited" : "error";
    }
    return NULL;
}

/* ---- the tracker ---- */

struct dep {
    pthread_mutex_t mu;
    struct capacity_spec spec;
    struct cap_window window;
    uint64_t reserved;
    uint32_t inflight;
    uint64_t admitted, full, rate_limited, error;
} __attribute__((aligned(64)));

struct capacity {
    int n;
    uint32_t pods; /* atomic */
    struct dep *deps;
};

/* See capacity.h. */
struct capacity *capacity_create(const struct capacity_spec *specs, int n, uint32_t pods)
{
    if (n <= 0)
        return NULL;
    struct capacity *c = xcalloc(1, sizeof(*c));
    c->n = n;
    c->pods = pods ? pods : 1;
    c->deps = xcalloc((size_t)n, sizeof(*c->deps));
    for (int i = 0; i < n; i++) {
        pthread_mutex_init(&c->deps[i].mu, NULL);
        c->deps[i].spec = specs[i];
    }
    return c;
}

void capacity_destroy(struct capacity *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        pthread_mutex_destroy(&c->deps[i].mu);
    xfree(c->deps);
    xfree(c);
}

/* See capacity.h. */
void capacity_set_pods(struct capacity *c, uint32_t pods)
{
    if (c)
        __atomic_store_n(&c->pods, pods ? pods : 1, __ATOMIC_RELAXED);
}

uint32_t capacity_pods(const struct capacity *c)
{
    return c ? __atomic_load_n(&c->pods, __ATOMIC_RELAXED) : 1;
}

/* See capacity.h. */
int64_t capacity_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* See capacity.h. */
bool capacity_admit(struct capacity *c, int dep, uint64_t estimate, int64_t now_ms,
                    struct capacity_hold *h)
{
    *h = (struct capacity_hold){.dep = -1};
    if (!c || dep < 0 || dep >= c->n)
        return false;
    struct dep *d = &c->deps[dep];
    uint32_t pods = capacity_pods(c);
    pthread_mutex_lock(&d->mu);
    enum cap_verdict v = capacity_decide(
        capacity_share_tpm(d->spec.tpm, pods), capacity_share_streams(d->spec.streams, pods),
        cap_window_sum(&d->window, now_ms), d->reserved, d->inflight, estimate);
    if (v == CAP_ADMIT) {
        d->reserved += estimate;
        d->inflight++;
        d->admitted++;
        *h = (struct capacity_hold){.dep = dep, .reserved = estimate, .held = true};
    } else {
        d->full++;
    }
    pthread_mutex_unlock(&d->mu);
    return v == CAP_ADMIT;
}

/* What the call's attempts on deployment name used of it (see capacity_complete). */
static uint64_t used_tokens(const char *name, const struct llm_call_record *a, uint32_t n,
                            uint64_t reserved)
{
    uint64_t used = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (strcmp(a[i].deployment, name) != 0)
            continue;
        if (a[i].usage_reported)
            used += a[i].usage.input_tokens + a[i].usage.output_tokens;
        else if (a[i].ttft_ms >= 0)
            used += reserved; /* it produced output, usage unknown: assume what was reserved */
    }
    return used;
}

/* See capacity.h. */
void capacity_complete(struct capacity *c, struct capacity_hold *h, const struct llm_call_record *a,
                       uint32_t n, int64_t now_ms)
{
    if (!c || !h->held || h->dep < 0 || h->dep >= c->n)
        return;
    struct dep *d = &c->deps[h->dep];
    const char *why = capacity_overflow_reason(d->spec.name, a, n);
    uint64_t used = used_tokens(d->spec.name, a, n, h->reserved);
    pthread_mutex_lock(&d->mu);
    d->reserved -= h->reserved < d->reserved ? h->reserved : d->reserved;
    if (d->inflight)
        d->inflight--;
    if (used)
        cap_window_add(&d->window, now_ms, used);
    if (why && !strcmp(why, "rate_limited"))
        d->rate_limited++;
    else if (why)
        d->error++;
    pthread_mutex_unlock(&d->mu);
    h->held = false;
}

/* See capacity.h. */
void capacity_stats(struct capacity *c, int dep, int64_t now_ms, struct capacity_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!c || dep < 0 || dep >= c->n)
        return;
    struct dep *d = &c->deps[dep];
    uint32_t pods = capacity_pods(c);
    pthread_mutex_lock(&d->mu);
    *out = (struct capacity_stats){
        .share_tpm = capacity_share_tpm(d->spec.tpm, pods),
        .share_streams = capacity_share_streams(d->spec.streams, pods),
        .inflight = d->inflight,
        .window_tokens = cap_window_sum(&d->window, now_ms),
        .reserved = d->reserved,
        .admitted = d->admitted,
        .overflow_full = d->full,
        .overflow_rate_limited = d->rate_limited,
        .overflow_error = d->error,
    };
    pthread_mutex_unlock(&d->mu);
}

/* See capacity.h. */
void capacity_metrics(struct capacity *c, struct buf *out)
{
    if (!c)
        return;
    int64_t now = capacity_now_ms();
    struct capacity_stats st[64];
    int n = c->n < 64 ? c->n : 64;
    for (int i = 0; i < n; i++)
        capacity_stats(c, i, now, &st[i]);
    buf_printf(out,
               "# HELP trilemma_capacity_pods Live pods sharing the provisioned capacity.\n"
               "# TYPE trilemma_capacity_pods gauge\n"
               "trilemma_capacity_pods %u\n",
               capacity_pods(c));
    static const char *const head[][3] = {
        {"share_tpm", "gauge", "This pod's share of the deployment's tokens per minute."},
        {"share_streams", "gauge", "This pod's share of the deployment's concurrent streams."},
        {"streams_inflight", "gauge", "Calls of this pod on the deployment now."},
        {"window_tokens", "gauge", "Tokens this pod's calls used on the deployment in 60 s."},
        {"admitted_total", "counter", "Steps admitted to the deployment by this pod."},
    };
    for (size_t k = 0; k < sizeof(head) / sizeof(head[0]); k++) {
        buf_printf(out, "# HELP trilemma_capacity_%s %s\n# TYPE trilemma_capacity_%s %s\n",
                   head[k][0], head[k][2], head[k][0], head[k][1]);
        for (int i = 0; i < n; i++) {
            uint64_t v[] = {st[i].share_tpm, st[i].share_streams, st[i].inflight,
                            st[i].window_tokens, st[i].admitted};
            buf_printf(out, "trilemma_capacity_%s{deployment=\"%s\"} %llu\n", head[k][0],
                       c->deps[i].spec.name, (unsigned long long)v[k]);
        }
    }
    buf_printf(out, "# HELP trilemma_capacity_overflow_total Steps or attempts that left the "
                    "provisioned tier, by reason.\n"
                    "# TYPE trilemma_capacity_overflow_total counter\n");
    for (int i = 0; i < n; i++) {
        const char *name = c->deps[i].spec.name;
        buf_printf(out,
                   "trilemma_capacity_overflow_total{deployment=\"%s\",reason=\"full\"} %llu\n"
                   "trilemma_capacity_overflow_total{deployment=\"%s\",reason=\"rate_limited\"} "
                   "%llu\n"
                   "trilemma_capacity_overflow_total{deployment=\"%s\",reason=\"error\"} %llu\n",
                   name, (unsigned long long)st[i].overflow_full, name,
                   (unsigned long long)st[i].overflow_rate_limited, name,
                   (unsigned long long)st[i].overflow_error);
    }
}
