/* echo.c - the built-in echo responder: streams the user's words back, one delta per word
 * (a word's trailing whitespace belongs to it), with usage counted in words and cost 0.
 * It exists so that the whole path (client -> session -> turn -> deltas -> turn_end) runs end to
 * end before a model provider is wired in, and as the cheapest load for benchmarks. */
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

/* Emit one piece; returns false when the answer is complete (the turn is then freed). */
static bool emit_one(struct turn *t)
{
    size_t end = piece_end(t->text, t->len, t->pos);
    session_turn_delta(t, t->text + t->pos, end - t->pos);
    t->pos = end;
    t->usage.output_tokens++;
    if (t->pos < t->len)
        return true;
    struct turn_usage u = t->usage;
    session_turn_done(t, "stop", &u, 0, NULL, NULL);
    return false;
}

static void echo_tick(struct loop *l, struct timer *tm)
{
    struct turn *t = (struct turn *)((char *)tm - offsetof(struct turn, timer));
    if (emit_one(t))
        timer_arm(l, &t->timer, loop_now_ms(l) + turn_config(t)->echo_delay_ms, echo_tick);
}

static int echo_start(struct turn *t, const char *text, size_t len)
{
    t->text = xstrndup(text, len);
    t->len = len;
    t->pos = 0;
    t->usage.input_tokens = count_words(text, len);
    uint32_t delay = turn_config(t)->echo_delay_ms;
    if (delay == 0) {
        while (emit_one(t))
            ;
        return 0;
    }
    struct loop *l = turn_loop(t);
    timer_arm(l, &t->timer, loop_now_ms(l) + delay, echo_tick);
    return 0;
}

static void echo_cancel(struct turn *t)
{
    timer_disarm(turn_loop(t), &t->timer);
}

const struct responder echo_responder = {
    .name = "echo",
    .start = echo_start,
    .cancel = echo_cancel,
};
