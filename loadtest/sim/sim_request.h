/* sim_request.h - what the simulator reads from a provider request: the conversation (hashed and
 * counted in tokens, with one hash per message prefix for the cache model), the last user text
 * and its [[sim:...]] directives, the tools on offer, and the generation options.
 *
 * The three request shapes (OpenAI messages, Anthropic messages + system, Gemini contents +
 * systemInstruction) are reduced to the same model, so one conversation sent in any format gets
 * the same answer. */
#ifndef TRILEMMA_SIM_REQUEST_H
#define TRILEMMA_SIM_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "loadtest/sim/sim.h"
#include "stream/json.h"

enum {
    SIM_MAX_TOOLS = 64,
    SIM_MAX_CALLS = 4,  /* tool calls in one answer ([[sim:tool=X]] repeated) */
    SIM_NAME_MAX = 128, /* tool and model names (longer ones are cut) */
    SIM_PTR_MAX = 160,  /* JSON Pointer to a tool's parameter properties */
};

/* Directives found in the last user text message; -1 = not given. */
struct sim_directives {
    bool echo;
    int64_t tokens, ttft_ms, tps, status, fail_first, reasoning;
    int64_t disconnect_after, stall_after, error_event_after;
    bool hold_open;                         /* keep the body open after the closing events */
    int ntool;                              /* [[sim:tool=NAME]] occurrences */
    char tool[SIM_MAX_CALLS][SIM_NAME_MAX]; /* "" = [[sim:tool]] without a name */
};

struct sim_tool {
    char name[SIM_NAME_MAX];
    char props[SIM_PTR_MAX]; /* pointer to the JSON Schema "properties" object, "" if none */
};

struct sim_req {
    enum sim_format fmt;
    char model[SIM_NAME_MAX];
    bool stream;
    bool include_usage; /* OpenAI stream_options.include_usage */
    bool cache_control; /* Anthropic: "cache_control" appears in the request */
    int64_t max_tokens; /* -1 = none */

    uint32_t nmsgs;          /* messages, a system prompt counted as one */
    uint64_t conv_hash;      /* roles and texts of every message: seeds the answer */
    uint32_t prompt_tokens;  /* words of every message + 4 per message */
    uint64_t *prefix_hash;   /* [nmsgs]: messages 0..i (format and model included) */
    uint32_t *prefix_tokens; /* [nmsgs]: prompt tokens of messages 0..i */
    bool *prefix_bp;         /* [nmsgs]: message i carries a cache_control (Anthropic breakpoint) */
    uint64_t cache_scope;    /* what else a cached prefix must share: the tools on offer and
                              * OpenAI's prompt_cache_key (the server adds the API key) */

    bool last_is_user_text; /* the final message is a user message with text (no tool result) */
    struct buf last_text;   /* text of the last user text message, directives included */
    struct buf echo_text;   /* the same without directives */
    struct buf system_text; /* the system prompt's text (instructions the agents honour) */
    struct sim_directives d;

    uint32_t ntools;
    struct sim_tool *tools; /* [ntools] */
    int tool_choice;        /* 0 auto, -1 none, 1 must call */
    char forced_tool[SIM_NAME_MAX];
};

/* Parse the request body (already loaded into doc) for format fmt. For Gemini, model and stream
 * come from the path and are set by the caller before the call. Returns 0, or -EINVAL with a
 * message for a 400 in *err (static text). Free with sim_req_free in every case. */
int sim_req_parse(struct sim_req *r, json_doc *doc, const char *body, size_t len, const char **err);
void sim_req_free(struct sim_req *r);

/* Parse the directives in text and write the text without them to stripped (each directive
 * goes with the whitespace right after it). Exposed for tests of the rule. */
void sim_directives_parse(const char *text, size_t len, struct sim_directives *d,
                          struct buf *stripped);

/* Number of words (maximal runs of non-whitespace) in s[0..n). */
uint32_t sim_count_words(const char *s, size_t n);

#endif
