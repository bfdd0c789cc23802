/* test_model_call.c - orchestrator/model_call.c against a scripted OpenAI-compatible server on
 * loopback (a thread with blocking sockets, one scripted response per connection):
 *   - a buffering sink (never commits) is reset and gets the retry's answer: usable for calls
 *     whose output never reaches the client (classifier, judge);
 *   - a committing sink (the client's rule) ends FAILED instead of retrying;
 *   - the end marker ends the call although the server keeps the body open;
 *   - a cancel from inside on_text (the reentrancy hazard) ends the call CANCELLED, recorded;
 *   - a provisioned route (overflow) answered 429 goes to the standard route at once, no retry;
 *     attempts carry their tier and deployment and are priced at their tier.
 * No test waits on a clock: the loop runs until on_complete stops it. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "net/loop.h"
#include "orchestrator/model_call.h"
#include "stream/http_client.h"
#include "tests/tap.h"

#define HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
#define CHUNK(t) "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" t "\"}}]}\n\n"
#define FINISH "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
#define USAGE "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\n"
#define DONE "data: [DONE]\n\n"

/* A stream cut before [DONE] (retryable "incomplete_stream"), then a complete one. */
static const char cut[] = HEAD CHUNK("hel");
static const char whole[] = HEAD CHUNK("hel") CHUNK("lo") FINISH USAGE DONE;
/* A provisioned deployment that is full: retryable, and soon (Retry-After: 0) */
#define FULL_BODY "{\"error\":{\"message\":\"full\",\"type\":\"rate_limit_exceeded\"}}"
static const char full[] =
    "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
    "Retry-After: 0\r\nConnection: close\r\nContent-Length: 57\r\n\r\n" FULL_BODY;

struct script {
    const char *resp[4];
    bool hold[4]; /* keep the connection open after the response */
    int n;
    /* two routes on the server: "m-ptu" (tier provisioned, deployment "ptu", overflow unless
     * no_overflow), then "m" (standard); priced by a table of both tiers */
    bool provisioned, no_overflow;
};

struct server {
    int lfd;
    int port;
    const struct script *sc;
    int held[4];
    int n_held;
};

static void read_request(int fd)
{
    char b[8192];
    size_t n = 0;
    long body = -1;
    for (;;) {
        ssize_t r = read(fd, b + n, sizeof(b) - 1 - n);
        if (r <= 0)
            return;
        n += (size_t)r;
        b[n] = '\0';
        char *end = strstr(b, "\r\n\r\n");
        if (!end)
            continue;
        if (body < 0) {
            char *cl = strcasestr(b, "content-length:");
            body = cl ? strtol(cl + 15, NULL, 10) : 0;
        }
        if (n >= (size_t)(end + 4 - b) + (size_t)body)
            return;
    }
}

static void *serve(void *arg)
{
    struct server *s = arg;
    for (int i = 0; i < s->sc->n; i++) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        read_request(fd);
        const char *r = s->sc->resp[i];
        if (write(fd, r, strlen(r)) < 0)
            perror("write");
        if (s->sc->hold[i])
            s->held[s->n_held++] = fd;
        else
            close(fd);
    }
    return NULL;
}

static int server_start(struct server *s, pthread_t *th)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s->lfd, 8) < 0 ||
        getsockname(s->lfd, (struct sockaddr *)&a, &al) < 0)
        return -1;
    s->port = ntohs(a.sin_port);
    return pthread_create(th, NULL, serve, s);
}

/* ---- a recording sink ---- */

struct rec {
    struct loop *l;
    struct model_call *mc;
    bool commit;         /* committed() once text arrived (the client's rule) */
    bool cancel_on_text; /* model_call_cancel from inside on_text */
    struct buf text;
    int resets;
    bool done;
    enum model_outcome outcome;
    bool committed;
    uint32_t n_attempts;
    struct llm_call_record attempts[4];
    char error_type[48];
    struct llm_usage usage;
};

static void rec_text(void *ctx, const char *t, size_t n)
{
    struct rec *r = ctx;
    buf_append(&r->text, t, n);
    if (r->cancel_on_text)
        model_call_cancel(r->mc);
}

static bool rec_committed(void *ctx)
{
    struct rec *r = ctx;
    return r->commit && buf_size(&r->text) > 0;
}

static void rec_reset(void *ctx)
{
    struct rec *r = ctx;
    r->resets++;
    buf_reset(&r->text); /* a buffering sink discards what the abandoned attempt said */
}

static void rec_complete(void *ctx, const struct model_result *res)
{
    struct rec *r = ctx;
    r->done = true;
    r->outcome = res->outcome;
    r->committed = res->committed;
    r->n_attempts = res->n_attempts;
    for (uint32_t i = 0; i < res->n_attempts && i < 4; i++)
        r->attempts[i] = res->attempts[i];
    snprintf(r->error_type, sizeof(r->error_type), "%s", res->error_type ? res->error_type : "");
    r->usage = res->usage;
    loop_stop(r->l);
}

static const struct model_sink_ops rec_ops = {
    .on_text = rec_text,
    .committed = rec_committed,
    .on_reset = rec_reset,
    .on_complete = rec_complete,
};

/* m at both tiers, and m-ptu provisioned only: USD per million tokens */
static struct price_table *two_tier_prices(void)
{
    char path[] = "/tmp/test_model_call_prices.XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        return NULL;
    fputs("openai,m,standard,2025-01-01,USD,1,0,0,10\n"
          "openai,m,provisioned,2025-01-01,USD,0,0,0,0\n"
          "openai,m-ptu,provisioned,2025-01-01,USD,0,0,0,1\n",
          f);
    fclose(f);
    char err[256];
    struct price_table *t = prices_load(path, err, sizeof(err));
    unlink(path);
    CHECKF(t != NULL, "%s", err);
    return t;
}

/* Run one call against the script; fills r. */
static void run(const struct script *sc, struct rec *r)
{
    struct server s = {.sc = sc};
    pthread_t th;
    if (server_start(&s, &th) != 0) {
        CHECK(!"the scripted server could not start");
        return;
    }
    struct loop_config lc = {.sq_entries = 64, .buf_count = 16};
    struct loop *l = loop_create(&lc);
    struct hc *hc = l ? hc_create(l, 9) : NULL;
    CHECK(l && hc);
    if (!hc)
        exit(77); /* no io_uring here */
    struct model_route routes[2] = {{.provider = LLM_OPENAI, .model = "m", .key = ""}};
    snprintf(routes[0].base_url, sizeof(routes[0].base_url), "http://127.0.0.1:%d/v1", s.port);
    int n_routes = 1;
    if (sc->provisioned) {
        routes[1] = routes[0];
        snprintf(routes[0].model, sizeof(routes[0].model), "m-ptu");
        snprintf(routes[0].tier, sizeof(routes[0].tier), "provisioned");
        snprintf(routes[0].deployment, sizeof(routes[0].deployment), "ptu");
        routes[0].overflow = !sc->no_overflow;
        n_routes = 2;
    }
    struct model_pricing pricing = {.prices = two_tier_prices(), .currency = "USD"};
    struct llm_message msg = {"user", "hi", 2};
    struct llm_request req = {.messages = &msg, .n_messages = 1, .temperature = -1};
    struct model_call_policy pol = {.connect_timeout_ms = 5000,
                                    .first_token_timeout_ms = 60000,
                                    .stall_timeout_ms = 60000,
                                    .max_retries = 1,
                                    .retry_base_ms = 1};
    struct model_call_spec spec = {.routes = routes,
                                   .n_routes = n_routes,
                                   .request = &req,
                                   .policy = &pol,
                                   .pricing = &pricing,
                                   .role = "classifier"};
    struct model_sink sink = {&rec_ops, r};
    r->l = l;
    r->mc = model_call_start(l, hc, &spec, &sink);
    CHECK(r->mc != NULL);
    loop_run(l);
    hc_destroy(hc);
    loop_destroy(l);
    prices_free((struct price_table *)pricing.prices);
    pthread_join(th, NULL);
    for (int i = 0; i < s.n_held; i++)
        close(s.held[i]);
    close(s.lfd);
}

static void buffering_sink_is_reset_and_retried(void)
{
    static const struct script sc = {{cut, whole}, {false, false}, 2};
    struct rec r = {0};
    run(&sc, &r);
    CHECK(r.done && r.outcome == MODEL_OK && !r.committed);
    CHECK(r.resets == 1);
    CHECK(buf_size(&r.text) == 5 && memcmp(buf_begin(&r.text), "hello", 5) == 0);
    CHECK(r.n_attempts == 2);
    CHECK(!strcmp(r.attempts[0].role, "classifier") && !strcmp(r.attempts[0].status, "error"));
    CHECK(strstr(r.attempts[0].error, "incomplete_stream") != NULL);
    CHECK(!strcmp(r.attempts[1].role, "retry") && !strcmp(r.attempts[1].status, "ok"));
    CHECK(r.attempts[1].usage_reported && r.usage.input_tokens == 7 && r.usage.output_tokens == 2);
    buf_free(&r.text);
}

static void committing_sink_is_not_retried(void)
{
    static const struct script sc = {{cut}, {false}, 1};
    struct rec r = {.commit = true};
    run(&sc, &r);
    CHECK(r.done && r.outcome == MODEL_FAILED && r.committed);
    CHECK(r.resets == 0 && r.n_attempts == 1);
    CHECK(!strcmp(r.error_type, "incomplete_stream"));
    buf_free(&r.text);
}

static void end_marker_ends_a_held_body(void)
{
    static const struct script sc = {{whole}, {true}, 1};
    struct rec r = {.commit = true};
    run(&sc, &r);
    CHECK(r.done && r.outcome == MODEL_OK && r.n_attempts == 1);
    CHECK(!strcmp(r.attempts[0].status, "ok") && r.attempts[0].usage_reported);
    CHECK(r.usage.output_tokens == 2);
    buf_free(&r.text);
}

static void cancel_from_inside_on_text(void)
{
    static const struct script sc = {{whole}, {true}, 1};
    struct rec r = {.commit = true, .cancel_on_text = true};
    run(&sc, &r);
    CHECK(r.done && r.outcome == MODEL_CANCELLED && r.n_attempts == 1);
    CHECK(!strcmp(r.attempts[0].status, "cancelled"));
    CHECK(buf_size(&r.text) == 3); /* nothing after the cancel */
    buf_free(&r.text);
}

/* A provisioned route answered 429 (retryable, Retry-After: 0, retries left): the next attempt
 * is the standard route, not a retry of the provisioned one; each attempt carries its tier and
 * is priced at it. */
static void provisioned_429_overflows_at_once(void)
{
    static const struct script sc = {{full, whole}, {false, false}, 2, .provisioned = true};
    struct rec r = {0};
    run(&sc, &r);
    CHECK(r.done && r.outcome == MODEL_OK && r.n_attempts == 2);
    CHECK(!strcmp(r.attempts[0].model, "m-ptu") && !strcmp(r.attempts[0].tier, "provisioned"));
    CHECK(!strcmp(r.attempts[0].deployment, "ptu") && r.attempts[0].http_status == 429);
    CHECK(!strcmp(r.attempts[0].status, "error") && r.attempts[0].cost_micros == 0);
    CHECK(!strcmp(r.attempts[1].model, "m") && !strcmp(r.attempts[1].tier, "standard"));
    CHECK(!strcmp(r.attempts[1].role, "fallback") && r.attempts[1].attempt == 1);
    CHECK(r.attempts[1].deployment[0] == '\0' && !strcmp(r.attempts[1].status, "ok"));
    /* 7 input at 1 + 2 output at 10 USD per million = 27 micro-USD */
    CHECK(r.attempts[1].cost_micros == 27);
    buf_free(&r.text);
}

/* The same route without overflow retries itself (what the test above rules out). */
static void route_without_overflow_retries(void)
{
    static const struct script sc = {
        {full, whole}, {false, false}, 2, .provisioned = true, .no_overflow = true};
    struct rec r = {0};
    run(&sc, &r);
    CHECK(r.done && r.outcome == MODEL_OK && r.n_attempts == 2);
    CHECK(!strcmp(r.attempts[1].model, "m-ptu") && !strcmp(r.attempts[1].role, "retry"));
    CHECK(!strcmp(r.attempts[1].tier, "provisioned") && r.attempts[1].attempt == 2);
    /* priced at the provisioned row of m-ptu: 2 output at 1 USD per million */
    CHECK(r.attempts[1].cost_micros == 2);
    buf_free(&r.text);
}

/* An answer from the provisioned route: one attempt, tier provisioned, its tier's price. */
static void provisioned_answer(void)
{
    static const struct script sc = {{whole}, {false}, 1, .provisioned = true};
    struct rec r = {0};
    run(&sc, &r);
    CHECK(r.done && r.outcome == MODEL_OK && r.n_attempts == 1);
    CHECK(!strcmp(r.attempts[0].tier, "provisioned") && !strcmp(r.attempts[0].deployment, "ptu"));
    CHECK(!strcmp(r.attempts[0].role, "classifier") && r.attempts[0].cost_micros == 2);
    buf_free(&r.text);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    buffering_sink_is_reset_and_retried();
    committing_sink_is_not_retried();
    end_marker_ends_a_held_body();
    cancel_from_inside_on_text();
    provisioned_429_overflows_at_once();
    route_without_overflow_retries();
    provisioned_answer();
    return tap_done();
}
