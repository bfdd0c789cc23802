/* echo.c - the built-in echo responder: streams the user's words back, one delta per word
 * (a word's trailing whitespace belongs to it), with usage counted in words and cost 0, and one
 * ledger line ("echo"/"echo") per turn. Its state is its own (struct echo_turn), not the turn's.
 * It exists so that the whole path (client -> session -> turn -> deltas -> turn_end) runs end to
 * end before a model provider is wired in, and as the cheapest load for benchmarks. */
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "session/session_int.h"

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* End of the piece that starts at pos: [leading space, only at 0] word [trailing space]. */
static size_t piece_end(const char *s, size_t len, size_t pos)
{
    size_t i = pos;
    if (pos == 0)
        while (i < len && is_space(s[i]))
            i++;
    while (i < len && !is_space(s[i]))
        i++;
    while (i < len && is_space(s[i]))
        i++;
    return i;
}

static uint64_t count_words(const char *s, size_t len)
{
    uint64_t n = 0;
    for (size_t pos = 0; pos < len; pos = piece_end(s, len, pos))
        n++;
    return n;
}

/* One echo turn: the user's words and how far they have been sent. */
struct echo_turn {
    struct turn *t;
    struct timer timer;
    char *text;
    size_t len;
    size_t pos;
    struct llm_usage usage; /* words in, words out so far */
    uint64_t started_ms;
    uint64_t first_ms; /* 0 until the first piece */
};

/* The echo's one ledger line (cost 0): what it has done so far. */
static void echo_record(struct echo_turn *e, const char *status)
{
    struct loop *l = turn_loop(e->t);
    struct llm_call_record c = {
        .provider = "echo",
        .model = "echo",
        .role = "model",
        .attempt = 1,
        .usage = e->usage,
        .usage_reported = true,
        .ttft_ms = e->first_ms ? (int64_t)(e->first_ms - e->started_ms) : -1,
        .duration_ms = (int64_t)(loop_now_ms(l) - e->started_ms),
    };
    snprintf(c.status, sizeof(c.status), "%s", status);
    turn_add_call(e->t, &c);
}

static void echo_free(struct echo_turn *e)
{
    timer_disarm(turn_loop(e->t), &e->timer);
    turn_set_responder_state(e->t, NULL);
    xfree(e->text);
    xfree(e);
}

/* Emit one piece; returns false when the answer is complete (the turn is then freed). */
static bool emit_one(struct echo_turn *e)
{
    size_t end = piece_end(e->text, e->len, e->pos);
    if (!e->first_ms)
        e->first_ms = loop_now_ms(turn_loop(e->t));
    session_turn_delta(e->t, e->text + e->pos, end - e->pos);
    e->pos = end;
    e->usage.output_tokens++;
    if (e->pos < e->len)
        return true;
    struct turn *t = e->t;
    echo_record(e, "ok");
    echo_free(e);
    session_turn_done(t, "stop", NULL, NULL);
    return false;
}

static void echo_tick(struct loop *l, struct timer *tm)
{
    struct echo_turn *e = (struct echo_turn *)((char *)tm - offsetof(struct echo_turn, timer));
    uint32_t delay = turn_config(e->t)->echo_delay_ms;
    if (emit_one(e))
        timer_arm(l, &e->timer, loop_now_ms(l) + delay, echo_tick);
}

static int echo_start(struct turn *t, const char *text, size_t len)
{
    struct loop *l = turn_loop(t);
    struct echo_turn *e = xcalloc(1, sizeof(*e));
    e->t = t;
    e->text = xstrndup(text, len);
    e->len = len;
    e->usage.input_tokens = count_words(text, len);
    e->started_ms = loop_now_ms(l);
    turn_set_responder_state(t, e);
    uint32_t delay = turn_config(t)->echo_delay_ms;
    if (delay == 0) {
        while (emit_one(e))
            ;
        return 0;
    }
    timer_arm(l, &e->timer, loop_now_ms(l) + delay, echo_tick);
    return 0;
}

static void echo_cancel(struct turn *t)
{
    struct echo_turn *e = turn_responder_state(t);
    if (!e)
        return;
    echo_record(e, "cancelled");
    echo_free(e);
}

const struct responder echo_responder = {
    .name = "echo",
    .start = echo_start,
    .cancel = echo_cancel,
};
