/* guard internals shared by guard_lpm.c (longest-prefix tables),
 * guard_table.c (the per-source limit table) and guard.c (a listener's
 * guard: snapshots, admission). Only src/guard includes it. */
#ifndef SLUICE_GUARD_INT_H
#define SLUICE_GUARD_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sluice/guard-t.h"
#include "sluice/qsbr.h"

/* Eight bytes in network order as a number (addresses into keys). */
static inline uint64_t guard_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* ---- the per-source limit table (guard_table.c) ----
 *
 * A fixed pool of `capacity` entries and a power-of-two array of bucket
 * heads; chains link entries by index. Finding a source and counting its
 * connections is lock-free: an entry's state word (generation, live bit,
 * open connections) changes only by compare-and-swap, so a connection is
 * counted on exactly the entry that was live for its source. Entering a
 * new source and evicting an idle one take the lock of their bucket's
 * stripe. Memory never moves or goes back to the allocator while the
 * table lives, so a reader that raced an eviction reads a stale entry,
 * never freed memory, and the generation tells it so. */

/* Admission settings of a table, published with it. */
struct guard_limits {
	uint32_t conns;	      /* 0: no limit */
	uint64_t interval_us; /* one token every interval; 0: no rate limit */
	uint64_t tau_us;      /* burst tolerance: (burst - 1) * interval */
};

/* Create a table for capacity sources grouped by prefix lengths group4 and
 * group6. NULL on no memory. */
struct guard_table *guard_table_new(uint32_t capacity, uint8_t group4, uint8_t group6);
void guard_table_free(struct guard_table *t);
/* Shape of a table: a new configuration with another shape needs a new one. */
bool guard_table_same_shape(const struct guard_table *t, uint32_t capacity, uint8_t group4,
			    uint8_t group6);
/* Admit a client from a against lim (tables older than t add the
 * connections they still count). */
enum guard_verdict guard_table_admit(struct guard_table *t, const struct guard_limits *lim,
				     const struct util_addr *a, uint64_t now_us,
				     struct guard_ticket *tk);
void guard_table_release(struct guard_table *t, uint32_t idx, uint64_t now_us);
/* The superseded tables a table still consults; control thread links. */
struct guard_table *guard_table_older(const struct guard_table *t);
void guard_table_set_older(struct guard_table *t, struct guard_table *older);
/* No connection is counted on t any more. */
bool guard_table_drained(const struct guard_table *t);
uint64_t guard_table_used(const struct guard_table *t);
uint32_t guard_table_capacity(const struct guard_table *t);
uint64_t guard_table_memory(const struct guard_table *t);
uint64_t guard_table_evictions(const struct guard_table *t);
size_t guard_table_top(const struct guard_table *t, uint64_t now_us, struct guard_source *out,
		       size_t max);

#endif
