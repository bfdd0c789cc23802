/* fuzz_http.c - fuzz target for net/http_parser.c.
 *
 * Invariants: the result is one of the documented values; a parsed head's pointers stay inside
 * it and obey the grammar (trimmed values, no line breaks, target shape); the head parsed alone
 * gives the same length; feeding prefixes with last_len gives "incomplete" until a verdict, and
 * any verdict on a prefix is the verdict on the whole input; the helpers stay in bounds. */
#include "net/http_parser.h"
#include "tests/fuzz/guard.h"

#include <strings.h>

static bool in(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && n <= len && p <= buf + len - n;
}

static void check_header(const struct http_request *r, const struct http_header *h)
{
    char name[128], out[64];

    FUZZ_ASSERT(h->name_len > 0);
    FUZZ_ASSERT(!memchr(h->value, '\n', h->value_len) && !memchr(h->value, '\r', h->value_len));
    FUZZ_ASSERT(!memchr(h->value, '\0', h->value_len));
    if (h->value_len) {
        FUZZ_ASSERT(h->value[0] != ' ' && h->value[0] != '\t');
        FUZZ_ASSERT(h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t');
    }
    http_has_token(h->value, h->value_len, "upgrade");
    if (h->value_len == 7 && strncasecmp(h->value, "upgrade", 7) == 0)
        FUZZ_ASSERT(http_has_token(h->value, h->value_len, "upgrade"));
    if (h->name_len >= sizeof(name))
        return;
    memcpy(name, h->name, h->name_len);
    name[h->name_len] = '\0';
    const struct http_header *first = http_find_header(r, name);
    FUZZ_ASSERT(first && first <= h && first->name_len == h->name_len);
    FUZZ_ASSERT(http_count_header(r, name) >= 1);
    /* header values double as query strings: the decoder must stay in bounds */
    int q = http_query_param(h->value, h->value_len, "a", out, sizeof(out));
    FUZZ_ASSERT(q >= -2 && q < (int)sizeof(out));
    if (q >= 0)
        FUZZ_ASSERT(strlen(out) == (size_t)q);
}

static void check_request(const char *buf, size_t len, const struct http_request *r)
{
    char out[32];

    FUZZ_ASSERT(r->method_len > 0 && in(r->method, r->method_len, buf, len));
    FUZZ_ASSERT(r->target_len > 0 && in(r->target, r->target_len, buf, len));
    FUZZ_ASSERT(r->target[0] == '/' || (r->target_len == 1 && r->target[0] == '*'));
    FUZZ_ASSERT(r->path == r->target && r->path_len <= r->target_len);
    if (r->query) {
        FUZZ_ASSERT(r->query == r->path + r->path_len + 1 && r->query[-1] == '?');
        FUZZ_ASSERT(r->query + r->query_len == r->target + r->target_len);
        int q = http_query_param(r->query, r->query_len, "token", out, sizeof(out));
        FUZZ_ASSERT(q >= -2 && q < (int)sizeof(out));
        if (q >= 0)
            FUZZ_ASSERT(strlen(out) == (size_t)q);
    } else {
        FUZZ_ASSERT(r->path_len == r->target_len);
    }
    FUZZ_ASSERT(r->minor_version == 0 || r->minor_version == 1);
    FUZZ_ASSERT(r->num_headers <= HTTP_MAX_HEADERS);
    for (size_t i = 0; i < r->num_headers; i++) {
        const struct http_header *h = &r->headers[i];
        FUZZ_ASSERT(in(h->name, h->name_len, buf, len) && in(h->value, h->value_len, buf, len));
        check_header(r, h);
    }
}

/* Prefixes, each guarded, resuming with last_len after each "incomplete". */
static void check_prefixes(const uint8_t *data, size_t size, int want)
{
    struct http_request r;
    size_t step = size <= 512 ? 1 : size / 128, last = 0;

    for (size_t k = 0; k < size; k += step) {
        const char *p = (const char *)guard_copy(data, k);
        int got = http_parse_request(p, k, last, &r);
        if (got == HTTP_PARSE_INCOMPLETE) {
            last = k;
            continue;
        }
        FUZZ_ASSERT(got == want); /* a verdict on a prefix is final */
        return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_request r;
    const char *buf = (const char *)guard_copy(data, size);
    int want = http_parse_request(buf, size, 0, &r);

    FUZZ_ASSERT(want == HTTP_PARSE_ERROR || want == HTTP_PARSE_INCOMPLETE ||
                want == HTTP_PARSE_TOO_MANY || (want > 0 && (size_t)want <= size));
    if (want > 0) {
        check_request(buf, (size_t)want, &r);
        buf = (const char *)guard_copy(data, (size_t)want);
        FUZZ_ASSERT(http_parse_request(buf, (size_t)want, 0, &r) == want);
    }
    check_prefixes(data, size, want);
    return 0;
}
