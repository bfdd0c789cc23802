"""test_trace.py - every turn traceable after the fact (issue 12): a real trilemmad with the
agents plan, trilemma-sim as model provider and commerce API, a private PostgreSQL, and an
OTLP/HTTP receiver written here (a small Python HTTP server).

The main turn has two parallel tool calls of which one fails (a product id the catalog does not
have: read from the catalog of the same run, never assumed) and a cascade escalation (the agent
escalates on a failed tool). Its trace, read back through GET /v1/turns/{id}/trace, must have
every span in order with correct parents and timestamps, the failed tool's error, both agent
model calls with their prompts; the expected flags; personal data redacted; and the OTLP
receiver must get valid OTLP JSON after a 503 with Retry-After. Capture "metadata" stores no
prompt text, "off" no span; sampling keeps flagged turns. traceparent: honoured on the upgrade,
sent on model and tool requests (read from the simulator's request logs).

No sleep stands in for synchronisation; no timing is asserted (times are only compared with
each other: a child inside its parent)."""

import asyncio
import json
import os
import re
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_orchestrator as orch  # noqa: E402 - the simulator, agents files, the cluster
from harness import TIMEOUT, Args, Suite, http_request, wait_until  # noqa: E402

suite = Suite("trace")
ADMIN = "trace-admin-token-0123456789"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
HEX16 = re.compile(r"[0-9a-f]{16}")
HEX32 = re.compile(r"[0-9a-f]{32}")

SIMS, CLUSTERS = [], []


def new_sim(*args):
    s = orch.Sim(*args)
    SIMS.append(s)
    return s


def cluster():
    if not CLUSTERS:
        CLUSTERS.append(orch.Cluster())
    return CLUSTERS[0]


@suite.on_teardown
def stop_all():
    for s in SIMS:
        s.stop()
    for c in CLUSTERS:
        c.stop()


def have_pg():
    if os.access(os.path.join(orch.PG_BIN, "initdb"), os.X_OK):
        return True
    print("  (PostgreSQL binaries not found in %s: this test checks nothing)" % orch.PG_BIN)
    return False


# --------------------------------------------------------------------------------------------
# an OTLP/HTTP receiver


class Receiver:
    """POST /v1/traces: the first `fail_first` requests get 503 with Retry-After: 1, the others
    200. Every request is kept: (status answered, path, content type, body)."""

    def __init__(self, fail_first=1):
        self.requests = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    status = 503 if len(receiver.requests) < fail_first else 200
                    receiver.requests.append((status, self.path,
                                              self.headers.get("Content-Type"), body))
                self.send_response(status)
                if status == 503:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self):
        return "http://127.0.0.1:%d" % self.httpd.server_address[1]

    def accepted_spans(self):
        out = []
        with self.lock:
            reqs = list(self.requests)
        for status, _, _, body in reqs:
            if status == 200:
                try:
                    doc = json.loads(body)
                except ValueError:
                    open("/tmp/i12-otlp-bad.json", "wb").write(body)
                    raise
                for rs in doc["resourceSpans"]:
                    for ss in rs["scopeSpans"]:
                        out.extend(ss["spans"])
        return out

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def check_otlp_value(v):
    keys = set(v)
    assert len(keys) == 1, v
    (k,) = keys
    if k == "stringValue":
        assert isinstance(v[k], str), v
    elif k == "intValue":
        assert isinstance(v[k], str) and re.fullmatch(r"-?\d+", v[k]), v  # int64 as a string
    elif k == "boolValue":
        assert isinstance(v[k], bool), v
    elif k == "arrayValue":
        for x in v[k]["values"]:
            check_otlp_value(x)
    else:
        raise AssertionError("unexpected OTLP value %r" % v)


def check_otlp_body(body):
    """The OTLP/JSON shape (opentelemetry-proto, ExportTraceServiceRequest in JSON)."""
    doc = json.loads(body)
    assert list(doc) == ["resourceSpans"], list(doc)
    for rs in doc["resourceSpans"]:
        attrs = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
        assert attrs["service.name"] == {"stringValue": "trilemma"}, attrs
        for ss in rs["scopeSpans"]:
            assert ss["scope"]["name"] == "trilemma", ss["scope"]
            for sp in ss["spans"]:
                assert HEX32.fullmatch(sp["traceId"]) and HEX16.fullmatch(sp["spanId"]), sp
                if "parentSpanId" in sp:
                    assert HEX16.fullmatch(sp["parentSpanId"]), sp
                assert sp["kind"] in (1, 2, 3), sp
                s, e = int(sp["startTimeUnixNano"]), int(sp["endTimeUnixNano"])
                assert 0 < s <= e, sp
                assert sp["status"]["code"] in (1, 2), sp
                for a in sp["attributes"]:
                    assert isinstance(a["key"], str)
                    check_otlp_value(a["value"])
                for ev in sp["events"]:
                    assert int(ev["timeUnixNano"]) > 0 and ev["name"], ev
                    for a in ev["attributes"]:
                        check_otlp_value(a["value"])


# --------------------------------------------------------------------------------------------
# helpers


def trace_server(s, db, capture="full", extra=None, agents=None, name="trace"):
    cfg = {"trace": {"capture": capture}}
    cfg["trace"].update(extra or {})
    return orch.orch_server(s, agents=agents, name=name, config=cfg,
                            extra_env={"DATABASE_URL": db.url, "TRILEMMA_ADMIN_TOKEN": ADMIN})


def api(srv, path, token=ADMIN):
    headers = {"Authorization": "Bearer " + token} if token else {}
    return http_request(srv.port, "GET", path, headers=headers)


def api_json(srv, path):
    r = api(srv, path)
    assert r.status == 200, (path, r.status, r.body[:500])
    return json.loads(r.body)


def turn_trace(srv, tid):
    """The turn's trace once the turn is in PostgreSQL: turn_end comes once it is durable, which
    may be in the spill journal (a turn that came before the store's first connection), replayed
    moments later."""
    def get():
        r = api(srv, "/v1/turns/%s/trace" % tid)
        assert r.status in (200, 404), (r.status, r.body[:300])
        return json.loads(r.body) if r.status == 200 else None
    return wait_until(get, "turn %s in PostgreSQL" % tid)


async def session(srv, traceparent=None):
    hdrs = {"traceparent": traceparent} if traceparent else None
    ws = await websockets.connect(srv.ws_url(), max_size=None, extra_headers=hdrs)
    first = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert first["type"] == "session", first
    return ws


def some_product_id(s):
    """A product id of the simulator's catalog, from its own search."""
    r = http_request(s.port, "GET", "/catalog/search?q=phone&limit=1")
    assert r.status == 200, r
    doc = json.loads(r.body)
    items = doc.get("results") or doc.get("products") or doc.get("items")
    assert items, doc
    return items[0]["id"]


def missing_product_id(s):
    """A product id (P + 5 digits) the simulator's catalog answers 404 for."""
    for n in range(99999, 90000, -1):
        pid = "P%05d" % n
        if http_request(s.port, "GET", "/catalog/products/" + pid).status == 404:
            return pid
    raise AssertionError("no free product id")


def spans_by_id(tr):
    return {sp["span_id"]: sp for sp in tr["spans"]}


def check_tree(tr):
    """Ordered by start; one root (kind turn, no parent); every other span's parent is in the
    trace and it lies within its parent's time."""
    spans = tr["spans"]
    starts = [sp["start_unix_us"] for sp in spans]
    assert starts == sorted(starts), starts
    roots = [sp for sp in spans if sp["parent_span_id"] is None]
    assert len(roots) == 1 and roots[0]["kind"] == "turn", roots
    assert spans[0] is roots[0], spans[0]
    by = spans_by_id(tr)
    for sp in spans:
        assert HEX16.fullmatch(sp["span_id"]), sp
        assert sp["start_unix_us"] <= sp["end_unix_us"], sp
        if sp["parent_span_id"] is None:
            continue
        p = by[sp["parent_span_id"]]
        assert p["start_unix_us"] <= sp["start_unix_us"], (p["name"], sp["name"])
        assert sp["end_unix_us"] <= p["end_unix_us"], (p["name"], sp["name"])
    return roots[0]


def children(tr, parent, kind=None):
    return [sp for sp in tr["spans"] if sp["parent_span_id"] == parent["span_id"] and
            (kind is None or sp["kind"] == kind)]


# --------------------------------------------------------------------------------------------
# 1. the multi-tool, escalating turn, end to end


@suite.test
async def test_trace_of_a_turn_with_parallel_tools_a_failure_and_an_escalation():
    if not have_pg():
        return
    db = cluster()
    s = new_sim()
    rcv = Receiver(fail_first=1)
    secs = orch.shipped_agents()
    orch.section(secs, "agent search")["escalate_on_tool_failure"] = "yes"
    try:
        extra = {"otlp_endpoint": rcv.url()}
        with trace_server(s, db, "full", extra, agents=orch.write_agents(secs)) as srv:
            ws = await session(srv, "00-%s-%s-01" % (TRACE_ID, PARENT))
            t1 = await orch.turn(ws, "hello there", "m1")
            t1.check_stop()
            # product ids in the message: the agent asks for both at once (no earlier slate, so
            # nothing is preloaded); one of them the catalog does not have
            good, bad = some_product_id(s), missing_product_id(s)
            cseq, rseq = s.catalog_seq(), s.requests_seq()
            text = ("compare %s and %s, mail jane.doe@example.com or call +91 98765 43210"
                    % (good, bad))
            t = await orch.turn(ws, text, "m2")
            assert t.end["finish_reason"] == "stop", t.events
            assert "escalated:tool_failed" in t.flags, t.end
            tid = t.end["turn_id"]
            await ws.close()

            tr = turn_trace(srv, tid)
            assert tr["turn_id"] == tid and tr["trace_id"] == TRACE_ID, tr["trace_id"]
            assert tr["capture"] == "full" and tr["status"] == "ok", tr
            assert tr["query_type"] == t.route["query_type"] == "comparison", tr["query_type"]
            assert tr["agent"] == t.route["agent"], tr["agent"]
            assert sorted(tr["flags"]) == sorted(t.flags), (tr["flags"], t.flags)
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", tr["started_at"]), tr
            root = check_tree(tr)
            assert root["attributes"]["gen_ai.conversation.id"] == tr["conversation_id"], root
            # classification, then two agent steps (the cascade), each with its model call
            kinds = [sp["kind"] for sp in children(tr, root)]
            assert kinds.count("classify") == 1 and kinds.count("agent") == 2, kinds
            cls = children(tr, root, "classify")[0]
            assert cls["attributes"]["trilemma.query_type"] == "comparison", cls
            steps = children(tr, root, "agent")
            models = [children(tr, st, "model") for st in steps]
            assert [len(m) for m in models] == [1, 1], models
            m1, m2 = models[0][0], models[1][0]
            assert m1["attributes"]["gen_ai.request.model"] == "sim-cheap", m1["attributes"]
            assert m2["attributes"]["gen_ai.request.model"] == "sim-frontier", m2["attributes"]
            assert m2["attributes"]["trilemma.role"] == "escalation", m2["attributes"]
            for m in (m1, m2):
                a = m["attributes"]
                assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == \
                    "openai", a
                assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
                assert "gen_ai.usage.cache_read.input_tokens" in a, a
                assert a["trilemma.cost.micros"] >= 0 and a["trilemma.cost.currency"], a
                assert a["gen_ai.agent.name"] == "search" and len(a["trilemma.prompt.version"]) \
                    == 12, a
                assert isinstance(a["gen_ai.response.finish_reasons"], list), a
                # the prompt: system instructions and the user's message, redacted
                sysmsg = json.loads(a["gen_ai.system_instructions"])
                assert sysmsg and sysmsg[0]["type"] == "text" and sysmsg[0]["content"], sysmsg
                inp = json.loads(a["gen_ai.input.messages"])
                users = [p["content"] for msg in inp if msg["role"] == "user"
                         for p in msg["parts"]]
                assert any(good in u and "[email]" in u and "[phone]" in u for u in users), users
                out = json.loads(a["gen_ai.output.messages"])
                assert out[0]["role"] == "assistant", out
            # the first call asked for both products in one response; the second saw the results
            parts1 = json.loads(m1["attributes"]["gen_ai.output.messages"])[0]["parts"]
            asked = [p["name"] for p in parts1 if p["type"] == "tool_call"]
            assert asked == ["get_product", "get_product"], parts1
            inp2 = json.loads(m2["attributes"]["gen_ai.input.messages"])
            assert [m["role"] for m in inp2 if m["role"] == "tool"] == ["tool", "tool"], inp2
            text2 = "".join(p.get("content", "") for p in
                            json.loads(m2["attributes"]["gen_ai.output.messages"])[0]["parts"])
            if "narration_removed" not in t.flags:  # else the guard cut sentences out of it
                assert text2 == t.text, (text2, t.text)
            # the two tools: children of the first step, started together, one failed (404)
            tools = children(tr, steps[0], "tool")
            assert len(tools) == 2, [sp["name"] for sp in tr["spans"]]
            assert {sp["start_unix_us"] for sp in tools} == {tools[0]["start_unix_us"]}, tools
            byid = {list(json.loads(sp["attributes"]["gen_ai.tool.call.arguments"]).values())[0]:
                    sp for sp in tools}
            ok, failed = byid[good], byid[bad]
            assert ok["status"] == "ok" and ok["attributes"]["trilemma.tool.status"] == "ok", ok
            assert ok["attributes"]["gen_ai.tool.name"] == "get_product", ok
            assert good in ok["attributes"]["gen_ai.tool.call.result"], ok["attributes"]
            assert ok["attributes"]["trilemma.tool.result.raw"].startswith("{"), ok["attributes"]
            assert failed["status"] == "error" and failed["status_message"], failed
            assert failed["attributes"]["trilemma.tool.status"] == "error", failed
            assert failed["attributes"]["http.response.status_code"] == 404, failed
            assert "404" in failed["status_message"] or "not" in failed["status_message"], failed
            # what was sent to the model as the failed tool's result is its error
            assert failed["attributes"]["gen_ai.tool.call.result"] == failed["status_message"] \
                or failed["status_message"] in failed["attributes"]["gen_ai.tool.call.result"]
            # the catalog saw both calls, each carrying our trace id and its own span
            prods = [e for e in s.catalog_log(cseq) if e["endpoint"] == "product"]
            assert sorted(e["status"] for e in prods) == [200, 404], prods
            for e in prods:
                tp = e["traceparent"].split("-")
                assert tp[1] == TRACE_ID, e
                sp = ok if e["status"] == 200 else failed
                assert tp[2] == sp["span_id"], (e, sp["span_id"])
            # every model request carried a traceparent naming its own span
            reqs = s.get_json("/v1/_requests?since=%d" % rseq)["requests"]
            model_spans = {sp["span_id"] for sp in tr["spans"] if sp["kind"] == "model"}
            for r in reqs:
                tp = r["traceparent"].split("-")
                assert tp[0] == "00" and tp[1] == TRACE_ID and tp[2] in model_spans, r
            # the escalation and the checks are spans of their own
            guards = {sp["name"]: sp for sp in tr["spans"] if sp["kind"] == "guard"}
            assert guards["cascade"]["attributes"]["trilemma.escalation.reason"] == \
                "tool_failed", guards
            assert "grounding" in guards and "narration" in guards, guards
            # nothing personal reached the trace
            raw = api(srv, "/v1/turns/%s/trace" % tid).body.decode()
            assert "jane.doe@example.com" not in raw and "98765 43210" not in raw
            assert "[email]" in raw

            # the flags endpoint counts it
            fl = api_json(srv, "/v1/flags?kind=escalated")
            assert fl["counts"].get("escalated:tool_failed", 0) >= 1, fl
            assert any(f["turn_id"] == tid and f["kind"] == "escalated:tool_failed"
                       for f in fl["flags"]), fl
            assert all(f["kind"].startswith("escalated") for f in fl["flags"]), fl
            assert fl["by_day"] and fl["by_day"][0]["n"] >= 1, fl
            # and /metrics
            m = http_request(srv.port, "GET", "/metrics").body.decode()
            assert re.search(r'trilemma_turn_flags_total\{kind="escalated"\} [1-9]', m), m

            # OTLP: the receiver answered 503 + Retry-After first; the spans came again
            wait_until(lambda: any(sp["traceId"] == TRACE_ID and sp["spanId"] ==
                                   root["span_id"] for sp in rcv.accepted_spans()),
                       "the collector to accept the turn's spans", timeout=TIMEOUT * 2)
            with rcv.lock:
                reqs = list(rcv.requests)
            assert reqs[0][0] == 503 and reqs[1][0] == 200, [r[0] for r in reqs]
            assert reqs[0][3] == reqs[1][3], "the retry sends the same batch"
            for status, path, ctype, body in reqs:
                assert path == "/v1/traces" and ctype == "application/json", (path, ctype)
                check_otlp_body(body)
            mine = [sp for sp in rcv.accepted_spans() if sp["traceId"] == TRACE_ID]
            ids = {sp["spanId"] for sp in mine}
            assert {sp["span_id"] for sp in tr["spans"]} <= ids, "every stored span exported"
            oroot = [sp for sp in mine if sp["spanId"] == root["span_id"]][0]
            assert oroot["parentSpanId"] == PARENT and oroot["kind"] == 2, oroot
            raw_otlp = b"".join(r[3] for r in reqs)
            assert b"jane.doe@example.com" not in raw_otlp
            m = http_request(srv.port, "GET", "/metrics").body.decode()
            assert re.search(r"trilemma_trace_export_retries_total [1-9]", m), m

            # the conversation's trace has both turns, in order
            conv = api_json(srv, "/v1/conversations/%s/trace" % tr["conversation_id"])
            assert [x["turn_id"] for x in conv["turns"]] == [t1.end["turn_id"], tid], conv
            assert conv["turns"][1]["spans"] == tr["spans"]
    finally:
        rcv.stop()


# --------------------------------------------------------------------------------------------
# 2. capture levels and sampling


@suite.test
async def test_capture_metadata_stores_no_text_and_off_no_spans():
    if not have_pg():
        return
    db = cluster()
    s = new_sim()
    word = "zanzibarquux"
    with trace_server(s, db, "metadata", name="meta") as srv:
        ws = await session(srv)
        t = await orch.turn(ws, "what is the return policy %s" % word, "m1")
        t.check_stop()
        tid = t.end["turn_id"]
        await ws.close()
        tr = turn_trace(srv, tid)
        assert tr["capture"] == "metadata" and HEX32.fullmatch(tr["trace_id"]), tr
        check_tree(tr)
        kinds = {sp["kind"] for sp in tr["spans"]}
        assert {"turn", "classify", "agent", "model", "tool"} <= kinds, kinds
        content = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
                   "gen_ai.tool.call.arguments", "gen_ai.tool.call.result")
        for sp in tr["spans"]:
            assert not [k for k in content if k in sp["attributes"]], sp
        # neither the prompt nor the answer is anywhere in the stored spans
        (n,) = db.psql("SELECT count(*) FROM spans WHERE turn_id = '%s' AND (attributes::text "
                       "LIKE '%%%s%%' OR events::text LIKE '%%%s%%')" % (tid, word, word))[0]
        assert n == "0", n
        (n,) = db.psql("SELECT count(*) FROM spans WHERE turn_id = '%s'" % tid)[0]
        assert int(n) == len(tr["spans"]), n
    with trace_server(s, db, "off", name="off") as srv:
        ws = await session(srv)
        t = await orch.turn(ws, "hello there", "m1")
        t.check_stop()
        await ws.close()
        tr = turn_trace(srv, t.end["turn_id"])
        assert tr["spans"] == [] and tr["trace_id"] is None and tr["capture"] == "off", tr


@suite.test
async def test_sampling_keeps_flagged_turns():
    if not have_pg():
        return
    db = cluster()
    s = new_sim()
    secs = orch.shipped_agents()
    orch.section(secs, "agent general")["cascade"] = "openai/sim-cheap, openai/sim-frontier"
    with trace_server(s, db, "metadata", {"sample_rate": "0"}, agents=orch.write_agents(secs),
                      name="sampled") as srv:
        ws = await session(srv)
        plain = await orch.turn(ws, "[[sim:tokens=4]] hello", "m1")
        plain.check_stop()
        flagged = await orch.turn(ws, "[[sim:tokens=0]] hello", "m2")  # empty: escalates
        assert "escalated:empty" in flagged.flags, flagged.end
        await ws.close()
        assert turn_trace(srv, plain.end["turn_id"])["spans"] == []
        tr = turn_trace(srv, flagged.end["turn_id"])
        assert tr["spans"] and "escalated:empty" in tr["flags"], tr
        m = http_request(srv.port, "GET", "/metrics").body.decode()
        assert re.search(r'trilemma_traces_total\{outcome="sampled_out"\} [1-9]', m), m


@suite.test
async def test_export_queue_is_bounded_drops_and_counts():
    if not have_pg():
        return
    db = cluster()
    s = new_sim()
    rcv = Receiver(fail_first=0)
    try:
        extra = {"otlp_endpoint": rcv.url(), "otlp_queue_spans": "3"}  # less than one turn's
        with trace_server(s, db, "metadata", extra, name="bounded") as srv:
            ws = await session(srv)
            t = await orch.turn(ws, "hello there", "m1")
            t.check_stop()
            await ws.close()
            n = len(turn_trace(srv, t.end["turn_id"])["spans"])
            assert n > 3, n
            m = http_request(srv.port, "GET", "/metrics").body.decode()
            dropped = re.search(r'trilemma_trace_export_spans_total\{outcome="dropped"\} (\d+)', m)
            assert dropped and int(dropped.group(1)) == n, (n, m)
            assert re.search(r"trilemma_trace_export_requests_total 0\b", m), m  # never queued
    finally:
        rcv.stop()


@suite.test
async def test_span_partitions_retention():
    """trilemma_trace_partitions (005_traces.sql) makes today's and the next two days'
    partitions and drops the ones older than the retention, never a recent one."""
    if not have_pg():
        return
    db = cluster()
    s = new_sim()
    with trace_server(s, db, "metadata", name="retention"):
        pass  # migrated
    db.psql("CREATE TABLE spans_20000101 PARTITION OF spans FOR VALUES FROM "
            "('2000-01-01 00:00+00') TO ('2000-01-02 00:00+00')")
    (yday,) = db.psql("SELECT 'spans_' || to_char((now() AT TIME ZONE 'UTC')::date - 1, "
                      "'YYYYMMDD')")[0]
    db.psql("CREATE TABLE IF NOT EXISTS %s PARTITION OF spans FOR VALUES FROM "
            "(((now() AT TIME ZONE 'UTC')::date - 1)::timestamp AT TIME ZONE 'UTC') TO "
            "(((now() AT TIME ZONE 'UTC')::date)::timestamp AT TIME ZONE 'UTC')" % yday)
    db.psql("SELECT trilemma_trace_partitions(now(), 0)")  # 0: keep everything
    assert db.psql("SELECT to_regclass('spans_20000101') IS NOT NULL") == [["t"]]
    db.psql("SELECT trilemma_trace_partitions(now(), 14)")
    assert db.psql("SELECT to_regclass('spans_20000101') IS NULL") == [["t"]]
    assert db.psql("SELECT to_regclass('%s') IS NOT NULL" % yday) == [["t"]]
    for d in range(3):
        (name,) = db.psql("SELECT 'spans_' || to_char((now() AT TIME ZONE 'UTC')::date + %d, "
                          "'YYYYMMDD')" % d)[0]
        assert db.psql("SELECT to_regclass('%s') IS NOT NULL" % name) == [["t"]], name


# --------------------------------------------------------------------------------------------
# 3. the read API's errors


@suite.test
async def test_trace_api_errors():
    if not have_pg():
        return
    db = cluster()
    s = new_sim()
    with trace_server(s, db, "metadata", name="errors") as srv:
        unknown = "0" * 32
        assert api(srv, "/v1/turns/%s/trace" % unknown, token=None).status == 401
        assert api(srv, "/v1/turns/%s/trace" % unknown, token="wrong").status == 401
        r = api(srv, "/v1/turns/%s/trace" % unknown)
        assert r.status == 404 and json.loads(r.body)["error"] == "not_found", r
        assert api(srv, "/v1/conversations/%s/trace" % unknown).status == 404
        assert api(srv, "/v1/turns/XYZ/trace").status == 404
        assert api(srv, "/v1/turns/%s/trace" % unknown.upper()).status == 404
        for q, word in (("from=2025-02-30", "from"), ("to=yesterday", "to"),
                        ("kind=Bad%20Kind", "kind"), ("from=2025-03-02&to=2025-03-01", "after"),
                        ("kind=a&kind=b", "more than once"), ("group_by=day", "unknown")):
            r = api(srv, "/v1/flags?" + q)
            assert r.status == 400 and word in json.loads(r.body)["message"], (q, r.body)
        r = http_request(srv.port, "POST", "/v1/flags", headers={"Authorization": "Bearer " +
                                                                  ADMIN})
        assert r.status == 405, r
        fl = api_json(srv, "/v1/flags?from=2020-01-01&to=2020-01-31")
        assert fl == {"from": "2020-01-01", "to": "2020-01-31", "counts": {}, "by_day": [],
                      "flags": []}, fl


if __name__ == "__main__":
    suite.main()
