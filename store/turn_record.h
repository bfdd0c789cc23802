/* turn_record.h - what one turn records about the work done for it: one line per model call (an
 * HTTP attempt: the model, a retry, a fallback, later a classifier or a judge) and one per tool
 * call. The orchestrator fills these, the session keeps them on the turn, the store writes them
 * (llm_calls / tool_calls rows and one ledger line each).
 *
 * Every field is owned (fixed arrays, no pointers), so a record is copied whole with `=` from the
 * call that made it into the turn, and the turn hands its array to the store as it is. Text that
 * does not fit is cut on a UTF-8 boundary by whoever fills it (these are labels and short
 * messages, never content). */
#ifndef TRILEMMA_STORE_TURN_RECORD_H
#define TRILEMMA_STORE_TURN_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream/llm.h"

#define TOOL_ARGS_MAX 2048 /* tool arguments kept in the record (longer ones are cut) */

/* One model call (one HTTP attempt) and its ledger line. */
struct llm_call_record {
    char provider[16]; /* "openai", "anthropic", "gemini", "echo" */
    char model[128];
    char tier[16];    /* "standard" (pay-as-you-go) or "provisioned"; "" is stored as "standard" */
    char role[16];    /* ledger kind: "model", "retry", "fallback", later "classifier", "judge" */
    char status[16];  /* "ok", "error", "cancelled" */
    char error[160];  /* "" or a short message (never a key) */
    uint32_t attempt; /* 1-based, per route */
    int http_status;  /* 0 when no response */
    struct llm_usage usage;
    bool usage_reported; /* false: the provider never said (numbers are 0) */
    int64_t ttft_ms;     /* -1 when no token */
    int64_t duration_ms;
    int64_t cost_micros;
    char agent[32];          /* the agent the call worked for; "" = none (the relay) */
    char prompt_version[16]; /* that agent's prompt version (hash of its text); "" = none */
    char deployment[32];     /* tier "provisioned": the agents file's [capacity NAME]; else "" */
};

/* One tool call made for the turn (one tool_calls row and one "tool" ledger line). */
struct tool_call_record {
    char name[64];
    char arguments[TOOL_ARGS_MAX]; /* JSON text; text that is not valid JSON (or was cut) is
                                    * stored as a JSON string; empty = "{}" */
    size_t arguments_len;
    uint64_t result_bytes;
    bool cache_hit;
    int64_t duration_ms;
    char status[16];     /* "ok", "error", "timeout", "cancelled" */
    int64_t cost_micros; /* 0 for a free tool (it still gets its ledger line) */
    bool empty;          /* answered with nothing in it (anomaly flags; not stored) */
};

/* One span of the turn's trace (trace/trace.h builds them). Unlike the records above, the
 * attributes and events are pointers: they are valid until store_commit_turn returns (it copies
 * them into the turn's record at once). */
struct span_record {
    char span_id[17];        /* 16 hex */
    char parent_span_id[17]; /* 16 hex; "" for the root span */
    char kind[12];           /* turn, classify, agent, model, tool, cache, guard, handoff */
    char name[96];
    char status[8];           /* "ok" / "error" */
    char status_message[160]; /* "" = none */
    int64_t start_us, end_us; /* unix microseconds */
    const char *attributes;   /* a JSON object */
    size_t attributes_len;
    const char *events; /* a JSON array */
    size_t events_len;
};

/* One cache hit of the turn: a "cache_saving" ledger line of what the avoided work would have
 * cost (amount <= 0: a saving, never part of the turn's cost; 0 for a free tool, still counted). */
struct cache_saving_record {
    char layer[16];        /* "exact", "semantic", "tool", "prompt" */
    char description[160]; /* what was served: "answer of specialist/..." or "tool get_policy" */
    int64_t amount_micros; /* <= 0 */
};

#endif
