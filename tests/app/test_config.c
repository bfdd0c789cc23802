/* test_config.c - defaults, the strict INI reader (each error class with its line and key),
 * listen parsing, environment overrides, cross-field validation, and the shipped example. */
#include "app/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "tests/tap.h"

static char path[64];

/* Write text (len bytes, may hold NULs) to a fresh temp file; its name goes to `path`. */
static void write_tmp(const char *text, size_t len)
{
    strcpy(path, "/tmp/trilemma-cfg-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
        perror("mkstemp/write");
        exit(1);
    }
    close(fd);
}

/* Load text on top of defaults; returns config_load_file's result, err holds the message. */
static int load_text(struct config *c, const char *text, char *err, size_t errlen)
{
    config_defaults(c);
    write_tmp(text, strlen(text));
    err[0] = '\0';
    int rc = config_load_file(c, path, err, errlen);
    unlink(path);
    return rc;
}

/* The load must fail with exactly "PATH:" + want, and leave the config at its defaults. */
static void expect_error(const char *text, const char *want, int line)
{
    struct config c, d;
    char err[512], full[600];
    int rc = load_text(&c, text, err, sizeof(err));
    snprintf(full, sizeof(full), "%s:%s", path, want);
    config_defaults(&d);
    if (rc != -1 || strcmp(err, full) != 0 || memcmp(&c, &d, sizeof(c)) != 0) {
        tap_fail++;
        fprintf(stderr, "test_config.c:%d: rc=%d\n  got:  %s\n  want: %s\n", line, rc, err, full);
    } else {
        tap_pass++;
    }
}
#define EXPECT_ERROR(text, want) expect_error(text, want, __LINE__)

static void test_defaults(void)
{
    struct config c;
    memset(&c, 0xAB, sizeof(c));
    config_defaults(&c);
    CHECK(strcmp(c.listen_host, "0.0.0.0") == 0 && c.listen_port == 8080);
    CHECK(c.workers == 0);
    CHECK(strcmp(c.web_root, "web") == 0);
    CHECK(c.max_connections == 20000);
    CHECK(c.max_connections_per_ip == 1024);
    CHECK(c.max_header_bytes == 8192);
    CHECK(c.handshake_timeout_ms == 10000);
    CHECK(c.drain_timeout_ms == 25000);
    CHECK(c.max_turns_per_user == 4 && c.turns_per_minute_per_user == 60);
    CHECK(c.max_turns_per_ip == 32 && c.turns_per_minute_per_ip == 300);
    CHECK(c.history_max_bytes == 65536 && c.history_budget_bytes == 256u << 20);
    CHECK(c.max_session_age_s == 86400);
    CHECK(c.jwt_require_exp && c.jwt_max_age_s == 0 && c.jwt_leeway_s == 30);
    CHECK(c.max_message_bytes == 65536);
    CHECK(c.ping_interval_ms == 25000);
    CHECK(c.idle_timeout_ms == 120000);
    CHECK(c.close_timeout_ms == 5000);
    CHECK(c.outbound_limit_bytes == 1048576);
    CHECK(c.max_text_bytes == 16000);
    CHECK(c.rate_messages == 20);
    CHECK(c.rate_window_ms == 10000);
    CHECK(c.echo_delay_ms == 30);
    CHECK(c.jwt_secret[0] == '\0' && c.jwt_issuer[0] == '\0' && c.jwt_audience[0] == '\0');
    CHECK(c.num_allowed_origins == 0);
    CHECK(c.log_level == LOG_INFO);
    CHECK(c.database_url[0] == '\0');
    char err[256];
    CHECK(config_validate(&c, err, sizeof(err)) == 0);
}

static void test_example_file(void)
{
    struct config c, d;
    char err[512] = "";
    config_defaults(&c);
    config_defaults(&d);
    int rc = config_load_file(&c, TRILEMMA_EXAMPLE_INI, err, sizeof(err));
    CHECKF(rc == 0, "%s", err);
    /* the example spells out the defaults, so loading it changes nothing */
    CHECK(memcmp(&c, &d, sizeof(c)) == 0);
}

static void test_every_key(void)
{
    const char *text = "; a comment\n"
                       "# another\n"
                       "\n"
                       "[server]\n"
                       "listen = 127.0.0.1:9000\n"
                       "workers = 4\n"
                       "web_root = /srv/trilemma/web\n"
                       "max_connections = 5000\n"
                       "max_connections_per_ip = 50\n"
                       "max_header_bytes = 16384\n"
                       "handshake_timeout_ms = 5000\n"
                       "drain_timeout_ms = 0\n"
                       "trusted_proxies = 10.0.0.0/8, fd00::/8 ,192.0.2.7\n"
                       "[websocket]\n"
                       "max_message_bytes = 131072\n"
                       "ping_interval_ms = 1000\n"
                       "idle_timeout_ms = 3000\n"
                       "close_timeout_ms = 200\n"
                       "outbound_limit_bytes = 262144\n"
                       "[session]\n"
                       "max_text_bytes = 100000\n"
                       "rate_messages = 5\n"
                       "rate_window_ms = 1000\n"
                       "echo_delay_ms = 0\n"
                       "max_turns_per_user = 2\n"
                       "turns_per_minute_per_user = 0\n"
                       "max_turns_per_ip = 7\n"
                       "turns_per_minute_per_ip = 70\n"
                       "history_max_bytes = 4096\n"
                       "history_budget_bytes = 1048576\n"
                       "max_session_age_s = 3600\n"
                       "[auth]\n"
                       "jwt_secret = s3cret-s3cret-s3cret-s3cret-s3cr\n"
                       "jwt_require_exp = false\n"
                       "jwt_max_age_s = 900\n"
                       "jwt_leeway_s = 5\n"
                       "jwt_issuer = https://idp.example\n"
                       "jwt_audience = chat\n"
                       "allowed_origins = https://chat.example, http://localhost:8080\n"
                       "[log]\n"
                       "level = debug\n"
                       "[cache]\n"
                       "exact = off\n"
                       "exact_shared = no\n"
                       "exact_lru_bytes = 0\n"
                       "words_file = /etc/trilemma/words.json\n"
                       "lookup_timeout_ms = 40\n"
                       "tool = OFF\n"
                       "tool_shared = yes\n"
                       "tool_lru_bytes = 1024\n"
                       "tool_max_stale_s = 0\n"
                       "embeddings_url = http://127.0.0.1:8090/v1/embeddings\n"
                       "embeddings_model = sim-embed\n"
                       "embeddings_timeout_ms = 90\n"
                       "semantic_max_entries = 500\n"
                       "semantic_sync_ms = 250\n"
                       "catalog_version = 2026-12-07\n"
                       "[budget]\n"
                       "user_daily_micros = 5000000\n"
                       "deployment_daily_micros = 90000000000\n"
                       "turn_max_micros = 200000\n"
                       "refresh_ms = 1000\n";
    struct config c;
    char err[512];
    CHECKF(load_text(&c, text, err, sizeof(err)) == 0, "%s", err);
    CHECK(strcmp(c.listen_host, "127.0.0.1") == 0 && c.listen_port == 9000);
    CHECK(c.workers == 4);
    CHECK(strcmp(c.web_root, "/srv/trilemma/web") == 0);
    CHECK(c.max_connections == 5000 && c.max_connections_per_ip == 50);
    CHECK(c.max_header_bytes == 16384 && c.handshake_timeout_ms == 5000);
    CHECK(c.drain_timeout_ms == 0);
    CHECK(c.max_turns_per_user == 2 && c.turns_per_minute_per_user == 0);
    CHECK(c.max_turns_per_ip == 7 && c.turns_per_minute_per_ip == 70);
    CHECK(c.history_max_bytes == 4096 && c.history_budget_bytes == 1048576);
    CHECK(c.max_session_age_s == 3600);
    CHECK(!c.jwt_require_exp && c.jwt_max_age_s == 900 && c.jwt_leeway_s == 5);
    CHECK(c.trusted_proxies.n == 3 && c.trusted_proxies.nets[0].bits == 96 + 8 &&
          c.trusted_proxies.nets[1].bits == 8 && c.trusted_proxies.nets[2].bits == 128);
    CHECK(c.max_message_bytes == 131072 && c.ping_interval_ms == 1000);
    CHECK(c.idle_timeout_ms == 3000 && c.close_timeout_ms == 200);
    CHECK(c.outbound_limit_bytes == 262144);
    CHECK(c.max_text_bytes == 100000 && c.rate_messages == 5 && c.rate_window_ms == 1000);
    CHECK(c.echo_delay_ms == 0);
    CHECK(strcmp(c.jwt_secret, "s3cret-s3cret-s3cret-s3cret-s3cr") == 0);
    CHECK(strcmp(c.jwt_issuer, "https://idp.example") == 0);
    CHECK(strcmp(c.jwt_audience, "chat") == 0);
    CHECK(c.num_allowed_origins == 2);
    CHECK(strcmp(c.allowed_origins[0], "https://chat.example") == 0);
    CHECK(strcmp(c.allowed_origins[1], "http://localhost:8080") == 0);
    CHECK(c.log_level == LOG_DEBUG);
    CHECK(!c.cache_exact && !c.cache_exact_shared && c.cache_exact_lru_bytes == 0);
    CHECK(strcmp(c.cache_words_file, "/etc/trilemma/words.json") == 0);
    CHECK(c.cache_lookup_timeout_ms == 40 && !c.cache_tool && c.cache_tool_shared);
    CHECK(c.cache_tool_lru_bytes == 1024 && c.cache_tool_max_stale_s == 0);
    CHECK(strcmp(c.cache_embeddings_url, "http://127.0.0.1:8090/v1/embeddings") == 0);
    CHECK(strcmp(c.cache_embeddings_model, "sim-embed") == 0);
    CHECK(c.cache_embeddings_timeout_ms == 90 && c.cache_semantic_max_entries == 500);
    CHECK(c.cache_semantic_sync_ms == 250);
    CHECK(strcmp(c.cache_catalog_version, "2026-12-07") == 0);
    CHECK(c.budget_user_daily_micros == 5000000 && c.budget_deployment_daily_micros == 90000000000);
    CHECK(c.budget_turn_max_micros == 200000 && c.budget_refresh_ms == 1000);
    CHECKF(config_validate(&c, err, sizeof(err)) == 0, "%s", err);
    snprintf(c.cache_embeddings_url, sizeof(c.cache_embeddings_url), "127.0.0.1:8090/v1");
    CHECK(config_validate(&c, err, sizeof(err)) < 0 && strstr(err, "embeddings_url: expected"));
}

static void test_structure_errors(void)
{
    EXPECT_ERROR("[server]\nworkers = 1\n[serverr]\nworkers = 2\n",
                 "3: unknown section [serverr] (known: server, websocket, session, auth, log, "
                 "model, providers, pricing, tools, orchestrator, store, cache, trace, budget, "
                 "capacity)");
    EXPECT_ERROR("[Server]\n",
                 "1: unknown section [Server] (known: server, websocket, "
                 "session, auth, log, model, providers, pricing, tools, orchestrator, "
                 "store, cache, trace, budget, capacity)");
    EXPECT_ERROR("\n\n[server]\nmax_conections = 5\n",
                 "4: unknown key 'max_conections' in [server]");
    EXPECT_ERROR("[websocket]\nworkers = 5\n", "2: unknown key 'workers' in [websocket]");
    EXPECT_ERROR("[server]\n= 5\n", "2: unknown key '' in [server]");
    EXPECT_ERROR("workers = 5\n[server]\n", "1: key 'workers' outside any section");
    EXPECT_ERROR("[server]\nworkers = 1\n\n; again\nworkers = 2\n",
                 "5: duplicate key 'workers' in [server] (first set on line 2)");
    /* the same key in a repeated section header is still a duplicate */
    EXPECT_ERROR("[log]\nlevel = info\n[server]\n[log]\nlevel = warn\n",
                 "5: duplicate key 'level' in [log] (first set on line 2)");
    EXPECT_ERROR("[server]\nworkers 4\n", "2: expected 'key = value'");
    EXPECT_ERROR("[server]\nworkers: 4\n", "2: expected 'key = value'");
    EXPECT_ERROR("[server]\nworkers ; = 4\n", "2: expected 'key = value'");
    EXPECT_ERROR("[server]\n[log\n", "2: unterminated section header");
    EXPECT_ERROR("[server] junk\n", "1: junk after section header");
    /* inih's multi-line values: an indented line would extend the previous key */
    EXPECT_ERROR("[server]\nweb_root = /srv\n  /web\n",
                 "3: indented line (continuation lines are not supported)");
    EXPECT_ERROR("[server]\n  workers = 4\n",
                 "2: indented line (continuation lines are not supported)");

    char text[600];
    snprintf(text, sizeof(text), "[auth]\n\njwt_issuer = %0250d\n", 0);
    EXPECT_ERROR(text, "3: line too long (at most 197 bytes; set long values through the "
                       "environment)");
    snprintf(text, sizeof(text), "[auth]\n;%0300d\n[server]\nbogus = 1\n", 0);
    EXPECT_ERROR(text, "2: line too long (at most 197 bytes; set long values through the "
                       "environment)");
}

/* [trace]: every key read, the defaults, and what config_trace refuses. */
static void test_trace(void)
{
    struct config c;
    struct trace_conf t;
    char err[256];
    config_defaults(&c);
    CHECK(config_trace(&c, &t, err, sizeof(err)) == 0);
    CHECK(t.capture == TRACE_METADATA && t.sample_rate == 1 && t.retention_days == 14);
    CHECK(t.redact == (REDACT_CARD | REDACT_PHONE | REDACT_EMAIL) && !t.otlp_endpoint[0]);
    CHECK(t.n_ttft_targets == 3 && !strcmp(t.ttft_targets[0].query_type, "suggestion") &&
          t.ttft_targets[0].ms == 200 && t.ttft_default_ms == 3000);
    CHECK(load_text(&c,
                    "[trace]\ncapture = full\nsample_rate = 0.25\nredact = email\n"
                    "retention_days = 3\notlp_endpoint = http://127.0.0.1:4318\n"
                    "otlp_queue_spans = 100\nttft_targets = chitchat:900,policy:800\n"
                    "ttft_target_ms = 2500\ncost_outlier_factor = 0\n",
                    err, sizeof(err)) == 0);
    CHECKF(config_trace(&c, &t, err, sizeof(err)) == 0, "%s", err);
    CHECK(t.capture == TRACE_FULL && t.sample_rate == 0.25 && t.redact == REDACT_EMAIL);
    CHECK(t.retention_days == 3 && !strcmp(t.otlp_endpoint, "http://127.0.0.1:4318"));
    CHECK(t.otlp_queue_spans == 100 && t.n_ttft_targets == 2 && t.ttft_targets[1].ms == 800);
    CHECK(t.ttft_default_ms == 2500 && t.cost_outlier_factor == 0);
    static const struct {
        const char *key, *value, *msg;
    } bad[] = {
        {"capture", "verbose",
         "bad value for 'capture' in [trace]: expected full, metadata or off"},
        {"sample_rate", "1.5", "bad value for 'sample_rate' in [trace]"},
        {"sample_rate", "-0", "bad value for 'sample_rate' in [trace]"},
        {"redact", "cards", "bad value for 'redact' in [trace]"},
        {"otlp_endpoint", "collector:4318", "bad value for 'otlp_endpoint' in [trace]"},
        {"ttft_targets", "chitchat", "bad value for 'ttft_targets' in [trace]"},
        {"ttft_targets", "chitchat:0", "bad value for 'ttft_targets' in [trace]"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        config_defaults(&c);
        CHECK(config_set(&c, "trace", bad[i].key, bad[i].value, err, sizeof(err)) == 0);
        CHECKF(config_validate(&c, err, sizeof(err)) < 0 &&
                   strncmp(err, bad[i].msg, strlen(bad[i].msg)) == 0,
               "%s = %s: %s", bad[i].key, bad[i].value, err);
    }
    EXPECT_ERROR("[trace]\nretention_days = 4000\n",
                 "2: bad value for 'retention_days': expected an integer 0..3650");
}

static void test_nul_line(void)
{
    struct config c;
    char err[512];
    config_defaults(&c);
    write_tmp("[server]\nworkers = 4\0junk\n", 26);
    CHECK(config_load_file(&c, path, err, sizeof(err)) == -1);
    char want[128];
    snprintf(want, sizeof(want), "%s:2: NUL byte in line", path);
    CHECKF(strcmp(err, want) == 0, "%s", err);
    unlink(path);
}

static void test_value_errors(void)
{
    const char *bad_ints[] = {"10ms",      "abc", "-1",  "+1",   "0x10",
                              "1.5",       "1e3", "4 4", "1025", "99999999999999999999",
                              "4294967296"};
    for (size_t i = 0; i < sizeof(bad_ints) / sizeof(bad_ints[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "[log]\nlevel = warn\n[server]\nworkers = %s\n", bad_ints[i]);
        EXPECT_ERROR(text, "4: bad value for 'workers': expected an integer 0..1024");
    }
    EXPECT_ERROR("[server]\nworkers =\n", "2: bad value for 'workers': empty value");
    EXPECT_ERROR("[cache]\nexact = maybe\n", "2: bad value for 'exact': expected on or off");
    EXPECT_ERROR("[cache]\ntool_shared = 2\n",
                 "2: bad value for 'tool_shared': expected on or off");
    EXPECT_ERROR("[cache]\nlookup_timeout_ms = 0\n",
                 "2: bad value for 'lookup_timeout_ms': expected an integer 1..60000");
    EXPECT_ERROR("[cache]\nsemantic_max_entries = 0\n",
                 "2: bad value for 'semantic_max_entries': expected an integer 1..1000000");
    EXPECT_ERROR("[cache]\nsemantic_sync_ms = 99\n",
                 "2: bad value for 'semantic_sync_ms': expected an integer 100..3600000");
    EXPECT_ERROR("[cache]\nembeddings_timeout_ms = 0\n",
                 "2: bad value for 'embeddings_timeout_ms': expected an integer 1..60000");
    EXPECT_ERROR("[cache]\ntool_max_stale_s = 86401\n",
                 "2: bad value for 'tool_max_stale_s': expected an integer 0..86400");
    /* inih scans the value from right after '=': " ;" there starts a comment, ";" does not */
    EXPECT_ERROR("[server]\nworkers = ; nothing\n", "2: bad value for 'workers': empty value");
    EXPECT_ERROR("[server]\nworkers =;4\n",
                 "2: bad value for 'workers': expected an integer 0..1024");
    EXPECT_ERROR("[server]\nmax_connections = 0\n",
                 "2: bad value for 'max_connections': expected an integer 1..10000000");
    EXPECT_ERROR("[server]\nmax_header_bytes = 100\n",
                 "2: bad value for 'max_header_bytes': expected an integer 1024..1048576");
    EXPECT_ERROR("[auth]\njwt_require_exp = maybe\n",
                 "2: bad value for 'jwt_require_exp': expected on or off");
    EXPECT_ERROR("[session]\nmax_session_age_s = 0\n",
                 "2: bad value for 'max_session_age_s': expected an integer 1..31536000");
    EXPECT_ERROR("[session]\nrate_messages = 0\n",
                 "2: bad value for 'rate_messages': expected an integer 1..1000000");
    EXPECT_ERROR("[websocket]\nping_interval_ms = -25000\n",
                 "2: bad value for 'ping_interval_ms': expected an integer 10..86400000");
    EXPECT_ERROR("[session]\necho_delay_ms = 30ms\n",
                 "2: bad value for 'echo_delay_ms': expected an integer 0..60000");
    EXPECT_ERROR("[server]\nweb_root = \"web\"\n",
                 "2: bad value for 'web_root': quotes are not stripped; write the value bare");
    EXPECT_ERROR("[auth]\njwt_secret =\n", "2: bad value for 'jwt_secret': empty value");
    EXPECT_ERROR("[log]\nlevel = verbose\n",
                 "2: bad value for 'level': expected debug, info, warn or error");
    EXPECT_ERROR("[server]\nlisten = 0.0.0.0:65536\n",
                 "2: bad value for 'listen': expected HOST:PORT, [IPV6]:PORT or :PORT, port "
                 "0..65535");
    EXPECT_ERROR("[auth]\nallowed_origins = https://a.example, https://b.example/\n",
                 "2: bad value for 'allowed_origins': entry 2: expected scheme://host[:port] "
                 "(no path, at most 255 bytes)");
    /* '#' is no inline comment; ';' is one only after whitespace */
    EXPECT_ERROR("[server]\nworkers = 4 # four\n",
                 "2: bad value for 'workers': expected an integer 0..1024");
    EXPECT_ERROR("[server]\nworkers = 4;four\n",
                 "2: bad value for 'workers': expected an integer 0..1024");
    EXPECT_ERROR("[server]\ntrusted_proxies = 10.0.0.0/8, ingress.local\n",
                 "2: bad value for 'trusted_proxies': entry 2: expected an IPv4 or IPv6 address "
                 "or ADDRESS/BITS with no host bits set");
    EXPECT_ERROR("[server]\ntrusted_proxies =\n",
                 "2: bad value for 'trusted_proxies': empty value");
    /* a turn is stored as one record (store/record.h): the keys that size it are capped */
    EXPECT_ERROR("[session]\nmax_text_bytes = 16777217\n",
                 "2: bad value for 'max_text_bytes': expected an integer 1..16777216 (a turn "
                 "must fit one stored record of 64 MiB)");
    EXPECT_ERROR("[model]\nmax_tokens = 262145\n",
                 "2: bad value for 'max_tokens': expected an integer 1..262144 (a turn must fit "
                 "one stored record of 64 MiB)");
    /* the first error wins */
    EXPECT_ERROR("[server]\nworkers = x\nbogus = 1\n[nope]\n",
                 "2: bad value for 'workers': expected an integer 0..1024");
}

static void test_file_open_errors(void)
{
    struct config c, d;
    char err[256];
    config_defaults(&c);
    config_defaults(&d);
    CHECK(config_load_file(&c, "/nonexistent/trilemma.ini", err, sizeof(err)) == -1);
    CHECKF(strcmp(err, "cannot open /nonexistent/trilemma.ini: No such file or directory") == 0,
           "%s", err);
    CHECK(config_load_file(&c, "/tmp", err, sizeof(err)) == -1);
    CHECKF(strcmp(err, "cannot read /tmp: Is a directory") == 0, "%s", err);
    CHECK(memcmp(&c, &d, sizeof(c)) == 0);
    /* a tiny err buffer is truncated, not overrun */
    char small[8];
    CHECK(config_load_file(&c, "/nonexistent/x", small, sizeof(small)) == -1);
    CHECK(strcmp(small, "cannot ") == 0);
}

static void test_lexical(void)
{
    struct config c;
    char err[512];
    /* inline comments: ';' after whitespace starts one; trailing spaces are stripped */
    CHECKF(load_text(&c,
                     "[server] ; the server\n"
                     "workers = 4 ; four\n"
                     "web_root =   /srv/web   \n"
                     "[auth]\n"
                     "jwt_secret = abc;def#ghi\n"
                     "jwt_issuer=https://idp;x\n",
                     err, sizeof(err)) == 0,
           "%s", err);
    CHECK(c.workers == 4);
    CHECK(strcmp(c.web_root, "/srv/web") == 0);
    CHECK(strcmp(c.jwt_secret, "abc;def#ghi") == 0);
    CHECK(strcmp(c.jwt_issuer, "https://idp;x") == 0);
    /* CRLF line endings and a UTF-8 byte order mark */
    CHECKF(load_text(&c, "\xEF\xBB\xBF[server]\r\nworkers = 7\r\n\r\n[log]\r\nlevel = WARN\r\n",
                     err, sizeof(err)) == 0,
           "%s", err);
    CHECK(c.workers == 7 && c.log_level == LOG_WARN);
    /* an empty file and a file of comments are fine */
    CHECK(load_text(&c, "", err, sizeof(err)) == 0);
    CHECK(load_text(&c, "; nothing\n# here\n\n", err, sizeof(err)) == 0);
    /* no trailing newline */
    CHECK(load_text(&c, "[server]\nworkers = 9", err, sizeof(err)) == 0 && c.workers == 9);
    /* a value may hold '=' */
    CHECK(load_text(&c, "[auth]\njwt_secret = a=b==\n", err, sizeof(err)) == 0);
    CHECK(strcmp(c.jwt_secret, "a=b==") == 0);
    /* the longest line inih takes (197 bytes) */
    char text[400];
    snprintf(text, sizeof(text), "[auth]\njwt_issuer = %0184d\n", 7);
    CHECKF(load_text(&c, text, err, sizeof(err)) == 0, "%s", err);
    CHECK(strlen(c.jwt_issuer) == 184);
}

static void test_layering(void)
{
    /* a file applies on top of what is there; a failed file changes nothing */
    struct config c;
    char err[512];
    config_defaults(&c);
    CHECK(config_set(&c, "server", "workers", "3", err, sizeof(err)) == 0);
    write_tmp("[log]\nlevel = error\n", strlen("[log]\nlevel = error\n"));
    CHECK(config_load_file(&c, path, err, sizeof(err)) == 0);
    unlink(path);
    CHECK(c.workers == 3 && c.log_level == LOG_ERROR);
    struct config before = c;
    const char *bad = "[server]\nworkers = 5\nmax_connections = x\n";
    write_tmp(bad, strlen(bad));
    CHECK(config_load_file(&c, path, err, sizeof(err)) == -1);
    unlink(path);
    CHECK(memcmp(&c, &before, sizeof(c)) == 0);
}

static void test_budget_keys(void)
{
    /* spend limits are 64-bit micros; bad values name the key and change nothing */
    struct config c, d;
    char err[256];
    config_defaults(&c);
    CHECK(c.budget_user_daily_micros == 0 && c.budget_deployment_daily_micros == 0);
    CHECK(c.budget_turn_max_micros == 0 && c.budget_refresh_ms == 30000);
    CHECK(config_set(&c, "budget", "user_daily_micros", "50000000000", err, sizeof(err)) == 0);
    CHECK(c.budget_user_daily_micros == 50000000000ull);
    CHECK(config_set(&c, "budget", "deployment_daily_micros", "0", err, sizeof(err)) == 0);
    CHECK(config_set(&c, "budget", "turn_max_micros", "2500", err, sizeof(err)) == 0);
    CHECK(c.budget_turn_max_micros == 2500);
    d = c;
    const char *bad[] = {"-1", "1.5", "12x", "10000000000000000000", "abc"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(config_set(&c, "budget", "user_daily_micros", bad[i], err, sizeof(err)) == -1);
        CHECKF(strstr(err, "'user_daily_micros'") != NULL, "%s", err);
    }
    CHECK(config_set(&c, "budget", "refresh_ms", "10", err, sizeof(err)) == -1);
    CHECK(memcmp(&c, &d, sizeof(c)) == 0);
}

static void test_capacity_keys(void)
{
    /* the provisioned capacity's pod count (0 = the store's heartbeat) and heartbeat period */
    struct config c, d;
    char err[256];
    config_defaults(&c);
    CHECK(c.capacity_pods == 0 && c.capacity_refresh_ms == 10000);
    CHECK(config_set(&c, "capacity", "pods", "3", err, sizeof(err)) == 0 && c.capacity_pods == 3);
    CHECK(config_set(&c, "capacity", "refresh_ms", "2000", err, sizeof(err)) == 0);
    CHECK(c.capacity_refresh_ms == 2000);
    d = c;
    CHECK(config_set(&c, "capacity", "pods", "-1", err, sizeof(err)) == -1);
    CHECKF(strstr(err, "'pods'") != NULL, "%s", err);
    CHECK(config_set(&c, "capacity", "pods", "100001", err, sizeof(err)) == -1);
    CHECK(config_set(&c, "capacity", "refresh_ms", "99", err, sizeof(err)) == -1);
    CHECKF(strstr(err, "'refresh_ms'") != NULL, "%s", err);
    CHECK(config_set(&c, "capacity", "tpm", "5", err, sizeof(err)) == -1); /* agents file's */
    CHECK(memcmp(&c, &d, sizeof(c)) == 0);
}

static void test_config_set(void)
{
    struct config c, d;
    char err[256];
    config_defaults(&c);
    d = c;
    CHECK(config_set(&c, "nope", "workers", "1", err, sizeof(err)) == -1);
    CHECK(strcmp(err, "unknown section [nope]") == 0);
    CHECK(config_set(&c, "server", "nope", "1", err, sizeof(err)) == -1);
    CHECK(strcmp(err, "unknown key 'nope' in [server]") == 0);
    CHECK(config_set(&c, "log", "workers", "1", err, sizeof(err)) == -1);
    CHECK(memcmp(&c, &d, sizeof(c)) == 0);

    char big[2000];
    memset(big, 's', sizeof(big));
    big[512] = '\0';
    CHECK(config_set(&c, "auth", "jwt_secret", big, err, sizeof(err)) == -1);
    CHECK(strcmp(err, "bad value for 'jwt_secret': too long (at most 511 bytes)") == 0);
    CHECK(strstr(err, "sss") == NULL); /* never the value */
    big[511] = '\0';
    CHECK(config_set(&c, "auth", "jwt_secret", big, err, sizeof(err)) == 0);
    CHECK(strlen(c.jwt_secret) == 511);
    big[1024] = '\0';
    memset(big, 'w', 1024);
    CHECK(config_set(&c, "server", "web_root", big, err, sizeof(err)) == -1);
    CHECK(strcmp(err, "bad value for 'web_root': too long (at most 1023 bytes)") == 0);
    CHECK(config_set(&c, "auth", "jwt_issuer", "a\tb", err, sizeof(err)) == -1);
    CHECK(strcmp(err, "bad value for 'jwt_issuer': control character") == 0);
    CHECK(config_set(&c, "server", "workers", "1024", err, sizeof(err)) == 0);
    CHECK(c.workers == 1024);
    CHECK(config_set(&c, "server", "workers", "", err, sizeof(err)) == -1);
    CHECK(c.workers == 1024);
}

static void test_origins(void)
{
    struct config c;
    char err[512];
    config_defaults(&c);
    CHECK(config_set(&c, "auth", "allowed_origins", " https://a.example ,http://b:81,null://x", err,
                     sizeof(err)) == 0);
    CHECK(c.num_allowed_origins == 3);
    CHECK(strcmp(c.allowed_origins[0], "https://a.example") == 0);
    CHECK(strcmp(c.allowed_origins[1], "http://b:81") == 0);
    CHECK(config_set(&c, "auth", "allowed_origins", "https://one.example", err, sizeof(err)) == 0);
    CHECK(c.num_allowed_origins == 1); /* replaces, does not append */

    const char *bad[] = {"*",
                         "a.example",
                         "https://",
                         "https://a.example/",
                         "https://a.example/path",
                         "https://a,,https://b",
                         "https://a,",
                         "https://u@a.example",
                         "https://a b",
                         "1http://a",
                         "https://a?x=1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct config before = c;
        CHECKF(config_set(&c, "auth", "allowed_origins", bad[i], err, sizeof(err)) == -1, "%s",
               bad[i]);
        CHECK(memcmp(&c, &before, sizeof(c)) == 0);
    }
    char many[40 * 20] = "";
    for (int i = 0; i < CONFIG_MAX_ORIGINS; i++)
        sprintf(many + strlen(many), "%shttps://h%d", i ? "," : "", i);
    CHECK(config_set(&c, "auth", "allowed_origins", many, err, sizeof(err)) == 0);
    CHECK(c.num_allowed_origins == CONFIG_MAX_ORIGINS);
    strcat(many, ",https://one-too-many");
    CHECK(config_set(&c, "auth", "allowed_origins", many, err, sizeof(err)) == -1);
    CHECK(strcmp(err, "bad value for 'allowed_origins': more than 32 origins") == 0);
    char longo[300] = "https://";
    memset(longo + 8, 'h', 250);
    longo[258] = '\0';
    CHECK(config_set(&c, "auth", "allowed_origins", longo, err, sizeof(err)) == -1);
}

static void test_listen(void)
{
    struct {
        const char *in, *host;
        unsigned port;
    } good[] = {
        {"0.0.0.0:8080", "0.0.0.0", 8080},
        {"127.0.0.1:9000", "127.0.0.1", 9000},
        {"[::1]:9000", "::1", 9000},
        {"[::]:443", "::", 443},
        {":8081", "0.0.0.0", 8081},
        {"localhost:1", "localhost", 1},
        {"chat-1.example.com:65535", "chat-1.example.com", 65535},
        {"127.0.0.1:0", "127.0.0.1", 0},
        {"[::ffff:10.0.0.1]:80", "::ffff:10.0.0.1", 80},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct config c;
        config_defaults(&c);
        CHECKF(config_parse_listen(&c, good[i].in) == 0, "%s", good[i].in);
        CHECKF(strcmp(c.listen_host, good[i].host) == 0 && c.listen_port == good[i].port,
               "%s -> %s %u", good[i].in, c.listen_host, (unsigned)c.listen_port);
    }
    const char *bad[] = {"",
                         "8080",
                         "1.2.3.4",
                         "1.2.3.4:",
                         "1.2.3.4:65536",
                         "1.2.3.4:-1",
                         "1.2.3.4:80x",
                         "1.2.3.4:123456",
                         "1.2.3.4: 80",
                         "::1:9000",
                         "[::1]9000",
                         "[::1]:",
                         "[zz]:80",
                         "[::1:80",
                         "999.1.1.1:80",
                         "1.2.3:80",
                         "host name:80",
                         ":",
                         "-host:80",
                         "[127.0.0.1]:80",
                         "a:b:c"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct config c, d;
        config_defaults(&c);
        d = c;
        CHECKF(config_parse_listen(&c, bad[i]) == -1, "'%s'", bad[i]);
        CHECK(memcmp(&c, &d, sizeof(c)) == 0);
    }
}

static const char *const env_vars[] = {"TRILEMMA_LISTEN",          "TRILEMMA_WORKERS",
                                       "TRILEMMA_JWT_SECRET",      "TRILEMMA_JWT_ISSUER",
                                       "TRILEMMA_JWT_AUDIENCE",    "TRILEMMA_ALLOWED_ORIGINS",
                                       "TRILEMMA_LOG_LEVEL",       "DATABASE_URL",
                                       "TRILEMMA_MODEL",           "TRILEMMA_FALLBACKS",
                                       "OPENAI_BASE_URL",          "ANTHROPIC_BASE_URL",
                                       "GEMINI_BASE_URL",          "OPENAI_API_KEY",
                                       "ANTHROPIC_API_KEY",        "GEMINI_API_KEY",
                                       "TRILEMMA_TRUSTED_PROXIES", "TRILEMMA_ADMIN_LISTEN",
                                       "TRILEMMA_EMBEDDINGS_URL",  "TRILEMMA_EMBEDDINGS_API_KEY"};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
        unsetenv(env_vars[i]);
}

static void test_env(void)
{
    struct config c, d;
    char err[512];
    clear_env();
    config_defaults(&c);
    d = c;
    CHECK(config_apply_env(&c, err, sizeof(err)) == 0);
    CHECK(memcmp(&c, &d, sizeof(c)) == 0);

    setenv("TRILEMMA_LISTEN", "[::1]:9001", 1);
    setenv("TRILEMMA_WORKERS", "2", 1);
    setenv("TRILEMMA_JWT_SECRET", "env-secret-env-secret-env-secret", 1);
    setenv("TRILEMMA_JWT_ISSUER", "https://idp", 1);
    setenv("TRILEMMA_JWT_AUDIENCE", "chat", 1);
    setenv("TRILEMMA_ALLOWED_ORIGINS", "https://a.example,https://b.example", 1);
    setenv("TRILEMMA_LOG_LEVEL", "debug", 1);
    setenv("TRILEMMA_TRUSTED_PROXIES", "10.244.0.0/16", 1);
    setenv("DATABASE_URL", "postgres://u:pw@db/trilemma", 1);
    setenv("TRILEMMA_EMBEDDINGS_URL", "https://api.openai.com/v1/embeddings", 1);
    setenv("TRILEMMA_EMBEDDINGS_API_KEY", "sk-embed", 1);
    CHECKF(config_apply_env(&c, err, sizeof(err)) == 0, "%s", err);
    CHECK(strcmp(c.cache_embeddings_url, "https://api.openai.com/v1/embeddings") == 0);
    CHECK(strcmp(c.cache_embeddings_key, "sk-embed") == 0);
    CHECK(strcmp(c.listen_host, "::1") == 0 && c.listen_port == 9001);
    CHECK(c.workers == 2);
    CHECK(strcmp(c.jwt_secret, "env-secret-env-secret-env-secret") == 0);
    CHECK(strcmp(c.jwt_issuer, "https://idp") == 0 && strcmp(c.jwt_audience, "chat") == 0);
    CHECK(c.num_allowed_origins == 2 && strcmp(c.allowed_origins[1], "https://b.example") == 0);
    CHECK(c.log_level == LOG_DEBUG);
    CHECK(c.trusted_proxies.n == 1 && c.trusted_proxies.nets[0].bits == 96 + 16);
    CHECK(strcmp(c.database_url, "postgres://u:pw@db/trilemma") == 0);
    CHECKF(config_validate(&c, err, sizeof(err)) == 0, "%s", err);

    /* provider keys and routes; the model follows the first key when none is configured */
    clear_env();
    config_defaults(&c);
    setenv("OPENAI_API_KEY", "sk-test", 1);
    setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1", 1);
    CHECKF(config_apply_env(&c, err, sizeof(err)) == 0, "%s", err);
    CHECK(strcmp(c.openai_api_key, "sk-test") == 0);
    CHECK(strcmp(c.openai_base_url, "http://127.0.0.1:9/v1") == 0);
    CHECK(c.model[0] == '\0');
    config_resolve_model(&c);
    CHECK(strcmp(c.model, "openai/gpt-4.1-mini") == 0);
    setenv("TRILEMMA_MODEL", "gemini/gemini-2.5-flash", 1);
    config_defaults(&c);
    CHECKF(config_apply_env(&c, err, sizeof(err)) == 0, "%s", err);
    config_resolve_model(&c);
    CHECK(strcmp(c.model, "gemini/gemini-2.5-flash") == 0);
    clear_env();
    config_defaults(&c);
    config_resolve_model(&c);
    CHECK(strcmp(c.model, "echo") == 0);

    /* empty counts as unset */
    clear_env();
    config_defaults(&c);
    setenv("TRILEMMA_WORKERS", "", 1);
    setenv("TRILEMMA_JWT_SECRET", "", 1);
    CHECK(config_apply_env(&c, err, sizeof(err)) == 0);
    CHECK(memcmp(&c, &d, sizeof(c)) == 0);

    /* a bad value names the variable, leaves the config alone, and never shows the value */
    struct {
        const char *var, *val, *want;
    } bad[] = {
        {"TRILEMMA_WORKERS", "many",
         "TRILEMMA_WORKERS: bad value for 'workers': expected an integer 0..1024"},
        {"TRILEMMA_LISTEN", "1.2.3.4:99999",
         "TRILEMMA_LISTEN: bad value for 'listen': expected HOST:PORT, [IPV6]:PORT or :PORT, "
         "port 0..65535"},
        {"TRILEMMA_LOG_LEVEL", "loud",
         "TRILEMMA_LOG_LEVEL: bad value for 'level': expected debug, info, warn or error"},
        {"TRILEMMA_ALLOWED_ORIGINS", "*",
         "TRILEMMA_ALLOWED_ORIGINS: bad value for 'allowed_origins': entry 1: expected "
         "scheme://host[:port] (no path, at most 255 bytes)"},
        {"TRILEMMA_TRUSTED_PROXIES", "10.0.0.0/8, 10.0.0.1/8",
         "TRILEMMA_TRUSTED_PROXIES: bad value for 'trusted_proxies': entry 2: expected an IPv4 "
         "or IPv6 address or ADDRESS/BITS with no host bits set"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        clear_env();
        config_defaults(&c);
        setenv("TRILEMMA_WORKERS", "3", 1); /* applied before the bad one, then rolled back */
        setenv(bad[i].var, bad[i].val, 1);
        CHECK(config_apply_env(&c, err, sizeof(err)) == -1);
        CHECKF(strcmp(err, bad[i].want) == 0, "%s", err);
        CHECK(memcmp(&c, &d, sizeof(c)) == 0);
    }
    clear_env();
    char big[1100];
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    setenv("TRILEMMA_JWT_SECRET", big, 1);
    CHECK(config_apply_env(&c, err, sizeof(err)) == -1);
    CHECKF(strcmp(err, "TRILEMMA_JWT_SECRET: bad value for 'jwt_secret': too long (at most "
                       "511 bytes)") == 0,
           "%s", err);
    CHECK(strstr(err, "kkk") == NULL);
    clear_env();
    setenv("DATABASE_URL", big, 1);
    CHECK(config_apply_env(&c, err, sizeof(err)) == -1);
    CHECK(strcmp(err, "DATABASE_URL: too long (at most 1023 bytes)") == 0);
    clear_env();
}

static void expect_invalid(struct config *c, const char *needle, int line)
{
    char err[512] = "";
    int rc = config_validate(c, err, sizeof(err));
    if (rc != -1 || !strstr(err, needle)) {
        tap_fail++;
        fprintf(stderr, "test_config.c:%d: rc=%d err='%s', want '%s'\n", line, rc, err, needle);
    } else {
        tap_pass++;
    }
    config_defaults(c);
}

static void test_validate(void)
{
    struct config c;
    config_defaults(&c);
    c.ping_interval_ms = c.idle_timeout_ms;
    expect_invalid(&c, "ping_interval_ms (120000) must be below idle_timeout_ms", __LINE__);
    c.max_text_bytes = c.max_message_bytes + 1;
    expect_invalid(&c, "max_text_bytes (65537) must be 1..max_message_bytes", __LINE__);
    c.rate_messages = 0;
    expect_invalid(&c, "rate_messages", __LINE__);
    c.rate_window_ms = 0;
    expect_invalid(&c, "rate_window_ms", __LINE__);
    c.max_connections_per_ip = c.max_connections + 1;
    expect_invalid(&c, "max_connections_per_ip (20001) must not exceed", __LINE__);
    c.outbound_limit_bytes = c.max_message_bytes - 1;
    expect_invalid(&c, "outbound_limit_bytes", __LINE__);
    strcpy(c.jwt_issuer, "https://idp");
    expect_invalid(&c, "jwt_secret is empty", __LINE__);
    strcpy(c.jwt_audience, "chat");
    expect_invalid(&c, "jwt_secret is empty", __LINE__);
    c.workers = -1;
    expect_invalid(&c, "workers", __LINE__);
    c.log_level = 7;
    expect_invalid(&c, "level", __LINE__);
    c.web_root[0] = '\0';
    expect_invalid(&c, "web_root", __LINE__);

    char err[256];
    strcpy(c.jwt_issuer, "https://idp");
    strcpy(c.jwt_secret, "0123456789abcdef0123456789abcde"); /* 31 bytes */
    expect_invalid(&c, "jwt_secret is 31 bytes: at least 32 are required", __LINE__);
    c.history_max_bytes = c.history_budget_bytes + 1;
    expect_invalid(&c, "history_max_bytes", __LINE__);
    c.history_max_bytes = c.history_budget_bytes;
    strcpy(c.jwt_issuer, "https://idp");
    strcpy(c.jwt_secret, "0123456789abcdef0123456789abcdef");
    c.max_text_bytes = c.max_message_bytes; /* equal is fine */
    CHECK(config_validate(&c, err, sizeof(err)) == 0);
}

/* admin_listen: derived from listen unless set; "off"; the same port as listen is refused.
 * connection_reserve: a tenth of max_connections unless set, and below it. */
static void test_admin_and_reserve(void)
{
    struct config c;
    char err[512];
    config_defaults(&c);
    CHECKF(config_set(&c, "server", "listen", "127.0.0.1:8000", err, sizeof(err)) == 0, "%s", err);
    struct server_conf s = config_server(&c);
    CHECK(strcmp(s.admin_host, "127.0.0.1") == 0 && s.admin_port == CONFIG_ADMIN_PORT);
    CHECK(s.connection_reserve == c.max_connections / 10);
    CHECK(config_set(&c, "server", "admin_listen", "[::1]:9999", err, sizeof(err)) == 0);
    s = config_server(&c);
    CHECK(strcmp(s.admin_host, "::1") == 0 && s.admin_port == 9999);
    CHECK(config_set(&c, "server", "admin_listen", "off", err, sizeof(err)) == 0);
    s = config_server(&c);
    CHECK(s.admin_host[0] == '\0');
    struct config d = c;
    CHECK(config_set(&c, "server", "admin_listen", "9180", err, sizeof(err)) == -1);
    CHECK(strstr(err, "admin_listen") != NULL && memcmp(&c, &d, sizeof(c)) == 0);
    CHECK(config_set(&c, "server", "admin_listen", "", err, sizeof(err)) == -1);

    config_defaults(&c);
    CHECK(config_set(&c, "server", "admin_listen", ":8080", err, sizeof(err)) == 0);
    expect_invalid(&c, "admin_listen is the same port as listen (8080)", __LINE__);
    CHECK(config_set(&c, "server", "listen", "127.0.0.1:9180", err, sizeof(err)) == 0);
    expect_invalid(&c, "admin_listen is the same port as listen (9180)", __LINE__);
    CHECK(config_set(&c, "server", "listen", "127.0.0.1:9180", err, sizeof(err)) == 0);
    CHECK(config_set(&c, "server", "admin_listen", "127.0.0.2:9180", err, sizeof(err)) == 0);
    CHECKF(config_validate(&c, err, sizeof(err)) == 0, "%s", err); /* other host: fine */

    config_defaults(&c);
    CHECK(config_set(&c, "server", "max_connections", "100", err, sizeof(err)) == 0);
    CHECK(config_set(&c, "server", "max_connections_per_ip", "10", err, sizeof(err)) == 0);
    CHECK(config_set(&c, "server", "connection_reserve", "0", err, sizeof(err)) == 0);
    CHECK(config_server(&c).connection_reserve == 0);
    CHECK(config_set(&c, "server", "connection_reserve", "99", err, sizeof(err)) == 0);
    CHECKF(config_validate(&c, err, sizeof(err)) == 0, "%s", err);
    CHECK(config_set(&c, "server", "connection_reserve", "100", err, sizeof(err)) == 0);
    c.max_connections = 100;
    c.max_connections_per_ip = 10;
    c.connection_reserve = 100;
    expect_invalid(&c, "connection_reserve (100) must be below max_connections (100)", __LINE__);

    clear_env();
    setenv("TRILEMMA_ADMIN_LISTEN", "127.0.0.1:0", 1);
    config_defaults(&c);
    CHECKF(config_apply_env(&c, err, sizeof(err)) == 0, "%s", err);
    CHECK(c.admin_set && !c.admin_off && c.admin_port == 0);
    unsetenv("TRILEMMA_ADMIN_LISTEN");
}

int main(void)
{
    test_defaults();
    test_example_file();
    test_every_key();
    test_structure_errors();
    test_trace();
    test_nul_line();
    test_value_errors();
    test_file_open_errors();
    test_lexical();
    test_layering();
    test_config_set();
    test_budget_keys();
    test_capacity_keys();
    test_origins();
    test_listen();
    test_env();
    test_validate();
    test_admin_and_reserve();
    return tap_done();
}
