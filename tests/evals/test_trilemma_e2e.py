#!/usr/bin/python3
"""test_trilemma_e2e.py - `trilemma-eval trilemma` end to end over trilemma-sim (ctest
integration_trilemma): two configurations (01-naive and 05-caches) on a fixed subset of the
golden set and a short traffic mix, instant answers.

  - the report: trilemma.json / .md / .html in OUTDIR, a row per configuration in the order
    given, the table on stdout the same as trilemma.md's, the eval runs and traffic records
    beside them (the eval runs in trilemma-eval-run/1 format: `compare` reads them);
  - what the configurations are: the naive one (the frontier model everywhere) costs more per
    conversation than the tuned one; its simulator keeps no prompt cache (sim.args) while the
    tuned one reads cached tokens; both replayed the same conversations;
  - bad input: an unknown folder, a server.ini trilemmad refuses, a server.ini that does not
    parse, --traffic 0: exit 2 with a message naming the culprit, no report written.

Relations are asserted, never the simulator's numbers. Needs PostgreSQL's binaries (77 without).

  python3 tests/evals/test_trilemma_e2e.py --build build --source . [-k NAME]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

A = None
TMP = None
SUBSET = 14  # golden-set cases per configuration (two per query type)
TRAFFIC = 8  # conversations of the mix


def tool(*args, check=None):
    r = subprocess.run([os.path.join(A.build, "trilemma-eval"), *args], capture_output=True,
                       text=True, env=dict(os.environ, TRILEMMA_SOURCE=A.source,
                                           TRILEMMA_BUILD=A.build))
    if check is not None and r.returncode != check:
        raise AssertionError("trilemma-eval %s: exit %d, expected %d\n%s" % (
            " ".join(args), r.returncode, check, (r.stdout + r.stderr)[-4000:]))
    return r


def conf(name):
    return os.path.join(A.source, "evals", "configs", "trilemma", name)


def test_two_configurations():
    out = os.path.join(TMP, "report")
    r = tool("trilemma", "--configs", conf("01-naive"), conf("05-caches"), "--subset",
             str(SUBSET), "--traffic", str(TRAFFIC), "--concurrency", "4", "-o", out, check=0)
    rep = json.load(open(os.path.join(out, "trilemma.json"), encoding="utf-8"))
    assert rep["format"] == "trilemma-report/1"
    assert [x["name"] for x in rep["rows"]] == ["01-naive", "05-caches"], rep["rows"]
    naive, tuned = rep["rows"]
    print("    cost per conversation: naive %.0f µ₹, tuned %.0f µ₹; quality %.1f / %.1f" % (
        naive["cost_per_conversation_micros"], tuned["cost_per_conversation_micros"],
        naive["headline"], tuned["headline"]))
    assert naive["cost_per_conversation_micros"] > tuned["cost_per_conversation_micros"] > 0
    assert naive["times_cheaper_than_naive"] == 1.0 and tuned["times_cheaper_than_naive"] > 1
    assert rep["set"]["cases"] == SUBSET and rep["traffic"]["mix"]["conversations"] == TRAFFIC
    for x in rep["rows"]:
        for k in ("first_token_p50", "first_token_p99", "total_p50", "total_p99"):
            assert x["latency_ms"][k] is not None, (x["name"], k)
        for d in ("query_type", "tool_recall", "factual_accuracy", "relevance", "completed"):
            assert x["quality"].get(d) is not None, (x["name"], d)
        assert x["traffic"]["errors"] == 0 and x["traffic"]["turns"] >= TRAFFIC, x["traffic"]
        assert isinstance(x["frontier"], bool)
    assert len(rep["levers"]) == 1 and "cost" in rep["levers"][0]["moved"], rep["levers"]
    # the cheaper one cannot be dominated on cost: it is on the frontier
    assert tuned["frontier"]
    # sim.args: the naive provider keeps no prompt cache; the tuned one's does
    assert naive["traffic"]["tokens"]["cached_input_tokens"] == 0, naive["traffic"]
    assert tuned["traffic"]["tokens"]["cached_input_tokens"] > 0, tuned["traffic"]
    # the same conversations under both
    tr = [json.load(open(os.path.join(out, "traffic-%s.json" % n), encoding="utf-8"))
          for n in ("01-naive", "05-caches")]
    texts = [[t["text"] for c in x["conversations"] for t in c["turns"]] for x in tr]
    assert texts[0] == texts[1] and len(texts[0]) == naive["traffic"]["turns"]
    # the table: on stdout and in trilemma.md; the plot: two inline SVGs, no script
    md = open(os.path.join(out, "trilemma.md"), encoding="utf-8").read()
    lines = md.splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.startswith("|"))
    table = lines[first:first + lines[first:].index("")]  # the report's table, up to a blank
    assert len(table) == 4 and table[0].startswith("| configuration | cost / conversation")
    assert all(ln in r.stdout for ln in table), r.stdout
    assert "## The traffic in detail" in md
    assert "## Levers" in md and "01-naive → 05-caches" in md
    page = open(os.path.join(out, "trilemma.html"), encoding="utf-8").read()
    assert page.count("<svg") == 2 and "<script" not in page
    # the eval runs are ordinary runs: compare reads them (exit 0 or 1: a gate verdict)
    runs = [os.path.join(out, "eval-%s.json" % n) for n in ("01-naive", "05-caches")]
    c = tool("compare", runs[0], runs[1], "--gate", os.path.join(TMP, "gate.ini"))
    assert c.returncode in (0, 1), c.stdout + c.stderr
    assert "compare: 01-naive (A) -> 05-caches (B), %d cases in both" % SUBSET in c.stdout


def test_bad_input():
    def refused(args, words):
        out = os.path.join(TMP, "bad")
        shutil.rmtree(out, ignore_errors=True)
        r = tool("trilemma", "--subset", "7", "--traffic", "1", *args, "-o", out)
        assert r.returncode == 2, (args, r.returncode, r.stdout + r.stderr[-3000:])
        for w in words:
            assert w in r.stderr, (args, w, r.stderr[-3000:])
        assert not os.path.exists(os.path.join(out, "trilemma.json"))

    refused(["--configs", os.path.join(TMP, "nope")], ["nope", "has no agents.ini"])
    # a server.ini trilemmad refuses: its message names the key
    bad = os.path.join(TMP, "bad-range")
    shutil.copytree(conf("01-naive"), bad)
    with open(os.path.join(bad, "server.ini"), "a") as f:
        f.write("\n[session]\nhistory_max_bytes = 12\n")
    # prompts are relative to the folder: point them back at the source tree
    text = open(os.path.join(bad, "agents.ini")).read().replace(
        "../../../../config/prompts/", os.path.join(A.source, "config", "prompts") + "/")
    open(os.path.join(bad, "agents.ini"), "w").write(text)
    refused(["--configs", bad], ["bad-range: the stack did not start", "history_max_bytes"])
    # a server.ini that does not parse
    with open(os.path.join(bad, "server.ini"), "w") as f:
        f.write("[cache]\nexact = off\nexact = on\n")
    refused(["--configs", bad], ["server.ini", "exact"])
    refused(["--configs", conf("01-naive"), "--traffic", "0"], ["--traffic"])
    refused(["--configs", conf("01-naive"), "--all"], ["not both"])


TESTS = [test_two_configurations, test_bad_input]


def main():
    global A, TMP
    p = argparse.ArgumentParser()
    p.add_argument("--build", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("-k", help="only tests whose name contains this")
    A = p.parse_args()
    A.build, A.source = os.path.abspath(A.build), os.path.abspath(A.source)
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    if not os.path.exists("/usr/lib/postgresql/15/bin/initdb") and not os.environ.get("PG_BIN"):
        print("PostgreSQL's binaries are missing: skipped")
        return 1 if in_ci else 77
    TMP = tempfile.mkdtemp(prefix="trilemma-e2e-")
    # latency differs with the machine: no latency gate in this test's compare
    with open(os.path.join(TMP, "gate.ini"), "w") as f:
        f.write(open(os.path.join(A.source, "evals", "gate.ini")).read().split("[latency]")[0])
    failed = 0
    try:
        for t in TESTS:
            if A.k and A.k not in t.__name__:
                continue
            print("- %s" % t.__name__, flush=True)
            try:
                t()
                print("  ok", flush=True)
            except Exception:
                failed += 1
                traceback.print_exc()
                print("  FAILED", flush=True)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
