/* buf.c - growable byte buffer. Growth doubles; consumed front space is reclaimed by sliding
 * only when that avoids a reallocation. */
#include "base/buf.h"
#include "base/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

char *buf_reserve(struct buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return b->data + b->len;
    size_t used = b->len - b->off;
    if (b->off && b->cap - used >= n) {
        memmove(b->data, b->data + b->off, used);
        b->off = 0;
        b->len = used;
        return b->data + b->len;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap - used < n)
        cap *= 2;
    if (b->off) {
        char *d = xmalloc(cap);
        memcpy(d, b->data + b->off, used);
        xfree(b->data);
        b->data = d;
        b->off = 0;
        b->len = used;
    } else {
        b->data = xrealloc(b->data, cap);
    }
    b->cap = cap;
    return b->data + b->len;
}

void buf_append(struct buf *b, const void *p, size_t n)
{
    if (!n)
        return;
    memcpy(buf_reserve(b, n), p, n);
    b->len += n;
}

void buf_append_str(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    char *p = buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void buf_consume(struct buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

void buf_reset(struct buf *b)
{
    b->off = b->len = 0;
}

void buf_free(struct buf *b)
{
    xfree(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}
