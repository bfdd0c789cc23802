/* session.c - what a session says and hears: the session event, the delta / turn_end / error
 * events, client messages (parse, rate limit, dispatch to a turn or a cancel). The
 * conversation history kept for the next turn is in history.c. The upgrade decision, session
 * creation and drain are in lifecycle.c; a turn's life in turn.c; resume in resume.c.
 *
 * A session belongs to the worker that accepted its connection; all of this runs on that
 * worker's thread with no locks. At most one turn runs per session at a time. */
#include "session/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "base/log.h"
#include "base/mem.h"
#include "net/ws_frame.h"
#include "session/auth.h"
#include "session/chat_msg.h"
#include "session/session_int.h"
#include "stream/jsonw.h"

void random_hex(char *out, size_t bytes)
{
    uint8_t r[32];
    if (getrandom(r, bytes, 0) != (ssize_t)bytes) {
        /* getrandom on a booted kernel does not fail for <= 256 bytes; be loud if it does. */
        log_error("getrandom failed; ids would be guessable");
        abort();
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < bytes; i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    out[2 * bytes] = '\0';
}

void random_hex16(char out[33])
{
    random_hex(out, 16);
}

/* A new conversation: 128 random bits, which is all that guards an anonymous one. */
void session_new_conversation(struct session *s)
{
    random_hex(s->conversation_id, 16);
}

/* ---- outgoing events ---- */

void session_send_doc(struct session *s, struct buf *b)
{
    if (conn_send_text(s->c, buf_begin(b), buf_size(b)) == 0)
        metric_add(&s->sw->m.events_out, 1);
    buf_reset(b);
}

/* One delta event. */
void session_send_delta(struct session *s, const char *turn_id, uint32_t seq, const char *text,
                        size_t len)
{
    struct jsonw w;
    jw_init(&w, &s->sw->scratch);
    jw_obj_begin(&w);
    jw_kstr(&w, "type", "delta");
    jw_kstr(&w, "turn_id", turn_id);
    jw_kuint(&w, "seq", seq);
    jw_kstrn(&w, "text", text, len);
    jw_obj_end(&w);
    session_send_doc(s, &s->sw->scratch);
}

/* A turn_end event (docs/protocol.md), live or replayed. */
void session_send_turn_end(struct session *s, const struct turn_end_info *e)
{
    const struct llm_usage *u = &e->usage;
    struct jsonw w;
    jw_init(&w, &s->sw->scratch);
    jw_obj_begin(&w);
    jw_kstr(&w, "type", "turn_end");
    jw_kstr(&w, "turn_id", e->turn_id);
    jw_kstr(&w, "finish_reason", e->finish);
    jw_key(&w, "usage");
    jw_obj_begin(&w);
    jw_kuint(&w, "input_tokens", u->input_tokens);
    jw_kuint(&w, "cached_input_tokens", u->cached_input_tokens);
    jw_kuint(&w, "cache_write_tokens", u->cache_write_tokens);
    jw_kuint(&w, "output_tokens", u->output_tokens);
    jw_kuint(&w, "reasoning_tokens", u->reasoning_tokens);
    jw_obj_end(&w);
    jw_key(&w, "cost");
    jw_obj_begin(&w);
    jw_kstr(&w, "currency", e->currency);
    jw_kint(&w, "micros", e->cost_micros);
    jw_obj_end(&w);
    jw_key(&w, "latency_ms");
    jw_obj_begin(&w);
    jw_key(&w, "first_token");
    if (e->first_token_ms >= 0)
        jw_int(&w, e->first_token_ms);
    else
        jw_null(&w); /* no token was produced */
    jw_kint(&w, "total", e->total_ms);
    jw_obj_end(&w);
    if (e->query_type && e->query_type[0]) {
        jw_key(&w, "route");
        jw_obj_begin(&w);
        jw_kstr(&w, "query_type", e->query_type);
        jw_kstr(&w, "agent", e->agent ? e->agent : "");
        jw_obj_end(&w);
    }
    if (e->n_flags) {
        jw_key(&w, "flags");
        jw_arr_begin(&w);
        for (uint32_t i = 0; i < e->n_flags; i++)
            jw_str(&w, e->flags[i]);
        jw_arr_end(&w);
    }
    jw_key(&w, "cache");
    if (e->cache && e->cache[0])
        jw_str(&w, e->cache);
    else
        jw_null(&w);
    if (e->replayed)
        jw_kbool(&w, "replayed", true);
    if (e->resumed)
        jw_kbool(&w, "resumed", true);
    jw_obj_end(&w);
    session_send_doc(s, &s->sw->scratch);
}

/* A status event (docs/protocol.md). */
void session_send_status(struct session *s, const char *turn_id, const char *stage,
                         const char *tool)
{
    struct jsonw w;
    jw_init(&w, &s->sw->scratch);
    jw_obj_begin(&w);
    jw_kstr(&w, "type", "status");
    jw_kstr(&w, "turn_id", turn_id);
    jw_kstr(&w, "stage", stage);
    if (tool && tool[0])
        jw_kstr(&w, "tool", tool);
    jw_obj_end(&w);
    session_send_doc(s, &s->sw->scratch);
}

/* A products event: items is a JSON array's text, written as it is. */
void session_send_products(struct session *s, const char *turn_id, const char *items, size_t len)
{
    struct jsonw w;
    jw_init(&w, &s->sw->scratch);
    jw_obj_begin(&w);
    jw_kstr(&w, "type", "products");
    jw_kstr(&w, "turn_id", turn_id);
    jw_key(&w, "items");
    jw_raw(&w, items, len);
    jw_obj_end(&w);
    session_send_doc(s, &s->sw->scratch);
}

void session_send_error(struct session *s, const char *code, const char *message, const char *id,
                        size_t id_len, const char *turn_id)
{
    struct jsonw w;
    jw_init(&w, &s->sw->scratch);
    jw_obj_begin(&w);
    jw_kstr(&w, "type", "error");
    jw_kstr(&w, "code", code);
    jw_kstr(&w, "message", message);
    if (id)
        jw_kstrn(&w, "id", id, id_len);
    if (turn_id)
        jw_kstr(&w, "turn_id", turn_id);
    jw_obj_end(&w);
    session_send_doc(s, &s->sw->scratch);
    sess_count_error(s->sw, code);
}

void session_send_event_session(struct session *s)
{
    const struct config *conf = s->sw->conf;
    struct jsonw w;
    jw_init(&w, &s->sw->scratch);
    jw_obj_begin(&w);
    jw_kstr(&w, "type", "session");
    jw_kstr(&w, "conversation_id", s->conversation_id);
    jw_kstr(&w, "user", s->user_sub);
    jw_kint(&w, "protocol", 1);
    jw_key(&w, "limits");
    jw_obj_begin(&w);
    jw_kuint(&w, "max_text_bytes", conf->max_text_bytes);
    jw_kuint(&w, "max_message_bytes", conf->max_message_bytes);
    jw_obj_end(&w);
    jw_obj_end(&w);
    session_send_doc(s, &s->sw->scratch);
}

/* ---- client messages ---- */

static bool rate_allow(struct session *s, uint64_t *retry_ms)
{
    const struct config *conf = s->sw->conf;
    uint64_t now = loop_now_ms(worker_loop(conn_worker(s->c)));
    /* Token bucket: rate_messages tokens, refilled evenly over rate_window_ms. Kept in
     * thousandths of a token to stay in integers. */
    uint64_t cap = (uint64_t)conf->rate_messages * 1000;
    uint64_t refill = (now - s->rate_at_ms) * conf->rate_messages * 1000 / conf->rate_window_ms;
    if (refill) {
        s->rate_tokens = s->rate_tokens + refill > cap ? cap : s->rate_tokens + refill;
        s->rate_at_ms = now;
    }
    if (s->rate_tokens < 1000) {
        /* when the missing thousandths are back, rounded up */
        uint64_t per = (uint64_t)conf->rate_messages * 1000;
        *retry_ms = ((1000 - s->rate_tokens) * conf->rate_window_ms + per - 1) / per;
        return false;
    }
    s->rate_tokens -= 1000;
    return true;
}

/* A user_message: refused while something else runs, else (its history read back first if
 * it was dropped, history.c) a new turn. */
void on_user_message(struct session *s, const struct chat_msg *m)
{
    if (session_resume_busy(s) || s->held) {
        session_send_error(s, "turn_in_progress", "a resume is still being read or replayed", m->id,
                           m->id_len, NULL);
        return;
    }
    if (s->turn) {
        session_send_error(s, "turn_in_progress",
                           "a turn is still running; wait for its turn_end or cancel it", m->id,
                           m->id_len, s->turn->turn_id);
        return;
    }
    if (server_draining(worker_server(conn_worker(s->c)))) {
        session_send_error(s, "draining", "the server is shutting down; reconnect to continue",
                           m->id, m->id_len, NULL);
        return;
    }
    if (history_reload_first(s, m))
        return;
    session_start_turn(s, m);
}

static void on_cancel(struct session *s, const struct chat_msg *m)
{
    if (!s->turn || strlen(s->turn->turn_id) != m->turn_id_len ||
        memcmp(s->turn->turn_id, m->turn_id, m->turn_id_len) != 0) {
        char msg[120];
        snprintf(msg, sizeof(msg), "no running turn '%.*s' in this session",
                 (int)(m->turn_id_len > 64 ? 64 : m->turn_id_len), m->turn_id);
        session_send_error(s, "unknown_turn", msg, NULL, 0, NULL);
        return;
    }
    session_cancel_turn(s, "cancelled");
}

void on_message_hook(struct conn *c, char *text, size_t len)
{
    struct session *s = conn_app(c);
    if (!s)
        return;
    uint64_t retry_ms = 0;
    if (!rate_allow(s, &retry_ms)) {
        session_send_rate_limited(s, "messages", retry_ms ? retry_ms : 1, NULL, 0);
        return;
    }
    struct chat_msg m;
    struct chat_err e;
    if (chat_msg_parse(s->sw->doc, text, len, s->sw->conf->max_text_bytes, &m, &e) < 0) {
        session_send_error(s, e.code, e.message, e.id, e.id_len, NULL);
        return;
    }
    switch (m.type) {
    case CHAT_USER_MESSAGE:
        on_user_message(s, &m);
        break;
    case CHAT_CANCEL:
        on_cancel(s, &m);
        break;
    case CHAT_RESUME:
        session_resume(s, &m);
        break;
    }
}
