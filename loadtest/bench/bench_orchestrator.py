#!/usr/bin/env python3
"""bench_orchestrator.py - the orchestrator benchmark (issue 11 section 6). A benchmark, not a test.

Starts trilemma-sim (models and the commerce API), a private PostgreSQL cluster
(tests/store/pg_cluster.sh) and trilemmad with the agents (config/agents.ini, config/tools.json),
all on free loopback ports, runs a FIXED, seeded mix of conversations (orch_mix.py: searches and
their follow-ups - "compare the two cheapest", "the battery of the second one", delivery to a
pincode -, direct comparisons, policy questions, order status with the catalog's order ids,
chitchat, other) at a bounded concurrency, one WebSocket session per conversation, and reads
every turn's details back from PostgreSQL (turns, llm_calls, tool_calls, ledger). Then the
same conversations again against a server whose agents file is a copy of the given one with
every agent's `context = full` (the "send everything" baseline; a fresh simulator, so that its
prompt cache starts cold both times). Everything started is stopped at the end.

Reports, per query type as the server routed it (turn_end.route.query_type):
  1. token overhead per model request: an estimate from the files (system prompt + the agent's
     tool schemas + transfer tools, bytes / 4) and what the simulator reported (prompt tokens of
     each agent call minus the user's own words: system prompt, context note, tool results of
     the turn and, for `full`, the history; the simulator counts words + 4 per message and does
     not count tool schemas at all); latency: classify (the classifier call's duration), the
     search prefetch (concurrent with it), tools (per tool step the slowest call - a step's calls
     run at once -, summed over the turn's steps; steps are recovered from the order the calls
     were recorded in), model (sum of the agent calls' durations), first token and total
     (turn_end.latency_ms) - p50 and p90; calls per turn; cost per turn (mean, p90; INR micros
     and rupees); escalations and flags.
  2. input tokens per turn (agent calls, classifier excluded) with the agents' context policies
     and with `context = full`, and the ratio.
  3. cost per conversation, turns per second.

  /usr/bin/python3 loadtest/bench/bench_orchestrator.py            # 1,000 conversations
  /usr/bin/python3 loadtest/bench/bench_orchestrator.py --quick    # 100, fast simulator
      [--conversations N] [--concurrency 50] [--seed 11] [--ttft-ms 300] [--tps 40]
      [--catalog-scale 1.0] [--workers 2] [--no-baseline] [--json FILE] [--md FILE]
"""

import argparse
import asyncio
import collections
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402  (the integration tests' server runner)
import orch_mix  # noqa: E402
from bench_store import CLUSTER, psql  # noqa: E402

QUERY_TYPES = ["product_search", "product_fact", "comparison", "policy", "order_status",
               "chitchat", "other"]
# the simulator's catalog endpoints and their default latency ranges (docs/sim.md)
CATALOG_MS = {"search": (80, 250), "product": (20, 60), "offers": (100, 400),
              "policy": (10, 40), "order": (20, 80)}


# ------------------------------------------------------------------------------------------
# processes


def start_sim(a, log_path):
    cmd = [a.sim, "--listen", "127.0.0.1:0", "--seed", str(a.seed), "--ttft-ms", str(a.ttft_ms),
           "--ttft-jitter-ms", str(a.ttft_ms // 3), "--tps", str(a.tps)]
    cmd += a.sim_arg
    for ep, (lo, hi) in CATALOG_MS.items():
        cmd += ["--catalog-%s" % ep, "ms=%d-%d" % (max(0, round(lo * a.catalog_scale)),
                                                   max(0, round(hi * a.catalog_scale)))]
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=ROOT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with open(log_path, "rb") as f:
            m = re.search(rb"listening on http://127\.0\.0\.1:(\d+)/", f.read())
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            break
        try:
            proc.wait(timeout=0.05)  # the retry pause; returns at once if the sim died
        except subprocess.TimeoutExpired:
            pass
    proc.kill()
    proc.wait()
    with open(log_path, "rb") as f:
        raise RuntimeError("trilemma-sim did not start:\n%s" % f.read().decode(errors="replace"))


def stop_proc(proc):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def full_context_agents(agents_file, tmp):
    """A copy of agents_file (and the prompt files it names) with every agent's context = full."""
    src_dir = os.path.dirname(os.path.abspath(agents_file))
    out_lines, in_agent = [], False
    with open(agents_file, encoding="utf-8") as f:
        for line in f:
            s = line.strip()
            if s.startswith("["):
                in_agent = s.startswith("[agent ")
            m = re.match(r"\s*prompt\s*=\s*(.+?)\s*$", line)
            if m and in_agent:
                dst = os.path.join(tmp, m.group(1))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(os.path.join(src_dir, m.group(1)), dst)
            if in_agent and re.match(r"\s*context\s*=", line):
                line = "context = full\n"
            out_lines.append(line)
    path = os.path.join(tmp, os.path.basename(agents_file))
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(out_lines)
    return path


def start_server(a, sim_port, db_url, agents_file):
    config = {
        "server": {"max_connections": 100000, "max_connections_per_ip": 100000},
        "websocket": {"ping_interval_ms": 600000, "idle_timeout_ms": 3600000},
        "session": {"rate_messages": 1000, "rate_window_ms": 1000},
        "orchestrator": {"agents_file": agents_file},
        "tools": {"tools_file": a.tools_file},
        "log": {"level": "warn"},
    }
    env = {"DATABASE_URL": db_url,
           "OPENAI_BASE_URL": "http://127.0.0.1:%d/v1" % sim_port,
           "TRILEMMA_MODEL": "openai/sim-frontier",
           "TRILEMMA_CATALOG_URL": "http://127.0.0.1:%d" % sim_port}
    srv = harness.Server(config=config, env=env, workers=a.workers, name="bench-orch")
    srv.start()
    return srv


# ------------------------------------------------------------------------------------------
# the clients


async def one_turn(ws, cid, text, timeout):
    rec = {"text": text, "stages": [], "products": 0, "deltas": 0}
    t0 = time.monotonic()
    await ws.send(json.dumps({"type": "user_message", "id": cid, "text": text}))
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        typ = msg.get("type")
        if typ == "turn_start":
            rec["turn_id"] = msg["turn_id"]
        elif typ == "status":
            rec["stages"].append(msg.get("tool") or msg.get("stage"))
        elif typ == "products":
            rec["products"] = len(msg.get("items", []))
        elif typ == "delta":
            if not rec["deltas"]:
                rec["client_first_ms"] = 1000 * (time.monotonic() - t0)
            rec["deltas"] += 1
        elif typ == "error":
            rec["error"] = msg.get("code")
            if not msg.get("turn_id"):
                break  # not part of a turn: no turn_end follows
        elif typ == "turn_end":
            rec["client_total_ms"] = 1000 * (time.monotonic() - t0)
            for k in ("finish_reason", "usage", "cost", "latency_ms", "route", "flags"):
                rec[k] = msg.get(k)
            break
    return rec


async def one_conversation(port, conv, sem, out, timeout, stop_at):
    async with sem:
        if time.monotonic() > stop_at:
            out.append({"i": conv["i"], "skipped": True})
            return
        recs = []
        try:
            async with websockets.connect("ws://127.0.0.1:%d/ws" % port, ping_interval=None,
                                          max_size=1 << 22, open_timeout=timeout) as ws:
                json.loads(await asyncio.wait_for(ws.recv(), timeout))  # session
                for k, (label, text) in enumerate(conv["turns"]):
                    rec = await one_turn(ws, "c%d-%d" % (conv["i"], k), text, timeout)
                    rec.update(conv=conv["i"], kind=conv["kind"], k=k, label=label)
                    recs.append(rec)
        except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as e:
            recs.append({"conv": conv["i"], "kind": conv["kind"], "k": len(recs),
                         "label": conv["turns"][len(recs)][0] if len(recs) < len(conv["turns"])
                         else "?", "error": "client: %s" % (type(e).__name__)})
        out.append({"i": conv["i"], "turns": recs})


async def run_mix(port, mix, concurrency, timeout, max_seconds):
    sem = asyncio.Semaphore(concurrency)
    out = []
    stop_at = time.monotonic() + max_seconds
    t0 = time.monotonic()
    await asyncio.gather(*(one_conversation(port, c, sem, out, timeout, stop_at) for c in mix))
    return sorted(out, key=lambda c: c["i"]), time.monotonic() - t0


# ------------------------------------------------------------------------------------------
# what PostgreSQL recorded


def db_rows(pgdir, ids):
    """{turn_id: {"turn": row, "calls": [...], "tools": [...], "ledger": [...]}} for these ids."""
    want = set(ids)
    q = {
        "turn": "SELECT json_build_object('id', id, 'query_type', query_type, 'agent', agent, "
                "'flags', flags, 'first', first_token_ms, 'total', total_ms, 'input', "
                "input_tokens, 'cost', cost_micros, 'currency', currency) FROM turns",
        "calls": "SELECT json_build_object('id', turn_id, 'ord', ordinal, 'role', role, 'model', "
                 "model, 'agent', agent, 'status', status, 'input', input_tokens, 'cached', "
                 "cached_input_tokens, 'output', output_tokens, 'ttft', ttft_ms, 'dur', "
                 "duration_ms, 'cost', cost_micros) FROM llm_calls ORDER BY turn_id, ordinal",
        "tools": "SELECT json_build_object('id', turn_id, 'ord', ordinal, 'name', name, 'args', "
                 "arguments, 'dur', duration_ms, 'status', status, 'cache_hit', cache_hit) "
                 "FROM tool_calls ORDER BY turn_id, ordinal",
        "ledger": "SELECT json_build_object('id', turn_id, 'kind', kind, 'amount', amount_micros)"
                  " FROM ledger",
    }
    out = collections.defaultdict(lambda: {"turn": None, "calls": [], "tools": [], "ledger": []})
    for key, sql in q.items():
        for line in psql(pgdir, sql).splitlines():
            row = json.loads(line)
            if row["id"] not in want:
                continue
            if key == "turn":
                out[row["id"]]["turn"] = row
            else:
                out[row["id"]][key].append(row)
    return out


def tool_steps(tools):
    """(prefetch ms or None, [per-step max ms]) from a turn's tool calls in recorded order.

    The plan records the search prefetch first (its arguments are the reformulated query and the
    budget, never a `limit`, which the simulated agents always send), then each batch's calls in
    the batch's order. A batch here is a run of calls of one tool (the agents' batches: the
    search, get_product for each product compared, get_order, get_policy, get_offers), and the
    preload's get_offers for the product it just asked get_product about."""
    prefetch, steps, last = None, [], None
    for i, t in enumerate(tools):
        args = t["args"] if isinstance(t["args"], dict) else {}
        if i == 0 and t["name"] == "search_products" and "limit" not in args:
            prefetch = t["dur"]
            continue
        same = last is not None and (t["name"] == last["name"] or (
            t["name"] == "get_offers" and last["name"] == "get_product"
            and args.get("id") == (last["args"] or {}).get("id")))
        if same:
            steps[-1] = max(steps[-1], t["dur"])
        else:
            steps.append(t["dur"])
        last = t
    return prefetch, steps


def user_words(text):
    return len(text.split())  # the simulator's rule: whitespace-separated words


def turn_facts(rec, db):
    """One turn, flattened: what the client saw joined with what the store recorded."""
    calls = db["calls"]
    cls = [c for c in calls if c["role"] == "classifier"]
    agent_calls = [c for c in calls if c["role"] != "classifier"]
    prefetch, steps = tool_steps(db["tools"])
    lat = rec.get("latency_ms") or {}
    route = rec.get("route") or {}
    cost = (rec.get("cost") or {}).get("micros")
    uw = user_words(rec["text"]) + 4
    f = {
        "conv": rec["conv"], "k": rec["k"], "kind": rec["kind"], "label": rec["label"],
        "qt": route.get("query_type") or (db["turn"] or {}).get("query_type") or "?",
        "agent": route.get("agent"), "flags": rec.get("flags") or [],
        "finish": rec.get("finish_reason"), "error": rec.get("error"),
        "first_ms": lat.get("first_token"), "total_ms": lat.get("total"),
        "classify_ms": cls[0]["dur"] if cls else None,
        "classifier_ok": bool(cls) and cls[0]["status"] == "ok",
        "prefetch_ms": prefetch, "tools_ms": sum(steps), "tool_steps": len(steps),
        "tools_sum_ms": sum(t["dur"] for t in db["tools"]),
        "model_ms": sum(c["dur"] for c in agent_calls),
        "llm_calls": len(calls), "agent_calls": len(agent_calls), "tool_calls": len(db["tools"]),
        "tool_errors": sum(t["status"] != "ok" for t in db["tools"]),
        "escalation_calls": sum(c["role"] == "escalation" for c in calls),
        "cost_micros": cost, "input_tokens": (rec.get("usage") or {}).get("input_tokens"),
        "agent_input": sum(c["input"] for c in agent_calls),
        "agent_cached": sum(c["cached"] for c in agent_calls),
        "output_tokens": (rec.get("usage") or {}).get("output_tokens"),
        # each agent call's prompt minus the user's own message (its words + 4)
        "per_call_overhead": [c["input"] - uw for c in agent_calls],
        "first_call_overhead": agent_calls[0]["input"] - uw if agent_calls else None,
        "cost_by_kind": collections.Counter(),
        "products": rec.get("products", 0),
    }
    if f["total_ms"] is not None:
        # what the parts above do not explain: the server's own work, queueing, the store
        f["rest_ms"] = f["total_ms"] - max(f["classify_ms"] or 0, f["prefetch_ms"] or 0) - \
            f["tools_ms"] - f["model_ms"]
    for ln in db["ledger"]:
        f["cost_by_kind"][ln["kind"]] += ln["amount"]
    # does what the client was told agree with what was stored?
    dbt = db["turn"] or {}
    f["check_stored"] = bool(dbt)
    f["check_route"] = not dbt or dbt.get("query_type") == route.get("query_type")
    f["check_cost"] = not dbt or (cost == dbt.get("cost") == sum(f["cost_by_kind"].values()))
    f["check_input"] = not dbt or f["input_tokens"] == sum(c["input"] for c in calls)
    f["budget_k"] = bool(re.search(r"\d\s*k\b|lakh", rec["text"], re.I))
    return f


# ------------------------------------------------------------------------------------------
# numbers


def pct(values, q):
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    return v[min(len(v) - 1, int(q * len(v)))]


def p50_90(fs, key):
    return [pct([f.get(key) for f in fs], .5), pct([f.get(key) for f in fs], .9)]


def mean(values):
    v = [x for x in values if x is not None]
    return sum(v) / len(v) if v else None


def estimate_overhead(agents_file, tools_file):
    """Per agent: system prompt, tool schemas and transfer tools in bytes and bytes/4, as the
    OpenAI request carries them (compact JSON), from the files; and the classifier's request."""
    with open(tools_file, encoding="utf-8") as f:
        tools = {t["name"]: t for t in json.load(f)["tools"]}
    agents, cur = {}, None
    src = os.path.dirname(os.path.abspath(agents_file))
    with open(agents_file, encoding="utf-8") as f:
        for line in f:
            s = line.split(";", 1)[0].strip()
            m = re.match(r"\[agent (\w+)\]", s)
            if s.startswith("["):
                cur = m.group(1) if m else None
                if cur:
                    agents[cur] = {"tools": [], "handoffs": []}
                continue
            if cur and "=" in s:
                k, v = (x.strip() for x in s.split("=", 1))
                if k == "prompt":
                    with open(os.path.join(src, v), "rb") as pf:
                        body = pf.read()
                    agents[cur]["prompt_bytes"] = len(body)
                    # as the simulator counts a message: whitespace-separated words + 4
                    agents[cur]["prompt_sim_tokens"] = len(body.split()) + 4
                elif k in ("tools", "handoffs"):
                    agents[cur][k] = [x.strip() for x in v.split(",") if x.strip()]
                elif k == "context":
                    agents[cur]["context"] = v

    def schema_bytes(name, desc, params):
        return len(json.dumps({"type": "function", "function": {
            "name": name, "description": desc, "parameters": params}}, separators=(",", ":")))

    for name, ag in agents.items():
        sb = sum(schema_bytes(t, tools[t]["description"], tools[t]["parameters"])
                 for t in ag["tools"] if t in tools)
        sb += sum(schema_bytes("transfer_to_" + h, h, {"type": "object", "properties": {}})
                  for h in ag["handoffs"])
        ag["schema_bytes"] = sb
        ag["est_tokens"] = round((ag.get("prompt_bytes", 0) + sb) / 4)
    cls_bytes = None
    with open(os.path.join(ROOT, "orchestrator", "agent_plan.c"), encoding="utf-8") as f:
        m = re.search(r"classifier_prompt\[\] =\s*((?:\s*\"(?:[^\"\\]|\\.)*\")+);", f.read())
    if m:
        cls_bytes = len(re.sub(r'\\(.)', r'\1', "".join(re.findall(r'"((?:[^"\\]|\\.)*)"',
                                                                     m.group(1)))))
    return agents, cls_bytes


def summarize(facts, elapsed, conversations):
    by = collections.defaultdict(list)
    for f in facts:
        by[f["qt"]].append(f)
    rows = {}
    for qt in QUERY_TYPES + sorted(set(by) - set(QUERY_TYPES)):
        fs = by.get(qt)
        if not fs:
            continue
        flags = collections.Counter(x for f in fs for x in f["flags"])
        costs = [f["cost_micros"] for f in fs]
        oh = [x for f in fs for x in f["per_call_overhead"]]
        rows[qt] = {
            "turns": len(fs),
            "agents": dict(collections.Counter(f["agent"] for f in fs)),
            "labelled_as_this": sum(f["label"] == qt for f in fs),
            "classify_ms": p50_90(fs, "classify_ms"),
            "prefetch_ms": p50_90(fs, "prefetch_ms"),
            "prefetched_turns": sum(f["prefetch_ms"] is not None for f in fs),
            "tools_ms": p50_90(fs, "tools_ms"),
            "tools_sum_ms": p50_90(fs, "tools_sum_ms"),
            "model_ms": p50_90(fs, "model_ms"),
            "rest_ms": p50_90(fs, "rest_ms"),
            "first_ms": p50_90(fs, "first_ms"),
            "total_ms": p50_90(fs, "total_ms"),
            "llm_calls": mean([f["llm_calls"] for f in fs]),
            "agent_calls": mean([f["agent_calls"] for f in fs]),
            "tool_calls": mean([f["tool_calls"] for f in fs]),
            "tool_steps": mean([f["tool_steps"] for f in fs]),
            "tool_errors": sum(f["tool_errors"] for f in fs),
            "cost_micros_mean": mean(costs), "cost_micros_p90": pct(costs, .9),
            "cost_by_kind_mean": {k: sum(f["cost_by_kind"][k] for f in fs) / len(fs)
                                  for k in sorted({k for f in fs for k in f["cost_by_kind"]})},
            "escalation_calls": sum(f["escalation_calls"] for f in fs),
            "escalated_turns": sum(any(x.startswith("escalated:") for x in f["flags"]) for f in fs),
            "flags": dict(flags),
            "overhead_per_call_mean": mean(oh), "overhead_first_call_mean": mean(
                [f["first_call_overhead"] for f in fs]),
            "agent_input_mean": mean([f["agent_input"] for f in fs]),
            "agent_input_followups_mean": mean([f["agent_input"] for f in fs if f["k"] > 0]),
            "followup_turns": sum(f["k"] > 0 for f in fs),
            "errors": sum(bool(f["error"]) or f["finish"] not in ("stop", "length") for f in fs),
        }
    convs = collections.defaultdict(int)
    for f in facts:
        convs[f["conv"]] += f["cost_micros"] or 0
    conv_costs = list(convs.values())
    labelled = [f for f in facts if f["label"] in QUERY_TYPES]
    totals = {
        "conversations": conversations, "conversations_done": len(convs), "turns": len(facts),
        "elapsed_s": elapsed, "turns_per_s": len(facts) / elapsed if elapsed else None,
        "cost_per_conversation_micros_mean": mean(conv_costs),
        "cost_per_conversation_micros_p90": pct(conv_costs, .9),
        "cost_per_turn_micros_mean": mean([f["cost_micros"] for f in facts]),
        "routed_as_labelled": sum(f["qt"] == f["label"] for f in labelled) / max(1, len(labelled)),
        "errors": sum(bool(f["error"]) or f["finish"] not in ("stop", "length") for f in facts),
        "first_errors": [(f["label"], f["error"] or f["finish"]) for f in facts
                         if f["error"] or f["finish"] not in ("stop", "length")][:5],
        "agent_input_total": sum(f["agent_input"] for f in facts),
        "misrouted": dict(collections.Counter("%s -> %s" % (f["label"], f["qt"]) for f in labelled
                                              if f["qt"] != f["label"])),
        "check_failures": {k: sum(not f[k] for f in facts) for k in (
            "check_stored", "check_route", "check_cost", "check_input")},
        # the grounding check against budgets the user wrote as "20k" / "1.5 lakh" (which the
        # answer restates as "under ₹20,000") and as digits
        "ungrounded_search_budget_k": [
            sum("ungrounded_number" in f["flags"] for f in facts
                if f["qt"] == "product_search" and f["k"] == 0 and f["budget_k"]),
            sum(1 for f in facts if f["qt"] == "product_search" and f["k"] == 0 and f["budget_k"])],
        "ungrounded_search_budget_digits": [
            sum("ungrounded_number" in f["flags"] for f in facts
                if f["qt"] == "product_search" and f["k"] == 0 and not f["budget_k"]),
            sum(1 for f in facts if f["qt"] == "product_search" and f["k"] == 0
                and not f["budget_k"])],
    }
    return {"per_type": rows, "totals": totals}


# ------------------------------------------------------------------------------------------
# one run


def one_run(a, name, agents_file, pgdir, db_url, mix, tmp):
    sim, port = start_sim(a, os.path.join(tmp, "sim-%s.log" % name))
    srv = None
    try:
        srv = start_server(a, port, db_url, agents_file)
        print("%s: sim :%d, trilemmad :%d, %d conversations at %d at once ..." % (
            name, port, srv.port, len(mix), a.concurrency), flush=True)
        convs, elapsed = asyncio.run(run_mix(srv.port, mix, a.concurrency, a.turn_timeout,
                                             a.max_seconds))
    finally:
        if srv:
            try:
                srv.stop()
            except AssertionError as e:
                print("note: %s" % str(e).splitlines()[0])
            srv.kill()
            srv.cleanup()
        stop_proc(sim)
    recs = [r for c in convs for r in c.get("turns", [])]
    ids = [r["turn_id"] for r in recs if r.get("turn_id")]
    db = db_rows(pgdir, ids)
    empty = {"turn": None, "calls": [], "tools": [], "ledger": []}
    facts = [turn_facts(r, db[r["turn_id"]] if r.get("turn_id") in db else empty)
             for r in recs]
    s = summarize(facts, elapsed, len(mix))
    s["totals"]["skipped_conversations"] = sum(bool(c.get("skipped")) for c in convs)
    s["totals"]["turns_without_store_rows"] = sum(1 for r in recs if r.get("turn_id") not in db)
    print("%s: %d turns in %.1f s (%.1f turns/s), %d errors" % (
        name, s["totals"]["turns"], elapsed, s["totals"]["turns_per_s"] or 0,
        s["totals"]["errors"]), flush=True)
    return s, facts


# ------------------------------------------------------------------------------------------
# tables


def ms(pair):
    return " / ".join("-" if x is None else "%d" % x for x in pair)


def rupees(micros):
    return "-" if micros is None else "%.0f (₹%.4f)" % (micros, micros / 1e6)


def num(x, fmt="%.2f"):
    return "-" if x is None else fmt % x


def md_table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def render(result):
    pol, full = result["policy"], result.get("full")
    agents, cls_bytes = result["estimate"]["agents"], result["estimate"]["classifier_bytes"]
    out = []
    t = pol["totals"]
    out.append("Run: %d conversations (%d turns), %d at once, seed %d, sim --ttft-ms %d --tps %d, "
               "catalog latency x%.2f, trilemmad %d workers, %d cores, load average %.2f "
               "before." % (t["conversations"], t["turns"], result["args"]["concurrency"],
                            result["args"]["seed"], result["args"]["ttft_ms"],
                            result["args"]["tps"], result["args"]["catalog_scale"],
                            result["args"]["workers"], result["cores"], result["loadavg_before"]))
    rows = []
    for qt, r in pol["per_type"].items():
        ag = max(r["agents"], key=r["agents"].get) if r["agents"] else None
        e = agents.get(ag, {})
        rows.append([qt, ag, r["turns"], e.get("prompt_bytes", "-"), e.get("schema_bytes", "-"),
                     e.get("est_tokens", "-"), e.get("prompt_sim_tokens", "-"),
                     num(r["overhead_first_call_mean"], "%.0f"),
                     num(r["overhead_per_call_mean"], "%.0f")])
    out.append("\n**1a. Framework token overhead per model request** (estimate = (system prompt "
               "bytes + tool schema bytes incl. transfer tools) / 4, from the files; sim = prompt "
               "tokens the simulator reported per agent call minus the user's own message (words "
               "+ 4): system prompt, context note and this turn's tool results, in words, without "
               "the schemas, which the simulator does not count; compact JSON tool results have "
               "few spaces, so the simulator's words undercount them). sim: system prompt = the "
               "prompt file as the simulator counts it, so 1st call - user - system prompt = "
               "context note + tool results (prefetch, preload) + history. The classifier's "
               "request adds %s bytes of system prompt (~%s tokens) per turn.\n" % (
                   cls_bytes, round(cls_bytes / 4) if cls_bytes else "-"))
    out.append(md_table(["query type", "agent", "turns", "prompt B", "schemas B",
                         "estimate tok/request", "sim: system prompt", "sim: 1st call - user",
                         "sim: every call - user"],
                        rows))
    rows = []
    for qt, r in pol["per_type"].items():
        rows.append([qt, r["turns"], ms(r["classify_ms"]),
                     "%s (%d)" % (ms(r["prefetch_ms"]), r["prefetched_turns"]),
                     ms(r["tools_ms"]), ms(r["tools_sum_ms"]), ms(r["model_ms"]),
                     ms(r["first_ms"]), ms(r["total_ms"]), ms(r["rest_ms"])])
    out.append("\n**1b. Latency per turn, ms, p50 / p90.** classify = the classifier call; "
               "prefetch = the search prefetch, concurrent with it (turns that had one); tools = "
               "per step the slowest tool call (a step's calls run at once), summed over the "
               "steps, prefetch excluded; tools (sum) = every call added up, for comparison; "
               "model = the agent calls' durations added up; first token and total from "
               "turn_end.latency_ms; rest = total - max(classify, prefetch) - tools - model per "
               "turn (the server's own work and waits; a check that the parts add up).\n")
    out.append(md_table(["query type", "turns", "classify", "prefetch (turns)",
                         "tools (step max)", "tools (sum)", "model", "first token", "total",
                         "rest"],
                        rows))
    rows = []
    for qt, r in pol["per_type"].items():
        fl = ", ".join("%s %d" % kv for kv in sorted(r["flags"].items())) or "-"
        rows.append([qt, num(r["llm_calls"]), num(r["agent_calls"]),
                     "%s (%s steps)" % (num(r["tool_calls"]), num(r["tool_steps"])),
                     rupees(r["cost_micros_mean"]), rupees(r["cost_micros_p90"]),
                     "%d / %d" % (r["escalated_turns"], r["escalation_calls"]), fl])
    out.append("\n**1c. Calls, cost and flags per turn.** LLM calls include the classifier; cost "
               "in INR micros (rupees); escalations = turns with an `escalated:*` flag / calls "
               "of role `escalation`.\n")
    out.append(md_table(["query type", "LLM calls", "agent calls", "tool calls (steps)",
                         "cost mean", "cost p90", "escalations", "flags"], rows))
    if full:
        rows = []
        for qt, r in pol["per_type"].items():
            f = full["per_type"].get(qt, {})
            a1, b1 = r["agent_input_mean"], f.get("agent_input_mean")
            a2, b2 = r["agent_input_followups_mean"], f.get("agent_input_followups_mean")
            rows.append([qt, r["turns"], num(a1, "%.0f"), num(b1, "%.0f"),
                         num(b1 / a1 if a1 and b1 else None),
                         r["followup_turns"], num(a2, "%.0f"), num(b2, "%.0f"),
                         num(b2 / a2 if a2 and b2 else None)])
        ta, tb = pol["totals"]["agent_input_total"], full["totals"]["agent_input_total"]
        rows.append(["**all**", pol["totals"]["turns"], num(ta / max(1, pol["totals"]["turns"]),
                                                           "%.0f"),
                     num(tb / max(1, full["totals"]["turns"]), "%.0f"),
                     num(tb / ta if ta else None), "", "", "", ""])
        out.append("\n**2. Context policy vs \"send everything\"**: input tokens per turn of the "
                   "agent calls (classifier excluded; as the simulator counts them), the agents' "
                   "policies (config/agents.ini) against the same file with every `context = "
                   "full`, same conversations; the ratio is full / policy. Query type as each run "
                   "routed it.\n")
        out.append(md_table(["query type", "turns", "policy", "full", "ratio", "follow-up turns",
                             "policy (follow-ups)", "full (follow-ups)", "ratio"], rows))
    rows = []
    for name, s in (("policies", pol), ("full context", full)):
        if not s:
            continue
        t = s["totals"]
        rows.append([name, t["conversations_done"], t["turns"], "%.1f" % t["elapsed_s"],
                     num(t["turns_per_s"], "%.1f"),
                     rupees(t["cost_per_conversation_micros_mean"]),
                     rupees(t["cost_per_conversation_micros_p90"]),
                     rupees(t["cost_per_turn_micros_mean"]),
                     "%.1f%%" % (100 * t["routed_as_labelled"]), t["errors"]])
    out.append("\n**3. Totals.** routed as labelled = the server's query type equals the mix's "
               "label for the turn.\n")
    out.append(md_table(["run", "conversations", "turns", "wall s", "turns/s",
                         "cost/conversation mean", "p90", "cost/turn mean",
                         "routed as labelled", "errors"], rows))
    notes = []
    for name, s in (("policies", pol), ("full context", full)):
        if not s:
            continue
        t = s["totals"]
        notes.append("- %s run: misrouted (label -> routed): %s; store/client disagreements: %s; "
                     "skipped conversations: %d, turns without store rows: %d." % (
                         name, ", ".join("%s %d" % kv for kv in sorted(t["misrouted"].items()))
                         or "none", ", ".join("%s %d" % kv for kv in t["check_failures"].items()),
                         t["skipped_conversations"], t["turns_without_store_rows"]))
        if t["errors"]:
            notes.append("- %s run: %d turns did not end with stop/length; the first: %s." % (
                name, t["errors"], ", ".join("%s: %s" % e for e in t["first_errors"])))
    k = pol["totals"]["ungrounded_search_budget_k"]
    d = pol["totals"]["ungrounded_search_budget_digits"]
    notes.append("- `ungrounded_number` on first-turn searches: %d of %d when the budget was "
                 "written \"20k\"/\"lakh\", %d of %d when written in digits." % (k[0], k[1], d[0],
                                                                               d[1]))
    out.append("\n**Checks.**\n")
    out.append("\n".join(notes))
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default=os.path.join(ROOT, "build", "trilemmad"))
    p.add_argument("--sim", default=os.path.join(ROOT, "build", "trilemma-sim"))
    p.add_argument("--agents-file", default=os.path.join(ROOT, "config", "agents.ini"))
    p.add_argument("--tools-file", default=os.path.join(ROOT, "config", "tools.json"))
    p.add_argument("--catalog", default=orch_mix.default_catalog(ROOT),
                   help="the catalog the mix takes brands, budgets and order ids from")
    p.add_argument("--quick", action="store_true",
                   help="100 conversations, --ttft-ms 60 --tps 200, catalog latency x0.2")
    p.add_argument("--conversations", type=int)
    p.add_argument("--concurrency", type=int, default=50, help="sessions at once (default 50)")
    p.add_argument("--seed", type=int, default=11, help="the mix's and the simulator's seed")
    p.add_argument("--ttft-ms", type=int, help="sim mean time to first token (default 300)")
    p.add_argument("--tps", type=int, help="sim tokens per second per stream (default 40)")
    p.add_argument("--catalog-scale", type=float,
                   help="multiplies the sim's catalog latency ranges (default 1.0)")
    p.add_argument("--sim-arg", action="append", default=[],
                   help="one more trilemma-sim argument (repeat), e.g. "
                        "--sim-arg=--classifier-error-rate --sim-arg=0.1")
    p.add_argument("--workers", type=int, default=2, help="trilemmad workers (default 2)")
    p.add_argument("--no-baseline", action="store_true", help="skip the context = full run")
    p.add_argument("--turn-timeout", type=float, default=60.0, help="seconds per turn event")
    p.add_argument("--max-seconds", type=float, default=1200.0,
                   help="per run: conversations not started by then are skipped")
    p.add_argument("--json", default=os.path.join(ROOT, "build", "bench_orchestrator.json"))
    p.add_argument("--md", default=os.path.join(ROOT, "build", "bench_orchestrator.md"))
    a = p.parse_args()
    quick = {"conversations": 100, "ttft_ms": 60, "tps": 200, "catalog_scale": 0.2}
    full = {"conversations": 1000, "ttft_ms": 300, "tps": 40, "catalog_scale": 1.0}
    for k, v in (quick if a.quick else full).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.conversations < 1 or a.concurrency < 1 or a.tps < 0 or a.ttft_ms < 0:
        p.error("--conversations and --concurrency must be >= 1, --tps and --ttft-ms >= 0")
    for path in (a.server, a.sim):
        if not os.access(path, os.X_OK):
            p.error("%s is not built (./scripts/build.sh)" % path)
    harness.Args.server = os.path.abspath(a.server)
    harness.Args.source = ROOT
    with open("/proc/loadavg") as f:
        load = float(f.read().split()[0])
    mix = orch_mix.build_mix(random.Random(a.seed), a.conversations, a.catalog)
    agents, cls_bytes = estimate_overhead(a.agents_file, a.tools_file)
    result = {"args": vars(a), "cores": os.cpu_count(), "loadavg_before": load,
              "machine": platform.machine(), "kernel": platform.release(),
              "mix": dict(collections.Counter(c["kind"] for c in mix)),
              "mix_turns": sum(len(c["turns"]) for c in mix),
              "estimate": {"agents": agents, "classifier_bytes": cls_bytes}}
    tmp = tempfile.mkdtemp(prefix="trilemma-bench-orch-")
    pgdir = tempfile.mkdtemp(prefix="trilemma-bench-orch-pg-")  # given to postgres when root
    r = subprocess.run([CLUSTER, "start", pgdir], capture_output=True, text=True)
    if r.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run([CLUSTER, "stop", pgdir], capture_output=True)
        sys.exit("pg_cluster.sh start failed:\n%s" % r.stderr)
    url = r.stdout.strip().splitlines()[-1]
    try:
        result["policy"], result["policy_turns"] = one_run(
            a, "policies", os.path.abspath(a.agents_file), pgdir, url, mix, tmp)
        if not a.no_baseline:
            full_file = full_context_agents(a.agents_file, os.path.join(tmp, "full"))
            result["full"], result["full_turns"] = one_run(a, "full-context", full_file, pgdir,
                                                           url, mix, tmp)
    finally:
        subprocess.run([CLUSTER, "stop", pgdir], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    text = render(result)
    print()
    print(text)
    for path in (a.json, a.md):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(result, f, indent=1, default=str)
    with open(a.md, "w") as f:
        f.write(text)
    print("JSON: %s\nMarkdown: %s" % (a.json, a.md))


if __name__ == "__main__":
    main()
