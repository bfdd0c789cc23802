/* json_shim.cpp - the C API of stream/json.h over simdjson On-Demand.
 *
 * On-Demand is lazy: iterate() only runs stage 1 (structural indexing and UTF-8 validation), so
 * json_doc_load walks every value once to make "loaded" mean "valid". Lookups then rewind the
 * document and walk from the root along the JSON Pointer. A rewind resets simdjson's string
 * buffer, so every string handed to C is copied into a per-document arena first (see
 * docs/json.md). Only the error-code API is used: nothing here throws. */
#include "stream/json.h"

#include <errno.h>
#include <string.h>

#include <algorithm>
#include <new>
#include <string_view>

#include <simdjson.h>

extern "C" {
#include "base/mem.h"
}

namespace od = simdjson::ondemand;

static_assert(JSON_PADDING >= simdjson::SIMDJSON_PADDING,
              "JSON_PADDING must cover simdjson's padding");

constexpr int JSON_MAX_DEPTH = 64;             /* nested arrays/objects json_doc_load accepts */
constexpr size_t JSON_MAX_SIZE = 4 << 20;      /* bytes */
constexpr size_t ARENA_MIN_CHUNK = 1024;       /* first arena chunk */
constexpr size_t ARENA_KEEP_MAX = 1024 * 1024; /* a bigger arena is not kept across loads */

/* Arena chunk header; the bytes follow it. Chunks never move, so returned strings stay put. */
struct arena_chunk {
    struct arena_chunk *prev;
    size_t cap;
    size_t used;
};

/* A member key seen by the validation walk (json_doc_load_unique), in simdjson's string buffer,
 * which stays put for the whole pass. */
struct key_seen {
    uint64_t hash;
    const char *p;
    size_t n;
};

/* What the validation walk carries: the keys of the objects being walked, innermost last. */
struct walk_ctx {
    bool unique;    /* refuse duplicate keys */
    key_seen *keys; /* the doc's reused stack (grown with xrealloc) */
    size_t nkeys, cap;
};

struct json_doc {
    od::parser parser{JSON_MAX_SIZE};
    od::document doc;
    bool loaded = false;          /* doc holds a validated document */
    char *pad = nullptr;          /* padded copy made by json_doc_load */
    size_t pad_cap = 0;           /* bytes allocated at pad */
    arena_chunk *arena = nullptr; /* newest chunk first */
    key_seen *keys = nullptr;     /* walk_ctx.keys, kept across loads */
    size_t keys_cap = 0;
};

/* ---- arena ------------------------------------------------------------------------------- */

static char *chunk_data(arena_chunk *c)
{
    return reinterpret_cast<char *>(c + 1);
}

static arena_chunk *chunk_new(size_t cap, arena_chunk *prev)
{
    arena_chunk *c = static_cast<arena_chunk *>(xmalloc(sizeof(arena_chunk) + cap));
    c->prev = prev;
    c->cap = cap;
    c->used = 0;
    return c;
}

static void arena_free(json_doc *d)
{
    arena_chunk *c = d->arena;
    while (c) {
        arena_chunk *prev = c->prev;
        xfree(c);
        c = prev;
    }
    d->arena = nullptr;
}

/* Forget every string. Several chunks are merged into one of their total size, so a document
 * shape that is seen again needs no allocation; an arena grown past ARENA_KEEP_MAX is dropped. */
static void arena_reset(json_doc *d)
{
    arena_chunk *c = d->arena;
    if (!c)
        return;
    if (!c->prev && c->cap <= ARENA_KEEP_MAX) {
        c->used = 0;
        return;
    }
    size_t total = 0;
    for (; c; c = c->prev)
        total += c->cap;
    arena_free(d);
    if (total <= ARENA_KEEP_MAX)
        d->arena = chunk_new(total, nullptr);
}

/* Copy s[0..n) into the arena with a NUL after it. */
static const char *arena_copy(json_doc *d, std::string_view s)
{
    size_t need = s.size() + 1;
    arena_chunk *c = d->arena;
    if (!c || c->cap - c->used < need) {
        size_t cap = c ? c->cap * 2 : ARENA_MIN_CHUNK;
        if (cap < need)
            cap = need;
        c = d->arena = chunk_new(cap, c);
    }
    char *p = chunk_data(c) + c->used;
    memcpy(p, s.data(), s.size());
    p[s.size()] = '\0';
    c->used += need;
    return p;
}

/* ---- validation -------------------------------------------------------------------------- */

static int walk_value(od::value v, int depth, walk_ctx *w);

static int walk_array(od::array a, int depth, walk_ctx *w)
{
    for (auto r : a) {
        od::value v;
        if (std::move(r).get(v))
            return -EINVAL;
        int rc = walk_value(v, depth, w);
        if (rc)
            return rc;
    }
    return 0;
}

static void key_push(walk_ctx *w, std::string_view key)
{
    if (w->nkeys == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->keys = static_cast<key_seen *>(xrealloc(w->keys, w->cap * sizeof(*w->keys)));
    }
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (unsigned char c : key)
        h = (h ^ c) * 1099511628211ull;
    w->keys[w->nkeys++] = key_seen{h, key.data(), key.size()};
}

static bool key_same(const key_seen &a, const key_seen &b)
{
    return a.hash == b.hash && a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

/* Two equal keys among k[0..n): a few are compared pairwise, more are sorted by hash first
 * (O(n log n): a message of 64 KiB can hold some ten thousand members). */
static bool keys_duplicate(key_seen *k, size_t n)
{
    if (n <= 8) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (key_same(k[i], k[j]))
                    return true;
        return false;
    }
    std::sort(k, k + n, [](const key_seen &a, const key_seen &b) {
        if (a.hash != b.hash)
            return a.hash < b.hash;
        if (a.n != b.n)
            return a.n < b.n;
        return memcmp(a.p, b.p, a.n) < 0;
    });
    for (size_t i = 1; i < n; i++)
        if (key_same(k[i], k[i - 1]))
            return true;
    return false;
}

/* Nested objects push their keys after this one's and pop them before returning, so this
 * object's keys are w->keys[base..nkeys) at its end. */
static int walk_object(od::object o, int depth, walk_ctx *w)
{
    size_t base = w->nkeys;
    for (auto r : o) {
        od::field f;
        std::string_view key;
        if (std::move(r).get(f) || f.unescaped_key().get(key))
            return -EINVAL;
        if (w->unique)
            key_push(w, key);
        int rc = walk_value(f.value(), depth, w);
        if (rc)
            return rc;
    }
    bool dup = w->unique && keys_duplicate(w->keys + base, w->nkeys - base);
    w->nkeys = base;
    return dup ? -EEXIST : 0;
}

/* Check one scalar: parse it the way the getters will, so a value that loads can be read.
 * Works on a value or on a document whose root is a scalar. */
template <class T> static int check_scalar(T &v, od::json_type t)
{
    std::string_view s;
    double x;
    bool b;
    switch (t) {
    case od::json_type::string:
        return v.get_string().get(s) ? -EINVAL : 0;
    case od::json_type::number:
        /* get_double, not get_number: integers beyond 64 bits are valid JSON and read as
         * doubles; numbers beyond the double range (1e400) are refused. */
        return v.get_double().get(x) ? -EINVAL : 0;
    case od::json_type::boolean:
        return v.get_bool().get(b) ? -EINVAL : 0;
    case od::json_type::null:
        return v.is_null().get(b) || !b ? -EINVAL : 0;
    default:
        return -EINVAL;
    }
}

static int walk_value(od::value v, int depth, walk_ctx *w)
{
    od::json_type t;
    if (v.type().get(t))
        return -EINVAL;
    if (t == od::json_type::array || t == od::json_type::object) {
        if (depth >= JSON_MAX_DEPTH)
            return -E2BIG;
        if (t == od::json_type::array) {
            od::array a;
            return v.get_array().get(a) ? -EINVAL : walk_array(a, depth + 1, w);
        }
        od::object o;
        return v.get_object().get(o) ? -EINVAL : walk_object(o, depth + 1, w);
    }
    return check_scalar(v, t);
}

static int walk_document(od::document &doc, walk_ctx *w)
{
    od::json_type t;
    int rc;
    if (doc.type().get(t))
        return -EINVAL;
    if (t == od::json_type::array) {
        od::array a;
        rc = doc.get_array().get(a) ? -EINVAL : walk_array(a, 1, w);
    } else if (t == od::json_type::object) {
        od::object o;
        rc = doc.get_object().get(o) ? -EINVAL : walk_object(o, 1, w);
    } else {
        rc = check_scalar(doc, t);
    }
    if (rc)
        return rc;
    /* 3.0.1 has no document::at_end(); current_location() says OUT_OF_BOUNDS exactly when the
     * iterator is alive and past the last token, so anything else is trailing content. */
    const char *loc;
    return doc.current_location().get(loc) == simdjson::OUT_OF_BOUNDS ? 0 : -EINVAL;
}

/* ---- pointer resolution ------------------------------------------------------------------ */

/* RFC 6901 syntax: "" or a sequence of "/token", where '~' is followed by '0' or '1'. */
static bool pointer_valid(const char *p)
{
    if (*p && *p != '/')
        return false;
    for (; *p; p++)
        if (*p == '~' && p[1] != '0' && p[1] != '1')
            return false;
    return true;
}

/* Compare an unescaped key with an escaped pointer token (syntax already checked). */
static bool token_equals(std::string_view key, const char *tok, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = tok[i];
        if (c == '~')
            c = tok[++i] == '0' ? '~' : '/';
        if (k == key.size() || key[k++] != c)
            return false;
    }
    return k == key.size();
}

/* Array index per RFC 6901: "0" or digits without a leading zero; no overflow, no "-". */
static bool token_index(const char *tok, size_t n, size_t *idx)
{
    if (n == 0 || (n > 1 && tok[0] == '0'))
        return false;
    size_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (tok[i] < '0' || tok[i] > '9')
            return false;
        size_t dig = size_t(tok[i] - '0');
        if (v > (SIZE_MAX - dig) / 10)
            return false;
        v = v * 10 + dig;
    }
    *idx = v;
    return true;
}

/* Keys are matched after unescaping (simdjson's find_field compares raw bytes, which misses
 * keys written with escapes). The first matching member wins. */
static int object_child(od::object o, const char *tok, size_t n, od::value *out)
{
    for (auto r : o) {
        od::field f;
        std::string_view key;
        if (std::move(r).get(f) || f.unescaped_key().get(key))
            return -EINVAL;
        if (token_equals(key, tok, n)) {
            *out = f.value();
            return 0;
        }
    }
    return -ENOENT;
}

/* The child of node (a document or a value) named by one pointer token. */
template <class T> static int child_of(T &node, const char *tok, size_t n, od::value *out)
{
    od::json_type t;
    if (node.type().get(t))
        return -ENOENT;
    if (t == od::json_type::object) {
        od::object o;
        if (node.get_object().get(o))
            return -ENOENT;
        return object_child(o, tok, n, out);
    }
    size_t idx;
    if (t != od::json_type::array || !token_index(tok, n, &idx))
        return -ENOENT;
    od::array a;
    if (node.get_array().get(a) || a.at(idx).get(*out))
        return -ENOENT;
    return 0;
}

/* Rewind and walk ptr from the root. On success either *at_root is set (ptr is "": the target
 * is the document itself, which may be a scalar and so cannot be an od::value) or *out is it. */
static int resolve(json_doc *d, const char *ptr, od::value *out, bool *at_root)
{
    if (!d->loaded || !ptr || !pointer_valid(ptr))
        return -ENOENT;
    d->doc.rewind();
    *at_root = *ptr == '\0';
    if (*at_root)
        return 0;
    const char *tok = ptr + 1;
    size_t n = strcspn(tok, "/");
    int rc = child_of(d->doc, tok, n, out);
    while (rc == 0 && tok[n] == '/') {
        od::value parent = *out;
        tok += n + 1;
        n = strcspn(tok, "/");
        rc = child_of(parent, tok, n, out);
    }
    return rc;
}

/* Resolve ptr, then call fn with the target: the document (root) or the value. */
template <class F> static int with_target(json_doc *d, const char *ptr, F fn)
{
    od::value v;
    bool at_root;
    int rc = resolve(d, ptr, &v, &at_root);
    if (rc)
        return rc;
    return at_root ? fn(d->doc) : fn(v);
}

static std::string_view scalar_token(od::document &doc)
{
    std::string_view s;
    return doc.raw_json_token().get(s) ? std::string_view() : s;
}

static std::string_view scalar_token(od::value &v)
{
    return v.raw_json_token();
}

static bool raw_container(od::document &doc, od::json_type t, std::string_view *s)
{
    (void)t;
    return !doc.raw_json().get(*s);
}

static bool raw_container(od::value &v, od::json_type t, std::string_view *s)
{
    if (t == od::json_type::array) {
        od::array a;
        return !v.get_array().get(a) && !a.raw_json().get(*s);
    }
    od::object o;
    return !v.get_object().get(o) && !o.raw_json().get(*s);
}

/* ---- the C API --------------------------------------------------------------------------- */

/* Allocate a reusable document holder (parser, padded buffer, string arena). Never NULL: the
 * allocation wrapper aborts on exhaustion. */
json_doc *json_doc_create(void)
{
    static_assert(alignof(json_doc) <= alignof(max_align_t), "xmalloc alignment");
    return new (xmalloc(sizeof(json_doc))) json_doc();
}

/* Free d and everything it owns; strings returned from it become invalid. NULL is a no-op. */
void json_doc_destroy(json_doc *d)
{
    if (!d)
        return;
    arena_free(d);
    xfree(d->pad);
    xfree(d->keys);
    d->~json_doc();
    xfree(d);
}

/* Shared by both loads: buf has at least JSON_PADDING readable bytes after len. */
static int load(json_doc *d, const char *buf, size_t len, bool unique)
{
    d->loaded = false;
    arena_reset(d);
    if (len == 0)
        return -EINVAL;
    if (len > JSON_MAX_SIZE)
        return -E2BIG;
    simdjson::error_code err = d->parser.iterate(buf, len, len + JSON_PADDING).get(d->doc);
    if (err == simdjson::CAPACITY || err == simdjson::DEPTH_ERROR)
        return -E2BIG;
    if (err == simdjson::MEMALLOC)
        return -ENOMEM;
    if (err)
        return -EINVAL;
    walk_ctx w = {unique, d->keys, 0, d->keys_cap};
    int rc = walk_document(d->doc, &w);
    d->keys = w.keys; /* kept (grown) for the next load */
    d->keys_cap = w.cap;
    if (rc)
        return rc;
    d->loaded = true;
    return 0;
}

/* Copy buf[0..len) into d's padded buffer and validate it completely. Strings returned for the
 * previous document become invalid. Returns 0, -EINVAL (invalid JSON, trailing content, bad
 * escapes or UTF-8, lone surrogate escapes such as "\ud800"), or -E2BIG (over 4 MiB or over 64
 * levels of nesting); -ENOMEM if simdjson cannot grow its buffers. After a failure the doc holds
 * no document: lookups miss. */
static int load_copy(json_doc *d, const char *buf, size_t len, bool unique)
{
    if (len > JSON_MAX_SIZE) {
        d->loaded = false;
        arena_reset(d);
        return -E2BIG;
    }
    if (d->pad_cap < len + JSON_PADDING) {
        size_t cap = d->pad_cap ? d->pad_cap : 4096;
        while (cap < len + JSON_PADDING)
            cap *= 2;
        xfree(d->pad);
        d->pad = static_cast<char *>(xmalloc(cap));
        d->pad_cap = cap;
    }
    if (len)
        memcpy(d->pad, buf, len);
    memset(d->pad + len, 0, JSON_PADDING);
    return load(d, d->pad, len, unique);
}

int json_doc_load(json_doc *d, const char *buf, size_t len)
{
    return load_copy(d, buf, len, false);
}

/* As json_doc_load, and an object with two members of the same key (compared unescaped: "a" and
 * "\u0061" are the same) is refused with -EEXIST. */
int json_doc_load_unique(json_doc *d, const char *buf, size_t len)
{
    return load_copy(d, buf, len, true);
}

/* As json_doc_load but in place: the caller keeps buf (and JSON_PADDING readable bytes after
 * len) unchanged until the next load; json_get_raw points into it. */
int json_doc_load_padded(json_doc *d, const char *buf, size_t len)
{
    return load(d, buf, len, false);
}

/* The type of the value at ptr, or JSON_MISSING if ptr does not resolve (bad syntax, missing
 * key, index out of range, a step into a scalar, or no valid document loaded). */
enum json_type json_type_at(json_doc *d, const char *ptr)
{
    od::json_type t;
    int rc = with_target(d, ptr, [&](auto &v) { return v.type().get(t) ? -ENOENT : 0; });
    if (rc)
        return JSON_MISSING;
    switch (t) {
    case od::json_type::null:
        return JSON_NULL;
    case od::json_type::boolean:
        return JSON_BOOL;
    case od::json_type::number:
        return JSON_NUMBER;
    case od::json_type::string:
        return JSON_STRING;
    case od::json_type::array:
        return JSON_ARRAY;
    case od::json_type::object:
        return JSON_OBJECT;
    }
    return JSON_MISSING;
}

/* The unescaped string at ptr, copied into d's arena and NUL-terminated (it may also contain
 * NULs from "\u0000": use *len). Valid until the next load. 0, -ENOENT, or -EINVAL. */
int json_get_string(json_doc *d, const char *ptr, const char **s, size_t *len)
{
    std::string_view v;
    int rc = with_target(d, ptr, [&](auto &t) { return t.get_string().get(v) ? -EINVAL : 0; });
    if (rc)
        return rc;
    *s = arena_copy(d, v);
    *len = v.size();
    return 0;
}

/* The integer at ptr: -EINVAL for other types, fractions or exponents (1.5, 1e3) and values
 * outside int64_t. 0, -ENOENT, or -EINVAL. */
int json_get_int(json_doc *d, const char *ptr, int64_t *out)
{
    int64_t v;
    int rc = with_target(d, ptr, [&](auto &t) { return t.get_int64().get(v) ? -EINVAL : 0; });
    if (!rc)
        *out = v;
    return rc;
}

/* The number at ptr as a double (integers included). 0, -ENOENT, or -EINVAL. */
int json_get_double(json_doc *d, const char *ptr, double *out)
{
    double v;
    int rc = with_target(d, ptr, [&](auto &t) { return t.get_double().get(v) ? -EINVAL : 0; });
    if (!rc)
        *out = v;
    return rc;
}

/* The boolean at ptr. 0, -ENOENT, or -EINVAL. */
int json_get_bool(json_doc *d, const char *ptr, bool *out)
{
    bool v;
    int rc = with_target(d, ptr, [&](auto &t) { return t.get_bool().get(v) ? -EINVAL : 0; });
    if (!rc)
        *out = v;
    return rc;
}

/* The JSON text of the value at ptr, pointing into the loaded input (d's copy, or the caller's
 * buffer after json_doc_load_padded); not NUL-terminated, trailing whitespace trimmed. Strings
 * keep their quotes and escapes. 0 or -ENOENT. */
int json_get_raw(json_doc *d, const char *ptr, const char **s, size_t *len)
{
    std::string_view v;
    int rc = with_target(d, ptr, [&](auto &t) {
        od::json_type type;
        if (t.type().get(type))
            return -EINVAL;
        if (type == od::json_type::array || type == od::json_type::object)
            return raw_container(t, type, &v) ? 0 : -EINVAL;
        v = scalar_token(t);
        return v.empty() ? -EINVAL : 0;
    });
    if (rc)
        return rc;
    size_t n = v.size();
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\n' || v[n - 1] == '\r'))
        n--;
    *s = v.data();
    *len = n;
    return 0;
}

/* Elements of the array or members of the object at ptr. 0, -ENOENT, or -EINVAL (a scalar). */
int json_count(json_doc *d, const char *ptr, size_t *n)
{
    size_t v;
    int rc = with_target(d, ptr, [&](auto &t) {
        od::json_type type;
        if (t.type().get(type))
            return -EINVAL;
        if (type == od::json_type::array)
            return t.count_elements().get(v) ? -EINVAL : 0;
        if (type == od::json_type::object)
            return t.count_fields().get(v) ? -EINVAL : 0;
        return -EINVAL;
    });
    if (!rc)
        *n = v;
    return rc;
}

/* The unescaped key of member idx (from 0, in document order) of the object at ptr, copied into
 * d's arena like json_get_string. 0, -ENOENT (ptr misses or idx is past the end), or -EINVAL
 * (not an object). */
int json_key_at(json_doc *d, const char *ptr, size_t idx, const char **key, size_t *len)
{
    std::string_view k;
    int rc = with_target(d, ptr, [&](auto &t) {
        od::object o;
        if (t.get_object().get(o))
            return -EINVAL;
        size_t i = 0;
        for (auto r : o) {
            od::field f;
            if (std::move(r).get(f))
                return -EINVAL;
            if (i++ == idx)
                return f.unescaped_key().get(k) ? -EINVAL : 0;
        }
        return -ENOENT;
    });
    if (rc)
        return rc;
    *key = arena_copy(d, k);
    *len = k.size();
    return 0;
}
