/* normalize.h - the normalized form of a query, the exact response cache's key text.
 *
 * Two messages that mean the same thing to a shop assistant in the same words should meet in one
 * key: "What's your RETURN policy??" and "whats your return  policy" do; "returns policy for
 * phones" and "return policy" do not. The steps, in order:
 *
 *   1. Unicode NFKC with full case folding (utf8proc): full-width letters and digits, ligatures,
 *      compatibility forms and case all fold ("Ｒｅｔｕｒｎ", "RETURN" -> "return").
 *   2. Apostrophes are removed ("what's" -> "whats"); a ',' or '.' between two digits is kept
 *      as a number ("1,000" -> "1000", "2.5" stays); every other punctuation mark, space and
 *      control character separates words; a symbol (₹, +, and % # & @) is a word of its own.
 *   3. Phrases of the words file are replaced, longest first, at most 4 words long: synonyms map
 *      to their canonical words ("pls" -> "please", "whats" -> "what is"), fillers map to nothing
 *      ("please", "can you", "kindly").
 *   4. Words are joined by single spaces.
 *
 * Pure functions over plain data; the words come from a JSON file ([cache] words_file):
 *   {"fillers": ["please", "can you"], "synonyms": {"whats": "what is", "refunds": "refund"}} */
#ifndef TRILEMMA_ORCHESTRATOR_NORMALIZE_H
#define TRILEMMA_ORCHESTRATOR_NORMALIZE_H

#include <stddef.h>

#include "base/buf.h"

#define NORM_PHRASE_WORDS 4 /* words in a filler or a synonym's left side, at most */

struct norm_words;

/* An empty word list (no fillers, no synonyms). Never NULL. */
struct norm_words *norm_words_create(void);
/* Load path (the JSON above). Returns NULL with a message naming the file and the entry. */
struct norm_words *norm_words_load(const char *path, char *err, size_t errlen);
/* Add a filler phrase, or a synonym (from -> to; to "" = a filler). The phrases are normalized
 * by steps 1-2 themselves, so "Can You" and "can you" are one. Returns 0, or -EINVAL for an
 * empty phrase, one longer than NORM_PHRASE_WORDS words, or invalid UTF-8. */
int norm_words_add(struct norm_words *w, const char *from, const char *to);
size_t norm_words_count(const struct norm_words *w);
void norm_words_free(struct norm_words *w);

/* Append the normalized form of s[0..n) to out (w may be NULL: steps 1, 2 and 4 only). Returns
 * 0, or -EINVAL when s is not valid UTF-8 (out unchanged). */
int query_normalize(const struct norm_words *w, const char *s, size_t n, struct buf *out);

#endif
