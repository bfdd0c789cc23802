/* session_int.h - internals of session/ shared by its .c files. */
#ifndef TRILEMMA_SESSION_SESSION_INT_H
#define TRILEMMA_SESSION_SESSION_INT_H

#include "net/metrics.h"
#include "session/auth.h"
#include "session/chat_msg.h"
#include "session/session.h"
#include "stream/json.h"
#include "stream/llm.h"

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
    char last_status[80]; /* stage + tool of the last status event sent */
    bool sent_products;
    char turn_id[33];
    char client_id[CHAT_ID_MAX + 1];
    uint64_t started_ms;
    uint64_t first_token_ms; /* 0 until the first delta */
    uint32_t seq;
    uint64_t total_ms;
    struct llm_usage usage; /* the sum over calls, once the responder is done */
    int64_t cost_micros;
    struct buf answer; /* the text sent so far, for the conversation history */
    void *rstate;      /* the responder's own state for this turn */
};

struct session {
    struct conn *c;
    struct sess_worker *sw;
    struct session *prev, *next; /* the worker's sessions */
    char conversation_id[33];
    /* The authenticated subject: owned (set in on_open), or a shared "" without auth - most
     * sessions, which would otherwise each carry AUTH_SUB_MAX bytes of zeros. A pointer, not
     * an array: copy it with a string copy, never with sizeof. */
    const char *user_sub;
    uint64_t rate_tokens; /* thousandths of a message */
    uint64_t rate_at_ms;
    struct turn *turn;
    bool close_after_turn;
    struct history_msg *history; /* oldest first; texts owned */
    size_t history_len;
    void *memo; /* the responder's note between turns (turn_memo), lazily allocated */
    uint32_t memo_len;
    struct store_op *load_op; /* a resume being read */
    char resume_id[33];
    int64_t resume_after;
    struct timer resume_timer; /* waits for a departed turn of the conversation to be stored */
    uint64_t resume_deadline;
    bool resume_waiting;
    struct replay *replay; /* a resume's replay still going out (resume.c), or NULL */
};

enum {
    SESS_FINISH_STOP,
    SESS_FINISH_LENGTH,
    SESS_FINISH_CANCELLED,
    SESS_FINISH_ERROR,
    SESS_FINISH__N
};

#define SESS_ERROR_CODES 19

#define SESS_TTFT_BUCKETS 10
#define SESS_CALL_ROWS 32

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

struct sess_metrics {
    uint64_t sessions_open;                  /* gauge */
    uint64_t ttft_bucket[SESS_TTFT_BUCKETS]; /* time to first token, last bucket +Inf */
    uint64_t ttft_sum_us;
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
};

struct store;
struct store_op;

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
    const char *query_type; /* NULL or "": no "route" member */
    const char *agent;
    const char (*flags)[32];
    uint32_t n_flags;
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
void session_history_free(struct session *s);
const struct responder *session_responder(void);
void on_message_hook(struct conn *c, char *text, size_t len);
void sess_count_finish(struct sess_worker *sw, const char *finish);

#endif
