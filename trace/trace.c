/* trace.c - a turn's spans as they are built (trace.h).
 *
 * Each span keeps its attributes twice when an OTLP exporter is configured: as members of a
 * JSON object (what PostgreSQL stores and the read API returns) and as OTLP/JSON key-value
 * objects (what the exporter sends). Both are appended as the attribute is set, so the end of a
 * turn only concatenates. */
#include "trace/trace.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/mem.h"
#include "stream/jsonw.h"
#include "trace/redact.h"

struct tspan {
    uint8_t id[8];
    int parent; /* -1: the root */
    char kind[12];
    char name[96];
    int64_t start_us, end_us; /* end 0: still open */
    bool error;
    char msg[160];
    struct buf attrs, oattrs;   /* "k":v,...  and  {"key":"k","value":{...}},... */
    struct buf events, oevents; /* {...},... */
};

struct trace {
    const struct trace_conf *c;
    bool otlp;
    uint8_t trace_id[16];
    uint8_t remote_parent[8];
    bool has_remote;
    uint8_t flags;
    uint64_t rng; /* span ids: splitmix64 from a random seed (one getrandom per trace) */
    char hex[33];
    struct tspan *s;
    int n, cap;
    struct buf tmp;
};

/* Fill c with the defaults; see trace.h. */
void trace_conf_defaults(struct trace_conf *c)
{
    memset(c, 0, sizeof(*c));
    c->capture = TRACE_METADATA;
    c->sample_rate = 1.0;
    c->redact = REDACT_CARD | REDACT_PHONE | REDACT_EMAIL;
    c->retention_days = 14;
    c->otlp_endpoint = "";
    c->service_name = "trilemma";
    c->otlp_queue_spans = 20000;
    c->otlp_batch_ms = 1000;
    c->ttft_default_ms = 3000;
    static const struct {
        const char *t;
        uint32_t ms;
    } d[] = {{"suggestion", 200}, {"chitchat", 1000}, {"policy", 1000}};
    for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
        snprintf(c->ttft_targets[i].query_type, sizeof(c->ttft_targets[i].query_type), "%s",
                 d[i].t);
        c->ttft_targets[i].ms = d[i].ms;
    }
    c->n_ttft_targets = 3;
    c->cost_outlier_factor = 5;
}

/* ---- W3C trace context ---- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1; /* uppercase is invalid in traceparent */
}

static int unhex(const char *s, uint8_t *out, size_t bytes)
{
    bool nonzero = false;
    for (size_t i = 0; i < bytes; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
        nonzero |= out[i] != 0;
    }
    return nonzero ? 0 : -1;
}

/* Parse a traceparent value; see trace.h. */
int trace_parse_traceparent(const char *s, size_t n, struct trace_ctx *out)
{
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    uint8_t ver, flags;
    if (n < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-')
        return -1;
    int vh = hexval(s[0]), vl = hexval(s[1]);
    if (vh < 0 || vl < 0)
        return -1;
    ver = (uint8_t)(vh << 4 | vl);
    if (ver == 0xff || (ver == 0 && n != 55) || (ver > 0 && n > 55 && s[55] != '-'))
        return -1;
    struct trace_ctx c;
    int fh = hexval(s[53]), fl = hexval(s[54]);
    if (unhex(s + 3, c.trace_id, 16) < 0 || unhex(s + 36, c.span_id, 8) < 0 || fh < 0 || fl < 0)
        return -1;
    flags = (uint8_t)(fh << 4 | fl);
    c.flags = flags;
    *out = c;
    return 0;
}

void trace_hex(const uint8_t *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* "00-trace-span-flags"; see trace.h. */
void trace_format_traceparent(const uint8_t trace_id[16], const uint8_t span_id[8], uint8_t flags,
                              char out[56])
{
    char t[33], sp[17], f[3];
    trace_hex(trace_id, 16, t);
    trace_hex(span_id, 8, sp);
    trace_hex(&flags, 1, f);
    snprintf(out, 56, "00-%s-%s-%s", t, sp, f);
}

/* ---- the trace ---- */

int64_t trace_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void random_bytes(uint8_t *p, size_t n)
{
    if (getrandom(p, n, 0) != (ssize_t)n)
        for (size_t i = 0; i < n; i++)
            p[i] = (uint8_t)(trace_now_us() >> (i % 8));
    p[n - 1] |= 1; /* never all zero (invalid in W3C trace context) */
}

/* A new trace with its root span; see trace.h. */
struct trace *trace_begin(const struct trace_conf *c, const struct trace_ctx *parent, bool otlp)
{
    if (!c || c->capture == TRACE_OFF)
        return NULL;
    struct trace *tr = xcalloc(1, sizeof(*tr));
    tr->c = c;
    tr->otlp = otlp;
    tr->flags = 1;
    if (parent) {
        memcpy(tr->trace_id, parent->trace_id, 16);
        memcpy(tr->remote_parent, parent->span_id, 8);
        tr->has_remote = true;
    } else {
        random_bytes(tr->trace_id, 16);
    }
    trace_hex(tr->trace_id, 16, tr->hex);
    random_bytes((uint8_t *)&tr->rng, sizeof(tr->rng));
    trace_span(tr, -1, "turn", "turn");
    return tr;
}

void trace_free(struct trace *tr)
{
    if (!tr)
        return;
    for (int i = 0; i < tr->n; i++) {
        buf_free(&tr->s[i].attrs);
        buf_free(&tr->s[i].oattrs);
        buf_free(&tr->s[i].events);
        buf_free(&tr->s[i].oevents);
    }
    xfree(tr->s);
    buf_free(&tr->tmp);
    xfree(tr);
}

bool trace_full(const struct trace *tr)
{
    return tr && tr->c->capture == TRACE_FULL;
}

const char *trace_id_hex(const struct trace *tr)
{
    return tr ? tr->hex : "";
}

uint32_t trace_span_count(const struct trace *tr)
{
    return tr ? (uint32_t)tr->n : 0;
}

/* A span id: never zero (invalid in W3C trace context). */
static void next_span_id(struct trace *tr, uint8_t id[8])
{
    uint64_t z = (tr->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    for (int i = 0; i < 8; i++)
        id[i] = (uint8_t)(z >> (8 * i));
    id[7] |= 1;
}

/* Start a span at start_us; see trace.h. */
int trace_span_at(struct trace *tr, int parent, const char *kind, const char *name,
                  int64_t start_us)
{
    if (!tr)
        return -1;
    if (tr->n == tr->cap) {
        tr->cap = tr->cap ? 2 * tr->cap : 16;
        tr->s = xrealloc(tr->s, (size_t)tr->cap * sizeof(*tr->s));
    }
    struct tspan *s = &tr->s[tr->n];
    memset(s, 0, sizeof(*s));
    next_span_id(tr, s->id);
    s->parent = parent >= 0 && parent < tr->n ? parent : (tr->n ? 0 : -1);
    snprintf(s->kind, sizeof(s->kind), "%s", kind);
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->start_us = start_us;
    return tr->n++;
}

int trace_span(struct trace *tr, int parent, const char *kind, const char *name)
{
    return tr ? trace_span_at(tr, parent, kind, name, trace_now_us()) : -1;
}

static struct tspan *span_of(struct trace *tr, int span)
{
    return tr && span >= 0 && span < tr->n ? &tr->s[span] : NULL;
}

/* Drop a character cut short at the end of s (PostgreSQL refuses a text with half of one). */
static void utf8_trim(char *s)
{
    size_t n = strlen(s), i = n, cont = 0;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80 && cont < 3)
        i--, cont++;
    if (i == 0 || (unsigned char)s[i - 1] < 0x80)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t want = (lead & 0xE0) == 0xC0   ? 1
                  : (lead & 0xF0) == 0xE0 ? 2
                  : (lead & 0xF8) == 0xF0 ? 3
                                          : 0;
    if (cont < want)
        s[i - 1] = '\0';
}

/* End a span; see trace.h. An error message is redacted like content (it may quote input). */
void trace_end_at(struct trace *tr, int span, int64_t end_us, const char *error)
{
    struct tspan *s = span_of(tr, span);
    if (!s || s->end_us)
        return;
    s->end_us = end_us < 0 ? trace_now_us() : end_us;
    if (s->end_us < s->start_us)
        s->end_us = s->start_us;
    if (error) {
        s->error = true;
        buf_reset(&tr->tmp);
        redact_apply(tr->c->redact, error, strlen(error), &tr->tmp);
        snprintf(s->msg, sizeof(s->msg), "%.*s", (int)buf_size(&tr->tmp), buf_begin(&tr->tmp));
        utf8_trim(s->msg); /* cut here, or by the caller (pt_tool_end quotes 190 bytes) */
    }
}

void trace_end(struct trace *tr, int span, const char *error)
{
    trace_end_at(tr, span, -1, error);
}

void trace_rename(struct trace *tr, int span, const char *name)
{
    struct tspan *s = span_of(tr, span);
    if (s)
        snprintf(s->name, sizeof(s->name), "%s", name);
}

/* ---- attributes ---- */

static void sep(struct buf *b)
{
    if (buf_size(b))
        buf_append(b, ",", 1);
}

/* A JSON string; NUL bytes become spaces (PostgreSQL's jsonb refuses \u0000). */
static void json_str(struct buf *b, const char *s, size_t n)
{
    buf_append(b, "\"", 1);
    const char *end = s + n;
    while (s < end) {
        const char *z = memchr(s, '\0', (size_t)(end - s));
        json_escape(b, s, (size_t)((z ? z : end) - s));
        if (!z)
            break;
        buf_append(b, " ", 1);
        s = z + 1;
    }
    buf_append(b, "\"", 1);
}

/* key:value into both forms. sv: the string (TA_STR) of n bytes. */
static void put_attr(struct trace *tr, struct buf *plain, struct buf *otlp, const char *key,
                     enum trace_type t, const char *sv, size_t n, int64_t iv)
{
    sep(plain);
    json_str(plain, key, strlen(key));
    buf_append(plain, ":", 1);
    if (t == TA_STR)
        json_str(plain, sv, n);
    else if (t == TA_BOOL)
        buf_append_str(plain, iv ? "true" : "false");
    else
        buf_printf(plain, "%" PRId64, iv);
    if (!tr->otlp || !otlp)
        return;
    sep(otlp);
    buf_append_str(otlp, "{\"key\":");
    json_str(otlp, key, strlen(key));
    if (t == TA_STR) {
        buf_append_str(otlp, ",\"value\":{\"stringValue\":");
        json_str(otlp, sv, n);
        buf_append_str(otlp, "}}");
    } else if (t == TA_BOOL) {
        buf_printf(otlp, ",\"value\":{\"boolValue\":%s}}", iv ? "true" : "false");
    } else { /* OTLP/JSON: 64-bit integers as decimal strings */
        buf_printf(otlp, ",\"value\":{\"intValue\":\"%" PRId64 "\"}}", iv);
    }
}

void trace_strn(struct trace *tr, int span, const char *key, const char *v, size_t n)
{
    struct tspan *s = span_of(tr, span);
    if (s && v)
        put_attr(tr, &s->attrs, &s->oattrs, key, TA_STR, v, n, 0);
}

void trace_str(struct trace *tr, int span, const char *key, const char *v)
{
    trace_strn(tr, span, key, v, v ? strlen(v) : 0);
}

void trace_int(struct trace *tr, int span, const char *key, int64_t v)
{
    struct tspan *s = span_of(tr, span);
    if (s)
        put_attr(tr, &s->attrs, &s->oattrs, key, TA_INT, NULL, 0, v);
}

void trace_bool(struct trace *tr, int span, const char *key, bool v)
{
    struct tspan *s = span_of(tr, span);
    if (s)
        put_attr(tr, &s->attrs, &s->oattrs, key, TA_BOOL, NULL, 0, v);
}

/* A string array: a JSON array, and an OTLP arrayValue. */
void trace_strs(struct trace *tr, int span, const char *key, const char *const *v, size_t n)
{
    struct tspan *s = span_of(tr, span);
    if (!s)
        return;
    sep(&s->attrs);
    json_str(&s->attrs, key, strlen(key));
    buf_append(&s->attrs, ":[", 2);
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_append(&s->attrs, ",", 1);
        json_str(&s->attrs, v[i], strlen(v[i]));
    }
    buf_append(&s->attrs, "]", 1);
    if (!tr->otlp)
        return;
    sep(&s->oattrs);
    buf_append_str(&s->oattrs, "{\"key\":");
    json_str(&s->oattrs, key, strlen(key));
    buf_append_str(&s->oattrs, ",\"value\":{\"arrayValue\":{\"values\":[");
    for (size_t i = 0; i < n; i++) {
        buf_append_str(&s->oattrs, i ? ",{\"stringValue\":" : "{\"stringValue\":");
        json_str(&s->oattrs, v[i], strlen(v[i]));
        buf_append(&s->oattrs, "}", 1);
    }
    buf_append_str(&s->oattrs, "]}}}");
}

/* Content: only at capture full, and redacted before it is kept anywhere. */
void trace_content(struct trace *tr, int span, const char *key, const char *v, size_t n)
{
    struct tspan *s = span_of(tr, span);
    if (!s || !v || tr->c->capture != TRACE_FULL)
        return;
    struct buf r = {0};
    redact_apply(tr->c->redact, v, n, &r);
    put_attr(tr, &s->attrs, &s->oattrs, key, TA_STR, buf_begin(&r), buf_size(&r), 0);
    buf_free(&r);
}

/* An event with attributes; see trace.h. */
void trace_event(struct trace *tr, int span, const char *name, int64_t time_us,
                 const struct trace_attr *a, size_t n)
{
    struct tspan *s = span_of(tr, span);
    if (!s)
        return;
    int64_t t = time_us < 0 ? trace_now_us() : time_us;
    sep(&s->events);
    buf_append_str(&s->events, "{\"name\":");
    json_str(&s->events, name, strlen(name));
    buf_printf(&s->events, ",\"time_unix_us\":%" PRId64 ",\"attributes\":{", t);
    struct buf members = {0}, omembers = {0};
    for (size_t i = 0; i < n; i++)
        put_attr(tr, &members, &omembers, a[i].key, a[i].type, a[i].s, a[i].s ? strlen(a[i].s) : 0,
                 a[i].i);
    buf_append(&s->events, buf_begin(&members), buf_size(&members));
    buf_append_str(&s->events, "}}");
    if (tr->otlp) {
        sep(&s->oevents);
        buf_printf(&s->oevents, "{\"timeUnixNano\":\"%" PRId64 "000\",\"name\":", t);
        json_str(&s->oevents, name, strlen(name));
        buf_append_str(&s->oevents, ",\"attributes\":[");
        buf_append(&s->oevents, buf_begin(&omembers), buf_size(&omembers));
        buf_append_str(&s->oevents, "]}");
    }
    buf_free(&members);
    buf_free(&omembers);
}

void trace_traceparent(const struct trace *tr, int span, char out[56])
{
    out[0] = '\0';
    if (!tr || span < 0 || span >= tr->n)
        return;
    trace_format_traceparent(tr->trace_id, tr->s[span].id, tr->flags, out);
}

bool trace_has_error(const struct trace *tr)
{
    for (int i = 0; tr && i < tr->n; i++)
        if (tr->s[i].error)
            return true;
    return false;
}

/* ---- output ---- */

static void close_open(struct trace *tr)
{
    int64_t now = trace_now_us();
    for (int i = tr->n - 1; i >= 0; i--) /* children first: a parent ends after them */
        if (!tr->s[i].end_us)
            trace_end_at(tr, i, now, NULL);
}

/* The spans as store records; see trace.h. */
uint32_t trace_records(struct trace *tr, struct buf *text, struct span_record **out)
{
    *out = NULL;
    if (!tr)
        return 0;
    close_open(tr);
    struct span_record *r = xcalloc((size_t)tr->n, sizeof(*r));
    size_t *off = xmalloc((size_t)tr->n * 2 * sizeof(size_t));
    size_t base = buf_size(text);
    for (int i = 0; i < tr->n; i++) {
        const struct tspan *s = &tr->s[i];
        off[2 * i] = buf_size(text);
        buf_append(text, "{", 1);
        buf_append(text, buf_begin(&s->attrs), buf_size(&s->attrs));
        buf_append(text, "}", 1);
        r[i].attributes_len = buf_size(text) - off[2 * i];
        off[2 * i + 1] = buf_size(text);
        buf_append(text, "[", 1);
        buf_append(text, buf_begin(&s->events), buf_size(&s->events));
        buf_append(text, "]", 1);
        r[i].events_len = buf_size(text) - off[2 * i + 1];
        trace_hex(s->id, 8, r[i].span_id);
        if (s->parent >= 0)
            trace_hex(tr->s[s->parent].id, 8, r[i].parent_span_id);
        snprintf(r[i].kind, sizeof(r[i].kind), "%s", s->kind);
        snprintf(r[i].name, sizeof(r[i].name), "%s", s->name);
        snprintf(r[i].status, sizeof(r[i].status), "%s", s->error ? "error" : "ok");
        snprintf(r[i].status_message, sizeof(r[i].status_message), "%s", s->msg);
        r[i].start_us = s->start_us;
        r[i].end_us = s->end_us;
    }
    (void)base;
    for (int i = 0; i < tr->n; i++) { /* text may have moved while it grew */
        r[i].attributes = buf_begin(text) + off[2 * i];
        r[i].events = buf_begin(text) + off[2 * i + 1];
    }
    xfree(off);
    *out = r;
    return (uint32_t)tr->n;
}

/* OTLP span kinds: the turn is the server side of the client's request, model and tool calls
 * are client calls, the rest internal. */
static int otlp_kind(const char *kind)
{
    if (!strcmp(kind, "turn"))
        return 2; /* SPAN_KIND_SERVER */
    if (!strcmp(kind, "model") || !strcmp(kind, "tool"))
        return 3; /* SPAN_KIND_CLIENT */
    return 1;     /* SPAN_KIND_INTERNAL */
}

/* The spans in OTLP/JSON; see trace.h. */
void trace_otlp_spans(struct trace *tr, struct buf *out)
{
    if (!tr)
        return;
    close_open(tr);
    char id[17], parent[17];
    for (int i = 0; i < tr->n; i++) {
        const struct tspan *s = &tr->s[i];
        if (i)
            buf_append(out, ",", 1);
        trace_hex(s->id, 8, id);
        if (s->parent >= 0)
            trace_hex(tr->s[s->parent].id, 8, parent);
        else if (tr->has_remote)
            trace_hex(tr->remote_parent, 8, parent);
        else
            parent[0] = '\0';
        buf_printf(out, "{\"traceId\":\"%s\",\"spanId\":\"%s\",", tr->hex, id);
        if (parent[0])
            buf_printf(out, "\"parentSpanId\":\"%s\",", parent);
        buf_append_str(out, "\"name\":");
        json_str(out, s->name, strlen(s->name));
        buf_printf(out,
                   ",\"kind\":%d,\"startTimeUnixNano\":\"%" PRId64 "000\","
                   "\"endTimeUnixNano\":\"%" PRId64 "000\",\"attributes\":[",
                   otlp_kind(s->kind), s->start_us, s->end_us);
        buf_append_str(out, "{\"key\":\"trilemma.span.kind\",\"value\":{\"stringValue\":");
        json_str(out, s->kind, strlen(s->kind));
        buf_append_str(out, "}}");
        if (buf_size(&s->oattrs))
            buf_append(out, ",", 1);
        buf_append(out, buf_begin(&s->oattrs), buf_size(&s->oattrs));
        buf_append_str(out, "],\"events\":[");
        buf_append(out, buf_begin(&s->oevents), buf_size(&s->oevents));
        buf_append_str(out, "],\"status\":{");
        if (s->error) { /* STATUS_CODE_ERROR */
            buf_append_str(out, "\"code\":2,\"message\":");
            json_str(out, s->msg, strlen(s->msg));
        } else {
            buf_append_str(out, "\"code\":1"); /* STATUS_CODE_OK */
        }
        buf_append_str(out, "}}");
    }
}
