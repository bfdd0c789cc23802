/* sim_main.c - trilemma-sim: flags, the server on net/, and a clean stop on SIGTERM/SIGINT.
 *
 * Signals are blocked in every thread and taken synchronously with sigwait (as app/main.c
 * does); on a signal the server drains: no new connections, running streams may finish within
 * --drain-ms, then whatever remains is cut. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "app/config.h"
#include "base/log.h"
#include "base/mem.h"
#include "loadtest/sim/sim.h"
#include "loadtest/sim/sim_catalog.h"
#include "loadtest/sim/sim_catalog_api.h"
#include "loadtest/sim/sim_reqlog.h"

#ifndef TRILEMMA_SIM_CATALOG
#define TRILEMMA_SIM_CATALOG "loadtest/sim/catalog/catalog.jsonl"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "usage: trilemma-sim [options]\n"
            "  --listen HOST:PORT      address (default 127.0.0.1:8090; port 0 = any free port)\n"
            "  --workers N             worker threads (default 1)\n"
            "  --ttft-ms MS            mean time to first token (default 300)\n"
            "  --ttft-jitter-ms MS     uniform +- jitter around it (default 100)\n"
            "  --tps N                 tokens per second per stream, +-20%% (default 40;\n"
            "                          0 = the whole answer in one write)\n"
            "  --tokens N              default answer length in tokens (default 60)\n"
            "  --max-streams N         concurrent generations, then 429 (default 0 = no limit)\n"
            "  --tpm N                 output tokens per minute, then 429 (default 0 = no limit)\n"
            "  --error-rate P          share of requests answered with a 5xx (default 0)\n"
            "  --disconnect-rate P     share of streams reset mid-stream (default 0)\n"
            "  --stall-rate P          share of streams stalled mid-stream (default 0)\n"
            "  --seed N                seed of the random faults and jitter (default 1)\n"
            "  --drain-ms MS           on SIGTERM, time running streams get (default 1000)\n"
            "  --catalog PATH          the commerce catalog (default: the generated one)\n"
            "  --catalog-ENDPOINT SPEC latency and faults of search, product, offers, policy,\n"
            "                          order: ms=LO-HI,error_rate=P,status=CODE,timeout_rate=P\n"
            "  --cheap-mistake-rate P  sim-cheap: share of answers with a mistake (default 0.3)\n"
            "  --classifier-error-rate P  sim-classifier: share of wrong types (default 0)\n"
            "  --classifier-ms MS      sim-classifier: time to its answer (default 30)\n"
            "  --cache-ttl-s S         prompt prefixes stay cached S s after use (default 300; 0 = "
            "no cache)\n"
            "  --late-headers          send the response head with the first token, not at once\n"
            "                          (as Go's net/http, e.g. Ollama, does)\n"
            "  --pool NAME:tpm=N,streams=N,ttft-ms=N[,ttft-jitter-ms=J]\n"
            "                          a provisioned deployment served under /ptu/NAME/ with its\n"
            "                          own capacity (tpm counts input + output tokens) and time\n"
            "                          to first token; repeatable (up to 8)\n"
            "  --payg-latency-ms MS    added to the first token outside the pools (default 0)\n"
            "Plain HTTP/1.1 only (no TLS, no HTTP/2): one stream per connection at a time.\n"
            "See docs/sim.md for the [[sim:...]] directives.\n");
}

/* Parse a number in [lo, hi]; exits with a message naming the flag on a bad value. */
static double num(const char *flag, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || d < lo || d > hi) {
        fprintf(stderr, "trilemma-sim: bad value for --%s: '%s' (expected %g..%g)\n", flag, v, lo,
                hi);
        exit(2);
    }
    return d;
}

struct flags {
    const char *listen;
    int workers;
    uint32_t drain_ms;
};

enum flag_kind {
    FLAG_STR,
    FLAG_INT,
    FLAG_U32,
    FLAG_U64,
    FLAG_DBL,
    FLAG_ENDPOINT,
    FLAG_BOOL,
    FLAG_POOL,
};

struct flag_def {
    const char *name;
    enum flag_kind kind;
    void *dst;
    double lo, hi;
};

/* One more --pool into o (exits 2 on a bad value, a name given twice, or too many pools). */
static void add_pool(struct sim_opts *o, const char *v)
{
    char err[160];
    struct sim_pool_opts p;
    if (o->npools == SIM_MAX_POOLS) {
        fprintf(stderr, "trilemma-sim: too many --pool flags (at most %d)\n", SIM_MAX_POOLS);
        exit(2);
    }
    if (sim_pool_parse(v, &p, err, sizeof(err)) < 0) {
        fprintf(stderr,
                "trilemma-sim: bad value for --pool: '%s': %s (expected "
                "NAME:tpm=N,streams=N,ttft-ms=N[,ttft-jitter-ms=J])\n",
                v, err);
        exit(2);
    }
    for (int i = 0; i < o->npools; i++) {
        if (strcmp(o->pools[i].name, p.name) == 0) {
            fprintf(stderr, "trilemma-sim: --pool %s given twice\n", p.name);
            exit(2);
        }
    }
    o->pools[o->npools++] = p;
}

static void set_flag(const struct flag_def *d, const char *v)
{
    if (d->kind == FLAG_STR) {
        *(const char **)d->dst = v;
        return;
    }
    if (d->kind == FLAG_ENDPOINT) {
        if (sim_endpoint_parse(v, d->dst) < 0) {
            fprintf(stderr,
                    "trilemma-sim: bad value for --%s: '%s' (expected "
                    "ms=LO-HI,error_rate=P,status=CODE,timeout_rate=P)\n",
                    d->name, v);
            exit(2);
        }
        return;
    }
    if (d->kind == FLAG_BOOL) {
        *(bool *)d->dst = true;
        return;
    }
    if (d->kind == FLAG_POOL) {
        add_pool(d->dst, v);
        return;
    }
    double x = num(d->name, v, d->lo, d->hi);
    if (d->kind == FLAG_INT)
        *(int *)d->dst = (int)x;
    else if (d->kind == FLAG_U32)
        *(uint32_t *)d->dst = (uint32_t)x;
    else if (d->kind == FLAG_U64)
        *(uint64_t *)d->dst = (uint64_t)x;
    else
        *(double *)d->dst = x;
}

static void parse_flags(int argc, char **argv, struct flags *f, struct sim_opts *o)
{
    const struct flag_def defs[] = {
        {"listen", FLAG_STR, &f->listen, 0, 0},
        {"workers", FLAG_INT, &f->workers, 1, 1024},
        {"ttft-ms", FLAG_U32, &o->ttft_ms, 0, 600000},
        {"ttft-jitter-ms", FLAG_U32, &o->ttft_jitter_ms, 0, 600000},
        {"tps", FLAG_DBL, &o->tps, 0, 1e6},
        {"tokens", FLAG_U32, &o->tokens, 0, 100000},
        {"max-streams", FLAG_U32, &o->max_streams, 0, 1e9},
        {"tpm", FLAG_U64, &o->tpm, 0, 1e15},
        {"error-rate", FLAG_DBL, &o->error_rate, 0, 1},
        {"disconnect-rate", FLAG_DBL, &o->disconnect_rate, 0, 1},
        {"stall-rate", FLAG_DBL, &o->stall_rate, 0, 1},
        {"seed", FLAG_U64, &o->seed, 0, 1e18},
        {"drain-ms", FLAG_U32, &f->drain_ms, 0, 600000},
        {"catalog", FLAG_STR, &o->catalog, 0, 0},
        {"catalog-search", FLAG_ENDPOINT, &o->ep[SIM_EP_SEARCH], 0, 0},
        {"catalog-product", FLAG_ENDPOINT, &o->ep[SIM_EP_PRODUCT], 0, 0},
        {"catalog-offers", FLAG_ENDPOINT, &o->ep[SIM_EP_OFFERS], 0, 0},
        {"catalog-policy", FLAG_ENDPOINT, &o->ep[SIM_EP_POLICY], 0, 0},
        {"catalog-order", FLAG_ENDPOINT, &o->ep[SIM_EP_ORDER], 0, 0},
        {"cheap-mistake-rate", FLAG_DBL, &o->cheap_mistake_rate, 0, 1},
        {"classifier-error-rate", FLAG_DBL, &o->classifier_error_rate, 0, 1},
        {"classifier-ms", FLAG_U32, &o->classifier_ms, 0, 600000},
        {"late-headers", FLAG_BOOL, &o->late_headers, 0, 0},
        {"cache-ttl-s", FLAG_U32, &o->cache_ttl_s, 0, 86400},
        {"pool", FLAG_POOL, o, 0, 0},
        {"payg-latency-ms", FLAG_U32, &o->payg_latency_ms, 0, 600000},
    };
    enum { NDEFS = sizeof(defs) / sizeof(defs[0]), FIRST = 256 };
    struct option opts[NDEFS + 2];
    for (int i = 0; i < NDEFS; i++)
        opts[i] = (struct option){defs[i].name,
                                  defs[i].kind == FLAG_BOOL ? no_argument : required_argument, NULL,
                                  FIRST + i};
    opts[NDEFS] = (struct option){"help", no_argument, NULL, 'h'};
    opts[NDEFS + 1] = (struct option){NULL, 0, NULL, 0};
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == 'h') {
            usage(stdout);
            exit(0);
        }
        if (ch < FIRST || ch >= FIRST + NDEFS) {
            usage(stderr);
            exit(2);
        }
        set_flag(&defs[ch - FIRST], optarg);
    }
    if (optind < argc) {
        fprintf(stderr, "trilemma-sim: unexpected argument '%s'\n", argv[optind]);
        exit(2);
    }
}

/* Fill o with the defaults (docs/sim.md). */
void sim_opts_defaults(struct sim_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->ttft_ms = 300;
    o->ttft_jitter_ms = 100;
    o->tps = 40;
    o->tokens = 60;
    o->seed = 1;
    sim_endpoint_defaults(o->ep);
    o->cheap_mistake_rate = 0.3;
    o->classifier_ms = 30;
    o->cache_ttl_s = 300;
}

static char catalog_err[512]; /* why the default catalog did not load, said once listening */

/* The catalog: --catalog must load; the default is looked for where the build put the source
 * tree, then under the working directory, and the API answers 503 without it. */
static int load_catalog(struct sim *sim)
{
    char *err = catalog_err;
    size_t errcap = sizeof(catalog_err);
    const char *path = sim->o.catalog;
    if (!path) {
        FILE *f = fopen(TRILEMMA_SIM_CATALOG, "rb");
        path = f ? TRILEMMA_SIM_CATALOG : "loadtest/sim/catalog/catalog.jsonl";
        if (f)
            fclose(f);
    }
    sim->catalog = sim_catalog_load(path, err, errcap);
    if (!sim->catalog && sim->o.catalog) {
        fprintf(stderr, "trilemma-sim: %s\n", err);
        return -1;
    }
    return 0;
}

/* A server configuration for the simulator: many connections from one address are normal
 * (a load generator), no static files. */
static int sim_config(const struct flags *f, struct config *conf)
{
    config_defaults(conf);
    if (config_parse_listen(conf, f->listen ? f->listen : "127.0.0.1:8090") < 0) {
        fprintf(stderr, "trilemma-sim: bad --listen '%s' (HOST:PORT)\n", f->listen);
        return -1;
    }
    conf->workers = f->workers;
    conf->web_root[0] = '\0';
    conf->max_connections = 1000000;
    conf->max_connections_per_ip = 1000000;
    conf->max_header_bytes = 65536;
    conf->drain_timeout_ms = f->drain_ms;
    conf->admin_set = conf->admin_off = true; /* its /healthz and /metrics stay on its one port */
    return 0;
}

/* Connections need file descriptors: take the hard limit. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int run(struct sim *sim, const struct config *conf, sigset_t *set)
{
    struct server_hooks hooks;
    sim_server_hooks(&hooks, sim);
    struct server_conf sconf = config_server(conf);
    struct server *srv = server_create(&sconf, &hooks);
    if (!srv)
        return 1;
    sim->nworkers = server_worker_count(srv);
    sim->stats = xcalloc((size_t)sim->nworkers, sizeof(*sim->stats));
    int ret = server_start(srv);
    if (ret < 0) {
        log_error("cannot listen on %s:%u: %s", conf->listen_host, conf->listen_port,
                  strerror(-ret));
        server_destroy(srv);
        xfree(sim->stats);
        return 1;
    }
    const char *host = conf->listen_host;
    bool v6 = strchr(host, ':') != NULL;
    fprintf(stderr, "trilemma-sim listening on http://%s%s%s:%u/\n", v6 ? "[" : "", host,
            v6 ? "]" : "", server_port(srv));
    if (!sim->catalog) /* after the line above, which scripts and tests wait for first */
        log_warn("trilemma-sim: no catalog (%s): /catalog answers 503", catalog_err);
    int sig = 0;
    sigwait(set, &sig);
    log_info("trilemma-sim: %s, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server_drain(srv);
    server_wait(srv);
    server_destroy(srv);
    xfree(sim->stats);
    return 0;
}

/* Parse the flags, serve until SIGTERM or SIGINT, exit 0 (2 for bad flags, 1 when the
 * address cannot be bound). */
int main(int argc, char **argv)
{
    struct flags f = {.workers = 1, .drain_ms = 1000};
    static struct sim sim;
    struct config conf;
    sim_opts_defaults(&sim.o);
    parse_flags(argc, argv, &f, &sim.o);
    if (sim_config(&f, &conf) < 0)
        return 2;
    log_set_level(LOG_WARN);
    raise_nofile();

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* inherited by the workers */
    signal(SIGPIPE, SIG_IGN);

    if (load_catalog(&sim) < 0)
        return 2;
    sim_capacity_init(&sim);
    int ret = run(&sim, &conf, &set);
    sim_capacity_fini(&sim);
    sim_catalog_destroy(sim.catalog);
    sim_reqlog_fini();
    return ret;
}
