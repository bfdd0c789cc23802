#!/usr/bin/env python3
"""test_drain.py - graceful drain on SIGTERM/SIGINT: /readyz turns 503, new connections are
refused (or answered 503), new turns get `draining`, the running turn completes, then every
client gets close 1001 (Going Away) and the process exits 0."""

import json
import signal

import harness
from harness import Conn, RawWS, Server, build_request

suite = harness.Suite("drain")


def readyz_on(conn):
    conn.send(build_request("GET", "/readyz"))
    return conn.read_response()


def new_connection_outcome(port):
    """What a fresh upgrade gets while draining: 'refused' or 'reset' (the TCP connection is not
    accepted: refused, or reset from connect() itself), 'closed' (accepted, then closed or reset
    before an answer; a request sent after the reset fails with EPIPE) or the HTTP status."""
    ws, how = harness.try_connect(port, RawWS)
    if ws is None:
        return how
    with ws:
        try:
            r = ws.handshake(expect=None)
        except (EOFError, ConnectionResetError, BrokenPipeError):
            return "closed"
        return r.status


def close_1001(ws):
    code, _ = ws.expect_close()
    assert code == 1001, "close %r while draining (expected 1001 Going Away)" % code
    try:
        ws.send_close(1001)
    except (BrokenPipeError, ConnectionResetError):
        pass
    ws.expect_eof()


@suite.test
def sigterm_drains_running_turn_then_1001():
    srv = Server(
        config={
            "server": {"drain_timeout_ms": 20000},
            "websocket": {"close_timeout_ms": 1000},
            "session": {"echo_delay_ms": 100},
        },
        name="drain",
    ).start()
    try:
        a, b = RawWS(srv.port), RawWS(srv.port)
        a.open()
        b.open()
        probe = Conn(srv.port)
        r = readyz_on(probe)
        assert r.status == 200 and r.body.strip() == b"ready", r

        text = " ".join("w%02d" % i for i in range(40))  # 40 x 100 ms
        a.send_json({"type": "user_message", "id": "long", "text": text})
        start = a.recv_json()
        assert start["type"] == "turn_start", start
        deltas = [a.recv_json()]
        assert deltas[0]["type"] == "delta", deltas

        srv.send_signal(signal.SIGTERM)

        # /readyz turns 503 (on the open keep-alive connection, or on a new one), unless the
        # server stops answering new connections altogether
        def not_ready():
            nonlocal probe
            try:
                r = readyz_on(probe)
                if r.status == 503:
                    return "503"
                assert r.status == 200, r
                return None
            except (EOFError, ConnectionResetError, BrokenPipeError):
                probe.close()
                fresh, how = harness.try_connect(srv.port)
                if fresh is None:
                    return how
                probe = fresh
                return None

        how = harness.wait_until(not_ready, "/readyz to answer 503 after SIGTERM")
        probe.close()
        print("    readyz while draining: %s" % how)

        outcome = new_connection_outcome(srv.port)
        assert outcome in ("refused", "reset", "closed", 503), "new upgrade while draining: %r" % (outcome,)

        # an idle session either stays open until the running turns end, refusing new turns with
        # `draining`, or is closed with 1001 at once (and then reconnects elsewhere sooner)
        try:
            b.send_json({"type": "user_message", "id": "late", "text": "too late"})
        except (BrokenPipeError, ConnectionResetError):
            pass
        f = b.recv_frame()
        b.check_frame(f)
        if f.opcode == harness.OP_CLOSE:
            assert f.close_code() == 1001, "idle session closed with %r while draining" % f.close_code()
            b.expect_eof()
            print("    idle session while draining: closed at once with 1001")
            b_closed = True
        else:
            ev = json.loads(f.payload)
            assert ev.get("type") == "error" and ev.get("code") == "draining", ev
            assert ev.get("id") == "late", ev
            print("    idle session while draining: new turn refused with `draining`")
            b_closed = False

        # the running turn still completes
        while True:
            ev = a.recv_json()
            if ev["type"] != "delta":
                break
            deltas.append(ev)
        assert ev["type"] == "turn_end" and ev["finish_reason"] == "stop", ev
        assert "".join(d["text"] for d in deltas) == text
        assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))

        close_1001(a)
        if not b_closed:
            close_1001(b)
        rc = srv.wait_exit()
        assert rc == 0, "exit status %s after drain\n%s" % (rc, srv.stderr_tail())
        srv.stop()  # checks the sanitizer output
    finally:
        srv.kill()


@suite.test
def drain_deadline_cuts_long_turn():
    srv = Server(
        config={
            "server": {"drain_timeout_ms": 500},
            "websocket": {"close_timeout_ms": 1000},
            "session": {"echo_delay_ms": 1000},
        },
        name="drain-deadline",
    ).start()
    try:
        a = RawWS(srv.port)
        a.open()
        a.send_json({"type": "user_message", "id": "endless", "text": "word " * 60})  # 60 s of echo
        assert a.recv_json()["type"] == "turn_start"
        assert a.recv_json()["type"] == "delta"
        srv.send_signal(signal.SIGTERM)
        # the deadline passes long before the turn would end: a turn_end (any reason) may come,
        # then close 1001
        while True:
            f = a.recv_frame()
            a.check_frame(f)
            if f.opcode == harness.OP_CLOSE:
                assert f.close_code() == 1001, f.close_code()
                break
        a.expect_eof()
        assert srv.wait_exit() == 0, srv.stderr_tail()
        srv.stop()
    finally:
        srv.kill()


@suite.test
def sigint_drains_idle_sessions():
    srv = Server(config={"websocket": {"close_timeout_ms": 1000}}, name="sigint").start()
    try:
        clients = [RawWS(srv.port) for _ in range(4)]
        for c in clients:
            c.open()
        srv.send_signal(signal.SIGINT)
        for c in clients:
            close_1001(c)
        assert srv.wait_exit() == 0, srv.stderr_tail()
        srv.stop(signal.SIGINT)
    finally:
        srv.kill()


@suite.test
def sigterm_with_no_clients_exits_0():
    srv = Server(name="idle").start()
    srv.stop(signal.SIGTERM)


@suite.test
def sigterm_with_half_open_http_connection_exits_0():
    # a connection stuck in its request head must not hold the process past the drain
    srv = Server(config={"server": {"drain_timeout_ms": 1000}}, name="half-open").start()
    try:
        c = Conn(srv.port)
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        srv.send_signal(signal.SIGTERM)
        assert srv.wait_exit() == 0, srv.stderr_tail()
        srv.stop()
        c.close()
    finally:
        srv.kill()


if __name__ == "__main__":
    suite.main()
