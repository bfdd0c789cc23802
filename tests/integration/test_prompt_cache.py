"""test_prompt_cache.py - provider prompt caching (issue 13 item 1) end to end: a real trilemmad
with the agents plan, trilemma-sim as the provider (its cache model reads a prefix only when the
same key, tools and breakpoints saw it recently) and, when PostgreSQL's binaries are there, a
private cluster for the stored calls and the ledger.

What is checked comes from what was sent (the simulator's request-body log: Anthropic
cache_control on the agent's prompt and on its last tool, OpenAI prompt_cache_key per agent and
prompt version), from what was stored (each call's cached tokens priced at the cache-read rate of
config/prices.csv, the ledger lines equal to the calls' costs) and from /metrics (the share of
prompt tokens read from the cache, per agent).
"""

import asyncio
import csv
import os
import re

from harness import Args, Suite, http_request
from test_orchestrator import (PG_BIN, Cluster, Sim, open_session, orch_server, section,
                               shipped_agents, turn, write_agents)

suite = Suite("prompt_cache")


def prices():
    """(provider, model) -> (input, cached_input, cache_write, output) in micro-units per million
    tokens, and the currency, from the checked-in price table (its standard rows)."""
    out = {}
    with open(os.path.join(Args.source, "config", "prices.csv")) as f:
        for row in csv.reader(line for line in f if not line.startswith("#")):
            if len(row) < 9 or row[2] != "standard":
                continue

            def micros(s):
                whole, _, frac = s.partition(".")
                return int(whole) * 10**6 + int((frac + "000000")[:6])
            out[(row[0], row[1])] = (row[4], [micros(x) for x in row[5:9]])
    return out


def expected_cost(price, usage, currency, rate):
    """The exact cost rule of docs/orchestrator.md: each class of token at its own rate, one
    half-up rounding."""
    cur, (p_in, p_cached, p_write, p_out) = price
    inp, cached, writes, out = usage
    s = (inp - cached - writes) * p_in + cached * p_cached + writes * p_write + out * p_out
    div = 10**6
    if cur != currency:
        assert currency == "INR", currency
        s *= rate
        div *= 10**6
    return (s + div // 2) // div


def anthropic_agents():
    """The shipped agents, every agent on Anthropic's sim-frontier (one model, no cascade)."""
    secs = shipped_agents()
    for name, keys in secs:
        if name.startswith("agent "):
            keys["cascade"] = "anthropic/sim-frontier"
    return write_agents(secs)


def metric(text, name, labels):
    m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


@suite.test
async def test_anthropic_breakpoints_and_cached_tokens_priced_at_the_read_rate():
    s = Sim()
    db = None
    try:
        env = {}
        if os.access(os.path.join(PG_BIN, "initdb"), os.X_OK):
            db = Cluster()
            env["DATABASE_URL"] = db.url
        else:
            print("  (PostgreSQL binaries not found in %s: the ledger is not checked)" % PG_BIN)
        with orch_server(s, agents=anthropic_agents(), extra_env=env) as srv:
            since = s.requests_seq()
            turns = []
            # two sessions, the same agent (specialist) and tools, different questions: the
            # second reads the agent's prompt and tools from the provider's cache
            for i, text in enumerate(["what is the return policy", "what is the warranty policy",
                                      "how do refunds work"]):
                ws = await open_session(srv)
                t = await turn(ws, text, "m%d" % i)
                t.check_stop()
                assert t.route["agent"] == "specialist", t.end
                turns.append(t)
                await ws.close()
            reqs = s.requests(since)
            agent_bodies = [b for p, m, b in reqs if p == "/v1/messages"]
            assert agent_bodies, [(p, m) for p, m, _ in reqs]
            for b in agent_bodies:
                # the agent's prompt is the first system block, with the breakpoint; the tools'
                # last definition has one too; nothing else does
                assert isinstance(b["system"], list) and b["system"][0]["type"] == "text", b
                assert b["system"][0]["cache_control"] == {"type": "ephemeral"}, b["system"]
                assert all("cache_control" not in x for x in b["system"][1:]), b["system"]
                assert b["tools"][-1]["cache_control"] == {"type": "ephemeral"}, b["tools"]
                assert all("cache_control" not in x for x in b["tools"][:-1]), b["tools"]
                assert "cache_control" not in str(b["messages"]), b["messages"]
            # the agent's prompt is byte-stable: one system prompt text across every turn
            assert len({b["system"][0]["text"] for b in agent_bodies}) == 1
            # the classifier (OpenAI) sends its prompt_cache_key
            cls = [b for p, m, b in reqs if "classifier" in m]
            assert cls and all(b.get("prompt_cache_key") == "classifier" for b in cls), cls[:1]
            # the last turn read the prefix from the cache, and paid the read rate for it
            assert turns[-1].end["usage"]["cached_input_tokens"] > 0, turns[-1].end
            metrics = http_request(srv.port, "GET", "/metrics").body.decode()
            share = metric(metrics, "trilemma_prompt_cache_input_share", 'agent="specialist"')
            read = metric(metrics, "trilemma_prompt_tokens_total",
                          'agent="specialist",kind="cache_read"')
            assert share is not None and 0 < share < 1, share
            if db:
                check_ledger(db, turns, read)
    finally:
        s.stop()
        if db:
            db.stop()


def check_ledger(db, turns, metric_read):
    table = prices()
    ids = ",".join("'%s'" % t.end["turn_id"] for t in turns)
    for t in turns:
        assert re.fullmatch(r"[0-9a-f]{32}", t.end["turn_id"]), t.end
    calls = db.psql("SELECT turn_id, provider, model, input_tokens, cached_input_tokens, "
                    "cache_write_tokens, output_tokens, cost_micros, currency, usd_to_inr_micros,"
                    " agent FROM llm_calls WHERE turn_id IN (%s)" % ids)
    assert calls, "no calls stored"
    read = 0
    for (tid, prov, model, inp, cached, writes, out, cost, cur, rate, agent) in calls:
        usage = tuple(int(x) for x in (inp, cached, writes, out))
        want = expected_cost(table[(prov, model)], usage, cur, int(rate))
        assert int(cost) == want, (model, usage, cost, want)
        if agent == "specialist":
            read += usage[1]
        if usage[1]:
            # priced at the read rate, not as full input
            full = expected_cost(table[(prov, model)], (usage[0], 0, usage[2], usage[3]), cur,
                                 int(rate))
            assert int(cost) < full, (usage, cost, full)
    assert read > 0, calls
    assert metric_read == read, (metric_read, read)
    ledger = db.psql("SELECT turn_id, amount_micros FROM ledger WHERE turn_id IN (%s) AND kind "
                     "IN ('model', 'classifier', 'escalation')" % ids)
    assert sorted(int(a) for _, a in ledger) == sorted(int(c[7]) for c in calls), (ledger, calls)


if __name__ == "__main__":
    suite.main()
