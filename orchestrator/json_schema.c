/* json_schema.c - compile a JSON Schema subset into a tree and check values against it.
 *
 * The compiled tree owns copies of everything it needs (names, enum values, regexes), so the
 * document it came from can be reloaded. Values are walked by JSON Pointer through json.h:
 * each lookup starts again from the root, which is quadratic in the document's size, but tool
 * arguments are a few hundred bytes and the model writes them once per call. */
#include "orchestrator/json_schema.h"
#include "base/buf.h"
#include "base/mem.h"

#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum {
    T_OBJECT = 1,
    T_STRING = 2,
    T_INTEGER = 4,
    T_NUMBER = 8,
    T_BOOLEAN = 16,
    T_ARRAY = 32,
    T_NULL = 64,
};

static const struct {
    const char *name;
    const char *article; /* "an object": for messages */
    unsigned bit;
} type_names[] = {
    {"object", "an object", T_OBJECT},
    {"string", "a string", T_STRING},
    {"integer", "an integer", T_INTEGER},
    {"number", "a number", T_NUMBER},
    {"boolean", "a boolean", T_BOOLEAN},
    {"array", "an array", T_ARRAY},
    {"null", "null", T_NULL},
};
#define N_TYPES (sizeof(type_names) / sizeof(type_names[0]))

struct js_enum {
    enum json_type type;
    char *str;
    size_t len;
    double num;
    bool b;
};

struct js_prop {
    char *name;
    struct js_schema *schema;
};

struct js_schema {
    unsigned types; /* T_* bits; 0 = any type */
    struct js_prop *props;
    size_t n_props;
    char **required;
    size_t n_required;
    bool no_additional;
    struct js_schema *items;
    int64_t min_items, max_items, min_len, max_len; /* -1 = no bound */
    bool has_min, has_max, has_xmin, has_xmax;
    double min, max, xmin, xmax;
    struct js_enum *enums;
    size_t n_enums;
    char *pattern; /* as written, for messages */
    regex_t re;
    bool has_re;
};

/* ---- shared helpers ---------------------------------------------------------------------- */

/* base + "/" + key with RFC 6901 escapes into out[cap]; -ENAMETOOLONG if it does not fit. */
static int ptr_join(char *out, size_t cap, const char *base, const char *key, size_t klen)
{
    size_t o = strlen(base);
    if (o + 1 >= cap)
        return -ENAMETOOLONG;
    if (out != base)
        memcpy(out, base, o);
    out[o++] = '/';
    for (size_t i = 0; i < klen; i++) {
        const char *esc = key[i] == '~' ? "~0" : key[i] == '/' ? "~1" : NULL;
        size_t n = esc ? 2 : 1;
        if (o + n >= cap)
            return -ENAMETOOLONG;
        if (esc)
            memcpy(out + o, esc, 2);
        else
            out[o] = key[i];
        o += n;
    }
    out[o] = 0;
    return 0;
}

static void set_err(char *err, size_t errlen, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_err(char *err, size_t errlen, const char *where, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(err, errlen, "%s: ", where && *where ? where : "arguments");
    if (n < 0 || (size_t)n >= errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* ---- compiling --------------------------------------------------------------------------- */

struct cctx {
    json_doc *d;
    char *err;
    size_t errlen;
};

static struct js_schema *compile_node(struct cctx *c, const char *ptr, const char *where);

/* where + "." + name into out (the place of a keyword, for messages). */
static void where_join(char *out, size_t cap, const char *where, const char *name)
{
    int n = snprintf(out, cap, "%s%s%s", where, *where ? "." : "", name);
    if (n < 0)
        out[0] = 0; /* a cut name in a message is still a message */
}

/* base + "/" + index; the result is used so that a cut (impossible: pointers are short) is not
 * silently ignored by the compiler's truncation check. */
static void ptr_index(char *out, size_t cap, const char *base, size_t i)
{
    int n = snprintf(out, cap, "%s/%zu", base, i);
    if (n < 0 || (size_t)n >= cap)
        out[0] = 0; /* "" is the root: a type error follows, never a wrong member */
}

static int type_bit(const char *s, size_t n, unsigned *bit)
{
    for (size_t i = 0; i < N_TYPES; i++)
        if (strlen(type_names[i].name) == n && !memcmp(type_names[i].name, s, n)) {
            *bit = type_names[i].bit;
            return 0;
        }
    return -EINVAL;
}

static int kw_type(struct cctx *c, struct js_schema *s, const char *ptr, const char *where)
{
    const char *str;
    size_t n, count = 1;
    char p[512];
    bool array = json_type_at(c->d, ptr) == JSON_ARRAY;
    if (array && (json_count(c->d, ptr, &count) != 0 || !count))
        goto bad;
    for (size_t i = 0; i < count; i++) {
        unsigned bit;
        ptr_index(p, sizeof(p), ptr, i);
        if (json_get_string(c->d, array ? p : ptr, &str, &n) != 0 || type_bit(str, n, &bit))
            goto bad;
        s->types |= bit;
    }
    return 0;
bad:
    set_err(c->err, c->errlen, where,
            "expected a type name (object, string, integer, number, boolean, array, null) or "
            "a non-empty array of them");
    return -EINVAL;
}

static int kw_properties(struct cctx *c, struct js_schema *s, const char *ptr, const char *where)
{
    size_t count;
    if (json_type_at(c->d, ptr) != JSON_OBJECT || json_count(c->d, ptr, &count) != 0) {
        set_err(c->err, c->errlen, where, "expected an object of schemas");
        return -EINVAL;
    }
    s->props = xcalloc(count ? count : 1, sizeof(*s->props));
    for (size_t i = 0; i < count; i++) {
        const char *key;
        size_t klen;
        char p[512], w[256];
        json_key_at(c->d, ptr, i, &key, &klen);
        if (ptr_join(p, sizeof(p), ptr, key, klen)) {
            set_err(c->err, c->errlen, where, "nested too deeply");
            return -EINVAL;
        }
        char *name = xstrndup(key, klen);
        s->props[s->n_props].name = name;
        where_join(w, sizeof(w), where, name);
        s->props[s->n_props].schema = compile_node(c, p, w);
        if (!s->props[s->n_props++].schema)
            return -EINVAL;
    }
    return 0;
}

static int kw_required(struct cctx *c, struct js_schema *s, const char *ptr, const char *where)
{
    size_t count;
    if (json_type_at(c->d, ptr) != JSON_ARRAY || json_count(c->d, ptr, &count) != 0)
        goto bad;
    s->required = xcalloc(count ? count : 1, sizeof(char *));
    for (size_t i = 0; i < count; i++) {
        const char *str;
        size_t n;
        char p[512];
        ptr_index(p, sizeof(p), ptr, i);
        if (json_get_string(c->d, p, &str, &n) != 0)
            goto bad;
        s->required[s->n_required++] = xstrndup(str, n);
    }
    return 0;
bad:
    set_err(c->err, c->errlen, where, "expected an array of property names");
    return -EINVAL;
}

static int kw_enum(struct cctx *c, struct js_schema *s, const char *ptr, const char *where)
{
    size_t count;
    if (json_type_at(c->d, ptr) != JSON_ARRAY || json_count(c->d, ptr, &count) != 0 || !count)
        goto bad;
    s->enums = xcalloc(count, sizeof(*s->enums));
    for (size_t i = 0; i < count; i++) {
        struct js_enum *e = &s->enums[s->n_enums];
        const char *str;
        char p[512];
        ptr_index(p, sizeof(p), ptr, i);
        e->type = json_type_at(c->d, p);
        if (e->type == JSON_STRING && json_get_string(c->d, p, &str, &e->len) == 0)
            e->str = xstrndup(str, e->len);
        else if (e->type == JSON_NUMBER)
            json_get_double(c->d, p, &e->num);
        else if (e->type == JSON_BOOL)
            json_get_bool(c->d, p, &e->b);
        else if (e->type != JSON_NULL)
            goto bad;
        s->n_enums++;
    }
    return 0;
bad:
    set_err(c->err, c->errlen, where,
            "expected a non-empty array of strings, numbers, booleans or null");
    return -EINVAL;
}

static int kw_number(struct cctx *c, const char *ptr, const char *where, bool *has, double *v)
{
    if (json_type_at(c->d, ptr) != JSON_NUMBER || json_get_double(c->d, ptr, v) != 0) {
        set_err(c->err, c->errlen, where, "expected a number");
        return -EINVAL;
    }
    *has = true;
    return 0;
}

static int kw_count(struct cctx *c, const char *ptr, const char *where, int64_t *v)
{
    if (json_get_int(c->d, ptr, v) != 0 || *v < 0) {
        set_err(c->err, c->errlen, where, "expected a non-negative integer");
        return -EINVAL;
    }
    return 0;
}

/* An ECMA-262 pattern in POSIX ERE: the class escapes \d \w \s (and their negations) are
 * spelled out; inside brackets other escapes become the plain character. */
static void pattern_to_ere(const char *p, struct buf *out);

static int kw_pattern(struct cctx *c, struct js_schema *s, const char *ptr, const char *where)
{
    const char *str;
    size_t n;
    if (json_get_string(c->d, ptr, &str, &n) != 0 || memchr(str, 0, n)) {
        set_err(c->err, c->errlen, where, "expected a string");
        return -EINVAL;
    }
    s->pattern = xstrndup(str, n);
    struct buf ere = {0};
    pattern_to_ere(s->pattern, &ere);
    buf_append(&ere, "", 1);
    int rc = regcomp(&s->re, buf_begin(&ere), REG_EXTENDED | REG_NOSUB);
    buf_free(&ere);
    if (rc != 0) {
        set_err(c->err, c->errlen, where, "unsupported regular expression '%s'", s->pattern);
        return -EINVAL;
    }
    s->has_re = true;
    return 0;
}

static bool is_annotation(const char *k)
{
    static const char *const names[] = {"description", "title",  "default",
                                        "examples",    "format", "$comment"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(k, names[i]))
            return true;
    return false;
}

/* One keyword of the schema at ptr: k is its (NUL-terminated) name, p its value's pointer. */
static int keyword(struct cctx *c, struct js_schema *s, const char *k, const char *p, const char *w)
{
    bool b;
    if (!strcmp(k, "type"))
        return kw_type(c, s, p, w);
    if (!strcmp(k, "properties"))
        return kw_properties(c, s, p, w);
    if (!strcmp(k, "required"))
        return kw_required(c, s, p, w);
    if (!strcmp(k, "enum"))
        return kw_enum(c, s, p, w);
    if (!strcmp(k, "pattern"))
        return kw_pattern(c, s, p, w);
    if (!strcmp(k, "minimum"))
        return kw_number(c, p, w, &s->has_min, &s->min);
    if (!strcmp(k, "maximum"))
        return kw_number(c, p, w, &s->has_max, &s->max);
    if (!strcmp(k, "exclusiveMinimum"))
        return kw_number(c, p, w, &s->has_xmin, &s->xmin);
    if (!strcmp(k, "exclusiveMaximum"))
        return kw_number(c, p, w, &s->has_xmax, &s->xmax);
    if (!strcmp(k, "minLength"))
        return kw_count(c, p, w, &s->min_len);
    if (!strcmp(k, "maxLength"))
        return kw_count(c, p, w, &s->max_len);
    if (!strcmp(k, "minItems"))
        return kw_count(c, p, w, &s->min_items);
    if (!strcmp(k, "maxItems"))
        return kw_count(c, p, w, &s->max_items);
    if (!strcmp(k, "items"))
        return (s->items = compile_node(c, p, w)) ? 0 : -EINVAL;
    if (!strcmp(k, "additionalProperties")) {
        if (json_get_bool(c->d, p, &b) != 0) {
            set_err(c->err, c->errlen, w, "only true or false is supported");
            return -EINVAL;
        }
        s->no_additional = !b;
        return 0;
    }
    if (is_annotation(k))
        return 0;
    set_err(c->err, c->errlen, w, "unsupported keyword");
    return -EINVAL;
}

/* Every required name must be a declared property when properties are declared: a typo there
 * would otherwise make every call fail. */
static int check_required(struct cctx *c, const struct js_schema *s, const char *where)
{
    for (size_t i = 0; s->props && i < s->n_required; i++)
        if (!js_has_property(s, s->required[i])) {
            char w[256];
            where_join(w, sizeof(w), where, "required");
            set_err(c->err, c->errlen, w, "'%s' is not in properties", s->required[i]);
            return -EINVAL;
        }
    return 0;
}

static struct js_schema *compile_node(struct cctx *c, const char *ptr, const char *where)
{
    size_t count;
    if (json_type_at(c->d, ptr) != JSON_OBJECT || json_count(c->d, ptr, &count) != 0) {
        set_err(c->err, c->errlen, where, "expected a schema object");
        return NULL;
    }
    struct js_schema *s = xcalloc(1, sizeof(*s));
    s->min_items = s->max_items = s->min_len = s->max_len = -1;
    for (size_t i = 0; i < count; i++) {
        const char *key;
        size_t klen;
        char p[512], w[256], k[64];
        json_key_at(c->d, ptr, i, &key, &klen);
        snprintf(k, sizeof(k), "%.*s", (int)klen, key);
        where_join(w, sizeof(w), where, k);
        if (klen >= sizeof(k) || ptr_join(p, sizeof(p), ptr, key, klen)) {
            set_err(c->err, c->errlen, w, "unsupported keyword");
            goto out_free;
        }
        if (keyword(c, s, k, p, w))
            goto out_free;
    }
    if (check_required(c, s, where))
        goto out_free;
    return s;
out_free:
    js_free(s);
    return NULL;
}

/* See json_schema.h. */
struct js_schema *js_compile(json_doc *d, const char *ptr, char *err, size_t errlen)
{
    struct cctx c = {d, err, errlen};
    if (errlen)
        err[0] = 0;
    return compile_node(&c, ptr ? ptr : "", "");
}

/* Free s and everything it owns. NULL is a no-op. */
void js_free(struct js_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_props; i++) {
        xfree(s->props[i].name);
        js_free(s->props[i].schema);
    }
    xfree(s->props);
    for (size_t i = 0; i < s->n_required; i++)
        xfree(s->required[i]);
    xfree(s->required);
    for (size_t i = 0; i < s->n_enums; i++)
        xfree(s->enums[i].str);
    xfree(s->enums);
    js_free(s->items);
    if (s->has_re)
        regfree(&s->re);
    xfree(s->pattern);
    xfree(s);
}

bool js_is_object(const struct js_schema *s)
{
    return s && s->types == T_OBJECT;
}

bool js_has_property(const struct js_schema *s, const char *name)
{
    for (size_t i = 0; s && i < s->n_props; i++)
        if (!strcmp(s->props[i].name, name))
            return true;
    return false;
}

bool js_is_required(const struct js_schema *s, const char *name)
{
    for (size_t i = 0; s && i < s->n_required; i++)
        if (!strcmp(s->required[i], name))
            return true;
    return false;
}

size_t js_property_count(const struct js_schema *s)
{
    return s ? s->n_props : 0;
}

const char *js_property_name(const struct js_schema *s, size_t i)
{
    return s && i < s->n_props ? s->props[i].name : NULL;
}

/* ---- patterns ---------------------------------------------------------------------------- */

static const char *class_body(char e)
{
    switch (e) {
    case 'd':
    case 'D':
        return "0-9";
    case 'w':
    case 'W':
        return "A-Za-z0-9_";
    case 's':
    case 'S':
        return "[:space:]";
    default:
        return NULL;
    }
}

static void pattern_to_ere(const char *p, struct buf *out)
{
    bool in_bracket = false;
    for (; *p; p++) {
        if (*p == '\\' && p[1]) {
            const char *body = class_body(p[1]);
            bool negated = p[1] >= 'A' && p[1] <= 'Z';
            p++;
            if (body && in_bracket)
                buf_append_str(out, body);
            else if (body)
                buf_printf(out, "[%s%s]", negated ? "^" : "", body);
            else if (in_bracket)
                buf_append(out, p, 1); /* POSIX brackets have no escapes */
            else
                buf_printf(out, "\\%c", *p);
            continue;
        }
        if (*p == '[' && !in_bracket) {
            in_bracket = true;
            buf_append(out, p, 1);
            if (p[1] == '^')
                buf_append(out, ++p, 1);
            if (p[1] == ']') /* a leading ']' is a member */
                buf_append(out, ++p, 1);
            continue;
        }
        if (*p == ']' && in_bracket)
            in_bracket = false;
        buf_append(out, p, 1);
    }
}

/* ---- validating -------------------------------------------------------------------------- */

struct vctx {
    json_doc *d;
    char *err;
    size_t errlen;
    char ptr[1024]; /* JSON Pointer of the value being checked */
    char path[512]; /* its human name: "filters.brand", "ids[2]" */
};

/* The T_* bits a value satisfies: an integral number is both integer and number. */
static unsigned value_bits(struct vctx *v, enum json_type t)
{
    int64_t i;
    double d;
    switch (t) {
    case JSON_OBJECT:
        return T_OBJECT;
    case JSON_STRING:
        return T_STRING;
    case JSON_NUMBER:
        /* JSON Schema: 7.0 is an integer too */
        if (json_get_int(v->d, v->ptr, &i) == 0 ||
            (json_get_double(v->d, v->ptr, &d) == 0 && d > -9.2e18 && d < 9.2e18 &&
             d == (double)(int64_t)d))
            return T_INTEGER | T_NUMBER;
        return T_NUMBER;
    case JSON_BOOL:
        return T_BOOLEAN;
    case JSON_ARRAY:
        return T_ARRAY;
    case JSON_NULL:
        return T_NULL;
    default:
        return 0;
    }
}

static const char *article_of(unsigned bits)
{
    for (size_t i = 0; i < N_TYPES; i++)
        if (bits & type_names[i].bit)
            return type_names[i].article;
    return "nothing";
}

static int fail_type(struct vctx *v, unsigned want, unsigned got)
{
    struct buf b = {0};
    bool first = true;
    for (size_t i = 0; i < N_TYPES; i++) {
        /* "integer or number" says no more than "number" */
        if (!(want & type_names[i].bit) || (type_names[i].bit == T_INTEGER && (want & T_NUMBER)))
            continue;
        buf_printf(&b, "%s%s", first ? "" : " or ", type_names[i].article);
        first = false;
    }
    buf_append(&b, "", 1);
    set_err(v->err, v->errlen, v->path, "expected %s, got %s", buf_begin(&b),
            article_of(got & T_INTEGER ? T_INTEGER : got));
    buf_free(&b);
    return -EINVAL;
}

static bool enum_match(const struct js_enum *e, struct vctx *v, enum json_type t)
{
    const char *s;
    size_t n;
    double d;
    bool b;
    if (e->type != t)
        return false;
    switch (t) {
    case JSON_STRING:
        return json_get_string(v->d, v->ptr, &s, &n) == 0 && n == e->len && !memcmp(s, e->str, n);
    case JSON_NUMBER:
        return json_get_double(v->d, v->ptr, &d) == 0 && d == e->num;
    case JSON_BOOL:
        return json_get_bool(v->d, v->ptr, &b) == 0 && b == e->b;
    default:
        return true; /* null */
    }
}

static int check_enum(const struct js_schema *s, struct vctx *v, enum json_type t)
{
    for (size_t i = 0; i < s->n_enums; i++)
        if (enum_match(&s->enums[i], v, t))
            return 0;
    struct buf b = {0};
    for (size_t i = 0; i < s->n_enums && buf_size(&b) < 200; i++) {
        const struct js_enum *e = &s->enums[i];
        buf_append_str(&b, i ? ", " : "");
        if (e->type == JSON_STRING)
            buf_printf(&b, "\"%s\"", e->str);
        else if (e->type == JSON_NUMBER)
            buf_printf(&b, "%g", e->num);
        else
            buf_append_str(&b, e->type == JSON_BOOL ? (e->b ? "true" : "false") : "null");
    }
    buf_append(&b, "", 1);
    set_err(v->err, v->errlen, v->path, "expected one of %s", buf_begin(&b));
    buf_free(&b);
    return -EINVAL;
}

static int check_string(const struct js_schema *s, struct vctx *v)
{
    const char *str;
    size_t n, cps = 0;
    json_get_string(v->d, v->ptr, &str, &n);
    for (size_t i = 0; i < n; i++)
        cps += ((unsigned char)str[i] & 0xC0) != 0x80; /* code points, not bytes */
    if (s->min_len >= 0 && cps < (size_t)s->min_len) {
        set_err(v->err, v->errlen, v->path, "expected at least %lld characters, got %zu",
                (long long)s->min_len, cps);
        return -EINVAL;
    }
    if (s->max_len >= 0 && cps > (size_t)s->max_len) {
        set_err(v->err, v->errlen, v->path, "expected at most %lld characters, got %zu",
                (long long)s->max_len, cps);
        return -EINVAL;
    }
    /* a NUL inside the string would end regexec's view early: refuse it outright */
    if (s->has_re && (memchr(str, 0, n) || regexec(&s->re, str, 0, NULL, 0) != 0)) {
        set_err(v->err, v->errlen, v->path, "expected a string matching %s", s->pattern);
        return -EINVAL;
    }
    return 0;
}

static int check_number(const struct js_schema *s, struct vctx *v)
{
    double d = 0;
    json_get_double(v->d, v->ptr, &d);
    const char *bad = s->has_min && d < s->min      ? ">="
                      : s->has_max && d > s->max    ? "<="
                      : s->has_xmin && d <= s->xmin ? ">"
                      : s->has_xmax && d >= s->xmax ? "<"
                                                    : NULL;
    if (!bad)
        return 0;
    double bound = !strcmp(bad, ">=")   ? s->min
                   : !strcmp(bad, "<=") ? s->max
                   : !strcmp(bad, ">")  ? s->xmin
                                        : s->xmax;
    set_err(v->err, v->errlen, v->path, "expected a value %s %g, got %g", bad, bound, d);
    return -EINVAL;
}

static int check_value(const struct js_schema *s, struct vctx *v);

/* Descend into a member or element: extend ptr and path, check, then restore both. */
static int check_child(const struct js_schema *s, struct vctx *v, const char *key, size_t klen,
                       size_t index, bool is_index)
{
    size_t plen = strlen(v->ptr), hlen = strlen(v->path);
    char seg[32];
    int rc;
    if (is_index) {
        int n = snprintf(seg, sizeof(seg), "%zu", index);
        rc = ptr_join(v->ptr, sizeof(v->ptr), v->ptr, seg, (size_t)n);
        snprintf(v->path + hlen, sizeof(v->path) - hlen, "[%zu]", index);
    } else {
        rc = ptr_join(v->ptr, sizeof(v->ptr), v->ptr, key, klen);
        snprintf(v->path + hlen, sizeof(v->path) - hlen, "%s%.*s", hlen ? "." : "", (int)klen, key);
    }
    if (rc)
        set_err(v->err, v->errlen, v->path, "nested too deeply");
    else
        rc = s ? check_value(s, v) : 0;
    v->ptr[plen] = 0;
    v->path[hlen] = 0;
    return rc;
}

static const struct js_schema *prop_schema(const struct js_schema *s, const char *k, size_t n)
{
    for (size_t i = 0; i < s->n_props; i++)
        if (strlen(s->props[i].name) == n && !memcmp(s->props[i].name, k, n))
            return s->props[i].schema;
    return NULL;
}

static int check_object(const struct js_schema *s, struct vctx *v)
{
    size_t count = 0, hlen = strlen(v->path);
    char p[1024];
    for (size_t i = 0; i < s->n_required; i++) {
        const char *k = s->required[i];
        if (ptr_join(p, sizeof(p), v->ptr, k, strlen(k)) == 0 &&
            json_type_at(v->d, p) == JSON_MISSING) {
            snprintf(v->path + hlen, sizeof(v->path) - hlen, "%s%s", hlen ? "." : "", k);
            set_err(v->err, v->errlen, v->path, "missing (required)");
            v->path[hlen] = 0;
            return -EINVAL;
        }
    }
    json_count(v->d, v->ptr, &count);
    for (size_t i = 0; i < count; i++) {
        const char *key;
        size_t klen;
        json_key_at(v->d, v->ptr, i, &key, &klen);
        char *k = xstrndup(key, klen); /* the path outlives later lookups */
        const struct js_schema *ps = prop_schema(s, k, klen);
        int rc = 0;
        if (!ps && s->no_additional) {
            snprintf(v->path + hlen, sizeof(v->path) - hlen, "%s%s", hlen ? "." : "", k);
            set_err(v->err, v->errlen, v->path, "unknown argument");
            v->path[hlen] = 0;
            rc = -EINVAL;
        } else {
            rc = check_child(ps, v, k, klen, 0, false);
        }
        xfree(k);
        if (rc)
            return rc;
    }
    return 0;
}

static int check_array(const struct js_schema *s, struct vctx *v)
{
    size_t count = 0;
    json_count(v->d, v->ptr, &count);
    if (s->min_items >= 0 && count < (size_t)s->min_items) {
        set_err(v->err, v->errlen, v->path, "expected at least %lld items, got %zu",
                (long long)s->min_items, count);
        return -EINVAL;
    }
    if (s->max_items >= 0 && count > (size_t)s->max_items) {
        set_err(v->err, v->errlen, v->path, "expected at most %lld items, got %zu",
                (long long)s->max_items, count);
        return -EINVAL;
    }
    for (size_t i = 0; s->items && i < count; i++) {
        int rc = check_child(s->items, v, NULL, 0, i, true);
        if (rc)
            return rc;
    }
    return 0;
}

static int check_value(const struct js_schema *s, struct vctx *v)
{
    enum json_type t = json_type_at(v->d, v->ptr);
    unsigned bits = value_bits(v, t);
    if (s->types && !(bits & s->types))
        return fail_type(v, s->types, bits);
    if (s->n_enums && check_enum(s, v, t))
        return -EINVAL;
    switch (t) {
    case JSON_STRING:
        return check_string(s, v);
    case JSON_NUMBER:
        return check_number(s, v);
    case JSON_OBJECT:
        return check_object(s, v);
    case JSON_ARRAY:
        return check_array(s, v);
    default:
        return 0;
    }
}

/* See json_schema.h. */
int js_validate(const struct js_schema *s, json_doc *d, const char *ptr, char *err, size_t errlen)
{
    struct vctx v = {.d = d, .err = err, .errlen = errlen};
    if (errlen)
        err[0] = 0;
    if (!ptr)
        ptr = "";
    if (strlen(ptr) >= sizeof(v.ptr))
        return -EINVAL;
    strcpy(v.ptr, ptr);
    return check_value(s, &v);
}
