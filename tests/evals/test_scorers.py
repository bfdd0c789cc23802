#!/usr/bin/env python3
"""test_scorers.py - trilemma-eval's scorers against values computed by hand (ctest evals_scorers,
label unit). Run: python3 tests/evals/test_scorers.py [SOURCE_DIR]"""

import math
import os
import sys
import unittest

SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
sys.path.insert(0, os.path.join(SRC, "evals", "tool"))
import scorers as S  # noqa: E402

LOG2_3 = 1.584962500721156  # log2(3), the discount of rank 2


class Retrieval(unittest.TestCase):
    grades = {"A": 3, "B": 2, "C": 1, "D": 0}

    def test_precision_at_k(self):
        self.assertAlmostEqual(S.precision_at_k(["C", "A", "X", "D"], self.grades, 3), 2 / 3)
        self.assertAlmostEqual(S.precision_at_k(["C", "A", "X", "D"], self.grades, 4), 2 / 4)
        # fewer shown than k: the share of what was shown
        self.assertAlmostEqual(S.precision_at_k(["A"], self.grades, 5), 1.0)
        self.assertIsNone(S.precision_at_k([], self.grades, 5))

    def test_ndcg_graded(self):
        # shown C(1), A(3), X(0): DCG = 1/1 + 7/log2(3) + 0 = 5.416508
        # ideal A(3), B(2), C(1): 7/1 + 3/log2(3) + 1/2 = 9.392789
        self.assertAlmostEqual(S.ndcg_at_k(["C", "A", "X"], self.grades, 3), 5.416508 / 9.392789,
                               places=5)
        self.assertAlmostEqual(S.ndcg_at_k(["C", "A", "X"], self.grades, 3), 0.576667, places=5)
        self.assertAlmostEqual(S.ndcg_at_k(["A", "B", "C"], self.grades, 3), 1.0)
        self.assertEqual(S.ndcg_at_k(["X", "Y"], self.grades, 3), 0.0)
        # k = 1: only the first position counts; B(2) against A(3): 3/7
        self.assertAlmostEqual(S.ndcg_at_k(["B", "A"], self.grades, 1), 3 / 7)
        self.assertIsNone(S.ndcg_at_k(["A"], {"D": 0}, 3))

    def test_tool_precision_recall(self):
        p, r = S.tool_precision_recall(["search_products", "get_product", "get_offers"],
                                       ["search_products", "get_product"])
        self.assertAlmostEqual(p, 2 / 3)
        self.assertAlmostEqual(r, 1.0)
        self.assertEqual(S.tool_precision_recall([], []), (1.0, 1.0))
        self.assertEqual(S.tool_precision_recall([], ["get_order"]), (1.0, 0.0))
        self.assertEqual(S.tool_precision_recall(["get_order"], []), (0.0, 1.0))


class Facts(unittest.TestCase):
    evidence = S.evidence_from([{"title": "Oppo A36", "price": 10999,
                                 "key_specs": ["7000 mAh", "8 GB / 128 GB"]}])

    def test_claims(self):
        c = S.extract_claims("**Oppo A36** costs ₹10,999 (Rs. 1,04,990 elsewhere) with 7000 mAh "
                             "and 12 GB RAM, 500/-")
        kinds = sorted((x["kind"], x["value"]) for x in c if x["kind"] != "title")
        self.assertEqual(kinds, [("price", 500.0), ("price", 10999.0), ("price", 104990.0),
                                 ("spec", 12.0), ("spec", 7000.0)])
        self.assertEqual([x["value"] for x in c if x["kind"] == "title"], ["Oppo A36"])

    def test_factual_score(self):
        s = S.factual_score("**Oppo A36** costs ₹10,999 with 7000 mAh and 12 GB RAM",
                            self.evidence)
        # four claims: title, price, 7000 mAh grounded; 12 GB not
        self.assertEqual(s["claims"], 4)
        self.assertAlmostEqual(s["accuracy"], 0.75)
        self.assertTrue(s["hallucination"])
        self.assertEqual(s["ungrounded"], ["12 GB"])
        # a wrong title (the cheap tier's wrong_product) and a price 12% low
        s = S.factual_score("**Oppo A37** at ₹9,679", self.evidence)
        self.assertEqual(s["accuracy"], 0.0)
        # a budget the user gave may be repeated
        s = S.factual_score("Nothing under ₹5,000, sorry.", self.evidence, "phones under 5000")
        self.assertEqual((s["accuracy"], s["hallucination"]), (1.0, False))
        self.assertEqual(S.factual_score("Hello! How can I help?", self.evidence)["accuracy"], 1.0)
        # shoppers' shorthands: 20k, 1.5 lakh
        s = S.factual_score("Under ₹20,000 and ₹1,50,000", self.evidence, "under 20k or 1.5 lakh")
        self.assertEqual(s["ungrounded"], [])

    def test_fact_recall_and_table(self):
        facts = [{"value": "₹10,999"}, {"value": "7000 mAh"}, {"value": "AMOLED"}]
        self.assertAlmostEqual(S.fact_recall("Oppo A36: ₹10999, 7000 mAh.", facts), 2 / 3)
        self.assertIsNone(S.fact_recall("x", []))
        self.assertTrue(S.has_table("| | A | B |\n|---|---|---|\n| Price | 1 | 2 |"))
        self.assertFalse(S.has_table("A costs 1 and B costs 2 | cheaper"))


class Verbosity(unittest.TestCase):
    def test_budget(self):
        self.assertEqual(S.verbosity_score("word " * 60, "short"), 1.0)
        self.assertAlmostEqual(S.verbosity_score("word " * 120, "short"), 0.5)
        self.assertEqual(S.verbosity_score("word " * 10, "short", "length"), 0.0)
        self.assertEqual(S.verbosity_score("", "long"), 0.0)


class Bootstrap(unittest.TestCase):
    def test_constant(self):
        self.assertEqual(S.bootstrap_mean_ci([0.7] * 5, S.new_rng(1)), (0.7, 0.7, 0.7))

    def test_two_points(self):
        # resample means of [0, 1] are 0, 0.5, 1 with chances 1/4, 1/2, 1/4: with 1,000 draws the
        # 2.5th percentile is 0 and the 97.5th is 1 (P(fewer than 25 zeros) is ~1e-30)
        self.assertEqual(S.bootstrap_mean_ci([0, 1], S.new_rng(7)), (0.5, 0.0, 1.0))

    def test_fixed_seed(self):
        xs = [0.1, 0.9, 0.4, 0.4, 1.0, 0.0, 0.7]
        a = S.bootstrap_mean_ci(xs, S.new_rng(42))
        self.assertEqual(a, S.bootstrap_mean_ci(xs, S.new_rng(42)))
        self.assertAlmostEqual(a[0], 3.5 / 7)
        self.assertLess(a[1], a[0])
        self.assertGreater(a[2], a[0])
        d = S.bootstrap_diff_ci([(1, 0), (1, 0), (1, 0), (None, 1)], S.new_rng(3))
        self.assertEqual(d, (-1.0, -1.0, -1.0))

    def test_percentile(self):
        self.assertEqual(S.percentile([1, 2, 3, 4], 50), 2.5)
        self.assertEqual(S.percentile([5], 90), 5)


class BradleyTerry(unittest.TestCase):
    def test_three_players_by_hand(self):
        # A-B 2:1, B-C 2:1, A-C 4:1. With p = (4, 2, 1): P(A>B) = 2/3, P(B>C) = 2/3,
        # P(A>C) = 4/5, so every player's expected wins equal its wins (A 6, B 3, C 2): the
        # maximum-likelihood strengths are 4:2:1, i.e. (2, 1, 0.5) at geometric mean 1.
        g = [("A", "B", 1)] * 2 + [("B", "A", 1)] + [("B", "C", 1)] * 2 + [("C", "B", 1)] + \
            [("A", "C", 1)] * 4 + [("C", "A", 1)]
        p = S.bradley_terry(g)
        self.assertAlmostEqual(p["A"], 2.0, places=6)
        self.assertAlmostEqual(p["B"], 1.0, places=6)
        self.assertAlmostEqual(p["C"], 0.5, places=6)

    def test_ties_are_half_wins(self):
        votes = [{"a": "X", "b": "Y", "choice": "tie"}, {"a": "X", "b": "Y", "choice": "a"},
                 {"a": "Y", "b": "X", "choice": "a"}]
        p = S.bradley_terry(S.votes_to_games(votes))
        self.assertAlmostEqual(p["X"], p["Y"])
        # X wins 1.5 of 2 games against Y: p_X / (p_X + p_Y) = 3/4, so p_X / p_Y = 3
        p = S.bradley_terry(S.votes_to_games(votes[:2]))
        self.assertAlmostEqual(p["X"] / p["Y"], 3.0, places=6)

    def test_bootstrap_cis_bracket_the_estimate(self):
        votes = [{"a": "X", "b": "Y", "choice": "a"}] * 6 + [{"a": "X", "b": "Y", "choice": "b"}] * 3
        r = S.bt_bootstrap(votes, S.new_rng(5), n=100)
        est, lo, hi = r["X"]
        self.assertAlmostEqual(est, math.log(math.sqrt(2)), places=5)  # 6:3 -> 2:1 -> sqrt 2
        self.assertLessEqual(lo, est)
        self.assertGreaterEqual(hi, est)
        self.assertEqual(r, S.bt_bootstrap(votes, S.new_rng(5), n=100))

    def test_agreement(self):
        votes = [{"item": 1, "voter": "u", "choice": "a"}, {"item": 1, "voter": "v", "choice": "a"},
                 {"item": 2, "voter": "u", "choice": "a"}, {"item": 2, "voter": "v", "choice": "b"},
                 {"item": 3, "voter": "u", "choice": "tie"}]
        a = S.voter_agreement(votes)
        # items 1 and 2 have two votes; one of two pairs agrees. Fleiss: P_bar = (1 + 0) / 2,
        # P_e = (3/4)^2 + (1/4)^2 = 0.625, kappa = (0.5 - 0.625) / 0.375 = -1/3
        self.assertEqual(a["items"], 2)
        self.assertAlmostEqual(a["pairwise"], 0.5)
        self.assertAlmostEqual(a["kappa"], -1 / 3)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]], verbosity=1)
