/* llm.c - the provider-independent half of stream/llm.h: the stream object, SSE dispatch to the
 * adapters, the emit helpers that keep the normalized event rules in one place, request and
 * header dispatch, and error bodies.
 *
 * Rules kept here rather than in each adapter: a TEXT/TOOL_* event marks the stream started; one
 * FINISH at most; an ERROR ends the stream (feed keeps returning -EPROTO, finish emits nothing
 * more); a non-zero callback value is sticky too, because the SSE parser stopped in the middle
 * of a chunk and the rest of it is gone. Error messages are copied into the stream (or a
 * thread-local buffer for llm_parse_error) with anything that looks like an API key redacted:
 * OpenAI's 401 body echoes a masked key. */
#include "stream/llm.h"
#include "stream/llm_adapter.h"

#include "base/mem.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

_Static_assert(SSE_PADDING >= JSON_PADDING, "SSE data must be parseable in place");

static const char *const provider_names[LLM__COUNT] = {"openai", "anthropic", "gemini"};

static const struct llm_adapter *adapter_of(enum llm_provider p)
{
    switch (p) {
    case LLM_OPENAI:
        return &llm__openai;
    case LLM_ANTHROPIC:
        return &llm__anthropic;
    case LLM_GEMINI:
        return &llm__gemini;
    default:
        return NULL;
    }
}

/* "openai" / "anthropic" / "gemini" (exact, lower case) -> provider; -1 when unknown. */
int llm_provider_from_name(const char *name, size_t len)
{
    for (int i = 0; i < LLM__COUNT; i++)
        if (strlen(provider_names[i]) == len && memcmp(provider_names[i], name, len) == 0)
            return i;
    return -1;
}

/* The provider's name as in TRILEMMA_MODEL ("openai"...), or "unknown". Static storage. */
const char *llm_provider_name(enum llm_provider p)
{
    return (unsigned)p < LLM__COUNT ? provider_names[p] : "unknown";
}

/* The SDK's default base URL for p (no trailing slash); see llm_build_request for the path that
 * is appended. Static storage; NULL for an unknown provider. */
const char *llm_default_base_url(enum llm_provider p)
{
    switch (p) {
    case LLM_OPENAI:
        return "https://api.openai.com/v1";
    case LLM_ANTHROPIC:
        return "https://api.anthropic.com";
    case LLM_GEMINI:
        return "https://generativelanguage.googleapis.com";
    default:
        return NULL;
    }
}

/* ---- the stream ------------------------------------------------------------------------- */

/* A parser for one streaming response of provider p; events go to fn(ctx, ev). The stream owns
 * its SSE parser and JSON document. NULL for an unknown provider or a NULL fn. */
struct llm_stream *llm_stream_create(enum llm_provider p, llm_event_fn fn, void *ctx)
{
    const struct llm_adapter *ad = adapter_of(p);
    if (!ad || !fn)
        return NULL;
    struct llm_stream *s = xcalloc(1, sizeof(*s));
    s->provider = p;
    s->ad = ad;
    s->fn = fn;
    s->ctx = ctx;
    sse_init(&s->sse);
    s->doc = json_doc_create();
    return s;
}

/* Free s and everything it owns. NULL is a no-op. */
void llm_stream_destroy(struct llm_stream *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_tools; i++) {
        xfree(s->tools[i].id);
        xfree(s->tools[i].name);
        buf_free(&s->tools[i].args);
    }
    xfree(s->tools);
    xfree(s->blocks);
    sse_free(&s->sse);
    json_doc_destroy(s->doc);
    xfree(s);
}

static int on_sse_event(void *ctx, const struct sse_event *ev)
{
    struct llm_stream *s = ctx;
    if (s->rc)
        return s->rc;
    if (s->done)
        return 0; /* nothing after the terminator counts */
    int rc = s->ad->event(s, ev);
    if (rc && !s->rc)
        s->rc = rc;
    return rc;
}

/* Feed body bytes in any split. Returns 0, the callback's non-zero value, or -EPROTO when the
 * stream is malformed or reported an error (the ERROR event was emitted first, once). Both are
 * sticky: later calls return the same value without parsing. */
int llm_stream_feed(struct llm_stream *s, const char *bytes, size_t len)
{
    if (s->rc)
        return s->rc;
    int rc = sse_feed(&s->sse, bytes, len, on_sse_event, s);
    if (rc == -E2BIG && !s->rc)
        return llm__bad_stream(s, "server-sent event too large");
    if (rc && !s->rc)
        s->rc = rc;
    return rc;
}

/* The body ended: see llm.h. Returns 0 for a complete stream, else the sticky value or -EPROTO
 * after emitting ERROR "incomplete_stream". */
int llm_stream_finish(struct llm_stream *s)
{
    if (s->rc)
        return s->rc;
    int rc = s->ad->finish(s);
    if (rc && !s->rc)
        s->rc = rc;
    return rc;
}

/* True once a TEXT or TOOL_* event was emitted. */
bool llm_stream_started(const struct llm_stream *s)
{
    return s->started;
}

/* True once the provider's terminator was seen ([DONE], message_stop; Gemini: after
 * llm_stream_finish). A model call ends there without waiting for the body's end. */
bool llm_stream_done(const struct llm_stream *s)
{
    return s->done;
}

/* ---- emit helpers ----------------------------------------------------------------------- */

/* Deliver ev; keeps started/finished. Returns 0 or the callback's value (made sticky). */
int llm__emit(struct llm_stream *s, struct llm_event *ev)
{
    switch (ev->type) {
    case LLM_EV_TEXT:
    case LLM_EV_TOOL_START:
    case LLM_EV_TOOL_ARGS:
    case LLM_EV_TOOL_END:
        s->started = true;
        break;
    case LLM_EV_FINISH:
        s->finished = true;
        break;
    default:
        break;
    }
    int rc = s->fn(s->ctx, ev);
    if (rc)
        s->rc = rc;
    return rc;
}

/* A TEXT or REASONING piece; empty pieces are dropped. */
int llm__text(struct llm_stream *s, enum llm_event_type type, const char *text, size_t len)
{
    if (!len)
        return 0;
    struct llm_event ev = {.type = type, .text = text, .len = len, .tool_index = -1};
    return llm__emit(s, &ev);
}

/* USAGE with the stream's current normalized totals. */
int llm__usage(struct llm_stream *s)
{
    struct llm_event ev = {.type = LLM_EV_USAGE, .usage = s->usage, .tool_index = -1};
    return llm__emit(s, &ev);
}

/* FINISH once; "stop" becomes "tool_calls" when the response called tools. */
int llm__finish(struct llm_stream *s, const char *reason)
{
    if (s->finished)
        return 0;
    if (s->saw_tool && strcmp(reason, "stop") == 0)
        reason = "tool_calls";
    struct llm_event ev = {.type = LLM_EV_FINISH, .finish = reason, .tool_index = -1};
    return llm__emit(s, &ev);
}

static bool secret_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '-' || c == '*' || c == '.' || c == '~' || c == '+' || c == '=';
}

/* A word that is probably a credential: a known key prefix (OpenAI and Anthropic "sk-", Groq
 * "gsk_", Google "AIza"), or 32+ characters mixing upper case, lower case and digits the way
 * random keys do (model names and request ids are shorter or single-case). */
static bool looks_secret(const char *w, size_t n)
{
    while (n && w[n - 1] == '.')
        n--;
    if ((n >= 8 && (!memcmp(w, "sk-", 3) || !memcmp(w, "gsk_", 4) || !memcmp(w, "AIza", 4))))
        return true;
    if (n < 32)
        return false;
    bool digit = false, upper = false, lower = false;
    for (size_t i = 0; i < n; i++) {
        digit |= w[i] >= '0' && w[i] <= '9';
        upper |= w[i] >= 'A' && w[i] <= 'Z';
        lower |= w[i] >= 'a' && w[i] <= 'z';
    }
    return digit && upper && lower;
}

/* The length of s[0..n) without a multi-byte character cut short at its end. */
static size_t utf8_trim(const char *s, size_t n)
{
    size_t k = n;
    while (k && ((unsigned char)s[k - 1] & 0xC0) == 0x80)
        k--;
    if (!k)
        return n;
    unsigned char lead = (unsigned char)s[k - 1];
    size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return n - (k - 1) < want ? k - 1 : n;
}

/* Copy msg into dst[cap] (NUL-terminated), credential-looking words replaced by "[redacted]",
 * truncated on a UTF-8 boundary. Returns the length written. */
static size_t copy_redacted(char *dst, size_t cap, const char *msg, size_t len)
{
    static const char red[] = "[redacted]";
    size_t o = 0, i = 0;
    while (i < len && o + 1 < cap) {
        if (!secret_char((unsigned char)msg[i]) || (i && secret_char((unsigned char)msg[i - 1]))) {
            dst[o++] = msg[i++];
            continue;
        }
        size_t j = i;
        while (j < len && secret_char((unsigned char)msg[j]))
            j++;
        if (looks_secret(msg + i, j - i)) {
            if (o + sizeof(red) > cap)
                break;
            memcpy(dst + o, red, sizeof(red) - 1);
            o += sizeof(red) - 1;
            i = j;
        } else {
            dst[o++] = msg[i++];
        }
    }
    if (i < len)
        o = utf8_trim(dst, o);
    dst[o] = '\0';
    return o;
}

/* ERROR (message copied and redacted into the stream), then the stream is over: -EPROTO. */
int llm__error(struct llm_stream *s, const char *type, const char *msg, size_t len, int status,
               bool retryable)
{
    size_t n = copy_redacted(s->errmsg, sizeof(s->errmsg), msg, len);
    snprintf(s->errtype, sizeof(s->errtype), "%s", type);
    struct llm_event ev = {.type = LLM_EV_ERROR,
                           .text = s->errmsg,
                           .len = n,
                           .tool_index = -1,
                           .error_type = s->errtype,
                           .http_status = status,
                           .retryable = retryable};
    int rc = llm__emit(s, &ev);
    s->rc = rc ? rc : -EPROTO;
    return s->rc;
}

/* ERROR "bad_stream" (not retryable: the same server would answer the same way). */
int llm__bad_stream(struct llm_stream *s, const char *why)
{
    return llm__error(s, "bad_stream", why, strlen(why), 0, false);
}

/* ---- tool calls ------------------------------------------------------------------------- */

/* The tool call opened under the provider's key, or NULL (a linear scan: calls are few). */
struct llm_tool_call *llm__tool_find(struct llm_stream *s, int key)
{
    for (size_t i = 0; i < s->n_tools; i++)
        if (s->tools[i].key == key)
            return &s->tools[i];
    return NULL;
}

static void tool_event(struct llm_event *ev, struct llm_stream *s, struct llm_tool_call *t,
                       enum llm_event_type type)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = type;
    ev->tool_index = (int)(t - s->tools);
    ev->tool_id = t->id;
    ev->tool_name = t->name;
}

/* Open a tool call under key and emit TOOL_START (copies id and name). *out gets the call. */
int llm__tool_start(struct llm_stream *s, int key, const char *id, size_t id_len, const char *name,
                    size_t name_len, struct llm_tool_call **out)
{
    if (s->n_tools == LLM_MAX_TOOLS)
        return llm__bad_stream(s, "too many tool calls");
    if (s->n_tools == s->cap_tools) {
        s->cap_tools = s->cap_tools ? s->cap_tools * 2 : 4;
        s->tools = xrealloc(s->tools, s->cap_tools * sizeof(*s->tools));
    }
    struct llm_tool_call *t = &s->tools[s->n_tools++];
    memset(t, 0, sizeof(*t));
    t->key = key;
    t->id = xstrndup(id ? id : "", id ? id_len : 0);
    t->name = xstrndup(name ? name : "", name ? name_len : 0);
    s->saw_tool = true;
    *out = t;
    struct llm_event ev;
    tool_event(&ev, s, t, LLM_EV_TOOL_START);
    return llm__emit(s, &ev);
}

/* Append an argument fragment and emit TOOL_ARGS (empty fragments are dropped). */
int llm__tool_args(struct llm_stream *s, struct llm_tool_call *t, const char *frag, size_t n)
{
    if (!n || t->ended)
        return 0;
    if (buf_size(&t->args) + n > LLM_MAX_ARGS)
        return llm__bad_stream(s, "tool call arguments too large");
    buf_append(&t->args, frag, n);
    struct llm_event ev;
    tool_event(&ev, s, t, LLM_EV_TOOL_ARGS);
    ev.text = frag;
    ev.len = n;
    return llm__emit(s, &ev);
}

/* Close t: TOOL_END with the whole arguments ("{}" when none came). With validate, arguments
 * that are not a JSON object are a broken stream (reuses s->doc: call it last in an event). */
int llm__tool_end(struct llm_stream *s, struct llm_tool_call *t, bool validate)
{
    if (t->ended)
        return 0;
    t->ended = true;
    const char *args = buf_size(&t->args) ? buf_begin(&t->args) : "{}";
    size_t n = buf_size(&t->args) ? buf_size(&t->args) : 2;
    if (validate &&
        (json_doc_load(s->doc, args, n) != 0 || json_type_at(s->doc, "") != JSON_OBJECT))
        return llm__bad_stream(s, "tool call arguments are not a JSON object");
    struct llm_event ev;
    tool_event(&ev, s, t, LLM_EV_TOOL_END);
    ev.text = args;
    ev.len = n;
    return llm__emit(s, &ev);
}

/* TOOL_END for every open call, in the order they started. */
int llm__tools_end_all(struct llm_stream *s)
{
    for (size_t i = 0; i < s->n_tools; i++) {
        int rc = llm__tool_end(s, &s->tools[i], false);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- JSON helpers ----------------------------------------------------------------------- */

/* The non-negative integer at ptr; 0 when missing, null, negative or not an integer (a usage
 * counter a provider leaves out is zero, not an error). */
uint64_t llm__u64(json_doc *d, const char *ptr)
{
    int64_t v;
    if (json_get_int(d, ptr, &v) || v < 0)
        return 0;
    return (uint64_t)v;
}

/* True if ptr names an integer: a usage field that is present and so replaces the old value. */
bool llm__has_int(json_doc *d, const char *ptr)
{
    int64_t v;
    return json_get_int(d, ptr, &v) == 0;
}

/* Parse an event's data in place into s->doc (SSE_PADDING covers simdjson's padding). 0, or
 * -EPROTO after ERROR bad_stream when the data is not JSON. */
int llm__load_event(struct llm_stream *s, const struct sse_event *ev)
{
    if (json_doc_load_padded(s->doc, ev->data, ev->data_len) != 0)
        return llm__bad_stream(s, "event data is not valid JSON");
    return 0;
}

/* See llm_adapter.h: memmem of the quoted key over the event's data. */
bool llm__mentions(const struct sse_event *ev, const char *key)
{
    char needle[64];
    size_t n = strlen(key);
    if (n + 2 > sizeof(needle))
        return true;
    needle[0] = '"';
    memcpy(needle + 1, key, n);
    needle[n + 1] = '"';
    return memmem(ev->data, ev->data_len, needle, n + 2) != NULL;
}

/* True for error types that mean "try again later": Anthropic overloaded/api/rate-limit errors,
 * OpenAI server_error, Gemini UNAVAILABLE/INTERNAL/RESOURCE_EXHAUSTED/DEADLINE_EXCEEDED. */
bool llm__type_retryable(const char *type, size_t len)
{
    static const char *const transient[] = {
        "overloaded_error", "api_error",          "rate_limit_error",  "server_error",
        "rate_limit",       "overloaded",         "timeout",           "UNAVAILABLE",
        "INTERNAL",         "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED",
    };
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
        if (strlen(transient[i]) == len && memcmp(transient[i], type, len) == 0)
            return true;
    return false;
}

/* ---- requests, headers, error bodies ---------------------------------------------------- */

static bool role_valid(const char *role)
{
    return role && (!strcmp(role, "system") || !strcmp(role, "user") ||
                    !strcmp(role, "assistant") || !strcmp(role, "tool"));
}

/* See llm_adapter.h. */
bool llm__is_json_object(json_doc **d, const char *s, size_t n)
{
    if (!s || !n)
        return false;
    if (!*d)
        *d = json_doc_create();
    return json_doc_load(*d, s, n) == 0 && json_type_at(*d, "") == JSON_OBJECT;
}

/* The tool-call parts of message m: calls only on assistant messages, each with an id, a name
 * and arguments that are a JSON object (or none); a tool message names its call and tool. */
static bool message_tools_valid(const struct llm_message *m, json_doc **d)
{
    bool assistant = !strcmp(m->role, "assistant"), tool = !strcmp(m->role, "tool");
    if (m->n_tool_calls && (!assistant || !m->tool_calls))
        return false;
    for (size_t k = 0; k < m->n_tool_calls; k++) {
        const struct llm_msg_tool_call *c = &m->tool_calls[k];
        if (!c->id || !*c->id || !c->name || !*c->name)
            return false;
        if (c->arguments && c->arguments_len &&
            !llm__is_json_object(d, c->arguments, c->arguments_len))
            return false;
    }
    if (tool != (m->tool_call_id != NULL) || tool != (m->tool_name != NULL))
        return false;
    return !tool || (*m->tool_call_id && *m->tool_name);
}

/* tool_choice is a mode or the name of one of the request's tools. */
static bool tool_choice_valid(const struct llm_request *r)
{
    const char *c = r->tool_choice;
    if (!c || !*c || !strcmp(c, "auto") || !strcmp(c, "none") || !strcmp(c, "required"))
        return true;
    for (size_t i = 0; i < r->n_tools; i++)
        if (!strcmp(r->tools[i].name, c))
            return true;
    return false;
}

/* See llm.h. Checks what every provider needs (a model, at least one message, known roles, well
 * formed tool calls and results), then the adapter writes. On error nothing is appended. */
int llm_build_request(enum llm_provider p, const struct llm_request *r, struct buf *body,
                      char *path, size_t path_cap)
{
    const struct llm_adapter *ad = adapter_of(p);
    json_doc *d = NULL;
    int rc = -EINVAL;
    if (!ad || !r || !r->model || !*r->model || !r->n_messages || !r->messages)
        return -EINVAL;
    for (size_t i = 0; i < r->n_tools; i++)
        if (!r->tools[i].name || !*r->tools[i].name)
            return -EINVAL;
    if (!tool_choice_valid(r))
        return -EINVAL;
    for (size_t i = 0; i < r->n_messages; i++)
        if (!role_valid(r->messages[i].role) || !message_tools_valid(&r->messages[i], &d))
            goto out_doc;
    rc = ad->request(r, body, path, path_cap); /* adapters fail before writing the body */
out_doc:
    json_doc_destroy(d);
    return rc;
}

/* A header line "Name: value" into out[512]; -EINVAL if value could split the header. */
static int header_line(char *out, const char *name, const char *value)
{
    if (strpbrk(value, "\r\n"))
        return -EINVAL;
    int n = snprintf(out, 512, "%s: %s", name, value);
    return n < 0 || n >= 512 ? -EINVAL : 0;
}

/* See llm.h. A NULL or empty key writes no key line (the simulated provider needs none). Returns
 * the number of lines, or -EINVAL for an unknown provider or a key with CR/LF or over ~490
 * bytes. */
int llm_auth_headers(enum llm_provider p, const char *key, char out[2][512])
{
    int n = 0, rc = 0;
    char line[512];
    bool has_key = key && *key;
    switch (p) {
    case LLM_OPENAI:
        if (has_key) {
            if (strlen(key) > 480)
                return -EINVAL;
            snprintf(line, sizeof(line), "Bearer %s", key);
            rc = header_line(out[n++], "Authorization", line);
        }
        break;
    case LLM_ANTHROPIC:
        if (has_key)
            rc = header_line(out[n++], "x-api-key", key);
        if (!rc)
            rc = header_line(out[n++], "anthropic-version", "2023-06-01");
        break;
    case LLM_GEMINI:
        if (has_key)
            rc = header_line(out[n++], "x-goog-api-key", key);
        break;
    default:
        return -EINVAL;
    }
    if (rc) {
        memset(out, 0, 2 * 512); /* never leave a partial key behind */
        return rc;
    }
    return n;
}

static const char *status_type(int status)
{
    if (status == 429)
        return "rate_limit";
    if (status == 529 || status == 503)
        return "overloaded";
    if (status == 401 || status == 403)
        return "auth";
    if (status == 400 || status == 404 || status == 422)
        return "bad_request";
    if (status == 408)
        return "timeout";
    if (status >= 500 && status <= 599)
        return "server_error";
    return "http_error";
}

static bool status_retryable(int status)
{
    return status == 408 || status == 409 || status == 429 || (status >= 500 && status <= 599);
}

/* See llm.h. ev->text and ev->error_type point into thread-local buffers valid until the next
 * llm_parse_error on the same thread; the message is redacted like stream errors. */
void llm_parse_error(enum llm_provider p, int status, const char *body, size_t len,
                     struct llm_event *ev)
{
    static __thread char msgbuf[LLM_ERRMSG_MAX];
    static __thread char typebuf[64];
    const struct llm_adapter *ad = adapter_of(p);
    const char *msg = NULL, *type = NULL;
    size_t msg_len = 0, type_len = 0;
    int retry = -1; /* -1: the body does not say */
    json_doc *d = NULL;

    memset(ev, 0, sizeof(*ev));
    ev->type = LLM_EV_ERROR;
    ev->tool_index = -1;
    ev->http_status = status;
    if (ad && body && len) {
        d = json_doc_create();
        if (json_doc_load(d, body, len) == 0 &&
            ad->error_body(d, &msg, &msg_len, &type, &type_len, &retry) != 0)
            msg = type = NULL;
    }
    if (msg && msg_len)
        ev->len = copy_redacted(msgbuf, sizeof(msgbuf), msg, msg_len);
    else
        ev->len = (size_t)snprintf(msgbuf, sizeof(msgbuf), "HTTP %d", status);
    ev->text = msgbuf;
    if (type && type_len && type_len < sizeof(typebuf)) {
        memcpy(typebuf, type, type_len);
        typebuf[type_len] = '\0';
    } else {
        snprintf(typebuf, sizeof(typebuf), "%s", status_type(status));
    }
    ev->error_type = typebuf;
    ev->retryable = retry >= 0 ? retry : status_retryable(status);
    json_doc_destroy(d);
}
