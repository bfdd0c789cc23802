/* test_llm.c - stream/llm*.c: the three provider adapters on the documented example streams
 * (fixtures/openai_*, anthropic_*, gemini_*) and on our own edge cases (fixtures/llm_*): usage on
 * a chunk with choices or with null choices, prompt caching, thinking, parallel tool calls,
 * escapes and multi-byte text, in-band errors, blocked prompts, truncated bodies.
 *
 * Every fixture is fed whole, cut in two at every position, and one byte at a time, each chunk
 * ending right before a PROT_NONE page, and must give the same normalized event log. The log's
 * content is then checked against what the provider's numbers mean (docs/providers.md): exact
 * text, tool ids/names/arguments, usage normalized per provider, finish reason, errors.
 * Requests, headers and error bodies are in test_llm_request.c. */
#include "base/buf.h"
#include "stream/json.h"
#include "stream/llm.h"
#include "tests/fuzz/guard.h"
#include "tests/tap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FIXTURE_DIR
#error "FIXTURE_DIR must name tests/stream/fixtures"
#endif

#define MAX_TOOLS 4

/* ---- recording events -------------------------------------------------------------------- */

struct tool_rec {
    char id[64], name[64];
    struct buf frags; /* TOOL_ARGS concatenated */
    struct buf end;   /* TOOL_END text */
    int starts, ends;
};

struct rec {
    struct buf log; /* one escaped line per event: the split-independence check compares it */
    int n;
    struct buf text, reasoning;
    struct tool_rec tools[MAX_TOOLS];
    int n_tools;
    struct llm_usage usage;
    int n_usage;
    char finish[32];
    int n_finish;
    char err_type[64];
    char err_msg[256];
    int err_status;
    bool err_retry;
    int n_err;
    int violations; /* events breaking the ordering rules of llm.h */
    int stop_at;    /* return 7 at this event (0: never) */
    int feed_rc, finish_rc;
};

static void esc(struct buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || c == '|')
            buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            buf_printf(b, "\\x%02x", c);
        else
            buf_append(b, &s[i], 1);
    }
}

static void copy_str(char *dst, size_t cap, const char *s, size_t n)
{
    snprintf(dst, cap, "%.*s", (int)n, s ? s : "");
}

static void on_tool(struct rec *r, const struct llm_event *ev)
{
    if (ev->tool_index < 0 || ev->tool_index >= MAX_TOOLS) {
        r->violations++;
        return;
    }
    struct tool_rec *t = &r->tools[ev->tool_index];
    if (ev->type == LLM_EV_TOOL_START) {
        if (ev->tool_index != r->n_tools) /* ordinals in order of TOOL_START */
            r->violations++;
        r->n_tools = ev->tool_index + 1;
        t->starts++;
        copy_str(t->id, sizeof(t->id), ev->tool_id, strlen(ev->tool_id));
        copy_str(t->name, sizeof(t->name), ev->tool_name, strlen(ev->tool_name));
        return;
    }
    if (!t->starts || t->ends || strcmp(t->id, ev->tool_id) || strcmp(t->name, ev->tool_name))
        r->violations++;
    if (ev->type == LLM_EV_TOOL_ARGS) {
        buf_append(&t->frags, ev->text, ev->len);
    } else {
        t->ends++;
        buf_append(&t->end, ev->text, ev->len);
    }
}

static int on_event(void *ctx, const struct llm_event *ev)
{
    struct rec *r = ctx;
    if (r->n_err || (r->n_finish && ev->type != LLM_EV_USAGE && ev->type != LLM_EV_ERROR))
        r->violations++; /* nothing after ERROR; only USAGE or ERROR after FINISH */
    r->n++;
    buf_printf(&r->log, "%d|%d|", ev->type, ev->tool_index);
    switch (ev->type) {
    case LLM_EV_TEXT:
    case LLM_EV_REASONING:
        buf_append(ev->type == LLM_EV_TEXT ? &r->text : &r->reasoning, ev->text, ev->len);
        esc(&r->log, ev->text, ev->len);
        break;
    case LLM_EV_TOOL_START:
    case LLM_EV_TOOL_ARGS:
    case LLM_EV_TOOL_END:
        on_tool(r, ev);
        buf_printf(&r->log, "%s|%s|", ev->tool_id, ev->tool_name);
        esc(&r->log, ev->text, ev->len);
        break;
    case LLM_EV_USAGE:
        r->usage = ev->usage;
        r->n_usage++;
        buf_printf(&r->log, "%llu %llu %llu %llu %llu", (unsigned long long)ev->usage.input_tokens,
                   (unsigned long long)ev->usage.cached_input_tokens,
                   (unsigned long long)ev->usage.cache_write_tokens,
                   (unsigned long long)ev->usage.output_tokens,
                   (unsigned long long)ev->usage.reasoning_tokens);
        break;
    case LLM_EV_FINISH:
        r->n_finish++;
        copy_str(r->finish, sizeof(r->finish), ev->finish, strlen(ev->finish));
        buf_append_str(&r->log, ev->finish);
        break;
    case LLM_EV_ERROR:
        r->n_err++;
        copy_str(r->err_type, sizeof(r->err_type), ev->error_type, strlen(ev->error_type));
        copy_str(r->err_msg, sizeof(r->err_msg), ev->text, ev->len);
        r->err_status = ev->http_status;
        r->err_retry = ev->retryable;
        buf_printf(&r->log, "%s|%d|%d|", ev->error_type, ev->http_status, ev->retryable);
        esc(&r->log, ev->text, ev->len);
        break;
    }
    buf_append_str(&r->log, "\n");
    return r->stop_at && r->n == r->stop_at ? 7 : 0;
}

static void rec_free(struct rec *r)
{
    buf_free(&r->log);
    buf_free(&r->text);
    buf_free(&r->reasoning);
    for (int i = 0; i < MAX_TOOLS; i++) {
        buf_free(&r->tools[i].frags);
        buf_free(&r->tools[i].end);
    }
}

/* The content of b ("" when nothing was ever appended: buf_begin would be NULL + 0). */
static const char *bstr(const struct buf *b)
{
    return b->data ? buf_begin(b) : "";
}

static bool buf_is(const struct buf *b, const char *s)
{
    return buf_size(b) == strlen(s) && !memcmp(bstr(b), s, buf_size(b));
}

/* Feed in[0..n) cut at cuts[0..ncuts) (ascending); stop at the first non-zero return; then
 * llm_stream_finish. */
static void run(struct rec *r, enum llm_provider p, const char *in, size_t n, const size_t *cuts,
                size_t ncuts, int stop_at)
{
    memset(r, 0, sizeof(*r));
    r->stop_at = stop_at;
    struct llm_stream *s = llm_stream_create(p, on_event, r);
    size_t at = 0;
    for (size_t i = 0; i <= ncuts && !r->feed_rc; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        r->feed_rc = llm_stream_feed(s, (const char *)guard_copy(in + at, to - at), to - at);
        at = to;
    }
    r->finish_rc = llm_stream_finish(s);
    llm_stream_destroy(s);
}

static bool rec_same(const struct rec *a, const struct rec *b)
{
    return a->feed_rc == b->feed_rc && a->finish_rc == b->finish_rc && a->n == b->n &&
           buf_size(&a->log) == buf_size(&b->log) &&
           !memcmp(bstr(&a->log), bstr(&b->log), buf_size(&a->log));
}

static char *read_fixture(const char *name, size_t *n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", FIXTURE_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    struct buf b = {0};
    char tmp[4096];
    size_t k;
    while ((k = fread(tmp, 1, sizeof(tmp), f)) > 0)
        buf_append(&b, tmp, k);
    fclose(f);
    *n = buf_size(&b);
    buf_append(&b, "", 1);
    return b.data; /* freed with buf's allocator below */
}

static void free_fixture(char *data)
{
    struct buf b = {.data = data};
    buf_free(&b);
}

/* ---- the fixtures and what they mean ------------------------------------------------------ */

struct tool_want {
    const char *id, *name, *args;
};

struct want {
    const char *file;
    enum llm_provider p;
    const char *text, *reasoning;
    int n_tools;
    struct tool_want tools[3];
    struct llm_usage usage;
    int n_usage;
    const char *finish; /* NULL: no FINISH */
    const char *error;  /* NULL: no ERROR */
    bool retryable;
    int status;
};

#define U(in, cached, write, out, reas)                                                            \
    {                                                                                              \
        in, cached, write, out, reas                                                               \
    }

static const struct want fixtures[] = {
    /* the providers' documented examples */
    {"openai_text.sse",
     LLM_OPENAI,
     "Hello! How can I assist you today?",
     "",
     0,
     {{0}},
     U(19, 0, 0, 10, 0),
     1,
     "stop",
     NULL,
     false,
     0},
    {"openai_tools.sse",
     LLM_OPENAI,
     "",
     "",
     1,
     {{"call_PieqNSej6kM9hgYbcQdbZSaC", "get_weather", "{\"location\": \"Tokyo\"}"}},
     U(67, 0, 0, 31, 0),
     1,
     "tool_calls",
     NULL,
     false,
     0},
    {"anthropic_text.sse",
     LLM_ANTHROPIC,
     "Hello!",
     "",
     0,
     {{0}},
     U(25, 0, 0, 15, 0),
     2,
     "stop",
     NULL,
     false,
     0},
    {"anthropic_text_crlf.sse",
     LLM_ANTHROPIC,
     "Hello!",
     "",
     0,
     {{0}},
     U(25, 0, 0, 15, 0),
     2,
     "stop",
     NULL,
     false,
     0},
    {"anthropic_tools.sse",
     LLM_ANTHROPIC,
     "Okay, let's check the weather for San Francisco, CA:",
     "",
     1,
     {{"toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather",
       "{\"location\": \"San Francisco, CA\", \"unit\": \"fahrenheit\"}"}},
     U(472, 0, 0, 89, 0),
     2,
     "tool_calls",
     NULL,
     false,
     0},
    {"anthropic_error.sse",
     LLM_ANTHROPIC,
     "Hello",
     "",
     0,
     {{0}},
     U(25, 0, 0, 1, 0),
     1,
     NULL,
     "overloaded_error",
     true,
     529},
    {"gemini_text.sse",
     LLM_GEMINI,
     "Once upon a time, in a sunny little cottage, lived a fluffy ginger kitten named "
     "Marmalade.\n\nMarmalade loved chasing sunbeams and napping in the laundry basket. The end.",
     "",
     0,
     {{0}},
     U(8, 0, 0, 38 + 611, 611),
     3,
     "stop",
     NULL,
     false,
     0},
    {"gemini_function_call.sse",
     LLM_GEMINI,
     "",
     "",
     2,
     {{"call_0", "get_weather", "{\"location\": \"Boston, MA\"}"},
      {"call_1", "get_weather", "{\"location\": \"San Francisco, CA\"}"}},
     U(72, 0, 0, 30 + 66, 66),
     1,
     "tool_calls",
     NULL,
     false,
     0},
    /* our own */
    {"llm_openai_usage_with_choices.sse",
     LLM_OPENAI,
     "H\xc3\xa9llo, \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80 \xf0\x9f\x98\x80 \"q\" a\\b\n"
     "line\ttab \xc3\xa9 Bye.",
     "",
     0,
     {{0}},
     U(2006, 1920, 0, 300, 192),
     1,
     "stop",
     NULL,
     false,
     0},
    {"llm_openai_usage_null_choices.sse",
     LLM_OPENAI,
     "Ciao \xf0\x9f\x91\x8b",
     "",
     0,
     {{0}},
     U(12, 0, 0, 4, 0),
     1,
     "length",
     NULL,
     false,
     0},
    {"llm_openai_parallel_tools.sse",
     LLM_OPENAI,
     "",
     "",
     2,
     {{"call_A1", "get_weather", "{\"city\": \"Z\xc3\xbcrich\"}"},
      {"call_B2", "get_time", "{\"tz\": \"Europe/Z\\u00fcrich\"}"}},
     U(81, 64, 0, 40, 0),
     1,
     "tool_calls",
     NULL,
     false,
     0},
    {"llm_openai_error.sse",
     LLM_OPENAI,
     "Partial",
     "",
     0,
     {{0}},
     U(0, 0, 0, 0, 0),
     0,
     NULL,
     "server_error",
     true,
     0},
    {"llm_anthropic_cache.sse",
     LLM_ANTHROPIC,
     "Caf\xc3\xa9 \xe2\x98\x95 \"ok\"\n",
     "",
     0,
     {{0}},
     U(50 + 1000 + 2000, 2000, 1000, 42, 0),
     2,
     "length",
     NULL,
     false,
     0},
    {"llm_anthropic_thinking.sse",
     LLM_ANTHROPIC,
     "The GCD is 21.",
     "I need to find the GCD of 1071 and 462 using the Euclidean algorithm.\n\n"
     "1071 = 2 \xc3\x97 462 + 147\n462 = 3 \xc3\x97 147 + 21",
     0,
     {{0}},
     U(36, 0, 0, 98, 0),
     2,
     "stop",
     NULL,
     false,
     0},
    {"llm_anthropic_tool_noargs.sse",
     LLM_ANTHROPIC,
     "",
     "",
     1,
     {{"toolu_01Now", "get_time", "{}"}},
     U(420, 120, 0, 12, 0),
     2,
     "tool_calls",
     NULL,
     false,
     0},
    {"llm_anthropic_bad_tool_json.sse",
     LLM_ANTHROPIC,
     "",
     "",
     1,
     {{"toolu_01Bad", "lookup", NULL}},
     U(10, 0, 0, 1, 0),
     1,
     NULL,
     "bad_stream",
     false,
     0},
    {"llm_gemini_cached_thoughts.sse",
     LLM_GEMINI,
     "Strawberry has three r's: s-t-r-a-w-b-e-r-r-y \xe2\x9c\x85 \"done\"",
     "**Counting** the letters first.",
     0,
     {{0}},
     U(4120, 4096, 0, 21 + 200, 200),
     4,
     "stop",
     NULL,
     false,
     0},
    {"llm_gemini_no_finish.sse",
     LLM_GEMINI,
     "Hi there",
     "",
     0,
     {{0}},
     U(3, 0, 0, 2, 0),
     2,
     "stop",
     NULL,
     false,
     0},
    {"llm_gemini_blocked.sse",
     LLM_GEMINI,
     "",
     "",
     0,
     {{0}},
     U(0, 0, 0, 0, 0),
     0,
     NULL,
     "content_filter",
     false,
     0},
    {"llm_gemini_text_and_call.sse",
     LLM_GEMINI,
     "Let me check.",
     "",
     1,
     {{"call_0", "get_weather", "{\"city\": \"K\xc3\xb6ln\",\"days\": 2}"}},
     U(50, 0, 0, 15, 0),
     1,
     "tool_calls",
     NULL,
     false,
     0},
};

static void check_usage(const char *f, const struct llm_usage *got, const struct llm_usage *want)
{
    CHECKF(got->input_tokens == want->input_tokens &&
               got->cached_input_tokens == want->cached_input_tokens &&
               got->cache_write_tokens == want->cache_write_tokens &&
               got->output_tokens == want->output_tokens &&
               got->reasoning_tokens == want->reasoning_tokens,
           "%s: usage %llu/%llu/%llu/%llu/%llu", f, (unsigned long long)got->input_tokens,
           (unsigned long long)got->cached_input_tokens,
           (unsigned long long)got->cache_write_tokens, (unsigned long long)got->output_tokens,
           (unsigned long long)got->reasoning_tokens);
}

static void check_tools(const struct want *w, const struct rec *r)
{
    CHECKF(r->n_tools == w->n_tools, "%s: %d tools", w->file, r->n_tools);
    for (int i = 0; i < w->n_tools && i < r->n_tools; i++) {
        const struct tool_rec *t = &r->tools[i];
        const struct tool_want *tw = &w->tools[i];
        CHECKF(!strcmp(t->id, tw->id) && !strcmp(t->name, tw->name) && t->starts == 1,
               "%s: tool %d %s %s", w->file, i, t->id, t->name);
        if (!tw->args) { /* the stream broke before the end */
            CHECKF(t->ends == 0, "%s: tool %d ended", w->file, i);
            continue;
        }
        CHECKF(t->ends == 1 && buf_is(&t->end, tw->args), "%s: tool %d args '%.*s'", w->file, i,
               (int)buf_size(&t->end), bstr(&t->end));
        /* the pieces add up to the whole (no pieces at all: "{}") */
        CHECK(buf_size(&t->frags) ? buf_is(&t->frags, tw->args) : !strcmp(tw->args, "{}"));
    }
}

/* What the whole feed says, checked against the fixture's meaning. */
static void check_meaning(const struct want *w, const struct rec *r)
{
    const char *f = w->file;
    CHECKF(r->violations == 0, "%s: %d ordering violations", f, r->violations);
    CHECKF(buf_is(&r->text, w->text), "%s: text '%.*s'", f, (int)buf_size(&r->text),
           bstr(&r->text));
    CHECKF(buf_is(&r->reasoning, w->reasoning), "%s: reasoning '%.*s'", f,
           (int)buf_size(&r->reasoning), bstr(&r->reasoning));
    check_tools(w, r);
    CHECKF(r->n_usage == w->n_usage, "%s: %d usage events", f, r->n_usage);
    check_usage(f, &r->usage, &w->usage);
    if (w->finish)
        CHECKF(r->n_finish == 1 && !strcmp(r->finish, w->finish), "%s: finish %d %s", f,
               r->n_finish, r->finish);
    else
        CHECKF(r->n_finish == 0, "%s: finish %s", f, r->finish);
    if (w->error) {
        CHECKF(r->n_err == 1 && !strcmp(r->err_type, w->error) && r->err_retry == w->retryable &&
                   r->err_status == w->status && r->err_msg[0],
               "%s: error %d %s %d %d '%s'", f, r->n_err, r->err_type, r->err_retry, r->err_status,
               r->err_msg);
        CHECKF(r->finish_rc == -EPROTO, "%s: finish rc %d", f, r->finish_rc);
    } else {
        CHECKF(r->n_err == 0 && r->feed_rc == 0 && r->finish_rc == 0, "%s: error %s '%s', rc %d/%d",
               f, r->err_type, r->err_msg, r->feed_rc, r->finish_rc);
    }
}

static void test_fixture(const struct want *w)
{
    size_t n;
    char *in = read_fixture(w->file, &n);
    struct rec whole, r;
    run(&whole, w->p, in, n, NULL, 0, 0);
    check_meaning(w, &whole);

    int split_bad = 0;
    for (size_t k = 0; k <= n; k++) {
        run(&r, w->p, in, n, &k, 1, 0);
        if (!rec_same(&whole, &r) && split_bad++ < 3)
            fprintf(stderr, "%s: split at %zu differs\n", w->file, k);
        rec_free(&r);
    }
    CHECKF(split_bad == 0, "%s: %d split points differ", w->file, split_bad);

    size_t *cuts = malloc(n * sizeof(*cuts));
    for (size_t i = 0; i < n; i++)
        cuts[i] = i + 1;
    run(&r, w->p, in, n, cuts, n ? n - 1 : 0, 0);
    CHECKF(rec_same(&whole, &r), "%s: byte at a time differs", w->file);
    rec_free(&r);
    free(cuts);
    rec_free(&whole);
    free_fixture(in);
}

/* Every prefix of a complete OpenAI/Anthropic stream either is complete (its terminator
 * arrived) or ends in exactly one ERROR incomplete_stream after a prefix of the full log. */
static void test_truncated(const struct want *w)
{
    size_t n;
    char *in = read_fixture(w->file, &n);
    struct rec whole, r;
    run(&whole, w->p, in, n, NULL, 0, 0);
    int bad = 0, complete = 0;
    for (size_t k = 0; k < n; k++) {
        run(&r, w->p, in, k, NULL, 0, 0);
        if (r.finish_rc == 0) {
            complete++;
            bad += !rec_same(&whole, &r);
        } else {
            /* the log without its last line is a prefix of the whole log */
            const char *log = bstr(&r.log);
            size_t len = buf_size(&r.log);
            size_t last = len - 1;
            while (last && log[last - 1] != '\n')
                last--;
            bool prefix = last <= buf_size(&whole.log) && !memcmp(log, bstr(&whole.log), last);
            bool ok = r.finish_rc == -EPROTO && r.feed_rc == 0 && r.n_err == 1 &&
                      !strcmp(r.err_type, "incomplete_stream") && r.err_retry && prefix &&
                      r.violations == 0;
            if (!ok && bad++ < 3)
                fprintf(stderr, "%s: prefix %zu: rc %d err %s\n", w->file, k, r.finish_rc,
                        r.err_type);
        }
        rec_free(&r);
    }
    CHECKF(bad == 0, "%s: %d bad prefixes", w->file, bad);
    CHECKF(complete <= 2, "%s: %d prefixes complete", w->file, complete);
    rec_free(&whole);
    free_fixture(in);
}

static void test_fixtures(void)
{
    for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
        test_fixture(&fixtures[i]);
        if (!fixtures[i].error && fixtures[i].p != LLM_GEMINI)
            test_truncated(&fixtures[i]);
    }
}

/* ---- inline streams ----------------------------------------------------------------------- */

static void feed_str(struct rec *r, enum llm_provider p, const char *s)
{
    run(r, p, s, strlen(s), NULL, 0, 0);
}

static void test_gemini_truncated(void)
{
    struct rec r;
    feed_str(&r, LLM_GEMINI, "");
    CHECK(r.finish_rc == -EPROTO && r.n_err == 1 && !strcmp(r.err_type, "incomplete_stream") &&
          r.err_retry);
    rec_free(&r);
    /* an unterminated last event is not an event */
    feed_str(&r, LLM_GEMINI,
             "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"x\"}]}}]}");
    CHECK(r.finish_rc == -EPROTO && !strcmp(r.err_type, "incomplete_stream") && r.n == 1);
    rec_free(&r);
    /* usage alone is no answer */
    feed_str(&r, LLM_GEMINI, "data: {\"usageMetadata\": {\"promptTokenCount\": 3}}\n\n");
    CHECK(r.finish_rc == -EPROTO && r.n_usage == 1 && !strcmp(r.err_type, "incomplete_stream"));
    rec_free(&r);
}

static void test_bad_streams(void)
{
    static const struct {
        enum llm_provider p;
        const char *in;
    } cases[] = {
        {LLM_OPENAI, "data: {not json}\n\n"},
        {LLM_OPENAI, "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":500,"
                     "\"function\":{\"name\":\"f\"}}]}}]}\n\n"},
        {LLM_OPENAI, "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":\"0\"}]}}]}\n\n"},
        {LLM_ANTHROPIC, "data: {\"no\":\"type\"}\n\n"},
        {LLM_ANTHROPIC, "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                        "\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n"},
        {LLM_ANTHROPIC, "data: {\"type\":\"content_block_start\",\"content_block\":{\"type\":"
                        "\"text\",\"text\":\"\"}}\n\n"},
        {LLM_GEMINI, "data: [1,2\n\n"},
        {LLM_GEMINI, "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":"
                     "{\"args\":{}}}]}}]}\n\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rec r;
        feed_str(&r, cases[i].p, cases[i].in);
        CHECKF(r.feed_rc == -EPROTO && r.finish_rc == -EPROTO && r.n_err == 1 &&
                   !strcmp(r.err_type, "bad_stream") && !r.err_retry,
               "bad stream %zu: rc %d/%d %s", i, r.feed_rc, r.finish_rc, r.err_type);
        rec_free(&r);
    }

    /* an event over the SSE limit (1 MiB) */
    struct buf big = {0};
    buf_append_str(&big, "data: \"");
    for (int i = 0; i < (1 << 20) / 64 + 2; i++)
        buf_append_str(&big, "0123456789012345678901234567890123456789012345678901234567890123");
    buf_append_str(&big, "\"\n\n");
    struct rec r;
    run(&r, LLM_OPENAI, bstr(&big), buf_size(&big), NULL, 0, 0);
    CHECK(r.feed_rc == -EPROTO && r.n_err == 1 && !strcmp(r.err_type, "bad_stream"));
    rec_free(&r);
    buf_free(&big);
}

static void test_openai_edges(void)
{
    struct rec r;
    /* nothing after [DONE] counts; a second [DONE] neither */
    feed_str(&r, LLM_OPENAI,
             "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]\n\n"
             "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\ndata: [DONE]\n\n");
    CHECK(buf_is(&r.text, "a") && r.n_finish == 1 && !strcmp(r.finish, "stop") &&
          r.finish_rc == 0 && r.violations == 0);
    rec_free(&r);

    /* no index (position), no id (generated), id/name repeated on later fragments (ignored),
     * usage:null, a server that says "stop" after calling a tool, reasoning_content */
    feed_str(&r, LLM_OPENAI,
             "data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"hmm\"}}],\"usage\":null}\n\n"
             "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"name\":\"f\","
             "\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n"
             "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"x\","
             "\"function\":{\"name\":\"g\",\"arguments\":\":1}\"}}]},\"finish_reason\":"
             "\"stop\"}]}\n\n"
             "data: [DONE]\n\n");
    CHECK(buf_is(&r.reasoning, "hmm") && r.n_tools == 1 && !strcmp(r.tools[0].id, "call_0") &&
          !strcmp(r.tools[0].name, "f") && buf_is(&r.tools[0].end, "{\"a\":1}") &&
          !strcmp(r.finish, "tool_calls") && r.n_usage == 0 && r.finish_rc == 0 &&
          r.violations == 0);
    rec_free(&r);

    /* a refusal is the answer; Ollama's "reasoning" */
    feed_str(&r, LLM_OPENAI,
             "data: {\"choices\":[{\"delta\":{\"reasoning\":\"r1\"}}]}\n\n"
             "data: {\"choices\":[{\"delta\":{\"content\":null,\"refusal\":\"I can\\u2019t\"},"
             "\"finish_reason\":\"content_filter\"}]}\n\ndata: [DONE]\n\n");
    CHECK(buf_is(&r.reasoning, "r1") && buf_is(&r.text, "I can\xe2\x80\x99t") &&
          !strcmp(r.finish, "content_filter"));
    rec_free(&r);

    /* [DONE] with a tool still open and no finish_reason: END, then FINISH tool_calls */
    feed_str(&r, LLM_OPENAI,
             "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\","
             "\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\ndata: [DONE]\n\n");
    CHECK(r.n_tools == 1 && buf_is(&r.tools[0].end, "{}") && !strcmp(r.finish, "tool_calls"));
    rec_free(&r);

    /* the error object of a compatible server with an HTTP-like code */
    feed_str(&r, LLM_OPENAI,
             "data: {\"error\":{\"object\":\"error\",\"message\":\"bad\",\"type\":"
             "\"BadRequestError\",\"param\":null,\"code\":400}}\n\n");
    CHECK(r.n_err == 1 && !strcmp(r.err_type, "BadRequestError") && r.err_status == 400 &&
          !r.err_retry && !strcmp(r.err_msg, "bad"));
    rec_free(&r);
}

static void test_anthropic_edges(void)
{
    struct rec r;
    /* two message_delta events: output is cumulative (replaced, never added); message_stop
     * without stop_reason still finishes once; unknown block types ignored with their deltas */
    feed_str(&r, LLM_ANTHROPIC,
             "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":"
             "{\"input_tokens\":7,\"output_tokens\":1}}}\n\n"
             "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
             "\"server_tool_use\",\"id\":\"srvtoolu_1\",\"name\":\"web_search\",\"input\":{}}}\n\n"
             "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
             "\"input_json_delta\",\"partial_json\":\"{\\\"q\\\":1}\"}}\n\n"
             "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
             "data: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":10}}\n\n"
             "data: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":25}}\n\n"
             "data: {\"type\":\"message_stop\"}\n\n");
    CHECK(r.n_tools == 0 && r.n_usage == 3 && r.usage.output_tokens == 25 &&
          r.usage.input_tokens == 7 && r.n_finish == 1 && !strcmp(r.finish, "stop") &&
          r.finish_rc == 0 && r.violations == 0);
    rec_free(&r);

    /* rate_limit_error and api_error are retryable, invalid_request_error is not */
    feed_str(&r, LLM_ANTHROPIC,
             "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\","
             "\"message\":\"Internal server error\"}}\n\n");
    CHECK(r.n_err == 1 && r.err_retry && r.err_status == 500 && r.feed_rc == -EPROTO);
    rec_free(&r);
    feed_str(&r, LLM_ANTHROPIC,
             "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
             "\"invalid_request_error\",\"message\":\"no\"}}\n\n");
    CHECK(r.n_err == 1 && !r.err_retry && r.err_status == 0);
    rec_free(&r);
    /* refusal */
    feed_str(&r, LLM_ANTHROPIC,
             "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"refusal\"}}\n\n"
             "data: {\"type\":\"message_stop\"}\n\n");
    CHECK(!strcmp(r.finish, "content_filter") && r.n_usage == 0);
    rec_free(&r);
}

static void test_gemini_edges(void)
{
    struct rec r;
    static const struct {
        const char *reason, *want;
    } reasons[] = {{"MAX_TOKENS", "length"},
                   {"SAFETY", "content_filter"},
                   {"RECITATION", "content_filter"},
                   {"SPII", "content_filter"},
                   {"BLOCKLIST", "content_filter"},
                   {"PROHIBITED_CONTENT", "content_filter"},
                   {"OTHER", "stop"}};
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        char in[256];
        snprintf(in, sizeof(in),
                 "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"t\"}]},"
                 "\"finishReason\":\"%s\"}]}\n\n",
                 reasons[i].reason);
        feed_str(&r, LLM_GEMINI, in);
        CHECKF(r.n_finish == 1 && !strcmp(r.finish, reasons[i].want) && r.finish_rc == 0,
               "%s -> %s", reasons[i].reason, r.finish);
        rec_free(&r);
    }
    /* an error object in the stream; a malformed function call */
    feed_str(&r, LLM_GEMINI,
             "data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\","
             "\"status\":\"UNAVAILABLE\"}}\n\n");
    CHECK(r.n_err == 1 && !strcmp(r.err_type, "UNAVAILABLE") && r.err_retry && r.err_status == 503);
    rec_free(&r);
    feed_str(&r, LLM_GEMINI,
             "data: {\"candidates\":[{\"finishReason\":\"MALFORMED_FUNCTION_CALL\"}]}\n\n");
    CHECK(r.n_err == 1 && !strcmp(r.err_type, "malformed_function_call"));
    rec_free(&r);
    /* toolUsePromptTokenCount is input too; a functionCall id is kept; args absent: "{}" */
    feed_str(&r, LLM_GEMINI,
             "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"id\":\"fc9\","
             "\"name\":\"now\"}}]}}],\"usageMetadata\":{\"promptTokenCount\":10,"
             "\"toolUsePromptTokenCount\":5,\"candidatesTokenCount\":2}}\n\n");
    CHECK(r.n_tools == 1 && !strcmp(r.tools[0].id, "fc9") && buf_is(&r.tools[0].end, "{}") &&
          r.usage.input_tokens == 15 && r.usage.output_tokens == 2 &&
          !strcmp(r.finish, "tool_calls") && r.finish_rc == 0);
    rec_free(&r);
}

/* A callback's non-zero value stops the stream, and stays. */
static void test_callback_stop(void)
{
    size_t n;
    char *in = read_fixture("openai_text.sse", &n);
    for (int at = 1; at <= 4; at++) {
        struct rec r;
        memset(&r, 0, sizeof(r));
        r.stop_at = at;
        struct llm_stream *s = llm_stream_create(LLM_OPENAI, on_event, &r);
        CHECK(!llm_stream_started(s) && !llm_stream_done(s));
        int rc = llm_stream_feed(s, in, n);
        CHECKF(rc == 7 && r.n == at, "stop at %d: rc %d, %d events", at, rc, r.n);
        CHECK(llm_stream_started(s)); /* the first event is the text "Hello" */
        CHECK(llm_stream_feed(s, in, n) == 7 && llm_stream_finish(s) == 7 && r.n == at);
        llm_stream_destroy(s);
        rec_free(&r);
    }
    struct rec r;
    memset(&r, 0, sizeof(r));
    struct llm_stream *s = llm_stream_create(LLM_OPENAI, on_event, &r);
    CHECK(llm_stream_feed(s, in, n) == 0 && llm_stream_done(s) && llm_stream_started(s));
    CHECK(llm_stream_finish(s) == 0);
    llm_stream_destroy(s);
    rec_free(&r);
    free_fixture(in);

    CHECK(llm_stream_create((enum llm_provider)7, on_event, NULL) == NULL);
    CHECK(llm_stream_create(LLM_OPENAI, NULL, NULL) == NULL);
    llm_stream_destroy(NULL);
}

int main(void)
{
    test_fixtures();
    test_gemini_truncated();
    test_bad_streams();
    test_openai_edges();
    test_anthropic_edges();
    test_gemini_edges();
    test_callback_stop();
    return tap_done();
}
