/* guard.c - limits around a session that no single connection's view can enforce (issue 18):
 *
 *   - per-user turn limits, process-wide (user_limits.h): a turn counts against its user (the
 *     token's sub, or the client address of an anonymous session) from its start until its
 *     responder is done; the excess gets rate_limited with retry_after_ms;
 *   - the session's end: close code 4001 when its token stops holding (exp, or iat +
 *     jwt_max_age_s, plus the leeway), 4002 at max_session_age_s. One timer on the worker's ring
 *     per session, armed at open for whichever comes first: nothing polls.
 *
 * The limits table is the one piece of session/ shared by the workers; it is made before the
 * server starts (session_limits_init) and is read-only in its configuration afterwards. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "session/session_int.h"
#include "session/user_limits.h"
#include "stream/jsonw.h"

#define WS_CLOSE_TOKEN_EXPIRED 4001
#define WS_CLOSE_SESSION_TOO_OLD 4002

static struct ulim *g_ulim;

/* See session.h. */
void session_limits_init(const struct config *conf)
{
    struct ulim_conf uc = {
        .user_max_turns = conf->max_turns_per_user,
        .user_per_minute = conf->turns_per_minute_per_user,
        .anon_max_turns = conf->max_turns_per_ip,
        .anon_per_minute = conf->turns_per_minute_per_ip,
    };
    g_ulim = ulim_create(&uc);
    sess_budget_init(conf);
}

/* See session.h. */
void session_limits_fini(void)
{
    ulim_destroy(g_ulim);
    g_ulim = NULL;
    sess_budget_fini();
}

/* ---- per-user turn limits ---- */

void session_send_rate_limited(struct session *s, const char *limit, uint64_t retry_ms,
                               const char *id, size_t id_len)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "%s; retry in %llu ms",
             strcmp(limit, "concurrent_turns") == 0 ? "too many turns of yours are running at once"
             : strcmp(limit, "turns_per_minute") == 0 ? "too many turns of yours this minute"
                                                      : "too many messages; slow down",
             (unsigned long long)retry_ms);
    struct jsonw w;
    jw_init(&w, &s->sw->scratch);
    jw_obj_begin(&w);
    jw_kstr(&w, "type", "error");
    jw_kstr(&w, "code", "rate_limited");
    jw_kstr(&w, "message", msg);
    if (id)
        jw_kstrn(&w, "id", id, id_len);
    jw_kstr(&w, "limit", limit);
    jw_kuint(&w, "retry_after_ms", retry_ms);
    jw_obj_end(&w);
    session_send_doc(s, &s->sw->scratch);
    sess_count_error(s->sw, "rate_limited");
}

/* See session_int.h. Without a table (tests that drive session/ alone) every turn passes. */
bool sess_turn_admit(struct session *s, struct turn *t, const char *id, size_t id_len)
{
    if (!g_ulim)
        return true;
    bool anon = s->user_sub[0] == '\0';
    const char *who = anon ? conn_peer(s->c) : s->user_sub;
    uint64_t key = ulim_key(g_ulim, who, strlen(who), anon), retry = 0;
    uint64_t now = loop_now_ms(worker_loop(conn_worker(s->c)));
    enum ulim_verdict v = ulim_turn_begin(g_ulim, key, anon, now, &retry);
    if (v != ULIM_OK) {
        session_send_rate_limited(s, v == ULIM_CONCURRENT ? "concurrent_turns" : "turns_per_minute",
                                  retry ? retry : 1, id, id_len);
        return false;
    }
    t->ulim_key = key;
    t->ulim_held = true;
    return true;
}

/* See session_int.h. */
void sess_turn_release(struct turn *t)
{
    if (!t->ulim_held || !g_ulim)
        return;
    t->ulim_held = false;
    ulim_turn_end(g_ulim, t->ulim_key);
}

/* ---- the session's end ---- */

static void on_life_end(struct loop *l, struct timer *tm)
{
    (void)l;
    struct session *s = (struct session *)((char *)tm - offsetof(struct session, life_timer));
    if (s->life_end == SESS_LIFE_TOKEN) {
        metric_add(&s->sw->m.closed_token_expired, 1);
        conn_close(s->c, WS_CLOSE_TOKEN_EXPIRED, "token expired: reconnect with a new token");
    } else {
        metric_add(&s->sw->m.closed_max_age, 1);
        conn_close(s->c, WS_CLOSE_SESSION_TOO_OLD, "session too old: reconnect and resume");
    }
}

/* See session_int.h. */
void sess_life_arm(struct session *s, int64_t valid_until)
{
    struct loop *l = worker_loop(conn_worker(s->c));
    uint64_t now = loop_now_ms(l);
    uint64_t deadline = now + (uint64_t)s->sw->conf->max_session_age_s * 1000;
    s->life_end = SESS_LIFE_AGE;
    /* a token valid past what int64 milliseconds hold outlives any session age */
    if (valid_until < INT64_MAX / 1000) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t left = valid_until * 1000 - ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        uint64_t at = now + (uint64_t)(left > 0 ? left : 0);
        if (at <= deadline) {
            deadline = at;
            s->life_end = SESS_LIFE_TOKEN;
        }
    }
    timer_arm(l, &s->life_timer, deadline, on_life_end);
}

/* See session_int.h. */
void sess_life_disarm(struct session *s)
{
    timer_disarm(worker_loop(conn_worker(s->c)), &s->life_timer);
}

/* trilemma_user_* and trilemma_sessions_closed_total: the limits at work. */
void sess_guard_metrics(struct server *srv, struct buf *out)
{
    (void)srv;
    sess_budget_metrics(out);
    if (g_ulim) {
        struct ulim_stats st;
        ulim_stats(g_ulim, &st);
        buf_printf(out,
                   "# HELP trilemma_user_limited_total Turns refused by the per-user limits.\n"
                   "# TYPE trilemma_user_limited_total counter\n"
                   "trilemma_user_limited_total{limit=\"concurrent_turns\"} %llu\n"
                   "trilemma_user_limited_total{limit=\"turns_per_minute\"} %llu\n"
                   "# HELP trilemma_user_turns_running Turns running, counted per user.\n"
                   "# TYPE trilemma_user_turns_running gauge\ntrilemma_user_turns_running %llu\n"
                   "# HELP trilemma_user_limit_entries Users tracked by the per-user limits.\n"
                   "# TYPE trilemma_user_limit_entries gauge\ntrilemma_user_limit_entries %llu\n",
                   (unsigned long long)st.limited[ULIM_CONCURRENT],
                   (unsigned long long)st.limited[ULIM_RATE], (unsigned long long)st.running,
                   (unsigned long long)st.users);
    }
}
