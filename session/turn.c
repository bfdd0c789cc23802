/* turn.c - one turn from the user's message to a durable turn_end.
 *
 *   start -> responder streams deltas -> responder done -> commit (group commit or journal)
 *         -> turn_end to the client
 *
 * turn_end is sent only once the turn's rows are durable, so anything a client saw finish is
 * stored. A client that leaves mid-turn cancels the responder; what was streamed is still
 * committed (finish "cancelled") so that a resume finds it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "base/log.h"
#include "base/mem.h"
#include "net/ws_frame.h"
#include "session/pending.h"
#include "session/session_int.h"
#include "store/store.h"
#include "store/turn_state.h"
#include "stream/jsonw.h"

struct loop *turn_loop(struct turn *t)
{
    return worker_loop(t->sw->w);
}

void *turn_responder_state(struct turn *t)
{
    return t->rstate;
}

void turn_set_responder_state(struct turn *t, void *state)
{
    t->rstate = state;
}

const struct config *turn_config(struct turn *t)
{
    return t->sw->conf;
}

void *turn_responder_worker(struct turn *t)
{
    return t->sw->rworker;
}

size_t turn_history(struct turn *t, const struct history_msg **msgs)
{
    struct session *s = t->s;
    /* no client attached: the history the turn took over when the last one left (detach.c) */
    const struct history_msg *all = s ? s->history : t->own_history;
    size_t len = s ? s->history_len : t->own_history_len;
    if (!s && all) {
        all += t->own_history_from;
        len -= t->own_history_from;
    }
    if (!all || !len) {
        *msgs = NULL;
        return 0;
    }
    size_t keep = (size_t)t->sw->conf->history_messages + 1;
    size_t n = len < keep ? len : keep;
    const struct history_msg *h = all + (len - n);
    /* the window starts with a user message: some providers refuse an assistant first */
    while (n > 1 && strcmp(h->role, "assistant") == 0) {
        h++;
        n--;
    }
    *msgs = h;
    return n;
}

static void count_call(struct sess_metrics *m, const struct llm_call_record *c)
{
    uint32_t n = m->call_rows, i = 0;
    while (i < n &&
           (strcmp(m->calls[i].provider, c->provider) || strcmp(m->calls[i].model, c->model)))
        i++;
    if (i == n) {
        if (n == SESS_CALL_ROWS)
            i = n - 1; /* the last row collects what does not fit */
        else {
            snprintf(m->calls[i].provider, sizeof(m->calls[i].provider), "%s", c->provider);
            snprintf(m->calls[i].model, sizeof(m->calls[i].model), "%s", c->model);
            __atomic_store_n(&m->call_rows, n + 1, __ATOMIC_RELEASE);
        }
    }
    struct call_row *r = &m->calls[i];
    int st = strcmp(c->status, "ok") == 0 ? 0 : strcmp(c->status, "cancelled") == 0 ? 2 : 1;
    int cls = c->http_status == 429                           ? 1
              : c->http_status >= 200 && c->http_status < 300 ? 0
              : c->http_status >= 500                         ? 3
              : c->http_status >= 400                         ? 2
                                                              : 4;
    metric_add(&r->by_status[st][cls], 1);
    metric_add(&r->cost_micros, (uint64_t)(c->cost_micros > 0 ? c->cost_micros : 0));
    metric_add(&r->input_tokens, c->usage.input_tokens);
    metric_add(&r->output_tokens, c->usage.output_tokens);
}

/* Index of name among n rows (names at base + k * stride, each name_cap bytes), claiming a new
 * row when absent. Rows are written by this worker only and read by /metrics on another thread:
 * a new row's name is written before the count that publishes it. The last row collects what
 * does not fit. */
static uint32_t claim_row(char *base, size_t stride, size_t name_cap, uint32_t *count, uint32_t cap,
                          const char *name)
{
    uint32_t n = *count, i = 0;
    while (i < n && strcmp(base + i * stride, name))
        i++;
    if (i == n && n == cap)
        return n - 1;
    if (i == n) {
        snprintf(base + i * stride, name_cap, "%s", name);
        __atomic_store_n(count, n + 1, __ATOMIC_RELEASE);
    }
    return i;
}

static void count_tool(struct sess_metrics *m, const struct tool_call_record *c)
{
    static const char *const st[4] = {"ok", "error", "timeout", "cancelled"};
    struct tool_row *r =
        &m->tools[claim_row(m->tools[0].name, sizeof(m->tools[0]), sizeof(m->tools[0].name),
                            &m->tool_rows, SESS_TOOL_ROWS, c->name)];
    int k = 1; /* anything unknown counts as an error */
    for (int i = 0; i < 4; i++)
        if (strcmp(c->status, st[i]) == 0)
            k = i;
    metric_add(&r->by_status[k], 1);
}

static void count_ttft(struct turn *t, unsigned bucket, uint64_t ms)
{
    struct sess_metrics *m = &t->sw->m;
    const char *qt = t->query_type[0] ? t->query_type : "none";
    struct ttft_type_row *r =
        &m->types[claim_row(m->types[0].query_type, sizeof(m->types[0]),
                            sizeof(m->types[0].query_type), &m->type_rows, SESS_TYPE_ROWS, qt)];
    metric_add(&r->bucket[bucket], 1);
    metric_add(&r->sum_us, ms * 1000);
    metric_add(&m->ttft_bucket[bucket], 1);
    metric_add(&m->ttft_sum_us, ms * 1000);
}

static void count_prompt(struct sess_metrics *m, const struct llm_call_record *c)
{
    const char *agent = c->agent[0]                          ? c->agent
                        : strcmp(c->role, "classifier") == 0 ? "classifier"
                                                             : "relay";
    uint32_t n = m->agent_rows, i = 0;
    while (i < n && strcmp(m->prompts[i].agent, agent))
        i++;
    if (i == n) {
        if (n == SESS_AGENT_ROWS)
            i = n - 1; /* the last row collects what does not fit */
        else {
            snprintf(m->prompts[i].agent, sizeof(m->prompts[i].agent), "%s", agent);
            __atomic_store_n(&m->agent_rows, n + 1, __ATOMIC_RELEASE);
        }
    }
    struct prompt_row *r = &m->prompts[i];
    metric_add(&r->input_tokens, c->usage.input_tokens);
    metric_add(&r->cache_read_tokens, c->usage.cached_input_tokens);
    metric_add(&r->cache_write_tokens, c->usage.cache_write_tokens);
}

/* Record one model call (copied) for the llm_calls table and the ledger. */
void turn_add_call(struct turn *t, const struct llm_call_record *c)
{
    t->calls = xrealloc(t->calls, (t->n_calls + 1) * sizeof(*t->calls));
    t->calls[t->n_calls++] = *c;
    count_call(&t->sw->m, c);
    count_prompt(&t->sw->m, c);
}

static int64_t unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* A piece of the answer: to the client now (if it is still there), and kept for the store. */
void session_turn_delta(struct turn *t, const char *text, size_t len)
{
    if (t->done)
        return;
    if (!t->first_token_ms)
        t->first_token_ms = loop_now_ms(turn_loop(t));
    buf_append(&t->answer, text, len);
    uint32_t end = (uint32_t)buf_size(&t->answer);
    buf_append(&t->delta_ends, &end, sizeof(end));
    t->seq++;
    struct session *s = t->s;
    if (!s) {
        if (t->detached)
            detach_buffered(t, len);
        return;
    }
    if (t->catching_up) { /* re-attached: the missed deltas go first (detach.c) */
        detach_catch_up(s);
        return;
    }
    t->sent_seq = t->seq;
    session_send_delta(s, t->turn_id, t->seq, text, len);
    metric_add(&t->sw->m.deltas_out, 1);
}

void turn_add_tool(struct turn *t, const struct tool_call_record *c)
{
    t->tools = xrealloc(t->tools, (t->n_tools + 1) * sizeof(*t->tools));
    t->tools[t->n_tools++] = *c;
    count_tool(&t->sw->m, c);
}

void turn_add_saving(struct turn *t, const struct cache_saving_record *s)
{
    t->savings = xrealloc(t->savings, (t->n_savings + 1) * sizeof(*t->savings));
    t->savings[t->n_savings] = *s;
    if (t->savings[t->n_savings].amount_micros > 0) /* a saving is never a charge */
        t->savings[t->n_savings].amount_micros = -t->savings[t->n_savings].amount_micros;
    t->n_savings++;
}

void turn_set_cache(struct turn *t, const char *layer)
{
    snprintf(t->cache, sizeof(t->cache), "%s", layer ? layer : "");
}

struct store *turn_store(struct turn *t)
{
    return t->sw->store;
}

const char (*turn_flags(struct turn *t, uint32_t *n))[32]
{
    *n = t->n_flags;
    return (const char(*)[32])t->flags;
}

const void *turn_memo(struct turn *t, size_t *len)
{
    *len = t->s && t->s->memo ? t->s->memo_len : 0;
    return *len ? t->s->memo : NULL;
}

void turn_set_memo(struct turn *t, const void *p, size_t len)
{
    struct session *s = t->s;
    if (!s || len > TURN_MEMO_MAX)
        return;
    s->memo = xrealloc(s->memo, len ? len : 1);
    memcpy(s->memo, p, len);
    s->memo_len = (uint32_t)len;
}

void turn_set_route(struct turn *t, const char *query_type, const char *agent)
{
    snprintf(t->query_type, sizeof(t->query_type), "%s", query_type);
    snprintf(t->agent, sizeof(t->agent), "%s", agent);
}

void turn_add_flag(struct turn *t, const char *flag)
{
    for (uint32_t i = 0; i < t->n_flags; i++)
        if (strncmp(t->flags[i], flag, sizeof(t->flags[i]) - 1) == 0)
            return;
    if (t->n_flags < TURN_MAX_FLAGS)
        snprintf(t->flags[t->n_flags++], sizeof(t->flags[0]), "%s", flag);
}

/* Status and slate are for the wait before the answer: once a delta went out they would only
 * move the answer around on the client's screen. */
void session_turn_status(struct turn *t, const char *stage, const char *tool)
{
    char key[sizeof(t->last_status)];
    snprintf(key, sizeof(key), "%s/%s", stage, tool ? tool : "");
    if (t->done || t->seq || !t->s || strcmp(key, t->last_status) == 0)
        return;
    memcpy(t->last_status, key, sizeof(key));
    session_send_status(t->s, t->turn_id, stage, tool);
}

void session_turn_products(struct turn *t, const char *items_json, size_t len)
{
    if (t->done || t->seq || t->sent_products || !t->s)
        return;
    t->sent_products = true;
    session_send_products(t->s, t->turn_id, items_json, len);
}

static void send_turn_end(struct turn *t)
{
    struct session *s = t->s;
    struct turn_end_info e = {
        .turn_id = t->turn_id,
        .finish = t->finish,
        .currency = t->sw->conf->currency,
        .usage = t->usage,
        .cost_micros = t->cost_micros,
        .first_token_ms = t->first_token_ms ? (int64_t)(t->first_token_ms - t->started_ms) : -1,
        .total_ms = (int64_t)t->total_ms,
        .query_type = t->query_type,
        .agent = t->agent,
        .flags = (const char(*)[32])t->flags,
        .n_flags = t->n_flags,
        .resumed = t->resumed,
        .cache = t->cache,
    };
    if (t->catching_up && t->sent_seq < t->seq) {
        /* re-attached and its catch-up still going out: the rest, then turn_end, paced */
        t->catching_up = false;
        session_replay_from_turn(s, t, &e);
        return;
    }
    session_send_turn_end(s, &e);
}

void session_turn_free(struct turn *t)
{
    history_turn_free(t);
    buf_free(&t->answer);
    buf_free(&t->delta_ends);
    xfree(t->calls);
    xfree(t->tools);
    xfree(t->savings);
    xfree(t->user_text);
    trace_free(t->tr);
    xfree(t);
}

/* The responder recorded no call (it failed to start): one line for the turn all the same, so
 * that every turn has its ledger. */
static void synthesize_call(struct turn *t)
{
    struct llm_call_record c = {0};
    snprintf(c.provider, sizeof(c.provider), "%s", t->sw->responder->name);
    snprintf(c.model, sizeof(c.model), "%s", t->sw->responder->name);
    snprintf(c.role, sizeof(c.role), "model");
    snprintf(c.status, sizeof(c.status), "%s", strcmp(t->finish, "error") ? "ok" : "error");
    c.attempt = 1;
    c.usage_reported = true;
    c.ttft_ms = t->first_token_ms ? (int64_t)(t->first_token_ms - t->started_ms) : -1;
    c.duration_ms = t->total_ms;
    turn_add_call(t, &c);
}

/* Usage and cost of the turn are the sums over its calls: the ledger adds up by construction. */
static void total_from_calls(struct turn *t)
{
    struct llm_usage u = {0};
    int64_t cost = 0;
    for (uint32_t i = 0; i < t->n_calls; i++) {
        const struct llm_usage *c = &t->calls[i].usage;
        u.input_tokens += c->input_tokens;
        u.cached_input_tokens += c->cached_input_tokens;
        u.cache_write_tokens += c->cache_write_tokens;
        u.output_tokens += c->output_tokens;
        u.reasoning_tokens += c->reasoning_tokens;
        cost += t->calls[i].cost_micros;
    }
    for (uint32_t i = 0; i < t->n_tools; i++)
        cost += t->tools[i].cost_micros; /* the store checks cost = the sum of the ledger */
    t->usage = u;
    t->cost_micros = cost;
}

static void turn_committed(void *ctx, int result)
{
    struct turn *t = ctx;
    struct session *s = t->s;
    if (t->awaited)
        pending_del(t->conversation_id);
    tstate_end(t->sw->ts, t->turn_id);
    detach_count_end(t);
    sess_count_finish(t->sw, t->finish);
    sess_budget_spent(t); /* spent whether or not it could be stored */
    if (s) {
        if (result == -EMSGSIZE)
            session_send_error(s, "turn_too_large",
                               "the turn is too large to be stored; it is missing from the history",
                               t->client_id, strlen(t->client_id), t->turn_id);
        else if (result < 0 && result != -ESHUTDOWN)
            session_send_error(s, "storage_unavailable",
                               "the turn could not be stored; it may be missing from the history",
                               t->client_id, strlen(t->client_id), t->turn_id);
        send_turn_end(t);
        s->turn = NULL;
        if (s->close_after_turn)
            conn_close(s->c, WS_CLOSE_GOING_AWAY, "server shutting down");
    }
    session_turn_free(t);
}

static void commit(struct turn *t)
{
    struct store *st = t->sw->store;
    struct buf text = {0};
    struct span_record *spans;
    if (!st) {
        struct store_turn none = {0};
        turn_trace_finish(t, &none, &text, &spans); /* exported all the same */
        xfree(spans);
        buf_free(&text);
        turn_committed(t, 0);
        return;
    }
    char flags[TURN_MAX_FLAGS * 33] = "";
    size_t fl = 0;
    for (uint32_t i = 0; i < t->n_flags; i++)
        fl += (size_t)snprintf(flags + fl, sizeof(flags) - fl, "%s%s", i ? "," : "", t->flags[i]);
    struct store_turn rec = {
        .conversation_id = t->conversation_id,
        .user_sub = t->user,
        .turn_id = t->turn_id,
        .client_msg_id = t->client_id,
        .user_text = t->user_text,
        .user_len = t->user_len,
        .answer = buf_begin(&t->answer),
        .answer_len = buf_size(&t->answer),
        .delta_ends = (const uint32_t *)buf_begin(&t->delta_ends),
        .n_deltas = t->seq,
        .finish_reason = t->finish,
        .started_at_ms = t->started_unix_ms,
        .first_token_ms = t->first_token_ms ? (int64_t)(t->first_token_ms - t->started_ms) : -1,
        .total_ms = t->total_ms,
        .currency = t->sw->conf->currency,
        .usd_to_inr_micros = t->sw->usd_to_inr_micros,
        .calls = t->calls,
        .n_calls = t->n_calls,
        .tools = t->tools,
        .n_tools = t->n_tools,
        .usage = t->usage,
        .cost_micros = t->cost_micros,
        .query_type = t->query_type,
        .agent = t->agent,
        .flags = flags,
        .savings = t->savings,
        .n_savings = t->n_savings,
    };
    turn_trace_finish(t, &rec, &text, &spans);
    tstate_committing(t->sw->ts, t->turn_id);
    store_commit_turn(st, &rec, turn_committed, t); /* copies the spans at once */
    xfree(spans);
    buf_free(&text);
}

static void on_claim_answer(void *ctx, int claimed)
{
    struct turn *t = ctx;
    t->claim = NULL;
    t->keep = claimed == 1;
    t->sw->claiming--;
    commit(t);
}

/* The responder finished; the turn is stored, then turn_end goes out (see turn_committed). */
void session_turn_done(struct turn *t, const char *finish_reason, const char *error_code,
                       const char *error_message)
{
    struct session *s = t->s;
    bool detached = t->detached;
    t->done = true;
    sess_turn_release(t);
    detach_forget(t); /* a resume of it now waits for its commit (pending.h) */
    t->total_ms = loop_now_ms(turn_loop(t)) - t->started_ms;
    snprintf(t->finish, sizeof(t->finish), "%s", finish_reason);
    if (!t->n_calls)
        synthesize_call(t);
    total_from_calls(t);
    turn_trace_flags(t);
    if (t->first_token_ms) {
        static const double bounds_s[SESS_TTFT_BUCKETS - 1] = {0.05, 0.1, 0.25, 0.5, 1,
                                                               2.5,  5,   10,   30};
        uint64_t ms = t->first_token_ms - t->started_ms;
        unsigned b = metric_bucket(bounds_s, SESS_TTFT_BUCKETS - 1, (double)ms / 1000);
        count_ttft(t, b, ms);
    }
    if (s && error_code)
        session_send_error(s, error_code, error_message ? error_message : error_code, t->client_id,
                           strlen(t->client_id), t->turn_id);
    if (s && buf_size(&t->answer))
        history_add(s, "assistant", buf_begin(&t->answer), buf_size(&t->answer));
    /* ended with no client: whether a resume elsewhere waits for it is asked before the commit
     * deletes its turn_state row (the cost of grace counts only answers nobody came back for) */
    if (detached && !t->keep && t->sw->ts && !t->sw->draining) {
        t->sw->claiming++; /* a draining worker stops only once they are committed */
        t->claim = tstate_claimed(t->sw->ts, t->turn_id, on_claim_answer, t);
        return;
    }
    commit(t);
}

/* Stop the responder and end the turn as `finish` (cancelled). */
void session_cancel_turn(struct session *s, const char *finish)
{
    struct turn *t = s->turn;
    if (!t || t->done)
        return;
    t->sw->responder->cancel(t);
    session_turn_done(t, finish, NULL, NULL);
}

/* The client is gone: a running turn is kept for its detach grace (detach.c) or cancelled and
 * still stored; a committing one just loses its audience. */
void session_detach_turn(struct session *s)
{
    struct turn *t = s->turn;
    if (!t)
        return;
    s->turn = NULL;
    if (!t->done) {
        t->s = NULL;
        if (detach_park(t, s))
            return;
        t->sw->responder->cancel(t);
        session_turn_done(t, "cancelled", NULL, NULL);
        return;
    }
    t->s = NULL;
}

void session_start_turn(struct session *s, const struct chat_msg *m)
{
    if (s->sw->store && !store_accepting(s->sw->store)) {
        session_send_error(s, "storage_unavailable",
                           "conversations cannot be stored right now; try again shortly", m->id,
                           m->id_len, NULL);
        return;
    }
    if (!sess_budget_admit(s, m->id, m->id_len))
        return;
    struct turn *t = xcalloc(1, sizeof(*t));
    if (!sess_turn_admit(s, t, m->id, m->id_len)) {
        xfree(t);
        return;
    }
    t->s = s;
    t->sw = s->sw;
    random_hex16(t->turn_id);
    memcpy(t->client_id, m->id, m->id_len);
    t->client_id[m->id_len] = '\0';
    memcpy(t->conversation_id, s->conversation_id, sizeof(t->conversation_id));
    snprintf(t->user, sizeof(t->user), "%s", s->user_sub);
    t->user_text = xstrndup(m->text, m->text_len);
    t->user_len = m->text_len;
    t->started_ms = loop_now_ms(turn_loop(t));
    t->started_unix_ms = unix_ms();
    s->turn = t;
    turn_trace_start(t);
    /* A resume of this conversation (its client may reconnect before this connection's end is
     * even noticed) waits until this turn is durable: see resume.c. */
    if (t->sw->store) {
        t->awaited = true;
        pending_add(t->conversation_id);
    }
    /* ... and so does one on another process, from the store: sent, never waited for */
    tstate_begin(t->sw->ts, t->turn_id, t->conversation_id, t->user, t->started_unix_ms);
    metric_add(&s->sw->m.turns_started, 1);

    struct jsonw w;
    jw_init(&w, &s->sw->scratch);
    jw_obj_begin(&w);
    jw_kstr(&w, "type", "turn_start");
    jw_kstr(&w, "turn_id", t->turn_id);
    jw_kstrn(&w, "id", m->id, m->id_len);
    jw_obj_end(&w);
    session_send_doc(s, &s->sw->scratch);

    history_add(s, "user", m->text, m->text_len);
    if (s->sw->responder->start(t, m->text, m->text_len) < 0)
        session_turn_done(t, "error", "internal", "the responder could not start");
}
