/* floor_relay.c - the yardstick of bench_relay.py: about the least work a WebSocket-to-SSE relay
 * can do per token, so that trilemma's CPU per relayed token can be read as a ratio to it.
 *
 * One thread, level-triggered epoll, plain read/write. It accepts WebSocket clients (enough of
 * RFC 6455 for trilemma-load: unfragmented masked text frames, ping, close), and for each client
 * message it sends one HTTP/1.1 request to the simulated provider's OpenAI SSE endpoint on that
 * client's own keep-alive upstream connection, de-chunks the response, cuts the SSE stream into
 * lines and writes one WebSocket text frame per content token. No JSON parser (the token text is
 * copied as it stands, still JSON-escaped, from the chunk into the delta), no store, no limits,
 * no timers. Everything a token causes leaves in the same epoll turn its bytes arrived in: the
 * frames made from one upstream read go out in one write.
 *
 * Speaks the events trilemma-load counts (docs/protocol.md): session on connect, turn_start,
 * delta (turn_id, seq, text) per token, turn_end with usage.output_tokens at data: [DONE].
 * A benchmark tool, never installed; trusts its peers (the load generator and the simulator on
 * loopback) and drops a connection on anything it does not expect.
 *
 *   floor-relay --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT [--path /v1/chat/completions]
 *               [--model sim-shopper] [--threads N]
 *
 * --threads (default 1) runs N such loops, each with its own SO_REUSEPORT listening socket, as
 * trilemmad's workers do, so that latencies compare on a machine with N cores.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_CAP 16384
#define OUT_CAP 65536
#define LINE_CAP 8192

enum kind { K_LISTEN, K_CLIENT, K_UP };

/* de-chunking states of an upstream response */
enum up_state { UP_IDLE, UP_HEAD, UP_SIZE, UP_DATA, UP_DATA_CRLF, UP_END };

struct client;

struct up {
    enum kind kind;
    int fd;
    struct client *c;
    enum up_state st;
    bool connecting;
    size_t chunk_left;
    char head[4096];
    size_t head_len;
    char line[LINE_CAP]; /* one SSE line (chunk size line while in UP_SIZE) */
    size_t line_len;
    char req[8192]; /* the request while the connect completes */
    size_t req_len;
    struct up *next_dead;
};

struct client {
    enum kind kind;
    int fd;
    bool upgraded;
    bool want_out; /* EPOLLOUT registered */
    char in[IN_CAP];
    size_t in_len;
    char out[OUT_CAP];
    size_t out_len; /* not yet written */
    char turn_id[33];
    uint32_t seq;
    unsigned long tokens;
    struct up *up;
    struct client *next_dead;
};

/* Each thread has its own epoll set, listening socket (SO_REUSEPORT) and connections. */
static __thread int ep;
static struct sockaddr_in up_addr;
static const char *up_path = "/v1/chat/completions";
static const char *model = "sim-shopper";
static __thread uint64_t turn_counter; /* ids: thread index in the top bits */
static volatile sig_atomic_t stop;
/* Closed connections are freed at the end of the epoll turn: events already returned by
 * epoll_wait may still point at them (their fd is -1 by then). */
static __thread struct client *dead_clients;
static __thread struct up *dead_ups;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int parse_addr(const char *s, struct sockaddr_in *a)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static void ep_ctl(int op, int fd, uint32_t events, void *p)
{
    struct epoll_event e = {.events = events, .data.ptr = p};
    epoll_ctl(ep, op, fd, &e);
}

/* ---- client output ---- */

static void client_close(struct client *c);

/* Write what is queued; the rest waits for EPOLLOUT. */
static void client_flush(struct client *c)
{
    size_t off = 0;
    while (off < c->out_len) {
        ssize_t n = write(c->fd, c->out + off, c->out_len - off);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        client_close(c);
        return;
    }
    memmove(c->out, c->out + off, c->out_len - off);
    c->out_len -= off;
    bool want_out = c->out_len != 0;
    if (want_out != c->want_out) { /* a syscall only when the interest changes */
        c->want_out = want_out;
        ep_ctl(EPOLL_CTL_MOD, c->fd, EPOLLIN | (want_out ? EPOLLOUT : 0), c);
    }
}

/* Queue one unmasked server frame; false when the output buffer is full (a slow reader). */
static bool client_frame(struct client *c, uint8_t opcode, const char *a, size_t alen,
                         const char *b, size_t blen, const char *z, size_t zlen)
{
    size_t len = alen + blen + zlen;
    if (c->out_len + len + 4 > OUT_CAP)
        return false;
    char *p = c->out + c->out_len;
    *p++ = (char)(0x80 | opcode);
    if (len < 126) {
        *p++ = (char)len;
    } else {
        *p++ = 126;
        *p++ = (char)(len >> 8);
        *p++ = (char)len;
    }
    memcpy(p, a, alen);
    memcpy(p + alen, b, blen);
    memcpy(p + alen + blen, z, zlen);
    c->out_len = (size_t)(p - c->out) + len;
    return true;
}

static bool client_text(struct client *c, const char *s, size_t n)
{
    return client_frame(c, 1, s, n, NULL, 0, NULL, 0);
}

/* ---- upstream ---- */

static void up_close(struct up *u)
{
    if (!u || u->fd < 0)
        return;
    epoll_ctl(ep, EPOLL_CTL_DEL, u->fd, NULL);
    close(u->fd);
    u->fd = -1;
    if (u->c)
        u->c->up = NULL;
    u->c = NULL;
    u->next_dead = dead_ups;
    dead_ups = u;
}

static struct up *up_open(struct client *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct up *u = calloc(1, sizeof(*u));
    if (!u) {
        close(fd);
        return NULL;
    }
    u->kind = K_UP;
    u->fd = fd;
    u->c = c;
    u->st = UP_IDLE;
    if (connect(fd, (struct sockaddr *)&up_addr, sizeof(up_addr)) < 0) {
        if (errno != EINPROGRESS) {
            close(fd);
            free(u);
            return NULL;
        }
        u->connecting = true;
    }
    ep_ctl(EPOLL_CTL_ADD, fd, EPOLLIN | (u->connecting ? EPOLLOUT : 0), u);
    return u;
}

static bool up_write_req(struct up *u)
{
    size_t off = 0;
    while (off < u->req_len) {
        ssize_t n = write(u->fd, u->req + off, u->req_len - off);
        if (n <= 0)
            return false; /* a request this small fits any socket buffer */
        off += (size_t)n;
    }
    u->req_len = 0;
    return true;
}

static void turn_end(struct client *c)
{
    char msg[256];
    int n = snprintf(msg, sizeof(msg),
                     "{\"type\":\"turn_end\",\"turn_id\":\"%s\",\"finish_reason\":\"stop\","
                     "\"usage\":{\"output_tokens\":%lu}}",
                     c->turn_id, c->tokens);
    client_text(c, msg, (size_t)n);
}

/* The raw (still escaped) JSON string value after `key` in s[0..n), or NULL. */
static const char *raw_string(const char *s, size_t n, const char *key, size_t *len)
{
    const char *p = memmem(s, n, key, strlen(key));
    if (!p)
        return NULL;
    p += strlen(key);
    const char *end = s + n;
    const char *q = p;
    while (q < end && *q != '"')
        q += *q == '\\' ? 2 : 1;
    if (q >= end)
        return NULL;
    *len = (size_t)(q - p);
    return p;
}

/* One SSE line (without its newline). */
static void sse_line(struct client *c, const char *s, size_t n)
{
    if (n < 6 || memcmp(s, "data: ", 6) != 0)
        return;
    s += 6, n -= 6;
    if (n == 6 && !memcmp(s, "[DONE]", 6)) {
        turn_end(c);
        return;
    }
    size_t tl;
    const char *t = raw_string(s, n, "\"content\":\"", &tl);
    if (t && tl) {
        char pre[96];
        int pn = snprintf(pre, sizeof(pre),
                          "{\"type\":\"delta\",\"turn_id\":\"%s\",\"seq\":%u,"
                          "\"text\":\"",
                          c->turn_id, ++c->seq);
        client_frame(c, 1, pre, (size_t)pn, t, tl, "\"}", 2);
        return;
    }
    const char *ct = memmem(s, n, "\"completion_tokens\":", 20);
    if (ct)
        c->tokens = strtoul(ct + 20, NULL, 10);
}

/* De-chunked body bytes: cut into SSE lines. */
static void up_body(struct up *u, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n') {
            if (u->line_len < LINE_CAP)
                u->line[u->line_len++] = p[i];
            continue;
        }
        size_t len = u->line_len;
        if (len && u->line[len - 1] == '\r')
            len--;
        sse_line(u->c, u->line, len);
        u->line_len = 0;
    }
}

/* HTTP/1.1 chunked framing; returns false on a framing error. */
static bool up_dechunk(struct up *u, const char *p, size_t n)
{
    while (n) {
        if (u->st == UP_DATA) {
            size_t k = n < u->chunk_left ? n : u->chunk_left;
            up_body(u, p, k);
            p += k, n -= k;
            if (!(u->chunk_left -= k))
                u->st = UP_DATA_CRLF;
            continue;
        }
        char ch = *p++;
        n--;
        if (ch != '\n') {
            if (u->head_len < sizeof(u->head) - 1)
                u->head[u->head_len++] = ch;
            continue;
        }
        u->head[u->head_len] = '\0';
        u->head_len = 0;
        if (u->st == UP_DATA_CRLF || u->st == UP_END) {
            u->st = u->st == UP_END ? UP_IDLE : UP_SIZE;
            continue;
        }
        if (u->st != UP_SIZE)
            return false; /* bytes after the response */
        char *end;
        u->chunk_left = strtoul(u->head, &end, 16);
        if (end == u->head)
            return false;
        u->st = u->chunk_left ? UP_DATA : UP_END; /* the last chunk: no trailers from the sim */
    }
    return true;
}

/* The response head: only 200 + chunked is a stream. */
static bool up_head(struct up *u, const char **p, size_t *n)
{
    while (*n) {
        char ch = *(*p)++;
        (*n)--;
        if (u->head_len >= sizeof(u->head) - 1)
            return false;
        u->head[u->head_len++] = ch;
        if (u->head_len >= 4 && !memcmp(u->head + u->head_len - 4, "\r\n\r\n", 4)) {
            u->head[u->head_len] = '\0';
            bool ok = !strncmp(u->head, "HTTP/1.1 200", 12) && strcasestr(u->head, "chunked");
            u->head_len = 0;
            u->st = UP_SIZE;
            return ok;
        }
    }
    return true;
}

static void up_readable(struct up *u)
{
    char buf[65536];
    struct client *c = u->c;
    ssize_t n = read(u->fd, buf, sizeof(buf));
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        up_close(u);
        return;
    }
    const char *p = buf;
    size_t left = (size_t)n;
    if (u->st == UP_HEAD && !up_head(u, &p, &left)) {
        up_close(u);
        return;
    }
    if (u->st != UP_HEAD && !up_dechunk(u, p, left)) {
        up_close(u);
        return;
    }
    if (c && c->fd >= 0 && c->out_len)
        client_flush(c);
}

static void up_writable(struct up *u)
{
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    u->connecting = false;
    ep_ctl(EPOLL_CTL_MOD, u->fd, EPOLLIN, u);
    if (err || !up_write_req(u))
        up_close(u);
}

/* ---- client input ---- */

static void client_close(struct client *c)
{
    up_close(c->up);
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->next_dead = dead_clients;
    dead_clients = c;
}

static void start_turn(struct client *c, const char *msg, size_t n)
{
    size_t idl, tl;
    const char *id = raw_string(msg, n, "\"id\":\"", &idl);
    const char *text = raw_string(msg, n, "\"text\":\"", &tl);
    if (!id || !text || idl > 128 || tl > 4096) {
        client_close(c);
        return;
    }
    snprintf(c->turn_id, sizeof(c->turn_id), "%032llx", (unsigned long long)++turn_counter);
    c->seq = 0;
    c->tokens = 0;
    char ev[256];
    int en =
        snprintf(ev, sizeof(ev), "{\"type\":\"turn_start\",\"id\":\"%.*s\",\"turn_id\":\"%s\"}",
                 (int)idl, id, c->turn_id);
    client_text(c, ev, (size_t)en);
    if (!c->up && !(c->up = up_open(c))) {
        client_close(c);
        return;
    }
    struct up *u = c->up;
    char body[4400];
    int bn = snprintf(body, sizeof(body),
                      "{\"model\":\"%s\",\"stream\":true,\"stream_options\":{\"include_usage\":"
                      "true},\"messages\":[{\"role\":\"user\",\"content\":\"%.*s\"}]}",
                      model, (int)tl, text);
    u->req_len = (size_t)snprintf(u->req, sizeof(u->req),
                                  "POST %s HTTP/1.1\r\nHost: upstream\r\nContent-Type: "
                                  "application/json\r\nContent-Length: %d\r\n\r\n%s",
                                  up_path, bn, body);
    u->st = UP_HEAD;
    u->head_len = u->line_len = 0;
    if (!u->connecting && !up_write_req(u))
        up_close(u);
}

static void upgrade(struct client *c)
{
    c->in[c->in_len] = '\0';
    char *end = strstr(c->in, "\r\n\r\n");
    if (!end)
        return;
    size_t head = (size_t)(end + 4 - c->in);
    char *key = strcasestr(c->in, "\r\nSec-WebSocket-Key:");
    if (!key) { /* a health probe: any plain request is answered "ok" */
        static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n"
                                 "\r\nok\n";
        memcpy(c->out, ok, sizeof(ok) - 1);
        c->out_len = sizeof(ok) - 1;
        client_flush(c);
        if (c->fd >= 0)
            client_close(c);
        return;
    }
    key += 20;
    while (*key == ' ')
        key++;
    char src[64 + 36];
    size_t kl = strcspn(key, "\r\n");
    if (kl > 64)
        kl = 64;
    memcpy(src, key, kl);
    memcpy(src + kl, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((unsigned char *)src, kl + 36, md);
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char acc[32];
    int o = 0;
    for (int i = 0; i < 21; i += 3) {
        uint32_t v = (uint32_t)md[i] << 16 | (i + 1 < 20 ? md[i + 1] << 8 : 0) |
                     (i + 2 < 20 ? md[i + 2] : 0);
        acc[o++] = b64[v >> 18 & 63];
        acc[o++] = b64[v >> 12 & 63];
        acc[o++] = i + 1 < 20 ? b64[v >> 6 & 63] : '=';
        acc[o++] = i + 2 < 20 ? b64[v & 63] : '=';
    }
    acc[o] = '\0';
    c->out_len = (size_t)snprintf(c->out, OUT_CAP,
                                  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                                  acc);
    c->upgraded = true;
    char ev[96];
    int en = snprintf(ev, sizeof(ev), "{\"type\":\"session\",\"conversation_id\":\"%032llx\"}",
                      (unsigned long long)++turn_counter);
    client_text(c, ev, (size_t)en);
    memmove(c->in, c->in + head, c->in_len - head);
    c->in_len -= head;
}

/* Complete masked client frames in c->in. */
static void frames(struct client *c)
{
    while (c->fd >= 0 && c->in_len >= 6) {
        uint8_t *p = (uint8_t *)c->in;
        uint8_t op = p[0] & 0x0f;
        size_t len = p[1] & 0x7f, hl = 2;
        if (!(p[0] & 0x80) || !(p[1] & 0x80) || len == 127) {
            client_close(c); /* fragments, unmasked or huge frames: not from trilemma-load */
            return;
        }
        if (len == 126) {
            len = (size_t)p[2] << 8 | p[3];
            hl = 4;
        }
        if (c->in_len < hl + 4 + len)
            return;
        uint8_t *mask = p + hl, *d = p + hl + 4;
        for (size_t i = 0; i < len; i++)
            d[i] ^= mask[i & 3];
        if (op == 1)
            start_turn(c, (char *)d, len);
        else if (op == 9)
            client_frame(c, 10, (char *)d, len, NULL, 0, NULL, 0);
        else if (op == 8) {
            client_frame(c, 8, (char *)d, len < 2 ? len : 2, NULL, 0, NULL, 0);
            client_flush(c);
            if (c->fd >= 0)
                client_close(c);
            return;
        }
        size_t used = hl + 4 + len;
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
    }
}

static void client_readable(struct client *c)
{
    ssize_t n = read(c->fd, c->in + c->in_len, IN_CAP - 1 - c->in_len);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        client_close(c);
        return;
    }
    c->in_len += (size_t)n;
    if (!c->upgraded)
        upgrade(c);
    if (c->fd >= 0 && c->upgraded)
        frames(c);
    if (c->fd >= 0 && c->in_len >= IN_CAP - 1)
        client_close(c);
    if (c->fd >= 0 && c->out_len)
        client_flush(c);
}

static void accept_all(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct client *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->kind = K_CLIENT;
        c->fd = fd;
        ep_ctl(EPOLL_CTL_ADD, fd, EPOLLIN, c);
    }
}

static int listen_on(const char *addr)
{
    struct sockaddr_in a;
    if (parse_addr(addr, &a) < 0)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4096) < 0)
        return -1;
    return fd;
}

static int listen_fds[64];
static int threads = 1;

static void *run_loop(void *arg)
{
    int index = (int)(intptr_t)arg;
    int lfd = listen_fds[index];
    turn_counter = (uint64_t)index << 48;
    ep = epoll_create1(EPOLL_CLOEXEC);
    static enum kind listen_kind = K_LISTEN;
    ep_ctl(EPOLL_CTL_ADD, lfd, EPOLLIN, &listen_kind);
    struct epoll_event ev[256];
    while (!stop) {
        int n = epoll_wait(ep, ev, 256, 500);
        for (int i = 0; i < n; i++) {
            enum kind *k = ev[i].data.ptr;
            if (*k == K_LISTEN) {
                accept_all(lfd);
            } else if (*k == K_CLIENT) {
                struct client *c = ev[i].data.ptr;
                if (c->fd < 0)
                    continue;
                if (ev[i].events & EPOLLOUT)
                    client_flush(c);
                if (c->fd >= 0 && ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                    client_readable(c);
            } else {
                struct up *u = ev[i].data.ptr;
                if (u->fd < 0)
                    continue;
                if (ev[i].events & EPOLLOUT && u->connecting)
                    up_writable(u);
                else if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                    up_readable(u);
            }
        }
        while (dead_clients) {
            struct client *c = dead_clients;
            dead_clients = c->next_dead;
            free(c);
        }
        while (dead_ups) {
            struct up *u = dead_ups;
            dead_ups = u->next_dead;
            free(u);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *listen_addr = NULL, *upstream = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--listen"))
            listen_addr = argv[i + 1];
        else if (!strcmp(argv[i], "--upstream"))
            upstream = argv[i + 1];
        else if (!strcmp(argv[i], "--path"))
            up_path = argv[i + 1];
        else if (!strcmp(argv[i], "--model"))
            model = argv[i + 1];
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
    }
    if (!listen_addr || !upstream || parse_addr(upstream, &up_addr) < 0) {
        fprintf(stderr, "usage: floor-relay --listen HOST:PORT --upstream HOST:PORT "
                        "[--path PATH] [--model NAME]\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    pthread_t th[64];
    int nth = threads < 1 ? 1 : threads > 64 ? 64 : threads;
    for (int i = 0; i < nth; i++)
        listen_fds[i] = listen_on(listen_addr);
    for (int i = 0; i < nth; i++) {
        if (listen_fds[i] < 0) {
            perror("floor-relay: listen");
            return 1;
        }
    }
    for (int i = 1; i < nth; i++)
        pthread_create(&th[i], NULL, run_loop, (void *)(intptr_t)i);
    run_loop(0);
    for (int i = 1; i < nth; i++)
        pthread_join(th[i], NULL);
    return 0;
}
