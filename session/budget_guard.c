/* budget_guard.c - the daily spend limits at work (budget.h): a turn is refused at its start with
 * budget_exceeded when its user or the deployment has spent the day's limit, and every turn's
 * cost is counted when it is committed. The table is seeded from the ledger before the server
 * starts (blocking, on the main thread) and re-read every [budget] refresh_ms on worker 0's
 * reader connection, so that the other pods' spend shows up here too. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "app/config.h"
#include "base/log.h"
#include "session/budget.h"
#include "session/session_int.h"
#include "store/spend.h"
#include "stream/jsonw.h"

static struct budget *g_budget;
static uint32_t g_refresh_ms;
static const char *g_currency;

static int64_t now_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct seed {
    int64_t day;
};

static void on_seed(void *ctx, int result, const struct store_spend_row *rows, size_t n)
{
    struct seed *sd = ctx;
    budget_refresh_end(g_budget, sd->day, result == 0, rows, n);
    log_info("budget: seeded the day's spend of %zu users from the ledger", n);
}

/* See session_int.h. */
void sess_budget_init(const struct config *conf)
{
    if (!conf->budget_user_daily_micros && !conf->budget_deployment_daily_micros)
        return;
    struct budget_conf bc = {(int64_t)conf->budget_user_daily_micros,
                             (int64_t)conf->budget_deployment_daily_micros};
    g_budget = budget_create(&bc);
    g_refresh_ms = conf->budget_refresh_ms;
    g_currency = conf->currency;
    if (!conf->database_url[0])
        return; /* this process's own spend only */
    struct store_conf sc = config_store(conf);
    struct seed sd = {budget_refresh_begin(g_budget, now_unix_ms())};
    char err[256];
    if (store_read_spend_blocking(&sc, sd.day, g_currency, on_seed, &sd, err, sizeof(err)) < 0) {
        budget_refresh_end(g_budget, sd.day, false, NULL, 0);
        log_warn("budget: %s; the limits count from zero until the next read", err);
    }
}

/* See session_int.h. */
void sess_budget_fini(void)
{
    budget_destroy(g_budget);
    g_budget = NULL;
}

static void send_budget_exceeded(struct session *s, enum budget_verdict v, int64_t spent,
                                 int64_t limit, int64_t now, const char *id, size_t id_len)
{
    int64_t resets = budget_day_start(now) + BUDGET_DAY_MS;
    char at[32], msg[200];
    time_t rs = (time_t)(resets / 1000);
    struct tm tm;
    gmtime_r(&rs, &tm);
    strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(msg, sizeof(msg), "%s daily spending limit is reached; it resets at %s",
             v == BUDGET_USER ? "your" : "this service's", at);
    struct jsonw w;
    jw_init(&w, &s->sw->scratch);
    jw_obj_begin(&w);
    jw_kstr(&w, "type", "error");
    jw_kstr(&w, "code", "budget_exceeded");
    jw_kstr(&w, "message", msg);
    if (id)
        jw_kstrn(&w, "id", id, id_len);
    jw_kstr(&w, "limit", v == BUDGET_USER ? "user_daily" : "deployment_daily");
    jw_kint(&w, "spent_micros", spent);
    jw_kint(&w, "limit_micros", limit);
    jw_kstr(&w, "currency", g_currency);
    jw_kstr(&w, "resets_at", at);
    jw_kuint(&w, "retry_after_ms", (uint64_t)(resets - now));
    jw_obj_end(&w);
    session_send_doc(s, &s->sw->scratch);
    sess_count_error(s->sw, "budget_exceeded");
}

/* See session_int.h. */
bool sess_budget_admit(struct session *s, const char *id, size_t id_len)
{
    if (!g_budget)
        return true;
    int64_t now = now_unix_ms(), spent, limit;
    enum budget_verdict v = budget_check(g_budget, s->user_sub, now, &spent, &limit);
    if (v == BUDGET_OK)
        return true;
    send_budget_exceeded(s, v, spent, limit, now, id, id_len);
    return false;
}

/* See session_int.h. */
void sess_budget_spent(const struct turn *t)
{
    if (g_budget)
        budget_add(g_budget, t->user, t->started_unix_ms, t->cost_micros);
}

/* ---- worker 0: the periodic read ---- */

static void arm(struct sess_worker *sw);

static void on_spend(void *ctx, int result, const struct store_spend_row *rows, size_t n)
{
    struct sess_worker *sw = ctx;
    sw->budget_op = NULL;
    budget_refresh_end(g_budget, sw->budget_day, result == 0, rows, n);
    arm(sw);
}

static void on_refresh(struct loop *l, struct timer *tm)
{
    (void)l;
    struct sess_worker *sw =
        (struct sess_worker *)((char *)tm - offsetof(struct sess_worker, budget_timer));
    sw->budget_day = budget_refresh_begin(g_budget, now_unix_ms());
    sw->budget_op = store_read_spend(sw->store, sw->budget_day, g_currency, on_spend, sw);
}

static void arm(struct sess_worker *sw)
{
    struct loop *l = worker_loop(sw->w);
    if (!sw->draining)
        timer_arm(l, &sw->budget_timer, loop_now_ms(l) + g_refresh_ms, on_refresh);
}

/* See session_int.h. */
void sess_budget_worker_init(struct sess_worker *sw)
{
    if (g_budget && sw->store && worker_index(sw->w) == 0)
        arm(sw);
}

/* See session_int.h. A read in flight is dropped: its pending spend is ours again. */
void sess_budget_worker_fini(struct sess_worker *sw)
{
    timer_disarm(worker_loop(sw->w), &sw->budget_timer);
    if (sw->budget_op) {
        store_spend_cancel(sw->budget_op);
        sw->budget_op = NULL;
        budget_refresh_end(g_budget, sw->budget_day, false, NULL, 0);
    }
}

/* See session_int.h. */
void sess_budget_metrics(struct buf *out)
{
    if (!g_budget)
        return;
    struct budget_stats st;
    budget_stats(g_budget, now_unix_ms(), &st);
    buf_printf(out,
               "# HELP trilemma_budget_refused_total Turns refused by the daily spend limits.\n"
               "# TYPE trilemma_budget_refused_total counter\n"
               "trilemma_budget_refused_total{limit=\"user_daily\"} %llu\n"
               "trilemma_budget_refused_total{limit=\"deployment_daily\"} %llu\n"
               "# HELP trilemma_budget_reads_total Reads of the day's spend from the ledger.\n"
               "# TYPE trilemma_budget_reads_total counter\n"
               "trilemma_budget_reads_total{result=\"ok\"} %llu\n"
               "trilemma_budget_reads_total{result=\"failed\"} %llu\n"
               "# HELP trilemma_budget_deployment_spent_micros Today's spend as this process "
               "knows it.\n"
               "# TYPE trilemma_budget_deployment_spent_micros gauge\n"
               "trilemma_budget_deployment_spent_micros %lld\n",
               (unsigned long long)st.refused[BUDGET_USER],
               (unsigned long long)st.refused[BUDGET_DEPLOYMENT], (unsigned long long)st.refreshes,
               (unsigned long long)st.refresh_failures, (long long)st.deployment_spent);
}
