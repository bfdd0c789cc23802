/* orch_setup.h - the orchestrator's process-wide state, built once at start-up from the
 * application's configuration and read-only afterwards: the routes (model, then fallbacks), the
 * retry and deadline policy, the price table, and the session responder that uses them (a turn
 * plan, or the built-in echo when the model is "echo"). Workers get it by pointer through the
 * responder; nothing here is a global. */
#ifndef TRILEMMA_APP_ORCH_SETUP_H
#define TRILEMMA_APP_ORCH_SETUP_H

#include <stddef.h>

#include "app/config.h"
#include "session/session.h"

struct orchestrator;

/* Parse the routes ([model] model + fallbacks), check that each provider has a key, and load the
 * price table. conf must outlive the orchestrator (keys and the system prompt are not copied).
 * Returns NULL with a message in err. */
struct orchestrator *orchestrator_create(const struct config *conf, char *err, size_t errlen);
void orchestrator_destroy(struct orchestrator *o);

/* The responder to install with session_set_responder; valid while o lives. */
const struct responder *orchestrator_responder(const struct orchestrator *o);

/* The provisioned capacity's tracker (orchestrator/capacity.h), or NULL without [capacity NAME]
 * sections: its share follows the pod count (capacity_set_pods). Valid while o lives. */
struct capacity *orchestrator_capacity(const struct orchestrator *o);

/* A one-line description of the routes for the start-up log (no keys). */
void orchestrator_describe(const struct orchestrator *o, char *out, size_t cap);

#endif
