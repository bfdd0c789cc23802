/* lifecycle.c - the server hooks of session/: worker state, the upgrade decision (Origin
 * allow-list, JWT), session creation and teardown, drain, and the session metrics. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/log.h"
#include "base/mem.h"
#include "net/ws_frame.h"
#include "base/decimal.h"
#include "session/session_int.h"
#include "store/api.h"
#include "store/store.h"
#include "store/turn_state.h"

#include <stddef.h>
#include <unistd.h>

static const char *const error_codes[SESS_ERROR_CODES] = {
    "invalid_json",
    "invalid_message",
    "unknown_type",
    "missing_field",
    "invalid_field",
    "text_too_long",
    "turn_in_progress",
    "unknown_turn",
    "rate_limited",
    "resume_unavailable",
    "draining",
    "storage_unavailable",
    "internal",
    "unknown_conversation",
    "forbidden",
    "provider_error",
    "provider_unavailable",
    "turn_too_large",
    "turn_interrupted",
    "budget_exceeded",
    "turn_cost_limit",
    "routing_loop",
    "other",
};

static const char *const finish_names[SESS_FINISH__N] = {"stop", "length", "cancelled", "error"};

void sess_count_error(struct sess_worker *sw, const char *code)
{
    int i = 0;
    while (i < SESS_ERROR_CODES - 1 && strcmp(error_codes[i], code) != 0)
        i++;
    metric_add(&sw->m.errors[i], 1);
}

void sess_count_finish(struct sess_worker *sw, const char *finish)
{
    for (int i = 0; i < SESS_FINISH__N; i++)
        if (strcmp(finish_names[i], finish) == 0)
            metric_add(&sw->m.turns_finished[i], 1);
}

/* This worker of this process, as turn_state rows name their owner: host/pid/start-ms/wN. The
 * start time tells a restarted process with a recycled pid from the one that died. */
static void process_owner(char *out, size_t cap, int worker)
{
    static int64_t started_ms;
    int64_t zero = 0, now = (int64_t)time(NULL) * 1000;
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0)
        now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    __atomic_compare_exchange_n(&started_ms, &zero, now, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    char host[64] = "";
    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "unknown");
    snprintf(out, cap, "%s/%ld/%lld/w%d", host, (long)getpid(),
             (long long)__atomic_load_n(&started_ms, __ATOMIC_ACQUIRE), worker);
}

static void *worker_init(struct worker *w)
{
    struct sess_worker *sw = xcalloc(1, sizeof(*sw));
    const struct config *conf = server_app(worker_server(w));
    sw->w = w;
    sw->conf = conf;
    sw->responder = session_responder();
    if (sw->responder->worker_create)
        sw->rworker = sw->responder->worker_create(sw->responder->arg, worker_loop(w), conf);
    sw->doc = json_doc_create();
    sess_trace_worker_init(sw, worker_loop(w));
    sw->head.next = sw->head.prev = &sw->head;
    sw->auth.secret = conf->jwt_secret;
    sw->auth.secret_len = strlen(conf->jwt_secret);
    sw->auth.issuer = conf->jwt_issuer;
    sw->auth.audience = conf->jwt_audience;
    sw->auth.leeway_s = conf->jwt_leeway_s;
    sw->auth.require_exp = conf->jwt_require_exp;
    sw->auth.max_age_s = conf->jwt_max_age_s;
    sw->usd_to_inr_micros = decimal_parse_micros(conf->usd_to_inr, strlen(conf->usd_to_inr));
    if (conf->database_url[0]) {
        uint8_t op = loop_op_alloc(worker_loop(w), STORE_LOOP_OPS);
        sw->store_conf = config_store(conf);
        sw->store = op ? store_create(worker_loop(w), &sw->store_conf, worker_index(w), op) : NULL;
        char owner[200];
        process_owner(owner, sizeof(owner), worker_index(w));
        sw->ts = tstate_create(sw->store, owner, conf->turn_lease_ms);
    }
    sess_budget_worker_init(sw);
    sess_pods_worker_init(sw);
    return sw;
}

static void worker_fini(struct worker *w, void *state)
{
    (void)w;
    struct sess_worker *sw = state;
    sw->draining = true;
    detach_end_all(sw);
    sess_budget_worker_fini(sw);
    sess_pods_worker_fini(sw);
    tstate_destroy(sw->ts);
    sess_trace_worker_fini(sw); /* after the turns' ends; before the responder's client */
    if (sw->responder->worker_destroy)
        sw->responder->worker_destroy(sw->rworker);
    store_destroy(sw->store);
    json_doc_destroy(sw->doc);
    buf_free(&sw->scratch);
    xfree(sw);
}

/* The token from "Authorization: Bearer X" or from ?token=X. Returns its length, or -1. */
static int find_token(const struct http_request *req, char *out, size_t cap)
{
    const struct http_header *h = http_find_header(req, "Authorization");
    if (h && h->value_len > 7 && strncasecmp(h->value, "Bearer ", 7) == 0) {
        size_t n = h->value_len - 7;
        if (n >= cap)
            return -1;
        memcpy(out, h->value + 7, n);
        out[n] = '\0';
        return (int)n;
    }
    if (req->query) {
        int n = http_query_param(req->query, req->query_len, "token", out, cap);
        if (n >= 0)
            return n;
    }
    return -1;
}

static int on_upgrade(struct conn *c, const struct http_request *req, struct upgrade_reply *r)
{
    struct sess_worker *sw = worker_app(conn_worker(c));
    const struct config *conf = sw->conf;
    const struct http_header *origin = http_find_header(req, "Origin");
    if (!auth_origin_allowed(conf->allowed_origins, conf->num_allowed_origins,
                             origin ? origin->value : "", origin ? origin->value_len : 0)) {
        r->status = 403;
        r->code = "origin_not_allowed";
        r->message = "this Origin may not open chat sessions";
        metric_add(&sw->m.auth_failures, 1);
        return -1;
    }
    char token[8192] = "";
    int n = find_token(req, token, sizeof(token));
    enum auth_result ar = AUTH_OK;
    if (sw->auth.secret_len && n < 0)
        ar = AUTH_MISSING;
    else
        ar = auth_verify_until(&sw->auth, token, n < 0 ? 0 : (size_t)n, (int64_t)time(NULL),
                               sw->pending_sub, &sw->pending_until);
    if (ar != AUTH_OK) {
        r->status = 401;
        r->code = "unauthorized";
        r->message = auth_result_str(ar);
        r->headers = "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n";
        metric_add(&sw->m.auth_failures, 1);
        return -1;
    }
    sess_trace_upgrade(sw, req);
    return 0;
}

/* What an idle WebSocket session holds in user space is its struct conn (net/) and this struct
 * session, each in one allocation (docs/loadtest.md, "Memory per idle session"). Allocators
 * round to size classes (mimalloc: ..., 192, 224, 256, ..., 448, 512, 640): the two together stay
 * within 1 KiB only while session fits 256 and conn 512 (checked in net/server.c). */
_Static_assert(sizeof(void *) != 8 || sizeof(struct session) <= 256,
               "struct session outgrew its per-idle-session budget (256 bytes)");

static const char no_user[] = "";

static void on_open(struct conn *c)
{
    struct sess_worker *sw = worker_app(conn_worker(c));
    struct session *s = xcalloc(1, sizeof(*s));
    s->c = c;
    s->sw = sw;
    s->user_sub = sw->pending_sub[0] ? xstrdup(sw->pending_sub) : no_user;
    sw->pending_sub[0] = '\0';
    sess_trace_open(sw, s);
    sess_life_arm(s, sw->auth.secret_len ? sw->pending_until : INT64_MAX);
    s->rate_tokens = (uint64_t)sw->conf->rate_messages * 1000;
    s->rate_at_ms = loop_now_ms(worker_loop(conn_worker(c)));
    session_new_conversation(s);
    s->next = &sw->head;
    s->prev = sw->head.prev;
    sw->head.prev->next = s;
    sw->head.prev = s;
    conn_set_app(c, s);
    metric_add(&sw->m.sessions_open, 1);
    metric_add(&sw->m.sessions_total, 1);
    session_send_event_session(s);
}

static void on_close(struct conn *c)
{
    struct session *s = conn_app(c);
    if (!s)
        return;
    /* The client is gone: a running turn stops at once but is still stored. */
    session_detach_turn(s);
    session_resume_free(s);
    sess_life_disarm(s);
    history_held_free(s);
    session_replay_free(s);
    s->prev->next = s->next;
    s->next->prev = s->prev;
    session_history_free(s);
    xfree(s->memo);
    xfree(s->tp);
    conn_set_app(c, NULL);
    metric_sub(&s->sw->m.sessions_open, 1);
    if (s->user_sub != no_user)
        xfree((char *)s->user_sub);
    xfree(s);
}

/* A resume's replay waited for the client to read (resume.c). */
static void on_writable(struct conn *c)
{
    struct session *s = conn_app(c);
    if (s && s->replay)
        session_replay_more(s);
    else if (s && s->turn && s->turn->catching_up)
        detach_catch_up(s);
}

/* Drain: idle sessions close now; sessions with a running turn close when it ends. */
static void on_drain(struct worker *w)
{
    struct sess_worker *sw = worker_app(w);
    struct session *s = sw->head.next;
    sw->draining = true;
    detach_end_all(sw); /* the process is going away: nobody can come back to it here */
    while (s != &sw->head) {
        struct session *next = s->next; /* conn_close may not free s, but stay safe */
        if (s->turn)
            s->close_after_turn = true;
        else
            conn_close(s->c, WS_CLOSE_GOING_AWAY, "server shutting down");
        s = next;
    }
    store_flush(sw->store); /* turns ending from now on need not wait for company */
}

/* Drain, and the worker's last connection is gone: the turns cut by the drain (or whose
 * clients left) are being committed. The worker stops once they are durable, in PostgreSQL
 * while it answers: in a pod the spill journal is a volume deleted with it. */
static bool may_stop(struct worker *w)
{
    struct sess_worker *sw = worker_app(w);
    store_flush(sw->store);
    return store_idle(sw->store) && !sw->claiming;
}

/* A running worker's session state, for the metrics and readiness hooks (net/ holds every
 * worker around them: see server_hold_workers). NULL when that worker is not running. */
static struct sess_worker *held_app(struct server *srv, int i)
{
    struct worker *w = server_worker(srv, i);
    return worker_alive(w) ? worker_app(w) : NULL;
}

static uint64_t sum_workers(struct server *srv, size_t off)
{
    uint64_t t = 0;
    for (int i = 0; i < server_worker_count(srv); i++) {
        struct sess_worker *sw = held_app(srv, i);
        if (sw)
            t += __atomic_load_n((const uint64_t *)((const char *)&sw->m + off), __ATOMIC_RELAXED);
    }
    return t;
}

#define SUM(field) sum_workers(srv, offsetof(struct sess_metrics, field))

static void metrics_ttft(struct server *srv, struct buf *out)
{
    static const char *const le[SESS_TTFT_BUCKETS] = {"0.05", "0.1", "0.25", "0.5", "1",
                                                      "2.5",  "5",   "10",   "30",  "+Inf"};
    buf_printf(out, "# HELP trilemma_turn_first_token_seconds Turn start to first delta.\n"
                    "# TYPE trilemma_turn_first_token_seconds histogram\n");
    uint64_t cum = 0;
    for (int b = 0; b < SESS_TTFT_BUCKETS; b++) {
        cum += SUM(ttft_bucket[b]);
        buf_printf(out, "trilemma_turn_first_token_seconds_bucket{le=\"%s\"} %llu\n", le[b],
                   (unsigned long long)cum);
    }
    buf_printf(out, "trilemma_turn_first_token_seconds_sum %.6f\n", (double)SUM(ttft_sum_us) / 1e6);
    buf_printf(out, "trilemma_turn_first_token_seconds_count %llu\n", (unsigned long long)cum);
}

/* Time to first token by query type and tool calls by tool and status, one series per worker
 * (like the model calls: aggregate with sum by). */
static void metrics_types_tools(struct server *srv, struct buf *out)
{
    static const char *const le[SESS_TTFT_BUCKETS] = {"0.05", "0.1", "0.25", "0.5", "1",
                                                      "2.5",  "5",   "10",   "30",  "+Inf"};
    static const char *const st[4] = {"ok", "error", "timeout", "cancelled"};
    struct buf tools = {0};
    buf_printf(out, "# HELP trilemma_turn_first_token_by_type_seconds Turn start to first delta, "
                    "by query type.\n# TYPE trilemma_turn_first_token_by_type_seconds histogram\n");
    buf_printf(&tools, "# HELP trilemma_tool_calls_total Tool calls by tool and status.\n"
                       "# TYPE trilemma_tool_calls_total counter\n");
    for (int w = 0; w < server_worker_count(srv); w++) {
        struct sess_worker *sw = held_app(srv, w);
        if (!sw)
            continue;
        uint32_t n = __atomic_load_n(&sw->m.type_rows, __ATOMIC_ACQUIRE);
        for (uint32_t r = 0; r < n; r++) {
            const struct ttft_type_row *t = &sw->m.types[r];
            uint64_t cum = 0;
            for (int b = 0; b < SESS_TTFT_BUCKETS; b++) {
                cum += __atomic_load_n(&t->bucket[b], __ATOMIC_RELAXED);
                buf_printf(out,
                           "trilemma_turn_first_token_by_type_seconds_bucket{worker=\"%d\","
                           "query_type=\"%s\",le=\"%s\"} %llu\n",
                           w, t->query_type, le[b], (unsigned long long)cum);
            }
            buf_printf(out,
                       "trilemma_turn_first_token_by_type_seconds_sum{worker=\"%d\",query_type="
                       "\"%s\"} %.6f\ntrilemma_turn_first_token_by_type_seconds_count{worker="
                       "\"%d\",query_type=\"%s\"} %llu\n",
                       w, t->query_type,
                       (double)__atomic_load_n(&t->sum_us, __ATOMIC_RELAXED) / 1e6, w,
                       t->query_type, (unsigned long long)cum);
        }
        n = __atomic_load_n(&sw->m.tool_rows, __ATOMIC_ACQUIRE);
        for (uint32_t r = 0; r < n; r++)
            for (int k = 0; k < 4; k++)
                buf_printf(&tools,
                           "trilemma_tool_calls_total{worker=\"%d\",tool=\"%s\",status=\"%s\"}"
                           " %llu\n",
                           w, sw->m.tools[r].name, st[k],
                           (unsigned long long)__atomic_load_n(&sw->m.tools[r].by_status[k],
                                                               __ATOMIC_RELAXED));
    }
    buf_append(out, buf_begin(&tools), buf_size(&tools));
    buf_free(&tools);
}

/* Model calls and their cost by provider/model, summed over the running workers. */
static void metrics_calls(struct server *srv, struct buf *out)
{
    static const char *const st[3] = {"ok", "error", "cancelled"};
    static const char *const cls[5] = {"2xx", "429", "4xx", "5xx", "none"};
    buf_printf(out, "# HELP trilemma_model_calls_total Model calls by provider, model, outcome and "
                    "HTTP status class.\n# TYPE trilemma_model_calls_total counter\n");
    struct buf cost = {0}, tok = {0};
    for (int i = 0; i < server_worker_count(srv); i++) {
        struct sess_worker *sw = held_app(srv, i);
        if (!sw)
            continue;
        uint32_t n = __atomic_load_n(&sw->m.call_rows, __ATOMIC_ACQUIRE);
        for (uint32_t r = 0; r < n; r++) {
            const struct call_row *c = &sw->m.calls[r];
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 5; b++) {
                    uint64_t v = __atomic_load_n(&c->by_status[a][b], __ATOMIC_RELAXED);
                    if (v)
                        buf_printf(out,
                                   "trilemma_model_calls_total{worker=\"%d\",provider=\"%s\","
                                   "model=\"%s\",status=\"%s\",code=\"%s\"} %llu\n",
                                   i, c->provider, c->model, st[a], cls[b], (unsigned long long)v);
                }
            buf_printf(&cost,
                       "trilemma_cost_micros_total{worker=\"%d\",currency=\"%s\","
                       "provider=\"%s\",model=\"%s\"} %llu\n",
                       i, sw->conf->currency, c->provider, c->model,
                       (unsigned long long)__atomic_load_n(&c->cost_micros, __ATOMIC_RELAXED));
            buf_printf(&tok,
                       "trilemma_model_tokens_total{worker=\"%d\",provider=\"%s\",model=\"%s\","
                       "kind=\"input\"} %llu\ntrilemma_model_tokens_total{worker=\"%d\","
                       "provider=\"%s\",model=\"%s\",kind=\"output\"} %llu\n",
                       i, c->provider, c->model,
                       (unsigned long long)__atomic_load_n(&c->input_tokens, __ATOMIC_RELAXED), i,
                       c->provider, c->model,
                       (unsigned long long)__atomic_load_n(&c->output_tokens, __ATOMIC_RELAXED));
        }
    }
    buf_printf(out,
               "# HELP trilemma_cost_micros_total Model spend in micro-units of the currency.\n"
               "# TYPE trilemma_cost_micros_total counter\n");
    buf_append(out, buf_begin(&cost), buf_size(&cost));
    buf_printf(out, "# HELP trilemma_model_tokens_total Tokens reported by the providers.\n"
                    "# TYPE trilemma_model_tokens_total counter\n");
    buf_append(out, buf_begin(&tok), buf_size(&tok));
    buf_free(&cost);
    buf_free(&tok);
}

/* Prompt tokens by agent, summed over the running workers: how much input the providers' prompt
 * caches served (issue 13: the share per agent). */
static void metrics_prompt_cache(struct server *srv, struct buf *out)
{
    struct prompt_row sum[SESS_AGENT_ROWS * 2];
    int n = 0;
    for (int i = 0; i < server_worker_count(srv); i++) {
        struct sess_worker *sw = held_app(srv, i);
        uint32_t rows = sw ? __atomic_load_n(&sw->m.agent_rows, __ATOMIC_ACQUIRE) : 0;
        for (uint32_t r = 0; r < rows; r++) {
            const struct prompt_row *p = &sw->m.prompts[r];
            int k = 0;
            while (k < n && strcmp(sum[k].agent, p->agent))
                k++;
            if (k == n) {
                if (n == SESS_AGENT_ROWS * 2)
                    continue;
                sum[n++] = (struct prompt_row){.input_tokens = 0};
                memcpy(sum[k].agent, p->agent, sizeof(sum[k].agent));
            }
            sum[k].input_tokens += __atomic_load_n(&p->input_tokens, __ATOMIC_RELAXED);
            sum[k].cache_read_tokens += __atomic_load_n(&p->cache_read_tokens, __ATOMIC_RELAXED);
            sum[k].cache_write_tokens += __atomic_load_n(&p->cache_write_tokens, __ATOMIC_RELAXED);
        }
    }
    buf_printf(out, "# HELP trilemma_prompt_tokens_total Prompt tokens by agent: read from the "
                    "provider's cache, written to it, or neither.\n"
                    "# TYPE trilemma_prompt_tokens_total counter\n");
    for (int k = 0; k < n; k++) {
        uint64_t in = sum[k].input_tokens, rd = sum[k].cache_read_tokens;
        uint64_t wr = sum[k].cache_write_tokens, rest = in > rd + wr ? in - rd - wr : 0;
        buf_printf(out,
                   "trilemma_prompt_tokens_total{agent=\"%s\",kind=\"cache_read\"} %llu\n"
                   "trilemma_prompt_tokens_total{agent=\"%s\",kind=\"cache_write\"} %llu\n"
                   "trilemma_prompt_tokens_total{agent=\"%s\",kind=\"uncached\"} %llu\n",
                   sum[k].agent, (unsigned long long)rd, sum[k].agent, (unsigned long long)wr,
                   sum[k].agent, (unsigned long long)rest);
    }
    buf_printf(out, "# HELP trilemma_prompt_cache_input_share Share of prompt tokens read from the "
                    "provider's cache, by agent, since start.\n"
                    "# TYPE trilemma_prompt_cache_input_share gauge\n");
    for (int k = 0; k < n; k++)
        buf_printf(out, "trilemma_prompt_cache_input_share{agent=\"%s\"} %.4f\n", sum[k].agent,
                   sum[k].input_tokens ? (double)sum[k].cache_read_tokens / sum[k].input_tokens
                                       : 0.0);
}

static const struct responder *g_responder;

/* The detach grace and resumes of running turns (detach.c, resume.c). */
static void metrics_detach(struct server *srv, struct buf *out)
{
    buf_printf(out,
               "# HELP trilemma_turn_detaches_total Running turns whose client left, kept for "
               "the detach grace.\n# TYPE trilemma_turn_detaches_total counter\n"
               "trilemma_turn_detaches_total %llu\n"
               "# HELP trilemma_turns_detached Turns in their detach grace now.\n"
               "# TYPE trilemma_turns_detached gauge\ntrilemma_turns_detached %llu\n",
               (unsigned long long)SUM(detaches), (unsigned long long)SUM(detached_now));
    buf_printf(out, "# HELP trilemma_turn_reattaches_total Resumes of a running turn: in this "
                    "process or from another, live (re-attached) or replayed once stored.\n"
                    "# TYPE trilemma_turn_reattaches_total counter\n");
    static const char *const where[2] = {"same", "other"}, *const how[2] = {"live", "replay"};
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            buf_printf(out, "trilemma_turn_reattaches_total{process=\"%s\",mode=\"%s\"} %llu\n",
                       where[a], how[b], (unsigned long long)SUM(reattaches[a][b]));
    buf_printf(out,
               "# HELP trilemma_turn_grace_expiries_total Detached turns cancelled at the end "
               "of their grace, by cause.\n# TYPE trilemma_turn_grace_expiries_total counter\n"
               "trilemma_turn_grace_expiries_total{cause=\"grace\"} %llu\n"
               "trilemma_turn_grace_expiries_total{cause=\"buffer_full\"} %llu\n",
               (unsigned long long)SUM(grace_expiries), (unsigned long long)SUM(detach_overflows));
    buf_printf(out,
               "# HELP trilemma_turn_detached_bytes_total Answer bytes produced while no client "
               "was attached: all, and of turns nobody came back for.\n"
               "# TYPE trilemma_turn_detached_bytes_total counter\n"
               "trilemma_turn_detached_bytes_total{outcome=\"all\"} %llu\n"
               "trilemma_turn_detached_bytes_total{outcome=\"abandoned\"} %llu\n",
               (unsigned long long)SUM(detached_bytes), (unsigned long long)SUM(abandoned_bytes));
    buf_printf(out,
               "# HELP trilemma_turn_abandoned_output_tokens_total Output tokens generated during "
               "detach grace for answers nobody came back for (estimated by bytes).\n"
               "# TYPE trilemma_turn_abandoned_output_tokens_total counter\n"
               "trilemma_turn_abandoned_output_tokens_total %llu\n"
               "# HELP trilemma_turn_abandoned_cost_micros_total Their cost (the same estimate).\n"
               "# TYPE trilemma_turn_abandoned_cost_micros_total counter\n"
               "trilemma_turn_abandoned_cost_micros_total %llu\n",
               (unsigned long long)SUM(abandoned_output_tokens),
               (unsigned long long)SUM(abandoned_cost_micros));
}

static void metrics(struct server *srv, struct buf *out)
{
    buf_printf(out,
               "# HELP trilemma_build_info The running build.\n"
               "# TYPE trilemma_build_info gauge\ntrilemma_build_info{version=\"%s\"} 1\n",
               TRILEMMA_VERSION);
    metrics_ttft(srv, out);
    metrics_types_tools(srv, out);
    metrics_calls(srv, out);
    metrics_prompt_cache(srv, out);
    metrics_detach(srv, out);
    if (g_responder->metrics)
        g_responder->metrics(g_responder->arg, out);
    buf_printf(out,
               "# HELP trilemma_sessions_open Open chat sessions.\n"
               "# TYPE trilemma_sessions_open gauge\ntrilemma_sessions_open %llu\n",
               (unsigned long long)SUM(sessions_open));
    buf_printf(out,
               "# HELP trilemma_sessions_total Chat sessions opened.\n"
               "# TYPE trilemma_sessions_total counter\ntrilemma_sessions_total %llu\n",
               (unsigned long long)SUM(sessions_total));
    buf_printf(out,
               "# HELP trilemma_turns_started_total Turns started.\n"
               "# TYPE trilemma_turns_started_total counter\n"
               "trilemma_turns_started_total %llu\n",
               (unsigned long long)SUM(turns_started));
    buf_printf(out, "# HELP trilemma_turns_finished_total Turns ended, by finish reason.\n"
                    "# TYPE trilemma_turns_finished_total counter\n");
    for (int i = 0; i < SESS_FINISH__N; i++)
        buf_printf(out, "trilemma_turns_finished_total{finish_reason=\"%s\"} %llu\n",
                   finish_names[i], (unsigned long long)SUM(turns_finished[i]));
    buf_printf(out,
               "# HELP trilemma_deltas_out_total Delta events sent.\n"
               "# TYPE trilemma_deltas_out_total counter\ntrilemma_deltas_out_total %llu\n",
               (unsigned long long)SUM(deltas_out));
    buf_printf(out,
               "# HELP trilemma_sessions_closed_total Sessions closed by the server's limits.\n"
               "# TYPE trilemma_sessions_closed_total counter\n"
               "trilemma_sessions_closed_total{reason=\"token_expired\"} %llu\n"
               "trilemma_sessions_closed_total{reason=\"max_age\"} %llu\n",
               (unsigned long long)SUM(closed_token_expired),
               (unsigned long long)SUM(closed_max_age));
    buf_printf(out,
               "# HELP trilemma_history_bytes Conversation text held in memory for next turns.\n"
               "# TYPE trilemma_history_bytes gauge\ntrilemma_history_bytes %llu\n"
               "# HELP trilemma_history_budget_bytes The process's history_budget_bytes.\n"
               "# TYPE trilemma_history_budget_bytes gauge\ntrilemma_history_budget_bytes %u\n"
               "# HELP trilemma_history_dropped_total Session histories dropped for the budget.\n"
               "# TYPE trilemma_history_dropped_total counter\n"
               "trilemma_history_dropped_total %llu\n"
               "# HELP trilemma_history_trimmed_total Oldest messages dropped for the caps.\n"
               "# TYPE trilemma_history_trimmed_total counter\n"
               "trilemma_history_trimmed_total %llu\n"
               "# HELP trilemma_history_reloads_total Dropped histories read back from the store.\n"
               "# TYPE trilemma_history_reloads_total counter\n"
               "trilemma_history_reloads_total %llu\n",
               (unsigned long long)history_bytes_held(),
               (unsigned)((const struct config *)server_app(srv))->history_budget_bytes,
               (unsigned long long)SUM(history_dropped), (unsigned long long)SUM(history_trimmed),
               (unsigned long long)SUM(history_reloads));
    sess_guard_metrics(srv, out);
    buf_printf(out,
               "# HELP trilemma_auth_failures_total Upgrades refused by auth or origin.\n"
               "# TYPE trilemma_auth_failures_total counter\n"
               "trilemma_auth_failures_total %llu\n",
               (unsigned long long)SUM(auth_failures));
    int n = server_worker_count(srv);
    struct store *stores[n];
    int ns = 0;
    for (int i = 0; i < n; i++) {
        struct sess_worker *sw = held_app(srv, i);
        if (sw && sw->store)
            stores[ns++] = sw->store;
    }
    if (ns)
        store_metrics(stores, ns, out);
    buf_printf(out, "# HELP trilemma_chat_errors_total Error events sent, by code.\n"
                    "# TYPE trilemma_chat_errors_total counter\n");
    for (int i = 0; i < SESS_ERROR_CODES; i++)
        buf_printf(out, "trilemma_chat_errors_total{code=\"%s\"} %llu\n", error_codes[i],
                   (unsigned long long)SUM(errors[i]));
    sess_trace_metrics(srv, held_app, out);
}

static const struct responder *g_responder = &echo_responder;

void session_set_responder(const struct responder *r)
{
    g_responder = r;
}

const struct responder *session_responder(void)
{
    return g_responder;
}

/* Storage state for /readyz: journaling is degraded but ready; refusing turns is not ready. */
static bool ready(struct server *srv, struct buf *out)
{
    bool ok = true, degraded = false, any = false;
    for (int i = 0; i < server_worker_count(srv); i++) {
        struct sess_worker *sw = held_app(srv, i);
        if (!sw || !sw->store)
            continue;
        any = true;
        degraded |= store_degraded(sw->store);
        ok &= store_accepting(sw->store);
    }
    if (any)
        buf_printf(out, "storage: %s\n",
                   !ok        ? "refusing new turns (database away, journal full)"
                   : degraded ? "degraded (database away, writing to the spill journal)"
                              : "ok");
    return ok;
}

static bool on_request(struct conn *c, const struct http_request *req, const char *body, size_t len)
{
    struct sess_worker *sw = worker_app(conn_worker(c));
    return store_api_request(sw->store, c, req, body, len, sw->conf->admin_token);
}

static void on_http_close(struct conn *c)
{
    struct sess_worker *sw = worker_app(conn_worker(c));
    store_api_abort(sw->store, c);
}

/* Fill h with the session layer's hooks. */
void session_hooks(struct server_hooks *h)
{
    memset(h, 0, sizeof(*h));
    h->worker_init = worker_init;
    h->worker_fini = worker_fini;
    h->on_upgrade = on_upgrade;
    h->on_open = on_open;
    h->on_message = on_message_hook;
    h->on_close = on_close;
    h->on_drain = on_drain;
    h->on_writable = on_writable;
    h->max_body = STORE_API_MAX_BODY; /* the admin API's POSTs; larger bodies get 413 */
    h->may_stop = may_stop;
    h->metrics = metrics;
    h->ready = ready;
    h->on_request = on_request;
    h->on_http_close = on_http_close;
}
