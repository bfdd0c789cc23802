/* sim_stream.h - one simulated generation on one HTTP connection: the response head at once
 * (with the first token under --late-headers), the first token after the time to first token,
 * then one token per tick of the stream's own timer, each token its own SSE event in its own
 * HTTP chunk, then the closing events. Faults (reset, stall, error event) happen where the plan
 * says.
 *
 * A stream belongs to its connection (conn_set_app) and to its worker's loop (its timer); it is
 * freed when it ends or when the client goes away first (sim_stream_closed from on_http_close). */
#ifndef TRILEMMA_SIM_STREAM_H
#define TRILEMMA_SIM_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "loadtest/sim/sim.h"
#include "loadtest/sim/sim_answer.h"
#include "loadtest/sim/sim_wire.h"

enum sim_fault {
    SIM_FAULT_NONE,
    SIM_FAULT_DISCONNECT, /* reset the connection */
    SIM_FAULT_STALL,      /* stop sending, keep the connection until the client leaves */
    SIM_FAULT_ERROR,      /* an error event, then the end of the response */
};

struct sim_plan {
    bool sse;         /* false: one whole JSON body when the answer would be complete */
    uint32_t ttft_ms; /* time to the first token */
    double gap_ms;    /* mean gap between tokens (+-20% each); 0 = all in one write */
    enum sim_fault fault;
    uint32_t fault_after; /* tokens (steps) written before the fault */
    bool hold_open;       /* after the closing events, keep the body open until the client
                           * leaves (a proxy that never ends the response) */
    struct sim_cap *cap;  /* the deployment that admitted it: released when the stream ends */
    const char *pool;     /* the pool serving it (x-sim-pool header), NULL = pay-as-you-go */
};

/* Begin the response on c: the HTTP head is queued now (or deferred), the rest follows on the
 * stream's timer. Takes over *ans (left zeroed) and copies *resp. The generation must have been
 * admitted by plan->cap (sim_capacity_admit); the stream releases it when it ends. The head
 * carries x-sim-ttft-ms (the planned time to first token) and, in a pool, x-sim-pool. */
void sim_stream_begin(struct sim_worker *sw, struct conn *c, const struct sim_resp *resp,
                      struct sim_answer *ans, const struct sim_plan *plan);

/* The client went away before the end (on_http_close): stop the timer, free the stream. */
void sim_stream_closed(struct conn *c);

#endif
