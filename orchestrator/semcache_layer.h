/* semcache_layer.h - the semantic cache (semcache.h) as an answer-cache layer (answer_cache.h).
 * Register it with conf = the process's struct semcache (app/orch_setup.c), after the exact
 * layer. See docs/caching.md "Semantic cache". */
#ifndef TRILEMMA_ORCHESTRATOR_SEMCACHE_LAYER_H
#define TRILEMMA_ORCHESTRATOR_SEMCACHE_LAYER_H

#include "orchestrator/answer_cache.h"

extern const struct ac_layer_ops semcache_layer_ops;

#endif
