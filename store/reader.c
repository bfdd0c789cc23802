/* reader.c - reads on the worker's reader connection: loading a conversation (the owner, the
 * last N messages oldest first, and the last turn, for resume) as three statements in one
 * pipelined request (one round trip, no transaction), and generic queries (the read API).
 * Reads have their own connection so they never wait behind a group commit. */
#include <errno.h>

#include "base/log.h"
#include "base/mem.h"
#include "store/store_int.h"
#include "store/turn_sql.h"

static void op_unlink(struct store_op *op)
{
    struct store *st = op->st;
    if (op->prev)
        op->prev->next = op->next;
    else
        st->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
}

static void on_loaded(void *ctx, const struct pg_result *r)
{
    struct store_op *op = ctx;
    struct store *st = op->st;
    struct turn_sql_conv cv;
    op_unlink(op);
    if (r->status != PG_OK) {
        metric_add(&st->stats.errors[SE_READ], 1);
        log_warn("store.w%d: loading a conversation failed: %s", st->worker, r->message);
        op->fn(op->ctx, -EIO, NULL);
    } else if (turn_sql_conv_parse(r->rows, r->nrows, &cv) < 0) {
        metric_add(&st->stats.errors[SE_READ], 1);
        log_error("store.w%d: unexpected result shape loading a conversation", st->worker);
        op->fn(op->ctx, -EIO, NULL);
    } else {
        op->fn(op->ctx, 0, &cv.c);
        turn_sql_conv_free(&cv);
    }
    xfree(op);
}

static void on_queried(void *ctx, const struct pg_result *r)
{
    struct store_op *op = ctx;
    op_unlink(op);
    if (r->status != PG_OK) {
        metric_add(&op->st->stats.errors[SE_READ], 1);
        log_debug("store.w%d: a query failed: %s", op->st->worker, r->message);
    }
    op->qfn(op->ctx, r);
    xfree(op);
}

static struct store_op *op_new(struct store *st, void *ctx)
{
    struct store_op *op = xcalloc(1, sizeof(*op));
    op->st = st;
    op->ctx = ctx;
    op->next = st->ops;
    if (st->ops)
        st->ops->prev = op;
    st->ops = op;
    return op;
}

/* Run a query on the reader connection; see store_int.h. */
struct store_op *store_query(struct store *st, const struct pg_query *q, bool txn,
                             store_query_fn fn, void *ctx)
{
    struct store_op *op = op_new(st, ctx);
    op->qfn = fn;
    op->req = pg_submit(st->r, q, txn, on_queried, op);
    return op;
}

/* Load a conversation; see store.h. */
struct store_op *store_load_conversation(struct store *st, const char *conversation_id,
                                         uint32_t max_messages, store_read_fn fn, void *ctx)
{
    if (!st) {
        struct store_conversation none = {0};
        fn(ctx, 0, &none);
        return NULL;
    }
    struct store_op *op = op_new(st, ctx);
    op->fn = fn;
    struct pg_query q;
    pg_query_init(&q);
    turn_sql_load(&q, conversation_id, max_messages);
    op->req = pg_submit(st->r, &q, false, on_loaded, op);
    pg_query_free(&q);
    return op;
}

/* Forget a pending read; see store.h. */
void store_cancel(struct store_op *op)
{
    if (!op)
        return;
    pg_cancel(op->req);
    op_unlink(op);
    xfree(op);
}

/* Drop every pending read without its callback. */
void store_reads_drop(struct store *st)
{
    while (st->ops) {
        struct store_op *op = st->ops;
        pg_cancel(op->req);
        op_unlink(op);
        if (op->free_ctx)
            xfree(op->ctx);
        xfree(op);
    }
}
