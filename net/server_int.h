/* server_int.h - internals shared by server.c (workers, accept, I/O, teardown), http_serve.c
 * (HTTP requests and the upgrade) and ws_conn.c (WebSocket frames). Not for other modules. */
#ifndef TRILEMMA_NET_SERVER_INT_H
#define TRILEMMA_NET_SERVER_INT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>

#include "net/metrics.h"
#include "net/server.h"
#include "net/static_files.h"
#include "net/ws_frame.h"

enum conn_op {
    OP_ACCEPT = 1,
    OP_RECV,
    OP_SEND,
    OP_CANCEL, /* completions of cancel requests: ignored */
    OP_WAKE,   /* eventfd read: drain requested */
    OP_ACCEPT_ADMIN,
    /* modules (curl polls, libpq, the journal) take theirs with loop_op_alloc */
    OP__NET_END,
};
_Static_assert((int)OP__NET_END <= (int)LOOP_NET_OPS,
               "net/'s op codes must stay below LOOP_NET_OPS");

enum conn_state {
    CS_HTTP,    /* reading request heads */
    CS_WS,      /* WebSocket open */
    CS_CLOSING, /* close frame sent or being sent; waiting for the flush / the peer's close */
    CS_DEAD,    /* torn down; waiting for in-flight requests before the slot is released */
};

struct conn {
    struct worker *w;
    int fd;
    uint32_t idx;
    uint32_t gen;
    enum conn_state state;
    bool recv_armed;
    bool send_inflight;
    bool dirty;             /* on the worker's flush list */
    bool close_after_flush; /* tear down once the queued output is written */
    bool close_sent;
    bool close_received;
    bool opened;     /* on_open was called: on_close is owed */
    bool reset;      /* abortive close (RST) */
    bool keep_alive; /* HTTP: keep the connection after this response */
    bool counted_ip;
    bool counted_global; /* holds one of max_connections (refused ones do not) */
    bool refused;        /* waits for its request head to be answered 503 (s->refused_open) */
    bool admin;          /* accepted on the admin listener: /healthz, /readyz, /metrics only */
    bool via_proxy;      /* the TCP peer is a trusted proxy: the client comes from each request */
    bool want_writable;  /* on_writable is owed once the queue is down to half the limit */
    int refuse_status;   /* answer every request with this status (connection limits) */
    bool http_streaming; /* a chunked response is being written by the application */
    bool http_deferred;  /* the application answers later (conn_http_defer) */
    bool head_request;   /* the request being answered is HEAD: headers only */
    size_t http_last_len;
    struct buf rbuf;     /* HTTP: request head bytes until complete */
    struct buf msg;      /* WS: a message that spans several receives */
    struct buf out;      /* queued, not yet handed to the kernel */
    struct buf inflight; /* handed to the kernel by the send in flight */
    struct ws_parser wsp;
    struct timer timer; /* handshake / keep-alive deadline, then ping+idle tick, then close */
    uint64_t last_rx_ms;
    uint64_t last_ping_ms;
    struct conn *next_dirty;
    void *app;
    struct in6_addr peer; /* the client (IPv4 as v4-mapped): TCP peer, or X-Forwarded-For */
    char peer_str[48];
};

struct worker {
    struct server *s;
    int index;
    pthread_t thread;
    struct loop *loop;
    int listen_fd;
    uint16_t bound_port;
    int admin_fd; /* -1 when none or closed */
    uint16_t admin_bound_port;
    uint32_t nadmin; /* admin connections among nconns */
    int wake_fd;
    uint64_t wake_val;
    bool accepting;
    bool draining;
    bool drain_deadline_passed;
    bool stop_forced; /* drain: the application's may_stop is no longer waited for */
    struct timer drain_timer;
    struct timer accept_timer;
    struct timer admin_timer;
    void *app;

    struct conn **conns; /* slot table: index -> conn (NULL when free) */
    uint32_t *gens;      /* generation of each slot */
    uint32_t nslots;
    uint32_t *free_idx;
    uint32_t nfree;
    uint32_t nconns;
    struct conn *dirty_head;
    struct net_metrics m;

    atomic_int started; /* 1 listening, -errno failed */
    /* Cross-thread readers (/metrics, /readyz) hold this for reading while they look at the
     * worker's loop and application state; the worker takes it for writing around tearing them
     * down. Never taken on the worker's own hot path. */
    pthread_rwlock_t life;
    bool alive;
};

struct ip_table;

struct server {
    struct server_conf conf;
    struct server_hooks hooks;
    struct static_files *web;
    struct worker *workers;
    int nworkers;
    atomic_bool draining;
    atomic_uint conns_total_open; /* connections holding a slot of max_connections */
    atomic_uint refused_open;     /* refused connections waiting for their 503 */
    struct ip_table *ips;
};

/* conn_limits.c: the per-IP table and admission (docs/net.md, "Admission") */
struct ip_table *ip_table_create(void);
void ip_table_destroy(struct ip_table *t);
/* Count one more connection from addr; false (nothing counted) when that passes limit. */
bool ip_acquire(struct ip_table *t, const struct in6_addr *addr, uint32_t limit);
void ip_release(struct ip_table *t, const struct in6_addr *addr);
/* How many connections one address may hold now (max_connections_per_ip, or
 * SERVER_RESERVE_IP_MAX within the reserve). */
uint32_t ip_limit(struct server *s);
/* Take the slots a new connection needs (c->counted_global, c->counted_ip); false = refused. */
bool conn_admit(struct conn *c);

/* server.c */
void conn_teardown(struct conn *c);
void conn_mark_dirty(struct conn *c);
void conn_queue(struct conn *c, const void *p, size_t n);
void conn_arm_timer(struct conn *c, uint64_t delay_ms, timer_fn fn);
void conn_close_after_flush(struct conn *c);
void conn_attribute_client(struct conn *c, const struct http_request *req);

/* http_serve.c */
void http_on_data(struct conn *c, const uint8_t *p, size_t n);
void http_resume(struct conn *c);
void http_deadline(struct loop *l, struct timer *t);
void http_respond(struct conn *c, int status, const char *ctype, const char *body, size_t len,
                  const char *extra_headers);
void http_error(struct conn *c, int status, const char *code, const char *message,
                const char *extra_headers);

/* ws_conn.c */
void ws_conn_open(struct conn *c);
void ws_on_data(struct conn *c, uint8_t *p, size_t n);
void ws_send_frame(struct conn *c, uint8_t opcode, const void *payload, size_t len);
void ws_fail(struct conn *c, uint16_t code, const char *reason);
void ws_tick(struct loop *l, struct timer *t);

#endif
