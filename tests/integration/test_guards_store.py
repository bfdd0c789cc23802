#!/usr/bin/env python3
"""test_guards_store.py - the guards of issue 18 that need PostgreSQL (private clusters from
tests/store/pg_cluster.sh, as test_store_e2e.py starts them):

  - item 7: spill journals written against database A are left alone (and reported in the log and
    trilemma_store_foreign_journals) by a server of a fresh database B, or of another database of
    A's cluster, and are replayed into A by a server of A
  - item 3: a session whose in-memory history was dropped to keep the process under its history
    budget still sends its model the earlier turns (reloaded from PostgreSQL), and no request
    carries more history than history_max_bytes

Waits are for events (a process, /metrics, rows in the database); TIMEOUT only bounds them.
Exit status 77 (skipped) when PostgreSQL's binaries are missing.
"""

import asyncio
import json
import os
import shutil
import sys
import tempfile

import websockets

import harness
from harness import TIMEOUT, Server, http_request, wait_until

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
if not os.path.exists(os.path.join(PG_BIN, "initdb")):
    print("PostgreSQL binaries not found in %s: skipped" % PG_BIN)
    sys.exit(77)

import test_store_e2e as e2e  # noqa: E402 - the Cluster and Chat helpers, after the skip check
from test_store_e2e import Chat, Cluster  # noqa: E402

suite = harness.Suite("guards_store")
# keys the server had before issue 18 too, so that the journal test also runs on the old code
LOAD = {"session": {"echo_delay_ms": 0, "rate_messages": 100000}}
CLUSTERS = {}


def cluster(name):
    if name not in CLUSTERS:
        CLUSTERS[name] = Cluster()
    return CLUSTERS[name]


def metric(srv, name):
    return e2e.metric(srv, name)


def turns_in(c, ids, url_db="trilemma"):
    rows = psql(c, "SELECT count(*) FROM turns WHERE id = ANY(%s)" % e2e.ids_literal(ids), url_db)
    return int(rows[0][0])


def psql(c, sql, db="trilemma"):
    import subprocess

    cmd = [os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-F", "|", "-v",
           "ON_ERROR_STOP=1", "-h", c.dir, "-U", "postgres", "-d", db]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    r = subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=TIMEOUT, cwd="/")
    assert r.returncode == 0, "psql failed: %s\n%s" % (r.stderr, sql[:300])
    return [line.split("|") for line in r.stdout.splitlines() if line]


def journal_files(d):
    return {f: os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)
            if f.endswith(".journal") and os.path.getsize(os.path.join(d, f))}


# ------------------------------------------------------------------------------------------
# 7. A journal belongs to one database


@suite.test
async def test_journals_of_database_a_are_not_replayed_into_b_but_are_into_a():
    a, b = cluster("a"), cluster("b")
    journal = tempfile.mkdtemp(prefix="trilemma-guards-journal-")
    first = Server(config=LOAD, env={"DATABASE_URL": a.url, "TRILEMMA_JOURNAL_DIR": journal},
                   name="on-a").start()
    ended = []
    try:
        c = await Chat.connect(first)
        ended.append((await c.ok_turn("d", "direct into a"))[0])
        await asyncio.to_thread(a.pause)
        await e2e.wait_for(lambda: e2e.storage_state(first) == "degraded", "degraded")
        for i in range(10):
            ended.append((await c.ok_turn("j%d" % i, "journaled %d" % i))[0])
        first.kill()  # SIGKILL: the journal stays, an orphan
        left = journal_files(journal)
        assert left, os.listdir(journal)

        # a server of another database (a fresh cluster B) leaves them alone and says so
        with Server(config=LOAD, env={"DATABASE_URL": b.url, "TRILEMMA_JOURNAL_DIR": journal},
                    name="on-b") as on_b:
            # the start's replay ran before /healthz answered
            assert turns_in(b, ended) == 0, "turns of A replayed into B"
            assert metric(on_b, "trilemma_store_foreign_journals") == len(left)
            c2 = await Chat.connect(on_b)  # B works: its workers are connected and committing
            own = (await c2.ok_turn("b", "a turn of b"))[0]
            await c2.close()
            wait_until(lambda: turns_in(b, [own]) == 1, "b's own turn in b")
            assert "belongs to another database" in on_b.stderr_text()
        assert turns_in(b, ended) == 0, "turns of A replayed into B"
        assert journal_files(journal) == left, "the foreign journals were touched"

        # another database of A's own cluster is another database too
        await asyncio.to_thread(a.start)
        psql(a, "CREATE DATABASE other")
        other_url = a.url.replace("/trilemma?", "/other?")
        with Server(config=LOAD, env={"DATABASE_URL": other_url, "TRILEMMA_JOURNAL_DIR": journal},
                    name="on-a-other") as on_other:
            assert metric(on_other, "trilemma_store_foreign_journals") == len(left)
        assert journal_files(journal) == left

        # a server of A replays them into A, once
        with Server(config=LOAD, env={"DATABASE_URL": a.url, "TRILEMMA_JOURNAL_DIR": journal},
                    name="on-a-again") as again:
            wait_until(lambda: turns_in(a, ended) == len(ended), "the journal replayed into A")
            assert metric(again, "trilemma_store_foreign_journals") == 0
        assert not journal_files(journal)
        shutil.rmtree(journal, ignore_errors=True)
    finally:
        first.kill()
        await asyncio.to_thread(a.ensure_running)


# ------------------------------------------------------------------------------------------
# 3. A dropped history is reloaded from the store


def sim_requests(sim, since):
    r = http_request(sim.port, "GET", "/v1/_requests?since=%d" % since)
    assert r.status == 200, r
    return json.loads(r.body)


def user_texts(body):
    return [m["content"] for m in json.loads(body)["messages"] if m["role"] in ("user",)
            and isinstance(m.get("content"), str)]


@suite.test
async def test_a_dropped_history_is_reloaded_and_the_session_cap_holds():
    sim = e2e.sim()
    env = {"DATABASE_URL": cluster("a").url, "TRILEMMA_MODEL": "openai/sim-shopper"}
    env.update(sim.base_urls())
    cfg = {"session": {"rate_messages": 100000, "turns_per_minute_per_ip": 0,
                       "history_max_bytes": 30000, "history_budget_bytes": 100000},
           "model": {"retry_base_ms": 10}}
    with Server(config=cfg, env=env, workers=1, name="history-reload") as srv:
        x = await Chat.connect(srv)
        for i in range(2):
            await x.ok_turn("x%d" % i, "[[sim:tokens=3]] zebra-%d remember me" % i)
        # other sessions fill the budget: x, the least recently active, is dropped first
        fillers = [await Chat.connect(srv) for _ in range(8)]
        for k, f in enumerate(fillers):
            await f.ok_turn("f%d" % k, "[[sim:tokens=3]] " + ("filler%d " % k) * 1700)
        assert metric(srv, "trilemma_history_dropped_total") > 0
        assert metric(srv, "trilemma_history_bytes") <= 100000
        last = sim_requests(sim, 0)["last"]
        await x.ok_turn("x2", "[[sim:tokens=3]] what did I say?")
        reqs = sim_requests(sim, last)["requests"]
        assert len(reqs) == 1, reqs
        texts = user_texts(reqs[0]["body"])
        assert any("zebra-0" in t for t in texts) and any("zebra-1" in t for t in texts), texts
        assert metric(srv, "trilemma_history_reloads_total") >= 1
        # the per-session cap: a long conversation's request holds at most 30000 bytes of it
        big = fillers[0]
        for i in range(4):
            last = sim_requests(sim, 0)["last"]
            await big.ok_turn("b%d" % i, "[[sim:tokens=3]] " + ("big%d " % i) * 2400)
            body = json.loads(sim_requests(sim, last)["requests"][0]["body"])
            held = sum(len(m["content"].encode()) for m in body["messages"][1:]
                       if isinstance(m.get("content"), str))
            assert held <= 30000 or len(body["messages"]) == 2, held
        for c in fillers + [x]:
            await c.close()


@suite.on_teardown
def stop_clusters_and_sim():
    try:
        if e2e.SIM is not None:
            e2e.SIM.stop()
    finally:
        for c in CLUSTERS.values():
            c.stop()


suite.main()
