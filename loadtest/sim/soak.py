#!/usr/bin/env python3
"""soak.py - a quick load check of trilemma-sim (not a test): many concurrent streams at once.

    python3 loadtest/sim/soak.py --sim build/trilemma-sim --streams 5000 --tps 10 --tokens 100
    python3 loadtest/sim/soak.py --port 8090 --pid 1234 --streams 1000      # a running sim

Opens --streams connections at the same time (spread over --procs client processes, each an
asyncio loop on plain sockets), sends one streamed request on each (OpenAI, Anthropic or Gemini
format, or a mix), reads every answer to its end, and reports:
  - streams completed / failed (stalled: no byte for --read-timeout s), content tokens received, wall time, tokens/s overall;
  - the simulator's CPU seconds (user + system, from /proc/PID/stat) during the run, per
    million tokens, and its share of one core;
  - the simulator's own counters (/metrics) for comparison.
The sim is started with one worker unless --workers says otherwise, so "share of one core" is
the figure that says whether the simulator could be the bottleneck of a load test.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time

TOKEN_MARKERS = {
    "openai": b'"delta":{"content"',
    "anthropic": b'"type":"text_delta"',
    "gemini": b'"parts":[{"text"',
}


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def request_bytes(fmt, i, tps, tokens):
    text = "[[sim:tps=%g]] [[sim:tokens=%d]] soak stream %d" % (tps, tokens, i)
    msgs = [{"role": "user", "content": text}]
    if fmt == "openai":
        path, body, extra = "/v1/chat/completions", {
            "model": "gpt-4.1-mini", "stream": True, "messages": msgs,
            "stream_options": {"include_usage": True}}, ""
    elif fmt == "anthropic":
        path, body, extra = "/v1/messages", {
            "model": "claude-sonnet-4-5", "max_tokens": 4096, "stream": True,
            "messages": msgs}, "anthropic-version: 2023-06-01\r\n"
    else:
        path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        body, extra = {"contents": [{"role": "user", "parts": [{"text": text}]}]}, ""
    data = json.dumps(body).encode()
    head = ("POST %s HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n%s\r\n" % (path, len(data), extra)).encode()
    return head + data


async def connect(port, stats):
    try:
        return await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        stats["connect_failed"] += 1
        return None


async def one_stream(conn, fmt, i, args, stats):
    """Send one request on an open connection and read its answer to the last chunk."""
    reader, writer = conn
    marker = TOKEN_MARKERS[fmt]
    writer.write(request_bytes(fmt, i, args.tps, args.tokens))
    tokens, tail, status_ok, ended = 0, b"", None, False
    try:
        while True:
            data = await asyncio.wait_for(reader.read(65536), args.read_timeout)
            if not data:
                break
            if status_ok is None:
                status_ok = data.startswith(b"HTTP/1.1 200 ")
                if not status_ok:  # 429 or an injected error: a whole response, no stream
                    stats["http_errors"] += 1
                    break
            buf = tail + data
            tokens += buf.count(marker) - tail.count(marker)
            tail = buf[-64:]
            if buf.endswith(b"\r\n0\r\n\r\n"):
                ended = True
                break
    except asyncio.TimeoutError:
        stats["stalled"] += 1
    except (ConnectionError, OSError):
        pass
    stats["tokens"] += tokens
    ok = status_ok and ended and tokens >= args.tokens
    stats["streams_ok" if ok else "streams_failed"] += 1
    writer.close()


async def client_main(port, fmts, first, count, args, ready, go, out):
    """Connect everything first, then (when the parent says go) send every request at once."""
    stats = {"tokens": 0, "streams_ok": 0, "streams_failed": 0, "connect_failed": 0,
             "stalled": 0, "http_errors": 0}
    conns = await asyncio.gather(*[connect(port, stats) for _ in range(count)])
    ready.set()
    while not go.is_set():
        await asyncio.sleep(0.01)
    await asyncio.gather(*[one_stream(c, fmts[(first + k) % len(fmts)], first + k, args, stats)
                           for k, c in enumerate(conns) if c])
    out.put(stats)


def client_proc(port, fmts, first, count, args, ready, go, out):
    raise_nofile()
    asyncio.run(client_main(port, fmts, first, count, args, ready, go, out))


def cpu_seconds(pid):
    """(user, system) CPU seconds of process pid."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck


def metrics(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return {m.group(1).decode(): int(m.group(2))
            for m in re.finditer(rb"^trilemma_sim_(\w+(?:\{[^}]*\})?) (\d+)$", data, re.M)}


def start_sim(args):
    cmd = [args.sim, "--listen", "127.0.0.1:0", "--workers", str(args.workers),
           "--ttft-ms", str(args.ttft_ms), "--ttft-jitter-ms", str(args.ttft_ms // 2)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    line = proc.stderr.readline().decode()
    m = re.search(r":(\d+)/$", line.strip())
    if not m:
        sys.exit("sim did not start: " + line)
    return proc, int(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sim", help="path of trilemma-sim to start (one worker by default)")
    ap.add_argument("--port", type=int, help="a running sim's port (with --pid for CPU time)")
    ap.add_argument("--pid", type=int)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--streams", type=int, default=2000)
    ap.add_argument("--tps", type=float, default=20)
    ap.add_argument("--tokens", type=int, default=100)
    ap.add_argument("--ttft-ms", type=int, default=300)
    ap.add_argument("--format", default="openai", help="openai, anthropic, gemini or mix")
    ap.add_argument("--read-timeout", type=float, default=30,
                    help="seconds without bytes before a stream counts as stalled")
    ap.add_argument("--procs", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    args = ap.parse_args()
    raise_nofile()
    proc = None
    if args.sim:
        proc, port = start_sim(args)
        pid = proc.pid
    else:
        port, pid = args.port, args.pid
    fmts = ["openai", "anthropic", "gemini"] if args.format == "mix" else [args.format]
    try:
        run(args, port, pid, fmts)
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def run(args, port, pid, fmts):
    ctx = multiprocessing.get_context("fork")
    out, go = ctx.Queue(), ctx.Event()
    per = [args.streams // args.procs + (1 if i < args.streams % args.procs else 0)
           for i in range(args.procs)]
    readies, procs, first = [], [], 0
    for n in per:
        ready = ctx.Event()
        p = ctx.Process(target=client_proc, args=(port, fmts, first, n, args, ready, go, out))
        p.start()
        readies.append(ready)
        procs.append(p)
        first += n
    for r in readies:
        r.wait()
    m0, cpu0, t0 = metrics(port), cpu_seconds(pid) if pid else (0, 0), time.monotonic()
    go.set()
    total = {"tokens": 0, "streams_ok": 0, "streams_failed": 0, "connect_failed": 0,
             "stalled": 0, "http_errors": 0}
    for _ in procs:
        for k, v in out.get().items():
            total[k] += v
    wall, cpu1, m1 = time.monotonic() - t0, cpu_seconds(pid) if pid else (0, 0), metrics(port)
    for p in procs:
        p.join()
    report(args, fmts, total, wall, (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]), m0, m1)


def report(args, fmts, total, wall, cpu, m0, m1):
    toks = total["tokens"]
    sim_toks = m1.get("tokens_total", 0) - m0.get("tokens_total", 0)
    print("streams: %d at once (%s), %g tokens/s each, %d tokens each, %d client processes"
          % (args.streams, "+".join(fmts), args.tps, args.tokens, args.procs))
    print("completed: %d   failed: %d (HTTP errors %d, stalled %d)   connect failed: %d"
          % (total["streams_ok"], total["streams_failed"], total["http_errors"],
             total["stalled"], total["connect_failed"]))
    print("tokens received: %d (sim counted %d) in %.2f s wall = %.0f tokens/s"
          % (toks, sim_toks, wall, toks / wall if wall else 0))
    user, sys_ = cpu
    if user + sys_:
        print("sim CPU: %.2f s user + %.2f s system = %.1f%% of one core; "
              "%.2f CPU s per million tokens"
              % (user, sys_, 100 * (user + sys_) / wall, 1e6 * (user + sys_) / max(sim_toks, 1)))
    print("sim refused (429): %d" % (m1.get("refused_total", 0) - m0.get("refused_total", 0)))


if __name__ == "__main__":
    main()
