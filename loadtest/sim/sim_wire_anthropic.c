/* sim_wire_anthropic.c - Anthropic Messages: streamed events and the whole Message object.
 *
 * Stream: message_start (usage: input_tokens excludes cache reads and writes, output_tokens 1),
 * an optional thinking block (thinking_delta pieces, then a signature_delta), a text block
 * (content_block_start, ping, one text_delta per token, content_block_stop), tool_use blocks
 * (content_block_start with input {}, an empty input_json_delta, then one input_json_delta per
 * argument fragment), message_delta (stop_reason, cumulative output_tokens), message_stop.
 * A mid-stream failure is an `error` event (overloaded_error). */
#include "loadtest/sim/sim_wire.h"

#include "stream/jsonw.h"

enum { THINKING_WORDS_PER_DELTA = 8 };

/* "event: NAME\ndata: " and a writer positioned for the JSON; end with ev_close. */
static void ev_open(struct jsonw *w, const char *name, struct buf *out)
{
    buf_printf(out, "event: %s\ndata: ", name);
    jw_init(w, out);
    jw_obj_begin(w);
    jw_kstr(w, "type", name);
}

static void ev_close(struct jsonw *w, struct buf *out)
{
    jw_obj_end(w);
    buf_append_str(out, "\n\n");
}

static uint32_t output_tokens(const struct sim_resp *r)
{
    return r->text_out + r->tool_out + r->ans->reasoning;
}

static uint32_t input_tokens(const struct sim_resp *r)
{
    return r->u.prompt - r->u.cached - r->u.cache_write;
}

static void block_start(struct sim_resp *r, const char *type, const struct sim_call *c,
                        struct buf *out)
{
    struct jsonw w;
    r->block = r->next_block++;
    ev_open(&w, "content_block_start", out);
    jw_kint(&w, "index", r->block);
    jw_key(&w, "content_block");
    jw_obj_begin(&w);
    jw_kstr(&w, "type", type);
    if (c) {
        jw_kstr(&w, "id", c->id);
        jw_kstr(&w, "name", c->name);
        jw_key(&w, "input");
        jw_obj_begin(&w);
        jw_obj_end(&w);
    } else {
        jw_kstr(&w, type[0] == 't' && type[1] == 'h' ? "thinking" : "text", "");
    }
    jw_obj_end(&w);
    ev_close(&w, out);
}

static void block_stop(struct sim_resp *r, struct buf *out)
{
    struct jsonw w;
    if (r->block < 0)
        return;
    ev_open(&w, "content_block_stop", out);
    jw_kint(&w, "index", r->block);
    ev_close(&w, out);
    r->block = -1;
}

/* A content_block_delta of `type` whose payload member `key` is s[0..n). */
static void block_delta(struct sim_resp *r, const char *type, const char *key, const char *s,
                        size_t n, struct buf *out)
{
    struct jsonw w;
    ev_open(&w, "content_block_delta", out);
    jw_kint(&w, "index", r->block);
    jw_key(&w, "delta");
    jw_obj_begin(&w);
    jw_kstr(&w, "type", type);
    jw_kstrn(&w, key, s, n);
    jw_obj_end(&w);
    ev_close(&w, out);
}

static void ping(struct buf *out)
{
    buf_append_str(out, "event: ping\ndata: {\"type\": \"ping\"}\n\n");
}

static void message_start(struct sim_resp *r, struct buf *out)
{
    struct jsonw w;
    ev_open(&w, "message_start", out);
    jw_key(&w, "message");
    jw_obj_begin(&w);
    jw_kstr(&w, "id", r->id);
    jw_kstr(&w, "type", "message");
    jw_kstr(&w, "role", "assistant");
    jw_kstr(&w, "model", r->model);
    jw_key(&w, "content");
    jw_arr_begin(&w);
    jw_arr_end(&w);
    jw_key(&w, "stop_reason");
    jw_null(&w);
    jw_key(&w, "stop_sequence");
    jw_null(&w);
    jw_key(&w, "usage");
    jw_obj_begin(&w);
    jw_kuint(&w, "input_tokens", input_tokens(r));
    jw_kuint(&w, "cache_creation_input_tokens", r->u.cache_write);
    jw_kuint(&w, "cache_read_input_tokens", r->u.cached);
    jw_kuint(&w, "output_tokens", 1);
    jw_obj_end(&w);
    jw_obj_end(&w);
    ev_close(&w, out);
}

/* The thinking block: the reasoning words in deltas of a few words, then a signature. */
static void thinking_block(struct sim_resp *r, struct buf *out)
{
    const struct buf *t = &r->ans->thinking;
    const char *s = buf_begin(t), *end = s + buf_size(t);
    block_start(r, "thinking", NULL, out);
    while (s < end) {
        const char *e = s;
        for (int words = 0; e < end && words < THINKING_WORDS_PER_DELTA; e++)
            if (*e == ' ')
                words++;
        block_delta(r, "thinking_delta", "thinking", s, (size_t)(e - s), out);
        s = e;
    }
    block_delta(r, "signature_delta", "signature", "c2ltdWxhdGVkLXRoaW5raW5nLXNpZ25hdHVyZQ==", 40,
                out);
    block_stop(r, out);
}

static void an_start(struct sim_resp *r, struct buf *out)
{
    r->block = -1;
    r->next_block = 0;
    message_start(r, out);
    if (r->ans->reasoning)
        thinking_block(r, out);
    if (!r->ans->ncalls)
        block_start(r, "text", NULL, out);
    ping(out);
}

static void an_step(struct sim_resp *r, const struct sim_step *s, bool last, struct buf *out)
{
    (void)last;
    const struct sim_answer *a = r->ans;
    if (s->kind == SIM_STEP_TEXT) {
        block_delta(r, "text_delta", "text", buf_begin(&a->text) + s->off, s->len, out);
        r->text_out++;
    } else if (s->kind == SIM_STEP_TOOL_START) {
        block_stop(r, out);
        block_start(r, "tool_use", &a->calls[s->call], out);
        block_delta(r, "input_json_delta", "partial_json", "", 0, out);
    } else {
        block_delta(r, "input_json_delta", "partial_json",
                    buf_begin(&a->calls[s->call].args) + s->off, s->len, out);
        r->tool_out++;
    }
}

static void an_finish(struct sim_resp *r, struct buf *out)
{
    struct jsonw w;
    block_stop(r, out);
    ev_open(&w, "message_delta", out);
    jw_key(&w, "delta");
    jw_obj_begin(&w);
    jw_kstr(&w, "stop_reason", sim_wire_finish_name(SIM_ANTHROPIC, r->ans->finish));
    jw_key(&w, "stop_sequence");
    jw_null(&w);
    jw_obj_end(&w);
    jw_key(&w, "usage");
    jw_obj_begin(&w);
    jw_kuint(&w, "output_tokens", output_tokens(r));
    jw_obj_end(&w);
    ev_close(&w, out);
    buf_append_str(out, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
}

static void an_error_event(struct sim_resp *r, struct buf *out)
{
    (void)r;
    buf_append_str(out, "event: error\ndata: ");
    sim_wire_error_body(SIM_ANTHROPIC, 529, "Overloaded", out);
    buf_append_str(out, "\n\n");
}

static void whole_content(struct jsonw *w, const struct sim_answer *a)
{
    jw_key(w, "content");
    jw_arr_begin(w);
    if (a->reasoning) {
        jw_obj_begin(w);
        jw_kstr(w, "type", "thinking");
        jw_kstrn(w, "thinking", buf_begin(&a->thinking), buf_size(&a->thinking));
        jw_kstr(w, "signature", "c2ltdWxhdGVkLXRoaW5raW5nLXNpZ25hdHVyZQ==");
        jw_obj_end(w);
    }
    if (!a->ncalls) {
        jw_obj_begin(w);
        jw_kstr(w, "type", "text");
        jw_kstrn(w, "text", buf_begin(&a->text), buf_size(&a->text));
        jw_obj_end(w);
    }
    for (int i = 0; i < a->ncalls; i++) {
        jw_obj_begin(w);
        jw_kstr(w, "type", "tool_use");
        jw_kstr(w, "id", a->calls[i].id);
        jw_kstr(w, "name", a->calls[i].name);
        jw_key(w, "input");
        jw_raw(w, buf_begin(&a->calls[i].args), buf_size(&a->calls[i].args));
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

static void an_whole(struct sim_resp *r, struct buf *out)
{
    struct jsonw w;
    const struct sim_answer *a = r->ans;
    r->text_out = a->text_tokens;
    r->tool_out = a->tool_tokens;
    jw_init(&w, out);
    jw_obj_begin(&w);
    jw_kstr(&w, "id", r->id);
    jw_kstr(&w, "type", "message");
    jw_kstr(&w, "role", "assistant");
    jw_kstr(&w, "model", r->model);
    whole_content(&w, a);
    jw_kstr(&w, "stop_reason", sim_wire_finish_name(SIM_ANTHROPIC, a->finish));
    jw_key(&w, "stop_sequence");
    jw_null(&w);
    jw_key(&w, "usage");
    jw_obj_begin(&w);
    jw_kuint(&w, "input_tokens", input_tokens(r));
    jw_kuint(&w, "cache_creation_input_tokens", r->u.cache_write);
    jw_kuint(&w, "cache_read_input_tokens", r->u.cached);
    jw_kuint(&w, "output_tokens", output_tokens(r));
    jw_obj_end(&w);
    jw_obj_end(&w);
}

const struct sim_wire_ops sim_wire_anthropic = {
    .start = an_start,
    .step = an_step,
    .finish = an_finish,
    .error_event = an_error_event,
    .whole = an_whole,
};
