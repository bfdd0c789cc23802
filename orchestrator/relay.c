/* relay.c - one turn's model call as an explicit state machine:
 *
 *   attempt_start --2xx--> streaming --end--> done (turn_end stop/length)
 *        |                     |  \--error/stall, no delta sent yet--> retry / fallback
 *        |                     \--error/stall after deltas--> failed (error + turn_end error)
 *        \--non-2xx / connect error--> retry (backoff, Retry-After) --> fallback --> failed
 *
 * Retries and fallbacks happen only while no delta has reached the client, so the client never
 * sees an answer restart. Every call's provider-reported usage is priced on its own and summed
 * into the turn's usage and cost. */
#include "orchestrator/relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/log.h"
#include "base/mem.h"
#include "net/utf8.h"
#include "orchestrator/prices.h"
#include "stream/http_client.h"
#include "stream/llm.h"

enum { OP_CURL_POLL = 9 }; /* net/ keeps op codes below 8 */

struct route {
    enum llm_provider provider;
    char model[128];
    char base_url[512]; /* without a trailing '/' */
    const char *key;    /* "" for keyless OpenAI-compatible servers */
};

static struct {
    struct route routes[RELAY_MAX_ROUTES];
    int n;
    bool echo;
    struct price_table *prices;
    int64_t usd_to_inr;
    char currency[8];
} g;

struct relay_worker {
    struct loop *l;
    struct hc *hc;
    const struct config *conf;
};

struct relay_turn {
    struct turn *t;
    struct relay_worker *rw;
    int route;
    unsigned attempt; /* on this route */
    struct hc_req *req;
    struct llm_stream *ls;
    int status;
    int64_t retry_after_ms;
    struct buf err_body;
    bool sent_text; /* a delta reached the session: no more retries */
    bool got_token; /* this call produced a token (stall deadline from now on) */
    bool in_feed;   /* inside llm_stream_feed (cannot be freed there) */
    bool dead;      /* cancelled while in_feed */
    char finish[16];
    struct llm_usage call_usage;
    bool call_has_usage;
    uint64_t call_started;
    uint64_t first_token_at;
    /* the failure of the current call */
    bool failed;
    bool retryable;
    char err_type[48];
    char err_msg[256];
    struct timer deadline;
    struct timer backoff;
};

static void attempt_start(struct relay_turn *rt);
static void call_ended(struct relay_turn *rt);

static struct relay_turn *timer_rt(struct timer *t, size_t off)
{
    return (struct relay_turn *)((char *)t - off);
}

static void fail_call(struct relay_turn *rt, const char *type, bool retryable, const char *fmt,
                      const char *detail)
{
    if (rt->failed)
        return; /* the first cause wins */
    rt->failed = true;
    rt->retryable = retryable;
    snprintf(rt->err_type, sizeof(rt->err_type), "%s", type);
    snprintf(rt->err_msg, sizeof(rt->err_msg), fmt, detail ? detail : "");
    /* byte limits may cut a character: never store or send invalid UTF-8 */
    utf8_scrub(rt->err_type);
    utf8_scrub(rt->err_msg);
}

/* ---- accounting: one call record (llm_calls row and ledger line) per HTTP call ---- */

static void record_call(struct relay_turn *rt, const char *status)
{
    const struct route *r = &g.routes[rt->route];
    uint64_t now = loop_now_ms(rt->rw->l);
    struct llm_call_record c = {0};
    snprintf(c.provider, sizeof(c.provider), "%s", llm_provider_name(r->provider));
    snprintf(c.model, sizeof(c.model), "%s", r->model);
    snprintf(c.role, sizeof(c.role), "%s",
             rt->attempt > 1 ? "retry"
             : rt->route > 0 ? "fallback"
                             : "model");
    snprintf(c.status, sizeof(c.status), "%s", status);
    if (rt->failed)
        snprintf(c.error, sizeof(c.error), "%.40s: %.110s", rt->err_type, rt->err_msg);
    utf8_scrub(c.error);
    c.attempt = rt->attempt;
    c.http_status = rt->status;
    c.usage = rt->call_usage;
    c.usage_reported = rt->call_has_usage;
    c.ttft_ms = rt->first_token_at ? (int64_t)(rt->first_token_at - rt->call_started) : -1;
    c.duration_ms = (int64_t)(now - rt->call_started);
    /* the price in force today: a row effective from a later date applies from that date */
    const struct price *price =
        prices_find(g.prices, llm_provider_name(r->provider), r->model, NULL);
    c.cost_micros = price && rt->call_has_usage
                        ? prices_cost(price, &rt->call_usage, g.currency, g.usd_to_inr)
                        : 0;
    turn_add_call(rt->t, &c);
    rt->call_has_usage = false;
    memset(&rt->call_usage, 0, sizeof(rt->call_usage));
}

/* ---- the normalized provider events ---- */

static void deadline_fired(struct loop *l, struct timer *t)
{
    (void)l;
    struct relay_turn *rt = timer_rt(t, offsetof(struct relay_turn, deadline));
    fail_call(rt, "timeout", true,
              rt->got_token ? "the model stream stalled" : "no first token in time%s", NULL);
    hc_cancel(rt->req);
    rt->req = NULL;
    call_ended(rt);
}

static void arm_deadline(struct relay_turn *rt)
{
    const struct config *c = rt->rw->conf;
    uint32_t ms = rt->got_token ? c->stall_timeout_ms : c->first_token_timeout_ms;
    timer_arm(rt->rw->l, &rt->deadline, loop_now_ms(rt->rw->l) + ms, deadline_fired);
}

static int on_llm_event(void *ctx, const struct llm_event *ev)
{
    struct relay_turn *rt = ctx;
    switch (ev->type) {
    case LLM_EV_TEXT:
        if (!ev->len)
            break;
        if (!rt->got_token) {
            rt->got_token = true;
            rt->first_token_at = loop_now_ms(rt->rw->l);
            arm_deadline(rt);
        }
        rt->sent_text = true;
        session_turn_delta(rt->t, ev->text, ev->len);
        break;
    case LLM_EV_TOOL_START:
    case LLM_EV_REASONING:
        if (!rt->got_token) { /* the model is working: the stall deadline applies now */
            rt->got_token = true;
            arm_deadline(rt);
        }
        break;
    case LLM_EV_USAGE:
        rt->call_usage = ev->usage;
        rt->call_has_usage = true;
        break;
    case LLM_EV_FINISH:
        snprintf(rt->finish, sizeof(rt->finish), "%s", ev->finish);
        break;
    case LLM_EV_ERROR: {
        char msg[200];
        snprintf(msg, sizeof(msg), "%.*s", (int)(ev->len > 180 ? 180 : ev->len), ev->text);
        fail_call(rt, ev->error_type ? ev->error_type : "provider_error", ev->retryable,
                  "the model provider reported an error: %s", msg);
        return 1; /* stop reading this stream */
    }
    default:
        break;
    }
    return 0;
}

/* ---- the HTTP transfer ---- */

static int on_response(void *ctx, int status, int64_t retry_after_ms)
{
    struct relay_turn *rt = ctx;
    rt->status = status;
    rt->retry_after_ms = retry_after_ms;
    return 0;
}

static void relay_free(struct relay_turn *rt)
{
    timer_disarm(rt->rw->l, &rt->deadline);
    timer_disarm(rt->rw->l, &rt->backoff);
    llm_stream_destroy(rt->ls);
    buf_free(&rt->err_body);
    xfree(rt);
}

static int on_body(void *ctx, const char *p, size_t n)
{
    struct relay_turn *rt = ctx;
    if (rt->status < 200 || rt->status > 299) {
        if (buf_size(&rt->err_body) < 65536)
            buf_append(&rt->err_body, p, n);
        return 0;
    }
    if (rt->got_token)
        arm_deadline(rt); /* bytes are flowing: push the stall deadline */
    rt->in_feed = true;
    int r = llm_stream_feed(rt->ls, p, n);
    rt->in_feed = false;
    if (rt->dead) {
        relay_free(rt);
        return 1;
    }
    if (r < 0 && !rt->failed)
        fail_call(rt, "bad_stream", !rt->sent_text, "the model stream was malformed%s", NULL);
    return r != 0;
}

static void classify_http(struct relay_turn *rt, int result, const char *message)
{
    if (rt->failed)
        return;
    if (result == HC_OK && rt->status >= 200 && rt->status <= 299) {
        if (llm_stream_finish(rt->ls) < 0 && !rt->failed)
            fail_call(rt, "incomplete_stream", true, "the model stream ended early%s", NULL);
        return;
    }
    if (rt->status >= 300) {
        struct llm_event ev = {0};
        llm_parse_error(g.routes[rt->route].provider, rt->status, buf_begin(&rt->err_body),
                        buf_size(&rt->err_body), &ev);
        char msg[200];
        snprintf(msg, sizeof(msg), "HTTP %d: %.*s", rt->status, (int)(ev.len > 160 ? 160 : ev.len),
                 ev.text ? ev.text : "");
        fail_call(rt, ev.error_type ? ev.error_type : "http_error", ev.retryable, "%s", msg);
        return;
    }
    bool retryable = result == HC_CONNECT_FAILED || result == HC_IO || result == HC_TIMEOUT;
    fail_call(rt, result == HC_CONNECT_FAILED ? "connect_failed" : "connection_error", retryable,
              "the model provider could not be reached: %s", message);
}

static void on_done(void *ctx, int result, int status, const char *message)
{
    struct relay_turn *rt = ctx;
    rt->req = NULL;
    if (!rt->status)
        rt->status = status;
    classify_http(rt, result, message);
    call_ended(rt);
}

static const struct hc_callbacks callbacks = {
    .on_response = on_response,
    .on_body = on_body,
    .on_done = on_done,
};

/* ---- attempts, retries, fallbacks ---- */

static void finish_turn(struct relay_turn *rt, const char *finish, const char *code,
                        const char *message)
{
    struct turn *t = rt->t;
    char msg[256];
    snprintf(msg, sizeof(msg), "%s", message ? message : "");
    turn_set_responder_state(t, NULL);
    relay_free(rt);
    session_turn_done(t, finish, code, code ? msg : NULL);
}

static const char *turn_finish(const char *provider_finish)
{
    return strcmp(provider_finish, "length") == 0 ? "length" : "stop";
}

static void backoff_fired(struct loop *l, struct timer *t)
{
    (void)l;
    attempt_start(timer_rt(t, offsetof(struct relay_turn, backoff)));
}

static uint64_t backoff_ms(const struct relay_turn *rt)
{
    if (rt->retry_after_ms >= 0)
        return (uint64_t)rt->retry_after_ms;
    uint64_t base = (uint64_t)rt->rw->conf->retry_base_ms << (rt->attempt - 1);
    uint32_t r;
    if (getrandom(&r, sizeof(r), 0) != sizeof(r))
        r = 0;
    return base / 2 + (base ? r % (base + 1) : 0); /* base +- 50% */
}

/* The current call is over (done, failed or timed out): what next? */
static void call_ended(struct relay_turn *rt)
{
    timer_disarm(rt->rw->l, &rt->deadline);
    record_call(rt, rt->failed ? "error" : "ok");
    llm_stream_destroy(rt->ls);
    rt->ls = NULL;
    if (!rt->failed) {
        finish_turn(rt, turn_finish(rt->finish), NULL, NULL);
        return;
    }
    const struct route *r = &g.routes[rt->route];
    log_warn("model call %s/%s failed (%s): %s", llm_provider_name(r->provider), r->model,
             rt->err_type, rt->err_msg);
    if (rt->sent_text) {
        finish_turn(rt, "error", "provider_error", rt->err_msg);
        return;
    }
    /* A Retry-After longer than the first-token deadline is not worth waiting for here: the
     * next route answers sooner. */
    bool wait_ok = rt->retry_after_ms < 0 ||
                   rt->retry_after_ms <= (int64_t)rt->rw->conf->first_token_timeout_ms;
    if (rt->retryable && wait_ok && rt->attempt <= rt->rw->conf->max_retries) {
        timer_arm(rt->rw->l, &rt->backoff, loop_now_ms(rt->rw->l) + backoff_ms(rt), backoff_fired);
        return;
    }
    if (rt->route + 1 < g.n) {
        rt->route++;
        rt->attempt = 0;
        attempt_start(rt);
        return;
    }
    finish_turn(rt, "error", "provider_unavailable", rt->err_msg);
}

static int build_body(struct relay_turn *rt, struct buf *body, char *path, size_t cap)
{
    const struct config *c = rt->rw->conf;
    const struct history_msg *h;
    size_t n = turn_history(rt->t, &h);
    struct llm_message msgs[n + 1];
    size_t m = 0;
    if (c->system_prompt[0])
        msgs[m++] = (struct llm_message){"system", c->system_prompt, strlen(c->system_prompt)};
    for (size_t i = 0; i < n; i++)
        msgs[m++] = (struct llm_message){h[i].role, h[i].text, h[i].len};
    struct llm_request req = {
        .model = g.routes[rt->route].model,
        .messages = msgs,
        .n_messages = m,
        .max_tokens = c->max_tokens,
        .temperature = -1,
    };
    return llm_build_request(g.routes[rt->route].provider, &req, body, path, cap);
}

static void attempt_start(struct relay_turn *rt)
{
    const struct route *r = &g.routes[rt->route];
    rt->attempt++;
    rt->failed = false;
    rt->got_token = false;
    rt->first_token_at = 0;
    rt->call_started = loop_now_ms(rt->rw->l);
    rt->status = 0;
    rt->retry_after_ms = -1;
    rt->finish[0] = '\0';
    buf_reset(&rt->err_body);
    struct buf body = {0};
    char path[512], url[1280], auth[2][512];
    if (build_body(rt, &body, path, sizeof(path)) < 0) {
        buf_free(&body);
        fail_call(rt, "internal", false, "could not build the model request%s", NULL);
        call_ended(rt);
        return;
    }
    snprintf(url, sizeof(url), "%s%s", r->base_url, path);
    int na = llm_auth_headers(r->provider, r->key, auth);
    const char *headers[6] = {"Content-Type: application/json", "Accept: text/event-stream"};
    for (int i = 0; i < na; i++)
        headers[2 + i] = auth[i];
    struct hc_request req = {
        .url = url,
        .headers = headers,
        .body = buf_begin(&body),
        .body_len = buf_size(&body),
        .connect_timeout_ms = rt->rw->conf->connect_timeout_ms,
    };
    rt->ls = llm_stream_create(r->provider, on_llm_event, rt);
    arm_deadline(rt);
    rt->req = hc_start(rt->rw->hc, &req, &callbacks, rt);
    buf_free(&body);
    if (!rt->req) {
        fail_call(rt, "bad_route", false, "the model URL was refused%s", NULL);
        call_ended(rt);
    }
}

/* ---- the responder ---- */

static int relay_start(struct turn *t, const char *text, size_t len)
{
    (void)text; /* the user's message is the last one of turn_history */
    (void)len;
    struct relay_worker *rw = turn_responder_worker(t);
    if (!rw || !rw->hc)
        return -1; /* the session ends the turn with an internal error */
    struct relay_turn *rt = xcalloc(1, sizeof(*rt));
    rt->t = t;
    rt->rw = rw;
    turn_set_responder_state(t, rt);
    attempt_start(rt);
    return 0;
}

static void relay_cancel(struct turn *t)
{
    struct relay_turn *rt = turn_responder_state(t);
    if (!rt)
        return;
    turn_set_responder_state(t, NULL);
    if (rt->req) {
        hc_cancel(rt->req); /* aborts the provider transfer at once */
        rt->req = NULL;
        record_call(rt, "cancelled");
    }
    if (rt->in_feed) {
        rt->dead = true; /* freed when llm_stream_feed returns */
        return;
    }
    relay_free(rt);
}

static void *relay_worker_create(struct loop *l, const struct config *conf)
{
    struct relay_worker *rw = xcalloc(1, sizeof(*rw));
    rw->l = l;
    rw->conf = conf;
    rw->hc = hc_create(l, OP_CURL_POLL);
    if (!rw->hc)
        log_error("cannot create the HTTP client: model calls will fail");
    return rw;
}

static void relay_worker_destroy(void *state)
{
    struct relay_worker *rw = state;
    if (!rw)
        return;
    hc_destroy(rw->hc);
    xfree(rw);
}

static const struct responder relay = {
    .name = "relay",
    .worker_create = relay_worker_create,
    .worker_destroy = relay_worker_destroy,
    .start = relay_start,
    .cancel = relay_cancel,
};

/* ---- set-up ---- */

static const char *default_base(enum llm_provider p)
{
    static const char *const bases[LLM__COUNT] = {
        "https://api.openai.com/v1",
        "https://api.anthropic.com",
        "https://generativelanguage.googleapis.com",
    };
    return bases[p];
}

static int add_route(const struct config *c, const char *spec, size_t len, char *err, size_t errlen)
{
    const char *slash = memchr(spec, '/', len);
    int p = slash ? llm_provider_from_name(spec, (size_t)(slash - spec)) : -1;
    size_t ml = slash ? len - (size_t)(slash - spec) - 1 : 0;
    if (p < 0 || ml == 0 || ml >= sizeof(g.routes[0].model)) {
        snprintf(err, errlen,
                 "model '%.*s': expected provider/model with provider openai, anthropic or "
                 "gemini (or \"echo\")",
                 (int)(len > 100 ? 100 : len), spec);
        return -1;
    }
    if (g.n == RELAY_MAX_ROUTES) {
        snprintf(err, errlen, "more than %d routes", RELAY_MAX_ROUTES);
        return -1;
    }
    struct route *r = &g.routes[g.n];
    r->provider = (enum llm_provider)p;
    memcpy(r->model, slash + 1, ml);
    r->model[ml] = '\0';
    const char *base[] = {c->openai_base_url, c->anthropic_base_url, c->gemini_base_url};
    const char *key[] = {c->openai_api_key, c->anthropic_api_key, c->gemini_api_key};
    const char *envs[] = {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"};
    snprintf(r->base_url, sizeof(r->base_url), "%s", base[p]);
    size_t bl = strlen(r->base_url);
    while (bl && r->base_url[bl - 1] == '/')
        r->base_url[--bl] = '\0';
    r->key = key[p];
    if (!r->key[0] && strcmp(base[p], default_base(r->provider)) == 0) {
        snprintf(err, errlen, "model %s/%s needs %s (or a *_BASE_URL of a keyless server)",
                 llm_provider_name(r->provider), r->model, envs[p]);
        return -1;
    }
    if (!prices_find(g.prices, llm_provider_name(r->provider), r->model, NULL))
        log_warn("no price for %s/%s in the price file: its cost will show as 0",
                 llm_provider_name(r->provider), r->model);
    g.n++;
    return 0;
}

/* Parse routes and load prices; see the header. */
int relay_setup(const struct config *c, char *err, size_t errlen)
{
    memset(&g, 0, sizeof(g));
    snprintf(g.currency, sizeof(g.currency), "%s", c->currency);
    g.usd_to_inr = prices_parse_micros(c->usd_to_inr, strlen(c->usd_to_inr));
    if (g.usd_to_inr <= 0) {
        snprintf(err, errlen, "usd_to_inr: expected a positive decimal");
        return -1;
    }
    if (strcmp(c->model, "echo") == 0) {
        g.echo = true;
        return 0;
    }
    g.prices = prices_load(c->price_file, err, errlen);
    if (!g.prices)
        return -1;
    if (add_route(c, c->model, strlen(c->model), err, errlen) < 0)
        goto out_free;
    for (const char *p = c->fallbacks; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ",");
        while (n && p[n - 1] == ' ')
            n--;
        if (n && add_route(c, p, n, err, errlen) < 0)
            goto out_free;
        p += n;
        while (*p && *p != ',')
            p++;
    }
    return 0;
out_free:
    prices_free(g.prices);
    g.prices = NULL;
    return -1;
}

void relay_teardown(void)
{
    prices_free(g.prices);
    g.prices = NULL;
}

const struct responder *relay_responder(void)
{
    return g.echo ? &echo_responder : &relay;
}

void relay_describe(char *out, size_t cap)
{
    if (g.echo) {
        snprintf(out, cap, "echo");
        return;
    }
    size_t off = 0;
    for (int i = 0; i < g.n && off < cap; i++)
        off += (size_t)snprintf(out + off, cap - off, "%s%s/%s at %s", i ? " -> " : "",
                                llm_provider_name(g.routes[i].provider), g.routes[i].model,
                                g.routes[i].base_url);
}
