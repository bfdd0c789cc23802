/* load_corpus.c - read the query corpus and draw from it by category weights. */
#include "loadtest/load/load_corpus.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Length of the UTF-8 sequence at s (RFC 3629: no overlongs, no surrogates, <= U+10FFFF), or 0
 * when it is invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

/* NULL when text is acceptable as a query, else what is wrong with it. */
static const char *bad_text(const char *s, size_t n)
{
    if (n == 0)
        return "empty query";
    if (n > CORPUS_MAX_QUERY)
        return "query too long";
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            return "control character in query";
        size_t k = utf8_seq((const unsigned char *)s + i, n - i);
        if (!k)
            return "invalid UTF-8";
        i += k;
    }
    if (s[0] == ' ' || s[n - 1] == ' ')
        return "leading or trailing space in query";
    return NULL;
}

static bool good_cat(const char *s, size_t n)
{
    if (n == 0 || n >= sizeof(((struct corpus *)0)->cat[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '-'))
            return false;
    return true;
}

static int cat_index(struct corpus *c, const char *s, size_t n, bool add)
{
    for (int i = 0; i < c->ncats; i++)
        if (strlen(c->cat[i]) == n && memcmp(c->cat[i], s, n) == 0)
            return i;
    if (!add || c->ncats == SCN_MAX_CATS)
        return -1;
    memcpy(c->cat[c->ncats], s, n);
    c->cat[c->ncats][n] = '\0';
    return c->ncats++;
}

/* One line (already NUL-terminated, no newline). 0, or -1 with err. */
static int add_line(struct corpus *c, char *line, size_t cap, const char *where, char *err,
                    size_t errlen)
{
    size_t len = strlen(line);
    if (len && line[len - 1] == '\r')
        line[--len] = '\0';
    if (len == 0 || line[0] == '#')
        return 0;
    char *tab = strchr(line, '\t');
    if (!tab) {
        seterr(err, errlen, "%s: expected CATEGORY<TAB>QUERY", where);
        return -1;
    }
    if (!good_cat(line, (size_t)(tab - line))) {
        seterr(err, errlen, "%s: bad category (1..23 bytes of a-z 0-9 _ -)", where);
        return -1;
    }
    const char *text = tab + 1, *why = bad_text(text, strlen(text));
    if (why) {
        seterr(err, errlen, "%s: %s", where, why);
        return -1;
    }
    int ci = cat_index(c, line, (size_t)(tab - line), true);
    if (ci < 0) {
        seterr(err, errlen, "%s: more than %d categories", where, SCN_MAX_CATS);
        return -1;
    }
    if (c->n == cap)
        return -2; /* the caller sized q from the line count: cannot happen */
    c->q[c->n++] = (struct corpus_query){text, (uint32_t)strlen(text), (uint16_t)ci};
    return 0;
}

static int read_all(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        seterr(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    char *data = xmalloc(cap);
    size_t k;
    while ((k = fread(data + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (cap - n - 1 == 0)
            data = xrealloc(data, cap *= 2);
    }
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad) {
        seterr(err, errlen, "cannot read %s", path);
        xfree(data);
        return -1;
    }
    data[n] = '\0';
    if (memchr(data, '\0', n)) {
        seterr(err, errlen, "%s: NUL byte in file", path);
        xfree(data);
        return -1;
    }
    *out = data;
    *len = n;
    return 0;
}

static int by_cat(const void *a, const void *b)
{
    const struct corpus_query *x = a, *y = b;
    if (x->cat != y->cat)
        return x->cat < y->cat ? -1 : 1;
    return x->text < y->text ? -1 : x->text > y->text;
}

/* See load_corpus.h. */
int corpus_load(struct corpus *c, const char *path, char *err, size_t errlen)
{
    size_t len, lines = 1;
    memset(c, 0, sizeof(*c));
    if (read_all(path, &c->data, &len, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < len; i++)
        lines += c->data[i] == '\n';
    c->q = xcalloc(lines, sizeof(*c->q));
    char *p = c->data;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    for (int ln = 1; p && *p; ln++) {
        char *nl = strchr(p, '\n'), where[1100];
        if (nl)
            *nl = '\0';
        snprintf(where, sizeof(where), "%s:%d", path, ln);
        if (add_line(c, p, lines, where, err, errlen) < 0) {
            corpus_free(c);
            return -1;
        }
        p = nl ? nl + 1 : NULL;
    }
    if (c->n == 0) {
        seterr(err, errlen, "%s: no queries", path);
        corpus_free(c);
        return -1;
    }
    qsort(c->q, c->n, sizeof(*c->q), by_cat);
    for (size_t i = 0; i < c->n; i++) {
        if (c->cat_count[c->q[i].cat]++ == 0)
            c->cat_first[c->q[i].cat] = i;
    }
    struct scn_mix none = {.n = 0};
    return corpus_set_mix(c, &none, err, errlen);
}

/* See load_corpus.h. */
int corpus_set_mix(struct corpus *c, const struct scn_mix *mix, char *err, size_t errlen)
{
    double w[SCN_MAX_CATS] = {0}, total = 0;
    for (int i = 0; i < mix->n; i++) {
        int ci = cat_index(c, mix->cat[i], strlen(mix->cat[i]), false);
        if (ci < 0) {
            seterr(err, errlen, "the mix names category '%s', which the corpus does not have",
                   mix->cat[i]);
            return -1;
        }
        w[ci] += mix->weight[i];
    }
    for (int i = 0; i < c->ncats; i++) {
        if (mix->n == 0)
            w[i] = (double)c->cat_count[i];
        total += w[i];
    }
    if (total <= 0) {
        seterr(err, errlen, "the mix gives every category a weight of 0");
        return -1;
    }
    double acc = 0;
    int last = 0;
    for (int i = 0; i < c->ncats; i++) {
        acc += w[i] / total;
        c->cum[i] = acc;
        if (w[i] > 0)
            last = i;
    }
    /* rounding must not leave mass to a category of weight 0 after the last weighted one */
    for (int i = last; i < c->ncats; i++)
        c->cum[i] = 1.0;
    return 0;
}

/* See load_corpus.h. */
const struct corpus_query *corpus_pick(const struct corpus *c, double u1, double u2)
{
    int ci = 0;
    while (ci < c->ncats - 1 && u1 >= c->cum[ci])
        ci++;
    size_t k = (size_t)(u2 * (double)c->cat_count[ci]);
    if (k >= c->cat_count[ci])
        k = c->cat_count[ci] - 1;
    return &c->q[c->cat_first[ci] + k];
}

/* See load_corpus.h. */
void corpus_free(struct corpus *c)
{
    xfree(c->q);
    xfree(c->data);
    memset(c, 0, sizeof(*c));
}
