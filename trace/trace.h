/* trace.h - one trace per turn: spans (the turn, classification, agent steps, model calls, tool
 * calls, guards, handoffs) with OpenTelemetry GenAI attribute names, built on the worker thread
 * as the turn runs and handed whole to the store (and the OTLP exporter) when it ends.
 *
 * A trace is owned by its turn. Every function takes a NULL trace (capture off) and then does
 * nothing, so the hot path only pays for tracing when it is on. Content attributes (prompts,
 * answers, tool arguments and results) are kept only at capture level "full", after redaction.
 * Times are unix microseconds (CLOCK_REALTIME). See docs/tracing.md. */
#ifndef TRILEMMA_TRACE_TRACE_H
#define TRILEMMA_TRACE_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "store/turn_record.h"

enum trace_capture { TRACE_OFF = 0, TRACE_METADATA, TRACE_FULL };

/* Redaction of content (trace/redact.h): which built-in patterns apply. */
enum {
    REDACT_CARD = 1u << 0,  /* 13-19 digits (spaces or dashes between) passing the Luhn check */
    REDACT_PHONE = 1u << 1, /* 10-15 digits, optional +, spaces, dashes, dots, parentheses */
    REDACT_EMAIL = 1u << 2,
};

#define TRACE_MAX_TTFT_TARGETS 12

/* [trace] of the configuration (app/ fills it). Read-only and shared by the workers. */
struct trace_conf {
    enum trace_capture capture;
    double sample_rate;        /* 0..1: share of ordinary turns kept (errors and flags always) */
    uint32_t redact;           /* REDACT_* */
    uint32_t retention_days;   /* span partitions older than this are dropped */
    const char *otlp_endpoint; /* "" = no export; else POST {endpoint}/v1/traces */
    const char *service_name;  /* resource service.name */
    uint32_t otlp_queue_spans; /* spans waiting for export at most; more are dropped */
    uint32_t otlp_batch_ms;    /* a batch leaves this long after its first turn */
    /* anomaly flags (trace/flags.h) */
    uint32_t ttft_default_ms; /* first-token target of a query type without its own */
    struct {
        char query_type[24];
        uint32_t ms;
    } ttft_targets[TRACE_MAX_TTFT_TARGETS];
    uint32_t n_ttft_targets;
    uint32_t cost_outlier_factor; /* flag a turn costing > factor x its type's median; 0 = off */
};

/* Fill c with the defaults (capture metadata, sample 1, every pattern redacted, 14 days, no
 * export, targets suggestion 200 ms, chitchat and policy 1 s, the rest 3 s, factor 5). */
void trace_conf_defaults(struct trace_conf *c);

/* A W3C trace context: a traceparent header's trace id, parent span id and flags. */
struct trace_ctx {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags; /* bit 0: sampled */
};

/* Parse a traceparent header value ("00-<32 hex>-<16 hex>-<2 hex>", lowercase; a later version
 * is read by its first four fields). Returns 0, or -1 for anything else, an all-zero trace or
 * span id, version ff included (the header is then ignored, as the W3C spec says). */
int trace_parse_traceparent(const char *s, size_t n, struct trace_ctx *out);
/* "00-<trace>-<span>-<flags>" into out (56 bytes with the NUL). */
void trace_format_traceparent(const uint8_t trace_id[16], const uint8_t span_id[8], uint8_t flags,
                              char out[56]);
void trace_hex(const uint8_t *p, size_t n, char *out); /* 2n hex digits and a NUL */

/* One attribute value for trace_event / trace_attrs. */
enum trace_type { TA_STR, TA_INT, TA_BOOL };
struct trace_attr {
    const char *key;
    enum trace_type type;
    const char *s; /* TA_STR: NUL-terminated */
    int64_t i;     /* TA_INT; TA_BOOL: 0/1 */
};

struct trace;

/* A new trace with its root span (index 0, kind "turn") started now. parent: the remote caller's
 * context (its trace id is this trace's; the root's parent is its span), or NULL for a random
 * trace id. otlp: also keep the OTLP form of attributes (an exporter is configured). Returns
 * NULL when c->capture is TRACE_OFF. */
struct trace *trace_begin(const struct trace_conf *c, const struct trace_ctx *parent, bool otlp);
void trace_free(struct trace *tr);

bool trace_full(const struct trace *tr); /* content is captured */
int64_t trace_now_us(void);
const char *trace_id_hex(const struct trace *tr); /* 32 hex; "" for NULL */

/* Start a span under parent (an index from trace_span, 0 = the root). kind is one of turn,
 * classify, agent, model, tool, cache, guard, handoff. Returns its index, or -1 (NULL trace). */
int trace_span(struct trace *tr, int parent, const char *kind, const char *name);
/* The same, started at start_us. */
int trace_span_at(struct trace *tr, int parent, const char *kind, const char *name,
                  int64_t start_us);
/* End span now (end_us < 0) or at end_us; error: NULL = ok, else the status message. */
void trace_end(struct trace *tr, int span, const char *error);
void trace_end_at(struct trace *tr, int span, int64_t end_us, const char *error);
/* Rename a span (e.g. once the model that answered is known). */
void trace_rename(struct trace *tr, int span, const char *name);

/* Metadata attributes (always kept). A negative span index is ignored. */
void trace_str(struct trace *tr, int span, const char *key, const char *v);
void trace_strn(struct trace *tr, int span, const char *key, const char *v, size_t n);
void trace_int(struct trace *tr, int span, const char *key, int64_t v);
void trace_bool(struct trace *tr, int span, const char *key, bool v);
/* A string array (e.g. gen_ai.response.finish_reasons). */
void trace_strs(struct trace *tr, int span, const char *key, const char *const *v, size_t n);
/* A content attribute: kept only at capture full, redacted first. */
void trace_content(struct trace *tr, int span, const char *key, const char *v, size_t n);
/* An event on span at time_us (< 0: now) with attributes. */
void trace_event(struct trace *tr, int span, const char *name, int64_t time_us,
                 const struct trace_attr *a, size_t n);

/* The traceparent to send with a request made for span ("" for a NULL trace). */
void trace_traceparent(const struct trace *tr, int span, char out[56]);

/* Was anything an error (a span with an error status)? */
bool trace_has_error(const struct trace *tr);

/* ---- output ---- */

/* The spans as store records: *out (xmalloc'd array, free with xfree) points into text, which
 * holds each span's attributes and events JSON. Spans still open are ended now. Returns the
 * number of spans. */
uint32_t trace_records(struct trace *tr, struct buf *text, struct span_record **out);
/* Append the trace's spans in OTLP/JSON form (span objects, comma-separated, no brackets). */
void trace_otlp_spans(struct trace *tr, struct buf *out);
uint32_t trace_span_count(const struct trace *tr);

#endif
