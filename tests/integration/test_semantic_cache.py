"""test_semantic_cache.py - the semantic cache (issue 13 item 3) end to end: a real trilemmad with
the agents plan, trilemma-sim as the provider, the commerce API and the embeddings endpoint
(POST /v1/embeddings), and a private PostgreSQL when its binaries are there.

A paraphrase of an answered question is served from the cache (turn_end.cache "semantic", the
same text, no model call, no cost); a question that differs in a number, a product, a brand or a
negation is refused by the guard even though the threshold is set low enough to let its
similarity through (0.75 for the test, below every near-miss pair's similarity in the
simulator's embeddings, above that of the unrelated questions asked before: so it is the guard
that refuses, and the refusal counter and the log say which rule); an
embeddings endpoint that is down makes a miss, never an error; another process warms its index
from PostgreSQL; a new catalog version never reads the old entries.

Nothing depends on the catalog's data or the simulator's wording: answers are compared with the
answers of the same run.
"""

import os
import re

from harness import Args, Suite, http_request
from test_orchestrator import (PG_BIN, Cluster, Sim, open_session, orch_server, section,
                               shipped_agents, turn, write_agents)

suite = Suite("semantic_cache")


def agents(threshold):
    """The shipped agents with the rules as classifier (a hit then costs nothing at all), the
    policy route in the semantic cache only (not in the exact one, so every hit is semantic)."""
    secs = shipped_agents()
    section(secs, "classifier")["model"] = ""
    pol = section(secs, "route policy")
    pol["cacheable"] = "no"
    pol["cache_ttl_s"] = "3600"
    pol["semantic_threshold"] = str(threshold)
    return write_agents(secs)


def server(s, threshold=0.75, url=None, env=None, catalog="", name="semcache"):
    cfg = {"cache": {"embeddings_url": url or s.url() + "/v1/embeddings",
                     "embeddings_model": "sim-embed", "embeddings_timeout_ms": 5000,
                     "lookup_timeout_ms": 10000, "semantic_sync_ms": 100},
           "log": {"level": "debug"}}
    if catalog:
        cfg["cache"]["catalog_version"] = catalog
    return orch_server(s, agents=agents(threshold), extra_env=env, config=cfg, name=name)


def metric(srv, name, labels):
    text = http_request(srv.port, "GET", "/metrics").body.decode()
    m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else 0.0


def refusals(srv):
    return metric(srv, "trilemma_cache_guard_refusals_total", 'layer="semantic"')


async def ask(srv, text, mid="m1"):
    ws = await open_session(srv)
    t = await turn(ws, text, mid)
    await ws.close()
    t.check_stop()
    return t


def agent_calls(s, since):
    return [r for r in s.requests(since) if "classifier" not in r[1]]


@suite.test
async def test_paraphrase_hits_and_each_near_miss_class_is_refused():
    s = Sim()
    try:
        with server(s) as srv:
            first = await ask(srv, "what is your return policy")
            assert first.route["query_type"] == "policy", first.end
            assert first.end.get("cache") is None, first.end
            seq = s.requests_seq()
            hit = await ask(srv, "Tell me about the return policy")
            assert hit.end.get("cache") == "semantic", hit.end
            assert hit.text == first.text, (hit.text, first.text)
            assert hit.end["cost"]["micros"] == 0, hit.end
            assert agent_calls(s, seq) == [], "a hit called the model"
            # each class: the question is answered (and cached), then the near-miss is not served
            # from it: the guard refuses (its counter grows by one) and the model answers
            for a, b, cls in [
                    ("can I return a product after 7 days", "can I return a product after 30 days",
                     "number"),
                    ("can I return an item that is damaged",
                     "can I return an item that is not damaged", "negation"),
                    ("what is the warranty period for a Galaxy S23 phone bought online",
                     "what is the warranty period for a Galaxy S24 phone bought online", "name"),
                    ("what is the warranty period for Samsung phones bought online",
                     "what is the warranty period for Xiaomi phones bought online", "name"),
                    ("is there a refund if the delivery takes more than a week",
                     "is there a refund if the delivery takes less than a week", "comparator")]:
                t = await ask(srv, a)
                assert t.route["query_type"] == "policy", (a, t.end)
                assert t.end.get("cache") is None, (a, t.end)  # nothing this close cached yet
                before = refusals(srv)
                seq = s.requests_seq()
                t = await ask(srv, b)
                assert t.route["query_type"] == "policy", (b, t.end)
                assert t.end.get("cache") is None, (b, t.end)
                assert agent_calls(s, seq), "the near-miss was not answered by the model: " + b
                assert refusals(srv) == before + 1, (b, before, refusals(srv))
                assert "semantic cache: guard refused (%s" % cls in srv.stderr_text(), (b, cls)
            assert metric(srv, "trilemma_cache_hits_total", 'layer="semantic"') == 1
            assert metric(srv, "trilemma_cache_bytes", 'layer="semantic"') > 0
            # a paraphrase of a numbered question still hits (same number, other words)
            t = await ask(srv, "Can I return a product after 7 days?")
            assert t.end.get("cache") == "semantic", t.end
    finally:
        s.stop()


@suite.test
async def test_embeddings_down_is_a_miss_not_an_error():
    s = Sim()
    try:
        # a port nothing listens on: connection refused
        with server(s, url="http://127.0.0.1:9/v1/embeddings", name="semcache_down") as srv:
            for text in ("what is your return policy", "Tell me about the return policy"):
                t = await ask(srv, text)
                assert t.end.get("cache") is None and not t.errors, t.end
                assert t.end["finish_reason"] == "stop", t.end
        # an endpoint that answers 404 (the simulator's unknown path)
        with server(s, url=s.url() + "/v1/no-such-embeddings", name="semcache_404") as srv:
            for text in ("what is your return policy", "Tell me about the return policy"):
                t = await ask(srv, text)
                assert t.end.get("cache") is None and not t.errors, t.end
    finally:
        s.stop()


@suite.test
async def test_another_process_warms_from_postgresql_and_a_new_catalog_version_misses():
    if not os.access(os.path.join(PG_BIN, "initdb"), os.X_OK):
        print("  (PostgreSQL binaries not found in %s: this test checks nothing)" % PG_BIN)
        return
    s = Sim()
    db = Cluster()
    try:
        env = {"DATABASE_URL": db.url}
        with server(s, env=env, name="semcache_a") as srv:
            first = await ask(srv, "what is your return policy")
            assert first.end.get("cache") is None, first.end
        rows = db.psql("SELECT part, query, cardinality(embedding), answer FROM semantic_cache")
        assert len(rows) == 1 and rows[0][1] == "what is your return policy", rows
        assert rows[0][2] == "256" and rows[0][3] == first.text, rows
        # a new process: its index starts empty and warms from the table
        with server(s, env=env, name="semcache_b") as srv:
            t = await ask(srv, "how do returns work?")
            assert t.end.get("cache") == "semantic" and t.text == first.text, t.end
        # a new catalog version: the old answers are not read
        with server(s, env=env, catalog="2026-12-07", name="semcache_c") as srv:
            t = await ask(srv, "how do returns work?")
            assert t.end.get("cache") is None, t.end
    finally:
        db.stop()
        s.stop()


if __name__ == "__main__":
    suite.main()
