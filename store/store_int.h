/* store_int.h - the store's internals shared by writer.c, reader.c and metrics.c. */
#ifndef TRILEMMA_STORE_STORE_INT_H
#define TRILEMMA_STORE_STORE_INT_H

#include <sys/uio.h>

#include "store/cache_store.h"
#include "store/journal.h"
#include "store/pg.h"
#include "base/stat.h"
#include "store/store.h"
#include "stream/json.h"

enum {
    STORE_BATCH_MAX = 64,          /* turns per group commit */
    STORE_BATCH_WINDOW_MS = 2,     /* a batch leaves this long after its first turn at most */
    STORE_OVERLAP_MS = 10,         /* ... or this long while another batch is in flight */
    STORE_REPLAY_MAX = 256,        /* journal records per replay batch ... */
    STORE_REPLAY_BYTES = 1u << 20, /* ... and about this many bytes */
    STORE_RETRY_MIN_MS = 100,      /* replay retry after a failed replay batch, doubling */
    STORE_RETRY_MAX_MS = 5000,
    STORE_PARTITIONS_EVERY_MS = 12 * 3600 * 1000,
    STORE_BATCH_TIMEOUT_MS = 15000, /* no reply: the connection is taken for broken */
    STORE_WRITERS_MAX = 16,         /* [store] batches_in_flight at most */
};

enum store_err {
    SE_CONNECTION, /* a batch or read lost its connection */
    SE_TRANSIENT,  /* the server refused for a passing reason (deadlock, shutdown...) */
    SE_REJECTED,   /* the server refused the rows (constraint violation: a bug) */
    SE_JOURNAL,    /* the journal could not be written or read */
    SE_JOURNAL_FULL,
    SE_NO_JOURNAL, /* PostgreSQL away and no journal to take the turn */
    SE_READ,       /* a conversation load failed */
    SE__COUNT,
};

#define STORE_LAT_BUCKETS 12
extern const double store_lat_bounds[STORE_LAT_BUCKETS - 1];

/* Written by the worker only; read by /metrics with relaxed loads. */
struct store_stats {
    uint64_t commits;
    uint64_t batches;
    uint64_t journaled;
    uint64_t replayed;
    uint64_t errors[SE__COUNT];
    uint64_t lat[STORE_LAT_BUCKETS];
    uint64_t lat_sum_ns;
    uint64_t journal_bytes;
    uint64_t degraded;
    uint64_t cache_dropped[2][2]; /* shared cache writes dropped [exact, tool][busy, too large] */
};

/* A queued turn: its record (record.h) and who waits for it. */
struct wturn {
    struct wturn *next;
    char *rec;
    uint32_t len;
    store_commit_fn fn; /* NULL for a replayed record */
    void *ctx;
    uint64_t queued_ms; /* loop clock */
    uint64_t queued_ns;
    uint64_t seq; /* queue order: kept when a failed batch's turns are queued again */
    char turn_id[33];
};

struct tlist {
    struct wturn *head, *tail;
    uint32_t n;
};

enum batch_kind { B_NEW, B_REPLAY };

struct wconn;

/* One group commit in flight: on a writer connection, or answered and waiting for the batches
 * started before it (outcomes are handled, and callbacks run, in the order batches started). */
struct wbatch {
    struct wbatch *next; /* the in-flight list, oldest first */
    struct store *st;
    enum batch_kind kind;
    struct tlist turns;
    struct journal *src; /* B_REPLAY: the journal it came from ... */
    uint64_t end;        /* ... and the offset after its records */
    bool split;          /* committing turn by turn after a rejected batch */
    bool resend;         /* split: its next turn waits for a free connection */
    struct wconn *on;    /* the connection carrying it; NULL once answered */
    bool answered;       /* the reply below is in */
    enum pg_status status;
    char sqlstate[6];
    char *message; /* NULL when empty */
};

/* A writer connection: at most one batch on it at a time. */
struct wconn {
    struct store *st;
    struct pg *pg;
    struct wbatch *batch;
    struct timer batch_timer;
};

struct store {
    struct loop *l;
    int worker;
    char journal_dir[1024];
    struct store_db_id db_id; /* this database (copied at create; system_id 0 = unknown) */
    uint64_t journal_max;
    uint32_t trace_retention_days;      /* [trace] retention_days: older span partitions dropped */
    struct wconn wc[STORE_WRITERS_MAX]; /* writes: group commits, replays ... */
    unsigned nw;                        /* ... [store] batches_in_flight of them */
    struct pg *r;                       /* reads */
    json_doc *jd;
    struct pg_query q;    /* the request being built ... */
    struct pg_query rows; /* ... from the turns' single-row statements (turn_sql_columnar) */

    struct tlist queue;
    bool flush_now;
    bool draining; /* store_flush: no group-commit window any more */
    struct timer flush_timer;
    struct wbatch *fl_head, *fl_tail; /* in flight, oldest first (at most nw) */
    unsigned nflight;
    unsigned nflight_new; /* of which B_NEW: the journal waits for them (queue order) */
    uint64_t next_seq;
    uint64_t requeued_seq; /* turns up to here came back from a failed batch: journal them */
    uint8_t op_writers;    /* the op code the writer connections share */

    struct journal *j;      /* ours; NULL if it could not be opened */
    struct journal *orphan; /* a dead process's, being replayed */
    struct journal_append app;
    struct tlist appending;
    struct iovec iov[STORE_BATCH_MAX];
    bool spill;        /* new turns go to the journal until it is replayed */
    bool full;         /* an append was refused (size limit or write error) */
    bool full_by_size; /* full because the journal reached journal_max_bytes */

    struct timer replay_timer;
    bool replay_wait;
    uint32_t replay_backoff_ms;
    uint64_t parts_due_ms;
    bool in_kick, kick_again;

    uint64_t accepting;   /* published by update_gauges for other threads */
    struct store_op *ops; /* pending reads */
    uint32_t cache_puts;  /* shared cache writes in flight (cache_sql.c): a drain waits for them */
    uint64_t cache_put_bytes;             /* ... their values' bytes */
    struct store_cache_bound cache_bound; /* ... their bound */
    struct store_stats stats;
};

/* A query's result: r and everything in it is valid during the call only. */
typedef void (*store_query_fn)(void *ctx, const struct pg_result *r);

struct store_op {
    struct store_op *next, *prev;
    struct store *st;
    struct pg_req *req;
    store_read_fn fn;   /* a conversation load (store_load_conversation) ... */
    store_query_fn qfn; /* ... or a query (store_query) */
    void *ctx;
    bool free_ctx; /* ctx is xmalloc'd and freed when the op is dropped unanswered */
};

/* reader.c: drop pending reads without callbacks (store_destroy). */
void store_reads_drop(struct store *st);

/* reader.c: run q on the worker's reader connection (reads never wait behind a group commit):
 * statements of the reader's prepared table or ad-hoc ones (pg_query_sql), all in one pipelined
 * request; txn wraps it in BEGIN .. COMMIT (sent alone on the connection). q is copied. fn runs
 * exactly once on a later loop turn (never inside this call) unless store_cancel(op) is called
 * first: r->status is PG_DOWN when PostgreSQL is away, PG_FAILED when a statement failed. st
 * must not be NULL. The pending op is on st->ops (ctx and qfn tell whose it is). */
struct store_op *store_query(struct store *st, const struct pg_query *q, bool txn,
                             store_query_fn fn, void *ctx);

/* pg.c, an extension of pg.h used by the read API: an ad-hoc statement. Its SQL text (copied
 * into q) is sent unnamed with PQsendQueryParams, parsed and planned on each use, instead of one
 * of the connection's prepared statements; the parameters that follow (pg_query_param...)
 * belong to it, as after pg_query_stmt. Works on any connection, and in pg_run_blocking. */
#define PG_STMT_SQL UINT16_MAX
void pg_query_sql(struct pg_query *q, const char *sql);

#endif
