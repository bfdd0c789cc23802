/* test_budget.c - the daily spend table (session/budget.c): the decision, UTC days, commits
 * counted, a read of the ledger replacing what it covers (and keeping what it does not), a failed
 * read, anonymous spend, and many users across the stripes. */
#include <stdio.h>
#include <string.h>

#include "orchestrator/agents.h"
#include "session/budget.h"
#include "tests/tap.h"

#define DAY BUDGET_DAY_MS
#define T0 (20000 * DAY) /* a UTC midnight */

static void test_decide(void)
{
    struct budget_conf c = {.user_daily_micros = 100, .deployment_daily_micros = 1000};
    CHECK(budget_decide(&c, false, 99, 999) == BUDGET_OK);
    CHECK(budget_decide(&c, false, 100, 0) == BUDGET_USER); /* reached = spent */
    CHECK(budget_decide(&c, false, 0, 1000) == BUDGET_DEPLOYMENT);
    CHECK(budget_decide(&c, false, 500, 5000) == BUDGET_DEPLOYMENT); /* the wider one first */
    CHECK(budget_decide(&c, true, 500, 10) == BUDGET_OK); /* anonymous: the deployment's only */
    struct budget_conf off = {0};
    CHECK(budget_decide(&off, false, 1LL << 60, 1LL << 60) == BUDGET_OK);
    CHECK(budget_day_start(T0 + DAY - 1) == T0);
    CHECK(budget_day_start(T0 + DAY) == T0 + DAY);
    CHECK(budget_day_start(-1) == -DAY);
}

static void test_ceiling(void)
{
    CHECK(route_cost_ceiling(0, 500) == 500);
    CHECK(route_cost_ceiling(200, 500) == 200);
    CHECK(route_cost_ceiling(900, 0) == 900);
    CHECK(!turn_cost_stop(0, 1LL << 40, 9)); /* no ceiling */
    CHECK(!turn_cost_stop(100, 500, 0));     /* the first call always runs */
    CHECK(!turn_cost_stop(100, 99, 3));
    CHECK(turn_cost_stop(100, 100, 1));
}

static void test_commits_and_days(void)
{
    struct budget_conf c = {.user_daily_micros = 100, .deployment_daily_micros = 250};
    struct budget *b = budget_create(&c);
    int64_t spent = -1, limit = -1;
    CHECK(budget_check(b, "alice", T0 + 10, &spent, &limit) == BUDGET_OK);
    budget_add(b, "alice", T0 + 10, 60);
    CHECK(budget_check(b, "alice", T0 + 20, &spent, &limit) == BUDGET_OK);
    budget_add(b, "alice", T0 + 20, 40);
    CHECK(budget_check(b, "alice", T0 + 30, &spent, &limit) == BUDGET_USER);
    CHECK(spent == 100 && limit == 100);
    CHECK(budget_check(b, "bob", T0 + 30, &spent, &limit) == BUDGET_OK);
    /* a turn of yesterday committed today does not count today */
    budget_add(b, "bob", T0 - 5, 1000);
    CHECK(budget_check(b, "bob", T0 + 30, &spent, &limit) == BUDGET_OK);
    /* the next day starts from zero */
    CHECK(budget_check(b, "alice", T0 + DAY, &spent, &limit) == BUDGET_OK);
    /* anonymous turns count for the deployment */
    budget_add(b, "", T0 + 40, 150);
    CHECK(budget_check(b, "", T0 + 50, &spent, &limit) == BUDGET_DEPLOYMENT);
    CHECK(spent == 250 && limit == 250);
    CHECK(budget_check(b, "carol", T0 + 50, &spent, &limit) == BUDGET_DEPLOYMENT);
    struct budget_stats st;
    budget_stats(b, T0 + 50, &st);
    CHECK(st.refused[BUDGET_USER] == 1 && st.refused[BUDGET_DEPLOYMENT] == 2);
    CHECK(st.deployment_spent == 250);
    budget_destroy(b);
}

static void test_refresh(void)
{
    struct budget_conf c = {.user_daily_micros = 100, .deployment_daily_micros = 0};
    struct budget *b = budget_create(&c);
    int64_t spent, limit;
    /* seeded: another pod's spend of alice */
    int64_t day = budget_refresh_begin(b, T0 + 100);
    CHECK(day == T0);
    struct store_spend_row rows[] = {{"alice", 90}, {"", 500}, {"dave", 10}};
    budget_refresh_end(b, day, true, rows, 3);
    CHECK(budget_check(b, "alice", T0 + 200, &spent, &limit) == BUDGET_OK);
    budget_add(b, "alice", T0 + 150, 5); /* ours, after the read */
    /* a read begins; a turn commits meanwhile (fresh, not in the read) */
    day = budget_refresh_begin(b, T0 + 300);
    budget_add(b, "alice", T0 + 310, 3);
    /* the read found 95 (the seed's 90 + our 5): our 5 is in it, our 3 is not */
    struct store_spend_row rows2[] = {{"alice", 95}};
    budget_refresh_end(b, day, true, rows2, 1);
    CHECK(budget_check(b, "alice", T0 + 400, &spent, &limit) == BUDGET_OK);
    budget_add(b, "alice", T0 + 410, 1);
    CHECK(budget_check(b, "alice", T0 + 420, &spent, &limit) == BUDGET_OK);
    budget_add(b, "alice", T0 + 430, 1);
    CHECK(budget_check(b, "alice", T0 + 440, &spent, &limit) == BUDGET_USER);
    CHECKF(spent == 100, "spent %lld", (long long)spent);
    /* a failed read keeps everything */
    day = budget_refresh_begin(b, T0 + 500);
    budget_refresh_end(b, day, false, NULL, 0);
    CHECK(budget_check(b, "alice", T0 + 510, &spent, &limit) == BUDGET_USER && spent == 100);
    budget_destroy(b);
}

static void test_many_users(void)
{
    struct budget_conf c = {.user_daily_micros = 10, .deployment_daily_micros = 0};
    struct budget *b = budget_create(&c);
    enum { N = 5000 };
    static char names[N][16];
    static struct store_spend_row rows[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "user%d", i);
        rows[i] = (struct store_spend_row){names[i], i % 2 ? 10 : 9};
    }
    int64_t day = budget_refresh_begin(b, T0 + 1);
    budget_refresh_end(b, day, true, rows, N);
    int64_t spent, limit;
    int wrong = 0;
    for (int i = 0; i < N; i++)
        wrong +=
            budget_check(b, names[i], T0 + 2, &spent, &limit) != (i % 2 ? BUDGET_USER : BUDGET_OK);
    CHECKF(wrong == 0, "%d users decided wrongly", wrong);
    budget_destroy(b);
}

int main(void)
{
    test_decide();
    test_ceiling();
    test_commits_and_days();
    test_refresh();
    test_many_users();
    return tap_done();
}
