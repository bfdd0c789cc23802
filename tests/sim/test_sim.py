"""test_sim.py - trilemma-sim, the simulated model provider, checked from the outside.

    python3 test_sim.py --sim PATH/TO/trilemma-sim [-k SUBSTRING]

Starts the real binary on free ports and talks to it over plain sockets: the HTTP/1.1 chunked
framing is decoded by hand (so each chunk and each socket read is visible), and the
server-sent events are parsed per the WHATWG event-stream rules by the small parser below,
independently of anything in the project. Checked for each of the three wire formats (OpenAI
Chat Completions, Anthropic Messages, Gemini streamGenerateContent?alt=sse): exact framing and
event order, deterministic answers, [[sim:echo]] byte-exactness (multi-byte, quotes,
backslashes, newlines), usage and cached tokens, tool-call shapes, 429 + retry-after over
--max-streams and --tpm, provisioned pools under /ptu/NAME/ (their own streams, tokens per
minute and time to first token) and --payg-latency-ms, fail_first, disconnect_after (reset),
stall_after, hold_open, error_event_after, reasoning, max_tokens, non-streamed answers, and
that tokens arrive spread over many reads.

No sleep stands in for synchronisation: every wait is for bytes, EOF, a reset or a process exit;
TIMEOUT only bounds a failure. Durations are never asserted. The one negative check (a stalled
stream sends nothing more) waits a bounded quiet period for bytes that must not come.
Prints "N passed, N failed" and exits 1 on any failure.
"""

import argparse
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid

TIMEOUT = float(os.environ.get("TRILEMMA_TEST_TIMEOUT", "20"))
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

SIM = None  # path of the binary (from --sim)


# ---------------------------------------------------------------------------------------------
# the simulator process


class Sim:
    """One trilemma-sim process on a kernel-chosen port; stderr is collected by a thread."""

    def __init__(self, *flags):
        args = [SIM, "--listen", "127.0.0.1:0", "--workers", "1", "--ttft-ms", "5",
                "--ttft-jitter-ms", "0", "--tps", "400", "--tokens", "20"] + list(flags)
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.lines = []
        first = self.proc.stderr.readline().decode(errors="replace")
        self.lines.append(first)
        m = re.search(r"trilemma-sim listening on http://127\.0\.0\.1:(\d+)/", first)
        if not m:
            self.proc.kill()
            raise AssertionError("sim did not start: " + first + self.proc.stderr.read().decode())
        self.port = int(m.group(1))
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self):
        for line in self.proc.stderr:
            self.lines.append(line.decode(errors="replace"))

    def stop(self):
        """SIGTERM; the process must exit 0 and print no sanitizer report."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=TIMEOUT)
        self.reader.join(timeout=TIMEOUT)
        err = "".join(self.lines)
        assert not any(m in err for m in SANITIZER_MARKERS), "sanitizer report:\n" + err
        assert rc == 0, "sim exited with %d:\n%s" % (rc, err)

    def metric(self, name):
        r = request(self.port, "GET", "/metrics")
        m = re.search(rb"^trilemma_sim_" + name.encode() + rb" (\d+)$", r.body, re.M)
        return int(m.group(1)) if m else None


def wait_until(pred, what):
    """Poll pred() (for state that has no event to wait on, such as a counter)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        select.select([], [], [], 0.02)


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 over a plain socket, chunk by chunk


class Conn:
    """One client connection. Records which socket read completed each chunk."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = b""
        self.reads = 0

    def close(self):
        self.s.close()

    def send(self, method, path, body=None, headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method, path)
        for k, v in (headers or {}).items():
            head += "%s: %s\r\n" % (k, v)
        if body is not None:
            head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        self.s.sendall(head.encode() + b"\r\n" + (body or b""))

    def _recv(self):
        data = self.s.recv(65536)
        self.reads += 1
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _need(self, pred):
        while True:
            v = pred()
            if v is not None:
                return v
            self._recv()

    def read_head(self):
        end = self._need(lambda: (i if (i := self.buf.find(b"\r\n\r\n")) >= 0 else None))
        head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4:]
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers

    def read_chunk(self):
        """The next chunk's payload (b"" for the last one), after the read that completed it."""
        line_end = self._need(lambda: (i if (i := self.buf.find(b"\r\n")) >= 0 else None))
        size = int(self.buf[:line_end].split(b";")[0], 16)
        total = line_end + 2 + size + 2
        self._need(lambda: True if len(self.buf) >= total else None)
        data = self.buf[line_end + 2:line_end + 2 + size]
        assert self.buf[line_end + 2 + size:total] == b"\r\n", "chunk not followed by CRLF"
        self.buf = self.buf[total:]
        return data

    def read_exact(self, n):
        self._need(lambda: True if len(self.buf) >= n else None)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


class Resp:
    status = 0
    headers = None
    body = b""
    chunks = None  # [(payload, read number)]
    ended = False  # the last chunk arrived
    reset = False  # ConnectionResetError
    eof = False    # EOF before the end
    conn = None


def request(port, method, path, body=None, headers=None, until=None, conn=None):
    """Send a request and read the response: whole, or chunk by chunk until the terminating
    chunk, a reset, EOF, or until(resp) is true (the connection then stays open in resp.conn)."""
    c = conn or Conn(port)
    c.send(method, path, body, headers)
    r = Resp()
    r.conn, r.chunks = c, []
    r.status, r.headers = c.read_head()
    if r.headers.get("transfer-encoding") != "chunked":
        r.body = c.read_exact(int(r.headers.get("content-length", "0")))
        return r
    try:
        while True:
            data = c.read_chunk()
            if not data:
                r.ended = True
                break
            r.chunks.append((data, c.reads))
            r.body += data
            if until and until(r):
                break
    except ConnectionResetError:
        r.reset = True
    except EOFError:
        r.eof = True
    return r


# ---------------------------------------------------------------------------------------------
# server-sent events (WHATWG HTML, "Interpreting an event stream")


def parse_sse(chunks):
    """Events [{event, data, chunk, read}] from [(payload, read)], with any line ends."""
    events, buf, data, etype = [], b"", [], ""
    for ci, (payload, rd) in enumerate(chunks):
        buf += payload
        while True:
            m = re.search(rb"\r\n|\n|\r", buf)
            if not m or (m.group() == b"\r" and m.end() == len(buf)):
                break  # a CR at the end may be half of a CRLF
            line, buf = buf[:m.start()], buf[m.end():]
            if line == b"":
                if data:
                    events.append({"event": etype or "message", "data": "\n".join(data),
                                   "chunk": ci, "read": rd})
                data, etype = [], ""
                continue
            if line.startswith(b":"):
                continue
            field, colon, value = line.partition(b":")
            if colon and value.startswith(b" "):
                value = value[1:]
            if field == b"data":
                data.append(value.decode("utf-8"))
            elif field == b"event":
                etype = value.decode("utf-8")
    return events


# ---------------------------------------------------------------------------------------------
# the three formats: requests and reassembly


def openai_req(messages, stream=True, usage=True, **extra):
    body = {"model": "gpt-4.1-mini", "messages": messages, "stream": stream}
    if stream and usage:
        body["stream_options"] = {"include_usage": True}
    body.update(extra)
    return body


def anthropic_req(messages, stream=True, system=None, **extra):
    body = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": messages,
            "stream": stream}
    if system is not None:
        body["system"] = system
    body.update(extra)
    return body


def gemini_req(messages, system=None, **extra):
    contents = [{"role": "model" if m["role"] == "assistant" else "user",
                 "parts": [{"text": m["content"]}]} for m in messages]
    body = {"contents": contents}
    if system is not None:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    body.update(extra)
    return body


ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "sk-test"}
GEMINI_STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


def post(sim, fmt, body, until=None, conn=None, stream=True):
    if fmt == "openai":
        return request(sim.port, "POST", "/v1/chat/completions", body, {"Authorization":
                       "Bearer sk-test"}, until, conn)
    if fmt == "anthropic":
        return request(sim.port, "POST", "/v1/messages", body, ANTHROPIC_HEADERS, until, conn)
    path = GEMINI_STREAM if stream else "/v1beta/models/gemini-2.5-flash:generateContent"
    return request(sim.port, "POST", path, body, {"x-goog-api-key": "k"}, until, conn)


def chat(sim, fmt, text, system=None, history=(), until=None, **extra):
    """One user turn (after history) in format fmt, streamed."""
    msgs = list(history) + [{"role": "user", "content": text}]
    if fmt == "openai":
        if system is not None:
            msgs = [{"role": "system", "content": system}] + msgs
        return post(sim, fmt, openai_req(msgs, **extra), until)
    if fmt == "anthropic":
        return post(sim, fmt, anthropic_req(msgs, system=system, **extra), until)
    return post(sim, fmt, gemini_req(msgs, system=system, **extra), until)


class Stream:
    """A streamed answer reassembled the way a client of that provider would."""

    def __init__(self, fmt, resp):
        self.fmt, self.resp = fmt, resp
        self.events = parse_sse(resp.chunks)
        self.text, self.tokens, self.token_reads = "", 0, set()
        self.finish, self.usage, self.calls, self.error, self.thinking = None, None, {}, None, ""
        self.token_events = []
        getattr(self, "_" + fmt)()

    def _token(self, ev, piece):
        self.text += piece
        self.tokens += 1
        self.token_reads.add(ev["read"])
        self.token_events.append(ev)

    def _openai(self):
        for ev in self.events:
            if ev["data"] == "[DONE]":
                continue
            d = json.loads(ev["data"])
            if "error" in d:
                self.error = d["error"]
                continue
            if d.get("usage"):
                self.usage = d["usage"]
            for ch in d["choices"]:
                delta = ch["delta"]
                if delta.get("content"):
                    self._token(ev, delta["content"])
                for tc in delta.get("tool_calls") or []:
                    c = self.calls.setdefault(tc["index"], {"args": "", "frags": 0})
                    if "id" in tc:
                        c.update(id=tc["id"], name=tc["function"]["name"], type=tc["type"])
                    elif tc["function"]["arguments"]:
                        c["frags"] += 1
                        self.token_events.append(ev)
                    c["args"] += tc["function"]["arguments"]
                if ch["finish_reason"]:
                    self.finish = ch["finish_reason"]

    def _anthropic(self):
        for ev in self.events:
            d = json.loads(ev["data"])
            assert d["type"] == ev["event"], ev
            if ev["event"] == "message_start":
                self.usage = dict(d["message"]["usage"])
            elif ev["event"] == "content_block_start" and d["content_block"]["type"] == "tool_use":
                b = d["content_block"]
                self.calls[d["index"]] = {"id": b["id"], "name": b["name"], "args": "", "frags": 0}
            elif ev["event"] == "content_block_delta":
                delta = d["delta"]
                if delta["type"] == "text_delta":
                    self._token(ev, delta["text"])
                elif delta["type"] == "thinking_delta":
                    self.thinking += delta["thinking"]
                elif delta["type"] == "input_json_delta":
                    c = self.calls[d["index"]]
                    c["args"] += delta["partial_json"]
                    if delta["partial_json"]:
                        c["frags"] += 1
                        self.token_events.append(ev)
            elif ev["event"] == "message_delta":
                self.finish = d["delta"]["stop_reason"]
                self.usage["output_tokens"] = d["usage"]["output_tokens"]
            elif ev["event"] == "error":
                self.error = d["error"]

    def _gemini(self):
        for i, ev in enumerate(self.events):
            d = json.loads(ev["data"])
            if "error" in d:
                self.error = d["error"]
                continue
            self.usage = d["usageMetadata"]  # the last one wins; never added up
            cand = d["candidates"][0]
            for part in cand["content"]["parts"]:
                if "text" in part and part["text"]:
                    self._token(ev, part["text"])
                if "functionCall" in part:
                    self.calls[len(self.calls)] = dict(part["functionCall"])
                    self.token_events.append(ev)
            if "finishReason" in cand:
                self.finish = cand["finishReason"]


FORMATS = ("openai", "anthropic", "gemini")


def nonce():
    return uuid.uuid4().hex[:12]


def words(s):
    return len([w for w in re.split(r"[ \t\n\r\f\v]+", s) if w])


def check_framing(fmt, body):
    """The whole body is a sequence of events in exactly the provider's framing."""
    if fmt == "openai":
        assert re.fullmatch(rb"(data: [^\r\n]+\n\n)+", body), body[:300]
        assert body.endswith(b"data: [DONE]\n\n")
    elif fmt == "anthropic":
        assert re.fullmatch(rb"(event: [a-z_]+\ndata: [^\r\n]+\n\n)+", body), body[:300]
    else:
        assert re.fullmatch(rb"(data: [^\r\n]+\r\n\r\n)+", body), body[:300]


def events_per_chunk(st):
    counts = {}
    for ev in st.events:
        counts[ev["chunk"]] = counts.get(ev["chunk"], 0) + 1
    return counts


def finish_reading(resp):
    """Read a response that request(..., until=...) left open to its end."""
    try:
        while True:
            data = resp.conn.read_chunk()
            if not data:
                resp.ended = True
                return resp
            resp.chunks.append((data, resp.conn.reads))
            resp.body += data
    except (ConnectionResetError, EOFError):
        return resp


def error_of(fmt, resp):
    """(status, provider error type or status name) of an error response, shape checked."""
    d = json.loads(resp.body)
    if fmt == "anthropic":
        assert d["type"] == "error" and set(d["error"]) == {"type", "message"}, d
        return resp.status, d["error"]["type"]
    if fmt == "gemini":
        assert set(d["error"]) == {"code", "message", "status"}, d
        assert d["error"]["code"] == resp.status
        return resp.status, d["error"]["status"]
    assert set(d["error"]) == {"message", "type", "param", "code"} and d["error"]["param"] is None
    return resp.status, d["error"]["type"]


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


# ---- framing and event order --------------------------------------------------------------


@test
def openai_stream_shape(sim):
    r = chat(sim, "openai", "hello " + nonce(), system="You are a shop assistant.")
    assert r.status == 200 and r.ended, (r.status, r.body[:200])
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    check_framing("openai", r.body)
    st = Stream("openai", r)
    evs = [json.loads(e["data"]) for e in st.events if e["data"] != "[DONE]"]
    first = evs[0]
    assert first["object"] == "chat.completion.chunk" and first["id"].startswith("chatcmpl-")
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert all(e["id"] == first["id"] and e["model"] == "gpt-4.1-mini" for e in evs)
    fin = evs[-2]["choices"][0]
    assert fin["finish_reason"] == "stop" and fin["delta"] == {}, evs[-2]
    assert evs[-1]["choices"] == [] and evs[-1]["usage"]["completion_tokens"] == 20
    assert all(e["usage"] is None for e in evs[:-1])
    assert all(e["choices"][0]["finish_reason"] is None for e in evs[:-2])
    assert st.tokens == 20 and st.finish == "stop"
    per_chunk = events_per_chunk(st)
    assert all(per_chunk[ev["chunk"]] == 1 for ev in st.token_events), "a token shares a chunk"
    # without stream_options.include_usage: no usage chunk, no "usage" member at all
    r = post(sim, "openai", openai_req([{"role": "user", "content": "hi " + nonce()}],
                                       usage=False))
    check_framing("openai", r.body)
    evs = [json.loads(e["data"]) for e in parse_sse(r.chunks) if e["data"] != "[DONE]"]
    assert all("usage" not in e and e["choices"] for e in evs)


@test
def anthropic_stream_shape(sim):
    r = chat(sim, "anthropic", "hello " + nonce())
    assert r.status == 200 and r.ended and r.headers["content-type"].startswith(
        "text/event-stream")
    check_framing("anthropic", r.body)
    st = Stream("anthropic", r)
    names = [e["event"] for e in st.events]
    assert names == (["message_start", "content_block_start", "ping"] +
                     ["content_block_delta"] * 20 +
                     ["content_block_stop", "message_delta", "message_stop"]), names
    start = json.loads(st.events[0]["data"])["message"]
    assert start["id"].startswith("msg_01") and start["role"] == "assistant"
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["output_tokens"] == 1
    block = json.loads(st.events[1]["data"])
    assert block == {"type": "content_block_start", "index": 0,
                     "content_block": {"type": "text", "text": ""}}
    delta = json.loads(st.events[-2]["data"])
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"] == {"output_tokens": 20}
    per_chunk = events_per_chunk(st)
    assert all(per_chunk[ev["chunk"]] == 1 for ev in st.token_events)
    assert st.tokens == 20 and st.finish == "end_turn"


@test
def gemini_stream_shape(sim):
    r = chat(sim, "gemini", "hello " + nonce())
    assert r.status == 200 and r.ended and r.headers["content-type"] == "text/event-stream"
    check_framing("gemini", r.body)  # CRLF line ends, as Google sends them
    st = Stream("gemini", r)
    frames = [json.loads(e["data"]) for e in st.events]
    assert len(frames) == 20
    for i, f in enumerate(frames):
        c = f["candidates"][0]
        assert c["content"]["role"] == "model" and len(c["content"]["parts"]) == 1
        u = f["usageMetadata"]
        assert u["candidatesTokenCount"] == i + 1, u  # running counts: take the last, never add
        assert u["totalTokenCount"] == u["promptTokenCount"] + i + 1
        assert "cachedContentTokenCount" not in u and "thoughtsTokenCount" not in u
        assert f["modelVersion"] == "gemini-2.5-flash"
        assert ("finishReason" in c) == (i == len(frames) - 1)
    assert st.finish == "STOP" and st.tokens == 20


# ---- answers ------------------------------------------------------------------------------


@test
def deterministic_answers(sim):
    n = nonce()
    texts = {}
    for fmt in FORMATS:
        a = Stream(fmt, chat(sim, fmt, "recommend running shoes " + n)).text
        b = Stream(fmt, chat(sim, fmt, "recommend running shoes " + n)).text
        c = Stream(fmt, chat(sim, fmt, "recommend hiking boots " + n)).text
        assert a == b and a != c, (fmt, a, b, c)
        assert words(a) == 20
        texts[fmt] = a
    # the same conversation is the same answer in every format
    assert texts["openai"] == texts["anthropic"] == texts["gemini"], texts


@test
def vocabulary_exercises_utf8_and_escapes(sim):
    seen = ""
    for i in range(12):
        seen += Stream("openai", chat(sim, "openai", "[[sim:tokens=200]] %d %s" % (i, nonce()),
                                      usage=False)).text
    for needle in ("₹", "é", "\"", "\\", "\n", "&", "<"):
        assert needle in seen, needle
    assert any(ord(ch) > 0xFFFF for ch in seen), "no 4-byte UTF-8 character (emoji)"


ECHO = 'Price ₹2,499 — "naïve" café 👟 C:\\new\\path\\ it\'s\n  second line\twith tab\r\nend '


@test
def echo_is_exact(sim):
    for fmt in FORMATS:
        st = Stream(fmt, chat(sim, fmt, "[[sim:echo]] " + ECHO))
        assert st.text == ECHO, (fmt, st.text)
        assert st.tokens == words(ECHO), (fmt, st.tokens)
        # directives anywhere are removed with the whitespace after them
        st = Stream(fmt, chat(sim, fmt, "a [[sim:echo]]  b [[sim:tps=0]]\nc"))
        assert st.text == "a b c", (fmt, st.text)


@test
def max_tokens_stops_the_answer(sim):
    st = Stream("openai", post(sim, "openai", openai_req(
        [{"role": "user", "content": "long please " + nonce()}], max_completion_tokens=5)))
    assert st.tokens == 5 and st.finish == "length" and st.usage["completion_tokens"] == 5
    st = Stream("anthropic", post(sim, "anthropic", anthropic_req(
        [{"role": "user", "content": "[[sim:tokens=50]] long " + nonce()}], max_tokens=5)))
    assert st.tokens == 5 and st.finish == "max_tokens" and st.usage["output_tokens"] == 5
    st = Stream("gemini", post(sim, "gemini", gemini_req(
        [{"role": "user", "content": "long " + nonce()}],
        generationConfig={"maxOutputTokens": 5})))
    assert st.tokens == 5 and st.finish == "MAX_TOKENS"
    assert st.usage["candidatesTokenCount"] == 5
    st = Stream("openai", post(sim, "openai", openai_req(
        [{"role": "user", "content": "[[sim:echo]] one two three four"}], max_tokens=2)))
    assert st.text == "one two " and st.finish == "length"


@test
def non_streamed_answers(sim):
    n = nonce()
    text = Stream("openai", chat(sim, "openai", "plain " + n)).text
    msgs = [{"role": "user", "content": "plain " + n}]
    r = post(sim, "openai", openai_req(msgs, stream=False))
    d = json.loads(r.body)
    assert r.status == 200 and d["object"] == "chat.completion", d
    ch = d["choices"][0]
    assert ch["message"]["role"] == "assistant" and ch["message"]["content"] == text
    assert ch["finish_reason"] == "stop" and d["usage"]["completion_tokens"] == 20
    r = post(sim, "anthropic", anthropic_req(msgs, stream=False))
    d = json.loads(r.body)
    assert d["type"] == "message" and d["content"] == [{"type": "text", "text": text}], d
    assert d["stop_reason"] == "end_turn" and d["usage"]["output_tokens"] == 20
    r = post(sim, "gemini", gemini_req(msgs), stream=False)
    d = json.loads(r.body)
    assert d["candidates"][0]["content"]["parts"] == [{"text": text}], d
    assert d["candidates"][0]["finishReason"] == "STOP"
    assert d["usageMetadata"]["candidatesTokenCount"] == 20


# ---- usage and the prompt cache -----------------------------------------------------------


def two_turns(sim, fmt, system, **extra):
    """Turn 1, then turn 2 repeating turn 1 as its prefix; the two Streams and prompt sizes."""
    u1, u2 = "show me trail shoes " + nonce(), "and in navy please"
    s1 = Stream(fmt, chat(sim, fmt, u1, system=system, **extra))
    hist = [{"role": "user", "content": u1}, {"role": "assistant", "content": s1.text}]
    s2 = Stream(fmt, chat(sim, fmt, u2, system=system, history=hist, **extra))
    sys_words = words(system if isinstance(system, str) else system[0]["text"])
    p1 = sys_words + 4 + words(u1) + 4
    p2 = p1 + words(s1.text) + 4 + words(u2) + 4
    return s1, s2, p1, p2


@test
def usage_and_cached_tokens_openai(sim):
    s1, s2, p1, p2 = two_turns(sim, "openai", "You are a helpful shop assistant " + nonce())
    assert s1.usage["prompt_tokens"] == p1, (s1.usage, p1)
    assert s1.usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert s1.usage["completion_tokens"] == 20 and s1.usage["total_tokens"] == p1 + 20
    assert s1.usage["completion_tokens_details"]["reasoning_tokens"] == 0
    assert s2.usage["prompt_tokens"] == p2
    assert s2.usage["prompt_tokens_details"]["cached_tokens"] == p1  # included in prompt_tokens


@test
def usage_and_cached_tokens_gemini(sim):
    s1, s2, p1, p2 = two_turns(sim, "gemini", "You are a helpful shop assistant " + nonce())
    assert s1.usage["promptTokenCount"] == p1 and "cachedContentTokenCount" not in s1.usage
    assert s2.usage["promptTokenCount"] == p2  # includes the cached part
    assert s2.usage["cachedContentTokenCount"] == p1
    assert s2.usage["totalTokenCount"] == p2 + 20


@test
def usage_and_cache_accounting_anthropic(sim):
    # no cache_control: Anthropic caches nothing (no reads, no writes)
    s1, s2, p1, p2 = two_turns(sim, "anthropic", "You are a helpful shop assistant " + nonce())
    assert s1.usage == {"input_tokens": p1, "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0, "output_tokens": 20}, (s1.usage, p1)
    assert s2.usage == {"input_tokens": p2, "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0, "output_tokens": 20}, (s2.usage, p2)
    # a breakpoint on the system prompt: the prompt is written once, then read; the conversation
    # after the breakpoint is plain input
    text = "Cached system prompt " + nonce()
    system = [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]
    sp = words(text) + 4
    s1, s2, p1, p2 = two_turns(sim, "anthropic", system)
    assert s1.usage == {"input_tokens": p1 - sp, "cache_creation_input_tokens": sp,
                        "cache_read_input_tokens": 0, "output_tokens": 20}, (s1.usage, sp)
    assert s2.usage == {"input_tokens": p2 - sp, "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": sp, "output_tokens": 20}, (s2.usage, sp)
    # a breakpoint on the last message too: turn 2 reads turn 1's prefix (looked back from its
    # own breakpoint) and writes the rest up to its breakpoint
    system = [{"type": "text", "text": "Another prompt " + nonce(),
               "cache_control": {"type": "ephemeral"}}]
    u1, u2 = "show me trail shoes " + nonce(), "and in navy please"

    def bp(t):
        return [{"type": "text", "text": t, "cache_control": {"type": "ephemeral"}}]
    s1 = Stream("anthropic", post(sim, "anthropic", anthropic_req(
        [{"role": "user", "content": bp(u1)}], system=system)))
    p1 = s1.usage["input_tokens"] + s1.usage["cache_creation_input_tokens"]
    assert s1.usage["input_tokens"] == 0 and s1.usage["cache_read_input_tokens"] == 0
    s2 = Stream("anthropic", post(sim, "anthropic", anthropic_req(
        [{"role": "user", "content": u1}, {"role": "assistant", "content": s1.text},
         {"role": "user", "content": bp(u2)}], system=system)))
    u = s2.usage
    assert u["cache_read_input_tokens"] == p1 and u["input_tokens"] == 0, (u, p1)
    assert u["cache_creation_input_tokens"] == words(s1.text) + 4 + words(u2) + 4


@test
def prompt_cache_is_scoped_to_key_tools_and_cache_key(sim):
    """A prefix is read only by the same API key, the same tools and the same prompt_cache_key."""
    system = "You are a helpful shop assistant " + nonce()
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": "hi " + nonce()}]
    p = words(system) + 4

    def cached(body, key="sk-test"):
        r = request(sim.port, "POST", "/v1/chat/completions", body,
                    {"Authorization": "Bearer " + key})
        return Stream("openai", r).usage["prompt_tokens_details"]["cached_tokens"]
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    assert cached(openai_req(msgs, prompt_cache_key="a:1")) == 0
    msgs[1]["content"] = "hello " + nonce()
    assert cached(openai_req(msgs, prompt_cache_key="a:1")) == p  # the system prompt
    assert cached(openai_req(msgs, prompt_cache_key="a:1"), key="sk-other") == 0
    assert cached(openai_req(msgs, prompt_cache_key="a:2")) == 0
    assert cached(openai_req(msgs, prompt_cache_key="a:1", tools=[tool])) == 0
    # the whole prompt was seen with key a:1 and no tools: all of it is read now
    assert cached(openai_req(msgs, prompt_cache_key="a:1")) == p + words(msgs[1]["content"]) + 4
    # --cache-ttl-s 0: no prompt cache at all
    nocache = Sim("--cache-ttl-s", "0")
    try:
        for _ in range(2):
            r = request(nocache.port, "POST", "/v1/chat/completions", openai_req(msgs),
                        {"Authorization": "Bearer sk-test"})
            assert Stream("openai", r).usage["prompt_tokens_details"]["cached_tokens"] == 0
    finally:
        nocache.stop()


@test
def embeddings(sim):
    """POST /v1/embeddings: OpenAI's shape, deterministic unit vectors, paraphrases close, bad
    input a 400 in OpenAI's error shape."""
    def emb(body, path="/v1/embeddings"):
        return request(sim.port, "POST", path, body, {"Authorization": "Bearer sk-test"})
    r = emb({"model": "sim-embed", "input": ["cheap phones under 20k", "affordable mobiles "
                                             "below 20,000", "tablets for kids"]})
    assert r.status == 200, r.body
    d = json.loads(r.body)
    assert d["object"] == "list" and d["model"] == "sim-embed", d.keys()
    assert [x["index"] for x in d["data"]] == [0, 1, 2]
    assert all(x["object"] == "embedding" and len(x["embedding"]) == 256 for x in d["data"])
    vs = [x["embedding"] for x in d["data"]]
    assert all(abs(sum(v * v for v in e) - 1) < 1e-4 for e in vs)
    assert d["usage"] == {"prompt_tokens": 11, "total_tokens": 11}, d["usage"]

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b))
    assert cos(vs[0], vs[1]) > 0.99 and cos(vs[0], vs[2]) < 0.5
    again = json.loads(emb({"model": "m", "input": "cheap phones under 20k"}).body)
    assert again["data"][0]["embedding"] == vs[0]  # a string is one input; same text, same vector
    short = json.loads(emb({"model": "m", "input": "x", "dimensions": 8},
                           "/embeddings").body)["data"][0]["embedding"]
    assert len(short) == 8 and abs(sum(v * v for v in short) - 1) < 1e-4
    for bad in ({"input": "x"}, {"model": "m"}, {"model": "m", "input": []},
                {"model": "m", "input": [1, 2]}, {"model": "m", "input": "x", "dimensions": 0},
                {"model": "m", "input": "x", "encoding_format": "base64"}):
        r = emb(bad)
        assert r.status == 400, (bad, r.status)
        assert json.loads(r.body)["error"]["type"] == "invalid_request_error"
    r = request(sim.port, "GET", "/v1/embeddings", None, {})
    assert r.status == 405


@test
def reasoning_tokens(sim):
    text = "[[sim:reasoning=7]] [[sim:tokens=5]] think " + nonce()
    st = Stream("openai", chat(sim, "openai", text))
    assert st.usage["completion_tokens"] == 12 and st.tokens == 5
    assert st.usage["completion_tokens_details"]["reasoning_tokens"] == 7
    st = Stream("anthropic", chat(sim, "anthropic", text))
    blocks = [json.loads(e["data"])["content_block"]["type"] for e in st.events
              if e["event"] == "content_block_start"]
    assert blocks == ["thinking", "text"], blocks
    assert words(st.thinking) == 7 and st.usage["output_tokens"] == 12
    sig = [e for e in st.events if '"signature_delta"' in e["data"]]
    assert len(sig) == 1
    st = Stream("gemini", chat(sim, "gemini", text))
    u = st.usage
    assert u["thoughtsTokenCount"] == 7 and u["candidatesTokenCount"] == 5
    assert u["totalTokenCount"] == u["promptTokenCount"] + 12


# ---- tools --------------------------------------------------------------------------------

SEARCH_SCHEMA = {"type": "object", "properties": {
    "query": {"type": "string"}, "max_price": {"type": "integer"},
    "category": {"type": "string", "enum": ["shoes", "bags"]}}, "required": ["query"]}
ORDER_SCHEMA = {"type": "object", "properties": {"order_id": {"type": "string"}}}


def tools_for(fmt):
    decl = [("search_products", "Search the catalogue", SEARCH_SCHEMA),
            ("get_order", "Look up an order", ORDER_SCHEMA)]
    if fmt == "openai":
        return {"tools": [{"type": "function", "function": {"name": n, "description": d,
                                                             "parameters": s}}
                          for n, d, s in decl]}
    if fmt == "anthropic":
        return {"tools": [{"name": n, "description": d, "input_schema": s} for n, d, s in decl]}
    return {"tools": [{"functionDeclarations": [{"name": n, "description": d, "parameters": s}
                                                for n, d, s in decl]}]}


def call_args(fmt, call):
    return call["args"] if fmt == "gemini" else json.loads(call["args"])


@test
def tool_call_when_asked_to_search(sim):
    text = "find running shoes under 3000 " + nonce()
    for fmt in FORMATS:
        st = Stream(fmt, chat(sim, fmt, text, **tools_for(fmt)))
        assert st.tokens == 0 and len(st.calls) == 1, (fmt, st.calls, st.text)
        call = list(st.calls.values())[0]
        assert call["name"] == "search_products"
        args = call_args(fmt, call)
        assert set(args) == {"query", "max_price", "category"}, args
        # search_products is a commerce tool: the agent's words (docs/sim.md, "Agents")
        assert args["query"] == "running shoes " + text.split()[-1], args
        assert args["category"] == "shoes" and args["max_price"] == 3000, args
        assert st.finish == {"openai": "tool_calls", "anthropic": "tool_use",
                             "gemini": "STOP"}[fmt]
        again = Stream(fmt, chat(sim, fmt, text, **tools_for(fmt)))
        assert call_args(fmt, list(again.calls.values())[0]) == args  # deterministic
        if fmt != "gemini":
            assert call["frags"] >= 2, call  # arguments arrive in several fragments
        if fmt == "openai":
            assert st.usage["completion_tokens"] == call["frags"]
        elif fmt == "anthropic":
            assert st.usage["output_tokens"] == call["frags"]
        else:  # the call's fragments are counted even though Gemini sends it whole
            assert st.usage["candidatesTokenCount"] > 0
    # without tools, or without a search word, the answer is text
    assert Stream("openai", chat(sim, "openai", text)).calls == {}
    assert Stream("openai", chat(sim, "openai", "hello " + nonce(), **tools_for("openai"))
                  ).calls == {}


@test
def tool_call_fragment_shapes_openai(sim):
    r = chat(sim, "openai", "[[sim:tool=get_order]] [[sim:tool=search_products]] where " +
             nonce(), **tools_for("openai"))
    st = Stream("openai", r)
    frags = []
    for e in st.events:
        if e["data"] == "[DONE]":
            continue
        d = json.loads(e["data"])
        for ch in d["choices"]:
            frags += ch["delta"].get("tool_calls") or []
    assert frags[0]["index"] == 0 and frags[0]["type"] == "function"
    assert frags[0]["id"].startswith("call_") and frags[0]["function"] == {
        "name": "get_order", "arguments": ""}
    for f in frags:
        if "id" not in f:
            assert set(f) == {"index", "function"} and set(f["function"]) == {"arguments"}, f
    assert [st.calls[i]["name"] for i in (0, 1)] == ["get_order", "search_products"]
    assert set(json.loads(st.calls[0]["args"])) == {"order_id"}
    assert st.finish == "tool_calls"
    assert st.usage["completion_tokens"] == st.calls[0]["frags"] + st.calls[1]["frags"]


@test
def tool_call_blocks_anthropic(sim):
    r = chat(sim, "anthropic", "[[sim:tool=nonexistent]] go " + nonce(), **tools_for("anthropic"))
    st = Stream("anthropic", r)
    starts = [json.loads(e["data"]) for e in st.events if e["event"] == "content_block_start"]
    assert len(starts) == 1 and starts[0]["index"] == 0
    b = starts[0]["content_block"]
    assert b["type"] == "tool_use" and b["id"].startswith("toolu_01") and b["input"] == {}
    assert b["name"] == "search_products"  # unknown name: the first tool
    deltas = [json.loads(e["data"])["delta"] for e in st.events
              if e["event"] == "content_block_delta"]
    assert all(d["type"] == "input_json_delta" for d in deltas) and deltas[0]["partial_json"] == ""
    assert json.loads("".join(d["partial_json"] for d in deltas))["query"].startswith("go ")
    names = [e["event"] for e in st.events]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert st.finish == "tool_use" and st.usage["output_tokens"] == len(deltas) - 1


@test
def no_tool_call_after_a_tool_result(sim):
    text = "search for socks " + nonce()
    oa = tools_for("openai")
    st = Stream("openai", chat(sim, "openai", text, **oa))
    c = st.calls[0]
    msgs = [{"role": "user", "content": text},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": c["id"], "type": "function",
                 "function": {"name": c["name"], "arguments": c["args"]}}]},
            {"role": "tool", "tool_call_id": c["id"], "content": "[{\"sku\":\"S1\"}] search"}]
    st2 = Stream("openai", post(sim, "openai", openai_req(msgs, **oa)))
    assert st2.calls == {} and st2.tokens == 20 and st2.finish == "stop"
    an = tools_for("anthropic")
    st = Stream("anthropic", chat(sim, "anthropic", text, **an))
    c = st.calls[0]
    msgs = [{"role": "user", "content": text},
            {"role": "assistant", "content": [{"type": "tool_use", "id": c["id"],
                                               "name": c["name"],
                                               "input": json.loads(c["args"])}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": c["id"],
                                          "content": "found: search results"}]}]
    st2 = Stream("anthropic", post(sim, "anthropic", anthropic_req(msgs, **an)))
    assert st2.calls == {} and st2.finish == "end_turn"
    ge = tools_for("gemini")
    st = Stream("gemini", chat(sim, "gemini", text, **ge))
    c = st.calls[0]
    body = gemini_req([{"role": "user", "content": text}], **ge)
    body["contents"] += [{"role": "model", "parts": [{"functionCall": c}]},
                         {"role": "user", "parts": [{"functionResponse": {
                             "name": c["name"], "response": {"result": "search ok"}}}]}]
    st2 = Stream("gemini", post(sim, "gemini", body))
    assert st2.calls == {} and st2.tokens == 20


# ---- errors and faults --------------------------------------------------------------------

RETRYABLE = {"openai": (503, "server_error"), "anthropic": (529, "overloaded_error"),
             "gemini": (503, "UNAVAILABLE")}


@test
def status_directive(sim):
    for fmt in FORMATS:
        r = chat(sim, fmt, "[[sim:status=429]] hi")
        assert error_of(fmt, r)[0] == 429 and r.headers["retry-after"] == "1", r.headers
        want = {"openai": "requests", "anthropic": "rate_limit_error",
                "gemini": "RESOURCE_EXHAUSTED"}[fmt]
        assert error_of(fmt, r)[1] == want
        r = chat(sim, fmt, "[[sim:status=500]] hi")
        assert error_of(fmt, r) == (500, {"openai": "server_error", "anthropic": "api_error",
                                          "gemini": "INTERNAL"}[fmt])
        assert "retry-after" not in r.headers


@test
def fail_first_then_succeed(sim):
    for fmt in FORMATS:
        text = "[[sim:fail_first=2]] retry me " + nonce()
        for _ in range(2):
            r = chat(sim, fmt, text)
            assert error_of(fmt, r) == RETRYABLE[fmt], (fmt, r.status, r.body)
        r = chat(sim, fmt, text)
        assert r.status == 200 and Stream(fmt, r).tokens == 20


@test
def disconnect_after(sim):
    for fmt in FORMATS:
        r = chat(sim, fmt, "[[sim:disconnect_after=3]] [[sim:tps=100]] bye " + nonce())
        assert r.status == 200 and not r.ended, fmt
        assert r.reset, (fmt, "expected a connection reset", r.eof)
        assert Stream(fmt, r).tokens == 3, fmt


@test
def stall_after(sim):
    for fmt in FORMATS:
        r = chat(sim, fmt, "[[sim:stall_after=3]] [[sim:tps=100]] wait " + nonce(),
                 until=lambda resp, f=fmt: Stream(f, resp).tokens >= 3)
        assert r.status == 200 and Stream(fmt, r).tokens == 3
        # the stream stays open and silent: nothing (not even EOF) within 30 token gaps
        readable, _, _ = select.select([r.conn.s], [], [], 0.3)
        assert not readable and not r.conn.buf, (fmt, r.conn.buf)
        r.conn.close()
    wait_until(lambda: sim.metric("streams_active") == 0, "stalled streams to be freed")


@test
def hold_open(sim):
    markers = {"openai": b"data: [DONE]\n\n", "anthropic": b"event: message_stop\n"}
    for fmt, marker in markers.items():
        r = chat(sim, fmt, "[[sim:hold_open]] [[sim:tokens=4]] [[sim:tps=200]] " + nonce(),
                 until=lambda resp, m=marker: m in b"".join(c[0] for c in resp.chunks))
        st = Stream(fmt, r)
        assert r.status == 200 and st.tokens == 4 and st.usage and not r.ended, (fmt, st.usage)
        # the answer is complete, yet the body stays open: no last chunk, no EOF
        readable, _, _ = select.select([r.conn.s], [], [], 0.3)
        assert not readable and not r.conn.buf, (fmt, r.conn.buf)
        r.conn.close()
    wait_until(lambda: sim.metric("streams_active") == 0, "held streams to be freed")


@test
def error_event_after(sim):
    for fmt in FORMATS:
        r = chat(sim, fmt, "[[sim:error_event_after=2]] [[sim:tps=200]] " + nonce())
        st = Stream(fmt, r)
        assert r.status == 200 and r.ended and st.tokens == 2 and st.error, (fmt, st.error)
        if fmt == "openai":
            assert set(st.error) == {"message", "type", "param", "code"}
            assert b"[DONE]" not in r.body
        elif fmt == "anthropic":
            assert st.error == {"type": "overloaded_error", "message": "Overloaded"}
            assert st.events[-1]["event"] == "error"
        else:
            assert st.error["code"] == 503 and st.error["status"] == "UNAVAILABLE"
        check_framing(fmt, r.body) if fmt != "openai" else None


@test
def client_leaving_mid_stream_frees_the_stream(sim):
    before = sim.metric("client_left_total")
    r = chat(sim, "openai", "[[sim:tps=20]] [[sim:tokens=200]] " + nonce(),
             until=lambda resp: Stream("openai", resp).tokens >= 2)
    r.conn.close()
    wait_until(lambda: sim.metric("client_left_total") == before + 1, "on_http_close")
    assert sim.metric("streams_active") == 0


@test
def keep_alive_serves_the_next_request(sim):
    r1 = chat(sim, "openai", "first " + nonce())
    assert r1.ended
    r2 = post(sim, "anthropic", anthropic_req([{"role": "user", "content": "second"}]),
              conn=r1.conn)
    assert r2.status == 200 and r2.ended and Stream("anthropic", r2).tokens == 20
    r1.conn.close()


@test
def http1_only(sim):
    """Plain HTTP/1.1 only (docs/sim.md): an h2c upgrade offer is ignored (the answer is an
    HTTP/1.1 stream, not 101), an HTTP/2 prior-knowledge preface is a bad request."""
    c = Conn(sim.port)
    c.send("POST", "/v1/chat/completions", openai_req([{"role": "user", "content": "x"}]),
           {"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c",
            "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA"})
    status, headers = c.read_head()
    assert status == 200 and headers.get("transfer-encoding") == "chunked", (status, headers)
    c.close()
    c = Conn(sim.port)
    c.s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    status, _ = c.read_head()
    assert status == 400, status
    c.close()


@test
def late_headers_come_with_the_first_token(sim):
    late = Sim("--late-headers")
    try:
        # admitted (the stream is counted) but nothing sent before the first token is due
        c = Conn(late.port)
        c.send("POST", "/v1/chat/completions",
               openai_req([{"role": "user", "content": "[[sim:ttft=600000]] wait " + nonce()}]))
        wait_until(lambda: late.metric("streams_active") == 1, "the request to be admitted")
        readable, _, _ = select.select([c.s], [], [], 0.3)
        assert not readable, "the response head came before the first token"
        c.close()
        wait_until(lambda: late.metric("streams_active") == 0, "the stream to be freed")
        # then a whole stream, and keep-alive serves the next request on the connection
        for fmt in FORMATS:
            r = chat(late, fmt, "late " + nonce())
            assert r.status == 200 and r.ended and Stream(fmt, r).tokens == 20, fmt
            r.conn.close()
        r = post(late, "openai", openai_req([{"role": "user", "content": "one " + nonce()}]))
        r2 = post(late, "openai", openai_req([{"role": "user", "content": "two " + nonce()}]),
                  conn=r.conn)
        assert r.ended and r2.status == 200 and r2.ended and Stream("openai", r2).tokens == 20
        r.conn.close()
    finally:
        late.stop()


@test
def bad_requests(sim):
    r = request(sim.port, "POST", "/v1/messages", anthropic_req([{"role": "user",
                                                                   "content": "x"}]))
    assert error_of("anthropic", r) == (400, "invalid_request_error")
    assert b"anthropic-version" in r.body
    r = request(sim.port, "POST", "/v1/chat/completions", b"{not json")
    assert error_of("openai", r) == (400, "invalid_request_error")
    r = request(sim.port, "POST", "/v1/chat/completions", {"messages": []})
    assert error_of("openai", r)[0] == 400
    r = request(sim.port, "POST", "/v1beta/models/g:streamGenerateContent",
                gemini_req([{"role": "user", "content": "x"}]))
    assert error_of("gemini", r) == (400, "INVALID_ARGUMENT")
    r = request(sim.port, "POST", "/v1/nothing-here", {})
    assert error_of("openai", r)[0] == 404
    r = request(sim.port, "GET", "/v1/models")
    assert json.loads(r.body)["object"] == "list"
    r = request(sim.port, "GET", "/v1/models", headers=ANTHROPIC_HEADERS)
    assert json.loads(r.body)["has_more"] is False


# ---- pacing -------------------------------------------------------------------------------


@test
def tokens_arrive_spread_over_time(sim):
    for fmt in FORMATS:
        st = Stream(fmt, chat(sim, fmt, "[[sim:tps=50]] [[sim:tokens=12]] slow " + nonce()))
        reads = len(st.token_reads)
        print("    %s: 12 tokens in %d distinct socket reads" % (fmt, reads))
        assert st.tokens == 12 and reads >= 4, reads
        # and with tps 0, the whole answer is one write
        r = chat(sim, fmt, "[[sim:tps=0]] fast " + nonce())
        assert len(r.chunks) == 1 and Stream(fmt, r).tokens == 20, len(r.chunks)


# ---- capacity (own simulator processes) ---------------------------------------------------


@test
def max_streams_gives_429(sim):
    small = Sim("--max-streams", "2")
    try:
        held = [chat(small, "openai", "[[sim:tps=20]] [[sim:tokens=4]] hold %d %s" % (i, nonce()),
                     until=lambda resp: True) for i in range(2)]
        assert all(h.status == 200 for h in held)
        for fmt in FORMATS:
            r = chat(small, fmt, "one too many " + nonce())
            assert r.headers.get("retry-after") == "1", (fmt, r.status, r.headers)
            assert error_of(fmt, r)[0] == 429
        for h in held:
            assert finish_reading(h).ended
            h.conn.close()
        r = chat(small, "gemini", "room again " + nonce())
        assert r.status == 200 and r.ended
        assert small.metric("refused_total") == 3
    finally:
        small.stop()


@test
def tokens_per_minute_gives_429(sim):
    small = Sim("--tpm", "50", "--tokens", "30")
    try:
        for i in range(2):
            assert chat(small, "openai", "spend %d" % i).status == 200
        r = chat(small, "anthropic", "over budget")
        assert error_of("anthropic", r) == (429, "rate_limit_error")
        assert 1 <= int(r.headers["retry-after"]) <= 60, r.headers
    finally:
        small.stop()


@test
def random_faults_from_flags(sim):
    bad = Sim("--error-rate", "1")
    try:
        for fmt in FORMATS:
            r = chat(bad, fmt, "hi")
            assert r.status in (500, 503, 529) and error_of(fmt, r)[0] == r.status
    finally:
        bad.stop()
    cut = Sim("--disconnect-rate", "1", "--tps", "200")
    try:
        for fmt in FORMATS:
            r = chat(cut, fmt, "hi " + nonce())
            assert r.status == 200 and not r.ended and (r.reset or r.eof)
    finally:
        cut.stop()


# ---- provisioned pools and pay-as-you-go latency (own simulator processes) -----------------


def pool_post(sim, pool, fmt, text, until=None, stream=True, model=None):
    """One user turn in format fmt under /ptu/POOL/ (pool None: the provider's own path)."""
    msgs = [{"role": "user", "content": text}]
    pre = "/ptu/%s" % pool if pool else ""
    if fmt == "openai":
        body = openai_req(msgs, stream=stream, **({"model": model} if model else {}))
        return request(sim.port, "POST", pre + "/v1/chat/completions", body,
                       {"Authorization": "Bearer sk-test"}, until)
    if fmt == "anthropic":
        body = anthropic_req(msgs, stream=stream, **({"model": model} if model else {}))
        return request(sim.port, "POST", pre + "/v1/messages", body, ANTHROPIC_HEADERS, until)
    verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
    path = "%s/v1beta/models/%s:%s" % (pre, model or "gemini-2.5-flash", verb)
    return request(sim.port, "POST", path, gemini_req(msgs), {"x-goog-api-key": "k"}, until)


def labelled(sim, name, **labels):
    """The value of trilemma_sim_NAME{labels} in /metrics, or None."""
    body = request(sim.port, "GET", "/metrics").body.decode()
    lab = ",".join('%s="%s"' % kv for kv in labels.items())
    m = re.search(r"^trilemma_sim_%s%s (\d+)$" % (re.escape(name),
                                                  re.escape("{%s}" % lab) if lab else ""),
                  body, re.M)
    return int(m.group(1)) if m else None


@test
def pool_serves_under_its_prefix(sim):
    """/ptu/NAME/... is the same request served by the pool: the same answer in every format,
    the pool's own time to first token (the tier's multiplier on top), reported in x-sim-ttft-ms;
    the pay-as-you-go path gets --payg-latency-ms added. Values are read, never timed."""
    ps = Sim("--pool", "near:tpm=0,streams=0,ttft-ms=7", "--pool", "other:tpm=5,streams=5,ttft-ms=9",
             "--payg-latency-ms", "40")
    try:
        last = json.loads(request(ps.port, "GET", "/v1/_requests").body)["last"]
        for fmt in FORMATS:
            text = "pooled " + nonce()
            r = pool_post(ps, "near", fmt, text)
            assert r.status == 200 and r.ended, (fmt, r.status, r.body[:200])
            assert r.headers["x-sim-pool"] == "near" and r.headers["x-sim-ttft-ms"] == "7", (
                fmt, r.headers)
            check_framing(fmt, r.body)
            payg = pool_post(ps, None, fmt, text)
            assert payg.status == 200 and "x-sim-pool" not in payg.headers, payg.headers
            assert payg.headers["x-sim-ttft-ms"] == "45", payg.headers  # --ttft-ms 5 + 40
            assert Stream(fmt, r).text == Stream(fmt, payg).text != "", fmt
            whole = pool_post(ps, "near", fmt, text, stream=False)
            assert whole.status == 200 and whole.headers["x-sim-pool"] == "near", fmt
        # the tiers keep their multipliers on the pool's time (frontier 2x, cheap 1/3)
        r = pool_post(ps, "near", "openai", "tier " + nonce(), model="sim-frontier")
        assert r.status == 200 and r.headers["x-sim-ttft-ms"] == "14", r.headers
        r = pool_post(ps, None, "openai", "tier " + nonce(), model="sim-frontier")
        assert r.headers["x-sim-ttft-ms"] == "50", r.headers  # 2 x 5 + 40
        r = request(ps.port, "GET", "/ptu/near/v1/models")
        assert r.status == 200 and json.loads(r.body)["object"] == "list"
        # the request log keeps the path as sent
        paths = [e["path"] for e in json.loads(request(
            ps.port, "GET", "/v1/_requests?since=%d" % last).body)["requests"]]
        assert paths[:3] == ["/ptu/near/v1/chat/completions", "/v1/chat/completions",
                             "/ptu/near/v1/chat/completions"], paths
        assert "/ptu/near/v1beta/models/gemini-2.5-flash:streamGenerateContent" in paths, paths
        # /metrics: what each deployment admitted, and the configuration
        assert labelled(ps, "pool_admitted_total", pool="near") == 7
        assert labelled(ps, "pool_admitted_total", pool="other") == 0
        assert labelled(ps, "payg_admitted_total") == 4
        assert labelled(ps, "payg_latency_ms") == 40
        assert labelled(ps, "pool_ttft_ms", pool="near") == 7
        assert labelled(ps, "pool_tpm_limit", pool="other") == 5
        assert labelled(ps, "pool_streams_limit", pool="other") == 5
    finally:
        ps.stop()


@test
def pool_streams_limit_gives_429(sim):
    ps = Sim("--pool", "ptu:tpm=0,streams=1,ttft-ms=5")
    try:
        held = pool_post(ps, "ptu", "openai", "[[sim:tps=20]] [[sim:tokens=4]] hold " + nonce(),
                         until=lambda resp: True)
        assert held.status == 200
        assert labelled(ps, "pool_streams_active", pool="ptu") == 1
        for fmt in FORMATS:
            r = pool_post(ps, "ptu", fmt, "one too many " + nonce())
            assert r.headers.get("retry-after") == "1", (fmt, r.status, r.headers)
            assert error_of(fmt, r)[0] == 429
            payg = pool_post(ps, None, fmt, "still served " + nonce())
            assert payg.status == 200 and payg.ended, (fmt, payg.status)
        assert labelled(ps, "pool_refused_total", pool="ptu", reason="streams") == 3
        assert labelled(ps, "pool_refused_total", pool="ptu", reason="tokens") == 0
        assert labelled(ps, "payg_refused_total", reason="streams") == 0
        assert finish_reading(held).ended
        held.conn.close()
        r = pool_post(ps, "ptu", "gemini", "room again " + nonce())
        assert r.status == 200 and r.ended
        assert ps.metric("refused_total") == 3
    finally:
        ps.stop()


@test
def pool_tokens_per_minute_count_input_and_output(sim):
    """A pool charges prompt + planned output: two requests of 10 output tokens fill 100 tokens
    per minute because their prompts count (output alone would leave room)."""
    ps = Sim("--pool", "ptu:tpm=100,streams=0,ttft-ms=0", "--tpm", "100")
    try:
        text = "[[sim:tokens=10]] " + " ".join("w%d" % i for i in range(60)) + " " + nonce()
        prompt = words(text) + 4
        for i in range(2):
            r = pool_post(ps, "ptu", "openai", text + " %d" % i)
            assert r.status == 200 and Stream("openai", r).tokens == 10, (r.status, r.body[:200])
        assert labelled(ps, "pool_tokens_window", pool="ptu") == 2 * (prompt + 1 + 10)
        for fmt in FORMATS:
            r = pool_post(ps, "ptu", fmt, text)
            assert error_of(fmt, r)[0] == 429, (fmt, r.status)
            assert 1 <= int(r.headers["retry-after"]) <= 60, r.headers
            payg = pool_post(ps, None, fmt, text)  # --tpm counts output only: 10 each
            assert payg.status == 200 and payg.ended, (fmt, payg.status)
        assert labelled(ps, "pool_refused_total", pool="ptu", reason="tokens") == 3
        assert labelled(ps, "payg_tokens_window") == 30
    finally:
        ps.stop()


@test
def unknown_pool_is_404(sim):
    ps = Sim("--pool", "ptu:tpm=0,streams=0,ttft-ms=0")
    try:
        for s in (ps, sim):  # with pools, and without any
            for fmt in FORMATS:
                r = pool_post(s, "nope", fmt, "hi")
                assert error_of(fmt, r)[0] == 404, (fmt, r.status, r.body)
            r = request(s.port, "GET", "/ptu/nope/v1/models")
            assert error_of("openai", r)[0] == 404
        r = request(ps.port, "POST", "/ptu/ptu/v1/nothing-here", {})
        assert error_of("openai", r)[0] == 404
    finally:
        ps.stop()


@test
def bad_pool_flags_exit_2(sim):
    bad = ["NoCaps:tpm=1,streams=1,ttft-ms=1", ":tpm=1,streams=1,ttft-ms=1",
           "a" * 32 + ":tpm=1,streams=1,ttft-ms=1", "a:tpm=1,streams=1",
           "a:tpm=1,streams=1,ttft-ms=1,colour=red", "a:tpm=x,streams=1,ttft-ms=1",
           "a:tpm=-1,streams=1,ttft-ms=1", "a:tpm=1,streams=1,ttft-ms=1,tpm=2",
           "a:tpm=1,streams=1,ttft-ms=600001", "a", "a/b:tpm=1,streams=1,ttft-ms=1"]
    runs = [["--pool", b] for b in bad]
    runs.append(["--pool", "a:tpm=1,streams=1,ttft-ms=1"] * 2)  # a name given twice
    runs.append(sum((["--pool", "p%d:tpm=1,streams=1,ttft-ms=1" % i] for i in range(9)), []))
    runs += [["--payg-latency-ms", v] for v in ("-1", "x", "600001")]
    for args in runs:
        p = subprocess.run([SIM, "--listen", "127.0.0.1:0"] + args, capture_output=True,
                           timeout=TIMEOUT)
        assert p.returncode == 2 and (b"--pool" in p.stderr or b"--payg" in p.stderr), (
            args, p.returncode, p.stderr)


# ---------------------------------------------------------------------------------------------


@test
def request_body_log(sim):
    """GET /v1/_requests?since=SEQ: the bodies the provider received, with path and model."""
    def log(since):
        r = request(sim.port, "GET", "/v1/_requests?since=%d" % since)
        assert r.status == 200, r.status
        return json.loads(r.body)

    last = log(0)["last"]
    sent = {"openai": openai_req([{"role": "user", "content": "logged " + nonce()}],
                                 max_tokens=7),
            "anthropic": anthropic_req([{"role": "user", "content": "logged " + nonce()}]),
            "gemini": gemini_req([{"role": "user", "content": "logged " + nonce()}])}
    for fmt, body in sent.items():
        assert post(sim, fmt, body).status == 200, fmt
    got = log(last)
    assert got["last"] == last + 3 and len(got["requests"]) == 3, got
    for (fmt, body), e in zip(sent.items(), got["requests"]):
        assert json.loads(e["body"]) == body and not e["truncated"], (fmt, e)
    assert [e["path"] for e in got["requests"]] == [
        "/v1/chat/completions", "/v1/messages", GEMINI_STREAM.split("?")[0]]
    assert [e["model"] for e in got["requests"]] == [
        "gpt-4.1-mini", "claude-sonnet-4-5", "gemini-2.5-flash"]
    assert [e["seq"] for e in got["requests"]] == [last + 1, last + 2, last + 3]
    assert log(last + 3)["requests"] == []
    # a refused request is logged too; a body over 256 KiB is kept cut, and says so
    big = {"messages": [{"role": "user", "content": "x" * (300 << 10)}]}  # no model: 400
    assert post(sim, "openai", big).status == 400
    e = log(last + 3)["requests"][0]
    assert e["truncated"] and len(e["body"].encode()) == 256 << 10, len(e["body"])
    assert e["body"].encode() == json.dumps(big).encode()[:256 << 10]
    r = request(sim.port, "POST", "/v1/_requests", {})
    assert r.status == 405, r.status


def main():
    global SIM
    ap = argparse.ArgumentParser()
    ap.add_argument("--sim", required=True)
    ap.add_argument("-k", default="")
    args = ap.parse_args()
    SIM = args.sim
    passed = failed = 0
    sim = Sim()
    try:
        for fn in TESTS:
            if args.k not in fn.__name__:
                continue
            try:
                fn(sim)
                passed += 1
                print("ok   " + fn.__name__)
            except Exception:
                failed += 1
                print("FAIL " + fn.__name__)
                traceback.print_exc(file=sys.stdout)
    finally:
        try:
            sim.stop()
        except Exception:
            failed += 1
            print("FAIL stop")
            traceback.print_exc(file=sys.stdout)
    if failed:
        print("--- sim stderr ---\n" + "".join(sim.lines))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
