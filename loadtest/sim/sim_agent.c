/* sim_agent.c - the simulated models as agents in the commerce world (see sim_agent.h).
 *
 * One request is one step of an agent: read the turn (the last user text message, the tool
 * calls and tool results after it, in whichever of the three formats), then either call tools
 * (first step; a second step for a comparison or a pincode after a search) or answer from the
 * results. Everything is derived from the request and --seed, so a run is reproducible. */
#include "loadtest/sim/sim_agent.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/mem.h"
#include "loadtest/sim/sim_agent_int.h"
#include "loadtest/sim/sim_hash.h"
#include "loadtest/sim/sim_intent.h"
#include "loadtest/sim/sim_judge.h"
#include "stream/jsonw.h"

enum tool { T_SEARCH, T_PRODUCT, T_OFFERS, T_POLICY, T_ORDER, T_N };

static const char *const tool_names[T_N] = {"search_products", "get_product", "get_offers",
                                            "get_policy", "get_order"};

/* The tier of a model name; see the header. */
enum sim_tier sim_tier_of(const char *model)
{
    if (strstr(model, "judge"))
        return SIM_TIER_JUDGE;
    if (strstr(model, "classifier"))
        return SIM_TIER_CLASSIFIER;
    if (strstr(model, "frontier"))
        return SIM_TIER_FRONTIER;
    if (strstr(model, "cheap"))
        return SIM_TIER_CHEAP;
    return SIM_TIER_STANDARD;
}

/* The tier's timing; see the header. */
void sim_agent_tune_plan(const struct sim_req *r, const struct sim_opts *o, struct sim_plan *p)
{
    enum sim_tier t = sim_tier_of(r->model);
    if (r->d.ttft_ms < 0) {
        if (t == SIM_TIER_FRONTIER)
            p->ttft_ms *= 2;
        else if (t == SIM_TIER_CHEAP)
            p->ttft_ms /= 3;
        else if (t == SIM_TIER_CLASSIFIER)
            p->ttft_ms = o->classifier_ms;
    }
    if (r->d.tps < 0) {
        if (t == SIM_TIER_FRONTIER)
            p->gap_ms *= 2;
        else if (t == SIM_TIER_CHEAP)
            p->gap_ms /= 2;
        else if (t == SIM_TIER_CLASSIFIER)
            p->gap_ms = 0;
    }
}

static int offered(const struct sim_req *r, enum tool t)
{
    for (uint32_t i = 0; i < r->ntools; i++)
        if (strcmp(r->tools[i].name, tool_names[t]) == 0)
            return (int)i;
    return -1;
}

static int tool_index(const char *name)
{
    for (int t = 0; t < T_N; t++)
        if (strcmp(name, tool_names[t]) == 0)
            return t;
    return -1;
}

/* ---- the turn as the request shows it ---- */

struct turn {
    const struct sim_req *r;
    json_doc *doc, *aux;
    struct ag_results res;
    struct buf earlier; /* text of the user messages before the last one, newest first */
};

static const char *msg_list(enum sim_format f)
{
    return f == SIM_GEMINI ? "/contents" : "/messages";
}

/* Role of message i: 'u', 'a', 't' (OpenAI tool message). */
static char role(json_doc *d, enum sim_format f, size_t i)
{
    char p[64];
    const char *s;
    size_t n;
    snprintf(p, sizeof(p), "%s/%zu/role", msg_list(f), i);
    if (json_get_string(d, p, &s, &n) < 0)
        return f == SIM_GEMINI ? 'u' : '?';
    if (!strcmp(s, "assistant") || !strcmp(s, "model"))
        return 'a';
    if (!strcmp(s, "tool") || !strcmp(s, "function"))
        return 't';
    return !strcmp(s, "user") ? 'u' : '?';
}

/* The text parts of message i joined into out; false if it carries a tool result. */
static bool user_text(json_doc *d, enum sim_format f, size_t i, struct buf *out)
{
    char p[96];
    const char *s;
    size_t n, cnt = 0;
    bool tool = false;
    snprintf(p, sizeof(p), "%s/%zu/content", msg_list(f), i);
    if (f != SIM_GEMINI && json_get_string(d, p, &s, &n) == 0) {
        buf_append(out, s, n);
        return true;
    }
    snprintf(p, sizeof(p), "%s/%zu/%s", msg_list(f), i, f == SIM_GEMINI ? "parts" : "content");
    json_count(d, p, &cnt);
    for (size_t k = 0; k < cnt; k++) {
        char q[160];
        snprintf(q, sizeof(q), "%s/%zu/functionResponse", p, k);
        tool |= json_type_at(d, q) != JSON_MISSING;
        snprintf(q, sizeof(q), "%s/%zu/type", p, k);
        tool |= json_get_string(d, q, &s, &n) == 0 && !strcmp(s, "tool_result");
        snprintf(q, sizeof(q), "%s/%zu/text", p, k);
        if (json_get_string(d, q, &s, &n) == 0) {
            buf_append(out, s, n);
            buf_append(out, " ", 1);
        }
    }
    return !tool;
}

/* A tool result's text at ptr: a string, or the text blocks of an array, or raw JSON. */
static void result_at(struct turn *t, const char *ptr)
{
    const char *s;
    size_t n, cnt = 0;
    struct buf text = {0};
    if (json_get_string(t->doc, ptr, &s, &n) == 0) {
        buf_append(&text, s, n);
    } else if (json_type_at(t->doc, ptr) == JSON_ARRAY && json_count(t->doc, ptr, &cnt) == 0) {
        for (size_t k = 0; k < cnt; k++) {
            char q[160];
            snprintf(q, sizeof(q), "%s/%zu/text", ptr, k);
            if (json_get_string(t->doc, q, &s, &n) == 0)
                buf_append(&text, s, n);
        }
    } else if (json_get_raw(t->doc, ptr, &s, &n) == 0) {
        buf_append(&text, s, n);
    }
    if (buf_size(&text))
        ag_read_result(&t->res, t->aux, buf_begin(&text), buf_size(&text));
    else
        t->res.any = true;
    buf_free(&text);
}

static void count_call(struct turn *t, const char *name)
{
    int k = tool_index(name);
    if (k >= 0)
        t->res.ncalls_made[k]++;
}

/* Calls and results in message i (after the last user text). */
static void read_step(struct turn *t, size_t i, char rl)
{
    enum sim_format f = t->r->fmt;
    char p[96], q[160];
    const char *s;
    size_t n, cnt = 0;
    if (f == SIM_OPENAI && rl == 't') {
        snprintf(p, sizeof(p), "/messages/%zu/content", i);
        result_at(t, p);
        return;
    }
    if (f == SIM_OPENAI && rl == 'a') {
        snprintf(p, sizeof(p), "/messages/%zu/tool_calls", i);
        json_count(t->doc, p, &cnt);
        for (size_t k = 0; k < cnt; k++) {
            snprintf(q, sizeof(q), "%s/%zu/function/name", p, k);
            if (json_get_string(t->doc, q, &s, &n) == 0)
                count_call(t, s);
        }
        return;
    }
    snprintf(p, sizeof(p), "%s/%zu/%s", msg_list(f), i, f == SIM_GEMINI ? "parts" : "content");
    json_count(t->doc, p, &cnt);
    for (size_t k = 0; k < cnt; k++) {
        snprintf(q, sizeof(q), "%s/%zu/%s", p, k, f == SIM_GEMINI ? "functionCall/name" : "name");
        if (rl == 'a' && json_get_string(t->doc, q, &s, &n) == 0)
            count_call(t, s);
        snprintf(q, sizeof(q), "%s/%zu/%s", p, k,
                 f == SIM_GEMINI ? "functionResponse/response" : "content");
        char ty[160];
        snprintf(ty, sizeof(ty), "%s/%zu/type", p, k);
        if (f == SIM_GEMINI ? json_type_at(t->doc, q) != JSON_MISSING
                            : json_get_string(t->doc, ty, &s, &n) == 0 && !strcmp(s, "tool_result"))
            result_at(t, q);
    }
}

/* Find the last user text message, read the steps after it and the user texts before it.
 * Returns false if there is no user text message. */
static bool read_turn(struct turn *t)
{
    enum sim_format f = t->r->fmt;
    size_t n = 0;
    long last = -1;
    struct buf tmp = {0};
    json_count(t->doc, msg_list(f), &n);
    for (size_t i = n; i-- > 0 && last < 0;) {
        buf_reset(&tmp);
        if (role(t->doc, f, i) == 'u' && user_text(t->doc, f, i, &tmp))
            last = (long)i;
    }
    for (long i = last - 1; i >= 0; i--) {
        buf_reset(&tmp);
        if (role(t->doc, f, (size_t)i) == 'u' && user_text(t->doc, f, (size_t)i, &tmp)) {
            buf_append(&t->earlier, buf_begin(&tmp), buf_size(&tmp));
            buf_append(&t->earlier, "\n", 1);
        }
    }
    buf_free(&tmp);
    for (size_t i = (size_t)(last + 1); last >= 0 && i < n; i++)
        read_step(t, i, role(t->doc, f, i));
    return last >= 0;
}

/* A follow-up ("compare the two cheapest") takes the product slots of the earlier messages. */
static void inherit(struct sim_intent *it, const struct buf *earlier)
{
    if (it->category[0] || it->brand[0] || it->nids || !buf_size(earlier) ||
        it->type == SIM_Q_POLICY || it->type == SIM_Q_ORDER_STATUS)
        return;
    struct sim_intent prev;
    sim_intent_read(buf_begin(earlier), buf_size(earlier), &prev);
    snprintf(it->category, sizeof(it->category), "%s", prev.category);
    snprintf(it->brand, sizeof(it->brand), "%s", prev.brand);
    if (it->max_price < 0)
        it->max_price = prev.max_price;
    if (it->type == SIM_Q_OTHER && (prev.category[0] || prev.brand[0]))
        it->type = SIM_Q_PRODUCT_SEARCH;
    if (!it->query[0] || it->type == SIM_Q_COMPARISON)
        snprintf(it->query, sizeof(it->query), "%s", prev.query);
}

/* ---- tool calls ---- */

static bool key_is(const char *k, const char *const *names)
{
    for (; *names; names++)
        if (strcmp(k, *names) == 0)
            return true;
    return false;
}

/* Does the enum at ptr (if any) allow v? */
static bool enum_allows(json_doc *d, const char *ptr, const char *v)
{
    char p[SIM_PTR_MAX + 96];
    size_t n = 0;
    snprintf(p, sizeof(p), "%s/enum", ptr);
    if (json_count(d, p, &n) < 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        char q[SIM_PTR_MAX + 120];
        const char *s;
        size_t sn;
        snprintf(q, sizeof(q), "%s/%zu", p, i);
        if (json_get_string(d, q, &s, &sn) == 0 && strcmp(s, v) == 0)
            return true;
    }
    return false;
}

/* Write key: value, as the schema's type says (a number for integer / number). */
static void put(struct jsonw *w, json_doc *d, const char *ptr, const char *key, const char *v,
                bool numeric)
{
    char p[SIM_PTR_MAX + 96];
    const char *type = NULL;
    size_t n;
    if (ptr) {
        snprintf(p, sizeof(p), "%s/type", ptr);
        json_get_string(d, p, &type, &n);
        if (!enum_allows(d, ptr, v))
            return;
    }
    jw_key(w, key);
    if ((type && (!strcmp(type, "integer") || !strcmp(type, "number"))) || (!type && numeric))
        jw_raw(w, v, strlen(v));
    else
        jw_str(w, v);
}

struct call_args {
    const char *product_id; /* get_product / get_offers */
    int limit;
};

/* The value for property key of tool t, or NULL; *numeric for amounts. */
static const char *value_for(enum tool t, const char *key, const struct sim_intent *it,
                             const struct call_args *ca, char *tmp, size_t cap, bool *numeric)
{
    static const char *const q[] = {"q", "query", "search", "keywords", "text", "term", NULL};
    static const char *const maxp[] = {"max_price", "price_max", "budget", "max", NULL};
    static const char *const minp[] = {"min_price", "price_min", "min", NULL};
    static const char *const lim[] = {"limit", "top_k", "max_results", "count", "k", NULL};
    static const char *const pin[] = {"pincode", "pin", "pin_code", "zip", "postal_code", NULL};
    static const char *const pid[] = {"product_id", "id", "sku", "product", NULL};
    static const char *const oid[] = {"order_id", "id", "order", "order_number", NULL};
    static const char *const top[] = {"topic", "policy", "name", "policy_topic", NULL};
    *numeric = false;
    if (t == T_SEARCH) {
        if (key_is(key, q))
            return it->query[0] ? it->query : it->category; /* "" = everything */
        if (!strcmp(key, "category"))
            return it->category[0] ? it->category : NULL;
        if (!strcmp(key, "brand"))
            return it->brand[0] ? it->brand : NULL;
        if (!strncmp(key, "sort", 4))
            return it->sort[0] ? it->sort : NULL;
        *numeric = true;
        if (key_is(key, maxp) && it->max_price >= 0)
            return snprintf(tmp, cap, "%lld", (long long)it->max_price), tmp;
        if (key_is(key, minp) && it->min_price >= 0)
            return snprintf(tmp, cap, "%lld", (long long)it->min_price), tmp;
        if (key_is(key, lim))
            return snprintf(tmp, cap, "%d", ca->limit), tmp;
        return NULL;
    }
    if ((t == T_PRODUCT || t == T_OFFERS) && key_is(key, pid))
        return ca->product_id;
    if (t == T_OFFERS && key_is(key, pin))
        return it->pincode[0] ? it->pincode : NULL;
    if (t == T_ORDER && key_is(key, oid))
        return it->order_id;
    if (t == T_POLICY && key_is(key, top))
        return it->topic;
    return NULL;
}

/* Emit a call of tool t with arguments from the schema's properties (or the canonical names
 * when it declares none). */
static void call(struct sim_answer *a, const struct sim_req *r, json_doc *d, enum tool t,
                 const struct sim_intent *it, const struct call_args *ca)
{
    static const char *const canon[T_N][7] = {
        {"query", "category", "brand", "min_price", "max_price", "sort", "limit"},
        {"product_id"},
        {"product_id", "pincode"},
        {"topic"},
        {"order_id"}};
    const struct sim_tool *tool = &r->tools[offered(r, t)];
    struct buf args = {0};
    struct jsonw w;
    size_t n = 0;
    char tmp[32], key[65], ptr[SIM_PTR_MAX + 80];
    bool numeric;
    jw_init(&w, &args);
    jw_obj_begin(&w);
    bool schema = tool->props[0] && json_count(d, tool->props, &n) == 0 && n > 0;
    for (size_t i = 0; schema ? i < n && i < 16 : i < 7 && canon[t][i]; i++) {
        const char *k = i < 7 ? canon[t][i] : NULL, *v; /* a schema may have more than 7 */
        size_t kn = k ? strlen(k) : 0;
        if (schema &&
            (json_key_at(d, tool->props, i, &k, &kn) < 0 || kn >= sizeof(key) || strpbrk(k, "~/")))
            continue;
        memcpy(key, k, kn);
        key[kn] = '\0';
        snprintf(ptr, sizeof(ptr), "%s/%s", tool->props, key);
        if ((v = value_for(t, key, it, ca, tmp, sizeof(tmp), &numeric)))
            put(&w, d, schema ? ptr : NULL, key, v, numeric);
    }
    jw_obj_end(&w);
    sim_answer_call(a, r, tool_names[t], buf_begin(&args), buf_size(&args));
    buf_free(&args);
}

/* First step: the calls the message asks for. Returns how many were emitted. */
static int first_calls(struct sim_answer *a, const struct sim_req *r, json_doc *d,
                       const struct sim_intent *it)
{
    struct call_args ca = {.limit = it->type == SIM_Q_COMPARISON ? 2 : 5};
    if (it->type == SIM_Q_ORDER_STATUS && it->order_id[0] && offered(r, T_ORDER) >= 0) {
        call(a, r, d, T_ORDER, it, &ca);
    } else if (it->type == SIM_Q_POLICY && offered(r, T_POLICY) >= 0) {
        call(a, r, d, T_POLICY, it, &ca);
    } else if (it->nids && (offered(r, T_PRODUCT) >= 0 || offered(r, T_OFFERS) >= 0)) {
        for (int i = 0; i < it->nids; i++) {
            ca.product_id = it->ids[i];
            bool offers = it->pincode[0] && offered(r, T_OFFERS) >= 0;
            if (offers)
                call(a, r, d, T_OFFERS, it, &ca);
            if ((!offers || it->spec[0]) && offered(r, T_PRODUCT) >= 0)
                call(a, r, d, T_PRODUCT, it, &ca);
        }
    } else if (it->type <= SIM_Q_COMPARISON && offered(r, T_SEARCH) >= 0) {
        call(a, r, d, T_SEARCH, it, &ca);
    }
    return a->ncalls;
}

/* Second step after a search: details of the two to compare, or offers at the pincode. */
static int second_calls(struct sim_answer *a, const struct sim_req *r, json_doc *d,
                        const struct sim_intent *it, const struct ag_results *res)
{
    struct call_args ca = {.limit = 5};
    if (!res->searched || res->nfound == 0 || res->ndetail || res->offer || res->error)
        return 0;
    if (it->type == SIM_Q_COMPARISON && res->nfound >= 2 && offered(r, T_PRODUCT) >= 0 &&
        !res->ncalls_made[T_PRODUCT]) {
        for (int i = 0; i < 2; i++) {
            ca.product_id = res->found[i].id;
            if (ca.product_id[0])
                call(a, r, d, T_PRODUCT, it, &ca);
        }
    } else if (it->pincode[0] && offered(r, T_OFFERS) >= 0 && !res->ncalls_made[T_OFFERS] &&
               res->found[0].id[0]) {
        ca.product_id = res->found[0].id;
        call(a, r, d, T_OFFERS, it, &ca);
    }
    return a->ncalls;
}

/* ---- mistakes and the classifier ---- */

/* A system prompt that asks for prose instead of tables (any tier follows it). */
static bool prose_asked(const struct sim_req *r)
{
    static const char *const asks[] = {"no tables",       "without tables",   "without a table",
                                       "in prose",        "not use tables",   "never use tables",
                                       "not use a table", "never use a table"};
    const char *s = buf_begin(&r->system_text);
    size_t n = buf_size(&r->system_text);
    for (size_t a = 0; a < sizeof(asks) / sizeof(asks[0]); a++) {
        size_t k = strlen(asks[a]);
        for (size_t i = 0; i + k <= n; i++)
            if (strncasecmp(s + i, asks[a], k) == 0)
                return true;
    }
    return false;
}

static enum ag_mistake mistake_of(const struct sim_req *r, const struct sim_opts *o,
                                  const struct sim_intent *it)
{
    enum sim_tier t = sim_tier_of(r->model);
    const char *txt = buf_begin(&r->last_text);
    const char *dir = memmem(txt, buf_size(&r->last_text), "[[sim:mistake=", 14);
    if (it->type == SIM_Q_COMPARISON && prose_asked(r))
        return AG_NO_TABLE; /* not a mistake: what the prompt asked for */
    if (t == SIM_TIER_FRONTIER)
        return AG_OK;
    if (dir) {
        dir += 14;
        if (!strncmp(dir, "wrong_product]]", 15))
            return AG_WRONG_PRODUCT;
        if (!strncmp(dir, "wrong_number]]", 14))
            return AG_WRONG_NUMBER;
        if (!strncmp(dir, "no_table]]", 10))
            return AG_NO_TABLE;
    }
    if (t != SIM_TIER_CHEAP || o->cheap_mistake_rate <= 0)
        return AG_OK;
    uint64_t s = sim_hash_u64(r->conv_hash, o->seed ^ 0x6d157a4eull);
    if (sim_rng_unit(&s) >= o->cheap_mistake_rate)
        return AG_OK;
    uint64_t k = sim_rng_next(&s) % 2;
    if (it->type == SIM_Q_COMPARISON)
        return k ? AG_NO_TABLE : AG_WRONG_NUMBER;
    return k ? AG_WRONG_PRODUCT : AG_WRONG_NUMBER;
}

static bool wants_json(const struct sim_req *r, json_doc *d)
{
    const char *s;
    size_t n;
    if (sim_tier_of(r->model) == SIM_TIER_CLASSIFIER)
        return true;
    if (r->fmt == SIM_OPENAI && json_get_string(d, "/response_format/type", &s, &n) == 0)
        return !strcmp(s, "json_schema") || !strcmp(s, "json_object");
    return r->fmt == SIM_GEMINI &&
           json_get_string(d, "/generationConfig/responseMimeType", &s, &n) == 0 &&
           !strcmp(s, "application/json");
}

static void classify(struct buf *out, const struct sim_req *r, const struct sim_opts *o,
                     struct sim_intent *it)
{
    uint64_t s = sim_hash_u64(r->conv_hash, o->seed ^ 0xc1a55ull);
    double conf = it->confidence + 0.04 * sim_rng_unit(&s);
    enum sim_qtype type = it->type;
    if (o->classifier_error_rate > 0 && sim_rng_unit(&s) < o->classifier_error_rate) {
        type = (enum sim_qtype)((type + 1 + sim_rng_next(&s) % (SIM_NQTYPES - 1)) % SIM_NQTYPES);
        conf = 0.40 + 0.29 * sim_rng_unit(&s);
    }
    struct jsonw w;
    char c[16];
    jw_init(&w, out);
    jw_obj_begin(&w);
    jw_kstr(&w, "query_type", sim_qtype_name(type));
    snprintf(c, sizeof(c), "%.2f", conf > 0.99 ? 0.99 : conf);
    jw_key(&w, "confidence");
    jw_raw(&w, c, strlen(c));
    jw_kstr(&w, "query", it->query);
    jw_obj_end(&w);
}

/* A commerce tier with no tools on offer (an orchestrator's general agent) and no directive
 * shaping the answer: it talks like a shop assistant instead of writing filler. */
static bool chat_model(const struct sim_req *r)
{
    enum sim_tier t = sim_tier_of(r->model);
    return (t == SIM_TIER_CHEAP || t == SIM_TIER_FRONTIER) && r->ntools == 0 && !r->d.echo &&
           r->d.ntool == 0 && r->d.tokens < 0;
}

static bool commerce_tools(const struct sim_req *r)
{
    for (int t = 0; t < T_N; t++)
        if (offered(r, (enum tool)t) >= 0)
            return true;
    return false;
}

/* Build the agent's answer; see the header. */
bool sim_agent_answer(struct sim_answer *a, const struct sim_req *r, json_doc *doc, json_doc *aux,
                      const struct sim_opts *o)
{
    struct sim_intent it;
    struct buf text = {0};
    if (sim_tier_of(r->model) == SIM_TIER_JUDGE) { /* scores an eval's answer, whatever else */
        memset(a, 0, sizeof(*a));
        sim_judge_answer(&text, buf_begin(&r->last_text), buf_size(&r->last_text));
        sim_answer_text(a, buf_begin(&text), buf_size(&text), r->max_tokens);
        buf_free(&text);
        return true;
    }
    bool json = wants_json(r, doc), chat = !json && chat_model(r), done = false;
    if (!json && !chat && (!commerce_tools(r) || r->d.ntool > 0 || r->d.echo || r->forced_tool[0]))
        return false; /* a tool named by tool_choice: the generic rules call it */
    struct turn *t = xcalloc(1, sizeof(*t)); /* the results are large for a stack */
    *t = (struct turn){.r = r, .doc = doc, .aux = aux};
    sim_intent_read(buf_begin(&r->echo_text), buf_size(&r->echo_text), &it);
    if (!read_turn(t))
        goto out;
    bool shop = it.type < SIM_Q_CHITCHAT; /* before a follow-up takes earlier slots */
    inherit(&it, &t->earlier);
    memset(a, 0, sizeof(*a));
    if (json) {
        classify(&text, r, o, &it);
    } else if (!t->res.any) {
        if (r->tool_choice >= 0 && first_calls(a, r, doc, &it) > 0)
            done = true;
    } else if (r->tool_choice >= 0 && second_calls(a, r, doc, &it, &t->res) > 0) {
        done = true;
    } else if (t->res.error || t->res.searched || t->res.ndetail || t->res.offer || t->res.policy ||
               t->res.order) {
        ag_reply(&text, &it, &t->res, mistake_of(r, o, &it));
    }
    if (chat && !done && !buf_size(&text))
        ag_chat_reply(&text, buf_begin(&r->echo_text), buf_size(&r->echo_text), shop,
                      sim_hash_u64(r->conv_hash, o->seed ^ 0xc4a77a1cull));
    if (!done && buf_size(&text)) {
        sim_answer_text(a, buf_begin(&text), buf_size(&text), r->max_tokens);
        done = true;
    }
    if (!done)
        sim_answer_free(a);
out:
    buf_free(&text);
    buf_free(&t->earlier);
    xfree(t);
    return done;
}
