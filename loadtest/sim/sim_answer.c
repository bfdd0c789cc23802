/* sim_answer.c - deterministic answers: words from a shopping-assistant vocabulary picked by a
 * PRNG seeded with the conversation hash, echoes of the user's text, tool calls whose JSON
 * arguments follow the offered tool's schema, and the fragmentation of those arguments.
 *
 * The vocabulary deliberately carries multi-byte UTF-8 (₹, é, ï, emoji), quotes, a backslash,
 * '&' and '<' so that every escaping and UTF-8 path between here and a browser is exercised by
 * ordinary answers, not only by special tests. */
#include "loadtest/sim/sim_answer.h"

#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "loadtest/sim/sim_hash.h"
#include "stream/jsonw.h"

static const char *const vocab[] = {
    "shoes",      "running",     "trail",    "cushioned", "lightweight", "breathable",
    "sizes",      "available",   "price",    "₹2,499",    "₹1,299",      "₹799",
    "discount",   "free",        "delivery", "returns",   "within",      "7",
    "days",       "café",        "naïve",    "👟",         "\"best\"",    "it's",
    "colour",     "black",       "white",    "navy",      "for",         "the",
    "a",          "and",         "with",     "your",      "this",        "pair",
    "is",         "are",         "great",    "under",     "budget",      "comfort",
    "support",    "arch",        "wide",     "fit",       "men's",       "women's",
    "kids'",      "sale",        "offer",    "today",     "order",       "cart",
    "add",        "checkout",    "in",       "stock",     "rated",       "4.5★",
    "reviews",    "customers",   "love",     "durable",   "sole",        "grip",
    "waterproof", "jacket",      "backpack", "30L",       "bottle",      "socks",
    "cotton",     "pack",        "of",       "3",         "I",           "recommend",
    "also",       "compare",     "similar",  "options",   "brand",       "Décathlon",
    "über-light", "\"comfy\"",   "(size",    "9)",        "—",           "50%",
    "off",        "&",           "more",     "<new>",     "\\o/",        "Bengaluru",
    "Mumbai",     "São",         "Paulo",    "straße",    "ñandú",       "日本",
    "mesh",       "upper",       "foam",     "midsole",   "heel",        "drop",
    "8mm",        "weighs",      "just",     "240g",      "ideal",       "daily",
    "runs",       "gym",         "walking",  "hiking",    "rainy",       "season",
    "EMI",        "available,",  "COD",      "exchange",  "easy",        "fast",
    "dispatch",   "you",         "might",    "like",      "these",       "top",
    "picks:",     "best-seller", "new",      "arrival",   "limited",     "edition",
    "✓",          "tested",      "by",       "experts",   "on",          "our",
    "app",
};
enum { NVOCAB = sizeof(vocab) / sizeof(vocab[0]) };

static void push_step(struct sim_answer *a, uint8_t kind, uint8_t call, size_t off, size_t len)
{
    if (a->nsteps == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->steps = xrealloc(a->steps, a->cap * sizeof(*a->steps));
    }
    a->steps[a->nsteps++] = (struct sim_step){kind, call, (uint32_t)off, (uint32_t)len};
}

/* n words in sentences of 5..14 words, a paragraph break every third sentence; each token is
 * the word with the whitespace after it (the last one has none). */
static void gen_words(struct sim_answer *a, uint64_t seed, uint32_t n)
{
    uint64_t s = seed;
    uint32_t in_sentence = 0, sentences = 0;
    uint32_t sentence_len = 5 + (uint32_t)(sim_rng_next(&s) % 10);
    for (uint32_t i = 0; i < n; i++) {
        size_t start = buf_size(&a->text);
        buf_append_str(&a->text, vocab[sim_rng_next(&s) % NVOCAB]);
        bool last = i + 1 == n;
        const char *sep = " ";
        if (++in_sentence == sentence_len || last) {
            uint64_t p = sim_rng_next(&s) % 8;
            buf_append_str(&a->text, p == 0 ? "!" : p == 1 ? "?" : ".");
            in_sentence = 0;
            sentence_len = 5 + (uint32_t)(sim_rng_next(&s) % 10);
            sep = ++sentences % 3 == 0 ? "\n\n" : " ";
        }
        if (!last)
            buf_append_str(&a->text, sep);
        push_step(a, SIM_STEP_TEXT, 0, start, buf_size(&a->text) - start);
    }
    a->text_tokens = n;
}

static bool ws(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* The echo: the text itself, one token per word with its trailing whitespace (leading
 * whitespace goes with the first word), at most max tokens. */
static void gen_echo(struct sim_answer *a, const char *s, size_t n, int64_t max)
{
    buf_append(&a->text, s, n);
    size_t i = 0;
    while (i < n && (max < 0 || a->text_tokens < max)) {
        size_t start = i;
        while (i < n && ws(s[i]))
            i++;
        while (i < n && !ws(s[i]))
            i++;
        while (i < n && ws(s[i]))
            i++;
        push_step(a, SIM_STEP_TEXT, 0, start, i - start);
        a->text_tokens++;
    }
    if (i < n) {
        a->finish = SIM_FIN_LENGTH;
        a->text.len = a->text.off + i; /* the text is exactly what the steps cover */
    }
}

/* ---- tool calls ---- */

static bool mentions_search(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && ws(s[i]))
            i++;
        size_t st = i;
        while (i < n && !ws(s[i]))
            i++;
        char w[8];
        size_t k = 0;
        for (size_t j = st; j < i && k < sizeof(w) - 1; j++)
            if ((s[j] | 0x20) >= 'a' && (s[j] | 0x20) <= 'z')
                w[k++] = (char)(s[j] | 0x20);
            else if (k)
                break;
        w[k] = '\0';
        if (strcmp(w, "search") == 0 || strcmp(w, "find") == 0)
            return true;
    }
    return false;
}

static int find_tool(const struct sim_req *r, const char *name)
{
    for (uint32_t i = 0; i < r->ntools; i++)
        if (strcmp(r->tools[i].name, name) == 0)
            return (int)i;
    return 0;
}

/* Which tools to call (indexes into r->tools), or 0 calls. */
static int pick_calls(const struct sim_req *r, int *which)
{
    if (!r->ntools || r->tool_choice < 0)
        return 0;
    if (r->last_is_user_text && r->d.ntool > 0) {
        for (int i = 0; i < r->d.ntool; i++)
            which[i] = find_tool(r, r->d.tool[i]);
        return r->d.ntool;
    }
    if (r->tool_choice > 0) {
        which[0] = find_tool(r, r->forced_tool);
        return 1;
    }
    if (r->last_is_user_text &&
        mentions_search(buf_begin(&r->echo_text), buf_size(&r->echo_text))) {
        which[0] = 0;
        return 1;
    }
    return 0;
}

/* The user's words (up to six, directives removed) as the search query of a tool call. */
static void write_query(struct jsonw *w, const struct sim_req *r)
{
    const char *s = buf_begin(&r->echo_text);
    size_t n = buf_size(&r->echo_text), i = 0;
    struct buf q = {0};
    for (int words = 0; i < n && words < 6; words++) {
        while (i < n && ws(s[i]))
            i++;
        size_t st = i;
        while (i < n && !ws(s[i]))
            i++;
        if (i > st) {
            if (buf_size(&q))
                buf_append(&q, " ", 1);
            buf_append(&q, s + st, i - st);
        }
    }
    if (buf_size(&q))
        jw_strn(w, buf_begin(&q), buf_size(&q));
    else
        jw_str(w, "running shoes");
    buf_free(&q);
}

static bool key_has(const char *k, const char *const *subs)
{
    for (; *subs; subs++)
        if (strstr(k, *subs))
            return true;
    return false;
}

/* One argument value for property `key` whose schema is at ptr. */
static void write_value(struct jsonw *w, const struct sim_req *r, json_doc *d, const char *ptr,
                        const char *key, uint64_t *s)
{
    static const char *const query_keys[] = {"query", "search", "keyword", "text", "term", NULL};
    static const char *const price_keys[] = {"price", "max", "budget", "limit", NULL};
    char p[SIM_PTR_MAX + 160];
    const char *type = NULL, *raw;
    size_t n;
    snprintf(p, sizeof(p), "%s/enum/0", ptr);
    if (json_get_raw(d, p, &raw, &n) == 0) {
        jw_raw(w, raw, n);
        return;
    }
    snprintf(p, sizeof(p), "%s/type", ptr);
    json_get_string(d, p, &type, &n);
    if (!type || strcmp(type, "string") == 0) {
        if (key_has(key, query_keys) || strcmp(key, "q") == 0)
            write_query(w, r);
        else
            jw_str(w, vocab[sim_rng_next(s) % NVOCAB]);
    } else if (strcmp(type, "integer") == 0 || strcmp(type, "number") == 0) {
        jw_int(w, key_has(key, price_keys) ? (int64_t)(10 + sim_rng_next(s) % 50) * 100
                                           : (int64_t)(1 + sim_rng_next(s) % 10));
    } else if (strcmp(type, "boolean") == 0) {
        jw_bool(w, sim_rng_next(s) % 2);
    } else if (strcmp(type, "array") == 0) {
        jw_arr_begin(w);
        write_query(w, r);
        jw_arr_end(w);
    } else if (strcmp(type, "null") == 0) {
        jw_null(w);
    } else {
        jw_obj_begin(w);
        jw_obj_end(w);
    }
}

/* JSON arguments for a call of tool t, following its parameter schema when it has one. */
static void gen_args(struct sim_call *c, const struct sim_req *r, json_doc *d,
                     const struct sim_tool *t, uint64_t *s)
{
    struct jsonw w;
    size_t n = 0;
    jw_init(&w, &c->args);
    jw_obj_begin(&w);
    if (!t->props[0] || json_count(d, t->props, &n) < 0 || n == 0) {
        jw_key(&w, "query");
        write_query(&w, r);
    }
    for (size_t i = 0; i < n && i < 16; i++) {
        const char *k;
        size_t kn;
        char ptr[SIM_PTR_MAX + 80];
        if (json_key_at(d, t->props, i, &k, &kn) < 0 || strlen(k) != kn || kn > 64 ||
            strpbrk(k, "~/"))
            continue; /* odd property names: not worth escaping into a pointer */
        snprintf(ptr, sizeof(ptr), "%s/%s", t->props, k);
        char key[65];
        memcpy(key, k, kn + 1); /* k lives in the doc's arena, which later lookups extend */
        jw_key(&w, key);
        write_value(&w, r, d, ptr, key, s);
    }
    jw_obj_end(&w);
}

/* An id; see the header. */
void sim_make_id(char *out, size_t cap, const char *prefix, size_t nchars, uint64_t seed)
{
    static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    size_t p = (size_t)snprintf(out, cap, "%s", prefix);
    for (size_t i = 0; i < nchars && p + 1 < cap; i++)
        out[p++] = b62[sim_rng_next(&seed) % 62];
    out[p] = '\0';
}

/* Give call ci its id (drawn from id_seed) and cut its arguments into fragments (steps) drawn
 * from *s. */
static void split_call(struct sim_answer *a, const struct sim_req *r, int ci, uint64_t id_seed,
                       uint64_t *sp)
{
    struct sim_call *c = &a->calls[ci];
    uint64_t s = *sp;
    if (r->fmt == SIM_OPENAI)
        sim_make_id(c->id, sizeof(c->id), "call_", 24, id_seed);
    else if (r->fmt == SIM_ANTHROPIC)
        sim_make_id(c->id, sizeof(c->id), "toolu_01", 22, id_seed);
    push_step(a, SIM_STEP_TOOL_START, (uint8_t)ci, 0, 0);
    const char *p = buf_begin(&c->args);
    size_t len = buf_size(&c->args), off = 0;
    while (off < len) {
        size_t end = off + 3 + (size_t)(sim_rng_next(&s) % 10);
        if (end > len)
            end = len;
        while (end < len && ((unsigned char)p[end] & 0xC0) == 0x80)
            end++; /* never split a UTF-8 sequence: each fragment is a valid JSON string */
        if (r->fmt != SIM_GEMINI)
            push_step(a, SIM_STEP_TOOL_ARG, (uint8_t)ci, off, end - off);
        c->pieces++;
        off = end;
    }
    a->tool_tokens += c->pieces;
    *sp = s;
}

/* Add call number ci for tool t: its id, arguments, and fragments as steps. */
static void add_call(struct sim_answer *a, const struct sim_req *r, json_doc *d,
                     const struct sim_tool *t, int ci)
{
    struct sim_call *c = &a->calls[ci];
    uint64_t s = r->conv_hash ^ (0x7001ull * (uint64_t)(ci + 1));
    snprintf(c->name, sizeof(c->name), "%s", t->name);
    uint64_t id_seed = s;
    gen_args(c, r, d, t, &s);
    split_call(a, r, ci, id_seed, &s);
}

/* Append a tool call with these arguments; see the header. */
void sim_answer_call(struct sim_answer *a, const struct sim_req *r, const char *name,
                     const char *args, size_t len)
{
    if (a->ncalls >= SIM_MAX_CALLS)
        return;
    int ci = a->ncalls++;
    struct sim_call *c = &a->calls[ci];
    snprintf(c->name, sizeof(c->name), "%s", name);
    buf_append(&c->args, args, len);
    uint64_t s = r->conv_hash ^ (0x7001ull * (uint64_t)(ci + 1));
    split_call(a, r, ci, s, &s);
    a->finish = SIM_FIN_TOOL;
}

/* Append text, one token per word; see the header. */
void sim_answer_text(struct sim_answer *a, const char *s, size_t n, int64_t max_tokens)
{
    gen_echo(a, s, n, max_tokens);
}

/* Build the answer; see the header. */
void sim_answer_build(struct sim_answer *a, const struct sim_req *r, json_doc *doc,
                      uint32_t default_tokens)
{
    memset(a, 0, sizeof(*a));
    int which[SIM_MAX_CALLS];
    int ncalls = pick_calls(r, which);
    if (r->d.reasoning > 0) {
        uint64_t s = r->conv_hash ^ 0x7415ull;
        a->reasoning = r->d.reasoning < SIM_MAX_ANSWER_TOKENS ? (uint32_t)r->d.reasoning
                                                              : SIM_MAX_ANSWER_TOKENS;
        for (uint32_t i = 0; i < a->reasoning; i++) {
            buf_append_str(&a->thinking, vocab[sim_rng_next(&s) % NVOCAB]);
            buf_append(&a->thinking, " ", 1);
        }
    }
    if (ncalls) {
        for (int i = 0; i < ncalls; i++)
            add_call(a, r, doc, &r->tools[which[i]], i);
        a->ncalls = ncalls;
        a->finish = SIM_FIN_TOOL;
        return;
    }
    if (r->d.echo) {
        gen_echo(a, buf_begin(&r->echo_text), buf_size(&r->echo_text), r->max_tokens);
        return;
    }
    uint64_t n = r->d.tokens >= 0 ? (uint64_t)r->d.tokens : default_tokens;
    if (n > SIM_MAX_ANSWER_TOKENS)
        n = SIM_MAX_ANSWER_TOKENS;
    if (r->max_tokens >= 0 && n > (uint64_t)r->max_tokens) {
        n = (uint64_t)r->max_tokens;
        a->finish = SIM_FIN_LENGTH;
    }
    gen_words(a, r->conv_hash, (uint32_t)n);
}

/* Free the answer's memory. */
void sim_answer_free(struct sim_answer *a)
{
    buf_free(&a->text);
    buf_free(&a->thinking);
    for (int i = 0; i < SIM_MAX_CALLS; i++)
        buf_free(&a->calls[i].args);
    xfree(a->steps);
    a->steps = NULL;
}
