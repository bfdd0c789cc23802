/* pg.h - one PostgreSQL connection driven by a worker's io_uring: libpq in non-blocking pipeline
 * mode, its socket polled with one-shot poll requests on the ring, prepared statements made once
 * per connection, reconnection with exponential backoff (100 ms .. 5 s).
 *
 * Work is sent as requests: a list of prepared statements with text parameters, closed by one
 * pipeline Sync, so a request is one round trip however many statements it holds. A request
 * marked as a transaction is wrapped in BEGIN .. COMMIT and is a unit of success: a failed
 * statement aborts the rest (PGRES_PIPELINE_ABORTED) and the whole request reports the server's
 * first error. Requests complete in the order they were sent; each completion runs its callback
 * exactly once (unless cancelled), never from inside pg_submit.
 *
 * Nothing here blocks: the only libpq calls made are the asynchronous ones (PQconnectStart /
 * PQconnectPoll, PQsend*, PQflush, PQconsumeInput, PQisBusy, PQgetResult). */
#ifndef TRILEMMA_STORE_PG_H
#define TRILEMMA_STORE_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "net/loop.h"

struct pg;
struct pg_req;

/* A statement prepared on every (re)connection; requests refer to it by its index. */
struct pg_stmt_def {
    const char *name;
    const char *sql;
    int nparams;
};

/* ---- building a request's statements (plain data: also run by pg_run_blocking) ---- */

#define PG_NULL_PARAM UINT32_MAX

struct pg_stmt {
    uint16_t def; /* index into the connection's pg_stmt_def table */
    uint16_t nparams;
    uint32_t first; /* index of its first parameter in pg_query.offs */
};

struct pg_query {
    struct buf vals; /* parameter values, each NUL-terminated, back to back */
    uint32_t *offs;  /* offset of each value in vals, or PG_NULL_PARAM */
    uint32_t noffs, capoffs;
    struct pg_stmt *stmts;
    uint32_t nstmts, capstmts;
};

void pg_query_init(struct pg_query *q);
void pg_query_free(struct pg_query *q);
void pg_query_reset(struct pg_query *q);
/* Start statement `def`; the parameters that follow belong to it. */
void pg_query_stmt(struct pg_query *q, uint16_t def);
/* A text parameter of n bytes (copied; NUL bytes in s would cut it: the caller keeps them
 * out). s == NULL adds SQL NULL. */
void pg_query_param(struct pg_query *q, const char *s, size_t n);
void pg_query_param_str(struct pg_query *q, const char *s);
void pg_query_param_i64(struct pg_query *q, int64_t v);
void pg_query_paramf(struct pg_query *q, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The parameter values of statement i as libpq wants them (pointers into q). */
void pg_query_values(const struct pg_query *q, uint32_t i, const char **values);

/* ---- results ---- */

enum pg_status {
    PG_OK = 0,
    PG_FAILED = -1, /* the server refused a statement: sqlstate and message say why */
    PG_DOWN = -2,   /* no connection, or it broke before the request completed */
};

struct pg_result {
    enum pg_status status;
    const char *sqlstate;  /* PG_FAILED: the first error's SQLSTATE ("23514"), else "" */
    const char *message;   /* PG_FAILED / PG_DOWN: the server's or libpq's message, else "" */
    PGresult *const *rows; /* PG_OK: one result per statement, in order (tuples or command) */
    uint32_t nrows;
};

/* Runs once per request (unless it was cancelled); r and everything in it is valid during the
 * call only. */
typedef void (*pg_done_fn)(void *ctx, const struct pg_result *r);

/* The connection came up (prepared statements ready) or went down. */
typedef void (*pg_state_fn)(void *ctx, bool up);

/* ---- the connection ---- */

/* Create the connection and start connecting at once. op is the loop op code its polls use (the
 * connection registers the handler). stmts must outlive the connection. name labels log lines
 * ("store.w0.writer"). Never NULL. */
struct pg *pg_create(struct loop *l, uint8_t op, const char *conninfo, const char *name,
                     const struct pg_stmt_def *stmts, uint16_t nstmts, pg_state_fn state_fn,
                     void *state_ctx);
/* Like pg_create, for several connections sharing one op code (a worker has few): no handler
 * is registered; the owner registers one for op and hands each completion whose
 * loop_ud_idx(cqe->user_data) is tag to pg_on_completion(p, cqe) (other idx values, such as a
 * poll_remove's own completion, are for nobody). tag < 0xFFFFFFFF. Never NULL. */
struct pg *pg_create_shared(struct loop *l, uint8_t op, uint32_t tag, const char *conninfo,
                            const char *name, const struct pg_stmt_def *stmts, uint16_t nstmts,
                            pg_state_fn state_fn, void *state_ctx);
/* A completion of the connection's op code (pg_create_shared); stale ones are ignored. */
void pg_on_completion(struct pg *p, struct io_uring_cqe *cqe);
/* Close the connection. Pending requests are dropped without their callbacks. */
void pg_destroy(struct pg *p);

/* Connected, statements prepared. */
bool pg_up(const struct pg *p);
/* Requests submitted and not yet completed. */
uint32_t pg_pending(const struct pg *p);

/* Send q (its contents are copied into the request, so q may be reused at once). txn wraps it
 * in BEGIN .. COMMIT; a transaction request is sent alone (no later request is sent until it
 * completes), so a failure never leaks into the next request. While connecting, the request
 * waits for the connection (and fails with it); while down (waiting out the backoff), it fails
 * with PG_DOWN on a later loop turn. Returns the request (for pg_cancel). */
struct pg_req *pg_submit(struct pg *p, const struct pg_query *q, bool txn, pg_done_fn fn,
                         void *ctx);
/* Its callback will not run. The request still completes on the connection. */
void pg_cancel(struct pg_req *r);

/* A notification (LISTEN/NOTIFY) arrived on the connection: channel and payload are valid
 * during the call only. Runs from the connection's completion handling, never inside
 * pg_submit; the callback may submit. */
typedef void (*pg_notify_fn)(void *ctx, const char *channel, const char *payload);
/* Deliver the connection's notifications to fn (NULL: they are dropped). A LISTEN lasts as long
 * as the connection: after a reconnect the owner must LISTEN again. */
void pg_set_notify(struct pg *p, pg_notify_fn fn, void *ctx);

/* Drop the connection now (as if it broke) and reconnect after the backoff. For tests. */
void pg_reset(struct pg *p);

/* ---- blocking use (main thread only: migrations, replay at start) ---- */

/* Run q on a blocking connection with the same statement table: the statements are prepared on
 * first use (tracked in *prepared, a bitmap of nstmts bits the caller zeroes per connection) and
 * sent as one pipeline, wrapped in BEGIN .. COMMIT when txn. Fills r like a callback would see
 * it; free with pg_result_clear. Returns r->status. */
int pg_run_blocking(PGconn *conn, const struct pg_stmt_def *stmts, uint64_t *prepared,
                    const struct pg_query *q, bool txn, struct pg_result *r);
void pg_result_clear(struct pg_result *r);

/* True for errors that say nothing is wrong with the rows themselves (connection, shutdown,
 * lack of resources, serialization failure, deadlock, lock or statement timeout): retrying the
 * same rows later can succeed. False for data, constraint and SQL errors. */
bool pg_error_transient(const char *sqlstate);

#endif
