/* turn_trace.c - a turn's trace and flags, from the upgrade's traceparent to the commit.
 *
 * The trace starts with the turn (its root span) and the responder adds its spans through
 * turn_trace(). When the responder is done, the anomaly flags are computed (always, even with
 * capture off) and added to the turn, the root span gets the turn's outcome, and the trace is
 * kept or sampled out: a turn with an error or a flag is always kept. A kept trace's spans go
 * into the turn's record (the same group commit, the same journal record) and to the OTLP
 * exporter. See docs/tracing.md. */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "base/log.h"
#include "base/mem.h"
#include "session/session_int.h"

static const char *const flag_kinds[SESS_FLAG_KINDS] = {
    "routing_loop",      "silent_confabulation",
    "ungrounded_number", "narration_removed",
    "slow_first_token",  "escalated",
    "cost_outlier",      "classifier_late",
    "verify_dropped",    "other",
};

/* ---- per worker ---- */

void sess_trace_worker_init(struct sess_worker *sw, struct loop *l)
{
    char err[256];
    if (config_trace(sw->conf, &sw->trace, err, sizeof(err)) < 0) {
        log_error("trace: %s; tracing off", err); /* config_validate refused this already */
        trace_conf_defaults(&sw->trace);
        sw->trace.capture = TRACE_OFF;
    }
    if (!sw->trace.otlp_endpoint[0] || sw->trace.capture == TRACE_OFF)
        return;
    const struct responder *r = sw->responder;
    struct hc *h = r->worker_hc ? r->worker_hc(sw->rworker) : NULL;
    if (!h) {
        uint8_t op = loop_op_alloc(l, 1);
        h = sw->otlp_hc = op ? hc_create(l, op) : NULL;
    }
    sw->otlp = otlp_create(l, h, &sw->trace);
    if (!sw->otlp)
        log_error("trace: cannot create the OTLP exporter: traces are not exported");
}

void sess_trace_worker_fini(struct sess_worker *sw)
{
    otlp_destroy(sw->otlp);
    sw->otlp = NULL;
    hc_destroy(sw->otlp_hc);
}

/* A valid traceparent on the upgrade is kept for on_open (same call chain, like pending_sub);
 * an invalid one is ignored, as the W3C trace context says. */
void sess_trace_upgrade(struct sess_worker *sw, const struct http_request *req)
{
    const struct http_header *h = http_find_header(req, "traceparent");
    sw->has_pending_tp = h && http_count_header(req, "traceparent") == 1 &&
                         trace_parse_traceparent(h->value, h->value_len, &sw->pending_tp) == 0;
}

void sess_trace_open(struct sess_worker *sw, struct session *s)
{
    if (sw->has_pending_tp) {
        s->tp = xmalloc(sizeof(*s->tp));
        *s->tp = sw->pending_tp;
    }
    sw->has_pending_tp = false;
}

/* ---- per turn ---- */

struct trace *turn_trace(struct turn *t)
{
    return t->tr;
}

void turn_trace_start(struct turn *t)
{
    struct sess_worker *sw = t->sw;
    t->tr = trace_begin(&sw->trace, t->s ? t->s->tp : NULL, sw->otlp != NULL);
    if (!t->tr)
        return;
    trace_str(t->tr, 0, "gen_ai.conversation.id", t->conversation_id);
    trace_str(t->tr, 0, "trilemma.turn.id", t->turn_id);
    if (t->user[0])
        trace_str(t->tr, 0, "enduser.id", t->user);
    trace_str(t->tr, 0, "trilemma.capture", trace_full(t->tr) ? "full" : "metadata");
    trace_content(t->tr, 0, "trilemma.user_message", t->user_text, t->user_len);
}

static void add_flag(void *ctx, const char *flag)
{
    turn_add_flag(ctx, flag);
}

/* The anomaly flags of the finished turn (flags.h), joined to the plan's own; see
 * session_int.h. */
void turn_trace_flags(struct turn *t)
{
    struct flag_turn ft = {
        .query_type = t->query_type,
        .first_token_ms = t->first_token_ms ? (int64_t)(t->first_token_ms - t->started_ms) : -1,
        .cost_micros = t->cost_micros,
        .answer = buf_begin(&t->answer),
        .answer_len = buf_size(&t->answer),
        .error = strcmp(t->finish, "error") == 0,
    };
    for (uint32_t i = 0; i < t->n_tools; i++) {
        ft.tools_failed +=
            strcmp(t->tools[i].status, "ok") != 0 && strcmp(t->tools[i].status, "cancelled") != 0;
        ft.tools_empty += t->tools[i].empty;
    }
    flags_compute(&t->sw->trace, &ft, &t->sw->costs, add_flag, t);
    for (uint32_t i = 0; i < t->n_flags; i++) {
        char kind[32];
        flags_kind(t->flags[i], kind);
        int k = 0;
        while (k < SESS_FLAG_KINDS - 1 && strcmp(flag_kinds[k], kind) != 0)
            k++;
        metric_add(&t->sw->m.flags[k], 1);
    }
}

static bool sampled_in(double rate)
{
    uint32_t r;
    if (rate >= 1)
        return true;
    if (getrandom(&r, sizeof(r), 0) != sizeof(r))
        return true;
    return (double)r < rate * 4294967296.0;
}

/* The root span gets the turn's outcome. */
static void close_root(struct turn *t)
{
    struct trace *tr = t->tr;
    trace_str(tr, 0, "gen_ai.operation.name", "chat");
    trace_str(tr, 0, "trilemma.finish_reason", t->finish);
    if (t->query_type[0])
        trace_str(tr, 0, "trilemma.query_type", t->query_type);
    if (t->agent[0])
        trace_str(tr, 0, "gen_ai.agent.name", t->agent);
    trace_int(tr, 0, "gen_ai.usage.input_tokens", (int64_t)t->usage.input_tokens);
    trace_int(tr, 0, "gen_ai.usage.output_tokens", (int64_t)t->usage.output_tokens);
    trace_int(tr, 0, "gen_ai.usage.cache_read.input_tokens", (int64_t)t->usage.cached_input_tokens);
    trace_int(tr, 0, "trilemma.cost.micros", t->cost_micros);
    trace_str(tr, 0, "trilemma.cost.currency", t->sw->conf->currency);
    if (t->first_token_ms)
        trace_int(tr, 0, "trilemma.ttft_ms", (int64_t)(t->first_token_ms - t->started_ms));
    for (uint32_t i = 0; i < t->n_flags; i++) {
        char key[64];
        snprintf(key, sizeof(key), "trilemma.flag.%s", t->flags[i]);
        trace_bool(tr, 0, key, true);
    }
    trace_content(tr, 0, "trilemma.answer", buf_begin(&t->answer), buf_size(&t->answer));
    trace_end(tr, 0, strcmp(t->finish, "error") == 0 ? "the turn ended with an error" : NULL);
}

/* The spans into rec when the trace is kept; see session_int.h. */
void turn_trace_finish(struct turn *t, struct store_turn *rec, struct buf *text,
                       struct span_record **spans)
{
    *spans = NULL;
    if (!t->tr)
        return;
    close_root(t);
    bool keep = t->n_flags || trace_has_error(t->tr) || sampled_in(t->sw->trace.sample_rate);
    metric_add(keep ? &t->sw->m.traces_kept : &t->sw->m.traces_sampled_out, 1);
    if (!keep)
        return;
    rec->trace_id = trace_id_hex(t->tr);
    rec->n_spans = trace_records(t->tr, text, spans);
    rec->spans = *spans;
    otlp_add(t->sw->otlp, t->tr);
}

/* ---- /metrics ---- */

void sess_trace_metrics(struct server *srv, struct sess_worker *(*app)(struct server *, int),
                        struct buf *out)
{
    uint64_t f[SESS_FLAG_KINDS] = {0}, kept = 0, out_n = 0;
    struct otlp_stats sum = {0};
    for (int i = 0; i < server_worker_count(srv); i++) {
        struct sess_worker *sw = app(srv, i);
        if (!sw)
            continue;
        for (int k = 0; k < SESS_FLAG_KINDS; k++)
            f[k] += __atomic_load_n(&sw->m.flags[k], __ATOMIC_RELAXED);
        kept += __atomic_load_n(&sw->m.traces_kept, __ATOMIC_RELAXED);
        out_n += __atomic_load_n(&sw->m.traces_sampled_out, __ATOMIC_RELAXED);
        struct otlp_stats s;
        otlp_stats(sw->otlp, &s);
        sum.exported_spans += s.exported_spans;
        sum.dropped_spans += s.dropped_spans;
        sum.requests += s.requests;
        sum.retries += s.retries;
    }
    buf_printf(out, "# HELP trilemma_turn_flags_total Turns flagged, by flag kind.\n"
                    "# TYPE trilemma_turn_flags_total counter\n");
    for (int k = 0; k < SESS_FLAG_KINDS; k++)
        buf_printf(out, "trilemma_turn_flags_total{kind=\"%s\"} %llu\n", flag_kinds[k],
                   (unsigned long long)f[k]);
    buf_printf(out,
               "# HELP trilemma_traces_total Turn traces kept or sampled out.\n"
               "# TYPE trilemma_traces_total counter\n"
               "trilemma_traces_total{outcome=\"kept\"} %llu\n"
               "trilemma_traces_total{outcome=\"sampled_out\"} %llu\n"
               "# HELP trilemma_trace_export_spans_total Spans sent to the OTLP collector, or "
               "dropped (queue full, refused).\n"
               "# TYPE trilemma_trace_export_spans_total counter\n"
               "trilemma_trace_export_spans_total{outcome=\"exported\"} %llu\n"
               "trilemma_trace_export_spans_total{outcome=\"dropped\"} %llu\n"
               "# HELP trilemma_trace_export_requests_total OTLP requests, retries included.\n"
               "# TYPE trilemma_trace_export_requests_total counter\n"
               "trilemma_trace_export_requests_total %llu\n"
               "# HELP trilemma_trace_export_retries_total OTLP requests retried.\n"
               "# TYPE trilemma_trace_export_retries_total counter\n"
               "trilemma_trace_export_retries_total %llu\n",
               (unsigned long long)kept, (unsigned long long)out_n,
               (unsigned long long)sum.exported_spans, (unsigned long long)sum.dropped_spans,
               (unsigned long long)sum.requests, (unsigned long long)sum.retries);
}
