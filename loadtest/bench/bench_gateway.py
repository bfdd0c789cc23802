#!/usr/bin/env python3
"""bench_gateway.py - gateway benchmark (issue 2 item 8). A benchmark, not a test.

  1. memory per idle session: start trilemmad, read its RSS (/proc/PID/status VmRSS), open
     --sessions idle WebSocket sessions (default 10,000), read the RSS again; the difference
     divided by the number of sessions.
  2. echo turns per second: --concurrency sessions (default 1,000) each run echo turns back to
     back (echo_delay_ms = 0) for --duration seconds.

Prints a table with the machine's core count and writes the numbers as JSON (--json).

The clients are minimal asyncio WebSocket clients on raw sockets, spread over --procs client
processes (a process here may hold ~20,000 fds, and one Python process saturates a core long
before the server does). Each client process reports its CPU use: near 100% means the client,
not the server, limited the turn rate, and the table says so.

  /usr/bin/python3 loadtest/bench/bench_gateway.py [--server build/trilemmad] [--sessions 10000]
      [--concurrency 1000] [--duration 10] [--procs 2] [--workers 0] [--json FILE]
"""

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import platform
import resource
import socket
import statistics
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402  (the integration tests' server runner)


# ------------------------------------------------------------------------------------------
# minimal WebSocket client


def handshake_bytes(port):
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (port, key)
    ).encode()


def masked_text_frame(payload):
    key = os.urandom(4)
    n = len(payload)
    head = struct.pack("!BB", 0x81, 0x80 | n) if n < 126 else struct.pack("!BBH", 0x81, 0x80 | 126, n)
    masked = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return head + key + masked


async def read_frame(reader):
    h = await reader.readexactly(2)
    n = h[1] & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    payload = await reader.readexactly(n) if n else b""
    return h[0] & 0x0F, payload


async def open_session(port, sem):
    async with sem:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        writer.write(handshake_bytes(port))
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError("upgrade refused: %r" % head[:60])
        op, payload = await read_frame(reader)  # the session event
        if op != 1 or b'"session"' not in payload:
            raise RuntimeError("no session event: %r" % payload[:80])
        return reader, writer


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def idle_client(port, n, conn, ready_evt):
    """Child process: open n sessions, report, hold them until told to stop."""

    async def run():
        sem = asyncio.Semaphore(256)
        sessions = await asyncio.gather(*(open_session(port, sem) for _ in range(n)), return_exceptions=True)
        errors = [s for s in sessions if isinstance(s, BaseException)]
        conn.send({"opened": n - len(errors), "errors": len(errors), "first_error": repr(errors[0]) if errors else None})
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # "close"
        for s in sessions:
            if not isinstance(s, BaseException):
                s[1].close()
        conn.send({"closed": True})

    resource.setrlimit(resource.RLIMIT_NOFILE, resource.getrlimit(resource.RLIMIT_NOFILE)[1:] * 2)
    asyncio.run(run())


def turn_client(port, n, duration, conn):
    """Child process: n sessions each running echo turns back to back for `duration` s."""

    async def session_loop(reader, writer, frame, stop_at, lat):
        turns = 0
        while time.monotonic() < stop_at:
            t0 = time.monotonic()
            writer.write(frame)
            while True:
                op, payload = await read_frame(reader)
                if op == 9:  # ping -> pong (unmasked payload is fine to echo masked with key 0)
                    writer.write(struct.pack("!BB", 0x8A, 0x80 | len(payload)) + b"\0\0\0\0" + payload)
                    continue
                if op == 1 and payload.startswith(b'{"type":"turn_end"'):
                    break
                if op == 1 and b'"turn_end"' in payload:
                    break
                if op == 1 and b'"type":"error"' in payload:
                    raise RuntimeError("error event: %r" % payload[:200])
                if op == 8:
                    raise RuntimeError("closed by the server: %r" % payload[:40])
            turns += 1
            lat.append(time.monotonic() - t0)
        return turns

    async def run():
        sem = asyncio.Semaphore(256)
        sessions = await asyncio.gather(*(open_session(port, sem) for _ in range(n)))
        msg = json.dumps({"type": "user_message", "id": "b", "text": "hello benchmark world"}).encode()
        frames = [masked_text_frame(msg) for _ in range(n)]
        conn.send({"ready": True})
        conn.recv()  # "go"
        cpu0 = cpu_seconds()
        t0 = time.monotonic()
        lat = []
        results = await asyncio.gather(
            *(session_loop(r, w, f, t0 + duration, lat) for (r, w), f in zip(sessions, frames)),
            return_exceptions=True,
        )
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds() - cpu0
        errors = [x for x in results if isinstance(x, BaseException)]
        turns = sum(x for x in results if not isinstance(x, BaseException))
        for r, w in sessions:
            w.close()
        lat.sort()
        conn.send(
            {
                "turns": turns,
                "elapsed": elapsed,
                "cpu": cpu,
                "errors": len(errors),
                "first_error": repr(errors[0]) if errors else None,
                "lat_sample": lat[:: max(1, len(lat) // 2000)],
            }
        )

    asyncio.run(run())


def split(total, parts):
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def machine_cpu():
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle, sum(v)


def proc_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# ------------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default=os.path.join(ROOT, "build", "trilemmad"))
    p.add_argument("--source", default=ROOT)
    p.add_argument("--sessions", type=int, default=10000, help="idle sessions (default 10000)")
    p.add_argument("--concurrency", type=int, default=1000, help="sessions running turns (default 1000)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of turns (default 10)")
    p.add_argument("--procs", type=int, default=2, help="client processes (default 2)")
    p.add_argument("--workers", type=int, default=0, help="server workers (default 0: one per CPU)")
    p.add_argument("--json", default=os.path.join(ROOT, "build", "bench_gateway.json"))
    a = p.parse_args()

    harness.Args.server = os.path.abspath(a.server)
    harness.Args.source = os.path.abspath(a.source)
    cores = os.cpu_count()
    config = {
        "server": {"max_connections": max(20000, a.sessions + 100), "max_connections_per_ip": max(20000, a.sessions + 100)},
        "websocket": {"ping_interval_ms": 600000, "idle_timeout_ms": 3600000},
        "session": {"echo_delay_ms": 0, "rate_messages": 1000000, "rate_window_ms": 1},
        "log": {"level": "warn"},
    }
    with open("/proc/loadavg") as f:
        load = float(f.read().split()[0])
    if load > 0.5:
        print("note: load average %.2f before the run: other work on this machine will skew the numbers" % load)
    srv = harness.Server(config=config, workers=a.workers or cores, name="bench")
    srv.start()
    result = {"loadavg_before": load, "cores": cores, "machine": platform.machine(), "kernel": platform.release(), "server_workers": a.workers or cores,
              "client_procs": a.procs}
    try:
        # --- 1. memory per idle session
        rss0 = srv.rss_kib()
        if a.sessions <= 0:
            a.sessions = 0
        pipes, procs = [], []
        t0 = time.monotonic()
        for share in split(a.sessions, a.procs) if a.sessions else []:
            parent, child = mp.Pipe()
            pr = mp.Process(target=idle_client, args=(srv.port, share, child, None), daemon=True)
            pr.start()
            pipes.append(parent)
            procs.append(pr)
        reports = [c.recv() for c in pipes]
        open_s = time.monotonic() - t0
        opened = sum(r["opened"] for r in reports)
        errors = sum(r["errors"] for r in reports)
        rss1 = srv.rss_kib()
        for c in pipes:
            c.send("close")
        for c in pipes:
            c.recv()
        for pr in procs:
            pr.join()
        result.update(
            idle_sessions=opened,
            idle_open_errors=errors,
            idle_first_error=next((r["first_error"] for r in reports if r["first_error"]), None),
            idle_open_seconds=round(open_s, 2),
            rss_before_kib=rss0,
            rss_idle_kib=rss1,
            kib_per_idle_session=round((rss1 - rss0) / opened, 2) if opened else None,
        )

        # --- 2. echo turns per second
        harness.wait_until(lambda: srv.rss_kib() > 0, "server alive")
        pipes, procs = [], []
        for share in split(a.concurrency, a.procs):
            parent, child = mp.Pipe()
            pr = mp.Process(target=turn_client, args=(srv.port, share, a.duration, child), daemon=True)
            pr.start()
            pipes.append(parent)
            procs.append(pr)
        for c in pipes:
            c.recv()  # ready
        scpu0 = proc_cpu_seconds(srv.proc.pid)
        mbusy0, mtotal0 = machine_cpu()
        for c in pipes:
            c.send("go")
        reports = [c.recv() for c in pipes]
        scpu = proc_cpu_seconds(srv.proc.pid) - scpu0
        mbusy1, mtotal1 = machine_cpu()
        machine_busy = (mbusy1 - mbusy0) / max(1, mtotal1 - mtotal0)
        for pr in procs:
            pr.join()
        elapsed = max(r["elapsed"] for r in reports)
        turns = sum(r["turns"] for r in reports)
        lat = sorted(x for r in reports for x in r["lat_sample"])
        client_cpu = [r["cpu"] / r["elapsed"] for r in reports]
        result.update(
            concurrency=a.concurrency,
            duration_s=round(elapsed, 2),
            turns=turns,
            turns_per_s=round(turns / elapsed, 1),
            turn_errors=sum(r["errors"] for r in reports),
            turn_first_error=next((r["first_error"] for r in reports if r["first_error"]), None),
            latency_ms_p50=round(1000 * lat[len(lat) // 2], 2) if lat else None,
            latency_ms_p99=round(1000 * lat[int(len(lat) * 0.99)], 2) if lat else None,
            server_cpu_cores=round(scpu / elapsed, 2),
            client_cpu_per_proc=[round(x, 2) for x in client_cpu],
            client_bound=any(x > 0.9 for x in client_cpu),
            machine_cpu_busy=round(machine_busy, 2),
        )
        # a few of the server's own counters, for the record
        m = harness.http_request(srv.port, "GET", "/metrics").body.decode()
        for name in ("trilemma_recv_buffer_exhausted_total", "trilemma_loop_iteration_seconds_count",
                     "trilemma_loop_iteration_seconds_sum"):
            vals = [float(l.rsplit(" ", 1)[1]) for l in m.splitlines() if l.startswith(name + " ") or l.startswith(name + "{")]
            result[name] = sum(vals) if vals else None
    finally:
        try:
            srv.stop()
        except AssertionError as e:
            print("note: %s" % str(e).splitlines()[0])
        srv.kill()
        srv.cleanup()

    rows = [
        ("machine cores", "%d" % cores),
        ("server workers", "%d" % result["server_workers"]),
        ("client processes", "%d" % a.procs),
        ("idle sessions opened", "%d (errors: %d)" % (result["idle_sessions"], result["idle_open_errors"])),
        ("server RSS before", "%.1f MiB" % (result["rss_before_kib"] / 1024)),
        ("server RSS with idle sessions", "%.1f MiB" % (result["rss_idle_kib"] / 1024)),
        ("memory per idle session", "%s KiB" % result["kib_per_idle_session"]),
        ("concurrent sessions running turns", "%d" % result["concurrency"]),
        ("echo turns per second", "%.0f (%d turns in %.1f s, errors: %d)" % (
            result["turns_per_s"], result["turns"], result["duration_s"], result["turn_errors"])),
        ("turn latency p50 / p99", "%s / %s ms" % (result["latency_ms_p50"], result["latency_ms_p99"])),
        ("server CPU during turns", "%.2f cores" % result["server_cpu_cores"]),
        ("client CPU per process", ", ".join("%.0f%%" % (100 * x) for x in result["client_cpu_per_proc"])),
        ("whole machine CPU busy during turns", "%.0f%% of %d cores (kernel loopback TCP included)" % (
            100 * result["machine_cpu_busy"], cores)),
    ]
    w = max(len(k) for k, _ in rows)
    print()
    print("| %-*s | %s" % (w, "trilemma gateway benchmark", "value"))
    print("|-%s-|-%s" % ("-" * w, "-" * 40))
    for k, v in rows:
        print("| %-*s | %s" % (w, k, v))
    if result["machine_cpu_busy"] > 0.9:
        print("\nnote: the machine's %d cores were %.0f%% busy during the turns: clients, server and the "
              "kernel's loopback TCP share them, so this is a floor for the server, not its ceiling."
              % (cores, 100 * result["machine_cpu_busy"]))
    if result["client_bound"]:
        print("\nnote: a client process ran at >90%% CPU: the Python clients, not the server, limited "
              "the turn rate (server used %.2f of %d cores). Use more --procs or a faster client "
              "(loadtest/) for the server's ceiling." % (result["server_cpu_cores"], cores))
    for k in ("idle_first_error", "turn_first_error"):
        if result.get(k):
            print("note: %s: %s" % (k, result[k]))
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(result, f, indent=2)
    print("\nJSON: %s" % a.json)


if __name__ == "__main__":
    mp.set_start_method("fork")
    main()
