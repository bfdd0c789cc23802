/* llm_adapter.h - private interface between llm.c (the common stream object) and the provider
 * adapters llm_openai.c, llm_anthropic.c, llm_gemini.c. Not for use outside stream/llm*.c.
 *
 * An adapter turns one SSE event (its data padded by SSE_PADDING, so simdjson parses it in place)
 * into normalized events through the llm__* emit helpers, which keep the stream's bookkeeping
 * (started, finished, sticky failure, open tool calls) in one place. */
#ifndef TRILEMMA_STREAM_LLM_ADAPTER_H
#define TRILEMMA_STREAM_LLM_ADAPTER_H

#include "stream/json.h"
#include "stream/llm.h"
#include "stream/sse.h"

#define LLM_MAX_TOOLS 128       /* tool calls in one response */
#define LLM_MAX_BLOCKS 1024     /* Anthropic content blocks in one response */
#define LLM_MAX_ARGS (4u << 20) /* bytes of one tool call's arguments (JSON_MAX_SIZE) */
#define LLM_ERRMSG_MAX 512      /* bytes of an error message kept (truncated past it) */

/* One tool call being assembled. key is the provider's own handle (OpenAI tool_calls[].index,
 * Anthropic content block index, Gemini part counter); the normalized tool_index is its ordinal
 * (order of first appearance, from 0). */
struct llm_tool_call {
    int key;
    char *id;
    char *name;
    struct buf args;
    bool ended;
};

/* Anthropic content block kinds (by block index). */
enum llm_block {
    LLM_BLOCK_NONE = 0,
    LLM_BLOCK_TEXT,
    LLM_BLOCK_TOOL,
    LLM_BLOCK_THINKING,
    LLM_BLOCK_OTHER, /* redacted_thinking, server_tool_use, ...: deltas ignored */
};

struct llm_stream {
    enum llm_provider provider;
    const struct llm_adapter *ad;
    llm_event_fn fn;
    void *ctx;
    struct sse_parser sse;
    json_doc *doc;
    int rc;             /* sticky: the callback's non-zero value, or -EPROTO after an ERROR */
    bool started;       /* a TEXT or TOOL_* event was emitted */
    bool finished;      /* the FINISH event was emitted */
    bool done;          /* the provider's terminator was seen ([DONE], message_stop, Gemini: end) */
    bool saw_candidate; /* Gemini: a frame with a candidate arrived */
    bool saw_tool;      /* a tool call was started (finish "stop" becomes "tool_calls") */
    struct llm_usage usage;
    /* Anthropic raw counters: input_tokens excludes cache reads and writes. */
    uint64_t an_input, an_cache_write, an_cache_read, an_output;
    struct llm_tool_call *tools;
    size_t n_tools;
    size_t cap_tools;
    uint8_t *blocks; /* Anthropic: enum llm_block per content block index */
    size_t cap_blocks;
    char errmsg[LLM_ERRMSG_MAX];
    char errtype[64];
};

struct llm_adapter {
    /* Handle one SSE event: 0, the callback's non-zero value, or -EPROTO. */
    int (*event)(struct llm_stream *s, const struct sse_event *ev);
    /* The body ended (s->rc is 0): complete or report an incomplete stream. */
    int (*finish)(struct llm_stream *s);
    /* The request body and path (see llm_build_request). */
    int (*request)(const struct llm_request *r, struct buf *body, char *path, size_t path_cap);
    /* From a loaded error body: message and type (pointers into the doc), and whether the body
     * says the failure is transient. Returns 0 when the body has the provider's error shape. */
    int (*error_body)(json_doc *d, const char **msg, size_t *msg_len, const char **type,
                      size_t *type_len, int *retry);
};

extern const struct llm_adapter llm__openai;
extern const struct llm_adapter llm__anthropic;
extern const struct llm_adapter llm__gemini;

/* ---- emit helpers (llm.c); each returns 0, the callback's value, or -EPROTO ---- */

int llm__emit(struct llm_stream *s, struct llm_event *ev);
int llm__text(struct llm_stream *s, enum llm_event_type type, const char *text, size_t len);
int llm__usage(struct llm_stream *s);
int llm__finish(struct llm_stream *s, const char *reason);
int llm__error(struct llm_stream *s, const char *type, const char *msg, size_t len, int status,
               bool retryable);
int llm__bad_stream(struct llm_stream *s, const char *why);

struct llm_tool_call *llm__tool_find(struct llm_stream *s, int key);
int llm__tool_start(struct llm_stream *s, int key, const char *id, size_t id_len, const char *name,
                    size_t name_len, struct llm_tool_call **out);
int llm__tool_args(struct llm_stream *s, struct llm_tool_call *t, const char *frag, size_t n);
int llm__tool_end(struct llm_stream *s, struct llm_tool_call *t, bool validate);
int llm__tools_end_all(struct llm_stream *s);

/* ---- JSON helpers ---- */

/* The non-negative integer at ptr, or 0 when it is missing, null, negative or not an integer. */
uint64_t llm__u64(json_doc *d, const char *ptr);
/* True if the value at ptr is an integer (a usage field that is present). */
bool llm__has_int(json_doc *d, const char *ptr);
/* Load an event's data in place (it carries SSE_PADDING >= JSON_PADDING bytes after it);
 * on invalid JSON emits ERROR bad_stream and returns -EPROTO. */
int llm__load_event(struct llm_stream *s, const struct sse_event *ev);
/* False only if the event's data cannot hold the member name key: "\"key\"" does not occur in
 * it. A cheap filter (memmem) before JSON Pointer lookups, each of which walks the document from
 * the root. Providers never write member names with escapes, which this would miss. */
bool llm__mentions(const struct sse_event *ev, const char *key);
/* True if s[0..n) is one JSON object. *d is created on first use; the caller destroys it. */
bool llm__is_json_object(json_doc **d, const char *s, size_t n);
/* Retryable in-stream error types (Anthropic error.type, OpenAI error.type, Gemini status). */
bool llm__type_retryable(const char *type, size_t len);

#endif
