/* sim_embed_api.h - POST /v1/embeddings (also /embeddings): OpenAI's embeddings API answered with
 * the deterministic vectors of sim_embed.h. See docs/sim.md "Embeddings". */
#ifndef TRILEMMA_SIM_EMBED_API_H
#define TRILEMMA_SIM_EMBED_API_H

#include <stdbool.h>
#include <stddef.h>

#include "net/server.h"
#include "stream/json.h"

/* Answer req when its path is the embeddings API (returns true: 200 with the vectors, 400 with
 * OpenAI's error shape for bad input, 405 for another method), else return false. d is the
 * worker's scratch document (reloaded here). */
bool sim_embed_request(struct conn *c, const struct http_request *req, json_doc *d,
                       const char *body, size_t len);

#endif
