"""test_resume_grace.py - turns that survive a disconnect (issue 17, docs/session.md "Detach
grace"): real clients that drop their TCP connection mid-turn (no close frame), one or two real
trilemmad processes, and a private PostgreSQL (tests/store/pg_cluster.sh).

  - same process: the connection dropped before the first delta, mid-answer, and after the last
    delta but before turn_end (the commit held by a table lock): a resume gets the full answer
    exactly once, in order, and a turn_end with "resumed": true, billed once (one turns row)
  - a resume after the grace: today's cancelled partial, stored as cancelled with the flag
    detach_expired; the detach buffer cap: cancelled with the flag detach_buffer_full
  - two processes on one PostgreSQL: drop from A, resume on B: B waits (LISTEN/NOTIFY) and
    replays the whole answer once A commits; A killed with SIGKILL mid-turn: B does not wait
    past the lease, reports turn_interrupted and the row says interrupted
  - another user's conversation: refused on the process running the turn and on the other one
  - a turn left before its model call (the classifier still running) sends the user's message
    all the same; a re-attached turn ending during its paced catch-up sends its turn_end once
  - left, re-attached, left again: a model step built for the second client is retried after
    it left (its messages must outlive that client's session), and a third client gets it whole

No sleep stands in for synchronisation: every wait is for a frame, a metric, a row, or a process;
TIMEOUT only bounds it. No test asserts a duration. Exit status 77 (skipped) without PostgreSQL.
"""

import asyncio
import datetime
import http.client
import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import TIMEOUT, RawWS, Server, Suite, http_request, make_jwt, wait_until
import test_store_e2e as store_e2e  # noqa: E402 (its Chat client and Cluster)

suite = Suite("resume_grace")

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
JWT_SECRET = "jwt-secret-for-the-resume-grace-tests-0123456789"
PG = None


def pg():
    global PG
    if PG is None:
        PG = store_e2e.Cluster()
    return PG


def words(n, tag="w"):
    return "".join("%s%d " % (tag, i) for i in range(n))


def metrics(srv):
    return http_request(srv.port, "GET", "/metrics").body.decode()


def metric(srv, name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), metrics(srv), re.M)
    return int(m.group(1)) if m else 0


def server(name, workers=1, env=None, **session):
    conf = {"echo_delay_ms": 40, "rate_messages": 1000, "rate_window_ms": 1000}
    conf.update(session)
    e = {"DATABASE_URL": pg().url}
    e.update(env or {})
    return Server(config={"session": conf}, env=e, workers=workers, name=name)


class Chat(store_e2e.Chat):
    """test_store_e2e's client (connect, recv, send, close), and what these tests add."""

    async def start(self, mid, text):
        await self.send({"type": "user_message", "id": mid, "text": text})
        ev = await self.recv()
        assert ev["type"] == "turn_start" and ev["id"] == mid, ev
        return ev["turn_id"]

    async def deltas(self, n):
        out = []
        while len(out) < n:
            ev = await self.recv()
            assert ev["type"] == "delta", ev
            out.append(ev)
        return out

    async def rest(self, tid):
        """Deltas until the turn's turn_end: (deltas, turn_end)."""
        out = []
        while True:
            ev = await self.recv()
            if ev["type"] == "delta":
                assert ev["turn_id"] == tid, ev
                out.append(ev)
            else:
                assert ev["type"] == "turn_end" and ev["turn_id"] == tid, ev
                return out, ev

    def drop(self):
        """The TCP connection goes away without a close frame (a tunnel, a network switch)."""
        self.ws.transport.abort()


def check_once_in_order(seen, text):
    seqs = [d["seq"] for d in seen]
    assert seqs == list(range(1, len(seen) + 1)), seqs
    assert "".join(d["text"] for d in seen) == text, "".join(d["text"] for d in seen)


def turn_rows(tid):
    return pg().psql("SELECT finish_reason, array_to_string(flags, ',') FROM turns WHERE id = '%s'"
                     % tid)


async def resume(srv, cid, after, token=None):
    c = await Chat.connect(srv, token)
    await c.send({"type": "resume", "conversation_id": cid, "after_seq": after})
    return c


# --------------------------------------------------------------------------------------------


async def drop_and_resume(srv, n_words, drop_after, hold=None):
    """A turn of n_words; the client drops after drop_after deltas (hold: a function run after
    the drop, e.g. releasing a lock), resumes from what it has. Returns what it saw in all."""
    text = words(n_words)
    a = await Chat.connect(srv)
    tid = await a.start("m1", text)
    seen = await a.deltas(drop_after)
    a.drop()
    b = await resume(srv, a.cid, len(seen))
    if hold:
        hold()
    ev = await b.recv()
    assert ev["type"] == "resumed" and ev["turn_id"] == tid, ev
    assert ev["after_seq"] == len(seen), ev
    more, end = await b.rest(tid)
    seen += more
    check_once_in_order(seen, text)
    assert end["finish_reason"] == "stop" and end.get("resumed") is True, end
    assert end["usage"]["output_tokens"] == n_words, end
    await b.send({"type": "user_message", "id": "m2", "text": "and then"})  # it goes on
    ev = await b.recv()
    assert ev["type"] == "turn_start", ev
    await b.rest(ev["turn_id"])
    await b.close()
    assert turn_rows(tid) == [["stop", ""]], turn_rows(tid)  # stored, and billed, once
    return tid


@suite.test
async def test_same_process_drop_before_the_first_delta_resumes_the_whole_answer_once():
    with server("before-first", echo_delay_ms=300) as srv:
        await drop_and_resume(srv, 6, 0)
        assert 'trilemma_turn_reattaches_total{process="same",mode="live"} 1' in metrics(srv)
        assert metric(srv, "trilemma_turn_detaches_total") == 1


@suite.test
async def test_same_process_drop_mid_answer_resumes_live_exactly_once_in_order():
    with server("mid-answer") as srv:
        for after in (1, 5, 12):
            await drop_and_resume(srv, 30, after)
        body = metrics(srv)
        assert 'trilemma_turn_reattaches_total{process="same",mode="live"} 3' in body, body
        assert metric(srv, "trilemma_turns_detached") == 0


class Psql:
    """One psql session kept open (to hold a lock across steps of a test)."""

    def __init__(self):
        cmd = [os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-h", pg().dir, "-U",
               "postgres", "-d", "trilemma"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  cwd="/")

    def run(self, sql, expect):
        """Send sql (its last statement prints expect when the rest is done) and wait for it."""
        self.p.stdin.write(sql + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().strip()
        assert line == expect, line

    def close(self):
        self.p.stdin.close()
        self.p.wait(TIMEOUT)


def claimed(tid):
    return pg().psql("SELECT claimed FROM turn_state WHERE turn_id = '%s'" % tid) == [["t"]]


@suite.test
async def test_same_process_drop_after_the_last_delta_before_turn_end():
    """The commit is held by a lock on turns, so the client has every delta but no turn_end when
    it drops; the resume claims the running turn, waits for its commit, and gets its turn_end
    (and no delta twice)."""
    with server("after-last", echo_delay_ms=5) as srv:
        locker = Psql()
        try:
            locker.run("BEGIN; LOCK TABLE turns IN SHARE ROW EXCLUSIVE MODE; SELECT 'locked';",
                       "locked")
            text = words(8)
            a = await Chat.connect(srv)
            tid = await a.start("m1", text)
            seen = await a.deltas(8)  # all of them: the turn is done, its commit waits
            a.drop()
            b = await resume(srv, a.cid, 8)
            await asyncio.to_thread(wait_until, lambda: claimed(tid), "the resume claims it")
            locker.run("COMMIT; SELECT 'released';", "released")
            ev = await b.recv()
            assert ev["type"] == "resumed" and ev["turn_id"] == tid and ev["after_seq"] == 8, ev
            more, end = await b.rest(tid)
            assert more == [], more
            check_once_in_order(seen, text)
            assert end["finish_reason"] == "stop" and end["replayed"] is True, end
            assert end.get("resumed") is True, end
            await b.close()
        finally:
            locker.close()
        assert turn_rows(tid) == [["stop", ""]]
        assert 'trilemma_turn_reattaches_total{process="same",mode="replay"} 1' in metrics(srv)


@suite.test
async def test_a_resume_after_the_grace_gets_the_cancelled_partial():
    with server("expired", detach_grace_ms=200) as srv:
        text = words(200)
        a = await Chat.connect(srv)
        tid = await a.start("m1", text)
        seen = await a.deltas(3)
        a.drop()
        await asyncio.to_thread(wait_until, lambda: turn_rows(tid), "the cancelled turn stored")
        assert turn_rows(tid) == [["cancelled", "detach_expired"]], turn_rows(tid)
        assert 'trilemma_turn_grace_expiries_total{cause="grace"} 1' in metrics(srv)
        b = await resume(srv, a.cid, 3)
        ev = await b.recv()
        assert ev["type"] == "resumed" and ev["turn_id"] == tid, ev
        more, end = await b.rest(tid)
        seen += more
        partial = "".join(d["text"] for d in seen)
        assert text.startswith(partial) and len(partial) < len(text), partial
        assert [d["seq"] for d in seen] == list(range(1, len(seen) + 1))
        assert end["finish_reason"] == "cancelled" and end["replayed"] is True, end
        assert "resumed" not in end, end
        await b.close()
        # what grace cost for nobody is counted
        assert metric(srv, "trilemma_turn_abandoned_output_tokens_total") >= 0
        assert re.search(r'trilemma_turn_detached_bytes_total\{outcome="abandoned"\} [1-9]',
                         metrics(srv))


@suite.test
async def test_the_detach_buffer_cap_cancels_the_turn_and_the_store_says_so():
    with server("cap", echo_delay_ms=2, detach_buffer_bytes=1024) as srv:
        text = words(1500)  # ~9 KB, far above the cap
        a = await Chat.connect(srv)
        tid = await a.start("m1", text)
        await a.deltas(1)
        a.drop()
        await asyncio.to_thread(wait_until, lambda: turn_rows(tid), "the cancelled turn stored")
        assert turn_rows(tid) == [["cancelled", "detach_buffer_full"]], turn_rows(tid)
        assert 'trilemma_turn_grace_expiries_total{cause="buffer_full"} 1' in metrics(srv)
        n = int(pg().psql("SELECT answer_bytes FROM turns WHERE id = '%s'" % tid)[0][0])
        assert n < 1024 + 200, n  # the cap plus what was sent before the drop


@suite.test
async def test_two_workers_either_worker_delivers_the_whole_answer_once():
    """A reconnect lands on either worker (SO_REUSEPORT): re-attached on the turn's own, or
    waited for and replayed on the other; each way the answer arrives whole, once."""
    with server("two-workers", workers=2) as srv:
        for k in range(6):
            await drop_and_resume(srv, 20, 2 + k)
        body = metrics(srv)
        n = sum(int(x) for x in re.findall(
            r'^trilemma_turn_reattaches_total\{process="same",mode="\w+"\} (\d+)$', body, re.M))
        assert n == 6, body


class SlowReader(RawWS):
    """A WebSocket client that reads nothing until told to, with a small receive buffer and a
    small MSS: the server's send buffer (sized by the kernel from the MSS) stays small, so what
    it cannot send waits in its own outbound queue."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        self.buf = bytearray()
        self.eof = False
        self.timeout = TIMEOUT
        self.masked_frames = self.frames_seen = 0
        self.response = self.key = None


@suite.test
async def test_a_reattached_turn_ending_during_a_paced_catch_up_sends_its_turn_end_once():
    """A client re-attaches late (most of the answer made while it was away) and reads nothing
    until the turn is stored: its catch-up is paced (outbound_limit_bytes) and still queued when
    the turn ends and is freed, so the rest and the turn_end go out as a replay that must own
    all it sends."""
    conf = {"session": {"echo_delay_ms": 1, "rate_messages": 1000, "rate_window_ms": 1000,
                        "max_text_bytes": 8000},
            "websocket": {"outbound_limit_bytes": 16384, "max_message_bytes": 16384}}
    with Server(config=conf, env={"DATABASE_URL": pg().url}, workers=1, name="paced") as srv:
        text = "a " * 3000  # one-word deltas: ~280 KiB of events, far above the limit
        a = await Chat.connect(srv)
        tid = await a.start("m1", text)
        seen = await a.deltas(1)
        a.drop()
        # the backlog waiting for the client is larger than the kernel takes (SlowReader)
        detached = r'detached_bytes_total\{outcome="all"\} (\d+)'
        await asyncio.to_thread(
            wait_until, lambda: int(re.search(detached, metrics(srv)).group(1)) >= 3600,
            "1800 deltas made while detached", timeout=TIMEOUT * 2)
        b = SlowReader(srv.port)
        try:
            b.open()
            b.send_json({"type": "resume", "conversation_id": a.cid, "after_seq": 1})
            await asyncio.to_thread(wait_until, lambda: turn_rows(tid), "the turn stored",
                                    timeout=TIMEOUT * 2)
            ev = b.recv_json()
            assert ev["type"] == "resumed" and ev["turn_id"] == tid and ev["running"], ev
            end, more = b.recv_json_until(lambda e: e["type"] != "delta", timeout=TIMEOUT * 2)
            assert end["type"] == "turn_end" and end["turn_id"] == tid, end
            assert end["finish_reason"] == "stop" and end.get("resumed") is True, end
            assert end["cache"] is None, end
            check_once_in_order(seen + more, text)
        finally:
            b.close()
        assert 'trilemma_turn_reattaches_total{process="same",mode="live"} 1' in metrics(srv)


@suite.test
async def test_a_turn_left_before_its_model_call_still_sends_the_users_message():
    """The client drops while the classifier runs (its deadline passes: the rules decide): the
    detached turn's plan then builds its model request from the conversation the session held,
    which must outlive the session (the request carries the user's message)."""
    from test_orchestrator import Sim, orch_server

    s = Sim("--classifier-ms", "3000")  # past the classifier's deadline (300 ms)
    try:
        srv = orch_server(s, extra_env={"DATABASE_URL": pg().url}, name="left-early")
        with srv:
            since = s.requests_seq()
            a = await Chat.connect(srv)
            text = "wireless headphones under 3000 please"
            tid = await a.start("m1", text)
            a.drop()
            await asyncio.to_thread(wait_until, lambda: turn_rows(tid), "the turn stored",
                                    timeout=TIMEOUT * 2)
            assert turn_rows(tid)[0][0] == "stop", turn_rows(tid)
            agent = [r for r in s.requests(since) if "classifier" not in r[1]]
            assert agent, s.requests(since)
            for path, model, body in agent:
                said = json.dumps(body.get("messages", body))
                assert text in said, (model, said[:2000])
    finally:
        s.stop()


@suite.test
async def test_a_model_turn_retried_after_the_client_left_keeps_its_context_and_resumes_whole():
    """The simulated provider refuses the first request (503); the client leaves during the
    retry's backoff. The retry is built from the conversation the session held, which the
    detached turn took over (under ASan: no use after free), and the resume gets the whole
    answer, which echoes the user's message: the context reached the model."""
    from test_relay import Sim

    sim = Sim()
    try:
        env = {"TRILEMMA_MODEL": "openai/sim-shopper"}
        env.update(sim.base_urls())
        with server("relay", env=env) as srv:
            text = "[[sim:echo]] [[sim:fail_first=1]] [[sim:tps=20]] " + words(20, "r")
            a = await Chat.connect(srv)
            tid = await a.start("m1", text)
            a.drop()  # before the first delta: the first attempt failed, the retry waits
            b = await resume(srv, a.cid, 0)
            ev = await b.recv()
            assert ev["type"] == "resumed" and ev["turn_id"] == tid, ev
            more, end = await b.rest(tid)
            check_once_in_order(more, words(20, "r"))
            assert end["finish_reason"] == "stop" and end.get("resumed") is True, end
            await b.close()
    finally:
        sim.stop()


class ModelGate:
    """An HTTP proxy in front of the simulator's model endpoints that holds every request until
    the test lets it through, then passes the simulator's answer on whole: the test, not the
    scheduler, decides what happens between two model attempts."""

    def __init__(self, upstream_port):
        self.arrivals = queue.Queue()
        arrivals = self.arrivals

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                go = threading.Event()
                arrivals.put((json.loads(body).get("model"), go))
                if not go.wait(TIMEOUT * 4):  # the test failed before letting it through
                    self.send_error(504)
                    return
                up = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=TIMEOUT)
                up.request("POST", self.path, body, {
                    k: v for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection", "expect")})
                r = up.getresponse()
                data = r.read()
                up.close()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self):
        return "http://127.0.0.1:%d" % self.httpd.server_address[1]

    async def next(self, model):
        """The next model request (waits for it to arrive): its release function."""
        got, go = await asyncio.to_thread(self.arrivals.get, True, TIMEOUT)
        assert got == model, (got, model)
        return go.set

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@suite.test
async def test_a_step_built_for_a_second_client_is_retried_after_it_left_too():
    """Left, re-attached, left again. The cheap model fails (twice: max_retries 1), so the turn
    escalates while the second client is attached, and the escalated step's request is built
    from that client's session history; the second client leaves, the step's first attempt
    fails and its retry is built from the same messages again, which the turn must own after
    that session is gone (under ASan: no use after free). A third client gets the whole answer
    once; the echo says the context reached the model. Every model request waits at the gate
    until the test lets it through."""
    from test_orchestrator import Sim, one_agent, orch_server

    sim = Sim()
    gate = ModelGate(sim.port)
    try:
        env = {"DATABASE_URL": pg().url, "OPENAI_BASE_URL": gate.url() + "/v1"}
        conf = {"model": {"max_retries": 1, "retry_base_ms": 10}}
        agents = one_agent("openai/sim-cheap, openai/sim-frontier")
        with orch_server(sim, agents=agents, extra_env=env, name="left-twice",
                         config=conf) as srv:
            body = words(12, "t")
            a = await Chat.connect(srv)
            tid = await a.start("m1", "[[sim:echo]] [[sim:fail_first=3]] " + body)
            cheap = await gate.next("sim-cheap")  # built while the first client is here
            a.drop()
            await asyncio.to_thread(wait_until, lambda: metric(
                srv, "trilemma_turn_detaches_total") == 1, "the first client left")
            b = await resume(srv, a.cid, 0)
            ev = await b.recv()
            assert ev["type"] == "resumed" and ev["turn_id"] == tid and ev["running"], ev
            cheap()  # 503
            (await gate.next("sim-cheap"))()  # 503 again: the turn escalates
            frontier = await gate.next("sim-frontier")  # built from the second session's history
            b.drop()
            await asyncio.to_thread(wait_until, lambda: metric(
                srv, "trilemma_turn_detaches_total") == 2, "the second client left")
            frontier()  # 503: the step is retried, its request built again
            answer = await gate.next("sim-frontier")
            c = await resume(srv, a.cid, 0)
            ev = await c.recv()
            assert ev["type"] == "resumed" and ev["turn_id"] == tid and ev["running"], ev
            answer()
            more = []
            while True:  # the deltas, after the plan's status events
                ev = await c.recv()
                if ev["type"] == "status":
                    assert ev["turn_id"] == tid and not more, ev
                    continue
                if ev["type"] != "delta":
                    break
                assert ev["turn_id"] == tid, ev
                more.append(ev)
            end = ev
            assert end["type"] == "turn_end" and end["turn_id"] == tid, end
            check_once_in_order(more, body)
            assert end["finish_reason"] == "stop" and end.get("resumed") is True, end
            await c.close()
        assert turn_rows(tid) == [["stop", "escalated:model_error"]], turn_rows(tid)
    finally:
        gate.stop()
        sim.stop()


# --------------------------------------------------------------------------------------------
# two processes on one PostgreSQL


@suite.test
async def test_two_processes_drop_from_a_resume_on_b_waits_and_replays_the_whole_answer():
    with server("A", echo_delay_ms=60) as a_srv, server("B") as b_srv:
        text = words(40)
        a = await Chat.connect(a_srv)
        tid0 = await a.start("m0", "a first turn")  # the conversation exists in the store
        await a.rest(tid0)
        tid = await a.start("m1", text)
        seen = await a.deltas(4)
        a.drop()
        b = await resume(b_srv, a.cid, 4)
        ev = await b.recv()
        assert ev["type"] == "resumed" and ev["turn_id"] == tid and ev["after_seq"] == 4, ev
        assert ev["turn_id"] != tid0
        more, end = await b.rest(tid)
        seen += more
        check_once_in_order(seen, text)
        assert end["finish_reason"] == "stop" and end["replayed"] is True, end
        assert end.get("resumed") is True and end["usage"]["output_tokens"] == 40, end
        await b.close()
        assert turn_rows(tid) == [["stop", ""]]
        assert 'trilemma_turn_reattaches_total{process="other",mode="replay"} 1' in metrics(b_srv)
        assert pg().psql("SELECT count(*) FROM turn_state WHERE turn_id = '%s'" % tid) == [["0"]]
        # A knows someone came back for it (the claim): grace cost nothing here
        await asyncio.to_thread(wait_until, lambda: 'trilemma_turns_finished_total{finish_reason='
                                '"stop"} 2' in metrics(a_srv), "A counted its turns")
        body = metrics(a_srv)
        assert re.search(r'detached_bytes_total\{outcome="all"\} [1-9]', body), body
        assert 'trilemma_turn_detached_bytes_total{outcome="abandoned"} 0' in body, body


@suite.test
async def test_two_processes_a_killed_mid_turn_b_reports_the_turn_interrupted():
    """A's lease is short; B's resume_wait_ms is far above TIMEOUT, so B answering at all within
    TIMEOUT means it stopped waiting when A's lease ran out."""
    with server("A-killed", echo_delay_ms=100, turn_lease_ms=1500) as a_srv, \
            server("B-waits", resume_wait_ms=600000) as b_srv:
        a = await Chat.connect(a_srv)
        tid = await a.start("m1", words(500))
        await a.deltas(3)
        a_srv.kill()
        b = await resume(b_srv, a.cid, 3)
        ev = await b.recv()
        assert ev["type"] == "error" and ev["code"] == "turn_interrupted", ev
        assert ev["turn_id"] == tid, ev
        ev = await b.recv()  # nothing of the conversation was stored
        assert ev["type"] == "error" and ev["code"] == "unknown_conversation", ev
        await b.close()
        rows = pg().psql("SELECT state, ended_at IS NOT NULL FROM turn_state WHERE turn_id = '%s'"
                         % tid)
        assert rows == [["interrupted", "t"]], rows
        assert turn_rows(tid) == []


@suite.test
async def test_another_users_running_turn_is_refused_on_both_processes():
    env = {"TRILEMMA_JWT_SECRET": JWT_SECRET}
    exp = int(datetime.datetime.now().timestamp()) + 3600
    alice = make_jwt({"sub": "alice", "exp": exp}, JWT_SECRET)
    bob = make_jwt({"sub": "bob", "exp": exp}, JWT_SECRET)
    with server("A-jwt", env=env, echo_delay_ms=80) as a_srv, \
            server("B-jwt", env=env) as b_srv:
        text = words(60)
        a = await Chat.connect(a_srv, alice)
        tid = await a.start("m1", text)
        seen = await a.deltas(2)
        a.drop()
        for srv in (a_srv, b_srv):
            b = await resume(srv, a.cid, 0, bob)
            ev = await b.recv()
            assert ev["type"] == "error" and ev["code"] in ("forbidden", "unknown_conversation"), ev
            await b.close()
        assert not claimed(tid)
        c = await resume(a_srv, a.cid, 2, alice)  # the owner still gets it
        ev = await c.recv()
        assert ev["type"] == "resumed" and ev["turn_id"] == tid, ev
        more, end = await c.rest(tid)
        check_once_in_order(seen + more, text)
        await c.close()


if __name__ == "__main__":
    if not os.path.exists(os.path.join(PG_BIN, "initdb")):
        print("PostgreSQL binaries not found in %s: skipped" % PG_BIN)
        sys.exit(77)
    suite.main()
