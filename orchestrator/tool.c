/* tool.c - loading the tools file strictly (see tool.h and docs/tools.md). The pure parts of a
 * call (argument checks, URL and body, the result shaper) are in tool_call.c. */
#include "orchestrator/tool.h"
#include "orchestrator/json_schema.h"
#include "stream/jsonw.h"
#include "base/redact.h"
#include "base/mem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOOL_MAX_TOOLS 64
#define TOOL_DEFAULT_TIMEOUT_MS 5000
#define TOOL_MAX_TIMEOUT_MS 600000
#define TOOL_MAX_RETRIES 5

struct tool_set {
    struct tool_def *tools;
    size_t n;
};

/* The loader's state: the document, where messages go, and the tool being read. */
struct lctx {
    json_doc *d;
    const char *origin;
    char *err;
    size_t errlen;
    const char *tool; /* name of the tool being read ("tools[3]" before it is known) */
    char tool_label[96];
    const char *def_base_url, *def_base_env; /* top-level defaults, or NULL */
};

static int lerr(struct lctx *c, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int lerr(struct lctx *c, const char *key, const char *fmt, ...)
{
    va_list ap;
    int n = c->tool ? snprintf(c->err, c->errlen, "%s: tool '%s': %s: ", c->origin, c->tool, key)
                    : snprintf(c->err, c->errlen, "%s: %s: ", c->origin, key);
    if (n >= 0 && (size_t)n < c->errlen) {
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* Every member of the object at ptr is one of allowed (NULL-terminated). */
static int only_keys(struct lctx *c, const char *ptr, const char *where, const char *const *allowed)
{
    size_t count = 0;
    json_count(c->d, ptr, &count);
    for (size_t i = 0; i < count; i++) {
        const char *k;
        size_t n;
        bool ok = false;
        json_key_at(c->d, ptr, i, &k, &n);
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strlen(*a) == n && !memcmp(*a, k, n);
        if (!ok)
            return lerr(c, where, "unknown key '%.*s'", (int)n, k);
    }
    return 0;
}

/* A string member: required or optional (*out stays NULL when absent). Copied. */
static int get_str(struct lctx *c, const char *ptr, const char *key, bool required, char **out)
{
    const char *s;
    size_t n;
    enum json_type t = json_type_at(c->d, ptr);
    if (t == JSON_MISSING && !required)
        return 0;
    if (json_get_string(c->d, ptr, &s, &n) != 0 || !n || memchr(s, 0, n))
        return lerr(c, key, "expected a non-empty string");
    *out = xstrndup(s, n);
    return 0;
}

static int get_u32(struct lctx *c, const char *ptr, const char *key, uint32_t max, uint32_t *out)
{
    int64_t v;
    if (json_type_at(c->d, ptr) == JSON_MISSING)
        return 0;
    if (json_get_int(c->d, ptr, &v) != 0 || v < 0 || v > max)
        return lerr(c, key, "expected an integer 0..%u", max);
    *out = (uint32_t)v;
    return 0;
}

static bool name_valid(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > 64) /* the providers' limit: ^[a-zA-Z0-9_-]{1,64}$ */
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return false;
    return true;
}

/* ---- loading: one function per part of a tool --------------------------------------------- */

static int load_parameters(struct lctx *c, struct tool_def *t, const char *ptr)
{
    char p[128], serr[256];
    const char *raw;
    size_t n;
    snprintf(p, sizeof(p), "%s/parameters", ptr);
    if (json_type_at(c->d, p) == JSON_MISSING)
        return lerr(c, "parameters", "missing (a JSON Schema object)");
    t->schema = js_compile(c->d, p, serr, sizeof(serr));
    if (!t->schema) {
        char key[300];
        /* serr is "where: message"; where is inside parameters */
        char *colon = strstr(serr, ": ");
        if (!colon)
            return lerr(c, "parameters", "%s", serr);
        *colon = 0;
        snprintf(key, sizeof(key), "parameters%s%s", *serr ? "." : "", serr);
        return lerr(c, key, "%s", colon + 2);
    }
    if (!js_is_object(t->schema))
        return lerr(c, "parameters", "expected a schema with \"type\": \"object\"");
    struct buf b = {0};
    json_get_raw(c->d, p, &raw, &n);
    tool_json_minify(&b, raw, n); /* what the model is shown costs tokens */
    t->parameters_json = xstrndup(buf_begin(&b), buf_size(&b));
    buf_free(&b);
    return 0;
}

/* Each {name} of the template must be a required parameter: a call without it has no URL. */
static int check_template(struct lctx *c, struct tool_def *t)
{
    for (const char *p = t->path; (p = strchr(p, '{')); p++) {
        const char *end = strchr(p, '}');
        if (!end)
            return lerr(c, "http.path", "unclosed '{'");
        char name[96];
        snprintf(name, sizeof(name), "%.*s", (int)(end - p - 1), p + 1);
        if (!js_has_property(t->schema, name))
            return lerr(c, "http.path", "placeholder {%s} is not a parameter", name);
        if (!js_is_required(t->schema, name))
            return lerr(c, "http.path", "placeholder {%s} must be a required parameter", name);
    }
    return 0;
}

/* A header's value: a string, or {"env": "NAME"} read now (unset is an error: a call without
 * its credential would only fail later, on every call). */
static int load_header(struct lctx *c, struct tool_def *t, const char *hp, size_t i)
{
    const char *k, *v;
    size_t kn, vn;
    char key[160], *env = NULL;
    json_key_at(c->d, hp, i, &k, &kn);
    snprintf(key, sizeof(key), "http.headers.%.*s", (int)kn, k);
    for (size_t j = 0; j < kn; j++)
        if (k[j] <= ' ' || k[j] == ':' || k[j] == '/' || k[j] == '~' || k[j] >= 127)
            return lerr(c, key, "not a valid header name");
    char *name = xstrndup(k, kn);
    int rc = 0;
    char vp[256];
    snprintf(vp, sizeof(vp), "%s/%s", hp, name);
    if (json_type_at(c->d, vp) == JSON_OBJECT) {
        char ep[300];
        snprintf(ep, sizeof(ep), "%s/env", vp);
        rc = only_keys(c, vp, key, (const char *const[]){"env", NULL});
        if (!rc)
            rc = get_str(c, ep, key, true, &env);
        v = env ? getenv(env) : NULL;
        if (!rc && (!v || !*v))
            rc = lerr(c, key, "environment variable %s is not set", env);
        vn = v ? strlen(v) : 0;
    } else if (json_get_string(c->d, vp, &v, &vn) != 0) {
        rc = lerr(c, key, "expected a string or {\"env\": \"NAME\"}");
    }
    if (!rc && (memchr(v, '\r', vn) || memchr(v, '\n', vn) || memchr(v, 0, vn)))
        rc = lerr(c, key, "the value contains a line break");
    if (!rc) {
        struct buf b = {0};
        buf_printf(&b, "%s: %.*s", name, (int)vn, v);
        t->headers[i] = xstrndup(buf_begin(&b), buf_size(&b));
        buf_free(&b);
    }
    xfree(env);
    xfree(name);
    return rc;
}

static int load_headers(struct lctx *c, struct tool_def *t, const char *hp)
{
    size_t count = 0;
    if (json_type_at(c->d, hp) == JSON_MISSING)
        return 0;
    if (json_type_at(c->d, hp) != JSON_OBJECT || json_count(c->d, hp, &count) != 0)
        return lerr(c, "http.headers", "expected an object of header names");
    if (count > TOOL_MAX_HEADERS)
        return lerr(c, "http.headers", "at most %d headers", TOOL_MAX_HEADERS);
    for (size_t i = 0; i < count; i++)
        if (load_header(c, t, hp, i))
            return -EINVAL;
    return 0;
}

/* The base URL: the environment variable's value when set and not empty, else the default. */
static int load_base_url(struct lctx *c, struct tool_def *t, const char *hp)
{
    char p[160], *url = NULL, *env = NULL;
    snprintf(p, sizeof(p), "%s/base_url", hp);
    if (get_str(c, p, "http.base_url", false, &url))
        return -EINVAL;
    snprintf(p, sizeof(p), "%s/base_url_env", hp);
    if (get_str(c, p, "http.base_url_env", false, &env)) {
        xfree(url);
        return -EINVAL;
    }
    const char *def = url ? url : c->def_base_url;
    const char *var = env ? env : c->def_base_env;
    const char *v = var ? getenv(var) : NULL;
    const char *chosen = v && *v ? v : def;
    int rc = 0;
    if (!chosen)
        rc = lerr(c, "http.base_url", "missing (and no base_url_env set)");
    else if (strncmp(chosen, "http://", 7) && strncmp(chosen, "https://", 8)) {
        char shown[256]; /* the message is printed: no credentials in it */
        url_redact(chosen, shown, sizeof(shown));
        rc = lerr(c, "http.base_url", "'%s'%s%s does not start with http:// or https://", shown,
                  v && *v ? " from " : "", v && *v ? var : "");
    }
    if (!rc) {
        size_t n = strlen(chosen);
        while (n && chosen[n - 1] == '/')
            n--;
        t->base_url = xstrndup(chosen, n);
    }
    xfree(url);
    xfree(env);
    return rc;
}

static int load_http(struct lctx *c, struct tool_def *t, const char *ptr)
{
    static const char *const keys[] = {"method",       "path",    "base_url",
                                       "base_url_env", "headers", NULL};
    char hp[128], p[160], *method = NULL;
    snprintf(hp, sizeof(hp), "%s/http", ptr);
    if (json_type_at(c->d, hp) != JSON_OBJECT)
        return lerr(c, "http", "missing (an object with method and path)");
    if (only_keys(c, hp, "http", keys))
        return -EINVAL;
    snprintf(p, sizeof(p), "%s/method", hp);
    if (get_str(c, p, "http.method", true, &method))
        return -EINVAL;
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    xfree(method);
    if (!get && !post)
        return lerr(c, "http.method", "expected \"GET\" or \"POST\"");
    t->method = get ? TOOL_GET : TOOL_POST;
    snprintf(p, sizeof(p), "%s/path", hp);
    if (get_str(c, p, "http.path", true, &t->path))
        return -EINVAL;
    if (t->path[0] != '/' || strpbrk(t->path, " #\r\n"))
        return lerr(c, "http.path", "expected a path starting with '/' (no spaces or '#')");
    if (check_template(c, t) || load_base_url(c, t, hp))
        return -EINVAL;
    snprintf(p, sizeof(p), "%s/headers", hp);
    return load_headers(c, t, p);
}

static int load_keep(struct lctx *c, struct tool_shaper *s, const char *kp)
{
    size_t count = 0;
    if (json_type_at(c->d, kp) == JSON_MISSING)
        return 0;
    if (json_type_at(c->d, kp) != JSON_ARRAY || json_count(c->d, kp, &count) != 0)
        return lerr(c, "result.keep", "expected an array of field paths");
    if (count > TOOL_MAX_KEEP)
        return lerr(c, "result.keep", "at most %d fields", TOOL_MAX_KEEP);
    for (size_t i = 0; i < count; i++) {
        char p[192];
        int n = snprintf(p, sizeof(p), "%s/%zu", kp, i);
        if (n < 0 || (size_t)n >= sizeof(p) ||
            get_str(c, p, "result.keep", true, &s->keep[s->n_keep]))
            return -EINVAL;
        const char *k = s->keep[s->n_keep++];
        if (k[0] == '.' || k[strlen(k) - 1] == '.' || strstr(k, ".."))
            return lerr(c, "result.keep", "'%s' is not a dotted path", k);
    }
    return 0;
}

static int load_shaper(struct lctx *c, struct tool_def *t, const char *ptr)
{
    static const char *const keys[] = {"items", "keep", "top_k", "max_bytes", NULL};
    struct tool_shaper *s = &t->shape;
    char rp[128], p[160];
    snprintf(rp, sizeof(rp), "%s/result", ptr);
    if (json_type_at(c->d, rp) == JSON_MISSING) {
        s->items = xstrdup("");
        return 0;
    }
    if (json_type_at(c->d, rp) != JSON_OBJECT)
        return lerr(c, "result", "expected an object");
    if (only_keys(c, rp, "result", keys))
        return -EINVAL;
    snprintf(p, sizeof(p), "%s/items", rp);
    if (json_type_at(c->d, p) == JSON_MISSING)
        s->items = xstrdup("");
    else if (get_str(c, p, "result.items", true, &s->items))
        return -EINVAL;
    else if (s->items[0] != '/')
        return lerr(c, "result.items", "expected a JSON Pointer (\"/results\")");
    snprintf(p, sizeof(p), "%s/keep", rp);
    if (load_keep(c, s, p))
        return -EINVAL;
    snprintf(p, sizeof(p), "%s/top_k", rp);
    if (get_u32(c, p, "result.top_k", 1000, &s->top_k))
        return -EINVAL;
    snprintf(p, sizeof(p), "%s/max_bytes", rp);
    return get_u32(c, p, "result.max_bytes", 1u << 20, &s->max_bytes);
}

static int load_tool(struct lctx *c, struct tool_def *t, size_t idx)
{
    static const char *const keys[] = {"name",    "description", "parameters", "http", "timeout_ms",
                                       "retries", "cache_ttl_s", "result",     NULL};
    char ptr[64], p[128];
    snprintf(ptr, sizeof(ptr), "/tools/%zu", idx);
    snprintf(c->tool_label, sizeof(c->tool_label), "tools[%zu]", idx);
    c->tool = NULL;
    if (json_type_at(c->d, ptr) != JSON_OBJECT)
        return lerr(c, c->tool_label, "expected an object");
    snprintf(p, sizeof(p), "%s/name", ptr);
    c->tool = c->tool_label;
    if (get_str(c, p, "name", true, &t->name))
        return -EINVAL;
    if (!name_valid(t->name))
        return lerr(c, "name", "'%s': expected 1-64 of a-z A-Z 0-9 _ -", t->name);
    c->tool = t->name;
    if (only_keys(c, ptr, "keys", keys))
        return -EINVAL;
    snprintf(p, sizeof(p), "%s/description", ptr);
    if (get_str(c, p, "description", true, &t->description) || load_parameters(c, t, ptr) ||
        load_http(c, t, ptr))
        return -EINVAL;
    t->timeout_ms = TOOL_DEFAULT_TIMEOUT_MS;
    snprintf(p, sizeof(p), "%s/timeout_ms", ptr);
    if (get_u32(c, p, "timeout_ms", TOOL_MAX_TIMEOUT_MS, &t->timeout_ms))
        return -EINVAL;
    if (!t->timeout_ms)
        return lerr(c, "timeout_ms", "expected an integer 1..%u", TOOL_MAX_TIMEOUT_MS);
    snprintf(p, sizeof(p), "%s/retries", ptr);
    if (get_u32(c, p, "retries", TOOL_MAX_RETRIES, &t->retries))
        return -EINVAL;
    snprintf(p, sizeof(p), "%s/cache_ttl_s", ptr);
    if (get_u32(c, p, "cache_ttl_s", 86400 * 30, &t->cache_ttl_s))
        return -EINVAL;
    return load_shaper(c, t, ptr);
}

static void tool_def_free(struct tool_def *t)
{
    xfree(t->name);
    xfree(t->description);
    xfree(t->parameters_json);
    js_free(t->schema);
    xfree(t->base_url);
    xfree(t->path);
    for (size_t i = 0; i < TOOL_MAX_HEADERS; i++)
        xfree(t->headers[i]);
    xfree(t->shape.items);
    for (size_t i = 0; i < t->shape.n_keep; i++)
        xfree(t->shape.keep[i]);
}

/* The top level: optional defaults, then the tools; names must be unique. */
static int load_all(struct lctx *c, struct tool_set *ts)
{
    static const char *const keys[] = {"base_url", "base_url_env", "tools", NULL};
    size_t count;
    char *def_url = NULL, *def_env = NULL;
    int rc = -EINVAL;
    if (json_type_at(c->d, "") != JSON_OBJECT)
        return lerr(c, "top level", "expected an object with \"tools\"");
    if (only_keys(c, "", "top level", keys) ||
        get_str(c, "/base_url", "base_url", false, &def_url) ||
        get_str(c, "/base_url_env", "base_url_env", false, &def_env))
        goto out_defaults;
    c->def_base_url = def_url;
    c->def_base_env = def_env;
    if (json_type_at(c->d, "/tools") != JSON_ARRAY || json_count(c->d, "/tools", &count) != 0) {
        lerr(c, "tools", "expected an array of tools");
        goto out_defaults;
    }
    if (count > TOOL_MAX_TOOLS) {
        lerr(c, "tools", "at most %d tools", TOOL_MAX_TOOLS);
        goto out_defaults;
    }
    ts->tools = xcalloc(count ? count : 1, sizeof(*ts->tools));
    for (size_t i = 0; i < count; i++) {
        if (load_tool(c, &ts->tools[ts->n++], i))
            goto out_defaults;
        for (size_t j = 0; j + 1 < ts->n; j++)
            if (!strcmp(ts->tools[j].name, ts->tools[i].name)) {
                lerr(c, "name", "a second tool of that name");
                goto out_defaults;
            }
    }
    rc = 0;
out_defaults:
    xfree(def_url);
    xfree(def_env);
    return rc;
}

/* See tool.h. */
struct tool_set *tool_set_parse(const char *text, size_t len, const char *origin, char *err,
                                size_t errlen)
{
    struct tool_set *ts = xcalloc(1, sizeof(*ts));
    struct lctx c = {.origin = origin ? origin : "tools", .err = err, .errlen = errlen};
    c.d = json_doc_create();
    if (errlen)
        err[0] = 0;
    int rc = json_doc_load(c.d, text, len);
    if (rc) {
        lerr(&c, "JSON", "%s", rc == -E2BIG ? "too large or too deeply nested" : "not valid JSON");
        goto out_free;
    }
    if (load_all(&c, ts))
        goto out_free;
    json_doc_destroy(c.d);
    return ts;
out_free:
    json_doc_destroy(c.d);
    tool_set_free(ts);
    return NULL;
}

/* See tool.h. */
struct tool_set *tool_set_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct buf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && buf_size(&b) <= (4u << 20))
        buf_append(&b, chunk, n);
    bool bad = ferror(f);
    fclose(f);
    struct tool_set *ts = NULL;
    if (bad)
        snprintf(err, errlen, "%s: read error", path);
    else
        ts = tool_set_parse(buf_begin(&b), buf_size(&b), path, err, errlen);
    buf_free(&b);
    return ts;
}

void tool_set_free(struct tool_set *ts)
{
    if (!ts)
        return;
    for (size_t i = 0; i < ts->n; i++)
        tool_def_free(&ts->tools[i]);
    xfree(ts->tools);
    xfree(ts);
}

size_t tool_set_count(const struct tool_set *ts)
{
    return ts ? ts->n : 0;
}

const struct tool_def *tool_set_at(const struct tool_set *ts, size_t i)
{
    return ts && i < ts->n ? &ts->tools[i] : NULL;
}

const struct tool_def *tool_set_find(const struct tool_set *ts, const char *name, size_t name_len)
{
    for (size_t i = 0; ts && i < ts->n; i++)
        if (strlen(ts->tools[i].name) == name_len && !memcmp(ts->tools[i].name, name, name_len))
            return &ts->tools[i];
    return NULL;
}

void tool_to_llm(const struct tool_def *t, struct llm_tool *out)
{
    out->name = t->name;
    out->description = t->description;
    out->parameters_json = t->parameters_json;
}
