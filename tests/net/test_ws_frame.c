/* test_ws_frame.c - net/ws_frame.c: every RFC 6455 rule the parser enforces as a named case,
 * each stream fed whole, cut at every position, byte by byte and (when short) cut at every
 * pair of positions, with the event log required to be identical; then the timing rules (1009
 * and 1003 from the header alone, UTF-8 failing at the bad byte), masking at every offset, the
 * writers round-tripped through the parser, and random valid streams with random cuts. */
#include "base/mem.h"
#include "net/ws_frame.h"
#include "tests/tap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- client streams ---------------------------------------------------------------------- */

struct stream {
    uint8_t b[1 << 18];
    size_t n;
    unsigned frames; /* varies the mask from frame to frame */
};

static struct stream S;

static void put(struct stream *st, const void *p, size_t n)
{
    if (st->n + n > sizeof(st->b)) {
        fprintf(stderr, "test stream overflow\n");
        abort();
    }
    if (n)
        memcpy(st->b + st->n, p, n);
    st->n += n;
}

static void next_mask(struct stream *st, uint8_t mask[4])
{
    unsigned k = st->frames++;
    mask[0] = (uint8_t)(0x37 + 13 * k);
    mask[1] = (uint8_t)(0xfa ^ k);
    mask[2] = (uint8_t)(0x21 + 7 * k);
    mask[3] = (uint8_t)(0x3d ^ (k << 3));
}

/* Mask key, then the payload masked the naive way (independent of ws_mask). */
static void put_masked(struct stream *st, const uint8_t mask[4], const void *payload, size_t n)
{
    const uint8_t *p = payload;
    put(st, mask, 4);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i] ^ mask[i & 3];
        put(st, &c, 1);
    }
}

/* A well-formed masked client frame, header written by ws_frame_header_masked. */
static void frame(struct stream *st, bool fin, uint8_t op, const void *payload, size_t n)
{
    uint8_t hdr[14], mask[4];
    next_mask(st, mask);
    size_t h = ws_frame_header_masked(hdr, op, fin, n, mask);
    put(st, hdr, h - 4);
    put_masked(st, mask, payload, n);
}

/* A frame with a hand-made first byte (RSV bits, odd opcodes) and length encoding: ext_bytes
 * 0, 2 or 8 forces the 7-bit, 16-bit or 64-bit form whatever n is. */
static void frame_raw(struct stream *st, uint8_t b0, bool masked, int ext_bytes, const void *pl,
                      size_t n)
{
    uint8_t hdr[10], mask[4];
    size_t h = 2;
    hdr[0] = b0;
    hdr[1] = masked ? 0x80 : 0;
    if (ext_bytes == 0) {
        hdr[1] |= (uint8_t)n;
    } else if (ext_bytes == 2) {
        hdr[1] |= 126;
        hdr[h++] = (uint8_t)(n >> 8);
        hdr[h++] = (uint8_t)n;
    } else {
        hdr[1] |= 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    put(st, hdr, h);
    if (masked) {
        next_mask(st, mask);
        put_masked(st, mask, pl, n);
    } else {
        put(st, pl, n);
    }
}

static void close_frame(struct stream *st, uint16_t code, const char *reason)
{
    uint8_t pl[125];
    size_t n = strlen(reason);
    pl[0] = (uint8_t)(code >> 8);
    pl[1] = (uint8_t)code;
    memcpy(pl + 2, reason, n);
    frame(st, true, WS_OP_CLOSE, pl, n + 2);
}

#define TXT(s) (s), (sizeof(s) - 1)

/* ---- event log ----------------------------------------------------------------------------
 * Events are rendered as text, data messages reassembled ("T[...]", "B[...]"), so that the
 * logs of one stream fed with different cuts can be compared with strcmp. */

struct log {
    char s[16384];
    size_t n;
    uint8_t msg[1 << 18];
    size_t msg_len;
    int msg_op; /* -1: no DATA seen for the current message */
};

static struct log L1, L2, W; /* W: expectations built with log_put */

/* Invariants checked on every event: counted here, reported by one CHECK at the end. */
static long inv_bad;
#define INV(cond)                                                                                  \
    do {                                                                                           \
        if (!(cond) && inv_bad++ < 5)                                                              \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
    } while (0)

static void log_reset(struct log *lg)
{
    lg->n = 0;
    lg->s[0] = '\0';
    lg->msg_len = 0;
    lg->msg_op = -1;
}

static void log_printf(struct log *lg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(lg->s + lg->n, sizeof(lg->s) - lg->n, fmt, ap);
    va_end(ap);
    if (k > 0)
        lg->n += (size_t)k;
    if (lg->n >= sizeof(lg->s))
        lg->n = sizeof(lg->s) - 1;
}

/* "tag[data]": printable bytes as they are, others as \xHH; long data as length and hash. */
static void log_put(struct log *lg, const char *tag, const uint8_t *d, size_t n)
{
    log_printf(lg, "%s%s[", lg->n ? " " : "", tag);
    if (n > 64) {
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < n; i++)
            h = (h ^ d[i]) * 16777619u;
        log_printf(lg, "#%zu:%08x", n, h);
    } else {
        for (size_t i = 0; i < n; i++) {
            if (d[i] >= 0x20 && d[i] < 0x7f && d[i] != '\\')
                log_printf(lg, "%c", d[i]);
            else
                log_printf(lg, "\\x%02x", d[i]);
        }
    }
    log_printf(lg, "]");
}

static void log_data(struct log *lg, const struct ws_event *ev)
{
    INV(ev->opcode == WS_OP_TEXT || ev->opcode == WS_OP_BINARY);
    INV(ev->len > 0 && ev->data != NULL);
    if (lg->msg_op < 0)
        lg->msg_op = ev->opcode;
    INV(lg->msg_op == ev->opcode);
    if (lg->msg_len + ev->len <= sizeof(lg->msg))
        memcpy(lg->msg + lg->msg_len, ev->data, ev->len);
    lg->msg_len += ev->len;
}

static void log_event(struct log *lg, const struct ws_event *ev)
{
    char tag[16];

    switch (ev->type) {
    case WS_EV_DATA:
        log_data(lg, ev);
        return;
    case WS_EV_MESSAGE_END:
        INV(lg->msg_op < 0 || lg->msg_op == ev->opcode);
        INV(lg->msg_len <= sizeof(lg->msg));
        log_put(lg, ev->opcode == WS_OP_TEXT ? "T" : "B", lg->msg, lg->msg_len);
        lg->msg_len = 0;
        lg->msg_op = -1;
        return;
    case WS_EV_PING:
    case WS_EV_PONG:
        INV(ev->len <= 125);
        log_put(lg, ev->type == WS_EV_PING ? "PING" : "PONG", ev->data, ev->len);
        return;
    case WS_EV_CLOSE:
        snprintf(tag, sizeof(tag), "CLOSE%u", ev->close_code);
        log_put(lg, tag, ev->data, ev->len);
        return;
    case WS_EV_ERROR:
        INV(ev->error != NULL);
        log_printf(lg, "%sERR%u", lg->n ? " " : "", ev->close_code);
        return;
    default:
        INV(0);
    }
}

/* ---- driving the parser ------------------------------------------------------------------ */

struct cfg {
    uint64_t max_message;
    bool allow_binary;
    bool expect_masked;
};

static const struct cfg DEFAULT = {0, true, true};

/* Drain one piece: call until WS_EV_NONE (an event may be pending after the last byte was
 * consumed: MESSAGE_END). Returns false once an error was reported. */
static bool feed(struct ws_parser *p, uint8_t *buf, size_t len, struct log *lg)
{
    size_t off = 0;

    for (;;) {
        struct ws_event ev;
        size_t n = ws_parse(p, buf + off, len - off, &ev);
        INV(n <= len - off);
        off += n;
        if (ev.type == WS_EV_NONE) {
            INV(off == len);
            return true;
        }
        if (ev.type == WS_EV_DATA)
            INV(ev.data >= buf && ev.data + ev.len <= buf + off);
        log_event(lg, &ev);
        if (ev.type == WS_EV_ERROR)
            return false;
    }
}

/* Each piece is copied to end right before a PROT_NONE page: a read past it faults in every
 * build, not only under AddressSanitizer (without it, xmalloc is mimalloc and nothing checks). */
static uint8_t *guard_base;
static size_t guard_cap, guard_page;

static uint8_t *guarded(const uint8_t *s, size_t n)
{
    if (!guard_base) {
        guard_page = (size_t)sysconf(_SC_PAGESIZE);
        guard_cap = (sizeof(S.b) + guard_page - 1) / guard_page * guard_page;
        guard_base = mmap(NULL, guard_cap + guard_page, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (guard_base == MAP_FAILED || mprotect(guard_base + guard_cap, guard_page, PROT_NONE)) {
            perror("guard page");
            abort();
        }
    }
    uint8_t *p = guard_base + guard_cap - n;
    if (n)
        memmove(p, s, n);
    return p;
}

/* Feed s[0..n) in pieces ending at the sorted cut positions, each piece guarded. */
static void run(const uint8_t *s, size_t n, const size_t *cuts, size_t ncuts, const struct cfg *c,
                struct log *lg)
{
    struct ws_parser p;
    size_t prev = 0;

    ws_parser_init(&p, c->max_message, c->allow_binary);
    p.expect_masked = c->expect_masked;
    log_reset(lg);
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : n;
        bool ok = feed(&p, guarded(s + prev, end - prev), end - prev, lg);
        prev = end;
        if (!ok)
            break;
    }
}

/* Whole, every single cut (up to 4 KiB), byte by byte, every pair of cuts (up to 40 bytes). */
static void check_stream(const char *name, const uint8_t *s, size_t n, const struct cfg *c,
                         const char *expect)
{
    size_t *cuts = xmalloc((n + 1) * sizeof(*cuts));
    long bad = 0, first = -1;

    run(s, n, NULL, 0, c, &L1);
    CHECKF(strcmp(L1.s, expect) == 0, "%s: got '%s' want '%s'", name, L1.s, expect);
    for (size_t k = 1; k < n && n <= 4096; k++) {
        run(s, n, &k, 1, c, &L2);
        if (strcmp(L2.s, expect) != 0 && bad++ == 0)
            first = (long)k;
    }
    CHECKF(bad == 0, "%s: %ld single cuts differ, first at %ld", name, bad, first);

    for (size_t k = 1; k < n; k++)
        cuts[k - 1] = k;
    run(s, n, cuts, n ? n - 1 : 0, c, &L2);
    CHECKF(strcmp(L2.s, expect) == 0, "%s: byte by byte got '%s'", name, L2.s);

    bad = 0;
    for (size_t i = 1; i < n && n <= 40; i++) {
        for (size_t j = i + 1; j < n; j++) {
            cuts[0] = i;
            cuts[1] = j;
            run(s, n, cuts, 2, c, &L2);
            bad += strcmp(L2.s, expect) != 0;
        }
    }
    CHECKF(bad == 0, "%s: %ld cut pairs differ", name, bad);
    xfree(cuts);
}

#define CHECK_STREAM(name, cfg, expect) check_stream(name, S.b, S.n, cfg, expect)

static void begin(void)
{
    S.n = 0;
    S.frames = 0;
}

/* ---- valid streams ----------------------------------------------------------------------- */

static void test_valid_messages(void)
{
    begin();
    frame(&S, true, WS_OP_TEXT, TXT("Hello"));
    CHECK_STREAM("single masked text", &DEFAULT, "T[Hello]");

    begin();
    frame(&S, true, WS_OP_TEXT, "", 0);
    CHECK_STREAM("empty text message", &DEFAULT, "T[]");

    begin();
    frame(&S, true, WS_OP_BINARY, TXT("\x00\x01\xff"));
    CHECK_STREAM("binary allowed", &DEFAULT, "B[\\x00\\x01\\xff]");

    begin();
    frame(&S, false, WS_OP_TEXT, TXT("Hel"));
    frame(&S, false, WS_OP_CONT, TXT("lo, "));
    frame(&S, true, WS_OP_CONT, TXT("world"));
    CHECK_STREAM("fragmented text, 3 frames", &DEFAULT, "T[Hello, world]");

    begin();
    frame(&S, false, WS_OP_TEXT, TXT("abc"));
    frame(&S, true, WS_OP_CONT, "", 0);
    CHECK_STREAM("fragmented, empty final frame", &DEFAULT, "T[abc]");

    begin();
    frame(&S, false, WS_OP_BINARY, "", 0);
    frame(&S, false, WS_OP_CONT, "", 0);
    frame(&S, true, WS_OP_CONT, TXT("z"));
    CHECK_STREAM("fragmented, empty first frames", &DEFAULT, "B[z]");

    begin();
    frame(&S, false, WS_OP_TEXT, TXT("\xCE"));
    frame(&S, false, WS_OP_CONT, TXT("\xBA\xE1\xBD"));
    frame(&S, true, WS_OP_CONT, TXT("\xB9"));
    CHECK_STREAM("UTF-8 sequences split across fragments", &DEFAULT,
                 "T[\\xce\\xba\\xe1\\xbd\\xb9]");

    begin();
    frame(&S, true, WS_OP_TEXT, TXT("one"));
    frame(&S, true, WS_OP_BINARY, TXT("two"));
    frame(&S, true, WS_OP_TEXT, TXT("three"));
    CHECK_STREAM("three messages in a row", &DEFAULT, "T[one] B[two] T[three]");

    begin();
    frame(&S, true, WS_OP_TEXT, TXT("\xEF\xBF\xBF\xF4\x8F\xBF\xBF"));
    CHECK_STREAM("noncharacter and U+10FFFF are valid text", &DEFAULT,
                 "T[\\xef\\xbf\\xbf\\xf4\\x8f\\xbf\\xbf]");
}

static void test_valid_control(void)
{
    uint8_t big[125];
    memset(big, 'p', sizeof(big));

    begin();
    frame(&S, false, WS_OP_TEXT, TXT("ab"));
    frame(&S, true, WS_OP_PING, TXT("p1"));
    frame(&S, true, WS_OP_CONT, TXT("cd"));
    CHECK_STREAM("ping between fragments", &DEFAULT, "PING[p1] T[abcd]");

    begin();
    frame(&S, false, WS_OP_BINARY, TXT("ab"));
    frame(&S, true, WS_OP_PONG, TXT("q"));
    frame(&S, false, WS_OP_CONT, TXT("cd"));
    frame(&S, true, WS_OP_PING, "", 0);
    frame(&S, true, WS_OP_CONT, TXT("ef"));
    CHECK_STREAM("pong and empty ping between fragments", &DEFAULT, "PONG[q] PING[] B[abcdef]");

    begin();
    frame(&S, false, WS_OP_TEXT, TXT("ab"));
    close_frame(&S, 1000, "bye");
    CHECK_STREAM("close between fragments", &DEFAULT, "CLOSE1000[bye]");

    begin();
    frame(&S, true, WS_OP_PING, big, sizeof(big));
    log_reset(&W);
    log_put(&W, "PING", big, sizeof(big));
    CHECK_STREAM("ping with 125 bytes", &DEFAULT, W.s);

    begin();
    frame(&S, true, WS_OP_CLOSE, "", 0);
    CHECK_STREAM("close without payload reports 1005", &DEFAULT, "CLOSE1005[]");

    begin();
    close_frame(&S, 1000, "");
    CHECK_STREAM("close 1000 without reason", &DEFAULT, "CLOSE1000[]");

    begin();
    close_frame(&S, 1001, "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5");
    CHECK_STREAM("close with a UTF-8 reason", &DEFAULT,
                 "CLOSE1001[\\xce\\xba\\xe1\\xbd\\xb9\\xcf\\x83\\xce\\xbc\\xce\\xb5]");

    static const uint16_t ok_codes[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
                                        1010, 1011, 3000, 3999, 4000, 4999};
    for (size_t i = 0; i < sizeof(ok_codes) / sizeof(ok_codes[0]); i++) {
        char name[64], want[32];
        begin();
        close_frame(&S, ok_codes[i], "r");
        snprintf(name, sizeof(name), "valid close code %u", ok_codes[i]);
        snprintf(want, sizeof(want), "CLOSE%u[r]", ok_codes[i]);
        CHECK_STREAM(name, &DEFAULT, want);
    }
}

/* Length encodings: 16-bit, 64-bit, and non-minimal ones (accepted). */
static void test_lengths(void)
{
    static uint8_t pl[70000];
    static const size_t sizes[] = {125, 126, 127, 65535, 65536, 70000};

    for (size_t i = 0; i < sizeof(pl); i++)
        pl[i] = (uint8_t)('a' + i % 26);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char name[64];
        begin();
        frame(&S, true, WS_OP_TEXT, pl, sizes[i]);
        log_reset(&W);
        log_put(&W, "T", pl, sizes[i]);
        snprintf(name, sizeof(name), "text of %zu bytes", sizes[i]);
        CHECK_STREAM(name, &DEFAULT, W.s);
        CHECK(S.b[1] == (sizes[i] < 126 ? (0x80 | sizes[i]) : sizes[i] <= 65535 ? 0xFE : 0xFF));
    }

    begin();
    frame_raw(&S, 0x81, true, 2, TXT("Hello"));
    CHECK_STREAM("non-minimal 16-bit length accepted", &DEFAULT, "T[Hello]");

    begin();
    frame_raw(&S, 0x81, true, 8, TXT("Hello"));
    CHECK_STREAM("non-minimal 64-bit length accepted", &DEFAULT, "T[Hello]");

    begin();
    frame_raw(&S, 0x82, true, 8, pl, 300);
    log_reset(&W);
    log_put(&W, "B", pl, 300);
    CHECK_STREAM("non-minimal 64-bit length for 300 bytes", &DEFAULT, W.s);
}

/* ---- protocol errors --------------------------------------------------------------------- */

static void test_frame_errors(void)
{
    static const uint8_t rsv[] = {0x40, 0x20, 0x10};
    for (int i = 0; i < 3; i++) {
        char name[64];
        begin();
        frame_raw(&S, (uint8_t)(0x81 | rsv[i]), true, 0, TXT("x"));
        snprintf(name, sizeof(name), "RSV%d set on text", i + 1);
        CHECK_STREAM(name, &DEFAULT, "ERR1002");
        begin();
        frame_raw(&S, (uint8_t)(0x89 | rsv[i]), true, 0, TXT("x"));
        snprintf(name, sizeof(name), "RSV%d set on ping", i + 1);
        CHECK_STREAM(name, &DEFAULT, "ERR1002");
    }

    static const uint8_t reserved[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof(reserved); i++) {
        char name[64];
        begin();
        frame_raw(&S, (uint8_t)(0x80 | reserved[i]), true, 0, TXT("x"));
        snprintf(name, sizeof(name), "reserved opcode 0x%X", reserved[i]);
        CHECK_STREAM(name, &DEFAULT, "ERR1002");
    }

    begin();
    frame_raw(&S, 0x81, false, 0, TXT("Hello"));
    CHECK_STREAM("unmasked client text frame", &DEFAULT, "ERR1002");

    begin();
    frame_raw(&S, 0x89, false, 0, "", 0);
    CHECK_STREAM("unmasked client ping", &DEFAULT, "ERR1002");

    const struct cfg client = {0, true, false};
    begin();
    frame(&S, true, WS_OP_TEXT, TXT("Hello"));
    CHECK_STREAM("masked frame to a client-side parser", &client, "ERR1002");

    begin();
    frame_raw(&S, 0x81, false, 0, TXT("Hello"));
    CHECK_STREAM("unmasked frame to a client-side parser", &client, "T[Hello]");

    static uint8_t pl[200];
    begin();
    frame_raw(&S, 0x89, true, 2, pl, 126);
    CHECK_STREAM("ping with 126 bytes", &DEFAULT, "ERR1002");
    begin();
    frame_raw(&S, 0x88, true, 8, pl, 200);
    CHECK_STREAM("close with 200 bytes (64-bit length)", &DEFAULT, "ERR1002");
    begin();
    frame_raw(&S, 0x8A, true, 2, pl, 5);
    CHECK_STREAM("pong with a 16-bit length", &DEFAULT, "ERR1002");

    static const uint8_t ctrl[] = {0x08, 0x09, 0x0A};
    for (size_t i = 0; i < sizeof(ctrl); i++) {
        char name[64];
        begin();
        frame_raw(&S, ctrl[i], true, 0, TXT("\x03\xe8"));
        snprintf(name, sizeof(name), "control opcode 0x%X with FIN=0", ctrl[i]);
        CHECK_STREAM(name, &DEFAULT, "ERR1002");
    }
}

static void test_sequence_errors(void)
{
    begin();
    frame(&S, true, WS_OP_CONT, TXT("x"));
    CHECK_STREAM("continuation without a message", &DEFAULT, "ERR1002");

    begin();
    frame(&S, true, WS_OP_TEXT, TXT("a"));
    frame(&S, true, WS_OP_CONT, TXT("b"));
    CHECK_STREAM("continuation after a finished message", &DEFAULT, "T[a] ERR1002");

    begin();
    frame(&S, false, WS_OP_TEXT, TXT("a"));
    frame(&S, true, WS_OP_TEXT, TXT("b"));
    CHECK_STREAM("text inside a fragmented message", &DEFAULT, "ERR1002");

    begin();
    frame(&S, false, WS_OP_TEXT, TXT("a"));
    frame(&S, true, WS_OP_PING, TXT("p"));
    frame(&S, true, WS_OP_BINARY, TXT("b"));
    CHECK_STREAM("binary inside a fragmented message", &DEFAULT, "PING[p] ERR1002");

    const struct cfg nobin = {0, false, true};
    begin();
    frame(&S, false, WS_OP_TEXT, TXT("a"));
    frame(&S, true, WS_OP_BINARY, TXT("b"));
    CHECK_STREAM("binary inside a fragmented message, binary refused", &nobin, "ERR1002");

    begin();
    frame(&S, true, WS_OP_BINARY, TXT("b"));
    CHECK_STREAM("binary refused", &nobin, "ERR1003");

    begin();
    frame(&S, true, WS_OP_TEXT, TXT("t"));
    frame(&S, false, WS_OP_BINARY, TXT("b"));
    frame(&S, true, WS_OP_CONT, TXT("c"));
    CHECK_STREAM("fragmented binary refused", &nobin, "T[t] ERR1003");

    static const uint8_t top[8] = {0x80, 0, 0, 0, 0, 0, 0, 1};
    begin();
    put(&S, "\x82\xFF", 2);
    put(&S, top, 8);
    put(&S, "\x01\x02\x03\x04", 4);
    CHECK_STREAM("64-bit length with the top bit set", &DEFAULT, "ERR1002");
}

static void test_size_errors(void)
{
    static uint8_t pl[300];
    const struct cfg max10 = {10, true, true};

    memset(pl, 'x', sizeof(pl));
    begin();
    frame(&S, true, WS_OP_TEXT, pl, 10);
    CHECK_STREAM("message of exactly max_message", &max10, "T[xxxxxxxxxx]");

    begin();
    frame(&S, true, WS_OP_TEXT, pl, 11);
    CHECK_STREAM("single frame over max_message", &max10, "ERR1009");

    begin();
    frame(&S, false, WS_OP_TEXT, pl, 6);
    frame(&S, true, WS_OP_CONT, pl, 4);
    CHECK_STREAM("fragments summing to max_message", &max10, "T[xxxxxxxxxx]");

    begin();
    frame(&S, false, WS_OP_TEXT, pl, 6);
    frame(&S, true, WS_OP_PING, pl, 100);
    frame(&S, true, WS_OP_CONT, pl, 5);
    log_reset(&W);
    log_put(&W, "PING", pl, 100);
    log_printf(&W, " ERR1009");
    CHECK_STREAM("fragments over max_message (pings do not count)", &max10, W.s);

    begin();
    frame(&S, true, WS_OP_TEXT, pl, 6);
    frame(&S, true, WS_OP_TEXT, pl, 6);
    CHECK_STREAM("the limit is per message", &max10, "T[xxxxxx] T[xxxxxx]");

    begin();
    frame(&S, true, WS_OP_PING, pl, 100);
    log_reset(&W);
    log_put(&W, "PING", pl, 100);
    CHECK_STREAM("control frames are not limited by max_message", &max10, W.s);

    static const uint8_t huge[8] = {0x40, 0, 0, 0, 0, 0, 0, 0};
    begin();
    put(&S, "\x81\xFF", 2);
    put(&S, huge, 8);
    CHECK_STREAM("2^62-byte frame over max_message", &max10, "ERR1009");
}

static void test_utf8_errors(void)
{
    begin();
    frame(&S, true, WS_OP_TEXT, TXT("Hello\xC0world"));
    CHECK_STREAM("invalid UTF-8 in a text frame", &DEFAULT, "ERR1007");

    begin();
    frame(&S, false, WS_OP_TEXT, TXT("Hello"));
    frame(&S, true, WS_OP_CONT, TXT("wor\xED\xA0\x80ld"));
    CHECK_STREAM("surrogate in a continuation frame", &DEFAULT, "ERR1007");

    begin();
    frame(&S, false, WS_OP_TEXT, TXT("ab\xED"));
    frame(&S, true, WS_OP_CONT, TXT("\xA0\x80"));
    CHECK_STREAM("surrogate split across fragments", &DEFAULT, "ERR1007");

    begin();
    frame(&S, true, WS_OP_TEXT, TXT("ab\xCE"));
    CHECK_STREAM("text ends inside a UTF-8 sequence", &DEFAULT, "ERR1007");

    begin();
    frame(&S, false, WS_OP_TEXT, TXT("ab\xCE"));
    frame(&S, true, WS_OP_CONT, "", 0);
    CHECK_STREAM("text ends inside a UTF-8 sequence (empty final frame)", &DEFAULT, "ERR1007");

    begin();
    frame(&S, false, WS_OP_TEXT, TXT("ab\xF0\x9F"));
    frame(&S, true, WS_OP_PING, TXT("p"));
    frame(&S, true, WS_OP_CONT, TXT("\x98"));
    CHECK_STREAM("text ends inside a 4-byte sequence after a ping", &DEFAULT, "PING[p] ERR1007");

    begin();
    frame(&S, true, WS_OP_BINARY, TXT("\xC0\xFF"));
    CHECK_STREAM("binary is not UTF-8 checked", &DEFAULT, "B[\\xc0\\xff]");
}

static void test_close_errors(void)
{
    begin();
    frame(&S, true, WS_OP_CLOSE, TXT("\x03"));
    CHECK_STREAM("close with a 1-byte payload", &DEFAULT, "ERR1002");

    static const uint16_t bad_codes[] = {0,    999,  1004, 1005, 1006, 1012, 1013, 1014,
                                         1015, 1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(bad_codes) / sizeof(bad_codes[0]); i++) {
        char name[64];
        begin();
        close_frame(&S, bad_codes[i], "");
        snprintf(name, sizeof(name), "invalid close code %u", bad_codes[i]);
        CHECK_STREAM(name, &DEFAULT, "ERR1002");
    }

    begin();
    close_frame(&S, 1000, "bad \xFF reason");
    CHECK_STREAM("close reason not UTF-8", &DEFAULT, "ERR1007");

    begin();
    close_frame(&S, 1000, "cut \xE2\x82");
    CHECK_STREAM("close reason ends inside a UTF-8 sequence", &DEFAULT, "ERR1007");
}

/* ---- timing: errors decided from the header, at the bad byte ----------------------------- */

static size_t feed_one(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_event *ev)
{
    return ws_parse(p, buf, len, ev);
}

static void test_header_decisions(void)
{
    struct ws_parser p;
    struct ws_event ev;
    uint8_t b[16];

    /* 1009 from a 16-bit length, before the mask key and the payload arrive */
    ws_parser_init(&p, 100, true);
    memcpy(b, "\x81\xFE\x00\xC8", 4);
    CHECK(feed_one(&p, b, 2, &ev) == 2 && ev.type == WS_EV_NONE);
    feed_one(&p, b + 2, 2, &ev);
    CHECK(ev.type == WS_EV_ERROR && ev.close_code == 1009);

    /* 1009 from a 7-bit length, with only the two first bytes */
    ws_parser_init(&p, 10, true);
    feed_one(&p, (uint8_t *)memcpy(b, "\x81\xB2", 2), 2, &ev);
    CHECK(ev.type == WS_EV_ERROR && ev.close_code == 1009);

    /* 1003 from the two first bytes */
    ws_parser_init(&p, 0, false);
    feed_one(&p, (uint8_t *)memcpy(b, "\x82\x85", 2), 2, &ev);
    CHECK(ev.type == WS_EV_ERROR && ev.close_code == 1003);

    /* 1002 for the top length bit, before the mask key */
    ws_parser_init(&p, 0, true);
    memcpy(b, "\x82\xFF\x80\x00\x00\x00\x00\x00\x00\x00", 10);
    feed_one(&p, b, 10, &ev);
    CHECK(ev.type == WS_EV_ERROR && ev.close_code == 1002);

    /* a failed parser repeats its error and consumes nothing */
    const char *why = ev.error;
    CHECK(feed_one(&p, b, 10, &ev) == 0);
    CHECK(ev.type == WS_EV_ERROR && ev.close_code == 1002 && ev.error == why);
    CHECK(feed_one(&p, NULL, 0, &ev) == 0 && ev.type == WS_EV_ERROR);

    /* a large declared length with no limit just waits for the payload */
    ws_parser_init(&p, 0, true);
    memcpy(b, "\x81\xFF\x00\x00\x01\x00\x00\x00\x00\x00\x11\x22\x33\x44", 14);
    CHECK(feed_one(&p, b, 14, &ev) == 14 && ev.type == WS_EV_NONE);
}

/* UTF-8: the error comes with the chunk holding the bad byte, not at the end of the frame. */
static void test_utf8_fail_fast(void)
{
    struct ws_parser p;
    struct ws_event ev;

    begin();
    frame(&S, true, WS_OP_TEXT, TXT("Hello\xC0world"));
    ws_parser_init(&p, 0, true);
    CHECK(ws_parse(&p, S.b, 6 + 5, &ev) == 11);
    CHECK(ev.type == WS_EV_DATA && ev.len == 5 && memcmp(ev.data, "Hello", 5) == 0);
    CHECK(ws_parse(&p, S.b + 11, 0, &ev) == 0 && ev.type == WS_EV_NONE);
    ws_parse(&p, S.b + 11, 1, &ev);
    CHECK(ev.type == WS_EV_ERROR && ev.close_code == 1007);

    /* inside a continuation frame, byte by byte: nothing but DATA before the bad byte */
    begin();
    frame(&S, false, WS_OP_TEXT, TXT("ok"));
    frame(&S, true, WS_OP_CONT, TXT("ab\xF4\x90zz"));
    ws_parser_init(&p, 0, true);
    size_t bad_at = 8 + 6 + 3, err_at = 0;
    for (size_t i = 0; i < S.n && !err_at; i++) {
        ws_parse(&p, S.b + i, 1, &ev);
        if (ev.type == WS_EV_ERROR)
            err_at = i;
    }
    CHECKF(err_at == bad_at, "error at byte %zu, bad byte at %zu", err_at, bad_at);
    CHECK(ev.close_code == 1007);
}

/* MESSAGE_END after the last DATA needs one more call, possibly with no bytes; a zero-length
 * final frame reports it with the header bytes consumed. Pings come whole across calls. */
static void test_event_delivery(void)
{
    struct ws_parser p;
    struct ws_event ev;

    begin();
    frame(&S, true, WS_OP_TEXT, TXT("hi"));
    ws_parser_init(&p, 0, true);
    CHECK(ws_parse(&p, S.b, S.n, &ev) == S.n && ev.type == WS_EV_DATA);
    CHECK(ws_parse(&p, S.b + S.n, 0, &ev) == 0 && ev.type == WS_EV_MESSAGE_END);
    CHECK(ev.opcode == WS_OP_TEXT);
    CHECK(ws_parse(&p, S.b + S.n, 0, &ev) == 0 && ev.type == WS_EV_NONE);

    begin();
    frame(&S, false, WS_OP_BINARY, TXT("a"));
    frame(&S, true, WS_OP_CONT, "", 0);
    ws_parser_init(&p, 0, true);
    CHECK(ws_parse(&p, S.b, S.n, &ev) == 7 && ev.type == WS_EV_DATA);
    CHECK(ws_parse(&p, S.b + 7, S.n - 7, &ev) == 6 && ev.type == WS_EV_MESSAGE_END);
    CHECK(ev.opcode == WS_OP_BINARY);

    begin();
    frame(&S, true, WS_OP_PING, TXT("hello"));
    ws_parser_init(&p, 0, true);
    CHECK(ws_parse(&p, S.b, 8, &ev) == 8 && ev.type == WS_EV_NONE);
    CHECK(ws_parse(&p, S.b + 8, 3, &ev) == 3 && ev.type == WS_EV_PING);
    CHECK(ev.len == 5 && memcmp(ev.data, "hello", 5) == 0);
}

/* ---- masking and writers ----------------------------------------------------------------- */

static void test_mask(void)
{
    static const uint8_t key[4] = {0xA1, 0x02, 0xF3, 0x44};
    uint8_t orig[64], buf[72], want[64];
    int bad = 0;

    for (size_t i = 0; i < sizeof(orig); i++)
        orig[i] = (uint8_t)(i * 37 + 5);
    for (size_t len = 0; len <= 41; len++) {
        for (uint64_t off = 0; off < 8; off++) {
            for (size_t align = 0; align < 8; align++) {
                memcpy(buf + align, orig, len);
                for (size_t i = 0; i < len; i++)
                    want[i] = orig[i] ^ key[(off + i) & 3];
                ws_mask(buf + align, len, key, off + (1ULL << 40));
                bad += memcmp(buf + align, want, len) != 0;
                ws_mask(buf + align, len, key, off);
                bad += memcmp(buf + align, orig, len) != 0;
            }
        }
    }
    CHECKF(bad == 0, "ws_mask: %d wrong", bad);
}

static void test_writers(void)
{
    static const uint8_t mask[4] = {1, 2, 3, 4};
    uint8_t h[14];

    CHECK(ws_frame_header(h, WS_OP_TEXT, true, 0) == 2 && h[0] == 0x81 && h[1] == 0);
    CHECK(ws_frame_header(h, WS_OP_BINARY, false, 125) == 2 && h[0] == 0x02 && h[1] == 125);
    CHECK(ws_frame_header(h, WS_OP_TEXT, true, 126) == 4 && h[1] == 126 && h[2] == 0 &&
          h[3] == 126);
    CHECK(ws_frame_header(h, WS_OP_TEXT, true, 65535) == 4 && h[2] == 0xFF && h[3] == 0xFF);
    CHECK(ws_frame_header(h, WS_OP_TEXT, true, 65536) == 10 && h[1] == 127);
    CHECK(memcmp(h + 2, "\x00\x00\x00\x00\x00\x01\x00\x00", 8) == 0);
    CHECK(ws_frame_header(h, WS_OP_CLOSE, true, 0x0102030405060708ULL) == 10);
    CHECK(memcmp(h + 2, "\x01\x02\x03\x04\x05\x06\x07\x08", 8) == 0);
    CHECK(ws_frame_header_masked(h, WS_OP_PING, true, 5, mask) == 6 && h[0] == 0x89 &&
          h[1] == 0x85 && memcmp(h + 2, mask, 4) == 0);
    CHECK(ws_frame_header_masked(h, WS_OP_TEXT, true, 300, mask) == 8 && h[1] == 0xFE &&
          memcmp(h + 4, mask, 4) == 0);
    CHECK(ws_frame_header_masked(h, WS_OP_TEXT, true, 1 << 20, mask) == 14 && h[1] == 0xFF &&
          memcmp(h + 10, mask, 4) == 0);
}

/* Server frames (ws_frame_header) read back by a client-side parser. */
static void test_server_round_trip(void)
{
    static uint8_t pl[66000];
    uint8_t h[10];
    static const size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 66000};
    const struct cfg client = {0, true, false};

    for (size_t i = 0; i < sizeof(pl); i++)
        pl[i] = (uint8_t)(i % 251);
    begin();
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        put(&S, h, ws_frame_header(h, WS_OP_BINARY, true, sizes[i]));
        put(&S, pl, sizes[i]);
    }
    put(&S, h, ws_frame_header(h, WS_OP_CLOSE, true, 2));
    put(&S, "\x03\xe8", 2);
    log_reset(&W);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        log_put(&W, "B", pl, sizes[i]);
    log_put(&W, "CLOSE1000", NULL, 0);
    check_stream("server frames round trip", S.b, S.n, &client, W.s);
}

/* ---- random valid streams ---------------------------------------------------------------- */

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static size_t random_text(uint8_t *out, size_t max)
{
    static const char *pieces[] = {"a",
                                   "Z",
                                   " ",
                                   "\xC3\xA9",
                                   "\xE2\x82\xAC",
                                   "\xF0\x9F\x98\x80",
                                   "\xF4\x8F\xBF\xBF",
                                   "\xEF\xBF\xBD",
                                   "\x7F",
                                   "\xDF\xBF",
                                   "\xE0\xA0\x80",
                                   "\xF0\x90\x80\x80",
                                   "plain ascii run "};
    size_t n = 0, want = rnd((uint32_t)max);
    while (n < want) {
        const char *p = pieces[rnd(sizeof(pieces) / sizeof(pieces[0]))];
        size_t k = strlen(p);
        if (n + k > max)
            break;
        memcpy(out + n, p, k);
        n += k;
    }
    return n;
}

static void random_control(struct log *want)
{
    uint8_t pl[125];
    size_t n = rnd(126);
    for (size_t i = 0; i < n; i++)
        pl[i] = (uint8_t)rnd(256);
    bool ping = rnd(2);
    frame(&S, true, ping ? WS_OP_PING : WS_OP_PONG, pl, n);
    log_put(want, ping ? "PING" : "PONG", pl, n);
}

/* One message in 1-4 fragments with control frames in between; fragments cut anywhere, even
 * inside a UTF-8 sequence; lengths sometimes encoded non-minimally. */
static void random_message(struct log *want)
{
    static uint8_t msg[2000];
    bool text = rnd(2);
    size_t n = text ? random_text(msg, sizeof(msg)) : rnd(sizeof(msg));
    size_t nfrag = 1 + rnd(4), at = 0;

    if (!text)
        for (size_t i = 0; i < n; i++)
            msg[i] = (uint8_t)rnd(256);
    for (size_t f = 0; f < nfrag; f++) {
        size_t k = f + 1 == nfrag ? n - at : rnd((uint32_t)(n - at + 1));
        uint8_t op = f ? WS_OP_CONT : text ? WS_OP_TEXT : WS_OP_BINARY;
        bool fin = f + 1 == nfrag;
        int enc = rnd(8);
        if (enc == 0 && k <= 65535)
            frame_raw(&S, (uint8_t)((fin ? 0x80 : 0) | op), true, 2, msg + at, k);
        else if (enc == 1)
            frame_raw(&S, (uint8_t)((fin ? 0x80 : 0) | op), true, 8, msg + at, k);
        else
            frame(&S, fin, op, msg + at, k);
        at += k;
        if (!fin && rnd(3) == 0)
            random_control(want);
    }
    log_put(want, text ? "T" : "B", msg, n);
}

static void test_random_streams(void)
{
    static struct log want;
    size_t cuts[8];
    int bad = 0;

    for (int iter = 0; iter < 300; iter++) {
        begin();
        log_reset(&want);
        for (uint32_t m = 1 + rnd(4); m; m--) {
            if (rnd(4) == 0)
                random_control(&want);
            random_message(&want);
        }
        if (rnd(2)) {
            close_frame(&S, 1000, "done");
            log_put(&want, "CLOSE1000", (const uint8_t *)"done", 4);
        }
        run(S.b, S.n, NULL, 0, &DEFAULT, &L1);
        bad += strcmp(L1.s, want.s) != 0;
        for (int r = 0; r < 20; r++) {
            size_t nc = 1 + rnd(8);
            for (size_t i = 0; i < nc; i++)
                cuts[i] = rnd((uint32_t)S.n + 1);
            for (size_t i = 1; i < nc; i++) /* insertion sort: cuts must be ordered */
                for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
                    size_t t = cuts[j];
                    cuts[j] = cuts[j - 1];
                    cuts[j - 1] = t;
                }
            run(S.b, S.n, cuts, nc, &DEFAULT, &L2);
            bad += strcmp(L2.s, want.s) != 0;
        }
    }
    CHECKF(bad == 0, "random streams: %d runs differ from the expected events", bad);
}

int main(void)
{
    test_valid_messages();
    test_valid_control();
    test_lengths();
    test_frame_errors();
    test_sequence_errors();
    test_size_errors();
    test_utf8_errors();
    test_close_errors();
    test_header_decisions();
    test_utf8_fail_fast();
    test_event_delivery();
    test_mask();
    test_writers();
    test_server_round_trip();
    test_random_streams();
    CHECKF(inv_bad == 0, "%ld event invariants failed", inv_bad);
    return tap_done();
}
