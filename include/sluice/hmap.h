/* hmap (util): a hash index from a name to a value the caller chooses (a
 * position in the caller's array, or a pointer). The index holds hashes and
 * values only; the names stay where the caller keeps them and are read back
 * through a callback, so an array that moves (realloc) does not invalidate
 * an index of positions. Open addressing with linear probing, at most half
 * full, removal by backward shift (no tombstones). Not thread-safe: one
 * owner. A zeroed struct is an empty index. */
#ifndef SLUICE_HMAP_H
#define SLUICE_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The name of the entry whose value is val (arg: the caller's context). */
typedef const char *(*util_hmap_key_fn)(const void *arg, uintptr_t val);

struct util_hmap_slot {
	uint64_t hash; /* 0: empty */
	uintptr_t val;
};

struct util_hmap {
	struct util_hmap_slot *slots;
	size_t cap; /* a power of two, or 0 */
	size_t n;
};

/* Add key -> val. The caller checks for duplicates first (util_hmap_get)
 * when it wants none. Returns 0, or -1 on no memory (m unchanged). */
int util_hmap_add(struct util_hmap *m, const char *key, uintptr_t val);

/* Find key: true with *val set, or false. keyof(arg, v) names each
 * candidate whose hash matches. */
bool util_hmap_get(const struct util_hmap *m, const char *key, util_hmap_key_fn keyof,
		   const void *arg, uintptr_t *val);

/* Remove the entry key -> val (that value exactly). Returns true when it
 * was there. */
bool util_hmap_del(struct util_hmap *m, const char *key, uintptr_t val);

/* Make room for n entries at least, so that adding them cannot fail.
 * Returns 0 or -1 on no memory. */
int util_hmap_reserve(struct util_hmap *m, size_t n);

/* Free the index and leave it empty. */
void util_hmap_free(struct util_hmap *m);

#endif
