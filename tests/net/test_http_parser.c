/* test_http_parser.c - net/http_parser.c: valid heads, every split point, bare LF, header
 * limits, malformed lines, early rejection, header helpers and query decoding. Every input is
 * placed right before a PROT_NONE guard page, so reading one byte too far faults. */
#include "net/http_parser.h"
#include "tests/tap.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static char *guard_base;
static size_t page;

static void guard_init(void)
{
    page = (size_t)sysconf(_SC_PAGESIZE);
    guard_base = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard_base == MAP_FAILED || mprotect(guard_base + page, page, PROT_NONE) != 0) {
        perror("guard page");
        _exit(1);
    }
}

/* Copy s[0..n) so that it ends exactly where the guard page begins. */
static const char *guarded(const char *s, size_t n)
{
    char *p = guard_base + page - n;
    memmove(p, s, n);
    return p;
}

static int parse(const char *s, size_t n, struct http_request *req)
{
    return http_parse_request(guarded(s, n), n, 0, req);
}

static bool span_is(const char *p, size_t n, const char *want)
{
    return p && n == strlen(want) && memcmp(p, want, n) == 0;
}

#define S(str) (str), (sizeof(str) - 1)

static void test_valid(void)
{
    struct http_request r;
    static const char req[] = "GET /ws?token=abc&x=1 HTTP/1.1\r\n"
                              "Host: example.com\r\n"
                              "Upgrade:websocket\r\n"
                              "X-Spaces: \t a b \t \r\n"
                              "X-Empty:\r\n"
                              "X-Obs-Text: caf\xC3\xA9\r\n"
                              "\r\n";

    CHECK(parse(S(req), &r) == (int)sizeof(req) - 1);
    CHECK(span_is(r.method, r.method_len, "GET"));
    CHECK(span_is(r.target, r.target_len, "/ws?token=abc&x=1"));
    CHECK(span_is(r.path, r.path_len, "/ws"));
    CHECK(span_is(r.query, r.query_len, "token=abc&x=1"));
    CHECK(r.minor_version == 1);
    CHECK(r.num_headers == 5);
    CHECK(span_is(r.headers[0].name, r.headers[0].name_len, "Host"));
    CHECK(span_is(r.headers[0].value, r.headers[0].value_len, "example.com"));
    CHECK(span_is(r.headers[1].value, r.headers[1].value_len, "websocket"));
    CHECK(span_is(r.headers[2].value, r.headers[2].value_len, "a b"));
    CHECK(r.headers[3].value_len == 0);
    CHECK(span_is(r.headers[4].value, r.headers[4].value_len, "caf\xC3\xA9"));

    /* bytes after the head (a pipelined request, or a WebSocket frame) are not part of it */
    static const char two[] = "GET / HTTP/1.0\r\n\r\nGET /next HTTP/1.1\r\n";
    CHECK(parse(S(two), &r) == 18);
    CHECK(r.minor_version == 0 && r.num_headers == 0 && r.query == NULL);
    CHECK(span_is(r.path, r.path_len, "/"));

    CHECK(parse(S("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), &r) > 0);
    CHECK(span_is(r.target, r.target_len, "*") && span_is(r.path, r.path_len, "*"));
    CHECK(parse(S("GET /p? HTTP/1.1\r\n\r\n"), &r) > 0);
    CHECK(r.query != NULL && r.query_len == 0 && span_is(r.path, r.path_len, "/p"));
    CHECK(parse(S("M-SEARCH /x HTTP/1.1\r\n\r\n"), &r) > 0);
}

static void test_line_ends(void)
{
    struct http_request r;

    CHECK(parse(S("GET / HTTP/1.1\nHost: a\n\n"), &r) == 24);
    CHECK(r.num_headers == 1 && span_is(r.headers[0].value, r.headers[0].value_len, "a"));
    CHECK(parse(S("GET / HTTP/1.1\r\nHost: a\n\r\n"), &r) == 26);
    CHECK(parse(S("GET / HTTP/1.1\nHost: a\r\n\n"), &r) == 25);
    /* empty lines before the request line are skipped (RFC 9112 section 2.2) */
    CHECK(parse(S("\r\n\r\nGET / HTTP/1.1\r\n\r\n"), &r) == 22);
    CHECK(span_is(r.method, r.method_len, "GET"));
    CHECK(parse(S("\nGET / HTTP/1.1\n\n"), &r) == 17);
    CHECK(parse(S("\r\n\r\n"), &r) == HTTP_PARSE_INCOMPLETE);
}

/* Feed prefixes of increasing length with last_len: -2 until the head is whole, then the
 * same result as parsing it at once, field by field. */
static void check_splits(const char *name, const char *req, size_t n, size_t step)
{
    struct http_request whole, r;
    int want = parse(req, n, &whole);
    size_t head = want > 0 ? (size_t)want : n;
    size_t last = 0;
    int bad = 0, got = 0;

    ptrdiff_t method_at = want > 0 ? whole.method - guarded(req, n) : 0;
    for (size_t k = 0; k <= n; k += step) {
        const char *p = guarded(req, k);
        got = http_parse_request(p, k, last, &r);
        last = got == HTTP_PARSE_INCOMPLETE ? k : 0; /* resume only after "incomplete" */
        if (k < head && got != HTTP_PARSE_INCOMPLETE)
            bad++;
        if (k >= head && got != want)
            bad++;
        if (k >= head && want > 0 &&
            (r.method - p != method_at || r.num_headers != whole.num_headers))
            bad++;
    }
    CHECKF(bad == 0, "%s (step %zu): %d prefixes wrong", name, step, bad);
}

static void test_split_points(void)
{
    static const char up[] = "GET /chat?token=a%20b HTTP/1.1\r\n"
                             "Host: server.example.com\r\n"
                             "Upgrade: websocket\r\n"
                             "Connection: Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             "Sec-WebSocket-Version: 13\r\n"
                             "\r\n\x81\x85";
    static const char lf[] = "\r\n\nGET / HTTP/1.0\nA: b\n\nrest";
    static const char bad[] = "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n";
    static const size_t steps[] = {1, 2, 3, 7};

    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        check_splits("upgrade request", S(up), steps[i]);
        check_splits("bare LF request", S(lf), steps[i]);
        check_splits("malformed request", S(bad), steps[i]);
    }
}

static void test_too_many_headers(void)
{
    static char buf[4096];
    struct http_request r;
    size_t n = 0;

    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < HTTP_MAX_HEADERS; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-%d: %d\r\n", i, i);
    size_t at32 = n;
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
    CHECK(parse(buf, n, &r) == (int)n && r.num_headers == HTTP_MAX_HEADERS);
    n = at32 + (size_t)snprintf(buf + at32, sizeof(buf) - at32, "X-33: y\r\n\r\n");
    CHECK(parse(buf, n, &r) == HTTP_PARSE_TOO_MANY);
    check_splits("33 headers", buf, n, 5);
}

static const struct {
    const char *name;
    const char *req;
} malformed[] = {
    {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n"},
    {"tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"},
    {"no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n"},
    {"empty header name", "GET / HTTP/1.1\r\n: a\r\n\r\n"},
    {"separator in header name", "GET / HTTP/1.1\r\nHo(st: a\r\n\r\n"},
    {"obs-fold", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"},
    {"obs-fold with tab", "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"},
    {"whitespace before first header", "GET / HTTP/1.1\r\n Host: a\r\n\r\n"},
    {"HTTP/1.2", "GET / HTTP/1.2\r\n\r\n"},
    {"HTTP/2.0", "GET / HTTP/2.0\r\n\r\n"},
    {"HTTP/1.10", "GET / HTTP/1.10\r\n\r\n"},
    {"lower-case version", "GET / http/1.1\r\n\r\n"},
    {"no version", "GET /\r\n\r\n"},
    {"no target", "GET HTTP/1.1\r\n\r\n"},
    {"empty target", "GET  HTTP/1.1\r\n\r\n"},
    {"empty method", " / HTTP/1.1\r\n\r\n"},
    {"double space", "GET  / HTTP/1.1\r\n\r\n"},
    {"trailing space", "GET / HTTP/1.1 \r\n\r\n"},
    {"tab separator", "GET\t/ HTTP/1.1\r\n\r\n"},
    {"method with separator", "G(T / HTTP/1.1\r\n\r\n"},
    {"relative target", "GET ws HTTP/1.1\r\n\r\n"},
    {"absolute-form target", "GET http://a/ HTTP/1.1\r\n\r\n"},
    {"non-ASCII target", "GET /caf\xC3\xA9 HTTP/1.1\r\n\r\n"},
    {"DEL in target", "GET /\x7F HTTP/1.1\r\n\r\n"},
    {"control char in value", "GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n"},
    {"DEL in value", "GET / HTTP/1.1\r\nX: a\x7F\r\n\r\n"},
    {"escape in value", "GET / HTTP/1.1\r\nX: \x1b[0m\r\n\r\n"},
    {"bare CR in value", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"},
    {"bare CR line end", "GET / HTTP/1.1\rX: a\r\n\r\n"},
    {"CR CR LF", "GET / HTTP/1.1\r\r\n\r\n"},
    {"LF CR then junk", "GET / HTTP/1.1\n\rX\n\n"},
    {"request line only spaces", "   \r\n\r\n"},
};

static void test_malformed(void)
{
    struct http_request r;

    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        const char *s = malformed[i].req;
        int got = parse(s, strlen(s), &r);
        CHECKF(got == HTTP_PARSE_ERROR, "%s: got %d", malformed[i].name, got);
    }
    /* NUL in a header value (cannot be written in the table above) */
    CHECK(parse(S("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"), &r) == HTTP_PARSE_ERROR);
}

/* Bytes that no head may contain are refused before the head is complete. */
static void test_early_rejection(void)
{
    struct http_request r;

    CHECK(parse(S("\x16\x03\x01\x02\x00\x01\x00"), &r) == HTTP_PARSE_ERROR); /* TLS hello */
    CHECK(parse(S("GET / HTTP/1.1\r\nX: \0"), &r) == HTTP_PARSE_ERROR);
    CHECK(parse(S("GET /\rX"), &r) == HTTP_PARSE_ERROR);
    CHECK(parse(S("GET / HTTP/1.1\r"), &r) == HTTP_PARSE_INCOMPLETE);
    CHECK(parse(S("GET / HTTP/1.1\r\nHost: a\r\n\r"), &r) == HTTP_PARSE_INCOMPLETE);
    CHECK(parse(S(""), &r) == HTTP_PARSE_INCOMPLETE);

    /* resuming with last_len never skips the bytes that make the head malformed */
    static const char s[] = "GET / HTTP/1.1\r\nX: a\x02\r\n\r\n";
    int first_err = -1;
    for (size_t k = 0, last = 0; k <= sizeof(s) - 1; last = k, k++) {
        if (http_parse_request(guarded(s, k), k, last, &r) == HTTP_PARSE_ERROR) {
            first_err = (int)k;
            break;
        }
    }
    CHECKF(first_err == 21, "control byte refused at prefix %d", first_err);
}

static void test_headers(void)
{
    struct http_request r;
    static const char req[] = "GET / HTTP/1.1\r\nhost: a\r\nX-Dup: 1\r\nx-dup: 2\r\n"
                              "Connection: keep-alive, Upgrade\r\n\r\n";

    CHECK(parse(S(req), &r) > 0);
    const struct http_header *h = http_find_header(&r, "HOST");
    CHECK(h && span_is(h->value, h->value_len, "a"));
    h = http_find_header(&r, "X-DUP");
    CHECK(h && span_is(h->value, h->value_len, "1"));
    CHECK(http_count_header(&r, "x-Dup") == 2);
    CHECK(http_count_header(&r, "Host") == 1);
    CHECK(http_count_header(&r, "Hos") == 0);
    CHECK(http_find_header(&r, "Missing") == NULL);
    h = http_find_header(&r, "connection");
    CHECK(h && http_has_token(h->value, h->value_len, "upgrade"));
}

static void test_has_token(void)
{
#define T(v, tok) http_has_token(guarded(v, strlen(v)), strlen(v), tok)
    CHECK(T("keep-alive, Upgrade", "upgrade"));
    CHECK(T("Upgrade", "upgrade"));
    CHECK(T("UPGRADE", "Upgrade"));
    CHECK(T(" \tupgrade\t ,x", "upgrade"));
    CHECK(T("foo,upgrade", "upgrade"));
    CHECK(T(",,upgrade,,", "upgrade"));
    CHECK(T("a, b, websocket", "websocket"));
    CHECK(!T("upgrade-insecure", "upgrade"));
    CHECK(!T("upgradex", "upgrade"));
    CHECK(!T("x upgrade", "upgrade"));
    CHECK(!T("upgrad", "upgrade"));
    CHECK(!T("", "upgrade"));
    CHECK(!T(",", "upgrade"));
    CHECK(!T("a,,b", ""));
    CHECK(!http_has_token(NULL, 0, "upgrade"));
#undef T
}

static int qp(const char *q, const char *name, char *out, size_t cap)
{
    return http_query_param(guarded(q, strlen(q)), strlen(q), name, out, cap);
}

static void test_query_param(void)
{
    char out[16];

    CHECK(qp("token=abc", "token", out, sizeof(out)) == 3 && strcmp(out, "abc") == 0);
    CHECK(qp("a=1&token=x%2By+z", "token", out, sizeof(out)) == 5 && strcmp(out, "x+y z") == 0);
    CHECK(qp("t=%41%62%7e", "t", out, sizeof(out)) == 3 && strcmp(out, "Ab~") == 0);
    CHECK(qp("t=%C3%A9", "t", out, sizeof(out)) == 2 && strcmp(out, "\xC3\xA9") == 0);
    CHECK(qp("a=1", "token", out, sizeof(out)) == -1);
    CHECK(qp("", "token", out, sizeof(out)) == -1);
    CHECK(qp("token", "token", out, sizeof(out)) == 0 && out[0] == '\0');
    CHECK(qp("token=", "token", out, sizeof(out)) == 0);
    CHECK(qp("tokenx=1&token=2", "token", out, sizeof(out)) == 1 && strcmp(out, "2") == 0);
    CHECK(qp("xtoken=1", "token", out, sizeof(out)) == -1);
    CHECK(qp("TOKEN=1", "token", out, sizeof(out)) == -1);
    CHECK(qp("token=1&token=2", "token", out, sizeof(out)) == 1 && strcmp(out, "1") == 0);
    CHECK(qp("&&token=a=b&", "token", out, sizeof(out)) == 3 && strcmp(out, "a=b") == 0);
    CHECK(qp("token=%zz", "token", out, sizeof(out)) == -2 && out[0] == '\0');
    CHECK(qp("token=%4", "token", out, sizeof(out)) == -2);
    CHECK(qp("token=%", "token", out, sizeof(out)) == -2);
    CHECK(qp("token=a%00b", "token", out, sizeof(out)) == -2);
    CHECK(qp("token=0123456789abcde", "token", out, sizeof(out)) == 15);
    CHECK(qp("token=0123456789abcdef", "token", out, sizeof(out)) == -2);
    CHECK(qp("token=%41%41", "token", out, 3) == 2 && strcmp(out, "AA") == 0);
    CHECK(qp("token=%41%41", "token", out, 2) == -2);
    CHECK(qp("token=a", "token", out, 0) == -2);
    CHECK(http_query_param(NULL, 0, "token", out, sizeof(out)) == -1);
}

int main(void)
{
    guard_init();
    test_valid();
    test_line_ends();
    test_split_points();
    test_too_many_headers();
    test_malformed();
    test_early_rejection();
    test_headers();
    test_has_token();
    test_query_param();
    return tap_done();
}
