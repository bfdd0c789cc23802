#!/usr/bin/env python3
"""test_ws_rfc6455.py - every RFC 6455 rule of issue 2 item 4, against a running trilemmad.

Each violation gets its own connection: open (handshake + session event), send the bad frame,
wait for the close frame with the expected code, then for the server to end the TCP connection.
Where a rule says "decided before the payload is read" or "fails fast", the test sends only the
part that decides and waits for the close before it sends the rest.
"""

import json
import os
import struct

import harness
from harness import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RawWS,
    accept_value,
    close_payload,
    encode_frame,
    new_key,
)

suite = harness.Suite("ws_rfc6455")

MAX_MESSAGE = 4096
CONFIG = {
    "websocket": {"max_message_bytes": MAX_MESSAGE, "close_timeout_ms": 1000},
    "session": {"max_text_bytes": 2000, "echo_delay_ms": 0, "rate_messages": 100000},
}


def server():
    return suite.server(config=CONFIG)


def port():
    return server().port


def user_message(mid, text, **extra):
    obj = {"type": "user_message", "id": mid, "text": text}
    obj.update(extra)
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def expect_turn(ws, mid, text):
    """The echo turn for a user_message: turn_start with the id, deltas, turn_end stop."""
    start, before = ws.recv_json_until(lambda e: e.get("type") in ("turn_start", "error"))
    assert start["type"] == "turn_start", "expected turn_start, got %r" % start
    assert start.get("id") == mid, start
    end, deltas = ws.recv_json_until(lambda e: e.get("type") == "turn_end")
    assert end.get("finish_reason") == "stop", end
    got = "".join(d["text"] for d in deltas if d.get("type") == "delta")
    assert got == text, "echo %r != %r" % (got, text)


def expect_violation(action, code, what=""):
    """Open a connection, run action(ws), expect close `code` and then the end of TCP."""
    with RawWS(port()) as ws:
        ws.open()
        try:
            action(ws)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close before the action has sent everything
        got, reason = ws.expect_close()
        assert got == code, "%s: close code %r (reason %r), expected %d" % (what, got, reason, code)
        ws.expect_eof()


def try_send(ws, data):
    """Send bytes the server may legitimately no longer read (it may have closed already)."""
    try:
        ws.send(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


# ------------------------------------------------------------------------------------------
# Opening handshake


@suite.test
def handshake_accept_rfc_example():
    with RawWS(port()) as ws:
        r = ws.handshake(key="dGhlIHNhbXBsZSBub25jZQ==")
        assert r.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", r
        assert r.header("upgrade", "").lower() == "websocket", r
        assert "upgrade" in r.header("connection", "").lower(), r


@suite.test
def handshake_accept_random_keys():
    for _ in range(5):
        key = new_key()
        with RawWS(port()) as ws:
            r = ws.handshake(key=key)
            assert r.header("sec-websocket-accept") == accept_value(key), r


@suite.test
def handshake_no_extension_no_subprotocol():
    with RawWS(port()) as ws:
        r = ws.handshake(
            headers={
                "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
                "Sec-WebSocket-Protocol": "chat, superchat",
            }
        )
        assert r.header("sec-websocket-extensions") is None, r
        assert r.header("sec-websocket-protocol") is None, r
        ev = ws.recv_json()
        assert ev["type"] == "session", ev


@suite.test
def handshake_header_case_and_connection_list():
    # Firefox sends "Connection: keep-alive, Upgrade"; header names and tokens are
    # case-insensitive.
    with RawWS(port()) as ws:
        key = new_key()
        req = (
            "GET /ws HTTP/1.1\r\nhost: 127.0.0.1\r\nUPGRADE: WebSocket\r\n"
            "connection: keep-alive, Upgrade\r\nsec-websocket-key: %s\r\n"
            "SEC-WEBSOCKET-VERSION: 13\r\n\r\n" % key
        )
        ws.send(req.encode())
        r = ws.read_response()
        assert r.status == 101, r
        assert r.header("sec-websocket-accept") == accept_value(key), r
        assert ws.recv_json()["type"] == "session"


def error_response(r, status):
    assert r.status == status, "got %d, expected %d: %r" % (r.status, status, r)
    assert "close" in r.header("connection", "").lower(), "error response without Connection: close: %r" % r
    body = r.json()
    assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str), body


@suite.test
def handshake_version_not_13_is_426():
    for v in ("8", "12", "14", "abc"):
        with RawWS(port()) as ws:
            r = ws.handshake(version=v, expect=None)
            error_response(r, 426)
            versions = [x.strip() for h in r.header_all("sec-websocket-version") for x in h.split(",")]
            assert versions == ["13"], "426 must name Sec-WebSocket-Version: 13: %r" % r
            ws.read_to_eof()


@suite.test
def handshake_version_missing_is_refused():
    with RawWS(port()) as ws:
        r = ws.handshake(headers={"Sec-WebSocket-Version": None}, expect=None)
        assert r.status in (400, 426), r


@suite.test
def handshake_missing_key_is_400():
    with RawWS(port()) as ws:
        error_response(ws.handshake(headers={"Sec-WebSocket-Key": None}, expect=None), 400)


@suite.test
def handshake_duplicated_key_is_400():
    with RawWS(port()) as ws:
        req = (
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (new_key(), new_key())
        )
        ws.send(req.encode())
        error_response(ws.read_response(), 400)


@suite.test
def handshake_malformed_key_is_400():
    import base64

    for bad in ("abc", base64.b64encode(os.urandom(15)).decode(), base64.b64encode(os.urandom(17)).decode(), "!!!!!!!!!!!!!!!!!!!!!!=="):
        with RawWS(port()) as ws:
            error_response(ws.handshake(key=bad, expect=None), 400)


@suite.test
def handshake_no_host_is_400():
    with RawWS(port()) as ws:
        error_response(ws.handshake(host=None, expect=None), 400)


@suite.test
def handshake_http10_is_400():
    with RawWS(port()) as ws:
        req = (
            "GET /ws HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % new_key()
        )
        ws.send(req.encode())
        r = ws.read_response()
        assert r.status == 400, r


@suite.test
def handshake_without_upgrade_headers_is_426():
    with RawWS(port()) as ws:
        error_response(ws.handshake(headers={"Upgrade": None}, expect=None), 426)
    with RawWS(port()) as ws:
        error_response(ws.handshake(headers={"Connection": "keep-alive"}, expect=None), 426)


@suite.test
def handshake_not_get_is_405():
    with RawWS(port()) as ws:
        req = (
            "POST /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n" % new_key()
        )
        ws.send(req.encode())
        error_response(ws.read_response(), 405)


# ------------------------------------------------------------------------------------------
# Frames that must work


@suite.test
def server_frames_are_unmasked_text():
    with RawWS(port()) as ws:
        ws.handshake()
        f = ws.recv_frame()
        assert not f.masked and f.rsv == 0 and f.opcode == OP_TEXT and f.fin, f
        assert json.loads(f.payload)["type"] == "session"
        ws.send_frame(OP_TEXT, user_message("m1", "unmasked please"))
        n = 0
        while True:
            f = ws.recv_frame()
            assert not f.masked, "masked server frame %r" % f
            n += 1
            if f.opcode == OP_TEXT and json.loads(f.payload)["type"] == "turn_end":
                break
        assert ws.masked_frames == 0


@suite.test
def ping_answered_with_same_payload():
    with RawWS(port()) as ws:
        ws.open()
        for payload in (b"", b"hello", bytes(range(125)), "żółw".encode()):
            ws.send_frame(OP_PING, payload)
            f = ws.recv_frame()
            assert f.opcode == OP_PONG and f.fin and f.payload == payload, "pong %r for ping %r" % (f, payload)


@suite.test
def several_pings_in_one_write_answered_in_order():
    with RawWS(port()) as ws:
        ws.open()
        data = b"".join(b"".join(encode_frame(OP_PING, b"p%d" % i)) for i in range(5))
        ws.send(data)
        for i in range(5):
            f = ws.recv_frame()
            assert f.opcode == OP_PONG and f.payload == b"p%d" % i, f


@suite.test
def unsolicited_pong_is_ignored():
    with RawWS(port()) as ws:
        ws.open()
        ws.send_frame(OP_PONG, b"nobody asked")
        ws.send_frame(OP_PING, b"still there?")
        f = ws.recv_frame()
        assert f.opcode == OP_PONG and f.payload == b"still there?", f


@suite.test
def header_and_payload_in_separate_writes():
    with RawWS(port()) as ws:
        ws.open()
        ws.send_frame(OP_TEXT, user_message("split", "two writes"), split=True)
        expect_turn(ws, "split", "two writes")


@suite.test
def frame_sent_one_byte_per_write():
    with RawWS(port()) as ws:
        ws.open()
        head, body = encode_frame(OP_TEXT, user_message("bytes", "drip fed"))
        for b in head + body:
            ws.send(bytes([b]))
        expect_turn(ws, "bytes", "drip fed")


@suite.test
def two_byte_and_eight_byte_lengths():
    # 126..65535 uses the 16-bit length; the 64-bit form is valid for any length too when the
    # message fits the limit (the RFC wants minimal encoding from senders; we use it properly).
    with RawWS(port()) as ws:
        ws.open()
        text = "x " * 100
        msg = user_message("len16", text, pad="p" * 200)
        assert 126 <= len(msg) < 65536
        ws.send_frame(OP_TEXT, msg)
        expect_turn(ws, "len16", text)


@suite.test
def message_of_exactly_max_bytes_is_accepted():
    with RawWS(port()) as ws:
        ws.open()
        base = user_message("max", "fits", pad="")
        msg = user_message("max", "fits", pad="p" * (MAX_MESSAGE - len(base)))
        assert len(msg) == MAX_MESSAGE
        ws.send_frame(OP_TEXT, msg)
        expect_turn(ws, "max", "fits")


@suite.test
def fragmented_message_is_reassembled():
    with RawWS(port()) as ws:
        ws.open()
        msg = user_message("frag3", "three fragments here")
        a, b = len(msg) // 3, 2 * len(msg) // 3
        ws.send_frame(OP_TEXT, msg[:a], fin=False)
        ws.send_frame(OP_CONT, msg[a:b], fin=False)
        ws.send_frame(OP_CONT, msg[b:], fin=True)
        expect_turn(ws, "frag3", "three fragments here")


@suite.test
def empty_fragments_are_fine():
    with RawWS(port()) as ws:
        ws.open()
        msg = user_message("empties", "zero length fragments")
        ws.send_frame(OP_TEXT, b"", fin=False)
        ws.send_frame(OP_CONT, msg, fin=False)
        ws.send_frame(OP_CONT, b"", fin=True)
        expect_turn(ws, "empties", "zero length fragments")


@suite.test
def ping_between_fragments_answered_then_message_processed():
    with RawWS(port()) as ws:
        ws.open()
        msg = user_message("pingfrag", "between the fragments")
        half = len(msg) // 2
        ws.send_frame(OP_TEXT, msg[:half], fin=False)
        ws.send_frame(OP_PING, b"between")
        f = ws.recv_frame()
        assert f.opcode == OP_PONG and f.payload == b"between", "pong between fragments: %r" % f
        ws.send_frame(OP_CONT, msg[half:], fin=True)
        expect_turn(ws, "pingfrag", "between the fragments")


@suite.test
def utf8_sequence_split_across_fragments_is_valid():
    with RawWS(port()) as ws:
        ws.open()
        text = "price \u20ac 5 \U0001F600 ok"
        msg = user_message("utf8split", text)
        cut = msg.index("\u20ac".encode()) + 1  # in the middle of the 3-byte euro sign
        ws.send_frame(OP_TEXT, msg[:cut], fin=False)
        cut2 = msg.index("\U0001F600".encode()) + 2  # in the middle of the 4-byte emoji
        ws.send_frame(OP_CONT, msg[cut:cut2], fin=False)
        ws.send_frame(OP_CONT, msg[cut2:], fin=True)
        expect_turn(ws, "utf8split", text)


@suite.test
def utf8_sequence_split_across_writes_is_valid():
    with RawWS(port()) as ws:
        ws.open()
        text = "\u00e9t\u00e9 \u65e5\u672c \U0001F680"
        head, body = encode_frame(OP_TEXT, user_message("utf8w", text))
        for i in range(0, len(body), 3):
            ws.send((head if i == 0 else b"") + body[i : i + 3])
        expect_turn(ws, "utf8w", text)


@suite.test
def close_between_fragments_is_answered():
    with RawWS(port()) as ws:
        ws.open()
        ws.send_frame(OP_TEXT, b'{"type":"user_', fin=False)
        ws.send_close(1000)
        code, _ = ws.expect_close()
        assert code == 1000, code
        ws.expect_eof()


# ------------------------------------------------------------------------------------------
# Protocol errors -> 1002


@suite.test
def unmasked_client_frame_is_1002():
    expect_violation(lambda ws: ws.send_frame(OP_TEXT, user_message("u", "x"), mask=False), 1002, "unmasked text")
    expect_violation(lambda ws: ws.send_frame(OP_PING, b"x", mask=False), 1002, "unmasked ping")


@suite.test
def rsv_bits_are_1002():
    for rsv in (4, 2, 1, 7):  # RSV1, RSV2, RSV3, all
        expect_violation(lambda ws: ws.send_frame(OP_TEXT, user_message("r", "x"), rsv=rsv), 1002, "rsv=%d" % rsv)
    expect_violation(lambda ws: ws.send_frame(OP_PING, b"x", rsv=4), 1002, "RSV1 on a ping")


@suite.test
def reserved_opcodes_are_1002():
    for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
        expect_violation(lambda ws: ws.send_frame(op, b"x"), 1002, "opcode %#x" % op)


@suite.test
def reserved_opcode_inside_fragmented_message_is_1002():
    def act(ws):
        ws.send_frame(OP_TEXT, b'{"type"', fin=False)
        ws.send_frame(0x3, b"x")

    expect_violation(act, 1002, "opcode 3 between fragments")


@suite.test
def control_frame_over_125_is_1002():
    expect_violation(lambda ws: ws.send_frame(OP_PING, b"x" * 126), 1002, "ping of 126 bytes")
    expect_violation(lambda ws: ws.send_frame(OP_PONG, b"x" * 200), 1002, "pong of 200 bytes")
    expect_violation(lambda ws: ws.send_frame(OP_CLOSE, close_payload(1000, b"r" * 124)), 1002, "close of 126 bytes")


@suite.test
def control_frame_length_decided_from_header():
    # a ping declaring 126 bytes: the close must come without the payload being sent
    def act(ws):
        head, _ = encode_frame(OP_PING, b"x" * 126)
        ws.send(head)

    expect_violation(act, 1002, "ping header declaring 126 bytes")


@suite.test
def fragmented_ping_is_1002():
    expect_violation(lambda ws: ws.send_frame(OP_PING, b"x", fin=False), 1002, "ping with FIN=0")
    expect_violation(lambda ws: ws.send_frame(OP_CLOSE, close_payload(1000), fin=False), 1002, "close with FIN=0")


@suite.test
def continuation_without_start_is_1002():
    expect_violation(lambda ws: ws.send_frame(OP_CONT, b"x", fin=True), 1002, "lone final continuation")
    expect_violation(lambda ws: ws.send_frame(OP_CONT, b"x", fin=False), 1002, "lone continuation")


@suite.test
def continuation_after_complete_message_is_1002():
    def act(ws):
        ws.send_frame(OP_TEXT, user_message("done", "complete"))
        ws.send_frame(OP_CONT, b"more", fin=True)

    expect_violation(act, 1002, "continuation after a final frame")


@suite.test
def new_text_while_fragmented_message_open_is_1002():
    def act(ws):
        ws.send_frame(OP_TEXT, b'{"type":', fin=False)
        ws.send_frame(OP_TEXT, user_message("x", "y"), fin=True)

    expect_violation(act, 1002, "text frame while a message is open")


@suite.test
def length_with_msb_set_is_refused():
    # RFC 6455 5.2: the most significant bit of the 64-bit length MUST be 0
    def act(ws):
        ws.send(struct.pack("!BBQ", 0x81, 0x80 | 127, 1 << 63) + os.urandom(4))

    with RawWS(port()) as ws:
        ws.open()
        act(ws)
        code, _ = ws.expect_close()
        assert code in (1002, 1009), "64-bit length with MSB set: close %r" % code
        ws.expect_eof()


# ------------------------------------------------------------------------------------------
# UTF-8 -> 1007


BAD_UTF8 = {
    "0xff": b"\xff",
    "lone continuation": b"\x80",
    "overlong /": b"\xc0\xaf",
    "overlong NUL 3 bytes": b"\xe0\x80\x80",
    "surrogate D800": b"\xed\xa0\x80",
    "above U+10FFFF": b"\xf4\x90\x80\x80",
    "5-byte form": b"\xf8\x88\x80\x80\x80",
    "truncated 2-byte then ASCII": b"\xc3(",
}


@suite.test
def invalid_utf8_whole_message_is_1007():
    for name, bad in BAD_UTF8.items():
        msg = b'{"type":"user_message","id":"u","text":"a' + bad + b'z"}'
        expect_violation(lambda ws: ws.send_frame(OP_TEXT, msg), 1007, "invalid UTF-8 (%s)" % name)


@suite.test
def truncated_utf8_at_end_of_message_is_1007():
    # a valid prefix of a 3-byte sequence as the very last bytes of the message
    expect_violation(lambda ws: ws.send_frame(OP_TEXT, b'{"t":"\xe2\x82'), 1007, "truncated at end")

    def act(ws):
        ws.send_frame(OP_TEXT, b'{"t":"', fin=False)
        ws.send_frame(OP_CONT, b"\xf0\x9f\x98", fin=True)

    expect_violation(act, 1007, "truncated at the end of the final fragment")


@suite.test
def invalid_utf8_in_first_fragment_closes_before_final_fragment():
    with RawWS(port()) as ws:
        ws.open()
        ws.send_frame(OP_TEXT, b'{"type":"user_message","text":"\xff', fin=False)
        # the rest is never sent: the server must decide on this fragment alone
        code, _ = ws.expect_close()
        assert code == 1007, "close %r" % code
        ws.expect_eof()


@suite.test
def invalid_utf8_in_middle_fragment_closes_before_final_fragment():
    with RawWS(port()) as ws:
        ws.open()
        ws.send_frame(OP_TEXT, b'{"type":"user_message",', fin=False)
        ws.send_frame(OP_CONT, b'"text":"\xed\xa0\x80', fin=False)
        code, _ = ws.expect_close()
        assert code == 1007, "close %r" % code
        ws.expect_eof()


@suite.test
def invalid_utf8_fails_fast_inside_a_frame():
    # Stricter: the frame declares 200 bytes; only the first 16 (holding the bad byte) are sent.
    with RawWS(port()) as ws:
        ws.open()
        payload = b'{"text":"ab\xffcd' + b"x" * 186
        assert len(payload) == 200
        head, body = encode_frame(OP_TEXT, payload)
        ws.send(head + body[:16])
        code, _ = ws.expect_close()
        assert code == 1007, "close %r" % code
        try_send(ws, body[16:])
        ws.expect_eof()


# ------------------------------------------------------------------------------------------
# Close handshake


VALID_CLOSE = (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999)
INVALID_CLOSE = (0, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535)


@suite.test
def valid_close_codes_are_echoed():
    for code in VALID_CLOSE:
        with RawWS(port()) as ws:
            ws.open()
            ws.send_close(code, b"bye")
            got, _ = ws.expect_close()
            assert got == code, "sent close %d, server answered %r" % (code, got)
            ws.expect_eof()


@suite.test
def invalid_close_codes_are_1002():
    for code in INVALID_CLOSE:
        expect_violation(lambda ws: ws.send_close(code), 1002, "close code %d" % code)


@suite.test
def close_with_one_byte_payload_is_1002():
    expect_violation(lambda ws: ws.send_close(raw=b"\x03"), 1002, "1-byte close payload")


@suite.test
def close_with_invalid_utf8_reason_is_1007():
    expect_violation(lambda ws: ws.send_close(1000, b"bad \xff reason"), 1007, "reason 0xff")
    expect_violation(lambda ws: ws.send_close(1000, b"cut \xe2\x82"), 1007, "truncated reason")


@suite.test
def close_with_utf8_reason_and_max_length_is_echoed():
    with RawWS(port()) as ws:
        ws.open()
        reason = ("\u00e9" * 61 + "x").encode()  # 2 + 123 = 125 bytes
        assert len(reason) == 123
        ws.send_close(1000, reason)
        got, _ = ws.expect_close()
        assert got == 1000, got
        ws.expect_eof()


@suite.test
def empty_close_is_answered_with_1000():
    with RawWS(port()) as ws:
        ws.open()
        ws.send_close()
        got, reason = ws.expect_close()
        assert got == 1000, "empty close answered with %r (docs/protocol.md: 1000)" % got
        ws.expect_eof()


@suite.test
def after_close_handshake_server_closes_tcp():
    with RawWS(port()) as ws:
        ws.open()
        ws.send_close(1000, b"done")
        got, _ = ws.expect_close()
        assert got == 1000
        # the server, not the client, ends TCP: a FIN, not a reset
        assert ws.expect_eof(allow_reset=False) == "eof"


@suite.test
def data_after_client_close_is_ignored():
    with RawWS(port()) as ws:
        ws.open()
        ws.send_close(1000)
        try_send(ws, b"".join(encode_frame(OP_TEXT, user_message("late", "too late"))))
        got, _ = ws.expect_close(skip_data=False)
        assert got == 1000, got
        ws.expect_eof()


# ------------------------------------------------------------------------------------------
# Size limit -> 1009, binary -> 1003


@suite.test
def too_big_decided_from_declared_length():
    with RawWS(port()) as ws:
        ws.open()
        head, body = encode_frame(OP_TEXT, b"x" * (MAX_MESSAGE + 1))
        ws.send(head)  # only the header: max+1 bytes declared
        code, _ = ws.expect_close()
        assert code == 1009, "close %r" % code
        ws.expect_eof()


@suite.test
def too_big_64bit_length_decided_from_header():
    with RawWS(port()) as ws:
        ws.open()
        ws.send(struct.pack("!BBQ", 0x81, 0x80 | 127, 1 << 40) + os.urandom(4))
        code, _ = ws.expect_close()
        assert code == 1009, "close %r" % code
        ws.expect_eof()


@suite.test
def too_big_across_fragments():
    with RawWS(port()) as ws:
        ws.open()
        first = b'{"type":"user_message","id":"big","text":"' + b"a" * 3000
        ws.send_frame(OP_TEXT, first, fin=False)
        rest = MAX_MESSAGE + 1 - len(first)
        head, _ = encode_frame(OP_CONT, b"b" * rest, fin=True)
        ws.send(head)  # the continuation's header alone takes the message over the limit
        code, _ = ws.expect_close()
        assert code == 1009, "close %r" % code
        ws.expect_eof()


@suite.test
def too_big_across_many_small_fragments():
    with RawWS(port()) as ws:
        ws.open()
        ws.send_frame(OP_TEXT, b"[", fin=False)
        sent = 1
        code = None
        while sent <= MAX_MESSAGE:
            try:
                ws.send_frame(OP_CONT, b"1," * 256, fin=False)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 512
        code, _ = ws.expect_close()
        assert code == 1009, "close %r" % code
        ws.expect_eof()


@suite.test
def binary_message_is_1003():
    expect_violation(lambda ws: ws.send_frame(OP_BINARY, b"\x00\x01\x02"), 1003, "binary")
    expect_violation(lambda ws: ws.send_frame(OP_BINARY, b"\x00", fin=False), 1003, "fragmented binary")
    expect_violation(lambda ws: ws.send_frame(OP_BINARY, b""), 1003, "empty binary")


@suite.test
def masked_frames_never_seen():
    # sanity check across this whole suite's connections is done per frame in RawWS.check_frame;
    # here one long conversation to see many frames.
    with RawWS(port()) as ws:
        ws.open()
        text = " ".join("w%d" % i for i in range(200))
        ws.send_frame(OP_TEXT, user_message("many", text))
        expect_turn(ws, "many", text)
        assert ws.masked_frames == 0


if __name__ == "__main__":
    suite.main()
