#!/usr/bin/env python3
"""test_secrets.py - secrets stay out of logs and client messages (issue 18, item 4).

A fake OpenAI-compatible provider (a thread in this process, not trilemma-sim) answers every
request 401 with the body OpenAI sends for a bad key, which names a key suffix and an
organisation. The server's provider base URL carries credentials in its userinfo and query.
  - the start-up log shows the base URL masked (`http://***@host/v1?key=***`), and no
    credential appears anywhere in the log;
  - the client gets a generic message with the HTTP status class (code provider_unavailable),
    none of the provider's text; the log keeps the provider's text for the operator.
"""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
from harness import RawWS, Server

suite = harness.Suite("secrets")

KEY_SUFFIX = "sk-proj-****************************************Xq9Z"
ORG = "org-4Fh2PzKq81aRMw0sZyUe5tTb"
PROVIDER_TEXT = ("Incorrect API key provided: %s. You can find your API key at "
                 "https://platform.openai.com/account/api-keys. (organization %s)" % (KEY_SUFFIX, ORG))
USER_PW = "s3cret-pw-1f0a"
QUERY_KEY = "qk-77d1e2b9"
API_KEY = "sk-test-not-a-real-key-5d1c"


class Provider(BaseHTTPRequestHandler):
    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        body = json.dumps({"error": {"message": PROVIDER_TEXT, "type": "invalid_request_error",
                                     "param": None, "code": "invalid_api_key"}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET = _answer

    def log_message(self, *a):
        pass


PROVIDER = []


def provider():
    if not PROVIDER:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        PROVIDER.append(httpd)
        suite.on_teardown(httpd.shutdown)
    return PROVIDER[0].server_address[1]


def server():
    if "srv" not in suite.shared:
        base = "http://alice:%s@127.0.0.1:%d/v1?key=%s" % (USER_PW, provider(), QUERY_KEY)
        env = {"TRILEMMA_MODEL": "openai/gpt-4.1-mini", "OPENAI_API_KEY": API_KEY,
               "OPENAI_BASE_URL": base}
        suite.shared["srv"] = Server(env=env, name="secrets").start()
    return suite.shared["srv"]


@suite.test
def base_url_credentials_are_masked_in_the_log():
    srv = server()
    pat = re.compile(r"model: openai/gpt-4\.1-mini at (\S+)")
    m = harness.wait_until(lambda: pat.search(srv.stderr_text()), "the model line in the log")
    log = srv.stderr_text()
    assert m.group(1) == "http://***@127.0.0.1:%d/v1?key=***" % provider(), m.group(1)
    for secret in (USER_PW, QUERY_KEY, API_KEY, "alice:"):
        assert secret not in log, "%r is in the log:\n%s" % (secret, log)


@suite.test
def provider_error_text_stays_out_of_the_client_message():
    srv = server()
    with RawWS(srv.port) as ws:
        ws.open()
        ws.send_json({"type": "user_message", "id": "m1", "text": "hello"})
        ev, _ = ws.recv_json_until(lambda e: e.get("type") == "error")
        assert ev.get("code") == "provider_unavailable", ev
        msg = ev.get("message", "")
        assert "HTTP 4xx" in msg, ev
        for leak in (ORG, KEY_SUFFIX, "Xq9Z", "Incorrect API key", "platform.openai.com", "401"):
            assert leak not in json.dumps(ev), "%r reached the client: %r" % (leak, ev)
        end, _ = ws.recv_json_until(lambda e: e.get("type") == "turn_end")
        assert end.get("finish_reason") == "error", end
        assert not any(leak in json.dumps(end) for leak in (ORG, KEY_SUFFIX)), end
        # the connection is still usable
        ws.send_json({"type": "cancel", "turn_id": "nope"})
        assert ws.recv_json().get("code") == "unknown_turn"
    # the operator still has the provider's words (and the status) in the log
    harness.wait_until(lambda: "Incorrect API key provided" in srv.stderr_text(),
                       "the provider's error text in the log")
    log = srv.stderr_text()
    assert "HTTP 401" in log, log
    for secret in (USER_PW, QUERY_KEY, API_KEY):
        assert secret not in log, "%r is in the log" % secret


if __name__ == "__main__":
    suite.main()
