/* pending.h - conversations whose client left while their turn was still being stored, shared
 * by the workers of the process. A resume that arrives (on any worker) before that turn is
 * durable waits for it instead of reading a conversation that does not show it yet.
 * Touched only when a client leaves mid-turn and on resume: never on the token path. */
#ifndef TRILEMMA_SESSION_PENDING_H
#define TRILEMMA_SESSION_PENDING_H

#include <stdbool.h>

void pending_add(const char *conversation_id);
void pending_del(const char *conversation_id);
bool pending_has(const char *conversation_id);

#endif
