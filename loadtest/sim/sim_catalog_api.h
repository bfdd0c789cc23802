/* sim_catalog_api.h - the commerce API of trilemma-sim over HTTP: GET /catalog/search,
 * /catalog/products/{id}, /catalog/products/{id}/offers?pincode=, /catalog/policies/{topic},
 * /catalog/orders/{id}, placeholder images, and /catalog/_log (every answered request with its
 * arrival and completion times, so tests can check concurrency from the server's own clock).
 *
 * Each endpoint answers after its own latency (a timer on the worker's loop, never a sleep) and
 * can be made to fail: an error status or no answer at all, at a rate per endpoint (flags) or
 * for one request (header x-sim-fault or query parameter _sim). See docs/sim.md. */
#ifndef TRILEMMA_SIM_CATALOG_API_H
#define TRILEMMA_SIM_CATALOG_API_H

#include <stdbool.h>

#include "loadtest/sim/sim.h"

/* Answer req if its path is /catalog or below it (returns true), else return false. */
bool sim_catalog_api_request(struct sim_worker *sw, struct conn *c, const struct http_request *req);

/* The client of c left (on_http_close): drop its pending answer, if any. */
void sim_catalog_api_closed(struct sim_worker *sw, struct conn *c);

/* The worker stops: free the answers still pending (their connections are gone). */
void sim_catalog_api_fini(struct sim_worker *sw);

/* The default latencies: search 80-250 ms, product 20-60, offers 100-400, policy 10-40,
 * order 20-80; no faults (error status 503 when a rate is set). */
void sim_endpoint_defaults(struct sim_endpoint_opts ep[SIM_NENDPOINTS]);

/* Parse "ms=LO-HI,error_rate=P,status=CODE,timeout_rate=P" (any subset; ms=N for a fixed
 * latency) into o. Returns 0, or -EINVAL (o may be partly changed). */
int sim_endpoint_parse(const char *spec, struct sim_endpoint_opts *o);

/* The endpoint named name ("search", "product", "offers", "policy", "order"), or -1. */
int sim_endpoint_index(const char *name);

#endif
