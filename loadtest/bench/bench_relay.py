#!/usr/bin/env python3
"""bench_relay.py - what the relay adds, and what it costs per token (issue 3 item 8, issue 10
item 2). A benchmark, not a test.

For each concurrency level (default 100, 1,000 and 5,000 concurrent streams) it runs, one after
the other against the SAME simulated provider (build/trilemma-sim, same pacing):

  (a) direct:   trilemma-load --direct-sse reading the simulated provider's OpenAI SSE streams;
  (b) trilemma: trilemma-load over WebSocket through trilemmad, whose model route is that same
                simulated provider (TRILEMMA_MODEL=openai/sim-shopper, no database);
  (c) floor:    trilemma-load over WebSocket through build/floor-relay (loadtest/bench/
                floor_relay.c: one epoll thread, one WebSocket frame per SSE token, no JSON, no
                store), the least a relay can do: the yardstick for (b)'s CPU.

(--baseline DIR adds DIR/trilemmad as a fourth target, for before/after in the same run) and
reports, per level, time to first token and the inter-token gap seen by the client (p50,
p99) for each, what (b) and (c) add to (a), and each relay's CPU seconds per million relayed
tokens (utime+stime from /proc/PID/stat around the run, divided by the output tokens the load
generator counted) with the ratio trilemma / floor. Prints tables and writes JSON.

  /usr/bin/python3 loadtest/bench/bench_relay.py [--build build] [--levels 100,1000,5000]
      [--duration 20] [--tps 20] [--tokens 40] [--ttft-ms 200] [--think-ms 500] [--late-headers]
      [--targets direct,trilemma,floor] [--workers N] [--baseline BUILD_DIR] [--json FILE]

The simulated provider is plain HTTP/1.1 only (like vLLM, llama.cpp, Ollama: one stream per
connection); --late-headers makes it send each response head with the first token, as Go's
net/http (Ollama) does (trilemma-sim --late-headers, docs/sim.md).

A process here holds at most ~20,000 file descriptors: at 5,000 streams a relay holds 10,000
(client + upstream), which fits. Absolute times on a shared 2-core machine are noisy: read the
differences and ratios, measured side by side in one run.
"""


import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CLK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_http(url, proc, bound=30.0):
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("%s exited early" % proc.args[0])
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.05)  # start-up polling in a benchmark script, not a test
    raise SystemExit("no answer from " + url)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def metric(port, name):
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    m = re.search(r"^%s (\d+)$" % re.escape(name), body, re.M)
    return int(m.group(1)) if m else 0


def run_load(build, args, report):
    cmd = [os.path.join(build, "trilemma-load"), *args, "--report", report, "--quiet"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(report) as f:
        r = json.load(f)
    m = r["totals"]["metrics"]
    c = r["totals"]["counts"]
    return {
        "ttft_p50": m["ttft_ms"]["p50"], "ttft_p99": m["ttft_ms"]["p99"],
        "gap_p50": m["inter_token_ms"]["p50"], "gap_p99": m["inter_token_ms"]["p99"],
        "gap_p999": m["inter_token_ms"]["p99_9"],
        "turns": c["turns_completed"], "errors": c["errors"], "tokens": c["output_tokens"],
        "lag_p99": m["lag_ms"]["p99"], "errors_by_kind": r["errors"]["by_kind"],
    }


def stop(p):
    if p and p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


def sim_args(a, port):
    """The simulated provider's command line: every target of a level reads this one process."""
    return [os.path.join(a.build, "trilemma-sim"), "--listen", "127.0.0.1:%d" % port,
            "--workers", "1", "--ttft-ms", str(a.ttft_ms), "--ttft-jitter-ms", "0", "--tps",
            str(a.tps), "--tokens", str(a.tokens), *(["--late-headers"] if a.late_headers else [])]


def common_args(a, n):
    return ["--sessions", str(n), "--duration", str(a.duration), "--turns", "1000",
            "--think", "fixed:%d" % a.think_ms, "--ramp", str(min(5, a.duration // 4))]


def relayed_run(a, n, tmp, name, srv, port):
    """Load through a relay process already answering on port; adds its CPU per token."""
    cpu0 = cpu_seconds(srv.pid)
    r = run_load(a.build, ["--url", "ws://127.0.0.1:%d/ws" % port, *common_args(a, n)],
                 os.path.join(tmp, "%s-%d.json" % (name, n)))
    cpu = cpu_seconds(srv.pid) - cpu0
    r["server_cpu_s"] = cpu
    r["cpu_s_per_mtok"] = cpu / max(r["tokens"], 1) * 1e6
    return r


def run_direct(a, n, tmp, sim_port):
    return run_load(a.build, ["--direct-sse", "http://127.0.0.1:%d/v1/chat/completions" % sim_port,
                              "--model", "sim-shopper", *common_args(a, n)],
                    os.path.join(tmp, "direct-%d.json" % n))


def run_trilemma(a, n, tmp, sim_port, binary=None, name="trilemma"):
    port = free_port()
    cfg = os.path.join(tmp, "relay.ini")
    with open(cfg, "w") as f:
        f.write("[server]\nmax_connections = 20000\nmax_connections_per_ip = 20000\n")
        if a.workers:
            f.write("workers = %d\n" % a.workers)
        f.write("[session]\nrate_messages = 100000\nmax_turns_per_ip = 0\nturns_per_minute_per_ip = 0\n[model]\nmax_retries = 0\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TRILEMMA_") and k != "DATABASE_URL"}
    env.update({"TRILEMMA_MODEL": "openai/sim-shopper",
                "OPENAI_BASE_URL": "http://127.0.0.1:%d/v1" % sim_port})
    srv = subprocess.Popen([binary or os.path.join(a.build, "trilemmad"), "--listen",
                            "127.0.0.1:%d" % port, "--config", cfg], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http("http://127.0.0.1:%d/healthz" % port, srv)
        tok0 = metric(port, "trilemma_deltas_out_total")
        r = relayed_run(a, n, tmp, name, srv, port)
        r["deltas_out"] = metric(port, "trilemma_deltas_out_total") - tok0
        return r
    finally:
        stop(srv)


def run_floor(a, n, tmp, sim_port):
    port = free_port()
    srv = subprocess.Popen([os.path.join(a.build, "floor-relay"), "--listen",
                            "127.0.0.1:%d" % port, "--upstream", "127.0.0.1:%d" % sim_port,
                            "--model", "sim-shopper",
                            "--threads", str(a.workers or os.cpu_count())],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http("http://127.0.0.1:%d/healthz" % port, srv)
        return relayed_run(a, n, tmp, "floor", srv, port)
    finally:
        stop(srv)


def run_baseline(a, n, tmp, sim_port):
    """trilemmad of another build (--baseline DIR), for before/after in one run."""
    return run_trilemma(a, n, tmp, sim_port, os.path.join(a.baseline, "trilemmad"), "baseline")


TARGETS = {"direct": run_direct, "trilemma": run_trilemma, "floor": run_floor,
           "baseline": run_baseline}


def level(a, n, tmp):
    sim_port = free_port()
    sim = subprocess.Popen(sim_args(a, sim_port), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        wait_http("http://127.0.0.1:%d/healthz" % sim_port, sim)
        row = {"streams": n}
        for t in a.targets:
            row[t] = TARGETS[t](a, n, tmp, sim_port)
        return row
    finally:
        stop(sim)


def print_tables(a, rows):
    print("cores: %d  sim: ttft %d ms, %d tokens/s, %d tokens, think %d ms  (client-seen ms; "
          "+x = x minus direct)" % (os.cpu_count(), a.ttft_ms, a.tps, a.tokens, a.think_ms))
    cols = [("ttft p50", "ttft_p50"), ("ttft p99", "ttft_p99"), ("gap p50", "gap_p50"),
            ("gap p99", "gap_p99"), ("gap p99.9", "gap_p999")]
    print("%8s %-9s" % ("streams", "target") + "".join("%12s" % c for c, _ in cols) +
          "%12s%10s%8s" % ("cpu s/Mtok", "tokens", "errors"))
    for r in rows:
        d = r.get("direct")
        for t in a.targets:
            x = r[t]
            cells = "".join("%12.2f" % x[k] for _, k in cols)
            cpu = "%12.2f" % x["cpu_s_per_mtok"] if "cpu_s_per_mtok" in x else "%12s" % "-"
            print("%8d %-9s%s%s%10d%8d" % (r["streams"], t, cells, cpu, x["tokens"], x["errors"]))
            if d and t != "direct":
                print("%8s %-9s" % ("", "+" + t) +
                      "".join("%+12.2f" % (x[k] - d[k]) for _, k in cols))
        for t in ("baseline", "trilemma"):
            if t in r and "floor" in r:
                ratio = r[t]["cpu_s_per_mtok"] / max(r["floor"]["cpu_s_per_mtok"], 1e-9)
                r["cpu_ratio_%s_floor" % t] = ratio
                print("%8s cpu per token %s / floor = %.2fx" % ("", t, ratio))
        for t in a.targets:
            if r[t]["errors"]:
                print("%8s %s errors: %s" % ("", t, r[t]["errors_by_kind"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--levels", default="100,1000,5000")
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--tps", type=int, default=20)
    ap.add_argument("--tokens", type=int, default=40)
    ap.add_argument("--ttft-ms", type=int, default=200)
    ap.add_argument("--think-ms", type=int, default=500)
    ap.add_argument("--late-headers", action="store_true",
                    help="the HTTP/1.1 sim sends each response head with the first token")
    ap.add_argument("--targets", default="direct,trilemma,floor",
                    help="comma-separated subset of direct,trilemma,floor, run in this order")
    ap.add_argument("--workers", type=int, default=0,
                    help="trilemmad workers and floor-relay threads (0: one per core)")
    ap.add_argument("--baseline", default=None, metavar="BUILD_DIR",
                    help="also run BUILD_DIR/trilemmad as target 'baseline' (before/after)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    a.targets = [t for t in a.targets.split(",") if t]
    if a.baseline and "baseline" not in a.targets:
        a.targets.insert(a.targets.index("trilemma") if "trilemma" in a.targets else 1,
                         "baseline")
    if "baseline" in a.targets and not a.baseline:
        ap.error("target baseline needs --baseline BUILD_DIR")
    for t in a.targets:
        if t not in TARGETS:
            ap.error("unknown target %r" % t)
    tmp = tempfile.mkdtemp(prefix="bench-relay-")
    rows = [level(a, int(n), tmp) for n in a.levels.split(",")]
    print_tables(a, rows)
    out = {"cores": os.cpu_count(), "sim": {"ttft_ms": a.ttft_ms, "tps": a.tps,
                                             "tokens": a.tokens, "think_ms": a.think_ms,
                                             "late_headers": a.late_headers},
           "levels": rows}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
