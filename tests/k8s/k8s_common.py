"""k8s_common.py - pieces shared by tests/k8s's Python tests: a private PostgreSQL cluster
(tests/store/pg_cluster.sh) with psql, and the simulated provider (trilemma-sim) on a free
loopback port. Waits are for events (a line in a log, a process state); TIMEOUT only bounds them.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from harness import TIMEOUT, wait_until  # noqa: E402

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")


class Cluster:
    """tests/store/pg_cluster.sh: a throwaway cluster, unix socket only, in its own folder."""

    def __init__(self, parent=None):
        self.script = os.path.join(HERE, "..", "store", "pg_cluster.sh")
        self.dir = tempfile.mkdtemp(prefix="trilemma-k8s-pg-", dir=parent)
        os.chmod(self.dir, 0o755)  # the socket must be reachable by uid 10001
        self.url = self._run("start").splitlines()[-1]

    def _run(self, cmd):
        r = subprocess.run([self.script, cmd, self.dir], capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, "pg_cluster.sh %s failed:\n%s" % (cmd, r.stderr)
        return r.stdout.strip()

    def url_for_socket_dir(self, path):
        """DATABASE_URL with the socket folder seen at path (inside a chroot)."""
        return re.sub(r"host=[^&]*", "host=" + path, self.url)

    def psql(self, sql):
        """Rows of the last statement (lists of text)."""
        cmd = [os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1",
               "-h", self.dir, "-U", "postgres", "-d", "trilemma"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        r = subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=TIMEOUT, cwd="/")
        assert r.returncode == 0, "psql failed: %s\n%s" % (r.stderr, sql[:300])
        return [line.split("|") for line in r.stdout.splitlines() if line]

    def stop(self):
        self._run("stop")


class Sim:
    """trilemma-sim on 127.0.0.1 (a free port), one worker."""

    def __init__(self, binary, *args):
        self.dir = tempfile.mkdtemp(prefix="trilemma-k8s-sim-")
        self.log_path = os.path.join(self.dir, "sim.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--workers", "1", "--ttft-ms", "5", "--ttft-jitter-ms", "0", *args],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.port = int(wait_until(self._port, "trilemma-sim to listen"))

    def _port(self):
        if self.proc.poll() is not None:
            raise AssertionError("trilemma-sim exited:\n" + open(self.log_path).read())
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", open(self.log_path).read())
        return m.group(1) if m else None

    def base_urls(self):
        u = "http://127.0.0.1:%d" % self.port
        return {"OPENAI_BASE_URL": u + "/v1", "ANTHROPIC_BASE_URL": u, "GEMINI_BASE_URL": u}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=TIMEOUT)
        self.log.close()


def find_sibling(server, name, env_var):
    """A program built next to trilemmad (build/trilemma-sim), or named by env_var."""
    p = os.environ.get(env_var) or os.path.join(os.path.dirname(server), name)
    return p if os.access(p, os.X_OK) else None
