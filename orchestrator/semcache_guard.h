/* semcache_guard.h - the semantic cache's false-hit guard: two queries whose embeddings are close
 * may still ask for different things. The guard compares the content words that matter and
 * refuses a hit when they differ, whatever the similarity:
 *
 *   numbers      every number, written any way ("20000", "20,000", "₹20000", "20k", "1.5 lakh";
 *                a unit glued on is dropped: "128GB" is 128), as a set
 *   negation     how many negations each has ("not", "no", "never", "without", "n't", "except")
 *   comparators  "under/below/within/up to/less than/max/budget" vs "over/above/more than/at
 *                least/min" (the direction of a budget)
 *   names        product names and brands as the text shows them: a word with a capital letter
 *                (not a sentence's first word unless it is not a common starter such as "Show" or
 *                "What"), an all-capital word, a word mixing letters and digits ("S23",
 *                "WH-1000XM5"); each must appear in the other query (any case)
 *
 * Pure functions over bytes (ASCII rules; other bytes are word characters), English only. It reads
 * no catalog: a brand typed in lower case at the start of both queries is not seen as a name. */
#ifndef TRILEMMA_ORCHESTRATOR_SEMCACHE_GUARD_H
#define TRILEMMA_ORCHESTRATOR_SEMCACHE_GUARD_H

#include <stddef.h>

enum semguard_verdict {
    SG_SAME = 0,   /* nothing that matters differs: the hit may be served */
    SG_NUMBER,     /* the numbers differ */
    SG_NEGATION,   /* one is negated where the other is not */
    SG_COMPARATOR, /* under vs over */
    SG_NAME,       /* a product name or brand of one is not in the other */
};

/* Compare query a[0..alen) (the cached one) with b[0..blen) (the new one). */
enum semguard_verdict semguard_check(const char *a, size_t alen, const char *b, size_t blen);

/* "same", "number", "negation", "comparator", "name". */
const char *semguard_name(enum semguard_verdict v);

#endif
