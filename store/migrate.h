/* migrate.h - the blocking, main-thread side of the store: schema migrations and the replay of
 * journals left by earlier processes. store.h has the entry points the server uses; these are
 * the pieces tests drive directly. */
#ifndef TRILEMMA_STORE_MIGRATE_H
#define TRILEMMA_STORE_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

struct store_db_id;

/* Apply the migrations of dir (NNN_name.sql, NNN > 0) up to and including version `target`
 * (-1 = all) that conn has not applied yet, in order, each in its own transaction recorded in
 * schema_migrations (version, name, applied_at), all under a session advisory lock so that
 * concurrent callers apply each one once. Returns the number applied, or -1 with err. */
int store_migrate_conn(PGconn *conn, const char *dir, int target, char *err, size_t errlen);

/* Upsert the rows of the price file into prices. Returns the row count, or -1 with err. */
int store_load_prices(PGconn *conn, const char *price_file, char *err, size_t errlen);

/* Read conn's database identity (pg_control_system()'s system_identifier, current_database()).
 * Returns 0, or -1 with err (e.g. the role may not call pg_control_system). */
int store_db_identity(PGconn *conn, struct store_db_id *out, char *err, size_t errlen);

/* Replay the journal files of dir that no live process holds and that belong to `want`'s
 * database (journal_adopt_for) into conn (blocking), deleting each once replayed. Returns the
 * number of turns replayed, or -1 with err when PostgreSQL failed midway (the file stays for a
 * later attempt). */
int store_replay_dir(PGconn *conn, const char *dir, const struct store_db_id *want, char *err,
                     size_t errlen);

#endif
