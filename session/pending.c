/* pending.c - a small counted set of conversation ids under one mutex (see pending.h). The set
 * is bounded by the number of turns being stored for departed clients at one moment; a full
 * table only loses the wait, never correctness of what is stored. */
#include "session/pending.h"

#include <pthread.h>
#include <string.h>

enum { SLOTS = 4096 };

static struct {
    char id[33];
    unsigned count;
} slots[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned hash(const char *id)
{
    unsigned h = 2166136261u;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h & (SLOTS - 1);
}

/* The slot holding id, or (with create) a free one; NULL when absent / full. */
static int find(const char *id, bool create)
{
    unsigned h = hash(id);
    int free_slot = -1;
    for (unsigned i = 0; i < SLOTS; i++) {
        unsigned s = (h + i) & (SLOTS - 1);
        if (slots[s].count && strcmp(slots[s].id, id) == 0)
            return (int)s;
        if (!slots[s].count && free_slot < 0)
            free_slot = (int)s;
        if (!slots[s].count && !slots[s].id[0])
            break; /* never used: the probe sequence ends here */
    }
    return create ? free_slot : -1;
}

void pending_add(const char *id)
{
    pthread_mutex_lock(&lock);
    int s = find(id, true);
    if (s >= 0) {
        if (!slots[s].count)
            strncpy(slots[s].id, id, sizeof(slots[s].id) - 1);
        slots[s].count++;
    }
    pthread_mutex_unlock(&lock);
}

void pending_del(const char *id)
{
    pthread_mutex_lock(&lock);
    int s = find(id, false);
    if (s >= 0)
        slots[s].count--;
    pthread_mutex_unlock(&lock);
}

bool pending_has(const char *id)
{
    pthread_mutex_lock(&lock);
    bool has = find(id, false) >= 0;
    pthread_mutex_unlock(&lock);
    return has;
}
