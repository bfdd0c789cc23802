#!/usr/bin/python3
"""trilemma-eval - golden sets through trilemmad, scored; compare two runs; gate a prompt change;
rate the vibe-check panel's votes; export the reviewed production cases. See docs/evals.md.

  trilemma-eval run SET.jsonl --name NAME (--config DIR | --ws URL [--http URL]) [-o run.json]
  trilemma-eval compare A.json B.json [--gate evals/gate.ini] [--html out.html]
  trilemma-eval gate --old-prompts DIR --new-prompts DIR [--set SET] [--subset N]
  trilemma-eval vibe --url URL --session ID [--json out.json]
  trilemma-eval export --url URL [--set production] [-o cases.jsonl]
  trilemma-eval harvest --url URL [--flag ungrounded_number] (flagged turns -> candidates)
  trilemma-eval serve --config DIR        (the stack of a configuration, until Ctrl-C)
  trilemma-eval trilemma [--configs DIR...|--all] [--traffic N] [--real-pacing] -o OUTDIR

Exit codes: 0 fine, 1 a gate failed (compare/gate), 2 bad input.
"""

import argparse
import asyncio
import datetime
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, HERE)
SOURCE = os.environ.get("TRILEMMA_SOURCE") or os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("TRILEMMA_BUILD") or os.path.join(SOURCE, "build")

import goldenset  # noqa: E402
import report  # noqa: E402
import scorers as S  # noqa: E402


def die(msg, code=2):
    print("trilemma-eval: %s" % msg, file=sys.stderr)
    sys.exit(code)


# ---------------------------------------------------------------------------------------------
# run


def summarize(cases, dims=None):
    """Mean of every dimension, overall and per expected query type; latency percentiles; cost."""
    dims = dims or sorted({d for c in cases for d in c["scores"]})
    out = {"overall": {}, "by_query_type": {}, "n": len(cases)}
    for d in dims:
        out["overall"][d] = S.mean([c["scores"].get(d) for c in cases])
    for qt in sorted({c["expected_query_type"] for c in cases}):
        sub = [c for c in cases if c["expected_query_type"] == qt]
        out["by_query_type"][qt] = {"n": len(sub)}
        for d in dims:
            out["by_query_type"][qt][d] = S.mean([c["scores"].get(d) for c in sub])
    for tail in ("head", "long_tail"):
        sub = [c for c in cases if c.get("tail") == tail]
        if sub:
            out.setdefault("by_tail", {})[tail] = {d: S.mean([c["scores"].get(d) for c in sub])
                                                   for d in dims}
    ft = [c["latency_ms"]["first_token"] for c in cases]
    tt = [c["latency_ms"]["total"] for c in cases]
    out["latency_ms"] = {"first_token_p50": S.percentile(ft, 50),
                         "first_token_p90": S.percentile(ft, 90),
                         "total_p50": S.percentile(tt, 50), "total_p90": S.percentile(tt, 90)}
    cost = sum(c["cost_micros"] or 0 for c in cases)
    judge = sum(c["judge_cost_micros"] or 0 for c in cases)
    out["cost"] = {"currency": next((c["currency"] for c in cases if c["currency"]), "INR"),
                   "server_micros": cost, "per_case_micros": cost / max(1, len(cases)),
                   "judge_micros": judge,
                   "judge_share": judge / (cost + judge) if cost + judge else None}
    return out


def make_run(name, set_path, cases, config_dir, judge, wall, results,
             trace_base="/admin/#conv={conversation_id}&turn={turn_id}", server=None):
    """The record of one run (format trilemma-eval-run/1): what ran, on what, and its scores."""
    import serve

    return {
        "format": "trilemma-eval-run/1",
        "name": name,
        "set": {"path": os.path.relpath(set_path, SOURCE) if set_path.startswith(SOURCE)
                else set_path, "name": cases[0].get("set"), "version": cases[0].get("version"),
                "cases": len(cases), "sha256": goldenset.digest(set_path)},
        "config": serve.describe_config(config_dir) if config_dir else {},
        "judge": judge.version() if judge else None,
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_s": round(wall, 3),
        "throughput_cases_per_min": round(len(cases) / wall * 60, 1) if wall else None,
        "trace_base": trace_base,
        "server": server,
        "summary": summarize(results),
        "cases": results,
    }


def cmd_run(a):
    import runner
    import serve

    cases = goldenset.load(a.set, include_retired=False)
    if a.subset:
        cases = goldenset.subset(cases, a.subset)
    if a.only_type:
        cases = [c for c in cases if c["expected_query_type"] in a.only_type.split(",")]
    if not cases:
        die("no cases to run")
    stack = None
    if a.config:
        if not os.path.isfile(os.path.join(a.config, "agents.ini")):
            die("%s has no agents.ini" % a.config)
        stack = serve.Stack(SOURCE, BUILD, a.config, db=not a.no_db, sim_args=a.sim_arg or [],
                            seed=a.seed, fast=not a.real_pacing).start()
        a.ws_url, a.http_url, a.admin_token = stack.ws_url, stack.http_url, stack.admin_token
        catalog_url = a.catalog_url or stack.sim_url
        judge_url = a.judge_url or stack.sim_url + "/v1"
    else:
        if not a.ws:
            die("give --config DIR (start a stack) or --ws URL (a running server)")
        a.ws_url, a.http_url = a.ws, a.http
        a.admin_token = a.admin_token or os.environ.get("TRILEMMA_ADMIN_TOKEN")
        catalog_url, judge_url = a.catalog_url, a.judge_url
    try:
        tools_file = os.path.join(a.config, "tools.json") if a.config and os.path.exists(
            os.path.join(a.config, "tools.json")) else os.path.join(SOURCE, "config", "tools.json")
        catalog = runner.Catalog(catalog_url, tools_file) if catalog_url else None
        judge = None
        if judge_url and not a.no_judge:
            judge = runner.Judge(judge_url, a.judge, a.rubric,
                                 os.path.join(SOURCE, "config", "prices.csv"))
        a.concurrency = max(1, a.concurrency)
        t0 = time.monotonic()
        results = asyncio.run(runner.run_set(cases, a, catalog, judge))
        wall = time.monotonic() - t0
    finally:
        if stack:
            stack.stop()
    run = make_run(a.name, a.set, cases, a.config, judge, wall, results, a.trace_base,
                   None if a.config else a.http)
    out = a.output or "eval-%s.json" % a.name
    with open(out, "w", encoding="utf-8") as f:
        json.dump(run, f, indent=1, ensure_ascii=False)
    html = a.html or os.path.splitext(out)[0] + ".html"
    with open(html, "w", encoding="utf-8") as f:
        f.write(report.run_html(run))
    print(report.run_table([run]))
    print("eval: %d cases in %.1f s (%.0f cases/min); %s and %s" % (
        len(cases), wall, run["throughput_cases_per_min"] or 0, out, html), file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------


def cmd_compare(a):
    import compare

    try:
        ra, rb = (json.load(open(p, encoding="utf-8")) for p in (a.a, a.b))
    except (OSError, ValueError) as e:
        die("cannot read a run: %s" % e)
    for r, p in ((ra, a.a), (rb, a.b)):
        if r.get("format") != "trilemma-eval-run/1":
            die("%s is not a trilemma-eval run" % p)
    tol = compare.load_gate(a.gate)
    res = compare.compare(ra, rb, tol, seed=a.seed)
    print(compare.text(res))
    if a.json:
        json.dump(res, open(a.json, "w", encoding="utf-8"), indent=1, ensure_ascii=False)
    if a.html:
        open(a.html, "w", encoding="utf-8").write(report.compare_html(res))
    return 0 if res["gate"]["passed"] else 1


def cmd_gate(a):
    import compare

    return compare.prompt_gate(a, SOURCE, BUILD)


def cmd_vibe(a):
    import vibe

    return vibe.main(a)


def cmd_export(a):
    import runner

    token = a.admin_token or os.environ.get("TRILEMMA_ADMIN_TOKEN")
    if not token:
        die("the export reads the admin API: give --admin-token or TRILEMMA_ADMIN_TOKEN")
    url = "%s/v1/golden/cases?status=accepted" % a.url.rstrip("/")
    if a.set_name:
        url += "&set=" + a.set_name
    rows = runner.http_json(url, token=token)["cases"]
    lines = goldenset.export_rows(rows)
    out = open(a.output, "w", encoding="utf-8") if a.output else sys.stdout
    for c in lines:
        out.write(json.dumps(c, ensure_ascii=False, sort_keys=True) + "\n")
    if a.output:
        out.close()
    print("export: %d accepted cases" % len(lines), file=sys.stderr)
    return 0


def cmd_harvest(a):
    """Flagged production turns (GET /v1/turns?flag=...) into the golden set's review queue as
    candidates (POST /v1/golden); a turn already in (409) is skipped."""
    import urllib.error
    import urllib.parse

    import runner

    token = a.admin_token or os.environ.get("TRILEMMA_ADMIN_TOKEN")
    if not token:
        die("harvest uses the admin API: give --admin-token or TRILEMMA_ADMIN_TOKEN")
    base = a.url.rstrip("/")
    added = known = 0
    for flag in a.flag or ["ungrounded_number"]:
        q = {"flag": flag, "limit": str(a.limit)}
        if a.since:
            q["from"] = a.since
        turns = runner.http_json(base + "/v1/turns?" + urllib.parse.urlencode(q), token)["turns"]
        for t in turns:
            try:
                runner.http_json(base + "/v1/golden", token, {
                    "turn_id": t["turn_id"], "note": "flagged: %s" % flag,
                    "added_by": "trilemma-eval harvest"})
                added += 1
            except urllib.error.HTTPError as e:
                if e.code != 409:
                    raise
                known += 1
    print("harvest: %d flagged turns added as candidates, %d were in already" % (added, known))
    return 0


def cmd_trilemma(a):
    import serve
    import traffic
    import trilemma

    a.command = " ".join(["trilemma-eval"] + sys.argv[1:])
    if a.traffic < 1 or a.warmup < 0 or a.concurrency < 1 or a.traffic_concurrency < 1:
        die("--traffic, --concurrency and --traffic-concurrency must be at least 1, "
            "--warmup at least 0")
    if not 0 < a.capacity_utilization <= 1:
        die("--capacity-utilization must be above 0 and at most 1")
    if a.configs and a.all:
        die("give --configs DIR... or --all, not both")
    try:
        trilemma.run(a, SOURCE, BUILD, make_run)
    except (ValueError, OSError, serve.BadConfig, traffic.BadCorpus, trilemma.StackFailed) as e:
        die(str(e))
    return 0


def cmd_serve(a):
    import serve

    stack = serve.Stack(SOURCE, BUILD, a.config, db=not a.no_db, sim_args=a.sim_arg or [],
                        fast=not a.real_pacing).start()
    print("trilemma-eval serve: %s (config %s)\n  ws:    %s\n  http:  %s\n  admin: %s\n  "
          "sim:   %s\nCtrl-C stops it." % (a.name or os.path.basename(a.config.rstrip("/")),
                                          a.config, stack.ws_url, stack.http_url,
                                          stack.admin_token, stack.sim_url), flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        stack.stop()
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="trilemma-eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="a golden set through a server, scored")
    r.add_argument("set")
    r.add_argument("--name", required=True, help="the configuration's name (recorded)")
    r.add_argument("--config", help="a configuration folder (agents.ini): start its stack")
    r.add_argument("--ws", help="a running server's WebSocket URL (ws://host:port/ws)")
    r.add_argument("--http", help="its HTTP base URL, for the read API")
    r.add_argument("--admin-token")
    r.add_argument("--catalog-url", help="the commerce API (evidence for the facts)")
    r.add_argument("--judge-url", help="the judge's OpenAI-compatible base URL (…/v1)")
    r.add_argument("--judge", default="openai/sim-judge", help="the judge route provider/model")
    r.add_argument("--rubric", default=os.path.join(SOURCE, "evals", "judge_rubric.md"))
    r.add_argument("--no-judge", action="store_true")
    r.add_argument("--no-db", action="store_true", help="(--config) no PostgreSQL: no tools")
    r.add_argument("--sim-arg", action="append", help="(--config) one more trilemma-sim flag")
    r.add_argument("--seed", type=int, default=1, help="(--config) the simulator's seed")
    r.add_argument("--real-pacing", action="store_true",
                   help="(--config) the simulator's default timing (300 ms to the first token, "
                        "40 tokens/s, catalog latencies) instead of instant answers")
    r.add_argument("--subset", type=int, help="a fixed, stratified subset of N cases")
    r.add_argument("--only-type", help="only these expected query types (comma-separated)")
    r.add_argument("--concurrency", type=int, default=8)
    r.add_argument("--timeout", type=float, default=60)
    r.add_argument("--trace-base", default="/admin/#conv={conversation_id}&turn={turn_id}",
                   help="the dashboard link of a case's turn (the report's worst cases)")
    r.add_argument("-o", "--output")
    r.add_argument("--html")
    c = sub.add_parser("compare", help="B against A: differences, CIs, regressions, the gate")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--gate", default=os.path.join(SOURCE, "evals", "gate.ini"))
    c.add_argument("--seed", type=int, default=14)
    c.add_argument("--json")
    c.add_argument("--html")
    g = sub.add_parser("gate", help="a prompt change: the golden set on old and new prompts")
    g.add_argument("--old-prompts", required=True)
    g.add_argument("--new-prompts", required=True)
    g.add_argument("--agents", default=os.path.join(SOURCE, "config", "agents.ini"))
    g.add_argument("--set", default=os.path.join(SOURCE, "evals", "sets", "shop-v1.jsonl"))
    g.add_argument("--subset", type=int)
    g.add_argument("--gate", default=os.path.join(SOURCE, "evals", "gate.ini"))
    g.add_argument("--out", default=".")
    g.add_argument("--sim-arg", action="append")
    v = sub.add_parser("vibe", help="Bradley-Terry ratings of a vibe-check session's votes")
    v.add_argument("--url", help="the server (reads /v1/vibe/sessions/ID/votes)")
    v.add_argument("--session")
    v.add_argument("--votes", help="or a votes JSON file (the endpoint's answer)")
    v.add_argument("--admin-token")
    v.add_argument("--seed", type=int, default=14)
    v.add_argument("--json")
    v.add_argument("--upload", nargs=2, metavar=("RUN_A", "RUN_B"),
                   help="create a session from two eval runs (prints its id)")
    v.add_argument("--name", default="")
    e = sub.add_parser("export", help="accepted production cases to the JSONL format")
    e.add_argument("--url", required=True)
    e.add_argument("--set", dest="set_name")
    e.add_argument("--admin-token")
    e.add_argument("-o", "--output")
    h = sub.add_parser("harvest", help="flagged production turns into the review queue")
    h.add_argument("--url", required=True)
    h.add_argument("--flag", action="append", help="a turn flag (repeatable; default "
                   "ungrounded_number)")
    h.add_argument("--since", help="turns from this time on (YYYY-MM-DD or RFC 3339)")
    h.add_argument("--limit", type=int, default=100)
    h.add_argument("--admin-token")
    t = sub.add_parser("trilemma", help="the trilemma report: cost, latency and quality of "
                       "named configurations on the golden set and a recorded traffic mix")
    t.add_argument("--configs", nargs="+", metavar="DIR",
                   help="configuration folders, in order (the first is the naive baseline)")
    t.add_argument("--all", action="store_true",
                   help="every folder of evals/configs/trilemma, by name (the default)")
    t.add_argument("--set", default=os.path.join(SOURCE, "evals", "sets", "shop-v1.jsonl"))
    t.add_argument("--subset", type=int, help="a fixed, stratified subset of N cases")
    t.add_argument("--traffic", type=int, default=60, metavar="N",
                   help="conversations of the traffic mix (default 60)")
    t.add_argument("--warmup", type=int, default=0, metavar="N",
                   help="conversations of the same mix run first, not measured (warm caches)")
    t.add_argument("--traffic-seed", type=int, default=15)
    t.add_argument("--corpus", default=os.path.join(SOURCE, "loadtest", "corpus",
                                                    "shopping_queries.txt"))
    t.add_argument("--real-pacing", action="store_true",
                   help="the traffic at the simulator's default timing (the latency numbers); "
                        "the golden set always runs with instant answers")
    t.add_argument("--concurrency", type=int, default=8, help="golden-set cases at once")
    t.add_argument("--traffic-concurrency", type=int, default=8, help="conversations at once")
    t.add_argument("--seed", type=int, default=1, help="the simulator's seed")
    t.add_argument("--sim-arg", action="append",
                   help="one more trilemma-sim flag for every configuration (the world they "
                        "share, e.g. --sim-arg=--payg-latency-ms=80); after the folder's sim.args")
    t.add_argument("--capacity-utilization", type=float, default=0.8, metavar="U",
                   help="a provisioned deployment's hourly price is spread over tpm x 60 x U "
                        "tokens (default 0.8)")
    t.add_argument("--judge", default="openai/sim-judge")
    t.add_argument("--timeout", type=float, default=60)
    t.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    s = sub.add_parser("serve", help="start a configuration's stack until Ctrl-C")
    s.add_argument("--config", required=True)
    s.add_argument("--name")
    s.add_argument("--no-db", action="store_true")
    s.add_argument("--real-pacing", action="store_true", help="the simulator's default timing")
    s.add_argument("--sim-arg", action="append")
    a = p.parse_args(argv)
    if a.cmd == "serve":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        return {"run": cmd_run, "compare": cmd_compare, "gate": cmd_gate, "vibe": cmd_vibe,
                "export": cmd_export, "harvest": cmd_harvest, "serve": cmd_serve,
                "trilemma": cmd_trilemma}[a.cmd](a)
    except goldenset.BadSet as e:
        die(str(e))


if __name__ == "__main__":
    sys.exit(main())
