#!/usr/bin/env python3
"""gen_paraphrases.py - writes the semantic cache's paraphrase set (loadtest/semcache/
paraphrases.jsonl): pairs of shopper queries that must share a cached answer (paraphrases) and
pairs that must not (near-misses that differ in a number, a product, a brand or a negation).

    python3 loadtest/semcache/gen_paraphrases.py [--seed 13] [--out PATH]

One random.Random(seed) drives every choice, so running it again gives the same bytes (a test
checks it). Each line: {"id", "query_type", "class", "expect", "a", "b"} with class one of
paraphrase, number, product, brand, negation and expect "hit" (paraphrase) or "miss". The first
query (a) is the one whose answer is cached; b is the one that arrives later.

Near-misses are of two kinds: the same words with one slot changed (the hardest for an
embedding: most words agree) and a rewording with one slot changed. A tenth of the brand
near-misses are all lower case on both sides (people type that way), which no rule on
capitalisation can catch: the guard then has only the embedding's distance to go by.

Products and brands are common names of the Indian market, unrelated to the simulator's catalog;
nothing in the server may depend on them.
"""

import argparse
import json
import os
import random

BRANDS = ["Samsung", "Xiaomi", "Apple", "OnePlus", "Realme", "Vivo", "Oppo", "Motorola",
          "Nokia", "Google", "Sony", "Boat", "JBL", "Lenovo", "HP", "Dell", "Asus", "Acer",
          "Nike", "Adidas", "Puma", "Reebok", "Skechers", "Bata"]
CATS = {"phone": ["phone", "phones", "smartphone", "smartphones", "mobile", "mobiles"],
        "laptop": ["laptop", "laptops", "notebook", "notebooks"],
        "headphones": ["headphones", "earphones", "earbuds", "headset"],
        "shoes": ["shoes", "sneakers", "running shoes"]}
CAT_BRANDS = {"phone": ["Samsung", "Xiaomi", "Apple", "OnePlus", "Realme", "Vivo", "Oppo",
                        "Motorola", "Nokia", "Google"],
              "laptop": ["Lenovo", "HP", "Dell", "Asus", "Acer", "Apple"],
              "headphones": ["Sony", "Boat", "JBL", "Samsung", "OnePlus"],
              "shoes": ["Nike", "Adidas", "Puma", "Reebok", "Skechers", "Bata"]}
FEATURES = {"phone": ["a big battery", "a good camera", "5G", "fast charging", "an AMOLED display"],
            "laptop": ["a backlit keyboard", "16GB RAM", "an SSD", "a touchscreen",
                       "long battery life"],
            "headphones": ["noise cancellation", "a microphone", "long battery life",
                           "water resistance"],
            "shoes": ["ankle support", "memory foam", "waterproofing", "arch support"]}
PRODUCTS = [("Samsung", "Galaxy S23", "Galaxy S24"), ("Samsung", "Galaxy A54", "Galaxy A35"),
            ("Xiaomi", "Redmi Note 13", "Redmi Note 12"), ("Apple", "iPhone 15", "iPhone 14"),
            ("Apple", "MacBook Air M2", "MacBook Air M3"), ("OnePlus", "Nord CE 3", "Nord CE 4"),
            ("OnePlus", "12R", "11R"), ("Realme", "Narzo 60", "Narzo 70"),
            ("Google", "Pixel 8", "Pixel 7a"), ("Sony", "WH-1000XM5", "WH-1000XM4"),
            ("Boat", "Airdopes 141", "Airdopes 161"), ("JBL", "Tune 760NC", "Tune 770NC"),
            ("Lenovo", "IdeaPad Slim 3", "IdeaPad Slim 5"), ("Dell", "Inspiron 15", "Inspiron 14"),
            ("HP", "Pavilion 14", "Pavilion 15"), ("Nike", "Pegasus 40", "Pegasus 41"),
            ("Adidas", "Ultraboost 22", "Ultraboost 23"), ("Asus", "Vivobook 15", "Vivobook 16")]
SPECS = [("battery", ["what is the battery of the {p}", "how big is the battery on the {p}?",
                      "{p} battery capacity", "tell me the battery size of {p}",
                      "How long does the {p} battery last"]),
         ("weight", ["how heavy is the {p}", "what does the {p} weigh?", "{p} weight",
                     "what is the weight of the {p}"]),
         ("warranty", ["what warranty does the {p} have", "{p} warranty period",
                       "How long is the warranty on the {p}?", "is there a warranty on the {p}"]),
         ("display", ["what is the screen size of the {p}", "how big is the {p} display?",
                      "{p} display size", "tell me about the display of the {p}"]),
         ("price", ["what is the price of the {p}", "how much does the {p} cost?", "{p} price",
                    "price of {p} today", "How much is the {p}"])]
POLICIES = [("return", ["what is your return policy", "how do returns work?",
                        "can I return a product", "Tell me about the return policy",
                        "what is the returns policy", "how can i return an item"]),
            ("refund", ["how do refunds work", "when will I get my refund?",
                        "what is the refund policy", "how long does a refund take",
                        "refund policy please"]),
            ("warranty", ["what is the warranty policy", "how does the warranty work?",
                          "tell me about warranty", "what does the warranty cover"]),
            ("cancellation", ["how do I cancel an order", "what is the cancellation policy",
                              "can I cancel my order?", "order cancellation rules"]),
            ("delivery", ["how long does delivery take", "what are the delivery times?",
                          "when will my order be delivered", "shipping time please"]),
            ("cod", ["do you have cash on delivery", "is COD available?",
                     "can I pay cash on delivery", "cash on delivery option"]),
            ("emi", ["do you offer EMI", "is EMI available?", "can I pay in EMIs",
                     "what are the EMI options"])]
# policy questions with a number in them (days, amounts) and their negated forms
POLICY_NUM = [("can I return a product after {n} days", "is a return possible {n} days after "
               "delivery?", [7, 10, 15, 30]),
              ("is delivery free on orders above {n} rupees", "do orders over Rs {n} ship free?",
               [499, 999, 1499]),
              ("can I cancel an order {n} hours after placing it",
               "is cancellation allowed {n} hours after ordering?", [2, 12, 24, 48])]
POLICY_NEG = [("can I return an item that is damaged", "can I return an item that is not damaged"),
              ("can I return a product with the tags removed",
               "can I return a product without the tags removed"),
              ("is cash on delivery available for orders with a coupon",
               "is cash on delivery available for orders without a coupon"),
              ("do you deliver on Sundays", "do you not deliver on Sundays"),
              ("is the warranty valid with the original bill",
               "is the warranty valid without the original bill")]


def budget_forms(n):
    """Ways to write a budget of n rupees."""
    forms = ["%d" % n, "{:,}".format(n), "₹%d" % n, "Rs %d" % n]
    if n % 1000 == 0:
        forms.append("%dk" % (n // 1000))
    return forms


SEARCH_A = ["best {cat} under {n} with {feat}", "{brand} {cat} under {n} with {feat}",
            "show me {cat} below {n} that have {feat}", "{cat} with {feat} under {n}"]
SEARCH_B = ["Which {cat} below {n} have {feat}?", "good {cat} within {n} with {feat}",
            "{cat} under {n} having {feat}", "suggest {cat} with {feat} for less than {n}",
            "looking for {cat} with {feat}, budget {n}", "top {cat} with {feat} under {n}"]


def pick_search(rng):
    cat = rng.choice(list(CATS))
    return {"cat": cat, "brand": rng.choice(CAT_BRANDS[cat]), "feat": rng.choice(FEATURES[cat]),
            "n": rng.choice([5000, 10000, 15000, 20000, 25000, 30000, 40000, 50000, 60000,
                             80000]) if cat in ("phone", "laptop") else
            rng.choice([1000, 1500, 2000, 3000, 5000, 8000])}


def render_search(rng, tpl, s, keep_brand):
    words = rng.choice(CATS[s["cat"]])
    t = tpl if keep_brand or "{brand}" not in tpl else tpl.replace("{brand} ", "")
    if keep_brand and "{brand}" not in t:
        t = t.replace("{cat}", "{brand} {cat}", 1)
    return t.format(cat=words, n=rng.choice(budget_forms(s["n"])), feat=s["feat"],
                    brand=s["brand"])


def cap(rng, text):
    r = rng.random()
    if r < 0.2:
        return text.lower()
    if r < 0.5:
        return text[0].upper() + text[1:]
    return text


def search_pairs(rng, out):
    for _ in range(60):
        s = pick_search(rng)
        brand = rng.random() < 0.5
        a = render_search(rng, rng.choice(SEARCH_A), s, brand)
        out.append(("product_search", "paraphrase", a,
                    cap(rng, render_search(rng, rng.choice(SEARCH_B), s, brand))))
    for _ in range(24):
        s = pick_search(rng)
        brand = rng.random() < 0.5
        a_tpl = rng.choice(SEARCH_A)
        a = render_search(rng, a_tpl, s, brand)
        t = dict(s)
        t["n"] = rng.choice([s["n"] * 2, s["n"] + 5000, s["n"] // 2, s["n"] + 1000])
        same = rng.random() < 0.5
        b = render_search(rng, a_tpl if same else rng.choice(SEARCH_B), t, brand)
        out.append(("product_search", "number", a, b))
    for i in range(24):
        s = pick_search(rng)
        a_tpl = "{brand} {cat} under {n} with {feat}"
        a = render_search(rng, a_tpl, s, True)
        t = dict(s)
        t["brand"] = rng.choice([b for b in CAT_BRANDS[s["cat"]] if b != s["brand"]])
        same = rng.random() < 0.5
        b = render_search(rng, a_tpl if same else rng.choice(SEARCH_B), t, True)
        if i % 8 == 0:  # all lower case on both sides
            a, b = a.lower(), b.lower()
        out.append(("product_search", "brand", a, b))
    for _ in range(24):
        s = pick_search(rng)
        brand = rng.random() < 0.5
        a = render_search(rng, "{cat} with {feat} under {n}", s, brand)
        b = a.replace(" with ", " without ", 1)
        if rng.random() < 0.5:
            b = render_search(rng, "{cat} without {feat} under {n}", s, brand)
        out.append(("product_search", "negation", a, b))


def fact_pairs(rng, out):
    for _ in range(50):
        brand, p, _ = rng.choice(PRODUCTS)
        spec, forms = rng.choice(SPECS)
        fa, fb = rng.sample(forms, 2)
        name = brand + " " + p if rng.random() < 0.6 else p
        name_b = name if rng.random() < 0.7 else (p if name != p else brand + " " + p)
        out.append(("product_fact", "paraphrase", fa.format(p=name),
                    cap(rng, fb.format(p=name_b))))
    for _ in range(30):
        brand, p, q = rng.choice(PRODUCTS)
        spec, forms = rng.choice(SPECS)
        fa = rng.choice(forms)
        fb = fa if rng.random() < 0.6 else rng.choice(forms)
        pre = brand + " " if rng.random() < 0.6 else ""
        out.append(("product_fact", "product", fa.format(p=pre + p), fb.format(p=pre + q)))
    for _ in range(12):
        brand, p, _ = rng.choice(PRODUCTS)
        a = rng.choice(["is the {p} waterproof", "does the {p} support 5G",
                        "does the {p} have a headphone jack", "is the {p} good for gaming"])
        b = (a.replace("is the {p}", "is the {p} not", 1) if a.startswith("is")
             else a.replace("does the {p}", "does the {p} not", 1))
        out.append(("product_fact", "negation", a.format(p=brand + " " + p),
                    b.format(p=brand + " " + p)))


def policy_pairs(rng, out):
    for _ in range(50):
        topic, forms = rng.choice(POLICIES)
        a, b = rng.sample(forms, 2)
        out.append(("policy", "paraphrase", a, cap(rng, b)))
    for _ in range(16):
        fa, fb, ns = rng.choice(POLICY_NUM)
        n, m = rng.sample(ns, 2)
        a = fa.format(n=n)
        b = (fa if rng.random() < 0.5 else fb).format(n=m)
        out.append(("policy", "number", a, b))
    for _ in range(10):
        fa, fb, ns = rng.choice(POLICY_NUM)
        n = rng.choice(ns)
        out.append(("policy", "paraphrase", fa.format(n=n), cap(rng, fb.format(n=n))))
    for a, b in POLICY_NEG:
        out.append(("policy", "negation", a, b))
        out.append(("policy", "negation", b, a))


def comparison_pairs(rng, out):
    forms_a = ["compare the {x} and the {y}", "{x} vs {y}", "which is better, {x} or {y}?"]
    forms_b = ["{x} or {y}: which one should I buy?", "difference between {x} and {y}",
               "compare {x} with {y}", "{x} versus {y} comparison"]
    for _ in range(20):
        (b1, p1, _), (b2, p2, _) = rng.sample(PRODUCTS, 2)
        x, y = b1 + " " + p1, b2 + " " + p2
        out.append(("comparison", "paraphrase", rng.choice(forms_a).format(x=x, y=y),
                    cap(rng, rng.choice(forms_b).format(x=x, y=y))))
    for _ in range(12):
        (b1, p1, q1), (b2, p2, _) = rng.sample(PRODUCTS, 2)
        fa = rng.choice(forms_a)
        out.append(("comparison", "product", fa.format(x=b1 + " " + p1, y=b2 + " " + p2),
                    fa.format(x=b1 + " " + q1, y=b2 + " " + p2)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "paraphrases.jsonl"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    pairs = []
    search_pairs(rng, pairs)
    fact_pairs(rng, pairs)
    policy_pairs(rng, pairs)
    comparison_pairs(rng, pairs)
    seen, lines = set(), []
    for qt, cls, a, b in pairs:
        if a == b or (a, b) in seen:
            continue
        seen.add((a, b))
        lines.append(json.dumps({"id": "p%04d" % (len(lines) + 1), "query_type": qt,
                                 "class": cls, "expect": "hit" if cls == "paraphrase" else "miss",
                                 "a": a, "b": b}, ensure_ascii=False))
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    counts = {}
    for qt, cls, _, _ in pairs:
        counts[cls] = counts.get(cls, 0) + 1
    print("%d pairs -> %s %s" % (len(lines), args.out, counts))


if __name__ == "__main__":
    main()
