/* store.h - conversations, turns, model calls and the cost ledger in PostgreSQL, per worker,
 * without ever blocking the worker: libpq in non-blocking pipeline mode with its socket polled
 * on the worker's io_uring; writes grouped into one transaction per batch (group commit); a
 * bounded local spill journal keeps acknowledged turns while PostgreSQL is away and is replayed
 * in order (idempotently) when it is back.
 *
 * Process-wide steps (migrations, journal replay at start) run on the main thread before the
 * workers start, where blocking is fine. */
#ifndef TRILEMMA_STORE_STORE_H
#define TRILEMMA_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/loop.h"
#include "store/turn_record.h"
#include "stream/llm.h"

struct store;

/* Which database this is: pg_control_system()'s system_identifier (unique per cluster, kept by
 * its physical replicas) and the database's name. Read once at start (store_replay_journals);
 * every spill journal record carries it, and a journal is replayed only into its own database.
 * system_id 0 = unknown (PostgreSQL was away at start). */
struct store_db_id {
    uint64_t system_id;
    char name[64];
};

/* What the store needs of the configuration (app/ fills it: config_store). The strings must
 * outlive every store and call made with it (the store reconnects with database_url). */
struct store_conf {
    const char *database_url; /* "" = no database: the store is off */
    const char *journal_dir;  /* the spill journal's folder */
    const char *price_file;   /* loaded into the prices table by store_migrate */
    uint32_t journal_max_bytes;
    uint32_t batches_in_flight;      /* group commits in flight per worker (1..16) */
    const struct store_db_id *db_id; /* as store_replay_journals read it at start; NULL =
                                      * unknown */
    uint32_t trace_retention_days;   /* span partitions older than this are dropped (0 = never) */
    uint32_t cache_writes_max;       /* shared cache writes in flight per worker (cache_store.h) */
    uint64_t cache_write_bytes_max;  /* ... and their bytes */
    uint64_t cache_entry_max_bytes;  /* a larger cache entry is never written to PostgreSQL */
};

/* True for a well-formed conversation or turn id: 32 lowercase hex digits (128 random bits), as
 * the schema's CHECK constraints require. */
static inline bool store_id_valid(const char *s, size_t n)
{
    if (n != 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* ---- what a turn writes ---- */

struct store_turn {
    const char *conversation_id; /* 32 hex */
    const char *user_sub;        /* "" for anonymous */
    const char *turn_id;         /* 32 hex, the idempotency key of everything below */
    const char *client_msg_id;
    const char *user_text;
    size_t user_len;
    const char *answer; /* the assistant text as streamed (may be empty) */
    size_t answer_len;
    const uint32_t *delta_ends; /* byte offset in answer where delta seq i+1 ends */
    uint32_t n_deltas;
    const char *finish_reason; /* stop, length, cancelled, error */
    int64_t started_at_ms;     /* unix ms: also the partition key */
    int64_t first_token_ms;    /* -1 when none */
    int64_t total_ms;
    const char *currency;      /* "INR" / "USD" */
    int64_t usd_to_inr_micros; /* the rate used, recorded on every money row */
    const struct llm_call_record *calls;
    uint32_t n_calls;
    struct llm_usage usage; /* the sum over calls */
    int64_t cost_micros;    /* the sum over calls and tools (= the sum of the ledger lines) */
    const struct tool_call_record *tools;
    uint32_t n_tools;
    const char *query_type; /* NULL or "" when the turn was not routed (the relay, echo) */
    const char *agent;      /* the agent that answered; NULL or "" = none */
    const char *flags;      /* comma-separated flags of the turn's checks; NULL or "" = none */
    /* cache hits: one "cache_saving" ledger line each, outside cost_micros */
    const struct cache_saving_record *savings;
    uint32_t n_savings;
    uint64_t db_system_id; /* the database the journal record belongs to (0 = unknown) ... */
    const char *db_name;   /* ... set by the writer, read back from the journal */
    /* the turn's trace (trace/trace.h): none when n_spans is 0 (capture off, or not sampled) */
    const char *trace_id; /* 32 hex */
    const struct span_record *spans;
    uint32_t n_spans;
};

/* ---- what a conversation reads back ---- */

struct store_message {
    const char *role; /* "user" / "assistant" */
    const char *text;
    size_t len;
};

struct store_conversation {
    bool found;
    const char *user_sub;
    /* the last max_messages messages, oldest first */
    const struct store_message *messages;
    size_t n_messages;
    /* the last turn, for resume (turn_id NULL when the conversation has none) */
    const char *last_turn_id;
    const char *last_answer;
    size_t last_answer_len;
    const uint32_t *last_delta_ends;
    uint32_t last_n_deltas;
    const char *last_finish;
    struct llm_usage last_usage;
    int64_t last_cost_micros;
    const char *last_currency;
    int64_t last_first_token_ms;
    int64_t last_total_ms;
};

/* result: 0 = committed to PostgreSQL or to the spill journal (durable), -EIO = neither could
 * take it (the journal is full or failing): the turn is not stored; -EMSGSIZE = the turn is
 * larger than one record (REC_MAX_PAYLOAD) and is not stored (called before store_commit_turn
 * returns); -ESHUTDOWN = the worker is stopping (store_destroy): the turn was written to the
 * journal, replayed at the next start. */
typedef void (*store_commit_fn)(void *ctx, int result);
/* result: 0 (c valid during the call; c->found false for an unknown id), or -EIO. */
typedef void (*store_read_fn)(void *ctx, int result, const struct store_conversation *c);

struct store_op; /* a pending read, cancellable */

/* ---- process-wide, main thread ---- */

/* Apply store/migrations/NNN_*.sql in order under an advisory lock (many pods may start at
 * once), and load the price file into the prices table. Blocking. Returns 0 or -1 with err. */
int store_migrate(const struct store_conf *conf, const char *migrations_dir, char *err,
                  size_t errlen);

/* Read the database's identity into *id (left zero when PostgreSQL is away or the role may not
 * read it; id may be NULL), then replay every worker's spill journal left by an earlier process
 * (after a crash or kill -9) that belongs to this database into PostgreSQL, and delete them;
 * another database's journals are left alone (docs/store.md). Blocking; PostgreSQL being away is
 * not an error (the workers replay later). Returns the number of turns replayed, or -1 with err. */
int store_replay_journals(const struct store_conf *conf, struct store_db_id *id, char *err,
                          size_t errlen);

/* ---- per worker ---- */

/* NULL when no DATABASE_URL is configured (the store is off: commits succeed at once, reads
 * find nothing). op_base..op_base+3 are the loop op codes the store may use. */
struct store *store_create(struct loop *l, const struct store_conf *conf, int worker_index,
                           uint8_t op_base);
/* How many op codes from op_base the store uses (loop_op_alloc). */
#define STORE_LOOP_OPS 4
void store_destroy(struct store *st);

/* false while PostgreSQL is away and the journal is full: refuse new turns. */
bool store_accepting(const struct store *st);
/* true while writes go to the journal (for /readyz and metrics). Both predicates may be called
 * from any thread (they read state the worker publishes atomically). */
bool store_degraded(const struct store *st);

/* Queue a turn for the next group commit (copies everything). fn runs once it is durable. */
void store_commit_turn(struct store *st, const struct store_turn *t, store_commit_fn fn, void *ctx);

/* Load a conversation (owner, recent messages, last turn) with one pipelined read on the
 * worker's reader connection (reads never wait behind a write batch). fn runs on a later loop
 * turn, never inside this call: -EIO when PostgreSQL is away or the read failed. st == NULL (no
 * database): fn runs at once with found = false and NULL is returned. */
struct store_op *store_load_conversation(struct store *st, const char *conversation_id,
                                         uint32_t max_messages, store_read_fn fn, void *ctx);
/* The callback of op will not run. op must still be pending (its callback has not run). */
void store_cancel(struct store_op *op);

/* Drain: from now on queued turns leave at once instead of after the group-commit window, so
 * that store_idle() comes as soon as PostgreSQL has them. NULL is fine. */
void store_flush(struct store *st);

/* Nothing queued, being committed, replayed or written to the journal. A draining worker waits
 * for this (server_hooks.may_stop) before it stops: turns still pending at store_destroy are
 * written to the journal, blocking, which in a pod means a volume deleted with it. */
bool store_idle(const struct store *st);

/* Append the stores' Prometheus metrics (summed over the workers; NULL entries are skipped) to
 * out: trilemma_store_commits_total, _batches_total, _journaled_total, _replayed_total,
 * _commit_seconds (histogram: queued to durable), _journal_bytes, _degraded (workers whose writes
 * go to the journal), _errors_total{kind}. Safe from any thread (relaxed reads). */
void store_metrics(struct store *const *workers, int n, struct buf *out);

#endif
