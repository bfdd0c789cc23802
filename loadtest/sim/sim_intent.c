/* sim_intent.c - read a shopper's message into a query type and tool slots (see sim_intent.h).
 *
 * A keyword reader, on purpose: the simulated models must be predictable enough that a test can
 * say which tool a message leads to and with which arguments, and wrong in the ways the cheap
 * tier is told to be wrong, never by accident. */
#include "loadtest/sim/sim_intent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "loadtest/sim/sim_catalog.h"
#include "loadtest/sim/sim_hash.h"

enum { MAX_TOKS = 64, TOK_MAX = 48 };

struct tok {
    char w[TOK_MAX];    /* lower case, outer punctuation and a leading ₹ / rs. removed */
    char orig[TOK_MAX]; /* as written, outer punctuation removed */
    bool used;          /* consumed as a budget, pincode or id: not a search word */
};

struct toks {
    struct tok t[MAX_TOKS];
    int n;
};

static bool is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static bool punct(char c)
{
    return c && strchr(".,!?;:()[]{}\"'*", c) != NULL;
}

static void tokenize(const char *s, size_t n, struct toks *ts)
{
    size_t i = 0;
    ts->n = 0;
    while (i < n && ts->n < MAX_TOKS) {
        while (i < n && is_ws(s[i]))
            i++;
        size_t st = i;
        while (i < n && !is_ws(s[i]))
            i++;
        size_t a = st, b = i;
        if (b - a >= 3 && memcmp(s + a, "\xe2\x82\xb9", 3) == 0) /* ₹ */
            a += 3;
        while (a < b && punct(s[a]))
            a++;
        while (b > a && punct(s[b - 1]))
            b--;
        if (b - a >= 3 && (s[a] | 0x20) == 'r' && (s[a + 1] | 0x20) == 's' && s[a + 2] == '.')
            a += 3;
        if (a == b || b - a >= TOK_MAX)
            continue;
        struct tok *t = &ts->t[ts->n++];
        memcpy(t->orig, s + a, b - a);
        t->orig[b - a] = '\0';
        for (size_t k = 0; k <= b - a; k++)
            t->w[k] =
                (t->orig[k] >= 'A' && t->orig[k] <= 'Z') ? (char)(t->orig[k] | 0x20) : t->orig[k];
        t->used = false;
    }
}

static bool is(const struct toks *ts, int i, const char *w)
{
    return i >= 0 && i < ts->n && strcmp(ts->t[i].w, w) == 0;
}

static bool any_of(const char *w, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(w, *list) == 0)
            return true;
    return false;
}

/* A money amount: "20000", "20,000", "20k", "1.5" followed by "lakh"; -1 if not a number.
 * *extra is set to the tokens consumed after it (a "k" or "lakh" word). */
static int64_t amount(const struct toks *ts, int i, int *extra)
{
    const char *w = ts->t[i].w;
    char digits[24];
    size_t k = 0;
    bool dot = false;
    *extra = 0;
    for (; *w && k + 1 < sizeof(digits); w++) {
        if (*w >= '0' && *w <= '9')
            digits[k++] = *w;
        else if (*w == '.' && !dot)
            digits[k++] = *w, dot = true;
        else if (*w != ',')
            break;
    }
    digits[k] = '\0';
    if (!k || digits[0] == '.')
        return -1;
    double v = strtod(digits, NULL), mult = 1;
    if (strcmp(w, "k") == 0)
        mult = 1000;
    else if (strcmp(w, "l") == 0 || strcmp(w, "lakh") == 0)
        mult = 100000;
    else if (*w)
        return -1;
    if (mult == 1 && (is(ts, i + 1, "k") || is(ts, i + 1, "thousand")))
        mult = 1000, *extra = 1;
    else if (mult == 1 && (is(ts, i + 1, "lakh") || is(ts, i + 1, "lakhs")))
        mult = 100000, *extra = 1;
    return (int64_t)(v * mult);
}

/* The amount after a budget word at i (skipping "than", "to", "of", "rs", "inr"), marking the
 * tokens used; -1 if none follows. */
static int64_t amount_after(struct toks *ts, int i)
{
    static const char *const skip[] = {"than", "to", "of", "rs", "inr", "around", "about", NULL};
    int j = i + 1, extra;
    while (j < ts->n && j <= i + 3 && any_of(ts->t[j].w, skip))
        j++;
    if (j >= ts->n)
        return -1;
    int64_t v = amount(ts, j, &extra);
    if (v >= 0)
        for (int k = j; k <= j + extra && k < ts->n; k++)
            ts->t[k].used = true;
    return v;
}

static void read_budget(struct toks *ts, struct sim_intent *it)
{
    static const char *const max_words[] = {"under", "below",   "within",  "upto", "budget", "max",
                                            "less",  "cheaper", "maximum", "till", "lower",  NULL};
    static const char *const min_words[] = {"above",   "over",     "more", "least",
                                            "minimum", "starting", NULL};
    for (int i = 0; i < ts->n; i++) {
        const char *w = ts->t[i].w;
        int64_t v;
        if (strcmp(w, "between") == 0 && (v = amount_after(ts, i)) >= 0) {
            it->min_price = v;
            for (int j = i + 1; j < ts->n && j < i + 5; j++)
                if (is(ts, j, "and") || is(ts, j, "to")) {
                    it->max_price = amount_after(ts, j);
                    break;
                }
        } else if ((any_of(w, max_words) || (strcmp(w, "up") == 0 && is(ts, i + 1, "to"))) &&
                   (v = amount_after(ts, i)) >= 0) {
            it->max_price = v;
        } else if (any_of(w, min_words) && (v = amount_after(ts, i)) >= 0) {
            it->min_price = v;
        }
    }
}

static bool all_digits(const char *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (w[i] < '0' || w[i] > '9')
            return false;
    return n > 0;
}

/* Order ids (1234-5678, #1234-5678), product ids (P00012) and pincodes (6 digits, not after a
 * budget). */
static void read_ids(struct toks *ts, struct sim_intent *it)
{
    for (int i = 0; i < ts->n; i++) {
        struct tok *t = &ts->t[i];
        size_t n = strlen(t->w);
        const char *w = t->w[0] == '#' ? t->w + 1 : t->w; /* "#1234-5678": the same order */
        if (strlen(w) == 9 && w[4] == '-' && all_digits(w, 4) && all_digits(w + 5, 4)) {
            snprintf(it->order_id, sizeof(it->order_id), "%s", w);
            t->used = true;
        } else if (n == 6 && t->w[0] == 'p' && all_digits(t->w + 1, 5)) {
            if (it->nids < SIM_INTENT_MAX_IDS)
                snprintf(it->ids[it->nids++], sizeof(it->ids[0]), "P%s", t->w + 1);
            t->used = true;
        } else if (n == 6 && !t->used && all_digits(t->w, 6) && t->w[0] != '0') {
            snprintf(it->pincode, sizeof(it->pincode), "%s", t->w);
            t->used = true;
        }
    }
}

static const char *category_of(const char *w)
{
    static const struct {
        const char *word, *cat;
    } map[] = {
        {"phone", "phones"},        {"mobile", "phones"},        {"smartphone", "phones"},
        {"iphone", "phones"},       {"laptop", "laptops"},       {"notebook", "laptops"},
        {"macbook", "laptops"},     {"headphone", "headphones"}, {"earbud", "headphones"},
        {"earphone", "headphones"}, {"tws", "headphones"},       {"headset", "headphones"},
        {"airpod", "headphones"},   {"neckband", "headphones"},  {"shoe", "shoes"},
        {"sneaker", "shoes"},       {"boot", "shoes"},           {"sandal", "shoes"},
        {"loafer", "shoes"},        {"footwear", "shoes"},       {"shirt", "clothing"},
        {"t-shirt", "clothing"},    {"tshirt", "clothing"},      {"jean", "clothing"},
        {"jeans", "clothing"},      {"kurta", "clothing"},       {"jacket", "clothing"},
        {"dress", "clothing"},      {"hoodie", "clothing"},      {"trouser", "clothing"},
        {"short", "clothing"},      {"saree", "clothing"},       {"clothing", "clothing"},
        {"clothe", "clothing"},     {"clothes", "clothing"},
    };
    char n[TOK_MAX];
    sim_catalog_norm_word(w, strlen(w), n, sizeof(n));
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(n, map[i].word) == 0 || strcmp(w, map[i].word) == 0)
            return map[i].cat;
    return NULL;
}

static const char *const brands[] = {
    "Samsung",
    "Xiaomi",
    "Apple",
    "OnePlus",
    "Realme",
    "Vivo",
    "Oppo",
    "Motorola",
    "iQOO",
    "Poco",
    "Google",
    "Nothing",
    "HP",
    "Dell",
    "Lenovo",
    "ASUS",
    "Acer",
    "MSI",
    "Sony",
    "boAt",
    "JBL",
    "Sennheiser",
    "Bose",
    "Noise",
    "Skullcandy",
    "Jabra",
    "Audio-Technica",
    "Marshall",
    "Nike",
    "Adidas",
    "Puma",
    "Reebok",
    "Asics",
    "Skechers",
    "New Balance",
    "Bata",
    "Woodland",
    "Red Tape",
    "Campus",
    "Sparx",
    "Decathlon Kalenji",
    "Liberty",
    "Levi's",
    "Allen Solly",
    "Van Heusen",
    "Peter England",
    "H&M",
    "Zara",
    "Uniqlo",
    "Roadster",
    "HRX",
    "Biba",
    "FabIndia",
    "Jack & Jones",
    "U.S. Polo Assn.",
    "Redmi",
    "Decathlon",
};

static bool word_at(const char *text, size_t n, size_t at, size_t len)
{
    bool before = at == 0 || is_ws(text[at - 1]) || punct(text[at - 1]);
    bool after = at + len == n || is_ws(text[at + len]) || punct(text[at + len]);
    return before && after;
}

static void read_brand(const char *text, size_t n, struct sim_intent *it)
{
    for (size_t b = 0; b < sizeof(brands) / sizeof(brands[0]) && !it->brand[0]; b++) {
        size_t len = strlen(brands[b]);
        for (size_t at = 0; at + len <= n; at++) {
            if (strncasecmp(text + at, brands[b], len) == 0 && word_at(text, n, at, len)) {
                const char *name = strcmp(brands[b], "Redmi") == 0       ? "Xiaomi"
                                   : strcmp(brands[b], "Decathlon") == 0 ? "Decathlon Kalenji"
                                                                         : brands[b];
                snprintf(it->brand, sizeof(it->brand), "%s", name);
                break;
            }
        }
    }
}

static const char *topic_of(const struct toks *ts, int i)
{
    const char *w = ts->t[i].w;
    if (!strncmp(w, "return", 6))
        return "returns";
    if (!strncmp(w, "refund", 6))
        return "refunds";
    if (!strcmp(w, "warranty") || !strcmp(w, "guarantee"))
        return "warranty";
    if (!strncmp(w, "cancel", 6))
        return "cancellation";
    if (!strncmp(w, "exchange", 8))
        return "exchange";
    if (!strcmp(w, "cod") || (!strcmp(w, "cash") && is(ts, i + 1, "on")))
        return "cod";
    if (!strcmp(w, "emi") || !strncmp(w, "instal", 6))
        return "emi";
    if (!strcmp(w, "delivery") || !strcmp(w, "shipping") || !strcmp(w, "ship"))
        return "delivery";
    return NULL;
}

static const char *spec_of(const char *w)
{
    static const char *const map[][2] = {
        {"battery", "battery"},
        {"mah", "battery"},
        {"display", "display"},
        {"screen", "display"},
        {"processor", "processor"},
        {"chip", "processor"},
        {"cpu", "processor"},
        {"chipset", "processor"},
        {"ram", "ram"},
        {"memory", "ram"},
        {"storage", "storage"},
        {"rom", "storage"},
        {"ssd", "storage"},
        {"camera", "camera"},
        {"weight", "weight"},
        {"heavy", "weight"},
        {"anc", "anc"},
        {"noise", "anc"},
        {"driver", "driver"},
        {"drivers", "driver"},
        {"size", "sizes"},
        {"sizes", "sizes"},
        {"material", "material"},
        {"fabric", "material"},
        {"graphics", "graphics"},
        {"gpu", "graphics"},
        {"charging", "charging"},
        {"network", "network"},
        {"5g", "network"},
        {"4g", "network"},
        {"lte", "network"},
        {"warranty", "warranty"},
        {"guarantee", "warranty"},
        {"waterproof", "water"},
        {"water", "water"},
        {"water-resistant", "water"},
        {"water-proof", "water"},
        {"splash", "water"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(w, map[i][0]) == 0)
            return map[i][1];
    return NULL;
}

/* Words about getting the product: delivery, stock, sellers, today's price. */
static bool delivery_word(const struct toks *ts, int i)
{
    static const char *const words[] = {
        "deliver", "delivery", "delivered", "deliverable", "arrive",    "arrives",
        "arrival", "reach",    "reaches",   "stock",       "available", "availability",
        "pincode", "pin",      "cod",       "express",     "seller",    "sellers",
        "ship",    "shipping", "ships",     "dispatch",    NULL};
    const char *w = ts->t[i].w;
    return any_of(w, words) || (!strcmp(w, "today") && i > 0 && is(ts, i - 1, "price")) ||
           (!strcmp(w, "cash") && is(ts, i + 1, "on"));
}

struct cues {
    bool compare, chitchat, search, order_word, policy_word;
    const char *topic;
};

static void read_words(struct toks *ts, struct sim_intent *it, struct cues *cu)
{
    static const char *const cmp[] = {"compare",    "comparison", "vs", "versus",
                                      "difference", "better",     NULL};
    static const char *const chat[] = {"hi",   "hello",   "hey",     "thanks",  "thank",
                                       "bye",  "morning", "evening", "namaste", "ok",
                                       "okay", "great",   NULL};
    static const char *const verbs[] = {"find",    "search",  "show",     "buy",  "recommend",
                                        "suggest", "looking", "need",     "want", "best",
                                        "top",     "options", "cheapest", "good", NULL};
    for (int i = 0; i < ts->n; i++) {
        const char *w = ts->t[i].w, *c, *t, *s;
        cu->compare |= any_of(w, cmp);
        cu->chitchat |= any_of(w, chat);
        cu->search |= any_of(w, verbs);
        cu->order_word |= !strcmp(w, "order") || !strcmp(w, "track") || !strcmp(w, "shipment");
        cu->policy_word |= !strcmp(w, "policy") || !strcmp(w, "policies");
        if (!it->category[0] && (c = category_of(w)))
            snprintf(it->category, sizeof(it->category), "%s", c);
        if (!cu->topic && (t = topic_of(ts, i)))
            cu->topic = t;
        if (!it->spec[0] && (s = spec_of(w)))
            snprintf(it->spec, sizeof(it->spec), "%s", s);
        if (!strcmp(w, "5g") || !strcmp(w, "4g"))
            snprintf(it->want, sizeof(it->want), "%cG", w[0]);
        it->delivery |= delivery_word(ts, i);
        if (!strcmp(w, "cheapest") || !strcmp(w, "cheaper") || !strcmp(w, "cheap") ||
            (!strcmp(w, "lowest") && is(ts, i + 1, "price")))
            it->cheapest = true;
        if (!strcmp(w, "rated") || !strcmp(w, "rating"))
            snprintf(it->sort, sizeof(it->sort), "rating");
        if (!strcmp(w, "costliest") || !strcmp(w, "expensive") || !strcmp(w, "premium"))
            snprintf(it->sort, sizeof(it->sort), "price_desc");
    }
    if (it->cheapest)
        snprintf(it->sort, sizeof(it->sort), "price_asc");
}

/* The search words: what is left after stop words, budgets, ids and question words. */
static void make_query(const struct toks *ts, struct sim_intent *it)
{
    static const char *const drop[] = {
        "policy", "policies", "compare", "comparison", "difference", "hi",    "hello", "hey",
        "please", "thanks",   "where",   "when",       "why",        "who",   "am",    "was",
        "will",   "be",       "if",      "so",         "not",        "no",    "yes",   "we",
        "us",     "our",      "your",    "them",       "they",       "those", "these", "first",
        "second", "both",     "vs.",     NULL};
    size_t len = 0;
    int words = 0;
    for (int i = 0; i < ts->n && words < 8; i++) {
        const struct tok *t = &ts->t[i];
        char n[TOK_MAX];
        sim_catalog_norm_word(t->w, strlen(t->w), n, sizeof(n));
        int extra;
        if (t->used || sim_catalog_stopword(n) || sim_catalog_stopword(t->w) ||
            any_of(t->w, drop) || amount((const struct toks *)ts, i, &extra) >= 0)
            continue;
        size_t k = strlen(t->orig);
        if (len + k + 2 >= sizeof(it->query))
            break;
        if (len)
            it->query[len++] = ' ';
        memcpy(it->query + len, t->orig, k + 1);
        len += k;
        words++;
    }
}

static void decide(struct sim_intent *it, const struct cues *cu)
{
    bool product = it->category[0] || it->brand[0];
    if (it->order_id[0] || (cu->order_word && !product && !cu->topic)) {
        it->type = SIM_Q_ORDER_STATUS;
        it->confidence = it->order_id[0] ? 0.97 : 0.72;
    } else if (cu->topic && !it->nids && !it->pincode[0] &&
               (cu->policy_word || !product || strcmp(cu->topic, "delivery") != 0)) {
        it->type = SIM_Q_POLICY;
        it->confidence = cu->policy_word ? 0.95 : 0.86;
        snprintf(it->topic, sizeof(it->topic), "%s", cu->topic);
    } else if (cu->compare || it->nids >= 2) {
        it->type = SIM_Q_COMPARISON;
        it->confidence = it->nids >= 2 ? 0.94 : 0.88;
    } else if (it->nids || it->pincode[0]) {
        it->type = SIM_Q_PRODUCT_FACT;
        it->confidence = 0.9;
    } else if (product || cu->search || it->max_price >= 0 || it->min_price >= 0) {
        it->type = SIM_Q_PRODUCT_SEARCH;
        it->confidence = product ? 0.93 : 0.78;
    } else if (cu->chitchat) {
        it->type = SIM_Q_CHITCHAT;
        it->confidence = 0.9;
    } else {
        it->type = SIM_Q_OTHER;
        it->confidence = 0.55;
    }
}

/* Read a message; see the header. */
void sim_intent_read(const char *text, size_t n, struct sim_intent *it)
{
    struct toks ts;
    struct cues cu = {0};
    memset(it, 0, sizeof(*it));
    it->max_price = it->min_price = -1;
    tokenize(text, n, &ts);
    read_budget(&ts, it);
    read_ids(&ts, it);
    read_brand(text, n, it);
    read_words(&ts, it, &cu);
    make_query(&ts, it);
    decide(it, &cu);
}

const char *sim_qtype_name(enum sim_qtype t)
{
    static const char *const names[SIM_NQTYPES] = {"product_search", "product_fact", "comparison",
                                                   "policy",         "order_status", "chitchat",
                                                   "other"};
    return t < SIM_NQTYPES ? names[t] : "other";
}
