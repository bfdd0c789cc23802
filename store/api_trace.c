/* api_trace.c - the trace read API (api_int.h, docs/protocol.md), behind the admin token:
 *
 *   GET /v1/turns/{id}/trace            one turn: its outcome, flags and spans
 *   GET /v1/conversations/{id}/trace    every turn of a conversation, in order
 *   GET /v1/flags?from=&to=&kind=       flagged turns: counts, counts per day, the newest 500
 *
 * As in api.c: the statements of one answer go out as one request on the worker's reader
 * connection inside a READ ONLY, REPEATABLE READ transaction with a statement timeout, the
 * answer is deferred until the rows are in, and what the client sent is only ever a parameter.
 * A turn whose trace was not kept (capture off, sampled out) is answered with no spans,
 * "trace_id": null and "capture": "off". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/log.h"
#include "base/mem.h"
#include "store/api_int.h"
#include "store/store_int.h"
#include "stream/jsonw.h"

#define TRACE_STATEMENT_TIMEOUT_MS 5000
#define FLAGS_LIST_MAX 500
#define FLAGS_DEFAULT_DAYS 30
#define STR_(x) #x
#define STR(x) STR_(x)
/* RFC 3339 UTC with microseconds */
#define ISO_US "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'"

enum { TRACE_PRELUDE = 2 };
enum trace_kind { T_TURN, T_CONVERSATION, T_FLAGS };

struct trace_req {
    struct conn *c;
    struct store_op *op;
    enum trace_kind kind;
    bool head;
    char id[33];
    int64_t from_day, to_day; /* /v1/flags: days since 1970-01-01, both included */
    char flag[40];            /* "" = every kind */
};

/* clang-format off */
#define TURN_COLS                                                                                  \
    "SELECT t.id, t.conversation_id, c.user_sub, "                                                 \
    "       to_char(t.started_at AT TIME ZONE 'UTC', " ISO_US "), t.query_type, t.agent, "         \
    "       array_to_json(t.flags)::text, t.finish_reason "                                        \
    "FROM turns t JOIN conversations c ON c.id = t.conversation_id "
#define SPAN_COLS                                                                                  \
    "SELECT s.turn_id, s.trace_id, s.span_id, s.parent_span_id, s.name, s.kind, s.start_us, "      \
    "       s.end_us, s.status, s.status_message, s.attributes::text, s.events::text "             \
    "FROM spans s JOIN turns t ON t.id = s.turn_id AND t.started_at = s.started_at "

static const char sql_turn[] = TURN_COLS "WHERE t.id = $1";
static const char sql_turn_spans[] = SPAN_COLS "WHERE s.turn_id = $1 ORDER BY s.start_us, s.span_id";
static const char sql_conv[] = "SELECT user_sub FROM conversations WHERE id = $1";
static const char sql_conv_turns[] = TURN_COLS "WHERE t.conversation_id = $1 "
                                               "ORDER BY t.started_at, t.id";
static const char sql_conv_spans[] = SPAN_COLS "WHERE s.conversation_id = $1 "
                                               "ORDER BY t.started_at, t.id, s.start_us, s.span_id";

#define FLAGGED                                                                                    \
    "FROM turns t, unnest(t.flags) AS f(flag) "                                                    \
    "WHERE t.started_at >= $1::timestamptz AND t.started_at < $2::timestamptz "                    \
    "  AND ($3::text IS NULL OR f.flag = $3 OR split_part(f.flag, ':', 1) = $3) "
static const char sql_flag_counts[] = "SELECT f.flag, count(*) " FLAGGED "GROUP BY 1 ORDER BY 1";
static const char sql_flag_days[] =
    "SELECT to_char(t.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), f.flag, count(*) " FLAGGED
    "GROUP BY 1, 2 ORDER BY 1, 2";
static const char sql_flag_list[] =
    "SELECT t.id, t.conversation_id, f.flag, to_char(t.started_at AT TIME ZONE 'UTC', " ISO_US ") "
    FLAGGED "ORDER BY t.started_at DESC, t.id, f.flag LIMIT " STR(FLAGS_LIST_MAX);
/* clang-format on */

/* ---- parameters ---- */

static bool flag_name_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n < 33 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_:") == n;
}

/* One parameter of /v1/flags. Returns 0, or -1 with msg. */
static int flags_param(void *ctx, int k, const char *val, char *msg, size_t cap)
{
    struct trace_req *a = ctx;
    if (k == 2) {
        if (!flag_name_ok(val)) {
            snprintf(msg, cap, "bad value for 'kind': expected a flag name (a-z, 0-9, _, :)");
            return -1;
        }
        snprintf(a->flag, sizeof(a->flag), "%s", val);
        return 0;
    }
    return store_api_date_param(k == 0 ? "from" : "to", val, k == 0 ? &a->from_day : &a->to_day,
                                msg, cap);
}

/* from, to (UTC dates, both included; default the 30 days ending today) and kind, each at most
 * once and nothing else. Returns 0 or 400 with msg. */
static int parse_flags(const struct http_request *req, struct trace_req *a, char *msg, size_t cap)
{
    static const char *const names[] = {"from", "to", "kind"};
    bool seen[3];
    int rc = store_api_params(req, names, 3, seen, flags_param, a, msg, cap);
    return rc ? rc
              : store_api_day_range(seen[0], seen[1], FLAGS_DEFAULT_DAYS, &a->from_day, &a->to_day,
                                    msg, cap);
}

/* Is req one of ours? Fills a: 0, -1 (not ours) or 404/400 with msg. */
static int route(const struct http_request *req, struct trace_req *a, char *msg, size_t cap)
{
    const char *p = req->path + 4; /* after "/v1/" */
    size_t n = req->path_len - 4;
    static const char turns[] = "turns/", convs[] = "conversations/", sfx[] = "/trace";
    const size_t sl = sizeof(sfx) - 1;
    if (n == 5 && memcmp(p, "flags", 5) == 0) {
        a->kind = T_FLAGS;
        return parse_flags(req, a, msg, cap);
    }
    bool is_turn = n > sizeof(turns) - 1 && memcmp(p, turns, sizeof(turns) - 1) == 0;
    bool is_conv = n > sizeof(convs) - 1 && memcmp(p, convs, sizeof(convs) - 1) == 0;
    if (!is_turn && !is_conv)
        return -1;
    size_t skip = is_turn ? sizeof(turns) - 1 : sizeof(convs) - 1;
    p += skip;
    n -= skip;
    if (n < sl || memcmp(p + n - sl, sfx, sl) != 0)
        return -1; /* another endpoint under the same prefix */
    if (n != 32 + sl || !store_id_valid(p, 32)) {
        snprintf(msg, cap, is_turn ? "no such turn" : "no such conversation");
        return 404;
    }
    a->kind = is_turn ? T_TURN : T_CONVERSATION;
    memcpy(a->id, p, 32);
    a->id[32] = '\0';
    return 0;
}

/* ---- answers ---- */

static const char *col(const PGresult *r, int row, int c)
{
    return PQgetvalue(r, row, c);
}

static void kstr_or_null(struct jsonw *w, const char *key, const PGresult *r, int row, int c)
{
    jw_key(w, key);
    if (PQgetisnull(r, row, c) || !col(r, row, c)[0])
        jw_null(w);
    else
        jw_strn(w, col(r, row, c), (size_t)PQgetlength(r, row, c));
}

static void write_span(struct jsonw *w, const PGresult *s, int i)
{
    jw_obj_begin(w);
    jw_kstr(w, "span_id", col(s, i, 2));
    kstr_or_null(w, "parent_span_id", s, i, 3);
    jw_kstr(w, "name", col(s, i, 4));
    jw_kstr(w, "kind", col(s, i, 5));
    jw_kint(w, "start_unix_us", strtoll(col(s, i, 6), NULL, 10));
    jw_kint(w, "end_unix_us", strtoll(col(s, i, 7), NULL, 10));
    jw_kstr(w, "status", col(s, i, 8));
    kstr_or_null(w, "status_message", s, i, 9);
    jw_key(w, "attributes");
    jw_raw(w, col(s, i, 10), (size_t)PQgetlength(s, i, 10)); /* jsonb as text: valid JSON */
    jw_key(w, "events");
    jw_raw(w, col(s, i, 11), (size_t)PQgetlength(s, i, 11));
    jw_obj_end(w);
}

/* The capture level recorded on the turn's root span ("off": no spans). */
static const char *capture_of(const PGresult *s, int from, int to)
{
    for (int i = from; i < to; i++)
        if (PQgetisnull(s, i, 3))
            return strstr(col(s, i, 10), "\"trilemma.capture\": \"full\"") ? "full" : "metadata";
    return from < to ? "metadata" : "off";
}

/* Turn row i of t and its spans (rows *si.. of s with its turn id). */
static void write_turn(struct jsonw *w, const PGresult *t, int i, const PGresult *s, int *si)
{
    int from = *si, to = from;
    while (to < PQntuples(s) && strcmp(col(s, to, 0), col(t, i, 0)) == 0)
        to++;
    const char *finish = col(t, i, 7);
    jw_obj_begin(w);
    jw_key(w, "trace_id");
    if (from < to)
        jw_str(w, col(s, from, 1));
    else
        jw_null(w);
    jw_kstr(w, "turn_id", col(t, i, 0));
    jw_kstr(w, "conversation_id", col(t, i, 1));
    kstr_or_null(w, "user", t, i, 2);
    jw_kstr(w, "started_at", col(t, i, 3));
    kstr_or_null(w, "query_type", t, i, 4);
    kstr_or_null(w, "agent", t, i, 5);
    jw_key(w, "flags");
    jw_raw(w, col(t, i, 6), (size_t)PQgetlength(t, i, 6));
    jw_kstr(w, "status",
            !strcmp(finish, "error")       ? "error"
            : !strcmp(finish, "cancelled") ? "cancelled"
                                           : "ok");
    jw_kstr(w, "finish_reason", finish);
    jw_kstr(w, "capture", capture_of(s, from, to));
    jw_key(w, "spans");
    jw_arr_begin(w);
    for (int k = from; k < to; k++)
        write_span(w, s, k);
    jw_arr_end(w);
    jw_obj_end(w);
    *si = to;
}

static bool shape_ok(const struct pg_result *res, int nstmts, const int *ncols)
{
    if (res->nrows != (uint32_t)(TRACE_PRELUDE + nstmts))
        return false;
    for (int i = 0; i < nstmts; i++) {
        const PGresult *r = res->rows[TRACE_PRELUDE + i];
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != ncols[i])
            return false;
    }
    return true;
}

static int write_turn_trace(const struct pg_result *res, struct jsonw *w)
{
    static const int ncols[] = {8, 12};
    if (!shape_ok(res, 2, ncols))
        return 500;
    PGresult *const *r = res->rows + TRACE_PRELUDE;
    if (PQntuples(r[0]) != 1)
        return 404;
    int si = 0;
    write_turn(w, r[0], 0, r[1], &si);
    return 200;
}

static int write_conv_trace(const struct trace_req *a, const struct pg_result *res, struct jsonw *w)
{
    static const int ncols[] = {1, 8, 12};
    if (!shape_ok(res, 3, ncols))
        return 500;
    PGresult *const *r = res->rows + TRACE_PRELUDE;
    if (PQntuples(r[0]) != 1)
        return 404;
    jw_obj_begin(w);
    jw_kstr(w, "conversation_id", a->id);
    kstr_or_null(w, "user", r[0], 0, 0);
    jw_key(w, "turns");
    jw_arr_begin(w);
    int si = 0;
    for (int i = 0; i < PQntuples(r[1]); i++)
        write_turn(w, r[1], i, r[2], &si);
    jw_arr_end(w);
    jw_obj_end(w);
    return 200;
}

static int write_flags(const struct trace_req *a, const struct pg_result *res, struct jsonw *w)
{
    static const int ncols[] = {2, 3, 4};
    if (!shape_ok(res, 3, ncols))
        return 500;
    PGresult *const *r = res->rows + TRACE_PRELUDE;
    char day[16];
    jw_obj_begin(w);
    store_api_format_day(a->from_day, "%Y-%m-%d", day, sizeof(day));
    jw_kstr(w, "from", day);
    store_api_format_day(a->to_day, "%Y-%m-%d", day, sizeof(day));
    jw_kstr(w, "to", day);
    jw_key(w, "counts");
    jw_obj_begin(w);
    for (int i = 0; i < PQntuples(r[0]); i++)
        jw_kint(w, col(r[0], i, 0), strtoll(col(r[0], i, 1), NULL, 10));
    jw_obj_end(w);
    jw_key(w, "by_day");
    jw_arr_begin(w);
    for (int i = 0; i < PQntuples(r[1]); i++) {
        jw_obj_begin(w);
        jw_kstr(w, "day", col(r[1], i, 0));
        jw_kstr(w, "kind", col(r[1], i, 1));
        jw_kint(w, "n", strtoll(col(r[1], i, 2), NULL, 10));
        jw_obj_end(w);
    }
    jw_arr_end(w);
    jw_key(w, "flags");
    jw_arr_begin(w);
    for (int i = 0; i < PQntuples(r[2]); i++) {
        jw_obj_begin(w);
        jw_kstr(w, "turn_id", col(r[2], i, 0));
        jw_kstr(w, "conversation_id", col(r[2], i, 1));
        jw_kstr(w, "kind", col(r[2], i, 2));
        jw_kstr(w, "at", col(r[2], i, 3));
        jw_obj_end(w);
    }
    jw_arr_end(w);
    jw_obj_end(w);
    return 200;
}

static void on_result(void *ctx, const struct pg_result *res)
{
    struct trace_req *a = ctx;
    if (res->status != PG_OK) {
        store_api_db_error(a->c, a->head, res);
        xfree(a);
        return;
    }
    struct buf body = {0};
    struct jsonw w;
    jw_init(&w, &body);
    int status = a->kind == T_TURN           ? write_turn_trace(res, &w)
                 : a->kind == T_CONVERSATION ? write_conv_trace(a, res, &w)
                                             : write_flags(a, res, &w);
    if (status == 200) {
        buf_append(&body, "\n", 1);
        store_api_reply(a->c, a->head, 200, &body, NULL);
    } else if (status == 404) {
        store_api_error(a->c, a->head, 404, "not_found",
                        a->kind == T_TURN ? "no such turn" : "no such conversation", NULL);
    } else {
        log_error("trace api: unexpected result shape");
        store_api_error(a->c, a->head, 500, "internal", "unexpected result shape", NULL);
    }
    buf_free(&body);
    xfree(a);
}

static void add_flags_stmts(struct pg_query *q, const struct trace_req *a)
{
    char from[40], to[40];
    store_api_format_day(a->from_day, "%Y-%m-%d 00:00:00+00", from, sizeof(from));
    store_api_format_day(a->to_day + 1, "%Y-%m-%d 00:00:00+00", to, sizeof(to));
    const char *const sqls[] = {sql_flag_counts, sql_flag_days, sql_flag_list};
    for (int i = 0; i < 3; i++) {
        pg_query_sql(q, sqls[i]);
        pg_query_param_str(q, from);
        pg_query_param_str(q, to);
        pg_query_param_str(q, a->flag[0] ? a->flag : NULL);
    }
}

static void start_read(struct store *st, const struct trace_req *req)
{
    struct trace_req *a = xmalloc(sizeof(*a));
    *a = *req;
    struct pg_query q;
    pg_query_init(&q);
    pg_query_sql(&q, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    pg_query_sql(&q, "SET LOCAL statement_timeout = " STR(TRACE_STATEMENT_TIMEOUT_MS));
    const char *const turn[] = {sql_turn, sql_turn_spans};
    const char *const conv[] = {sql_conv, sql_conv_turns, sql_conv_spans};
    if (a->kind == T_FLAGS) {
        add_flags_stmts(&q, a);
    } else {
        const char *const *sqls = a->kind == T_TURN ? turn : conv;
        for (int i = 0; i < (a->kind == T_TURN ? 2 : 3); i++) {
            pg_query_sql(&q, sqls[i]);
            pg_query_param_str(&q, a->id);
        }
    }
    conn_http_defer(a->c);
    a->op = store_query(st, &q, true, on_result, a);
    pg_query_free(&q);
}

/* Serve the trace endpoints; see api_int.h. */
static bool trace_request(struct store *st, struct conn *c, const struct http_request *req,
                          const char *body, size_t len)
{
    (void)body, (void)len;
    bool head = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
    struct trace_req a = {.c = c, .head = head};
    char msg[160];
    int status = route(req, &a, msg, sizeof(msg));
    if (status < 0)
        return false;
    if (!head && !(req->method_len == 3 && memcmp(req->method, "GET", 3) == 0)) {
        store_api_error(c, false, 405, "method_not_allowed", "only GET and HEAD are served here",
                        "Allow: GET, HEAD\r\n");
        return true;
    }
    if (status) {
        store_api_error(c, head, status, status == 404 ? "not_found" : "bad_request", msg, NULL);
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
static void trace_abort(struct store *st, struct conn *c)
{
    store_api_drop_read(st, c, on_result);
}

/* The trace endpoints for api.c's table; see api_int.h. */
const struct store_api_sub store_api_trace = {.request = trace_request, .abort = trace_abort};
