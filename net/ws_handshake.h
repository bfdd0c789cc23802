/* ws_handshake.h - RFC 6455 opening-handshake helpers (SHA-1 + base64 from OpenSSL libcrypto). */
#ifndef TRILEMMA_NET_WS_HANDSHAKE_H
#define TRILEMMA_NET_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "net/http_parser.h"

#define WS_ACCEPT_LEN 28

/* True if key is a valid Sec-WebSocket-Key: base64 of exactly 16 bytes (24 chars, "==" end). */
bool ws_key_valid(const char *key, size_t len);

/* Compute Sec-WebSocket-Accept = base64(SHA1(key + GUID)) into out (29 bytes incl. NUL). */
void ws_accept_key(const char *key, size_t len, char out[WS_ACCEPT_LEN + 1]);

enum ws_upgrade_check {
    WS_UPGRADE_OK = 0,
    WS_UPGRADE_NOT_GET,     /* 405 */
    WS_UPGRADE_NOT_HTTP11,  /* 400: the upgrade needs HTTP/1.1 */
    WS_UPGRADE_NO_UPGRADE,  /* 426: Upgrade: websocket / Connection: upgrade missing */
    WS_UPGRADE_BAD_VERSION, /* 426 with "Sec-WebSocket-Version: 13" */
    WS_UPGRADE_BAD_KEY,     /* 400: Sec-WebSocket-Key missing, duplicated or malformed */
    WS_UPGRADE_NO_HOST,     /* 400: Host missing */
};

/* Check a parsed request against RFC 6455 section 4.2.1. */
enum ws_upgrade_check ws_upgrade_check(const struct http_request *req);

#endif
