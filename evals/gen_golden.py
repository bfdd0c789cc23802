#!/usr/bin/python3
"""gen_golden.py - writes the generated part of a golden set from a shop's commerce API, then
appends the hand-written cases.

  /usr/bin/python3 evals/gen_golden.py --catalog-url http://127.0.0.1:8090 \
      [--orders FILE] [--hand evals/hand/shop.jsonl] [--seed 14] [--set shop --version 1] \
      [-o evals/sets/shop-v1.jsonl]

Everything a case states about the shop - the relevant products and their grades, the facts an
answer must state and where each comes from, the reference answer - is computed from the API's
answers (GET /catalog/search, /catalog/products/{id}, /catalog/products/{id}/offers,
/catalog/policies[/{topic}], /catalog/orders/{id}), never from a file of the bundled catalog, so
the same script makes a set for another shop behind the same API. The one thing the API cannot
list is orders: their ids come from --orders (a file with one id per line, or a catalog JSONL
with order records; default: the simulator's catalog file). Deterministic: one random.Random
(seed), and the API is deterministic, so the same shop gives the same bytes.
"""

import argparse
import json
import os
import random
import re
import sys
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CATEGORY_WORDS = {"phones": ["phone", "smartphone", "mobile"], "laptops": ["laptop", "notebook"],
                  "headphones": ["headphones", "earbuds", "wireless earphones"],
                  "shoes": ["running shoes", "sneakers", "shoes"],
                  "clothing": ["kurta", "jeans", "shirt", "t-shirt"]}
# the numeric spec a shopper may ask about: (spec path, words in a search, words in a question,
# unit the answer states it with)
SPEC = {"phones": [("battery_mah", "with a big battery", "battery capacity", "mAh"),
                   ("rear_camera_mp", "with a good camera", "rear camera", "MP"),
                   ("ram_gb", "with lots of RAM", "RAM", "GB")],
        "laptops": [("ram_gb", "with 16 GB RAM", "RAM", "GB"),
                    ("battery_hours", "with a long battery life", "battery life", "hours")],
        "headphones": [("battery_hours", "with long battery life", "battery life", "hours"),
                       ("driver_mm", "with big drivers", "driver size", "mm")],
        "shoes": [("weight_g", "that are light", "weight", "g")],
        "clothing": []}
POLICY_Q = {"returns": ["What is your return policy?", "Can I return something I bought?",
                        "how many days do i have to send an item back"],
            "refunds": ["How do refunds work?", "When will I get my refund?"],
            "warranty": ["What warranty do your products have?", "Is there a warranty?"],
            "cancellation": ["How can I cancel an order?", "can i cancel my order after it ships"],
            "delivery": ["How long does delivery take?", "Do you charge for shipping?"],
            "exchange": ["Can I exchange shoes for another size?", "How do exchanges work?"],
            "cod": ["Is cash on delivery available?", "Can I pay COD?"],
            "emi": ["Do you offer EMI?", "Can I pay in EMI on my credit card?"],
            "price_match": ["Do you match prices if I find it cheaper elsewhere?"]}
ORDER_Q = ["Where is my order {id}?", "What is the status of order {id}?",
           "Has order {id} shipped yet?", "when will my order #{id} arrive"]
PINCODES = ["560001", "110001", "400001", "600028", "700019", "500081", "781001", "302017"]
ORDINALS = ["first", "second", "third"]
# categories whose word names a kind of product (a search for it must match the word too)
KIND_WORD_CATEGORIES = ("clothing", "shoes")


def rupees(n):
    """₹ with Indian digit grouping: 104990 -> ₹1,04,990."""
    s = str(int(n))
    if len(s) > 3:
        head, tail = s[:-3], s[-3:]
        head = ",".join(re.findall(r"\d{1,2}", head[::-1]))[::-1]
        s = head + "," + tail
    return "₹" + s


class API:
    def __init__(self, base):
        self.base = base.rstrip("/")
        self.cache = {}

    def get(self, path, **q):
        q = {k: v for k, v in q.items() if v is not None}
        full = path + ("?" + urllib.parse.urlencode(q) if q else "")
        if full not in self.cache:
            try:
                with urllib.request.urlopen(self.base + full, timeout=30) as r:
                    self.cache[full] = (json.loads(r.read().decode()), full)
            except urllib.error.HTTPError as e:
                self.cache[full] = ({"error": e.code}, full)
        return self.cache[full]


def spec_value(product, key):
    v = product.get("specs", {}).get(key)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


class Gen:
    def __init__(self, api, rng, set_name, version):
        self.api, self.rng, self.set, self.version = api, rng, set_name, version
        self.cases = []
        self.n = {}

    def add(self, qtype, tail, query, **kw):
        self.n[qtype] = self.n.get(qtype, 0) + 1
        prefix = {"product_search": "ps", "product_fact": "pf", "comparison": "cmp",
                  "policy": "pol", "order_status": "ord"}[qtype]
        case = {"id": "%s-%03d" % (prefix, self.n[qtype]), "set": self.set,
                "version": self.version, "source": "generated", "query": query,
                "history": kw.pop("history", []), "expected_query_type": qtype, "tail": tail}
        case.update(kw)
        case.setdefault("facts", [])
        case.setdefault("relevant", [])
        self.cases.append(case)

    # -- searches ----------------------------------------------------------------------------

    def budget_for(self, cat, brand, q=None):
        """A round budget (a multiple of 500, drawn from those) under which 5-50 products match,
        so every match can be graded; the lowest one with a match when none gives 5-50."""
        good, first = [], None
        for cap in range(500, 400001, 500):
            (d, _) = self.api.get("/catalog/search", q=q, category=cat, brand=brand,
                                  max_price=cap, limit=1)
            t = d.get("total", 0)
            if t and first is None:
                first = cap
            if t > 50:
                break
            if t >= 5:
                good.append(cap)
        return self.rng.choice(good) if good else first

    def graded(self, cat, brand, cap, spec, q=None):
        """Every product matching the hard constraints, graded: 3 for the best quarter on the
        asked spec (or a rating of 4.5+ without one), 2 for the rest rated 4.0+ or on spec, 1
        for the other matches."""
        d, path = self.api.get("/catalog/search", q=q, category=cat, brand=brand,
                               max_price=cap, limit=50)
        items = d.get("results", [])
        rel = []
        if spec:
            vals = []
            for it in items:
                p, _ = self.api.get("/catalog/products/%s" % it["id"])
                vals.append((spec_value(p, spec) or 0, it["id"]))
            cut = sorted((v for v, _ in vals), reverse=True)[max(0, len(vals) // 4 - 1)] \
                if vals else 0
            for v, pid in vals:
                rel.append({"id": pid, "grade": 3 if v >= cut and v > 0 else 2})
        else:
            for it in items:
                r = it.get("rating", 0)
                rel.append({"id": it["id"], "grade": 3 if r >= 4.5 else 2 if r >= 4.0 else 1})
        return rel, path, items

    def brands(self, cat):
        d, _ = self.api.get("/catalog/search", category=cat, limit=50, sort="rating")
        return sorted({it["brand"] for it in d.get("results", [])})

    def searches(self, n_head, n_tail):
        cats = sorted(CATEGORY_WORDS)
        for i in range(n_head + n_tail):
            tail = i >= n_head
            cat = cats[i % len(cats)]
            brand = self.rng.choice(self.brands(cat)) if tail and self.rng.random() < 0.7 else None
            word = self.rng.choice(CATEGORY_WORDS[cat])
            kind = word if cat in KIND_WORD_CATEGORIES else None  # "kurta" is not every garment
            cap = self.budget_for(cat, brand, kind)
            if cap is None:
                brand, cap = None, self.budget_for(cat, None, kind)
            specs = SPEC[cat]
            spec = self.rng.choice(specs) if specs and (tail or self.rng.random() < 0.5) else None
            money = self.rng.choice(["%d" % cap, rupees(cap), "%dk" % (cap // 1000)]) \
                if cap % 1000 == 0 else "%d" % cap
            who = brand + " " if brand else ""
            if tail:
                tpl = self.rng.choice(["{who}{w} below {m} {s}", "need {who}{w} within {m} {s} pls",
                                       "any good {who}{w} {s} under {m}?",
                                       "{who}{w} max budget {m} {s}"])
            else:
                tpl = self.rng.choice(["Best {who}{w} under {m} {s}", "Show me {who}{w} below {m} {s}",
                                       "I need {who}{w} under {m} {s}"])
            q = " ".join(tpl.format(who=who, w=word, m=money, s=spec[1] if spec else "").split())
            rel, path, items = self.graded(cat, brand, cap, spec[0] if spec else None, kind)
            top = sorted(items, key=lambda it: -next(r["grade"] for r in rel if r["id"] == it["id"]))
            ref = "Here are some %s under %s: %s." % (word, rupees(cap), "; ".join(
                "%s at %s" % (it["title"], rupees(it["price"])) for it in top[:3]))
            self.add("product_search", "long_tail" if tail else "head", q,
                     expected_tools=["search_products"], relevant=rel,
                     facts=[], evidence=[path], verbosity="long", reference_answer=ref,
                     constraints={"category": cat, "brand": brand, "max_price": cap,
                                  "spec": spec[0] if spec else None})

    # -- facts about one product ---------------------------------------------------------------

    def sample_products(self, n):
        out = []
        cats = sorted(CATEGORY_WORDS)
        for i in range(n):
            cat = cats[i % len(cats)]
            d, _ = self.api.get("/catalog/search", category=cat, limit=50,
                                sort=["rating", "price_asc", "price_desc"][i % 3])
            it = self.rng.choice(d["results"])
            p, _ = self.api.get("/catalog/products/%s" % it["id"])
            out.append(p)
        return out

    def facts(self, n_spec, n_feature, n_delivery):
        for p in self.sample_products(n_spec):
            src = "/catalog/products/%s" % p["id"]
            specs = [s for s in SPEC.get(p["category"], []) if spec_value(p, s[0])]
            if not specs:
                q = "How much does %s cost?" % p["id"]
                facts = [{"claim": "price", "value": rupees(p["price"]), "source": src}]
                ref = "%s costs %s." % (p["title"], rupees(p["price"]))
            else:
                key, _, words, unit = self.rng.choice(specs)
                v = spec_value(p, key)
                val = "%g %s" % (v, unit)
                q = self.rng.choice(["What is the %s of %s?", "Tell me the %s of %s"]) % (
                    words, p["id"])
                facts = [{"claim": words, "value": val, "source": src, "field": "specs." + key}]
                ref = "%s has %s (%s); it costs %s." % (p["title"], val, words, rupees(p["price"]))
            self.add("product_fact", "head", q, expected_tools=["get_product"],
                     relevant=[{"id": p["id"], "grade": 3}], facts=facts, evidence=[src],
                     verbosity="short", reference_answer=ref)
        for p in self.sample_products(n_feature):
            src = "/catalog/products/%s" % p["id"]
            if p["category"] == "phones" and p["specs"].get("network"):
                q = "Does %s support 5G?" % p["id"]
                val = p["specs"]["network"]
                ref = "%s %s 5G (network: %s)." % (p["title"], "supports" if val == "5G" else
                                                   "does not support", val)
            elif p["category"] == "headphones" and "water_resistance" in p["specs"]:
                q = "is %s waterproof" % p["id"]
                val = p["specs"]["water_resistance"] or "no water resistance"
                ref = "%s: water resistance %s." % (p["title"], val)
            else:
                q = "What warranty does %s come with?" % p["id"]
                m = p.get("warranty_months", 0)
                val = "%d months" % m if m else "no manufacturer warranty"
                ref = "%s comes with %s." % (p["title"], "a warranty of " + val if m else val)
            self.add("product_fact", "long_tail", q, expected_tools=["get_product"],
                     relevant=[{"id": p["id"], "grade": 3}],
                     facts=[{"claim": "feature", "value": val, "source": src}], evidence=[src],
                     verbosity="short", reference_answer=ref)
        for p in self.sample_products(n_delivery):
            pin = self.rng.choice(PINCODES)
            o, src = self.api.get("/catalog/products/%s/offers" % p["id"], pincode=pin)
            q = self.rng.choice(["Can %s be delivered to %s?", "how fast can you deliver %s to %s",
                                 "Is %s in stock for pincode %s?"]) % (p["id"], pin)
            if o.get("in_stock"):
                dl = o["delivery"]
                facts = [{"claim": "price", "value": rupees(o["price"]), "source": src},
                         {"claim": "delivery days", "value": "%d days" % dl["days_max"],
                          "source": src}]
                ref = "%s is in stock at %s for %s, delivered in %d-%d days." % (
                    o["title"], pin, rupees(o["price"]), dl["days_min"], dl["days_max"])
            else:
                facts = [{"claim": "stock", "value": "out of stock", "source": src}]
                ref = "%s is out of stock at %s." % (o.get("title", p["title"]), pin)
            self.add("product_fact", "long_tail", q, expected_tools=["get_offers"],
                     relevant=[{"id": p["id"], "grade": 3}], facts=facts, evidence=[src],
                     verbosity="short", reference_answer=ref)

    def follow_ups(self, n):
        """A search, then a question about one of the products it showed: relevance and facts
        depend on the slate the server showed, so the case checks the route, the tools and the
        grounding (every number stated) rather than fixed facts."""
        cats = [c for c in sorted(CATEGORY_WORDS) if SPEC[c]]
        for i in range(n):
            cat = cats[i % len(cats)]
            cap = self.budget_for(cat, None)
            key, _, words, _ = self.rng.choice(SPEC[cat])
            first = "Show me %s under %d" % (self.rng.choice(CATEGORY_WORDS[cat]), cap)
            q = self.rng.choice(["What is the %s of the %s one?", "Tell me the %s of the %s one"]) % (
                words.split()[0] if words != "RAM" else "RAM", self.rng.choice(ORDINALS))
            self.add("product_fact", "head", q, history=[first], expected_tools=["get_product"],
                     facts=[], verbosity="short",
                     reference_answer="The %s of that product, from its details." % words)

    # -- comparisons ---------------------------------------------------------------------------

    def comparisons(self, n_head, n_tail):
        cats = sorted(CATEGORY_WORDS)
        for i in range(n_head):
            cat = cats[i % len(cats)]
            word = self.rng.choice(CATEGORY_WORDS[cat])
            kind = word if cat in KIND_WORD_CATEGORIES else None
            brand = self.rng.choice(self.brands(cat))
            cap = self.budget_for(cat, brand, kind)
            if cap is None:
                brand, cap = None, self.budget_for(cat, None, kind)
            d, path = self.api.get("/catalog/search", q=kind, category=cat, brand=brand,
                                   max_price=cap, sort="price_asc", limit=50)
            items = d["results"]
            two = items[:2]
            rel = [{"id": it["id"], "grade": 3 if j < 2 else 1} for j, it in enumerate(items)]
            q = self.rng.choice(["Compare the two cheapest %s%s under %d",
                                 "Which is better: the two cheapest %s%s below %d?"]) % (
                brand + " " if brand else "", word, cap)
            facts = [{"claim": "price of %s" % it["title"], "value": rupees(it["price"]),
                      "source": "/catalog/products/%s" % it["id"]} for it in two]
            ref = "| | %s | %s |\n|---|---|---|\n| Price | %s | %s |\n\n%s is cheaper." % (
                two[0]["title"], two[1]["title"], rupees(two[0]["price"]),
                rupees(two[1]["price"]), two[0]["title"])
            self.add("comparison", "head", q, expected_tools=["search_products", "get_product"],
                     relevant=rel, facts=facts, evidence=[path], format="table",
                     verbosity="long", reference_answer=ref)
        prods = self.sample_products(2 * n_tail)
        for i in range(n_tail):
            a, b = prods[2 * i], prods[2 * i + 1]
            q = self.rng.choice(["Compare %s and %s", "%s vs %s - which one should I buy?",
                                 "difference between %s and %s"]) % (a["id"], b["id"])
            facts = [{"claim": "price of %s" % p["title"], "value": rupees(p["price"]),
                      "source": "/catalog/products/%s" % p["id"]} for p in (a, b)]
            cheaper = min((a, b), key=lambda p: p["price"])
            ref = "| | %s | %s |\n|---|---|---|\n| Price | %s | %s |\n\n%s is cheaper." % (
                a["title"], b["title"], rupees(a["price"]), rupees(b["price"]), cheaper["title"])
            self.add("comparison", "long_tail", q, expected_tools=["get_product"],
                     relevant=[{"id": a["id"], "grade": 3}, {"id": b["id"], "grade": 3}],
                     facts=facts, evidence=[f["source"] for f in facts], format="table",
                     verbosity="long", reference_answer=ref)

    # -- policies and orders -------------------------------------------------------------------

    def policies(self):
        d, _ = self.api.get("/catalog/policies")
        for topic in d.get("topics", []):
            pol, src = self.api.get("/catalog/policies/%s" % topic)
            qs = POLICY_Q.get(topic, ["What is your %s policy?" % topic.replace("_", " ")])
            m = re.search(r"\d+\s*(?:days?|months?|hours?)", pol.get("summary", ""))
            facts = [{"claim": "key number", "value": m.group(0), "source": src}] if m else []
            for j, q in enumerate(qs):
                self.add("policy", "head" if j == 0 else "long_tail", q,
                         expected_tools=["get_policy"], facts=facts, evidence=[src],
                         verbosity="medium", reference_answer=pol.get("summary", ""))

    def orders(self, ids, n_known, n_unknown):
        for oid in self.rng.sample(ids, min(n_known, len(ids))):
            o, src = self.api.get("/catalog/orders/%s" % oid)
            if "error" in o:
                continue
            q = self.rng.choice(ORDER_Q).format(id=oid)
            facts = [{"claim": "status", "value": o["status"].replace("_", " "), "source": src},
                     {"claim": "total", "value": rupees(o["total"]), "source": src}]
            ref = "Order %s is %s%s. Total %s." % (
                oid, o["status"].replace("_", " "),
                ", expected on %s" % o["expected_delivery"] if o.get("expected_delivery") else "",
                rupees(o["total"]))
            self.add("order_status", "head", q, expected_tools=["get_order"], facts=facts,
                     evidence=[src], verbosity="medium", reference_answer=ref)
        for _ in range(n_unknown):
            while True:
                oid = "%04d-%04d" % (self.rng.randint(1, 9999), self.rng.randint(0, 9999))
                o, src = self.api.get("/catalog/orders/%s" % oid)
                if "error" in o:
                    break
            self.add("order_status", "long_tail", self.rng.choice(ORDER_Q).format(id=oid),
                     expected_tools=["get_order"], facts=[], evidence=[src], verbosity="short",
                     reference_answer="I could not find order %s; please check the number." % oid)


def order_ids(path):
    ids = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                o = json.loads(line)
                if o.get("kind") == "order":
                    ids.append(o["id"])
            elif re.fullmatch(r"\d{4}-\d{4}", line):
                ids.append(line)
    return ids


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog-url", required=True)
    ap.add_argument("--orders", default=os.path.join(ROOT, "loadtest", "sim", "catalog",
                                                     "catalog.jsonl"))
    ap.add_argument("--hand", default=os.path.join(HERE, "hand", "shop.jsonl"))
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--set", default="shop")
    ap.add_argument("--version", type=int, default=1)
    ap.add_argument("-o", "--output", default=os.path.join(HERE, "sets", "shop-v1.jsonl"))
    a = ap.parse_args()
    g = Gen(API(a.catalog_url), random.Random(a.seed), a.set, a.version)
    g.searches(34, 22)
    g.facts(15, 10, 8)
    g.follow_ups(8)
    g.comparisons(15, 10)
    g.policies()
    g.orders(order_ids(a.orders), 20, 5)
    cases = g.cases
    if a.hand and os.path.exists(a.hand):
        with open(a.hand, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    c = json.loads(line)
                    c.setdefault("set", a.set)
                    c.setdefault("version", a.version)
                    c.setdefault("source", "hand")
                    cases.append(c)
    with open(a.output, "w", encoding="utf-8") as f:
        for c in cases:
            f.write(json.dumps(c, ensure_ascii=False, sort_keys=True) + "\n")
    by = {}
    for c in cases:
        by[c["expected_query_type"]] = by.get(c["expected_query_type"], 0) + 1
    print("%d cases -> %s: %s" % (len(cases), a.output, ", ".join(
        "%s %d" % kv for kv in sorted(by.items()))), file=sys.stderr)


if __name__ == "__main__":
    main()
