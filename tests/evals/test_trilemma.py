#!/usr/bin/env python3
"""test_trilemma.py - the pure parts of the trilemma report (ctest evals_trilemma, label unit):
the Pareto frontier, the levers' deltas, the goal, the traffic mix (seeded, Zipf-like repeats,
follow-ups), the table and the HTML (escaped, self-contained), a configuration's server.ini and
sim.args. Run: python3 tests/evals/test_trilemma.py [SOURCE_DIR]"""

import os
import re
import shutil
import sys
import tempfile
import unittest

SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
sys.path.insert(0, os.path.join(SRC, "evals", "tool"))
import serve  # noqa: E402
import traffic  # noqa: E402
import trilemma as T  # noqa: E402


def row(name, cost, ft99, quality, ft50=None, total50=None, total99=None):
    return {"name": name, "currency": "INR", "cost_per_conversation_micros": cost,
            "latency_ms": {"first_token_p50": ft50, "first_token_p99": ft99,
                           "total_p50": total50, "total_p99": total99},
            "quality": dict(quality)}


class Frontier(unittest.TestCase):
    MIN, MAX = -1, +1

    def test_dominated_points_are_off(self):
        pts = [(10, 100, 90),  # A: B is as good everywhere and cheaper
               (1, 100, 90),  # B
               (1, 50, 80),  # C: faster than B, worse quality: both stay
               (5, 200, 70)]  # D: worse than C on every axis
        self.assertEqual(T.pareto(pts, (self.MIN, self.MIN, self.MAX)),
                         [False, True, True, False])

    def test_equal_points_are_all_on(self):
        self.assertEqual(T.pareto([(1, 2, 3), (1, 2, 3)], (-1, -1, 1)), [True, True])

    def test_missing_value_is_the_worst(self):
        # same cost and quality; the one without a latency is dominated by the one with it
        self.assertEqual(T.pareto([(1, None, 5), (1, 300, 5)], (-1, -1, 1)), [False, True])
        # but alone it is on the frontier
        self.assertEqual(T.pareto([(1, None, 5)], (-1, -1, 1)), [True])

    def test_one_axis(self):
        self.assertEqual(T.pareto([(3,), (1,), (2,)], (-1,)), [False, True, False])
        self.assertEqual(T.pareto([(3,), (1,), (3,)], (1,)), [True, False, True])


class Levers(unittest.TestCase):
    dims = ["factual_accuracy", "format"]

    def test_delta_by_hand(self):
        a = row("a", 1000, 500, {"factual_accuracy": 0.95, "format": 0.90}, ft50=300,
                total50=1000, total99=2000)
        b = row("b", 400, 505, {"factual_accuracy": 0.94, "format": 0.80}, ft50=300,
                total50=1000, total99=2000)
        a["headline"], b["headline"] = 92.5, 87.0
        d = T.lever_delta(a, b, self.dims)
        self.assertEqual((d["from"], d["to"]), ("a", "b"))
        self.assertAlmostEqual(d["cost"]["ratio"], 0.4)
        self.assertAlmostEqual(d["cost"]["pct"], -60.0)
        self.assertEqual(d["latency_ms"]["first_token_p99"]["diff"], 5)
        self.assertAlmostEqual(d["quality_points"], -5.5)
        # 0.01 is below the listing threshold (0.02), -0.10 is listed
        self.assertEqual(list(d["dims"]), ["format"])
        self.assertAlmostEqual(d["dims"]["format"], -0.10)
        # +5 ms on 500 is neither 20 ms nor 10 %: latency did not move
        self.assertEqual(d["moved"], ["cost", "quality"])

    def test_latency_moves_by_both_thresholds(self):
        q = {"factual_accuracy": 1.0, "format": 1.0}
        a, b = row("a", 100, 100, q), row("b", 103, 125, q)
        a["headline"] = b["headline"] = 100.0
        # +25 ms on 100 (25 %, >= 20 ms): moved; cost +3 % did not
        self.assertEqual(T.lever_delta(a, b, self.dims)["moved"], ["latency"])
        # +15 ms on 50 is 30 % but under 20 ms: not moved
        a, b = row("a", 100, 50, q), row("b", 100, 65, q)
        a["headline"] = b["headline"] = 100.0
        self.assertEqual(T.lever_delta(a, b, self.dims)["moved"], [])
        # +40 ms on 2000 is 20 ms but 2 %: not moved
        a, b = row("a", 100, 2000, q), row("b", 100, 2040, q)
        a["headline"] = b["headline"] = 100.0
        self.assertEqual(T.lever_delta(a, b, self.dims)["moved"], [])

    def test_levers_are_consecutive_steps(self):
        q = {"factual_accuracy": 1.0, "format": 1.0}
        rows = [row("01", 100, 10, q), row("02", 50, 10, q), row("03", 10, 10, q)]
        for r in rows:
            r["headline"] = 100.0
        lv = T.levers(rows, self.dims)
        self.assertEqual([(x["from"], x["to"]) for x in lv], [("01", "02"), ("02", "03")])
        self.assertAlmostEqual(lv[1]["cost"]["pct"], -80.0)

    def test_assemble_ratio_headline_frontier(self):
        rows = [row("naive", 120000, 900, {"factual_accuracy": 1.0, "format": 1.0,
                                           "relevance": 0.5}),
                row("worse", 20000, 950, {"factual_accuracy": 0.90, "format": 0.90}),
                row("tuned", 10000, 800, {"factual_accuracy": 0.99, "format": 0.98})]
        rep = T.assemble(rows, {})
        # relevance is not in every row: the headline averages the common dimensions only
        self.assertEqual(rep["dims"], ["factual_accuracy", "format"])
        self.assertAlmostEqual(rows[0]["headline"], 100.0)
        self.assertAlmostEqual(rows[2]["headline"], 98.5)
        self.assertAlmostEqual(rows[2]["times_cheaper_than_naive"], 12.0)
        self.assertEqual([r["frontier"] for r in rows], [True, False, True])
        g = rep["goal"]
        self.assertEqual((g["naive"], g["tuned"]), ("naive", "tuned"))
        self.assertTrue(g["met"], g)
        self.assertAlmostEqual(g["quality_points"], -1.5)

    def test_goal_not_met_names_what(self):
        q0 = {"factual_accuracy": 1.0, "format": 1.0}
        q1 = {"factual_accuracy": 1.0, "format": 0.97}  # -3 points on one dimension
        rows = [row("naive", 100000, 500, q0), row("tuned", 12500, 600, q1)]
        g = T.assemble(rows, {})["goal"]
        self.assertEqual(g["checks"], {"cost": False, "quality": False, "first_token_p99": False})
        self.assertAlmostEqual(g["times_cheaper"], 8.0)
        self.assertEqual(list(g["dims_worse"]), ["format"])
        self.assertAlmostEqual(g["dims_worse"]["format"], -3.0)
        self.assertFalse(g["met"])
        self.assertIsNone(T.goal(rows[:1], ["format"]))
        # a tuned configuration that costs nothing has no ratio, and is cheap enough
        g = T.assemble([row("naive", 100, 500, q0), row("tuned", 0, 400, q0)], {})["goal"]
        self.assertIsNone(g["times_cheaper"])
        self.assertTrue(g["met"], g)


CORPUS = ("# a comment\n\nsearch\tShow me running shoes\nsearch\tAny kurtas in navy?\n"
          "returns\tHow do I return a saree?\nreturns\tWhat is the refund time?\n"
          "orders\tWhere is my order 1234-5678?\n")


class Capacity(unittest.TestCase):
    cap = {"model": "openai/sim-frontier", "tpm": "400000", "hourly_price": "4.00",
           "currency": "USD"}

    def test_price_per_token_by_hand(self):
        # $4/h x 84 = 336 INR/h over 400000 x 60 x 0.8 = 19.2M tokens: 17.5 micro-INR a token
        self.assertAlmostEqual(T.capacity_cost_micros(1000, self.cap, 0.8, 84.0), 17500.0)
        # at full use a token costs 0.8 of that; in INR no exchange
        self.assertAlmostEqual(T.capacity_cost_micros(1000, self.cap, 1.0, 84.0), 14000.0)
        inr = dict(self.cap, currency="INR", hourly_price="336")
        self.assertAlmostEqual(T.capacity_cost_micros(1000, inr, 1.0, 84.0), 14000.0)
        self.assertEqual(T.capacity_cost_micros(0, self.cap, 0.8, 84.0), 0.0)
        self.assertEqual(T.capacity_cost_micros(10, dict(self.cap, hourly_price="0"), 0.8, 84), 0)
        with self.assertRaises(ValueError):
            T.capacity_cost_micros(10, self.cap, 0, 84.0)

    def test_provisioned_tokens_of_a_stored_conversation(self):
        conv = {"turns": [
            {"llm_calls": [
                {"provider": "openai", "model": "sim-cheap", "tier": "standard",
                 "usage": {"input_tokens": 100, "output_tokens": 10}},
                {"provider": "openai", "model": "sim-frontier", "tier": "provisioned",
                 "usage": {"input_tokens": 200, "cached_input_tokens": 150,
                           "output_tokens": 40}}]},
            {"llm_calls": [
                {"provider": "openai", "model": "sim-frontier", "tier": "standard",
                 "usage": {"input_tokens": 999, "output_tokens": 99}},  # overflowed: PAYG
                {"provider": "openai", "model": "sim-frontier", "tier": "provisioned",
                 "usage": {"input_tokens": 60, "output_tokens": 0}}]}]}
        caps = {"frontier-ptu": self.cap}
        self.assertEqual(traffic.provisioned_tokens(conv, caps), {"frontier-ptu": 300})
        self.assertEqual(traffic.provisioned_tokens(conv, {}), {})
        self.assertEqual(traffic.provisioned_tokens({}, caps), {})


class Traffic(unittest.TestCase):
    corpus = traffic.parse_corpus(CORPUS)

    def test_parse(self):
        self.assertEqual(sorted(self.corpus), ["orders", "returns", "search"])
        self.assertEqual(self.corpus["search"], ["Show me running shoes", "Any kurtas in navy?"])
        with self.assertRaisesRegex(traffic.BadCorpus, r"x\.txt:2: expected CATEGORY<TAB>QUERY"):
            traffic.parse_corpus("search\tok\nno tab here\n", "x.txt")
        with self.assertRaisesRegex(traffic.BadCorpus, r":1: expected"):
            traffic.parse_corpus("search\t  \n")
        with self.assertRaisesRegex(traffic.BadCorpus, "no queries"):
            traffic.parse_corpus("# nothing\n")

    def test_same_seed_same_mix(self):
        a = traffic.build_mix(self.corpus, 50, 7)
        self.assertEqual(a, traffic.build_mix(self.corpus, 50, 7))
        self.assertNotEqual(a, traffic.build_mix(self.corpus, 50, 8))
        # a longer mix starts with the shorter one (warm-up conversations are its prefix)
        self.assertEqual(traffic.build_mix(self.corpus, 80, 7)[:50], a)
        self.assertEqual(traffic.build_mix(self.corpus, 0, 7), [])
        with self.assertRaises(ValueError):
            traffic.build_mix(self.corpus, -1, 7)

    def test_shape_of_conversations(self):
        queries = {q for qs in self.corpus.values() for q in qs}
        followups = {f.format(pin=p) for f in traffic.SHOWN_FOLLOWUPS for p in traffic.PINCODES}
        mix = traffic.build_mix(self.corpus, 400, 3)
        self.assertEqual([c["i"] for c in mix], list(range(400)))
        for c in mix:
            self.assertTrue(1 <= len(c["turns"]) <= len(traffic.CONTINUE) + 1, c)
            self.assertIn(c["turns"][0], self.corpus[c["category"]])
            for t in c["turns"][1:]:
                self.assertTrue(t in queries or t in followups or t in traffic.CLOSERS, t)
                if t in followups:  # a reference to products shown: only after a search
                    self.assertIn(c["category"], traffic.SHOWS_PRODUCTS)
                elif t in queries:  # another question of the same kind
                    self.assertIn(t, self.corpus[c["category"]])
            # a thank-you ends the conversation
            for t in c["turns"][:-1]:
                self.assertNotIn(t, traffic.CLOSERS)
        self.assertTrue(any(len(c["turns"]) > 1 for c in mix))

    def test_popularity_is_skewed(self):
        # 5 questions, Zipf s = 1.1: the most asked opening is asked far more than the least
        mix = traffic.build_mix(self.corpus, 2000, 11)
        counts = {}
        for c in mix:
            counts[c["turns"][0]] = counts.get(c["turns"][0], 0) + 1
        top, bottom = max(counts.values()), min(counts.values())
        self.assertEqual(len(counts), 5)
        self.assertGreater(top, 3 * bottom)

    def test_mix_stats_by_hand(self):
        mix = [{"turns": ["a", "b"]}, {"turns": ["a"]}, {"turns": ["c", "b", "a"]}]
        s = traffic.mix_stats(mix)
        # turns 6; repeats: conv 2 "a", conv 3 "b" and "a" -> 3; openings: "a" once of 3
        self.assertEqual((s["conversations"], s["turns"], s["distinct_texts"]), (3, 6, 3))
        self.assertAlmostEqual(s["repeat_share"], 0.5)
        self.assertAlmostEqual(s["opening_repeat_share"], 1 / 3)
        self.assertEqual(traffic.mix_stats([])["repeat_share"], None)

    def test_summarize_by_hand(self):
        def t(cost, ft, total, cache=None, flags=()):
            return {"cost_micros": cost, "currency": "INR", "first_token_ms": ft,
                    "total_ms": total, "client_first_delta_ms": ft, "client_total_ms": total,
                    "cache": cache, "flags": list(flags), "finish_reason": "stop",
                    "error": None, "input_tokens": 10, "cached_input_tokens": 0,
                    "output_tokens": 5}
        convs = [{"turns": [t(100, 10, 100), t(300, 30, 300, flags=["escalated:empty"])]},
                 {"turns": [t(0, None, 5, cache="exact")]}]
        s = traffic.summarize(convs)
        self.assertEqual(s["cost_per_conversation_micros"], 200)
        self.assertEqual(s["latency_ms"]["first_token_p50"], 20)  # of 10 and 30 (None skipped)
        self.assertEqual(s["latency_ms"]["total_p50"], 100)
        self.assertEqual((s["cache_hits"], s["escalations"], s["turns"]), ({"exact": 1}, 1, 3))
        self.assertEqual(s["tokens"]["input_tokens"], 30)


class Rendering(unittest.TestCase):
    EVIL = '<script>alert("x")</script> | &amp;'

    def report(self):
        rows = [row(self.EVIL, 100000, 900, {"factual_accuracy": 1.0, "format": 1.0}, ft50=400,
                    total50=1500, total99=4000),
                row("02-context", 50000, 700, {"factual_accuracy": 0.99, "format": 1.0},
                    ft50=380, total50=1400, total99=3900),
                row("03-zero", 0, 20, {"factual_accuracy": 0.5, "format": 0.5}, ft50=5)]
        return T.assemble(rows, {"notes": ["a note with <b>markup</b>"], "command": "x <y>"})

    def test_markdown_table(self):
        rep = self.report()
        md = T.table_md(rep)
        lines = md.splitlines()
        self.assertEqual(len(lines), 2 + 3)
        cols = len(re.findall(r"(?<!\\)\|", lines[0]))
        for ln in lines:  # the name's "|" is escaped: every row has the header's columns
            self.assertEqual(len(re.findall(r"(?<!\\)\|", ln)), cols, ln)
        self.assertIn("₹0.1000", lines[2])
        self.assertIn("2.0×", lines[3])
        self.assertIn("| 400 / 900 |", lines[2])
        self.assertIn("| free |", lines[4])  # costs nothing: no ratio
        self.assertIn("**yes**", lines[4])
        full = T.markdown(rep)
        self.assertIn("## Levers", full)
        self.assertIn("## The traffic in detail", full)
        self.assertIn("-50.0 %", full)

    def test_html_is_escaped_and_self_contained(self):
        h = T.html_report(self.report())
        self.assertNotIn("<script", h)
        self.assertNotIn("<b>markup", h)
        self.assertIn("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;", h)
        self.assertEqual(h.count("<svg"), 2)
        # nothing loaded from elsewhere: the only URL is the SVG namespace
        urls = set(re.findall(r"https?://[^\s\"'<>]+", h))
        self.assertEqual(urls, {"http://www.w3.org/2000/svg"})
        self.assertNotRegex(h, r"\bon[a-z]+\s*=")  # no event handlers
        self.assertIn("x &lt;y&gt;", h)

    def test_svg_single_point_and_zero_cost(self):
        svg = T.scatter_svg([{"x": 0.01, "y": 90.0, "r": 5, "label": "a&b", "on": True},
                             {"x": 0, "y": None, "r": 5, "label": "skipped", "on": False}],
                            "x", "y", "t")
        self.assertIn("a&amp;b", svg)
        self.assertNotIn("skipped", svg)
        self.assertEqual(svg.count("<circle"), 1)

    def test_labels_do_not_overlap(self):
        # two configurations at the same point: the second label goes a line down; a third
        # far away stays where it is
        self.assertEqual(T.label_positions([(100, 50, "01-naive"), (100, 50, "02-context"),
                                            (400, 50, "03")], line=13),
                         [(100, 50), (100, 63), (400, 50)])
        # a label overlapping both stacked ones moves below them
        self.assertEqual(T.label_positions([(0, 0, "aa"), (0, 13, "bb"), (5, 0, "cc")]),
                         [(0, 0), (0, 13), (5, 26)])

    def test_ticks(self):
        self.assertEqual(T._log_ticks(0.003, 0.2), [0.005, 0.01, 0.02, 0.05, 0.1, 0.2])
        self.assertEqual(T._lin_ticks(0, 100), [0, 20, 40, 60, 80, 100])


class ConfigFolder(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.d)

    def write(self, name, text):
        with open(os.path.join(self.d, name), "w") as f:
            f.write(text)

    def test_server_ini(self):
        self.assertEqual(serve.read_server_ini(self.d), {})
        self.write("server.ini", "; c\n[cache]\nexact = off ; inline\nembeddings_url = {sim}/v1/e"
                   "\nwords_file = ../words.json\n\n[model]\nhistory_messages = 64\n")
        got = serve.read_server_ini(self.d, "http://127.0.0.1:9")
        self.assertEqual(got["cache"]["exact"], "off")
        self.assertEqual(got["cache"]["embeddings_url"], "http://127.0.0.1:9/v1/e")
        self.assertEqual(got["cache"]["words_file"],
                         os.path.normpath(os.path.join(self.d, "..", "words.json")))
        self.assertEqual(got["model"], {"history_messages": "64"})
        # without the simulator's URL (describing the configuration) {sim} stays
        self.assertEqual(serve.read_server_ini(self.d)["cache"]["embeddings_url"], "{sim}/v1/e")

    def test_bad_server_ini(self):
        self.write("server.ini", "[cache]\nexact = off\nexact = on\n")
        with self.assertRaisesRegex(serve.BadConfig, "server.ini: .*exact"):
            serve.read_server_ini(self.d)
        self.write("server.ini", "exact = off\n")
        with self.assertRaisesRegex(serve.BadConfig, "server.ini"):
            serve.read_server_ini(self.d)
        # a Stack refuses it before starting anything
        self.write("agents.ini", "")
        with self.assertRaises(serve.BadConfig):
            serve.Stack(SRC, "/nonexistent", self.d)

    def test_sim_args(self):
        self.assertEqual(serve.read_sim_args(self.d), [])
        self.write("sim.args", "# comment\n--cache-ttl-s 0\n--catalog-search 'ms=1-2'  # two\n")
        self.assertEqual(serve.read_sim_args(self.d),
                         ["--cache-ttl-s", "0", "--catalog-search", "ms=1-2"])
        self.write("sim.args", "--x 'unclosed\n")
        with self.assertRaisesRegex(serve.BadConfig, "sim.args:1"):
            serve.read_sim_args(self.d)

    def test_shipped_folders(self):
        root = os.path.join(SRC, "evals", "configs", "trilemma")
        dirs = T.config_dirs(SRC, None, True)
        self.assertEqual([os.path.basename(d) for d in dirs], sorted(os.listdir(root)))
        self.assertEqual(os.path.basename(dirs[0]), "01-naive")
        for d in dirs:
            serve.read_server_ini(d, "http://sim")
            serve.read_sim_args(d)
            cfg = serve.describe_config(d)  # every prompt path resolves
            self.assertEqual(len(cfg["prompt_versions"]), 3, d)
        naive = serve.describe_config(dirs[0])
        self.assertEqual({a["cascade"] for a in naive["agents"].values()}, {"openai/sim-frontier"})
        self.assertEqual({a["context"] for a in naive["agents"].values()}, {"full"})
        self.assertEqual({r["max_tokens"] for r in naive["routes"].values()}, {"4096"})
        self.assertEqual(naive["server"]["cache"], {"exact": "off", "tool": "off"})
        self.assertEqual(naive["sim_args"], ["--cache-ttl-s", "0"])
        # the tuned one: a provisioned deployment of the frontier model, and its simulator pool
        tuned = serve.describe_config(dirs[-1])
        self.assertEqual([c["model"] for c in tuned["capacities"].values()],
                         ["openai/sim-frontier"])
        name = list(tuned["capacities"])[0]
        self.assertTrue(any(a.startswith(name + ":") for a in tuned["sim_args"]), tuned)
        self.assertEqual(naive["capacities"], {})


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]], verbosity=1)
