/* normalize.c - the normalized form of a query (normalize.h), on utf8proc for Unicode. */
#include "orchestrator/normalize.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <utf8proc.h>

#include "base/mem.h"
#include "stream/json.h"

struct phrase {
    char *from; /* normalized words joined by one space */
    char *to;   /* "" = a filler */
};

struct norm_words {
    struct phrase *p;
    size_t n;
};

/* The words of a text after steps 1 and 2: back to back in `bytes`, each NUL-terminated. */
struct words {
    struct buf bytes;
    size_t *start;
    size_t n, cap;
};

static void words_free(struct words *w)
{
    buf_free(&w->bytes);
    xfree(w->start);
    memset(w, 0, sizeof(*w));
}

static void word_begin(struct words *w, bool *open)
{
    if (*open)
        return;
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->start = xrealloc(w->start, w->cap * sizeof(*w->start));
    }
    w->start[w->n++] = buf_size(&w->bytes);
    *open = true;
}

static void word_end(struct words *w, bool *open)
{
    if (*open)
        buf_append(&w->bytes, "", 1);
    *open = false;
}

static const char *word(const struct words *w, size_t i)
{
    return buf_begin(&w->bytes) + w->start[i];
}

static bool is_digit(utf8proc_int32_t c)
{
    return utf8proc_category(c) == UTF8PROC_CATEGORY_ND;
}

static bool is_apostrophe(utf8proc_int32_t c)
{
    return c == '\'' || c == 0x2019 || c == 0x02BC || c == 0x2018;
}

/* What one code point of the folded text is: part of a word, a separator, a word of its own. */
enum cp_kind { CP_LETTER, CP_SEP, CP_DROP, CP_SYMBOL };

static enum cp_kind classify(const utf8proc_int32_t *cp, size_t i, size_t n)
{
    utf8proc_int32_t c = cp[i];
    if (is_apostrophe(c))
        return CP_DROP;
    if (c == '%' || c == '#' || c == '&' || c == '@')
        return CP_SYMBOL; /* punctuation by category, but "50%" and "50" differ */
    if ((c == ',' || c == '.') && i > 0 && i + 1 < n && is_digit(cp[i - 1]) && is_digit(cp[i + 1]))
        return c == ',' ? CP_DROP : CP_LETTER; /* 1,000 -> 1000; 2.5 stays a number */
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_SM:
    case UTF8PROC_CATEGORY_SC:
    case UTF8PROC_CATEGORY_SK:
    case UTF8PROC_CATEGORY_SO:
        return CP_SYMBOL;
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return CP_LETTER;
    default: /* punctuation, separators, controls, unassigned */
        return CP_SEP;
    }
}

/* Steps 1 and 2: fold s and split it into words. Returns 0 or -EINVAL (invalid UTF-8). */
static int split_words(const char *s, size_t n, struct words *out)
{
    memset(out, 0, sizeof(*out));
    utf8proc_uint8_t *folded = NULL;
    utf8proc_ssize_t fl = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &folded,
                                       UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE |
                                           UTF8PROC_CASEFOLD | UTF8PROC_IGNORE);
    if (fl < 0)
        return -EINVAL;
    utf8proc_int32_t *cp = xmalloc(((size_t)fl + 1) * sizeof(*cp));
    size_t ncp = 0;
    for (utf8proc_ssize_t off = 0; off < fl;) {
        utf8proc_ssize_t k = utf8proc_iterate(folded + off, fl - off, &cp[ncp]);
        if (k <= 0)
            break; /* cannot happen: utf8proc_map produced it */
        off += k;
        ncp++;
    }
    bool open = false;
    for (size_t i = 0; i < ncp; i++) {
        enum cp_kind kind = classify(cp, i, ncp);
        if (kind == CP_DROP)
            continue;
        if (kind == CP_SEP || kind == CP_SYMBOL)
            word_end(out, &open);
        if (kind == CP_SEP)
            continue;
        utf8proc_uint8_t enc[4];
        utf8proc_ssize_t el = utf8proc_encode_char(cp[i], enc);
        word_begin(out, &open);
        buf_append(&out->bytes, enc, (size_t)el);
        if (kind == CP_SYMBOL)
            word_end(out, &open);
    }
    word_end(out, &open);
    xfree(cp);
    free(folded); /* utf8proc allocates with malloc */
    return 0;
}

/* Words i..i+k joined by single spaces into b (reset first). */
static void join(const struct words *w, size_t i, size_t k, struct buf *b)
{
    buf_reset(b);
    for (size_t j = i; j < i + k; j++) {
        if (j > i)
            buf_append(b, " ", 1);
        buf_append_str(b, word(w, j));
    }
}

static const struct phrase *find_phrase(const struct norm_words *nw, const struct buf *key)
{
    for (size_t i = 0; nw && i < nw->n; i++)
        if (strlen(nw->p[i].from) == buf_size(key) &&
            memcmp(nw->p[i].from, buf_begin(key), buf_size(key)) == 0)
            return &nw->p[i];
    return NULL;
}

static void emit(struct buf *out, size_t *emitted, const char *s, size_t n)
{
    if (!n)
        return;
    if (*emitted)
        buf_append(out, " ", 1);
    buf_append(out, s, n);
    *emitted += 1;
}

/* Normalize a query; see the header. */
int query_normalize(const struct norm_words *nw, const char *s, size_t n, struct buf *out)
{
    struct words w;
    if (split_words(s, n, &w) < 0)
        return -EINVAL;
    struct buf key = {0};
    size_t emitted = 0;
    for (size_t i = 0; i < w.n;) {
        size_t max = w.n - i < NORM_PHRASE_WORDS ? w.n - i : NORM_PHRASE_WORDS;
        const struct phrase *p = NULL;
        size_t k = max;
        for (; nw && nw->n && k >= 1 && !p; k--) {
            join(&w, i, k, &key);
            p = find_phrase(nw, &key);
        }
        if (p) {
            emit(out, &emitted, p->to, strlen(p->to));
            i += k + 1; /* the loop's k-- ran once after the match */
            continue;
        }
        emit(out, &emitted, word(&w, i), strlen(word(&w, i)));
        i++;
    }
    buf_free(&key);
    words_free(&w);
    return 0;
}

/* ---- the words file ---- */

/* See normalize.h. */
struct norm_words *norm_words_create(void)
{
    return xcalloc(1, sizeof(struct norm_words));
}

/* See normalize.h. */
size_t norm_words_count(const struct norm_words *w)
{
    return w ? w->n : 0;
}

/* See normalize.h. */
void norm_words_free(struct norm_words *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++) {
        xfree(w->p[i].from);
        xfree(w->p[i].to);
    }
    xfree(w->p);
    xfree(w);
}

/* s after steps 1, 2 and 4 (no phrases) as an owned string; NULL when invalid or too long. */
static char *plain_form(const char *s, size_t *nwords)
{
    struct words w;
    if (split_words(s, strlen(s), &w) < 0)
        return NULL;
    struct buf b = {0};
    join(&w, 0, w.n, &b);
    *nwords = w.n;
    words_free(&w);
    char *r = xstrndup(buf_begin(&b) ? buf_begin(&b) : "", buf_size(&b));
    buf_free(&b);
    return r;
}

/* Add a phrase; see the header. A later entry with the same left side replaces the earlier. */
int norm_words_add(struct norm_words *w, const char *from, const char *to)
{
    size_t nf, nt;
    char *f = plain_form(from, &nf);
    char *t = plain_form(to ? to : "", &nt);
    if (!f || !t || nf == 0 || nf > NORM_PHRASE_WORDS) {
        xfree(f);
        xfree(t);
        return -EINVAL;
    }
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->p[i].from, f) == 0) {
            xfree(w->p[i].to);
            xfree(f);
            w->p[i].to = t;
            return 0;
        }
    w->p = xrealloc(w->p, (w->n + 1) * sizeof(*w->p));
    w->p[w->n++] = (struct phrase){f, t};
    return 0;
}

static int load_fillers(struct norm_words *w, json_doc *d, const char *path, char *err,
                        size_t errlen)
{
    size_t n = 0;
    if (json_type_at(d, "/fillers") == JSON_MISSING)
        return 0;
    if (json_count(d, "/fillers", &n) < 0) {
        snprintf(err, errlen, "%s: fillers: expected an array of strings", path);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char ptr[40];
        const char *s;
        size_t sl;
        snprintf(ptr, sizeof(ptr), "/fillers/%zu", i);
        if (json_get_string(d, ptr, &s, &sl) < 0) {
            snprintf(err, errlen, "%s: fillers[%zu]: expected a string", path, i);
            return -1;
        }
        char *copy = xstrndup(s, sl);
        int rc = norm_words_add(w, copy, "");
        if (rc < 0)
            snprintf(err, errlen, "%s: fillers[%zu] '%.60s': expected 1 to %d words", path, i, copy,
                     NORM_PHRASE_WORDS);
        xfree(copy);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int load_synonyms(struct norm_words *w, json_doc *d, const char *path, char *err,
                         size_t errlen)
{
    size_t n = 0;
    if (json_type_at(d, "/synonyms") == JSON_MISSING)
        return 0;
    if (json_type_at(d, "/synonyms") != JSON_OBJECT || json_count(d, "/synonyms", &n) < 0) {
        snprintf(err, errlen, "%s: synonyms: expected an object of \"word\": \"canonical\"", path);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *k, *v;
        size_t kl, vl;
        char ptr[600];
        if (json_key_at(d, "/synonyms", i, &k, &kl) < 0 || kl > 200)
            goto out_bad;
        char *from = xstrndup(k, kl);
        snprintf(ptr, sizeof(ptr), "/synonyms/%s", from);
        int rc = strpbrk(from, "/~") || json_get_string(d, ptr, &v, &vl) < 0 ? -1 : 0;
        char *to = rc == 0 ? xstrndup(v, vl) : NULL;
        if (rc == 0)
            rc = norm_words_add(w, from, to);
        if (rc < 0)
            snprintf(err, errlen, "%s: synonyms '%.60s': expected 1 to %d words mapped to a string",
                     path, from, NORM_PHRASE_WORDS);
        xfree(from);
        xfree(to);
        if (rc < 0)
            return -1;
    }
    return 0;
out_bad:
    snprintf(err, errlen, "%s: synonyms: a key is unreadable or too long", path);
    return -1;
}

/* Load the words file; see the header. */
struct norm_words *norm_words_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct buf b = {0};
    char chunk[4096];
    size_t r;
    while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, r);
    fclose(f);
    json_doc *d = json_doc_create();
    struct norm_words *w = norm_words_create();
    if (json_doc_load(d, buf_begin(&b) ? buf_begin(&b) : "", buf_size(&b)) < 0 ||
        json_type_at(d, "") != JSON_OBJECT) {
        snprintf(err, errlen, "%s: expected a JSON object {\"fillers\": [..], \"synonyms\": {..}}",
                 path);
        goto out_free;
    }
    if (load_fillers(w, d, path, err, errlen) < 0 || load_synonyms(w, d, path, err, errlen) < 0)
        goto out_free;
    json_doc_destroy(d);
    buf_free(&b);
    return w;
out_free:
    norm_words_free(w);
    json_doc_destroy(d);
    buf_free(&b);
    return NULL;
}
