/* guard.h - checks on a model's answer: narration of internal actions (removed from what the
 * client sees, as the answer streams), grounding of stated prices and specs in the turn's tool
 * results, refusals, and the cascade's decision to escalate.
 *
 * Pure functions over plain structs: no I/O, no allocation. */
#ifndef TRILEMMA_ORCHESTRATOR_GUARD_H
#define TRILEMMA_ORCHESTRATOR_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- narration: "I am now calling the search tool...", "Transferring you to..." ----
 *
 * A streaming filter. Text passes through at once, except a sentence that begins with one of
 * the narration leads ("let me", "i am now", "i'll", "transferring", ...): it is held until it
 * ends (. ! ? : or a newline, followed by white space, or the end of the answer), then dropped
 * when it names an internal action (a tool, function, search, transfer, agent, ...) and released
 * otherwise ("Let me know if you need more." is released whole at its end). Only sentences
 * starting with a lead are ever held, and a held sentence is released once it exceeds
 * NARR_HOLD_MAX bytes. Known weakness: narration in the middle of a sentence is not seen. */
#define NARR_HOLD_MAX 240

typedef void (*narr_emit_fn)(void *ctx, const char *text, size_t len);

struct narr_filter {
    char held[NARR_HOLD_MAX];
    size_t nheld;
    uint8_t state;    /* internal */
    bool boundary;    /* the last byte ended a sentence if white space follows */
    bool skip_space;  /* white space after a dropped sentence is dropped too */
    bool emitted;     /* anything reached the client */
    uint32_t removed; /* sentences dropped so far */
};

/* Zero-fill works too. */
void narr_init(struct narr_filter *f);
/* Filter text[0..len): what may reach the client now goes to emit(ctx, ...) (possibly several
 * calls, never with len 0). */
void narr_feed(struct narr_filter *f, const char *text, size_t len, narr_emit_fn emit, void *ctx);
/* The answer is complete: decide on what is held. */
void narr_finish(struct narr_filter *f, narr_emit_fn emit, void *ctx);
/* Whether a whole sentence is narration (exposed for tests and the trace). */
bool narr_is_narration(const char *sentence, size_t len);

/* ---- grounding: prices and specs stated in the answer against the turn's tool results ----
 *
 * Claims are numbers with a price mark (₹, Rs, INR, "rupees", "/-") or a unit (mAh, GB, TB, MP,
 * Hz, GHz, W, inch, ", mm, hours, g, kg, nits). A claim is grounded when the same number (commas
 * removed, trailing decimal zeros ignored) appears anywhere in the sources (the tool results and
 * the user's message). Numbers without such a mark ("the top 3") are not claims. */
struct grounding {
    uint32_t claims;
    uint32_t mismatches;
    char first_mismatch[48]; /* the claim as written, e.g. "₹18,999" */
};

void ground_check(const char *answer, size_t len, const char *const *sources,
                  const size_t *source_lens, size_t n_sources, struct grounding *out);

/* ---- the verified answer: a cheaper model's whole answer checked before it is shown ----
 *
 * What a route with `verify = yes` (docs/routing.md) checks before the answer of a model that is
 * not its cascade's last reaches the client:
 *   - its claims (ground_check above);
 *   - its names: every bold span (**...**) of 3..160 bytes that names a thing is the name of
 *     something the sources have (compared on letters and digits only, ASCII case folded, dashes,
 *     curly quotes, no-break spaces and "™" ignored, the sources' JSON escapes read: "Nova X 5G
 * (8GB)" matches "nova x 5g 8gb" inside a JSON string, "Café" matches "Caf\u00e9"). A span names a
 * thing when it has a digit and a word that is not a unit ("Nova X 5G"), or no digit and two or
 * more words with a capital letter in a word after the first, without a closing colon ("Zeta
 * Pro", "Apple iPhone", "This product Pro"); a single word, "really good", "Best for gaming",
 * "Key Differences:", "₹18,999" or "8 GB" does not. The name
 * ends at a price mark ("Nova X 5G - ₹18,999"): prices and specs are claims;
 *   - its format, when the route wants a table: a Markdown table (a row line starting with '|'
 *     followed by a delimiter line of '|', '-', ':' and spaces).
 * Pure: no allocation but a scratch buffer for the folded sources. */
enum verify_verdict {
    VERIFY_OK = 0,
    VERIFY_UNGROUNDED, /* a claim or a name no source has */
    VERIFY_FORMAT,     /* a table was wanted and the answer has none */
};

struct verify_result {
    struct grounding g;
    uint32_t names;         /* bold spans checked */
    uint32_t unknown_names; /* of them, not in any source */
    bool table;             /* the answer has a Markdown table */
    char first_name[64];    /* the first unknown name, cut to fit */
};

enum verify_verdict verify_answer(const char *answer, size_t len, const char *const *sources,
                                  const size_t *source_lens, size_t n_sources, bool want_table,
                                  struct verify_result *out);

/* True when text has a Markdown table (see above). */
bool answer_has_table(const char *text, size_t len);

/* ---- refusals and the cascade ---- */

/* True for an answer that is empty (only white space) or opens with a refusal ("I'm sorry,
 * but I can't", "I cannot help", "As an AI", ...). */
bool answer_is_refusal(const char *text, size_t len);

enum escalation {
    ESC_NONE = 0,
    ESC_EMPTY,             /* the model said nothing and called no tool */
    ESC_REFUSAL,           /* a refusal in the held-back opening */
    ESC_INVALID_TOOL_CALL, /* arguments failed the tool's schema, or an unknown tool */
    ESC_TOOL_FAILED,       /* a tool the model called failed (when the policy says so) */
    ESC_LOW_CONFIDENCE,    /* the classifier was unsure of the query type */
    ESC_GUARDRAIL,         /* a guardrail hit in the held-back opening */
    ESC_MODEL_ERROR,       /* the call failed after its retries and fallbacks */
    ESC_UNGROUNDED,        /* the verified answer states a claim or a name no source has */
    ESC_FORMAT,            /* the verified answer lacks the table its route wants */
    ESC__COUNT,
};

/* "none", "empty", "refusal", "invalid_tool_call", "tool_failed", "low_confidence",
 * "guardrail", "model_error", "ungrounded", "format". */
const char *escalation_name(enum escalation e);

struct cascade_policy {
    float min_confidence; /* below: start on the next model (0 = never) */
    bool on_tool_failure; /* a failed tool escalates (default off: the model is told) */
};

/* What one step of the cheap model did, as far as the plan saw before showing anything. */
struct step_outcome {
    bool shown;          /* a delta of this step reached the client: never escalate */
    const char *opening; /* the held-back opening of the answer (may be NULL) */
    size_t opening_len;
    bool answer_done;    /* the model finished its answer (not a tool step) */
    uint32_t tool_calls; /* tool calls the model made in this step */
    uint32_t invalid_tool_calls;
    uint32_t failed_tool_calls;
    bool call_failed;            /* the model call failed (after its own retries/fallbacks) */
    bool guard_hit;              /* a guardrail matched the opening */
    float classifier_confidence; /* of the turn's query type; 1 when not classified */
};

/* Whether to run the step again on the next model of the cascade, and why (the first reason that
 * applies, in the order of the enum). Never once something was shown. */
enum escalation cascade_check(const struct cascade_policy *p, const struct step_outcome *o);

#endif
