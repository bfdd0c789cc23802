/* load_user.c - one simulated user: conversations, turns, cancels, drop-and-resume, and the
 * measurements taken on the way.
 *
 * Every scheduled action has an intended time (u->due) computed from the schedule alone: the
 * ramp or arrival time for a connection, the previous turn's end plus think time for a turn.
 * Latencies are measured from that intended time, never from when the loop got round to acting
 * (coordinated omission), and the difference is recorded as schedule lag.
 *
 * State changes that follow a closed connection go through the user's timer (armed for "now"),
 * never directly from a transport callback: a transport may report a failure from inside
 * ws_connect, and the user must still exist and be unchanged when ws_connect returns. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "loadtest/load/load.h"
#include "loadtest/load/load_rng.h"
#include "stream/json.h"
#include "stream/jsonw.h"

static void on_timer(uv_timer_t *t);

static struct load *L_of(struct vuser *u)
{
    return u->w->L;
}

/* See load.h. */
void user_error(struct vuser *u, const char *fmt, ...)
{
    char kind[48];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(kind, sizeof(kind), fmt, ap);
    va_end(ap);
    int64_t now = mono_us();
    stats_error(&u->w->st, load_phase_at(L_of(u), now), load_sec(L_of(u), now), kind);
}

/* See load.h. */
struct vuser *user_create(struct worker *w, int32_t slot, int64_t due)
{
    struct vuser *u = xcalloc(1, sizeof(*u));
    u->w = w;
    u->slot = slot;
    u->state = VU_START;
    uv_timer_init(&w->loop, &u->timer);
    u->timer.data = u;
    u->next = w->users;
    if (w->users)
        w->users->prev = u;
    w->users = u;
    w->nusers++;
    user_arm(u, due);
    return u;
}

/* See load.h. */
void user_arm(struct vuser *u, int64_t due)
{
    int64_t now = mono_us();
    int64_t ms = due > now ? (due - now + 999) / 1000 : 0;
    u->due = due;
    uv_update_time(&u->w->loop);
    uv_timer_start(&u->timer, on_timer, (uint64_t)ms, 0);
}

static int64_t think_us(struct vuser *u)
{
    const struct scenario *sc = &L_of(u)->sc;
    double ms = sc->think_a_ms;
    if (sc->think == THINK_UNIFORM)
        ms = sc->think_a_ms + rng_unit(&u->w->rng) * (sc->think_b_ms - sc->think_a_ms);
    else if (sc->think == THINK_EXP) {
        ms = rng_exp(&u->w->rng, sc->think_a_ms);
        if (ms > sc->think_b_ms)
            ms = sc->think_b_ms;
    }
    return (int64_t)(ms * 1000);
}

/* The intended time of a turn whose user is ready at `ready`: after think time, and not before
 * the next slot of --max-rate (slots are handed out in the order turns are scheduled). */
static int64_t turn_due(struct vuser *u, int64_t ready)
{
    struct worker *w = u->w;
    int64_t due = ready + think_us(u);
    double rate = L_of(u)->sc.max_rate;
    if (rate > 0) {
        if (w->next_turn_slot > due)
            due = w->next_turn_slot;
        w->next_turn_slot = due + (int64_t)(1e6 * L_of(u)->nworkers / rate);
    }
    return due;
}

static void lag(struct vuser *u, int64_t now)
{
    int64_t l = now > u->due ? now - u->due : 0;
    stats_rec(&u->w->st, load_phase_at(L_of(u), u->due), M_LAG, (uint64_t)l);
    worker_note_lag(u->w, l);
}

/* ---- conversations ---- */

/* The closed model's user starts its next conversation: at once after a clean end (the slot is
 * one user of the concurrency level), after a think time when the last one failed (so a
 * refusing server is not hammered). Open-model users and users above the level leave. */
static void next_conversation(struct vuser *u, int64_t now, bool failed)
{
    if (worker_stopping(u->w) || !worker_slot_wanted(u->w, u->slot, now)) {
        u->state = VU_GONE;
        worker_user_gone(u->w, u);
        return;
    }
    u->state = VU_START;
    user_arm(u, failed ? now + think_us(u) : now);
}

static void start_conversation(struct vuser *u, int64_t now)
{
    struct load *L = L_of(u);
    const struct scenario *sc = &L->sc;
    u->phase = load_phase_at(L, u->due);
    u->turns_left =
        sc->turns_min + (uint32_t)(rng_unit(&u->w->rng) * (sc->turns_max - sc->turns_min + 1));
    if (u->turns_left > sc->turns_max)
        u->turns_left = sc->turns_max;
    u->conv_cost = 0;
    u->conv_failed = false;
    u->conv_id[0] = '\0';
    u->msg_no = 0;
    if (!sc->idle)
        stats_add(&u->w->st, u->phase, C_CONVERSATIONS, 1);
    if (L->mode == MODE_SSE) {
        stats_add(&u->w->st, u->phase, C_SESSIONS, 1);
        u->state = VU_THINK;
        user_arm(u, turn_due(u, now));
        return;
    }
    u->on_tgt2 = L->has_tgt2 && rng_unit(&u->w->rng) < 0.5; /* two processes: half each */
    u->t_conn_due = u->due > now ? now : u->due;            /* a timer may fire up to 1 ms early */
    u->t_tcp = 0;
    u->state = VU_CONNECTING;
    stats_add(&u->w->st, u->phase, C_CONNECTS, 1);
    stats_sec_at(&u->w->st, load_sec(L, now))->connects++;
    user_arm(u, now + (int64_t)sc->connect_timeout_ms * 1000);
    if (ws_connect(u) < 0) {
        snprintf(u->close_kind, sizeof(u->close_kind), "connect_failed");
        user_on_closed(u);
    }
}

static void end_conversation(struct vuser *u, int64_t now)
{
    if (!u->conv_failed && !L_of(u)->sc.idle) {
        stats_add(&u->w->st, u->phase, C_CONV_DONE, 1);
        stats_rec(&u->w->st, u->phase, M_CONV_COST, u->conv_cost);
    }
    if (L_of(u)->mode == MODE_SSE || !u->conn_pending) {
        next_conversation(u, now, u->conv_failed);
        return;
    }
    u->state = VU_CLOSING;
    ws_close(u, false);
    user_arm(u, now + 10 * 1000000); /* lws has its own close timeout; this is a backstop */
}

/* ---- turns ---- */

static void send_json_turn(struct vuser *u)
{
    struct worker *w = u->w;
    struct jsonw j;
    buf_reset(&w->scratch);
    jw_init(&j, &w->scratch);
    jw_obj_begin(&j);
    jw_kstr(&j, "type", "user_message");
    jw_kstr(&j, "id", u->msg_id);
    jw_kstrn(&j, "text", u->q->text, u->q->len);
    jw_obj_end(&j);
    ws_send(u, buf_begin(&w->scratch), buf_size(&w->scratch));
}

static void start_turn(struct vuser *u, int64_t now)
{
    struct load *L = L_of(u);
    struct worker *w = u->w;
    u->state = VU_TURN;
    u->t_turn = u->due > now ? now : u->due;
    u->turn_phase = load_phase_at(L, u->due);
    u->seq = u->text_off = 0;
    u->started = u->cancel_sent = u->echo_bad = false;
    u->turn_id[0] = '\0';
    u->q = corpus_pick(&L->corpus, rng_unit(&w->rng), rng_unit(&w->rng));
    double r = rng_unit(&w->rng);
    u->action = ACT_NONE;
    if (L->mode == MODE_WS && r < L->sc.cancel_share)
        u->action = ACT_CANCEL;
    else if (L->mode == MODE_WS && r < L->sc.cancel_share + L->sc.resume_share)
        u->action = ACT_DROP;
    snprintf(u->msg_id, sizeof(u->msg_id), "m-%u", ++u->msg_no);
    stats_add(&w->st, u->turn_phase, C_TURNS, 1);
    stats_sec_at(&w->st, load_sec(L, now))->turns++;
    user_arm(u, u->t_turn + (int64_t)L->sc.turn_timeout_ms * 1000);
    if (L->mode == MODE_SSE) {
        if (sse_start_turn(u) < 0)
            user_sse_end(u, "request_failed", 0);
        return;
    }
    send_json_turn(u);
}

/* A turn is over (its turn_end, a refusal, or a replay): the next turn or the end. */
static void turn_over(struct vuser *u, int64_t now)
{
    if (u->turns_left)
        u->turns_left--;
    if (u->turns_left == 0 || worker_stopping(u->w)) {
        end_conversation(u, now);
        return;
    }
    u->state = VU_THINK;
    user_arm(u, turn_due(u, now));
}

static void send_cancel(struct vuser *u)
{
    char msg[128];
    int n = snprintf(msg, sizeof(msg), "{\"type\":\"cancel\",\"turn_id\":\"%s\"}", u->turn_id);
    u->cancel_sent = true;
    stats_add(&u->w->st, u->turn_phase, C_CANCELS, 1);
    ws_send(u, msg, (size_t)n);
}

/* Drop the connection mid-turn; the timer reconnects and resumes (see on_closed_dropped). */
static void drop(struct vuser *u, int64_t now)
{
    u->t_drop = now;
    u->drop_seq = u->seq;
    u->resume_bad = u->resumed_ack = false;
    u->state = VU_DROPPED;
    stats_add(&u->w->st, u->turn_phase, C_RESUMES, 1);
    ws_close(u, true);
    user_arm(u, now + (int64_t)L_of(u)->sc.reconnect_delay_ms * 1000);
}

static void send_resume(struct vuser *u)
{
    char msg[160];
    int n = snprintf(msg, sizeof(msg),
                     "{\"type\":\"resume\",\"conversation_id\":\"%s\",\"after_seq\":%u}",
                     u->conv_id, u->drop_seq);
    ws_send(u, msg, (size_t)n);
}

/* ---- the timer ---- */

/* After a drop: a new connection, on which user_on_open sends the resume. */
static void reconnect(struct vuser *u, int64_t now)
{
    if (u->conn_pending) { /* the dropped connection is not gone yet */
        user_arm(u, now + 1000);
        return;
    }
    u->state = VU_RESUMING;
    u->opened = false;
    u->on_tgt2 = L_of(u)->has_tgt2 && !u->on_tgt2; /* two processes: resume on the other one */
    stats_add(&u->w->st, u->turn_phase, C_CONNECTS, 1);
    user_arm(u, u->t_drop + (int64_t)L_of(u)->sc.turn_timeout_ms * 1000);
    if (ws_connect(u) < 0) {
        snprintf(u->close_kind, sizeof(u->close_kind), "connect_failed");
        user_on_closed(u);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct vuser *u = t->data;
    int64_t now = mono_us();
    if (now + 1000 < u->due) { /* earlier than libuv's 1 ms timer granularity explains */
        user_arm(u, u->due);
        return;
    }
    switch (u->state) {
    case VU_START:
        lag(u, now);
        if (worker_stopping(u->w)) {
            next_conversation(u, now, false);
            return;
        }
        start_conversation(u, now);
        return;
    case VU_THINK:
        lag(u, now);
        start_turn(u, now);
        return;
    case VU_DROPPED:
        reconnect(u, now);
        return;
    case VU_CONNECTING:
    case VU_TURN:
    case VU_RESUMING:
    case VU_CLOSING: {
        static const char *const what[] = {[VU_CONNECTING] = "timeout_connect",
                                           [VU_TURN] = "timeout_turn",
                                           [VU_RESUMING] = "timeout_resume",
                                           [VU_CLOSING] = "timeout_close"};
        snprintf(u->close_kind, sizeof(u->close_kind), "%s", what[u->state]);
        if (L_of(u)->mode == MODE_SSE) {
            sse_abort(u);
            user_sse_end(u, "timeout_turn", 0);
        } else if (u->conn_pending) {
            ws_close(u, true);
        } else {
            user_on_closed(u);
        }
        return;
    }
    case VU_IDLE:
    case VU_GONE:
        return;
    }
}

/* ---- the connection ---- */

/* See load.h. */
void user_on_tcp(struct vuser *u)
{
    int64_t now = mono_us();
    u->t_tcp = now;
    int p = load_phase_at(L_of(u), u->t_conn_due);
    if (u->state == VU_CONNECTING)
        stats_rec(&u->w->st, p, M_CONNECT, (uint64_t)(now - u->t_conn_due));
}

/* See load.h. The `session` message: the connection is usable. */
void user_on_open(struct vuser *u, const char *conv_id, size_t len)
{
    int64_t now = mono_us();
    struct worker *w = u->w;
    if (u->opened) {
        user_error(u, "unexpected_session");
        return;
    }
    u->opened = true;
    w->nopen++;
    stats_add(&w->st, u->phase, C_SESSIONS, 1);
    if (u->t_tcp)
        stats_rec(&w->st, u->phase, M_HANDSHAKE, (uint64_t)(now - u->t_tcp));
    if (u->state == VU_RESUMING) {
        send_resume(u);
        return;
    }
    if (u->state != VU_CONNECTING)
        return;
    snprintf(u->conv_id, sizeof(u->conv_id), "%.*s", (int)(len < 32 ? len : 32), conv_id);
    if (L_of(u)->sc.idle) {
        u->state = VU_IDLE;
        uv_timer_stop(&u->timer);
        return;
    }
    u->state = VU_THINK;
    user_arm(u, turn_due(u, now));
}

/* See load.h. The connection is gone (WSI_DESTROY), or could not be made. */
void user_on_closed(struct vuser *u)
{
    int64_t now = mono_us();
    if (u->opened && u->w->nopen)
        u->w->nopen--;
    bool ours = u->closing;
    u->wsi = NULL;
    u->conn_pending = u->opened = u->closing = false;
    buf_reset(&u->rx);
    buf_reset(&u->tx);
    char kind[48];
    snprintf(kind, sizeof(kind), "%s", u->close_kind[0] ? u->close_kind : "connection_lost");
    u->close_kind[0] = '\0';
    switch (u->state) {
    case VU_DROPPED: /* ours: the timer reconnects */
        return;
    case VU_CLOSING:
        if (!strcmp(kind, "timeout_close"))
            user_error(u, "%s", kind);
        next_conversation(u, now, u->conv_failed);
        return;
    case VU_GONE:
        return;
    default:
        break;
    }
    if (!(ours && worker_stopping(u->w)))
        user_error(u, "%s", kind);
    u->conv_failed = true;
    next_conversation(u, now, true);
}

/* See load.h. */
void user_stop(struct vuser *u)
{
    if (u->state == VU_GONE || u->state == VU_CLOSING)
        return;
    if (u->state == VU_TURN || u->state == VU_RESUMING || u->state == VU_DROPPED)
        stats_add(&u->w->st, u->turn_phase, C_UNFINISHED, 1);
    if (L_of(u)->mode == MODE_SSE)
        sse_abort(u);
    if (u->conn_pending) {
        u->state = VU_CLOSING;
        ws_close(u, false);
        user_arm(u, mono_us() + 5 * 1000000);
        return;
    }
    u->state = VU_GONE;
    worker_user_gone(u->w, u);
}

/* ---- messages ---- */

static bool is_str(json_doc *d, const char *ptr, const char *want)
{
    const char *s;
    size_t n;
    return json_get_string(d, ptr, &s, &n) == 0 && n == strlen(want) && !memcmp(s, want, n);
}

static bool same_turn(struct vuser *u, json_doc *d)
{
    return is_str(d, "/turn_id", u->turn_id);
}

static void on_turn_start(struct vuser *u, json_doc *d)
{
    const char *s;
    size_t n;
    if (u->state != VU_TURN || u->started || !is_str(d, "/id", u->msg_id) ||
        json_get_string(d, "/turn_id", &s, &n) < 0 || n != 32) {
        user_error(u, "unexpected_turn_start");
        return;
    }
    memcpy(u->turn_id, s, 32);
    u->turn_id[32] = '\0';
    u->started = true;
    if (u->action == ACT_CANCEL && L_of(u)->sc.cancel_after == 0)
        send_cancel(u);
}

/* Text of a delta against the query (echo model): the answer is the query, split in words. */
static void echo_check(struct vuser *u, const char *s, size_t n)
{
    if (!L_of(u)->sc.expect_echo || u->echo_bad)
        return;
    if (u->text_off + n > u->q->len || memcmp(u->q->text + u->text_off, s, n)) {
        u->echo_bad = true;
        user_error(u, u->state == VU_RESUMING ? "resume_text_mismatch" : "echo_mismatch");
        return;
    }
    u->text_off += (uint32_t)n;
}

static void on_delta(struct vuser *u, json_doc *d, int64_t now)
{
    int64_t seq;
    const char *s;
    size_t n;
    if ((u->state != VU_TURN && u->state != VU_RESUMING) || !u->started || !same_turn(u, d) ||
        json_get_int(d, "/seq", &seq) < 0 || json_get_string(d, "/text", &s, &n) < 0) {
        user_error(u, "unexpected_delta");
        return;
    }
    if (seq != (int64_t)u->seq + 1) {
        const char *kind = seq <= (int64_t)u->seq ? "duplicate" : "missing";
        if (seq <= (int64_t)u->seq)
            stats_add(&u->w->st, u->turn_phase, C_DUPLICATES, 1);
        user_error(u, "%s_%s", u->state == VU_RESUMING ? "resume" : "delta", kind);
        u->resume_bad = true;
        if (seq <= (int64_t)u->seq)
            return; /* do not count a duplicate's text twice */
    }
    u->seq = (uint32_t)seq;
    echo_check(u, s, n);
    if (u->state == VU_RESUMING)
        return; /* a replay: its timing says nothing about generation */
    if (u->seq == 1)
        stats_rec(&u->w->st, u->turn_phase, M_TTFT, (uint64_t)(now - u->t_turn));
    else
        stats_rec(&u->w->st, u->turn_phase, M_GAP, (uint64_t)(now - u->t_last));
    u->t_last = now;
    if (u->action == ACT_CANCEL && !u->cancel_sent && u->seq >= L_of(u)->sc.cancel_after)
        send_cancel(u);
    else if (u->action == ACT_DROP && u->seq >= L_of(u)->sc.resume_after)
        drop(u, now);
}

/* A usage member of turn_end: a count, 0 when absent or negative. */
static uint64_t usage_count(json_doc *d, const char *ptr)
{
    int64_t v = 0;
    json_get_int(d, ptr, &v);
    return v < 0 ? 0 : (uint64_t)v;
}

static void count_finish(struct vuser *u, json_doc *d, int64_t now)
{
    struct worker *w = u->w;
    int p = u->turn_phase;
    int64_t micros = 0;
    const char *s;
    size_t n;
    json_get_int(d, "/cost/micros", &micros);
    if (!w->st.currency[0] && json_get_string(d, "/cost/currency", &s, &n) == 0 && n < 8)
        memcpy(w->st.currency, s, n);
    micros = micros < 0 ? 0 : micros;
    struct stats_usage use = {
        .input = usage_count(d, "/usage/input_tokens"),
        .cached_input = usage_count(d, "/usage/cached_input_tokens"),
        .output = usage_count(d, "/usage/output_tokens"),
    };
    int64_t sec = load_sec(L_of(u), now);
    stats_add(&w->st, p, C_TURNS_DONE, 1);
    stats_add(&w->st, p, C_COST, (uint64_t)micros);
    stats_usage(&w->st, p, sec, &use);
    stats_sec_at(&w->st, sec)->turns_done++;
    u->conv_cost += (uint64_t)micros;
    if (is_str(d, "/finish_reason", "stop") || is_str(d, "/finish_reason", "length")) {
        stats_add(&w->st, p, C_TURNS_OK, 1);
        if (L_of(u)->sc.expect_echo && !u->echo_bad && u->text_off != u->q->len)
            user_error(u, "echo_missing_text");
        if (u->cancel_sent)
            u->cancel_race = true;
    } else if (is_str(d, "/finish_reason", "cancelled")) {
        stats_add(&w->st, p, C_CANCELLED, 1);
        if (!u->cancel_sent && u->state != VU_RESUMING)
            user_error(u, "unrequested_cancel");
    }
}

static void on_turn_end(struct vuser *u, json_doc *d, int64_t now)
{
    bool replayed = false, resumed = false;
    if ((u->state != VU_TURN && u->state != VU_RESUMING) || !u->started || !same_turn(u, d)) {
        user_error(u, "unexpected_turn_end");
        return;
    }
    json_get_bool(d, "/replayed", &replayed);
    json_get_bool(d, "/resumed", &resumed);
    if (u->state == VU_RESUMING) {
        /* replayed from the store, or the running turn itself re-attached (resumed) */
        if (!(replayed || resumed) || !u->resumed_ack) {
            user_error(u, "resume_not_replayed");
            u->resume_bad = true;
        }
        if (!u->resume_bad) {
            stats_add(&u->w->st, u->turn_phase, C_RESUMED, 1);
            stats_rec(&u->w->st, u->turn_phase, M_RESUME, (uint64_t)(now - u->t_drop));
            bool full =
                is_str(d, "/finish_reason", "stop") || is_str(d, "/finish_reason", "length");
            if (full && L_of(u)->sc.expect_echo)
                full = !u->echo_bad && u->text_off == u->q->len;
            if (full)
                stats_add(&u->w->st, u->turn_phase, C_RESUMED_FULL, 1);
        }
    } else {
        if (replayed)
            user_error(u, "unexpected_replay");
        stats_rec(&u->w->st, u->turn_phase, M_TURN, (uint64_t)(now - u->t_turn));
    }
    count_finish(u, d, now);
    turn_over(u, now);
}

static void on_resumed(struct vuser *u, json_doc *d)
{
    if (u->state != VU_RESUMING || u->resumed_ack) {
        user_error(u, "unexpected_resumed");
        return;
    }
    u->resumed_ack = true;
    if (!same_turn(u, d)) {
        /* the server would replay another turn: count it once, and start afresh */
        snprintf(u->close_kind, sizeof(u->close_kind), "resume_mismatch");
        ws_close(u, true);
    }
}

static void on_error(struct vuser *u, json_doc *d, int64_t now)
{
    const char *code;
    size_t n;
    if (json_get_string(d, "/code", &code, &n) < 0)
        code = "?", n = 1;
    if (u->cancel_race && n == 12 && !memcmp(code, "unknown_turn", 12)) {
        u->cancel_race = false;
        return;
    }
    user_error(u, "error_%.*s", (int)(n > 40 ? 40 : n), code);
    bool ours = json_type_at(d, "/id") == JSON_MISSING || is_str(d, "/id", u->msg_id);
    if (u->state == VU_TURN && !u->started && ours) {
        turn_over(u, now); /* refused before it began: no turn_end follows */
    } else if (u->state == VU_RESUMING && !u->resumed_ack) {
        u->conv_failed = true;
        turn_over(u, now); /* the resume was refused; the conversation goes on afresh */
    }
}

/* See load.h. One complete text message from the server. */
void user_on_message(struct vuser *u, const char *json, size_t len)
{
    json_doc *d = u->w->doc;
    const char *t;
    size_t n;
    int64_t now = mono_us();
    if (u->ignore_rx)
        return;
    if (json_doc_load(d, json, len) < 0 || json_get_string(d, "/type", &t, &n) < 0) {
        user_error(u, "bad_message");
        return;
    }
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(t, lit, n) == 0)
    if (IS("delta")) {
        on_delta(u, d, now);
    } else if (IS("turn_start")) {
        on_turn_start(u, d);
    } else if (IS("turn_end")) {
        on_turn_end(u, d, now);
    } else if (IS("session")) {
        const char *id = "";
        size_t idn = 0;
        json_get_string(d, "/conversation_id", &id, &idn);
        user_on_open(u, id, idn);
    } else if (IS("error")) {
        on_error(u, d, now);
    } else if (IS("resumed")) {
        on_resumed(u, d);
    } else if (IS("status") || IS("products")) {
        /* what the assistant is doing, the slate: v1 additions (docs/protocol.md) that say
         * nothing about timing, tokens or cost */
    } else {
        user_error(u, "unknown_message_type");
    }
#undef IS
}

/* ---- direct mode ---- */

/* See load.h. One content chunk of a direct-mode stream (its text is not checked). */
void user_sse_delta(struct vuser *u, size_t text_len)
{
    int64_t now = mono_us();
    (void)text_len;
    if (u->state != VU_TURN)
        return;
    u->seq++;
    if (u->seq == 1)
        stats_rec(&u->w->st, u->turn_phase, M_TTFT, (uint64_t)(now - u->t_turn));
    else
        stats_rec(&u->w->st, u->turn_phase, M_GAP, (uint64_t)(now - u->t_last));
    u->t_last = now;
}

/* See load.h. The direct-mode transfer ended: error_kind is NULL when it completed. */
void user_sse_end(struct vuser *u, const char *error_kind, const struct stats_usage *use)
{
    int64_t now = mono_us();
    struct worker *w = u->w;
    if (u->state != VU_TURN)
        return;
    if (error_kind) {
        user_error(u, "%s", error_kind);
        u->conv_failed = true;
    } else {
        int p = u->turn_phase;
        stats_rec(&w->st, p, M_TURN, (uint64_t)(now - u->t_turn));
        stats_add(&w->st, p, C_TURNS_DONE, 1);
        stats_add(&w->st, p, C_TURNS_OK, 1);
        int64_t sec = load_sec(L_of(u), now);
        stats_usage(&w->st, p, sec, use);
        stats_sec_at(&w->st, sec)->turns_done++;
    }
    turn_over(u, now);
}
