/* load_corpus.h - the query corpus: one query per line as CATEGORY<TAB>TEXT, '#' comments and
 * blank lines ignored (loadtest/corpus/shopping_queries.txt), and the weighted mix that draws
 * from it. Loaded once, read-only afterwards, shared by every worker thread. */
#ifndef TRILEMMA_LOAD_CORPUS_H
#define TRILEMMA_LOAD_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "loadtest/load/load_scenario.h"

#define CORPUS_MAX_QUERY 4000 /* bytes of one query */

struct corpus_query {
    const char *text; /* NUL-terminated, inside corpus.data */
    uint32_t len;
    uint16_t cat;
};

struct corpus {
    char *data;             /* the file's bytes, lines cut in place */
    struct corpus_query *q; /* sorted by category, file order within one */
    size_t n;
    char cat[SCN_MAX_CATS][24];
    size_t cat_first[SCN_MAX_CATS], cat_count[SCN_MAX_CATS];
    int ncats;
    double cum[SCN_MAX_CATS]; /* cumulative mix weights per category, cum[ncats-1] == 1 */
};

/* Read and check a corpus file (valid UTF-8, no control characters, category names of
 * [a-z0-9_-], 1..23 bytes, at most SCN_MAX_CATS of them). The mix starts as "every query
 * equally likely". Returns 0, or -1 with "FILE:LINE: message" in err. */
int corpus_load(struct corpus *c, const char *path, char *err, size_t errlen);

/* Weight the categories as mix says (every category it names must exist; categories it does
 * not name are never drawn). An empty mix keeps every query equally likely. 0 or -1 with err. */
int corpus_set_mix(struct corpus *c, const struct scn_mix *mix, char *err, size_t errlen);

/* Draw a query with two uniform numbers in [0, 1). */
const struct corpus_query *corpus_pick(const struct corpus *c, double u1, double u2);

void corpus_free(struct corpus *c);

#endif
