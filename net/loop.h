/* loop.h - one worker's event loop: an io_uring ring (SINGLE_ISSUER | DEFER_TASKRUN), a provided
 * buffer ring for multishot recv, completion dispatch by op code, and a timer heap.
 *
 * Everything a worker waits for is a completion on its ring. Each submitted request carries a
 * user_data that packs an op code, an object index and that object's generation:
 *
 *     bits 63..56 op | 55..32 generation (24 bits) | 31..0 index
 *
 * so a completion for an object that has since been freed and reused is recognised as stale.
 * Modules register one handler per op code they own (loop_set_handler). */
#ifndef TRILEMMA_NET_LOOP_H
#define TRILEMMA_NET_LOOP_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;

enum {
    LOOP_MAX_OPS = 32,
    LOOP_NET_OPS =
        8, /* op codes 1..7 belong to net/ itself; modules get theirs from loop_op_alloc */
    LOOP_BUF_GROUP = 0, /* the provided-buffer group id used for multishot recv */
};

static inline uint64_t loop_ud(uint8_t op, uint32_t gen, uint32_t idx)
{
    return ((uint64_t)op << 56) | ((uint64_t)(gen & 0xFFFFFF) << 32) | idx;
}
static inline uint8_t loop_ud_op(uint64_t ud)
{
    return (uint8_t)(ud >> 56);
}
static inline uint32_t loop_ud_gen(uint64_t ud)
{
    return (uint32_t)(ud >> 32) & 0xFFFFFF;
}
static inline uint32_t loop_ud_idx(uint64_t ud)
{
    return (uint32_t)ud;
}

/* A completion handler. `cqe` is valid only during the call. If the CQE carries a provided
 * buffer (IORING_CQE_F_BUFFER), the loop returns that buffer to the ring after the handler. */
typedef void (*loop_handler_fn)(struct loop *l, struct io_uring_cqe *cqe, void *ctx);

/* Called once per loop turn after all completions and expired timers of the turn ran and
 * before the next submit-and-wait: where output queued during the turn is flushed. */
typedef void (*loop_turn_fn)(struct loop *l, void *ctx);

struct loop_config {
    unsigned sq_entries; /* default 4096 */
    unsigned cq_entries; /* default 4 * sq_entries */
    unsigned buf_count;  /* provided recv buffers, power of two, default 1024 */
    unsigned buf_size;   /* bytes each, default 4096 */
};

/* Create a loop. Must be called on the thread that will run it (SINGLE_ISSUER).
 * Returns NULL (errno set) on failure. */
struct loop *loop_create(const struct loop_config *conf);
void loop_destroy(struct loop *l);

/* Hand out n consecutive op codes (from LOOP_NET_OPS up) to a module of this worker: the first
 * one is returned, or 0 (never a module's op code) when fewer than n are left. Codes are never
 * given back: modules take theirs once, when the worker starts. */
uint8_t loop_op_alloc(struct loop *l, unsigned n);

/* Register the handler for op code `op` (< LOOP_MAX_OPS). */
void loop_set_handler(struct loop *l, uint8_t op, loop_handler_fn fn, void *ctx);
void loop_set_turn_hook(struct loop *l, loop_turn_fn fn, void *ctx);

/* A free submission entry with user_data set; submits pending entries to make room if the SQ
 * is full. Never returns NULL. */
struct io_uring_sqe *loop_sqe(struct loop *l, uint64_t user_data);

/* The payload of provided buffer `bid` (from a CQE's flags >> IORING_CQE_BUFFER_SHIFT). */
uint8_t *loop_buf(struct loop *l, uint16_t bid);
unsigned loop_buf_size(const struct loop *l);

/* Run until loop_stop. Returns 0, or -errno if the ring fails. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

/* Milliseconds on the monotonic clock, sampled once per loop turn (cheap). */
uint64_t loop_now_ms(const struct loop *l);

/* ---- timers: a binary min-heap of deadlines, served by the wait timeout of each turn ---- */

struct timer;
typedef void (*timer_fn)(struct loop *l, struct timer *t);

struct timer {
    uint64_t deadline_ms;
    uint32_t heap_idx; /* 0 = not armed; otherwise position + 1 */
    timer_fn fn;
};

/* Arm (or re-arm) t to fire at deadline_ms (monotonic ms). fn runs on the loop's thread. */
void timer_arm(struct loop *l, struct timer *t, uint64_t deadline_ms, timer_fn fn);
void timer_disarm(struct loop *l, struct timer *t);
static inline bool timer_armed(const struct timer *t)
{
    return t->heap_idx != 0;
}

/* ---- loop statistics (read by /metrics from any thread, relaxed) ---- */

#define LOOP_LAT_BUCKETS 13
extern const double loop_lat_bounds[LOOP_LAT_BUCKETS - 1]; /* seconds; last bucket is +Inf */

struct loop_stats {
    uint64_t iterations;
    uint64_t cqes;
    uint64_t lat_bucket[LOOP_LAT_BUCKETS]; /* work time per turn (wake-up to wait) */
    uint64_t lat_sum_ns;
    uint64_t enobufs;
};

/* A consistent-enough copy of the loop's statistics (relaxed loads). */
void loop_stats_read(const struct loop *l, struct loop_stats *out);

#endif
