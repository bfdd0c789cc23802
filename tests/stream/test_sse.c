/* test_sse.c - stream/sse.c: the WHATWG examples and every parsing rule as a named case with
 * its expected event log, then the provider streams in fixtures/ (OpenAI, Anthropic, Gemini, as
 * documented). Every input is also fed cut at every position, at every pair of positions (when
 * short), one byte at a time and in random chunks, and must give exactly the log of the whole
 * feed. Chunks are copied to end right before a PROT_NONE page, so a read past a chunk faults. */
#include "base/buf.h"
#include "stream/sse.h"
#include "tests/fuzz/guard.h"
#include "tests/tap.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FIXTURE_DIR
#error "FIXTURE_DIR must name tests/stream/fixtures"
#endif

/* ---- event log --------------------------------------------------------------------------- */

struct log {
    struct buf b; /* one "type|data|id\n" line per event, escaped */
    int n;
    int stop_after; /* the callback returns 99 at this event (0: never) */
    int bad;        /* events that broke the NUL / padding contract */
    int crlf;       /* events whose data holds a CR or LF */
    const struct sse_parser *p;
};

static void esc(struct buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            buf_append_str(b, "\\n");
        else if (c == '\\' || c == '|')
            buf_printf(b, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            buf_printf(b, "\\x%02x", c);
        else
            buf_append(b, &s[i], 1);
    }
}

static int on_event(void *ctx, const struct sse_event *ev)
{
    struct log *l = ctx;
    const struct buf *d = &l->p->data;

    /* data[data_len] is NUL and SSE_PADDING more bytes lie inside the data buffer's memory
     * (ASan cannot see inside mimalloc blocks, so the bound is checked against the buffer). */
    if (ev->data[ev->data_len] != '\0' || ev->type[ev->type_len] != '\0' ||
        ev->id[ev->id_len] != '\0' || ev->data < d->data ||
        ev->data + ev->data_len + 1 + SSE_PADDING > d->data + d->cap)
        l->bad++;
    for (size_t i = 0; i <= SSE_PADDING; i++)
        if (ev->data[ev->data_len + i])
            l->bad++;
    if (memchr(ev->data, '\r', ev->data_len) || memchr(ev->data, '\n', ev->data_len))
        l->crlf++;

    esc(&l->b, ev->type, ev->type_len);
    buf_append_str(&l->b, "|");
    esc(&l->b, ev->data, ev->data_len);
    buf_append_str(&l->b, "|");
    esc(&l->b, ev->id, ev->id_len);
    buf_append_str(&l->b, "\n");
    l->n++;
    return l->stop_after && l->n == l->stop_after ? 99 : 0;
}

struct result {
    struct log log;
    int rc;
    long retry;
};

static void result_free(struct result *r)
{
    buf_free(&r->log.b);
}

static bool result_eq(const struct result *a, const struct result *b)
{
    return a->rc == b->rc && a->retry == b->retry && a->log.n == b->log.n &&
           a->log.bad == b->log.bad && buf_size(&a->log.b) == buf_size(&b->log.b) &&
           (!buf_size(&a->log.b) ||
            !memcmp(buf_begin(&a->log.b), buf_begin(&b->log.b), buf_size(&a->log.b)));
}

/* Feed `in` cut at cuts[0..ncuts) (ascending, in [0, n]; equal cuts give empty chunks), stopping
 * at the first non-zero return. */
static void run(struct result *r, const char *in, size_t n, const size_t *cuts, size_t ncuts,
                size_t max_event, int stop_after)
{
    struct sse_parser p;
    memset(&p, 0, sizeof(p));
    p.max_event = max_event;
    sse_init(&p);
    memset(r, 0, sizeof(*r));
    r->log.stop_after = stop_after;
    r->log.p = &p;

    size_t at = 0;
    for (size_t i = 0; i <= ncuts && !r->rc; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        const char *chunk = (const char *)guard_copy(in + at, to - at);
        r->rc = sse_feed(&p, chunk, to - at, on_event, &r->log);
        at = to;
    }
    r->retry = p.retry_ms;
    r->log.p = NULL;
    sse_free(&p);
}

static void run_whole(struct result *r, const char *in, size_t n, size_t max_event, int stop_after)
{
    run(r, in, n, NULL, 0, max_event, stop_after);
}

/* ---- the split property ------------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static bool same_as(const struct result *want, const char *in, size_t n, const size_t *cuts,
                    size_t ncuts, size_t max_event, int stop_after)
{
    struct result r;
    run(&r, in, n, cuts, ncuts, max_event, stop_after);
    bool ok = result_eq(want, &r);
    result_free(&r);
    return ok;
}

/* Whole feed versus: every cut, one byte at a time, every pair of cuts (n <= pair_max) and
 * random chunkings. One CHECK per kind, naming the first failing cut. */
static void check_splits(const char *name, const char *in, size_t n, size_t max_event,
                         int stop_after, size_t pair_max)
{
    struct result want;
    run_whole(&want, in, n, max_event, stop_after);
    CHECKF(want.log.bad == 0, "%s: event contract broken", name);

    size_t bad_at = SIZE_MAX;
    for (size_t k = 0; k <= n && bad_at == SIZE_MAX; k++)
        if (!same_as(&want, in, n, &k, 1, max_event, stop_after))
            bad_at = k;
    CHECKF(bad_at == SIZE_MAX, "%s: two chunks cut at %zu differ from whole", name, bad_at);

    size_t *cuts = malloc((n + 1) * sizeof(*cuts));
    for (size_t k = 0; k < n; k++)
        cuts[k] = k + 1;
    CHECKF(same_as(&want, in, n, cuts, n ? n - 1 : 0, max_event, stop_after),
           "%s: one byte at a time differs from whole", name);

    if (n <= pair_max) {
        size_t bi = SIZE_MAX, bj = 0;
        for (size_t i = 0; i <= n && bi == SIZE_MAX; i++)
            for (size_t j = i; j <= n && bi == SIZE_MAX; j++) {
                size_t c[2] = {i, j};
                if (!same_as(&want, in, n, c, 2, max_event, stop_after))
                    bi = i, bj = j;
            }
        CHECKF(bi == SIZE_MAX, "%s: three chunks cut at %zu,%zu differ from whole", name, bi, bj);
    }

    int bad_rounds = 0;
    for (int round = 0; round < 64; round++) {
        size_t nc = 0, at = 0, maxc = 1 + rng() % 17;
        while (at < n) {
            at += rng() % (maxc + 1);
            if (at > n)
                at = n;
            cuts[nc++] = at;
            if (nc == n + 1)
                break;
        }
        if (!same_as(&want, in, n, cuts, nc, max_event, stop_after))
            bad_rounds++;
    }
    CHECKF(bad_rounds == 0, "%s: %d random chunkings differ from whole", name, bad_rounds);
    free(cuts);
    result_free(&want);
}

/* ---- named cases ------------------------------------------------------------------------- */

struct tcase {
    const char *name;
    const char *in;
    size_t len;       /* 0: strlen(in) */
    const char *want; /* the escaped event log */
    int rc;
    long retry;       /* 0: none (-1) */
    size_t max_event; /* 0: default */
    int stop_after;
};

#define IN(s) s, sizeof(s) - 1
/* The same for a case: designated, so that the fields after it may be left out. */
#define CASE_IN(s) .in = s, .len = sizeof(s) - 1

static const struct tcase cases[] = {
    /* WHATWG HTML, "Interpreting an event stream", examples */
    {"spec: three data lines", CASE_IN("data: YHOO\ndata: +2\ndata: 10\n\n"),
     "message|YHOO\\n+2\\n10|\n"},
    {"spec: four blocks",
     CASE_IN(": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third "
             "event\n\n"),
     "message|first event|1\nmessage|second event|\nmessage| third event|\n"},
    {"spec: empty data and a discarded tail", CASE_IN("data\n\ndata\ndata\n\ndata:"),
     "message||\nmessage|\\n|\n"},
    {"spec: one space removed", CASE_IN("data:test\n\ndata: test\n\n"),
     "message|test|\nmessage|test|\n"},
    {"spec: event types",
     CASE_IN(
         "event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n"),
     "add|73857293|\nremove|2153|\nadd|113411|\n"},
    /* line ends */
    {"LF", CASE_IN("data: a\n\ndata: b\n\n"), "message|a|\nmessage|b|\n"},
    {"CRLF", CASE_IN("data: a\r\n\r\ndata: b\r\n\r\n"), "message|a|\nmessage|b|\n"},
    {"CR", CASE_IN("data: a\r\rdata: b\r\r"), "message|a|\nmessage|b|\n"},
    {"mixed", CASE_IN("data: a\r\ndata: b\rdata: c\n\r\n"), "message|a\\nb\\nc|\n"},
    {"LF then CR is two line ends", CASE_IN("data: a\n\rdata: b\n\n"), "message|a|\nmessage|b|\n"},
    {"CR CR LF", CASE_IN("data: a\r\r\n\r\n"), "message|a|\n"},
    {"blank lines between events", CASE_IN("\n\r\n\r\ndata: a\n\n\n\n\r\r"), "message|a|\n"},
    {"stream ending in CR", CASE_IN("data: a\n\r"), "message|a|\n"},
    /* byte order mark */
    {"BOM",
     CASE_IN("\xEF\xBB\xBF"
             "data: a\n\n"),
     "message|a|\n"},
    {"BOM then comment", CASE_IN("\xEF\xBB\xBF:hi\ndata: a\n\n"), "message|a|\n"},
    {"BOM then blank line", CASE_IN("\xEF\xBB\xBF\n\ndata: a\n\n"), "message|a|\n"},
    {"BOM only", CASE_IN("\xEF\xBB\xBF"), ""},
    {"second BOM is content",
     CASE_IN("\xEF\xBB\xBF\xEF\xBB\xBF"
             "data: a\n\n"),
     ""},
    {"BOM after the start is content",
     CASE_IN("data: a\n\n\xEF\xBB\xBF"
             "data: b\n\n"),
     "message|a|\n"},
    {"BOM inside a value is data",
     CASE_IN("data: \xEF\xBB\xBF"
             "a\n\n"),
     "message|\\xef\\xbb\\xbfa|\n"},
    {"two BOM bytes are content",
     CASE_IN("\xEF\xBB"
             "data: a\n\n"),
     ""},
    {"one BOM byte is content",
     CASE_IN("\xEF"
             "data: a\n\n"),
     ""},
    {"partial BOM as a line", CASE_IN("\xEF\xBB\n\ndata: a\n\n"), "message|a|\n"},
    {"partial BOM then CR", CASE_IN("\xEF\r\ndata: a\r\n\r\n"), "message|a|\n"},
    /* fields */
    {"value without space", CASE_IN("data:x\n\n"), "message|x|\n"},
    {"two spaces keep one", CASE_IN("data:  x\n\n"), "message| x|\n"},
    {"tab is not stripped", CASE_IN("data:\tx\n\n"), "message|\\x09x|\n"},
    {"data: with no value", CASE_IN("data:\n\n"), "message||\n"},
    {"field without colon", CASE_IN("data\n\n"), "message||\n"},
    {"colons in the value", CASE_IN("data: a:b: c\n\n"), "message|a:b: c|\n"},
    {"multi-line data", CASE_IN("data: a\ndata:\ndata: b\n\n"), "message|a\\n\\nb|\n"},
    {"NUL in data", CASE_IN("data: a\0b\n\n"), "message|a\\x00b|\n"},
    {"no data: nothing, type reset", CASE_IN("event: foo\n\ndata: a\n\n"), "message|a|\n"},
    {"event with empty data", CASE_IN("event: foo\ndata\n\n"), "foo||\n"},
    {"empty event is message", CASE_IN("event\ndata: a\n\n"), "message|a|\n"},
    {"last event: wins", CASE_IN("event: a\nevent: b\ndata: x\n\n"), "b|x|\n"},
    {"type is per event", CASE_IN("event: a\ndata: x\n\ndata: y\n\n"), "a|x|\nmessage|y|\n"},
    {"only comments", CASE_IN(": one\n:two\n:\n\n"), ""},
    {"comment between data lines", CASE_IN("data: a\n: c\ndata: b\n\n"), "message|a\\nb|\n"},
    {"unknown fields", CASE_IN("foo: bar\nDATA: x\nData: x\ndata : x\n data: x\ndata: a\n\n"),
     "message|a|\n"},
    {"id persists", CASE_IN("id: 7\ndata: a\n\ndata: b\n\n"), "message|a|7\nmessage|b|7\n"},
    {"id set without dispatch", CASE_IN("id: 1\n\ndata: a\n\n"), "message|a|1\n"},
    {"id reset", CASE_IN("id: 1\ndata: a\n\nid\ndata: b\n\n"), "message|a|1\nmessage|b|\n"},
    {"id with NUL ignored", CASE_IN("id: 5\n\nid: a\0b\ndata: x\n\n"), "message|x|5\n"},
    {"id keeps a second space", CASE_IN("id:  x\ndata: a\n\n"), "message|a| x\n"},
    /* retry */
    {"retry", CASE_IN("retry: 1000\n"), "", 0, 1000},
    {"retry not digits", CASE_IN("retry: 10a\n"), "", 0, -1},
    {"retry empty", CASE_IN("retry:\nretry\n"), "", 0, -1},
    {"retry negative", CASE_IN("retry: -5\n"), "", 0, -1},
    {"retry with a space", CASE_IN("retry:  5\n"), "", 0, -1},
    {"retry kept over a bad one", CASE_IN("retry: 5\nretry: x\n"), "", 0, 5},
    {"retry saturates", CASE_IN("retry: 99999999999999999999999\n"), "", 0, LONG_MAX},
    {"retry dispatches nothing", CASE_IN("retry: 3\n\n"), "", 0, 3},
    /* end of stream */
    {"unterminated line", CASE_IN("data: a"), ""},
    {"unterminated event", CASE_IN("data: a\n"), ""},
    {"unterminated after CR", CASE_IN("data: a\r"), ""},
    {"last event unterminated", CASE_IN("data: a\n\ndata: b\n"), "message|a|\n"},
    /* the callback stops the feed */
    {"callback stops", CASE_IN("data: a\n\ndata: b\n\ndata: c\n\n"), "message|a|\nmessage|b|\n", 99,
     -1, 0, 2},
    {"callback stops at first", CASE_IN("data: a\n\ndata: b\n\n"), "message|a|\n", 99, -1, 0, 1},
    /* limits (max_event 10) */
    {"data at the limit", CASE_IN("data:12345\ndata:1234\n\n"), "message|12345\\n1234|\n", 0, -1,
     10},
    {"data over the limit", CASE_IN("data:12345\ndata:12345\n\n"), "", -E2BIG, -1, 10},
    {"line over the limit", CASE_IN("data:123456\n\n"), "", -E2BIG, -1, 10},
    {"comment over the limit", CASE_IN(":0123456789\n"), "", -E2BIG, -1, 10},
    {"unterminated line over", CASE_IN("data: a\n\ndata:123456"), "message|a|\n", -E2BIG, -1, 10},
    {"events before the failure", CASE_IN("data: a\n\n:0123456789\ndata: b\n\n"), "message|a|\n",
     -E2BIG, -1, 10},
    {"partial BOM counts",
     CASE_IN("\xEF\xBB"
             "data:1234\n"),
     "", -E2BIG, -1, 10},
    {"CR not counted", CASE_IN("data:12345\r\n\r\n"), "message|12345|\n", 0, -1, 10},
};

static void test_cases(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct tcase *c = &cases[i];
        size_t n = c->len;
        struct result r;
        run_whole(&r, c->in, n, c->max_event, c->stop_after);
        buf_append(&r.log.b, "", 1);
        long want_retry = c->retry ? c->retry : -1;
        CHECKF(!strcmp(buf_begin(&r.log.b), c->want), "%s: got \"%s\" want \"%s\"", c->name,
               buf_begin(&r.log.b), c->want);
        CHECKF(r.rc == c->rc, "%s: rc %d want %d", c->name, r.rc, c->rc);
        CHECKF(r.retry == want_retry, "%s: retry %ld want %ld", c->name, r.retry, want_retry);
        CHECKF(r.log.bad == 0, "%s: event contract broken", c->name);
        result_free(&r);
        check_splits(c->name, c->in, n, c->max_event, c->stop_after, 256);
    }
}

/* ---- state across calls ------------------------------------------------------------------ */

static int count_event(void *ctx, const struct sse_event *ev)
{
    (void)ev;
    (*(int *)ctx)++;
    return 0;
}

static void test_init_and_limits(void)
{
    struct sse_parser p;
    memset(&p, 0, sizeof(p));
    sse_init(&p);
    CHECK(p.max_event == (size_t)1 << 20);
    CHECK(p.retry_ms == -1);
    sse_free(&p);

    memset(&p, 0, sizeof(p));
    p.max_event = 100;
    sse_init(&p);
    CHECK(p.max_event == 100);
    sse_free(&p);

    /* the default limit: a line of exactly 1 MiB passes, one byte more fails */
    size_t big = (size_t)1 << 20;
    char *in = malloc(big + 16);
    memcpy(in, "data:", 5);
    memset(in + 5, 'x', big - 5);
    memcpy(in + big, "\n\n", 2);
    struct result r;
    run_whole(&r, in, big + 2, 0, 0);
    CHECK(r.rc == 0 && r.log.n == 1 && r.log.bad == 0);
    result_free(&r);
    size_t cut = big / 2 + 3;
    run(&r, in, big + 2, &cut, 1, 0, 0);
    CHECK(r.rc == 0 && r.log.n == 1 && r.log.bad == 0);
    result_free(&r);

    memcpy(in, "data: ", 6);
    memset(in + 6, 'x', big - 5);
    memcpy(in + big + 1, "\n\n", 2);
    run_whole(&r, in, big + 3, 0, 0);
    CHECK(r.rc == -E2BIG && r.log.n == 0);
    result_free(&r);
    run(&r, in, big + 3, &cut, 1, 0, 0);
    CHECK(r.rc == -E2BIG && r.log.n == 0);
    result_free(&r);
    free(in);
}

static void test_failed_is_sticky_until_reset(void)
{
    struct sse_parser p;
    int n = 0;
    memset(&p, 0, sizeof(p));
    p.max_event = 8;
    sse_init(&p);
    CHECK(sse_feed(&p, IN("data: 0123456789\n"), count_event, &n) == -E2BIG);
    CHECK(p.failed);
    CHECK(sse_feed(&p, IN("data: a\n\n"), count_event, &n) == -E2BIG);
    CHECK(sse_feed(&p, "", 0, count_event, &n) == -E2BIG);
    CHECK(n == 0);
    sse_reset(&p);
    CHECK(!p.failed && p.max_event == 8);
    CHECK(sse_feed(&p, IN("data: a\n\n"), count_event, &n) == 0);
    CHECK(n == 1);
    sse_free(&p);
}

static void test_reset(void)
{
    struct sse_parser p;
    struct log l = {0};
    memset(&p, 0, sizeof(p));
    sse_init(&p);
    l.p = &p;
    CHECK(sse_feed(&p, IN("\xEF\xBB\xBFid: 3\nretry: 5\nevent: x\ndata: a\ndata: part"), on_event,
                   &l) == 0);
    CHECK(p.id_len == 1 && p.retry_ms == 5 && p.type_len == 1 && buf_size(&p.data) > 0 &&
          buf_size(&p.line) > 0);
    sse_reset(&p);
    CHECK(p.id_len == 0 && p.retry_ms == -1 && p.type_len == 0 && buf_size(&p.data) == 0 &&
          buf_size(&p.line) == 0 && p.bom_state == 0 && !p.last_cr);
    /* a new stream: its BOM is skipped again, nothing of the old one leaks in */
    CHECK(sse_feed(&p,
                   IN("\xEF\xBB\xBF"
                      "data: b\r"),
                   on_event, &l) == 0);
    CHECK(p.last_cr);
    sse_reset(&p);
    CHECK(!p.last_cr);
    CHECK(sse_feed(&p,
                   IN("\n\xEF\xBB\xBF"
                      "data: c\n\n"),
                   on_event, &l) == 0);
    buf_append(&l.b, "", 1);
    CHECKF(!strcmp(buf_begin(&l.b), ""), "got \"%s\"", buf_begin(&l.b));
    CHECK(sse_feed(&p, IN("data: d\n\n"), on_event, &l) == 0);
    CHECK(l.n == 1 && l.bad == 0);
    buf_free(&l.b);
    sse_free(&p);

    /* sse_free leaves a usable parser */
    int n = 0;
    CHECK(sse_feed(&p, IN("data: e\n\n"), count_event, &n) == 0 && n == 1);
    sse_free(&p);
}

static void test_cr_then_empty_feed_then_lf(void)
{
    struct sse_parser p;
    struct log l = {0};
    memset(&p, 0, sizeof(p));
    sse_init(&p);
    l.p = &p;
    CHECK(sse_feed(&p, IN("data: a\r"), on_event, &l) == 0);
    CHECK(sse_feed(&p, "", 0, on_event, &l) == 0);
    CHECK(sse_feed(&p, IN("\ndata: b\n\n"), on_event, &l) == 0);
    buf_append(&l.b, "", 1);
    CHECKF(!strcmp(buf_begin(&l.b), "message|a\\nb|\n"), "got \"%s\"", buf_begin(&l.b));
    buf_free(&l.b);
    sse_free(&p);
}

static void test_null_callback_and_truncation(void)
{
    struct sse_parser p;
    memset(&p, 0, sizeof(p));
    sse_init(&p);
    CHECK(sse_feed(&p, IN("data: a\n\n"), NULL, NULL) == 0);
    CHECK(sse_feed(&p, NULL, 0, NULL, NULL) == 0);

    /* over-long "event:" and "id:" values are truncated to the fixed fields */
    char line[400];
    memcpy(line, "event: ", 7);
    memset(line + 7, 'e', 100);
    line[107] = '\n';
    CHECK(sse_feed(&p, line, 108, NULL, NULL) == 0);
    CHECK(p.type_len == sizeof(p.type) - 1 && p.type[p.type_len] == '\0');
    memcpy(line, "id: ", 4);
    memset(line + 4, 'i', 300);
    line[304] = '\n';
    CHECK(sse_feed(&p, line, 305, NULL, NULL) == 0);
    CHECK(p.id_len == sizeof(p.id) - 1 && p.id[p.id_len] == '\0');
    sse_free(&p);
}

/* ---- provider fixtures ------------------------------------------------------------------- */

static char *load(const char *name, size_t *n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", FIXTURE_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 4);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

/* Line k (0-based) of the escaped log, without its "\n". */
static bool log_line(const struct result *r, int k, const char **s, size_t *n)
{
    const char *p = buf_begin(&r->log.b), *end = p + buf_size(&r->log.b);
    for (; k > 0 && p < end; k--) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return false;
        p = nl + 1;
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
        return false;
    *s = p;
    *n = (size_t)(nl - p);
    return true;
}

static bool line_has(const struct result *r, int k, const char *needle)
{
    const char *s;
    size_t n;
    return log_line(r, k, &s, &n) && memmem(s, n, needle, strlen(needle));
}

static bool line_starts(const struct result *r, int k, const char *prefix)
{
    const char *s;
    size_t n;
    return log_line(r, k, &s, &n) && n >= strlen(prefix) && !memcmp(s, prefix, strlen(prefix));
}

struct fixture {
    const char *file;
    int events;
};

static const struct fixture fixtures[] = {
    {"openai_text.sse", 13},        {"openai_tools.sse", 10},        {"anthropic_text.sse", 8},
    {"anthropic_text_crlf.sse", 8}, {"anthropic_tools.sse", 30},     {"anthropic_error.sse", 5},
    {"gemini_text.sse", 3},         {"gemini_function_call.sse", 1},
};

/* Anthropic names each event twice: "event: X" and "type": "X" in its data. */
static void check_anthropic_types(const char *file, const struct result *r)
{
    int bad = 0;
    for (int k = 0; k < r->log.n; k++) {
        const char *s;
        size_t n;
        char a[96], b[96];
        if (!log_line(r, k, &s, &n))
            break;
        const char *bar = memchr(s, '|', n);
        int tl = (int)(bar - s);
        snprintf(a, sizeof(a), "\"type\": \"%.*s\"", tl, s);
        snprintf(b, sizeof(b), "\"type\":\"%.*s\"", tl, s);
        if (!memmem(bar, n - (size_t)tl, a, strlen(a)) &&
            !memmem(bar, n - (size_t)tl, b, strlen(b)))
            bad++;
    }
    CHECKF(bad == 0, "%s: %d events whose data type differs from the event name", file, bad);
}

static void check_fixture_content(const char *f, const struct result *r)
{
    int last = r->log.n - 1;
    if (!strncmp(f, "openai", 6)) {
        CHECK(line_has(r, 0, "\"delta\":{\"role\":\"assistant\""));
        CHECK(line_has(r, last - 1, "\"choices\":[]") && line_has(r, last - 1, "\"usage\":{"));
        CHECK(line_starts(r, last, "message|[DONE]|"));
        for (int k = 0; k < r->log.n; k++)
            CHECK(line_starts(r, k, "message|"));
    }
    if (!strcmp(f, "openai_tools.sse")) {
        CHECK(line_has(r, 1, "\"name\":\"get_weather\""));
        CHECK(line_has(r, last - 2, "\"finish_reason\":\"tool_calls\""));
    }
    if (!strncmp(f, "anthropic", 9)) {
        CHECK(line_starts(r, 0, "message_start|"));
        check_anthropic_types(f, r);
    }
    if (!strncmp(f, "anthropic_t", 11)) {
        CHECK(line_starts(r, 2, "ping|"));
        CHECK(line_starts(r, last - 1, "message_delta|"));
        CHECK(line_starts(r, last, "message_stop|"));
    }
    if (!strcmp(f, "anthropic_tools.sse"))
        CHECK(line_has(r, 17, "\"type\":\"tool_use\"") && line_has(r, 19, "input_json_delta"));
    if (!strcmp(f, "anthropic_error.sse"))
        CHECK(line_starts(r, last, "error|") && line_has(r, last, "overloaded_error"));
    if (!strncmp(f, "gemini", 6)) {
        for (int k = 0; k < r->log.n; k++)
            CHECK(line_starts(r, k, "message|{\"candidates\": [") &&
                  line_has(r, k, "usageMetadata"));
        CHECK(line_has(r, last, "\"finishReason\": \"STOP\""));
    }
    if (!strcmp(f, "gemini_function_call.sse"))
        CHECK(line_has(r, 0, "\"functionCall\": {\"name\": \"get_weather\""));
}

static void test_fixtures(void)
{
    struct result lf_text = {0};
    for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
        const char *f = fixtures[i].file;
        size_t n;
        char *in = load(f, &n);
        CHECKF(in != NULL, "%s: missing", f);
        if (!in)
            continue;
        struct result r;
        run_whole(&r, in, n, 0, 0);
        CHECKF(r.rc == 0 && r.log.n == fixtures[i].events, "%s: rc %d, %d events, want %d", f, r.rc,
               r.log.n, fixtures[i].events);
        CHECKF(r.log.bad == 0 && r.log.crlf == 0, "%s: contract broken or CR/LF in data", f);
        check_fixture_content(f, &r);

        /* a BOM in front changes nothing; stopping half-way gives the first half */
        char *bom = malloc(n + 3);
        memcpy(bom, "\xEF\xBB\xBF", 3);
        memcpy(bom + 3, in, n);
        struct result rb;
        run_whole(&rb, bom, n + 3, 0, 0);
        CHECKF(result_eq(&r, &rb), "%s: BOM in front changes the events", f);
        result_free(&rb);
        free(bom);
        check_splits(f, in, n, 0, 0, 300);
        check_splits(f, in, n, 0, (r.log.n + 1) / 2, 0);

        if (!strcmp(f, "anthropic_text.sse"))
            lf_text = r;
        else if (!strcmp(f, "anthropic_text_crlf.sse"))
            CHECKF(result_eq(&lf_text, &r), "CRLF and LF framings of anthropic_text differ");
        if (strcmp(f, "anthropic_text.sse"))
            result_free(&r);
        free(in);
    }
    result_free(&lf_text);
}

int main(void)
{
    test_cases();
    test_init_and_limits();
    test_failed_is_sticky_until_reset();
    test_reset();
    test_cr_then_empty_feed_then_lf();
    test_null_callback_and_truncation();
    test_fixtures();
    return tap_done();
}
