/* sim_agent_reply.c - the simulated agent's grounded answers: read the commerce tool results
 * the request carries, then write an answer that states their titles, prices and specs (a
 * Markdown table for comparisons), with a mistake only when the tier is told to make one.
 *
 * Results are read by shape, not by tool name, so that results an orchestrator shaped (fewer
 * fields, top-k items, wrapped in {"result": ...}) are still understood: a list of objects with
 * a title and a price is a search; an object with a title and specs is a product; pincode +
 * delivery are offers; topic + text a policy; status + items an order; "error" a failure. */
#include "loadtest/sim/sim_agent_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "stream/jsonw.h"

/* ---- reading results ---- */

static const char *sget(json_doc *d, const char *base, const char *key, char *out, size_t cap)
{
    char p[160];
    const char *s;
    size_t n;
    snprintf(p, sizeof(p), "%s/%s", base, key);
    if (json_get_string(d, p, &s, &n) < 0)
        return NULL;
    snprintf(out, cap, "%.*s", (int)n, s);
    return out;
}

static int64_t iget(json_doc *d, const char *base, const char *key)
{
    char p[160];
    double v;
    snprintf(p, sizeof(p), "%s/%s", base, key);
    if (json_get_double(d, p, &v) < 0)
        return -1;
    return (int64_t)v;
}

static bool has(json_doc *d, const char *base, const char *key)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/%s", base, key);
    return json_type_at(d, p) != JSON_MISSING;
}

/* Label, unit and asked-about name of a spec key ("battery_mah" -> "Battery", " mAh"). */
static void spec_label(const char *key, char *label, size_t cap, const char **unit, const char **id)
{
    static const struct {
        const char *suffix, *unit;
    } units[] = {{"_mah", " mAh"}, {"_gb", " GB"}, {"_mp", " MP"}, {"_hours", " h"},
                 {"_mm", " mm"},   {"_kg", " kg"}, {"_g", " g"},   {"_w", " W"},
                 {"_in", "\""},    {"_hz", " Hz"}, {"_uk", ""},    {"_months", " months"}};
    static const struct {
        const char *prefix, *id;
    } ids[] = {{"battery", "battery"},   {"display", "display"},   {"processor", "processor"},
               {"ram", "ram"},           {"storage", "storage"},   {"rear_camera", "camera"},
               {"weight", "weight"},     {"anc", "anc"},           {"driver", "driver"},
               {"sizes", "sizes"},       {"material", "material"}, {"graphics", "graphics"},
               {"charging", "charging"}, {"network", "network"},   {"water", "water"}};
    size_t n = strlen(key);
    *unit = "";
    *id = "";
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        size_t k = strlen(units[i].suffix);
        if (n > k && strcmp(key + n - k, units[i].suffix) == 0) {
            *unit = units[i].unit;
            n -= k;
            break;
        }
    }
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        if (strncmp(key, ids[i].prefix, strlen(ids[i].prefix)) == 0)
            *id = ids[i].id;
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++)
        label[k++] = key[i] == '_'                                ? ' '
                     : (i == 0 && key[i] >= 'a' && key[i] <= 'z') ? (char)(key[i] - 32)
                                                                  : key[i];
    label[k] = '\0';
    if (strcmp(label, "Anc") == 0 || strcmp(label, "Ram") == 0 || strcmp(label, "Os") == 0)
        for (char *c = label; *c; c++)
            *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
}

/* The value at ptr as display text (objects: their values joined; arrays: ", "). */
static void value_text(json_doc *d, const char *ptr, const char *unit, struct buf *out, int depth)
{
    const char *s;
    size_t n, cnt = 0;
    bool b;
    char p[200];
    switch (json_type_at(d, ptr)) {
    case JSON_STRING:
        if (json_get_string(d, ptr, &s, &n) == 0)
            buf_printf(out, "%.*s%s", (int)n, s, unit);
        break;
    case JSON_NUMBER:
        if (json_get_raw(d, ptr, &s, &n) == 0)
            buf_printf(out, "%.*s%s", (int)n, s, unit);
        break;
    case JSON_BOOL:
        json_get_bool(d, ptr, &b);
        buf_append_str(out, b ? "Yes" : "No");
        break;
    case JSON_ARRAY:
    case JSON_OBJECT:
        if (depth > 2 || json_count(d, ptr, &cnt) < 0)
            break;
        for (size_t i = 0; i < cnt && i < 12; i++) {
            const char *k = NULL, *u = "", *id;
            size_t kn = 0;
            char label[32], key[40];
            if (json_type_at(d, ptr) == JSON_OBJECT) {
                if (json_key_at(d, ptr, i, &k, &kn) < 0 || kn >= sizeof(key))
                    continue;
                memcpy(key, k, kn);
                key[kn] = '\0';
                spec_label(key, label, sizeof(label), &u, &id);
                snprintf(p, sizeof(p), "%s/%s", ptr, key);
            } else {
                snprintf(p, sizeof(p), "%s/%zu", ptr, i);
            }
            if (i)
                buf_append_str(out, json_type_at(d, ptr) == JSON_OBJECT ? " " : ", ");
            value_text(d, p, u, out, depth + 1);
        }
        break;
    default:
        break;
    }
}

/* What a key spec such as "6000 mAh" or "40 mm drivers" is about (search results carry only
 * these three strings). */
static const char *key_spec_id(const char *v)
{
    if (strstr(v, "mAh") || strstr(v, "h battery"))
        return "battery";
    if (strstr(v, "drivers"))
        return "driver";
    if (strstr(v, "ANC"))
        return "anc";
    if (strchr(v, '"'))
        return "display";
    if (strstr(v, " GB /"))
        return "ram";
    return "";
}

static void read_specs(json_doc *d, const char *base, struct ag_product *p)
{
    char ptr[160];
    size_t n = 0;
    snprintf(ptr, sizeof(ptr), "%s/specs", base);
    if (json_type_at(d, ptr) == JSON_OBJECT && json_count(d, ptr, &n) == 0) {
        for (size_t i = 0; i < n && p->nspecs < AG_MAX_SPECS; i++) {
            const char *k, *unit, *id;
            size_t kn;
            char key[40], vp[200];
            if (json_key_at(d, ptr, i, &k, &kn) < 0 || kn >= sizeof(key))
                continue;
            memcpy(key, k, kn);
            key[kn] = '\0';
            int j = p->nspecs;
            spec_label(key, p->spec_k[j], sizeof(p->spec_k[j]), &unit, &id);
            snprintf(p->spec_id[j], sizeof(p->spec_id[j]), "%s", id);
            snprintf(vp, sizeof(vp), "%s/%s", ptr, key);
            struct buf v = {0};
            value_text(d, vp, unit, &v, 0);
            snprintf(p->spec_v[j], sizeof(p->spec_v[j]), "%.*s", (int)buf_size(&v), buf_begin(&v));
            buf_free(&v);
            if (p->spec_v[j][0])
                p->nspecs++;
        }
        return;
    }
    snprintf(ptr, sizeof(ptr), "%s/key_specs", base);
    for (size_t i = 0; json_count(d, ptr, &n) == 0 && i < n && i < 3; i++) {
        char ip[200];
        snprintf(ip, sizeof(ip), "%s/%zu", ptr, i);
        struct buf v = {0};
        value_text(d, ip, "", &v, 0);
        int j = p->nspecs++;
        snprintf(p->spec_k[j], sizeof(p->spec_k[j]), "Key spec %zu", i + 1);
        snprintf(p->spec_v[j], sizeof(p->spec_v[j]), "%.*s", (int)buf_size(&v), buf_begin(&v));
        snprintf(p->spec_id[j], sizeof(p->spec_id[j]), "%s", key_spec_id(p->spec_v[j]));
        buf_free(&v);
    }
}

/* A product at base if it has a title; false otherwise. */
static bool read_product(json_doc *d, const char *base, struct ag_product *p)
{
    memset(p, 0, sizeof(*p));
    if (!sget(d, base, "title", p->title, sizeof(p->title)) &&
        !sget(d, base, "name", p->title, sizeof(p->title)))
        return false;
    if (!sget(d, base, "id", p->id, sizeof(p->id)))
        sget(d, base, "product_id", p->id, sizeof(p->id));
    sget(d, base, "brand", p->brand, sizeof(p->brand));
    p->price = iget(d, base, "price");
    p->warranty_months = iget(d, base, "warranty_months");
    char rp[160];
    snprintf(rp, sizeof(rp), "%s/rating", base);
    if (json_get_double(d, rp, &p->rating) < 0)
        p->rating = 0;
    read_specs(d, base, p);
    return true;
}

static void read_list(struct ag_results *res, json_doc *d, const char *list)
{
    size_t n = 0;
    res->searched = true;
    json_count(d, list, &n);
    for (size_t i = 0; i < n && res->nfound < AG_MAX_PRODUCTS; i++) {
        char p[64];
        snprintf(p, sizeof(p), "%s/%zu", list, i);
        if (read_product(d, p, &res->found[res->nfound]))
            res->nfound++;
    }
}

static void read_order(struct ag_results *res, json_doc *d, const char *b)
{
    size_t n = 0;
    char p[64];
    res->order = true;
    sget(d, b, "id", res->order_id, sizeof(res->order_id));
    sget(d, b, "status", res->order_status, sizeof(res->order_status));
    sget(d, b, "expected_delivery", res->order_expected, sizeof(res->order_expected));
    sget(d, b, "delivered_at", res->order_delivered, sizeof(res->order_delivered));
    sget(d, b, "carrier", res->order_carrier, sizeof(res->order_carrier));
    res->order_total = iget(d, b, "total");
    snprintf(p, sizeof(p), "%s/items", b);
    json_count(d, p, &n);
    for (size_t i = 0; i < n && res->norder_items < 3; i++) {
        char ip[96];
        snprintf(ip, sizeof(ip), "%s/items/%zu", b, i);
        if (sget(d, ip, "title", res->order_items[res->norder_items], sizeof(res->order_items[0])))
            res->norder_items++;
    }
}

static void read_offer(struct ag_results *res, json_doc *d, const char *b)
{
    char p[96];
    bool v = false;
    res->offer = true;
    sget(d, b, "pincode", res->offer_pin, sizeof(res->offer_pin));
    sget(d, b, "title", res->offer_title, sizeof(res->offer_title));
    if (!sget(d, b, "product_id", res->offer_pid, sizeof(res->offer_pid)))
        sget(d, b, "id", res->offer_pid, sizeof(res->offer_pid));
    res->offer_price = iget(d, b, "price");
    snprintf(p, sizeof(p), "%s/in_stock", b);
    res->offer_stock = json_get_bool(d, p, &v) < 0 || v;
    snprintf(p, sizeof(p), "%s/delivery", b);
    res->offer_dmin = iget(d, p, "days_min");
    res->offer_dmax = iget(d, p, "days_max");
    res->offer_fee = iget(d, p, "fee");
    snprintf(p, sizeof(p), "%s/delivery/cod_available", b);
    res->offer_cod = json_get_bool(d, p, &v) == 0 && v;
    snprintf(p, sizeof(p), "%s/delivery/express_available", b);
    res->offer_express = json_get_bool(d, p, &v) == 0 && v;
}

/* Recognise the shape at base; true if something was read. */
static bool read_shape(struct ag_results *res, json_doc *d, const char *base)
{
    char p[64];
    const char *s;
    size_t n;
    snprintf(p, sizeof(p), "%s/error", base);
    if (json_type_at(d, p) != JSON_MISSING) {
        res->error = true;
        if (!sget(d, p, "message", res->error_msg, sizeof(res->error_msg)) &&
            json_get_string(d, p, &s, &n) == 0)
            snprintf(res->error_msg, sizeof(res->error_msg), "%.*s", (int)n, s);
        return true;
    }
    if (json_type_at(d, base) == JSON_ARRAY) {
        read_list(res, d, base);
        return true;
    }
    static const char *const lists[] = {"results", "products", "items"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/%s", base, lists[i]);
        if (json_type_at(d, p) == JSON_ARRAY && !has(d, base, "status")) {
            read_list(res, d, p);
            return true;
        }
    }
    if (has(d, base, "status") && has(d, base, "items")) {
        read_order(res, d, base);
    } else if (has(d, base, "delivery") && (has(d, base, "pincode") || has(d, base, "in_stock") ||
                                            has(d, base, "product_id"))) {
        /* an orchestrator may keep only product_id, price, in_stock, delivery, sellers */
        read_offer(res, d, base);
    } else if (has(d, base, "topic") && (has(d, base, "text") || has(d, base, "summary"))) {
        res->policy = true;
        sget(d, base, "title", res->policy_title, sizeof(res->policy_title));
        if (!sget(d, base, "text", res->policy_text, sizeof(res->policy_text)))
            sget(d, base, "summary", res->policy_text, sizeof(res->policy_text));
    } else if (res->ndetail < AG_MAX_DETAILS && read_product(d, base, &res->detail[res->ndetail])) {
        res->ndetail++;
    } else {
        return false;
    }
    return true;
}

static bool failure_text(const char *s, size_t n)
{
    static const char *const words[] = {"error", "failed", "timeout", "timed out", "unavailable"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        size_t k = strlen(words[i]);
        for (size_t j = 0; j + k <= n; j++)
            if (strncasecmp(s + j, words[i], k) == 0)
                return true;
    }
    return false;
}

/* Read one tool result; see sim_agent_int.h. */
void ag_read_result(struct ag_results *res, json_doc *aux, const char *text, size_t len)
{
    static const char *const wraps[] = {"/result", "/content", "/output", "/response", "/data"};
    res->any = true;
    if (json_doc_load(aux, text, len) == 0) {
        if (read_shape(res, aux, ""))
            return;
        for (size_t i = 0; i < sizeof(wraps) / sizeof(wraps[0]); i++) {
            const char *s;
            size_t n;
            if (json_type_at(aux, wraps[i]) == JSON_STRING &&
                json_get_string(aux, wraps[i], &s, &n) == 0) {
                struct buf copy = {0};
                buf_append(&copy, s, n);
                ag_read_result(res, aux, buf_begin(&copy), buf_size(&copy));
                buf_free(&copy);
                return;
            }
            if (json_type_at(aux, wraps[i]) != JSON_MISSING && read_shape(res, aux, wraps[i]))
                return;
        }
        return;
    }
    if (failure_text(text, len)) {
        res->error = true;
        snprintf(res->error_msg, sizeof(res->error_msg), "%.*s", (int)(len < 160 ? len : 160),
                 text);
    }
}

/* ---- writing the answer ---- */

/* ₹ and Indian grouping; see sim_agent_int.h. */
void ag_inr(struct buf *out, int64_t v)
{
    char d[24];
    int n = snprintf(d, sizeof(d), "%lld", (long long)(v < 0 ? -v : v));
    buf_append_str(out, v < 0 ? "-₹" : "₹");
    if (n <= 3) {
        buf_append(out, d, (size_t)n);
        return;
    }
    int head = n - 3;
    for (int i = 0; i < head; i++) {
        buf_append(out, d + i, 1);
        if ((head - i - 1) % 2 == 0 && i + 1 < head)
            buf_append(out, ",", 1);
    }
    buf_append(out, ",", 1);
    buf_append(out, d + head, 3);
}

/* A price said wrong on purpose: 12% off the real one, still ending in 9. */
static int64_t misstated(int64_t price)
{
    int64_t v = price * 88 / 100;
    return v > 100 ? v / 100 * 100 - 1 : v + 1;
}

/* A product that is not in the results: the title with its first number changed. */
static void wrong_title(const char *title, char *out, size_t cap)
{
    size_t k = 0;
    bool done = false;
    for (const char *s = title; *s && k + 2 < cap; s++) {
        if (!done && *s >= '0' && *s <= '9') {
            int v = 0;
            while (*s >= '0' && *s <= '9')
                v = v * 10 + (*s++ - '0');
            s--;
            k += (size_t)snprintf(out + k, cap - k, "%d", v + 1);
            done = true;
        } else {
            out[k++] = *s;
        }
    }
    out[k] = '\0';
    if (!done && k + 5 < cap)
        snprintf(out + k, cap - k, " Pro");
}

static const char *spec_value(const struct ag_product *p, const char *id)
{
    for (int i = 0; i < p->nspecs; i++)
        if (strcmp(p->spec_id[i], id) == 0)
            return p->spec_v[i];
    return NULL;
}

static void short_specs(struct buf *out, const struct ag_product *p, int max)
{
    for (int i = 0; i < p->nspecs && i < max; i++)
        buf_printf(out, "%s%s", i ? ", " : "", p->spec_v[i]);
}

/* The product the answer recommends: the biggest battery when asked about it, else the first. */
static int pick(const struct sim_intent *it, const struct ag_product *ps, int n)
{
    int best = 0;
    long long best_v = -1;
    if (!it->spec[0] || it->cheapest)
        return 0;
    for (int i = 0; i < n; i++) {
        const char *v = spec_value(&ps[i], it->spec);
        long long x = v ? strtoll(v, NULL, 10) : -1;
        if (x > best_v)
            best_v = x, best = i;
    }
    return best;
}

static void search_reply(struct buf *out, const struct sim_intent *it, const struct ag_results *r,
                         enum ag_mistake m)
{
    if (!r->nfound) {
        buf_append_str(out, "I couldn't find products matching that. Try another brand, a "
                            "wider budget or fewer words.");
        return;
    }
    int n = r->nfound < 5 ? r->nfound : 5, best = pick(it, r->found, r->nfound);
    buf_printf(out, "Here are %d option%s", n, n == 1 ? "" : "s");
    if (it->max_price >= 0) {
        buf_append_str(out, " under ");
        ag_inr(out, it->max_price);
    }
    buf_append_str(out, ":\n\n");
    for (int i = 0; i < n; i++) {
        const struct ag_product *p = &r->found[i];
        buf_printf(out, "%d. **%s**", i + 1, p->title);
        if (p->price >= 0) {
            buf_append_str(out, " — ");
            ag_inr(out, i == best && m == AG_WRONG_NUMBER ? misstated(p->price) : p->price);
        }
        if (p->rating > 0)
            buf_printf(out, " · %.1f★", p->rating);
        if (p->nspecs) {
            buf_append_str(out, " · ");
            short_specs(out, p, 3);
        }
        buf_append_str(out, "\n");
    }
    const struct ag_product *b = &r->found[best];
    char title[AG_STR];
    if (m == AG_WRONG_PRODUCT)
        wrong_title(b->title, title, sizeof(title));
    else
        snprintf(title, sizeof(title), "%s", b->title);
    buf_printf(out, "\nMy pick: **%s**", title);
    const char *v = it->spec[0] ? spec_value(b, it->spec) : NULL;
    if (v)
        buf_printf(out, " (%s)", v);
    if (b->price >= 0) {
        buf_append_str(out, " at ");
        ag_inr(out, m == AG_WRONG_NUMBER ? misstated(b->price) : b->price);
    }
    buf_append_str(out, ".");
}

/* A yes/no question about a feature ("does it have 5G?", "is it waterproof?", "what is the
 * warranty?") answered in one sentence from value v (NULL: not in the details). Returns false
 * when the spec asked about is an ordinary one (the battery, the display, ...). */
static bool feature_sentence(struct buf *out, const struct sim_intent *it, const char *title,
                             const char *v)
{
    static const struct {
        const char *id, *name;
    } features[] = {
        {"network", "network"}, {"water", "water resistance rating"}, {"warranty", "warranty"}};
    const char *name = NULL;
    for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++)
        if (strcmp(it->spec, features[i].id) == 0)
            name = features[i].name;
    if (!name)
        return false;
    if (!v) {
        buf_printf(out, "**%s**: its %s is not stated in the product details.", title, name);
    } else if (!strcmp(it->spec, "network") && it->want[0]) {
        bool has_it = strstr(v, it->want) != NULL;
        buf_printf(out, "%s, **%s** %s %s (network: %s).", has_it ? "Yes" : "No", title,
                   has_it ? "supports" : "does not support", it->want, v);
    } else if (!strcmp(it->spec, "water")) {
        if (!strcasecmp(v, "None") || !strcasecmp(v, "No"))
            buf_printf(out, "No, **%s** has no water resistance rating, so keep it dry.", title);
        else
            buf_printf(out,
                       "**%s** is rated %s for water resistance: fine with sweat and "
                       "splashes, but it is not made to go under water.",
                       title, v);
    } else if (!strcmp(it->spec, "warranty") && !strcmp(v, "0 months")) {
        buf_printf(out, "**%s** comes with no manufacturer warranty.", title);
    } else if (!strcmp(it->spec, "warranty")) {
        buf_printf(out, "**%s** comes with a warranty of %s.", title, v);
    } else {
        buf_printf(out, "**%s**: %s %s.", title, name, v);
    }
    return true;
}

static void fact_reply(struct buf *out, const struct sim_intent *it, const struct ag_product *p,
                       enum ag_mistake m)
{
    char title[AG_STR], months[32];
    if (m == AG_WRONG_PRODUCT)
        wrong_title(p->title, title, sizeof(title));
    else
        snprintf(title, sizeof(title), "%s", p->title);
    const char *v = it->spec[0] ? spec_value(p, it->spec) : NULL;
    if (!strcmp(it->spec, "warranty") && p->warranty_months >= 0) {
        snprintf(months, sizeof(months), "%lld months", (long long)p->warranty_months);
        v = months;
    }
    bool feature = feature_sentence(out, it, title, v);
    if (feature)
        buf_append_str(out, " It costs ");
    else if (v)
        buf_printf(out, "**%s**: %s %s. It costs ", title, it->spec, v);
    else
        buf_printf(out, "**%s** costs ", title);
    if (p->price >= 0)
        ag_inr(out, m == AG_WRONG_NUMBER ? misstated(p->price) : p->price);
    else
        buf_append_str(out, "(price not given)");
    if (p->rating > 0)
        buf_printf(out, " and is rated %.1f★", p->rating);
    buf_append_str(out, ".");
    if (p->nspecs && !(feature && v)) {
        buf_append_str(out, "\n\nKey specs: ");
        short_specs(out, p, 6);
        buf_append_str(out, ".");
    }
}

static void table_reply(struct buf *out, const struct ag_product *ps, int n, enum ag_mistake m)
{
    buf_append_str(out, "| | ");
    for (int i = 0; i < n; i++)
        buf_printf(out, "%s |%s", ps[i].title, i + 1 < n ? " " : "\n");
    buf_append_str(out, "|---|");
    for (int i = 0; i < n; i++)
        buf_append_str(out, "---|");
    buf_append_str(out, "\n| Price |");
    for (int i = 0; i < n; i++) {
        buf_append_str(out, " ");
        ag_inr(out, i == 0 && m == AG_WRONG_NUMBER ? misstated(ps[i].price) : ps[i].price);
        buf_append_str(out, " |");
    }
    buf_append_str(out, "\n| Rating |");
    for (int i = 0; i < n; i++)
        buf_printf(out, " %.1f★ |", ps[i].rating);
    for (int k = 0; k < ps[0].nspecs; k++) {
        buf_printf(out, "\n| %s |", ps[0].spec_k[k]);
        for (int i = 0; i < n; i++) {
            const char *v = NULL;
            for (int j = 0; j < ps[i].nspecs && !v; j++)
                if (strcmp(ps[i].spec_k[j], ps[0].spec_k[k]) == 0)
                    v = ps[i].spec_v[j];
            buf_printf(out, " %s |", v ? v : "—");
        }
    }
    buf_append_str(out, "\n");
}

static void compare_reply(struct buf *out, const struct ag_results *r, enum ag_mistake m)
{
    const struct ag_product *ps = r->ndetail >= 2 ? r->detail : r->found;
    int n = r->ndetail >= 2 ? r->ndetail : (r->nfound < 2 ? r->nfound : 2);
    if (n < 2) {
        buf_append_str(out, "I need two products to compare; tell me which ones.");
        return;
    }
    int cheap = 0;
    for (int i = 1; i < n; i++)
        if (ps[i].price >= 0 && ps[i].price < ps[cheap].price)
            cheap = i;
    if (m == AG_NO_TABLE) {
        for (int i = 0; i < n; i++) {
            buf_printf(out, "%s%s costs ", i ? " and the " : "The ", ps[i].title);
            ag_inr(out, ps[i].price);
        }
        buf_printf(out, ". The %s is cheaper.", ps[cheap].title);
        return;
    }
    bool same = true;
    for (int i = 1; i < n; i++)
        same &= ps[i].price == ps[0].price;
    buf_printf(out, "Here is how they compare:\n\n");
    table_reply(out, ps, n, m);
    if (same)
        buf_append_str(out, "\nThey cost the same.");
    else
        buf_printf(out, "\n**%s** is the cheaper one.", ps[cheap].title);
}

/* The title an offer is about: its own, else the product result with its id, else the first. */
static const char *offer_title(const struct ag_results *r)
{
    if (r->offer_title[0])
        return r->offer_title;
    for (int i = 0; i < r->ndetail && r->offer_pid[0]; i++)
        if (strcmp(r->detail[i].id, r->offer_pid) == 0)
            return r->detail[i].title;
    for (int i = 0; i < r->nfound && r->offer_pid[0]; i++)
        if (strcmp(r->found[i].id, r->offer_pid) == 0)
            return r->found[i].title;
    return r->ndetail ? r->detail[0].title : r->nfound ? r->found[0].title : "This product";
}

/* Stock, delivery days, fee and cash on delivery at the pincode (the offer's, else the one the
 * user named). A wrong number misstates the price and the days. */
static void offer_reply(struct buf *out, const struct sim_intent *it, const struct ag_results *r,
                        enum ag_mistake m)
{
    char title[AG_STR];
    const char *pin = r->offer_pin[0] ? r->offer_pin : it->pincode;
    if (m == AG_WRONG_PRODUCT)
        wrong_title(offer_title(r), title, sizeof(title));
    else
        snprintf(title, sizeof(title), "%s", offer_title(r));
    buf_printf(out, "**%s** is %s", title, r->offer_stock ? "in stock" : "out of stock");
    if (pin[0])
        buf_printf(out, " at pincode %s", pin);
    if (r->offer_price >= 0) {
        buf_append_str(out, " for ");
        ag_inr(out, m == AG_WRONG_NUMBER ? misstated(r->offer_price) : r->offer_price);
    }
    if (!r->offer_stock) {
        buf_append_str(out, " right now.");
        return;
    }
    int64_t shift = m == AG_WRONG_NUMBER ? 2 : 0;
    if (r->offer_dmin >= 0 && r->offer_dmax >= 0)
        buf_printf(out, ", delivered in %lld–%lld days", (long long)(r->offer_dmin + shift),
                   (long long)(r->offer_dmax + shift));
    if (r->offer_fee == 0) {
        buf_append_str(out, " with free delivery");
    } else if (r->offer_fee > 0) {
        buf_append_str(out, " (delivery fee ");
        ag_inr(out, r->offer_fee);
        buf_append_str(out, ")");
    }
    buf_append_str(out, r->offer_express ? "; express delivery is available" : "");
    buf_append_str(out, r->offer_cod ? "; cash on delivery is available."
                                     : "; cash on delivery is not available.");
}

static void order_reply(struct buf *out, const struct ag_results *r)
{
    buf_printf(out, "Order %s is **%s**", r->order_id, r->order_status);
    if (r->order_carrier[0])
        buf_printf(out, " (with %s)", r->order_carrier);
    buf_append_str(out, ".");
    if (r->order_expected[0])
        buf_printf(out, " Expected delivery: %s.", r->order_expected);
    if (r->order_delivered[0])
        buf_printf(out, " Delivered on %s.", r->order_delivered);
    for (int i = 0; i < r->norder_items; i++)
        buf_printf(out, "%s%s", i ? "; " : "\n\nItems: ", r->order_items[i]);
    if (r->order_total >= 0) {
        buf_append_str(out, r->norder_items ? ". Total " : "\n\nTotal ");
        ag_inr(out, r->order_total);
        buf_append_str(out, ".");
    }
}

/* The answer; see sim_agent_int.h. */
void ag_reply(struct buf *out, const struct sim_intent *it, const struct ag_results *r,
              enum ag_mistake m)
{
    if (r->error && !r->nfound && !r->ndetail && !r->offer && !r->policy && !r->order) {
        buf_printf(out,
                   "Sorry, I couldn't get that from the store just now (%s). Please try "
                   "again in a moment.",
                   r->error_msg[0] ? r->error_msg : "the lookup failed");
    } else if (r->order) {
        order_reply(out, r);
    } else if (r->policy) {
        buf_printf(out, "**%s**: %s", r->policy_title[0] ? r->policy_title : "Policy",
                   r->policy_text);
    } else if (it->type == SIM_Q_COMPARISON && (r->ndetail >= 2 || r->nfound >= 2)) {
        compare_reply(out, r, m);
    } else if (r->offer && (it->delivery || !it->spec[0] || !r->ndetail)) {
        offer_reply(out, it, r, m); /* "can it be delivered to 560001?" */
    } else if (r->ndetail) {
        fact_reply(out, it, &r->detail[0], m);
        if (r->offer) {
            buf_append_str(out, "\n\n");
            offer_reply(out, it, r, m);
        }
    } else {
        search_reply(out, it, r, m);
    }
}

/* ---- small talk ---- */

enum chat_kind {
    CHAT_GREETING,
    CHAT_THANKS,
    CHAT_IDENTITY,
    CHAT_BYE,
    CHAT_SHOP,
    CHAT_OTHER,
    CHAT_N
};

static const char *const chat_templates[CHAT_N][3] = {
    [CHAT_GREETING] =
        {"Hello! I can help you find products, compare them, check delivery to your pincode, and "
         "answer questions about returns, warranty and orders. What are you looking for?",
         "Hi there! Looking for something in particular? I can search the store, compare models "
         "and check delivery to your pincode.",
         "Hey, welcome! Tell me what you need (a category, a brand or a budget) and I'll find a "
         "few good options."},
    [CHAT_THANKS] = {"You're welcome! Anything else I can help you find?",
                     "Happy to help! Let me know if you'd like to compare options or check "
                     "delivery to your pincode.",
                     "Glad I could help. Is there anything else you're looking for?"},
    [CHAT_IDENTITY] =
        {"I'm the store's shopping assistant. I can find products, compare them side by side, "
         "check price and delivery for your pincode, and answer questions about returns, "
         "warranty and your orders.",
         "I'm a virtual assistant for this store, here to help you shop: search the catalog, "
         "compare products, check delivery and track orders. What can I find for you?",
         "I'm an AI shopping assistant. Ask me for suggestions within a budget, a comparison of "
         "two models, delivery to your pincode, or the status of an order."},
    [CHAT_BYE] = {"Goodbye! Come back any time you need help shopping.",
                  "Bye for now, and happy shopping!",
                  "Take care! I'm here whenever you need help finding something."},
    [CHAT_SHOP] = {"Happy to help with that. Could you tell me a bit more about what you're "
                   "looking for, such as the category, brand or budget?",
                   "Sure! What exactly are you looking for? A category, a brand or a price "
                   "range helps me find the right options.",
                   "I'd love to help you shop. Tell me what you need and your budget, and I'll "
                   "suggest a few options."},
    [CHAT_OTHER] =
        {"That one is outside what I know about, but I can help you shop: finding products, "
         "comparing them, checking delivery to your pincode, and answering questions about "
         "returns, warranty and orders. What are you looking for?",
         "That's outside what I can do as the store's assistant. Tell me what you'd like to buy "
         "(a category, a brand or a budget) and I'll suggest a few options.",
         "My job here is shopping: products, prices, delivery, returns and orders. What can I "
         "find for you?"},
};

/* Does text[0..n) contain word w (letters only, any case) as a whole word? */
static bool has_word(const char *text, size_t n, const char *w)
{
    size_t k = strlen(w);
    for (size_t i = 0; i + k <= n; i++) {
        bool before = i == 0 || !((text[i - 1] | 0x20) >= 'a' && (text[i - 1] | 0x20) <= 'z');
        bool after = i + k == n || !((text[i + k] | 0x20) >= 'a' && (text[i + k] | 0x20) <= 'z');
        if (before && after && strncasecmp(text + i, w, k) == 0)
            return true;
    }
    return false;
}

static bool has_any(const char *text, size_t n, const char *const *words)
{
    for (; *words; words++)
        if (has_word(text, n, *words))
            return true;
    return false;
}

static enum chat_kind chat_kind_of(const char *t, size_t n, bool shop)
{
    static const char *const bye[] = {"bye", "goodbye", "cya", "farewell", "goodnight", NULL};
    static const char *const thanks[] = {"thanks",     "thank",  "thx", "ty",
                                         "appreciate", "cheers", NULL};
    static const char *const hello[] = {"hi",        "hello",   "hey",       "hiya",
                                        "namaste",   "hola",    "yo",        "morning",
                                        "afternoon", "evening", "greetings", NULL};
    static const char *const what[] = {"bot", "human", "ai", "robot", "real", "assistant", NULL};
    bool you = has_word(t, n, "you") || has_word(t, n, "u");
    if ((you && (has_word(t, n, "who") ||
                 (has_word(t, n, "what") &&
                  (has_word(t, n, "are") || has_word(t, n, "can") || has_word(t, n, "do"))))) ||
        (has_word(t, n, "your") && has_word(t, n, "name")) ||
        (you && has_word(t, n, "are") && has_any(t, n, what)))
        return CHAT_IDENTITY;
    if (has_any(t, n, bye) || (has_word(t, n, "see") && you) ||
        (has_word(t, n, "good") && has_word(t, n, "night")))
        return CHAT_BYE;
    if (has_any(t, n, thanks))
        return CHAT_THANKS;
    if (has_any(t, n, hello))
        return CHAT_GREETING;
    return shop ? CHAT_SHOP : CHAT_OTHER;
}

/* The reply to small talk; see sim_agent_int.h. */
void ag_chat_reply(struct buf *out, const char *text, size_t n, bool shop, uint64_t pick)
{
    buf_append_str(out, chat_templates[chat_kind_of(text, n, shop)][pick % 3]);
}
