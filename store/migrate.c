/* migrate.c - what runs once per process on the main thread, blocking: schema migrations under
 * an advisory lock, the price table, monthly partitions ahead, and the replay of journals that
 * dead processes left behind.
 *
 * Migrations are the files NNN_name.sql of a folder, applied in version order, each in its own
 * transaction together with its row in schema_migrations, so a migration is either applied and
 * recorded or neither. A session advisory lock serialises pods starting at once: the second
 * waits, then finds everything applied. */
#include "store/migrate.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "orchestrator/prices.h"
#include "store/journal.h"
#include "store/record.h"
#include "store/store.h"
#include "store/turn_sql.h"

#define MIGRATE_LOCK_KEY "8390884970023710049" /* "trilemma" as a bigint */
#define STORE_REPLAY_BATCH 64

struct mig {
    int version;
    char name[256];
};

/* ---- helpers ---- */

static int exec_ok(PGconn *conn, const char *sql, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(res));
        err[strcspn(err, "\n")] = '\0';
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct buf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "cannot read %s", path);
        buf_free(&b);
        return NULL;
    }
    buf_append(&b, "", 1);
    return b.data;
}

static int cmp_mig(const void *a, const void *b)
{
    return ((const struct mig *)a)->version - ((const struct mig *)b)->version;
}

/* The NNN_name.sql files of dir, sorted by version. Returns the count or -1 with err. */
static int list_migrations(const char *dir, struct mig **out, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot open migrations folder %s: %s", dir, strerror(errno));
        return -1;
    }
    struct mig *m = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        size_t len = strlen(e->d_name);
        long v = strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end != '_' || len < 5 || strcmp(e->d_name + len - 4, ".sql"))
            continue;
        if (v <= 0 || v > 999999 || len >= sizeof(m->name)) {
            snprintf(err, errlen, "bad migration file name %s", e->d_name);
            goto out_fail;
        }
        m = xrealloc(m, (size_t)(n + 1) * sizeof(*m));
        m[n].version = (int)v;
        snprintf(m[n].name, sizeof(m[n].name), "%s", e->d_name);
        n++;
    }
    qsort(m, (size_t)n, sizeof(*m), cmp_mig);
    for (int i = 1; i < n; i++) {
        if (m[i].version == m[i - 1].version) {
            snprintf(err, errlen, "two migrations with version %d", m[i].version);
            goto out_fail;
        }
    }
    closedir(d);
    *out = m;
    return n;

out_fail:
    closedir(d);
    xfree(m);
    return -1;
}

/* ---- migrations ---- */

static bool is_applied(PGconn *conn, int version)
{
    char v[16];
    snprintf(v, sizeof(v), "%d", version);
    const char *params[1] = {v};
    PGresult *res = PQexecParams(conn, "SELECT 1 FROM schema_migrations WHERE version = $1", 1,
                                 NULL, params, NULL, NULL, 0);
    bool yes = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    PQclear(res);
    return yes;
}

static int apply_one(PGconn *conn, const char *dir, const struct mig *m, char *err, size_t errlen)
{
    char path[PATH_MAX], msg[512], v[16];
    snprintf(path, sizeof(path), "%s/%s", dir, m->name);
    char *sql = read_file(path, err, errlen);
    if (!sql)
        return -1;
    snprintf(v, sizeof(v), "%d", m->version);
    const char *params[2] = {v, m->name};
    int ret = -1;
    if (exec_ok(conn, "BEGIN", msg, sizeof(msg)) < 0 || exec_ok(conn, sql, msg, sizeof(msg)) < 0)
        goto out_rollback;
    PGresult *res =
        PQexecParams(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, NULL,
                     params, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(res));
    PQclear(res);
    if (!ok || exec_ok(conn, "COMMIT", msg, sizeof(msg)) < 0)
        goto out_rollback;
    log_info("store: applied migration %s", m->name);
    ret = 0;
    goto out_free;

out_rollback:
    msg[strcspn(msg, "\n")] = '\0';
    snprintf(err, errlen, "migration %s failed: %s", m->name, msg);
    PQclear(PQexec(conn, "ROLLBACK"));
out_free:
    xfree(sql);
    return ret;
}

/* Apply pending migrations up to target; see migrate.h. */
int store_migrate_conn(PGconn *conn, const char *dir, int target, char *err, size_t errlen)
{
    struct mig *m = NULL;
    int n = list_migrations(dir, &m, err, errlen);
    if (n < 0)
        return -1;
    int applied = 0;
    if (exec_ok(conn, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", err, errlen) < 0)
        goto out_free;
    /* checked first rather than IF NOT EXISTS, whose NOTICE libpq would print */
    PGresult *res = PQexec(conn, "SELECT to_regclass('schema_migrations') IS NULL");
    bool missing = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                   PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (missing && exec_ok(conn,
                           "CREATE TABLE schema_migrations (version integer PRIMARY KEY, "
                           "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                           err, errlen) < 0) {
        applied = -1;
        goto out_unlock;
    }
    for (int i = 0; i < n && (target < 0 || m[i].version <= target); i++) {
        if (is_applied(conn, m[i].version))
            continue;
        if (apply_one(conn, dir, &m[i], err, errlen) < 0) {
            applied = -1;
            goto out_unlock;
        }
        applied++;
    }
out_unlock:
    PQclear(PQexec(conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")"));
out_free:
    xfree(m);
    return n < 0 ? -1 : applied;
}

/* ---- prices ---- */

static int upsert_price(PGconn *conn, const struct price *p, char *err, size_t errlen)
{
    char v[4][24];
    const int64_t nums[4] = {p->input, p->cached_input, p->cache_write, p->output};
    for (int i = 0; i < 4; i++)
        snprintf(v[i], sizeof(v[i]), "%lld", (long long)nums[i]);
    const char *params[9] = {p->provider, p->model, p->tier, p->effective_from, p->currency, v[0],
                             v[1],        v[2],     v[3]};
    PGresult *res = PQexecParams(
        conn,
        "INSERT INTO prices (provider, model, tier, effective_from, currency, input_micros, "
        "cached_input_micros, cache_write_micros, output_micros) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
        "ON CONFLICT (provider, model, tier, effective_from) DO UPDATE SET "
        "currency = EXCLUDED.currency, input_micros = EXCLUDED.input_micros, "
        "cached_input_micros = EXCLUDED.cached_input_micros, "
        "cache_write_micros = EXCLUDED.cache_write_micros, "
        "output_micros = EXCLUDED.output_micros, loaded_at = now() "
        "WHERE (prices.currency, prices.input_micros, prices.cached_input_micros, "
        "prices.cache_write_micros, prices.output_micros) IS DISTINCT FROM "
        "(EXCLUDED.currency, EXCLUDED.input_micros, EXCLUDED.cached_input_micros, "
        "EXCLUDED.cache_write_micros, EXCLUDED.output_micros)",
        9, NULL, params, NULL, NULL, 0);
    int ret = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (ret < 0)
        snprintf(err, errlen, "price %s/%s: %s", p->provider, p->model, PQresultErrorMessage(res));
    PQclear(res);
    return ret;
}

/* Upsert the price file; see migrate.h. */
int store_load_prices(PGconn *conn, const char *price_file, char *err, size_t errlen)
{
    struct price_table *t = prices_load(price_file, err, errlen);
    if (!t)
        return -1;
    int n = (int)prices_count(t);
    int ret = exec_ok(conn, "BEGIN", err, errlen);
    for (int i = 0; i < n && ret == 0; i++)
        ret = upsert_price(conn, prices_at(t, (size_t)i), err, errlen);
    if (ret == 0)
        ret = exec_ok(conn, "COMMIT", err, errlen);
    else
        PQclear(PQexec(conn, "ROLLBACK"));
    prices_free(t);
    return ret < 0 ? -1 : n;
}

/* ---- the process-wide entry points ---- */

static PGconn *connect_blocking(const char *url, char *err, size_t errlen)
{
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {url, "10", "trilemmad", NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s", PQerrorMessage(conn));
        err[strcspn(err, "\n")] = '\0';
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* Migrate, make partitions ahead, load prices; see store.h. */
int store_migrate(const struct store_conf *conf, const char *migrations_dir, char *err,
                  size_t errlen)
{
    if (!conf->database_url[0]) {
        snprintf(err, errlen, "DATABASE_URL is not set");
        return -1;
    }
    PGconn *conn = connect_blocking(conf->database_url, err, errlen);
    if (!conn)
        return -1;
    int ret = -1;
    if (store_migrate_conn(conn, migrations_dir, -1, err, errlen) < 0)
        goto out_finish;
    if (exec_ok(conn, "SELECT trilemma_ensure_partitions(now(), 2)", err, errlen) < 0)
        goto out_finish;
    int n = store_load_prices(conn, conf->price_file, err, errlen);
    if (n < 0)
        goto out_finish;
    log_info("store: schema up to date, %d prices loaded", n);
    ret = 0;
out_finish:
    PQfinish(conn);
    return ret;
}

/* ---- replay at start ---- */

struct replayer {
    PGconn *conn;
    uint64_t prepared[1];
    struct pg_query q;
    json_doc *jd;
    long replayed, rejected;
};

/* Commit the records of recs (n of them, back to back) as one transaction; if the server
 * rejects it, one by one, dropping (and logging) the rejected. Returns 0, or -1 with err when
 * PostgreSQL fails for a passing reason. */
static int replay_records(struct replayer *rp, const char *recs, size_t bytes, int n, bool split,
                          char *err, size_t errlen)
{
    const char *p = recs;
    size_t left = bytes;
    pg_query_reset(&rp->q);
    for (int i = 0; i < n; i++) {
        size_t len = journal_rec_len(p, left);
        struct rec_turn rt;
        if (rec_decode(p, len, &rt) == 0) {
            turn_sql_append(&rp->q, &rt.t, rp->jd);
            rec_turn_free(&rt);
        }
        p += len;
        left -= len;
    }
    struct pg_result r;
    pg_run_blocking(rp->conn, turn_sql_write, rp->prepared, &rp->q, true, &r);
    int ret = 0;
    if (r.status == PG_OK) {
        rp->replayed += n;
    } else if (r.status == PG_DOWN || pg_error_transient(r.sqlstate)) {
        snprintf(err, errlen, "replay interrupted: %s", r.message);
        ret = -1;
    } else if (!split && n > 1) {
        pg_result_clear(&r);
        p = recs;
        left = bytes;
        for (int i = 0; i < n && ret == 0; i++) {
            size_t len = journal_rec_len(p, left);
            ret = replay_records(rp, p, len, 1, true, err, errlen);
            p += len;
            left -= len;
        }
        return ret;
    } else {
        log_error("store: journal record rejected by PostgreSQL: %s [SQLSTATE %s] (dropped)",
                  r.message, r.sqlstate);
        rp->rejected++;
    }
    pg_result_clear(&r);
    return ret;
}

/* Replay one journal file; returns 0 (done: delete it) or -1 (PostgreSQL failed: keep it). */
static int replay_file(struct replayer *rp, struct journal *j, char *err, size_t errlen)
{
    struct buf data = {0};
    uint64_t off = 0, end;
    int ret = 0;
    while (off < j->size) {
        buf_reset(&data);
        int n = journal_read(j, off, STORE_REPLAY_BATCH, 1u << 20, &data, &end);
        if (n < 0) { /* a read error: keep the file for a later replay */
            snprintf(err, errlen, "journal %s unreadable at %llu: %s", j->path,
                     (unsigned long long)off, strerror(-n));
            ret = -1;
            break;
        }
        if (n == 0) {
            log_error("store: journal %s unreadable at %llu: %llu bytes skipped", j->path,
                      (unsigned long long)off, (unsigned long long)(j->size - off));
            break;
        }
        ret = replay_records(rp, buf_begin(&data), buf_size(&data), n, false, err, errlen);
        if (ret < 0)
            break;
        off = end;
    }
    buf_free(&data);
    return ret;
}

/* Which database conn is on; see migrate.h. */
int store_db_identity(PGconn *conn, struct store_db_id *out, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, "SELECT system_identifier::text, current_database() "
                                 "FROM pg_control_system()");
    int ret = -1;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        snprintf(err, errlen, "cannot read the database's identity: %s", PQerrorMessage(conn));
        goto out_clear;
    }
    out->system_id = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    snprintf(out->name, sizeof(out->name), "%s", PQgetvalue(res, 0, 1));
    ret = out->system_id ? 0 : -1;
    if (ret < 0)
        snprintf(err, errlen, "the database's system_identifier reads as 0");
out_clear:
    PQclear(res);
    return ret;
}

/* Replay the orphaned journals of dir; see migrate.h. */
int store_replay_dir(PGconn *conn, const char *dir, const struct store_db_id *want, char *err,
                     size_t errlen)
{
    struct replayer rp = {.conn = conn, .jd = json_doc_create()};
    pg_query_init(&rp.q);
    struct journal *j;
    int ret = 0;
    while ((j = journal_adopt_for(dir, NULL, want))) {
        long before = rp.replayed;
        if (replay_file(&rp, j, err, errlen) < 0) {
            journal_close(j, false);
            ret = -1;
            break;
        }
        log_info("store: journal %s replayed (%ld turns)", j->path, rp.replayed - before);
        journal_close(j, true);
    }
    pg_query_free(&rp.q);
    json_doc_destroy(rp.jd);
    if (rp.rejected)
        log_error("store: %ld journal records were rejected by PostgreSQL and dropped",
                  rp.rejected);
    return ret < 0 ? -1 : (int)rp.replayed;
}

/* Replay journals left by earlier processes; see store.h. PostgreSQL being away is not an
 * error: the files stay, and the workers adopt and replay them once it is back. */
int store_replay_journals(const struct store_conf *conf, struct store_db_id *id_out, char *err,
                          size_t errlen)
{
    if (!conf->database_url[0])
        return 0;
    char why[512];
    PGconn *conn = connect_blocking(conf->database_url, why, sizeof(why));
    if (!conn) {
        log_warn("store: journals not replayed at start (%s): the workers will", why);
        return 0;
    }
    struct store_db_id id = {0};
    if (store_db_identity(conn, &id, why, sizeof(why)) < 0)
        log_warn("store: %s: journals are written without it, and journals that name a database "
                 "are left alone",
                 why);
    else
        log_info("store: database %llu \"%s\"", (unsigned long long)id.system_id, id.name);
    if (id_out)
        *id_out = id;
    int n = store_replay_dir(conn, conf->journal_dir, &id, err, errlen);
    PQfinish(conn);
    if (n < 0) {
        log_warn("store: %s: the workers will finish the replay", err);
        return 0;
    }
    return n;
}
