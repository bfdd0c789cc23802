/* fuzz_sse.c - fuzz target for stream/sse.c: a differential property.
 *
 * The whole input is the event stream (so seeds are plain .sse files). Its first bytes also pick
 * the cuts: the stream is fed whole, in two chunks cut at a point derived from bytes 0-1, in
 * three chunks, one byte at a time (up to 4 KiB) and in chunks of a size cycling with byte 2;
 * every way must give the same event sequence, return value and final state (hashed). A second
 * round does the same with a small max_event (from byte 2) and a callback that stops after a few
 * events (from byte 3). The whole feed is also compared with a naive reference parser written
 * straight from the spec (one byte at a time, no buffering tricks), and every event is checked:
 * NUL after the data, SSE_PADDING zeroed bytes after that, no CR or LF in type or id, no CR in
 * data, data within max_event. Chunks are guard copies: reading past a chunk faults, and a
 * pointer kept into an old chunk would see it overwritten. */
#include "base/buf.h"
#include "stream/sse.h"
#include "tests/fuzz/guard.h"

#include <errno.h>
#include <limits.h>

struct trace {
    uint64_t h;
    int n;
    int stop_after; /* the callback returns 7 at this event (0: never) */
    size_t max_event;
};

static void mix(struct trace *t, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        t->h ^= b[i];
        t->h *= 0x100000001b3ull;
    }
}

static void mix_u64(struct trace *t, uint64_t v)
{
    mix(t, &v, sizeof(v));
}

static void mix_event(struct trace *t, const char *type, size_t tl, const char *data, size_t dl,
                      const char *id, size_t il)
{
    mix_u64(t, tl);
    mix(t, type, tl);
    mix_u64(t, dl);
    mix(t, data, dl);
    mix_u64(t, il);
    mix(t, id, il);
}

static int on_event(void *ctx, const struct sse_event *ev)
{
    struct trace *t = ctx;

    FUZZ_ASSERT(ev->data[ev->data_len] == '\0');
    for (size_t i = 1; i <= SSE_PADDING; i++)
        FUZZ_ASSERT(ev->data[ev->data_len + i] == '\0');
    FUZZ_ASSERT(ev->data_len <= t->max_event);
    FUZZ_ASSERT(!memchr(ev->data, '\r', ev->data_len));
    FUZZ_ASSERT(ev->type_len > 0 && ev->type_len < 64 && ev->type[ev->type_len] == '\0');
    FUZZ_ASSERT(!memchr(ev->type, '\r', ev->type_len) && !memchr(ev->type, '\n', ev->type_len));
    FUZZ_ASSERT(ev->id_len < 256 && ev->id[ev->id_len] == '\0');
    FUZZ_ASSERT(!memchr(ev->id, '\0', ev->id_len) && !memchr(ev->id, '\r', ev->id_len) &&
                !memchr(ev->id, '\n', ev->id_len));
    mix_event(t, ev->type, ev->type_len, ev->data, ev->data_len, ev->id, ev->id_len);
    t->n++;
    return t->stop_after && t->n == t->stop_after ? 7 : 0;
}

static void finish(struct trace *t, int rc, long retry, size_t id_len)
{
    mix_u64(t, (uint64_t)(int64_t)rc);
    mix_u64(t, (uint64_t)retry);
    mix_u64(t, id_len);
    mix_u64(t, (uint64_t)t->n);
}

/* Feed in cut at cuts[0..ncuts) (ascending), or, when step is not 0, in chunks of step bytes. */
static uint64_t run(const uint8_t *in, size_t n, const size_t *cuts, size_t ncuts, size_t step,
                    size_t max_event, int stop_after)
{
    struct sse_parser p;
    struct trace t = {.h = 0xcbf29ce484222325ull, .stop_after = stop_after};
    memset(&p, 0, sizeof(p));
    p.max_event = max_event;
    sse_init(&p);
    t.max_event = p.max_event;

    int rc = 0;
    size_t at = 0, i = 0;
    do {
        size_t to = step ? (n - at < step ? n : at + step) : i < ncuts ? cuts[i++] : n;
        const char *chunk = (const char *)guard_copy(in + at, to - at);
        rc = sse_feed(&p, chunk, to - at, on_event, &t);
        at = to;
    } while (!rc && (at < n || (!step && i < ncuts)));
    FUZZ_ASSERT(rc == 0 || rc == 7 || rc == -E2BIG);
    FUZZ_ASSERT((rc == -E2BIG) == p.failed);
    finish(&t, rc, p.retry_ms, p.id_len);
    sse_free(&p);
    return t.h;
}

/* ---- reference: the spec's algorithm, one line at a time over the whole input ------------- */

struct ref {
    struct buf data;
    char type[64], id[256];
    size_t type_len, id_len;
    long retry;
};

static int ref_dispatch(struct ref *r, struct trace *t)
{
    size_t dl = buf_size(&r->data);
    int rc = 0;
    if (dl) {
        const char *type = r->type_len ? r->type : "message";
        size_t tl = r->type_len ? r->type_len : 7;
        mix_event(t, type, tl, buf_begin(&r->data), dl - 1, r->id, r->id_len);
        t->n++;
        rc = t->stop_after && t->n == t->stop_after ? 7 : 0;
    }
    buf_reset(&r->data);
    r->type_len = 0;
    return rc;
}

static long ref_retry(const uint8_t *v, size_t n, long old)
{
    long ms = 0;
    if (!n)
        return old;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return old;
        int d = v[i] - '0';
        ms = ms > (LONG_MAX - d) / 10 ? LONG_MAX : ms * 10 + d;
    }
    return ms;
}

static int ref_line(struct ref *r, const uint8_t *l, size_t n, struct trace *t)
{
    if (n == 0)
        return ref_dispatch(r, t);
    if (l[0] == ':')
        return 0;
    size_t c = 0;
    while (c < n && l[c] != ':')
        c++;
    size_t v = c < n ? c + 1 : n;
    if (v < n && l[v] == ' ')
        v++;
    size_t vl = n - v;
    if (c == 4 && !memcmp(l, "data", 4)) {
        if (buf_size(&r->data) + vl > t->max_event)
            return -E2BIG;
        buf_append(&r->data, l + v, vl);
        buf_append(&r->data, "\n", 1);
    } else if (c == 5 && !memcmp(l, "event", 5)) {
        r->type_len = vl < 63 ? vl : 63;
        memcpy(r->type, l + v, r->type_len);
    } else if (c == 2 && !memcmp(l, "id", 2) && !memchr(l + v, 0, vl)) {
        r->id_len = vl < 255 ? vl : 255;
        memcpy(r->id, l + v, r->id_len);
    } else if (c == 5 && !memcmp(l, "retry", 5)) {
        r->retry = ref_retry(l + v, vl, r->retry);
    }
    return 0;
}

static uint64_t ref_run(const uint8_t *in, size_t n, size_t max_event, int stop_after)
{
    struct ref r = {.retry = -1};
    struct trace t = {.h = 0xcbf29ce484222325ull, .stop_after = stop_after};
    t.max_event = max_event ? max_event : (size_t)1 << 20;
    size_t i = 0;
    int rc = 0;

    if (!memcmp(in, "\xEF\xBB\xBF", n < 3 ? n : 3))
        i = n < 3 ? n : 3; /* a BOM, or a stream that ends inside one */
    while (i < n && !rc) {
        size_t j = i;
        while (j < n && in[j] != '\r' && in[j] != '\n')
            j++;
        if (j - i > t.max_event) {
            rc = -E2BIG;
            break;
        }
        if (j == n)
            break; /* the unterminated last line is discarded */
        size_t next = j + 1;
        if (in[j] == '\r' && next < n && in[next] == '\n')
            next++;
        rc = ref_line(&r, in + i, j - i, &t);
        i = next;
    }
    finish(&t, rc, r.retry, r.id_len);
    buf_free(&r.data);
    return t.h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = size;
    size_t k = size >= 2 ? (size_t)(data[0] | data[1] << 8) % (n + 1) : n / 2;
    uint8_t b2 = size >= 3 ? data[2] : 0, b3 = size >= 4 ? data[3] : 0;
    size_t cuts[2] = {k, k + b2 % (n - k + 1)};

    for (int round = 0; round < 2; round++) {
        size_t max = round ? 1 + b2 % 64u : 0;
        int stop = round ? 1 + b3 % 4 : 0;
        uint64_t whole = run(data, n, NULL, 0, 0, max, stop);
        FUZZ_ASSERT(ref_run(data, n, max, stop) == whole);
        FUZZ_ASSERT(run(data, n, cuts, 1, 0, max, stop) == whole);
        FUZZ_ASSERT(run(data, n, cuts, 2, 0, max, stop) == whole);
        FUZZ_ASSERT(run(data, n, NULL, 0, 2 + b3 % 13u, max, stop) == whole);
        if (n <= 4096)
            FUZZ_ASSERT(run(data, n, NULL, 0, 1, max, stop) == whole);
    }
    return 0;
}
