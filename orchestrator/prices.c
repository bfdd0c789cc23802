/* prices.c - price table loading and exact cost arithmetic. */
#include "orchestrator/prices.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/decimal.h"
#include "base/mem.h"

struct price_table {
    struct price *p;
    size_t n;
};

int64_t prices_parse_micros(const char *s, size_t len)
{
    return decimal_parse_micros(s, len);
}

static int copy_field(char *dst, size_t cap, const char *s, size_t len)
{
    if (len == 0 || len >= cap)
        return -1;
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

/* One CSV line (no quoting: the fields never need it) into p. */
static int parse_line(char *line, struct price *p)
{
    const char *f[9];
    size_t fl[9];
    size_t n = 0;
    char *s = line;
    while (n < 9) {
        char *comma = strchr(s, ',');
        f[n] = s;
        fl[n] = comma ? (size_t)(comma - s) : strlen(s);
        n++;
        if (!comma)
            break;
        s = comma + 1;
    }
    if (n != 9 || strchr(f[8], ','))
        return -1;
    int64_t *nums[4] = {&p->input, &p->cached_input, &p->cache_write, &p->output};
    if (copy_field(p->provider, sizeof(p->provider), f[0], fl[0]) < 0 ||
        llm_provider_from_name(f[0], fl[0]) < 0 ||
        copy_field(p->model, sizeof(p->model), f[1], fl[1]) < 0 ||
        copy_field(p->tier, sizeof(p->tier), f[2], fl[2]) < 0 ||
        copy_field(p->effective_from, sizeof(p->effective_from), f[3], fl[3]) < 0 || fl[3] != 10 ||
        copy_field(p->currency, sizeof(p->currency), f[4], fl[4]) < 0 ||
        (strcmp(p->currency, "USD") != 0 && strcmp(p->currency, "INR") != 0))
        return -1;
    for (int i = 0; i < 4; i++)
        if ((*nums[i] = prices_parse_micros(f[5 + i], fl[5 + i])) < 0)
            return -1;
    return 0;
}

/* Load the CSV; see the header. */
struct price_table *prices_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open price file %s", path);
        return NULL;
    }
    struct price_table *t = xcalloc(1, sizeof(*t));
    char line[1024];
    int lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        t->p = xrealloc(t->p, (t->n + 1) * sizeof(*t->p));
        if (parse_line(line, &t->p[t->n]) < 0) {
            snprintf(err, errlen, "%s:%d: malformed price line", path, lineno);
            fclose(f);
            prices_free(t);
            return NULL;
        }
        t->n++;
    }
    fclose(f);
    return t;
}

void prices_free(struct price_table *t)
{
    if (!t)
        return;
    xfree(t->p);
    xfree(t);
}

size_t prices_count(const struct price_table *t)
{
    return t->n;
}

const struct price *prices_at(const struct price_table *t, size_t i)
{
    return &t->p[i];
}

/* The latest row of provider/model-prefix at tier in force on date; see the header. */
const struct price *prices_find(const struct price_table *t, const char *provider,
                                const char *model, const char *tier, const char *date)
{
    if (!tier || !tier[0])
        tier = "standard";
    char today[11];
    if (!date) {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(today, sizeof(today), "%Y-%m-%d", &tm);
        date = today;
    }
    const struct price *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; t && i < t->n; i++) {
        const struct price *p = &t->p[i];
        size_t ml = strlen(p->model);
        if (strcmp(p->provider, provider) != 0 || strcmp(p->tier, tier) != 0 ||
            strncmp(p->model, model, ml) != 0)
            continue;
        if (model[ml] != '\0' && model[ml] != '-' && model[ml] != '@')
            continue; /* "gpt-4.1" must not price "gpt-4.1o" */
        if (strcmp(p->effective_from, date) > 0)
            continue;
        if (!best || ml > best_len ||
            (ml == best_len && strcmp(p->effective_from, best->effective_from) > 0)) {
            best = p;
            best_len = ml;
        }
    }
    return best;
}

/* Exact cost; see the header. */
int64_t prices_cost(const struct price *p, const struct llm_usage *u, const char *currency,
                    int64_t usd_to_inr_micros)
{
    uint64_t cached = u->cached_input_tokens, writes = u->cache_write_tokens;
    uint64_t uncached = u->input_tokens > cached + writes ? u->input_tokens - cached - writes : 0;
    __int128 sum = (__int128)uncached * p->input + (__int128)cached * p->cached_input +
                   (__int128)writes * p->cache_write + (__int128)u->output_tokens * p->output;
    /* sum is in micro-units x tokens per million tokens */
    __int128 div = 1000000;
    if (strcmp(p->currency, currency) != 0) {
        if (strcmp(currency, "INR") == 0) {
            sum *= usd_to_inr_micros; /* USD -> INR */
        } else {
            sum *= 1000000; /* INR -> USD */
            div *= usd_to_inr_micros;
        }
        if (strcmp(currency, "INR") == 0)
            div *= 1000000;
    }
    return (int64_t)((sum + div / 2) / div);
}
