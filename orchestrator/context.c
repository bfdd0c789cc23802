/* context.c - context policies and product references (context.h). */
#include "orchestrator/context.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

/* Select by policy; see the header. */
size_t context_select(enum context_policy p, const struct ctx_msg *hist, size_t n, size_t *idx,
                      size_t cap)
{
    if (!n || !cap)
        return 0;
    size_t k = 0;
    switch (p) {
    case CTX_FULL: {
        size_t from = n > cap ? n - cap : 0;
        for (size_t i = from; i < n; i++)
            idx[k++] = i;
        return k;
    }
    case CTX_CLARIFICATION:
        if (n >= 3 && cap >= 3 && !strcmp(hist[n - 2].role, "assistant") &&
            !strcmp(hist[n - 3].role, "user")) {
            const struct ctx_msg *a = &hist[n - 2];
            size_t l = a->len;
            while (l && isspace((unsigned char)a->text[l - 1]))
                l--;
            if (l && a->text[l - 1] == '?') {
                idx[k++] = n - 3;
                idx[k++] = n - 2;
            }
        }
        idx[k++] = n - 1;
        return k;
    case CTX_QUERY:
    case CTX_CHOSEN_PRODUCT:
    default:
        idx[0] = n - 1;
        return 1;
    }
}

static bool has_word(const char *t, size_t n, const char *w)
{
    size_t wl = strlen(w);
    for (size_t i = 0; i + wl <= n; i++) {
        if (i && isalnum((unsigned char)t[i - 1]))
            continue;
        if (i + wl < n && isalnum((unsigned char)t[i + wl]))
            continue;
        size_t j = 0;
        while (j < wl && tolower((unsigned char)t[i + j]) == w[j])
            j++;
        if (j == wl)
            return true;
    }
    return false;
}

static int ordinal(const char *t, size_t len, size_t n)
{
    static const char *const words[][3] = {
        {"first", "1st", "#1"},  {"second", "2nd", "#2"}, {"third", "3rd", "#3"},
        {"fourth", "4th", "#4"}, {"fifth", "5th", "#5"},
    };
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]) && i < n; i++)
        for (int j = 0; j < 3; j++) {
            const char *w = words[i][j];
            bool hit = w[0] == '#' ? memmem(t, len, w, strlen(w)) != NULL : has_word(t, len, w);
            if (hit)
                return (int)i;
        }
    if (has_word(t, len, "last"))
        return (int)n - 1;
    return -1;
}

static int by_price(const struct slate_ref *s, size_t n, bool cheapest)
{
    int best = -1;
    for (size_t i = 0; i < n; i++)
        if (s[i].price >= 0 &&
            (best < 0 || (cheapest ? s[i].price < s[best].price : s[i].price > s[best].price)))
            best = (int)i;
    return best;
}

/* Words of 3+ letters of title found in text. */
static int overlap(const char *text, size_t len, const char *title)
{
    int hits = 0;
    for (const char *p = title; *p;) {
        while (*p && !isalnum((unsigned char)*p))
            p++;
        const char *s = p;
        while (isalnum((unsigned char)*p))
            p++;
        size_t wl = (size_t)(p - s);
        if (wl < 3 || wl > 31)
            continue;
        char w[32];
        for (size_t i = 0; i < wl; i++)
            w[i] = (char)tolower((unsigned char)s[i]);
        w[wl] = '\0';
        hits += has_word(text, len, w);
    }
    return hits;
}

/* Resolve a reference to a slate item; see the header. */
int context_resolve_product(const char *text, size_t len, const struct slate_ref *slate, size_t n)
{
    if (!n)
        return -1;
    int o = ordinal(text, len, n);
    if (o >= 0)
        return o;
    if (has_word(text, len, "cheapest") || has_word(text, len, "cheaper"))
        return by_price(slate, n, true);
    if (memmem(text, len, "most expensive", 14) || has_word(text, len, "priciest"))
        return by_price(slate, n, false);
    int best = -1, best_hits = 0, ties = 0;
    for (size_t i = 0; i < n; i++) {
        int h = slate[i].title ? overlap(text, len, slate[i].title) : 0;
        if (h > best_hits)
            best = (int)i, best_hits = h, ties = 0;
        else if (h && h == best_hits)
            ties++;
    }
    return ties ? -1 : best;
}

static size_t count_wanted(const char *t, size_t len)
{
    static const char *const nums[][2] = {{"two", "2"}, {"three", "3"}, {"four", "4"}};
    for (size_t i = 0; i < 3; i++)
        if (has_word(t, len, nums[i][0]) || has_word(t, len, nums[i][1]))
            return i + 2;
    return 2;
}

/* Pick the products a comparison means; see the header. */
size_t context_pick_products(const char *text, size_t len, const struct slate_ref *slate, size_t n,
                             size_t *idx, size_t max)
{
    if (!n || !max)
        return 0;
    bool pick[64] = {0};
    size_t want = count_wanted(text, len), k = 0;
    if (n > 64)
        n = 64;
    bool cheap = has_word(text, len, "cheapest") || has_word(text, len, "cheaper");
    bool dear = memmem(text, len, "most expensive", 14) || has_word(text, len, "priciest");
    if (cheap || dear) {
        for (size_t r = 0; r < want && r < n; r++) {
            int best = -1;
            for (size_t i = 0; i < n; i++)
                if (!pick[i] && slate[i].price >= 0 &&
                    (best < 0 || (cheap ? slate[i].price < slate[best].price
                                        : slate[i].price > slate[best].price)))
                    best = (int)i;
            if (best >= 0)
                pick[best] = true;
        }
    } else {
        static const char *const ord[][2] = {{"first", "1st"},
                                             {"second", "2nd"},
                                             {"third", "3rd"},
                                             {"fourth", "4th"},
                                             {"fifth", "5th"}};
        for (size_t i = 0; i < 5 && i < n; i++)
            pick[i] = has_word(text, len, ord[i][0]) || has_word(text, len, ord[i][1]);
        if (has_word(text, len, "last"))
            pick[n - 1] = true;
        for (size_t i = 0; i < n; i++)
            pick[i] |= slate[i].title && overlap(text, len, slate[i].title) >= 2;
    }
    for (size_t i = 0; i < n && k < max; i++)
        if (pick[i])
            idx[k++] = i;
    if (k == 0)
        for (size_t i = 0; i < n && i < 2 && k < max; i++)
            idx[k++] = i;
    return k;
}
