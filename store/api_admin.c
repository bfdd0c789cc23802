/* api_admin.c - the debugging dashboard's endpoints (api_int.h, docs/admin.md), beside the read
 * API of api.c and behind the same admin token:
 *
 *   GET  /v1/turns?conversation_id=&user=&from=&to=&query_type=&flag=&model=&min_cost_micros=
 *                  &limit=          turns matching every filter given, newest first
 *   POST /v1/golden {"turn_id": "..", "note": ".."}
 *                                   the turn as a candidate case of the golden set (201), 409
 *                                   when it is in already, 404 for an unknown turn
 *
 * Every value the client sends is checked here (a 400 says which parameter and what it expects)
 * and only ever travels as a statement parameter: the SQL text is fixed, an absent filter is a
 * NULL parameter that its clause lets through. The golden case is built by PostgreSQL from the
 * stored rows in the same statement that inserts it (one round trip, nothing copied through
 * here), in the evals' JSONL case format.
 *
 * Known weakness: tool results are not stored by the turn rows (tool_calls has their size only),
 * so the fixtures' "result" is filled from the trace's tool spans when tracing stored them
 * (capture=full) and is null otherwise; an eval then has to call the tool. */
#include "store/api_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/log.h"
#include "base/mem.h"
#include "store/store_int.h"
#include "stream/json.h"
#include "stream/jsonw.h"

/* macros, not enum constants: they are spliced into SQL text */
#define ADMIN_STATEMENT_TIMEOUT_MS 5000
#define GOLDEN_HISTORY_MAX 40 /* earlier messages kept in a case's history */
#define QUERY_PREVIEW 160     /* characters of the user's text in a search hit */

enum {
    TURNS_DEFAULT_LIMIT = 50,
    TURNS_MAX_LIMIT = 500,
    NOTE_MAX = 2000,   /* bytes of a golden case's note */
    ADDED_BY_MAX = 64, /* bytes of its added_by */
    PARAM_MAX = 512,   /* bytes of one decoded search parameter */
    ADMIN_PRELUDE = 2, /* SET TRANSACTION / SET LOCAL statement_timeout */
};

#define STR_(x) #x
#define STR(x) STR_(x)
/* RFC 3339 UTC with microseconds, as the trace API writes times */
#define ISO_US "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'"

/* The search filters, in the order of their statement parameters ($1..$8; $9 is the limit). */
enum filter {
    F_CONVERSATION,
    F_USER,
    F_FROM,
    F_TO,
    F_QUERY_TYPE,
    F_FLAG,
    F_MODEL,
    F_MIN_COST,
    F_COUNT,
};

static const char *const filter_names[F_COUNT] = {
    "conversation_id", "user", "from", "to", "query_type", "flag", "model", "min_cost_micros",
};

enum admin_kind { ADMIN_TURNS, ADMIN_GOLDEN };

/* One request being answered. */
struct admin_req {
    struct conn *c;
    enum admin_kind kind;
    bool head;
    int limit;
};

/* ---- statements ---- */

/* one SQL clause per line reads better than a reflow */
// clang-format off
static const char sql_search[] =
    "SELECT t.id, t.conversation_id, c.user_sub, "
    "       to_char(t.started_at AT TIME ZONE 'UTC', " ISO_US "), "
    "       nullif(t.query_type, ''), nullif(t.agent, ''), m.provider, m.model, "
    "       array_to_json(t.flags)::text, t.cost_micros, t.currency, t.first_token_ms, "
    "       t.finish_reason, t.total_ms, "
    "       (SELECT count(*) FROM tool_calls tc "
    "         WHERE tc.turn_id = t.id AND tc.started_at = t.started_at), "
    "       (SELECT left(content, " STR(QUERY_PREVIEW) ") FROM messages q "
    "         WHERE q.turn_id = t.id AND q.created_at = t.started_at AND q.ordinal = 0) "
    "FROM turns t JOIN conversations c ON c.id = t.conversation_id "
    /* the model that answered: the last successful answering call, else the last one */
    "LEFT JOIN LATERAL (SELECT l.provider, l.model FROM llm_calls l "
    "    WHERE l.turn_id = t.id AND l.started_at = t.started_at "
    "      AND l.role IN ('model', 'retry', 'fallback', 'escalation') "
    "    ORDER BY l.status = 'ok' DESC, l.ordinal DESC LIMIT 1) m ON true "
    "WHERE ($1::text IS NULL OR t.conversation_id = $1) "
    "  AND ($2::text IS NULL OR c.user_sub = $2) "
    "  AND ($3::timestamptz IS NULL OR t.started_at >= $3) "
    "  AND ($4::timestamptz IS NULL OR t.started_at < $4) "
    "  AND ($5::text IS NULL OR t.query_type = $5) "
    "  AND ($6::text IS NULL OR t.flags @> ARRAY[$6::text]) "
    "  AND ($7::text IS NULL OR EXISTS (SELECT 1 FROM llm_calls l2 "
    "        WHERE l2.turn_id = t.id AND l2.started_at = t.started_at "
    "          AND (l2.model = $7 OR l2.provider || '/' || l2.model = $7))) "
    "  AND ($8::bigint IS NULL OR t.cost_micros >= $8) "
    "ORDER BY t.started_at DESC, t.id DESC "
    "LIMIT $9";

/* $1 turn id: does it exist, and is it in the golden set already (the existing case's id) */
static const char sql_golden_check[] =
    "SELECT (SELECT count(*) FROM turns WHERE id = $1), "
    "       (SELECT id FROM golden_cases WHERE source_turn_id = $1)";

/* JSON text without its whitespace: a stored tool_calls.arguments (jsonb's spacing) and a tool
 * span's gen_ai.tool.call.arguments (as the model sent it) compare equal when they say the same
 * with the same key order. */
#define NORM(x) "regexp_replace(" x ", '\\s', '', 'g')"
#define SPAN_ARGS "coalesce(sp.attributes->>'gen_ai.tool.call.arguments', '')"

/* The result of tool call c (a tool_calls row with norm, k, n_name) as the model received it,
 * from the turn's tool spans (kept at capture level full). The calls of one batch start at the
 * same microsecond, so a span is matched by its tool name and arguments (the k-th of equal
 * calls to the k-th equal span: equal calls, equal results), or as the only call of its tool;
 * anything else stays null rather than risk another call's result. */
#define GOLDEN_TOOL_RESULT \
    "SELECT s.result FROM (" \
    "  SELECT sp.attributes->>'gen_ai.tool.call.result' AS result, " \
    "         " NORM(SPAN_ARGS) " AS norm, " \
    "         row_number() OVER (PARTITION BY " NORM(SPAN_ARGS) " " \
    "                            ORDER BY sp.start_us, sp.span_id) AS k, " \
    "         count(*) OVER () AS n_name " \
    "  FROM spans sp WHERE sp.turn_id = t.id AND sp.started_at = t.started_at " \
    "    AND sp.kind = 'tool' AND sp.attributes->>'gen_ai.tool.name' = c.name) s " \
    "WHERE (s.norm = c.norm AND s.k = c.k) OR (s.n_name = 1 AND c.n_name = 1) " \
    "ORDER BY s.norm = c.norm DESC LIMIT 1"

/* $1 turn id, $2 note, $3 added_by. The case in the evals' JSONL format, built from the stored
 * turn: its messages, route, tool calls, and the tool results of its trace. */
static const char sql_golden_insert[] =
    "WITH t AS (SELECT id, started_at, conversation_id, query_type, agent, flags, finish_reason "
    "           FROM turns WHERE id = $1 ORDER BY started_at DESC LIMIT 1) "
    "INSERT INTO golden_cases (source_turn_id, case_json, note, added_by) "
    "SELECT t.id, jsonb_build_object("
    "  'id', 'prod-' || t.id, "
    "  'source', 'production', "
    "  'source_turn_id', t.id, "
    "  'conversation_id', t.conversation_id, "
    "  'query', coalesce((SELECT content FROM messages m WHERE m.turn_id = t.id "
    "                       AND m.created_at = t.started_at AND m.ordinal = 0), ''), "
    "  'history', coalesce((SELECT jsonb_agg(jsonb_build_object('role', h.role, "
    "                                                           'content', h.content) "
    "                                        ORDER BY h.created_at, h.turn_id, h.ordinal) "
    "      FROM (SELECT role, content, created_at, turn_id, ordinal FROM messages m "
    "            WHERE m.conversation_id = t.conversation_id AND m.created_at < t.started_at "
    "              AND m.role IN ('user', 'assistant') "
    "            ORDER BY created_at DESC, turn_id DESC, ordinal DESC "
    "            LIMIT " STR(GOLDEN_HISTORY_MAX) ") h), '[]'::jsonb), "
    "  'expected_query_type', nullif(t.query_type, ''), "
    "  'expected_agent', nullif(t.agent, ''), "
    "  'expected_tools', coalesce((SELECT jsonb_agg(n.name ORDER BY n.first) "
    "      FROM (SELECT name, min(ordinal) AS first FROM tool_calls tc "
    "            WHERE tc.turn_id = t.id AND tc.started_at = t.started_at GROUP BY name) n), "
    "      '[]'::jsonb), "
    "  'fixtures', jsonb_build_object('tools', coalesce((SELECT jsonb_agg(jsonb_build_object("
    "          'name', c.name, 'arguments', c.arguments, 'status', c.status, "
    "          'result', (" GOLDEN_TOOL_RESULT ")) ORDER BY c.ordinal) "
    "      FROM (SELECT tc.*, " NORM("tc.arguments::text") " AS norm, "
    "                   row_number() OVER (PARTITION BY tc.name, " NORM("tc.arguments::text") " "
    "                                      ORDER BY tc.ordinal) AS k, "
    "                   count(*) OVER (PARTITION BY tc.name) AS n_name "
    "            FROM tool_calls tc "
    "            WHERE tc.turn_id = t.id AND tc.started_at = t.started_at) c), "
    "      '[]'::jsonb)), "
    "  'reference_answer', (SELECT content FROM messages m WHERE m.turn_id = t.id "
    "                         AND m.created_at = t.started_at AND m.ordinal = 1), "
    "  'finish_reason', t.finish_reason, "
    "  'flags', to_jsonb(t.flags)), $2, $3 "
    "FROM t "
    "ON CONFLICT (source_turn_id) WHERE source_turn_id IS NOT NULL DO NOTHING "
    "RETURNING id";
// clang-format on

/* ---- checking what the client sent ---- */

static bool method_is(const struct http_request *req, const char *m)
{
    return req->method_len == strlen(m) && memcmp(req->method, m, req->method_len) == 0;
}

static bool path_is(const struct http_request *req, const char *p)
{
    return req->path_len == strlen(p) && memcmp(req->path, p, req->path_len) == 0;
}

static bool all_in(const char *s, const char *set)
{
    return s[strspn(s, set)] == '\0';
}

/* Two decimal digits as a number; -1 if they are not two digits. */
static int two(const char *s)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return -1;
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* A time for from/to: a date YYYY-MM-DD (UTC; as `to`, the whole day is included) or an
 * RFC 3339 date-time with Z or a numeric offset. Writes what PostgreSQL reads as timestamptz
 * and the second it stands for (*at). Returns 0, or -1 for anything else (an impossible date
 * such as 02-30 included). */
static int parse_time(const char *s, bool is_to, char *out, size_t cap, int64_t *at)
{
    int off = 0; /* the numeric offset, seconds east of UTC */
    size_t n = strlen(s);
    if (n < 10 || s[4] != '-' || s[7] != '-' || !all_in(s, "0123456789-:TtZz.+"))
        return -1;
    if (two(s) < 0 || two(s + 2) < 0 || two(s + 5) < 1 || two(s + 8) < 1)
        return -1;
    struct tm tm = {.tm_year = atoi(s) - 1900, .tm_mon = two(s + 5) - 1, .tm_mday = two(s + 8)};
    const char *rest = s + 10;
    if (n > 10) {
        if ((rest[0] != 'T' && rest[0] != 't') || n < 20 || rest[3] != ':' || rest[6] != ':')
            return -1;
        tm.tm_hour = two(rest + 1);
        tm.tm_min = two(rest + 4);
        tm.tm_sec = two(rest + 7);
        const char *z = rest + 9;
        if (*z == '.')
            for (z++; *z >= '0' && *z <= '9'; z++)
                ;
        bool utc = (z[0] == 'Z' || z[0] == 'z') && z[1] == '\0';
        bool offset = (z[0] == '+' || z[0] == '-') && strlen(z) == 6 && z[3] == ':' &&
                      two(z + 1) >= 0 && two(z + 1) <= 23 && two(z + 4) >= 0 && two(z + 4) <= 59;
        if (z[-1] == '.' || (!utc && !offset) || tm.tm_hour < 0 || tm.tm_hour > 23 ||
            tm.tm_min < 0 || tm.tm_min > 59 || tm.tm_sec < 0 || tm.tm_sec > 59)
            return -1;
        if (offset)
            off = (z[0] == '-' ? -1 : 1) * (two(z + 1) * 3600 + two(z + 4) * 60);
    }
    struct tm back = tm;
    time_t t = timegm(&back);
    if (tm.tm_year < 70 || tm.tm_year > 8099 || back.tm_mday != tm.tm_mday ||
        back.tm_mon != tm.tm_mon)
        return -1;
    if (n > 10) {
        snprintf(out, cap, "%s", s);
    } else {
        if (is_to)
            t += 86400;
        strftime(out, cap, "%Y-%m-%d 00:00:00+00", gmtime_r(&t, &back));
    }
    *at = (int64_t)t - off;
    return 0;
}

/* One search filter's value (percent-decoded, not empty) into val. Returns 0, or -1 with the
 * 400 message in msg. */
static int check_filter(enum filter f, char *val, int64_t *at, char *msg, size_t cap)
{
    char t[64];
    switch (f) {
    case F_CONVERSATION:
        if (store_id_valid(val, strlen(val)))
            return 0;
        snprintf(msg, cap, "bad value for 'conversation_id': expected 32 lowercase hex digits");
        return -1;
    case F_FROM:
    case F_TO:
        if (parse_time(val, f == F_TO, t, sizeof(t), at) == 0) {
            snprintf(val, PARAM_MAX, "%s", t);
            return 0;
        }
        snprintf(msg, cap,
                 "bad value for '%s': expected a date YYYY-MM-DD (UTC) or an RFC 3339 time "
                 "such as 2026-01-31T12:00:00Z",
                 filter_names[f]);
        return -1;
    case F_QUERY_TYPE:
    case F_FLAG:
        if (strlen(val) <= 64 && all_in(val, "abcdefghijklmnopqrstuvwxyz0123456789_.:-"))
            return 0;
        snprintf(msg, cap, "bad value for '%s': expected a name of [a-z0-9_.:-], 64 at most",
                 filter_names[f]);
        return -1;
    case F_MIN_COST:
        if (strlen(val) <= 15 && all_in(val, "0123456789"))
            return 0;
        snprintf(msg, cap, "bad value for 'min_cost_micros': expected a whole number >= 0");
        return -1;
    default: /* user, model: any text; the column's own length limit bounds it */
        return 0;
    }
}

/* One name=value of the query string: a filter into vals[f] (seen[f] set), or the limit.
 * Returns 0, or 400 with msg. */
static int take_param(const struct http_request *req, const char *name, size_t nlen,
                      char vals[][PARAM_MAX], int64_t *at, bool *seen, int *limit, char *msg,
                      size_t cap)
{
    int f = 0;
    while (f < F_COUNT &&
           !(strlen(filter_names[f]) == nlen && !memcmp(filter_names[f], name, nlen)))
        f++;
    bool is_limit = f == F_COUNT && nlen == 5 && !memcmp(name, "limit", 5);
    if (f == F_COUNT && !is_limit) {
        snprintf(msg, cap,
                 "unknown parameter '%.*s' (expected conversation_id, user, from, to, query_type, "
                 "flag, model, min_cost_micros, limit)",
                 (int)(nlen > 40 ? 40 : nlen), name);
        return 400;
    }
    const char *pname = is_limit ? "limit" : filter_names[f];
    bool *was = is_limit ? &seen[F_COUNT] : &seen[f];
    if (*was) {
        snprintf(msg, cap, "parameter '%s' given more than once", pname);
        return 400;
    }
    *was = true;
    char v[PARAM_MAX];
    if (store_api_text_param(req, pname, v, sizeof(v)) < 0) {
        snprintf(msg, cap, "bad value for '%s': malformed, not UTF-8, or longer than %d bytes",
                 pname, PARAM_MAX - 1);
        return 400;
    }
    if (is_limit) {
        char *end;
        long n = strtol(v, &end, 10);
        if (!v[0] || *end || !all_in(v, "0123456789") || n < 1 || n > TURNS_MAX_LIMIT) {
            snprintf(msg, cap, "bad value for 'limit': expected 1 to %d", TURNS_MAX_LIMIT);
            return 400;
        }
        *limit = (int)n;
        return 0;
    }
    if (!v[0]) { /* an empty field of the search form: no filter */
        seen[f] = false;
        return 0;
    }
    memcpy(vals[f], v, sizeof(v));
    return check_filter((enum filter)f, vals[f], &at[f], msg, cap) < 0 ? 400 : 0;
}

/* ---- GET /v1/turns ---- */

/* Parse the query string and append the search. Returns 0, or 400 with msg. */
static int build_search(const struct http_request *req, struct admin_req *a, struct pg_query *q,
                        char *msg, size_t cap)
{
    char vals[F_COUNT][PARAM_MAX];
    int64_t at[F_COUNT] = {0}; /* from, to: as seconds, to compare them */
    bool seen[F_COUNT + 1] = {false};
    a->limit = TURNS_DEFAULT_LIMIT;
    const char *p = req->query ? req->query : "", *end = p + (req->query ? req->query_len : 0);
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *seg_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(seg_end - p));
        size_t nlen = (size_t)((eq ? eq : seg_end) - p);
        int st = nlen ? take_param(req, p, nlen, vals, at, seen, &a->limit, msg, cap) : 0;
        if (st)
            return st;
        p = amp ? amp + 1 : end;
    }
    if (seen[F_FROM] && seen[F_TO] && at[F_FROM] >= at[F_TO]) {
        snprintf(msg, cap, "'from' is after 'to': the range is empty");
        return 400;
    }
    pg_query_sql(q, sql_search);
    for (int f = 0; f < F_COUNT; f++)
        pg_query_param(q, seen[f] ? vals[f] : NULL, seen[f] ? strlen(vals[f]) : 0);
    pg_query_param_i64(q, a->limit + 1); /* one more: tells whether there are more */
    return 0;
}

static void kcol(struct jsonw *w, const char *key, const PGresult *r, int row, int c, bool num)
{
    jw_key(w, key);
    if (PQgetisnull(r, row, c))
        jw_null(w);
    else if (num)
        jw_int(w, strtoll(PQgetvalue(r, row, c), NULL, 10));
    else
        jw_strn(w, PQgetvalue(r, row, c), (size_t)PQgetlength(r, row, c));
}

/* The turn's outcome as the trace API says it: ok, error or cancelled. */
static const char *turn_status(const char *finish_reason)
{
    if (!strcmp(finish_reason, "error"))
        return "error";
    return !strcmp(finish_reason, "cancelled") ? "cancelled" : "ok";
}

static void write_hit(struct jsonw *w, const PGresult *r, int i)
{
    jw_obj_begin(w);
    kcol(w, "turn_id", r, i, 0, false);
    kcol(w, "conversation_id", r, i, 1, false);
    jw_key(w, "user");
    if (PQgetlength(r, i, 2) == 0)
        jw_null(w); /* anonymous */
    else
        jw_strn(w, PQgetvalue(r, i, 2), (size_t)PQgetlength(r, i, 2));
    kcol(w, "started_at", r, i, 3, false);
    kcol(w, "query_type", r, i, 4, false);
    kcol(w, "agent", r, i, 5, false);
    kcol(w, "provider", r, i, 6, false);
    kcol(w, "model", r, i, 7, false);
    jw_key(w, "flags");
    jw_raw(w, PQgetvalue(r, i, 8), (size_t)PQgetlength(r, i, 8)); /* array_to_json: JSON */
    kcol(w, "cost_micros", r, i, 9, true);
    kcol(w, "currency", r, i, 10, false);
    kcol(w, "ttft_ms", r, i, 11, true);
    jw_kstr(w, "status", turn_status(PQgetvalue(r, i, 12)));
    kcol(w, "finish_reason", r, i, 12, false);
    kcol(w, "total_ms", r, i, 13, true);
    kcol(w, "tool_calls", r, i, 14, true);
    kcol(w, "query", r, i, 15, false);
    jw_obj_end(w);
}

/* Returns the HTTP status (200, or 500 for a result of the wrong shape). */
static int write_turns(const struct admin_req *a, PGresult *const *rows, uint32_t n,
                       struct jsonw *w)
{
    if (n != ADMIN_PRELUDE + 1)
        return 500;
    const PGresult *r = rows[ADMIN_PRELUDE];
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != 16)
        return 500;
    int hits = PQntuples(r);
    jw_obj_begin(w);
    jw_key(w, "turns");
    jw_arr_begin(w);
    for (int i = 0; i < hits && i < a->limit; i++)
        write_hit(w, r, i);
    jw_arr_end(w);
    jw_kint(w, "limit", a->limit);
    jw_kbool(w, "more", hits > a->limit);
    jw_obj_end(w);
    return 200;
}

/* ---- POST /v1/golden ---- */

/* The body {"turn_id": "<32 hex>", "note": "..."|null, "added_by": "..."} (note and added_by
 * optional, nothing else) into the statements. Returns 0, or 400 / 415 with msg. */
static int build_golden(const struct http_request *req, const char *body, size_t len,
                        struct pg_query *q, char *msg, size_t cap)
{
    const struct http_header *ct = http_find_header(req, "Content-Type");
    if (!ct || ct->value_len < 16 || strncasecmp(ct->value, "application/json", 16) != 0 ||
        (ct->value_len > 16 && ct->value[16] != ';' && ct->value[16] != ' ')) {
        snprintf(msg, cap, "send the body as Content-Type: application/json");
        return 415;
    }
    json_doc *d = json_doc_create();
    int status = 400;
    size_t members = 0, known = 0, id_len = 0, note_len = 0, by_len = 0;
    const char *id = NULL, *note = NULL, *by = "dashboard";
    if (json_doc_load(d, body, len) < 0 || json_type_at(d, "") != JSON_OBJECT) {
        snprintf(msg, cap, "the body must be a JSON object {\"turn_id\": ..., \"note\": ...}");
        goto out_free_doc;
    }
    json_count(d, "", &members);
    if (json_get_string(d, "/turn_id", &id, &id_len) < 0 || !store_id_valid(id, id_len)) {
        snprintf(msg, cap, "'turn_id' must be a turn id: 32 lowercase hex digits");
        goto out_free_doc;
    }
    known = 1;
    enum json_type nt = json_type_at(d, "/note");
    if (nt != JSON_MISSING && nt != JSON_NULL &&
        (json_get_string(d, "/note", &note, &note_len) < 0 || note_len > NOTE_MAX)) {
        snprintf(msg, cap, "'note' must be a string of %d bytes at most, or null", NOTE_MAX);
        goto out_free_doc;
    }
    known += nt != JSON_MISSING;
    if (json_type_at(d, "/added_by") != JSON_MISSING) {
        if (json_get_string(d, "/added_by", &by, &by_len) < 0 || !by_len || by_len > ADDED_BY_MAX) {
            snprintf(msg, cap, "'added_by' must be a name of 1 to %d bytes", ADDED_BY_MAX);
            goto out_free_doc;
        }
        known++;
    }
    if (members != known) {
        snprintf(msg, cap, "unknown member in the body (expected turn_id, note, added_by)");
        goto out_free_doc;
    }
    pg_query_sql(q, sql_golden_check);
    pg_query_param(q, id, id_len);
    pg_query_sql(q, sql_golden_insert);
    pg_query_param(q, id, id_len);
    pg_query_param(q, note, note ? note_len : 0);
    pg_query_param(q, by, by_len ? by_len : strlen(by));
    status = 0;
out_free_doc:
    json_doc_destroy(d);
    return status;
}

/* 201 {"id": N, "status": "candidate", "turn_id": ..}, 409 with the existing case's id, 404. */
static int write_golden(PGresult *const *rows, uint32_t n, struct jsonw *w, char *msg, size_t cap)
{
    if (n != ADMIN_PRELUDE + 2 || PQresultStatus(rows[ADMIN_PRELUDE]) != PGRES_TUPLES_OK ||
        PQresultStatus(rows[ADMIN_PRELUDE + 1]) != PGRES_TUPLES_OK)
        return 500;
    const PGresult *check = rows[ADMIN_PRELUDE], *ins = rows[ADMIN_PRELUDE + 1];
    if (PQntuples(ins) == 1) {
        jw_obj_begin(w);
        kcol(w, "id", ins, 0, 0, true);
        jw_kstr(w, "status", "candidate");
        jw_obj_end(w);
        return 201;
    }
    if (PQntuples(check) != 1 || strcmp(PQgetvalue(check, 0, 0), "0") == 0) {
        snprintf(msg, cap, "no such turn");
        return 404;
    }
    /* the turn exists and nothing was inserted: it is in already (perhaps since a moment) */
    snprintf(msg, cap, "this turn is in the golden set already (case %s)",
             PQgetisnull(check, 0, 1) ? "added concurrently" : PQgetvalue(check, 0, 1));
    return 409;
}

/* ---- the deferred answer ---- */

static void on_result(void *ctx, const struct pg_result *res)
{
    struct admin_req *a = ctx;
    if (res->status != PG_OK) {
        store_api_db_error(a->c, a->head, res);
        xfree(a);
        return;
    }
    struct buf body = {0};
    struct jsonw w;
    jw_init(&w, &body);
    char msg[160] = "";
    int status = a->kind == ADMIN_TURNS ? write_turns(a, res->rows, res->nrows, &w)
                                        : write_golden(res->rows, res->nrows, &w, msg, sizeof(msg));
    if (status == 200 || status == 201) {
        buf_append(&body, "\n", 1);
        store_api_reply(a->c, a->head, status, &body, NULL);
    } else if (status == 404 || status == 409) {
        store_api_error(a->c, a->head, status, status == 404 ? "not_found" : "conflict", msg, NULL);
    } else {
        log_error("store api: unexpected result shape (admin)");
        store_api_error(a->c, a->head, 500, "internal", "unexpected result shape", NULL);
    }
    buf_free(&body);
    xfree(a);
}

/* Answer the request (routing, method, parameters), or start its statements. */
static void serve(struct store *st, struct conn *c, const struct http_request *req,
                  const char *body, size_t len, enum admin_kind kind)
{
    bool head = method_is(req, "HEAD");
    struct admin_req a = {.c = c, .kind = kind, .head = head};
    struct pg_query q;
    pg_query_init(&q);
    /* the search reads one snapshot; the golden insert is the one write this API makes */
    pg_query_sql(&q, kind == ADMIN_TURNS
                         ? "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
                         : "SET TRANSACTION ISOLATION LEVEL READ COMMITTED, READ WRITE");
    pg_query_sql(&q, "SET LOCAL statement_timeout = " STR(ADMIN_STATEMENT_TIMEOUT_MS));
    char msg[256];
    int status = kind == ADMIN_TURNS ? build_search(req, &a, &q, msg, sizeof(msg))
                                     : build_golden(req, body, len, &q, msg, sizeof(msg));
    if (status) {
        store_api_error(c, head, status, status == 415 ? "unsupported_media_type" : "bad_request",
                        msg, NULL);
    } else if (!st) {
        store_api_error(c, head, 503, "unavailable", "no database is configured", NULL);
    } else {
        struct admin_req *pa = xmalloc(sizeof(*pa));
        *pa = a;
        conn_http_defer(c);
        store_query(st, &q, true, on_result, pa);
    }
    pg_query_free(&q);
}

static bool admin_request(struct store *st, struct conn *c, const struct http_request *req,
                          const char *body, size_t len)
{
    bool get = method_is(req, "GET") || method_is(req, "HEAD");
    if (path_is(req, "/v1/turns")) {
        if (get)
            serve(st, c, req, body, len, ADMIN_TURNS);
        else
            store_api_error(c, false, 405, "method_not_allowed",
                            "only GET and HEAD are served here", "Allow: GET, HEAD\r\n");
        return true;
    }
    if (path_is(req, "/v1/golden")) {
        if (method_is(req, "POST"))
            serve(st, c, req, body, len, ADMIN_GOLDEN);
        else
            store_api_error(c, method_is(req, "HEAD"), 405, "method_not_allowed",
                            "only POST is served here", "Allow: POST\r\n");
        return true;
    }
    return false;
}

/* The client of a deferred answer left: cancel its statements. A golden insert already sent
 * may still commit; asking again then gets 409, which says it is in. */
static void admin_abort(struct store *st, struct conn *c)
{
    store_api_drop_read(st, c, on_result);
}

/* See api_int.h. */
const struct store_api_sub store_api_admin = {admin_request, admin_abort};
