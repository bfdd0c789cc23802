/* sim_catalog.c - load the generated catalog and search it (see sim_catalog.h).
 *
 * The file is read whole; each line is parsed once with stream/json.h and its strings copied
 * into one arena. Every product gets a list of (word hash, weight) pairs: title and brand words
 * weigh 3, category words 2, spec words 1 (keys included, so "battery" finds every product that
 * has a battery spec); a word weighs what it weighed where it was found first, category first. A
 * search is a linear scan: 5,000 products x ~60 words is well under a millisecond, cheaper than any
 * index to keep right. */
#include "loadtest/sim/sim_catalog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/mem.h"
#include "loadtest/sim/sim_hash.h"
#include "stream/json.h"
#include "stream/jsonw.h"

enum { MAX_QUERY_TERMS = 16, WORD_MAX = 48 };

struct word {
    uint32_t hash;
    uint32_t weight;
};

struct record { /* a policy or an order */
    const char *key;
    const char *json;
    size_t len;
};

struct sim_catalog {
    char *file; /* the whole file; lines become NUL-terminated records */
    struct buf arena;
    struct sim_product *products;
    uint32_t nproducts, cap_products;
    struct word *words;
    uint32_t nwords, cap_words;
    struct record *orders, *policies;
    uint32_t norders, npolicies, cap_orders, cap_policies;
};

static const char *const stopwords[] = {
    "a",         "an",        "the",       "and",     "or",      "of",     "for",        "with",
    "in",        "on",        "to",        "me",      "my",      "i",      "want",       "need",
    "show",      "find",      "search",    "look",    "looking", "buy",    "best",       "good",
    "great",     "top",       "under",     "below",   "above",   "over",   "less",       "than",
    "more",      "within",    "upto",      "up",      "budget",  "rs",     "inr",        "price",
    "cheap",     "cheapest",  "please",    "some",    "any",     "is",     "are",        "what",
    "which",     "that",      "this",      "it",      "its",     "get",    "give",       "can",
    "you",       "do",        "doe",       "have",    "ha",      "how",    "much",       "about",
    "around",    "between",   "compare",   "vs",      "versus",  "from",   "by",         "new",
    "big",       "large",     "small",     "long",    "high",    "low",    "lowest",     "highest",
    "rated",     "rating",    "recommend", "suggest", "option",  "model",  "under",      "at",
    "most",      "least",     "two",       "three",   "one",     "k",      "also",       "like",
    "something", "there",     "their",     "ones",    "has",     "latest", "affordable", "budget",
    "decent",    "nice",      "which",     "should",  "would",   "tell",   "about",      "list",
    "all",       "available", "stock",     "online",  "deal",    "offer",  "max",        "min",
    "maximum",   "minimum",   "costing",   "cost",    "costs",   "priced", "worth",
};

/* True for words that carry no product meaning; see the header. */
bool sim_catalog_stopword(const char *w)
{
    for (size_t i = 0; i < sizeof(stopwords) / sizeof(stopwords[0]); i++)
        if (strcmp(w, stopwords[i]) == 0)
            return true;
    return false;
}

static const char *synonym(const char *w)
{
    static const char *const syn[][2] = {
        {"mobile", "phone"},     {"smartphone", "phone"},   {"cellphone", "phone"},
        {"earbud", "headphone"}, {"earphone", "headphone"}, {"headset", "headphone"},
        {"tw", "tws"},           {"notebook", "laptop"},    {"clothe", "clothing"},
        {"apparel", "clothing"}, {"footwear", "shoe"},      {"tee", "shirt"},
        {"tshirt", "shirt"},     {"trainer", "sneaker"},    {"cloth", "clothing"},
    };
    for (size_t i = 0; i < sizeof(syn) / sizeof(syn[0]); i++)
        if (strcmp(w, syn[i][0]) == 0)
            return syn[i][1];
    return w;
}

/* Normalise a word; see the header. */
size_t sim_catalog_norm_word(const char *w, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++)
        out[k++] = (w[i] >= 'A' && w[i] <= 'Z') ? (char)(w[i] | 0x20) : w[i];
    out[k] = '\0';
    if (k > 3 && out[k - 1] == 's' && out[k - 2] != 's' && out[k - 2] != 'u' && out[k - 2] != 'i')
        out[--k] = '\0';
    const char *s = synonym(out);
    if (s != out) {
        snprintf(out, cap, "%s", s);
        k = strlen(out);
    }
    return k;
}

static bool alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Call fn for each normalised word of s[0..n) (runs of ASCII letters and digits; one-letter
 * words are skipped, numbers are kept). */
static void each_word(const char *s, size_t n, void (*fn)(void *, const char *), void *arg)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && !alnum(s[i]))
            i++;
        size_t st = i;
        while (i < n && alnum(s[i]))
            i++;
        char w[WORD_MAX];
        if (i - st == 0 || (i - st == 1 && !(s[st] >= '0' && s[st] <= '9')))
            continue;
        sim_catalog_norm_word(s + st, i - st, w, sizeof(w));
        fn(arg, w);
    }
}

static uint32_t word_hash(const char *w)
{
    return (uint32_t)sim_hash_bytes(SIM_HASH_SEED, w, strlen(w));
}

struct add_ctx {
    struct sim_catalog *c;
    struct sim_product *p;
    uint32_t weight;
};

static void add_word(void *arg, const char *w)
{
    struct add_ctx *a = arg;
    struct sim_catalog *c = a->c;
    uint32_t h = word_hash(w);
    for (uint32_t i = a->p->word_off; i < c->nwords; i++)
        if (c->words[i].hash == h)
            return; /* the first weight stays: a category word in a title ("Phone") is no
                     * better a match than the category itself */
    if (c->nwords == c->cap_words) {
        c->cap_words = c->cap_words ? 2 * c->cap_words : 65536;
        c->words = xrealloc(c->words, c->cap_words * sizeof(*c->words));
    }
    c->words[c->nwords++] = (struct word){h, a->weight};
}

/* Copy s into the arena; returns its offset (pointers are fixed up once loading is done). */
static size_t arena_str(struct sim_catalog *c, const char *s, size_t n)
{
    size_t off = buf_size(&c->arena);
    buf_append(&c->arena, s, n);
    buf_append(&c->arena, "", 1);
    return off;
}

static const char *str(json_doc *d, const char *ptr, size_t *n)
{
    const char *s;
    if (json_get_string(d, ptr, &s, n) < 0)
        return NULL;
    return s;
}

/* The summary a search result carries (the record minus specs and bookkeeping). */
static void write_summary(json_doc *d, struct buf *out)
{
    static const char *const keys[] = {"id",      "title", "brand",    "category",
                                       "price",   "mrp",   "currency", "rating",
                                       "reviews", "image", "key_specs"};
    struct jsonw w;
    jw_init(&w, out);
    jw_obj_begin(&w);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char ptr[32];
        const char *raw;
        size_t n;
        snprintf(ptr, sizeof(ptr), "/%s", keys[i]);
        if (json_get_raw(d, ptr, &raw, &n) == 0) {
            jw_key(&w, keys[i]);
            jw_raw(&w, raw, n);
        }
    }
    jw_obj_end(&w);
}

/* Offsets of a product's strings in the arena until the arena stops moving. */
struct pending_strs {
    size_t id, category, brand, title, summary, summary_len;
};

static int add_product(struct sim_catalog *c, json_doc *d, char *line, size_t len,
                       struct pending_strs *ps)
{
    const char *id, *cat, *brand, *title, *sub, *raw;
    size_t idn, catn, brandn, titlen, subn = 0, rawn;
    int64_t price;
    double rating = 0;
    if (!(id = str(d, "/id", &idn)) || !(cat = str(d, "/category", &catn)) ||
        !(brand = str(d, "/brand", &brandn)) || !(title = str(d, "/title", &titlen)) ||
        json_get_int(d, "/price", &price) < 0)
        return -EINVAL;
    json_get_double(d, "/rating", &rating);
    sub = str(d, "/subcategory", &subn);
    if (c->nproducts == c->cap_products) {
        c->cap_products = c->cap_products ? 2 * c->cap_products : 8192;
        c->products = xrealloc(c->products, c->cap_products * sizeof(*c->products));
    }
    struct sim_product *p = &c->products[c->nproducts];
    memset(p, 0, sizeof(*p));
    p->price = price;
    p->rating = rating;
    p->json = line;
    p->json_len = len;
    p->word_off = c->nwords;
    struct add_ctx a = {c, p, 2};
    each_word(cat, catn, add_word, &a);
    if (sub)
        each_word(sub, subn, add_word, &a);
    a.weight = 3;
    each_word(title, titlen, add_word, &a);
    each_word(brand, brandn, add_word, &a);
    a.weight = 1;
    if (json_get_raw(d, "/specs", &raw, &rawn) == 0)
        each_word(raw, rawn, add_word, &a);
    p->nwords = c->nwords - p->word_off;
    ps->id = arena_str(c, id, idn);
    ps->category = arena_str(c, cat, catn);
    ps->brand = arena_str(c, brand, brandn);
    ps->title = arena_str(c, title, titlen);
    struct buf sum = {0};
    write_summary(d, &sum);
    ps->summary = arena_str(c, buf_begin(&sum), buf_size(&sum));
    ps->summary_len = buf_size(&sum);
    buf_free(&sum);
    c->nproducts++;
    return 0;
}

static void add_record(struct record **arr, uint32_t *n, uint32_t *cap, const char *key,
                       const char *json, size_t len)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        *arr = xrealloc(*arr, *cap * sizeof(**arr));
    }
    (*arr)[(*n)++] = (struct record){key, json, len};
}

/* One line: a product, a policy or an order (their keys are copied: the parsed strings live in
 * the doc, which the next line reuses). */
static int add_line(struct sim_catalog *c, json_doc *d, char *line, size_t len,
                    struct pending_strs **ps, uint32_t *cap_ps)
{
    const char *kind, *key;
    size_t kn, keyn;
    if (json_doc_load(d, line, len) < 0 || !(kind = str(d, "/kind", &kn)))
        return -EINVAL;
    if (strcmp(kind, "product") == 0) {
        if (c->nproducts == *cap_ps) {
            *cap_ps = *cap_ps ? 2 * *cap_ps : 8192;
            *ps = xrealloc(*ps, *cap_ps * sizeof(**ps));
        }
        return add_product(c, d, line, len, &(*ps)[c->nproducts]);
    }
    bool policy = strcmp(kind, "policy") == 0;
    if (!policy && strcmp(kind, "order") != 0)
        return -EINVAL;
    if (!(key = str(d, policy ? "/topic" : "/id", &keyn)))
        return -EINVAL;
    if (policy)
        add_record(&c->policies, &c->npolicies, &c->cap_policies, xstrndup(key, keyn), line, len);
    else
        add_record(&c->orders, &c->norders, &c->cap_orders, xstrndup(key, keyn), line, len);
    return 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct buf b = {0};
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        buf_append(&b, tmp, n);
    fclose(f);
    *len = buf_size(&b);
    char *s = xmalloc(*len + 1);
    memcpy(s, buf_begin(&b), *len);
    s[*len] = '\0';
    buf_free(&b);
    return s;
}

static int cmp_product(const void *a, const void *b)
{
    return strcmp(((const struct sim_product *)a)->id, ((const struct sim_product *)b)->id);
}

static int cmp_record(const void *a, const void *b)
{
    return strcmp(((const struct record *)a)->key, ((const struct record *)b)->key);
}

static void fix_pointers(struct sim_catalog *c, const struct pending_strs *ps)
{
    const char *base = buf_begin(&c->arena);
    for (uint32_t i = 0; i < c->nproducts; i++) {
        struct sim_product *p = &c->products[i];
        p->id = base + ps[i].id;
        p->category = base + ps[i].category;
        p->brand = base + ps[i].brand;
        p->title = base + ps[i].title;
        p->summary = base + ps[i].summary;
        p->summary_len = ps[i].summary_len;
    }
    /* word_off stays valid when sorting: it is an offset, not a pointer */
    qsort(c->products, c->nproducts, sizeof(*c->products), cmp_product);
    qsort(c->orders, c->norders, sizeof(*c->orders), cmp_record);
}

/* Load the catalog; see the header. */
struct sim_catalog *sim_catalog_load(const char *path, char *err, size_t errcap)
{
    struct sim_catalog *c = xcalloc(1, sizeof(*c));
    struct pending_strs *ps = NULL;
    uint32_t cap_ps = 0, lineno = 0;
    size_t len = 0;
    json_doc *d = json_doc_create();
    if (!(c->file = read_file(path, &len))) {
        snprintf(err, errcap, "cannot read %s: %s", path, strerror(errno));
        goto out_fail;
    }
    for (char *line = c->file, *end; line < c->file + len; line = end + 1) {
        end = memchr(line, '\n', (size_t)(c->file + len - line));
        if (!end)
            end = c->file + len;
        *end = '\0';
        lineno++;
        if (end > line && add_line(c, d, line, (size_t)(end - line), &ps, &cap_ps) < 0) {
            snprintf(err, errcap, "%s:%u: not a catalog record", path, lineno);
            goto out_fail;
        }
    }
    if (!c->nproducts) {
        snprintf(err, errcap, "%s: no products", path);
        goto out_fail;
    }
    fix_pointers(c, ps);
    xfree(ps);
    json_doc_destroy(d);
    return c;
out_fail:
    xfree(ps);
    json_doc_destroy(d);
    sim_catalog_destroy(c);
    return NULL;
}

void sim_catalog_destroy(struct sim_catalog *c)
{
    if (!c)
        return;
    for (uint32_t i = 0; i < c->norders; i++)
        xfree((void *)c->orders[i].key);
    for (uint32_t i = 0; i < c->npolicies; i++)
        xfree((void *)c->policies[i].key);
    xfree(c->orders);
    xfree(c->policies);
    xfree(c->products);
    xfree(c->words);
    buf_free(&c->arena);
    xfree(c->file);
    xfree(c);
}

uint32_t sim_catalog_nproducts(const struct sim_catalog *c)
{
    return c->nproducts;
}

uint32_t sim_catalog_norders(const struct sim_catalog *c)
{
    return c->norders;
}

/* Lookups; see the header. */
const struct sim_product *sim_catalog_product(const struct sim_catalog *c, const char *id)
{
    struct sim_product key = {.id = id};
    return bsearch(&key, c->products, c->nproducts, sizeof(key), cmp_product);
}

const char *sim_catalog_order(const struct sim_catalog *c, const char *id, size_t *len)
{
    struct record key = {.key = id};
    const struct record *r = bsearch(&key, c->orders, c->norders, sizeof(key), cmp_record);
    if (r)
        *len = r->len;
    return r ? r->json : NULL;
}

const char *sim_catalog_policy(const struct sim_catalog *c, const char *topic, size_t *len)
{
    char w[WORD_MAX], t[WORD_MAX];
    sim_catalog_norm_word(topic, strlen(topic), w, sizeof(w));
    for (uint32_t i = 0; i < c->npolicies; i++) {
        sim_catalog_norm_word(c->policies[i].key, strlen(c->policies[i].key), t, sizeof(t));
        if (strcmp(w, t) == 0) {
            *len = c->policies[i].len;
            return c->policies[i].json;
        }
    }
    return NULL;
}

const char *sim_catalog_policy_topic(const struct sim_catalog *c, uint32_t i)
{
    return i < c->npolicies ? c->policies[i].key : NULL;
}

/* ---- search ---- */

struct terms {
    uint32_t h[MAX_QUERY_TERMS];
    uint32_t n;
    bool content; /* the query had words that were not stop words */
};

static void add_term(void *arg, const char *w)
{
    struct terms *t = arg;
    if (sim_catalog_stopword(w))
        return;
    t->content = true;
    uint32_t h = word_hash(w);
    for (uint32_t i = 0; i < t->n; i++)
        if (t->h[i] == h)
            return;
    if (t->n < MAX_QUERY_TERMS)
        t->h[t->n++] = h;
}

static uint32_t weight_of(const struct sim_catalog *c, const struct sim_product *p, uint32_t h)
{
    for (uint32_t i = 0; i < p->nwords; i++)
        if (c->words[p->word_off + i].hash == h)
            return c->words[p->word_off + i].weight;
    return 0;
}

static bool passes_filters(const struct sim_product *p, const struct sim_search *s, const char *cat)
{
    if (s->min_price >= 0 && p->price < s->min_price)
        return false;
    if (s->max_price >= 0 && p->price > s->max_price)
        return false;
    if (cat[0]) {
        char pc[WORD_MAX];
        sim_catalog_norm_word(p->category, strlen(p->category), pc, sizeof(pc));
        if (strcmp(pc, cat) != 0)
            return false;
    }
    return !s->brand[0] || strcasecmp(p->brand, s->brand) == 0;
}

struct hit {
    const struct sim_product *p;
    uint32_t score;
};

static __thread enum sim_sort g_sort; /* qsort has no context argument */

static int cmp_hit(const void *a, const void *b)
{
    const struct hit *x = a, *y = b;
    int r = 0;
    if (g_sort == SIM_SORT_PRICE_ASC)
        r = (x->p->price > y->p->price) - (x->p->price < y->p->price);
    else if (g_sort == SIM_SORT_PRICE_DESC)
        r = (x->p->price < y->p->price) - (x->p->price > y->p->price);
    else if (g_sort == SIM_SORT_RATING)
        r = (x->p->rating < y->p->rating) - (x->p->rating > y->p->rating);
    else
        r = (x->score < y->score) - (x->score > y->score);
    if (!r && g_sort == SIM_SORT_RELEVANCE)
        r = (x->p->rating < y->p->rating) - (x->p->rating > y->p->rating);
    return r ? r : strcmp(x->p->id, y->p->id);
}

/* Drop the terms that no product has: they cannot narrow anything down. */
static void keep_known_terms(const struct sim_catalog *c, struct terms *t)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < t->n; i++) {
        bool known = false;
        for (uint32_t j = 0; j < c->nwords && !known; j++)
            known = c->words[j].hash == t->h[i];
        if (known)
            t->h[kept++] = t->h[i];
    }
    t->n = kept;
}

/* Search; see the header. */
uint32_t sim_catalog_search(const struct sim_catalog *c, const struct sim_search *s,
                            const struct sim_product **out, uint32_t cap)
{
    struct terms t = {.n = 0};
    char cat[WORD_MAX] = "";
    each_word(s->q, strlen(s->q), add_term, &t);
    keep_known_terms(c, &t);
    if (t.content && t.n == 0)
        return 0; /* only words the catalog never uses */
    if (s->category[0])
        sim_catalog_norm_word(s->category, strlen(s->category), cat, sizeof(cat));
    struct hit *hits = xmalloc(c->nproducts * sizeof(*hits));
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->nproducts; i++) {
        const struct sim_product *p = &c->products[i];
        if (!passes_filters(p, s, cat))
            continue;
        uint32_t score = 0, w = 1;
        for (uint32_t k = 0; k < t.n && w; k++)
            score += (w = weight_of(c, p, t.h[k]));
        if (w)
            hits[n++] = (struct hit){p, score};
    }
    g_sort = s->sort;
    qsort(hits, n, sizeof(*hits), cmp_hit);
    for (uint32_t i = 0; i < n && i < cap; i++)
        out[i] = hits[i].p;
    xfree(hits);
    return n;
}
