"""runner.py - one golden set through a running trilemmad over WebSocket (the real path), then
each case scored.

Per case: a fresh WebSocket session; the earlier turns (history) are sent first, each waited for
until its turn_end; then the query. The last turn's events give the route (query type), the
`products` slate, the answer, the finish reason, latency and cost. With the admin token the read
API (/v1/conversations/{id}) gives the tools the turn called and their arguments; those calls are
replayed against the commerce API (the tools file says how: GET path template + query string)
to get the tool data every stated price and spec is checked against. A judge model (an
OpenAI-compatible route, like any other model) scores response relevance and tonality with the
pinned rubric.
"""

import asyncio
import hashlib
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal

import websockets

import scorers as S

K = 5  # precision@k and NDCG@k: the slate a shopper sees (tools.json keeps top 5)


# ---------------------------------------------------------------------------------------------
# HTTP helpers (blocking; run in a thread from the event loop)


def http_json(url, token=None, body=None, timeout=30):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 method="GET" if body is None else "POST")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode())


class Catalog:
    """The commerce API, for evidence: GETs cached by path (the catalog is read-only)."""

    def __init__(self, base, tools_file):
        self.base = base.rstrip("/")
        self.cache = {}
        self.tools = {}
        with open(tools_file, encoding="utf-8") as f:
            for t in json.load(f)["tools"]:
                self.tools[t["name"]] = t

    def get(self, path):
        if path not in self.cache:
            try:
                self.cache[path] = http_json(self.base + path)
            except (urllib.error.URLError, ValueError, OSError) as e:
                self.cache[path] = {"error": str(e)}
        return self.cache[path]

    def replay(self, name, args):
        """The HTTP request the server made for tool call (name, args), per the tools file."""
        t = self.tools.get(name)
        if not t or t.get("http", {}).get("method", "GET") != "GET":
            return None
        path, rest = t["http"]["path"], dict(args)
        for k in re.findall(r"\{(\w+)\}", path):
            path = path.replace("{%s}" % k, urllib.parse.quote(str(rest.pop(k, "")), safe=""))
        q = [(k, str(rest[k])) for k in t["parameters"].get("properties", {}) if k in rest]
        return self.get(path + ("?" + urllib.parse.urlencode(q) if q else ""))


# ---------------------------------------------------------------------------------------------
# the judge


def load_rubric(path):
    with open(path, "rb") as f:
        data = f.read()
    return data.decode("utf-8"), "rubric-" + hashlib.sha256(data).hexdigest()[:12]


def parse_prices(path):
    """config/prices.csv -> {(provider, model): (currency, in, cached, out) per million}, the
    standard (pay-as-you-go) rows."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            prov, model, tier, _from, cur, inp, cached, _cw, outp = line.strip().split(",")
            if tier != "standard":
                continue  # provisioned rows price a capacity deployment's calls, not the judge's
            out[(prov, model)] = (cur, Decimal(inp), Decimal(cached), Decimal(outp))
    return out


class Judge:
    """A judge route: provider/model behind an OpenAI-compatible base URL, the pinned rubric and
    its version; scores relevance and tonality 1-5 (normalized to 0-1) with its cost (INR
    micros, priced like the server prices its calls)."""

    def __init__(self, base_url, route, rubric_path, prices_path, usd_to_inr=Decimal("84.0")):
        self.base_url = base_url.rstrip("/")
        self.provider, _, self.model = route.partition("/")
        self.rubric, self.rubric_version = load_rubric(rubric_path)
        self.price = parse_prices(prices_path).get((self.provider, self.model))
        self.usd_to_inr = usd_to_inr

    def version(self):
        return "%s/%s+%s" % (self.provider, self.model, self.rubric_version)

    def cost_micros(self, usage):
        if not self.price or not usage:
            return 0
        cur, inp, cached, outp = self.price
        c_in = usage.get("prompt_tokens_details", {}).get("cached_tokens", 0) or 0
        total = ((usage.get("prompt_tokens", 0) - c_in) * inp + c_in * cached +
                 usage.get("completion_tokens", 0) * outp)
        if cur == "USD":
            total *= self.usd_to_inr
        return int(total.to_integral_value())  # per-million prices x tokens = micros

    def score(self, query, answer, reference):
        body = {"model": self.model, "temperature": 0, "max_tokens": 200,
                "response_format": {"type": "json_object"},
                "messages": [{"role": "system", "content": self.rubric},
                             {"role": "user", "content": "QUESTION:\n%s\n\nREFERENCE:\n%s\n\n"
                              "ANSWER:\n%s" % (query, reference or "", answer)}]}
        try:
            r = http_json(self.base_url + "/chat/completions", token="eval", body=body)
            v = json.loads(r["choices"][0]["message"]["content"])
            rel, ton = float(v["relevance"]), float(v["tonality"])
            return {"relevance": (rel - 1) / 4, "tonality": (ton - 1) / 4,
                    "reason": v.get("reason", ""),
                    "cost_micros": self.cost_micros(r.get("usage"))}
        except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as e:
            return {"relevance": None, "tonality": None, "reason": "judge failed: %s" % e,
                    "cost_micros": 0}


# ---------------------------------------------------------------------------------------------
# one case through the server


async def _turn(ws, text, msg_id, timeout):
    """Send one user message; collect its events until turn_end (or an error ending it)."""
    await ws.send(json.dumps({"type": "user_message", "id": msg_id, "text": text}))
    t0 = time.monotonic()
    out = {"text": "", "products": [], "first_delta_ms": None, "error": None, "turn_id": None}
    while True:
        ev = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        typ = ev.get("type")
        if typ == "turn_start":
            out["turn_id"] = ev["turn_id"]
        elif typ == "products":
            out["products"] = ev.get("items", [])
        elif typ == "delta":
            if out["first_delta_ms"] is None:
                out["first_delta_ms"] = (time.monotonic() - t0) * 1000
            out["text"] += ev["text"]
        elif typ == "error":
            out["error"] = ev.get("code")
            if ev.get("id") == msg_id and out["turn_id"] is None:
                out["end"] = {}
                return out
        elif typ == "turn_end":
            out["end"] = ev
            out["wall_ms"] = (time.monotonic() - t0) * 1000
            return out


async def run_case(ws_url, case, timeout=60):
    """Drive one case: history turns, then the query. Returns the raw observation."""
    async with websockets.connect(ws_url, max_size=1 << 22) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        conv = hello.get("conversation_id")
        history_products = []
        for i, h in enumerate(case.get("history", [])):
            text = h["content"] if isinstance(h, dict) else h
            if isinstance(h, dict) and h.get("role") != "user":
                continue  # the server writes its own earlier answers
            t = await _turn(ws, text, "h%d" % i, timeout)
            history_products += t["products"]
        last = await _turn(ws, case["query"], "q", timeout)
    last["conversation_id"] = conv
    last["history_products"] = history_products
    return last


def read_tools(http_url, token, conv, turn_id):
    """The tool calls of one turn from the read API: [(name, arguments)], or None without it."""
    if not token or not http_url or not conv:
        return None
    try:
        c = http_json("%s/v1/conversations/%s" % (http_url.rstrip("/"), conv), token=token)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    for t in c.get("turns", []):
        if t.get("id") == turn_id:
            return [(x["name"], x.get("arguments") or {}) for x in t.get("tool_calls", [])]
    return None


def evidence_for(case, obs, tools, catalog):
    """The tool data of the turn: replayed tool calls (or the case's production fixtures), the
    products shown in the conversation, and the sources of the case's facts."""
    objs = []
    for f in case.get("fixtures", {}).get("tools", []) or []:
        objs.append(f.get("result"))
    if catalog:
        for name, args in tools or []:
            objs.append(catalog.replay(name, args if isinstance(args, dict) else {}))
        for p in obs["products"] + obs["history_products"]:
            objs.append(catalog.get("/catalog/products/%s" % urllib.parse.quote(str(p["id"]))))
        for f in case.get("facts", []):
            if str(f.get("source", "")).startswith("/"):
                objs.append(catalog.get(f["source"]))
    objs.append(obs["products"] + obs["history_products"])
    return S.evidence_from([o for o in objs if o is not None])


def score_case(case, obs, tools, evidence, judged):
    """Every dimension of one case (None where it does not apply)."""
    end = obs.get("end") or {}
    route = end.get("route") or {}
    text = obs["text"]
    grades = {r["id"]: r["grade"] for r in case.get("relevant", [])}
    shown = [p["id"] for p in obs["products"]]
    fact = S.factual_score(text, evidence, case["query"] + " " + " ".join(
        h["content"] if isinstance(h, dict) else h for h in case.get("history", [])))
    s = {"query_type": 1.0 if route.get("query_type") == case["expected_query_type"] else 0.0}
    if tools is not None:
        p, r = S.tool_precision_recall([n for n, _ in tools], case.get("expected_tools", []))
        s["tool_precision"], s["tool_recall"] = p, r
    if grades:
        s["precision_at_k"] = S.precision_at_k(shown, grades, K) if shown else 0.0
        s["ndcg_at_k"] = S.ndcg_at_k(shown, grades, K) if shown else 0.0
    s["factual_accuracy"] = fact["accuracy"]
    s["no_hallucination"] = 0.0 if fact["hallucination"] else 1.0
    s["fact_recall"] = S.fact_recall(text, case.get("facts", []))
    if case.get("format") == "table":
        s["format"] = 1.0 if S.has_table(text) else 0.0
    s["verbosity"] = S.verbosity_score(text, case.get("verbosity", "medium"),
                                       end.get("finish_reason", "stop"))
    s["relevance"] = judged.get("relevance")
    s["tonality"] = judged.get("tonality")
    s["completed"] = 1.0 if end.get("finish_reason") == "stop" and not obs["error"] else 0.0
    return {k: v for k, v in s.items() if v is not None}, fact


def record(case, obs, tools, scores, fact, judged):
    end = obs.get("end") or {}
    lat = end.get("latency_ms") or {}
    return {
        "id": case["id"], "query": case["query"], "history": case.get("history", []),
        "expected_query_type": case["expected_query_type"],
        "tail": case.get("tail"), "verbosity_class": case.get("verbosity"),
        "query_type": (end.get("route") or {}).get("query_type"),
        "agent": (end.get("route") or {}).get("agent"),
        "flags": end.get("flags", []), "finish_reason": end.get("finish_reason"),
        "error": obs["error"], "turn_id": obs["turn_id"],
        "conversation_id": obs["conversation_id"],
        "answer": obs["text"], "reference_answer": case.get("reference_answer", ""),
        "products": [p["id"] for p in obs["products"]],
        "tools": [n for n, _ in tools] if tools is not None else None,
        "ungrounded": fact["ungrounded"],
        "judge_reason": judged.get("reason", ""),
        "scores": scores,
        "latency_ms": {"first_token": lat.get("first_token"), "total": lat.get("total"),
                       "client_first_delta": obs["first_delta_ms"],
                       "client_total": obs.get("wall_ms")},
        "cost_micros": (end.get("cost") or {}).get("micros", 0),
        "currency": (end.get("cost") or {}).get("currency"),
        "judge_cost_micros": judged.get("cost_micros", 0),
    }


class Progress:
    """A progress bar on a TTY (stderr), a line every 10 % otherwise."""

    def __init__(self, total, stream=sys.stderr, what="cases"):
        self.total, self.done, self.stream, self.what = total, 0, stream, what
        self.tty = stream.isatty()
        self.t0 = time.monotonic()
        self.last_decile = -1

    def step(self):
        self.done += 1
        el = time.monotonic() - self.t0
        rate = self.done / el * 60 if el > 0 else 0
        if self.tty:
            w = 30
            fill = int(w * self.done / max(1, self.total))
            self.stream.write("\r[%s%s] %d/%d  %.0f %s/min " % (
                "#" * fill, "." * (w - fill), self.done, self.total, rate, self.what))
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()
        else:
            d = self.done * 10 // max(1, self.total)
            if d != self.last_decile:
                self.last_decile = d
                print("eval: %d/%d %s (%.0f %s/min)" % (self.done, self.total, self.what, rate,
                                                        self.what), file=self.stream, flush=True)


async def run_set(cases, opts, catalog, judge):
    """All cases at opts.concurrency at once; returns the per-case records in the set's order."""
    sem = asyncio.Semaphore(opts.concurrency)
    prog = Progress(len(cases))
    out = [None] * len(cases)

    async def one(i, case):
        async with sem:
            try:
                obs = await run_case(opts.ws_url, case, opts.timeout)
            except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as e:
                obs = {"text": "", "products": [], "history_products": [], "end": {},
                       "error": "client: %s" % (e or type(e).__name__), "turn_id": None,
                       "conversation_id": None, "first_delta_ms": None}
            tools = await asyncio.to_thread(read_tools, opts.http_url, opts.admin_token,
                                            obs["conversation_id"], obs["turn_id"])
            ev = await asyncio.to_thread(evidence_for, case, obs, tools, catalog)
            judged = {}
            if judge and obs["text"]:
                judged = await asyncio.to_thread(judge.score, case["query"], obs["text"],
                                                 case.get("reference_answer", ""))
            scores, fact = score_case(case, obs, tools, ev, judged)
            out[i] = record(case, obs, tools, scores, fact, judged)
            prog.step()

    await asyncio.gather(*(one(i, c) for i, c in enumerate(cases)))
    return out
