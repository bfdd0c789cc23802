"""orch_mix.py - the fixed, seeded conversation mix of bench_orchestrator.py (issue 11 section 6).

A conversation is 1-3 user turns, each with the query type it is meant to be (the label the
benchmark compares the server's routing with). The mix is drawn from one random.Random(seed):
the same seed gives the same conversations, word for word. Products, brands and budgets come
from the simulator's catalog (loadtest/sim/catalog/catalog.jsonl) so that searches find
something; order ids are the catalog's orders (and a few that do not exist: a tool error path).
The server under test reads none of this: only the benchmark does.
"""

import collections
import json
import os

# (kind of conversation, weight): the shape of a shopping assistant's day
KINDS = [
    ("search", 14),
    ("search_compare", 14),
    ("search_fact", 12),
    ("search_delivery", 8),
    ("search_compare_delivery", 6),
    ("compare_direct", 6),
    ("policy", 14),
    ("order", 12),
    ("chitchat", 6),
    ("chitchat_search", 4),
    ("other", 4),
]

CATEGORY_WORDS = {
    "phones": ["phone", "smartphone", "mobile"],
    "laptops": ["laptop", "notebook"],
    "headphones": ["headphones", "earbuds", "wireless earphones"],
    "shoes": ["running shoes", "sneakers", "walking shoes", "shoes"],
    "clothing": ["kurta", "jeans", "hoodie", "shirt", "t-shirt"],
}
# what a shopper asks about, per category: (words in a search, words in a follow-up)
SPECS = {
    "phones": [("with a big battery", "battery"), ("with a good camera", "camera"),
               ("with 8 GB RAM", "RAM"), ("with a 120 Hz display", "display")],
    "laptops": [("for coding with 16 GB RAM", "RAM"), ("with a long battery life", "battery"),
                ("with an SSD", "storage"), ("that is light", "weight")],
    "headphones": [("with ANC", "ANC"), ("with long battery life", "battery"),
                   ("for the gym", "water resistance")],
    "shoes": [("for men", "sizes"), ("for women", "material"), ("", "sole")],
    "clothing": [("in cotton", "material"), ("for men", "sizes"), ("slim fit", "fit")],
}
ORDINALS = ["first", "second", "third"]
PINCODES = ["560001", "110001", "400001", "600028", "700019", "500081", "781001", "302017",
            "682001", "226010"]
POLICY_QUESTIONS = [
    "What is the return policy?",
    "How do refunds work here?",
    "Do you offer EMI on credit cards?",
    "Is cash on delivery available?",
    "What warranty do your products have?",
    "How can I cancel an order I placed?",
    "How long does delivery usually take?",
    "Can I exchange shoes for another size?",
    "Do you match prices if I find it cheaper elsewhere?",
]
POLICY_FOLLOWUPS = ["And what about refunds?", "What about exchanges?", "Is there a fee for COD?"]
ORDER_QUESTIONS = ["Where is my order {id}?", "What is the status of order {id}?",
                   "Has order {id} shipped yet?", "When will order {id} arrive?"]
CHITCHAT = ["Hi there!", "Hello, good morning", "Thanks a lot!", "Who are you?",
            "Thank you, that was helpful", "Hey, how are you doing?"]
OTHER = ["What's the weather like in Mumbai today?", "Tell me a joke",
         "Can you help me write an email to my landlord?", "Who won the cricket match yesterday?",
         "What is the capital of Australia?"]


def load_catalog(path):
    """Brands with their cheapest prices per category, and the order ids."""
    brands = collections.defaultdict(lambda: collections.defaultdict(list))
    orders = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            o = json.loads(line)
            if o["kind"] == "product":
                brands[o["category"]][o["brand"]].append(o["price"])
            elif o["kind"] == "order":
                orders.append(o["id"])
    cats = {}
    for cat, by_brand in brands.items():
        cats[cat] = {b: sorted(p) for b, p in by_brand.items() if len(b) > 1}
    return cats, orders


def budget(rng, prices):
    """A round budget above at least a few of these prices (so that a search finds some)."""
    p = prices[min(len(prices) - 1, rng.randint(3, max(3, len(prices) // 2)))]
    step = 1000 if p < 20000 else 5000
    return int((p // step + 1) * step)


def search_turn(rng, cats, compare=False):
    cat = rng.choice(sorted(cats))
    brand = rng.choice(sorted(cats[cat])) if rng.random() < 0.5 else None
    prices = cats[cat][brand] if brand else sorted(p for v in cats[cat].values() for p in v)
    word = rng.choice(CATEGORY_WORDS[cat])
    spec_words, spec = rng.choice(SPECS[cat])
    cap = budget(rng, prices)
    money = rng.choice(["%d" % cap, "₹%s" % format(cap, ","), "%dk" % (cap // 1000)])
    who = (brand + " ") if brand else ""
    if compare:
        text = rng.choice(["Compare the two cheapest %s%s under %s",
                           "Which is better: the top two %s%s below %s?"]) % (who, word, money)
        return ("comparison", text), cat, spec
    text = rng.choice(["Best %s%s under %s %s", "Show me %s%s below %s %s",
                       "I need %s%s within %s %s", "Looking for %s%s under %s %s"]) % (
        who, word, money, spec_words)
    return ("product_search", " ".join(text.split())), cat, spec


def follow_fact(rng, spec):
    n = rng.choice(ORDINALS)
    return ("product_fact", rng.choice(["What about the %s of the %s one?",
                                        "Tell me the %s of the %s one"]) % (spec, n))


def follow_delivery(rng):
    pin = rng.choice(PINCODES)
    return ("product_fact", rng.choice(["Can the %s one be delivered to %s?",
                                        "How fast can you deliver the %s one to %s?"]) % (
        rng.choice(ORDINALS), pin))


def follow_compare(rng):
    return ("comparison", rng.choice(["Compare the two cheapest", "Compare the first two",
                                      "Which of the first two is better?"]))


def conversation(rng, kind, cats, orders):
    if kind == "search":
        return [search_turn(rng, cats)[0]]
    if kind in ("search_compare", "search_fact", "search_delivery", "search_compare_delivery"):
        first, _, spec = search_turn(rng, cats)
        if kind == "search_compare":
            return [first, follow_compare(rng)]
        if kind == "search_fact":
            return [first, follow_fact(rng, spec)]
        if kind == "search_delivery":
            return [first, follow_delivery(rng)]
        return [first, follow_compare(rng), follow_delivery(rng)]
    if kind == "compare_direct":
        return [search_turn(rng, cats, compare=True)[0]]
    if kind == "policy":
        turns = [("policy", rng.choice(POLICY_QUESTIONS))]
        if rng.random() < 0.3:
            turns.append(("policy", rng.choice(POLICY_FOLLOWUPS)))
        return turns
    if kind == "order":
        oid = rng.choice(orders) if rng.random() < 0.9 else "%04d-%04d" % (
            rng.randint(1, 9999), rng.randint(0, 9999))
        turns = [("order_status", rng.choice(ORDER_QUESTIONS).format(id=oid))]
        if rng.random() < 0.25:
            turns.append(("policy", "Can I return it if I don't like it?"))
        return turns
    if kind == "chitchat":
        return [("chitchat", rng.choice(CHITCHAT))]
    if kind == "chitchat_search":
        first, _, spec = search_turn(rng, cats)
        return [("chitchat", rng.choice(CHITCHAT)), first, follow_fact(rng, spec)]
    return [("other", rng.choice(OTHER))]


def build_mix(rng, n, catalog_path):
    """n conversations: [{"kind", "turns": [(label, text), ...]}], the same for the same rng."""
    cats, orders = load_catalog(catalog_path)
    names = [k for k, _ in KINDS]
    weights = [w for _, w in KINDS]
    out = []
    for i in range(n):
        kind = rng.choices(names, weights)[0]
        out.append({"i": i, "kind": kind, "turns": conversation(rng, kind, cats, orders)})
    return out


def default_catalog(root):
    return os.path.join(root, "loadtest", "sim", "catalog", "catalog.jsonl")
