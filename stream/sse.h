/* sse.h - an incremental parser for text/event-stream (WHATWG HTML, "Server-sent events",
 * section "Parsing an event stream").
 *
 * Bytes may arrive in any split, down to one at a time. Lines end in LF, CRLF or CR (a CR at the
 * end of one chunk followed by LF at the start of the next is one line end). A leading UTF-8 BOM
 * is skipped. "data:" lines are joined with "\n"; "event:", "id:" (ignored if it contains NUL)
 * and "retry:" (digits only) are honoured; lines starting with ':' are comments; a field name
 * without ':' is a field with an empty value; one space after ':' is dropped. An empty line
 * dispatches the event, unless its data buffer is empty (then the event type is reset and
 * nothing is dispatched). At the end of the stream an unterminated event is discarded.
 *
 * Memory: the parser owns a line buffer and a data buffer that are reused across events; no
 * allocation happens per event once they have grown to the largest event seen. */
#ifndef TRILEMMA_STREAM_SSE_H
#define TRILEMMA_STREAM_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* Readable bytes guaranteed after ev->data[data_len] (a NUL, then slack), so a JSON parser that
 * needs padding (simdjson: 64 bytes) can parse the data in place. */
#define SSE_PADDING 64

struct sse_event {
    const char *type; /* the "event:" value, "message" when none was given */
    size_t type_len;
    const char *data; /* NUL-terminated, followed by SSE_PADDING readable bytes */
    size_t data_len;
    const char *id; /* last event id seen on the stream (persists across events), may be "" */
    size_t id_len;
};

/* Called for every dispatched event; return 0 to go on, non-zero to stop feeding (sse_feed then
 * returns that value). */
typedef int (*sse_event_fn)(void *ctx, const struct sse_event *ev);

struct sse_parser {
    size_t max_event; /* bytes of data per event before -E2BIG; default 1 MiB */
    /* state (zero-fill, then sse_init) */
    struct buf line;
    struct buf data;
    char type[64];
    size_t type_len;
    char id[256];
    size_t id_len;
    long retry_ms;     /* last valid "retry:" value, -1 when none */
    uint8_t bom_state; /* bytes of the BOM matched so far; 3 = done */
    bool last_cr;      /* the previous byte was CR (a following LF belongs to it) */
    bool failed;
};

void sse_init(struct sse_parser *p);
/* Feed bytes. Returns 0, the callback's non-zero value, or -E2BIG when an event's data or a
 * line exceeds max_event (the parser is then failed and keeps returning -E2BIG). */
int sse_feed(struct sse_parser *p, const char *buf, size_t len, sse_event_fn fn, void *ctx);
/* Forget everything (as for a new stream), keeping the buffers' memory. */
void sse_reset(struct sse_parser *p);
void sse_free(struct sse_parser *p);

#endif
