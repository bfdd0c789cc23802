/* load_main.c - trilemma-load: flags and scenario, the worker threads, the live progress line,
 * a clean stop (end of the schedule, or SIGINT), and the reports.
 *
 * Signals are blocked in every thread and taken by the main thread with sigtimedwait, which
 * also paces the once-a-second progress line. The first SIGINT/SIGTERM stops the run as its end
 * would (running turns get the grace period, sessions close cleanly); a second one cuts the
 * running turns; a third exits at once. */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "base/mem.h"
#include "loadtest/load/load.h"
#include "loadtest/load/load_target.h"

#ifndef TRILEMMA_SOURCE_DIR
#define TRILEMMA_SOURCE_DIR "."
#endif

#define FD_RESERVE 64 /* descriptors kept for files, the loop, logs */

struct opts {
    const char *url, *url2, *direct, *scenario, *report, *html, *token, *origin, *model, *corpus;
    const char *turns, *think;
    const char *headers[16];
    int nheaders;
    double sessions, duration, ramp, threads, think_ms, max_rate, seed, grace;
    double cancel_share, resume_share;
    bool idle, expect_echo, quiet, verbose;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: trilemma-load --url ws://HOST:PORT/ws --sessions N --duration SECONDS\n"
            "                     [--report FILE.json] [--html FILE.html] [options]\n"
            "       trilemma-load --scenario FILE.ini [options]\n"
            "       trilemma-load --direct-sse http://HOST:PORT/v1/chat/completions ...\n"
            "  --url URL             the chat server's WebSocket endpoint\n"
            "  --url2 URL            a second process of it: conversations split between the two,\n"
            "                        and a dropped connection resumes on the other one\n"
            "  --direct-sse URL      direct mode: OpenAI-style streaming requests to a provider\n"
            "  --sessions N          concurrent users (with --duration: one steady phase)\n"
            "  --duration S          seconds of that phase\n"
            "  --ramp S              seconds to reach --sessions (default min(S/4, N/2000))\n"
            "  --scenario FILE       phases, conversations, query mix (docs/loadtest.md)\n"
            "  --report FILE         the JSON report\n"
            "  --html FILE           the HTML report (self-contained, offline)\n"
            "  --token JWT           sent as ?token= (direct mode: Authorization: Bearer)\n"
            "  --origin ORIGIN       the Origin header of the WebSocket handshake\n"
            "  --threads N           worker threads, each with its own event loop (default 1)\n"
            "  --turns N|MIN-MAX     turns per conversation (default 3)\n"
            "  --think-ms MS         think time, uniform in [MS/2, 3MS/2] (default 1000)\n"
            "  --think SPEC          fixed:MS | uniform:MIN-MAX | exponential:MEAN[-CAP]\n"
            "  --idle                connect and hold the sessions, no turns\n"
            "  --max-rate R          at most R turn starts per second (all threads)\n"
            "  --cancel-share P      share of turns cancelled mid-turn\n"
            "  --resume-share P      share of turns dropped, reconnected and resumed\n"
            "  --expect-echo         the server runs the echo model: check every answer's text\n"
            "  --grace S             after the schedule, running turns may finish (default 10)\n"
            "  --seed N              random seed (default 1)\n"
            "  --corpus FILE         the query corpus (CATEGORY<TAB>QUERY lines)\n"
            "  --model NAME          direct mode: the request's model (default gpt-4.1-mini)\n"
            "  --header 'N: V'       direct mode: an extra request header (repeatable)\n"
            "  --quiet               no progress line\n"
            "  --verbose             libwebsockets warnings and connection errors\n"
            "Targets must be loopback unless named on the command line. See docs/loadtest.md.\n");
}

static double num(const char *flag, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || d < lo || d > hi) {
        fprintf(stderr, "trilemma-load: bad value for --%s: '%s' (expected %g..%g)\n", flag, v, lo,
                hi);
        exit(2);
    }
    return d;
}

enum flag_kind { FLAG_STR, FLAG_NUM, FLAG_BOOL, FLAG_HEADER };

struct flag_def {
    const char *name;
    enum flag_kind kind;
    size_t off; /* into struct opts */
    double lo, hi;
};

#define OO(f) offsetof(struct opts, f)

static const struct flag_def flag_defs[] = {
    {"url", FLAG_STR, OO(url), 0, 0},
    {"url2", FLAG_STR, OO(url2), 0, 0},
    {"direct-sse", FLAG_STR, OO(direct), 0, 0},
    {"sessions", FLAG_NUM, OO(sessions), 1, 10000000},
    {"duration", FLAG_NUM, OO(duration), 1, 86400},
    {"ramp", FLAG_NUM, OO(ramp), 0, 86400},
    {"scenario", FLAG_STR, OO(scenario), 0, 0},
    {"report", FLAG_STR, OO(report), 0, 0},
    {"html", FLAG_STR, OO(html), 0, 0},
    {"token", FLAG_STR, OO(token), 0, 0},
    {"origin", FLAG_STR, OO(origin), 0, 0},
    {"threads", FLAG_NUM, OO(threads), 1, 64},
    {"turns", FLAG_STR, OO(turns), 0, 0},
    {"think-ms", FLAG_NUM, OO(think_ms), 0, 3600000},
    {"think", FLAG_STR, OO(think), 0, 0},
    {"idle", FLAG_BOOL, OO(idle), 0, 0},
    {"max-rate", FLAG_NUM, OO(max_rate), 0.001, 1e7},
    {"cancel-share", FLAG_NUM, OO(cancel_share), 0, 1},
    {"resume-share", FLAG_NUM, OO(resume_share), 0, 1},
    {"expect-echo", FLAG_BOOL, OO(expect_echo), 0, 0},
    {"grace", FLAG_NUM, OO(grace), 0, 3600},
    {"seed", FLAG_NUM, OO(seed), 0, 1e18},
    {"corpus", FLAG_STR, OO(corpus), 0, 0},
    {"model", FLAG_STR, OO(model), 0, 0},
    {"header", FLAG_HEADER, 0, 0, 0},
    {"quiet", FLAG_BOOL, OO(quiet), 0, 0},
    {"verbose", FLAG_BOOL, OO(verbose), 0, 0},
};
enum { NFLAGS = sizeof(flag_defs) / sizeof(flag_defs[0]), FIRST = 256 };

static void set_opt(struct opts *o, const struct flag_def *d, const char *v)
{
    char *base = (char *)o;
    switch (d->kind) {
    case FLAG_STR:
        *(const char **)(void *)(base + d->off) = v;
        return;
    case FLAG_NUM:
        *(double *)(void *)(base + d->off) = num(d->name, v, d->lo, d->hi);
        return;
    case FLAG_BOOL:
        *(bool *)(base + d->off) = true;
        return;
    case FLAG_HEADER:
        if (o->nheaders == 16 || !strchr(v, ':')) {
            fprintf(stderr, "trilemma-load: --header takes 'Name: value' (at most 16)\n");
            exit(2);
        }
        o->headers[o->nheaders++] = v;
        return;
    }
}

static void parse_flags(int argc, char **argv, struct opts *o)
{
    struct option opts[NFLAGS + 2];
    for (int i = 0; i < NFLAGS; i++)
        opts[i] = (struct option){flag_defs[i].name,
                                  flag_defs[i].kind == FLAG_BOOL ? no_argument : required_argument,
                                  NULL, FIRST + i};
    opts[NFLAGS] = (struct option){"help", no_argument, NULL, 'h'};
    opts[NFLAGS + 1] = (struct option){NULL, 0, NULL, 0};
    memset(o, 0, sizeof(*o));
    o->sessions = o->duration = o->ramp = o->threads = o->think_ms = -1;
    o->max_rate = o->seed = o->grace = o->cancel_share = o->resume_share = -1;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == 'h') {
            usage(stdout);
            exit(0);
        }
        if (ch < FIRST || ch >= FIRST + NFLAGS) {
            usage(stderr);
            exit(2);
        }
        set_opt(o, &flag_defs[ch - FIRST], optarg);
    }
    if (optind < argc) {
        fprintf(stderr, "trilemma-load: unexpected argument '%s'\n", argv[optind]);
        exit(2);
    }
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("trilemma-load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void copy_str(char *dst, size_t n, const char *src, const char *what)
{
    if (strlen(src) >= n)
        die("%s is too long (at most %zu bytes)", what, n - 1);
    memcpy(dst, src, strlen(src) + 1);
}

/* --sessions and --duration replace the scenario's phases with one steady phase. */
static void flag_phase(struct scenario *sc, const struct opts *o)
{
    if ((o->sessions < 0) != (o->duration < 0))
        die("--sessions and --duration go together");
    if (o->sessions < 0)
        return;
    struct scn_phase *ph = &sc->phase[0];
    memset(ph, 0, sizeof(*ph));
    snprintf(ph->name, sizeof(ph->name), "steady");
    ph->users = (uint32_t)o->sessions;
    ph->duration_ms = (uint32_t)(o->duration * 1000);
    double ramp_ms = o->ramp >= 0 ? o->ramp * 1000 : o->sessions / 2.0;
    if (o->ramp < 0 && ramp_ms > ph->duration_ms / 4.0)
        ramp_ms = ph->duration_ms / 4.0;
    if (ramp_ms > ph->duration_ms)
        die("--ramp is longer than --duration");
    ph->ramp_ms = (uint32_t)ramp_ms;
    sc->nphases = 1;
}

static void flag_conversation(struct scenario *sc, const struct opts *o)
{
    char err[256];
    if (o->turns && scenario_parse_turns(sc, o->turns, err, sizeof(err)) < 0)
        die("--turns: %s", err);
    if (o->think_ms >= 0) {
        sc->think = THINK_UNIFORM;
        sc->think_a_ms = (uint32_t)(o->think_ms / 2);
        sc->think_b_ms = (uint32_t)(o->think_ms * 1.5);
    }
    if (o->think && scenario_parse_think(sc, o->think, err, sizeof(err)) < 0)
        die("--think: %s", err);
    if (o->cancel_share >= 0)
        sc->cancel_share = o->cancel_share;
    if (o->resume_share >= 0)
        sc->resume_share = o->resume_share;
}

/* The scenario: defaults, then the file, then the flags. */
static void build_scenario(struct scenario *sc, const struct opts *o)
{
    char err[1200];
    scenario_defaults(sc, TRILEMMA_SOURCE_DIR);
    if (o->scenario && scenario_load(sc, o->scenario, err, sizeof(err)) < 0)
        die("%s", err);
    if (o->url)
        copy_str(sc->url, sizeof(sc->url), o->url, "--url");
    if (o->url2)
        copy_str(sc->url2, sizeof(sc->url2), o->url2, "--url2");
    if (o->direct)
        copy_str(sc->direct_sse, sizeof(sc->direct_sse), o->direct, "--direct-sse");
    if (o->model)
        copy_str(sc->model, sizeof(sc->model), o->model, "--model");
    if (o->corpus)
        copy_str(sc->corpus, sizeof(sc->corpus), o->corpus, "--corpus");
    flag_phase(sc, o);
    flag_conversation(sc, o);
    if (o->threads > 0)
        sc->threads = (uint32_t)o->threads;
    if (o->max_rate > 0)
        sc->max_rate = o->max_rate;
    if (o->seed >= 0)
        sc->seed = (uint64_t)o->seed;
    if (o->grace >= 0)
        sc->grace_ms = (uint32_t)(o->grace * 1000);
    sc->idle |= o->idle;
    sc->expect_echo |= o->expect_echo;
    if (scenario_check(sc, err, sizeof(err)) < 0)
        die("%s", err);
}

static void setup_target(struct load *L, const struct opts *o)
{
    char err[512];
    bool direct = L->sc.direct_sse[0] != '\0';
    L->mode = direct ? MODE_SSE : MODE_WS;
    const char *url = direct ? L->sc.direct_sse : L->sc.url;
    bool cli = direct ? o->direct != NULL : o->url != NULL;
    if (target_parse(&L->tgt, url, direct ? "http" : "ws", direct ? NULL : o->token, err,
                     sizeof(err)) < 0 ||
        target_resolve(&L->tgt, cli, err, sizeof(err)) < 0)
        die("%s", err);
    if (!direct && L->sc.url2[0]) {
        if (target_parse(&L->tgt2, L->sc.url2, "ws", o->token, err, sizeof(err)) < 0 ||
            target_resolve(&L->tgt2, o->url2 != NULL, err, sizeof(err)) < 0)
            die("%s", err);
        L->has_tgt2 = true;
    }
    L->token = o->token;
    L->origin = o->origin;
    L->headers = (const char **)o->headers;
    L->nheaders = o->nheaders;
    if (direct && L->sc.idle)
        die("--idle needs a WebSocket target (--url)");
    if (direct && (L->sc.cancel_share > 0 || L->sc.resume_share > 0))
        fprintf(stderr, "trilemma-load: direct mode ignores cancel_share and resume_share\n");
}

/* Every session is a file descriptor: refuse a plan this process cannot hold. */
static void fd_budget(struct load *L)
{
    struct rlimit rl;
    uint64_t peak = 0;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    uint64_t reserve = FD_RESERVE + 16 * (uint64_t)L->nworkers;
    uint64_t avail = rl.rlim_cur > reserve ? rl.rlim_cur - reserve : 0;
    for (int i = 0; i < L->sc.nphases; i++)
        if (!L->sc.phase[i].open && L->sc.phase[i].users > peak)
            peak = L->sc.phase[i].users;
    if (peak > avail)
        die("%llu concurrent users need as many file descriptors, and this process may open "
            "%llu (RLIMIT_NOFILE %llu): run several processes, each with a part of the users "
            "(docs/loadtest.md)",
            (unsigned long long)peak, (unsigned long long)avail, (unsigned long long)rl.rlim_cur);
    uint64_t cap = (avail + (uint64_t)L->nworkers - 1) / (uint64_t)L->nworkers;
    L->users_cap = cap > UINT32_MAX ? UINT32_MAX : (uint32_t)cap;
}

/* ---- progress ---- */

#define BEHIND_US 50000 /* schedule lag that the progress line calls "behind schedule" */

struct progress_state {
    int64_t last_t;
    uint64_t last_done;
    bool tty;
    struct hist ttft; /* scratch for the merge */
};

/* Sum what the workers published; returns true when every worker has ended. */
static bool gather(struct load *L, struct progress *sum, struct hist *ttft)
{
    bool done = true;
    memset(sum, 0, sizeof(*sum));
    hist_reset(ttft);
    for (int i = 0; i < L->nworkers; i++) {
        struct worker *w = &L->workers[i];
        pthread_mutex_lock(&w->pub_lock);
        sum->open += w->pub.open;
        sum->turns += w->pub.turns;
        sum->turns_done += w->pub.turns_done;
        sum->errors += w->pub.errors;
        if (w->pub.lag_max > sum->lag_max)
            sum->lag_max = w->pub.lag_max;
        w->pub.lag_max = 0;
        hist_merge(ttft, &w->pub.ttft);
        done &= w->pub.done;
        pthread_mutex_unlock(&w->pub_lock);
    }
    return done;
}

static bool progress(struct load *L, struct progress_state *ps)
{
    struct progress p;
    bool done = gather(L, &p, &ps->ttft);
    int64_t now = mono_us();
    double dt = (double)(now - ps->last_t) / 1e6, el = (double)(now - L->t0) / 1e6;
    double rate = dt > 0 ? (double)(p.turns_done - ps->last_done) / dt : 0;
    ps->last_t = now;
    ps->last_done = p.turns_done;
    if (L->quiet)
        return done;
    const char *phase = "closing";
    if (done)
        phase = "done";
    else if (atomic_load(&L->stop))
        phase = "stopping";
    else if (el * 1e6 < (double)L->dur_us)
        phase = L->sc.phase[load_phase_at(L, now)].name;
    fprintf(stderr,
            "%s[%5.0fs/%.0fs %s] open %llu | turns/s %.1f | ttft p99 %.1f ms | errors %llu | "
            "lag %.1f ms%s%s",
            ps->tty ? "\r" : "", el, (double)L->dur_us / 1e6, phase, (unsigned long long)p.open,
            rate, (double)hist_percentile(&ps->ttft, 99) / 1000.0, (unsigned long long)p.errors,
            (double)p.lag_max / 1000.0, p.lag_max > BEHIND_US ? " | BEHIND SCHEDULE" : "",
            ps->tty ? "\033[K" : "\n");
    return done;
}

/* Progress every second until the workers end; signals stop the run (see the file comment). */
static void wait_workers(struct load *L, sigset_t *set)
{
    struct progress_state *ps = xcalloc(1, sizeof(*ps));
    int nsig = 0;
    ps->last_t = L->t0;
    ps->tty = isatty(2);
    for (;;) {
        struct timespec ts = {1, 0};
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig > 0) {
            if (++nsig >= 3)
                _exit(130);
            atomic_store(&L->stop, nsig);
            fprintf(stderr, "%strilemma-load: %s\n", ps->tty ? "\n" : "",
                    nsig == 1 ? "stopping (running turns may finish; again to cut them)"
                              : "cutting running turns");
            continue;
        }
        if (progress(L, ps))
            break;
    }
    if (ps->tty && !L->quiet)
        fputc('\n', stderr);
    xfree(ps);
}

/* ---- the end ---- */

static int write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "trilemma-load: cannot write %s: %s\n", path, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    return 0;
}

static void summary_line(const struct stats *st, enum metric m, double unit)
{
    const struct hist *h = &st->ph[st->nphases].m[m];
    static const double ps[] = {50, 90, 99, 99.9};
    uint64_t v[4];
    hist_percentiles(h, ps, 4, v);
    printf("  %-16s n %-8llu p50 %-9.2f p90 %-9.2f p99 %-9.2f p99.9 %-9.2f max %.2f\n",
           stats_metric_names[m], (unsigned long long)h->count, v[0] / unit, v[1] / unit,
           v[2] / unit, v[3] / unit, (double)h->max / unit);
}

static void summary(const struct load *L, const struct stats *st, double elapsed)
{
    const uint64_t *c = st->ph[st->nphases].c;
    printf("trilemma-load: %.1f s, %llu sessions, %llu turns completed (%.1f/s), %llu output "
           "tokens, %llu errors\n",
           elapsed, (unsigned long long)c[C_SESSIONS], (unsigned long long)c[C_TURNS_DONE],
           elapsed > 0 ? (double)c[C_TURNS_DONE] / elapsed : 0, (unsigned long long)c[C_TOKENS],
           (unsigned long long)c[C_ERRORS]);
    for (int m = 0; m < M_NMETRICS; m++)
        if (m != M_TOKENS && m != M_CONV_COST && st->ph[st->nphases].m[m].count)
            summary_line(st, (enum metric)m, 1000.0);
    if (c[C_RESUMES])
        printf("  resumes          %llu dropped, %llu delivered exactly once, %llu complete "
               "(%.1f %%), %llu duplicate deltas%s\n",
               (unsigned long long)c[C_RESUMES], (unsigned long long)c[C_RESUMED],
               (unsigned long long)c[C_RESUMED_FULL],
               100.0 * (double)c[C_RESUMED_FULL] / (double)c[C_RESUMES],
               (unsigned long long)c[C_DUPLICATES],
               L->has_tgt2 ? " (each resumed on the other process)" : "");
    for (int i = 0; i < st->nkinds; i++)
        printf("  error %-30s %llu\n", st->kind[i], (unsigned long long)st->kind_n[i]);
    const struct hist *lag = &st->ph[st->nphases].m[M_LAG];
    if (hist_percentile(lag, 99) > 10000 || lag->max > 100000)
        printf("  WARNING: the load generator fell behind its schedule (lag p99 %.1f ms, max %.1f "
               "ms): latencies include its own delay; use more --threads or processes\n",
               hist_percentile(lag, 99) / 1000.0, lag->max / 1000.0);
    (void)L;
}

static int reports(struct load *L, const struct opts *o, const struct stats *st, double elapsed,
                   const char *started)
{
    struct report_info ri = {.L = L, .st = st, .scenario_path = o->scenario, .elapsed_s = elapsed};
    struct rusage ru;
    struct buf json = {0}, html = {0};
    int ret = 0;
    getrusage(RUSAGE_SELF, &ru);
    ri.cpu_user_s = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
    ri.cpu_sys_s = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    ri.max_rss_kb = ru.ru_maxrss;
    snprintf(ri.started_at, sizeof(ri.started_at), "%s", started);
    report_json(&json, &ri);
    if (o->report && write_file(o->report, buf_begin(&json), buf_size(&json)) < 0)
        ret = 1;
    if (o->html) {
        report_html(&html, buf_begin(&json), buf_size(&json));
        if (write_file(o->html, buf_begin(&html), buf_size(&html)) < 0)
            ret = 1;
    }
    buf_free(&json);
    buf_free(&html);
    return ret;
}

static void start_workers(struct load *L)
{
    L->workers = xcalloc((size_t)L->nworkers, sizeof(*L->workers));
    L->t0 = mono_us() + 50000; /* every worker ready before the schedule begins */
    for (int i = 0; i < L->nworkers; i++) {
        L->workers[i].L = L;
        L->workers[i].id = i;
        int ret = worker_start(&L->workers[i]);
        if (ret < 0)
            die("cannot start worker %d: %s", i, strerror(-ret));
    }
}

int main(int argc, char **argv)
{
    static struct load L;
    struct opts o;
    char err[1200], started[32];
    parse_flags(argc, argv, &o);
    build_scenario(&L.sc, &o);
    L.nworkers = (int)L.sc.threads;
    L.dur_us = scenario_duration_ms(&L.sc) * 1000;
    L.quiet = o.quiet;
    L.verbose = o.verbose;
    setup_target(&L, &o);
    if (corpus_load(&L.corpus, L.sc.corpus, err, sizeof(err)) < 0 ||
        corpus_set_mix(&L.corpus, &L.sc.mix, err, sizeof(err)) < 0)
        die("%s", err);
    fd_budget(&L);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    time_t wall = time(NULL);
    strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ", gmtime(&wall));
    start_workers(&L);
    wait_workers(&L, &set);
    struct stats tot;
    stats_init(&tot, L.sc.nphases, L.workers[0].st.nsec);
    for (int i = 0; i < L.nworkers; i++) {
        worker_join(&L.workers[i]);
        stats_merge(&tot, &L.workers[i].st);
        stats_free(&L.workers[i].st);
    }
    double elapsed = (double)(mono_us() - L.t0) / 1e6;
    summary(&L, &tot, elapsed);
    int ret = reports(&L, &o, &tot, elapsed, started);
    stats_free(&tot);
    corpus_free(&L.corpus);
    xfree(L.workers);
    return ret;
}
