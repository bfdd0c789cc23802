/* test_guard.c - the narration filter at every split point, grounding, refusals, cascade. */
#include <string.h>

#include "orchestrator/guard.h"
#include "tests/tap.h"

struct out {
    char buf[4096];
    size_t n;
    int calls;
};

static void emit(void *ctx, const char *p, size_t len)
{
    struct out *o = ctx;
    CHECK(len > 0);
    memcpy(o->buf + o->n, p, len);
    o->n += len;
    o->buf[o->n] = '\0';
    o->calls++;
}

/* Filter s fed in pieces of `step` bytes (0 = whole), return what reached the client. */
static void run(const char *s, size_t step, struct out *o, struct narr_filter *f)
{
    memset(o, 0, sizeof(*o));
    narr_init(f);
    size_t n = strlen(s);
    if (!step)
        step = n ? n : 1;
    for (size_t i = 0; i < n; i += step)
        narr_feed(f, s + i, i + step > n ? n - i : step, emit, o);
    narr_finish(f, emit, o);
}

static void expect(const char *in, const char *want, uint32_t removed)
{
    struct out o;
    struct narr_filter f;
    size_t n = strlen(in);
    for (size_t step = 0; step <= n; step++) {
        run(in, step, &o, &f);
        CHECKF(strcmp(o.buf, want) == 0, "step %zu: '%s' -> '%s', want '%s'", step, in, o.buf,
               want);
        CHECKF(f.removed == removed, "step %zu: '%s' removed %u", step, in, f.removed);
    }
    /* every two-piece split */
    for (size_t cut = 0; cut <= n; cut++) {
        memset(&o, 0, sizeof(o));
        narr_init(&f);
        narr_feed(&f, in, cut, emit, &o);
        narr_feed(&f, in + cut, n - cut, emit, &o);
        narr_finish(&f, emit, &o);
        CHECKF(strcmp(o.buf, want) == 0, "cut %zu: '%s' -> '%s'", cut, in, o.buf);
    }
}

static void test_narration(void)
{
    expect("The Redmi 13C has a 5000 mAh battery.", "The Redmi 13C has a 5000 mAh battery.", 0);
    expect("I am now calling the search tool. Here are three phones.", "Here are three phones.", 1);
    expect("Let me search the catalog for you... Here you go.", "Here you go.", 1);
    expect("Transferring you to the product specialist.\nThe warranty is 1 year.",
           "The warranty is 1 year.", 1);
    expect("Here are the options. I'll check the offers tool next. Anything else?",
           "Here are the options. Anything else?", 1);
    expect("Let me know if you need anything else.", "Let me know if you need anything else.", 0);
    expect("I'll be happy to help: the return window is 7 days.",
           "I'll be happy to help: the return window is 7 days.", 0);
    expect("I am now calling get_product", "", 1); /* no terminator: decided at the end */
    expect("Calling", "Calling", 0);
    expect("", "", 0);
    expect("  Let me look up the order.  Order 1234 shipped.", "  Order 1234 shipped.", 1);
    expect("Lettuce is not a phone.", "Lettuce is not a phone.", 0);
    expect("Searching... I'm now using the search tool.\n\n| a | b |", "| a | b |", 2);
}

static void test_narration_streams(void)
{
    /* ordinary text is never held: each piece is emitted within its own feed */
    struct narr_filter f;
    struct out o = {0};
    narr_init(&f);
    narr_feed(&f, "The", 3, emit, &o);
    CHECK(strcmp(o.buf, "The") == 0);
    narr_feed(&f, " phone", 6, emit, &o);
    CHECK(strcmp(o.buf, "The phone") == 0);
    /* a lead-looking opening is held only until it diverges */
    memset(&o, 0, sizeof(o));
    narr_init(&f);
    narr_feed(&f, "Le", 2, emit, &o);
    CHECK(o.n == 0);
    narr_feed(&f, "ns", 2, emit, &o);
    CHECK(strcmp(o.buf, "Lens") == 0);
    CHECK(f.emitted);
    /* a held sentence longer than the bound is released, not lost */
    char big[600] = "Let me ";
    for (size_t i = strlen(big); i < sizeof(big) - 2; i++)
        big[i] = 'x';
    big[sizeof(big) - 2] = '.';
    big[sizeof(big) - 1] = '\0';
    memset(&o, 0, sizeof(o));
    narr_init(&f);
    narr_feed(&f, big, strlen(big), emit, &o);
    narr_finish(&f, emit, &o);
    CHECK(strcmp(o.buf, big) == 0);
    CHECK(narr_is_narration("I'm now transferring you to our specialist.", 43));
    CHECK(!narr_is_narration("I'm now sure it fits.", 21));
}

static void ground(const char *answer, const char *source, uint32_t claims, uint32_t bad,
                   const char *first)
{
    struct grounding g;
    const char *src[2] = {source, "under 20000"};
    size_t lens[2] = {strlen(source), 11};
    ground_check(answer, strlen(answer), src, lens, 2, &g);
    CHECKF(g.claims == claims && g.mismatches == bad, "'%s': %u claims %u bad", answer, g.claims,
           g.mismatches);
    if (first)
        CHECKF(strcmp(g.first_mismatch, first) == 0, "first '%s'", g.first_mismatch);
}

static void test_grounding(void)
{
    const char *src = "{\"items\":[{\"title\":\"Nova X\",\"price\":18999,\"specs\":{"
                      "\"battery_mah\":6000,\"display\":\"6.7-inch 120Hz\",\"ram_gb\":8}}]}";
    ground("The Nova X costs ₹18,999 and has a 6000 mAh battery.", src, 2, 0, NULL);
    ground("The Nova X costs ₹17,999.", src, 1, 1, "₹17,999");
    ground("Nova X: Rs. 18999, 8 GB RAM, 6.7\" 120 Hz display", src, 4, 0, NULL);
    ground("It has a 5000mAh battery", src, 1, 1, "5000mAh");
    ground("Here are the top 3 phones under ₹20,000.", src, 1, 0, NULL); /* the user's budget */
    ground("Price: INR 18999.00", src, 1, 0, NULL);
    ground("We found 2 phones.", src, 0, 0, NULL);
    ground("", src, 0, 0, NULL);
    /* the user's budget written as 16k / 1.5 lakh is the same number as ₹16,000 / ₹1,50,000 */
    struct grounding g;
    const char *user[1] = {"best phone under 16k"};
    size_t ulen[1] = {strlen(user[0])};
    const char *ans = "Here are 3 options under ₹16,000.";
    ground_check(ans, strlen(ans), user, ulen, 1, &g);
    CHECK(g.claims == 1 && g.mismatches == 0);
    user[0] = "laptops under 1.5 lakh";
    ulen[0] = strlen(user[0]);
    ans = "All under ₹1,50,000.";
    ground_check(ans, strlen(ans), user, ulen, 1, &g);
    CHECK(g.claims == 1 && g.mismatches == 0);
    ans = "All under ₹1,60,000.";
    ground_check(ans, strlen(ans), user, ulen, 1, &g);
    CHECK(g.mismatches == 1);
    user[0] = "a 16kg bag"; /* a unit, not a scale */
    ulen[0] = strlen(user[0]);
    ans = "It costs ₹16,000.";
    ground_check(ans, strlen(ans), user, ulen, 1, &g);
    CHECK(g.mismatches == 1);
    /* the claim as written starts on a character, not inside the em dash before the mark (it
     * goes to the trace and, verified, into the next model's prompt) */
    ans = "The Zeta Pro—₹21,999 now.";
    ground_check(ans, strlen(ans), user, ulen, 1, &g);
    CHECK(g.mismatches == 1);
    CHECKF(strcmp(g.first_mismatch, "₹21,999") == 0, "first '%s'", g.first_mismatch);
}

static enum verify_verdict verify(const char *answer, bool want_table, struct verify_result *r)
{
    const char *src[2] = {"{\"items\":[{\"title\":\"Nova X 5G (8GB, Blue)\",\"price\":18999},"
                          "{\"title\":\"Zeta Pro\",\"price\":24999}]}",
                          "compare the two cheapest"};
    size_t lens[2] = {strlen(src[0]), strlen(src[1])};
    return verify_answer(answer, strlen(answer), src, lens, 2, want_table, r);
}

static void test_verify(void)
{
    struct verify_result r;
    /* names: a bold title the results have, in other case and punctuation */
    CHECK(verify("My pick: **nova x 5g 8gb blue** at ₹18,999.", false, &r) == VERIFY_OK);
    CHECK(r.names == 1 && r.unknown_names == 0 && r.g.mismatches == 0);
    /* a title with a changed number is no product the results have */
    CHECK(verify("My pick: **Nova X 6G (8GB, Blue)** at ₹18,999.", false, &r) == VERIFY_UNGROUNDED);
    CHECK(r.unknown_names == 1 && strcmp(r.first_name, "Nova X 6G (8GB, Blue)") == 0);
    /* a price 12 % low */
    CHECK(verify("**Zeta Pro** costs ₹21,999.", false, &r) == VERIFY_UNGROUNDED);
    CHECK(r.g.mismatches == 1 && r.unknown_names == 0);
    /* short bold words and unclosed bold are not names */
    CHECK(verify("**No**, it is **not** here. **Zeta", false, &r) == VERIFY_OK && r.names == 0);
    /* two words, not capitalised: emphasis */
    CHECK(verify("It is **really good** value", false, &r) == VERIFY_OK && r.names == 0);
    /* bold that does not close on its line is skipped, the next line still checked */
    CHECK(verify("**open\n**Nova Y** is nice", false, &r) == VERIFY_UNGROUNDED);
    /* a comparison that should be a table */
    const char *table = "Here is how they compare:\n\n| | Nova X | Zeta Pro |\n|---|---|---|\n"
                        "| Price | ₹18,999 | ₹24,999 |\n";
    CHECK(verify(table, true, &r) == VERIFY_OK && r.table);
    CHECK(verify("The Nova X costs ₹18,999 and the Zeta Pro ₹24,999.", true, &r) == VERIFY_FORMAT);
    CHECK(!r.table);
    CHECK(verify("The Nova X costs ₹18,999 and the Zeta Pro ₹24,999.", false, &r) == VERIFY_OK);
    /* a row without its delimiter line is no table; a delimiter needs a dash */
    CHECK(!answer_has_table("| a | b |\n| c | d |\n", 20));
    CHECK(!answer_has_table("| a |\n| |\n", 10));
    CHECK(answer_has_table("  | a | b |\n  |:--|--:|", 23));
    CHECK(verify("", false, &r) == VERIFY_OK);
    CHECK(verify("", true, &r) == VERIFY_FORMAT);
}

/* bold text that is a price, a spec or a label is no product name; titles as JSON tools escape
 * them still match */
static void test_verify_not_names(void)
{
    struct verify_result r;
    /* bold prices and specs are claims, checked as such (not as names) */
    CHECK(verify("**Zeta Pro** is priced at **₹24,999**.", false, &r) == VERIFY_OK);
    CHECK(r.unknown_names == 0 && r.g.claims == 1);
    CHECK(verify("**Zeta Pro**: **24,999.00** rupees", false, &r) == VERIFY_OK);
    CHECK(verify("**Nova X 5G (8GB, Blue)** has **8 GB** of RAM", false, &r) == VERIFY_OK);
    CHECK(verify("**Nova X 5G (8GB, Blue)** (₹18,999)", false, &r) == VERIFY_OK);
    /* a name with its price in the same bold span: the name is checked, the price as a claim */
    CHECK(verify("**Nova X 5G (8GB, Blue) - ₹18,999**", false, &r) == VERIFY_OK);
    CHECK(verify("**Nova X 6G (8GB, Blue) - ₹18,999**", false, &r) == VERIFY_UNGROUNDED);
    CHECK(r.unknown_names == 1);
    /* a wrong bold price is still caught, as a claim */
    CHECK(verify("**Zeta Pro** is priced at **₹21,999**.", false, &r) == VERIFY_UNGROUNDED);
    CHECK(r.g.mismatches == 1 && r.unknown_names == 0);
    /* labels: a colon ends them, or words after the first in lower case */
    CHECK(verify("**Key differences:**\n- **Zeta Pro** costs more", false, &r) == VERIFY_OK);
    CHECK(verify("**Key Differences:** the price", false, &r) == VERIFY_OK);
    CHECK(verify("**Best for gaming**: **Zeta Pro**", false, &r) == VERIFY_OK);
    CHECK(r.names == 1);
    /* a title case name no result has is still one, and so is a brand's own casing */
    CHECK(verify("**Zeta Max** is better", false, &r) == VERIFY_UNGROUNDED);
    CHECK(verify("**Apple iPhone Pro** is better", false, &r) == VERIFY_UNGROUNDED);
    /* a product word in lower case does not make a title prose: a later capital keeps it a name */
    CHECK(verify("**This product Pro** is in stock for ₹18,999.", false, &r) == VERIFY_UNGROUNDED);
    CHECK(r.unknown_names == 1);
    CHECK(verify("**Free delivery** on **Zeta Pro**", false, &r) == VERIFY_OK && r.names == 1);
    /* titles escaped by the tool's JSON encoder: \u00e9, \u0026, \" */
    const char *src[1] = {"[{\"title\":\"Caf\\u00e9 Racer Helmet\"},{\"title\":\"Tom \\u0026 "
                          "Jerry Set 2\"},{\"title\":\"Nova 12\\\" Tab\"},"
                          "{\"title\":\"\\ud83d\\ude00 Smile Mug 3\"}]"};
    size_t lens[1] = {strlen(src[0])};
    const char *ok[] = {"**Café Racer Helmet**", "**Tom & Jerry Set 2**", "**Nova 12\" Tab**",
                        "**😀 Smile Mug 3**"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        CHECK(verify_answer(ok[i], strlen(ok[i]), src, lens, 1, false, &r) == VERIFY_OK);
        CHECK(r.names == 1 && r.unknown_names == 0);
    }
    /* typography the model adds or drops: dashes, curly quotes, no-break spaces, (TM) */
    const char *src2[1] = {"[{\"title\":\"Galaxy A55 5G - Awesome Navy\"},{\"title\":\"Levi's "
                           "511 Slim\"},{\"title\":\"Aero\\u2122 Pen 2\"}]"};
    size_t lens2[1] = {strlen(src2[0])};
    const char *typo[] = {"**Galaxy A55 5G – Awesome Navy**",
                          "**Galaxy A55 5G — Awesome Navy**",
                          "**Levi’s 511 Slim**",
                          "**Galaxy\u00a0A55 5G - Awesome Navy**",
                          "**Galaxy\u202fA55 5G - Awesome Navy**",
                          "**Aero Pen 2**",
                          "**Aero™ Pen 2**"};
    for (size_t i = 0; i < sizeof(typo) / sizeof(typo[0]); i++) {
        CHECKF(verify_answer(typo[i], strlen(typo[i]), src2, lens2, 1, false, &r) == VERIFY_OK,
               "%s", typo[i]);
        CHECK(r.names == 1 && r.unknown_names == 0);
    }
    const char *bad = "**Cafe Racer Helmet 2**";
    CHECK(verify_answer(bad, strlen(bad), src, lens, 1, false, &r) == VERIFY_UNGROUNDED);
}

static void test_refusal_and_cascade(void)
{
    CHECK(answer_is_refusal("I'm sorry, but I can't help with that.", 38));
    CHECK(answer_is_refusal("  ", 2));
    CHECK(answer_is_refusal("As an AI, I", 11));
    CHECK(!answer_is_refusal("I can suggest three phones.", 27));

    struct cascade_policy p = {.min_confidence = 0.6f};
    struct step_outcome o = {.classifier_confidence = 1, .answer_done = true};
    CHECK(cascade_check(&p, &o) == ESC_EMPTY);
    o.opening = "Sorry, I can't do that";
    o.opening_len = strlen(o.opening);
    CHECK(cascade_check(&p, &o) == ESC_REFUSAL);
    o.shown = true;
    CHECK(cascade_check(&p, &o) == ESC_NONE); /* never once the user saw something */
    o = (struct step_outcome){.classifier_confidence = 1, .tool_calls = 2, .invalid_tool_calls = 1};
    CHECK(cascade_check(&p, &o) == ESC_INVALID_TOOL_CALL);
    o = (struct step_outcome){.classifier_confidence = 1, .tool_calls = 1, .failed_tool_calls = 1};
    CHECK(cascade_check(&p, &o) == ESC_NONE); /* by default the model is told */
    p.on_tool_failure = true;
    CHECK(cascade_check(&p, &o) == ESC_TOOL_FAILED);
    o = (struct step_outcome){.classifier_confidence = 0.4f, .opening = "Sure", .opening_len = 4};
    CHECK(cascade_check(&p, &o) == ESC_LOW_CONFIDENCE);
    p.min_confidence = 0;
    CHECK(cascade_check(&p, &o) == ESC_NONE);
    o.guard_hit = true;
    CHECK(cascade_check(&p, &o) == ESC_GUARDRAIL);
    o = (struct step_outcome){.classifier_confidence = 1, .call_failed = true};
    CHECK(cascade_check(&p, &o) == ESC_MODEL_ERROR);
    for (int e = 0; e < ESC__COUNT; e++)
        CHECK(strcmp(escalation_name((enum escalation)e), "?") != 0);
}

int main(void)
{
    test_narration();
    test_narration_streams();
    test_grounding();
    test_verify();
    test_verify_not_names();
    test_refusal_and_cascade();
    return tap_done();
}
