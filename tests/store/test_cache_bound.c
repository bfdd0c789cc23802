/* test_cache_bound.c - the bound on a worker's shared cache writes in flight
 * (store_cache_admit, store/cache_sql.c): by count, by bytes, and the per-entry cap. */
#include "store/cache_store.h"
#include "tests/tap.h"

static void test_count(void)
{
    struct store_cache_bound b = {.writes_max = 2, .bytes_max = 1000, .entry_max = 500};
    CHECK(store_cache_admit(&b, 0, 0, 10) == STORE_CACHE_WRITE);
    CHECK(store_cache_admit(&b, 1, 10, 10) == STORE_CACHE_WRITE);
    CHECK(store_cache_admit(&b, 2, 20, 10) == STORE_CACHE_BUSY);
    CHECK(store_cache_admit(&b, 3, 20, 10) == STORE_CACHE_BUSY);
    /* 0: the shared tier is read only */
    b.writes_max = 0;
    CHECK(store_cache_admit(&b, 0, 0, 1) == STORE_CACHE_BUSY);
}

static void test_bytes(void)
{
    struct store_cache_bound b = {.writes_max = 100, .bytes_max = 1000, .entry_max = 600};
    CHECK(store_cache_admit(&b, 1, 400, 600) == STORE_CACHE_WRITE); /* exactly at the bound */
    CHECK(store_cache_admit(&b, 1, 401, 600) == STORE_CACHE_BUSY);
    CHECK(store_cache_admit(&b, 2, 1000, 1) == STORE_CACHE_BUSY);
    CHECK(store_cache_admit(&b, 2, 1000, 0) == STORE_CACHE_WRITE); /* holds no bytes */
}

static void test_entry_cap(void)
{
    struct store_cache_bound b = {.writes_max = 100, .bytes_max = 1u << 20, .entry_max = 4096};
    CHECK(store_cache_admit(&b, 0, 0, 4096) == STORE_CACHE_WRITE);
    CHECK(store_cache_admit(&b, 0, 0, 4097) == STORE_CACHE_TOO_LARGE);
    /* too large wins over busy: it would never be written */
    CHECK(store_cache_admit(&b, 100, 1u << 20, 4097) == STORE_CACHE_TOO_LARGE);
    /* a value larger than the whole byte bound never fits either */
    b.entry_max = 1u << 30;
    CHECK(store_cache_admit(&b, 0, 0, (1u << 20) + 1) == STORE_CACHE_TOO_LARGE);
    /* a 4 MB tool result under the defaults (1 MiB entries) stays per worker */
    struct store_cache_bound d = {.writes_max = 32, .bytes_max = 8u << 20, .entry_max = 1u << 20};
    CHECK(store_cache_admit(&d, 0, 0, 4u << 20) == STORE_CACHE_TOO_LARGE);
}

int main(void)
{
    test_count();
    test_bytes();
    test_entry_cap();
    return tap_done();
}
