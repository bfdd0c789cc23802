/* capacity_sql.c - the deployments' hourly prices (process-wide) and the pods' heartbeat
 * (capacity_store.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "store/capacity_store.h"
#include "store/store_int.h"

/* ---- hourly prices ---- */

static pthread_mutex_t prices_mu = PTHREAD_MUTEX_INITIALIZER;
static struct store_capacity_price prices[STORE_CAPACITY_MAX];
static size_t n_prices;

static bool deployment_name_ok(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == 0 || n >= cap)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '-'))
            return false;
    return true;
}

static bool price_ok(const struct store_capacity_price *p)
{
    return deployment_name_ok(p->deployment, sizeof(p->deployment)) && p->hourly_micros >= 0 &&
           (strncmp(p->currency, "INR", 4) == 0 || strncmp(p->currency, "USD", 4) == 0);
}

/* See capacity_store.h. Checked whole before anything changes. */
int store_set_capacity_prices(const struct store_capacity_price *p, size_t n)
{
    if (n > STORE_CAPACITY_MAX)
        return -E2BIG;
    for (size_t i = 0; i < n; i++) {
        if (!price_ok(&p[i]))
            return -EINVAL;
        for (size_t k = 0; k < i; k++)
            if (strcmp(p[k].deployment, p[i].deployment) == 0)
                return -EINVAL;
    }
    pthread_mutex_lock(&prices_mu);
    if (n)
        memcpy(prices, p, n * sizeof(*p));
    n_prices = n;
    pthread_mutex_unlock(&prices_mu);
    return 0;
}

/* See capacity_store.h. */
size_t store_capacity_prices(struct store_capacity_price *out, size_t cap)
{
    pthread_mutex_lock(&prices_mu);
    size_t n = n_prices;
    memcpy(out, prices, (n < cap ? n : cap) * sizeof(*out));
    pthread_mutex_unlock(&prices_mu);
    return n;
}

/* ---- the heartbeat ---- */

/* One statement: the CTEs' writes and the count share a snapshot taken before them, so the count
 * is the other pods seen within stale_ms, plus this one. The database's clock decides, so the
 * pods' clocks need not agree. A stale row that its pod refreshes at the same moment survives
 * (the delete re-checks seen_at on the new row version). */
static const char sql_beat[] =
    "WITH beat AS (INSERT INTO pods (id, seen_at) VALUES ($1, now()) "
    "              ON CONFLICT (id) DO UPDATE SET seen_at = EXCLUDED.seen_at RETURNING 1), "
    "     gone AS (DELETE FROM pods WHERE id <> $1 "
    "              AND seen_at < now() - $2::float8 * interval '1 millisecond' RETURNING 1) "
    "SELECT 1 + count(*) FROM pods WHERE id <> $1 "
    "AND seen_at >= now() - $2::float8 * interval '1 millisecond'";

struct beat_ctx {
    store_pods_fn fn;
    void *ctx;
};

static void on_beat(void *ctx, const struct pg_result *r)
{
    struct beat_ctx g = *(struct beat_ctx *)ctx;
    xfree(ctx);
    const PGresult *res = r->status == PG_OK && r->nrows == 1 ? r->rows[0] : NULL;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        log_warn("capacity: the pods' heartbeat failed: %s",
                 r->status == PG_OK ? "unexpected result" : r->message);
        g.fn(g.ctx, -1);
        return;
    }
    long pods = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    g.fn(g.ctx, pods >= 1 && pods <= INT32_MAX ? (int)pods : -1);
}

/* See capacity_store.h. The op's ctx is ours (a beat_ctx), freed with the answer. */
struct store_op *store_pods_beat(struct store *st, const char *pod_id, uint32_t stale_ms,
                                 store_pods_fn fn, void *ctx)
{
    struct beat_ctx *g = xmalloc(sizeof(*g));
    *g = (struct beat_ctx){fn, ctx};
    struct pg_query q;
    pg_query_init(&q);
    pg_query_sql(&q, sql_beat);
    pg_query_param_str(&q, pod_id);
    pg_query_param_i64(&q, stale_ms);
    struct store_op *op = store_query(st, &q, false, on_beat, g);
    op->free_ctx = true; /* store_destroy drops it with its ctx */
    pg_query_free(&q);
    return op;
}

/* See capacity_store.h. */
void store_pods_cancel(struct store_op *op)
{
    if (!op)
        return;
    void *g = op->ctx;
    store_cancel(op);
    xfree(g);
}
