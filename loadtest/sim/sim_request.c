/* sim_request.c - reduce an OpenAI, Anthropic or Gemini request to struct sim_req.
 *
 * Everything is read through stream/json.h (JSON Pointer lookups over simdjson On-Demand). The
 * conversation is hashed and counted by walking each message's JSON: every string value counts
 * (texts, tool arguments, tool results) except the bookkeeping keys below, so the same text
 * conversation hashes the same in all three formats. */
#include "loadtest/sim/sim_request.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "loadtest/sim/sim_hash.h"

enum { WALK_MAX_DEPTH = 12, MSG_OVERHEAD_TOKENS = 4 };

/* A JSON Pointer under construction. */
struct jptr {
    char s[512];
    size_t n;
};

static bool jp_push_key(struct jptr *p, const char *k, size_t kn)
{
    size_t n = p->n;
    if (n + 1 >= sizeof(p->s))
        return false;
    p->s[n++] = '/';
    for (size_t i = 0; i < kn; i++) {
        const char *esc = k[i] == '~' ? "~0" : k[i] == '/' ? "~1" : NULL;
        size_t need = esc ? 2 : 1;
        if (n + need >= sizeof(p->s))
            return false;
        if (esc)
            memcpy(p->s + n, esc, 2);
        else
            p->s[n] = k[i];
        n += need;
    }
    p->s[n] = '\0';
    p->n = n;
    return true;
}

static bool jp_push_idx(struct jptr *p, size_t i)
{
    int w = snprintf(p->s + p->n, sizeof(p->s) - p->n, "/%zu", i);
    if (w < 0 || (size_t)w >= sizeof(p->s) - p->n)
        return false;
    p->n += (size_t)w;
    return true;
}

static void jp_set(struct jptr *p, const char *s)
{
    snprintf(p->s, sizeof(p->s), "%s", s);
    p->n = strlen(p->s);
}

static void jp_pop(struct jptr *p, size_t n)
{
    p->n = n;
    p->s[n] = '\0';
}

/* The string at p + "/" + key, or NULL. */
static const char *str_at(json_doc *d, struct jptr *p, const char *key, size_t *len)
{
    size_t keep = p->n;
    const char *s = NULL;
    size_t n = 0;
    if (jp_push_key(p, key, strlen(key)) && json_get_string(d, p->s, &s, &n) < 0)
        s = NULL;
    jp_pop(p, keep);
    if (len)
        *len = n;
    return s;
}

static bool str_is(const char *s, const char *want)
{
    return s && strcmp(s, want) == 0;
}

/* Number of words (maximal runs of non-whitespace) in s[0..n). */
uint32_t sim_count_words(const char *s, size_t n)
{
    uint32_t words = 0;
    bool in = false;
    for (size_t i = 0; i < n; i++) {
        bool ws = s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r' || s[i] == '\f' ||
                  s[i] == '\v';
        if (!ws && !in)
            words++;
        in = !ws;
    }
    return words;
}

/* ---- the message walk: hash and count every string of a message ---- */

struct acc {
    uint64_t h;
    uint32_t words;
    bool bp; /* a cache_control key was seen (not hashed: it is not part of the text) */
};

static bool skip_key(const char *k)
{
    static const char *const skip[] = {
        "role",        "type",          "id",        "tool_call_id",
        "tool_use_id", "cache_control", "signature", "thoughtSignature"};
    for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
        if (strcmp(k, skip[i]) == 0)
            return true;
    return false;
}

static void walk(json_doc *d, struct jptr *p, struct acc *a, int depth);

static void walk_children(json_doc *d, struct jptr *p, struct acc *a, int depth, bool obj)
{
    size_t n = 0, keep = p->n;
    if (depth >= WALK_MAX_DEPTH || json_count(d, p->s, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        const char *k;
        size_t kn;
        if (obj) {
            /* Keys are not hashed: the same texts in another format's shape (content vs
             * parts[].text) are the same conversation. */
            if (json_key_at(d, p->s, i, &k, &kn) < 0)
                continue;
            a->bp |= strcmp(k, "cache_control") == 0;
            if (skip_key(k) || !jp_push_key(p, k, kn))
                continue;
        } else if (!jp_push_idx(p, i)) {
            continue;
        }
        walk(d, p, a, depth + 1);
        jp_pop(p, keep);
    }
}

static void walk(json_doc *d, struct jptr *p, struct acc *a, int depth)
{
    const char *s;
    size_t n;
    switch (json_type_at(d, p->s)) {
    case JSON_STRING:
        if (json_get_string(d, p->s, &s, &n) == 0) {
            a->h = sim_hash_bytes(a->h, s, n + 1); /* the NUL separates strings */
            a->words += sim_count_words(s, n);
        }
        break;
    case JSON_NUMBER:
    case JSON_BOOL:
        if (json_get_raw(d, p->s, &s, &n) == 0)
            a->h = sim_hash_bytes(a->h, s, n);
        break;
    case JSON_ARRAY:
        walk_children(d, p, a, depth, false);
        break;
    case JSON_OBJECT:
        walk_children(d, p, a, depth, true);
        break;
    default:
        break;
    }
}

/* ---- messages ---- */

/* Normalised role: 's'ystem, 'u'ser, 'a'ssistant, 't'ool. */
static char role_of(json_doc *d, struct jptr *p, enum sim_format fmt)
{
    const char *r = str_at(d, p, "role", NULL);
    if (!r)
        return fmt == SIM_GEMINI ? 'u' : '?';
    if (str_is(r, "system") || str_is(r, "developer"))
        return 's';
    if (str_is(r, "assistant") || str_is(r, "model"))
        return 'a';
    if (str_is(r, "tool") || str_is(r, "function"))
        return 't';
    return str_is(r, "user") ? 'u' : '?';
}

/* Count and hash one message (or system prompt) at p, updating the request totals. */
static void add_message(struct sim_req *r, json_doc *d, struct jptr *p, char role, uint64_t *ph)
{
    struct acc a = {.h = sim_hash_bytes(SIM_HASH_SEED, &role, 1), .words = 0, .bp = false};
    walk(d, p, &a, 0);
    uint32_t i = r->nmsgs++;
    r->conv_hash = sim_hash_u64(r->conv_hash, a.h);
    *ph = sim_hash_u64(*ph, a.h);
    r->prompt_tokens += a.words + MSG_OVERHEAD_TOKENS;
    r->prefix_hash[i] = *ph;
    r->prefix_tokens[i] = r->prompt_tokens;
    r->prefix_bp[i] = a.bp;
}

/* Type of the value at p + "/" + key. */
static enum json_type type_at(json_doc *d, struct jptr *p, const char *key)
{
    size_t keep = p->n;
    enum json_type t = JSON_MISSING;
    if (jp_push_key(p, key, strlen(key)))
        t = json_type_at(d, p->s);
    jp_pop(p, keep);
    return t;
}

/* Append the text of one content block / part at p to out; *tool is set for tool results.
 * Returns true if text was found. */
static bool part_text(json_doc *d, struct jptr *p, enum sim_format fmt, struct buf *out, bool *tool)
{
    const char *type = str_at(d, p, "type", NULL);
    if (str_is(type, "tool_result") ||
        (fmt == SIM_GEMINI && type_at(d, p, "functionResponse") != JSON_MISSING)) {
        *tool = true;
        return false;
    }
    size_t n;
    const char *s = str_at(d, p, "text", &n);
    if (!s || (fmt != SIM_GEMINI && !str_is(type, "text")))
        return false;
    buf_append(out, s, n);
    return true;
}

/* Text of a user message at p into out (its text parts, concatenated); returns false if it
 * carries a tool result or no text, which makes it not a "user text" message. */
static bool user_text(json_doc *d, struct jptr *p, enum sim_format fmt, struct buf *out)
{
    size_t keep = p->n, n = 0, sn;
    const char *s;
    buf_reset(out);
    if (fmt != SIM_GEMINI && (s = str_at(d, p, "content", &sn))) {
        buf_append(out, s, sn);
        return true;
    }
    const char *list = fmt == SIM_GEMINI ? "parts" : "content";
    if (!jp_push_key(p, list, strlen(list)) || json_count(d, p->s, &n) < 0)
        n = 0;
    bool text = false, tool = false;
    size_t at = p->n;
    for (size_t i = 0; i < n; i++) {
        if (!jp_push_idx(p, i))
            break;
        text |= part_text(d, p, fmt, out, &tool);
        jp_pop(p, at);
    }
    jp_pop(p, keep);
    return text && !tool;
}

/* Append the text of a system prompt at p (a string, or a message / instruction with text
 * content or parts) to r->system_text. */
static void system_text(struct sim_req *r, json_doc *d, struct jptr *p)
{
    const char *s;
    size_t n;
    struct buf t = {0};
    if (json_get_string(d, p->s, &s, &n) == 0)
        buf_append(&r->system_text, s, n);
    else if (user_text(d, p, r->fmt, &t) || buf_size(&t))
        buf_append(&r->system_text, buf_begin(&t), buf_size(&t));
    buf_append(&r->system_text, "\n", 1);
    buf_free(&t);
}

/* Walk the message list at `list` (and the system prompt at `sys`), filling the conversation
 * fields. Returns 0 or -EINVAL. */
static int read_messages(struct sim_req *r, json_doc *d, const char *sys, const char *list,
                         const char **err)
{
    size_t n = 0;
    if (json_type_at(d, list) != JSON_ARRAY || json_count(d, list, &n) < 0 || n == 0) {
        *err = r->fmt == SIM_GEMINI ? "contents must be a non-empty array"
                                    : "messages must be a non-empty array";
        return -EINVAL;
    }
    r->prefix_hash = xcalloc(n + 1, sizeof(*r->prefix_hash));
    r->prefix_tokens = xcalloc(n + 1, sizeof(*r->prefix_tokens));
    r->prefix_bp = xcalloc(n + 1, sizeof(*r->prefix_bp));
    uint64_t ph = sim_hash_bytes(sim_hash_u64(SIM_HASH_SEED, r->fmt), r->model, strlen(r->model));
    struct jptr p;
    if (sys && json_type_at(d, sys) != JSON_MISSING && json_type_at(d, sys) != JSON_NULL) {
        jp_set(&p, sys);
        add_message(r, d, &p, 's', &ph);
        system_text(r, d, &p);
    }
    long last_user = -1;
    for (size_t i = 0; i < n; i++) {
        jp_set(&p, list);
        jp_push_idx(&p, i);
        char role = role_of(d, &p, r->fmt);
        add_message(r, d, &p, role, &ph);
        if (role == 's')
            system_text(r, d, &p);
        if (role == 'u')
            last_user = (long)i;
    }
    /* The last user message with text: directives and echo come from there. */
    for (long i = last_user; i >= 0; i--) {
        jp_set(&p, list);
        jp_push_idx(&p, (size_t)i);
        if (role_of(d, &p, r->fmt) == 'u' && user_text(d, &p, r->fmt, &r->last_text)) {
            r->last_is_user_text = (size_t)i == n - 1;
            break;
        }
        buf_reset(&r->last_text);
    }
    return 0;
}

/* ---- directives ---- */

static bool parse_uint(const char *s, size_t n, int64_t *out)
{
    int64_t v = 0;
    if (n == 0 || n > 9)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Apply one directive body ("tokens=5", "echo", "tool=search") to d; unknown ones are ignored. */
static void apply_directive(struct sim_directives *d, const char *s, size_t n)
{
    static const struct {
        const char *name;
        size_t off;
    } nums[] = {
        {"tokens", offsetof(struct sim_directives, tokens)},
        {"ttft", offsetof(struct sim_directives, ttft_ms)},
        {"tps", offsetof(struct sim_directives, tps)},
        {"status", offsetof(struct sim_directives, status)},
        {"fail_first", offsetof(struct sim_directives, fail_first)},
        {"reasoning", offsetof(struct sim_directives, reasoning)},
        {"disconnect_after", offsetof(struct sim_directives, disconnect_after)},
        {"stall_after", offsetof(struct sim_directives, stall_after)},
        {"error_event_after", offsetof(struct sim_directives, error_event_after)},
    };
    const char *eq = memchr(s, '=', n);
    size_t kn = eq ? (size_t)(eq - s) : n;
    const char *v = eq ? eq + 1 : s + n;
    size_t vn = (size_t)(s + n - v);
    if (kn == 4 && memcmp(s, "echo", 4) == 0) {
        d->echo = true;
    } else if (kn == 9 && memcmp(s, "hold_open", 9) == 0) {
        d->hold_open = true;
    } else if (kn == 4 && memcmp(s, "tool", 4) == 0) {
        if (d->ntool < SIM_MAX_CALLS) {
            size_t cut = vn < SIM_NAME_MAX - 1 ? vn : SIM_NAME_MAX - 1;
            memcpy(d->tool[d->ntool], v, cut);
            d->tool[d->ntool++][cut] = '\0';
        }
    } else {
        for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
            if (strlen(nums[i].name) == kn && memcmp(s, nums[i].name, kn) == 0)
                parse_uint(v, vn, (int64_t *)((char *)d + nums[i].off));
    }
}

static bool is_space(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Find and apply the [[sim:...]] directives; see the header. */
void sim_directives_parse(const char *text, size_t len, struct sim_directives *d,
                          struct buf *stripped)
{
    memset(d, 0, sizeof(*d));
    d->tokens = d->ttft_ms = d->tps = d->status = d->fail_first = d->reasoning = -1;
    d->disconnect_after = d->stall_after = d->error_event_after = -1;
    buf_reset(stripped);
    size_t i = 0;
    while (i < len) {
        const char *m = memmem(text + i, len - i, "[[sim:", 6);
        const char *body = m ? m + 6 : NULL;
        const char *end = m ? memmem(body, (size_t)(text + len - body), "]]", 2) : NULL;
        if (!end) {
            buf_append(stripped, text + i, len - i);
            break;
        }
        buf_append(stripped, text + i, (size_t)(m - (text + i)));
        apply_directive(d, body, (size_t)(end - body));
        i = (size_t)(end + 2 - text);
        while (i < len && is_space(text[i]))
            i++;
    }
}

/* ---- tools ---- */

static void copy_name(char *dst, const char *s, size_t n)
{
    size_t cut = n < SIM_NAME_MAX - 1 ? n : SIM_NAME_MAX - 1;
    memcpy(dst, s, cut);
    dst[cut] = '\0';
}

/* Record the tool whose declaration is at p: name at p/name_key..., properties at p/props. */
static void add_tool(struct sim_req *r, json_doc *d, struct jptr *p, const char *name_ptr,
                     const char *const *props)
{
    const char *s;
    size_t n;
    struct jptr q = *p;
    if (r->ntools >= SIM_MAX_TOOLS || strlen(q.s) + strlen(name_ptr) >= sizeof(q.s))
        return;
    strcat(q.s, name_ptr);
    if (json_get_string(d, q.s, &s, &n) < 0)
        return;
    struct sim_tool *t = &r->tools[r->ntools++];
    copy_name(t->name, s, n);
    t->props[0] = '\0';
    for (; *props; props++) {
        q = *p;
        if (strlen(q.s) + strlen(*props) >= sizeof(t->props))
            continue;
        strcat(q.s, *props);
        if (json_type_at(d, q.s) == JSON_OBJECT) {
            strcpy(t->props, q.s);
            break;
        }
    }
}

static void read_tools_list(struct sim_req *r, json_doc *d, const char *list, const char *name_ptr,
                            const char *const *props)
{
    size_t n = 0;
    if (json_count(d, list, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        struct jptr p;
        jp_set(&p, list);
        jp_push_idx(&p, i);
        add_tool(r, d, &p, name_ptr, props);
    }
}

static void read_tools(struct sim_req *r, json_doc *d)
{
    static const char *const oa_props[] = {"/function/parameters/properties", NULL};
    static const char *const an_props[] = {"/input_schema/properties", NULL};
    static const char *const ge_props[] = {"/parameters/properties",
                                           "/parametersJsonSchema/properties", NULL};
    r->tools = xcalloc(SIM_MAX_TOOLS, sizeof(*r->tools));
    if (r->fmt == SIM_OPENAI) {
        read_tools_list(r, d, "/tools", "/function/name", oa_props);
    } else if (r->fmt == SIM_ANTHROPIC) {
        read_tools_list(r, d, "/tools", "/name", an_props);
    } else {
        size_t n = 0;
        json_count(d, "/tools", &n);
        for (size_t i = 0; i < n; i++) {
            char list[64];
            snprintf(list, sizeof(list), "/tools/%zu/functionDeclarations", i);
            read_tools_list(r, d, list, "/name", ge_props);
        }
    }
}

/* tool_choice / toolConfig: none, must call, or a named tool. */
static void read_tool_choice(struct sim_req *r, json_doc *d)
{
    const char *s = NULL, *name = NULL;
    size_t n = 0, nn = 0;
    if (r->fmt == SIM_OPENAI) {
        json_get_string(d, "/tool_choice", &s, &n);
        if (json_get_string(d, "/tool_choice/function/name", &name, &nn) == 0)
            s = "required";
    } else if (r->fmt == SIM_ANTHROPIC) {
        json_get_string(d, "/tool_choice/type", &s, &n);
        json_get_string(d, "/tool_choice/name", &name, &nn);
        s = str_is(s, "any") || str_is(s, "tool") ? "required" : s;
    } else {
        json_get_string(d, "/toolConfig/functionCallingConfig/mode", &s, &n);
        json_get_string(d, "/toolConfig/functionCallingConfig/allowedFunctionNames/0", &name, &nn);
        s = str_is(s, "NONE") ? "none" : str_is(s, "ANY") ? "required" : s;
    }
    r->tool_choice = str_is(s, "none") ? -1 : str_is(s, "required") ? 1 : 0;
    if (name && r->tool_choice == 1)
        copy_name(r->forced_tool, name, nn);
}

/* ---- options and the whole request ---- */

static int read_options(struct sim_req *r, json_doc *d, const char **err)
{
    const char *s;
    size_t n;
    if (r->fmt != SIM_GEMINI) {
        if (json_get_string(d, "/model", &s, &n) < 0) {
            *err = r->fmt == SIM_OPENAI ? "you must provide a model parameter"
                                        : "model: Field required";
            return -EINVAL;
        }
        copy_name(r->model, s, n);
        json_get_bool(d, "/stream", &r->stream);
        json_get_bool(d, "/stream_options/include_usage", &r->include_usage);
    }
    if (r->fmt == SIM_OPENAI) {
        if (json_get_int(d, "/max_completion_tokens", &r->max_tokens) < 0 &&
            json_get_int(d, "/max_tokens", &r->max_tokens) < 0)
            r->max_tokens = -1;
    } else if (r->fmt == SIM_ANTHROPIC) {
        if (json_get_int(d, "/max_tokens", &r->max_tokens) < 0 || r->max_tokens < 1) {
            *err = "max_tokens: Field required";
            return -EINVAL;
        }
    } else if (json_get_int(d, "/generationConfig/maxOutputTokens", &r->max_tokens) < 0) {
        r->max_tokens = -1;
    }
    if (r->max_tokens < -1)
        r->max_tokens = -1;
    return 0;
}

/* What a cached prefix shares besides its messages: the tools on offer (every provider puts them
 * in the prefix; any change in them is a miss, a breakpoint on the last tool included) and
 * OpenAI's prompt_cache_key (another key routes to another cache). */
static uint64_t cache_scope(const struct sim_req *r, json_doc *d)
{
    uint64_t h = SIM_HASH_SEED;
    const char *s;
    size_t n;
    if (json_get_raw(d, "/tools", &s, &n) == 0)
        h = sim_hash_bytes(h, s, n);
    if (r->fmt == SIM_OPENAI && json_get_string(d, "/prompt_cache_key", &s, &n) == 0)
        h = sim_hash_bytes(sim_hash_u64(h, 1), s, n);
    return h;
}

/* Parse a loaded request; see the header. */
int sim_req_parse(struct sim_req *r, json_doc *d, const char *body, size_t len, const char **err)
{
    if (json_type_at(d, "") != JSON_OBJECT) {
        *err = "the request body must be a JSON object";
        return -EINVAL;
    }
    int ret = read_options(r, d, err);
    if (ret < 0)
        return ret;
    r->conv_hash = SIM_HASH_SEED;
    if (r->fmt == SIM_OPENAI)
        ret = read_messages(r, d, NULL, "/messages", err);
    else if (r->fmt == SIM_ANTHROPIC)
        ret = read_messages(r, d, "/system", "/messages", err);
    else
        ret = read_messages(r, d, "/systemInstruction", "/contents", err);
    if (ret < 0)
        return ret;
    r->cache_control = r->fmt == SIM_ANTHROPIC && memmem(body, len, "\"cache_control\"", 15);
    r->cache_scope = cache_scope(r, d);
    sim_directives_parse(buf_begin(&r->last_text), buf_size(&r->last_text), &r->d, &r->echo_text);
    read_tools(r, d);
    read_tool_choice(r, d);
    return 0;
}

/* Free what sim_req_parse allocated (the struct itself belongs to the caller). */
void sim_req_free(struct sim_req *r)
{
    xfree(r->prefix_hash);
    xfree(r->prefix_tokens);
    xfree(r->prefix_bp);
    xfree(r->tools);
    buf_free(&r->last_text);
    buf_free(&r->echo_text);
    buf_free(&r->system_text);
    r->prefix_hash = NULL;
    r->prefix_tokens = NULL;
    r->prefix_bp = NULL;
    r->tools = NULL;
}
