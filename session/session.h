/* session.h - a WebSocket connection as a chat session: the protocol of docs/protocol.md, turns,
 * limits, auth at the upgrade, and drain. Plugs into net/ through server_hooks. */
#ifndef TRILEMMA_SESSION_SESSION_H
#define TRILEMMA_SESSION_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/server.h"
#include "stream/llm.h"

struct session;
struct turn;

struct turn_usage {
    uint64_t input_tokens; /* every prompt token, cached ones included */
    uint64_t cached_input_tokens;
    uint64_t cache_write_tokens;
    uint64_t output_tokens;
    uint64_t reasoning_tokens;
};

/* What produces a turn's answer: the model relay (orchestrator/relay.c), or the built-in echo
 * responder when the model is "echo"; app/ installs one with session_set_responder. start()
 * begins producing and reports through session_turn_delta / session_turn_done; cancel() stops
 * at once, after which the responder makes no further call for that turn. */
struct responder {
    const char *name;
    /* Per-worker state, created on the worker thread (may be NULL). */
    void *(*worker_create)(struct loop *l, const struct config *conf);
    void (*worker_destroy)(void *wstate);
    int (*start)(struct turn *t, const char *text, size_t len);
    void (*cancel)(struct turn *t);
};

/* One message of the conversation so far (the turn's own user message last). */
struct history_msg {
    const char *role; /* "user" or "assistant" */
    const char *text;
    size_t len;
};

/* The hooks that make net/ speak the chat protocol. */
void session_hooks(struct server_hooks *h);

/* Turn accessors for responders. */
struct loop *turn_loop(struct turn *t);
void *turn_responder_state(struct turn *t);
void turn_set_responder_state(struct turn *t, void *state);
const struct config *turn_config(struct turn *t);
void *turn_responder_worker(struct turn *t);
/* The conversation's earlier messages (at most history_messages) and this turn's user message
 * last. Valid until the turn ends. */
size_t turn_history(struct turn *t, const struct history_msg **msgs);
/* Usage and cost so far, kept by the responder so that a cancelled turn reports them. */
void turn_set_usage(struct turn *t, const struct turn_usage *u, int64_t cost_micros);

/* One model (or echo) call of a turn, for the llm_calls table and the ledger. */
struct turn_call {
    char provider[16];
    char model[128];
    char role[16];
    char status[16];
    char error[160];
    uint32_t attempt;
    int http_status;
    struct llm_usage usage;
    bool usage_reported;
    int64_t ttft_ms;
    int64_t duration_ms;
    int64_t cost_micros;
};

/* Record one call of the turn (copied). The turn's usage and cost become the sums over its
 * calls, so the ledger (one line per call) adds up to the turn's cost by construction. */
void turn_add_call(struct turn *t, const struct turn_call *c);

/* Choose the responder of the process (before the server starts). */
void session_set_responder(const struct responder *r);

/* A piece of the answer: sent to the client now, as one delta event with the next seq. */
void session_turn_delta(struct turn *t, const char *text, size_t len);

/* The answer is complete (finish_reason "stop"/"length"/"error"). The turn is freed inside: the
 * responder must not touch t afterwards. error_code may be NULL. */
void session_turn_done(struct turn *t, const char *finish_reason, const struct turn_usage *u,
                       int64_t cost_micros, const char *error_code, const char *error_message);

/* The built-in echo responder. */
extern const struct responder echo_responder;

#endif
