"""test_load.py - trilemma-load against real processes: a trilemmad with the echo model (and,
in direct mode, trilemma-sim), then checks of the JSON and HTML reports.

    python3 test_load.py --server PATH/trilemmad --load PATH/trilemma-load \
                         --sim PATH/trilemma-sim --source SOURCE_DIR [-k SUBSTRING]

The servers come from tests/integration/harness.py (free ports, temporary config, sanitizer
checks at stop). Each run lasts a few seconds; nothing asserts a duration or a latency value,
only that the measurements exist, are ordered, and that nothing went wrong. With
TRILEMMA_TEST_DATABASE_URL set, the server stores turns and the reconnect-and-resume path is
checked too; the two-process mode (--url2) always is, on a private PostgreSQL cluster (skipped
without PostgreSQL's binaries).
"""

import argparse
import json
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402

ARGS = None
RUN_TIMEOUT = float(os.environ.get("TRILEMMA_LOAD_RUN_TIMEOUT", "120"))
TIME_METRICS = ("connect_ms", "handshake_ms", "ttft_ms", "inter_token_ms", "turn_ms")
SANITIZER_MARKERS = harness.SANITIZER_MARKERS


def echo_server(**extra):
    config = {
        "session": {"echo_delay_ms": 5, "rate_messages": 1000},
        "server": {"max_connections_per_ip": 10000},
    }
    for section, keys in extra.items():
        config.setdefault(section, {}).update(keys)
    return harness.Server(config=config, workers=2, name="trilemmad")


def run_load(args, timeout=RUN_TIMEOUT, expect_rc=0):
    """Run trilemma-load; returns (stdout, stderr). Fails on a sanitizer report or wrong rc."""
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "halt_on_error=1:detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
    p = subprocess.run(
        [ARGS.load] + args,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    for m in SANITIZER_MARKERS:
        assert m not in p.stderr, "sanitizer report from trilemma-load:\n" + p.stderr[-4000:]
    assert p.returncode == expect_rc, "trilemma-load exited %d (expected %d)\n%s\n%s" % (
        p.returncode,
        expect_rc,
        p.stdout[-2000:],
        p.stderr[-4000:],
    )
    return p.stdout, p.stderr


def check_metric(r, name, unit_check=True):
    m = r["totals"]["metrics"][name]
    assert m["count"] > 0, "%s: no samples" % name
    for k in ("min", "mean", "p50", "p90", "p99", "p99_9", "max"):
        assert isinstance(m[k], (int, float)), "%s: %s missing" % (name, k)
    assert m["min"] <= m["p50"] <= m["p90"] <= m["p99"] <= m["p99_9"] <= m["max"], (
        "%s: percentiles out of order: %r" % (name, m)
    )
    cdf = m["cdf"]
    assert cdf and abs(cdf[-1][1] - 1.0) < 1e-9, "%s: CDF does not end at 1" % name
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(cdf, cdf[1:])), "%s: CDF" % name


def check_report(r, expect_errors=0):
    c = r["totals"]["counts"]
    assert r["tool"] == "trilemma-load" and r["format"] == 1
    assert c["turns_completed"] > 0, "no turn completed: %r" % c
    assert c["sessions"] > 0 and c["output_tokens"] > 0
    if expect_errors == 0:
        assert r["errors"]["total"] == 0 and c["errors"] == 0, "errors: %r" % r["errors"]
    for name in ("ttft_ms", "inter_token_ms", "turn_ms"):
        check_metric(r, name)
    n = len(r["timeline"]["t"])
    for k, v in r["timeline"].items():
        assert len(v) == n, "timeline column %s has %d values, t has %d" % (k, len(v), n)
    assert sum(r["timeline"]["turns_completed"]) == c["turns_completed"]
    # the token columns (what trilemma-plan reads) add up to the totals
    assert sum(r["timeline"]["output_tokens"]) == c["output_tokens"]
    assert sum(r["timeline"]["input_tokens"]) == c["input_tokens"] > 0, c
    assert all(a <= b for a, b in zip(r["timeline"]["cached_input_tokens"],
                                      r["timeline"]["input_tokens"]))
    assert len(r["phases"]) == len(r["config"]["phases"])
    assert sum(p["counts"]["turns_completed"] for p in r["phases"]) == c["turns_completed"]
    assert "token" not in r["config"]["target"]


def check_html(path, report):
    html = open(path, encoding="utf-8").read()
    assert html.startswith("<!doctype html>")
    low = html.lower()
    # self-contained: nothing is fetched from anywhere
    for bad in ("src=", "href=", "@import", "url("):
        assert bad not in low, "the HTML report refers to an external resource (%s)" % bad
    start = html.index("const R = ") + len("const R = ")
    end = html.index(";\n</script>", start)
    embedded = json.loads(html[start:end])
    assert embedded == report, "the HTML report does not embed the JSON report"


class Tmp:
    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="trilemma-load-it-")
        return self

    def path(self, name):
        return os.path.join(self.dir, name)

    def __exit__(self, *a):
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


# --------------------------------------------------------------------------------------------


def test_flags_run_with_reports():
    """The quick flags: sessions, duration, reports; echo text checked; some cancels."""
    with Tmp() as t, echo_server() as srv:
        out, err = run_load(
            [
                "--url", srv.ws_url(), "--sessions", "20", "--duration", "3",
                "--think-ms", "200", "--turns", "2-4", "--cancel-share", "0.2",
                "--expect-echo", "--report", t.path("r.json"), "--html", t.path("r.html"),
            ]
        )
        r = json.load(open(t.path("r.json")))
        check_report(r)
        for name in TIME_METRICS:
            check_metric(r, name)
        c = r["totals"]["counts"]
        assert c["cancels_sent"] > 0, "no cancel was sent: %r" % c
        assert c["turns_completed"] == c["turns_ok"] + c["turns_cancelled"], c
        assert r["config"]["phases"][0]["users"] == 20
        assert "turns completed" in out
        # the progress line (stderr is not a terminal here: one line per second)
        assert "turns/s" in err and "ttft p99" in err and "lag" in err, err
        check_html(t.path("r.html"), r)


def test_scenario_phases_and_resume():
    """A scenario file: a ramp, a steady phase, an arrival-rate phase; reconnect-and-resume
    when the server has a database."""
    db = os.environ.get("TRILEMMA_TEST_DATABASE_URL")
    with Tmp() as t, echo_server() as srv:
        scen = t.path("s.ini")
        with open(scen, "w") as f:
            f.write(
                "[target]\nurl = %s\n[run]\ngrace_s = 5\n"
                "[conversation]\nturns = 2-3\nthink = uniform:100-300\n"
                "resume_share = %s\nresume_after = 2\n"
                "[queries]\ncorpus = %s\nmix = search:3, price:1, delivery:1\n"
                "[phase up]\nduration_s = 2\nusers = 10\nramp_s = 2\n"
                "[phase steady]\nduration_s = 2\nusers = 10\n"
                "[phase burst]\nduration_s = 2\narrival_rate = 10\n"
                % (
                    srv.ws_url(),
                    "0.3" if db else "0",
                    os.path.join(ARGS.source, "loadtest", "corpus", "shopping_queries.txt"),
                )
            )
        run_load(["--scenario", scen, "--report", t.path("r.json"), "--expect-echo", "--quiet"])
        r = json.load(open(t.path("r.json")))
        check_report(r)
        names = [p["name"] for p in r["phases"]]
        assert names == ["up", "steady", "burst"], names
        assert r["config"]["phases"][2]["arrival_rate"] == 10
        assert set(r["config"]["queries"]["mix"]) >= {"search", "price", "delivery"}
        if db:
            c = r["totals"]["counts"]
            assert c["resumes"] > 0 and c["resumes_exact"] == c["resumes"], c
            assert c["resumes_complete"] == c["resumes"], c  # the detach grace
            check_metric(r, "resume_ms")


def test_two_processes_drop_and_resume_on_the_other():
    """--url2: two trilemmad processes on one PostgreSQL (a private cluster, as the store tests
    start it); conversations split between them, every dropped turn resumes on the other one,
    and arrives whole (the detach grace keeps it running), each delta once."""
    pg_bin = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
    if not os.path.exists(os.path.join(pg_bin, "initdb")):
        print("  (skipped: no PostgreSQL binaries in %s)" % pg_bin)
        return
    from test_store_e2e import Cluster

    cluster = Cluster()
    try:
        env = {"DATABASE_URL": cluster.url}
        config = {"session": {"echo_delay_ms": 20, "rate_messages": 1000},
                  "server": {"max_connections_per_ip": 10000}}
        a = harness.Server(config=config, env=env, workers=1, name="load-a").start()
        b = harness.Server(config=config, env=env, workers=1, name="load-b").start()
        with Tmp() as t:
            scen = t.path("s.ini")
            with open(scen, "w") as f:
                f.write("[target]\nurl = %s\nurl2 = %s\n[run]\ngrace_s = 10\n"
                        "[conversation]\nturns = 2-3\nthink = uniform:100-300\n"
                        "resume_share = 0.4\nresume_after = 2\nreconnect_delay_ms = 50\n"
                        "[queries]\ncorpus = %s\nmix = search:3, price:1, delivery:1\n"
                        "[phase steady]\nduration_s = 3\nusers = 10\n"
                        % (a.ws_url(), b.ws_url(),
                           os.path.join(ARGS.source, "loadtest", "corpus", "shopping_queries.txt")))
            out, _ = run_load(["--scenario", scen, "--report", t.path("r.json"), "--expect-echo",
                               "--quiet"])
            r = json.load(open(t.path("r.json")))
            check_report(r)
            c = r["totals"]["counts"]
            assert c["resumes"] > 0, c
            assert c["resumes_complete"] == c["resumes_exact"] == c["resumes"], c
            assert c["duplicate_deltas"] == 0 and c["errors"] == 0, (c, r.get("errors"))
            assert r["totals"]["resume_complete_share"] == 1, r["totals"]
            assert r["config"]["target2"] == b.ws_url(), r["config"]
            assert "(each resumed on the other process)" in out, out
        a.stop()
        b.stop()
    finally:
        cluster.stop()


def test_idle_sessions():
    """--idle connects and holds: sessions open, no turns."""
    with Tmp() as t, echo_server() as srv:
        run_load(["--url", srv.ws_url(), "--sessions", "50", "--duration", "2", "--idle",
                  "--quiet", "--report", t.path("r.json")])
        r = json.load(open(t.path("r.json")))
        c = r["totals"]["counts"]
        assert c["sessions"] == 50 and c["turns"] == 0 and c["errors"] == 0, c
        assert max(r["timeline"]["sessions_open"]) == 50, r["timeline"]["sessions_open"]
        check_metric(r, "connect_ms")
        check_metric(r, "handshake_ms")


def test_errors_are_counted_by_kind():
    """A server that wants a token answers 401: counted as handshake_401, nothing else."""
    srv = harness.Server(config={"server": {"max_connections_per_ip": 10000}}, workers=1,
                         env={"TRILEMMA_JWT_SECRET": "s" * 40}, name="trilemmad-jwt")
    with Tmp() as t, srv:
        run_load(["--url", srv.ws_url(), "--sessions", "3", "--duration", "2", "--quiet",
                  "--report", t.path("r.json")])
        r = json.load(open(t.path("r.json")))
        kinds = r["errors"]["by_kind"]
        assert set(kinds) == {"handshake_401"} and kinds["handshake_401"] > 0, kinds
        assert r["totals"]["counts"]["sessions"] == 0


def test_direct_sse_against_sim():
    """--direct-sse: streaming chat completions straight at trilemma-sim, same measurements."""
    port, holder = harness._reserve_port()
    sim = subprocess.Popen(
        [ARGS.sim, "--listen", "127.0.0.1:%d" % port, "--ttft-ms", "20", "--ttft-jitter-ms", "5",
         "--tps", "200", "--tokens", "15"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        harness.wait_until(lambda: _connects(port), "trilemma-sim to listen",
                           timeout=harness.START_TIMEOUT)
        holder.close()
        with Tmp() as t:
            run_load(["--direct-sse", "http://127.0.0.1:%d/v1/chat/completions" % port,
                      "--sessions", "10", "--duration", "3", "--think-ms", "100", "--quiet",
                      "--report", t.path("r.json")])
            r = json.load(open(t.path("r.json")))
            check_report(r)
            assert r["config"]["mode"] == "direct_sse"
            c = r["totals"]["counts"]
            # the sim streams exactly --tokens content tokens, reported as completion_tokens
            assert c["output_tokens"] == 15 * c["turns_completed"], c
    finally:
        holder.close()
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=harness.STOP_TIMEOUT)


def _connects(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_sigint_stops_cleanly():
    """SIGINT: running turns finish, sessions close, the report is written, exit 0."""
    with Tmp() as t, echo_server() as srv:
        p = subprocess.Popen(
            [ARGS.load, "--url", srv.ws_url(), "--sessions", "10", "--duration", "600",
             "--think-ms", "100", "--report", t.path("r.json")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # wait for a progress line that shows completed turns, then interrupt
            deadline = time.monotonic() + harness.TIMEOUT * 2
            seen = ""
            while "errors" not in seen or "turns/s 0.0 " in seen.splitlines()[-1]:
                assert time.monotonic() < deadline, "no progress line with turns: " + seen
                r, _, _ = select.select([p.stderr], [], [], 1)
                if r:
                    seen += p.stderr.readline()
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=harness.STOP_TIMEOUT)
        finally:
            if p.poll() is None:
                p.kill()
        assert p.returncode == 0, "exit %s\n%s" % (p.returncode, err[-2000:])
        assert "stopping" in err
        r = json.load(open(t.path("r.json")))
        check_report(r)
        assert r["elapsed_s"] < 600


def test_refusals():
    """Non-loopback targets from a file, bad scenario files and bad flags are refused."""
    with Tmp() as t:
        scen = t.path("far.ini")
        with open(scen, "w") as f:
            f.write("[target]\nurl = ws://192.0.2.1:9/ws\n[phase a]\nduration_s = 1\nusers = 1\n")
        _, err = run_load(["--scenario", scen], expect_rc=2)
        assert "refusing target '192.0.2.1'" in err and "not a loopback" in err, err
        with open(scen, "w") as f:
            f.write("[run]\nthreads = 0\n")
        _, err = run_load(["--scenario", scen], expect_rc=2)
        assert "%s:2: bad value for 'threads'" % scen in err, err
        _, err = run_load(["--url", "ws://127.0.0.1:9/ws", "--sessions", "5"], expect_rc=2)
        assert "--sessions and --duration go together" in err, err
        _, err = run_load(["--url", "http://127.0.0.1:9/ws", "--sessions", "1", "--duration",
                           "1"], expect_rc=2)
        assert "expected ws://HOST:PORT/PATH" in err, err
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard < 10000000:  # more sessions than descriptors: refused with advice
            _, err = run_load(["--url", "ws://127.0.0.1:9/ws", "--sessions", str(hard + 1),
                               "--duration", "1"], expect_rc=2)
            assert "run several processes" in err, err


TESTS = [
    test_flags_run_with_reports,
    test_scenario_phases_and_resume,
    test_two_processes_drop_and_resume_on_the_other,
    test_idle_sessions,
    test_errors_are_counted_by_kind,
    test_direct_sse_against_sim,
    test_sigint_stops_cleanly,
    test_refusals,
]


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--load", required=True)
    ap.add_argument("--sim", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("-k", default="")
    ARGS = ap.parse_args()
    harness.Args.server = ARGS.server
    harness.Args.source = ARGS.source
    failed = 0
    for t in TESTS:
        if ARGS.k not in t.__name__:
            continue
        start = time.monotonic()
        try:
            t()
            print("ok   %s (%.1f s)" % (t.__name__, time.monotonic() - start), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s\n%s" % (t.__name__, traceback.format_exc()), flush=True)
        finally:
            for s in harness.Server.all_servers:
                s.kill()
            harness.Server.all_servers.clear()
    print("%d failed" % failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
