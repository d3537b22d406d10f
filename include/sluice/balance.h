/* balance: pure server-selection algorithms over arrays of weights.
 * Tables are built by the control thread (pool snapshots); picks run in the
 * workers and ask the caller, through callbacks, which servers are usable
 * now (health, room under maxconn, not already tried) and how loaded they are. */
#ifndef SLUICE_BALANCE_H
#define SLUICE_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BALANCE_NONE SIZE_MAX

/* Is server idx usable for this connection now? */
typedef bool (*balance_usable_fn)(void *arg, size_t idx);
/* Active connections of server idx. */
typedef uint32_t (*balance_load_fn)(void *arg, size_t idx);

/* Smooth weighted round-robin (nginx's): build the sequence of server
 * indices for one full cycle, weights divided by their gcd and scaled down
 * so the cycle stays under 16384 entries. Weight-0 servers never appear.
 * On success *seq (malloc'd, caller frees) and *len are set; an all-zero
 * weight set gives *seq NULL and *len 0. Returns 0 or -1 (no memory). */
int balance_swrr_build(const uint32_t *weights, size_t n, uint32_t **seq, size_t *len);

/* First usable entry of seq starting at position start (wrapping).
 * Returns the server index or BALANCE_NONE. */
size_t balance_pick_seq(const uint32_t *seq, size_t len, uint32_t start, balance_usable_fn usable,
			void *arg);

/* First usable server in declaration order. */
size_t balance_pick_first(size_t n, balance_usable_fn usable, void *arg);

/* Weighted least connections: lowest load/weight wins; ties are broken by
 * scanning from `start` so equal servers take turns. */
size_t balance_pick_leastconn(const uint32_t *weights, size_t n, uint32_t start,
			      balance_load_fn load, balance_usable_fn usable, void *arg);

/* Build cumulative weights (cum[i] = sum of weights[0..i]) for random picks.
 * Returns the total. */
uint64_t balance_cumulative(const uint32_t *weights, size_t n, uint64_t *cum);

/* Random with two choices: draw two servers by weight, keep the one with
 * the lower load/weight; falls back to a scan when neither is usable. */
size_t balance_pick_p2c(const uint64_t *cum, const uint32_t *weights, size_t n, uint64_t *rng,
			balance_load_fn load, balance_usable_fn usable, void *arg);

/* Maglev (Eisenbud et al., NSDI 2016, section 3.4) in two steps, so that a
 * table depends on the configuration and not on health:
 * - balance_maglev_build() fills the base table from every configured
 *   member, in a stable order, whatever its state;
 * - balance_maglev_refill() hands the slots of the members that cannot take
 *   new connections now to the ones that can.
 * A member that goes down then moves only its own clients. */

/* Fill table[0..m-1] with member indices using Maglev's permutations
 * (keys: stable per-member hashes, e.g. of the name, so a member keeps its
 * slots when others come and go); a member's share follows its weight.
 * Weight-0 members get no slot; with n > m the members after the m-th get
 * none either. The result depends on the order of the members: callers
 * pass them in a stable order (by name). m must be prime. Returns 0, or -1
 * when no member has weight or no memory (table filled with -1). */
int balance_maglev_build(const uint64_t *keys, const uint32_t *weights, size_t n, uint32_t m,
			 int32_t *table);

/* Refill a base table for the members present now. Member i keeps the
 * fraction cur[i] / full[i] of its base slots (all of them when cur[i] >=
 * full[i], none when cur[i] is 0: down, drained; in between during slow
 * start), chosen by a hash of the slot and keys[i] so that a growing
 * fraction only adds slots. Every other slot goes to the owner of the next
 * kept slot after it in a fixed pseudo-random order of the slots (wrapping):
 * a function of that slot and the members present only, so a member leaving
 * moves its own clients and nobody else's, and the others take them in
 * proportion to their shares. Writes out[0..m-1] (may not be base).
 * Returns 0, or -1 when no member keeps a slot (out filled with -1). */
int balance_maglev_refill(const int32_t *base, uint32_t m, const uint64_t *keys,
			  const uint32_t *cur, const uint32_t *full, int32_t *out);

/* Server for hash h: table[h % m], or when that one is unusable now (full,
 * already tried) the next usable entry of the table, so the fallback is
 * stable too; after MAGLEV_PROBES entries without one, the first usable of
 * the n servers from h % n. Returns the server index or BALANCE_NONE. */
size_t balance_pick_maglev(const int32_t *table, uint32_t m, size_t n, uint64_t h,
			   balance_usable_fn usable, void *arg);

#endif
