/* test_trace.c - trace/: W3C traceparent, redaction, spans and their records, OTLP/JSON, flags. */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "stream/json.h"
#include "tests/tap.h"
#include "trace/flags.h"
#include "trace/otlp.h"
#include "trace/redact.h"
#include "trace/trace.h"

/* ---- traceparent (W3C Trace Context, level 1: section 3.2) ---- */

static void test_traceparent(void)
{
    struct trace_ctx c;
    const char *ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    CHECK(trace_parse_traceparent(ok, strlen(ok), &c) == 0);
    CHECK(c.trace_id[0] == 0x4b && c.trace_id[15] == 0x36 && c.span_id[7] == 0xb7 && c.flags == 1);
    char out[56];
    trace_format_traceparent(c.trace_id, c.span_id, c.flags, out);
    CHECK(strcmp(out, ok) == 0);
    /* a later version: its first four fields are read, more may follow after a dash */
    const char *v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-ever";
    CHECK(trace_parse_traceparent(v1, strlen(v1), &c) == 0 && c.flags == 0);
    static const char *const bad[] = {
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",   /* short */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* v00 is exactly 55 */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* version ff */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  /* zero parent */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  /* uppercase */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",  /* not hex */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", /* later version, no dash */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECKF(trace_parse_traceparent(bad[i], strlen(bad[i]), &c) < 0, "%s", bad[i]);
}

/* ---- redaction ---- */

static void expect_redacted(uint32_t mask, const char *in, const char *want, size_t n)
{
    struct buf b = {0};
    size_t got = redact_apply(mask, in, strlen(in), &b);
    buf_append(&b, "", 1);
    CHECKF(strcmp(buf_begin(&b), want) == 0 && got == n, "'%s' -> '%s' (%zu), want '%s' (%zu)", in,
           buf_begin(&b), got, want, n);
    buf_free(&b);
}

static void test_redact(void)
{
    const uint32_t all = REDACT_CARD | REDACT_PHONE | REDACT_EMAIL;
    CHECK(redact_luhn_ok("4111 1111 1111 1111", 19));
    CHECK(redact_luhn_ok("79927398713", 11));
    CHECK(!redact_luhn_ok("4111 1111 1111 1112", 19));
    CHECK(!redact_luhn_ok("", 0));
    expect_redacted(all, "pay with 4111 1111 1111 1111 please", "pay with [card] please", 1);
    expect_redacted(all, "card 5500-0000-0000-0004.", "card [card].", 1);
    expect_redacted(all, "card 378282246310005", "card [card]", 1);
    /* a 16-digit number failing Luhn is a phone? no: more than 15 digits is neither */
    expect_redacted(all, "ref 4111111111111112 ok", "ref 4111111111111112 ok", 0);
    expect_redacted(all, "call +91 98765 43210 now", "call [phone] now", 1);
    expect_redacted(all, "call (415) 555-0132 or 415.555.0133", "call [phone] or [phone]", 2);
    expect_redacted(all, "mail Jane.Doe+x@example.co.in.", "mail [email].", 1);
    expect_redacted(all, "a@b is not one, nor is x@y.z1", "a@b is not one, nor is x@y.z1", 0);
    /* prices, order numbers, pincodes, model numbers stay */
    expect_redacted(all, "Rs 18,999 for order 1234-5678 to 560001 (SM-A546E)",
                    "Rs 18,999 for order 1234-5678 to 560001 (SM-A546E)", 0);
    expect_redacted(all, "id p12345678901", "id p12345678901", 0); /* inside a word */
    expect_redacted(REDACT_EMAIL, "4111 1111 1111 1111 a@b.io", "4111 1111 1111 1111 [email]", 1);
    expect_redacted(0, "a@b.io", "a@b.io", 0);
    uint32_t m;
    CHECK(redact_parse("card, email", &m) == 0 && m == (REDACT_CARD | REDACT_EMAIL));
    CHECK(redact_parse("none", &m) == 0 && m == 0);
    CHECK(redact_parse("card,iban", &m) < 0);
}

/* ---- spans ---- */

static struct trace_conf conf(enum trace_capture cap)
{
    struct trace_conf c;
    trace_conf_defaults(&c);
    c.capture = cap;
    return c;
}

static void test_spans(void)
{
    struct trace_conf off = conf(TRACE_OFF), meta = conf(TRACE_METADATA), full = conf(TRACE_FULL);
    CHECK(trace_begin(&off, NULL, false) == NULL);
    trace_str(NULL, 0, "k", "v"); /* a NULL trace is a no-op everywhere */
    CHECK(trace_span(NULL, 0, "tool", "x") == -1);

    struct trace_ctx parent;
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    trace_parse_traceparent(tp, strlen(tp), &parent);
    struct trace *tr = trace_begin(&meta, &parent, true);
    CHECK(strcmp(trace_id_hex(tr), "4bf92f3577b34da6a3ce929d0e0e4736") == 0);
    int tool = trace_span_at(tr, 0, "tool", "execute_tool get_product", 1000);
    trace_str(tr, tool, "gen_ai.tool.name", "get_product");
    trace_int(tr, tool, "n", -7);
    trace_bool(tr, tool, "b", true);
    trace_content(tr, tool, "gen_ai.tool.call.arguments", "{\"id\":\"1\"}", 10); /* dropped */
    struct trace_attr ev[] = {{"attempt", TA_INT, NULL, 2}, {"why", TA_STR, "HTTP 503", 0}};
    trace_event(tr, tool, "retry", 1500, ev, 2);
    trace_end_at(tr, tool, 2000, "HTTP 503 for a@b.io");
    char hdr[56];
    trace_traceparent(tr, tool, hdr);
    CHECK(strncmp(hdr, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36) == 0 && strlen(hdr) == 55);
    CHECK(trace_has_error(tr));

    struct buf text = {0};
    struct span_record *r;
    CHECK(trace_records(tr, &text, &r) == 2);
    CHECK(!strcmp(r[0].kind, "turn") && r[0].parent_span_id[0] == '\0' && r[0].end_us > 0);
    CHECK(!strcmp(r[1].parent_span_id, r[0].span_id) && r[1].start_us == 1000);
    CHECK(r[1].end_us == 2000 && !strcmp(r[1].status, "error"));
    CHECK(!strcmp(r[1].status_message, "HTTP 503 for [email]"));
    CHECKF(r[1].attributes_len ==
                   strlen("{\"gen_ai.tool.name\":\"get_product\",\"n\":-7,\"b\":true}") &&
               !memcmp(r[1].attributes,
                       "{\"gen_ai.tool.name\":\"get_product\",\"n\":-7,\"b\":true}",
                       r[1].attributes_len),
           "%.*s", (int)r[1].attributes_len, r[1].attributes);
    CHECKF(!memcmp(r[1].events,
                   "[{\"name\":\"retry\",\"time_unix_us\":1500,\"attributes\":{\"attempt\":2,"
                   "\"why\":\"HTTP 503\"}}]",
                   r[1].events_len),
           "%.*s", (int)r[1].events_len, r[1].events);
    xfree(r);
    buf_free(&text);

    /* OTLP/JSON: hex ids, the remote parent on the root, nanosecond strings, typed values */
    struct buf spans = {0}, body = {0};
    trace_otlp_spans(tr, &spans);
    otlp_body("svc", buf_begin(&spans), buf_size(&spans), &body);
    json_doc *d = json_doc_create();
    CHECK(json_doc_load(d, buf_begin(&body), buf_size(&body)) == 0);
    const char *s;
    size_t n;
    CHECK(json_get_string(d, "/resourceSpans/0/resource/attributes/0/value/stringValue", &s, &n) ==
              0 &&
          n == 3 && !memcmp(s, "svc", 3));
    const char *sp = "/resourceSpans/0/scopeSpans/0/spans";
    char ptr[200];
    snprintf(ptr, sizeof(ptr), "%s/0/parentSpanId", sp);
    CHECK(json_get_string(d, ptr, &s, &n) == 0 && n == 16 && !memcmp(s, "00f067aa0ba902b7", 16));
    snprintf(ptr, sizeof(ptr), "%s/1/startTimeUnixNano", sp);
    CHECK(json_get_string(d, ptr, &s, &n) == 0 && n == 7 && !memcmp(s, "1000000", 7));
    snprintf(ptr, sizeof(ptr), "%s/1/kind", sp);
    int64_t k;
    CHECK(json_get_int(d, ptr, &k) == 0 && k == 3); /* SPAN_KIND_CLIENT */
    snprintf(ptr, sizeof(ptr), "%s/1/status/code", sp);
    CHECK(json_get_int(d, ptr, &k) == 0 && k == 2); /* STATUS_CODE_ERROR */
    snprintf(ptr, sizeof(ptr), "%s/1/attributes/2/value/intValue", sp);
    CHECK(json_get_string(d, ptr, &s, &n) == 0 && n == 2 && !memcmp(s, "-7", 2));
    snprintf(ptr, sizeof(ptr), "%s/1/events/0/attributes/0/value/intValue", sp);
    CHECK(json_get_string(d, ptr, &s, &n) == 0 && n == 1 && s[0] == '2');
    snprintf(ptr, sizeof(ptr), "%s/1/traceId", sp);
    CHECK(json_get_string(d, ptr, &s, &n) == 0 && n == 32);
    json_doc_destroy(d);
    buf_free(&spans);
    buf_free(&body);
    trace_free(tr);

    /* capture full: content kept, redacted first; NUL bytes never reach the JSON */
    tr = trace_begin(&full, NULL, false);
    trace_content(tr, 0, "gen_ai.input.messages", "my card 4111111111111111\0!", 26);
    r = NULL;
    CHECK(trace_records(tr, &text, &r) == 1);
    CHECKF(!memcmp(r[0].attributes, "{\"gen_ai.input.messages\":\"my card [card] !\"}",
                   r[0].attributes_len),
           "%.*s", (int)r[0].attributes_len, r[0].attributes);
    xfree(r);
    buf_free(&text);
    trace_free(tr);
}

/* A status message is cut to its field's size on a UTF-8 character boundary: PostgreSQL refuses
 * a text value with half a character, and the whole turn with it. */
static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80             ? 0
                : (*p & 0xE0) == 0xC0 ? 1
                : (*p & 0xF0) == 0xE0 ? 2
                : (*p & 0xF8) == 0xF0 ? 3
                                      : -1;
        if (n < 0)
            return false;
        p++;
        for (int i = 0; i < n; i++, p++)
            if ((*p & 0xC0) != 0x80)
                return false;
    }
    return true;
}

static void test_status_message_cut(void)
{
    struct trace_conf meta = conf(TRACE_METADATA);
    for (size_t lead = 0; lead < 4; lead++) { /* every alignment of the cut in a character */
        struct trace *tr = trace_begin(&meta, NULL, false);
        int sp = trace_span_at(tr, 0, "tool", "execute_tool search", 1000);
        char msg[400] = "";
        memset(msg, 'x', lead);
        for (size_t i = lead; i + 3 < sizeof(msg) - 1; i += 3)
            memcpy(msg + i, "\xe2\x82\xb9", 3); /* the rupee sign */
        trace_end_at(tr, sp, 2000, msg);
        struct buf text = {0};
        struct span_record *r;
        CHECK(trace_records(tr, &text, &r) == 2);
        CHECKF(utf8_valid(r[1].status_message) && strlen(r[1].status_message) >= 150,
               "lead %zu: %zu bytes", lead, strlen(r[1].status_message));
        xfree(r);
        buf_free(&text);
        trace_free(tr);
    }
    /* a caller's own cut (pt_tool_end quotes 190 bytes), shorter than the field */
    struct trace *tr = trace_begin(&meta, NULL, false);
    int sp = trace_span_at(tr, 0, "tool", "execute_tool search", 1000);
    trace_end_at(tr, sp, 2000, "HTTP 404: no \xe2\x82\xb9 price \xe2\x82");
    struct buf text = {0};
    struct span_record *r;
    CHECK(trace_records(tr, &text, &r) == 2);
    CHECKF(!strcmp(r[1].status_message, "HTTP 404: no \xe2\x82\xb9 price "), "%s",
           r[1].status_message);
    xfree(r);
    buf_free(&text);
    trace_free(tr);
}

/* ---- flags ---- */

struct got {
    char names[8][32];
    int n;
};

static void add(void *ctx, const char *flag)
{
    struct got *g = ctx;
    snprintf(g->names[g->n++], 32, "%s", flag);
}

static bool has(const struct got *g, const char *f)
{
    for (int i = 0; i < g->n; i++)
        if (!strcmp(g->names[i], f))
            return true;
    return false;
}

static void test_flags(void)
{
    struct trace_conf c = conf(TRACE_METADATA);
    CHECK(flags_ttft_target(&c, "suggestion") == 200 && flags_ttft_target(&c, "chitchat") == 1000);
    CHECK(flags_ttft_target(&c, "product_search") == 3000 && flags_ttft_target(&c, "") == 3000);
    const char *facts = "The Galaxy M35 costs ₹18,999 and has a 6000 mAh battery.";
    CHECK(flags_answer_states_facts(facts, strlen(facts)));
    CHECK(!flags_answer_states_facts("Hello! How can I help?", 22));
    CHECK(flags_answer_admits_failure("Sorry, I couldn't reach the catalog.", 36));
    CHECK(flags_result_empty("", 0) && flags_result_empty(" null ", 6));
    CHECK(flags_result_empty("[]", 2) && flags_result_empty("{ }", 3));
    CHECK(flags_result_empty("{\"products\": [], \"facets\":[ ]}", 30));
    CHECK(!flags_result_empty("{\"products\": [], \"total\": 0}", 28));
    CHECK(!flags_result_empty("[1]", 3));

    struct got g = {0};
    struct flag_turn t = {.query_type = "product_fact",
                          .first_token_ms = 3500,
                          .cost_micros = 10,
                          .answer = facts,
                          .answer_len = strlen(facts),
                          .tools_failed = 1};
    flags_compute(&c, &t, NULL, add, &g);
    CHECK(g.n == 2 && has(&g, "silent_confabulation") && has(&g, "slow_first_token"));
    /* admitting the failure is no confabulation; in time is not slow */
    const char *honest = "I couldn't check the price right now; it was ₹18,999 last week.";
    t = (struct flag_turn){.query_type = "chitchat",
                           .first_token_ms = 999,
                           .answer = honest,
                           .answer_len = strlen(honest),
                           .tools_empty = 1};
    g.n = 0;
    flags_compute(&c, &t, NULL, add, &g);
    CHECK(g.n == 0);
    t.first_token_ms = 1001;
    flags_compute(&c, &t, NULL, add, &g);
    CHECK(g.n == 1 && has(&g, "slow_first_token"));

    /* cost: no verdict before 20 turns of the type, then > 5x the median */
    struct cost_windows *w = xcalloc(1, sizeof(*w));
    for (int i = 0; i < FLAG_COST_MIN_SAMPLES - 1; i++) {
        g.n = 0;
        t = (struct flag_turn){
            .query_type = "policy", .first_token_ms = -1, .cost_micros = i == 5 ? 100000 : 1000};
        flags_compute(&c, &t, w, add, &g);
        CHECK(g.n == 0);
    }
    g.n = 0;
    t.cost_micros = 1000;
    flags_compute(&c, &t, w, add, &g);
    CHECK(g.n == 0 && cost_windows_median(w, "policy") == 1000);
    t.cost_micros = 5001;
    flags_compute(&c, &t, w, add, &g);
    CHECK(g.n == 1 && has(&g, "cost_outlier"));
    g.n = 0;
    t.cost_micros = 5000; /* exactly 5x is not above */
    flags_compute(&c, &t, w, add, &g);
    CHECK(g.n == 0);
    t.query_type = "chitchat"; /* another type has its own window */
    t.cost_micros = 1000000;
    flags_compute(&c, &t, w, add, &g);
    CHECK(g.n == 0);
    xfree(w);
    char kind[32];
    flags_kind("escalated:tool_failed", kind);
    CHECK(!strcmp(kind, "escalated"));
    flags_kind("routing_loop", kind);
    CHECK(!strcmp(kind, "routing_loop"));
}

int main(void)
{
    test_traceparent();
    test_redact();
    test_spans();
    test_status_message_cut();
    test_flags();
    return tap_done();
}
