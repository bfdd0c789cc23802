/* llm_openai.c - OpenAI Chat Completions streaming, and the servers that copy it (vLLM,
 * llama.cpp, Ollama).
 *
 * Each "data:" is a chat.completion.chunk until "data: [DONE]". The first chunk carries only
 * the role; text is choices[0].delta.content; tool calls arrive as delta.tool_calls[] fragments
 * keyed by "index", id and function.name only on an index's first fragment, function.arguments
 * in pieces. Usage (requested with stream_options.include_usage) usually comes on a last chunk
 * with "choices": [], but compatible servers put it on a chunk with choices, or "choices": null,
 * so usage is read from every chunk, after its text, and reported as it stands (USAGE replaces).
 * Arguments are not validated as JSON here: the model writes them and OpenAI does not promise
 * they parse (the tool runner reports that); the stream itself is not broken by them. */
#include "stream/llm_adapter.h"
#include "stream/jsonw.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define TOOL_PTR "/choices/0/delta/tool_calls/%zu"

static bool str_is(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static const char *normalize_finish(const char *r, size_t n)
{
    if (str_is(r, n, "length"))
        return "length";
    if (str_is(r, n, "tool_calls") || str_is(r, n, "function_call"))
        return "tool_calls";
    if (str_is(r, n, "content_filter"))
        return "content_filter";
    return "stop"; /* "stop", and whatever else a compatible server invents ("eos") */
}

/* One delta.tool_calls[i] fragment. */
static int tool_fragment(struct llm_stream *s, size_t i)
{
    json_doc *d = s->doc;
    char ptr[96];
    int64_t key = (int64_t)i; /* some servers omit "index": position then */
    const char *id = NULL, *name = NULL, *args = NULL;
    size_t id_len = 0, name_len = 0, args_len = 0;
    char gen_id[32];

    snprintf(ptr, sizeof(ptr), TOOL_PTR "/index", i);
    if (json_type_at(d, ptr) != JSON_MISSING && json_get_int(d, ptr, &key) != 0)
        return llm__bad_stream(s, "tool call index is not an integer");
    if (key < 0 || key >= LLM_MAX_TOOLS)
        return llm__bad_stream(s, "tool call index out of range");
    struct llm_tool_call *t = llm__tool_find(s, (int)key);
    if (!t) {
        snprintf(ptr, sizeof(ptr), TOOL_PTR "/id", i);
        if (json_get_string(d, ptr, &id, &id_len) != 0 || !id_len) {
            id_len = (size_t)snprintf(gen_id, sizeof(gen_id), "call_%d", (int)key);
            id = gen_id;
        }
        snprintf(ptr, sizeof(ptr), TOOL_PTR "/function/name", i);
        json_get_string(d, ptr, &name, &name_len);
        int rc = llm__tool_start(s, (int)key, id, id_len, name, name_len, &t);
        if (rc)
            return rc;
    }
    snprintf(ptr, sizeof(ptr), TOOL_PTR "/function/arguments", i);
    if (json_get_string(d, ptr, &args, &args_len) == 0)
        return llm__tool_args(s, t, args, args_len);
    return 0;
}

/* choices[0]: text, reasoning, tool fragments, then finish_reason. Keys that are rare are looked
 * up only when the event mentions them (see llm__mentions): most chunks carry only content. */
static int on_choice(struct llm_stream *s, const struct sse_event *ev)
{
    json_doc *d = s->doc;
    const char *str;
    size_t n, count;
    int rc = 0;

    if (json_get_string(d, "/choices/0/delta/content", &str, &n) == 0)
        rc = llm__text(s, LLM_EV_TEXT, str, n);
    /* a structured-output refusal is the answer the user gets */
    if (!rc && llm__mentions(ev, "refusal") &&
        json_get_string(d, "/choices/0/delta/refusal", &str, &n) == 0)
        rc = llm__text(s, LLM_EV_TEXT, str, n);
    /* reasoning text from vLLM/DeepSeek ("reasoning_content") or Ollama/OpenRouter
     * ("reasoning"); OpenAI itself does not stream reasoning on Chat Completions */
    if (!rc && memmem(ev->data, ev->data_len, "\"reasoning", 10)) {
        if (json_get_string(d, "/choices/0/delta/reasoning_content", &str, &n) == 0)
            rc = llm__text(s, LLM_EV_REASONING, str, n);
        if (!rc && json_get_string(d, "/choices/0/delta/reasoning", &str, &n) == 0)
            rc = llm__text(s, LLM_EV_REASONING, str, n);
    }
    if (!rc && llm__mentions(ev, "tool_calls") &&
        json_type_at(d, "/choices/0/delta/tool_calls") == JSON_ARRAY &&
        json_count(d, "/choices/0/delta/tool_calls", &count) == 0)
        for (size_t i = 0; i < count && !rc; i++)
            rc = tool_fragment(s, i);
    if (!rc && json_get_string(d, "/choices/0/finish_reason", &str, &n) == 0) {
        rc = llm__tools_end_all(s);
        if (!rc)
            rc = llm__finish(s, normalize_finish(str, n));
    }
    return rc;
}

/* usage is already in normalized form: prompt_tokens includes the cached ones, completion_tokens
 * the reasoning ones. */
static int on_usage(struct llm_stream *s)
{
    json_doc *d = s->doc;
    s->usage.input_tokens = llm__u64(d, "/usage/prompt_tokens");
    s->usage.cached_input_tokens = llm__u64(d, "/usage/prompt_tokens_details/cached_tokens");
    s->usage.cache_write_tokens = 0;
    s->usage.output_tokens = llm__u64(d, "/usage/completion_tokens");
    s->usage.reasoning_tokens = llm__u64(d, "/usage/completion_tokens_details/reasoning_tokens");
    return llm__usage(s);
}

/* {"error": {...}} in the middle of a stream (OpenAI, vLLM). */
static int on_stream_error(struct llm_stream *s)
{
    json_doc *d = s->doc;
    const char *msg = "provider error", *type = NULL;
    size_t msg_len = strlen(msg), type_len = 0;
    int64_t code = 0;

    json_get_string(d, "/error/message", &msg, &msg_len);
    if (json_get_string(d, "/error/type", &type, &type_len) != 0 || !type_len) {
        type = "server_error";
        type_len = strlen(type);
    }
    json_get_int(d, "/error/code", &code);
    int status = code >= 100 && code <= 599 ? (int)code : 0;
    bool retry = llm__type_retryable(type, type_len) || status == 429 || status >= 500;
    char tbuf[64];
    snprintf(tbuf, sizeof(tbuf), "%.*s", (int)type_len, type);
    return llm__error(s, tbuf, msg, msg_len, status, retry);
}

static int on_done(struct llm_stream *s)
{
    int rc = llm__tools_end_all(s);
    if (!rc)
        rc = llm__finish(s, "stop");
    s->done = true;
    return rc;
}

static int openai_event(struct llm_stream *s, const struct sse_event *ev)
{
    if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0)
        return on_done(s);
    int rc = llm__load_event(s, ev);
    if (rc)
        return rc;
    if (llm__mentions(ev, "error") && json_type_at(s->doc, "/error") == JSON_OBJECT)
        return on_stream_error(s);
    rc = on_choice(s, ev);
    if (!rc && llm__mentions(ev, "usage") && json_type_at(s->doc, "/usage") == JSON_OBJECT)
        rc = on_usage(s);
    return rc;
}

static int openai_finish(struct llm_stream *s)
{
    if (!s->done) {
        static const char msg[] = "the stream ended before [DONE]";
        return llm__error(s, "incomplete_stream", msg, sizeof(msg) - 1, 0, true);
    }
    return 0;
}

/* ---- request ---------------------------------------------------------------------------- */

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
        jw_kstr(w, "type", "function");
        jw_key(w, "function");
        jw_obj_begin(w);
        jw_kstr(w, "name", t->name);
        if (t->description)
            jw_kstr(w, "description", t->description);
        jw_key(w, "parameters");
        jw_raw(w, params, strlen(params));
        jw_obj_end(w);
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

/* A message; an assistant turn's tool calls carry their arguments as a string, and its content
 * is null when it wrote no text (OpenAI's own shape); a tool result is a "tool" message tied to
 * its call by tool_call_id (OpenAI has no error flag: the content says it). */
static void write_message(struct jsonw *w, const struct llm_message *m)
{
    jw_obj_begin(w);
    jw_kstr(w, "role", m->role);
    if (m->n_tool_calls && !m->len) {
        jw_key(w, "content");
        jw_null(w);
    } else {
        jw_kstrn(w, "content", m->content ? m->content : "", m->content ? m->len : 0);
    }
    if (m->tool_call_id)
        jw_kstr(w, "tool_call_id", m->tool_call_id);
    if (m->n_tool_calls) {
        jw_key(w, "tool_calls");
        jw_arr_begin(w);
        for (size_t k = 0; k < m->n_tool_calls; k++) {
            const struct llm_msg_tool_call *c = &m->tool_calls[k];
            jw_obj_begin(w);
            jw_kstr(w, "id", c->id);
            jw_kstr(w, "type", "function");
            jw_key(w, "function");
            jw_obj_begin(w);
            jw_kstr(w, "name", c->name);
            if (c->arguments && c->arguments_len)
                jw_kstrn(w, "arguments", c->arguments, c->arguments_len);
            else
                jw_kstr(w, "arguments", "{}");
            jw_obj_end(w);
            jw_obj_end(w);
        }
        jw_arr_end(w);
    }
    jw_obj_end(w);
}

/* tool_choice: a mode as is, a tool's name as {"type":"function","function":{"name":...}}. */
static void write_tool_choice(struct jsonw *w, const char *c)
{
    jw_key(w, "tool_choice");
    if (!strcmp(c, "auto") || !strcmp(c, "none") || !strcmp(c, "required")) {
        jw_str(w, c);
        return;
    }
    jw_obj_begin(w);
    jw_kstr(w, "type", "function");
    jw_key(w, "function");
    jw_obj_begin(w);
    jw_kstr(w, "name", c);
    jw_obj_end(w);
    jw_obj_end(w);
}

static int openai_request(const struct llm_request *r, struct buf *body, char *path,
                          size_t path_cap)
{
    int n = snprintf(path, path_cap, "/chat/completions");
    if (n < 0 || (size_t)n >= path_cap)
        return -ENOSPC;
    struct jsonw w;
    jw_init(&w, body);
    jw_obj_begin(&w);
    jw_kstr(&w, "model", r->model);
    jw_key(&w, "messages");
    jw_arr_begin(&w);
    for (size_t i = 0; i < r->n_messages; i++)
        write_message(&w, &r->messages[i]);
    jw_arr_end(&w);
    jw_kbool(&w, "stream", true);
    jw_key(&w, "stream_options");
    jw_obj_begin(&w);
    jw_kbool(&w, "include_usage", true);
    jw_obj_end(&w);
    /* "max_tokens", not "max_completion_tokens": vLLM, llama.cpp and Ollama know only this one
     * (OpenAI's o-series models refuse it: leave max_tokens 0 for them) */
    if (r->max_tokens)
        jw_kuint(&w, "max_tokens", r->max_tokens);
    if (r->temperature >= 0) {
        jw_key(&w, "temperature");
        jw_double(&w, r->temperature);
    }
    if (r->n_tools)
        write_tools(&w, r);
    if (r->n_tools && r->tool_choice && *r->tool_choice)
        write_tool_choice(&w, r->tool_choice);
    /* routes requests with the same prefix and key to the same cache (OpenAI); compatible
     * servers ignore fields they do not know */
    if (r->cache_key && *r->cache_key)
        jw_kstr(&w, "prompt_cache_key", r->cache_key);
    jw_obj_end(&w);
    return 0;
}

/* OpenAI {"error":{"message","type","code"}}; compatible servers: {"error":"text"} (Ollama),
 * {"detail":"text"} (FastAPI), {"message":"text"}. */
static int openai_error_body(json_doc *d, const char **msg, size_t *msg_len, const char **type,
                             size_t *type_len, int *retry)
{
    if (json_type_at(d, "/error") == JSON_OBJECT) {
        if (json_get_string(d, "/error/message", msg, msg_len) != 0)
            *msg = NULL;
        const char *code = NULL;
        size_t code_len = 0;
        json_get_string(d, "/error/code", &code, &code_len);
        if (json_get_string(d, "/error/type", type, type_len) != 0 || !*type_len) {
            *type = code;
            *type_len = code_len;
        }
        /* a 429 for an exhausted quota does not get better by waiting */
        if ((code && str_is(code, code_len, "insufficient_quota")) ||
            (*type && str_is(*type, *type_len, "insufficient_quota")))
            *retry = 0;
        return 0;
    }
    if (json_get_string(d, "/error", msg, msg_len) == 0 ||
        json_get_string(d, "/detail", msg, msg_len) == 0 ||
        json_get_string(d, "/message", msg, msg_len) == 0)
        return 0;
    return -ENOENT;
}

const struct llm_adapter llm__openai = {
    .event = openai_event,
    .finish = openai_finish,
    .request = openai_request,
    .error_body = openai_error_body,
};
