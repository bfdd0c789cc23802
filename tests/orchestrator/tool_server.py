#!/usr/bin/env python3
"""tool_server.py - a small tool service for test_tool_run, on 127.0.0.1 only.

Prints its port on the first line of stdout, then serves until stdin closes:
  GET /slow/MS?...   answers 200 with a JSON list after MS milliseconds (its own latency); the
                     requests tagged p1, p2, p3 (tag=pN) also wait until all three have arrived
                     (bounded by 10 s), so overlapping requests are proven by the server's own
                     timestamps whatever the machine's load: a client that sent them one after
                     another would make the first wait out the bound and end before the last began
  GET /fail?...      answers 500 {"error": "boom"}
  GET /hang?...      answers 200 and trickles one body byte every 20 ms for 10 s; a client that
                     goes away is recorded as "aborted" (the write fails)
  GET /log           every request so far: path, start_us, end_us (this process's monotonic
                     clock), outcome ("complete" / "aborted"), so the test compares the server's
                     own timestamps instead of timing anything itself
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = []
LOCK = threading.Lock()
PARALLEL = threading.Condition()
PARALLEL_ARRIVED = []
PARALLEL_GROUP = 3
PARALLEL_BOUND_S = 10.0


def now_us():
    return time.monotonic_ns() // 1000


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def record(self, start, outcome):
        with LOCK:
            LOG.append({"path": self.path, "start_us": start, "end_us": now_us(),
                        "outcome": outcome})

    def rendezvous(self):
        """Wait until the group of parallel requests (tag=p...) has all arrived, or the bound."""
        if "tag=p" not in self.path:
            return
        with PARALLEL:
            PARALLEL_ARRIVED.append(self.path)
            PARALLEL.notify_all()
            PARALLEL.wait_for(lambda: len(PARALLEL_ARRIVED) >= PARALLEL_GROUP, PARALLEL_BOUND_S)

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        start = now_us()
        path = self.path.split("?", 1)[0]
        if path == "/log":
            with LOCK:
                entries = list(LOG)
            self.send_json(200, {"requests": entries})
            return
        if path.startswith("/slow/"):
            self.rendezvous()
            time.sleep(int(path[6:]) / 1000.0)
            # recorded before the answer leaves: a client holding the answer finds it in /log
            self.record(start, "complete")
            self.send_json(200, {"total": 3, "results": [
                {"id": "A", "title": "first", "extra": "x" * 50},
                {"id": "B", "title": "second"},
                {"id": "C", "title": "third"}]})
            return
        if path == "/fail":
            self.record(start, "complete")
            self.send_json(500, {"error": "boom"})
            return
        if path == "/hang":
            self.hang(start)
            return
        self.record(start, "complete")
        self.send_json(404, {"error": "no such path"})

    def hang(self, start):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "500")
        self.end_headers()
        try:
            for _ in range(500):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.02)
        except (BrokenPipeError, ConnectionResetError):
            self.record(start, "aborted")
            self.close_connection = True
            return
        self.record(start, "complete")


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # until the test closes our stdin (or exits)
    server.shutdown()


if __name__ == "__main__":
    main()
