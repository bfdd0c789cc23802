/* http_client.h - outbound HTTP(S) on the worker's ring: one libcurl multi handle per worker,
 * driven by the socket API. CURLMOPT_SOCKETFUNCTION becomes poll requests on the io_uring,
 * CURLMOPT_TIMERFUNCTION a loop timer; every completion calls curl_multi_socket_action. No extra
 * threads of ours, no curl_multi_poll/wait; DNS uses curl's threaded resolver as Debian builds it.
 * Connections are reused; HTTP/2 is multiplexed where the far side offers it (TLS + ALPN). */
#ifndef TRILEMMA_STREAM_HTTP_CLIENT_H
#define TRILEMMA_STREAM_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/loop.h"

struct hc;
struct hc_req;

struct hc_callbacks {
    /* The status line and headers are in (called once, before any body byte). retry_after_ms
     * is the Retry-After header (seconds or HTTP date) in ms, or -1. Return 0 to go on. */
    int (*on_response)(void *ctx, int status, int64_t retry_after_ms);
    /* Body bytes as they arrive, straight from curl's write callback. Return 0 to go on,
     * non-zero to abort the transfer (on_done then reports HC_ABORTED). */
    int (*on_body)(void *ctx, const char *p, size_t n);
    /* The transfer ended: result 0 (complete), or an HC_* error; message is curl's error
     * text (never contains request headers). The request is freed after this returns. */
    void (*on_done)(void *ctx, int result, int status, const char *message);
};

enum hc_result {
    HC_OK = 0,
    HC_CONNECT_FAILED = -1, /* DNS, refused, TLS handshake, connect timeout */
    HC_TIMEOUT = -2,        /* curl's overall timeout */
    HC_IO = -3,             /* the connection broke mid-transfer */
    HC_ABORTED = -4,        /* on_response/on_body returned non-zero */
    HC_OTHER = -5,
};

struct hc_request {
    const char *url;
    const char *const *headers; /* NULL-terminated "Name: value" lines */
    const char *body;           /* POST body (copied), NULL for GET */
    size_t body_len;
    uint32_t connect_timeout_ms;
    uint32_t total_timeout_ms; /* 0 = none */
};

/* Create the worker's client. op_poll is the op code its poll requests use on the loop (the
 * client registers the handler). Returns NULL on failure. */
struct hc *hc_create(struct loop *l, uint8_t op_poll);
void hc_destroy(struct hc *h);

/* Start a transfer. Callbacks run on the worker thread, from inside curl. Returns NULL when
 * curl refuses the request (bad URL...). */
struct hc_req *hc_start(struct hc *h, const struct hc_request *r, const struct hc_callbacks *cb,
                        void *ctx);

/* Abort a transfer at once. No callback runs for it afterwards. Safe inside callbacks. */
void hc_cancel(struct hc_req *r);

/* Transfers in flight. */
unsigned hc_active(const struct hc *h);

#endif
