/* llm.h - model providers behind one normalized event stream.
 *
 * A provider adapter takes the raw body bytes of a streaming response (fed as they arrive, any
 * split) and emits normalized events: text deltas, tool-call start / argument fragments / end,
 * usage, finish, error. It also builds the request body for its API and parses error bodies.
 *
 * Usage is normalized the same way for every provider:
 *   input_tokens         every prompt token, cached reads and cache writes included
 *   cached_input_tokens  prompt tokens read from the provider's cache (subset of input)
 *   cache_write_tokens   prompt tokens written to the cache (Anthropic; subset of input)
 *   output_tokens        every generated token, reasoning included
 *   reasoning_tokens     reasoning/thinking tokens (subset of output)
 * A USAGE event carries the totals known so far for the whole call (replace, never add); it may
 * come several times and before or after FINISH: keep the last one.
 *
 * Event order of a successful stream: TEXT / REASONING / TOOL_* interleaved as the provider sends
 * them, USAGE any number of times, exactly one FINISH; ERROR ends a stream (nothing follows it)
 * and can come after FINISH (a body cut before the terminator: the turn is then not complete).
 * tool_index is the call's ordinal in this response (0, 1, ... in order of TOOL_START), whatever
 * the provider numbers it; TOOL_ARGS and TOOL_END repeat tool_id and tool_name. See
 * docs/providers.md for the per-provider mapping. */
#ifndef TRILEMMA_STREAM_LLM_H
#define TRILEMMA_STREAM_LLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

enum llm_provider {
    LLM_OPENAI = 0, /* OpenAI Chat Completions and compatible servers (vLLM, llama.cpp, Ollama) */
    LLM_ANTHROPIC,  /* Anthropic Messages */
    LLM_GEMINI,     /* Gemini streamGenerateContent?alt=sse */
    LLM__COUNT,
};

/* "openai" / "anthropic" / "gemini" -> provider; returns -1 when unknown. */
int llm_provider_from_name(const char *name, size_t len);
const char *llm_provider_name(enum llm_provider p);

/* The SDK's default base URL (what *_BASE_URL replaces), without a trailing slash:
 * "https://api.openai.com/v1", "https://api.anthropic.com",
 * "https://generativelanguage.googleapis.com". NULL for an unknown provider. */
const char *llm_default_base_url(enum llm_provider p);

struct llm_usage {
    uint64_t input_tokens;
    uint64_t cached_input_tokens;
    uint64_t cache_write_tokens;
    uint64_t output_tokens;
    uint64_t reasoning_tokens;
};

enum llm_event_type {
    LLM_EV_TEXT = 1,   /* text, len: a piece of the answer */
    LLM_EV_REASONING,  /* text, len: a piece of visible reasoning/thinking (not for the user) */
    LLM_EV_TOOL_START, /* tool_index, tool_id, tool_name */
    LLM_EV_TOOL_ARGS,  /* tool_index, text, len: a fragment of the JSON arguments */
    LLM_EV_TOOL_END,   /* tool_index, text, len: the complete JSON arguments ("{}" if none) */
    LLM_EV_USAGE,      /* usage: totals so far */
    LLM_EV_FINISH,     /* finish: "stop", "length", "tool_calls", "content_filter" */
    LLM_EV_ERROR,      /* error_type, text/len: message; http_status when known; retryable */
};

struct llm_event {
    enum llm_event_type type;
    const char *text;
    size_t len;
    int tool_index;
    const char *tool_id;
    const char *tool_name;
    struct llm_usage usage;
    const char *finish;
    const char
        *error_type; /* e.g. "overloaded_error", "rate_limit", "server_error", "bad_stream" */
    int http_status;
    bool retryable;
};

/* Return 0 to go on; non-zero stops the stream (llm_stream_feed returns it). */
typedef int (*llm_event_fn)(void *ctx, const struct llm_event *ev);

struct llm_stream;

/* A parser for one streaming response of provider p. Events go to fn(ctx, ev); pointers in an
 * event are valid only during the call. */
struct llm_stream *llm_stream_create(enum llm_provider p, llm_event_fn fn, void *ctx);
void llm_stream_destroy(struct llm_stream *s);

/* Feed response body bytes as they arrive (2xx bodies only: use llm_parse_error otherwise).
 * Returns 0, the callback's non-zero value, or -EPROTO when the stream is malformed (an
 * LLM_EV_ERROR with error_type "bad_stream" is emitted first) or reported an error in-band (the
 * LLM_EV_ERROR carries the provider's type, e.g. "overloaded_error"). Any non-zero result is
 * sticky: later feed/finish calls return it again and emit nothing. */
int llm_stream_feed(struct llm_stream *s, const char *bytes, size_t len);

/* The body ended cleanly (call it only when the transfer completed; a transport failure is the
 * caller's own error). Completes what the provider leaves implicit (Gemini: the end is the
 * finish; pending tool calls are ended). A stream that ends before its provider's terminator
 * (OpenAI "[DONE]", Anthropic "message_stop", or for Gemini: no candidate at all) emits
 * LLM_EV_ERROR "incomplete_stream" (retryable) and returns -EPROTO. Returns 0 otherwise. */
int llm_stream_finish(struct llm_stream *s);

/* True once any LLM_EV_TEXT / TOOL_* event was emitted (retries are allowed only before). */
bool llm_stream_started(const struct llm_stream *s);

/* True once the provider's terminator was seen (OpenAI "[DONE]", Anthropic "message_stop"; Gemini
 * has none: after llm_stream_finish). The turn may end then without waiting for the body's end. */
bool llm_stream_done(const struct llm_stream *s);

/* ---- requests ---- */

/* One tool call the model made, sent back in the assistant message that made it. */
struct llm_msg_tool_call {
    const char *id;        /* the provider's call id (Gemini: not sent, calls match by name) */
    const char *name;      /* the tool's name */
    const char *arguments; /* a JSON object's text as the model wrote it; NULL or "" = {} */
    size_t arguments_len;
};

/* The first three fields are the whole of a plain message (other code builds messages with
 * positional initializers {role, content, len}); the rest are zero for a plain message.
 *   role "assistant" with n_tool_calls > 0: a model turn that called tools (content may be
 *     empty: the text it wrote before the calls, if any);
 *   role "tool": the result of one call: tool_call_id and tool_name name the call, content is
 *     the result text given to the model, is_error marks a failure (its reason in content).
 * Consecutive "tool" messages are the results of one assistant turn's calls: Anthropic gets them
 * as one user message of tool_result blocks, Gemini as one user content of functionResponse
 * parts, OpenAI as one "tool" message each. */
struct llm_message {
    const char *role; /* "system", "user", "assistant", "tool" */
    const char *content;
    size_t len;
    const struct llm_msg_tool_call *tool_calls; /* assistant only */
    size_t n_tool_calls;
    const char *tool_call_id; /* tool only */
    const char *tool_name;    /* tool only */
    bool is_error;            /* tool only */
};

struct llm_tool {
    const char *name;
    const char *description;
    const char *parameters_json; /* a JSON Schema object */
};

struct llm_request {
    const char *model;
    const struct llm_message *messages;
    size_t n_messages;
    const struct llm_tool *tools;
    size_t n_tools;
    uint32_t max_tokens; /* 0 = provider default (Anthropic requires one: 1024 then) */
    double temperature;  /* < 0 = not sent */
    /* NULL or "" = not sent (the provider's default, "auto"); "auto", "none", "required" (some
     * tool must be called), or a tool's name (that tool must be called). Sent only with tools:
     * OpenAI tool_choice, Anthropic tool_choice {type: auto|none|any|tool}, Gemini
     * toolConfig.functionCallingConfig {mode: AUTO|NONE|ANY, allowedFunctionNames}. */
    const char *tool_choice;
    /* Provider prompt caching (docs/providers.md "Prompt caching"). The stable prefix of a request
     * is its tools and its FIRST system message (an agent's prompt); later system messages (notes
     * that change per turn) and the conversation follow it.
     *   cache_key     OpenAI `prompt_cache_key` (e.g. "agent:prompt_version"): requests with the
     *                 same key and prefix are routed to the same cache; NULL or "" = not sent.
     *                 Ignored by Anthropic and Gemini (Gemini caches implicitly).
     *   cache_prefix  Anthropic: `cache_control: {"type": "ephemeral"}` (5 minutes) on the last
     *                 tool and on the first system block (system is then sent as an array of
     *                 text blocks, one per system message). Ignored by OpenAI and Gemini.
     *   cache_history with cache_prefix, Anthropic: one more breakpoint on the last message when
     *                 it is plain text, for a conversation sent whole each turn (the next turn
     *                 reads this one's prompt; writes cost 1.25x input, so only then). */
    const char *cache_key;
    bool cache_prefix;
    bool cache_history;
};

/* Build the HTTP request for provider p: the JSON body (appended to body) and the path to append
 * to the base URL (into path[path_cap], NUL-terminated). Base URLs follow each SDK's convention
 * (see llm_default_base_url; strip a trailing '/' before appending):
 *   OpenAI     base includes "/v1"   path "/chat/completions"
 *   Anthropic  base without version  path "/v1/messages"
 *   Gemini     base without version  path "/v1beta/models/MODEL:streamGenerateContent?alt=sse"
 * The method is POST with "Content-Type: application/json" (added by the caller) plus the lines
 * of llm_auth_headers. OpenAI requests always carry stream_options.include_usage; system
 * messages go to Anthropic's top-level "system" and Gemini's "systemInstruction". Tool
 * parameters_json is inserted as is and must be valid JSON (checked when the configuration is
 * loaded). Tool calls and results are written in each provider's shape (see llm_message and
 * docs/tools.md); a tool call's arguments must be a JSON object (they are inserted as a value for
 * Anthropic and Gemini). Returns 0, -EINVAL (no model, no message, an unknown role, a tool
 * without a name, tool calls on a message that is not the assistant's, a call without id or name
 * or whose arguments are not a JSON object, a tool message without tool_call_id or tool_name, a
 * tool_choice naming no tool of the request; Anthropic and Gemini: only system messages), or
 * -ENOSPC (path_cap too small). On error body is unchanged. */
int llm_build_request(enum llm_provider p, const struct llm_request *r, struct buf *body,
                      char *path, size_t path_cap);

/* The header carrying the key: "Authorization: Bearer K" (OpenAI), "x-api-key: K" plus
 * "anthropic-version: 2023-06-01" (Anthropic), "x-goog-api-key: K" (Gemini). Writes up to
 * two NUL-terminated lines into out; returns how many. A NULL or empty key writes no key line
 * (Anthropic still gets its version line). -EINVAL for an unknown provider or a key containing
 * CR/LF or too long for a line (out is zeroed then). Never logs the key. */
int llm_auth_headers(enum llm_provider p, const char *key, char out[2][512]);

/* Turn a non-2xx response (status, JSON or text body) into an LLM_EV_ERROR event. text (the
 * provider's message, credential-looking words redacted, or "HTTP <status>" for a body without
 * the provider's error shape) and error_type (the body's type/status, else derived from the
 * status: "rate_limit" 429, "overloaded" 503/529, "auth" 401/403, "bad_request" 400/404/422,
 * "timeout" 408, "server_error" other 5xx, "http_error") point into thread-local buffers valid
 * until the next call on the same thread. retryable: 408, 409, 429, 500-599 (incl. Anthropic
 * 529), and Anthropic "overloaded_error"; not OpenAI "insufficient_quota". */
void llm_parse_error(enum llm_provider p, int status, const char *body, size_t len,
                     struct llm_event *ev);

#endif
