/* tool_run.c - tool calls on the worker's curl multi, one state machine per call, and batches.
 *
 * A call moves NEW -> SENDING <-> BACKOFF -> DONE, or NEW -> ENDING -> DONE when it ends before
 * any request (invalid arguments, a URL curl refuses, a result served by the tool cache): ENDING
 * waits one loop turn so that the owner never hears of an end from inside its own start call.
 * With the tool cache (tool_cache.h), NEW -> CACHED while it waits for an identical call in
 * flight or the shared tier, then ENDING (served) or SENDING (its own request). Every change goes
 * through call_state(), the one place a tracer will hook. See tool_run.h and docs/tools.md. */
#include "orchestrator/tool_run.h"
#include "base/redact.h"
#include "base/clock.h"
#include "base/mem.h"
#include "orchestrator/tool_cache.h"
#include "orchestrator/tool_run_int.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define TOOL_MAX_RESULT (4u << 20) /* bytes of one answer (what the JSON boundary can load) */
#define TOOL_BACKOFF_MS 50         /* first retry delay, doubled each time */
#define TOOL_ERR_BODY 300          /* bytes of an error answer quoted to the model */

static const char *const status_names[TOOL__NSTATUS] = {
    "running", "ok", "error", "timeout", "invalid_arguments", "cancelled",
};

const char *tool_status_name(enum tool_status s)
{
    return (unsigned)s < TOOL__NSTATUS ? status_names[s] : "unknown";
}

/* See tool_run.h. */
struct tool_runner *tool_runner_create(struct loop *l, struct hc *h)
{
    if (!l || !h)
        return NULL;
    struct tool_runner *r = xcalloc(1, sizeof(*r));
    r->l = l;
    r->h = h;
    r->doc = json_doc_create();
    return r;
}

/* See tool_run.h. */
void tool_runner_set_cache(struct tool_runner *r, struct tool_cache *tc)
{
    r->cache = tc;
}

void tool_runner_destroy(struct tool_runner *r)
{
    if (!r)
        return;
    json_doc_destroy(r->doc);
    xfree(r);
}

void tool_runner_stats(const struct tool_runner *r, struct tool_runner_stats *out)
{
    *out = r->st;
}

/* ---- one call ---------------------------------------------------------------------------- */

/* The one transition function: every state change of a call passes here. */
static void call_state(struct tool_call *c, enum call_state s)
{
    c->state = s;
}

static void set_text(struct tool_call *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_text(struct tool_call *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    buf_reset(&c->res.text);
    buf_append_str(&c->res.text, msg);
}

/* Record the end: status, latency, counters. The text is already set. The cache hears of every
 * end of a call it knows (it keeps a result, hands it to identical calls waiting). */
static void finalize(struct tool_call *c, enum tool_status st)
{
    c->res.status = st;
    c->res.latency_us = (clock_now_ns() - c->start_ns) / 1000;
    c->r->st.calls[st]++;
    timer_disarm(c->r->l, &c->timer);
    call_state(c, TC_DONE);
    if (c->flight)
        tool_cache_call_ended(c->r->cache, c);
}

/* The end, reported now (from a curl or timer callback). fn may free c: nothing after it. */
static void end_now(struct tool_call *c, enum tool_status st)
{
    finalize(c, st);
    if (c->fn)
        c->fn(c->ctx, c);
}

static void on_deferred_end(struct loop *l, struct timer *t)
{
    (void)l;
    struct tool_call *c = (struct tool_call *)((char *)t - offsetof(struct tool_call, timer));
    end_now(c, c->res.status);
}

/* The end, reported on the next loop turn (the caller is inside tool_call_start). */
static void end_deferred(struct tool_call *c, enum tool_status st)
{
    c->res.status = st;
    call_state(c, TC_ENDING);
    timer_arm(c->r->l, &c->timer, 0, on_deferred_end);
}

void tool_call__end_deferred(struct tool_call *c, enum tool_status st)
{
    end_deferred(c, st);
}

static bool retryable(int result, int status)
{
    if (result == HC_CONNECT_FAILED || result == HC_IO)
        return true;
    return result == HC_OK && (status >= 500 || status == 429 || status == 408);
}

static int send_attempt(struct tool_call *c);

static void on_backoff(struct loop *l, struct timer *t)
{
    (void)l;
    struct tool_call *c = (struct tool_call *)((char *)t - offsetof(struct tool_call, timer));
    if (send_attempt(c))
        end_now(c, c->res.status);
}

static int on_response(void *ctx, int status, int64_t retry_after_ms)
{
    (void)retry_after_ms; /* the call's deadline is seconds at most: a Retry-After is longer */
    struct tool_call *c = ctx;
    c->res.http_status = status;
    return 0;
}

static int on_body(void *ctx, const char *p, size_t n)
{
    struct tool_call *c = ctx;
    if (buf_size(&c->raw) + n > TOOL_MAX_RESULT) {
        c->too_large = true;
        return 1;
    }
    buf_append(&c->raw, p, n);
    c->res.raw_bytes = buf_size(&c->raw);
    return 0;
}

/* A failure's reason for the model: what happened, after how many attempts. */
static void fail_text(struct tool_call *c, int result, int status, const char *message)
{
    const char *name = c->t->name;
    uint32_t n = c->res.attempts;
    const char *s = n == 1 ? "" : "s";
    if (c->too_large)
        set_text(c, "%s failed: the answer is larger than %u bytes", name, TOOL_MAX_RESULT);
    else if (result == HC_OK)
        set_text(c, "%s failed: HTTP %d after %u attempt%s: %.*s", name, status, n, s,
                 (int)(buf_size(&c->raw) < TOOL_ERR_BODY ? buf_size(&c->raw) : TOOL_ERR_BODY),
                 buf_begin(&c->raw));
    else
        set_text(c, "%s failed after %u attempt%s: %s", name, n, s, message);
}

static void on_done(void *ctx, int result, int status, const char *message)
{
    struct tool_call *c = ctx;
    struct tool_runner *r = c->r;
    c->req = NULL;
    if (result == HC_OK && status >= 200 && status < 300) {
        buf_reset(&c->res.text);
        tool_shape(c->t, r->doc, buf_begin(&c->raw), buf_size(&c->raw), &c->res.text);
        c->res.shaped_bytes = buf_size(&c->res.text);
        end_now(c, TOOL_OK);
        return;
    }
    if (result == HC_TIMEOUT) {
        set_text(c, "%s failed: no answer within %u ms (timeout)", c->t->name, c->t->timeout_ms);
        end_now(c, TOOL_TIMEOUT);
        return;
    }
    uint64_t delay = (uint64_t)TOOL_BACKOFF_MS << (c->res.attempts - 1);
    if (!c->too_large && retryable(result, status) && c->res.attempts <= c->t->retries &&
        clock_now_ms() + delay < c->deadline_ms) {
        r->st.retries++;
        call_state(c, TC_BACKOFF);
        timer_arm(r->l, &c->timer, clock_now_ms() + delay, on_backoff);
        return;
    }
    fail_text(c, result, status, message);
    end_now(c, TOOL_ERROR);
}

/* Send one attempt with the time that remains. Returns 0, or -1 with the call's status and text
 * set (the caller ends it). */
static int send_attempt(struct tool_call *c)
{
    static const struct hc_callbacks cb = {on_response, on_body, on_done};
    uint64_t now = clock_now_ms();
    if (now >= c->deadline_ms) {
        set_text(c, "%s failed: no answer within %u ms (timeout)", c->t->name, c->t->timeout_ms);
        c->res.status = TOOL_TIMEOUT;
        return -1;
    }
    uint32_t left = (uint32_t)(c->deadline_ms - now);
    struct hc_request req = {
        .url = buf_begin(&c->url),
        .headers = c->headers,
        .body = c->t->method == TOOL_POST ? buf_begin(&c->body) : NULL,
        .body_len = buf_size(&c->body),
        .connect_timeout_ms = left,
        .total_timeout_ms = left,
    };
    buf_reset(&c->raw);
    c->res.http_status = 0;
    c->res.raw_bytes = 0;
    c->res.attempts++;
    c->r->st.attempts++;
    c->req = hc_start(c->r->h, &req, &cb, c);
    if (!c->req) {
        char url[512]; /* the text goes to the model and the turn's record: no credentials */
        url_redact(req.url, url, sizeof(url));
        set_text(c, "%s failed: the request could not be made (URL %s)", c->t->name, url);
        c->res.status = TOOL_ERROR;
        return -1;
    }
    call_state(c, TC_SENDING);
    return 0;
}

/* Arguments checked, request built: returns 0, or -1 with the text set (invalid arguments). */
static int prepare(struct tool_call *c, const char *args, size_t len)
{
    char err[512];
    json_doc *d = c->r->doc;
    if (!c->t) {
        set_text(c, "%s: no such tool", c->name);
        return -1;
    }
    if (tool_check_args(c->t, d, args, len, err, sizeof(err)) ||
        tool_build_call(c->t, d, &c->url, &c->body, err, sizeof(err))) {
        set_text(c, "invalid arguments: %s", err);
        return -1;
    }
    buf_append(&c->url, "", 1); /* NUL-terminated for curl, not counted */
    c->url.len--;
    size_t h = 0;
    for (size_t i = 0; c->t->headers[i]; i++)
        c->headers[h++] = c->t->headers[i];
    if (c->t->method == TOOL_POST) {
        c->headers[h++] = "Content-Type: application/json";
        buf_append(&c->body, "", 1);
        c->body.len--;
    }
    if (c->r->traceparent[0]) {
        snprintf(c->tp_header, sizeof(c->tp_header), "traceparent: %s", c->r->traceparent);
        c->headers[h++] = c->tp_header;
    }
    c->headers[h] = NULL;
    return 0;
}

/* Send the first attempt (tool_run_int.h). */
void tool_call__send(struct tool_call *c)
{
    if (send_attempt(c))
        end_deferred(c, c->res.status);
}

static struct tool_call *call_new(struct tool_runner *r, const struct tool_def *t, const char *name,
                                  tool_call_fn fn, void *ctx)
{
    struct tool_call *c = xcalloc(1, sizeof(*c));
    c->r = r;
    c->t = t;
    snprintf(c->name, sizeof(c->name), "%s", t ? t->name : name ? name : "");
    c->fn = fn;
    c->ctx = ctx;
    c->start_ns = clock_now_ns();
    call_state(c, TC_NEW);
    return c;
}

static void call_begin(struct tool_call *c, const char *args, size_t len)
{
    if (prepare(c, args, len)) {
        end_deferred(c, TOOL_INVALID_ARGS);
        return;
    }
    c->deadline_ms = clock_now_ms() + c->t->timeout_ms;
    if (c->r->cache && c->t->cache_ttl_s && tool_cache_begin(c->r->cache, c, args, len))
        return; /* served, waiting for an identical call, or reading the shared tier */
    if (send_attempt(c))
        end_deferred(c, c->res.status);
}

struct tool_call *tool_call__new(struct tool_runner *r, const struct tool_def *t, tool_call_fn fn,
                                 void *ctx)
{
    return call_new(r, t, NULL, fn, ctx);
}

void tool_call__begin(struct tool_call *c, const char *args, size_t len)
{
    call_begin(c, args, len);
}

/* See tool_run.h. */
struct tool_call *tool_call_start(struct tool_runner *r, const struct tool_def *t, const char *args,
                                  size_t len, tool_call_fn fn, void *ctx)
{
    struct tool_call *c = call_new(r, t, NULL, fn, ctx);
    call_begin(c, args, len);
    return c;
}

void tool_call_cancel(struct tool_call *c)
{
    if (!c || c->state == TC_DONE)
        return;
    if (c->req) {
        hc_cancel(c->req);
        c->req = NULL;
    }
    set_text(c, "%s: cancelled", c->name);
    finalize(c, TOOL_CANCELLED);
}

/* See tool_run.h. */
void tool_runner_set_traceparents(struct tool_runner *r, const char (*tps)[56], size_t n)
{
    r->tp_each = tps;
    r->n_tp_each = n;
}

/* See tool_run.h. */
void tool_runner_set_traceparent(struct tool_runner *r, const char *tp)
{
    snprintf(r->traceparent, sizeof(r->traceparent), "%s", tp ? tp : "");
}

const struct tool_result *tool_call_result(const struct tool_call *c)
{
    return &c->res;
}

const char *tool_call_raw(const struct tool_call *c, size_t *len)
{
    *len = buf_size(&c->raw);
    return buf_begin(&c->raw);
}

void tool_call_free(struct tool_call *c)
{
    if (!c)
        return;
    tool_call_cancel(c);
    buf_free(&c->url);
    buf_free(&c->body);
    buf_free(&c->raw);
    buf_free(&c->res.text);
    xfree(c);
}

/* ---- batches ----------------------------------------------------------------------------- */

struct tool_batch {
    struct tool_runner *r;
    struct tool_call **calls;
    size_t n, pending;
    tool_batch_fn fn;
    void *ctx;
    struct timer timer; /* an empty batch reports on the next loop turn */
    bool cancelled;
};

static void batch_report(struct tool_batch *b)
{
    if (!b->cancelled && b->fn)
        b->fn(b->ctx, b); /* may free b */
}

static void on_call_done(void *ctx, struct tool_call *c)
{
    (void)c;
    struct tool_batch *b = ctx;
    if (--b->pending == 0)
        batch_report(b);
}

static void on_empty_batch(struct loop *l, struct timer *t)
{
    (void)l;
    batch_report((struct tool_batch *)((char *)t - offsetof(struct tool_batch, timer)));
}

/* See tool_run.h. Every call is created before any is started, so that pending counts them all
 * before the first can end. */
struct tool_batch *tool_batch_start(struct tool_runner *r, const struct tool_set *ts,
                                    const struct llm_msg_tool_call *calls, size_t n,
                                    tool_batch_fn fn, void *ctx)
{
    struct tool_batch *b = xcalloc(1, sizeof(*b));
    b->r = r;
    b->fn = fn;
    b->ctx = ctx;
    b->n = b->pending = n;
    b->calls = xcalloc(n ? n : 1, sizeof(*b->calls));
    for (size_t i = 0; i < n; i++) {
        const char *name = calls[i].name ? calls[i].name : "";
        const struct tool_def *t = tool_set_find(ts, name, strlen(name));
        b->calls[i] = call_new(r, t, name, on_call_done, b);
    }
    char saved[sizeof(r->traceparent)];
    memcpy(saved, r->traceparent, sizeof(saved));
    for (size_t i = 0; i < n; i++) {
        if (i < r->n_tp_each) /* each call's own span as the parent of the tool's work */
            snprintf(r->traceparent, sizeof(r->traceparent), "%s", r->tp_each[i]);
        call_begin(b->calls[i], calls[i].arguments, calls[i].arguments_len);
    }
    memcpy(r->traceparent, saved, sizeof(saved));
    r->n_tp_each = 0;
    if (!n)
        timer_arm(r->l, &b->timer, 0, on_empty_batch);
    return b;
}

void tool_batch_cancel(struct tool_batch *b)
{
    if (!b)
        return;
    b->cancelled = true;
    timer_disarm(b->r->l, &b->timer);
    for (size_t i = 0; i < b->n; i++)
        tool_call_cancel(b->calls[i]);
}

size_t tool_batch_count(const struct tool_batch *b)
{
    return b->n;
}

const struct tool_result *tool_batch_result(const struct tool_batch *b, size_t i)
{
    return i < b->n ? &b->calls[i]->res : NULL;
}

const char *tool_batch_raw(const struct tool_batch *b, size_t i, size_t *len)
{
    *len = 0;
    return i < b->n ? tool_call_raw(b->calls[i], len) : NULL;
}

void tool_batch_free(struct tool_batch *b)
{
    if (!b)
        return;
    tool_batch_cancel(b);
    for (size_t i = 0; i < b->n; i++)
        tool_call_free(b->calls[i]);
    xfree(b->calls);
    xfree(b);
}
