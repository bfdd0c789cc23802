/* sim_judge.c - the simulated judge (see sim_judge.h).
 *
 * Relevance: the share of the question's content words (ASCII letters and digits, three or
 * more characters, not a stop word, a plural "s" dropped) that the answer contains; with a
 * reference answer, 60 % that share and 40 % the share of the reference's first 40 content
 * words in the answer. 1 + 4 x share, rounded; an empty answer is 1. Tonality: 5, minus one for
 * each of narration of internal work, shouting ("!!" or three upper-case words in a row), rude
 * words, "as an AI", and more than 250 words; at least 1. */
#include "loadtest/sim/sim_judge.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#include "stream/jsonw.h"

enum {
    WORD_MAX = 32,     /* longer words are cut: they still match themselves */
    MAX_WORDS = 64,    /* content words read from the question */
    REF_WORDS = 40,    /* content words read from the reference */
    LONG_ANSWER = 250, /* words: above this an answer is rambling */
};

static const char *const stop_words[] = {
    "the",   "and",    "for",     "with",   "what",  "which", "how",    "does",  "you",   "your",
    "can",   "this",   "that",    "please", "show",  "best",  "under",  "below", "above", "there",
    "are",   "have",   "has",     "any",    "about", "tell",  "give",   "want",  "need",  "looking",
    "some",  "from",   "one",     "get",    "is",    "me",    "it",     "its",   "who",   "hello",
    "thank", "thanks", "good",    "will",   "would", "could", "should", "much",  "many",  "when",
    "where", "why",    "between", "than",   "more",  "less",  "all",    "our",   "their", "there",
};

static bool stop_word(const char *w)
{
    for (size_t i = 0; i < sizeof(stop_words) / sizeof(stop_words[0]); i++)
        if (strcmp(w, stop_words[i]) == 0)
            return true;
    return false;
}

/* The next word of s[*at..n) lower-cased into w (a plural "s" dropped); false at the end. */
static bool next_word(const char *s, size_t n, size_t *at, char w[WORD_MAX + 1])
{
    size_t i = *at;
    while (i < n && !isalnum((unsigned char)s[i]))
        i++;
    if (i >= n)
        return false;
    size_t len = 0;
    while (i < n && isalnum((unsigned char)s[i])) {
        if (len < WORD_MAX)
            w[len++] = (char)tolower((unsigned char)s[i]);
        i++;
    }
    if (len > 3 && w[len - 1] == 's' && w[len - 2] != 's')
        len--;
    w[len] = '\0';
    *at = i;
    return true;
}

/* Whether the word w occurs in s[0..n) as a whole word (same normalisation). */
static bool contains_word(const char *s, size_t n, const char *w)
{
    char x[WORD_MAX + 1];
    size_t at = 0;
    while (next_word(s, n, &at, x))
        if (strcmp(x, w) == 0)
            return true;
    return false;
}

/* Share of the content words of q[0..qn) (at most max of them) found in a[0..an); -1 if q has
 * none. */
static double overlap(const char *q, size_t qn, const char *a, size_t an, int max)
{
    char w[WORD_MAX + 1];
    size_t at = 0;
    int total = 0, found = 0;
    while (total < max && next_word(q, qn, &at, w)) {
        if (strlen(w) < 3 || stop_word(w))
            continue;
        total++;
        found += contains_word(a, an, w);
    }
    return total ? (double)found / total : -1;
}

/* The text after "NAME:\n" up to the next section (or the end); an empty section is empty. */
static const char *section(const char *t, size_t n, const char *name, size_t *len)
{
    const char *end = t + n, *p = memmem(t, n, name, strlen(name));
    if (!p)
        return NULL;
    p += strlen(name);
    const char *stop = end;
    static const char *const names[] = {"\n\nQUESTION:", "\n\nREFERENCE:", "\n\nANSWER:"};
    for (int i = 0; i < 3; i++) {
        const char *s = memmem(p, (size_t)(end - p), names[i] + 1, strlen(names[i]) - 1);
        if (s && s < stop && strcmp(names[i] + 2, name) != 0)
            stop = s; /* from the first of the two newlines before the next section's name */
    }
    while (p < stop && (*p == '\n' || *p == ' '))
        p++;
    *len = (size_t)(stop - p);
    return p;
}

static bool has_ci(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(s + i, needle, k) == 0)
            return true;
    return false;
}

static bool shouting(const char *a, size_t n)
{
    if (memmem(a, n, "!!", 2))
        return true;
    int run = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && isspace((unsigned char)a[i]))
            i++;
        size_t j = i, letters = 0;
        bool upper = true;
        for (; j < n && !isspace((unsigned char)a[j]); j++) {
            if (islower((unsigned char)a[j]))
                upper = false;
            letters += isalpha((unsigned char)a[j]) != 0;
        }
        run = upper && letters >= 2 ? run + 1 : 0;
        if (run >= 3)
            return true;
        i = j;
    }
    return false;
}

static int tonality(const char *a, size_t n, struct buf *why)
{
    static const char *const narration[] = {"let me check",   "let me search", "let me look",
                                            "let me find",    "let me call",   "i will now",
                                            "i'll now",       "calling the",   "transferring",
                                            "using the tool", "function call"};
    static const char *const rude[] = {"stupid", "obviously", "whatever",
                                       "dumb",   "idiot",     "shut up"};
    int score = 5;
    for (size_t i = 0; i < sizeof(narration) / sizeof(narration[0]); i++)
        if (has_ci(a, n, narration[i])) {
            score--, buf_append_str(why, "narrates its work; ");
            break;
        }
    if (shouting(a, n))
        score--, buf_append_str(why, "shouts; ");
    for (size_t i = 0; i < sizeof(rude) / sizeof(rude[0]); i++)
        if (has_ci(a, n, rude[i])) {
            score--, buf_append_str(why, "rude; ");
            break;
        }
    if (has_ci(a, n, "as an ai"))
        score--, buf_append_str(why, "talks about being an AI; ");
    char w[WORD_MAX + 1];
    size_t at = 0;
    int words = 0;
    while (next_word(a, n, &at, w))
        words++;
    if (words > LONG_ANSWER)
        score--, buf_append_str(why, "rambles; ");
    return score < 1 ? 1 : score;
}

/* The scores; see the header. */
void sim_judge_scores(const char *t, size_t n, int *relevance, int *tone, struct buf *reason)
{
    struct buf tmp = {0};
    struct buf *why = reason ? reason : &tmp;
    size_t qn = 0, rn = 0, an = 0;
    const char *q = section(t, n, "QUESTION:", &qn), *r = section(t, n, "REFERENCE:", &rn);
    const char *a = section(t, n, "ANSWER:", &an);
    if (!a) { /* not the eval's prompt: the whole text is the answer */
        a = t;
        an = n;
    }
    while (an && isspace((unsigned char)a[an - 1]))
        an--;
    if (an == 0) {
        *relevance = 1;
        *tone = 1;
        buf_append_str(why, "empty answer");
        buf_free(&tmp);
        return;
    }
    double share = q ? overlap(q, qn, a, an, MAX_WORDS) : -1;
    double ref = r ? overlap(r, rn, a, an, REF_WORDS) : -1;
    if (share < 0)
        share = 1;
    if (ref >= 0)
        share = 0.6 * share + 0.4 * ref;
    *relevance = 1 + (int)(4 * share + 0.5);
    if (*relevance < 5)
        buf_printf(why, "covers %.0f%% of what was asked; ", share * 100);
    *tone = tonality(a, an, why);
    if (buf_size(why) == 0)
        buf_append_str(why, "relevant and well put");
    buf_free(&tmp);
}

/* The judge's JSON; see the header. */
void sim_judge_answer(struct buf *out, const char *t, size_t n)
{
    int rel, tone;
    struct buf why = {0};
    sim_judge_scores(t, n, &rel, &tone, &why);
    struct jsonw w;
    jw_init(&w, out);
    jw_obj_begin(&w);
    jw_key(&w, "relevance");
    jw_int(&w, rel);
    jw_key(&w, "tonality");
    jw_int(&w, tone);
    jw_key(&w, "reason");
    jw_strn(&w, buf_begin(&why), buf_size(&why));
    jw_obj_end(&w);
    buf_free(&why);
}
