/* conn_limits.c - who may hold a connection: max_connections for the process, a reserve of its
 * last slots for addresses holding few, and max_connections_per_ip, counted in a table shared
 * by the workers (a mutex taken on accept and close only, and on a request from a trusted proxy
 * whose client differs from the connection's last one). See docs/net.md, "Admission". */
#include "net/server_int.h"

#include <string.h>

#include "base/mem.h"

/* ---- per-IP connection counts ---- */

enum { IP_SLOTS = 1 << 16 };

struct ip_slot {
    struct in6_addr addr;
    uint32_t count;
    bool used;
};

struct ip_table {
    pthread_mutex_t lock;
    uint32_t used;
    struct ip_slot slots[IP_SLOTS];
};

static uint32_t ip_hash(const struct in6_addr *a)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++)
        h = (h ^ a->s6_addr[i]) * 16777619u;
    return h;
}

/* Drop slots whose count fell to zero (linear probing needs a full rebuild to forget keys). */
static void ip_rebuild(struct ip_table *t)
{
    static struct ip_slot live[IP_SLOTS]; /* under t->lock */
    uint32_t n = 0;
    for (uint32_t i = 0; i < IP_SLOTS; i++)
        if (t->slots[i].used && t->slots[i].count)
            live[n++] = t->slots[i];
    memset(t->slots, 0, sizeof(t->slots));
    t->used = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t h = ip_hash(&live[i].addr) & (IP_SLOTS - 1);
        while (t->slots[h].used)
            h = (h + 1) & (IP_SLOTS - 1);
        t->slots[h] = live[i];
        t->used++;
    }
}

/* Count one more connection from addr; false (nothing counted) when that passes the limit. */
bool ip_acquire(struct ip_table *t, const struct in6_addr *addr, uint32_t limit)
{
    if (limit == 0)
        return false;
    bool ok = false;
    pthread_mutex_lock(&t->lock);
    if (t->used > IP_SLOTS / 2)
        ip_rebuild(t);
    if (t->used > IP_SLOTS * 3 / 4) { /* that many distinct addresses at once: refuse */
        pthread_mutex_unlock(&t->lock);
        return false;
    }
    uint32_t h = ip_hash(addr) & (IP_SLOTS - 1);
    while (t->slots[h].used && memcmp(&t->slots[h].addr, addr, sizeof(*addr)) != 0)
        h = (h + 1) & (IP_SLOTS - 1);
    struct ip_slot *s = &t->slots[h];
    if (!s->used) {
        s->used = true;
        s->addr = *addr;
        s->count = 0;
        t->used++;
    }
    if (s->count < limit) {
        s->count++;
        ok = true;
    }
    pthread_mutex_unlock(&t->lock);
    return ok;
}

void ip_release(struct ip_table *t, const struct in6_addr *addr)
{
    pthread_mutex_lock(&t->lock);
    uint32_t h = ip_hash(addr) & (IP_SLOTS - 1);
    while (t->slots[h].used) {
        if (memcmp(&t->slots[h].addr, addr, sizeof(*addr)) == 0) {
            if (t->slots[h].count)
                t->slots[h].count--;
            break;
        }
        h = (h + 1) & (IP_SLOTS - 1);
    }
    pthread_mutex_unlock(&t->lock);
}

struct ip_table *ip_table_create(void)
{
    struct ip_table *t = xcalloc(1, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

void ip_table_destroy(struct ip_table *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->lock);
    xfree(t);
}

/* ---- admission ---- */

/* How many connections one address may hold now: max_connections_per_ip, or fewer once the
 * process is into its connection reserve (the last connection_reserve slots), which is kept for
 * addresses that hold few connections. */
uint32_t ip_limit(struct server *s)
{
    const struct server_conf *conf = &s->conf;
    uint32_t total = atomic_load(&s->conns_total_open);
    uint32_t limit = conf->max_connections_per_ip;
    if (total > conf->max_connections - conf->connection_reserve && limit > SERVER_RESERVE_IP_MAX)
        limit = SERVER_RESERVE_IP_MAX;
    return limit;
}

/* Take a slot of max_connections and, unless the client is known only from its requests (a
 * trusted proxy), one of its address's connections. A refused connection takes neither: what it
 * holds is bounded by refused_open instead. Returns false when refused. */
bool conn_admit(struct conn *c)
{
    struct server *s = c->w->s;
    unsigned total = atomic_fetch_add(&s->conns_total_open, 1) + 1;
    if (total <= s->conf.max_connections) {
        c->counted_global = true;
        if (c->via_proxy)
            return true;
        /* total counts this connection: it is a reserve slot when past max - reserve */
        c->counted_ip = ip_acquire(s->ips, &c->peer, ip_limit(s));
        if (c->counted_ip)
            return true;
        c->counted_global = false;
    }
    atomic_fetch_sub(&s->conns_total_open, 1);
    return false;
}
