"""traffic.py - the recorded traffic mix of the trilemma report (docs/evals.md, "The trilemma
report"): multi-turn conversations drawn deterministically from the load-test corpus
(loadtest/corpus/shopping_queries.txt), replayed through a running trilemmad over WebSocket,
with each turn's cost and latency.

The mix is what a cache and a context policy see in production: a few questions are asked
often and most rarely (a Zipf-like popularity over the corpus, so the same opening question
comes back in other conversations), and a conversation goes on with follow-ups about what it was
shown ("compare the first two") or another question of the same kind. Everything is drawn from
one random.Random(seed): the same seed and corpus give the same conversations, word for word.
Nothing here reads the simulator's catalog: the corpus is the shop's questions, not its data.
"""

import asyncio
import bisect
import itertools
import json
import random
import time

import websockets

import scorers as S

ZIPF_S = 1.1  # popularity exponent: weight of the question of rank r is 1 / r^s
# after turn 1, 2, 3: the chance that the conversation goes on (at most 4 turns)
CONTINUE = (0.6, 0.5, 0.4)
# follow-ups about the products a search or comparison showed (no catalog data: references)
PINCODES = ("560001", "110001", "400001", "600028", "700019", "500081")
SHOWN_FOLLOWUPS = (
    "Tell me more about the second one",
    "Compare the first two",
    "Which of these is the cheapest?",
    "Can the first one be delivered to {pin}?",
    "Does the first one come with a warranty?",
    "Is the second one in stock?",
)
CLOSERS = ("Thanks, that helps!", "Thank you", "Great, thanks a lot")
# corpus categories whose answers show products (a follow-up may refer to them)
SHOWS_PRODUCTS = ("search", "compare", "price", "advice")


class BadCorpus(ValueError):
    pass


def parse_corpus(text, name="corpus"):
    """CATEGORY<TAB>QUERY lines (blank lines and '#' comments skipped) -> {category: [query]},
    in file order. A line without a tab or with an empty part is an error naming the line."""
    out = {}
    for no, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        cat, tab, query = line.partition("\t")
        if not tab or not cat.strip() or not query.strip():
            raise BadCorpus("%s:%d: expected CATEGORY<TAB>QUERY" % (name, no))
        out.setdefault(cat.strip(), []).append(query.strip())
    if not out:
        raise BadCorpus("%s: no queries" % name)
    return out


def load_corpus(path):
    with open(path, encoding="utf-8") as f:
        return parse_corpus(f.read(), path)


class Zipf:
    """Draws items with weight 1 / rank^s, the ranks a seeded shuffle of the items."""

    def __init__(self, items, rng, s=ZIPF_S):
        self.items = list(items)
        rng.shuffle(self.items)
        self.cum = list(itertools.accumulate(1.0 / (r + 1) ** s for r in range(len(self.items))))

    def draw(self, rng):
        return self.items[bisect.bisect_left(self.cum, rng.random() * self.cum[-1])]


def build_mix(corpus, n, seed, s=ZIPF_S):
    """n conversations [{"i", "category", "turns": [text, ...]}]: the opening question drawn by
    popularity over the whole corpus, each further turn (with the CONTINUE chances) a follow-up
    about the products shown, another question of the same category (by popularity within it),
    or a thank-you that ends the conversation."""
    if n < 0:
        raise ValueError("conversations: expected a number >= 0")
    rng = random.Random(seed)
    everything = Zipf([(c, q) for c in sorted(corpus) for q in corpus[c]], rng, s)
    per_cat = {c: Zipf(corpus[c], rng, s) for c in sorted(corpus)}
    out = []
    for i in range(n):
        cat, first = everything.draw(rng)
        turns = [first]
        while len(turns) <= len(CONTINUE) and rng.random() < CONTINUE[len(turns) - 1]:
            r = rng.random()
            if r < 0.15:
                turns.append(rng.choice(CLOSERS))
                break
            if cat in SHOWS_PRODUCTS and r < 0.75:
                turns.append(rng.choice(SHOWN_FOLLOWUPS).format(pin=rng.choice(PINCODES)))
            else:
                turns.append(per_cat[cat].draw(rng))
        out.append({"i": i, "category": cat, "turns": turns})
    return out


def mix_stats(mix):
    """How much the mix repeats itself: turns, distinct texts, and the share of turns (and of
    opening questions) whose text an earlier conversation already had."""
    seen, first_seen = set(), set()
    turns = rep = first_rep = 0
    for c in mix:
        if c["turns"][0] in first_seen:
            first_rep += 1
        first_seen.add(c["turns"][0])
        for t in c["turns"]:
            turns += 1
            rep += t in seen
        seen.update(c["turns"])
    n = len(mix)
    return {"conversations": n, "turns": turns, "distinct_texts": len(seen),
            "repeat_share": rep / turns if turns else None,
            "opening_repeat_share": first_rep / n if n else None,
            "turns_per_conversation": turns / n if n else None}


# ---------------------------------------------------------------------------------------------
# replay


async def _turn(ws, text, msg_id, timeout):
    """One user message until its turn_end (or the error that ends it), timed by the client."""
    await ws.send(json.dumps({"type": "user_message", "id": msg_id, "text": text}))
    t0 = time.monotonic()
    out = {"first_delta_ms": None, "error": None, "end": None}
    while True:
        ev = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        typ = ev.get("type")
        if typ == "delta" and out["first_delta_ms"] is None:
            out["first_delta_ms"] = (time.monotonic() - t0) * 1000
        elif typ == "error":
            out["error"] = ev.get("code")
            if ev.get("id") == msg_id and not ev.get("turn_id"):
                break  # refused before it started: no turn_end comes
        elif typ == "turn_end":
            out["end"] = ev
            break
    out["wall_ms"] = (time.monotonic() - t0) * 1000
    return out


def turn_record(text, obs):
    end = obs["end"] or {}
    lat = end.get("latency_ms") or {}
    cost = end.get("cost") or {}
    usage = end.get("usage") or {}
    return {"text": text, "finish_reason": end.get("finish_reason"), "error": obs["error"],
            "query_type": (end.get("route") or {}).get("query_type"), "cache": end.get("cache"),
            "flags": end.get("flags", []), "cost_micros": cost.get("micros", 0) or 0,
            "currency": cost.get("currency"),
            "input_tokens": usage.get("input_tokens", 0) or 0,
            "cached_input_tokens": usage.get("cached_input_tokens", 0) or 0,
            "output_tokens": usage.get("output_tokens", 0) or 0,
            "first_token_ms": lat.get("first_token"), "total_ms": lat.get("total"),
            "client_first_delta_ms": obs["first_delta_ms"], "client_total_ms": obs["wall_ms"]}


async def run_conversation(ws_url, conv, timeout):
    turns, conv_id = [], None
    try:
        async with websockets.connect(ws_url, max_size=1 << 22) as ws:
            conv_id = json.loads(await asyncio.wait_for(ws.recv(), timeout)).get(
                "conversation_id")
            for k, text in enumerate(conv["turns"]):
                turns.append(turn_record(text, await _turn(ws, text, "t%d" % k, timeout)))
    except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as e:
        turns.append(turn_record(conv["turns"][len(turns)], {
            "first_delta_ms": None, "wall_ms": None, "end": None,
            "error": "client: %s" % (e or type(e).__name__)}))
    return {"i": conv["i"], "category": conv["category"], "conversation_id": conv_id,
            "turns": turns}


def provisioned_tokens(conversation, capacities):
    """Tokens (input + output) of a stored conversation's calls that provisioned deployments
    served: {deployment: tokens}. conversation is the read API's /v1/conversations/{id}; a call
    of tier provisioned belongs to the capacity section whose model is its provider/model."""
    by_model = {c.get("model"): name for name, c in capacities.items()}
    out = {}
    for t in conversation.get("turns", []):
        for c in t.get("llm_calls", []):
            if c.get("tier") != "provisioned":
                continue
            dep = by_model.get("%s/%s" % (c.get("provider"), c.get("model")))
            if dep is None:
                continue
            u = c.get("usage") or {}
            out[dep] = out.get(dep, 0) + (u.get("input_tokens") or 0) + (u.get("output_tokens")
                                                                           or 0)
    return out


async def run_mix(ws_url, mix, concurrency, timeout, progress=None):
    """Every conversation (its turns in order, one WebSocket each), concurrency at once; the
    records in the mix's order."""
    sem = asyncio.Semaphore(max(1, concurrency))
    out = [None] * len(mix)

    async def one(i, conv):
        async with sem:
            out[i] = await run_conversation(ws_url, conv, timeout)
        if progress:
            progress.step()

    await asyncio.gather(*(one(i, c) for i, c in enumerate(mix)))
    return out


def summarize(convs):
    """Cost per conversation, latency percentiles over turns (the server's turn_end.latency_ms
    and the client's own), what the caches answered, errors, tokens."""
    turns = [t for c in convs for t in c["turns"]]
    n = len(convs)
    cost = sum(t["cost_micros"] for t in turns)
    caches, reasons = {}, {}
    for t in turns:
        if t["cache"]:
            caches[t["cache"]] = caches.get(t["cache"], 0) + 1
        reasons[t["finish_reason"] or "none"] = reasons.get(t["finish_reason"] or "none", 0) + 1

    def pct(key, q):
        return S.percentile([t[key] for t in turns], q)

    return {
        "conversations": n, "turns": len(turns),
        "currency": next((t["currency"] for t in turns if t["currency"]), "INR"),
        "cost_micros": cost, "cost_per_conversation_micros": cost / n if n else None,
        "latency_ms": {"first_token_p50": pct("first_token_ms", 50),
                       "first_token_p99": pct("first_token_ms", 99),
                       "total_p50": pct("total_ms", 50), "total_p99": pct("total_ms", 99),
                       "client_first_token_p50": pct("client_first_delta_ms", 50),
                       "client_first_token_p99": pct("client_first_delta_ms", 99),
                       "client_total_p50": pct("client_total_ms", 50),
                       "client_total_p99": pct("client_total_ms", 99)},
        "cache_hits": caches, "finish_reasons": reasons,
        "errors": sum(1 for t in turns if t["error"]),
        "escalations": sum(1 for t in turns if any(f.startswith("escalated") for f in t["flags"])),
        "tokens": {k: sum(t[k] for t in turns)
                   for k in ("input_tokens", "cached_input_tokens", "output_tokens")},
    }
