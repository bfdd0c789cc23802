/* load_ws.c - the WebSocket transport on libwebsockets 4.1: one client context per worker,
 * driven by the worker's libuv loop through lws' libuv event-library plugin.
 *
 * This is deliberately not the server's own codec (net/ws_frame.c): the load generator checks
 * the server with an independent RFC 6455 implementation. lws does the handshake, masking,
 * fragmentation and ping/pong; this file turns its callbacks into user events.
 *
 * A connection's end is reported once, from LWS_CALLBACK_WSI_DESTROY (after a failed connect as
 * well as after a close), with the reason recorded earlier by the callbacks that know it
 * (connection error, handshake status, the peer's close code). */
#include <errno.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "base/mem.h"
#include "loadtest/load/load.h"

#define MAX_MESSAGE (4u << 20) /* a message larger than this is an error */

static void set_kind(struct vuser *u, const char *fmt, unsigned v)
{
    if (!u->close_kind[0])
        snprintf(u->close_kind, sizeof(u->close_kind), fmt, v);
}

static void on_rx(struct vuser *u, struct lws *wsi, const char *in, size_t len)
{
    if (lws_frame_is_binary(wsi)) {
        set_kind(u, "binary_message", 0);
        ws_close(u, true);
        return;
    }
    bool done = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
    if (done && buf_size(&u->rx) == 0) {
        user_on_message(u, in, len);
        return;
    }
    if (buf_size(&u->rx) + len > MAX_MESSAGE) {
        set_kind(u, "message_too_big", 0);
        buf_reset(&u->rx);
        ws_close(u, true);
        return;
    }
    buf_append(&u->rx, in, len);
    if (done) {
        /* user_on_message may queue or close, but never frees u: reset after it returns */
        user_on_message(u, buf_begin(&u->rx), buf_size(&u->rx));
        buf_reset(&u->rx);
    }
}

/* One queued message per writeable callback; -1 closes (cleanly when a close reason is set). */
static int on_writeable(struct vuser *u, struct lws *wsi)
{
    struct worker *w = u->w;
    if (u->closing) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
        return -1;
    }
    if (buf_size(&u->tx) < 4)
        return 0;
    uint32_t n;
    memcpy(&n, buf_begin(&u->tx), 4);
    buf_reset(&w->scratch);
    unsigned char *p = (unsigned char *)buf_reserve(&w->scratch, LWS_PRE + n);
    memcpy(p + LWS_PRE, buf_begin(&u->tx) + 4, n);
    int m = lws_write(wsi, p + LWS_PRE, n, LWS_WRITE_TEXT);
    buf_consume(&u->tx, 4 + (size_t)n);
    if (m < (int)n) {
        set_kind(u, "write_failed", 0);
        return -1;
    }
    if (buf_size(&u->tx))
        lws_callback_on_writable(wsi);
    return 0;
}

static void on_connection_error(struct vuser *u, struct lws *wsi, const char *why)
{
    unsigned status = lws_http_client_http_response(wsi);
    if (status && status != 101)
        set_kind(u, "handshake_%u", status);
    else if (why && strstr(why, "imeout"))
        set_kind(u, "timeout_connect", 0);
    else
        set_kind(u, "connect_failed", 0);
    if (u->w->L->verbose)
        fprintf(stderr, "trilemma-load: connection error: %s\n", why ? why : "(no reason)");
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct vuser *u = user;
    if (!u || !u->conn_pending)
        return 0;
    if (!u->wsi)
        u->wsi = wsi;
    else if (u->wsi != wsi)
        return 0; /* cannot happen: one connection per user at a time */
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        user_on_tcp(u);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        on_rx(u, wsi, in, len);
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return on_writeable(u, wsi);
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        on_connection_error(u, wsi, in);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
        const unsigned char *p = in;
        if (len >= 2)
            set_kind(u, "close_%u", (unsigned)(p[0] << 8 | p[1]));
        else
            set_kind(u, "close_nostatus", 0);
        return 0;
    }
    case LWS_CALLBACK_WSI_DESTROY:
        user_on_closed(u);
        return 0;
    default:
        return 0;
    }
}

/* No validity (keepalive ping) timers: lws 4.1 keeps every timer of a thread in one sorted list
 * and inserts by walking it, so a per-connection timer re-armed on traffic costs O(connections)
 * each time - with 10,000 sessions that walk dominated the profile. The server pings us (and
 * lws answers); a dead connection shows up as a turn timeout. */
static const lws_retry_bo_t no_validity = {.secs_since_valid_ping = 0,
                                           .secs_since_valid_hangup = 0};

static const struct lws_protocols protocols[] = {
    {"trilemma-load", callback, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* See load.h. lws logs nothing unless --verbose. */
int ws_context_create(struct worker *w)
{
    struct lws_context_creation_info info;
    void *loops[1] = {&w->loop};
    memset(&info, 0, sizeof(info));
    lws_set_log_level(w->L->verbose ? LLL_ERR | LLL_WARN : 0, NULL);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_LIBUV;
    info.foreign_loops = loops;
    info.user = w;
    info.count_threads = 1;
    info.retry_and_idle_policy = &no_validity;
    info.pcontext = &w->lws; /* lws sets it to NULL once the context is wholly destroyed */
    info.timeout_secs = (w->L->sc.connect_timeout_ms + 999) / 1000;
    info.connect_timeout_secs = info.timeout_secs;
    w->lws = lws_create_context(&info);
    if (!w->lws) {
        fprintf(stderr, "trilemma-load: cannot create a libwebsockets context on libuv (is lws' "
                        "libuv plugin libwebsockets-evlib_uv.so installed? Debian package "
                        "libwebsockets-evlib-uv)\n");
        return -ENOENT;
    }
    return 0;
}

/* See load.h. With a foreign loop, lws 4.1 destroys a context in steps: the first call closes
 * the connections and lws' handles on the loop; once the loop has run their close callbacks,
 * a second call (ws_context_finish) frees the rest, and lws clears w->lws (info.pcontext). */
void ws_context_destroy(struct worker *w)
{
    if (w->lws)
        lws_context_destroy(w->lws);
}

/* See load.h. After the loop has run dry. */
void ws_context_finish(struct worker *w)
{
    for (int i = 0; i < 3 && w->lws; i++) {
        lws_context_destroy(w->lws);
        uv_run(&w->loop, UV_RUN_NOWAIT);
    }
}

/* See load.h. Returns 0 when the connection is under way or its failure has already been
 * reported (user_on_closed), -EBUSY while the previous connection still exists, or -ENOTCONN
 * when lws refused without a callback. */
int ws_connect(struct vuser *u)
{
    const struct load *L = u->w->L;
    struct lws_client_connect_info ci;
    if (u->conn_pending)
        return -EBUSY;
    memset(&ci, 0, sizeof(ci));
    ci.context = u->w->lws;
    const struct target *t = u->on_tgt2 && L->has_tgt2 ? &L->tgt2 : &L->tgt;
    ci.address = t->addr;
    ci.port = t->port;
    ci.path = t->path;
    ci.host = t->hosthdr;
    ci.origin = L->origin;
    ci.ietf_version_or_minus_one = -1;
    ci.userdata = u;
    ci.local_protocol_name = protocols[0].name;
    ci.retry_and_idle_policy = &no_validity;
    u->conn_pending = true;
    u->wsi = NULL;
    u->opened = u->closing = u->ignore_rx = false;
    u->close_kind[0] = '\0';
    struct lws *wsi = lws_client_connect_via_info(&ci);
    if (!wsi) {
        if (!u->conn_pending)
            return 0;
        u->conn_pending = false;
        return -ENOTCONN;
    }
    if (u->conn_pending && !u->wsi)
        u->wsi = wsi;
    return 0;
}

/* See load.h. */
void ws_send(struct vuser *u, const char *msg, size_t len)
{
    if (!u->wsi || u->closing)
        return;
    uint32_t n = (uint32_t)len;
    buf_append(&u->tx, &n, 4);
    buf_append(&u->tx, msg, len);
    lws_callback_on_writable(u->wsi);
}

/* See load.h. An abort resets the TCP connection (SO_LINGER 0) so the server sees the client
 * vanish, as a dropped mobile connection would. */
void ws_close(struct vuser *u, bool abort)
{
    if (!u->wsi)
        return;
    if (abort || !u->opened) {
        struct linger lg = {1, 0};
        u->ignore_rx = true; /* frames already read from this connection are not ours now */
        int fd = lws_get_socket_fd(u->wsi);
        if (fd >= 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        lws_set_timeout(u->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return;
    }
    u->closing = true;
    lws_callback_on_writable(u->wsi);
}
