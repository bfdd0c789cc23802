#!/usr/bin/env python3
"""bench_cache.py - the cache layers' benchmark (issue 13; docs/caching.md). A benchmark, not a test.

Starts trilemma-sim (models and the commerce API), a private PostgreSQL cluster and trilemmad with
the shipped agents (config/agents.ini, config/tools.json), all on free loopback ports, and measures:

  1. First-token time of an exact-cache hit vs a miss: each policy question of the mix's list is
     asked on a fresh session (a miss: the model answers), then again in other words of the same
     meaning ("what's the ...", case, punctuation: an exact hit after normalization), then once
     more on a NEW server process with the same database (a hit from the shared PostgreSQL tier,
     the process's LRU empty). The simulator paces answers like a provider (--ttft-ms, --tps).
     The client's time from sending the message to the first delta, p50/p90.
  2. Cost per conversation with and without each layer: the same seeded mix of conversations
     (loadtest/bench/orch_mix.py, 1,000 by default) replayed against a fresh server (and an
     empty cache_entries table) per configuration: no cache; exact only; tool only; exact +
     tool; and any --config given (e.g. the semantic layer). The mix is run twice per
     configuration: "cold" (the caches start empty) and "warm" (the same conversations again on
     the same server: the steady state of a deployment that has seen the traffic before).
     Reported: cost per conversation (turn_end.cost, summed), the ledger's cache_saving lines
     per layer (hits, saved), model calls and tool requests that reached the API.

  /usr/bin/python3 loadtest/bench/bench_cache.py            # 1,000 conversations
  /usr/bin/python3 loadtest/bench/bench_cache.py --quick    # 200
      [--conversations N] [--concurrency 50] [--seed 11] [--ttft-ms 300] [--tps 40]
      [--config "NAME:section.key=value,..."]... [--md FILE] [--json FILE]
  the semantic layer (values may name "{sim}", this run's simulator):
      --config "semantic:exact=off,tool=off,embeddings_url={sim}/v1/embeddings,
                embeddings_model=sim-embed,lookup_timeout_ms=1000,embeddings_timeout_ms=1000"
"""

import argparse
import asyncio
import collections
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import orch_mix  # noqa: E402
from bench_orchestrator import start_sim, stop_proc  # noqa: E402
from bench_store import CLUSTER, psql  # noqa: E402

SEM = "{sim}/v1/embeddings"  # {sim}: the simulator's base URL (it serves embeddings)
CONFIGS = [
    ("no cache", {"exact": "off", "tool": "off"}),
    ("exact", {"exact": "on", "tool": "off"}),
    ("semantic", {"exact": "off", "tool": "off", "embeddings_url": SEM}),
    ("tool", {"exact": "off", "tool": "on"}),
    ("exact + semantic", {"exact": "on", "tool": "off", "embeddings_url": SEM}),
    ("all three", {"exact": "on", "tool": "on", "embeddings_url": SEM}),
]


def start_server(a, sim_port, db_url, cache):
    config = {
        "server": {"max_connections": 100000, "max_connections_per_ip": 100000},
        "websocket": {"ping_interval_ms": 600000, "idle_timeout_ms": 3600000},
        "session": {"rate_messages": 1000, "rate_window_ms": 1000},
        "orchestrator": {"agents_file": a.agents_file},
        "tools": {"tools_file": a.tools_file},
        "log": {"level": "warn"},
    }
    for key, value in cache.items():
        section, _, name = key.rpartition(".")
        # "{sim}": this run's simulator (e.g. its embeddings endpoint for the semantic layer)
        value = value.replace("{sim}", "http://127.0.0.1:%d" % sim_port)
        config.setdefault(section or "cache", {})[name] = value
    config.setdefault("cache", {}).setdefault("words_file",
                                              os.path.join(ROOT, "config", "cache_words.json"))
    env = {"DATABASE_URL": db_url, "OPENAI_BASE_URL": "http://127.0.0.1:%d/v1" % sim_port,
           "TRILEMMA_MODEL": "openai/sim-frontier",
           "TRILEMMA_CATALOG_URL": "http://127.0.0.1:%d" % sim_port}
    srv = harness.Server(config=config, env=env, workers=a.workers, name="bench-cache")
    srv.start()
    return srv


# ------------------------------------------------------------------------------------------
# a client


async def one_turn(ws, cid, text, timeout):
    rec = {"text": text}
    t0 = time.monotonic()
    await ws.send(json.dumps({"type": "user_message", "id": cid, "text": text}))
    parts = []
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        typ = msg.get("type")
        if typ == "turn_start":
            rec["turn_id"] = msg["turn_id"]
        elif typ == "delta":
            if not parts:
                rec["first_ms"] = 1000 * (time.monotonic() - t0)
            parts.append(msg["text"])
        elif typ == "error" and not msg.get("turn_id"):
            rec["error"] = msg.get("code")
            return rec
        elif typ == "turn_end":
            rec.update(finish=msg.get("finish_reason"), cache=msg.get("cache"),
                       cost=(msg.get("cost") or {}).get("micros", 0),
                       route=(msg.get("route") or {}).get("query_type"), answer="".join(parts),
                       deltas=len(parts))
            return rec


async def ask(port, text, timeout):
    async with websockets.connect("ws://127.0.0.1:%d/ws" % port, ping_interval=None,
                                  max_size=1 << 22) as ws:
        json.loads(await asyncio.wait_for(ws.recv(), timeout))
        return await one_turn(ws, "m1", text, timeout)


async def conversation(port, conv, sem, out, timeout):
    async with sem:
        recs = []
        try:
            async with websockets.connect("ws://127.0.0.1:%d/ws" % port, ping_interval=None,
                                          max_size=1 << 22) as ws:
                json.loads(await asyncio.wait_for(ws.recv(), timeout))
                for k, (label, text) in enumerate(conv["turns"]):
                    rec = await one_turn(ws, "c%d-%d" % (conv["i"], k), text, timeout)
                    rec["label"] = label
                    recs.append(rec)
        except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as e:
            recs.append({"error": "client: %s" % type(e).__name__})
        out.append({"i": conv["i"], "turns": recs})


async def run_mix(port, mix, concurrency, timeout):
    sem = asyncio.Semaphore(concurrency)
    out = []
    t0 = time.monotonic()
    await asyncio.gather(*(conversation(port, c, sem, out, timeout) for c in mix))
    return sorted(out, key=lambda c: c["i"]), time.monotonic() - t0


# ------------------------------------------------------------------------------------------
# 1. first token: hit vs miss


def paraphrase(q):
    """The same question in other words of the same meaning to the normalizer."""
    q = q.replace("What is", "what's").replace("How do", "how do")
    return "  " + q.upper().rstrip("?") + " ??"


def first_token(a, sim_port, db_url, pgdir):
    """--rounds rounds, each on an empty cache: every policy question once (a miss), in other
    words (an LRU hit), then on a new process (a hit from PostgreSQL)."""
    qs = orch_mix.POLICY_QUESTIONS
    res = {"miss": [], "hit_lru": [], "hit_shared": [], "hit_semantic": [], "same_text": 0}
    for _ in range(a.rounds):
        srv = start_server(a, sim_port, db_url, {"exact": "on", "tool": "on"})
        psql(pgdir, "TRUNCATE cache_entries, semantic_cache")  # the server migrated the schema
        try:
            for q in qs:
                m = asyncio.run(ask(srv.port, q, a.turn_timeout))
                h = asyncio.run(ask(srv.port, paraphrase(q), a.turn_timeout))
                if m.get("cache") is None and h.get("cache") == "exact" and "first_ms" in h:
                    res["miss"].append(m["first_ms"])
                    res["hit_lru"].append(h["first_ms"])
                    res["same_text"] += m["answer"] == h["answer"]
        finally:
            srv.stop()
        srv = start_server(a, sim_port, db_url, {"exact": "on", "tool": "on"})
        try:
            for q in qs:
                h = asyncio.run(ask(srv.port, q, a.turn_timeout))
                if h.get("cache") == "exact" and "first_ms" in h:
                    res["hit_shared"].append(h["first_ms"])
        finally:
            srv.stop()
        # the semantic layer alone (exact off): the question, then the same in other words
        srv = start_server(a, sim_port, db_url, {"exact": "off", "tool": "on",
                                                 "embeddings_url": SEM})
        psql(pgdir, "TRUNCATE semantic_cache")
        try:
            for q in qs:
                asyncio.run(ask(srv.port, q, a.turn_timeout))
                h = asyncio.run(ask(srv.port, paraphrase(q), a.turn_timeout))
                if h.get("cache") == "semantic" and "first_ms" in h:
                    res["hit_semantic"].append(h["first_ms"])
        finally:
            srv.stop()
    return res


# ------------------------------------------------------------------------------------------
# 2. cost per conversation per configuration


def ledger_savings(pgdir, turn_ids):
    if not turn_ids:
        return {}
    ids = ",".join("'%s'" % t for t in turn_ids if re.fullmatch(r"[0-9a-f]{32}", t))
    out = {}
    for line in psql(pgdir, "SELECT cache_layer, count(*), -sum(amount_micros) FROM ledger "
                            "WHERE kind = 'cache_saving' AND turn_id IN (%s) GROUP BY 1" % ids
                     ).splitlines():
        layer, n, saved = line.split("|")
        out[layer] = {"hits": int(n), "saved_micros": int(saved)}
    return out


def stored_counts(pgdir, turn_ids):
    ids = ",".join("'%s'" % t for t in turn_ids if re.fullmatch(r"[0-9a-f]{32}", t))
    if not ids:
        return 0, 0, 0
    calls = psql(pgdir, "SELECT count(*) FROM llm_calls WHERE role <> 'classifier' AND turn_id "
                        "IN (%s)" % ids)
    tools = psql(pgdir, "SELECT count(*), count(*) FILTER (WHERE NOT cache_hit) FROM tool_calls "
                        "WHERE turn_id IN (%s)" % ids)
    t, sent = tools.split("|")
    return int(calls), int(t), int(sent)


def summarize(convs, pgdir, seconds):
    turns = [t for c in convs for t in c["turns"]]
    ids = [t["turn_id"] for t in turns if t.get("turn_id")]
    cost = [sum(t.get("cost", 0) for t in c["turns"]) for c in convs]
    calls, tools, sent = stored_counts(pgdir, ids)
    by_cache = collections.Counter(t.get("cache") or "-" for t in turns)
    return {
        "conversations": len(convs), "turns": len(turns), "seconds": round(seconds, 1),
        "errors": sum(1 for t in turns if t.get("error") or t.get("finish") not in
                      ("stop", "length")),
        "cost_per_conv_micros": round(sum(cost) / max(1, len(cost))),
        "cost_total_micros": sum(cost), "answered_by": dict(by_cache),
        "agent_calls": calls, "tool_calls": tools, "tool_requests": sent,
        "savings": ledger_savings(pgdir, ids),
    }


def cost_runs(a, db_url, pgdir, mix, tmp):
    """A fresh simulator per configuration: its provider prompt cache (cached input tokens are
    cheaper) starts cold for each, as the answer and tool caches do."""
    results = []
    for k, (name, cache) in enumerate(CONFIGS + a.config):
        sim, sim_port = start_sim(a, os.path.join(tmp, "sim-%d.log" % k))
        srv = start_server(a, sim_port, db_url, cache)
        psql(pgdir, "TRUNCATE cache_entries, semantic_cache")
        try:
            row = {"config": name, "cache": cache}
            for phase in ("cold", "warm"):
                convs, secs = asyncio.run(run_mix(srv.port, mix, a.concurrency, a.turn_timeout))
                row[phase] = summarize(convs, pgdir, secs)
                print("  %-14s %-4s %s" % (name, phase, json.dumps(row[phase])), flush=True)
        finally:
            srv.stop()
            stop_proc(sim)
        results.append(row)
    return results


# ------------------------------------------------------------------------------------------
# the report


def pct(v, q):
    if not v:
        return float("nan")
    s = sorted(v)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def render(r):
    a = r["args"]
    ft = r["first_token"]
    out = ["## Cache layers (bench_cache.py)\n",
           "%d conversations (orch_mix seed %d), concurrency %d; simulator TTFT %d ms, %d "
           "tokens/s; %d workers; %d cores, load %.2f before.\n" % (
               a["conversations"], a["seed"], a["concurrency"], a["ttft_ms"], a["tps"],
               a["workers"], r["cores"], r["loadavg_before"])]
    out.append("### First token: exact hit vs miss (client-measured, ms)\n")
    out.append("| | n | p50 | p90 | mean |\n|---|---|---|---|---|")
    for k, label in (("miss", "miss (the model answers)"),
                     ("hit_lru", "exact hit, worker LRU"),
                     ("hit_shared", "exact hit, PostgreSQL tier (new process)"),
                     ("hit_semantic", "semantic hit (exact off; a paraphrase)")):
        v = ft[k]
        out.append("| %s | %d | %.1f | %.1f | %.1f |" % (label, len(v), pct(v, .5), pct(v, .9),
                                                          statistics.mean(v) if v else 0))
    out.append("\nHits streamed the same text as the miss: %d of %d.\n" % (
        ft["same_text"], len(ft["hit_lru"])))
    out.append("### Cost per conversation with and without each layer\n")
    out.append("| config | pass | cost/conv (µ) | vs no cache | answered by cache | agent calls "
               "| tool calls → requests | savings on the ledger (hits, µ) | errors |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    base = {p: r["cost"][0][p]["cost_per_conv_micros"] for p in ("cold", "warm")}
    for row in r["cost"]:
        for p in ("cold", "warm"):
            s = row[p]
            by = {k: v for k, v in s["answered_by"].items() if k != "-"}
            sv = ", ".join("%s %d / %d" % (k, v["hits"], v["saved_micros"])
                           for k, v in sorted(s["savings"].items())) or "-"
            out.append("| %s | %s | %d | %+.1f %% | %s | %d | %d → %d | %s | %d |" % (
                row["config"], p, s["cost_per_conv_micros"],
                100.0 * (s["cost_per_conv_micros"] - base[p]) / max(1, base[p]),
                ", ".join("%s %d" % kv for kv in sorted(by.items())) or "-",
                s["agent_calls"], s["tool_calls"], s["tool_requests"], sv, s["errors"]))
    return "\n".join(out) + "\n"


def parse_config(text):
    name, _, rest = text.partition(":")
    kv = {}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        kv[k.strip().replace("cache.", "", 1) if k.startswith("cache.") else k.strip()] = v.strip()
    return (name, kv)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default=os.path.join(ROOT, "build", "trilemmad"))
    p.add_argument("--sim", default=os.path.join(ROOT, "build", "trilemma-sim"))
    p.add_argument("--agents-file", default=os.path.join(ROOT, "config", "agents.ini"))
    p.add_argument("--tools-file", default=os.path.join(ROOT, "config", "tools.json"))
    p.add_argument("--catalog", default=orch_mix.default_catalog(ROOT))
    p.add_argument("--quick", action="store_true", help="200 conversations")
    p.add_argument("--conversations", type=int)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--ttft-ms", type=int, default=300, help="sim time to first token (ms)")
    p.add_argument("--tps", type=int, default=40, help="sim tokens per second per stream")
    p.add_argument("--mix-ttft-ms", type=int, default=30,
                   help="sim TTFT for the cost runs (cost does not depend on it)")
    p.add_argument("--mix-tps", type=int, default=400)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="first-token rounds (default 3)")
    p.add_argument("--turn-timeout", type=float, default=60.0)
    p.add_argument("--config", action="append", default=[], type=parse_config,
                   help="one more configuration, NAME:key=value,... ([cache] keys, or "
                        "section.key=value)")
    p.add_argument("--json", default=os.path.join(ROOT, "build", "bench_cache.json"))
    p.add_argument("--md", default=os.path.join(ROOT, "build", "bench_cache.md"))
    a = p.parse_args()
    if a.conversations is None:
        a.conversations = 200 if a.quick else 1000
    harness.Args.server = os.path.abspath(a.server)
    harness.Args.source = ROOT
    with open("/proc/loadavg") as f:
        load = float(f.read().split()[0])
    mix = orch_mix.build_mix(random.Random(a.seed), a.conversations, a.catalog)
    result = {"args": {k: v for k, v in vars(a).items() if k != "config"}, "cores": os.cpu_count(),
              "loadavg_before": load, "mix": dict(collections.Counter(c["kind"] for c in mix))}
    tmp = tempfile.mkdtemp(prefix="trilemma-bench-cache-")
    pgdir = tempfile.mkdtemp(prefix="trilemma-bench-cache-pg-")
    r = subprocess.run([CLUSTER, "start", pgdir], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("pg_cluster.sh start failed:\n%s" % r.stderr)
    url = r.stdout.strip().splitlines()[-1]
    sim = None
    try:
        a.sim_arg, a.catalog_scale = [], 1.0
        sim, sim_port = start_sim(a, os.path.join(tmp, "sim.log"))
        print("first token: hit vs miss", flush=True)
        result["first_token"] = first_token(a, sim_port, url, pgdir)
        stop_proc(sim)
        sim = None
        a.ttft_ms, a.tps = a.mix_ttft_ms, a.mix_tps
        print("cost per conversation", flush=True)
        result["cost"] = cost_runs(a, url, pgdir, mix, tmp)
        a.ttft_ms, a.tps = result["args"]["ttft_ms"], result["args"]["tps"]
    finally:
        stop_proc(sim)
        subprocess.run([CLUSTER, "stop", pgdir], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    text = render(result)
    print()
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(a.md)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(result, f, indent=1, default=str)
    with open(a.md, "w") as f:
        f.write(text)
    print("JSON: %s\nMarkdown: %s" % (a.json, a.md))


if __name__ == "__main__":
    main()
