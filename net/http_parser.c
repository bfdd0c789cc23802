/* http_parser.c - resumable, non-allocating HTTP/1.1 request-head parser.
 *
 * Two passes, as in picohttpparser's is_complete + parse_request: a cheap scan finds the empty
 * line that ends the head, resuming where the previous call stopped (so a head that trickles in
 * byte by byte costs linear time), and refuses bytes no head may contain (NUL, other control
 * characters, a CR not followed by LF) as soon as they arrive, so that a client speaking
 * something else (TLS, binary garbage) is turned away without waiting for a timeout. Only a
 * complete head is then parsed, line by line, so the structured pass never has to resume and
 * the result is a pure function of the head bytes: the same whatever the split of the input.
 *
 * Strictness follows RFC 9112 where it matters for request smuggling and header confusion: no
 * whitespace before ':', no obsolete line folding, single spaces in the request line, no bare
 * CR. Bare LF line ends are tolerated (RFC 9112 section 2.2 allows it). */
#include "net/http_parser.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/* tchar (RFC 9110 section 5.6.2): the bytes of methods and header names. */
static const uint8_t tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1,         ['&'] = 1,         ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1,         ['^'] = 1,         ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1, ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

static inline bool is_tchar(uint8_t c)
{
    return tchar[c];
}

/* Visible ASCII: the bytes of a request-target (raw non-ASCII must be percent-encoded). */
static inline bool is_vchar(uint8_t c)
{
    return c > 0x20 && c < 0x7f;
}

/* field-value bytes: VCHAR, obs-text, SP and HTAB. */
static inline bool is_field_byte(uint8_t c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static inline bool is_ows(uint8_t c)
{
    return c == ' ' || c == '\t';
}

/* Control characters that may appear nowhere in a head (CR and LF are checked separately). */
static inline bool is_forbidden_ctl(uint8_t c)
{
    return (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f;
}

/* Skip the empty lines a client may send before the request line (RFC 9112 section 2.2). */
static size_t skip_empty_lines(const uint8_t *s, size_t len)
{
    size_t i = 0;

    for (;;) {
        if (i < len && s[i] == '\n')
            i += 1;
        else if (len - i >= 2 && s[i] == '\r' && s[i + 1] == '\n')
            i += 2;
        else
            return i;
    }
}

/* Look for the empty line ending the head in s[from..len). Sets *end just past it and returns
 * 0, or returns HTTP_PARSE_INCOMPLETE or HTTP_PARSE_ERROR (a forbidden byte). Only forward
 * context is examined, so resuming a few bytes before the previous length is exact. */
static int find_head_end(const uint8_t *s, size_t len, size_t from, size_t *end)
{
    for (size_t i = from; i < len; i++) {
        uint8_t c = s[i];

        if (c == '\r') {
            if (i + 1 == len)
                return HTTP_PARSE_INCOMPLETE;
            if (s[i + 1] != '\n')
                return HTTP_PARSE_ERROR; /* bare CR */
        } else if (c == '\n') {
            if (i + 1 == len)
                return HTTP_PARSE_INCOMPLETE;
            if (s[i + 1] == '\n') {
                *end = i + 2;
                return 0;
            }
            if (s[i + 1] == '\r') {
                if (i + 2 == len)
                    return HTTP_PARSE_INCOMPLETE;
                if (s[i + 2] != '\n')
                    return HTTP_PARSE_ERROR;
                *end = i + 3;
                return 0;
            }
        } else if (is_forbidden_ctl(c)) {
            return HTTP_PARSE_ERROR;
        }
    }
    return HTTP_PARSE_INCOMPLETE;
}

/* Return the position after a line end at p (CRLF or bare LF), or NULL if there is none. */
static const uint8_t *line_end(const uint8_t *p, const uint8_t *end)
{
    if (p < end && *p == '\n')
        return p + 1;
    if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
        return p + 2;
    return NULL;
}

/* Split the request-target into path and query. */
static void split_target(struct http_request *req)
{
    const char *q = memchr(req->target, '?', req->target_len);

    req->path = req->target;
    req->path_len = q ? (size_t)(q - req->target) : req->target_len;
    req->query = q ? q + 1 : NULL;
    req->query_len = q ? req->target_len - req->path_len - 1 : 0;
}

/* request-line = method SP request-target SP HTTP-version CRLF. Returns the start of the next
 * line or NULL. */
static const uint8_t *parse_request_line(const uint8_t *p, const uint8_t *end,
                                         struct http_request *req)
{
    const uint8_t *tok = p;

    while (p < end && is_tchar(*p))
        p++;
    if (p == tok || p == end || *p != ' ')
        return NULL;
    req->method = (const char *)tok;
    req->method_len = (size_t)(p - tok);

    tok = ++p;
    while (p < end && is_vchar(*p))
        p++;
    if (p == tok || p == end || *p != ' ')
        return NULL;
    req->target = (const char *)tok;
    req->target_len = (size_t)(p - tok);
    if (tok[0] != '/' && !(req->target_len == 1 && tok[0] == '*'))
        return NULL;
    split_target(req);

    p++;
    if (end - p < 8 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1'))
        return NULL;
    req->minor_version = p[7] - '0';
    return line_end(p + 8, end);
}

/* field-line = field-name ":" OWS field-value OWS. Returns the start of the next line or NULL. */
static const uint8_t *parse_header_line(const uint8_t *p, const uint8_t *end, struct http_header *h)
{
    const uint8_t *name = p;

    while (p < end && is_tchar(*p))
        p++;
    /* an empty name, or anything (space included) between the name and ':', is malformed */
    if (p == name || p == end || *p != ':')
        return NULL;
    h->name = (const char *)name;
    h->name_len = (size_t)(p - name);

    p++;
    while (p < end && is_ows(*p))
        p++;
    const uint8_t *value = p;
    while (p < end && is_field_byte(*p))
        p++;
    const uint8_t *vend = p;
    while (vend > value && is_ows(vend[-1]))
        vend--;
    h->value = (const char *)value;
    h->value_len = (size_t)(vend - value);
    return line_end(p, end); /* NULL if a control character stopped the value */
}

/* Parse header lines up to the empty line, which is the last line of [p, end). */
static int parse_headers(const uint8_t *p, const uint8_t *end, struct http_request *req)
{
    for (;;) {
        const uint8_t *next = line_end(p, end);

        if (next)
            return next == end ? 0 : HTTP_PARSE_ERROR;
        if (p >= end || is_ows(*p))
            return HTTP_PARSE_ERROR; /* obs-fold, or whitespace before the first header */
        if (req->num_headers == HTTP_MAX_HEADERS)
            return HTTP_PARSE_TOO_MANY;
        p = parse_header_line(p, end, &req->headers[req->num_headers]);
        if (!p)
            return HTTP_PARSE_ERROR;
        req->num_headers++;
    }
}

/* Parse a request head. See http_parser.h for the contract. */
int http_parse_request(const char *buf, size_t len, size_t last_len, struct http_request *req)
{
    const uint8_t *s = (const uint8_t *)buf;
    size_t start = skip_empty_lines(s, len);
    size_t from = last_len > 3 ? last_len - 3 : 0;
    size_t end = 0;
    int r;

    req->num_headers = 0;
    req->query = NULL;
    req->query_len = 0;
    if (from < start)
        from = start;
    if (from > len)
        from = len;
    r = find_head_end(s, len, from, &end);
    if (r)
        return r;
    if (end > INT_MAX)
        return HTTP_PARSE_ERROR;

    const uint8_t *p = parse_request_line(s + start, s + end, req);
    if (!p)
        return HTTP_PARSE_ERROR;
    r = parse_headers(p, s + end, req);
    return r ? r : (int)end;
}

/* Find the first header called `name`, case-insensitively. */
const struct http_header *http_find_header(const struct http_request *req, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < req->num_headers; i++) {
        const struct http_header *h = &req->headers[i];
        if (h->name_len == n && strncasecmp(h->name, name, n) == 0)
            return h;
    }
    return NULL;
}

/* Count the headers called `name`, case-insensitively. */
size_t http_count_header(const struct http_request *req, const char *name)
{
    size_t n = strlen(name), count = 0;

    for (size_t i = 0; i < req->num_headers; i++) {
        const struct http_header *h = &req->headers[i];
        if (h->name_len == n && strncasecmp(h->name, name, n) == 0)
            count++;
    }
    return count;
}

/* True if the comma-separated list value[0..value_len) has an element equal to token
 * (case-insensitive, surrounding whitespace ignored). An empty token never matches. */
bool http_has_token(const char *value, size_t value_len, const char *token)
{
    size_t tlen = strlen(token);

    if (!tlen || !value)
        return false;
    const char *p = value, *end = value + value_len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        const char *b = p;

        while (b < e && is_ows((uint8_t)*b))
            b++;
        while (e > b && is_ows((uint8_t)e[-1]))
            e--;
        if ((size_t)(e - b) == tlen && strncasecmp(b, token, tlen) == 0)
            return true;
        p = comma ? comma + 1 : end;
    }
    return false;
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Percent-decode p[0..end) into out. A decoded NUL is refused: callers use out as a C string,
 * and "tok%00en" must not quietly become "tok". */
static int query_decode(const char *p, const char *end, char *out, size_t outcap)
{
    size_t n = 0;

    while (p < end) {
        uint8_t c = (uint8_t)*p++;
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = end - p >= 2 ? hex_value((uint8_t)p[0]) : -1;
            int lo = end - p >= 2 ? hex_value((uint8_t)p[1]) : -1;
            if (hi < 0 || lo < 0 || (hi | lo) == 0)
                return -2;
            c = (uint8_t)(hi << 4 | lo);
            p += 2;
        }
        if (n + 1 >= outcap || n >= INT_MAX)
            return -2;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return (int)n;
}

/* Find and decode a query parameter. Names are compared byte for byte, undecoded; the first
 * occurrence wins; a name without '=' has an empty value. See http_parser.h. */
int http_query_param(const char *query, size_t query_len, const char *name, char *out,
                     size_t outcap)
{
    size_t nlen = strlen(name);

    if (outcap)
        out[0] = '\0';
    if (!query)
        return -1;
    const char *p = query, *end = query + query_len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        const char *kend = eq ? eq : e;

        if ((size_t)(kend - p) == nlen && memcmp(p, name, nlen) == 0) {
            if (!outcap)
                return -2;
            int r = query_decode(eq ? eq + 1 : e, e, out, outcap);
            if (r < 0)
                out[0] = '\0';
            return r;
        }
        p = amp ? amp + 1 : end;
    }
    return -1;
}
