/* ws_frame.c - RFC 6455 frame parser (server side) and frame header writers.
 *
 * The parser is a small state machine over three phases: collecting a frame header (at most 14
 * bytes, copied into p->hdr so that any split works), streaming a payload, and a pending
 * MESSAGE_END (when the last payload bytes of a message were just reported as DATA: one event
 * per call). Every rule is checked as early as the bytes allow: opcode, RSV bits, masking and
 * fragmentation rules at the second header byte, the length rules (top bit, max_message) as
 * soon as the extended length is in, UTF-8 on each payload chunk. A peer that declares a
 * message too large is therefore refused before it sends (and we buffer) a byte of it.
 *
 * Data payloads are unmasked in place and passed through; control payloads (<= 125 bytes) are
 * copied to p->ctrl so that a ping split over several reads is still reported whole. */
#include "net/ws_frame.h"

#include <string.h>

/* Phases, kept in p->in_payload (zero-filled state starts with a header). */
enum { PH_HEADER = 0, PH_PAYLOAD, PH_MSG_END };

/* Errors, kept in p->failed (0 = not failed) so that a failed parser repeats the same one. */
enum {
    E_NONE,
    E_GENERIC,
    E_RSV,
    E_OPCODE,
    E_UNMASKED,
    E_MASKED,
    E_CTRL_FRAGMENTED,
    E_CTRL_TOO_LONG,
    E_CONT_NO_MESSAGE,
    E_DATA_IN_MESSAGE,
    E_BINARY,
    E_LENGTH_TOP_BIT,
    E_TOO_BIG,
    E_UTF8,
    E_UTF8_TRUNCATED,
    E_CLOSE_ONE_BYTE,
    E_CLOSE_CODE,
    E_CLOSE_UTF8,
    E_COUNT
};

static const struct {
    uint16_t code;
    const char *why;
} errors[E_COUNT] = {
    [E_GENERIC] = {WS_CLOSE_PROTOCOL, "protocol error"},
    [E_RSV] = {WS_CLOSE_PROTOCOL, "reserved bits set"},
    [E_OPCODE] = {WS_CLOSE_PROTOCOL, "reserved opcode"},
    [E_UNMASKED] = {WS_CLOSE_PROTOCOL, "unmasked client frame"},
    [E_MASKED] = {WS_CLOSE_PROTOCOL, "masked server frame"},
    [E_CTRL_FRAGMENTED] = {WS_CLOSE_PROTOCOL, "fragmented control frame"},
    [E_CTRL_TOO_LONG] = {WS_CLOSE_PROTOCOL, "control frame payload over 125 bytes"},
    [E_CONT_NO_MESSAGE] = {WS_CLOSE_PROTOCOL, "continuation frame without a message"},
    [E_DATA_IN_MESSAGE] = {WS_CLOSE_PROTOCOL, "new message inside a fragmented message"},
    [E_BINARY] = {WS_CLOSE_UNSUPPORTED, "binary messages are not accepted"},
    [E_LENGTH_TOP_BIT] = {WS_CLOSE_PROTOCOL, "64-bit length with the top bit set"},
    [E_TOO_BIG] = {WS_CLOSE_TOO_BIG, "message too big"},
    [E_UTF8] = {WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message"},
    [E_UTF8_TRUNCATED] = {WS_CLOSE_INVALID_DATA, "text message ends inside a UTF-8 sequence"},
    [E_CLOSE_ONE_BYTE] = {WS_CLOSE_PROTOCOL, "close frame with a 1-byte payload"},
    [E_CLOSE_CODE] = {WS_CLOSE_PROTOCOL, "invalid close code"},
    [E_CLOSE_UTF8] = {WS_CLOSE_INVALID_DATA, "invalid UTF-8 in close reason"},
};

static inline bool is_control(uint8_t opcode)
{
    return opcode & 0x8;
}

static inline bool opcode_known(uint8_t op)
{
    return op <= WS_OP_BINARY || (op >= WS_OP_CLOSE && op <= WS_OP_PONG);
}

/* Bytes of extended payload length announced by the second header byte. */
static inline size_t ext_len_bytes(uint8_t b1)
{
    b1 &= 0x7f;
    return b1 == 126 ? 2 : b1 == 127 ? 8 : 0;
}

/* Fail the parser with error e; returns `used` for the caller to pass on. */
static size_t fail(struct ws_parser *p, struct ws_event *ev, unsigned e, size_t used)
{
    if (e == E_NONE || e >= E_COUNT)
        e = E_GENERIC; /* a scribbled-on state still reports a protocol error */
    p->failed = (uint8_t)e;
    ev->type = WS_EV_ERROR;
    ev->close_code = errors[e].code;
    ev->error = errors[e].why;
    ev->data = NULL;
    ev->len = 0;
    return used;
}

/* Copy header bytes into p->hdr until it holds `want` bytes; returns how many were taken. */
static size_t hdr_fill(struct ws_parser *p, const uint8_t *buf, size_t len, size_t want)
{
    size_t n;

    if (p->hdr_len >= want)
        return 0;
    n = want - p->hdr_len;
    if (n > len)
        n = len;
    if (n) {
        memcpy(p->hdr + p->hdr_len, buf, n);
        p->hdr_len = (uint8_t)(p->hdr_len + n);
    }
    return n;
}

/* Rules decided by the first two header bytes. Pure: may run again on a later call. */
static unsigned check_first(const struct ws_parser *p)
{
    uint8_t b0 = p->hdr[0], b1 = p->hdr[1], op = b0 & 0x0f;

    if (b0 & 0x70)
        return E_RSV; /* no extension is ever negotiated */
    if (!opcode_known(op))
        return E_OPCODE;
    if (!(b1 & 0x80) && p->expect_masked)
        return E_UNMASKED;
    if ((b1 & 0x80) && !p->expect_masked)
        return E_MASKED;
    if (is_control(op)) {
        if (!(b0 & 0x80))
            return E_CTRL_FRAGMENTED;
        if ((b1 & 0x7f) > 125)
            return E_CTRL_TOO_LONG;
        return E_NONE;
    }
    if (op == WS_OP_CONT && !p->msg_opcode)
        return E_CONT_NO_MESSAGE;
    if (op != WS_OP_CONT && p->msg_opcode)
        return E_DATA_IN_MESSAGE;
    if (op == WS_OP_BINARY && !p->allow_binary)
        return E_BINARY;
    return E_NONE;
}

/* Decode the payload length (header complete up to it) and apply the length rules. Pure apart
 * from storing the length. Non-minimal encodings are accepted: RFC 6455 says the minimal
 * encoding "MUST be used" by senders but names no receiver error for it. */
static unsigned check_length(struct ws_parser *p)
{
    uint8_t l7 = p->hdr[1] & 0x7f, op = p->hdr[0] & 0x0f;
    uint64_t n = l7;

    if (l7 == 126) {
        n = (uint64_t)p->hdr[2] << 8 | p->hdr[3];
    } else if (l7 == 127) {
        n = 0;
        for (int i = 2; i < 10; i++)
            n = n << 8 | p->hdr[i];
        if (n >> 63)
            return E_LENGTH_TOP_BIT;
    }
    p->payload_len = n;
    if (!is_control(op) && p->max_message) {
        uint64_t so_far = op == WS_OP_CONT ? p->msg_len : 0;
        if (n > p->max_message || so_far > p->max_message - n)
            return E_TOO_BIG;
    }
    return E_NONE;
}

/* Report the end of the current text/binary message and close it. */
static void end_message(struct ws_parser *p, struct ws_event *ev)
{
    ev->type = WS_EV_MESSAGE_END;
    ev->opcode = p->msg_opcode;
    ev->data = NULL;
    ev->len = 0;
    p->msg_opcode = 0;
    p->msg_len = 0;
    p->in_payload = PH_HEADER;
}

/* A data frame's payload is complete. If it was the final frame, the message ends: at once,
 * or on the next call when this call already reports the last DATA. */
static void end_data_frame(struct ws_parser *p, struct ws_event *ev)
{
    p->in_payload = PH_HEADER;
    if (!p->fin)
        return;
    if (p->msg_opcode == WS_OP_TEXT && !utf8_complete(&p->utf8)) {
        fail(p, ev, E_UTF8_TRUNCATED, 0);
        return;
    }
    if (ev->type == WS_EV_DATA)
        p->in_payload = PH_MSG_END;
    else
        end_message(p, ev);
}

/* A control frame is complete in p->ctrl: report it, validating a close payload. */
static void end_control_frame(struct ws_parser *p, struct ws_event *ev)
{
    size_t n = (size_t)p->payload_len;

    p->in_payload = PH_HEADER;
    ev->opcode = p->opcode;
    ev->data = p->ctrl;
    ev->len = n;
    if (p->opcode == WS_OP_PING) {
        ev->type = WS_EV_PING;
        return;
    }
    if (p->opcode == WS_OP_PONG) {
        ev->type = WS_EV_PONG;
        return;
    }
    ev->type = WS_EV_CLOSE;
    if (n == 0) {
        ev->close_code = WS_CLOSE_NO_STATUS;
        return;
    }
    if (n == 1) {
        fail(p, ev, E_CLOSE_ONE_BYTE, 0);
        return;
    }
    ev->close_code = (uint16_t)(p->ctrl[0] << 8 | p->ctrl[1]);
    ev->data = p->ctrl + 2;
    ev->len = n - 2;
    if (!ws_close_code_valid(ev->close_code))
        fail(p, ev, E_CLOSE_CODE, 0);
    else if (!utf8_valid(ev->data, ev->len))
        fail(p, ev, E_CLOSE_UTF8, 0);
}

/* The header is complete: latch the frame, open or extend the message. */
static void begin_frame(struct ws_parser *p, struct ws_event *ev)
{
    size_t mask_at = 2 + ext_len_bytes(p->hdr[1]);

    p->opcode = p->hdr[0] & 0x0f;
    p->fin = p->hdr[0] >> 7;
    p->masked = p->hdr[1] >> 7;
    if (p->masked)
        memcpy(p->mask, p->hdr + mask_at, 4);
    p->hdr_len = 0;
    p->payload_done = 0;
    p->in_payload = PH_PAYLOAD;
    p->frames++;
    if (!is_control(p->opcode)) {
        if (p->opcode != WS_OP_CONT) {
            p->msg_opcode = p->opcode;
            p->msg_len = 0;
            p->utf8.state = 0;
        }
        /* saturate: with max_message 0 nothing else bounds the sum of declared lengths */
        p->msg_len =
            p->msg_len > UINT64_MAX - p->payload_len ? UINT64_MAX : p->msg_len + p->payload_len;
    }
    if (p->payload_len == 0) {
        if (is_control(p->opcode))
            end_control_frame(p, ev);
        else
            end_data_frame(p, ev);
    }
}

/* Header phase: collect and check header bytes, each rule as soon as its bytes are in. */
static size_t parse_header(struct ws_parser *p, const uint8_t *buf, size_t len, struct ws_event *ev)
{
    size_t used = hdr_fill(p, buf, len, 2);
    size_t len_end, hdr_end;
    unsigned e;

    if (p->hdr_len < 2)
        return used;
    if ((e = check_first(p)))
        return fail(p, ev, e, used);
    len_end = 2 + ext_len_bytes(p->hdr[1]);
    used += hdr_fill(p, buf + used, len - used, len_end);
    if (p->hdr_len < len_end)
        return used;
    if ((e = check_length(p)))
        return fail(p, ev, e, used);
    hdr_end = len_end + (p->hdr[1] & 0x80 ? 4 : 0);
    used += hdr_fill(p, buf + used, len - used, hdr_end);
    if (p->hdr_len < hdr_end)
        return used;
    begin_frame(p, ev);
    return used;
}

/* Payload phase of a data frame: unmask in place, validate text, report the chunk. */
static size_t data_payload(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_event *ev)
{
    uint64_t left = p->payload_len - p->payload_done;
    size_t n = left < len ? (size_t)left : len;

    if (p->masked)
        ws_mask(buf, n, p->mask, p->payload_done);
    if (p->msg_opcode == WS_OP_TEXT && !utf8_feed(&p->utf8, buf, n))
        return fail(p, ev, E_UTF8, n);
    p->payload_done += n;
    ev->type = WS_EV_DATA;
    ev->opcode = p->msg_opcode;
    ev->data = buf;
    ev->len = n;
    if (p->payload_done == p->payload_len)
        end_data_frame(p, ev);
    return n;
}

/* Payload phase of a control frame: collect into p->ctrl, report when whole. */
static size_t control_payload(struct ws_parser *p, const uint8_t *buf, size_t len,
                              struct ws_event *ev)
{
    size_t at = (size_t)p->payload_done;
    size_t left = (size_t)p->payload_len - at;
    size_t n = left < len ? left : len;

    memcpy(p->ctrl + at, buf, n);
    if (p->masked)
        ws_mask(p->ctrl + at, n, p->mask, at);
    p->payload_done += n;
    if (p->payload_done == p->payload_len)
        end_control_frame(p, ev);
    return n;
}

/* Initialise a server-side parser. */
void ws_parser_init(struct ws_parser *p, uint64_t max_message, bool allow_binary)
{
    memset(p, 0, sizeof(*p));
    p->max_message = max_message;
    p->allow_binary = allow_binary;
    p->expect_masked = true;
}

/* Consume bytes until one event is ready or the input is used up. See ws_frame.h. */
size_t ws_parse(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_event *ev)
{
    size_t used = 0;

    memset(ev, 0, sizeof(*ev));
    if (p->failed)
        return fail(p, ev, p->failed, 0);
    if (p->in_payload == PH_MSG_END) {
        end_message(p, ev);
        return 0;
    }
    while (used < len && ev->type == WS_EV_NONE) {
        if (p->in_payload == PH_HEADER)
            used += parse_header(p, buf + used, len - used, ev);
        else if (is_control(p->opcode))
            used += control_payload(p, buf + used, len - used, ev);
        else
            used += data_payload(p, buf + used, len - used, ev);
    }
    return used;
}

/* Close codes a peer may send (RFC 6455 section 7.4): the defined ones that are not reserved
 * for local use (1004-1006, 1015), and the registered/private ranges 3000-4999. */
bool ws_close_code_valid(uint16_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

/* Write a server frame header with the minimal length encoding. */
size_t ws_frame_header(uint8_t *out, uint8_t opcode, bool fin, uint64_t len)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

/* Write a client frame header: the server header with the mask bit and the mask key. */
size_t ws_frame_header_masked(uint8_t *out, uint8_t opcode, bool fin, uint64_t len,
                              const uint8_t mask[4])
{
    size_t n = ws_frame_header(out, opcode, fin, len);

    out[1] |= 0x80;
    memcpy(out + n, mask, 4);
    return n + 4;
}

/* XOR with the mask eight bytes at a time: the 4-byte key, rotated to `offset`, is replicated
 * into a 64-bit word; memcpy keeps the unaligned loads defined and byte order irrelevant. */
void ws_mask(uint8_t *buf, size_t len, const uint8_t mask[4], uint64_t offset)
{
    uint8_t pat[8];
    uint64_t m;
    size_t i = 0;

    for (int k = 0; k < 8; k++)
        pat[k] = mask[(offset + (uint64_t)k) & 3];
    memcpy(&m, pat, sizeof(m));
    for (; len - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, buf + i, sizeof(w));
        w ^= m;
        memcpy(buf + i, &w, sizeof(w));
    }
    for (; i < len; i++)
        buf[i] ^= pat[i & 7];
}
