#!/usr/bin/env python3
"""bench_semcache_ttft.py - time to first token of a turn answered by the model (a miss), by the
exact response cache and by the semantic cache (docs/caching.md). A benchmark, not a test.

Starts trilemma-sim (models, commerce API, embeddings; --ttft-ms as given) and trilemmad with the
shipped agents (the rules as classifier, so that a hit makes no model call at all; the policy
route cacheable and in the semantic cache), all on free loopback ports, no PostgreSQL. Then, for
N distinct policy questions: the question (a miss: the model answers and both caches keep it),
the same question again (an exact hit) and a paraphrase (a semantic hit: an embeddings call,
the index search and the guard). First token = turn_end.latency_ms.first_token (server side,
from the message's arrival to the first delta). Prints p50/p90/max per kind as Markdown.

  /usr/bin/python3 loadtest/bench/bench_semcache_ttft.py [--n 40] [--ttft-ms 300]
      [--server build/trilemmad] [--sim build/trilemma-sim]
"""

import argparse
import asyncio
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402

# policy questions and a paraphrase of each; numbers keep each question its own entry
TOPICS = [("what is the %s policy for a purchase of {n} rupees" % t,
           "explain the %s policy for a purchase of {n} rupees" % t)
          for t in ("warranty", "return", "refund", "exchange")]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def one(srv, text):
    import websockets
    async with websockets.connect(srv.ws_url(), max_size=None) as ws:
        json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "user_message", "id": "m", "text": text}))
        while True:
            m = json.loads(await ws.recv())
            if m["type"] == "turn_end":
                return m


async def run(a):
    from test_orchestrator import Sim, orch_server, section, shipped_agents, write_agents
    s = Sim("--ttft-ms", str(a.ttft_ms), "--ttft-jitter-ms", "0", "--tps", "40")
    secs = shipped_agents()
    section(secs, "classifier")["model"] = ""
    pol = section(secs, "route policy")
    pol.update({"cacheable": "yes", "cache_ttl_s": "3600", "semantic_threshold": "0.9"})
    cfg = {"cache": {"embeddings_url": s.url() + "/v1/embeddings",
                     "embeddings_model": "sim-embed", "lookup_timeout_ms": 1000,
                     "embeddings_timeout_ms": 1000}}
    kinds = {"miss": [], "exact": [], "semantic": []}
    try:
        with orch_server(s, agents=write_agents(secs), config=cfg, name="bench") as srv:
            for i in range(a.n):
                q, p = TOPICS[i % len(TOPICS)]
                n = 100 + i
                for kind, text in (("miss", q), ("exact", q), ("semantic", p)):
                    end = await one(srv, text.format(n=n))
                    got = end.get("cache") or "miss"
                    if got != kind:
                        print("  (%s expected, %s got: %s)" % (kind, got, text.format(n=n)))
                        continue
                    kinds[kind].append(end["latency_ms"]["first_token"])
    finally:
        s.stop()
    print("| turn | n | first token p50 ms | p90 ms | max ms |\n|---|---|---|---|---|")
    for k, xs in kinds.items():
        if xs:
            print("| %s | %d | %d | %d | %d |" % (k, len(xs), pct(xs, 50), pct(xs, 90), max(xs)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--ttft-ms", type=int, default=300)
    ap.add_argument("--server", default=os.path.join(ROOT, "build", "trilemmad"))
    ap.add_argument("--sim", default=os.path.join(ROOT, "build", "trilemma-sim"))
    a = ap.parse_args()
    harness.Args.server = os.path.abspath(a.server)
    harness.Args.source = ROOT
    os.environ["TRILEMMA_SIM"] = os.path.abspath(a.sim)
    asyncio.run(run(a))


if __name__ == "__main__":
    main()
