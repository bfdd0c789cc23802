/* sse.c - incremental text/event-stream parser (WHATWG HTML, "Parsing an event stream" and
 * "Interpreting an event stream").
 *
 * The input is cut into lines where the bytes allow it: a line that lies whole inside the chunk
 * being fed is interpreted in place, straight from the caller's buffer; only the unterminated
 * tail of a chunk is copied to p->line, to be completed by the next chunk. Line ends are found
 * with memchr (one scan for LF, remembered across lines, and one for CR bounded by it), so the
 * per-byte work is SIMD scanning, not a state machine step.
 *
 * Three bits of state cross chunk boundaries besides the buffers: the BOM matcher (the stream's
 * first three bytes may arrive one at a time), last_cr (a CR ending one chunk makes an LF
 * starting the next one part of the same line end) and the partial line itself.
 *
 * Known simplifications: the stream is not UTF-8 decoded (the spec replaces invalid sequences
 * with U+FFFD; we pass bytes through and leave validation to the JSON parser that reads the
 * data); "event:" values longer than sizeof(p->type) - 1 and "id:" values longer than
 * sizeof(p->id) - 1 are truncated; a "retry:" value too large for a long saturates. */
#include "stream/sse.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#define SSE_DEFAULT_MAX_EVENT ((size_t)1 << 20)
#define BOM_DONE 3

static const char bom[3] = {'\xEF', '\xBB', '\xBF'};

static int fail(struct sse_parser *p)
{
    p->failed = true;
    buf_reset(&p->line);
    buf_reset(&p->data);
    return -E2BIG;
}

/* Skip the leading BOM, or as much of it as this chunk holds. When the stream turns out not to
 * start with a BOM, the bytes that matched so far were content: they start the first line. */
static const char *skip_bom(struct sse_parser *p, const char *s, const char *end)
{
    while (p->bom_state < BOM_DONE) {
        if (s == end)
            return s;
        if (*s != bom[p->bom_state]) {
            buf_append(&p->line, bom, p->bom_state);
            p->bom_state = BOM_DONE;
            return s;
        }
        p->bom_state++;
        s++;
    }
    return s;
}

/* Next CR or LF in [s, end), NULL when the chunk holds none. *lf caches the next LF (or end when
 * there is none) so that a stream of CR-only line ends does not rescan for LF at every line. */
static const char *find_eol(const char *s, const char *end, const char **lf)
{
    if (!*lf || *lf < s) {
        const char *n = memchr(s, '\n', (size_t)(end - s));
        *lf = n ? n : end;
    }
    const char *cr = memchr(s, '\r', (size_t)(*lf - s));
    if (cr)
        return cr;
    return *lf < end ? *lf : NULL;
}

static int dispatch(struct sse_parser *p, sse_event_fn fn, void *ctx)
{
    size_t n = buf_size(&p->data);
    if (!n) {
        p->type_len = 0;
        p->type[0] = '\0';
        return 0;
    }
    /* The data ends with the LF of its last line: it becomes the NUL, and the reserved (not
     * committed) bytes after it are the padding a SIMD JSON parser may read. */
    char *pad = buf_reserve(&p->data, 1 + SSE_PADDING);
    memset(pad, 0, 1 + SSE_PADDING);
    char *data = buf_begin(&p->data);
    data[n - 1] = '\0';

    struct sse_event ev = {
        .type = p->type_len ? p->type : "message",
        .type_len = p->type_len ? p->type_len : 7,
        .data = data,
        .data_len = n - 1,
        .id = p->id,
        .id_len = p->id_len,
    };
    int rc = fn ? fn(ctx, &ev) : 0;
    buf_reset(&p->data);
    p->type_len = 0;
    p->type[0] = '\0';
    return rc;
}

static int field_data(struct sse_parser *p, const char *v, size_t vlen)
{
    /* What is buffered already ends in an LF that will join it to this value, so the event's
     * data would be buf_size + vlen bytes long. */
    if (buf_size(&p->data) + vlen > p->max_event)
        return fail(p);
    char *w = buf_reserve(&p->data, vlen + 1);
    memcpy(w, v, vlen);
    w[vlen] = '\n';
    buf_commit(&p->data, vlen + 1);
    return 0;
}

static void field_retry(struct sse_parser *p, const char *v, size_t vlen)
{
    long ms = 0;
    if (!vlen)
        return;
    for (size_t i = 0; i < vlen; i++) {
        if (v[i] < '0' || v[i] > '9')
            return;
        int d = v[i] - '0';
        ms = ms > (LONG_MAX - d) / 10 ? LONG_MAX : ms * 10 + d;
    }
    p->retry_ms = ms;
}

static void copy_field(char *dst, size_t cap, size_t *len, const char *v, size_t vlen)
{
    if (vlen > cap - 1)
        vlen = cap - 1;
    memcpy(dst, v, vlen);
    dst[vlen] = '\0';
    *len = vlen;
}

/* One complete line, without its line end. */
static int process_line(struct sse_parser *p, const char *line, size_t n, sse_event_fn fn,
                        void *ctx)
{
    if (!n)
        return dispatch(p, fn, ctx);
    if (line[0] == ':')
        return 0;

    const char *colon = memchr(line, ':', n);
    size_t name_len = colon ? (size_t)(colon - line) : n;
    const char *v = colon ? colon + 1 : line + n;
    size_t vlen = (size_t)(line + n - v);
    if (vlen && *v == ' ') {
        v++;
        vlen--;
    }

    if (name_len == 4 && !memcmp(line, "data", 4))
        return field_data(p, v, vlen);
    if (name_len == 5 && !memcmp(line, "event", 5))
        copy_field(p->type, sizeof(p->type), &p->type_len, v, vlen);
    else if (name_len == 2 && !memcmp(line, "id", 2) && !memchr(v, '\0', vlen))
        copy_field(p->id, sizeof(p->id), &p->id_len, v, vlen);
    else if (name_len == 5 && !memcmp(line, "retry", 5))
        field_retry(p, v, vlen);
    return 0;
}

/* A line end was found at eol: complete the buffered partial line, or use [s, eol) in place. */
static int line_end(struct sse_parser *p, const char *s, const char *eol, sse_event_fn fn,
                    void *ctx)
{
    size_t n = (size_t)(eol - s);
    size_t have = buf_size(&p->line);
    if (!have) {
        if (n > p->max_event)
            return fail(p);
        return process_line(p, s, n, fn, ctx);
    }
    if (have + n > p->max_event)
        return fail(p);
    buf_append(&p->line, s, n);
    /* A buffered line is never empty, so this never dispatches: no callback sees p->line. */
    int rc = process_line(p, buf_begin(&p->line), buf_size(&p->line), fn, ctx);
    buf_reset(&p->line);
    return rc;
}

/* Set the default max_event (when the caller left it 0) and the initial state. The struct must
 * be zero-filled (or sse_free'd) before. */
void sse_init(struct sse_parser *p)
{
    if (!p->max_event)
        p->max_event = SSE_DEFAULT_MAX_EVENT;
    sse_reset(p);
}

/* Feed a chunk; the caller keeps ownership of buf (nothing points into it after the call).
 * Events are delivered to fn (may be NULL) during the call; ev and everything it points to are
 * valid only inside fn, which must not feed or reset the same parser. Returns 0, fn's first
 * non-zero value (the rest of the chunk is then dropped: the stream is to be abandoned), or
 * -E2BIG, after which the parser is failed until sse_reset. */
int sse_feed(struct sse_parser *p, const char *buf, size_t len, sse_event_fn fn, void *ctx)
{
    if (p->failed)
        return -E2BIG;
    if (!len)
        return 0; /* buf may be NULL */

    const char *s = buf, *end = buf + len, *lf = NULL;
    if (p->bom_state < BOM_DONE)
        s = skip_bom(p, s, end);
    if (p->last_cr && s < end) {
        p->last_cr = false;
        if (*s == '\n')
            s++;
    }
    while (s < end) {
        const char *eol = find_eol(s, end, &lf);
        if (!eol) {
            if (buf_size(&p->line) + (size_t)(end - s) > p->max_event)
                return fail(p);
            buf_append(&p->line, s, (size_t)(end - s));
            return 0;
        }
        const char *next = eol + 1;
        if (*eol == '\r') {
            if (next == end)
                p->last_cr = true;
            else if (*next == '\n')
                next++;
        }
        int rc = line_end(p, s, eol, fn, ctx);
        if (rc)
            return rc;
        s = next;
    }
    return 0;
}

/* Back to the start of a new stream (BOM expected, no last event id, not failed), keeping the
 * buffers' memory and max_event. */
void sse_reset(struct sse_parser *p)
{
    buf_reset(&p->line);
    buf_reset(&p->data);
    p->type[0] = '\0';
    p->type_len = 0;
    p->id[0] = '\0';
    p->id_len = 0;
    p->retry_ms = -1;
    p->bom_state = 0;
    p->last_cr = false;
    p->failed = false;
}

/* Release the buffers; the parser is reset and may be fed again (it reallocates). */
void sse_free(struct sse_parser *p)
{
    buf_free(&p->line);
    buf_free(&p->data);
    sse_reset(p);
}
