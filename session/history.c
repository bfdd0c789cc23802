/* history.c - the conversation a session keeps in memory for its next turn's context, bounded.
 *
 * What is kept is what the context policy sends, and no more: the last history_messages
 * messages (plus the turn's own), within history_max_bytes of text per session (the oldest go
 * first; the newest message always stays, the turn needs it). Across the process the text held
 * stays within history_budget_bytes: when a message takes it past, the worker drops the whole
 * history of its least recently active sessions that have no turn running (the session list is
 * kept in activity order), and as a last resort the oldest messages of the adding session. The
 * one excess left is a worker whose every other session has a turn running (their histories are
 * pinned: the turns' contexts point into them) adding the first message of a session: it is
 * held over the budget until the next message of that worker makes room again. A
 * session whose history was dropped reads it back from the store (the same read as a resume)
 * before its next turn starts, so the answer still gets its context; without a database a
 * dropped history is lost, and the next turn starts without it.
 *
 * The process-wide count is one atomic; everything else belongs to the session's worker. */
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "session/session_int.h"
#include "store/store.h"

/* The user_message that waits for its history (s->held), and the read under way. */
struct held_msg {
    struct chat_msg m;
    char id[CHAT_ID_MAX + 1];
    char *text;
    struct store_op *op;
};

static uint64_t g_bytes; /* text bytes held in every session's history (atomic) */

uint64_t history_bytes_held(void)
{
    return __atomic_load_n(&g_bytes, __ATOMIC_RELAXED);
}

static void drop_oldest(struct session *s)
{
    size_t len = s->history[0].len;
    xfree((void *)s->history[0].text);
    memmove(s->history, s->history + 1, (s->history_len - 1) * sizeof(*s->history));
    s->history_len--;
    s->history_bytes -= (uint32_t)len;
    __atomic_sub_fetch(&g_bytes, len, __ATOMIC_RELAXED);
}

void session_history_free(struct session *s)
{
    for (size_t i = 0; i < s->history_len; i++)
        xfree((void *)s->history[i].text);
    __atomic_sub_fetch(&g_bytes, s->history_bytes, __ATOMIC_RELAXED);
    xfree(s->history);
    s->history = NULL;
    s->history_len = 0;
    s->history_bytes = 0;
    s->history_dropped = false; /* a new history (a resume's) replaces the dropped one */
}

/* A session is the least recently active once it moves to the tail at each message. */
static void to_tail(struct session *s)
{
    struct session *head = &s->sw->head;
    s->prev->next = s->next;
    s->next->prev = s->prev;
    s->next = head;
    s->prev = head->prev;
    head->prev->next = s;
    head->prev = s;
}

/* Drop whole histories of this worker's idle sessions, least recently active first, until the
 * process is back within the budget (or none is left to drop). Only sessions with no turn, resume,
 * replay or reload in progress: a running turn's context points into its history. */
static void make_room(struct session *self, uint64_t budget)
{
    struct sess_worker *sw = self->sw;
    for (struct session *o = sw->head.next; o != &sw->head && history_bytes_held() > budget;
         o = o->next) {
        if (o == self || !o->history_len || o->turn || o->rs || o->replay || o->held)
            continue;
        session_history_free(o);
        o->history_dropped = sw->store != NULL; /* without a store there is nothing to reload */
        metric_add(&sw->m.history_dropped, 1);
    }
}

/* Append to the conversation within the limits in the file comment. */
void history_add(struct session *s, const char *role, const char *text, size_t len)
{
    const struct config *conf = s->sw->conf;
    size_t keep = (size_t)conf->history_messages + 1;
    uint32_t trimmed = 0;
    while (s->history_len &&
           (s->history_len >= keep || (uint64_t)s->history_bytes + len > conf->history_max_bytes)) {
        drop_oldest(s);
        trimmed++;
    }
    s->history = xrealloc(s->history, (s->history_len + 1) * sizeof(*s->history));
    s->history[s->history_len++] = (struct history_msg){role, xstrndup(text, len), len};
    s->history_bytes += (uint32_t)len;
    to_tail(s);
    /* Counted first, then made room for: two workers adding at once both see both messages and
     * both make room (never both decide it fits). */
    if (__atomic_add_fetch(&g_bytes, len, __ATOMIC_RELAXED) > conf->history_budget_bytes) {
        make_room(s, conf->history_budget_bytes);
        while (s->history_len > 1 && history_bytes_held() > conf->history_budget_bytes) {
            drop_oldest(s);
            trimmed++;
        }
    }
    if (trimmed)
        metric_add(&s->sw->m.history_trimmed, trimmed);
}

/* The client left while its turn runs on (detach.c): the turn's contexts point into this
 * history, so the turn takes it over (still counted in the budget) until it is freed. A turn
 * left before and re-attached holds the first client's history already, and requests built
 * while the second was attached (a model retry re-sends one) point into the second's: it keeps
 * both, and turn_history answers from the newest, what the client that left last had. */
void history_hand_over(struct session *s, struct turn *t)
{
    if (!t->own_history) {
        t->own_history = s->history;
        t->own_history_len = s->history_len;
    } else {
        size_t n = t->own_history_len, add = s->history_len;
        t->own_history = xrealloc(t->own_history, (n + add) * sizeof(*t->own_history));
        if (add)
            memcpy(t->own_history + n, s->history, add * sizeof(*s->history));
        xfree(s->history); /* the array only: its texts are the turn's now */
        t->own_history_from = (uint32_t)n;
        t->own_history_len = (uint32_t)(n + add);
    }
    t->own_history_bytes += s->history_bytes;
    s->history = NULL;
    s->history_len = 0;
    s->history_bytes = 0;
}

/* The turn that took a history over is freed. */
void history_turn_free(struct turn *t)
{
    for (size_t i = 0; i < t->own_history_len; i++)
        xfree((void *)t->own_history[i].text);
    __atomic_sub_fetch(&g_bytes, t->own_history_bytes, __ATOMIC_RELAXED);
    xfree(t->own_history);
    t->own_history = NULL;
    t->own_history_len = 0;
    t->own_history_from = 0;
    t->own_history_bytes = 0;
}

/* The client left while its history was being read: forget the read and the message. */
void history_held_free(struct session *s)
{
    struct held_msg *h = s->held;
    if (!h)
        return;
    s->held = NULL;
    store_cancel(h->op);
    xfree(h->text);
    xfree(h);
}

/* The history is back (or could not be read: the turn starts without it, as it would have
 * without a database). Then the held message starts its turn as if it had just arrived. */
static void on_reloaded(void *ctx, int result, const struct store_conversation *c)
{
    struct session *s = ctx;
    struct held_msg *h = s->held;
    s->held = NULL;
    s->history_dropped = false;
    if (result < 0)
        log_warn("session: history of %s not reloaded (%s): the turn starts without it",
                 s->conversation_id, strerror(-result));
    else if (c->found && strcmp(c->user_sub, s->user_sub) == 0) {
        session_history_free(s);
        for (size_t i = 0; i < c->n_messages; i++)
            history_add(s, strcmp(c->messages[i].role, "assistant") == 0 ? "assistant" : "user",
                        c->messages[i].text, c->messages[i].len);
        metric_add(&s->sw->m.history_reloads, 1);
    }
    if (h) {
        h->m.id = h->id;
        h->m.text = h->text;
        on_user_message(s, &h->m);
        xfree(h->text);
        xfree(h);
    }
}

/* See session_int.h. */
bool history_reload_first(struct session *s, const struct chat_msg *m)
{
    if (!s->history_dropped || !s->sw->store)
        return false;
    struct held_msg *h = xcalloc(1, sizeof(*h));
    h->m = *m;
    memcpy(h->id, m->id, m->id_len);
    h->text = xstrndup(m->text, m->text_len);
    s->held = h;
    h->op = store_load_conversation(s->sw->store, s->conversation_id, s->sw->conf->history_messages,
                                    on_reloaded, s);
    return true;
}
