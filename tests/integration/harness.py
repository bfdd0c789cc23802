"""harness.py - shared pieces of trilemma's integration tests.

A test file imports this module, builds a Suite, registers test functions with @suite.test and
ends with `suite.main()`. The command line of every test file is

    python3 test_x.py --server PATH/TO/trilemmad --source SOURCE_DIR [-k SUBSTRING]

What is here:
  - Server: writes a temporary INI config, reserves a free port on 127.0.0.1, starts the real
    server (--listen 127.0.0.1:PORT --workers 2 --config FILE), waits until /healthz answers,
    captures stderr to a file (printed when a test fails), stops it with SIGTERM and checks that
    it exits 0 within a bound and printed no sanitizer report.
  - RawWS: a WebSocket client on a plain socket that can send anything (RSV bits, any opcode,
    unmasked frames, lying lengths, header and payload in separate writes) and reads frames,
    close codes and the end of the TCP stream.
  - http_request / read_http_response: a tiny HTTP/1.1 client.
  - make_jwt: HS256 (and alg=none) tokens built with hmac/hashlib/base64.

No sleep stands in for synchronisation: every wait is for an event (a frame, EOF, a process
exit, a successful connect) and TIMEOUT is only a failure bound. No test asserts a duration.
"""

import argparse
import asyncio
import base64
import errno
import hashlib
import hmac
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

# Failure bound for one wait (a frame, a close, EOF). Generous: the server may run under ASan on a
# busy 2-core machine next to other tests.
TIMEOUT = float(os.environ.get("TRILEMMA_TEST_TIMEOUT", "15"))
# Failure bound for the server to come up / to exit after SIGTERM.
START_TIMEOUT = float(os.environ.get("TRILEMMA_START_TIMEOUT", "30"))
STOP_TIMEOUT = float(os.environ.get("TRILEMMA_STOP_TIMEOUT", "30"))

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "ERROR: ThreadSanitizer",
    "WARNING: ThreadSanitizer",
    "AddressSanitizer:DEADLYSIGNAL",
)


class Args:
    """Command-line arguments shared by every test file (filled by Suite.main)."""

    server = None
    source = None


def accept_value(key):
    """The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455 section 4.2.2)."""
    if isinstance(key, str):
        key = key.encode()
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def wait_until(pred, what, timeout=TIMEOUT, interval=0.02):
    """Poll pred() until it returns a true value (returned) or the bound passes (AssertionError).
    For conditions that have no event to wait on (a slot freed in a counter, a process state)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        # a select() on nothing is the retry pause: the condition itself is what we wait for
        select.select([], [], [], interval)


# --------------------------------------------------------------------------------------------
# Server process


def _reserve_port():
    """Return (port, holder): a free port and a bound, non-listening SO_REUSEPORT socket that keeps
    other tests (which bind port 0 without SO_REUSEPORT) from being given the same port while our
    server starts. The server binds the port with SO_REUSEPORT too, so the holder does not stop
    it; the holder never listens, so it never receives a connection."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        holder.bind(("127.0.0.1", port))
    except OSError:
        holder.close()
        return _reserve_port()
    return port, holder


def _ini(config):
    lines = []
    for section, keys in config.items():
        lines.append("[%s]" % section)
        for k, v in keys.items():
            if isinstance(v, bool):
                v = "true" if v else "false"
            lines.append("%s = %s" % (k, v))
        lines.append("")
    return "\n".join(lines)


class Server:
    """One trilemmad process. Use as a context manager, or start()/stop()."""

    all_servers = []

    def __init__(self, config=None, env=None, workers=2, name="server"):
        self.name = name
        self.workers = workers
        # Every test client connects from 127.0.0.1: one address standing for many users, so
        # the per-address turn limits of anonymous sessions (docs/config.md) are off unless a
        # test sets them (test_guards.py does).
        self.config = {"server": {"web_root": os.path.join(Args.source, "web")},
                       "session": {"max_turns_per_ip": 0, "turns_per_minute_per_ip": 0}}
        for section, keys in (config or {}).items():
            self.config.setdefault(section, {}).update(keys)
        self.extra_env = env or {}
        self.proc = None
        self.port = None
        self.dir = tempfile.mkdtemp(prefix="trilemma-it-")
        self.config_path = os.path.join(self.dir, "trilemma.ini")
        self.log_path = os.path.join(self.dir, "stderr.log")
        self.stopped = False
        Server.all_servers.append(self)

    # -- life cycle

    def start(self):
        with open(self.config_path, "w") as f:
            f.write(_ini(self.config))
        # A clean environment for the server: none of the developer's TRILEMMA_* settings,
        # provider keys or DATABASE_URL; the built-in echo responder answers (TRILEMMA_MODEL).
        # A test passes what it needs in env=.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("TRILEMMA_")
            and not k.endswith(("_API_KEY", "_BASE_URL"))
            and k != "DATABASE_URL"
        }
        env["TRILEMMA_MODEL"] = "echo"
        # each server its own spill journal, inside its temporary folder
        env["TRILEMMA_JOURNAL_DIR"] = os.path.join(self.dir, "journal")
        # PostgreSQL for the tests that want one: scripts/test.sh (or a developer) may point
        # TRILEMMA_TEST_DATABASE_URL at a database; without it nothing is stored
        if os.environ.get("TRILEMMA_TEST_DATABASE_URL"):
            env["DATABASE_URL"] = os.environ["TRILEMMA_TEST_DATABASE_URL"]
        env.setdefault(
            "ASAN_OPTIONS",
            "halt_on_error=1:detect_leaks=1:strict_string_checks=1:"
            "check_initialization_order=1:detect_stack_use_after_return=1",
        )
        env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        env.update(self.extra_env)
        self.port, holder = _reserve_port()
        # the admin listener (/healthz, /readyz, /metrics) on a port of its own too: the default
        # (listen's host, port 9180) would be shared by every server of a parallel run
        self.admin_port, admin_holder = _reserve_port()
        self.log = open(self.log_path, "wb")
        cmd = [
            Args.server,
            "--listen",
            "127.0.0.1:%d" % self.port,
            "--admin-listen",
            "127.0.0.1:%d" % self.admin_port,
            "--workers",
            str(self.workers),
            "--config",
            self.config_path,
        ]
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=self.log,
                stderr=self.log,
                cwd=Args.source,
                env=env,
            )
            self._wait_healthy()
        finally:
            holder.close()
            admin_holder.close()
        return self

    def _wait_healthy(self):
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    "%s exited with %s before answering /healthz\n%s"
                    % (self.name, self.proc.returncode, self.stderr_text())
                )
            try:
                r = http_request(self.port, "GET", "/healthz", timeout=2)
                if r.status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    "%s did not answer /healthz within %.0f s\n%s"
                    % (self.name, START_TIMEOUT, self.stderr_text())
                )
            try:
                # doubles as the retry pause: returns at once if the server dies
                self.proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass

    def send_signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                "%s did not exit within %.0f s of the signal\n%s"
                % (self.name, timeout, self.stderr_tail())
            )

    def stop(self, sig=signal.SIGTERM):
        """SIGTERM, then check: exit status 0 within STOP_TIMEOUT, no sanitizer report."""
        if self.stopped or self.proc is None:
            return
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.log.close()
            raise AssertionError(
                "%s did not exit within %.0f s of %s; killed\n%s"
                % (self.name, STOP_TIMEOUT, signal.Signals(sig).name, self.stderr_tail())
            )
        self.log.close()
        self.check_sanitizers()
        if rc != 0:
            raise AssertionError(
                "%s exited with status %s after %s (expected 0)\n%s"
                % (self.name, rc, signal.Signals(sig).name, self.stderr_tail())
            )
        self.clean_ok = True

    def cleanup(self):
        """Remove the temporary folder (config, log, journal) of a server that stopped cleanly and
        whose tests passed; a failed one keeps it for a look (its path is in the report)."""
        if getattr(self, "clean_ok", False) and not getattr(self, "keep", False):
            shutil.rmtree(self.dir, ignore_errors=True)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stopped = True

    def __enter__(self):
        return self.start()

    def __exit__(self, etype, evalue, tb):
        if etype is None:
            self.stop()
        else:
            # the test already failed; still stop politely and report, but do not mask its error
            try:
                self.stop()
            except AssertionError as e:
                print("  (also: %s)" % str(e).splitlines()[0], flush=True)
        return False

    # -- inspection

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self):
        try:
            self.log.flush()
        except (ValueError, AttributeError):
            pass
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stderr_tail(self, lines=80):
        text = self.stderr_text().splitlines()
        head = "---- %s stderr (%s, last %d of %d lines) ----" % (
            self.name,
            self.log_path,
            min(lines, len(text)),
            len(text),
        )
        return "\n".join([head] + text[-lines:] + ["---- end ----"])

    def check_sanitizers(self):
        text = self.stderr_text()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                raise AssertionError(
                    "%s printed a sanitizer report (%r)\n%s" % (self.name, marker, self.stderr_tail(200))
                )

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def ws_url(self, path="/ws"):
        return "ws://127.0.0.1:%d%s" % (self.port, path)


# --------------------------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (lower-case name, value)
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        """The field's value; repeated fields are joined with ", " (RFC 9110 5.3)."""
        vals = self.header_all(name)
        return ", ".join(vals) if vals else default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<HTTP %d %s %r body=%r>" % (self.status, self.reason, self.headers, self.body[:200])


class Conn:
    """A TCP connection with a receive buffer, used both for HTTP and WebSocket."""

    def __init__(self, port, host="127.0.0.1", timeout=TIMEOUT, rcvbuf=None, source=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if source is not None:  # another loopback address, e.g. 127.0.0.2: another client IP
            self.sock.bind((source, 0))
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect((host, port))
        except OSError:
            self.sock.close()
            raise
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.timeout = timeout

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
        return False

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, timeout=None):
        """Read more bytes into buf. Raises EOFError at end of stream, TimeoutError (socket.timeout)
        on the bound, ConnectionResetError on RST."""
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no data from the server within the bound")
        if not data:
            self.eof = True
            raise EOFError("connection closed by the server")
        self.buf += data

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.buf) < n:
            self._fill(max(0.001, deadline - time.monotonic()))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_until(self, marker, timeout=None, limit=1 << 20):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            i = self.buf.find(marker)
            if i >= 0:
                out = bytes(self.buf[: i + len(marker)])
                del self.buf[: i + len(marker)]
                return out
            if len(self.buf) > limit:
                raise AssertionError("no %r within %d bytes" % (marker, limit))
            self._fill(max(0.001, deadline - time.monotonic()))

    def read_to_eof(self, timeout=None):
        """Read until the server ends the stream. Returns ('eof'|'reset', data)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                self._fill(max(0.001, deadline - time.monotonic()))
            except EOFError:
                return "eof", bytes(self.buf)
            except ConnectionResetError:
                return "reset", bytes(self.buf)
            except TimeoutError:
                raise AssertionError("the server did not close the connection within the bound")

    def read_response(self, timeout=None, head_only=False):
        return read_http_response(self, timeout=timeout, head_only=head_only)


def try_connect(port, cls=Conn, **kw):
    """(cls(port, **kw), None) - a Conn or RawWS - or (None, 'refused' | 'reset') when the server
    does not accept the TCP connection. Both are "not accepted": a closed listener refuses new
    SYNs, and one closed while our SYN waited in its queue (a server starting to drain, or
    stopping) answers it with RST, which connect() itself reports as ECONNRESET."""
    try:
        return cls(port, **kw), None
    except ConnectionRefusedError:
        return None, "refused"
    except ConnectionResetError:
        return None, "reset"


def read_http_response(conn, timeout=None, head_only=False):
    """Read one HTTP/1.1 response from conn (a Conn). Body by Content-Length, chunked, or to EOF
    (when the server says Connection: close and gives no length)."""
    head = conn.read_until(b"\r\n\r\n", timeout=timeout)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise AssertionError("bad status line %r" % lines[0])
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        k, _, v = line.partition(":")
        headers.append((k.strip().lower(), v.strip()))
    r = Response(status, reason, headers, b"", head)
    if head_only or status == 101 or status == 204 or status == 304:
        return r
    te = r.header("transfer-encoding", "")
    if "chunked" in te.lower():
        body = bytearray()
        while True:
            size_line = conn.read_until(b"\r\n", timeout=timeout)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                conn.read_until(b"\r\n", timeout=timeout)
                break
            body += conn.read_exact(size, timeout=timeout)
            conn.read_exact(2, timeout=timeout)
        r.body = bytes(body)
    elif r.header("content-length") is not None:
        r.body = conn.read_exact(int(r.header("content-length")), timeout=timeout)
    else:
        _, data = conn.read_to_eof(timeout=timeout)
        conn.buf.clear()
        r.body = data
    return r


def build_request(method, path, headers=None, body=b"", host="127.0.0.1", version="HTTP/1.1"):
    """headers: list of (name, value) or dict. A Host header is added unless host is None or
    headers names one."""
    hl = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {k.lower() for k, _ in hl}
    if host is not None and "host" not in names:
        hl.insert(0, ("Host", host))
    if body and "content-length" not in names:
        hl.append(("Content-Length", str(len(body))))
    head = "%s %s %s\r\n" % (method, path, version)
    head += "".join("%s: %s\r\n" % (k, v) for k, v in hl)
    return head.encode("latin-1") + b"\r\n" + body


def http_request(port, method, path, headers=None, body=b"", timeout=TIMEOUT, host="127.0.0.1"):
    """One request on a fresh connection (Connection: close). Returns a Response."""
    hl = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    if "connection" not in {k.lower() for k, _ in hl}:
        hl.append(("Connection", "close"))
    with Conn(port, timeout=timeout) as c:
        c.send(build_request(method, path, hl, body, host=host))
        # RFC 9110 9.3.2: the answer to HEAD has no body, whatever its Content-Length says
        return c.read_response(timeout=timeout, head_only=(method == "HEAD"))


# --------------------------------------------------------------------------------------------
# WebSocket on a raw socket


class Frame:
    def __init__(self, fin, rsv, opcode, masked, payload):
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.masked = masked
        self.payload = payload

    def close_code(self):
        if len(self.payload) >= 2:
            return struct.unpack("!H", self.payload[:2])[0]
        return None

    def close_reason(self):
        return self.payload[2:]

    def __repr__(self):
        return "<Frame op=%x fin=%d rsv=%d masked=%d len=%d %r>" % (
            self.opcode,
            self.fin,
            self.rsv,
            self.masked,
            len(self.payload),
            self.payload[:80],
        )


def encode_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, key=None, length=None):
    """Bytes of one frame. length overrides the declared payload length (to lie about it)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        key = os.urandom(4) if key is None else key
        head += key
        payload = mask_bytes(payload, key)
    return head, payload


def mask_bytes(data, key):
    if not data:
        return b""
    k = (key * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(len(data), "little")


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


class RawWS(Conn):
    """A WebSocket client on a raw socket. Every frame read is checked to be unmasked (servers
    never mask); a violation is recorded in self.masked_frames and fails expect_* helpers."""

    def __init__(self, port, host="127.0.0.1", timeout=TIMEOUT, rcvbuf=None, source=None):
        Conn.__init__(self, port, host=host, timeout=timeout, rcvbuf=rcvbuf, source=source)
        self.masked_frames = 0
        self.frames_seen = 0
        self.response = None
        self.key = None

    def handshake(self, path="/ws", headers=None, key=None, expect=101, version="13", host="127.0.0.1"):
        """Send an upgrade request; returns the Response. With expect=101 checks the upgrade."""
        self.key = new_key() if key is None else key
        hl = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", self.key),
            ("Sec-WebSocket-Version", version),
        ]
        if headers:
            extra = list(headers.items()) if isinstance(headers, dict) else list(headers)
            names = {k.lower() for k, _ in extra}
            hl = [(k, v) for k, v in hl if k.lower() not in names]
            hl += [(k, v) for k, v in extra if v is not None]
        self.send(build_request("GET", path, hl, host=host))
        r = self.read_response()
        self.response = r
        if expect is not None:
            assert r.status == expect, "upgrade answered %d %s (expected %d): %r" % (
                r.status,
                r.reason,
                expect,
                r,
            )
        if expect == 101:
            assert r.header("sec-websocket-accept") == accept_value(self.key), r
        return r

    def open(self, path="/ws", headers=None):
        """Handshake and read the session event; returns it (a dict)."""
        self.handshake(path=path, headers=headers)
        ev = self.recv_json()
        assert ev.get("type") == "session", "first event is not session: %r" % ev
        return ev

    # -- sending

    def send_frame(self, opcode, payload=b"", fin=True, rsv=0, mask=True, key=None, length=None, split=False):
        head, body = encode_frame(opcode, payload, fin=fin, rsv=rsv, mask=mask, key=key, length=length)
        if split:
            self.send(head)
            if body:
                self.send(body)
        else:
            self.send(head + body)

    def send_text(self, text, **kw):
        self.send_frame(OP_TEXT, text.encode("utf-8") if isinstance(text, str) else text, **kw)

    def send_json(self, obj, **kw):
        self.send_text(json.dumps(obj, ensure_ascii=False), **kw)

    def send_close(self, code=None, reason=b"", raw=None):
        self.send_frame(OP_CLOSE, close_payload(code, reason) if raw is None else raw)

    # -- receiving

    def recv_frame(self, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)

        def left():
            return max(0.001, deadline - time.monotonic())

        h = self.read_exact(2, left())
        fin = bool(h[0] & 0x80)
        rsv = (h[0] >> 4) & 7
        op = h[0] & 0xF
        masked = bool(h[1] & 0x80)
        n = h[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.read_exact(2, left()))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.read_exact(8, left()))[0]
        key = self.read_exact(4, left()) if masked else None
        payload = self.read_exact(n, left()) if n else b""
        if masked:
            self.masked_frames += 1
            payload = mask_bytes(payload, key)
        self.frames_seen += 1
        return Frame(fin, rsv, op, masked, payload)

    def recv_message(self, timeout=None, answer_pings=True):
        """Next data message (opcode, bytes), reassembling fragments. Pings are answered; a close
        frame raises AssertionError naming its code."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        parts, first_op = [], None
        while True:
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            self.check_frame(f)
            if f.opcode == OP_PING:
                if answer_pings:
                    self.send_frame(OP_PONG, f.payload)
                continue
            if f.opcode == OP_PONG:
                continue
            if f.opcode == OP_CLOSE:
                raise AssertionError(
                    "unexpected close %s %r" % (f.close_code(), f.close_reason())
                )
            if first_op is None:
                first_op = f.opcode
            parts.append(f.payload)
            if f.fin:
                return first_op, b"".join(parts)

    def recv_json(self, timeout=None):
        op, data = self.recv_message(timeout)
        assert op == OP_TEXT, "server sent a non-text message (opcode %d)" % op
        return json.loads(data.decode("utf-8"))

    def recv_json_until(self, pred, timeout=None):
        """Read events until pred(ev) is true; returns (that event, the events before it)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        seen = []
        while True:
            ev = self.recv_json(max(0.001, deadline - time.monotonic()))
            if pred(ev):
                return ev, seen
            seen.append(ev)

    def check_frame(self, f):
        assert not f.masked, "the server sent a masked frame: %r" % f
        assert f.rsv == 0, "the server sent a frame with RSV bits: %r" % f

    def expect_close(self, timeout=None, skip_data=True):
        """Wait for a close frame (skipping pings, pongs and - if skip_data - data frames).
        Returns (code or None, reason bytes)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            except EOFError:
                raise AssertionError("the server closed TCP without a close frame")
            except ConnectionResetError:
                raise AssertionError("the server reset the connection without a close frame")
            except TimeoutError:
                raise AssertionError("no close frame from the server within the bound")
            self.check_frame(f)
            if f.opcode == OP_CLOSE:
                assert f.fin, "fragmented close frame from the server"
                return f.close_code(), f.close_reason()
            if f.opcode in (OP_PING, OP_PONG):
                continue
            if not skip_data:
                raise AssertionError("expected a close frame, got %r" % f)

    def expect_eof(self, timeout=None, allow_reset=True):
        """After the close handshake: the server must end the TCP connection and send nothing
        more. Returns 'eof' or 'reset'."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if self.buf:
                raise AssertionError("the server sent bytes after its close frame: %r" % bytes(self.buf[:64]))
            try:
                self._fill(max(0.001, deadline - time.monotonic()))
            except EOFError:
                return "eof"
            except ConnectionResetError:
                if allow_reset:
                    return "reset"
                raise AssertionError("the server reset the connection instead of closing it")
            except TimeoutError:
                raise AssertionError("the server did not close the TCP connection within the bound")


# --------------------------------------------------------------------------------------------
# JWT


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims, secret, alg="HS256", header=None):
    h = {"alg": alg, "typ": "JWT"}
    if header:
        h.update(header)
    signing_input = b64url(json.dumps(h, separators=(",", ":"))) + "." + b64url(
        json.dumps(claims, separators=(",", ":"))
    )
    if alg == "none":
        return signing_input + "."
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    sig = hmac.new(secret.encode() if isinstance(secret, str) else secret, signing_input.encode(), digest).digest()
    return signing_input + "." + b64url(sig)


# --------------------------------------------------------------------------------------------
# Test runner


class Suite:
    """Registers tests, runs them in order, prints a line per test and 'N passed, N failed'."""

    def __init__(self, name):
        self.name = name
        self.tests = []
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.shared = {}
        self._teardowns = []

    def test(self, fn):
        self.tests.append(fn)
        return fn

    def on_teardown(self, fn):
        self._teardowns.append(fn)
        return fn

    def server(self, key="default", config=None, env=None):
        """A server shared by the tests of this file, started on first use and stopped (and
        checked) at the end as a test of its own."""
        if key not in self.shared:
            self.shared[key] = Server(config=config, env=env, name="%s/%s" % (self.name, key)).start()
        return self.shared[key]

    def _run_one(self, name, fn):
        before = {id(s) for s in Server.all_servers}
        t0 = time.monotonic()
        try:
            if asyncio.iscoroutinefunction(fn):
                asyncio.run(asyncio.wait_for(fn(), timeout=TIMEOUT * 8))
            else:
                fn()
        except Exception as e:  # noqa: BLE001 - a test's failure of any kind is reported
            self.failed += 1
            print("FAIL %s (%.2fs)" % (name, time.monotonic() - t0), flush=True)
            tb = traceback.format_exception(type(e), e, e.__traceback__)
            print("".join("    " + line for line in "".join(tb).splitlines(True)), flush=True)
            # the stderr of every server this test touched, and of the shared ones
            for s in Server.all_servers:
                if id(s) not in before or s in self.shared.values():
                    s.keep = True
                    print(s.stderr_tail(), flush=True)
            return
        self.passed += 1
        print("ok   %s" % name, flush=True)

    def main(self):
        p = argparse.ArgumentParser()
        p.add_argument("--server", required=True, help="path of the trilemmad binary")
        p.add_argument("--source", required=True, help="the source tree (for web/)")
        p.add_argument("-k", default=None, help="run only tests whose name contains this")
        a = p.parse_args()
        Args.server = os.path.abspath(a.server)
        Args.source = os.path.abspath(a.source)
        if not os.access(Args.server, os.X_OK):
            print("server binary %s not found" % Args.server)
            sys.exit(1)
        print("== %s against %s" % (self.name, Args.server), flush=True)
        for fn in self.tests:
            if a.k and a.k not in fn.__name__:
                continue
            self._run_one(fn.__name__, fn)
        for fn in self._teardowns:
            self._run_one(fn.__name__, fn)
        for key, s in list(self.shared.items()):
            self._run_one("shared server '%s' exits 0 on SIGTERM, no sanitizer report" % key, s.stop)
        for s in Server.all_servers:
            s.kill()
            s.cleanup()
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        sys.exit(1 if self.failed else 0)
