/* server.h - the WebSocket/HTTP server: N share-nothing workers, each with its own ring,
 * SO_REUSEPORT listener, connections and timers. Knows HTTP and RFC 6455, nothing about chat:
 * the application plugs in through server_hooks.
 *
 * Threading: every hook runs on the worker thread that owns the connection; a connection never
 * moves between workers. Only server_start/server_wait/server_drain are called from outside. */
#ifndef TRILEMMA_NET_SERVER_H
#define TRILEMMA_NET_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/cidr.h"
#include "net/http_parser.h"
#include "net/loop.h"

struct server;
struct worker;
struct conn;

/* Within the connection reserve, an address may hold at most this many connections (a browser:
 * a WebSocket and a few keep-alive page loads). */
#define SERVER_RESERVE_IP_MAX 8
/* Admin connections (server_conf.admin_host) a worker keeps at once; more are closed at once. */
#define SERVER_ADMIN_CONNS_MAX 64

/* What the server needs of the configuration (app/ fills it: config_server). */
struct server_conf {
    char listen_host[256]; /* "0.0.0.0", "::1", a name */
    uint16_t listen_port;  /* 0 = the kernel's choice (server_port tells) */
    int workers;           /* 0 = one per CPU */
    char web_root[1024];   /* static files */
    /* /healthz, /readyz and /metrics only, on every worker (SO_REUSEPORT), outside the client
     * limits below; "" = no admin listener. Port 0 = the kernel's choice (server_admin_port). */
    char admin_host[256];
    uint16_t admin_port;
    uint32_t max_connections;
    uint32_t max_connections_per_ip;
    /* the last connection_reserve slots of max_connections go only to addresses holding fewer
     * than SERVER_RESERVE_IP_MAX connections, so that a few heavy addresses cannot fill them */
    uint32_t connection_reserve;
    uint32_t max_header_bytes;        /* request head limit (431 above) */
    uint32_t handshake_timeout_ms;    /* the whole HTTP request head must arrive within */
    uint32_t drain_timeout_ms;        /* SIGTERM: running work may finish within */
    struct cidr_list trusted_proxies; /* X-Forwarded-For is believed from these */
    uint32_t max_message_bytes;       /* WebSocket message limit (1009 above) */
    uint32_t ping_interval_ms;
    uint32_t idle_timeout_ms;      /* no frame at all from the client */
    uint32_t close_timeout_ms;     /* wait for the peer's close reply */
    uint32_t outbound_limit_bytes; /* queued unsent bytes per connection (1008 above) */
    const void *app; /* the application's own configuration, for its hooks (server_app) */
};

/* How on_upgrade refuses a WebSocket upgrade. */
struct upgrade_reply {
    int status;          /* e.g. 401, 403 */
    const char *code;    /* short machine-readable code for the JSON body */
    const char *message; /* human-readable message */
    const char *headers; /* extra header lines, each ending in "\r\n", or NULL */
};

struct server_hooks {
    /* Per-worker application state, created on the worker thread. */
    void *(*worker_init)(struct worker *w);
    void (*worker_fini)(struct worker *w, void *state);
    /* Decide on an upgrade to /ws that is valid per RFC 6455. Return 0 to accept, or fill r and
     * return -1 to refuse. */
    int (*on_upgrade)(struct conn *c, const struct http_request *req, struct upgrade_reply *r);
    /* The 101 response is queued; the connection is a WebSocket now. */
    void (*on_open)(struct conn *c);
    /* One complete, UTF-8-valid text message. `text` is writable and valid during the call. */
    void (*on_message)(struct conn *c, char *text, size_t len);
    /* The WebSocket is gone (closed by either side, failed, or reset). No call follows and the
     * application must drop every reference to c before returning. */
    void (*on_close)(struct conn *c);
    /* A WebSocket that asked with conn_want_writable has at most half of outbound_limit_bytes
     * queued again (a send completed). Lets a long burst follow the client's reading instead
     * of passing the limit. */
    void (*on_writable)(struct conn *c);
    /* Drain started on this worker: the application closes what it can (conn_close 1001). */
    void (*on_drain)(struct worker *w);
    /* Drain, and the worker's last connection is gone: may the worker stop now? Return false
     * while the application still has work that must finish first (turns being written to a
     * database); it is asked again after every loop turn (each completion wakes the loop) until
     * it says true, at the latest until close_timeout_ms after the drain deadline, when the
     * worker stops anyway. NULL: stop at once. */
    bool (*may_stop)(struct worker *w);
    /* Append application metrics (Prometheus text) for the whole process. */
    void (*metrics)(struct server *s, struct buf *out);
    /* Any HTTP request that net/ does not answer itself (everything but /ws, /healthz, /readyz,
     * /metrics; static files are served only when this hook is NULL or returns false). The body
     * (Content-Length framing, at most max_body bytes of server_hooks) is complete. Answer with
     * conn_http_reply, or start a streamed response with conn_http_stream_start. Returning false
     * lets net/ go on (static files, then 404). */
    bool (*on_request)(struct conn *c, const struct http_request *req, const char *body,
                       size_t len);
    /* A connection with a streamed or deferred HTTP response went away before it was done. */
    void (*on_http_close)(struct conn *c);
    /* Readiness beyond draining: append "name: state" lines to out and return false when the
     * process should receive no new traffic (e.g. storage refusing new turns). */
    bool (*ready)(struct server *s, struct buf *out);
    /* Largest request body accepted (413 above); 0 = bodies are refused. */
    size_t max_body;
};

/* Create the server from the configuration. Listening sockets are opened by the workers.
 * Returns NULL on failure (logged). */
struct server *server_create(const struct server_conf *conf, const struct server_hooks *hooks);
void server_destroy(struct server *s);

/* Start the worker threads; returns 0 once every worker listens, or -errno. */
int server_start(struct server *s);
/* Begin draining (thread-safe, async-signal-unsafe): workers stop accepting, /readyz turns 503,
 * the application is told, and after drain_timeout_ms remaining connections close with 1001. */
void server_drain(struct server *s);
/* Wait until every worker has finished (all connections closed after a drain). */
void server_wait(struct server *s);

bool server_draining(const struct server *s);
uint16_t server_port(const struct server *s);
/* The admin listener's port (the kernel's choice when configured as 0); 0 when there is none. */
uint16_t server_admin_port(const struct server *s);
const struct server_conf *server_config(const struct server *s);
/* The application's configuration given in server_conf.app. */
const void *server_app(const struct server *s);
int server_worker_count(const struct server *s);
struct worker *server_worker(struct server *s, int i);

/* Cross-thread reads of other workers' state (/metrics, /readyz): hold all workers, read only
 * those that are worker_alive (their loop and worker_app are valid while held), release. The
 * workers never take this on their hot path; a worker stopping waits for the readers. */
void server_hold_workers(struct server *s);
void server_release_workers(struct server *s);
bool worker_alive(const struct worker *w);

/* Worker accessors. */
struct loop *worker_loop(struct worker *w);
void *worker_app(struct worker *w);
int worker_index(const struct worker *w);
struct server *worker_server(struct worker *w);
uint32_t worker_conn_count(const struct worker *w);

/* Connection verbs (worker thread only). */
struct worker *conn_worker(struct conn *c);
void *conn_app(struct conn *c);
void conn_set_app(struct conn *c, void *app);
/* Queue a text message (one frame). Returns 0, or -EPIPE if the connection is closing, or
 * -ENOBUFS if the outbound limit was passed (the connection is then being closed with 1008). */
int conn_send_text(struct conn *c, const char *text, size_t len);
/* Start the close handshake with code and reason (reason <= 123 bytes). Further sends fail. */
void conn_close(struct conn *c, uint16_t code, const char *reason);
bool conn_is_open(const struct conn *c);
/* The peer's address as text ("127.0.0.1", "::1"). */
const char *conn_peer(const struct conn *c);
/* Bytes queued for the peer and not yet written to the socket. */
size_t conn_queued(const struct conn *c);
/* Ask for one on_writable call once conn_queued is at most half of outbound_limit_bytes. Only
 * while something is queued: the completion of its send makes the call. */
void conn_want_writable(struct conn *c);

/* ---- HTTP responses from on_request ---- */

/* The answer comes later (after an asynchronous read): no further request on this connection
 * is served until conn_http_reply (or conn_http_stream_start, then conn_http_stream_end);
 * on_http_close runs if the client leaves first. */
void conn_http_defer(struct conn *c);
/* A complete response. extra_headers: lines each ending in "\r\n", or NULL. */
void conn_http_reply(struct conn *c, int status, const char *content_type, const char *body,
                     size_t len, const char *extra_headers);
/* Start a chunked (HTTP/1.1) response whose body follows in conn_http_stream_write calls. */
void conn_http_stream_start(struct conn *c, int status, const char *content_type,
                            const char *extra_headers);
/* One chunk of the streamed body (sent at the end of this loop turn). */
void conn_http_stream_write(struct conn *c, const char *data, size_t len);
/* The last chunk; the connection then serves its next request (keep-alive) or closes. */
void conn_http_stream_end(struct conn *c);
/* Drop the connection now (abortive: the peer sees a reset mid-response). */
void conn_abort(struct conn *c);

#endif
