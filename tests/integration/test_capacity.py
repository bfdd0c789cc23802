"""test_capacity.py - capacity tiers on routes (issue 15, item 1) end to end: a real trilemmad
with an agents file whose cascade model has a [capacity NAME] section, trilemma-sim as the
pay-as-you-go provider and, under /ptu/NAME/, as the provisioned deployments (its --pool), and a
private PostgreSQL (tests/store/pg_cluster.sh) for the read API.

  (a) with room in this pod's share, a step goes to the provisioned pool, and the call is
      recorded with tier "provisioned" (and the deployment's name once the read API shows it);
      the capacity's base_url is a path, resolved against the provider's origin
  (b) the share is full (a tpm smaller than any request): the step goes to pay-as-you-go at
      once, the pool never sees it, the call is recorded "standard", and
      trilemma_capacity_overflow_total{reason="full"} counts it
  (c) the pool answers 429 (its own tpm spent; Retry-After within the first-token deadline,
      retries left): the next attempt is the standard route, not a retry on the pool - the pool
      received one request for the turn
  each case's model span says which tier answered, each attempt its tier, and an overflow event
  its reason; a turn cancelled during its provisioned call frees the stream and the reservation
  the pod's share follows [capacity] pods (trilemma_capacity_share_tpm), or with pods = 0 the
  live pods the store's heartbeat counts (a second process halves it; gone, it comes back), and
  --check-config refuses bad capacity sections naming the file and the line.

Which deployment got a request is read from the simulator's own request log (GET /v1/_requests
keeps the /ptu/NAME prefix), what was recorded from the read API. No sleeps; no timing is
asserted. Exit 77 without PostgreSQL's binaries.
"""

import asyncio
import json
import os
import re
import subprocess
import tempfile

import harness
from harness import Args, Suite, http_request, wait_until
from test_admin_api import Cluster, skip_without_pg
from test_orchestrator import Sim, one_agent, open_session, orch_server, recv, send, turn

suite = Suite("capacity")
ADMIN = "admin-token-for-the-capacity-tests"
STATE = {}


def setup():
    if STATE:
        return STATE
    skip_without_pg()
    STATE["db"] = Cluster()
    # "tight" serves one answer a minute (then 429), "spare" has no limit of its own
    # "slow" takes a minute to its first token (a turn cancelled while it waits)
    STATE["sim"] = Sim("--pool", "tight:tpm=1,streams=4,ttft-ms=5",
                       "--pool", "spare:tpm=0,streams=0,ttft-ms=5",
                       "--pool", "slow:tpm=0,streams=0,ttft-ms=60000")
    return STATE


@suite.on_teardown
def teardown():
    if "sim" in STATE:
        STATE["sim"].stop()
    if "db" in STATE:
        STATE["db"].stop()


def agents_with_capacity(name, base_url, tpm, streams):
    """One agent 'general' (cascade openai/sim-frontier, one step per turn, no classifier) and a
    capacity section for its model."""
    path = one_agent("openai/sim-frontier")
    with open(path, "a") as f:
        f.write("[capacity %s]\nmodel = openai/sim-frontier\nbase_url = %s\ntpm = %d\n"
                "streams = %d\nhourly_price = 4.00\ncurrency = USD\nregion = test-1\n"
                % (name, base_url, tpm, streams))
    return path


def server(agents, name, pods=1):
    # retries left and a first-token deadline longer than any Retry-After of the simulator
    # (at most 60 s): a 429 on a route that does not overflow would be retried on it
    cfg = {"model": {"max_retries": 2, "retry_base_ms": 10, "first_token_timeout_ms": 120000},
           "capacity": {"pods": pods}}
    return orch_server(STATE["sim"], agents=agents, name=name, config=cfg,
                       extra_env={"DATABASE_URL": STATE["db"].url,
                                  "TRILEMMA_ADMIN_TOKEN": ADMIN})


def calls_of(srv, cid, tid, deployments):
    """(tier, model, role, status, http_status) of the turn's calls, read back; the deployment
    of each call, where the read API shows one (the store's migration 011), must be
    deployments[i] ("" for a standard call)."""
    def read():
        r = http_request(srv.port, "GET", "/v1/conversations/" + cid,
                         headers={"Authorization": "Bearer " + ADMIN})
        if r.status != 200:
            return None
        for t in r.json()["turns"]:
            if t["id"] == tid:
                return t["llm_calls"]
        return None
    calls = wait_until(read, "turn %s to be stored" % tid)
    if any("deployment" in c for c in calls):
        assert [c.get("deployment") or "" for c in calls] == deployments, calls
    # the stored rows: each call and its ledger line name the deployment (migration 011)
    db = STATE["db"]
    stored = db.psql("SELECT tier, coalesce(deployment, '') FROM llm_calls WHERE turn_id = '%s' "
                     "ORDER BY ordinal" % tid)
    assert stored == [[c["tier"], d] for c, d in zip(calls, deployments)], stored
    ledger = db.psql("SELECT tier, coalesce(deployment, '') FROM ledger WHERE turn_id = '%s' "
                     "AND kind <> 'cache_saving' ORDER BY line" % tid)
    assert ledger == stored, (ledger, stored)
    return [(c["tier"], c["model"], c["role"], c["status"], c["http_status"]) for c in calls]


def model_span(srv, tid):
    """The turn's one model span (GET /v1/turns/{id}/trace): its attributes, and its events as
    (name, attributes)."""
    def get():
        r = http_request(srv.port, "GET", "/v1/turns/%s/trace" % tid,
                         headers={"Authorization": "Bearer " + ADMIN})
        return r.json() if r.status == 200 else None
    tr = wait_until(get, "the trace of turn %s" % tid)
    spans = [sp for sp in tr["spans"] if sp["kind"] == "model"]
    assert len(spans) == 1, [sp["name"] for sp in tr["spans"]]
    return spans[0]["attributes"], [(e["name"], e["attributes"]) for e in spans[0]["events"]]


def check_trace(srv, tid, tiers, answered_by, overflow):
    """The model span says which tier answered (and its deployment), each attempt_end its
    attempt's tier, and an overflow event its reason (overflow: (deployment, reason) or None)."""
    attrs, events = model_span(srv, tid)
    assert attrs["trilemma.capacity.tier"] == tiers[-1], attrs
    if tiers[0] == "provisioned":  # the deployment tried first, with its region label
        assert attrs["trilemma.capacity.region"] == "test-1", attrs
    else:
        assert "trilemma.capacity.region" not in attrs, attrs
    assert attrs.get("trilemma.capacity.deployment") == answered_by, attrs
    ends = [a for n, a in events if n == "attempt_end"]
    assert [a["trilemma.capacity.tier"] for a in ends] == tiers, events
    got = [(a["trilemma.capacity.deployment"], a["trilemma.capacity.overflow_reason"])
           for n, a in events if n == "overflow"]
    assert got == ([overflow] if overflow else []), events


def metric(srv, name):
    body = http_request(srv.port, "GET", "/metrics").body.decode()
    m = re.search(r"^%s (\d+)$" % re.escape(name), body, re.M)
    return int(m.group(1)) if m else None


def conversation_of(srv, tid):
    (cid,), = STATE["db"].psql("SELECT conversation_id FROM turns WHERE id = '%s'" % tid)
    return cid


async def one_turn(srv, text, mid):
    ws = await open_session(srv)
    t = await turn(ws, text, mid)
    await ws.close()
    t.check_stop()
    tid = t.end["turn_id"]
    wait_until(lambda: STATE["db"].psql("SELECT count(*) FROM turns WHERE id = '%s'" % tid)
               == [["1"]], "the turn to be stored")
    return tid


def requests(since):
    """(pool or "", model) of the model requests the simulator received after seq since."""
    out = []
    for path, model, _ in STATE["sim"].requests(since):
        m = re.match(r"/ptu/([a-z0-9_-]+)/", path)
        out.append((m.group(1) if m else "", model))
    return out


@suite.test
async def test_provisioned_with_room_then_a_429_overflows_without_retry():
    setup()
    sim = STATE["sim"]
    agents = agents_with_capacity("tight", "/ptu/tight/v1", 400000, 8)
    with server(agents, "capacity-a", pods=2) as srv:
        # this pod's share: half of the deployment's
        assert metric(srv, 'trilemma_capacity_share_tpm{deployment="tight"}') == 200000
        assert metric(srv, 'trilemma_capacity_share_streams{deployment="tight"}') == 4
        assert metric(srv, "trilemma_capacity_pods") == 2
        # (a) room: the pool answers, the call is recorded provisioned
        seq = sim.requests_seq()
        tid = await one_turn(srv, "hello there", "a1")
        assert requests(seq) == [("tight", "sim-frontier")], requests(seq)
        calls = calls_of(srv, conversation_of(srv, tid), tid, ["tight"])
        assert calls == [("provisioned", "sim-frontier", "model", "ok", 200)], calls
        check_trace(srv, tid, ["provisioned"], "tight", None)
        # (c) the pool's own limit is spent: 429, then the standard route at once, no retry
        seq = sim.requests_seq()
        tid = await one_turn(srv, "hello again", "c1")
        assert requests(seq) == [("tight", "sim-frontier"), ("", "sim-frontier")], requests(seq)
        calls = calls_of(srv, conversation_of(srv, tid), tid, ["tight", ""])
        assert calls == [("provisioned", "sim-frontier", "model", "error", 429),
                         ("standard", "sim-frontier", "fallback", "ok", 200)], calls
        check_trace(srv, tid, ["provisioned", "standard"], None, ("tight", "rate_limited"))
        assert metric(srv, 'trilemma_capacity_overflow_total{deployment="tight",'
                           'reason="rate_limited"}') == 1
        assert metric(srv, 'trilemma_capacity_overflow_total{deployment="tight",'
                           'reason="full"}') == 0
        assert metric(srv, 'trilemma_capacity_admitted_total{deployment="tight"}') == 2
        assert metric(srv, 'trilemma_capacity_streams_inflight{deployment="tight"}') == 0
        # what the calls used is in the window: the answered call's tokens
        assert metric(srv, 'trilemma_capacity_window_tokens{deployment="tight"}') > 0


@suite.test
async def test_full_share_overflows_to_standard():
    setup()
    sim = STATE["sim"]
    # (b) 10 tokens per minute: no request fits (its max_tokens alone is 80); an absolute URL
    agents = agents_with_capacity("spare", sim.url() + "/ptu/spare/v1", 10, 4)
    with server(agents, "capacity-b") as srv:
        assert metric(srv, 'trilemma_capacity_share_tpm{deployment="spare"}') == 10
        seq = sim.requests_seq()
        tid = await one_turn(srv, "good morning", "b1")
        assert requests(seq) == [("", "sim-frontier")], requests(seq)
        calls = calls_of(srv, conversation_of(srv, tid), tid, [""])
        assert calls == [("standard", "sim-frontier", "model", "ok", 200)], calls
        check_trace(srv, tid, ["standard"], None, ("spare", "full"))
        assert metric(srv, 'trilemma_capacity_overflow_total{deployment="spare",'
                           'reason="full"}') == 1
        assert metric(srv, 'trilemma_capacity_admitted_total{deployment="spare"}') == 0


@suite.test
async def test_cancel_releases_the_reservation():
    """A turn cancelled while its provisioned call waits for the first token frees its stream
    and its reservation: the share is whole again, and the cancelled call used nothing."""
    setup()
    agents = agents_with_capacity("slow", "/ptu/slow/v1", 100000, 1)
    inflight = 'trilemma_capacity_streams_inflight{deployment="slow"}'
    with server(agents, "capacity-cancel") as srv:
        ws = await open_session(srv)
        await send(ws, "hello there", "x1")
        tid = None
        while tid is None:
            tid = (await recv(ws)).get("turn_id")
        wait_until(lambda: metric(srv, inflight) == 1, "the provisioned call in flight")
        await ws.send(json.dumps({"type": "cancel", "turn_id": tid}))
        m = await recv(ws)
        while m["type"] != "turn_end":
            m = await recv(ws)
        assert m["finish_reason"] == "cancelled", m
        await ws.close()
        assert metric(srv, inflight) == 0
        assert metric(srv, 'trilemma_capacity_admitted_total{deployment="slow"}') == 1
        assert metric(srv, 'trilemma_capacity_window_tokens{deployment="slow"}') == 0
        calls = calls_of(srv, conversation_of(srv, tid), tid, ["slow"])
        assert [(c[0], c[3]) for c in calls] == [("provisioned", "cancelled")], calls


@suite.test
async def test_share_follows_the_live_pods():
    """[capacity] pods = 0: the share follows the pods the store's heartbeat counts - a second
    process on the same database halves it, and it comes back once that process is gone."""
    setup()
    agents = agents_with_capacity("spare", "/ptu/spare/v1", 300000, 6)
    share = 'trilemma_capacity_share_tpm{deployment="spare"}'
    streams = 'trilemma_capacity_share_streams{deployment="spare"}'

    def srv_with_beat(name):
        srv = server(agents, name, pods=0)
        srv.config["capacity"]["refresh_ms"] = 200
        return srv
    with srv_with_beat("capacity-pod-1") as one:
        wait_until(lambda: metric(one, share) == 300000 and
                   metric(one, "trilemma_capacity_pods") == 1, "one pod, the whole capacity")
        with srv_with_beat("capacity-pod-2") as two:
            for srv in (one, two):
                wait_until(lambda: metric(srv, "trilemma_capacity_pods") == 2,
                           "two pods counted by %s" % srv.name)
                assert metric(srv, share) == 150000 and metric(srv, streams) == 3, srv.name
        # the second process stopped beating: its row ages out of the first one's count
        wait_until(lambda: metric(one, "trilemma_capacity_pods") == 1, "one pod again")
        assert metric(one, share) == 300000 and metric(one, streams) == 6


def check_config(agents_text):
    """--check-config with an agents file of agents_text; returns (exit code, output, path)."""
    d = tempfile.mkdtemp(prefix="trilemma-capacity-check-")
    path = os.path.join(d, "agents.ini")
    base = open(one_agent("openai/sim-frontier")).read()
    with open(path, "w") as f:
        f.write(base + agents_text)
    ini = os.path.join(d, "t.ini")
    with open(ini, "w") as f:
        f.write("[model]\nmodel = openai/sim-frontier\n[orchestrator]\nagents_file = %s\n"
                "[tools]\ntools_file = %s\n"
                % (path, os.path.join(Args.source, "config", "tools.json")))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TRILEMMA_") and not k.endswith(("_API_KEY", "_BASE_URL"))}
    env["OPENAI_BASE_URL"] = "http://127.0.0.1:9/v1"  # keyless: never contacted
    env["TRILEMMA_CATALOG_URL"] = "http://127.0.0.1:9"
    p = subprocess.run([Args.server, "--config", ini, "--check-config"], cwd=Args.source,
                       env=env, capture_output=True, text=True, timeout=harness.START_TIMEOUT)
    return p.returncode, p.stdout + p.stderr, path, base.count("\n")


GOOD = ("[capacity p]\nmodel = openai/sim-frontier\nbase_url = /ptu/p/v1\ntpm = 1000\n"
        "streams = 2\n")


@suite.test
def test_check_config_refuses_bad_capacity_sections():
    rc, out, _, _ = check_config(GOOD)
    assert rc == 0 and "configuration ok" in out, out
    cases = [
        # (text, line of the error within the text, words of the message)
        (GOOD + "burst = 3\n", 6, "unknown key 'burst' in [capacity p]"),
        (GOOD.replace("tpm = 1000", "tpm = 1k"), 4, "[capacity p] tpm = '1k': expected tokens"),
        (GOOD.replace("streams = 2", "streams = 0"), 5, "expected concurrent streams"),
        (GOOD.replace("openai/", "mistral/"), 2, "expected provider/model"),
        (GOOD.replace("/ptu/p/v1", "ftp://h/v1"), 3, "an http(s):// URL"),
        (GOOD + GOOD, 6, "[capacity p] appears twice"),
        (GOOD + GOOD.replace("[capacity p]", "[capacity q]"), 6,
         "[capacity q] serves openai/sim-frontier, already served by [capacity p]"),
        (GOOD.replace("streams = 2\n", ""), 1, "[capacity p] has no streams"),
    ]
    for text, line, words in cases:
        rc, out, path, base_lines = check_config(text)
        assert rc == 2, (text, rc, out)
        assert "%s:%d: " % (path, base_lines + line) in out and words in out, (text, out)
        assert "configuration ok" not in out, out


if __name__ == "__main__":
    suite.main()
