/* test_normalize.c - the exact cache's key text (normalize.h), the bytes-bounded LRU
 * (cache_lru.h), the words file, and the answer-cache helpers that need no loop: the context
 * hash and the chunking of a cached answer into deltas. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orchestrator/answer_cache.h"
#include "orchestrator/cache_lru.h"
#include "orchestrator/exact_cache.h"
#include "orchestrator/normalize.h"
#include "orchestrator/tool_cache.h"
#include "tests/tap.h"

static void expect(const struct norm_words *w, const char *in, const char *want)
{
    struct buf b = {0};
    int rc = query_normalize(w, in, strlen(in), &b);
    buf_append(&b, "", 1);
    CHECKF(rc == 0 && strcmp(buf_begin(&b), want) == 0, "'%s' -> '%s', want '%s'", in,
           buf_begin(&b), want);
    buf_free(&b);
}

static void test_plain(void)
{
    expect(NULL, "What is your RETURN policy??", "what is your return policy");
    expect(NULL, "  what   is\tyour\nreturn policy ", "what is your return policy");
    /* NFKC: full-width letters and digits, the fi ligature, a non-breaking space */
    expect(NULL,
           "\xef\xbc\xb2\xef\xbd\x85\xef\xbd\x94\xef\xbd\x95\xef\xbd\x92\xef\xbd\x8e "
           "\xef\xbc\x93\xef\xbc\x90 days",
           "return 30 days");
    expect(NULL, "\xef\xac\x81nd\xc2\xa0it", "find it");
    /* case folding beyond ASCII: German sharp s folds to ss, Greek final sigma to sigma */
    expect(NULL,
           "STRASSE stra\xc3\x9f"
           "e",
           "strasse strasse");
    expect(NULL, "\xce\xa3\xce\x9f\xce\xa6\xce\x9f\xce\xa3",
           "\xcf\x83\xce\xbf\xcf\x86\xce\xbf\xcf\x83");
    /* apostrophes vanish (straight and curly); numbers keep their meaning */
    expect(NULL, "what's it's", "whats its");
    expect(NULL, "what\xe2\x80\x99s", "whats");
    expect(NULL, "under 1,000 or 2.5 kg.", "under 1000 or 2.5 kg");
    expect(NULL, "end. Next", "end next");
    /* punctuation separates; a symbol is a word of its own */
    expect(NULL, "e-mail/phone", "e mail phone");
    expect(NULL,
           "\xe2\x82\xb9"
           "500 off",
           "\xe2\x82\xb9 500 off");
    expect(NULL, "50%", "50 %");
    /* zero-width characters are ignored, not separators */
    expect(NULL, "re\xe2\x80\x8bturn", "return");
    expect(NULL, "", "");
    expect(NULL, "?!...", "");
    /* invalid UTF-8 is refused, nothing appended */
    struct buf b = {0};
    CHECK(query_normalize(NULL, "ab\xff", 3, &b) == -EINVAL && buf_size(&b) == 0);
    CHECK(query_normalize(NULL, "\xc3", 1, &b) == -EINVAL);
    buf_free(&b);
}

static void test_words(void)
{
    struct norm_words *w = norm_words_create();
    CHECK(norm_words_add(w, "please", "") == 0);
    CHECK(norm_words_add(w, "Can You", NULL) == 0);
    CHECK(norm_words_add(w, "whats", "what is") == 0);
    CHECK(norm_words_add(w, "returns", "return") == 0);
    CHECK(norm_words_add(w, "tell me", "") == 0);
    CHECK(norm_words_add(w, "", "x") == -EINVAL);
    CHECK(norm_words_add(w, "a b c d e", "x") == -EINVAL);
    CHECK(norm_words_add(w, "\xff", "x") == -EINVAL);
    CHECK(norm_words_count(w) == 5);
    expect(w, "Please, can you tell me: what's your RETURNS policy?", "what is your return policy");
    expect(w, "whats your return policy", "what is your return policy");
    /* a phrase matches whole words only, longest first */
    expect(w, "can youth return", "can youth return");
    expect(w, "pleased", "pleased");
    /* a synonym's output is not rewritten again */
    CHECK(norm_words_add(w, "what is", "wh") == 0);
    expect(w, "whats", "what is");
    norm_words_free(w);
}

static void test_words_file(void)
{
    char path[] = "/tmp/test_normalize_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char good[] = "{\"fillers\": [\"please\", \"can you\"], \"synonyms\": {\"refunds\": "
                        "\"refund\"}}";
    CHECK(write(fd, good, sizeof(good) - 1) == (ssize_t)sizeof(good) - 1);
    close(fd);
    char err[300] = "";
    struct norm_words *w = norm_words_load(path, err, sizeof(err));
    CHECKF(w && norm_words_count(w) == 3, "%s", err);
    expect(w, "Can you please explain REFUNDS", "explain refund");
    norm_words_free(w);
    const char *bad[] = {"[1]",
                         "{\"fillers\": \"please\"}",
                         "{\"fillers\": [1]}",
                         "{\"synonyms\": {\"a\": 1}}",
                         "{\"synonyms\": [\"a\"]}",
                         "{\"fillers\": [\"one two three four five\"]}",
                         "{"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        FILE *f = fopen(path, "w");
        fputs(bad[i], f);
        fclose(f);
        err[0] = '\0';
        w = norm_words_load(path, err, sizeof(err));
        CHECKF(!w && strstr(err, path), "%s: %s", bad[i], err);
    }
    unlink(path);
    CHECK(!norm_words_load("/nonexistent/words.json", err, sizeof(err)) && strstr(err, "No such"));
#ifdef CONFIG_DIR
    w = norm_words_load(CONFIG_DIR "/cache_words.json", err, sizeof(err));
    CHECKF(w != NULL, "%s", err);
    expect(w, "Hi, what's ur RETURN policy pls?", "what is your return policy");
    norm_words_free(w);
#endif
}

static void test_lru(void)
{
    uint8_t k[4][LRU_KEY];
    for (int i = 0; i < 4; i++) {
        memset(k[i], 0, LRU_KEY);
        k[i][0] = (uint8_t)i;
        k[i][31] = 0xAA;
    }
    int64_t before = cache_bytes_get(CACHE_TOOL);
    struct lru *c = lru_create(3 * (sizeof(void *) * 4 + LRU_KEY + 32 + 100), CACHE_TOOL);
    char v[100];
    memset(v, 'x', sizeof(v));
    struct lru_entry e;
    lru_put(c, k[0], v, 100, 10, 7);
    lru_put(c, k[1], v, 100, 20, 8);
    CHECK(lru_get(c, k[0], &e) && e.len == 100 && e.expires_ms == 10 && e.cost_micros == 7);
    CHECK(cache_bytes_get(CACHE_TOOL) - before == (int64_t)lru_bytes(c));
    /* a third and fourth: the least recently used (k[1]; k[0] was just read) leaves */
    lru_put(c, k[2], v, 100, 30, 0);
    lru_put(c, k[3], v, 100, 40, 0);
    CHECK(lru_count(c) <= 3);
    CHECK(!lru_get(c, k[1], &e));
    CHECK(lru_get(c, k[0], &e) && lru_get(c, k[3], &e));
    /* replacing keeps one entry */
    size_t n = lru_count(c);
    lru_put(c, k[3], "abc", 3, 50, 0);
    CHECK(lru_count(c) == n && lru_get(c, k[3], &e) && e.len == 3 && memcmp(e.val, "abc", 3) == 0);
    /* larger than the whole bound: not kept */
    char *big = calloc(1, 10000);
    lru_put(c, k[2], big, 10000, 1, 0);
    CHECK(!lru_get(c, k[2], &e));
    free(big);
    lru_del(c, k[0]);
    CHECK(!lru_get(c, k[0], &e));
    lru_destroy(c);
    CHECK(cache_bytes_get(CACHE_TOOL) == before);
    /* many keys: the table grows and every key is found */
    c = lru_create(1 << 20, CACHE_TOOL);
    uint8_t kk[LRU_KEY] = {0};
    for (int i = 0; i < 1000; i++) {
        memcpy(kk, &i, sizeof(i));
        lru_put(c, kk, "v", 1, i, 0);
    }
    int found = 0;
    for (int i = 0; i < 1000; i++) {
        memcpy(kk, &i, sizeof(i));
        found += lru_get(c, kk, &e) && e.expires_ms == i;
    }
    CHECK(found == 1000);
    lru_destroy(c);
}

static void test_keys(void)
{
    struct norm_words *w = norm_words_create();
    norm_words_add(w, "whats", "what is");
    struct ac_query q = {.text = "What's your return policy?",
                         .len = 26,
                         .agent = "specialist",
                         .prompt_version = "0123456789ab",
                         .model = "openai/sim-cheap"};
    snprintf(q.context_hash, sizeof(q.context_hash), "%064d", 0);
    char k1[65], k2[65];
    CHECK(exact_cache_key(w, &q, k1) == 0 && strlen(k1) == 64);
    struct ac_query p = q;
    p.text = "what is your   RETURN policy";
    p.len = strlen(p.text);
    CHECK(exact_cache_key(w, &p, k2) == 0 && strcmp(k1, k2) == 0);
    /* every other part of the key changes it */
    const char **fields[] = {&p.agent, &p.prompt_version, &p.model};
    for (int i = 0; i < 3; i++) {
        struct ac_query r = p;
        *(const char **)((char *)&r + ((char *)fields[i] - (char *)&p)) = "other";
        CHECK(exact_cache_key(w, &r, k2) == 0 && strcmp(k1, k2) != 0);
    }
    p.context_hash[0] = '1';
    CHECK(exact_cache_key(w, &p, k2) == 0 && strcmp(k1, k2) != 0);
    p = q;
    p.text = "what is your exchange policy";
    p.len = strlen(p.text);
    CHECK(exact_cache_key(w, &p, k2) == 0 && strcmp(k1, k2) != 0);
    p.text = "\xff";
    p.len = 1;
    CHECK(exact_cache_key(w, &p, k2) == -EINVAL);
    norm_words_free(w);
}

static void test_context_hash(void)
{
    struct llm_message m[4] = {
        {"system", "S", 1}, {"user", "hello", 5}, {"assistant", "a", 1}, {"user", "q", 1}};
    struct llm_tool t[1] = {{"get_policy", "d", "{}"}};
    char h1[65], h2[65];
    bool single;
    ac_context_hash(m, 2, 0, 1, NULL, 0, h1, &single);
    CHECK(single && strlen(h1) == 64);
    ac_context_hash(m, 2, 0, 1, t, 1, h2, &single);
    CHECK(single && strcmp(h1, h2) != 0); /* the tools are part of the context */
    /* the system prompt and the message itself are not (the key has them otherwise) */
    struct llm_message m2[2] = {{"system", "other prompt", 12}, {"user", "bye", 3}};
    ac_context_hash(m2, 2, 0, 1, NULL, 0, h2, &single);
    CHECK(strcmp(h1, h2) == 0);
    /* any other message: not single-shot, and it changes the hash */
    ac_context_hash(m, 4, 0, 3, NULL, 0, h2, &single);
    CHECK(!single && strcmp(h1, h2) != 0);
    char h3[65];
    m[2].content = "b";
    ac_context_hash(m, 4, 0, 3, NULL, 0, h3, &single);
    CHECK(strcmp(h2, h3) != 0);
}

static void test_chunks(void)
{
    const char *s = "Returns are accepted within 30 days of delivery for most products; "
                    "electronics within 7 days. \xe2\x82\xb9\xe2\x82\xb9\xe2\x82\xb9\xe2\x82\xb9"
                    "\xe2\x82\xb9\xe2\x82\xb9\xe2\x82\xb9\xe2\x82\xb9\xe2\x82\xb9\xe2\x82\xb9"
                    "\xe2\x82\xb9\xe2\x82\xb9\xe2\x82\xb9\xe2\x82\xb9\xe2\x82\xb9\xe2\x82\xb9"
                    "\xe2\x82\xb9\xe2\x82\xb9\xe2\x82\xb9\xe2\x82\xb9\xe2\x82\xb9\xe2\x82\xb9"
                    "\xe2\x82\xb9\xe2\x82\xb9 end";
    size_t n = strlen(s), pieces = 0;
    char back[512] = "";
    for (size_t off = 0, end; off < n; off = end) {
        end = ac_chunk_end(s, n, off);
        CHECK(end > off && end - off <= 64);
        /* never starts inside a UTF-8 sequence */
        CHECK(end == n || ((unsigned char)s[end] & 0xC0) != 0x80);
        strncat(back, s + off, end - off);
        pieces++;
    }
    CHECK(strcmp(back, s) == 0);
    CHECK(pieces >= 5); /* like a model's stream, not one giant delta */
    CHECK(ac_chunk_end("short", 5, 0) == 5);
}

static void canon_is(json_doc *d, const char *in, const char *want)
{
    struct buf b = {0};
    int rc = tool_canonical_args(d, in, in ? strlen(in) : 0, &b);
    buf_append(&b, "", 1);
    CHECKF(rc == 0 && strcmp(buf_begin(&b), want) == 0, "'%s' -> '%s', want '%s'", in,
           buf_begin(&b), want);
    buf_free(&b);
}

static void test_canonical_args(void)
{
    json_doc *d = json_doc_create();
    canon_is(d, "{\"b\":1,\"a\":2}", "{\"a\":2,\"b\":1}");
    canon_is(d, " { \"q\" : \"  red   phone \" , \"limit\":10.0 }",
             "{\"limit\":10,\"q\":\"red phone\"}");
    canon_is(d, "{\"max_price\":1e3,\"x\":null}", "{\"max_price\":1000}");
    canon_is(d, "{\"p\":2.5,\"n\":-0.125}", "{\"n\":-0.125,\"p\":2.5}");
    canon_is(d, "{\"o\":{\"z\":[3,{\"b\":true,\"a\":false}],\"a\":\"x\"}}",
             "{\"o\":{\"a\":\"x\",\"z\":[3,{\"a\":false,\"b\":true}]}}");
    canon_is(d, "{\"a/b\":1,\"c~d\":2}", "{\"a/b\":1,\"c~d\":2}");
    canon_is(d, "", "{}");
    canon_is(d, NULL, "{}");
    canon_is(d, "{\"q\":\"\\u00e9t\\u00e9\"}", "{\"q\":\"\xc3\xa9t\xc3\xa9\"}");
    struct buf b = {0};
    CHECK(tool_canonical_args(d, "{\"a\":", 5, &b) == -EINVAL && buf_size(&b) == 0);
    char deep[200] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "[");
    for (int i = 0; i < 40; i++)
        strcat(deep, "]");
    CHECK(tool_canonical_args(d, deep, strlen(deep), &b) == -EINVAL && buf_size(&b) == 0);
    buf_free(&b);
    json_doc_destroy(d);
}

int main(void)
{
    test_canonical_args();
    test_plain();
    test_words();
    test_words_file();
    test_lru();
    test_keys();
    test_context_hash();
    test_chunks();
    return tap_done();
}
