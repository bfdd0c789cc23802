/* api_int.h - what the read API's files share (store/api.c and the endpoints kept in files of
 * their own, such as api_admin.c): replies in the API's JSON error style, and the table entry
 * through which api.c hands a request to such a file. api.c checks the admin token first, so a
 * sub-API only ever sees authorised requests. */
#ifndef TRILEMMA_STORE_API_INT_H
#define TRILEMMA_STORE_API_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "net/http_parser.h"
#include "net/server.h"
#include "store/pg.h"
#include "store/store_int.h"

struct store;

/* Endpoints in a file of their own. request: serve req if its path is one of the file's and
 * return true (answered at once, or deferred with conn_http_defer); false leaves it to the next.
 * body[0..len) is borrowed for the call; st may be NULL (no database: answer 503). abort: the
 * client of a deferred answer left; drop the file's pending work for c, if any. */
struct store_api_sub {
    bool (*request)(struct store *st, struct conn *c, const struct http_request *req,
                    const char *body, size_t len);
    void (*abort)(struct store *st, struct conn *c);
};

/* api_admin.c: GET /v1/turns (search), POST /v1/golden (a turn into the golden set). */
extern const struct store_api_sub store_api_admin;

/* api_evals.c: the vibe-check sessions and votes, the golden set's review queue (docs/evals.md). */
extern const struct store_api_sub store_api_evals;
/* api_trace.c: GET /v1/turns/{id}/trace, /v1/conversations/{id}/trace, /v1/flags. */
extern const struct store_api_sub store_api_trace;
/* api_traffic.c: GET /v1/traffic (tokens, calls and streams per route and minute or hour). */
extern const struct store_api_sub store_api_traffic;
/* api_capacity.c: GET /v1/costs/provisioned (the hourly provisioned price per turn). */
extern const struct store_api_sub store_api_capacity;

struct jsonw;
/* api_capacity.c, for /v1/costs: the statement summing the provisioned calls of the days
 * from_day..to_day (both included) per deployment (STORE_API_PROVISIONED_COLS columns), and the
 * "provisioned" array written from its rows with the configured hourly prices. */
#define STORE_API_PROVISIONED_COLS 5
void store_api_provisioned_stmt(struct pg_query *q, int64_t from_day, int64_t to_day);
void store_api_write_provisioned(struct jsonw *w, const PGresult *r);

/* The JSON body in b (not consumed) with status and extra header lines ("Name: v\r\n", or
 * NULL); HEAD gets the headers only. */
void store_api_reply(struct conn *c, bool head, int status, struct buf *b, const char *extra);

/* A read-only endpoint's method: GET or HEAD (*head says which) returns true; anything else is
 * answered 405 with its Allow header and returns false. */
bool store_api_get_or_head(struct conn *c, const struct http_request *req, bool *head);

/* A sub-API's abort: drop the pending read of qfn whose context - an xmalloc'd struct whose first
 * member is the struct conn * it answers - belongs to c, and free that context. */
void store_api_drop_read(struct store *st, struct conn *c, store_query_fn qfn);

/* {"error": code, "message": message} with status. */
void store_api_error(struct conn *c, bool head, int status, const char *code, const char *message,
                     const char *extra);

/* Query parameter name of req as a statement's text parameter: percent-decoded into out
 * (NUL-terminated). Returns its length, -1 when absent (or no query), -2 when malformed, longer
 * than outcap - 1 bytes, or not UTF-8 (PostgreSQL refuses such text: a 400, not a failed read). */
int store_api_text_param(const struct http_request *req, const char *name, char *out,
                         size_t outcap);

/* Strict YYYY-MM-DD, a real calendar date in 1970..9999. Returns 0 and the day number (days
 * since 1970-01-01), or -1. */
int store_api_parse_date(const char *s, int64_t *day);
/* Parameter name's value val as store_api_parse_date reads it into *day; 0, or -1 with "bad value
 * for 'name': expected a date YYYY-MM-DD (UTC)" in msg. */
int store_api_date_param(const char *name, const char *val, int64_t *day, char *msg, size_t cap);

/* day (days since the epoch) through the strftime format fmt into out. */
void store_api_format_day(int64_t day, const char *fmt, char *out, size_t cap);

/* One query parameter: k is its index in the names given to store_api_params, val its decoded
 * value. Returns 0, or -1 with msg set. */
typedef int (*store_api_param_fn)(void *ctx, int k, const char *val, char *msg, size_t cap);

/* Walk req's query: every parameter must be one of names[0..n), each at most once, its value
 * shorter than 64 bytes once decoded; fn gets each; seen[k] says which came. Returns 0, or 400
 * with msg (an unknown or repeated parameter, a malformed value, or fn's refusal). */
int store_api_params(const struct http_request *req, const char *const *names, int n, bool *seen,
                     store_api_param_fn fn, void *ctx, char *msg, size_t cap);

/* A from/to day range, both included: to defaults to today (UTC), from to default_days ending
 * with to. Returns 0, or 400 with msg when from is after to. */
int store_api_day_range(bool seen_from, bool seen_to, int default_days, int64_t *from_day,
                        int64_t *to_day, char *msg, size_t cap);

/* The answer to a failed statement: 503 (with Retry-After) when PostgreSQL is away, slow or the
 * failure passes; 500 otherwise (logged). */
void store_api_db_error(struct conn *c, bool head, const struct pg_result *res);

#endif
