"""test_admin_api.py - the debugging dashboard's endpoints (store/api_admin.c, docs/admin.md)
end to end: a real trilemmad with the shipped agents, trilemma-sim as model provider and commerce
API, and a private PostgreSQL (tests/store/pg_cluster.sh).

  - GET /v1/turns: every filter (conversation, user, time range, query type, flag, model,
    minimum cost) against what psql finds for the same turns; newest first; limit and `more`
  - each bad parameter gets 400 and a message naming it; hostile text stays a parameter
  - POST /v1/golden: a multi-tool turn becomes a candidate case whose query, history, expected
    query type and tools, tool fixtures (results from the trace's tool spans) and reference
    answer are the stored turn's; 409 the second
    time, 404 for an unknown turn, 400 / 415 / 413 for bad bodies, and nothing written by any of
    them
  - the admin token (401), methods (405)

Nothing depends on the catalog's data or the simulator's wording: expected values are read from
PostgreSQL and from the turns' own events. No sleeps; exit 77 without PostgreSQL's binaries.
"""

import asyncio
import datetime
import json
import os
import re
import sys
import tempfile
import urllib.parse

import websockets

from harness import TIMEOUT, Args, Server, Suite, http_request, make_jwt
from test_orchestrator import PG_BIN, Cluster, Sim  # noqa: F401 (test_budget takes them from here)

suite = Suite("admin_api")

ADMIN = "admin-token-for-the-dashboard-tests"
JWT_SECRET = "jwt-secret-for-the-dashboard-tests-0123456789"
HEX32 = re.compile(r"^[0-9a-f]{32}$")


STATE = {}


def setup():
    """The cluster, the simulator, the server, and a few turns (once, for every test)."""
    if STATE:
        return STATE
    db = Cluster()
    STATE["db"] = db
    s = Sim("--catalog-policy", "error_rate=1,status=503")
    STATE["sim"] = s
    u = s.url()
    agents_dir = tempfile.mkdtemp(prefix="trilemma-admin-agents-")
    agents = os.path.join(agents_dir, "agents.ini")
    with open(os.path.join(Args.source, "config", "agents.ini")) as f:
        text = f.read()
    prompts = os.path.join(Args.source, "config") + "/"
    text = re.sub(r"^(prompt\s*=\s*)", r"\1" + prompts, text, flags=re.M)
    # a failed tool escalates: a flagged turn to search for
    text = text.replace("[agent specialist]", "[agent specialist]\nescalate_on_tool_failure = yes")
    with open(agents, "w") as f:
        f.write(text)
    env = {"OPENAI_BASE_URL": u + "/v1", "ANTHROPIC_BASE_URL": u, "GEMINI_BASE_URL": u,
           "TRILEMMA_CATALOG_URL": u, "TRILEMMA_MODEL": "openai/sim-frontier",
           "DATABASE_URL": db.url, "TRILEMMA_ADMIN_TOKEN": ADMIN,
           "TRILEMMA_JWT_SECRET": JWT_SECRET}
    cfg = {"model": {"model": "openai/sim-frontier", "retry_base_ms": 10, "max_retries": 0},
           "trace": {"capture": "full"},
           "orchestrator": {"agents_file": agents},
           "tools": {"tools_file": os.path.join(Args.source, "config", "tools.json")}}
    srv = Server(config=cfg, env=env, workers=1, name="admin").start()
    STATE["srv"] = srv
    asyncio.run(make_turns(srv))
    return STATE


@suite.on_teardown
def teardown():
    if "srv" in STATE:
        STATE["srv"].stop()
    if "sim" in STATE:
        STATE["sim"].stop()
    if "db" in STATE:
        STATE["db"].stop()


async def chat(srv, texts, user=None):
    """One conversation: each text a turn; returns the turn_end events."""
    url = srv.ws_url()
    if user:
        exp = int(datetime.datetime.now().timestamp()) + 3600
        url += "?token=" + make_jwt({"sub": user, "exp": exp}, JWT_SECRET)
    ends = []
    async with websockets.connect(url, max_size=None) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert first["type"] == "session", first
        for i, text in enumerate(texts):
            await ws.send(json.dumps({"type": "user_message", "id": "m%d" % i, "text": text}))
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                if m["type"] == "turn_end":
                    assert m["finish_reason"] == "stop", m
                    ends.append(m)
                    break
    return ends


async def make_turns(srv):
    STATE["alice"] = await chat(srv, ["best phone under 20000 with a big battery",
                                      "compare the two cheapest"], user="alice")
    STATE["anon"] = await chat(srv, ["what is the return policy"], user="bob")
    # every turn is stored once its turn_end is out: wait for the rows (the store's group commit)
    from harness import wait_until
    ids = [e["turn_id"] for e in STATE["alice"] + STATE["anon"]]
    wait_until(lambda: STATE["db"].psql(
        "SELECT count(*) FROM turns WHERE id IN (%s)" % ",".join("'%s'" % i for i in ids))
        == [[str(len(ids))]], "the turns to be stored")


def api(path, method="GET", token=ADMIN, body=None, ctype="application/json"):
    headers = {"Authorization": "Bearer " + token} if token is not None else {}
    if body is not None:
        headers["Content-Type"] = ctype
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        body = body.encode() if isinstance(body, str) else body
    return http_request(STATE["srv"].port, method, path, headers=headers, body=body or b"")


def search(**params):
    r = api("/v1/turns?" + urllib.parse.urlencode(params))
    assert r.status == 200, (params, r.status, r.body[:300])
    return r.json()


def turn_ids(res):
    return [t["turn_id"] for t in res["turns"]]


def db():
    return STATE["db"]


def skip_without_pg():
    if not os.access(os.path.join(PG_BIN, "initdb"), os.X_OK):
        print("skipped: PostgreSQL binaries not found in %s" % PG_BIN)
        sys.exit(77)


# --------------------------------------------------------------------------------------------
# search


@suite.test
def test_search_lists_turns_newest_first_with_what_psql_finds():
    setup()
    want = db().psql("SELECT t.id, t.conversation_id, c.user_sub, t.query_type, t.agent, "
                     "t.cost_micros, t.currency, coalesce(t.first_token_ms::text, 'null'), "
                     "array_to_string(t.flags, ',') "
                     "FROM turns t JOIN conversations c ON c.id = t.conversation_id "
                     "ORDER BY t.started_at DESC, t.id DESC")
    res = search()
    assert res["more"] is False and res["limit"] == 50, res
    assert len(res["turns"]) == len(want) == 3, (res, want)
    for got, (tid, cid, user, qt, agent, cost, cur, ttft, flags) in zip(res["turns"], want):
        assert got["turn_id"] == tid and got["conversation_id"] == cid, (got, tid)
        assert got["user"] == (user or None), got
        assert (got["query_type"], got["agent"]) == (qt or None, agent or None), got
        assert got["cost_micros"] == int(cost) and got["currency"] == cur, got
        assert str(got["ttft_ms"]).lower() == ttft, got
        assert sorted(got["flags"]) == sorted(f for f in flags.split(",") if f), got
        assert got["status"] == "ok" and got["finish_reason"] == "stop", got
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", got["started_at"]), got
        assert got["model"], got
    # the user's text is in each hit (what an operator recognises a turn by)
    last = res["turns"][0]
    assert last["query"] == "what is the return policy", last


@suite.test
def test_each_filter_selects_what_it_names():
    setup()
    alice = [e["turn_id"] for e in STATE["alice"]]
    anon = [e["turn_id"] for e in STATE["anon"]]
    cid = STATE["alice"][0]["conversation_id"] if "conversation_id" in STATE["alice"][0] else \
        db().psql("SELECT conversation_id FROM turns WHERE id = '%s'" % alice[0])[0][0]
    assert set(turn_ids(search(conversation_id=cid))) == set(alice)
    assert set(turn_ids(search(user="alice"))) == set(alice)
    assert turn_ids(search(user="nobody")) == []
    # query type and flag, as stored
    (qt,), = db().psql("SELECT query_type FROM turns WHERE id = '%s'" % alice[1])
    want = {i for (i,) in db().psql("SELECT id FROM turns WHERE query_type = '%s'" % qt)}
    assert set(turn_ids(search(query_type=qt))) == want and alice[1] in want
    flagged = db().psql("SELECT id, flags[1] FROM turns WHERE cardinality(flags) > 0")
    assert flagged and flagged[0][0] in anon, flagged
    assert turn_ids(search(flag=flagged[0][1])) == [flagged[0][0]]
    assert turn_ids(search(flag="no_such_flag")) == []
    # model: by name or provider/name, any call of the turn
    prov, model = db().psql("SELECT provider, model FROM llm_calls WHERE turn_id = '%s' "
                            "AND role = 'escalation'" % anon[0])[0]
    assert anon[0] in turn_ids(search(model=model))
    assert anon[0] in turn_ids(search(model=prov + "/" + model))
    with_model = {i for (i,) in db().psql("SELECT DISTINCT turn_id FROM llm_calls "
                                          "WHERE model = '%s'" % model)}
    assert set(turn_ids(search(model=model))) == with_model
    # minimum cost: exactly the turns at or above it
    costs = sorted(int(c) for (c,) in db().psql("SELECT cost_micros FROM turns"))
    mid = costs[1]
    want = {i for (i,) in db().psql("SELECT id FROM turns WHERE cost_micros >= %d" % mid)}
    assert set(turn_ids(search(min_cost_micros=mid))) == want
    # time range: from the newest turn's start (RFC 3339), and dates
    newest = search(limit=1)
    start = newest["turns"][0]["started_at"]
    assert newest["more"] is True and len(newest["turns"]) == 1
    assert turn_ids(search(**{"from": start})) == [newest["turns"][0]["turn_id"]]
    assert newest["turns"][0]["turn_id"] not in turn_ids(search(to=start))
    today = datetime.datetime.now(datetime.timezone.utc).date()
    assert len(turn_ids(search(**{"from": today.isoformat(), "to": today.isoformat()}))) == 3
    assert turn_ids(search(to=(today - datetime.timedelta(days=1)).isoformat())) == []
    assert len(search(**{"from": "2026-01-01T00:00:00+05:30"})["turns"]) == 3
    # filters combine (AND); empty fields are no filter
    assert turn_ids(search(user="alice", flag=flagged[0][1])) == []
    assert len(search(user="", flag="", model="")["turns"]) == 3


@suite.test
def test_bad_search_parameters_get_400_naming_them():
    setup()
    cases = [
        ("bogus=1", "unknown parameter 'bogus'"),
        ("conversation_id=xyz", "'conversation_id'"),
        ("conversation_id=" + "A" * 32, "'conversation_id'"),
        ("from=yesterday", "'from'"),
        ("from=2026-02-30", "'from'"),
        ("to=2026-01-01T25:00:00Z", "'to'"),
        ("to=2026-01-01T10:00:00", "'to'"),
        ("from=2026-03-02&to=2026-03-01", "'from' is after 'to'"),
        ("limit=0", "'limit'"),
        ("limit=501", "'limit'"),
        ("limit=ten", "'limit'"),
        ("limit=", "'limit'"),
        ("min_cost_micros=-5", "'min_cost_micros'"),
        ("min_cost_micros=1e3", "'min_cost_micros'"),
        ("flag=x'%20OR%20'1'='1", "'flag'"),
        ("query_type=Product", "'query_type'"),
        ("user=a&user=b", "more than once"),
        ("user=%zz", "'user'"),
        ("user=%FF%FE", "'user'"),  # not UTF-8: PostgreSQL would refuse it (a 500 before)
        ("model=gpt%C3", "'model'"),
        ("model=" + "m" * 600, "'model'"),
    ]
    for query, needle in cases:
        r = api("/v1/turns?" + query)
        assert r.status == 400, (query, r.status, r.body[:200])
        e = r.json()
        assert e["error"] == "bad_request" and needle in e["message"], (query, e)
    # hostile text where any text is allowed is a value, not SQL: nothing matches, nothing breaks
    for v in ["' OR '1'='1", "alice'; DROP TABLE turns; --", "\\", "%"]:
        assert turn_ids(search(user=v)) == [] and turn_ids(search(model=v)) == []
    assert db().psql("SELECT count(*) FROM turns") == [["3"]]


@suite.test
def test_token_and_methods():
    setup()
    for path, method in [("/v1/turns", "GET"), ("/v1/golden", "POST")]:
        r = api(path, method=method, token=None, body="{}" if method == "POST" else None)
        assert r.status == 401 and "Bearer" in (r.header("WWW-Authenticate") or ""), r
        r = api(path, method=method, token=ADMIN + "x", body="{}" if method == "POST" else None)
        assert r.status == 401 and r.json()["error"] == "unauthorized", r
    r = api("/v1/turns", method="POST", body="{}")
    assert r.status == 405 and r.header("Allow") == "GET, HEAD", r
    r = api("/v1/golden")
    assert r.status == 405 and r.header("Allow") == "POST", r
    # the API's other paths still take no body
    r = api("/v1/costs", method="POST", body="{}")
    assert r.status == 405, r


@suite.test
def test_metrics_count_first_token_by_type_and_tools_as_stored():
    """/metrics (read by the Grafana dashboard and the alerts) agrees with PostgreSQL."""
    setup()
    text = http_request(STATE["srv"].port, "GET", "/metrics").body.decode()

    def total(name, **labels):
        n = 0
        for line in text.splitlines():
            m = re.match(r"^%s\{([^}]*)\} (\d+)$" % re.escape(name), line)
            if m and all('%s="%s"' % kv in m.group(1) for kv in labels.items()):
                n += int(m.group(2))
        return n
    assert "# TYPE trilemma_turn_first_token_by_type_seconds histogram" in text
    for qt, n in db().psql("SELECT query_type, count(*) FROM turns "
                           "WHERE first_token_ms IS NOT NULL GROUP BY 1"):
        assert total("trilemma_turn_first_token_by_type_seconds_count",
                     query_type=qt or "none") == int(n), (qt, n)
        assert total("trilemma_turn_first_token_by_type_seconds_bucket",
                     query_type=qt or "none", le="+Inf") == int(n)
    rows = db().psql("SELECT name, status, count(*) FROM tool_calls GROUP BY 1, 2")
    assert rows
    for name, status, n in rows:
        assert total("trilemma_tool_calls_total", tool=name, status=status) == int(n), (name, rows)
    assert sum(int(n) for _, _, n in rows) == total("trilemma_tool_calls_total")


# --------------------------------------------------------------------------------------------
# the golden set


def golden_case(tid):
    """case_json of the turn's case (a whole line: the JSON may hold psql's separator)."""
    rows = db().psql("SELECT case_json FROM golden_cases WHERE source_turn_id = '%s'" % tid)
    return json.loads("|".join(rows[0]))


def golden_count():
    return int(db().psql("SELECT count(*) FROM golden_cases")[0][0])


@suite.test
def test_add_to_golden_set_writes_the_turn_as_a_case():
    setup()
    tid = STATE["alice"][1]["turn_id"]  # "compare the two cheapest": tools, and history
    r = api("/v1/golden", method="POST", body={"turn_id": tid, "note": "a good comparison"})
    assert r.status == 201, (r.status, r.body)
    got = r.json()
    assert got["status"] == "candidate" and isinstance(got["id"], int), got
    (cid, status, note, by), = db().psql(
        "SELECT id, status, note, added_by FROM golden_cases WHERE source_turn_id = '%s'" % tid)
    assert (int(cid), status, note, by) == (got["id"], "candidate", "a good comparison",
                                            "dashboard")
    case = golden_case(tid)
    # the case is the stored turn: its question, its answer, its route, its tools
    (conv, qt, agent), = db().psql("SELECT conversation_id, query_type, agent FROM turns "
                                   "WHERE id = '%s'" % tid)
    msgs = [(r[0], r[1], "|".join(r[2:])) for r in db().psql(
        "SELECT turn_id, role, replace(content, E'\\n', '\\n') FROM messages "
        "WHERE conversation_id = '%s' ORDER BY created_at, ordinal" % conv)]
    assert case["query"] == "compare the two cheapest", case
    assert case["reference_answer"].replace("\n", "\\n") == \
        [m[2] for m in msgs if m[0] == tid and m[1] == "assistant"][0]
    assert [(h["role"], h["content"].replace("\n", "\\n")) for h in case["history"]] == \
        [(m[1], m[2]) for m in msgs if m[0] != tid], case["history"]
    assert case["history"][0] == {"role": "user",
                                  "content": "best phone under 20000 with a big battery"}
    assert (case["expected_query_type"], case["expected_agent"]) == (qt, agent), case
    tools = db().psql("SELECT name, arguments::text, status FROM tool_calls "
                      "WHERE turn_id = '%s' ORDER BY ordinal" % tid)
    assert tools, "the comparison turn called no tool"
    assert [t["name"] for t in case["fixtures"]["tools"]] == [t[0] for t in tools]
    assert [t["arguments"] for t in case["fixtures"]["tools"]] == \
        [json.loads(t[1]) for t in tools]
    assert case["expected_tools"] == list(dict.fromkeys(t[0] for t in tools)), case
    # each tool's result as the model received it, from the trace (capture = full)
    spans = json.loads("|".join(db().psql(
        "SELECT json_agg(attributes->>'gen_ai.tool.call.result') FROM spans "
        "WHERE turn_id = '%s' AND kind = 'tool'" % tid)[0]))
    assert len(spans) == len(tools), spans
    results = [f["result"] for f in case["fixtures"]["tools"]]
    assert all(r for r in results), case["fixtures"]
    assert sorted(results) == sorted(spans), (results, spans)
    assert case["source"] == "production" and case["source_turn_id"] == tid
    assert case["id"] == "prod-" + tid
    # the same turn again: 409, still one case
    r = api("/v1/golden", method="POST", body={"turn_id": tid})
    assert r.status == 409 and r.json()["error"] == "conflict", r
    assert str(got["id"]) in r.json()["message"], r.json()
    assert golden_count() == 1
    # a note is optional, added_by can be said
    tid2 = STATE["anon"][0]["turn_id"]
    r = api("/v1/golden", method="POST", body={"turn_id": tid2, "note": None, "added_by": "sre"})
    assert r.status == 201, r
    assert db().psql("SELECT coalesce(note, 'NULL'), added_by FROM golden_cases "
                     "WHERE source_turn_id = '%s'" % tid2) == [["NULL", "sre"]]
    assert golden_case(tid2)["history"] == []


@suite.test
def test_bad_golden_requests_write_nothing():
    setup()
    before = golden_count()
    r = api("/v1/golden", method="POST", body={"turn_id": "0" * 32})
    assert r.status == 404 and r.json()["error"] == "not_found", r
    tid = STATE["anon"][0]["turn_id"]
    bad = [
        ("not json", "JSON object"),
        ("[1, 2]", "JSON object"),
        ("{}", "'turn_id'"),
        ({"turn_id": 5}, "'turn_id'"),
        ({"turn_id": tid.upper()}, "'turn_id'"),
        ({"turn_id": tid[:-1]}, "'turn_id'"),
        ({"turn_id": tid, "note": 5}, "'note'"),
        ({"turn_id": tid, "note": "x" * 2001}, "'note'"),
        ({"turn_id": tid, "added_by": ""}, "'added_by'"),
        ({"turn_id": tid, "extra": 1}, "unknown member"),
        ('{"turn_id": "%s"} trailing' % tid, "JSON object"),
    ]
    for body, needle in bad:
        r = api("/v1/golden", method="POST", body=body)
        assert r.status == 400, (body, r.status, r.body)
        assert needle in r.json()["message"], (body, r.json())
    r = api("/v1/golden", method="POST", body={"turn_id": tid}, ctype="text/plain")
    assert r.status == 415 and r.json()["error"] == "unsupported_media_type", r
    r = api("/v1/golden", method="POST", body={"turn_id": tid, "note": "x" * 20000})
    assert r.status == 413, r
    assert golden_count() == before


if __name__ == "__main__":
    skip_without_pg()
    sys.exit(suite.main())
