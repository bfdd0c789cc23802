/* budget.h - daily spend limits per user and per deployment, process-wide (issue 15).
 *
 * A turn is admitted or refused at its start from this table alone: no database read on the turn
 * path. What a user spent today is db + pending + fresh: db as the last read of the ledger said
 * (store/spend.h: every user's spend since the UTC day began, one grouped query), fresh the
 * committed turns of this process since, pending those of a read still in flight. A read
 * (budget_refresh_begin .. budget_refresh_end) runs at start (blocking, on the main thread) and
 * then every refresh_ms on one worker's reader connection; it replaces db and forgets pending
 * (those turns are in the ledger it read). So this process never misses its own spend, and sees
 * the other pods' spend at most one refresh interval late: with P pods, a limit can be overshot by
 * what the other P - 1 pods spend within one refresh_ms (plus the turns running at the moment
 * the limit is reached, which are counted when they commit). See docs/session.md.
 *
 * The table is striped like user_limits.h: a user's key picks a stripe (a mutex over an
 * open-addressing table); a turn's check and its commit each take one stripe's lock for a lookup.
 */
#ifndef TRILEMMA_SESSION_BUDGET_H
#define TRILEMMA_SESSION_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/spend.h"

/* Micros of the deployment's currency; 0 = no such limit. */
struct budget_conf {
    int64_t user_daily_micros;
    int64_t deployment_daily_micros;
};

enum budget_verdict {
    BUDGET_OK = 0,
    BUDGET_USER,       /* this user spent their day's limit */
    BUDGET_DEPLOYMENT, /* the deployment spent its day's limit */
};

#define BUDGET_DAY_MS 86400000LL

/* The UTC midnight at or before unix_ms (the start of its day); the next one is + BUDGET_DAY_MS:
 * the moment a refused user's budget resets. */
int64_t budget_day_start(int64_t unix_ms);

/* The decision alone (pure): a limit is reached once what was spent is at or above it. The
 * deployment's limit applies to every turn, a user's to turns with a user (anonymous = false). */
enum budget_verdict budget_decide(const struct budget_conf *c, bool anonymous, int64_t user_spent,
                                  int64_t deployment_spent);

struct budget;

/* The process's table (conf copied). Never NULL. */
struct budget *budget_create(const struct budget_conf *conf);
void budget_destroy(struct budget *b);

/* Whether a turn of user ("" = anonymous) may start at now_unix_ms. Refused: *spent and *limit
 * say which total reached which limit (both micros). Any thread. */
enum budget_verdict budget_check(struct budget *b, const char *user, int64_t now_unix_ms,
                                 int64_t *spent, int64_t *limit);

/* A turn of user started at started_unix_ms cost micros (it has ended and is committed): counted
 * towards that day, if it is still today's. Any thread. */
void budget_add(struct budget *b, const char *user, int64_t started_unix_ms, int64_t micros);

/* A read of the ledger starts at now_unix_ms: returns the day start to read from. One read at a
 * time (the caller serialises). */
int64_t budget_refresh_begin(struct budget *b, int64_t now_unix_ms);

/* The read begun for day ended: ok with rows (every user's spend that day; "" = anonymous, counted
 * for the deployment only) replaces what the table knew of that day; !ok keeps it. */
void budget_refresh_end(struct budget *b, int64_t day, bool ok, const struct store_spend_row *rows,
                        size_t n);

/* Counters for /metrics: refusals by verdict, reads of the ledger done and failed. */
struct budget_stats {
    uint64_t refused[3];
    uint64_t refreshes, refresh_failures;
    int64_t deployment_spent; /* today, as this process knows it */
};
void budget_stats(struct budget *b, int64_t now_unix_ms, struct budget_stats *out);

#endif
