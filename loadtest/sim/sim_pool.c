/* sim_pool.c - the --pool flag: a provisioned deployment's name, capacity and time to first
 * token, "NAME:tpm=N,streams=N,ttft-ms=N[,ttft-jitter-ms=J]" (docs/sim.md "Provisioned pools"). */
#include "loadtest/sim/sim.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* NAME is a path segment the agents file also uses as a deployment name: [a-z0-9_-]{1,31}. */
static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= SIM_POOL_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* A whole decimal number of at most 15 digits, or -1. */
static int64_t number(const char *s, size_t n)
{
    if (n == 0 || n > 15)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

struct pool_key {
    const char *name;
    int64_t max;
};

/* The keys in the order of their bits in `seen`; the first three are required. */
static const struct pool_key keys[] = {
    {"tpm", 1000000000000000},
    {"streams", 1000000000},
    {"ttft-ms", 600000},
    {"ttft-jitter-ms", 600000},
};
enum { NKEYS = sizeof(keys) / sizeof(keys[0]), REQUIRED = 0x7 };

static void set_key(struct sim_pool_opts *p, int k, int64_t v)
{
    if (k == 0)
        p->tpm = (uint64_t)v;
    else if (k == 1)
        p->streams = (uint32_t)v;
    else if (k == 2)
        p->ttft_ms = (uint32_t)v;
    else
        p->ttft_jitter_ms = (uint32_t)v;
}

/* One "key=value" of the list into p; returns its key's index, or -1 with err set. */
static int parse_item(const char *s, size_t n, struct sim_pool_opts *p, char *err, size_t errcap)
{
    const char *eq = memchr(s, '=', n);
    size_t kn = eq ? (size_t)(eq - s) : n;
    for (int k = 0; k < NKEYS; k++) {
        if (kn != strlen(keys[k].name) || memcmp(s, keys[k].name, kn) != 0)
            continue;
        int64_t v = eq ? number(eq + 1, n - kn - 1) : -1;
        if (v < 0 || v > keys[k].max) {
            snprintf(err, errcap, "%s must be a whole number 0..%lld, got '%.*s'", keys[k].name,
                     (long long)keys[k].max, (int)(eq ? n - kn - 1 : 0), eq ? eq + 1 : "");
            return -1;
        }
        set_key(p, k, v);
        return k;
    }
    snprintf(err, errcap, "unknown key '%.*s' (tpm, streams, ttft-ms, ttft-jitter-ms)", (int)kn, s);
    return -1;
}

/* Parse a --pool value; see sim.h. */
int sim_pool_parse(const char *spec, struct sim_pool_opts *p, char *err, size_t errcap)
{
    memset(p, 0, sizeof(*p));
    const char *colon = strchr(spec, ':');
    size_t nn = colon ? (size_t)(colon - spec) : strlen(spec);
    if (!name_ok(spec, nn)) {
        snprintf(err, errcap, "the pool name must be 1..%d characters of a-z 0-9 _ -",
                 SIM_POOL_NAME_MAX - 1);
        return -EINVAL;
    }
    memcpy(p->name, spec, nn);
    unsigned seen = 0;
    for (const char *s = colon ? colon + 1 : NULL; s;) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        int k = parse_item(s, n, p, err, errcap);
        if (k < 0)
            return -EINVAL;
        if (seen & (1u << k)) {
            snprintf(err, errcap, "%s given twice", keys[k].name);
            return -EINVAL;
        }
        seen |= 1u << k;
        s = comma ? comma + 1 : NULL;
    }
    if ((seen & REQUIRED) != REQUIRED) {
        snprintf(err, errcap, "tpm, streams and ttft-ms are required");
        return -EINVAL;
    }
    return 0;
}
