#!/usr/bin/env python3
"""test_retention.py - the retention procedure of docs/operations.md ("PostgreSQL: retention")
works on the schema the migrations make (ctest label integration).

A server with a private PostgreSQL stores a few turns in this month's partitions; then the
runbook's SQL, statement by statement, removes that month: detach the four child tables' month
partitions, drop them, detach and drop the turns partition, delete the conversations left
without turns, and make the month's partitions again. Also checked, because the runbook warns
about them: the turns partition cannot be detached first (foreign keys), and DETACH ...
CONCURRENTLY is refused (every table has a DEFAULT partition). When a migration changes the
partitioning, this test fails and the runbook must change with it.

  python3 test_retention.py --server build/trilemmad --source .
"""

import asyncio
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import websockets  # noqa: E402

from harness import TIMEOUT, Server, Suite  # noqa: E402
from k8s_common import Cluster  # noqa: E402

suite = Suite("retention")

CHILDREN = ("messages", "llm_calls", "tool_calls", "ledger")


def runbook(month):
    """The statements of docs/operations.md for one month (YYYYMM), in order."""
    return (
        ["ALTER TABLE %s DETACH PARTITION %s_%s" % (t, t, month) for t in CHILDREN]
        + ["DROP TABLE %s" % ", ".join("%s_%s" % (t, month) for t in CHILDREN),
           "ALTER TABLE turns DETACH PARTITION turns_%s" % month,
           "DROP TABLE turns_%s" % month,
           "DELETE FROM conversations c WHERE NOT EXISTS "
           "(SELECT 1 FROM turns t WHERE t.conversation_id = c.id)"]
    )


def refused(pg, sql, why):
    try:
        pg.psql(sql)
    except AssertionError as e:
        assert why in str(e), str(e)
        return
    raise AssertionError("accepted: %s" % sql)


@suite.test
async def a_months_partitions_detach_and_drop_as_the_runbook_says():
    pg = Cluster()
    try:
        srv = Server(config={"session": {"echo_delay_ms": 0}}, env={"DATABASE_URL": pg.url}, name="retention").start()
        try:
            for i in range(3):
                async with websockets.connect(srv.ws_url()) as ws:
                    assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["type"] == "session"
                    await ws.send(json.dumps({"type": "user_message", "id": "m%d" % i, "text": "hello %d" % i}))
                    while json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["type"] != "turn_end":
                        pass
        finally:
            srv.stop()
        # the turns' month (the server's clock, UTC), and its rows
        month = pg.psql("SELECT to_char(max(started_at) AT TIME ZONE 'UTC', 'YYYYMM') FROM turns")[0][0]
        assert pg.psql("SELECT count(*) FROM turns_%s" % month) == [["3"]]
        refused(pg, "ALTER TABLE turns DETACH PARTITION turns_%s" % month, "violates foreign key constraint")
        refused(pg, "ALTER TABLE messages DETACH PARTITION messages_%s CONCURRENTLY" % month,
                "cannot detach partitions concurrently when a default partition exists")
        for sql in runbook(month):
            pg.psql(sql)
        assert pg.psql("SELECT count(*) FROM turns") == [["0"]]
        assert pg.psql("SELECT count(*) FROM conversations") == [["0"]]
        # the month comes back when partitions are made ahead (as every server start does)
        second = "(to_date('%s02', 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC')" % month
        assert int(pg.psql("SELECT trilemma_ensure_partitions(%s, 1)" % second)[0][0]) == 5
        print("    month %s: children detached and dropped, then turns; conversations cleaned; "
              "partitions re-made" % month)
    finally:
        pg.stop()


if __name__ == "__main__":
    suite.main()
