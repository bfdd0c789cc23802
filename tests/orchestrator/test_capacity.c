/* test_capacity.c - orchestrator/capacity.c with an injected clock: the pod's share follows the
 * pod count, the 60 s window slides, a reservation is replaced by the call's actual usage once,
 * the streams limit, admission refusals (counted as overflow "full"), the overflow reasons of a
 * call's attempts; and prices_find's tiers (a provisioned row prices provisioned calls only). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orchestrator/capacity.h"
#include "orchestrator/prices.h"
#include "tests/tap.h"

static struct llm_call_record call(const char *deployment, const char *status, int http,
                                   uint64_t in, uint64_t out, bool reported)
{
    /* an ok answer had a first token; anything else none */
    struct llm_call_record r = {
        .http_status = http, .usage_reported = reported, .ttft_ms = strcmp(status, "ok") ? -1 : 40};
    snprintf(r.deployment, sizeof(r.deployment), "%s", deployment);
    snprintf(r.tier, sizeof(r.tier), "%s", deployment[0] ? "provisioned" : "standard");
    snprintf(r.status, sizeof(r.status), "%s", status);
    r.usage.input_tokens = in;
    r.usage.output_tokens = out;
    return r;
}

static void share_arithmetic(void)
{
    CHECK(capacity_share_tpm(400000, 1) == 400000);
    CHECK(capacity_share_tpm(400000, 3) == 133333);
    CHECK(capacity_share_tpm(400000, 0) == 400000); /* 0 pods counts as 1 */
    CHECK(capacity_share_streams(64, 4) == 16);
    CHECK(capacity_share_streams(2, 5) == 1); /* a pod can always make one call */
    /* streams first, then tokens: window + reserved + estimate must fit the share */
    CHECK(capacity_decide(1000, 2, 0, 0, 0, 1000) == CAP_ADMIT);
    CHECK(capacity_decide(1000, 2, 0, 0, 0, 1001) == CAP_FULL_TOKENS);
    CHECK(capacity_decide(1000, 2, 600, 300, 1, 100) == CAP_ADMIT);
    CHECK(capacity_decide(1000, 2, 600, 300, 1, 101) == CAP_FULL_TOKENS);
    CHECK(capacity_decide(1000, 2, 0, 0, 2, 1) == CAP_FULL_STREAMS);
    CHECK(capacity_decide(1000, 2, 900, 900, 0, 1) == CAP_FULL_TOKENS);      /* over already */
    CHECK(capacity_decide(1000, 2, 0, 0, 0, UINT64_MAX) == CAP_FULL_TOKENS); /* no wrap */
}

static void window_slides(void)
{
    struct cap_window w = {0};
    int64_t t0 = 1000000; /* any monotonic origin */
    cap_window_add(&w, t0, 100);
    cap_window_add(&w, t0 + 30000, 50);
    CHECK(cap_window_sum(&w, t0 + 30000) == 150);
    /* a time before a bucket's second does not count it (the window ends at now) */
    CHECK(cap_window_sum(&w, t0 + 29999) == 100);
    CHECK(cap_window_sum(&w, t0 + 59999) == 150);
    CHECK(cap_window_sum(&w, t0 + 60000) == 50); /* the first second left the window */
    CHECK(cap_window_sum(&w, t0 + 89999) == 50);
    CHECK(cap_window_sum(&w, t0 + 90000) == 0);
    /* a bucket is reused 60 s later: the old second does not add to the new one */
    cap_window_add(&w, t0 + 60000, 7);
    CHECK(cap_window_sum(&w, t0 + 60000) == 57);
    /* two additions in the same second add up */
    cap_window_add(&w, t0 + 60500, 3);
    CHECK(cap_window_sum(&w, t0 + 60999) == 60);
}

static void share_follows_pods(void)
{
    struct capacity_spec spec = {.name = "ptu", .tpm = 600, .streams = 4};
    struct capacity *c = capacity_create(&spec, 1, 1);
    struct capacity_stats st;
    int64_t now = 5000;
    capacity_stats(c, 0, now, &st);
    CHECK(st.share_tpm == 600 && st.share_streams == 4 && capacity_pods(c) == 1);
    struct capacity_hold a, b;
    CHECK(capacity_admit(c, 0, 250, now, &a) && a.held && a.reserved == 250);
    capacity_set_pods(c, 3); /* two more pods came up: this one's share is a third */
    capacity_stats(c, 0, now, &st);
    CHECK(st.share_tpm == 200 && st.share_streams == 1 && capacity_pods(c) == 3);
    CHECK(!capacity_admit(c, 0, 1, now, &b) && !b.held);
    capacity_complete(c, &a, NULL, 0, now);    /* refused or cancelled before an answer: 0 used */
    CHECK(capacity_admit(c, 0, 200, now, &b)); /* the whole share again */
    capacity_complete(c, &b, NULL, 0, now);
    capacity_set_pods(c, 1);
    capacity_stats(c, 0, now, &st);
    CHECK(st.share_tpm == 600 && st.share_streams == 4);
    CHECK(st.admitted == 2 && st.overflow_full == 1);
    capacity_destroy(c);
}

static void reservation_replaced_by_usage(void)
{
    struct capacity_spec spec = {.name = "ptu", .tpm = 1000, .streams = 8};
    struct capacity *c = capacity_create(&spec, 1, 1);
    struct capacity_stats st;
    struct capacity_hold h, h2;
    int64_t now = 10000;
    CHECK(capacity_admit(c, 0, 700, now, &h));
    capacity_stats(c, 0, now, &st);
    CHECK(st.reserved == 700 && st.window_tokens == 0 && st.inflight == 1);
    CHECK(!capacity_admit(c, 0, 301, now, &h2)); /* 700 reserved + 301 > 1000 */
    struct llm_call_record a[] = {call("ptu", "ok", 200, 120, 80, true)};
    capacity_complete(c, &h, a, 1, now + 2000);
    CHECK(!h.held);
    capacity_stats(c, 0, now + 2000, &st);
    CHECK(st.reserved == 0 && st.window_tokens == 200 && st.inflight == 0);
    /* completed exactly once: a second completion of the same hold changes nothing */
    CHECK(capacity_admit(c, 0, 100, now + 2000, &h2));
    capacity_complete(c, &h, a, 1, now + 2000);
    capacity_stats(c, 0, now + 2000, &st);
    CHECK(st.reserved == 100 && st.inflight == 1 && st.window_tokens == 200);
    /* an answer without reported usage counts what was reserved */
    struct llm_call_record silent[] = {call("ptu", "ok", 200, 0, 0, false)};
    capacity_complete(c, &h2, silent, 1, now + 3000);
    capacity_stats(c, 0, now + 3000, &st);
    CHECK(st.reserved == 0 && st.window_tokens == 300);
    /* cancelled before its first token (headers came, no output, no usage): nothing used */
    struct llm_call_record cut[] = {call("ptu", "cancelled", 200, 0, 0, false)};
    CHECK(capacity_admit(c, 0, 100, now + 3000, &h2));
    capacity_complete(c, &h2, cut, 1, now + 3000);
    capacity_stats(c, 0, now + 3000, &st);
    CHECK(st.reserved == 0 && st.inflight == 0 && st.window_tokens == 300);
    /* 60 s later the window is empty again: the whole share is free */
    CHECK(capacity_admit(c, 0, 1000, now + 63000, &h));
    capacity_complete(c, &h, NULL, 0, now + 63000);
    capacity_destroy(c);
}

static void streams_limit(void)
{
    struct capacity_spec spec[2] = {{.name = "a", .tpm = 1000000, .streams = 2},
                                    {.name = "b", .tpm = 1000000, .streams = 1}};
    struct capacity *c = capacity_create(spec, 2, 1);
    struct capacity_hold h[4];
    CHECK(capacity_admit(c, 0, 10, 0, &h[0]) && capacity_admit(c, 0, 10, 0, &h[1]));
    CHECK(!capacity_admit(c, 0, 10, 0, &h[2])); /* both streams in use */
    CHECK(capacity_admit(c, 1, 10, 0, &h[3]));  /* deployments are apart */
    capacity_complete(c, &h[0], NULL, 0, 0);
    CHECK(capacity_admit(c, 0, 10, 0, &h[2])); /* a freed stream takes the next call */
    struct capacity_stats st;
    capacity_stats(c, 0, 0, &st);
    CHECK(st.inflight == 2 && st.overflow_full == 1 && st.admitted == 3);
    CHECK(!capacity_admit(c, 2, 10, 0, &h[0]) && !h[0].held); /* no such deployment */
    capacity_complete(c, &h[1], NULL, 0, 0);
    capacity_complete(c, &h[2], NULL, 0, 0);
    capacity_complete(c, &h[3], NULL, 0, 0);
    capacity_stats(c, 0, 0, &st);
    CHECK(st.inflight == 0 && st.reserved == 0);
    capacity_destroy(c);
}

static void overflow_reasons(void)
{
    struct llm_call_record r429[] = {call("ptu", "error", 429, 0, 0, false),
                                     call("", "ok", 200, 10, 5, true)};
    struct llm_call_record r500[] = {call("ptu", "error", 500, 0, 0, false),
                                     call("", "ok", 200, 10, 5, true)};
    struct llm_call_record ok[] = {call("ptu", "ok", 200, 10, 5, true)};
    struct llm_call_record last[] = {call("", "error", 500, 0, 0, false),
                                     call("ptu", "error", 429, 0, 0, false)};
    CHECK(!strcmp(capacity_overflow_reason("ptu", r429, 2), "rate_limited"));
    CHECK(!strcmp(capacity_overflow_reason("ptu", r500, 2), "error"));
    CHECK(capacity_overflow_reason("ptu", ok, 1) == NULL);
    CHECK(capacity_overflow_reason("ptu", r429, 1) == NULL); /* nothing followed it */
    CHECK(capacity_overflow_reason("ptu", last, 2) == NULL);
    CHECK(capacity_overflow_reason("other", r429, 2) == NULL);

    /* completion counts the reason, and the failed provisioned attempt used nothing */
    struct capacity_spec spec = {.name = "ptu", .tpm = 1000, .streams = 2};
    struct capacity *c = capacity_create(&spec, 1, 1);
    struct capacity_hold h;
    CHECK(capacity_admit(c, 0, 100, 0, &h));
    capacity_complete(c, &h, r429, 2, 0);
    CHECK(capacity_admit(c, 0, 100, 0, &h));
    capacity_complete(c, &h, r500, 2, 0);
    struct capacity_stats st;
    capacity_stats(c, 0, 0, &st);
    CHECK(st.overflow_rate_limited == 1 && st.overflow_error == 1 && st.window_tokens == 0);
    struct buf m = {0};
    capacity_metrics(c, &m);
    buf_append(&m, "", 1);
    CHECK(strstr(buf_begin(&m), "trilemma_capacity_share_tpm{deployment=\"ptu\"} 1000\n"));
    CHECK(
        strstr(buf_begin(&m),
               "trilemma_capacity_overflow_total{deployment=\"ptu\",reason=\"rate_limited\"} 1\n"));
    CHECK(strstr(buf_begin(&m), "trilemma_capacity_pods 1\n"));
    buf_free(&m);
    capacity_destroy(c);
}

static void estimate(void)
{
    struct llm_message msgs[] = {{"system", "12345678", 8}, {"user", "abcd", 4}};
    struct llm_request req = {.messages = msgs, .n_messages = 2, .max_tokens = 300};
    CHECK(capacity_estimate(&req, 1024) == 3 + 300);
    req.max_tokens = 0;
    CHECK(capacity_estimate(&req, 1024) == 3 + 1024); /* the provider's default, assumed */
    struct llm_tool tool = {"t", "d", "{}"};          /* 4 bytes: one token more */
    req.tools = &tool;
    req.n_tools = 1;
    CHECK(capacity_estimate(&req, 0) == 4);
}

static void price_tiers(void)
{
    char path[] = "/tmp/test_capacity_prices.XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        CHECK(!"temp file");
        return;
    }
    fputs("openai,m,standard,2025-01-01,USD,1,0,0,2\n"
          "openai,m,provisioned,2025-01-01,USD,0,0,0,0.5\n"
          "openai,only-std,standard,2025-01-01,USD,1,0,0,1\n",
          f);
    fclose(f);
    char err[256];
    struct price_table *t = prices_load(path, err, sizeof(err));
    unlink(path);
    CHECKF(t != NULL, "%s", err);
    if (!t)
        return;
    const struct price *std = prices_find(t, "openai", "m", NULL, "2026-01-01");
    const struct price *std2 = prices_find(t, "openai", "m", "standard", "2026-01-01");
    const struct price *prov = prices_find(t, "openai", "m", "provisioned", "2026-01-01");
    CHECK(std && std == std2 && !strcmp(std->tier, "standard") && std->output == 2000000);
    CHECK(prov && !strcmp(prov->tier, "provisioned") && prov->output == 500000);
    CHECK(prices_find(t, "openai", "only-std", "provisioned", "2026-01-01") == NULL);
    prices_free(t);
}

int main(void)
{
    share_arithmetic();
    window_slides();
    share_follows_pods();
    reservation_replaced_by_usage();
    streams_limit();
    overflow_reasons();
    estimate();
    price_tiers();
    return tap_done();
}
