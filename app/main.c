/* main.c - trilemmad: read the configuration, start the workers, wait for SIGTERM/SIGINT, drain.
 *
 * Signals are blocked in every thread and taken synchronously here with sigwait, so no worker
 * is ever interrupted and no handler runs in signal context. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "app/config.h"
#include "app/orch_setup.h"
#include "orchestrator/capacity.h"
#include "orchestrator/tool.h"
#include "base/log.h"
#include "net/server.h"
#include "session/session.h"
#include "store/store.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: trilemmad [--config FILE] [--listen HOST:PORT] [--admin-listen HOST:PORT] "
               "[--workers N] [--check-config]\n"
               "  --config FILE    INI configuration (docs/config.md)\n"
               "  --listen H:P     address to listen on (overrides [server] listen)\n"
               "  --admin-listen H:P|off  /healthz, /readyz, /metrics (overrides [server] "
               "admin_listen)\n"
               "  --workers N      worker threads, 0 = one per CPU\n"
               "  --check-config   validate the configuration and exit\n"
               "  --migrate        apply database migrations (DATABASE_URL) and exit\n"
               "  --migrations DIR the migration files (default store/migrations)\n"
               "  --no-migrate     do not apply migrations at start (a Job runs --migrate)\n");
}

struct flags {
    const char *config;
    const char *listen;
    const char *admin_listen;
    const char *workers;
    const char *migrations;
    bool check;
    bool migrate;
    bool no_migrate;
};

static int parse_flags(int argc, char **argv, struct flags *f)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"admin-listen", required_argument, NULL, 'a'},
        {"workers", required_argument, NULL, 'w'},
        {"check-config", no_argument, NULL, 'k'},
        {"migrate", no_argument, NULL, 'm'},
        {"migrations", required_argument, NULL, 'M'},
        {"no-migrate", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "c:l:w:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            f->config = optarg;
            break;
        case 'l':
            f->listen = optarg;
            break;
        case 'a':
            f->admin_listen = optarg;
            break;
        case 'w':
            f->workers = optarg;
            break;
        case 'k':
            f->check = true;
            break;
        case 'm':
            f->migrate = true;
            break;
        case 'M':
            f->migrations = optarg;
            break;
        case 'n':
            f->no_migrate = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "trilemmad: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* defaults < file < environment < flags */
static int build_config(const struct flags *f, struct config *conf)
{
    char err[512];
    config_defaults(conf);
    if (f->config && config_load_file(conf, f->config, err, sizeof(err)) < 0)
        goto out_err;
    if (config_apply_env(conf, err, sizeof(err)) < 0)
        goto out_err;
    if (f->listen && config_set(conf, "server", "listen", f->listen, err, sizeof(err)) < 0)
        goto out_err;
    if (f->admin_listen &&
        config_set(conf, "server", "admin_listen", f->admin_listen, err, sizeof(err)) < 0)
        goto out_err;
    if (f->workers && config_set(conf, "server", "workers", f->workers, err, sizeof(err)) < 0)
        goto out_err;
    config_resolve_model(conf);
    if (config_validate(conf, err, sizeof(err)) < 0)
        goto out_err;
    return 0;
out_err:
    fprintf(stderr, "trilemmad: %s\n", err);
    return -1;
}

/* Load the tools file strictly (its mistakes stop the start, naming the tool and the key).
 * Nothing keeps the set yet: the turn plan will take it from here. Returns 0 or -1. */
static int check_tools(const struct config *conf)
{
    char err[512];
    if (!conf->tools_file[0])
        return 0;
    struct tool_set *ts = tool_set_load(conf->tools_file, err, sizeof(err));
    if (!ts) {
        fprintf(stderr, "trilemmad: tools: %s\n", err);
        return -1;
    }
    tool_set_free(ts);
    return 0;
}

static int migrate_and_exit(const struct config *conf, const char *dir)
{
    char err[512];
    if (!conf->database_url[0]) {
        fprintf(stderr, "trilemmad: --migrate needs DATABASE_URL\n");
        return 2;
    }
    struct store_conf sc = config_store(conf);
    if (store_migrate(&sc, dir, err, sizeof(err)) < 0) {
        fprintf(stderr, "trilemmad: migrate: %s\n", err);
        return 1;
    }
    printf("migrations applied\n");
    return 0;
}

/* With a database: migrate (advisory-locked, so many pods may start at once) and replay spill
 * journals left by an earlier process, before any worker runs. PostgreSQL being away is not
 * fatal: the workers journal until it is back. */
static void prepare_store(struct config *conf, const char *dir, bool migrate)
{
    char err[512];
    if (!conf->database_url[0]) {
        log_warn("store: no DATABASE_URL - conversations are not stored, resume is unavailable");
        return;
    }
    struct store_conf sc = config_store(conf);
    if (migrate && store_migrate(&sc, dir, err, sizeof(err)) < 0)
        log_error("store: migrations not applied (%s); writes are journaled until they are", err);
    int n = store_replay_journals(&sc, &conf->db_id, err, sizeof(err));
    if (n < 0)
        log_error("store: journal replay: %s", err);
    else if (n > 0)
        log_info("store: replayed %d turns from earlier spill journals", n);
}

static void set_pods(void *ctx, int pods)
{
    capacity_set_pods(ctx, (uint32_t)pods);
}

/* [capacity] pods = 0: the provisioned capacity's share follows the live pods the store's
 * heartbeat counts (1 until it answers, and without a database). */
static void watch_pods(const struct config *conf, const struct orchestrator *orch)
{
    struct capacity *cap = orchestrator_capacity(orch);
    if (cap && !conf->capacity_pods && conf->database_url[0])
        session_pods_watch(set_pods, cap, conf->capacity_refresh_ms);
}

int main(int argc, char **argv)
{
    struct flags f = {0};
    struct config conf;
    if (parse_flags(argc, argv, &f) < 0 || build_config(&f, &conf) < 0)
        return 2;
    if (!f.migrations)
        f.migrations = "store/migrations";
    if (f.migrate)
        return migrate_and_exit(&conf, f.migrations);
    if (f.check) {
        char err[512];
        struct orchestrator *orch = orchestrator_create(&conf, err, sizeof(err));
        if (!orch) {
            fprintf(stderr, "trilemmad: %s\n", err);
            return 2;
        }
        orchestrator_destroy(orch);
        if (check_tools(&conf) < 0)
            return 2;
        printf("configuration ok\n");
        return 0;
    }
    log_set_level((enum log_level)conf.log_level);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("curl_global_init failed");
        return 1;
    }
    char err[512];
    struct orchestrator *orch = orchestrator_create(&conf, err, sizeof(err));
    if (!orch) {
        fprintf(stderr, "trilemmad: %s\n", err);
        return 2;
    }
    session_set_responder(orchestrator_responder(orch));
    watch_pods(&conf, orch);
    if (check_tools(&conf) < 0)
        return 2;
    prepare_store(&conf, f.migrations, !f.no_migrate);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* inherited by the workers */
    signal(SIGPIPE, SIG_IGN);

    struct server_hooks hooks;
    session_hooks(&hooks);
    session_limits_init(&conf);
    struct server_conf sconf = config_server(&conf);
    struct server *srv = server_create(&sconf, &hooks);
    if (!srv) {
        session_limits_fini();
        orchestrator_destroy(orch);
        return 1;
    }
    int ret = server_start(srv);
    if (ret < 0) {
        log_error("cannot listen on %s:%u (admin: %s:%u): %s", conf.listen_host, conf.listen_port,
                  sconf.admin_host[0] ? sconf.admin_host : "off", sconf.admin_port, strerror(-ret));
        server_destroy(srv);
        session_limits_fini();
        orchestrator_destroy(orch);
        return 1;
    }
    if (!conf.jwt_secret[0])
        log_warn("auth: OPEN - no TRILEMMA_JWT_SECRET set, every session is anonymous");
    const char *host = strcmp(conf.listen_host, "0.0.0.0") == 0 ? "127.0.0.1" : conf.listen_host;
    char routes[1024];
    orchestrator_describe(orch, routes, sizeof(routes));
    log_info("model: %s", routes);
    log_info("trilemma listening on http://%s%s%s:%u/ (%d workers)", strchr(host, ':') ? "[" : "",
             host, strchr(host, ':') ? "]" : "", server_port(srv), server_worker_count(srv));
    if (server_admin_port(srv))
        log_info("admin (/healthz, /readyz, /metrics) on %s%s%s:%u",
                 strchr(sconf.admin_host, ':') ? "[" : "", sconf.admin_host,
                 strchr(sconf.admin_host, ':') ? "]" : "", server_admin_port(srv));

    int sig = 0;
    sigwait(&set, &sig);
    log_info("%s: draining (up to %u ms)", sig == SIGINT ? "SIGINT" : "SIGTERM",
             conf.drain_timeout_ms);
    server_drain(srv);
    server_wait(srv);
    server_destroy(srv);
    session_limits_fini();
    orchestrator_destroy(orch);
    curl_global_cleanup();
    log_info("stopped");
    return 0;
}
