/* spend_sql.c - the day's spend per user from the ledger (spend.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "store/spend.h"
#include "store/store_int.h"

/* ledger_created_idx serves the window; numeric keeps amount x rate clear of bigint overflow. */
static const char sql_spend[] =
    "SELECT c.user_sub, sum(CASE WHEN l.currency = $2 THEN l.amount_micros::numeric "
    "WHEN $2 = 'INR' THEN l.amount_micros::numeric * l.usd_to_inr_micros / 1000000 "
    "ELSE l.amount_micros::numeric * 1000000 / l.usd_to_inr_micros END)::bigint "
    "FROM ledger l JOIN conversations c ON c.id = l.conversation_id "
    "WHERE l.created_at >= to_timestamp($1::bigint / 1000.0) AND l.kind <> 'cache_saving' "
    "GROUP BY c.user_sub";

struct spend_ctx {
    store_spend_fn fn;
    void *ctx;
};

/* Hand the rows of res to fn. Returns 0, or -EIO for an unexpected shape. */
static int deliver(const PGresult *res, store_spend_fn fn, void *ctx)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 2)
        return -EIO;
    int n = PQntuples(res);
    struct store_spend_row *rows = xcalloc(n ? (size_t)n : 1, sizeof(*rows));
    for (int i = 0; i < n; i++)
        rows[i] = (struct store_spend_row){PQgetvalue(res, i, 0),
                                           strtoll(PQgetvalue(res, i, 1), NULL, 10)};
    fn(ctx, 0, rows, (size_t)n);
    xfree(rows);
    return 0;
}

static void on_spend(void *ctx, const struct pg_result *r)
{
    struct spend_ctx g = *(struct spend_ctx *)ctx;
    xfree(ctx);
    if (r->status != PG_OK || r->nrows != 1 || deliver(r->rows[0], g.fn, g.ctx) < 0) {
        log_warn("budget: reading the day's spend failed: %s",
                 r->status == PG_OK ? "unexpected result" : r->message);
        g.fn(g.ctx, -EIO, NULL, 0);
    }
}

/* See spend.h. The op's ctx is ours (a spend_ctx), freed with the answer. */
struct store_op *store_read_spend(struct store *st, int64_t since_unix_ms, const char *currency,
                                  store_spend_fn fn, void *ctx)
{
    struct spend_ctx *g = xmalloc(sizeof(*g));
    *g = (struct spend_ctx){fn, ctx};
    struct pg_query q;
    pg_query_init(&q);
    pg_query_sql(&q, sql_spend);
    pg_query_param_i64(&q, since_unix_ms);
    pg_query_param_str(&q, currency);
    struct store_op *op = store_query(st, &q, false, on_spend, g);
    pg_query_free(&q);
    return op;
}

/* See spend.h. store_cancel alone would leak the op's spend_ctx. */
void store_spend_cancel(struct store_op *op)
{
    if (!op)
        return;
    void *g = op->ctx;
    store_cancel(op);
    xfree(g);
}

/* See spend.h. */
int store_read_spend_blocking(const struct store_conf *conf, int64_t since_unix_ms,
                              const char *currency, store_spend_fn fn, void *ctx, char *err,
                              size_t errlen)
{
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {conf->database_url, "10", "trilemmad", NULL};
    if (errlen)
        err[0] = '\0';
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    int rc = -1;
    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s", PQerrorMessage(conn));
        goto out_conn;
    }
    char since[24];
    snprintf(since, sizeof(since), "%lld", (long long)since_unix_ms);
    const char *params[] = {since, currency};
    PGresult *res = PQexecParams(conn, sql_spend, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        snprintf(err, errlen, "reading the day's spend: %s", PQerrorMessage(conn));
    else
        rc = deliver(res, fn, ctx) < 0 ? -1 : 0;
    PQclear(res);
out_conn:
    err[strcspn(err, "\n")] = '\0';
    PQfinish(conn);
    return rc;
}
