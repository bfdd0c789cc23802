/* load_worker.c - one worker thread: its libuv loop, the schedule that starts users and
 * conversations at their intended times, the once-a-second progress sample, and the stop.
 *
 * The schedule is computed, not sampled: the closed model's k-th user slot of this worker
 * (global user index k * nworkers + id) starts when the phase's linear ramp crosses that index,
 * and the open model's conversations arrive at drawn times; the controller timer is armed for
 * the next such time, so nothing waits for a polling tick. When the loop is late, the user
 * still carries its intended time and the lateness is measured as lag. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "loadtest/load/load.h"
#include "loadtest/load/load_rng.h"
#include "stream/json.h"

/* See load.h. */
int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t phase_start(const struct load *L, int p)
{
    int64_t t = L->t0;
    for (int i = 0; i < p; i++)
        t += (int64_t)L->sc.phase[i].duration_ms * 1000;
    return t;
}

/* See load.h. */
int load_phase_at(const struct load *L, int64_t t)
{
    int64_t end = L->t0;
    for (int i = 0; i < L->sc.nphases; i++) {
        end += (int64_t)L->sc.phase[i].duration_ms * 1000;
        if (t < end)
            return i;
    }
    return L->sc.nphases - 1;
}

/* See load.h. */
int64_t load_sec(const struct load *L, int64_t t)
{
    return t > L->t0 ? (t - L->t0) / 1000000 : 0;
}

/* Concurrent users the closed-model phase p wants at time t (0 for open phases). */
static double level_at(const struct load *L, int p, int64_t t)
{
    const struct scn_phase *ph = &L->sc.phase[p];
    if (ph->open)
        return 0;
    double prev = p > 0 && !L->sc.phase[p - 1].open ? L->sc.phase[p - 1].users : 0;
    double into = (double)(t - phase_start(L, p));
    if (ph->ramp_ms == 0 || into >= ph->ramp_ms * 1000.0)
        return ph->users;
    if (into < 0)
        into = 0;
    return prev + (ph->users - prev) * into / (ph->ramp_ms * 1000.0);
}

/* When does global user g (0-based) of closed phase p start? INT64_MAX if not in this phase. */
static int64_t crossing(const struct load *L, int p, uint64_t g)
{
    const struct scn_phase *ph = &L->sc.phase[p];
    double prev = p > 0 && !L->sc.phase[p - 1].open ? L->sc.phase[p - 1].users : 0;
    double need = (double)g + 1;
    int64_t start = phase_start(L, p);
    if (need > ph->users)
        return INT64_MAX;
    if (need <= prev || ph->ramp_ms == 0)
        return start;
    return start + (int64_t)(ph->ramp_ms * 1000.0 * (need - prev) / (ph->users - prev));
}

static uint32_t wanted_slots(struct worker *w, int64_t now)
{
    const struct load *L = w->L;
    if (now >= L->t0 + (int64_t)L->dur_us)
        return 0;
    uint64_t lvl = (uint64_t)floor(level_at(L, load_phase_at(L, now), now) + 1e-9);
    uint64_t id = (uint64_t)w->id, n = (uint64_t)L->nworkers;
    uint64_t k = lvl > id ? (lvl - id + n - 1) / n : 0;
    return k > L->users_cap ? L->users_cap : (uint32_t)k;
}

/* See load.h. */
bool worker_slot_wanted(struct worker *w, int32_t slot, int64_t now)
{
    return slot >= 0 && (uint32_t)slot < wanted_slots(w, now);
}

/* See load.h. */
bool worker_stopping(struct worker *w)
{
    return w->stopping;
}

/* See load.h. */
void worker_note_lag(struct worker *w, int64_t lag)
{
    if ((uint64_t)lag > w->lag_max_sec)
        w->lag_max_sec = (uint64_t)lag;
    struct stats_sec *s = stats_sec_at(&w->st, load_sec(w->L, mono_us()));
    if ((uint64_t)lag > s->lag_max)
        s->lag_max = (uint64_t)lag;
}

static void free_user(uv_handle_t *h)
{
    struct vuser *u = h->data;
    sse_xfer_free(u);
    buf_free(&u->rx);
    buf_free(&u->tx);
    xfree(u);
}

/* See load.h. */
void worker_user_gone(struct worker *w, struct vuser *u)
{
    if (u->slot >= 0) {
        w->slot[u->slot] = NULL;
        if ((uint32_t)u->slot < w->nslots)
            w->nslots = (uint32_t)u->slot; /* fill from here when wanted again */
    }
    if (u->prev)
        u->prev->next = u->next;
    else
        w->users = u->next;
    if (u->next)
        u->next->prev = u->prev;
    w->nusers--;
    uv_close((uv_handle_t *)&u->timer, free_user);
}

/* Closed model: start the slots wanted now; returns when the next one is due. */
static int64_t fill_slots(struct worker *w, int p, int64_t now)
{
    const struct load *L = w->L;
    uint32_t want = wanted_slots(w, now);
    uint64_t n = (uint64_t)L->nworkers, id = (uint64_t)w->id;
    for (uint32_t k = w->nslots; k < want; k++) {
        if (w->slot[k])
            continue;
        int64_t due = crossing(L, p, k * n + id);
        w->slot[k] = user_create(w, (int32_t)k, due < now ? due : now);
    }
    if (want > w->nslots)
        w->nslots = want;
    return want < L->users_cap ? crossing(L, p, want * n + id) : INT64_MAX;
}

static int64_t arrival_gap(struct worker *w, const struct scn_phase *ph)
{
    double mean = 1e6 * w->L->nworkers / ph->rate;
    return (int64_t)(ph->poisson ? rng_exp(&w->rng, mean) : mean);
}

/* Open model: start the conversations that have arrived; returns the next arrival. */
static int64_t arrivals(struct worker *w, int p, int64_t now, int64_t end)
{
    const struct scn_phase *ph = &w->L->sc.phase[p];
    if (w->arrival_phase != p) {
        w->arrival_phase = p;
        int64_t start = phase_start(w->L, p);
        w->next_arrival =
            ph->poisson ? start + arrival_gap(w, ph) : start + (int64_t)(1e6 * w->id / ph->rate);
    }
    while (w->next_arrival <= now && w->next_arrival < end) {
        if (w->nusers >= w->L->users_cap)
            stats_error(&w->st, p, load_sec(w->L, now), "overload_users_cap");
        else
            user_create(w, -1, w->next_arrival);
        w->next_arrival += arrival_gap(w, ph);
    }
    return w->next_arrival;
}

static void on_ctl(uv_timer_t *t);

static void arm_ctl(struct worker *w, int64_t at, int64_t now)
{
    int64_t ms = at > now ? (at - now + 999) / 1000 : 0;
    uv_update_time(&w->loop);
    uv_timer_start(&w->ctl, on_ctl, (uint64_t)ms, 0);
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Every user is gone: let the loop end. */
static void shutdown_loop(struct worker *w)
{
    w->destroyed = true;
    if (w->L->mode == MODE_WS)
        ws_context_destroy(w);
    else
        sse_worker_cleanup(w);
    uv_timer_stop(&w->ctl);
    uv_timer_stop(&w->tick);
    close_handle((uv_handle_t *)&w->ctl);
    close_handle((uv_handle_t *)&w->tick);
}

static void stop_users(struct worker *w, bool all)
{
    for (struct vuser *u = w->users, *next; u; u = next) {
        next = u->next;
        bool busy = u->state == VU_TURN || u->state == VU_RESUMING || u->state == VU_DROPPED;
        if (all || !busy)
            user_stop(u);
    }
}

/* The run is over for new work: users between turns leave now, running turns get the grace
 * period, then everything is closed. */
static void stopping_tick(struct worker *w, int64_t now)
{
    const struct load *L = w->L;
    if (!w->stopping) {
        w->stopping = true;
        w->cut_at = now + (int64_t)L->sc.grace_ms * 1000;
        stop_users(w, false);
    }
    if (!w->cut && (now >= w->cut_at || atomic_load(&w->L->stop) >= 2)) {
        w->cut = true;
        stop_users(w, true);
    }
    if (!w->users) {
        shutdown_loop(w);
        return;
    }
    arm_ctl(w, now + 20000, now);
}

static void on_ctl(uv_timer_t *t)
{
    struct worker *w = t->data;
    const struct load *L = w->L;
    int64_t now = mono_us(), end = L->t0 + (int64_t)L->dur_us;
    if (w->destroyed)
        return;
    if (w->stopping || now >= end || atomic_load(&w->L->stop)) {
        stopping_tick(w, now);
        return;
    }
    int p = load_phase_at(L, now);
    int64_t pend = L->t0, next = now + 100000;
    for (int i = 0; i <= p; i++)
        pend += (int64_t)L->sc.phase[i].duration_ms * 1000;
    int64_t due = L->sc.phase[p].open ? arrivals(w, p, now, pend) : fill_slots(w, p, now);
    if (due < next)
        next = due;
    if (pend < next)
        next = pend;
    arm_ctl(w, next, now);
}

/* Once a second: the timeline's sample of open sessions, and the progress for the main thread. */
static void on_tick(uv_timer_t *t)
{
    struct worker *w = t->data;
    const struct stats_phase *tot = &w->st.ph[w->st.nphases];
    uint64_t open = w->L->mode == MODE_SSE ? w->nusers : w->nopen;
    int64_t s = load_sec(w->L, mono_us());
    /* a late tick may skip a second: that second gets the same sample */
    for (int64_t k = w->sampled_sec + 1; k < s; k++)
        stats_sec_at(&w->st, k)->open = open;
    stats_sec_at(&w->st, s)->open = open;
    w->sampled_sec = s;
    pthread_mutex_lock(&w->pub_lock);
    w->pub.open = open;
    w->pub.turns = tot->c[C_TURNS];
    w->pub.turns_done = tot->c[C_TURNS_DONE];
    w->pub.errors = tot->c[C_ERRORS];
    w->pub.tokens = tot->c[C_TOKENS];
    if (w->lag_max_sec > w->pub.lag_max)
        w->pub.lag_max = w->lag_max_sec;
    if (w->lag_max_sec > w->pub.lag_total)
        w->pub.lag_total = w->lag_max_sec;
    w->pub.ttft = tot->m[M_TTFT];
    pthread_mutex_unlock(&w->pub_lock);
    w->lag_max_sec = 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uv_timer_start(&w->ctl, on_ctl, 0, 0);
    uv_timer_start(&w->tick, on_tick, 1000, 1000);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (w->L->mode == MODE_WS)
        ws_context_finish(w);
    on_tick(&w->tick); /* the final numbers for the last progress line */
    pthread_mutex_lock(&w->pub_lock);
    w->pub.done = true;
    pthread_mutex_unlock(&w->pub_lock);
    return NULL;
}

/* See load.h. Sets up the loop, the transport and the stats, then starts the thread. */
int worker_start(struct worker *w)
{
    struct load *L = w->L;
    int ret = uv_loop_init(&w->loop);
    if (ret < 0)
        return ret;
    uv_timer_init(&w->loop, &w->ctl);
    uv_timer_init(&w->loop, &w->tick);
    w->ctl.data = w->tick.data = w;
    w->rng = L->sc.seed * 0x9E3779B97F4A7C15ull + (uint64_t)w->id + 1;
    w->doc = json_doc_create();
    w->slot = xcalloc(L->users_cap ? L->users_cap : 1, sizeof(*w->slot));
    w->arrival_phase = -1;
    pthread_mutex_init(&w->pub_lock, NULL);
    stats_init(&w->st, L->sc.nphases, L->dur_us / 1000000 + L->sc.grace_ms / 1000 + 60);
    ret = L->mode == MODE_WS ? ws_context_create(w) : sse_worker_init(w);
    if (ret < 0)
        return ret;
    ret = pthread_create(&w->thread, NULL, worker_main, w);
    return -ret;
}

/* See load.h. Waits for the thread, then frees what the loop owned. The stats stay. */
void worker_join(struct worker *w)
{
    pthread_join(w->thread, NULL);
    if (uv_loop_close(&w->loop) < 0) {
        uv_run(&w->loop, UV_RUN_DEFAULT); /* handles still closing (lws' own) */
        uv_loop_close(&w->loop);
    }
    json_doc_destroy(w->doc);
    buf_free(&w->scratch);
    xfree(w->slot);
    pthread_mutex_destroy(&w->pub_lock);
}
