/* pg.c - a libpq connection on the worker's ring.
 *
 * States: DOWN (waiting out the backoff) -> CONNECTING (PQconnectPoll steps, each waiting for
 * the direction it asked for on whatever PQsocket says now: the socket changes when libpq tries
 * the next address) -> PREPARING (pipeline mode on, every statement sent with PQsendPrepare, one
 * Sync) -> UP. Any failure goes back to DOWN: requests in flight and waiting fail with PG_DOWN,
 * the owner hears "down", and a timer reconnects after 100 ms, doubling up to 5 s.
 *
 * While the connection is open one one-shot poll is armed on its socket: POLLIN always (a
 * server that goes away is noticed even when idle), plus POLLOUT while PQflush has bytes left.
 * Each arm takes a new generation, so the completion of a poll that was replaced is dropped.
 *
 * Results are read in order: every request ends with a Sync, so its results end with
 * PGRES_PIPELINE_SYNC, which is where its callback runs.
 *
 * Known weakness: libpq resolves host names with a blocking getaddrinfo inside PQconnectPoll.
 * Point DATABASE_URL at an IP address (hostaddr=) or a unix socket where that matters. */
#include "store/pg.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "store/store_int.h" /* pg_query_sql, PG_STMT_SQL */

enum pg_state { ST_DOWN, ST_CONNECTING, ST_PREPARING, ST_UP };
enum req_kind { REQ_USER, REQ_PREPARE, REQ_ROLLBACK };

enum {
    BACKOFF_MIN_MS = 100,
    BACKOFF_MAX_MS = 5000,
    CONNECT_TIMEOUT_MS = 10000,
};

struct pg_req {
    struct pg_req *next;
    struct pg *p;
    struct pg_query q;
    enum req_kind kind;
    bool txn;
    bool cancelled;
    bool failed;
    pg_done_fn fn;
    void *ctx;
    PGresult **rows;
    uint32_t nrows, caprows;
    char sqlstate[6];
    char *errmsg;
};

struct req_list {
    struct pg_req *head, *tail;
};

struct pg {
    struct loop *l;
    uint8_t op;
    bool shared_op; /* pg_create_shared: the owner routes the op's completions */
    uint32_t tag;   /* the poll's user_data idx: tells connections on one op apart */
    char *conninfo;
    char *name;
    const struct pg_stmt_def *stmts;
    uint16_t nstmts;
    pg_state_fn state_fn;
    void *state_ctx;
    pg_notify_fn notify_fn; /* LISTEN: notifications received (pg_set_notify) */
    void *notify_ctx;

    PGconn *conn;
    enum pg_state state;
    int poll_fd;
    unsigned poll_mask;
    uint32_t gen;
    bool armed;
    uint32_t backoff_ms;
    uint32_t rnd;
    int depth;   /* > 0 while reading results (callbacks may submit) */
    bool broken; /* sending failed inside pg_submit: fail_timer closes the connection */

    struct req_list sent;    /* in flight, in order */
    struct req_list waiting; /* not sent yet */
    struct req_list doomed;  /* submitted while down: failed from fail_timer */
    uint32_t pending;
    struct timer retry_timer; /* DOWN: reconnect; CONNECTING: give up */
    struct timer fail_timer;
};

static void fail_conn(struct pg *p, const char *why);
static void start_connect(struct pg *p);
static void on_fail_timer(struct loop *l, struct timer *t);

/* ---- queries (plain data) ---- */

/* Start an empty query. */
void pg_query_init(struct pg_query *q)
{
    memset(q, 0, sizeof(*q));
}

/* Release a query's memory. */
void pg_query_free(struct pg_query *q)
{
    buf_free(&q->vals);
    xfree(q->offs);
    xfree(q->stmts);
    memset(q, 0, sizeof(*q));
}

/* Empty the query, keeping its memory. */
void pg_query_reset(struct pg_query *q)
{
    buf_reset(&q->vals);
    q->noffs = 0;
    q->nstmts = 0;
}

/* Start statement `def` of the connection's table. */
void pg_query_stmt(struct pg_query *q, uint16_t def)
{
    if (q->nstmts == q->capstmts) {
        q->capstmts = q->capstmts ? 2 * q->capstmts : 16;
        q->stmts = xrealloc(q->stmts, q->capstmts * sizeof(*q->stmts));
    }
    q->stmts[q->nstmts++] = (struct pg_stmt){.def = def, .nparams = 0, .first = q->noffs};
}

static void add_off(struct pg_query *q, uint32_t off)
{
    if (q->noffs == q->capoffs) {
        q->capoffs = q->capoffs ? 2 * q->capoffs : 64;
        q->offs = xrealloc(q->offs, q->capoffs * sizeof(*q->offs));
    }
    q->offs[q->noffs++] = off;
    q->stmts[q->nstmts - 1].nparams++;
}

/* A parameter of the current statement; NULL s is SQL NULL. */
void pg_query_param(struct pg_query *q, const char *s, size_t n)
{
    if (!s) {
        add_off(q, PG_NULL_PARAM);
        return;
    }
    add_off(q, (uint32_t)buf_size(&q->vals));
    buf_append(&q->vals, s, n);
    buf_append(&q->vals, "", 1);
}

/* A NUL-terminated parameter (NULL = SQL NULL). */
void pg_query_param_str(struct pg_query *q, const char *s)
{
    pg_query_param(q, s, s ? strlen(s) : 0);
}

/* A decimal integer parameter. */
void pg_query_param_i64(struct pg_query *q, int64_t v)
{
    pg_query_paramf(q, "%lld", (long long)v);
}

/* A formatted parameter. */
void pg_query_paramf(struct pg_query *q, const char *fmt, ...)
{
    add_off(q, (uint32_t)buf_size(&q->vals));
    va_list ap;
    va_start(ap, fmt);
    char tmp[128];
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < (int)sizeof(tmp)) {
        buf_append(&q->vals, tmp, (size_t)n + 1);
        return;
    }
    char *dst = buf_reserve(&q->vals, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(dst, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_commit(&q->vals, (size_t)n + 1);
}

/* Start an ad-hoc statement: its SQL text is kept as a hidden first value (not counted in
 * nparams); the parameters that follow belong to it. */
void pg_query_sql(struct pg_query *q, const char *sql)
{
    pg_query_stmt(q, PG_STMT_SQL);
    pg_query_param_str(q, sql);
    q->stmts[q->nstmts - 1].nparams = 0;
}

static const char *stmt_sql(const struct pg_query *q, const struct pg_stmt *s)
{
    return buf_begin(&q->vals) + q->offs[s->first];
}

/* Pointers to statement i's values, for PQsendQueryPrepared / PQsendQueryParams. */
void pg_query_values(const struct pg_query *q, uint32_t i, const char **values)
{
    const struct pg_stmt *s = &q->stmts[i];
    uint32_t first = s->first + (s->def == PG_STMT_SQL ? 1 : 0);
    for (uint16_t k = 0; k < s->nparams; k++) {
        uint32_t off = q->offs[first + k];
        values[k] = off == PG_NULL_PARAM ? NULL : buf_begin(&q->vals) + off;
    }
}

static void query_copy(struct pg_query *dst, const struct pg_query *src)
{
    pg_query_init(dst);
    if (buf_size(&src->vals))
        buf_append(&dst->vals, buf_begin(&src->vals), buf_size(&src->vals));
    dst->noffs = dst->capoffs = src->noffs;
    dst->offs = xmalloc((src->noffs ? src->noffs : 1) * sizeof(*dst->offs));
    if (src->noffs)
        memcpy(dst->offs, src->offs, src->noffs * sizeof(*dst->offs));
    dst->nstmts = dst->capstmts = src->nstmts;
    dst->stmts = xmalloc((src->nstmts ? src->nstmts : 1) * sizeof(*dst->stmts));
    if (src->nstmts)
        memcpy(dst->stmts, src->stmts, src->nstmts * sizeof(*dst->stmts));
}

/* ---- errors ---- */

/* See pg.h. Classes 08 (connection), 40 (rollback: serialization, deadlock), 53 (resources),
 * 55P03 (lock not available), 57 (operator intervention: shutdown, statement timeout), 58
 * (system error) and no SQLSTATE at all (libpq's own errors) are transient. */
bool pg_error_transient(const char *sqlstate)
{
    if (!sqlstate || strlen(sqlstate) != 5)
        return true;
    if (!strncmp(sqlstate, "08", 2) || !strncmp(sqlstate, "40", 2) || !strncmp(sqlstate, "53", 2) ||
        !strncmp(sqlstate, "57", 2) || !strncmp(sqlstate, "58", 2) || !strcmp(sqlstate, "55P03"))
        return true;
    return false;
}

static char *error_text(const PGresult *res)
{
    const char *prim = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    struct buf b = {0};
    buf_append_str(&b, prim ? prim : PQresultErrorMessage(res));
    if (detail)
        buf_printf(&b, " (%s)", detail);
    buf_append(&b, "", 1);
    char *s = xstrdup(buf_begin(&b));
    buf_free(&b);
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
    return s;
}

static void req_record_error(struct pg_req *r, const PGresult *res)
{
    if (r->failed)
        return;
    r->failed = true;
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", st ? st : "");
    r->errmsg = error_text(res);
}

/* ---- request lists ---- */

static void list_push(struct req_list *l, struct pg_req *r)
{
    r->next = NULL;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
}

static void list_push_front(struct req_list *l, struct pg_req *r)
{
    r->next = l->head;
    l->head = r;
    if (!l->tail)
        l->tail = r;
}

static struct pg_req *list_pop(struct req_list *l)
{
    struct pg_req *r = l->head;
    if (r) {
        l->head = r->next;
        if (!l->head)
            l->tail = NULL;
        r->next = NULL;
    }
    return r;
}

static void req_free(struct pg_req *r)
{
    for (uint32_t i = 0; i < r->nrows; i++)
        PQclear(r->rows[i]);
    xfree(r->rows);
    xfree(r->errmsg);
    pg_query_free(&r->q);
    xfree(r);
}

/* The request is over: tell its owner (unless cancelled or internal) and free it. */
static void req_finish(struct pg *p, struct pg_req *r, enum pg_status status, const char *msg)
{
    if (r->kind == REQ_USER)
        p->pending--;
    if (r->kind == REQ_USER && !r->cancelled && r->fn) {
        struct pg_result res = {.status = status, .sqlstate = "", .message = msg ? msg : ""};
        if (status == PG_FAILED) {
            res.sqlstate = r->sqlstate;
            res.message = r->errmsg ? r->errmsg : "statement failed";
        } else if (status == PG_OK) {
            /* a transaction's BEGIN and COMMIT results are not the caller's */
            uint32_t skip = r->txn && r->nrows >= 2 ? 1 : 0;
            res.rows = r->rows + skip;
            res.nrows = r->nrows - 2 * skip;
        }
        r->fn(r->ctx, &res);
    }
    req_free(r);
}

static void fail_list(struct pg *p, struct req_list *l, const char *why)
{
    struct pg_req *r;
    while ((r = list_pop(l)))
        req_finish(p, r, PG_DOWN, why);
}

/* ---- polls ---- */

static void cancel_poll(struct pg *p)
{
    if (!p->armed)
        return;
    struct io_uring_sqe *sqe = loop_sqe(p->l, loop_ud(p->op, 0xFFFFFF, 0xFFFFFFFF));
    io_uring_prep_poll_remove(sqe, loop_ud(p->op, p->gen, p->tag));
    p->armed = false;
}

static void arm_poll(struct pg *p, int fd, unsigned mask)
{
    if (p->armed && p->poll_fd == fd && p->poll_mask == mask)
        return;
    cancel_poll(p);
    p->gen = (p->gen + 1) & 0xFFFFFF;
    if (p->gen == 0xFFFFFF)
        p->gen = 0; /* 0xFFFFFF marks poll_remove completions */
    p->poll_fd = fd;
    p->poll_mask = mask;
    io_uring_prep_poll_add(loop_sqe(p->l, loop_ud(p->op, p->gen, p->tag)), fd, mask);
    p->armed = true;
}

/* ---- sending ---- */

static bool send_prepare(struct pg *p)
{
    for (uint16_t i = 0; i < p->nstmts; i++)
        if (!PQsendPrepare(p->conn, p->stmts[i].name, p->stmts[i].sql, p->stmts[i].nparams, NULL))
            return false;
    return PQpipelineSync(p->conn) == 1;
}

static bool send_one(struct pg *p, struct pg_req *r)
{
    if (r->kind == REQ_PREPARE)
        return send_prepare(p);
    if (r->kind == REQ_ROLLBACK)
        return PQsendQueryParams(p->conn, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0) &&
               PQpipelineSync(p->conn) == 1;
    if (r->txn && !PQsendQueryParams(p->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0))
        return false;
    for (uint32_t i = 0; i < r->q.nstmts; i++) {
        const struct pg_stmt *s = &r->q.stmts[i];
        const char *values[s->nparams ? s->nparams : 1];
        pg_query_values(&r->q, i, values);
        if (s->def == PG_STMT_SQL) {
            if (!PQsendQueryParams(p->conn, stmt_sql(&r->q, s), s->nparams, NULL, values, NULL,
                                   NULL, 0))
                return false;
        } else if (s->def >= p->nstmts || !PQsendQueryPrepared(p->conn, p->stmts[s->def].name,
                                                               s->nparams, values, NULL, NULL, 0)) {
            return false;
        }
    }
    if (r->txn && !PQsendQueryParams(p->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0))
        return false;
    return PQpipelineSync(p->conn) == 1;
}

/* Send what waits, in order; a transaction goes alone. Returns false if the connection broke. */
static bool send_waiting(struct pg *p)
{
    while (p->state == ST_UP && p->waiting.head) {
        if (p->sent.tail && (p->sent.tail->txn || p->sent.tail->kind == REQ_ROLLBACK))
            break; /* wait for the transaction to end before sending anything after it */
        if (p->waiting.head->txn && p->sent.head)
            break;
        struct pg_req *r = list_pop(&p->waiting);
        list_push(&p->sent, r);
        if (!send_one(p, r))
            return false;
    }
    return true;
}

/* Flush what libpq holds and wait for input (and for writability while bytes are left). */
static void flush_and_arm(struct pg *p)
{
    int f = PQflush(p->conn);
    if (f < 0) {
        fail_conn(p, PQerrorMessage(p->conn));
        return;
    }
    arm_poll(p, PQsocket(p->conn), POLLIN | (f == 1 ? POLLOUT : 0));
}

/* ---- results ---- */

static void req_keep(struct pg_req *r, PGresult *res)
{
    if (r->nrows == r->caprows) {
        r->caprows = r->caprows ? 2 * r->caprows : 8;
        r->rows = xrealloc(r->rows, r->caprows * sizeof(*r->rows));
    }
    r->rows[r->nrows++] = res;
}

static void on_prepared(struct pg *p, struct pg_req *r)
{
    if (r->failed) {
        char why[512];
        snprintf(why, sizeof(why), "preparing statements failed: %s", r->errmsg ? r->errmsg : "?");
        req_free(r);
        fail_conn(p, why);
        return;
    }
    req_free(r);
    timer_disarm(p->l, &p->retry_timer);
    p->state = ST_UP;
    p->backoff_ms = BACKOFF_MIN_MS;
    log_info("%s: connected", p->name);
    if (p->state_fn)
        p->state_fn(p->state_ctx, true);
}

/* A Sync arrived: the request at the head is complete. */
static void complete_head(struct pg *p)
{
    struct pg_req *r = list_pop(&p->sent);
    if (r->kind == REQ_PREPARE) {
        on_prepared(p, r);
        return;
    }
    if (r->txn && r->failed) {
        /* The transaction may be left open and aborted: end it before anything else is sent
         * (harmless when the failing COMMIT already ended it). */
        struct pg_req *rb = xcalloc(1, sizeof(*rb));
        rb->p = p;
        rb->kind = REQ_ROLLBACK;
        list_push_front(&p->waiting, rb);
    }
    req_finish(p, r, r->failed ? PG_FAILED : PG_OK, NULL);
}

/* Read every result that has fully arrived. Returns false if the connection went down. */
static bool read_results(struct pg *p)
{
    PGconn *conn = p->conn;
    int nulls = 0;
    while (p->conn == conn && p->sent.head) {
        if (PQisBusy(conn))
            break;
        PGresult *res = PQgetResult(conn);
        if (!res) {
            if (++nulls > 1)
                break; /* nothing more is coming now */
            continue;
        }
        nulls = 0;
        struct pg_req *r = p->sent.head;
        switch (PQresultStatus(res)) {
        case PGRES_PIPELINE_SYNC:
            PQclear(res);
            complete_head(p);
            break;
        case PGRES_FATAL_ERROR:
        case PGRES_NONFATAL_ERROR:
        case PGRES_BAD_RESPONSE:
            req_record_error(r, res);
            PQclear(res);
            break;
        case PGRES_PIPELINE_ABORTED:
            PQclear(res);
            break;
        default:
            if (r->kind == REQ_USER)
                req_keep(r, res);
            else
                PQclear(res);
            break;
        }
    }
    return p->conn == conn;
}

/* Hand over the notifications libpq has collected (the socket is read for results anyway). */
static bool deliver_notifies(struct pg *p)
{
    PGconn *conn = p->conn;
    PGnotify *n;
    while (p->conn == conn && (n = PQnotifies(conn))) {
        if (p->notify_fn)
            p->notify_fn(p->notify_ctx, n->relname, n->extra ? n->extra : "");
        PQfreemem(n);
    }
    return p->conn == conn;
}

static void on_io(struct pg *p)
{
    if (!PQconsumeInput(p->conn)) {
        fail_conn(p, PQerrorMessage(p->conn));
        return;
    }
    p->depth++;
    bool alive = read_results(p) && deliver_notifies(p);
    p->depth--;
    if (!alive)
        return;
    if (!send_waiting(p)) {
        fail_conn(p, PQerrorMessage(p->conn));
        return;
    }
    flush_and_arm(p);
}

/* ---- connecting ---- */

/* Notices (e.g. the WARNING of a ROLLBACK after a COMMIT that already ended the transaction)
 * are not errors; libpq would print them to stderr. */
static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static void begin_session(struct pg *p)
{
    PQsetNoticeProcessor(p->conn, quiet_notice, NULL);
    if (PQsetnonblocking(p->conn, 1) != 0 || !PQenterPipelineMode(p->conn)) {
        fail_conn(p, PQerrorMessage(p->conn));
        return;
    }
    p->state = ST_PREPARING;
    struct pg_req *r = xcalloc(1, sizeof(*r));
    r->p = p;
    r->kind = REQ_PREPARE;
    list_push(&p->sent, r);
    if (!send_prepare(p)) {
        fail_conn(p, PQerrorMessage(p->conn));
        return;
    }
    flush_and_arm(p);
}

static void connect_step(struct pg *p, PostgresPollingStatusType st)
{
    switch (st) {
    case PGRES_POLLING_READING:
        arm_poll(p, PQsocket(p->conn), POLLIN);
        break;
    case PGRES_POLLING_WRITING:
        arm_poll(p, PQsocket(p->conn), POLLOUT);
        break;
    case PGRES_POLLING_OK:
        begin_session(p);
        break;
    default:
        fail_conn(p, PQerrorMessage(p->conn));
        break;
    }
}

static void on_connect_timeout(struct loop *l, struct timer *t)
{
    (void)l;
    struct pg *p = (struct pg *)((char *)t - offsetof(struct pg, retry_timer));
    if (p->state == ST_CONNECTING || p->state == ST_PREPARING)
        fail_conn(p, "connect timed out");
    else if (p->state == ST_DOWN)
        start_connect(p);
}

static void start_connect(struct pg *p)
{
    p->conn = PQconnectStart(p->conninfo);
    if (!p->conn || PQstatus(p->conn) == CONNECTION_BAD) {
        fail_conn(p, p->conn ? PQerrorMessage(p->conn) : "out of memory");
        return;
    }
    p->state = ST_CONNECTING;
    timer_arm(p->l, &p->retry_timer, loop_now_ms(p->l) + CONNECT_TIMEOUT_MS, on_connect_timeout);
    /* "as if PQconnectPoll last returned PGRES_POLLING_WRITING" (libpq docs) */
    connect_step(p, PGRES_POLLING_WRITING);
}

/* The connection is unusable: close it, fail what was pending, reconnect after the backoff. */
static void fail_conn(struct pg *p, const char *why)
{
    bool was_up = p->state == ST_UP;
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", why && *why ? why : "connection lost");
    msg[strcspn(msg, "\n")] = '\0';
    if (was_up || p->backoff_ms >= BACKOFF_MAX_MS || p->backoff_ms == BACKOFF_MIN_MS)
        log_warn("%s: %s (retrying in %u ms)", p->name, msg, (unsigned)p->backoff_ms);
    cancel_poll(p);
    if (p->conn)
        PQfinish(p->conn);
    p->conn = NULL;
    p->broken = false;
    p->state = ST_DOWN;
    p->rnd = p->rnd * 1103515245u + 12345u;
    uint32_t delay = p->backoff_ms - p->backoff_ms / 4 + (p->rnd >> 16) % (p->backoff_ms / 2 + 1);
    timer_arm(p->l, &p->retry_timer, loop_now_ms(p->l) + delay, on_connect_timeout);
    p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
    /* internal requests (prepare, rollback) die with the connection */
    struct pg_req *r;
    while ((r = list_pop(&p->sent)))
        req_finish(p, r, PG_DOWN, msg);
    while ((r = list_pop(&p->waiting)))
        req_finish(p, r, PG_DOWN, msg);
    if (was_up && p->state_fn)
        p->state_fn(p->state_ctx, false);
}

/* A poll completion of p's op code; see pg.h. */
void pg_on_completion(struct pg *p, struct io_uring_cqe *cqe)
{
    if (!p || !p->armed || loop_ud_gen(cqe->user_data) != p->gen ||
        loop_ud_idx(cqe->user_data) != p->tag)
        return; /* a replaced poll, or a poll_remove's own completion */
    p->armed = false;
    if (p->state == ST_CONNECTING) {
        connect_step(p, PQconnectPoll(p->conn));
        return;
    }
    if (p->state == ST_PREPARING || p->state == ST_UP)
        on_io(p);
}

static void on_poll(struct loop *l, struct io_uring_cqe *cqe, void *ctx)
{
    (void)l;
    pg_on_completion(ctx, cqe);
}

static void on_fail_timer(struct loop *l, struct timer *t)
{
    (void)l;
    struct pg *p = (struct pg *)((char *)t - offsetof(struct pg, fail_timer));
    if (p->broken && p->conn)
        fail_conn(p, PQerrorMessage(p->conn));
    /* callbacks may submit again (and land on doomed again): fail only what is there now */
    struct req_list now = p->doomed;
    p->doomed.head = p->doomed.tail = NULL;
    fail_list(p, &now, "not connected to PostgreSQL");
}

/* ---- public ---- */

static struct pg *pg_new(struct loop *l, uint8_t op, uint32_t tag, const char *conninfo,
                         const char *name, const struct pg_stmt_def *stmts, uint16_t nstmts,
                         pg_state_fn state_fn, void *state_ctx)
{
    struct pg *p = xcalloc(1, sizeof(*p));
    p->l = l;
    p->op = op;
    p->tag = tag;
    p->conninfo = xstrdup(conninfo);
    p->name = xstrdup(name);
    p->stmts = stmts;
    p->nstmts = nstmts;
    p->state_fn = state_fn;
    p->state_ctx = state_ctx;
    p->backoff_ms = BACKOFF_MIN_MS;
    p->rnd = (uint32_t)(uintptr_t)p ^ (uint32_t)loop_now_ms(l);
    return p;
}

/* Create and start connecting; see pg.h. */
struct pg *pg_create(struct loop *l, uint8_t op, const char *conninfo, const char *name,
                     const struct pg_stmt_def *stmts, uint16_t nstmts, pg_state_fn state_fn,
                     void *state_ctx)
{
    struct pg *p = pg_new(l, op, 0, conninfo, name, stmts, nstmts, state_fn, state_ctx);
    loop_set_handler(l, op, on_poll, p);
    start_connect(p);
    return p;
}

/* Create one of several connections on one op code; see pg.h. */
struct pg *pg_create_shared(struct loop *l, uint8_t op, uint32_t tag, const char *conninfo,
                            const char *name, const struct pg_stmt_def *stmts, uint16_t nstmts,
                            pg_state_fn state_fn, void *state_ctx)
{
    struct pg *p = pg_new(l, op, tag, conninfo, name, stmts, nstmts, state_fn, state_ctx);
    p->shared_op = true;
    start_connect(p);
    return p;
}

/* Close the connection; pending requests are dropped silently. */
void pg_destroy(struct pg *p)
{
    if (!p)
        return;
    cancel_poll(p);
    if (!p->shared_op) /* completions still in flight are ignored (the owner's, by tag) */
        loop_set_handler(p->l, p->op, NULL, NULL);
    timer_disarm(p->l, &p->retry_timer);
    timer_disarm(p->l, &p->fail_timer);
    struct req_list *lists[] = {&p->sent, &p->waiting, &p->doomed};
    for (int i = 0; i < 3; i++) {
        struct pg_req *r;
        while ((r = list_pop(lists[i])))
            req_free(r);
    }
    if (p->conn)
        PQfinish(p->conn);
    xfree(p->conninfo);
    xfree(p->name);
    xfree(p);
}

/* Connected and the statements prepared: requests are sent at once. */
bool pg_up(const struct pg *p)
{
    return p && p->state == ST_UP;
}

/* Requests submitted whose callbacks have not run yet. */
uint32_t pg_pending(const struct pg *p)
{
    return p->pending;
}

/* Queue q for sending; see pg.h. */
struct pg_req *pg_submit(struct pg *p, const struct pg_query *q, bool txn, pg_done_fn fn, void *ctx)
{
    struct pg_req *r = xcalloc(1, sizeof(*r));
    r->p = p;
    r->kind = REQ_USER;
    r->txn = txn;
    r->fn = fn;
    r->ctx = ctx;
    query_copy(&r->q, q);
    p->pending++;
    if (p->state == ST_CONNECTING || p->state == ST_PREPARING) {
        list_push(&p->waiting, r); /* sent once up, failed if the attempt fails */
        return r;
    }
    if (p->state != ST_UP) {
        list_push(&p->doomed, r);
        if (!timer_armed(&p->fail_timer))
            timer_arm(p->l, &p->fail_timer, loop_now_ms(p->l), on_fail_timer);
        return r;
    }
    list_push(&p->waiting, r);
    if (p->depth || p->broken)
        return r; /* sent when the results being read are done / failed with the connection */
    int f = send_waiting(p) ? PQflush(p->conn) : -1;
    if (f < 0) {
        /* fail it from the timer: never run callbacks inside pg_submit */
        p->broken = true;
        timer_arm(p->l, &p->fail_timer, loop_now_ms(p->l), on_fail_timer);
        return r;
    }
    arm_poll(p, PQsocket(p->conn), POLLIN | (f == 1 ? POLLOUT : 0));
    return r;
}

/* The callback of r will not run. */
void pg_cancel(struct pg_req *r)
{
    if (r)
        r->cancelled = true;
}

/* Where notifications go; see pg.h. */
void pg_set_notify(struct pg *p, pg_notify_fn fn, void *ctx)
{
    p->notify_fn = fn;
    p->notify_ctx = ctx;
}

/* Drop the connection as if it broke. */
void pg_reset(struct pg *p)
{
    if (p->state != ST_DOWN)
        fail_conn(p, "connection reset");
}

/* ---- blocking ---- */

static int prepare_blocking(PGconn *conn, const struct pg_stmt_def *stmts, uint64_t *prepared,
                            const struct pg_query *q, struct pg_result *r)
{
    for (uint32_t i = 0; i < q->nstmts; i++) {
        uint16_t d = q->stmts[i].def;
        if (d == PG_STMT_SQL || (prepared[d / 64] & (1ull << (d % 64))))
            continue;
        PGresult *res = PQprepare(conn, stmts[d].name, stmts[d].sql, stmts[d].nparams, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            r->status = st ? PG_FAILED : PG_DOWN;
            r->sqlstate = xstrdup(st ? st : "");
            r->message = error_text(res);
            PQclear(res);
            return -1;
        }
        PQclear(res);
        prepared[d / 64] |= 1ull << (d % 64);
    }
    return 0;
}

static bool send_blocking(PGconn *conn, const struct pg_stmt_def *stmts, const struct pg_query *q,
                          bool txn)
{
    if (txn && !PQsendQueryParams(conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0))
        return false;
    for (uint32_t i = 0; i < q->nstmts; i++) {
        const struct pg_stmt *s = &q->stmts[i];
        const char *values[s->nparams ? s->nparams : 1];
        pg_query_values(q, i, values);
        if (s->def == PG_STMT_SQL
                ? !PQsendQueryParams(conn, stmt_sql(q, s), s->nparams, NULL, values, NULL, NULL, 0)
                : !PQsendQueryPrepared(conn, stmts[s->def].name, s->nparams, values, NULL, NULL, 0))
            return false;
    }
    if (txn && !PQsendQueryParams(conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0))
        return false;
    return PQpipelineSync(conn) == 1;
}

/* Run q on a blocking connection; see pg.h. The replies of one query are small (a command tag
 * per statement), so sending it all before reading cannot fill both socket buffers. */
int pg_run_blocking(PGconn *conn, const struct pg_stmt_def *stmts, uint64_t *prepared,
                    const struct pg_query *q, bool txn, struct pg_result *r)
{
    struct pg_req req = {.txn = txn, .kind = REQ_USER};
    memset(r, 0, sizeof(*r));
    if (prepare_blocking(conn, stmts, prepared, q, r) < 0)
        return r->status;
    if (!PQenterPipelineMode(conn) || !send_blocking(conn, stmts, q, txn)) {
        r->status = PG_DOWN;
        r->message = xstrdup(PQerrorMessage(conn));
        PQexitPipelineMode(conn);
        return r->status;
    }
    bool broken = false;
    for (;;) {
        PGresult *res = PQgetResult(conn);
        if (!res) {
            if (PQstatus(conn) == CONNECTION_BAD) {
                broken = true;
                break;
            }
            continue;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            break;
        }
        if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR || st == PGRES_BAD_RESPONSE)
            req_record_error(&req, res);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
            req_keep(&req, res);
        else
            PQclear(res);
    }
    PQexitPipelineMode(conn);
    if (broken) {
        r->status = PG_DOWN;
        r->message = xstrdup(PQerrorMessage(conn));
    } else if (req.failed) {
        r->status = PG_FAILED;
        r->sqlstate = xstrdup(req.sqlstate);
        r->message = req.errmsg ? xstrdup(req.errmsg) : xstrdup("statement failed");
        if (txn)
            PQclear(PQexec(conn, "ROLLBACK"));
    } else {
        uint32_t skip = txn && req.nrows >= 2 ? 1 : 0;
        r->nrows = req.nrows - 2 * skip;
        PGresult **rows = xcalloc(r->nrows ? r->nrows : 1, sizeof(*rows));
        memcpy(rows, req.rows + skip, r->nrows * sizeof(*rows));
        if (skip) {
            PQclear(req.rows[0]);
            PQclear(req.rows[req.nrows - 1]);
        }
        r->rows = rows;
        req.nrows = 0;
    }
    for (uint32_t i = 0; i < req.nrows; i++)
        PQclear(req.rows[i]);
    xfree(req.rows);
    xfree(req.errmsg);
    return r->status;
}

/* Free what pg_run_blocking put in r. */
void pg_result_clear(struct pg_result *r)
{
    for (uint32_t i = 0; i < r->nrows; i++)
        PQclear(r->rows[i]);
    xfree((void *)r->rows);
    xfree((void *)r->sqlstate);
    xfree((void *)r->message);
    memset(r, 0, sizeof(*r));
}
