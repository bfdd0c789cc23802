"""test_budget.py - budgets and guards (issue 15, item 4) end to end: a real trilemmad with the
shipped agents, trilemma-sim as model provider and commerce API, and a private PostgreSQL
(tests/store/pg_cluster.sh).

  - [budget] user_daily_micros: a user who spent the day's limit gets budget_exceeded (limit,
    spent, currency, resets_at = the next UTC midnight), no turn starts, the connection stays
    usable; another user is not affected
  - the limit survives a restart: a new process seeds the day's spend from the ledger
  - [budget] deployment_daily_micros: once the deployment spent it, every user is refused
  - another process's spend reaches this one with the next periodic read of the ledger
  - [budget] turn_max_micros and [route] max_cost_micros: a multi-step agent loop (a tool call,
    then a further model call) stops before the further call with error turn_cost_limit and
    finish_reason "error", and the turn is stored with what it cost

Expected amounts are read from PostgreSQL (the ledger), never from the simulator's prices. No
sleeps; exit 77 without PostgreSQL's binaries.
"""

import asyncio
import datetime
import json
import os
import re
import sys
import tempfile

import websockets

from harness import TIMEOUT, Args, Server, Suite, http_request, make_jwt, wait_until
from test_admin_api import PG_BIN, Cluster, Sim, skip_without_pg

suite = Suite("budget")
JWT_SECRET = "jwt-secret-for-the-budget-tests-0123456789abcdef"
STATE = {}


def setup():
    if STATE:
        return STATE
    STATE["db"] = Cluster()
    STATE["sim"] = Sim()
    agents_dir = tempfile.mkdtemp(prefix="trilemma-budget-agents-")
    with open(os.path.join(Args.source, "config", "agents.ini")) as f:
        text = f.read()
    prompts = os.path.join(Args.source, "config") + "/"
    text = re.sub(r"^(prompt\s*=\s*)", r"\1" + prompts, text, flags=re.M)
    STATE["agents_text"] = text
    STATE["agents_dir"] = agents_dir
    return STATE


def agents_file(name, extra=""):
    path = os.path.join(STATE["agents_dir"], name + ".ini")
    with open(path, "w") as f:
        f.write(STATE["agents_text"] + "\n" + extra)
    return path


def server(name, budget, agents=None):
    u = STATE["sim"].url()
    env = {"OPENAI_BASE_URL": u + "/v1", "ANTHROPIC_BASE_URL": u, "GEMINI_BASE_URL": u,
           "TRILEMMA_CATALOG_URL": u, "TRILEMMA_MODEL": "openai/sim-frontier",
           "DATABASE_URL": STATE["db"].url, "TRILEMMA_JWT_SECRET": JWT_SECRET}
    cfg = {"model": {"model": "openai/sim-frontier", "retry_base_ms": 10, "max_retries": 0},
           "session": {"rate_messages": 100000},
           "orchestrator": {"agents_file": agents or agents_file("plain")},
           "tools": {"tools_file": os.path.join(Args.source, "config", "tools.json")},
           "budget": budget}
    return Server(config=cfg, env=env, workers=2, name=name).start()


@suite.on_teardown
def teardown():
    if "sim" in STATE:
        STATE["sim"].stop()
    if "db" in STATE:
        STATE["db"].stop()


class Client:
    def __init__(self, ws):
        self.ws = ws
        self.n = 0

    @classmethod
    async def connect(cls, srv, user):
        exp = int(datetime.datetime.now().timestamp()) + 3600
        url = srv.ws_url() + "?token=" + make_jwt({"sub": user, "exp": exp}, JWT_SECRET)
        ws = await websockets.connect(url, max_size=None)
        first = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert first["type"] == "session", first
        return cls(ws)

    async def send(self, text):
        self.n += 1
        mid = "m%d" % self.n
        await self.ws.send(json.dumps({"type": "user_message", "id": mid, "text": text}))
        return mid

    async def recv(self):
        return json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))

    async def turn(self, text):
        """A turn that starts: every event up to its turn_end."""
        mid = await self.send(text)
        events = []
        while True:
            m = await self.recv()
            events.append(m)
            if m["type"] == "turn_end":
                return events
            assert m["type"] != "error" or m.get("turn_id"), (mid, m)

    async def refused(self, text):
        """A message that gets an error instead of a turn: the error."""
        mid = await self.send(text)
        m = await self.recv()
        assert m["type"] == "error" and m.get("id") == mid, m
        return m

    async def close(self):
        await self.ws.close()


def ledger_spend(user=None):
    where = "WHERE l.kind <> 'cache_saving'"
    if user is not None:
        where += " AND c.user_sub = '%s'" % user
    rows = STATE["db"].psql("SELECT coalesce(sum(l.amount_micros), 0) FROM ledger l "
                            "JOIN conversations c ON c.id = l.conversation_id " + where)
    return int(rows[0][0])


def turns_of(user):
    return int(STATE["db"].psql("SELECT count(*) FROM turns t JOIN conversations c ON "
                                "c.id = t.conversation_id WHERE c.user_sub = '%s'" % user)[0][0])


def stored(turn_id):
    return STATE["db"].psql("SELECT count(*) FROM turns WHERE id = '%s'" % turn_id) == [["1"]]


def next_utc_midnight():
    now = datetime.datetime.now(datetime.timezone.utc)
    d = (now + datetime.timedelta(days=1)).date()
    return d.strftime("%Y-%m-%dT00:00:00Z")


def metric(srv, name):
    body = http_request(srv.port, "GET", "/metrics").body.decode()
    m = re.search(r"^%s (\d+)$" % re.escape(name), body, re.M)
    return int(m.group(1)) if m else 0


def check_refusal(err, limit, spent, limit_micros):
    assert err["code"] == "budget_exceeded", err
    assert err["limit"] == limit, err
    assert err["spent_micros"] == spent and err["limit_micros"] == limit_micros, (err, spent)
    assert err["currency"] == "INR", err
    assert err["resets_at"] == next_utc_midnight(), err
    assert 0 < err["retry_after_ms"] <= 86400000, err
    assert "turn_id" not in err, err
    assert err["resets_at"] in err["message"], err


# --------------------------------------------------------------------------------------------


@suite.test
async def test_user_daily_limit_refuses_that_user_only_and_survives_a_restart():
    setup()
    # the limit is alice's first turn's cost: the turn runs (nothing spent yet), the next is refused
    srv = server("user-limit", {"user_daily_micros": 1, "refresh_ms": 3600000})
    try:
        alice = await Client.connect(srv, "alice")
        end = (await alice.turn("what is the return policy for shoes"))[-1]
        assert end["finish_reason"] == "stop" and end["cost"]["micros"] > 0, end
        wait_until(lambda: stored(end["turn_id"]), "alice's turn stored")
        spent = ledger_spend("alice")
        assert spent == end["cost"]["micros"], (spent, end)
        err = await alice.refused("and for bags?")
        check_refusal(err, "user_daily", spent, 1)
        # nothing started, and the connection is usable: it answers the next message the same way
        err2 = await alice.refused("and for watches?")
        assert err2["code"] == "budget_exceeded" and err2["id"] != err["id"], err2
        assert turns_of("alice") == 1
        # another user is not affected, on the same process
        bob = await Client.connect(srv, "bob")
        end_b = (await bob.turn("what is the return policy for phones"))[-1]
        assert end_b["finish_reason"] == "stop", end_b
        assert metric(srv, 'trilemma_budget_refused_total{limit="user_daily"}') == 2
        await alice.close()
        await bob.close()
    finally:
        srv.stop()
    # a new process knows alice's spend from the ledger, before her first message
    srv2 = server("user-limit-restarted", {"user_daily_micros": spent + 1, "refresh_ms": 3600000})
    try:
        alice = await Client.connect(srv2, "alice")
        # spent < limit: one more turn runs
        end = (await alice.turn("what is the return policy for laptops"))[-1]
        assert end["finish_reason"] == "stop", end
        await alice.close()
    finally:
        srv2.stop()
    spent = ledger_spend("alice")
    srv3 = server("user-limit-restarted-again", {"user_daily_micros": spent,
                                                  "refresh_ms": 3600000})
    try:
        alice = await Client.connect(srv3, "alice")
        check_refusal(await alice.refused("and for tablets?"), "user_daily", spent, spent)
        carol = await Client.connect(srv3, "carol")
        end = (await carol.turn("what is the return policy for tablets"))[-1]
        assert end["finish_reason"] == "stop", end
        await alice.close()
        await carol.close()
    finally:
        srv3.stop()


@suite.test
async def test_deployment_daily_limit_refuses_everyone_once_spent():
    setup()
    before = ledger_spend()
    srv = server("deployment-limit", {"deployment_daily_micros": before + 1,
                                      "refresh_ms": 3600000})
    try:
        dave = await Client.connect(srv, "dave")
        end = (await dave.turn("what is the return policy for cameras"))[-1]
        assert end["finish_reason"] == "stop" and end["cost"]["micros"] > 0, end
        wait_until(lambda: stored(end["turn_id"]), "dave's turn stored")
        erin = await Client.connect(srv, "erin")  # never spent anything
        err = await erin.refused("what is the return policy for lamps")
        check_refusal(err, "deployment_daily", ledger_spend(), before + 1)
        assert turns_of("erin") == 0
        await dave.close()
        await erin.close()
    finally:
        srv.stop()


@suite.test
async def test_another_process_spend_arrives_with_the_next_read():
    setup()
    limit = {"user_daily_micros": 1, "refresh_ms": 100}
    p1 = server("pod-1", limit)
    p2 = server("pod-2", limit)
    try:
        frank = await Client.connect(p2, "frank")
        end = (await frank.turn("what is the return policy for sofas"))[-1]
        wait_until(lambda: stored(end["turn_id"]), "frank's turn stored")
        # the first read of pod 1 that started after the turn was in the ledger has it
        n = metric(p1, 'trilemma_budget_reads_total{result="ok"}')
        wait_until(lambda: metric(p1, 'trilemma_budget_reads_total{result="ok"}') >= n + 2,
                   "two more reads of the ledger on pod 1")
        frank1 = await Client.connect(p1, "frank")
        check_refusal(await frank1.refused("and for chairs?"), "user_daily",
                      ledger_spend("frank"), 1)
        await frank.close()
        await frank1.close()
    finally:
        p1.stop()
        p2.stop()


async def tool_loop_turn(srv, user, text):
    c = await Client.connect(srv, user)
    events = await c.turn(text)
    await c.close()
    return events


@suite.test
async def test_turn_cost_ceiling_stops_a_multi_step_agent_loop():
    setup()
    # a policy question that calls get_policy first: step 1 (a tool call), then step 2 (the answer)
    text = "[[sim:tool=get_policy]] what is the return policy on %s"
    generous = server("ceiling-generous", {"turn_max_micros": 10 ** 12})
    try:
        events = await tool_loop_turn(generous, "gina", text % "mugs")
        end = events[-1]
        assert end["finish_reason"] == "stop", events
        wait_until(lambda: stored(end["turn_id"]), "the turn stored")
        steps = STATE["db"].psql("SELECT count(*) FROM llm_calls WHERE turn_id = '%s' AND "
                                 "agent <> ''" % end["turn_id"])
        assert int(steps[0][0]) >= 2, steps  # a multi-step loop, when nothing stops it
    finally:
        generous.stop()
    for name, budget, agents in [
            ("ceiling-global", {"turn_max_micros": 1}, None),
            ("ceiling-route", {}, None)]:
        if name == "ceiling-route":
            agents = agents_file("route-ceiling", "")
            with open(agents) as f:
                t = f.read()
            t = t.replace("[route policy]\n", "[route policy]\nmax_cost_micros = 1\n")
            with open(agents, "w") as f:
                f.write(t)
        srv = server(name, budget, agents)
        try:
            events = await tool_loop_turn(srv, "hana", text % ("plates " + name))
            end = events[-1]
            errs = [e for e in events if e["type"] == "error"]
            assert [e["code"] for e in errs] == ["turn_cost_limit"], events
            assert errs[0]["turn_id"] == end["turn_id"], errs
            assert end["finish_reason"] == "error" and end["cost"]["micros"] > 0, end
            wait_until(lambda: stored(end["turn_id"]), "the stopped turn stored")
            row = STATE["db"].psql("SELECT cost_micros, finish_reason, array_to_string(flags, ',') "
                                   "FROM turns WHERE id = '%s'" % end["turn_id"])
            assert row[0][0] == str(end["cost"]["micros"]) and row[0][1] == "error", row
            assert "turn_cost_limit" in row[0][2].split(","), row
            steps = STATE["db"].psql("SELECT count(*) FROM llm_calls WHERE turn_id = '%s' AND "
                                     "agent <> ''" % end["turn_id"])
            assert steps == [["1"]], steps  # stopped before the further model call
            tools = STATE["db"].psql("SELECT count(*) FROM tool_calls WHERE turn_id = '%s'"
                                     % end["turn_id"])
            assert int(tools[0][0]) >= 1, tools
        finally:
            srv.stop()


if __name__ == "__main__":
    skip_without_pg()
    sys.exit(suite.main())
