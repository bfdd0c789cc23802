/* load_target.h - the target URL: parsing, resolution and the loopback rule. */
#ifndef TRILEMMA_LOAD_TARGET_H
#define TRILEMMA_LOAD_TARGET_H

#include <stdbool.h>
#include <stddef.h>

#include "loadtest/load/load.h"

/* Parse SCHEME://HOST[:PORT][/PATH] (HOST may be [IPv6]); the port defaults to 80, the path to
 * "/". With a token, "?token=..." (or "&token=...") is appended to the path. 0, or -1 with a
 * message in err. */
int target_parse(struct target *t, const char *url, const char *scheme, const char *token,
                 char *err, size_t errlen);

/* Resolve t->host once into t->addr. A target that is not loopback is refused unless it came
 * from the command line (from_cli). 0, or -1 with a message in err. */
int target_resolve(struct target *t, bool from_cli, char *err, size_t errlen);

#endif
