/* load_stats.h - what a load run measures: per-phase counters and histograms, errors by kind,
 * and a per-second timeline. Each worker thread fills its own struct stats (no locks); the
 * main thread merges them at the end. Times are microseconds. */
#ifndef TRILEMMA_LOAD_STATS_H
#define TRILEMMA_LOAD_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "loadtest/load/load_hist.h"

enum metric {
    M_CONNECT,   /* intended connection start -> TCP connected (us) */
    M_HANDSHAKE, /* TCP connected -> the `session` message (upgrade + first message) (us) */
    M_TTFT,      /* intended send time of a turn -> its first delta (us) */
    M_GAP,       /* between two consecutive deltas of a turn (us) */
    M_TURN,      /* intended send time -> turn_end (us) */
    M_LAG,       /* actual - intended time of every scheduled action: the tool's own delay (us) */
    M_RESUME,    /* connection dropped -> the replayed turn_end after reconnect + resume (us) */
    M_TOKENS,    /* output tokens per turn (from turn_end usage) */
    M_CONV_COST, /* cost per completed conversation (micro-units of the currency) */
    M_NMETRICS
};

enum counter {
    C_CONNECTS,      /* connections attempted */
    C_SESSIONS,      /* connections that reached the `session` message (SSE: transfers begun) */
    C_CONVERSATIONS, /* conversations started */
    C_CONV_DONE,     /* conversations that ran all their turns */
    C_TURNS,         /* user messages sent */
    C_TURNS_DONE,    /* turn_end received (any finish reason, replays included) */
    C_TURNS_OK,      /* ... with finish_reason stop or length */
    C_CANCELS,       /* cancel messages sent */
    C_CANCELLED,     /* turns that ended "cancelled" */
    C_RESUMES,       /* connections dropped mid-turn to reconnect and resume */
    C_RESUMED,       /* ... whose answer then completed exactly once */
    C_RESUMED_FULL,  /* ... and was the whole answer (stop/length, not a cancelled partial) */
    C_DUPLICATES,    /* deltas received twice (a seq not above the last one) */
    C_UNFINISHED,    /* turns still running when the run ended (not errors) */
    C_TOKENS,        /* output tokens, summed */
    C_IN_TOKENS,     /* input tokens (cached ones included), summed */
    C_COST,          /* cost in micro-units, summed */
    C_ERRORS,        /* errors of every kind */
    C_NCOUNTERS
};

extern const char *const stats_metric_names[M_NMETRICS];
extern const char *const stats_counter_names[C_NCOUNTERS];

struct stats_phase {
    uint64_t c[C_NCOUNTERS];
    struct hist m[M_NMETRICS];
};

/* One second of the run. Tokens are the usage of the turns that ended in it. */
struct stats_sec {
    uint64_t turns, turns_done, tokens, errors, connects;
    uint64_t in_tokens, cached_tokens; /* input tokens, and the cached ones among them */
    uint64_t open;                     /* sessions open at the end of the second (a sample) */
    uint64_t lag_max;                  /* largest schedule lag seen in the second (us) */
};

#define STATS_MAX_KINDS 64

struct stats {
    int nphases;            /* the run's phases; ph[nphases] is the total */
    struct stats_phase *ph; /* [nphases + 1] */
    struct stats_sec *sec;  /* [nsec] */
    size_t nsec;
    char kind[STATS_MAX_KINDS][48];
    uint64_t kind_n[STATS_MAX_KINDS];
    int nkinds;
    uint64_t kind_other; /* errors of kinds beyond STATS_MAX_KINDS */
    char currency[8];
};

void stats_init(struct stats *st, int nphases, size_t nsec);
void stats_free(struct stats *st);

/* Record v into metric m of phase p (clamped to the last phase) and of the total. */
void stats_rec(struct stats *st, int p, enum metric m, uint64_t v);
/* Add n to counter c of phase p and of the total. */
void stats_add(struct stats *st, int p, enum counter c, uint64_t n);
/* The timeline slot of second s (the last one for later seconds). */
struct stats_sec *stats_sec_at(struct stats *st, int64_t s);
/* What a turn's usage says: input tokens (cached ones included), the cached ones, output. */
struct stats_usage {
    uint64_t input, cached_input, output;
};

/* A completed turn's usage into phase p's counters and histogram and second s's timeline. */
void stats_usage(struct stats *st, int p, int64_t s, const struct stats_usage *u);
/* Count one error of a kind ("connect_failed", "close_1008", "error_rate_limited", ...)
 * in phase p and at second s. */
void stats_error(struct stats *st, int p, int64_t s, const char *kind);
/* Add everything of src into dst (same phase count). */
void stats_merge(struct stats *dst, const struct stats *src);

#endif
