/* relay.h - the model relay: a turn's answer streamed from a model provider (stream/) to the
 * session, with retries before the first delta, a fallback chain of routes, deadlines for
 * connect / first token / stalls, and exact cost from provider-reported usage. */
#ifndef TRILEMMA_ORCHESTRATOR_RELAY_H
#define TRILEMMA_ORCHESTRATOR_RELAY_H

#include <stddef.h>

#include "app/config.h"
#include "session/session.h"

#define RELAY_MAX_ROUTES 8

/* Parse the routes ([model] model + fallbacks), check that each provider has a key, and load
 * the price table. Call once before the server starts. Returns 0, or -1 with a message. When
 * the model is "echo", the echo responder is used and nothing else is needed. */
int relay_setup(const struct config *conf, char *err, size_t errlen);
void relay_teardown(void);

/* The responder to install with session_set_responder (echo when the model is "echo"). */
const struct responder *relay_responder(void);

/* A one-line description of the routes for the start-up log (no keys). */
void relay_describe(char *out, size_t cap);

#endif
