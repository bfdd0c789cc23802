/* load_sse.c - direct mode: OpenAI-style streaming chat completions straight at a provider
 * (normally trilemma-sim), measured exactly as chat turns are, for the "added latency through
 * trilemma" baseline.
 *
 * One curl multi handle per worker, driven by the worker's libuv loop through curl's socket API
 * (CURLMOPT_SOCKETFUNCTION -> uv_poll, CURLMOPT_TIMERFUNCTION -> uv_timer). Connections are
 * kept alive and reused by the multi handle, so a turn here, like a chat turn on an open
 * WebSocket, does not pay for a new TCP connection. Each user has one easy handle, reused for
 * its turns. The stream is read with the project's SSE parser (stream/sse.h); a content chunk
 * with non-empty text is a delta, the usage chunk gives the tokens (prompt, cached, completion),
 * "[DONE]" ends it. */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "loadtest/load/load.h"
#include "stream/json.h"
#include "stream/jsonw.h"
#include "stream/sse.h"

struct sse_xfer {
    struct vuser *u;
    CURL *easy;
    struct sse_parser parser;
    struct buf body;
    struct stats_usage usage; /* from the usage chunk */
    long status;
    bool active, done_seen;
};

struct sse_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct worker *w;
    struct sse_sock *next, *prev;
};

/* Per-worker curl state (w->curl). */
struct sse_multi {
    CURLM *multi;
    struct curl_slist *headers;
    struct curl_slist *resolve;
    struct sse_sock *socks;
};

static void check_done(struct worker *w);

static void free_sock(uv_handle_t *h)
{
    xfree(h->data);
}

static void sock_close(struct sse_multi *m, struct sse_sock *ss)
{
    if (ss->prev)
        ss->prev->next = ss->next;
    else
        m->socks = ss->next;
    if (ss->next)
        ss->next->prev = ss->prev;
    uv_poll_stop(&ss->poll);
    uv_close((uv_handle_t *)&ss->poll, free_sock);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct sse_sock *ss = p->data;
    struct worker *w = ss->w;
    struct sse_multi *m = w->curl;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(m->multi, ss->fd, flags, &running);
    check_done(w);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct worker *w = userp;
    struct sse_multi *m = w->curl;
    struct sse_sock *ss = socketp;
    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (ss) {
            curl_multi_assign(m->multi, s, NULL);
            sock_close(m, ss);
        }
        return 0;
    }
    if (!ss) {
        ss = xcalloc(1, sizeof(*ss));
        ss->fd = s;
        ss->w = w;
        uv_poll_init_socket(&w->loop, &ss->poll, s);
        ss->poll.data = ss;
        ss->next = m->socks;
        if (m->socks)
            m->socks->prev = ss;
        m->socks = ss;
        curl_multi_assign(m->multi, s, ss);
    }
    int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    uv_poll_start(&ss->poll, ev, on_poll);
    return 0;
}

static void on_curl_timeout(uv_timer_t *t)
{
    struct worker *w = t->data;
    struct sse_multi *m = w->curl;
    int running;
    curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(w);
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct worker *w = userp;
    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&w->curl_timer);
    else
        uv_timer_start(&w->curl_timer, on_curl_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

/* See load.h. */
int sse_worker_init(struct worker *w)
{
    const struct load *L = w->L;
    struct sse_multi *m = xcalloc(1, sizeof(*m));
    char line[400];
    w->curl = m;
    m->multi = curl_multi_init();
    if (!m->multi)
        return -ENOMEM;
    uv_timer_init(&w->loop, &w->curl_timer);
    w->curl_timer.data = w;
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, w);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, w);
    curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, (long)L->users_cap);
    m->headers = curl_slist_append(NULL, "Content-Type: application/json");
    m->headers = curl_slist_append(m->headers, "Accept: text/event-stream");
    if (L->token) {
        snprintf(line, sizeof(line), "Authorization: Bearer %.350s", L->token);
        m->headers = curl_slist_append(m->headers, line);
    }
    for (int i = 0; i < L->nheaders; i++)
        m->headers = curl_slist_append(m->headers, L->headers[i]);
    /* connect to the address that was checked at start, whatever DNS says later */
    snprintf(line, sizeof(line), "%s:%d:%s", L->tgt.host, L->tgt.port, L->tgt.addr);
    m->resolve = curl_slist_append(NULL, line);
    return 0;
}

/* See load.h. Every user is gone by now (their transfers removed). */
void sse_worker_cleanup(struct worker *w)
{
    struct sse_multi *m = w->curl;
    if (!m)
        return;
    curl_multi_cleanup(m->multi);
    while (m->socks)
        sock_close(m, m->socks);
    curl_slist_free_all(m->headers);
    curl_slist_free_all(m->resolve);
    uv_timer_stop(&w->curl_timer);
    uv_close((uv_handle_t *)&w->curl_timer, NULL);
    xfree(m);
    w->curl = NULL;
}

static int on_event(void *ctx, const struct sse_event *ev)
{
    struct sse_xfer *x = ctx;
    json_doc *d = x->u->w->doc;
    const char *s;
    size_t n;
    int64_t v;
    if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0) {
        x->done_seen = true;
        return 0;
    }
    if (json_doc_load_padded(d, ev->data, ev->data_len) < 0)
        return 0; /* not ours to judge: the end of the stream decides */
    if (json_get_string(d, "/choices/0/delta/content", &s, &n) == 0 && n > 0)
        user_sse_delta(x->u, n);
    if (json_get_int(d, "/usage/completion_tokens", &v) == 0 && v >= 0)
        x->usage.output = (uint64_t)v;
    if (json_get_int(d, "/usage/prompt_tokens", &v) == 0 && v >= 0)
        x->usage.input = (uint64_t)v;
    if (json_get_int(d, "/usage/prompt_tokens_details/cached_tokens", &v) == 0 && v >= 0)
        x->usage.cached_input = (uint64_t)v;
    return 0;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct sse_xfer *x = ctx;
    size_t n = size * nmemb;
    if (!x->status)
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
    if (x->status == 200 && sse_feed(&x->parser, data, n, on_event, x) < 0)
        return 0; /* an event too large: fail the transfer */
    return n;
}

static const char *error_kind(struct sse_xfer *x, CURLcode rc, char *tmp, size_t n)
{
    if (rc == CURLE_COULDNT_CONNECT)
        return "connect_failed";
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return "timeout_turn";
    if (rc != CURLE_OK) {
        snprintf(tmp, n, "transfer_failed_%d", (int)rc);
        return tmp;
    }
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
    if (x->status != 200) {
        snprintf(tmp, n, "http_%ld", x->status);
        return tmp;
    }
    return x->done_seen ? NULL : "stream_incomplete";
}

static void check_done(struct worker *w)
{
    struct sse_multi *m = w->curl;
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct sse_xfer *x = NULL;
        CURLcode rc = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(m->multi, msg->easy_handle);
        x->active = false;
        char tmp[48];
        user_sse_end(x->u, error_kind(x, rc, tmp, sizeof(tmp)), &x->usage);
    }
}

static void body(struct sse_xfer *x, const struct vuser *u)
{
    struct jsonw j;
    buf_reset(&x->body);
    jw_init(&j, &x->body);
    jw_obj_begin(&j);
    jw_kstr(&j, "model", u->w->L->sc.model);
    jw_kbool(&j, "stream", true);
    jw_key(&j, "stream_options");
    jw_obj_begin(&j);
    jw_kbool(&j, "include_usage", true);
    jw_obj_end(&j);
    jw_key(&j, "messages");
    jw_arr_begin(&j);
    jw_obj_begin(&j);
    jw_kstr(&j, "role", "system");
    jw_kstr(&j, "content", "You are a helpful shopping assistant. Answer briefly.");
    jw_obj_end(&j);
    jw_obj_begin(&j);
    jw_kstr(&j, "role", "user");
    jw_kstrn(&j, "content", u->q->text, u->q->len);
    jw_obj_end(&j);
    jw_arr_end(&j);
    jw_obj_end(&j);
}

static struct sse_xfer *xfer_create(struct vuser *u)
{
    const struct load *L = u->w->L;
    struct sse_multi *m = u->w->curl;
    struct sse_xfer *x = xcalloc(1, sizeof(*x));
    x->u = u;
    x->easy = curl_easy_init();
    if (!x->easy) {
        xfree(x);
        return NULL;
    }
    sse_init(&x->parser);
    curl_easy_setopt(x->easy, CURLOPT_URL, L->sc.direct_sse);
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, m->headers);
    curl_easy_setopt(x->easy, CURLOPT_RESOLVE, m->resolve);
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)L->sc.connect_timeout_ms);
    curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)L->sc.turn_timeout_ms);
    return x;
}

/* See load.h. 0, or -errno when the transfer could not be started. */
int sse_start_turn(struct vuser *u)
{
    struct sse_multi *m = u->w->curl;
    if (!u->sse && !(u->sse = xfer_create(u)))
        return -ENOMEM;
    struct sse_xfer *x = u->sse;
    body(x, u);
    sse_reset(&x->parser);
    x->usage = (struct stats_usage){0};
    x->status = 0;
    x->done_seen = false;
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, buf_begin(&x->body));
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE, (long)buf_size(&x->body));
    if (curl_multi_add_handle(m->multi, x->easy) != CURLM_OK)
        return -EIO;
    x->active = true;
    return 0;
}

/* See load.h. */
void sse_abort(struct vuser *u)
{
    struct sse_multi *m = u->w->curl;
    if (u->sse && u->sse->active && m) {
        curl_multi_remove_handle(m->multi, u->sse->easy);
        u->sse->active = false;
    }
}

/* See load.h. */
void sse_xfer_free(struct vuser *u)
{
    struct sse_xfer *x = u->sse;
    if (!x)
        return;
    sse_abort(u);
    curl_easy_cleanup(x->easy);
    sse_free(&x->parser);
    buf_free(&x->body);
    xfree(x);
    u->sse = NULL;
}
