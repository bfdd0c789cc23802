"""test_traffic.py - GET /v1/traffic (store/api_traffic.c, docs/planner.md) end to end: a real
trilemmad with a private PostgreSQL (tests/store/pg_cluster.sh) and model calls of known sizes
and times written into llm_calls directly, so that every expected bucket is computed by hand.

  - minute and hour buckets per (provider, model, tier): calls, input / cached / output tokens,
    summed duration, concurrency = duration / bucket length; empty buckets left out; the range
    is from's midnight to the midnight after `to` (UTC)
  - provider and model filters; a route with no calls is not listed
  - every bad parameter gets 400 and a message naming it; the admin token (401); methods (405);
    HEAD
  - trilemma-plan over the server's URL reads the same traffic and prices it as by hand

No sleeps; exit 77 without PostgreSQL's binaries.
"""

import json
import os
import subprocess
import sys
import urllib.parse
from fractions import Fraction

from harness import Args, Server, Suite, http_request
from test_admin_api import Cluster, skip_without_pg

suite = Suite("traffic")
ADMIN = "admin-token-for-the-traffic-tests"
STATE = {}

# (turn start, [(provider, model, tier, input, cached, output, duration_ms)])
TURNS = [
    ("2026-11-01 23:59:59+00", [("openai", "sim-frontier", "standard", 9, 0, 9, 1000)]),
    ("2026-11-02 10:00:10+00", [("openai", "sim-frontier", "standard", 500, 100, 250, 30000),
                                ("openai", "sim-cheap", "standard", 40, 0, 10, 1200)]),
    ("2026-11-02 10:00:50+00", [("openai", "sim-frontier", "standard", 300, 0, 100, 12000)]),
    ("2026-11-02 10:02:05+00", [("openai", "sim-frontier", "provisioned", 2000, 0, 1000, 90000)]),
    ("2026-11-02 11:30:00+00", [("openai", "sim-frontier", "standard", 7, 0, 3, 6000)]),
    ("2026-11-04 00:00:00+00", [("openai", "sim-frontier", "standard", 1, 0, 1, 1000)]),
]

CONV = "c" * 32


def setup():
    if STATE:
        return STATE
    db = Cluster()
    STATE["db"] = db
    srv = Server(config={}, env={"DATABASE_URL": db.url, "TRILEMMA_ADMIN_TOKEN": ADMIN},
                 workers=1, name="traffic").start()
    STATE["srv"] = srv
    sql = ["BEGIN;",
           "INSERT INTO conversations (id, created_at, updated_at) VALUES "
           "('%s', '2026-11-01 00:00:00+00', '2026-11-05 00:00:00+00');" % CONV]
    for n, (ts, calls) in enumerate(TURNS):
        tid = "%032x" % (n + 1)
        sql.append("INSERT INTO turns (id, started_at, conversation_id, finish_reason, total_ms, "
                   "input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, "
                   "reasoning_tokens, cost_micros, currency, usd_to_inr_micros) VALUES "
                   "('%s', '%s', '%s', 'stop', 1, 0, 0, 0, 0, 0, 0, 'INR', 84000000);" %
                   (tid, ts, CONV))
        for i, (prov, model, tier, inp, cached, out, dur) in enumerate(calls):
            sql.append(
                "INSERT INTO llm_calls (turn_id, ordinal, started_at, conversation_id, provider, "
                "model, tier, attempt, role, status, input_tokens, cached_input_tokens, "
                "cache_write_tokens, output_tokens, reasoning_tokens, usage_reported, "
                "duration_ms, cost_micros, currency, usd_to_inr_micros, deployment) VALUES "
                "('%s', %d, '%s', '%s', '%s', '%s', '%s', 1, 'model', 'ok', %d, %d, 0, %d, 0, "
                "true, %d, 0, 'INR', 84000000, %s);" %
                (tid, i, ts, CONV, prov, model, tier, inp, cached, out, dur,
                 # a provisioned call names its deployment (migration 011)
                 "'frontier-ptu'" if tier == "provisioned" else "NULL"))
    sql.append("COMMIT;")
    db.psql("\n".join(sql))
    return STATE


@suite.on_teardown
def teardown():
    if "srv" in STATE:
        STATE["srv"].stop()
    if "db" in STATE:
        STATE["db"].stop()


def api(path, method="GET", token=ADMIN):
    headers = {"Authorization": "Bearer " + token} if token is not None else {}
    return http_request(STATE["srv"].port, method, path, headers=headers)


def traffic(**params):
    setup()
    r = api("/v1/traffic?" + urllib.parse.urlencode(params))
    assert r.status == 200, (params, r.status, r.body[:300])
    return r.json()


def bucket(t, calls, inp, cached, out, dur, conc):
    return {"t": t, "calls": calls, "input_tokens": inp, "cached_input_tokens": cached,
            "output_tokens": out, "duration_ms": dur, "concurrency": conc}


@suite.test
def test_minute_buckets():
    j = traffic(**{"from": "2026-11-02", "to": "2026-11-03"})
    assert (j["from"], j["to"], j["bucket"], j["bucket_s"]) == ("2026-11-02", "2026-11-03",
                                                               "minute", 60), j
    assert j["truncated"] is False
    # routes in (provider, model, tier) order; the calls of 2026-11-01 and 11-04 are outside
    assert j["routes"] == [
        {"provider": "openai", "model": "sim-cheap", "tier": "standard",
         "buckets": [bucket("2026-11-02T10:00:00Z", 1, 40, 0, 10, 1200, 0.02)]},
        {"provider": "openai", "model": "sim-frontier", "tier": "provisioned",
         "buckets": [bucket("2026-11-02T10:02:00Z", 1, 2000, 0, 1000, 90000, 1.5)]},
        {"provider": "openai", "model": "sim-frontier", "tier": "standard",
         # 10:00:10 and 10:00:50 share a minute: 42 s of streams in 60 s = 0.7 open
         "buckets": [bucket("2026-11-02T10:00:00Z", 2, 800, 100, 350, 42000, 0.7),
                     bucket("2026-11-02T11:30:00Z", 1, 7, 0, 3, 6000, 0.1)]},
    ], json.dumps(j["routes"], indent=1)


@suite.test
def test_hour_buckets_and_filters():
    j = traffic(**{"from": "2026-11-02", "to": "2026-11-02", "bucket": "hour",
                   "provider": "openai", "model": "sim-frontier"})
    assert j["bucket_s"] == 3600
    assert [(r["tier"], r["buckets"]) for r in j["routes"]] == [
        ("provisioned", [bucket("2026-11-02T10:00:00Z", 1, 2000, 0, 1000, 90000, 0.025)]),
        # 42,000 ms / 3,600,000 ms = 0.011666..: three decimals, rounded down
        ("standard", [bucket("2026-11-02T10:00:00Z", 2, 800, 100, 350, 42000, 0.011),
                      bucket("2026-11-02T11:00:00Z", 1, 7, 0, 3, 6000, 0.001)])], j
    # the whole range from 11-01: the call one second before midnight is in
    j = traffic(**{"from": "2026-11-01", "to": "2026-11-04", "bucket": "hour",
                   "model": "sim-frontier"})
    std = [r for r in j["routes"] if r["tier"] == "standard"][0]
    assert [b["t"] for b in std["buckets"]] == ["2026-11-01T23:00:00Z", "2026-11-02T10:00:00Z",
                                                "2026-11-02T11:00:00Z",
                                                "2026-11-04T00:00:00Z"], std
    assert traffic(**{"from": "2026-11-02", "model": "no-such-model"})["routes"] == []
    assert [r["model"] for r in traffic(**{"from": "2026-11-02", "to": "2026-11-03",
                                           "provider": "openai", "model": "sim-cheap"})
            ["routes"]] == ["sim-cheap"]


@suite.test
def test_bad_parameters_get_400_naming_them():
    setup()
    bad = [
        ("bucket=day", "'bucket'"),
        ("bucket=", "'bucket'"),
        ("from=2026-13-01", "'from'"),
        ("to=yesterday", "'to'"),
        ("from=2026-11-03&to=2026-11-02", "'from' is after 'to'"),
        ("provider=", "'provider'"),
        ("model=" + "m" * 64, "'model'"),
        ("model=%FF", "'model'"),
        ("provider=a&provider=b", "'provider' given more than once"),
        ("group_by=model", "unknown parameter 'group_by'"),
    ]
    for q, needle in bad:
        r = api("/v1/traffic?" + q)
        assert r.status == 400, (q, r.status, r.body)
        assert r.json()["error"] == "bad_request" and needle in r.json()["message"], (q, r.json())


@suite.test
def test_token_methods_head():
    setup()
    assert api("/v1/traffic", token=None).status == 401
    assert api("/v1/traffic", token="wrong").status == 401
    r = api("/v1/traffic", method="POST")
    assert r.status == 405 and r.header("Allow") == "GET, HEAD", r
    r = api("/v1/traffic?from=2026-11-02&to=2026-11-03", method="HEAD")
    assert r.status == 200 and r.body == b"", r


@suite.test
def test_planner_reads_the_server():
    """trilemma-plan SOURCE=URL: the frontier's tiers summed, 10:00..11:30 observed (91
    minutes), priced by hand: 10:00 (800 in, 350 out) 0.8 + 0.7; 10:02 (2000, 1000) 2 + 2;
    11:30 (7, 3) 0.007 + 0.006 -> 5.513 over 5,460 s, x 2,592,000 / 5,460 for the month."""
    setup()
    tool = os.path.join(Args.source, "loadtest", "plan", "trilemma_plan.py")
    r = subprocess.run(
        [sys.executable, tool, STATE["srv"].url("").rstrip("/"), "--from", "2026-11-02", "--to",
         "2026-11-03", "--route", "openai/sim-frontier", "--unit-tpm", "1000", "--hourly-price",
         "1", "--payg-input", "1000", "--payg-output", "2000", "--json"],
        capture_output=True, text=True, timeout=60,
        env=dict(os.environ, TRILEMMA_ADMIN_TOKEN=ADMIN))
    assert r.returncode == 0, r.stderr
    route = json.loads(r.stdout)["routes"][0]
    assert route["route"] == "openai/sim-frontier" and route["observed_s"] == 91 * 60, route
    want = Fraction("5.513") * 2592000 / 5460
    assert abs(route["payg_monthly"] - float(want)) < 1e-3, (route["payg_monthly"], want)
    assert route["peak_units"] == 3, route  # 3000 tokens in 10:02
    # without the token: the server's 401, exit 2
    r = subprocess.run([sys.executable, tool, STATE["srv"].url("").rstrip("/"), "--unit-tpm",
                        "1", "--hourly-price", "1"], capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if k != "TRILEMMA_ADMIN_TOKEN"})
    assert r.returncode == 2 and "answered 401" in r.stderr, r.stderr


if __name__ == "__main__":
    skip_without_pg()
    sys.exit(suite.main())
