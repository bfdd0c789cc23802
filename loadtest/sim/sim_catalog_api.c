/* sim_catalog_api.c - the commerce API over HTTP (see sim_catalog_api.h).
 *
 * A request is answered in two halves: the response is built at once (the catalog is in
 * memory), then held on a per-worker pending list with a timer for the endpoint's latency
 * (conn_http_defer), and sent when the timer fires. A client that leaves first takes its pending
 * answer with it (on_http_close). Every answer, and every client that left, is written to a
 * process-wide ring of the last LOG_CAP requests with monotonic arrival and completion times. */
#include "loadtest/sim/sim_catalog_api.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>

#include "base/clock.h"
#include "base/mem.h"
#include "loadtest/sim/sim_catalog.h"
#include "loadtest/sim/sim_hash.h"
#include "loadtest/sim/sim_reqlog.h"
#include "stream/jsonw.h"

enum { LOG_CAP = 4096, TARGET_MAX = 256, RID_MAX = 64, SEARCH_MAX_LIMIT = 50, ID_MAX = 64 };

static const char *const ep_names[SIM_NENDPOINTS] = {"search", "product", "offers", "policy",
                                                     "order"};

/* ---- the request log ---- */

struct logent {
    uint64_t seq, start_us, end_us;
    int status; /* 0 = the client left before the answer */
    int ep;     /* -1 = not one of the five endpoints (index, images) */
    uint32_t delay_ms;
    char fault[8]; /* "", "error", "timeout" */
    char target[TARGET_MAX];
    char rid[RID_MAX];
    char traceparent[RID_MAX]; /* the W3C traceparent header, "" = none */
};

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct logent log_ring[LOG_CAP];
static uint64_t log_seq; /* entries written so far; the newest has seq == log_seq */

static uint64_t now_us(void)
{
    return clock_now_ns() / 1000u;
}

/* Answers held now, all workers: a test waits for its request to be in before it acts. */
static _Atomic uint64_t held_now;

static void log_add(struct logent *e)
{
    pthread_mutex_lock(&log_lock);
    e->seq = ++log_seq;
    log_ring[e->seq % LOG_CAP] = *e;
    pthread_mutex_unlock(&log_lock);
}

/* GET /catalog/_log?since=N: the entries after seq N still in the ring, oldest first. */
static void log_reply(const struct http_request *req, struct buf *out)
{
    uint64_t since = sim_log_since(req);
    struct jsonw w;
    jw_init(&w, out);
    jw_obj_begin(&w);
    pthread_mutex_lock(&log_lock);
    uint64_t first = sim_log_first(since, log_seq, LOG_CAP);
    jw_kuint(&w, "last", log_seq);
    jw_kuint(&w, "held", held_now); /* requests arrived and not answered yet */
    jw_key(&w, "requests");
    jw_arr_begin(&w);
    for (uint64_t s = first; s <= log_seq; s++) {
        const struct logent *e = &log_ring[s % LOG_CAP];
        jw_obj_begin(&w);
        jw_kuint(&w, "seq", e->seq);
        jw_kstr(&w, "endpoint", e->ep >= 0 ? ep_names[e->ep] : "other");
        jw_kstr(&w, "target", e->target);
        jw_kint(&w, "status", e->status);
        jw_kuint(&w, "start_us", e->start_us);
        jw_kuint(&w, "end_us", e->end_us);
        jw_kuint(&w, "delay_ms", e->delay_ms);
        jw_kstr(&w, "fault", e->fault);
        jw_kstr(&w, "request_id", e->rid);
        jw_kstr(&w, "traceparent", e->traceparent);
        jw_obj_end(&w);
    }
    pthread_mutex_unlock(&log_lock);
    jw_arr_end(&w);
    jw_obj_end(&w);
}

/* ---- pending answers ---- */

struct sim_pending {
    struct timer timer; /* first: the timer callback finds the answer from it */
    struct sim_worker *sw;
    struct conn *c;
    struct sim_pending *next, **pprev;
    int status;
    const char *ctype;
    struct buf body;
    struct logent log;
};

static void pending_unlink(struct sim_pending *p)
{
    held_now--;
    *p->pprev = p->next;
    if (p->next)
        p->next->pprev = p->pprev;
}

static void pending_free(struct sim_pending *p)
{
    buf_free(&p->body);
    xfree(p);
}

static void send_now(struct sim_pending *p)
{
    conn_http_reply(p->c, p->status, p->ctype, buf_begin(&p->body), buf_size(&p->body),
                    "cache-control: no-store\r\n");
    p->log.end_us = now_us();
    p->log.status = p->status;
    log_add(&p->log);
}

static void pending_fire(struct loop *l, struct timer *t)
{
    (void)l;
    struct sim_pending *p = (struct sim_pending *)t;
    pending_unlink(p);
    send_now(p);
    pending_free(p);
}

/* The client left; see the header. */
void sim_catalog_api_closed(struct sim_worker *sw, struct conn *c)
{
    for (struct sim_pending *p = sw->pending; p; p = p->next) {
        if (p->c != c)
            continue;
        timer_disarm(sw->loop, &p->timer);
        pending_unlink(p);
        p->log.end_us = now_us();
        p->log.status = 0;
        log_add(&p->log);
        pending_free(p);
        return;
    }
}

/* Free what is still pending; see the header. */
void sim_catalog_api_fini(struct sim_worker *sw)
{
    while (sw->pending) {
        struct sim_pending *p = sw->pending;
        pending_unlink(p);
        pending_free(p);
    }
}

/* ---- endpoint options ---- */

/* Default latencies; see the header. */
void sim_endpoint_defaults(struct sim_endpoint_opts ep[SIM_NENDPOINTS])
{
    static const uint32_t ms[SIM_NENDPOINTS][2] = {
        {80, 250}, {20, 60}, {100, 400}, {10, 40}, {20, 80}};
    for (int i = 0; i < SIM_NENDPOINTS; i++)
        ep[i] = (struct sim_endpoint_opts){ms[i][0], ms[i][1], 0, 503, 0};
}

int sim_endpoint_index(const char *name)
{
    for (int i = 0; i < SIM_NENDPOINTS; i++)
        if (strcmp(name, ep_names[i]) == 0)
            return i;
    return -1;
}

static bool parse_num(const char *s, size_t n, double lo, double hi, double *out)
{
    char tmp[32], *end;
    if (n == 0 || n >= sizeof(tmp))
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    double d = strtod(tmp, &end);
    if (*end || d < lo || d > hi)
        return false;
    *out = d;
    return true;
}

static int parse_item(const char *k, size_t kn, const char *v, size_t vn,
                      struct sim_endpoint_opts *o)
{
    double a, b;
    const char *dash = memchr(v, '-', vn);
    if (kn == 2 && memcmp(k, "ms", 2) == 0) {
        size_t an = dash ? (size_t)(dash - v) : vn;
        if (!parse_num(v, an, 0, 600000, &a))
            return -EINVAL;
        b = a;
        if (dash && !parse_num(dash + 1, vn - an - 1, a, 600000, &b))
            return -EINVAL;
        o->min_ms = (uint32_t)a;
        o->max_ms = (uint32_t)b;
    } else if (kn == 10 && memcmp(k, "error_rate", 10) == 0 && parse_num(v, vn, 0, 1, &a)) {
        o->error_rate = a;
    } else if (kn == 12 && memcmp(k, "timeout_rate", 12) == 0 && parse_num(v, vn, 0, 1, &a)) {
        o->timeout_rate = a;
    } else if (kn == 6 && memcmp(k, "status", 6) == 0 && parse_num(v, vn, 400, 599, &a)) {
        o->error_status = (int)a;
    } else {
        return -EINVAL;
    }
    return 0;
}

/* Parse an endpoint spec; see the header. */
int sim_endpoint_parse(const char *spec, struct sim_endpoint_opts *o)
{
    const char *s = spec, *end = spec + strlen(spec);
    while (s < end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *item_end = comma ? comma : end;
        const char *eq = memchr(s, '=', (size_t)(item_end - s));
        if (!eq || parse_item(s, (size_t)(eq - s), eq + 1, (size_t)(item_end - eq - 1), o) < 0)
            return -EINVAL;
        s = item_end + 1;
    }
    return 0;
}

/* ---- per-request fault directive: x-sim-fault header or _sim query parameter ---- */

struct directive {
    int status;   /* 0 = none */
    int64_t ms;   /* -1 = the endpoint's latency */
    bool timeout; /* never answer */
};

static void parse_directive(const char *s, size_t n, struct directive *d)
{
    size_t i = 0;
    while (i < n) {
        size_t st = i;
        while (i < n && s[i] != ',')
            i++;
        const char *item = s + st, *eq = memchr(item, '=', i - st);
        size_t kn = eq ? (size_t)(eq - item) : i - st;
        double v = 0;
        bool num = eq && parse_num(eq + 1, (size_t)(s + i - eq - 1), 0, 600000, &v);
        while (kn && item[kn - 1] == ' ')
            kn--;
        while (kn && item[0] == ' ')
            item++, kn--;
        if (kn == 7 && memcmp(item, "timeout", 7) == 0)
            d->timeout = true;
        else if (kn == 6 && memcmp(item, "status", 6) == 0 && num && v >= 400 && v <= 599)
            d->status = (int)v;
        else if (kn == 2 && memcmp(item, "ms", 2) == 0 && num)
            d->ms = (int64_t)v;
        i++;
    }
}

static void read_directive(const struct http_request *req, struct directive *d)
{
    char v[128];
    int n;
    d->status = 0;
    d->ms = -1;
    d->timeout = false;
    const struct http_header *h = http_find_header(req, "x-sim-fault");
    if (h)
        parse_directive(h->value, h->value_len, d);
    if (req->query && (n = http_query_param(req->query, req->query_len, "_sim", v, sizeof(v))) > 0)
        parse_directive(v, (size_t)n, d);
}

/* ---- answers ---- */

struct answer {
    int status;
    int ep; /* -1: answered at once, without latency or faults */
    const char *ctype;
    struct buf body;
};

static void error_body(struct answer *a, int status, const char *code, const char *msg)
{
    struct jsonw w;
    a->status = status;
    buf_reset(&a->body);
    jw_init(&w, &a->body);
    jw_obj_begin(&w);
    jw_key(&w, "error");
    jw_obj_begin(&w);
    jw_kstr(&w, "code", code);
    jw_kstr(&w, "message", msg);
    jw_obj_end(&w);
    jw_obj_end(&w);
}

static void raw_body(struct answer *a, const char *json, size_t len)
{
    a->status = 200;
    buf_append(&a->body, json, len);
}

/* A path segment that is an id: 1..ID_MAX of [A-Za-z0-9._-]. */
static bool id_ok(const char *s, size_t n)
{
    if (n == 0 || n >= ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return false;
    }
    return true;
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return n > 0;
}

/* Query parameter name as a whole number of rupees (>= 0); -1 when absent, -2 when bad. */
static int64_t money_param(const struct http_request *req, const char *name)
{
    char v[32];
    int n = req->query ? http_query_param(req->query, req->query_len, name, v, sizeof(v)) : -1;
    if (n == -1 || n == 0)
        return -1;
    if (n < 0 || n > 12 || !digits(v, (size_t)n))
        return -2;
    return strtoll(v, NULL, 10);
}

static const char *const categories[] = {"phones", "laptops", "headphones", "shoes", "clothing"};

static bool known_category(const char *cat)
{
    char a[48], b[48];
    sim_catalog_norm_word(cat, strlen(cat), a, sizeof(a));
    for (size_t i = 0; i < sizeof(categories) / sizeof(categories[0]); i++) {
        sim_catalog_norm_word(categories[i], strlen(categories[i]), b, sizeof(b));
        if (strcmp(a, b) == 0)
            return true;
    }
    return false;
}

/* Read and check the search parameters; returns an error message for a 400, or NULL. */
static const char *search_params(const struct http_request *req, struct sim_search *s, char *q,
                                 char *cat, char *brand, size_t cap)
{
    static const char *const sorts[] = {"relevance", "price_asc", "price_desc", "rating"};
    char v[32];
    const char *qs = req->query ? req->query : "";
    size_t ql = req->query ? req->query_len : 0;
    if (http_query_param(qs, ql, "q", q, cap) == -2 ||
        http_query_param(qs, ql, "category", cat, cap) == -2 ||
        http_query_param(qs, ql, "brand", brand, cap) == -2)
        return "q, category and brand must be percent-encoded text of at most 255 bytes";
    if (cat[0] && !known_category(cat))
        return "category must be one of phones, laptops, headphones, shoes, clothing";
    s->q = q;
    s->category = cat;
    s->brand = brand;
    if ((s->min_price = money_param(req, "min_price")) == -2 ||
        (s->max_price = money_param(req, "max_price")) == -2)
        return "min_price and max_price must be whole numbers of rupees";
    if (s->min_price >= 0 && s->max_price >= 0 && s->min_price > s->max_price)
        return "min_price is above max_price";
    s->sort = SIM_SORT_RELEVANCE;
    if (http_query_param(qs, ql, "sort", v, sizeof(v)) != -1) {
        size_t i = 0;
        while (i < 4 && strcmp(v, sorts[i]) != 0)
            i++;
        if (i == 4)
            return "sort must be one of relevance, price_asc, price_desc, rating";
        s->sort = (enum sim_sort)i;
    }
    s->limit = 10;
    int n = http_query_param(qs, ql, "limit", v, sizeof(v));
    if (n != -1) {
        if (n <= 0 || n > 3 || !digits(v, (size_t)n) || atoi(v) < 1 || atoi(v) > SEARCH_MAX_LIMIT)
            return "limit must be a whole number from 1 to 50";
        s->limit = (uint32_t)atoi(v);
    }
    return NULL;
}

static void search(const struct sim_catalog *cat, const struct http_request *req, struct answer *a)
{
    char q[256] = "", category[256] = "", brand[256] = "";
    struct sim_search s;
    const char *err = search_params(req, &s, q, category, brand, sizeof(q));
    if (err) {
        error_body(a, 400, "bad_request", err);
        return;
    }
    const struct sim_product *hits[SEARCH_MAX_LIMIT];
    uint32_t total = sim_catalog_search(cat, &s, hits, s.limit);
    struct jsonw w;
    a->status = 200;
    jw_init(&w, &a->body);
    jw_obj_begin(&w);
    jw_kstr(&w, "q", q);
    jw_kuint(&w, "total", total);
    jw_key(&w, "results");
    jw_arr_begin(&w);
    for (uint32_t i = 0; i < total && i < s.limit; i++)
        jw_raw(&w, hits[i]->summary, hits[i]->summary_len);
    jw_arr_end(&w);
    jw_obj_end(&w);
}

/* Offers for a product at a pincode: deterministic per (product, pincode). */
static void offers(const struct sim_product *p, const char *pin, struct answer *a)
{
    static const char *const sellers[] = {"RetailNet", "SuperComNet",    "Appario",
                                          "Cloudtail", "TrueCom Retail", "Kapil Stores"};
    uint64_t h = sim_hash_bytes(sim_hash_bytes(SIM_HASH_SEED, p->id, strlen(p->id)), pin, 6);
    uint64_t s = h;
    bool metro = strncmp(pin, "110", 3) == 0 || strncmp(pin, "400", 3) == 0 ||
                 strncmp(pin, "560", 3) == 0 || strncmp(pin, "600", 3) == 0 ||
                 strncmp(pin, "700", 3) == 0 || strncmp(pin, "500", 3) == 0;
    bool in_stock = sim_rng_next(&s) % 100 >= 8;
    int64_t discount = sim_rng_next(&s) % 4 == 0 ? p->price * 3 / 100 : 0;
    int64_t price = p->price - discount;
    uint32_t dmin = metro ? 1 : 2 + (uint32_t)(sim_rng_next(&s) % 3);
    uint32_t dmax = dmin + 1 + (uint32_t)(sim_rng_next(&s) % 3);
    struct jsonw w;
    a->status = 200;
    jw_init(&w, &a->body);
    jw_obj_begin(&w);
    jw_kstr(&w, "product_id", p->id);
    jw_kstr(&w, "title", p->title);
    jw_kstr(&w, "pincode", pin);
    jw_kint(&w, "price", price);
    jw_kint(&w, "list_price", p->price);
    jw_kstr(&w, "currency", "INR");
    jw_kbool(&w, "in_stock", in_stock);
    jw_kuint(&w, "stock", in_stock ? 1 + sim_rng_next(&s) % 50 : 0);
    jw_key(&w, "delivery");
    jw_obj_begin(&w);
    jw_kuint(&w, "days_min", dmin);
    jw_kuint(&w, "days_max", dmax);
    jw_kint(&w, "fee", price >= 499 ? 0 : 40);
    jw_kbool(&w, "express_available", metro);
    jw_kbool(&w, "cod_available", price <= 50000 && sim_rng_next(&s) % 10 != 0);
    jw_obj_end(&w);
    jw_key(&w, "sellers");
    jw_arr_begin(&w);
    for (uint64_t i = 0, n = 1 + sim_rng_next(&s) % 3; i < n; i++) {
        jw_obj_begin(&w);
        jw_kstr(&w, "name", sellers[(h + i) % (sizeof(sellers) / sizeof(sellers[0]))]);
        jw_kint(&w, "price", price + (int64_t)i * (p->price / 50));
        jw_kuint(&w, "rating_pct", 80 + sim_rng_next(&s) % 20);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_obj_end(&w);
}

static void product(const struct sim_catalog *cat, const struct http_request *req, const char *id,
                    size_t idn, bool want_offers, struct answer *a)
{
    char key[ID_MAX], pin[16];
    if (!id_ok(id, idn)) {
        error_body(a, 400, "bad_request", "product id must be 1-63 of A-Z a-z 0-9 . _ -");
        return;
    }
    memcpy(key, id, idn);
    key[idn] = '\0';
    const struct sim_product *p = sim_catalog_product(cat, key);
    int n = -1;
    if (want_offers && req->query)
        n = http_query_param(req->query, req->query_len, "pincode", pin, sizeof(pin));
    if (want_offers && (n != 6 || !digits(pin, 6) || pin[0] == '0')) {
        error_body(a, 400, "bad_request", "pincode must be 6 digits, not starting with 0");
        return;
    }
    if (!p) {
        error_body(a, 404, "not_found", "no product with this id");
        return;
    }
    if (want_offers)
        offers(p, pin, a);
    else
        raw_body(a, p->json, p->json_len);
}

static void policy(const struct sim_catalog *cat, const char *topic, size_t n, struct answer *a)
{
    char key[ID_MAX];
    size_t len;
    if (n == 0) { /* the list of topics */
        struct jsonw w;
        a->status = 200;
        jw_init(&w, &a->body);
        jw_obj_begin(&w);
        jw_key(&w, "topics");
        jw_arr_begin(&w);
        for (uint32_t i = 0; sim_catalog_policy_topic(cat, i); i++)
            jw_str(&w, sim_catalog_policy_topic(cat, i));
        jw_arr_end(&w);
        jw_obj_end(&w);
        return;
    }
    if (!id_ok(topic, n)) {
        error_body(a, 400, "bad_request", "policy topic must be a word such as returns");
        return;
    }
    memcpy(key, topic, n);
    key[n] = '\0';
    const char *json = sim_catalog_policy(cat, key, &len);
    if (!json)
        error_body(a, 404, "not_found",
                   "no policy on this topic; GET /catalog/policies lists them");
    else
        raw_body(a, json, len);
}

static void order(const struct sim_catalog *cat, const char *id, size_t n, struct answer *a)
{
    char key[16];
    size_t len;
    if (n != 9 || !digits(id, 4) || id[4] != '-' || !digits(id + 5, 4)) {
        error_body(a, 400, "bad_request", "order id must look like 1234-5678");
        return;
    }
    memcpy(key, id, 9);
    key[9] = '\0';
    const char *json = sim_catalog_order(cat, key, &len);
    if (!json)
        error_body(a, 404, "not_found", "no order with this id");
    else
        raw_body(a, json, len);
}

/* A placeholder product image: an SVG with the category and the id. */
static void image(const struct sim_catalog *cat, const char *name, size_t n, struct answer *a)
{
    static const char *const colours[] = {"#4f6d7a", "#c0d6df", "#dd6e42", "#e8dab2", "#6b9080"};
    char key[ID_MAX];
    const struct sim_product *p = NULL;
    if (n > 4 && n - 4 < ID_MAX && memcmp(name + n - 4, ".svg", 4) == 0) {
        memcpy(key, name, n - 4);
        key[n - 4] = '\0';
        p = sim_catalog_product(cat, key);
    }
    if (!p) {
        error_body(a, 404, "not_found", "no image with this name");
        return;
    }
    a->status = 200;
    a->ctype = "image/svg+xml";
    uint64_t h = sim_hash_bytes(SIM_HASH_SEED, key, strlen(key));
    buf_printf(&a->body,
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"240\" height=\"240\" "
               "viewBox=\"0 0 240 240\"><rect width=\"240\" height=\"240\" fill=\"%s\"/>"
               "<text x=\"120\" y=\"115\" font-family=\"sans-serif\" font-size=\"22\" "
               "text-anchor=\"middle\" fill=\"#fff\">%s</text><text x=\"120\" y=\"145\" "
               "font-family=\"sans-serif\" font-size=\"16\" text-anchor=\"middle\" "
               "fill=\"#fff\">%s</text></svg>",
               colours[h % 5], p->category, p->id);
}

static void index_reply(const struct sim_catalog *cat, struct answer *a)
{
    struct jsonw w;
    a->status = 200;
    jw_init(&w, &a->body);
    jw_obj_begin(&w);
    jw_kuint(&w, "products", sim_catalog_nproducts(cat));
    jw_kuint(&w, "orders", sim_catalog_norders(cat));
    jw_key(&w, "endpoints");
    jw_arr_begin(&w);
    jw_str(&w, "/catalog/search?q=&category=&brand=&min_price=&max_price=&sort=&limit=");
    jw_str(&w, "/catalog/products/{id}");
    jw_str(&w, "/catalog/products/{id}/offers?pincode=");
    jw_str(&w, "/catalog/policies/{topic}");
    jw_str(&w, "/catalog/orders/{id}");
    jw_str(&w, "/catalog/_log?since=");
    jw_arr_end(&w);
    jw_obj_end(&w);
}

static bool prefix(const char *p, size_t n, const char *pre, size_t *rest)
{
    size_t k = strlen(pre);
    if (n < k || memcmp(p, pre, k) != 0)
        return false;
    *rest = k;
    return true;
}

/* Build the answer for a path under /catalog/. */
static void route(const struct sim_catalog *cat, const struct http_request *req, struct answer *a)
{
    const char *p = req->path;
    size_t n = req->path_len, k;
    a->ep = -1;
    if ((n == 8 && memcmp(p, "/catalog", 8) == 0) || (n == 9 && memcmp(p, "/catalog/", 9) == 0)) {
        index_reply(cat, a);
    } else if (n == 15 && memcmp(p, "/catalog/search", 15) == 0) {
        a->ep = SIM_EP_SEARCH;
        search(cat, req, a);
    } else if (prefix(p, n, "/catalog/products/", &k)) {
        const char *id = p + k, *slash = memchr(id, '/', n - k);
        bool offers_path =
            slash && (size_t)(p + n - slash) == 7 && memcmp(slash, "/offers", 7) == 0;
        if (slash && !offers_path) {
            error_body(a, 404, "not_found", "unknown catalog path");
            return;
        }
        a->ep = offers_path ? SIM_EP_OFFERS : SIM_EP_PRODUCT;
        product(cat, req, id, slash ? (size_t)(slash - id) : n - k, offers_path, a);
    } else if (prefix(p, n, "/catalog/policies", &k) && (n == k || p[k] == '/')) {
        a->ep = SIM_EP_POLICY;
        policy(cat, p + k + (n > k), n - k - (n > k), a);
    } else if (prefix(p, n, "/catalog/orders/", &k)) {
        a->ep = SIM_EP_ORDER;
        order(cat, p + k, n - k, a);
    } else if (prefix(p, n, "/catalog/images/", &k)) {
        image(cat, p + k, n - k, a);
    } else {
        error_body(a, 404, "not_found", "unknown catalog path");
    }
}

/* Latency and faults of endpoint a->ep for this request; may turn *a into an error. */
static uint32_t plan(struct sim_worker *sw, const struct http_request *req, struct answer *a,
                     struct logent *e, bool *hang)
{
    const struct sim_endpoint_opts *o = &sw->sim->o.ep[a->ep];
    struct directive d;
    read_directive(req, &d);
    uint32_t ms = o->min_ms;
    if (o->max_ms > o->min_ms)
        ms += (uint32_t)(sim_rng_next(&sw->rng) % (o->max_ms - o->min_ms + 1u));
    if (d.ms >= 0)
        ms = (uint32_t)d.ms;
    double u = sim_rng_unit(&sw->rng);
    *hang = d.timeout || (!d.status && u < o->timeout_rate);
    int status = d.status                                          ? d.status
                 : (!*hang && u < o->timeout_rate + o->error_rate) ? o->error_status
                                                                   : 0;
    if (*hang) {
        snprintf(e->fault, sizeof(e->fault), "timeout");
    } else if (status) {
        snprintf(e->fault, sizeof(e->fault), "error");
        error_body(a, status, "unavailable", "injected fault (trilemma-sim)");
    }
    return ms;
}

/* Answer a /catalog request; see the header. */
bool sim_catalog_api_request(struct sim_worker *sw, struct conn *c, const struct http_request *req)
{
    size_t k;
    if (!prefix(req->path, req->path_len, "/catalog", &k) ||
        (req->path_len > 8 && req->path[8] != '/'))
        return false;
    struct logent e = {.start_us = now_us(), .ep = -1};
    snprintf(e.target, sizeof(e.target), "%.*s", (int)req->target_len, req->target);
    const struct http_header *rid = http_find_header(req, "x-request-id");
    if (rid)
        snprintf(e.rid, sizeof(e.rid), "%.*s", (int)rid->value_len, rid->value);
    const struct http_header *tp = http_find_header(req, "traceparent");
    if (tp)
        snprintf(e.traceparent, sizeof(e.traceparent), "%.*s", (int)tp->value_len, tp->value);
    struct answer a = {.ctype = "application/json; charset=utf-8"};
    if (req->path_len == 13 && memcmp(req->path, "/catalog/_log", 13) == 0) {
        log_reply(req, &a.body);
        conn_http_reply(c, 200, a.ctype, buf_begin(&a.body), buf_size(&a.body), NULL);
        buf_free(&a.body);
        return true;
    }
    if (!(req->method_len == 3 && memcmp(req->method, "GET", 3) == 0)) {
        a.ep = -1;
        error_body(&a, 405, "method_not_allowed", "the catalog answers GET only");
    } else if (!sw->sim->catalog) {
        a.ep = -1;
        error_body(&a, 503, "no_catalog", "trilemma-sim runs without a catalog (--catalog)");
    } else {
        route(sw->sim->catalog, req, &a);
    }
    struct sim_pending *p = xcalloc(1, sizeof(*p));
    bool hang = false;
    uint32_t ms = a.ep >= 0 ? plan(sw, req, &a, &e, &hang) : 0;
    e.ep = a.ep;
    e.delay_ms = ms;
    *p = (struct sim_pending){
        .sw = sw, .c = c, .status = a.status, .ctype = a.ctype, .body = a.body, .log = e};
    if (ms == 0 && !hang) {
        send_now(p);
        pending_free(p);
        return true;
    }
    conn_http_defer(c);
    held_now++;
    p->next = sw->pending;
    p->pprev = &sw->pending;
    if (sw->pending)
        sw->pending->pprev = &p->next;
    sw->pending = p;
    if (!hang)
        /* From the arrival time rounded up, not the loop's turn start (which is earlier): the
         * recorded end - start is then never below the latency. */
        timer_arm(sw->loop, &p->timer, (e.start_us + 999) / 1000 + ms, pending_fire);
    return true;
}
