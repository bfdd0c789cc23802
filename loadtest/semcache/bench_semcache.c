/* bench_semcache.c - the semantic cache's threshold table and index cost (docs/caching.md).
 *
 *   build/bench-semcache [loadtest/semcache/paraphrases.jsonl]
 *
 * For each pair of the paraphrase set, the cosine of the simulator's embeddings (the same vectors
 * trilemma-sim's /v1/embeddings serves) and the guard's verdict; then for each threshold from
 * 0.80 to 0.98 (step 0.02): the hit rate (paraphrases served from the cache) and the false-hit
 * rate (near-misses served) without and with the guard, overall and per query type, and the guard's
 * refusals by class. Last, the cost of an exact search of the index at 1k, 10k and 50k entries.
 * Output is Markdown. Deterministic except the timings. */
#include "base/buf.h"
#include "loadtest/sim/sim_embed.h"
#include "orchestrator/semcache_guard.h"
#include "orchestrator/semcache_index.h"
#include "stream/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_PAIRS = 4096, NTYPES = 4 };

struct pair {
    char type[24], cls[16];
    bool hit;
    float cos;
    enum semguard_verdict g;
};

static const char *const types[NTYPES] = {"product_search", "product_fact", "policy", "comparison"};

static int load(const char *path, struct pair *p)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    json_doc *d = json_doc_create();
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0 && n < MAX_PAIRS) {
        const char *a, *b, *s;
        size_t al, bl, sl;
        if (json_doc_load(d, line, (size_t)len) < 0)
            continue;
        json_get_string(d, "/query_type", &s, &sl);
        snprintf(p[n].type, sizeof(p[n].type), "%.*s", (int)sl, s);
        json_get_string(d, "/class", &s, &sl);
        snprintf(p[n].cls, sizeof(p[n].cls), "%.*s", (int)sl, s);
        json_get_string(d, "/expect", &s, &sl);
        p[n].hit = sl == 3 && !memcmp(s, "hit", 3);
        json_get_string(d, "/a", &a, &al);
        char *ac = strndup(a, al);
        json_get_string(d, "/b", &b, &bl);
        float va[SIM_EMBED_DIM], vb[SIM_EMBED_DIM];
        sim_embed(ac, al, va, SIM_EMBED_DIM);
        sim_embed(b, bl, vb, SIM_EMBED_DIM);
        float c = 0;
        for (int k = 0; k < SIM_EMBED_DIM; k++)
            c += va[k] * vb[k];
        p[n].cos = c;
        p[n].g = semguard_check(ac, al, b, bl);
        free(ac);
        n++;
    }
    free(line);
    json_doc_destroy(d);
    fclose(f);
    return n;
}

/* Rates for pairs of type t (NULL = all) at threshold th: hits / hit pairs, false / miss pairs. */
static void rates(const struct pair *p, int n, const char *t, double th, bool guard, double *hit,
                  double *fals)
{
    int nh = 0, nm = 0, h = 0, f = 0;
    for (int i = 0; i < n; i++) {
        if (t && strcmp(p[i].type, t))
            continue;
        bool served = p[i].cos >= th && (!guard || p[i].g == SG_SAME);
        if (p[i].hit) {
            nh++;
            h += served;
        } else {
            nm++;
            f += served;
        }
    }
    *hit = nh ? 100.0 * h / nh : 0;
    *fals = nm ? 100.0 * f / nm : 0;
}

static void table(const struct pair *p, int n, const char *t)
{
    printf("\n#### %s\n\n| threshold | hit %% | false-hit %% | hit %% (guard) | false-hit %% "
           "(guard) |\n|---|---|---|---|---|\n",
           t ? t : "all query types");
    for (int k = 0; k <= 9; k++) {
        double th = 0.80 + 0.02 * k, h, f, hg, fg;
        rates(p, n, t, th - 1e-6, false, &h, &f);
        rates(p, n, t, th - 1e-6, true, &hg, &fg);
        printf("| %.2f | %.1f | %.1f | %.1f | %.1f |\n", th, h, f, hg, fg);
    }
}

static void guard_summary(const struct pair *p, int n)
{
    static const char *const classes[] = {"paraphrase", "number", "product", "brand", "negation"};
    printf("\n#### the guard alone, by class (share of pairs it refuses)\n\n| class | pairs | "
           "refused %% |\n|---|---|---|\n");
    for (size_t c = 0; c < 5; c++) {
        int k = 0, r = 0;
        for (int i = 0; i < n; i++)
            if (!strcmp(p[i].cls, classes[c])) {
                k++;
                r += p[i].g != SG_SAME;
            }
        printf("| %s | %d | %.1f |\n", classes[c], k, k ? 100.0 * r / k : 0);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void index_cost(void)
{
    printf("\n#### exact search (one partition, %d dimensions)\n\n| entries | bytes | lookup µs "
           "|\n|---|---|---|\n",
           SIM_EMBED_DIM);
    const size_t sizes[] = {1000, 10000, 50000};
    for (size_t s = 0; s < 3; s++) {
        struct semidx *x = semidx_create(SIM_EMBED_DIM, sizes[s]);
        float v[SIM_EMBED_DIM];
        char q[64];
        for (size_t i = 0; i < sizes[s]; i++) {
            int ql = snprintf(q, sizeof(q), "query number %zu about phones", i);
            sim_embed(q, (size_t)ql, v, SIM_EMBED_DIM);
            semidx_add(x, 1, v, q, (size_t)ql,
                       "an answer of about eighty bytes, as a short "
                       "cached answer could be.",
                       68, 100, "INR", 1LL << 62);
        }
        sim_embed("best phone under 20000", 22, v, SIM_EMBED_DIM);
        float sim;
        int rounds = 200;
        double t0 = now_s();
        for (int r = 0; r < rounds; r++)
            semidx_best(x, 1, v, 0, &sim);
        double us = (now_s() - t0) / rounds * 1e6;
        printf("| %zu | %zu | %.0f |\n", sizes[s], semidx_bytes(x), us);
        semidx_destroy(x);
    }
}

int main(int argc, char **argv)
{
    const char *path =
        argc > 1 ? argv[1] : TRILEMMA_SOURCE_DIR "/loadtest/semcache/paraphrases.jsonl";
    struct pair *p = calloc(MAX_PAIRS, sizeof(*p));
    int n = p ? load(path, p) : -1;
    if (n <= 0) {
        fprintf(stderr, "bench-semcache: cannot read %s\n", path);
        return 1;
    }
    int hits = 0;
    for (int i = 0; i < n; i++)
        hits += p[i].hit;
    printf("### semantic cache thresholds: %d pairs (%d paraphrases, %d near-misses)\n", n, hits,
           n - hits);
    table(p, n, NULL);
    for (int t = 0; t < NTYPES; t++)
        table(p, n, types[t]);
    guard_summary(p, n);
    index_cost();
    free(p);
    return 0;
}
