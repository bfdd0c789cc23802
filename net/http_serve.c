/* http_serve.c - HTTP/1.1 on a connection before it becomes a WebSocket: request heads are
 * collected (bounded by max_header_bytes and the handshake deadline), parsed, and answered from
 * the small built-in endpoints, the static files, or upgraded at /ws. Requests with a body are
 * refused: nothing here takes one. */
#include "net/server_int.h"

#include <stdio.h>
#include <string.h>

#include "net/ws_handshake.h"

static const char *status_text(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 529:
        return "Site Overloaded";
    default:
        return "Unknown";
    }
}

/* On every response: the browser takes Content-Type as sent (no sniffing a JSON error or a
 * text/plain metric into HTML or script), and no page of ours leaks its URL to other sites. */
#define SECURITY_HEADERS "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"

/* As http_respond, with the Cache-Control value given (static files may be cached). */
static void respond_cached(struct conn *c, int status, const char *ctype, const char *body,
                           size_t len, const char *extra_headers, const char *cache)
{
    char head[2048], clen[48] = "";
    /* RFC 9110 8.6: a 304 carries no Content-Length (it would describe a body not sent) */
    if (status != 304)
        snprintf(clen, sizeof(clen), "Content-Length: %zu\r\n", len);
    int n =
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nServer: trilemma\r\nContent-Type: %s\r\n"
                 "%sCache-Control: %s\r\n" SECURITY_HEADERS "%s%s\r\n",
                 status, status_text(status), ctype, clen, cache,
                 extra_headers ? extra_headers : "", c->keep_alive ? "" : "Connection: close\r\n");
    if (n < 0 || (size_t)n >= sizeof(head)) { /* extra headers are ours: a bug, not input */
        conn_abort(c);
        return;
    }
    conn_queue(c, head, (size_t)n);
    /* RFC 9110 9.3.2: the answer to HEAD has the headers of GET and no body */
    if (body && len && !c->head_request && status != 304)
        conn_queue(c, body, len);
    if (!c->keep_alive)
        conn_close_after_flush(c);
}

/* Queue a complete response, never cached. The connection closes after it unless keep_alive is
 * set. */
void http_respond(struct conn *c, int status, const char *ctype, const char *body, size_t len,
                  const char *extra_headers)
{
    respond_cached(c, status, ctype, body, len, extra_headers, "no-store");
}

/* A JSON error body {"error":code,"message":message}; code and message are plain ASCII. */
void http_error(struct conn *c, int status, const char *code, const char *message,
                const char *extra_headers)
{
    char body[512];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"message\":\"%s\"}\n", code, message);
    c->keep_alive = false;
    http_respond(c, status, "application/json", body, (size_t)n, extra_headers);
}

static bool path_is(const struct http_request *req, const char *p)
{
    return req->path_len == strlen(p) && memcmp(req->path, p, req->path_len) == 0;
}

static bool method_is(const struct http_request *req, const char *m)
{
    return req->method_len == strlen(m) && memcmp(req->method, m, req->method_len) == 0;
}

static void serve_metrics(struct conn *c)
{
    struct server *s = c->w->s;
    struct net_metrics *m[s->nworkers];
    struct loop *loops[s->nworkers];
    struct buf out = {0};
    server_hold_workers(s);
    for (int i = 0; i < s->nworkers; i++) {
        m[i] = &s->workers[i].m;
        loops[i] = s->workers[i].alive ? s->workers[i].loop : NULL;
    }
    metrics_render(&out, m, loops, s->nworkers, atomic_load(&s->draining));
    if (s->hooks.metrics)
        s->hooks.metrics(s, &out);
    server_release_workers(s);
    http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", buf_begin(&out),
                 buf_size(&out), NULL);
    buf_free(&out);
}

static void serve_readyz(struct conn *c)
{
    struct server *s = c->w->s;
    struct buf detail = {0};
    bool ok = !atomic_load(&s->draining);
    server_hold_workers(s);
    if (ok && s->hooks.ready && !s->hooks.ready(s, &detail))
        ok = false;
    server_release_workers(s);
    struct buf out = {0};
    buf_printf(&out, "%s\n", atomic_load(&s->draining) ? "draining" : ok ? "ready" : "not ready");
    buf_append(&out, buf_begin(&detail), buf_size(&detail));
    http_respond(c, ok ? 200 : 503, "text/plain; charset=utf-8", buf_begin(&out), buf_size(&out),
                 NULL);
    buf_free(&out);
    buf_free(&detail);
}

static void serve_static(struct conn *c, const struct http_request *req)
{
    const struct static_file *f = static_files_find(c->w->s->web, req->path, req->path_len);
    if (!f) {
        http_error(c, 404, "not_found", "no such path", NULL);
        return;
    }
    const struct http_header *inm = http_find_header(req, "If-None-Match");
    char extra[1024];
    snprintf(extra, sizeof(extra), "ETag: %s\r\n%s", f->etag, f->headers);
    /* /widget.js?v=<its version> names these exact bytes: cached for good; any other URL of a
     * file may change under it, so caches revalidate (a 304 against the ETag) */
    const char *cache = static_file_versioned(f, req->query, req->query_len)
                            ? "public, max-age=31536000, immutable"
                            : "no-cache";
    if (inm && inm->value_len == strlen(f->etag) && !memcmp(inm->value, f->etag, inm->value_len)) {
        respond_cached(c, 304, f->type, NULL, 0, extra, cache);
        return;
    }
    respond_cached(c, 200, f->type, f->data, f->len, extra, cache);
}

static void upgrade_refused(struct conn *c, enum ws_upgrade_check chk)
{
    metric_add(&c->w->m.errors[NERR_UPGRADE_INVALID], 1);
    switch (chk) {
    case WS_UPGRADE_NOT_GET:
        http_error(c, 405, "method_not_allowed", "WebSocket upgrade needs GET", "Allow: GET\r\n");
        break;
    case WS_UPGRADE_BAD_VERSION:
        http_error(c, 426, "unsupported_version", "only WebSocket version 13 is supported",
                   "Sec-WebSocket-Version: 13\r\n");
        break;
    case WS_UPGRADE_NO_UPGRADE:
        http_error(c, 426, "upgrade_required", "this endpoint needs a WebSocket upgrade",
                   "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
        break;
    case WS_UPGRADE_BAD_KEY:
        http_error(c, 400, "bad_key", "missing or malformed Sec-WebSocket-Key", NULL);
        break;
    case WS_UPGRADE_NOT_HTTP11:
        http_error(c, 400, "bad_version", "WebSocket upgrade needs HTTP/1.1", NULL);
        break;
    default:
        http_error(c, 400, "bad_request", "missing Host header", NULL);
        break;
    }
}

/* Returns true when the connection became a WebSocket. */
static bool serve_upgrade(struct conn *c, const struct http_request *req)
{
    struct server *s = c->w->s;
    enum ws_upgrade_check chk = ws_upgrade_check(req);
    if (chk != WS_UPGRADE_OK) {
        upgrade_refused(c, chk);
        return false;
    }
    if (atomic_load(&s->draining)) {
        http_error(c, 503, "draining", "the server is shutting down", "Retry-After: 1\r\n");
        return false;
    }
    struct upgrade_reply r = {0};
    if (s->hooks.on_upgrade && s->hooks.on_upgrade(c, req, &r) < 0) {
        metric_add(&c->w->m.errors[NERR_UPGRADE_REFUSED], 1);
        http_error(c, r.status ? r.status : 403, r.code ? r.code : "forbidden",
                   r.message ? r.message : "refused", r.headers);
        return false;
    }
    const struct http_header *key = http_find_header(req, "Sec-WebSocket-Key");
    char accept[WS_ACCEPT_LEN + 1];
    ws_accept_key(key->value, key->value_len, accept);
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    conn_queue(c, head, (size_t)n);
    ws_conn_open(c);
    return true;
}

/* Body length from Content-Length: 0 when absent, -1 when malformed or chunked (refused). */
static long long body_length(const struct http_request *req)
{
    if (http_find_header(req, "Transfer-Encoding"))
        return -1;
    if (http_count_header(req, "Content-Length") > 1)
        return -1;
    const struct http_header *cl = http_find_header(req, "Content-Length");
    if (!cl)
        return 0;
    if (cl->value_len == 0 || cl->value_len > 12)
        return -1;
    long long n = 0;
    for (size_t i = 0; i < cl->value_len; i++) {
        if (cl->value[i] < '0' || cl->value[i] > '9')
            return -1;
        n = n * 10 + (cl->value[i] - '0');
    }
    return n;
}

static void set_keep_alive(struct conn *c, const struct http_request *req)
{
    const struct http_header *h = http_find_header(req, "Connection");
    if (req->minor_version == 1)
        c->keep_alive = !(h && http_has_token(h->value, h->value_len, "close"));
    else
        c->keep_alive = h && http_has_token(h->value, h->value_len, "keep-alive");
}

/* /healthz, /readyz and /metrics (GET or HEAD). Returns false for any other request. */
static bool serve_probe(struct conn *c, const struct http_request *req)
{
    if (!method_is(req, "GET") && !method_is(req, "HEAD"))
        return false;
    if (path_is(req, "/healthz"))
        http_respond(c, 200, "text/plain; charset=utf-8", "ok\n", 3, NULL);
    else if (path_is(req, "/readyz"))
        serve_readyz(c);
    else if (path_is(req, "/metrics"))
        serve_metrics(c);
    else
        return false;
    return true;
}

/* The admin listener serves the probes and nothing else: no WebSocket, no application, no
 * files. */
static void serve_admin(struct conn *c, const struct http_request *req)
{
    if (serve_probe(c, req))
        return;
    if (path_is(req, "/healthz") || path_is(req, "/readyz") || path_is(req, "/metrics"))
        http_error(c, 405, "method_not_allowed", "only GET and HEAD are served here",
                   "Allow: GET, HEAD\r\n");
    else
        http_error(c, 404, "not_found", "the admin port serves /healthz, /readyz and /metrics",
                   NULL);
}

static void serve_builtin(struct conn *c, const struct http_request *req, const char *body,
                          size_t len)
{
    struct server *s = c->w->s;
    bool get = method_is(req, "GET"), head = method_is(req, "HEAD");
    if (serve_probe(c, req)) {
        return;
    } else if (s->hooks.on_request && s->hooks.on_request(c, req, body, len)) {
        return; /* answered (or streaming) by the application */
    } else if (!get && !head) {
        http_error(c, 405, "method_not_allowed", "only GET and HEAD are served here",
                   "Allow: GET, HEAD\r\n");
    } else {
        serve_static(c, req);
    }
}

/* Answer one parsed request whose body (if any) is complete. Returns true if the connection
 * is now a WebSocket. */
static bool serve_request(struct conn *c, const struct http_request *req, const char *body,
                          size_t len)
{
    metric_add(&c->w->m.http_requests, 1);
    set_keep_alive(c, req);
    c->head_request = method_is(req, "HEAD");
    /* RFC 9112 3.2: an HTTP/1.1 request without Host, or any request with two, gets 400. */
    size_t hosts = http_count_header(req, "Host");
    if (hosts > 1 || (hosts == 0 && req->minor_version == 1)) {
        metric_add(&c->w->m.errors[NERR_HTTP_BAD_REQUEST], 1);
        http_error(c, 400, "bad_request", "exactly one Host header is required", NULL);
        return false;
    }
    if (c->admin) {
        serve_admin(c, req);
        return false;
    }
    if (c->via_proxy)
        conn_attribute_client(c, req);
    if (c->refuse_status) {
        http_error(c, c->refuse_status, "too_many_connections", "too many connections",
                   "Retry-After: 1\r\n");
        return false;
    }
    if (path_is(req, "/ws")) {
        if (len) {
            http_error(c, 400, "bad_request", "a WebSocket upgrade has no body", NULL);
            return false;
        }
        return serve_upgrade(c, req);
    }
    serve_builtin(c, req, body, len);
    return false;
}

/* Parse and answer the requests in rbuf, one at a time. Returns false when waiting. */
static bool next_request(struct conn *c)
{
    const struct server_conf *conf = &c->w->s->conf;
    struct http_request req;
    size_t avail = buf_size(&c->rbuf);
    int r = http_parse_request(buf_begin(&c->rbuf), avail, c->http_last_len, &req);
    if (r == HTTP_PARSE_INCOMPLETE) {
        c->http_last_len = avail;
        if (avail > conf->max_header_bytes) {
            metric_add(&c->w->m.errors[NERR_HTTP_HEADER_TOO_LARGE], 1);
            http_error(c, 431, "header_too_large", "request head too large", NULL);
        }
        return false;
    }
    if (r < 0 || (size_t)r > conf->max_header_bytes) {
        bool big = r == HTTP_PARSE_TOO_MANY || r > 0;
        metric_add(&c->w->m.errors[big ? NERR_HTTP_HEADER_TOO_LARGE : NERR_HTTP_BAD_REQUEST], 1);
        if (big)
            http_error(c, 431, "header_too_large", "request head too large", NULL);
        else
            http_error(c, 400, "bad_request", "malformed HTTP request", NULL);
        return false;
    }
    long long blen = body_length(&req);
    if (blen < 0 || (blen > 0 && (size_t)blen > c->w->s->hooks.max_body)) {
        metric_add(&c->w->m.errors[NERR_HTTP_BAD_REQUEST], 1);
        if (blen < 0)
            http_error(c, 411, "length_required", "a body needs one valid Content-Length", NULL);
        else
            http_error(c, 413, "body_too_large", "request body too large or not accepted", NULL);
        return false;
    }
    if (avail < (size_t)r + (size_t)blen) {
        c->http_last_len = 0; /* re-parsed whole once the body is in */
        return false;
    }
    c->http_last_len = 0;
    timer_disarm(c->w->loop, &c->timer); /* a request is being served */
    bool upgraded = serve_request(c, &req, buf_begin(&c->rbuf) + r, (size_t)blen);
    buf_consume(&c->rbuf, (size_t)r + (size_t)blen);
    if (upgraded) {
        /* Frames the client sent right behind its request head. */
        struct buf rest = c->rbuf;
        c->rbuf = (struct buf){0};
        if (buf_size(&rest))
            ws_on_data(c, (uint8_t *)buf_begin(&rest), buf_size(&rest));
        buf_free(&rest);
        return false;
    }
    if (c->state == CS_HTTP && !c->close_after_flush && !c->http_streaming && !c->http_deferred)
        conn_arm_timer(c, conf->handshake_timeout_ms, http_deadline);
    return true;
}

/* Bytes arrived on a connection in the HTTP state. */
void http_on_data(struct conn *c, const uint8_t *p, size_t n)
{
    if (c->close_after_flush)
        return; /* answered already; the rest is ignored until the close */
    const struct server_conf *conf = &c->w->s->conf;
    /* Requests pipelined behind one still being answered wait in rbuf: bounded. */
    if (buf_size(&c->rbuf) + n > (size_t)conf->max_header_bytes + c->w->s->hooks.max_body +
                                     (size_t)conf->outbound_limit_bytes) {
        metric_add(&c->w->m.errors[NERR_HTTP_HEADER_TOO_LARGE], 1);
        conn_abort(c);
        return;
    }
    buf_append(&c->rbuf, p, n);
    http_resume(c);
}

/* Serve what is buffered: after new bytes, or after a streamed response ended. */
void http_resume(struct conn *c)
{
    /* A client that pipelines requests without reading the answers is not served further
     * until its answers drain (flush_conn resumes it): output stays bounded. */
    size_t limit = c->w->s->conf.outbound_limit_bytes;
    while (c->state == CS_HTTP && !c->close_after_flush && !c->http_streaming &&
           !c->http_deferred && buf_size(&c->rbuf) && conn_queued(c) < limit && next_request(c))
        ;
    if (!buf_size(&c->rbuf))
        buf_free(&c->rbuf);
}

/* ---- responses for the application ---- */

void conn_http_reply(struct conn *c, int status, const char *content_type, const char *body,
                     size_t len, const char *extra_headers)
{
    if (c->state != CS_HTTP)
        return;
    http_respond(c, status, content_type, body, len, extra_headers);
    if (!c->http_deferred)
        return;
    c->http_deferred = false; /* answered later: serve what the client sent meanwhile */
    if (c->keep_alive && !c->close_after_flush) {
        conn_arm_timer(c, c->w->s->conf.handshake_timeout_ms, http_deadline);
        http_resume(c);
    }
}

void conn_http_defer(struct conn *c)
{
    c->http_deferred = true;
}

void conn_http_stream_start(struct conn *c, int status, const char *content_type,
                            const char *extra_headers)
{
    char head[2048];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nServer: trilemma\r\nContent-Type: %s\r\n"
                     "Transfer-Encoding: chunked\r\nCache-Control: no-store\r\n" SECURITY_HEADERS
                     "%s%s\r\n",
                     status, status_text(status), content_type, extra_headers ? extra_headers : "",
                     c->keep_alive ? "" : "Connection: close\r\n");
    if (n < 0 || (size_t)n >= sizeof(head)) { /* extra headers are the application's: a bug */
        conn_abort(c);
        return;
    }
    conn_queue(c, head, (size_t)n);
    c->http_streaming = true;
    c->http_deferred = false; /* a deferred answer may turn out to be a stream */
}

void conn_http_stream_write(struct conn *c, const char *data, size_t len)
{
    if (!c->http_streaming || c->state != CS_HTTP || !len)
        return;
    char size[24];
    int n = snprintf(size, sizeof(size), "%zx\r\n", len);
    conn_queue(c, size, (size_t)n);
    conn_queue(c, data, len);
    conn_queue(c, "\r\n", 2);
}

void conn_http_stream_end(struct conn *c)
{
    if (!c->http_streaming || c->state != CS_HTTP)
        return;
    conn_queue(c, "0\r\n\r\n", 5);
    c->http_streaming = false;
    if (!c->keep_alive) {
        conn_close_after_flush(c);
        return;
    }
    conn_arm_timer(c, c->w->s->conf.handshake_timeout_ms, http_deadline);
    http_resume(c);
}

void conn_abort(struct conn *c)
{
    c->reset = true;
    conn_teardown(c);
}
