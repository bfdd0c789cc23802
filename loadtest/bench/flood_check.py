#!/usr/bin/env python3
"""flood_check.py - issue 18, item 1 at the issue's full size, by hand (tests/integration/
test_flood.py runs it scaled down in the suite). A check with printed numbers, not a test.

Starts trilemmad with max_connections=1200 and max_connections_per_ip=100 (the harness gives it
a free client port and a free admin port), opens 1,250 idle TCP connections from 127.0.0.1, then
asks from other loopback addresses: WebSocket upgrades, /healthz and /metrics on the client
port, and the three probes on the admin port. Before issue 18 every one of them got 503 until
handshake_timeout_ms (10 s) cleared the flood.

  /usr/bin/python3 loadtest/bench/flood_check.py [--build build] [--conns 1250]
      [--max-connections 1200] [--per-ip 100]
Needs about 2 x conns open files (ulimit -n).
"""

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
from harness import Conn, RawWS, Server, build_request, read_http_response  # noqa: E402


def get(port, path, source=None):
    with Conn(port, source=source) as c:
        c.send(build_request("GET", path, [("Connection", "close")]))
        return read_http_response(c).status


def metric(srv, name):
    with Conn(srv.admin_port) as c:
        c.send(build_request("GET", "/metrics", [("Connection", "close")]))
        body = read_http_response(c).body.decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in body.splitlines() if l.startswith(name))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--conns", type=int, default=1250)
    ap.add_argument("--max-connections", type=int, default=1200)
    ap.add_argument("--per-ip", type=int, default=100)
    a = ap.parse_args()
    harness.Args.server = os.path.join(a.build, "trilemmad")
    harness.Args.source = ROOT
    cfg = {"server": {"max_connections": a.max_connections, "max_connections_per_ip": a.per_ip}}
    srv = Server(config=cfg, name="flood").start()
    conns, reset = [], 0
    try:
        for _ in range(a.conns):
            c, why = harness.try_connect(srv.port, source="127.0.0.1")
            if c:
                conns.append(c)
            else:
                reset += 1
        refused = a.conns - min(a.conns, a.per_ip)
        harness.wait_until(
            lambda: metric(srv, 'trilemma_errors_total{kind="connection_limit"}') >= refused,
            "the flood to be accepted")
        print("flood: %d idle connections from 127.0.0.1 (%d reset at connect)" % (a.conns, reset))
        print("  refused by the limits: %d; connections open: %d" % (
            metric(srv, 'trilemma_errors_total{kind="connection_limit"}'),
            metric(srv, "trilemma_connections_open")))
        ups = {}
        for ip in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
            with RawWS(srv.port, source=ip) as ws:
                ups[ip] = ws.handshake(expect=None).status
        print("  upgrades from other addresses:", ups)
        print("  client port /healthz, /metrics from 127.0.0.5: %d, %d" % (
            get(srv.port, "/healthz", "127.0.0.5"), get(srv.port, "/metrics", "127.0.0.5")))
        print("  admin port /healthz, /metrics, /readyz: %d, %d, %d" % (
            get(srv.admin_port, "/healthz"), get(srv.admin_port, "/metrics"),
            get(srv.admin_port, "/readyz")))
    finally:
        for c in conns:
            c.close()
        srv.stop()
        srv.cleanup()


if __name__ == "__main__":
    main()
