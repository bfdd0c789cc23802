"""test_capacity_costs.py - the provisioned hourly price apportioned to the turns it served, in
the cost reports (issue 15, item 1; docs/store.md "Provisioned capacity"): a real trilemmad
whose agents file gives two deployments an hourly price ([capacity NAME]: frontier-ptu 4.00 USD,
cheap-ptu 150 INR), and a private PostgreSQL (tests/store/pg_cluster.sh) holding turns with
provisioned calls, written with psql on a past day (no model is called).

  - GET /v1/costs/provisioned: for every (hour, deployment) the turns' shares sum to the hourly
    price exactly; the shares of a hand-computed hour (1000/2000/3000 tokens of 4.00 USD:
    666667/1333333/2000000) and of the others equal an independent largest-remainder
    computation; an hour whose calls reported no tokens is split equally; a turn's calls on two
    deployments are shared in each; standard calls and other days count nowhere; the hour with
    no call between two served ones is one idle line; a deployment without a price has null
    money; per conversation the shares add up; per deployment hours x price = apportioned
  - ?deployment= narrows to one deployment
  - GET /v1/costs carries the same per-deployment lines
  - bad parameters get 400 naming the parameter and change nothing (the tables are the same
    after them); another method 405; no token 401

No sleeps; exit 77 without PostgreSQL's binaries.
"""

import hashlib
import os
from fractions import Fraction

from harness import Args, Server, Suite, http_request
from test_admin_api import Cluster, skip_without_pg
from test_orchestrator import one_agent

suite = Suite("capacity_costs")
ADMIN = "admin-token-for-the-capacity-cost-tests"
DAY = "2026-01-15"  # a past day: nothing else is stored on it
PRICES = {"frontier-ptu": (4000000, "USD"), "cheap-ptu": (150000000, "INR")}
STATE = {}


def hexid(kind, n):
    return hashlib.md5(("%s-%d" % (kind, n)).encode()).hexdigest()


# (turn, conversation, hour of DAY, minute, calls: (tier, deployment, input, output))
TURNS = [
    # 10:00 frontier-ptu: 1000, 2000 (two calls) and 3000 tokens -> 666667, 1333333, 2000000
    (1, 1, 10, 5, [("provisioned", "frontier-ptu", 800, 200)]),
    (2, 1, 10, 20, [("provisioned", "frontier-ptu", 1000, 500),
                    ("provisioned", "frontier-ptu", 400, 100), ("standard", None, 9000, 900)]),
    (3, 2, 10, 59, [("provisioned", "frontier-ptu", 2500, 500)]),
    # 11:00: no provisioned call (a standard one only): frontier-ptu is idle
    (4, 3, 11, 30, [("standard", None, 100, 10)]),
    # 12:00 frontier-ptu: seven turns of 1, 1, 1, 5, 7, 11, 13 tokens; cheap-ptu: two turns, one
    # of them also on frontier-ptu
    (5, 4, 12, 0, [("provisioned", "frontier-ptu", 1, 0)]),
    (6, 4, 12, 1, [("provisioned", "frontier-ptu", 0, 1)]),
    (7, 5, 12, 2, [("provisioned", "frontier-ptu", 1, 0)]),
    (8, 5, 12, 3, [("provisioned", "frontier-ptu", 3, 2)]),
    (9, 6, 12, 4, [("provisioned", "frontier-ptu", 4, 3)]),
    (10, 6, 12, 5, [("provisioned", "frontier-ptu", 10, 1), ("provisioned", "cheap-ptu", 2, 1)]),
    (11, 7, 12, 6, [("provisioned", "frontier-ptu", 6, 7)]),
    (12, 7, 12, 7, [("provisioned", "cheap-ptu", 7, 0)]),
    # 13:00 frontier-ptu: two turns whose calls failed before any token: equal shares
    (13, 8, 13, 10, [("provisioned", "frontier-ptu", 0, 0)]),
    (14, 8, 13, 40, [("provisioned", "frontier-ptu", 0, 0), ("provisioned", "frontier-ptu", 0, 0)]),
    # 13:00 a deployment without a configured price
    (15, 9, 13, 45, [("provisioned", "unpriced-ptu", 50, 50)]),
]
# the day before: must not count
OTHER_DAY = [(16, 9, 23, 0, [("provisioned", "frontier-ptu", 100, 100)])]


def turns_sql():
    out = []
    for turns, day in ((TURNS, DAY), (OTHER_DAY, "2026-01-14")):
        for tid, cid, h, m, calls in turns:
            at = "%sT%02d:%02d:00Z" % (day, h, m)
            t, c = hexid("turn", tid), hexid("conv", cid)
            out.append("INSERT INTO conversations VALUES ('%s', 'u', '%s', '%s') "
                       "ON CONFLICT (id) DO NOTHING;" % (c, at, at))
            out.append("INSERT INTO turns (id, started_at, conversation_id, finish_reason, "
                       "total_ms, input_tokens, cached_input_tokens, cache_write_tokens, "
                       "output_tokens, reasoning_tokens, cost_micros, currency, "
                       "usd_to_inr_micros) VALUES ('%s', '%s', '%s', 'stop', 100, %d, 0, 0, %d, "
                       "0, 0, 'INR', 84000000);"
                       % (t, at, c, sum(x[2] for x in calls), sum(x[3] for x in calls)))
            for i, (tier, dep, inp, outp) in enumerate(calls):
                d = "'%s'" % dep if dep else "NULL"
                out.append("INSERT INTO llm_calls (turn_id, ordinal, started_at, conversation_id, "
                           "provider, model, tier, attempt, role, status, input_tokens, "
                           "cached_input_tokens, cache_write_tokens, output_tokens, "
                           "reasoning_tokens, usage_reported, duration_ms, cost_micros, currency, "
                           "usd_to_inr_micros, deployment) VALUES ('%s', %d, '%s', '%s', "
                           "'openai', 'sim-frontier', '%s', 1, 'model', 'ok', %d, 0, 0, %d, 0, "
                           "true, 10, 0, 'INR', 84000000, %s);"
                           % (t, i, at, c, tier, inp, outp, d))
                out.append("INSERT INTO ledger (turn_id, line, created_at, conversation_id, kind, "
                           "description, provider, model, amount_micros, currency, "
                           "usd_to_inr_micros, tier, deployment) VALUES ('%s', %d, '%s', '%s', "
                           "'model', 'call', 'openai', 'sim-frontier', 0, 'INR', 84000000, '%s', "
                           "%s);" % (t, i, at, c, tier, d))
    return "BEGIN;\n" + "\n".join(out) + "\nCOMMIT;\n"


def setup():
    if STATE:
        return STATE
    skip_without_pg()
    STATE["db"] = Cluster()
    agents = one_agent("openai/sim-cheap, openai/sim-frontier")
    with open(agents, "a") as f:
        f.write("[capacity frontier-ptu]\nmodel = openai/sim-frontier\nbase_url = /ptu/f/v1\n"
                "tpm = 400000\nstreams = 64\nhourly_price = 4.00\ncurrency = USD\n\n"
                "[capacity cheap-ptu]\nmodel = openai/sim-cheap\nbase_url = /ptu/c/v1\n"
                "tpm = 400000\nstreams = 64\nhourly_price = 150\ncurrency = INR\n")
    unused = "http://127.0.0.1:9"  # no model is called
    env = {"OPENAI_BASE_URL": unused + "/v1", "ANTHROPIC_BASE_URL": unused,
           "GEMINI_BASE_URL": unused, "TRILEMMA_CATALOG_URL": unused,
           "TRILEMMA_MODEL": "openai/sim-frontier", "DATABASE_URL": STATE["db"].url,
           "TRILEMMA_ADMIN_TOKEN": ADMIN}
    cfg = {"model": {"model": "openai/sim-frontier"},
           "orchestrator": {"agents_file": agents},
           "tools": {"tools_file": os.path.join(Args.source, "config", "tools.json")}}
    STATE["srv"] = Server(config=cfg, env=env, workers=2, name="capacity-costs").start()
    STATE["db"].psql(turns_sql())
    return STATE


@suite.on_teardown
def teardown():
    if "srv" in STATE:
        STATE["srv"].stop()
    if "db" in STATE:
        STATE["db"].stop()


def api(path, method="GET", token=ADMIN):
    headers = {"Authorization": "Bearer " + token} if token else {}
    return http_request(STATE["srv"].port, method, path, headers=headers)


def largest_remainder(total, weights):
    """The reference: exact fractions, one unit each to the largest remainders, ties to the
    lower index (rows come in turn id order)."""
    if sum(weights) == 0:
        weights = [1] * len(weights)
    exact = [Fraction(total * w, sum(weights)) for w in weights]
    shares = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[:total - sum(shares)]:
        shares[i] += 1
    return shares


def expected_hours():
    """{(hour, deployment): [(turn id, conversation id, calls, tokens)]} in turn id order."""
    hours = {}
    for tid, cid, h, _, calls in TURNS:
        for tier, dep, inp, outp in calls:
            if tier != "provisioned":
                continue
            key = ("%sT%02d:00:00Z" % (DAY, h), dep)
            turns = hours.setdefault(key, {})
            t = turns.setdefault(hexid("turn", tid), [hexid("conv", cid), 0, 0])
            t[1] += 1
            t[2] += inp + outp
    return {k: sorted((t, *v) for t, v in turns.items()) for k, turns in hours.items()}


@suite.test
def test_shares_sum_to_the_hourly_price():
    setup()
    r = api("/v1/costs/provisioned?from=%s&to=%s" % (DAY, DAY))
    assert r.status == 200, r
    body = r.json()
    assert body["from"] == DAY and body["to"] == DAY and body["deployment"] is None, body
    assert body["truncated"] is False, body
    want = expected_hours()
    got = {(h["hour"], h["deployment"]): h for h in body["hours"]}
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for key, h in got.items():
        rows = want[key]
        assert [(t["turn_id"], t["conversation_id"], t["calls"], t["tokens"])
                for t in h["turns"]] == rows, (key, h)
        assert h["calls"] == sum(x[2] for x in rows) and h["tokens"] == sum(x[3] for x in rows)
        price = PRICES.get(key[1])
        if price is None:
            assert h["hourly_micros"] is None and h["currency"] is None, h
            assert all(t["share_micros"] is None for t in h["turns"]), h
            continue
        assert (h["hourly_micros"], h["currency"]) == price, h
        shares = [t["share_micros"] for t in h["turns"]]
        assert sum(shares) == price[0], (key, shares)  # exactly the hourly price
        assert shares == largest_remainder(price[0], [x[3] for x in rows]), (key, shares)
    hand = [t["share_micros"] for t in got[(DAY + "T10:00:00Z", "frontier-ptu")]["turns"]]
    by_turn = dict(zip([t["turn_id"] for t in got[(DAY + "T10:00:00Z", "frontier-ptu")]["turns"]],
                       hand))
    assert [by_turn[hexid("turn", i)] for i in (1, 2, 3)] == [666667, 1333333, 2000000], by_turn
    zero = [t["share_micros"] for t in got[(DAY + "T13:00:00Z", "frontier-ptu")]["turns"]]
    assert zero == [2000000, 2000000], zero
    # the hour without a call between two served ones: one idle line of the whole price
    assert body["idle"] == [{"hour": DAY + "T11:00:00Z", "deployment": "frontier-ptu",
                             "currency": "USD", "hourly_micros": 4000000}], body["idle"]
    # per deployment: served hours x price, idle hours x price
    dep = {d["deployment"]: d for d in body["provisioned"]}
    assert sorted(dep) == ["cheap-ptu", "frontier-ptu", "unpriced-ptu"], dep
    f = dep["frontier-ptu"]
    assert (f["hours"], f["idle_hours"], f["apportioned_micros"], f["idle_micros"]) == \
        (3, 1, 12000000, 4000000), f
    assert (f["calls"], f["tokens"], f["currency"]) == (14, 6000 + 39, "USD"), f
    c = dep["cheap-ptu"]
    assert (c["hours"], c["idle_hours"], c["apportioned_micros"], c["idle_micros"]) == \
        (1, 0, 150000000, 0), c
    u = dep["unpriced-ptu"]
    assert u["hours"] == 1 and u["apportioned_micros"] is None and u["hourly_micros"] is None, u
    # per conversation: the sums of its turns' shares, adding up to the apportioned totals
    for name in PRICES:
        convs = [x for x in body["conversations"] if x["deployment"] == name]
        assert sum(x["share_micros"] for x in convs) == dep[name]["apportioned_micros"], convs
    conv1 = [x for x in body["conversations"]
             if x["conversation_id"] == hexid("conv", 1) and x["deployment"] == "frontier-ptu"]
    assert conv1 == [{"conversation_id": hexid("conv", 1), "deployment": "frontier-ptu",
                      "currency": "USD", "turns": 2, "share_micros": 666667 + 1333333}], conv1


@suite.test
def test_one_deployment_and_the_costs_report():
    setup()
    r = api("/v1/costs/provisioned?deployment=cheap-ptu&from=%s&to=%s" % (DAY, DAY))
    assert r.status == 200, r
    body = r.json()
    assert body["deployment"] == "cheap-ptu", body
    assert {h["deployment"] for h in body["hours"]} == {"cheap-ptu"}, body["hours"]
    assert [d["deployment"] for d in body["provisioned"]] == ["cheap-ptu"], body
    assert sum(t["share_micros"] for t in body["hours"][0]["turns"]) == 150000000, body
    assert body["idle"] == [], body
    # /v1/costs: the same per-deployment lines next to the groups and totals
    costs = api("/v1/costs?from=%s&to=%s&group_by=model" % (DAY, DAY)).json()
    full = api("/v1/costs/provisioned?from=%s&to=%s" % (DAY, DAY)).json()
    assert costs["provisioned"] == full["provisioned"], (costs["provisioned"], full)
    # the day before holds one frontier-ptu hour and nothing else
    prev = api("/v1/costs/provisioned?from=2026-01-14&to=2026-01-14").json()
    assert [(d["deployment"], d["hours"], d["idle_hours"]) for d in prev["provisioned"]] == \
        [("frontier-ptu", 1, 0)], prev
    assert [t["share_micros"] for t in prev["hours"][0]["turns"]] == [4000000], prev
    # a day without provisioned calls: empty lists
    empty = api("/v1/costs/provisioned?from=2025-06-01&to=2025-06-02").json()
    assert empty["hours"] == [] and empty["idle"] == [] and empty["provisioned"] == [], empty


def snapshot():
    return STATE["db"].psql(
        "SELECT (SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM llm_calls x), "
        "(SELECT md5(string_agg(y::text, ',' ORDER BY y::text)) FROM ledger y), "
        "(SELECT count(*) FROM turns), (SELECT count(*) FROM pods)")


@suite.test
def test_bad_parameters_get_400_and_change_nothing():
    setup()
    before = snapshot()
    cases = [
        ("deployment=Frontier", "deployment"),        # upper case
        ("deployment=a%20b", "deployment"),           # a space
        ("deployment=" + "x" * 32, "deployment"),     # 32 bytes
        ("deployment=", "deployment"),                # empty
        ("deployment=a&deployment=b", "deployment"),  # twice
        ("from=2026-02-30", "from"),                  # not a date
        ("to=2026-1-5", "to"),
        ("from=2026-01-16&to=2026-01-15", "from"),    # from after to
        ("group_by=day", "group_by"),                 # not a parameter of this endpoint
    ]
    for query, name in cases:
        r = api("/v1/costs/provisioned?" + query)
        assert r.status == 400, (query, r)
        body = r.json()
        assert body["error"] == "bad_request" and "'%s'" % name in body["message"], (query, body)
    r = api("/v1/costs/provisioned", method="POST")
    assert r.status == 405 and "GET" in r.header("allow", ""), r
    r = api("/v1/costs/provisioned", token=None)
    assert r.status == 401, r
    r = api("/v1/costs/provisioned", token=ADMIN + "x")
    assert r.status == 401, r
    assert snapshot() == before


if __name__ == "__main__":
    suite.main()
