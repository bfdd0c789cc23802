/* test_load_scenario.c - trilemma-load's scenario files and query corpus
 * (loadtest/load/load_scenario.c, load_corpus.c): the checked-in examples load, every value is
 * read as documented, and bad files are refused with a message naming the file, line and
 * problem, leaving the scenario unchanged. The source directory is compiled in
 * (TRILEMMA_SOURCE_DIR) or given as argv[1]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loadtest/load/load_corpus.h"
#include "loadtest/load/load_scenario.h"
#include "tests/tap.h"

#ifndef TRILEMMA_SOURCE_DIR
#define TRILEMMA_SOURCE_DIR "."
#endif

static const char *src;
static char tmpdir[] = "/tmp/trilemma-load-test-XXXXXX";

static const char *write_tmp(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_examples(void)
{
    static const char *const files[] = {"smoke.ini", "peak-10k.ini"};
    for (int i = 0; i < 2; i++) {
        struct scenario sc;
        struct corpus c;
        char path[512], err[512] = "";
        snprintf(path, sizeof(path), "%s/loadtest/scenarios/%s", src, files[i]);
        scenario_defaults(&sc, src);
        CHECKF(scenario_load(&sc, path, err, sizeof(err)) == 0, "%s: %s", files[i], err);
        CHECKF(scenario_check(&sc, err, sizeof(err)) == 0, "%s: %s", files[i], err);
        CHECK(sc.nphases == 3 && strcmp(sc.phase[0].name, "ramp-up") == 0);
        CHECKF(corpus_load(&c, sc.corpus, err, sizeof(err)) == 0, "corpus: %s", err);
        CHECKF(c.n >= 200, "the corpus has %zu queries", c.n);
        CHECKF(corpus_set_mix(&c, &sc.mix, err, sizeof(err)) == 0, "mix: %s", err);
        corpus_free(&c);
    }
}

static void test_values(void)
{
    struct scenario sc;
    char err[512] = "";
    const char *p = write_tmp("ok.ini", "[target]\nurl = ws://127.0.0.1:9/ws\n"
                                        "[run]\nthreads = 2\ngrace_s = 3\nmax_rate = 12.5\n"
                                        "idle = false\nexpect_echo = true\n"
                                        "[conversation]\nturns = 2-5\n"
                                        "think = exponential:3000\ncancel_share = 0.25\n"
                                        "[queries]\ncorpus = corpus.txt ; relative\n"
                                        "mix = search:2, price:1.5\n"
                                        "[phase a]\nduration_s = 10\nusers = 100\nramp_s = 4\n"
                                        "[phase b]\nduration_s = 5\narrival_rate = 2.5\n"
                                        "arrivals = uniform\n");
    scenario_defaults(&sc, src);
    CHECKF(scenario_load(&sc, p, err, sizeof(err)) == 0, "%s", err);
    CHECK(sc.threads == 2 && sc.grace_ms == 3000 && sc.max_rate == 12.5 && sc.expect_echo);
    CHECK(sc.turns_min == 2 && sc.turns_max == 5);
    CHECK(sc.think == THINK_EXP && sc.think_a_ms == 3000 && sc.think_b_ms == 30000);
    CHECK(sc.cancel_share == 0.25 && sc.mix.n == 2 && sc.mix.weight[1] == 1.5);
    char want[600];
    snprintf(want, sizeof(want), "%s/corpus.txt", tmpdir);
    CHECKF(strcmp(sc.corpus, want) == 0, "corpus %s", sc.corpus);
    CHECK(sc.nphases == 2 && !sc.phase[0].open && sc.phase[0].users == 100 &&
          sc.phase[0].ramp_ms == 4000 && sc.phase[1].open && sc.phase[1].rate == 2.5 &&
          !sc.phase[1].poisson);
    CHECK(scenario_duration_ms(&sc) == 15000);
}

/* Each bad file and the exact message it must produce (after "PATH:"). */
static const struct {
    const char *text, *msg;
} bad[] = {
    {"[runn]\n",
     "1: unknown section [runn] (known: target, run, conversation, queries, phase NAME)"},
    {"[run]\nthread = 2\n", "2: unknown key 'thread' in [run]"},
    {"[run]\nthreads = 2\nthreads = 3\n",
     "3: duplicate key 'threads' in [run] (first set on line 2)"},
    {"[run]\nthreads = 0\n", "2: bad value for 'threads': expected an integer 1..64"},
    {"[run]\nthreads = 2x\n", "2: bad value for 'threads': expected an integer 1..64"},
    {"[run]\ngrace_s = -1\n", "2: bad value for 'grace_s': expected an integer 0..3600"},
    {"[run]\nidle = yes\n", "2: bad value for 'idle': expected true or false"},
    {"[run]\nthreads =\n", "2: empty value for 'threads'"},
    {"threads = 2\n", "1: key 'threads' outside any section"},
    {"[run]\n  threads = 2\n", "2: indented line (continuation lines are not supported)"},
    {"[run]\nthreads: 2\n", "2: expected 'key = value'"},
    {"[run\n", "1: unterminated section header"},
    {"[conversation]\ncancel_share = 1.5\n",
     "2: bad value for 'cancel_share': expected a number 0..1"},
    {"[conversation]\nturns = 5-2\n",
     "2: bad value for 'turns': expected N or MIN-MAX within 1..100000"},
    {"[conversation]\nthink = gaussian:100\n",
     "2: bad value for 'think': expected fixed:MS, uniform:MIN-MAX or exponential:MEAN[-CAP] "
     "(milliseconds, 0..3600000)"},
    {"[queries]\nmix = search\n",
     "2: bad value for 'mix': expected CATEGORY:WEIGHT, ... (at most 32)"},
    {"[queries]\nmix = a:1, a:2\n", "2: bad value for 'mix': category 'a' named twice"},
    {"[phase a]\nusers = 5\n", "1: [phase a] needs duration_s"},
    {"[phase a]\nduration_s = 5\n",
     "1: [phase a] needs exactly one of users (concurrent users) and arrival_rate "
     "(conversations per second)"},
    {"[phase a]\nduration_s = 5\nusers = 5\narrival_rate = 1\n",
     "1: [phase a] needs exactly one of users (concurrent users) and arrival_rate "
     "(conversations per second)"},
    {"\n[phase a]\nduration_s = 5\nusers = 5\nramp_s = 6\n",
     "2: [phase a] ramp_s is longer than duration_s"},
    {"[phase a]\nduration_s = 5\narrival_rate = 1\nramp_s = 1\n",
     "1: [phase a] ramp_s goes with users, not with arrival_rate"},
    {"[phase a]\nduration_s = 5\nusers = 1\n[phase a]\n",
     "4: duplicate phase 'a' (first on line 1)"},
    {"[phase a b]\n", "1: bad phase name (1..31 bytes of A-Z a-z 0-9 _ -)"},
    {"[phase x]\nduration_s = 1\nusers = 1\nthreads = 1\n",
     "4: unknown key 'threads' in [phase x]"},
};

static void test_bad_files(void)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct scenario sc, before;
        char err[512] = "", want[1024];
        const char *p = write_tmp("bad.ini", bad[i].text);
        scenario_defaults(&sc, src);
        before = sc;
        CHECKF(scenario_load(&sc, p, err, sizeof(err)) < 0, "case %zu accepted", i);
        snprintf(want, sizeof(want), "%s:%s", p, bad[i].msg);
        CHECKF(strcmp(err, want) == 0, "case %zu:\n  got  %s\n  want %s", i, err, want);
        CHECKF(memcmp(&sc, &before, sizeof(sc)) == 0, "case %zu changed the scenario", i);
    }
    char longline[400], err[512];
    memset(longline, 'x', sizeof(longline));
    memcpy(longline, "[run]\nseed = ", 13);
    longline[sizeof(longline) - 1] = '\0';
    struct scenario sc;
    scenario_defaults(&sc, src);
    CHECK(scenario_load(&sc, write_tmp("long.ini", longline), err, sizeof(err)) < 0 &&
          strstr(err, ":2: line too long (at most 197 bytes)"));
    CHECK(scenario_load(&sc, "/nonexistent/x.ini", err, sizeof(err)) < 0 &&
          strcmp(err, "cannot open /nonexistent/x.ini: No such file or directory") == 0);
    scenario_defaults(&sc, src);
    CHECK(scenario_check(&sc, err, sizeof(err)) < 0 && strstr(err, "no phase"));
}

static void test_corpus(void)
{
    struct corpus c;
    char err[512], want[600];
    const char *p = write_tmp("c.txt", "# comment\n\nsearch\tshoes under ₹3000\n"
                                       "price\thow much?\r\nsearch\tकुर्ता\n");
    CHECKF(corpus_load(&c, p, err, sizeof(err)) == 0, "%s", err);
    CHECK(c.n == 3 && c.ncats == 2 && c.cat_count[0] == 2 && c.cat_count[1] == 1);
    CHECK(strcmp(c.q[c.cat_first[1]].text, "how much?") == 0); /* CR stripped */
    struct scn_mix mix = {.n = 1};
    strcpy(mix.cat[0], "price");
    mix.weight[0] = 1;
    CHECK(corpus_set_mix(&c, &mix, err, sizeof(err)) == 0);
    for (int i = 0; i < 100; i++) /* only the weighted category is ever drawn */
        CHECK(corpus_pick(&c, i / 100.0, (i * 7 % 100) / 100.0)->cat == 1);
    strcpy(mix.cat[0], "returns");
    CHECK(corpus_set_mix(&c, &mix, err, sizeof(err)) < 0 &&
          strcmp(err, "the mix names category 'returns', which the corpus does not have") == 0);
    struct scn_mix none = {.n = 0};
    CHECK(corpus_set_mix(&c, &none, err, sizeof(err)) == 0);
    int seen[2] = {0, 0};
    for (int i = 0; i < 300; i++)
        seen[corpus_pick(&c, i / 300.0, 0.5)->cat]++;
    CHECKF(seen[0] == 200 && seen[1] == 100, "%d %d", seen[0], seen[1]); /* 2:1 by lines */
    corpus_free(&c);

    static const struct {
        const char *text, *msg;
    } badc[] = {
        {"search shoes\n", "1: expected CATEGORY<TAB>QUERY"},
        {"Search\tshoes\n", "1: bad category (1..23 bytes of a-z 0-9 _ -)"},
        {"\n\nsearch\t\n", "3: empty query"},
        {"search\tshoes \n", "1: leading or trailing space in query"},
        {"search\tbad \xC3\x28 utf8\n", "1: invalid UTF-8"},
        {"search\tsurrogate \xED\xA0\x80\n", "1: invalid UTF-8"},
        {"search\ttab\tinside\n", "1: control character in query"},
    };
    for (size_t i = 0; i < sizeof(badc) / sizeof(badc[0]); i++) {
        p = write_tmp("bad.txt", badc[i].text);
        snprintf(want, sizeof(want), "%s:%s", p, badc[i].msg);
        CHECKF(corpus_load(&c, p, err, sizeof(err)) < 0 && strcmp(err, want) == 0,
               "corpus case %zu: got %s", i, err);
    }
    p = write_tmp("empty.txt", "# nothing\n");
    CHECK(corpus_load(&c, p, err, sizeof(err)) < 0 && strstr(err, ": no queries"));
}

int main(int argc, char **argv)
{
    src = argc > 1 ? argv[1] : TRILEMMA_SOURCE_DIR;
    if (!mkdtemp(tmpdir))
        return 1;
    test_examples();
    test_values();
    test_bad_files();
    test_corpus();
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return tap_done();
}
