/* capacity_store.h - provisioned capacity in the store (issue 15, docs/store.md "Provisioned
 * capacity"): the deployments' hourly prices that the cost reports apportion to the turns each
 * hour served, and the pods' heartbeat from which each pod learns how many share a deployment.
 *
 * A model call served by a provisioned deployment is stored with tier "provisioned" and its
 * deployment (struct llm_call_record), on its llm_calls row and its ledger line; the hourly price
 * is never a ledger line (the ledger holds what each turn cost per token), it is apportioned
 * when a report is read (store/api_capacity.c). */
#ifndef TRILEMMA_STORE_CAPACITY_STORE_H
#define TRILEMMA_STORE_CAPACITY_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define STORE_CAPACITY_MAX 64 /* deployments with an hourly price */

struct store_capacity_price {
    char deployment[32];   /* the agents file's [capacity NAME]: 1..31 bytes of [a-z0-9_-] */
    int64_t hourly_micros; /* the whole deployment's price per hour, in currency (>= 0) */
    char currency[4];      /* "INR" / "USD" */
};

/* Set the hourly prices the cost reports apportion (process-wide: every worker's reports use
 * them), replacing the previous set. p[0..n) is copied; thread-safe, any time (app/ calls it
 * once the agents file is read, before or after the workers start). Returns 0, or -EINVAL
 * (a bad name, a negative price, an unknown currency, a name given twice; the previous set
 * stays) or -E2BIG (n > STORE_CAPACITY_MAX). n == 0 clears them. */
int store_set_capacity_prices(const struct store_capacity_price *p, size_t n);

/* Copy the current prices into out[0..cap); returns how many there are (may exceed cap). */
size_t store_capacity_prices(struct store_capacity_price *out, size_t cap);

/* The heartbeat's answer: pods >= 1 (this one included), or -1 when PostgreSQL is away or the
 * statement failed (a pod id of 0 or more than 255 bytes is refused by the table). */
typedef void (*store_pods_fn)(void *ctx, int pods);

/* One heartbeat of this process, on the worker's reader connection (one statement, no
 * transaction of its own): upsert pods(pod_id) with the database's now(), delete the other
 * rows not seen for stale_ms, and answer the number of live pods: this one plus those seen
 * within stale_ms. fn runs once on a later loop turn, never inside this call, unless
 * store_pods_cancel(op) comes first. st must not be NULL (no store: the caller counts 1). */
struct store_op *store_pods_beat(struct store *st, const char *pod_id, uint32_t stale_ms,
                                 store_pods_fn fn, void *ctx);

/* Drop a pending heartbeat: its fn will not run. op must still be pending; NULL is fine. */
void store_pods_cancel(struct store_op *op);

#endif
