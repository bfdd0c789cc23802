#!/usr/bin/env python3
"""test_drain_load.py - what a pod deletion does to a loaded gateway (ctest label integration).

A server with a private PostgreSQL gets SIGTERM (what the kubelet sends after the preStop
sleep) while many turns stream (the echo model, slowed by echo_delay_ms), one session sits idle,
and new WebSocket connections keep arriving. Then:
  - the server turns not-ready (/readyz 503, or the listener refuses: both fail a kubelet
    probe) before any in-flight turn ends, and never turns ready again;
  - after that, no new connection is upgraded: each is refused, closed or answered 503;
  - every in-flight turn streams to its end (turn_end, finish_reason stop, the whole text);
  - every client, busy or idle (and every connection that arrived before the drain), gets close
    1001 (Going Away) and reconnects elsewhere;
  - the process exits 0 by itself once the turns are done - drain_timeout_ms is 60 s here and
    the wait for the exit is bounded below that, so a server that sat out its deadline (or
    would be SIGKILLed at the end of a pod's grace period) fails;
  - every finished turn is in PostgreSQL (turns, both messages, the ledger adding up) and the
    spill journal is empty: nothing acknowledged is left behind on the pod.
No sleep stands in for synchronisation; the one pause is the pacing of new arrivals. No
duration is asserted.

  python3 test_drain_load.py --server build/trilemmad --source .
"""

import asyncio
import json
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import websockets  # noqa: E402

import harness  # noqa: E402
from harness import TIMEOUT, Server, Suite  # noqa: E402
from k8s_common import Cluster  # noqa: E402

suite = Suite("drain_load")

BUSY = 16  # sessions with a turn in flight at SIGTERM
WORDS = 30  # x echo_delay_ms 100 = about 3 s of streaming per turn
MAX_ARRIVALS = 400  # bound of the arrivals loop


async def readyz(port):
    """'ready', 'not-ready' (503) or 'refused' (the listener is closed)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
    except (ConnectionRefusedError, OSError):
        return "refused"
    try:
        writer.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
    except (ConnectionResetError, BrokenPipeError):
        return "refused"
    finally:
        writer.close()
    if not line:
        return "refused"
    status = int(line.split()[1])
    assert status in (200, 503), line
    return "ready" if status == 200 else "not-ready"


async def open_session(port):
    ws = await websockets.connect("ws://127.0.0.1:%d/ws" % port, max_size=None, open_timeout=TIMEOUT)
    first = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert first["type"] == "session", first
    return ws, first["conversation_id"]


async def expect_1001(ws, what):
    """Read until the server closes; its close code must be 1001. Skips data frames."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    except websockets.exceptions.ConnectionClosed:
        pass
    assert ws.close_code == 1001, "%s closed with %r (expected 1001)" % (what, ws.close_code)


@suite.test
async def sigterm_under_load_finishes_and_stores_turns_refuses_newcomers_and_exits_0():
    pg = Cluster()
    srv = Server(
        config={
            "server": {"drain_timeout_ms": 60000},
            "websocket": {"close_timeout_ms": 2000},
            "session": {"echo_delay_ms": 100},
        },
        env={"DATABASE_URL": pg.url},
        name="drain-load",
    ).start()
    try:
        port = srv.port
        assert await readyz(port) == "ready"
        # wait for the store: /readyz says "storage: ok" once the writer connection is up
        harness.wait_until(lambda: b"storage: ok" in harness.http_request(port, "GET", "/readyz").body, "storage ok")

        busy = [await open_session(port) for _ in range(BUSY)]
        idle, idle_conv = await open_session(port)
        texts = {}
        for i, (ws, conv) in enumerate(busy):
            texts[conv] = " ".join("s%02dw%02d" % (i, w) for w in range(WORDS))
            await ws.send(json.dumps({"type": "user_message", "id": "t%d" % i, "text": texts[conv]}))
        answers = {conv: [] for conv in texts}
        for ws, conv in busy:  # every turn is streaming
            m = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            assert m["type"] == "turn_start", m
            m = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            assert m["type"] == "delta", m
            answers[conv].append(m["text"])

        # ---- arrivals: new clients keep connecting, before and during the drain
        state = {"not_ready": False, "stop": False}
        outcomes = {"before": [], "after": []}
        kept = []  # sessions that arrived before the drain: they get 1001 too

        async def arrivals():
            for _ in range(MAX_ARRIVALS):
                if state["stop"]:
                    return
                phase = "after" if state["not_ready"] else "before"
                try:
                    ws = await websockets.connect("ws://127.0.0.1:%d/ws" % port, open_timeout=TIMEOUT)
                    outcome = "upgraded"
                    kept.append(ws)
                except (ConnectionRefusedError, OSError):
                    outcome = "refused"
                except websockets.exceptions.InvalidStatusCode as e:
                    outcome = e.status_code
                except (websockets.exceptions.InvalidMessage, websockets.exceptions.ConnectionClosed, EOFError):
                    outcome = "closed"
                outcomes[phase].append(outcome)
                if phase == "after" and len(outcomes["after"]) >= 20:
                    return
                await asyncio.sleep(0.02)  # the arrival rate (pacing, not a synchronisation)

        arrivals_task = asyncio.create_task(arrivals())
        while len(outcomes["before"]) < 5:  # new clients are arriving when the signal comes
            await asyncio.sleep(0.01)

        # ---- the signal, and readiness: not-ready before any in-flight turn ends
        srv.send_signal(signal.SIGTERM)
        probes = []

        async def watch_readiness():
            while True:
                r = await readyz(port)
                probes.append(r)
                if r != "ready":
                    state["not_ready"] = True
                if r == "refused" or (state["not_ready"] and len(probes) > 50):
                    return
                await asyncio.sleep(0.01)  # probe pacing

        watch = asyncio.create_task(watch_readiness())

        async def finish(ws, conv):
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                if m["type"] == "delta":
                    answers[conv].append(m["text"])
                    continue
                # "at once": the server failed its readiness before this turn could end
                m["_not_ready_first"] = state["not_ready"]
                return m

        ends = await asyncio.gather(*(finish(ws, conv) for ws, conv in busy))
        for (ws, conv), end in zip(busy, ends):
            assert end["type"] == "turn_end" and end["finish_reason"] == "stop", end
            assert end["_not_ready_first"], "a turn ended before /readyz failed: %s" % probes
            assert "".join(answers[conv]) == texts[conv], (conv, answers[conv][:3])
        await watch
        seen = probes[probes.index(next(p for p in probes if p != "ready")):]
        assert "ready" not in seen, "ready again after not-ready: %s" % probes
        print("    readiness after SIGTERM: %s" % " ".join(dict.fromkeys(seen)))

        # ---- everyone gets 1001, the process exits 0 by itself
        await asyncio.gather(*(expect_1001(ws, "busy session") for ws, _ in busy), expect_1001(idle, "idle session"),
                             *(expect_1001(ws, "early arrival") for ws in list(kept)))
        state["stop"] = True
        await arrivals_task
        rc = srv.wait_exit(timeout=min(harness.STOP_TIMEOUT, 45))
        assert rc == 0, "exit status %s\n%s" % (rc, srv.stderr_tail())
        srv.stop()  # the sanitizer check

        assert "upgraded" in outcomes["before"], outcomes
        bad = [o for o in outcomes["after"] if o not in ("refused", "closed", 503)]
        assert not bad, "connections accepted while draining: %s" % outcomes["after"]
        print("    arrivals before the drain: %d upgraded; during it: %s"
              % (outcomes["before"].count("upgraded"), {o: outcomes["after"].count(o) for o in set(outcomes["after"])}))

        # ---- stored: every finished turn, with its messages and a ledger that adds up
        convs = list(texts)
        lit = "'{%s}'::text[]" % ",".join(convs)
        rows = pg.psql(
            "SELECT t.conversation_id, t.finish_reason, t.cost_micros, "
            "(SELECT count(*) FROM messages m WHERE m.turn_id = t.id), "
            "(SELECT coalesce(sum(amount_micros), 0) FROM ledger l WHERE l.turn_id = t.id), "
            "(SELECT content FROM messages m WHERE m.turn_id = t.id AND m.role = 'assistant') "
            "FROM turns t WHERE t.conversation_id = ANY(%s)" % lit)
        assert len(rows) == BUSY, "%d of %d turns stored" % (len(rows), BUSY)
        for conv, finish_reason, cost, nmsg, ledger, content in rows:
            assert finish_reason == "stop" and nmsg == "2" and cost == ledger, (conv, finish_reason, nmsg, cost, ledger)
            assert content == texts[conv], conv
        journal = os.path.join(srv.dir, "journal")
        leftover = [f for f in os.listdir(journal) if os.path.getsize(os.path.join(journal, f))] if os.path.isdir(journal) else []
        assert not leftover, "spill journal not empty after the drain: %s" % leftover
        print("    %d turns finished during the drain, all in PostgreSQL; journal empty; exit 0" % BUSY)
    finally:
        srv.kill()
        pg.stop()


if __name__ == "__main__":
    suite.main()
