/* cidr.h - IP addresses and lists of address ranges ("10.0.0.0/8, 192.168.1.7, fd00::/8"), for
 * the trusted-proxy list. Every address is kept as IPv6, IPv4 as v4-mapped (::ffff:a.b.c.d),
 * so one comparison serves both families; an IPv4 prefix /n is the v4-mapped prefix /(96 + n).
 * Parsing never allocates and accepts nothing it does not understand. */
#ifndef TRILEMMA_BASE_CIDR_H
#define TRILEMMA_BASE_CIDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CIDR_MAX 32 /* ranges in one list */

struct cidr {
    struct in6_addr addr; /* bits beyond the prefix are zero */
    uint8_t bits;         /* 0..128 */
};

struct cidr_list {
    int n;
    struct cidr nets[CIDR_MAX];
};

/* Parse one address ("192.0.2.1", "2001:db8::1") from p[0..len) into *out (v4-mapped for IPv4).
 * Returns false when it is not exactly one address. */
bool ip_parse(const char *p, size_t len, struct in6_addr *out);

/* Format a (possibly v4-mapped) address as text: "192.0.2.1", "2001:db8::1". out >= 46 bytes. */
void ip_format(const struct in6_addr *a, char *out, size_t outlen);

/* Parse a comma-separated list of addresses or ranges (ADDR or ADDR/BITS, whitespace around
 * entries ignored) into *l. Host bits set in a range ("10.0.0.1/8") are an error: the writer
 * probably meant something else. Returns 0, or -1 with a message naming the entry in err (*l is
 * then unchanged). An empty string is the empty list. */
int cidr_list_parse(struct cidr_list *l, const char *text, char *err, size_t errlen);

/* True if a is inside one of the ranges of l. */
bool cidr_list_match(const struct cidr_list *l, const struct in6_addr *a);

#endif
