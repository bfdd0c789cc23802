/* semcache_sql.c - the semantic cache's rows (semcache_store.h) over store_query. Vectors travel
 * as PostgreSQL's real[] text form ("{0.0123,-0.5,...}"). */
#include "store/semcache_store.h"

#include "base/buf.h"
#include "base/log.h"
#include "base/mem.h"
#include "store/store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { VEC_MAX = 4096 };

static const char sql_read[] =
    "SELECT id, part, query, embedding::text, answer, cost_micros, currency, "
    "(extract(epoch FROM expires_at) * 1000)::bigint FROM semantic_cache "
    "WHERE id > $1::bigint AND expires_at > now() ORDER BY id DESC LIMIT $2::integer";

static const char sql_put[] =
    "INSERT INTO semantic_cache (part, query, embedding, answer, cost_micros, currency, label, "
    "expires_at) VALUES ($1, $2, $3::real[], $4, $5, $6, left($7, 256), "
    "to_timestamp($8::bigint / 1000.0)) ON CONFLICT (part, query) DO UPDATE SET id = DEFAULT, "
    "embedding = EXCLUDED.embedding, answer = EXCLUDED.answer, "
    "cost_micros = EXCLUDED.cost_micros, currency = EXCLUDED.currency, label = EXCLUDED.label, "
    "created_at = now(), expires_at = EXCLUDED.expires_at";

/* A few at a time, so that no write ever becomes a long sweep. */
static const char sql_purge[] =
    "DELETE FROM semantic_cache WHERE ctid = ANY (ARRAY(SELECT ctid FROM semantic_cache "
    "WHERE expires_at <= now() LIMIT 100))";

struct read_ctx {
    store_semcache_fn fn;
    void *ctx;
};

/* "{0.1,-2e-05,...}" into v[0..cap); returns the count, 0 when malformed. */
static size_t parse_vec(const char *s, float *v, size_t cap)
{
    if (*s++ != '{')
        return 0;
    size_t n = 0;
    while (*s && *s != '}' && n < cap) {
        char *end;
        v[n++] = strtof(s, &end);
        if (end == s)
            return 0;
        s = *end == ',' ? end + 1 : end;
    }
    return *s == '}' ? n : 0;
}

static size_t dims_of(const char *s)
{
    size_t n = 1;
    for (; *s; s++)
        n += *s == ',';
    return n < VEC_MAX ? n : VEC_MAX;
}

static void deliver(struct read_ctx g, const PGresult *res)
{
    int n = PQntuples(res);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += dims_of(PQgetvalue(res, i, 3));
    struct store_semcache_row *rows = xcalloc(n ? (size_t)n : 1, sizeof(*rows));
    float *vecs = xmalloc((total ? total : 1) * sizeof(float)), *at = vecs;
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        struct store_semcache_row *r = &rows[k];
        const char *text = PQgetvalue(res, i, 3);
        size_t cap = dims_of(text);
        r->vec = at;
        r->dim = parse_vec(text, at, cap);
        at += cap;
        if (!r->dim)
            continue; /* cannot happen with the table's checks: skipped, never served */
        r->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        r->part = PQgetvalue(res, i, 1);
        r->query = PQgetvalue(res, i, 2);
        r->query_len = (size_t)PQgetlength(res, i, 2);
        r->answer = PQgetvalue(res, i, 4);
        r->answer_len = (size_t)PQgetlength(res, i, 4);
        r->cost_micros = strtoll(PQgetvalue(res, i, 5), NULL, 10);
        r->currency = PQgetvalue(res, i, 6);
        r->expires_unix_ms = strtoll(PQgetvalue(res, i, 7), NULL, 10);
        k++;
    }
    g.fn(g.ctx, 0, rows, k);
    xfree(vecs);
    xfree(rows);
}

static void on_read(void *ctx, const struct pg_result *r)
{
    struct read_ctx g = *(struct read_ctx *)ctx;
    xfree(ctx);
    if (r->status != PG_OK || r->nrows != 1 || PQresultStatus(r->rows[0]) != PGRES_TUPLES_OK ||
        PQnfields(r->rows[0]) != 8) {
        g.fn(g.ctx, -EIO, NULL, 0);
        return;
    }
    deliver(g, r->rows[0]);
}

/* Read rows; see the header. The op's ctx is ours (a read_ctx), freed with the answer or by
 * store_semcache_cancel. */
struct store_op *store_semcache_read(struct store *st, int64_t after_id, uint32_t limit,
                                     store_semcache_fn fn, void *ctx)
{
    struct read_ctx *g = xmalloc(sizeof(*g));
    *g = (struct read_ctx){fn, ctx};
    struct pg_query q;
    pg_query_init(&q);
    pg_query_sql(&q, sql_read);
    pg_query_param_i64(&q, after_id);
    pg_query_param_i64(&q, limit);
    struct store_op *op = store_query(st, &q, false, on_read, g);
    pg_query_free(&q);
    return op;
}

/* Forget a pending read; see the header. */
void store_semcache_cancel(struct store_op *op)
{
    if (!op)
        return;
    void *g = op->ctx;
    store_cancel(op);
    xfree(g);
}

static void on_put(void *ctx, const struct pg_result *r)
{
    (void)ctx;
    if (r->status != PG_OK)
        log_debug("semantic cache: writing an entry failed: %s", r->message);
}

/* Write a row; see the header. */
void store_semcache_put(struct store *st, const char *part_hex, const char *query, size_t qlen,
                        const float *vec, size_t dim, const char *answer, size_t alen,
                        int64_t cost_micros, const char *currency, int64_t expires_unix_ms,
                        const char *label)
{
    struct buf v = {0};
    buf_append(&v, "{", 1);
    for (size_t i = 0; i < dim; i++)
        buf_printf(&v, "%s%.9g", i ? "," : "", (double)vec[i]);
    buf_append(&v, "}", 1);
    struct pg_query q;
    pg_query_init(&q);
    pg_query_sql(&q, sql_put);
    pg_query_param_str(&q, part_hex);
    pg_query_param(&q, query, qlen);
    pg_query_param(&q, buf_begin(&v), buf_size(&v));
    pg_query_param(&q, answer, alen);
    pg_query_param_i64(&q, cost_micros > 0 ? cost_micros : 0);
    pg_query_param_str(&q, currency);
    pg_query_param_str(&q, label ? label : "");
    pg_query_param_i64(&q, expires_unix_ms);
    pg_query_sql(&q, sql_purge);
    store_query(st, &q, false, on_put, NULL);
    pg_query_free(&q);
    buf_free(&v);
}
