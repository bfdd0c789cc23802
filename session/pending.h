/* pending.h - conversations with a turn running or being stored in this process, shared by its
 * workers. A resume that arrives (on any worker; often before the old connection's end has even
 * been noticed) waits for that turn to be durable instead of reading a conversation that does
 * not show it yet. Touched once at a turn's start and once at its commit, and on resume: never
 * on the token path. */
#ifndef TRILEMMA_SESSION_PENDING_H
#define TRILEMMA_SESSION_PENDING_H

#include <stdbool.h>

void pending_add(const char *conversation_id);
void pending_del(const char *conversation_id);
bool pending_has(const char *conversation_id);

#endif
