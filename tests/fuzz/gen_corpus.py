#!/usr/bin/env python3
"""Write the seed corpus for the fuzz targets (tests/fuzz/corpus/{http,ws_frame}/).

Seeds are small and named for what they exercise; crash reproducers found by fuzzing are added
by hand as corpus/<target>/regress-<what>, and this script never deletes them.
ws_frame seeds start with the configuration byte read by fuzz_ws_frame.c:
bits 0-1 max_message (0=unlimited, 1=16, 2=125, 3=4096), bit 2 allow_binary,
bit 3 client side (unmasked frames expected), bits 4-7 cut mode (0=byte by byte).
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(op, payload=b"", fin=True, mask=MASK, rsv=0, ext=None):
    b0 = (0x80 if fin else 0) | rsv | op
    n = len(payload)
    m = 0x80 if mask is not None else 0
    if ext is None:
        ext = 0 if n < 126 else 2 if n < 65536 else 8
    if ext == 0:
        hdr = bytes([b0, m | n])
    elif ext == 2:
        hdr = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if mask is None:
        return hdr + payload
    return hdr + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def close(code, reason=b""):
    return frame(0x8, struct.pack(">H", code) + reason)


def ws_seeds():
    bin_ok = 0x04
    s = {
        "text-hello": bytes([0x30]) + frame(0x1, b"Hello"),
        "text-bytewise": bytes([0x00]) + frame(0x1, b"Hello"),
        "text-empty": bytes([0x20]) + frame(0x1),
        "fragmented-text": bytes([0x40]) + frame(0x1, b"Hel", False) + frame(0x0, b"lo, ", False)
        + frame(0x0, b"world"),
        "fragmented-empty-final": bytes([0x10]) + frame(0x1, b"abc", False) + frame(0x0),
        "ping-between-fragments": bytes([0x50]) + frame(0x1, b"ab", False) + frame(0x9, b"p1")
        + frame(0x0, b"cd"),
        "pong-and-close": bytes([0x30]) + frame(0xA, b"pong") + close(1000, b"bye"),
        "close-empty": bytes([0x30]) + frame(0x8),
        "close-utf8-reason": bytes([0x00]) + close(1001, "κόσμε".encode()),
        "binary-allowed": bytes([0x30 | bin_ok]) + frame(0x2, bytes(range(40))),
        "binary-refused": bytes([0x30]) + frame(0x2, b"\x00\x01"),
        "len16-200": bytes([0x70]) + frame(0x1, b"x" * 200),
        "len64-nonminimal": bytes([0x20]) + frame(0x1, b"Hello", ext=8),
        "len16-nonminimal": bytes([0x20]) + frame(0x1, b"Hello", ext=2),
        "max16-exceeded": bytes([0x31]) + frame(0x1, b"y" * 20),
        "max16-fragments": bytes([0x01]) + frame(0x1, b"y" * 10, False) + frame(0x0, b"z" * 10),
        "utf8-invalid": bytes([0x30]) + frame(0x1, b"Hello\xc0world"),
        "utf8-split-fragments": bytes([0x00]) + frame(0x1, b"\xce", False)
        + frame(0x0, b"\xba\xe1\xbd", False) + frame(0x0, b"\xb9"),
        "utf8-truncated-end": bytes([0x20]) + frame(0x1, b"ab\xce"),
        "utf8-surrogate-fragment": bytes([0x00]) + frame(0x1, b"ab\xed", False)
        + frame(0x0, b"\xa0\x80"),
        "rsv1": bytes([0x30]) + frame(0x1, b"x", rsv=0x40),
        "opcode-reserved-3": bytes([0x30]) + frame(0x3, b"x"),
        "opcode-reserved-b": bytes([0x30]) + frame(0xB, b"x"),
        "unmasked-client": bytes([0x30]) + frame(0x1, b"Hello", mask=None),
        "ping-126": bytes([0x30]) + frame(0x9, b"p" * 126),
        "ping-fragmented": bytes([0x30]) + frame(0x9, b"p", fin=False),
        "cont-without-message": bytes([0x30]) + frame(0x0, b"x"),
        "text-inside-fragmented": bytes([0x30]) + frame(0x1, b"a", False) + frame(0x1, b"b"),
        "len64-top-bit": bytes([0x30]) + bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1]) + MASK,
        "close-one-byte": bytes([0x30]) + frame(0x8, b"\x03"),
        "close-code-1005": bytes([0x30]) + close(1005),
        "close-code-2999": bytes([0x30]) + close(2999),
        "close-reason-invalid": bytes([0x30]) + close(1000, b"bad \xff"),
        "many-messages": bytes([0x90 | bin_ok]) + frame(0x1, b"one") + frame(0xA)
        + frame(0x2, b"two") + frame(0x9, b"x" * 125) + frame(0x1, "€😀".encode()) + close(1000),
        "client-side-server-frames": bytes([0x38 | bin_ok]) + frame(0x1, b"hi", mask=None)
        + frame(0x2, b"\xff" * 130, mask=None) + frame(0x8, b"\x03\xe8", mask=None),
    }
    for name, data in s.items():
        write("ws_frame", name, data)


def http_seeds():
    up = (b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
          b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
          b"Origin: http://example.com\r\nSec-WebSocket-Version: 13\r\n\r\n")
    many = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: %d\r\n" % (i, i) for i in range(33)) + b"\r\n"
    s = {
        "get-minimal": b"GET / HTTP/1.1\r\n\r\n",
        "get-host": b"GET /index.html HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
        "upgrade-rfc6455": up,
        "upgrade-then-frame": up + b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
        "upgrade-token-query": b"GET /ws?token=eyJhbGciOiJIUzI1NiJ9.e30.x%2By&v=1 HTTP/1.1\r\n"
        b"Host: h\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
        b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "bare-lf": b"GET / HTTP/1.1\nHost: a\n\n",
        "leading-crlf": b"\r\n\r\nGET / HTTP/1.0\r\n\r\n",
        "http10": b"GET /x HTTP/1.0\r\nUser-Agent: t\r\n\r\n",
        "options-star": b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        "obs-fold": b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
        "space-before-colon": b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        "headers-33": many,
        "headers-32": many.replace(b"X-32: 32\r\n", b""),
        "ctl-in-value": b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
        "nul-in-value": b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        "bare-cr": b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
        "tls-client-hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32),
        "http2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "pipelined": b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
        "absolute-form": b"GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n",
        "obs-text-value": b"GET / HTTP/1.1\r\nX-Name: caf\xc3\xa9\r\n\r\n",
        "incomplete": b"GET /ws HTTP/1.1\r\nHost: exa",
        "empty-lines-only": b"\r\n\r\n\n",
        "long-value": b"GET / HTTP/1.1\r\nCookie: " + b"a=b; " * 200 + b"\r\n\r\n",
        "dup-key": up.replace(b"Origin", b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nOrigin"),
        "bad-version": b"GET / HTTP/1.2\r\n\r\n",
        "trailing-space-version": b"GET / HTTP/1.1 \r\n\r\n",
        "query-escapes": b"GET /p?a=%41%zz&token=%00&b=+%2B HTTP/1.1\r\n\r\n",
        "lf-cr-junk": b"GET / HTTP/1.1\n\rX\n\n",
    }
    for name, data in s.items():
        write("http", name, data)


if __name__ == "__main__":
    ws_seeds()
    http_seeds()
