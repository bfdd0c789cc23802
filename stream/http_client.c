/* http_client.c - libcurl multi driven by the worker's io_uring through the socket API.
 *
 * Each socket curl tells us about gets a slot; its wish (in, out, both) becomes a one-shot poll
 * request on the ring, re-armed after each completion while curl still wants the socket.
 * One-shot rather than multishot: multishot poll is edge-triggered after its first event, and
 * curl does not promise to drain a socket on every call, so a level-triggered re-arm is the one
 * that can never miss readiness. A multishot poll for reading was tried (issue 10 item 2) and
 * backed out: a transfer cancelled while its multishot poll was armed sometimes left the socket
 * established after curl had closed the descriptor (the poll request still held the file, so the
 * provider never saw the client leave and went on generating; test_orchestrator's
 * test_cancel_during_tool_call_stops_the_transfer failed about one run in four). Its saving, one
 * poll request per token, was below what this machine can measure.
 *
 * Every (re-)arm takes a fresh generation, so completions of a poll that was replaced are
 * recognised and dropped.
 *
 * curl forbids calling the multi API from inside its callbacks; starts and cancels requested
 * there are deferred until the outermost curl_multi_socket_action returns. */
#include "stream/http_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/mem.h"

struct hc_sock {
    int fd;
    int what; /* CURL_POLL_IN / OUT / INOUT */
    uint32_t gen;
    bool in_use;
    bool armed;
};

struct hc_req {
    struct hc *h;
    CURL *easy;
    struct curl_slist *hdrs;
    char *body;
    struct hc_callbacks cb;
    void *ctx;
    bool added;
    bool cancelled;
    bool responded;
    int64_t retry_after_ms;
    struct hc_req *next; /* deferred start/cancel lists */
    char err[CURL_ERROR_SIZE];
};

struct hc {
    struct loop *l;
    CURLM *multi;
    uint8_t op;
    struct timer timer;
    struct hc_sock *socks;
    uint32_t nsocks;
    unsigned active;
    int depth; /* > 0 while inside curl */
    struct hc_req *to_add;
    struct hc_req *to_free;
};

static void process_deferred(struct hc *h);
static void check_done(struct hc *h);

/* ---- polls ---- */

static void arm_poll(struct hc *h, uint32_t idx)
{
    struct hc_sock *s = &h->socks[idx];
    unsigned mask = 0;
    if (s->what & CURL_POLL_IN)
        mask |= POLLIN;
    if (s->what & CURL_POLL_OUT)
        mask |= POLLOUT;
    s->gen = (s->gen + 1) & 0xFFFFFF;
    io_uring_prep_poll_add(loop_sqe(h->l, loop_ud(h->op, s->gen, idx)), s->fd, mask);
    s->armed = true;
}

static void cancel_poll(struct hc *h, uint32_t idx)
{
    struct hc_sock *s = &h->socks[idx];
    if (!s->armed)
        return;
    struct io_uring_sqe *sqe = loop_sqe(h->l, loop_ud(h->op, 0xFFFFFF, 0xFFFFFFFF));
    io_uring_prep_poll_remove(sqe, loop_ud(h->op, s->gen, idx));
    s->armed = false;
}

static uint32_t sock_alloc(struct hc *h)
{
    for (uint32_t i = 0; i < h->nsocks; i++)
        if (!h->socks[i].in_use)
            return i;
    uint32_t n = h->nsocks ? 2 * h->nsocks : 64;
    h->socks = xrealloc(h->socks, n * sizeof(*h->socks));
    memset(h->socks + h->nsocks, 0, (n - h->nsocks) * sizeof(*h->socks));
    uint32_t idx = h->nsocks;
    h->nsocks = n;
    return idx;
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    struct hc *h = userp;
    uintptr_t slot = (uintptr_t)socketp; /* index + 1; 0 = none yet */
    if (what == CURL_POLL_REMOVE) {
        if (slot) {
            cancel_poll(h, (uint32_t)(slot - 1));
            h->socks[slot - 1].in_use = false;
            curl_multi_assign(h->multi, fd, NULL);
        }
        return 0;
    }
    uint32_t idx;
    if (!slot) {
        idx = sock_alloc(h);
        h->socks[idx].in_use = true;
        h->socks[idx].fd = fd;
        curl_multi_assign(h->multi, fd, (void *)(uintptr_t)(idx + 1));
    } else {
        idx = (uint32_t)(slot - 1);
    }
    struct hc_sock *s = &h->socks[idx];
    if (s->armed && s->what == what)
        return 0;
    cancel_poll(h, idx);
    s->what = what;
    arm_poll(h, idx);
    return 0;
}

static void action(struct hc *h, curl_socket_t fd, int ev)
{
    int running;
    h->depth++;
    curl_multi_socket_action(h->multi, fd, ev, &running);
    h->depth--;
    if (!h->depth) {
        check_done(h);
        process_deferred(h);
    }
}

static void on_poll(struct loop *l, struct io_uring_cqe *cqe, void *ctx)
{
    (void)l;
    struct hc *h = ctx;
    uint32_t idx = loop_ud_idx(cqe->user_data);
    if (idx >= h->nsocks)
        return; /* a poll_remove's own completion */
    struct hc_sock *s = &h->socks[idx];
    if (!s->in_use || !s->armed || s->gen != loop_ud_gen(cqe->user_data))
        return; /* replaced or removed */
    s->armed = false;
    int ev = 0;
    if (cqe->res < 0) {
        ev = CURL_CSELECT_ERR;
    } else {
        if (cqe->res & (POLLIN | POLLHUP))
            ev |= CURL_CSELECT_IN;
        if (cqe->res & POLLOUT)
            ev |= CURL_CSELECT_OUT;
        if (cqe->res & POLLERR)
            ev |= CURL_CSELECT_ERR;
    }
    int fd = s->fd;
    action(h, fd, ev);
    s = &h->socks[idx];
    if (!s->in_use || s->fd != fd)
        return;
    /* Still wanted and not re-armed by curl's socket callback: wait again (level-triggered). */
    if (!s->armed)
        arm_poll(h, idx);
}

/* ---- timer ---- */

static void on_timer(struct loop *l, struct timer *t)
{
    (void)l;
    struct hc *h = (struct hc *)((char *)t - offsetof(struct hc, timer));
    action(h, CURL_SOCKET_TIMEOUT, 0);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct hc *h = userp;
    if (timeout_ms < 0)
        timer_disarm(h->l, &h->timer);
    else /* 0 = "soon": the timer runs in this or the next loop turn, outside this callback */
        timer_arm(h->l, &h->timer, loop_now_ms(h->l) + (uint64_t)timeout_ms, on_timer);
    return 0;
}

/* ---- transfers ---- */

static size_t header_cb(char *p, size_t size, size_t n, void *userdata)
{
    struct hc_req *r = userdata;
    size_t len = size * n;
    if (r->cancelled)
        return 0;
    if (len > 12 && strncasecmp(p, "retry-after:", 12) == 0 && !r->responded) {
        char v[64];
        size_t vl = len - 12 < sizeof(v) - 1 ? len - 12 : sizeof(v) - 1;
        memcpy(v, p + 12, vl);
        v[vl] = '\0';
        char *end;
        long secs = strtol(v, &end, 10);
        int64_t ms = -1;
        if (end != v && secs >= 0)
            ms = (int64_t)(secs > 86400 ? 86400 : secs) * 1000; /* a day is "never" enough */
        else if ((secs = (long)curl_getdate(v, NULL)) > 0)
            ms = ((int64_t)secs - (int64_t)time(NULL)) * 1000;
        r->retry_after_ms = ms < 0 ? 0 : ms;
    }
    if (len <= 2 && (p[0] == '\r' || p[0] == '\n')) {
        long status = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 100 && status < 200)
            return len; /* interim response: the real one follows */
        r->responded = true;
        if (r->cb.on_response && r->cb.on_response(r->ctx, (int)status, r->retry_after_ms) != 0)
            return 0;
    }
    return len;
}

static size_t write_cb(char *p, size_t size, size_t n, void *userdata)
{
    struct hc_req *r = userdata;
    size_t len = size * n;
    if (r->cancelled)
        return 0;
    if (r->cb.on_body && r->cb.on_body(r->ctx, p, len) != 0)
        return 0;
    return len;
}

static void req_free(struct hc_req *r)
{
    if (r->easy) {
        if (r->added) {
            curl_multi_remove_handle(r->h->multi, r->easy);
            r->h->active--;
        }
        curl_easy_cleanup(r->easy);
    }
    curl_slist_free_all(r->hdrs);
    xfree(r->body);
    xfree(r);
}

static int map_result(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return HC_OK;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
        return HC_CONNECT_FAILED;
    case CURLE_OPERATION_TIMEDOUT:
        return HC_TIMEOUT;
    case CURLE_WRITE_ERROR:
    case CURLE_ABORTED_BY_CALLBACK:
        return HC_ABORTED;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return HC_IO;
    default:
        return HC_OTHER;
    }
}

static void check_done(struct hc *h)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct hc_req *r;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode rc = m->data.result;
        long status = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        if (!r->cancelled && r->cb.on_done) {
            int res = map_result(rc);
            const char *msg = r->err[0] ? r->err : curl_easy_strerror(rc);
            r->cb.on_done(r->ctx, res, (int)status, res == HC_OK ? "" : msg);
        }
        if (!r->cancelled)
            req_free(r);
        /* a cancelled request sits on to_free and is released in process_deferred */
    }
}

/* Returns false (r freed, no callback) when curl refuses the transfer. */
static bool add_now(struct hc *h, struct hc_req *r)
{
    if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
        req_free(r);
        return false;
    }
    r->added = true;
    h->active++;
    return true;
}

static void add_deferred(struct hc_req *r)
{
    struct hc_callbacks cb = r->cb;
    void *ctx = r->ctx;
    if (!add_now(r->h, r) && cb.on_done)
        cb.on_done(ctx, HC_OTHER, 0, "curl refused the transfer");
}

static void process_deferred(struct hc *h)
{
    while (h->to_free) {
        struct hc_req *r = h->to_free;
        h->to_free = r->next;
        req_free(r);
    }
    while (h->to_add) {
        struct hc_req *r = h->to_add;
        h->to_add = r->next;
        if (r->cancelled) {
            req_free(r);
        } else {
            /* the caller already holds r: it must hear of the refusal */
            add_deferred(r);
        }
    }
}

/* Whether a transfer to url may share a connection (HTTP/2, offered by ALPN over TLS). Plain
 * http:// is HTTP/1.1 here (what vLLM, llama.cpp or Ollama serve): one transfer per connection.
 * There CURLOPT_PIPEWAIT must stay off: with it, a transfer that finds a connection to the host
 * whose protocol curl does not know yet (not connected, or no response head yet - Go servers
 * send it with the first token) waits for it, and once it turns out to be HTTP/1.1 goes on
 * waiting until some transfer on it ends: a whole answer later. */
static bool may_multiplex(const char *url)
{
    return strncasecmp(url, "https://", 8) == 0;
}

static CURL *make_easy(struct hc_req *r, const struct hc_request *req)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    /* Removing a transfer whose threaded DNS lookup is still running would otherwise wait for
     * the lookup thread (curl #2975): the whole worker would stall on a slow resolver. */
    curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->err);
    bool mux = may_multiplex(req->url);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     mux ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
    /* Over TLS, waiting for the first connection's ALPN answer saves opening one connection per
     * stream to an HTTP/2 provider. Known weakness: an HTTP/1.1 answer wakes one waiter, whose
     * own connection's answer wakes the next, so a burst to an HTTPS HTTP/1.1-only server
     * connects one TLS handshake after another (handshakes, never whole answers). */
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, mux ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)req->connect_timeout_ms);
    if (req->total_timeout_ms)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->total_timeout_ms);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
    if (req->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
    return e;
}

/* Start a transfer; see the header. */
struct hc_req *hc_start(struct hc *h, const struct hc_request *req, const struct hc_callbacks *cb,
                        void *ctx)
{
    struct hc_req *r = xcalloc(1, sizeof(*r));
    r->h = h;
    r->cb = *cb;
    r->ctx = ctx;
    r->retry_after_ms = -1;
    for (const char *const *hd = req->headers; hd && *hd; hd++)
        r->hdrs = curl_slist_append(r->hdrs, *hd);
    /* curl adds "Expect: 100-continue" to large POSTs, costing a round trip. */
    r->hdrs = curl_slist_append(r->hdrs, "Expect:");
    if (req->body)
        r->body = xstrndup(req->body, req->body_len);
    r->easy = make_easy(r, req);
    if (!r->easy) {
        req_free(r);
        return NULL;
    }
    if (h->depth) {
        r->next = h->to_add;
        h->to_add = r;
        return r;
    }
    return add_now(h, r) ? r : NULL;
}

/* Cancel a transfer; no callback runs for it afterwards. */
void hc_cancel(struct hc_req *r)
{
    if (!r || r->cancelled)
        return;
    struct hc *h = r->h;
    r->cancelled = true;
    if (h->depth) {
        if (r->added) { /* removed once curl has returned */
            r->next = h->to_free;
            h->to_free = r;
        } /* else it is on to_add and is freed there */
        return;
    }
    if (!r->added) {
        /* still on to_add (cancelled from on_done of another transfer): freed there */
        return;
    }
    req_free(r);
}

unsigned hc_active(const struct hc *h)
{
    return h->active;
}

/* Create the client of one worker; see the header. */
struct hc *hc_create(struct loop *l, uint8_t op_poll)
{
    struct hc *h = xcalloc(1, sizeof(*h));
    h->l = l;
    h->op = op_poll;
    h->multi = curl_multi_init();
    if (!h->multi) {
        xfree(h);
        return NULL;
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    /* N transfers at once to an HTTP/1.1 host need N connections: no per-host or total limit,
     * which would park the rest in curl's pending queue until a transfer ends. MAXCONNECTS only
     * bounds the connection cache (idle ones kept for reuse, the oldest closed beyond it). */
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, 4096L);
    loop_set_handler(l, op_poll, on_poll, h);
    return h;
}

void hc_destroy(struct hc *h)
{
    if (!h)
        return;
    process_deferred(h);
    timer_disarm(h->l, &h->timer);
    /* Transfers still running belong to callers that are being torn down with the worker. */
    curl_multi_cleanup(h->multi);
    xfree(h->socks);
    xfree(h);
}
