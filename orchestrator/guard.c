/* guard.c - narration filter, grounding check, refusals and the cascade decision (guard.h). */
#include "orchestrator/guard.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

/* ---- narration ---- */

enum { NS_START = 0, NS_PASS, NS_LEAD, NS_SENTENCE };

static const char *const leads[] = {"let me",
                                    "i am now",
                                    "i'm now",
                                    "im now",
                                    "i am going to",
                                    "i'm going to",
                                    "i will now",
                                    "i will",
                                    "i'll",
                                    "i am calling",
                                    "i'm calling",
                                    "i am checking",
                                    "i'm checking",
                                    "i am searching",
                                    "i'm searching",
                                    "i am looking",
                                    "i'm looking",
                                    "i am transferring",
                                    "i'm transferring",
                                    "i need to",
                                    "now calling",
                                    "now searching",
                                    "calling",
                                    "transferring",
                                    "handing",
                                    "searching",
                                    "checking",
                                    "looking up",
                                    "using the",
                                    "one moment",
                                    "please wait",
                                    "hold on",
                                    "first, i",
                                    "first i",
                                    "give me a moment",
                                    "allow me",
                                    NULL};

/* Words that make a lead sentence a narration of internal work. */
static const char *const actions[] = {
    "tool",     "tools",    "function",   "api",       "database",     "catalog",    "catalogue",
    "system",   "agent",    "specialist", "transfer",  "transferring", "handing",    "hand you",
    "calling",  "call the", "search",     "searching", "look up",      "looking up", "fetch",
    "fetching", "query",    "querying",   "backend",   "get_",         "lookup",     NULL};

static bool is_boundary(char c)
{
    return c == '.' || c == '!' || c == '?' || c == ':' || c == '\n';
}

static bool lower_prefix(const char *s, size_t n, const char *lead)
{
    for (size_t i = 0; i < n; i++) {
        if (!lead[i])
            return false;
        char c = (char)tolower((unsigned char)s[i]);
        if (c == '\'' || (unsigned char)s[i] == 0xE2) /* typographic apostrophe starts E2 80 99 */
            c = '\'';
        if (c != lead[i])
            return false;
    }
    return true;
}

/* The held text is a prefix of some lead (0), or has a whole lead followed by a word boundary
 * (1), or neither (-1). A typographic apostrophe is compared as one byte for simplicity: a held
 * "I’m" diverges and is released, which is safe. */
static int match_lead(const char *s, size_t n)
{
    int r = -1;
    for (const char *const *l = leads; *l; l++) {
        size_t ln = strlen(*l);
        if (n <= ln) {
            if (lower_prefix(s, n, *l))
                r = 0;
        } else if (lower_prefix(s, ln, *l) && !isalnum((unsigned char)s[ln])) {
            return 1;
        }
    }
    return r;
}

static bool contains_word(const char *s, size_t n, const char *w)
{
    size_t wl = strlen(w);
    for (size_t i = 0; i + wl <= n; i++) {
        if ((i == 0 || !isalpha((unsigned char)s[i - 1])) && lower_prefix(s + i, wl, w))
            return true;
    }
    return false;
}

/* Whether a sentence is narration; see the header. */
bool narr_is_narration(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    if (match_lead(s, n) != 1)
        return false;
    for (const char *const *a = actions; *a; a++)
        if (contains_word(s, n, *a))
            return true;
    return false;
}

void narr_init(struct narr_filter *f)
{
    memset(f, 0, sizeof(*f));
}

static void release(struct narr_filter *f, narr_emit_fn emit, void *ctx)
{
    if (f->nheld) {
        emit(ctx, f->held, f->nheld);
        f->emitted = true;
    }
    f->nheld = 0;
}

/* A held sentence ended: drop it or let it go. */
static void decide(struct narr_filter *f, narr_emit_fn emit, void *ctx)
{
    if (narr_is_narration(f->held, f->nheld)) {
        f->removed++;
        f->nheld = 0;
        f->skip_space = true;
    } else {
        release(f, emit, ctx);
    }
    f->state = NS_START;
}

/* One byte while holding; returns false when the byte must be processed again as passing
 * text (the lead diverged before it). */
static bool hold_byte(struct narr_filter *f, char c, narr_emit_fn emit, void *ctx)
{
    if (f->state == NS_SENTENCE && f->boundary && isspace((unsigned char)c)) {
        f->boundary = false;
        decide(f, emit, ctx);
        return false; /* the white space after it: start of the next sentence */
    }
    if (f->nheld == sizeof(f->held)) {
        release(f, emit, ctx); /* too long to be a narration we can hold */
        f->state = NS_PASS;
        return false;
    }
    f->held[f->nheld++] = c;
    f->boundary = is_boundary(c);
    if (f->state == NS_LEAD) {
        int m = match_lead(f->held, f->nheld);
        if (m == 1) {
            f->state = NS_SENTENCE;
        } else if (m < 0) {
            f->nheld--;
            release(f, emit, ctx);
            f->state = NS_PASS;
            return false;
        }
    }
    return true;
}

/* Filter streamed text; see the header. */
void narr_feed(struct narr_filter *f, const char *text, size_t len, narr_emit_fn emit, void *ctx)
{
    size_t run = 0; /* start of the pending pass-through run */
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (f->state == NS_LEAD || f->state == NS_SENTENCE) {
            if (hold_byte(f, c, emit, ctx)) {
                run = i + 1;
                continue;
            }
            run = i; /* c is processed below as the start of a new run */
            if (f->state == NS_SENTENCE || f->state == NS_LEAD)
                continue;
        }
        if (f->state == NS_START ||
            (f->state == NS_PASS && f->boundary && isspace((unsigned char)c))) {
            f->boundary = false;
            if (isspace((unsigned char)c)) {
                if (f->skip_space) {
                    if (i > run)
                        emit(ctx, text + run, i - run), f->emitted = true;
                    run = i + 1;
                }
                f->state = NS_START;
                continue;
            }
            f->skip_space = false;
            if (match_lead(&c, 1) == 0) {
                if (i > run)
                    emit(ctx, text + run, i - run), f->emitted = true;
                f->state = NS_LEAD;
                f->held[0] = c;
                f->nheld = 1;
                run = i + 1;
                continue;
            }
            f->state = NS_PASS;
        }
        f->boundary = is_boundary(c);
    }
    if (len > run && f->state != NS_LEAD && f->state != NS_SENTENCE) {
        emit(ctx, text + run, len - run);
        f->emitted = true;
    }
}

void narr_finish(struct narr_filter *f, narr_emit_fn emit, void *ctx)
{
    if (f->state == NS_SENTENCE)
        decide(f, emit, ctx);
    else
        release(f, emit, ctx);
    f->state = NS_START;
}

/* ---- grounding ---- */

/* A number's canonical text: digits, one '.', commas dropped, trailing decimal zeros (and a
 * bare '.') dropped. Returns its length (0 when it does not fit). */
static size_t canon_number(const char *p, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    bool dot = false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == ',')
            continue;
        if (o + 1 >= cap)
            return 0;
        if (p[i] == '.')
            dot = true;
        out[o++] = p[i];
    }
    if (dot) {
        while (o && out[o - 1] == '0')
            o--;
        if (o && out[o - 1] == '.')
            o--;
    }
    out[o] = '\0';
    return o;
}

/* The number starting at p[i] (digits with ',' and '.' between digits); returns its length. */
static size_t number_at(const char *p, size_t n, size_t i)
{
    size_t j = i;
    while (j < n && (isdigit((unsigned char)p[j]) || ((p[j] == ',' || p[j] == '.') && j + 1 < n &&
                                                      isdigit((unsigned char)p[j + 1]))))
        j++;
    return j - i;
}

/* "16k", "1.5 lakh", "2 crore" in a source (the user's budget, typically) stand for 16000,
 * 150000, 20000000: an answer that writes "₹16,000" states the same number. */
static bool scaled_matches(const char *p, size_t n, size_t i, size_t k, const char *canon)
{
    static const struct {
        const char *word;
        double mult;
    } scales[] = {{"k", 1e3}, {"lakh", 1e5}, {"lakhs", 1e5}, {"lac", 1e5}, {"crore", 1e7}};
    size_t j = i + k;
    if (j < n && p[j] == ' ')
        j++;
    for (size_t s = 0; s < sizeof(scales) / sizeof(scales[0]); s++) {
        size_t wl = strlen(scales[s].word);
        if (j + wl > n || !lower_prefix(p + j, wl, scales[s].word) ||
            (j + wl < n && isalnum((unsigned char)p[j + wl])))
            continue;
        char num[40], scaled[48];
        if (!canon_number(p + i, k, num, sizeof(num)))
            return false;
        double v = strtod(num, NULL) * scales[s].mult;
        if (v < 0 || v > 1e15)
            return false;
        snprintf(scaled, sizeof(scaled), "%.0f", v);
        return strcmp(scaled, canon) == 0;
    }
    return false;
}

static bool source_has(const char *const *src, const size_t *lens, size_t ns, const char *canon)
{
    char c[40];
    for (size_t s = 0; s < ns; s++) {
        const char *p = src[s];
        for (size_t i = 0; i < lens[s];) {
            if (!isdigit((unsigned char)p[i]) || (i && isdigit((unsigned char)p[i - 1]))) {
                i++;
                continue;
            }
            size_t k = number_at(p, lens[s], i);
            if (canon_number(p + i, k, c, sizeof(c)) && strcmp(c, canon) == 0)
                return true;
            if (scaled_matches(p, lens[s], i, k, canon))
                return true;
            i += k;
        }
    }
    return false;
}

static const char *const units[] = {"mah",  "gb",     "tb", "mp",   "ghz",    "hz",  "w",
                                    "inch", "inches", "\"", "mm",   "hours",  "hrs", "hr",
                                    "h",    "g",      "kg", "nits", "rupees", "/-",  NULL};

static bool unit_after(const char *p, size_t n, size_t j)
{
    if (j < n && p[j] == ' ')
        j++;
    for (const char *const *u = units; *u; u++) {
        size_t ul = strlen(*u);
        if (j + ul <= n && lower_prefix(p + j, ul, *u) &&
            (j + ul == n || !isalnum((unsigned char)p[j + ul])))
            return true;
    }
    return false;
}

static bool price_before(const char *p, size_t i)
{
    size_t b = i;
    while (b && p[b - 1] == ' ')
        b--;
    if (b >= 3 && (unsigned char)p[b - 3] == 0xE2 && (unsigned char)p[b - 2] == 0x82 &&
        (unsigned char)p[b - 1] == 0xB9)
        return true; /* U+20B9 */
    if (b >= 1 && p[b - 1] == '.')
        b--; /* "Rs." */
    if (b >= 2 && lower_prefix(p + b - 2, 2, "rs") && (b == 2 || !isalpha((unsigned char)p[b - 3])))
        return true;
    return b >= 3 && lower_prefix(p + b - 3, 3, "inr");
}

/* Check the answer's prices and specs; see the header. */
void ground_check(const char *a, size_t n, const char *const *sources, const size_t *source_lens,
                  size_t n_sources, struct grounding *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n;) {
        if (!isdigit((unsigned char)a[i]) ||
            (i && (isalnum((unsigned char)a[i - 1]) || a[i - 1] == '.' || a[i - 1] == ','))) {
            i++;
            continue;
        }
        size_t k = number_at(a, n, i);
        bool claim = price_before(a, i) || unit_after(a, n, i + k);
        char c[40];
        if (claim && canon_number(a + i, k, c, sizeof(c))) {
            out->claims++;
            if (!source_has(sources, source_lens, n_sources, c)) {
                if (!out->mismatches++) {
                    size_t from = i;
                    while (from > 0 && i - from < 4 && a[from - 1] != ' ' && a[from - 1] != '\n')
                        from--; /* the price mark written against the number */
                    while (from < i && ((unsigned char)a[from] & 0xC0) == 0x80)
                        from++;        /* from a character's start, not inside the one before */
                    size_t to = i + k; /* and a unit written against it */
                    while (to < n && isalpha((unsigned char)a[to]))
                        to++;
                    size_t l = to - from;
                    if (l >= sizeof(out->first_mismatch))
                        l = sizeof(out->first_mismatch) - 1;
                    memcpy(out->first_mismatch, a + from, l);
                    out->first_mismatch[l] = '\0';
                }
            }
        }
        i += k ? k : 1;
    }
}

/* ---- the verified answer ---- */

/* The bytes of the UTF-8 punctuation, space or symbol at t[0..n) that typography adds or drops
 * (U+0080..U+00BF: no-break space, "°", "®"...; U+2000..U+206F: dashes, curly quotes, narrow
 * spaces, "…"; U+2122 "™"; U+20B9 "₹"), or 0 for anything else. */
static size_t typo_len(const char *t, size_t n)
{
    const unsigned char *u = (const unsigned char *)t;
    if (n >= 2 && u[0] == 0xC2 && u[1] >= 0x80 && u[1] <= 0xBF)
        return 2;
    if (n >= 3 && u[0] == 0xE2 && (u[1] == 0x80 || u[1] == 0x81) && u[2] >= 0x80 && u[2] <= 0xBF)
        return 3;
    if (n >= 3 && u[0] == 0xE2 &&
        ((u[1] == 0x84 && u[2] == 0xA2) || (u[1] == 0x82 && u[2] == 0xB9)))
        return 3;
    return 0;
}

/* t[0..n) folded to lower-case ASCII letters and digits (everything else dropped, typo_len's
 * characters too; other bytes above 0x7f kept as they are, so UTF-8 names still compare) into
 * out[0..cap); returns the length. */
static size_t fold_alnum(const char *t, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o < cap; i++) {
        unsigned char c = (unsigned char)t[i];
        size_t skip = c >= 0x80 ? typo_len(t + i, n - i) : 0;
        if (skip)
            i += skip - 1;
        else if (c >= 0x80 || isalnum(c))
            out[o++] = (char)(c < 0x80 ? tolower(c) : c);
    }
    return o;
}

/* The four hex digits at t[i], or -1. */
static int hex4(const char *t, size_t n, size_t i)
{
    int v = 0;
    if (i + 4 > n)
        return -1;
    for (size_t k = i; k < i + 4; k++) {
        int d = isdigit((unsigned char)t[k])    ? t[k] - '0'
                : isxdigit((unsigned char)t[k]) ? (tolower((unsigned char)t[k]) - 'a' + 10)
                                                : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A source folded like fold_alnum, with JSON string escapes read as what they stand for: a tool
 * result is JSON as the tool's encoder wrote it, and many write "Caf\u00e9" or "Tom \u0026
 * Jerry" for what the model writes "Café" and "Tom & Jerry". \uXXXX (surrogate pairs too) becomes
 * its UTF-8; the one-letter escapes (\n, \", ...) stand for no letter or digit and are dropped.
 * The output is never longer than the input. */
static size_t fold_source(const char *t, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o < cap;) {
        if (t[i] != '\\' || i + 1 >= n) { /* a run up to the next escape, folded whole */
            const char *bs = memchr(t + i + 1, '\\', n - i - 1);
            size_t run = bs ? (size_t)(bs - t) - i : n - i;
            o += fold_alnum(t + i, run, out + o, cap - o);
            i += run;
            continue;
        }
        int cp = t[i + 1] == 'u' ? hex4(t, n, i + 2) : -1;
        if (cp < 0) {
            i += 2; /* \n, \t, \", \\, \/ ...: no letter or digit */
            continue;
        }
        i += 6;
        int lo = cp >= 0xD800 && cp < 0xDC00 && i + 1 < n && t[i] == '\\' && t[i + 1] == 'u'
                     ? hex4(t, n, i + 2)
                     : -1;
        if (lo >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
        }
        char u[4];
        size_t k;
        if (cp < 0x80)
            u[0] = (char)cp, k = 1;
        else if (cp < 0x800)
            u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F)), k = 2;
        else if (cp < 0x10000)
            u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F)),
            u[2] = (char)(0x80 | (cp & 0x3F)), k = 3;
        else
            u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
            u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F)), k = 4;
        o += fold_alnum(u, k, out + o, cap - o);
    }
    return o;
}

static bool folded_in(const char *hay, size_t hn, const char *needle, size_t nn)
{
    if (!nn || nn > hn)
        return nn == 0;
    for (size_t i = 0; i + nn <= hn; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, nn) == 0)
            return true;
    return false;
}

/* See the header. */
bool answer_has_table(const char *t, size_t n)
{
    bool prev_row = false;
    for (size_t i = 0; i < n;) {
        size_t e = i;
        while (e < n && t[e] != '\n')
            e++;
        size_t b = i;
        while (b < e && t[b] == ' ')
            b++;
        bool row = b < e && t[b] == '|';
        if (row && prev_row) {
            bool delim = true, dash = false;
            for (size_t k = b; k < e && delim; k++) {
                delim = t[k] == '|' || t[k] == '-' || t[k] == ':' || t[k] == ' ' || t[k] == '\r';
                dash |= t[k] == '-';
            }
            if (delim && dash)
                return true;
        }
        prev_row = row;
        i = e + 1;
    }
    return false;
}

/* Where a bold span's name ends: at a price mark ("₹", or "Rs" / "INR" before a number), whose
 * number ground_check weighs as a claim: "Nova X 5G - ₹18,999" names "Nova X 5G - ". */
static size_t name_end(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i + 3 <= n && (unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x82 &&
            (unsigned char)s[i + 2] == 0xB9)
            return i;
        if (i && isalnum((unsigned char)s[i - 1]))
            continue;
        size_t w = i + 2 <= n && !strncmp(s + i, "Rs", 2)    ? 2
                   : i + 3 <= n && !strncmp(s + i, "INR", 3) ? 3
                                                             : 0;
        size_t j = i + w;
        if (w && j < n && s[j] == '.')
            j++;
        while (w && j < n && s[j] == ' ')
            j++;
        if (w && j < n && isdigit((unsigned char)s[j]))
            return i;
    }
    return n;
}

/* A run of letters that names no thing: a unit or a word of a spec or a price. */
static bool spec_word(const char *s, size_t n)
{
    static const char *const more[] = {"rs", "inr", "rupees", "ram", "rom", "storage", NULL};
    for (int k = 0; k < 2; k++)
        for (const char *const *u = k ? more : units; *u; u++)
            if (strlen(*u) == n && lower_prefix(s, n, *u))
                return true;
    return false;
}

/* Whether the name part of a bold span names a thing: with a digit, when a word in it is not a
 * unit ("Nova X 5G"; "8 GB", "5000 mAh" and "18,999.00" are specs and prices, checked as claims);
 * without one, two or more words, a capital letter in a word after the first, and no colon at
 * the end ("Zeta Pro", "Apple iPhone Pro", "This product Pro"; "really good", "Best for gaming"
 * and "Return Policy:" are emphasis and labels). */
static bool is_name(const char *s, size_t n)
{
    bool digit = false, word = false, capital = false;
    size_t words = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        digit |= isdigit(c) != 0;
        if (c != ' ' && (!i || s[i - 1] == ' ')) {
            words++;
            /* a capital anywhere in a later word: "Pro", a brand's own casing ("iPhone") */
            for (size_t k = i; k < n && s[k] != ' ' && words > 1; k++)
                capital |= isupper((unsigned char)s[k]) != 0;
        }
        size_t typo = c >= 0x80 ? typo_len(s + i, n - i) : 0;
        if (!isalpha(c)) {
            word |= c >= 0x80 && !typo; /* a letter of another script, not a dash or a quote */
            i += typo ? typo : 1;
            continue;
        }
        size_t k = i;
        while (k < n && isalpha((unsigned char)s[k]))
            k++;
        word |= !spec_word(s + i, k - i);
        i = k;
    }
    size_t e = n;
    while (e && s[e - 1] == ' ')
        e--;
    if (digit)
        return word;
    return words >= 2 && capital && !(e && s[e - 1] == ':');
}

/* See the header. */
enum verify_verdict verify_answer(const char *a, size_t n, const char *const *sources,
                                  const size_t *source_lens, size_t n_sources, bool want_table,
                                  struct verify_result *out)
{
    memset(out, 0, sizeof(*out));
    ground_check(a, n, sources, source_lens, n_sources, &out->g);
    out->table = answer_has_table(a, n);
    size_t total = 0;
    for (size_t s = 0; s < n_sources; s++)
        total += source_lens[s] + 1;
    char *folded = xmalloc(total + 1);
    size_t fl = 0;
    for (size_t s = 0; s < n_sources; s++) {
        fl += fold_source(sources[s], source_lens[s], folded + fl, total - fl);
        folded[fl++] = '\0'; /* no name spans two sources */
    }
    for (size_t i = 0; i + 1 < n; i++) {
        if (a[i] != '*' || a[i + 1] != '*')
            continue;
        size_t from = i + 2, to = from;
        while (to + 1 < n && !(a[to] == '*' && a[to + 1] == '*') && a[to] != '\n')
            to++;
        if (to + 1 >= n)
            break;
        if (a[to] != '*') { /* not closed on this line */
            i = to;
            continue;
        }
        i = to + 1;
        if (to - from < 3 || to - from > 160)
            continue;
        size_t end = from + name_end(a + from, to - from);
        char name[160];
        size_t nl = fold_alnum(a + from, end - from, name, sizeof(name));
        if (nl < 2 || !is_name(a + from, end - from))
            continue; /* emphasis ("**not**"), a label, a price or a spec, not a name */
        out->names++;
        if (!folded_in(folded, fl, name, nl) && !out->unknown_names++) {
            size_t l =
                to - from < sizeof(out->first_name) - 1 ? to - from : sizeof(out->first_name) - 1;
            while (l && l < to - from && ((unsigned char)a[from + l] & 0xC0) == 0x80)
                l--; /* cut on a UTF-8 boundary */
            memcpy(out->first_name, a + from, l);
            out->first_name[l] = '\0';
        }
    }
    xfree(folded);
    if (out->g.mismatches || out->unknown_names)
        return VERIFY_UNGROUNDED;
    return want_table && !out->table ? VERIFY_FORMAT : VERIFY_OK;
}

/* ---- refusals and the cascade ---- */

bool answer_is_refusal(const char *t, size_t n)
{
    static const char *const openings[] = {"i'm sorry, but i can",
                                           "i am sorry, but i can",
                                           "sorry, i can",
                                           "i cannot",
                                           "i can't",
                                           "i can not",
                                           "i am unable",
                                           "i'm unable",
                                           "i am not able",
                                           "i'm not able",
                                           "as an ai",
                                           "i won't be able",
                                           "unfortunately, i can't",
                                           "unfortunately, i cannot",
                                           NULL};
    while (n && isspace((unsigned char)*t))
        t++, n--;
    if (!n)
        return true;
    for (const char *const *o = openings; *o; o++) {
        size_t ol = strlen(*o);
        if (n >= ol && lower_prefix(t, ol, *o))
            return true;
    }
    return false;
}

const char *escalation_name(enum escalation e)
{
    static const char *const names[ESC__COUNT] = {
        "none",           "empty",     "refusal",     "invalid_tool_call", "tool_failed",
        "low_confidence", "guardrail", "model_error", "ungrounded",        "format",
    };
    return (unsigned)e < ESC__COUNT ? names[e] : "?";
}

/* Decide an escalation; see the header. */
enum escalation cascade_check(const struct cascade_policy *p, const struct step_outcome *o)
{
    if (o->shown)
        return ESC_NONE;
    bool said = o->opening && o->opening_len;
    if (o->answer_done && !said && !o->tool_calls && !o->call_failed)
        return ESC_EMPTY;
    if (said && answer_is_refusal(o->opening, o->opening_len))
        return ESC_REFUSAL;
    if (o->invalid_tool_calls)
        return ESC_INVALID_TOOL_CALL;
    if (p->on_tool_failure && o->failed_tool_calls)
        return ESC_TOOL_FAILED;
    if (p->min_confidence > 0 && o->classifier_confidence < p->min_confidence)
        return ESC_LOW_CONFIDENCE;
    if (o->guard_hit)
        return ESC_GUARDRAIL;
    if (o->call_failed)
        return ESC_MODEL_ERROR;
    return ESC_NONE;
}
