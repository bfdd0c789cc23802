/* cache_sql.c - the cache layers' shared tier (cache_store.h) over store_query. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "store/cache_store.h"
#include "store/store_int.h"

static const char sql_get[] = "SELECT value, cost_micros, currency, "
                              "(extract(epoch FROM expires_at) * 1000)::bigint FROM cache_entries "
                              "WHERE layer = $1 AND key = $2 AND expires_at > now()";

static const char sql_put[] =
    "INSERT INTO cache_entries (layer, key, value, cost_micros, currency, label, expires_at) "
    "VALUES ($1, $2, $3, $4, $5, left($6, 256), to_timestamp($7::bigint / 1000.0)) "
    "ON CONFLICT (layer, key) DO UPDATE SET value = EXCLUDED.value, "
    "cost_micros = EXCLUDED.cost_micros, currency = EXCLUDED.currency, label = EXCLUDED.label, "
    "created_at = now(), expires_at = EXCLUDED.expires_at";

/* A few at a time, so that no write ever becomes a long sweep. */
static const char sql_purge[] =
    "DELETE FROM cache_entries WHERE ctid = ANY (ARRAY(SELECT ctid FROM cache_entries "
    "WHERE expires_at <= now() LIMIT 100))";

struct get_ctx {
    store_cache_fn fn;
    void *ctx;
};

static void on_got(void *ctx, const struct pg_result *r)
{
    struct get_ctx g = *(struct get_ctx *)ctx;
    xfree(ctx);
    if (r->status != PG_OK || r->nrows != 1 || PQresultStatus(r->rows[0]) != PGRES_TUPLES_OK) {
        g.fn(g.ctx, -EIO, NULL);
        return;
    }
    const PGresult *res = r->rows[0];
    if (PQntuples(res) == 0 || PQnfields(res) != 4) {
        g.fn(g.ctx, -ENOENT, NULL);
        return;
    }
    struct store_cache_entry e = {
        .value = PQgetvalue(res, 0, 0),
        .len = (size_t)PQgetlength(res, 0, 0),
        .cost_micros = strtoll(PQgetvalue(res, 0, 1), NULL, 10),
        .currency = PQgetvalue(res, 0, 2),
        .expires_unix_ms = strtoll(PQgetvalue(res, 0, 3), NULL, 10),
    };
    g.fn(g.ctx, 0, &e);
}

/* Read one entry; see the header. The op's ctx is ours (a get_ctx), freed with the answer or by
 * store_cache_cancel. */
struct store_op *store_cache_get(struct store *st, const char *layer, const char *key_hex,
                                 store_cache_fn fn, void *ctx)
{
    struct get_ctx *g = xmalloc(sizeof(*g));
    *g = (struct get_ctx){fn, ctx};
    struct pg_query q;
    pg_query_init(&q);
    pg_query_sql(&q, sql_get);
    pg_query_param_str(&q, layer);
    pg_query_param_str(&q, key_hex);
    struct store_op *op = store_query(st, &q, false, on_got, g);
    pg_query_free(&q);
    return op;
}

/* Pure; see the header. */
enum store_cache_verdict store_cache_admit(const struct store_cache_bound *b, uint32_t writes,
                                           uint64_t bytes, size_t len)
{
    if (len > b->entry_max || len > b->bytes_max)
        return STORE_CACHE_TOO_LARGE;
    if (writes >= b->writes_max || bytes + len > b->bytes_max)
        return STORE_CACHE_BUSY;
    return STORE_CACHE_WRITE;
}

/* A write in flight: what it holds of the bound. */
struct put_ctx {
    struct store *st;
    uint64_t len;
};

static void on_put(void *ctx, const struct pg_result *r)
{
    struct put_ctx p = *(struct put_ctx *)ctx;
    xfree(ctx);
    p.st->cache_puts--;
    p.st->cache_put_bytes -= p.len;
    if (r->status != PG_OK)
        log_debug("cache: writing a shared cache entry failed: %s", r->message);
}

/* Write one entry and purge a few expired ones, unless the bound drops it; see the header. */
void store_cache_put(struct store *st, const char *layer, const char *key_hex, const char *value,
                     size_t len, int64_t cost_micros, const char *currency, int64_t expires_unix_ms,
                     const char *label)
{
    enum store_cache_verdict v =
        store_cache_admit(&st->cache_bound, st->cache_puts, st->cache_put_bytes, len);
    if (v != STORE_CACHE_WRITE) {
        int li = strcmp(layer, "exact") ? 1 : 0;
        metric_add(&st->stats.cache_dropped[li][v == STORE_CACHE_BUSY ? 0 : 1], 1);
        return;
    }
    struct pg_query q;
    pg_query_init(&q);
    pg_query_sql(&q, sql_put);
    pg_query_param_str(&q, layer);
    pg_query_param_str(&q, key_hex);
    pg_query_param(&q, value, len);
    pg_query_param_i64(&q, cost_micros > 0 ? cost_micros : 0);
    pg_query_param_str(&q, currency);
    pg_query_param_str(&q, label ? label : "");
    pg_query_param_i64(&q, expires_unix_ms);
    pg_query_sql(&q, sql_purge);
    struct put_ctx *p = xmalloc(sizeof(*p));
    *p = (struct put_ctx){st, len};
    st->cache_puts++;
    st->cache_put_bytes += len;
    struct store_op *op = store_query(st, &q, false, on_put, p);
    op->free_ctx = true;
    pg_query_free(&q);
}

/* Forget a pending read; see the header. */
void store_cache_cancel(struct store_op *op)
{
    if (!op)
        return;
    void *g = op->ctx;
    store_cancel(op);
    xfree(g);
}
