/* http_parser.h - resumable, non-allocating HTTP/1.1 request-head parser (picohttpparser style).
 *
 * The parser never allocates and never reads past buf[len). Pointers in the result point into
 * the caller's buffer, which must stay unchanged while they are used. */
#ifndef TRILEMMA_NET_HTTP_PARSER_H
#define TRILEMMA_NET_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_MAX_HEADERS 32

struct http_header {
    const char *name;
    size_t name_len;
    const char *value; /* leading and trailing spaces/tabs trimmed */
    size_t value_len;
};

struct http_request {
    const char *method;
    size_t method_len;
    const char *target; /* request-target as sent, e.g. "/ws?token=abc" */
    size_t target_len;
    const char *path; /* target up to '?' (no query) */
    size_t path_len;
    const char *query; /* after '?', NULL when absent */
    size_t query_len;
    int minor_version; /* HTTP/1.<minor_version>; only 1.0 and 1.1 are accepted */
    size_t num_headers;
    struct http_header headers[HTTP_MAX_HEADERS];
};

enum {
    HTTP_PARSE_ERROR = -1,      /* malformed request: answer 400 */
    HTTP_PARSE_INCOMPLETE = -2, /* need more bytes */
    HTTP_PARSE_TOO_MANY = -3,   /* more than HTTP_MAX_HEADERS headers: answer 431 */
};

/* Parse a request head (request line, headers, empty line) from buf[0..len).
 * last_len is the length passed in the previous call on the same bytes if that call returned
 * HTTP_PARSE_INCOMPLETE (0 the first time): the search for the end of the head resumes there, so
 * feeding a head byte by byte stays linear.
 * Returns the number of bytes of the head (> 0) when complete, or HTTP_PARSE_* (< 0).
 * Rules: method is a token; target starts with '/' (origin-form) or is "*"; version HTTP/1.0 or
 * HTTP/1.1; lines end in CRLF or bare LF; header names are tokens with no space before ':';
 * obsolete line folding is rejected; control characters other than HTAB in values are rejected. */
int http_parse_request(const char *buf, size_t len, size_t last_len, struct http_request *req);

/* Case-insensitive header lookup; returns the first match or NULL. */
const struct http_header *http_find_header(const struct http_request *req, const char *name);

/* Number of headers named `name` (case-insensitive). Used to refuse duplicated singleton
 * headers such as Sec-WebSocket-Key. */
size_t http_count_header(const struct http_request *req, const char *name);

/* True if the comma-separated header value contains `token` (case-insensitive, optional
 * whitespace around elements), e.g. http_has_token("keep-alive, Upgrade", "upgrade"). */
bool http_has_token(const char *value, size_t value_len, const char *token);

/* Find query parameter `name` in query[0..query_len) and percent-decode its value ('+' becomes
 * a space) into out (NUL-terminated). Returns the decoded length, -1 when absent, -2 when the
 * value is malformed or does not fit in outcap - 1 bytes. Names are compared byte for byte,
 * undecoded; the first occurrence wins; a bad escape or a decoded NUL ("%00") is malformed. */
int http_query_param(const char *query, size_t query_len, const char *name, char *out,
                     size_t outcap);

#endif
