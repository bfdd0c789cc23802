#!/usr/bin/env python3
"""bench_idle.py - user-space memory per idle WebSocket session of trilemmad (issue 10 item 2).
A benchmark, not a test.

Starts trilemmad (echo model, no database), opens N idle sessions with one trilemma-load --idle
process, reads trilemmad's VmRSS once all N are open, opens N more with a second process, reads
it again, and prints the slope: (RSS at 2N - RSS at N) / N. The slope leaves out what a cold
process grows once (tables, allocator pages, the first handshakes' buffers); the kernel's socket
memory is not in RSS at all. --baseline DIR measures DIR/trilemmad the same way, for
before/after in one run.

  /usr/bin/python3 loadtest/bench/bench_idle.py [--build build] [--sessions 5000]
      [--baseline BUILD_DIR]
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from bench_relay import free_port, stop, wait_http  # noqa: E402


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1))


def sessions_open(port):
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    m = re.search(r"^trilemma_sessions_open (\d+)$", body, re.M)
    return int(m.group(1)) if m else 0


def wait_open(port, n, bound=60.0):
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if sessions_open(port) >= n:
            time.sleep(1)  # let allocator and tables settle after the last handshake
            return
        time.sleep(0.2)  # polling a benchmark's server, not a test
    raise SystemExit("only %d of %d sessions opened" % (sessions_open(port), n))


def measure(trilemmad, build, n, tmp):
    port = free_port()
    cfg = os.path.join(tmp, "idle.ini")
    with open(cfg, "w") as f:
        f.write("[server]\nmax_connections = 20000\nmax_connections_per_ip = 20000\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TRILEMMA_") and k != "DATABASE_URL"}
    env["TRILEMMA_MODEL"] = "echo"
    srv = subprocess.Popen([trilemmad, "--listen", "127.0.0.1:%d" % port, "--config", cfg],
                           cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    loads = []
    try:
        wait_http("http://127.0.0.1:%d/healthz" % port, srv)
        rss = []
        for k in (1, 2):
            loads.append(subprocess.Popen(
                [os.path.join(build, "trilemma-load"), "--url", "ws://127.0.0.1:%d/ws" % port,
                 "--sessions", str(n), "--duration", "120", "--idle", "--ramp", "2", "--quiet"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_open(port, k * n)
            rss.append(rss_kib(srv.pid))
        return rss[0], rss[1], (rss[1] - rss[0]) * 1024 / n
    finally:
        for p in loads:
            p.send_signal(signal.SIGINT)
        for p in loads:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        stop(srv)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--sessions", type=int, default=5000)
    ap.add_argument("--baseline", default=None, metavar="BUILD_DIR")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-idle-")
    runs = [("trilemma", os.path.join(a.build, "trilemmad"))]
    if a.baseline:
        runs.insert(0, ("baseline", os.path.join(a.baseline, "trilemmad")))
    for name, binary in runs:
        r0, r1, per = measure(binary, a.build, a.sessions, tmp)
        print("%-9s RSS %d KiB at %d idle sessions, %d KiB at %d: %.0f bytes per idle session"
              % (name, r0, a.sessions, r1, 2 * a.sessions, per))
    return 0


if __name__ == "__main__":
    sys.exit(main())
