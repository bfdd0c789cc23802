"""compare.py - run B against run A: per dimension and per query type the difference of the means
over the cases both runs scored, with paired bootstrap 95 % CIs on a fixed seed; the cases that
regressed, both answers side by side; the gate (per-dimension tolerances, evals/gate.ini); and
the prompt gate (the golden set on the old and the new prompts)."""

import configparser
import os
import shutil
import subprocess
import sys
import tempfile

import report
import scorers as S

# quality dimensions in 0..1 (higher is better) whose drop makes a case "regressed"
CASE_DIMS = ("query_type", "tool_recall", "tool_precision", "ndcg_at_k", "factual_accuracy",
             "no_hallucination", "fact_recall", "format", "relevance", "completed")
REGRESSED_DROP = 0.25  # a case regressed when a dimension dropped by this much or more


def load_gate(path):
    """{"tolerance": {dim: max drop}, "cost_increase": ratio|None, "latency_increase": ratio}."""
    cp = configparser.ConfigParser(inline_comment_prefixes=(";", "#"))
    if path and not cp.read(path, encoding="utf-8"):
        raise SystemExit("trilemma-eval: cannot read the gate file %s" % path)
    tol = {}
    for k, v in (cp["tolerance"].items() if cp.has_section("tolerance") else []):
        if k not in report.DIMS:
            raise SystemExit("trilemma-eval: %s: [tolerance] %s is not a dimension (%s)" % (
                path, k, ", ".join(report.DIMS)))
        try:
            tol[k] = float(v)
        except ValueError:
            raise SystemExit("trilemma-eval: %s: [tolerance] %s = %r is not a number" % (path, k, v))
    get = lambda s, k: cp.getfloat(s, k) if cp.has_option(s, k) else None  # noqa: E731
    return {"tolerance": tol, "cost_increase": get("cost", "max_increase"),
            "latency_increase": get("latency", "max_increase"), "path": path}


def _pairs(ca, cb, key):
    return [(ca[i]["scores"].get(key), cb[i]["scores"].get(key)) for i in ca if i in cb]


def _num_pairs(ca, cb, f):
    return [(f(ca[i]), f(cb[i])) for i in ca if i in cb]


def compare(ra, rb, gate, seed=14, n_boot=1000):
    ca = {c["id"]: c for c in ra["cases"]}
    cb = {c["id"]: c for c in rb["cases"]}
    common = [i for i in ca if i in cb]
    dims = [d for d in report.DIMS if any(d in ca[i]["scores"] or d in cb[i]["scores"]
                                          for i in common)]
    rng = S.new_rng(seed)
    res = {"a": ra["name"], "b": rb["name"], "cases": len(common), "seed": seed,
           "same_set": ra["set"].get("sha256") == rb["set"].get("sha256"),
           "judge": [ra.get("judge"), rb.get("judge")], "dimensions": [], "by_query_type": {},
           "regressed": [], "gate": {"passed": True, "failures": [], "file": gate.get("path")}}
    for d in dims:
        pairs = [p for p in _pairs(ca, cb, d) if p[0] is not None and p[1] is not None]
        diff, lo, hi = S.bootstrap_diff_ci(pairs, rng, n_boot)
        tol = gate["tolerance"].get(d)
        failed = tol is not None and diff is not None and diff < -tol - 1e-12
        res["dimensions"].append({"dimension": d, "n": len(pairs),
                                  "a": S.mean([p[0] for p in pairs]),
                                  "b": S.mean([p[1] for p in pairs]),
                                  "diff": diff, "lo": lo, "hi": hi, "tolerance": tol,
                                  "failed": failed})
        if failed:
            res["gate"]["failures"].append("%s dropped %.3f (tolerance %.3f)" % (d, -diff, tol))
    for label, f, key in (("cost per case (micros)", lambda c: c["cost_micros"] or 0,
                           "cost_increase"),
                          ("first token (ms)", lambda c: c["latency_ms"]["first_token"],
                           "latency_increase")):
        pairs = [p for p in _num_pairs(ca, cb, f) if None not in p]
        diff, lo, hi = S.bootstrap_diff_ci(pairs, rng, n_boot)
        a = S.mean([p[0] for p in pairs])
        limit = gate.get(key)
        failed = limit is not None and a and diff is not None and diff > a * limit
        res["dimensions"].append({"dimension": label, "n": len(pairs), "a": a,
                                  "b": S.mean([p[1] for p in pairs]), "diff": diff, "lo": lo,
                                  "hi": hi, "tolerance": limit, "failed": bool(failed)})
        if failed:
            res["gate"]["failures"].append("%s rose %.0f%% (limit %.0f%%)" % (
                label, diff / a * 100, limit * 100))
    for qt in sorted({ca[i]["expected_query_type"] for i in common}):
        ids = [i for i in common if ca[i]["expected_query_type"] == qt]  # the set's order
        sub_a = {i: ca[i] for i in ids}
        res["by_query_type"][qt] = {}
        for d in dims:
            pairs = [p for p in _pairs(sub_a, cb, d) if None not in p]
            if pairs:
                res["by_query_type"][qt][d] = S.bootstrap_diff_ci(pairs, rng, 300)
    for i in common:
        drops = [d for d in CASE_DIMS if d in ca[i]["scores"] and d in cb[i]["scores"] and
                 ca[i]["scores"][d] - cb[i]["scores"][d] >= REGRESSED_DROP]
        if drops:
            res["regressed"].append({
                "id": i, "dims": drops, "query": ca[i]["query"],
                "expected_query_type": ca[i]["expected_query_type"],
                "answer_a": ca[i]["answer"], "answer_b": cb[i]["answer"],
                "turn_a": ca[i].get("turn_id"), "turn_b": cb[i].get("turn_id"),
                "drop": sum(ca[i]["scores"][d] - cb[i]["scores"][d] for d in drops)})
    res["regressed"].sort(key=lambda r: -r["drop"])
    res["gate"]["passed"] = not res["gate"]["failures"]
    return res


def _f(v):
    return "–" if v is None else ("%+.3f" % v)


def text(res, max_regressed=10):
    lines = ["compare: %s (A) -> %s (B), %d cases in both%s" % (
        res["a"], res["b"], res["cases"], "" if res["same_set"] else
        " (WARNING: the runs used different golden-set files)")]
    lines.append("| dimension | A | B | B - A | 95 % CI | tolerance | gate |")
    lines.append("|---|---:|---:|---:|---|---:|---|")
    for d in res["dimensions"]:
        lines.append("| %s | %s | %s | %s | [%s, %s] | %s | %s |" % (
            report.LABELS.get(d["dimension"], d["dimension"]), report.fmt(d["a"]),
            report.fmt(d["b"]), _f(d["diff"]), _f(d["lo"]), _f(d["hi"]),
            "–" if d["tolerance"] is None else d["tolerance"], "FAIL" if d["failed"] else "ok"))
    lines.append("")
    lines.append("per query type, B - A [95 % CI]:")
    for qt, dims in res["by_query_type"].items():
        worst = sorted(((v[0], d, v) for d, v in dims.items() if v[0] is not None))[:3]
        lines.append("  %-15s %s" % (qt, "; ".join("%s %s [%s, %s]" % (
            d, _f(v[0]), _f(v[1]), _f(v[2])) for _, d, v in worst)))
    lines.append("")
    lines.append("regressed cases: %d%s" % (len(res["regressed"]), " (the worst %d)" % max_regressed
                                            if len(res["regressed"]) > max_regressed else ""))
    for r in res["regressed"][:max_regressed]:
        lines.append("  %s [%s] %s: %s" % (r["id"], r["expected_query_type"], ", ".join(r["dims"]),
                                           r["query"]))
        lines.append("    A: %s" % r["answer_a"][:160].replace("\n", " / "))
        lines.append("    B: %s" % r["answer_b"][:160].replace("\n", " / "))
    lines.append("")
    lines.append("gate: %s" % ("passed" if res["gate"]["passed"] else "FAILED: " +
                               "; ".join(res["gate"]["failures"])))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the prompt gate


def config_with_prompts(agents_file, prompts_dir, out_dir):
    """A configuration folder: agents_file with every prompt path pointing at the file of the same
    name in prompts_dir."""
    os.makedirs(out_dir, exist_ok=True)
    lines = []
    with open(agents_file, encoding="utf-8") as f:
        for line in f:
            k, sep, v = line.partition("=")
            if sep and k.strip() == "prompt":
                p = os.path.join(os.path.abspath(prompts_dir), os.path.basename(v.strip()))
                if not os.path.exists(p):
                    raise SystemExit("trilemma-eval: %s has no %s" % (prompts_dir,
                                                                      os.path.basename(p)))
                line = "prompt = %s\n" % p
            lines.append(line)
    with open(os.path.join(out_dir, "agents.ini"), "w", encoding="utf-8") as f:
        f.writelines(lines)
    return out_dir


def prompt_gate(a, source, build):
    """Run the set on the old and the new prompts (the same agents file otherwise), compare, and
    return 1 when the gate fails (the change is refused), 0 when it passes."""
    tmp = tempfile.mkdtemp(prefix="trilemma-gate-")
    os.makedirs(a.out, exist_ok=True)
    try:
        runs = []
        for name, d in (("old-prompts", a.old_prompts), ("new-prompts", a.new_prompts)):
            cfg = config_with_prompts(a.agents, d, os.path.join(tmp, name))
            out = os.path.join(a.out, "gate-%s.json" % name)
            cmd = [sys.executable, os.path.join(os.path.dirname(__file__), "trilemma_eval.py"),
                   "run", a.set, "--name", name, "--config", cfg, "-o", out]
            if a.subset:
                cmd += ["--subset", str(a.subset)]
            for s in a.sim_arg or []:
                cmd += ["--sim-arg=" + s]
            r = subprocess.run(cmd, stdout=subprocess.DEVNULL)
            if r.returncode != 0:
                print("gate: the %s run failed (exit %d)" % (name, r.returncode), file=sys.stderr)
                return 2
            runs.append(out)
        cmd = [sys.executable, os.path.join(os.path.dirname(__file__), "trilemma_eval.py"),
               "compare", runs[0], runs[1], "--gate", a.gate,
               "--html", os.path.join(a.out, "gate-compare.html")]
        rc = subprocess.run(cmd).returncode
        print("gate: %s" % ("the prompt change passes" if rc == 0 else
                            "the prompt change is REFUSED"), file=sys.stderr)
        return rc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
