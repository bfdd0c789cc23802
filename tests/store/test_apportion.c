/* test_apportion.c - the hourly provisioned price split over the turns an hour served
 * (store/apportion.c, the largest remainder method) against hand-computed cases, its exactness
 * on many random ones, and the hourly price table (store_set_capacity_prices). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/apportion.h"
#include "store/capacity_store.h"
#include "tests/tap.h"

static int64_t sum(const int64_t *v, size_t n)
{
    int64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    return s;
}

/* 4.00 USD over 1000, 2000 and 3000 tokens: 666666.67, 1333333.33, 2000000 exactly; the one
 * micro-unit left goes to the largest remainder (the first turn's 2/3). */
static void test_hand_computed(void)
{
    uint64_t w[] = {1000, 2000, 3000};
    int64_t out[3];
    CHECK(apportion(4000000, w, 3, out) == 0);
    CHECKF(out[0] == 666667 && out[1] == 1333333 && out[2] == 2000000, "%lld %lld %lld",
           (long long)out[0], (long long)out[1], (long long)out[2]);

    /* 10 units over three equal weights: 3.33 each; the one left goes to the lowest index */
    uint64_t e[] = {7, 7, 7};
    CHECK(apportion(10, e, 3, out) == 0);
    CHECK(out[0] == 4 && out[1] == 3 && out[2] == 3);

    /* 100 over 1, 1, 98: exact */
    uint64_t x[] = {1, 1, 98};
    CHECK(apportion(100, x, 3, out) == 0);
    CHECK(out[0] == 1 && out[1] == 1 && out[2] == 98);

    /* 5 over 3 tokens and 1 token: 3.75 and 1.25 -> 4 and 1 */
    uint64_t y[] = {3, 1};
    CHECK(apportion(5, y, 2, out) == 0);
    CHECK(out[0] == 4 && out[1] == 1);

    /* remainders 0.4, 0.4, 0.2 of 1 unit over 2, 2, 1: the tie goes to the first */
    uint64_t z[] = {2, 2, 1};
    CHECK(apportion(1, z, 3, out) == 0);
    CHECK(out[0] == 1 && out[1] == 0 && out[2] == 0);

    /* a turn with no provisioned tokens next to others gets nothing */
    uint64_t zero_one[] = {0, 5};
    CHECK(apportion(9, zero_one, 2, out) == 0);
    CHECK(out[0] == 0 && out[1] == 9);
}

/* Every weight 0 (calls that failed before any token): equal shares. One share: all of it. A
 * price of 0: nothing to anyone. */
static void test_edges(void)
{
    uint64_t zeros[] = {0, 0, 0, 0};
    int64_t out[4];
    CHECK(apportion(10, zeros, 4, out) == 0);
    CHECK(out[0] == 3 && out[1] == 3 && out[2] == 2 && out[3] == 2);
    uint64_t one[] = {12345};
    CHECK(apportion(4000000, one, 1, out) == 0 && out[0] == 4000000);
    uint64_t w[] = {3, 9};
    CHECK(apportion(0, w, 2, out) == 0 && out[0] == 0 && out[1] == 0);
    /* no overflow: the largest price times the largest weights */
    uint64_t big[] = {UINT64_MAX / 2, UINT64_MAX / 2};
    CHECK(apportion(INT64_MAX, big, 2, out) == 0);
    CHECK(out[0] + (out[1] - INT64_MAX) == 0 && out[0] - out[1] == 1);
}

/* Bad input: an error and out untouched. */
static void test_bad_input(void)
{
    uint64_t w[] = {1, 2};
    int64_t out[2] = {-7, -7};
    CHECK(apportion(10, w, 0, out) == -EINVAL);
    CHECK(apportion(-1, w, 2, out) == -EINVAL);
    uint64_t huge[] = {UINT64_MAX, 1};
    CHECK(apportion(10, huge, 2, out) == -EOVERFLOW);
    CHECK(out[0] == -7 && out[1] == -7);
}

/* Random cases: the shares sum to the price exactly, and each is within one unit of its exact
 * value (floor or floor + 1). */
static void test_random_exact(void)
{
    srand(15);
    int bad_sum = 0, bad_share = 0;
    for (int round = 0; round < 2000; round++) {
        size_t n = 1 + (size_t)(rand() % 60);
        uint64_t w[60];
        int64_t out[60];
        int64_t total = (int64_t)(rand() % 100000000) * (round % 7 + 1);
        for (size_t i = 0; i < n; i++)
            w[i] = (uint64_t)(rand() % 5000) * (round % 3 ? 1 : 1000003);
        CHECK(apportion(total, w, n, out) == 0);
        if (sum(out, n) != total)
            bad_sum++;
        uint64_t W = 0;
        for (size_t i = 0; i < n; i++)
            W += w[i];
        for (size_t i = 0; i < n && W; i++) {
            int64_t fl = (int64_t)((unsigned __int128)(uint64_t)total * w[i] / W);
            if (out[i] != fl && out[i] != fl + 1)
                bad_share++;
        }
    }
    CHECK(bad_sum == 0);
    CHECK(bad_share == 0);
}

/* The price table: a good set is kept; a bad one is refused whole and the previous stays. */
static void test_prices(void)
{
    struct store_capacity_price p[2] = {{"frontier-ptu", 4000000, "USD"},
                                        {"cheap_1", 150000000, "INR"}};
    struct store_capacity_price got[4];
    CHECK(store_set_capacity_prices(p, 2) == 0);
    CHECK(store_capacity_prices(got, 4) == 2);
    CHECK(!strcmp(got[1].deployment, "cheap_1") && got[1].hourly_micros == 150000000);
    struct store_capacity_price bad[2] = {p[0], p[0]}; /* twice */
    CHECK(store_set_capacity_prices(bad, 2) == -EINVAL);
    snprintf(bad[1].deployment, sizeof(bad[1].deployment), "Upper");
    CHECK(store_set_capacity_prices(bad, 2) == -EINVAL);
    bad[1] = p[1];
    bad[1].hourly_micros = -1;
    CHECK(store_set_capacity_prices(bad, 2) == -EINVAL);
    bad[1] = p[1];
    memcpy(bad[1].currency, "EUR", 4);
    CHECK(store_set_capacity_prices(bad, 2) == -EINVAL);
    bad[1] = p[1];
    bad[1].deployment[0] = '\0';
    CHECK(store_set_capacity_prices(bad, 2) == -EINVAL);
    CHECK(store_set_capacity_prices(p, STORE_CAPACITY_MAX + 1) == -E2BIG);
    CHECK(store_capacity_prices(got, 4) == 2 && got[0].hourly_micros == 4000000);
    CHECK(store_set_capacity_prices(NULL, 0) == 0 && store_capacity_prices(got, 4) == 0);
}

int main(void)
{
    test_hand_computed();
    test_edges();
    test_bad_input();
    test_random_exact();
    test_prices();
    return tap_done();
}
