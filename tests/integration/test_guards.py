#!/usr/bin/env python3
"""test_guards.py - abuse and cost guards of a running server (issue 18, items 2, 3 and 5).

  - per-user limits: one token opening many WebSockets gets at most max_turns_per_user turns
    running at once and turns_per_minute_per_user turns a minute, across the process's workers;
    the excess gets rate_limited with retry_after_ms; other users (and other addresses, for
    anonymous sessions) are unaffected
  - memory: many sessions sending big turns keep the in-memory history under the per-session cap
    and the process budget (read from /metrics), and a session whose history was dropped still
    sends its model the earlier turns (reloaded from PostgreSQL); max_session_age_s closes a
    session with 4002
  - tokens: no exp is refused unless jwt_require_exp = false, jwt_max_age_s bounds iat, a session
    is closed with 4001 when its token expires, and --check-config (and the start) refuse an
    HS256 secret shorter than 32 bytes

No sleep stands in for synchronisation: every wait is for a frame, a close, a metric or a process;
TIMEOUT only bounds it. Echo turns are held open with echo_delay_ms = 60000 (one word, then a
minute's pause) and cancelled by the test, so which turns overlap is decided by the test, never by
timing.
"""

import asyncio
import json
import os
import re
import subprocess
import time

import websockets

import harness
from harness import TIMEOUT, Server, http_request, make_jwt, wait_until

suite = harness.Suite("guards")

SECRET = "guards-test-secret-0123456789abcdef-0123"
HOLD = {"echo_delay_ms": 60000, "rate_messages": 100000}


def metric(srv, name, labels=None):
    body = http_request(srv.port, "GET", "/metrics").body.decode()
    total, found = 0.0, False
    for line in body.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        if labels and not all('%s="%s"' % kv in (m.group(2) or "") for kv in labels.items()):
            continue
        total += float(m.group(3))
        found = True
    assert found, "no %s%s in /metrics" % (name, labels or "")
    return total


def token(sub, **claims):
    now = int(time.time())
    c = {"sub": sub, "iat": now, "exp": now + 3600}
    c.update(claims)
    return make_jwt({k: v for k, v in c.items() if v is not None}, SECRET)


class Chat:
    def __init__(self, ws):
        self.ws = ws

    @classmethod
    async def open(cls, srv, tok=None, source=None):
        url = srv.ws_url() + ("?token=" + tok if tok else "")
        kw = {}
        if source:
            kw["sock"] = await asyncio.to_thread(_bound_socket, srv.port, source)
        ws = await websockets.connect(url, ping_interval=None, max_size=1 << 24,
                                      open_timeout=TIMEOUT, close_timeout=TIMEOUT, **kw)
        c = cls(ws)
        c.session = await c.recv()
        assert c.session["type"] == "session", c.session
        return c

    async def recv(self):
        return json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))

    async def send(self, obj):
        await self.ws.send(json.dumps(obj))

    async def ask(self, mid, text):
        """Send a user message; the first answer: ('started', turn_id) or ('error', event)."""
        await self.send({"type": "user_message", "id": mid, "text": text})
        ev = await self.recv()
        if ev["type"] == "turn_start":
            assert ev["id"] == mid, ev
            return "started", ev["turn_id"]
        assert ev["type"] == "error", ev
        return "error", ev

    async def until_end(self, turn_id):
        deltas = []
        while True:
            ev = await self.recv()
            if ev["type"] == "delta":
                deltas.append(ev["text"])
            elif ev["type"] == "turn_end":
                assert ev["turn_id"] == turn_id, ev
                return "".join(deltas), ev

    async def cancel(self, turn_id):
        await self.send({"type": "cancel", "turn_id": turn_id})
        _, end = await self.until_end(turn_id)
        assert end["finish_reason"] == "cancelled", end

    async def close(self):
        await self.ws.close(1000, "bye")


def _bound_socket(port, source):
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def check_rate_limited(ev, limit):
    assert ev["type"] == "error" and ev["code"] == "rate_limited", ev
    assert ev.get("limit") == limit, ev
    assert isinstance(ev.get("retry_after_ms"), int) and ev["retry_after_ms"] > 0, ev


# ------------------------------------------------------------------------------------------
# 2. Per-user limits


@suite.test
async def test_one_token_many_sockets_gets_at_most_the_default_concurrent_turns():
    """The defaults (no limit configured): 12 WebSockets of one user each start a turn at once;
    4 run (max_turns_per_user), 8 get rate_limited with a retry hint; another user's turn starts
    meanwhile; once one of the user's turns ends, a refused socket may start one."""
    srv = suite.server("hold", config={"session": HOLD}, env={"TRILEMMA_JWT_SECRET": SECRET})
    alice = token("alice")
    socks = [await Chat.open(srv, alice) for _ in range(12)]
    answers = await asyncio.gather(*(c.ask("a%d" % i, "hold on") for i, c in enumerate(socks)))
    started = [(c, a[1]) for c, a in zip(socks, answers) if a[0] == "started"]
    refused = [(c, a[1]) for c, a in zip(socks, answers) if a[0] == "error"]
    assert len(started) == 4, "turns running for one user: %d of 12 (%r)" % (
        len(started), [a[1] for a in answers if a[0] == "error"][:3])
    for _, ev in refused:
        check_rate_limited(ev, "concurrent_turns")
        assert ev["id"].startswith("a"), ev
    assert metric(srv, "trilemma_user_limited_total", {"limit": "concurrent_turns"}) >= 8
    # another user is not affected
    bob = await Chat.open(srv, token("bob"))
    kind, bob_turn = await bob.ask("b1", "me too")
    assert kind == "started", bob_turn
    # one of alice's turns ends: one refused socket may start again, the next one may not
    c0, t0 = started[0]
    await c0.cancel(t0)
    c1, _ = refused[0]
    kind, t1 = await c1.ask("again", "now")
    assert kind == "started", t1
    kind, ev = await refused[1][0].ask("again2", "and me")
    assert kind == "error", ev
    check_rate_limited(ev, "concurrent_turns")
    for c, t in started[1:] + [(c1, t1)]:
        await c.cancel(t)
    await bob.cancel(bob_turn)
    for c in socks + [bob]:
        await c.close()


@suite.test
async def test_turns_per_minute_per_user_across_sockets_and_workers():
    cfg = {"session": {"echo_delay_ms": 0, "rate_messages": 100000, "max_turns_per_user": 100,
                       "turns_per_minute_per_user": 6}}
    srv = Server(config=cfg, env={"TRILEMMA_JWT_SECRET": SECRET}, workers=2,
                 name="per-minute").start()
    try:
        carol = token("carol")
        socks = [await Chat.open(srv, carol) for _ in range(6)]  # spread over both workers
        done, limited = 0, []
        for rnd in range(2):
            for i, c in enumerate(socks):
                kind, x = await c.ask("m%d-%d" % (rnd, i), "one two")
                if kind == "started":
                    await c.until_end(x)
                    done += 1
                else:
                    limited.append(x)
        assert done == 6, "turns in the first minute: %d (limit 6)" % done
        assert len(limited) == 6, limited
        for ev in limited:
            check_rate_limited(ev, "turns_per_minute")
            assert ev["retry_after_ms"] <= 60000, ev
        # another user, same process, same moment
        dave = await Chat.open(srv, token("dave"))
        kind, t = await dave.ask("d", "hello")
        assert kind == "started", t
        await dave.until_end(t)
        for c in socks + [dave]:
            await c.close()
    finally:
        srv.stop()


@suite.test
async def test_anonymous_sessions_are_limited_per_client_address():
    cfg = {"session": dict(HOLD, max_turns_per_ip=2)}
    srv = Server(config=cfg, workers=2, name="per-ip-turns").start()
    try:
        a = [await Chat.open(srv, source="127.0.0.21") for _ in range(4)]
        answers = await asyncio.gather(*(c.ask("x%d" % i, "wait") for i, c in enumerate(a)))
        started = [(c, r[1]) for c, r in zip(a, answers) if r[0] == "started"]
        assert len(started) == 2, answers
        for r in answers:
            if r[0] == "error":
                check_rate_limited(r[1], "concurrent_turns")
        other = await Chat.open(srv, source="127.0.0.22")
        kind, t = await other.ask("o", "other address")
        assert kind == "started", t
        for c, tid in started + [(other, t)]:
            await c.cancel(tid)
        for c in a + [other]:
            await c.close()
    finally:
        srv.stop()


# ------------------------------------------------------------------------------------------
# 5. Tokens


def upgrade_status(srv, tok):
    ws = harness.RawWS(srv.port)
    with ws:
        r = ws.handshake(path="/ws?token=" + tok, expect=None)
        return r.status


@suite.test
def test_a_token_without_exp_is_refused_by_default():
    srv = suite.server("hold", config={"session": HOLD}, env={"TRILEMMA_JWT_SECRET": SECRET})
    assert upgrade_status(srv, token("erin", exp=None)) == 401
    assert upgrade_status(srv, token("erin")) == 101


@suite.test
def test_token_exp_optional_and_max_age_when_configured():
    cfg = {"auth": {"jwt_require_exp": "false", "jwt_max_age_s": 600}}
    with Server(config=cfg, env={"TRILEMMA_JWT_SECRET": SECRET}, name="max-age") as srv:
        now = int(time.time())
        assert upgrade_status(srv, token("f", exp=None)) == 101
        assert upgrade_status(srv, token("f", exp=None, iat=now - 300)) == 101
        assert upgrade_status(srv, token("f", exp=None, iat=now - 3600)) == 401  # too old
        assert upgrade_status(srv, token("f", iat=None)) == 401  # an age limit needs iat
        assert upgrade_status(srv, token("f", iat=now + 3600)) == 401  # issued in the future


@suite.test
async def test_a_session_is_closed_with_4001_when_its_token_expires():
    """exp 25 s ago is inside the 30 s leeway at the upgrade; the session ends at exp + leeway
    (about 5 s from now) with close code 4001, a running turn cut and stored as cancelled."""
    srv = suite.server("hold", config={"session": HOLD}, env={"TRILEMMA_JWT_SECRET": SECRET})
    now = int(time.time())
    c = await Chat.open(srv, token("gina", exp=now - 25))
    kind, t = await c.ask("g", "long wait")
    assert kind == "started", t
    try:
        while True:
            ev = await c.recv()
            assert ev["type"] in ("delta", "turn_end"), ev
    except websockets.ConnectionClosed as e:
        assert e.rcvd is not None and e.rcvd.code == 4001, e
        assert "expired" in e.rcvd.reason, e.rcvd.reason
    assert metric(srv, "trilemma_sessions_closed_total", {"reason": "token_expired"}) >= 1


@suite.test
async def test_a_token_expiring_in_the_far_future_keeps_its_session():
    """exp is any NumericDate: one far beyond what milliseconds of int64 hold (10^16 s) is a
    session that never ends for its token, not one closed at once (nor an overflow)."""
    env = {"TRILEMMA_JWT_SECRET": SECRET}
    with Server(config={"session": {"echo_delay_ms": 1}}, env=env, name="far-exp") as srv:
        c = await Chat.open(srv, token("hana", exp=10**16))
        kind, t = await c.ask("h", "still here")
        assert kind == "started", t
        text, end = await c.until_end(t)
        assert end["finish_reason"] == "stop" and text == "still here", (text, end)
        await c.close()
        assert metric(srv, "trilemma_sessions_closed_total", {"reason": "token_expired"}) == 0


def check_config(secret, extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRILEMMA_")}
    env["TRILEMMA_JWT_SECRET"] = secret
    env.update(extra or {})
    return subprocess.run([harness.Args.server, "--check-config"], capture_output=True, text=True,
                          env=env, cwd=harness.Args.source, timeout=TIMEOUT)


@suite.test
def test_check_config_and_start_refuse_a_short_hs256_secret():
    r = check_config("x" * 31)
    assert r.returncode != 0, (r.returncode, r.stdout, r.stderr)
    assert "jwt_secret" in r.stderr and "32" in r.stderr, r.stderr
    assert "x" * 31 not in r.stderr + r.stdout  # never the value
    r = check_config("x" * 32)
    assert r.returncode == 0, r.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRILEMMA_")}
    env["TRILEMMA_JWT_SECRET"] = "short-secret"
    p = subprocess.run([harness.Args.server, "--listen", "127.0.0.1:0"], capture_output=True,
                       text=True, env=env, cwd=harness.Args.source, timeout=TIMEOUT)
    assert p.returncode != 0 and "jwt_secret" in p.stderr, (p.returncode, p.stderr)


# ------------------------------------------------------------------------------------------
# 3. Memory per session and per process


@suite.test
async def test_max_session_age_closes_with_4002():
    with Server(config={"session": {"max_session_age_s": 1}}, name="age") as srv:
        c = await Chat.open(srv)
        try:
            await c.recv()
            raise AssertionError("the session outlived max_session_age_s")
        except websockets.ConnectionClosed as e:
            assert e.rcvd is not None and e.rcvd.code == 4002, e
        assert metric(srv, "trilemma_sessions_closed_total", {"reason": "max_age"}) == 1


BIG = 12000


def big_text(tag, i):
    """About BIG bytes in long words (the echo answers one delta per word: few frames)."""
    word = "%s%02d" % (tag, i)
    word = (word + "x" * 999)[:999] + " "
    return (word * (BIG // len(word)))[:BIG]


@suite.test
async def test_history_stays_under_the_session_cap_and_the_process_budget():
    """30 sessions x 6 turns of 12,000 letters (about 720 KB of echoed history per session with
    the old code): with history_max_bytes = 40000 and history_budget_bytes = 400000, the bytes
    held (trilemma_history_bytes) never pass the budget. (The per-session cap is checked on
    what the model receives, in test_guards_store.py.)"""
    cfg = {"session": {"echo_delay_ms": 0, "rate_messages": 100000, "max_text_bytes": 16000,
                       "turns_per_minute_per_ip": 0, "history_max_bytes": 40000,
                       "history_budget_bytes": 400000}}
    with Server(config=cfg, name="history-budget") as srv:
        socks = [await Chat.open(srv) for _ in range(30)]
        peak = 0
        for rnd in range(6):
            async def one(k, c):
                kind, t = await c.ask("h%d-%d" % (k, rnd), big_text("s%d" % k, rnd))
                assert kind == "started", t
                await c.until_end(t)
            await asyncio.gather(*(one(k, c) for k, c in enumerate(socks)))
            held = metric(srv, "trilemma_history_bytes")
            peak = max(peak, held)
            assert held <= 400000, "history bytes held %d > budget 400000" % held
        assert peak > 200000, "the test did not fill the budget (peak %d)" % peak
        assert metric(srv, "trilemma_history_dropped_total") > 0
        for c in socks:
            await c.close()
        wait_until(lambda: metric(srv, "trilemma_history_bytes") == 0,
                   "history bytes to return to 0 once every session closed")


suite.main()
