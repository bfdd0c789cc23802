/* metrics.c - Prometheus text exposition (format 0.0.4) of the net layer's counters. */
#include "net/metrics.h"

#include <stddef.h>

static const char *const err_names[NERR__COUNT] = {
    [NERR_HTTP_BAD_REQUEST] = "http_bad_request",
    [NERR_HTTP_HEADER_TOO_LARGE] = "http_header_too_large",
    [NERR_HANDSHAKE_TIMEOUT] = "handshake_timeout",
    [NERR_UPGRADE_INVALID] = "upgrade_invalid",
    [NERR_UPGRADE_REFUSED] = "upgrade_refused",
    [NERR_CONN_LIMIT] = "connection_limit",
    [NERR_WS_PROTOCOL] = "ws_protocol",
    [NERR_WS_INVALID_UTF8] = "ws_invalid_utf8",
    [NERR_WS_TOO_BIG] = "ws_message_too_big",
    [NERR_WS_BINARY] = "ws_binary",
    [NERR_BACKPRESSURE] = "backpressure",
    [NERR_IDLE_TIMEOUT] = "idle_timeout",
    [NERR_CLOSE_TIMEOUT] = "close_timeout",
    [NERR_IO] = "io",
};

static uint64_t sum(struct net_metrics *const *m, int n, size_t off)
{
    uint64_t t = 0;
    for (int i = 0; i < n; i++)
        t += __atomic_load_n((const uint64_t *)((const char *)m[i] + off), __ATOMIC_RELAXED);
    return t;
}

static void one(struct buf *out, const char *name, const char *type, const char *help, uint64_t v)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
               (unsigned long long)v);
}

#define SUM(field) sum(m, n, offsetof(struct net_metrics, field))

static void render_loops(struct buf *out, struct loop *const *loops, int n)
{
    struct loop_stats tot = {0}, s;
    for (int i = 0; i < n; i++) {
        if (!loops[i])
            continue; /* not running (any more): its turns are history */
        loop_stats_read(loops[i], &s);
        tot.iterations += s.iterations;
        tot.cqes += s.cqes;
        tot.lat_sum_ns += s.lat_sum_ns;
        tot.enobufs += s.enobufs;
        for (int b = 0; b < LOOP_LAT_BUCKETS; b++)
            tot.lat_bucket[b] += s.lat_bucket[b];
    }
    buf_printf(out, "# HELP trilemma_loop_iteration_seconds Work time of one event-loop turn "
                    "(wake-up to the next wait).\n"
                    "# TYPE trilemma_loop_iteration_seconds histogram\n");
    uint64_t cum = 0;
    for (int b = 0; b < LOOP_LAT_BUCKETS - 1; b++) {
        cum += tot.lat_bucket[b];
        buf_printf(out, "trilemma_loop_iteration_seconds_bucket{le=\"%g\"} %llu\n",
                   loop_lat_bounds[b], (unsigned long long)cum);
    }
    cum += tot.lat_bucket[LOOP_LAT_BUCKETS - 1];
    buf_printf(out, "trilemma_loop_iteration_seconds_bucket{le=\"+Inf\"} %llu\n",
               (unsigned long long)cum);
    buf_printf(out, "trilemma_loop_iteration_seconds_sum %.9f\n", (double)tot.lat_sum_ns / 1e9);
    buf_printf(out, "trilemma_loop_iteration_seconds_count %llu\n", (unsigned long long)cum);
    one(out, "trilemma_loop_completions_total", "counter", "io_uring completions handled.",
        tot.cqes);
    one(out, "trilemma_recv_buffer_exhausted_total", "counter",
        "Multishot receives ended because the provided buffer ring was empty.", tot.enobufs);
}

/* Append the exposition for n workers. */
void metrics_render(struct buf *out, struct net_metrics *const *m, struct loop *const *loops, int n,
                    bool draining)
{
    one(out, "trilemma_workers", "gauge", "Worker threads.", (uint64_t)n);
    one(out, "trilemma_draining", "gauge", "1 while the server drains.", draining ? 1 : 0);
    one(out, "trilemma_connections_open", "gauge", "Open TCP connections.", SUM(conns_open));
    one(out, "trilemma_websockets_open", "gauge", "Open WebSocket connections.", SUM(ws_open));
    one(out, "trilemma_connections_total", "counter", "Accepted TCP connections.",
        SUM(conns_total));
    one(out, "trilemma_http_requests_total", "counter", "HTTP requests parsed.",
        SUM(http_requests));
    one(out, "trilemma_frames_in_total", "counter", "WebSocket frames received.", SUM(frames_in));
    one(out, "trilemma_frames_out_total", "counter", "WebSocket frames sent.", SUM(frames_out));
    one(out, "trilemma_bytes_in_total", "counter", "Bytes received.", SUM(bytes_in));
    one(out, "trilemma_bytes_out_total", "counter", "Bytes sent.", SUM(bytes_out));
    one(out, "trilemma_messages_in_total", "counter", "WebSocket messages received.",
        SUM(messages_in));
    one(out, "trilemma_messages_out_total", "counter", "WebSocket messages sent.",
        SUM(messages_out));
    buf_printf(out, "# HELP trilemma_errors_total Errors by kind.\n"
                    "# TYPE trilemma_errors_total counter\n");
    for (int e = 0; e < NERR__COUNT; e++)
        buf_printf(out, "trilemma_errors_total{kind=\"%s\"} %llu\n", err_names[e],
                   (unsigned long long)SUM(errors[e]));
    render_loops(out, loops, n);
}
