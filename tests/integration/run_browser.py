#!/usr/bin/env python3
"""run_browser.py - the `browser` ctests: run headless Chromium tests in tests/browser with node's
test runner.

  run_browser.py --server BIN --source DIR
      chat.test.mjs against a trilemmad started here (harness.Server, echo responder); the
      server must exit 0 on SIGTERM afterwards.
  run_browser.py --server BIN --source DIR --test widget.test.mjs --own-servers \
                 --sim SIM_BIN --artifacts DIR
      a test file that starts its own processes (trilemmad, trilemma-sim, a private PostgreSQL);
      it gets their paths in TRILEMMA_SERVER / TRILEMMA_SIM / TRILEMMA_SOURCE and writes
      screenshots and server logs under TRILEMMA_ARTIFACTS.

Skips (exit 77) when Chromium, node or tests/browser/node_modules is missing - but not in CI
(CI=true), where a missing piece is a failure: scripts/deps.sh installs all of them.
"""

import os
import shutil
import subprocess
import sys

import harness

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SKIP = 77


def main():
    # parse --server/--source the same way as the other test files
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--test", default="chat.test.mjs", help="test file in tests/browser")
    p.add_argument("--sim", help="trilemma-sim binary (passed as TRILEMMA_SIM)")
    p.add_argument("--artifacts", help="folder for screenshots and logs (TRILEMMA_ARTIFACTS)")
    p.add_argument("--own-servers", action="store_true",
                   help="the test file starts its own servers: start none here")
    a = p.parse_args()
    harness.Args.server = os.path.abspath(a.server)
    harness.Args.source = os.path.abspath(a.source)
    browser_dir = os.path.join(harness.Args.source, "tests", "browser")
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")

    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(CHROMIUM)
    node = shutil.which("node")
    if not node:
        missing.append("node")
    if not os.path.isdir(os.path.join(browser_dir, "node_modules", "playwright-core")):
        missing.append("tests/browser/node_modules (run scripts/deps.sh)")
    if missing:
        print("browser test prerequisites missing: %s" % ", ".join(missing))
        if in_ci:
            print("0 passed, 1 failed")
            return 1
        print("skipped")
        return SKIP

    env = dict(os.environ, CHROMIUM=CHROMIUM, TRILEMMA_SERVER=harness.Args.server,
               TRILEMMA_SOURCE=harness.Args.source)
    if a.sim:
        env["TRILEMMA_SIM"] = os.path.abspath(a.sim)
    if a.artifacts:
        env["TRILEMMA_ARTIFACTS"] = os.path.abspath(a.artifacts)
        os.makedirs(env["TRILEMMA_ARTIFACTS"], exist_ok=True)
    srv = None
    if not a.own_servers:
        srv = harness.Server(config={"session": {"echo_delay_ms": 5}}, name="browser")
        try:
            srv.start()
        except AssertionError as e:
            print(e)
            print("0 passed, 1 failed")
            return 1
        env["TRILEMMA_URL"] = srv.url("").rstrip("/")
    try:
        proc = subprocess.run(
            [node, "--test", "--test-reporter=spec", a.test],
            cwd=browser_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=600,
        )
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        print("node --test did not finish within 600 s")
        rc = 1
    if srv is None:
        if a.artifacts:
            print("artifacts (screenshots, server logs): %s" % env["TRILEMMA_ARTIFACTS"])
        return rc
    try:
        srv.stop()
    except AssertionError as e:
        print(e)
        rc = rc or 1
    if rc != 0:
        print(srv.stderr_tail())
    else:
        srv.cleanup()
    return rc


if __name__ == "__main__":
    sys.exit(main())
