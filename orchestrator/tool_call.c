/* tool_call.c - the pure parts of one tool call: checking the model's arguments against the
 * schema, building the request's URL and body, and shaping the result for the model. No I/O;
 * unit-tested in tests/orchestrator/test_tool.c. */
#include "orchestrator/json_schema.h"
#include "orchestrator/tool.h"
#include "stream/jsonw.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* See tool.h. */
int tool_check_args(const struct tool_def *t, json_doc *d, const char *args, size_t len, char *err,
                    size_t errlen)
{
    char why[384];
    if (!args || !len) {
        args = "{}";
        len = 2;
    }
    int rc = json_doc_load(d, args, len);
    if (rc) {
        snprintf(err, errlen, "%s: arguments are not valid JSON", t->name);
        return -EINVAL;
    }
    if (js_validate(t->schema, d, "", why, sizeof(why))) {
        snprintf(err, errlen, "%s: %s", t->name, why);
        return -EINVAL;
    }
    return 0;
}

/* RFC 3986 unreserved characters pass, every other byte is %XX. */
static void pct_encode(struct buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~';
        if (plain) {
            buf_append(out, s + i, 1);
        } else {
            char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            buf_append(out, e, 3);
        }
    }
}

/* The argument name's value for a URL: a string as it is, other values as their JSON text.
 * Returns false when it is absent or null. */
static bool arg_text(json_doc *d, const char *name, const char **s, size_t *n)
{
    char ptr[160];
    snprintf(ptr, sizeof(ptr), "/%s", name); /* parameter names with '/' or '~': see docs */
    enum json_type ty = json_type_at(d, ptr);
    if (ty == JSON_MISSING || ty == JSON_NULL)
        return false;
    if (ty == JSON_STRING)
        return json_get_string(d, ptr, s, n) == 0;
    return json_get_raw(d, ptr, s, n) == 0;
}

/* base + path with {name} replaced. Returns 0 or -EINVAL (a placeholder without a value). */
static int expand_path(const struct tool_def *t, json_doc *d, struct buf *url, char *err,
                       size_t errlen)
{
    buf_append_str(url, t->base_url);
    for (const char *p = t->path; *p;) {
        const char *open = strchr(p, '{');
        if (!open) {
            buf_append_str(url, p);
            break;
        }
        buf_append(url, p, (size_t)(open - p));
        const char *close = strchr(open, '}'); /* checked at load */
        char name[96];
        snprintf(name, sizeof(name), "%.*s", (int)(close - open - 1), open + 1);
        const char *v;
        size_t n;
        if (!arg_text(d, name, &v, &n) || !n) {
            snprintf(err, errlen, "%s: %s: missing (required)", t->name, name);
            return -EINVAL;
        }
        pct_encode(url, v, n);
        p = close + 1;
    }
    return 0;
}

static bool in_template(const struct tool_def *t, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = t->path; (p = strchr(p, '{')); p++)
        if (!strncmp(p + 1, name, n) && p[1 + n] == '}')
            return true;
    return false;
}

/* See tool.h. */
int tool_build_call(const struct tool_def *t, json_doc *d, struct buf *url, struct buf *body,
                    char *err, size_t errlen)
{
    size_t start = buf_size(url);
    if (expand_path(t, d, url, err, errlen)) {
        url->len = url->off + start;
        return -EINVAL;
    }
    if (t->method == TOOL_POST) {
        const char *raw;
        size_t n;
        if (body && json_get_raw(d, "", &raw, &n) == 0)
            buf_append(body, raw, n);
        return 0;
    }
    bool first = !strchr(t->path, '?');
    for (size_t i = 0; i < js_property_count(t->schema); i++) {
        const char *name = js_property_name(t->schema, i), *v;
        size_t n;
        if (in_template(t, name) || !arg_text(d, name, &v, &n))
            continue;
        buf_append(url, first ? "?" : "&", 1);
        pct_encode(url, name, strlen(name));
        buf_append(url, "=", 1);
        pct_encode(url, v, n);
        first = false;
    }
    return 0;
}

/* ---- shaping ---------------------------------------------------------------------------- */

#define TRUNC_MARK " [truncated]"

/* Text cut to cap bytes on a UTF-8 boundary, with a marker when cut (cap 0 = no cut). */
static void append_capped(struct buf *out, const char *s, size_t n, size_t cap)
{
    size_t mark = sizeof(TRUNC_MARK) - 1;
    if (!cap || n <= cap) {
        buf_append(out, s, n);
        return;
    }
    size_t keep = cap > mark ? cap - mark : 0;
    while (keep && ((unsigned char)s[keep] & 0xC0) == 0x80)
        keep--;
    buf_append(out, s, keep);
    buf_append(out, TRUNC_MARK, cap > mark ? mark : 0);
}

/* See tool.h. */
void tool_json_minify(struct buf *out, const char *s, size_t n)
{
    bool in_str = false;
    size_t run = 0; /* start of the pending run of bytes to copy */
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t') {
            buf_append(out, s + run, i - run);
            run = i + 1;
        }
    }
    if (n > run)
        buf_append(out, s + run, n - run);
}

/* "specs.battery_mah" under base as a JSON Pointer: base + "/specs/battery_mah". */
static void dotted_ptr(char *out, size_t cap, const char *base, const char *dotted)
{
    size_t o = (size_t)snprintf(out, cap, "%s/", base);
    for (const char *p = dotted; *p && o + 3 < cap; p++) {
        if (*p == '.') {
            out[o++] = '/';
        } else if (*p == '/' || *p == '~') {
            out[o++] = '~';
            out[o++] = *p == '/' ? '1' : '0';
        } else {
            out[o++] = *p;
        }
    }
    out[o < cap ? o : cap - 1] = 0;
}

/* The value at ptr, with only the kept fields when it is an object and fields are listed. The
 * kept fields are flat: "specs.battery_mah" becomes that key, which models read as well. */
static void shape_value(const struct tool_shaper *s, json_doc *d, const char *ptr, struct buf *out)
{
    const char *raw;
    size_t n;
    if (!s->n_keep || json_type_at(d, ptr) != JSON_OBJECT) {
        if (json_get_raw(d, ptr, &raw, &n) == 0)
            tool_json_minify(out, raw, n);
        return;
    }
    struct jsonw w;
    jw_init(&w, out);
    jw_obj_begin(&w);
    for (size_t i = 0; i < s->n_keep; i++) {
        char p[512];
        dotted_ptr(p, sizeof(p), ptr, s->keep[i]);
        if (json_get_raw(d, p, &raw, &n) != 0)
            continue; /* a field this item lacks */
        jw_key(&w, s->keep[i]);
        struct buf v = {0};
        tool_json_minify(&v, raw, n);
        jw_raw(&w, buf_begin(&v), buf_size(&v));
        buf_free(&v);
    }
    jw_obj_end(&w);
}

/* An array: its first top_k elements, shaped, as many whole ones as fit in max_bytes. */
static void shape_array(const struct tool_shaper *s, json_doc *d, const char *ptr, struct buf *out)
{
    size_t count = 0, start = buf_size(out);
    json_count(d, ptr, &count);
    if (s->top_k && count > s->top_k)
        count = s->top_k;
    buf_append(out, "[", 1);
    for (size_t i = 0; i < count; i++) {
        char p[512];
        struct buf item = {0};
        snprintf(p, sizeof(p), "%s/%zu", ptr, i);
        shape_value(s, d, p, &item);
        size_t used = buf_size(out) - start;
        /* the first element goes in whatever its size (tool_shape cuts it as text) */
        bool fits = !i || !s->max_bytes || used + 1 + buf_size(&item) + 1 <= s->max_bytes;
        if (fits) {
            if (i)
                buf_append(out, ",", 1);
            buf_append(out, buf_begin(&item), buf_size(&item));
        }
        buf_free(&item);
        if (!fits)
            break;
    }
    buf_append(out, "]", 1);
}

/* See tool.h. */
int tool_shape(const struct tool_def *t, json_doc *d, const char *raw, size_t len, struct buf *out)
{
    const struct tool_shaper *s = &t->shape;
    if (json_doc_load(d, raw, len) != 0) {
        append_capped(out, raw, len, s->max_bytes);
        return 0;
    }
    const char *items = s->items && *s->items ? s->items : "";
    struct buf shaped = {0};
    if (json_type_at(d, items) == JSON_ARRAY)
        shape_array(s, d, items, &shaped);
    else
        shape_value(s, d, "", &shaped); /* no array where expected: the body as an object */
    /* one object larger than the cap is cut as text: the model still gets its beginning */
    append_capped(out, buf_begin(&shaped), buf_size(&shaped), s->max_bytes);
    buf_free(&shaped);
    return 0;
}
