"""test_orchestrator.py - the agents plan (issue 11) end to end: a real WebSocket client, a real
trilemmad with an agents file, and trilemma-sim as both the model provider (sim-cheap,
sim-frontier, sim-classifier acting as shopping agents) and the commerce API (/catalog/...).

What a test asserts comes from the server's events (status, products, delta, error, turn_end with
route and flags) and from the simulator's own records: the catalog's request log (GET
/catalog/_log: each call with its arrival and completion on the simulator's clock, status 0 when
the client left) and the provider's request-body log (GET /v1/_requests: the body of every model
request, so max_tokens and the context each agent received are read from what was sent).

One test starts a private PostgreSQL (tests/store/pg_cluster.sh) to read the stored calls, tool
calls and ledger; without PostgreSQL's binaries it says so and checks nothing.

Nothing depends on the catalog's data or the simulator's wording: products, titles and prices are
read from the events and logs of the same run. No sleep stands in for synchronisation, and no
test asserts a duration: concurrency is read from the catalog's own timestamps.
"""

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import tempfile

import websockets

from harness import SANITIZER_MARKERS, TIMEOUT, Args, Server, Suite, http_request, wait_until

suite = Suite("orchestrator")

QUERY_TYPES = ("product_search", "product_fact", "comparison", "policy", "order_status",
               "chitchat", "other")


# --------------------------------------------------------------------------------------------
# the simulator


class Sim:
    """One trilemma-sim process on a free port (one worker: its caches are per worker). The cheap
    tier makes no unasked mistake (--cheap-mistake-rate 0): a test asks for one by directive."""

    def __init__(self, *args):
        self.binary = os.environ["TRILEMMA_SIM"]
        self.dir = tempfile.mkdtemp(prefix="trilemma-sim-")
        self.log_path = os.path.join(self.dir, "sim.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [self.binary, "--listen", "127.0.0.1:0", "--workers", "1", "--ttft-ms", "5",
             "--ttft-jitter-ms", "0", "--tps", "400", "--cheap-mistake-rate", "0",
             "--classifier-ms", "1", *args],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.port = int(wait_until(self._port, "trilemma-sim to listen"))

    def _port(self):
        if self.proc.poll() is not None:
            raise AssertionError("trilemma-sim exited:\n" + open(self.log_path).read())
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", open(self.log_path).read())
        return m.group(1) if m else None

    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def get_json(self, path):
        r = http_request(self.port, "GET", path)
        assert r.status == 200, (path, r.status, r.body[:300])
        return json.loads(r.body)

    def catalog_seq(self):
        return self.get_json("/catalog/_log?since=0")["last"]

    def catalog_held(self):
        """Catalog requests that arrived and are not answered yet (the simulator's own count)."""
        return self.get_json("/catalog/_log?since=0")["held"]

    def catalog_log(self, since):
        return self.get_json("/catalog/_log?since=%d" % since)["requests"]

    def requests_seq(self):
        return self.get_json("/v1/_requests?since=0")["last"]

    def requests(self, since):
        """The model requests received after seq `since`: (path, model, body as a dict)."""
        out = []
        for r in self.get_json("/v1/_requests?since=%d" % since)["requests"]:
            assert not r["truncated"], r["path"]
            out.append((r["path"], r["model"], json.loads(r["body"])))
        return out

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=TIMEOUT)
        self.log.close()
        text = open(self.log_path, errors="replace").read()
        assert not [m for m in SANITIZER_MARKERS if m in text], text[-4000:]
        assert rc == 0, "trilemma-sim exited with %s" % rc


SIMS = {}


def sim(key="default", *args):
    if key not in SIMS:
        SIMS[key] = Sim(*args)
    return SIMS[key]


@suite.on_teardown
def stop_sims():
    for s in SIMS.values():
        s.stop()


# --------------------------------------------------------------------------------------------
# agents files and servers


def shipped_agents():
    """config/agents.ini as sections of (key, value) lists, the prompts made absolute, so a test
    changes a few keys and writes its own file into a temporary folder."""
    sections, cur = [], None
    with open(os.path.join(Args.source, "config", "agents.ini")) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(";"):
                continue
            if line.startswith("["):
                cur = [line[1:-1], {}]
                sections.append(cur)
                continue
            k, v = (x.strip() for x in line.split("=", 1))
            if k == "prompt":
                v = os.path.join(Args.source, "config", v)
            cur[1][k] = v
    return sections


def section(sections, name):
    for s in sections:
        if s[0] == name:
            return s[1]
    sections.append([name, {}])
    return sections[-1][1]


def write_agents(sections):
    d = tempfile.mkdtemp(prefix="trilemma-agents-")
    path = os.path.join(d, "agents.ini")
    with open(path, "w") as f:
        for name, keys in sections:
            f.write("[%s]\n" % name)
            for k, v in keys.items():
                f.write("%s = %s\n" % (k, v))
            f.write("\n")
    return path


def one_agent(cascade, routes_tokens=80, **keys):
    """An agents file with one agent 'general' (no tools) that answers every query type, and no
    classifier (the rules classify)."""
    agent = {"prompt": os.path.join(Args.source, "config", "prompts", "general.md"),
             "cascade": cascade, "context": "query", "max_steps": "1"}
    agent.update(keys.pop("agent", {}))
    secs = [["classifier", {"model": ""}], ["turn", keys.pop("turn", {})],
            ["agent general", agent]]
    for qt in QUERY_TYPES:
        secs.append(["route " + qt, {"agent": "general", "max_tokens": str(routes_tokens)}])
    return write_agents(secs)


def orch_server(s, agents=None, tools=None, extra_env=None, name="orch", config=None):
    """A trilemmad (one worker) with the agents file (the shipped one by default) whose providers
    and catalog are the simulator s."""
    u = s.url()
    env = {"OPENAI_BASE_URL": u + "/v1", "ANTHROPIC_BASE_URL": u, "GEMINI_BASE_URL": u,
           "TRILEMMA_CATALOG_URL": u, "TRILEMMA_MODEL": "openai/sim-frontier"}
    env.update(extra_env or {})
    cfg = {"model": {"model": "openai/sim-frontier", "retry_base_ms": 10, "max_retries": 0,
                     "first_token_timeout_ms": 10000, "stall_timeout_ms": 10000},
           "orchestrator": {"agents_file": agents or os.path.join(Args.source, "config",
                                                                   "agents.ini")}}
    cfg["tools"] = {"tools_file": tools or os.path.join(Args.source, "config", "tools.json")}
    for k, v in (config or {}).items():
        cfg.setdefault(k, {}).update(v)
    return Server(config=cfg, env=env, workers=1, name=name)


# --------------------------------------------------------------------------------------------
# a client


class Turn:
    def __init__(self, events):
        self.events = events
        self.end = events[-1]
        self.deltas = [e for e in events if e["type"] == "delta"]
        self.text = "".join(d["text"] for d in self.deltas)
        self.statuses = [(e["stage"], e.get("tool")) for e in events if e["type"] == "status"]
        self.products = [e["items"] for e in events if e["type"] == "products"]
        self.errors = [e for e in events if e["type"] == "error"]
        self.route = self.end.get("route", {})
        self.flags = self.end.get("flags", [])

    def check_stop(self):
        assert self.end["finish_reason"] == "stop", self.events
        assert not self.errors, self.errors
        assert self.text.strip(), self.events


async def open_session(server):
    ws = await websockets.connect(server.ws_url(), max_size=None)
    first = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert first["type"] == "session", first
    return ws


async def recv(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def send(ws, text, mid):
    await ws.send(json.dumps({"type": "user_message", "id": mid, "text": text}))


async def turn(ws, text, mid="m1"):
    await send(ws, text, mid)
    events = []
    while True:
        m = await recv(ws)
        events.append(m)
        if m["type"] == "turn_end":
            return Turn(events)


def agent_requests(reqs):
    """The agent steps among model requests (the classifier's calls left out)."""
    return [r for r in reqs if "classifier" not in r[1]]


def messages_of(body):
    """(role, text) of an OpenAI request's messages; a tool call message has its calls' names."""
    out = []
    for m in body["messages"]:
        c = m.get("content")
        if isinstance(c, list):
            c = "".join(p.get("text", "") for p in c)
        if m.get("tool_calls"):
            c = ",".join(tc["function"]["name"] for tc in m["tool_calls"])
        out.append((m["role"], c or ""))
    return out


# --------------------------------------------------------------------------------------------
# 1. routing, status events, the products event


@suite.test
async def test_each_query_type_routes_to_its_agent():
    s = sim()
    with orch_server(s) as srv:
        ws = await open_session(srv)
        t = await turn(ws, "best phone under 20000 with a big battery", "m1")
        t.check_stop()
        assert t.route == {"query_type": "product_search", "agent": "search"}, t.end
        # status before the answer: classifying, then searching, then answering; all of them
        # before the first delta; one products event before the first delta too
        stages = [st for st, _ in t.statuses]
        dedup = [x for i, x in enumerate(stages) if i == 0 or stages[i - 1] != x]
        assert dedup[0] == "classifying" and dedup[-1] == "answering", stages
        assert "searching" in dedup and dedup.index("searching") < dedup.index("answering"), stages
        kinds = [e["type"] for e in t.events]
        first_delta = kinds.index("delta")
        assert all(i < first_delta for i, k in enumerate(kinds) if k in ("status", "products")), \
            kinds
        assert len(t.products) == 1, kinds
        items = t.products[0]
        assert 1 <= len(items) <= 5, items
        for it in items:
            assert re.fullmatch(r"[A-Za-z0-9_-]+", it["id"]), it
            assert isinstance(it["title"], str) and it["title"], it
            assert isinstance(it["price"], (int, float)) and it["price"] > 0, it
            assert len(it.get("specs", [])) <= 3, it
        # the products are what the catalog's search answered (read back from the simulator)
        log = [e for e in s.catalog_log(0) if e["endpoint"] == "search" and e["status"] == 200]
        assert log, "no search reached the catalog"
        # the answer is about the slate
        assert any(it["title"] in t.text for it in items), (t.text, items)

        t = await turn(ws, "what is the battery of the second one", "m2")
        t.check_stop()
        assert t.route == {"query_type": "product_fact", "agent": "specialist"}, t.end
        t = await turn(ws, "compare the two cheapest", "m3")
        t.check_stop()
        assert t.route == {"query_type": "comparison", "agent": "search"}, t.end
        await ws.close()
        # when the rules overrule the classifier ("the second one" is no "other"), the log says
        # why in words (it once printed an uninitialised buffer)
        for line in srv.stderr_text().splitlines():
            if " classifier: " in line:
                assert re.search(r" classifier: [a-z][ -~]+$", line), line

        cases = [("what is the return policy", "policy", "specialist"),
                 ("where is order 1234-5678", "order_status", "specialist"),
                 ("hello there", "chitchat", "general"),
                 ("tell me about the history of your company", "other", "general")]
        for i, (text, qt, agent) in enumerate(cases):
            ws = await open_session(srv)
            t = await turn(ws, text, "c%d" % i)
            t.check_stop()
            assert t.route == {"query_type": qt, "agent": agent}, (text, t.end)
            if qt in ("policy", "order_status"):
                # the specialist called its tool: the status names it
                assert ("calling_tool", "get_policy" if qt == "policy" else "get_order") in \
                    t.statuses, (text, t.statuses)
            await ws.close()


# --------------------------------------------------------------------------------------------
# 2. tool arguments are validated before any request


def tools_with_required_store(path):
    """The shipped tools file, with search_products requiring a `store` argument that no model
    call of the simulator fills (it only fills properties it knows by name)."""
    with open(os.path.join(Args.source, "config", "tools.json")) as f:
        doc = json.load(f)
    for t in doc["tools"]:
        if t["name"] == "search_products":
            t["parameters"]["properties"]["store"] = {"type": "string", "maxLength": 20}
            t["parameters"]["required"] = ["store"]
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


@suite.test
async def test_bad_tool_arguments_never_reach_the_api():
    s = sim()
    d = tempfile.mkdtemp(prefix="trilemma-tools-")
    tools = tools_with_required_store(os.path.join(d, "tools.json"))
    secs = shipped_agents()
    section(secs, "agent search")["cascade"] = "openai/sim-cheap"  # nothing to escalate to
    with orch_server(s, agents=write_agents(secs), tools=tools) as srv:
        ws = await open_session(srv)
        cseq, rseq = s.catalog_seq(), s.requests_seq()
        t = await turn(ws, "find me running shoes from nike", "m1")
        t.check_stop()
        assert t.route["agent"] == "search", t.end
        # no search reached the catalog (neither the prefetch nor the model's call)
        log = s.catalog_log(cseq)
        assert not [e for e in log if e["endpoint"] == "search"], log
        # the model called search_products and was told its arguments were wrong
        reqs = agent_requests(s.requests(rseq))
        assert len(reqs) >= 2, reqs
        msgs = messages_of(reqs[1][2])
        assert ("assistant", "search_products") in msgs, msgs
        tool_msgs = [c for r, c in msgs if r == "tool"]
        assert tool_msgs and "store" in tool_msgs[0], tool_msgs
        assert "escalated:invalid_tool_call" not in t.flags, t.flags
        await ws.close()


# --------------------------------------------------------------------------------------------
# 3. parallel tool calls overlap


def overlapping(entries):
    """Each call starts before every other one ends (the catalog's own clock)."""
    return all(a["start_us"] < b["end_us"] for a in entries for b in entries if a is not b)


@suite.test
async def test_parallel_tool_calls_overlap():
    s = sim("slow_product", "--catalog-product", "ms=300")
    with orch_server(s) as srv:
        ws = await open_session(srv)
        t = await turn(ws, "best phone under 20000 with a big battery", "m1")
        t.check_stop()
        shown = t.products[0]
        assert len(shown) >= 2, shown
        cseq = s.catalog_seq()
        t = await turn(ws, "compare the two cheapest", "m2")
        t.check_stop()
        assert t.route["query_type"] == "comparison", t.end
        prods = [e for e in s.catalog_log(cseq) if e["endpoint"] == "product"]
        assert len(prods) >= 2, prods
        assert overlapping(prods), prods
        # the two cheapest of what was shown were fetched
        cheapest = sorted(shown, key=lambda it: it["price"])[:2]
        fetched = {e["target"].rsplit("/", 1)[-1] for e in prods}
        assert {it["id"] for it in cheapest} <= fetched, (cheapest, fetched)
        # and the answer is a comparison of the two (a table naming both)
        assert "|" in t.text and all(it["title"] in t.text for it in cheapest), t.text
        await ws.close()
        # in one turn: the model searches, then asks for both products in one response
        ws = await open_session(srv)
        cseq, rseq = s.catalog_seq(), s.requests_seq()
        t = await turn(ws, "compare the two cheapest laptops under 60000", "m1")
        t.check_stop()
        assert t.route["query_type"] == "comparison", t.end
        steps = agent_requests(s.requests(rseq))
        calls = [[tc["function"]["name"] for tc in m.get("tool_calls", [])]
                 for m in steps[-1][2]["messages"] if m["role"] == "assistant"]
        assert ["get_product", "get_product"] in calls, calls
        prods = [e for e in s.catalog_log(cseq) if e["endpoint"] == "product"]
        assert len(prods) == 2 and overlapping(prods), prods
        await ws.close()


# --------------------------------------------------------------------------------------------
# 4. a failed tool is reported to the model, and the turn answers


@suite.test
async def test_failed_tool_reported_and_turn_answers():
    s = sim("failing_policy", "--catalog-policy", "error_rate=1,status=503")
    with orch_server(s) as srv:
        ws = await open_session(srv)
        cseq, rseq = s.catalog_seq(), s.requests_seq()
        t = await turn(ws, "what is the return policy", "m1")
        t.check_stop()
        assert t.route["agent"] == "specialist", t.end
        log = [e for e in s.catalog_log(cseq) if e["endpoint"] == "policy"]
        assert log and all(e["status"] == 503 for e in log), log
        reqs = agent_requests(s.requests(rseq))
        # the step after the tool carries the call and its error
        after = [messages_of(b) for _, _, b in reqs if any(r == "tool" for r, _ in
                                                              messages_of(b))]
        assert after, reqs
        tool_text = [c for r, c in after[-1] if r == "tool"][0]
        assert "503" in tool_text or "error" in tool_text.lower(), tool_text
        await ws.close()


# --------------------------------------------------------------------------------------------
# 5. the loop guard


@suite.test
async def test_handoff_loop_ends_with_routing_loop():
    s = sim()
    prompt = os.path.join(Args.source, "config", "prompts", "general.md")
    secs = [["classifier", {"model": ""}], ["turn", {"max_handoffs": "3"}],
            ["agent a", {"prompt": prompt, "cascade": "openai/sim-shopper", "handoffs": "b",
                         "context": "query"}],
            ["agent b", {"prompt": prompt, "cascade": "openai/sim-shopper", "handoffs": "a",
                         "context": "query"}]]
    for qt in QUERY_TYPES:
        secs.append(["route " + qt, {"agent": "a", "max_tokens": "100"}])
    with orch_server(s, agents=write_agents(secs)) as srv:
        ws = await open_session(srv)
        rseq = s.requests_seq()
        # agent a is offered transfer_to_b and calls it; b is offered only transfer_to_a and
        # calls that (the simulator calls the first tool when the named one is not offered)
        t = await turn(ws, "[[sim:tool=transfer_to_b]] hi", "m1")
        assert t.end["finish_reason"] == "error", t.events
        assert [e["code"] for e in t.errors] == ["routing_loop"], t.errors
        assert not t.deltas, t.deltas
        assert "routing_loop" in t.flags, t.end
        # counted under its own code, not "other" (the error is sent before turn_end)
        metrics = http_request(srv.port, "GET", "/metrics").body.decode()
        assert 'trilemma_chat_errors_total{code="routing_loop"} 1\n' in metrics, \
            [l for l in metrics.splitlines() if l.startswith("trilemma_chat_errors_total")]
        reqs = s.requests(rseq)
        offered = [[tl["function"]["name"] for tl in b.get("tools", [])] for _, _, b in reqs]
        assert offered == [["transfer_to_b"], ["transfer_to_a"]], offered
        # the connection goes on
        t = await turn(ws, "[[sim:tokens=3]] hello", "m2")
        t.check_stop()
        assert t.route == {"query_type": "chitchat", "agent": "a"}, t.end
        await ws.close()


# --------------------------------------------------------------------------------------------
# 6. the cascade's escalations


def closed_port():
    """A port nobody listens on (bound, never listening: a connect is refused)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


@suite.test
async def test_escalation_on_model_error():
    s = sim()
    holder, port = closed_port()
    try:
        # the cheap model's provider refuses connections; the next model is on the simulator
        agents = one_agent("anthropic/sim-cheap, openai/sim-frontier")
        env = {"ANTHROPIC_BASE_URL": "http://127.0.0.1:%d" % port}
        with orch_server(s, agents=agents, extra_env=env) as srv:
            ws = await open_session(srv)
            rseq = s.requests_seq()
            t = await turn(ws, "[[sim:tokens=5]] hello", "m1")
            t.check_stop()
            assert "escalated:model_error" in t.flags, t.end
            assert [m for _, m, _ in s.requests(rseq)] == ["sim-frontier"]
            await ws.close()
    finally:
        holder.close()


@suite.test
async def test_escalation_on_empty_answer():
    s = sim()
    with orch_server(s, agents=one_agent("openai/sim-cheap, openai/sim-frontier")) as srv:
        ws = await open_session(srv)
        rseq = s.requests_seq()
        t = await turn(ws, "[[sim:tokens=0]] hello", "m1")
        assert t.end["finish_reason"] == "stop", t.events
        assert "escalated:empty" in t.flags, t.end
        assert [m for _, m, _ in s.requests(rseq)] == ["sim-cheap", "sim-frontier"]
        # a non-empty answer does not escalate
        rseq = s.requests_seq()
        t = await turn(ws, "[[sim:tokens=4]] hello", "m2")
        t.check_stop()
        assert not [f for f in t.flags if f.startswith("escalated:")], t.end
        assert [m for _, m, _ in s.requests(rseq)] == ["sim-cheap"]
        await ws.close()


@suite.test
async def test_escalation_on_invalid_tool_call():
    s = sim()
    d = tempfile.mkdtemp(prefix="trilemma-tools-")
    tools = tools_with_required_store(os.path.join(d, "tools.json"))
    with orch_server(s, tools=tools) as srv:  # the search agent: sim-cheap, then sim-frontier
        ws = await open_session(srv)
        rseq = s.requests_seq()
        t = await turn(ws, "find me running shoes from nike", "m1")
        t.check_stop()
        assert "escalated:invalid_tool_call" in t.flags, t.end
        models = [m for _, m, _ in agent_requests(s.requests(rseq))]
        assert models[:2] == ["sim-cheap", "sim-frontier"], models
        await ws.close()


@suite.test
async def test_escalation_on_tool_failure():
    s = sim("failing_policy", "--catalog-policy", "error_rate=1,status=503")
    secs = shipped_agents()
    section(secs, "agent specialist")["escalate_on_tool_failure"] = "yes"
    with orch_server(s, agents=write_agents(secs)) as srv:
        ws = await open_session(srv)
        rseq = s.requests_seq()
        t = await turn(ws, "what is the return policy", "m1")
        t.check_stop()
        assert "escalated:tool_failed" in t.flags, t.end
        models = [m for _, m, _ in agent_requests(s.requests(rseq))]
        assert models[0] == "sim-cheap" and models[1:] and set(models[1:]) == {"sim-frontier"}, \
            models
        await ws.close()
    # without the key (the shipped file) a failed tool does not escalate
    with orch_server(s) as srv:
        ws = await open_session(srv)
        t = await turn(ws, "what is the return policy", "m1")
        t.check_stop()
        assert not [f for f in t.flags if f.startswith("escalated:")], t.end
        await ws.close()


@suite.test
async def test_escalation_on_low_confidence():
    s = sim()
    secs = shipped_agents()
    section(secs, "classifier")["min_confidence"] = "1.0"  # nothing is that sure
    section(secs, "classifier")["deadline_ms"] = "5000"
    with orch_server(s, agents=write_agents(secs)) as srv:
        ws = await open_session(srv)
        rseq = s.requests_seq()
        t = await turn(ws, "what is the return policy", "m1")
        t.check_stop()
        assert "escalated:low_confidence" in t.flags, t.end
        models = [m for _, m, _ in agent_requests(s.requests(rseq))]
        assert models and set(models) == {"sim-frontier"}, models
        await ws.close()
    # the shipped threshold lets a clear query start on the cheap model
    with orch_server(s) as srv:
        ws = await open_session(srv)
        rseq = s.requests_seq()
        t = await turn(ws, "where is order 1234-5678", "m1")
        t.check_stop()
        assert "escalated:low_confidence" not in t.flags, t.end
        assert agent_requests(s.requests(rseq))[0][1] == "sim-cheap"
        await ws.close()


@suite.test
async def test_escalation_on_refusal_with_held_opening():
    s = sim()
    agents = one_agent("openai/sim-cheap, openai/sim-frontier", turn={"hold_opening": "yes"})
    with orch_server(s, agents=agents) as srv:
        ws = await open_session(srv)
        rseq = s.requests_seq()
        t = await turn(ws, "[[sim:echo]]I cannot help with that. Sorry about it.", "m1")
        assert t.end["finish_reason"] == "stop", t.events
        assert "escalated:refusal" in t.flags, t.end
        assert [m for _, m, _ in s.requests(rseq)] == ["sim-cheap", "sim-frontier"]
        # the cheap model's refusal was held, never shown: the text is the frontier's answer once
        assert t.text == "I cannot help with that. Sorry about it.", t.text
        rseq = s.requests_seq()
        t = await turn(ws, "[[sim:echo]]Happy to help with that. Ask away.", "m2")
        t.check_stop()
        assert t.text == "Happy to help with that. Ask away.", t.text
        assert not [f for f in t.flags if f.startswith("escalated:")], t.end
        await ws.close()


# --------------------------------------------------------------------------------------------
# 7. max_tokens per query type


@suite.test
async def test_max_tokens_per_query_type_in_the_request():
    s = sim()
    secs = shipped_agents()
    budgets = {qt: 601 + 11 * i for i, qt in enumerate(QUERY_TYPES)}  # distinct, unusual
    for qt, n in budgets.items():
        section(secs, "route " + qt)["max_tokens"] = str(n)
    section(secs, "classifier")["max_tokens"] = "57"
    section(secs, "classifier")["deadline_ms"] = "5000"
    cases = [("best phone under 20000 with a big battery", "product_search"),
             ("what is the return policy", "policy"),
             ("where is order 1234-5678", "order_status"),
             ("hello there", "chitchat"),
             ("tell me about the history of your company", "other")]
    with orch_server(s, agents=write_agents(secs)) as srv:
        for i, (text, qt) in enumerate(cases):
            ws = await open_session(srv)
            rseq = s.requests_seq()
            t = await turn(ws, text, "m%d" % i)
            t.check_stop()
            assert t.route["query_type"] == qt, (text, t.end)
            reqs = s.requests(rseq)
            cls = [b["max_tokens"] for _, m, b in reqs if "classifier" in m]
            steps = [b["max_tokens"] for _, _, b in agent_requests(reqs)]
            assert cls == [57], (text, cls)
            assert steps and set(steps) == {budgets[qt]}, (text, steps)
            if qt == "product_search":
                rseq = s.requests_seq()
                for mid, (t2, qt2) in (("f", ("what is the battery of the second one",
                                              "product_fact")),
                                       ("c", ("compare the two cheapest", "comparison"))):
                    t = await turn(ws, t2, mid)
                    t.check_stop()
                    assert t.route["query_type"] == qt2, t.end
                    steps = [b["max_tokens"] for _, _, b in agent_requests(s.requests(rseq))]
                    assert steps and set(steps) == {budgets[qt2]}, (t2, steps)
                    rseq = s.requests_seq()
            await ws.close()
    # a budget the answer exceeds: the answer is cut there and the turn ends with "length"
    with orch_server(s, agents=one_agent("openai/sim-shopper", routes_tokens=3)) as srv:
        ws = await open_session(srv)
        rseq = s.requests_seq()
        t = await turn(ws, "[[sim:tokens=10]] hello", "m1")
        assert t.end["finish_reason"] == "length" and not t.errors, t.events
        assert len(t.text.split()) == 3, t.deltas
        assert [b["max_tokens"] for _, _, b in s.requests(rseq)] == [3]
        await ws.close()


# --------------------------------------------------------------------------------------------
# 8. the context each agent receives


@suite.test
async def test_context_each_agent_receives():
    s = sim()
    with orch_server(s) as srv:
        ws = await open_session(srv)
        t1 = await turn(ws, "best phone under 20000 with a big battery", "m1")
        t1.check_stop()
        # the assistant asks a question (the general agent echoes it)
        q = "[[sim:echo]]Which brand do you prefer?"
        t2 = await turn(ws, q, "m2")
        t2.check_stop()
        assert t2.route["agent"] == "general" and t2.text == "Which brand do you prefer?", t2.end
        # the search agent (clarification): the question and the exchange it closes, the
        # current message; not the first search
        rseq = s.requests_seq()
        t3 = await turn(ws, "samsung phones under 15000", "m3")
        t3.check_stop()
        assert t3.route["agent"] == "search", t3.end
        first = agent_requests(s.requests(rseq))[0][2]
        msgs = messages_of(first)
        assert msgs[0][0] == "system", msgs
        convo = [(r, c) for r, c in msgs if r in ("user", "assistant") and not
                 (r == "assistant" and c == "search_products")]
        assert convo == [("user", q), ("assistant", "Which brand do you prefer?"),
                         ("user", "samsung phones under 15000")], convo
        assert "best phone under 20000" not in json.dumps(first), msgs
        # no question before: the current message only
        rseq = s.requests_seq()
        t4 = await turn(ws, "laptops under 50000", "m4")
        t4.check_stop()
        first = agent_requests(s.requests(rseq))[0][2]
        convo = [(r, c) for r, c in messages_of(first) if r in ("user", "assistant") and not
                 (r == "assistant" and c == "search_products")]
        assert convo == [("user", "laptops under 50000")], convo
        # the specialist (chosen_product): the product the question points at, not the others
        shown = t4.products[0]
        assert len(shown) >= 3, shown
        rseq = s.requests_seq()
        t5 = await turn(ws, "what is the weight of the second one", "m5")
        t5.check_stop()
        assert t5.route["agent"] == "specialist", t5.end
        reqs = agent_requests(s.requests(rseq))
        body = json.dumps([b for _, _, b in reqs])
        assert shown[1]["id"] in body, body[:2000]
        others = [it["id"] for i, it in enumerate(shown) if i != 1]
        assert not [i for i in others if i in body], (others, body[:2000])
        convo = [(r, c) for r, c in messages_of(reqs[0][2]) if r == "user"]
        assert convo == [("user", "what is the weight of the second one")], convo
        # the product the question points at is named to the agent before the question
        notes = [c for r, c in messages_of(reqs[0][2])[1:] if r == "system"]
        assert len(notes) == 1 and shown[1]["id"] in notes[0], messages_of(reqs[0][2])
        # the note is about the last slate the customer saw: that turn showed one product
        assert [it["id"] for it in t5.products[0]] == [shown[1]["id"]], t5.products
        rseq = s.requests_seq()
        t6 = await turn(ws, "what is the price of the first one", "m6")
        t6.check_stop()
        first = agent_requests(s.requests(rseq))[0][2]
        notes = [c for r, c in messages_of(first)[1:] if r == "system"]
        assert len(notes) == 1 and shown[1]["id"] in notes[0], messages_of(first)
        await ws.close()


# --------------------------------------------------------------------------------------------
# 9. the narration guard


@suite.test
async def test_narration_removed():
    s = sim()
    with orch_server(s, agents=one_agent("openai/sim-shopper")) as srv:
        ws = await open_session(srv)
        t = await turn(ws, "[[sim:echo]]I am now calling the catalog tool. Here is the answer.",
                       "m1")
        t.check_stop()
        assert "calling" not in t.text and "Here is the answer." in t.text, t.text
        assert t.text.strip() == "Here is the answer.", t.text
        assert "narration_removed" in t.flags, t.end
        t = await turn(ws, "[[sim:echo]]Here is the answer. It is short.", "m2")
        t.check_stop()
        assert t.text == "Here is the answer. It is short.", t.text
        assert "narration_removed" not in t.flags, t.end
        await ws.close()


# --------------------------------------------------------------------------------------------
# 10. the hallucination flag


@suite.test
async def test_ungrounded_number_flagged():
    s = sim()
    with orch_server(s) as srv:
        ws = await open_session(srv)
        t = await turn(ws, "best phone under 20000 with a big battery [[sim:mistake=wrong_number]]",
                       "m1")
        t.check_stop()
        assert "ungrounded_number" in t.flags, (t.text, t.end)
        ws2 = await open_session(srv)
        t = await turn(ws2, "best phone under 20000 with a big battery", "m1")
        t.check_stop()
        assert "ungrounded_number" not in t.flags, (t.text, t.end)
        await ws.close()
        await ws2.close()


# --------------------------------------------------------------------------------------------
# 11. the three provider formats with tools


@suite.test
async def test_three_provider_formats_with_tools():
    s = sim()
    policy = s.get_json("/catalog/policies/returns")["text"]
    policy_start = policy[:40]
    paths = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages",
             "gemini": "/v1beta/models/sim-frontier:streamGenerateContent"}
    for fmt in ("openai", "anthropic", "gemini"):
        secs = shipped_agents()
        for a in ("search", "specialist", "general"):
            section(secs, "agent " + a)["cascade"] = fmt + "/sim-frontier"
        with orch_server(s, agents=write_agents(secs), name="orch-" + fmt) as srv:
            ws = await open_session(srv)
            rseq = s.requests_seq()
            t = await turn(ws, "best phone under 20000 with a big battery", "m1")
            t.check_stop()
            assert len(t.products) == 1 and t.products[0], (fmt, t.events)
            assert any(it["title"] in t.text for it in t.products[0]), (fmt, t.text)
            assert "ungrounded_number" not in t.flags, (fmt, t.text, t.flags)
            steps = agent_requests(s.requests(rseq))
            assert steps and all(p == paths[fmt] for p, _, _ in steps), (fmt, steps)
            assert all(b.get("tools") for _, _, b in steps), fmt
            # a call the model makes itself, and its result read back in this format
            rseq = s.requests_seq()
            t = await turn(ws, "what is the return policy", "m2")
            t.check_stop()
            assert ("calling_tool", "get_policy") in t.statuses, (fmt, t.statuses)
            assert policy_start in t.text, (fmt, policy_start, t.text)
            assert len(agent_requests(s.requests(rseq))) == 2, fmt
            await ws.close()


# --------------------------------------------------------------------------------------------
# 12. cancel during a tool call


def tools_with_slow_order_timeout(path):
    """The shipped tools file, get_order waiting as long as a tool may and never retried: only a
    cancel can end its request within a test's bound."""
    with open(os.path.join(Args.source, "config", "tools.json")) as f:
        doc = json.load(f)
    for t in doc["tools"]:
        if t["name"] == "get_order":
            t["timeout_ms"], t["retries"] = 60000, 0
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


@suite.test
async def test_cancel_during_tool_call_stops_the_transfer():
    s = sim("hanging_order", "--catalog-order", "timeout_rate=1")
    d = tempfile.mkdtemp(prefix="trilemma-tools-")
    tools = tools_with_slow_order_timeout(os.path.join(d, "tools.json"))
    with orch_server(s, tools=tools) as srv:
        ws = await open_session(srv)
        cseq = s.catalog_seq()
        await send(ws, "where is order 1234-5678", "m1")
        turn_id = None
        while True:
            m = await recv(ws)
            if m["type"] == "turn_start":
                turn_id = m["turn_id"]
            if m["type"] == "status" and m["stage"] == "calling_tool":
                assert m.get("tool") == "get_order", m
                break
            assert m["type"] in ("turn_start", "status"), m
        # the status goes out when the call starts, before curl has sent the request: cancel
        # once the API holds it (a cancel before that leaves the API nothing to see)
        wait_until(lambda: s.catalog_held() == 1, "the order request to reach the API")
        await ws.send(json.dumps({"type": "cancel", "turn_id": turn_id}))
        while True:
            m = await recv(ws)
            if m["type"] == "turn_end":
                break
            assert m["type"] in ("status",), m
        assert m["finish_reason"] == "cancelled", m
        # the simulator saw the client leave the order request (status 0), and only once; the
        # tool's own timeout (60 s) is beyond the wait's bound: the cancel closed it
        entries = wait_until(lambda: [e for e in s.catalog_log(cseq) if e["endpoint"] == "order"],
                             "the order request to end")
        assert len(entries) == 1 and entries[0]["status"] == 0, entries
        assert entries[0]["fault"] == "timeout", entries
        # the session goes on
        t = await turn(ws, "hello there", "m2")
        t.check_stop()
        await ws.close()


# --------------------------------------------------------------------------------------------
# what is stored: model calls with their cascade role, tool calls with their status


PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")


class Cluster:
    """A private PostgreSQL cluster (tests/store/pg_cluster.sh), deleted at the end."""

    def __init__(self):
        self.script = os.path.join(Args.source, "tests", "store", "pg_cluster.sh")
        self.dir = tempfile.mkdtemp(prefix="trilemma-orch-pg-")
        self.url = self._run("start").splitlines()[-1]

    def _run(self, cmd):
        r = subprocess.run([self.script, cmd, self.dir], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, "pg_cluster.sh %s failed:\n%s" % (cmd, r.stderr)
        return r.stdout.strip()

    def psql(self, sql):
        cmd = [os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-F", "|", "-v",
               "ON_ERROR_STOP=1", "-h", self.dir, "-U", "postgres", "-d", "trilemma"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        r = subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=TIMEOUT,
                           cwd="/")
        assert r.returncode == 0, "psql failed: %s\n%s" % (r.stderr, sql[:500])
        return [line.split("|") for line in r.stdout.splitlines() if line]

    def stop(self):
        self._run("stop")


def rows(db, table, cols, turn_id):
    assert re.fullmatch(r"[0-9a-f]{32}", turn_id), turn_id
    return db.psql("SELECT %s FROM %s WHERE turn_id = '%s' ORDER BY ordinal" %
                   (cols, table, turn_id))


@suite.test
async def test_calls_and_tools_stored_with_roles_and_statuses():
    if not os.access(os.path.join(PG_BIN, "initdb"), os.X_OK):
        print("  (PostgreSQL binaries not found in %s: this test checks nothing)" % PG_BIN)
        return
    db = Cluster()
    try:
        s = sim("failing_policy", "--catalog-policy", "error_rate=1,status=503")
        secs = shipped_agents()
        section(secs, "agent specialist")["escalate_on_tool_failure"] = "yes"
        with orch_server(s, agents=write_agents(secs),
                         extra_env={"DATABASE_URL": db.url}) as srv:
            ws = await open_session(srv)
            t = await turn(ws, "what is the return policy", "m1")
            t.check_stop()
            assert "escalated:tool_failed" in t.flags, t.end
            tid = t.end["turn_id"]
            calls = rows(db, "llm_calls", "model, role, status", tid)
            agent_calls = [c for c in calls if c[0] != "sim-classifier"]
            assert agent_calls[0][:2] == ["sim-cheap", "model"], calls
            assert ["sim-frontier", "escalation", "ok"] in agent_calls, calls
            tools = rows(db, "tool_calls", "name, status", tid)
            assert tools and all(x == ["get_policy", "error"] for x in tools), tools
            assert ["sim-classifier", "classifier", "ok"] in calls, calls
            kinds = [k for (k,) in db.psql("SELECT kind FROM ledger WHERE turn_id = '%s'" % tid)]
            assert "escalation" in kinds and "tool" in kinds and "classifier" in kinds, kinds
            # the turn's route and flags, as turn_end showed them
            (qt, agent, flags), = db.psql("SELECT query_type, agent, array_to_string(flags, ',') "
                                          "FROM turns WHERE id = '%s'" % tid)
            assert (qt, agent) == (t.route["query_type"], t.route["agent"]), (qt, agent)
            assert sorted(flags.split(",")) == sorted(t.flags), (flags, t.flags)
            await ws.close()
        s = sim("hanging_order", "--catalog-order", "timeout_rate=1")
        with orch_server(s, extra_env={"DATABASE_URL": db.url}) as srv:
            ws = await open_session(srv)
            await send(ws, "where is order 1234-5678", "m1")
            tid = None
            while True:
                m = await recv(ws)
                tid = m.get("turn_id", tid)
                if m["type"] == "status" and m["stage"] == "calling_tool":
                    break
            await ws.send(json.dumps({"type": "cancel", "turn_id": tid}))
            while m["type"] != "turn_end":
                m = await recv(ws)
            assert m["finish_reason"] == "cancelled", m
            assert rows(db, "tool_calls", "name, status", tid) == [["get_order", "cancelled"]]
            assert db.psql("SELECT finish_reason FROM turns WHERE id = '%s'" % tid) == \
                [["cancelled"]]
            await ws.close()
    finally:
        db.stop()


if __name__ == "__main__":
    suite.main()
