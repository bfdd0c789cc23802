"""test_store_e2e.py - the store end to end: real clients, a real trilemmad, and a private
PostgreSQL cluster started here (tests/store/pg_cluster.sh: initdb in a temporary folder, unix
socket only, torn down at the end).

  - what a client was shown (turn_end usage and cost, deltas) is what psql finds: the
    conversation, its turns, messages, model calls, and a ledger that adds up to each turn's cost
    (the simulated provider, build/trilemma-sim, gives real prices)
  - the read API (/v1/...) returns the same; 401 / 404 / 400 / 405 / 503 and the API being off
  - resume: another user's conversation is refused; the owner's replays the deltas after
    after_seq exactly
  - outage: PostgreSQL stopped like a crash in the middle of a load of chats, chatting goes on
    (journaled; /readyz degraded), PostgreSQL back, the journal drains, and every turn any client
    saw end is stored exactly once, with all of its rows
  - kill -9 of the server while turns sit in its journal: the next server with the same journal
    folder stores every one of them exactly once
  - journal full: new turns get storage_unavailable and nothing of them is written, while
    every turn that ended is stored once PostgreSQL is back

No sleep stands in for synchronisation: a test waits for frames, for a condition on /readyz,
/metrics or the database (harness.wait_until), or for a process; TIMEOUT only bounds the wait.
No test asserts a duration. Exit status 77 (skipped) when PostgreSQL's binaries are missing.
"""

import asyncio
import atexit
import datetime
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile

import websockets

from harness import TIMEOUT, Conn, Server, Suite, build_request, http_request, make_jwt, wait_until

suite = Suite("store_e2e")

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
ADMIN = "admin-token-for-the-e2e-tests"
JWT_SECRET = "jwt-secret-for-the-store-e2e-tests-0123456789"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
# a load: no rate limit; a turn of four words takes some 80 ms, so six clients make about 75
# turns a second (a journal that a shared 2-core machine replays in seconds)
LOAD = {"session": {"echo_delay_ms": 20, "rate_messages": 1000000, "rate_window_ms": 1000}}


# --------------------------------------------------------------------------------------------
# PostgreSQL


class Cluster:
    """The private cluster: start / pause (stop -m immediate, data kept) / stop (deleted)."""

    def __init__(self):
        self.script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "store",
                                   "pg_cluster.sh")
        self.dir = tempfile.mkdtemp(prefix="trilemma-e2e-pg-")
        self.running = False
        atexit.register(self.stop)  # also when a test or the teardown fails (idempotent)
        self.url = self.start()

    def _run(self, cmd):
        r = subprocess.run([self.script, cmd, self.dir], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, "pg_cluster.sh %s failed:\n%s" % (cmd, r.stderr)
        return r.stdout.strip()

    def start(self):
        url = self._run("start").splitlines()[-1]
        self.running = True
        return url

    def pause(self):
        self.running = False
        self._run("pause")

    def ensure_running(self):
        """After a test, whatever happened in it: the next tests need a database."""
        if not self.running:
            self.start()

    def stop(self):
        self._run("stop")

    def psql(self, sql):
        """Rows of the last statement of sql (list of lists of text; NULL is '')."""
        cmd = [os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-F", "|", "-v",
               "ON_ERROR_STOP=1", "-h", self.dir, "-U", "postgres", "-d", "trilemma"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        r = subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=TIMEOUT,
                           cwd="/")
        assert r.returncode == 0, "psql failed: %s\n%s" % (r.stderr, sql[:500])
        return [line.split("|") for line in r.stdout.splitlines() if line]


PG = None


def pg():
    global PG
    if PG is None:
        PG = Cluster()
    return PG


def ids_literal(ids):
    """A text[] literal of turn / conversation ids (checked to be 32 hex: safe to inline)."""
    ids = list(ids)
    for i in ids:
        assert HEX32.match(i), i
    return "'{%s}'::text[]" % ",".join(ids)


def stored_counts(ids):
    """{turn id: (turns rows, messages rows, llm_calls rows, ledger rows)} for ids."""
    arr = ids_literal(ids)
    counts = {i: [0, 0, 0, 0] for i in ids}
    for k, (table, col) in enumerate((("turns", "id"), ("messages", "turn_id"),
                                      ("llm_calls", "turn_id"), ("ledger", "turn_id"))):
        for row_id, n in pg().psql("SELECT %s, count(*) FROM %s WHERE %s = ANY(%s) GROUP BY 1"
                                   % (col, table, col, arr)):
            counts[row_id][k] = int(n)
    return counts


def check_stored_exactly_once(ids):
    """Every turn in ids is stored once, with its two messages, one model call, one ledger line
    (an echo turn), and its lines add up to its cost."""
    assert ids, "no turns to check"
    counts = stored_counts(ids)
    bad = {i: c for i, c in counts.items() if c != [1, 2, 1, 1]}
    assert not bad, "%d of %d turns not stored exactly once (turns, messages, calls, ledger): %r" % (
        len(bad), len(ids), dict(list(bad.items())[:5]))
    rows = pg().psql("SELECT t.id FROM turns t WHERE t.id = ANY(%s) AND t.cost_micros <> "
                     "(SELECT coalesce(sum(amount_micros), 0) FROM ledger l WHERE "
                     "l.turn_id = t.id AND l.created_at = t.started_at)" % ids_literal(ids))
    assert not rows, "ledger does not add up for %r" % rows


# --------------------------------------------------------------------------------------------
# servers, HTTP, metrics


SIM = None
SAVED = {}  # what one test leaves for the next (the sim chat)


def sim():
    global SIM
    if SIM is None:
        from test_relay import Sim  # the simulated provider, as the relay tests run it

        SIM = Sim()
    return SIM


def db_env(**extra):
    env = {"DATABASE_URL": pg().url}
    env.update(extra)
    return env


def sim_server():
    """A server answered by the simulated OpenAI provider (real prices), with the read API on."""
    env = db_env(TRILEMMA_ADMIN_TOKEN=ADMIN, TRILEMMA_MODEL="openai/sim-shopper")
    env.update(sim().base_urls())
    return suite.server("sim", config={"model": {"retry_base_ms": 10}}, env=env)


def api(srv, path, token=ADMIN, method="GET"):
    headers = {"Authorization": "Bearer " + token} if token is not None else {}
    return http_request(srv.port, method, path, headers=headers)


def metric(srv, name):
    body = http_request(srv.port, "GET", "/metrics").body.decode()
    m = re.search(r"^%s (\d+)$" % re.escape(name), body, re.M)
    return int(m.group(1)) if m else 0


def readyz(srv):
    r = http_request(srv.port, "GET", "/readyz")
    return r.status, r.body.decode()


def storage_state(srv):
    """'ok', 'degraded' or 'refusing' from /readyz."""
    status, body = readyz(srv)
    if "storage: ok" in body:
        return "ok"
    if "degraded" in body:
        return "degraded"
    if "refusing" in body:
        assert status == 503, body
        return "refusing"
    raise AssertionError("unexpected /readyz: %d %r" % (status, body))


async def wait_for(pred, what):
    """harness.wait_until in a thread, so the clients' event loop keeps running meanwhile."""
    return await asyncio.to_thread(wait_until, pred, what)


# --------------------------------------------------------------------------------------------
# chat clients


class Chat:
    def __init__(self, ws, session):
        self.ws = ws
        self.session = session
        self.cid = session["conversation_id"]

    @classmethod
    async def connect(cls, srv, token=None):
        url = srv.ws_url() + ("?token=" + token if token else "")
        ws = await websockets.connect(url, ping_interval=None, max_size=1 << 22,
                                      open_timeout=TIMEOUT, close_timeout=TIMEOUT)
        session = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert session["type"] == "session", session
        return cls(ws, session)

    async def recv(self):
        return json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))

    async def send(self, obj):
        await self.ws.send(json.dumps(obj))

    async def turn(self, mid, text):
        """Send a message; returns (turn_id or None, deltas, turn_end or None, errors).
        turn_id None: refused before it started (the error is in errors)."""
        await self.send({"type": "user_message", "id": mid, "text": text})
        ev = await self.recv()
        if ev["type"] == "error":
            return None, [], None, [ev]
        assert ev["type"] == "turn_start" and ev["id"] == mid, ev
        tid, deltas, errors = ev["turn_id"], [], []
        while True:
            ev = await self.recv()
            if ev["type"] == "delta":
                deltas.append(ev)
            elif ev["type"] == "error":
                assert ev.get("turn_id") == tid, ev
                errors.append(ev)
            else:
                assert ev["type"] == "turn_end" and ev["turn_id"] == tid, ev
                assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
                return tid, deltas, ev, errors

    async def ok_turn(self, mid, text):
        tid, deltas, end, errors = await self.turn(mid, text)
        assert tid and not errors, errors
        assert end["finish_reason"] == "stop", end
        return tid, deltas, end

    async def close(self):
        await self.ws.close(1000, "bye")


class Load:
    """n clients chatting in a loop until stopped; collects the turns each client saw end
    (turn_end with no error for that turn) and everything else."""

    def __init__(self, srv, n):
        self.srv = srv
        self.n = n
        self.ended = []  # turn ids
        self.failed = []  # (turn id or None, errors)
        self.stop = asyncio.Event()
        self.cond = asyncio.Condition()
        self.tasks = []

    async def start(self):
        self.tasks = [asyncio.create_task(self._client(k)) for k in range(self.n)]
        await self.wait_turns(self.n)  # the load is running

    async def _client(self, k):
        c = await Chat.connect(self.srv)
        i = 0
        while not self.stop.is_set():
            i += 1
            tid, _, end, errors = await c.turn("c%d-%d" % (k, i), "load %d %d alpha beta" % (k, i))
            async with self.cond:
                if tid and end and not errors:
                    self.ended.append(tid)
                else:
                    self.failed.append((tid, errors))
                self.cond.notify_all()
        await c.close()

    async def wait_turns(self, n):
        """Until n turns in all have ended (from the start of the load)."""
        async with self.cond:
            await asyncio.wait_for(self.cond.wait_for(lambda: len(self.ended) >= n), TIMEOUT)

    async def finish(self):
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), TIMEOUT)


def today():
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


# --------------------------------------------------------------------------------------------
# tests


async def sim_chat_async():
    """Three turns priced by the simulated provider: (conversation id, [(turn id, text, answer,
    turn_end)]), made once and kept for the tests that read them back."""
    if "sim_chat" not in SAVED:
        c = await Chat.connect(sim_server())
        shown = []
        for i, text in enumerate(("[[sim:tokens=5]] running shoes under 3000?",
                                  "[[sim:echo]]and in blue, size 9",
                                  "[[sim:tokens=12]] thanks")):
            tid, deltas, end = await c.ok_turn("m%d" % i, text)
            shown.append((tid, text, "".join(d["text"] for d in deltas), end))
        await c.close()
        SAVED["sim_chat"] = (c.cid, shown)
    return SAVED["sim_chat"]


def sim_chat():
    return SAVED.get("sim_chat") or asyncio.run(sim_chat_async())


@suite.test
async def test_a_chat_is_in_postgresql_and_its_ledger_adds_up_to_what_the_client_saw():
    cid, shown = await sim_chat_async()

    rows = pg().psql("SELECT user_sub = '' FROM conversations WHERE id = '%s'" % cid)
    assert rows == [["t"]], rows  # one conversation, anonymous
    turns = pg().psql(
        "SELECT id, finish_reason, input_tokens, cached_input_tokens, cache_write_tokens, "
        "output_tokens, reasoning_tokens, cost_micros, currency FROM turns "
        "WHERE conversation_id = '%s' ORDER BY started_at" % cid)
    assert [t[0] for t in turns] == [s[0] for s in shown], (turns, shown)
    ledger = dict(pg().psql("SELECT turn_id, sum(amount_micros) FROM ledger "
                            "WHERE conversation_id = '%s' GROUP BY turn_id" % cid))
    for row, (tid, _, _, end) in zip(turns, shown):
        u = end["usage"]
        assert row[1] == end["finish_reason"], (row, end)
        assert [int(x) for x in row[2:7]] == [
            u["input_tokens"], u["cached_input_tokens"], u["cache_write_tokens"],
            u["output_tokens"], u["reasoning_tokens"]], (row, end)
        assert int(row[7]) == end["cost"]["micros"] and row[8] == end["cost"]["currency"], (row, end)
        # the ledger adds up to what the client was shown, and the provider is not free
        assert int(ledger[tid]) == end["cost"]["micros"] > 0, (ledger, end)
    msgs = pg().psql("SELECT turn_id, ordinal, role, content FROM messages "
                     "WHERE conversation_id = '%s' ORDER BY created_at, ordinal" % cid)
    want = []
    for tid, text, answer, _ in shown:
        want += [[tid, "0", "user", text], [tid, "1", "assistant", answer]]
    assert msgs == want, (msgs, want)
    calls = pg().psql("SELECT provider, model, role, status FROM llm_calls "
                      "WHERE conversation_id = '%s'" % cid)
    assert calls == [["openai", "sim-shopper", "model", "ok"]] * 3, calls


@suite.test
def test_the_read_api_returns_what_was_stored():
    srv = sim_server()
    cid, shown = sim_chat()
    r = api(srv, "/v1/conversations/" + cid)
    assert r.status == 200 and r.header("content-type").startswith("application/json"), r
    doc = r.json()
    assert doc["id"] == cid and doc["owner"] == "" and doc["created_at"].endswith("Z"), doc
    assert [t["id"] for t in doc["turns"]] == [s[0] for s in shown], doc
    for t, (tid, text, answer, end) in zip(doc["turns"], shown):
        assert t["usage"] == end["usage"] and t["finish_reason"] == end["finish_reason"], (t, end)
        assert t["cost_micros"] == end["cost"]["micros"] and t["currency"] == "INR", (t, end)
        assert t["usd_to_inr"] == 84 and t["latency_ms"]["total"] == end["latency_ms"]["total"], t
        assert t["deltas"] >= 1 and t["answer_bytes"] == len(answer.encode()), t
        assert sum(c["cost_micros"] for c in t["llm_calls"]) == t["cost_micros"], t
        assert [(c["provider"], c["model"], c["role"]) for c in t["llm_calls"]] == [
            ("openai", "sim-shopper", "model")], t
    assert [m["content"] for m in doc["messages"]] == [x for s in shown for x in s[1:3]], doc
    total = sum(s[3]["cost"]["micros"] for s in shown)
    assert doc["totals"] == [{"currency": "INR", "turns": 3, "cost_micros": total, "usage": {
        k: sum(s[3]["usage"][k] for s in shown) for k in shown[0][3]["usage"]}}], doc["totals"]

    led = api(srv, "/v1/conversations/%s/ledger" % cid).json()
    assert [t["turn_id"] for t in led["turns"]] == [s[0] for s in shown], led
    for t, s in zip(led["turns"], shown):
        assert t["total_micros"] == t["cost_micros"] == s[3]["cost"]["micros"], (t, s)
        assert [(x["line"], x["kind"], x["provider"]) for x in t["lines"]] == [
            (0, "model", "openai")], t
        assert sum(x["amount_micros"] for x in t["lines"]) == t["total_micros"], t
    assert led["totals"] == [{"currency": "INR", "turns": 3, "lines": 3, "cost_micros": total}], led

    day = today()
    by_conv = api(srv, "/v1/costs?from=%s&to=%s&group_by=conversation" % (day, day)).json()
    mine = [g for g in by_conv["groups"] if g["conversation_id"] == cid]
    assert mine and mine[0]["cost_micros"] == total and mine[0]["turns"] == 3, by_conv
    by_model = api(srv, "/v1/costs?group_by=model&from=%s&to=%s" % (day, day)).json()
    assert by_model["from"] == by_model["to"] == day and by_model["truncated"] is False, by_model
    sim_rows = [g for g in by_model["groups"] if (g["provider"], g["model"]) == (
        "openai", "sim-shopper")]
    assert sim_rows and sim_rows[0]["cost_micros"] >= total, by_model
    by_day = api(srv, "/v1/costs?from=%s" % day).json()  # to: today; group_by: day
    assert by_day["to"] == day and by_day["group_by"] == "day", by_day
    assert [g["day"] for g in by_day["groups"]] == [day], by_day
    grand = sum(t["cost_micros"] for t in by_day["totals"])
    assert grand == sum(g["cost_micros"] for g in by_model["groups"]) >= total, (by_day, by_model)

    # HEAD: the GET's status, no body
    r = api(srv, "/v1/conversations/" + cid, method="HEAD")
    assert r.status == 200 and r.body == b"", r


@suite.test
def test_the_read_api_refuses_what_it_should():
    srv = sim_server()
    cid = sim_chat()[0]
    for path in ("/v1/conversations/" + cid, "/v1/costs", "/v1/anything"):
        r = api(srv, path, token=None)
        assert r.status == 401 and r.header("www-authenticate", "").startswith("Bearer"), r
        r = api(srv, path, token=ADMIN + "x")
        assert r.status == 401 and "invalid_token" in r.header("www-authenticate", ""), r
    for path in ("/v1/conversations/0123456789abcdef0123456789abcdef",  # unknown
                 "/v1/conversations/0123456789abcdef0123456789abcdef/ledger",
                 "/v1/conversations/" + cid.upper(),  # not lowercase hex
                 "/v1/conversations/" + cid[:31], "/v1/conversations/" + cid + "/x",
                 "/v1/nothing"):
        r = api(srv, path)
        assert r.status == 404 and r.json()["error"] == "not_found", (path, r)
    for query, word in (("from=2025-02-30", "from"), ("to=2025-13-01", "to"),
                        ("from=yesterday", "from"), ("from=2025-03-02&to=2025-03-01", "from"),
                        ("group_by=provider", "group_by"), ("groupby=model", "groupby"),
                        ("from=2025-01-01&from=2025-01-02", "from")):
        r = api(srv, "/v1/costs?" + query)
        assert r.status == 400 and r.json()["error"] == "bad_request", (query, r)
        assert word in r.json()["message"], (query, r.json())
    r = api(srv, "/v1/costs", method="DELETE")
    assert r.status == 405 and "GET" in r.header("allow", ""), r

    # no admin token configured: the API is not there, whatever the client sends
    with Server(env=db_env(), name="no-admin") as plain:
        r = api(plain, "/v1/conversations/" + cid)
        assert r.status == 404 and r.json()["error"] == "not_found", r
    # no database: 503
    with Server(env={"TRILEMMA_ADMIN_TOKEN": ADMIN}, name="no-db") as nodb:
        r = api(nodb, "/v1/conversations/" + cid)
        assert r.status == 503 and r.json()["error"] == "unavailable", r
        assert api(nodb, "/v1/costs?from=2025-02-30").status == 400  # checked before the database


@suite.test
def test_the_read_api_keeps_order_on_keep_alive_and_survives_clients_that_leave():
    srv = sim_server()
    cid = sim_chat()[0]
    auth = {"Authorization": "Bearer " + ADMIN}
    paths = ["/v1/conversations/%s/ledger" % cid, "/v1/costs?from=2025-02-30",
             "/v1/conversations/" + cid, "/healthz", "/v1/costs?group_by=model"]
    with Conn(srv.port) as c:
        # pipelined: each answer waits for the one before it, deferred or not
        c.send(b"".join(build_request("GET", p, auth) for p in paths))
        got = [c.read_response() for _ in paths]
    assert [r.status for r in got] == [200, 400, 200, 200, 200], got
    assert got[0].json()["conversation_id"] == cid and got[2].json()["id"] == cid, got
    # clients that send a request and leave at once (reset): the read is dropped, not answered
    for _ in range(20):
        c = Conn(srv.port)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.send(build_request("GET", "/v1/conversations/" + cid, auth))
        c.close()
    assert api(srv, "/v1/conversations/" + cid).status == 200


@suite.test
async def test_resume_is_for_the_owner_only_and_replays_after_after_seq_exactly():
    env = db_env(TRILEMMA_JWT_SECRET=JWT_SECRET)
    exp = int(datetime.datetime.now().timestamp()) + 3600
    alice = make_jwt({"sub": "alice", "exp": exp}, JWT_SECRET)
    bob = make_jwt({"sub": "bob", "exp": exp}, JWT_SECRET)
    with Server(config={"session": {"echo_delay_ms": 1}}, env=env, name="jwt") as srv:
        a = await Chat.connect(srv, alice)
        assert a.session["user"] == "alice", a.session
        await a.ok_turn("m1", "first question")
        tid, deltas, end = await a.ok_turn("m2", "one two three four five six")
        assert len(deltas) == 6, deltas
        await a.close()
        assert pg().psql("SELECT user_sub FROM conversations WHERE id = '%s'" % a.cid) == [
            ["alice"]]

        b = await Chat.connect(srv, bob)
        await b.send({"type": "resume", "conversation_id": a.cid, "after_seq": 0})
        ev = await b.recv()
        assert ev["type"] == "error" and ev["code"] == "forbidden", ev
        await b.send({"type": "resume", "conversation_id": "0" * 32, "after_seq": 0})
        ev = await b.recv()
        assert ev["type"] == "error" and ev["code"] == "unknown_conversation", ev
        await b.ok_turn("b1", "bob can still chat")  # his own conversation is untouched
        await b.close()

        a2 = await Chat.connect(srv, alice)
        await a2.send({"type": "resume", "conversation_id": a.cid, "after_seq": 2})
        ev = await a2.recv()
        assert ev["type"] == "resumed" and ev["conversation_id"] == a.cid, ev
        assert ev["turn_id"] == tid and ev["after_seq"] == 2 and ev["messages"] == 4, ev
        again = [await a2.recv() for _ in range(4)]
        assert again == deltas[2:], (again, deltas)
        replayed = await a2.recv()
        assert replayed["type"] == "turn_end" and replayed["replayed"] is True, replayed
        for k in ("turn_id", "finish_reason", "usage", "cost"):
            assert replayed[k] == end[k], (k, replayed, end)
        # nothing else was queued: the next event is the next turn's start, in the same
        # conversation
        await a2.ok_turn("m3", "continued")
        await a2.close()
        rows = pg().psql("SELECT count(*) FROM turns WHERE conversation_id = '%s'" % a.cid)
        assert rows == [["3"]], rows
        # the read API is off on this server (no admin token)
        assert api(srv, "/v1/conversations/" + a.cid).status == 404


@suite.test
async def test_a_resume_larger_than_the_outbound_limit_is_paced_not_dropped():
    """Issue 10 item 5: the unseen deltas of a long answer (1,500 deltas, ~110 KB of events)
    far exceed outbound_limit_bytes (8 KiB). The replay follows the client's reading instead
    of queueing them all at once (which closed the connection with 1008, and the widget
    resumed again, forever): every delta arrives, split and numbered as first sent."""
    words = ["w%d " % (i % 10) for i in range(1500)]
    text = "".join(words)
    cfg = {"websocket": {"max_message_bytes": 8192, "outbound_limit_bytes": 8192},
           "session": {"max_text_bytes": 8000, "echo_delay_ms": 1}}
    with Server(config=cfg, env=db_env(), name="paced-resume") as srv:
        a = await Chat.connect(srv)
        tid, deltas, end = await a.ok_turn("m1", text)
        assert "".join(d["text"] for d in deltas) == text and len(deltas) == 1500
        await a.close()

        for after in (700, 0):
            b = await Chat.connect(srv)
            await b.send({"type": "resume", "conversation_id": a.cid, "after_seq": after})
            ev = await b.recv()
            assert ev["type"] == "resumed" and ev["turn_id"] == tid, ev
            again = [await b.recv() for _ in range(1500 - after)]
            assert again == deltas[after:], [e for e in again if e.get("type") != "delta"][:3]
            replayed = await b.recv()
            assert replayed["type"] == "turn_end" and replayed["replayed"] is True, replayed
            if after == 0:  # the connection is alive and the conversation goes on
                await b.ok_turn("m2", "still here")
            await b.close()


@suite.test
async def test_outage_mid_load_every_turn_that_ended_is_stored_exactly_once():
    srv = Server(config=LOAD, env=db_env(TRILEMMA_ADMIN_TOKEN=ADMIN), name="outage").start()
    try:
        load = Load(srv, 6)
        await load.start()
        await load.wait_turns(60)
        await asyncio.to_thread(pg().pause)  # like a crash, in the middle of the load
        await wait_for(lambda: storage_state(srv) == "degraded", "/readyz to say degraded")
        at_outage = len(load.ended)
        await load.wait_turns(at_outage + 60)  # turns keep ending while PostgreSQL is away
        assert metric(srv, "trilemma_store_journaled_total") > 0
        assert metric(srv, "trilemma_store_journal_bytes") > 0
        r = api(srv, "/v1/costs")
        assert r.status == 503 and r.json()["error"] == "unavailable", r
        await asyncio.to_thread(pg().start)
        # the replay runs while new turns keep going to the journal behind it ...
        await wait_for(lambda: metric(srv, "trilemma_store_replayed_total") > 0,
                       "the journal replay to start")
        await load.wait_turns(len(load.ended) + 30)
        await load.finish()
        assert not load.failed, load.failed[:5]
        # ... and catches up once the load stops (a bound for a slow, shared machine)
        await asyncio.to_thread(
            wait_until, lambda: metric(srv, "trilemma_store_journal_bytes") == 0
            and storage_state(srv) == "ok", "the journal to drain", TIMEOUT * 4)
        c = await Chat.connect(srv)  # and commits go direct again
        load.ended.append((await c.ok_turn("direct", "after the outage"))[0])
        await c.close()
        assert metric(srv, "trilemma_store_journal_bytes") == 0
        assert len(set(load.ended)) == len(load.ended)
        check_stored_exactly_once(load.ended)
        srv.stop()
    finally:
        await asyncio.to_thread(pg().ensure_running)
        srv.kill()


@suite.test
async def test_kill_9_with_turns_in_the_journal_then_a_new_server_stores_them_once():
    journal = tempfile.mkdtemp(prefix="trilemma-e2e-journal-")
    env = db_env(TRILEMMA_JOURNAL_DIR=journal)
    first = Server(config=LOAD, env=env, name="killed").start()
    ended = []
    try:
        c = await Chat.connect(first)
        for i in range(5):
            ended.append((await c.ok_turn("d%d" % i, "direct %d" % i))[0])
        await asyncio.to_thread(pg().pause)
        await wait_for(lambda: storage_state(first) == "degraded", "/readyz to say degraded")
        for i in range(20):
            ended.append((await c.ok_turn("j%d" % i, "journaled %d" % i))[0])
        assert metric(first, "trilemma_store_journaled_total") >= 20
        assert metric(first, "trilemma_store_journal_bytes") > 0
        first.kill()  # SIGKILL: nothing is flushed, nothing is replayed
        assert [f for f in os.listdir(journal) if f.endswith(".journal")], os.listdir(journal)
        await asyncio.to_thread(pg().start)
        with Server(config=LOAD, env=env, name="after-kill") as second:
            wait_until(lambda: all(n[0] == 1 for n in stored_counts(ended).values()),
                       "the journal to be replayed")
            check_stored_exactly_once(ended)
            wait_until(lambda: not [f for f in os.listdir(journal) if f.endswith(".journal")
                                    and os.path.getsize(os.path.join(journal, f))],
                       "replayed journals to be deleted or emptied")
            c2 = await Chat.connect(second)
            ended.append((await c2.ok_turn("n", "new server"))[0])
            await c2.close()
        check_stored_exactly_once(ended)
        shutil.rmtree(journal, ignore_errors=True)
    finally:
        await asyncio.to_thread(pg().ensure_running)
        first.kill()


@suite.test
async def test_a_full_journal_refuses_new_turns_and_writes_nothing_of_them():
    cfg = {"store": {"journal_max_bytes": 65536}, "session": {"echo_delay_ms": 0,
                                                             "rate_messages": 100000}}
    srv = Server(config=cfg, env=db_env(), workers=1, name="journal-full").start()
    try:
        c = await Chat.connect(srv)
        ended, refused, unstored = [(await c.ok_turn("first", "stored directly"))[0]], 0, []
        await asyncio.to_thread(pg().pause)
        await wait_for(lambda: storage_state(srv) == "degraded", "/readyz to say degraded")
        big = "x" * 12000  # one word: one delta; about 24 KB of journal per turn
        for i in range(20):
            tid, _, end, errors = await c.turn("big%d" % i, "%s %d" % (big, i))
            codes = [e["code"] for e in errors]
            assert set(codes) <= {"storage_unavailable"}, errors
            if tid is None:
                refused += 1  # refused up front: no turn_start
            elif errors:
                unstored.append(tid)  # did not fit: turn_end after the error
            else:
                ended.append(tid)
            if refused >= 2:
                break
        assert refused >= 2 and len(ended) >= 2, (refused, ended, unstored)
        assert storage_state(srv) == "refusing"
        status, _ = readyz(srv)
        assert status == 503
        await asyncio.to_thread(pg().start)
        await wait_for(lambda: metric(srv, "trilemma_store_journal_bytes") == 0
                       and storage_state(srv) == "ok", "the journal to drain")
        ended.append((await c.ok_turn("after", "accepted again"))[0])
        await c.close()
        check_stored_exactly_once(ended)
        if unstored:
            counts = stored_counts(unstored)
            assert all(v == [0, 0, 0, 0] for v in counts.values()), counts
        srv.stop()
    finally:
        await asyncio.to_thread(pg().ensure_running)
        srv.kill()


@suite.on_teardown
def stop_cluster_and_sim():
    try:
        # the shared server first: it holds connections to the cluster
        s = suite.shared.pop("sim", None)
        if s is not None:
            s.stop()
    finally:
        try:
            if SIM is not None:
                SIM.stop()
        finally:
            if PG is not None:
                PG.stop()


if __name__ == "__main__":
    if not os.access(os.path.join(PG_BIN, "initdb"), os.X_OK):
        print("PostgreSQL binaries not found in %s: skipped" % PG_BIN)
        sys.exit(77)
    suite.main()
