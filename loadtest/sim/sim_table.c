/* sim_table.c - bounded direct-mapped key/value table (see sim_table.h). */
#include "loadtest/sim/sim_table.h"

#include "base/mem.h"

struct slot {
    uint64_t key; /* 0 = empty; a real key of 0 is stored as 1 (a collision we accept) */
    uint32_t val;
};

struct sim_table {
    uint64_t mask;
    struct slot *slots;
};

static uint64_t fix_key(uint64_t key)
{
    return key ? key : 1;
}

static uint64_t slot_of(const struct sim_table *t, uint64_t key)
{
    /* Keys are FNV hashes: mix the high bits down so the low-bit index is well spread. */
    return (key ^ (key >> 29) ^ (key >> 47)) & t->mask;
}

/* Create an empty table of 2^bits slots. */
struct sim_table *sim_table_create(unsigned bits)
{
    struct sim_table *t = xcalloc(1, sizeof(*t));
    t->mask = (1ull << bits) - 1;
    t->slots = xcalloc((size_t)t->mask + 1, sizeof(*t->slots));
    return t;
}

/* Free the table (NULL is fine). */
void sim_table_destroy(struct sim_table *t)
{
    if (!t)
        return;
    xfree(t->slots);
    xfree(t);
}

/* Look key up; see the header. */
bool sim_table_get(const struct sim_table *t, uint64_t key, uint32_t *val)
{
    key = fix_key(key);
    const struct slot *s = &t->slots[slot_of(t, key)];
    if (s->key != key)
        return false;
    if (val)
        *val = s->val;
    return true;
}

/* Store key -> val; see the header. */
void sim_table_put(struct sim_table *t, uint64_t key, uint32_t val)
{
    key = fix_key(key);
    struct slot *s = &t->slots[slot_of(t, key)];
    s->key = key;
    s->val = val;
}
