/* test_store.c - the store against a real PostgreSQL that this test starts (pg_cluster.sh): a
 * private cluster in a temporary folder, unix socket only, torn down at the end.
 *
 * Migrations are checked first (blocking, as the server runs them). Then one event loop runs two
 * worker stores through a script of steps: each step starts something and names the condition
 * that ends it; the loop runs until it holds, with a time bound as the failure condition (never
 * a sleep, never a timing assertion). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "app/config.h"
#include "store/capacity_store.h"
#include "store/migrate.h"
#include "store/record.h"
#include "store/spend.h"
#include "store/store_int.h"
#include "tests/tap.h"

/* ---- the cluster ---- */

static char src_dir[512] = ".";
static char pg_dir[] = "/tmp/trilemma-pg.XXXXXX";
static char work_dir[] = "/tmp/trilemma-store.XXXXXX";
static char db_url[1024];

static int cluster(const char *cmd, char *out, size_t outlen)
{
    char line[PATH_MAX * 2];
    snprintf(line, sizeof(line), "bash %s/tests/store/pg_cluster.sh %s %s", src_dir, cmd, pg_dir);
    FILE *p = popen(line, "r");
    if (!p)
        return -1;
    char buf[1024] = "";
    if (!fgets(buf, sizeof(buf), p))
        buf[0] = '\0';
    int rc = pclose(p);
    buf[strcspn(buf, "\n")] = '\0';
    if (out)
        snprintf(out, outlen, "%s", buf);
    return rc == 0 ? 0 : -1;
}

static PGconn *connect_db(const char *dbname)
{
    char url[1200];
    snprintf(url, sizeof(url), "postgresql://postgres@/%s?host=%s", dbname, pg_dir);
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "connect %s: %s", dbname, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* The first column of the first row as a number; -1 (and a message) on error. */
static long q1(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
        v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    else
        fprintf(stderr, "query failed: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    return v;
}

static char *qtext(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    struct buf b = {0};
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        for (int i = 0; i < PQntuples(r); i++)
            for (int k = 0; k < PQnfields(r); k++)
                buf_printf(&b, "%s%c", PQgetvalue(r, i, k), k + 1 < PQnfields(r) ? '|' : '\n');
    PQclear(r);
    buf_append(&b, "", 1);
    return b.data;
}

/* ---- migrations ---- */

static const char *mig_dir(void)
{
    static char d[PATH_MAX];
    snprintf(d, sizeof(d), "%s/store/migrations", src_dir);
    return d;
}

static int count_migrations(void)
{
    char err[256];
    PGconn *c = connect_db("postgres");
    PQclear(PQexec(c, "CREATE DATABASE mig_count"));
    PQfinish(c);
    c = connect_db("mig_count");
    int n = store_migrate_conn(c, mig_dir(), -1, err, sizeof(err));
    PQfinish(c);
    return n;
}

/* The versions of the migration files, ascending (numbers are assigned per change, so a gap is
 * normal while an earlier number has not landed yet). Returns the count (at most max). */
static int mig_versions(int *v, int max)
{
    int n = 0;
    DIR *d = opendir(mig_dir());
    struct dirent *e;
    while (d && (e = readdir(d)) && n < max) {
        size_t len = strlen(e->d_name);
        char *end;
        long x = strtol(e->d_name, &end, 10);
        if (end != e->d_name && *end == '_' && len > 4 && !strcmp(e->d_name + len - 4, ".sql"))
            v[n++] = (int)x;
    }
    if (d)
        closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort: a handful of files */
        for (int k = i; k > 0 && v[k - 1] > v[k]; k--) {
            int t = v[k];
            v[k] = v[k - 1];
            v[k - 1] = t;
        }
    return n;
}

static const char *fingerprint_sql =
    "SELECT string_agg(x, ';' ORDER BY x) FROM ("
    " SELECT table_name || '.' || column_name || ':' || data_type || ':' || is_nullable AS x"
    "   FROM information_schema.columns WHERE table_schema = 'public'"
    " UNION ALL SELECT indexname || ':' || indexdef FROM pg_indexes WHERE schemaname = 'public'"
    " UNION ALL SELECT conrelid::regclass || ':' || conname || ':' || pg_get_constraintdef(oid)"
    "   FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
    " UNION ALL SELECT tgrelid::regclass || ':' || tgname FROM pg_trigger WHERE NOT tgisinternal"
    " UNION ALL SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
    " UNION ALL SELECT version || ':' || name FROM schema_migrations) s";

struct mig_thread {
    const char *db;
    int applied;
};

static void *mig_thread_main(void *arg)
{
    struct mig_thread *m = arg;
    char err[256];
    PGconn *c = connect_db(m->db);
    m->applied = c ? store_migrate_conn(c, mig_dir(), -1, err, sizeof(err)) : -1;
    if (m->applied < 0)
        fprintf(stderr, "concurrent migration: %s\n", err);
    PQfinish(c);
    return NULL;
}

static void test_migrations(void)
{
    char err[512], sql[256];
    int n = count_migrations();
    CHECKF(n >= 3, "migrations applied from zero: %d", n);
    PGconn *admin = connect_db("postgres");
    /* from zero, then again: nothing to do */
    PGconn *full = connect_db("mig_count");
    CHECK(store_migrate_conn(full, mig_dir(), -1, err, sizeof(err)) == 0);
    CHECK(q1(full, "SELECT count(*) FROM schema_migrations") == n);
    char *want = qtext(full, fingerprint_sql);
    /* from every earlier version: the result is the same schema */
    int vers[64];
    CHECK(mig_versions(vers, 64) == n);
    for (int i = 1; i < n; i++) {
        int v = vers[i - 1];
        snprintf(sql, sizeof(sql), "CREATE DATABASE mig_%d", v);
        PQclear(PQexec(admin, sql));
        snprintf(sql, sizeof(sql), "mig_%d", v);
        PGconn *c = connect_db(sql);
        CHECKF(store_migrate_conn(c, mig_dir(), v, err, sizeof(err)) == i, "to %d", v);
        CHECK(q1(c, "SELECT max(version) FROM schema_migrations") == v);
        CHECKF(store_migrate_conn(c, mig_dir(), -1, err, sizeof(err)) == n - i, "from %d", v);
        char *got = qtext(c, fingerprint_sql);
        CHECKF(strcmp(got, want) == 0, "schema migrated from version %d differs", v);
        xfree(got);
        PQfinish(c);
    }
    /* many pods at once: each migration applied exactly once */
    PQclear(PQexec(admin, "CREATE DATABASE mig_race"));
    struct mig_thread th[4];
    pthread_t tid[4];
    for (int i = 0; i < 4; i++) {
        th[i] = (struct mig_thread){"mig_race", 0};
        pthread_create(&tid[i], NULL, mig_thread_main, &th[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(tid[i], NULL);
        CHECK(th[i].applied >= 0);
        total += th[i].applied;
    }
    CHECKF(total == n, "concurrent migrations applied %d in total", total);
    xfree(want);
    PQfinish(full);
    PQfinish(admin);
}

/* The golden set (006): one case per source turn, hand-made cases (no turn) unlimited, and only
 * the three statuses. */
static void test_golden_cases(void)
{
    PGconn *c = connect_db("mig_count");
    const char *ins = "INSERT INTO golden_cases (source_turn_id, case_json) VALUES ";
    char sql[512];
    snprintf(sql, sizeof(sql), "%s('%032x', '{\"query\":\"a\"}')", ins, 1);
    PGresult *r = PQexec(c, sql);
    CHECKF(PQresultStatus(r) == PGRES_COMMAND_OK, "first case: %s", PQresultErrorMessage(r));
    PQclear(r);
    r = PQexec(c, sql);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    CHECKF(state && !strcmp(state, "23505"), "same turn twice: %s", state ? state : "accepted");
    PQclear(r);
    snprintf(sql, sizeof(sql), "%s(NULL, '{}'), (NULL, '{}')", ins);
    r = PQexec(c, sql);
    CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
    PQclear(r);
    r = PQexec(c, "UPDATE golden_cases SET status = 'maybe'");
    CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);
    PQclear(r);
    CHECK(q1(c, "SELECT count(*) FROM golden_cases WHERE status = 'candidate' AND "
                "set_name = 'production' AND created_at <= now()") == 3);
    PQfinish(c);
}

static void test_migrate_entry(const struct config *conf)
{
    char err[512];
    struct store_conf sc = config_store(conf);
    CHECKF(store_migrate(&sc, mig_dir(), err, sizeof(err)) == 0, "store_migrate: %s", err);
    CHECKF(store_migrate(&sc, mig_dir(), err, sizeof(err)) == 0, "again: %s", err);
    PGconn *c = connect_db("trilemma");
    long prices = q1(c, "SELECT count(*) FROM prices");
    CHECKF(prices >= 10, "prices loaded: %ld", prices);
    CHECK(q1(c, "SELECT input_micros FROM prices WHERE provider = 'openai' AND "
                "model = 'gpt-4.1-mini' AND effective_from = '2025-04-14'") == 400000);
    CHECK(q1(c, "SELECT count(*) FROM pg_class WHERE relname = 'turns_' || "
                "to_char(now() AT TIME ZONE 'UTC', 'YYYYMM')") == 1);
    PQfinish(c);
}

/* ---- turns ---- */

static unsigned run_tag;
static int64_t base_ms;

struct tb {
    char conv[33], turn[33], user[64];
    char answer[8192];
    uint32_t deltas[3];
    struct llm_call_record calls[2];
    struct tool_call_record tools[2];
    struct store_turn t;
};

/* A retry that failed, the call that answered, a tool call and one with arguments that are not
 * JSON: four ledger lines summing to 1000 + idx + 5. */
static void make_calls(struct tb *b, unsigned idx)
{
    b->calls[0] = (struct llm_call_record){.provider = "openai",
                                           .model = "gpt-4.1-mini",
                                           .tier = "standard",
                                           .attempt = 1,
                                           .role = "retry",
                                           .status = "error",
                                           .error = "overloaded",
                                           .http_status = 529,
                                           .ttft_ms = -1,
                                           .duration_ms = 30};
    b->calls[1] = (struct llm_call_record){.provider = "openai",
                                           .model = "gpt-4.1-mini",
                                           .tier = "standard",
                                           .attempt = 2,
                                           .role = "model",
                                           .status = "ok",
                                           .http_status = 200,
                                           .usage = {120, 100, 0, 30, 10},
                                           .usage_reported = true,
                                           .ttft_ms = 80,
                                           .duration_ms = 400,
                                           .cost_micros = 1000 + idx};
    b->tools[0] = (struct tool_call_record){.name = "search",
                                            .arguments = "{\"q\":\"shoes\"}",
                                            .arguments_len = 13,
                                            .result_bytes = 512,
                                            .duration_ms = 12,
                                            .status = "ok",
                                            .cost_micros = 5};
    b->tools[1] = (struct tool_call_record){.name = "lookup",
                                            .arguments = "not json",
                                            .arguments_len = 8,
                                            .cache_hit = true,
                                            .duration_ms = 1,
                                            .status = "ok"};
}

static void make_turn(struct tb *b, unsigned conv, unsigned idx, size_t answer_len)
{
    memset(b, 0, sizeof(*b));
    snprintf(b->conv, sizeof(b->conv), "%08x%08x0000000000000000", run_tag, conv);
    snprintf(b->turn, sizeof(b->turn), "%08x%08x%08x00000001", run_tag, conv, idx);
    snprintf(b->user, sizeof(b->user), "question %u of %u", idx, conv);
    if (answer_len < 3 || answer_len >= sizeof(b->answer))
        answer_len = 24;
    for (size_t i = 0; i < answer_len; i++)
        b->answer[i] = (char)('a' + (i + idx) % 26);
    b->deltas[0] = 1;
    b->deltas[1] = (uint32_t)answer_len / 2;
    b->deltas[2] = (uint32_t)answer_len;
    make_calls(b, idx);
    b->t = (struct store_turn){.conversation_id = b->conv,
                               .user_sub = "alice",
                               .turn_id = b->turn,
                               .client_msg_id = "c1",
                               .user_text = b->user,
                               .user_len = strlen(b->user),
                               .answer = b->answer,
                               .answer_len = answer_len,
                               .delta_ends = b->deltas,
                               .n_deltas = 3,
                               .finish_reason = "stop",
                               .started_at_ms = base_ms + conv * 100000 + idx * 10,
                               .first_token_ms = 80,
                               .total_ms = 430,
                               .currency = "INR",
                               .usd_to_inr_micros = 84000000,
                               .calls = b->calls,
                               .n_calls = 2,
                               .usage = {120, 100, 0, 30, 10},
                               .cost_micros = 1000 + idx + 5,
                               .tools = b->tools,
                               .n_tools = 2};
}

/* ---- the loop script ---- */

struct T;
struct step {
    const char *name;
    void (*start)(struct T *t);
    bool (*done)(struct T *t);
    uint32_t max_ms;
};

struct T {
    struct loop *l;
    struct config conf, conf2;
    struct store_conf sc, sc2;
    struct store *st, *st2;
    PGconn *db;
    const struct step *steps;
    int nsteps, cur;
    bool started;
    uint64_t deadline;
    struct timer tick;
    int pending, ok, eio;    /* commits to st */
    int pending2, ok2, eio2; /* commits to st2 */
    long expected_turns;     /* distinct turns acknowledged with 0 */
    int results[8];
    uint64_t batches_before;
    /* batches in flight: acknowledgement order */
    PGconn *blocker; /* holds a conversation row so that the batch writing it waits */
    int order[192], acked[192], nacks;
    uint64_t rejected_before;
    /* the pods' heartbeat */
    int beats_done, beats[2];
    bool cancelled_beat_ran;
    /* reads */
    int loads_done;
    bool cancelled_ran;
    struct {
        bool found;
        char user[32];
        int n;
        char first[64], last[64];
        char last_turn[33];
        uint32_t n_deltas, last_delta;
        size_t answer_len;
        int64_t cost;
        char finish[16];
        uint64_t output_tokens;
    } conv, unknown;
};

static void on_commit(void *ctx, int result)
{
    struct T *t = ctx;
    t->pending--;
    if (result == 0)
        t->ok++;
    else
        t->eio += result == -EIO;
}

static void on_commit2(void *ctx, int result)
{
    struct T *t = ctx;
    t->pending2--;
    if (result == 0)
        t->ok2++;
    else
        t->eio2 += result == -EIO;
}

static int *slot_result(struct T *t, int i)
{
    return &t->results[i];
}

struct slot {
    struct T *t;
    int i;
};
static struct slot slots[8];

static void on_commit_slot(void *ctx, int result)
{
    struct slot *s = ctx;
    *slot_result(s->t, s->i) = result;
    s->t->pending--;
}

static void commit(struct T *t, unsigned conv, unsigned idx, size_t answer_len)
{
    struct tb b;
    make_turn(&b, conv, idx, answer_len);
    t->pending++;
    store_commit_turn(t->st, &b.t, on_commit, t);
}

static bool no_pending(struct T *t)
{
    return t->pending == 0 && t->pending2 == 0;
}

/* step: both connections up */
static void s_create(struct T *t)
{
    t->sc = config_store(&t->conf);
    t->st = store_create(t->l, &t->sc, 0, 8);
    CHECK(t->st != NULL);
}

static bool s_create_done(struct T *t)
{
    return pg_up(t->st->wc[0].pg) && pg_up(t->st->r);
}

/* step: 200 turns at once go out in full batches */
static void s_group(struct T *t)
{
    t->batches_before = t->st->stats.batches;
    for (unsigned c = 0; c < 20; c++)
        for (unsigned i = 0; i < 10; i++)
            commit(t, c, i, 40 + i);
}

static void s_idem(struct T *t)
{
    long turns = q1(t->db, "SELECT count(*) FROM turns");
    uint64_t batches = t->st->stats.batches - t->batches_before;
    CHECKF(t->ok == 200 && t->eio == 0, "ok %d eio %d", t->ok, t->eio);
    CHECKF(batches >= 4 && batches <= 5, "200 turns took %llu batches",
           (unsigned long long)batches);
    CHECKF(turns == 200, "turns stored: %ld", turns);
    CHECK(q1(t->db, "SELECT count(*) FROM messages") == 400);
    CHECK(q1(t->db, "SELECT count(*) FROM llm_calls") == 400);
    CHECK(q1(t->db, "SELECT count(*) FROM tool_calls") == 400);
    CHECK(q1(t->db, "SELECT count(*) FROM ledger") == 800);
    CHECK(q1(t->db, "SELECT count(*) FROM conversations") == 20);
    t->expected_turns = 200;
    /* the same turn twice (a replay after a lost reply): one row set */
    commit(t, 30, 0, 50);
    commit(t, 30, 0, 50);
    t->expected_turns += 1;
}

static void s_reject(struct T *t)
{
    CHECK(q1(t->db, "SELECT count(*) FROM turns WHERE conversation_id LIKE '%0000001e%'") == 1);
    CHECK(q1(t->db, "SELECT count(*) FROM messages WHERE conversation_id LIKE '%0000001e%'") == 2);
    CHECK(q1(t->db, "SELECT count(*) FROM ledger WHERE conversation_id LIKE '%0000001e%'") == 4);
    /* every turn's ledger lines add up to its cost */
    CHECK(q1(t->db, "SELECT count(*) FROM turns t WHERE t.cost_micros <> (SELECT "
                    "coalesce(sum(amount_micros), 0) FROM ledger l WHERE l.turn_id = t.id AND "
                    "l.created_at = t.started_at)") == 0);
    /* invalid tool arguments were kept as a JSON string */
    CHECK(q1(t->db, "SELECT count(*) FROM tool_calls WHERE name = 'lookup' AND "
                    "arguments = '\"not json\"'::jsonb") == 201);
    /* a batch with impossible rows: the good turns commit, the bad are reported */
    struct tb b[4];
    for (int i = 0; i < 4; i++)
        make_turn(&b[i], 31, (unsigned)i, 30);
    b[1].calls[1].cost_micros = -5; /* CHECK (cost_micros >= 0) */
    b[1].t.cost_micros = 0;
    b[3].t.cost_micros += 1; /* the ledger no longer sums to the turn's cost: deferred trigger */
    t->batches_before = t->st->stats.errors[SE_REJECTED];
    for (int i = 0; i < 4; i++) {
        slots[i] = (struct slot){t, i};
        t->results[i] = 1;
        t->pending++;
        store_commit_turn(t->st, &b[i].t, on_commit_slot, &slots[i]);
    }
    t->expected_turns += 2;
}

static void on_load(void *ctx, int result, const struct store_conversation *c)
{
    struct T *t = ctx;
    t->loads_done++;
    CHECK(result == 0);
    if (result)
        return;
    typeof(t->conv) *o = c->found && c->n_messages ? &t->conv : &t->unknown;
    o->found = c->found;
    if (!c->found)
        return;
    snprintf(o->user, sizeof(o->user), "%s", c->user_sub);
    o->n = (int)c->n_messages;
    snprintf(o->first, sizeof(o->first), "%s:%.*s", c->messages[0].role, (int)c->messages[0].len,
             c->messages[0].text);
    snprintf(
        o->last, sizeof(o->last), "%s:%.*s", c->messages[c->n_messages - 1].role,
        (int)(c->messages[c->n_messages - 1].len > 20 ? 20 : c->messages[c->n_messages - 1].len),
        c->messages[c->n_messages - 1].text);
    snprintf(o->last_turn, sizeof(o->last_turn), "%s", c->last_turn_id ? c->last_turn_id : "");
    o->n_deltas = c->last_n_deltas;
    o->last_delta = c->last_n_deltas ? c->last_delta_ends[c->last_n_deltas - 1] : 0;
    o->answer_len = c->last_answer_len;
    o->cost = c->last_cost_micros;
    snprintf(o->finish, sizeof(o->finish), "%s", c->last_finish ? c->last_finish : "");
    o->output_tokens = c->last_usage.output_tokens;
}

static void on_load_cancelled(void *ctx, int result, const struct store_conversation *c)
{
    (void)result;
    (void)c;
    ((struct T *)ctx)->cancelled_ran = true;
}

static void s_load(struct T *t)
{
    CHECKF(t->results[0] == 0 && t->results[2] == 0, "good turns: %d %d", t->results[0],
           t->results[2]);
    CHECKF(t->results[1] == -EIO && t->results[3] == -EIO, "bad turns: %d %d", t->results[1],
           t->results[3]);
    CHECK(t->st->stats.errors[SE_REJECTED] - t->batches_before == 2);
    CHECK(q1(t->db, "SELECT count(*) FROM turns WHERE conversation_id LIKE '%0000001f%'") == 2);
    char id[33];
    snprintf(id, sizeof(id), "%08x%08x0000000000000000", run_tag, 3u);
    struct store_op *op = store_load_conversation(t->st, id, 5, on_load_cancelled, t);
    store_cancel(op);
    store_load_conversation(t->st, id, 5, on_load, t);
    store_load_conversation(t->st, "ffffffffffffffffffffffffffffffff", 5, on_load, t);
}

static bool s_load_done(struct T *t)
{
    return t->loads_done == 2;
}

/* ---- provisioned calls and the pods' heartbeat ---- */

#define CAPACITY_CONV 42u

static void exec_ok(PGconn *c, const char *sql);

static void on_beat(void *ctx, int pods)
{
    struct T *t = ctx;
    t->beats[t->beats_done++] = pods;
}

static void on_spend_cancelled(void *ctx, int result, const struct store_spend_row *rows, size_t n)
{
    (void)result, (void)rows, (void)n;
    ((struct T *)ctx)->cancelled_beat_ran = true;
}

static void on_beat_cancelled(void *ctx, int pods)
{
    (void)pods;
    ((struct T *)ctx)->cancelled_beat_ran = true;
}

/* step: a turn whose answering call ran on a provisioned deployment; heartbeats with another
 * live pod and a dead one in the table, and one with a pod id the table refuses */
static void s_capacity(struct T *t)
{
    struct tb b;
    make_turn(&b, CAPACITY_CONV, 0, 30);
    snprintf(b.calls[1].tier, sizeof(b.calls[1].tier), "provisioned");
    snprintf(b.calls[1].deployment, sizeof(b.calls[1].deployment), "frontier-ptu");
    snprintf(b.calls[0].deployment, sizeof(b.calls[0].deployment), "ignored"); /* standard */
    t->pending++;
    store_commit_turn(t->st, &b.t, on_commit, t);
    t->expected_turns += 1;
    exec_ok(t->db, "INSERT INTO pods VALUES ('dead-pod', now() - interval '1 hour'), "
                   "('other-pod', now())");
    store_pods_cancel(store_pods_beat(t->st, "pod-a", 60000, on_beat_cancelled, t));
    /* a spend read dropped before its answer (a worker stopping) frees its context: the
     * sanitizer's leak check at exit is the assertion */
    store_spend_cancel(store_read_spend(t->st, 0, "INR", on_spend_cancelled, t));
    store_pods_beat(t->st, "pod-a", 60000, on_beat, t);
    store_pods_beat(t->st, "", 60000, on_beat, t);
}

static bool s_capacity_done(struct T *t)
{
    return no_pending(t) && t->beats_done == 2;
}

static void s_capacity_check(struct T *t)
{
    CHECKF(t->beats[0] == 2, "live pods: %d", t->beats[0]);
    CHECK(t->beats[1] == -1 && !t->cancelled_beat_ran);
    CHECK(q1(t->db, "SELECT count(*) FROM pods WHERE id IN ('pod-a', 'other-pod')") == 2);
    CHECK(q1(t->db, "SELECT count(*) FROM pods WHERE id = 'dead-pod'") == 0);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT ordinal, tier, coalesce(deployment, '-') FROM llm_calls "
             "WHERE conversation_id = '%08x%08x0000000000000000' ORDER BY ordinal",
             run_tag, CAPACITY_CONV);
    char *calls = qtext(t->db, sql);
    CHECKF(!strcmp(calls, "0|standard|-\n1|provisioned|frontier-ptu\n"), "calls: %s", calls);
    xfree(calls);
    snprintf(sql, sizeof(sql),
             "SELECT line, kind, tier, coalesce(deployment, '-') FROM ledger "
             "WHERE conversation_id = '%08x%08x0000000000000000' ORDER BY line",
             run_tag, CAPACITY_CONV);
    char *lines = qtext(t->db, sql);
    CHECKF(!strcmp(lines, "0|retry|standard|-\n1|model|provisioned|frontier-ptu\n"
                          "2|tool|standard|-\n3|tool|standard|-\n"),
           "ledger: %s", lines);
    xfree(lines);
    /* the schema refuses a provisioned line without its deployment, and a tier it does not know */
    PGresult *r = PQexec(t->db, "UPDATE ledger SET deployment = NULL "
                                "WHERE deployment = 'frontier-ptu'");
    const char *why = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
    CHECKF(why && !strcmp(why, "ledger_deployment_tier_check"), "%s", why ? why : "accepted");
    PQclear(r);
    snprintf(sql, sizeof(sql),
             "UPDATE ledger SET tier = 'spot' "
             "WHERE conversation_id = '%08x%08x0000000000000000' AND kind = 'tool'",
             run_tag, CAPACITY_CONV);
    r = PQexec(t->db, sql);
    why = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
    CHECKF(why && !strcmp(why, "ledger_tier_check"), "%s", why ? why : "accepted");
    PQclear(r);
}

/* ---- several batches in flight (batches_in_flight = 3 here) ---- */

struct ack {
    struct T *t;
    int i;
};
static struct ack acks[192];

static void on_ack(void *ctx, int result)
{
    struct ack *a = ctx;
    a->t->order[a->t->nacks++] = a->i;
    a->t->acked[a->i] = result;
    a->t->pending--;
}

/* Acknowledgement i of this round: turn idx of conversation conv (bad: rows PostgreSQL
 * refuses, a negative cost). */
static void commit_acked(struct T *t, int i, unsigned conv, unsigned idx, bool bad)
{
    struct tb b;
    make_turn(&b, conv, idx, 30);
    if (bad) {
        b.calls[1].cost_micros = -5;
        b.t.cost_micros = 0;
    }
    acks[i] = (struct ack){t, i};
    t->acked[i] = 1;
    t->pending++;
    store_commit_turn(t->st, &b.t, on_ack, &acks[i]);
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    CHECKF(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

/* The blocker inserts conversation conv without committing: the batch whose first turn upserts
 * it waits for the blocker's transaction, while the batches after it commit. */
static void block_conversation(struct T *t, unsigned conv)
{
    char sql[256];
    if (!t->blocker)
        t->blocker = connect_db("trilemma");
    exec_ok(t->blocker, "BEGIN");
    snprintf(sql, sizeof(sql),
             "INSERT INTO conversations (id, user_sub, created_at, updated_at) VALUES "
             "('%08x%08x0000000000000000', 'alice', now(), now())",
             run_tag, conv);
    exec_ok(t->blocker, sql);
}

static long conv_turns(struct T *t, unsigned conv)
{
    char sql[160];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM turns WHERE conversation_id = "
             "'%08x%08x0000000000000000'",
             run_tag, conv);
    return q1(t->db, sql);
}

/* Text that array literals must escape (a batch travels as one array per column), in two
 * turns of one batch (one conversation upserted once per statement). */
static const char tricky[] = "say \"NULL\", {a,b} \\ back\\slash\n'quote' \xc3\xbc end";
static const char tricky_args[] = "{\"q\":\"he said \\\"hi\\\" {x}, \\\\ y\"}";

static void s_tricky(struct T *t)
{
    for (unsigned i = 0; i < 2; i++) {
        struct tb b;
        make_turn(&b, 90, i, 30);
        b.t.user_text = tricky;
        b.t.user_len = strlen(tricky);
        b.t.client_msg_id = tricky + 4;
        memcpy(b.tools[0].arguments, tricky_args, sizeof(tricky_args));
        b.tools[0].arguments_len = strlen(tricky_args);
        t->pending++;
        store_commit_turn(t->st, &b.t, on_commit, t);
    }
    t->expected_turns += 2;
}

static void check_tricky(struct T *t)
{
    char sql[400];
    snprintf(sql, sizeof(sql),
             "SELECT m.content, t.client_msg_id, c.arguments::text, c.arguments->>'q' FROM "
             "messages m JOIN turns t ON t.id = m.turn_id JOIN tool_calls c ON c.turn_id = t.id "
             "AND c.ordinal = 0 WHERE m.conversation_id = '%08x%08x0000000000000000' AND "
             "m.ordinal = 0 ORDER BY t.id",
             run_tag, 90u);
    char *got = qtext(t->db, sql);
    struct buf want = {0};
    for (int i = 0; i < 2; i++)
        buf_printf(&want, "%s|%s|%s|%s\n", tricky, tricky + 4,
                   "{\"q\": \"he said \\\"hi\\\" {x}, \\\\ y\"}", "he said \"hi\" {x}, \\ y");
    buf_append(&want, "", 1);
    CHECKF(strcmp(got, buf_begin(&want)) == 0, "stored:\n%s\nwanted:\n%s", got, buf_begin(&want));
    buf_free(&want);
    xfree(got);
}

/* Three full batches go out at once, on three connections; the first waits for the blocker. */
static void s_inorder(struct T *t)
{
    check_tricky(t);
    t->nacks = 0;
    block_conversation(t, 80);
    for (int i = 0; i < 192; i++)
        commit_acked(t, i, 80 + (unsigned)i / 64, (unsigned)i % 64, false);
    t->expected_turns += 192;
}

static bool s_inorder_blocked(struct T *t)
{
    return conv_turns(t, 81) + conv_turns(t, 82) == 128;
}

/* The second and third batches are committed, yet nothing is acknowledged before the first. */
static void s_inorder_release(struct T *t)
{
    CHECKF(t->nacks == 0, "acknowledged before the first batch: %d", t->nacks);
    CHECKF(t->st->nflight == 3, "batches in flight: %u", t->st->nflight);
    exec_ok(t->blocker, "COMMIT");
}

static void check_order(struct T *t, int n, int bad)
{
    CHECKF(t->nacks == n, "acknowledged %d of %d", t->nacks, n);
    for (int i = 0; i < t->nacks; i++) {
        CHECKF(t->order[i] == i, "acknowledgement %d was turn %d", i, t->order[i]);
        CHECKF(t->acked[i] == (i == bad ? -EIO : 0), "turn %d: %d", i, t->acked[i]);
    }
}

/* A batch rejected (one bad turn) while a later one is in flight: committed turn by turn, the
 * later batch acknowledged after it. */
static void s_inflight_reject(struct T *t)
{
    check_order(t, 192, -1);
    CHECK(conv_turns(t, 80) == 64);
    t->nacks = 0;
    t->rejected_before = t->st->stats.errors[SE_REJECTED];
    block_conversation(t, 83);
    for (int i = 0; i < 128; i++)
        commit_acked(t, i, 83 + (unsigned)i / 64, (unsigned)i % 64, i == 5);
    t->expected_turns += 127;
}

static bool s_inflight_reject_blocked(struct T *t)
{
    return conv_turns(t, 84) == 64;
}

static void s_inflight_reject_release(struct T *t)
{
    CHECKF(t->nacks == 0, "acknowledged before the first batch: %d", t->nacks);
    exec_ok(t->blocker, "COMMIT");
}

/* The connection carrying the first batch breaks while the second is committed: the first
 * goes to the journal and is replayed; every turn is acknowledged (in queue order within each
 * batch; a batch that went to the journal when its append is durable) and stored once. */
static void s_inflight_reconnect(struct T *t)
{
    check_order(t, 128, 5);
    CHECK(t->st->stats.errors[SE_REJECTED] - t->rejected_before == 1);
    CHECK(conv_turns(t, 83) == 63);
    t->nacks = 0;
    block_conversation(t, 85);
    for (int i = 0; i < 128; i++)
        commit_acked(t, i, 85 + (unsigned)i / 64, (unsigned)i % 64, false);
    t->expected_turns += 128;
}

static bool s_inflight_reconnect_blocked(struct T *t)
{
    return conv_turns(t, 86) == 64;
}

static void s_inflight_reconnect_break(struct T *t)
{
    CHECKF(t->nacks == 0, "acknowledged before the first batch: %d", t->nacks);
    CHECK(t->st->fl_head && t->st->fl_head->on);
    if (t->st->fl_head && t->st->fl_head->on)
        pg_reset(t->st->fl_head->on->pg);
    exec_ok(t->blocker, "COMMIT");
}

static bool s_inflight_reconnect_done(struct T *t)
{
    return no_pending(t) && !store_degraded(t->st) && t->st->j->size == 0;
}

static void s_inflight_reconnect_check(struct T *t)
{
    CHECKF(t->nacks == 128, "acknowledged %d of 128", t->nacks);
    int last[2] = {-1, -1};
    for (int i = 0; i < t->nacks; i++) {
        int k = t->order[i] / 64;
        CHECKF(t->order[i] > last[k], "turn %d acknowledged after %d", t->order[i], last[k]);
        last[k] = t->order[i];
        CHECK(t->acked[t->order[i]] == 0);
    }
    CHECK(t->st->stats.journaled >= 64);
    CHECK(conv_turns(t, 85) == 64 && conv_turns(t, 86) == 64);
    PQfinish(t->blocker);
    t->blocker = NULL;
}

static void commit2(struct T *t, unsigned from, unsigned n);

/* PostgreSQL dies with a batch in flight; commits go on; a second store fills its journal. */
static void s_outage(struct T *t)
{
    s_inflight_reconnect_check(t);
    CHECK(!t->cancelled_ran);
    CHECK(t->conv.found && strcmp(t->conv.user, "alice") == 0);
    CHECKF(t->conv.n == 5, "messages loaded: %d", t->conv.n);
    /* the last 5 of 20 messages, oldest first: assistant 7, user 8, assistant 8, user 9, ... */
    CHECKF(strncmp(t->conv.first, "assistant:", 10) == 0, "first: %s", t->conv.first);
    CHECKF(strncmp(t->conv.last, "assistant:jklmnopqrstuvwxyz", 20) == 0, "last: %s", t->conv.last);
    char want[33];
    snprintf(want, sizeof(want), "%08x%08x%08x00000001", run_tag, 3u, 9u);
    CHECK(strcmp(t->conv.last_turn, want) == 0);
    CHECK(t->conv.n_deltas == 3 && t->conv.last_delta == 49 && t->conv.answer_len == 49);
    CHECK(t->conv.cost == 1000 + 9 + 5 && strcmp(t->conv.finish, "stop") == 0);
    CHECK(t->conv.output_tokens == 30);
    CHECK(!t->unknown.found);

    t->ok = t->eio = 0;
    for (unsigned i = 0; i < 64; i++)
        commit(t, 40, i, 30); /* a full batch: sent at once */
    CHECK(cluster("pause", NULL, 0) == 0);
    t->sc2 = config_store(&t->conf2);
    t->st2 = store_create(t->l, &t->sc2, 1, 12);
    commit2(t, 0, 10); /* 10 x ~4 KiB: fits in the 64 KiB journal */
}

static void commit2(struct T *t, unsigned from, unsigned n)
{
    for (unsigned i = from; i < from + n; i++) {
        struct tb b;
        make_turn(&b, 50, i, 4000);
        t->pending2++;
        store_commit_turn(t->st2, &b.t, on_commit2, t);
    }
}

static void write_orphan(const char *dir, const char *name, unsigned conv, int n, size_t torn)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct buf b = {0};
    for (int i = 0; i < n; i++) {
        struct tb tb;
        make_turn(&tb, conv, (unsigned)i, 33);
        rec_encode(&b, &tb.t);
    }
    size_t whole = buf_size(&b);
    struct tb tb;
    make_turn(&tb, conv, 999, 33);
    rec_encode(&b, &tb.t);
    mkdir(dir, 0700);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, buf_begin(&b), whole + torn) == (ssize_t)(whole + torn));
    close(fd);
    buf_free(&b);
}

static void s_keep_going(struct T *t)
{
    CHECKF(t->ok == 64, "batch caught by the outage: ok %d eio %d", t->ok, t->eio);
    t->expected_turns += 64;
    CHECK(store_degraded(t->st));
    for (unsigned i = 0; i < 100; i++)
        commit(t, 41, i, 30);
    t->expected_turns += 100;
    CHECK(t->ok2 == 10 && store_accepting(t->st2));
    commit2(t, 10, 10); /* 10 more would pass 64 KiB: refused, all of them */
    /* a process that died with a journal (and a torn tail) in the same folder */
    write_orphan(t->conf.journal_dir, "999999-w7.journal", 60, 5, 20);
    t->expected_turns += 5;
}

static void s_recover(struct T *t)
{
    CHECKF(t->ok == 164 && t->eio == 0, "during the outage: ok %d eio %d", t->ok, t->eio);
    CHECK(store_degraded(t->st));
    CHECK(t->st->j->size > 0 && t->st->stats.journaled >= 100);
    CHECKF(t->ok2 == 10 && t->eio2 == 10, "journal full: ok %d eio %d", t->ok2, t->eio2);
    CHECK(!store_accepting(t->st2));
    CHECK(t->st2->j->size <= t->conf2.journal_max_bytes);
    t->expected_turns += t->ok2;
    CHECK(cluster("start", NULL, 0) == 0);
}

static bool s_recover_done(struct T *t)
{
    return !store_degraded(t->st) && !store_degraded(t->st2) && t->st->j->size == 0 &&
           t->st2->j->size == 0 && !t->st->orphan && !t->st2->orphan && no_pending(t);
}

static void s_verify(struct T *t)
{
    PQfinish(t->db);
    t->db = connect_db("trilemma");
    long turns = q1(t->db, "SELECT count(*) FROM turns");
    CHECKF(turns == t->expected_turns, "turns stored %ld, acknowledged %ld", turns,
           t->expected_turns);
    CHECK(q1(t->db, "SELECT count(*) FROM messages") == 2 * turns);
    CHECK(q1(t->db, "SELECT count(*) FROM ledger") == 4 * turns);
    CHECK(q1(t->db, "SELECT count(*) FROM turns WHERE conversation_id LIKE '%0000003c%'") == 5);
    CHECK(store_accepting(t->st2));
    CHECK(t->st->stats.replayed >= 100);
    struct buf m = {0};
    struct store *both[3] = {t->st, NULL, t->st2};
    store_metrics(both, 3, &m);
    buf_append(&m, "", 1);
    CHECK(strstr(buf_begin(&m), "trilemma_store_degraded 0\n") != NULL);
    CHECK(strstr(buf_begin(&m), "trilemma_store_errors_total{kind=\"rejected\"} 3\n") != NULL);
    CHECK(strstr(buf_begin(&m), "trilemma_store_commit_seconds_bucket{le=\"+Inf\"}") != NULL);
    buf_free(&m);
}

static bool s_idle(struct T *t)
{
    return store_idle(t->st) && store_idle(t->st2);
}

static void s_destroy(struct T *t)
{
    store_destroy(t->st);
    store_destroy(t->st2);
    t->st = t->st2 = NULL;
}

static const struct step script[] = {
    {"connect", s_create, s_create_done, 30000},
    {"group commit", s_group, no_pending, 30000},
    {"idempotent", s_idem, no_pending, 30000},
    {"rejected rows", s_reject, no_pending, 30000},
    {"load", s_load, s_load_done, 30000},
    {"capacity: provisioned calls, heartbeat", s_capacity, s_capacity_done, 30000},
    {"capacity: stored", s_capacity_check, NULL, 0},
    {"escaping", s_tricky, no_pending, 30000},
    {"in flight: three batches", s_inorder, s_inorder_blocked, 30000},
    {"in flight: acknowledged in order", s_inorder_release, no_pending, 30000},
    {"in flight: one rejected", s_inflight_reject, s_inflight_reject_blocked, 30000},
    {"in flight: split, then the next", s_inflight_reject_release, no_pending, 30000},
    {"in flight: reconnect", s_inflight_reconnect, s_inflight_reconnect_blocked, 30000},
    {"in flight: broken connection", s_inflight_reconnect_break, s_inflight_reconnect_done, 60000},
    {"outage", s_outage, no_pending, 60000},
    {"keep committing", s_keep_going, no_pending, 60000},
    {"recover", s_recover, s_recover_done, 120000},
    {"verify", s_verify, s_idle, 30000},
    {"destroy", s_destroy, NULL, 0},
};

static void hook(struct loop *l, void *ctx)
{
    struct T *t = ctx;
    while (t->cur < t->nsteps) {
        const struct step *s = &t->steps[t->cur];
        if (!t->started) {
            t->started = true;
            t->deadline = clock_now_ms() + s->max_ms;
            fprintf(stderr, "step: %s\n", s->name);
            if (s->start)
                s->start(t);
        }
        if (s->done && !s->done(t)) {
            if (clock_now_ms() < t->deadline)
                return;
            CHECKF(0, "step '%s' did not finish in %u ms", s->name, s->max_ms);
            t->cur = t->nsteps - 1; /* go straight to the teardown */
            t->started = false;
            continue;
        }
        t->cur++;
        t->started = false;
    }
    timer_disarm(l, &t->tick);
    loop_stop(l);
}

static void on_tick(struct loop *l, struct timer *tm)
{
    timer_arm(l, tm, loop_now_ms(l) + 10, on_tick); /* the hook runs at least this often */
}

/* ---- replay of a dead process's journals at start ---- */

static void test_replay_at_start(const struct config *base)
{
    struct config conf = *base;
    char err[256];
    snprintf(conf.journal_dir, sizeof(conf.journal_dir), "%s/crashed", work_dir);
    write_orphan(conf.journal_dir, "4242-w0.journal", 70, 7, 30);
    write_orphan(conf.journal_dir, "4242-w1.journal", 71, 3, 0);
    struct store_conf sc = config_store(&conf);
    int n = store_replay_journals(&sc, NULL, err, sizeof(err));
    CHECKF(n == 10, "replayed at start: %d (%s)", n, err);
    PGconn *c = connect_db("trilemma");
    CHECK(q1(c, "SELECT count(*) FROM turns WHERE conversation_id LIKE '%00000046%' OR "
                "conversation_id LIKE '%00000047%'") == 10);
    PQfinish(c);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/4242-w0.journal", conf.journal_dir);
    CHECK(access(path, F_OK) != 0);
    /* again: nothing left */
    CHECK(store_replay_journals(&sc, NULL, err, sizeof(err)) == 0);
}

/* All the checks, in a child process (see main). */
static int run_checks(void)
{
    run_tag = (unsigned)getpid();
    base_ms = (int64_t)time(NULL) * 1000;

    static struct T t;
    config_defaults(&t.conf);
    snprintf(t.conf.database_url, sizeof(t.conf.database_url), "%s", db_url);
    snprintf(t.conf.price_file, sizeof(t.conf.price_file), "%s/config/prices.csv", src_dir);
    snprintf(t.conf.journal_dir, sizeof(t.conf.journal_dir), "%s/a", work_dir);
    t.conf.batches_in_flight = 3; /* the in-flight steps need three at once */
    t.conf2 = t.conf;
    snprintf(t.conf2.journal_dir, sizeof(t.conf2.journal_dir), "%s/b", work_dir);
    t.conf2.journal_max_bytes = 65536;

    test_migrations();
    test_golden_cases();
    test_migrate_entry(&t.conf);

    t.l = loop_create(NULL);
    t.db = connect_db("trilemma");
    t.steps = script;
    t.nsteps = (int)(sizeof(script) / sizeof(script[0]));
    loop_set_turn_hook(t.l, hook, &t);
    timer_arm(t.l, &t.tick, loop_now_ms(t.l), on_tick);
    CHECK(loop_run(t.l) == 0);
    CHECK(t.cur == t.nsteps);
    PQfinish(t.db);
    loop_destroy(t.l);

    test_replay_at_start(&t.conf);
    return tap_done();
}

/* Start the cluster, run the checks in a child, and tear the cluster down whatever happened to
 * the child (a crash or a sanitizer abort included). Exit 0 when all pass (77: skipped). */
int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--source") == 0)
            snprintf(src_dir, sizeof(src_dir), "%s", argv[++i]);
    if (access("/usr/lib/postgresql/15/bin/initdb", X_OK) != 0 && !getenv("PG_BIN")) {
        printf("skipped: no PostgreSQL server binaries\n");
        return 77;
    }
    log_set_level(LOG_WARN);
    if (!mkdtemp(pg_dir) || !mkdtemp(work_dir)) {
        perror("mkdtemp");
        return 1;
    }
    setenv("PG_CLUSTER_OPTS", "-c fsync=off", 0);
    int rc = 1;
    if (cluster("start", db_url, sizeof(db_url)) < 0) {
        fprintf(stderr, "cannot start PostgreSQL\n");
    } else {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0)
            _exit(run_checks());
        int status = 0;
        if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status))
            rc = WEXITSTATUS(status);
        else
            fprintf(stderr, "the checks did not finish (status %#x)\n", status);
    }
    cluster("stop", NULL, 0);
    char cmd[PATH_MAX];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", work_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", work_dir);
    return rc;
}
