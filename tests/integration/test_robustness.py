#!/usr/bin/env python3
"""test_robustness.py - clients that misbehave at the TCP level, and load in bursts: resets in the
middle of a turn or a frame, half-closes, connection churn, many large messages at once (the
provided-buffer ring), floods of control frames and fragments. After each, the server must be
healthy, its open-session and open-connection gauges must come back to zero, and at the end it
must exit 0 with no sanitizer report (use-after-free of a session whose timer fires late, leaks).
"""

import asyncio
import json
import socket
import struct

import websockets

import harness
from harness import OP_CONT, OP_PING, OP_PONG, OP_TEXT, Conn, RawWS, encode_frame, http_request

suite = harness.Suite("robustness")

CONFIG = {
    "websocket": {"close_timeout_ms": 500},
    "session": {"echo_delay_ms": 20, "rate_messages": 1000000},
}


def srv():
    return suite.server(config=CONFIG)


def metric(name):
    r = http_request(srv().port, "GET", "/metrics")
    total = 0.0
    for line in r.body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def settled():
    """Every session gone, and no connection open but the one scraping the metrics."""
    harness.wait_until(lambda: metric("trilemma_sessions_open") == 0, "sessions_open to return to 0")
    harness.wait_until(lambda: metric("trilemma_connections_open") <= 1, "connections_open to return to 1")
    assert http_request(srv().port, "GET", "/healthz").status == 200


def reset(sock):
    """Close with RST (SO_LINGER 0) instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@suite.test
def reset_during_running_turns():
    conns = []
    for i in range(20):
        ws = RawWS(srv().port)
        ws.open()
        ws.send_json({"type": "user_message", "id": "r%d" % i, "text": "slow words " * 20})
        conns.append(ws)
    for ws in conns:
        ev = ws.recv_json()
        assert ev["type"] == "turn_start", ev
        ws.recv_json()  # a delta: the turn's timer is armed
    for ws in conns:
        reset(ws.sock)
    settled()


@suite.test
def fin_during_running_turn():
    for i in range(10):
        ws = RawWS(srv().port)
        ws.open()
        ws.send_json({"type": "user_message", "id": "f%d" % i, "text": "half closed " * 10})
        assert ws.recv_json()["type"] == "turn_start"
        ws.sock.shutdown(socket.SHUT_WR)
        # the server may finish the turn or close at once; either way the stream ends
        ws.read_to_eof()
        ws.close()
    settled()


@suite.test
def reset_in_the_middle_of_a_frame():
    for cut in (1, 2, 5, 9, 40):
        ws = RawWS(srv().port)
        ws.open()
        head, body = encode_frame(OP_TEXT, json.dumps({"type": "user_message", "id": "c", "text": "x" * 100}).encode())
        ws.send((head + body)[:cut])
        reset(ws.sock)
    for cut in (10, 100):
        c = Conn(srv().port)
        c.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"[:cut])
        reset(c.sock)
    settled()


@suite.test
def reset_right_after_upgrade_request():
    for _ in range(20):
        ws = RawWS(srv().port)
        ws.send(harness.build_request("GET", "/ws", [
            ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", harness.new_key()), ("Sec-WebSocket-Version", "13")]))
        reset(ws.sock)
    settled()


@suite.test
def connection_churn():
    async def one(i):
        async with websockets.connect(srv().ws_url(), ping_interval=None) as ws:
            json.loads(await asyncio.wait_for(ws.recv(), harness.TIMEOUT))
            if i % 3 == 0:
                await ws.send(json.dumps({"type": "user_message", "id": "c", "text": "hi there"}))
                while json.loads(await asyncio.wait_for(ws.recv(), harness.TIMEOUT))["type"] != "turn_end":
                    pass

    async def run():
        for _ in range(3):
            await asyncio.gather(*(one(i) for i in range(150)))

    asyncio.run(run())
    settled()


@suite.test
def many_large_messages_at_once():
    # 100 sessions each send a ~60 KB message at the same moment: lots of receive buffers busy
    text = "x" * 7000 + " " + "y" * 7000
    pad = "p" * (60000 - 14001)

    async def one(i):
        async with websockets.connect(srv().ws_url(), ping_interval=None, max_size=1 << 22) as ws:
            json.loads(await asyncio.wait_for(ws.recv(), harness.TIMEOUT))
            await ws.send(json.dumps({"type": "user_message", "id": "L%d" % i, "text": text, "pad": pad}))
            got = []
            while True:
                ev = json.loads(await asyncio.wait_for(ws.recv(), harness.TIMEOUT))
                if ev["type"] == "delta":
                    got.append(ev["text"])
                elif ev["type"] == "turn_end":
                    break
                else:
                    assert ev["type"] == "turn_start" and ev["id"] == "L%d" % i, ev
            assert "".join(got) == text

    async def run():
        await asyncio.gather(*(one(i) for i in range(100)))

    asyncio.run(run())
    settled()


@suite.test
def ping_flood_in_one_write():
    with RawWS(srv().port) as ws:
        ws.open()
        n = 2000
        ws.send(b"".join(b"".join(encode_frame(OP_PING, struct.pack("!I", i))) for i in range(n)))
        for i in range(n):
            f = ws.recv_frame()
            assert f.opcode == OP_PONG and f.payload == struct.pack("!I", i), (i, f)
        ws.send_close(1000)
        assert ws.expect_close()[0] == 1000
    settled()


@suite.test
def message_in_thousands_of_fragments():
    with RawWS(srv().port) as ws:
        ws.open()
        msg = json.dumps({"type": "user_message", "id": "frags", "text": "many small fragments", "pad": "z" * 30000}).encode()
        chunks = [msg[i : i + 7] for i in range(0, len(msg), 7)]
        data = b"".join(encode_frame(OP_TEXT, chunks[0], fin=False))
        for ch in chunks[1:-1]:
            data += b"".join(encode_frame(OP_CONT, ch, fin=False))
        data += b"".join(encode_frame(OP_CONT, chunks[-1], fin=True))
        ws.send(data)
        start, _ = ws.recv_json_until(lambda e: e.get("type") == "turn_start")
        assert start["id"] == "frags", start
        end, deltas = ws.recv_json_until(lambda e: e.get("type") == "turn_end")
        assert "".join(d["text"] for d in deltas) == "many small fragments"
        ws.send_close(1000)
        assert ws.expect_close()[0] == 1000
    settled()


@suite.test
def pings_during_a_turn():
    with RawWS(srv().port) as ws:
        ws.open()
        ws.send_json({"type": "user_message", "id": "p", "text": "a b c d e f g h i j"})
        pongs = 0
        for i in range(50):
            ws.send_frame(OP_PING, b"%d" % i)
        deltas = []
        while True:
            f = ws.recv_frame()
            ws.check_frame(f)
            if f.opcode == OP_PONG:
                assert f.payload == b"%d" % pongs, f
                pongs += 1
                continue
            ev = json.loads(f.payload)
            if ev["type"] == "delta":
                deltas.append(ev["text"])
            if ev["type"] == "turn_end":
                break
        while pongs < 50:
            f = ws.recv_frame()
            assert f.opcode == OP_PONG and f.payload == b"%d" % pongs, f
            pongs += 1
        assert "".join(deltas) == "a b c d e f g h i j"
    settled()


if __name__ == "__main__":
    suite.main()
