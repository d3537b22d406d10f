/* balance: smooth weighted round-robin, least connections, two random
 * choices, Maglev and first-available. Pure: no I/O, no clock; randomness
 * comes from a caller-owned state. Tables built here are immutable after. */
#include <stdlib.h>
#include <string.h>

#include "sluice/balance.h"
#include "sluice/util.h"

#define SWRR_MAX_CYCLE 16384
/* Table entries a Maglev pick tries before it scans the servers instead:
 * with half of the servers unusable at pick time (full, tried), 32 entries
 * all hold unusable ones about once in 4 billion picks; without a bound, a
 * pool whose servers are all full would scan its 65537 entries for every
 * queued client at every freed slot. */
#define MAGLEV_PROBES 32

static uint32_t gcd32(uint32_t a, uint32_t b)
{
	while (b != 0) {
		uint32_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* Servers of one weight, for balance_swrr_build(): members[] in index
 * order, picked so far. */
struct swrr_class {
	uint32_t w;
	size_t first, count; /* in the members array */
	uint64_t picks;
};

/* The weights w (n of them, total after scaling) as classes of equal
 * weight: *members gets the server indices grouped by class, each group in
 * index order (a counting sort, O(n)). Distinct weights are few: d of them
 * sum to at least d(d+1)/2 <= total, so the table of classes is sized from
 * the total. Returns the number of classes, or 0 on no memory. */
static size_t swrr_classes(const uint32_t *w, size_t n, uint64_t total, uint32_t **members,
			   struct swrr_class **classes)
{
	size_t cap = 16, nc = 0, *slot_of = malloc(n * sizeof(*slot_of));
	int32_t *slots;

	while (cap * cap < 8 * total + 64)
		cap *= 2; /* at least twice the most classes there can be */
	slots = malloc(cap * sizeof(*slots));
	*members = malloc(n * sizeof(**members));
	*classes = malloc(cap / 2 * sizeof(**classes));
	if (slot_of == NULL || slots == NULL || *members == NULL || *classes == NULL) {
		free(slot_of);
		free(slots);
		return 0;
	}
	memset(slots, 0xff, cap * sizeof(*slots)); /* -1: empty */
	for (size_t i = 0; i < n; i++) {
		size_t h;

		if (w[i] == 0)
			continue;
		for (h = (w[i] * 0x9e3779b1u) & (cap - 1);
		     slots[h] >= 0 && (*classes)[slots[h]].w != w[i]; h = (h + 1) & (cap - 1))
			;
		if (slots[h] < 0) {
			slots[h] = (int32_t)nc;
			(*classes)[nc++] = (struct swrr_class){.w = w[i]};
		}
		(*classes)[slots[h]].count++;
		slot_of[i] = (size_t)slots[h];
	}
	for (size_t c = 0, first = 0; c < nc; c++) {
		(*classes)[c].first = first;
		first += (*classes)[c].count;
		(*classes)[c].picks = 0; /* counts the members placed, below */
	}
	for (size_t i = 0; i < n; i++) {
		struct swrr_class *x;

		if (w[i] == 0)
			continue;
		x = &(*classes)[slot_of[i]];
		(*members)[x->first + x->picks++] = (uint32_t)i;
	}
	for (size_t c = 0; c < nc; c++)
		(*classes)[c].picks = 0;
	free(slot_of);
	free(slots);
	return nc;
}

int balance_swrr_build(const uint32_t *weights, size_t n, uint32_t **seq, size_t *len)
{
	uint64_t total = 0;
	uint32_t g = 0, *w, *out, *members = NULL;
	struct swrr_class *cls = NULL;
	size_t nc;

	*seq = NULL;
	*len = 0;
	for (size_t i = 0; i < n; i++) {
		total += weights[i];
		if (weights[i] > 0)
			g = gcd32(g, weights[i]);
	}
	if (total == 0)
		return 0;
	w = malloc(n * sizeof(*w));
	if (w == NULL)
		return -1;
	total = 0;
	for (size_t i = 0; i < n; i++) {
		w[i] = weights[i] / g;
		total += w[i];
	}
	if (total > SWRR_MAX_CYCLE) {
		/* keep proportions; a non-zero weight never drops to zero */
		uint64_t t2 = 0;

		for (size_t i = 0; i < n; i++) {
			if (w[i] > 0)
				w[i] =
				    (uint32_t)UTIL_MAX(1, (uint64_t)w[i] * SWRR_MAX_CYCLE / total);
			t2 += w[i];
		}
		total = t2;
	}
	out = malloc((size_t)total * sizeof(*out));
	nc = out != NULL ? swrr_classes(w, n, total, &members, &cls) : 0;
	if (nc == 0) {
		free(out);
		free(members);
		free(cls);
		free(w);
		return -1;
	}
	/* nginx's rule: at step k every current weight grows by its weight and
	 * the largest (lowest index on a tie) is picked and lowered by the
	 * total, i.e. cur(i) = k*w(i) - total*picks(i). Among servers of one
	 * weight the largest is the one picked least, lowest index first: they
	 * take turns in index order, so one candidate per weight decides and
	 * a cycle costs O(total x weights), not O(total x servers). */
	for (uint64_t k = 1; k <= total; k++) {
		struct swrr_class *best = NULL;
		int64_t best_cur = 0;
		uint32_t best_idx = 0;

		for (size_t c = 0; c < nc; c++) {
			struct swrr_class *x = &cls[c];
			uint32_t idx = members[x->first + x->picks % x->count];
			int64_t cur =
			    (int64_t)(k * x->w) - (int64_t)(total * (x->picks / x->count));

			if (best == NULL || cur > best_cur || (cur == best_cur && idx < best_idx)) {
				best = x;
				best_cur = cur;
				best_idx = idx;
			}
		}
		best->picks++;
		out[k - 1] = best_idx;
	}
	free(members);
	free(cls);
	free(w);
	*seq = out;
	*len = (size_t)total;
	return 0;
}

size_t balance_pick_seq(const uint32_t *seq, size_t len, uint32_t start, balance_usable_fn usable,
			void *arg)
{
	for (size_t k = 0; k < len; k++) {
		size_t idx = seq[(start + k) % len];

		if (usable(arg, idx))
			return idx;
	}
	return BALANCE_NONE;
}

size_t balance_pick_first(size_t n, balance_usable_fn usable, void *arg)
{
	for (size_t i = 0; i < n; i++)
		if (usable(arg, i))
			return i;
	return BALANCE_NONE;
}

/* a/wa < b/wb without division; weights are non-zero */
static bool load_less(uint32_t a, uint32_t wa, uint32_t b, uint32_t wb)
{
	return (uint64_t)a * wb < (uint64_t)b * wa;
}

size_t balance_pick_leastconn(const uint32_t *weights, size_t n, uint32_t start,
			      balance_load_fn load, balance_usable_fn usable, void *arg)
{
	size_t best = BALANCE_NONE;
	uint32_t best_load = 0;

	for (size_t k = 0; k < n; k++) {
		size_t i = (start + k) % n;
		uint32_t l;

		if (weights[i] == 0 || !usable(arg, i))
			continue;
		/* +1: the connection being placed, so weights matter at low load */
		l = load(arg, i) + 1;
		if (best == BALANCE_NONE || load_less(l, weights[i], best_load, weights[best])) {
			best = i;
			best_load = l;
		}
	}
	return best;
}

uint64_t balance_cumulative(const uint32_t *weights, size_t n, uint64_t *cum)
{
	uint64_t t = 0;

	for (size_t i = 0; i < n; i++) {
		t += weights[i];
		cum[i] = t;
	}
	return t;
}

static size_t draw(const uint64_t *cum, size_t n, uint64_t *rng)
{
	uint64_t r = util_rand64(rng) % cum[n - 1];
	size_t lo = 0, hi = n - 1;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cum[mid] > r)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

size_t balance_pick_p2c(const uint64_t *cum, const uint32_t *weights, size_t n, uint64_t *rng,
			balance_load_fn load, balance_usable_fn usable, void *arg)
{
	size_t a, b;
	bool ua, ub;

	if (n == 0 || cum[n - 1] == 0)
		return BALANCE_NONE;
	a = draw(cum, n, rng);
	b = draw(cum, n, rng);
	/* two distinct candidates when there are two (bounded redraws) */
	for (int i = 0; i < 4 && b == a && n > 1; i++)
		b = draw(cum, n, rng);
	ua = usable(arg, a);
	ub = b != a && usable(arg, b);
	/* b must be strictly less loaded per weight: on a tie (idle servers)
	 * the weighted draw decides, so shares follow weights at low load */
	if (ua && ub)
		return load_less(load(arg, b), weights[b], load(arg, a), weights[a]) ? b : a;
	if (ua)
		return a;
	if (ub)
		return b;
	return balance_pick_leastconn(weights, n, (uint32_t)(util_rand64(rng) % n), load, usable,
				      arg);
}

int balance_maglev_build(const uint64_t *keys, const uint32_t *weights, size_t n, uint32_t m,
			 int32_t *table)
{
	uint32_t *offset, *skip, *next, maxw = 0;
	uint64_t *credit;
	uint32_t filled = 0;

	for (uint32_t j = 0; j < m; j++)
		table[j] = -1;
	for (size_t i = 0; i < n; i++)
		maxw = UTIL_MAX(maxw, weights[i]);
	if (maxw == 0)
		return -1;
	offset = malloc(n * sizeof(*offset));
	skip = malloc(n * sizeof(*skip));
	next = calloc(n, sizeof(*next));
	credit = calloc(n, sizeof(*credit));
	if (offset == NULL || skip == NULL || next == NULL || credit == NULL) {
		free(offset);
		free(skip);
		free(next);
		free(credit);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		offset[i] = (uint32_t)(util_hash64(&keys[i], sizeof(keys[i]), 0x6d61676c) % m);
		skip[i] =
		    (uint32_t)(util_hash64(&keys[i], sizeof(keys[i]), 0x736b6970) % (m - 1)) + 1;
	}
	while (filled < m) {
		for (size_t i = 0; i < n && filled < m; i++) {
			/* weighted Maglev: a server takes a turn per maxw of credit */
			credit[i] += weights[i];
			while (credit[i] >= maxw && filled < m) {
				uint32_t c;

				credit[i] -= maxw;
				do {
					c = (uint32_t)((offset[i] + (uint64_t)next[i] * skip[i]) %
						       m);
					next[i]++;
				} while (table[c] >= 0);
				table[c] = (int32_t)i;
				filled++;
			}
		}
	}
	free(offset);
	free(skip);
	free(next);
	free(credit);
	return 0;
}

/* Does member i keep base slot j? Its share of slots, chosen by a hash of
 * the slot seeded by the member: a larger cur keeps a superset. */
static bool maglev_keeps(uint32_t j, uint64_t key, uint32_t cur, uint32_t full)
{
	if (cur == 0)
		return false;
	if (cur >= full)
		return true;
	return util_hash64(&j, sizeof(j), key) % full < cur;
}

/* A fixed pseudo-random bijection of [0, 2^k) (mask = 2^k - 1): products
 * by odd constants and xor-shifts are each invertible on k bits. It breaks
 * the arithmetic structure of Maglev's permutations (a member's slots are
 * offset + i x skip), which the plain next slot (j + 1) would keep: with
 * it, one member of 6 leaving left another 10% below its fair share of the
 * table; in this order every remaining share stays within 1.5% of fair
 * (2 to 40 members of 65537 slots), random variation. */
static uint32_t slot_mix(uint32_t x, uint32_t mask, unsigned shift)
{
	x = (x * 0x9e3779b1u) & mask;
	x ^= x >> shift;
	x = (x * 0x85ebca6bu) & mask;
	x ^= x >> shift;
	x = (x * 0xc2b2ae35u) & mask;
	x ^= x >> shift;
	return x;
}

/* The refill order of m slots: a permutation of [0, m) by cycle walking
 * (apply the bijection of [0, 2^k) again until the value is below m; at
 * most 2^k - m steps, about 2 on average since 2^k < 2m). */
struct slot_order {
	uint32_t m, mask;
	unsigned shift;
};

static void slot_order_init(struct slot_order *o, uint32_t m)
{
	unsigned k = 1;

	while (k < 32 && (1u << k) < m)
		k++;
	o->m = m;
	o->mask = k == 32 ? UINT32_MAX : (1u << k) - 1;
	o->shift = (k + 1) / 2;
}

static uint32_t slot_at(const struct slot_order *o, uint32_t t)
{
	uint32_t x = slot_mix(t, o->mask, o->shift);

	while (x >= o->m)
		x = slot_mix(x, o->mask, o->shift);
	return x;
}

/* The inverse of slot_mix: products by the inverses of the constants
 * modulo 2^32 (masked), and x ^= x >> s undone by the same step since
 * 2s >= k. */
static uint32_t slot_unmix(uint32_t x, uint32_t mask, unsigned shift)
{
	x ^= x >> shift;
	x = (x * 0x7ed1b41du) & mask; /* 0xc2b2ae35^-1 */
	x ^= x >> shift;
	x = (x * 0xa5cb9243u) & mask; /* 0x85ebca6b^-1 */
	x ^= x >> shift;
	x = (x * 0x0e8b2f51u) & mask; /* 0x9e3779b1^-1 */
	return x;
}

/* Position of slot j in the refill order (slot_at's inverse). */
static uint32_t slot_pos(const struct slot_order *o, uint32_t j)
{
	uint32_t x = slot_unmix(j, o->mask, o->shift);

	while (x >= o->m)
		x = slot_unmix(x, o->mask, o->shift);
	return x;
}

static bool base_kept(const int32_t *base, uint32_t j, const uint64_t *keys, const uint32_t *cur,
		      const uint32_t *full)
{
	return base[j] >= 0 && maglev_keeps(j, keys[base[j]], cur[base[j]], full[base[j]]);
}

int balance_maglev_refill(const int32_t *base, uint32_t m, const uint64_t *keys,
			  const uint32_t *cur, const uint32_t *full, int32_t *out)
{
	struct slot_order ord;
	uint32_t last = m, empty = 0;
	int32_t carry;

	for (uint32_t j = 0; j < m; j++) {
		out[j] = base_kept(base, j, keys, cur, full) ? base[j] : -1;
		empty += out[j] < 0;
	}
	if (empty == m)
		return -1;
	slot_order_init(&ord, m);
	if (empty <= m / 8) {
		/* few empty slots (a server of many down): walk from each to
		 * the next kept one, about 1 / (kept fraction) steps each,
		 * instead of putting all m slots in order */
		for (uint32_t j = 0; j < m; j++) {
			uint32_t t, k;

			if (out[j] >= 0)
				continue;
			t = slot_pos(&ord, j);
			do {
				t = (t + 1) % m;
				k = slot_at(&ord, t);
			} while (!base_kept(base, k, keys, cur, full));
			out[j] = base[k];
		}
		return 0;
	}
	/* the last kept slot in refill order, then backwards once round:
	 * each empty slot takes the owner of the next kept slot in that order */
	for (uint32_t t = m; t-- > 0 && last == m;)
		if (out[slot_at(&ord, t)] >= 0)
			last = t;
	carry = out[slot_at(&ord, last)];
	for (uint32_t k = 1; k < m; k++) {
		uint32_t j = slot_at(&ord, (last + m - k) % m);

		if (out[j] < 0)
			out[j] = carry;
		else
			carry = out[j];
	}
	return 0;
}

size_t balance_pick_maglev(const int32_t *table, uint32_t m, size_t n, uint64_t h,
			   balance_usable_fn usable, void *arg)
{
	uint32_t start = (uint32_t)(h % m);
	int32_t prev = -1;

	for (uint32_t k = 0; k < UTIL_MIN(m, MAGLEV_PROBES); k++) {
		int32_t idx = table[(start + k) % m];

		if (idx == prev || idx < 0)
			continue;
		if (usable(arg, (size_t)idx))
			return (size_t)idx;
		prev = idx;
	}
	/* mostly unusable (all full: the queue case): one pass over the
	 * servers instead of the whole table */
	for (size_t k = 0; k < n; k++) {
		size_t idx = (size_t)((h + k) % n);

		if (usable(arg, idx))
			return idx;
	}
	return BALANCE_NONE;
}
