/* loop.c - a worker's io_uring loop: setup, provided buffers, dispatch, timers.
 *
 * One turn of the loop: submit what was queued and wait (for one completion or the nearest
 * timer), handle every completion that is ready, run expired timers, then run the turn hook
 * (which flushes output queued during the turn). Submission is batched: handlers only fill
 * SQEs; the one io_uring_submit_and_wait_timeout per turn hands them to the kernel. */
#include "net/loop.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/stat.h"

const double loop_lat_bounds[LOOP_LAT_BUCKETS - 1] = {
    0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
};

struct loop {
    struct io_uring ring;
    bool stop;
    uint64_t now_ms;

    struct {
        loop_handler_fn fn;
        void *ctx;
    } ops[LOOP_MAX_OPS];
    loop_turn_fn turn_fn;
    void *turn_ctx;
    uint8_t next_op; /* loop_op_alloc */

    /* provided buffer ring */
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    uint8_t *bufs;
    unsigned buf_count;
    unsigned buf_size;
    unsigned buf_returned; /* buffers added this turn, made visible at the end of it */

    /* timer heap */
    struct timer **heap;
    uint32_t heap_len;
    uint32_t heap_cap;

    struct loop_stats stats;
};

static int setup_buf_ring(struct loop *l)
{
    /* liburing 2.3 has no io_uring_setup_buf_ring: map the ring page-aligned and register it,
     * as liburing's examples/io_uring-udp.c does. */
    l->br_bytes = l->buf_count * sizeof(struct io_uring_buf);
    l->br = mmap(NULL, l->br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (l->br == MAP_FAILED)
        return -errno;
    /* The payload memory is untouched until the kernel writes into it, so idle workers cost
     * little resident memory. */
    l->bufs = mmap(NULL, (size_t)l->buf_count * l->buf_size, PROT_READ | PROT_WRITE,
                   MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (l->bufs == MAP_FAILED) {
        int err = -errno;
        munmap(l->br, l->br_bytes);
        return err;
    }
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)l->br,
        .ring_entries = l->buf_count,
        .bgid = LOOP_BUF_GROUP,
    };
    int ret = io_uring_register_buf_ring(&l->ring, &reg, 0);
    if (ret) {
        munmap(l->bufs, (size_t)l->buf_count * l->buf_size);
        munmap(l->br, l->br_bytes);
        return ret;
    }
    io_uring_buf_ring_init(l->br);
    int mask = io_uring_buf_ring_mask(l->buf_count);
    for (unsigned i = 0; i < l->buf_count; i++)
        io_uring_buf_ring_add(l->br, l->bufs + (size_t)i * l->buf_size, l->buf_size,
                              (unsigned short)i, mask, (int)i);
    io_uring_buf_ring_advance(l->br, (int)l->buf_count);
    return 0;
}

/* Create a loop on the calling thread. Returns NULL with errno set on failure. */
struct loop *loop_create(const struct loop_config *conf)
{
    struct loop *l = xcalloc(1, sizeof(*l));
    unsigned sq = conf && conf->sq_entries ? conf->sq_entries : 4096;
    struct io_uring_params p = {
        .flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE,
        .cq_entries = conf && conf->cq_entries ? conf->cq_entries : 4 * sq,
    };
    int ret = io_uring_queue_init_params(sq, &l->ring, &p);
    if (ret < 0) {
        errno = -ret;
        goto out_free;
    }
    l->buf_count = conf && conf->buf_count ? conf->buf_count : 1024;
    l->buf_size = conf && conf->buf_size ? conf->buf_size : 4096;
    ret = setup_buf_ring(l);
    if (ret < 0) {
        errno = -ret;
        goto out_queue_exit;
    }
    l->now_ms = clock_now_ms();
    l->next_op = LOOP_NET_OPS;
    return l;

out_queue_exit:
    io_uring_queue_exit(&l->ring);
out_free:
    xfree(l);
    return NULL;
}

/* Tear down the ring and its buffers. Call after loop_run returned, on the same thread. */
void loop_destroy(struct loop *l)
{
    if (!l)
        return;
    io_uring_unregister_buf_ring(&l->ring, LOOP_BUF_GROUP);
    io_uring_queue_exit(&l->ring);
    munmap(l->bufs, (size_t)l->buf_count * l->buf_size);
    munmap(l->br, l->br_bytes);
    xfree(l->heap);
    xfree(l);
}

uint8_t loop_op_alloc(struct loop *l, unsigned n)
{
    if (!n || l->next_op + n > LOOP_MAX_OPS)
        return 0;
    uint8_t op = l->next_op;
    l->next_op = (uint8_t)(l->next_op + n);
    return op;
}

void loop_set_handler(struct loop *l, uint8_t op, loop_handler_fn fn, void *ctx)
{
    l->ops[op].fn = fn;
    l->ops[op].ctx = ctx;
}

void loop_set_turn_hook(struct loop *l, loop_turn_fn fn, void *ctx)
{
    l->turn_fn = fn;
    l->turn_ctx = ctx;
}

/* Get an SQE, submitting the queued ones first if the SQ ring is full. */
struct io_uring_sqe *loop_sqe(struct loop *l, uint64_t user_data)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
    while (!sqe) {
        io_uring_submit(&l->ring);
        sqe = io_uring_get_sqe(&l->ring);
    }
    io_uring_sqe_set_data64(sqe, user_data);
    return sqe;
}

uint8_t *loop_buf(struct loop *l, uint16_t bid)
{
    return l->bufs + (size_t)bid * l->buf_size;
}

unsigned loop_buf_size(const struct loop *l)
{
    return l->buf_size;
}

uint64_t loop_now_ms(const struct loop *l)
{
    return l->now_ms;
}

void loop_stop(struct loop *l)
{
    l->stop = true;
}

static void return_buf(struct loop *l, uint16_t bid)
{
    io_uring_buf_ring_add(l->br, loop_buf(l, bid), l->buf_size, bid,
                          io_uring_buf_ring_mask(l->buf_count), (int)l->buf_returned);
    l->buf_returned++;
}

/* ---- timer heap ---- */

static void heap_set(struct loop *l, uint32_t pos, struct timer *t)
{
    l->heap[pos] = t;
    t->heap_idx = pos + 1;
}

static void heap_up(struct loop *l, uint32_t pos)
{
    struct timer *t = l->heap[pos];
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (l->heap[parent]->deadline_ms <= t->deadline_ms)
            break;
        heap_set(l, pos, l->heap[parent]);
        pos = parent;
    }
    heap_set(l, pos, t);
}

static void heap_down(struct loop *l, uint32_t pos)
{
    struct timer *t = l->heap[pos];
    for (;;) {
        uint32_t child = 2 * pos + 1;
        if (child >= l->heap_len)
            break;
        if (child + 1 < l->heap_len &&
            l->heap[child + 1]->deadline_ms < l->heap[child]->deadline_ms)
            child++;
        if (t->deadline_ms <= l->heap[child]->deadline_ms)
            break;
        heap_set(l, pos, l->heap[child]);
        pos = child;
    }
    heap_set(l, pos, t);
}

void timer_disarm(struct loop *l, struct timer *t)
{
    if (!t->heap_idx)
        return;
    uint32_t pos = t->heap_idx - 1;
    t->heap_idx = 0;
    struct timer *last = l->heap[--l->heap_len];
    if (pos == l->heap_len)
        return;
    l->heap[pos] = last;
    last->heap_idx = pos + 1;
    if (pos > 0 && l->heap[(pos - 1) / 2]->deadline_ms > last->deadline_ms)
        heap_up(l, pos);
    else
        heap_down(l, pos);
}

void timer_arm(struct loop *l, struct timer *t, uint64_t deadline_ms, timer_fn fn)
{
    t->fn = fn;
    if (t->heap_idx) {
        /* Re-arming an armed timer - a stall deadline pushed on every provider read, curl's
         * timeout restated on every call - moves it within the heap instead of removing and
         * re-inserting it; the same deadline again costs nothing. */
        uint64_t old = t->deadline_ms;
        t->deadline_ms = deadline_ms;
        if (deadline_ms < old)
            heap_up(l, t->heap_idx - 1);
        else if (deadline_ms > old)
            heap_down(l, t->heap_idx - 1);
        return;
    }
    t->deadline_ms = deadline_ms;
    if (l->heap_len == l->heap_cap) {
        l->heap_cap = l->heap_cap ? 2 * l->heap_cap : 256;
        l->heap = xrealloc(l->heap, l->heap_cap * sizeof(*l->heap));
    }
    l->heap[l->heap_len++] = t;
    t->heap_idx = l->heap_len;
    heap_up(l, l->heap_len - 1);
}

static void run_timers(struct loop *l)
{
    while (l->heap_len && l->heap[0]->deadline_ms <= l->now_ms) {
        struct timer *t = l->heap[0];
        timer_disarm(l, t);
        t->fn(l, t); /* may re-arm t or free its owner */
    }
}

/* ---- the loop ---- */

static void record_turn(struct loop *l, uint64_t t0, unsigned cqes)
{
    uint64_t ns = clock_now_ns() - t0;
    unsigned b = metric_bucket(loop_lat_bounds, LOOP_LAT_BUCKETS - 1, (double)ns / 1e9);
    metric_add(&l->stats.lat_bucket[b], 1);
    metric_add(&l->stats.lat_sum_ns, ns);
    metric_add(&l->stats.iterations, 1);
    metric_add(&l->stats.cqes, cqes);
}

static unsigned dispatch_cqes(struct loop *l)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&l->ring, head, cqe)
    {
        uint8_t op = loop_ud_op(cqe->user_data);
        if (op < LOOP_MAX_OPS && l->ops[op].fn)
            l->ops[op].fn(l, cqe, l->ops[op].ctx);
        if (cqe->flags & IORING_CQE_F_BUFFER)
            return_buf(l, (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
        if (cqe->res == -ENOBUFS)
            metric_add(&l->stats.enobufs, 1);
        n++;
    }
    io_uring_cq_advance(&l->ring, n);
    if (l->buf_returned) {
        io_uring_buf_ring_advance(l->br, (int)l->buf_returned);
        l->buf_returned = 0;
    }
    return n;
}

/* Run turns until loop_stop. Returns 0, or -errno when waiting on the ring fails. */
int loop_run(struct loop *l)
{
    while (!l->stop) {
        uint64_t t0 = clock_now_ns();
        l->now_ms = t0 / 1000000ull;
        unsigned n = dispatch_cqes(l);
        run_timers(l);
        if (l->turn_fn)
            l->turn_fn(l, l->turn_ctx);
        if (n)
            record_turn(l, t0, n);
        if (l->stop)
            break;

        struct __kernel_timespec ts, *tsp = NULL;
        if (l->heap_len) {
            uint64_t now = clock_now_ms();
            uint64_t d = l->heap[0]->deadline_ms > now ? l->heap[0]->deadline_ms - now : 0;
            ts.tv_sec = (long long)(d / 1000);
            ts.tv_nsec = (long long)(d % 1000) * 1000000;
            tsp = &ts;
        }
        struct io_uring_cqe *cqe;
        int ret = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, tsp, NULL);
        if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
            log_error("io_uring wait failed: %s", strerror(-ret));
            return ret;
        }
    }
    return 0;
}

void loop_stats_read(const struct loop *l, struct loop_stats *out)
{
    const uint64_t *src = (const uint64_t *)&l->stats;
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}
