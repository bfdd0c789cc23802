/* turn_sql.h - the SQL of the store: the prepared statements a turn is written with (shared by
 * the workers' writer connections and the blocking replay at start) and those a conversation is
 * read with.
 *
 * Every insert is ON CONFLICT DO NOTHING on a key made of the turn id, an ordinal and the turn's
 * start time (the partition key), so writing a turn twice (a journal replayed after a commit
 * whose reply was lost) changes nothing the second time. */
#ifndef TRILEMMA_STORE_TURN_SQL_H
#define TRILEMMA_STORE_TURN_SQL_H

#include <libpq-fe.h>

#include "store/pg.h"
#include "store/store.h"
#include "stream/json.h"

enum {
    SQL_W_CONVERSATION,
    SQL_W_TURN,
    SQL_W_MESSAGE,
    SQL_W_LLM_CALL,
    SQL_W_TOOL_CALL,
    SQL_W_LEDGER,
    SQL_W_SPAN,
    SQL_W_PARTITIONS,
    SQL_W_TRACE_PARTITIONS, /* $1: retention in days */
    /* the same rows for a whole batch: one statement per table (turn_sql_columnar) */
    SQL_W_CONVERSATION_N,
    SQL_W_TURN_N,
    SQL_W_MESSAGE_N,
    SQL_W_LLM_CALL_N,
    SQL_W_TOOL_CALL_N,
    SQL_W_LEDGER_N,
    SQL_W_SPAN_N,
    SQL_W__COUNT,
};

enum {
    SQL_R_CONVERSATION,
    SQL_R_MESSAGES,
    SQL_R_LAST_TURN,
    SQL_R__COUNT,
};

extern const struct pg_stmt_def turn_sql_write[SQL_W__COUNT];
extern const struct pg_stmt_def turn_sql_read[SQL_R__COUNT];

/* Append the statements that store t (conversation, turn, messages, calls, tool calls, ledger
 * lines) to q, in foreign-key order. jd (scratch) checks tool arguments: text that is not valid
 * JSON is stored as a JSON string rather than failing the jsonb column. */
void turn_sql_append(struct pg_query *q, const struct store_turn *t, json_doc *jd);

/* Rewrite in, the single-row statements of one or more turns (turn_sql_append), into out (reset
 * first) as one statement per table: INSERT .. SELECT FROM unnest() of one array parameter per
 * column, the same rows with the same ON CONFLICT, conversations first and the ledger last.
 * PostgreSQL then runs six statements per batch instead of six or more per turn. */
void turn_sql_columnar(const struct pg_query *in, struct pg_query *out);

/* Format unix milliseconds as a UTC timestamptz literal ("2025-01-31 23:59:59.123+00"). */
void turn_sql_time(int64_t unix_ms, char out[40]);

/* Decoded result of a load (SQL_R_* in order): the arrays and strings it points to live in
 * conv_mem until turn_sql_conv_free. */
struct turn_sql_conv {
    struct store_conversation c;
    struct store_message *msgs;
    uint32_t *delta_ends;
};

/* Fill out from the three results of a load. Returns 0 or -EBADMSG (unexpected shape). */
int turn_sql_conv_parse(PGresult *const *rows, uint32_t nrows, struct turn_sql_conv *out);
void turn_sql_conv_free(struct turn_sql_conv *cv);

/* Add the load statements for conversation id to q. */
void turn_sql_load(struct pg_query *q, const char *conversation_id, uint32_t max_messages);

#endif
