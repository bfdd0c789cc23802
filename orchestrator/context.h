/* context.h - what each agent is shown of the conversation (its context policy), and which
 * product of the last slate a follow-up message refers to.
 *
 * An agent never receives the whole conversation by default: the search agent sees the current
 * query and the last clarification, the specialist the chosen product and the question. Pure
 * functions over plain structs. */
#ifndef TRILEMMA_ORCHESTRATOR_CONTEXT_H
#define TRILEMMA_ORCHESTRATOR_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "orchestrator/agents.h"

struct ctx_msg {
    const char *role; /* "user" or "assistant" */
    const char *text;
    size_t len;
};

/* Choose the messages of hist[0..n) (oldest first, the current user message last) that policy p
 * sends: their indexes, in order, into idx[0..cap). Returns how many (0 only when n is 0).
 *   CTX_QUERY, CTX_CHOSEN_PRODUCT  the current message
 *   CTX_CLARIFICATION              the user message and the assistant's question before the
 *                                  current one, when that assistant message ends in '?'
 *   CTX_FULL                       all of them (at most cap, the newest) */
size_t context_select(enum context_policy p, const struct ctx_msg *hist, size_t n, size_t *idx,
                      size_t cap);

/* One product of a slate shown to the user, as far as reference resolution needs it. */
struct slate_ref {
    const char *id;
    const char *title;
    int64_t price; /* whole currency units, -1 unknown */
};

/* Which item of slate[0..n) the message text[0..len) refers to: an ordinal ("the second one",
 * "#2", "2nd", "the last"), "the cheapest" / "the most expensive", or the item whose title
 * shares the most words (of 3+ letters) with the message. Returns the index, or -1 when nothing
 * points at one item. */
int context_resolve_product(const char *text, size_t len, const struct slate_ref *slate, size_t n);

/* Which items of slate[0..n) a comparison refers to, into idx[0..max) in slate order: "the two
 * cheapest" / "the 3 most expensive" (by price), ordinals ("the first and the third"), titles
 * named, else the first two. Returns how many (0 when n is 0). */
size_t context_pick_products(const char *text, size_t len, const struct slate_ref *slate, size_t n,
                             size_t *idx, size_t max);

#endif
