/* ws_handshake.c - RFC 6455 opening handshake: key validation, Sec-WebSocket-Accept, and the
 * request checks of section 4.2.1, in the order that gives the most useful status code. */
#include "net/ws_handshake.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static int base64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* 16 bytes encode as 22 base64 digits and "==". The last digit carries 2 data bits, so its low
 * 4 bits must be zero: anything else is not the canonical encoding of 16 bytes. */
bool ws_key_valid(const char *key, size_t len)
{
    if (!key || len != 24 || key[22] != '=' || key[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++) {
        if (base64_value(key[i]) < 0)
            return false;
    }
    return (base64_value(key[21]) & 0x0f) == 0;
}

/* base64(SHA-1(key . GUID)). libcrypto failing to hash 60 bytes means it could not allocate a
 * digest context: handled like out-of-memory in base/mem.c, by aborting. */
void ws_accept_key(const char *key, size_t len, char out[WS_ACCEPT_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) || !EVP_DigestUpdate(ctx, key, len) ||
        !EVP_DigestUpdate(ctx, ws_guid, sizeof(ws_guid) - 1) ||
        !EVP_DigestFinal_ex(ctx, md, &md_len) || md_len != 20) {
        fprintf(stderr, "trilemma: libcrypto cannot compute SHA-1\n");
        abort();
    }
    EVP_MD_CTX_free(ctx);
    EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 characters and a NUL */
}

/* True if some header called `name` lists `token` (a list may be split over several lines). */
static bool any_header_has_token(const struct http_request *req, const char *name,
                                 const char *token)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < req->num_headers; i++) {
        const struct http_header *h = &req->headers[i];
        if (h->name_len == n && strncasecmp(h->name, name, n) == 0 &&
            http_has_token(h->value, h->value_len, token))
            return true;
    }
    return false;
}

/* Exactly one header called `name`, or NULL. */
static const struct http_header *single_header(const struct http_request *req, const char *name)
{
    if (http_count_header(req, name) != 1)
        return NULL;
    return http_find_header(req, name);
}

/* Check the upgrade request; the first failed rule decides the answer. A missing version is
 * answered like a wrong one (426 naming the version we speak). */
enum ws_upgrade_check ws_upgrade_check(const struct http_request *req)
{
    const struct http_header *h;

    if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0)
        return WS_UPGRADE_NOT_GET;
    if (req->minor_version != 1)
        return WS_UPGRADE_NOT_HTTP11;
    if (!any_header_has_token(req, "Upgrade", "websocket") ||
        !any_header_has_token(req, "Connection", "upgrade"))
        return WS_UPGRADE_NO_UPGRADE;
    h = single_header(req, "Sec-WebSocket-Version");
    if (!h || h->value_len != 2 || memcmp(h->value, "13", 2) != 0)
        return WS_UPGRADE_BAD_VERSION;
    h = single_header(req, "Sec-WebSocket-Key");
    if (!h || !ws_key_valid(h->value, h->value_len))
        return WS_UPGRADE_BAD_KEY;
    if (http_count_header(req, "Host") != 1)
        return WS_UPGRADE_NO_HOST;
    return WS_UPGRADE_OK;
}
