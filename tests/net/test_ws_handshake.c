/* test_ws_handshake.c - net/ws_handshake.c: the RFC 6455 example accept key, key validation,
 * and every ws_upgrade_check outcome on requests parsed by net/http_parser.c. */
#include "net/ws_handshake.h"
#include "tests/tap.h"

#include <string.h>

static void test_accept_key(void)
{
    char out[WS_ACCEPT_LEN + 1];

    /* RFC 6455 section 1.3 */
    ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
    CHECK(strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
    CHECK(strlen(out) == WS_ACCEPT_LEN);
    /* RFC 6455 section 4.2.2 uses the same key; a second, independent vector (Python's
     * base64(sha1(key + GUID)) for "x3JJHMbDL1EzLkh9GBhXDw==") */
    ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", 24, out);
    CHECK(strcmp(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=") == 0);
}

static void test_key_valid(void)
{
#define K(s) ws_key_valid(s, strlen(s))
    CHECK(K("dGhlIHNhbXBsZSBub25jZQ=="));
    CHECK(K("AAAAAAAAAAAAAAAAAAAAAA=="));
    CHECK(K("/+/+/+/+/+/+/+/+/+/+/w=="));
    CHECK(K("AAAAAAAAAAAAAAAAAAAAAQ=="));
    CHECK(K("AAAAAAAAAAAAAAAAAAAAAg=="));
    CHECK(!K("dGhlIHNhbXBsZSBub25jZR==")); /* non-zero padding bits: not 16 bytes' encoding */
    CHECK(!K("AAAAAAAAAAAAAAAAAAAAAB=="));
    CHECK(!K("dGhlIHNhbXBsZSBub25jZQ="));
    CHECK(!K("dGhlIHNhbXBsZSBub25jZQ==="));
    CHECK(!K("dGhlIHNhbXBsZSBub25jZQAA"));
    CHECK(!K("dGhlIHNhbXBsZSBub25jZ==="));
    CHECK(!K("dGhlIHNhbXBsZSBub25j*Q=="));
    CHECK(!K("dGhlIHNhbXBsZSBub25j-Q==")); /* base64url is not base64 */
    CHECK(!K("dGhlIHNhbXBsZSBub25j_Q=="));
    CHECK(!K("dGhlIHNhbXBsZSBub25j Q=="));
    CHECK(!K(""));
    CHECK(!ws_key_valid(NULL, 0));
#undef K
}

static const char ok_request[] = "GET /ws HTTP/1.1\r\n"
                                 "Host: chat.example.com\r\n"
                                 "Upgrade: websocket\r\n"
                                 "Connection: Upgrade\r\n"
                                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                 "Sec-WebSocket-Version: 13\r\n"
                                 "\r\n";

/* Parse `head` and run the check; -1 if the head does not even parse. */
static int check(const char *head)
{
    struct http_request req;
    int n = http_parse_request(head, strlen(head), 0, &req);
    if (n <= 0)
        return -1;
    return (int)ws_upgrade_check(&req);
}

/* The valid request with line `from` replaced by `to` ("" deletes it, from "" appends). */
static int variant(const char *from, const char *to)
{
    static char buf[1024];
    const char *at = *from ? strstr(ok_request, from) : ok_request + strlen(ok_request) - 2;
    if (!at)
        return -2;
    size_t pre = (size_t)(at - ok_request);
    snprintf(buf, sizeof(buf), "%.*s%s%s", (int)pre, ok_request, to, at + strlen(from));
    return check(buf);
}

static void test_upgrade_check(void)
{
    CHECK(check(ok_request) == WS_UPGRADE_OK);
    CHECK(variant("GET", "POST") == WS_UPGRADE_NOT_GET);
    CHECK(variant("GET", "get") == WS_UPGRADE_NOT_GET);
    CHECK(variant("HTTP/1.1", "HTTP/1.0") == WS_UPGRADE_NOT_HTTP11);
    CHECK(variant("Upgrade: websocket\r\n", "") == WS_UPGRADE_NO_UPGRADE);
    CHECK(variant("Upgrade: websocket\r\n", "Upgrade: h2c\r\n") == WS_UPGRADE_NO_UPGRADE);
    CHECK(variant("Connection: Upgrade\r\n", "") == WS_UPGRADE_NO_UPGRADE);
    CHECK(variant("Connection: Upgrade\r\n", "Connection: keep-alive\r\n") ==
          WS_UPGRADE_NO_UPGRADE);
    CHECK(variant("Connection: Upgrade\r\n", "Connection: keep-alive, Upgrade\r\n") ==
          WS_UPGRADE_OK);
    CHECK(variant("Connection: Upgrade\r\n", "Connection: keep-alive\r\nConnection: upgrade\r\n") ==
          WS_UPGRADE_OK);
    CHECK(variant("Upgrade: websocket\r\n", "UPGRADE: WebSocket\r\n") == WS_UPGRADE_OK);
    CHECK(variant("Upgrade: websocket\r\n", "Upgrade: foo, websocket\r\n") == WS_UPGRADE_OK);
    CHECK(variant("Sec-WebSocket-Version: 13\r\n", "") == WS_UPGRADE_BAD_VERSION);
    CHECK(variant("Sec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Version: 8\r\n") ==
          WS_UPGRADE_BAD_VERSION);
    CHECK(variant("Sec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Version: 13, 8\r\n") ==
          WS_UPGRADE_BAD_VERSION);
    CHECK(variant("Sec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Version: 013\r\n") ==
          WS_UPGRADE_BAD_VERSION);
    CHECK(variant("", "Sec-WebSocket-Version: 13\r\n") == WS_UPGRADE_BAD_VERSION);
    CHECK(variant("Sec-WebSocket-Version: 13\r\n", "sec-websocket-version:13 \r\n") ==
          WS_UPGRADE_OK);
    CHECK(variant("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "") == WS_UPGRADE_BAD_KEY);
    CHECK(variant("", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n") == WS_UPGRADE_BAD_KEY);
    CHECK(variant("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ") == WS_UPGRADE_BAD_KEY);
    CHECK(variant("dGhlIHNhbXBsZSBub25jZQ==", "not a key") == WS_UPGRADE_BAD_KEY);
    CHECK(variant("Host: chat.example.com\r\n", "") == WS_UPGRADE_NO_HOST);
    CHECK(variant("", "Host: other.example.com\r\n") == WS_UPGRADE_NO_HOST);
    /* the first failed rule decides: a POST without anything else is "not GET" */
    CHECK(check("POST / HTTP/1.0\r\n\r\n") == WS_UPGRADE_NOT_GET);
    CHECK(check("GET / HTTP/1.1\r\n\r\n") == WS_UPGRADE_NO_UPGRADE);
}

int main(void)
{
    test_accept_key();
    test_key_valid();
    test_upgrade_check();
    return tap_done();
}
