/* sim_answer.h - the answer the simulator streams for a request: text tokens, tool calls with
 * their argument fragments, reasoning, and the finish reason.
 *
 * Built once per request, deterministically from the request (struct sim_req): the same
 * conversation gives the same steps, byte for byte. A token is one word with the whitespace
 * that follows it. The stream writes one step per tick. */
#ifndef TRILEMMA_SIM_ANSWER_H
#define TRILEMMA_SIM_ANSWER_H

#include <stdint.h>

#include "base/buf.h"
#include "loadtest/sim/sim_request.h"
#include "stream/json.h"

enum { SIM_MAX_ANSWER_TOKENS = 100000 }; /* [[sim:tokens=N]] is capped here */

enum sim_step_kind {
    SIM_STEP_TEXT,       /* text[off..off+len) */
    SIM_STEP_TOOL_START, /* tool call `call` begins (Gemini: the whole call) */
    SIM_STEP_TOOL_ARG,   /* calls[call].args[off..off+len), never for Gemini */
};

struct sim_step {
    uint8_t kind;
    uint8_t call;
    uint32_t off;
    uint32_t len;
};

struct sim_call {
    char name[SIM_NAME_MAX];
    char id[48];     /* "call_..." (OpenAI), "toolu_01..." (Anthropic), "" (Gemini) */
    struct buf args; /* the arguments as one JSON object text */
    uint32_t pieces; /* argument fragments (counted as output tokens in every format) */
};

enum sim_finish { SIM_FIN_STOP, SIM_FIN_LENGTH, SIM_FIN_TOOL };

struct sim_answer {
    struct buf text;
    struct sim_step *steps;
    uint32_t nsteps;
    uint32_t cap;
    uint32_t text_tokens; /* SIM_STEP_TEXT steps */
    uint32_t tool_tokens; /* argument fragments of every call */
    uint32_t reasoning;   /* reasoning tokens reported */
    struct buf thinking;  /* Anthropic thinking text: `reasoning` words, each with a space */
    int ncalls;
    struct sim_call calls[SIM_MAX_CALLS];
    enum sim_finish finish;
};

/* Build the answer for r (doc still holds r's body: tool schemas are read from it).
 * default_tokens is the answer length when no directive sets one. */
void sim_answer_build(struct sim_answer *a, const struct sim_req *r, json_doc *doc,
                      uint32_t default_tokens);
void sim_answer_free(struct sim_answer *a);

/* Append text to a (zeroed or text-only) answer, one token per word with its trailing
 * whitespace, at most max_tokens tokens (-1 = no limit; a cut answer finishes with length). */
void sim_answer_text(struct sim_answer *a, const char *s, size_t n, int64_t max_tokens);

/* Append a call of tool `name` whose arguments are the JSON object args[0..len): its id and
 * argument fragments derive from r's conversation, like every call; the answer finishes with a
 * tool call. At most SIM_MAX_CALLS calls; further ones are dropped. */
void sim_answer_call(struct sim_answer *a, const struct sim_req *r, const char *name,
                     const char *args, size_t len);

/* An id: prefix followed by nchars base62 characters drawn from seed. */
void sim_make_id(char *out, size_t cap, const char *prefix, size_t nchars, uint64_t seed);

/* Output tokens of the whole answer: text + tool fragments + reasoning. */
static inline uint32_t sim_answer_tokens(const struct sim_answer *a)
{
    return a->text_tokens + a->tool_tokens + a->reasoning;
}

#endif
