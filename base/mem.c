/* mem.c - allocation over mimalloc with out-of-memory handled in one place.
 *
 * Why abort: a worker that cannot allocate a few hundred bytes cannot make progress on any
 * session either; limits (queue sizes, message sizes, connection caps) are what keep memory
 * bounded, so reaching this path means those limits are misconfigured for the machine. */
#include "base/mem.h"

#include "base/mem_backend.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "trilemma: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = mem_backend_malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t count, size_t n)
{
    void *p = mem_backend_calloc(count ? count : 1, n ? n : 1);
    if (!p)
        oom(count * n);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = mem_backend_realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xstrndup(const char *s, size_t n)
{
    char *d = xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

void xfree(void *p)
{
    mem_backend_free(p);
}
