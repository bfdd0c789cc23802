/* mem_backend.h - which allocator base/mem.c sits on: mimalloc, or the C library's when built
 * with sanitizers (AddressSanitizer and LeakSanitizer only see allocations they intercept). */
#ifndef TRILEMMA_BASE_MEM_BACKEND_H
#define TRILEMMA_BASE_MEM_BACKEND_H

#ifdef TRILEMMA_SANITIZE
#include <stdlib.h>
#define mem_backend_malloc malloc
#define mem_backend_calloc calloc
#define mem_backend_realloc realloc
#define mem_backend_free free
#else
#include <mimalloc.h>
#define mem_backend_malloc mi_malloc
#define mem_backend_calloc mi_calloc
#define mem_backend_realloc mi_realloc
#define mem_backend_free mi_free
#endif

#endif
