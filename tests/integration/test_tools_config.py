#!/usr/bin/env python3
"""test_tools_config.py - the tools file ([tools] tools_file, docs/tools.md) through the real
binary: the shipped config/tools.json passes --check-config; a tools file with a mistake stops
--check-config and the start with exit code 2 and one message naming the file, the tool and the
key; an unset header variable, a bad TRILEMMA_CATALOG_URL and a missing file are refused the
same way; a file with no tools is fine.
"""

import json
import os
import subprocess
import tempfile

import harness
from harness import Args

suite = harness.Suite("tools_config")

GOOD_TOOL = {
    "name": "get_offers",
    "description": "Offers.",
    "parameters": {"type": "object",
                   "properties": {"id": {"type": "string"}},
                   "required": ["id"]},
    "http": {"method": "GET", "path": "/catalog/products/{id}/offers"},
}


def run_check(tools_file, env_extra=None, check=True):
    """Run trilemmad with a config naming tools_file; returns (exit code, stdout + stderr)."""
    with tempfile.TemporaryDirectory() as d:
        ini = os.path.join(d, "t.ini")
        with open(ini, "w") as f:
            f.write("[tools]\ntools_file = %s\n" % tools_file)
        env = dict(os.environ)
        env.pop("TRILEMMA_CATALOG_URL", None)
        env.update(env_extra or {})
        argv = [Args.server, "--config", ini, "--listen", "127.0.0.1:0"]
        if check:
            argv.append("--check-config")
        p = subprocess.run(argv, cwd=Args.source, env=env, capture_output=True, text=True,
                           timeout=harness.START_TIMEOUT)
        return p.returncode, p.stdout + p.stderr


def tools_file(d, tools, **top):
    path = os.path.join(d, "tools.json")
    doc = {"base_url": "http://127.0.0.1:9"}
    doc.update(top)
    doc["tools"] = tools
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


@suite.test
def shipped_tools_file_checks_ok():
    rc, out = run_check(os.path.join(Args.source, "config/tools.json"))
    assert rc == 0 and "configuration ok" in out, (rc, out)


@suite.test
def empty_tool_list_checks_ok():
    with tempfile.TemporaryDirectory() as d:
        rc, out = run_check(tools_file(d, []))
        assert rc == 0 and "configuration ok" in out, (rc, out)


@suite.test
def missing_tools_file_is_refused():
    rc, out = run_check("/nonexistent/tools.json")
    assert rc == 2 and "tools: /nonexistent/tools.json: No such file or directory" in out, out


@suite.test
def placeholder_not_a_parameter_is_refused():
    with tempfile.TemporaryDirectory() as d:
        bad = dict(GOOD_TOOL, http={"method": "GET", "path": "/catalog/products/{sku}"})
        path = tools_file(d, [bad])
        rc, out = run_check(path)
        want = "%s: tool 'get_offers': http.path: placeholder {sku} is not a parameter" % path
        assert rc == 2 and want in out, (rc, out)
        # the same mistake stops a real start, before anything listens
        rc, out = run_check(path, check=False)
        assert rc == 2 and want in out, (rc, out)


@suite.test
def duplicate_names_and_unknown_keys_are_refused():
    with tempfile.TemporaryDirectory() as d:
        path = tools_file(d, [GOOD_TOOL, GOOD_TOOL])
        rc, out = run_check(path)
        assert rc == 2 and "tool 'get_offers': name: a second tool of that name" in out, out
        path = tools_file(d, [dict(GOOD_TOOL, timeout=5)])
        rc, out = run_check(path)
        assert rc == 2 and "tool 'get_offers': keys: unknown key 'timeout'" in out, out


@suite.test
def unset_header_variable_is_refused():
    with tempfile.TemporaryDirectory() as d:
        http = dict(GOOD_TOOL["http"], headers={"X-Key": {"env": "TRILEMMA_TEST_NO_SUCH_VAR"}})
        path = tools_file(d, [dict(GOOD_TOOL, http=http)])
        rc, out = run_check(path, {"TRILEMMA_TEST_NO_SUCH_VAR": ""})
        assert rc == 2 and ("http.headers.X-Key: environment variable "
                            "TRILEMMA_TEST_NO_SUCH_VAR is not set") in out, out
        rc, out = run_check(path, {"TRILEMMA_TEST_NO_SUCH_VAR": "k"})
        assert rc == 0, out


@suite.test
def catalog_url_from_environment_is_checked():
    ref = os.path.join(Args.source, "config/tools.json")
    rc, out = run_check(ref, {"TRILEMMA_CATALOG_URL": "ftp://catalog"})
    assert rc == 2 and ("http.base_url: 'ftp://catalog' from TRILEMMA_CATALOG_URL does not "
                        "start with http:// or https://") in out, out
    rc, out = run_check(ref, {"TRILEMMA_CATALOG_URL": "http://catalog.internal:81"})
    assert rc == 0, out


if __name__ == "__main__":
    suite.main()
