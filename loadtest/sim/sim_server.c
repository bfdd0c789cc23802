/* sim_server.c - the simulator's net/ hooks: routing of the providers' paths (and of the
 * provisioned pools under /ptu/NAME/), request admission (capacity, directives, injected faults),
 * the usage/cache model, and /v1/models.
 *
 * Every request is answered by this module (on_request always returns true): unknown paths get
 * a 404 in OpenAI's error shape. /healthz, /readyz and /metrics are net/'s own. */
#include "loadtest/sim/sim.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/mem.h"
#include "loadtest/sim/sim_agent.h"
#include "loadtest/sim/sim_answer.h"
#include "loadtest/sim/sim_catalog_api.h"
#include "loadtest/sim/sim_hash.h"
#include "loadtest/sim/sim_embed_api.h"
#include "loadtest/sim/sim_reqlog.h"
#include "loadtest/sim/sim_request.h"
#include "loadtest/sim/sim_stream.h"
#include "loadtest/sim/sim_table.h"
#include "loadtest/sim/sim_wire.h"
#include "stream/jsonw.h"

static struct sim *g_sim; /* set once by sim_server_hooks, before the workers start */

struct route {
    enum sim_format fmt;
    bool gemini_stream; /* :streamGenerateContent */
    char model[SIM_NAME_MAX];
    int pool;         /* index in sim->pools, -1 = pay-as-you-go */
    const char *sent; /* the path as sent, /ptu/NAME included (the request log) */
    size_t sent_len;
};

static bool path_is(const struct http_request *req, const char *p)
{
    return req->path_len == strlen(p) && memcmp(req->path, p, req->path_len) == 0;
}

static bool method_is(const struct http_request *req, const char *m)
{
    return req->method_len == strlen(m) && memcmp(req->method, m, req->method_len) == 0;
}

/* /v1beta/models/{model}:streamGenerateContent or :generateContent (also under /v1/). */
static bool route_gemini(const struct http_request *req, struct route *rt)
{
    static const char *const prefixes[] = {"/v1beta/models/", "/v1/models/"};
    const char *p = req->path, *end = req->path + req->path_len;
    for (size_t i = 0; i < 2; i++) {
        size_t n = strlen(prefixes[i]);
        if (req->path_len <= n || memcmp(p, prefixes[i], n) != 0)
            continue;
        const char *model = p + n, *colon = memchr(model, ':', (size_t)(end - model));
        if (!colon || colon == model || (size_t)(colon - model) >= SIM_NAME_MAX)
            return false;
        size_t vn = (size_t)(end - colon - 1);
        if (vn == 21 && memcmp(colon + 1, "streamGenerateContent", 21) == 0)
            rt->gemini_stream = true;
        else if (!(vn == 15 && memcmp(colon + 1, "generateContent", 15) == 0))
            return false;
        memcpy(rt->model, model, (size_t)(colon - model));
        rt->model[colon - model] = '\0';
        rt->fmt = SIM_GEMINI;
        return true;
    }
    return false;
}

static bool route(const struct http_request *req, struct route *rt)
{
    memset(rt, 0, sizeof(*rt));
    if (path_is(req, "/v1/chat/completions") || path_is(req, "/chat/completions")) {
        rt->fmt = SIM_OPENAI;
        return true;
    }
    if (path_is(req, "/v1/messages")) {
        rt->fmt = SIM_ANTHROPIC;
        return true;
    }
    return route_gemini(req, rt);
}

/* An error response in fmt's shape; 429 carries retry-after. */
static void reply_error(struct conn *c, enum sim_format fmt, int status, const char *message,
                        uint32_t retry_after)
{
    struct buf body = {0};
    char extra[64] = "";
    sim_wire_error_body(fmt, status, message, &body);
    if (status == 429)
        snprintf(extra, sizeof(extra), "retry-after: %u\r\n", retry_after ? retry_after : 1);
    conn_http_reply(c, status, "application/json; charset=utf-8", buf_begin(&body), buf_size(&body),
                    extra[0] ? extra : NULL);
    buf_free(&body);
}

static const char *error_message(enum sim_format fmt, int status)
{
    if (status == 429)
        return fmt == SIM_GEMINI ? "Resource has been exhausted (e.g. check quota)."
                                 : "Rate limit reached (simulated).";
    if (status == 529 || (status == 503 && fmt == SIM_ANTHROPIC))
        return "Overloaded";
    if (status == 503)
        return fmt == SIM_GEMINI ? "The model is overloaded. Please try again later."
                                 : "The server is overloaded or not ready yet.";
    if (status >= 500)
        return "The server had an error while processing your request. Sorry about that!";
    return "simulated error";
}

/* The status of an error answered on purpose, or 0: [[sim:status]], [[sim:fail_first]] (the
 * first N requests of the same conversation), then --error-rate. */
static int injected_status(struct sim_worker *sw, const struct sim_req *r)
{
    if (r->d.status >= 400 && r->d.status <= 599)
        return (int)r->d.status;
    if (r->d.fail_first > 0) {
        uint32_t seen = 0;
        sim_table_get(sw->attempts, r->conv_hash, &seen);
        sim_table_put(sw->attempts, r->conv_hash, seen + 1);
        if (seen < r->d.fail_first)
            return r->fmt == SIM_ANTHROPIC ? 529 : 503;
    }
    if (sw->sim->o.error_rate > 0 && sim_rng_unit(&sw->rng) < sw->sim->o.error_rate)
        return r->fmt == SIM_ANTHROPIC ? 529 : r->fmt == SIM_GEMINI ? 503 : 500;
    return 0;
}

/* The cache model, per worker (docs/sim.md "Cached tokens"). A prefix is its messages 0..i, the
 * format, model, tools, API key and OpenAI prompt_cache_key; it is readable while it was seen
 * less than --cache-ttl-s ago (a read refreshes it, as Anthropic's does). OpenAI and Gemini cache
 * every prefix implicitly. Anthropic caches only with cache_control: prefixes ending at a
 * breakpoint are written; a read is the longest prefix seen at or before the last breakpoint
 * (Anthropic looks back up to 20 blocks from a breakpoint), a write is the rest up to the last
 * breakpoint, and what follows the last breakpoint is plain input. */
static bool prefix_fresh(struct sim_worker *sw, uint64_t key, uint32_t now_s)
{
    uint32_t seen;
    return sim_table_get(sw->prefixes, key, &seen) && now_s - seen <= sw->sim->o.cache_ttl_s;
}

static void usage_of(struct sim_worker *sw, const struct sim_req *r, struct sim_usage *u)
{
    enum { LOOKBACK = 20 };
    memset(u, 0, sizeof(*u));
    u->prompt = r->prompt_tokens;
    bool anthropic = r->fmt == SIM_ANTHROPIC;
    uint32_t last = r->nmsgs; /* one past the last message that may be read */
    if (anthropic)
        while (last > 0 && !r->prefix_bp[last - 1])
            last--;
    if (!sw->sim->o.cache_ttl_s || last == 0)
        return;
    uint32_t now_s = (uint32_t)(loop_now_ms(sw->loop) / 1000) + 1;
    for (uint32_t i = last; i-- > 0 && (!anthropic || last - i <= LOOKBACK);) {
        if (prefix_fresh(sw, sim_hash_u64(r->prefix_hash[i], r->cache_scope), now_s)) {
            u->cached = r->prefix_tokens[i];
            break;
        }
    }
    for (uint32_t i = 0; i < last; i++)
        if (!anthropic || r->prefix_bp[i])
            sim_table_put(sw->prefixes, sim_hash_u64(r->prefix_hash[i], r->cache_scope), now_s);
    if (anthropic && r->prefix_tokens[last - 1] > u->cached)
        u->cache_write = r->prefix_tokens[last - 1] - u->cached;
}

/* The provider key a request came with: caches are per organization, so another key never reads
 * this one's prefixes. */
static uint64_t key_scope(const struct http_request *req)
{
    static const char *const names[] = {"authorization", "x-api-key", "x-goog-api-key"};
    uint64_t h = SIM_HASH_SEED;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const struct http_header *hd = http_find_header(req, names[i]);
        if (hd)
            h = sim_hash_bytes(h, hd->value, hd->value_len);
    }
    char key[256];
    if (req->query && http_query_param(req->query, req->query_len, "key", key, sizeof(key)) >= 0)
        h = sim_hash_bytes(h, key, strlen(key));
    return h;
}

/* The time to first token before the tier's multiplier: the directive, else the pool's or the
 * process's mean and jitter. */
static uint32_t pick_ttft(struct sim_worker *sw, const struct sim_req *r, int pool)
{
    const struct sim_opts *o = &sw->sim->o;
    if (r->d.ttft_ms >= 0)
        return (uint32_t)r->d.ttft_ms;
    uint32_t mean = pool >= 0 ? o->pools[pool].ttft_ms : o->ttft_ms;
    uint32_t jitter = pool >= 0 ? o->pools[pool].ttft_jitter_ms : o->ttft_jitter_ms;
    int64_t t = mean;
    if (jitter)
        t += (int64_t)(sim_rng_next(&sw->rng) % (2ull * jitter + 1)) - (int64_t)jitter;
    return t < 0 ? 0 : (uint32_t)t;
}

/* Timing and faults: directives first, then the random fault rates of the flags. */
static void plan_of(struct sim_worker *sw, const struct sim_req *r, const struct sim_answer *a,
                    int pool, struct sim_plan *p)
{
    const struct sim_opts *o = &sw->sim->o;
    memset(p, 0, sizeof(*p));
    p->sse = r->stream;
    p->ttft_ms = pick_ttft(sw, r, pool);
    double tps = r->d.tps >= 0 ? (double)r->d.tps : o->tps;
    p->gap_ms = tps > 0 ? 1000.0 / tps : 0;
    p->hold_open = r->d.hold_open;
    const int64_t after[] = {r->d.disconnect_after, r->d.stall_after, r->d.error_event_after};
    const enum sim_fault kind[] = {SIM_FAULT_DISCONNECT, SIM_FAULT_STALL, SIM_FAULT_ERROR};
    for (int i = 0; i < 3; i++) {
        if (after[i] >= 0) {
            p->fault = kind[i];
            /* past the end = after the last token, before the closing events */
            p->fault_after = after[i] < a->nsteps ? (uint32_t)after[i] : a->nsteps;
            return;
        }
    }
    double u = sim_rng_unit(&sw->rng);
    if (u < o->disconnect_rate)
        p->fault = SIM_FAULT_DISCONNECT;
    else if (u < o->disconnect_rate + o->stall_rate)
        p->fault = SIM_FAULT_STALL;
    if (p->fault)
        p->fault_after = (uint32_t)(sim_rng_next(&sw->rng) % (a->nsteps + 1ull));
}

static void resp_of(struct sim_worker *sw, const struct sim_req *r, struct sim_resp *resp)
{
    static const char *const prefix[] = {"chatcmpl-", "msg_01", ""};
    static const size_t len[] = {29, 22, 22};
    memset(resp, 0, sizeof(*resp));
    resp->fmt = r->fmt;
    uint64_t seed = sim_hash_u64(r->conv_hash, ((uint64_t)worker_index(sw->w) << 48) ^
                                                   ++sw->next_id ^ (uint64_t)time(NULL));
    sim_make_id(resp->id, sizeof(resp->id), prefix[r->fmt], len[r->fmt], seed);
    resp->created = (int64_t)time(NULL);
    snprintf(resp->model, sizeof(resp->model), "%s", r->model);
    resp->include_usage = r->include_usage;
    resp->block = -1;
    usage_of(sw, r, &resp->u);
}

/* Admit and start a generation for a parsed request (the answer is built already). A pool
 * charges the prompt and the planned output (a provisioned deployment's tokens per minute count
 * both); pay-as-you-go charges the output, as --tpm always has. */
static void start(struct sim_worker *sw, struct conn *c, struct sim_req *r, struct sim_answer *a,
                  int pool)
{
    struct sim *sim = sw->sim;
    struct sim_cap *cap = pool >= 0 ? &sim->pools[pool] : &sim->payg;
    uint64_t charge = sim_answer_tokens(a) + (pool >= 0 ? r->prompt_tokens : 0);
    uint32_t retry = 0;
    const char *why = "";
    if (sim_capacity_admit(cap, charge, loop_now_ms(sw->loop), &retry, &why) < 0) {
        atomic_fetch_add_explicit(&sw->st->refused, 1, memory_order_relaxed);
        char msg[SIM_NAME_MAX + SIM_POOL_NAME_MAX + 96];
        snprintf(msg, sizeof(msg), "Rate limit reached for %s%s%s (simulated: too many %s).",
                 r->model, pool >= 0 ? " in pool " : "", pool >= 0 ? sim->o.pools[pool].name : "",
                 why);
        reply_error(c, r->fmt, 429, msg, retry);
        return;
    }
    int status = injected_status(sw, r);
    if (status) {
        sim_capacity_release(cap);
        atomic_fetch_add_explicit(&sw->st->errors, 1, memory_order_relaxed);
        reply_error(c, r->fmt, status, error_message(r->fmt, status), 1);
        return;
    }
    struct sim_resp resp;
    struct sim_plan plan;
    resp_of(sw, r, &resp);
    plan_of(sw, r, a, pool, &plan);
    sim_agent_tune_plan(r, &sim->o, &plan);
    if (pool < 0) /* the network to another region, on top of the model's own time */
        plan.ttft_ms += sim->o.payg_latency_ms;
    plan.cap = cap;
    plan.pool = pool >= 0 ? sim->o.pools[pool].name : NULL;
    sim_stream_begin(sw, c, &resp, a, &plan);
}

static void bad_request(struct sim_worker *sw, struct conn *c, enum sim_format fmt, int status,
                        const char *msg)
{
    atomic_fetch_add_explicit(&sw->st->bad_requests, 1, memory_order_relaxed);
    reply_error(c, fmt, status, msg, 0);
}

/* Checks before the body is parsed; returns an error message for a 400, or NULL. */
static const char *precheck(const struct http_request *req, const struct route *rt,
                            struct sim_req *r)
{
    char alt[16];
    if (rt->fmt == SIM_ANTHROPIC && !http_find_header(req, "anthropic-version"))
        return "anthropic-version: header is required";
    if (rt->fmt != SIM_GEMINI)
        return NULL;
    snprintf(r->model, sizeof(r->model), "%s", rt->model);
    r->stream = rt->gemini_stream;
    if (r->stream &&
        (!req->query || http_query_param(req->query, req->query_len, "alt", alt, sizeof(alt)) < 0 ||
         strcmp(alt, "sse") != 0))
        return "trilemma-sim streams Gemini responses only with alt=sse";
    return NULL;
}

/* A generation request on one of the providers' paths. */
static void generate(struct sim_worker *sw, struct conn *c, const struct http_request *req,
                     const struct route *rt, const char *body, size_t len)
{
    struct sim_req r = {.fmt = rt->fmt};
    const char *err = precheck(req, rt, &r);
    atomic_fetch_add_explicit(&sw->st->requests[rt->fmt], 1, memory_order_relaxed);
    if (!err && json_doc_load(sw->doc, body, len) < 0)
        err = "The request body is not valid JSON.";
    bool parsed = !err && sim_req_parse(&r, sw->doc, body, len, &err) == 0;
    r.cache_scope = sim_hash_u64(r.cache_scope, key_scope(req));
    const struct http_header *tp = http_find_header(req, "traceparent");
    sim_reqlog_add(rt->sent, rt->sent_len, r.model[0] ? r.model : rt->model, body, len,
                   tp ? tp->value : NULL, tp ? tp->value_len : 0);
    if (parsed) {
        struct sim_answer a;
        if (!sim_agent_answer(&a, &r, sw->doc, sw->aux, &sw->sim->o))
            sim_answer_build(&a, &r, sw->doc, sw->sim->o.tokens);
        start(sw, c, &r, &a, rt->pool);
        sim_answer_free(&a); /* empty if the stream took it over */
    }
    if (err)
        bad_request(sw, c, rt->fmt, 400, err);
    sim_req_free(&r);
}

/* GET /v1/models: OpenAI's list shape, or Anthropic's when anthropic-version is sent. */
static void models(struct conn *c, const struct http_request *req)
{
    static const char *const ids[] = {"gpt-4.1-mini",     "gpt-4o-mini",      "claude-sonnet-4-5",
                                      "claude-haiku-4-5", "gemini-2.5-flash", "gemini-2.5-pro",
                                      "sim-shopper",      "sim-frontier",     "sim-cheap",
                                      "sim-classifier",   "sim-judge"}; /* the last four: tiers
                                                                        (docs/sim.md) */
    bool anthropic = http_find_header(req, "anthropic-version") != NULL;
    struct buf out = {0};
    struct jsonw w;
    jw_init(&w, &out);
    jw_obj_begin(&w);
    if (!anthropic)
        jw_kstr(&w, "object", "list");
    jw_key(&w, "data");
    jw_arr_begin(&w);
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        jw_obj_begin(&w);
        if (anthropic) {
            jw_kstr(&w, "type", "model");
            jw_kstr(&w, "id", ids[i]);
            jw_kstr(&w, "display_name", ids[i]);
            jw_kstr(&w, "created_at", "2025-01-01T00:00:00Z");
        } else {
            jw_kstr(&w, "id", ids[i]);
            jw_kstr(&w, "object", "model");
            jw_kint(&w, "created", 1735689600);
            jw_kstr(&w, "owned_by", "trilemma-sim");
        }
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    if (anthropic) {
        jw_kbool(&w, "has_more", false);
        jw_kstr(&w, "first_id", ids[0]);
        jw_kstr(&w, "last_id", ids[sizeof(ids) / sizeof(ids[0]) - 1]);
    }
    jw_obj_end(&w);
    conn_http_reply(c, 200, "application/json", buf_begin(&out), buf_size(&out), NULL);
    buf_free(&out);
}

/* A request on its path (for a pool, the path after /ptu/NAME); sent is the path as sent. */
static void serve(struct sim_worker *sw, struct conn *c, const struct http_request *req, int pool,
                  const char *sent, size_t sent_len, const char *body, size_t len)
{
    struct route rt;
    if (sim_catalog_api_request(sw, c, req) || sim_reqlog_request(c, req) ||
        sim_embed_request(c, req, sw->doc, body, len))
        return;
    if (path_is(req, "/v1/models") && method_is(req, "GET")) {
        models(c, req);
    } else if (!route(req, &rt)) {
        reply_error(c, SIM_OPENAI, 404, "Unknown request URL (trilemma-sim).", 0);
    } else if (!method_is(req, "POST")) {
        reply_error(c, rt.fmt, 405, "Method not allowed: use POST.", 0);
    } else {
        rt.pool = pool;
        rt.sent = sent;
        rt.sent_len = sent_len;
        generate(sw, c, req, &rt, body, len);
    }
}

enum { POOL_NONE = -1, POOL_UNKNOWN = -2 };

/* A path /ptu/NAME/REST is REST served by the pool NAME: its index (inner = req with path REST),
 * POOL_UNKNOWN when no pool has that name, or POOL_NONE when the path is not under /ptu/. */
static int pool_route(const struct http_request *req, struct http_request *inner)
{
    static const char prefix[] = "/ptu/";
    const size_t n = sizeof(prefix) - 1;
    if (req->path_len <= n || memcmp(req->path, prefix, n) != 0)
        return POOL_NONE;
    const char *name = req->path + n;
    const char *slash = memchr(name, '/', req->path_len - n);
    if (!slash)
        return POOL_NONE;
    *inner = *req;
    inner->path = slash;
    inner->path_len = req->path_len - (size_t)(slash - req->path);
    size_t name_len = (size_t)(slash - name);
    for (int i = 0; i < g_sim->o.npools; i++) {
        const char *p = g_sim->o.pools[i].name;
        if (strlen(p) == name_len && memcmp(p, name, name_len) == 0)
            return i;
    }
    return POOL_UNKNOWN;
}

static bool on_request(struct conn *c, const struct http_request *req, const char *body, size_t len)
{
    struct sim_worker *sw = worker_app(conn_worker(c));
    struct http_request inner;
    int pool = pool_route(req, &inner);
    if (pool == POOL_NONE) {
        serve(sw, c, req, -1, req->path, req->path_len, body, len);
    } else if (pool >= 0) {
        serve(sw, c, &inner, pool, req->path, req->path_len, body, len);
    } else {
        /* 404 as the provider whose path follows says it (OpenAI's for any other path) */
        struct route rt;
        enum sim_format fmt = route(&inner, &rt) ? rt.fmt : SIM_OPENAI;
        reply_error(c, fmt, 404, "Unknown provisioned deployment (trilemma-sim: no such --pool).",
                    0);
    }
    return true;
}

static void on_http_close(struct conn *c)
{
    sim_catalog_api_closed(worker_app(conn_worker(c)), c);
    sim_stream_closed(c);
}

static void *worker_init(struct worker *w)
{
    struct sim_worker *sw = xcalloc(1, sizeof(*sw));
    sw->sim = g_sim;
    sw->w = w;
    sw->loop = worker_loop(w);
    sw->doc = json_doc_create();
    sw->aux = json_doc_create();
    uint64_t s = g_sim->o.seed ^ (0x5151ull * (uint64_t)(worker_index(w) + 1));
    sw->rng = sim_rng_next(&s);
    sw->prefixes = sim_table_create(16);
    sw->attempts = sim_table_create(12);
    sw->st = &g_sim->stats[worker_index(w)];
    return sw;
}

static void worker_fini(struct worker *w, void *state)
{
    (void)w;
    struct sim_worker *sw = state;
    if (!sw)
        return;
    sim_catalog_api_fini(sw);
    json_doc_destroy(sw->doc);
    json_doc_destroy(sw->aux);
    buf_free(&sw->out);
    sim_table_destroy(sw->prefixes);
    sim_table_destroy(sw->attempts);
    xfree(sw);
}

#define SUM(field)                                                                                 \
    ({                                                                                             \
        unsigned long long v_ = 0;                                                                 \
        for (int i_ = 0; i_ < g_sim->nworkers; i_++)                                               \
            v_ += atomic_load_explicit(&g_sim->stats[i_].field, memory_order_relaxed);             \
        v_;                                                                                        \
    })

/* One metric family with one sample per deployment: pay-as-you-go (no label) then each pool
 * (pool="NAME"); `reason` adds a reason label (refusals) and takes the value from refused_*. */
enum dep_value { DV_STREAMS, DV_WINDOW, DV_ADMITTED, DV_REFUSED_STREAMS, DV_REFUSED_TOKENS };

static unsigned long long dep_value(struct sim_cap *c, enum dep_value v, uint64_t now_ms)
{
    switch (v) {
    case DV_STREAMS:
        return atomic_load_explicit(&c->streams, memory_order_relaxed);
    case DV_WINDOW:
        return sim_capacity_window(c, now_ms);
    case DV_ADMITTED:
        return atomic_load_explicit(&c->admitted, memory_order_relaxed);
    case DV_REFUSED_STREAMS:
        return atomic_load_explicit(&c->refused_streams, memory_order_relaxed);
    default:
        return atomic_load_explicit(&c->refused_tokens, memory_order_relaxed);
    }
}

static void dep_family(struct buf *out, const char *name, const char *type, const char *help,
                       enum dep_value v, uint64_t now_ms)
{
    static const char *const reasons[] = {"streams", "tokens"};
    bool refused = v == DV_REFUSED_STREAMS;
    buf_printf(out, "# HELP trilemma_sim_payg_%s %s (pay-as-you-go)\n", name, help);
    buf_printf(out, "# TYPE trilemma_sim_payg_%s %s\n", name, type);
    for (int r = 0; r < (refused ? 2 : 1); r++) {
        if (refused)
            buf_printf(out, "trilemma_sim_payg_%s{reason=\"%s\"} %llu\n", name, reasons[r],
                       dep_value(&g_sim->payg, (enum dep_value)(v + r), now_ms));
        else
            buf_printf(out, "trilemma_sim_payg_%s %llu\n", name,
                       dep_value(&g_sim->payg, v, now_ms));
    }
    if (!g_sim->o.npools)
        return;
    buf_printf(out, "# HELP trilemma_sim_pool_%s %s (per provisioned pool)\n", name, help);
    buf_printf(out, "# TYPE trilemma_sim_pool_%s %s\n", name, type);
    for (int i = 0; i < g_sim->o.npools; i++) {
        const char *pool = g_sim->o.pools[i].name;
        for (int r = 0; r < (refused ? 2 : 1); r++) {
            unsigned long long x = dep_value(&g_sim->pools[i], (enum dep_value)(v + r), now_ms);
            if (refused)
                buf_printf(out, "trilemma_sim_pool_%s{pool=\"%s\",reason=\"%s\"} %llu\n", name,
                           pool, reasons[r], x);
            else
                buf_printf(out, "trilemma_sim_pool_%s{pool=\"%s\"} %llu\n", name, pool, x);
        }
    }
}

/* The configuration of the pools and of the pay-as-you-go region, so that a test or a dashboard
 * reads what the sim was started with. */
static void dep_config(struct buf *out)
{
    const struct sim_opts *o = &g_sim->o;
    buf_printf(out,
               "# HELP trilemma_sim_payg_latency_ms Added to the first token outside the pools.\n"
               "# TYPE trilemma_sim_payg_latency_ms gauge\ntrilemma_sim_payg_latency_ms %u\n",
               o->payg_latency_ms);
    if (!o->npools)
        return;
    const struct {
        const char *name, *help;
    } f[] = {
        {"tpm_limit", "Tokens per minute (input + output) of a pool; 0 = unlimited."},
        {"streams_limit", "Concurrent generations of a pool; 0 = unlimited."},
        {"ttft_ms", "Mean time to first token of a pool, before the tier's multiplier."},
        {"ttft_jitter_ms", "Uniform jitter around it."},
    };
    for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++) {
        buf_printf(out, "# HELP trilemma_sim_pool_%s %s\n# TYPE trilemma_sim_pool_%s gauge\n",
                   f[k].name, f[k].help, f[k].name);
        for (int i = 0; i < o->npools; i++) {
            const struct sim_pool_opts *p = &o->pools[i];
            unsigned long long v = k == 0   ? p->tpm
                                   : k == 1 ? p->streams
                                   : k == 2 ? p->ttft_ms
                                            : p->ttft_jitter_ms;
            buf_printf(out, "trilemma_sim_pool_%s{pool=\"%s\"} %llu\n", f[k].name, p->name, v);
        }
    }
}

static void deployment_metrics(struct buf *out)
{
    uint64_t now = clock_now_ms();
    dep_family(out, "streams_active", "gauge", "Generations in flight.", DV_STREAMS, now);
    dep_family(out, "tokens_window", "gauge",
               "Tokens charged in the last 60 s (pools: input + output; pay-as-you-go: output).",
               DV_WINDOW, now);
    dep_family(out, "admitted_total", "counter", "Generations admitted.", DV_ADMITTED, now);
    dep_family(out, "refused_total", "counter", "429 answers for capacity, by limit.",
               DV_REFUSED_STREAMS, now);
    dep_config(out);
}

static void metrics(struct server *s, struct buf *out)
{
    (void)s;
    static const char *const fmt_names[SIM_NFORMATS] = {"openai", "anthropic", "gemini"};
    buf_append_str(out, "# HELP trilemma_sim_requests_total Generation requests by format.\n"
                        "# TYPE trilemma_sim_requests_total counter\n");
    for (int f = 0; f < SIM_NFORMATS; f++)
        buf_printf(out, "trilemma_sim_requests_total{format=\"%s\"} %llu\n", fmt_names[f],
                   SUM(requests[f]));
    const struct {
        const char *name, *type, *help;
        unsigned long long v;
    } m[] = {
        {"tokens_total", "counter", "Content tokens written.", SUM(tokens_out)},
        {"refused_total", "counter", "429 answers for capacity.", SUM(refused)},
        {"errors_injected_total", "counter", "Errors answered on purpose.", SUM(errors)},
        {"bad_requests_total", "counter", "Malformed requests.", SUM(bad_requests)},
        {"streams_completed_total", "counter", "Generations completed.", SUM(streams_done)},
        {"streams_cut_total", "counter", "Generations reset, stalled or errored.",
         SUM(streams_cut)},
        {"client_left_total", "counter", "Clients gone before the end.", SUM(client_left)},
        {"streams_active", "gauge", "Generations in flight.", SUM(active)},
    };
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        buf_printf(out,
                   "# HELP trilemma_sim_%s %s\n# TYPE trilemma_sim_%s %s\ntrilemma_sim_%s %llu\n",
                   m[i].name, m[i].help, m[i].name, m[i].type, m[i].name, m[i].v);
    deployment_metrics(out);
}

/* Fill the hooks; see sim.h. */
void sim_server_hooks(struct server_hooks *h, struct sim *sim)
{
    g_sim = sim;
    memset(h, 0, sizeof(*h));
    h->worker_init = worker_init;
    h->worker_fini = worker_fini;
    h->on_request = on_request;
    h->on_http_close = on_http_close;
    h->metrics = metrics;
    h->max_body = 4u << 20;
}
