/* capacity.h - this pod's share of the provisioned deployments (docs/routing.md, "Capacity
 * tiers"), process-wide: the workers share one tracker.
 *
 * A deployment's capacity (tokens per minute, concurrent streams) is bought for the whole
 * service; each pod takes capacity / live pods of it (streams at least 1), and the share follows
 * the pod count (capacity_set_pods). A step of a model with a deployment asks for room first
 * (capacity_admit): its estimated tokens (the request's text / 4 + max_tokens) plus the tokens
 * the deployment served in the last 60 s plus the reservations in flight must fit the share, and
 * a stream must be free. Admitted, the step's routes are [provisioned, standard]; refused, they
 * are [standard] (an overflow, reason "full"). When the call ends (any outcome, cancel included)
 * capacity_complete replaces the reservation with what the provisioned attempts used and frees
 * the stream, exactly once.
 *
 * The arithmetic (share, the 60 s window, the admission decision) is pure and takes the clock as
 * an argument, so tests drive it with their own time. Each deployment has a mutex: an admission
 * and a completion each take it once. Known weakness: a pod knows only its own traffic; the
 * shares add up to the capacity only when the pod count is right (the store's heartbeat), and a
 * provisioned 429 (the deployment was full after all) overflows that call but does not shrink
 * the share. */
#ifndef TRILEMMA_ORCHESTRATOR_CAPACITY_H
#define TRILEMMA_ORCHESTRATOR_CAPACITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "store/turn_record.h"
#include "stream/llm.h"

#define CAPACITY_WINDOW_S 60

/* ---- the pure part ---- */

/* Tokens served per second over the last CAPACITY_WINDOW_S seconds: a ring of one-second
 * buckets, each stamped with its second (a stale bucket counts as empty). Zeroed = empty. */
struct cap_window {
    uint64_t tokens[CAPACITY_WINDOW_S];
    int64_t sec[CAPACITY_WINDOW_S];
};

/* Count tokens at now_ms. */
void cap_window_add(struct cap_window *w, int64_t now_ms, uint64_t tokens);
/* Tokens counted in the 60 s ending at now_ms (the seconds now-59 .. now). */
uint64_t cap_window_sum(const struct cap_window *w, int64_t now_ms);

/* This pod's share of a deployment's total with pods live pods (0 counts as 1): total / pods;
 * for streams at least 1 (a pod can always make one call). */
uint64_t capacity_share_tpm(uint64_t tpm, uint32_t pods);
uint32_t capacity_share_streams(uint32_t streams, uint32_t pods);

enum cap_verdict {
    CAP_ADMIT = 0,
    CAP_FULL_TOKENS,  /* window + reserved + the estimate would pass the share */
    CAP_FULL_STREAMS, /* every stream of the share is in use */
};

/* The admission decision alone. */
enum cap_verdict capacity_decide(uint64_t share_tpm, uint32_t share_streams, uint64_t window,
                                 uint64_t reserved, uint32_t inflight, uint64_t estimate);

/* The tokens a request may use, estimated before it is sent: its text (messages, tools) in
 * bytes / 4, plus max_tokens (default_max when 0). */
uint64_t capacity_estimate(const struct llm_request *req, uint32_t default_max);

/* Why a call's attempts left the provisioned tier of deployment, if they did: an attempt of that
 * deployment failed and a later attempt went elsewhere. Returns "rate_limited" (HTTP 429),
 * "error" (anything else) or NULL (no overflow). */
const char *capacity_overflow_reason(const char *deployment, const struct llm_call_record *a,
                                     uint32_t n);

/* ---- the tracker ---- */

struct capacity_spec {
    char name[32];
    uint64_t tpm;
    uint32_t streams;
};

/* A reservation, owned by the step that asked (zeroed = none). */
struct capacity_hold {
    int dep;
    uint64_t reserved;
    bool held;
};

struct capacity;

/* A tracker of n deployments (specs copied), for pods live pods. NULL when n is 0. */
struct capacity *capacity_create(const struct capacity_spec *specs, int n, uint32_t pods);
void capacity_destroy(struct capacity *c);

/* The live pod count changed (>= 1; any thread): every share follows it at once. */
void capacity_set_pods(struct capacity *c, uint32_t pods);
uint32_t capacity_pods(const struct capacity *c);

/* A monotonic clock in ms, the one the workers share for the tracker. */
int64_t capacity_now_ms(void);

/* Ask deployment dep for room for estimate tokens and one stream at now_ms. Admitted: true, h
 * holds the reservation until capacity_complete. Refused: false, h is not held, and the
 * overflow is counted (reason "full"). Any thread. */
bool capacity_admit(struct capacity *c, int dep, uint64_t estimate, int64_t now_ms,
                    struct capacity_hold *h);

/* The call that held h ended with attempts a[0..n) (n may be 0): the reservation is replaced by
 * the tokens its attempts on the deployment used (input + output as the provider reported; an
 * attempt that produced output but reported no usage counts the reservation, one that produced
 * nothing - refused, failed or cancelled before its first token - counts 0), the stream is freed
 * and an overflow to another route is counted by its reason. Does nothing when h is not held; h is
 * not held afterwards. Any thread. */
void capacity_complete(struct capacity *c, struct capacity_hold *h, const struct llm_call_record *a,
                       uint32_t n, int64_t now_ms);

/* A snapshot of deployment dep (tests, /metrics). */
struct capacity_stats {
    uint64_t share_tpm;
    uint32_t share_streams;
    uint32_t inflight;
    uint64_t window_tokens; /* served in the last 60 s */
    uint64_t reserved;      /* held by calls in flight */
    uint64_t admitted;
    uint64_t overflow_full, overflow_rate_limited, overflow_error;
};
void capacity_stats(struct capacity *c, int dep, int64_t now_ms, struct capacity_stats *out);

/* trilemma_capacity_* for /metrics (any thread). */
void capacity_metrics(struct capacity *c, struct buf *out);

#endif
