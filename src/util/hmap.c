/* hmap: the hash index of hmap.h. Every name lookup that used to scan an
 * array (duplicate names while parsing, matching servers and pools on
 * reload) goes through one of these, which keeps loading a configuration
 * linear in its size. */
#include <stdlib.h>
#include <string.h>

#include "sluice/hmap.h"
#include "sluice/util.h"

#define HMAP_MIN_CAP 16

static uint64_t key_hash(const char *key)
{
	/* the top bit marks a used slot, so no hash is 0 */
	return util_hash64(key, strlen(key), 0) | (1ull << 63);
}

static void put(struct util_hmap_slot *slots, size_t cap, uint64_t hash, uintptr_t val)
{
	size_t i = (size_t)hash & (cap - 1);

	while (slots[i].hash != 0)
		i = (i + 1) & (cap - 1);
	slots[i].hash = hash;
	slots[i].val = val;
}

static int grow(struct util_hmap *m, size_t cap)
{
	struct util_hmap_slot *slots;

	if (cap <= m->cap)
		return 0;
	slots = calloc(cap, sizeof(*slots));
	if (slots == NULL)
		return -1;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].hash != 0)
			put(slots, cap, m->slots[i].hash, m->slots[i].val);
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	return 0;
}

int util_hmap_reserve(struct util_hmap *m, size_t n)
{
	size_t cap = m->cap ? m->cap : HMAP_MIN_CAP;

	while (cap / 2 < n) {
		if (cap > SIZE_MAX / 2 / sizeof(struct util_hmap_slot))
			return -1;
		cap *= 2;
	}
	return grow(m, cap);
}

int util_hmap_add(struct util_hmap *m, const char *key, uintptr_t val)
{
	if (util_hmap_reserve(m, m->n + 1) < 0)
		return -1;
	put(m->slots, m->cap, key_hash(key), val);
	m->n++;
	return 0;
}

bool util_hmap_get(const struct util_hmap *m, const char *key, util_hmap_key_fn keyof,
		   const void *arg, uintptr_t *val)
{
	uint64_t h;

	if (m->n == 0)
		return false;
	h = key_hash(key);
	for (size_t i = (size_t)h & (m->cap - 1); m->slots[i].hash != 0;
	     i = (i + 1) & (m->cap - 1)) {
		if (m->slots[i].hash == h && strcmp(keyof(arg, m->slots[i].val), key) == 0) {
			*val = m->slots[i].val;
			return true;
		}
	}
	return false;
}

bool util_hmap_del(struct util_hmap *m, const char *key, uintptr_t val)
{
	size_t mask = m->cap - 1, i, j;
	uint64_t h;

	if (m->n == 0)
		return false;
	h = key_hash(key);
	for (i = (size_t)h & mask; m->slots[i].hash != 0; i = (i + 1) & mask)
		if (m->slots[i].hash == h && m->slots[i].val == val)
			break;
	if (m->slots[i].hash == 0)
		return false;
	/* backward shift: move up each later entry of the run that may sit
	 * in the hole (its home is not in (i, j]) */
	for (j = (i + 1) & mask; m->slots[j].hash != 0; j = (j + 1) & mask) {
		size_t home = (size_t)m->slots[j].hash & mask;

		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].hash = 0;
	m->slots[i].val = 0;
	m->n--;
	return true;
}

void util_hmap_free(struct util_hmap *m)
{
	free(m->slots);
	memset(m, 0, sizeof(*m));
}
