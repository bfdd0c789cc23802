/* test_loop_timer.c - net/loop.c's timer heap: timers fire in deadline order after being armed,
 * re-armed earlier, later and to the same deadline (moved in place), and disarmed.
 *
 * Every deadline is in the past (the monotonic clock's first minutes), so all of them are due in
 * the loop's first turn and run from one pass over the heap: the order says everything, and nothing
 * depends on time passing. A watchdog timer a minute ahead only bounds a broken run. */
#include "net/loop.h"
#include "tests/tap.h"

#include <errno.h>
#include <stdlib.h>

#define N 500

static struct timer timers[N];
static uint64_t want[N]; /* final deadline of each armed timer; 0 = disarmed */
static unsigned fired, expected;
static uint64_t last_deadline;
static bool order_ok = true, fired_twice;
static unsigned char seen[N];
static struct timer watchdog;
static bool watchdog_fired;

static void on_fire(struct loop *l, struct timer *t)
{
    unsigned i = (unsigned)(t - timers);
    if (t->deadline_ms < last_deadline || t->deadline_ms != want[i])
        order_ok = false;
    last_deadline = t->deadline_ms;
    if (seen[i]++)
        fired_twice = true;
    if (++fired == expected) {
        timer_disarm(l, &watchdog);
        loop_stop(l);
    }
}

static void on_watchdog(struct loop *l, struct timer *t)
{
    (void)t;
    watchdog_fired = true;
    loop_stop(l);
}

int main(void)
{
    struct loop_config conf = {.sq_entries = 64, .buf_count = 16, .buf_size = 4096};
    struct loop *l = loop_create(&conf);
    if (!l) {
        printf("skip: no io_uring here (%d)\n", errno);
        return 77;
    }
    srand(7);
    /* Past deadlines in [1, span], with repeats; re-arms stay within [1, 2 * span] <= now. */
    uint64_t now = loop_now_ms(l);
    uint64_t span = now / 4 < 100000 ? now / 4 : 100000;
    if (span < 100) {
        printf("skip: the monotonic clock is too young (%llu ms)\n", (unsigned long long)now);
        return 77;
    }
    for (unsigned i = 0; i < N; i++) {
        want[i] = 1 + (uint64_t)rand() % span;
        timer_arm(l, &timers[i], want[i], on_fire);
    }
    for (unsigned i = 0; i < N; i += 3) { /* re-armed: earlier, later, or the same deadline */
        int how = rand() % 3;
        if (how == 0 && want[i] > 1)
            want[i] -= 1 + (uint64_t)rand() % (want[i] - 1);
        else if (how == 1)
            want[i] += 1 + (uint64_t)rand() % span;
        timer_arm(l, &timers[i], want[i], on_fire);
    }
    for (unsigned i = 1; i < N; i += 7) {
        timer_disarm(l, &timers[i]);
        want[i] = 0;
    }
    for (unsigned i = 0; i < N; i++)
        expected += want[i] != 0;
    CHECK(timer_armed(&timers[0]) && !timer_armed(&timers[1]));
    timer_arm(l, &watchdog, loop_now_ms(l) + 60000, on_watchdog);
    CHECK(loop_run(l) == 0);
    CHECK(!watchdog_fired);
    CHECKF(fired == expected, "%u of %u fired", fired, expected);
    CHECK(order_ok);
    CHECK(!fired_twice);
    for (unsigned i = 0; i < N; i++)
        CHECKF(!timer_armed(&timers[i]) && seen[i] == (want[i] != 0), "timer %u", i);
    loop_destroy(l);
    return tap_done();
}
