/* load_target.c - parse the target URL, resolve it once, and decide whether it may be loaded.
 *
 * The tool only loads what it is given: a target from a scenario file must be a loopback
 * address (127.0.0.0/8, ::1, or a name that resolves there); any other host must be named on
 * the command line. The address resolved here is the one connected to for the whole run. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "loadtest/load/load_target.h"

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return (a >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

/* host[:port] or [v6][:port] at s (up to the path); 0 or -1. */
static int split_authority(const char *s, size_t n, struct target *t, int defport)
{
    const char *colon = NULL;
    size_t hl;
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return -1;
        hl = (size_t)(close - s - 1);
        if (hl == 0 || hl >= sizeof(t->host))
            return -1;
        memcpy(t->host, s + 1, hl);
        t->host[hl] = '\0';
        if ((size_t)(close + 1 - s) < n) {
            if (close[1] != ':')
                return -1;
            colon = close + 1;
        }
    } else {
        colon = memchr(s, ':', n);
        hl = colon ? (size_t)(colon - s) : n;
        if (hl == 0 || hl >= sizeof(t->host))
            return -1;
        memcpy(t->host, s, hl);
        t->host[hl] = '\0';
    }
    t->port = defport;
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (end != s + n || end == colon + 1 || p < 1 || p > 65535)
            return -1;
        t->port = (int)p;
    }
    bool v6 = strchr(t->host, ':') != NULL;
    snprintf(t->hosthdr, sizeof(t->hosthdr), "%s%s%s:%d", v6 ? "[" : "", t->host, v6 ? "]" : "",
             t->port);
    return 0;
}

/* See load_target.h. */
int target_parse(struct target *t, const char *url, const char *scheme, const char *token,
                 char *err, size_t errlen)
{
    size_t sl = strlen(scheme);
    memset(t, 0, sizeof(*t));
    if (strncmp(url, scheme, sl) != 0 || strncmp(url + sl, "://", 3) != 0) {
        snprintf(err, errlen, "bad URL '%.200s': expected %s://HOST:PORT/PATH", url, scheme);
        return -1;
    }
    snprintf(t->scheme, sizeof(t->scheme), "%s", scheme);
    const char *auth = url + sl + 3, *path = strchr(auth, '/');
    size_t an = path ? (size_t)(path - auth) : strlen(auth);
    if (split_authority(auth, an, t, 80) < 0) {
        snprintf(err, errlen, "bad host or port in URL '%.200s'", url);
        return -1;
    }
    if (!path)
        path = "/";
    int n;
    if (token)
        n = snprintf(t->path, sizeof(t->path), "%s%stoken=%s", path, strchr(path, '?') ? "&" : "?",
                     token);
    else
        n = snprintf(t->path, sizeof(t->path), "%s", path);
    if (n < 0 || (size_t)n >= sizeof(t->path)) {
        snprintf(err, errlen, "URL path (with the token) is too long");
        return -1;
    }
    return 0;
}

/* See load_target.h. */
int target_resolve(struct target *t, bool from_cli, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(t->host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve '%s': %s", t->host, gai_strerror(rc));
        return -1;
    }
    const struct sockaddr *sa = res->ai_addr;
    const void *a = sa->sa_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    inet_ntop(sa->sa_family, a, t->addr, sizeof(t->addr));
    t->loopback = is_loopback(sa);
    freeaddrinfo(res);
    if (!t->loopback && !from_cli) {
        snprintf(err, errlen,
                 "refusing target '%s' (%s) from the scenario file: it is not a loopback "
                 "address; name it on the command line (--url / --direct-sse) to load it",
                 t->host, t->addr);
        return -1;
    }
    return 0;
}
