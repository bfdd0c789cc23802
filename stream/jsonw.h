/* jsonw.h - a small JSON writer in plain C for outgoing documents.
 *
 * Appends to a struct buf, tracks commas itself. Strings are escaped per RFC 8259: quote,
 * backslash and control characters (< 0x20, as \n \r \t \b \f or \u00XX); U+2028/U+2029 are
 * escaped too (safe inside <script>); invalid UTF-8 is replaced by U+FFFD (EF BF BD). */
#ifndef TRILEMMA_STREAM_JSONW_H
#define TRILEMMA_STREAM_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define JSONW_MAX_DEPTH 32

struct jsonw {
    struct buf *out;
    int depth;
    bool first[JSONW_MAX_DEPTH]; /* no member/element written yet at this depth */
    bool after_key;
};

void jw_init(struct jsonw *w, struct buf *out);
void jw_obj_begin(struct jsonw *w);
void jw_obj_end(struct jsonw *w);
void jw_arr_begin(struct jsonw *w);
void jw_arr_end(struct jsonw *w);
void jw_key(struct jsonw *w, const char *key);
void jw_str(struct jsonw *w, const char *s);
void jw_strn(struct jsonw *w, const char *s, size_t n);
void jw_int(struct jsonw *w, int64_t v);
void jw_uint(struct jsonw *w, uint64_t v);
void jw_double(struct jsonw *w, double v); /* non-finite values are written as null */
void jw_bool(struct jsonw *w, bool v);
void jw_null(struct jsonw *w);
/* Insert already-valid JSON text as a value. */
void jw_raw(struct jsonw *w, const char *json, size_t n);

/* Shorthands: key then value. */
void jw_kstr(struct jsonw *w, const char *key, const char *s);
void jw_kstrn(struct jsonw *w, const char *key, const char *s, size_t n);
void jw_kint(struct jsonw *w, const char *key, int64_t v);
void jw_kuint(struct jsonw *w, const char *key, uint64_t v);
void jw_kbool(struct jsonw *w, const char *key, bool v);

/* Append the escaped form of s[0..n) (without quotes) to out. */
void json_escape(struct buf *out, const char *s, size_t n);

#endif
