/* config.h - the server's configuration: defaults, an INI file read with inih (strict: unknown
 * sections/keys and bad values are errors naming the key and line), environment overrides for
 * what Kubernetes sets, then command-line flags. See docs/config.md. */
#ifndef TRILEMMA_APP_CONFIG_H
#define TRILEMMA_APP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/server.h"
#include "store/store.h"
#include "trace/trace.h"

#include "base/cidr.h"

#define CONFIG_MAX_ORIGINS 32
#define CONFIG_JWT_SECRET_MIN 32 /* bytes: HS256 wants a key at least as long as its hash */
#define CONFIG_ADMIN_PORT 9180
#define CONFIG_RESERVE_AUTO UINT32_MAX

struct config {
    /* [server] */
    char listen_host[256]; /* listen = HOST:PORT, default 0.0.0.0:8080; "[::1]:8080" for v6 */
    uint16_t listen_port;
    int workers;                      /* 0 = one per CPU */
    char web_root[1024];              /* static files, default "web" */
    uint32_t max_connections;         /* per process, default 20000 */
    uint32_t max_connections_per_ip;  /* default 1024 */
    uint32_t max_header_bytes;        /* request head limit, default 8192 (431 above) */
    uint32_t handshake_timeout_ms;    /* whole HTTP request head must arrive, default 10000 */
    uint32_t drain_timeout_ms;        /* SIGTERM: running turns may finish within, default 25000 */
    struct cidr_list trusted_proxies; /* X-Forwarded-For is believed from these; default none */
    /* admin_listen = HOST:PORT or "off": /healthz, /readyz, /metrics on their own port, away
     * from the clients' limits. Unset: listen's host, port CONFIG_ADMIN_PORT. */
    char admin_host[256];
    uint16_t admin_port;
    bool admin_set; /* given by file, environment or flag (else derived from listen) */
    bool admin_off;
    /* the last slots of max_connections, for addresses holding few connections;
     * CONFIG_RESERVE_AUTO = max_connections / 10 */
    uint32_t connection_reserve;

    /* [websocket] */
    uint32_t max_message_bytes;    /* default 65536 -> 1009 above */
    uint32_t ping_interval_ms;     /* default 25000 */
    uint32_t idle_timeout_ms;      /* no frame at all from the client, default 120000 */
    uint32_t close_timeout_ms;     /* wait for the peer's close reply, default 5000 */
    uint32_t outbound_limit_bytes; /* queued unsent bytes per session, default 1 MiB -> 1008 */

    /* [session] */
    uint32_t max_text_bytes; /* user_message.text, default 16000 -> error text_too_long */
    uint32_t rate_messages;  /* message rate limit: burst of this many ... default 20 */
    uint32_t rate_window_ms; /* ... refilled over this window, default 10000 */
    uint32_t echo_delay_ms;  /* echo responder: delay between words, default 30 */
    /* per-user limits, process-wide (session/user_limits.h); 0 = no limit */
    uint32_t max_turns_per_user;        /* turns running at once per token sub, default 4 */
    uint32_t turns_per_minute_per_user; /* turns started per minute per sub, default 60 */
    uint32_t max_turns_per_ip;          /* the same for anonymous sessions per address, 32 */
    uint32_t turns_per_minute_per_ip;   /* default 300 */
    uint32_t history_max_bytes;         /* in-memory history per session, default 65536 */
    uint32_t history_budget_bytes;      /* in-memory history per process, default 256 MiB */
    uint32_t max_session_age_s;         /* a session is closed (4002) at this age, default 1 day */
    /* detach grace and resume of running turns (docs/session.md) */
    uint32_t detach_grace_ms;     /* a turn whose client left runs on this long, default 15000 */
    uint32_t detach_buffer_bytes; /* ... producing at most this much more answer, default 256 KiB */
    uint32_t turn_lease_ms;       /* a running turn's row lives this long unrenewed, 10000 */
    uint32_t resume_wait_ms;      /* a resume waits this long for a running turn, 60000 */

    /* [auth] */
    char jwt_secret[512];     /* env TRILEMMA_JWT_SECRET; empty = open (anonymous) */
    char jwt_issuer[256];     /* if set, `iss` must match */
    char jwt_audience[256];   /* if set, `aud` must match */
    struct store_db_id db_id; /* not a key: the database's identity, read at start (main.c) */
    bool jwt_require_exp;     /* a token without exp is refused, default true */
    uint32_t jwt_max_age_s;   /* > 0: iat required, at most this old; default 0 (exp bounds it) */
    uint32_t jwt_leeway_s;    /* clock skew on exp/nbf/iat, default 30 */
    char allowed_origins[CONFIG_MAX_ORIGINS][256]; /* empty list = any origin */
    int num_allowed_origins;

    /* [model] - which model answers (docs/providers.md) */
    char model[128];             /* "provider/model" or "echo"; env TRILEMMA_MODEL; default: see
                                    config_defaults (the first provider with a key, else echo) */
    char fallbacks[512];         /* comma-separated "provider/model" tried in order on failure */
    char system_prompt[1024];    /* sent as the system message of every call */
    uint32_t max_tokens;         /* output limit per call, default 1024 */
    uint32_t max_retries;        /* retries per route before the first delta, default 2 */
    uint32_t retry_base_ms;      /* first backoff (doubles, +-50% jitter), default 250 */
    uint32_t connect_timeout_ms; /* default 5000 */
    uint32_t first_token_timeout_ms; /* request sent -> first token, default 30000 */
    uint32_t stall_timeout_ms;       /* gap between tokens, default 30000 */
    uint32_t history_messages;       /* earlier messages sent as context, default 20 */

    /* [providers] - base URLs follow each SDK's convention; env *_BASE_URL override */
    char openai_base_url[512];    /* default https://api.openai.com/v1 */
    char anthropic_base_url[512]; /* default https://api.anthropic.com */
    char gemini_base_url[512];    /* default https://generativelanguage.googleapis.com */

    /* [pricing] */
    char price_file[1024]; /* default "config/prices.csv" */
    char currency[8];      /* "INR" (default) or "USD" */
    char usd_to_inr[32];   /* exchange rate as a decimal, default "84.0" */

    /* environment-only secrets: OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY,
     * TRILEMMA_ADMIN_TOKEN (the read API's bearer token; unset = the API is off) */
    char admin_token[256];
    char openai_api_key[512];
    char anthropic_api_key[512];
    char gemini_api_key[512];

    /* [tools] - tools the model may call (docs/tools.md) */
    char tools_file[1024]; /* "" (default) = no tools; the agents need one (config/tools.json) */

    /* [orchestrator] - agents and routing (docs/routing.md); env TRILEMMA_AGENTS_FILE */
    char agents_file[1024]; /* "" (default) = one model call per turn (the relay) */

    /* [cache] - the cache layers (docs/caching.md) */
    bool cache_exact;                 /* exact response cache, default on */
    bool cache_exact_shared;          /* its PostgreSQL tier (with a database), default on */
    uint32_t cache_exact_lru_bytes;   /* per worker, default 8 MiB */
    char cache_words_file[1024];      /* synonyms and fillers (JSON); "" (default) = none */
    uint32_t cache_lookup_timeout_ms; /* a layer slower than this is a miss, default 150 */
    bool cache_tool;                  /* tool response cache, default on */
    bool cache_tool_shared;           /* its PostgreSQL tier, default off */
    uint32_t cache_tool_lru_bytes;    /* per worker, default 16 MiB */
    uint32_t cache_tool_max_stale_s;  /* serve a stale result while refreshing, default 60 */
    uint32_t cache_wr_max;            /* shared-tier writes in flight per worker, default 32 */
    uint32_t cache_wr_bytes_max;      /* ... and their bytes, default 8 MiB */
    uint32_t cache_entry_max;         /* larger entries stay per worker, default 1 MiB */
    /* the semantic cache: on when embeddings_url is set and a route has semantic_threshold */
    char cache_embeddings_url[1024];      /* env TRILEMMA_EMBEDDINGS_URL; "" (default) = off */
    char cache_embeddings_model[128];     /* default "text-embedding-3-small" */
    char cache_embeddings_key[512];       /* env TRILEMMA_EMBEDDINGS_API_KEY only */
    uint32_t cache_embeddings_timeout_ms; /* default 140 (within lookup_timeout_ms) */
    uint32_t cache_semantic_max_entries;  /* the process's index, default 10000 */
    uint32_t cache_semantic_sync_ms;      /* reading other pods' entries, default 5000 */
    char cache_catalog_version[64];       /* part of every semantic key; default "" */

    /* [store] - PostgreSQL writes and the spill journal (docs/store.md) */
    char journal_dir[1024];     /* env TRILEMMA_JOURNAL_DIR; default ".run/journal" */
    uint32_t journal_max_bytes; /* per worker; default 64 MiB (full: new turns are refused) */
    uint32_t batches_in_flight; /* group commits in flight per worker, one writer connection
                                   each; default 2 */

    /* [trace] - request tracing and anomaly flags (docs/tracing.md); config_trace reads them */
    char trace_capture[16];     /* full | metadata (default) | off */
    char trace_sample_rate[16]; /* 0..1, default 1: share of ordinary turns whose trace is kept */
    char trace_redact[64];      /* card,phone,email (default) | none */
    uint32_t trace_retention_days;      /* default 14; 0 = keep forever */
    char trace_otlp_endpoint[512];      /* env OTEL_EXPORTER_OTLP_ENDPOINT; "" = no export */
    uint32_t trace_otlp_queue_spans;    /* default 20000 per worker; more are dropped and counted */
    char trace_ttft_targets[256];       /* TYPE:MS,... default suggestion:200,chitchat:1000,... */
    uint32_t trace_ttft_target_ms;      /* any other type; default 3000 */
    uint32_t trace_cost_outlier_factor; /* default 5; 0 = off */

    /* [budget] spend limits in micros of [pricing] currency; 0 = off (docs/config.md) */
    uint64_t budget_user_daily_micros;       /* per token sub per UTC day */
    uint64_t budget_deployment_daily_micros; /* the whole deployment per UTC day */
    uint64_t budget_turn_max_micros;         /* one turn's ceiling (agents.ini routes may lower) */
    uint32_t budget_refresh_ms;              /* re-read the day's spend from the ledger, 30000 */

    /* [capacity] the provisioned deployments' share (agents file [capacity NAME]; docs/routing.md)
     */
    uint32_t capacity_pods;       /* pods sharing them; 0 = the store's heartbeat (1 without) */
    uint32_t capacity_refresh_ms; /* heartbeat period, default 10000 */

    /* [log] */
    int log_level; /* enum log_level, default info */

    /* environment-only */
    char database_url[1024]; /* DATABASE_URL */
};

/* Fill c with defaults. */
void config_defaults(struct config *c);

/* Read an INI file into c (on top of what is there). Returns 0, or -1 with a message in err
 * such as "config.ini:12: unknown key 'max_conections' in [server]" or
 * "config.ini:7: bad value for 'workers': expected an integer 0..1024". A missing file is an
 * error too. On error c is unchanged. Lines are at most 197 bytes (the system inih's limit). */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen);

/* Apply environment overrides: TRILEMMA_LISTEN, TRILEMMA_ADMIN_LISTEN, TRILEMMA_WORKERS,
 * TRILEMMA_JWT_SECRET, TRILEMMA_JWT_ISSUER, TRILEMMA_JWT_AUDIENCE, TRILEMMA_ALLOWED_ORIGINS (comma
 * list), TRILEMMA_TRUSTED_PROXIES (comma list), TRILEMMA_LOG_LEVEL, DATABASE_URL. An empty variable
 * counts as unset. Bad values are errors naming the variable (never showing the value); on error c
 * is unchanged. Returns 0 or -1 with err. */
int config_apply_env(struct config *c, char *err, size_t errlen);

/* With no [model] model set by file, environment or flags: the first provider whose key is set
 * answers (openai/gpt-4.1-mini, anthropic/claude-sonnet-4-5, gemini/gemini-2.5-flash); with no
 * key at all, "echo". Call after every layer is applied. */
void config_resolve_model(struct config *c);

/* Set one key by its "section.key" name, as the file would (used for flags and env). */
int config_set(struct config *c, const char *section, const char *key, const char *value, char *err,
               size_t errlen);

/* Parse "HOST:PORT" / "[V6]:PORT" / ":PORT" into c. Returns 0 or -1 (c unchanged). The host is
 * stored without brackets ("::1"), ":PORT" stores "0.0.0.0", port 0 lets the kernel choose. */
int config_parse_listen(struct config *c, const char *value);

/* Cross-field checks after everything is applied (e.g. ping interval < idle timeout).
 * Returns 0 or -1 with err. */
int config_validate(const struct config *c, char *err, size_t errlen);

/* The store's part of c (store/store.h); its strings point into c, which must outlive it. */
struct store_conf config_store(const struct config *c);

/* The [trace] part of c (trace/trace.h); its strings point into c. Returns 0, or -1 with err
 * naming the key. */
int config_trace(const struct config *c, struct trace_conf *out, char *err, size_t errlen);

/* The server's part of c (net/server.h), with c itself as the application's configuration. */
struct server_conf config_server(const struct config *c);

#endif
