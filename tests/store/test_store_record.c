/* test_store_record.c - turn records (store/record.c) and journal files (store/journal.c)
 * without PostgreSQL: round trips, corruption at every byte, torn tails at every length,
 * orphan adoption and locking. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <sys/file.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "store/journal.h"
#include "store/record.h"
#include "store/store.h"
#include "tests/tap.h"

static const uint32_t deltas[] = {5, 11, 12};
static const struct llm_call_record calls[] = {
    {.provider = "openai",
     .model = "gpt-4.1-mini",
     .tier = "standard",
     .attempt = 1,
     .role = "retry",
     .status = "error",
     .error = "overloaded",
     .http_status = 529,
     .ttft_ms = -1,
     .duration_ms = 40,
     .cost_micros = 0},
    {.provider = "openai",
     .model = "gpt-4.1-mini",
     .tier = "standard",
     .attempt = 2,
     .role = "model",
     .status = "ok",
     .http_status = 200,
     .usage = {100, 40, 10, 20, 5},
     .usage_reported = true,
     .ttft_ms = 120,
     .duration_ms = 900,
     .cost_micros = 1234},
};
static const struct tool_call_record tools[] = {
    {.name = "search",
     .arguments = "{\"q\":\"shoes\"}",
     .arguments_len = 12,
     .result_bytes = 77,
     .cache_hit = true,
     .duration_ms = 3,
     .status = "ok",
     .cost_micros = 6},
};

static struct store_turn sample(void)
{
    static const char user[] = "hi\0there"; /* a NUL: stored as a space */
    return (struct store_turn){
        .conversation_id = "0123456789abcdef0123456789abcdef",
        .user_sub = "alice",
        .turn_id = "fedcba9876543210fedcba9876543210",
        .client_msg_id = "m1",
        .user_text = user,
        .user_len = sizeof(user) - 1,
        .answer = "Hello world!",
        .answer_len = 12,
        .delta_ends = deltas,
        .n_deltas = 3,
        .finish_reason = "stop",
        .started_at_ms = 1700000000123,
        .first_token_ms = 120,
        .total_ms = 950,
        .currency = "INR",
        .usd_to_inr_micros = 84000000,
        .calls = calls,
        .n_calls = 2,
        .usage = {100, 40, 10, 20, 5},
        .cost_micros = 1240,
        .tools = tools,
        .n_tools = 1,
    };
}

static void test_round_trip(void)
{
    struct store_turn t = sample();
    struct buf b = {0};
    rec_encode(&b, &t);
    long n = rec_check(buf_begin(&b), buf_size(&b));
    CHECK(n == (long)buf_size(&b));
    struct rec_turn rt;
    CHECK(rec_decode(buf_begin(&b), buf_size(&b), &rt) == 0);
    CHECK(strcmp(rt.t.conversation_id, t.conversation_id) == 0);
    CHECK(strcmp(rt.t.turn_id, t.turn_id) == 0);
    CHECK(rt.t.user_len == t.user_len && memcmp(rt.t.user_text, "hi there", 8) == 0);
    CHECK(rt.t.answer_len == 12 && memcmp(rt.t.answer, "Hello world!", 12) == 0);
    CHECK(rt.t.n_deltas == 3 && rt.t.delta_ends[2] == 12);
    CHECK(rt.t.started_at_ms == t.started_at_ms && rt.t.first_token_ms == 120);
    CHECK(rt.t.n_calls == 2 && !strcmp(rt.t.calls[0].error, "overloaded"));
    CHECK(rt.t.calls[1].error[0] == '\0' && rt.t.calls[1].usage.reasoning_tokens == 5);
    CHECK(rt.t.calls[0].ttft_ms == -1 && rt.t.calls[1].http_status == 200);
    CHECK(rt.t.n_tools == 1 && rt.t.tools[0].arguments_len == 12 && rt.t.tools[0].cache_hit);
    CHECK(rt.t.cost_micros == 1240 && rt.t.usd_to_inr_micros == 84000000);
    rec_turn_free(&rt);
    buf_free(&b);
}

/* Version 2: the route, the flags and each call's agent and prompt version come back. */
static void test_route_and_flags(void)
{
    struct store_turn t = sample();
    struct llm_call_record c2[2] = {calls[0], calls[1]};
    snprintf(c2[1].agent, sizeof(c2[1].agent), "search");
    snprintf(c2[1].prompt_version, sizeof(c2[1].prompt_version), "0123456789ab");
    t.calls = c2;
    t.query_type = "product_search";
    t.agent = "search";
    t.flags = "ungrounded_number,narration_removed";
    struct buf b = {0};
    rec_encode(&b, &t);
    struct rec_turn rt;
    CHECK(rec_decode(buf_begin(&b), buf_size(&b), &rt) == 0);
    CHECK(!strcmp(rt.t.query_type, "product_search") && !strcmp(rt.t.agent, "search"));
    CHECK(!strcmp(rt.t.flags, "ungrounded_number,narration_removed"));
    CHECK(rt.t.calls[0].agent[0] == '\0' && !strcmp(rt.t.calls[1].agent, "search"));
    CHECK(!strcmp(rt.t.calls[1].prompt_version, "0123456789ab"));
    rec_turn_free(&rt);
    buf_free(&b);
}

/* Rewrite a version 6 record (identity: u64 0 and an empty string, 13 bytes after the version;
 * no trace: an empty trace id and a zero count of spans, 9 bytes near the end; no deployment: an
 * empty string per call, 5 bytes each, at the end) as the version an earlier release wrote:
 * without the deployments; below version 5 also without the trace; below version 4 also without
 * the identity; for version 2 also without version 3's tail (a zero count of savings, 4 bytes),
 * for version 1 also without version 2's (three empty strings and two per call, 5 bytes each).
 * Returns its length. */
static size_t downgrade(struct buf *b, uint8_t version, uint32_t n_calls)
{
    uint8_t *p = (uint8_t *)buf_begin(b);
    size_t tail = 5 * (size_t)n_calls + (version <= 4 ? 9 : 0) + (version <= 2 ? 4 : 0) +
                  (version == 1 ? 5 * (3 + 2 * (size_t)n_calls) : 0);
    size_t id = version <= 3 ? 13 : 0;
    memmove(p + 13, p + 13 + id, buf_size(b) - 13 - id);
    uint32_t len = (uint32_t)(buf_size(b) - id - 12 - tail);
    p[12] = version;
    uint8_t l[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
    uint32_t crc = (uint32_t)crc32(crc32(0L, l, 4), p + 12, len);
    for (int k = 0; k < 4; k++)
        p[4 + k] = l[k], p[8 + k] = (uint8_t)(crc >> (8 * k));
    return 12 + len;
}

/* Cache savings (version 3) travel with the turn; a version 2 record (without them) replays. */
static void test_savings_round_trip(void)
{
    struct store_turn t = sample();
    struct cache_saving_record sv[2] = {{"exact", "exact cache: answer of specialist", -1234},
                                        {"tool", "tool get_policy", 0}};
    t.savings = sv;
    t.n_savings = 2;
    struct buf b = {0};
    CHECK(rec_encode(&b, &t) == 0);
    struct rec_turn rt;
    CHECK(rec_decode(buf_begin(&b), buf_size(&b), &rt) == 0);
    CHECK(rt.t.n_savings == 2 && !strcmp(rt.t.savings[0].layer, "exact") &&
          rt.t.savings[0].amount_micros == -1234 && !strcmp(rt.t.savings[1].layer, "tool") &&
          !strcmp(rt.t.savings[1].description, "tool get_policy"));
    rec_turn_free(&rt);
    buf_free(&b);
    t.n_savings = 0;
    rec_encode(&b, &t);
    size_t n = downgrade(&b, 2, t.n_calls);
    CHECK(rec_decode(buf_begin(&b), n, &rt) == 0);
    CHECK(rt.t.n_savings == 0 && rt.t.n_calls == t.n_calls);
    rec_turn_free(&rt);
    buf_free(&b);
}

/* Records of versions 1 to 3 (journals previous releases left) still replay, without a
 * database identity; a version from the future is refused. */
static void test_version_1_replays(void)
{
    struct store_turn t = sample();
    for (uint8_t v = 1; v <= 3; v++) {
        struct buf b = {0};
        rec_encode(&b, &t);
        size_t n = downgrade(&b, v, t.n_calls);
        CHECK(rec_check(buf_begin(&b), n) == (long)n);
        struct rec_turn rt;
        uint64_t sys = 7;
        char name[64] = "x";
        CHECK(rec_identity(buf_begin(&b), n, &sys, name, sizeof(name)) == 0);
        CHECKF(rec_decode(buf_begin(&b), n, &rt) == 0, "version %d", v);
        CHECK(rt.t.n_calls == 2 && rt.t.db_system_id == 0 && rt.t.db_name == NULL);
        if (v == 1)
            CHECK(rt.t.query_type == NULL && rt.t.flags == NULL && rt.t.calls[1].agent[0] == '\0');
        rec_turn_free(&rt);
        uint8_t *p = (uint8_t *)buf_begin(&b);
        p[12] = 7; /* a version from the future is refused */
        uint32_t len = (uint32_t)(n - 12);
        uint8_t l[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                        (uint8_t)(len >> 24)};
        uint32_t crc = (uint32_t)crc32(crc32(0L, l, 4), p + 12, len);
        for (int k = 0; k < 4; k++)
            p[8 + k] = (uint8_t)(crc >> (8 * k));
        CHECK(rec_decode(buf_begin(&b), n, &rt) == -EBADMSG);
        buf_free(&b);
    }
}

/* Version 5: the trace id and the spans (attributes and events as JSON text) come back; a
 * version 4 record (the previous release) has no trace. */
static void test_spans(void)
{
    struct store_turn t = sample();
    struct span_record sp[2] = {
        {.span_id = "00f067aa0ba902b7",
         .kind = "turn",
         .name = "turn",
         .status = "ok",
         .start_us = 1700000000000000,
         .end_us = 1700000000500000,
         .attributes = "{\"a\":1}",
         .attributes_len = 7,
         .events = "[]",
         .events_len = 2},
        {.span_id = "0000000000000001",
         .parent_span_id = "00f067aa0ba902b7",
         .kind = "tool",
         .name = "execute_tool get_product",
         .status = "error",
         .status_message = "HTTP 503",
         .start_us = 1700000000100000,
         .end_us = 1700000000200000,
         .attributes = "{}",
         .attributes_len = 2,
         .events = "[{\"name\":\"x\"}]",
         .events_len = 14},
    };
    t.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    t.spans = sp;
    t.n_spans = 2;
    struct buf b = {0};
    CHECK(rec_encode(&b, &t) == 0);
    struct rec_turn rt;
    CHECK(rec_decode(buf_begin(&b), buf_size(&b), &rt) == 0);
    CHECK(!strcmp(rt.t.trace_id, t.trace_id) && rt.t.n_spans == 2);
    CHECK(!strcmp(rt.t.spans[0].span_id, sp[0].span_id) && rt.t.spans[0].parent_span_id[0] == 0);
    CHECK(!strcmp(rt.t.spans[1].parent_span_id, sp[0].span_id));
    CHECK(!strcmp(rt.t.spans[1].status_message, "HTTP 503") && !strcmp(rt.t.spans[1].kind, "tool"));
    CHECK(rt.t.spans[1].attributes_len == 2 && !strcmp(rt.t.spans[1].events, sp[1].events));
    CHECK(!strcmp(rt.t.spans[0].attributes, "{\"a\":1}"));
    CHECK(rt.t.spans[0].start_us == sp[0].start_us && rt.t.spans[1].end_us == sp[1].end_us);
    rec_turn_free(&rt);
    buf_free(&b);
    t.n_spans = 0;
    t.trace_id = NULL;
    rec_encode(&b, &t);
    size_t n = downgrade(&b, 4, t.n_calls);
    CHECK(rec_decode(buf_begin(&b), n, &rt) == 0);
    CHECK(rt.t.n_spans == 0 && rt.t.trace_id == NULL && rt.t.n_calls == 2);
    rec_turn_free(&rt);
    buf_free(&b);
}

/* Version 6: each call's capacity deployment comes back; a version 5 record (the previous
 * release) replays with none. */
static void test_deployment(void)
{
    struct store_turn t = sample();
    struct llm_call_record c2[2] = {calls[0], calls[1]};
    snprintf(c2[1].tier, sizeof(c2[1].tier), "provisioned");
    snprintf(c2[1].deployment, sizeof(c2[1].deployment), "frontier-ptu");
    t.calls = c2;
    struct buf b = {0};
    CHECK(rec_encode(&b, &t) == 0);
    struct rec_turn rt;
    CHECK(rec_decode(buf_begin(&b), buf_size(&b), &rt) == 0);
    CHECK(!strcmp(rt.t.calls[1].tier, "provisioned"));
    CHECK(!strcmp(rt.t.calls[1].deployment, "frontier-ptu") && rt.t.calls[0].deployment[0] == 0);
    rec_turn_free(&rt);
    buf_free(&b);
    t.calls = calls; /* no deployment: what version 5 could not say */
    rec_encode(&b, &t);
    size_t n = downgrade(&b, 5, 2);
    CHECK(rec_decode(buf_begin(&b), n, &rt) == 0);
    CHECK(rt.t.n_calls == 2 && rt.t.calls[1].deployment[0] == '\0');
    CHECK(!strcmp(rt.t.calls[1].tier, "standard") && rt.t.calls[1].cost_micros == 1234);
    rec_turn_free(&rt);
    buf_free(&b);
}

static char dir[] = "/tmp/trilemma-journal-test.XXXXXX";

/* Version 4: each record names its database; journal_adopt_for adopts only its own database's
 * orphans (or ones that name none) and counts the others, which stay as they were. */
static void test_database_identity(void)
{
    struct store_turn t = sample();
    t.db_system_id = 7351234567890123456ull;
    t.db_name = "trilemma";
    struct buf b = {0};
    CHECK(rec_encode(&b, &t) == 0);
    uint64_t sys = 0;
    char name[64];
    CHECK(rec_identity(buf_begin(&b), buf_size(&b), &sys, name, sizeof(name)) == 1);
    CHECK(sys == t.db_system_id && !strcmp(name, "trilemma"));
    struct rec_turn rt;
    CHECK(rec_decode(buf_begin(&b), buf_size(&b), &rt) == 0);
    CHECK(rt.t.db_system_id == t.db_system_id && !strcmp(rt.t.db_name, "trilemma"));
    rec_turn_free(&rt);

    char path[256];
    snprintf(path, sizeof(path), "%s/9-w0.journal", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, buf_begin(&b), buf_size(&b)) == (ssize_t)buf_size(&b));
    close(fd);
    struct store_db_id other = {t.db_system_id + 1, "trilemma"};
    struct store_db_id other_name = {t.db_system_id, "trilemma_b"};
    struct store_db_id unknown = {0, ""};
    struct store_db_id same = {t.db_system_id, "trilemma"};
    CHECK(journal_adopt_for(dir, NULL, &other) == NULL && journal_foreign_count() == 1);
    CHECK(journal_adopt_for(dir, NULL, &other_name) == NULL && journal_foreign_count() == 1);
    CHECK(journal_adopt_for(dir, NULL, &unknown) == NULL && journal_foreign_count() == 0);
    CHECK(access(path, F_OK) == 0); /* left alone */
    struct journal *j = journal_adopt_for(dir, NULL, &same);
    CHECK(j != NULL && j->size == buf_size(&b) && journal_foreign_count() == 0);
    journal_close(j, true);
    buf_free(&b);
}

/* Any single flipped byte is caught; any prefix is "incomplete" or caught. */
static void test_corruption(void)
{
    struct store_turn t = sample();
    struct buf b = {0};
    rec_encode(&b, &t);
    size_t n = buf_size(&b);
    char *copy = xmalloc(n);
    int undetected = 0, bad_prefix = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(copy, buf_begin(&b), n);
        copy[i] ^= 0x5a;
        if (rec_check(copy, n) > 0)
            undetected++;
    }
    for (size_t len = 0; len < n; len++)
        if (rec_check(buf_begin(&b), len) > 0)
            bad_prefix++;
    CHECK(undetected == 0);
    CHECK(bad_prefix == 0);
    xfree(copy);
    buf_free(&b);
}

/* A dead process's journal with a torn tail of every possible length. */
static void test_torn_tail(void)
{
    struct store_turn t = sample();
    struct buf recs = {0};
    for (int i = 0; i < 3; i++)
        rec_encode(&recs, &t);
    struct buf last = {0};
    rec_encode(&last, &t);
    size_t whole = buf_size(&recs);
    int wrong = 0;
    for (size_t cut = 0; cut < buf_size(&last); cut += 7) {
        char path[256];
        snprintf(path, sizeof(path), "%s/1-w0.journal", dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        CHECK(fd >= 0);
        CHECK(write(fd, buf_begin(&recs), whole) == (ssize_t)whole);
        CHECK(write(fd, buf_begin(&last), cut) == (ssize_t)cut);
        close(fd);
        struct journal *j = journal_adopt(dir, NULL);
        if (!j || j->size != whole || j->dropped != cut)
            wrong++;
        if (j) {
            struct buf out = {0};
            uint64_t end;
            if (journal_read(j, 0, 100, 1 << 20, &out, &end) != 3 || end != whole)
                wrong++;
            buf_free(&out);
            journal_close(j, true);
        }
    }
    CHECK(wrong == 0);
    buf_free(&recs);
    buf_free(&last);
}

/* A live journal (locked) is never adopted; our own is; an empty orphan is deleted. */
static void test_locking(void)
{
    char err[256];
    struct journal *own = journal_open_own(dir, 3, err, sizeof(err));
    CHECK(own != NULL);
    CHECK(journal_adopt(dir, NULL) == NULL); /* empty and locked by us: not adoptable */
    struct store_turn t = sample();
    struct buf b = {0};
    rec_encode(&b, &t);
    struct iovec iov = {buf_begin(&b), buf_size(&b)};
    CHECK(journal_append_sync(own, &iov, 1) == 0);
    CHECK(own->size == buf_size(&b));
    CHECK(journal_adopt(dir, NULL) == NULL); /* still locked */
    journal_close(own, false);
    struct journal *j = journal_adopt(dir, NULL); /* its owner is gone: an orphan now */
    CHECK(j != NULL && j->size == buf_size(&b));
    journal_close(j, true);
    CHECK(journal_adopt(dir, NULL) == NULL);
    buf_free(&b);
}

/* A turn too large for one record (REC_MAX_PAYLOAD) is refused by rec_encode and adds nothing:
 * written, it would read back as a torn tail and hide every record after it. The largest record
 * that fits is accepted and reads back whole. */
static void test_oversized_record_refused(void)
{
    struct store_turn t = sample();
    struct buf probe = {0};
    CHECK(rec_encode(&probe, &t) == 0);
    size_t room = REC_MAX_PAYLOAD - (buf_size(&probe) - REC_HEADER); /* answer bytes left */
    buf_free(&probe);
    size_t big_len = t.answer_len + room + 1;
    char *big = xmalloc(big_len);
    memset(big, 'a', big_len);
    uint32_t big_deltas[3] = {5, 11, (uint32_t)big_len};

    struct store_turn huge = t;
    huge.answer = big;
    huge.answer_len = big_len;
    huge.delta_ends = big_deltas;
    struct buf recs = {0};
    CHECK(rec_encode(&recs, &t) == 0);
    size_t one = buf_size(&recs);
    CHECK(rec_encode(&recs, &huge) == -EMSGSIZE);
    CHECK(buf_size(&recs) == one); /* nothing appended */
    CHECK(rec_encode(&recs, &t) == 0);

    /* the journal around the refused turn loses nothing */
    char path[256];
    snprintf(path, sizeof(path), "%s/2-w0.journal", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, buf_begin(&recs), buf_size(&recs)) == (ssize_t)buf_size(&recs));
    close(fd);
    struct journal *j = journal_adopt(dir, NULL);
    CHECK(j != NULL && j->size == buf_size(&recs) && j->dropped == 0);
    if (j) {
        struct buf out = {0};
        uint64_t end;
        CHECK(journal_read(j, 0, 100, 1 << 20, &out, &end) == 2 && end == buf_size(&recs));
        buf_free(&out);
        journal_close(j, true);
    }

    /* one byte less: exactly REC_MAX_PAYLOAD, accepted and whole */
    huge.answer_len = big_len - 1;
    big_deltas[2] = (uint32_t)huge.answer_len;
    struct buf edge = {0};
    CHECK(rec_encode(&edge, &huge) == 0);
    CHECK(buf_size(&edge) == REC_HEADER + (size_t)REC_MAX_PAYLOAD);
    CHECK(rec_check(buf_begin(&edge), buf_size(&edge)) == (long)buf_size(&edge));
    buf_free(&edge);
    buf_free(&recs);
    xfree(big);
}

/* Runs every check; exit 0 when all pass (77: skipped). */
int main(void)
{
    test_route_and_flags();
    test_version_1_replays();
    test_savings_round_trip();
    test_spans();
    test_deployment();
    log_set_level(LOG_ERROR); /* torn tails are logged as warnings by design */
    test_round_trip();
    test_corruption();
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_torn_tail();
    test_locking();
    test_oversized_record_refused();
    test_database_identity();
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return tap_done();
}
