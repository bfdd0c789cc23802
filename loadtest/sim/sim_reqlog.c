/* sim_reqlog.c - the request-body log of the simulated provider (sim_reqlog.h). */
#include "loadtest/sim/sim_reqlog.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "stream/jsonw.h"

#define PATH_MAX_LEN 256
#define MODEL_MAX_LEN 128

struct reqent {
    uint64_t seq;
    char path[PATH_MAX_LEN];
    char model[MODEL_MAX_LEN];
    char *body; /* owned, NUL-terminated, at most SIM_REQLOG_BODY_MAX bytes */
    size_t len;
    bool truncated;
    char traceparent[64]; /* the W3C traceparent header, "" = none */
};

static pthread_mutex_t reqlog_lock = PTHREAD_MUTEX_INITIALIZER;
static struct reqent reqlog_ring[SIM_REQLOG_CAP];
static uint64_t reqlog_seq; /* entries written so far; the newest has seq == reqlog_seq */

/* Record one request; see the header. */
void sim_reqlog_add(const char *path, size_t path_len, const char *model, const char *body,
                    size_t len, const char *traceparent, size_t tp_len)
{
    size_t keep = len < SIM_REQLOG_BODY_MAX ? len : SIM_REQLOG_BODY_MAX;
    char *copy = xstrndup(body ? body : "", body ? keep : 0);
    size_t pl = path_len < PATH_MAX_LEN - 1 ? path_len : PATH_MAX_LEN - 1;
    pthread_mutex_lock(&reqlog_lock);
    struct reqent *e = &reqlog_ring[(reqlog_seq + 1) % SIM_REQLOG_CAP];
    char *old = e->body;
    e->seq = ++reqlog_seq;
    memcpy(e->path, path, pl);
    e->path[pl] = '\0';
    snprintf(e->model, sizeof(e->model), "%s", model ? model : "");
    e->body = copy;
    e->len = keep;
    e->truncated = keep < len;
    snprintf(e->traceparent, sizeof(e->traceparent), "%.*s", (int)tp_len,
             traceparent ? traceparent : "");
    pthread_mutex_unlock(&reqlog_lock);
    xfree(old); /* outside the lock: the dropped entry is no longer reachable */
}

static bool path_is(const struct http_request *req, const char *p)
{
    return req->path_len == strlen(p) && memcmp(req->path, p, req->path_len) == 0;
}

/* {"last": SEQ, "requests": [{seq, path, model, body, truncated, traceparent}]}, oldest first; the
 * body is the request's JSON text as a string (a cut body would not be JSON). */
uint64_t sim_log_since(const struct http_request *req)
{
    char v[24];
    if (req->query && http_query_param(req->query, req->query_len, "since", v, sizeof(v)) > 0)
        return strtoull(v, NULL, 10);
    return 0;
}

static void reply(const struct http_request *req, struct buf *out)
{
    uint64_t since = sim_log_since(req);
    struct jsonw w;
    jw_init(&w, out);
    jw_obj_begin(&w);
    pthread_mutex_lock(&reqlog_lock);
    uint64_t first = sim_log_first(since, reqlog_seq, SIM_REQLOG_CAP);
    jw_kuint(&w, "last", reqlog_seq);
    jw_key(&w, "requests");
    jw_arr_begin(&w);
    for (uint64_t s = first; s <= reqlog_seq; s++) {
        const struct reqent *e = &reqlog_ring[s % SIM_REQLOG_CAP];
        jw_obj_begin(&w);
        jw_kuint(&w, "seq", e->seq);
        jw_kstr(&w, "path", e->path);
        jw_kstr(&w, "model", e->model);
        jw_key(&w, "body");
        jw_strn(&w, e->body, e->len);
        jw_kbool(&w, "truncated", e->truncated);
        jw_kstr(&w, "traceparent", e->traceparent);
        jw_obj_end(&w);
    }
    pthread_mutex_unlock(&reqlog_lock);
    jw_arr_end(&w);
    jw_obj_end(&w);
}

/* Answer GET /v1/_requests; see the header. */
bool sim_reqlog_request(struct conn *c, const struct http_request *req)
{
    if (!path_is(req, "/v1/_requests"))
        return false;
    if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0) {
        static const char msg[] = "{\"error\":{\"message\":\"use GET\"}}";
        conn_http_reply(c, 405, "application/json", msg, sizeof(msg) - 1, NULL);
        return true;
    }
    struct buf out = {0};
    reply(req, &out);
    conn_http_reply(c, 200, "application/json; charset=utf-8", buf_begin(&out), buf_size(&out),
                    "cache-control: no-store\r\n");
    buf_free(&out);
    return true;
}

/* Free the entries; see the header. */
void sim_reqlog_fini(void)
{
    pthread_mutex_lock(&reqlog_lock);
    for (size_t i = 0; i < SIM_REQLOG_CAP; i++) {
        xfree(reqlog_ring[i].body);
        reqlog_ring[i].body = NULL;
    }
    pthread_mutex_unlock(&reqlog_lock);
}
