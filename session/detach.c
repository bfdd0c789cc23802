/* detach.c - the detach grace: a turn whose client went away keeps running for
 * [session] detach_grace_ms, its answer kept in the turn (it is stored at the end anyway),
 * capped at detach_buffer_bytes more than when the client left. A resume on this worker
 * re-attaches the client to it: the deltas it missed after after_seq (paced like a replay),
 * then the rest live, exactly once and in order. A resume elsewhere (another worker or process)
 * claims the turn in the store and waits for its commit (resume.c, store/turn_state.h); when the
 * grace ends, a claimed turn runs on to its end, an unclaimed one is cancelled as without grace
 * (upstream aborted, cost stops) and stored as cancelled, flagged "detach_expired" (or
 * "detach_buffer_full" when the cap ended it).
 *
 * Grace needs a store: without one no resume is possible, and a turn nobody can come back for
 * would only cost. A draining worker ends every grace at once: its process is going away. */
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "session/session_int.h"
#include "store/turn_state.h"
#include "stream/jsonw.h"

static void unlink_turn(struct turn *t)
{
    struct sess_worker *sw = t->sw;
    if (t->dprev)
        t->dprev->dnext = t->dnext;
    else
        sw->detached = t->dnext;
    if (t->dnext)
        t->dnext->dprev = t->dprev;
    t->dnext = t->dprev = NULL;
}

/* The turn is no longer attachable here (done, re-attached, or its grace is over). */
void detach_forget(struct turn *t)
{
    if (!t->detached)
        return;
    t->detached = false;
    unlink_turn(t);
    timer_disarm(turn_loop(t), &t->grace_timer);
    tstate_claim_cancel(t->claim);
    t->claim = NULL;
    metric_sub(&t->sw->m.detached_now, 1);
}

/* No client is coming back for it: cancel it now, as a turn without grace would have been. */
static void expire(struct turn *t, bool overflow)
{
    detach_forget(t);
    metric_add(overflow ? &t->sw->m.detach_overflows : &t->sw->m.grace_expiries, 1);
    turn_add_flag(t, overflow ? "detach_buffer_full" : "detach_expired");
    t->sw->responder->cancel(t);
    session_turn_done(t, "cancelled", NULL, NULL);
}

static void on_claim(void *ctx, int claimed)
{
    struct turn *t = ctx;
    t->claim = NULL;
    if (claimed == 1)
        t->keep = true; /* someone waits for it elsewhere: let it finish (still attachable) */
    else
        expire(t, false);
}

/* The grace is over (or the cap was passed): ask the store whether a resume elsewhere waits. */
static void on_grace(struct loop *l, struct timer *tm)
{
    (void)l;
    struct turn *t = (struct turn *)((char *)tm - offsetof(struct turn, grace_timer));
    if (t->overflow) {
        expire(t, true);
        return;
    }
    if (t->keep || t->claim)
        return;
    if (!t->sw->ts) {
        expire(t, false);
        return;
    }
    t->claim = tstate_claimed(t->sw->ts, t->turn_id, on_claim, t);
}

/* The client (session s, being closed) left a running turn: park it for its grace, with the
 * history its context points into. false: no grace (cancel it). */
bool detach_park(struct turn *t, struct session *s)
{
    struct sess_worker *sw = t->sw;
    uint32_t grace = sw->conf->detach_grace_ms;
    if (!grace || !sw->store || sw->draining || t->done)
        return false;
    history_hand_over(s, t);
    t->detached = true;
    t->was_detached = true;
    t->catching_up = false;
    t->answer_at_detach = buf_size(&t->answer);
    t->dnext = sw->detached;
    if (sw->detached)
        sw->detached->dprev = t;
    sw->detached = t;
    timer_arm(turn_loop(t), &t->grace_timer, loop_now_ms(turn_loop(t)) + grace, on_grace);
    metric_add(&sw->m.detaches, 1);
    metric_add(&sw->m.detached_now, 1);
    return true;
}

/* A delta of len bytes arrived with no client: counted; past the cap the turn ends (from the
 * timer, never inside the responder's own callback). */
void detach_buffered(struct turn *t, size_t len)
{
    metric_add(&t->sw->m.detached_bytes, len);
    if (t->overflow ||
        buf_size(&t->answer) - t->answer_at_detach <= t->sw->conf->detach_buffer_bytes)
        return;
    t->overflow = true;
    timer_arm(turn_loop(t), &t->grace_timer, loop_now_ms(turn_loop(t)), on_grace);
}

/* The detached turn of this worker for the conversation, if any. */
struct turn *detach_find(struct sess_worker *sw, const char *conversation_id)
{
    for (struct turn *t = sw->detached; t; t = t->dnext)
        if (strcmp(t->conversation_id, conversation_id) == 0)
            return t;
    return NULL;
}

/* Send deltas after sent_seq while at most half of outbound_limit_bytes is queued (as a
 * replay does); the rest goes on from on_writable. Live deltas wait behind them. */
void detach_catch_up(struct session *s)
{
    struct turn *t = s->turn;
    if (!t || !t->catching_up)
        return;
    size_t limit = s->sw->conf->outbound_limit_bytes;
    const uint32_t *ends = (const uint32_t *)buf_begin(&t->delta_ends);
    while (t->sent_seq < t->seq) {
        uint32_t i = t->sent_seq, from = i ? ends[i - 1] : 0, len = ends[i] - from;
        size_t queued = conn_queued(s->c), worst = (size_t)len * 6 + 160;
        if (queued && (queued > limit / 2 || queued + worst > limit)) {
            conn_want_writable(s->c);
            return;
        }
        t->sent_seq++;
        session_send_delta(s, t->turn_id, t->sent_seq, buf_begin(&t->answer) + from, len);
        metric_add(&s->sw->m.deltas_out, 1);
    }
    t->catching_up = false;
}

/* Re-attach s (its history adopted by resume.c) to its conversation's detached turn t: the
 * resumed event, the deltas after after_seq, then live. */
void detach_attach(struct session *s, struct turn *t, int64_t after_seq)
{
    detach_forget(t);
    t->s = s;
    t->resumed = true;
    s->turn = t;
    history_add(s, "user", t->user_text, t->user_len);
    uint32_t after = after_seq < 0 ? 0 : after_seq > t->seq ? t->seq : (uint32_t)after_seq;
    struct jsonw w;
    jw_init(&w, &s->sw->scratch);
    jw_obj_begin(&w);
    jw_kstr(&w, "type", "resumed");
    jw_kstr(&w, "conversation_id", s->conversation_id);
    jw_kstr(&w, "turn_id", t->turn_id);
    jw_kint(&w, "after_seq", after);
    jw_kuint(&w, "messages", s->history_len);
    jw_kbool(&w, "running", true);
    jw_obj_end(&w);
    session_send_doc(s, &s->sw->scratch);
    t->sent_seq = after;
    t->catching_up = true;
    detach_catch_up(s);
}

/* Drain or stop: no grace any more, for any turn of the worker. */
void detach_end_all(struct sess_worker *sw)
{
    while (sw->detached)
        expire(sw->detached, false);
}

/* At commit: what the grace produced for nobody (the turn was left and never came back for):
 * its answer bytes since the client left, and that share of its output tokens and cost (an
 * estimate: tokens are not counted per delta). */
void detach_count_end(struct turn *t)
{
    if (!t->was_detached || t->resumed || t->keep)
        return;
    size_t total = buf_size(&t->answer), after = total - t->answer_at_detach;
    struct sess_metrics *m = &t->sw->m;
    metric_add(&m->abandoned_bytes, after);
    if (!total || !after)
        return;
    metric_add(&m->abandoned_output_tokens,
               (uint64_t)((unsigned __int128)t->usage.output_tokens * after / total));
    if (t->cost_micros > 0)
        metric_add(&m->abandoned_cost_micros,
                   (uint64_t)((unsigned __int128)(uint64_t)t->cost_micros * after / total));
}
