/* redact.c - see redact.h. One pass, no allocation: the output only ever loses bytes of the
 * input or gains the fixed REDACTED marker. */
#include "base/redact.h"

#include <string.h>

struct out {
    char *p;
    size_t cap, len;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->cap == 0)
        return;
    size_t room = o->cap - 1 - o->len;
    if (n > room)
        n = room;
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

/* The query (after '?', up to '#' or the end): names kept, values replaced. */
static void put_query(struct out *o, const char *q, size_t n)
{
    size_t i = 0;
    while (i <= n) {
        size_t end = i;
        while (end < n && q[end] != '&' && q[end] != ';')
            end++;
        const char *eq = memchr(q + i, '=', end - i);
        if (eq) {
            put(o, q + i, (size_t)(eq - (q + i)) + 1);
            put(o, REDACTED, strlen(REDACTED));
        } else if (end > i) {
            put(o, REDACTED, strlen(REDACTED)); /* "?sk-abc": a bare token */
        }
        if (end < n)
            put(o, q + end, 1);
        i = end + 1;
    }
}

/* See the header. */
size_t url_redact(const char *url, char *out, size_t cap)
{
    struct out o = {out, cap, 0};
    if (cap)
        out[0] = '\0';
    const char *p = url;
    const char *scheme_end = strstr(url, "://");
    if (scheme_end && strcspn(url, "/?#") > (size_t)(scheme_end - url)) {
        put(&o, url, (size_t)(scheme_end - url) + 3);
        p = scheme_end + 3;
    }
    size_t auth_len = strcspn(p, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < auth_len; i++)
        if (p[i] == '@')
            at = p + i; /* the last '@': a password may contain one unescaped */
    if (at) {
        put(&o, REDACTED, strlen(REDACTED));
        put(&o, at, (size_t)(p + auth_len - at));
    } else {
        put(&o, p, auth_len);
    }
    p += auth_len;
    size_t path_len = strcspn(p, "?#");
    put(&o, p, path_len);
    p += path_len;
    if (*p == '?') {
        size_t qn = strcspn(p + 1, "#");
        put(&o, "?", 1);
        put_query(&o, p + 1, qn);
        p += 1 + qn;
    }
    if (*p == '#') {
        put(&o, "#", 1);
        if (p[1])
            put(&o, REDACTED, strlen(REDACTED));
    }
    return o.len;
}
