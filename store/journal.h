/* journal.h - the spill journal: one append-only file of turn records (record.h) per worker,
 * where turns go while PostgreSQL is away, and from which they are replayed in order when it is
 * back.
 *
 * Files are named DIR/PID-wN.journal and held with an exclusive flock(2) while their owner
 * lives, so a file that can be locked belongs to a process that died: it is an orphan, and
 * whoever locks it (store_replay_journals at start, or a running worker) replays and deletes
 * it. Appends are asynchronous on the worker's ring: one writev linked to one fdatasync per
 * batch. The file's valid end is found by checking records from the start; a torn or corrupt
 * tail (a crash mid-append) is cut off and never replayed. */
#ifndef TRILEMMA_STORE_JOURNAL_H
#define TRILEMMA_STORE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "base/buf.h"
#include "net/loop.h"

struct journal {
    int fd;
    char *path;
    uint64_t size;       /* end of the last complete, durable record */
    uint64_t replay_off; /* records before this offset are in PostgreSQL */
    uint64_t dropped;    /* bytes of torn or corrupt tail ignored when opened */
};

/* Open (create) this process's journal for worker `worker` in dir (made if missing), locked.
 * Returns NULL with err on failure. */
struct journal *journal_open_own(const char *dir, int worker, char *err, size_t errlen);

/* Lock and open the next orphan in dir other than `skip` (a path), or NULL when there is none.
 * Its valid records are [0, size). Any database's: tests and tools. */
struct journal *journal_adopt(const char *dir, const char *skip);

struct store_db_id;

/* journal_adopt for database `want`: an orphan whose first record names another database is
 * left alone (not locked, not read further, never deleted), logged once per file and counted
 * (journal_foreign_count). One whose records carry no identity (written before journals had
 * one, or while the identity was unknown) is adopted as before. While want is unknown (NULL or
 * system_id 0) an orphan that names a database is left alone too: it cannot be checked. */
struct journal *journal_adopt_for(const char *dir, const char *skip,
                                  const struct store_db_id *want);

/* Orphans of another database found by the last complete look at a journal folder (any
 * thread): for /metrics (trilemma_store_foreign_journals). */
uint64_t journal_foreign_count(void);

/* Close; unlink_it deletes the file first (while still locked). */
void journal_close(struct journal *j, bool unlink_it);

/* Empty the journal (everything in it is in PostgreSQL). Returns 0 or -errno. */
int journal_truncate(struct journal *j);

/* Read whole records from off onward, at most max_records and about max_bytes (a single bigger
 * record is still read whole), up to j->size. Appends them to out and returns the number read
 * (0 at the end), the offset after them in *end; -errno on a read error. */
int journal_read(struct journal *j, uint64_t off, uint32_t max_records, size_t max_bytes,
                 struct buf *out, uint64_t *end);

/* Split records laid back to back in p[0..n) (as journal_read returns them): returns the length
 * of the first one. */
size_t journal_rec_len(const char *p, size_t n);

/* ---- asynchronous append on a loop ---- */

/* Result: 0 when the records are written and fdatasync'd (j->size has grown), or -errno (the
 * partial write was cut off: j->size is unchanged). */
typedef void (*journal_done_fn)(void *ctx, int result);

struct journal_append {
    struct loop *l;
    uint8_t op;
    uint32_t gen;
    struct journal *j;
    journal_done_fn fn;
    void *ctx;
    uint64_t bytes;
    int write_res;
    int sync_res;
    int cqes_left;
};

/* Set up a (one append in flight at a time) on loop l, whose completions use op code op (the
 * handler is registered here; journal_append_fini unregisters it). */
void journal_append_init(struct journal_append *a, struct loop *l, uint8_t op);
void journal_append_fini(struct journal_append *a);
static inline bool journal_append_busy(const struct journal_append *a)
{
    return a->cqes_left > 0;
}

/* Append iov[0..n) (whole records, n <= IOV_MAX) to j at j->size: one writev linked to one
 * fdatasync. The iovecs and the bytes they point to must stay untouched until fn runs. */
void journal_append_start(struct journal_append *a, struct journal *j, const struct iovec *iov,
                          unsigned n, journal_done_fn fn, void *ctx);

/* Blocking append + fdatasync (shutdown only). Returns 0 or -errno. */
int journal_append_sync(struct journal *j, const struct iovec *iov, unsigned n);

#endif
