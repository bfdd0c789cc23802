/* sim_embed.h - deterministic text embeddings for POST /v1/embeddings (docs/sim.md "Embeddings").
 *
 * A hashed bag of features of the normalized words: each kept word (weight 1), each pair of
 * neighbouring kept words (0.5) and the character trigrams of each word (0.25 in all per word),
 * hashed with a sign into SIM_EMBED_DIM dimensions and L2-normalized. Normalization lower-cases,
 * drops filler words, maps a small synonym table (mobile/smartphone -> phone, affordable/budget ->
 * cheap, below/within -> under, ...), strips plurals and writes numbers plainly (20k, 20,000 ->
 * 20000). So rewordings of one request land close, while a different number, product name, brand
 * or a negation ("without", "not") changes a word of the few a shopping query has and lands
 * measurably apart — but not always below a threshold: that is what a cache's guard is for. */
#ifndef TRILEMMA_SIM_EMBED_H
#define TRILEMMA_SIM_EMBED_H

#include <stddef.h>

enum { SIM_EMBED_DIM = 256 };

/* The embedding of text[0..len) into out[0..dim) (dim 1..SIM_EMBED_DIM, as OpenAI's `dimensions`;
 * the features are hashed into dim buckets, so a short vector is as meaningful as it can be). A
 * text with no word gets a fixed unit vector. Returns the number of words read (the "tokens" of
 * usage). */
size_t sim_embed(const char *text, size_t len, float *out, size_t dim);

#endif
