/* load.h - trilemma-load's internals shared by its files: the run (struct load), the worker
 * threads (struct worker), and the simulated users (struct vuser).
 *
 * One worker thread owns, share-nothing: one libuv loop, one libwebsockets context driven by
 * that loop (lws' libuv event-library plugin: no poll() over every connection per wake-up), or
 * in direct mode one curl multi handle on the same loop; its users; its struct stats. The main
 * thread only reads what each worker publishes once a second (under the worker's lock) and the
 * final stats after the worker has ended.
 *
 * A user (struct vuser) is one simulated person: in the closed model it holds a user slot and
 * runs conversations back to back while the phase wants that slot; in the open model it runs
 * one conversation. A conversation is one connection (one `session`), a number of turns with
 * think time between them, and maybe a cancel or a drop-reconnect-resume mid-turn.
 *
 * Files: load_main.c (flags, threads, progress, reports), load_worker.c (loop, schedule, stop),
 * load_user.c (conversation and turn state machine, measurements), load_ws.c (libwebsockets
 * transport), load_sse.c (direct mode: curl multi), load_report.c / load_html.c (reports). */
#ifndef TRILEMMA_LOAD_H
#define TRILEMMA_LOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/buf.h"
#include "loadtest/load/load_corpus.h"
#include "loadtest/load/load_scenario.h"
#include "loadtest/load/load_stats.h"

struct lws;
struct lws_context;
struct sse_xfer;
typedef struct json_doc json_doc;

enum load_mode { MODE_WS, MODE_SSE };

/* Where the connections go, resolved once at start. */
struct target {
    char scheme[8];    /* "ws" or "http" */
    char host[256];    /* as given */
    char hosthdr[300]; /* the Host header: host[:port] */
    char addr[64];     /* numeric address connected to */
    int port;
    char path[1536]; /* path and query, ?token= appended */
    bool loopback;
};

/* The run: configuration and what every worker reads. Written before the workers start. */
struct load {
    struct scenario sc;
    struct corpus corpus;
    enum load_mode mode;
    struct target tgt;
    struct target tgt2; /* [target] url2 / --url2: the other process (has_tgt2) */
    bool has_tgt2;
    const char *token;    /* --token (not copied) */
    const char *origin;   /* --origin: the Origin header, or NULL */
    bool verbose;         /* libwebsockets warnings and connection errors on stderr */
    const char **headers; /* direct mode: extra request headers "Name: value" */
    int nheaders;
    bool quiet;         /* no progress line */
    int64_t t0;         /* monotonic us at the start of the schedule */
    uint64_t dur_us;    /* the phases' total */
    uint32_t users_cap; /* open users per worker at most (file descriptors) */
    atomic_int stop;    /* 1: stop as at the end of the run (SIGINT); 2: cut now */
    int nworkers;
    struct worker *workers;
};

/* What a worker shows the progress line; copied under pub_lock once a second. */
struct progress {
    uint64_t open, turns, turns_done, errors, tokens;
    uint64_t lag_max;   /* since the previous publish */
    uint64_t lag_total; /* largest lag so far */
    struct hist ttft;   /* all turns so far */
    bool done;
};

struct worker {
    struct load *L;
    int id;
    pthread_t thread;
    uv_loop_t loop;
    uv_timer_t ctl;  /* the schedule: starts users and conversations */
    uv_timer_t tick; /* once a second: timeline sample, publish progress */
    struct lws_context *lws;
    json_doc *doc;
    struct buf scratch;
    void *curl; /* direct mode: CURLM *, see load_sse.c */
    uv_timer_t curl_timer;
    uint64_t rng;
    /* users */
    struct vuser **slot; /* closed model: [users_cap] */
    uint32_t nslots;     /* slots in use are below this */
    struct vuser *users; /* every live user (a list through vuser.next/prev) */
    uint64_t nusers, nopen;
    int64_t next_arrival;   /* open model: intended time of the next conversation */
    int arrival_phase;      /* the phase next_arrival was drawn for */
    int64_t next_turn_slot; /* --max-rate: earliest intended time of the next turn */
    /* stopping */
    bool stopping;  /* no new turns or conversations */
    int64_t cut_at; /* grace over: close everything */
    bool cut;
    bool destroyed; /* lws context destroyed, loop winding down */
    struct stats st;
    uint64_t lag_max_sec;
    int64_t sampled_sec; /* the last second the tick sampled */
    pthread_mutex_t pub_lock;
    struct progress pub;
};

enum vu_state {
    VU_START,      /* waiting to connect (timer) */
    VU_CONNECTING, /* connection and upgrade in progress, then the `session` message */
    VU_THINK,      /* connected, waiting for the next turn's time (timer) */
    VU_TURN,       /* a turn is running */
    VU_DROPPED,    /* dropped mid-turn, waiting to reconnect (timer) */
    VU_RESUMING,   /* reconnecting, resume sent, replay running */
    VU_IDLE,       /* --idle: connected and held */
    VU_CLOSING,    /* clean close in progress */
    VU_GONE,       /* freed once the timer handle has closed */
};

enum vu_action { ACT_NONE, ACT_CANCEL, ACT_DROP };

struct vuser {
    struct worker *w;
    struct vuser *next, *prev;
    int32_t slot; /* closed model slot, -1 in the open model */
    enum vu_state state;
    enum vu_action action;
    uv_timer_t timer;
    int64_t due; /* intended time of what the timer is for */
    /* connection */
    struct lws *wsi;
    bool conn_pending;   /* a connection exists or is being made (until WSI_DESTROY) */
    bool opened;         /* the `session` message arrived on this connection */
    bool closing;        /* we started a clean close */
    char close_kind[48]; /* why the connection ended, when it was an error */
    int64_t t_conn_due, t_tcp;
    struct buf rx; /* a message arriving in fragments */
    struct buf tx; /* queued text messages: [uint32 len][bytes]... */
    struct sse_xfer *sse;
    /* conversation */
    int phase; /* phase of the conversation's start */
    char conv_id[33];
    uint32_t turns_left, msg_no;
    uint64_t conv_cost;
    bool conv_failed;
    /* turn */
    int turn_phase;
    int64_t t_turn; /* intended send time */
    int64_t t_last; /* previous delta */
    uint32_t seq, text_off;
    bool started, cancel_sent, echo_bad;
    bool cancel_race; /* our cancel may meet a turn that already ended: unknown_turn is fine */
    const struct corpus_query *q;
    char turn_id[33];
    char msg_id[24];
    /* resume */
    int64_t t_drop;
    uint32_t drop_seq;
    bool resume_bad, resumed_ack;
    bool
        on_tgt2; /* connected (or connecting) to tgt2: a reconnect after a drop goes to the other */
    bool ignore_rx; /* this connection is being dropped: what else arrives on it is not ours */
};

/* ---- load_worker.c ---- */
int worker_start(struct worker *w);
void worker_join(struct worker *w);
int64_t mono_us(void);
/* The phase (0..nphases-1) an absolute time falls into; after the end, the last one. */
int load_phase_at(const struct load *L, int64_t t);
/* Seconds since the run started, for the timeline. */
int64_t load_sec(const struct load *L, int64_t t);
/* Is the run over for new work (end of schedule, SIGINT)? */
bool worker_stopping(struct worker *w);
/* Should the closed-model user in this slot start another conversation now? */
bool worker_slot_wanted(struct worker *w, int32_t slot, int64_t now);
/* A user is gone: free its slot, unlink it. The memory is freed once its timer has closed. */
void worker_user_gone(struct worker *w, struct vuser *u);
void worker_note_lag(struct worker *w, int64_t lag);

/* ---- load_user.c ---- */
struct vuser *user_create(struct worker *w, int32_t slot, int64_t due);
/* Arm the user's timer for an absolute time (us). */
void user_arm(struct vuser *u, int64_t due);
/* Transport events. */
void user_on_tcp(struct vuser *u);
void user_on_open(struct vuser *u, const char *conv_id, size_t len);
void user_on_message(struct vuser *u, const char *json, size_t len);
void user_on_closed(struct vuser *u);
/* Transport events in direct mode (load_sse.c). */
void user_sse_delta(struct vuser *u, size_t text_len);
void user_sse_end(struct vuser *u, const char *error_kind, const struct stats_usage *use);
/* End now: the run is stopping. Counts a running turn as unfinished. */
void user_stop(struct vuser *u);
void user_error(struct vuser *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- load_ws.c ---- */
int ws_context_create(struct worker *w);
void ws_context_destroy(struct worker *w);
void ws_context_finish(struct worker *w);
int ws_connect(struct vuser *u);
/* Queue one text message (copied) and ask for a write. */
void ws_send(struct vuser *u, const char *msg, size_t len);
/* Close cleanly (1000), or abruptly (RST) when abort. */
void ws_close(struct vuser *u, bool abort);

/* ---- load_sse.c ---- */
int sse_worker_init(struct worker *w);
void sse_worker_cleanup(struct worker *w);
int sse_start_turn(struct vuser *u);
void sse_abort(struct vuser *u);
/* Free the user's transfer (aborted first if running). */
void sse_xfer_free(struct vuser *u);

/* ---- load_report.c / load_html.c ---- */
struct report_info {
    const struct load *L;
    const struct stats *st;
    const char *scenario_path;
    double elapsed_s;
    char started_at[32];
    double cpu_user_s, cpu_sys_s;
    long max_rss_kb;
};
void report_json(struct buf *out, const struct report_info *ri);
void report_html(struct buf *out, const char *json, size_t json_len);

#endif
