/* json.h - the JSON boundary: a C API over simdjson On-Demand (json_shim.cpp).
 *
 * One json_doc is reused for many documents (one per worker, or per stream). Values are found
 * by JSON Pointer (RFC 6901: "" is the root, "/choices/0/delta/content", "~1" = '/', "~0" = '~').
 * Strings returned are unescaped, NUL-terminated, and stay valid until the next json_doc_load
 * on the same doc. No exceptions cross the C boundary. */
#ifndef TRILEMMA_STREAM_JSON_H
#define TRILEMMA_STREAM_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of readable padding simdjson needs after a document (SIMDJSON_PADDING). */
#define JSON_PADDING 64

typedef struct json_doc json_doc;

enum json_type {
    JSON_MISSING = 0, /* the pointer does not resolve */
    JSON_NULL,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
};

json_doc *json_doc_create(void);
void json_doc_destroy(json_doc *d);

/* Load and fully validate a document. The bytes are copied into the doc's own padded buffer.
 * Returns 0, -EINVAL for invalid JSON (including trailing content and invalid UTF-8 in
 * strings), -E2BIG if the document exceeds the configured maximum depth or size (4 MiB). */
int json_doc_load(json_doc *d, const char *buf, size_t len);

/* As json_doc_load, and also refuses a document in which an object has two members with the
 * same key (compared after unescaping): -EEXIST. JSON (RFC 8259 4) leaves duplicates to the
 * reader, and readers disagree (first wins here, last in Python and browsers): for what the
 * clients send, one reading only. */
int json_doc_load_unique(json_doc *d, const char *buf, size_t len);

/* As json_doc_load but without the copy: buf must have at least JSON_PADDING readable bytes
 * after len, and must stay unchanged until the next load. */
int json_doc_load_padded(json_doc *d, const char *buf, size_t len);

enum json_type json_type_at(json_doc *d, const char *ptr);

/* Each getter returns 0, -ENOENT if the pointer does not resolve, -EINVAL on a wrong type
 * (json_get_int: also a non-integer or out-of-range number). */
int json_get_string(json_doc *d, const char *ptr, const char **s, size_t *len);
int json_get_int(json_doc *d, const char *ptr, int64_t *out);
int json_get_double(json_doc *d, const char *ptr, double *out);
int json_get_bool(json_doc *d, const char *ptr, bool *out);

/* The value's JSON text exactly as in the input (minified only if the input was). */
int json_get_raw(json_doc *d, const char *ptr, const char **s, size_t *len);

/* Number of elements of an array or members of an object. */
int json_count(json_doc *d, const char *ptr, size_t *n);

/* The key of the idx-th member of the object at ptr (unescaped). */
int json_key_at(json_doc *d, const char *ptr, size_t idx, const char **key, size_t *len);

#ifdef __cplusplus
}
#endif

#endif
