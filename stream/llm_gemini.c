/* llm_gemini.c - Gemini models.streamGenerateContent with alt=sse.
 *
 * Every "data:" is a whole GenerateContentResponse: candidates[0].content.parts[] holds text
 * (thought parts, "thought": true, are reasoning) and functionCall{name, args} with the
 * arguments complete in one part, so a call is START, ARGS, END at once. usageMetadata can come
 * on any frame and each one is the running total: the last one wins, frames are never added.
 * promptTokenCount already includes cachedContentTokenCount; thoughtsTokenCount is billed as
 * output but not counted in candidatesTokenCount, so output = candidates + thoughts. There is
 * no terminator: the body's end is the end (see gemini_finish). */
#include "stream/llm_adapter.h"
#include "stream/jsonw.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define PART_PTR "/candidates/0/content/parts/%zu"

static bool str_is(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static int function_call(struct llm_stream *s, size_t i)
{
    json_doc *d = s->doc;
    char ptr[96], gen_id[32];
    const char *name = NULL, *id = NULL, *args = "{}";
    size_t name_len = 0, id_len = 0, args_len = 2;
    struct llm_tool_call *t;
    int key = (int)s->n_tools;

    snprintf(ptr, sizeof(ptr), PART_PTR "/functionCall/name", i);
    if (json_get_string(d, ptr, &name, &name_len) != 0 || !name_len)
        return llm__bad_stream(s, "functionCall without a name");
    /* the Gemini API has no call ids (Vertex sometimes sends one): make them per stream */
    snprintf(ptr, sizeof(ptr), PART_PTR "/functionCall/id", i);
    if (json_get_string(d, ptr, &id, &id_len) != 0 || !id_len) {
        id_len = (size_t)snprintf(gen_id, sizeof(gen_id), "call_%d", key);
        id = gen_id;
    }
    snprintf(ptr, sizeof(ptr), PART_PTR "/functionCall/args", i);
    if (json_type_at(d, ptr) == JSON_OBJECT)
        json_get_raw(d, ptr, &args, &args_len);
    int rc = llm__tool_start(s, key, id, id_len, name, name_len, &t);
    if (!rc)
        rc = llm__tool_args(s, t, args, args_len);
    if (!rc)
        rc = llm__tool_end(s, t, false);
    return rc;
}

static int on_part(struct llm_stream *s, const struct sse_event *ev, size_t i)
{
    json_doc *d = s->doc;
    char ptr[96];
    const char *text;
    size_t n;
    bool thought = false;

    snprintf(ptr, sizeof(ptr), PART_PTR "/text", i);
    if (json_get_string(d, ptr, &text, &n) == 0) {
        snprintf(ptr, sizeof(ptr), PART_PTR "/thought", i);
        if (llm__mentions(ev, "thought"))
            json_get_bool(d, ptr, &thought);
        return llm__text(s, thought ? LLM_EV_REASONING : LLM_EV_TEXT, text, n);
    }
    snprintf(ptr, sizeof(ptr), PART_PTR "/functionCall", i);
    if (llm__mentions(ev, "functionCall") && json_type_at(d, ptr) == JSON_OBJECT)
        return function_call(s, i);
    return 0; /* inlineData, executableCode, ...: not part of a chat answer here */
}

static int on_finish_reason(struct llm_stream *s, const char *r, size_t n)
{
    static const char *const filtered[] = {
        "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"};
    if (str_is(r, n, "MAX_TOKENS"))
        return llm__finish(s, "length");
    for (size_t i = 0; i < sizeof(filtered) / sizeof(filtered[0]); i++)
        if (str_is(r, n, filtered[i]))
            return llm__finish(s, "content_filter");
    if (str_is(r, n, "MALFORMED_FUNCTION_CALL")) {
        static const char msg[] = "the model produced a malformed function call";
        return llm__error(s, "malformed_function_call", msg, sizeof(msg) - 1, 0, true);
    }
    return llm__finish(s, "stop"); /* STOP, OTHER, and reasons added later */
}

static int on_candidate(struct llm_stream *s, const struct sse_event *ev)
{
    json_doc *d = s->doc;
    size_t count;
    const char *r;
    size_t n;
    int rc = 0;

    s->saw_candidate = true;
    if (json_type_at(d, "/candidates/0/content/parts") == JSON_ARRAY &&
        json_count(d, "/candidates/0/content/parts", &count) == 0)
        for (size_t i = 0; i < count && !rc; i++)
            rc = on_part(s, ev, i);
    if (!rc && llm__mentions(ev, "finishReason") &&
        json_get_string(d, "/candidates/0/finishReason", &r, &n) == 0)
        rc = on_finish_reason(s, r, n);
    return rc;
}

static int on_usage(struct llm_stream *s)
{
    json_doc *d = s->doc;
    uint64_t thoughts = llm__u64(d, "/usageMetadata/thoughtsTokenCount");
    /* toolUsePromptTokenCount (built-in tools' prompts) is billed as input and is not inside
     * promptTokenCount; it is 0 for requests this gateway builds */
    s->usage.input_tokens = llm__u64(d, "/usageMetadata/promptTokenCount") +
                            llm__u64(d, "/usageMetadata/toolUsePromptTokenCount");
    s->usage.cached_input_tokens = llm__u64(d, "/usageMetadata/cachedContentTokenCount");
    s->usage.cache_write_tokens = 0;
    s->usage.output_tokens = llm__u64(d, "/usageMetadata/candidatesTokenCount") + thoughts;
    s->usage.reasoning_tokens = thoughts;
    return llm__usage(s);
}

static int on_stream_error(struct llm_stream *s)
{
    const char *msg = "provider error", *status = "INTERNAL";
    size_t msg_len = strlen(msg), status_len = strlen(status);
    int64_t code = 0;
    char tbuf[64];

    json_get_string(s->doc, "/error/message", &msg, &msg_len);
    json_get_string(s->doc, "/error/status", &status, &status_len);
    json_get_int(s->doc, "/error/code", &code);
    int http = code >= 100 && code <= 599 ? (int)code : 0;
    snprintf(tbuf, sizeof(tbuf), "%.*s", (int)status_len, status);
    return llm__error(s, tbuf, msg, msg_len, http,
                      llm__type_retryable(status, status_len) || http == 429 || http >= 500);
}

static int gemini_event(struct llm_stream *s, const struct sse_event *ev)
{
    json_doc *d = s->doc;
    const char *str;
    size_t n;
    int rc = llm__load_event(s, ev);
    if (rc)
        return rc;
    /* lookups walk from the root: skip those of members the frame does not mention */
    if (llm__mentions(ev, "error") && json_type_at(d, "/error") == JSON_OBJECT)
        return on_stream_error(s);
    if (llm__mentions(ev, "promptFeedback") &&
        json_get_string(d, "/promptFeedback/blockReason", &str, &n) == 0) {
        char msg[128];
        int m = snprintf(msg, sizeof(msg), "the prompt was blocked: %.*s", (int)n, str);
        return llm__error(s, "content_filter", msg,
                          (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1, 0, false);
    }
    if (llm__mentions(ev, "candidates") && json_type_at(d, "/candidates/0") == JSON_OBJECT)
        rc = on_candidate(s, ev);
    if (!rc && llm__mentions(ev, "usageMetadata") &&
        json_type_at(d, "/usageMetadata") == JSON_OBJECT)
        rc = on_usage(s);
    return rc;
}

/* The end of the body is the end of a Gemini stream: FINISH if no finishReason came. A body
 * without any candidate is not an answer. */
static int gemini_finish(struct llm_stream *s)
{
    if (!s->saw_candidate) {
        static const char msg[] = "the stream ended without a candidate";
        return llm__error(s, "incomplete_stream", msg, sizeof(msg) - 1, 0, true);
    }
    s->done = true;
    int rc = llm__tools_end_all(s);
    return rc ? rc : llm__finish(s, "stop");
}

/* ---- request ---------------------------------------------------------------------------- */

/* "/v1beta/models/" + model (a leading "models/" dropped, anything outside [A-Za-z0-9._-]
 * percent-encoded) + ":streamGenerateContent?alt=sse". */
static int write_path(const char *model, char *path, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    static const char head[] = "/v1beta/models/", tail[] = ":streamGenerateContent?alt=sse";
    size_t o = sizeof(head) - 1;
    if (!strncmp(model, "models/", 7))
        model += 7;
    if (!*model || cap < o + 1)
        return !*model ? -EINVAL : -ENOSPC;
    memcpy(path, head, o);
    for (const unsigned char *m = (const unsigned char *)model; *m; m++) {
        bool plain = (*m >= 'a' && *m <= 'z') || (*m >= 'A' && *m <= 'Z') ||
                     (*m >= '0' && *m <= '9') || *m == '.' || *m == '_' || *m == '-';
        if (o + (plain ? 1 : 3) >= cap)
            return -ENOSPC;
        if (plain) {
            path[o++] = (char)*m;
        } else {
            path[o++] = '%';
            path[o++] = hex[*m >> 4];
            path[o++] = hex[*m & 15];
        }
    }
    if (o + sizeof(tail) > cap)
        return -ENOSPC;
    memcpy(path + o, tail, sizeof(tail));
    return 0;
}

static void write_text_parts(struct jsonw *w, const struct llm_message *m)
{
    jw_key(w, "parts");
    jw_arr_begin(w);
    jw_obj_begin(w);
    jw_kstrn(w, "text", m->content ? m->content : "", m->content ? m->len : 0);
    jw_obj_end(w);
    jw_arr_end(w);
}

static void write_system(struct jsonw *w, const struct llm_request *r)
{
    bool any = false;
    for (size_t i = 0; i < r->n_messages; i++) {
        const struct llm_message *m = &r->messages[i];
        if (strcmp(m->role, "system") != 0)
            continue;
        if (!any) {
            jw_key(w, "systemInstruction");
            jw_obj_begin(w);
            jw_key(w, "parts");
            jw_arr_begin(w);
            any = true;
        }
        jw_obj_begin(w);
        jw_kstrn(w, "text", m->content ? m->content : "", m->content ? m->len : 0);
        jw_obj_end(w);
    }
    if (any) {
        jw_arr_end(w);
        jw_obj_end(w);
    }
}

static void write_tools(struct jsonw *w, const struct llm_request *r)
{
    jw_key(w, "tools");
    jw_arr_begin(w);
    jw_obj_begin(w);
    jw_key(w, "functionDeclarations");
    jw_arr_begin(w);
    for (size_t i = 0; i < r->n_tools; i++) {
        const struct llm_tool *t = &r->tools[i];
        jw_obj_begin(w);
        jw_kstr(w, "name", t->name);
        if (t->description)
            jw_kstr(w, "description", t->description);
        if (t->parameters_json && *t->parameters_json) {
            jw_key(w, "parameters");
            jw_raw(w, t->parameters_json, strlen(t->parameters_json));
        }
        jw_obj_end(w);
    }
    jw_arr_end(w);
    jw_obj_end(w);
    jw_arr_end(w);
}

/* A model turn that called tools: its text part (if any), then a functionCall part per call.
 * Call ids are not sent: Gemini matches a response to its call by name and order. */
static void write_call_parts(struct jsonw *w, const struct llm_message *m)
{
    jw_key(w, "parts");
    jw_arr_begin(w);
    if (m->content && m->len) {
        jw_obj_begin(w);
        jw_kstrn(w, "text", m->content, m->len);
        jw_obj_end(w);
    }
    for (size_t k = 0; k < m->n_tool_calls; k++) {
        const struct llm_msg_tool_call *c = &m->tool_calls[k];
        jw_obj_begin(w);
        jw_key(w, "functionCall");
        jw_obj_begin(w);
        jw_kstr(w, "name", c->name);
        jw_key(w, "args");
        if (c->arguments && c->arguments_len)
            jw_raw(w, c->arguments, c->arguments_len);
        else
            jw_raw(w, "{}", 2);
        jw_obj_end(w);
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

/* functionResponse.response must be an object: a result that is a JSON object goes as is,
 * other text as {"output": text}; a failure as {"error": text or object} (the keys Gemini's
 * documentation names for output and error details). */
static void write_response(struct jsonw *w, const struct llm_message *m, json_doc **d)
{
    const char *text = m->content ? m->content : "";
    size_t n = m->content ? m->len : 0;
    bool object = llm__is_json_object(d, text, n);
    jw_key(w, "response");
    if (object && !m->is_error) {
        jw_raw(w, text, n);
        return;
    }
    jw_obj_begin(w);
    jw_key(w, m->is_error ? "error" : "output");
    if (object)
        jw_raw(w, text, n);
    else
        jw_strn(w, text, n);
    jw_obj_end(w);
}

/* The run of tool messages from index i as one user content of functionResponse parts.
 * Returns the index after the run. */
static size_t write_responses(struct jsonw *w, const struct llm_request *r, size_t i, json_doc **d)
{
    jw_obj_begin(w);
    jw_kstr(w, "role", "user");
    jw_key(w, "parts");
    jw_arr_begin(w);
    for (; i < r->n_messages && !strcmp(r->messages[i].role, "tool"); i++) {
        jw_obj_begin(w);
        jw_key(w, "functionResponse");
        jw_obj_begin(w);
        jw_kstr(w, "name", r->messages[i].tool_name);
        write_response(w, &r->messages[i], d);
        jw_obj_end(w);
        jw_obj_end(w);
    }
    jw_arr_end(w);
    jw_obj_end(w);
    return i;
}

static void write_contents(struct jsonw *w, const struct llm_request *r)
{
    json_doc *d = NULL; /* made only when a tool result needs looking at */
    jw_key(w, "contents");
    jw_arr_begin(w);
    for (size_t i = 0; i < r->n_messages;) {
        const struct llm_message *m = &r->messages[i];
        if (!strcmp(m->role, "tool")) {
            i = write_responses(w, r, i, &d);
            continue;
        }
        i++;
        if (!strcmp(m->role, "system"))
            continue;
        jw_obj_begin(w);
        jw_kstr(w, "role", strcmp(m->role, "assistant") == 0 ? "model" : "user");
        if (m->n_tool_calls)
            write_call_parts(w, m);
        else
            write_text_parts(w, m);
        jw_obj_end(w);
    }
    jw_arr_end(w);
    json_doc_destroy(d);
}

/* toolConfig.functionCallingConfig: mode AUTO / NONE / ANY, a tool's name as ANY restricted to
 * it. */
static void write_tool_config(struct jsonw *w, const char *c)
{
    bool named = strcmp(c, "auto") && strcmp(c, "none") && strcmp(c, "required");
    jw_key(w, "toolConfig");
    jw_obj_begin(w);
    jw_key(w, "functionCallingConfig");
    jw_obj_begin(w);
    jw_kstr(w, "mode", !strcmp(c, "auto") ? "AUTO" : !strcmp(c, "none") ? "NONE" : "ANY");
    if (named) {
        jw_key(w, "allowedFunctionNames");
        jw_arr_begin(w);
        jw_str(w, c);
        jw_arr_end(w);
    }
    jw_obj_end(w);
    jw_obj_end(w);
}

static int gemini_request(const struct llm_request *r, struct buf *body, char *path,
                          size_t path_cap)
{
    size_t turns = 0;
    for (size_t i = 0; i < r->n_messages; i++)
        turns += strcmp(r->messages[i].role, "system") != 0;
    if (!turns)
        return -EINVAL;
    int rc = write_path(r->model, path, path_cap);
    if (rc)
        return rc;
    struct jsonw w;
    jw_init(&w, body);
    jw_obj_begin(&w);
    write_contents(&w, r);
    write_system(&w, r);
    if (r->max_tokens || r->temperature >= 0) {
        jw_key(&w, "generationConfig");
        jw_obj_begin(&w);
        if (r->max_tokens)
            jw_kuint(&w, "maxOutputTokens", r->max_tokens);
        if (r->temperature >= 0) {
            jw_key(&w, "temperature");
            jw_double(&w, r->temperature);
        }
        jw_obj_end(&w);
    }
    if (r->n_tools)
        write_tools(&w, r);
    if (r->n_tools && r->tool_choice && *r->tool_choice)
        write_tool_config(&w, r->tool_choice);
    jw_obj_end(&w);
    return 0;
}

/* {"error":{"code":429,"message":"...","status":"RESOURCE_EXHAUSTED"}}, also wrapped in an array
 * (the non-SSE framing). */
static int gemini_error_body(json_doc *d, const char **msg, size_t *msg_len, const char **type,
                             size_t *type_len, int *retry)
{
    (void)retry;
    const char *base = json_type_at(d, "/error") == JSON_OBJECT     ? "/error"
                       : json_type_at(d, "/0/error") == JSON_OBJECT ? "/0/error"
                                                                    : NULL;
    char ptr[32];
    if (!base)
        return -ENOENT;
    snprintf(ptr, sizeof(ptr), "%s/message", base);
    if (json_get_string(d, ptr, msg, msg_len) != 0)
        *msg = NULL;
    snprintf(ptr, sizeof(ptr), "%s/status", base);
    if (json_get_string(d, ptr, type, type_len) != 0)
        *type = NULL;
    return 0;
}

const struct llm_adapter llm__gemini = {
    .event = gemini_event,
    .finish = gemini_finish,
    .request = gemini_request,
    .error_body = gemini_error_body,
};
