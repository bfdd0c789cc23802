#!/usr/bin/env python3
"""test_limits.py - the server defends itself: slowloris (handshake_timeout_ms), connections per
IP, outbound backpressure (outbound_limit_bytes), heartbeats and idle timeout, JWT auth before
the upgrade, and the Origin allow-list.

Each topic runs its own server with the limit configured small. Waits are for events (EOF, a
close frame, the n-th ping, a metric reaching a value); bounds are failure bounds only.
"""

import json
import select
import socket
import time

import harness
from harness import OP_CLOSE, OP_PING, OP_PONG, Conn, RawWS, Server, http_request, make_jwt

suite = harness.Suite("limits")


def metric(srv, name):
    r = http_request(srv.port, "GET", "/metrics")
    assert r.status == 200, r
    total, found = 0.0, False
    for line in r.body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    assert found, "no %s in /metrics" % name
    return total


# ------------------------------------------------------------------------------------------
# Slowloris: the request head must arrive within handshake_timeout_ms


SLOW_HANDSHAKE = {"server": {"handshake_timeout_ms": 500}}


@suite.test
def slowloris_partial_head_is_closed():
    srv = suite.server("handshake", config=SLOW_HANDSHAKE)
    with Conn(srv.port) as c:
        c.send(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        c.send(b"Upgrade: websocket\r\nX-Slow: ")
        how, data = c.read_to_eof(timeout=harness.TIMEOUT)
        assert b"101" not in data[:12], data


@suite.test
def slowloris_silent_connection_is_closed():
    srv = suite.server("handshake", config=SLOW_HANDSHAKE)
    with Conn(srv.port) as c:
        c.read_to_eof(timeout=harness.TIMEOUT)


@suite.test
def handshake_timeout_does_not_apply_after_upgrade():
    srv = suite.server("handshake", config=SLOW_HANDSHAKE)
    with RawWS(srv.port) as ws:
        ws.open()
        # a slowloris connection opened *after* the WebSocket is closed by its deadline; had the
        # WebSocket been under the same deadline, it would have been closed first
        with Conn(srv.port) as c:
            c.send(b"GET / HTTP/1.1\r\n")
            c.read_to_eof()
        ws.send_frame(OP_PING, b"alive")
        f = ws.recv_frame()
        assert f.opcode == OP_PONG and f.payload == b"alive", f
        ws.send_close(1000)
        assert ws.expect_close()[0] == 1000


@suite.test
def handshake_deadline_does_not_hit_keepalive_request_in_time():
    srv = suite.server("handshake", config=SLOW_HANDSHAKE)
    assert http_request(srv.port, "GET", "/healthz").status == 200


# ------------------------------------------------------------------------------------------
# Connections per IP


@suite.test
def connections_per_ip_limit_503():
    srv = Server(config={"server": {"max_connections_per_ip": 5}}, name="per-ip").start()
    try:
        # from 127.0.0.7: the harness's own /healthz and /metrics probes come from 127.0.0.1
        ip = "127.0.0.7"
        socks = []
        for i in range(5):
            ws = RawWS(srv.port, source=ip)
            ws.open()
            socks.append(ws)
        with RawWS(srv.port, source=ip) as sixth:
            r = sixth.handshake(expect=None)
            assert r.status == 503, "6th connection from one IP: %r" % r
            assert "close" in r.header("connection", "").lower(), r
            sixth.read_to_eof()
        # one leaves; once the server has seen it go, a new one is welcome again
        first = socks.pop(0)
        first.send_close(1000)
        assert first.expect_close()[0] == 1000
        first.expect_eof()
        first.close()

        def slot_free():
            with RawWS(srv.port, source=ip) as ws:
                r = ws.handshake(expect=None)
                if r.status == 101:
                    return True
                assert r.status == 503, r
                return False

        harness.wait_until(slot_free, "a freed per-IP slot to be reusable")
        for ws in socks:
            ws.close()
    finally:
        srv.stop()


@suite.test
def connections_per_ip_behind_a_trusted_proxy_use_x_forwarded_for():
    """[server] trusted_proxies: from a listed peer (the ingress), max_connections_per_ip counts
    the client named by X-Forwarded-For, not the proxy; from any other peer the header is
    ignored and the TCP peer is counted. Sources are loopback addresses of this machine."""
    proxy, other = "127.0.0.9", "127.0.0.8"
    cfg = {"server": {"max_connections_per_ip": 2, "trusted_proxies": "10.0.0.0/8, %s" % proxy}}
    srv = Server(config=cfg, name="proxy").start()
    try:
        def upgrade(source, xff):
            ws = RawWS(srv.port, source=source)
            r = ws.handshake(headers={"X-Forwarded-For": xff}, expect=None)
            if r.status == 101:
                assert ws.recv_json()["type"] == "session"
            return ws, r.status

        # through the proxy: two clients, two connections each; the proxy holds four
        kept = []
        for client in ("203.0.113.5", "203.0.113.6"):
            for _ in range(2):
                ws, status = upgrade(proxy, "%s, 10.1.2.3" % client)  # via an inner proxy too
                assert status == 101, (client, status)
                kept.append(ws)
        # a third from the same client is over its limit, whichever forged entries it adds
        for xff in ("203.0.113.5", "198.51.100.1, 203.0.113.5"):
            ws, status = upgrade(proxy, xff)
            assert status == 503, (xff, status)
            ws.close()

        # not a trusted peer: X-Forwarded-For is ignored, its own address is counted
        for i in range(2):
            ws, status = upgrade(other, "192.0.2.%d" % (10 + i))
            assert status == 101, status
            kept.append(ws)
        ws, status = upgrade(other, "192.0.2.99")
        assert status == 503, status
        ws.close()
        assert metric(srv, 'trilemma_errors_total{kind="connection_limit"}') == 3

        # a client that leaves frees its slot for its next connection through the proxy
        first = kept.pop(0)
        first.send_close(1000)
        assert first.expect_close()[0] == 1000
        first.expect_eof()
        first.close()

        def slot_free():
            ws, status = upgrade(proxy, "203.0.113.5")
            ws.close()
            assert status in (101, 503), status
            return status == 101

        harness.wait_until(slot_free, "the forwarded client's freed slot")
        for ws in kept:
            ws.close()
    finally:
        srv.stop()


@suite.test
def server_connection_limit_503():
    # 2 per IP, 4 in all: clients from 127.0.0.2, .3, .4 ... reach the server-wide limit first
    srv = Server(config={"server": {"max_connections": 4, "max_connections_per_ip": 2}}, name="max-conn").start()
    try:
        socks = []
        refused = None
        for i in range(6):
            ws = RawWS(srv.port, source="127.0.0.%d" % (2 + i // 2))
            r = ws.handshake(expect=None)
            if r.status == 503:
                refused = (i, r)
                ws.close()
                break
            assert r.status == 101, r
            ws.recv_json()
            socks.append(ws)
        assert refused is not None, "max_connections=4 but %d WebSockets were accepted" % len(socks)
        assert len(socks) <= 4, len(socks)
        for ws in socks:
            ws.send_close(1000)
            ws.expect_close()
            ws.close()
    finally:
        srv.stop()


# ------------------------------------------------------------------------------------------
# Outbound backpressure


@suite.test
def slow_reader_is_disconnected():
    srv = Server(
        config={
            # (outbound_limit_bytes must be at least max_message_bytes)
            "websocket": {"outbound_limit_bytes": 16384, "max_message_bytes": 16384, "close_timeout_ms": 300},
            "session": {"echo_delay_ms": 0, "rate_messages": 100000, "max_text_bytes": 8000},
        },
        name="backpressure",
    ).start()
    try:
        assert metric(srv, "trilemma_sessions_open") == 0
        ws = RawWS(srv.port, rcvbuf=4096)
        ws.open()
        assert metric(srv, "trilemma_sessions_open") == 1
        text = "a " * 3999  # ~4000 one-word deltas: far more than 16 KiB of output
        for i in range(3):
            try:
                ws.send_json({"type": "user_message", "id": "flood%d" % i, "text": text})
            except (BrokenPipeError, ConnectionResetError):
                break
        # never read; the server must drop the session on its own
        harness.wait_until(
            lambda: metric(srv, "trilemma_sessions_open") == 0,
            "the server to drop the session of a client that does not read",
            timeout=harness.TIMEOUT * 2,
        )
        # what the client finally sees: a reset, or the queued frames ending in close 1008
        last = None
        outcome = None
        deadline = time.monotonic() + harness.TIMEOUT * 2
        while outcome is None:
            try:
                f = ws.recv_frame(timeout=max(0.01, deadline - time.monotonic()))
            except ConnectionResetError:
                outcome = "reset"
            except EOFError:
                outcome = "eof"
            except TimeoutError:
                raise AssertionError("the session is gone from the metrics but the connection is still open")
            else:
                if f.opcode == OP_CLOSE:
                    last = f
                    code = f.close_code()
                    assert code == 1008, "close %r for a slow reader (expected 1008)" % code
                    ws.expect_eof()
                    outcome = "close 1008"
        ws.close()
        print("    slow reader saw: %s" % outcome)
        assert outcome in ("reset", "close 1008"), "slow reader: %s (last frame %r)" % (outcome, last)
        # and the server is fine
        assert http_request(srv.port, "GET", "/healthz").status == 200
        with RawWS(srv.port) as ok:
            ok.open()
            ok.send_json({"type": "user_message", "id": "after", "text": "still serving"})
            ev, _ = ok.recv_json_until(lambda e: e.get("type") == "turn_end")
            assert ev["finish_reason"] == "stop", ev
    finally:
        srv.stop()


# ------------------------------------------------------------------------------------------
# Heartbeat and idle timeout


HEARTBEAT = {"websocket": {"ping_interval_ms": 200, "idle_timeout_ms": 3000}}


@suite.test
def silent_client_gets_pings_then_close_1001():
    srv = suite.server("heartbeat", config=HEARTBEAT)
    with RawWS(srv.port) as ws:
        ws.open()
        pings = 0
        while True:
            f = ws.recv_frame(timeout=harness.TIMEOUT)  # never answered
            ws.check_frame(f)
            if f.opcode == OP_PING:
                pings += 1
                continue
            assert f.opcode == OP_CLOSE, "unexpected frame %r" % f
            break
        assert pings >= 1, "closed for idleness without a ping first"
        assert f.close_code() == 1001, "idle close code %r (expected 1001)" % f.close_code()
        ws.expect_eof()


@suite.test
def client_answering_pings_stays_open():
    srv = suite.server("heartbeat", config=HEARTBEAT)
    with RawWS(srv.port) as ws:
        ws.open()
        pings = 0
        # 25 pings at 200 ms span well past idle_timeout_ms (3000): the pongs keep it alive
        while pings < 25:
            f = ws.recv_frame(timeout=harness.TIMEOUT)
            ws.check_frame(f)
            assert f.opcode != OP_CLOSE, "closed after %d answered pings: %r" % (pings, f.close_code())
            if f.opcode == OP_PING:
                pings += 1
                ws.send_frame(OP_PONG, f.payload)
        ws.send_close(1000)
        assert ws.expect_close()[0] == 1000
        ws.expect_eof()


@suite.test
def python_websockets_client_survives_heartbeats():
    import asyncio

    import websockets

    srv = suite.server("heartbeat", config=HEARTBEAT)

    async def run():
        async with websockets.connect(srv.ws_url(), ping_interval=None) as ws:
            json.loads(await ws.recv())
            # websockets answers the server's pings itself; chat across several idle periods
            for i in range(8):
                await ws.send(json.dumps({"type": "user_message", "id": "h%d" % i, "text": "beat %d" % i}))
                while True:
                    ev = json.loads(await asyncio.wait_for(ws.recv(), harness.TIMEOUT))
                    if ev["type"] == "turn_end":
                        break
                pong = await ws.ping(b"x")
                await asyncio.wait_for(pong, harness.TIMEOUT)

    asyncio.run(run())


# ------------------------------------------------------------------------------------------
# Auth


SECRET = "integration-test-secret-0123456789abcdef"
ISSUER = "https://idp.test"
AUDIENCE = "trilemma"


def auth_server():
    return suite.server(
        "auth",
        config={"auth": {"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}},
        env={"TRILEMMA_JWT_SECRET": SECRET},
    )


def claims(**over):
    now = int(time.time())
    c = {"sub": "user-42", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 3600}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def upgrade(srv, token=None, how="header", origin=None):
    headers = {}
    path = "/ws"
    if token is not None and how == "header":
        headers["Authorization"] = "Bearer " + token
    elif token is not None:
        path = "/ws?token=" + token
    if origin is not None:
        headers["Origin"] = origin
    ws = RawWS(srv.port)
    r = ws.handshake(path=path, headers=headers, expect=None)
    return ws, r


def expect_401(srv, token, how="header", what=""):
    ws, r = upgrade(srv, token, how)
    with ws:
        assert r.status == 401, "%s: %r" % (what, r)
        www = r.header("www-authenticate", "")
        assert www.startswith("Bearer") and 'error="invalid_token"' in www, "%s: %r" % (what, r)
        assert r.json().get("error"), r


@suite.test
def auth_missing_token_401():
    expect_401(auth_server(), None, what="no token")


@suite.test
def auth_bad_tokens_401():
    srv = auth_server()
    now = int(time.time())
    cases = {
        "bad signature": make_jwt(claims(), SECRET + "x"),
        "expired": make_jwt(claims(exp=now - 3600), SECRET),
        "not yet valid": make_jwt(claims(nbf=now + 3600), SECRET),
        "alg none": make_jwt(claims(), SECRET, alg="none"),
        "alg none with HS256 signature": make_jwt(claims(), SECRET, alg="none")[:-1] + "." + make_jwt(claims(), SECRET).split(".")[2],
        "no sub": make_jwt(claims(sub=None), SECRET),
        "empty sub": make_jwt(claims(sub=""), SECRET),
        "wrong issuer": make_jwt(claims(iss="https://evil.test"), SECRET),
        "wrong audience": make_jwt(claims(aud="other"), SECRET),
        "malformed": "not.a.jwt",
        "garbage": "abc",
        "empty": "",
        "two parts": ".".join(make_jwt(claims(), SECRET).split(".")[:2]),
        "tampered payload": (lambda t: t[0] + "." + harness.b64url(json.dumps(claims(sub="admin"))) + "." + t[2])(
            make_jwt(claims(), SECRET).split(".")
        ),
    }
    for what, token in cases.items():
        expect_401(srv, token, "header", what)
    for what in ("bad signature", "expired", "alg none"):
        expect_401(srv, cases[what], "query", what + " (?token=)")


@suite.test
def auth_scheme_must_be_bearer():
    srv = auth_server()
    ws = RawWS(srv.port)
    with ws:
        r = ws.handshake(headers={"Authorization": "Basic dXNlcjpwYXNz"}, expect=None)
        assert r.status == 401, r


@suite.test
def auth_valid_token_via_header():
    srv = auth_server()
    ws, r = upgrade(srv, make_jwt(claims(sub="alice@example.com"), SECRET), "header")
    with ws:
        assert r.status == 101, r
        ev = ws.recv_json()
        assert ev["type"] == "session" and ev["user"] == "alice@example.com", ev


@suite.test
def auth_valid_token_via_query():
    srv = auth_server()
    ws, r = upgrade(srv, make_jwt(claims(sub="bob"), SECRET), "query")
    with ws:
        assert r.status == 101, r
        ev = ws.recv_json()
        assert ev["type"] == "session" and ev["user"] == "bob", ev
        ws.send_json({"type": "user_message", "id": "q", "text": "authenticated"})
        end, _ = ws.recv_json_until(lambda e: e.get("type") == "turn_end")
        assert end["finish_reason"] == "stop"


@suite.test
def auth_token_query_among_other_params():
    srv = auth_server()
    tok = make_jwt(claims(sub="carol", aud=["x", AUDIENCE]), SECRET, alg="HS512")
    ws = RawWS(srv.port)
    with ws:
        r = ws.handshake(path="/ws?lang=en&token=%s&v=1" % tok, expect=None)
        assert r.status == 101, r
        assert ws.recv_json()["user"] == "carol"


@suite.test
def auth_http_endpoints_stay_open():
    srv = auth_server()
    assert http_request(srv.port, "GET", "/healthz").status == 200
    assert http_request(srv.port, "GET", "/readyz").status == 200


# ------------------------------------------------------------------------------------------
# Origin allow-list


ORIGINS = "https://shop.example.com, http://localhost:8080"


def origin_server():
    return suite.server("origin", env={"TRILEMMA_ALLOWED_ORIGINS": ORIGINS})


@suite.test
def origin_allowed():
    srv = origin_server()
    for origin in ("https://shop.example.com", "http://localhost:8080", "HTTPS://SHOP.EXAMPLE.COM"):
        ws, r = upgrade(srv, origin=origin)
        with ws:
            assert r.status == 101, (origin, r)


@suite.test
def origin_foreign_403():
    srv = origin_server()
    for origin in (
        "https://evil.example.com",
        "https://shop.example.com.evil.com",
        "http://shop.example.com",
        "https://shop.example.com:8443",
        "http://localhost:8081",
        "null",
    ):
        ws, r = upgrade(srv, origin=origin)
        with ws:
            assert r.status == 403, (origin, r)
            assert r.json().get("error"), r


@suite.test
def origin_missing_with_allow_list_403():
    srv = origin_server()
    ws, r = upgrade(srv)
    with ws:
        assert r.status == 403, r


if __name__ == "__main__":
    suite.main()
