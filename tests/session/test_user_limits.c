/* test_user_limits.c - the per-user turn limits table (session/user_limits.c): concurrency,
 * the per-minute bucket and its retry hint, users and addresses kept apart, entries that come
 * back fresh, and many threads admitting turns of one user at once. */
#include <pthread.h>
#include <string.h>

#include "session/user_limits.h"
#include "tests/tap.h"

static void test_concurrent_and_rate(void)
{
    struct ulim_conf c = {
        .user_max_turns = 2, .user_per_minute = 3, .anon_max_turns = 1, .anon_per_minute = 0};
    struct ulim *u = ulim_create(&c);
    uint64_t alice = ulim_key(u, "alice", 5, false), retry = 0;
    CHECK(alice != ulim_key(u, "bob", 3, false));
    CHECK(alice != ulim_key(u, "alice", 5, true)); /* a sub and an address never meet */
    CHECK(ulim_turn_begin(u, alice, false, 1000, &retry) == ULIM_OK);
    CHECK(ulim_turn_begin(u, alice, false, 1000, &retry) == ULIM_OK);
    CHECK(ulim_turn_begin(u, alice, false, 1000, &retry) == ULIM_CONCURRENT);
    CHECK(retry == ULIM_CONCURRENT_RETRY_MS);
    ulim_turn_end(u, alice);
    CHECK(ulim_turn_begin(u, alice, false, 1000, &retry) == ULIM_OK); /* the third of the minute */
    ulim_turn_end(u, alice);
    ulim_turn_end(u, alice);
    CHECK(ulim_turn_begin(u, alice, false, 1000, &retry) == ULIM_RATE);
    CHECKF(retry == 20000, "retry %llu", (unsigned long long)retry); /* one turn per 20 s */
    CHECK(ulim_turn_begin(u, alice, false, 11000, &retry) == ULIM_RATE);
    CHECKF(retry == 10000, "retry %llu", (unsigned long long)retry);
    CHECK(ulim_turn_begin(u, alice, false, 21000, &retry) == ULIM_OK);
    ulim_turn_end(u, alice);
    /* other users and addresses are not affected */
    uint64_t bob = ulim_key(u, "bob", 3, false), ip = ulim_key(u, "10.0.0.1", 8, true);
    CHECK(ulim_turn_begin(u, bob, false, 21000, &retry) == ULIM_OK);
    CHECK(ulim_turn_begin(u, ip, true, 21000, &retry) == ULIM_OK);
    CHECK(ulim_turn_begin(u, ip, true, 21000, &retry) == ULIM_CONCURRENT);
    struct ulim_stats st;
    ulim_stats(u, &st);
    CHECK(st.running == 2 && st.limited[ULIM_CONCURRENT] == 2 && st.limited[ULIM_RATE] == 2);
    ulim_turn_end(u, bob);
    ulim_turn_end(u, ip);
    ulim_turn_end(u, ip); /* one end too many changes nothing */
    ulim_stats(u, &st);
    CHECK(st.running == 0);
    ulim_destroy(u);
}

/* Many users: entries of users long idle are dropped as stripes fill, so the table holds about
 * the active users. */
static void test_idle_entries_leave(void)
{
    struct ulim_conf c = {.user_max_turns = 1, .user_per_minute = 60};
    struct ulim *u = ulim_create(&c);
    char name[32];
    uint64_t retry;
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(name, sizeof(name), "user-%d", i);
        uint64_t k = ulim_key(u, name, (size_t)n, false);
        CHECK(ulim_turn_begin(u, k, false, (uint64_t)i * 100, &retry) == ULIM_OK);
        ulim_turn_end(u, k);
    }
    struct ulim_stats st;
    ulim_stats(u, &st);
    /* a user's bucket is full again a second after its turn: the last ~10 s of users remain */
    CHECKF(st.users < 5000, "users held %llu", (unsigned long long)st.users);
    ulim_destroy(u);
}

struct racer {
    struct ulim *u;
    uint64_t key;
    int ok, refused;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    uint64_t retry;
    for (int i = 0; i < 20000; i++) {
        if (ulim_turn_begin(r->u, r->key, false, 5, &retry) == ULIM_OK) {
            r->ok++;
            ulim_turn_end(r->u, r->key);
        } else {
            r->refused++;
        }
    }
    return NULL;
}

/* Four threads admitting and ending turns of one user: the count never drifts. */
/* A bucket refills to full after any idle time, however long: the refill's product of idle
 * milliseconds and rate must not wrap (1,000,000 a minute idle for 214 days did). */
static void test_long_idle_refills_fully(void)
{
    struct ulim_conf c = {.user_per_minute = 1000000};
    struct ulim *u = ulim_create(&c);
    uint64_t k = ulim_key(u, "carol", 5, false), retry = 0;
    uint32_t n = 0;
    while (ulim_turn_begin(u, k, false, 1000, &retry) == ULIM_OK)
        n++;
    CHECKF(n == 1000000, "%u turns in the first minute", n);
    uint64_t later = 1000 + 18446744074ull; /* (later - 1000) * 10^9 just past 2^64 */
    n = 0;
    while (n < 100 && ulim_turn_begin(u, k, false, later, &retry) == ULIM_OK)
        n++;
    CHECKF(n == 100, "only %u turns after a long idle time", n);
    ulim_destroy(u);
}

static void test_threads(void)
{
    struct ulim_conf c = {.user_max_turns = 3};
    struct ulim *u = ulim_create(&c);
    struct racer r[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (struct racer){u, ulim_key(u, "same", 4, false), 0, 0};
        pthread_create(&th[i], NULL, race, &r[i]);
    }
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ok += r[i].ok;
    }
    CHECK(ok > 0);
    struct ulim_stats st;
    ulim_stats(u, &st);
    CHECK(st.running == 0 && st.users == 1);
    ulim_destroy(u);
}

int main(void)
{
    test_long_idle_refills_fully();
    test_concurrent_and_rate();
    test_idle_entries_leave();
    test_threads();
    return tap_done();
}
