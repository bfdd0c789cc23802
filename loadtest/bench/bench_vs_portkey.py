#!/usr/bin/env python3
"""bench_vs_portkey.py - trilemma against Portkey's AI gateway (issue 5 item 5). A benchmark.

In ONE run, against ONE simulated provider process (build/trilemma-sim, same pacing for every
path), for each concurrency level (default 100 and 1,000 concurrent streams) it runs one after
the other:

  (a) direct:   trilemma-load --direct-sse reading the simulated provider's OpenAI SSE streams;
  (b) trilemma: trilemma-load over WebSocket through trilemmad (TRILEMMA_MODEL=openai/sim-shopper,
                OPENAI_BASE_URL = the simulated provider, no database);
  (c) portkey:  trilemma-load --direct-sse through Portkey's open-source gateway
                (npm @portkey-ai/gateway, pinned in loadtest/bench/portkey/, one Node process)
                with the headers x-portkey-provider: openai and x-portkey-custom-host: the
                simulated provider.

It reports, per level, the time to first token and the inter-token gap seen by the client
(p50, p99), what (b) and (c) add to (a), and the CPU seconds per million relayed tokens of each
gateway process (utime+stime+cutime+cstime from /proc/PID/stat around the run, divided by the
output tokens in the load report). Then memory, on fresh gateway processes:

  * trilemma: RSS growth per idle WebSocket session at --idle-sessions (default 10,000);
  * both:     RSS growth per held stream at --held (default 5,000) streams open at once, each
              stalled by the simulated provider after its first token ([[sim:stall_after=1]]
              in every query of a generated corpus). Portkey has no idle session (an idle
              HTTP keep-alive connection is closed after 5 s), so this is the like-for-like
              memory figure; the idle one is trilemma's alone.

Prints a table with ratios (Portkey / trilemma) and absolute values, with the machine's load
average, and writes the same as JSON (--json FILE).

  /usr/bin/python3 loadtest/bench/bench_vs_portkey.py [--build build] [--levels 100,1000]
      [--duration 25] [--tps 20] [--tokens 40] [--ttft-ms 200] [--think-ms 500]
      [--idle-sessions 10000] [--held 5000] [--no-memory] [--json FILE]

The phases run one after the other on a machine that may be shared: the output carries the
load average and, per phase, how many cores the whole machine kept busy.

Portkey is installed with `npm ci` in loadtest/bench/portkey when node_modules is missing
(needs Node >= 18 and the npm registry; nothing is downloaded once it is installed). It is
started as `node build/start-server.js --port=0 --headless` with NODE_ENV=production, bound to
127.0.0.1 by a one-line preload (its CLI has no host flag and would listen on every address).
Everything stays on 127.0.0.1. A process here holds at most ~20,000 file descriptors: a held
stream costs a gateway two (client + upstream), so --held stays at or below ~9,000.
"""

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
PORTKEY_DIR = os.path.join(HERE, "portkey")
PORTKEY_MAIN = os.path.join(PORTKEY_DIR, "node_modules", "@portkey-ai", "gateway", "build",
                            "start-server.js")
CLK = os.sysconf("SC_CLK_TCK")

# Portkey's start-server.js calls serve({fetch, port}) without a hostname, so Node listens on
# every address. This preload (node --import) makes a listen(port) without a host bind
# 127.0.0.1 and prints the port it got (we ask for port 0).
PRELOAD = (
    'import net from "node:net";'
    "const listen = net.Server.prototype.listen;"
    "net.Server.prototype.listen = function (...a) {"
    ' if (typeof a[0] === "number" && a[1] === undefined) a[1] = "127.0.0.1";'
    ' this.once("listening", () => process.stderr.write('
    '"bench-preload listening " + this.address().address + ":" + this.address().port + "\\n"));'
    " return listen.apply(this, a); };"
)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def clean_env():
    """The environment without proxies (curl and Node would use them) or trilemma settings."""
    drop = ("TRILEMMA_", "OPENAI_", "ANTHROPIC_", "GEMINI_")
    return {k: v for k, v in os.environ.items()
            if not k.startswith(drop) and k != "DATABASE_URL" and "proxy" not in k.lower()}


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def cpu_seconds(pid):
    """utime + stime of the process (all threads) + cutime + cstime (its waited-for children)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLK


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rss_sample(pid, n=5, every=0.4):
    """Median of a few RSS readings (Node's garbage collector moves it around)."""
    xs = []
    for _ in range(n):
        xs.append(rss_kib(pid))
        time.sleep(every)
    return sorted(xs)[len(xs) // 2]


def metric(port, name):
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    m = re.search(r"^%s (\d+)$" % re.escape(name), body, re.M)
    return int(m.group(1)) if m else 0


def wait_for(pred, bound, what, every=0.1):
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(every)  # polling a benchmark's processes, bounded by `bound`
    raise SystemExit("timed out after %.0f s waiting for %s" % (bound, what))


class Proc:
    """A child process whose output goes to a log file; started() waits for a 'listening' line
    in that log and returns the port it names."""

    def __init__(self, name, cmd, logdir, env=None, cwd=None):
        self.name = name
        self.log = os.path.join(logdir, name + ".log")
        self._f = open(self.log, "wb")
        self.p = subprocess.Popen(cmd, stdout=self._f, stderr=subprocess.STDOUT, env=env,
                                  cwd=cwd, start_new_session=True)
        self.pid = self.p.pid

    def started(self, pattern, bound=30.0):
        rx = re.compile(pattern)

        def look():
            if self.p.poll() is not None:
                raise SystemExit("%s exited early (status %s); see %s"
                                 % (self.name, self.p.returncode, self.log))
            with open(self.log, "rb") as f:
                m = rx.search(f.read().decode("utf-8", "replace"))
            return m and int(m.group(1))
        return wait_for(look, bound, self.name + " to listen")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self._f.close()


# ------------------------------------------------------------------------------------------
# the three paths


def ensure_portkey():
    if os.path.exists(PORTKEY_MAIN):
        return
    log("installing the pinned Portkey gateway (npm ci in %s)" % PORTKEY_DIR)
    subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                   cwd=PORTKEY_DIR, check=True, env=clean_env())
    if not os.path.exists(PORTKEY_MAIN):
        raise SystemExit("npm ci did not produce " + PORTKEY_MAIN)


def package_version(rel):
    try:
        with open(os.path.join(PORTKEY_DIR, "node_modules", rel, "package.json")) as f:
            return json.load(f)["version"]
    except OSError:
        return None


def start_sim(a, tmp):
    sim = Proc("sim", [os.path.join(a.build, "trilemma-sim"), "--listen", "127.0.0.1:0",
                       "--workers", "1", "--ttft-ms", str(a.ttft_ms), "--ttft-jitter-ms", "0",
                       "--tps", str(a.tps), "--tokens", str(a.tokens)], tmp, env=clean_env())
    return sim, sim.started(r"listening on http://127\.0\.0\.1:(\d+)/")


def start_trilemma(a, tmp, sim_port, name):
    cfg = os.path.join(tmp, "trilemma.ini")
    with open(cfg, "w") as f:
        f.write("[server]\nmax_connections = 20000\nmax_connections_per_ip = 20000\n"
                "[session]\nrate_messages = 100000\nmax_turns_per_ip = 0\nturns_per_minute_per_ip = 0\n"
                "[model]\nmax_retries = 0\nstall_timeout_ms = 600000\n")
    env = clean_env()
    env.update({"TRILEMMA_MODEL": "openai/sim-shopper",
                "OPENAI_BASE_URL": "http://127.0.0.1:%d/v1" % sim_port})
    srv = Proc(name, [os.path.join(a.build, "trilemmad"), "--listen", "127.0.0.1:0",
                      "--config", cfg], tmp, env=env, cwd=ROOT)
    return srv, srv.started(r"trilemma listening on http://127\.0\.0\.1:(\d+)/")


def start_portkey(tmp, name):
    env = clean_env()
    env["NODE_ENV"] = "production"
    pre = "data:text/javascript," + urllib.parse.quote(PRELOAD)
    pk = Proc(name, ["node", "--import=" + pre, PORTKEY_MAIN, "--port=0", "--headless"], tmp,
              env=env, cwd=PORTKEY_DIR)
    return pk, pk.started(r"bench-preload listening 127\.0\.0\.1:(\d+)")


def portkey_headers(sim_port):
    return ["x-portkey-provider: openai",
            "x-portkey-custom-host: http://127.0.0.1:%d/v1" % sim_port]


def probe_stream(port, path, headers):
    """One streamed chat completion over a raw socket: status, response headers, and when each
    content chunk arrived (seconds after the request was sent)."""
    import socket
    body = json.dumps({"model": "sim-shopper", "stream": True,
                       "stream_options": {"include_usage": True},
                       "messages": [{"role": "user", "content": "probe: running shoes"}]}).encode()
    head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
            "Authorization: Bearer sk-bench\r\n%sContent-Length: %d\r\nConnection: close\r\n\r\n"
            % (path, port, "".join(h + "\r\n" for h in headers), len(body))).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    t0 = time.monotonic()
    s.sendall(head + body)
    buf, arrivals = b"", []
    while True:
        d = s.recv(65536)
        if not d:
            break
        buf += d
        n = d.count(b'"content":"') - d.count(b'"content":""')
        if n > 0:
            arrivals.extend([time.monotonic() - t0] * n)
    s.close()
    hdr, _, rest = buf.partition(b"\r\n\r\n")
    lines = hdr.decode("latin-1").split("\r\n")
    return {"status": int(lines[0].split()[1]),
            "headers": {k.strip().lower(): v.strip() for k, v in
                        (l.split(":", 1) for l in lines[1:] if ":" in l)},
            "done": b"data: [DONE]" in rest, "arrivals": arrivals}


def verify_portkey(pk_port, sim_port):
    """The stream goes through Portkey to the simulated provider, and arrives token by token."""
    req0 = metric(sim_port, 'trilemma_sim_requests_total{format="openai"}')
    d = probe_stream(sim_port, "/v1/chat/completions", [])
    p = probe_stream(pk_port, "/v1/chat/completions", portkey_headers(sim_port))
    req1 = metric(sim_port, 'trilemma_sim_requests_total{format="openai"}')
    if p["status"] != 200 or not p["done"]:
        raise SystemExit("Portkey probe failed: HTTP %d, [DONE] %s" % (p["status"], p["done"]))
    if p["headers"].get("x-portkey-provider") != "openai":
        raise SystemExit("the probe's answer did not come from Portkey (no x-portkey-provider)")
    if req1 - req0 != 2:
        raise SystemExit("the simulated provider saw %d requests for 2 probes" % (req1 - req0))
    span = lambda r: (r["arrivals"][-1] - r["arrivals"][0]) if len(r["arrivals"]) > 1 else 0.0
    return {"sim_requests_for_2_probes": req1 - req0,
            "direct": {"tokens": len(d["arrivals"]), "first_token_s": round(d["arrivals"][0], 4),
                       "first_to_last_s": round(span(d), 4)},
            "portkey": {"tokens": len(p["arrivals"]), "first_token_s": round(p["arrivals"][0], 4),
                        "first_to_last_s": round(span(p), 4),
                        "distinct_arrivals": len(set(p["arrivals"])),
                        "x_portkey_provider": p["headers"].get("x-portkey-provider")}}


# ------------------------------------------------------------------------------------------
# load runs


def load_cmd(a, target, extra):
    return [os.path.join(a.build, "trilemma-load"), *target, *extra, "--quiet"]


def target_args(kind, port, sim_port):
    if kind == "direct":
        return ["--direct-sse", "http://127.0.0.1:%d/v1/chat/completions" % port,
                "--model", "sim-shopper", "--header", "Authorization: Bearer sk-bench"]
    if kind == "trilemma":
        return ["--url", "ws://127.0.0.1:%d/ws" % port]
    return ["--direct-sse", "http://127.0.0.1:%d/v1/chat/completions" % port,
            "--model", "sim-shopper", "--header", "Authorization: Bearer sk-bench",
            *sum((["--header", h] for h in portkey_headers(sim_port)), [])]


def read_report(path):
    with open(path) as f:
        r = json.load(f)
    m, c = r["totals"]["metrics"], r["totals"]["counts"]
    return {
        "ttft_p50": m["ttft_ms"]["p50"], "ttft_p99": m["ttft_ms"]["p99"],
        "gap_p50": m["inter_token_ms"]["p50"], "gap_p99": m["inter_token_ms"]["p99"],
        "turns": c["turns"], "turns_completed": c["turns_completed"], "errors": c["errors"],
        "errors_by_kind": r["errors"]["by_kind"], "tokens": c["output_tokens"],
        "lag_p99": m["lag_ms"]["p99"], "behind": r["schedule"]["behind"],
        "load_cpu_s": round(r["process"]["cpu_user_s"] + r["process"]["cpu_sys_s"], 2),
    }


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


class CpuSampler(threading.Thread):
    """The gateway's CPU use per second while a load runs: its busiest second shows whether one
    core was the limit."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop_evt = pid, 0.0, threading.Event()

    def run(self):
        last, t_last = cpu_seconds(self.pid), time.monotonic()
        while not self.stop_evt.wait(1.0):
            c, t = cpu_seconds(self.pid), time.monotonic()
            self.peak = max(self.peak, (c - last) / (t - t_last))
            last, t_last = c, t


def run_phase(a, kind, port, sim_port, n, gw_pid, tmp):
    report = os.path.join(tmp, "%s-%d.json" % (kind, n))
    # streams left over from the previous phase would load the provider and the machine
    left = metric(sim_port, "trilemma_sim_streams_active")
    deadline = time.monotonic() + 60
    while left and time.monotonic() < deadline:
        time.sleep(0.25)
        left = metric(sim_port, "trilemma_sim_streams_active")
    common = ["--sessions", str(n), "--duration", str(a.duration), "--turns", "1000",
              "--think", "fixed:%d" % a.think_ms, "--ramp", str(min(5, a.duration // 4)),
              "--report", report]
    req0 = metric(sim_port, 'trilemma_sim_requests_total{format="openai"}')
    la = loadavg()[0]
    cpu0 = cpu_seconds(gw_pid) if gw_pid else 0.0
    sampler = CpuSampler(gw_pid) if gw_pid else None
    if sampler:
        sampler.start()
    busy0 = machine_busy()
    t0 = time.monotonic()
    try:
        with open(os.path.join(tmp, "load-%s-%d.log" % (kind, n)), "wb") as lf:
            subprocess.run(load_cmd(a, target_args(kind, port, sim_port), common), check=True,
                           stdout=lf, stderr=subprocess.STDOUT, env=clean_env(),
                           timeout=a.duration + 120)
    finally:
        if sampler:
            sampler.stop_evt.set()
            sampler.join()
    wall = time.monotonic() - t0
    busy1 = machine_busy()
    cpu1 = cpu_seconds(gw_pid) if gw_pid else 0.0
    r = read_report(report)
    r["sim_requests"] = metric(sim_port, 'trilemma_sim_requests_total{format="openai"}') - req0
    r["wall_s"] = round(wall, 2)
    r["sim_streams_left_at_start"] = left
    r["loadavg_1m_at_start"] = la
    r["machine_busy_cores"] = round((busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1)
                                    * os.cpu_count(), 2)
    if gw_pid:
        r["gateway_cpu_s"] = round(cpu1 - cpu0, 3)
        r["gateway_core_share"] = round((cpu1 - cpu0) / wall, 3)
        r["gateway_peak_core_share_1s"] = round(sampler.peak, 2)
        r["cpu_s_per_mtok"] = round((cpu1 - cpu0) / max(r["tokens"], 1) * 1e6, 2)
    log("  %-8s %5d streams: ttft p50 %.1f ms, gap p50 %.1f ms, %d turns, %d errors%s"
        % (kind, n, r["ttft_p50"], r["gap_p50"], r["turns_completed"], r["errors"],
           (", gateway %.1f CPU s/Mtok" % r["cpu_s_per_mtok"]) if gw_pid else ""))
    return r


def resolution_ms(v):
    """Width of the load generator's histogram bucket holding v ms (128 sub-buckets per power
    of two above 256 us): differences below it are not measured."""
    us = max(v * 1000.0, 256.0)
    return 2 ** math.floor(math.log2(us)) / 128 / 1000.0


def added(x, d, k):
    res = max(resolution_ms(x[k]), resolution_ms(d[k]))
    return round(x[k] - d[k], 3), res


def ratio(num, den, res):
    """Portkey's added / trilemma's added. When trilemma's is under the histogram's resolution
    the ratio is only bounded below (res as the denominator)."""
    if num is None or den is None or (abs(num) < res and abs(den) < res):
        return None, None  # both within the resolution: no ratio to speak of
    if den >= res:
        return round(num / den, 2), None
    return None, (round(num / res, 1) if num > 0 else None)


def level(a, n, ports, pids, tmp):
    sim_port, tri_port, pk_port = ports
    log("level %d streams" % n)
    d = run_phase(a, "direct", sim_port, sim_port, n, None, tmp)
    t = run_phase(a, "trilemma", tri_port, sim_port, n, pids["trilemma"], tmp)
    p = run_phase(a, "portkey", pk_port, sim_port, n, pids["portkey"], tmp)
    row = {"streams": n, "direct": d, "trilemma": t, "portkey": p, "ratios": {},
           "ratio_lower_bounds": {}, "resolution_ms": {}}
    for k in ("ttft_p50", "ttft_p99", "gap_p50", "gap_p99"):
        ta, tres = added(t, d, k)
        pa, pres = added(p, d, k)
        t.setdefault("added", {})[k] = ta
        p.setdefault("added", {})[k] = pa
        res = max(tres, pres)
        row["resolution_ms"][k] = round(res, 3)
        r, lb = ratio(pa, ta, res)
        row["ratios"]["added_" + k] = r
        if lb is not None:
            row["ratio_lower_bounds"]["added_" + k] = lb
    row["ratios"]["cpu_s_per_mtok"] = (round(p["cpu_s_per_mtok"] / t["cpu_s_per_mtok"], 2)
                                       if t["cpu_s_per_mtok"] > 0 else None)
    return row


# ------------------------------------------------------------------------------------------
# memory


def stop_load(proc, bound=60):
    """SIGINT twice: stop the schedule, then cut the running (stalled) turns."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=bound)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


def warm_up(a, kind, port, sim_port, tmp):
    """A few ordinary turns so one-time allocations (JIT, pools) are made before the baseline."""
    report = os.path.join(tmp, "warm-%s.json" % kind)
    subprocess.run(load_cmd(a, target_args(kind, port, sim_port),
                            ["--sessions", "20", "--duration", "4", "--ramp", "1", "--turns", "3",
                             "--think", "fixed:100", "--grace", "5", "--report", report]),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=clean_env(), timeout=60)
    time.sleep(1.0)


def held_streams(a, kind, port, sim_port, gw_pid, tmp):
    """RSS growth per stream held open (stalled after one token) through the gateway."""
    corpus = os.path.join(tmp, "stall_corpus.txt")
    with open(corpus, "w") as f:
        for q in ("running shoes under 3000 [[sim:stall_after=1]]",
                  "compare these two phones [[sim:stall_after=1]]",
                  "where is my order [[sim:stall_after=1]]"):
            f.write("search\t%s\n" % q)
    n = a.held
    warm_up(a, kind, port, sim_port, tmp)
    wait_for(lambda: metric(sim_port, "trilemma_sim_streams_active") == 0, 30, "sim idle")
    base = rss_sample(gw_pid)
    ramp = max(1, min(10, n // 1000))
    report = os.path.join(tmp, "held-%s.json" % kind)
    proc = subprocess.Popen(
        load_cmd(a, target_args(kind, port, sim_port),
                 ["--sessions", str(n), "--duration", str(ramp + 45), "--ramp", str(ramp),
                  "--turns", "1", "--think", "fixed:100", "--corpus", corpus, "--grace", "1",
                  "--report", report]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env())
    try:
        held = 0
        deadline = time.monotonic() + ramp + 30
        while time.monotonic() < deadline and proc.poll() is None:
            held = metric(sim_port, "trilemma_sim_streams_active")
            if held >= n:
                break
            time.sleep(0.25)
        time.sleep(1.0)
        held = metric(sim_port, "trilemma_sim_streams_active")
        rss = rss_sample(gw_pid)
        held_after = metric(sim_port, "trilemma_sim_streams_active")
    finally:
        stop_load(proc)
    # the clients are gone: does the gateway close its upstream streams too?
    deadline = time.monotonic() + 15
    left = metric(sim_port, "trilemma_sim_streams_active")
    while left and time.monotonic() < deadline:
        time.sleep(0.25)
        left = metric(sim_port, "trilemma_sim_streams_active")
    r = read_report(report)
    held = min(held, held_after)
    out = {"target_streams": n, "streams_held": held, "rss_before_kib": base,
           "rss_held_kib": rss,
           "kib_per_held_stream": round((rss - base) / held, 2) if held else None,
           "upstream_streams_open_15s_after_clients_left": left,
           "load_errors": r["errors_by_kind"]}
    log("  %-8s held %d streams: RSS %.1f -> %.1f MiB, %s KiB per stream; %d upstream streams "
        "still open 15 s after the clients left" % (kind, held, base / 1024, rss / 1024,
                                                     out["kib_per_held_stream"], left))
    return out


def disconnect_probe(port, headers, sim_port, tps, wait_s=3.0):
    """A client reads a few tokens of a 10-second answer and leaves: how many more tokens does
    the simulated provider generate in the next wait_s seconds (is the upstream stream
    cancelled when the client goes)? Then waits until the answer has ended either way."""
    import socket
    wait_for(lambda: metric(sim_port, "trilemma_sim_streams_active") == 0, 60,
             "the simulated provider to be idle")
    tokens = 10 * max(tps, 1)
    body = json.dumps({"model": "sim-shopper", "stream": True, "messages": [
        {"role": "user", "content": "long answer please [[sim:tokens=%d]]" % tokens}]})
    body = body.encode()
    head = ("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            "Content-Type: application/json\r\nAuthorization: Bearer sk-bench\r\n%s"
            "Content-Length: %d\r\n\r\n" % (port, "".join(h + "\r\n" for h in headers),
                                              len(body))).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(head + body)
    got = b""
    while got.count(b"data: ") < 4:
        d = s.recv(65536)
        if not d:
            break
        got += d
    s.close()
    tok0 = metric(sim_port, "trilemma_sim_tokens_total")
    time.sleep(wait_s)
    tok1 = metric(sim_port, "trilemma_sim_tokens_total")
    still_open = metric(sim_port, "trilemma_sim_streams_active")
    wait_for(lambda: metric(sim_port, "trilemma_sim_streams_active") == 0, 30,
             "the probe's answer to end")
    return {"answer_tokens": tokens, "tokens_generated_after_client_left": tok1 - tok0,
            "over_s": wait_s, "upstream_still_open_after": still_open}


def idle_sessions(a, port, gw_pid, tmp):
    """RSS growth per idle WebSocket session of a fresh trilemmad."""
    n = a.idle_sessions
    time.sleep(0.5)
    base = rss_sample(gw_pid)
    report = os.path.join(tmp, "idle-trilemma.json")
    ramp = max(1, min(10, n // 2000))
    proc = subprocess.Popen(
        load_cmd(a, ["--url", "ws://127.0.0.1:%d/ws" % port],
                 ["--idle", "--sessions", str(n), "--duration", str(ramp + 45), "--ramp",
                  str(ramp), "--report", report]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env())
    try:
        opened = 0
        deadline = time.monotonic() + ramp + 30
        while time.monotonic() < deadline and proc.poll() is None:
            opened = metric(port, "trilemma_websockets_open")
            if opened >= n:
                break
            time.sleep(0.25)
        time.sleep(1.0)
        opened = metric(port, "trilemma_websockets_open")
        rss = rss_sample(gw_pid)
    finally:
        stop_load(proc)
    out = {"target_sessions": n, "sessions_open": opened, "rss_before_kib": base,
           "rss_idle_kib": rss,
           "kib_per_idle_session": round((rss - base) / opened, 2) if opened else None}
    log("  trilemma idle %d sessions: RSS %.1f -> %.1f MiB, %s KiB per session"
        % (opened, base / 1024, rss / 1024, out["kib_per_idle_session"]))
    return out


# ------------------------------------------------------------------------------------------
# output


def fmt(v, spec="%.1f"):
    return "-" if v is None else spec % v


def print_table(out):
    m = out["machine"]
    print("machine: %d cores, load average %s at start, %s at end (other work may share the "
          "cores)" % (m["cores"], "/".join("%.2f" % x for x in m["loadavg_start"]),
                      "/".join("%.2f" % x for x in m["loadavg_end"])))
    s = out["sim"]
    print("simulated provider: one trilemma-sim, ttft %d ms (no jitter), %d tokens/s per stream "
          "(gaps +-20%%), %d tokens per answer; clients think %d ms between turns"
          % (s["ttft_ms"], s["tps"], s["tokens"], out["think_ms"]))
    print("portkey: @portkey-ai/gateway %s on Node %s (one process); trilemmad: %s"
          % (m["portkey_version"], m["node_version"], "workers = one per core"))
    print()
    print("client-seen latency in ms; added = through the gateway - direct; ratio = Portkey "
          "added / trilemma added")
    hdr = "%7s  %-9s %9s %9s %9s %9s %11s %10s %8s %7s %9s"
    print(hdr % ("streams", "path", "ttft p50", "ttft p99", "gap p50", "gap p99",
                 "CPU s/Mtok", "core avg/pk", "turns", "errors", "mach busy"))
    for r in out["levels"]:
        for kind in ("direct", "trilemma", "portkey"):
            x = r[kind]
            print(hdr % (r["streams"], kind, "%.1f" % x["ttft_p50"], "%.1f" % x["ttft_p99"],
                         "%.1f" % x["gap_p50"], "%.1f" % x["gap_p99"],
                         fmt(x.get("cpu_s_per_mtok")),
                         ("%.2f/%.2f" % (x["gateway_core_share"], x["gateway_peak_core_share_1s"])
                          if "gateway_core_share" in x else "-"),
                         x["turns_completed"], x["errors"], "%.2f" % x["machine_busy_cores"]))
        for kind in ("trilemma", "portkey"):
            ad = r[kind]["added"]
            print(hdr % ("", "+" + kind, "%+.1f" % ad["ttft_p50"], "%+.1f" % ad["ttft_p99"],
                         "%+.1f" % ad["gap_p50"], "%+.1f" % ad["gap_p99"], "", "", "", "", ""))
        cells = []
        for k in ("added_ttft_p50", "added_ttft_p99", "added_gap_p50", "added_gap_p99"):
            v, lb = r["ratios"][k], r["ratio_lower_bounds"].get(k)
            res = r["resolution_ms"][k[6:]]
            both_small = abs(r["trilemma"]["added"][k[6:]]) < res and \
                abs(r["portkey"]["added"][k[6:]]) < res
            cells.append("%.1fx" % v if v is not None else (">%.0fx" % lb if lb else
                                                              ("~" if both_small else "n/a")))
        cpu = r["ratios"]["cpu_s_per_mtok"]
        print(hdr % ("", "ratio P/t", *cells, fmt(cpu, "%.1fx"), "", "", "", ""))
        print()
    mem = out["memory"]
    if mem:
        print("memory (fresh gateway processes, RSS growth):")
        ti = mem.get("trilemma_idle")
        if ti:
            print("  trilemma  %6d idle sessions : %7s KiB per session" %
                  (ti["sessions_open"], fmt(ti["kib_per_idle_session"], "%.2f")))
        th, ph = mem.get("trilemma_held"), mem.get("portkey_held")
        for name, h in (("trilemma", th), ("portkey", ph)):
            if h:
                print("  %-8s  %6d held streams : %7s KiB per stream" %
                      (name, h["streams_held"], fmt(h["kib_per_held_stream"], "%.2f")))
        if mem.get("ratio_held") is not None:
            print("  ratio Portkey / trilemma per held stream: %.1fx" % mem["ratio_held"])
        print("  (Portkey has no idle session to compare: an idle keep-alive connection is "
              "closed after 5 s)")
    print("(ratio >Nx: trilemma's added value is under the histogram's resolution, so only a "
          "lower bound; ~: both under it; n/a: Portkey's is not above it)")
    print()
    for note in out["notes"]:
        print("note: " + note)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--levels", default="100,1000")
    ap.add_argument("--duration", type=int, default=25)
    ap.add_argument("--tps", type=int, default=20)
    ap.add_argument("--tokens", type=int, default=40)
    ap.add_argument("--ttft-ms", type=int, default=200)
    ap.add_argument("--think-ms", type=int, default=500)
    ap.add_argument("--idle-sessions", type=int, default=10000)
    ap.add_argument("--held", type=int, default=5000)
    ap.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.held > 9000 or a.idle_sessions > 19000:
        raise SystemExit("--held <= 9000 and --idle-sessions <= 19000 (about 20,000 fds per "
                         "process)")
    ensure_portkey()
    node_version = subprocess.run(["node", "--version"], capture_output=True, text=True,
                                  check=True).stdout.strip()
    if int(node_version.lstrip("v").split(".")[0]) < 18:
        raise SystemExit("Portkey's dependencies need Node >= 18, found " + node_version)

    tmp = tempfile.mkdtemp(prefix="bench-vs-portkey-")
    log("logs and load reports in " + tmp)
    out = {"machine": {"cores": os.cpu_count(), "loadavg_start": loadavg(),
                       "node_version": node_version,
                       "portkey_version": package_version("@portkey-ai/gateway"),
                       "hono_node_server_version": package_version("@hono/node-server")},
           "sim": {"ttft_ms": a.ttft_ms, "ttft_jitter_ms": 0, "tps": a.tps, "tokens": a.tokens,
                   "workers": 1},
           "think_ms": a.think_ms, "duration_s": a.duration, "levels": [], "memory": {},
           "notes": [], "logs": tmp}
    procs = []
    try:
        sim, sim_port = start_sim(a, tmp)
        procs.append(sim)
        tri, tri_port = start_trilemma(a, tmp, sim_port, "trilemmad")
        procs.append(tri)
        pk, pk_port = start_portkey(tmp, "portkey")
        procs.append(pk)
        out["portkey_probe"] = verify_portkey(pk_port, sim_port)
        log("portkey probe: %s" % json.dumps(out["portkey_probe"]))
        out["disconnect_probe"] = {
            "direct": disconnect_probe(sim_port, [], sim_port, a.tps),
            "portkey": disconnect_probe(pk_port, portkey_headers(sim_port), sim_port, a.tps)}
        log("disconnect probe: %s" % json.dumps(out["disconnect_probe"]))
        pids = {"trilemma": tri.pid, "portkey": pk.pid}
        for n in a.levels.split(","):
            out["levels"].append(level(a, int(n), (sim_port, tri_port, pk_port), pids, tmp))
        for p in (tri, pk):
            p.stop()
            procs.remove(p)
        wait_for(lambda: metric(sim_port, "trilemma_sim_streams_active") == 0, 30,
                 "the simulated provider's streams to close")
        if not a.no_memory:
            log("memory")
            tri, tri_port = start_trilemma(a, tmp, sim_port, "trilemmad-idle")
            procs.append(tri)
            out["memory"]["trilemma_idle"] = idle_sessions(a, tri_port, tri.pid, tmp)
            tri.stop()
            procs.remove(tri)
            tri, tri_port = start_trilemma(a, tmp, sim_port, "trilemmad-held")
            procs.append(tri)
            out["memory"]["trilemma_held"] = held_streams(a, "trilemma", tri_port, sim_port,
                                                          tri.pid, tmp)
            tri.stop()
            procs.remove(tri)
            pk, pk_port = start_portkey(tmp, "portkey-held")
            procs.append(pk)
            out["memory"]["portkey_held"] = held_streams(a, "portkey", pk_port, sim_port,
                                                         pk.pid, tmp)
            pk.stop()
            procs.remove(pk)
            wait_for(lambda: metric(sim_port, "trilemma_sim_streams_active") == 0, 30,
                     "the simulated provider's streams to close")
            th = out["memory"]["trilemma_held"]["kib_per_held_stream"]
            ph = out["memory"]["portkey_held"]["kib_per_held_stream"]
            out["memory"]["ratio_held"] = round(ph / th, 2) if th and ph and th > 0 else None
    finally:
        for p in reversed(procs):
            p.stop()
    out["machine"]["loadavg_end"] = loadavg()

    notes = out["notes"]
    probe = out["portkey_probe"]["portkey"]
    notes.append("Portkey streams token by token (probe: %d content chunks in %d separate "
                 "reads over %.2f s), and sleeps 25 ms before forwarding the first chunk of "
                 "every stream (readStream() in its src/handlers/streamHandler.ts), a floor "
                 "under its added time to first token"
                 % (probe["tokens"], probe["distinct_arrivals"], probe["first_to_last_s"]))
    dp = out["disconnect_probe"]["portkey"]
    if dp["tokens_generated_after_client_left"] > 0:
        notes.append("a client that leaves mid-answer is not propagated by Portkey: the "
                     "simulated provider went on generating %d tokens in the %.0f s after the "
                     "client closed (read directly: %d), i.e. the provider keeps producing (and "
                     "billing) the abandoned answer"
                     % (dp["tokens_generated_after_client_left"], dp["over_s"],
                        out["disconnect_probe"]["direct"]["tokens_generated_after_client_left"]))
    for name in ("trilemma_held", "portkey_held"):
        h = out["memory"].get(name)
        if h and h["upstream_streams_open_15s_after_clients_left"]:
            notes.append("%s: %d of %d upstream streams were still open 15 s after their "
                         "clients left" % (name.split("_")[0], h[
                             "upstream_streams_open_15s_after_clients_left"], h["streams_held"]))
    for r in out["levels"]:
        for kind in ("direct", "trilemma", "portkey"):
            x = r[kind]
            if x["errors"]:
                notes.append("%d streams, %s: %d errors %s" % (r["streams"], kind, x["errors"],
                                                               json.dumps(x["errors_by_kind"])))
            if x["behind"]:
                notes.append("%d streams, %s: the load generator fell behind its schedule "
                             "(lag p99 %.1f ms)" % (r["streams"], kind, x["lag_p99"]))
        for kind in ("trilemma", "portkey"):
            x = r[kind]
            if x["gap_p50"] < 0.5 * r["direct"]["gap_p50"]:
                notes.append("%d streams, %s: inter-token gap p50 %.1f ms against %.1f ms read "
                             "directly - tokens arrived in bursts (several per read), i.e. the "
                             "gateway fell behind and flushed what had piled up"
                             % (r["streams"], kind, x["gap_p50"], r["direct"]["gap_p50"]))
            if x["sim_streams_left_at_start"]:
                notes.append("%d streams, %s: %d upstream streams of the previous phase were "
                             "still running when it started" % (r["streams"], kind,
                                                                 x["sim_streams_left_at_start"]))
        p = r["portkey"]
        if p.get("gateway_peak_core_share_1s", 0) > 0.85:
            notes.append("%d streams: Portkey's Node process used up to %.0f%% of a core in its "
                         "busiest second (%.0f%% on average) - one JavaScript thread is its "
                         "limit, and its latencies include that queueing"
                         % (r["streams"], 100 * p["gateway_peak_core_share_1s"],
                            100 * p["gateway_core_share"]))
        if abs(p["sim_requests"] - p["turns"]) > max(5, 0.01 * p["turns"]):
            notes.append("%d streams: the simulated provider saw %d requests for %d turns sent "
                         "through Portkey" % (r["streams"], p["sim_requests"], p["turns"]))
        if r["ratio_lower_bounds"]:
            notes.append("%d streams: trilemma's added %s is below the histogram's resolution "
                         "(~0.8%% of the value); the ratio shown as >Nx is a lower bound"
                         % (r["streams"], ", ".join(k[6:] for k in r["ratio_lower_bounds"])))
    print_table(out)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
        print("JSON: " + a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
