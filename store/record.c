/* record.c - encoding and decoding of turn records (format in record.h).
 *
 * Payload v1, every integer little endian:
 *   u8 version
 *   (v4 on) u64 system_identifier, str database name: the database the turn belongs to
 *   str conversation_id, user_sub, turn_id, client_msg_id, user_text, answer, finish, currency
 *   i64 started_at_ms, first_token_ms, total_ms, usd_to_inr_micros, cost_micros
 *   usage (5 x u64: input, cached input, cache write, output, reasoning)
 *   u32 n_deltas, then n_deltas x u32
 *   u32 n_calls, then per call: str provider, model, tier, role, status, error; u32 attempt;
 *       i32 http_status; usage; u8 usage_reported; i64 ttft_ms, duration_ms, cost_micros
 *   u32 n_tools, then per tool: str name, arguments, status; u64 result_bytes; u8 cache_hit;
 *       i64 duration_ms, cost_micros
 * v2 appends: str query_type, agent, flags; per call: str agent, prompt_version
 * v3 appends: u32 n_savings, then per saving: str layer, description; i64 amount_micros
 * v5 appends: str trace_id; u32 n_spans, then per span: str span_id, parent_span_id, kind, name,
 *     status, status_message, attributes, events; i64 start_us, end_us
 * v6 appends: per call: str deployment (the capacity deployment of a provisioned call, or "")
 * A str is u32 length (0xFFFFFFFF = NULL) then the bytes and a NUL, so decoded strings point
 * into the record as C strings. */
#include "store/record.h"

#include <errno.h>
#include <string.h>
#include <zlib.h>

#include "base/mem.h"

#define REC_MAGIC 0x314A5254u /* "TRJ1" */
/* 2 appends the route, the flags and each call's agent and prompt; 3 the cache savings; 4 puts
 * the database's identity right after the version; 5 appends the trace; 6 each call's capacity
 * deployment */
#define REC_VERSION 6
#define STR_NULL 0xFFFFFFFFu
#define REC_MAX_TOOLS 4096  /* tool calls in one turn */
#define REC_MAX_SPANS 65536 /* spans in one turn's trace */

/* ---- encoding ---- */

static void put_u32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    buf_append(b, x, 4);
}

static void put_u64(struct buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void put_u8(struct buf *b, uint8_t v)
{
    buf_append(b, &v, 1);
}

static void put_strn(struct buf *b, const char *s, size_t n)
{
    if (!s) {
        put_u32(b, STR_NULL);
        return;
    }
    put_u32(b, (uint32_t)n);
    char *dst = buf_reserve(b, n + 1);
    for (size_t i = 0; i < n; i++)
        dst[i] = s[i] ? s[i] : ' ';
    dst[n] = '\0';
    buf_commit(b, n + 1);
}

static void put_str(struct buf *b, const char *s)
{
    put_strn(b, s, s ? strlen(s) : 0);
}

static void put_usage(struct buf *b, const struct llm_usage *u)
{
    put_u64(b, u->input_tokens);
    put_u64(b, u->cached_input_tokens);
    put_u64(b, u->cache_write_tokens);
    put_u64(b, u->output_tokens);
    put_u64(b, u->reasoning_tokens);
}

/* An empty error was written as NULL by earlier versions: both read back as "". */
static void put_call(struct buf *b, const struct llm_call_record *c)
{
    put_str(b, c->provider);
    put_str(b, c->model);
    put_str(b, c->tier);
    put_str(b, c->role);
    put_str(b, c->status);
    put_str(b, c->error[0] ? c->error : NULL);
    put_u32(b, c->attempt);
    put_u32(b, (uint32_t)c->http_status);
    put_usage(b, &c->usage);
    put_u8(b, c->usage_reported);
    put_u64(b, (uint64_t)c->ttft_ms);
    put_u64(b, (uint64_t)c->duration_ms);
    put_u64(b, (uint64_t)c->cost_micros);
}

static void put_tool(struct buf *b, const struct tool_call_record *c)
{
    put_str(b, c->name);
    put_strn(b, c->arguments_len ? c->arguments : NULL, c->arguments_len);
    put_str(b, c->status);
    put_u64(b, c->result_bytes);
    put_u8(b, c->cache_hit);
    put_u64(b, (uint64_t)c->duration_ms);
    put_u64(b, (uint64_t)c->cost_micros);
}

static void put_span(struct buf *b, const struct span_record *s)
{
    put_str(b, s->span_id);
    put_str(b, s->parent_span_id);
    put_str(b, s->kind);
    put_str(b, s->name);
    put_str(b, s->status);
    put_str(b, s->status_message);
    put_strn(b, s->attributes ? s->attributes : "{}", s->attributes ? s->attributes_len : 2);
    put_strn(b, s->events ? s->events : "[]", s->events ? s->events_len : 2);
    put_u64(b, (uint64_t)s->start_us);
    put_u64(b, (uint64_t)s->end_us);
}

static uint32_t rec_crc(const char *payload, uint32_t len)
{
    uint8_t l[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
    uLong c = crc32(0L, l, 4);
    return (uint32_t)crc32(c, (const Bytef *)payload, len);
}

/* The big parts of a record (texts, delta offsets) exceed the limit on their own: refuse before
 * copying them. The exact size is checked once encoded. */
static bool surely_too_big(const struct store_turn *t)
{
    uint64_t n = (uint64_t)(t->user_text ? t->user_len : 0) +
                 (uint64_t)(t->answer ? t->answer_len : 0) + 4ull * t->n_deltas;
    for (uint32_t i = 0; i < t->n_tools; i++)
        n += t->tools[i].arguments_len;
    for (uint32_t i = 0; i < t->n_spans; i++)
        n += t->spans[i].attributes_len + t->spans[i].events_len;
    return n > REC_MAX_PAYLOAD;
}

/* Append t as one record; see record.h. */
int rec_encode(struct buf *out, const struct store_turn *t)
{
    if (surely_too_big(t))
        return -EMSGSIZE;
    size_t start = buf_size(out);
    buf_reserve(out, REC_HEADER);
    buf_commit(out, REC_HEADER);
    put_u8(out, REC_VERSION);
    put_u64(out, t->db_system_id);
    put_str(out, t->db_name ? t->db_name : "");
    put_str(out, t->conversation_id);
    put_str(out, t->user_sub ? t->user_sub : "");
    put_str(out, t->turn_id);
    put_str(out, t->client_msg_id ? t->client_msg_id : "");
    put_strn(out, t->user_text ? t->user_text : "", t->user_text ? t->user_len : 0);
    put_strn(out, t->answer ? t->answer : "", t->answer ? t->answer_len : 0);
    put_str(out, t->finish_reason);
    put_str(out, t->currency);
    put_u64(out, (uint64_t)t->started_at_ms);
    put_u64(out, (uint64_t)t->first_token_ms);
    put_u64(out, (uint64_t)t->total_ms);
    put_u64(out, (uint64_t)t->usd_to_inr_micros);
    put_u64(out, (uint64_t)t->cost_micros);
    put_usage(out, &t->usage);
    put_u32(out, t->n_deltas);
    for (uint32_t i = 0; i < t->n_deltas; i++)
        put_u32(out, t->delta_ends[i]);
    put_u32(out, t->n_calls);
    for (uint32_t i = 0; i < t->n_calls; i++)
        put_call(out, &t->calls[i]);
    put_u32(out, t->n_tools);
    for (uint32_t i = 0; i < t->n_tools; i++)
        put_tool(out, &t->tools[i]);
    put_str(out, t->query_type ? t->query_type : "");
    put_str(out, t->agent ? t->agent : "");
    put_str(out, t->flags ? t->flags : "");
    for (uint32_t i = 0; i < t->n_calls; i++) {
        put_str(out, t->calls[i].agent);
        put_str(out, t->calls[i].prompt_version);
    }
    put_u32(out, t->n_savings);
    for (uint32_t i = 0; i < t->n_savings; i++) {
        put_str(out, t->savings[i].layer);
        put_str(out, t->savings[i].description);
        put_u64(out, (uint64_t)t->savings[i].amount_micros);
    }
    put_str(out, t->trace_id ? t->trace_id : "");
    put_u32(out, t->n_spans);
    for (uint32_t i = 0; i < t->n_spans; i++)
        put_span(out, &t->spans[i]);
    for (uint32_t i = 0; i < t->n_calls; i++)
        put_str(out, t->calls[i].deployment);

    size_t payload = buf_size(out) - start - REC_HEADER;
    if (payload > REC_MAX_PAYLOAD) {
        buf_truncate(out, start);
        return -EMSGSIZE;
    }
    char *h = buf_begin(out) + start;
    uint32_t len = (uint32_t)payload;
    uint32_t crc = rec_crc(h + REC_HEADER, len);
    uint32_t words[3] = {REC_MAGIC, len, crc};
    for (int w = 0; w < 3; w++)
        for (int k = 0; k < 4; k++)
            h[4 * w + k] = (char)(words[w] >> (8 * k));
    return 0;
}

/* ---- decoding ---- */

struct rd {
    const uint8_t *p;
    size_t n;
    bool bad;
};

static uint32_t get_u32(struct rd *r)
{
    if (r->n < 4) {
        r->bad = true;
        return 0;
    }
    uint32_t v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
                 (uint32_t)r->p[3] << 24;
    r->p += 4;
    r->n -= 4;
    return v;
}

static uint64_t get_u64(struct rd *r)
{
    uint64_t lo = get_u32(r);
    return lo | (uint64_t)get_u32(r) << 32;
}

static uint8_t get_u8(struct rd *r)
{
    if (r->n < 1) {
        r->bad = true;
        return 0;
    }
    r->n--;
    return *r->p++;
}

static const char *get_str(struct rd *r, size_t *len)
{
    uint32_t n = get_u32(r);
    if (len)
        *len = 0;
    if (n == STR_NULL || r->bad)
        return NULL;
    if ((size_t)n + 1 > r->n || r->p[n] != '\0') {
        r->bad = true;
        return NULL;
    }
    const char *s = (const char *)r->p;
    r->p += n + 1;
    r->n -= n + 1;
    if (len)
        *len = n;
    return s;
}

/* A str copied into dst[cap] (NULL -> ""), cut to fit; returns the length kept. */
static size_t get_str_into(struct rd *r, char *dst, size_t cap)
{
    size_t n;
    const char *s = get_str(r, &n);
    if (!s)
        n = 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, s, n);
    dst[n] = '\0';
    return n;
}

static void get_usage(struct rd *r, struct llm_usage *u)
{
    u->input_tokens = get_u64(r);
    u->cached_input_tokens = get_u64(r);
    u->cache_write_tokens = get_u64(r);
    u->output_tokens = get_u64(r);
    u->reasoning_tokens = get_u64(r);
}

/* Check the record at p; see record.h. */
long rec_check(const char *p, size_t n)
{
    struct rd r = {(const uint8_t *)p, n, false};
    if (n < REC_HEADER)
        return 0;
    uint32_t magic = get_u32(&r), len = get_u32(&r), crc = get_u32(&r);
    if (magic != REC_MAGIC || len > REC_MAX_PAYLOAD)
        return -EBADMSG;
    if (n - REC_HEADER < len)
        return 0;
    if (rec_crc(p + REC_HEADER, len) != crc)
        return -EBADMSG;
    return (long)(REC_HEADER + len);
}

static int get_counted(struct rd *r, uint32_t *n, size_t min_each)
{
    *n = get_u32(r);
    if (r->bad || (min_each && *n > r->n / min_each))
        return -EBADMSG;
    return 0;
}

static void get_calls(struct rd *r, struct rec_turn *o)
{
    for (uint32_t i = 0; i < o->t.n_calls && !r->bad; i++) {
        struct llm_call_record *c = &o->calls[i];
        get_str_into(r, c->provider, sizeof(c->provider));
        get_str_into(r, c->model, sizeof(c->model));
        get_str_into(r, c->tier, sizeof(c->tier));
        get_str_into(r, c->role, sizeof(c->role));
        get_str_into(r, c->status, sizeof(c->status));
        get_str_into(r, c->error, sizeof(c->error));
        c->attempt = get_u32(r);
        c->http_status = (int32_t)get_u32(r);
        get_usage(r, &c->usage);
        c->usage_reported = get_u8(r) != 0;
        c->ttft_ms = (int64_t)get_u64(r);
        c->duration_ms = (int64_t)get_u64(r);
        c->cost_micros = (int64_t)get_u64(r);
    }
}

static void get_tools(struct rd *r, struct rec_turn *o)
{
    for (uint32_t i = 0; i < o->t.n_tools && !r->bad; i++) {
        struct tool_call_record *c = &o->tools[i];
        get_str_into(r, c->name, sizeof(c->name));
        c->arguments_len = get_str_into(r, c->arguments, sizeof(c->arguments));
        get_str_into(r, c->status, sizeof(c->status));
        c->result_bytes = get_u64(r);
        c->cache_hit = get_u8(r) != 0;
        c->duration_ms = (int64_t)get_u64(r);
        c->cost_micros = (int64_t)get_u64(r);
    }
}

static void get_spans(struct rd *r, struct rec_turn *o)
{
    for (uint32_t i = 0; i < o->t.n_spans && !r->bad; i++) {
        struct span_record *s = &o->spans[i];
        get_str_into(r, s->span_id, sizeof(s->span_id));
        get_str_into(r, s->parent_span_id, sizeof(s->parent_span_id));
        get_str_into(r, s->kind, sizeof(s->kind));
        get_str_into(r, s->name, sizeof(s->name));
        get_str_into(r, s->status, sizeof(s->status));
        get_str_into(r, s->status_message, sizeof(s->status_message));
        s->attributes = get_str(r, &s->attributes_len);
        s->events = get_str(r, &s->events_len);
        s->start_us = (int64_t)get_u64(r);
        s->end_us = (int64_t)get_u64(r);
        if (!s->attributes || !s->events)
            r->bad = true;
    }
}

/* v5: the trace id and the spans. */
static int get_trace(struct rd *r, struct rec_turn *o)
{
    o->t.trace_id = get_str(r, NULL);
    if (get_counted(r, &o->t.n_spans, 48) < 0 || o->t.n_spans > REC_MAX_SPANS)
        return -EBADMSG;
    o->spans = xcalloc(o->t.n_spans ? o->t.n_spans : 1, sizeof(*o->spans));
    o->t.spans = o->spans;
    get_spans(r, o);
    return 0;
}

static int get_savings(struct rd *r, struct rec_turn *o)
{
    if (get_counted(r, &o->t.n_savings, 17) < 0)
        return -EBADMSG;
    o->savings = xcalloc(o->t.n_savings ? o->t.n_savings : 1, sizeof(*o->savings));
    o->t.savings = o->savings;
    for (uint32_t i = 0; i < o->t.n_savings && !r->bad; i++) {
        struct cache_saving_record *s = &o->savings[i];
        get_str_into(r, s->layer, sizeof(s->layer));
        get_str_into(r, s->description, sizeof(s->description));
        s->amount_micros = (int64_t)get_u64(r);
    }
    return 0;
}

static void get_head(struct rd *r, struct store_turn *t)
{
    t->conversation_id = get_str(r, NULL);
    t->user_sub = get_str(r, NULL);
    t->turn_id = get_str(r, NULL);
    t->client_msg_id = get_str(r, NULL);
    t->user_text = get_str(r, &t->user_len);
    t->answer = get_str(r, &t->answer_len);
    t->finish_reason = get_str(r, NULL);
    t->currency = get_str(r, NULL);
    t->started_at_ms = (int64_t)get_u64(r);
    t->first_token_ms = (int64_t)get_u64(r);
    t->total_ms = (int64_t)get_u64(r);
    t->usd_to_inr_micros = (int64_t)get_u64(r);
    t->cost_micros = (int64_t)get_u64(r);
    get_usage(r, &t->usage);
}

/* The identity at the start of a v3 payload; see record.h. */
int rec_identity(const char *rec, size_t len, uint64_t *system_id, char *name, size_t cap)
{
    if (len < REC_HEADER + 1)
        return -EBADMSG;
    struct rd r = {(const uint8_t *)rec + REC_HEADER, len - REC_HEADER, false};
    uint8_t version = get_u8(&r);
    if (version < 1 || version > REC_VERSION)
        return -EBADMSG;
    if (version < 4)
        return 0;
    *system_id = get_u64(&r);
    get_str_into(&r, name, cap);
    if (r.bad)
        return -EBADMSG;
    return *system_id != 0;
}

/* Decode a checked record; see record.h. */
int rec_decode(const char *rec, size_t len, struct rec_turn *o)
{
    memset(o, 0, sizeof(*o));
    if (len < REC_HEADER + 1)
        return -EBADMSG;
    struct rd r = {(const uint8_t *)rec + REC_HEADER, len - REC_HEADER, false};
    uint8_t version = get_u8(&r);
    if (version < 1 || version > REC_VERSION) /* journals of earlier releases replay */
        return -EBADMSG;
    if (version >= 4) {
        o->t.db_system_id = get_u64(&r);
        o->t.db_name = get_str(&r, NULL);
    }
    get_head(&r, &o->t);
    if (get_counted(&r, &o->t.n_deltas, 4) < 0)
        goto out_bad;
    o->delta_ends = xmalloc((o->t.n_deltas ? o->t.n_deltas : 1) * sizeof(uint32_t));
    for (uint32_t i = 0; i < o->t.n_deltas; i++)
        o->delta_ends[i] = get_u32(&r);
    o->t.delta_ends = o->delta_ends;
    if (get_counted(&r, &o->t.n_calls, 64) < 0)
        goto out_bad;
    o->calls = xcalloc(o->t.n_calls ? o->t.n_calls : 1, sizeof(*o->calls));
    o->t.calls = o->calls;
    get_calls(&r, o);
    /* a tool record is ~2 KiB decoded: bound what a corrupt count can make us allocate */
    if (get_counted(&r, &o->t.n_tools, 32) < 0 || o->t.n_tools > REC_MAX_TOOLS)
        goto out_bad;
    o->tools = xcalloc(o->t.n_tools ? o->t.n_tools : 1, sizeof(*o->tools));
    o->t.tools = o->tools;
    get_tools(&r, o);
    if (version >= 2) {
        o->t.query_type = get_str(&r, NULL);
        o->t.agent = get_str(&r, NULL);
        o->t.flags = get_str(&r, NULL);
        for (uint32_t i = 0; i < o->t.n_calls && !r.bad; i++) {
            get_str_into(&r, o->calls[i].agent, sizeof(o->calls[i].agent));
            get_str_into(&r, o->calls[i].prompt_version, sizeof(o->calls[i].prompt_version));
        }
    }
    if (version >= 3 && get_savings(&r, o) < 0)
        goto out_bad;
    if (version >= 5 && get_trace(&r, o) < 0)
        goto out_bad;
    for (uint32_t i = 0; version >= 6 && i < o->t.n_calls && !r.bad; i++)
        get_str_into(&r, o->calls[i].deployment, sizeof(o->calls[i].deployment));
    if (r.bad || r.n != 0 || !o->t.conversation_id || !o->t.turn_id || !o->t.finish_reason ||
        !o->t.currency)
        goto out_bad;
    return 0;

out_bad:
    rec_turn_free(o);
    return -EBADMSG;
}

/* Free what rec_decode allocated (not the record). */
void rec_turn_free(struct rec_turn *rt)
{
    xfree(rt->delta_ends);
    xfree(rt->calls);
    xfree(rt->tools);
    xfree(rt->savings);
    xfree(rt->spans);
    memset(rt, 0, sizeof(*rt));
}
