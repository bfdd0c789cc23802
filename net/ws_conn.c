/* ws_conn.c - a connection in the WebSocket state: frames in (through the ws_frame parser, with
 * messages assembled only when they span receives), frames out, pings and idle deadlines, the
 * close handshake, and the outbound limit that disconnects clients which stop reading. */
#include "net/server_int.h"

#include <string.h>

#include "base/log.h"

static struct conn *timer_conn(struct timer *t)
{
    return (struct conn *)((char *)t - offsetof(struct conn, timer));
}

static void close_timeout(struct loop *l, struct timer *t)
{
    (void)l;
    struct conn *c = timer_conn(t);
    metric_add(&c->w->m.errors[NERR_CLOSE_TIMEOUT], 1);
    c->reset = true; /* the peer did not finish the close in time: abortive close */
    conn_teardown(c);
}

static void arm_tick(struct conn *c)
{
    const struct server_conf *conf = &c->w->s->conf;
    uint64_t idle_at = c->last_rx_ms + conf->idle_timeout_ms;
    uint64_t ping_at = c->last_ping_ms + conf->ping_interval_ms;
    timer_arm(c->w->loop, &c->timer, idle_at < ping_at ? idle_at : ping_at, ws_tick);
}

/* Ping and idle timer of an open WebSocket. */
void ws_tick(struct loop *l, struct timer *t)
{
    struct conn *c = timer_conn(t);
    const struct server_conf *conf = &c->w->s->conf;
    uint64_t now = loop_now_ms(l);
    if (c->state != CS_WS)
        return;
    if (now >= c->last_rx_ms + conf->idle_timeout_ms) {
        metric_add(&c->w->m.errors[NERR_IDLE_TIMEOUT], 1);
        conn_close(c, WS_CLOSE_GOING_AWAY, "idle timeout");
        return;
    }
    if (now >= c->last_ping_ms + conf->ping_interval_ms) {
        ws_send_frame(c, WS_OP_PING, NULL, 0);
        c->last_ping_ms = now;
    }
    arm_tick(c);
}

/* The connection has just been upgraded. */
void ws_conn_open(struct conn *c)
{
    const struct server_conf *conf = &c->w->s->conf;
    c->state = CS_WS;
    ws_parser_init(&c->wsp, conf->max_message_bytes, false);
    c->last_ping_ms = c->last_rx_ms = loop_now_ms(c->w->loop);
    arm_tick(c);
    c->opened = true;
    metric_add(&c->w->m.ws_open, 1);
    if (c->w->s->hooks.on_open)
        c->w->s->hooks.on_open(c);
}

/* Queue one frame. Data frames count against the outbound limit; control frames do not (they
 * are small and bounded by the peer's own pings). */
void ws_send_frame(struct conn *c, uint8_t opcode, const void *payload, size_t len)
{
    uint8_t hdr[10];
    size_t h = ws_frame_header(hdr, opcode, true, len);
    conn_queue(c, hdr, h);
    if (len)
        conn_queue(c, payload, len);
    metric_add(&c->w->m.frames_out, 1);
}

static void send_close_frame(struct conn *c, uint16_t code, const char *reason)
{
    uint8_t p[125];
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > 123)
        rl = 123;
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    if (rl)
        memcpy(p + 2, reason, rl);
    ws_send_frame(c, WS_OP_CLOSE, p, 2 + rl);
    c->close_sent = true;
    c->state = CS_CLOSING;
}

/* Server-initiated close: send our close frame, then wait (bounded) for the peer's. */
void conn_close(struct conn *c, uint16_t code, const char *reason)
{
    if (c->state != CS_WS)
        return;
    send_close_frame(c, code, reason);
    conn_arm_timer(c, c->w->s->conf.close_timeout_ms, close_timeout);
}

/* Fail the WebSocket connection (RFC 6455 7.1.7): close frame, then close TCP once written. */
void ws_fail(struct conn *c, uint16_t code, const char *reason)
{
    enum net_err kind = code == WS_CLOSE_INVALID_DATA  ? NERR_WS_INVALID_UTF8
                        : code == WS_CLOSE_TOO_BIG     ? NERR_WS_TOO_BIG
                        : code == WS_CLOSE_UNSUPPORTED ? NERR_WS_BINARY
                                                       : NERR_WS_PROTOCOL;
    metric_add(&c->w->m.errors[kind], 1);
    if (c->state == CS_WS)
        send_close_frame(c, code, reason);
    conn_close_after_flush(c);
    conn_arm_timer(c, c->w->s->conf.close_timeout_ms, close_timeout);
}

/* Queue a text message; see server.h. */
int conn_send_text(struct conn *c, const char *text, size_t len)
{
    if (c->state != CS_WS)
        return -EPIPE;
    if (conn_queued(c) + len > c->w->s->conf.outbound_limit_bytes) {
        /* The client is not reading: drop what is queued and close with 1008. If even the close
         * cannot be delivered within close_timeout_ms, the connection is reset. */
        metric_add(&c->w->m.errors[NERR_BACKPRESSURE], 1);
        buf_reset(&c->out);
        send_close_frame(c, WS_CLOSE_POLICY, "outbound queue limit exceeded");
        conn_arm_timer(c, c->w->s->conf.close_timeout_ms, close_timeout);
        return -ENOBUFS;
    }
    ws_send_frame(c, WS_OP_TEXT, text, len);
    metric_add(&c->w->m.messages_out, 1);
    return 0;
}

static void on_close_frame(struct conn *c, const struct ws_event *ev)
{
    c->close_received = true;
    if (!c->close_sent) {
        /* Echo the peer's code (1000 when it sent none), then close TCP. */
        uint16_t code = ev->close_code == WS_CLOSE_NO_STATUS ? WS_CLOSE_NORMAL : ev->close_code;
        send_close_frame(c, code, NULL);
    }
    conn_close_after_flush(c);
    conn_arm_timer(c, c->w->s->conf.close_timeout_ms, close_timeout);
}

static void deliver(struct conn *c, char *text, size_t len)
{
    metric_add(&c->w->m.messages_in, 1);
    if (c->state == CS_WS && c->w->s->hooks.on_message)
        c->w->s->hooks.on_message(c, text, len);
}

/* Handle one parser event. `direct` tracks a message that so far lies whole in the receive
 * buffer, so that the common case (a message in one receive) is never copied. */
static void on_event(struct conn *c, const struct ws_event *ev, const uint8_t **direct,
                     size_t *direct_len)
{
    switch (ev->type) {
    case WS_EV_DATA:
        if (!*direct && !buf_size(&c->msg)) {
            *direct = ev->data;
            *direct_len = ev->len;
            break;
        }
        if (*direct) {
            buf_append(&c->msg, *direct, *direct_len);
            *direct = NULL;
        }
        buf_append(&c->msg, ev->data, ev->len);
        break;
    case WS_EV_MESSAGE_END:
        if (*direct) {
            deliver(c, (char *)*direct, *direct_len);
            *direct = NULL;
        } else {
            deliver(c, buf_begin(&c->msg), buf_size(&c->msg));
            buf_free(&c->msg);
        }
        break;
    case WS_EV_PING:
        /* A client that pings without reading the pongs is a client that stops reading. */
        if (!c->close_sent && conn_queued(c) > c->w->s->conf.outbound_limit_bytes) {
            metric_add(&c->w->m.errors[NERR_BACKPRESSURE], 1);
            buf_reset(&c->out);
            send_close_frame(c, WS_CLOSE_POLICY, "outbound queue limit exceeded");
            conn_arm_timer(c, c->w->s->conf.close_timeout_ms, close_timeout);
        } else if (!c->close_sent) {
            ws_send_frame(c, WS_OP_PONG, ev->data, ev->len);
        }
        break;
    case WS_EV_PONG:
        break;
    case WS_EV_CLOSE:
        on_close_frame(c, ev);
        break;
    case WS_EV_ERROR:
        ws_fail(c, ev->close_code, ev->error);
        break;
    case WS_EV_NONE:
        break;
    }
}

/* Bytes arrived on a WebSocket connection: parse them all, in place. */
void ws_on_data(struct conn *c, uint8_t *p, size_t n)
{
    const uint8_t *direct = NULL;
    size_t direct_len = 0;
    uint64_t frames = c->wsp.frames;
    while (c->state == CS_WS ||
           (c->state == CS_CLOSING && !c->close_received && !c->close_after_flush)) {
        struct ws_event ev = {0};
        size_t used = ws_parse(&c->wsp, p, n, &ev);
        p += used;
        n -= used;
        on_event(c, &ev, &direct, &direct_len);
        if (ev.type == WS_EV_NONE && (n == 0 || used == 0))
            break;
    }
    metric_add(&c->w->m.frames_in, c->wsp.frames - frames);
    /* A message that continues in a later receive must leave the receive buffer now. */
    if (direct && c->state != CS_DEAD)
        buf_append(&c->msg, direct, direct_len);
}
