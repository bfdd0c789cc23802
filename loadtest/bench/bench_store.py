#!/usr/bin/env python3
"""bench_store.py - store benchmark (issue 4 item 10). A benchmark, not a test.

How fast trilemmad makes turns durable in PostgreSQL, next to what pgbench gets from the same
private cluster (tests/store/pg_cluster.sh: a throwaway cluster in a temporary folder, unix
socket, default durability: fsync on, synchronous_commit on) as the ceiling.

  1. trilemma: --concurrency echo sessions (echo_delay_ms = 0, so the store is what limits)
     run turns back to back for --duration seconds through a real trilemmad (--workers, one
     writer connection each, group commit). Measured: turns persisted per second (rows in
     `turns` before/after, and trilemma_store_commits_total), rows written per second over the
     six tables, the average batch, and the commit latency (queued -> committed) p50/p99 from
     the trilemma_store_commit_seconds histogram read from /metrics before and after (quantiles
     interpolated within its buckets: 1, 2.5, 5, 10, 25, 50, 100, 250 ms ...).
  2. pgbench on the same cluster, same client count as sessions (capped below max_connections),
     -M prepared, --duration seconds each:
       row    one INSERT of a row as wide as a `turns` row into a plain table per transaction:
              the commit rate of single-row transactions
       turn   one turn's rows (conversation upsert, turn, two messages, model call, ledger line)
              into the real schema per transaction: turns per second with one commit per turn
       batch  64 turns per transaction in one pipeline (\\startpipeline), --workers clients: the
              store's own write pattern, without trilemmad around it
Prints a table with ratios and writes the numbers as JSON (--json).

  /usr/bin/python3 loadtest/bench/bench_store.py [--server build/trilemmad] [--concurrency 128]
      [--duration 10] [--workers 0] [--procs 2] [--pg-opts "-c fsync=off"] [--json FILE]
"""

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402  (the integration tests' server runner)
from bench_gateway import (  # noqa: E402
    cpu_seconds,
    machine_cpu,
    masked_text_frame,
    open_session,
    proc_cpu_seconds,
    read_frame,
    split,
    turn_client,
)

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
CLUSTER = os.path.join(ROOT, "tests", "store", "pg_cluster.sh")
TABLES = ("conversations", "turns", "messages", "llm_calls", "tool_calls", "ledger")


# ------------------------------------------------------------------------------------------
# the cluster


def as_pg(cmd):
    return (["runuser", "-u", "postgres", "--"] + cmd) if os.geteuid() == 0 else cmd


def psql(pgdir, sql):
    cmd = as_pg([os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                 "-h", pgdir, "-U", "postgres", "-d", "trilemma"])
    r = subprocess.run(cmd, input=sql, capture_output=True, text=True, cwd="/")
    if r.returncode != 0:
        raise RuntimeError("psql: %s" % r.stderr)
    return r.stdout.strip()


def row_counts(pgdir):
    sql = "SELECT " + ", ".join("(SELECT count(*) FROM %s)" % t for t in TABLES)
    return dict(zip(TABLES, (int(x) for x in psql(pgdir, sql).split("|"))))


def pgbench(pgdir, script, clients, duration):
    path = os.path.join(pgdir, "bench-%d.sql" % os.getpid())
    with open(path, "w") as f:
        f.write(script)
    os.chmod(path, 0o644)
    cmd = as_pg([os.path.join(PG_BIN, "pgbench"), "-n", "-h", pgdir, "-U", "postgres",
                 "-M", "prepared", "-c", str(clients), "-j", str(min(clients, os.cpu_count())),
                 "-T", str(int(duration)), "-f", path, "trilemma"])
    r = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
    os.unlink(path)
    if r.returncode != 0:
        raise RuntimeError("pgbench: %s\n%s" % (r.stderr, r.stdout[-2000:]))
    tps = float(re.search(r"tps = ([0-9.]+)", r.stdout).group(1))
    lat = re.search(r"latency average = ([0-9.]+) ms", r.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", r.stdout)
    return {"tps": tps, "latency_avg_ms": float(lat.group(1)) if lat else None,
            "failed": int(failed.group(1)) if failed else 0}


# ------------------------------------------------------------------------------------------
# pgbench scripts: rows shaped like the store's


ROW_TABLE = """
CREATE TABLE IF NOT EXISTS bench_rows (
    id text NOT NULL, started_at timestamptz NOT NULL, conversation_id text NOT NULL,
    client_msg_id text NOT NULL, finish_reason text NOT NULL, delta_ends integer[] NOT NULL,
    answer_bytes integer NOT NULL, first_token_ms bigint, total_ms bigint NOT NULL,
    input_tokens bigint NOT NULL, cached_input_tokens bigint NOT NULL,
    cache_write_tokens bigint NOT NULL, output_tokens bigint NOT NULL,
    reasoning_tokens bigint NOT NULL, cost_micros bigint NOT NULL, currency text NOT NULL,
    usd_to_inr_micros bigint NOT NULL, PRIMARY KEY (id, started_at));
"""

ROW_SCRIPT = r"""\set r random(1, 9223372036854775807)
INSERT INTO bench_rows VALUES (lpad(to_hex(CAST(:r AS bigint)), 16, '0') || lpad(to_hex(CAST(:client_id AS bigint)), 16, '0'), now(), lpad(to_hex(CAST(:client_id AS bigint)), 32, '0'), 'b', 'stop', '{6,15,21}', 21, 0, 0, 3, 0, 0, 3, 0, 0, 'INR', 84000000);
"""


def turn_statements(k):
    """The statements of one turn (ids from :r<k>), as the store writes them."""
    tid = ("lpad(to_hex(CAST(:r%d AS bigint)), 16, '0') || "
           "lpad(to_hex(CAST(:client_id AS bigint)), 16, '0')" % k)
    cid = "lpad(to_hex(CAST(:client_id AS bigint)), 32, 'b')"
    return [
        "INSERT INTO conversations (id, user_sub, created_at, updated_at) VALUES (%s, '', now(), "
        "now()) ON CONFLICT (id) DO UPDATE SET updated_at = EXCLUDED.updated_at "
        "WHERE conversations.updated_at < EXCLUDED.updated_at;" % cid,
        "INSERT INTO turns (id, started_at, conversation_id, client_msg_id, finish_reason, "
        "delta_ends, answer_bytes, first_token_ms, total_ms, input_tokens, cached_input_tokens, "
        "cache_write_tokens, output_tokens, reasoning_tokens, cost_micros, currency, "
        "usd_to_inr_micros) VALUES (%s, now(), %s, 'b', 'stop', '{6,15,21}', 21, 0, 0, 3, 0, 0, "
        "3, 0, 0, 'INR', 84000000) ON CONFLICT DO NOTHING;" % (tid, cid),
        "INSERT INTO messages (turn_id, ordinal, created_at, conversation_id, role, content) "
        "VALUES (%s, 0, now(), %s, 'user', 'hello benchmark world') ON CONFLICT DO NOTHING;"
        % (tid, cid),
        "INSERT INTO messages (turn_id, ordinal, created_at, conversation_id, role, content) "
        "VALUES (%s, 1, now(), %s, 'assistant', 'hello benchmark world') "
        "ON CONFLICT DO NOTHING;" % (tid, cid),
        "INSERT INTO llm_calls (turn_id, ordinal, started_at, conversation_id, provider, model, "
        "tier, attempt, role, status, error, http_status, input_tokens, cached_input_tokens, "
        "cache_write_tokens, output_tokens, reasoning_tokens, usage_reported, ttft_ms, "
        "duration_ms, cost_micros, currency, usd_to_inr_micros) VALUES (%s, 0, now(), %s, "
        "'echo', 'echo', 'standard', 1, 'model', 'ok', NULL, NULL, 3, 0, 0, 3, 0, true, 0, 0, 0, "
        "'INR', 84000000) ON CONFLICT DO NOTHING;" % (tid, cid),
        "INSERT INTO ledger (turn_id, line, created_at, conversation_id, kind, description, "
        "provider, model, amount_micros, currency, usd_to_inr_micros) VALUES (%s, 0, now(), %s, "
        "'model', 'echo/echo attempt 1 (ok)', 'echo', 'echo', 0, 'INR', 84000000) "
        "ON CONFLICT DO NOTHING;" % (tid, cid),
    ]


def turn_script():
    return "\\set r0 random(1, 9223372036854775807)\nBEGIN;\n%s\nCOMMIT;\n" % "\n".join(
        turn_statements(0))


def batch_script(n):
    out = ["\\set r%d random(1, 9223372036854775807)" % k for k in range(n)]
    out += ["\\startpipeline", "BEGIN;"]
    for k in range(n):
        out += turn_statements(k)
    out += ["COMMIT;", "\\endpipeline"]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------
# trilemma's numbers from /metrics


def store_metrics(srv):
    text = harness.http_request(srv.port, "GET", "/metrics").body.decode()
    m = {"buckets": []}
    for line in text.splitlines():
        b = re.match(r'trilemma_store_commit_seconds_bucket\{le="([^"]+)"\} (\d+)$', line)
        if b:
            m["buckets"].append((float("inf") if b.group(1) == "+Inf" else float(b.group(1)),
                                 int(b.group(2))))
            continue
        v = re.match(r"(trilemma_store_\w+) ([0-9.e+]+)$", line)
        if v:
            m[v.group(1)] = float(v.group(2))
    return m


def quantile(before, after, q):
    """Seconds at quantile q of the commits between two readings of the cumulative histogram,
    interpolated linearly inside the bucket (as Prometheus' histogram_quantile does)."""
    cum = [(le, a - b) for (le, a), (_, b) in zip(after["buckets"], before["buckets"])]
    total = cum[-1][1] if cum else 0
    if not total:
        return None
    rank = q * total
    lo_le, lo_n = 0.0, 0
    for le, n in cum:
        if n >= rank:
            if le == float("inf"):
                return lo_le  # beyond the last bound: report the bound ("at least")
            return lo_le + (le - lo_le) * (rank - lo_n) / max(1, n - lo_n)
        lo_le, lo_n = le, n
    return None


def run_trilemma(a, pgdir, url, cores):
    config = {
        "server": {"max_connections": 100000, "max_connections_per_ip": 100000},
        "websocket": {"ping_interval_ms": 600000, "idle_timeout_ms": 3600000},
        "session": {"echo_delay_ms": 0, "rate_messages": 1000000, "rate_window_ms": 1},
        "log": {"level": "warn"},
    }
    workers = a.workers or cores
    srv = harness.Server(config=config, env={"DATABASE_URL": url}, workers=workers, name="bench")
    srv.start()
    try:
        harness.wait_until(lambda: store_metrics(srv).get("trilemma_store_degraded", 1) == 0,
                           "the store to connect", timeout=30)
        pipes, procs = [], []
        for share in split(a.concurrency, a.procs):
            parent, child = mp.Pipe()
            pr = mp.Process(target=turn_client, args=(srv.port, share, a.duration, child),
                            daemon=True)
            pr.start()
            pipes.append(parent)
            procs.append(pr)
        for c in pipes:
            c.recv()  # sessions open
        rows0, m0 = row_counts(pgdir), store_metrics(srv)
        scpu0, (mbusy0, mtotal0) = proc_cpu_seconds(srv.proc.pid), machine_cpu()
        for c in pipes:
            c.send("go")
        reports = [c.recv() for c in pipes]
        m1 = store_metrics(srv)
        scpu, (mbusy1, mtotal1) = proc_cpu_seconds(srv.proc.pid) - scpu0, machine_cpu()
        for pr in procs:
            pr.join()
        harness.wait_until(lambda: store_metrics(srv).get("trilemma_store_journal_bytes", 1) == 0,
                           "nothing left in the journal")
        rows1 = row_counts(pgdir)
    finally:
        try:
            srv.stop()
        except AssertionError as e:
            print("note: %s" % str(e).splitlines()[0])
        srv.kill()
        srv.cleanup()
    elapsed = max(r["elapsed"] for r in reports)
    d = {k: m1.get(k, 0) - m0.get(k, 0) for k in m1 if k != "buckets"}
    commits, batches = d.get("trilemma_store_commits_total", 0), d.get(
        "trilemma_store_batches_total", 0)
    lat = sorted(x for r in reports for x in r["lat_sample"])
    client_cpu = [r["cpu"] / r["elapsed"] for r in reports]
    p50, p99 = quantile(m0, m1, 0.5), quantile(m0, m1, 0.99)
    return {
        "server_workers": workers,
        "sessions": a.concurrency,
        "duration_s": round(elapsed, 2),
        "turns_seen_by_clients": sum(r["turns"] for r in reports),
        "turn_errors": sum(r["errors"] for r in reports),
        "first_error": next((r["first_error"] for r in reports if r["first_error"]), None),
        "turns_persisted": rows1["turns"] - rows0["turns"],
        "turns_persisted_per_s": round((rows1["turns"] - rows0["turns"]) / elapsed, 1),
        "commits_per_s": round(commits / elapsed, 1),
        "rows_per_s": round(sum(rows1[t] - rows0[t] for t in TABLES) / elapsed, 1),
        "rows_per_turn": round(sum(rows1[t] - rows0[t] for t in TABLES if t != "conversations")
                               / max(1, rows1["turns"] - rows0["turns"]), 2),
        "batches_per_s": round(batches / elapsed, 1),
        "avg_batch_turns": round(commits / batches, 1) if batches else None,
        "journaled": d.get("trilemma_store_journaled_total", 0),
        "commit_ms_p50": round(1000 * p50, 2) if p50 is not None else None,
        "commit_ms_p99": round(1000 * p99, 2) if p99 is not None else None,
        "commit_ms_mean": round(1000 * d.get("trilemma_store_commit_seconds_sum", 0)
                                / max(1, d.get("trilemma_store_commit_seconds_count", 0)), 2),
        "turn_ms_p50": round(1000 * lat[len(lat) // 2], 2) if lat else None,
        "turn_ms_p99": round(1000 * lat[int(len(lat) * 0.99)], 2) if lat else None,
        "server_cpu_cores": round(scpu / elapsed, 2),
        "client_cpu_per_proc": [round(x, 2) for x in client_cpu],
        "machine_cpu_busy": round((mbusy1 - mbusy0) / max(1, mtotal1 - mtotal0), 2),
    }


# ------------------------------------------------------------------------------------------
# commit latency at a given rate (--fractions): open-loop turns paced to a target rate


def paced_client(port, n, duration, rate, conn):
    """Child process: n sessions sharing `rate` turns/s, each sending its next turn on its own
    schedule (period n / rate, random phase), or at once when it is behind (one turn at a time
    per session: turn_end is the acknowledgement)."""

    async def session_loop(reader, writer, frame, t0, period, lat):
        turns, due = 0, t0 + random.uniform(0, period)
        while True:
            now = time.monotonic()
            if min(due, t0 + duration) > now:
                await asyncio.sleep(min(due, t0 + duration) - now)
            if time.monotonic() >= t0 + duration:
                return turns
            start = time.monotonic()
            writer.write(frame)
            while True:
                op, payload = await read_frame(reader)
                if op == 9:
                    writer.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
                elif op == 1 and b'"turn_end"' in payload:
                    break
                elif op == 1 and b'"type":"error"' in payload:
                    raise RuntimeError("error event: %r" % payload[:200])
                elif op == 8:
                    raise RuntimeError("closed by the server: %r" % payload[:40])
            turns += 1
            lat.append(time.monotonic() - start)
            due = max(due + period, time.monotonic() - period)  # no burst to catch up

    async def run():
        sem = asyncio.Semaphore(256)
        sessions = await asyncio.gather(*(open_session(port, sem) for _ in range(n)))
        msg = json.dumps({"type": "user_message", "id": "b", "text": "hello benchmark world"})
        frames = [masked_text_frame(msg.encode()) for _ in range(n)]
        conn.send({"ready": True})
        conn.recv()  # "go"
        cpu0, t0, lat = cpu_seconds(), time.monotonic(), []
        period = n / rate
        results = await asyncio.gather(
            *(session_loop(r, w, f, t0, period, lat) for (r, w), f in zip(sessions, frames)),
            return_exceptions=True)
        elapsed, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
        errors = [x for x in results if isinstance(x, BaseException)]
        for _, w in sessions:
            w.close()
        lat.sort()
        conn.send({"turns": sum(x for x in results if not isinstance(x, BaseException)),
                   "elapsed": elapsed, "cpu": cpu, "errors": len(errors),
                   "first_error": repr(errors[0]) if errors else None,
                   "lat_sample": lat[:: max(1, len(lat) // 2000)]})

    asyncio.run(run())


def run_at_rate(a, binary, url, workers, rate, extra_store=None):
    """One trilemmad (binary) at `rate` turns/s: commit latency from its histogram."""
    harness.Args.server = os.path.abspath(binary)
    config = {
        "server": {"max_connections": 100000, "max_connections_per_ip": 100000},
        "websocket": {"ping_interval_ms": 600000, "idle_timeout_ms": 3600000},
        "session": {"echo_delay_ms": 0, "rate_messages": 1000000, "rate_window_ms": 1},
        "log": {"level": "warn"},
    }
    if extra_store:
        config["store"] = dict(extra_store)
    srv = harness.Server(config=config, env={"DATABASE_URL": url}, workers=workers, name="rate")
    srv.start()
    try:
        harness.wait_until(lambda: store_metrics(srv).get("trilemma_store_degraded", 1) == 0,
                           "the store to connect", timeout=30)
        pipes, procs = [], []
        for share in split(a.concurrency, a.procs):
            parent, child = mp.Pipe()
            pr = mp.Process(target=paced_client, args=(srv.port, share, a.duration,
                                                       rate * share / a.concurrency, child),
                            daemon=True)
            pr.start()
            pipes.append(parent)
            procs.append(pr)
        for c in pipes:
            c.recv()
        m0 = store_metrics(srv)
        scpu0, (mbusy0, mtotal0) = proc_cpu_seconds(srv.proc.pid), machine_cpu()
        for c in pipes:
            c.send("go")
        reports = [c.recv() for c in pipes]
        m1 = store_metrics(srv)
        scpu, (mbusy1, mtotal1) = proc_cpu_seconds(srv.proc.pid) - scpu0, machine_cpu()
        for pr in procs:
            pr.join()
    finally:
        try:
            srv.stop()
        except AssertionError as e:
            print("note: %s" % str(e).splitlines()[0])
        srv.kill()
        srv.cleanup()
    elapsed = max(r["elapsed"] for r in reports)
    d = {k: m1.get(k, 0) - m0.get(k, 0) for k in m1 if k != "buckets"}
    commits, batches = d.get("trilemma_store_commits_total", 0), d.get(
        "trilemma_store_batches_total", 0)
    p50, p99 = quantile(m0, m1, 0.5), quantile(m0, m1, 0.99)
    lat = sorted(x for r in reports for x in r["lat_sample"])
    return {
        "binary": binary, "target_turns_per_s": round(rate, 1),
        "turns_per_s": round(commits / elapsed, 1),
        "turn_errors": sum(r["errors"] for r in reports),
        "first_error": next((r["first_error"] for r in reports if r["first_error"]), None),
        "avg_batch_turns": round(commits / batches, 1) if batches else None,
        "commit_ms_p50": round(1000 * p50, 2) if p50 is not None else None,
        "commit_ms_p99": round(1000 * p99, 2) if p99 is not None else None,
        "commit_ms_mean": round(1000 * d.get("trilemma_store_commit_seconds_sum", 0)
                                / max(1, d.get("trilemma_store_commit_seconds_count", 0)), 2),
        "turn_ms_p50": round(1000 * lat[len(lat) // 2], 2) if lat else None,
        "turn_ms_p99": round(1000 * lat[int(len(lat) * 0.99)], 2) if lat else None,
        "server_cpu_cores": round(scpu / elapsed, 2),
        "client_cpu_cores": round(sum(r["cpu"] for r in reports) / elapsed, 2),
        "machine_cpu_busy": round((mbusy1 - mbusy0) / max(1, mtotal1 - mtotal0), 2),
    }


def rates_main(a, cores):
    """--fractions: pgbench's ceiling for the store's rows first, then each fraction of it,
    the --before binary and --server back to back (alternating which goes first)."""
    workers = a.workers or cores
    pgdir = tempfile.mkdtemp(prefix="trilemma-bench-pg-")
    env = dict(os.environ, PG_CLUSTER_OPTS=a.pg_opts)
    url = subprocess.run([CLUSTER, "start", pgdir], capture_output=True, text=True, env=env,
                         check=True).stdout.strip().splitlines()[-1]
    befores = [b for b in a.before.split(",") if b]
    binaries = [("before" if i == 0 else os.path.basename(b), b, None)
                for i, b in enumerate(befores)] + [("after", a.server, None)]
    for n in (int(x) for x in a.batches_in_flight.split(",") if x):
        binaries.append(("after:%d" % n, a.server, {"batches_in_flight": n}))
    result = {"cores": cores, "workers": workers, "sessions": a.concurrency,
              "pg_opts": a.pg_opts or "(defaults: fsync on)", "duration_s": a.duration,
              "ceiling": {}, "runs": []}
    try:
        # the schema: a server migrates at start
        harness.Args.server = os.path.abspath(a.server)
        with harness.Server(env={"DATABASE_URL": url}, workers=1, name="migrate"):
            pass
        for clients in sorted({workers, 2 * workers, 4 * workers}):
            r = pgbench(pgdir, batch_script(a.batch), clients, a.duration)
            result["ceiling"]["batch_%d_clients" % clients] = round(r["tps"] * a.batch, 1)
        ceiling = max(result["ceiling"].values())
        result["ceiling_turns_per_s"] = ceiling
        print("pgbench ceiling (%d-turn pipelined transactions): %s turns/s -> %.0f" % (
            a.batch, result["ceiling"], ceiling), flush=True)
        fractions = [float(x) for x in a.fractions.split(",")]
        for k, f in enumerate(f for _ in range(a.rounds) for f in fractions):
            order = binaries if k % 2 == 0 else binaries[::-1]
            for name, binary, extra in order:
                with open("/proc/loadavg") as fh:
                    load = float(fh.read().split()[0])
                r = run_at_rate(a, binary, url, workers, f * ceiling, extra)
                r.update({"fraction": f, "which": name, "loadavg_before": load})
                result["runs"].append(r)
                print("  %3.0f%% %-8s %s" % (100 * f, name, json.dumps(r)), flush=True)
    finally:
        subprocess.run([CLUSTER, "stop", pgdir], capture_output=True)
    print()
    print("Medians over %d rounds (each round: every binary back to back at each share):" %
          a.rounds)
    print("| share of ceiling | target turns/s | which | turns/s | avg batch | commit p50 ms | "
          "commit p99 ms | turn p99 ms (client) |")
    print("|---|---|---|---|---|---|---|---|")

    def med(xs):
        xs = sorted(x for x in xs if x is not None)
        return xs[len(xs) // 2] if xs else None

    keys = []
    for r in result["runs"]:
        if (r["fraction"], r["which"]) not in keys:
            keys.append((r["fraction"], r["which"]))
    for f, which in sorted(keys, key=lambda k: (k[0], k[1])):
        rs = [r for r in result["runs"] if r["fraction"] == f and r["which"] == which]
        each = lambda k: "/".join("%.0f" % r[k] for r in rs if r[k] is not None)  # noqa: E731
        print("| %.0f %% | %.0f | %s | %.0f | %s | %s (%s) | %s (%s) | %s |" % (
            100 * f, rs[0]["target_turns_per_s"], which, med(r["turns_per_s"] for r in rs),
            med(r["avg_batch_turns"] for r in rs), med(r["commit_ms_p50"] for r in rs),
            each("commit_ms_p50"), med(r["commit_ms_p99"] for r in rs), each("commit_ms_p99"),
            med(r["turn_ms_p99"] for r in rs)))
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(result, f, indent=2)
    print("\nJSON: %s" % a.json)


# ------------------------------------------------------------------------------------------


def table(rows, title):
    w = max(len(k) for k, _ in rows)
    print()
    print("| %-*s | %s" % (w, title, "value"))
    print("|-%s-|-%s" % ("-" * w, "-" * 44))
    for k, v in rows:
        print("| %-*s | %s" % (w, k, v))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default=os.path.join(ROOT, "build", "trilemmad"))
    p.add_argument("--source", default=ROOT)
    p.add_argument("--concurrency", type=int, default=128, help="echo sessions (default 128)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per run (default 10)")
    p.add_argument("--workers", type=int, default=0, help="server workers (default: one per CPU)")
    p.add_argument("--procs", type=int, default=2, help="client processes (default 2)")
    p.add_argument("--batch", type=int, default=64, help="turns per pgbench batch (default 64)")
    p.add_argument("--pg-opts", default="", help="PostgreSQL options (PG_CLUSTER_OPTS)")
    p.add_argument("--json", default=os.path.join(ROOT, "build", "bench_store.json"))
    p.add_argument("--fractions", default="",
                   help="instead of the closed loop: commit latency at these shares of pgbench's "
                        "ceiling, e.g. 0.25,0.5,0.9 (open loop, paced turns)")
    p.add_argument("--before", default="",
                   help="with --fractions: other trilemmad binaries to compare (comma-separated; "
                        "the first is called before), run back to back")
    p.add_argument("--rounds", type=int, default=1,
                   help="with --fractions: repeat everything, report medians (default 1)")
    p.add_argument("--batches-in-flight", default="",
                   help="with --fractions: also run --server with [store] batches_in_flight = "
                        "each of these (e.g. 1,2)")
    a = p.parse_args()

    harness.Args.server = os.path.abspath(a.server)
    harness.Args.source = os.path.abspath(a.source)
    cores = os.cpu_count()
    if a.fractions:
        return rates_main(a, cores)
    with open("/proc/loadavg") as f:
        load = float(f.read().split()[0])
    if load > 0.5:
        print("note: load average %.2f before the run: other work on this machine will skew "
              "the numbers" % load)
    pgdir = tempfile.mkdtemp(prefix="trilemma-bench-pg-")
    env = dict(os.environ, PG_CLUSTER_OPTS=a.pg_opts)
    url = subprocess.run([CLUSTER, "start", pgdir], capture_output=True, text=True, env=env,
                         check=True).stdout.strip().splitlines()[-1]
    result = {"loadavg_before": load, "cores": cores, "machine": platform.machine(),
              "kernel": platform.release(), "pg_opts": a.pg_opts or "(defaults: fsync on)",
              "client_procs": a.procs}
    try:
        result["trilemma"] = t = run_trilemma(a, pgdir, url, cores)
        psql(pgdir, ROW_TABLE)
        clients = min(a.concurrency, 150)  # pg_cluster.sh: max_connections = 200
        result["pgbench_clients"] = clients
        result["pgbench_row"] = pgbench(pgdir, ROW_SCRIPT, clients, a.duration)
        result["pgbench_turn"] = pgbench(pgdir, turn_script(), clients, a.duration)
        result["pgbench_batch"] = pgbench(pgdir, batch_script(a.batch), t["server_workers"],
                                          a.duration)
        result["pgbench_batch"]["turns_per_s"] = round(result["pgbench_batch"]["tps"] * a.batch, 1)
    finally:
        subprocess.run([CLUSTER, "stop", pgdir], capture_output=True)

    t, row, turn, batch = (result["trilemma"], result["pgbench_row"], result["pgbench_turn"],
                           result["pgbench_batch"])

    def ratio(x, y):
        return "%.2f" % (x / y) if y else "-"

    rows = [
        ("machine cores / server workers", "%d / %d" % (cores, t["server_workers"])),
        ("PostgreSQL", result["pg_opts"]),
        ("trilemma: echo sessions", "%d over %d client processes" % (t["sessions"], a.procs)),
        ("trilemma: turns persisted per second", "%.0f (%d in %.1f s; errors: %d)" % (
            t["turns_persisted_per_s"], t["turns_persisted"], t["duration_s"], t["turn_errors"])),
        ("trilemma: rows written per second", "%.0f (%.1f rows per turn + conversation upserts)"
         % (t["rows_per_s"], t["rows_per_turn"])),
        ("trilemma: group commits per second", "%.0f (%.1f turns per batch on average)" % (
            t["batches_per_s"], t["avg_batch_turns"] or 0)),
        ("trilemma: commit latency p50 / p99", "%s / %s ms (mean %s ms; queued -> committed)" % (
            t["commit_ms_p50"], t["commit_ms_p99"], t["commit_ms_mean"])),
        ("trilemma: turn latency p50 / p99 (client)", "%s / %s ms" % (t["turn_ms_p50"],
                                                                      t["turn_ms_p99"])),
        ("trilemma: CPU", "server %.2f cores; clients %s; machine %.0f%% busy" % (
            t["server_cpu_cores"], ", ".join("%.0f%%" % (100 * x) for x in t["client_cpu_per_proc"]),
            100 * t["machine_cpu_busy"])),
        ("pgbench row: 1-row txns/s, %d clients" % clients, "%.0f" % row["tps"]),
        ("pgbench turn: 1-turn txns/s, %d clients" % clients, "%.0f turns/s" % turn["tps"]),
        ("pgbench batch: %d-turn pipelined txns, %d clients" % (a.batch, t["server_workers"]),
         "%.0f turns/s (%.1f txns/s)" % (batch["turns_per_s"], batch["tps"])),
        ("ratio trilemma turns/s : pgbench turn", ratio(t["turns_persisted_per_s"], turn["tps"])),
        ("ratio trilemma turns/s : pgbench batch", ratio(t["turns_persisted_per_s"],
                                                         batch["turns_per_s"])),
        ("ratio trilemma rows/s : pgbench row", ratio(t["rows_per_s"], row["tps"])),
    ]
    table(rows, "trilemma store benchmark")
    if t["first_error"]:
        print("note: first client error: %s" % t["first_error"])
    if any(x > 0.9 for x in t["client_cpu_per_proc"]) or t["machine_cpu_busy"] > 0.9:
        print("\nnote: clients, trilemmad, PostgreSQL and loopback TCP share %d cores (%.0f%% busy): "
              "the trilemma numbers are a floor, and pgbench ran without trilemmad or the Python "
              "clients competing for the CPU." % (cores, 100 * t["machine_cpu_busy"]))
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(result, f, indent=2)
    print("\nJSON: %s" % a.json)


if __name__ == "__main__":
    mp.set_start_method("fork")
    main()
