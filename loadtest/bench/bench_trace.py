#!/usr/bin/env python3
"""bench_trace.py - the cost of request tracing (issue 12): the same load at [trace] capture =
off, metadata and full, side by side in one run. A benchmark, not a test.

Starts trilemma-sim, one private PostgreSQL cluster (tests/store/pg_cluster.sh) and, per run, a
fresh trilemmad with the agents (config/agents.ini) and the given capture level; replays the
orchestrator benchmark's seeded conversation mix (orch_mix.py: searches and follow-ups,
comparisons, policy, order status, chitchat) at a bounded concurrency. Runs alternate the levels
(off, metadata, full, then again in another order per round) so that a machine's drift hits them
alike. Reports per level, median over rounds:

  - trilemmad CPU seconds per 100 turns (utime + stime of the process from /proc, start of the
    mix to its end) and the overhead against off;
  - first token p50 / p90 / p99 (turn_end.latency_ms.first_token, measured by the server from
    the user message to the first delta) and turn total p50 / p99;
  - bytes stored per turn in spans (pg_column_size of the rows, and the table's size on disk per
    turn) and spans per turn.

  /usr/bin/python3 loadtest/bench/bench_trace.py [--conversations 100] [--concurrency 50]
      [--rounds 2] [--ttft-ms 60] [--tps 200] [--workers 2] [--json FILE]
"""

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)
import bench_orchestrator as bo  # noqa: E402
import harness  # noqa: E402
import orch_mix  # noqa: E402
from bench_store import CLUSTER, psql  # noqa: E402

LEVELS = ("off", "metadata", "full")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(a, sim_port, db_url, capture):
    config = {
        "server": {"max_connections": 100000, "max_connections_per_ip": 100000},
        "websocket": {"ping_interval_ms": 600000, "idle_timeout_ms": 3600000},
        "session": {"rate_messages": 1000, "rate_window_ms": 1000},
        "orchestrator": {"agents_file": a.agents_file},
        "tools": {"tools_file": a.tools_file},
        "trace": {"capture": capture},
        "log": {"level": "warn"},
    }
    env = {"DATABASE_URL": db_url,
           "OPENAI_BASE_URL": "http://127.0.0.1:%d/v1" % sim_port,
           "TRILEMMA_MODEL": "openai/sim-frontier",
           "TRILEMMA_CATALOG_URL": "http://127.0.0.1:%d" % sim_port}
    srv = harness.Server(config=config, env=env, workers=a.workers, name="bench-trace")
    srv.start()
    return srv


def pct(values, q):
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    return v[min(len(v) - 1, int(q * len(v)))]


def one_run(a, capture, pgdir, url, mix, tmp, k):
    sim, port = bo.start_sim(a, os.path.join(tmp, "sim-%s-%d.log" % (capture, k)))
    srv = None
    try:
        srv = start_server(a, port, url, capture)
        cpu0, t0 = cpu_seconds(srv.proc.pid), time.monotonic()
        convs, elapsed = asyncio.run(bo.run_mix(srv.port, mix, a.concurrency, a.turn_timeout,
                                                a.max_seconds))
        cpu = cpu_seconds(srv.proc.pid) - cpu0
        wall = time.monotonic() - t0
    finally:
        if srv:
            try:
                srv.stop()
            except AssertionError as e:
                print("note: %s" % str(e).splitlines()[0])
            srv.kill()
            srv.cleanup()
        bo.stop_proc(sim)
    recs = [r for c in convs for r in c.get("turns", []) if r.get("turn_id")]
    firsts = [(r.get("latency_ms") or {}).get("first_token") for r in recs]
    totals = [(r.get("latency_ms") or {}).get("total") for r in recs]
    ids = ",".join("'%s'" % r["turn_id"] for r in recs)
    stored = psql(pgdir, "SELECT count(*), coalesce(sum(pg_column_size(s.*)), 0) FROM spans s "
                         "WHERE turn_id IN (%s)" % ids).split("|") if recs else ["0", "0"]
    n = len(recs)
    out = {"capture": capture, "turns": n, "errors": sum(1 for r in recs if r.get("error")),
           "wall_s": wall, "cpu_s": cpu, "cpu_s_per_100_turns": 100 * cpu / n if n else None,
           "first_ms": [pct(firsts, .5), pct(firsts, .9), pct(firsts, .99)],
           "total_ms": [pct(totals, .5), pct(totals, .99)],
           "spans_per_turn": int(stored[0]) / n if n else None,
           "span_bytes_per_turn": int(stored[1]) / n if n else None}
    print("%-8s %d turns in %.1f s: cpu %.2f s (%.3f s / 100 turns), first token p50/p90/p99 %s ms, "
          "%.1f spans and %.0f bytes per turn" % (
              capture, n, wall, cpu, out["cpu_s_per_100_turns"] or 0, out["first_ms"],
              out["spans_per_turn"] or 0, out["span_bytes_per_turn"] or 0), flush=True)
    return out


def median(xs):
    v = sorted(x for x in xs if x is not None)
    return v[len(v) // 2] if v else None


def render(runs, a, disk):
    by = {lv: [r for r in runs if r["capture"] == lv] for lv in LEVELS}
    med = {lv: {k: median([r[k] for r in by[lv]]) for k in ("cpu_s_per_100_turns",
                                                              "spans_per_turn",
                                                              "span_bytes_per_turn")}
           for lv in LEVELS}
    for lv in LEVELS:
        for key, idx in (("first_ms", 3), ("total_ms", 2)):
            med[lv][key] = [median([r[key][i] for r in by[lv]]) for i in range(idx)]
    base = med["off"]["cpu_s_per_100_turns"]
    out = ["Run: %d conversations x %d rounds per level, %d at once, %d workers, sim --ttft-ms %d "
           "--tps %d; medians over rounds" % (a.conversations, a.rounds, a.concurrency,
                                               a.workers, a.ttft_ms, a.tps), "",
           "| capture | CPU s / 100 turns | CPU vs off | first token p50 / p90 / p99 (ms) | "
           "total p50 / p99 (ms) | spans / turn | span bytes / turn | on disk / turn |",
           "|---|---|---|---|---|---|---|---|"]
    for lv in LEVELS:
        m = med[lv]
        cpu = m["cpu_s_per_100_turns"]
        rel = "-" if not base or cpu is None else "%+.1f %%" % (100 * (cpu / base - 1))
        out.append("| %s | %.3f | %s | %s | %s | %.1f | %.0f | %s |" % (
            lv, cpu or 0, rel, " / ".join(str(x) for x in m["first_ms"]),
            " / ".join(str(x) for x in m["total_ms"]), m["spans_per_turn"] or 0,
            m["span_bytes_per_turn"] or 0, disk.get(lv, "-")))
    out.append("")
    out.append("Per round: " + "; ".join("%s %.3f s/100, p99 %s ms" % (
        r["capture"], r["cpu_s_per_100_turns"] or 0, r["first_ms"][2]) for r in runs))
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default=os.path.join(ROOT, "build", "trilemmad"))
    p.add_argument("--sim", default=os.path.join(ROOT, "build", "trilemma-sim"))
    p.add_argument("--agents-file", default=os.path.join(ROOT, "config", "agents.ini"))
    p.add_argument("--tools-file", default=os.path.join(ROOT, "config", "tools.json"))
    p.add_argument("--catalog", default=orch_mix.default_catalog(ROOT))
    p.add_argument("--conversations", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--ttft-ms", type=int, default=60)
    p.add_argument("--tps", type=int, default=200)
    p.add_argument("--catalog-scale", type=float, default=0.2)
    p.add_argument("--sim-arg", action="append", default=[])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--turn-timeout", type=float, default=60.0)
    p.add_argument("--max-seconds", type=float, default=600.0)
    p.add_argument("--json", default=os.path.join(ROOT, "build", "bench_trace.json"))
    a = p.parse_args()
    harness.Args.server = os.path.abspath(a.server)
    harness.Args.source = ROOT
    mix = orch_mix.build_mix(random.Random(a.seed), a.conversations, a.catalog)
    tmp = tempfile.mkdtemp(prefix="trilemma-bench-trace-")
    pgdir = tempfile.mkdtemp(prefix="trilemma-bench-trace-pg-")
    r = subprocess.run([CLUSTER, "start", pgdir], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("pg_cluster.sh start failed:\n%s" % r.stderr)
    url = r.stdout.strip().splitlines()[-1]
    runs, disk = [], {}
    try:
        for k in range(a.rounds):
            order = LEVELS if k % 2 == 0 else tuple(reversed(LEVELS))
            for lv in order:
                before = int(psql(pgdir, "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) "
                                         "FROM pg_inherits i JOIN pg_class c ON "
                                         "c.oid = i.inhrelid WHERE i.inhparent = to_regclass('spans')"))
                run = one_run(a, lv, pgdir, url, mix, tmp, k)
                after = int(psql(pgdir, "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) "
                                        "FROM pg_inherits i JOIN pg_class c ON "
                                        "c.oid = i.inhrelid WHERE i.inhparent = to_regclass('spans')"))
                run["disk_bytes_per_turn"] = (after - before) / run["turns"] if run["turns"] else 0
                runs.append(run)
    finally:
        subprocess.run([CLUSTER, "stop", pgdir], capture_output=True)
    for lv in LEVELS:
        d = median([r["disk_bytes_per_turn"] for r in runs if r["capture"] == lv])
        disk[lv] = "-" if d is None else "%.0f" % d
    text = render(runs, a, disk)
    print()
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump({"args": vars(a), "runs": runs, "table": text}, f, indent=1)


if __name__ == "__main__":
    main()
