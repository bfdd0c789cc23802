/* metrics.h - per-worker counters of the net layer and the Prometheus text exposition.
 *
 * Each counter has one writer (its worker) and is bumped with relaxed stores; the /metrics
 * reader sums all workers with relaxed loads. No locks, no shared cache lines being written. */
#ifndef TRILEMMA_NET_METRICS_H
#define TRILEMMA_NET_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/stat.h"
#include "net/loop.h"

enum net_err {
    NERR_HTTP_BAD_REQUEST,
    NERR_HTTP_HEADER_TOO_LARGE,
    NERR_HANDSHAKE_TIMEOUT,
    NERR_UPGRADE_INVALID,
    NERR_UPGRADE_REFUSED,
    NERR_CONN_LIMIT,
    NERR_WS_PROTOCOL,
    NERR_WS_INVALID_UTF8,
    NERR_WS_TOO_BIG,
    NERR_WS_BINARY,
    NERR_BACKPRESSURE,
    NERR_IDLE_TIMEOUT,
    NERR_CLOSE_TIMEOUT,
    NERR_IO,
    NERR__COUNT,
};

struct net_metrics {
    uint64_t conns_open; /* gauge */
    uint64_t ws_open;    /* gauge */
    uint64_t conns_total;
    uint64_t http_requests;
    uint64_t frames_in;
    uint64_t frames_out;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t messages_in;
    uint64_t messages_out;
    uint64_t errors[NERR__COUNT];
};

/* Append the exposition of n workers' metrics and loops to out. */
void metrics_render(struct buf *out, struct net_metrics *const *m, struct loop *const *loops, int n,
                    bool draining);

#endif
