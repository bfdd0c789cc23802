/* pods.c - the live pod count from the store's heartbeat (store/capacity_store.h), for whoever
 * shares something per pod: the provisioned capacity's share (docs/routing.md, "Capacity tiers").
 * Worker 0 beats at once when it starts and then every refresh_ms on its reader connection; each
 * count it reads is handed to the watcher. A failed beat (PostgreSQL away) hands nothing: the last
 * count stays. A pod whose process died drops out of the others' counts stale_ms (three periods)
 * after its last beat. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "session/session_int.h"
#include "store/capacity_store.h"

static session_pods_fn g_fn;
static void *g_ctx;
static uint32_t g_refresh_ms;
static char g_pod_id[160];

/* See session.h. */
void session_pods_watch(session_pods_fn fn, void *ctx, uint32_t refresh_ms)
{
    g_fn = fn;
    g_ctx = ctx;
    g_refresh_ms = refresh_ms ? refresh_ms : 10000;
    /* one row per process: the host (a pod's name in Kubernetes), the pid and the start time,
     * so a restarted process is a new pod and the old row ages out */
    char host[64] = "";
    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "unknown");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(g_pod_id, sizeof(g_pod_id), "%s/%ld/%lld", host, (long)getpid(),
             (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static void arm(struct sess_worker *sw, uint32_t in_ms);

static void on_pods(void *ctx, int pods)
{
    struct sess_worker *sw = ctx;
    sw->pods_op = NULL;
    if (pods > 0) {
        if (pods != sw->pods_seen)
            log_info("capacity: %d live pods share the provisioned capacity", pods);
        sw->pods_seen = pods;
        g_fn(g_ctx, pods);
    }
    arm(sw, g_refresh_ms);
}

static void on_beat(struct loop *l, struct timer *tm)
{
    (void)l;
    struct sess_worker *sw =
        (struct sess_worker *)((char *)tm - offsetof(struct sess_worker, pods_timer));
    sw->pods_op = store_pods_beat(sw->store, g_pod_id, 3 * g_refresh_ms, on_pods, sw);
    if (!sw->pods_op)
        arm(sw, g_refresh_ms);
}

static void arm(struct sess_worker *sw, uint32_t in_ms)
{
    struct loop *l = worker_loop(sw->w);
    if (!sw->draining)
        timer_arm(l, &sw->pods_timer, loop_now_ms(l) + in_ms, on_beat);
}

/* See session_int.h. */
void sess_pods_worker_init(struct sess_worker *sw)
{
    if (g_fn && sw->store && worker_index(sw->w) == 0)
        arm(sw, 0);
}

/* See session_int.h. */
void sess_pods_worker_fini(struct sess_worker *sw)
{
    timer_disarm(worker_loop(sw->w), &sw->pods_timer);
    store_pods_cancel(sw->pods_op);
    sw->pods_op = NULL;
}
