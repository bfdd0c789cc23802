/* sim_stream.c - the life of one simulated generation (see sim_stream.h).
 *
 * Pacing: each stream keeps the fractional time its next token is due and one timer armed at
 * that millisecond. A tick writes every token that is due (more than one only when the rate is
 * above ~1,000 tokens/s, as ms timers cannot go finer), each as its own chunk, so a client sees
 * tokens spread over time exactly as a provider would send them. */
#include "loadtest/sim/sim_stream.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "loadtest/sim/sim_hash.h"

enum { MAX_STEPS_PER_TICK = 64 };

struct sim_stream {
    struct timer timer;
    struct conn *c;
    struct sim_worker *sw;
    const struct sim_wire_ops *ops;
    struct sim_resp resp;
    struct sim_answer ans;
    struct sim_plan plan;
    uint32_t next; /* index of the next step */
    double due_ms; /* when the next step is due, on the loop clock */
    bool head_out; /* the HTTP response head is queued */
    bool started;  /* the opening events are out */
    bool aborting; /* a reset waits for queued bytes to reach the socket */
    bool held;     /* complete, body held open (plan.hold_open) until the client leaves */
};

static void tick(struct loop *l, struct timer *t);

static struct sim_stream *of_timer(struct timer *t)
{
    return (struct sim_stream *)((char *)t - offsetof(struct sim_stream, timer));
}

/* Detach from the connection and free; the generation leaves the capacity count. */
static void stream_free(struct sim_stream *st)
{
    struct sim_worker *sw = st->sw;
    timer_disarm(sw->loop, &st->timer);
    conn_set_app(st->c, NULL);
    sim_answer_free(&st->ans);
    sim_capacity_release(st->plan.cap);
    atomic_fetch_sub_explicit(&sw->st->active, 1, memory_order_relaxed);
    xfree(st);
}

/* Send what the wire writers put in the worker's scratch buffer as one HTTP chunk. */
static void flush_out(struct sim_stream *st)
{
    struct buf *out = &st->sw->out;
    if (buf_size(out))
        conn_http_stream_write(st->c, buf_begin(out), buf_size(out));
    buf_reset(out);
}

/* The response is complete: end the chunked body (the connection may serve its next request,
 * which can start a new stream on it, so this stream is gone first). */
static void stream_end(struct sim_stream *st, bool completed)
{
    struct conn *c = st->c;
    struct sim_worker *sw = st->sw;
    flush_out(st);
    atomic_fetch_add_explicit(completed ? &sw->st->streams_done : &sw->st->streams_cut, 1,
                              memory_order_relaxed);
    stream_free(st);
    conn_http_stream_end(c);
}

/* The answer is complete (closing events written) but the body is never ended: the stream waits
 * for the client to leave (or the drain), like a proxy that keeps the response open. */
static void hold_open(struct sim_stream *st)
{
    flush_out(st);
    st->held = true;
    atomic_fetch_add_explicit(&st->sw->st->streams_done, 1, memory_order_relaxed);
}

static void stream_abort(struct sim_stream *st)
{
    struct conn *c = st->c;
    if (conn_queued(c)) {
        /* Tokens written before the fault must reach the client before the reset (a client
         * that stops reading keeps it waiting until it leaves, like any stalled reader). */
        st->aborting = true;
        timer_arm(st->sw->loop, &st->timer, loop_now_ms(st->sw->loop) + 5, tick);
        return;
    }
    atomic_fetch_add_explicit(&st->sw->st->streams_cut, 1, memory_order_relaxed);
    stream_free(st);
    conn_abort(c); /* on_http_close finds no stream: it was detached above */
}

static void fault_now(struct sim_stream *st)
{
    switch (st->plan.fault) {
    case SIM_FAULT_DISCONNECT:
        flush_out(st);
        stream_abort(st);
        break;
    case SIM_FAULT_STALL:
        /* Nothing more is sent; the stream waits for the client to leave (or the drain). */
        flush_out(st);
        atomic_fetch_add_explicit(&st->sw->st->streams_cut, 1, memory_order_relaxed);
        break;
    default:
        st->ops->error_event(&st->resp, &st->sw->out);
        stream_end(st, false);
        break;
    }
}

/* Write step st->next into the scratch buffer. */
static void emit(struct sim_stream *st)
{
    const struct sim_step *s = &st->ans.steps[st->next++];
    st->ops->step(&st->resp, s, st->next == st->ans.nsteps, &st->sw->out);
    if (s->kind != SIM_STEP_TOOL_START || st->resp.fmt == SIM_GEMINI)
        atomic_fetch_add_explicit(&st->sw->st->tokens_out, 1, memory_order_relaxed);
}

static double next_gap(struct sim_stream *st)
{
    return st->plan.gap_ms * (0.8 + 0.4 * sim_rng_unit(&st->sw->rng));
}

/* Write every step that is due; then finish, fault, or wait for the next due time. */
static void run_steps(struct sim_stream *st, struct loop *l)
{
    bool batch = st->plan.gap_ms <= 0;
    double now = (double)loop_now_ms(l);
    for (int n = 0;; n++) {
        bool fault_here = st->plan.fault && st->next == st->plan.fault_after;
        if (st->next == st->ans.nsteps && !fault_here) {
            st->ops->finish(&st->resp, &st->sw->out);
            if (st->plan.hold_open) {
                hold_open(st);
                return;
            }
            stream_end(st, true);
            return;
        }
        if (!batch && n > 0 && (st->due_ms > now || n >= MAX_STEPS_PER_TICK))
            break;
        if (fault_here) {
            fault_now(st);
            return;
        }
        emit(st);
        if (!batch) {
            flush_out(st);
            st->due_ms += next_gap(st);
        }
    }
    timer_arm(l, &st->timer, (uint64_t)ceil(st->due_ms), tick);
}

/* Queue the response head (once): at the start, or with the first token (--late-headers). */
static void send_head(struct sim_stream *st)
{
    if (st->head_out)
        return;
    st->head_out = true;
    char extra[96];
    int n = snprintf(extra, sizeof(extra), "x-sim-ttft-ms: %u\r\n", st->plan.ttft_ms);
    if (st->plan.pool)
        snprintf(extra + n, sizeof(extra) - (size_t)n, "x-sim-pool: %s\r\n", st->plan.pool);
    conn_http_stream_start(st->c, 200,
                           st->plan.sse ? sim_wire_stream_type(st->resp.fmt)
                                        : "application/json; charset=utf-8",
                           extra);
}

static void tick(struct loop *l, struct timer *t)
{
    struct sim_stream *st = of_timer(t);
    send_head(st);
    if (st->aborting) {
        stream_abort(st);
        return;
    }
    if (!st->plan.sse) {
        if (st->plan.fault == SIM_FAULT_DISCONNECT) {
            stream_abort(st);
        } else if (st->plan.fault != SIM_FAULT_STALL) {
            st->ops->whole(&st->resp, &st->sw->out);
            stream_end(st, true);
        }
        return;
    }
    if (!st->started) {
        st->started = true;
        st->ops->start(&st->resp, &st->sw->out);
        if (st->plan.gap_ms > 0)
            flush_out(st);
        st->due_ms = (double)loop_now_ms(l);
    }
    run_steps(st, l);
}

/* Begin a response; see the header. */
void sim_stream_begin(struct sim_worker *sw, struct conn *c, const struct sim_resp *resp,
                      struct sim_answer *ans, const struct sim_plan *plan)
{
    struct sim_stream *st = xcalloc(1, sizeof(*st));
    st->c = c;
    st->sw = sw;
    st->ops = sim_wire_ops(resp->fmt);
    st->resp = *resp;
    st->ans = *ans;
    memset(ans, 0, sizeof(*ans));
    st->resp.ans = &st->ans;
    st->plan = *plan;
    conn_set_app(c, st);
    atomic_fetch_add_explicit(&sw->st->active, 1, memory_order_relaxed);
    /* A late head keeps the client from knowing even the protocol version until the first
     * token: a client that waits to learn whether it may multiplex waits that long. */
    if (sw->sim->o.late_headers)
        conn_http_defer(c);
    else
        send_head(st);
    uint64_t delay = plan->ttft_ms;
    if (!plan->sse) /* a whole response comes when the last token would have */
        delay += (uint64_t)(plan->gap_ms * st->ans.nsteps);
    timer_arm(sw->loop, &st->timer, loop_now_ms(sw->loop) + delay, tick);
}

/* The client left first; see the header. */
void sim_stream_closed(struct conn *c)
{
    struct sim_stream *st = conn_app(c);
    if (!st)
        return;
    bool stalled = st->plan.fault == SIM_FAULT_STALL && st->next == st->plan.fault_after;
    if (!stalled && !st->held)
        atomic_fetch_add_explicit(&st->sw->st->client_left, 1, memory_order_relaxed);
    stream_free(st);
}
