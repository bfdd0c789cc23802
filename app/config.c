/* config.c - defaults, a strict INI reader on top of inih, environment overrides and the
 * cross-field checks. Every setter works on one key and leaves the config untouched on error;
 * the file and environment loaders work on a copy, so a failed load changes nothing.
 *
 * The file goes through base/ini_strict (inih over our own strict line reader, which counts
 * physical lines and rejects what inih would quietly accept: over-long lines, NUL bytes,
 * indented continuation lines, ':' separators); this file adds the known sections and keys.
 *
 * Error messages name the key and never contain a value: values include jwt_secret and
 * DATABASE_URL, and error text ends up in logs. */
#include "app/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/ini_strict.h"
#include "base/log.h"
#include "base/mem.h"
#include "store/record.h"

enum key_kind {
    K_U32,
    K_INT,
    K_STR,
    K_LISTEN,
    K_ADMIN_LISTEN,
    K_ORIGINS,
    K_LEVEL,
    K_CIDRS,
    K_BOOL,
    K_U64 /* min..max are 0..BUDGET_MICROS_MAX */
};

struct key_def {
    const char *section;
    const char *name;
    enum key_kind kind;
    size_t off;  /* offsetof the field in struct config */
    size_t size; /* K_STR: sizeof the field */
    uint32_t min, max;
    const char *why; /* appended to a range error, or NULL */
};

#define U32(sec, key, lo, hi)                                                                      \
    {                                                                                              \
        sec, #key, K_U32, offsetof(struct config, key), 0, lo, hi, NULL                            \
    }
#define U32_WHY(sec, key, lo, hi, why)                                                             \
    {                                                                                              \
        sec, #key, K_U32, offsetof(struct config, key), 0, lo, hi, why                             \
    }

/* A turn is stored as one record of at most REC_MAX_PAYLOAD (64 MiB): its user text and an
 * answer of max_tokens tokens (a generous 60 bytes each, plus 4 for its delta offset) stay within
 * half of it. An answer that defies the estimate is still refused by rec_encode (-EMSGSIZE):
 * that one turn fails to be stored, nothing else. */
#define MAX_TEXT_BYTES_CAP (16u << 20)
#define MAX_TOKENS_CAP 262144u
#define RECORD_WHY "a turn must fit one stored record of 64 MiB"
_Static_assert((uint64_t)MAX_TEXT_BYTES_CAP + (uint64_t)MAX_TOKENS_CAP * 64 <= REC_MAX_PAYLOAD / 2,
               "the caps of max_text_bytes and max_tokens must keep a turn within one record");
_Static_assert(REC_MAX_PAYLOAD == 64u << 20, "RECORD_WHY names the record limit");

#define BOOL(sec, name, field)                                                                     \
    {                                                                                              \
        sec, name, K_BOOL, offsetof(struct config, field), 0, 0, 0, NULL                           \
    }
#define U32F(sec, name, field, lo, hi)                                                             \
    {                                                                                              \
        sec, name, K_U32, offsetof(struct config, field), 0, lo, hi, NULL                          \
    }

/* A spend limit in micros of the [pricing] currency: at most a trillion units. */
#define BUDGET_MICROS_MAX 1000000000000000000ull
#define U64F(sec, name, field)                                                                     \
    {                                                                                              \
        sec, name, K_U64, offsetof(struct config, field), 0, 0, 0, NULL                            \
    }

#define STR(sec, key)                                                                              \
    {                                                                                              \
        sec, #key, K_STR, offsetof(struct config, key), sizeof(((struct config *)0)->key), 0, 0,   \
            NULL                                                                                   \
    }

#define TSTR(key, field)                                                                           \
    {                                                                                              \
        "trace", key, K_STR, offsetof(struct config, field), sizeof(((struct config *)0)->field),  \
            0, 0, NULL                                                                             \
    }
#define TU32(key, field, lo, hi)                                                                   \
    {                                                                                              \
        "trace", key, K_U32, offsetof(struct config, field), 0, lo, hi, NULL                       \
    }

static const struct key_def keys[] = {
    {"server", "listen", K_LISTEN, 0, 0, 0, 0, NULL},
    {"server", "admin_listen", K_ADMIN_LISTEN, 0, 0, 0, 0, NULL},
    {"server", "workers", K_INT, offsetof(struct config, workers), 0, 0, 1024, NULL},
    STR("server", web_root),
    U32("server", max_connections, 1, 10000000),
    U32("server", max_connections_per_ip, 1, 10000000),
    U32("server", connection_reserve, 0, 10000000),
    U32("server", max_header_bytes, 1024, 1048576),
    U32("server", handshake_timeout_ms, 10, 3600000),
    U32("server", drain_timeout_ms, 0, 3600000),
    {"server", "trusted_proxies", K_CIDRS, 0, 0, 0, 0, NULL},
    U32("websocket", max_message_bytes, 125, 67108864),
    U32("websocket", ping_interval_ms, 10, 86400000),
    U32("websocket", idle_timeout_ms, 10, 86400000),
    U32("websocket", close_timeout_ms, 10, 600000),
    U32("websocket", outbound_limit_bytes, 4096, 1073741824),
    U32_WHY("session", max_text_bytes, 1, MAX_TEXT_BYTES_CAP, RECORD_WHY),
    U32("session", rate_messages, 1, 1000000),
    U32("session", rate_window_ms, 1, 86400000),
    U32("session", echo_delay_ms, 0, 60000),
    U32("session", max_turns_per_user, 0, 1000000),
    U32("session", turns_per_minute_per_user, 0, 1000000),
    U32("session", max_turns_per_ip, 0, 1000000),
    U32("session", turns_per_minute_per_ip, 0, 1000000),
    U32("session", history_max_bytes, 1024, 1073741824),
    U32("session", history_budget_bytes, 65536, 4294967295u),
    U32("session", max_session_age_s, 1, 31536000),
    U32("session", detach_grace_ms, 0, 600000),
    U32("session", detach_buffer_bytes, 1024, 67108864),
    U32("session", turn_lease_ms, 300, 600000),
    U32("session", resume_wait_ms, 0, 3600000),
    STR("auth", jwt_secret),
    STR("auth", jwt_issuer),
    STR("auth", jwt_audience),
    BOOL("auth", "jwt_require_exp", jwt_require_exp),
    U32("auth", jwt_max_age_s, 0, 31536000),
    U32("auth", jwt_leeway_s, 0, 300),
    {"auth", "allowed_origins", K_ORIGINS, 0, 0, 0, 0, NULL},
    {"log", "level", K_LEVEL, 0, 0, 0, 0, NULL},
    STR("model", model),
    STR("model", fallbacks),
    STR("model", system_prompt),
    U32_WHY("model", max_tokens, 1, MAX_TOKENS_CAP, RECORD_WHY),
    U32("model", max_retries, 0, 10),
    U32("model", retry_base_ms, 1, 60000),
    U32("model", connect_timeout_ms, 10, 600000),
    U32("model", first_token_timeout_ms, 10, 3600000),
    U32("model", stall_timeout_ms, 10, 3600000),
    U32("model", history_messages, 0, 1000),
    STR("providers", openai_base_url),
    STR("providers", anthropic_base_url),
    STR("providers", gemini_base_url),
    STR("pricing", price_file),
    STR("pricing", currency),
    STR("pricing", usd_to_inr),
    STR("tools", tools_file),
    STR("orchestrator", agents_file),
    BOOL("cache", "exact", cache_exact),
    BOOL("cache", "exact_shared", cache_exact_shared),
    U32F("cache", "exact_lru_bytes", cache_exact_lru_bytes, 0, 1u << 30),
    {"cache", "words_file", K_STR, offsetof(struct config, cache_words_file),
     sizeof(((struct config *)0)->cache_words_file), 0, 0, NULL},
    U32F("cache", "lookup_timeout_ms", cache_lookup_timeout_ms, 1, 60000),
    BOOL("cache", "tool", cache_tool),
    BOOL("cache", "tool_shared", cache_tool_shared),
    U32F("cache", "tool_lru_bytes", cache_tool_lru_bytes, 0, 1u << 30),
    U32F("cache", "tool_max_stale_s", cache_tool_max_stale_s, 0, 86400),
    U32F("cache", "shared_writes_max", cache_wr_max, 0, 4096),
    U32F("cache", "shared_write_bytes_max", cache_wr_bytes_max, 0, 1u << 30),
    U32F("cache", "shared_entry_max_bytes", cache_entry_max, 0, 1u << 30),
    {"cache", "embeddings_url", K_STR, offsetof(struct config, cache_embeddings_url),
     sizeof(((struct config *)0)->cache_embeddings_url), 0, 0, NULL},
    {"cache", "embeddings_model", K_STR, offsetof(struct config, cache_embeddings_model),
     sizeof(((struct config *)0)->cache_embeddings_model), 0, 0, NULL},
    U32F("cache", "embeddings_timeout_ms", cache_embeddings_timeout_ms, 1, 60000),
    U32F("cache", "semantic_max_entries", cache_semantic_max_entries, 1, 1000000),
    U32F("cache", "semantic_sync_ms", cache_semantic_sync_ms, 100, 3600000),
    {"cache", "catalog_version", K_STR, offsetof(struct config, cache_catalog_version),
     sizeof(((struct config *)0)->cache_catalog_version), 0, 0, NULL},
    STR("store", journal_dir),
    U32("store", journal_max_bytes, 65536, 4294967295u),
    U32("store", batches_in_flight, 1, 16),
    TSTR("capture", trace_capture),
    TSTR("sample_rate", trace_sample_rate),
    TSTR("redact", trace_redact),
    TU32("retention_days", trace_retention_days, 0, 3650),
    TSTR("otlp_endpoint", trace_otlp_endpoint),
    TU32("otlp_queue_spans", trace_otlp_queue_spans, 1, 10000000),
    TSTR("ttft_targets", trace_ttft_targets),
    TU32("ttft_target_ms", trace_ttft_target_ms, 1, 3600000),
    TU32("cost_outlier_factor", trace_cost_outlier_factor, 0, 1000000),
    U64F("budget", "user_daily_micros", budget_user_daily_micros),
    U64F("budget", "deployment_daily_micros", budget_deployment_daily_micros),
    U64F("budget", "turn_max_micros", budget_turn_max_micros),
    U32F("budget", "refresh_ms", budget_refresh_ms, 100, 3600000),
    U32F("capacity", "pods", capacity_pods, 0, 100000),
    U32F("capacity", "refresh_ms", capacity_refresh_ms, 100, 3600000),
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char *const sections[] = {"server", "websocket", "session", "auth",   "log",
                                       "model",  "providers", "pricing", "tools",  "orchestrator",
                                       "store",  "cache",     "trace",   "budget", "capacity"};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* See config.h. Zeroes everything first, so strings and the origin list start empty. */
void config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    strcpy(c->listen_host, "0.0.0.0");
    c->listen_port = 8080;
    c->workers = 0;
    strcpy(c->web_root, "web");
    c->max_connections = 20000;
    c->max_connections_per_ip = 1024;
    c->connection_reserve = CONFIG_RESERVE_AUTO;
    c->max_header_bytes = 8192;
    c->handshake_timeout_ms = 10000;
    c->drain_timeout_ms = 25000;
    c->max_message_bytes = 65536;
    c->ping_interval_ms = 25000;
    c->idle_timeout_ms = 120000;
    c->close_timeout_ms = 5000;
    c->outbound_limit_bytes = 1048576;
    c->max_text_bytes = 16000;
    c->rate_messages = 20;
    c->rate_window_ms = 10000;
    c->echo_delay_ms = 30;
    c->max_turns_per_user = 4;
    c->turns_per_minute_per_user = 60;
    c->max_turns_per_ip = 32;
    c->turns_per_minute_per_ip = 300;
    c->history_max_bytes = 65536;
    c->history_budget_bytes = 256u << 20;
    c->max_session_age_s = 86400;
    c->jwt_require_exp = true;
    c->jwt_leeway_s = 30;
    c->detach_grace_ms = 15000;
    c->detach_buffer_bytes = 262144;
    c->turn_lease_ms = 10000;
    c->resume_wait_ms = 60000;
    c->log_level = LOG_INFO;
    c->max_tokens = 1024;
    c->max_retries = 2;
    c->retry_base_ms = 250;
    c->connect_timeout_ms = 5000;
    c->first_token_timeout_ms = 30000;
    c->stall_timeout_ms = 30000;
    c->history_messages = 20;
    strcpy(c->system_prompt, "You are a helpful shopping assistant. Answer briefly.");
    strcpy(c->openai_base_url, "https://api.openai.com/v1");
    strcpy(c->anthropic_base_url, "https://api.anthropic.com");
    strcpy(c->gemini_base_url, "https://generativelanguage.googleapis.com");
    strcpy(c->price_file, "config/prices.csv");
    strcpy(c->currency, "INR");
    strcpy(c->usd_to_inr, "84.0");
    strcpy(c->journal_dir, ".run/journal");
    c->journal_max_bytes = 64u << 20;
    c->batches_in_flight = 2;
    c->cache_exact = true;
    c->cache_exact_shared = true;
    c->cache_exact_lru_bytes = 8u << 20;
    c->cache_lookup_timeout_ms = 150;
    c->cache_tool = true;
    c->cache_tool_shared = false;
    c->cache_tool_lru_bytes = 16u << 20;
    c->cache_tool_max_stale_s = 60;
    c->cache_wr_max = 32;
    c->cache_wr_bytes_max = 8u << 20;
    c->cache_entry_max = 1u << 20;
    strcpy(c->trace_capture, "metadata");
    strcpy(c->trace_sample_rate, "1");
    strcpy(c->trace_redact, "card,phone,email");
    c->trace_retention_days = 14;
    c->trace_otlp_queue_spans = 20000;
    strcpy(c->trace_ttft_targets, "suggestion:200,chitchat:1000,policy:1000");
    c->trace_ttft_target_ms = 3000;
    c->trace_cost_outlier_factor = 5;
    c->budget_refresh_ms = 30000;
    c->capacity_refresh_ms = 10000;
    strcpy(c->cache_embeddings_model, "text-embedding-3-small");
    c->cache_embeddings_timeout_ms = 140;
    c->cache_semantic_max_entries = 10000;
    c->cache_semantic_sync_ms = 5000;
}

static bool known_section(const char *name)
{
    for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
        if (strcmp(sections[i], name) == 0)
            return true;
    return false;
}

static int find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Decimal digits only: no sign, no spaces, no base prefix, no unit suffix. */
static bool parse_uint(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > max)
            return false;
    }
    if (v < min)
        return false;
    *out = (uint32_t)v;
    return true;
}

static bool is_hostname(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 253 || h[0] == '-' || h[0] == '.')
        return false;
    for (; *h; h++)
        if (!isalnum((unsigned char)*h) && *h != '-' && *h != '.')
            return false;
    return true;
}

/* HOST:PORT, [V6]:PORT or :PORT into host (cap bytes, no brackets) and port. Hostnames are
 * checked for shape only (letters, digits, '-', '.'); resolving them is the listener's business.
 * IPv6 zone ids ("fe80::1%eth0") are not accepted. Returns 0 or -1 (nothing written). */
static int parse_host_port(const char *value, char *out_host, size_t cap, uint16_t *out_port)
{
    char host[256];
    const char *port;
    uint32_t p;

    if (value[0] == '[') {
        const char *end = strchr(value, ']');
        if (!end || end[1] != ':' || (size_t)(end - value - 1) >= sizeof(host))
            return -1;
        memcpy(host, value + 1, (size_t)(end - value - 1));
        host[end - value - 1] = '\0';
        unsigned char a6[16];
        if (inet_pton(AF_INET6, host, a6) != 1)
            return -1;
        port = end + 2;
    } else {
        const char *colon = strchr(value, ':');
        /* one colon only: an unbracketed IPv6 address is ambiguous */
        if (!colon || strchr(colon + 1, ':') || (size_t)(colon - value) >= sizeof(host))
            return -1;
        memcpy(host, value, (size_t)(colon - value));
        host[colon - value] = '\0';
        unsigned char a4[4];
        if (host[0] == '\0')
            strcpy(host, "0.0.0.0");
        else if (!is_hostname(host))
            return -1;
        else if (host[strspn(host, "0123456789.")] == '\0' && inet_pton(AF_INET, host, a4) != 1)
            return -1; /* looks like an IPv4 address, so it must be one */
        port = colon + 1;
    }
    if (strlen(port) > 5 || !parse_uint(port, 0, 65535, &p) || strlen(host) >= cap)
        return -1;
    strcpy(out_host, host);
    *out_port = (uint16_t)p;
    return 0;
}

/* See config.h. */
int config_parse_listen(struct config *c, const char *value)
{
    return parse_host_port(value, c->listen_host, sizeof(c->listen_host), &c->listen_port);
}

/* admin_listen: HOST:PORT like listen, or "off" (no admin listener). */
static int set_admin_listen(struct config *c, const char *value, char *err, size_t errlen)
{
    if (strcmp(value, "off") == 0) {
        c->admin_off = true;
        c->admin_set = true;
        return 0;
    }
    if (parse_host_port(value, c->admin_host, sizeof(c->admin_host), &c->admin_port) < 0) {
        seterr(err, errlen,
               "bad value for 'admin_listen': expected HOST:PORT, [IPV6]:PORT, :PORT or off, "
               "port 0..65535");
        return -1;
    }
    c->admin_off = false;
    c->admin_set = true;
    return 0;
}

/* scheme://host[:port]: a letter-led scheme, a non-empty authority, no path/query/userinfo. */
static bool is_origin(const char *s, size_t n)
{
    size_t i = 0;
    if (n == 0 || !isalpha((unsigned char)s[0]))
        return false;
    while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.'))
        i++;
    if (n - i <= 3 || memcmp(s + i, "://", 3) != 0)
        return false;
    for (i += 3; i < n; i++)
        if (strchr("/?#@\\", s[i]) || (unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return false;
    return true;
}

static int set_origins(struct config *c, const char *value, char *err, size_t errlen)
{
    char list[CONFIG_MAX_ORIGINS][256];
    int n = 0;
    const char *p = value;

    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && isspace((unsigned char)*p))
            p++, len--;
        while (len > 0 && isspace((unsigned char)p[len - 1]))
            len--;
        if (n == CONFIG_MAX_ORIGINS) {
            seterr(err, errlen, "bad value for 'allowed_origins': more than %d origins",
                   CONFIG_MAX_ORIGINS);
            return -1;
        }
        if (len >= sizeof(list[0]) || !is_origin(p, len)) {
            seterr(err, errlen,
                   "bad value for 'allowed_origins': entry %d: expected scheme://host[:port] "
                   "(no path, at most %zu bytes)",
                   n + 1, sizeof(list[0]) - 1);
            return -1;
        }
        memcpy(list[n], p, len);
        list[n++][len] = '\0';
        if (!end)
            break;
        p = end + 1;
    }
    memcpy(c->allowed_origins, list, sizeof(list[0]) * (size_t)n);
    c->num_allowed_origins = n;
    return 0;
}

static int set_string(struct config *c, const struct key_def *k, const char *value, char *err,
                      size_t errlen)
{
    size_t n = strlen(value);
    if (n >= k->size) {
        seterr(err, errlen, "bad value for '%s': too long (at most %zu bytes)", k->name,
               k->size - 1);
        return -1;
    }
    if (n >= 2 && (value[0] == '"' || value[0] == '\'') && value[n - 1] == value[0]) {
        seterr(err, errlen, "bad value for '%s': quotes are not stripped; write the value bare",
               k->name);
        return -1;
    }
    for (const char *s = value; *s; s++) {
        if ((unsigned char)*s < ' ' || *s == 0x7f) {
            seterr(err, errlen, "bad value for '%s': control character", k->name);
            return -1;
        }
    }
    memcpy((char *)c + k->off, value, n + 1);
    return 0;
}

static int set_key(struct config *c, const struct key_def *k, const char *value, char *err,
                   size_t errlen)
{
    uint32_t v;
    enum log_level lvl;

    if (value[0] == '\0') {
        seterr(err, errlen, "bad value for '%s': empty value", k->name);
        return -1;
    }
    switch (k->kind) {
    case K_U32:
    case K_INT:
        if (!parse_uint(value, k->min, k->max, &v)) {
            seterr(err, errlen, "bad value for '%s': expected an integer %u..%u%s%s%s", k->name,
                   (unsigned)k->min, (unsigned)k->max, k->why ? " (" : "", k->why ? k->why : "",
                   k->why ? ")" : "");
            return -1;
        }
        if (k->kind == K_INT)
            *(int *)((char *)c + k->off) = (int)v;
        else
            *(uint32_t *)((char *)c + k->off) = v;
        return 0;
    case K_U64: {
        char *end;
        errno = 0;
        unsigned long long u = value[0] >= '0' && value[0] <= '9' ? strtoull(value, &end, 10) : 0;
        if (!(value[0] >= '0' && value[0] <= '9') || *end || errno || u > BUDGET_MICROS_MAX) {
            seterr(err, errlen, "bad value for '%s': expected an integer 0..%llu (micros)", k->name,
                   BUDGET_MICROS_MAX);
            return -1;
        }
        *(uint64_t *)((char *)c + k->off) = u;
        return 0;
    }
    case K_STR:
        return set_string(c, k, value, err, errlen);
    case K_LISTEN:
        if (config_parse_listen(c, value) < 0) {
            seterr(err, errlen,
                   "bad value for 'listen': expected HOST:PORT, [IPV6]:PORT or :PORT, port "
                   "0..65535");
            return -1;
        }
        return 0;
    case K_ADMIN_LISTEN:
        return set_admin_listen(c, value, err, errlen);
    case K_ORIGINS:
        return set_origins(c, value, err, errlen);
    case K_CIDRS: {
        char why[160];
        if (cidr_list_parse(&c->trusted_proxies, value, why, sizeof(why)) < 0) {
            seterr(err, errlen, "bad value for '%s': %s", k->name, why);
            return -1;
        }
        return 0;
    }
    case K_BOOL: {
        static const char *const yes[] = {"on", "yes", "true", "1"}, *const no[] = {"off", "no",
                                                                                    "false", "0"};
        for (int i = 0; i < 4; i++)
            if (strcasecmp(value, yes[i]) == 0 || strcasecmp(value, no[i]) == 0) {
                *(bool *)((char *)c + k->off) = strcasecmp(value, yes[i]) == 0;
                return 0;
            }
        seterr(err, errlen, "bad value for '%s': expected on or off", k->name);
        return -1;
    }
    case K_LEVEL:
        if (!log_parse_level(value, &lvl)) {
            seterr(err, errlen, "bad value for 'level': expected debug, info, warn or error");
            return -1;
        }
        c->log_level = (int)lvl;
        return 0;
    }
    return -1;
}

/* See config.h. Messages carry no "FILE:LINE: " prefix; the callers add their context. */
int config_set(struct config *c, const char *section, const char *key, const char *value, char *err,
               size_t errlen)
{
    if (!known_section(section)) {
        seterr(err, errlen, "unknown section [%.64s]", section);
        return -1;
    }
    int i = find_key(section, key);
    if (i < 0) {
        seterr(err, errlen, "unknown key '%.64s' in [%s]", key, section);
        return -1;
    }
    return set_key(c, &keys[i], value, err, errlen);
}

/* ---- the INI file ---- */

struct ini_state {
    struct ini_strict ini; /* first: the reader's state */
    struct config *c;
    int seen[NKEYS]; /* line each key was set on, 0 = not yet */
};

static void on_section(struct ini_strict *ini, const char *s, size_t len)
{
    char name[64], known[128];
    size_t n = len < sizeof(name) ? len : sizeof(name) - 1, k = 0;
    memcpy(name, s, n);
    name[n] = '\0';
    if (known_section(name))
        return;
    known[0] = '\0';
    for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]) && k < sizeof(known); i++)
        k += (size_t)snprintf(known + k, sizeof(known) - k, "%s%s", i ? ", " : "", sections[i]);
    ini_strict_error(ini, "unknown section [%s] (known: %s)", name, known);
}

static int ini_on_key(void *user, const char *section, const char *name, const char *value)
{
    struct ini_state *st = user;
    char msg[sizeof(st->ini.msg) - 16];

    if (st->ini.err_line)
        return 0;
    if (section[0] == '\0') {
        ini_strict_error(&st->ini, "key '%.64s' outside any section", name);
        return 0;
    }
    if (!known_section(section)) {
        ini_strict_error(&st->ini, "unknown section [%.64s]", section);
        return 0;
    }
    int i = find_key(section, name);
    if (i < 0) {
        ini_strict_error(&st->ini, "unknown key '%.64s' in [%s]", name, section);
        return 0;
    }
    if (st->seen[i]) {
        ini_strict_error(&st->ini, "duplicate key '%s' in [%s] (first set on line %d)", name,
                         section, st->seen[i]);
        return 0;
    }
    st->seen[i] = st->ini.line;
    if (set_key(st->c, &keys[i], value, msg, sizeof(msg)) < 0) {
        ini_strict_error(&st->ini, "%s", msg);
        return 0;
    }
    return 1;
}

/* See config.h. Parses into a heap copy of c and copies it back only on success. */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
    struct ini_state *st = xcalloc(1, sizeof(*st));
    struct config *tmp = xmalloc(sizeof(*tmp));
    int ret = -1;

    *tmp = *c;
    st->c = tmp;
    st->ini.long_line_hint = "; set long values through the environment";
    st->ini.on_section = on_section;
    st->ini.f = fopen(path, "r");
    if (!st->ini.f) {
        seterr(err, errlen, "cannot open %s: %s", path, strerror(errno));
        goto out_free;
    }
    int rc = ini_strict_parse(&st->ini, ini_on_key, st);
    if (ini_strict_report(&st->ini, rc, path, err, errlen) < 0)
        goto out_close;
    *c = *tmp;
    ret = 0;
out_close:
    fclose(st->ini.f);
out_free:
    xfree(tmp);
    xfree(st);
    return ret;
}

/* ---- environment ---- */

static const struct {
    const char *var, *section, *key;
} env_keys[] = {
    {"TRILEMMA_LISTEN", "server", "listen"},
    {"TRILEMMA_ADMIN_LISTEN", "server", "admin_listen"},
    {"TRILEMMA_WORKERS", "server", "workers"},
    {"TRILEMMA_JWT_SECRET", "auth", "jwt_secret"},
    {"TRILEMMA_JWT_ISSUER", "auth", "jwt_issuer"},
    {"TRILEMMA_JWT_AUDIENCE", "auth", "jwt_audience"},
    {"TRILEMMA_ALLOWED_ORIGINS", "auth", "allowed_origins"},
    {"TRILEMMA_TRUSTED_PROXIES", "server", "trusted_proxies"},
    {"TRILEMMA_LOG_LEVEL", "log", "level"},
    {"TRILEMMA_MODEL", "model", "model"},
    {"TRILEMMA_FALLBACKS", "model", "fallbacks"},
    {"TRILEMMA_AGENTS_FILE", "orchestrator", "agents_file"},
    {"TRILEMMA_TOOLS_FILE", "tools", "tools_file"},
    {"OPENAI_BASE_URL", "providers", "openai_base_url"},
    {"ANTHROPIC_BASE_URL", "providers", "anthropic_base_url"},
    {"GEMINI_BASE_URL", "providers", "gemini_base_url"},
    {"TRILEMMA_JOURNAL_DIR", "store", "journal_dir"},
    {"OTEL_EXPORTER_OTLP_ENDPOINT", "trace", "otlp_endpoint"},
    {"TRILEMMA_EMBEDDINGS_URL", "cache", "embeddings_url"},
};

/* Secrets that only come from the environment (never from a file that might be committed). */
static int env_secret(const char *var, char *dst, size_t cap, char *err, size_t errlen)
{
    const char *v = getenv(var);
    if (!v || !*v)
        return 0;
    if (strlen(v) >= cap) {
        seterr(err, errlen, "%s: too long (at most %zu bytes)", var, cap - 1);
        return -1;
    }
    strcpy(dst, v);
    return 0;
}

/* See config.h. */
void config_resolve_model(struct config *c)
{
    if (c->model[0])
        return;
    if (c->openai_api_key[0])
        strcpy(c->model, "openai/gpt-4.1-mini");
    else if (c->anthropic_api_key[0])
        strcpy(c->model, "anthropic/claude-sonnet-4-5");
    else if (c->gemini_api_key[0])
        strcpy(c->model, "gemini/gemini-2.5-flash");
    else
        strcpy(c->model, "echo");
}

/* See config.h. Each variable goes through config_set() as its file key would; DATABASE_URL
 * has no file key and is only length-checked. */
int config_apply_env(struct config *c, char *err, size_t errlen)
{
    struct config *tmp = xmalloc(sizeof(*tmp));
    char msg[256];
    int ret = -1;

    *tmp = *c;
    for (size_t i = 0; i < sizeof(env_keys) / sizeof(env_keys[0]); i++) {
        const char *v = getenv(env_keys[i].var);
        if (!v || !*v) /* unset and empty are the same: k8s renders missing values as "" */
            continue;
        if (config_set(tmp, env_keys[i].section, env_keys[i].key, v, msg, sizeof(msg)) < 0) {
            seterr(err, errlen, "%s: %s", env_keys[i].var, msg);
            goto out;
        }
    }
    const char *db = getenv("DATABASE_URL");
    if (db && *db) {
        if (strlen(db) >= sizeof(tmp->database_url)) {
            seterr(err, errlen, "DATABASE_URL: too long (at most %zu bytes)",
                   sizeof(tmp->database_url) - 1);
            goto out;
        }
        strcpy(tmp->database_url, db);
    }
    if (env_secret("OPENAI_API_KEY", tmp->openai_api_key, sizeof(tmp->openai_api_key), err,
                   errlen) < 0 ||
        env_secret("ANTHROPIC_API_KEY", tmp->anthropic_api_key, sizeof(tmp->anthropic_api_key), err,
                   errlen) < 0 ||
        env_secret("GEMINI_API_KEY", tmp->gemini_api_key, sizeof(tmp->gemini_api_key), err,
                   errlen) < 0 ||
        env_secret("TRILEMMA_ADMIN_TOKEN", tmp->admin_token, sizeof(tmp->admin_token), err,
                   errlen) < 0 ||
        env_secret("TRILEMMA_EMBEDDINGS_API_KEY", tmp->cache_embeddings_key,
                   sizeof(tmp->cache_embeddings_key), err, errlen) < 0)
        goto out;
    *c = *tmp;
    ret = 0;
out:
    xfree(tmp);
    return ret;
}

/* ---- cross-field checks ---- */

/* The admin listener as it will be opened: set explicitly, or listen's host on
 * CONFIG_ADMIN_PORT. Returns false when there is none ("off"). */
static bool admin_address(const struct config *c, const char **host, uint16_t *port)
{
    if (c->admin_off)
        return false;
    *host = c->admin_set ? c->admin_host : c->listen_host;
    *port = c->admin_set ? c->admin_port : CONFIG_ADMIN_PORT;
    return true;
}

/* The admin port would be the clients' port (a wildcard host overlaps every other host). */
static bool admin_clashes(const struct config *c)
{
    const char *h;
    uint16_t p;
    if (!admin_address(c, &h, &p) || p == 0 || p != c->listen_port)
        return false;
    return strcmp(h, c->listen_host) == 0 || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 ||
           strcmp(c->listen_host, "0.0.0.0") == 0 || strcmp(c->listen_host, "::") == 0;
}

/* See config.h. Also re-checks ranges the setters enforce, since callers may fill the struct
 * directly. Reports the first problem only. */
int config_validate(const struct config *c, char *err, size_t errlen)
{
    if (c->listen_host[0] == '\0')
        seterr(err, errlen, "listen: empty host");
    else if (c->workers < 0 || c->workers > 1024)
        seterr(err, errlen, "workers: expected 0..1024");
    else if (c->web_root[0] == '\0')
        seterr(err, errlen, "web_root: empty");
    else if (c->max_connections < 1 || c->max_connections_per_ip < 1)
        seterr(err, errlen, "max_connections and max_connections_per_ip must be at least 1");
    else if (c->max_connections_per_ip > c->max_connections)
        seterr(err, errlen, "max_connections_per_ip (%u) must not exceed max_connections (%u)",
               (unsigned)c->max_connections_per_ip, (unsigned)c->max_connections);
    else if (c->connection_reserve != CONFIG_RESERVE_AUTO &&
             c->connection_reserve >= c->max_connections)
        seterr(err, errlen, "connection_reserve (%u) must be below max_connections (%u)",
               (unsigned)c->connection_reserve, (unsigned)c->max_connections);
    else if (c->cache_embeddings_url[0] && strncmp(c->cache_embeddings_url, "http://", 7) &&
             strncmp(c->cache_embeddings_url, "https://", 8))
        seterr(err, errlen, "embeddings_url: expected an http:// or https:// URL");
    else if (admin_clashes(c))
        seterr(err, errlen,
               "admin_listen is the same port as listen (%u): give it another port, or off",
               (unsigned)c->listen_port);
    else if (c->ping_interval_ms == 0 || c->ping_interval_ms >= c->idle_timeout_ms)
        seterr(err, errlen, "ping_interval_ms (%u) must be below idle_timeout_ms (%u)",
               (unsigned)c->ping_interval_ms, (unsigned)c->idle_timeout_ms);
    else if (c->max_text_bytes == 0 || c->max_text_bytes > c->max_message_bytes)
        seterr(err, errlen, "max_text_bytes (%u) must be 1..max_message_bytes (%u)",
               (unsigned)c->max_text_bytes, (unsigned)c->max_message_bytes);
    else if (c->outbound_limit_bytes < c->max_message_bytes)
        seterr(err, errlen, "outbound_limit_bytes (%u) must be at least max_message_bytes (%u)",
               (unsigned)c->outbound_limit_bytes, (unsigned)c->max_message_bytes);
    else if (c->rate_messages < 1 || c->rate_window_ms < 1)
        seterr(err, errlen, "rate_messages and rate_window_ms must be at least 1");
    else if (c->handshake_timeout_ms == 0 || c->close_timeout_ms == 0)
        seterr(err, errlen, "handshake_timeout_ms and close_timeout_ms must be at least 1");
    else if (c->jwt_secret[0] && strlen(c->jwt_secret) < CONFIG_JWT_SECRET_MIN)
        seterr(err, errlen,
               "jwt_secret is %zu bytes: at least %d are required (HS256 needs a key as long as "
               "its hash, RFC 7518 3.2; use %d+ random bytes)",
               strlen(c->jwt_secret), CONFIG_JWT_SECRET_MIN, CONFIG_JWT_SECRET_MIN);
    else if (c->history_max_bytes > c->history_budget_bytes)
        seterr(err, errlen, "history_max_bytes (%u) must not exceed history_budget_bytes (%u)",
               (unsigned)c->history_max_bytes, (unsigned)c->history_budget_bytes);
    else if (c->jwt_secret[0] == '\0' && (c->jwt_issuer[0] || c->jwt_audience[0]))
        seterr(err, errlen,
               "jwt_issuer/jwt_audience are set but jwt_secret is empty: tokens "
               "would not be checked (set TRILEMMA_JWT_SECRET)");
    else if (c->num_allowed_origins < 0 || c->num_allowed_origins > CONFIG_MAX_ORIGINS)
        seterr(err, errlen, "num_allowed_origins out of range");
    else if (c->log_level < LOG_DEBUG || c->log_level > LOG_ERROR)
        seterr(err, errlen, "level: out of range");
    else if (strcmp(c->currency, "INR") != 0 && strcmp(c->currency, "USD") != 0)
        seterr(err, errlen, "currency: expected INR or USD");
    else if (c->journal_dir[0] == '\0' || c->journal_max_bytes < 65536)
        seterr(err, errlen, "journal_dir must be set and journal_max_bytes at least 65536");
    else if (config_trace(c, &(struct trace_conf){0}, err, errlen) < 0)
        return -1;
    else
        return 0;
    return -1;
}

/* The store's configuration; see the header. */
struct store_conf config_store(const struct config *c)
{
    return (struct store_conf){
        .database_url = c->database_url,
        .journal_dir = c->journal_dir,
        .price_file = c->price_file,
        .journal_max_bytes = c->journal_max_bytes,
        .batches_in_flight = c->batches_in_flight,
        .db_id = &c->db_id,
        .trace_retention_days = c->trace_retention_days,
        .cache_writes_max = c->cache_wr_max,
        .cache_write_bytes_max = c->cache_wr_bytes_max,
        .cache_entry_max_bytes = c->cache_entry_max,
    };
}

/* The server's configuration; see the header. */
struct server_conf config_server(const struct config *c)
{
    struct server_conf s = {
        .listen_port = c->listen_port,
        .workers = c->workers,
        .max_connections = c->max_connections,
        .max_connections_per_ip = c->max_connections_per_ip,
        .connection_reserve = c->connection_reserve == CONFIG_RESERVE_AUTO ? c->max_connections / 10
                                                                           : c->connection_reserve,
        .max_header_bytes = c->max_header_bytes,
        .handshake_timeout_ms = c->handshake_timeout_ms,
        .drain_timeout_ms = c->drain_timeout_ms,
        .trusted_proxies = c->trusted_proxies,
        .max_message_bytes = c->max_message_bytes,
        .ping_interval_ms = c->ping_interval_ms,
        .idle_timeout_ms = c->idle_timeout_ms,
        .close_timeout_ms = c->close_timeout_ms,
        .outbound_limit_bytes = c->outbound_limit_bytes,
        .app = c,
    };
    snprintf(s.listen_host, sizeof(s.listen_host), "%s", c->listen_host);
    snprintf(s.web_root, sizeof(s.web_root), "%s", c->web_root);
    const char *ah;
    if (admin_address(c, &ah, &s.admin_port))
        snprintf(s.admin_host, sizeof(s.admin_host), "%s", ah);
    return s;
}
