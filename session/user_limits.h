/* user_limits.h - per-user turn limits shared by every worker of the process: turns running at
 * once and turns started per minute, per user (the token's sub) or, for anonymous sessions, per
 * client address.
 *
 * A small striped table: a user's key (a keyed 64-bit hash) picks one of ULIM_STRIPES stripes,
 * each a mutex over a short array of entries. A turn touches it twice, at its start
 * (ulim_turn_begin: check and count) and at its end (ulim_turn_end), each time holding one
 * stripe's lock for a scan of a few entries and no I/O, so workers meet only when two of them
 * admit turns of users of the same stripe in the same instant. Lock-free alternatives (one
 * atomic counter per fixed slot) would need either a slot per possible user or collisions that
 * make strangers share a limit; a stripe holds exactly the users that are active, and an entry
 * leaves once it is indistinguishable from a fresh one (no turn running, bucket full). */
#ifndef TRILEMMA_SESSION_USER_LIMITS_H
#define TRILEMMA_SESSION_USER_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 0 = no such limit. */
struct ulim_conf {
    uint32_t user_max_turns;  /* turns running at once per user */
    uint32_t user_per_minute; /* turns started per minute per user (a bucket of this many) */
    uint32_t anon_max_turns;  /* the same for anonymous sessions, per client address */
    uint32_t anon_per_minute;
};

enum ulim_verdict {
    ULIM_OK = 0,
    ULIM_CONCURRENT, /* too many turns of this user running */
    ULIM_RATE,       /* too many turns of this user started within the minute */
};

struct ulim;

/* The process's table (conf copied). NULL on allocation failure. */
struct ulim *ulim_create(const struct ulim_conf *conf);
void ulim_destroy(struct ulim *u);

/* The key of a user (anonymous = false: who is the token's sub) or of an anonymous client
 * (who is its address): a hash keyed with a per-table random seed, so the two kinds never meet
 * and nobody can aim at another user's stripe. */
uint64_t ulim_key(const struct ulim *u, const char *who, size_t len, bool anonymous);

/* Admit a turn of key at now_ms (monotonic): ULIM_OK counts it as running and takes one from
 * its bucket (pair with exactly one ulim_turn_end); otherwise nothing changes and *retry_ms says
 * when to try again (for ULIM_RATE: when the bucket holds a turn again; for ULIM_CONCURRENT: a
 * hint, ULIM_CONCURRENT_RETRY_MS, since no turn's end is known in advance). */
#define ULIM_CONCURRENT_RETRY_MS 1000
enum ulim_verdict ulim_turn_begin(struct ulim *u, uint64_t key, bool anonymous, uint64_t now_ms,
                                  uint64_t *retry_ms);

/* A turn admitted by ulim_turn_begin ended (its responder is done). */
void ulim_turn_end(struct ulim *u, uint64_t key);

/* Counters for /metrics (relaxed reads; any thread). */
struct ulim_stats {
    uint64_t users;      /* entries held now (users with a turn running or a recent one) */
    uint64_t running;    /* turns admitted and not yet ended */
    uint64_t limited[3]; /* by verdict: [ULIM_CONCURRENT], [ULIM_RATE] */
};
void ulim_stats(struct ulim *u, struct ulim_stats *out);

#endif
