"""serve.py - start the stack an eval runs against: trilemma-sim (models, judge, commerce API),
a private PostgreSQL cluster (tests/store/pg_cluster.sh) and trilemmad with a named
configuration's agents file, all on free loopback ports; stop everything it started.

A configuration is a folder with an agents.ini (its prompt paths relative to that folder, as
trilemmad reads them) and optionally a tools.json; its name is the folder's name unless given.
Two more optional files make the rest of a deployment part of the configuration:

  server.ini  main-config overrides passed to trilemmad (any section of docs/config.md, e.g.
              [cache] exact = off, [model] history_messages = 64), applied over the stack's own
              settings; in a value, {sim} is the simulator's base URL (for [cache] embeddings_url)
              and a relative *_file path is taken from the configuration's folder
  sim.args    more trilemma-sim flags, shell words, one or more per line ('#' comments), e.g.
              --cache-ttl-s 0 (the provider keeps no prompt cache)
"""

import configparser
import hashlib
import os
import shlex
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def _harness(source, server_bin):
    sys.path.insert(0, os.path.join(source, "tests", "integration"))
    import harness  # noqa: E402  (the integration tests' server runner)

    harness.Args.server = server_bin
    harness.Args.source = source
    return harness


class BadConfig(ValueError):
    pass


def read_server_ini(config_dir, sim_url=None):
    """server.ini of a configuration folder -> {section: {key: value}} ({} without the file).
    With sim_url, {sim} in values becomes it; relative *_file paths are made absolute against
    the folder. A file that does not parse (or repeats a key) is a BadConfig naming it."""
    path = os.path.join(config_dir, "server.ini")
    if not os.path.exists(path):
        return {}
    cp = configparser.ConfigParser(interpolation=None, strict=True, inline_comment_prefixes=(";",),
                                   comment_prefixes=(";", "#"))
    try:
        with open(path, encoding="utf-8") as f:
            cp.read_file(f)
    except (configparser.Error, UnicodeDecodeError) as e:
        raise BadConfig("%s: %s" % (path, str(e).splitlines()[0]))
    out = {}
    for sec in cp.sections():
        for k, v in cp.items(sec):
            if sim_url is not None:
                v = v.replace("{sim}", sim_url)
            if k.endswith("_file") and v and not os.path.isabs(v):
                v = os.path.normpath(os.path.join(os.path.abspath(config_dir), v))
            out.setdefault(sec, {})[k] = v
    return out


def read_sim_args(config_dir):
    """sim.args of a configuration folder -> [flag, ...] ([] without the file)."""
    path = os.path.join(config_dir, "sim.args")
    if not os.path.exists(path):
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            try:
                out += shlex.split(line, comments=True)
            except ValueError as e:
                raise BadConfig("%s:%d: %s" % (path, no, e))
    return out


def describe_config(config_dir):
    """What a run records about its configuration: the agents file's models per agent, the
    routes, and each prompt file's version (first 12 hex digits of its SHA-256, as trilemmad
    records prompt_version)."""
    path = os.path.join(config_dir, "agents.ini")
    agents, routes, prompts, capacities, classifier, cur = {}, {}, {}, {}, None, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split(";", 1)[0].strip()
            if not line:
                continue
            if line.startswith("["):
                cur = line[1:-1].strip()
                continue
            k, _, v = (x.strip() for x in line.partition("="))
            if cur.startswith("agent "):
                a = agents.setdefault(cur[6:].strip(), {})
                a[k] = v
                if k == "prompt":
                    p = os.path.normpath(os.path.join(config_dir, v))
                    with open(p, "rb") as pf:
                        prompts[os.path.basename(p)] = hashlib.sha256(pf.read()).hexdigest()[:12]
            elif cur.startswith("route "):
                routes.setdefault(cur[6:].strip(), {})[k] = v
            elif cur.startswith("capacity "):
                capacities.setdefault(cur[9:].strip(), {})[k] = v
            elif cur == "classifier" and k == "model":
                classifier = v
    return {"agents": agents, "routes": routes, "capacities": capacities,
            "prompt_versions": prompts, "classifier": classifier, "server": read_server_ini(config_dir),
            "sim_args": read_sim_args(config_dir)}


class Stack:
    """sim + PostgreSQL (optional) + trilemmad for one configuration. start(), then .ws_url,
    .http_url, .admin_token, .sim_url; stop() always."""

    def __init__(self, source, build, config_dir, db=True, sim_args=(), workers=1, fast=True,
                 seed=1):
        self.source, self.build, self.config_dir = source, build, os.path.abspath(config_dir)
        self.db, self.workers, self.fast, self.seed = db, workers, fast, seed
        self.sim_args = read_sim_args(self.config_dir) + list(sim_args)
        read_server_ini(self.config_dir)  # a bad file stops here, before anything starts
        self.tmp = tempfile.mkdtemp(prefix="trilemma-eval-")
        os.chmod(self.tmp, 0o755)  # PostgreSQL runs as `postgres` when we are root
        self.sim = self.server = None
        self.pg_dir = None
        self.admin_token = secrets.token_hex(16)

    def _start_sim(self):
        log_path = os.path.join(self.tmp, "sim.log")
        cmd = [os.path.join(self.build, "trilemma-sim"), "--listen", "127.0.0.1:0", "--seed",
               str(self.seed)]
        if self.fast:  # the eval measures answers, not the simulator's pacing
            cmd += ["--ttft-ms", "5", "--ttft-jitter-ms", "0", "--tps", "0", "--classifier-ms", "1"]
            for ep in ("search", "product", "offers", "policy", "order"):
                cmd += ["--catalog-" + ep, "ms=0-2"]
        cmd += self.sim_args
        self.sim_log = open(log_path, "wb")
        self.sim = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.sim_log,
                                    stderr=self.sim_log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with open(log_path, "rb") as f:
                m = re.search(rb"listening on http://127\.0\.0\.1:(\d+)/", f.read())
            if m:
                self.sim_url = "http://127.0.0.1:%d" % int(m.group(1))
                return
            try:
                self.sim.wait(timeout=0.05)  # the retry pause; returns at once if the sim died
                break
            except subprocess.TimeoutExpired:
                pass
        raise RuntimeError("trilemma-sim did not start: " + open(log_path).read()[-2000:])

    def _start_pg(self):
        self.pg_dir = os.path.join(self.tmp, "pg")
        out = subprocess.run([os.path.join(self.source, "tests", "store", "pg_cluster.sh"),
                              "start", self.pg_dir], capture_output=True, text=True,
                             env=dict(os.environ, PG_CLUSTER_OPTS="-c fsync=off"))
        if out.returncode != 0:
            raise RuntimeError("PostgreSQL did not start: " + out.stderr[-2000:])
        return out.stdout.strip().splitlines()[-1]

    def start(self):
        try:
            self._start_sim()
            env = {"OPENAI_BASE_URL": self.sim_url + "/v1", "ANTHROPIC_BASE_URL": self.sim_url,
                   "GEMINI_BASE_URL": self.sim_url, "TRILEMMA_CATALOG_URL": self.sim_url,
                   "TRILEMMA_MODEL": "openai/sim-frontier",
                   "TRILEMMA_ADMIN_TOKEN": self.admin_token}
            if self.db:
                env["DATABASE_URL"] = self._start_pg()
            tools = os.path.join(self.config_dir, "tools.json")
            if not os.path.exists(tools):
                tools = os.path.join(self.source, "config", "tools.json")
            cfg = {"model": {"model": "openai/sim-frontier", "retry_base_ms": 10,
                             "first_token_timeout_ms": 20000, "stall_timeout_ms": 20000},
                   "orchestrator": {"agents_file": os.path.join(self.config_dir, "agents.ini")},
                   "tools": {"tools_file": tools},
                   "server": {"max_connections_per_ip": 10000},
                   "session": {"rate_messages": 1000, "rate_window_ms": 1000},
                   "log": {"level": "warn"}}
            for sec, keys in read_server_ini(self.config_dir, self.sim_url).items():
                cfg.setdefault(sec, {}).update(keys)
            h = _harness(self.source, os.path.join(self.build, "trilemmad"))
            server = h.Server(config=cfg, env=env, workers=self.workers, name="eval")
            server.start()  # raises with the server's log when it does not come up
            self.server = server
            self.ws_url = self.server.ws_url()
            self.http_url = self.server.url("")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Stop whatever was started, each part even when another fails to stop cleanly."""
        try:
            if self.server is not None:
                server, self.server = self.server, None
                server.stop()  # raises when trilemmad did not exit cleanly (status, sanitizer)
        finally:
            try:
                self._stop_sim()
            finally:
                if self.pg_dir:
                    subprocess.run([os.path.join(self.source, "tests", "store", "pg_cluster.sh"),
                                    "stop", self.pg_dir], capture_output=True)
                    self.pg_dir = None
                shutil.rmtree(self.tmp, ignore_errors=True)

    def _stop_sim(self):
        if self.sim is None:
            return
        sim, self.sim = self.sim, None
        if sim.poll() is None:
            sim.send_signal(signal.SIGTERM)
            try:
                sim.wait(timeout=10)
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait()
        self.sim_log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
