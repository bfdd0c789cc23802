/* turn_state.c - running-turn rows, their leases, and waiting for a turn running elsewhere
 * (see turn_state.h). Everything goes through the worker's reader connection as ad-hoc
 * statements (store_query): the writes here are single rows, never part of a group commit, and
 * nothing waits for them but a resume.
 *
 * A wait is two steps at most per change: check (close stale rows as interrupted, claim the
 * user's live one), and if one was claimed, LISTEN on the conversation's channel and claim again
 * in the same round trip (the statements of one pipelined request are one implicit
 * transaction: a commit racing the LISTEN either finds our claim, and notifies, or deleted the
 * row before it, and the second claim finds nothing). Then nothing runs until the notification,
 * or the live row's lease end (its owner may have died: check again), or the deadline. */
#include "store/turn_state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "store/store_int.h"
#include "store/turn_sql.h"

#define CHANNEL_PREFIX "trilemma_turn_"

static const char begin_sql[] =
    "INSERT INTO turn_state (turn_id, conversation_id, user_sub, owner, state, started_at, "
    "lease_until) SELECT $1, $2, $3, $4, 'running', $5::timestamptz, now() + $6::bigint * "
    "interval '1 millisecond' WHERE NOT EXISTS (SELECT 1 FROM turns WHERE id = $1 AND "
    "started_at = $5::timestamptz) ON CONFLICT (turn_id) DO NOTHING";
/* SKIP LOCKED: a row locked by its commit (deleting it) or by a resume's claim needs no renewal
 * now, and waiting for it while holding the others' locks could deadlock with a group commit
 * that deletes several of them in another order (and would hold up the reader's pipeline). */
static const char renew_sql[] =
    "UPDATE turn_state SET lease_until = now() + $2::bigint * interval '1 millisecond' "
    "WHERE turn_id IN (SELECT turn_id FROM turn_state WHERE turn_id = ANY($1::text[]) AND "
    "state = 'running' FOR UPDATE SKIP LOCKED)";
static const char claimed_sql[] = "SELECT claimed FROM turn_state WHERE turn_id = $1";
static const char stale_sql[] =
    "UPDATE turn_state SET state = 'interrupted', ended_at = now() WHERE conversation_id = $1 "
    "AND state = 'running' AND lease_until < now() RETURNING turn_id, user_sub";
static const char claim_sql[] =
    "UPDATE turn_state SET claimed = true WHERE conversation_id = $1 AND user_sub = $2 AND "
    "state = 'running' RETURNING turn_id, owner, greatest(0, (extract(epoch FROM lease_until - "
    "now()) * 1000)::bigint)";

struct tstate_wait {
    struct tstate_wait *next, *prev;
    struct tstate *ts;
    char conv[33];
    char *user;
    uint64_t deadline_ms;
    tstate_await_fn fn;
    void *ctx;
    struct store_op *op;
    struct timer timer;
    bool listening; /* LISTEN sent (UNLISTEN at the end unless another waiter needs it) */
    bool again;     /* notified while a check was in flight: check once more after it */
    struct tstate_found found;
};

/* A turn of this worker with a row. Its insert is answered once written > seq. */
struct running {
    char id[33];
    bool orphan_risk; /* committing before its insert was answered: delete the row after */
    uint64_t seq;
};

struct tstate {
    struct store *st;
    char owner[201];
    size_t process_len; /* owner up to and including its last '/' */
    uint32_t lease_ms;
    struct running *running; /* turns started here and not ended: their leases are renewed */
    uint32_t n_running, cap_running;
    uint64_t begun, written; /* row inserts sent / answered (the reader answers in order) */
    struct timer renew_timer;
    struct tstate_wait *waits;
};

static void on_notify(void *ctx, const char *channel, const char *payload);

/* Create the worker's turn-state handle; see turn_state.h. */
struct tstate *tstate_create(struct store *st, const char *owner, uint32_t lease_ms)
{
    if (!st)
        return NULL;
    struct tstate *ts = xcalloc(1, sizeof(*ts));
    ts->st = st;
    snprintf(ts->owner, sizeof(ts->owner), "%s", owner);
    const char *slash = strrchr(ts->owner, '/');
    ts->process_len = slash ? (size_t)(slash - ts->owner) + 1 : strlen(ts->owner);
    ts->lease_ms = lease_ms ? lease_ms : 1;
    pg_set_notify(st->r, on_notify, ts);
    return ts;
}

/* Drop everything: waits end without their callbacks (their owners are going away too). */
void tstate_destroy(struct tstate *ts)
{
    if (!ts)
        return;
    while (ts->waits) {
        struct tstate_wait *w = ts->waits;
        ts->waits = w->next;
        timer_disarm(ts->st->l, &w->timer);
        store_cancel(w->op);
        xfree(w->user);
        xfree(w);
    }
    timer_disarm(ts->st->l, &ts->renew_timer);
    pg_set_notify(ts->st->r, NULL, NULL);
    xfree(ts->running);
    xfree(ts);
}

static void on_fired(void *ctx, const struct pg_result *r)
{
    struct tstate *ts = ctx;
    if (r->status != PG_OK)
        log_debug("store.w%d: a turn_state write failed: %s", ts->st->worker, r->message);
}

/* Fire q on the reader without waiting for it (its op frees itself when it completes). */
static void fire(struct tstate *ts, const struct pg_query *q)
{
    store_query(ts->st, q, false, on_fired, ts);
}

static void renew(struct loop *l, struct timer *t)
{
    struct tstate *ts = (struct tstate *)((char *)t - offsetof(struct tstate, renew_timer));
    if (!ts->n_running)
        return;
    struct pg_query q;
    pg_query_init(&q);
    pg_query_sql(&q, renew_sql);
    struct buf ids = {0};
    buf_append(&ids, "{", 1);
    for (uint32_t i = 0; i < ts->n_running; i++)
        buf_printf(&ids, "%s%s", i ? "," : "", ts->running[i].id);
    buf_append(&ids, "}", 1);
    pg_query_param(&q, buf_begin(&ids), buf_size(&ids));
    pg_query_param_i64(&q, ts->lease_ms);
    fire(ts, &q);
    pg_query_free(&q);
    buf_free(&ids);
    timer_arm(l, t, loop_now_ms(l) + ts->lease_ms / 3 + 1, renew);
}

static void on_begun(void *ctx, const struct pg_result *r)
{
    struct tstate *ts = ctx;
    ts->written++;
    on_fired(ctx, r);
}

/* Write the turn's row; see turn_state.h. */
void tstate_begin(struct tstate *ts, const char *turn_id, const char *conversation_id,
                  const char *user_sub, int64_t started_unix_ms)
{
    if (!ts)
        return;
    char at[40];
    turn_sql_time(started_unix_ms, at);
    struct pg_query q;
    pg_query_init(&q);
    pg_query_sql(&q, begin_sql);
    pg_query_param_str(&q, turn_id);
    pg_query_param_str(&q, conversation_id);
    pg_query_param_str(&q, user_sub);
    pg_query_param_str(&q, ts->owner);
    pg_query_param_str(&q, at);
    pg_query_param_i64(&q, ts->lease_ms);
    store_query(ts->st, &q, false, on_begun, ts);
    pg_query_free(&q);
    if (ts->n_running == ts->cap_running) {
        ts->cap_running = ts->cap_running ? 2 * ts->cap_running : 16;
        ts->running = xrealloc(ts->running, ts->cap_running * sizeof(*ts->running));
    }
    struct running *r = &ts->running[ts->n_running++];
    snprintf(r->id, sizeof(r->id), "%s", turn_id);
    r->orphan_risk = false;
    r->seq = ts->begun++;
    if (!timer_armed(&ts->renew_timer))
        timer_arm(ts->st->l, &ts->renew_timer, loop_now_ms(ts->st->l) + ts->lease_ms / 3 + 1,
                  renew);
}

/* The turn is handed to the store; see turn_state.h. */
void tstate_committing(struct tstate *ts, const char *turn_id)
{
    if (!ts)
        return;
    for (uint32_t i = 0; i < ts->n_running; i++)
        if (strcmp(ts->running[i].id, turn_id) == 0)
            ts->running[i].orphan_risk = ts->written <= ts->running[i].seq;
}

/* Stop renewing the turn; see turn_state.h. */
void tstate_end(struct tstate *ts, const char *turn_id)
{
    if (!ts)
        return;
    for (uint32_t i = 0; i < ts->n_running; i++)
        if (strcmp(ts->running[i].id, turn_id) == 0) {
            if (ts->running[i].orphan_risk) {
                /* after the insert on the same connection, whenever it lands */
                struct pg_query q;
                pg_query_init(&q);
                pg_query_sql(&q, "DELETE FROM turn_state WHERE turn_id = $1");
                pg_query_param_str(&q, turn_id);
                fire(ts, &q);
                pg_query_free(&q);
            }
            ts->running[i] = ts->running[--ts->n_running];
            break;
        }
    if (!ts->n_running)
        timer_disarm(ts->st->l, &ts->renew_timer);
}

struct tstate_claim {
    struct store_op *op;
    tstate_claimed_fn fn;
    void *ctx;
};

static void on_claimed(void *ctx, const struct pg_result *r)
{
    struct tstate_claim c = *(struct tstate_claim *)ctx;
    xfree(ctx);
    if (r->status != PG_OK || r->nrows < 1) {
        c.fn(c.ctx, -EIO);
        return;
    }
    PGresult *res = r->rows[0];
    c.fn(c.ctx, PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0);
}

/* Ask whether a resume claimed the turn; see turn_state.h. */
struct tstate_claim *tstate_claimed(struct tstate *ts, const char *turn_id, tstate_claimed_fn fn,
                                    void *ctx)
{
    struct tstate_claim *c = xmalloc(sizeof(*c));
    c->fn = fn;
    c->ctx = ctx;
    struct pg_query q;
    pg_query_init(&q);
    pg_query_sql(&q, claimed_sql);
    pg_query_param_str(&q, turn_id);
    c->op = store_query(ts->st, &q, false, on_claimed, c);
    pg_query_free(&q);
    return c;
}

/* Drop a claim question before its answer; see turn_state.h. */
void tstate_claim_cancel(struct tstate_claim *c)
{
    if (!c)
        return;
    store_cancel(c->op);
    xfree(c);
}

/* ---- waiting for a turn running elsewhere ---- */

static void check(struct tstate_wait *w);

static bool other_waiter(const struct tstate_wait *w)
{
    for (const struct tstate_wait *o = w->ts->waits; o; o = o->next)
        if (o != w && o->listening && strcmp(o->conv, w->conv) == 0)
            return true;
    return false;
}

static void finish(struct tstate_wait *w, int result)
{
    struct tstate *ts = w->ts;
    if (w->prev)
        w->prev->next = w->next;
    else
        ts->waits = w->next;
    if (w->next)
        w->next->prev = w->prev;
    timer_disarm(ts->st->l, &w->timer);
    store_cancel(w->op);
    if (w->listening && !other_waiter(w)) {
        struct pg_query q;
        pg_query_init(&q);
        char sql[64];
        snprintf(sql, sizeof(sql), "UNLISTEN " CHANNEL_PREFIX "%s", w->conv);
        pg_query_sql(&q, sql);
        fire(ts, &q);
        pg_query_free(&q);
    }
    struct tstate_found f = w->found;
    f.result = result;
    tstate_await_fn fn = w->fn;
    void *ctx = w->ctx;
    xfree(w->user);
    xfree(w);
    fn(ctx, &f);
}

static void on_timer(struct loop *l, struct timer *t)
{
    struct tstate_wait *w = (struct tstate_wait *)((char *)t - offsetof(struct tstate_wait, timer));
    if (loop_now_ms(l) >= w->deadline_ms)
        finish(w, -ETIMEDOUT);
    else
        check(w);
}

/* The first stale row of the user's (an interrupted turn to report) and the live one claimed. */
static void on_checked(void *ctx, const struct pg_result *r)
{
    struct tstate_wait *w = ctx;
    struct loop *l = w->ts->st->l;
    w->op = NULL;
    uint32_t base = w->listening ? 1 : 0;
    if (r->status != PG_OK || r->nrows < base + 2) {
        finish(w, -EIO);
        return;
    }
    PGresult *stale = r->rows[base], *live = r->rows[base + 1];
    for (int i = 0; i < PQntuples(stale) && !w->found.interrupted[0]; i++)
        if (strcmp(PQgetvalue(stale, i, 1), w->user) == 0)
            snprintf(w->found.interrupted, 33, "%s", PQgetvalue(stale, i, 0));
    if (PQntuples(live) == 0) {
        finish(w, 0);
        return;
    }
    long long left = 0;
    for (int i = 0; i < PQntuples(live); i++) {
        long long ms = strtoll(PQgetvalue(live, i, 2), NULL, 10);
        left = ms > left ? ms : left;
    }
    if (!w->found.waited) {
        w->found.waited = true;
        snprintf(w->found.turn_id, 33, "%s", PQgetvalue(live, 0, 0));
        const char *owner = PQgetvalue(live, 0, 1);
        w->found.same_process = strncmp(owner, w->ts->owner, w->ts->process_len) == 0;
    }
    if (!w->listening || w->again) {
        w->listening = true; /* LISTEN, then claim again: see the file comment */
        w->again = false;
        check(w);
        return;
    }
    uint64_t at = loop_now_ms(l) + (uint64_t)left + 250; /* a renewal in flight lands first */
    timer_arm(l, &w->timer, at < w->deadline_ms ? at : w->deadline_ms, on_timer);
}

static void check(struct tstate_wait *w)
{
    struct pg_query q;
    pg_query_init(&q);
    if (w->listening) {
        char sql[64];
        snprintf(sql, sizeof(sql), "LISTEN " CHANNEL_PREFIX "%s", w->conv);
        pg_query_sql(&q, sql);
    }
    pg_query_sql(&q, stale_sql);
    pg_query_param_str(&q, w->conv);
    pg_query_sql(&q, claim_sql);
    pg_query_param_str(&q, w->conv);
    pg_query_param_str(&q, w->user);
    timer_disarm(w->ts->st->l, &w->timer);
    w->op = store_query(w->ts->st, &q, false, on_checked, w);
    pg_query_free(&q);
}

/* A turn of a conversation was committed (or its claim was): whoever waits for it checks. */
static void on_notify(void *ctx, const char *channel, const char *payload)
{
    (void)payload;
    struct tstate *ts = ctx;
    size_t n = sizeof(CHANNEL_PREFIX) - 1;
    if (strncmp(channel, CHANNEL_PREFIX, n) != 0)
        return;
    for (struct tstate_wait *w = ts->waits, *next; w; w = next) {
        next = w->next; /* check() never finishes inside the call */
        if (strcmp(w->conv, channel + n) != 0)
            continue;
        if (w->op)
            w->again = true;
        else
            check(w);
    }
}

/* Wait for the conversation's running turn elsewhere; see turn_state.h. */
struct tstate_wait *tstate_await(struct tstate *ts, const char *conversation_id,
                                 const char *user_sub, uint64_t deadline_ms, tstate_await_fn fn,
                                 void *ctx)
{
    struct tstate_wait *w = xcalloc(1, sizeof(*w));
    w->ts = ts;
    snprintf(w->conv, sizeof(w->conv), "%s", conversation_id);
    w->user = xstrdup(user_sub);
    w->deadline_ms = deadline_ms;
    w->fn = fn;
    w->ctx = ctx;
    w->next = ts->waits;
    if (ts->waits)
        ts->waits->prev = w;
    ts->waits = w;
    check(w);
    return w;
}

/* The wait's callback will not run. */
void tstate_await_cancel(struct tstate_wait *w)
{
    if (!w)
        return;
    struct tstate *ts = w->ts;
    if (w->prev)
        w->prev->next = w->next;
    else
        ts->waits = w->next;
    if (w->next)
        w->next->prev = w->prev;
    timer_disarm(ts->st->l, &w->timer);
    store_cancel(w->op);
    xfree(w->user);
    xfree(w);
}
