/* resume.c - {"type":"resume"}: continue a stored conversation on any server process.
 *
 * The conversation is read from the store (owner, recent messages, last turn). Only its owner
 * (the token's sub; "" for anonymous sessions, where the 128-bit id is the only guard) may
 * resume it. The session adopts the conversation and its history, then re-sends the deltas of
 * the last turn after after_seq, split exactly as they were first sent, and that turn's
 * turn_end, so the client shows each answer once.
 *
 * The unseen deltas of a long answer can be many times outbound_limit_bytes (13k deltas of a
 * long answer resumed from 0 are ~1 MiB of events): queued at once they would close the
 * connection with 1008, and the client would resume again, forever. So the replay is paced by
 * the client's reading: the session keeps a copy of the unseen part and queues deltas while at
 * most half the limit is queued, then waits for net/'s on_writable. Until the turn_end is out,
 * the session takes no new turn or resume (turn_in_progress), as during a live turn.
 *
 * A turn of the conversation may still be running (docs/session.md, "Detach grace"):
 *   - detached on this worker: read the stored history, then attach to the turn itself
 *     (detach.c: missed deltas after after_seq, paced, then live; turn_end "resumed": true);
 *   - on another worker or another process: wait for its commit (store/turn_state.h: claim it,
 *     LISTEN, bounded by the owner's lease and [session] resume_wait_ms), then replay it as
 *     above with "resumed": true. Handing a running turn to another worker would mean moving
 *     its provider transfers and timers between rings (share-nothing: they cannot move) or
 *     forwarding every delta across threads; the client instead gets the rest of the answer at
 *     once when it is stored - complete, in order, once.
 *   - its process died (lease run out): it is closed as interrupted and the client told so
 *     (error turn_interrupted) before the replay of what is stored. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "session/pending.h"
#include "store/turn_state.h"
#include "session/session_int.h"
#include "store/store.h"
#include "stream/jsonw.h"

/* A resume in progress: waiting for a running turn (turn_state, pending.h), reading the
 * conversation, or re-attaching to a detached turn of this worker. */
struct resume {
    struct session *s;
    char id[33];
    int64_t after;
    uint64_t deadline; /* loop clock: [session] resume_wait_ms after the resume */
    bool attach;       /* a detached turn of this worker: load the history, then attach */
    bool polling;      /* waiting for this process to store the turn (pending.h) */
    struct timer timer;
    struct tstate_wait *wait;
    struct store_op *load_op;
    struct tstate_found found;
};

static void start_load(struct session *s);

static void send_resumed(struct session *s, const struct store_conversation *c, int64_t after)
{
    struct jsonw w;
    jw_init(&w, &s->sw->scratch);
    jw_obj_begin(&w);
    jw_kstr(&w, "type", "resumed");
    jw_kstr(&w, "conversation_id", s->conversation_id);
    jw_key(&w, "turn_id");
    if (c->last_turn_id)
        jw_str(&w, c->last_turn_id);
    else
        jw_null(&w);
    jw_kint(&w, "after_seq", after);
    jw_kuint(&w, "messages", c->n_messages);
    jw_obj_end(&w);
    session_send_doc(s, &s->sw->scratch);
}

/* The last turn's unseen deltas and its turn_end, owned by the session while they go out. */
struct replay {
    char turn_id[33];
    char finish[16];
    char currency[8];
    char *text;     /* the unseen part of the answer */
    uint32_t *ends; /* end of each unseen delta in text */
    uint32_t n;     /* unseen deltas */
    uint32_t next;  /* the next to send */
    uint32_t seq0;  /* seq of ends[0] minus one (= after_seq) */
    struct turn_end_info end;
    char query_type[24]; /* a re-attached turn's route and flags (session_replay_from_turn) */
    char agent[32];
    char flags[TURN_MAX_FLAGS][32];
    char cache[16]; /* the turn's answer-cache layer: the turn is freed before the replay ends */
};

/* Deltas [after, n) of c's last turn, as far as the stored offsets are consistent. */
static struct replay *replay_create(const struct store_conversation *c, int64_t after)
{
    uint32_t first = (uint32_t)(after < c->last_n_deltas ? after : c->last_n_deltas), n = first;
    uint32_t base = first ? c->last_delta_ends[first - 1] : 0;
    /* A damaged row: send what is consistent (nothing when even after_seq's end is not). */
    for (uint32_t prev = base; base <= c->last_answer_len && n < c->last_n_deltas;
         prev = c->last_delta_ends[n++])
        if (c->last_delta_ends[n] < prev || c->last_delta_ends[n] > c->last_answer_len)
            break;
    struct replay *r = xcalloc(1, sizeof(*r));
    snprintf(r->turn_id, sizeof(r->turn_id), "%s", c->last_turn_id);
    snprintf(r->finish, sizeof(r->finish), "%s", c->last_finish ? c->last_finish : "");
    snprintf(r->currency, sizeof(r->currency), "%s", c->last_currency ? c->last_currency : "");
    r->n = n - first;
    r->seq0 = first;
    uint32_t len = r->n ? c->last_delta_ends[n - 1] - base : 0;
    r->text = xstrndup(r->n ? c->last_answer + base : "", len);
    r->ends = xmalloc(((size_t)r->n + 1) * sizeof(*r->ends));
    for (uint32_t i = 0; i < r->n; i++)
        r->ends[i] = c->last_delta_ends[first + i] - base;
    const struct llm_usage *u = &c->last_usage;
    r->end = (struct turn_end_info){
        .turn_id = r->turn_id,
        .finish = r->finish,
        .currency = r->currency,
        .usage = {u->input_tokens, u->cached_input_tokens, u->cache_write_tokens, u->output_tokens,
                  u->reasoning_tokens},
        .cost_micros = c->last_cost_micros,
        .first_token_ms = c->last_first_token_ms,
        .total_ms = c->last_total_ms,
        .replayed = true,
    };
    return r;
}

/* Drop a replay (done, or the client left). */
void session_replay_free(struct session *s)
{
    struct replay *r = s->replay;
    if (!r)
        return;
    s->replay = NULL;
    xfree(r->text);
    xfree(r->ends);
    xfree(r);
}

/* Queue deltas while at most half of outbound_limit_bytes is queued; then wait for on_writable.
 * One delta bigger than the room left waits for an empty queue (it fitted one when first sent). */
void session_replay_more(struct session *s)
{
    struct replay *r = s->replay;
    size_t limit = s->sw->conf->outbound_limit_bytes;
    while (r && r->next < r->n) {
        if (!conn_is_open(s->c)) {
            session_replay_free(s);
            return;
        }
        uint32_t i = r->next, from = i ? r->ends[i - 1] : 0, len = r->ends[i] - from;
        size_t queued = conn_queued(s->c), worst = (size_t)len * 6 + 160; /* \u00XX escapes */
        if (queued && (queued > limit / 2 || queued + worst > limit)) {
            conn_want_writable(s->c);
            return;
        }
        r->next++;
        session_send_delta(s, r->turn_id, r->seq0 + i + 1, r->text + from, len);
    }
    if (r) {
        session_send_turn_end(s, &r->end);
        session_replay_free(s);
    }
}

/* A re-attached turn ended while its catch-up was still going out: the rest (deltas after
 * sent_seq, then e) leaves as a paced replay from the turn's own copy. */
void session_replay_from_turn(struct session *s, struct turn *t, const struct turn_end_info *e)
{
    struct store_conversation c = {
        .last_turn_id = t->turn_id,
        .last_answer = buf_begin(&t->answer),
        .last_answer_len = buf_size(&t->answer),
        .last_delta_ends = (const uint32_t *)buf_begin(&t->delta_ends),
        .last_n_deltas = t->seq,
        .last_finish = e->finish,
        .last_currency = e->currency,
    };
    struct replay *r = replay_create(&c, t->sent_seq);
    struct turn_end_info end = *e;
    end.turn_id = r->turn_id;
    end.finish = r->finish;
    end.currency = r->currency;
    memcpy(r->query_type, t->query_type, sizeof(r->query_type));
    memcpy(r->agent, t->agent, sizeof(r->agent));
    memcpy(r->flags, t->flags, sizeof(r->flags));
    end.query_type = r->query_type;
    end.agent = r->agent;
    end.flags = (const char(*)[32])r->flags;
    snprintf(r->cache, sizeof(r->cache), "%s", e->cache ? e->cache : "");
    end.cache = r->cache;
    r->end = end;
    s->replay = r;
    session_replay_more(s);
}

static void count_reattach(struct session *s, bool same_process, bool live)
{
    metric_add(&s->sw->m.reattaches[same_process ? 0 : 1][live ? 0 : 1], 1);
}

/* Adopt the stored conversation c: its id, its recent messages as the history. */
static void adopt(struct session *s, const struct store_conversation *c)
{
    memcpy(s->conversation_id, s->rs->id, sizeof(s->conversation_id));
    session_history_free(s);
    for (size_t i = 0; i < c->n_messages; i++)
        history_add(s, strcmp(c->messages[i].role, "assistant") == 0 ? "assistant" : "user",
                    c->messages[i].text, c->messages[i].len);
}

/* The stored part is read; the detached turn of this worker is still running: attach to it. */
static bool try_attach(struct session *s, const struct store_conversation *c)
{
    struct resume *rs = s->rs;
    struct turn *t = detach_find(s->sw, rs->id);
    if (!t || strcmp(t->user, s->user_sub) != 0)
        return false;
    adopt(s, c);
    int64_t after = rs->after;
    session_resume_free(s);
    count_reattach(s, true, true);
    detach_attach(s, t, after);
    return true;
}

static void on_loaded(void *ctx, int result, const struct store_conversation *c)
{
    struct session *s = ctx;
    struct resume *rs = s->rs;
    rs->load_op = NULL;
    if (rs->found.interrupted[0]) {
        /* the turn the client followed died with its process: say so first, whatever follows */
        session_send_error(s, "turn_interrupted",
                           "the server running this turn stopped before it was stored; ask again",
                           NULL, 0, rs->found.interrupted);
        rs->found.interrupted[0] = '\0';
    }
    if (result < 0) {
        session_resume_free(s);
        session_send_error(s, "storage_unavailable", "the conversation could not be read now", NULL,
                           0, NULL);
        return;
    }
    /* The first turn of a conversation is not stored while it runs: attach needs no row. */
    bool mine = !c->found || strcmp(c->user_sub, s->user_sub) == 0;
    if (rs->attach && mine && try_attach(s, c))
        return;
    if (rs->attach && mine) {
        /* it ended while we read: read again once it is stored, and replay it as resumed */
        rs->attach = false;
        rs->found.waited = true;
        rs->found.same_process = true;
        start_load(s);
        return;
    }
    if (!c->found || strcmp(c->user_sub, s->user_sub) != 0) {
        session_resume_free(s);
        if (!c->found)
            session_send_error(s, "unknown_conversation", "no such conversation", NULL, 0, NULL);
        else
            session_send_error(s, "forbidden", "this conversation belongs to another user", NULL, 0,
                               NULL);
        return;
    }
    adopt(s, c);
    struct tstate_found f = rs->found;
    int64_t after = rs->after;
    session_resume_free(s);
    send_resumed(s, c, after);
    if (c->last_turn_id) {
        s->replay = replay_create(c, after);
        /* the turn the client left running, finished while it was away */
        if (f.waited && (!f.turn_id[0] || strcmp(f.turn_id, c->last_turn_id) == 0)) {
            s->replay->end.resumed = true;
            count_reattach(s, f.same_process, false);
        }
        session_replay_more(s);
    }
}

static void resume_wait(struct loop *l, struct timer *t)
{
    (void)l;
    struct resume *rs = (struct resume *)((char *)t - offsetof(struct resume, timer));
    start_load(rs->s);
}

/* Read the conversation (for an attach: its history), unless a turn of it whose client left is
 * still being stored in this process: then look again shortly (bounded), so the replay
 * includes that turn. */
static void start_load(struct session *s)
{
    struct resume *rs = s->rs;
    struct loop *l = worker_loop(conn_worker(s->c));
    if (!rs->attach && pending_has(rs->id) && loop_now_ms(l) < rs->deadline) {
        rs->polling = true;
        timer_arm(l, &rs->timer, loop_now_ms(l) + 5, resume_wait);
        return;
    }
    rs->polling = false;
    rs->load_op =
        store_load_conversation(s->sw->store, rs->id, s->sw->conf->history_messages, on_loaded, s);
}

/* No turn of the conversation runs anywhere any more (or the wait gave up): read it. */
static void on_awaited(void *ctx, const struct tstate_found *f)
{
    struct session *s = ctx;
    struct resume *rs = s->rs;
    rs->wait = NULL;
    rs->found = *f;
    start_load(s);
}

/* A resume is under way (turn_in_progress for anything else meanwhile). */
bool session_resume_busy(const struct session *s)
{
    return s->rs || s->replay;
}

/* Drop the resume in progress (done, or the client left). */
void session_resume_free(struct session *s)
{
    struct resume *rs = s->rs;
    if (!rs)
        return;
    s->rs = NULL;
    if (rs->load_op)
        store_cancel(rs->load_op);
    tstate_await_cancel(rs->wait);
    timer_disarm(worker_loop(conn_worker(s->c)), &rs->timer);
    xfree(rs);
}

/* Handle a resume message; see the file comment. */
void session_resume(struct session *s, const struct chat_msg *m)
{
    if (!store_id_valid(m->conversation_id, m->conversation_id_len)) {
        session_send_error(s, "invalid_field", "conversation_id must be 32 lowercase hex digits",
                           NULL, 0, NULL);
        return;
    }
    if (s->turn || session_resume_busy(s) || s->held) {
        session_send_error(s, "turn_in_progress", "a turn or a resume is still running", NULL, 0,
                           s->turn ? s->turn->turn_id : NULL);
        return;
    }
    if (!s->sw->store) {
        session_send_error(s, "resume_unavailable",
                           "this server stores no conversations (no DATABASE_URL)", NULL, 0, NULL);
        return;
    }
    struct resume *rs = xcalloc(1, sizeof(*rs));
    rs->s = s;
    memcpy(rs->id, m->conversation_id, 32);
    rs->after = m->after_seq;
    rs->deadline = loop_now_ms(worker_loop(conn_worker(s->c))) + s->sw->conf->resume_wait_ms;
    s->rs = rs;
    struct turn *t = detach_find(s->sw, rs->id);
    if (t && strcmp(t->user, s->user_sub) != 0) {
        session_resume_free(s);
        session_send_error(s, "forbidden", "this conversation belongs to another user", NULL, 0,
                           NULL);
        return;
    }
    rs->attach = t != NULL;
    if (t || !s->sw->ts)
        start_load(s);
    else
        rs->wait = tstate_await(s->sw->ts, rs->id, s->user_sub, rs->deadline, on_awaited, s);
}
