/* sim.h - trilemma-sim, the simulated model provider: process-wide options, the capacity shared
 * by all workers (concurrent streams and tokens per minute, of the pay-as-you-go deployment and
 * of each provisioned pool), and each worker's state.
 *
 * The simulator runs on net/ (the project's own io_uring HTTP server): every worker answers the
 * requests it accepted, streams their answers with one timer per stream, and shares only the
 * capacity counters with the other workers (an atomic and a mutex-protected minute window,
 * touched once per request). See docs/sim.md. */
#ifndef TRILEMMA_SIM_H
#define TRILEMMA_SIM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "net/server.h"
#include "stream/json.h"

enum sim_format {
    SIM_OPENAI,    /* POST /v1/chat/completions */
    SIM_ANTHROPIC, /* POST /v1/messages */
    SIM_GEMINI,    /* POST /v1beta/models/{model}:streamGenerateContent?alt=sse */
    SIM_NFORMATS,
};

/* The commerce API's endpoints (GET /catalog/...), each with its own latency and faults. */
enum sim_endpoint {
    SIM_EP_SEARCH,  /* /catalog/search */
    SIM_EP_PRODUCT, /* /catalog/products/{id} */
    SIM_EP_OFFERS,  /* /catalog/products/{id}/offers */
    SIM_EP_POLICY,  /* /catalog/policies/{topic} */
    SIM_EP_ORDER,   /* /catalog/orders/{id} */
    SIM_NENDPOINTS,
};

struct sim_endpoint_opts {
    uint32_t min_ms, max_ms; /* latency, uniform in [min, max] */
    double error_rate;       /* share answered with error_status */
    int error_status;        /* 400..599 (default 503) */
    double timeout_rate;     /* share never answered (the client's timeout ends them) */
};

struct sim_catalog;

enum {
    SIM_MAX_POOLS = 8,
    SIM_POOL_NAME_MAX = 32, /* 1..31 bytes of [a-z0-9_-] and the NUL */
};

/* A provisioned deployment (--pool): requests under /ptu/NAME/ get its capacity and its time to
 * first token (a deployment in the caller's region). */
struct sim_pool_opts {
    char name[SIM_POOL_NAME_MAX];
    uint64_t tpm;            /* input + output tokens per minute; 0 = unlimited */
    uint32_t streams;        /* concurrent generations; 0 = unlimited */
    uint32_t ttft_ms;        /* mean time to first token (the tiers' multipliers apply on top) */
    uint32_t ttft_jitter_ms; /* uniform +- around it (default 0) */
};

struct sim_opts {
    uint32_t ttft_ms;        /* mean time to first token */
    uint32_t ttft_jitter_ms; /* uniform +- around the mean */
    double tps;              /* tokens per second per stream; 0 = everything in one write */
    uint32_t tokens;         /* default answer length */
    uint32_t max_streams;    /* concurrent generations in the process; 0 = unlimited */
    uint64_t tpm;            /* output tokens per minute in the process; 0 = unlimited */
    double error_rate;       /* share of requests answered with a 5xx */
    double disconnect_rate;  /* share of streams reset mid-stream */
    double stall_rate;       /* share of streams that stop sending mid-stream */
    uint64_t seed;           /* random faults, jitter, and the cheap tier's mistakes */
    const char *catalog;     /* path of catalog.jsonl */
    struct sim_endpoint_opts ep[SIM_NENDPOINTS];
    double cheap_mistake_rate;    /* sim-cheap: share of grounded answers with a mistake */
    double classifier_error_rate; /* sim-classifier: share of wrong query types */
    uint32_t classifier_ms;       /* sim-classifier: time to its answer */
    bool late_headers;    /* response head with the first token, not at once (Go's net/http) */
    uint32_t cache_ttl_s; /* how long a prompt prefix stays readable from the cache; 0 = none */
    struct sim_pool_opts pools[SIM_MAX_POOLS];
    int npools;
    uint32_t payg_latency_ms; /* added to the first token outside the pools (another region) */
};

/* Counters of one worker, read by /metrics from another thread (relaxed). */
struct sim_stats {
    atomic_ullong requests[SIM_NFORMATS];
    atomic_ullong tokens_out;   /* content tokens written (text and tool-call fragments) */
    atomic_ullong refused;      /* 429 for capacity */
    atomic_ullong errors;       /* error responses answered on purpose (directives, faults) */
    atomic_ullong bad_requests; /* 4xx for malformed requests */
    atomic_ullong streams_done; /* generations that ran to their end */
    atomic_ullong streams_cut;  /* reset, stalled or ended by an error event */
    atomic_ullong client_left;  /* the client went away before the end */
    atomic_uint active;         /* generations of this worker in flight */
    char pad[64];               /* keep workers' counters on separate cache lines */
};

enum { SIM_TPM_WINDOW = 60 }; /* one bucket per second */

/* One deployment's limits and use, shared by the workers: the pay-as-you-go one (--max-streams,
 * --tpm, charged output tokens) or a pool (--pool, charged input + output tokens). */
struct sim_cap {
    uint32_t max_streams;           /* 0 = unlimited */
    uint64_t tpm;                   /* 0 = unlimited (the window is kept anyway, for /metrics) */
    atomic_uint streams;            /* generations in flight */
    pthread_mutex_t lock;           /* the window */
    uint64_t sec[SIM_TPM_WINDOW];   /* the second each bucket counts, or 0 */
    uint64_t count[SIM_TPM_WINDOW]; /* tokens charged in that second */
    atomic_ullong admitted;         /* generations admitted */
    atomic_ullong refused_streams;  /* 429s: too many streams */
    atomic_ullong refused_tokens;   /* 429s: tokens per minute */
};

/* State shared by every worker. */
struct sim {
    struct sim_opts o;
    struct sim_cap payg;                 /* requests outside the pools */
    struct sim_cap pools[SIM_MAX_POOLS]; /* [o.npools] */
    struct sim_stats *stats;             /* [nworkers], allocated before the workers start */
    struct sim_catalog *catalog;         /* NULL: /catalog answers 503 */
    int nworkers;
};

struct sim_table;
struct sim_pending;

/* One worker's state (created on the worker thread by worker_init). */
struct sim_worker {
    struct sim *sim;
    struct worker *w;
    struct loop *loop;
    json_doc *doc;               /* one parser for every request of this worker */
    struct buf out;              /* scratch: wire bytes of the event being written */
    uint64_t rng;                /* jitter and random faults */
    uint64_t next_id;            /* makes response ids unique */
    struct sim_table *prefixes;  /* prompt-prefix hashes seen before: the cached-token model */
    struct sim_table *attempts;  /* conversation hash -> requests seen (fail_first) */
    struct sim_stats *st;        /* &sim->stats[worker index] */
    json_doc *aux;               /* tool results read out of a request */
    struct sim_pending *pending; /* catalog answers waiting for their latency */
};

/* Fill o with the defaults (docs/sim.md). */
void sim_opts_defaults(struct sim_opts *o);

/* The hooks for net/ (on_request, on_http_close, worker_init/fini, metrics). `sim` must outlive
 * the server. */
void sim_server_hooks(struct server_hooks *h, struct sim *sim);

/* ---- capacity (sim_capacity.c): called from any worker ---- */

/* Set up s->payg from o.max_streams / o.tpm and s->pools from o.pools (before the workers). */
void sim_capacity_init(struct sim *s);
void sim_capacity_fini(struct sim *s);
/* Admit one generation that charges `tokens` to deployment c at time now_ms (monotonic).
 * Returns 0 (counted: release it with sim_capacity_release), or -EBUSY with *retry_after set to
 * whole seconds, and *why to "streams" or "tokens" (counted in c's refused_*). */
int sim_capacity_admit(struct sim_cap *c, uint64_t tokens, uint64_t now_ms, uint32_t *retry_after,
                       const char **why);
/* A generation admitted by sim_capacity_admit ended. */
void sim_capacity_release(struct sim_cap *c);
/* Tokens charged to c in the minute ending at now_ms. */
uint64_t sim_capacity_window(struct sim_cap *c, uint64_t now_ms);

/* ---- pools (sim_pool.c) ---- */

/* Parse a --pool value "NAME:tpm=N,streams=N,ttft-ms=N[,ttft-jitter-ms=J]" into p. Returns 0,
 * or -EINVAL with a message for the user in err. */
int sim_pool_parse(const char *spec, struct sim_pool_opts *p, char *err, size_t errcap);

#endif
