/* forwarded.c - X-Forwarded-For, read right to left (see forwarded.h). */
#include "net/forwarded.h"

#include <string.h>
#include <strings.h>

/* One list entry p[0..len) (trimmed) as an address, its port dropped. */
static bool entry_addr(const char *p, size_t len, struct in6_addr *out)
{
    if (len && p[0] == '[') { /* [v6] or [v6]:port */
        const char *close = memchr(p, ']', len);
        if (!close)
            return false;
        size_t rest = len - (size_t)(close + 1 - p);
        if (rest && close[1] != ':')
            return false;
        return ip_parse(p + 1, (size_t)(close - p - 1), out);
    }
    const char *colon = memchr(p, ':', len);
    if (colon && !memchr(colon + 1, ':', len - (size_t)(colon + 1 - p)))
        len = (size_t)(colon - p); /* a.b.c.d:port (a bare v6 address has several colons) */
    return ip_parse(p, len, out);
}

/* Walk one header value right to left. Returns 1 when the client was found (in *out), -1 when
 * the walk must stop at *last (a malformed entry), 0 to go on with the header to the left. */
static int walk_value(const struct cidr_list *trusted, const char *v, size_t n,
                      struct in6_addr *last, struct in6_addr *out)
{
    size_t end = n;
    for (;;) {
        size_t start = end;
        while (start && v[start - 1] != ',')
            start--;
        size_t a = start, b = end;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        struct in6_addr hop;
        if (!entry_addr(v + a, b - a, &hop))
            return -1;
        if (!cidr_list_match(trusted, &hop)) {
            *out = hop;
            return 1;
        }
        *last = hop;
        if (!start)
            return 0;
        end = start - 1;
    }
}

/* Headers from last to first, each value right to left; see the header. */
bool forwarded_client(const struct cidr_list *trusted, const struct http_request *req,
                      const struct in6_addr *peer, struct in6_addr *out)
{
    static const char name[] = "X-Forwarded-For";
    struct in6_addr last = *peer;
    bool present = false;
    for (size_t i = req->num_headers; i-- > 0;) {
        const struct http_header *h = &req->headers[i];
        if (h->name_len != sizeof(name) - 1 || strncasecmp(h->name, name, h->name_len) != 0)
            continue;
        present = true;
        int r = walk_value(trusted, h->value, h->value_len, &last, out);
        if (r > 0)
            return true;
        if (r < 0)
            break;
    }
    *out = last;
    return present;
}
