/* model_call.c - one model call as an explicit state machine (see model_call.h):
 *
 *   INIT --connect--> REQUESTED --first output--> STREAMING --end marker/body end--> DONE
 *                        |  ^                         |
 *                        |  |  (retry, after backoff) |  attempt failed, nothing committed:
 *                        |  +------- BACKOFF <--------+  retry same route, or the next route
 *                        |                            |  at once (REQUESTED again)
 *                        +----------------------------+--> FAILED (no route left, or committed)
 *   any non-final state --model_call_cancel--> CANCELLED
 *
 * Every change of state goes through call_state() (curl's mstate()): the one place that logs it,
 * and where an observer (tracing) is told. The rest of what a call knows are facts, not state: the
 * route and attempt numbers, the current attempt's record (usage, status, times), its failure
 * (first cause wins), and whether the provider parser is on the stack (in_feed: a cancel from
 * inside a sink callback must not free the parser under its own feet). */
#include "orchestrator/model_call.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "base/log.h"
#include "base/mem.h"
#include "net/utf8.h"

enum call_state {
    CALL_INIT,
    CALL_REQUESTED, /* an attempt is in flight, no output yet: first-token deadline */
    CALL_STREAMING, /* the attempt produced output: stall deadline */
    CALL_BACKOFF,   /* waiting before the next attempt */
    CALL_DONE,
    CALL_FAILED,
    CALL_CANCELLED,
};

static const char *const state_names[] = {"init", "requested", "streaming", "backoff",
                                          "done", "failed",    "cancelled"};

struct model_call {
    enum call_state state;
    struct loop *l;
    struct hc *hc;
    struct model_call_spec spec;
    struct model_sink sink;
    struct timer timer; /* REQUESTED/STREAMING: the deadline; BACKOFF: the next attempt */
    int route;
    unsigned attempt; /* on this route, 1-based */
    bool in_feed;     /* inside llm_stream_feed: freed when it returns */
    /* the attempt in flight */
    struct hc_req *req;
    struct llm_stream *ls;
    int64_t retry_after_ms;
    struct buf err_body;
    uint64_t started_ms;
    uint64_t first_ms; /* 0 until the first output */
    char finish[16];
    struct llm_call_record cur; /* the attempt's ledger line as it fills */
    /* the attempt's failure: err_type "" = none */
    bool retryable;
    char err_type[48];
    char err_msg[256];
    char client_msg[96]; /* model_result.client_message */
    /* the completion record */
    struct llm_call_record *attempts;
    uint32_t n_attempts;
};

static void call_connect(struct model_call *mc);
static void attempt_over(struct model_call *mc);

static bool call_final(const struct model_call *mc)
{
    return mc->state >= CALL_DONE;
}

/* The one transition function: every change of state is logged here, and the observer told. */
static void call_state(struct model_call *mc, enum call_state to)
{
    const struct model_route *r = &mc->spec.routes[mc->route];
    const struct model_call_observer *o = mc->spec.observer;
    log_debug("model call %p %s/%s attempt %u: %s -> %s", (void *)mc,
              llm_provider_name(r->provider), r->model, mc->attempt, state_names[mc->state],
              state_names[to]);
    if (o && o->on_state)
        o->on_state(o->ctx, state_names[mc->state], state_names[to], r, mc->attempt);
    mc->state = to;
}

static void fail_attempt(struct model_call *mc, const char *type, bool retryable, const char *fmt,
                         const char *detail)
{
    if (mc->err_type[0])
        return; /* the first cause wins */
    mc->retryable = retryable;
    snprintf(mc->err_type, sizeof(mc->err_type), "%s", type);
    snprintf(mc->err_msg, sizeof(mc->err_msg), fmt, detail ? detail : "");
    /* byte limits may cut a character: never store or send invalid UTF-8 */
    utf8_scrub(mc->err_type);
    utf8_scrub(mc->err_msg);
}

static void call_free(struct model_call *mc)
{
    timer_disarm(mc->l, &mc->timer);
    hc_cancel(mc->req);
    llm_stream_destroy(mc->ls);
    buf_free(&mc->err_body);
    xfree(mc->attempts);
    xfree(mc);
}

/* ---- the ledger: one record per HTTP attempt ---- */

static void record_attempt(struct model_call *mc, const char *status)
{
    const struct model_route *r = &mc->spec.routes[mc->route];
    const struct model_pricing *p = mc->spec.pricing;
    struct llm_call_record *c = &mc->cur;
    snprintf(c->provider, sizeof(c->provider), "%s", llm_provider_name(r->provider));
    snprintf(c->model, sizeof(c->model), "%s", r->model);
    snprintf(c->tier, sizeof(c->tier), "%s", r->tier[0] ? r->tier : "standard");
    snprintf(c->deployment, sizeof(c->deployment), "%s", r->deployment);
    snprintf(c->role, sizeof(c->role), "%s",
             mc->attempt > 1 ? "retry"
             : mc->route > 0 ? "fallback"
                             : mc->spec.role);
    snprintf(c->status, sizeof(c->status), "%s", status);
    if (mc->err_type[0])
        snprintf(c->error, sizeof(c->error), "%.40s: %.110s", mc->err_type, mc->err_msg);
    utf8_scrub(c->error);
    utf8_scrub(c->role);
    c->attempt = mc->attempt;
    c->ttft_ms = mc->first_ms ? (int64_t)(mc->first_ms - mc->started_ms) : -1;
    c->duration_ms = (int64_t)(loop_now_ms(mc->l) - mc->started_ms);
    /* the price in force today at the route's tier: a row effective from a later date applies
     * from that date; a provisioned model without a provisioned row costs 0 per token */
    const struct price *price =
        p && p->prices ? prices_find(p->prices, c->provider, r->model, c->tier, NULL) : NULL;
    c->cost_micros = price && c->usage_reported
                         ? prices_cost(price, &c->usage, p->currency, p->usd_to_inr_micros)
                         : 0;
    mc->attempts = xrealloc(mc->attempts, (mc->n_attempts + 1) * sizeof(*mc->attempts));
    mc->attempts[mc->n_attempts++] = *c;
    memset(c, 0, sizeof(*c));
}

/* ---- the end: one completion record, then the call is gone ---- */

static bool sink_committed(const struct model_call *mc)
{
    return mc->sink.ops->committed && mc->sink.ops->committed(mc->sink.ctx);
}

/* The failure in words a client may see: its kind and the HTTP status class of the last
 * attempt, nothing the provider wrote. */
static const char *client_message(struct model_call *mc)
{
    int status = mc->n_attempts ? mc->attempts[mc->n_attempts - 1].http_status : 0;
    const char *t = mc->err_type;
    if (status >= 300 && status <= 599)
        snprintf(mc->client_msg, sizeof(mc->client_msg), "the model provider %s (HTTP %dxx)",
                 status >= 500   ? "failed"
                 : status >= 400 ? "refused the request"
                                 : "answered with a redirect",
                 status / 100);
    else if (!strcmp(t, "timeout"))
        snprintf(mc->client_msg, sizeof(mc->client_msg),
                 "the model provider did not answer "
                 "in time");
    else if (!strcmp(t, "connect_failed") || !strcmp(t, "connection_error"))
        snprintf(mc->client_msg, sizeof(mc->client_msg), "the model provider could not be reached");
    else if (!strcmp(t, "bad_stream") || !strcmp(t, "incomplete_stream"))
        snprintf(mc->client_msg, sizeof(mc->client_msg), "the model's answer broke off");
    else if (!strcmp(t, "internal") || !strcmp(t, "bad_route"))
        snprintf(mc->client_msg, sizeof(mc->client_msg), "the model request could not be made");
    else
        snprintf(mc->client_msg, sizeof(mc->client_msg), "the model provider reported an error");
    return mc->client_msg;
}

static void call_end(struct model_call *mc, enum call_state final)
{
    static const enum model_outcome outcome[] = {
        [CALL_DONE] = MODEL_OK, [CALL_FAILED] = MODEL_FAILED, [CALL_CANCELLED] = MODEL_CANCELLED};
    timer_disarm(mc->l, &mc->timer);
    struct model_result r = {
        .outcome = outcome[final],
        .finish = final == CALL_DONE     ? (mc->finish[0] ? mc->finish : "stop")
                  : final == CALL_FAILED ? "error"
                                         : "cancelled",
        .error_type = final == CALL_FAILED ? mc->err_type : NULL,
        .error_message = final == CALL_FAILED ? mc->err_msg : NULL,
        .client_message = final == CALL_FAILED ? client_message(mc) : NULL,
        .committed = sink_committed(mc),
        .attempts = mc->attempts,
        .n_attempts = mc->n_attempts,
    };
    for (uint32_t i = 0; i < mc->n_attempts; i++) {
        const struct llm_usage *u = &mc->attempts[i].usage;
        r.usage.input_tokens += u->input_tokens;
        r.usage.cached_input_tokens += u->cached_input_tokens;
        r.usage.cache_write_tokens += u->cache_write_tokens;
        r.usage.output_tokens += u->output_tokens;
        r.usage.reasoning_tokens += u->reasoning_tokens;
        r.cost_micros += mc->attempts[i].cost_micros;
    }
    call_state(mc, final);
    mc->sink.ops->on_complete(mc->sink.ctx, &r);
    if (!mc->in_feed)
        call_free(mc);
}

/* ---- the normalized provider events ---- */

static void arm_deadline(struct model_call *mc);

/* REQUESTED -> STREAMING: the model is producing; the stall deadline applies from now on. */
static void call_streaming(struct model_call *mc)
{
    if (mc->state != CALL_REQUESTED)
        return;
    mc->first_ms = loop_now_ms(mc->l);
    call_state(mc, CALL_STREAMING);
    arm_deadline(mc);
}

static void on_tool_end(struct model_call *mc, const struct llm_event *ev)
{
    struct model_tool_call tc = {
        .index = ev->tool_index,
        .id = ev->tool_id ? ev->tool_id : "",
        .name = ev->tool_name ? ev->tool_name : "",
        .arguments = ev->len ? ev->text : "{}",
        .arguments_len = ev->len ? ev->len : 2,
    };
    if (mc->sink.ops->on_tool_call)
        mc->sink.ops->on_tool_call(mc->sink.ctx, &tc);
}

static void on_error_event(struct model_call *mc, const struct llm_event *ev)
{
    char msg[200];
    snprintf(msg, sizeof(msg), "%.*s", (int)(ev->len > 180 ? 180 : ev->len), ev->text);
    fail_attempt(mc, ev->error_type ? ev->error_type : "provider_error", ev->retryable,
                 "the model provider reported an error: %s", msg);
}

static int on_llm_event(void *ctx, const struct llm_event *ev)
{
    struct model_call *mc = ctx;
    const struct model_sink_ops *s = mc->sink.ops;
    switch (ev->type) {
    case LLM_EV_TEXT:
        if (!ev->len)
            break;
        call_streaming(mc);
        if (s->on_text)
            s->on_text(mc->sink.ctx, ev->text, ev->len);
        break;
    case LLM_EV_REASONING:
        call_streaming(mc);
        if (s->on_reasoning && ev->len)
            s->on_reasoning(mc->sink.ctx, ev->text, ev->len);
        break;
    case LLM_EV_TOOL_START:
        call_streaming(mc); /* the model is working: the stall deadline applies now */
        break;
    case LLM_EV_TOOL_END:
        on_tool_end(mc, ev);
        break;
    case LLM_EV_USAGE:
        mc->cur.usage = ev->usage;
        mc->cur.usage_reported = true;
        if (s->on_usage)
            s->on_usage(mc->sink.ctx, &ev->usage);
        break;
    case LLM_EV_FINISH:
        snprintf(mc->finish, sizeof(mc->finish), "%s", ev->finish);
        break;
    case LLM_EV_ERROR:
        on_error_event(mc, ev);
        return 1; /* stop reading this stream */
    default:
        break;
    }
    return call_final(mc); /* cancelled from a sink callback: stop */
}

/* ---- deadlines and backoff: one timer, its meaning given by the state ---- */

static void timer_fired(struct loop *l, struct timer *t)
{
    (void)l;
    struct model_call *mc = (struct model_call *)((char *)t - offsetof(struct model_call, timer));
    switch (mc->state) {
    case CALL_REQUESTED:
    case CALL_STREAMING:
        fail_attempt(mc, "timeout", true,
                     mc->state == CALL_STREAMING ? "the model stream stalled"
                                                 : "no first token in time%s",
                     NULL);
        hc_cancel(mc->req);
        mc->req = NULL;
        attempt_over(mc);
        break;
    case CALL_BACKOFF:
        call_connect(mc);
        break;
    default:
        break;
    }
}

static void arm_deadline(struct model_call *mc)
{
    const struct model_call_policy *p = mc->spec.policy;
    uint32_t ms = mc->state == CALL_STREAMING ? p->stall_timeout_ms : p->first_token_timeout_ms;
    timer_arm(mc->l, &mc->timer, loop_now_ms(mc->l) + ms, timer_fired);
}

/* ---- the HTTP transfer ---- */

static int on_response(void *ctx, int status, int64_t retry_after_ms)
{
    struct model_call *mc = ctx;
    mc->cur.http_status = status;
    mc->retry_after_ms = retry_after_ms;
    return 0;
}

static bool status_ok(int status)
{
    return status >= 200 && status <= 299;
}

/* The provider's end marker ([DONE], message_stop) arrived: the answer is complete, whatever
 * the body does next. A proxy or compatible server may keep the body open after it, so the
 * transfer is stopped here rather than awaited. Inside curl's write callback the cancel is
 * deferred until curl returns: when the body's end came in the same read the transfer has
 * completed by then and its connection is reused, otherwise the connection is closed. */
static void attempt_complete(struct model_call *mc)
{
    hc_cancel(mc->req);
    mc->req = NULL;
    attempt_over(mc);
}

static int on_body(void *ctx, const char *p, size_t n)
{
    struct model_call *mc = ctx;
    if (!status_ok(mc->cur.http_status)) {
        if (buf_size(&mc->err_body) < 65536)
            buf_append(&mc->err_body, p, n);
        return 0;
    }
    if (mc->state == CALL_STREAMING)
        arm_deadline(mc); /* bytes are flowing: push the stall deadline */
    mc->in_feed = true;
    int r = llm_stream_feed(mc->ls, p, n);
    mc->in_feed = false;
    if (call_final(mc)) { /* cancelled from a sink callback */
        call_free(mc);
        return 1;
    }
    if (r < 0)
        fail_attempt(mc, "bad_stream", true, "the model stream was malformed%s", NULL);
    if (r == 0 && llm_stream_done(mc->ls)) {
        attempt_complete(mc); /* mc is gone */
        return 0;
    }
    return r != 0;
}

static void classify_http(struct model_call *mc, int result, const char *message)
{
    int status = mc->cur.http_status;
    if (mc->err_type[0])
        return;
    if (result == HC_OK && status_ok(status)) {
        if (llm_stream_finish(mc->ls) < 0)
            fail_attempt(mc, "incomplete_stream", true, "the model stream ended early%s", NULL);
        return;
    }
    if (status >= 300) {
        struct llm_event ev = {0};
        llm_parse_error(mc->spec.routes[mc->route].provider, status, buf_begin(&mc->err_body),
                        buf_size(&mc->err_body), &ev);
        char msg[200];
        snprintf(msg, sizeof(msg), "HTTP %d: %.*s", status, (int)(ev.len > 160 ? 160 : ev.len),
                 ev.text ? ev.text : "");
        fail_attempt(mc, ev.error_type ? ev.error_type : "http_error", ev.retryable, "%s", msg);
        return;
    }
    bool retryable = result == HC_CONNECT_FAILED || result == HC_IO || result == HC_TIMEOUT;
    fail_attempt(mc, result == HC_CONNECT_FAILED ? "connect_failed" : "connection_error", retryable,
                 "the model provider could not be reached: %s", message);
}

static void on_done(void *ctx, int result, int status, const char *message)
{
    struct model_call *mc = ctx;
    mc->req = NULL;
    if (!mc->cur.http_status)
        mc->cur.http_status = status;
    classify_http(mc, result, message);
    attempt_over(mc);
}

static const struct hc_callbacks http_callbacks = {
    .on_response = on_response,
    .on_body = on_body,
    .on_done = on_done,
};

/* ---- attempts, retries, fallbacks ---- */

static uint64_t backoff_ms(const struct model_call *mc)
{
    if (mc->retry_after_ms >= 0)
        return (uint64_t)mc->retry_after_ms;
    uint64_t base = (uint64_t)mc->spec.policy->retry_base_ms << (mc->attempt - 1);
    uint32_t r;
    if (getrandom(&r, sizeof(r), 0) != sizeof(r))
        r = 0;
    return base / 2 + (base ? r % (base + 1) : 0); /* base +- 50% */
}

/* The failed attempt may be followed by another: same route after a backoff, else the next (at
 * once after an overflow route: a full or failing provisioned deployment is not waited for). */
static void attempt_failed(struct model_call *mc, bool had_output)
{
    const struct model_call_policy *p = mc->spec.policy;
    if (sink_committed(mc)) {
        call_end(mc, CALL_FAILED);
        return;
    }
    /* A Retry-After longer than the first-token deadline is not worth waiting for here: the
     * next route answers sooner. */
    bool wait_ok =
        mc->retry_after_ms < 0 || mc->retry_after_ms <= (int64_t)p->first_token_timeout_ms;
    const struct model_route *r = &mc->spec.routes[mc->route];
    bool overflow = r->overflow && mc->route + 1 < mc->spec.n_routes;
    bool retry = mc->retryable && wait_ok && mc->attempt <= p->max_retries && !overflow;
    if (!retry && mc->route + 1 >= mc->spec.n_routes) {
        call_end(mc, CALL_FAILED);
        return;
    }
    if (had_output && mc->sink.ops->on_reset)
        mc->sink.ops->on_reset(mc->sink.ctx);
    if (retry) {
        call_state(mc, CALL_BACKOFF);
        timer_arm(mc->l, &mc->timer, loop_now_ms(mc->l) + backoff_ms(mc), timer_fired);
        return;
    }
    mc->route++;
    mc->attempt = 0;
    call_connect(mc);
}

/* The attempt in flight is over (ended, failed or timed out): record it, then what next? */
static void attempt_over(struct model_call *mc)
{
    bool had_output = mc->state == CALL_STREAMING;
    timer_disarm(mc->l, &mc->timer);
    record_attempt(mc, mc->err_type[0] ? "error" : "ok");
    llm_stream_destroy(mc->ls);
    mc->ls = NULL;
    if (!mc->err_type[0]) {
        call_end(mc, CALL_DONE);
        return;
    }
    const struct model_route *r = &mc->spec.routes[mc->route];
    log_warn("model call %s/%s failed (%s): %s", llm_provider_name(r->provider), r->model,
             mc->err_type, mc->err_msg);
    attempt_failed(mc, had_output);
}

static int start_request(struct model_call *mc)
{
    const struct model_route *r = &mc->spec.routes[mc->route];
    struct llm_request req = *mc->spec.request;
    req.model = r->model;
    struct buf body = {0};
    char path[512], url[1280], auth[2][512];
    if (llm_build_request(r->provider, &req, &body, path, sizeof(path)) < 0) {
        buf_free(&body);
        fail_attempt(mc, "internal", false, "could not build the model request%s", NULL);
        return -1;
    }
    snprintf(url, sizeof(url), "%s%s", r->base_url, path);
    int na = llm_auth_headers(r->provider, r->key, auth);
    const char *headers[6] = {"Content-Type: application/json", "Accept: text/event-stream"};
    for (int i = 0; i < na; i++)
        headers[2 + i] = auth[i];
    char tp[80];
    if (mc->spec.traceparent && mc->spec.traceparent[0]) {
        snprintf(tp, sizeof(tp), "traceparent: %s", mc->spec.traceparent);
        headers[2 + (na > 0 ? na : 0)] = tp;
    }
    struct hc_request hr = {
        .url = url,
        .headers = headers,
        .body = buf_begin(&body),
        .body_len = buf_size(&body),
        .connect_timeout_ms = mc->spec.policy->connect_timeout_ms,
    };
    mc->req = hc_start(mc->hc, &hr, &http_callbacks, mc);
    buf_free(&body);
    if (!mc->req) {
        fail_attempt(mc, "bad_route", false, "the model URL was refused%s", NULL);
        return -1;
    }
    return 0;
}

/* -> REQUESTED: a new attempt on the current route. A request that cannot even start ends the
 * attempt on the next loop turn (the timer at now), never inside the caller. */
static void call_connect(struct model_call *mc)
{
    const struct model_route *r = &mc->spec.routes[mc->route];
    mc->attempt++;
    mc->err_type[0] = '\0';
    mc->err_msg[0] = '\0';
    mc->retryable = false;
    mc->first_ms = 0;
    mc->started_ms = loop_now_ms(mc->l);
    mc->retry_after_ms = -1;
    mc->finish[0] = '\0';
    memset(&mc->cur, 0, sizeof(mc->cur));
    buf_reset(&mc->err_body);
    call_state(mc, CALL_REQUESTED);
    mc->ls = llm_stream_create(r->provider, on_llm_event, mc);
    if (start_request(mc) < 0) {
        timer_arm(mc->l, &mc->timer, loop_now_ms(mc->l), timer_fired);
        return;
    }
    arm_deadline(mc);
}

/* ---- the verbs ---- */

/* Start a call; see the header. */
struct model_call *model_call_start(struct loop *l, struct hc *hc,
                                    const struct model_call_spec *spec,
                                    const struct model_sink *sink)
{
    if (!spec->n_routes || !sink->ops || !sink->ops->on_complete)
        return NULL;
    struct model_call *mc = xcalloc(1, sizeof(*mc));
    mc->l = l;
    mc->hc = hc;
    mc->spec = *spec;
    mc->sink = *sink;
    mc->state = CALL_INIT;
    call_connect(mc);
    return mc;
}

/* Cancel a call; see the header. */
void model_call_cancel(struct model_call *mc)
{
    if (!mc || call_final(mc))
        return;
    if (mc->state == CALL_REQUESTED || mc->state == CALL_STREAMING) {
        hc_cancel(mc->req); /* aborts the provider transfer at once */
        mc->req = NULL;
        record_attempt(mc, mc->err_type[0] ? "error" : "cancelled");
    }
    call_end(mc, CALL_CANCELLED);
}
