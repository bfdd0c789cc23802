"""test_commerce.py - the commerce world of trilemma-sim, checked from the outside.

    python3 test_commerce.py --sim PATH/TO/trilemma-sim [-k SUBSTRING]

The catalog API (GET /catalog/search, /products/{id}, /products/{id}/offers, /policies/{topic},
/orders/{id}): every endpoint, bad input (400/404 JSON errors), per-endpoint latency and faults
from flags and per request, and the request log whose arrival/completion times prove
concurrency. Then the simulated models as agents in all three wire formats: the tool calls a
message leads to, answers grounded in the tool results sent back, the tiers (sim-cheap told to
err always errs detectably, sim-frontier never), the classifier's JSON, and reproducibility
with --seed. The catalog generator is checked to give the same bytes as the checked-in file.

Reuses the plain-socket HTTP/SSE helpers of test_sim.py. No sleeps for synchronisation and no
wall-clock assertions: latencies are checked on the simulator's own recorded timestamps.
Prints "N passed, N failed" and exits 1 on any failure.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import traceback
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_sim as ts  # noqa: E402
from test_sim import FORMATS, Sim, Stream, nonce, post, request  # noqa: E402

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CATEGORIES = ("phones", "laptops", "headphones", "shoes", "clothing")


def get(sim, path, headers=None):
    r = request(sim.port, "GET", path, headers=headers)
    return r.status, json.loads(r.body) if r.body else None


def log_since(sim, seq):
    return get(sim, "/catalog/_log?since=%d" % seq)[1]["requests"]


def last_seq(sim):
    return get(sim, "/catalog/_log?since=999999999")[1]["last"]


def inr(v):
    """₹ with Indian digit grouping, as the agents write prices: 104990 -> ₹1,04,990."""
    s = str(v)
    if len(s) <= 3:
        return "₹" + s
    head, tail = s[:-3], s[-3:]
    groups = []
    while len(head) > 2:
        groups.insert(0, head[-2:])
        head = head[:-2]
    if head:
        groups.insert(0, head)
    return "₹" + ",".join(groups) + "," + tail


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


# ---- the catalog API ---------------------------------------------------------------------


@test
def catalog_has_five_categories_and_5000_products(sim):
    st, idx = get(sim, "/catalog")
    assert st == 200 and idx["products"] >= 5000 and idx["orders"] > 0, idx
    for cat in CATEGORIES:
        st, r = get(sim, "/catalog/search?category=%s&limit=50" % cat)
        assert st == 200 and r["total"] >= 500, (cat, r["total"])
        assert all(p["category"] == cat and p["currency"] == "INR" for p in r["results"])
        assert all(isinstance(p["price"], int) and 0 < p["rating"] <= 5 for p in r["results"])
        st, img = get(sim, "/catalog/products/" + r["results"][0]["id"])
        assert st == 200
        r2 = request(sim.port, "GET", img["image"])
        assert r2.status == 200 and r2.headers["content-type"] == "image/svg+xml"
        assert r2.body.startswith(b"<svg")


@test
def search_filters_and_sorts(sim):
    st, r = get(sim, "/catalog/search?q=samsung+phone&category=phone&min_price=10000"
                     "&max_price=30000&sort=price_asc&limit=7")
    assert st == 200 and 0 < len(r["results"]) <= 7 and r["total"] >= len(r["results"])
    prices = [p["price"] for p in r["results"]]
    assert prices == sorted(prices) and all(10000 <= p <= 30000 for p in prices), prices
    assert all(p["brand"] == "Samsung" and p["category"] == "phones" for p in r["results"])
    st, r = get(sim, "/catalog/search?brand=nike&sort=price_desc&limit=5")
    prices = [p["price"] for p in r["results"]]
    assert prices == sorted(prices, reverse=True) and all(p["brand"] == "Nike"
                                                          for p in r["results"])
    st, r = get(sim, "/catalog/search?category=laptops&sort=rating&limit=10")
    ratings = [p["rating"] for p in r["results"]]
    assert ratings == sorted(ratings, reverse=True)
    # word matching: unknown words are dropped, known ones must all match
    st, r = get(sim, "/catalog/search?q=" + urllib.parse.quote("best running shoes with a big "
                                                               "comfy feel xyzzy") + "&limit=50")
    assert r["total"] > 0 and all("Running" in p["title"] for p in r["results"]), r["results"][:2]
    st, r = get(sim, "/catalog/search?q=xyzzyq")
    assert st == 200 and r["total"] == 0 and r["results"] == []
    st, r = get(sim, "/catalog/search?q=headphones+anc&limit=3")
    assert all(p["category"] == "headphones" for p in r["results"]) and r["results"]


@test
def search_bad_input(sim):
    for q in ("limit=0", "limit=51", "limit=x", "sort=cheapest", "min_price=-1", "max_price=1e3",
              "category=cars", "min_price=500&max_price=100", "q=%ZZ"):
        st, body = get(sim, "/catalog/search?" + q)
        assert st == 400 and body["error"]["code"] == "bad_request", (q, st, body)
        assert body["error"]["message"], body


@test
def product_offers_policy_order(sim):
    st, r = get(sim, "/catalog/search?category=phones&limit=1")
    pid = r["results"][0]["id"]
    st, p = get(sim, "/catalog/products/" + pid)
    assert st == 200 and p["id"] == pid and p["title"] == r["results"][0]["title"]
    assert {"battery_mah", "display", "processor", "ram_gb", "storage_gb"} <= set(p["specs"])
    st, o = get(sim, "/catalog/products/%s/offers?pincode=560001" % pid)
    assert st == 200 and o["product_id"] == pid and o["pincode"] == "560001"
    assert isinstance(o["price"], int) and o["currency"] == "INR" and "in_stock" in o
    assert 1 <= o["delivery"]["days_min"] <= o["delivery"]["days_max"]
    assert get(sim, "/catalog/products/%s/offers?pincode=560001" % pid)[1] == o  # deterministic
    for bad in ("", "?pincode=56001", "?pincode=0560001", "?pincode=056000", "?pincode=abcdef"):
        st, e = get(sim, "/catalog/products/%s/offers%s" % (pid, bad))
        assert st == 400 and "pincode" in e["error"]["message"], (bad, st, e)
    assert get(sim, "/catalog/products/P99999")[0] == 404
    assert get(sim, "/catalog/products/P99999/offers?pincode=560001")[0] == 404
    assert get(sim, "/catalog/products/bad%20id")[0] == 400
    st, pol = get(sim, "/catalog/policies/returns")
    assert st == 200 and pol["topic"] == "returns" and pol["text"]
    assert get(sim, "/catalog/policies/return")[1]["topic"] == "returns"
    st, topics = get(sim, "/catalog/policies")
    assert {"returns", "warranty", "cancellation", "delivery"} <= set(topics["topics"])
    st, e = get(sim, "/catalog/policies/teleportation")
    assert st == 404 and e["error"]["code"] == "not_found"
    st, o = get(sim, "/catalog/orders/1234-5678")
    assert st == 200 and o["id"] == "1234-5678" and o["status"] and o["items"]
    assert get(sim, "/catalog/orders/12345678")[0] == 400
    assert get(sim, "/catalog/orders/0000-0000")[0] == 404
    assert get(sim, "/catalog/nothing-here")[0] == 404
    r = request(sim.port, "POST", "/catalog/search", body={})
    assert r.status == 405 and json.loads(r.body)["error"]["code"] == "method_not_allowed"


@test
def default_latencies_are_in_their_ranges(sim):
    seq = last_seq(sim)
    for _ in range(3):
        get(sim, "/catalog/search?q=phone")
        get(sim, "/catalog/products/P00001")
        get(sim, "/catalog/products/P00001/offers?pincode=110001")
    want = {"search": (80, 250), "product": (20, 60), "offers": (100, 400)}
    entries = log_since(sim, seq)
    assert len(entries) == 9, entries
    for e in entries:
        lo, hi = want[e["endpoint"]]
        assert lo <= e["delay_ms"] <= hi, e
        assert e["end_us"] - e["start_us"] >= e["delay_ms"] * 1000, e  # the server's own clock


@test
def latency_flags_and_parallel_requests_overlap(sim):
    s = Sim("--catalog-search", "ms=300", "--catalog-product", "ms=0-0")
    try:
        get(s, "/catalog/products/P00001")
        results = []

        def one(i):
            results.append(get(s, "/catalog/search?q=phone", headers={"x-request-id": "r%d" % i}))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [st for st, _ in results] == [200] * 3
        entries = log_since(s, 0)
        prod = [e for e in entries if e["endpoint"] == "product"]
        assert prod[0]["delay_ms"] == 0
        srch = sorted((e for e in entries if e["endpoint"] == "search"),
                      key=lambda e: e["request_id"])
        assert [e["request_id"] for e in srch] == ["r0", "r1", "r2"]
        for e in srch:
            assert e["delay_ms"] == 300 and e["end_us"] - e["start_us"] >= 300000, e
        # all three were in flight at once: each started before every other one ended
        for a in srch:
            for b in srch:
                assert a["start_us"] < b["end_us"], (a, b)
    finally:
        s.stop()


@test
def faults_from_flags_and_per_request(sim):
    s = Sim("--catalog-offers", "ms=0,error_rate=1,status=502", "--catalog-order",
            "ms=0,timeout_rate=1")
    try:
        st, e = get(s, "/catalog/products/P00001/offers?pincode=560001")
        assert st == 502 and e["error"]["code"] == "unavailable", (st, e)
        assert get(s, "/catalog/products/P00001")[0] == 200  # other endpoints unaffected
        c = ts.Conn(s.port)
        c.send("GET", "/catalog/orders/1234-5678", headers={"x-request-id": "held"})
        c.close()  # never answered: the log shows the client leaving (status 0)
        held = ts.wait_until(lambda: [e for e in log_since(s, 0) if e["request_id"] == "held"],
                             "the held order request to be logged")
        assert held[0]["status"] == 0 and held[0]["fault"] == "timeout", held
    finally:
        s.stop()
    st, e = get(sim, "/catalog/orders/1234-5678", headers={"x-sim-fault": "status=500"})
    assert st == 500 and e["error"]["code"] == "unavailable"
    st, _ = get(sim, "/catalog/policies/returns?_sim=status%3D429")
    assert st == 429
    seq = last_seq(sim)
    assert get(sim, "/catalog/search?q=shoe&_sim=ms%3D5")[0] == 200
    assert log_since(sim, seq)[0]["delay_ms"] == 5
    c = ts.Conn(sim.port)
    c.send("GET", "/catalog/search?q=x", headers={"x-sim-fault": "timeout",
                                                  "x-request-id": "held2"})
    c.close()
    held = ts.wait_until(lambda: [e for e in log_since(sim, seq) if e["request_id"] == "held2"],
                         "the held search to be logged")
    assert held[0]["status"] == 0


@test
def bad_endpoint_flags_are_refused(sim):
    for flag in ("--catalog-search=ms=9-1", "--catalog-offers=error_rate=2",
                 "--catalog-order=bogus=1", "--catalog-policy=status=200"):
        p = subprocess.run([ts.SIM, "--listen", "127.0.0.1:0", flag], capture_output=True,
                           timeout=ts.TIMEOUT)
        assert p.returncode == 2 and b"bad value" in p.stderr, (flag, p.stderr)
    p = subprocess.run([ts.SIM, "--listen", "127.0.0.1:0", "--catalog", "/nonexistent.jsonl"],
                       capture_output=True, timeout=ts.TIMEOUT)
    assert p.returncode == 2 and b"cannot read" in p.stderr, p.stderr


@test
def catalog_generator_is_reproducible(sim):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "c.jsonl")
        subprocess.run([sys.executable, os.path.join(SRC, "loadtest/sim/catalog/gen_catalog.py"),
                        "--out", out], check=True, timeout=120)
        with open(out, "rb") as f, open(os.path.join(SRC, "loadtest/sim/catalog/catalog.jsonl"),
                                        "rb") as g:
            assert f.read() == g.read(), "catalog.jsonl differs from gen_catalog.py's output"


# ---- the agents ----------------------------------------------------------------------------

SCHEMAS = {
    "search_products": {"type": "object", "properties": {
        "query": {"type": "string"},
        "category": {"type": "string", "enum": list(CATEGORIES)},
        "brand": {"type": "string"}, "min_price": {"type": "integer"},
        "max_price": {"type": "integer"},
        "sort": {"type": "string", "enum": ["relevance", "price_asc", "price_desc", "rating"]},
        "limit": {"type": "integer"}}, "required": ["query"]},
    "get_product": {"type": "object", "properties": {"product_id": {"type": "string"}},
                    "required": ["product_id"]},
    "get_offers": {"type": "object", "properties": {"product_id": {"type": "string"},
                                                    "pincode": {"type": "string"}}},
    "get_policy": {"type": "object", "properties": {"topic": {"type": "string"}}},
    "get_order": {"type": "object", "properties": {"order_id": {"type": "string"}}},
}


def tools(fmt, names=tuple(SCHEMAS)):
    decl = [(n, "the %s tool" % n, SCHEMAS[n]) for n in names]
    if fmt == "openai":
        return [{"type": "function", "function": {"name": n, "description": d, "parameters": s}}
                for n, d, s in decl]
    if fmt == "anthropic":
        return [{"name": n, "description": d, "input_schema": s} for n, d, s in decl]
    return [{"functionDeclarations": [{"name": n, "description": d, "parameters": s}
                                      for n, d, s in decl]}]


class Convo:
    """One user turn in format fmt with the commerce tools, driven like an orchestrator would:
    tool calls are run against the sim's own catalog API and their results sent back."""

    def __init__(self, sim, fmt, text, model=None, names=tuple(SCHEMAS), api=None):
        self.sim, self.fmt, self.api = sim, fmt, api or sim
        self.model = model or {"openai": "gpt-4.1-mini", "anthropic": "claude-sonnet-4-5",
                               "gemini": "gemini-2.5-flash"}[fmt]
        self.tools = tools(fmt, names)
        if fmt == "gemini":
            self.msgs = [{"role": "user", "parts": [{"text": text}]}]
        else:
            self.msgs = [{"role": "user", "content": text}]
        self.results = []  # every tool result (parsed JSON), in order

    def step(self):
        if self.fmt == "openai":
            body = {"model": self.model, "messages": self.msgs, "tools": self.tools,
                    "stream": True}
            return Stream("openai", post(self.sim, "openai", body))
        if self.fmt == "anthropic":
            body = {"model": self.model, "max_tokens": 2048, "messages": self.msgs,
                    "tools": self.tools, "stream": True}
            return Stream("anthropic", post(self.sim, "anthropic", body))
        path = "/v1beta/models/%s:streamGenerateContent?alt=sse" % self.model
        r = request(self.sim.port, "POST", path, {"contents": self.msgs, "tools": self.tools},
                    {"x-goog-api-key": "k"})
        return Stream("gemini", r)

    def calls(self, st):
        out = []
        for c in st.calls.values():
            args = c["args"] if self.fmt == "gemini" else json.loads(c["args"])
            out.append((c["name"], args, c.get("id")))
        return out

    def run_tool(self, name, args):
        if name == "search_products":
            q = dict(args)
            q["q"] = q.pop("query", "")
            path = "/catalog/search?" + urllib.parse.urlencode(q)
        elif name == "get_product":
            path = "/catalog/products/" + args["product_id"]
        elif name == "get_offers":
            path = "/catalog/products/%s/offers?pincode=%s" % (args["product_id"],
                                                                args["pincode"])
        elif name == "get_policy":
            path = "/catalog/policies/" + args["topic"]
        else:
            path = "/catalog/orders/" + args["order_id"]
        st, body = get(self.api, path)
        self.results.append(body)
        return body

    def send_results(self, calls, bodies):
        if self.fmt == "openai":
            self.msgs.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": cid, "type": "function", "function": {"name": n,
                                                              "arguments": json.dumps(a)}}
                for n, a, cid in calls]})
            for (n, a, cid), b in zip(calls, bodies):
                self.msgs.append({"role": "tool", "tool_call_id": cid, "content": json.dumps(b)})
        elif self.fmt == "anthropic":
            self.msgs.append({"role": "assistant", "content": [
                {"type": "tool_use", "id": cid, "name": n, "input": a} for n, a, cid in calls]})
            self.msgs.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": cid, "content": json.dumps(b)}
                for (n, a, cid), b in zip(calls, bodies)]})
        else:
            self.msgs.append({"role": "model", "parts": [
                {"functionCall": {"name": n, "args": a}} for n, a, _ in calls]})
            self.msgs.append({"role": "user", "parts": [
                {"functionResponse": {"name": n, "response": b}}
                for (n, a, _), b in zip(calls, bodies)]})

    def run(self, max_steps=4):
        """Steps until a text answer; returns (answer text, [[calls of each step]])."""
        steps = []
        for _ in range(max_steps):
            st = self.step()
            assert st.resp.status == 200, (st.resp.status, st.resp.body[:300])
            calls = self.calls(st)
            if not calls:
                return st.text, steps
            steps.append(calls)
            self.send_results(calls, [self.run_tool(n, a) for n, a, _ in calls])
        raise AssertionError("no answer after %d steps" % max_steps)


def bold(text):
    return re.findall(r"\*\*(.+?)\*\*", text)


def rupees(text):
    return [int(m.replace(",", "")) for m in re.findall(r"₹([\d,]+)", text)]


def products_of(results):
    out = []
    for r in results:
        if isinstance(r, dict) and "results" in r:
            out += r["results"]
        elif isinstance(r, dict) and "title" in r and "specs" in r:
            out.append(r)
    return out


def mistakes(answer, results, budget=None):
    """The grounding mistakes a checker can see: a bold product title that no result has, a
    price no result has, a comparison without a table."""
    prods = products_of(results)
    titles = {p["title"] for p in prods}
    prices = {p["price"] for p in prods} | {r["price"] for r in results
                                             if isinstance(r, dict) and "pincode" in r}
    found = []
    for t in bold(answer):
        if t not in titles:
            found.append("title " + t)
    for v in rupees(answer):
        if v not in prices and v != budget:
            found.append("price %d" % v)
    return found


@test
def search_call_and_grounded_answer_in_three_formats(sim):
    text = "best phone under 20000 with a big battery"
    answers = {}
    for fmt in FORMATS:
        c = Convo(sim, fmt, text)
        answer, steps = c.run()
        assert len(steps) == 1 and len(steps[0]) == 1, steps
        name, args, _ = steps[0][0]
        assert name == "search_products", name
        assert args["category"] == "phones" and args["max_price"] == 20000, args
        assert "phone" in args["query"] and "battery" in args["query"], args
        top = c.results[0]["results"]
        assert top and all(p["price"] <= 20000 for p in top)
        assert top[0]["title"] in answer and inr(top[0]["price"]) in answer, answer
        assert mistakes(answer, c.results, 20000) == [], answer
        answers[fmt] = answer
    # the same conversation in any format gets the same answer
    assert answers["openai"] == answers["anthropic"] == answers["gemini"]


@test
def comparison_makes_parallel_calls_and_a_table(sim):
    for fmt in FORMATS:
        c = Convo(sim, fmt, "compare P00001 and P00002")
        answer, steps = c.run()
        assert [(n, a) for n, a, _ in steps[0]] == [("get_product", {"product_id": "P00001"}),
                                                      ("get_product", {"product_id": "P00002"})]
        assert re.search(r"^\|---\|---\|---\|$", answer, re.M), answer
        for p in c.results:
            assert p["title"] in answer and inr(p["price"]) in answer
        assert mistakes(answer, c.results) == []
    # "the two cheapest": a search sorted by price, then both products at once
    c = Convo(sim, "openai", "compare the two cheapest laptops")
    answer, steps = c.run()
    assert steps[0][0][0] == "search_products" and steps[0][0][1]["sort"] == "price_asc"
    assert steps[0][0][1]["category"] == "laptops"
    found = c.results[0]["results"][:2]
    assert [(n, a["product_id"]) for n, a, _ in steps[1]] == [("get_product", p["id"])
                                                               for p in found]
    assert "| Price |" in answer and all(p["title"] in answer for p in found)


@test
def a_follow_up_takes_the_earlier_slots(sim):
    c = Convo(sim, "openai", "compare the two cheapest")
    c.msgs[:0] = [{"role": "user", "content": "show me samsung phones under 20000"},
                  {"role": "assistant", "content": "Here are some Samsung phones."}]
    answer, steps = c.run()
    name, args, _ = steps[0][0]
    assert name == "search_products" and args["category"] == "phones", args
    assert args["brand"] == "Samsung" and args["max_price"] == 20000, args
    assert args["sort"] == "price_asc" and args["limit"] == 2, args
    assert [n for n, _, _ in steps[1]] == ["get_product", "get_product"]
    assert "| Price |" in answer


@test
def a_named_tool_choice_is_obeyed(sim):
    body = {"model": "gpt-4.1-mini", "stream": True, "tools": tools("openai"),
            "messages": [{"role": "user", "content": "where is order 1234-5678"}],
            "tool_choice": {"type": "function", "function": {"name": "get_policy"}}}
    st = Stream("openai", post(sim, "openai", body))
    assert [c["name"] for c in st.calls.values()] == ["get_policy"], st.calls


@test
def policy_order_and_offers_calls(sim):
    for fmt in FORMATS:
        c = Convo(sim, fmt, "what is the return policy?")
        answer, steps = c.run()
        assert [(n, a) for n, a, _ in steps[0]] == [("get_policy", {"topic": "returns"})]
        assert c.results[0]["text"] in answer
        c = Convo(sim, fmt, "where is my order 1234-5678")
        answer, steps = c.run()
        assert [(n, a) for n, a, _ in steps[0]] == [("get_order", {"order_id": "1234-5678"})]
        assert c.results[0]["status"] in answer and "1234-5678" in answer
        c = Convo(sim, fmt, "is P00002 in stock at 560001?")
        answer, steps = c.run()
        assert [(n, a) for n, a, _ in steps[0]] == [
            ("get_offers", {"product_id": "P00002", "pincode": "560001"})]
        assert inr(c.results[0]["price"]) in answer and "560001" in answer


@test
def only_offered_tools_are_called(sim):
    c = Convo(sim, "openai", "best phone under 20000 " + nonce(), names=("get_order",))
    answer, steps = c.run()
    assert steps == [] and answer  # no search tool on offer: a plain answer
    c = Convo(sim, "openai", "where is order 1234-5678", names=("get_order",))
    answer, steps = c.run()
    assert [n for n, _, _ in steps[0]] == ["get_order"]
    c = Convo(sim, "anthropic", "hello " + nonce())
    answer, steps = c.run()
    assert steps == [] and answer  # chitchat: no tool


@test
def a_failed_tool_is_answered(sim):
    for fmt in FORMATS:
        c = Convo(sim, fmt, "find shoes under 2000")
        st = c.step()
        calls = c.calls(st)
        c.send_results(calls, [{"error": {"code": "timeout", "message": "the search timed out"}}])
        st = c.step()
        assert not st.calls and "timed out" in st.text, st.text


@test
def tiers_cheap_errs_frontier_never(sim):
    cases = ["best phone under 20000 with a big battery", "compare P00001 and P00002",
             "find nike running shoes", "show me laptops under 60000", "compare P02201 and P02202",
             "tell me about P01201"]
    bad = Sim("--tps", "0", "--cheap-mistake-rate", "1")
    try:
        for i, text in enumerate(cases):
            fmt = FORMATS[i % 3]
            c = Convo(bad, fmt, text, model="sim-cheap", api=sim)
            answer, _ = c.run()
            budget = 20000 if "20000" in text else 60000 if "60000" in text else None
            found = mistakes(answer, c.results, budget)
            no_table = "compare" in text and "|---|" not in answer
            assert found or no_table, (text, answer)
            c = Convo(bad, fmt, text, model="sim-frontier", api=sim)
            answer, _ = c.run()
            assert mistakes(answer, c.results, budget) == [], (text, answer)
            assert "compare" not in text or "|---|" in answer
    finally:
        bad.stop()
    # the directive makes a standard model err on request
    c = Convo(sim, "openai", "compare P00001 and P00002 [[sim:mistake=no_table]]")
    answer, _ = c.run()
    assert "|---|" not in answer and "P00001" not in answer and answer


CLASSIFY = [("best phone under 20000 with a big battery", "product_search"),
            ("what is the battery of P00012", "product_fact"),
            ("compare P00001 and P00002", "comparison"),
            ("what is the return policy", "policy"),
            ("where is order 1234-5678", "order_status"),
            ("hello, thanks!", "chitchat"),
            ("what is the meaning of life", "other")]


def classify(sim, fmt, text, model="sim-classifier", **extra):
    if fmt == "openai":
        body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": False}
        body.update(extra)
        r = post(sim, "openai", body)
        return json.loads(json.loads(r.body)["choices"][0]["message"]["content"])
    if fmt == "anthropic":
        r = post(sim, "anthropic", {"model": model, "max_tokens": 100, "stream": False,
                                    "messages": [{"role": "user", "content": text}]})
        return json.loads(json.loads(r.body)["content"][0]["text"])
    r = request(sim.port, "POST", "/v1beta/models/%s:generateContent" % model,
                {"contents": [{"role": "user", "parts": [{"text": text}]}]})
    return json.loads(json.loads(r.body)["candidates"][0]["content"]["parts"][0]["text"])


@test
def tiers_are_listed_as_models(sim):
    ids = {m["id"] for m in json.loads(request(sim.port, "GET", "/v1/models").body)["data"]}
    assert {"sim-frontier", "sim-cheap", "sim-classifier", "sim-judge"} <= ids, ids


@test
def judge_scores_relevance_and_tonality(sim):
    """sim-judge (docs/sim.md, "The judge"): JSON scores, the same in every format and every
    time; an answer on topic scores higher than one off topic, narration and shouting cost
    tonality; JSON mode and tools on offer do not turn it into a classifier or an agent."""
    q = "What is the battery capacity of the Nova X5?"

    def judge(answer, fmt="openai", **extra):
        text = "QUESTION:\n%s\n\nREFERENCE:\n\n\nANSWER:\n%s" % (q, answer)
        return classify(sim, fmt, text, model="sim-judge", **extra)

    good = judge("The Nova X5 has a 6000 mAh battery capacity.")
    assert set(good) == {"relevance", "tonality", "reason"}, good
    assert good["relevance"] == 5 and good["tonality"] == 5, good
    for fmt in FORMATS:
        assert judge("The Nova X5 has a 6000 mAh battery capacity.", fmt) == good, fmt
    off = judge("We have many shirts in cotton.")
    assert off["relevance"] == 1 and off["relevance"] < good["relevance"], off
    rude = judge("LET ME CHECK THE TOOL!! The Nova X5 battery capacity is 6000 mAh, obviously.")
    assert rude["relevance"] == 5 and rude["tonality"] == 2, rude  # narration, shouting, rude
    assert judge("", "openai")["relevance"] == 1
    assert judge("The Nova X5 battery capacity is 6000 mAh.",
                 response_format={"type": "json_object"}) == good


@test
def classifier_json(sim):
    for i, (text, want) in enumerate(CLASSIFY):
        d = classify(sim, FORMATS[i % 3], text)
        assert set(d) == {"query_type", "confidence", "query"}, d
        assert d["query_type"] == want and 0.5 <= d["confidence"] <= 1, (text, d)
    d = classify(sim, "openai", CLASSIFY[0][0])
    assert d["query"] == "phone battery", d
    # any model asked for JSON (response_format) classifies too
    for rf in ({"type": "json_object"},
               {"type": "json_schema", "json_schema": {"name": "route", "schema": {}}}):
        d = classify(sim, "openai", "where is order 1234-5678", model="gpt-4.1-mini",
                     response_format=rf)
        assert d["query_type"] == "order_status", d
    wrong = Sim("--classifier-error-rate", "1")
    try:
        for text, want in CLASSIFY:
            d = classify(wrong, "openai", text)
            assert d["query_type"] != want and d["confidence"] < 0.7, (text, d)
    finally:
        wrong.stop()


@test
def a_seed_makes_runs_reproducible(sim):
    texts = ["find %s under %d" % (w, b) for w in ("phones", "laptops", "shoes", "headphones")
             for b in (5000, 20000, 60000)]
    runs = []
    for seed in ("7", "7", "8"):
        s = Sim("--tps", "0", "--cheap-mistake-rate", "0.5", "--seed", seed)
        try:
            runs.append([Convo(s, "openai", t, model="sim-cheap", api=sim).run()[0]
                         for t in texts])
        finally:
            s.stop()
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]  # another seed errs on other answers


# ---- the orchestrator's agents: the general agent (no tools) and preloaded results ---------

GENERAL_PROMPT = ("You are the friendly assistant of an online store. Answer briefly. For "
                  "anything about products, prices, orders or policies, ask the customer what "
                  "they are looking for.")


def general(sim, fmt, text, model, history=()):
    """One turn of an agent with a system prompt and no tools, as the orchestrator's general
    agent sends it; returns the streamed text."""
    msgs = list(history) + [{"role": "user", "content": text}]
    if fmt == "openai":
        body = ts.openai_req([{"role": "system", "content": GENERAL_PROMPT}] + msgs, model=model,
                             max_tokens=80)
        return Stream(fmt, post(sim, fmt, body)).text
    if fmt == "anthropic":
        body = ts.anthropic_req(msgs, system=GENERAL_PROMPT, model=model, max_tokens=80)
        return Stream(fmt, post(sim, fmt, body)).text
    body = ts.gemini_req(msgs, system=GENERAL_PROMPT,
                         generationConfig={"maxOutputTokens": 80})
    path = "/v1beta/models/%s:streamGenerateContent?alt=sse" % model
    return Stream(fmt, request(sim.port, "POST", path, body, {"x-goog-api-key": "k"})).text


def old_vocabulary():
    """The words of the simulator's filler answers (sim_answer.c), to tell noise from a reply."""
    src = open(os.path.join(SRC, "loadtest", "sim", "sim_answer.c"), encoding="utf-8").read()
    body = src[src.index("vocab[] = {"):]
    return {w.encode().decode("unicode_escape") if "\\" in w else w
            for w in re.findall(r'"((?:[^"\\]|\\.)*)"', body[:body.index("};")])}


def noise_share(text, vocab):
    ws = text.split()
    return sum(w in vocab or w[:-1] in vocab for w in ws) / max(1, len(ws))


SMALL_TALK = {
    "greeting": ["hi", "Hello!", "hey there", "good morning", "namaste", "hello, anyone there?",
                 "hi!!", "Hey"],
    "thanks": ["thanks!", "thank you so much", "ok thanks", "great, thanks a lot"],
    "identity": ["who are you?", "what are you", "what can you do?", "are you a bot?"],
    "bye": ["bye", "goodbye, see you", "ok bye!"],
    "other": ["what's the meaning of life?", "tell me a joke", "best phone under 20000"],
}


@test
def general_agent_answers_small_talk_like_a_shop_assistant(sim):
    vocab = old_vocabulary()
    for model in ("sim-cheap", "sim-frontier"):
        by_kind = {}
        for kind, texts in SMALL_TALK.items():
            for text in texts:
                a = general(sim, "openai", text, model)
                assert a and len(a.split()) <= 60 and a[-1] in ".!?", (model, text, a)
                assert "₹" not in a and noise_share(a, vocab) < 0.7, (model, text, a)
                # nothing an orchestrator's guards take for a refusal or narration
                assert not re.match(r"(i can'?t|i cannot|sorry|as an ai|let me|i'll)", a, re.I), a
                assert general(sim, "openai", text, model) == a  # deterministic per request
                by_kind.setdefault(kind, set()).add(a)
        # a few templates per kind, picked by the conversation; no reply serves two kinds
        assert len(by_kind["greeting"]) >= 2, by_kind["greeting"]
        kinds = list(by_kind)
        for i, k in enumerate(kinds):
            for k2 in kinds[i + 1:]:
                assert not by_kind[k] & by_kind[k2], (k, k2, by_kind[k] & by_kind[k2])
    # the same conversation in the other formats (system / systemInstruction) gets the same reply
    a = general(sim, "openai", "who are you?", "sim-frontier")
    assert general(sim, "anthropic", "who are you?", "sim-frontier") == a
    assert general(sim, "gemini", "who are you?", "sim-frontier") == a
    hist = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}]
    assert general(sim, "anthropic", "thanks", "sim-cheap", hist) in by_kind["thanks"] | {
        general(sim, "openai", "thanks", "sim-cheap", hist)}
    # other models keep the filler vocabulary, and a directive still shapes the answer
    for model in ("sim-shopper", "gpt-4.1-mini"):
        assert noise_share(general(sim, "openai", "hi", model), vocab) == 1.0
    a = general(sim, "openai", "hi [[sim:tokens=5]]", "sim-cheap")
    assert len(a.split()) == 5 and noise_share(a, vocab) == 1.0, a


# the result fields config/tools.json keeps (the orchestrator shapes results before a model)
KEEP = {"get_product": ("id", "title", "brand", "price", "mrp", "rating", "specs",
                        "warranty_months", "returnable_days"),
        "get_offers": ("product_id", "price", "in_stock", "delivery", "sellers")}
ORCH_TOOLS = ("get_product", "get_offers", "get_policy", "get_order")


def shaped(name, body):
    return {k: body[k] for k in KEEP[name] if k in body}


def preloaded(sim, fmt, text, model, pid, pincode=None, history=None):
    """A follow-up as the orchestrator preloads it: get_product (and get_offers for a pincode)
    already called for product pid, their shaped results in the request. Returns (answer,
    product, offer) with the full API bodies."""
    c = Convo(sim, fmt, text, model=model, names=ORCH_TOOLS)
    history = history or [("user", "show me some options"), ("assistant", "Here are a few.")]
    if fmt == "gemini":
        c.msgs[:0] = [{"role": "model" if r == "assistant" else "user", "parts": [{"text": t}]}
                      for r, t in history]
    else:
        c.msgs[:0] = [{"role": r, "content": t} for r, t in history]
    product = get(sim, "/catalog/products/" + pid)[1]
    calls = [("get_product", {"id": pid}, "call_preload_1")]
    bodies = [shaped("get_product", product)]
    offer = None
    if pincode:
        offer = get(sim, "/catalog/products/%s/offers?pincode=%s" % (pid, pincode))[1]
        calls.append(("get_offers", {"id": pid, "pincode": pincode}, "call_preload_offers"))
        bodies.append(shaped("get_offers", offer))
    c.send_results(calls, bodies)
    st = c.step()
    assert st.resp.status == 200 and not st.calls, (st.resp.status, st.calls)
    return st.text, product, offer


def delivery_facts(answer):
    """(days_min, days_max) as the answer states them, or None."""
    m = re.search(r"(\d+)\s*(?:–|-|to)\s*(\d+)\s*(?:business\s+)?days?", answer)
    return (int(m.group(1)), int(m.group(2))) if m else None


def cod_sentence(answer):
    for s in re.split(r"(?<=[.;])\s+", answer):
        if "cash on delivery" in s.lower():
            return s.lower()
    return None


def delivery_cases(sim):
    st, r = get(sim, "/catalog/search?category=phones&limit=4")
    ids = [p["id"] for p in r["results"]]
    st, r = get(sim, "/catalog/search?max_price=450&limit=2")  # under ₹499: a delivery fee
    ids += [p["id"] for p in r["results"]]
    return [(pid, pin) for pid in ids for pin in ("560001", "799001")]


@test
def a_delivery_question_answers_from_the_preloaded_offer(sim):
    questions = ["can it be delivered to %s?", "is it in stock at %s", "how fast can it reach "
                 "%s?", "is COD available for pincode %s?"]
    seen_fee = False
    for i, (pid, pin) in enumerate(delivery_cases(sim)):
        fmt = FORMATS[i % 3] if i < 3 else "openai"
        answer, product, offer = preloaded(sim, fmt, questions[i % 4] % pin, "sim-frontier",
                                           pid, pin)
        d = offer["delivery"]
        assert product["title"] in bold(answer) and pin in answer, answer
        if offer["in_stock"]:
            assert "in stock" in answer and "out of stock" not in answer, answer
            assert delivery_facts(answer) == (d["days_min"], d["days_max"]), (d, answer)
        else:
            assert "out of stock" in answer and "in stock" not in answer, answer
            continue  # no delivery to promise
        if d["fee"] == 0:
            assert "free delivery" in answer.lower(), answer
        else:
            seen_fee = True
            assert inr(d["fee"]) in answer and "free delivery" not in answer.lower(), answer
        cod = cod_sentence(answer)
        assert cod and ("not" in cod) == (not d["cod_available"]), (d, answer)
        # the answer is the offer, not the product's spec sheet
        specs = [str(v) for v in product["specs"].values() if isinstance(v, (int, str))]
        assert not any(" %s " % v in " %s " % answer.replace(",", " ") for v in specs
                       if len(v) > 2 and v not in answer.split("**")[1]), (specs, answer)
        assert mistakes(answer, [product, offer]) == [] or inr(d["fee"]) in answer, answer
    assert seen_fee, "no case with a delivery fee"
    # the cheap tier told to err misstates something a checker sees: title, days, fee or price
    bad = Sim("--tps", "0", "--cheap-mistake-rate", "1")
    try:
        for pid, pin in delivery_cases(sim)[:6]:
            answer, product, offer = preloaded(bad, "openai", "can it be delivered to %s?" % pin,
                                               "sim-cheap", pid, pin)
            d = offer["delivery"]
            wrong_title = product["title"] not in bold(answer)
            wrong_days = offer["in_stock"] and delivery_facts(answer) != (d["days_min"],
                                                                        d["days_max"])
            wrong_money = any(v not in (offer["price"], d["fee"]) for v in rupees(answer))
            assert wrong_title or wrong_days or wrong_money, (offer, answer)
    finally:
        bad.stop()


def find_product(sim, category, pred, limit=50):
    st, r = get(sim, "/catalog/search?category=%s&limit=%d" % (category, limit))
    for p in r["results"]:
        full = get(sim, "/catalog/products/" + p["id"])[1]
        if pred(full):
            return full
    raise AssertionError("no %s product matches" % category)


@test
def product_facts_answer_the_spec_asked(sim):
    g5 = find_product(sim, "phones", lambda p: p["specs"]["network"] == "5G")
    g4 = find_product(sim, "phones", lambda p: p["specs"]["network"] != "5G")

    def ask(text, p, fmt="openai"):
        return preloaded(sim, fmt, text, "sim-frontier", p["id"])[0]

    a = ask("what is the battery of the second one?", g5)
    assert "%d mAh" % g5["specs"]["battery_mah"] in a and g5["title"] in bold(a), a
    for fmt in FORMATS:
        a = ask("does it have 5G?", g5, fmt)
        assert a.startswith("Yes") and "5G" in a and g5["title"] in bold(a), a
    a = ask("does it have 5G?", g4)
    assert a.startswith("No") and g4["specs"]["network"] in a, a
    # warranty: a top-level field of the product, not a spec
    for months in (12, 0):
        p = find_product(sim, "phones", lambda p: p["warranty_months"] == months)
        a = ask("what is the warranty?", p)
        assert p["title"] in bold(a), a
        if months:
            assert "%d months" % months in a, a
        else:
            assert re.search(r"\bno\b[^.]*warranty", a, re.I), a
    # waterproof: headphones state a water resistance rating, phones do not
    for rating in ("IPX4", "None"):
        p = find_product(sim, "headphones", lambda p: p["specs"]["water_resistance"] == rating)
        a = ask("is it waterproof?", p)
        assert p["title"] in bold(a), a
        if rating == "None":
            assert a.startswith("No"), a
        else:
            assert rating in a and not a.startswith("No"), a
    a = ask("is it waterproof?", g5)
    assert re.search(r"\bnot (stated|mentioned|listed)\b", a), a
    assert not a.startswith(("Yes", "No")), a
    # asked directly, the agent calls get_product and answers the same way
    c = Convo(sim, "openai", "does %s have 5G?" % g4["id"], model="sim-frontier")
    a, steps = c.run()
    assert [n for n, _, _ in steps[0]] == ["get_product"] and a.startswith("No"), (steps, a)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sim", required=True)
    ap.add_argument("-k", default="")
    args = ap.parse_args()
    ts.SIM = args.sim
    passed = failed = 0
    sim = Sim("--tps", "0")
    try:
        for fn in TESTS:
            if args.k not in fn.__name__:
                continue
            try:
                fn(sim)
                passed += 1
                print("ok   " + fn.__name__)
            except Exception:
                failed += 1
                print("FAIL " + fn.__name__)
                traceback.print_exc(file=sys.stdout)
    finally:
        try:
            sim.stop()
        except Exception:
            failed += 1
            print("FAIL stop")
            traceback.print_exc(file=sys.stdout)
    if failed:
        print("--- sim stderr ---\n" + "".join(sim.lines))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
