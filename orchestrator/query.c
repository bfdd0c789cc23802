/* query.c - query types and the rule-based classifier (see query.h).
 *
 * The rules read a lowercase word list of the message (at most QW_MAX words of the first
 * QT_TEXT_MAX bytes) and decide by priority: an order number with order words, a comparison,
 * a policy topic, small talk, a search (intent words or a budget), a question about a product's
 * fact. Known weakness: English only, and a message mixing intents ("return this and find me
 * another") gets the first intent in that order; the classifier route handles those. */
#include "orchestrator/query.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/utf8.h"
#include "stream/json.h"

#define QT_TEXT_MAX 2048
#define QW_MAX 96

static const char *const type_names[QT__COUNT] = {
    "product_search", "product_fact", "comparison", "policy", "order_status", "chitchat", "other",
};

const char *query_type_name(enum query_type t)
{
    return (unsigned)t < QT__COUNT ? type_names[t] : "?";
}

int query_type_from_name(const char *name, size_t len)
{
    for (int i = 0; i < QT__COUNT; i++)
        if (strlen(type_names[i]) == len && memcmp(type_names[i], name, len) == 0)
            return i;
    return -1;
}

/* ---- words ---- */

struct word {
    const char *p;
    size_t n;
    bool num;    /* digits, optionally with ',' '.' '-' between digits and a k suffix */
    bool price;  /* preceded by a currency mark */
    int64_t val; /* the number's value (k = thousand), -1 when not a number */
    bool hyphen; /* a number with '-' inside (order-number shape) */
};

struct words {
    char buf[QT_TEXT_MAX + 1];
    struct word w[QW_MAX];
    int n;
};

static bool is_sep_in_number(const char *s, size_t i, size_t n)
{
    return (s[i] == ',' || s[i] == '.' || s[i] == '-') && i > 0 && i + 1 < n &&
           isdigit((unsigned char)s[i - 1]) && isdigit((unsigned char)s[i + 1]);
}

static int64_t number_value(const char *p, size_t n)
{
    int64_t v = 0, frac = 0, scale = 1;
    bool dot = false;
    size_t i = 0;
    for (; i < n && (isdigit((unsigned char)p[i]) || p[i] == ',' || p[i] == '.'); i++) {
        if (p[i] == ',')
            continue;
        if (p[i] == '.') {
            dot = true;
            continue;
        }
        if (v > (INT64_MAX / 1000 - 9) / 10)
            return -1;
        if (dot) {
            if (scale < 1000) {
                frac = frac * 10 + (p[i] - '0');
                scale *= 10;
            }
        } else {
            v = v * 10 + (p[i] - '0');
        }
    }
    if (i < n && p[i] == 'k' && i + 1 == n)
        return v * 1000 + frac * 1000 / scale;
    return i == n ? v : -1;
}

/* Lowercase words; a rupee sign, "rs" or "inr" marks the next number as a price. */
static void split_words(const char *text, size_t len, struct words *ws)
{
    if (len > QT_TEXT_MAX)
        len = QT_TEXT_MAX;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == 0xE2 && i + 2 < len && (unsigned char)text[i + 1] == 0x82 &&
            (unsigned char)text[i + 2] == 0xB9) { /* U+20B9 INDIAN RUPEE SIGN */
            ws->buf[o++] = '$';
            i += 2;
        } else if (isalnum(c) || c == '#' || is_sep_in_number(text, i, len)) {
            ws->buf[o++] = (char)tolower(c);
        } else if (c == '\'') {
            continue; /* "what's" -> "whats", "i'm" -> "im" */
        } else {
            ws->buf[o++] = ' ';
        }
    }
    ws->buf[o] = '\0';
    ws->n = 0;
    bool price_next = false;
    for (char *p = ws->buf; *p && ws->n < QW_MAX;) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        char *s = p;
        while (*p && *p != ' ' && *p != '$')
            p++;
        if (s == p) { /* a lone rupee sign */
            price_next = true;
            p++;
            continue;
        }
        struct word *w = &ws->w[ws->n];
        if (*s == '#')
            s++;
        w->p = s;
        w->n = (size_t)(p - s);
        if (w->n > 2 && (memcmp(s, "rs", 2) == 0) && isdigit((unsigned char)s[2])) {
            w->p += 2; /* "rs20000" */
            w->n -= 2;
            price_next = true;
        }
        w->hyphen = memchr(w->p, '-', w->n) != NULL;
        w->val =
            w->n && isdigit((unsigned char)w->p[0]) && !w->hyphen ? number_value(w->p, w->n) : -1;
        w->num = isdigit((unsigned char)w->p[0]) && (w->val >= 0 || w->hyphen);
        w->price = price_next && w->num;
        price_next =
            (w->n == 2 && memcmp(w->p, "rs", 2) == 0) || (w->n == 3 && memcmp(w->p, "inr", 3) == 0);
        if (!price_next)
            ws->n++;
        if (*p == '$') {
            price_next = true;
            p++;
        }
    }
}

static bool weq(const struct word *w, const char *s)
{
    size_t n = strlen(s);
    return w->n == n && memcmp(w->p, s, n) == 0;
}

static bool in_list(const struct word *w, const char *const *list)
{
    for (; *list; list++)
        if (weq(w, *list))
            return true;
    return false;
}

static int find_any(const struct words *ws, const char *const *list)
{
    for (int i = 0; i < ws->n; i++)
        if (in_list(&ws->w[i], list))
            return i;
    return -1;
}

/* Two consecutive words, e.g. "less than". */
static int find_pair(const struct words *ws, const char *a, const char *b)
{
    for (int i = 0; i + 1 < ws->n; i++)
        if (weq(&ws->w[i], a) && weq(&ws->w[i + 1], b))
            return i;
    return -1;
}

/* ---- slots ---- */

static const char *const max_cues[] = {"under",  "below",   "within", "upto",   "max",    "maximum",
                                       "budget", "cheaper", "less",   "lesser", "around", NULL};
static const char *const min_cues[] = {"above", "over",  "min",      "minimum",
                                       "more",  "least", "starting", NULL};

/* A number after a price cue within two words ("under rs 20000", "less than 20k"). */
static int64_t price_after(const struct words *ws, int i, bool *used)
{
    for (int j = i + 1; j < ws->n && j <= i + 3; j++) {
        const struct word *w = &ws->w[j];
        if (w->num && w->val >= 0) {
            used[j] = true;
            int64_t v = w->val;
            if (j + 1 < ws->n && (weq(&ws->w[j + 1], "lakh") || weq(&ws->w[j + 1], "lakhs")))
                v *= 100000;
            return v;
        }
    }
    return -1;
}

static void order_and_pincode(const struct words *ws, const bool *used, struct query_slots *s)
{
    static const char *const pin_cues[] = {"pincode",   "pin",  "deliver",  "delivery",
                                           "delivered", "ship", "shipping", "zip",
                                           "to",        NULL};
    bool pin_ok = find_any(ws, pin_cues) >= 0;
    for (int i = 0; i < ws->n; i++) {
        const struct word *w = &ws->w[i];
        if (!w->num || used[i] || w->price)
            continue;
        size_t digits = 0;
        for (size_t k = 0; k < w->n; k++)
            digits += isdigit((unsigned char)w->p[k]) != 0;
        if (w->hyphen && digits >= 6 && !s->order_id[0] && w->n < sizeof(s->order_id)) {
            memcpy(s->order_id, w->p, w->n);
            s->order_id[w->n] = '\0';
        } else if (w->n == 6 && digits == 6 && pin_ok && !s->pincode[0]) {
            memcpy(s->pincode, w->p, 6);
            s->pincode[6] = '\0';
        } else if (!w->hyphen && digits >= 7 && digits == w->n && !s->order_id[0] &&
                   w->n < sizeof(s->order_id)) {
            memcpy(s->order_id, w->p, w->n);
            s->order_id[w->n] = '\0';
        }
    }
}

static void policy_topic(const struct words *ws, struct query_slots *s)
{
    static const struct {
        const char *word, *topic;
    } topics[] = {
        {"return", "returns"},
        {"returns", "returns"},
        {"returning", "returns"},
        {"refund", "refund"},
        {"refunds", "refund"},
        {"exchange", "returns"},
        {"replacement", "returns"},
        {"warranty", "warranty"},
        {"guarantee", "warranty"},
        {"cancel", "cancellation"},
        {"cancellation", "cancellation"},
        {"cancelling", "cancellation"},
        {"shipping", "delivery"},
        {"emi", "payment"},
        {"cod", "payment"},
        {"payment", "payment"},
        {"payments", "payment"},
    };
    for (int i = 0; i < ws->n; i++)
        for (size_t k = 0; k < sizeof(topics) / sizeof(topics[0]); k++)
            if (weq(&ws->w[i], topics[k].word)) {
                snprintf(s->topic, sizeof(s->topic), "%s", topics[k].topic);
                return;
            }
}

static void fill_slots(const struct words *ws, bool *used, struct query_slots *s)
{
    memset(s, 0, sizeof(*s));
    s->max_price = s->min_price = -1;
    for (int i = 0; i < ws->n; i++) {
        const struct word *w = &ws->w[i];
        if (weq(w, "between") && i + 3 < ws->n && ws->w[i + 1].num && ws->w[i + 3].num &&
            (weq(&ws->w[i + 2], "and") || weq(&ws->w[i + 2], "to"))) {
            s->min_price = ws->w[i + 1].val;
            s->max_price = ws->w[i + 3].val;
            used[i + 1] = used[i + 3] = true;
        } else if (in_list(w, max_cues) && s->max_price < 0) {
            s->max_price = price_after(ws, i, used);
        } else if (in_list(w, min_cues) && s->min_price < 0) {
            s->min_price = price_after(ws, i, used);
        } else if (w->price && !used[i] && s->max_price < 0) {
            s->max_price = w->val; /* "a phone for rs 15000" */
            used[i] = true;
        }
    }
    order_and_pincode(ws, used, s);
    policy_topic(ws, s);
}

/* ---- the reformulated search query ---- */

static const char *const filler[] = {
    "a",        "an",      "the",     "i",        "me",         "my",      "we",        "you",
    "your",     "please",  "can",     "could",    "would",      "will",    "show",      "find",
    "get",      "give",    "want",    "need",     "looking",    "look",    "for",       "some",
    "any",      "good",    "best",    "top",      "recommend",  "suggest", "under",     "below",
    "above",    "over",    "within",  "upto",     "up",         "to",      "less",      "more",
    "than",     "with",    "and",     "of",       "in",         "on",      "at",        "is",
    "are",      "what",    "which",   "that",     "this",       "it",      "be",        "buy",
    "purchase", "rs",      "inr",     "rupees",   "k",          "lakh",    "lakhs",     "budget",
    "around",   "about",   "price",   "range",    "options",    "option",  "hi",        "hello",
    "hey",      "im",      "am",      "have",     "has",        "there",   "something", "one",
    "ones",     "cheap",   "cheaper", "cheapest", "affordable", "max",     "maximum",   "min",
    "minimum",  "between", "least",   "starting", "lesser",     "do",      "does",      "got",
    "tell",     "pls",     "plz",     "kindly",   NULL};

static void reformulate(const struct words *ws, const bool *used, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < ws->n; i++) {
        const struct word *w = &ws->w[i];
        if (used[i] || in_list(w, filler) || (w->num && w->price))
            continue;
        if (o + w->n + 2 > cap)
            break;
        if (o)
            out[o++] = ' ';
        memcpy(out + o, w->p, w->n);
        o += w->n;
        out[o] = '\0';
    }
}

/* ---- the decision ---- */

static const char *const search_words[] = {
    "best",   "show",     "find",   "looking", "suggest",    "recommend", "buy",
    "cheap",  "cheapest", "top",    "options", "affordable", "want",      "need",
    "search", "latest",   "budget", "good",    "popular",    "list",      NULL};
static const char *const product_nouns[] = {
    "phone",   "phones",   "mobile",    "mobiles",    "smartphone", "smartphones", "laptop",
    "laptops", "notebook", "headphone", "headphones", "earbuds",    "earphones",   "headset",
    "shoe",    "shoes",    "sneakers",  "sneaker",    "shirt",      "shirts",      "tshirt",
    "jeans",   "dress",    "kurta",     "jacket",     "watch",      "tv",          "tablet",
    "speaker", "camera",   NULL};
static const char *const fact_words[] = {"battery",
                                         "display",
                                         "screen",
                                         "processor",
                                         "chip",
                                         "chipset",
                                         "ram",
                                         "storage",
                                         "camera",
                                         "weight",
                                         "size",
                                         "sizes",
                                         "material",
                                         "colour",
                                         "color",
                                         "colours",
                                         "colors",
                                         "specs",
                                         "specifications",
                                         "spec",
                                         "waterproof",
                                         "charging",
                                         "charger",
                                         "stock",
                                         "available",
                                         "availability",
                                         "deliver",
                                         "delivered",
                                         "delivery",
                                         "price",
                                         "cost",
                                         "mah",
                                         "gb",
                                         "refresh",
                                         "resolution",
                                         "fabric",
                                         "fit",
                                         "dimensions",
                                         "anc",
                                         "bluetooth",
                                         "5g",
                                         "os",
                                         NULL};
static const char *const question_words[] = {"what", "whats", "how",  "does", "do",   "is",
                                             "can",  "which", "when", "will", "tell", NULL};
static const char *const greetings[] = {
    "hi",      "hello", "hey",  "thanks", "thank", "thx",  "bye", "goodbye", "morning", "evening",
    "namaste", "ok",    "okay", "cool",   "great", "nice", "who", "yo",      NULL};
static const char *const order_words[] = {"order",  "orders",  "track",   "tracking", "shipment",
                                          "parcel", "package", "ordered", NULL};

static bool is_comparison(const struct words *ws)
{
    static const char *const cmp[] = {"compare",    "comparison",  "vs", "versus",
                                      "difference", "differences", NULL};
    return find_any(ws, cmp) >= 0 || find_pair(ws, "better", "than") >= 0 ||
           find_pair(ws, "which", "better") >= 0 || find_pair(ws, "is", "better") >= 0;
}

static bool is_chitchat(const struct words *ws)
{
    if (ws->n == 0 || ws->n > 6 || find_any(ws, product_nouns) >= 0)
        return false;
    return find_any(ws, greetings) >= 0 || find_pair(ws, "how", "are") >= 0;
}

/* "the second one", "the last one", "the first" - a product shown before. */
static bool refers_to_one(const struct words *ws)
{
    static const char *const ords[] = {"first", "second", "third", "fourth", "fifth", "last",
                                       "1st",   "2nd",    "3rd",   "4th",    "5th",   NULL};
    for (int i = 0; i < ws->n; i++)
        if (in_list(&ws->w[i], ords) && i > 0 && weq(&ws->w[i - 1], "the"))
            return true;
    return false;
}

static void decide(const struct words *ws, const struct query_slots *s, const char *text,
                   size_t len, struct query_guess *g)
{
    bool question = memchr(text, '?', len) != NULL || find_any(ws, question_words) == 0;
    bool budget = s->max_price >= 0 || s->min_price >= 0;
    bool search = find_any(ws, search_words) >= 0;
    bool noun = find_any(ws, product_nouns) >= 0;
    int order = find_any(ws, order_words);
    if (s->order_id[0] && order >= 0) {
        g->type = QT_ORDER_STATUS, g->confidence = 0.95f;
    } else if (order >= 0 && !budget && !noun) {
        g->type = QT_ORDER_STATUS, g->confidence = s->order_id[0] ? 0.9f : 0.7f;
    } else if (is_comparison(ws)) {
        g->type = QT_COMPARISON, g->confidence = 0.85f;
    } else if (s->topic[0] && !budget && !search) {
        g->type = QT_POLICY, g->confidence = question || !noun ? 0.85f : 0.65f;
    } else if (is_chitchat(ws)) {
        g->type = QT_CHITCHAT, g->confidence = 0.9f;
    } else if (budget || (search && noun)) {
        g->type = QT_PRODUCT_SEARCH, g->confidence = budget && noun ? 0.9f : 0.8f;
    } else if (find_any(ws, fact_words) >= 0 && (question || s->pincode[0])) {
        g->type = QT_PRODUCT_FACT, g->confidence = s->pincode[0] ? 0.75f : 0.65f;
    } else if (refers_to_one(ws) && question) {
        g->type = QT_PRODUCT_FACT, g->confidence = 0.65f; /* "the sole of the second one?" */
    } else if (search || noun) {
        g->type = QT_PRODUCT_SEARCH, g->confidence = 0.55f;
    } else {
        g->type = QT_OTHER, g->confidence = 0.3f;
    }
}

/* The first product noun of the words; see the header. */
bool query_product_kind(const char *text, size_t len, char *kind, size_t cap)
{
    struct words *ws = malloc(sizeof(*ws));
    bool found = false;
    kind[0] = '\0';
    if (!ws)
        return false;
    split_words(text, len, ws);
    int i = find_any(ws, product_nouns);
    if (i >= 0 && cap > 1) {
        size_t n = ws->w[i].n;
        if (n > 3 && ws->w[i].p[n - 1] == 's')
            n--;
        if (n >= cap)
            n = cap - 1;
        memcpy(kind, ws->w[i].p, n);
        kind[n] = '\0';
        found = true;
    }
    free(ws);
    return found;
}

/* Classify by the built-in rules; see the header. */
void query_classify_rules(const char *text, size_t len, struct query_guess *out)
{
    struct words *ws = malloc(sizeof(*ws));
    memset(out, 0, sizeof(*out));
    out->slots.max_price = out->slots.min_price = -1;
    out->from_rules = true;
    out->type = QT_OTHER;
    if (!ws)
        return;
    split_words(text, len, ws);
    bool used[QW_MAX] = {0};
    fill_slots(ws, used, &out->slots);
    decide(ws, &out->slots, text, len > QT_TEXT_MAX ? QT_TEXT_MAX : len, out);
    reformulate(ws, used, out->query, sizeof(out->query));
    free(ws);
}

/* True when a search prefetch is worth starting; see the header. */
bool query_looks_like_search(const char *text, size_t len)
{
    struct query_guess g;
    query_classify_rules(text, len, &g);
    return g.type == QT_PRODUCT_SEARCH && g.confidence >= 0.8f && g.query[0];
}

/* Parse the classifier route's JSON; see the header. */
int query_parse_classifier(const char *json, size_t json_len, const char *text, size_t len,
                           struct query_guess *out, char *err, size_t errlen)
{
    json_doc *d = json_doc_create();
    const char *s;
    size_t n;
    int rc = -EINVAL;
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (json_doc_load(d, json, json_len) < 0 || json_type_at(d, "") != JSON_OBJECT) {
        snprintf(err, errlen, "the classifier's answer is not a JSON object");
        goto out_destroy;
    }
    if (json_get_string(d, "/query_type", &s, &n) < 0) {
        snprintf(err, errlen, "the classifier's answer has no query_type string");
        goto out_destroy;
    }
    int t = query_type_from_name(s, n);
    if (t < 0) {
        snprintf(err, errlen, "the classifier's query_type '%.*s' is not a known type",
                 (int)(n > 40 ? 40 : n), s);
        goto out_destroy;
    }
    double conf = 1.0;
    if (json_type_at(d, "/confidence") != JSON_MISSING &&
        (json_get_double(d, "/confidence", &conf) < 0 || !(conf >= 0.0 && conf <= 1.0))) {
        snprintf(err, errlen, "the classifier's confidence is not a number from 0 to 1");
        goto out_destroy;
    }
    struct query_guess g;
    query_classify_rules(text, len, &g); /* slots and a default query from the user's words */
    g.type = (enum query_type)t;
    g.confidence = (float)conf;
    g.from_rules = false;
    if (json_get_string(d, "/query", &s, &n) == 0 && n > 0)
        snprintf(g.query, sizeof(g.query), "%.*s", (int)(n < sizeof(g.query) ? n : 255), s);
    utf8_scrub(g.query); /* the cut may split a character */
    *out = g;
    rc = 0;
out_destroy:
    json_doc_destroy(d);
    return rc;
}
