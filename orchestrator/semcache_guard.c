/* semcache_guard.c - the semantic cache's guard (see semcache_guard.h). */
#include "orchestrator/semcache_guard.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { WORD_MAX = 40, MAX_NUMS = 16, MAX_NAMES = 16, MAX_WORDS = 96 };
enum { CMP_UNDER = 1, CMP_OVER = 2 };

struct word {
    char low[WORD_MAX]; /* lower case, apostrophes and inner hyphens dropped */
    char orig[WORD_MAX];
    bool first; /* first word of a sentence */
};

struct sig {
    int64_t nums[MAX_NUMS]; /* hundredths */
    int n_nums;
    char names[MAX_NAMES][WORD_MAX]; /* lower case, a plural -s dropped */
    bool model[MAX_NAMES];           /* a model token (letters and digits): never optional */
    int n_names;
    char words[MAX_WORDS][WORD_MAX]; /* every word, lower case: where names are looked up */
    int n_words;
    int negations;
    int cmp;
};

/* Words that start a question in capitals without being a name. */
static const char *const starters[] = {
    "show",       "find",       "what",   "whats",    "which",   "is",      "are",
    "does",       "do",         "can",    "could",    "how",     "where",   "when",
    "why",        "who",        "tell",   "give",     "list",    "compare", "best",
    "good",       "top",        "cheap",  "cheapest", "i",       "any",     "suggest",
    "recommend",  "looking",    "need",   "want",     "please",  "hi",      "hello",
    "hey",        "the",        "a",      "an",       "my",      "order",   "price",
    "difference", "get",        "buy",    "will",     "would",   "should",  "have",
    "has",        "did",        "was",    "were",     "let",     "help",    "search",
    "shipping",   "delivery",   "refund", "return",   "returns", "cash",    "warranty",
    "in",         "for",        "under",  "below",    "with",    "without", "not",
    "no",         "affordable", "new",    "latest",   "some",    "more",    "other",
    "also",       "and",        "or",     "so",
};

/* Capitalised but never a name: the pronoun, currency words. */
static const char *const not_names[] = {"i", "rs", "inr", "usd", "ok", "okay"};

static const char *const negations[] = {"not",       "no",      "never",   "without",
                                        "nor",       "none",    "cannot",  "except",
                                        "excluding", "exclude", "neither", "nothing"};
static const char *const under_words[] = {"under",   "below",  "within",  "upto",  "less",   "max",
                                          "maximum", "budget", "cheaper", "lower", "beneath"};
static const char *const over_words[] = {"over",    "above",  "more",   "least",    "min",
                                         "minimum", "higher", "beyond", "exceeding"};

static bool in(const char *w, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(w, list[i]) == 0)
            return true;
    return false;
}
#define IN(w, list) in(w, list, sizeof(list) / sizeof(list[0]))

static bool word_char(unsigned char c)
{
    return isalnum(c) || (c & 0x80);
}

/* The next word from s[*i..n): word characters, with commas between digits ("20,000"), dots
 * between digits ("1.5") and apostrophes / hyphens between word characters kept inside.
 * Sets *sentence when a sentence ended before it. Returns false at the end. */
static bool next_word(const char *s, size_t n, size_t *i, struct word *w, bool *sentence)
{
    for (;;) {
        if (*i + 3 <= n && memcmp(s + *i, "\xe2\x82\xb9", 3) == 0) { /* the rupee sign */
            *i += 3;
            continue;
        }
        if (*i >= n || word_char((unsigned char)s[*i]))
            break;
        if (memchr(".?!\n", s[*i], 4))
            *sentence = true;
        (*i)++;
    }
    if (*i >= n)
        return false;
    size_t k = 0, o = 0;
    while (*i < n && o < WORD_MAX - 1) {
        unsigned char c = (unsigned char)s[*i];
        bool between = o > 0 && *i + 1 < n && word_char((unsigned char)s[*i + 1]);
        bool digits =
            between && isdigit((unsigned char)w->orig[o - 1]) && isdigit((unsigned char)s[*i + 1]);
        if (word_char(c)) {
            w->low[k++] = (char)tolower(c);
        } else if (!((c == ',' || c == '.') && digits) && !((c == '\'' || c == '-') && between)) {
            break;
        } else if (c == '.') {
            w->low[k++] = '.';
        }
        w->orig[o++] = (char)c;
        (*i)++;
    }
    w->low[k] = w->orig[o] = 0;
    w->first = *sentence;
    *sentence = false;
    return true;
}

/* Units glued to a number ("128GB", "5000mAh", "5G", "1080p"): the number counts, not the unit. */
static const char *const units[] = {"k",  "g",   "gb",  "tb", "mb", "mah",  "mp",   "hz",
                                    "w",  "kg",  "mm",  "cm", "in", "inch", "m",    "gen",
                                    "th", "st",  "nd",  "rd", "x",  "l",    "ml",   "v",
                                    "p",  "fps", "hrs", "hr", "h",  "min",  "mins", "days"};

/* A number at the start of w->low ("20,000" is already "20000"), in hundredths, with a multiplier
 * from a suffix (k) or the next word (lakh, crore, thousand). Returns false when w is no number. */
static bool number_of(const struct word *w, const char *next, int64_t *out)
{
    const char *p = w->low;
    if (!isdigit((unsigned char)*p))
        return false;
    char *end;
    double v = strtod(p, &end);
    if (*end && !IN(end, units))
        return false; /* "12R", "760NC": a model name */
    if (*end == 'k' && end[1] == 0)
        v *= 1000;
    if (next && (!strcmp(next, "lakh") || !strcmp(next, "lac") || !strcmp(next, "lakhs")))
        v *= 100000;
    else if (next && (!strcmp(next, "crore") || !strcmp(next, "crores")))
        v *= 10000000;
    else if (next && !strcmp(next, "thousand"))
        v *= 1000;
    *out = (int64_t)(v * 100 + 0.5);
    return true;
}

/* A name as the text shows it: a capital letter (a sentence's first word only when it is not a
 * common starter), or letters mixed with digits that does not start with a digit ("S23"; "128gb"
 * is a number with a unit). */
static bool is_name(const struct word *w)
{
    bool upper = false, alpha = false, digit = false;
    for (const char *p = w->orig; *p; p++) {
        upper |= isupper((unsigned char)*p) != 0;
        alpha |= isalpha((unsigned char)*p) != 0;
        digit |= isdigit((unsigned char)*p) != 0;
    }
    if (alpha && digit)
        return true; /* a number with a unit was taken before */
    if (!upper || IN(w->low, not_names))
        return false;
    bool inner_upper = false; /* iPhone, OnePlus, AMOLED */
    for (const char *p = w->orig + 1; *p; p++)
        inner_upper |= isupper((unsigned char)*p) != 0;
    return !w->first || inner_upper || !IN(w->low, starters);
}

static bool negated(const struct word *w)
{
    size_t n = strlen(w->orig);
    return IN(w->low, negations) ||
           (n > 3 && (!strcmp(w->orig + n - 3, "n't") || !strcmp(w->orig + n - 3, "N'T"))) ||
           (n > 5 && !strcmp(w->orig + n - 5, "n\xe2\x80\x99t")); /* a typographic apostrophe */
}

static void add_num(struct sig *s, int64_t v)
{
    for (int i = 0; i < s->n_nums; i++)
        if (s->nums[i] == v)
            return;
    if (s->n_nums < MAX_NUMS)
        s->nums[s->n_nums++] = v;
}

static void depluralize(char *w)
{
    size_t n = strlen(w);
    if (n > 3 && w[n - 1] == 's' && w[n - 2] != 's')
        w[n - 1] = 0;
}

static void add_name(struct sig *s, const struct word *x)
{
    bool alpha = false, digit = false;
    for (const char *p = x->low; *p; p++) {
        alpha |= isalpha((unsigned char)*p) != 0;
        digit |= isdigit((unsigned char)*p) != 0;
    }
    memcpy(s->names[s->n_names], x->low, WORD_MAX);
    if (!digit)
        depluralize(s->names[s->n_names]);
    s->model[s->n_names++] = alpha && digit;
}

static void read_sig(const char *t, size_t n, struct sig *s)
{
    memset(s, 0, sizeof(*s));
    struct word w[2];
    size_t i = 0;
    bool sentence = true;
    int cur = 0;
    bool have = next_word(t, n, &i, &w[0], &sentence);
    while (have) {
        bool more = next_word(t, n, &i, &w[!cur], &sentence);
        const struct word *x = &w[cur];
        int64_t v;
        if (number_of(x, more ? w[!cur].low : NULL, &v))
            add_num(s, v);
        else if (is_name(x) && s->n_names < MAX_NAMES)
            add_name(s, x);
        if (s->n_words < MAX_WORDS) {
            memcpy(s->words[s->n_words], x->low, WORD_MAX);
            depluralize(s->words[s->n_words++]);
        }
        s->negations += negated(x);
        s->cmp |= IN(x->low, under_words) ? CMP_UNDER : IN(x->low, over_words) ? CMP_OVER : 0;
        cur = !cur;
        have = more;
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static bool same_numbers(struct sig *a, struct sig *b)
{
    if (a->n_nums != b->n_nums)
        return false;
    qsort(a->nums, (size_t)a->n_nums, sizeof(int64_t), cmp_i64);
    qsort(b->nums, (size_t)b->n_nums, sizeof(int64_t), cmp_i64);
    return memcmp(a->nums, b->nums, (size_t)a->n_nums * sizeof(int64_t)) == 0;
}

static bool has_word(const struct sig *s, const char *w)
{
    for (int k = 0; k < s->n_words; k++)
        if (strcmp(w, s->words[k]) == 0)
            return true;
    return false;
}

/* How a's names stand in b's words: *missing counts a's names that b lacks (a model token
 * missing counts twice: never optional), *shared those b has. */
static void names_in(const struct sig *a, const struct sig *b, int *missing, int *shared)
{
    *missing = *shared = 0;
    for (int i = 0; i < a->n_names; i++) {
        if (has_word(b, a->names[i]))
            (*shared)++;
        else
            *missing += a->model[i] ? 2 : 1;
    }
}

/* The names agree when neither side lacks one of the other's, or when only one side names more
 * and the extra words are no model tokens and qualify a name both share ("Samsung Galaxy A54" and
 * "Galaxy A54"; "HP Pavilion 14" and "Pavilion 14") — never when each names something the other
 * does not ("Dell" against "HP"). */
static bool same_names(const struct sig *a, const struct sig *b)
{
    int ma, sa, mb, sb;
    names_in(a, b, &ma, &sa);
    names_in(b, a, &mb, &sb);
    if (!ma && !mb)
        return true;
    if (ma && mb)
        return false;
    int missing = ma ? ma : mb, shared = ma ? sa : sb;
    for (int i = 0; i < (ma ? a : b)->n_names; i++)
        if ((ma ? a : b)->model[i] && !has_word(ma ? b : a, (ma ? a : b)->names[i]))
            return false;
    return missing > 0 && shared > 0;
}

/* The verdict; see the header. */
enum semguard_verdict semguard_check(const char *a, size_t alen, const char *b, size_t blen)
{
    struct sig sa, sb; /* ~9 KiB on the stack together: no allocation, no failure */
    read_sig(a, alen, &sa);
    read_sig(b, blen, &sb);
    if (!same_numbers(&sa, &sb))
        return SG_NUMBER;
    if (sa.negations != sb.negations)
        return SG_NEGATION;
    if (sa.cmp != sb.cmp)
        return SG_COMPARATOR;
    if (!same_names(&sa, &sb))
        return SG_NAME;
    return SG_SAME;
}

const char *semguard_name(enum semguard_verdict v)
{
    static const char *const names[] = {"same", "number", "negation", "comparator", "name"};
    return (unsigned)v < sizeof(names) / sizeof(names[0]) ? names[v] : "?";
}
