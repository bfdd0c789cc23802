/* plan_preload.c - the products a turn carries: the slate of tool results, the search prefetch's
 * result, and a follow-up's preload of the products shown before. */
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "orchestrator/agent_plan_int.h"
#include "orchestrator/context.h"
#include "stream/jsonw.h"

/* Products of a search or product tool join the turn's slate (sent by ap__send_slate). */
void ap__add_slate(struct agent_turn *at, const char *name, const char *text, size_t len)
{
    if (!at->shown && (strstr(name, "search") || !strcmp(name, "get_product"))) {
        const struct tool_def *td = tool_set_find(at->c->tools, name, strlen(name));
        slate_add_result(&at->slate, at->env.doc, text, len, 5, td ? td->base_url : NULL);
    }
}

/* The slate goes out once, before the answer, with what the first tool step found. */
void ap__send_slate(struct agent_turn *at)
{
    if (at->shown || !at->slate.n)
        return;
    struct buf items = {0};
    slate_to_json(&at->slate, &items);
    session_turn_products(at->t, buf_begin(&items), buf_size(&items));
    buf_free(&items);
    turn_set_memo(at->t, &at->slate, sizeof(at->slate));
}

/* See agent_plan_int.h. */
void ap__use_prefetch(struct agent_turn *at)
{
    const struct tool_result *r = tool_call_result(at->prefetch);
    const char *name = at->c->prefetch_tool;
    size_t rl;
    const char *raw = tool_call_raw(at->prefetch, &rl);
    /* See agent_plan_int.h. */
    ap__record_tool(at, (size_t)-1, name, at->prefetch_args, strlen(at->prefetch_args), r, raw, rl);
    const struct agent *a = &at->c->orch->agents[at->agent];
    if (r->status != TOOL_OK || !orch_agent_has_tool(a, name) ||
        at->guess.type != QT_PRODUCT_SEARCH)
        return;
    struct llm_msg_tool_call *c = ap__own(at, xcalloc(1, sizeof(*c)));
    c->id = "call_prefetch";
    c->name = name;
    c->arguments = ap__keep(at, at->prefetch_args, strlen(at->prefetch_args));
    c->arguments_len = strlen(at->prefetch_args);
    /* See agent_plan_int.h. */
    ap__ex_add(
        at, (struct llm_message){
                .role = "assistant", .content = "", .len = 0, .tool_calls = c, .n_tool_calls = 1});
    const char *text = ap__keep(at, buf_begin(&r->text), buf_size(&r->text));
    /* See agent_plan_int.h. */
    ap__ex_add(at, (struct llm_message){.role = "tool",
                                        .content = text,
                                        .len = buf_size(&r->text),
                                        .tool_call_id = c->id,
                                        .tool_name = name});
    /* See agent_plan_int.h. */
    ap__add_slate(at, name, raw, rl);
    /* See agent_plan_int.h. */
    ap__send_slate(at);
}

static bool slate_names(const struct slate *s, const char *word)
{
    for (int i = 0; i < s->n; i++)
        if (strcasestr(s->items[i].title, word))
            return true;
    return false;
}

/* Which products of the previous slate the message refers to, into idx[0..4): none when it
 * asks for a new search instead. Returns how many. */
static size_t preload_picks(struct agent_turn *at, size_t idx[4])
{
    enum query_type qt = at->guess.type;
    const struct history_msg *h;
    size_t hn = turn_history(at->t, &h);
    struct slate_ref refs[SLATE_MAX];
    for (int i = 0; i < at->prev.n; i++)
        refs[i] = (struct slate_ref){at->prev.items[i].id, at->prev.items[i].title,
                                     at->prev.items[i].price_micros / 1000000};
    const char *text = h[hn - 1].text;
    size_t len = h[hn - 1].len, n = (size_t)at->prev.n;
    if (qt == QT_COMPARISON) {
        /* "compare the two cheapest laptops under 100000" after a search for headphones asks for
         * a new search, not for what was shown: a new budget, or a kind of product no shown
         * title names, goes to the agent's own tools */
        char kind[24];
        if (at->guess.slots.max_price >= 0 || at->guess.slots.min_price >= 0 ||
            (query_product_kind(text, len, kind, sizeof(kind)) && !slate_names(&at->prev, kind)))
            return 0;
        return context_pick_products(text, len, refs, n, idx, 4);
    }
    int pick = context_resolve_product(text, len, refs, n);
    if (pick < 0 && n == 1)
        pick = 0; /* "it": the one product the last answer was about */
    idx[0] = (size_t)pick;
    return pick >= 0 ? 1 : 0;
}

/* "can it be delivered to 560001?": the offer of the chosen product for that pincode too. */
static void preload_offer(struct agent_turn *at, const struct agent *a, size_t pick)
{
    const char *offers = "get_offers";
    const struct tool_def *od = tool_set_find(at->c->tools, offers, strlen(offers));
    if (!od || !orch_agent_has_tool(a, offers) || strchr(at->prev.items[pick].id, '"'))
        return;
    char args[200], err[160];
    snprintf(args, sizeof(args), "{\"id\":\"%s\",\"pincode\":\"%s\"}", at->prev.items[pick].id,
             at->guess.slots.pincode);
    if (tool_check_args(od, at->env.doc, args, strlen(args), err, sizeof(err)) == 0)
        at->calls[at->n_calls++] = (struct llm_msg_tool_call){
            "call_preload_offers", offers, ap__keep(at, args, strlen(args)), strlen(args)};
}

/* A follow-up about products shown before ("compare the two cheapest", "battery of the second
 * one"): the agent gets those products' details at once (get_product for each, all at once), as
 * if it had asked, instead of the whole earlier conversation. Returns true when tools started. */
static bool preload(struct agent_turn *at)
{
    const char *tool = "get_product";
    const struct agent *a = &at->c->orch->agents[at->agent];
    const struct tool_def *td = tool_set_find(at->c->tools, tool, strlen(tool));
    enum query_type qt = at->guess.type;
    if (!at->prev.n || !td || !orch_agent_has_tool(a, tool) ||
        (qt != QT_COMPARISON && qt != QT_PRODUCT_FACT))
        return false;
    size_t idx[4], k = preload_picks(at, idx);
    at->n_calls = 0;
    for (size_t i = 0; i < k; i++) {
        char args[160], id[40]; /* "call_preload_" and any size_t */
        struct buf b = {0};
        struct jsonw w;
        jw_init(&w, &b);
        jw_obj_begin(&w);
        jw_kstr(&w, "id", at->prev.items[idx[i]].id);
        jw_obj_end(&w);
        snprintf(args, sizeof(args), "%.*s", (int)buf_size(&b), buf_begin(&b));
        buf_free(&b);
        char err[160];
        if (tool_check_args(td, at->env.doc, args, strlen(args), err, sizeof(err)) < 0)
            return false; /* this API's product tool takes other arguments */
        snprintf(id, sizeof(id), "call_preload_%zu", i + 1);
        at->calls[at->n_calls++] = (struct llm_msg_tool_call){
            /* See agent_plan_int.h. */
            ap__keep(at, id, strlen(id)), tool, ap__keep(at, args, strlen(args)), strlen(args)};
    }
    if (qt == QT_PRODUCT_FACT && k == 1 && at->guess.slots.pincode[0])
        preload_offer(at, a, idx[0]);
    if (!at->n_calls)
        return false;
    /* See agent_plan_int.h. */
    ap__run_tools(at);
    return true;
}

/* Routed (and not answered by a cache): preload what a follow-up refers to, or the first step. */
void ap__answer(struct agent_turn *at)
{
    if (preload(at))
        return;
    /* See agent_plan_int.h. */
    ap__step_start(at);
}
