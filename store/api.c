/* api.c - the read API (store/api.h): a conversation, its cost ledger, and cost reports, as JSON
 * over HTTP for the widget, the operator pages and scripts.
 *
 * A request is checked at once (admin token in constant time, method, route, parameters) and
 * answered at once when it can be. Otherwise its statements go out as one request on the
 * worker's reader connection, inside a READ ONLY, REPEATABLE READ transaction so that every
 * statement of one answer sees the same snapshot, and the HTTP answer is deferred
 * (conn_http_defer) until the rows are in. What the client sent only ever travels as a
 * statement parameter, never inside SQL text.
 *
 * Known weaknesses: the reader connection is shared with resume loads, and PostgreSQL runs one
 * connection's statements one after another, so a large cost report delays this worker's
 * resume loads (bounded by API_STATEMENT_TIMEOUT_MS). A HEAD answer carries "Content-Length: 0"
 * (net/'s conn_http_reply writes the length of the body it is given, and none is given). */
#include "store/api.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/log.h"
#include "base/mem.h"
#include "net/utf8.h"
#include "store/api_int.h"
#include "store/store_int.h"
#include "stream/jsonw.h"

/* macros, not enum constants: they are spliced into SQL text */
#define API_MAX_GROUPS 10000          /* a cost report lists at most this many groups */
#define API_STATEMENT_TIMEOUT_MS 5000 /* per statement; a slower report is a 503 */

enum {
    API_DEFAULT_DAYS = 30, /* /v1/costs without from: the 30 days ending with `to` */
    API_PRELUDE = 2,       /* SET TRANSACTION, SET LOCAL statement_timeout */
};

#define STR_(x) #x
#define STR(x) STR_(x)
/* ISO 8601 UTC with milliseconds, for to_char(ts AT TIME ZONE 'UTC', ISO_MS) */
#define ISO_MS "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'"
#define TOKEN_COLS                                                                                 \
    "input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens"
#define TOKEN_SUMS                                                                                 \
    "sum(input_tokens)::bigint, sum(cached_input_tokens)::bigint, "                                \
    "sum(cache_write_tokens)::bigint, sum(output_tokens)::bigint, "                                \
    "sum(reasoning_tokens)::bigint"
#define IN_RANGE(col) col " >= $1::timestamptz AND " col " < $2::timestamptz"
#define GROUPS_LIMIT " LIMIT " STR(API_MAX_GROUPS) " + 1"

enum api_kind { API_CONVERSATION, API_LEDGER, API_COSTS };
enum group_by { G_MODEL, G_DAY, G_CONVERSATION };

static const char *const group_names[] = {"model", "day", "conversation"};

/* One request being answered. */
struct api_req {
    struct conn *c;
    struct store_op *op;
    enum api_kind kind;
    bool head;
    char id[33];              /* conversation endpoints */
    enum group_by group;      /* /v1/costs ... */
    int64_t from_day, to_day; /* ... days since 1970-01-01 (UTC), both included */
};

/* ---- statements ---- */

/* clang-format off: one SQL clause per line reads better than a reflow */
static const char sql_conversation[] =
    "SELECT user_sub, to_char(created_at AT TIME ZONE 'UTC', " ISO_MS "), "
    "       to_char(updated_at AT TIME ZONE 'UTC', " ISO_MS ") "
    "FROM conversations WHERE id = $1";

static const char sql_messages[] =
    "SELECT turn_id, ordinal, role, content, to_char(created_at AT TIME ZONE 'UTC', " ISO_MS ") "
    "FROM messages WHERE conversation_id = $1 "
    "ORDER BY created_at, turn_id, ordinal";

static const char sql_turns[] =
    "SELECT id, to_char(started_at AT TIME ZONE 'UTC', " ISO_MS "), client_msg_id, "
    "       finish_reason, coalesce(array_length(delta_ends, 1), 0), answer_bytes, "
    "       first_token_ms, total_ms, " TOKEN_COLS ", cost_micros, currency, usd_to_inr_micros "
    "FROM turns WHERE conversation_id = $1 "
    "ORDER BY started_at, id";

static const char sql_calls[] =
    "SELECT turn_id, ordinal, provider, model, tier, attempt, role, status, error, http_status, "
    "       " TOKEN_COLS ", usage_reported, ttft_ms, duration_ms, cost_micros, deployment "
    "FROM llm_calls WHERE conversation_id = $1 "
    "ORDER BY started_at, turn_id, ordinal";

static const char sql_tools[] =
    "SELECT turn_id, ordinal, name, arguments::text, result_bytes, cache_hit, duration_ms, "
    "       status, cost_micros "
    "FROM tool_calls WHERE conversation_id = $1 "
    "ORDER BY started_at, turn_id, ordinal";

static const char sql_exists[] = "SELECT 1 FROM conversations WHERE id = $1";

static const char sql_ledger[] =
    "SELECT t.id, to_char(t.started_at AT TIME ZONE 'UTC', " ISO_MS "), t.currency, "
    "       t.cost_micros, l.line, l.kind, l.description, l.provider, l.model, "
    "       l.amount_micros, l.currency, l.usd_to_inr_micros, l.cache_layer, l.tier, "
    "       l.deployment "
    "FROM turns t "
    "LEFT JOIN ledger l ON l.turn_id = t.id AND l.created_at = t.started_at "
    "WHERE t.conversation_id = $1 "
    "ORDER BY t.started_at, t.id, l.line";

/* Cost reports: key columns, then currency, count, the five token sums, the cost. */
static const char sql_by_model[] =
    "SELECT provider, model, currency, count(*), " TOKEN_SUMS ", sum(cost_micros)::bigint "
    "FROM (SELECT provider, model, currency, " TOKEN_COLS ", cost_micros "
    "      FROM llm_calls WHERE " IN_RANGE(
        "started_at") " "
                      "      UNION ALL "
                      "      SELECT 'tool', tc.name, t.currency, 0, 0, 0, 0, 0, tc.cost_micros "
                      "      FROM tool_calls tc "
                      "      JOIN turns t ON t.id = tc.turn_id AND t.started_at = tc.started_at "
                      "      WHERE " IN_RANGE(
                          "tc.started_at") ") x "
                                           "GROUP BY provider, model, currency "
                                           "ORDER BY provider, model, currency" GROUPS_LIMIT;

static const char sql_by_day[] =
    "SELECT to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), currency, count(*), "
    "       " TOKEN_SUMS ", sum(cost_micros)::bigint "
    "FROM turns WHERE " IN_RANGE("started_at") " "
                                               "GROUP BY 1, 2 ORDER BY 1, 2" GROUPS_LIMIT;

static const char sql_by_conversation[] =
    "SELECT conversation_id, currency, count(*), " TOKEN_SUMS ", sum(cost_micros)::bigint "
    "FROM turns WHERE " IN_RANGE(
        "started_at") " "
                      "GROUP BY 1, 2 ORDER BY sum(cost_micros) DESC, 1, 2" GROUPS_LIMIT;

/* What the cache layers saved (cache_saving ledger lines, negative amounts): layer, currency,
 * hits, the saving as a positive number. */
static const char sql_cost_savings[] =
    "SELECT cache_layer, currency, count(*), (-sum(amount_micros))::bigint "
    "FROM ledger WHERE kind = 'cache_saving' AND " IN_RANGE(
        "created_at") " "
                      "GROUP BY 1, 2 ORDER BY 1, 2";

static const char sql_cost_totals[] =
    "SELECT currency, count(*), " TOKEN_SUMS ", sum(cost_micros)::bigint "
    "FROM turns WHERE " IN_RANGE("started_at") " "
                                               "GROUP BY currency ORDER BY currency";
/* clang-format on */

/* ---- replies ---- */

static void reply(struct conn *c, bool head, int status, struct buf *body, const char *extra)
{
    /* HEAD: the same status and headers, no body */
    conn_http_reply(c, status, "application/json; charset=utf-8", head ? NULL : buf_begin(body),
                    head ? 0 : buf_size(body), extra);
}

static void reply_error(struct conn *c, bool head, int status, const char *code,
                        const char *message, const char *extra)
{
    struct buf b = {0};
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj_begin(&w);
    jw_kstr(&w, "error", code);
    jw_kstr(&w, "message", message);
    jw_obj_end(&w);
    buf_append(&b, "\n", 1);
    reply(c, head, status, &b, extra);
    buf_free(&b);
}

/* ---- checks ---- */

static bool method_is(const struct http_request *req, const char *m)
{
    return req->method_len == strlen(m) && memcmp(req->method, m, req->method_len) == 0;
}

/* 0 when the request carries the admin token, -ENOENT when it carries no bearer token, -EACCES
 * when it carries another one. Both sides are hashed first, so the comparison takes the same
 * time whatever the lengths and contents. */
static int check_token(const struct http_request *req, const char *admin_token)
{
    const struct http_header *h = http_find_header(req, "Authorization");
    if (!h || h->value_len <= 7 || strncasecmp(h->value, "Bearer ", 7) != 0)
        return -ENOENT;
    unsigned char got[SHA256_DIGEST_LENGTH], want[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)h->value + 7, h->value_len - 7, got);
    SHA256((const unsigned char *)admin_token, strlen(admin_token), want);
    return CRYPTO_memcmp(got, want, sizeof(got)) == 0 ? 0 : -EACCES;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int64_t)era * 146097 + doe - 719468;
}

/* See api_int.h. */
int store_api_parse_date(const char *s, int64_t *day)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return -1;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] + (m == 2 && leap))
        return -1;
    *day = days_from_civil(y, m, d);
    return 0;
}

/* See api_int.h. */
int store_api_date_param(const char *name, const char *val, int64_t *day, char *msg, size_t cap)
{
    if (store_api_parse_date(val, day) == 0)
        return 0;
    snprintf(msg, cap, "bad value for '%s': expected a date YYYY-MM-DD (UTC)", name);
    return -1;
}

/* See api_int.h. */
void store_api_format_day(int64_t day, const char *fmt, char *out, size_t cap)
{
    time_t t = (time_t)(day * 86400);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, fmt, &tm);
}

/* One parameter of /v1/costs into a, from its percent-decoded value. Returns 0 or -1 with msg. */
static int costs_param(struct api_req *a, const char *name, const char *val, char *msg, size_t cap)
{
    if (strcmp(name, "group_by") == 0) {
        for (int g = 0; g < 3; g++)
            if (strcmp(val, group_names[g]) == 0) {
                a->group = (enum group_by)g;
                return 0;
            }
        snprintf(msg, cap, "bad value for 'group_by': expected model, day or conversation");
        return -1;
    }
    return store_api_date_param(name, val, strcmp(name, "from") == 0 ? &a->from_day : &a->to_day,
                                msg, cap);
}

/* See api_int.h. */
int store_api_params(const struct http_request *req, const char *const *names, int n, bool *seen,
                     store_api_param_fn fn, void *ctx, char *msg, size_t cap)
{
    const char *q = req->query ? req->query : "", *end = q + (req->query ? req->query_len : 0);
    for (int k = 0; k < n; k++)
        seen[k] = false;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *seg_end = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(seg_end - q));
        size_t nlen = (size_t)((eq ? eq : seg_end) - q);
        int k = 0;
        while (k < n && !(strlen(names[k]) == nlen && memcmp(names[k], q, nlen) == 0))
            k++;
        if (nlen && k == n) {
            char expected[128] = "";
            for (int i = 0; i < n; i++)
                snprintf(expected + strlen(expected), sizeof(expected) - strlen(expected), "%s%s",
                         i ? ", " : "", names[i]);
            snprintf(msg, cap, "unknown parameter '%.*s' (expected %s)",
                     (int)(nlen > 40 ? 40 : nlen), q, expected);
            return 400;
        }
        if (nlen && seen[k]) {
            snprintf(msg, cap, "parameter '%s' given more than once", names[k]);
            return 400;
        }
        if (nlen) {
            char val[64];
            seen[k] = true;
            int vn = http_query_param(req->query, req->query_len, names[k], val, sizeof(val));
            if (vn < 0) {
                snprintf(msg, cap, "bad value for '%s'", names[k]);
                return 400;
            }
            if (fn(ctx, k, val, msg, cap) < 0)
                return 400;
        }
        q = amp ? amp + 1 : end;
    }
    return 0;
}

/* See api_int.h. */
int store_api_day_range(bool seen_from, bool seen_to, int default_days, int64_t *from_day,
                        int64_t *to_day, char *msg, size_t cap)
{
    if (!seen_to)
        *to_day = (int64_t)(time(NULL) / 86400);
    if (!seen_from)
        *from_day = *to_day - (default_days - 1);
    if (*from_day > *to_day) {
        snprintf(msg, cap, "'from' is after 'to': the range is empty");
        return 400;
    }
    return 0;
}

static int costs_param_k(void *ctx, int k, const char *val, char *msg, size_t cap)
{
    static const char *const names[] = {"from", "to", "group_by"};
    return costs_param(ctx, names[k], val, msg, cap);
}

/* Parameters of /v1/costs: from, to (UTC dates, both included) and group_by; each at most once,
 * nothing else. Returns 0, or 400 with msg. */
static int parse_costs(const struct http_request *req, struct api_req *a, char *msg, size_t cap)
{
    static const char *const names[] = {"from", "to", "group_by"};
    bool seen[3];
    a->group = G_DAY;
    int rc = store_api_params(req, names, 3, seen, costs_param_k, a, msg, cap);
    return rc ? rc
              : store_api_day_range(seen[0], seen[1], API_DEFAULT_DAYS, &a->from_day, &a->to_day,
                                    msg, cap);
}

/* Which endpoint: fills a; returns 0, or 404 / 400 with msg. */
static int route(const struct http_request *req, struct api_req *a, char *msg, size_t cap)
{
    const char *p = req->path + 4; /* after "/v1/" */
    size_t n = req->path_len - 4;
    static const char conv[] = "conversations/", ledger[] = "/ledger";
    if (n == 5 && memcmp(p, "costs", 5) == 0) {
        a->kind = API_COSTS;
        return parse_costs(req, a, msg, cap);
    }
    if (n > sizeof(conv) - 1 && memcmp(p, conv, sizeof(conv) - 1) == 0) {
        p += sizeof(conv) - 1;
        n -= sizeof(conv) - 1;
        bool is_ledger = n == 32 + sizeof(ledger) - 1 && memcmp(p + 32, ledger, n - 32) == 0;
        if ((n == 32 || is_ledger) && store_id_valid(p, 32)) {
            a->kind = is_ledger ? API_LEDGER : API_CONVERSATION;
            memcpy(a->id, p, 32);
            a->id[32] = '\0';
            return 0;
        }
        snprintf(msg, cap, "no such conversation");
        return 404;
    }
    snprintf(msg, cap, "no such path");
    return 404;
}

/* ---- reading rows ---- */

static const char *col(const PGresult *r, int row, int c)
{
    return PQgetvalue(r, row, c);
}

static int64_t col_i64(const PGresult *r, int row, int c)
{
    return strtoll(PQgetvalue(r, row, c), NULL, 10);
}

static bool col_null(const PGresult *r, int row, int c)
{
    return PQgetisnull(r, row, c);
}

static void kcol_str(struct jsonw *w, const char *key, const PGresult *r, int row, int c)
{
    jw_key(w, key);
    if (col_null(r, row, c))
        jw_null(w);
    else
        jw_strn(w, col(r, row, c), (size_t)PQgetlength(r, row, c));
}

static void kcol_int(struct jsonw *w, const char *key, const PGresult *r, int row, int c)
{
    jw_key(w, key);
    if (col_null(r, row, c))
        jw_null(w);
    else
        jw_int(w, col_i64(r, row, c));
}

/* "usage": the five token columns starting at c. */
static void kcol_usage(struct jsonw *w, const PGresult *r, int row, int c)
{
    static const char *const names[] = {"input_tokens", "cached_input_tokens", "cache_write_tokens",
                                        "output_tokens", "reasoning_tokens"};
    jw_key(w, "usage");
    jw_obj_begin(w);
    for (int i = 0; i < 5; i++)
        jw_kint(w, names[i], col_null(r, row, c + i) ? 0 : col_i64(r, row, c + i));
    jw_obj_end(w);
}

/* The exchange rate (micro-INR per USD) as an exact decimal number: 84000000 -> 84. */
static void kcol_rate(struct jsonw *w, const char *key, const PGresult *r, int row, int c)
{
    int64_t v = col_i64(r, row, c);
    char s[48];
    int n =
        snprintf(s, sizeof(s), "%lld.%06lld", (long long)(v / 1000000), (long long)(v % 1000000));
    while (s[n - 1] == '0')
        n--;
    if (s[n - 1] == '.')
        n--;
    jw_key(w, key);
    jw_raw(w, s, (size_t)n);
}

/* The results of a request are what was asked: nstmts statements after the prelude, each a
 * row set with ncols[i] columns. */
static bool shape_ok(const struct pg_result *res, int nstmts, const int *ncols)
{
    if (res->nrows != (uint32_t)(API_PRELUDE + nstmts))
        return false;
    for (int i = 0; i < nstmts; i++) {
        const PGresult *r = res->rows[API_PRELUDE + i];
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != ncols[i])
            return false;
    }
    return true;
}

/* ---- totals by currency ---- */

struct totals {
    struct {
        char currency[8];
        int64_t turns, lines, cost;
        int64_t usage[5];
    } t[4];
    int n;
};

static int totals_slot(struct totals *t, const char *currency)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->t[i].currency, currency) == 0)
            return i;
    if (t->n == 4)
        return 3; /* the schema allows two currencies */
    snprintf(t->t[t->n].currency, sizeof(t->t[t->n].currency), "%s", currency);
    return t->n++;
}

static void write_totals(struct jsonw *w, const struct totals *t, bool lines, bool usage)
{
    static const char *const names[] = {"input_tokens", "cached_input_tokens", "cache_write_tokens",
                                        "output_tokens", "reasoning_tokens"};
    jw_key(w, "totals");
    jw_arr_begin(w);
    for (int i = 0; i < t->n; i++) {
        jw_obj_begin(w);
        jw_kstr(w, "currency", t->t[i].currency);
        jw_kint(w, "turns", t->t[i].turns);
        if (lines)
            jw_kint(w, "lines", t->t[i].lines);
        if (usage) {
            jw_key(w, "usage");
            jw_obj_begin(w);
            for (int k = 0; k < 5; k++)
                jw_kint(w, names[k], t->t[i].usage[k]);
            jw_obj_end(w);
        }
        jw_kint(w, "cost_micros", t->t[i].cost);
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

/* ---- GET /v1/conversations/{id} ---- */

static void add_conversation_stmts(struct pg_query *q, const char *id)
{
    const char *const sqls[] = {sql_conversation, sql_messages, sql_turns, sql_calls, sql_tools};
    for (size_t i = 0; i < sizeof(sqls) / sizeof(sqls[0]); i++) {
        pg_query_sql(q, sqls[i]);
        pg_query_param_str(q, id);
    }
}

static void write_messages(struct jsonw *w, const PGresult *m)
{
    jw_key(w, "messages");
    jw_arr_begin(w);
    for (int i = 0; i < PQntuples(m); i++) {
        jw_obj_begin(w);
        kcol_str(w, "turn_id", m, i, 0);
        kcol_int(w, "ordinal", m, i, 1);
        kcol_str(w, "role", m, i, 2);
        kcol_str(w, "content", m, i, 3);
        kcol_str(w, "created_at", m, i, 4);
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

static void write_call(struct jsonw *w, const PGresult *c, int i)
{
    jw_obj_begin(w);
    kcol_int(w, "ordinal", c, i, 1);
    kcol_str(w, "provider", c, i, 2);
    kcol_str(w, "model", c, i, 3);
    kcol_str(w, "tier", c, i, 4);
    kcol_int(w, "attempt", c, i, 5);
    kcol_str(w, "role", c, i, 6);
    kcol_str(w, "status", c, i, 7);
    kcol_str(w, "error", c, i, 8);
    kcol_int(w, "http_status", c, i, 9);
    kcol_usage(w, c, i, 10);
    jw_kbool(w, "usage_reported", col(c, i, 15)[0] == 't');
    kcol_int(w, "ttft_ms", c, i, 16);
    kcol_int(w, "duration_ms", c, i, 17);
    kcol_int(w, "cost_micros", c, i, 18);
    kcol_str(w, "deployment", c, i, 19); /* null unless tier provisioned */
    jw_obj_end(w);
}

static void write_tool(struct jsonw *w, const PGresult *t, int i)
{
    jw_obj_begin(w);
    kcol_int(w, "ordinal", t, i, 1);
    kcol_str(w, "name", t, i, 2);
    jw_key(w, "arguments");
    jw_raw(w, col(t, i, 3), (size_t)PQgetlength(t, i, 3)); /* jsonb as text: valid JSON */
    kcol_int(w, "result_bytes", t, i, 4);
    jw_kbool(w, "cache_hit", col(t, i, 5)[0] == 't');
    kcol_int(w, "duration_ms", t, i, 6);
    kcol_str(w, "status", t, i, 7);
    kcol_int(w, "cost_micros", t, i, 8);
    jw_obj_end(w);
}

/* The rows of `child` (ordered like the turns, by start time then turn id) that belong to
 * turn id, from *at on. */
static void write_children(struct jsonw *w, const char *key, const PGresult *child, int *at,
                           const char *id, void (*one)(struct jsonw *, const PGresult *, int))
{
    jw_key(w, key);
    jw_arr_begin(w);
    for (; *at < PQntuples(child) && strcmp(col(child, *at, 0), id) == 0; (*at)++)
        one(w, child, *at);
    jw_arr_end(w);
}

static void write_turn(struct jsonw *w, const PGresult *t, int i, const PGresult *calls, int *ci,
                       const PGresult *tools, int *ti)
{
    jw_obj_begin(w);
    kcol_str(w, "id", t, i, 0);
    kcol_str(w, "started_at", t, i, 1);
    kcol_str(w, "client_msg_id", t, i, 2);
    kcol_str(w, "finish_reason", t, i, 3);
    kcol_int(w, "deltas", t, i, 4);
    kcol_int(w, "answer_bytes", t, i, 5);
    kcol_usage(w, t, i, 8);
    kcol_int(w, "cost_micros", t, i, 13);
    kcol_str(w, "currency", t, i, 14);
    kcol_rate(w, "usd_to_inr", t, i, 15);
    jw_key(w, "latency_ms");
    jw_obj_begin(w);
    kcol_int(w, "first_token", t, i, 6);
    kcol_int(w, "total", t, i, 7);
    jw_obj_end(w);
    write_children(w, "llm_calls", calls, ci, col(t, i, 0), write_call);
    write_children(w, "tool_calls", tools, ti, col(t, i, 0), write_tool);
    jw_obj_end(w);
}

static int write_conversation(const struct api_req *a, const struct pg_result *res, struct jsonw *w)
{
    static const int ncols[] = {3, 5, 16, 20, 9};
    if (!shape_ok(res, 5, ncols))
        return 500;
    PGresult *const *r = res->rows + API_PRELUDE;
    if (PQntuples(r[0]) != 1)
        return 404;
    const PGresult *turns = r[2];
    struct totals tot = {.n = 0};
    jw_obj_begin(w);
    jw_kstr(w, "id", a->id);
    kcol_str(w, "owner", r[0], 0, 0);
    kcol_str(w, "created_at", r[0], 0, 1);
    kcol_str(w, "updated_at", r[0], 0, 2);
    write_messages(w, r[1]);
    jw_key(w, "turns");
    jw_arr_begin(w);
    int ci = 0, ti = 0;
    for (int i = 0; i < PQntuples(turns); i++) {
        write_turn(w, turns, i, r[3], &ci, r[4], &ti);
        int s = totals_slot(&tot, col(turns, i, 14));
        tot.t[s].turns++;
        tot.t[s].cost += col_i64(turns, i, 13);
        for (int k = 0; k < 5; k++)
            tot.t[s].usage[k] += col_i64(turns, i, 8 + k);
    }
    jw_arr_end(w);
    write_totals(w, &tot, false, true);
    jw_obj_end(w);
    return 200;
}

/* ---- GET /v1/conversations/{id}/ledger ---- */

static void write_line(struct jsonw *w, const PGresult *l, int i)
{
    jw_obj_begin(w);
    kcol_int(w, "line", l, i, 4);
    kcol_str(w, "kind", l, i, 5);
    kcol_str(w, "description", l, i, 6);
    kcol_str(w, "provider", l, i, 7);
    kcol_str(w, "model", l, i, 8);
    kcol_int(w, "amount_micros", l, i, 9);
    kcol_str(w, "currency", l, i, 10);
    kcol_rate(w, "usd_to_inr", l, i, 11);
    if (!col_null(l, i, 12))
        kcol_str(w, "cache_layer", l, i, 12);
    kcol_str(w, "tier", l, i, 13);
    if (!col_null(l, i, 14))
        kcol_str(w, "deployment", l, i, 14);
    jw_obj_end(w);
}

/* One turn and its lines (rows i.. with the same turn id); returns the next turn's row. */
static int write_ledger_turn(struct jsonw *w, const PGresult *l, int i, struct totals *tot)
{
    const char *id = col(l, i, 0);
    int64_t sum = 0, saved = 0, lines = 0;
    jw_obj_begin(w);
    kcol_str(w, "turn_id", l, i, 0);
    kcol_str(w, "started_at", l, i, 1);
    kcol_str(w, "currency", l, i, 2);
    kcol_int(w, "cost_micros", l, i, 3);
    jw_key(w, "lines");
    jw_arr_begin(w);
    int j = i;
    for (; j < PQntuples(l) && strcmp(col(l, j, 0), id) == 0; j++) {
        if (col_null(l, j, 4))
            continue; /* a turn without lines (LEFT JOIN) */
        write_line(w, l, j);
        /* a cache saving is a line of its own, never part of what the turn cost */
        if (strcmp(col(l, j, 5), "cache_saving") == 0)
            saved -= col_i64(l, j, 9);
        else
            sum += col_i64(l, j, 9);
        lines++;
    }
    jw_arr_end(w);
    jw_kint(w, "total_micros", sum);
    if (saved)
        jw_kint(w, "saved_micros", saved);
    jw_obj_end(w);
    int s = totals_slot(tot, col(l, i, 2));
    tot->t[s].turns++;
    tot->t[s].lines += lines;
    tot->t[s].cost += sum;
    return j;
}

static int write_ledger(const struct api_req *a, const struct pg_result *res, struct jsonw *w)
{
    static const int ncols[] = {1, 15};
    if (!shape_ok(res, 2, ncols))
        return 500;
    PGresult *const *r = res->rows + API_PRELUDE;
    if (PQntuples(r[0]) != 1)
        return 404;
    struct totals tot = {.n = 0};
    jw_obj_begin(w);
    jw_kstr(w, "conversation_id", a->id);
    jw_key(w, "turns");
    jw_arr_begin(w);
    for (int i = 0; i < PQntuples(r[1]);)
        i = write_ledger_turn(w, r[1], i, &tot);
    jw_arr_end(w);
    write_totals(w, &tot, true, false);
    jw_obj_end(w);
    return 200;
}

/* ---- GET /v1/costs ---- */

static void add_costs_stmts(struct pg_query *q, const struct api_req *a)
{
    const char *sql = a->group == G_MODEL ? sql_by_model
                      : a->group == G_DAY ? sql_by_day
                                          : sql_by_conversation;
    char from[40], to[40];
    store_api_format_day(a->from_day, "%Y-%m-%d 00:00:00+00", from, sizeof(from));
    store_api_format_day(a->to_day + 1, "%Y-%m-%d 00:00:00+00", to, sizeof(to));
    const char *const sqls[] = {sql, sql_cost_totals, sql_cost_savings};
    for (int i = 0; i < 3; i++) {
        pg_query_sql(q, sqls[i]);
        pg_query_param_str(q, from);
        pg_query_param_str(q, to);
    }
    store_api_provisioned_stmt(q, a->from_day, a->to_day);
}

static void write_group(struct jsonw *w, const PGresult *g, int i, enum group_by group)
{
    int k = group == G_MODEL ? 2 : 1; /* key columns */
    jw_obj_begin(w);
    if (group == G_MODEL) {
        kcol_str(w, "provider", g, i, 0);
        kcol_str(w, "model", g, i, 1);
    } else {
        kcol_str(w, group == G_DAY ? "day" : "conversation_id", g, i, 0);
    }
    kcol_str(w, "currency", g, i, k);
    kcol_int(w, group == G_MODEL ? "calls" : "turns", g, i, k + 1);
    kcol_usage(w, g, i, k + 2);
    kcol_int(w, "cost_micros", g, i, k + 7);
    jw_obj_end(w);
}

/* "savings": per cache layer and currency, what its hits saved (docs/caching.md). */
static void write_savings(struct jsonw *w, const PGresult *s)
{
    jw_key(w, "savings");
    jw_arr_begin(w);
    for (int i = 0; i < PQntuples(s); i++) {
        jw_obj_begin(w);
        kcol_str(w, "layer", s, i, 0);
        kcol_str(w, "currency", s, i, 1);
        kcol_int(w, "hits", s, i, 2);
        kcol_int(w, "saved_micros", s, i, 3);
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

static int write_costs(const struct api_req *a, const struct pg_result *res, struct jsonw *w)
{
    const int ncols[] = {a->group == G_MODEL ? 10 : 9, 8, 4, STORE_API_PROVISIONED_COLS};
    if (!shape_ok(res, 4, ncols))
        return 500;
    PGresult *const *r = res->rows + API_PRELUDE;
    char day[16];
    jw_obj_begin(w);
    store_api_format_day(a->from_day, "%Y-%m-%d", day, sizeof(day));
    jw_kstr(w, "from", day);
    store_api_format_day(a->to_day, "%Y-%m-%d", day, sizeof(day));
    jw_kstr(w, "to", day);
    jw_kstr(w, "group_by", group_names[a->group]);
    int n = PQntuples(r[0]);
    jw_key(w, "groups");
    jw_arr_begin(w);
    for (int i = 0; i < n && i < API_MAX_GROUPS; i++)
        write_group(w, r[0], i, a->group);
    jw_arr_end(w);
    jw_kbool(w, "truncated", n > API_MAX_GROUPS);
    struct totals tot = {.n = 0};
    for (int i = 0; i < PQntuples(r[1]); i++) {
        int s = totals_slot(&tot, col(r[1], i, 0));
        tot.t[s].turns += col_i64(r[1], i, 1);
        for (int k = 0; k < 5; k++)
            tot.t[s].usage[k] += col_i64(r[1], i, 2 + k);
        tot.t[s].cost += col_i64(r[1], i, 7);
    }
    write_totals(w, &tot, false, true);
    write_savings(w, r[2]);
    store_api_write_provisioned(w, r[3]);
    jw_obj_end(w);
    return 200;
}

/* ---- the deferred answer ---- */

/* A failed request: 503 when PostgreSQL is away or the failure is a passing one (the statement
 * timeout included), 500 otherwise (logged: a bug). See api_int.h. */
void store_api_db_error(struct conn *c, bool head, const struct pg_result *res)
{
    if (res->status == PG_DOWN) {
        reply_error(c, head, 503, "unavailable", "the database is unavailable",
                    "Retry-After: 1\r\n");
    } else if (strcmp(res->sqlstate, "57014") == 0) {
        reply_error(c, head, 503, "unavailable", "the query took too long (narrow the date range)",
                    NULL);
    } else if (pg_error_transient(res->sqlstate)) {
        reply_error(c, head, 503, "unavailable", "the database is unavailable",
                    "Retry-After: 1\r\n");
    } else {
        log_error("store api: a read failed: %s (SQLSTATE %s)", res->message, res->sqlstate);
        reply_error(c, head, 500, "internal", "the read failed", NULL);
    }
}

/* Replies in the API's style for the sub-APIs' files; see api_int.h. */
void store_api_reply(struct conn *c, bool head, int status, struct buf *body, const char *extra)
{
    reply(c, head, status, body, extra);
}

void store_api_error(struct conn *c, bool head, int status, const char *code, const char *message,
                     const char *extra)
{
    reply_error(c, head, status, code, message, extra);
}

/* See api_int.h. */
bool store_api_get_or_head(struct conn *c, const struct http_request *req, bool *head)
{
    *head = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
    if (*head || (req->method_len == 3 && memcmp(req->method, "GET", 3) == 0))
        return true;
    store_api_error(c, false, 405, "method_not_allowed", "only GET and HEAD are served here",
                    "Allow: GET, HEAD\r\n");
    return false;
}

/* See api_int.h. */
void store_api_drop_read(struct store *st, struct conn *c, store_query_fn qfn)
{
    for (struct store_op *op = st ? st->ops : NULL; op; op = op->next) {
        if (op->qfn == qfn && *(struct conn **)op->ctx == c) {
            void *ctx = op->ctx;
            store_cancel(op);
            xfree(ctx);
            return;
        }
    }
}

int store_api_text_param(const struct http_request *req, const char *name, char *out, size_t outcap)
{
    if (!req->query)
        return -1;
    int n = http_query_param(req->query, req->query_len, name, out, outcap);
    if (n > 0 && !utf8_valid((const uint8_t *)out, (size_t)n))
        return -2;
    return n;
}

static void on_result(void *ctx, const struct pg_result *res)
{
    struct api_req *a = ctx;
    if (res->status != PG_OK) {
        store_api_db_error(a->c, a->head, res);
        xfree(a);
        return;
    }
    struct buf body = {0};
    struct jsonw w;
    jw_init(&w, &body);
    int status = a->kind == API_CONVERSATION ? write_conversation(a, res, &w)
                 : a->kind == API_LEDGER     ? write_ledger(a, res, &w)
                                             : write_costs(a, res, &w);
    if (status == 200) {
        buf_append(&body, "\n", 1);
        reply(a->c, a->head, 200, &body, NULL);
    } else if (status == 404) {
        reply_error(a->c, a->head, 404, "not_found", "no such conversation", NULL);
    } else {
        log_error("store api: unexpected result shape");
        reply_error(a->c, a->head, 500, "internal", "unexpected result shape", NULL);
    }
    buf_free(&body);
    xfree(a);
}

static void start_read(struct store *st, const struct api_req *req)
{
    struct api_req *a = xmalloc(sizeof(*a));
    *a = *req;
    struct pg_query q;
    pg_query_init(&q);
    /* one snapshot for every statement of the answer; a bound on how long it may take */
    pg_query_sql(&q, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    pg_query_sql(&q, "SET LOCAL statement_timeout = " STR(API_STATEMENT_TIMEOUT_MS));
    if (a->kind == API_CONVERSATION) {
        add_conversation_stmts(&q, a->id);
    } else if (a->kind == API_LEDGER) {
        pg_query_sql(&q, sql_exists);
        pg_query_param_str(&q, a->id);
        pg_query_sql(&q, sql_ledger);
        pg_query_param_str(&q, a->id);
    } else {
        add_costs_stmts(&q, a);
    }
    conn_http_defer(a->c);
    a->op = store_query(st, &q, true, on_result, a);
    pg_query_free(&q);
}

/* ---- public ---- */

/* The endpoints kept in files of their own (api_int.h): each serves its paths or says no. */
static const struct store_api_sub *const subs[] = {
    &store_api_trace, &store_api_admin, &store_api_evals, &store_api_traffic, &store_api_capacity};

/* Serve a request under /v1/; see api.h. Answers at once (API off, auth, method, route,
 * parameters, no database) or defers the answer until the read completes. */
bool store_api_request(struct store *st, struct conn *c, const struct http_request *req,
                       const char *body, size_t len, const char *admin_token)
{
    if (req->path_len < 4 || memcmp(req->path, "/v1/", 4) != 0)
        return false;
    bool head = method_is(req, "HEAD");
    if (!admin_token || !admin_token[0]) {
        reply_error(c, head, 404, "not_found", "no such path", NULL);
        return true;
    }
    int auth = check_token(req, admin_token);
    if (auth < 0) {
        reply_error(
            c, head, 401, "unauthorized",
            auth == -ENOENT ? "this API needs Authorization: Bearer <admin token>"
                            : "wrong admin token",
            auth == -ENOENT
                ? "WWW-Authenticate: Bearer realm=\"trilemma\"\r\n"
                : "WWW-Authenticate: Bearer realm=\"trilemma\", error=\"invalid_token\"\r\n");
        return true;
    }
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
        if (subs[i]->request(st, c, req, body, len))
            return true;
    if (!head && !method_is(req, "GET")) {
        reply_error(c, false, 405, "method_not_allowed", "only GET and HEAD are served here",
                    "Allow: GET, HEAD\r\n");
        return true;
    }
    struct api_req a = {.c = c, .head = head};
    char msg[160];
    int status = route(req, &a, msg, sizeof(msg));
    if (status) {
        reply_error(c, head, status, status == 404 ? "not_found" : "bad_request", msg, NULL);
        return true;
    }
    if (!st) {
        reply_error(c, head, 503, "unavailable", "no database is configured", NULL);
        return true;
    }
    start_read(st, &a);
    return true;
}

/* The client of a deferred answer left: cancel its read; see api.h. */
void store_api_abort(struct store *st, struct conn *c)
{
    if (!st)
        return;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
        subs[i]->abort(st, c);
    for (struct store_op *op = st->ops; op; op = op->next) {
        struct api_req *a = op->ctx;
        if (op->qfn == on_result && a->c == c) {
            log_debug("store api: the client left before the answer: read dropped");
            store_cancel(op);
            xfree(a);
            return;
        }
    }
}
