/* tool_run_int.h - the tool runner's internals shared by tool_run.c and the tool cache
 * (tool_cache.c), which serves a call from its store or lets it wait for an identical call in
 * flight instead of sending it. */
#ifndef TRILEMMA_ORCHESTRATOR_TOOL_RUN_INT_H
#define TRILEMMA_ORCHESTRATOR_TOOL_RUN_INT_H

#include "orchestrator/tool_run.h"

struct tool_cache;
struct tc_flight;

/* TC_CACHED: waiting on the cache (an identical call in flight, or the shared tier's read). */
enum call_state { TC_NEW = 0, TC_SENDING, TC_BACKOFF, TC_ENDING, TC_CACHED, TC_DONE };

struct tool_runner {
    struct loop *l;
    struct hc *h;
    json_doc *doc; /* scratch for arguments and results: calls run one callback at a time */
    struct tool_runner_stats st;
    struct tool_cache *cache;  /* NULL = no tool cache */
    char traceparent[64];      /* sent with the calls started while it is set ("" = none) */
    const char (*tp_each)[56]; /* the next batch's call i sends tp_each[i] (one batch) */
    size_t n_tp_each;
};

struct tool_call {
    struct tool_runner *r;
    const struct tool_def *t; /* NULL: an unknown tool (the name is in name) */
    char name[72];
    enum call_state state;
    tool_call_fn fn;
    void *ctx;
    struct tool_result res;
    struct buf url, body, raw;
    const char *headers[TOOL_MAX_HEADERS + 4];
    char tp_header[80]; /* "traceparent: ..." when the runner had one at the start */
    struct hc_req *req;
    struct timer timer; /* backoff, or the deferred end */
    uint64_t start_ns, deadline_ms;
    bool too_large;
    /* the tool cache (tool_cache.c) */
    struct tc_flight *flight;      /* the identical calls this one leads or follows */
    struct tool_call *next_waiter; /* the flight's followers */
    bool refresh;                  /* a background refresh of a stale entry (owned by the cache) */
};

/* The deferred end (next loop turn) with status st; the text is set. */
void tool_call__end_deferred(struct tool_call *c, enum tool_status st);
/* Send the call's first attempt now; on failure the call ends on the next loop turn. */
void tool_call__send(struct tool_call *c);
/* A call of t that is not started (tool_call__begin starts it). */
struct tool_call *tool_call__new(struct tool_runner *r, const struct tool_def *t, tool_call_fn fn,
                                 void *ctx);
/* Check and build c with args, then serve it from the cache or send it. */
void tool_call__begin(struct tool_call *c, const char *args, size_t len);

#endif
