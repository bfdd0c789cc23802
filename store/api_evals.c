/* api_evals.c - the evals' endpoints (api_int.h, docs/evals.md), behind the admin token:
 *
 *   GET  /v1/vibe/sessions                 the vibe-check sessions (no version names)
 *   POST /v1/vibe/sessions                 {"name","set","version_a","version_b","created_by"}
 *                                          a new session (201 {"id"})
 *   POST /v1/vibe/sessions/{id}/items      {"items":[{"case_id","query_type","query","history",
 *                                          "answer_a","answer_b"}]} pairs of answers (batches:
 *                                          a body is at most 16 KiB); a case already in is kept
 *   GET  /v1/vibe/sessions/{id}/next?voter=NAME
 *                                          the next pair this voter has not judged, in an order
 *                                          and with sides drawn per voter from the session's
 *                                          secret: {"item": {"case_id","query","history","left",
 *                                          "right"} | null, "done", "total"}
 *   POST /v1/vibe/sessions/{id}/votes      {"case_id","voter","choice": left|right|tie|both_bad}
 *                                          stored as a, b, tie or both_bad (201; 409 if voted)
 *   GET  /v1/vibe/sessions/{id}/votes      every vote with the versions (for trilemma-eval vibe)
 *   GET  /v1/golden/cases?status=&set=     golden_cases rows (the review queue, the export)
 *   POST /v1/golden/cases/{id}             {"status": accepted|retired|candidate,
 *                                          "reviewed_by"} a reviewer's decision
 *
 * Every value is checked here (400 naming it) and travels as a statement parameter only. Each
 * endpoint is one statement that answers one row (HTTP status, JSON body, error message): the
 * JSON is built by PostgreSQL, and the side shown to a voter is resolved to a version there too
 * (vibe_a_on_left, 010_evals.sql), so the page never learns which version is which.
 *
 * Known weakness: the voter is the name the page sends (everyone on the panel shares the admin
 * token), so one person can vote under two names. */
#include "store/api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/mem.h"
#include "store/store_int.h"
#include "stream/json.h"

#define EVALS_STATEMENT_TIMEOUT_MS 5000 /* spliced into SQL text */
#define STR_(x) #x
#define STR(x) STR_(x)
#define ISO "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'"

enum {
    EV_PRELUDE = 2, /* SET TRANSACTION / SET LOCAL statement_timeout */
    NAME_MAX_BYTES = 64,
    ID_MAX_DIGITS = 18,
    TEXT_MAX_BYTES = 8000, /* a query or an answer of a pair */
};

enum ev_kind {
    EV_LIST,
    EV_CREATE,
    EV_ITEMS,
    EV_NEXT,
    EV_VOTE,
    EV_VOTES,
    EV_GOLDEN_LIST,
    EV_GOLDEN_REVIEW,
};

struct ev_req {
    struct conn *c;
    bool head;
};

/* ---- statements: each answers one row (status, body, message) ---- */

/* clang-format off */
static const char sql_list[] =
    "SELECT 200, jsonb_build_object('sessions', coalesce(jsonb_agg(jsonb_build_object("
    "  'id', s.id, 'name', s.name, 'set', s.set_name, "
    "  'items', (SELECT count(*) FROM vibe_items i WHERE i.session_id = s.id), "
    "  'votes', (SELECT count(*) FROM vibe_votes v WHERE v.session_id = s.id), "
    "  'created_at', to_char(s.created_at AT TIME ZONE 'UTC', " ISO ")) ORDER BY s.id DESC), "
    "  '[]'::jsonb))::text, '' "
    "FROM (SELECT * FROM vibe_sessions ORDER BY id DESC LIMIT 200) s";

static const char sql_create[] = /* $1 the checked body */
    "WITH ins AS (INSERT INTO vibe_sessions (name, set_name, version_a, version_b, created_by) "
    "  SELECT coalesce(j->>'name', ''), coalesce(j->>'set', ''), j->>'version_a', "
    "         j->>'version_b', coalesce(j->>'created_by', '') FROM (SELECT $1::jsonb AS j) b "
    "  RETURNING id) "
    "SELECT 201, jsonb_build_object('id', id)::text, '' FROM ins";

static const char sql_items[] = /* $1 session, $2 the checked body */
    "WITH s AS (SELECT id FROM vibe_sessions WHERE id = $1), "
    "ins AS (INSERT INTO vibe_items (session_id, case_id, query_type, query, history, answer_a, "
    "                                answer_b) "
    "  SELECT s.id, x.case_id, coalesce(x.query_type, ''), x.query, coalesce(x.history, '[]'), "
    "         x.answer_a, x.answer_b "
    "  FROM s, jsonb_to_recordset($2::jsonb->'items') AS x(case_id text, query_type text, "
    "       query text, history jsonb, answer_a text, answer_b text) "
    "  ON CONFLICT DO NOTHING RETURNING 1) "
    "SELECT CASE WHEN (SELECT count(*) FROM s) = 0 THEN 404 ELSE 200 END, "
    "       jsonb_build_object('added', (SELECT count(*) FROM ins))::text, 'no such session'";

static const char sql_next[] = /* $1 session, $2 voter */
    "WITH s AS (SELECT id, salt FROM vibe_sessions WHERE id = $1), "
    "nx AS (SELECT i.*, vibe_a_on_left(s.salt, $2, i.case_id) AS left_a "
    "       FROM vibe_items i JOIN s ON i.session_id = s.id "
    "       WHERE NOT EXISTS (SELECT 1 FROM vibe_votes v WHERE v.session_id = i.session_id "
    "                         AND v.case_id = i.case_id AND v.voter = $2) "
    "       ORDER BY md5(s.salt || '#' || $2 || '#' || i.case_id) LIMIT 1) "
    "SELECT CASE WHEN (SELECT count(*) FROM s) = 0 THEN 404 ELSE 200 END, "
    "  jsonb_build_object('session', $1::bigint, "
    "    'total', (SELECT count(*) FROM vibe_items WHERE session_id = $1), "
    "    'done', (SELECT count(*) FROM vibe_votes WHERE session_id = $1 AND voter = $2), "
    "    'item', (SELECT jsonb_build_object('case_id', case_id, 'query', query, "
    "                    'history', history, "
    "                    'left', CASE WHEN left_a THEN answer_a ELSE answer_b END, "
    "                    'right', CASE WHEN left_a THEN answer_b ELSE answer_a END) FROM nx)"
    "  )::text, 'no such session'";

static const char sql_vote[] = /* $1 session, $2 case, $3 voter, $4 left|right|tie|both_bad */
    "WITH it AS (SELECT i.case_id, vibe_a_on_left(s.salt, $3, i.case_id) AS left_a "
    "            FROM vibe_items i JOIN vibe_sessions s ON s.id = i.session_id "
    "            WHERE i.session_id = $1 AND i.case_id = $2), "
    "ins AS (INSERT INTO vibe_votes (session_id, case_id, voter, choice, a_on_left) "
    "  SELECT $1, it.case_id, $3, "
    "         CASE $4 WHEN 'left' THEN CASE WHEN it.left_a THEN 'a' ELSE 'b' END "
    "                 WHEN 'right' THEN CASE WHEN it.left_a THEN 'b' ELSE 'a' END "
    "                 ELSE $4 END, it.left_a FROM it "
    "  ON CONFLICT (session_id, case_id, voter) DO NOTHING RETURNING id) "
    "SELECT CASE WHEN (SELECT count(*) FROM it) = 0 THEN 404 "
    "            WHEN (SELECT count(*) FROM ins) = 0 THEN 409 ELSE 201 END, "
    "       jsonb_build_object('recorded', true)::text, "
    "       CASE WHEN (SELECT count(*) FROM it) = 0 THEN 'no such session or case' "
    "            ELSE 'this voter has voted on this case already' END";

static const char sql_votes[] = /* $1 session */
    "SELECT CASE WHEN s.id IS NULL THEN 404 ELSE 200 END, "
    "  jsonb_build_object('session', s.id, 'name', s.name, 'set', s.set_name, "
    "    'version_a', s.version_a, 'version_b', s.version_b, "
    "    'items', (SELECT count(*) FROM vibe_items i WHERE i.session_id = s.id), "
    "    'votes', coalesce((SELECT jsonb_agg(jsonb_build_object('case_id', v.case_id, "
    "        'query_type', i.query_type, 'voter', v.voter, 'choice', v.choice, "
    "        'a_on_left', v.a_on_left, "
    "        'at', to_char(v.created_at AT TIME ZONE 'UTC', " ISO ")) ORDER BY v.id) "
    "      FROM vibe_votes v JOIN vibe_items i USING (session_id, case_id) "
    "      WHERE v.session_id = s.id), '[]'::jsonb))::text, 'no such session' "
    "FROM (SELECT $1::bigint AS want) w LEFT JOIN vibe_sessions s ON s.id = w.want";

static const char sql_golden_list[] = /* $1 status or NULL, $2 set or NULL */
    "SELECT 200, jsonb_build_object('cases', coalesce(jsonb_agg(jsonb_build_object("
    "  'id', g.id, 'set_name', g.set_name, 'status', g.status, "
    "  'source_turn_id', g.source_turn_id, 'case_json', g.case_json, 'note', g.note, "
    "  'added_by', g.added_by, "
    "  'created_at', to_char(g.created_at AT TIME ZONE 'UTC', " ISO "), "
    "  'reviewed_at', to_char(g.reviewed_at AT TIME ZONE 'UTC', " ISO "), "
    "  'reviewed_by', g.reviewed_by) ORDER BY g.id), '[]'::jsonb))::text, '' "
    "FROM (SELECT * FROM golden_cases WHERE ($1::text IS NULL OR status = $1) "
    "      AND ($2::text IS NULL OR set_name = $2) ORDER BY id LIMIT 1000) g";

static const char sql_golden_review[] = /* $1 id, $2 status, $3 reviewer */
    "WITH up AS (UPDATE golden_cases SET status = $2, reviewed_at = now(), reviewed_by = $3 "
    "            WHERE id = $1 RETURNING id, status) "
    "SELECT CASE WHEN (SELECT count(*) FROM up) = 0 THEN 404 ELSE 200 END, "
    "       coalesce((SELECT jsonb_build_object('id', id, 'status', status) FROM up), "
    "                '{}'::jsonb)::text, 'no such case'";
/* clang-format on */

/* ---- checking what the client sent ---- */

static bool method_is(const struct http_request *req, const char *m)
{
    return req->method_len == strlen(m) && memcmp(req->method, m, req->method_len) == 0;
}

/* The id after prefix in the path, and what follows it ("" or "/items" ...). Returns false when
 * the path does not start with prefix followed by 1..18 digits. */
static bool path_id(const struct http_request *req, const char *prefix, char id[ID_MAX_DIGITS + 1],
                    const char **rest, size_t *rest_len)
{
    size_t pl = strlen(prefix), n = 0;
    if (req->path_len <= pl || memcmp(req->path, prefix, pl) != 0)
        return false;
    const char *p = req->path + pl, *end = req->path + req->path_len;
    while (p + n < end && p[n] >= '0' && p[n] <= '9' && n < ID_MAX_DIGITS + 1)
        n++;
    if (n == 0 || n > ID_MAX_DIGITS)
        return false;
    memcpy(id, p, n);
    id[n] = '\0';
    *rest = p + n;
    *rest_len = (size_t)(end - *rest);
    return true;
}

/* A non-empty string member of at most max bytes; NULL (and msg) otherwise. */
static const char *member_str(json_doc *d, const char *ptr, size_t max, bool required, size_t *len,
                              char *msg, size_t cap)
{
    const char *s = NULL;
    enum json_type t = json_type_at(d, ptr);
    if (t == JSON_MISSING && !required) {
        *len = 0;
        return "";
    }
    if (json_get_string(d, ptr, &s, len) < 0 || (required && *len == 0) || *len > max) {
        snprintf(msg, cap, "'%s' must be a %sstring of at most %zu bytes", ptr + 1,
                 required ? "non-empty " : "", max);
        return NULL;
    }
    return s;
}

/* The body must be a JSON object sent as application/json. Returns 0 or 400/415 with msg. */
static int load_body(const struct http_request *req, json_doc *d, const char *body, size_t len,
                     char *msg, size_t cap)
{
    const struct http_header *ct = http_find_header(req, "Content-Type");
    if (!ct || ct->value_len < 16 || strncasecmp(ct->value, "application/json", 16) != 0) {
        snprintf(msg, cap, "send the body as Content-Type: application/json");
        return 415;
    }
    if (json_doc_load(d, body, len) < 0 || json_type_at(d, "") != JSON_OBJECT) {
        snprintf(msg, cap, "the body must be a JSON object");
        return 400;
    }
    return 0;
}

static int check_create(json_doc *d, char *msg, size_t cap)
{
    size_t la, lb, n;
    const char *a = member_str(d, "/version_a", NAME_MAX_BYTES, true, &la, msg, cap);
    const char *b = a ? member_str(d, "/version_b", NAME_MAX_BYTES, true, &lb, msg, cap) : NULL;
    if (!a || !b || !member_str(d, "/name", 200, false, &n, msg, cap) ||
        !member_str(d, "/set", 200, false, &n, msg, cap) ||
        !member_str(d, "/created_by", NAME_MAX_BYTES, false, &n, msg, cap))
        return 400;
    if (la == lb && memcmp(a, b, la) == 0) {
        snprintf(msg, cap, "'version_a' and 'version_b' must differ");
        return 400;
    }
    return 0;
}

static int check_items(json_doc *d, char *msg, size_t cap)
{
    static const char *const keys[] = {"case_id", "query", "answer_a", "answer_b", "query_type"};
    size_t n = 0, len;
    char ptr[64];
    if (json_type_at(d, "/items") != JSON_ARRAY || json_count(d, "/items", &n) < 0 || n == 0) {
        snprintf(msg, cap, "'items' must be a non-empty array");
        return 400;
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            snprintf(ptr, sizeof(ptr), "/items/%zu/%s", i, keys[k]);
            if (!member_str(d, ptr, k == 0 ? 200 : TEXT_MAX_BYTES, k < 4, &len, msg, cap))
                return 400;
        }
        snprintf(ptr, sizeof(ptr), "/items/%zu/history", i);
        enum json_type t = json_type_at(d, ptr);
        if (t != JSON_MISSING && t != JSON_ARRAY) {
            snprintf(msg, cap, "'items/%zu/history' must be an array", i);
            return 400;
        }
    }
    return 0;
}

/* ---- building a request's statement ---- */

static int build_vote(json_doc *d, const char *id, struct pg_query *q, char *msg, size_t cap)
{
    size_t lc, lv, lch;
    const char *cs = member_str(d, "/case_id", 200, true, &lc, msg, cap);
    const char *v = cs ? member_str(d, "/voter", NAME_MAX_BYTES, true, &lv, msg, cap) : NULL;
    const char *ch = v ? member_str(d, "/choice", 16, true, &lch, msg, cap) : NULL;
    if (!ch)
        return 400;
    if (strcmp(ch, "left") && strcmp(ch, "right") && strcmp(ch, "tie") && strcmp(ch, "both_bad")) {
        snprintf(msg, cap, "'choice' must be left, right, tie or both_bad");
        return 400;
    }
    pg_query_sql(q, sql_vote);
    pg_query_param_str(q, id);
    pg_query_param(q, cs, lc);
    pg_query_param(q, v, lv);
    pg_query_param(q, ch, lch);
    return 0;
}

static int build_review(json_doc *d, const char *id, struct pg_query *q, char *msg, size_t cap)
{
    size_t ls, lr;
    const char *st = member_str(d, "/status", 16, true, &ls, msg, cap);
    const char *by =
        st ? member_str(d, "/reviewed_by", NAME_MAX_BYTES, false, &lr, msg, cap) : NULL;
    if (!by)
        return 400;
    if (strcmp(st, "accepted") && strcmp(st, "retired") && strcmp(st, "candidate")) {
        snprintf(msg, cap, "'status' must be accepted, retired or candidate");
        return 400;
    }
    pg_query_sql(q, sql_golden_review);
    pg_query_param_str(q, id);
    pg_query_param(q, st, ls);
    pg_query_param(q, lr ? by : "dashboard", lr ? lr : strlen("dashboard"));
    return 0;
}

/* POST bodies: checked, then the statement. Returns 0 or an HTTP status with msg. */
static int build_post(enum ev_kind k, const struct http_request *req, const char *id,
                      const char *body, size_t len, struct pg_query *q, char *msg, size_t cap)
{
    json_doc *d = json_doc_create();
    int status = load_body(req, d, body, len, msg, cap);
    if (status)
        goto out_free_doc;
    if (k == EV_VOTE) {
        status = build_vote(d, id, q, msg, cap);
    } else if (k == EV_GOLDEN_REVIEW) {
        status = build_review(d, id, q, msg, cap);
    } else if (!(status = k == EV_CREATE ? check_create(d, msg, cap) : check_items(d, msg, cap))) {
        pg_query_sql(q, k == EV_CREATE ? sql_create : sql_items);
        if (k == EV_ITEMS)
            pg_query_param_str(q, id);
        pg_query_param(q, body, len); /* checked above; PostgreSQL reads it as jsonb */
    }
out_free_doc:
    json_doc_destroy(d);
    return status;
}

/* GET parameters: voter (next), status and set (golden list). */
static int build_get(enum ev_kind k, const struct http_request *req, const char *id,
                     struct pg_query *q, char *msg, size_t cap)
{
    char a[NAME_MAX_BYTES + 1], b[201];
    int la = -1, lb = -1;
    if (k == EV_NEXT) {
        la = store_api_text_param(req, "voter", a, sizeof(a));
        if (la <= 0) {
            snprintf(msg, cap, "'voter' must be a UTF-8 name of 1 to %d bytes", NAME_MAX_BYTES);
            return 400;
        }
        pg_query_sql(q, sql_next);
        pg_query_param_str(q, id);
        pg_query_param(q, a, (size_t)la);
    } else if (k == EV_GOLDEN_LIST) {
        la = store_api_text_param(req, "status", a, sizeof(a));
        lb = store_api_text_param(req, "set", b, sizeof(b));
        if (la == -2 ||
            (la >= 0 && strcmp(a, "candidate") && strcmp(a, "accepted") && strcmp(a, "retired"))) {
            snprintf(msg, cap, "'status' must be candidate, accepted or retired");
            return 400;
        }
        if (lb == -2) {
            snprintf(msg, cap, "'set' must be a UTF-8 name of at most 200 bytes");
            return 400;
        }
        pg_query_sql(q, sql_golden_list);
        pg_query_param(q, la >= 0 ? a : NULL, la >= 0 ? (size_t)la : 0);
        pg_query_param(q, lb >= 0 ? b : NULL, lb >= 0 ? (size_t)lb : 0);
    } else {
        pg_query_sql(q, k == EV_LIST ? sql_list : sql_votes);
        if (k == EV_VOTES)
            pg_query_param_str(q, id);
    }
    return 0;
}

/* ---- the deferred answer ---- */

static void on_result(void *ctx, const struct pg_result *res)
{
    struct ev_req *a = ctx;
    if (res->status != PG_OK) {
        store_api_db_error(a->c, a->head, res);
        xfree(a);
        return;
    }
    const PGresult *r = res->nrows == EV_PRELUDE + 1 ? res->rows[EV_PRELUDE] : NULL;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) != 3) {
        log_error("store api: unexpected result shape (evals)");
        store_api_error(a->c, a->head, 500, "internal", "unexpected result shape", NULL);
        xfree(a);
        return;
    }
    int status = atoi(PQgetvalue(r, 0, 0));
    if (status == 200 || status == 201) {
        struct buf body = {0};
        buf_append(&body, PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1));
        buf_append(&body, "\n", 1);
        store_api_reply(a->c, a->head, status, &body, NULL);
        buf_free(&body);
    } else {
        store_api_error(a->c, a->head, status, status == 404 ? "not_found" : "conflict",
                        PQgetvalue(r, 0, 2), NULL);
    }
    xfree(a);
}

static void serve(struct store *st, struct conn *c, const struct http_request *req,
                  const char *body, size_t len, enum ev_kind k, const char *id)
{
    bool head = method_is(req, "HEAD"), post = method_is(req, "POST");
    struct pg_query q;
    pg_query_init(&q);
    pg_query_sql(&q, post ? "SET TRANSACTION ISOLATION LEVEL READ COMMITTED, READ WRITE"
                          : "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    pg_query_sql(&q, "SET LOCAL statement_timeout = " STR(EVALS_STATEMENT_TIMEOUT_MS));
    char msg[200];
    int status = post ? build_post(k, req, id, body, len, &q, msg, sizeof(msg))
                      : build_get(k, req, id, &q, msg, sizeof(msg));
    if (status) {
        store_api_error(c, head, status, status == 415 ? "unsupported_media_type" : "bad_request",
                        msg, NULL);
    } else if (!st) {
        store_api_error(c, head, 503, "unavailable", "no database is configured", NULL);
    } else {
        struct ev_req *a = xmalloc(sizeof(*a));
        *a = (struct ev_req){.c = c, .head = head};
        conn_http_defer(c);
        store_query(st, &q, true, on_result, a);
    }
    pg_query_free(&q);
}

/* ---- routing ---- */

static bool rest_is(const char *rest, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(rest, want, n) == 0;
}

/* The endpoint of (path, method), or -1 for a path of this file with another method (405: *allow
 * says which), or -2 for a path that is not this file's. */
static int route(const struct http_request *req, char id[ID_MAX_DIGITS + 1], const char **allow)
{
    bool get = method_is(req, "GET") || method_is(req, "HEAD"), post = method_is(req, "POST");
    const char *rest;
    size_t n;
    id[0] = '\0';
    *allow = "GET, HEAD";
    if (req->path_len == 17 && memcmp(req->path, "/v1/vibe/sessions", 17) == 0) {
        *allow = "GET, HEAD, POST";
        return get ? EV_LIST : post ? EV_CREATE : -1;
    }
    if (req->path_len == 16 && memcmp(req->path, "/v1/golden/cases", 16) == 0)
        return get ? EV_GOLDEN_LIST : -1;
    if (path_id(req, "/v1/golden/cases/", id, &rest, &n) && n == 0) {
        *allow = "POST";
        return post ? EV_GOLDEN_REVIEW : -1;
    }
    if (!path_id(req, "/v1/vibe/sessions/", id, &rest, &n))
        return -2;
    if (rest_is(rest, n, "/items")) {
        *allow = "POST";
        return post ? EV_ITEMS : -1;
    }
    if (rest_is(rest, n, "/next"))
        return get ? EV_NEXT : -1;
    if (rest_is(rest, n, "/votes")) {
        *allow = "GET, HEAD, POST";
        return get ? EV_VOTES : post ? EV_VOTE : -1;
    }
    return -2;
}

static bool evals_request(struct store *st, struct conn *c, const struct http_request *req,
                          const char *body, size_t len)
{
    bool under = (req->path_len >= 8 && memcmp(req->path, "/v1/vibe", 8) == 0) ||
                 (req->path_len >= 16 && memcmp(req->path, "/v1/golden/cases", 16) == 0);
    if (!under)
        return false;
    char id[ID_MAX_DIGITS + 1], extra[64];
    const char *allow;
    int k = route(req, id, &allow);
    if (k == -2) {
        store_api_error(c, method_is(req, "HEAD"), 404, "not_found", "no such path", NULL);
    } else if (k == -1) {
        snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
        store_api_error(c, method_is(req, "HEAD"), 405, "method_not_allowed",
                        "method not allowed here", extra);
    } else {
        serve(st, c, req, body, len, (enum ev_kind)k, id);
    }
    return true;
}

/* The client of a deferred answer left: cancel its statement. A write already sent may still
 * commit (a vote asked again then gets 409). */
static void evals_abort(struct store *st, struct conn *c)
{
    store_api_drop_read(st, c, on_result);
}

/* See api_int.h. */
const struct store_api_sub store_api_evals = {evals_request, evals_abort};
