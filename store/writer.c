/* writer.c - a worker's store: group commit of turns to PostgreSQL, and the spill journal that
 * keeps them while PostgreSQL is away.
 *
 * A committed turn is encoded once into its record (record.h) and queued. The queue leaves as
 * one batch when it holds STORE_BATCH_MAX turns or STORE_BATCH_WINDOW_MS after its oldest turn
 * arrived, whichever comes first:
 *
 *   direct   (PostgreSQL up, journal empty): one pipelined transaction for the whole batch,
 *            BEGIN; inserts; COMMIT; Sync - one round trip. One batch in flight at a time; the
 *            next accumulates meanwhile. Success: every callback gets 0.
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

/* Add the turns' statements to st->q. A record that does not decode (it was encoded here, so
 * never) is dropped from the list and failed. */
static void build_query(struct store *st, struct tlist *turns)
{
    struct tlist keep = {0};
    struct wturn *t;
    pg_query_reset(&st->q);
    while ((t = tl_pop(turns))) {
        struct rec_turn rt;
        if (rec_decode(t->rec, t->len, &rt) < 0) {
            log_error("store: turn %s: undecodable record dropped", t->turn_id);
            metric_add(&st->stats.errors[SE_JOURNAL], 1);
            turn_done(st, t, -EIO);
            continue;
        }
        turn_sql_append(&st->q, &rt.t, st->jd);
        rec_turn_free(&rt);
        tl_push(&keep, t);
    }
    *turns = keep;
}

static void on_batch_done(void *ctx, const struct pg_result *r);

static void replay_source_done(struct store *st, struct wbatch *b);

/* A batch without an answer for this long means a hung connection: drop it (the batch fails
 * with PG_DOWN and is spilled or retried like any connection loss). */
static void on_batch_timeout(struct loop *l, struct timer *t)
{
    (void)l;
    struct store *st = (struct store *)((char *)t - offsetof(struct store, batch_timer));
    log_warn("store.w%d: no reply to a batch in %u ms: reconnecting", st->worker,
             (unsigned)STORE_BATCH_TIMEOUT_MS);
    pg_reset(st->w);
}

/* Send the batch (in split mode: its first turn alone) as one transaction. */
static void submit_batch(struct store *st, struct wbatch *b)
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
        if (b->kind == B_REPLAY)
            replay_source_done(st, b);
        xfree(b);
        return;
    }
    st->inflight = b;
    timer_arm(st->l, &st->batch_timer, loop_now_ms(st->l) + STORE_BATCH_TIMEOUT_MS,
              on_batch_timeout);
    pg_submit(st->w, &st->q, true, on_batch_done, b);
}

/* ---- batch outcomes ---- */

static void replay_source_done(struct store *st, struct wbatch *b)
{
    struct journal *src = b->src;
    src->replay_off = b->end;
    if (src == st->orphan && src->replay_off >= src->size) {
        log_info("store: orphaned journal %s replayed", src->path);
        journal_close(src, true);
        st->orphan = journal_adopt(st->journal_dir, st->j ? st->j->path : NULL);
    }
}

static void batch_free(struct store *st, struct wbatch *b)
{
    struct wturn *t;
    while ((t = tl_pop(&b->turns)))
        turn_done(st, t, -EIO);
    xfree(b);
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
    xfree(b);
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
        tl_prepend(&st->queue, &b->turns);
        st->spill = true;
        st->flush_now = true;
        xfree(b);
        /* To the journal now: with the connection still up (a refusal such as disk full),
         * kick_pg would otherwise find the journal empty, go direct again and resend at once,
         * forever. The replay path retries PostgreSQL with backoff. */
        if (!journal_append_busy(&st->app) && !st->appending.n)
            start_append(st);
        return;
    }
    if (b->kind == B_NEW) {
        log_error("store.w%d: batch of %u turns not committed (%s) and no journal", st->worker,
                  (unsigned)b->turns.n, r->message);
        fail_turns(st, &b->turns, SE_NO_JOURNAL);
        xfree(b);
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
        submit_batch(st, b);
        return;
    }
    if (b->kind == B_REPLAY)
        replay_source_done(st, b);
    xfree(b);
}

static void on_batch_done(void *ctx, const struct pg_result *r)
{
    struct wbatch *b = ctx;
    struct store *st = b->st;
    st->inflight = NULL;
    timer_disarm(st->l, &st->batch_timer);
    if (r->status == PG_OK) {
        if (b->split)
            split_step(st, b, r);
        else
            batch_ok(st, b);
    } else if (r->status == PG_DOWN || pg_error_transient(r->sqlstate)) {
        batch_transient(st, b, r);
    } else if (b->split || b->turns.n == 1) {
        b->split = true;
        split_step(st, b, r);
    } else {
        log_warn("store.w%d: batch of %u turns rejected (%s): committing them one by one",
                 st->worker, (unsigned)b->turns.n, r->message);
        b->split = true;
        submit_batch(st, b);
    }
    kick(st);
}

/* ---- starting batches ---- */

static struct wbatch *batch_new(struct store *st, enum batch_kind kind)
{
    struct wbatch *b = xcalloc(1, sizeof(*b));
    b->st = st;
    b->kind = kind;
    return b;
}

static void start_new(struct store *st)
{
    struct wbatch *b = batch_new(st, B_NEW);
    while (st->queue.n && b->turns.n < STORE_BATCH_MAX)
        tl_push(&b->turns, tl_pop(&st->queue));
    st->flush_now = st->queue.n > 0;
    submit_batch(st, b);
}

/* Replay the next records of src through the batch path. */
static void start_replay(struct store *st, struct journal *src)
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
    submit_batch(st, b);
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

static bool queue_due(struct store *st)
{
    return st->queue.n >= STORE_BATCH_MAX || st->flush_now ||
           loop_now_ms(st->l) >= st->queue.head->queued_ms + STORE_BATCH_WINDOW_MS;
}

static void on_parts_done(void *ctx, const struct pg_result *r)
{
    struct store *st = ctx;
    if (r->status != PG_OK)
        log_warn("store.w%d: creating partitions ahead failed: %s", st->worker, r->message);
}

/* What the writer connection should do next, if it is free. */
static void kick_pg(struct store *st)
{
    if (st->inflight || !pg_up(st->w))
        return;
    if (loop_now_ms(st->l) >= st->parts_due_ms) {
        st->parts_due_ms = loop_now_ms(st->l) + STORE_PARTITIONS_EVERY_MS;
        pg_query_reset(&st->q);
        pg_query_stmt(&st->q, SQL_W_PARTITIONS);
        pg_submit(st->w, &st->q, false, on_parts_done, st);
    }
    if (st->spill) {
        if (st->j->replay_off < st->j->size) {
            if (!st->replay_wait)
                start_replay(st, st->j);
            return;
        }
        if (journal_append_busy(&st->app) || st->appending.n)
            return;
        if (journal_truncate(st->j) < 0) {
            log_error("store.w%d: cannot truncate %s: %s", st->worker, st->j->path,
                      strerror(errno));
            return;
        }
        log_info("store.w%d: journal replayed: committing to PostgreSQL directly again",
                 st->worker);
        st->spill = false;
        st->full = false;
        st->full_by_size = false;
    }
    if (st->queue.n && queue_due(st))
        start_new(st);
    else if (!st->queue.n && st->orphan && !st->replay_wait)
        start_replay(st, st->orphan);
}

static void kick_journal(struct store *st)
{
    if (!st->queue.n || journal_append_busy(&st->app) || st->appending.n)
        return;
    if (!st->spill && pg_up(st->w))
        return; /* direct: the queue waits for the batch in flight */
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
        return pg_up(st->w);
    return !st->spill || st->j->size + st->journal_max / 16 < st->journal_max;
}

/* Publish the state other threads read (metrics, /readyz): every change of it ends in a kick. */
static void update_gauges(struct store *st)
{
    metric_set(&st->stats.journal_bytes, st->j ? st->j->size : 0);
    metric_set(&st->stats.degraded, (st->spill || !pg_up(st->w)) ? 1 : 0);
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
        timer_arm(st->l, &st->flush_timer, st->queue.head->queued_ms + STORE_BATCH_WINDOW_MS,
                  on_flush_timer);
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
            st->orphan = journal_adopt(st->journal_dir, st->j ? st->j->path : NULL);
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
    if (rec_encode(&rec, t) < 0) {
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

/* Nothing waits to become durable. */
bool store_idle(const struct store *st)
{
    return !st ||
           (!st->queue.n && !st->inflight && !st->appending.n && !journal_append_busy(&st->app));
}

/* Create a worker's store; see store.h. */
struct store *store_create(struct loop *l, const struct config *conf, int worker_index,
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
    st->replay_backoff_ms = STORE_RETRY_MIN_MS;
    st->jd = json_doc_create();
    pg_query_init(&st->q);
    st->j = journal_open_own(st->journal_dir, worker_index, err, sizeof(err));
    if (!st->j)
        log_error("store.w%d: %s: turns cannot be kept while PostgreSQL is away", worker_index,
                  err);
    else if (st->j->size)
        st->spill = true; /* left by an earlier process with our pid: replay it first */
    journal_append_init(&st->app, l, (uint8_t)(op_base + 2));
    st->orphan = journal_adopt(st->journal_dir, st->j ? st->j->path : NULL);
    snprintf(name, sizeof(name), "store.w%d.writer", worker_index);
    st->w = pg_create(l, op_base, conf->database_url, name, turn_sql_write, SQL_W__COUNT,
                      on_writer_state, st);
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
    timer_disarm(st->l, &st->batch_timer);
    timer_disarm(st->l, &st->replay_timer);
    store_reads_drop(st);
    pg_destroy(st->w);
    pg_destroy(st->r);
    /* oldest first: the append in flight, the batch in flight, the queue */
    struct tlist pending = st->queue;
    st->queue = (struct tlist){0};
    if (st->inflight) {
        if (st->inflight->kind == B_NEW)
            tl_prepend(&pending, &st->inflight->turns);
        batch_free(st, st->inflight); /* replayed records: still in their journal */
        st->inflight = NULL;
    }
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
    json_doc_destroy(st->jd);
    xfree(st);
}
