/* fuzz_ws_frame.c - fuzz target for net/ws_frame.c.
 *
 * The first input byte configures the run: bits 0-1 max_message (unlimited, 16, 125, 4096),
 * bit 2 allow_binary, bit 3 client side (expect_masked = false), bits 4-7 how the rest is cut
 * (0: byte by byte, else random chunks). The rest is fed once whole and once cut; both event
 * traces must be identical (data reassembled per message). On every call: consumed <= len,
 * progress (no two events in a row without consuming), DATA inside the consumed bytes, the
 * limits and UTF-8 rules hold for what is delivered, errors are sticky. ws_mask is checked
 * against the naive loop and the header writer against a decoder. */
#include "base/buf.h"
#include "net/utf8.h"
#include "net/ws_frame.h"
#include "tests/fuzz/guard.h"

struct cfg {
    uint64_t max_message;
    bool allow_binary;
    bool expect_masked;
};

struct trace {
    struct buf log; /* normalized events */
    struct buf msg; /* data of the open message */
    int msg_op;
};

/* Independent of net/utf8.c: decode and range-check each sequence. */
static bool ref_utf8(const uint8_t *s, size_t n)
{
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t len = c < 0x80 ? 1 : c < 0xC0 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF8 ? 4 : 0;
        if (!len || len > n - i)
            return false;
        uint32_t cp = len == 1 ? c : c & (0x7Fu >> len);
        for (size_t j = 1; j < len; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

static void log_record(struct trace *t, char tag, uint32_t code, const uint8_t *d, size_t n)
{
    uint8_t h[13] = {(uint8_t)tag};
    memcpy(h + 1, &code, 4);
    uint64_t len = n;
    memcpy(h + 5, &len, 8);
    buf_append(&t->log, h, sizeof(h));
    if (n)
        buf_append(&t->log, d, n);
}

static void trace_message_end(struct trace *t, const struct ws_event *ev)
{
    size_t n = buf_size(&t->msg);
    /* buf_begin of a never-filled buf is NULL + 0, which UBSan (clang) reports */
    const uint8_t *d = n ? (const uint8_t *)buf_begin(&t->msg) : NULL;

    FUZZ_ASSERT(ev->opcode == WS_OP_TEXT || ev->opcode == WS_OP_BINARY);
    FUZZ_ASSERT(t->msg_op < 0 || t->msg_op == ev->opcode);
    if (ev->opcode == WS_OP_TEXT)
        FUZZ_ASSERT(ref_utf8(d, n));
    log_record(t, 'M', ev->opcode, d, n);
    buf_reset(&t->msg);
    t->msg_op = -1;
}

static void trace_event(struct trace *t, const struct ws_event *ev, const struct cfg *c)
{
    switch (ev->type) {
    case WS_EV_DATA:
        FUZZ_ASSERT(ev->opcode == WS_OP_TEXT || ev->opcode == WS_OP_BINARY);
        FUZZ_ASSERT(t->msg_op < 0 || t->msg_op == ev->opcode);
        FUZZ_ASSERT(ev->opcode == WS_OP_TEXT || c->allow_binary);
        t->msg_op = ev->opcode;
        buf_append(&t->msg, ev->data, ev->len);
        FUZZ_ASSERT(!c->max_message || buf_size(&t->msg) <= c->max_message);
        return;
    case WS_EV_MESSAGE_END:
        trace_message_end(t, ev);
        return;
    case WS_EV_PING:
    case WS_EV_PONG:
        FUZZ_ASSERT(ev->len <= 125);
        log_record(t, ev->type == WS_EV_PING ? 'P' : 'O', 0, ev->data, ev->len);
        return;
    case WS_EV_CLOSE:
        FUZZ_ASSERT(ev->len <= 123);
        FUZZ_ASSERT(ev->close_code == WS_CLOSE_NO_STATUS ? ev->len == 0
                                                         : ws_close_code_valid(ev->close_code));
        FUZZ_ASSERT(ref_utf8(ev->data, ev->len));
        log_record(t, 'C', ev->close_code, ev->data, ev->len);
        return;
    case WS_EV_ERROR:
        FUZZ_ASSERT(ev->close_code == 1002 || ev->close_code == 1003 || ev->close_code == 1007 ||
                    ev->close_code == 1009);
        FUZZ_ASSERT(ev->error != NULL);
        buf_reset(&t->msg); /* how much was delivered before an error depends on the cuts */
        log_record(t, 'E', ev->close_code, NULL, 0);
        return;
    default:
        FUZZ_ASSERT(0);
    }
}

/* Drain one piece; returns false after an error. */
static bool feed(struct ws_parser *p, uint8_t *buf, size_t len, struct trace *t,
                 const struct cfg *c)
{
    size_t off = 0;
    bool idle = false; /* the previous call reported an event without consuming */

    for (;;) {
        struct ws_event ev;
        size_t n = ws_parse(p, buf + off, len - off, &ev);
        FUZZ_ASSERT(n <= len - off);
        if (ev.type == WS_EV_NONE) {
            FUZZ_ASSERT(off + n == len);
            return true;
        }
        FUZZ_ASSERT(n > 0 || !idle || ev.type == WS_EV_ERROR);
        idle = n == 0;
        if (ev.type == WS_EV_DATA)
            FUZZ_ASSERT(ev.len > 0 && ev.data >= buf + off && ev.data + ev.len <= buf + off + n);
        off += n;
        trace_event(t, &ev, c);
        if (ev.type == WS_EV_ERROR) {
            struct ws_event again;
            FUZZ_ASSERT(ws_parse(p, buf + off, len - off, &again) == 0);
            FUZZ_ASSERT(again.type == WS_EV_ERROR && again.close_code == ev.close_code);
            return false;
        }
    }
}

static void run(const uint8_t *data, size_t size, unsigned mode, const struct cfg *c,
                struct trace *t)
{
    struct ws_parser p;
    uint32_t seed = (uint32_t)size * 2654435761u + mode;
    size_t off = 0;

    ws_parser_init(&p, c->max_message, c->allow_binary);
    p.expect_masked = c->expect_masked;
    t->msg_op = -1;
    do {
        size_t k = size - off;
        if (mode == 1) {
            k = k ? 1 : 0;
        } else if (mode > 1) {
            seed = seed * 1103515245u + 12345u;
            size_t r = 1 + (seed >> 8) % (mode * mode * 4);
            k = r < k ? r : k;
        }
        if (!feed(&p, guard_copy(data + off, k), k, t, c))
            return;
        off += k;
    } while (off < size);
}

static void check_mask(const uint8_t *data, size_t size, uint8_t conf)
{
    static const uint8_t key[4] = {0x12, 0x9A, 0xFF, 0x01};
    size_t n = size < 256 ? size : 256;
    uint8_t want[256];

    for (size_t i = 0; i < n; i++)
        want[i] = data[i] ^ key[(conf + i) & 3];
    uint8_t *g = guard_copy(data, n);
    ws_mask(g, n, key, conf);
    FUZZ_ASSERT(n == 0 || memcmp(g, want, n) == 0);
}

/* ws_frame_header writes the minimal encoding of whatever length it is given. */
static void check_writer(const uint8_t *data, size_t size, uint8_t conf)
{
    uint8_t h[14];
    uint64_t len = 0;

    memcpy(&len, data, size < 8 ? size : 8);
    len >>= conf & 63;
    size_t n = ws_frame_header(h, conf & 0x0f, conf & 0x80, len);
    uint64_t got = h[1] & 0x7f;
    if (got == 126)
        got = (uint64_t)h[2] << 8 | h[3];
    else if (got == 127)
        for (int i = 0; i < 8; i++)
            got = (i ? got << 8 : 0) | h[2 + i];
    FUZZ_ASSERT(got == len && n == (len < 126 ? 2u : len <= 0xffff ? 4u : 10u));
    FUZZ_ASSERT(h[0] == ((conf & 0x80) | (conf & 0x0f)) && !(h[1] & 0x80));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t max_opts[4] = {0, 16, 125, 4096};
    struct trace whole = {0}, cut = {0};

    if (size < 1)
        return 0;
    uint8_t conf = data[0];
    struct cfg c = {max_opts[conf & 3], conf & 4, !(conf & 8)};
    data++;
    size--;

    run(data, size, 0, &c, &whole);
    run(data, size, (conf >> 4) ? (conf >> 4) : 1, &c, &cut);
    FUZZ_ASSERT(buf_size(&whole.log) == buf_size(&cut.log));
    FUZZ_ASSERT(!buf_size(&whole.log) ||
                memcmp(buf_begin(&whole.log), buf_begin(&cut.log), buf_size(&cut.log)) == 0);
    check_mask(data, size, conf);
    check_writer(data, size, conf);
    buf_free(&whole.log);
    buf_free(&whole.msg);
    buf_free(&cut.log);
    buf_free(&cut.msg);
    return 0;
}
