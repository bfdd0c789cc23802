/* mem.h - the one allocation wrapper (mimalloc underneath); out-of-memory is fatal here, once. */
#ifndef TRILEMMA_BASE_MEM_H
#define TRILEMMA_BASE_MEM_H

#include <stddef.h>

/* Allocate; never return NULL: on exhaustion the process logs and aborts (see mem.c for why). */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void xfree(void *p);

#endif
