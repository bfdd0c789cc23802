/* spend.h - what each user spent since a moment, summed from the cost ledger: the source of the
 * daily spend limits (session/budget.h). One grouped read returns every user who spent anything
 * in the window (anonymous turns under the user ""), in the deployment's currency: each ledger
 * line in the other currency is converted at the rate recorded on that line. Cache savings
 * (kind cache_saving) are not spend. */
#ifndef TRILEMMA_STORE_SPEND_H
#define TRILEMMA_STORE_SPEND_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct store_spend_row {
    const char *user_sub; /* "" = anonymous */
    int64_t micros;
};

/* result 0: rows[0..n) valid during the call only; -EIO: PostgreSQL is away or the read failed
 * (rows NULL). */
typedef void (*store_spend_fn)(void *ctx, int result, const struct store_spend_row *rows, size_t n);

/* Read the spend of every user on ledger lines of turns started at or after since_unix_ms, in
 * currency ("INR" / "USD"), on the worker's reader connection. fn runs once on a later loop turn
 * unless store_spend_cancel(op) comes first. st must not be NULL. */
struct store_op *store_read_spend(struct store *st, int64_t since_unix_ms, const char *currency,
                                  store_spend_fn fn, void *ctx);
/* Drop a read of store_read_spend before its answer (fn never runs) and free what it holds. */
void store_spend_cancel(struct store_op *op);

/* The same, blocking, on a connection of its own (the main thread at start). Returns 0 (fn ran)
 * or -1 with err (PostgreSQL away: fn did not run). */
int store_read_spend_blocking(const struct store_conf *conf, int64_t since_unix_ms,
                              const char *currency, store_spend_fn fn, void *ctx, char *err,
                              size_t errlen);

#endif
