/* record.h - one turn as a self-checking binary record: what the writer queues, what the spill
 * journal holds, and what replay reads back.
 *
 *   header (12 bytes, little endian): magic "TRJ1" | payload length u32 | crc32 u32
 *   payload: version u8 (6; 1 to 5 still replay), the database's identity, then the turn's
 *   fields in a fixed order (record.c)
 *
 * The crc32 (zlib) covers the length field and the payload, so a torn or corrupted tail (a
 * crash in the middle of an append) is recognised and never replayed. */
#ifndef TRILEMMA_STORE_RECORD_H
#define TRILEMMA_STORE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "store/store.h"

#define REC_HEADER 12
#define REC_MAX_PAYLOAD (64u << 20)

/* Append t as one record to out. Bytes PostgreSQL text cannot hold (NUL) become spaces, so
 * offsets into the answer stay valid. Returns 0, or -EMSGSIZE when the payload would exceed
 * REC_MAX_PAYLOAD (out is then left as it was): such a record would read back as a torn tail
 * and hide every record after it. */
int rec_encode(struct buf *out, const struct store_turn *t);

/* The database a checked record belongs to (payload v3 on): returns 1 with *system_id and name
 * (NUL-terminated, cut to cap) set, 0 when the record carries none (written before v3, or while
 * the identity was unknown), -EBADMSG when it is corrupt. Reads only the payload's start. */
int rec_identity(const char *rec, size_t len, uint64_t *system_id, char *name, size_t cap);

/* Look at the record at p[0..n): returns its total length (header included) when it is complete
 * and its checksum matches, 0 when more bytes are needed (a torn tail if the file ends here),
 * -EBADMSG when it is corrupt. */
long rec_check(const char *p, size_t n);

/* A decoded record: t's strings point into the record bytes, which must outlive it; the call
 * and tool records are copies (owned by the rec_turn). */
struct rec_turn {
    struct store_turn t;
    uint32_t *delta_ends;
    struct llm_call_record *calls;
    struct tool_call_record *tools;
    struct cache_saving_record *savings;
    struct span_record *spans;
};

/* Decode a record rec_check accepted. Returns 0 or -EBADMSG. Free with rec_turn_free. */
int rec_decode(const char *rec, size_t len, struct rec_turn *out);
void rec_turn_free(struct rec_turn *rt);

#endif
