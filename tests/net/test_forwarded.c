/* test_forwarded.c - base/cidr.c (address ranges: parse, match) and net/forwarded.c (the client
 * behind trusted proxies from X-Forwarded-For), on plain structs: no sockets. */
#include <string.h>

#include "base/cidr.h"
#include "net/forwarded.h"
#include "tests/tap.h"

static struct in6_addr A(const char *s) {
    struct in6_addr a;
    memset(&a, 0, sizeof(a));
    CHECKF(ip_parse(s, strlen(s), &a), "%s", s);
    return a;
}

static bool
matches(const char *list, const char *addr)
{
    struct cidr_list l;
    char err[128];
    CHECKF(cidr_list_parse(&l, list, err, sizeof(err)) == 0, "%s: %s", list, err);
    struct in6_addr a = A(addr);
    return cidr_list_match(&l, &a);
}

static void test_parse_and_match(void)
{
    CHECK(matches("10.0.0.0/8", "10.255.1.2"));
    CHECK(!matches("10.0.0.0/8", "11.0.0.1"));
    CHECK(matches(" 192.168.1.7 ", "192.168.1.7"));
    CHECK(!matches("192.168.1.7", "192.168.1.8"));
    CHECK(matches("172.16.0.0/12", "172.31.255.255"));
    CHECK(!matches("172.16.0.0/12", "172.32.0.0"));
    CHECK(matches("0.0.0.0/0", "203.0.113.9"));
    CHECK(!matches("0.0.0.0/0", "2001:db8::1")); /* an IPv4 range holds no IPv6 address */
    CHECK(matches("fd00::/8", "fd12:3456::1"));
    CHECK(!matches("fd00::/8", "fe80::1"));
    CHECK(matches("::1", "::1"));
    CHECK(matches("2001:db8::/32, 10.1.2.0/23", "10.1.3.200"));
    CHECK(!matches("2001:db8::/32, 10.1.2.0/23", "10.1.4.0"));
    CHECK(matches("::ffff:10.0.0.0/104", "10.9.9.9")); /* v4-mapped written as IPv6 */
    CHECK(matches("10.0.0.0/31", "10.0.0.1") && !matches("10.0.0.0/31", "10.0.0.2"));
    struct cidr_list l = {.n = 7};
    char err[160];
    CHECK(cidr_list_parse(&l, "", err, sizeof(err)) == 0 && l.n == 0);
    CHECK(cidr_list_parse(&l, "  ", err, sizeof(err)) == 0 && l.n == 0);

    const char *bad[] = {"10.0.0.0/33",  "10.0.0.1/8",   "10.0.0.0/",   "10.0.0/8",
                         "fd00::/129",   "fd00::1/8",    "10.0.0.0/8,", ",10.0.0.0/8",
                         "example.com",  "10.0.0.0/8 x", "10.0.0.0/-1", "10.0.0.0/1a",
                         "fe80::1%eth0", "1.2.3.4/0032", "10.0.0.0 / 8"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        l.n = 7;
        err[0] = '\0';
        CHECKF(cidr_list_parse(&l, bad[i], err, sizeof(err)) == -1 && l.n == 7, "%s", bad[i]);
        CHECKF(strstr(err, "entry ") == err, "%s: %s", bad[i], err);
    }
    CHECK(cidr_list_parse(&l, "1.2.3.4, 5.6.7.8, x", err, sizeof(err)) == -1);
    CHECKF(strncmp(err, "entry 3:", 8) == 0, "%s", err);
    char many[40 * 16] = "";
    for (int i = 0; i < CIDR_MAX + 1; i++)
        sprintf(many + strlen(many), "%s10.0.%d.0/24", i ? "," : "", i);
    CHECK(cidr_list_parse(&l, many, err, sizeof(err)) == -1 && strstr(err, "more than"));

    char text[64];
    struct in6_addr a = A("192.0.2.1");
    ip_format(&a, text, sizeof(text));
    CHECK(strcmp(text, "192.0.2.1") == 0);
    a = A("2001:db8::1");
    ip_format(&a, text, sizeof(text));
    CHECK(strcmp(text, "2001:db8::1") == 0);
}

/* The client a request with these X-Forwarded-For values (NULL-terminated) gets, from peer. */
static const char *client(const char *trusted, const char *peer, const char *const *xff,
                          bool *present)
{
    static char out[64];
    struct cidr_list l;
    char err[128];
    CHECK(cidr_list_parse(&l, trusted, err, sizeof(err)) == 0);
    struct http_request req = {0};
    req.headers[req.num_headers++] = (struct http_header){"Host", 4, "x", 1};
    for (; xff && *xff; xff++) {
        const char *name = req.num_headers % 2 ? "x-forwarded-for" : "X-Forwarded-For";
        req.headers[req.num_headers++] = (struct http_header){name, 15, *xff, strlen(*xff)};
        req.headers[req.num_headers++] = (struct http_header){"X-Other", 7, "1.1.1.1", 7};
    }
    struct in6_addr p = A(peer), c;
    *present = forwarded_client(&l, &req, &p, &c);
    ip_format(&c, out, sizeof(out));
    return out;
}

#define XFF(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_xff(void)
{
    const char *T = "10.0.0.0/8, fd00::/8";
    bool present;
    /* the usual: one ingress in front */
    CHECK(!strcmp(client(T, "10.0.0.5", XFF("203.0.113.9"), &present), "203.0.113.9") && present);
    /* no header: the proxy itself (a health check) */
    CHECK(!strcmp(client(T, "10.0.0.5", NULL, &present), "10.0.0.5") && !present);
    /* a client that forges entries: only the right-most untrusted hop counts */
    CHECK(!strcmp(client(T, "10.0.0.5", XFF("1.2.3.4, 198.51.100.7"), &present), "198.51.100.7"));
    /* several trusted hops (a CDN's internal proxy, then the ingress) */
    CHECK(!strcmp(client(T, "10.0.0.5", XFF("198.51.100.7, 10.1.1.1, 10.2.2.2"), &present),
                  "198.51.100.7"));
    /* several headers are one list, in order */
    CHECK(!strcmp(client(T, "10.0.0.5", XFF("6.6.6.6, 198.51.100.7", "10.1.1.1"), &present),
                  "198.51.100.7"));
    CHECK(!strcmp(client(T, "10.0.0.5", XFF("6.6.6.6", "198.51.100.7, 10.1.1.1"), &present),
                  "198.51.100.7"));
    /* everyone trusted: the left-most */
    CHECK(!strcmp(client(T, "10.0.0.5", XFF("10.9.9.9, 10.1.1.1"), &present), "10.9.9.9"));
    /* ports and brackets, IPv6 */
    CHECK(!strcmp(client(T, "10.0.0.5", XFF("203.0.113.9:5060"), &present), "203.0.113.9"));
    CHECK(!strcmp(client(T, "fd00::1", XFF("[2001:db8::7]:443"), &present), "2001:db8::7"));
    CHECK(!strcmp(client(T, "fd00::1", XFF(" 2001:db8::7 ,fd00::2"), &present), "2001:db8::7"));
    /* garbage ends the walk at the trusted hop right of it, never at what the client wrote */
    CHECK(!strcmp(client(T, "10.0.0.5", XFF("unknown"), &present), "10.0.0.5") && present);
    CHECK(!strcmp(client(T, "10.0.0.5", XFF("203.0.113.9, garbage, 10.7.7.7"), &present),
                  "10.7.7.7"));
    CHECK(!strcmp(client(T, "10.0.0.5", XFF(""), &present), "10.0.0.5"));
    CHECK(!strcmp(client(T, "10.0.0.5", XFF("203.0.113.9,"), &present), "10.0.0.5"));
    CHECK(!strcmp(client(T, "10.0.0.5", XFF("[2001:db8::7"), &present), "10.0.0.5"));
    CHECK(!strcmp(client(T, "10.0.0.5", XFF("[2001:db8::7]x"), &present), "10.0.0.5"));
    CHECK(!strcmp(client(T, "10.0.0.5", XFF("1.2.3.4:80:90"), &present), "10.0.0.5"));
}

/* Runs every check; exit 0 when all pass. */
int main(void)
{
    test_parse_and_match();
    test_xff();
    return tap_done();
}
