#!/usr/bin/python3
"""test_vibe_browser.py - the vibe-check panel and the golden review queue end to end (ctest
browser_vibe, label browser):
a trilemmad with PostgreSQL (trilemma-eval's stack), a session made from two eval runs with
`trilemma-eval vibe --upload` (answers carrying markers, so the page's sides can be told apart),
two voters in headless Chromium voting by keyboard only (tests/browser/vibe.test.mjs: no version
name in the DOM, sides randomized per voter), then the stored votes checked against what each
voter saw and pressed, and `trilemma-eval vibe` run on them; a served turn added to the golden
set, accepted in the review queue page by keyboard, stored as accepted with the reviewer.

  python3 tests/evals/test_vibe_browser.py --build build --source . [--artifacts DIR]

Exit 77 (skipped) without Chromium, node or tests/browser/node_modules, unless CI=true.
"""

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
KEY_SIDE = {"a": "left", "ArrowLeft": "left", "b": "right", "ArrowRight": "right", "t": "tie",
            "x": "both_bad"}


def fake_run(name, marker, n):
    cases = []
    for i in range(n):
        cases.append({"id": "case-%02d" % i, "query": "Question number %d about shoes?" % i,
                      "history": ["an earlier message %d" % i] if i % 4 == 0 else [],
                      "expected_query_type": ["product_search", "policy"][i % 2],
                      "answer": "Answer %s-%02d: a reply with <b>markup</b> that stays text." % (
                          marker, i)})
    return {"format": "trilemma-eval-run/1", "name": name,
            "set": {"name": "vibe-test", "sha256": "same-set"}, "cases": cases}


async def one_turn(ws_url, text):
    import websockets

    async with websockets.connect(ws_url) as ws:
        await ws.recv()  # session
        await ws.send(json.dumps({"type": "user_message", "id": "m1", "text": text}))
        while True:
            ev = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if ev["type"] == "turn_end":
                return ev["turn_id"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--artifacts")
    a = p.parse_args()
    source, build = os.path.abspath(a.source), os.path.abspath(a.build)
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    node = shutil.which("node")
    missing = [x for x, ok in ((CHROMIUM, os.access(CHROMIUM, os.X_OK)), ("node", bool(node)), (
        "tests/browser/node_modules", os.path.isdir(os.path.join(
            source, "tests", "browser", "node_modules", "playwright-core")))) if not ok]
    if missing:
        print("browser test prerequisites missing: %s" % ", ".join(missing))
        return 1 if in_ci else 77
    sys.path.insert(0, os.path.join(source, "evals", "tool"))
    import runner  # noqa: E402
    import serve  # noqa: E402
    import vibe  # noqa: E402

    tmp = tempfile.mkdtemp(prefix="trilemma-vibe-test-")
    n = 16  # pairs: the chance that all of a voter's sides come out the same is 2 * 2^-16
    ra, rb = fake_run("cfg-alpha-7", "ALPHA", n), fake_run("cfg-beta-9", "BETA", n)
    marks = {c["id"]: {"a": "ALPHA-%s" % c["id"][-2:], "b": "BETA-%s" % c["id"][-2:]}
             for c in ra["cases"]}
    stack = serve.Stack(source, build, os.path.join(source, "evals", "configs", "cheap")).start()
    try:
        sid, pairs = vibe.upload(stack.http_url, stack.admin_token, ra, rb, name="panel")
        assert pairs == n, pairs
        # a candidate for the review queue: a served turn added to the golden set
        turn = asyncio.run(one_turn(stack.ws_url, "Where is my order 1234-5678?"))
        gid = runner.http_json(stack.http_url + "/v1/golden", stack.admin_token,
                               {"turn_id": turn, "note": "from the browser test"})["id"]
        out = os.path.join(tmp, "seen.json")
        env = dict(os.environ, VIBE_URL=stack.http_url, VIBE_TOKEN=stack.admin_token,
                   VIBE_SESSION=str(sid), VIBE_VERSIONS=json.dumps([ra["name"], rb["name"]]),
                   VIBE_MARKS=json.dumps(marks), VIBE_OUT=out, GOLDEN_CASE=str(gid),
                   TRILEMMA_ARTIFACTS=a.artifacts or os.path.join(build, "artifacts"))
        r = subprocess.run([node, "--test", "--test-reporter=spec",
                            os.path.join(source, "tests", "browser", "vibe.test.mjs")],
                           cwd=os.path.join(source, "tests", "browser"), env=env)
        if r.returncode != 0:
            print("0 passed, 1 failed")
            return 1
        seen = json.load(open(out))
        votes = runner.http_json("%s/v1/vibe/sessions/%d/votes" % (stack.http_url, sid),
                                 stack.admin_token)
        assert votes["version_a"] == ra["name"] and votes["version_b"] == rb["name"]
        stored = {(v["voter"], v["case_id"]): v for v in votes["votes"]}
        assert len(stored) == 2 * n, len(stored)
        for voter, items in seen.items():
            for it in items:
                v = stored[(voter, it["case_id"])]
                side = KEY_SIDE[it["key"]]
                want = side if side in ("tie", "both_bad") else (
                    it["left"] if side == "left" else ("b" if it["left"] == "a" else "a"))
                assert v["choice"] == want, (voter, it, v)
                assert v["a_on_left"] == (it["left"] == "a"), (voter, it, v)
        acc = runner.http_json(stack.http_url + "/v1/golden/cases?status=accepted",
                               stack.admin_token)["cases"]
        assert [(c["id"], c["reviewed_by"]) for c in acc] == [(gid, "rita")], acc
        r = vibe.analyse(votes, seed=14, n_boot=50)
        print(vibe.text(r))
        assert r["votes"] == 2 * n and r["voters"] == 2
        assert r["agreement"]["items"] == n
        print("1 passed, 0 failed")
        return 0
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
