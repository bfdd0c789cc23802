#!/usr/bin/env python3
"""bench_relay.py - what the relay adds (issue 3 item 8). A benchmark, not a test.

For each concurrency level (default 100, 1,000 and 5,000 concurrent streams) it runs, one after
the other against the SAME simulated provider (build/trilemma-sim, same pacing):

  (a) direct:  trilemma-load --direct-sse reading the simulated provider's OpenAI SSE streams;
  (b) relayed: trilemma-load over WebSocket through trilemmad, whose model route is that same
               simulated provider (TRILEMMA_MODEL=openai/sim-shopper, no database).

and reports, per level, time to first token and the inter-token gap seen by the client (p50,
p99) for (a) and (b), their difference (what trilemma adds), and the server's CPU seconds per
million relayed tokens (utime+stime of trilemmad from /proc, divided by the deltas it sent,
read from its /metrics). Prints a table and writes JSON.

  /usr/bin/python3 loadtest/bench/bench_relay.py [--build build] [--levels 100,1000,5000]
      [--duration 20] [--tps 20] [--tokens 40] [--ttft-ms 200] [--late-headers] [--json FILE]

The simulated provider is plain HTTP/1.1 only (like vLLM, llama.cpp, Ollama: one stream per
connection); --late-headers makes it send each response head with the first token, as Go's
net/http (Ollama) does (trilemma-sim --late-headers, docs/sim.md).

A process here holds at most ~20,000 file descriptors: at 5,000 streams trilemmad holds 10,000
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
        "turns": c["turns_completed"], "errors": c["errors"], "tokens": c["output_tokens"],
        "lag_p99": m["lag_ms"]["p99"],
    }


def level(a, n, tmp):
    sim_port = free_port()
    sim = subprocess.Popen(
        [os.path.join(a.build, "trilemma-sim"), "--listen", "127.0.0.1:%d" % sim_port,
         "--workers", "1", "--ttft-ms", str(a.ttft_ms), "--ttft-jitter-ms", "0", "--tps",
         str(a.tps), "--tokens", str(a.tokens), *(["--late-headers"] if a.late_headers else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    srv = None
    try:
        wait_http("http://127.0.0.1:%d/healthz" % sim_port, sim)
        common = ["--sessions", str(n), "--duration", str(a.duration), "--turns", "1000",
                  "--think", "fixed:%d" % a.think_ms, "--ramp", str(min(5, a.duration // 4))]
        direct = run_load(a.build, ["--direct-sse",
                                    "http://127.0.0.1:%d/v1/chat/completions" % sim_port,
                                    "--model", "sim-shopper", *common],
                          os.path.join(tmp, "direct-%d.json" % n))
        port = free_port()
        cfg = os.path.join(tmp, "relay.ini")
        with open(cfg, "w") as f:
            f.write("[server]\nmax_connections = 20000\nmax_connections_per_ip = 20000\n"
                    "[session]\nrate_messages = 100000\n[model]\nmax_retries = 0\n")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("TRILEMMA_") and k != "DATABASE_URL"}
        env.update({"TRILEMMA_MODEL": "openai/sim-shopper",
                    "OPENAI_BASE_URL": "http://127.0.0.1:%d/v1" % sim_port})
        srv = subprocess.Popen([os.path.join(a.build, "trilemmad"), "--listen",
                                "127.0.0.1:%d" % port, "--config", cfg], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http("http://127.0.0.1:%d/healthz" % port, srv)
        cpu0, tok0 = cpu_seconds(srv.pid), metric(port, "trilemma_deltas_out_total")
        relayed = run_load(a.build, ["--url", "ws://127.0.0.1:%d/ws" % port, *common],
                           os.path.join(tmp, "relayed-%d.json" % n))
        cpu1, tok1 = cpu_seconds(srv.pid), metric(port, "trilemma_deltas_out_total")
        tokens = max(tok1 - tok0, 1)
        relayed["server_cpu_s"] = cpu1 - cpu0
        relayed["relayed_tokens"] = tokens
        relayed["cpu_s_per_mtok"] = (cpu1 - cpu0) / tokens * 1e6
        return {"streams": n, "direct": direct, "relayed": relayed}
    finally:
        for p in (srv, sim):
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()


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
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-relay-")
    rows = [level(a, int(n), tmp) for n in a.levels.split(",")]
    print("cores: %d  sim: ttft %d ms, %d tokens/s, %d tokens  (client-seen ms; "
          "added = relayed - direct)" % (os.cpu_count(), a.ttft_ms, a.tps, a.tokens))
    hdr = ("streams", "ttft p50 d/r/+", "ttft p99 d/r/+", "gap p50 d/r/+", "gap p99 d/r/+",
           "cpu s/Mtok", "errors d/r")
    print("%8s  %-24s %-24s %-20s %-20s %10s %10s" % hdr)
    for r in rows:
        d, x = r["direct"], r["relayed"]

        def trio(k):
            return "%.1f/%.1f/%+.1f" % (d[k], x[k], x[k] - d[k])
        print("%8d  %-24s %-24s %-20s %-20s %10.1f %5d/%d" % (
            r["streams"], trio("ttft_p50"), trio("ttft_p99"), trio("gap_p50"), trio("gap_p99"),
            x["cpu_s_per_mtok"], d["errors"], x["errors"]))
    out = {"cores": os.cpu_count(), "sim": {"ttft_ms": a.ttft_ms, "tps": a.tps,
                                             "tokens": a.tokens, "late_headers": a.late_headers},
           "levels": rows}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
