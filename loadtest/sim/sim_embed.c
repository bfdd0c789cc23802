/* sim_embed.c - deterministic embeddings (see sim_embed.h). */
#include "loadtest/sim/sim_embed.h"

#include "loadtest/sim/sim_hash.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

enum { WORD_MAX = 48, WORDS_MAX = 128 };

/* Filler: words that change nothing about what is asked. "with" is filler, "without" is not. */
static const char *const filler[] = {
    "a",         "an",      "the",         "me",      "my",        "i",         "im",
    "you",       "your",    "please",      "can",     "could",     "would",     "will",
    "should",    "is",      "are",         "am",      "be",        "do",        "does",
    "did",       "for",     "of",          "to",      "in",        "on",        "at",
    "and",       "or",      "with",        "some",    "any",       "that",      "this",
    "it",        "its",     "there",       "here",    "one",       "ones",      "kind",
    "hey",       "hi",      "show",        "find",    "list",      "give",      "tell",
    "want",      "need",    "looking",     "search",  "get",       "recommend", "suggest",
    "let",       "know",    "like",        "just",    "really",    "also",      "so",
    "what",      "which",   "whats",       "about",   "us",        "we",        "our",
    "have",      "has",     "got",         "options", "option",    "something", "available",
    "currently", "now",     "today",       "how",     "work",      "works",     "explain",
    "details",   "info",    "information", "thing",   "things",    "having",    "long",
    "possible",  "allowed", "rules",       "process", "procedure", "terms",     "policy",
    "last",      "period",  "capacity",    "size",    "option",    "offer",     "which",
    "there",     "take",    "time",        "times",   "when",      "where",     "placing",
};

struct syn {
    const char *from, *to;
};

/* A few shopping synonyms; several words may map to one. */
static const struct syn synonyms[] = {
    {"mobile", "phone"},
    {"smartphone", "phone"},
    {"handset", "phone"},
    {"cellphone", "phone"},
    {"earbud", "headphone"},
    {"earphone", "headphone"},
    {"headset", "headphone"},
    {"tws", "headphone"},
    {"notebook", "laptop"},
    {"sneaker", "shoe"},
    {"trainer", "shoe"},
    {"footwear", "shoe"},
    {"affordable", "cheap"},
    {"inexpensive", "cheap"},
    {"budget", "cheap"},
    {"economical", "cheap"},
    {"cheapest", "cheap"},
    {"lowest", "cheap"},
    {"top", "best"},
    {"good", "best"},
    {"great", "best"},
    {"finest", "best"},
    {"below", "under"},
    {"within", "under"},
    {"upto", "under"},
    {"less", "under"},
    {"max", "under"},
    {"maximum", "under"},
    {"above", "over"},
    {"more", "over"},
    {"least", "over"},
    {"min", "over"},
    {"minimum", "over"},
    {"purchase", "buy"},
    {"much", "price"},
    {"returning", "return"},
    {"refunded", "refund"},
    {"reimbursement", "refund"},
    {"guarantee", "warranty"},
    {"deliver", "delivery"},
    {"shipping", "delivery"},
    {"ship", "delivery"},
    {"shipped", "delivery"},
    {"cost", "price"},
    {"costs", "price"},
    {"rate", "price"},
    {"backup", "battery"},
    {"versus", "compare"},
    {"vs", "compare"},
    {"difference", "compare"},
    {"lacking", "without"},
    {"no", "without"},
    {"never", "not"},
    {"dont", "not"},
    {"doesnt", "not"},
    {"isnt", "not"},
    {"arent", "not"},
    {"cant", "not"},
    {"cannot", "not"},
    {"policy", "policy"},
    {"rs", "rupee"},
    {"inr", "rupee"},
    {"rupees", "rupee"},
    {"heavy", "weight"},
    {"weigh", "weight"},
    {"screen", "display"},
    {"cancellation", "cancel"},
    {"cancelled", "cancel"},
    {"canceling", "cancel"},
    {"delivered", "delivery"},
    {"emis", "emi"},
    {"cod", "cash"},
    {"pay", "payment"},
    {"paying", "payment"},
    {"better", "compare"},
    {"biggest", "big"},
    {"largest", "big"},
    {"large", "big"},
    {"huge", "big"},
    {"longest", "long"},
    {"lightest", "light"},
    {"lightweight", "light"},
    {"quickest", "fast"},
    {"fastest", "fast"},
    {"quick", "fast"},
    {"returns", "return"},
    {"refunds", "refund"},
};

static bool in_list(const char *w, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(w, list[i]) == 0)
            return true;
    return false;
}

/* Plural -s dropped from longer words ("phones" -> "phone", not "glass" or "bus"). */
static void singular(char *w)
{
    size_t n = strlen(w);
    if (n > 3 && w[n - 1] == 's' && w[n - 2] != 's' && !isdigit((unsigned char)w[n - 2]))
        w[n - 1] = 0;
}

/* "20k" -> "20000", "1.5lakh" stays a word: plain digits only for the common k suffix. */
static void plain_number(char *w)
{
    size_t n = strlen(w);
    if (n >= 2 && n < WORD_MAX - 3 && w[n - 1] == 'k' && isdigit((unsigned char)w[n - 2])) {
        for (size_t i = 0; i + 1 < n; i++)
            if (!isdigit((unsigned char)w[i]))
                return;
        memcpy(w + n - 1, "000", 4);
    }
}

/* The next word of s[*i..len): letters, digits and non-ASCII bytes; commas between digits and
 * apostrophes inside words are dropped ("20,000", "don't"). Returns its length (0 at the end). */
static size_t next_word(const char *s, size_t len, size_t *i, char *w)
{
    size_t n = 0;
    for (;;) {
        if (*i + 3 <= len && memcmp(s + *i, "\xe2\x82\xb9", 3) == 0) /* the rupee sign */
            *i += 3;
        else if (*i < len && !isalnum((unsigned char)s[*i]) && !((unsigned char)s[*i] & 0x80))
            (*i)++;
        else
            break;
    }
    while (*i < len && n < WORD_MAX - 1) {
        unsigned char c = (unsigned char)s[*i];
        bool inner = *i + 1 < len && n > 0;
        if (isalnum(c) || (c & 0x80))
            w[n++] = (char)tolower(c);
        else if (!(inner && ((c == ',' && isdigit((unsigned char)s[*i + 1]) &&
                              isdigit((unsigned char)w[n - 1])) ||
                             c == '\'' || c == '-')))
            break;
        (*i)++;
    }
    w[n] = 0;
    return n;
}

static void add_feature(float *v, size_t dim, uint64_t h, float weight)
{
    h = sim_hash_u64(h, 0x5eed);
    uint64_t s = h;
    uint64_t r = sim_rng_next(&s);
    v[r % dim] += (r >> 63) ? weight : -weight;
}

/* Embedding models are notoriously weak on numbers and negations: they weigh little here too
 * (which is why a semantic cache needs its guard). */
static float word_weight(const char *w)
{
    if (isdigit((unsigned char)w[0]))
        return 0.6f;
    if (!strcmp(w, "not") || !strcmp(w, "without"))
        return 0.7f;
    return 1.0f;
}

static void add_word(float *v, size_t dim, const char *w, const char *prev)
{
    size_t n = strlen(w);
    float weight = word_weight(w);
    add_feature(v, dim, sim_hash_bytes(SIM_HASH_SEED, w, n), weight);
    if (prev) {
        uint64_t h = sim_hash_bytes(SIM_HASH_SEED ^ 0xb16, prev, strlen(prev));
        add_feature(v, dim, sim_hash_bytes(sim_hash_u64(h, 0), w, n), 0.3f * weight);
    }
    /* trigrams of "^word$": "phone"/"phones" share most of them */
    char g[WORD_MAX + 2];
    g[0] = '^';
    memcpy(g + 1, w, n);
    g[n + 1] = '$';
    size_t gn = n + 2, grams = gn - 2;
    for (size_t k = 0; k + 3 <= gn; k++)
        add_feature(v, dim, sim_hash_bytes(SIM_HASH_SEED ^ 0x7e1, g + k, 3),
                    0.3f * weight / (float)grams);
}

/* Normalize one word in place; returns false when it is filler. */
static bool normalize(char *w)
{
    plain_number(w);
    singular(w);
    for (size_t i = 0; i < sizeof(synonyms) / sizeof(synonyms[0]); i++)
        if (strcmp(w, synonyms[i].from) == 0) {
            strcpy(w, synonyms[i].to);
            break;
        }
    return !in_list(w, filler, sizeof(filler) / sizeof(filler[0]));
}

/* The embedding; see the header. */
size_t sim_embed(const char *text, size_t len, float *out, size_t dim)
{
    float v[SIM_EMBED_DIM] = {0};
    if (dim == 0 || dim > SIM_EMBED_DIM)
        dim = SIM_EMBED_DIM;
    char w[WORD_MAX], prev[WORD_MAX] = "";
    size_t i = 0, words = 0;
    bool any = false;
    while (next_word(text, len, &i, w)) {
        words++;
        /* "doesn't" -> "doesnt": one word, mapped to "not" */
        if (!normalize(w))
            continue;
        add_word(v, dim, w, any ? prev : NULL);
        memcpy(prev, w, sizeof(prev));
        any = true;
    }
    if (!any)
        add_feature(v, dim, SIM_HASH_SEED, 1.0f);
    double norm = 0;
    for (size_t k = 0; k < dim; k++)
        norm += (double)v[k] * v[k];
    if (!(norm > 0)) { /* features that cancelled out: still a unit vector */
        v[0] = 1;
        norm = 1;
    }
    norm = sqrt(norm);
    for (size_t k = 0; k < dim; k++)
        out[k] = (float)(v[k] / norm);
    return words;
}
