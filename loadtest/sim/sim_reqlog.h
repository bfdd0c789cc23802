/* sim_reqlog.h - the bodies of the last generation requests the simulated provider received, so
 * that a test can assert what a client sent (max_tokens, the messages of each call, the tools
 * on offer): GET /v1/_requests?since=SEQ. Process-wide, bounded (SIM_REQLOG_CAP entries, each
 * body cut at SIM_REQLOG_BODY_MAX bytes), shared by the workers under one mutex taken once per
 * request. See docs/sim.md. */
#ifndef TRILEMMA_SIM_REQLOG_H
#define TRILEMMA_SIM_REQLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/server.h"

enum {
    SIM_REQLOG_CAP = 256,              /* entries kept (the oldest are dropped) */
    SIM_REQLOG_BODY_MAX = 256u << 10u, /* body bytes kept per entry (the rest is cut) */
};

/* Record one generation request: its path (as sent, without the query), the model it names
 * ("" when unknown), its body and its traceparent header (NULL: none). Copies everything;
 * callable from any worker. */
void sim_reqlog_add(const char *path, size_t path_len, const char *model, const char *body,
                    size_t len, const char *traceparent, size_t tp_len);

/* Answer GET /v1/_requests[?since=SEQ] (returns true), or return false for any other request. */
bool sim_reqlog_request(struct conn *c, const struct http_request *req);

/* The sim's request logs are rings of sequence-numbered entries read with ?since=SEQ: the SEQ
 * of req's query (0 when absent). */
uint64_t sim_log_since(const struct http_request *req);
/* The first seq to list after `since` in a ring of cap entries whose newest is `last`. */
static inline uint64_t sim_log_first(uint64_t since, uint64_t last, uint64_t cap)
{
    uint64_t first = last > cap ? last - cap + 1 : 1;
    return since + 1 > first ? since + 1 : first;
}

/* Free the entries (at exit, after the workers stopped). */
void sim_reqlog_fini(void);

#endif
