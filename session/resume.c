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
 * the session takes no new turn or resume (turn_in_progress), as during a live turn. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "session/pending.h"
#include "session/session_int.h"
#include "store/store.h"
#include "stream/jsonw.h"

/* How long a resume waits for a turn of its conversation that this process is still running
 * or storing. Under overload a commit can take seconds; past this the resume reads what is
 * stored (the client then sees the previous turn replayed, or unknown_conversation). */
enum { RESUME_WAIT_MS = 15000 };

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

static void on_loaded(void *ctx, int result, const struct store_conversation *c)
{
    struct session *s = ctx;
    s->load_op = NULL;
    if (result < 0) {
        session_send_error(s, "storage_unavailable", "the conversation could not be read now", NULL,
                           0, NULL);
        return;
    }
    if (!c->found) {
        session_send_error(s, "unknown_conversation", "no such conversation", NULL, 0, NULL);
        return;
    }
    if (strcmp(c->user_sub, s->user) != 0) {
        session_send_error(s, "forbidden", "this conversation belongs to another user", NULL, 0,
                           NULL);
        return;
    }
    memcpy(s->conversation_id, s->resume_id, sizeof(s->conversation_id));
    session_history_free(s);
    for (size_t i = 0; i < c->n_messages; i++)
        history_add(s, strcmp(c->messages[i].role, "assistant") == 0 ? "assistant" : "user",
                    c->messages[i].text, c->messages[i].len);
    send_resumed(s, c, s->resume_after);
    if (c->last_turn_id) {
        s->replay = replay_create(c, s->resume_after);
        session_replay_more(s);
    }
}

static void resume_wait(struct loop *l, struct timer *t)
{
    (void)l;
    start_load((struct session *)((char *)t - offsetof(struct session, resume_timer)));
}

/* Read the conversation, unless a turn of it whose client left is still being stored in this
 * process: then look again shortly (bounded), so the replay includes that turn. */
static void start_load(struct session *s)
{
    struct loop *l = worker_loop(conn_worker(s->c));
    if (pending_has(s->resume_id) && loop_now_ms(l) < s->resume_deadline) {
        s->resume_waiting = true;
        timer_arm(l, &s->resume_timer, loop_now_ms(l) + 5, resume_wait);
        return;
    }
    s->resume_waiting = false;
    s->load_op = store_load_conversation(s->sw->store, s->resume_id, s->sw->conf->history_messages,
                                         on_loaded, s);
}

/* Handle a resume message; see the file comment. */
void session_resume(struct session *s, const struct chat_msg *m)
{
    if (!store_id_valid(m->conversation_id, m->conversation_id_len)) {
        session_send_error(s, "invalid_field", "conversation_id must be 32 lowercase hex digits",
                           NULL, 0, NULL);
        return;
    }
    if (s->turn || s->load_op || s->resume_waiting || s->replay) {
        session_send_error(s, "turn_in_progress", "a turn or a resume is still running", NULL, 0,
                           s->turn ? s->turn->turn_id : NULL);
        return;
    }
    if (!s->sw->store) {
        session_send_error(s, "resume_unavailable",
                           "this server stores no conversations (no DATABASE_URL)", NULL, 0, NULL);
        return;
    }
    memcpy(s->resume_id, m->conversation_id, 32);
    s->resume_id[32] = '\0';
    s->resume_after = m->after_seq;
    s->resume_deadline = loop_now_ms(worker_loop(conn_worker(s->c))) + RESUME_WAIT_MS;
    start_load(s);
}
