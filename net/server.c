/* server.c - workers, listeners, accept, the per-connection receive/send machinery and teardown.
 *
 * Each worker thread creates its own ring (SINGLE_ISSUER), its own SO_REUSEPORT listener with a
 * multishot accept, and receives on every connection with a multishot recv that picks buffers
 * from the worker's provided-buffer ring: an idle connection owns no receive buffer. Output is
 * appended to the connection's `out` buffer during a loop turn and handed to the kernel at the
 * end of the turn, one send in flight per socket (order is kept by construction). */
#include "net/server_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/cidr.h"
#include "base/log.h"
#include "base/mem.h"
#include "net/forwarded.h"

/* ---- connection slots ---- */

static struct conn *conn_alloc(struct worker *w, int fd)
{
    if (!w->nfree) {
        uint32_t n = w->nslots ? 2 * w->nslots : 1024;
        w->conns = xrealloc(w->conns, n * sizeof(*w->conns));
        w->gens = xrealloc(w->gens, n * sizeof(*w->gens));
        w->free_idx = xrealloc(w->free_idx, n * sizeof(*w->free_idx));
        for (uint32_t i = n; i > w->nslots; i--) {
            w->conns[i - 1] = NULL;
            w->gens[i - 1] = 0;
            w->free_idx[w->nfree++] = i - 1;
        }
        w->nslots = n;
    }
    uint32_t idx = w->free_idx[--w->nfree];
    struct conn *c = xcalloc(1, sizeof(*c));
    c->w = w;
    c->fd = fd;
    c->idx = idx;
    c->gen = ++w->gens[idx] & 0xFFFFFF;
    w->conns[idx] = c;
    w->nconns++;
    return c;
}

/* The per-connection budget of an idle WebSocket session, with struct session (see
 * session/lifecycle.c): a mimalloc size class of 512 bytes. */
_Static_assert(sizeof(void *) != 8 || sizeof(struct conn) <= 512,
               "struct conn outgrew its per-idle-session budget (512 bytes)");

static struct conn *conn_lookup(struct worker *w, uint64_t ud)
{
    uint32_t idx = loop_ud_idx(ud);
    if (idx >= w->nslots || !w->conns[idx] || w->conns[idx]->gen != loop_ud_gen(ud))
        return NULL;
    return w->conns[idx];
}

static void drain_maybe_stop(struct worker *w);

/* Release the slot once nothing in the kernel refers to the connection any more. */
static void conn_maybe_free(struct conn *c)
{
    if (c->state != CS_DEAD || c->recv_armed || c->send_inflight || c->dirty)
        return;
    struct worker *w = c->w;
    close(c->fd);
    if (c->counted_ip)
        ip_release(w->s->ips, &c->peer);
    if (c->counted_global)
        atomic_fetch_sub(&w->s->conns_total_open, 1);
    if (c->refused)
        atomic_fetch_sub(&w->s->refused_open, 1);
    if (c->admin)
        w->nadmin--;
    buf_free(&c->rbuf);
    buf_free(&c->msg);
    buf_free(&c->out);
    buf_free(&c->inflight);
    w->conns[c->idx] = NULL;
    w->free_idx[w->nfree++] = c->idx;
    w->nconns--;
    metric_sub(&w->m.conns_open, 1);
    xfree(c);
    drain_maybe_stop(w);
}

/* Stop everything on c: the application is told (once), in-flight requests are cancelled,
 * and the slot is released when their completions are in. */
void conn_teardown(struct conn *c)
{
    if (c->state == CS_DEAD)
        return;
    struct worker *w = c->w;
    c->state = CS_DEAD;
    timer_disarm(w->loop, &c->timer);
    if (c->http_streaming || c->http_deferred) {
        c->http_streaming = c->http_deferred = false;
        if (w->s->hooks.on_http_close)
            w->s->hooks.on_http_close(c);
    }
    if (c->opened) {
        c->opened = false;
        metric_sub(&w->m.ws_open, 1);
        if (w->s->hooks.on_close)
            w->s->hooks.on_close(c);
    }
    if (c->reset) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    } else {
        shutdown(c->fd, SHUT_RDWR);
    }
    if (c->recv_armed)
        io_uring_prep_cancel64(loop_sqe(w->loop, loop_ud(OP_CANCEL, 0, 0)),
                               loop_ud(OP_RECV, c->gen, c->idx), 0);
    if (c->send_inflight)
        io_uring_prep_cancel64(loop_sqe(w->loop, loop_ud(OP_CANCEL, 0, 0)),
                               loop_ud(OP_SEND, c->gen, c->idx), 0);
    conn_maybe_free(c);
}

void conn_arm_timer(struct conn *c, uint64_t delay_ms, timer_fn fn)
{
    timer_arm(c->w->loop, &c->timer, loop_now_ms(c->w->loop) + delay_ms, fn);
}

/* ---- receive ---- */

static void arm_recv(struct conn *c)
{
    struct io_uring_sqe *sqe = loop_sqe(c->w->loop, loop_ud(OP_RECV, c->gen, c->idx));
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = LOOP_BUF_GROUP;
    c->recv_armed = true;
}

static void on_recv(struct loop *l, struct io_uring_cqe *cqe, void *ctx)
{
    struct worker *w = ctx;
    struct conn *c = conn_lookup(w, cqe->user_data);
    if (!c)
        return;
    /* recv_armed stays true while the bytes are handled, so that nothing frees c under us. */
    if (cqe->res > 0 && c->state != CS_DEAD) {
        uint8_t *p = loop_buf(l, (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
        size_t n = (size_t)cqe->res;
        metric_add(&w->m.bytes_in, n);
        c->last_rx_ms = loop_now_ms(l);
        if (c->state == CS_HTTP)
            http_on_data(c, p, n);
        else
            ws_on_data(c, p, n);
    } else if (cqe->res == 0 || (cqe->res < 0 && cqe->res != -ENOBUFS)) {
        if (cqe->res < 0 && cqe->res != -ECANCELED && c->state != CS_DEAD)
            metric_add(&w->m.errors[NERR_IO], 1);
        conn_teardown(c); /* EOF or error: nothing more will arrive */
    }
    if (!(cqe->flags & IORING_CQE_F_MORE))
        c->recv_armed = false;
    /* -ENOBUFS (ring momentarily empty) ends the multishot without harm: buffers come back at
     * the end of this turn, and the re-arm below picks them up. */
    if (!c->recv_armed && c->state != CS_DEAD)
        arm_recv(c);
    conn_maybe_free(c);
}

/* ---- send ---- */

void conn_mark_dirty(struct conn *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    c->next_dirty = c->w->dirty_head;
    c->w->dirty_head = c;
}

/* Append bytes to the connection's output (sent at the end of this loop turn). */
void conn_queue(struct conn *c, const void *p, size_t n)
{
    buf_append(&c->out, p, n);
    conn_mark_dirty(c);
}

static void flush_deadline(struct loop *l, struct timer *t)
{
    (void)l;
    struct conn *c = (struct conn *)((char *)t - offsetof(struct conn, timer));
    metric_add(&c->w->m.errors[NERR_CLOSE_TIMEOUT], 1);
    c->reset = true; /* the peer does not read what it asked for: abortive close */
    conn_teardown(c);
}

void conn_close_after_flush(struct conn *c)
{
    c->close_after_flush = true;
    conn_mark_dirty(c);
    /* WebSocket closes arm their own deadline; an HTTP answer gets the same bound here. */
    if (c->state == CS_HTTP)
        conn_arm_timer(c, c->w->s->conf.close_timeout_ms, flush_deadline);
}

static void submit_send(struct conn *c)
{
    struct io_uring_sqe *sqe = loop_sqe(c->w->loop, loop_ud(OP_SEND, c->gen, c->idx));
    io_uring_prep_send(sqe, c->fd, buf_begin(&c->inflight), buf_size(&c->inflight), MSG_NOSIGNAL);
    c->send_inflight = true;
}

/* Hand queued output to the kernel, or finish a close once everything is written. */
static void flush_conn(struct conn *c)
{
    if (c->state == CS_DEAD) {
        conn_maybe_free(c);
        return;
    }
    if (c->send_inflight)
        return;
    if (buf_size(&c->out)) {
        struct buf t = c->inflight; /* swap: `out` keeps collecting while this is in flight */
        c->inflight = c->out;
        c->out = t;
        submit_send(c);
        return;
    }
    /* Idle connections keep no output memory. */
    buf_free(&c->out);
    buf_free(&c->inflight);
    if (c->close_after_flush)
        conn_teardown(c);
}

static void on_send(struct loop *l, struct io_uring_cqe *cqe, void *ctx)
{
    (void)l;
    struct worker *w = ctx;
    struct conn *c = conn_lookup(w, cqe->user_data);
    if (!c)
        return;
    if (cqe->res < 0) {
        if (c->state != CS_DEAD && cqe->res != -ECANCELED)
            metric_add(&w->m.errors[NERR_IO], 1);
        conn_teardown(c); /* send_inflight still set: c cannot be freed inside */
        c->send_inflight = false;
        conn_maybe_free(c);
        return;
    }
    c->send_inflight = false;
    metric_add(&w->m.bytes_out, (uint64_t)cqe->res);
    buf_consume(&c->inflight, (size_t)cqe->res);
    if (c->state == CS_DEAD) {
        conn_maybe_free(c);
        return;
    }
    if (buf_size(&c->inflight)) { /* short write: the rest goes first */
        submit_send(c);
        return;
    }
    if (c->state == CS_HTTP && buf_size(&c->rbuf) && !buf_size(&c->out) && !c->close_after_flush)
        http_resume(c); /* pipelined requests held back while answers were queued */
    if (c->want_writable && c->state == CS_WS &&
        conn_queued(c) <= c->w->s->conf.outbound_limit_bytes / 2) {
        c->want_writable = false;
        if (w->s->hooks.on_writable)
            w->s->hooks.on_writable(c); /* may queue more: sent by the flush below */
    }
    flush_conn(c);
}

/* End of every loop turn: everything queued during the turn leaves now. */
static void on_turn(struct loop *l, void *ctx)
{
    (void)l;
    struct worker *w = ctx;
    while (w->dirty_head) {
        struct conn *c = w->dirty_head;
        w->dirty_head = c->next_dirty;
        c->dirty = false;
        flush_conn(c); /* may free c */
    }
    drain_maybe_stop(w); /* the application's work may have finished in this turn */
}

/* ---- accept ---- */

static void arm_accept(struct worker *w)
{
    struct io_uring_sqe *sqe = loop_sqe(w->loop, loop_ud(OP_ACCEPT, 0, 0));
    io_uring_prep_multishot_accept(sqe, w->listen_fd, NULL, NULL, SOCK_CLOEXEC);
}

static void accept_retry(struct loop *l, struct timer *t)
{
    (void)l;
    struct worker *w = (struct worker *)((char *)t - offsetof(struct worker, accept_timer));
    if (w->accepting && !w->draining)
        arm_accept(w);
}

void http_deadline(struct loop *l, struct timer *t)
{
    (void)l;
    struct conn *c = (struct conn *)((char *)t - offsetof(struct conn, timer));
    metric_add(&c->w->m.errors[NERR_HANDSHAKE_TIMEOUT], 1);
    conn_teardown(c);
}

/* The TCP peer of fd (IPv4 as v4-mapped); all zero when unknown. */
static void sock_peer(int fd, struct in6_addr *out)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    memset(out, 0, sizeof(*out));
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_INET) {
        out->s6_addr[10] = out->s6_addr[11] = 0xff;
        memcpy(&out->s6_addr[12], &((struct sockaddr_in *)&ss)->sin_addr, 4);
    } else if (ss.ss_family == AF_INET6) {
        *out = ((struct sockaddr_in6 *)&ss)->sin6_addr;
    }
}

static void set_peer(struct conn *c, const struct in6_addr *a)
{
    c->peer = *a;
    ip_format(a, c->peer_str, sizeof(c->peer_str));
}

/* A request from a trusted proxy names its client in X-Forwarded-For (net/forwarded.h): the
 * connection counts against that client's max_connections_per_ip from now on. A proxy may carry
 * several clients' requests on one keep-alive connection, so the count moves with each request.
 * Over the limit, the request gets 503 and the connection closes after it. */
void conn_attribute_client(struct conn *c, const struct http_request *req)
{
    const struct server_conf *conf = &c->w->s->conf;
    struct in6_addr tcp, client;
    sock_peer(c->fd, &tcp);
    forwarded_client(&conf->trusted_proxies, req, &tcp, &client);
    if (c->counted_ip && memcmp(&client, &c->peer, sizeof(client)) == 0)
        return;
    if (c->counted_ip)
        ip_release(c->w->s->ips, &c->peer);
    set_peer(c, &client);
    c->counted_ip = ip_acquire(c->w->s->ips, &client, ip_limit(c->w->s));
    if (!c->counted_ip) {
        metric_add(&c->w->m.errors[NERR_CONN_LIMIT], 1);
        c->refuse_status = 503;
        c->keep_alive = false;
    }
}

static void accept_conn(struct worker *w, int fd)
{
    const struct server_conf *conf = &w->s->conf;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct conn *c = conn_alloc(w, fd);
    metric_add(&w->m.conns_open, 1);
    metric_add(&w->m.conns_total, 1);
    struct in6_addr peer;
    sock_peer(fd, &peer);
    set_peer(c, &peer);
    /* Behind a trusted proxy the client is known only from the request (conn_attribute_client):
     * the proxy's own address is not limited per IP. */
    c->via_proxy = cidr_list_match(&conf->trusted_proxies, &peer);
    c->last_rx_ms = loop_now_ms(w->loop);
    if (!conn_admit(c)) {
        metric_add(&w->m.errors[NERR_CONN_LIMIT], 1);
        /* Answered once the request head is in: closing before reading it would make the
         * kernel reset the connection and the client might never see the 503. As many refused
         * connections may wait for that as there are slots; past that they are reset at once,
         * so that a flood cannot take the process's file descriptors. */
        if (atomic_fetch_add(&w->s->refused_open, 1) >= conf->max_connections) {
            atomic_fetch_sub(&w->s->refused_open, 1);
            c->state = CS_DEAD;
            c->reset = true;
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            conn_maybe_free(c);
            return;
        }
        c->refused = true;
        c->refuse_status = 503;
    }
    arm_recv(c);
    conn_arm_timer(c, conf->handshake_timeout_ms, http_deadline);
}

/* A connection to the admin listener: not counted against the client limits (probes and the
 * scraper must get through a flood of the client port), bounded per worker on its own. */
static void accept_admin(struct worker *w, int fd)
{
    if (w->nadmin >= SERVER_ADMIN_CONNS_MAX) {
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct conn *c = conn_alloc(w, fd);
    metric_add(&w->m.conns_open, 1);
    metric_add(&w->m.conns_total, 1);
    struct in6_addr peer;
    sock_peer(fd, &peer);
    set_peer(c, &peer);
    c->admin = true;
    w->nadmin++;
    c->last_rx_ms = loop_now_ms(w->loop);
    arm_recv(c);
    conn_arm_timer(c, w->s->conf.handshake_timeout_ms, http_deadline);
}

/* The admin listener stays open through the drain (/readyz answers "draining" there) until the
 * worker stops. */
static void arm_accept_admin(struct worker *w)
{
    struct io_uring_sqe *sqe = loop_sqe(w->loop, loop_ud(OP_ACCEPT_ADMIN, 0, 0));
    io_uring_prep_multishot_accept(sqe, w->admin_fd, NULL, NULL, SOCK_CLOEXEC);
}

static void admin_accept_retry(struct loop *l, struct timer *t)
{
    (void)l;
    struct worker *w = (struct worker *)((char *)t - offsetof(struct worker, admin_timer));
    if (w->admin_fd >= 0)
        arm_accept_admin(w);
}

static void on_accept_admin(struct loop *l, struct io_uring_cqe *cqe, void *ctx)
{
    (void)l;
    struct worker *w = ctx;
    if (cqe->res >= 0) {
        if (w->admin_fd < 0)
            close(cqe->res);
        else
            accept_admin(w, cqe->res);
    } else if (cqe->res != -ECANCELED && cqe->res != -EINVAL) {
        log_warn("worker %d: admin accept: %s", w->index, strerror(-cqe->res));
    }
    if (cqe->flags & IORING_CQE_F_MORE || w->admin_fd < 0)
        return;
    if (cqe->res == -EMFILE || cqe->res == -ENFILE || cqe->res == -ENOMEM)
        timer_arm(w->loop, &w->admin_timer, loop_now_ms(w->loop) + 100, admin_accept_retry);
    else
        arm_accept_admin(w);
}

static void on_accept(struct loop *l, struct io_uring_cqe *cqe, void *ctx)
{
    (void)l;
    struct worker *w = ctx;
    if (cqe->res >= 0) {
        if (w->draining)
            close(cqe->res);
        else
            accept_conn(w, cqe->res);
    } else if (cqe->res != -ECANCELED && cqe->res != -EINVAL) {
        log_warn("worker %d: accept: %s", w->index, strerror(-cqe->res));
    }
    if (cqe->flags & IORING_CQE_F_MORE || !w->accepting || w->draining)
        return;
    if (cqe->res == -EMFILE || cqe->res == -ENFILE || cqe->res == -ENOMEM)
        timer_arm(w->loop, &w->accept_timer, loop_now_ms(w->loop) + 100, accept_retry);
    else
        arm_accept(w);
}

/* ---- drain ---- */

/* The last thing a stopping worker closes: the admin listener and its connections (probes and
 * scrapes in progress). */
static void close_admin(struct worker *w)
{
    io_uring_prep_cancel64(loop_sqe(w->loop, loop_ud(OP_CANCEL, 0, 0)),
                           loop_ud(OP_ACCEPT_ADMIN, 0, 0), IORING_ASYNC_CANCEL_ALL);
    close(w->admin_fd);
    w->admin_fd = -1;
    timer_disarm(w->loop, &w->admin_timer);
    for (uint32_t i = 0; i < w->nslots; i++)
        if (w->conns[i] && w->conns[i]->admin)
            conn_teardown(w->conns[i]);
}

/* A draining worker with no connection left stops once the application has nothing in flight
 * (its may_stop hook: e.g. turns still being committed), or once that wait is over. */
static void drain_maybe_stop(struct worker *w)
{
    if (!w->draining || w->nconns > w->nadmin)
        return;
    if (!w->stop_forced && w->s->hooks.may_stop && !w->s->hooks.may_stop(w))
        return;
    if (w->admin_fd >= 0)
        close_admin(w); /* re-enters here as its connections are freed */
    if (!w->nconns)
        loop_stop(w->loop);
}

static void drain_give_up(struct loop *l, struct timer *t)
{
    (void)l;
    struct worker *w = (struct worker *)((char *)t - offsetof(struct worker, drain_timer));
    if (!w->nconns)
        log_warn("worker %d: drain: the application was still busy %u ms after the deadline: "
                 "stopping anyway",
                 w->index, (unsigned)w->s->conf.close_timeout_ms);
    w->stop_forced = true;
    drain_maybe_stop(w);
}

static void drain_deadline(struct loop *l, struct timer *t)
{
    (void)l;
    struct worker *w = (struct worker *)((char *)t - offsetof(struct worker, drain_timer));
    w->drain_deadline_passed = true;
    for (uint32_t i = 0; i < w->nslots; i++) {
        struct conn *c = w->conns[i];
        if (!c || c->state == CS_DEAD)
            continue;
        if (c->state == CS_WS)
            conn_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
        else if (c->state == CS_HTTP)
            conn_teardown(c);
    }
    /* Turns cut here are committed as their connections go: give that as long as the close
     * handshakes get, then stop whatever the application says. */
    timer_arm(w->loop, &w->drain_timer, loop_now_ms(w->loop) + w->s->conf.close_timeout_ms,
              drain_give_up);
}

static void start_drain(struct worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    w->accepting = false;
    if (w->listen_fd >= 0) {
        io_uring_prep_cancel64(loop_sqe(w->loop, loop_ud(OP_CANCEL, 0, 0)),
                               loop_ud(OP_ACCEPT, 0, 0), IORING_ASYNC_CANCEL_ALL);
        close(w->listen_fd); /* new connections are refused by the kernel from now on */
        w->listen_fd = -1;
    }
    timer_disarm(w->loop, &w->accept_timer);
    /* Idle HTTP keep-alive connections carry nothing worth waiting for. */
    for (uint32_t i = 0; i < w->nslots; i++) {
        struct conn *c = w->conns[i];
        if (c && !c->admin && c->state == CS_HTTP && !c->send_inflight && !buf_size(&c->out) &&
            !buf_size(&c->rbuf) && !c->http_deferred && !c->http_streaming)
            conn_teardown(c);
    }
    if (w->s->hooks.on_drain)
        w->s->hooks.on_drain(w);
    timer_arm(w->loop, &w->drain_timer, loop_now_ms(w->loop) + w->s->conf.drain_timeout_ms,
              drain_deadline);
    drain_maybe_stop(w);
}

static void arm_wake(struct worker *w)
{
    struct io_uring_sqe *sqe = loop_sqe(w->loop, loop_ud(OP_WAKE, 0, 0));
    io_uring_prep_read(sqe, w->wake_fd, &w->wake_val, sizeof(w->wake_val), 0);
}

static void on_wake(struct loop *l, struct io_uring_cqe *cqe, void *ctx)
{
    (void)l;
    (void)cqe;
    struct worker *w = ctx;
    if (atomic_load(&w->s->draining))
        start_drain(w);
    else
        arm_wake(w);
}

static void on_ignore(struct loop *l, struct io_uring_cqe *cqe, void *ctx)
{
    (void)l;
    (void)cqe;
    (void)ctx;
}

/* ---- workers ---- */

static int open_listener(const char *host, uint16_t port)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        len = sizeof(*in);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        len = sizeof(*in6);
    } else {
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

static uint16_t bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return 0;
    return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                         : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int worker_setup(struct worker *w)
{
    const struct server_conf *conf = &w->s->conf;
    struct loop_config lc = {0};
    w->loop = loop_create(&lc);
    if (!w->loop)
        return -errno;
    w->listen_fd = open_listener(conf->listen_host, conf->listen_port);
    if (w->listen_fd < 0)
        return w->listen_fd;
    w->bound_port = bound_port(w->listen_fd);
    if (conf->admin_host[0]) {
        w->admin_fd = open_listener(conf->admin_host, conf->admin_port);
        if (w->admin_fd < 0)
            return w->admin_fd;
        w->admin_bound_port = bound_port(w->admin_fd);
    }
    loop_set_handler(w->loop, OP_ACCEPT, on_accept, w);
    loop_set_handler(w->loop, OP_ACCEPT_ADMIN, on_accept_admin, w);
    loop_set_handler(w->loop, OP_RECV, on_recv, w);
    loop_set_handler(w->loop, OP_SEND, on_send, w);
    loop_set_handler(w->loop, OP_CANCEL, on_ignore, w);
    loop_set_handler(w->loop, OP_WAKE, on_wake, w);
    loop_set_turn_hook(w->loop, on_turn, w);
    if (w->s->hooks.worker_init)
        w->app = w->s->hooks.worker_init(w);
    w->accepting = true;
    arm_accept(w);
    if (w->admin_fd >= 0)
        arm_accept_admin(w);
    arm_wake(w);
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int ret = worker_setup(w);
    if (ret < 0) {
        atomic_store(&w->started, ret);
        goto out_destroy_loop;
    }
    pthread_rwlock_wrlock(&w->life);
    w->alive = true;
    pthread_rwlock_unlock(&w->life);
    atomic_store(&w->started, 1);
    ret = loop_run(w->loop);
    if (ret < 0)
        log_error("worker %d: loop failed: %s", w->index, strerror(-ret));
    pthread_rwlock_wrlock(&w->life); /* no reader may look at what is torn down below */
    w->alive = false;
    if (w->s->hooks.worker_fini)
        w->s->hooks.worker_fini(w, w->app);
    w->app = NULL;
    xfree(w->conns); /* every slot is free once the loop has ended */
    xfree(w->gens);
    xfree(w->free_idx);
    loop_destroy(w->loop);
    w->loop = NULL;
    pthread_rwlock_unlock(&w->life);
    if (w->listen_fd >= 0)
        close(w->listen_fd);
    if (w->admin_fd >= 0)
        close(w->admin_fd);
    return NULL;

out_destroy_loop:
    if (w->listen_fd >= 0)
        close(w->listen_fd);
    if (w->admin_fd >= 0)
        close(w->admin_fd);
    loop_destroy(w->loop);
    w->loop = NULL;
    return NULL;
}

/* Hold every running worker for a cross-thread read (/metrics, /readyz); see server.h. */
void server_hold_workers(struct server *s)
{
    for (int i = 0; i < s->nworkers; i++)
        pthread_rwlock_rdlock(&s->workers[i].life);
}

void server_release_workers(struct server *s)
{
    for (int i = 0; i < s->nworkers; i++)
        pthread_rwlock_unlock(&s->workers[i].life);
}

bool worker_alive(const struct worker *w)
{
    return w->alive;
}

/* Create the server; see the header. */
struct server *server_create(const struct server_conf *conf, const struct server_hooks *hooks)
{
    struct server *s = xcalloc(1, sizeof(*s));
    s->conf = *conf;
    s->hooks = *hooks;
    s->nworkers = conf->workers > 0 ? conf->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (s->nworkers < 1)
        s->nworkers = 1;
    s->web = static_files_load(conf->web_root);
    s->ips = ip_table_create();
    s->workers = xcalloc((size_t)s->nworkers, sizeof(*s->workers));
    for (int i = 0; i < s->nworkers; i++) {
        s->workers[i].wake_fd = -1;
        pthread_rwlock_init(&s->workers[i].life, NULL);
    }
    for (int i = 0; i < s->nworkers; i++) {
        s->workers[i].s = s;
        s->workers[i].index = i;
        s->workers[i].listen_fd = -1;
        s->workers[i].admin_fd = -1;
        s->workers[i].wake_fd = eventfd(0, EFD_CLOEXEC);
        if (s->workers[i].wake_fd < 0) {
            log_error("eventfd: %s", strerror(errno));
            server_destroy(s);
            return NULL;
        }
    }
    return s;
}

/* Start the workers one after the other, each once the previous one listens: with port 0 the
 * first worker's kernel-chosen port is then the one every later worker joins. */
int server_start(struct server *s)
{
    int err = 0;
    for (int i = 0; i < s->nworkers && !err; i++) {
        struct worker *w = &s->workers[i];
        if (pthread_create(&w->thread, NULL, worker_main, w)) {
            err = -EAGAIN;
            break;
        }
        int st;
        while ((st = atomic_load(&w->started)) == 0)
            usleep(1000); /* start-up only: a worker reports within milliseconds */
        if (st < 0)
            err = st;
        if (st > 0 && s->conf.listen_port == 0)
            s->conf.listen_port = w->bound_port;
        if (st > 0 && s->conf.admin_host[0] && s->conf.admin_port == 0)
            s->conf.admin_port = w->admin_bound_port;
    }
    if (err) {
        server_drain(s);
        server_wait(s);
    }
    return err;
}

/* The port the server listens on (the kernel's choice when configured as 0). */
uint16_t server_port(const struct server *s)
{
    return s->conf.listen_port;
}

uint16_t server_admin_port(const struct server *s)
{
    return s->conf.admin_host[0] ? s->conf.admin_port : 0;
}

void server_drain(struct server *s)
{
    atomic_store(&s->draining, true);
    uint64_t one = 1;
    for (int i = 0; i < s->nworkers; i++) {
        ssize_t r = write(s->workers[i].wake_fd, &one, sizeof(one));
        (void)r;
    }
}

void server_wait(struct server *s)
{
    for (int i = 0; i < s->nworkers; i++) {
        if (s->workers[i].thread) {
            pthread_join(s->workers[i].thread, NULL);
            s->workers[i].thread = 0;
        }
    }
}

void server_destroy(struct server *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nworkers; i++) {
        if (s->workers[i].wake_fd >= 0)
            close(s->workers[i].wake_fd);
        pthread_rwlock_destroy(&s->workers[i].life);
    }
    static_files_free(s->web);
    ip_table_destroy(s->ips);
    xfree(s->workers);
    xfree(s);
}

bool server_draining(const struct server *s)
{
    return atomic_load(&((struct server *)s)->draining);
}

const struct server_conf *server_config(const struct server *s)
{
    return &s->conf;
}

const void *server_app(const struct server *s)
{
    return s->conf.app;
}

int server_worker_count(const struct server *s)
{
    return s->nworkers;
}

struct worker *server_worker(struct server *s, int i)
{
    return &s->workers[i];
}

struct loop *worker_loop(struct worker *w)
{
    return w->loop;
}

void *worker_app(struct worker *w)
{
    return w->app;
}

int worker_index(const struct worker *w)
{
    return w->index;
}

struct server *worker_server(struct worker *w)
{
    return w->s;
}

uint32_t worker_conn_count(const struct worker *w)
{
    return w->nconns;
}

struct worker *conn_worker(struct conn *c)
{
    return c->w;
}

void *conn_app(struct conn *c)
{
    return c->app;
}

void conn_set_app(struct conn *c, void *app)
{
    c->app = app;
}

bool conn_is_open(const struct conn *c)
{
    return c->state == CS_WS;
}

const char *conn_peer(const struct conn *c)
{
    return c->peer_str;
}

size_t conn_queued(const struct conn *c)
{
    return buf_size(&c->out) + buf_size(&c->inflight);
}

void conn_want_writable(struct conn *c)
{
    c->want_writable = true;
}
