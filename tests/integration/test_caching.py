"""test_caching.py - the cache layers end to end (docs/caching.md): a real trilemmad with the
agents plan, trilemma-sim as provider and commerce API, and (where the shared tier or the ledger
is checked) a private PostgreSQL.

What is asserted comes from the server's events (delta, turn_end with its cost and "cache"), the
simulator's own records (the model request-body log: was the answering model called; the catalog's
request log: how many requests reached the API), the stored rows and the read API. Nothing depends
on the catalog's data or the simulator's wording. No sleep stands in for synchronisation.
"""

import asyncio
import json
import os
import re
import select
import time

from harness import Args, Suite, http_request, wait_until
from test_orchestrator import (PG_BIN, Cluster, Sim, agent_requests, open_session, orch_server,
                               section, shipped_agents, turn, write_agents)

suite = Suite("caching")
SIMS = {}
ADMIN = "test-admin-token-caching"


def sim(key="default", *args):
    if key not in SIMS:
        SIMS[key] = Sim(*args)
    return SIMS[key]


@suite.on_teardown
def stop_sims():
    for s in SIMS.values():
        s.stop()


def words():
    return os.path.join(Args.source, "config", "cache_words.json")


def rules_only(secs=None, prompt_suffix=None):
    """The shipped agents with no classifier model (the rules classify: a cache hit then costs
    exactly nothing) and, optionally, the specialist's prompt changed (a new prompt version)."""
    secs = secs or shipped_agents()
    section(secs, "classifier")["model"] = ""
    if prompt_suffix:
        spec = section(secs, "agent specialist")
        text = open(spec["prompt"]).read() + prompt_suffix
        path = os.path.join(os.path.dirname(write_agents([])), "specialist.md")
        with open(path, "w") as f:
            f.write(text)
        spec["prompt"] = path
    return write_agents(secs)


def cache_server(s, agents=None, db=None, cache=None, name="caching"):
    env = {"TRILEMMA_ADMIN_TOKEN": ADMIN}
    if db:
        env["DATABASE_URL"] = db.url
    cfg = {"cache": {"words_file": words()}}
    cfg["cache"].update(cache or {})
    return orch_server(s, agents=agents, extra_env=env, config=cfg, name=name)


async def ask(srv, text, mid="m1"):
    ws = await open_session(srv)
    t = await turn(ws, text, mid)
    await ws.close()
    return t


def has_pg():
    if not os.access(os.path.join(PG_BIN, "initdb"), os.X_OK):
        print("  (PostgreSQL binaries not found in %s: this test checks nothing)" % PG_BIN)
        return False
    return True


# --------------------------------------------------------------------------------------------
# the exact response cache


@suite.test
async def test_exact_hit_streams_the_same_answer_and_costs_nothing():
    s = sim()
    with cache_server(s, agents=rules_only()) as srv:
        first = await ask(srv, "What is your return policy?")
        first.check_stop()
        assert first.route["query_type"] == "policy", first.route
        assert first.end["cache"] is None, first.end
        assert first.end["cost"]["micros"] > 0, first.end
        seq = s.requests_seq()
        # the same question in other words of the same meaning (case, punctuation, spacing, a
        # contraction, a filler): one normalized key
        again = await ask(srv, "  please, WHAT'S your   return policy??")
        again.check_stop()
        assert again.end["cache"] == "exact", again.end
        assert again.text == first.text, (again.text, first.text)
        assert again.end["cost"]["micros"] == 0, again.end
        assert again.end["usage"]["input_tokens"] == 0, again.end
        assert agent_requests(s.requests(seq)) == [], "the answering model was called"
        # streamed like an answer: several deltas, in order, none of them the whole text
        assert len(again.deltas) > 1 and max(len(d["text"]) for d in again.deltas) < len(
            again.text), [d["text"] for d in again.deltas]
        assert [d["seq"] for d in again.deltas] == list(range(1, len(again.deltas) + 1))
        # a different question is a miss, and an uncacheable route never asks
        other = await ask(srv, "What is your warranty policy?")
        assert other.end["cache"] is None
        search = await ask(srv, "show me phones under 20000")
        assert search.end["cache"] is None and search.route["query_type"] == "product_search"
        search2 = await ask(srv, "show me phones under 20000")
        assert search2.end["cache"] is None
        m = http_request(srv.port, "GET", "/metrics").body.decode()
        assert 'trilemma_cache_hits_total{layer="exact"} 1' in m, m
        assert 'trilemma_cache_misses_total{layer="exact"} 2' in m, m
        assert 'trilemma_cache_bytes{layer="exact"} ' in m and \
            'trilemma_cache_bytes{layer="exact"} 0\n' not in m, m


@suite.test
async def test_exact_cache_with_the_classifier_saves_the_answer_only():
    """With a classifier model the turn still pays for the classification (it decides the route
    the key needs); the answering model is not called."""
    s = sim()
    with cache_server(s) as srv:
        first = await ask(srv, "what is the return policy")
        first.check_stop()
        seq = s.requests_seq()
        again = await ask(srv, "What is the return policy?")
        assert again.end["cache"] == "exact" and again.text == first.text, again.end
        reqs = s.requests(seq)
        assert agent_requests(reqs) == [] and len(reqs) == 1, [r[1] for r in reqs]
        assert 0 < again.end["cost"]["micros"] < first.end["cost"]["micros"], again.end


@suite.test
async def test_errors_and_cut_answers_are_not_cached():
    s = sim()
    secs = shipped_agents()
    section(secs, "route policy")["max_tokens"] = "5"  # every policy answer is cut: "length"
    with cache_server(s, agents=rules_only(secs)) as srv:
        cut = await ask(srv, "What is your return policy?")
        assert cut.end["finish_reason"] == "length", cut.end
        again = await ask(srv, "What is your return policy?")
        assert again.end["cache"] is None and again.end["finish_reason"] == "length", again.end
    bad = sim("failing_models", "--error-rate", "1")
    with cache_server(bad, agents=rules_only()) as srv:
        for _ in range(2):
            t = await ask(srv, "What is your return policy?")
            assert t.end["finish_reason"] == "error" and t.end["cache"] is None, t.end


@suite.test
async def test_flagged_answers_are_not_cached():
    """An answer a check flagged (here: a price no tool result has, ungrounded_number) is never
    stored; the same question answered cleanly is (the route made cacheable for the test)."""
    s = sim()
    secs = shipped_agents()
    section(secs, "route product_search").update({"cacheable": "yes", "cache_ttl_s": "600"})
    with cache_server(s, agents=rules_only(secs)) as srv:
        bad = "Show me phones under 20000 [[sim:mistake=wrong_number]]"
        for _ in range(2):
            t = await ask(srv, bad)
            assert t.flags == ["ungrounded_number"] and t.end["cache"] is None, t.end
        good = "Show me phones under 20000"
        first = await ask(srv, good)
        assert not first.flags and first.end["cache"] is None, first.end
        again = await ask(srv, good)
        assert again.end["cache"] == "exact" and again.text == first.text, again.end


@suite.test
async def test_shared_tier_serves_other_processes_and_a_new_prompt_version_misses():
    if not has_pg():
        return
    db = Cluster()
    try:
        s = sim()
        agents = rules_only()
        with cache_server(s, agents=agents, db=db, name="writer") as srv:
            first = await ask(srv, "What is your return policy?")
            first.check_stop()
            assert first.end["cache"] is None
        rows = db.psql("SELECT layer, cost_micros, expires_at > now() + interval '23 hours' "
                       "FROM cache_entries")
        assert rows == [["exact", str(first.end["cost"]["micros"]), "t"]], rows
        # another process (an empty LRU) finds the answer in PostgreSQL
        with cache_server(s, agents=agents, db=db, name="reader") as srv:
            seq = s.requests_seq()
            t = await ask(srv, "what is your return policy")
            assert t.end["cache"] == "exact" and t.text == first.text, t.end
            assert agent_requests(s.requests(seq)) == []
        # the same question to a new prompt version: a miss, and a new entry
        with cache_server(s, agents=rules_only(prompt_suffix="\nBe brief.\n"), db=db,
                          name="new_prompt") as srv:
            seq = s.requests_seq()
            t = await ask(srv, "What is your return policy?")
            assert t.end["cache"] is None, t.end
            assert agent_requests(s.requests(seq)) != []
        assert db.psql("SELECT count(*) FROM cache_entries WHERE layer = 'exact'") == [["2"]]
        # an expired row is never served, and the next write purges it
        db.psql("UPDATE cache_entries SET expires_at = now() - interval '1 second'")
        with cache_server(s, agents=agents, db=db, name="expired") as srv:
            t = await ask(srv, "What is your return policy?")
            assert t.end["cache"] is None, t.end
        left = db.psql("SELECT count(*) FROM cache_entries WHERE expires_at <= now()")
        assert left == [["0"]], left
    finally:
        db.stop()


@suite.test
async def test_savings_on_the_ledger_and_in_costs():
    if not has_pg():
        return
    db = Cluster()
    try:
        s = sim()
        with cache_server(s, agents=rules_only(), db=db) as srv:
            first = await ask(srv, "What is your return policy?")
            hits = [await ask(srv, "what's your return policy", "m%d" % i) for i in range(3)]
            assert all(h.end["cache"] == "exact" for h in hits), [h.end for h in hits]
            saved = first.end["cost"]["micros"]
            lines = db.psql("SELECT kind, amount_micros, cache_layer FROM ledger "
                            "WHERE kind = 'cache_saving' ORDER BY created_at")
            assert lines == [["cache_saving", str(-saved), "exact"]] * 3, lines
            # never in the turn's cost: the hit turns cost 0
            costs = db.psql("SELECT cost_micros FROM turns ORDER BY started_at")
            assert [c for (c,) in costs] == [str(saved), "0", "0", "0"], costs
            r = http_request(srv.port, "GET", "/v1/costs?group_by=day",
                             headers={"Authorization": "Bearer " + ADMIN})
            assert r.status == 200, r.body
            body = json.loads(r.body)
            sv = {x["layer"]: x for x in body["savings"]}
            assert sv["exact"]["hits"] == 3 and sv["exact"]["saved_micros"] == 3 * saved, body
            (total,) = db.psql("SELECT -sum(amount_micros) FROM ledger "
                               "WHERE kind = 'cache_saving'")
            assert int(total[0]) == sv["exact"]["saved_micros"]
            assert body["totals"][0]["cost_micros"] == saved, body["totals"]
    finally:
        db.stop()


# --------------------------------------------------------------------------------------------
# the tool response cache


def tools_with(ttl):
    """config/tools.json with get_policy's cache_ttl_s set to ttl."""
    with open(os.path.join(Args.source, "config", "tools.json")) as f:
        doc = json.load(f)
    for t in doc["tools"]:
        if t["name"] == "get_policy":
            t["cache_ttl_s"] = ttl
    path = os.path.join(os.path.dirname(write_agents([])), "tools.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def tool_server(s, tools=None, cache=None, db=None, name="tools"):
    """Exact cache off: every question reaches the model, which calls the tool again."""
    c = {"exact": "off"}
    c.update(cache or {})
    env = {"TRILEMMA_ADMIN_TOKEN": ADMIN}
    if db:
        env["DATABASE_URL"] = db.url
    return orch_server(s, agents=rules_only(), tools=tools, extra_env=env, name=name,
                       config={"cache": c})


def policy_requests(s, since):
    return [r for r in s.catalog_log(since) if r["endpoint"] == "policy"]


def metric(srv, name):
    m = http_request(srv.port, "GET", "/metrics").body.decode()
    found = re.search(r"^%s (\d+)$" % re.escape(name), m, re.M)
    assert found, (name, m[-3000:])
    return int(found.group(1))


@suite.test
async def test_tool_cache_single_flight_concurrent_identical_calls_make_one_request():
    # the policy endpoint answers after 400 ms: the four turns' identical calls overlap
    s = sim("slow_policy", "--catalog-policy", "ms=400")
    with tool_server(s) as srv:
        seq = s.catalog_seq()
        turns = await asyncio.gather(*[ask(srv, "What is your return policy?", "m%d" % i)
                                       for i in range(4)])
        for t in turns:
            t.check_stop()
        assert len({t.text for t in turns}) == 1, [t.text for t in turns]
        reqs = policy_requests(s, seq)
        assert len(reqs) == 1, reqs
        hits = metric(srv, 'trilemma_cache_hits_total{layer="tool"}')
        misses = metric(srv, 'trilemma_cache_misses_total{layer="tool"}')
        assert (hits, misses) == (3, 1), (hits, misses)
        # an uncached tool (get_order: cache_ttl_s 0) is never coalesced nor kept
        seq = s.catalog_seq()
        for i in range(2):
            (await ask(srv, "where is order 1234-5678", "o%d" % i)).check_stop()
        orders = [r for r in s.catalog_log(seq) if r["endpoint"] == "order"]
        assert len(orders) == 2, orders


def wall_wait(seconds):
    """Let a TTL pass: the passage of time is what is tested here (bounded, no polling of the
    server)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        select.select([], [], [], deadline - time.time())


@suite.test
async def test_tool_cache_ttl_expiry_and_stale_while_revalidate():
    s = sim()
    tools = tools_with(3)
    # no staleness allowed: past the TTL the call goes to the API before the answer
    with tool_server(s, tools=tools, cache={"tool_max_stale_s": 0}, name="no_stale") as srv:
        seq = s.catalog_seq()
        (await ask(srv, "What is your return policy?")).check_stop()
        t0 = time.time()
        (await ask(srv, "What is your return policy?")).check_stop()
        assert len(policy_requests(s, seq)) == 1, policy_requests(s, seq)
        wall_wait(3.2 - (time.time() - t0))
        seq = s.catalog_seq()
        (await ask(srv, "What is your return policy?")).check_stop()
        assert len(policy_requests(s, seq)) == 1  # fetched again, in line
    # within the staleness bound: the stale result is served at once, one refresh follows
    with tool_server(s, tools=tools, cache={"tool_max_stale_s": 60}, name="stale") as srv:
        (await ask(srv, "What is your return policy?")).check_stop()
        wall_wait(3.2)
        seq = s.catalog_seq()
        hits = metric(srv, 'trilemma_cache_hits_total{layer="tool"}')
        t = await ask(srv, "What is your return policy?")
        t.check_stop()
        assert metric(srv, 'trilemma_cache_hits_total{layer="tool"}') == hits + 1
        wait_until(lambda: len(policy_requests(s, seq)) == 1, "the background refresh")
        # the refreshed entry is fresh: no request, a hit
        seq = s.catalog_seq()
        (await ask(srv, "What is your return policy?")).check_stop()
        assert policy_requests(s, seq) == []
        assert metric(srv, 'trilemma_cache_hits_total{layer="tool"}') == hits + 2


@suite.test
async def test_tool_hits_are_marked_and_on_the_ledger():
    if not has_pg():
        return
    db = Cluster()
    try:
        s = sim()
        with tool_server(s, db=db, cache={"tool_shared": "on"}, name="tool_ledger") as srv:
            first = await ask(srv, "What is your return policy?")
            again = await ask(srv, "What is your return policy?")
            first.check_stop()
            again.check_stop()
        got = db.psql("SELECT t.name, t.cache_hit FROM tool_calls t JOIN turns u "
                      "ON u.id = t.turn_id ORDER BY u.started_at")
        assert got == [["get_policy", "f"], ["get_policy", "t"]], got
        lines = db.psql("SELECT kind, amount_micros, cache_layer FROM ledger "
                        "WHERE kind = 'cache_saving'")
        assert lines == [["cache_saving", "0", "tool"]], lines
        # the shared tier: another process finds the result in PostgreSQL
        rows = db.psql("SELECT layer, label FROM cache_entries WHERE layer = 'tool'")
        assert rows == [["tool", "get_policy"]], rows
        with tool_server(s, db=db, cache={"tool_shared": "on"}, name="tool_reader") as srv:
            seq = s.catalog_seq()
            (await ask(srv, "What is your return policy?")).check_stop()
            assert policy_requests(s, seq) == []
            r = http_request(srv.port, "GET", "/v1/costs?group_by=day",
                             headers={"Authorization": "Bearer " + ADMIN})
            sv = {x["layer"]: x for x in json.loads(r.body)["savings"]}
            assert sv["tool"]["hits"] == 2 and sv["tool"]["saved_micros"] == 0, sv
    finally:
        db.stop()


# --------------------------------------------------------------------------------------------
# the bound on shared-tier writes in flight ([cache] shared_writes_max, shared_write_bytes_max,
# shared_entry_max_bytes): over it a write is dropped and counted, nothing else changes


def dropped(srv, layer, reason):
    return metric(srv, 'trilemma_cache_shared_writes_dropped_total{layer="%s",reason="%s"}'
                  % (layer, reason))


def turns_listed(srv):
    r = http_request(srv.port, "GET", "/v1/turns?limit=50",
                     headers={"Authorization": "Bearer " + ADMIN})
    assert r.status == 200, (r.status, r.body[:300])
    return json.loads(r.body)["turns"]


@suite.test
async def test_shared_writes_over_the_bound_are_dropped_and_counted():
    if not has_pg():
        return
    db = Cluster()
    try:
        s = sim()
        questions = ["What is your return policy?", "What is your warranty policy?",
                     "What is your shipping policy?"]
        # the reference answers, from a process without the shared tier
        with cache_server(s, agents=rules_only(), cache={"exact_shared": "off"},
                          name="bound_ref") as srv:
            ref = [await ask(srv, q) for q in questions]
        for t in ref:
            t.check_stop()
            assert t.route["query_type"] == "policy", t.route
        # no shared write may be in flight: every cacheable answer's write is dropped
        with cache_server(s, agents=rules_only(), db=db, cache={"shared_writes_max": "0"},
                          name="bound_zero") as srv:
            assert dropped(srv, "exact", "busy") == 0
            turns = await asyncio.gather(*[ask(srv, q, "m%d" % i)
                                           for i, q in enumerate(questions)])
            for t, r in zip(turns, ref):
                t.check_stop()
                assert t.end["cache"] is None, t.end
                assert t.text == r.text, (t.text, r.text)
            assert dropped(srv, "exact", "busy") == len(questions)
            assert dropped(srv, "exact", "too_large") == 0
            assert db.psql("SELECT count(*) FROM cache_entries") == [["0"]]
            # the worker's own tier still serves them, and reads on the reader connection work
            again = await ask(srv, questions[0])
            assert again.end["cache"] == "exact" and again.text == ref[0].text, again.end
            wait_until(lambda: len(turns_listed(srv)) == len(questions) + 1,
                       "the turns in the read API")
        # a process under the default bound writes them, and another reads them back
        with cache_server(s, agents=rules_only(), db=db, name="bound_default") as srv:
            t = await ask(srv, questions[1])
            assert t.end["cache"] is None and t.text == ref[1].text, t.end
            assert dropped(srv, "exact", "busy") == 0
        assert db.psql("SELECT count(*) FROM cache_entries") == [["1"]]
        with cache_server(s, agents=rules_only(), db=db, name="bound_reader") as srv:
            t = await ask(srv, questions[1])
            assert t.end["cache"] == "exact" and t.text == ref[1].text, t.end
    finally:
        db.stop()


@suite.test
async def test_entries_over_the_entry_cap_stay_per_worker():
    if not has_pg():
        return
    db = Cluster()
    try:
        s = sim()
        # the policy endpoint's answer is far larger than 16 bytes
        cache = {"tool_shared": "on", "shared_entry_max_bytes": "16"}
        with tool_server(s, db=db, cache=cache, name="tool_cap") as srv:
            seq = s.catalog_seq()
            first = await ask(srv, "What is your return policy?")
            first.check_stop()
            assert len(policy_requests(s, seq)) == 1
            assert dropped(srv, "tool", "too_large") == 1
            assert dropped(srv, "tool", "busy") == 0
            # the worker's LRU keeps it: the same call is served without a request
            seq = s.catalog_seq()
            again = await ask(srv, "What is your return policy?")
            again.check_stop()
            assert policy_requests(s, seq) == []
        assert db.psql("SELECT count(*) FROM cache_entries WHERE layer = 'tool'") == [["0"]]
    finally:
        db.stop()


if __name__ == "__main__":
    suite.main()
