#!/usr/bin/env python3
"""test_image.py - the offline-built image is complete and configured as Kubernetes expects.

  python3 test_image.py --server build/trilemmad --source .      (ctest label `image`, as root)

1. scripts/image/build-offline.sh builds the image with buildah from the cached debootstrap
   root file system (scripts/image/rootfs.sh) and keeps its file tree; `buildah inspect` shows
   user 10001:10001, entrypoint /usr/local/bin/trilemmad, port 8080, working directory
   /opt/trilemma, the journal variable.
2. The tree holds the runtime libraries and no build tools or -dev packages.
3. The migration Job's command (`trilemmad --migrate ...`) runs in the tree against a private
   PostgreSQL and applies the migrations.
4. The server runs in the tree as a pod of k8s/base/deployment.yaml would (tests/k8s/minictr.py:
   read-only root, tmpfs journal and /tmp, the ConfigMap's INI bind-mounted at
   /etc/trilemma, uid 10001, no_new_privs, the PostgreSQL socket folder mounted in): it starts,
   migrates, answers /healthz and /readyz (storage ok) on its admin port, relays a chat from trilemma-sim (running
   outside, on 127.0.0.1) with a JWT-authenticated session, stores it (rows in PostgreSQL),
   exports the metrics the HPA and the alerts use, and exits 0 on SIGTERM.
5. The same run under the seccomp profile k8s/seccomp/trilemma-io-uring.json (libseccomp
   filter loaded just before execve, as runc does): the profile lets everything above work.

When it runs: the root file system is built once per package list (debootstrap, 2-4 minutes,
needs Debian's mirror) and cached under /var/cache/trilemma. The test runs when that cache
exists, when TRILEMMA_IMAGE_TESTS=1, or in CI (CI=true); otherwise it exits 77 (skipped) and
says how to run it. TRILEMMA_IMAGE_TESTS=0 always skips.

  python3 test_image.py --server build/trilemmad --source . --trace-seccomp OUT.json
runs step 4 under strace instead and writes the seccomp profile from the system calls seen
(plus a reviewed baseline): how k8s/seccomp/trilemma-io-uring.json is made.
"""

import asyncio
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402
from harness import TIMEOUT, Args, Suite, http_request, make_jwt, wait_until  # noqa: E402
from k8s_common import Cluster, Sim, find_sibling  # noqa: E402

suite = Suite("image")
S = {}  # state shared by the steps, in order
JWT_SECRET = "jwt-secret-for-the-image-test-0123456789abcdef"
TAG = "test-%d" % os.getpid()
IMAGE = "localhost/trilemma-imagetest:" + TAG
STORAGE = ["--storage-driver", os.environ.get("BUILDAH_STORAGE_DRIVER", "vfs")]
TRACE_OUT = None


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 900)
    return subprocess.run(cmd, **kw)


def rootfs_cached():
    return bool(glob.glob(os.path.join(os.environ.get("TRILEMMA_ROOTFS_CACHE", "/var/cache/trilemma"), "rootfs-server-*", ".complete")))


# --------------------------------------------------------------------------------------------
# 1-2: the image


@suite.test
def image_builds_offline_with_buildah_and_its_config_is_what_kubernetes_expects():
    S["work"] = tempfile.mkdtemp(prefix="trilemma-image-test-", dir="/var/tmp")
    S["tree"] = os.path.join(S["work"], "tree")
    r = run([os.path.join(Args.source, "scripts/image/build-offline.sh"), "--build-dir", os.path.dirname(Args.server),
             "--name", IMAGE.split(":")[0], "--tag", TAG, "--keep-tree", S["tree"]])
    sys.stdout.write("".join("    " + line + "\n" for line in r.stderr.splitlines() if "rootfs:" in line or "committed" in line))
    assert r.returncode == 0, "build-offline.sh failed:\n%s\n%s" % (r.stdout, r.stderr[-3000:])
    S["image"] = IMAGE
    r = run(["buildah", *STORAGE, "inspect", "--type", "image", IMAGE])
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)["OCIv1"]["config"]
    assert cfg.get("User") == "10001:10001", cfg
    assert cfg.get("Entrypoint") == ["/usr/local/bin/trilemmad"], cfg
    assert {p.split("/")[0] for p in cfg.get("ExposedPorts", {})} == {"8080", "9180"}, cfg
    assert cfg.get("WorkingDir") == "/opt/trilemma", cfg
    assert "TRILEMMA_JOURNAL_DIR=/var/lib/trilemma/journal" in cfg.get("Env", []), cfg
    assert cfg.get("StopSignal") == "SIGTERM", cfg
    assert not cfg.get("Cmd"), cfg
    print("    image %s: user %s, entrypoint %s, ports %s" % (IMAGE, cfg["User"], cfg["Entrypoint"], list(cfg["ExposedPorts"])))


@suite.test
def the_image_holds_the_runtime_libraries_and_no_build_tools():
    tree = S["tree"]
    with open(os.path.join(tree, "var/lib/dpkg/status")) as f:
        installed = set(re.findall(r"^Package: (\S+)\nStatus: install ok installed", f.read(), re.M))
    wanted = [line.split("#")[0].strip() for line in open(os.path.join(Args.source, "scripts/image/runtime-packages.txt"))]
    wanted = [w for w in wanted if w]
    missing = [p for p in wanted if p not in installed]
    assert not missing, "runtime packages missing: %s" % missing
    build = sorted(p for p in installed if p.endswith("-dev") or p in (
        "gcc", "gcc-12", "g++", "cpp", "make", "cmake", "binutils", "build-essential", "pkg-config", "libc6-dev"))
    assert not build, "build tools in the runtime image: %s" % build
    for path in ("usr/local/bin/trilemmad", "opt/trilemma/config/prices.csv", "opt/trilemma/web/index.html"):
        assert os.path.isfile(os.path.join(tree, path)), path
    assert glob.glob(os.path.join(tree, "opt/trilemma/store/migrations/*.sql")), "no migrations in the image"
    st = os.stat(os.path.join(tree, "var/lib/trilemma/journal"))
    assert (st.st_uid, st.st_gid) == (10001, 10001), "journal folder owned by %d:%d" % (st.st_uid, st.st_gid)
    assert "trilemma:x:10001:10001:" in open(os.path.join(tree, "etc/passwd")).read()
    # every library trilemmad needs resolves inside the tree
    r = run(["chroot", tree, "/usr/bin/ldd", "/usr/local/bin/trilemmad"])
    assert r.returncode == 0 and "not found" not in r.stdout, r.stdout + r.stderr
    print("    %d packages, none for building; ldd finds every library" % len(installed))


# --------------------------------------------------------------------------------------------
# 3-5: running it


def pod_spec(argv, env, seccomp=None, cfgdir=None):
    spec = {
        "root": S["tree"],
        "argv": argv,
        "env": env,
        "cwd": "/opt/trilemma",
        "uid": 10001,
        "gid": 10001,
        "readonly": True,
        # emptyDirs of k8s/base/deployment.yaml
        "tmpfs": [["/tmp", "size=64m,mode=1777"], ["/var/lib/trilemma/journal", "size=512m,mode=0700,uid=10001,gid=10001"]],
        "binds": [[S["pg"].dir, "/run/postgresql", False]],
        "seccomp": seccomp,
    }
    if cfgdir:
        spec["binds"].append([cfgdir, "/etc/trilemma", True])
    path = os.path.join(S["work"], "spec-%d.json" % len(os.listdir(S["work"])))
    with open(path, "w") as f:
        json.dump(spec, f)
    return path


def database_url():
    return S["pg"].url_for_socket_dir("/run/postgresql")


@suite.test
def the_migration_jobs_command_runs_in_the_image():
    S["pg"] = Cluster()
    S["pg"].psql("SELECT 1")
    spec = pod_spec(["/usr/local/bin/trilemmad", "--migrate", "--migrations", "/opt/trilemma/store/migrations"],
                    {"DATABASE_URL": database_url()})
    r = run([sys.executable, os.path.join(HERE, "minictr.py"), spec], timeout=120)
    assert r.returncode == 0, "trilemmad --migrate exited %d\n%s%s" % (r.returncode, r.stdout, r.stderr)
    assert "migrations applied" in r.stdout, r.stdout
    n = int(S["pg"].psql("SELECT count(*) FROM schema_migrations")[0][0])
    files = len(glob.glob(os.path.join(Args.source, "store/migrations/*.sql")))
    assert n == files, "%d migrations recorded, %d files" % (n, files)
    print("    %d migrations applied from /opt/trilemma/store/migrations" % n)


class PodProcess:
    """trilemmad in the tree, started through minictr.py (optionally under strace)."""

    def __init__(self, seccomp=None, trace_prefix=None):
        # a free port; its holder must go before the server binds: SO_REUSEPORT only shares a
        # port between sockets of the same user, and the server runs as 10001
        self.port, holder = harness._reserve_port()
        holder.close()
        # the admin port (/healthz, /readyz, /metrics: what the kubelet and Prometheus use) on a
        # free port too: the ConfigMap's 0.0.0.0:9180 may be taken by another test's server
        self.admin_port, holder = harness._reserve_port()
        holder.close()
        cfgdir = os.path.join(S["work"], "configmap")
        os.makedirs(cfgdir, exist_ok=True)
        # the ConfigMap's file, as k8s/base renders it
        shutil.copy(os.path.join(Args.source, "k8s/base/trilemma.ini"), os.path.join(cfgdir, "trilemma.ini"))
        os.chmod(cfgdir, 0o755)
        env = {
            # as the Deployment sets them (k8s/base, k8s/overlays/dev)
            "TRILEMMA_WORKERS": "2",
            "TRILEMMA_JOURNAL_DIR": "/var/lib/trilemma/journal",
            "DATABASE_URL": database_url(),
            "TRILEMMA_JWT_SECRET": JWT_SECRET,
            "TRILEMMA_MODEL": "openai/sim-shopper",
        }
        env.update(S["sim"].base_urls())
        argv = ["/usr/local/bin/trilemmad", "--config", "/etc/trilemma/trilemma.ini", "--migrations",
                "/opt/trilemma/store/migrations", "--listen", "127.0.0.1:%d" % self.port,
                "--admin-listen", "127.0.0.1:%d" % self.admin_port]
        spec = pod_spec(argv, env, seccomp=seccomp, cfgdir=cfgdir)
        cmd = [sys.executable, os.path.join(HERE, "minictr.py"), spec]
        self.traced = bool(trace_prefix)
        if trace_prefix:
            cmd = ["strace", "-f", "-ff", "-qq", "-o", trace_prefix] + cmd
        self.log_path = os.path.join(S["work"], "server-%d.log" % self.port)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        try:
            wait_until(self.healthy, "trilemmad in the image to answer /healthz", timeout=60)
        except BaseException:
            if self.proc.poll() is None:
                self.proc.kill()  # minictr executed the server: this pid is the server (or strace)
                self.proc.wait()
            raise

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def healthy(self):
        if self.proc.poll() is not None:
            raise AssertionError("the server exited with %s\n%s" % (self.proc.returncode, self.text()))
        try:
            return http_request(self.admin_port, "GET", "/healthz", timeout=2).status == 200
        except OSError:
            return False

    def target_pid(self):
        """trilemmad's pid: the launcher's (it executes the server), or under strace its child."""
        if not self.traced:
            return self.proc.pid
        with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
            return int(f.read().split()[0])

    def stop(self):
        target = self.target_pid()
        os.kill(target, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            # never leave a server behind: kill it (and strace, if tracing) and fail
            for pid in {target, self.proc.pid}:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait()
            self.log.close()
            raise AssertionError("no exit within 60 s of SIGTERM; killed\n%s" % self.text()[-3000:])
        self.log.close()
        assert rc == 0, "exit status %s after SIGTERM\n%s" % (rc, self.text())


async def chat(port, text):
    import websockets

    token = make_jwt({"sub": "image-test-user", "exp": int(time.time()) + 600}, JWT_SECRET)
    async with websockets.connect("ws://127.0.0.1:%d/ws?token=%s" % (port, token), max_size=None) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert first["type"] == "session", first
        await ws.send(json.dumps({"type": "user_message", "id": "m1", "text": text}))
        deltas = []
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if m["type"] == "delta":
                deltas.append(m["text"])
            elif m["type"] == "error":
                raise AssertionError("error event: %r" % m)
            elif m["type"] == "turn_end":
                return first, "".join(deltas), m


def serve_and_chat(seccomp=None, trace_prefix=None):
    if "sim" not in S:
        sim = find_sibling(Args.server, "trilemma-sim", "TRILEMMA_SIM")
        assert sim, "trilemma-sim not found next to %s" % Args.server
        S["sim"] = Sim(sim)
    before = int(S["pg"].psql("SELECT count(*) FROM turns")[0][0])
    pod = PodProcess(seccomp=seccomp, trace_prefix=trace_prefix)
    try:
        # ready at once; storage "degraded" until the writer connection is up, then "ok"
        wait_until(lambda: (lambda x: x.status == 200 and b"storage: ok" in x.body)(http_request(pod.admin_port, "GET", "/readyz")),
                   "/readyz 200 with storage ok")
        # a request without a token is refused: the JWT secret from the environment is in force
        assert http_request(pod.port, "GET", "/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                                              "Sec-WebSocket-Key": harness.new_key(),
                                                              "Sec-WebSocket-Version": "13"}).status == 401
        text = "hello from the image: ₹2,499 & <ok>"
        session, answer, end = asyncio.run(chat(pod.port, "[[sim:echo]]" + text))
        assert answer == text, (answer, text)
        assert end["finish_reason"] == "stop", end
        assert end["cost"]["micros"] > 0 and end["cost"]["currency"] == "INR", end  # prices.csv loaded
        turns = int(S["pg"].psql("SELECT count(*) FROM turns")[0][0])
        assert turns == before + 1, "turns rows %d -> %d" % (before, turns)
        ledger = S["pg"].psql("SELECT sum(amount_micros) FROM ledger l JOIN turns t ON t.id = l.turn_id "
                              "WHERE t.conversation_id = '%s'" % session["conversation_id"])
        assert int(ledger[0][0]) == end["cost"]["micros"], (ledger, end["cost"])
        metrics = http_request(pod.admin_port, "GET", "/metrics").body.decode()
        for name in ("trilemma_sessions_open", "trilemma_store_journal_bytes 0", "trilemma_turns_finished_total",
                     "trilemma_chat_errors_total"):
            assert name in metrics, "%s missing from /metrics" % name
    except BaseException:
        print(pod.text()[-4000:])
        raise
    finally:
        if pod.proc.poll() is None:
            pod.stop()
    return end


@suite.test
def the_server_runs_in_the_image_as_a_pod_would_and_relays_a_chat():
    end = serve_and_chat()
    print("    chat relayed from trilemma-sim: %d output tokens, cost %d micro-INR, stored"
          % (end["usage"]["output_tokens"], end["cost"]["micros"]))


@suite.test
def the_seccomp_profile_for_io_uring_lets_the_server_work():
    profile = os.path.join(Args.source, "k8s/seccomp/trilemma-io-uring.json")
    import ctypes.util

    assert ctypes.util.find_library("seccomp"), "libseccomp (libseccomp2) is not installed"
    serve_and_chat(seccomp=profile)
    with open(profile) as f:
        n = sum(len(s["names"]) for s in json.load(f)["syscalls"])
    print("    the chat works under k8s/seccomp/trilemma-io-uring.json (%d system calls allowed)" % n)


@suite.test
def without_io_uring_in_the_profile_the_server_stops_at_start_with_the_documented_symptom():
    # what a runtime whose RuntimeDefault refuses io_uring (containerd >= 2.0, Docker >= 25)
    # does to the pod: docs/operations.md names this message
    with open(os.path.join(Args.source, "k8s/seccomp/trilemma-io-uring.json")) as f:
        prof = json.load(f)
    for rule in prof["syscalls"]:
        rule["names"] = [n for n in rule["names"] if not n.startswith("io_uring_")]
    path = os.path.join(S["work"], "no-io-uring.json")
    with open(path, "w") as f:
        json.dump(prof, f)
    try:
        pod = PodProcess(seccomp=path)
    except AssertionError as e:
        msg = str(e)
        assert "the server exited with 1" in msg, msg
        assert "Operation not permitted" in msg, msg
        print("    " + next(l for l in msg.splitlines() if "Operation not permitted" in l).strip())
        return
    pod.stop()
    raise AssertionError("the server started although io_uring_setup is refused")


@suite.on_teardown
def cleanup():
    if "sim" in S:
        S["sim"].stop()
    if "pg" in S:
        S["pg"].stop()
    if "image" in S:
        r = run(["buildah", *STORAGE, "rmi", S["image"]])
        assert r.returncode == 0, r.stderr
    if suite.failed == 0 and "work" in S:
        shutil.rmtree(S["work"], ignore_errors=True)
    elif "work" in S:
        print("    kept %s for a look" % S["work"])


# --------------------------------------------------------------------------------------------
# the seccomp profile's generator


# Beyond what the traced run calls: system calls of paths the test does not walk but production
# does (TLS to real providers, DNS, PostgreSQL over TCP, time zone and locale files, thread
# creation variants, signals, the journal's file handling, crash paths). Reviewed by hand; none
# of the ones a container must not have (mount, ptrace, bpf, keyctl, unshare, setns,
# kexec, modules, perf_event_open, userfaultfd, clock setting, reboot, swap, chroot).
BASELINE = """
accept accept4 access arch_prctl bind brk capget clock_getres clock_gettime clock_nanosleep clone
clone3 close close_range connect dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_pwait
epoll_wait eventfd eventfd2 execve exit exit_group faccessat faccessat2 fadvise64 fallocate fchmod
fchown fcntl fdatasync flock fstat fstatfs fsync ftruncate futex futex_waitv get_robust_list
getcwd getdents64 getegid geteuid getgid getgroups getitimer getpeername getpgrp getpid getppid
getpriority getrandom getresgid getresuid getrlimit getrusage getsockname getsockopt gettid
gettimeofday getuid io_uring_enter io_uring_register io_uring_setup ioctl kill listen lseek
lstat madvise membarrier memfd_create mincore mkdir mkdirat mlock mmap mprotect mremap msync
munlock munmap nanosleep newfstatat open openat openat2 pipe pipe2 poll ppoll prctl pread64
preadv preadv2 prlimit64 pselect6 pwrite64 pwritev pwritev2 read readlink readlinkat readv
recvfrom recvmmsg recvmsg rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction
rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
rt_tgsigqueueinfo sched_get_priority_max sched_get_priority_min sched_getaffinity sched_getparam
sched_getscheduler sched_yield select sendfile sendmmsg sendmsg sendto set_robust_list
set_tid_address setitimer setsockopt shutdown sigaltstack socket socketpair splice stat statfs
statx symlink symlinkat sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
timer_gettime timer_settime timerfd_create timerfd_gettime timerfd_settime tkill truncate umask
uname unlink unlinkat utimensat wait4 waitid write writev
""".split()

FORBIDDEN = set("""
acct add_key bpf chroot clock_adjtime clock_settime delete_module finit_module fsconfig fsmount
fsopen fspick init_module ioperm iopl kcmp kexec_file_load kexec_load keyctl lookup_dcookie mount
mount_setattr move_mount name_to_handle_at nfsservctl open_by_handle_at open_tree perf_event_open
personality pivot_root process_vm_readv process_vm_writev ptrace quotactl reboot request_key
setdomainname sethostname setns settimeofday swapoff swapon syslog umount2 unshare userfaultfd
vhangup
""".split())


def trace_seccomp(out):
    """Run the pod scenario under strace; write the profile (traced calls + BASELINE)."""
    prefix = os.path.join(S["work"], "trace", "t")
    os.makedirs(os.path.dirname(prefix))
    serve_and_chat(trace_prefix=prefix)
    seen = set()
    for path in glob.glob(prefix + ".*"):
        lines = open(path, errors="replace").read().splitlines()
        # the launcher's own calls come before it executes trilemmad
        start = next((i for i, l in enumerate(lines) if l.startswith('execve("/usr/local/bin/trilemmad"')), None)
        body = lines[start:] if start is not None else ([] if any(l.startswith("execve(") for l in lines) else lines)
        for line in body:
            m = re.match(r"(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)", line)
            if m:
                seen.add(m.group(1))
    bad = sorted(seen & FORBIDDEN)
    assert not bad, "the server called system calls a container must not have: %s" % bad
    names = sorted(seen | set(BASELINE))
    digest = hashlib.sha256(" ".join(sorted(seen)).encode()).hexdigest()[:12]
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}],
    }
    with open(out, "w") as f:
        json.dump(profile, f, indent=2)
        f.write("\n")
    print("    traced %d system calls (set %s); wrote %d names to %s; traced beyond the baseline: %s"
          % (len(seen), digest, len(names), out, " ".join(sorted(seen - set(BASELINE))) or "none"))


def main():
    global TRACE_OUT
    if "--trace-seccomp" in sys.argv:
        i = sys.argv.index("--trace-seccomp")
        TRACE_OUT = os.path.abspath(sys.argv[i + 1])
        del sys.argv[i:i + 2]
    if os.geteuid() != 0:
        print("image test: needs root (debootstrap, chroot, mounts); skipped")
        sys.exit(77)
    gate = os.environ.get("TRILEMMA_IMAGE_TESTS", "")
    if gate == "0":
        print("image test: TRILEMMA_IMAGE_TESTS=0: skipped")
        sys.exit(77)
    if gate != "1" and os.environ.get("CI") != "true" and not rootfs_cached() and not TRACE_OUT:
        print("image test: no cached root file system under /var/cache/trilemma and TRILEMMA_IMAGE_TESTS "
              "is not 1: skipped (building it takes debootstrap 2-4 minutes; run with "
              "TRILEMMA_IMAGE_TESTS=1 once, later runs reuse it)")
        sys.exit(77)
    server = None
    if "--server" in sys.argv:
        server = sys.argv[sys.argv.index("--server") + 1]
    if server and re.search(r"lib(asan|ubsan|tsan)", run(["ldd", server]).stdout):
        print("image test: %s is a sanitizer build, which an image cannot hold; skipped "
              "(it runs in the plain build tree)" % server)
        sys.exit(77)
    for tool in ("buildah", "debootstrap"):
        if not shutil.which(tool):
            print("image test: %s is missing (scripts/deps.sh --test installs it)" % tool)
            sys.exit(1)
    if TRACE_OUT:
        suite.tests = [image_builds_offline_with_buildah_and_its_config_is_what_kubernetes_expects,
                       the_migration_jobs_command_runs_in_the_image]
        suite.test(lambda: trace_seccomp(TRACE_OUT)).__name__ = "trace_seccomp"
    suite.main()


if __name__ == "__main__":
    main()
