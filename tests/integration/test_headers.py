#!/usr/bin/env python3
"""test_headers.py - the headers on what the server serves (issue 18, item 8).

  - `X-Content-Type-Options: nosniff` and `Referrer-Policy` on every HTTP response: static
    files, the probes and metrics (both ports), API answers, errors, refusals, HEAD, 304;
  - a strict `Content-Security-Policy` on the demo page (/ and /index.html) and on the admin
    pages (/admin/...), and a page that needs no 'unsafe-inline' (no inline script, style
    element or attribute, or event handler);
  - `/widget.js?v=<its version>` (what the page references) is cached for good, the bare URL
    and any other version are revalidated (no-cache + ETag), API answers are never stored.
The page under the CSP in a real browser: tests/browser/chat.test.mjs.
"""

import os
import re
import shutil
import tempfile

import harness
from harness import Conn, RawWS, Server, build_request, http_request, read_http_response

suite = harness.Suite("headers")


def srv():
    return suite.server("plain", config={"session": {"echo_delay_ms": 0}})


def check_common(r, what):
    assert r.header("x-content-type-options") == "nosniff", "%s: no nosniff: %r" % (what, r)
    assert r.header("referrer-policy") == "no-referrer", "%s: no Referrer-Policy: %r" % (what, r)


def csp(r):
    """The policy as {directive: [values]}."""
    out = {}
    for part in (r.header("content-security-policy") or "").split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


@suite.test
def every_response_has_nosniff_and_referrer_policy():
    s = srv()
    for method, path in (("GET", "/"), ("GET", "/index.html"), ("GET", "/widget.js"),
                         ("GET", "/shop.css"), ("GET", "/shop.js"), ("GET", "/favicon.svg"),
                         ("HEAD", "/"), ("GET", "/healthz"), ("GET", "/readyz"),
                         ("GET", "/metrics"), ("GET", "/nope.html"), ("POST", "/"),
                         ("GET", "/ws"), ("GET", "/v1/conversations/x"), ("DELETE", "/healthz")):
        r = http_request(s.port, method, path)
        check_common(r, "%s %s -> %d" % (method, path, r.status))
    for path in ("/healthz", "/readyz", "/metrics", "/nope"):
        r = http_request(s.admin_port, "GET", path)
        check_common(r, "admin %s -> %d" % (path, r.status))
    # a malformed request, a refused upgrade, a 304
    with Conn(s.port) as c:
        c.send(b"GARBAGE\r\n\r\n")
        r = read_http_response(c)
        assert r.status == 400, r
        check_common(r, "400")
    with RawWS(s.port) as ws:
        r = ws.handshake(headers={"Sec-WebSocket-Version": "8"}, expect=None)
        assert r.status == 426, r
        check_common(r, "426")
    etag = http_request(s.port, "GET", "/widget.js").header("etag")
    r = http_request(s.port, "GET", "/widget.js", headers={"If-None-Match": etag})
    assert r.status == 304, r
    check_common(r, "304")


@suite.test
def refused_connection_503_has_nosniff():
    s = Server(config={"server": {"max_connections": 2, "max_connections_per_ip": 1}},
               name="limit").start()
    try:
        with RawWS(s.port, source="127.0.0.2") as first:
            first.handshake()
            with RawWS(s.port, source="127.0.0.2") as second:
                r = second.handshake(expect=None)
                assert r.status == 503, r
                check_common(r, "503")
    finally:
        s.stop()


@suite.test
def demo_page_has_a_strict_csp():
    s = srv()
    for path in ("/", "/index.html", "/?debug=1"):
        r = http_request(s.port, "GET", path)
        assert r.status == 200, r
        p = csp(r)
        assert p.get("default-src") == ["'self'"], (path, p)
        assert p.get("script-src") == ["'self'"], (path, p)
        assert p.get("style-src") == ["'self'"], (path, p)
        assert p.get("object-src") == ["'none'"] and p.get("base-uri") == ["'none'"], p
        assert p.get("frame-ancestors") == ["'none'"], p
        # the widget's WebSocket, and product pictures from the catalog's hosts
        assert set(p.get("connect-src", [])) >= {"'self'"}, p
        assert "https:" in p.get("img-src", []), p
        text = " ".join(sum(p.values(), []))
        assert "unsafe-inline" not in text and "unsafe-eval" not in text and "*" not in text, p
    # scripts and styles are files, not policy exceptions
    assert "content-security-policy" not in dict(http_request(s.port, "GET", "/widget.js").headers)


@suite.test
def demo_page_needs_no_inline_script_or_style():
    body = http_request(srv().port, "GET", "/").body.decode()
    for m in re.finditer(r"<script\b([^>]*)>", body, re.I):
        assert "src=" in m.group(1), "inline script: %s" % m.group(0)
    assert not re.search(r"<style\b", body, re.I), "a <style> element"
    assert not re.search(r"\sstyle\s*=", body, re.I), "a style attribute"
    assert not re.search(r"\son[a-z]+\s*=", body, re.I), "an event handler attribute"
    assert not re.search(r"(href|src)\s*=\s*[\"']\s*javascript:", body, re.I), "a javascript: URL"


@suite.test
def admin_pages_have_the_admin_csp():
    # a web root of its own with an admin page: nothing depends on which pages web/admin has
    root = tempfile.mkdtemp(prefix="trilemma-web-")
    try:
        shutil.copy(os.path.join(harness.Args.source, "web", "index.html"), root)
        os.makedirs(os.path.join(root, "admin"))
        with open(os.path.join(root, "admin", "index.html"), "w") as f:
            f.write('<!doctype html><title>a</title><link rel="stylesheet" href="/admin/a.css">'
                    '<script type="module" src="/admin/a.js"></script>\n')
        for name in ("a.js", "a.css"):
            with open(os.path.join(root, "admin", name), "w") as f:
                f.write("/* %s */\n" % name)
        s = Server(config={"server": {"web_root": root}}, name="admin-pages").start()
        try:
            for path in ("/admin/", "/admin/index.html"):
                r = http_request(s.port, "GET", path)
                assert r.status == 200, r
                p = csp(r)
                assert p.get("default-src") == ["'self'"], (path, p)
                assert "connect-src" not in p and "script-src" not in p, p  # 'self' only
                assert p.get("frame-ancestors") == ["'none'"], p
                check_common(r, path)
                # its own scripts and styles by version too
                js = http_request(s.port, "GET", "/admin/a.js").header("etag").strip('"')
                assert ('src="/admin/a.js?v=%s"' % js) in r.body.decode(), r.body
            assert http_request(s.port, "GET", "/").header("content-security-policy") != \
                http_request(s.port, "GET", "/admin/").header("content-security-policy")
        finally:
            s.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@suite.test
def widget_js_versioned_url_is_cached_for_good():
    s = srv()
    page = http_request(s.port, "GET", "/").body.decode()
    m = re.search(r'src="/widget\.js\?v=([0-9a-f]{16})"', page)
    assert m, "the page does not reference /widget.js?v=<version>"
    version = m.group(1)
    bare = http_request(s.port, "GET", "/widget.js")
    assert bare.header("etag") == '"%s"' % version, (bare.header("etag"), version)
    cc = bare.header("cache-control", "")
    assert "no-cache" in cc and "immutable" not in cc, cc
    pinned = http_request(s.port, "GET", "/widget.js?v=" + version)
    assert pinned.status == 200 and pinned.body == bare.body, pinned
    cc = pinned.header("cache-control", "")
    assert "immutable" in cc and "max-age=31536000" in cc and "public" in cc, cc
    # a 304 of the pinned URL says the same
    r = http_request(s.port, "GET", "/widget.js?v=" + version, headers={"If-None-Match": '"%s"' % version})
    assert r.status == 304 and "immutable" in r.header("cache-control", ""), r
    # another version is not these bytes: not cached for good
    for q in ("?v=0000000000000000", "?v=" + version.upper(), "?x=" + version, "?v="):
        cc = http_request(s.port, "GET", "/widget.js" + q).header("cache-control", "")
        assert "immutable" not in cc and "no-cache" in cc, (q, cc)
    # the page itself is revalidated; the API and the probes are never stored
    assert "no-cache" in http_request(s.port, "GET", "/").header("cache-control", "")
    for path in ("/healthz", "/metrics", "/nope.html"):
        cc = http_request(s.port, "GET", path).header("cache-control", "")
        assert cc == "no-store", (path, cc)


if __name__ == "__main__":
    suite.main()
