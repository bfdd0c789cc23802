/* load_scenario.h - what a load run does: the target, the phases (concurrent users or arrival
 * rate), the conversations (turns, think time, cancels, reconnect-and-resume) and the query mix.
 *
 * A scenario comes from an INI file (docs/loadtest.md, examples in loadtest/scenarios/) read
 * strictly over inih: unknown sections and keys, duplicate keys, bad values and missing
 * required keys are errors that name the file and line. Command-line flags are applied on top
 * by the caller (load_main.c). */
#ifndef TRILEMMA_LOAD_SCENARIO_H
#define TRILEMMA_LOAD_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCN_MAX_PHASES 16
#define SCN_MAX_CATS 32

enum think_dist { THINK_FIXED, THINK_UNIFORM, THINK_EXP };

struct scn_phase {
    char name[32];
    uint32_t duration_ms;
    bool open;        /* arrival-rate phase (open model); else concurrent users (closed) */
    uint32_t users;   /* closed: concurrent users at the end of the ramp */
    uint32_t ramp_ms; /* closed: linear from the previous level to users over this */
    double rate;      /* open: new conversations per second */
    bool poisson;     /* open: exponential gaps (default) or evenly spaced */
};

struct scn_mix {
    char cat[SCN_MAX_CATS][24];
    double weight[SCN_MAX_CATS];
    int n; /* 0 = every query of the corpus equally likely */
};

struct scenario {
    /* [target] */
    char url[512];        /* ws://HOST:PORT/PATH */
    char url2[512];       /* a second process of the same service: half the conversations start
                             there, and a dropped connection reconnects to the other one */
    char direct_sse[512]; /* http://HOST:PORT/PATH: direct mode when set */
    char model[128];      /* direct mode: the "model" of each request */
    /* [run] */
    uint32_t threads;
    uint64_t seed;
    uint32_t grace_ms;           /* after the last phase, running turns may finish within this */
    uint32_t turn_timeout_ms;    /* no turn_end within this: error timeout_turn */
    uint32_t connect_timeout_ms; /* connect + handshake + session message */
    double max_rate;             /* turn starts per second over the process; 0 = no cap */
    bool idle;                   /* connect and hold: no turns */
    bool expect_echo;            /* the target runs the echo model: check every answer's text */
    /* [conversation] */
    uint32_t turns_min, turns_max; /* turns per conversation, uniform in [min, max] */
    enum think_dist think;
    uint32_t think_a_ms, think_b_ms; /* fixed: a; uniform: a..b; exponential: mean a, cap b */
    double cancel_share;             /* share of turns cancelled ... */
    uint32_t cancel_after;           /* ... after this many deltas */
    double resume_share;             /* share of turns dropped, reconnected and resumed ... */
    uint32_t resume_after;           /* ... after this many deltas */
    uint32_t reconnect_delay_ms;     /* pause between the drop and the reconnect */
    /* [queries] */
    char corpus[1024]; /* path; relative paths are resolved against the scenario's folder */
    struct scn_mix mix;
    /* [phase NAME] sections, in file order */
    struct scn_phase phase[SCN_MAX_PHASES];
    int nphases;
};

/* Built-in defaults (docs/loadtest.md): one thread, 3 turns per conversation, think time
 * uniform 500..1500 ms, no cancels or resumes, the checked-in shopping corpus, no phases. */
void scenario_defaults(struct scenario *sc, const char *source_dir);

/* Read a scenario file over the defaults. Returns 0, or -1 with a message in err
 * ("FILE:LINE: message", or "FILE: message" for whole-file checks). On error sc is unchanged. */
int scenario_load(struct scenario *sc, const char *path, char *err, size_t errlen);

/* Cross-field checks (at least one phase, turns_min <= turns_max, ...). 0 or -1 with err. */
int scenario_check(const struct scenario *sc, char *err, size_t errlen);

/* Parse a think-time value ("fixed:2000", "uniform:500-1500", "exponential:3000") into sc.
 * 0 or -1 with a message. Shared by the file and the --think flag. */
int scenario_parse_think(struct scenario *sc, const char *v, char *err, size_t errlen);

/* Parse a turns value ("N" or "MIN-MAX", 1..100000) into sc. 0 or -1 with a message. */
int scenario_parse_turns(struct scenario *sc, const char *v, char *err, size_t errlen);

/* Total duration of the phases in ms. */
uint64_t scenario_duration_ms(const struct scenario *sc);

#endif
