/* api_traffic.c - the recorded traffic for the capacity planner (api_int.h, docs/planner.md),
 * behind the admin token:
 *
 *   GET /v1/traffic?from=&to=&bucket=minute|hour[&provider=&model=]
 *
 * Per route (provider, model, tier) and per minute or hour with calls: the model calls, their
 * input (cached included), cached input and output tokens, and their summed duration; the mean
 * number of streams open in the bucket follows by Little's law (summed duration / bucket
 * length) and is given as "concurrency". Buckets without calls are left out.
 *
 * As in api.c: one READ ONLY, REPEATABLE READ transaction with a statement timeout on the
 * worker's reader connection, the answer deferred until the rows are in, and what the client
 * sent only ever a parameter.
 *
 * Known weaknesses: llm_calls.started_at is the start of the call's turn, not of the call, so a
 * call is counted in the bucket its turn started in (a turn lasts seconds: it can move a call
 * into the previous minute). At most TRAFFIC_MAX_ROWS buckets are listed ("truncated": true
 * beyond): a month of minutes is 43,200 per route; narrow the range or filter the route. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "net/utf8.h"
#include "store/api_int.h"
#include "store/store_int.h"
#include "stream/jsonw.h"

#define TRAFFIC_STATEMENT_TIMEOUT_MS 10000
#define TRAFFIC_MAX_ROWS 100000
#define TRAFFIC_DEFAULT_DAYS 7
#define STR_(x) #x
#define STR(x) STR_(x)

enum { TRAFFIC_PRELUDE = 2, TRAFFIC_NCOLS = 9 };

struct traffic_req {
    struct conn *c;
    struct store_op *op;
    bool head;
    bool hourly;              /* bucket=hour */
    int64_t from_day, to_day; /* days since 1970-01-01, both included */
    char provider[64];        /* "" = every provider */
    char model[64];           /* "" = every model */
};

/* clang-format off: one SQL clause per line */
static const char sql_traffic[] =
    "SELECT provider, model, tier, "
    "       to_char(date_trunc($3, started_at AT TIME ZONE 'UTC'), "
    "               'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
    "       count(*), sum(input_tokens)::bigint, sum(cached_input_tokens)::bigint, "
    "       sum(output_tokens)::bigint, sum(duration_ms)::bigint "
    "FROM llm_calls "
    "WHERE started_at >= $1::timestamptz AND started_at < $2::timestamptz "
    "  AND ($4::text IS NULL OR provider = $4) AND ($5::text IS NULL OR model = $5) "
    "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 "
    "LIMIT " STR(TRAFFIC_MAX_ROWS) " + 1";
/* clang-format on */

/* ---- parameters ---- */

static const char *const param_names[] = {"from", "to", "bucket", "provider", "model"};

/* One parameter of /v1/traffic. Returns 0, or -1 with msg. */
static int traffic_param(void *ctx, int k, const char *val, char *msg, size_t cap)
{
    struct traffic_req *a = ctx;
    switch (k) {
    case 0:
    case 1:
        return store_api_date_param(param_names[k], val, k == 0 ? &a->from_day : &a->to_day, msg,
                                    cap);
    case 2:
        if (strcmp(val, "minute") == 0 || strcmp(val, "hour") == 0) {
            a->hourly = val[0] == 'h';
            return 0;
        }
        snprintf(msg, cap, "bad value for 'bucket': expected minute or hour");
        return -1;
    default: {
        /* provider / model: non-empty UTF-8 (PostgreSQL refuses other text) */
        char *out = k == 3 ? a->provider : a->model;
        size_t n = strlen(val);
        if (n == 0 || n >= sizeof(a->provider) || !utf8_valid((const uint8_t *)val, n)) {
            snprintf(msg, cap, "bad value for '%s': expected a non-empty UTF-8 name",
                     param_names[k]);
            return -1;
        }
        memcpy(out, val, n + 1);
        return 0;
    }
    }
}

/* from, to (UTC dates, both included; default the 7 days ending today), bucket (default
 * minute), provider, model; each at most once and nothing else. Returns 0 or 400 with msg. */
static int parse_traffic(const struct http_request *req, struct traffic_req *a, char *msg,
                         size_t cap)
{
    bool seen[5];
    int rc = store_api_params(req, param_names, 5, seen, traffic_param, a, msg, cap);
    return rc ? rc
              : store_api_day_range(seen[0], seen[1], TRAFFIC_DEFAULT_DAYS, &a->from_day,
                                    &a->to_day, msg, cap);
}

/* ---- the answer ---- */

static const char *col(const PGresult *r, int row, int c)
{
    return PQgetvalue(r, row, c);
}

static int64_t col_i64(const PGresult *r, int row, int c)
{
    return strtoll(PQgetvalue(r, row, c), NULL, 10);
}

/* Row i starts a route other than row i - 1's. */
static bool new_route(const PGresult *r, int i)
{
    if (i == 0)
        return true;
    for (int c = 0; c < 3; c++)
        if (strcmp(col(r, i, c), col(r, i - 1, c)) != 0)
            return true;
    return false;
}

/* The mean streams open: duration_ms / (bucket_s * 1000), exactly, to 3 decimals. */
static void write_concurrency(struct jsonw *w, int64_t duration_ms, int bucket_s)
{
    int64_t milli = duration_ms / bucket_s; /* thousandths of a stream */
    char s[48];
    int n =
        snprintf(s, sizeof(s), "%lld.%03lld", (long long)(milli / 1000), (long long)(milli % 1000));
    jw_key(w, "concurrency");
    jw_raw(w, s, (size_t)n);
}

static void write_bucket(struct jsonw *w, const PGresult *r, int i, int bucket_s)
{
    static const char *const names[] = {"calls", "input_tokens", "cached_input_tokens",
                                        "output_tokens", "duration_ms"};
    jw_obj_begin(w);
    jw_kstr(w, "t", col(r, i, 3));
    for (int k = 0; k < 5; k++)
        jw_kint(w, names[k], col_i64(r, i, 4 + k));
    write_concurrency(w, col_i64(r, i, 8), bucket_s);
    jw_obj_end(w);
}

static int write_traffic(const struct traffic_req *a, const struct pg_result *res, struct jsonw *w)
{
    if (res->nrows != TRAFFIC_PRELUDE + 1)
        return 500;
    const PGresult *r = res->rows[TRAFFIC_PRELUDE];
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != TRAFFIC_NCOLS)
        return 500;
    int n = PQntuples(r), bucket_s = a->hourly ? 3600 : 60;
    char day[16];
    jw_obj_begin(w);
    store_api_format_day(a->from_day, "%Y-%m-%d", day, sizeof(day));
    jw_kstr(w, "from", day);
    store_api_format_day(a->to_day, "%Y-%m-%d", day, sizeof(day));
    jw_kstr(w, "to", day);
    jw_kstr(w, "bucket", a->hourly ? "hour" : "minute");
    jw_kint(w, "bucket_s", bucket_s);
    jw_key(w, "routes");
    jw_arr_begin(w);
    for (int i = 0; i < n && i < TRAFFIC_MAX_ROWS; i++) {
        if (new_route(r, i)) {
            if (i) {
                jw_arr_end(w); /* the previous route's buckets, then the route */
                jw_obj_end(w);
            }
            jw_obj_begin(w);
            jw_kstr(w, "provider", col(r, i, 0));
            jw_kstr(w, "model", col(r, i, 1));
            jw_kstr(w, "tier", col(r, i, 2));
            jw_key(w, "buckets");
            jw_arr_begin(w);
        }
        write_bucket(w, r, i, bucket_s);
    }
    if (n) {
        jw_arr_end(w);
        jw_obj_end(w);
    }
    jw_arr_end(w);
    jw_kbool(w, "truncated", n > TRAFFIC_MAX_ROWS);
    jw_obj_end(w);
    return 200;
}

static void on_result(void *ctx, const struct pg_result *res)
{
    struct traffic_req *a = ctx;
    if (res->status != PG_OK) {
        store_api_db_error(a->c, a->head, res);
        xfree(a);
        return;
    }
    struct buf body = {0};
    struct jsonw w;
    jw_init(&w, &body);
    if (write_traffic(a, res, &w) == 200) {
        buf_append(&body, "\n", 1);
        store_api_reply(a->c, a->head, 200, &body, NULL);
    } else {
        log_error("traffic api: unexpected result shape");
        store_api_error(a->c, a->head, 500, "internal", "unexpected result shape", NULL);
    }
    buf_free(&body);
    xfree(a);
}

static void start_read(struct store *st, const struct traffic_req *req)
{
    struct traffic_req *a = xmalloc(sizeof(*a));
    *a = *req;
    char from[40], to[40];
    store_api_format_day(a->from_day, "%Y-%m-%d 00:00:00+00", from, sizeof(from));
    store_api_format_day(a->to_day + 1, "%Y-%m-%d 00:00:00+00", to, sizeof(to));
    struct pg_query q;
    pg_query_init(&q);
    pg_query_sql(&q, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    pg_query_sql(&q, "SET LOCAL statement_timeout = " STR(TRAFFIC_STATEMENT_TIMEOUT_MS));
    pg_query_sql(&q, sql_traffic);
    pg_query_param_str(&q, from);
    pg_query_param_str(&q, to);
    pg_query_param_str(&q, a->hourly ? "hour" : "minute");
    pg_query_param_str(&q, a->provider[0] ? a->provider : NULL);
    pg_query_param_str(&q, a->model[0] ? a->model : NULL);
    conn_http_defer(a->c);
    a->op = store_query(st, &q, true, on_result, a);
    pg_query_free(&q);
}

/* Serve GET /v1/traffic; see api_int.h. */
static bool traffic_request(struct store *st, struct conn *c, const struct http_request *req,
                            const char *body, size_t len)
{
    (void)body, (void)len;
    if (req->path_len != 11 || memcmp(req->path, "/v1/traffic", 11) != 0)
        return false;
    bool head;
    if (!store_api_get_or_head(c, req, &head))
        return true;
    struct traffic_req a = {.c = c, .head = head};
    char msg[160];
    if (parse_traffic(req, &a, msg, sizeof(msg))) {
        store_api_error(c, head, 400, "bad_request", msg, NULL);
        return true;
    }
    if (!st) {
        store_api_error(c, head, 503, "unavailable", "no database is configured", NULL);
        return true;
    }
    start_read(st, &a);
    return true;
}

/* The client left: drop its pending read. */
static void traffic_abort(struct store *st, struct conn *c)
{
    store_api_drop_read(st, c, on_result);
}

/* The traffic endpoint for api.c's table; see api_int.h. */
const struct store_api_sub store_api_traffic = {.request = traffic_request, .abort = traffic_abort};
