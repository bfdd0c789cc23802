/* test_tool_run.c - orchestrator/tool_run.h against a real local HTTP server (tool_server.py on
 * 127.0.0.1), on a real loop and curl multi:
 *   - the calls of one batch overlap: the server's own timestamps show every slow request
 *     started before any of them ended (no timing is asserted by the test itself);
 *   - invalid arguments are reported as invalid_arguments and never reach the server;
 *   - a 500 is retried (retries + 1 requests seen by the server) and reported with its status;
 *   - a call that outlives its timeout_ms is reported as timeout;
 *   - cancelling a batch aborts its transfer at once: the server sees the client go away while
 *     it still had most of its answer to send, and the batch reports nothing afterwards.
 * Skips (77) when python3 is not there. */
#include "net/loop.h"
#include "orchestrator/tool_run.h"
#include "stream/http_client.h"
#include "tests/tap.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define OP_POLL 7

static struct loop *L;
static struct hc *H;
static struct tool_runner *R;
static const struct tool_set *TS;
static json_doc *D;
static int PORT;
static struct timer watchdog;
static bool timed_out;

/* The test is one loop_run: each step starts something whose completion calls advance(). */
static void advance(void);

static void on_watchdog(struct loop *l, struct timer *t)
{
    (void)t;
    timed_out = true; /* a hang is a failure, reported as such, not a timing assertion */
    loop_stop(l);
}

/* ---- a plain GET of the server's log through the same client ---- */

struct fetch {
    struct buf body;
    int status;
};
static struct fetch F;
static int fetch_rc;

static int f_resp(void *ctx, int status, int64_t ra)
{
    (void)ra;
    ((struct fetch *)ctx)->status = status;
    return 0;
}

static int f_body(void *ctx, const char *p, size_t n)
{
    buf_append(&((struct fetch *)ctx)->body, p, n);
    return 0;
}

static void f_done(void *ctx, int result, int status, const char *msg)
{
    struct fetch *f = ctx;
    (void)status, (void)msg;
    fetch_rc = result == HC_OK && f->status == 200
                   ? json_doc_load(D, buf_begin(&f->body), buf_size(&f->body))
                   : -1;
    buf_free(&f->body);
    advance();
}

/* Start a GET of /log; advance() runs when it is in D (fetch_rc 0). */
static void fetch_log(void)
{
    static const struct hc_callbacks cb = {f_resp, f_body, f_done};
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/log", PORT);
    struct hc_request req = {.url = url, .connect_timeout_ms = 5000, .total_timeout_ms = 5000};
    memset(&F, 0, sizeof(F));
    if (!hc_start(H, &req, &cb, &F)) {
        fetch_rc = -1;
        loop_stop(L);
    }
}

/* Log entries whose path contains needle: how many, the latest start and earliest end among
 * them, and the outcome of the last one. */
struct seen {
    int n;
    uint64_t max_start, min_end;
    char outcome[16];
};

static struct seen log_find(json_doc *d, const char *needle)
{
    struct seen s = {0, 0, UINT64_MAX, ""};
    size_t count = 0;
    json_count(d, "/requests", &count);
    for (size_t i = 0; i < count; i++) {
        char p[64];
        const char *path, *out;
        size_t n, on;
        int64_t st = 0, en = 0;
        snprintf(p, sizeof(p), "/requests/%zu/path", i);
        if (json_get_string(d, p, &path, &n) != 0 || !memmem(path, n, needle, strlen(needle)))
            continue;
        snprintf(p, sizeof(p), "/requests/%zu/start_us", i);
        json_get_int(d, p, &st);
        snprintf(p, sizeof(p), "/requests/%zu/end_us", i);
        json_get_int(d, p, &en);
        snprintf(p, sizeof(p), "/requests/%zu/outcome", i);
        if (json_get_string(d, p, &out, &on) == 0)
            snprintf(s.outcome, sizeof(s.outcome), "%.*s", (int)on, out);
        s.n++;
        s.max_start = (uint64_t)st > s.max_start ? (uint64_t)st : s.max_start;
        s.min_end = (uint64_t)en < s.min_end ? (uint64_t)en : s.min_end;
    }
    return s;
}

/* ---- the tools ---- */

static struct tool_set *make_tools(int port)
{
    char text[4096], err[512];
    int n = snprintf(
        text, sizeof(text),
        "{\"base_url\":\"http://127.0.0.1:%d\",\"tools\":["
        "{\"name\":\"slow\",\"description\":\"d\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"ms\":{\"type\":\"integer\",\"minimum\":1},\"tag\":{\"type\":\"string\"}}"
        ","
        "\"required\":[\"ms\"]},\"http\":{\"method\":\"GET\",\"path\":\"/slow/{ms}\"},"
        "\"timeout_ms\":10000,\"result\":{\"items\":\"/results\",\"keep\":[\"id\"],\"top_k\":2}},"
        "{\"name\":\"fail\",\"description\":\"d\",\"parameters\":{\"type\":\"object\"},"
        "\"http\":{\"method\":\"GET\",\"path\":\"/fail\"},\"timeout_ms\":10000,\"retries\":2},"
        "{\"name\":\"hang\",\"description\":\"d\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"tag\":{\"type\":\"string\"}}},"
        "\"http\":{\"method\":\"GET\",\"path\":\"/hang\"},\"timeout_ms\":300},"
        "{\"name\":\"hang_long\",\"description\":\"d\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"tag\":{\"type\":\"string\"}}},"
        "\"http\":{\"method\":\"GET\",\"path\":\"/hang\"},\"timeout_ms\":20000}]}",
        port);
    struct tool_set *ts = tool_set_parse(text, (size_t)n, "test", err, sizeof(err));
    CHECKF(ts != NULL, "%s", err);
    return ts;
}

static void on_batch(void *ctx, struct tool_batch *b)
{
    (void)b;
    (*(int *)ctx)++;
    advance();
}

static void on_call(void *ctx, struct tool_call *c)
{
    (void)c;
    (*(int *)ctx)++;
    advance();
}

#define CALL(name, args)                                                                           \
    {                                                                                              \
        "id", name, args, sizeof(args) - 1                                                         \
    }

static bool text_is(const struct tool_result *r, const char *want)
{
    bool ok =
        buf_size(&r->text) == strlen(want) && !memcmp(buf_begin(&r->text), want, strlen(want));
    if (!ok)
        fprintf(stderr, "text: '%.*s'\nwant: '%s'\n", (int)buf_size(&r->text), buf_begin(&r->text),
                want);
    return ok;
}

static struct tool_batch *batch, *to_cancel;
static struct tool_call *call;
static int reported, cancel_reported, log_tries;
static struct timer cancel_timer;

static void start_batch(void)
{
    static const struct llm_msg_tool_call calls[] = {
        CALL("slow", "{\"ms\":400,\"tag\":\"p1\"}"),
        CALL("slow", "{\"ms\":400,\"tag\":\"p2\"}"),
        CALL("slow", "{\"ms\":400,\"tag\":\"p3\"}"),
        CALL("slow", "{\"ms\":\"x\",\"tag\":\"bad\"}"),
        CALL("fail", "{}"),
        CALL("nope", "{}"),
    };
    batch = tool_batch_start(R, TS, calls, 6, on_batch, &reported);
}

static void check_batch(void)
{
    CHECK(reported == 1 && tool_batch_count(batch) == 6);
    for (size_t i = 0; i < 3; i++) {
        const struct tool_result *r = tool_batch_result(batch, i);
        CHECKF(r->status == TOOL_OK && r->http_status == 200 && r->attempts == 1, "call %zu: %s", i,
               tool_status_name(r->status));
        CHECK(text_is(r, "[{\"id\":\"A\"},{\"id\":\"B\"}]"));
        CHECK(r->raw_bytes > r->shaped_bytes && r->shaped_bytes == buf_size(&r->text));
    }
    const struct tool_result *bad = tool_batch_result(batch, 3),
                             *fail = tool_batch_result(batch, 4),
                             *nope = tool_batch_result(batch, 5);
    CHECK(bad->status == TOOL_INVALID_ARGS && bad->attempts == 0 &&
          text_is(bad, "invalid arguments: slow: ms: expected an integer, got a string"));
    CHECK(fail->status == TOOL_ERROR && fail->http_status == 500 && fail->attempts == 3 &&
          text_is(fail, "fail failed: HTTP 500 after 3 attempts: {\"error\": \"boom\"}"));
    CHECK(nope->status == TOOL_INVALID_ARGS && nope->attempts == 0 &&
          text_is(nope, "nope: no such tool"));
    tool_batch_free(batch);
}

static void check_batch_log(void)
{
    CHECK(fetch_rc == 0);
    struct seen slow = log_find(D, "/slow/400?tag=p"), f = log_find(D, "/fail"),
                badreq = log_find(D, "tag=bad");
    /* concurrent: the last of the three started before the first of them ended */
    CHECKF(slow.n == 3 && slow.max_start < slow.min_end, "n %d start %llu end %llu", slow.n,
           (unsigned long long)slow.max_start, (unsigned long long)slow.min_end);
    CHECK(f.n == 3);      /* retried twice */
    CHECK(badreq.n == 0); /* never sent */
}

static void start_timeout(void)
{
    const struct tool_def *t = tool_set_find(TS, "hang", 4);
    reported = 0;
    call = tool_call_start(R, t, "{\"tag\":\"t\"}", 11, on_call, &reported);
}

static void check_timeout(void)
{
    const struct tool_result *r = tool_call_result(call);
    CHECK(reported == 1 && r->status == TOOL_TIMEOUT && r->attempts == 1);
    CHECK(text_is(r, "hang failed: no answer within 300 ms (timeout)"));
    tool_call_free(call);
}

static void on_cancel_timer(struct loop *l, struct timer *t)
{
    (void)l, (void)t;
    tool_batch_cancel(to_cancel);
    const struct tool_result *r = tool_batch_result(to_cancel, 0);
    CHECK(r->status == TOOL_CANCELLED && text_is(r, "hang_long: cancelled"));
    CHECK(hc_active(H) == 0); /* its transfer is gone from the multi handle at once */
    advance();
}

static void start_cancel(void)
{
    static const struct llm_msg_tool_call calls[] = {CALL("hang_long", "{\"tag\":\"c\"}")};
    to_cancel = tool_batch_start(R, TS, calls, 1, on_batch, &cancel_reported);
    /* cancel once the transfer is under way (the server trickles its answer for 10 s) */
    timer_arm(L, &cancel_timer, loop_now_ms(L) + 200, on_cancel_timer);
}

/* The server notices that the client left at its next write: ask its log until it says so. */
static bool cancel_seen(void)
{
    struct seen s = log_find(D, "/hang?tag=c");
    if (fetch_rc == 0 && !strcmp(s.outcome, "aborted")) {
        CHECK(s.n == 1);
        return true;
    }
    if (++log_tries < 500)
        return false;
    CHECKF(false, "the server never saw the cancelled transfer go: '%s'", s.outcome);
    return true;
}

static void finish(void)
{
    struct tool_runner_stats st;
    CHECK(cancel_reported == 0);
    tool_batch_free(to_cancel);
    tool_runner_stats(R, &st);
    CHECK(st.calls[TOOL_OK] == 3 && st.calls[TOOL_ERROR] == 1 && st.calls[TOOL_TIMEOUT] == 1 &&
          st.calls[TOOL_INVALID_ARGS] == 2 && st.calls[TOOL_CANCELLED] == 1 && st.retries == 2 &&
          st.attempts == 3 + 3 + 1 + 1);
    loop_stop(L);
}

static void advance(void)
{
    static int step;
    switch (step++) {
    case 0:
        start_batch();
        break;
    case 1:
        check_batch();
        fetch_log();
        break;
    case 2:
        check_batch_log();
        start_timeout();
        break;
    case 3:
        check_timeout();
        start_cancel();
        break;
    case 4: /* the cancel timer fired */
        fetch_log();
        break;
    case 5:
        if (!cancel_seen()) {
            step = 5;
            fetch_log();
            break;
        }
        finish();
        break;
    }
}

int main(void)
{
    int to_child[2], from_child[2];
    if (access(PYTHON3, X_OK) != 0)
        return 77;
    if (pipe(to_child) || pipe(from_child))
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(to_child[0], 0);
        dup2(from_child[1], 1);
        close(to_child[1]);
        close(from_child[0]);
        execl(PYTHON3, PYTHON3, TOOL_SERVER, (char *)NULL);
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    FILE *in = fdopen(from_child[0], "r");
    int port = 0;
    if (!in || fscanf(in, "%d", &port) != 1 || port <= 0) {
        fprintf(stderr, "tool_server.py did not start\n");
        return 1;
    }
    L = loop_create(NULL);
    H = hc_create(L, OP_POLL);
    R = tool_runner_create(L, H);
    D = json_doc_create();
    PORT = port;
    struct tool_set *ts = make_tools(port);
    TS = ts;
    if (ts) {
        timer_arm(L, &watchdog, loop_now_ms(L) + 60000, on_watchdog);
        advance();
        loop_run(L);
        CHECK(!timed_out);
    }
    tool_set_free(ts);
    json_doc_destroy(D);
    tool_runner_destroy(R);
    hc_destroy(H);
    loop_destroy(L);
    close(to_child[1]); /* the server exits when its stdin closes */
    waitpid(pid, NULL, 0);
    fclose(in);
    return tap_done();
}
