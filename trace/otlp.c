/* otlp.c - the OTLP/HTTP JSON exporter (otlp.h).
 *
 *   IDLE --span queued--> WAITING (batch timer) --timer--> SENDING --2xx--> IDLE / WAITING
 *                                                   ^         |  429/502/503/504, no answer:
 *                                                   +- BACKOFF <  Retry-After or 1 s doubling
 *
 * The queue is a buffer of rendered span objects; a batch takes all of it. While a batch is in
 * flight, new spans wait in the queue for the next one, and the queue's bound counts both. */
#include "trace/otlp.h"

#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "stream/jsonw.h"

#define OTLP_MAX_TRIES 6 /* the first request and 5 retries */
#define OTLP_BACKOFF_MS 1000
#define OTLP_BACKOFF_MAX_MS 30000
#define OTLP_TIMEOUT_MS 10000

struct otlp_exporter {
    struct loop *l;
    struct hc *h;
    const struct trace_conf *c;
    char url[600];
    struct timer timer;
    struct buf queue; /* span objects, comma-separated */
    uint32_t queued;  /* spans in queue */
    struct buf body;  /* the batch in flight (or waiting to be retried) */
    uint32_t in_body; /* its spans */
    uint32_t tries;
    struct hc_req *req;
    int status;
    int64_t retry_after_ms;
    struct otlp_stats st;
};

static void count(uint64_t *c, uint64_t n)
{
    __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

/* The request body; see otlp.h. */
void otlp_body(const char *service_name, const char *spans, size_t len, struct buf *out)
{
    struct jsonw w;
    buf_append_str(out, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":"
                        "\"service.name\",\"value\":{\"stringValue\":");
    jw_init(&w, out);
    jw_str(&w, service_name && service_name[0] ? service_name : "trilemma");
    buf_append_str(out, "}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"trilemma\"},\"spans\":[");
    buf_append(out, spans, len);
    buf_append_str(out, "]}]}]}");
}

static void send_batch(struct otlp_exporter *e);

static void timer_fired(struct loop *l, struct timer *t)
{
    (void)l;
    struct otlp_exporter *e =
        (struct otlp_exporter *)((char *)t - offsetof(struct otlp_exporter, timer));
    send_batch(e);
}

static void drop_body(struct otlp_exporter *e, const char *why)
{
    log_warn("otlp: %u spans dropped: %s", e->in_body, why);
    count(&e->st.dropped_spans, e->in_body);
    buf_reset(&e->body);
    e->in_body = 0;
    e->tries = 0;
}

/* After a request: the next batch when spans wait, else idle. */
static void next_batch(struct otlp_exporter *e)
{
    if (e->queued && !timer_armed(&e->timer))
        timer_arm(e->l, &e->timer, loop_now_ms(e->l) + e->c->otlp_batch_ms, timer_fired);
}

static bool retryable(int result, int status)
{
    if (result == HC_CONNECT_FAILED || result == HC_IO || result == HC_TIMEOUT)
        return true;
    return status == 429 || status == 502 || status == 503 || status == 504;
}

static int on_response(void *ctx, int status, int64_t retry_after_ms)
{
    struct otlp_exporter *e = ctx;
    e->status = status;
    e->retry_after_ms = retry_after_ms;
    return 0;
}

static int on_body(void *ctx, const char *p, size_t n)
{
    (void)ctx, (void)p, (void)n; /* the collector's partial-success details are not used */
    return 0;
}

static void on_done(void *ctx, int result, int status, const char *message)
{
    struct otlp_exporter *e = ctx;
    e->req = NULL;
    if (!e->status)
        e->status = status;
    if (result == HC_OK && e->status >= 200 && e->status < 300) {
        count(&e->st.exported_spans, e->in_body);
        buf_reset(&e->body);
        e->in_body = 0;
        e->tries = 0;
    } else if (retryable(result, e->status) && e->tries < OTLP_MAX_TRIES) {
        uint64_t wait = OTLP_BACKOFF_MS << (e->tries - 1 < 5 ? e->tries - 1 : 5);
        if (e->retry_after_ms >= 0)
            wait = (uint64_t)e->retry_after_ms;
        if (wait > OTLP_BACKOFF_MAX_MS)
            wait = OTLP_BACKOFF_MAX_MS;
        count(&e->st.retries, 1);
        log_info("otlp: collector answered %d (%s): retry in %llu ms", e->status,
                 message ? message : "", (unsigned long long)wait);
        timer_arm(e->l, &e->timer, loop_now_ms(e->l) + wait, timer_fired);
        return;
    } else {
        char why[200];
        snprintf(why, sizeof(why), "the collector answered %d (%s)", e->status,
                 message ? message : "");
        drop_body(e, why);
    }
    next_batch(e);
}

static const struct hc_callbacks callbacks = {
    .on_response = on_response,
    .on_body = on_body,
    .on_done = on_done,
};

/* Send the batch in body (a retry) or make one of the queue. */
static void send_batch(struct otlp_exporter *e)
{
    if (e->req)
        return;
    if (!e->in_body) {
        if (!e->queued)
            return;
        otlp_body(e->c->service_name, buf_begin(&e->queue), buf_size(&e->queue), &e->body);
        e->in_body = e->queued;
        e->queued = 0;
        buf_reset(&e->queue);
    }
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    struct hc_request r = {
        .url = e->url,
        .headers = headers,
        .body = buf_begin(&e->body),
        .body_len = buf_size(&e->body),
        .connect_timeout_ms = 5000,
        .total_timeout_ms = OTLP_TIMEOUT_MS,
    };
    e->tries++;
    e->status = 0;
    e->retry_after_ms = -1;
    count(&e->st.requests, 1);
    e->req = hc_start(e->h, &r, &callbacks, e);
    if (!e->req) {
        drop_body(e, "the request could not be made");
        next_batch(e);
    }
}

/* An exporter; see otlp.h. */
struct otlp_exporter *otlp_create(struct loop *l, struct hc *h, const struct trace_conf *c)
{
    if (!l || !h || !c || !c->otlp_endpoint || !c->otlp_endpoint[0])
        return NULL;
    struct otlp_exporter *e = xcalloc(1, sizeof(*e));
    e->l = l;
    e->h = h;
    e->c = c;
    size_t n = strlen(c->otlp_endpoint);
    while (n && c->otlp_endpoint[n - 1] == '/')
        n--;
    snprintf(e->url, sizeof(e->url), "%.*s/v1/traces", (int)n, c->otlp_endpoint);
    return e;
}

void otlp_destroy(struct otlp_exporter *e)
{
    if (!e)
        return;
    timer_disarm(e->l, &e->timer);
    hc_cancel(e->req);
    count(&e->st.dropped_spans, e->in_body + e->queued);
    buf_free(&e->queue);
    buf_free(&e->body);
    xfree(e);
}

/* Queue a trace's spans; see otlp.h. */
void otlp_add(struct otlp_exporter *e, struct trace *tr)
{
    uint32_t n = trace_span_count(tr);
    if (!e || !n)
        return;
    if ((uint64_t)e->queued + e->in_body + n > e->c->otlp_queue_spans) {
        count(&e->st.dropped_spans, n);
        return;
    }
    if (buf_size(&e->queue))
        buf_append(&e->queue, ",", 1);
    trace_otlp_spans(tr, &e->queue);
    e->queued += n;
    if (!e->req && !e->in_body)
        next_batch(e);
}

void otlp_stats(const struct otlp_exporter *e, struct otlp_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!e)
        return;
    out->exported_spans = __atomic_load_n(&e->st.exported_spans, __ATOMIC_RELAXED);
    out->dropped_spans = __atomic_load_n(&e->st.dropped_spans, __ATOMIC_RELAXED);
    out->requests = __atomic_load_n(&e->st.requests, __ATOMIC_RELAXED);
    out->retries = __atomic_load_n(&e->st.retries, __ATOMIC_RELAXED);
}
