/* api_capacity.c - the provisioned capacity's cost in the read API (api_int.h, docs/store.md
 * "Provisioned capacity"), behind the admin token:
 *
 *   GET /v1/costs/provisioned?from=&to=&deployment=   each clock hour a deployment served: its
 *        calls, tokens, hourly price and each turn's share of it; per conversation the sum of
 *        its turns' shares; the idle hours; per deployment the hours, the apportioned and the
 *        idle totals
 *
 * and the "provisioned" lines of GET /v1/costs (api.c asks this file for the statement and the
 * writer).
 *
 * The hourly price of a deployment (store_set_capacity_prices: the agents file's, as configured
 * in this process now) is split over the turns each UTC clock hour served, in proportion to their
 * provisioned tokens (input + output), in integer micro-units with the largest remainder method
 * (apportion.h): the shares of an hour sum to its price exactly. A call counts in the hour its
 * turn started (every row below a turn carries the turn's start). Hours with no call between a
 * deployment's first and last served hour of the range are "idle": their whole price is a line
 * of its own, charged to no turn. Hours before the first and after the last call of the range
 * are not counted (the range does not say whether the deployment was bought then).
 *
 * Known weakness: the price applied to every hour of the range is the one configured now; a
 * price changed since is applied to the past too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/mem.h"
#include "store/api_int.h"
#include "store/apportion.h"
#include "store/capacity_store.h"
#include "store/store_int.h"
#include "stream/jsonw.h"

#define CAP_STATEMENT_TIMEOUT_MS 5000
#define CAP_MAX_ROWS 10000 /* (hour, deployment, turn) rows and idle hours listed at most */
#define STR_(x) #x
#define STR(x) STR_(x)

enum { CAP_PRELUDE = 2, CAP_DEFAULT_DAYS = 1 };

struct cap_req {
    struct conn *c;
    struct store_op *op;
    bool head;
    int64_t from_day, to_day; /* days since 1970-01-01 (UTC), both included */
    char deployment[32];      /* "" = every deployment */
};

/* clang-format off */
/* The provisioned calls of the range: $1, $2 the range's bounds, $3 a deployment or NULL. The
 * hour is counted from the epoch (UTC clock hours). */
#define PROV_CALLS                                                                                 \
    "SELECT deployment, floor(extract(epoch FROM started_at) / 3600)::bigint AS h, turn_id, "      \
    "       conversation_id, input_tokens + output_tokens AS tok "                                 \
    "FROM llm_calls WHERE deployment IS NOT NULL "                                                 \
    "  AND started_at >= $1::timestamptz AND started_at < $2::timestamptz "                        \
    "  AND ($3::text IS NULL OR deployment = $3) "

/* per deployment: served hours, the span from the first to the last served hour, calls, tokens
 * (grouped by hour first: hash aggregates, no sort of every call; a distinct count of turns here
 * made /v1/costs three times slower on 200,000 calls) */
static const char sql_summary[] =
    "SELECT deployment, count(*), max(h) - min(h) + 1, sum(calls)::bigint, sum(tok)::bigint "
    "FROM (SELECT deployment, h, count(*) AS calls, sum(tok) AS tok "
    "      FROM (" PROV_CALLS ") x GROUP BY 1, 2) y "
    "GROUP BY 1 ORDER BY 1";

/* one row per hour, deployment and turn: the turn's provisioned calls and tokens that hour */
static const char sql_turn_hours[] =
    "SELECT h, deployment, turn_id, conversation_id, count(*), sum(tok)::bigint "
    "FROM (" PROV_CALLS ") x GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3 "
    "LIMIT " STR(CAP_MAX_ROWS) " + 1";

/* the hours without a call between each deployment's first and last served hour */
static const char sql_idle[] =
    "WITH served AS (SELECT DISTINCT deployment, h FROM (" PROV_CALLS ") x) "
    "SELECT g.h, s.deployment "
    "FROM (SELECT deployment, min(h) AS lo, max(h) AS hi FROM served GROUP BY 1) s, "
    "     generate_series(s.lo, s.hi) AS g(h) "
    "WHERE NOT EXISTS (SELECT 1 FROM served v WHERE v.deployment = s.deployment AND v.h = g.h) "
    "ORDER BY 1, 2 LIMIT " STR(CAP_MAX_ROWS) " + 1";
/* clang-format on */

/* ---- prices ---- */

struct prices {
    struct store_capacity_price p[STORE_CAPACITY_MAX];
    size_t n;
};

static void prices_load(struct prices *pr)
{
    pr->n = store_capacity_prices(pr->p, STORE_CAPACITY_MAX);
    if (pr->n > STORE_CAPACITY_MAX)
        pr->n = STORE_CAPACITY_MAX;
}

/* The deployment's price, or NULL when none is configured. */
static const struct store_capacity_price *price_of(const struct prices *pr, const char *dep)
{
    for (size_t i = 0; i < pr->n; i++)
        if (strcmp(pr->p[i].deployment, dep) == 0)
            return &pr->p[i];
    return NULL;
}

/* "hourly_micros" and "currency", null when the deployment has no configured price. */
static void write_price(struct jsonw *w, const struct store_capacity_price *p)
{
    jw_key(w, "currency");
    if (p)
        jw_str(w, p->currency);
    else
        jw_null(w);
    jw_key(w, "hourly_micros");
    if (p)
        jw_int(w, p->hourly_micros);
    else
        jw_null(w);
}

/* key: n * the price, or null without one. */
static void write_times(struct jsonw *w, const char *key, const struct store_capacity_price *p,
                        int64_t n)
{
    jw_key(w, key);
    if (p)
        jw_int(w, p->hourly_micros * n);
    else
        jw_null(w);
}

/* ---- the summary (also /v1/costs's "provisioned") ---- */

static void range_text(int64_t from_day, int64_t to_day, char from[40], char to[40])
{
    store_api_format_day(from_day, "%Y-%m-%d 00:00:00+00", from, 40);
    store_api_format_day(to_day + 1, "%Y-%m-%d 00:00:00+00", to, 40);
}

static void add_stmt(struct pg_query *q, const char *sql, const char *from, const char *to,
                     const char *deployment)
{
    pg_query_sql(q, sql);
    pg_query_param_str(q, from);
    pg_query_param_str(q, to);
    pg_query_param_str(q, deployment && deployment[0] ? deployment : NULL);
}

/* See api_int.h. */
void store_api_provisioned_stmt(struct pg_query *q, int64_t from_day, int64_t to_day)
{
    char from[40], to[40];
    range_text(from_day, to_day, from, to);
    add_stmt(q, sql_summary, from, to, NULL);
}

/* See api_int.h. Hours and money are whole: hours x the hourly price. */
void store_api_write_provisioned(struct jsonw *w, const PGresult *r)
{
    struct prices pr;
    prices_load(&pr);
    jw_key(w, "provisioned");
    jw_arr_begin(w);
    for (int i = 0; i < PQntuples(r); i++) {
        const struct store_capacity_price *p = price_of(&pr, PQgetvalue(r, i, 0));
        int64_t hours = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        int64_t idle = strtoll(PQgetvalue(r, i, 2), NULL, 10) - hours;
        jw_obj_begin(w);
        jw_kstr(w, "deployment", PQgetvalue(r, i, 0));
        write_price(w, p);
        jw_kint(w, "hours", hours);
        jw_kint(w, "calls", strtoll(PQgetvalue(r, i, 3), NULL, 10));
        jw_kint(w, "tokens", strtoll(PQgetvalue(r, i, 4), NULL, 10));
        write_times(w, "apportioned_micros", p, hours);
        jw_kint(w, "idle_hours", idle);
        write_times(w, "idle_micros", p, idle);
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

/* ---- parameters ---- */

static bool deployment_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n < 32 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

static int cap_param(void *ctx, int k, const char *val, char *msg, size_t cap)
{
    struct cap_req *a = ctx;
    if (k == 2) {
        if (!deployment_ok(val)) {
            snprintf(msg, cap,
                     "bad value for 'deployment': expected a capacity name (1 to 31 of a-z, "
                     "0-9, _, -)");
            return -1;
        }
        snprintf(a->deployment, sizeof(a->deployment), "%s", val);
        return 0;
    }
    return store_api_date_param(k == 0 ? "from" : "to", val, k == 0 ? &a->from_day : &a->to_day,
                                msg, cap);
}

/* from, to (UTC dates, both included; default today) and deployment, each at most once and
 * nothing else. Returns 0 or 400 with msg. */
static int parse_cap(const struct http_request *req, struct cap_req *a, char *msg, size_t cap)
{
    static const char *const names[] = {"from", "to", "deployment"};
    bool seen[3];
    int rc = store_api_params(req, names, 3, seen, cap_param, a, msg, cap);
    return rc ? rc
              : store_api_day_range(seen[0], seen[1], CAP_DEFAULT_DAYS, &a->from_day, &a->to_day,
                                    msg, cap);
}

/* ---- GET /v1/costs/provisioned ---- */

/* An hour number (since the epoch) as ISO 8601 UTC. */
static void write_hour(struct jsonw *w, int64_t h)
{
    time_t t = (time_t)(h * 3600);
    struct tm tm;
    char s[32];
    gmtime_r(&t, &tm);
    strftime(s, sizeof(s), "%Y-%m-%dT%H:00:00Z", &tm);
    jw_kstr(w, "hour", s);
}

static bool same_group(const PGresult *r, int i, int j)
{
    return strcmp(PQgetvalue(r, i, 0), PQgetvalue(r, j, 0)) == 0 &&
           strcmp(PQgetvalue(r, i, 1), PQgetvalue(r, j, 1)) == 0;
}

/* One turn's share, kept for the per-conversation totals (strings point into the result). */
struct conv_share {
    const char *conversation_id, *deployment;
    int64_t micros;
};

struct conv_shares {
    struct conv_share *v;
    size_t n;
};

/* The hour and deployment of rows [from, to): its turns and their shares of the price (added to
 * cs when the deployment has one). */
static void write_hour_group(struct jsonw *w, const PGresult *r, int from, int to,
                             const struct prices *pr, struct conv_shares *cs)
{
    size_t n = (size_t)(to - from);
    uint64_t *tok = xmalloc(n * sizeof(*tok));
    int64_t *share = xmalloc(n * sizeof(*share)), calls = 0, tokens = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t t = strtoll(PQgetvalue(r, from + (int)i, 5), NULL, 10);
        tok[i] = t > 0 ? (uint64_t)t : 0;
        tokens += (int64_t)tok[i];
        calls += strtoll(PQgetvalue(r, from + (int)i, 4), NULL, 10);
    }
    const struct store_capacity_price *p = price_of(pr, PQgetvalue(r, from, 1));
    bool shared = p && apportion(p->hourly_micros, tok, n, share) == 0;
    jw_obj_begin(w);
    write_hour(w, strtoll(PQgetvalue(r, from, 0), NULL, 10));
    jw_kstr(w, "deployment", PQgetvalue(r, from, 1));
    write_price(w, p);
    jw_kint(w, "calls", calls);
    jw_kint(w, "tokens", tokens);
    jw_key(w, "turns");
    jw_arr_begin(w);
    for (size_t i = 0; i < n; i++) {
        int row = from + (int)i;
        jw_obj_begin(w);
        jw_kstr(w, "turn_id", PQgetvalue(r, row, 2));
        jw_kstr(w, "conversation_id", PQgetvalue(r, row, 3));
        jw_kint(w, "calls", strtoll(PQgetvalue(r, row, 4), NULL, 10));
        jw_kint(w, "tokens", (int64_t)tok[i]);
        jw_key(w, "share_micros");
        if (shared) {
            jw_int(w, share[i]);
            cs->v[cs->n++] =
                (struct conv_share){PQgetvalue(r, row, 3), PQgetvalue(r, row, 1), share[i]};
        } else {
            jw_null(w);
        }
        jw_obj_end(w);
    }
    jw_arr_end(w);
    jw_obj_end(w);
    xfree(tok);
    xfree(share);
}

/* "hours": every complete (hour, deployment) group. Past CAP_MAX_ROWS rows the last group may
 * be cut: it is left out whole (a partial hour's shares would not sum to its price). Returns
 * whether anything was left out. */
static bool write_hours(struct jsonw *w, const PGresult *r, const struct prices *pr,
                        struct conv_shares *cs)
{
    int n = PQntuples(r);
    bool truncated = n > CAP_MAX_ROWS;
    if (truncated) {
        n = CAP_MAX_ROWS;
        while (n > 0 && same_group(r, n - 1, CAP_MAX_ROWS))
            n--;
    }
    jw_key(w, "hours");
    jw_arr_begin(w);
    for (int i = 0; i < n;) {
        int j = i + 1;
        while (j < n && same_group(r, i, j))
            j++;
        write_hour_group(w, r, i, j, pr, cs);
        i = j;
    }
    jw_arr_end(w);
    return truncated;
}

static int cmp_conv_share(const void *a, const void *b)
{
    const struct conv_share *x = a, *y = b;
    int c = strcmp(x->deployment, y->deployment);
    return c ? c : strcmp(x->conversation_id, y->conversation_id);
}

/* "conversations": per deployment and conversation, the turns listed and the sum of their
 * shares (deployments with a price), by deployment then conversation id. */
static void write_conversations(struct jsonw *w, struct conv_shares *cs, const struct prices *pr)
{
    qsort(cs->v, cs->n, sizeof(*cs->v), cmp_conv_share);
    jw_key(w, "conversations");
    jw_arr_begin(w);
    for (size_t i = 0; i < cs->n;) {
        size_t j = i;
        int64_t sum = 0;
        for (; j < cs->n && cmp_conv_share(&cs->v[i], &cs->v[j]) == 0; j++)
            sum += cs->v[j].micros;
        jw_obj_begin(w);
        jw_kstr(w, "conversation_id", cs->v[i].conversation_id);
        jw_kstr(w, "deployment", cs->v[i].deployment);
        jw_kstr(w, "currency", price_of(pr, cs->v[i].deployment)->currency);
        jw_kint(w, "turns", (int64_t)(j - i));
        jw_kint(w, "share_micros", sum);
        jw_obj_end(w);
        i = j;
    }
    jw_arr_end(w);
}

static bool write_idle(struct jsonw *w, const PGresult *r, const struct prices *pr)
{
    int n = PQntuples(r);
    jw_key(w, "idle");
    jw_arr_begin(w);
    for (int i = 0; i < n && i < CAP_MAX_ROWS; i++) {
        jw_obj_begin(w);
        write_hour(w, strtoll(PQgetvalue(r, i, 0), NULL, 10));
        jw_kstr(w, "deployment", PQgetvalue(r, i, 1));
        write_price(w, price_of(pr, PQgetvalue(r, i, 1)));
        jw_obj_end(w);
    }
    jw_arr_end(w);
    return n > CAP_MAX_ROWS;
}

static bool shape_ok(const struct pg_result *res)
{
    static const int ncols[] = {STORE_API_PROVISIONED_COLS, 6, 2};
    if (res->nrows != CAP_PRELUDE + 3)
        return false;
    for (int i = 0; i < 3; i++) {
        const PGresult *r = res->rows[CAP_PRELUDE + i];
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != ncols[i])
            return false;
    }
    return true;
}

static void write_answer(const struct cap_req *a, PGresult *const *r, struct jsonw *w)
{
    struct prices pr;
    prices_load(&pr);
    char day[16];
    jw_obj_begin(w);
    store_api_format_day(a->from_day, "%Y-%m-%d", day, sizeof(day));
    jw_kstr(w, "from", day);
    store_api_format_day(a->to_day, "%Y-%m-%d", day, sizeof(day));
    jw_kstr(w, "to", day);
    jw_key(w, "deployment");
    if (a->deployment[0])
        jw_str(w, a->deployment);
    else
        jw_null(w);
    store_api_write_provisioned(w, r[0]);
    struct conv_shares cs = {xmalloc(((size_t)PQntuples(r[1]) + 1) * sizeof(*cs.v)), 0};
    bool cut = write_hours(w, r[1], &pr, &cs);
    write_conversations(w, &cs, &pr);
    xfree(cs.v);
    cut |= write_idle(w, r[2], &pr);
    jw_kbool(w, "truncated", cut);
    jw_obj_end(w);
}

static void on_result(void *ctx, const struct pg_result *res)
{
    struct cap_req *a = ctx;
    if (res->status != PG_OK) {
        store_api_db_error(a->c, a->head, res);
    } else if (!shape_ok(res)) {
        log_error("capacity api: unexpected result shape");
        store_api_error(a->c, a->head, 500, "internal", "unexpected result shape", NULL);
    } else {
        struct buf body = {0};
        struct jsonw w;
        jw_init(&w, &body);
        write_answer(a, res->rows + CAP_PRELUDE, &w);
        buf_append(&body, "\n", 1);
        store_api_reply(a->c, a->head, 200, &body, NULL);
        buf_free(&body);
    }
    xfree(a);
}

static void start_read(struct store *st, const struct cap_req *req)
{
    struct cap_req *a = xmalloc(sizeof(*a));
    *a = *req;
    char from[40], to[40];
    range_text(a->from_day, a->to_day, from, to);
    struct pg_query q;
    pg_query_init(&q);
    pg_query_sql(&q, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    pg_query_sql(&q, "SET LOCAL statement_timeout = " STR(CAP_STATEMENT_TIMEOUT_MS));
    add_stmt(&q, sql_summary, from, to, a->deployment);
    add_stmt(&q, sql_turn_hours, from, to, a->deployment);
    add_stmt(&q, sql_idle, from, to, a->deployment);
    conn_http_defer(a->c);
    a->op = store_query(st, &q, true, on_result, a);
    pg_query_free(&q);
}

/* Serve GET /v1/costs/provisioned; see api_int.h. */
static bool cap_request(struct store *st, struct conn *c, const struct http_request *req,
                        const char *body, size_t len)
{
    (void)body, (void)len;
    static const char path[] = "/v1/costs/provisioned";
    if (req->path_len != sizeof(path) - 1 || memcmp(req->path, path, sizeof(path) - 1) != 0)
        return false;
    bool head;
    if (!store_api_get_or_head(c, req, &head))
        return true;
    struct cap_req a = {.c = c, .head = head};
    char msg[160];
    if (parse_cap(req, &a, msg, sizeof(msg))) {
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
static void cap_abort(struct store *st, struct conn *c)
{
    store_api_drop_read(st, c, on_result);
}

/* The provisioned cost endpoint for api.c's table; see api_int.h. */
const struct store_api_sub store_api_capacity = {.request = cap_request, .abort = cap_abort};
