/* sim_table.h - a bounded, direct-mapped table of 64-bit keys with a 32-bit value each.
 *
 * Used per worker for the prompt-prefix cache (which message prefixes were seen before) and for
 * the attempt counts of [[sim:fail_first=N]]. A new key simply overwrites whatever shared its
 * slot: memory stays fixed and an old entry may be forgotten, which for a cache is the point and
 * for attempt counts only matters when thousands of distinct conversations use fail_first at
 * once. Not thread-safe: one table per worker. */
#ifndef TRILEMMA_SIM_TABLE_H
#define TRILEMMA_SIM_TABLE_H

#include <stdbool.h>
#include <stdint.h>

struct sim_table;

/* A table of 2^bits slots. Never returns NULL (allocation failure is fatal, base/mem.h). */
struct sim_table *sim_table_create(unsigned bits);
void sim_table_destroy(struct sim_table *t);

/* True if key is present; its value goes to *val (when val is not NULL). */
bool sim_table_get(const struct sim_table *t, uint64_t key, uint32_t *val);
/* Insert or overwrite key with val (evicting whatever held the slot). */
void sim_table_put(struct sim_table *t, uint64_t key, uint32_t val);

#endif
