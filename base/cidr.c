/* cidr.c - addresses and address ranges (see cidr.h): inet_pton on a bounded copy, prefix
 * comparison byte by byte. */
#include "base/cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void map_v4(const struct in_addr *v4, struct in6_addr *out)
{
    memset(out, 0, sizeof(*out));
    out->s6_addr[10] = out->s6_addr[11] = 0xff;
    memcpy(&out->s6_addr[12], v4, 4);
}

static bool is_v4_mapped(const struct in6_addr *a)
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a->s6_addr, prefix, sizeof(prefix)) == 0;
}

/* Parse one address; *v4 tells which family it was written in. */
static bool parse_addr(const char *p, size_t len, struct in6_addr *out, bool *v4)
{
    char tmp[INET6_ADDRSTRLEN];
    if (len == 0 || len >= sizeof(tmp))
        return false;
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    struct in_addr a4;
    if (inet_pton(AF_INET, tmp, &a4) == 1) {
        map_v4(&a4, out);
        *v4 = true;
        return true;
    }
    *v4 = false;
    return inet_pton(AF_INET6, tmp, out) == 1;
}

/* One address; see the header. */
bool ip_parse(const char *p, size_t len, struct in6_addr *out)
{
    bool v4;
    return parse_addr(p, len, out, &v4);
}

/* v4-mapped addresses print as IPv4; see the header. */
void ip_format(const struct in6_addr *a, char *out, size_t outlen)
{
    if (is_v4_mapped(a))
        inet_ntop(AF_INET, &a->s6_addr[12], out, (socklen_t)outlen);
    else
        inet_ntop(AF_INET6, a, out, (socklen_t)outlen);
}

/* Whether the bits of a beyond the first `bits` are all zero. */
static bool host_bits_zero(const struct in6_addr *a, unsigned bits)
{
    for (unsigned i = bits; i < 128; i++)
        if (a->s6_addr[i / 8] & (0x80 >> (i % 8)))
            return false;
    return true;
}

/* One entry "ADDR" or "ADDR/BITS" (no surrounding whitespace). */
static bool parse_range(const char *p, size_t len, struct cidr *out)
{
    const char *slash = memchr(p, '/', len);
    bool v4;
    if (!parse_addr(p, slash ? (size_t)(slash - p) : len, &out->addr, &v4))
        return false;
    unsigned max = v4 ? 32 : 128, bits = max;
    if (slash) {
        const char *d = slash + 1, *end = p + len;
        if (d == end || end - d > 3)
            return false;
        bits = 0;
        for (; d < end; d++) {
            if (*d < '0' || *d > '9')
                return false;
            bits = bits * 10 + (unsigned)(*d - '0');
        }
        if (bits > max)
            return false;
    }
    out->bits = (uint8_t)(v4 ? bits + 96 : bits);
    return host_bits_zero(&out->addr, out->bits);
}

/* Parse the whole list into a copy first, so a bad entry leaves *l as it was. */
int cidr_list_parse(struct cidr_list *l, const char *text, char *err, size_t errlen)
{
    struct cidr_list tmp = {0};
    const char *p = text;
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p) {
        *l = tmp;
        return 0;
    }
    for (int entry = 1;; entry++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (tmp.n == CIDR_MAX) {
            snprintf(err, errlen, "more than %d entries", CIDR_MAX);
            return -1;
        }
        if (!parse_range(p, len, &tmp.nets[tmp.n])) {
            snprintf(err, errlen,
                     "entry %d: expected an IPv4 or IPv6 address or ADDRESS/BITS with no host "
                     "bits set",
                     entry);
            return -1;
        }
        tmp.n++;
        if (!end)
            break;
        p = end + 1;
    }
    *l = tmp;
    return 0;
}

static bool in_range(const struct cidr *c, const struct in6_addr *a)
{
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr.s6_addr, a->s6_addr, full) != 0)
        return false;
    if (!rest)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->addr.s6_addr[full] & mask) == (a->s6_addr[full] & mask);
}

/* Linear: a list holds at most CIDR_MAX ranges and is read once per proxied request. */
bool cidr_list_match(const struct cidr_list *l, const struct in6_addr *a)
{
    for (int i = 0; i < l->n; i++)
        if (in_range(&l->nets[i], a))
            return true;
    return false;
}
