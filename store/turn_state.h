/* turn_state.h - which turns are running, and in which process, as rows of turn_state
 * (store/migrations/007_turn_state.sql), so that a resume on any pod can wait for a turn that
 * is still running elsewhere, and never for one whose process died.
 *
 * One per worker, on the worker's store (its reader connection): nothing here ever waits for
 * PostgreSQL before a turn streams. A turn's row is written when it starts (fire and forget, in
 * the reader's pipeline), its lease renewed every lease_ms / 3 while it runs here, and deleted
 * by the database when the turn's `turns` row is committed (a trigger). While PostgreSQL is away
 * the row is simply not written (or not renewed): the turn goes to the journal as any other,
 * and a finder takes the stale row for an interrupted turn (docs/store.md, "Running turns"). */
#ifndef TRILEMMA_STORE_TURN_STATE_H
#define TRILEMMA_STORE_TURN_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

struct tstate;
struct tstate_wait;
struct tstate_claim;

/* owner names this worker of this process ("host/pid/boot-ms/w0"; at most 200 bytes, copied);
 * the part before its last '/' names the process. lease_ms: how long a row stays live without
 * renewal. st must outlive the tstate. NULL when st is NULL. */
struct tstate *tstate_create(struct store *st, const char *owner, uint32_t lease_ms);
void tstate_destroy(struct tstate *ts);

/* A turn started here: write its row and renew its lease until tstate_end. Ids are 32 hex
 * (copied). Returns at once; failures are only counted (the turn does not depend on it). */
void tstate_begin(struct tstate *ts, const char *turn_id, const char *conversation_id,
                  const char *user_sub, int64_t started_unix_ms);
/* The turn is being handed to the store (its commit deletes its row). If its row's insert has
 * not been answered yet, the insert might land after that commit's delete (it checks for the
 * turns row, but in its own snapshot): then tstate_end deletes the row itself, after the insert
 * on the same connection. */
void tstate_committing(struct tstate *ts, const char *turn_id);
/* The turn is no longer running here (committed, journaled or dropped): stop renewing it. */
void tstate_end(struct tstate *ts, const char *turn_id);

/* Has a resume elsewhere claimed the turn (it waits for its end)? fn(ctx, 1) yes, fn(ctx, 0) no
 * (or no row), fn(ctx, -EIO) unknown. Runs once, on a later loop turn, unless
 * tstate_claim_cancel(the returned handle) is called first. */
typedef void (*tstate_claimed_fn)(void *ctx, int claimed);
struct tstate_claim *tstate_claimed(struct tstate *ts, const char *turn_id, tstate_claimed_fn fn,
                                    void *ctx);
void tstate_claim_cancel(struct tstate_claim *c);

/* What a wait found. */
struct tstate_found {
    int result;           /* 0; -ETIMEDOUT (deadline passed); -EIO (PostgreSQL away) */
    bool waited;          /* a turn of the conversation was running: we waited for its end */
    bool same_process;    /* ... in this process (on another worker) */
    char turn_id[33];     /* the turn waited for, or "" */
    char interrupted[33]; /* the user's turn found stale (its process died), or "" */
};
typedef void (*tstate_await_fn)(void *ctx, const struct tstate_found *f);

/* Wait until no turn of conversation_id owned by user_sub is running anywhere: close stale ones
 * as interrupted, claim a live one and LISTEN for its commit, re-checking when its lease would
 * run out (a dead owner stops renewing it), never past deadline_ms (loop clock). fn runs once,
 * on a later loop turn, unless tstate_await_cancel is called first. */
struct tstate_wait *tstate_await(struct tstate *ts, const char *conversation_id,
                                 const char *user_sub, uint64_t deadline_ms, tstate_await_fn fn,
                                 void *ctx);
void tstate_await_cancel(struct tstate_wait *w);

#endif
