#!/usr/bin/python3
"""test_plan.py - trilemma-plan (loadtest/plan/, docs/planner.md) against a case computed by
hand (ctest plan_unit, label unit): the monthly costs, overflow shares and added latency of two
hybrid sizes, all pay-as-you-go and provisioned for the peak; the recommendation, with and
without a latency bound; the seed's 40 % claim; the streams bound; both inputs (a saved
/v1/traffic answer and a trilemma-load report); bad inputs (exit 2 and a message, nothing
written); the HTML page (well-formed, no script, every text escaped).

Run: python3 tests/plan/test_plan.py [SOURCE_DIR]

The hand-computed case (every number below is exact):

  unit: tpm 1000, hourly price 25 USD; PAYG 1000 USD per million input tokens (0.001 a token),
  2000 per million output tokens (0.002 a token); provisioned tokens cost 0; PAYG adds 90 ms.
  traffic, windows of 60 s:
     minute   input  output  tokens  PAYG cost
       m1       500     250     750  0.5 + 0.5 = 1
       m2      1000     500    1500  1.0 + 1.0 = 2
       m3         0       0       0  0
       m4      2000    1000    3000  2.0 + 2.0 = 4
  observed 4 minutes = 240 s; a month of 30 days = 2,592,000 s: scale 2,592,000 / 240 = 10,800.
  Tokens 5250; one unit per month: 25 x 720 h = 18,000.

  all PAYG (0 units):   (1 + 2 + 0 + 4) x 10,800 = 75,600; overflow 100 %, added 90 ms.
  peak: m4 needs 3000 / 1000 = 3 units: 3 x 18,000 = 54,000, no overflow.
  average: 5250 / 4 = 1312.5 tokens a minute -> ceil(1.3125) = 2 units.
  1 unit (1000 tokens a minute): served m1 1, m2 1000/1500 = 2/3, m4 1000/3000 = 1/3
     overflow cost (1/3) x 2 + (2/3) x 4 = 10/3; x 10,800 = 36,000; + 18,000 = 54,000
     overflow tokens 500 + 2000 = 2500 of 5250 = 10/21 (47.619 %); added 90 x 10/21 = 42.857 ms
  2 units (2000 tokens a minute): m4 served 2000/3000 = 2/3
     overflow cost (1/3) x 4 = 4/3; x 10,800 = 14,400; + 36,000 = 50,400
     overflow tokens 1000 of 5250 = 4/21 (19.048 %); added 90 x 4/21 = 17.143 ms
  recommendation: 2 units (50,400, the lowest): saves 1 - 50,400/75,600 = 1/3 (33.3 %) vs all
  PAYG, 1 - 50,400/54,000 = 1/15 (6.7 %) vs the peak. The seed's "> 40 %" at the average's size
  (2 units) does not hold on this traffic against either baseline; no size saves > 40 % vs PAYG
  (the best saves 1/3).
  with --max-added-latency-ms 10: only 3 units (0 ms) qualify -> 3 units.
"""

import html.parser
import json
import os
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET
from fractions import Fraction

SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
SRC = os.path.abspath(SRC)
sys.path.insert(0, os.path.join(SRC, "loadtest", "plan"))
import plan_model as M  # noqa: E402

TOOL = os.path.join(SRC, "loadtest", "plan", "trilemma_plan.py")
MINUTES = [(500, 250), (1000, 500), (0, 0), (2000, 1000)]


def windows():
    return [M.Window(i, 0, o) for i, o in MINUTES]


def hand_plan(**kw):
    return M.plan(windows(), 60, M.Unit("u", 1000, None, 25), M.Prices(1000, 1000, 2000),
                  payg_latency_ms=90, **kw)


class Arithmetic(unittest.TestCase):
    def test_hand_computed_case(self):
        p = hand_plan()
        rows = {r["units"]: r for r in p["rows"]}
        self.assertEqual(p["scale"], 10800)
        self.assertEqual((p["peak_units"], p["avg_units"]), (3, 2))
        self.assertEqual(sorted(rows), [0, 1, 2, 3])
        self.assertEqual(p["payg_cost"], 75600)
        self.assertEqual(p["peak_cost"], 54000)
        self.assertEqual(rows[1]["cost"], 54000)
        self.assertEqual(rows[1]["fixed"], 18000)
        self.assertEqual(rows[1]["overflow_share"], Fraction(10, 21))
        self.assertEqual(rows[1]["added_latency_ms"], Fraction(900, 21))
        self.assertEqual(rows[2]["cost"], 50400)
        self.assertEqual(rows[2]["overflow_share"], Fraction(4, 21))
        self.assertEqual(rows[2]["added_latency_ms"], Fraction(360, 21))
        self.assertEqual(rows[0]["overflow_share"], 1)
        self.assertEqual(rows[3]["overflow_share"], 0)

    def test_recommendation(self):
        p = hand_plan()
        self.assertEqual(p["recommended"]["units"], 2)
        self.assertEqual(M.saving(p["recommended"]["cost"], p["payg_cost"]), Fraction(1, 3))
        self.assertEqual(M.saving(p["recommended"]["cost"], p["peak_cost"]), Fraction(1, 15))
        # a latency bound rules out every size that overflows too much
        self.assertEqual(hand_plan(max_latency_ms=10)["recommended"]["units"], 3)
        self.assertEqual(hand_plan(max_latency_ms=20)["recommended"]["units"], 2)
        # cheaper units: the peak's size wins (ties go to the smaller size)
        cheap = M.plan(windows(), 60, M.Unit("u", 1000, None, 1), M.Prices(1000, 1000, 2000))
        self.assertEqual(cheap["recommended"]["units"], 3)

    def test_seed_claim(self):
        s = M.seed_claim(hand_plan())
        self.assertEqual(s["avg_units"], 2)
        self.assertFalse(s["holds_vs_payg"])
        self.assertFalse(s["holds_vs_peak"])
        self.assertEqual(s["sizes_over_40_vs_payg"], [])
        # it would hold below (0.6 x 75,600 - 14,400) / (2 x 720) = 21.5 an hour per unit
        self.assertEqual(s["hourly_for_claim_vs_payg"], Fraction(43, 2))
        # provisioned tokens ten times cheaper per hour: the average's size saves > 40 %
        s = M.seed_claim(M.plan(windows(), 60, M.Unit("u", 1000, None, 2.5),
                                M.Prices(1000, 1000, 2000)))
        self.assertTrue(s["holds_vs_payg"])  # 2 units: 14,400 + 3,600 = 18,000 of 75,600
        self.assertEqual(s["sizes_over_40_vs_payg"], [1, 2, 3])

    def test_streams_bound_the_served_share(self):
        u = M.Unit("u", 1000, 2, 25)
        # tokens fit (600 < 1000) but 4 streams were open on average: half is served
        self.assertEqual(M.served_share(M.Window(300, 0, 300, 10, 4), 1, u, 60), Fraction(1, 2))
        self.assertEqual(M.units_for(M.Window(300, 0, 300, 10, 4), u, 60), 2)
        # the tighter of the two bounds wins
        self.assertEqual(M.served_share(M.Window(2000, 0, 0, 10, 3), 1, u, 60), Fraction(1, 2))
        # a 10 s window gets a sixth of the tpm
        self.assertEqual(M.served_share(M.Window(500, 0, 0), 2, M.Unit("u", 1200, None, 1), 10),
                         Fraction(400, 500))

    def test_cached_input_and_provisioned_prices(self):
        pr = M.Prices(2, 1, 8, prov_in=1, prov_cached=0, prov_out=2)
        w = M.Window(1000000, 400000, 1000000)
        self.assertEqual(pr.payg(w), Fraction(600000 * 2 + 400000 + 8000000, 1000000))
        self.assertEqual(pr.provisioned(w), Fraction(600000 + 2000000, 1000000))

    def test_bad_values(self):
        with self.assertRaises(M.PlanError):
            M.Prices(-1, 0, 0)
        with self.assertRaises(M.PlanError):
            M.Unit("u", 0, None, 1)
        with self.assertRaises(M.PlanError):
            M.Unit("u", 10, None, -1)
        with self.assertRaises(M.PlanError):
            M.plan([], 60, M.Unit("u", 10, None, 1), M.Prices(1, 1, 1))


# ---- the command line ---------------------------------------------------------------------------

AGENTS = """[agent search]
cascade = openai/sim-frontier
[capacity frontier-ptu]        ; the ledger's deployment
model = openai/sim-frontier    ; the cascade entry
tpm = 1000
hourly_price = 25.00
currency = USD
region = ap-south-1
"""
PRICES = """# provider,model,tier,effective_from,currency,input,cached_input,cache_write,output
openai,sim-frontier,standard,2025-01-01,USD,1000,1000,1000,2000
openai,sim-frontier,standard,2099-01-01,USD,1,1,1,1
"""


def traffic_doc(model="sim-frontier"):
    """The hand case as a /v1/traffic answer: m1..m4 at 10:00..10:03, m3 empty (no bucket), m2
    split between the two tiers."""
    def b(t, i, o, calls=1):
        return {"t": "2026-12-01T10:%02d:00Z" % t, "calls": calls, "input_tokens": i,
                "cached_input_tokens": 0, "output_tokens": o, "duration_ms": 1000}
    return {"from": "2026-12-01", "to": "2026-12-01", "bucket": "minute", "bucket_s": 60,
            "routes": [
                {"provider": "openai", "model": model, "tier": "provisioned",
                 "buckets": [b(1, 400, 200)]},
                {"provider": "openai", "model": model, "tier": "standard",
                 "buckets": [b(0, 500, 250), b(1, 600, 300), b(3, 2000, 1000)]}],
            "truncated": False}


def load_report(with_input=True):
    """A trilemma-load report of 130 s: two full minutes of the hand case's m1 and m2 (spread
    over the seconds), 10 s left out."""
    n = 130
    inp, out = [0] * n, [0] * n
    for s in range(60):
        inp[s], out[s] = (10, 5) if s < 50 else (0, 0)      # m1: 500 in, 250 out
        inp[60 + s], out[60 + s] = (20, 10) if s < 50 else (0, 0)  # m2: 1000, 500
    tl = {"t": list(range(n)), "turns_started": [1] * n, "turns_completed": [1] * n,
          "output_tokens": out, "errors": [0] * n}
    if with_input:
        tl["input_tokens"] = inp
        tl["cached_input_tokens"] = [0] * n
    return {"tool": "trilemma-load", "format": 1, "started_at": "2026-12-01T10:00:00Z",
            "timeline": tl}


class Cli(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="trilemma-plan-test-")
        self.agents = self.write("agents.ini", AGENTS)
        self.prices = self.write("prices.csv", PRICES)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text if isinstance(text, str) else json.dumps(text))
        return path

    def run_tool(self, *args):
        r = subprocess.run([sys.executable, TOOL] + list(args), capture_output=True, text=True,
                           timeout=60, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        return r

    def plan_json(self, *args):
        r = self.run_tool(*args, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_traffic_answer_gives_the_hand_case(self):
        src = self.write("traffic.json", traffic_doc())
        j = self.plan_json(src, "--agents", self.agents, "--prices", self.prices,
                           "--payg-latency-ms", "90")
        r = j["routes"][0]
        self.assertEqual(r["route"], "openai/sim-frontier")
        self.assertEqual(r["observed_s"], 240)
        self.assertEqual((r["payg_monthly"], r["peak_monthly"]), (75600, 54000))
        sizes = {s["units"]: s for s in r["sizes"]}
        self.assertEqual(sizes[1]["monthly_cost"], 54000)
        self.assertEqual(sizes[2]["monthly_cost"], 50400)
        self.assertAlmostEqual(sizes[1]["overflow_share"], 10 / 21, places=6)
        self.assertAlmostEqual(sizes[2]["added_latency_ms"], 360 / 21, places=3)
        self.assertEqual(r["recommended_units"], 2)
        self.assertIn("33.3 % vs all pay-as-you-go", r["why"])
        self.assertIn("6.7 % vs provisioned for the peak (3 units", r["why"])
        self.assertFalse(r["seed_claim"]["holds_vs_payg"])
        self.assertEqual(j["month_days"], 30)

    def test_table_and_flags_instead_of_files(self):
        src = self.write("traffic.json", traffic_doc())
        r = self.run_tool(src, "--unit-tpm", "1000", "--hourly-price", "25", "--payg-input",
                          "1000", "--payg-output", "2000", "--payg-latency-ms", "90",
                          "--max-added-latency-ms", "10")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("recommendation: buy 3 units", r.stdout)
        self.assertIn("scaled to 30 days", r.stdout)
        self.assertRegex(r.stdout, r"\*\s+3\s+3,000")

    def test_currency_conversion(self):
        src = self.write("traffic.json", traffic_doc())
        j = self.plan_json(src, "--agents", self.agents, "--prices", self.prices, "--currency",
                           "INR", "--usd-to-inr", "80")
        self.assertEqual(j["routes"][0]["payg_monthly"], 75600 * 80)
        self.assertEqual(j["routes"][0]["currency"], "INR")

    def test_load_report(self):
        src = self.write("load.json", load_report())
        j = self.plan_json(src, "--agents", self.agents, "--prices", self.prices)
        r = j["routes"][0]
        # two minutes: (1 + 2) x (2,592,000 / 120) = 64,800; peak m2 1500 -> 2 units = 36,000
        self.assertEqual(r["observed_s"], 120)
        self.assertEqual(r["payg_monthly"], 64800)
        self.assertEqual(r["peak_units"], 2)
        self.assertIn("the last 10 s (a partial window) are left out", j["notes"])

    def test_bad_inputs_exit_2(self):
        out = os.path.join(self.dir, "out.html")
        bad_prices = self.write("neg.csv", PRICES.replace(",2000\n", ",-2000\n", 1))
        cases = [
            ((os.path.join(self.dir, "missing.json"),), "cannot read"),
            ((self.write("bad.json", "{not json"),), "not valid JSON"),
            ((self.write("arr.json", "[1]"),), "expected a JSON object"),
            ((self.write("t.json", traffic_doc()), "--prices", bad_prices), "must not be negative"),
            ((self.write("t2.json", traffic_doc()), "--hourly-price=-1", "--unit-tpm", "5"),
             "must not be negative"),
            ((self.write("t3.json", traffic_doc()), "--unit-tpm", "0", "--hourly-price", "1"),
             "positive integer"),
            ((self.write("t4.json", traffic_doc()), "--prices", self.prices, "--agents",
              self.write("plain.ini", "[agent a]\ncascade = openai/sim-frontier\n")),
             "no route to plan"),
            ((self.write("t5.json", traffic_doc()), "--unit-tpm", "10", "--hourly-price", "1"),
             "no pay-as-you-go price"),
            ((self.write("old.json", load_report(False)),), "no timeline.input_tokens"),
            ((self.write("t7.json", traffic_doc()), "--window", "0"), "--window must be a positive"),
            ((self.write("t8.json", traffic_doc()), "--window", "90"), "not a multiple"),
            ((self.write("t9.json", traffic_doc()), "--sizes", "1,x"), "--sizes"),
            ((self.write("t6.json", {"bucket_s": 60, "routes": [{"provider": "a", "model": "b",
                                                                 "buckets": [{"t": "x"}]}]}),),
             "bad bucket time"),
        ]
        for args, needle in cases:
            # the case's own --agents, if any, comes last and wins
            r = self.run_tool("--agents", self.agents, "--html", out, *args)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertIn(needle, r.stderr, args)
            self.assertTrue(r.stderr.startswith("trilemma-plan: "), r.stderr)
            self.assertEqual(r.stdout, "")
            self.assertFalse(os.path.exists(out), args)


VOID = {"meta", "br", "link", "img", "input", "hr", "col", "wbr", "source"}


class Checker(html.parser.HTMLParser):
    """Tags balanced (void elements aside), and every tag and text seen."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.tags, self.text, self.errors = [], set(), [], []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.add(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append("</%s> closes %s" % (tag, self.stack[-1:] or "nothing"))
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


class Html(unittest.TestCase):
    def test_page_is_well_formed_and_escapes_text(self):
        d = tempfile.mkdtemp(prefix="trilemma-plan-html-")
        hostile = 'x<script>alert("1")</script>&amp;'
        src = os.path.join(d, "traffic.json")
        with open(src, "w") as f:
            json.dump(traffic_doc(model=hostile), f)
        out = os.path.join(d, "plan.html")
        r = subprocess.run([sys.executable, TOOL, src, "--unit-tpm", "1000", "--hourly-price",
                            "25", "--payg-input", "1000", "--payg-output", "2000", "--html",
                            out], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, encoding="utf-8") as f:
            page = f.read()
        c = Checker()
        c.feed(page)
        c.close()
        self.assertEqual(c.errors, [])
        self.assertEqual(c.stack, [])
        self.assertNotIn("script", c.tags)
        self.assertNotIn("<script", page)
        self.assertIn("&lt;script&gt;", page)
        self.assertIn("&amp;amp;", page)  # the text's own "&amp;", escaped once more
        self.assertIn("openai/" + hostile, "".join(c.text))
        # the cost curve: an SVG that is well-formed XML, with the three lines and the mark
        svg = page[page.index("<svg"):page.index("</svg>") + 6]
        root = ET.fromstring(svg)
        ns = "{http://www.w3.org/2000/svg}"
        self.assertEqual(len(root.findall(ns + "polyline")), 1)
        self.assertEqual(len(root.findall(ns + "circle")), 1)
        labels = [t.text for t in root.findall(ns + "text")]
        self.assertIn("all pay-as-you-go", labels)
        self.assertIn("provisioned for the peak (3 units)", labels)
        self.assertIn("recommended: 2 units", labels)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]], verbosity=1)
