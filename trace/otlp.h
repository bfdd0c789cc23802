/* otlp.h - export of traces to an OpenTelemetry collector over OTLP/HTTP with JSON encoding
 * (POST {endpoint}/v1/traces, Content-Type application/json): Jaeger, Tempo, Langfuse or any
 * collector. One exporter per worker, on the worker's loop and curl multi: it never blocks.
 *
 * Finished turns' spans are queued (bounded: spans beyond [trace] otlp_queue_spans are dropped
 * and counted, never queued), and leave as one request per batch, otlp_batch_ms after the first
 * span of the batch, one request in flight at a time. 429, 502, 503 and 504 (and a connection
 * that fails) are retried after Retry-After or a doubling backoff (1 s .. 30 s), at most 5
 * times; other answers drop the batch (counted). */
#ifndef TRILEMMA_TRACE_OTLP_H
#define TRILEMMA_TRACE_OTLP_H

#include <stdint.h>

#include "base/buf.h"
#include "net/loop.h"
#include "stream/http_client.h"
#include "trace/trace.h"

struct otlp_exporter;

struct otlp_stats {
    uint64_t exported_spans; /* accepted by the collector (2xx) */
    uint64_t dropped_spans;  /* the queue was full, or the collector refused / never answered */
    uint64_t requests;       /* POSTs made, retries included */
    uint64_t retries;
};

/* The request body for spans (OTLP/JSON span objects, comma-separated, from
 * trace_otlp_spans): {"resourceSpans":[{"resource":{service.name},"scopeSpans":[{"scope":
 * {"name":"trilemma"},"spans":[...]}]}]}. Pure. */
void otlp_body(const char *service_name, const char *spans, size_t len, struct buf *out);

/* An exporter to c->otlp_endpoint on l and h (both outlive it). NULL when no endpoint is set. */
struct otlp_exporter *otlp_create(struct loop *l, struct hc *h, const struct trace_conf *c);
/* Stop: a request in flight is cancelled; what is queued is dropped (counted). NULL is fine. */
void otlp_destroy(struct otlp_exporter *e);

/* Queue tr's spans (rendered now; tr is not kept). */
void otlp_add(struct otlp_exporter *e, struct trace *tr);

/* Counters; safe from any thread (relaxed reads). NULL reads as zeros. */
void otlp_stats(const struct otlp_exporter *e, struct otlp_stats *out);

#endif
