/* session_int.h - internals of session/ shared by its .c files. */
#ifndef TRILEMMA_SESSION_SESSION_INT_H
#define TRILEMMA_SESSION_SESSION_INT_H

#include "net/metrics.h"
#include "session/auth.h"
#include "session/chat_msg.h"
#include "session/session.h"
#include "stream/json.h"
#include "stream/llm.h"
#include "store/store.h"
#include "trace/flags.h"
#include "trace/otlp.h"

struct turn {
    struct session *s; /* NULL once the client is gone (the turn still gets stored) */
    struct sess_worker *sw;
    bool done;    /* the responder finished; the commit is under way */
    bool awaited; /* registered in pending.h from start until committed */
    char conversation_id[33];
    char user[AUTH_SUB_MAX];
    char *user_text;
    size_t user_len;
    int64_t started_unix_ms;
    char finish[16];
    struct buf delta_ends; /* uint32_t per delta: end offset in answer */
    struct llm_call_record *calls;
    uint32_t n_calls;
    struct tool_call_record *tools;
    uint32_t n_tools;
    char query_type[24]; /* "" = not routed (relay or echo) */
    char agent[32];
    char flags[TURN_MAX_FLAGS][32];
    uint32_t n_flags;
    struct cache_saving_record *savings;
    uint32_t n_savings;
    char cache[16];       /* the layer that served the answer; "" = none */
    char last_status[80]; /* stage + tool of the last status event sent */
    struct trace *tr;     /* the turn's trace (turn_trace.c); NULL when capture is off */
    bool sent_products;
    char turn_id[33];
    char client_id[CHAT_ID_MAX + 1];
    uint64_t ulim_key; /* the per-user limit this turn counts against (guard.c) */
    bool ulim_held;    /* ... until its responder is done */
    uint64_t started_ms;
    uint64_t first_token_ms; /* 0 until the first delta */
    uint32_t seq;
    uint64_t total_ms;
    struct llm_usage usage; /* the sum over calls, once the responder is done */
    int64_t cost_micros;
    struct buf answer; /* the text sent so far, for the conversation history */
    void *rstate;      /* the responder's own state for this turn */
    /* detach grace (detach.c): the client left, the turn runs on for a resume */
    bool detached;              /* parked: on the worker's list, grace timer armed */
    bool keep;                  /* a resume elsewhere claimed it: runs to its end */
    bool resumed;               /* a client came back for it: turn_end "resumed": true */
    bool catching_up;           /* re-attached: deltas after sent_seq still to send, paced */
    bool overflow;              /* the detach buffer cap was passed: cancelled when it fires */
    bool was_detached;          /* its client left at some point (detach_count_end) */
    uint32_t sent_seq;          /* deltas sent to the client that has the turn now */
    size_t answer_at_detach;    /* answer bytes when the client left */
    struct turn *dnext, *dprev; /* the worker's detached turns */
    struct timer grace_timer;
    struct tstate_claim *claim; /* grace over: asking whether a resume elsewhere claimed it */
    /* Taken over from the sessions that left (history.c), oldest first: turn_history reads
     * from own_history_from on (the last one's); the earlier ones stay for what was built then. */
    struct history_msg *own_history;
    uint32_t own_history_len;
    uint32_t own_history_from;
    uint32_t own_history_bytes;
};

struct session {
    struct conn *c;
    struct sess_worker *sw;
    struct session *prev, *next; /* the worker's sessions, least recently active first */
    char conversation_id[33];
    bool close_after_turn;
    uint8_t life_end;       /* what life_timer ends: SESS_LIFE_TOKEN or SESS_LIFE_AGE (guard.c) */
    bool history_dropped;   /* dropped for the process budget: reload before the next turn */
    uint32_t history_bytes; /* text bytes held in history */
    /* The authenticated subject: owned (set in on_open), or a shared "" without auth - most
     * sessions, which would otherwise each carry AUTH_SUB_MAX bytes of zeros. A pointer, not
     * an array: copy it with a string copy, never with sizeof. */
    const char *user_sub;
    uint64_t rate_tokens; /* thousandths of a message */
    uint64_t rate_at_ms;
    struct turn *turn;
    struct history_msg *history; /* oldest first; texts owned */
    uint32_t history_len;
    uint32_t memo_len;
    void *memo;              /* the responder's note between turns (turn_memo), lazily allocated */
    struct resume *rs;       /* a resume being waited for or read (resume.c), or NULL */
    struct replay *replay;   /* a resume's replay still going out (resume.c), or NULL */
    struct timer life_timer; /* token expiry or max_session_age_s (guard.c) */
    struct held_msg *held;   /* a user_message waiting for its history's reload (history.c) */
    struct trace_ctx *tp;    /* the upgrade's traceparent (owned), or NULL: turn_trace.c */
};

enum {
    SESS_FINISH_STOP,
    SESS_FINISH_LENGTH,
    SESS_FINISH_CANCELLED,
    SESS_FINISH_ERROR,
    SESS_FINISH__N
};

#define SESS_ERROR_CODES 23

enum { SESS_LIFE_TOKEN = 1, SESS_LIFE_AGE = 2 };

#define SESS_TTFT_BUCKETS 10
#define SESS_CALL_ROWS 32
#define SESS_FLAG_KINDS 10

#define SESS_AGENT_ROWS 16

/* Prompt tokens by agent and how the provider's prompt cache served them (the share of input read
 * from the cache is what the stable prefix buys). Rows are claimed once, never freed. */
struct prompt_row {
    char agent[32]; /* the agent, or "classifier" / "relay" for calls that work for none */
    uint64_t input_tokens;
    uint64_t cache_read_tokens;
    uint64_t cache_write_tokens;
};

/* Model calls by provider/model (a small table: rows are claimed once, never freed). */
struct call_row {
    char provider[16];
    char model[128];
    uint64_t by_status[3][5]; /* ok/error/cancelled x 2xx/429/4xx/5xx/none */
    uint64_t cost_micros;
    uint64_t input_tokens;
    uint64_t output_tokens;
};

#define SESS_TYPE_ROWS 16
#define SESS_TOOL_ROWS 32

/* Time to first token of the turns of one query type ("none": not routed). */
struct ttft_type_row {
    char query_type[24];
    uint64_t bucket[SESS_TTFT_BUCKETS];
    uint64_t sum_us;
};

/* Tool calls of one tool by status: ok, error, timeout, cancelled. */
struct tool_row {
    char name[64];
    uint64_t by_status[4];
};

struct sess_metrics {
    uint64_t sessions_open;                  /* gauge */
    uint64_t ttft_bucket[SESS_TTFT_BUCKETS]; /* time to first token, last bucket +Inf */
    uint64_t ttft_sum_us;
    uint32_t type_rows; /* rows in use; published after a row's name is written */
    struct ttft_type_row types[SESS_TYPE_ROWS];
    uint32_t tool_rows; /* same */
    struct tool_row tools[SESS_TOOL_ROWS];
    uint32_t call_rows; /* rows in use; published after a row's names are written */
    struct call_row calls[SESS_CALL_ROWS];
    uint32_t agent_rows; /* the same for prompt_rows */
    struct prompt_row prompts[SESS_AGENT_ROWS];
    uint64_t sessions_total;
    uint64_t turns_started;
    uint64_t turns_finished[SESS_FINISH__N];
    uint64_t deltas_out;
    uint64_t events_out;
    uint64_t errors[SESS_ERROR_CODES];
    uint64_t auth_failures;
    uint64_t closed_token_expired;   /* sessions closed with 4001 */
    uint64_t closed_max_age;         /* sessions closed with 4002 */
    uint64_t history_dropped;        /* histories dropped for the process budget */
    uint64_t history_trimmed;        /* messages dropped for history_max_bytes or the budget */
    uint64_t history_reloads;        /* dropped histories read back from the store */
    uint64_t flags[SESS_FLAG_KINDS]; /* turns flagged, by kind (turn_trace.c) */
    uint64_t traces_kept, traces_sampled_out;
    /* detach grace and resume of running turns (detach.c, resume.c) */
    uint64_t detaches;
    uint64_t reattaches[2][2]; /* [same process, other process][live, replayed after a wait] */
    uint64_t grace_expiries;
    uint64_t detach_overflows;
    uint64_t detached_bytes;          /* answer bytes produced while no client was there */
    uint64_t abandoned_bytes;         /* ... of turns nobody came back for */
    uint64_t abandoned_output_tokens; /* estimated: the turn's output x its share of bytes */
    uint64_t abandoned_cost_micros;   /* ... and cost, the same way */
    uint64_t detached_now;            /* gauge */
};

struct store;
struct store_op;
struct tstate;
struct tstate_claim;

struct sess_worker {
    struct worker *w;
    struct store *store;          /* NULL without DATABASE_URL */
    struct store_conf store_conf; /* points into the server's config */
    int64_t usd_to_inr_micros;
    const struct config *conf;
    const struct responder *responder;
    void *rworker;
    json_doc *doc;
    struct buf scratch;
    struct session head; /* list sentinel */
    struct auth_conf auth;
    char pending_sub[AUTH_SUB_MAX]; /* from on_upgrade to on_open (same call chain) */
    int64_t pending_until;          /* ... and when its token stops holding (unix s) */
    struct trace_ctx pending_tp;    /* the same for a valid traceparent header ... */
    bool has_pending_tp;            /* ... when there was one */
    struct trace_conf trace;        /* [trace] */
    struct cost_windows costs;      /* recent turn costs per query type (cost_outlier) */
    struct otlp_exporter *otlp;     /* NULL without [trace] otlp_endpoint */
    struct hc *otlp_hc;             /* the exporter's client when the responder has none */
    struct tstate *ts;              /* running-turn rows (store/turn_state.h); NULL w/o store */
    struct turn *detached;          /* turns whose client left, in their grace (detach.c) */
    uint32_t claiming;              /* ended turns asking for their claim before the commit */
    struct timer budget_timer;      /* worker 0: the next read of the day's spend (budget.h) */
    struct store_op *budget_op;     /* ... in flight */
    int64_t budget_day;             /* ... for this day */
    struct timer pods_timer;        /* worker 0: the next heartbeat (pods.c) */
    struct store_op *pods_op;       /* ... in flight */
    int pods_seen;                  /* ... the last count it read */
    bool draining;
    struct sess_metrics m;
};

void session_send_error(struct session *s, const char *code, const char *message, const char *id,
                        size_t id_len, const char *turn_id);
void sess_count_error(struct sess_worker *sw, const char *code);
void session_send_event_session(struct session *s);
void session_new_conversation(struct session *s);
void session_turn_free(struct turn *t);
void session_start_turn(struct session *s, const struct chat_msg *m);
void session_cancel_turn(struct session *s, const char *finish);
void session_detach_turn(struct session *s);
void random_hex(char *out, size_t bytes);
void random_hex16(char out[33]);
void history_add(struct session *s, const char *role, const char *text, size_t len);
void session_send_doc(struct session *s, struct buf *b);

struct turn_end_info {
    const char *turn_id;
    const char *finish;
    const char *currency;
    struct llm_usage usage;
    int64_t cost_micros;
    int64_t first_token_ms; /* < 0: no token */
    int64_t total_ms;
    bool replayed;
    bool resumed;           /* a client came back for the running turn (detach grace or a wait) */
    const char *query_type; /* NULL or "": no "route" member */
    const char *agent;
    const char (*flags)[32];
    uint32_t n_flags;
    const char *cache; /* the layer that served the answer; NULL or "" = null */
};
void session_send_delta(struct session *s, const char *turn_id, uint32_t seq, const char *text,
                        size_t len);
void session_send_turn_end(struct session *s, const struct turn_end_info *e);
void session_send_status(struct session *s, const char *turn_id, const char *stage,
                         const char *tool);
void session_send_products(struct session *s, const char *turn_id, const char *items, size_t len);
void session_resume(struct session *s, const struct chat_msg *m);
/* A resume's paced replay: go on once output drained (on_writable); drop it (on_close). */
void session_replay_more(struct session *s);
void session_replay_free(struct session *s);
/* Turn the rest of a re-attached turn still catching up (deltas after sent_seq, then its
 * turn_end) into a paced replay: the turn is being freed (resume.c). */
void session_replay_from_turn(struct session *s, struct turn *t, const struct turn_end_info *e);
/* A resume's state, dropped when the client leaves (resume.c). */
void session_resume_free(struct session *s);
bool session_resume_busy(const struct session *s);

/* detach.c: the detach grace. */
bool detach_park(struct turn *t, struct session *s); /* the client left: keep it running? */
void detach_forget(struct turn *t);                  /* the turn is done: off the detached list */
void detach_buffered(struct turn *t, size_t len);    /* a delta while detached (cap, metrics) */
struct turn *detach_find(struct sess_worker *sw, const char *conversation_id);
void detach_attach(struct session *s, struct turn *t, int64_t after_seq);
void detach_catch_up(struct session *s);     /* paced: deltas after sent_seq (on_writable too) */
void detach_end_all(struct sess_worker *sw); /* drain, stop: grace is over for every turn */
void detach_count_end(struct turn *t);       /* at commit: what grace cost for nobody */
void session_history_free(struct session *s);
const struct responder *session_responder(void);
void on_message_hook(struct conn *c, char *text, size_t len);
void on_user_message(struct session *s, const struct chat_msg *m);
void sess_count_finish(struct sess_worker *sw, const char *finish);

/* guard.c: the limits of issue 18 around a session and its turns. */
/* Arm the session's end: its token's end (valid_until, unix s; INT64_MAX = none) or
 * max_session_age_s, whichever comes first. */
void sess_life_arm(struct session *s, int64_t valid_until);
void sess_life_disarm(struct session *s);
/* Admit a turn of s under the per-user limits: true (t->ulim_* set) or false after sending
 * rate_limited (with retry_after_ms) about the message id. */
bool sess_turn_admit(struct session *s, struct turn *t, const char *id, size_t id_len);
/* The turn's responder is done: it no longer counts as running for its user. */
void sess_turn_release(struct turn *t);
void session_send_rate_limited(struct session *s, const char *limit, uint64_t retry_ms,
                               const char *id, size_t id_len);
void sess_guard_metrics(struct server *srv, struct buf *out);

/* The daily spend limits (budget_guard.c, budget.h): the process's table, made and seeded from
 * the ledger (blocking) before the server starts when [budget] sets a daily limit, freed after it
 * stopped. */
void sess_budget_init(const struct config *conf);
void sess_budget_fini(void);
/* A turn may start (its user and the deployment are under their day's limit); otherwise the
 * client got budget_exceeded (id: the message's) and nothing started. */
bool sess_budget_admit(struct session *s, const char *id, size_t id_len);
/* The ended turn's cost counts toward its user's and the deployment's day. */
void sess_budget_spent(const struct turn *t);
/* Worker 0 re-reads the day's spend every [budget] refresh_ms; fini cancels a read in flight. */
void sess_budget_worker_init(struct sess_worker *sw);
void sess_budget_worker_fini(struct sess_worker *sw);
/* trilemma_budget_*: refusals, reads of the ledger, today's deployment spend. */
void sess_budget_metrics(struct buf *out);

/* The pods' heartbeat (pods.c): worker 0 beats every refresh_ms once session_pods_watch was
 * called and there is a store; fini cancels a beat in flight. */
void sess_pods_worker_init(struct sess_worker *sw);
void sess_pods_worker_fini(struct sess_worker *sw);

/* history.c: the conversation kept in memory, within history_max_bytes per session and
 * history_budget_bytes per process. */
/* A user_message for a session whose history was dropped: read it back from the store first,
 * then start the turn (true: the message is held until then). */
bool history_reload_first(struct session *s, const struct chat_msg *m);
void history_held_free(struct session *s);
uint64_t history_bytes_held(void);
/* The client left while its turn runs on: the turn keeps the history its context points into
 * (turn_history answers from it while no client is attached), and every history it took over
 * before (left, re-attached, left again), all freed with the turn. */
void history_hand_over(struct session *s, struct turn *t);
void history_turn_free(struct turn *t);
/* turn_trace.c: the turn's trace from start to commit, the anomaly flags, export. */
void sess_trace_worker_init(struct sess_worker *sw, struct loop *l);
void sess_trace_worker_fini(struct sess_worker *sw);
void sess_trace_upgrade(struct sess_worker *sw, const struct http_request *req);
void sess_trace_open(struct sess_worker *sw, struct session *s);
void turn_trace_start(struct turn *t);
/* The anomaly flags, computed and added to the turn (and counted) once the responder is done. */
void turn_trace_flags(struct turn *t);
/* The spans (if the trace is kept) into rec, pointing into text and *spans (free both after
 * store_commit_turn), and to the exporter. */
void turn_trace_finish(struct turn *t, struct store_turn *rec, struct buf *text,
                       struct span_record **spans);
void sess_trace_metrics(struct server *srv, struct sess_worker *(*app)(struct server *, int),
                        struct buf *out);

#endif
