/* pending.c - a counted set of conversation ids under one mutex (see pending.h): a chained hash
 * table whose nodes live exactly as long as their count is above zero. */
#include "session/pending.h"

#include <pthread.h>
#include <string.h>

#include "base/mem.h"

enum { BUCKETS = 1 << 14 };

struct node {
    struct node *next;
    unsigned count;
    char id[33];
};

static struct node *buckets[BUCKETS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static struct node **slot(const char *id)
{
    unsigned h = 2166136261u;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    struct node **n = &buckets[h & (BUCKETS - 1)];
    while (*n && strcmp((*n)->id, id) != 0)
        n = &(*n)->next;
    return n;
}

void pending_add(const char *id)
{
    pthread_mutex_lock(&lock);
    struct node **n = slot(id);
    if (!*n) {
        *n = xcalloc(1, sizeof(**n));
        strncpy((*n)->id, id, sizeof((*n)->id) - 1);
    }
    (*n)->count++;
    pthread_mutex_unlock(&lock);
}

void pending_del(const char *id)
{
    pthread_mutex_lock(&lock);
    struct node **n = slot(id);
    if (*n && --(*n)->count == 0) {
        struct node *dead = *n;
        *n = dead->next;
        xfree(dead);
    }
    pthread_mutex_unlock(&lock);
}

bool pending_has(const char *id)
{
    pthread_mutex_lock(&lock);
    bool has = *slot(id) != NULL;
    pthread_mutex_unlock(&lock);
    return has;
}
