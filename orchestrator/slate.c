/* slate.c - product slates from commerce API results (slate.h). */
#include "orchestrator/slate.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "net/utf8.h"
#include "stream/jsonw.h"

static void copy_str(json_doc *d, const char *ptr, char *out, size_t cap)
{
    const char *s;
    size_t n;
    if (json_get_string(d, ptr, &s, &n) == 0) {
        snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), s);
        utf8_scrub(out); /* a cut may split a character */
    } else {
        int64_t v;
        if (json_get_int(d, ptr, &v) == 0) /* numeric ids */
            snprintf(out, cap, "%lld", (long long)v);
    }
}

/* The first of the pointers (base + each suffix) that resolves, as a string. */
static void first_str(json_doc *d, const char *base, const char *const *names, char *out,
                      size_t cap)
{
    char ptr[128];
    out[0] = '\0';
    for (; *names && !out[0]; names++) {
        snprintf(ptr, sizeof(ptr), "%s/%s", base, *names);
        copy_str(d, ptr, out, cap);
    }
}

static int64_t price_of(json_doc *d, const char *base)
{
    static const char *const ptrs[] = {"price", "price/value", "price/amount", "sale_price", NULL};
    char ptr[128];
    for (const char *const *p = ptrs; *p; p++) {
        double v;
        snprintf(ptr, sizeof(ptr), "%s/%s", base, *p);
        if (json_get_double(d, ptr, &v) == 0 && v >= 0 && v < 1e12)
            return (int64_t)llround(v * 1e6);
    }
    return -1;
}

static void specs_of(json_doc *d, const char *base, struct slate_item *it)
{
    char ptr[160];
    size_t n;
    snprintf(ptr, sizeof(ptr), "%s/key_specs", base);
    if (json_type_at(d, ptr) == JSON_ARRAY && json_count(d, ptr, &n) == 0) {
        for (size_t i = 0; i < n && it->n_specs < 3; i++) {
            snprintf(ptr, sizeof(ptr), "%s/key_specs/%zu", base, i);
            copy_str(d, ptr, it->specs[it->n_specs], sizeof(it->specs[0]));
            if (it->specs[it->n_specs][0])
                it->n_specs++;
        }
        return;
    }
    snprintf(ptr, sizeof(ptr), "%s/specs", base);
    if (json_type_at(d, ptr) != JSON_OBJECT || json_count(d, ptr, &n) < 0)
        return;
    for (size_t i = 0; i < n && it->n_specs < 3; i++) {
        const char *k, *v;
        size_t kl, vl;
        char key[64], vptr[256];
        if (json_key_at(d, ptr, i, &k, &kl) < 0 || kl >= sizeof(key) || memchr(k, '/', kl) ||
            memchr(k, '~', kl))
            continue;
        memcpy(key, k, kl);
        key[kl] = '\0';
        snprintf(vptr, sizeof(vptr), "%s/%s", ptr, key);
        char val[48] = "";
        if (json_get_string(d, vptr, &v, &vl) == 0)
            snprintf(val, sizeof(val), "%.*s", (int)(vl < 47 ? vl : 47), v);
        else if (json_get_raw(d, vptr, &v, &vl) == 0 && json_type_at(d, vptr) == JSON_NUMBER)
            snprintf(val, sizeof(val), "%.*s", (int)(vl < 47 ? vl : 47), v);
        if (!val[0])
            continue;
        for (char *c = key; *c; c++)
            if (*c == '_')
                *c = ' ';
        int w = snprintf(it->specs[it->n_specs], sizeof(it->specs[0]), "%.30s: %s", key, val);
        (void)w; /* a long pair is cut: the card shows what fits */
        utf8_scrub(it->specs[it->n_specs]);
        it->n_specs++;
    }
}

static int add_one(struct slate *s, json_doc *d, const char *base, const char *base_url)
{
    static const char *const ids[] = {"id", "sku", "product_id", NULL};
    static const char *const titles[] = {"title", "name", NULL};
    static const char *const images[] = {"image", "image_url", "thumbnail", NULL};
    static const char *const brand[] = {"brand", NULL};
    static const char *const cur[] = {"currency", "price/currency", NULL};
    struct slate_item it = {.price_micros = -1, .rating = -1};
    first_str(d, base, ids, it.id, sizeof(it.id));
    first_str(d, base, titles, it.title, sizeof(it.title));
    if (!it.id[0] || !it.title[0])
        return 0;
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->items[i].id, it.id))
            return 0;
    first_str(d, base, brand, it.brand, sizeof(it.brand));
    first_str(d, base, images, it.image, sizeof(it.image));
    if (it.image[0] == '/' && it.image[1] != '/' && base_url && base_url[0]) {
        char abs[sizeof(it.image)];
        size_t bl = strlen(base_url);
        while (bl && base_url[bl - 1] == '/')
            bl--;
        if ((size_t)snprintf(abs, sizeof(abs), "%.*s%s", (int)bl, base_url, it.image) < sizeof(abs))
            memcpy(it.image, abs, sizeof(abs));
        else
            it.image[0] = '\0'; /* too long to keep whole: no picture rather than a wrong one */
    }
    first_str(d, base, cur, it.currency, sizeof(it.currency));
    it.price_micros = price_of(d, base);
    char ptr[128];
    snprintf(ptr, sizeof(ptr), "%s/rating", base);
    double r;
    if (json_get_double(d, ptr, &r) == 0 && r >= 0 && r <= 5)
        it.rating = r;
    specs_of(d, base, &it);
    s->items[s->n++] = it;
    return 1;
}

/* Add a result's products; see the header. */
int slate_add_result(struct slate *s, json_doc *d, const char *json, size_t len, int max,
                     const char *base_url)
{
    static const char *const arrays[] = {"/results", "/items", "/products", "", NULL};
    if (max > SLATE_MAX)
        max = SLATE_MAX;
    if (json_doc_load(d, json, len) < 0)
        return 0;
    for (const char *const *a = arrays; *a; a++) {
        size_t n;
        if (json_type_at(d, *a) != JSON_ARRAY || json_count(d, *a, &n) < 0)
            continue;
        int added = 0;
        for (size_t i = 0; i < n && s->n < max; i++) {
            char base[64];
            snprintf(base, sizeof(base), "%s/%zu", *a, i);
            added += add_one(s, d, base, base_url);
        }
        return added;
    }
    return json_type_at(d, "") == JSON_OBJECT && s->n < max ? add_one(s, d, "", base_url) : 0;
}

/* The items array of the products event; see the header. */
void slate_to_json(const struct slate *s, struct buf *out)
{
    struct jsonw w;
    jw_init(&w, out);
    jw_arr_begin(&w);
    for (int i = 0; i < s->n; i++) {
        const struct slate_item *it = &s->items[i];
        jw_obj_begin(&w);
        jw_kstr(&w, "id", it->id);
        jw_kstr(&w, "title", it->title);
        if (it->brand[0])
            jw_kstr(&w, "brand", it->brand);
        if (it->price_micros >= 0) {
            char p[32];
            int64_t whole = it->price_micros / 1000000, frac = it->price_micros % 1000000;
            if (frac)
                snprintf(p, sizeof(p), "%lld.%02lld", (long long)whole, (long long)(frac / 10000));
            else
                snprintf(p, sizeof(p), "%lld", (long long)whole);
            jw_key(&w, "price");
            jw_raw(&w, p, strlen(p));
        }
        if (it->currency[0])
            jw_kstr(&w, "currency", it->currency);
        if (it->rating >= 0)
            jw_key(&w, "rating"), jw_double(&w, it->rating);
        if (it->image[0])
            jw_kstr(&w, "image", it->image);
        if (it->n_specs) {
            jw_key(&w, "specs");
            jw_arr_begin(&w);
            for (int k = 0; k < it->n_specs; k++)
                jw_str(&w, it->specs[k]);
            jw_arr_end(&w);
        }
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
}
