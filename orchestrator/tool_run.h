/* tool_run.h - making tool calls on the worker's curl multi (stream/http_client.h).
 *
 * A call: check the arguments (an invalid call is never sent), build the request, run it within
 * the tool's timeout_ms (one deadline for the whole call, retries included), retry a retryable
 * failure (connect error, broken connection, 5xx, 429, 408) up to the tool's retries with a short
 * backoff while time remains, then shape the result. Every outcome is a status and a text for
 * the model: the shaped result, or the failure's reason. Nothing is papered over.
 *
 * A batch: all tool calls of one model response started at once, reported once when the last
 * one ends, so a step waits for the slowest call, never the sum.
 *
 * Completions always arrive from the loop (never from inside a start function), on the worker
 * thread. Cancelling aborts the transfers at once and reports nothing afterwards. */
#ifndef TRILEMMA_ORCHESTRATOR_TOOL_RUN_H
#define TRILEMMA_ORCHESTRATOR_TOOL_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "net/loop.h"
#include "orchestrator/tool.h"
#include "stream/http_client.h"

enum tool_status {
    TOOL_RUNNING = 0,
    TOOL_OK,           /* a 2xx answer, shaped */
    TOOL_ERROR,        /* non-2xx after retries, transport failure, result too large */
    TOOL_TIMEOUT,      /* timeout_ms passed */
    TOOL_INVALID_ARGS, /* refused before any request: unknown tool, arguments against the schema */
    TOOL_CANCELLED,
    TOOL__NSTATUS,
};

/* "running", "ok", "error", "timeout", "invalid_arguments", "cancelled". */
const char *tool_status_name(enum tool_status s);

struct tool_result {
    enum tool_status status;
    int http_status;     /* of the last attempt; 0 = no answer */
    uint32_t attempts;   /* requests sent (0 for invalid arguments) */
    uint64_t latency_us; /* start to end, retries included */
    size_t raw_bytes;    /* body bytes received (last attempt) */
    size_t shaped_bytes; /* bytes of text when ok */
    struct buf text;     /* for the model: the shaped result, or the failure's reason */
    bool cache_hit;      /* served by the tool cache (its store, or an identical call's request) */
    bool stale;          /* ... past its TTL, within the staleness bound (a refresh is under way) */
};

/* The worker's tool runner: the loop (timers), the HTTP client, and counters. */
struct tool_runner;

struct tool_runner_stats {
    uint64_t calls[TOOL__NSTATUS]; /* ended calls by status */
    uint64_t attempts;             /* requests sent, retries included */
    uint64_t retries;
};

/* h must belong to l's worker; both outlive the runner. Returns NULL on failure. */
struct tool_runner *tool_runner_create(struct loop *l, struct hc *h);
/* Every call and batch must have been freed first (and the cache destroyed before the runner:
 * tool_cache_destroy). */
void tool_runner_destroy(struct tool_runner *r);
/* Serve calls of tools with a cache_ttl_s through tc (tool_cache.h); NULL = none. */
struct tool_cache;
void tool_runner_set_cache(struct tool_runner *r, struct tool_cache *tc);
void tool_runner_stats(const struct tool_runner *r, struct tool_runner_stats *out);
/* The W3C traceparent value the calls started from now on send ("" or NULL: none); a call
 * keeps the one it started with through its retries. */
void tool_runner_set_traceparent(struct tool_runner *r, const char *tp);
/* The next tool_batch_start only: its call i sends tps[i] (i < n; the others the runner's).
 * tps must stay valid until that call returns. */
void tool_runner_set_traceparents(struct tool_runner *r, const char (*tps)[56], size_t n);

/* ---- one call ---- */

struct tool_call;
typedef void (*tool_call_fn)(void *ctx, struct tool_call *c);

/* Start a call of t with the model's arguments (JSON text, copied; NULL or "" = {}). fn(ctx, c)
 * runs once when it ends (from the loop; it may free c). Never NULL: a call that cannot start
 * ends with its reason. The caller frees it (tool_call_free) after fn or after cancelling. */
struct tool_call *tool_call_start(struct tool_runner *r, const struct tool_def *t, const char *args,
                                  size_t len, tool_call_fn fn, void *ctx);

/* Abort the call at once (its transfer too): status cancelled, fn is not called afterwards. A
 * call that already ended keeps its result. */
void tool_call_cancel(struct tool_call *c);
const struct tool_result *tool_call_result(const struct tool_call *c);
/* The body of the call's last answer as received, before shaping (for what the client is shown,
 * e.g. product pictures the model does not need). Valid until the call is freed. */
const char *tool_call_raw(const struct tool_call *c, size_t *len);
/* Free c; a running call is cancelled first. NULL is a no-op. */
void tool_call_free(struct tool_call *c);

/* ---- a batch: the tool calls of one model response ---- */

struct tool_batch;
typedef void (*tool_batch_fn)(void *ctx, struct tool_batch *b);

/* Start calls[0..n) at once, each looked up by name in ts (an unknown name ends as
 * invalid_arguments). fn(ctx, b) runs once, from the loop, when every call has ended (it may
 * free b). The caller frees b after fn or after cancelling. n may be 0 (fn still runs). */
struct tool_batch *tool_batch_start(struct tool_runner *r, const struct tool_set *ts,
                                    const struct llm_msg_tool_call *calls, size_t n,
                                    tool_batch_fn fn, void *ctx);
/* Cancel every call still running (transfers aborted at once); fn is not called afterwards. */
void tool_batch_cancel(struct tool_batch *b);
size_t tool_batch_count(const struct tool_batch *b);
/* The i-th call's result, in the order of calls. */
const struct tool_result *tool_batch_result(const struct tool_batch *b, size_t i);
/* The i-th call's unshaped answer (tool_call_raw). */
const char *tool_batch_raw(const struct tool_batch *b, size_t i, size_t *len);
/* Free b and its calls (running ones are cancelled). NULL is a no-op. */
void tool_batch_free(struct tool_batch *b);

#endif
