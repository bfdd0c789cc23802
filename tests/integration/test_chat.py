#!/usr/bin/env python3
"""test_chat.py - chat protocol v1 (docs/protocol.md) with an independent client: Debian's
python3-websockets, against a running trilemmad with the built-in echo responder.

Covers the session event, the echo turn (turn_start, deltas seq 1..n whose concatenation is the
text, turn_end with usage and cost), every error code reachable before the store lands (each
followed by a turn that shows the connection is still usable), cancel, ping/pong and a clean
close.
"""

import asyncio
import json
import re

import websockets

import harness
from harness import TIMEOUT

suite = harness.Suite("chat")

MAX_TEXT = 1000
MAX_MESSAGE = 8192
FAST = {
    "websocket": {"max_message_bytes": MAX_MESSAGE},
    "session": {"max_text_bytes": MAX_TEXT, "echo_delay_ms": 0, "rate_messages": 100000},
}
# a slow echo keeps a turn running long enough to send a second message or a cancel into it
SLOW = {
    "websocket": {"max_message_bytes": MAX_MESSAGE},
    "session": {"max_text_bytes": MAX_TEXT, "echo_delay_ms": 400, "rate_messages": 100000},
}
RATE = {"session": {"echo_delay_ms": 0, "rate_messages": 5, "rate_window_ms": 600000}}

HEX32 = re.compile(r"^[0-9a-f]{32}$")
WORD = re.compile(r"[^ \t\r\n]+")


def words(text):
    return WORD.findall(text)


class Chat:
    """A python-websockets connection speaking chat protocol v1."""

    def __init__(self, ws, session):
        self.ws = ws
        self.session = session

    @classmethod
    async def connect(cls, srv, **kw):
        ws = await websockets.connect(
            srv.ws_url(), ping_interval=None, max_size=1 << 22, open_timeout=TIMEOUT, close_timeout=TIMEOUT, **kw
        )
        c = cls(ws, None)
        c.session = await c.recv()
        assert c.session.get("type") == "session", c.session
        return c

    async def recv(self):
        msg = await asyncio.wait_for(self.ws.recv(), TIMEOUT)
        assert isinstance(msg, str), "server sent a binary message %r" % msg[:50]
        return json.loads(msg)  # strict: raw control characters in strings fail here

    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False))

    async def turn(self, mid, text, ensure_ascii=False, extra=None):
        """One echo turn; checks every event and returns (turn_start, deltas, turn_end)."""
        msg = {"type": "user_message", "id": mid, "text": text}
        msg.update(extra or {})
        await self.send(json.dumps(msg, ensure_ascii=ensure_ascii))
        start = await self.recv()
        assert start.get("type") == "turn_start", "expected turn_start, got %r" % start
        assert start.get("id") == mid, start
        tid = start.get("turn_id")
        assert isinstance(tid, str) and HEX32.match(tid), start
        deltas = []
        while True:
            ev = await self.recv()
            if ev.get("type") != "delta":
                break
            assert ev.get("turn_id") == tid, ev
            deltas.append(ev)
        end = ev
        assert end.get("type") == "turn_end", "expected turn_end, got %r" % end
        assert end.get("turn_id") == tid, end
        assert [d.get("seq") for d in deltas] == list(range(1, len(deltas) + 1)), [d.get("seq") for d in deltas]
        check_turn_end(end)
        return start, deltas, end

    async def echo(self, mid, text, **kw):
        start, deltas, end = await self.turn(mid, text, **kw)
        got = "".join(d["text"] for d in deltas)
        assert got == text, "echo %r != %r" % (got, text)
        assert end["finish_reason"] == "stop", end
        return start, deltas, end

    async def expect_error(self, payload, code, mid=None, field=None):
        await self.send(payload)
        ev = await self.recv()
        assert ev.get("type") == "error", "sent %r: expected error %s, got %r" % (payload, code, ev)
        assert ev.get("code") == code, "sent %r: expected error %s, got %r" % (payload, code, ev)
        assert isinstance(ev.get("message"), str) and ev["message"], ev
        if mid is not None:
            assert ev.get("id") == mid, "error should carry the client id %r: %r" % (mid, ev)
        if field is not None:
            assert field in ev["message"], "message should name %r: %r" % (field, ev)
        return ev

    async def usable(self):
        await self.echo("still-usable", "still here")

    async def close(self, code=1000, reason="bye"):
        await self.ws.close(code, reason)


def check_turn_end(end):
    assert end.get("finish_reason") in ("stop", "length", "cancelled", "error"), end
    usage = end.get("usage")
    assert isinstance(usage, dict), end
    for k in ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens"):
        assert isinstance(usage.get(k), int) and not isinstance(usage.get(k), bool) and usage[k] >= 0, (k, usage)
    assert usage["cached_input_tokens"] <= usage["input_tokens"], usage
    cost = end.get("cost")
    assert isinstance(cost, dict) and isinstance(cost.get("currency"), str) and cost["currency"], end
    assert isinstance(cost.get("micros"), int) and cost["micros"] >= 0, end
    lat = end.get("latency_ms")
    assert isinstance(lat, dict), end
    assert isinstance(lat.get("total"), int) and lat["total"] >= 0, end
    if lat.get("first_token") is not None:
        assert isinstance(lat["first_token"], int) and 0 <= lat["first_token"] <= lat["total"], end


def fast():
    return suite.server("fast", config=FAST)


# ------------------------------------------------------------------------------------------
# Session and turns


@suite.test
async def session_event():
    c = await Chat.connect(fast())
    s = c.session
    assert HEX32.match(s.get("conversation_id", "")), s
    assert s.get("user") == "", "anonymous session: user should be empty: %r" % s
    assert s.get("protocol") == 1, s
    limits = s.get("limits", {})
    assert limits.get("max_text_bytes") == MAX_TEXT, s
    assert limits.get("max_message_bytes") == MAX_MESSAGE, s
    c2 = await Chat.connect(fast())
    assert c2.session["conversation_id"] != s["conversation_id"], "two sessions share a conversation id"
    await c.close()
    await c2.close()


@suite.test
async def echo_turn_basic():
    c = await Chat.connect(fast())
    text = "Do you have running shoes under 3000?"
    start, deltas, end = await c.echo("c-1", text)
    assert len(deltas) == len(words(text)), "one delta per word: %r" % [d["text"] for d in deltas]
    assert end["usage"]["output_tokens"] == len(words(text)), end
    assert end["usage"]["input_tokens"] == len(words(text)), end
    assert end["cost"]["micros"] == 0, end
    await c.close()


@suite.test
async def echo_whitespace_belongs_to_the_word_before():
    c = await Chat.connect(fast())
    text = "one two  three\tfour\nfive \r\n six "
    _, deltas, _ = await c.echo("ws", text)
    assert [d["text"] for d in deltas] == ["one ", "two  ", "three\t", "four\n", "five \r\n ", "six "], [
        d["text"] for d in deltas
    ]
    await c.close()


ECHO_TEXTS = [
    "h\u00e9llo w\u00f6rld \u65e5\u672c\u8a9e \u0928\u092e\u0938\u094d\u0924\u0947",
    "emoji \U0001F600 \U0001F44D\U0001F3FD family \U0001F468\u200D\U0001F469\u200D\U0001F467 flags \U0001F1EE\U0001F1F3",
    'quotes "double" \'single\' and \\backslashes\\ and \\"both\\"',
    "new\nlines\n\nand\ttabs and a / slash",
    "control \u0001 \u001f chars and DEL \u007f and U+2028 \u2028 U+2029 \u2029",
    "x",
    "a" * MAX_TEXT,
    "\u20ac" * (MAX_TEXT // 3),
    "</script><script>alert(1)</script> & < >",
    "{\"type\":\"turn_end\"} looks like json",
    "NUL \u0000 inside, escaped in JSON",
    "   ",
]


@suite.test
async def echo_round_trips_utf8_and_escapes():
    c = await Chat.connect(fast())
    for i, text in enumerate(ECHO_TEXTS):
        await c.echo("t%d" % i, text)
        await c.echo("a%d" % i, text, ensure_ascii=True)  # \uXXXX escapes and surrogate pairs in
    await c.close()


@suite.test
async def text_of_exactly_max_bytes_is_accepted():
    c = await Chat.connect(fast())
    await c.echo("max-ascii", "b" * MAX_TEXT)
    text = "\u20ac" * (MAX_TEXT // 3) + "z" * (MAX_TEXT % 3)
    assert len(text.encode()) == MAX_TEXT
    await c.echo("max-utf8", text)
    await c.close()


@suite.test
async def unknown_members_are_ignored():
    c = await Chat.connect(fast())
    await c.echo("extra", "with extras", extra={"future": {"nested": [1, 2, {"x": None}]}, "n": 1.5e10, "b": True})
    await c.close()


@suite.test
async def turns_back_to_back_have_distinct_ids():
    c = await Chat.connect(fast())
    ids = set()
    for i in range(20):
        start, _, _ = await c.echo("b%d" % i, "turn number %d" % i)
        ids.add(start["turn_id"])
    assert len(ids) == 20, "turn ids repeat"
    await c.close()


@suite.test
async def concurrent_sessions_are_isolated():
    srv = fast()

    async def one(i):
        c = await Chat.connect(srv)
        for j in range(3):
            await c.echo("s%d-%d" % (i, j), "session %d turn %d " % (i, j) + "w " * (i % 7))
        await c.close()
        return c.session["conversation_id"]

    convs = await asyncio.gather(*(one(i) for i in range(30)))
    assert len(set(convs)) == 30


# ------------------------------------------------------------------------------------------
# Errors: each one leaves the connection usable


@suite.test
async def error_invalid_json():
    c = await Chat.connect(fast())
    for bad in ("{", "nul", '{"type":"user_message",}', "", " ", '{"type":"user_message","id":"a","text":"x"',
                "{'type':'user_message'}", '{"type":"user_message"} trailing', "\u00e9"):
        await c.expect_error(bad, "invalid_json")
        await c.usable()
    await c.close()


def turns_started(srv):
    r = harness.http_request(getattr(srv, "admin_port", srv.port), "GET", "/metrics")
    return sum(float(l.rsplit(" ", 1)[1]) for l in r.body.decode().splitlines()
               if l.startswith("trilemma_turns_started_total"))


@suite.test
async def duplicate_keys_are_refused():
    # one reading of a message: the server took the first of two keys, Python and browsers the
    # last; now any object of the message with a repeated key (after unescaping) is refused
    srv = fast()
    c = await Chat.connect(srv)
    before = turns_started(srv)
    for bad in ('{"type":"user_message","id":"d1","text":"first","text":"second"}',
                '{"type":"cancel","type":"user_message","id":"d2","text":"x"}',
                '{"type":"user_message","id":"d3","id":"d4","text":"x"}',
                '{"type":"user_message","id":"d5","text":"x","\u0074ext":"y"}',
                '{"type":"user_message","id":"d6","text":"x","meta":{"a":1,"a":2}}',
                '{"type":"resume","conversation_id":"c","after_seq":0,"after_seq":5}'):
        ev = await c.expect_error(bad, "invalid_json")
        assert "duplicate" in ev["message"], ev
        assert "turn_id" not in ev, ev
        await c.usable()
    # nothing was started for the refused ones: only the usable() turns
    assert turns_started(srv) == before + 6, (before, turns_started(srv))
    await c.close()


@suite.test
async def lone_surrogate_escape_is_refused():
    # "\ud800" decodes to no Unicode scalar value: refuse it rather than echo invalid UTF-8
    c = await Chat.connect(fast())
    for raw in ('{"type":"user_message","id":"s1","text":"\\ud800 x"}',
                '{"type":"user_message","id":"s2","text":"\\udc00"}',
                '{"type":"user_message","id":"s3","text":"\\ud83d"}'):
        await c.send(raw)
        ev = await c.recv()
        assert ev.get("type") == "error" and ev.get("code") in ("invalid_json", "invalid_field"), (raw, ev)
        await c.usable()
    await c.close()


@suite.test
async def error_invalid_message():
    c = await Chat.connect(fast())
    for bad in ("[]", '"x"', '{"type":5}', "42", "null", "true", '{"type":null}', '{"type":["user_message"]}',
                '{"type":{"a":1}}'):
        await c.expect_error(bad, "invalid_message")
        await c.usable()
    # no `type` at all: "type is not a string" (invalid_message) or a missing member
    await c.send('{"id":"x","text":"y"}')
    ev = await c.recv()
    assert ev.get("type") == "error" and ev.get("code") in ("invalid_message", "missing_field"), ev
    await c.usable()
    await c.close()


@suite.test
async def error_unknown_type():
    c = await Chat.connect(fast())
    for t in ("foo", "", "USER_MESSAGE", "user_message ", "session", "turn_end"):
        await c.expect_error({"type": t}, "unknown_type")
        await c.usable()
    await c.close()


@suite.test
async def error_missing_field():
    c = await Chat.connect(fast())
    await c.expect_error({"type": "user_message", "text": "no id"}, "missing_field", field="id")
    await c.usable()
    await c.expect_error({"type": "user_message", "id": "m-1"}, "missing_field", mid="m-1", field="text")
    await c.usable()
    await c.expect_error({"type": "cancel"}, "missing_field", field="turn_id")
    await c.usable()
    await c.close()


@suite.test
async def error_invalid_field():
    c = await Chat.connect(fast())
    cases = [
        ({"type": "user_message", "id": 5, "text": "x"}, None, "id"),
        ({"type": "user_message", "id": None, "text": "x"}, None, "id"),
        ({"type": "user_message", "id": "", "text": "x"}, None, "id"),
        ({"type": "user_message", "id": "i" * 129, "text": "x"}, None, "id"),
        ({"type": "user_message", "id": "\u20ac" * 43, "text": "x"}, None, "id"),  # 129 bytes, 43 chars
        ({"type": "user_message", "id": ["a"], "text": "x"}, None, "id"),
        ({"type": "user_message", "id": "f-1", "text": 5}, "f-1", "text"),
        ({"type": "user_message", "id": "f-2", "text": None}, "f-2", "text"),
        ({"type": "user_message", "id": "f-3", "text": ""}, "f-3", "text"),
        ({"type": "user_message", "id": "f-4", "text": ["x"]}, "f-4", "text"),
        ({"type": "user_message", "id": "f-5", "text": {"a": "b"}}, "f-5", "text"),
        ({"type": "cancel", "turn_id": 5}, None, "turn_id"),
        ({"type": "cancel", "turn_id": None}, None, "turn_id"),
    ]
    for payload, mid, field in cases:
        await c.expect_error(payload, "invalid_field", mid=mid, field=field)
        await c.usable()
    await c.close()


@suite.test
async def id_of_128_bytes_is_accepted():
    c = await Chat.connect(fast())
    await c.echo("i" * 128, "long id")
    await c.echo("\u00e9" * 64, "long multibyte id")  # 128 bytes
    await c.close()


@suite.test
async def error_text_too_long():
    c = await Chat.connect(fast())
    await c.expect_error({"type": "user_message", "id": "long-1", "text": "a" * (MAX_TEXT + 1)}, "text_too_long", mid="long-1")
    await c.usable()
    # bytes, not characters: 334 euro signs are 1002 bytes
    await c.expect_error({"type": "user_message", "id": "long-2", "text": "\u20ac" * 334}, "text_too_long", mid="long-2")
    await c.usable()
    await c.close()


@suite.test
async def error_unknown_turn():
    c = await Chat.connect(fast())
    await c.expect_error({"type": "cancel", "turn_id": "0" * 32}, "unknown_turn")
    await c.usable()
    await c.expect_error({"type": "cancel", "turn_id": "not-a-turn"}, "unknown_turn")
    await c.usable()
    # a finished turn is not running any more
    start, _, _ = await c.echo("fin", "finished turn")
    await c.expect_error({"type": "cancel", "turn_id": start["turn_id"]}, "unknown_turn")
    await c.usable()
    # another session's running turn is not this session's
    other = await Chat.connect(suite.server("slow", config=SLOW))
    mine = await Chat.connect(suite.server("slow", config=SLOW))
    await other.send({"type": "user_message", "id": "o", "text": "other session words " * 5})
    ost = await other.recv()
    assert ost["type"] == "turn_start", ost
    await mine.expect_error({"type": "cancel", "turn_id": ost["turn_id"]}, "unknown_turn")
    await other.send({"type": "cancel", "turn_id": ost["turn_id"]})
    while True:
        ev = await other.recv()
        if ev["type"] == "turn_end":
            break
    await other.close()
    await mine.close()
    await c.close()


@suite.test
async def error_resume_unavailable():
    c = await Chat.connect(fast())
    await c.expect_error(
        {"type": "resume", "conversation_id": c.session["conversation_id"], "after_seq": 0}, "resume_unavailable"
    )
    await c.usable()
    await c.close()


@suite.test
async def turn_in_progress_then_cancel():
    c = await Chat.connect(suite.server("slow", config=SLOW))
    text = " ".join("word%d" % i for i in range(30))  # 30 x 400 ms: far longer than this test
    await c.send({"type": "user_message", "id": "first", "text": text})
    start = await c.recv()
    assert start["type"] == "turn_start" and start["id"] == "first", start
    tid = start["turn_id"]
    first = await c.recv()
    assert first["type"] == "delta" and first["seq"] == 1, first

    await c.send({"type": "user_message", "id": "second", "text": "not now"})
    deltas = [first]
    while True:
        ev = await c.recv()
        if ev["type"] == "delta":
            deltas.append(ev)
            continue
        break
    assert ev.get("type") == "error" and ev.get("code") == "turn_in_progress", ev
    assert ev.get("id") == "second", ev

    await c.send({"type": "cancel", "turn_id": tid})
    while True:
        ev = await c.recv()
        if ev["type"] != "delta":
            break
        deltas.append(ev)
    assert ev["type"] == "turn_end" and ev["turn_id"] == tid, ev
    assert ev["finish_reason"] == "cancelled", ev
    check_turn_end(ev)
    assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
    got = "".join(d["text"] for d in deltas)
    assert text.startswith(got) and len(deltas) < 30, "cancelled turn sent %r" % got
    # the session takes a new turn after the cancel
    await c.echo("after-cancel", "ok")
    await c.close()


@suite.test
async def cancel_before_first_delta():
    c = await Chat.connect(suite.server("slow", config=SLOW))
    await c.send({"type": "user_message", "id": "early", "text": "a b c d e f"})
    start = await c.recv()
    assert start["type"] == "turn_start", start
    await c.send({"type": "cancel", "turn_id": start["turn_id"]})
    while True:
        ev = await c.recv()
        if ev["type"] != "delta":
            break
    assert ev["type"] == "turn_end" and ev["finish_reason"] == "cancelled", ev
    await c.close()


@suite.test
async def error_rate_limited():
    c = await Chat.connect(suite.server("rate", config=RATE))
    for i in range(5):
        await c.echo("r%d" % i, "within the limit")
    # (the limit is checked before the message is parsed, so the error need not carry the id)
    await c.expect_error({"type": "user_message", "id": "r5", "text": "one too many"}, "rate_limited")
    # still open and answering: ping/pong is not a chat message
    pong = await c.ws.ping(b"alive?")
    await asyncio.wait_for(pong, TIMEOUT)
    await c.close()
    assert c.ws.close_code == 1000


# ------------------------------------------------------------------------------------------
# Ping, close


@suite.test
async def ping_pong_with_websockets():
    c = await Chat.connect(fast())
    for payload in (b"", b"abc", bytes(range(125))):
        waiter = await c.ws.ping(payload)
        await asyncio.wait_for(waiter, TIMEOUT)
    await c.usable()
    await c.close()


@suite.test
async def clean_close_1000():
    c = await Chat.connect(fast())
    await c.echo("bye", "see you")
    await c.ws.close(1000, "bye")
    assert c.ws.close_code == 1000, c.ws.close_code
    await asyncio.wait_for(c.ws.wait_closed(), TIMEOUT)


@suite.test
async def close_during_turn():
    c = await Chat.connect(suite.server("slow", config=SLOW))
    await c.send({"type": "user_message", "id": "gone", "text": "a b c d e f g h"})
    assert (await c.recv())["type"] == "turn_start"
    await c.ws.close(1001, "leaving")
    assert c.ws.close_code == 1001, c.ws.close_code
    # the server stays healthy and takes new sessions
    c2 = await Chat.connect(suite.server("slow", config=SLOW))
    await c2.echo("next", "hi")
    await c2.close()


if __name__ == "__main__":
    suite.main()
