/* turn_sql.c - the store's statements and the mapping between turns and their parameters.
 *
 * All parameters travel as text; PostgreSQL infers their types from the columns. A turn's child
 * rows (messages, calls, tool calls, ledger lines) all carry the turn's start time, so they land
 * in the same monthly partition as the turn and their keys are stable across replays. */
#include "store/turn_sql.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "stream/jsonw.h"

const struct pg_stmt_def turn_sql_write[SQL_W__COUNT] = {
    [SQL_W_CONVERSATION] = {"tri_w_conv",
                            "INSERT INTO conversations (id, user_sub, created_at, updated_at) "
                            "VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE "
                            "SET updated_at = EXCLUDED.updated_at "
                            "WHERE conversations.updated_at < EXCLUDED.updated_at",
                            4},
    [SQL_W_TURN] = {"tri_w_turn",
                    "INSERT INTO turns (id, started_at, conversation_id, client_msg_id, "
                    "finish_reason, delta_ends, answer_bytes, first_token_ms, total_ms, "
                    "input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, "
                    "reasoning_tokens, cost_micros, currency, usd_to_inr_micros, query_type, "
                    "agent, flags) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
                    "$16, $17, $18, $19, string_to_array($20, ',')) ON CONFLICT DO NOTHING",
                    20},
    [SQL_W_MESSAGE] = {"tri_w_msg",
                       "INSERT INTO messages (turn_id, ordinal, created_at, conversation_id, "
                       "role, content) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                       6},
    [SQL_W_LLM_CALL] =
        {"tri_w_call",
         "INSERT INTO llm_calls (turn_id, ordinal, started_at, conversation_id, "
         "provider, model, tier, attempt, role, status, error, http_status, "
         "input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, "
         "reasoning_tokens, usage_reported, ttft_ms, duration_ms, cost_micros, "
         "currency, usd_to_inr_micros, agent, prompt_version, deployment) VALUES ($1, "
         "$2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, "
         "$18, $19, $20, $21, $22, $23, $24, $25, $26) ON CONFLICT DO NOTHING",
         26},
    [SQL_W_TOOL_CALL] = {"tri_w_tool",
                         "INSERT INTO tool_calls (turn_id, ordinal, started_at, conversation_id, "
                         "name, arguments, result_bytes, cache_hit, duration_ms, status, "
                         "cost_micros) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
                         "ON CONFLICT DO NOTHING",
                         11},
    [SQL_W_LEDGER] = {"tri_w_ledger",
                      "INSERT INTO ledger (turn_id, line, created_at, conversation_id, kind, "
                      "description, provider, model, amount_micros, currency, usd_to_inr_micros, "
                      "cache_layer, tier, deployment) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
                      "$10, $11, $12, $13, $14) ON CONFLICT DO NOTHING",
                      14},
    [SQL_W_SPAN] = {"tri_w_span",
                    "INSERT INTO spans (turn_id, started_at, span_id, conversation_id, trace_id, "
                    "parent_span_id, kind, name, start_us, end_us, status, status_message, "
                    "attributes, events) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
                    "$12, $13, $14) ON CONFLICT DO NOTHING",
                    14},
    [SQL_W_PARTITIONS] = {"tri_w_parts", "SELECT trilemma_ensure_partitions(now(), 2)", 0},
    [SQL_W_TRACE_PARTITIONS] = {"tri_w_tparts",
                                "SELECT trilemma_trace_partitions(now(), $1::integer)", 1},
    /* A conversation appears once per statement (ON CONFLICT DO UPDATE may not touch a row
     * twice), in id order (two batches lock their conversations in the same order). */
    [SQL_W_CONVERSATION_N] = {"tri_w_conv_n",
                              "INSERT INTO conversations (id, user_sub, created_at, updated_at) "
                              "SELECT id, min(sub), min(c), max(u) FROM unnest($1::text[], "
                              "$2::text[], $3::timestamptz[], $4::timestamptz[]) AS x(id, sub, c, "
                              "u) GROUP BY id ORDER BY id ON CONFLICT (id) DO UPDATE "
                              "SET updated_at = EXCLUDED.updated_at "
                              "WHERE conversations.updated_at < EXCLUDED.updated_at",
                              4},
    [SQL_W_TURN_N] = {"tri_w_turn_n",
                      "INSERT INTO turns (id, started_at, conversation_id, client_msg_id, "
                      "finish_reason, delta_ends, answer_bytes, first_token_ms, total_ms, "
                      "input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, "
                      "reasoning_tokens, cost_micros, currency, usd_to_inr_micros, query_type, "
                      "agent, flags) "
                      "SELECT a, b, c, d, e, f::integer[], g, h, i, j, k, l, m, n, o, p, q, r, s, "
                      "string_to_array(t, ',') "
                      "FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], "
                      "$5::text[], $6::text[], $7::integer[], $8::bigint[], $9::bigint[], "
                      "$10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], "
                      "$15::bigint[], $16::text[], $17::bigint[], $18::text[], $19::text[], "
                      "$20::text[]) "
                      "AS x(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t) "
                      "ON CONFLICT DO NOTHING",
                      20},
    [SQL_W_MESSAGE_N] = {"tri_w_msg_n",
                         "INSERT INTO messages (turn_id, ordinal, created_at, conversation_id, "
                         "role, content) SELECT * FROM unnest($1::text[], $2::integer[], "
                         "$3::timestamptz[], $4::text[], $5::text[], $6::text[]) "
                         "ON CONFLICT DO NOTHING",
                         6},
    [SQL_W_LLM_CALL_N] =
        {"tri_w_call_n",
         "INSERT INTO llm_calls (turn_id, ordinal, started_at, conversation_id, "
         "provider, model, tier, attempt, role, status, error, http_status, "
         "input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, "
         "reasoning_tokens, usage_reported, ttft_ms, duration_ms, cost_micros, "
         "currency, usd_to_inr_micros, agent, prompt_version, deployment) SELECT * "
         "FROM unnest($1::text[], "
         "$2::integer[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], "
         "$7::text[], $8::integer[], $9::text[], $10::text[], $11::text[], "
         "$12::integer[], $13::bigint[], $14::bigint[], $15::bigint[], "
         "$16::bigint[], $17::bigint[], $18::boolean[], $19::bigint[], "
         "$20::bigint[], $21::bigint[], $22::text[], $23::bigint[], $24::text[], "
         "$25::text[], $26::text[]) "
         "ON CONFLICT DO NOTHING",
         26},
    [SQL_W_TOOL_CALL_N] = {"tri_w_tool_n",
                           "INSERT INTO tool_calls (turn_id, ordinal, started_at, "
                           "conversation_id, name, arguments, result_bytes, cache_hit, "
                           "duration_ms, status, cost_micros) SELECT * FROM unnest($1::text[], "
                           "$2::integer[], $3::timestamptz[], $4::text[], $5::text[], "
                           "$6::jsonb[], $7::bigint[], $8::boolean[], $9::bigint[], $10::text[], "
                           "$11::bigint[]) ON CONFLICT DO NOTHING",
                           11},
    [SQL_W_LEDGER_N] = {"tri_w_ledger_n",
                        "INSERT INTO ledger (turn_id, line, created_at, conversation_id, kind, "
                        "description, provider, model, amount_micros, currency, "
                        "usd_to_inr_micros, cache_layer, tier, deployment) SELECT * FROM "
                        "unnest($1::text[], $2::integer[], $3::timestamptz[], $4::text[], "
                        "$5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], "
                        "$10::text[], $11::bigint[], $12::text[], $13::text[], $14::text[]) "
                        "ON CONFLICT DO NOTHING",
                        14},
    [SQL_W_SPAN_N] = {"tri_w_span_n",
                      "INSERT INTO spans (turn_id, started_at, span_id, conversation_id, trace_id, "
                      "parent_span_id, kind, name, start_us, end_us, status, status_message, "
                      "attributes, events) SELECT * FROM unnest($1::text[], $2::timestamptz[], "
                      "$3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], "
                      "$9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::jsonb[], "
                      "$14::jsonb[]) ON CONFLICT DO NOTHING",
                      14},
};

const struct pg_stmt_def turn_sql_read[SQL_R__COUNT] = {
    [SQL_R_CONVERSATION] = {"tri_r_conv", "SELECT user_sub FROM conversations WHERE id = $1", 1},
    [SQL_R_MESSAGES] = {"tri_r_msgs",
                        "SELECT role, content FROM (SELECT role, content, created_at, ordinal "
                        "FROM messages WHERE conversation_id = $1 "
                        "ORDER BY created_at DESC, ordinal DESC LIMIT $2) m "
                        "ORDER BY created_at, ordinal",
                        2},
    [SQL_R_LAST_TURN] = {"tri_r_last",
                         "SELECT t.id, coalesce(m.content, ''), t.delta_ends, t.finish_reason, "
                         "t.input_tokens, t.cached_input_tokens, t.cache_write_tokens, "
                         "t.output_tokens, t.reasoning_tokens, t.cost_micros, t.currency, "
                         "coalesce(t.first_token_ms, -1), t.total_ms "
                         "FROM turns t LEFT JOIN messages m ON m.turn_id = t.id "
                         "AND m.created_at = t.started_at AND m.ordinal = 1 "
                         "WHERE t.conversation_id = $1 ORDER BY t.started_at DESC LIMIT 1",
                         1},
};

/* ---- writing ---- */

/* Format unix ms as a UTC timestamptz literal. */
void turn_sql_time(int64_t unix_ms, char out[40])
{
    int64_t ms = unix_ms % 1000;
    time_t secs = (time_t)(unix_ms / 1000);
    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%03d+00", (int)ms);
}

/* The first four parameters of every child row: turn id, ordinal, turn start, conversation. */
static void child_key(struct pg_query *q, uint16_t stmt, const struct store_turn *t,
                      uint32_t ordinal, const char *ts)
{
    pg_query_stmt(q, stmt);
    pg_query_param_str(q, t->turn_id);
    pg_query_param_i64(q, ordinal);
    pg_query_param_str(q, ts);
    pg_query_param_str(q, t->conversation_id);
}

static void usage_params(struct pg_query *q, const struct llm_usage *u)
{
    pg_query_paramf(q, "%" PRIu64, u->input_tokens);
    pg_query_paramf(q, "%" PRIu64, u->cached_input_tokens);
    pg_query_paramf(q, "%" PRIu64, u->cache_write_tokens);
    pg_query_paramf(q, "%" PRIu64, u->output_tokens);
    pg_query_paramf(q, "%" PRIu64, u->reasoning_tokens);
}

static void money_params(struct pg_query *q, const struct store_turn *t)
{
    pg_query_param_str(q, t->currency);
    pg_query_param_i64(q, t->usd_to_inr_micros);
}

static void append_turn_row(struct pg_query *q, const struct store_turn *t, const char *ts)
{
    pg_query_stmt(q, SQL_W_TURN);
    pg_query_param_str(q, t->turn_id);
    pg_query_param_str(q, ts);
    pg_query_param_str(q, t->conversation_id);
    pg_query_param_str(q, t->client_msg_id ? t->client_msg_id : "");
    pg_query_param_str(q, t->finish_reason);
    struct buf d = {0};
    buf_append(&d, "{", 1);
    for (uint32_t i = 0; i < t->n_deltas; i++)
        buf_printf(&d, i ? ",%u" : "%u", (unsigned)t->delta_ends[i]);
    buf_append(&d, "}", 1);
    pg_query_param(q, buf_begin(&d), buf_size(&d));
    buf_free(&d);
    pg_query_param_i64(q, (int64_t)t->answer_len);
    if (t->first_token_ms >= 0)
        pg_query_param_i64(q, t->first_token_ms);
    else
        pg_query_param(q, NULL, 0);
    pg_query_param_i64(q, t->total_ms);
    usage_params(q, &t->usage);
    pg_query_param_i64(q, t->cost_micros);
    money_params(q, t);
    pg_query_param_str(q, t->query_type ? t->query_type : "");
    pg_query_param_str(q, t->agent ? t->agent : "");
    pg_query_param_str(q, t->flags ? t->flags : "");
}

/* A provisioned call names its deployment; any other call is pay-as-you-go ("standard" on the
 * ledger) and names none. A provisioned call without a deployment is refused by the schema. */
static bool call_provisioned(const struct llm_call_record *c)
{
    return strcmp(c->tier, "provisioned") == 0;
}

static void deployment_param(struct pg_query *q, const struct llm_call_record *c)
{
    pg_query_param_str(q, call_provisioned(c) && c->deployment[0] ? c->deployment : NULL);
}

static void append_call(struct pg_query *q, const struct store_turn *t, const char *ts, uint32_t i)
{
    const struct llm_call_record *c = &t->calls[i];
    child_key(q, SQL_W_LLM_CALL, t, i, ts);
    pg_query_param_str(q, c->provider);
    pg_query_param_str(q, c->model);
    pg_query_param_str(q, c->tier[0] ? c->tier : "standard");
    pg_query_param_i64(q, c->attempt);
    pg_query_param_str(q, c->role);
    pg_query_param_str(q, c->status);
    pg_query_param_str(q, c->error[0] ? c->error : NULL);
    if (c->http_status > 0)
        pg_query_param_i64(q, c->http_status);
    else
        pg_query_param(q, NULL, 0);
    usage_params(q, &c->usage);
    pg_query_param_str(q, c->usage_reported ? "t" : "f");
    if (c->ttft_ms >= 0)
        pg_query_param_i64(q, c->ttft_ms);
    else
        pg_query_param(q, NULL, 0);
    pg_query_param_i64(q, c->duration_ms);
    pg_query_param_i64(q, c->cost_micros);
    money_params(q, t);
    pg_query_param_str(q, c->agent);
    pg_query_param_str(q, c->prompt_version);
    deployment_param(q, c);
}

static void append_tool(struct pg_query *q, const struct store_turn *t, const char *ts, uint32_t i,
                        json_doc *jd)
{
    const struct tool_call_record *c = &t->tools[i];
    child_key(q, SQL_W_TOOL_CALL, t, i, ts);
    pg_query_param_str(q, c->name);
    if (!c->arguments_len) {
        pg_query_param_str(q, "{}");
    } else if (json_doc_load(jd, c->arguments, c->arguments_len) == 0) {
        pg_query_param(q, c->arguments, c->arguments_len);
    } else {
        struct buf s = {0};
        struct jsonw w;
        jw_init(&w, &s);
        jw_strn(&w, c->arguments, c->arguments_len);
        pg_query_param(q, buf_begin(&s), buf_size(&s));
        buf_free(&s);
    }
    pg_query_paramf(q, "%" PRIu64, c->result_bytes);
    pg_query_param_str(q, c->cache_hit ? "t" : "f");
    pg_query_param_i64(q, c->duration_ms);
    pg_query_param_str(q, c->status);
    pg_query_param_i64(q, c->cost_micros);
}

/* One ledger line per model call (its role is the kind), per tool call and per cache hit (kind
 * cache_saving, negative, outside the turn's cost), in that order. */
static void append_ledger(struct pg_query *q, const struct store_turn *t, const char *ts)
{
    uint32_t line = 0;
    for (uint32_t i = 0; i < t->n_calls; i++, line++) {
        const struct llm_call_record *c = &t->calls[i];
        child_key(q, SQL_W_LEDGER, t, line, ts);
        pg_query_param_str(q, c->role);
        pg_query_paramf(q, "%.120s/%.200s attempt %u (%.32s)", c->provider, c->model,
                        (unsigned)c->attempt, c->status);
        pg_query_param_str(q, c->provider);
        pg_query_param_str(q, c->model);
        pg_query_param_i64(q, c->cost_micros);
        money_params(q, t);
        pg_query_param(q, NULL, 0);
        pg_query_param_str(q, call_provisioned(c) ? "provisioned" : "standard");
        deployment_param(q, c);
    }
    for (uint32_t i = 0; i < t->n_tools; i++, line++) {
        const struct tool_call_record *c = &t->tools[i];
        child_key(q, SQL_W_LEDGER, t, line, ts);
        pg_query_param_str(q, "tool");
        pg_query_paramf(q, "tool %.200s%s", c->name, c->cache_hit ? " (cache hit)" : "");
        pg_query_param(q, NULL, 0);
        pg_query_param(q, NULL, 0);
        pg_query_param_i64(q, c->cost_micros);
        money_params(q, t);
        pg_query_param(q, NULL, 0);
        pg_query_param_str(q, "standard");
        pg_query_param(q, NULL, 0);
    }
    for (uint32_t i = 0; i < t->n_savings; i++, line++) {
        const struct cache_saving_record *s = &t->savings[i];
        child_key(q, SQL_W_LEDGER, t, line, ts);
        pg_query_param_str(q, "cache_saving");
        pg_query_param_str(q, s->description);
        pg_query_param(q, NULL, 0);
        pg_query_param(q, NULL, 0);
        pg_query_param_i64(q, s->amount_micros > 0 ? -s->amount_micros : s->amount_micros);
        money_params(q, t);
        pg_query_param_str(q, s->layer);
        pg_query_param_str(q, "standard");
        pg_query_param(q, NULL, 0);
    }
}

/* One row per span of the turn's trace, keyed like the other child rows. */
static void append_spans(struct pg_query *q, const struct store_turn *t, const char *ts)
{
    for (uint32_t i = 0; i < t->n_spans; i++) {
        const struct span_record *s = &t->spans[i];
        pg_query_stmt(q, SQL_W_SPAN);
        pg_query_param_str(q, t->turn_id);
        pg_query_param_str(q, ts);
        pg_query_param_str(q, s->span_id);
        pg_query_param_str(q, t->conversation_id);
        pg_query_param_str(q, t->trace_id ? t->trace_id : "");
        pg_query_param_str(q, s->parent_span_id[0] ? s->parent_span_id : NULL);
        pg_query_param_str(q, s->kind);
        pg_query_param_str(q, s->name);
        pg_query_param_i64(q, s->start_us);
        pg_query_param_i64(q, s->end_us);
        pg_query_param_str(q, s->status);
        pg_query_param_str(q, s->status_message[0] ? s->status_message : NULL);
        pg_query_param(q, s->attributes, s->attributes_len);
        pg_query_param(q, s->events, s->events_len);
    }
}

/* Append the statements storing t; see turn_sql.h. */
void turn_sql_append(struct pg_query *q, const struct store_turn *t, json_doc *jd)
{
    char ts[40], te[40];
    turn_sql_time(t->started_at_ms, ts);
    turn_sql_time(t->started_at_ms + (t->total_ms > 0 ? t->total_ms : 0), te);

    pg_query_stmt(q, SQL_W_CONVERSATION);
    pg_query_param_str(q, t->conversation_id);
    pg_query_param_str(q, t->user_sub ? t->user_sub : "");
    pg_query_param_str(q, ts);
    pg_query_param_str(q, te);
    append_turn_row(q, t, ts);

    child_key(q, SQL_W_MESSAGE, t, 0, ts);
    pg_query_param_str(q, "user");
    pg_query_param(q, t->user_text ? t->user_text : "", t->user_text ? t->user_len : 0);
    if (t->answer && t->answer_len) {
        child_key(q, SQL_W_MESSAGE, t, 1, ts);
        pg_query_param_str(q, "assistant");
        pg_query_param(q, t->answer, t->answer_len);
    }
    for (uint32_t i = 0; i < t->n_calls; i++)
        append_call(q, t, ts, i);
    for (uint32_t i = 0; i < t->n_tools; i++)
        append_tool(q, t, ts, i, jd);
    append_ledger(q, t, ts);
    append_spans(q, t, ts);
}

/* ---- a batch as one statement per table ---- */

enum { COLUMNAR_TABLES = 7, COLUMNAR_MAX_COLS = 26 };

/* Append one array literal element to b (which holds "{" and the elements so far): quoted, with
 * " and \ escaped, so any text survives (commas, braces, the word NULL); SQL NULL unquoted. */
static void array_elem(struct buf *b, const char *s)
{
    if (buf_size(b) > 1)
        buf_append(b, ",", 1);
    if (!s) {
        buf_append(b, "NULL", 4);
        return;
    }
    buf_append(b, "\"", 1);
    for (const char *p = s; *p;) {
        size_t run = strcspn(p, "\"\\");
        buf_append(b, p, run);
        p += run;
        if (*p) {
            buf_append(b, "\\", 1);
            buf_append(b, p++, 1);
        }
    }
    buf_append(b, "\"", 1);
}

/* Rewrite single-row statements as one multi-row statement per table; see turn_sql.h. */
void turn_sql_columnar(const struct pg_query *in, struct pg_query *out)
{
    struct buf cols[COLUMNAR_TABLES][COLUMNAR_MAX_COLS];
    bool used[COLUMNAR_TABLES] = {false};
    memset(cols, 0, sizeof(cols));
    for (uint32_t i = 0; i < in->nstmts; i++) {
        const struct pg_stmt *st = &in->stmts[i];
        if (st->def > SQL_W_SPAN || st->nparams != turn_sql_write[st->def].nparams)
            continue; /* not a row of a turn (partitions): never in a batch */
        if (!used[st->def]) {
            used[st->def] = true;
            for (uint16_t k = 0; k < st->nparams; k++)
                buf_append(&cols[st->def][k], "{", 1);
        }
        for (uint16_t k = 0; k < st->nparams; k++) {
            uint32_t off = in->offs[st->first + k];
            array_elem(&cols[st->def][k], off == PG_NULL_PARAM ? NULL : buf_begin(&in->vals) + off);
        }
    }
    pg_query_reset(out);
    for (uint16_t t = 0; t < COLUMNAR_TABLES; t++) {
        if (!used[t])
            continue;
        pg_query_stmt(out, (uint16_t)(SQL_W_CONVERSATION_N + t));
        for (int k = 0; k < turn_sql_write[t].nparams; k++) {
            buf_append(&cols[t][k], "}", 1);
            pg_query_param(out, buf_begin(&cols[t][k]), buf_size(&cols[t][k]));
            buf_free(&cols[t][k]);
        }
    }
}

/* ---- reading ---- */

/* Add the load statements; see turn_sql.h. */
void turn_sql_load(struct pg_query *q, const char *conversation_id, uint32_t max_messages)
{
    pg_query_stmt(q, SQL_R_CONVERSATION);
    pg_query_param_str(q, conversation_id);
    pg_query_stmt(q, SQL_R_MESSAGES);
    pg_query_param_str(q, conversation_id);
    pg_query_param_i64(q, max_messages);
    pg_query_stmt(q, SQL_R_LAST_TURN);
    pg_query_param_str(q, conversation_id);
}

/* "{1,5,9}" -> array. Returns the count, or -1 if malformed. */
static long parse_int_array(const char *s, uint32_t **out)
{
    size_t n = 0, cap = 0;
    uint32_t *v = NULL;
    if (*s++ != '{')
        return -1;
    while (*s && *s != '}') {
        char *end;
        unsigned long x = strtoul(s, &end, 10);
        if (end == s || x > UINT32_MAX) {
            xfree(v);
            return -1;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            v = xrealloc(v, cap * sizeof(*v));
        }
        v[n++] = (uint32_t)x;
        s = *end == ',' ? end + 1 : end;
    }
    *out = v;
    return (long)n;
}

static uint64_t col_u64(const PGresult *r, int col)
{
    return strtoull(PQgetvalue(r, 0, col), NULL, 10);
}

static int parse_last_turn(const PGresult *r, struct turn_sql_conv *o)
{
    struct store_conversation *c = &o->c;
    if (PQntuples(r) == 0)
        return 0;
    if (PQnfields(r) != 13)
        return -EBADMSG;
    c->last_turn_id = PQgetvalue(r, 0, 0);
    c->last_answer = PQgetvalue(r, 0, 1);
    c->last_answer_len = (size_t)PQgetlength(r, 0, 1);
    long nd = parse_int_array(PQgetvalue(r, 0, 2), &o->delta_ends);
    if (nd < 0)
        return -EBADMSG;
    c->last_delta_ends = o->delta_ends;
    c->last_n_deltas = (uint32_t)nd;
    c->last_finish = PQgetvalue(r, 0, 3);
    c->last_usage.input_tokens = col_u64(r, 4);
    c->last_usage.cached_input_tokens = col_u64(r, 5);
    c->last_usage.cache_write_tokens = col_u64(r, 6);
    c->last_usage.output_tokens = col_u64(r, 7);
    c->last_usage.reasoning_tokens = col_u64(r, 8);
    c->last_cost_micros = strtoll(PQgetvalue(r, 0, 9), NULL, 10);
    c->last_currency = PQgetvalue(r, 0, 10);
    c->last_first_token_ms = strtoll(PQgetvalue(r, 0, 11), NULL, 10);
    c->last_total_ms = strtoll(PQgetvalue(r, 0, 12), NULL, 10);
    return 0;
}

/* Decode a load's results; see turn_sql.h. */
int turn_sql_conv_parse(PGresult *const *rows, uint32_t nrows, struct turn_sql_conv *o)
{
    memset(o, 0, sizeof(*o));
    if (nrows != 3)
        return -EBADMSG;
    for (int i = 0; i < 3; i++)
        if (PQresultStatus(rows[i]) != PGRES_TUPLES_OK)
            return -EBADMSG;
    if (PQntuples(rows[0]) == 0)
        return 0; /* unknown conversation: found stays false */
    o->c.found = true;
    o->c.user_sub = PQgetvalue(rows[0], 0, 0);
    int n = PQntuples(rows[1]);
    if (n > 0 && PQnfields(rows[1]) != 2)
        return -EBADMSG;
    o->msgs = xcalloc(n ? (size_t)n : 1, sizeof(*o->msgs));
    for (int i = 0; i < n; i++) {
        o->msgs[i].role = PQgetvalue(rows[1], i, 0);
        o->msgs[i].text = PQgetvalue(rows[1], i, 1);
        o->msgs[i].len = (size_t)PQgetlength(rows[1], i, 1);
    }
    o->c.messages = o->msgs;
    o->c.n_messages = (size_t)n;
    if (parse_last_turn(rows[2], o) < 0) {
        turn_sql_conv_free(o);
        return -EBADMSG;
    }
    return 0;
}

/* Free what turn_sql_conv_parse allocated. */
void turn_sql_conv_free(struct turn_sql_conv *cv)
{
    xfree(cv->msgs);
    xfree(cv->delta_ends);
    memset(cv, 0, sizeof(*cv));
}
