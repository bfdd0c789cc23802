/* load_scenario.c - defaults and the strict INI reader for scenario files (docs/loadtest.md).
 *
 * As in app/config.c, the file goes through base/ini_strict (inih over a strict line reader that
 * counts physical lines and refuses what inih would accept quietly: over-long lines, NUL bytes,
 * indented continuation lines, ':' separators). Sections are [target], [run], [conversation],
 * [queries] and any number of [phase NAME], kept in file order; the reader registers each phase
 * when it sees the header, so a phase without keys is still found (and refused for lacking
 * duration_s). */
#include "loadtest/load/load_scenario.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/ini_strict.h"
#include "base/mem.h"

enum sect { S_TARGET, S_RUN, S_CONV, S_QUERIES, S_PHASE, S_NONE };
static const char *const sect_names[] = {"target", "run", "conversation", "queries", "phase"};

enum kind { K_STR, K_U32, K_U64, K_DBL, K_BOOL, K_TURNS, K_THINK, K_MIX, K_ARRIVALS };

struct key_def {
    enum sect sect;
    const char *name;
    enum kind kind;
    size_t off;     /* into struct scenario, or struct scn_phase for S_PHASE */
    size_t size;    /* K_STR: buffer size */
    double lo, hi;  /* numbers: range (in the file's unit) */
    uint32_t scale; /* K_U32: stored value = file value * scale (seconds -> ms) */
};

#define SO(f) offsetof(struct scenario, f)
#define PO(f) offsetof(struct scn_phase, f)
#define SZ(f) sizeof(((struct scenario *)0)->f)

static const struct key_def keys[] = {
    {S_TARGET, "url", K_STR, SO(url), SZ(url), 0, 0, 0},
    {S_TARGET, "direct_sse", K_STR, SO(direct_sse), SZ(direct_sse), 0, 0, 0},
    {S_TARGET, "url2", K_STR, SO(url2), SZ(url2), 0, 0, 0},
    {S_TARGET, "model", K_STR, SO(model), SZ(model), 0, 0, 0},
    {S_RUN, "threads", K_U32, SO(threads), 0, 1, 64, 1},
    {S_RUN, "seed", K_U64, SO(seed), 0, 0, 1e18, 1},
    {S_RUN, "grace_s", K_U32, SO(grace_ms), 0, 0, 3600, 1000},
    {S_RUN, "turn_timeout_s", K_U32, SO(turn_timeout_ms), 0, 1, 3600, 1000},
    {S_RUN, "connect_timeout_s", K_U32, SO(connect_timeout_ms), 0, 1, 600, 1000},
    {S_RUN, "max_rate", K_DBL, SO(max_rate), 0, 0, 1e7, 1},
    {S_RUN, "idle", K_BOOL, SO(idle), 0, 0, 0, 0},
    {S_RUN, "expect_echo", K_BOOL, SO(expect_echo), 0, 0, 0, 0},
    {S_CONV, "turns", K_TURNS, 0, 0, 1, 100000, 0},
    {S_CONV, "think", K_THINK, 0, 0, 0, 0, 0},
    {S_CONV, "cancel_share", K_DBL, SO(cancel_share), 0, 0, 1, 1},
    {S_CONV, "cancel_after", K_U32, SO(cancel_after), 0, 0, 100000, 1},
    {S_CONV, "resume_share", K_DBL, SO(resume_share), 0, 0, 1, 1},
    {S_CONV, "resume_after", K_U32, SO(resume_after), 0, 1, 100000, 1},
    {S_CONV, "reconnect_delay_ms", K_U32, SO(reconnect_delay_ms), 0, 0, 600000, 1},
    {S_QUERIES, "corpus", K_STR, SO(corpus), SZ(corpus), 0, 0, 0},
    {S_QUERIES, "mix", K_MIX, 0, 0, 0, 0, 0},
    {S_PHASE, "duration_s", K_U32, PO(duration_ms), 0, 1, 86400, 1000},
    {S_PHASE, "users", K_U32, PO(users), 0, 0, 10000000, 1},
    {S_PHASE, "ramp_s", K_U32, PO(ramp_ms), 0, 0, 86400, 1000},
    {S_PHASE, "arrival_rate", K_DBL, PO(rate), 0, 0.001, 1e6, 1},
    {S_PHASE, "arrivals", K_ARRIVALS, PO(poisson), 0, 0, 0, 0},
};
enum { NKEYS = sizeof(keys) / sizeof(keys[0]) };

struct ini_state {
    struct ini_strict ini; /* first: the reader's state */
    struct scenario *sc;
    enum sect cur;                       /* section of the last header seen by the reader */
    int seen[SCN_MAX_PHASES + 1][NKEYS]; /* line each key was set on; [0] = non-phase */
    int phase_line[SCN_MAX_PHASES];      /* header line of each phase */
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* See load_scenario.h. */
void scenario_defaults(struct scenario *sc, const char *source_dir)
{
    memset(sc, 0, sizeof(*sc));
    snprintf(sc->model, sizeof(sc->model), "gpt-4.1-mini");
    sc->threads = 1;
    sc->seed = 1;
    sc->grace_ms = 10000;
    sc->turn_timeout_ms = 60000;
    sc->connect_timeout_ms = 20000;
    sc->turns_min = sc->turns_max = 3;
    sc->think = THINK_UNIFORM;
    sc->think_a_ms = 500;
    sc->think_b_ms = 1500;
    sc->cancel_after = 2;
    sc->resume_after = 2;
    sc->reconnect_delay_ms = 100;
    snprintf(sc->corpus, sizeof(sc->corpus), "%s/loadtest/corpus/shopping_queries.txt", source_dir);
}

/* ---- values ---- */

/* A plain decimal number: digits, at most one '.', no sign, exponent or spaces. */
static int parse_num(const char *v, double *out)
{
    int dots = 0, digits = 0;
    for (const char *p = v; *p; p++) {
        if (*p == '.')
            dots++;
        else if (*p >= '0' && *p <= '9')
            digits++;
        else
            return -1;
    }
    if (!digits || dots > 1 || v[0] == '.' || v[strlen(v) - 1] == '.')
        return -1;
    *out = strtod(v, NULL);
    return 0;
}

static int parse_uint(const char *v, double lo, double hi, uint64_t *out)
{
    double d;
    if (strchr(v, '.') || parse_num(v, &d) < 0 || d < lo || d > hi)
        return -1;
    *out = strtoull(v, NULL, 10);
    return 0;
}

/* See load_scenario.h. */
int scenario_parse_turns(struct scenario *sc, const char *v, char *msg, size_t n)
{
    char a[32], b[32];
    uint64_t x, y;
    const char *dash = strchr(v, '-');
    size_t la = dash ? (size_t)(dash - v) : strlen(v);
    if (la >= sizeof(a) || (dash && strlen(dash + 1) >= sizeof(b)))
        goto bad;
    memcpy(a, v, la);
    a[la] = '\0';
    snprintf(b, sizeof(b), "%s", dash ? dash + 1 : a);
    if (parse_uint(a, 1, 100000, &x) < 0 || parse_uint(b, 1, 100000, &y) < 0 || x > y)
        goto bad;
    sc->turns_min = (uint32_t)x;
    sc->turns_max = (uint32_t)y;
    return 0;
bad:
    seterr(msg, n, "bad value for 'turns': expected N or MIN-MAX within 1..100000");
    return -1;
}

/* See load_scenario.h. */
int scenario_parse_think(struct scenario *sc, const char *v, char *err, size_t errlen)
{
    uint64_t a = 0, b = 0;
    char tmp[64];
    const char *colon = strchr(v, ':');
    if (!colon || strlen(colon + 1) >= sizeof(tmp))
        goto bad;
    snprintf(tmp, sizeof(tmp), "%s", colon + 1);
    size_t name = (size_t)(colon - v);
    char *dash = strchr(tmp, '-');
    if (dash)
        *dash = '\0';
    if (parse_uint(tmp, 0, 3600000, &a) < 0 || (dash && parse_uint(dash + 1, 0, 3600000, &b) < 0))
        goto bad;
    if (name == 5 && memcmp(v, "fixed", 5) == 0 && !dash) {
        sc->think = THINK_FIXED, b = a;
    } else if (name == 7 && memcmp(v, "uniform", 7) == 0 && dash && a <= b) {
        sc->think = THINK_UNIFORM;
    } else if (name == 11 && memcmp(v, "exponential", 11) == 0 && (!dash || b >= a)) {
        sc->think = THINK_EXP;
        if (!dash)
            b = a * 10; /* the tail is capped, so one draw cannot stall a user for the run */
    } else {
        goto bad;
    }
    sc->think_a_ms = (uint32_t)a;
    sc->think_b_ms = (uint32_t)b;
    return 0;
bad:
    seterr(err, errlen,
           "bad value for 'think': expected fixed:MS, uniform:MIN-MAX or exponential:MEAN[-CAP] "
           "(milliseconds, 0..3600000)");
    return -1;
}

/* "search:40, compare:20" (weights are plain decimals). */
static int parse_mix(struct scenario *sc, const char *v, char *msg, size_t n)
{
    struct scn_mix m = {.n = 0};
    char tmp[200];
    snprintf(tmp, sizeof(tmp), "%s", v);
    for (char *save = NULL, *item = strtok_r(tmp, ",", &save); item;
         item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ')
            item++;
        char *end = item + strlen(item);
        while (end > item && end[-1] == ' ')
            *--end = '\0';
        char *colon = strchr(item, ':');
        double w;
        if (!colon || colon == item || (size_t)(colon - item) >= sizeof(m.cat[0]) ||
            parse_num(colon + 1, &w) < 0 || m.n == SCN_MAX_CATS) {
            seterr(msg, n, "bad value for 'mix': expected CATEGORY:WEIGHT, ... (at most %d)",
                   SCN_MAX_CATS);
            return -1;
        }
        *colon = '\0';
        for (int i = 0; i < m.n; i++)
            if (strcmp(m.cat[i], item) == 0) {
                seterr(msg, n, "bad value for 'mix': category '%s' named twice", item);
                return -1;
            }
        snprintf(m.cat[m.n], sizeof(m.cat[0]), "%s", item);
        m.weight[m.n++] = w;
    }
    if (m.n == 0) {
        seterr(msg, n, "bad value for 'mix': no category");
        return -1;
    }
    sc->mix = m;
    return 0;
}

static int set_key(struct scenario *sc, struct scn_phase *ph, const struct key_def *k,
                   const char *v, char *msg, size_t n)
{
    char *base = k->sect == S_PHASE ? (char *)ph : (char *)sc;
    double d;
    uint64_t u;
    switch (k->kind) {
    case K_STR:
        if (strlen(v) >= k->size) {
            seterr(msg, n, "bad value for '%s': too long (at most %zu bytes)", k->name,
                   k->size - 1);
            return -1;
        }
        memcpy(base + k->off, v, strlen(v) + 1);
        return 0;
    case K_U32:
    case K_U64:
        if (parse_uint(v, k->lo, k->hi, &u) < 0) {
            seterr(msg, n, "bad value for '%s': expected an integer %.0f..%.0f", k->name, k->lo,
                   k->hi);
            return -1;
        }
        if (k->kind == K_U32)
            *(uint32_t *)(void *)(base + k->off) = (uint32_t)(u * k->scale);
        else
            *(uint64_t *)(void *)(base + k->off) = u;
        return 0;
    case K_DBL:
        if (parse_num(v, &d) < 0 || d < k->lo || d > k->hi) {
            seterr(msg, n, "bad value for '%s': expected a number %g..%g", k->name, k->lo, k->hi);
            return -1;
        }
        *(double *)(void *)(base + k->off) = d;
        return 0;
    case K_BOOL:
    case K_ARRIVALS: {
        const char *yes = k->kind == K_BOOL ? "true" : "poisson";
        const char *no = k->kind == K_BOOL ? "false" : "uniform";
        if (strcmp(v, yes) && strcmp(v, no)) {
            seterr(msg, n, "bad value for '%s': expected %s or %s", k->name, yes, no);
            return -1;
        }
        *(bool *)(base + k->off) = strcmp(v, yes) == 0;
        return 0;
    }
    case K_TURNS:
        return scenario_parse_turns(sc, v, msg, n);
    case K_THINK:
        return scenario_parse_think(sc, v, msg, n);
    case K_MIX:
        return parse_mix(sc, v, msg, n);
    }
    return -1;
}

/* ---- the reader ---- */

static bool good_phase_name(const char *s, size_t n)
{
    if (n == 0 || n >= sizeof(((struct scn_phase *)0)->name))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
            return false;
    return true;
}

static void add_phase(struct ini_state *st, const char *name, size_t n)
{
    struct scenario *sc = st->sc;
    if (!good_phase_name(name, n)) {
        ini_strict_error(&st->ini, "bad phase name (1..31 bytes of A-Z a-z 0-9 _ -)");
        return;
    }
    for (int i = 0; i < sc->nphases; i++)
        if (strlen(sc->phase[i].name) == n && memcmp(sc->phase[i].name, name, n) == 0) {
            ini_strict_error(&st->ini, "duplicate phase '%.*s' (first on line %d)", (int)n, name,
                             st->phase_line[i]);
            return;
        }
    if (sc->nphases == SCN_MAX_PHASES) {
        ini_strict_error(&st->ini, "more than %d phases", SCN_MAX_PHASES);
        return;
    }
    struct scn_phase *ph = &sc->phase[sc->nphases];
    memset(ph, 0, sizeof(*ph));
    memcpy(ph->name, name, n);
    ph->poisson = true;
    st->phase_line[sc->nphases++] = st->ini.line;
}

static void on_section(struct ini_strict *ini, const char *name, size_t n)
{
    struct ini_state *st = (struct ini_state *)ini;
    for (int i = 0; i < S_PHASE; i++)
        if (strlen(sect_names[i]) == n && memcmp(sect_names[i], name, n) == 0) {
            st->cur = (enum sect)i;
            return;
        }
    if (n > 6 && memcmp(name, "phase ", 6) == 0) {
        st->cur = S_PHASE;
        add_phase(st, name + 6, n - 6);
        return;
    }
    st->cur = S_NONE;
    ini_strict_error(
        &st->ini, "unknown section [%.*s] (known: target, run, conversation, queries, phase NAME)",
        (int)(n > 64 ? 64 : n), name);
}

static int find_key(enum sect s, const char *name)
{
    for (int i = 0; i < NKEYS; i++)
        if (keys[i].sect == s && strcmp(keys[i].name, name) == 0)
            return i;
    return -1;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct ini_state *st = user;
    char msg[200];
    if (st->ini.err_line)
        return 0;
    if (section[0] == '\0') {
        ini_strict_error(&st->ini, "key '%.64s' outside any section", name);
        return 0;
    }
    int i = find_key(st->cur, name);
    if (i < 0) {
        ini_strict_error(&st->ini, "unknown key '%.64s' in [%.64s]", name, section);
        return 0;
    }
    int slot = st->cur == S_PHASE ? st->sc->nphases : 0;
    if (st->seen[slot][i]) {
        ini_strict_error(&st->ini, "duplicate key '%s' in [%.64s] (first set on line %d)", name,
                         section, st->seen[slot][i]);
        return 0;
    }
    st->seen[slot][i] = st->ini.line;
    if (value[0] == '\0') {
        ini_strict_error(&st->ini, "empty value for '%s'", name);
        return 0;
    }
    struct scn_phase *ph = slot ? &st->sc->phase[slot - 1] : NULL;
    if (set_key(st->sc, ph, &keys[i], value, msg, sizeof(msg)) < 0) {
        ini_strict_error(&st->ini, "%s", msg);
        return 0;
    }
    return 1;
}

/* Per-phase checks with the header's line: which keys a phase needs and allows. */
static int check_phases(const struct ini_state *st, const char *path, char *err, size_t errlen)
{
    for (int p = 0; p < st->sc->nphases; p++) {
        const struct scn_phase *ph = &st->sc->phase[p];
        const int *seen = st->seen[p + 1];
        bool users = seen[find_key(S_PHASE, "users")] != 0;
        bool rate = seen[find_key(S_PHASE, "arrival_rate")] != 0;
        const char *why = NULL;
        if (!seen[find_key(S_PHASE, "duration_s")])
            why = "needs duration_s";
        else if (users == rate)
            why = "needs exactly one of users (concurrent users) and arrival_rate "
                  "(conversations per second)";
        else if (rate && seen[find_key(S_PHASE, "ramp_s")])
            why = "ramp_s goes with users, not with arrival_rate";
        else if (users && seen[find_key(S_PHASE, "arrivals")])
            why = "arrivals goes with arrival_rate, not with users";
        else if (ph->ramp_ms > ph->duration_ms)
            why = "ramp_s is longer than duration_s";
        if (why) {
            seterr(err, errlen, "%s:%d: [phase %s] %s", path, st->phase_line[p], ph->name, why);
            return -1;
        }
        st->sc->phase[p].open = rate;
    }
    return 0;
}

/* A corpus path from the file is relative to the file's folder. */
static int resolve_corpus(struct scenario *sc, const char *path, char *err, size_t errlen)
{
    if (sc->corpus[0] == '/')
        return 0;
    const char *slash = strrchr(path, '/');
    if (!slash)
        return 0;
    char tmp[sizeof(sc->corpus)];
    int n = snprintf(tmp, sizeof(tmp), "%.*s/%s", (int)(slash - path), path, sc->corpus);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        seterr(err, errlen, "%s: corpus path too long", path);
        return -1;
    }
    memcpy(sc->corpus, tmp, (size_t)n + 1);
    return 0;
}

static int finish_load(struct ini_state *st, int rc, const char *path, char *err, size_t errlen)
{
    if (ini_strict_report(&st->ini, rc, path, err, errlen) < 0)
        return -1;
    if (check_phases(st, path, err, errlen) < 0)
        return -1;
    if (st->seen[0][find_key(S_QUERIES, "corpus")] && resolve_corpus(st->sc, path, err, errlen))
        return -1;
    return 0;
}

/* See load_scenario.h. Parses into a heap copy and copies it back only on success. */
int scenario_load(struct scenario *sc, const char *path, char *err, size_t errlen)
{
    struct ini_state *st = xcalloc(1, sizeof(*st));
    struct scenario *tmp = xmalloc(sizeof(*tmp));
    int ret = -1;
    *tmp = *sc;
    tmp->nphases = 0; /* a file's phases replace any given before */
    st->sc = tmp;
    st->cur = S_NONE;
    st->ini.on_section = on_section;
    st->ini.f = fopen(path, "r");
    if (!st->ini.f) {
        seterr(err, errlen, "cannot open %s: %s", path, strerror(errno));
        goto out_free;
    }
    int rc = ini_strict_parse(&st->ini, on_key, st);
    if (finish_load(st, rc, path, err, errlen) < 0)
        goto out_close;
    *sc = *tmp;
    ret = 0;
out_close:
    fclose(st->ini.f);
out_free:
    xfree(tmp);
    xfree(st);
    return ret;
}

/* See load_scenario.h. */
int scenario_check(const struct scenario *sc, char *err, size_t errlen)
{
    if (sc->nphases == 0) {
        seterr(err, errlen, "no phase: give --sessions and --duration, or [phase NAME] sections");
        return -1;
    }
    if (sc->turns_min > sc->turns_max) {
        seterr(err, errlen, "turns: the minimum is above the maximum");
        return -1;
    }
    if (sc->cancel_share + sc->resume_share > 1) {
        seterr(err, errlen, "cancel_share + resume_share is above 1");
        return -1;
    }
    if (!sc->url[0] && !sc->direct_sse[0]) {
        seterr(err, errlen, "no target: give --url (or --direct-sse), or [target] url");
        return -1;
    }
    return 0;
}

/* See load_scenario.h. */
uint64_t scenario_duration_ms(const struct scenario *sc)
{
    uint64_t ms = 0;
    for (int i = 0; i < sc->nphases; i++)
        ms += sc->phase[i].duration_ms;
    return ms;
}
