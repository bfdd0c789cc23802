/* llm_anthropic.c - Anthropic Messages streaming.
 *
 * Named events: message_start (the usage so far: input_tokens EXCLUDING cache reads and writes,
 * which come as cache_read_input_tokens / cache_creation_input_tokens), then content blocks by
 * index (content_block_start / _delta / _stop: text, tool_use with input_json_delta pieces,
 * thinking), message_delta (stop_reason; usage.output_tokens is CUMULATIVE, and newer API
 * versions repeat the input and cache counts there), message_stop last. ping can come anywhere,
 * error mid-stream (overloaded_error), and unknown event types are ignored so new API features
 * do not break old parsers. The type is read from the data's "type", which Anthropic always
 * repeats, so a proxy that drops "event:" lines does not matter. */
#include "stream/llm_adapter.h"
#include "stream/jsonw.h"
#include "base/mem.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static bool str_is(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static const char *normalize_stop(const char *r, size_t n)
{
    if (str_is(r, n, "max_tokens") || str_is(r, n, "model_context_window_exceeded"))
        return "length";
    if (str_is(r, n, "tool_use"))
        return "tool_calls";
    if (str_is(r, n, "refusal"))
        return "content_filter";
    return "stop"; /* end_turn, stop_sequence, pause_turn, and anything newer */
}

/* Normalized usage from the raw counters: input counts every prompt token. */
static int emit_usage(struct llm_stream *s)
{
    s->usage.input_tokens = s->an_input + s->an_cache_write + s->an_cache_read;
    s->usage.cached_input_tokens = s->an_cache_read;
    s->usage.cache_write_tokens = s->an_cache_write;
    s->usage.output_tokens = s->an_output;
    s->usage.reasoning_tokens = 0; /* thinking tokens are inside output_tokens, not reported */
    return llm__usage(s);
}

/* Take every counter present in the usage object at prefix (absent ones keep their value). */
static void read_usage(struct llm_stream *s, const char *prefix)
{
    static const struct {
        const char *field;
        size_t off;
    } fields[] = {
        {"input_tokens", offsetof(struct llm_stream, an_input)},
        {"cache_creation_input_tokens", offsetof(struct llm_stream, an_cache_write)},
        {"cache_read_input_tokens", offsetof(struct llm_stream, an_cache_read)},
        {"output_tokens", offsetof(struct llm_stream, an_output)},
    };
    char ptr[96];
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        snprintf(ptr, sizeof(ptr), "%s/%s", prefix, fields[i].field);
        if (llm__has_int(s->doc, ptr))
            *(uint64_t *)((char *)s + fields[i].off) = llm__u64(s->doc, ptr);
    }
}

static int block_index(struct llm_stream *s, int64_t *idx)
{
    if (json_get_int(s->doc, "/index", idx) != 0 || *idx < 0 || *idx >= LLM_MAX_BLOCKS)
        return llm__bad_stream(s, "content block without a valid index");
    return 0;
}

static enum llm_block block_kind(struct llm_stream *s, int64_t idx)
{
    return (size_t)idx < s->cap_blocks ? (enum llm_block)s->blocks[idx] : LLM_BLOCK_NONE;
}

static void set_block(struct llm_stream *s, int64_t idx, enum llm_block kind)
{
    if ((size_t)idx >= s->cap_blocks) {
        size_t cap = s->cap_blocks ? s->cap_blocks : 8;
        while (cap <= (size_t)idx)
            cap *= 2;
        s->blocks = xrealloc(s->blocks, cap);
        memset(s->blocks + s->cap_blocks, 0, cap - s->cap_blocks);
        s->cap_blocks = cap;
    }
    s->blocks[idx] = (uint8_t)kind;
}

static int on_block_start(struct llm_stream *s)
{
    json_doc *d = s->doc;
    int64_t idx;
    const char *type, *str = NULL, *name = NULL;
    size_t type_len, n = 0, name_len = 0;
    int rc = block_index(s, &idx);
    if (rc)
        return rc;
    if (json_get_string(d, "/content_block/type", &type, &type_len) != 0)
        return llm__bad_stream(s, "content block without a type");
    if (str_is(type, type_len, "text")) {
        set_block(s, idx, LLM_BLOCK_TEXT);
        if (json_get_string(d, "/content_block/text", &str, &n) == 0)
            return llm__text(s, LLM_EV_TEXT, str, n);
    } else if (str_is(type, type_len, "thinking")) {
        set_block(s, idx, LLM_BLOCK_THINKING);
        if (json_get_string(d, "/content_block/thinking", &str, &n) == 0)
            return llm__text(s, LLM_EV_REASONING, str, n);
    } else if (str_is(type, type_len, "tool_use")) {
        if (llm__tool_find(s, (int)idx))
            return llm__bad_stream(s, "content block index reused");
        set_block(s, idx, LLM_BLOCK_TOOL);
        json_get_string(d, "/content_block/id", &str, &n);
        json_get_string(d, "/content_block/name", &name, &name_len);
        struct llm_tool_call *t;
        return llm__tool_start(s, (int)idx, str, n, name, name_len, &t);
    } else {
        set_block(s, idx, LLM_BLOCK_OTHER); /* server tools, redacted thinking: not ours */
    }
    return 0;
}

static int on_block_delta(struct llm_stream *s)
{
    json_doc *d = s->doc;
    int64_t idx;
    const char *type, *str;
    size_t type_len, n;
    int rc = block_index(s, &idx);
    if (rc)
        return rc;
    if (json_get_string(d, "/delta/type", &type, &type_len) != 0)
        return 0;
    if (block_kind(s, idx) == LLM_BLOCK_OTHER)
        return 0;
    if (str_is(type, type_len, "text_delta")) {
        if (json_get_string(d, "/delta/text", &str, &n) == 0)
            return llm__text(s, LLM_EV_TEXT, str, n);
    } else if (str_is(type, type_len, "thinking_delta")) {
        if (json_get_string(d, "/delta/thinking", &str, &n) == 0)
            return llm__text(s, LLM_EV_REASONING, str, n);
    } else if (str_is(type, type_len, "input_json_delta")) {
        struct llm_tool_call *t = llm__tool_find(s, (int)idx);
        if (!t || block_kind(s, idx) != LLM_BLOCK_TOOL)
            return llm__bad_stream(s, "input_json_delta outside a tool_use block");
        if (json_get_string(d, "/delta/partial_json", &str, &n) == 0)
            return llm__tool_args(s, t, str, n);
    }
    return 0; /* signature_delta, citations_delta, ... */
}

static int on_block_stop(struct llm_stream *s)
{
    int64_t idx;
    int rc = block_index(s, &idx);
    if (rc)
        return rc;
    struct llm_tool_call *t = llm__tool_find(s, (int)idx);
    if (t && block_kind(s, idx) == LLM_BLOCK_TOOL)
        return llm__tool_end(s, t, true); /* the arguments must parse, Anthropic parses them */
    return 0;
}

static int on_message_delta(struct llm_stream *s)
{
    const char *str;
    size_t n;
    int rc = 0;
    bool usage = json_type_at(s->doc, "/usage") == JSON_OBJECT;
    if (usage)
        read_usage(s, "/usage");
    if (json_get_string(s->doc, "/delta/stop_reason", &str, &n) == 0) {
        const char *reason = normalize_stop(str, n);
        rc = llm__tools_end_all(s);
        if (!rc)
            rc = llm__finish(s, reason);
    }
    if (!rc && usage)
        rc = emit_usage(s);
    return rc;
}

static int on_error(struct llm_stream *s)
{
    const char *type = "api_error", *msg = "provider error";
    size_t type_len = strlen(type), msg_len = strlen(msg);
    char tbuf[64];
    int status = 0;

    json_get_string(s->doc, "/error/type", &type, &type_len);
    json_get_string(s->doc, "/error/message", &msg, &msg_len);
    if (str_is(type, type_len, "overloaded_error"))
        status = 529;
    else if (str_is(type, type_len, "rate_limit_error"))
        status = 429;
    else if (str_is(type, type_len, "api_error"))
        status = 500;
    snprintf(tbuf, sizeof(tbuf), "%.*s", (int)type_len, type);
    return llm__error(s, tbuf, msg, msg_len, status, llm__type_retryable(type, type_len));
}

static int on_message_stop(struct llm_stream *s)
{
    int rc = llm__tools_end_all(s);
    if (!rc)
        rc = llm__finish(s, "stop");
    s->done = true;
    return rc;
}

static int anthropic_event(struct llm_stream *s, const struct sse_event *ev)
{
    const char *type;
    size_t n;
    int rc = llm__load_event(s, ev);
    if (rc)
        return rc;
    if (json_get_string(s->doc, "/type", &type, &n) != 0)
        return llm__bad_stream(s, "event without a type");
    if (str_is(type, n, "content_block_delta"))
        return on_block_delta(s);
    if (str_is(type, n, "content_block_start"))
        return on_block_start(s);
    if (str_is(type, n, "content_block_stop"))
        return on_block_stop(s);
    if (str_is(type, n, "message_start")) {
        read_usage(s, "/message/usage");
        return emit_usage(s);
    }
    if (str_is(type, n, "message_delta"))
        return on_message_delta(s);
    if (str_is(type, n, "message_stop"))
        return on_message_stop(s);
    if (str_is(type, n, "error"))
        return on_error(s);
    return 0; /* ping, and event types added after this was written */
}

static int anthropic_finish(struct llm_stream *s)
{
    if (!s->done) {
        static const char msg[] = "the stream ended before message_stop";
        return llm__error(s, "incomplete_stream", msg, sizeof(msg) - 1, 0, true);
    }
    return 0;
}

/* ---- request ---------------------------------------------------------------------------- */

/* A prompt-cache breakpoint: the prefix up to and including this block is cached for 5 minutes
 * (writes cost 1.25x input, reads 0.1x). Tools come first in Anthropic's prefix order (tools,
 * system, messages), so the breakpoint on the last tool caches the tools alone and the one on the
 * agent's prompt caches both. */
static void write_cache_control(struct jsonw *w)
{
    jw_key(w, "cache_control");
    jw_obj_begin(w);
    jw_kstr(w, "type", "ephemeral");
    jw_obj_end(w);
}

static void write_tools(struct jsonw *w, const struct llm_request *r)
{
    jw_key(w, "tools");
    jw_arr_begin(w);
    for (size_t i = 0; i < r->n_tools; i++) {
        const struct llm_tool *t = &r->tools[i];
        const char *params = t->parameters_json && *t->parameters_json
                                 ? t->parameters_json
                                 : "{\"type\":\"object\",\"properties\":{}}";
        jw_obj_begin(w);
        jw_kstr(w, "name", t->name);
        if (t->description)
            jw_kstr(w, "description", t->description);
        jw_key(w, "input_schema");
        jw_raw(w, params, strlen(params));
        if (r->cache_prefix && i + 1 == r->n_tools)
            write_cache_control(w);
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

/* System messages are joined (blank line between) into the top-level "system" field: the
 * Messages API has no system role. */
static void write_system_blocks(struct jsonw *w, const struct llm_request *r);

static void write_system(struct jsonw *w, const struct llm_request *r)
{
    if (r->cache_prefix) {
        write_system_blocks(w, r);
        return;
    }
    struct buf sys = {0};
    bool any = false;
    for (size_t i = 0; i < r->n_messages; i++) {
        const struct llm_message *m = &r->messages[i];
        if (strcmp(m->role, "system") != 0)
            continue;
        if (any)
            buf_append(&sys, "\n\n", 2);
        if (m->content)
            buf_append(&sys, m->content, m->len);
        any = true;
    }
    if (any)
        jw_kstrn(w, "system", buf_size(&sys) ? buf_begin(&sys) : "", buf_size(&sys));
    buf_free(&sys);
}

/* With prompt caching: "system" as an array of text blocks, one per non-empty system message
 * (the API refuses empty text blocks), the breakpoint on the first: the agent's prompt, the
 * stable part; later system messages change per turn and are not worth a cache write. */
static void write_system_blocks(struct jsonw *w, const struct llm_request *r)
{
    bool first = true;
    for (size_t i = 0; i < r->n_messages; i++) {
        const struct llm_message *m = &r->messages[i];
        if (strcmp(m->role, "system") != 0 || !m->content || !m->len)
            continue;
        if (first) {
            jw_key(w, "system");
            jw_arr_begin(w);
        }
        jw_obj_begin(w);
        jw_kstr(w, "type", "text");
        jw_kstrn(w, "text", m->content, m->len);
        if (first)
            write_cache_control(w);
        jw_obj_end(w);
        first = false;
    }
    if (!first)
        jw_arr_end(w);
}

/* An assistant turn that called tools: its text (if any; Anthropic refuses empty text blocks),
 * then one tool_use block per call with the arguments as the input object. */
static void write_tool_use(struct jsonw *w, const struct llm_message *m)
{
    jw_key(w, "content");
    jw_arr_begin(w);
    if (m->content && m->len) {
        jw_obj_begin(w);
        jw_kstr(w, "type", "text");
        jw_kstrn(w, "text", m->content, m->len);
        jw_obj_end(w);
    }
    for (size_t k = 0; k < m->n_tool_calls; k++) {
        const struct llm_msg_tool_call *c = &m->tool_calls[k];
        jw_obj_begin(w);
        jw_kstr(w, "type", "tool_use");
        jw_kstr(w, "id", c->id);
        jw_kstr(w, "name", c->name);
        jw_key(w, "input");
        if (c->arguments && c->arguments_len)
            jw_raw(w, c->arguments, c->arguments_len);
        else
            jw_raw(w, "{}", 2);
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

/* The run of tool messages from index i as one user message of tool_result blocks (the API
 * wants every result of a turn's calls in the message that follows it). Returns the index
 * after the run. */
static size_t write_tool_results(struct jsonw *w, const struct llm_request *r, size_t i)
{
    jw_obj_begin(w);
    jw_kstr(w, "role", "user");
    jw_key(w, "content");
    jw_arr_begin(w);
    for (; i < r->n_messages && !strcmp(r->messages[i].role, "tool"); i++) {
        const struct llm_message *m = &r->messages[i];
        jw_obj_begin(w);
        jw_kstr(w, "type", "tool_result");
        jw_kstr(w, "tool_use_id", m->tool_call_id);
        jw_kstrn(w, "content", m->content ? m->content : "", m->content ? m->len : 0);
        if (m->is_error)
            jw_kbool(w, "is_error", true);
        jw_obj_end(w);
    }
    jw_arr_end(w);
    jw_obj_end(w);
    return i;
}

/* The conversation's last message as one text block with a breakpoint: the next turn, which
 * repeats this whole prompt, reads it from the cache (Anthropic looks back from the new
 * breakpoint to the longest prefix it has). */
static void write_text_breakpoint(struct jsonw *w, const struct llm_message *m)
{
    jw_key(w, "content");
    jw_arr_begin(w);
    jw_obj_begin(w);
    jw_kstr(w, "type", "text");
    jw_kstrn(w, "text", m->content, m->len);
    write_cache_control(w);
    jw_obj_end(w);
    jw_arr_end(w);
}

static void write_messages(struct jsonw *w, const struct llm_request *r)
{
    jw_key(w, "messages");
    jw_arr_begin(w);
    for (size_t i = 0; i < r->n_messages;) {
        const struct llm_message *m = &r->messages[i];
        if (!strcmp(m->role, "tool")) {
            i = write_tool_results(w, r, i);
            continue;
        }
        i++;
        if (!strcmp(m->role, "system"))
            continue;
        jw_obj_begin(w);
        jw_kstr(w, "role", m->role);
        if (m->n_tool_calls)
            write_tool_use(w, m);
        else if (r->cache_prefix && r->cache_history && i == r->n_messages && m->len)
            write_text_breakpoint(w, m);
        else
            jw_kstrn(w, "content", m->content ? m->content : "", m->content ? m->len : 0);
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

/* tool_choice: auto / none / any ("required") / {"type":"tool","name":...}. */
static void write_tool_choice(struct jsonw *w, const char *c)
{
    bool mode = !strcmp(c, "auto") || !strcmp(c, "none");
    jw_key(w, "tool_choice");
    jw_obj_begin(w);
    jw_kstr(w, "type", mode ? c : !strcmp(c, "required") ? "any" : "tool");
    if (!mode && strcmp(c, "required"))
        jw_kstr(w, "name", c);
    jw_obj_end(w);
}

static int anthropic_request(const struct llm_request *r, struct buf *body, char *path,
                             size_t path_cap)
{
    size_t turns = 0;
    for (size_t i = 0; i < r->n_messages; i++)
        turns += strcmp(r->messages[i].role, "system") != 0;
    if (!turns)
        return -EINVAL;
    int n = snprintf(path, path_cap, "/v1/messages");
    if (n < 0 || (size_t)n >= path_cap)
        return -ENOSPC;
    struct jsonw w;
    jw_init(&w, body);
    jw_obj_begin(&w);
    jw_kstr(&w, "model", r->model);
    jw_kuint(&w, "max_tokens", r->max_tokens ? r->max_tokens : 1024); /* required */
    jw_kbool(&w, "stream", true);
    write_system(&w, r);
    write_messages(&w, r);
    if (r->temperature >= 0) {
        jw_key(&w, "temperature");
        jw_double(&w, r->temperature);
    }
    if (r->n_tools)
        write_tools(&w, r);
    if (r->n_tools && r->tool_choice && *r->tool_choice)
        write_tool_choice(&w, r->tool_choice);
    jw_obj_end(&w);
    return 0;
}

/* {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}} */
static int anthropic_error_body(json_doc *d, const char **msg, size_t *msg_len, const char **type,
                                size_t *type_len, int *retry)
{
    if (json_type_at(d, "/error") != JSON_OBJECT)
        return -ENOENT;
    if (json_get_string(d, "/error/message", msg, msg_len) != 0)
        *msg = NULL;
    if (json_get_string(d, "/error/type", type, type_len) != 0)
        *type = NULL;
    else if (str_is(*type, *type_len, "overloaded_error"))
        *retry = 1;
    return 0;
}

const struct llm_adapter llm__anthropic = {
    .event = anthropic_event,
    .finish = anthropic_finish,
    .request = anthropic_request,
    .error_body = anthropic_error_body,
};
