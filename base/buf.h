/* buf.h - a growable byte buffer: append at the end, consume from the front. */
#ifndef TRILEMMA_BASE_BUF_H
#define TRILEMMA_BASE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    char *data; /* NULL until the first append */
    size_t off; /* consumed bytes at the front */
    size_t len; /* end of valid bytes (data[off..len) is the content) */
    size_t cap;
};

/* Make room for n more bytes at the end; returns a pointer to them (commit with buf_commit). */
char *buf_reserve(struct buf *b, size_t n);
static inline void buf_commit(struct buf *b, size_t n)
{
    b->len += n;
}
void buf_append(struct buf *b, const void *p, size_t n);
void buf_append_str(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop n bytes from the front; when empty, the offset resets so space is reused. */
void buf_consume(struct buf *b, size_t n);
static inline size_t buf_size(const struct buf *b)
{
    return b->len - b->off;
}
static inline char *buf_begin(const struct buf *b)
{
    static char empty[1]; /* never NULL: NULL + 0 is undefined behaviour */
    return b->data ? b->data + b->off : empty;
}
/* Keep the first n bytes of the content (n <= buf_size): undo appends that turned out wrong. */
static inline void buf_truncate(struct buf *b, size_t n)
{
    b->len = b->off + n;
}
void buf_reset(struct buf *b);
/* Free the memory (the buffer is empty and reusable afterwards). */
void buf_free(struct buf *b);

#endif
