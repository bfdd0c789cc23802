/* resume.c - {"type":"resume"}: continue a stored conversation on any server process.
 *
 * The conversation is read from the store (owner, recent messages, last turn). Only its owner
 * (the token's sub; "" for anonymous sessions, where the 128-bit id is the only guard) may
 * resume it. The session adopts the conversation and its history, then re-sends the deltas of
 * the last turn after after_seq, split exactly as they were first sent, and that turn's
 * turn_end, so the client shows each answer once. */
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

static void replay_last_turn(struct session *s, const struct store_conversation *c, int64_t after)
{
    for (uint32_t i = (uint32_t)(after < c->last_n_deltas ? after : c->last_n_deltas);
         i < c->last_n_deltas; i++) {
        uint32_t from = i ? c->last_delta_ends[i - 1] : 0, to = c->last_delta_ends[i];
        if (to < from || to > c->last_answer_len)
            break; /* a damaged row: send what is consistent */
        session_send_delta(s, c->last_turn_id, i + 1, c->last_answer + from, to - from);
    }
    const struct llm_usage *u = &c->last_usage;
    struct turn_end_info e = {
        .turn_id = c->last_turn_id,
        .finish = c->last_finish,
        .currency = c->last_currency,
        .usage = {u->input_tokens, u->cached_input_tokens, u->cache_write_tokens, u->output_tokens,
                  u->reasoning_tokens},
        .cost_micros = c->last_cost_micros,
        .first_token_ms = c->last_first_token_ms,
        .total_ms = c->last_total_ms,
        .replayed = true,
    };
    session_send_turn_end(s, &e);
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
    if (strcmp(c->user_sub, s->user_sub) != 0) {
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
    if (c->last_turn_id)
        replay_last_turn(s, c, s->resume_after);
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
    if (s->turn || s->load_op || s->resume_waiting) {
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
