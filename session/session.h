/* session.h - a WebSocket connection as a chat session: the protocol of docs/protocol.md, turns,
 * limits, auth at the upgrade, and drain. Plugs into net/ through server_hooks. */
#ifndef TRILEMMA_SESSION_SESSION_H
#define TRILEMMA_SESSION_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app/config.h" /* known weakness: session/ still reads the application's config */
#include "net/server.h"
#include "store/turn_record.h"
#include "stream/llm.h"

struct session;
struct turn;
struct hc;
struct trace;

/* What produces a turn's answer: the orchestrator's turn plan (orchestrator/turn_plan.h) or the
 * built-in echo. start() begins producing and reports through session_turn_delta /
 * turn_add_call / session_turn_done; cancel() stops at once and records what was done (calls
 * cut short included), after which the responder makes no further call for that turn. */
struct responder {
    const char *name;
    void *arg; /* the responder's process-wide state, handed to worker_create (may be NULL) */
    /* Per-worker state, created on the worker thread (may be NULL). */
    void *(*worker_create)(void *arg, struct loop *l, const struct config *conf);
    void (*worker_destroy)(void *wstate);
    int (*start)(struct turn *t, const char *text, size_t len);
    void (*cancel)(struct turn *t);
    /* Append the responder's Prometheus metrics to out (may be NULL; any thread). */
    void (*metrics)(void *arg, struct buf *out);
    /* The worker's HTTP client, for the trace exporter (NULL or returning NULL: none). */
    struct hc *(*worker_hc)(void *wstate);
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
/* The turn's trace (trace/trace.h), or NULL when tracing is off: every trace_* call takes it. */
struct trace *turn_trace(struct turn *t);
/* The conversation's earlier messages (at most history_messages) and this turn's user message
 * last. Valid until the turn ends. */
size_t turn_history(struct turn *t, const struct history_msg **msgs);

/* Record one model call of the turn (copied whole): an llm_calls row and a ledger line. The
 * turn's usage and cost are the sums over its calls, so the ledger adds up to the turn's cost by
 * construction. A responder records every call it made, cancelled ones included, before the
 * turn ends (session_turn_done, or its cancel() returning). */
void turn_add_call(struct turn *t, const struct llm_call_record *c);

/* Record one tool call of the turn (copied): a tool_calls row and a "tool" ledger line. */
void turn_add_tool(struct turn *t, const struct tool_call_record *c);

/* Record a cache hit's saving (copied): a "cache_saving" ledger line, never part of the turn's
 * cost (docs/caching.md). */
void turn_add_saving(struct turn *t, const struct cache_saving_record *s);

/* The cache layer that served the turn's answer ("exact", "semantic"; copied): turn_end's
 * "cache" member (null when none did). */
void turn_set_cache(struct turn *t, const char *layer);

/* The worker's store (NULL when no database is configured), for the cache layers' shared tier. */
struct store *turn_store(struct turn *t);

/* The turn's flags so far (turn_add_flag), n of them. */
const char (*turn_flags(struct turn *t, uint32_t *n))[32];

/* What the plan decided for the turn: its query type and the agent that answered (copied; sent
 * in turn_end as "route"). */
void turn_set_route(struct turn *t, const char *query_type, const char *agent);

/* Flag the turn (copied; sent in turn_end as "flags"): e.g. "ungrounded_number",
 * "narration_removed", "escalated". Duplicates are ignored; at most TURN_MAX_FLAGS are kept. */
#define TURN_MAX_FLAGS 8
void turn_add_flag(struct turn *t, const char *flag);

/* Work in progress before the answer: a status event (docs/protocol.md) with stage
 * "classifying", "searching", "calling_tool" or "answering"; tool names the tool (NULL = none).
 * Not sent once a delta was sent, nor twice in a row with the same stage and tool. */
void session_turn_status(struct turn *t, const char *stage, const char *tool);

/* A product slate for the answer: items_json is the text of a JSON array of product objects
 * (docs/protocol.md), sent as the event's "items" as it is. At most one per turn; not sent once
 * a delta was sent. */
void session_turn_products(struct turn *t, const char *items_json, size_t len);

/* A note the responder keeps for the session between its turns (e.g. the last product slate,
 * for "the second one"), at most TURN_MEMO_MAX bytes, copied. Kept in this process only: a
 * client that reconnects elsewhere starts without it. turn_memo returns NULL (len 0) when there is
 * none or the client has left. */
#define TURN_MEMO_MAX 16384
const void *turn_memo(struct turn *t, size_t *len);
void turn_set_memo(struct turn *t, const void *p, size_t len);

/* The process-wide per-user turn limits ([session] max_turns_per_user ...; guard.c): made before
 * the server starts, freed after it stopped. Without them every turn is admitted. */
void session_limits_init(const struct config *conf);
void session_limits_fini(void);

/* Choose the responder of the process (before the server starts). */
void session_set_responder(const struct responder *r);

/* The live pod count (issue 15; docs/routing.md, "Capacity tiers"): with a database, worker 0
 * beats the store's heartbeat when it starts and every refresh_ms, and calls fn(ctx, pods >= 1)
 * on its thread with each count read (nothing when a beat fails). Call before the server
 * starts; without it (or without a database) nothing beats. */
typedef void (*session_pods_fn)(void *ctx, int pods);
void session_pods_watch(session_pods_fn fn, void *ctx, uint32_t refresh_ms);

/* A piece of the answer: sent to the client now, as one delta event with the next seq. */
void session_turn_delta(struct turn *t, const char *text, size_t len);

/* The answer is complete (finish_reason "stop"/"length"/"error"); usage and cost are the sums
 * over the calls recorded with turn_add_call. The turn is freed inside: the responder must not
 * touch t afterwards. error_code may be NULL (else an error event goes out before turn_end). */
void session_turn_done(struct turn *t, const char *finish_reason, const char *error_code,
                       const char *error_message);

/* The built-in echo responder. */
extern const struct responder echo_responder;

#endif
