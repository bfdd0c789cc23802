/* writer.c - a worker's store: group commit of turns to PostgreSQL, and the spill journal that
 * keeps them while PostgreSQL is away.
 *
 * A committed turn is encoded once into its record (record.h) and queued. The queue leaves as
 * one batch when it holds STORE_BATCH_MAX turns or STORE_BATCH_WINDOW_MS after its oldest turn
 * arrived, whichever comes first:
 *
 *   direct   (PostgreSQL up, journal empty): one pipelined transaction for the whole batch,
 *            BEGIN; inserts; COMMIT; Sync - one round trip, on one of the worker's writer
 *            connections ([store] batches_in_flight of them, one batch each); the queue
 *            accumulates while all are busy. Replies are settled in the order the batches
 *            started, so callbacks run in queue order. Success: every callback gets 0.
 *   spill    (PostgreSQL down, or the journal not yet empty): the batch's records are appended
 *            to the journal with one writev + one fdatasync; then every callback gets 0.
 *
 * Spilling starts when PostgreSQL goes down (or a batch fails for a passing reason: its turns go
 * to the journal). While spilling, new turns keep going to the journal even after PostgreSQL is
 * back, and the journal is replayed from its start through the same batch path, so turns reach
 * PostgreSQL in the order they were committed. When the replay reaches the end of the journal,
 * the journal is truncated and commits go direct again. Every insert is idempotent, so a record
 * replayed twice (a reply lost to a crash) inserts nothing new.
 *
 * A batch the server rejects (a constraint violation: a bug, not an outage) is committed again
 * turn by turn, so one bad turn cannot sink its neighbours; each rejected turn is logged with the
 * server's message, counted (errors_total{kind="rejected"}) and reported to its callback as
 * -EIO. A rejected turn read back from the journal is logged, counted and dropped. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "store/record.h"
#include "store/store_int.h"
#include "store/turn_sql.h"

static void kick(struct store *st);
static void start_append(struct store *st);

/* ---- turn lists ---- */

static void tl_push(struct tlist *l, struct wturn *t)
{
    t->next = NULL;
    if (l->tail)
        l->tail->next = t;
    else
        l->head = t;
    l->tail = t;
    l->n++;
}

static struct wturn *tl_pop(struct tlist *l)
{
    struct wturn *t = l->head;
    if (t) {
        l->head = t->next;
        if (!l->head)
            l->tail = NULL;
        l->n--;
        t->next = NULL;
    }
    return t;
}

/* Put the turns of `front` before those of l (order kept). */
static void tl_prepend(struct tlist *l, struct tlist *front)
{
    if (!front->head)
        return;
    front->tail->next = l->head;
    if (!l->tail)
        l->tail = front->tail;
    l->head = front->head;
    l->n += front->n;
    front->head = front->tail = NULL;
    front->n = 0;
}

/* Put the turns of `back` after those of l. */
static void tl_concat(struct tlist *l, struct tlist *back)
{
    struct wturn *t;
    while ((t = tl_pop(back)))
        tl_push(l, t);
}

/* Merge the turns of `add` into l; both are in queue order (seq), and so is the result. */
static void tl_merge(struct tlist *l, struct tlist *add)
{
    struct tlist out = {0};
    while (l->n || add->n) {
        struct tlist *from = !add->n ? l : !l->n ? add : l->head->seq < add->head->seq ? l : add;
        tl_push(&out, tl_pop(from));
    }
    *l = out;
}

static void wturn_free(struct wturn *t)
{
    xfree(t->rec);
    xfree(t);
}

/* The turn is durable (result 0) or refused (-EIO): tell its owner. */
static void turn_done(struct store *st, struct wturn *t, int result)
{
    if (result == 0 && t->fn) {
        uint64_t ns = clock_now_ns() - t->queued_ns;
        unsigned b = metric_bucket(store_lat_bounds, STORE_LAT_BUCKETS - 1, (double)ns / 1e9);
        metric_add(&st->stats.lat[b], 1);
        metric_add(&st->stats.lat_sum_ns, ns);
        metric_add(&st->stats.commits, 1);
    }
    if (t->fn)
        t->fn(t->ctx, result);
    wturn_free(t);
}

static void fail_turns(struct store *st, struct tlist *l, enum store_err why)
{
    struct wturn *t;
    while ((t = tl_pop(l))) {
        if (t->fn)
            metric_add(&st->stats.errors[why], 1);
        turn_done(st, t, -EIO);
    }
}

/* ---- building a batch's statements ---- */

/* Add the turns' statements to st->q (one per table for the whole batch). A record that does not
 * decode (it was encoded here, so never) is dropped from the list and failed. */
static void build_query(struct store *st, struct tlist *turns)
{
    struct tlist keep = {0};
    struct wturn *t;
    pg_query_reset(&st->rows);
    while ((t = tl_pop(turns))) {
        struct rec_turn rt;
        if (rec_decode(t->rec, t->len, &rt) < 0) {
            log_error("store: turn %s: undecodable record dropped", t->turn_id);
            metric_add(&st->stats.errors[SE_JOURNAL], 1);
            turn_done(st, t, -EIO);
            continue;
        }
        turn_sql_append(&st->rows, &rt.t, st->jd);
        rec_turn_free(&rt);
        tl_push(&keep, t);
    }
    *turns = keep;
    turn_sql_columnar(&st->rows, &st->q);
}

static void on_batch_done(void *ctx, const struct pg_result *r);

static void replay_source_done(struct store *st, struct wbatch *b);

/* ---- batches in flight: started in order, settled in order ---- */

static void flight_push(struct store *st, struct wbatch *b, bool front)
{
    if (front) {
        b->next = st->fl_head;
        st->fl_head = b;
        if (!st->fl_tail)
            st->fl_tail = b;
    } else {
        b->next = NULL;
        if (st->fl_tail)
            st->fl_tail->next = b;
        else
            st->fl_head = b;
        st->fl_tail = b;
    }
    st->nflight++;
    st->nflight_new += b->kind == B_NEW;
}

static void flight_unlink(struct store *st, struct wbatch *b)
{
    struct wbatch **pp = &st->fl_head, *prev = NULL;
    while (*pp && *pp != b)
        prev = *pp, pp = &(*pp)->next;
    if (!*pp)
        return;
    *pp = b->next;
    if (st->fl_tail == b)
        st->fl_tail = prev;
    b->next = NULL;
    st->nflight--;
    st->nflight_new -= b->kind == B_NEW;
}

static void batch_release(struct wbatch *b)
{
    xfree(b->message);
    xfree(b);
}

/* A batch without an answer for this long means a hung connection: drop it (the batch fails
 * with PG_DOWN and is spilled or retried like any connection loss). */
static void on_batch_timeout(struct loop *l, struct timer *t)
{
    (void)l;
    struct wconn *wc = (struct wconn *)((char *)t - offsetof(struct wconn, batch_timer));
    log_warn("store.w%d: no reply to a batch in %u ms: reconnecting", wc->st->worker,
             (unsigned)STORE_BATCH_TIMEOUT_MS);
    pg_reset(wc->pg);
}

/* Send b, already on the in-flight list (in split mode: its first turn alone), as one
 * transaction on wc, a free writer connection. */
static void send_batch(struct store *st, struct wbatch *b, struct wconn *wc)
{
    if (b->split) {
        struct tlist one = {0};
        while (!one.n && b->turns.n) {
            tl_push(&one, tl_pop(&b->turns));
            build_query(st, &one);
        }
        tl_prepend(&b->turns, &one);
    } else {
        build_query(st, &b->turns);
    }
    if (!b->turns.n) { /* nothing decodable was left */
        flight_unlink(st, b);
        if (b->kind == B_REPLAY)
            replay_source_done(st, b);
        batch_release(b);
        return;
    }
    b->resend = false;
    b->on = wc;
    wc->batch = b;
    timer_arm(st->l, &wc->batch_timer, loop_now_ms(st->l) + STORE_BATCH_TIMEOUT_MS,
              on_batch_timeout);
    pg_submit(wc->pg, &st->q, true, on_batch_done, b);
}

/* The reply is kept until every batch started before b is settled (see flight_settle). */
static void on_batch_done(void *ctx, const struct pg_result *r)
{
    struct wbatch *b = ctx;
    struct store *st = b->st;
    timer_disarm(st->l, &b->on->batch_timer);
    b->on->batch = NULL;
    b->on = NULL;
    b->answered = true;
    b->status = r->status;
    snprintf(b->sqlstate, sizeof(b->sqlstate), "%s", r->sqlstate ? r->sqlstate : "");
    b->message = r->message && r->message[0] ? xstrdup(r->message) : NULL;
    kick(st);
}

/* ---- batch outcomes ---- */

static void replay_source_done(struct store *st, struct wbatch *b)
{
    struct journal *src = b->src;
    src->replay_off = b->end;
    if (src == st->orphan && src->replay_off >= src->size) {
        log_info("store: orphaned journal %s replayed", src->path);
        journal_close(src, true);
        st->orphan = journal_adopt_for(st->journal_dir, st->j ? st->j->path : NULL, &st->db_id);
    }
}

static void batch_free(struct store *st, struct wbatch *b)
{
    struct wturn *t;
    while ((t = tl_pop(&b->turns)))
        turn_done(st, t, -EIO);
    batch_release(b);
}

static void batch_ok(struct store *st, struct wbatch *b)
{
    struct wturn *t;
    metric_add(&st->stats.batches, 1);
    if (b->kind == B_REPLAY) {
        metric_add(&st->stats.replayed, b->turns.n);
        replay_source_done(st, b);
    }
    while ((t = tl_pop(&b->turns)))
        turn_done(st, t, 0);
    batch_release(b);
}

static void on_replay_timer(struct loop *l, struct timer *t)
{
    (void)l;
    struct store *st = (struct store *)((char *)t - offsetof(struct store, replay_timer));
    st->replay_wait = false;
    kick(st);
}

/* Try the journal replay again after the current backoff, which then doubles (capped). */
static void replay_later(struct store *st)
{
    st->replay_wait = true;
    timer_arm(st->l, &st->replay_timer, loop_now_ms(st->l) + st->replay_backoff_ms,
              on_replay_timer);
    st->replay_backoff_ms = st->replay_backoff_ms * 2 > STORE_RETRY_MAX_MS
                                ? STORE_RETRY_MAX_MS
                                : st->replay_backoff_ms * 2;
}

/* A passing failure: new turns go to the journal; a replay batch is tried again later. */
static void batch_transient(struct store *st, struct wbatch *b, const struct pg_result *r)
{
    enum store_err why = r->status == PG_DOWN ? SE_CONNECTION : SE_TRANSIENT;
    metric_add(&st->stats.errors[why], 1);
    if (b->kind == B_NEW && st->j) {
        log_warn("store.w%d: batch of %u turns not committed (%s): spilling to the journal",
                 st->worker, (unsigned)b->turns.n, r->message);
        /* Back in the queue in their place, and to the journal before anything goes direct
         * again: with the connection still up (a refusal such as disk full), kick_pg would
         * otherwise find the journal empty and resend them at once, forever. The replay path
         * retries PostgreSQL with backoff. */
        if (b->turns.tail && b->turns.tail->seq > st->requeued_seq)
            st->requeued_seq = b->turns.tail->seq;
        tl_merge(&st->queue, &b->turns);
        st->spill = true;
        st->flush_now = true;
        batch_release(b);
        return;
    }
    if (b->kind == B_NEW) {
        log_error("store.w%d: batch of %u turns not committed (%s) and no journal", st->worker,
                  (unsigned)b->turns.n, r->message);
        fail_turns(st, &b->turns, SE_NO_JOURNAL);
        batch_release(b);
        return;
    }
    if (r->status != PG_DOWN)
        log_warn("store.w%d: journal replay failed (%s): retrying in %u ms", st->worker, r->message,
                 (unsigned)st->replay_backoff_ms);
    replay_later(st);
    batch_free(st, b);
}

static void reject_turn(struct store *st, struct wbatch *b, struct wturn *t,
                        const struct pg_result *r)
{
    log_error("store.w%d: turn %s rejected by PostgreSQL: %s [SQLSTATE %s]%s", st->worker,
              t->turn_id, r->message, r->sqlstate,
              b->kind == B_REPLAY ? " (from the journal: dropped)" : "");
    metric_add(&st->stats.errors[SE_REJECTED], 1);
    if (t->fn)
        t->fn(t->ctx, -EIO);
    wturn_free(t);
}

/* Split mode: b's next turn goes out alone, on the next free connection (kick_pg), still
 * ahead of every other batch. */
static void batch_resend(struct store *st, struct wbatch *b)
{
    xfree(b->message);
    b->message = NULL;
    b->resend = true;
    flight_push(st, b, true);
}

/* Split mode: one turn was tried alone. */
static void split_step(struct store *st, struct wbatch *b, const struct pg_result *r)
{
    struct wturn *t = tl_pop(&b->turns);
    if (r->status == PG_OK) {
        metric_add(&st->stats.batches, 1);
        if (b->kind == B_REPLAY)
            metric_add(&st->stats.replayed, 1);
        turn_done(st, t, 0);
    } else {
        reject_turn(st, b, t, r);
    }
    if (b->turns.n) {
        batch_resend(st, b);
        return;
    }
    if (b->kind == B_REPLAY)
        replay_source_done(st, b);
    batch_release(b);
}

/* The outcome of b, the oldest batch in flight, whose reply is in. */
static void batch_outcome(struct store *st, struct wbatch *b)
{
    const struct pg_result r = {
        .status = b->status, .sqlstate = b->sqlstate, .message = b->message ? b->message : ""};
    flight_unlink(st, b);
    b->answered = false;
    if (r.status == PG_OK) {
        if (b->split)
            split_step(st, b, &r);
        else
            batch_ok(st, b);
    } else if (r.status == PG_DOWN || pg_error_transient(r.sqlstate)) {
        batch_transient(st, b, &r);
    } else if (b->split || b->turns.n == 1) {
        b->split = true;
        split_step(st, b, &r);
    } else {
        log_warn("store.w%d: batch of %u turns rejected (%s): committing them one by one",
                 st->worker, (unsigned)b->turns.n, r.message);
        b->split = true;
        batch_resend(st, b);
    }
}

/* Handle the replies that are in, oldest batch first, up to the first still on the wire: so
 * callbacks run in the order turns were queued, whichever connection answered first. */
static void flight_settle(struct store *st)
{
    while (st->fl_head && st->fl_head->answered)
        batch_outcome(st, st->fl_head);
}

/* ---- starting batches ---- */

static struct wbatch *batch_new(struct store *st, enum batch_kind kind)
{
    struct wbatch *b = xcalloc(1, sizeof(*b));
    b->st = st;
    b->kind = kind;
    return b;
}

static void start_new(struct store *st, struct wconn *wc)
{
    struct wbatch *b = batch_new(st, B_NEW);
    while (st->queue.n && b->turns.n < STORE_BATCH_MAX)
        tl_push(&b->turns, tl_pop(&st->queue));
    st->flush_now = st->queue.n > 0;
    flight_push(st, b, false);
    send_batch(st, b, wc);
}

/* Replay the next records of src through the batch path, on wc. */
static void start_replay(struct store *st, struct journal *src, struct wconn *wc)
{
    struct buf data = {0};
    uint64_t end;
    int n = journal_read(src, src->replay_off, STORE_REPLAY_MAX, STORE_REPLAY_BYTES, &data, &end);
    if (n < 0) {
        /* a read error is not a corrupt record: keep the journal and try again later */
        log_error("store.w%d: journal %s unreadable at %llu (%s): retrying in %u ms", st->worker,
                  src->path, (unsigned long long)src->replay_off, strerror(-n),
                  (unsigned)st->replay_backoff_ms);
        metric_add(&st->stats.errors[SE_JOURNAL], 1);
        buf_free(&data);
        replay_later(st);
        return;
    }
    if (n == 0) {
        /* unreadable from here on although it was written whole: skip it, loudly */
        log_error("store.w%d: journal %s unreadable at %llu (%s): %llu bytes skipped", st->worker,
                  src->path, (unsigned long long)src->replay_off, "corrupt record",
                  (unsigned long long)(src->size - src->replay_off));
        metric_add(&st->stats.errors[SE_JOURNAL], 1);
        buf_free(&data);
        struct wbatch skip = {.st = st, .kind = B_REPLAY, .src = src, .end = src->size};
        replay_source_done(st, &skip);
        st->kick_again = true;
        return;
    }
    struct wbatch *b = batch_new(st, B_REPLAY);
    b->src = src;
    b->end = end;
    const char *p = buf_begin(&data);
    size_t left = buf_size(&data);
    for (int i = 0; i < n; i++) {
        size_t len = journal_rec_len(p, left);
        struct wturn *t = xcalloc(1, sizeof(*t));
        t->rec = xmalloc(len);
        memcpy(t->rec, p, len);
        t->len = (uint32_t)len;
        snprintf(t->turn_id, sizeof(t->turn_id), "(journal@%llu)",
                 (unsigned long long)(end - left));
        tl_push(&b->turns, t);
        p += len;
        left -= len;
    }
    buf_free(&data);
    flight_push(st, b, false);
    send_batch(st, b, wc);
}

/* ---- the journal side ---- */

static void on_appended(void *ctx, int result)
{
    struct store *st = ctx;
    struct wturn *t;
    if (result < 0) {
        log_error("store.w%d: journal %s: append failed: %s", st->worker, st->j->path,
                  strerror(-result));
        st->full = true;
        fail_turns(st, &st->appending, SE_JOURNAL);
    } else {
        /* a write error clears once a write succeeds; a full journal only once it is replayed
         * and truncated (kick_pg), not because a smaller batch still fitted */
        if (!st->full_by_size)
            st->full = false;
        metric_add(&st->stats.journaled, st->appending.n);
        while ((t = tl_pop(&st->appending)))
            turn_done(st, t, 0);
    }
    kick(st);
}

static void start_append(struct store *st)
{
    uint64_t bytes = 0;
    unsigned n = 0;
    while (st->queue.n && n < STORE_BATCH_MAX) {
        struct wturn *t = tl_pop(&st->queue);
        st->iov[n].iov_base = t->rec;
        st->iov[n++].iov_len = t->len;
        bytes += t->len;
        tl_push(&st->appending, t);
    }
    st->flush_now = st->queue.n > 0;
    if (!st->j) {
        fail_turns(st, &st->appending, SE_NO_JOURNAL);
        return;
    }
    if (st->j->size + bytes > st->journal_max) {
        if (!st->full)
            log_error("store.w%d: journal %s is full (%llu bytes): refusing turns until "
                      "PostgreSQL is back",
                      st->worker, st->j->path, (unsigned long long)st->j->size);
        st->full = true;
        st->full_by_size = true;
        fail_turns(st, &st->appending, SE_JOURNAL_FULL);
        return;
    }
    if (!st->spill)
        log_warn("store.w%d: PostgreSQL unavailable: turns go to the journal %s", st->worker,
                 st->j->path);
    st->spill = true;
    journal_append_start(&st->app, st->j, st->iov, n, on_appended, st);
}

/* ---- scheduling ---- */

/* When the queue may leave (on a free connection, or to the journal): at once when it holds a
 * full batch (or is what a full batch left, or the store drains); else STORE_BATCH_WINDOW_MS
 * after its oldest turn arrived, or STORE_OVERLAP_MS while a batch of new turns is in flight: a
 * second transaction at the same time pays off only once waiting for the first costs more than
 * the extra commit (at low load one batch at a time commits in fewer WAL flushes). */
static uint64_t queue_due_at(const struct store *st)
{
    if (st->queue.n >= STORE_BATCH_MAX || st->flush_now || st->draining)
        return 0;
    return st->queue.head->queued_ms + (st->nflight_new ? STORE_OVERLAP_MS : STORE_BATCH_WINDOW_MS);
}

static bool queue_due(struct store *st)
{
    return loop_now_ms(st->l) >= queue_due_at(st);
}

static void on_parts_done(void *ctx, const struct pg_result *r)
{
    struct store *st = ctx;
    if (r->status != PG_OK)
        log_warn("store.w%d: creating partitions ahead failed: %s", st->worker, r->message);
}

static bool writers_up(const struct store *st)
{
    for (unsigned i = 0; i < st->nw; i++)
        if (pg_up(st->wc[i].pg))
            return true;
    return false;
}

/* A writer connection that is up and carries no batch, or NULL. */
static struct wconn *free_writer(struct store *st)
{
    for (unsigned i = 0; i < st->nw; i++)
        if (!st->wc[i].batch && pg_up(st->wc[i].pg))
            return &st->wc[i];
    return NULL;
}

/* A split batch waits at the head for a free connection; with none up, it fails as a lost
 * connection would (to the journal). Returns false while it has to wait. */
static bool kick_resend(struct store *st, struct wconn *wc)
{
    struct wbatch *b = st->fl_head;
    if (!b || !b->resend)
        return true;
    if (wc) {
        send_batch(st, b, wc);
        return true;
    }
    if (!writers_up(st)) {
        flight_unlink(st, b);
        batch_transient(st, b,
                        &(struct pg_result){PG_DOWN, "", "not connected to PostgreSQL", NULL, 0});
    }
    return false;
}

/* Leave spill mode once the journal is replayed (nothing in flight, nothing being appended,
 * no turn of a failed batch waiting for the journal). Returns true when commits go direct. */
static bool spill_done(struct store *st, struct wconn *wc)
{
    if (st->nflight)
        return false; /* the replay is one batch at a time; direct batches settle first */
    if (st->j->replay_off < st->j->size) {
        if (!st->replay_wait)
            start_replay(st, st->j, wc);
        return false;
    }
    if (journal_append_busy(&st->app) || st->appending.n)
        return false;
    if (st->queue.n && st->queue.head->seq <= st->requeued_seq)
        return false; /* kick_journal takes them first */
    if (journal_truncate(st->j) < 0) {
        log_error("store.w%d: cannot truncate %s: %s", st->worker, st->j->path, strerror(errno));
        return false;
    }
    log_info("store.w%d: journal replayed: committing to PostgreSQL directly again", st->worker);
    st->spill = false;
    st->full = false;
    st->full_by_size = false;
    return true;
}

/* What the writer connections should do next: settle answered batches, then start batches on
 * free connections, at most nw in flight. */
static void kick_pg(struct store *st)
{
    flight_settle(st);
    struct wconn *wc = free_writer(st);
    if (!kick_resend(st, wc) || !(wc = free_writer(st)))
        return;
    if (loop_now_ms(st->l) >= st->parts_due_ms) {
        st->parts_due_ms = loop_now_ms(st->l) + STORE_PARTITIONS_EVERY_MS;
        pg_query_reset(&st->q);
        pg_query_stmt(&st->q, SQL_W_PARTITIONS);
        pg_query_stmt(&st->q, SQL_W_TRACE_PARTITIONS); /* days ahead, and retention */
        pg_query_param_i64(&st->q, st->trace_retention_days);
        pg_submit(wc->pg, &st->q, false, on_parts_done, st);
    }
    if (st->spill && !spill_done(st, wc))
        return;
    while (wc && st->queue.n && queue_due(st) && st->nflight < st->nw) {
        start_new(st, wc);
        wc = free_writer(st);
    }
    if (wc && !st->queue.n && !st->nflight && st->orphan && !st->replay_wait)
        start_replay(st, st->orphan, wc);
}

static void kick_journal(struct store *st)
{
    if (!st->queue.n || journal_append_busy(&st->app) || st->appending.n)
        return;
    if (!st->spill && writers_up(st))
        return; /* direct: the queue waits for a free connection */
    if (st->nflight_new)
        return; /* older turns are in flight: they may come back to be journaled first */
    if (queue_due(st))
        start_append(st);
}

static void on_flush_timer(struct loop *l, struct timer *t)
{
    (void)l;
    kick((struct store *)((char *)t - offsetof(struct store, flush_timer)));
}

static bool accepting_now(const struct store *st)
{
    if (st->full)
        return false;
    if (!st->j)
        return writers_up(st);
    return !st->spill || st->j->size + st->journal_max / 16 < st->journal_max;
}

/* Publish the state other threads read (metrics, /readyz): every change of it ends in a kick. */
static void update_gauges(struct store *st)
{
    metric_set(&st->stats.journal_bytes, st->j ? st->j->size : 0);
    metric_set(&st->stats.degraded, (st->spill || !writers_up(st)) ? 1 : 0);
    metric_set(&st->accepting, accepting_now(st) ? 1 : 0);
}

/* Run whatever can run now; re-entrant calls (from callbacks) fold into the running one. */
static void kick(struct store *st)
{
    if (st->in_kick) {
        st->kick_again = true;
        return;
    }
    st->in_kick = true;
    do {
        st->kick_again = false;
        kick_pg(st);
        kick_journal(st);
    } while (st->kick_again);
    st->in_kick = false;
    /* A due queue waits for a completion (which kicks again), not for the timer. */
    if (st->queue.n && !queue_due(st) && !timer_armed(&st->flush_timer))
        timer_arm(st->l, &st->flush_timer, queue_due_at(st), on_flush_timer);
    update_gauges(st);
}

static void on_writer_state(void *ctx, bool up)
{
    struct store *st = ctx;
    if (up) {
        st->replay_backoff_ms = STORE_RETRY_MIN_MS;
        st->replay_wait = false;
        timer_disarm(st->l, &st->replay_timer);
        if (!st->orphan)
            st->orphan = journal_adopt_for(st->journal_dir, st->j ? st->j->path : NULL, &st->db_id);
    }
    kick(st);
}

/* ---- public ---- */

const double store_lat_bounds[STORE_LAT_BUCKETS - 1] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
};

/* Queue a turn for the next group commit; see store.h. */
void store_commit_turn(struct store *st, const struct store_turn *t, store_commit_fn fn, void *ctx)
{
    if (!st) {
        fn(ctx, 0);
        return;
    }
    struct buf rec = {0};
    struct store_turn named = *t; /* the journal record names its database */
    named.db_system_id = st->db_id.system_id;
    named.db_name = st->db_id.name;
    if (rec_encode(&rec, &named) < 0) {
        /* Refused here, alone: queued, it could never be journaled or replayed whole. */
        log_error("store.w%d: turn %s is larger than one record (%u MiB): not stored", st->worker,
                  t->turn_id ? t->turn_id : "?", REC_MAX_PAYLOAD >> 20);
        fn(ctx, -EMSGSIZE);
        return;
    }
    struct wturn *w = xcalloc(1, sizeof(*w));
    w->len = (uint32_t)buf_size(&rec);
    w->rec = rec.data; /* the buffer's memory becomes the record (offset 0) */
    w->fn = fn;
    w->ctx = ctx;
    w->queued_ms = loop_now_ms(st->l);
    w->queued_ns = clock_now_ns();
    snprintf(w->turn_id, sizeof(w->turn_id), "%s", t->turn_id ? t->turn_id : "?");
    tl_push(&st->queue, w);
    kick(st);
}

/* Refuse new turns while the journal is full (or nearly so while spilling). Safe from any
 * thread: reads the state published at the end of the worker's last kick. */
bool store_accepting(const struct store *st)
{
    return !st || __atomic_load_n(&st->accepting, __ATOMIC_RELAXED) != 0;
}

/* Writes go (or would go) to the journal. Safe from any thread, like store_accepting. */
bool store_degraded(const struct store *st)
{
    return st && __atomic_load_n(&st->stats.degraded, __ATOMIC_RELAXED) != 0;
}

/* Drain: no group-commit window from now on; see store.h. */
void store_flush(struct store *st)
{
    if (!st || st->draining)
        return;
    st->draining = true;
    kick(st);
}

/* Nothing waits to become durable. */
bool store_idle(const struct store *st)
{
    return !st || (!st->queue.n && !st->nflight && !st->appending.n &&
                   !journal_append_busy(&st->app) && !st->cache_puts);
}

/* The writer connections share one op code: the poll's idx says whose completion it is. */
static void on_writer_poll(struct loop *l, struct io_uring_cqe *cqe, void *ctx)
{
    (void)l;
    struct store *st = ctx;
    uint32_t idx = loop_ud_idx(cqe->user_data);
    if (idx < st->nw)
        pg_on_completion(st->wc[idx].pg, cqe);
}

/* Create a worker's store; see store.h. */
struct store *store_create(struct loop *l, const struct store_conf *conf, int worker_index,
                           uint8_t op_base)
{
    if (!conf->database_url[0])
        return NULL;
    char err[512], name[64];
    struct store *st = xcalloc(1, sizeof(*st));
    st->l = l;
    st->worker = worker_index;
    snprintf(st->journal_dir, sizeof(st->journal_dir), "%s", conf->journal_dir);
    st->journal_max = conf->journal_max_bytes;
    if (conf->db_id)
        st->db_id = *conf->db_id;
    st->trace_retention_days = conf->trace_retention_days;
    st->cache_bound = (struct store_cache_bound){
        conf->cache_writes_max, conf->cache_write_bytes_max, conf->cache_entry_max_bytes};
    st->replay_backoff_ms = STORE_RETRY_MIN_MS;
    st->jd = json_doc_create();
    pg_query_init(&st->q);
    pg_query_init(&st->rows);
    st->j = journal_open_own(st->journal_dir, worker_index, err, sizeof(err));
    if (!st->j)
        log_error("store.w%d: %s: turns cannot be kept while PostgreSQL is away", worker_index,
                  err);
    else if (st->j->size)
        st->spill = true; /* left by an earlier process with our pid: replay it first */
    journal_append_init(&st->app, l, (uint8_t)(op_base + 2));
    st->orphan = journal_adopt_for(st->journal_dir, st->j ? st->j->path : NULL, &st->db_id);
    st->op_writers = op_base;
    st->nw = conf->batches_in_flight < 1                   ? 1
             : conf->batches_in_flight > STORE_WRITERS_MAX ? STORE_WRITERS_MAX
                                                           : conf->batches_in_flight;
    loop_set_handler(l, op_base, on_writer_poll, st);
    for (unsigned i = 0; i < st->nw; i++) {
        snprintf(name, sizeof(name), "store.w%d.writer%u", worker_index, i);
        st->wc[i].st = st;
        st->wc[i].pg = pg_create_shared(l, op_base, i, conf->database_url, name, turn_sql_write,
                                        SQL_W__COUNT, on_writer_state, st);
    }
    snprintf(name, sizeof(name), "store.w%d.reader", worker_index);
    st->r = pg_create(l, (uint8_t)(op_base + 1), conf->database_url, name, turn_sql_read,
                      SQL_R__COUNT, NULL, NULL);
    update_gauges(st);
    return st;
}

/* Write every turn not yet durable to the journal, blocking (shutdown). */
/* Returns false when some turns could not be written. */
static bool spill_sync(struct store *st, struct tlist *l)
{
    bool ok = true;
    struct iovec iov[STORE_BATCH_MAX];
    while (l->n) {
        unsigned n = 0;
        struct tlist chunk = {0};
        while (l->n && n < STORE_BATCH_MAX) {
            struct wturn *t = tl_pop(l);
            iov[n].iov_base = t->rec;
            iov[n++].iov_len = t->len;
            tl_push(&chunk, t);
        }
        int ret = st->j ? journal_append_sync(st->j, iov, n) : -ENOENT;
        if (ret < 0) {
            log_error("store.w%d: %u turns lost at shutdown: %s", st->worker, n, strerror(-ret));
            ok = false;
        }
        struct wturn *t;
        while ((t = tl_pop(&chunk)))
            wturn_free(t);
    }
    return ok;
}

/* Tear down the worker's store; see store.h. */
void store_destroy(struct store *st)
{
    if (!st)
        return;
    timer_disarm(st->l, &st->flush_timer);
    timer_disarm(st->l, &st->replay_timer);
    store_reads_drop(st);
    for (unsigned i = 0; i < st->nw; i++) {
        timer_disarm(st->l, &st->wc[i].batch_timer);
        pg_destroy(st->wc[i].pg);
    }
    loop_set_handler(st->l, st->op_writers, NULL, NULL);
    pg_destroy(st->r);
    /* oldest first: the append in flight, the batches in flight, the queue (a batch answered
     * but not settled may be committed: its records replay as no-ops) */
    struct tlist pending = {0};
    struct wbatch *b;
    while ((b = st->fl_head)) {
        flight_unlink(st, b);
        if (b->kind == B_NEW)
            tl_concat(&pending, &b->turns);
        batch_free(st, b); /* replayed records: still in their journal */
    }
    tl_concat(&pending, &st->queue);
    if (st->appending.n) {
        /* The kernel may still read these records for the append in flight: rewrite copies at
         * the same offset (same bytes) and leave the originals alone (leaked, at shutdown). */
        struct tlist copy = {0};
        for (struct wturn *t = st->appending.head; t; t = t->next) {
            struct wturn *c = xcalloc(1, sizeof(*c));
            c->rec = xmalloc(t->len);
            memcpy(c->rec, t->rec, t->len);
            c->len = t->len;
            tl_push(&copy, c);
        }
        tl_prepend(&pending, &copy);
    }
    if (pending.n)
        log_warn("store.w%d: %u turns still pending at shutdown: written to the journal",
                 st->worker, (unsigned)pending.n);
    /* Their owners learn that the turns are durable in the journal (and can free their state):
     * collect the callbacks before spill_sync releases the list. */
    size_t ncb = 0;
    for (struct wturn *t = pending.head; t; t = t->next)
        ncb++;
    for (struct wturn *t = st->appending.head; t; t = t->next)
        ncb++;
    struct {
        store_commit_fn fn;
        void *ctx;
    } *cbs = xcalloc(ncb ? ncb : 1, sizeof(*cbs));
    size_t k = 0;
    for (struct wturn *t = pending.head; t; t = t->next)
        if (t->fn)
            cbs[k].fn = t->fn, cbs[k++].ctx = t->ctx;
    for (struct wturn *t = st->appending.head; t; t = t->next)
        if (t->fn)
            cbs[k].fn = t->fn, cbs[k++].ctx = t->ctx;
    int result = spill_sync(st, &pending) ? -ESHUTDOWN : -EIO;
    for (size_t i = 0; i < k; i++)
        cbs[i].fn(cbs[i].ctx, result);
    xfree(cbs);
    journal_append_fini(&st->app);
    journal_close(st->j, st->j && st->j->size == 0);
    journal_close(st->orphan, false);
    pg_query_free(&st->q);
    pg_query_free(&st->rows);
    json_doc_destroy(st->jd);
    xfree(st);
}
