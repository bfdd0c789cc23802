#!/usr/bin/env python3
"""test_http.py - the plain HTTP side of trilemmad: /healthz, /readyz, /metrics (Prometheus text
exposition), static files from web/, path traversal, header size limit (431), malformed requests
(400), keep-alive and pipelining."""

import os
import re

import harness
from harness import Conn, build_request, http_request

suite = harness.Suite("http")

MAX_HEADER = 4096
CONFIG = {"server": {"max_header_bytes": MAX_HEADER}, "session": {"echo_delay_ms": 0}}


def port():
    return suite.server(config=CONFIG).port


@suite.test
def healthz_200():
    r = http_request(port(), "GET", "/healthz")
    assert r.status == 200, r
    assert r.body.strip() == b"ok", r


@suite.test
def readyz_200():
    r = http_request(port(), "GET", "/readyz")
    assert r.status == 200, r
    assert r.body.strip() == b"ready", r


@suite.test
def head_request():
    r = http_request(port(), "HEAD", "/healthz")
    # the headers of GET (its Content-Length) and no body: a keep-alive client would otherwise
    # read the body as the start of the next response
    assert r.status == 200, r
    assert r.header("content-length") == "3", r
    c = Conn(port())
    c.send(build_request("HEAD", "/healthz", [("Connection", "keep-alive")]))
    c.send(build_request("GET", "/readyz", [("Connection", "close")]))
    first = c.read_response(head_only=True)
    second = c.read_response()
    assert first.status == 200 and second.status == 200 and second.body == b"ready\n", (first, second)
    c.close()


# ------------------------------------------------------------------------------------------
# /metrics

METRIC_LINE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r"(?P<labels>\{(?:[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\n]|\\[\\\"n])*\"(?:,\s*)?)*\})?"
    r" (?P<value>[-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|Inf|NaN|[+-]Inf))"
    r"(?: (?P<ts>-?[0-9]+))?$"
)
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def parse_prometheus(text):
    """Parse the text exposition format 0.0.4 strictly. Returns (types, samples) where samples is
    a list of (name, {labels}, float)."""
    types, helps, samples = {}, {}, []
    for n, line in enumerate(text.split("\n"), 1):
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] == "TYPE":
                assert parts[3] in ("counter", "gauge", "histogram", "summary", "untyped"), line
                assert parts[2] not in types, "line %d: second TYPE for %s" % (n, parts[2])
                types[parts[2]] = parts[3]
            elif len(parts) >= 3 and parts[1] == "HELP":
                helps[parts[2]] = parts[3] if len(parts) > 3 else ""
            continue
        m = METRIC_LINE.match(line)
        assert m, "line %d is not a Prometheus sample: %r" % (n, line)
        labels = dict(LABEL.findall(m.group("labels") or ""))
        samples.append((m.group("name"), labels, float(m.group("value"))))
    return types, samples


@suite.test
def metrics_prometheus_text():
    # traffic first, so counters have something to count
    with harness.RawWS(port()) as ws:
        ws.open()
        ws.send_json({"type": "user_message", "id": "m", "text": "count me"})
        ws.recv_json_until(lambda e: e.get("type") == "turn_end")
        with harness.RawWS(port()) as ws2:  # a second one stays open during the scrape
            ws2.open()
            r = http_request(port(), "GET", "/metrics")
    assert r.status == 200, r
    ctype = r.header("content-type", "")
    assert ctype.startswith("text/plain"), ctype
    assert r.body.endswith(b"\n"), "exposition must end with a newline"
    types, samples = parse_prometheus(r.body.decode("utf-8"))
    names = {s[0] for s in samples}

    for metric, kind in (
        ("trilemma_connections_open", "gauge"),
        ("trilemma_sessions_open", "gauge"),
        ("trilemma_frames_in_total", "counter"),
        ("trilemma_bytes_out_total", "counter"),
        ("trilemma_errors_total", "counter"),
        ("trilemma_loop_iteration_seconds", "histogram"),
    ):
        assert metric in types, "no # TYPE line for %s (have %s)" % (metric, sorted(types))
        assert types[metric] == kind, "%s is %s, expected %s" % (metric, types[metric], kind)
    for metric in ("trilemma_connections_open", "trilemma_sessions_open", "trilemma_frames_in_total",
                   "trilemma_bytes_out_total"):
        assert metric in names, "no sample of %s" % metric

    def value(name):
        return sum(v for n, _, v in samples if n == name)

    assert value("trilemma_sessions_open") >= 2, "two sessions were open during the scrape"
    assert value("trilemma_connections_open") >= 2
    assert value("trilemma_frames_in_total") >= 1
    assert value("trilemma_bytes_out_total") > 0

    # histogram: buckets with le, +Inf bucket == _count, cumulative, _sum present
    h = "trilemma_loop_iteration_seconds"
    series = {}
    for n, labels, v in samples:
        if n == h + "_bucket":
            key = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
            assert "le" in labels, (n, labels)
            series.setdefault(key, []).append((float(labels["le"]), v))
    assert series, "no %s_bucket samples" % h
    for key, buckets in series.items():
        les = [le for le, _ in buckets]
        assert les == sorted(les), "buckets out of order: %r" % les
        assert les[-1] == float("inf"), "no le=\"+Inf\" bucket"
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), "bucket counts not cumulative: %r" % counts
        count = [v for n, labels, v in samples if n == h + "_count" and
                 tuple(sorted((k, x) for k, x in labels.items())) == key]
        assert count and count[0] == counts[-1], "+Inf bucket %r != _count %r" % (counts[-1], count)
        assert any(n == h + "_sum" for n, _, _ in samples), "no %s_sum" % h
        assert counts[-1] > 0, "the loop has iterated, the histogram should count it"


@suite.test
def metrics_errors_counted_by_kind():
    with harness.RawWS(port()) as ws:
        ws.open()
        ws.send_frame(harness.OP_TEXT, b"\xff")
        ws.expect_close()
    r = http_request(port(), "GET", "/metrics")
    types, samples = parse_prometheus(r.body.decode())
    errs = [(labels, v) for n, labels, v in samples if n == "trilemma_errors_total"]
    assert errs, "no trilemma_errors_total samples"
    assert any(labels for labels, _ in errs), "errors_total should carry a label for the kind: %r" % errs
    assert sum(v for _, v in errs) >= 1, errs


# ------------------------------------------------------------------------------------------
# Static files


@suite.test
def root_serves_index_html():
    path = os.path.join(harness.Args.source, "web", "index.html")
    assert os.path.exists(path), "web/index.html is missing from the source tree"
    with open(path, "rb") as f:
        want = f.read()
    # the page names its scripts and styles by version (their ETag): /widget.js?v=<hash>
    for ref in re.findall(rb'="(/[^"?]+\.(?:js|css))"', want):
        etag = http_request(port(), "GET", ref.decode()).header("etag").strip('"')
        want = want.replace(b'="%s"' % ref, b'="%s?v=%s"' % (ref, etag.encode()))
    r = http_request(port(), "GET", "/")
    assert r.status == 200, r
    assert r.header("content-type", "").startswith("text/html"), r
    assert r.body == want, "GET / is not web/index.html"
    r2 = http_request(port(), "GET", "/index.html")
    assert r2.status == 200 and r2.body == want, r2


@suite.test
def query_string_ignored_for_static():
    r = http_request(port(), "GET", "/?utm=1&x=%20")
    assert r.status == 200 and r.header("content-type", "").startswith("text/html"), r


@suite.test
def missing_file_is_404():
    for path in ("/nope.html", "/no/such/dir/file.js", "/index.html.bak"):
        r = http_request(port(), "GET", path)
        assert r.status == 404, (path, r)


TRAVERSALS = [
    "/../etc/passwd",
    "/../../../../../../etc/passwd",
    "/%2e%2e/etc/passwd",
    "/%2E%2E/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
    "/..%2fetc%2fpasswd",
    "/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/.%2e/.%2e/.%2e/.%2e/etc/passwd",
    "/web/../../../../etc/passwd",
    "/..\\..\\..\\etc\\passwd",
    "/%252e%252e/etc/passwd",
    "//etc/passwd",
    "/etc/passwd",
    "/index.html%00.png",
    "/..",
    "/.git/config",
]


@suite.test
def path_traversal_not_served():
    for path in TRAVERSALS:
        r = http_request(port(), "GET", path)
        assert r.status in (400, 403, 404), "%s answered %d" % (path, r.status)
        assert b"root:" not in r.body and b"[core]" not in r.body, "%s leaked a file" % path


@suite.test
def hidden_or_parent_of_web_root_not_served():
    # the config file and sources live outside web_root; nothing outside it may be served
    r = http_request(port(), "GET", "/../CMakeLists.txt")
    assert r.status in (400, 403, 404) and b"cmake_minimum_required" not in r.body, r


# ------------------------------------------------------------------------------------------
# Limits and malformed requests


@suite.test
def header_over_max_is_431():
    with Conn(port()) as c:
        c.send(build_request("GET", "/healthz", [("X-Filler", "f" * (MAX_HEADER + 100))]))
        r = c.read_response()
        assert r.status == 431, r


@suite.test
def header_over_max_without_end_is_431():
    # the head never ends: the limit is decided before \r\n\r\n arrives
    with Conn(port()) as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"f" * (MAX_HEADER + 100))
        r = c.read_response()
        assert r.status == 431, r


@suite.test
def header_just_under_max_is_fine():
    with Conn(port()) as c:
        req = build_request("GET", "/healthz", [("Connection", "close"), ("X-Filler", "")])
        filler = MAX_HEADER - len(req) - 64
        c.send(build_request("GET", "/healthz", [("Connection", "close"), ("X-Filler", "f" * filler)]))
        r = c.read_response()
        assert r.status == 200, r


MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /healthz\r\n\r\n",
    b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /healthz FTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n: empty name\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name: sp\r\n\r\n",
    b"GET /heal\x00thz HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",  # a TLS hello
]


@suite.test
def malformed_request_is_400():
    for raw in MALFORMED:
        with Conn(port()) as c:
            c.send(raw)
            try:
                r = c.read_response()
            except (EOFError, ConnectionResetError):
                raise AssertionError("%r: connection closed without a 400" % raw[:40])
            assert r.status in (400, 505) if b"HTTP/9.9" in raw else r.status == 400, (raw[:40], r)
            c.read_to_eof()
    assert harness.http_request(port(), "GET", "/healthz").status == 200


@suite.test
def duplicate_host_is_400():
    # RFC 9112 3.2: a server MUST answer 400 to a request with more than one Host field line
    with Conn(port()) as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n")
        r = c.read_response()
        assert r.status == 400, r


@suite.test
def missing_host_is_400():
    with Conn(port()) as c:
        c.send(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        r = c.read_response()
        assert r.status == 400, r


@suite.test
def request_with_body_on_get_is_handled():
    # Content-Length on a GET: either read and ignored, or refused - but the next request on the
    # connection must not be parsed from the body bytes.
    with Conn(port()) as c:
        body = b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
        c.send(build_request("GET", "/healthz", [("Content-Length", str(len(body)))], body))
        r = c.read_response()
        assert r.status in (200, 400, 413), r
        if r.status == 200 and "close" not in r.header("connection", "").lower():
            c.send(build_request("GET", "/readyz", [("Connection", "close")]))
            r2 = c.read_response()
            assert r2.status == 200 and r2.body.strip() == b"ready", "body bytes parsed as a request: %r" % r2


@suite.test
def chunked_request_is_refused_or_handled():
    with Conn(port()) as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        r = c.read_response()
        assert r.status in (200, 400, 411, 501), r


@suite.test
def keep_alive_two_requests_one_connection():
    with Conn(port()) as c:
        c.send(build_request("GET", "/healthz"))
        r1 = c.read_response()
        assert r1.status == 200, r1
        assert "close" not in r1.header("connection", "").lower(), "HTTP/1.1 keep-alive refused: %r" % r1
        c.send(build_request("GET", "/readyz"))
        r2 = c.read_response()
        assert r2.status == 200 and r2.body.strip() == b"ready", r2
        c.send(build_request("GET", "/", [("Connection", "close")]))
        r3 = c.read_response()
        assert r3.status == 200, r3
        c.read_to_eof()


@suite.test
def pipelined_requests_answered_in_order():
    with Conn(port()) as c:
        c.send(
            build_request("GET", "/healthz")
            + build_request("GET", "/")
            + build_request("GET", "/readyz", [("Connection", "close")])
        )
        assert c.read_response().status == 200
        r = c.read_response()
        assert r.status == 200 and r.header("content-type", "").startswith("text/html"), r
        r = c.read_response()
        assert r.status == 200 and r.body.strip() == b"ready", r
        c.read_to_eof()


@suite.test
def request_split_in_tiny_writes():
    with Conn(port()) as c:
        req = build_request("GET", "/healthz", [("Connection", "close")])
        for i in range(len(req)):
            c.send(req[i : i + 1])
        assert c.read_response().status == 200


@suite.test
def http10_request_closes():
    with Conn(port()) as c:
        c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        c.read_to_eof()


@suite.test
def ws_path_without_upgrade_is_refused():
    r = http_request(port(), "GET", "/ws")
    assert r.status in (400, 426), r


@suite.test
def server_healthy_after_all():
    assert http_request(port(), "GET", "/healthz").status == 200


if __name__ == "__main__":
    suite.main()
