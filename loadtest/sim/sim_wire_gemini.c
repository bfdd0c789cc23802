/* sim_wire_gemini.c - Gemini generateContent / streamGenerateContent?alt=sse.
 *
 * Stream: one `data: {GenerateContentResponse}\r\n\r\n` frame per token (CRLF line ends, as
 * Google's servers send them), each with candidates[0].content {role "model", parts [{text}]}
 * and usageMetadata carrying the counts so far (a consumer must keep the last, not add them up);
 * a function call arrives whole as one functionCall part {name, args}; the last frame carries
 * finishReason. There is no end marker: the end of the response body is the end. */
#include "loadtest/sim/sim_wire.h"

#include "stream/jsonw.h"

static void write_usage(struct jsonw *w, const struct sim_resp *r)
{
    uint32_t cand = r->text_out + r->tool_out, thoughts = r->ans->reasoning;
    jw_key(w, "usageMetadata");
    jw_obj_begin(w);
    jw_kuint(w, "promptTokenCount", r->u.prompt);
    jw_kuint(w, "candidatesTokenCount", cand);
    jw_kuint(w, "totalTokenCount", (uint64_t)r->u.prompt + cand + thoughts);
    if (r->u.cached)
        jw_kuint(w, "cachedContentTokenCount", r->u.cached);
    jw_key(w, "promptTokensDetails");
    jw_arr_begin(w);
    jw_obj_begin(w);
    jw_kstr(w, "modality", "TEXT");
    jw_kuint(w, "tokenCount", r->u.prompt);
    jw_obj_end(w);
    jw_arr_end(w);
    if (thoughts)
        jw_kuint(w, "thoughtsTokenCount", thoughts);
    jw_obj_end(w);
}

static void function_call(struct jsonw *w, const struct sim_call *c)
{
    jw_obj_begin(w);
    jw_key(w, "functionCall");
    jw_obj_begin(w);
    jw_kstr(w, "name", c->name);
    jw_key(w, "args");
    jw_raw(w, buf_begin(&c->args), buf_size(&c->args));
    jw_obj_end(w);
    jw_obj_end(w);
}

/* One GenerateContentResponse whose parts are written by the caller between open and close. */
static void resp_open(struct jsonw *w, struct buf *out)
{
    jw_init(w, out);
    jw_obj_begin(w);
    jw_key(w, "candidates");
    jw_arr_begin(w);
    jw_obj_begin(w);
    jw_key(w, "content");
    jw_obj_begin(w);
    jw_key(w, "parts");
    jw_arr_begin(w);
}

static void resp_close(struct jsonw *w, struct sim_resp *r, bool fin)
{
    jw_arr_end(w);
    jw_kstr(w, "role", "model");
    jw_obj_end(w);
    if (fin) {
        jw_kstr(w, "finishReason", sim_wire_finish_name(SIM_GEMINI, r->ans->finish));
        r->fin_sent = true;
    }
    jw_kint(w, "index", 0);
    jw_obj_end(w);
    jw_arr_end(w);
    write_usage(w, r);
    jw_kstr(w, "modelVersion", r->model);
    jw_kstr(w, "responseId", r->id);
    jw_obj_end(w);
}

static void ge_start(struct sim_resp *r, struct buf *out)
{
    (void)out;
    r->fin_sent = false;
}

static void ge_step(struct sim_resp *r, const struct sim_step *s, bool last, struct buf *out)
{
    struct jsonw w;
    const struct sim_answer *a = r->ans;
    buf_append_str(out, "data: ");
    resp_open(&w, out);
    if (s->kind == SIM_STEP_TEXT) {
        r->text_out++;
        jw_obj_begin(&w);
        jw_kstrn(&w, "text", buf_begin(&a->text) + s->off, s->len);
        jw_obj_end(&w);
    } else {
        r->tool_out += a->calls[s->call].pieces;
        function_call(&w, &a->calls[s->call]);
    }
    resp_close(&w, r, last);
    buf_append_str(out, "\r\n\r\n");
}

static void ge_finish(struct sim_resp *r, struct buf *out)
{
    struct jsonw w;
    if (r->fin_sent)
        return;
    /* Nothing carried the finish yet (an empty answer): one frame with an empty text. */
    buf_append_str(out, "data: ");
    resp_open(&w, out);
    jw_obj_begin(&w);
    jw_kstr(&w, "text", "");
    jw_obj_end(&w);
    resp_close(&w, r, true);
    buf_append_str(out, "\r\n\r\n");
}

static void ge_error_event(struct sim_resp *r, struct buf *out)
{
    (void)r;
    buf_append_str(out, "data: ");
    sim_wire_error_body(SIM_GEMINI, 503, "The model is overloaded. Please try again later.", out);
    buf_append_str(out, "\r\n\r\n");
}

static void ge_whole(struct sim_resp *r, struct buf *out)
{
    struct jsonw w;
    const struct sim_answer *a = r->ans;
    r->text_out = a->text_tokens;
    r->tool_out = a->tool_tokens;
    resp_open(&w, out);
    if (!a->ncalls) {
        jw_obj_begin(&w);
        jw_kstrn(&w, "text", buf_begin(&a->text), buf_size(&a->text));
        jw_obj_end(&w);
    }
    for (int i = 0; i < a->ncalls; i++)
        function_call(&w, &a->calls[i]);
    resp_close(&w, r, true);
}

const struct sim_wire_ops sim_wire_gemini = {
    .start = ge_start,
    .step = ge_step,
    .finish = ge_finish,
    .error_event = ge_error_event,
    .whole = ge_whole,
};
