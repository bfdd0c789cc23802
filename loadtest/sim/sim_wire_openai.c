/* sim_wire_openai.c - OpenAI Chat Completions: streamed chat.completion.chunk events and the
 * whole chat.completion object.
 *
 * Stream: a role-only chunk, one chunk per content token or tool-argument fragment (the first
 * fragment of a call carries its id, type and name with arguments ""), a chunk with an empty
 * delta and the finish_reason, then - only with stream_options.include_usage - a chunk with
 * "choices":[] and the usage (every other chunk then has "usage":null), then data: [DONE]. */
#include "loadtest/sim/sim_wire.h"

#include <string.h>

#include "stream/jsonw.h"

static uint32_t completion_tokens(const struct sim_resp *r)
{
    return r->text_out + r->tool_out + r->ans->reasoning;
}

static void write_usage(struct jsonw *w, const struct sim_resp *r)
{
    jw_key(w, "usage");
    jw_obj_begin(w);
    jw_kuint(w, "prompt_tokens", r->u.prompt);
    jw_kuint(w, "completion_tokens", completion_tokens(r));
    jw_kuint(w, "total_tokens", (uint64_t)r->u.prompt + completion_tokens(r));
    jw_key(w, "prompt_tokens_details");
    jw_obj_begin(w);
    jw_kuint(w, "cached_tokens", r->u.cached);
    jw_kuint(w, "audio_tokens", 0);
    jw_obj_end(w);
    jw_key(w, "completion_tokens_details");
    jw_obj_begin(w);
    jw_kuint(w, "reasoning_tokens", r->ans->reasoning);
    jw_kuint(w, "audio_tokens", 0);
    jw_kuint(w, "accepted_prediction_tokens", 0);
    jw_kuint(w, "rejected_prediction_tokens", 0);
    jw_obj_end(w);
    jw_obj_end(w);
}

/* The members every chunk and completion starts with. */
static void head(struct jsonw *w, const struct sim_resp *r, const char *object)
{
    jw_obj_begin(w);
    jw_kstr(w, "id", r->id);
    jw_kstr(w, "object", object);
    jw_kint(w, "created", r->created);
    jw_kstr(w, "model", r->model);
    jw_kstr(w, "service_tier", "default");
    jw_key(w, "system_fingerprint");
    jw_null(w);
}

/* "data: {chunk head, "choices":[{"index":0,"delta":{" - the caller writes the delta. */
static void chunk_open(struct jsonw *w, const struct sim_resp *r, struct buf *out)
{
    buf_append_str(out, "data: ");
    jw_init(w, out);
    head(w, r, "chat.completion.chunk");
    jw_key(w, "choices");
    jw_arr_begin(w);
    jw_obj_begin(w);
    jw_kint(w, "index", 0);
    jw_key(w, "delta");
    jw_obj_begin(w);
}

/* Close the delta, the choice (with finish_reason) and the chunk. */
static void chunk_close(struct jsonw *w, const struct sim_resp *r, const char *finish,
                        struct buf *out)
{
    jw_obj_end(w);
    jw_key(w, "logprobs");
    jw_null(w);
    jw_key(w, "finish_reason");
    if (finish)
        jw_str(w, finish);
    else
        jw_null(w);
    jw_obj_end(w);
    jw_arr_end(w);
    if (r->include_usage) {
        jw_key(w, "usage");
        jw_null(w);
    }
    jw_obj_end(w);
    buf_append_str(out, "\n\n");
}

/* Text chunks are the hot path (one per token per stream): everything around the content
 * string is the same for the whole stream, so it is written once by the JSON writer and then
 * copied; only the token itself is escaped each time. */
static void build_head(struct sim_resp *r)
{
    struct buf b = {0};
    struct jsonw w;
    chunk_open(&w, r, &b);
    jw_key(&w, "content");
    if (buf_size(&b) + 1 < sizeof(r->head)) {
        memcpy(r->head, buf_begin(&b), buf_size(&b));
        r->head_len = (uint16_t)buf_size(&b);
    }
    buf_free(&b);
}

static bool fast_text(struct sim_resp *r, const struct sim_step *s, struct buf *out)
{
    if (!r->head_len)
        return false;
    buf_append(out, r->head, r->head_len);
    buf_append(out, "\"", 1);
    json_escape(out, buf_begin(&r->ans->text) + s->off, s->len);
    buf_append_str(out, r->include_usage
                            ? "\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n"
                            : "\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    return true;
}

static void oa_start(struct sim_resp *r, struct buf *out)
{
    struct jsonw w;
    build_head(r);
    chunk_open(&w, r, out);
    jw_kstr(&w, "role", "assistant");
    jw_kstr(&w, "content", "");
    jw_key(&w, "refusal");
    jw_null(&w);
    chunk_close(&w, r, NULL, out);
}

static void tool_fragment(struct jsonw *w, const struct sim_resp *r, const struct sim_step *s)
{
    const struct sim_call *c = &r->ans->calls[s->call];
    jw_key(w, "tool_calls");
    jw_arr_begin(w);
    jw_obj_begin(w);
    jw_kint(w, "index", s->call);
    if (s->kind == SIM_STEP_TOOL_START) {
        jw_kstr(w, "id", c->id);
        jw_kstr(w, "type", "function");
    }
    jw_key(w, "function");
    jw_obj_begin(w);
    if (s->kind == SIM_STEP_TOOL_START) {
        jw_kstr(w, "name", c->name);
        jw_kstr(w, "arguments", "");
    } else {
        jw_kstrn(w, "arguments", buf_begin(&c->args) + s->off, s->len);
    }
    jw_obj_end(w);
    jw_obj_end(w);
    jw_arr_end(w);
}

static void oa_step(struct sim_resp *r, const struct sim_step *s, bool last, struct buf *out)
{
    (void)last;
    struct jsonw w;
    if (s->kind == SIM_STEP_TEXT && fast_text(r, s, out)) {
        r->text_out++;
        return;
    }
    chunk_open(&w, r, out);
    if (s->kind == SIM_STEP_TEXT) {
        jw_kstrn(&w, "content", buf_begin(&r->ans->text) + s->off, s->len);
        r->text_out++;
    } else {
        tool_fragment(&w, r, s);
        if (s->kind == SIM_STEP_TOOL_ARG)
            r->tool_out++;
    }
    chunk_close(&w, r, NULL, out);
}

static void oa_finish(struct sim_resp *r, struct buf *out)
{
    struct jsonw w;
    chunk_open(&w, r, out);
    chunk_close(&w, r, sim_wire_finish_name(SIM_OPENAI, r->ans->finish), out);
    if (r->include_usage) {
        buf_append_str(out, "data: ");
        jw_init(&w, out);
        head(&w, r, "chat.completion.chunk");
        jw_key(&w, "choices");
        jw_arr_begin(&w);
        jw_arr_end(&w);
        write_usage(&w, r);
        jw_obj_end(&w);
        buf_append_str(out, "\n\n");
    }
    buf_append_str(out, "data: [DONE]\n\n");
}

static void oa_error_event(struct sim_resp *r, struct buf *out)
{
    (void)r;
    buf_append_str(out, "data: ");
    sim_wire_error_body(SIM_OPENAI, 500,
                        "The server had an error while processing your request. Sorry about "
                        "that!",
                        out);
    buf_append_str(out, "\n\n");
}

static void whole_message(struct jsonw *w, const struct sim_resp *r)
{
    const struct sim_answer *a = r->ans;
    jw_key(w, "message");
    jw_obj_begin(w);
    jw_kstr(w, "role", "assistant");
    jw_key(w, "content");
    if (a->ncalls)
        jw_null(w);
    else
        jw_strn(w, buf_begin(&a->text), buf_size(&a->text));
    jw_key(w, "refusal");
    jw_null(w);
    if (a->ncalls) {
        jw_key(w, "tool_calls");
        jw_arr_begin(w);
        for (int i = 0; i < a->ncalls; i++) {
            jw_obj_begin(w);
            jw_kstr(w, "id", a->calls[i].id);
            jw_kstr(w, "type", "function");
            jw_key(w, "function");
            jw_obj_begin(w);
            jw_kstr(w, "name", a->calls[i].name);
            jw_kstrn(w, "arguments", buf_begin(&a->calls[i].args), buf_size(&a->calls[i].args));
            jw_obj_end(w);
            jw_obj_end(w);
        }
        jw_arr_end(w);
    }
    jw_key(w, "annotations");
    jw_arr_begin(w);
    jw_arr_end(w);
    jw_obj_end(w);
}

static void oa_whole(struct sim_resp *r, struct buf *out)
{
    struct jsonw w;
    const struct sim_answer *a = r->ans;
    r->text_out = a->text_tokens;
    r->tool_out = a->tool_tokens;
    jw_init(&w, out);
    head(&w, r, "chat.completion");
    jw_key(&w, "choices");
    jw_arr_begin(&w);
    jw_obj_begin(&w);
    jw_kint(&w, "index", 0);
    whole_message(&w, r);
    jw_key(&w, "logprobs");
    jw_null(&w);
    jw_kstr(&w, "finish_reason", sim_wire_finish_name(SIM_OPENAI, a->finish));
    jw_obj_end(&w);
    jw_arr_end(&w);
    write_usage(&w, r);
    jw_obj_end(&w);
}

const struct sim_wire_ops sim_wire_openai = {
    .start = oa_start,
    .step = oa_step,
    .finish = oa_finish,
    .error_event = oa_error_event,
    .whole = oa_whole,
};
