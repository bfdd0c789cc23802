/* flags.c - anomaly flags of a turn (flags.h). */
#include "trace/flags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "orchestrator/guard.h"

uint32_t flags_ttft_target(const struct trace_conf *c, const char *query_type)
{
    for (uint32_t i = 0; query_type && i < c->n_ttft_targets; i++)
        if (!strcmp(c->ttft_targets[i].query_type, query_type))
            return c->ttft_targets[i].ms;
    return c->ttft_default_ms;
}

bool flags_answer_states_facts(const char *answer, size_t len)
{
    struct grounding g;
    if (!answer || !len)
        return false;
    ground_check(answer, len, NULL, NULL, 0, &g);
    return g.claims > 0;
}

bool flags_answer_admits_failure(const char *answer, size_t len)
{
    static const char *const words[] = {
        "couldn't",    "could not",     "can't",      "cannot",        "unable",
        "unavailable", "not available", "no results", "didn't find",   "did not find",
        "not find",    "no product",    "try again",  "isn't working", "is down",
        "not found",   "no matching",
    };
    char *s = malloc(len + 1); /* answer is not NUL-terminated: a copy that is */
    if (!s)
        return false;
    memcpy(s, answer ? answer : "", answer ? len : 0);
    s[answer ? len : 0] = '\0';
    bool hit = false;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]) && !hit; i++)
        hit = strcasestr(s, words[i]) != NULL;
    free(s);
    return hit;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* Is every member of the top-level object an empty array ("key":[])? */
static bool object_of_empty_arrays(const char *p, const char *end)
{
    p = skip_ws(p + 1, end); /* after '{' */
    bool any = false;
    while (p < end && *p == '"') {
        const char *q = p + 1;
        while (q < end && *q != '"')
            q += *q == '\\' ? 2 : 1;
        p = skip_ws(q + 1, end);
        if (p >= end || *p != ':')
            return false;
        p = skip_ws(p + 1, end);
        if (p + 1 >= end || *p != '[')
            return false;
        p = skip_ws(p + 1, end);
        if (p >= end || *p != ']')
            return false;
        any = true;
        p = skip_ws(p + 1, end);
        if (p < end && *p == ',')
            p = skip_ws(p + 1, end);
    }
    return any && p < end && *p == '}';
}

bool flags_result_empty(const char *raw, size_t len)
{
    const char *p = skip_ws(raw ? raw : "", (raw ? raw : "") + len), *end = (raw ? raw : "") + len;
    while (end > p && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\r' || end[-1] == '\t'))
        end--;
    size_t n = (size_t)(end - p);
    if (n == 0 || (n == 4 && !memcmp(p, "null", 4)))
        return true;
    if (n >= 2 && ((*p == '[' && end[-1] == ']') || (*p == '{' && end[-1] == '}')) &&
        skip_ws(p + 1, end - 1) == end - 1)
        return true;
    return *p == '{' && object_of_empty_arrays(p, end);
}

/* ---- cost windows ---- */

static int find_type(const struct cost_windows *w, const char *qt)
{
    for (uint32_t i = 0; i < w->n_types; i++)
        if (!strcmp(w->t[i].query_type, qt))
            return (int)i;
    return -1;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int64_t cost_windows_median(const struct cost_windows *w, const char *query_type)
{
    int k = find_type(w, query_type ? query_type : "");
    if (k < 0 || w->t[k].n < FLAG_COST_MIN_SAMPLES)
        return 0;
    int64_t v[FLAG_COST_WINDOW];
    uint32_t n = w->t[k].n;
    memcpy(v, w->t[k].v, n * sizeof(v[0]));
    qsort(v, n, sizeof(v[0]), cmp_i64);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void cost_windows_add(struct cost_windows *w, const char *query_type, int64_t cost)
{
    const char *qt = query_type ? query_type : "";
    int k = find_type(w, qt);
    if (k < 0) {
        if (w->n_types == FLAG_COST_TYPES)
            return; /* more types than configured ones: not judged */
        k = (int)w->n_types++;
        snprintf(w->t[k].query_type, sizeof(w->t[k].query_type), "%s", qt);
    }
    w->t[k].v[w->t[k].next] = cost;
    w->t[k].next = (w->t[k].next + 1) % FLAG_COST_WINDOW;
    if (w->t[k].n < FLAG_COST_WINDOW)
        w->t[k].n++;
}

/* The flags of a turn; see flags.h. */
void flags_compute(const struct trace_conf *c, const struct flag_turn *t, struct cost_windows *w,
                   void (*add)(void *ctx, const char *flag), void *ctx)
{
    const char *qt = t->query_type ? t->query_type : "";
    if ((t->tools_failed || t->tools_empty) &&
        flags_answer_states_facts(t->answer, t->answer_len) &&
        !flags_answer_admits_failure(t->answer, t->answer_len))
        add(ctx, "silent_confabulation");
    if (t->first_token_ms >= 0 && t->first_token_ms > (int64_t)flags_ttft_target(c, qt))
        add(ctx, "slow_first_token");
    if (w && qt[0] && !t->error) {
        int64_t median = cost_windows_median(w, qt);
        if (c->cost_outlier_factor && median > 0 &&
            t->cost_micros > median * (int64_t)c->cost_outlier_factor)
            add(ctx, "cost_outlier");
        cost_windows_add(w, qt, t->cost_micros);
    }
}

void flags_kind(const char *flag, char out[32])
{
    size_t n = strcspn(flag, ":");
    snprintf(out, 32, "%.*s", (int)(n > 31 ? 31 : n), flag);
}
