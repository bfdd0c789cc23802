/* sim_wire.h - the three providers' wire formats: streamed events, whole (non-streamed)
 * responses and error bodies, written byte-compatible with what the real APIs send.
 *
 *   OpenAI     data: {chat.completion.chunk}\n\n ... data: [DONE]\n\n
 *   Anthropic  event: NAME\ndata: {...}\n\n   message_start ... message_stop
 *   Gemini     data: {GenerateContentResponse}\r\n\r\n   (CRLF, as Google sends it)
 *
 * A writer appends complete events to a struct buf; the stream decides when each buffer leaves
 * (one HTTP chunk per call). Every JSON string goes through stream/jsonw.h. */
#ifndef TRILEMMA_SIM_WIRE_H
#define TRILEMMA_SIM_WIRE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "loadtest/sim/sim_answer.h"

/* Usage as counted by the simulator (each format reports it its own way). */
struct sim_usage {
    uint32_t prompt;      /* all prompt tokens, cached ones included */
    uint32_t cached;      /* prompt tokens of the longest prefix seen before */
    uint32_t cache_write; /* Anthropic: tokens reported as cache_creation_input_tokens */
};

/* One response being written. */
struct sim_resp {
    enum sim_format fmt;
    char id[64];
    int64_t created; /* Unix seconds */
    char model[SIM_NAME_MAX];
    bool include_usage;
    const struct sim_answer *ans;
    struct sim_usage u;
    uint32_t text_out; /* text tokens written so far */
    uint32_t tool_out; /* argument fragments written so far (Gemini: whole calls' pieces) */
    int block;         /* Anthropic: index of the open content block, -1 = none */
    int next_block;    /* Anthropic: index the next block gets */
    bool fin_sent;     /* Gemini: a frame with finishReason went out */
    uint16_t head_len; /* OpenAI: bytes of head (0 = not built, or too long to keep) */
    char head[480];    /* OpenAI: a text chunk up to the content string, built once */
};

struct sim_wire_ops {
    /* Events before the first token (role chunk, message_start + block start + ping...). */
    void (*start)(struct sim_resp *r, struct buf *out);
    /* One step; `last` when no step follows (Gemini puts finishReason on it). */
    void (*step)(struct sim_resp *r, const struct sim_step *s, bool last, struct buf *out);
    /* Events after the last step (finish reason, usage, [DONE] / message_stop). */
    void (*finish)(struct sim_resp *r, struct buf *out);
    /* An error in the middle of a stream (the stream ends after it). */
    void (*error_event)(struct sim_resp *r, struct buf *out);
    /* The whole non-streamed response body (JSON). */
    void (*whole)(struct sim_resp *r, struct buf *out);
};

extern const struct sim_wire_ops sim_wire_openai;
extern const struct sim_wire_ops sim_wire_anthropic;
extern const struct sim_wire_ops sim_wire_gemini;

/* The ops of format fmt. */
const struct sim_wire_ops *sim_wire_ops(enum sim_format fmt);

/* An error response body in fmt's shape for HTTP status (message: plain text). */
void sim_wire_error_body(enum sim_format fmt, int status, const char *message, struct buf *out);

/* Content-Type of a streamed response in fmt. */
const char *sim_wire_stream_type(enum sim_format fmt);

/* Finish reasons as each format spells them. */
const char *sim_wire_finish_name(enum sim_format fmt, enum sim_finish f);

#endif
