/* ws_frame.h - RFC 6455 frame codec for the server side: a resumable, non-allocating parser of
 * client frames and writers of server frame headers.
 *
 * The parser is fed whatever bytes arrived (any split, down to one byte at a time) and reports
 * events. Payload bytes of data frames are unmasked in place in the caller's buffer and handed
 * out as they arrive; control-frame payloads (<= 125 bytes) are collected inside the parser so
 * that they are delivered whole. Text is validated as UTF-8 as it arrives, across fragments. */
#ifndef TRILEMMA_NET_WS_FRAME_H
#define TRILEMMA_NET_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/utf8.h"

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005, /* never sent on the wire */
    WS_CLOSE_ABNORMAL = 1006,  /* never sent on the wire */
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
};

enum ws_event_type {
    WS_EV_NONE = 0,    /* consumed bytes, nothing to report yet */
    WS_EV_DATA,        /* ev.data/ev.len: payload bytes of the current text/binary message */
    WS_EV_MESSAGE_END, /* the current message is complete (its final frame ended) */
    WS_EV_PING,        /* ev.data/ev.len: whole ping payload (<= 125 bytes) */
    WS_EV_PONG,        /* ev.data/ev.len: whole pong payload */
    WS_EV_CLOSE, /* ev.close_code (1005 if the frame had no payload), ev.data/ev.len: reason */
    WS_EV_ERROR, /* ev.close_code: the code to close with (1002, 1003, 1007 or 1009) */
};

struct ws_event {
    enum ws_event_type type;
    uint8_t opcode; /* for DATA/MESSAGE_END: the message's opcode (TEXT or BINARY) */
    uint16_t close_code;
    const uint8_t *data;
    size_t len;
    const char *error; /* for WS_EV_ERROR: a short human reason ("unmasked frame", ...) */
};

struct ws_parser {
    /* configuration; set before the first call */
    uint64_t max_message; /* bytes; 0 means unlimited. Checked against declared lengths. */
    bool allow_binary;    /* false: a binary message is an error with 1003 */
    bool expect_masked;   /* true on a server (client frames must be masked) */

    /* state; zero-filled to start, never touched by the caller */
    uint8_t hdr[14];
    uint8_t hdr_len;
    uint8_t in_payload;
    uint8_t opcode;
    uint8_t fin;
    uint8_t mask[4];
    uint8_t masked;
    uint8_t failed;
    uint8_t msg_opcode; /* TEXT/BINARY while a fragmented message is open, else 0 */
    uint64_t payload_len;
    uint64_t payload_done;
    uint64_t msg_len; /* declared payload bytes of the open message so far */
    struct utf8_state utf8;
    uint8_t ctrl[125];
    uint64_t frames; /* frames whose header was accepted (statistics) */
};

/* Initialise a server-side parser (expect_masked = true) with the given limits. */
void ws_parser_init(struct ws_parser *p, uint64_t max_message, bool allow_binary);

/* Consume bytes from buf[0..len) and report at most one event in *ev.
 * Returns the number of bytes consumed (may be 0 only when an event is reported, e.g. the
 * MESSAGE_END that follows the DATA event carrying a message's last bytes).
 * WS_EV_NONE means all len bytes were consumed and nothing is pending. After any other event,
 * call again with the rest -- even when no bytes are left (len 0), since a MESSAGE_END may be
 * pending -- until WS_EV_NONE or WS_EV_ERROR:
 *     for (;;) { n = ws_parse(p, buf + off, len - off, &ev); off += n;
 *                if (ev.type == WS_EV_NONE) break; handle(&ev); if (ev.type == WS_EV_ERROR) ...; }
 * Data-frame payload bytes in buf are unmasked in place (hence the non-const buffer); DATA's
 * ev.data points into buf. PING/PONG/CLOSE payloads point into the parser (p->ctrl) and stay
 * valid until the next call. Control frames must use the 7-bit length form.
 * With expect_masked false (client side) a masked frame is an error, as RFC 6455 requires.
 * After WS_EV_ERROR the parser is failed: every further call reports the same error and
 * consumes nothing. */
size_t ws_parse(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_event *ev);

/* True for close codes a peer may send: 1000-1003, 1007-1011, 3000-4999. */
bool ws_close_code_valid(uint16_t code);

/* Write an unmasked (server) frame header for a payload of len bytes into out (<= 10 bytes).
 * Returns the header length. */
size_t ws_frame_header(uint8_t *out, uint8_t opcode, bool fin, uint64_t len);

/* Write a masked (client) frame header with the 4-byte mask into out (<= 14 bytes). For tests
 * and clients. Returns the header length. */
size_t ws_frame_header_masked(uint8_t *out, uint8_t opcode, bool fin, uint64_t len,
                              const uint8_t mask[4]);

/* XOR buf with the mask, starting at mask position `offset` (payload offset modulo 4), a word at
 * a time. */
void ws_mask(uint8_t *buf, size_t len, const uint8_t mask[4], uint64_t offset);

#endif
