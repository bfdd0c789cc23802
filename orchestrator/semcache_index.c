/* semcache_index.c - the semantic cache's vector index (see semcache_index.h). */
#include "orchestrator/semcache_index.h"

#include "base/mem.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

struct semidx {
    size_t dim, cap, next, used;
    float *vecs; /* cap x dim, slot-major */
    struct semidx_entry *e;
    size_t bytes; /* texts of the entries in use */
};

/* Create an empty index; see the header. */
struct semidx *semidx_create(size_t dim, size_t max_entries)
{
    if (!dim || !max_entries)
        return NULL;
    struct semidx *x = xcalloc(1, sizeof(*x));
    x->dim = dim;
    x->cap = max_entries;
    x->vecs = xcalloc(max_entries * dim, sizeof(float));
    x->e = xcalloc(max_entries, sizeof(*x->e));
    return x;
}

static void clear_slot(struct semidx *x, size_t i)
{
    struct semidx_entry *e = &x->e[i];
    if (!e->used)
        return;
    x->bytes -= e->query_len + e->answer_len;
    x->used--;
    xfree(e->query);
    xfree(e->answer);
    memset(e, 0, sizeof(*e));
}

/* Free the index and its entries (NULL is fine). */
void semidx_destroy(struct semidx *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < x->cap; i++)
        clear_slot(x, i);
    xfree(x->vecs);
    xfree(x->e);
    xfree(x);
}

/* Unit length in place; see the header. */
bool semidx_normalize(float *v, size_t dim)
{
    double n = 0;
    for (size_t k = 0; k < dim; k++)
        n += (double)v[k] * v[k];
    if (!(n > 0) || !isfinite(n))
        return false;
    n = sqrt(n);
    for (size_t k = 0; k < dim; k++)
        v[k] = (float)(v[k] / n);
    return true;
}

static size_t slot_for(struct semidx *x, uint64_t part, const char *q, size_t qlen)
{
    for (size_t i = 0; i < x->cap; i++) {
        const struct semidx_entry *e = &x->e[i];
        if (e->used && e->part == part && e->query_len == qlen && !memcmp(e->query, q, qlen))
            return i;
    }
    size_t i = x->next;
    x->next = (x->next + 1) % x->cap;
    return i;
}

/* Add an entry; see the header. */
int semidx_add(struct semidx *x, uint64_t part, const float *v, const char *query, size_t qlen,
               const char *answer, size_t alen, int64_t cost_micros, const char *currency,
               int64_t expires_unix_ms)
{
    float *tmp = xmalloc(x->dim * sizeof(float));
    memcpy(tmp, v, x->dim * sizeof(float));
    if (!semidx_normalize(tmp, x->dim)) {
        xfree(tmp);
        return -EINVAL;
    }
    size_t i = slot_for(x, part, query, qlen);
    clear_slot(x, i);
    memcpy(x->vecs + i * x->dim, tmp, x->dim * sizeof(float));
    xfree(tmp);
    struct semidx_entry *e = &x->e[i];
    e->part = part;
    e->query = xstrndup(query, qlen);
    e->query_len = qlen;
    e->answer = xstrndup(answer, alen);
    e->answer_len = alen;
    e->cost_micros = cost_micros;
    snprintf(e->currency, sizeof(e->currency), "%s", currency ? currency : "");
    e->expires_unix_ms = expires_unix_ms;
    e->used = true;
    x->used++;
    x->bytes += qlen + alen;
    return 0;
}

/* Eight partial sums: without -ffast-math the compiler may not reorder one float sum, and the
 * eight independent lanes let it use vector instructions. */
static float dot(const float *a, const float *b, size_t n)
{
    float s[8] = {0};
    size_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++)
            s[j] += a[k + j] * b[k + j];
    float d = 0;
    for (; k < n; k++)
        d += a[k] * b[k];
    for (int j = 0; j < 8; j++)
        d += s[j];
    return d;
}

/* The nearest live entry; see the header. */
int semidx_best(const struct semidx *x, uint64_t part, const float *v, int64_t now_unix_ms,
                float *sim)
{
    int best = -1;
    float bs = -2;
    for (size_t i = 0; i < x->cap; i++) {
        const struct semidx_entry *e = &x->e[i];
        if (!e->used || e->part != part || e->expires_unix_ms <= now_unix_ms)
            continue;
        float d = dot(x->vecs + i * x->dim, v, x->dim);
        if (d > bs) {
            bs = d;
            best = (int)i;
        }
    }
    if (sim)
        *sim = best >= 0 ? bs : 0;
    return best;
}

/* The entry at slot i; see the header. */
const struct semidx_entry *semidx_at(const struct semidx *x, int i)
{
    return i >= 0 && (size_t)i < x->cap && x->e[i].used ? &x->e[i] : NULL;
}

size_t semidx_count(const struct semidx *x)
{
    return x->used;
}

size_t semidx_bytes(const struct semidx *x)
{
    return x->bytes + x->used * (x->dim * sizeof(float) + sizeof(struct semidx_entry));
}
